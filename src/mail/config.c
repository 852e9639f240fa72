/*
 * config.c - the configuration file (SPEC §2): read, parse, apply MTA_*
 * environment overrides, validate, print
 *
 * Owns:     struct config and every string and list hanging off it.
 * Lifetime: config_load()/config_parse_buffer() to config_free(); the file
 *           text and the environment are copied, never kept.
 * Errors:   NULL with the complete SPEC §3 text in err ("Error: failed to
 *           pre-configure MTA: FILE line N: what", or one of the fixed
 *           texts for ui_port, logs and TLS key files).
 * Context:  event-loop thread (start-up and SIGHUP); allocation failure is
 *           fatal here (xmalloc), as everywhere in start-up code.
 *
 * File syntax, one property a line:
 *
 *     # comment
 *     name = value            # comment after a value
 *     name = "quoted # value with \" and \\"
 *
 * Names are lower case. An unquoted value runs to '#' or the end of the
 * line, without surrounding white space. A quoted value knows two escapes,
 * \" and \\; after its closing quote only white space and a comment may
 * follow. A CR before the LF is ignored (files edited on Windows). Lines
 * are at most CONFIG_LINE_MAX octets, the file CONFIG_FILE_MAX.
 *
 * Order of evaluation, and so which error is reported when several apply:
 *   1. the file cannot be read or is too large;
 *   2. the file's lines, top to bottom: syntax, unknown name, repeated
 *      name, bad value (a bad ui_port gives SPEC's ui_port text);
 *   3. MTA_* environment variables, in the order of the property table;
 *   4. cross-property checks: data_dir missing, key_dir and fs_dir both
 *      set, retry_min_backoff > retry_max_backoff, smtpd_proxy_protocol
 *      without smtpd_proxy_networks, logs_enabled without
 *      log_dir, ssl_disabled=no without key files, the host name;
 *   5. (config_check.c) what needs the file system.
 */
#include "mail/config.h"
#include "mail/config_priv.h"
#include "mail/dest_policy.h"
#include "lib/cidr.h"
#include "lib/log.h"
#include "lib/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CFG_PREFIX "Error: failed to pre-configure MTA: "
#define CFG_UI_PORT_ERR "Error: ui_port value must be between 1 and 65535."
#define CFG_LOGS_ERR "Error: logs are enabled, but log terminal is not connected."
#define CFG_KEYS_UNDEF_ERR "Error: ssl_disabled=no, but key files are not defined!"

#define CFG_SHOW_MAX 64         /* how much of a bad value an error shows */

enum cfg_kind {
	CFG_STRING,             /* char *, checked by a string check */
	CFG_BOOL,               /* int 0/1 */
	CFG_INT,                /* int in [min, max] (ports) */
	CFG_UINT,               /* unsigned in [min, max] */
	CFG_U64,                /* uint64_t in [min, max] (bytes) */
	CFG_DURATION,           /* unsigned seconds in [min, max] */
	CFG_CIDR,               /* struct cidr_list * */
	CFG_RELAY,              /* struct relay_target */
	CFG_LISTEN,             /* struct listen_addr[CONFIG_MAX_LISTEN] + count */
	CFG_DNS,                /* struct listen_addr[CONFIG_MAX_DNS] + count */
	CFG_PROXY,              /* int: "" = 0, "haproxy" = 1 */
};

enum cfg_check {
	CHK_TEXT,               /* any text without control characters */
	CHK_NONEMPTY_TEXT,
	CHK_HOSTNAME,           /* "" or a host name */
	CHK_USERNAME,           /* no ':' (HTTP basic auth) */
	CHK_SECRET,             /* text, never echoed */
	CHK_TIMEZONE,
	CHK_RELPATH,
	CHK_UI_ADDRESS,
	CHK_METRICS_PUSH,
	CHK_MAIL_OWNER,
	CHK_RELAY_TLS,          /* "may", "encrypt" or "verify" */
	CHK_RELAY_AUTH,         /* "" or "xoauth2" */
	CHK_HOST_LIST,          /* comma/space list of host names */
	CHK_RATE,               /* "" or N/UNIT (dest_policy.h) */
};

struct cfg_prop {
	const char *name;
	enum cfg_kind kind;
	const char *def;        /* default, parsed like a file value */
	size_t off;             /* offset of the field in struct config */
	size_t count_off;       /* CFG_LISTEN/CFG_DNS: offset of the count */
	unsigned long long min, max;
	enum cfg_check check;   /* CFG_STRING only */
	int empty_ok;           /* lists: an empty value is allowed */
};

#define OFF(f) offsetof(struct config, f)

