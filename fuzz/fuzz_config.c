/*
 * fuzz_config.c - libFuzzer harness for config_parse_buffer() and the
 * configuration value parsers
 *
 * Owns:     nothing that outlives one input.
 * Lifetime: one input at a time.
 * Errors:   a broken invariant aborts (libFuzzer reports it as a crash).
 * Context:  libFuzzer's thread.
 *
 * Input: the first octet is a mode. Bit 0 set: the rest is split at its
 * first NUL into the file text and up to 8 environment lines (each gets
 * the "MTA_" prefix, so the overrides are exercised). Bit 0 clear: the rest
 * is the file (NUL bytes included). Inputs are bounded to 64 KiB (the
 * parser's own bound, 1 MiB, is tested by the unit tests) and copied into
 * exact-size heap blocks so ASan sees any read past the end.
 *
 * On success the effective configuration is printed, parsed again and
 * printed again: both prints must be equal (print is re-readable).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/cidr.h"
#include "mail/config.h"

#define FUZZ_MAX    (64 * 1024)
#define FUZZ_ENV    8
#define FUZZ_PRINT  (128 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fuzz_print - config_print() into buf via a memfd; returns the length */
static size_t
fuzz_print(const struct config *cfg, char *buf, size_t size)
{
	int fd = memfd_create("fuzz_config", MFD_CLOEXEC);
	size_t len = 0;
	ssize_t r;

	if (fd < 0)
		abort();
	config_print(cfg, fd);
	if (lseek(fd, 0, SEEK_SET) != 0)
		abort();
	while (len < size && (r = read(fd, buf + len, size - len)) > 0)
		len += (size_t)r;
	close(fd);
	if (len == size)
		abort();                /* 37 lines of bounded values cannot fill this */
	return len;
}

/* fuzz_invariants - what every successfully loaded configuration guarantees */
static void
fuzz_invariants(const struct config *cfg)
{
	if (cfg->hostname == NULL || cfg->hostname[0] == '\0' || cfg->data_dir[0] == '\0')
		abort();
	if (cfg->ui_port < 1 || cfg->ui_port > 65535 || cfg->relay_smtp_port < 1 ||
	    cfg->relay_smtp_port > 65535)
		abort();
	if (cfg->n_smtp_listen < 1 || cfg->n_smtp_listen > CONFIG_MAX_LISTEN ||
	    cfg->n_smtps_listen > CONFIG_MAX_LISTEN || cfg->n_dns_servers > CONFIG_MAX_DNS)
		abort();
	if (cfg->retry_min_backoff > cfg->retry_max_backoff || cfg->smtpd_timeout == 0)
		abort();
	if (cfg->key_dir[0] != '\0' && cfg->fs_dir[0] != '\0')
		abort();
	if (cfg->logs_enabled && cfg->log_dir[0] == '\0')
		abort();
	if (!cfg->ssl_disabled && (cfg->ssl_key_file[0] == '\0' || cfg->ssl_cert_file[0] == '\0'))
		abort();
	if (cfg->smart_relay.set && (cfg->smart_relay.host[0] == '\0' ||
	    cfg->smart_relay.port < 0 || cfg->smart_relay.port > 65535))
		abort();
	for (size_t i = 0; i < cfg->n_smtp_listen; i++)
		if (cfg->smtp_listen[i].len == 0 || cfg->smtp_listen[i].text[0] == '\0')
			abort();
	if (cfg->smtpd_trusted_networks == NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char out1[FUZZ_PRINT], out2[FUZZ_PRINT];
	char *file = NULL, *envbuf = NULL, err[1024];
	char *envp[FUZZ_ENV + 1];
	size_t flen, nenv = 0;
	struct config *cfg, *again;
	uint8_t mode;

	if (size < 1 || size > FUZZ_MAX)
		return 0;
	mode = data[0];
	data++;
	size--;
	flen = size;
	if (mode & 1) {
		const uint8_t *nul = memchr(data, '\0', size);

		if (nul != NULL) {
			const uint8_t *e = nul + 1;
			size_t elen = size - (size_t)(e - data), o = 0;

			flen = (size_t)(nul - data);
			/* "MTA_" + each line + NUL, at most FUZZ_ENV lines */
			envbuf = malloc(elen + 5 * (FUZZ_ENV + 1) + 1);
			if (envbuf == NULL)
				return 0;
			while (nenv < FUZZ_ENV) {
				const uint8_t *nl = memchr(e, '\n', elen);
				size_t ll = nl != NULL ? (size_t)(nl - e) : elen;

				/* an embedded NUL would just end the variable early */
				envp[nenv++] = envbuf + o;
				memcpy(envbuf + o, "MTA_", 4);
				memcpy(envbuf + o + 4, e, ll);
				envbuf[o + 4 + ll] = '\0';
				o += ll + 5;
				if (nl == NULL)
					break;
				elen -= ll + 1;
				e = nl + 1;
			}
		}
	}
	envp[nenv] = NULL;

	file = malloc(flen ? flen : 1);
	if (file == NULL)
		goto done;
	memcpy(file, data, flen);

	cfg = config_parse_buffer("fuzz.conf", file, flen, envp, err, sizeof(err));
	if (cfg == NULL) {
		if (strncmp(err, "Error: ", 7) != 0 || strlen(err) >= sizeof(err))
			abort();
		goto done;
	}
	fuzz_invariants(cfg);
	{
		size_t n1 = fuzz_print(cfg, out1, sizeof(out1)), n2;

		/* Long values may not survive quoting within the line bound: only short inputs. */
		if (size < 2048) {
			again = config_parse_buffer("fuzz.conf", out1, n1, NULL, err, sizeof(err));
			if (again == NULL)
				abort();
			n2 = fuzz_print(again, out2, sizeof(out2));
			if (n1 != n2 || memcmp(out1, out2, n1) != 0)
				abort();
			config_free(again);
		}
	}
	config_free(cfg);

	/* The value parsers alone, on the raw file text. */
	if (flen < 512 && memchr(file, '\0', flen) == NULL) {
		char text[512];
		struct relay_target t;
		struct cidr_list *l;
		unsigned secs;

		memcpy(text, file, flen);
		text[flen] = '\0';
		if (config_value_parse_relay(text, &t) == 0 && t.set &&
		    (t.host[0] == '\0' || strlen(t.host) > 253 || t.port < 0 || t.port > 65535))
			abort();
		(void)config_value_parse_duration(text, &secs);
		l = cidr_list_parse(text, err, sizeof(err));
		if (l != NULL) {
			char fmt[8192];

			if (cidr_list_format(l, fmt, sizeof(fmt)) == 0) {
				struct cidr_list *l2 = cidr_list_parse(fmt, err, sizeof(err));
				char fmt2[8192];

				if (l2 == NULL || cidr_list_format(l2, fmt2, sizeof(fmt2)) != 0 ||
				    strcmp(fmt, fmt2) != 0)
					abort();
				cidr_list_free(l2);
			}
			cidr_list_free(l);
		}
	}

done:
	free(file);
	free(envbuf);
	return 0;
}