/* The property table: SPEC §2.1, §2.2, §2.3, then the extensions. */
static const struct cfg_prop cfg_props[] = {
	{ "hostname", CFG_STRING, "", OFF(hostname), 0, 0, 0, CHK_HOSTNAME, 0 },
	{ "logs_enabled", CFG_BOOL, "no", OFF(logs_enabled), 0, 0, 1, 0, 0 },
	{ "maillog_filename", CFG_STRING, "", OFF(maillog_filename), 0, 0, 0, CHK_RELPATH, 0 },
	{ "smtpd_trusted_networks", CFG_CIDR, "127.0.0.1", OFF(smtpd_trusted_networks), 0, 0, 0, 0, 1 },
	{ "smart_relay", CFG_RELAY, "", OFF(smart_relay), 0, 0, 0, 0, 1 },
	{ "cc_mta", CFG_RELAY, "", OFF(cc_mta), 0, 0, 0, 0, 1 },
	{ "username", CFG_STRING, "", OFF(username), 0, 0, 0, CHK_USERNAME, 0 },
	{ "password", CFG_STRING, "", OFF(password), 0, 0, 0, CHK_SECRET, 0 },
	{ "ui_port", CFG_INT, "80", OFF(ui_port), 0, 1, 65535, 0, 0 },
	{ "ssl_disabled", CFG_BOOL, "yes", OFF(ssl_disabled), 0, 0, 1, 0, 0 },
	{ "ssl_key_file", CFG_STRING, "", OFF(ssl_key_file), 0, 0, 0, CHK_TEXT, 0 },
	{ "ssl_cert_file", CFG_STRING, "", OFF(ssl_cert_file), 0, 0, 0, CHK_TEXT, 0 },
	{ "timezone", CFG_STRING, "", OFF(timezone), 0, 0, 0, CHK_TIMEZONE, 0 },

	{ "data_dir", CFG_STRING, "", OFF(data_dir), 0, 0, 0, CHK_TEXT, 0 },
	{ "key_dir", CFG_STRING, "", OFF(key_dir), 0, 0, 0, CHK_TEXT, 0 },
	{ "fs_dir", CFG_STRING, "", OFF(fs_dir), 0, 0, 0, CHK_TEXT, 0 },
	{ "log_dir", CFG_STRING, "", OFF(log_dir), 0, 0, 0, CHK_TEXT, 0 },
	{ "smtp_listen", CFG_LISTEN, "0.0.0.0:25", OFF(smtp_listen), OFF(n_smtp_listen), 0, 0, 0, 0 },
	{ "smtps_listen", CFG_LISTEN, "0.0.0.0:465", OFF(smtps_listen), OFF(n_smtps_listen), 0, 0, 0, 1 },
	{ "ui_address", CFG_STRING, "0.0.0.0", OFF(ui_address), 0, 0, 0, CHK_UI_ADDRESS, 0 },
	{ "relay_smtp_port", CFG_INT, "25", OFF(relay_smtp_port), 0, 1, 65535, 0, 0 },
	{ "dns_servers", CFG_DNS, "", OFF(dns_servers), OFF(n_dns_servers), 0, 0, 0, 1 },
	{ "metrics_push", CFG_STRING, "", OFF(metrics_push), 0, 0, 0, CHK_METRICS_PUSH, 0 },

	{ "message_size_limit", CFG_U64, "10240000", OFF(message_size_limit), 0,
	    1, 1ULL << 40, 0, 0 },
	{ "smtpd_recipient_limit", CFG_UINT, "1000", OFF(smtpd_recipient_limit), 0,
	    1, CONFIG_RECIPIENT_LIMIT_MAX, 0, 0 },
	{ "smtpd_client_connection_limit", CFG_UINT, "50", OFF(smtpd_client_connection_limit), 0,
	    1, 1000000, 0, 0 },
	{ "smtpd_max_sessions", CFG_UINT, "10000", OFF(smtpd_max_sessions), 0, 1, 1000000, 0, 0 },
	{ "smtpd_timeout", CFG_DURATION, "300s", OFF(smtpd_timeout), 0, 1, 86400, 0, 0 },
	{ "retry_min_backoff", CFG_DURATION, "300s", OFF(retry_min_backoff), 0, 1, 30 * 86400, 0, 0 },
	{ "retry_max_backoff", CFG_DURATION, "4000s", OFF(retry_max_backoff), 0, 1, 30 * 86400, 0, 0 },
	{ "queue_lifetime", CFG_DURATION, "5d", OFF(queue_lifetime), 0, 0, 365 * 86400, 0, 0 },
	{ "queue_active_limit", CFG_UINT, "10000", OFF(queue_active_limit), 0, 10, 10000000, 0, 0 },
	{ "delay_warning_time", CFG_DURATION, "0", OFF(delay_warning_time), 0, 0, 365 * 86400, 0, 0 },
	{ "destination_concurrency", CFG_UINT, "20", OFF(destination_concurrency), 0, 1, 1000, 0, 0 },
	{ "smtp_connect_timeout", CFG_DURATION, "30s", OFF(smtp_connect_timeout), 0, 1, 3600, 0, 0 },

	/* SPEC §11.4 */
	{ "maillog_stdout", CFG_BOOL, "no", OFF(maillog_stdout), 0, 0, 1, 0, 0 },
	{ "drain_relay", CFG_RELAY, "", OFF(drain_relay), 0, 0, 0, 0, 1 },
	{ "drain_timeout", CFG_DURATION, "60s", OFF(drain_timeout), 0, 0, 86400, 0, 0 },

	{ "smtpd_proxy_protocol", CFG_PROXY, "", OFF(smtpd_proxy_protocol), 0, 0, 0, 0, 0 },
	{ "smtpd_proxy_networks", CFG_CIDR, "", OFF(smtpd_proxy_networks), 0, 0, 0, 0, 1 },
	{ "mail_owner", CFG_STRING, "mtad", OFF(mail_owner), 0, 0, 0, CHK_MAIL_OWNER, 0 },
	{ "smart_relay_tls", CFG_STRING, "may", OFF(smart_relay_tls), 0, 0, 0, CHK_RELAY_TLS, 0 },

	/* SPEC §11.1 */
	{ "ui_hosts", CFG_STRING, "", OFF(ui_hosts), 0, 0, 0, CHK_HOST_LIST, 0 },
	{ "ui_max_connections", CFG_UINT, "256", OFF(ui_max_connections), 0, 1, 100000, 0, 0 },

	/* SPEC §11.3 */
	{ "submission_listen", CFG_LISTEN, "", OFF(submission_listen), OFF(n_submission_listen),
	    0, 0, 0, 1 },
	{ "smtpd_users_file", CFG_STRING, "", OFF(smtpd_users_file), 0, 0, 0, CHK_TEXT, 0 },
	{ "dkim_key_table", CFG_STRING, "", OFF(dkim_key_table), 0, 0, 0, CHK_TEXT, 0 },

	/* SPEC §11.2 */
	{ "smart_relay_ca_file", CFG_STRING, "", OFF(smart_relay_ca_file), 0, 0, 0, CHK_TEXT, 0 },
	{ "smart_relay_username", CFG_STRING, "", OFF(smart_relay_username), 0, 0, 0, CHK_TEXT, 0 },
	{ "smart_relay_password", CFG_STRING, "", OFF(smart_relay_password), 0, 0, 0, CHK_SECRET, 0 },
	{ "smart_relay_password_file", CFG_STRING, "", OFF(smart_relay_password_file), 0, 0, 0,
	    CHK_TEXT, 0 },
	{ "smart_relay_auth", CFG_STRING, "", OFF(smart_relay_auth), 0, 0, 0, CHK_RELAY_AUTH, 0 },
	{ "sender_relay_map", CFG_STRING, "", OFF(sender_relay_map), 0, 0, 0, CHK_TEXT, 0 },
	{ "smtp_tls_session_cache", CFG_BOOL, "yes", OFF(smtp_tls_session_cache), 0, 0, 1, 0, 0 },
	{ "destination_rate_limit", CFG_STRING, "", OFF(destination_rate_limit), 0, 0, 0,
	    CHK_RATE, 0 },
	{ "destination_policy_file", CFG_STRING, "", OFF(destination_policy_file), 0, 0, 0,
	    CHK_TEXT, 0 },
};

#define CFG_NPROPS (sizeof(cfg_props) / sizeof(cfg_props[0]))

/* What the parser needs besides the result: where each value came from. */
struct cfg_state {
	const char *path;
	unsigned line[CFG_NPROPS];      /* file line that set it, 0 = not in the file */
	char *err;
	size_t errlen;
};

#define FIELD(cfg, p, type) ((type *)(void *)((char *)(cfg) + (p)->off))

/* cfg_err - "Error: failed to pre-configure MTA: " + formatted text into err */
static void __attribute__((format(printf, 3, 4)))
cfg_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	size_t plen = sizeof(CFG_PREFIX) - 1;

	if (err == NULL || errlen == 0)
		return;
	if (errlen <= plen + 1) {
		util_strlcpy(err, CFG_PREFIX, errlen);
		return;
	}
	memcpy(err, CFG_PREFIX, plen);
	va_start(ap, fmt);
	/* Truncation keeps a terminated, shortened message: acceptable here. */
	if (vsnprintf(err + plen, errlen - plen, fmt, ap) < 0)
		err[plen] = '\0';
	va_end(ap);
}

/* cfg_fixed - one of SPEC §3's fixed texts into err */
static void
cfg_fixed(char *err, size_t errlen, const char *text)
{
	if (err != NULL && errlen > 0)
		util_strlcpy(err, text, errlen);
}

/* cfg_show - a printable, shortened copy of a value for an error message */
static const char *
cfg_show(const char *v, char *buf, size_t size)
{
	size_t i, n = strlen(v);
	size_t lim = size - 4;

	if (lim > CFG_SHOW_MAX)
		lim = CFG_SHOW_MAX;
	for (i = 0; i < n && i < lim; i++) {
		unsigned char c = (unsigned char)v[i];
		buf[i] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
	}
	if (i < n) {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}

/* cfg_where - "FILE line N" or "environment variable MTA_NAME" or "default" */
static void
cfg_where(const struct cfg_state *st, const struct cfg_prop *p, unsigned line, int from_env,
    char *buf, size_t size)
{
	int r;

	if (from_env) {
		char up[64];
		size_t i;

		for (i = 0; p->name[i] != '\0' && i < sizeof(up) - 1; i++)
			up[i] = (char)(p->name[i] >= 'a' && p->name[i] <= 'z' ?
			    p->name[i] - 'a' + 'A' : p->name[i]);
		up[i] = '\0';
		r = util_bsnprintf(buf, size, "environment variable MTA_%s", up);
	} else if (line > 0)
		r = util_bsnprintf(buf, size, "%s line %u", st->path, line);
	else
		r = util_bsnprintf(buf, size, "%s: default of %s", st->path, p->name);
	if (r < 0)
		util_strlcpy(buf, st->path, size);
}

/* cfg_find - the property called name[0..len), or NULL */
static const struct cfg_prop *
cfg_find(const char *name, size_t len)
{
	for (size_t i = 0; i < CFG_NPROPS; i++)
		if (strlen(cfg_props[i].name) == len && memcmp(cfg_props[i].name, name, len) == 0)
			return &cfg_props[i];
	return NULL;
}

/* cfg_check_string - the CFG_STRING checks; 0 or -1 with why */
static int
cfg_check_string(const struct cfg_prop *p, const char *v, char *why, size_t whylen)
{
	char buf[64];

	if (config_value_text(v, why, whylen) < 0)
		return -1;
	switch (p->check) {
	case CHK_TEXT:
	case CHK_SECRET:
		return 0;
	case CHK_NONEMPTY_TEXT:
		if (v[0] == '\0') {
			util_strlcpy(why, "must not be empty", whylen);
			return -1;
		}
		return 0;
	case CHK_HOSTNAME:
		if (v[0] != '\0' && !config_value_hostname(v, strlen(v))) {
			util_strlcpy(why, "not a valid host name", whylen);
			return -1;
		}
		return 0;
	case CHK_USERNAME:
		if (strchr(v, ':') != NULL) {
			util_strlcpy(why, "':' is not allowed in a user name (HTTP basic auth)", whylen);
			return -1;
		}
		return 0;
	case CHK_TIMEZONE:
		return config_value_timezone(v, CONFIG_ZONEINFO, why, whylen);
	case CHK_RELPATH:
		return config_value_relpath(v, why, whylen);
	case CHK_UI_ADDRESS:
		return config_value_ui_address(v, buf, sizeof(buf), why, whylen);
	case CHK_METRICS_PUSH:
		return config_value_metrics_push(v, why, whylen);
	case CHK_MAIL_OWNER:
		return config_value_mail_owner(v, why, whylen);
	case CHK_RELAY_TLS:
		if (strcmp(v, "may") != 0 && strcmp(v, "encrypt") != 0 && strcmp(v, "verify") != 0) {
			util_strlcpy(why, "expected may, encrypt or verify", whylen);
			return -1;
		}
		return 0;
	case CHK_RELAY_AUTH:
		if (v[0] != '\0' && strcmp(v, "xoauth2") != 0) {
			util_strlcpy(why, "expected xoauth2 or an empty value (PLAIN or LOGIN)", whylen);
			return -1;
		}
		return 0;
	case CHK_HOST_LIST:
		return config_value_host_list(v, why, whylen);
	case CHK_RATE: {
		struct dest_rate r;

		return dest_rate_parse(v, &r, why, whylen);
	}
	}
	util_strlcpy(why, "internal error: unknown check", whylen);
	return -1;
}

/*
 * cfg_set - parse value v for property p into cfg, replacing (and
 * freeing) what was there. 0, or -1 with the complete error in st->err.
 */
static int
cfg_set(struct config *cfg, struct cfg_state *st, const struct cfg_prop *p, const char *v,
    unsigned line, int from_env)
{
	char why[256] = "bad value", where[512], shown[CFG_SHOW_MAX + 8];
	unsigned long long n;
	unsigned secs;

	switch (p->kind) {
	case CFG_STRING: {
		char **slot = FIELD(cfg, p, char *);

		if (cfg_check_string(p, v, why, sizeof(why)) < 0)
			goto bad;
		free(*slot);
		if (p->check == CHK_UI_ADDRESS) {
			char bare[64];

			if (config_value_ui_address(v, bare, sizeof(bare), why, sizeof(why)) < 0)
				goto bad;
			*slot = xstrdup(bare);
		} else
			*slot = xstrdup(v);
		return 0;
	}
	case CFG_BOOL:
		if (config_value_bool(v, FIELD(cfg, p, int), why, sizeof(why)) < 0)
			goto bad;
		return 0;
	case CFG_INT:
	case CFG_UINT:
	case CFG_U64:
		if (config_value_uint(v, ULLONG_MAX, &n, why, sizeof(why)) < 0 ||
		    n < p->min || n > p->max) {
			if (strcmp(p->name, "ui_port") == 0) {
				cfg_fixed(st->err, st->errlen, CFG_UI_PORT_ERR);
				return -1;
			}
			if (util_bsnprintf(why, sizeof(why), "expected a number from %llu to %llu",
			    p->min, p->max) < 0)
				util_strlcpy(why, "number out of range", sizeof(why));
			goto bad;
		}
		if (p->kind == CFG_INT)
			*FIELD(cfg, p, int) = (int)n;
		else if (p->kind == CFG_UINT)
			*FIELD(cfg, p, unsigned) = (unsigned)n;
		else
			*FIELD(cfg, p, uint64_t) = (uint64_t)n;
		return 0;
	case CFG_DURATION: {
		char lo[32], hi[32];

		if (config_value_parse_duration(v, &secs) < 0 || secs < p->min || secs > p->max) {
			if (config_value_format_duration((unsigned)p->min, lo, sizeof(lo)) < 0 ||
			    config_value_format_duration((unsigned)p->max, hi, sizeof(hi)) < 0 ||
			    util_bsnprintf(why, sizeof(why), "expected a duration from %s to %s "
			    "(a number with suffix s, m, h or d; no suffix = seconds)", lo, hi) < 0)
				util_strlcpy(why, "bad duration", sizeof(why));
			goto bad;
		}
		*FIELD(cfg, p, unsigned) = secs;
		return 0;
	}
	case CFG_CIDR: {
		struct cidr_list **slot = FIELD(cfg, p, struct cidr_list *);
		struct cidr_list *l;

		if (config_value_text(v, why, sizeof(why)) < 0)
			goto bad;
		if ((l = cidr_list_parse(v, why, sizeof(why))) == NULL)
			goto bad_noshow;
		cidr_list_free(*slot);
		*slot = l;
		return 0;
	}
	case CFG_RELAY: {
		struct relay_target t;

		if (config_value_parse_relay(v, &t) < 0) {
			util_strlcpy(why, "expected host, host:port, [host], [host]:port or "
			    "smtps://host[:port]", sizeof(why));
			goto bad;
		}
		*FIELD(cfg, p, struct relay_target) = t;
		return 0;
	}
	case CFG_LISTEN:
	case CFG_DNS: {
		size_t max = p->kind == CFG_LISTEN ? CONFIG_MAX_LISTEN : CONFIG_MAX_DNS;
		struct listen_addr tmp[CONFIG_MAX_LISTEN];
		size_t cnt = 0;

		if (config_value_text(v, why, sizeof(why)) < 0 ||
		    config_value_listen(v, tmp, max, &cnt, p->kind == CFG_DNS ? 53 : 0,
		    why, sizeof(why)) < 0)
			goto bad;
		if (cnt == 0 && !p->empty_ok) {
			util_strlcpy(why, "at least one addr:port is needed", sizeof(why));
			goto bad;
		}
		memcpy(FIELD(cfg, p, struct listen_addr), tmp, cnt * sizeof(tmp[0]));
		*(size_t *)(void *)((char *)cfg + p->count_off) = cnt;
		return 0;
	}
	case CFG_PROXY:
		if (v[0] == '\0')
			*FIELD(cfg, p, int) = 0;
		else if (strcmp(v, "haproxy") == 0)
			*FIELD(cfg, p, int) = 1;
		else {
			util_strlcpy(why, "expected haproxy or an empty value", sizeof(why));
			goto bad;
		}
		return 0;
	}
	util_strlcpy(why, "internal error: unknown kind", sizeof(why));

bad:
	cfg_where(st, p, line, from_env, where, sizeof(where));
	if (p->kind == CFG_STRING && p->check == CHK_SECRET)
		cfg_err(st->err, st->errlen, "%s: %s: %s", where, p->name, why);
	else
		cfg_err(st->err, st->errlen, "%s: %s = '%s': %s", where, p->name,
		    cfg_show(v, shown, sizeof(shown)), why);
	return -1;

bad_noshow:
	cfg_where(st, p, line, from_env, where, sizeof(where));
	cfg_err(st->err, st->errlen, "%s: %s: %s", where, p->name, why);
	return -1;
}

/*
 * cfg_parse_value - the value part of a line, from p to end (exclusive),
 * into out (size CONFIG_LINE_MAX + 1). Unquoted: up to '#', trimmed.
 * Quoted: \" and \\ escapes, then only white space and a comment.
 * 0, or -1 with a reason in why.
 */
static int
cfg_parse_value(const char *p, const char *end, char *out, char *why, size_t whylen)
{
	size_t o = 0;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p < end && *p == '"') {
		p++;
		for (;;) {
			if (p == end) {
				util_strlcpy(why, "missing closing quote", whylen);
				return -1;
			}
			if (*p == '"')
				break;
			if (*p == '\\') {
				if (p + 1 == end || (p[1] != '"' && p[1] != '\\')) {
					util_strlcpy(why, "bad escape in quoted value (only \\\" and \\\\)",
					    whylen);
					return -1;
				}
				p++;
			}
			out[o++] = *p++;
		}
		p++;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p < end && *p != '#') {
			util_strlcpy(why, "text after the closing quote", whylen);
			return -1;
		}
		out[o] = '\0';
		return 0;
	}
	while (p < end && *p != '#')
		out[o++] = *p++;
	while (o > 0 && (out[o - 1] == ' ' || out[o - 1] == '\t'))
		o--;
	out[o] = '\0';
	return 0;
}

/*
 * cfg_parse_line - one line (without its LF) of the file. Sets the
 * property or writes the error. 0 or -1.
 */
static int
cfg_parse_line(struct config *cfg, struct cfg_state *st, const char *p, size_t len,
    unsigned lineno, char *value)
{
	const char *end = p + len, *name;
	const struct cfg_prop *prop;
	size_t nlen;
	char why[128], shown[CFG_SHOW_MAX + 8];

	if (len > 0 && p[len - 1] == '\r')
		end--;
	if (memchr(p, '\0', (size_t)(end - p)) != NULL) {
		cfg_err(st->err, st->errlen, "%s line %u: NUL byte in line", st->path, lineno);
		return -1;
	}
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p == end || *p == '#')
		return 0;
	name = p;
	while (p < end && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
	    (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.'))
		p++;
	nlen = (size_t)(p - name);
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (nlen == 0 || p == end || *p != '=') {
		cfg_err(st->err, st->errlen, "%s line %u: malformed line (expected name = value)",
		    st->path, lineno);
		return -1;
	}
	p++;
	if ((prop = cfg_find(name, nlen)) == NULL) {
		char nbuf[CFG_SHOW_MAX + 1];
		size_t n = nlen < CFG_SHOW_MAX ? nlen : CFG_SHOW_MAX;

		memcpy(nbuf, name, n);
		nbuf[n] = '\0';
		cfg_err(st->err, st->errlen, "%s line %u: unknown property '%s'", st->path,
		    lineno, cfg_show(nbuf, shown, sizeof(shown)));
		return -1;
	}
	if (st->line[prop - cfg_props] != 0) {
		cfg_err(st->err, st->errlen, "%s line %u: %s repeated (first set on line %u)",
		    st->path, lineno, prop->name, st->line[prop - cfg_props]);
		return -1;
	}
	if (cfg_parse_value(p, end, value, why, sizeof(why)) < 0) {
		cfg_err(st->err, st->errlen, "%s line %u: %s: %s", st->path, lineno, prop->name, why);
		return -1;
	}
	st->line[prop - cfg_props] = lineno;
	return cfg_set(cfg, st, prop, value, lineno, 0);
}

/* cfg_env_value - the value of MTA_<NAME> for p in envp (first wins), or NULL */
static const char *
cfg_env_value(const struct cfg_prop *p, char *const *envp)
{
	size_t nlen = strlen(p->name);

	if (envp == NULL)
		return NULL;
	for (size_t i = 0; envp[i] != NULL; i++) {
		const char *e = envp[i];
		size_t j;

		if (strncmp(e, "MTA_", 4) != 0)
			continue;
		e += 4;
		for (j = 0; j < nlen; j++) {
			char up = p->name[j] >= 'a' && p->name[j] <= 'z' ?
			    (char)(p->name[j] - 'a' + 'A') : p->name[j];
			if (e[j] != up)
				break;
		}
		if (j == nlen && e[j] == '=')
			return e + j + 1;
	}
	return NULL;
}

/* cfg_resolve_hostname - hostname empty: the system's name, which must be valid */
static int
cfg_resolve_hostname(struct config *cfg, struct cfg_state *st)
{
	char name[256], shown[CFG_SHOW_MAX + 8];

	if (cfg->hostname[0] != '\0')
		return 0;
	if (gethostname(name, sizeof(name)) < 0) {
		cfg_err(st->err, st->errlen, "%s: hostname is empty and the system host name "
		    "cannot be read: %s", st->path, strerror(errno));
		return -1;
	}
	name[sizeof(name) - 1] = '\0';
	if (!config_value_hostname(name, strlen(name))) {
		cfg_err(st->err, st->errlen, "%s: hostname is empty and the system host name "
		    "'%s' is not a valid host name; set hostname", st->path,
		    cfg_show(name, shown, sizeof(shown)));
		return -1;
	}
	free(cfg->hostname);
	cfg->hostname = xstrdup(name);
	return 0;
}

/* cfg_cross_check - step 4 of the evaluation order (see the file header) */
static int
cfg_cross_check(struct config *cfg, struct cfg_state *st)
{
	if (cfg->data_dir[0] == '\0') {
		if (strcmp(st->path, CONFIG_ENV_ONLY) == 0)
			cfg_err(st->err, st->errlen, "no %s and no MTA_DATA_DIR: data_dir is not "
			    "set (it is mandatory)", CONFIG_DEFAULT_PATH);
		else
			cfg_err(st->err, st->errlen, "%s: data_dir is not set (it is mandatory)",
			    st->path);
		return -1;
	}
	if (cfg->key_dir[0] != '\0' && cfg->fs_dir[0] != '\0') {
		cfg_err(st->err, st->errlen, "%s: key_dir and fs_dir are both set; "
		    "use one key store", st->path);
		return -1;
	}
	if (cfg->retry_min_backoff > cfg->retry_max_backoff) {
		cfg_err(st->err, st->errlen, "%s: retry_min_backoff (%us) is greater than "
		    "retry_max_backoff (%us)", st->path, cfg->retry_min_backoff,
		    cfg->retry_max_backoff);
		return -1;
	}
	if (cfg->smtpd_proxy_protocol && cidr_list_count(cfg->smtpd_proxy_networks) == 0) {
		cfg_err(st->err, st->errlen, "%s: smtpd_proxy_protocol = haproxy needs "
		    "smtpd_proxy_networks (the load balancers whose PROXY header is believed)",
		    st->path);
		return -1;
	}
	if (cfg->logs_enabled && cfg->log_dir[0] == '\0') {
		cfg_fixed(st->err, st->errlen, CFG_LOGS_ERR);
		return -1;
	}
	if (cfg->smart_relay_password[0] != '\0' && cfg->smart_relay_password_file[0] != '\0') {
		cfg_err(st->err, st->errlen, "%s: smart_relay_password and "
		    "smart_relay_password_file are both set; use one", st->path);
		return -1;
	}
	if (cfg->smart_relay_username[0] != '\0' && cfg->smart_relay_password[0] == '\0' &&
	    cfg->smart_relay_password_file[0] == '\0') {
		cfg_err(st->err, st->errlen, "%s: smart_relay_username needs "
		    "smart_relay_password or smart_relay_password_file", st->path);
		return -1;
	}
	if (strcmp(cfg->smart_relay_auth, "xoauth2") == 0 &&
	    (cfg->smart_relay_username[0] == '\0' || cfg->smart_relay_password_file[0] == '\0')) {
		cfg_err(st->err, st->errlen, "%s: smart_relay_auth = xoauth2 needs "
		    "smart_relay_username and smart_relay_password_file (the token file)", st->path);
		return -1;
	}
	if (!cfg->ssl_disabled && (cfg->ssl_key_file[0] == '\0' || cfg->ssl_cert_file[0] == '\0')) {
		cfg_fixed(st->err, st->errlen, CFG_KEYS_UNDEF_ERR);
		return -1;
	}
	if (cfg->n_submission_listen > 0 && cfg->ssl_disabled) {
		cfg_err(st->err, st->errlen, "%s: submission_listen needs TLS (ssl_disabled = no): "
		    "AUTH is never offered in clear text", st->path);
		return -1;
	}
	return cfg_resolve_hostname(cfg, st);
}

/*
 * config_parse_buffer - parse the file text buf[0..len) (named path in
 * messages), apply MTA_* overrides from envp (may be NULL) and validate all
 * that needs no file system besides the time zone database. The buffer
 * need not be NUL-terminated. NULL with the SPEC §3 text in err.
 */
struct config *
config_parse_buffer(const char *path, const char *buf, size_t len, char *const *envp,
    char *err, size_t errlen)
{
	struct config *cfg;
	struct cfg_state st;
	char *value = NULL;
	unsigned lineno = 0;
	size_t pos = 0;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	memset(&st, 0, sizeof(st));
	st.path = path;
	st.err = err;
	st.errlen = errlen;

	cfg = xcalloc(1, sizeof(*cfg));
	cfg->path = xstrdup(path);
	for (size_t i = 0; i < CFG_NPROPS; i++)
		if (cfg_set(cfg, &st, &cfg_props[i], cfg_props[i].def, 0, 0) < 0)
			panic("default of %s does not parse: %s", cfg_props[i].name, err);

	if (len > CONFIG_FILE_MAX) {
		cfg_err(err, errlen, "%s: file too large (more than %d bytes)", path,
		    CONFIG_FILE_MAX);
		goto fail;
	}
	value = xmalloc(CONFIG_LINE_MAX + 1);
	while (pos < len) {
		const char *line = buf + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t llen = nl != NULL ? (size_t)(nl - line) : len - pos;

		lineno++;
		if (llen > CONFIG_LINE_MAX) {
			cfg_err(err, errlen, "%s line %u: line too long (more than %d bytes)",
			    path, lineno, CONFIG_LINE_MAX);
			goto fail;
		}
		if (cfg_parse_line(cfg, &st, line, llen, lineno, value) < 0)
			goto fail;
		pos += llen + (nl != NULL);
	}

	for (size_t i = 0; i < CFG_NPROPS; i++) {
		const char *v = cfg_env_value(&cfg_props[i], envp);

		if (v == NULL)
			continue;
		if (strlen(v) > CONFIG_LINE_MAX) {
			char where[128];

			cfg_where(&st, &cfg_props[i], 0, 1, where, sizeof(where));
			cfg_err(err, errlen, "%s: value too long", where);
			goto fail;
		}
		if (cfg_set(cfg, &st, &cfg_props[i], v, 0, 1) < 0)
			goto fail;
	}
	if (cfg_cross_check(cfg, &st) < 0)
		goto fail;
	free(value);
	return cfg;

fail:
	free(value);
	return config_free(cfg);
}

/*
 * config_load - read path (a regular file of at most CONFIG_FILE_MAX
 * bytes) and hand it to config_parse_buffer().
 */
struct config *
config_load(const char *path, char *const *envp, char *err, size_t errlen)
{
	struct config *cfg = NULL;
	struct stat sb;
	char *buf = NULL;
	size_t len = 0;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0) {
		cfg_err(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &sb) < 0) {
		cfg_err(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(sb.st_mode)) {
		cfg_err(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	if (sb.st_size > CONFIG_FILE_MAX) {
		cfg_err(err, errlen, "%s: file too large (more than %d bytes)", path,
		    CONFIG_FILE_MAX);
		goto fail;
	}
	buf = xmalloc(CONFIG_FILE_MAX + 1);
	for (;;) {
		ssize_t r = read(fd, buf + len, CONFIG_FILE_MAX + 1 - len);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			cfg_err(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > CONFIG_FILE_MAX) {
			cfg_err(err, errlen, "%s: file too large (more than %d bytes)", path,
			    CONFIG_FILE_MAX);
			goto fail;
		}
	}
	cfg = config_parse_buffer(path, buf, len, envp, err, errlen);

fail:
	free(buf);
	close(fd);
	return cfg;
}

/*
 * config_load_default - SPEC §1's order without -c: the given path, else
 * CONFIG_DEFAULT_PATH when it exists (even unreadable: that error is
 * reported, not silently replaced by the environment), else the MTA_*
 * variables alone as a configuration "file" without lines.
 */
struct config *
config_load_default(const char *path, char *const *envp, char *err, size_t errlen)
{
	struct stat sb;

	if (path != NULL && strcmp(path, CONFIG_ENV_ONLY) != 0)
		return config_load(path, envp, err, errlen);
	if (path == NULL && (stat(CONFIG_DEFAULT_PATH, &sb) == 0 || errno != ENOENT))
		return config_load(CONFIG_DEFAULT_PATH, envp, err, errlen);
	return config_parse_buffer(CONFIG_ENV_ONLY, "", 0, envp, err, errlen);
}

/* config_key_store - see config.h */
const char *
config_key_store(const struct config *cfg)
{
	return cfg->key_dir[0] != '\0' ? cfg->key_dir : cfg->fs_dir;
}

/* config_free - release everything; takes NULL, returns NULL */
struct config *
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return NULL;
	for (size_t i = 0; i < CFG_NPROPS; i++) {
		const struct cfg_prop *p = &cfg_props[i];

		if (p->kind == CFG_STRING) {
			free(*FIELD(cfg, p, char *));
			*FIELD(cfg, p, char *) = NULL;
		} else if (p->kind == CFG_CIDR) {
			*FIELD(cfg, p, struct cidr_list *) =
			    cidr_list_free(*FIELD(cfg, p, struct cidr_list *));
		}
	}
	free(cfg->path);
	free(cfg);
	return NULL;
}

/* cfg_write_all - write(2) until done or an error */
static void
cfg_write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += w;
		len -= (size_t)w;
	}
}

/* cfg_needs_quotes - 1 when v would not read back the same unquoted */
static int
cfg_needs_quotes(const char *v)
{
	size_t len = strlen(v);

	if (len == 0)
		return 0;
	if (v[0] == ' ' || v[0] == '"' || v[len - 1] == ' ')
		return 1;
	return strchr(v, '#') != NULL;
}

/* cfg_print_one - "name = value\n", quoting the value when needed */
static void
cfg_print_one(int fd, const char *name, const char *v)
{
	char line[CONFIG_LINE_MAX * 2 + 128];
	size_t o;
	int n;

	n = util_bsnprintf(line, sizeof(line), "%s =%s", name, v[0] != '\0' ? " " : "");
	if (n < 0)
		return;
	o = (size_t)n;
	if (cfg_needs_quotes(v)) {
		line[o++] = '"';
		for (const char *c = v; *c != '\0' && o < sizeof(line) - 4; c++) {
			if (*c == '"' || *c == '\\')
				line[o++] = '\\';
			line[o++] = *c;
		}
		line[o++] = '"';
	} else {
		size_t vl = strlen(v);

		if (vl > sizeof(line) - o - 2)
			vl = sizeof(line) - o - 2;
		memcpy(line + o, v, vl);
		o += vl;
	}
	line[o++] = '\n';
	cfg_write_all(fd, line, o);
}

/* cfg_format_listen - "a:p, [v6]:p" */
static void
cfg_format_listen(const struct listen_addr *arr, size_t n, char *buf, size_t size)
{
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		int r = util_bsnprintf(buf + o, size - o, "%s%s", i ? ", " : "", arr[i].text);

		if (r < 0)
			return;
		o += (size_t)r;
	}
}

/*
 * config_print - the effective configuration, every property in table
 * order as "name = value", re-readable as a configuration file; a
 * non-empty password prints as ********.
 */
void
config_print(const struct config *cfg, int fd)
{
	char buf[CONFIG_LINE_MAX + 1];

	for (size_t i = 0; i < CFG_NPROPS; i++) {
		const struct cfg_prop *p = &cfg_props[i];
		const char *v = buf;
		int r = 0;

		buf[0] = '\0';
		switch (p->kind) {
		case CFG_STRING:
			v = *FIELD(cfg, p, char *);
			if (v == NULL)
				v = "";
			if (p->check == CHK_SECRET && v[0] != '\0')
				v = "********";
			break;
		case CFG_BOOL:
			v = *FIELD(cfg, p, int) ? "yes" : "no";
			break;
		case CFG_INT:
			r = util_bsnprintf(buf, sizeof(buf), "%d", *FIELD(cfg, p, int));
			break;
		case CFG_UINT:
			r = util_bsnprintf(buf, sizeof(buf), "%u", *FIELD(cfg, p, unsigned));
			break;
		case CFG_U64:
			r = util_bsnprintf(buf, sizeof(buf), "%llu",
			    (unsigned long long)*FIELD(cfg, p, uint64_t));
			break;
		case CFG_DURATION:
			r = config_value_format_duration(*FIELD(cfg, p, unsigned), buf, sizeof(buf));
			break;
		case CFG_CIDR:
			r = cidr_list_format(*FIELD(cfg, p, struct cidr_list *), buf, sizeof(buf));
			break;
		case CFG_RELAY:
			r = config_value_format_relay(FIELD(cfg, p, struct relay_target), buf, sizeof(buf));
			break;
		case CFG_LISTEN:
		case CFG_DNS:
			cfg_format_listen(FIELD(cfg, p, struct listen_addr),
			    *(const size_t *)(const void *)((const char *)cfg + p->count_off),
			    buf, sizeof(buf));
			break;
		case CFG_PROXY:
			v = *FIELD(cfg, p, int) ? "haproxy" : "";
			break;
		}
		if (r < 0)
			v = "(too long to print)";
		cfg_print_one(fd, p->name, v);
	}
}
