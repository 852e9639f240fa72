/*
 * config_check.c - the start-up checks that touch the file system (SPEC §3):
 * key store, log share, TLS key and certificate, data_dir; and the warnings
 * about a configuration that runs but is risky or partly ignored
 *
 * Owns:     nothing (files are opened and closed inside one call).
 * Lifetime: stateless.
 * Errors:   config_check_environment() returns -1 with the SPEC §3 text in
 *           err; the fixed text comes first, details follow in parentheses.
 * Context:  event-loop thread, at start-up (as root, before privileges are
 *           dropped) and on SIGHUP.
 *
 * Order, and so which error is reported when several apply:
 *   1. key store (key_dir or fs_dir): "Error: failed to load key volume."
 *   2. log share (logs_enabled=yes): "Error: failed to mount log share."
 *   3. TLS files (ssl_disabled=no): "Error: SSL keys could not be found on
 *      key volume! (FILE: why)", the key first, then the certificate,
 *      then whether they match;
 *   4. data_dir: "Error: failed to pre-configure MTA: data_dir ...".
 *
 * config_check_warnings() is the one list of warnings; mtad logs it at
 * start, on every SIGHUP that is applied and with -t.
 */
#include "mail/config.h"
#include "mail/config_priv.h"
#include "lib/cidr.h"
#include "lib/log.h"
#include "lib/util.h"
#include "mail/relay_map.h"
#include "mail/dest_policy.h"
#include "tls/tls.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>


#define CHK_KEYVOL_ERR "Error: failed to load key volume."
#define CHK_LOGSHARE_ERR "Error: failed to mount log share."

/* chk_err - "TEXT (detail)" into err */
static void
chk_err(char *err, size_t errlen, const char *text, const char *what, const char *why)
{
	if (util_bsnprintf(err, errlen, "%s (%s: %s)", text, what, why) < 0)
		util_strlcpy(err, text, errlen);
}

/*
 * chk_key_store - the directory must exist and be listable. opendir()
 * is the test rather than access(2): as root access() always succeeds,
 * while a dead NFS mount or a wrong type still fails opendir().
 */
static int
chk_key_store(const char *name, const char *dir, char *err, size_t errlen)
{
	char what[4200];
	struct stat st;
	DIR *d;

	if (util_bsnprintf(what, sizeof(what), "%s %s", name, dir) < 0)
		util_strlcpy(what, name, sizeof(what));
	if (stat(dir, &st) < 0) {
		chk_err(err, errlen, CHK_KEYVOL_ERR, what, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		chk_err(err, errlen, CHK_KEYVOL_ERR, what, "not a directory");
		return -1;
	}
	if ((d = opendir(dir)) == NULL) {
		chk_err(err, errlen, CHK_KEYVOL_ERR, what, strerror(errno));
		return -1;
	}
	closedir(d);
	return 0;
}

/*
 * chk_log_share - log_dir must be a directory we can create files in.
 * Tested by creating and removing a temporary file: as root access(W_OK)
 * says yes even on a read-only mount.
 */
static int
chk_log_share(const char *dir, char *err, size_t errlen)
{
	char what[4200], tmp[4200];
	struct stat st;
	int fd;

	if (util_bsnprintf(what, sizeof(what), "log_dir %s", dir) < 0)
		util_strlcpy(what, "log_dir", sizeof(what));
	if (stat(dir, &st) < 0) {
		chk_err(err, errlen, CHK_LOGSHARE_ERR, what, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		chk_err(err, errlen, CHK_LOGSHARE_ERR, what, "not a directory");
		return -1;
	}
	if (util_bsnprintf(tmp, sizeof(tmp), "%s/.mtad-write-test.XXXXXX", dir) < 0) {
		chk_err(err, errlen, CHK_LOGSHARE_ERR, what, "path too long");
		return -1;
	}
	if ((fd = mkstemp(tmp)) < 0) {
		chk_err(err, errlen, CHK_LOGSHARE_ERR, what, strerror(errno));
		return -1;
	}
	close(fd);
	if (unlink(tmp) < 0) {
		chk_err(err, errlen, CHK_LOGSHARE_ERR, what, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * chk_tls_files - SPEC §3: the key and certificate must be on the key
 * store, readable, valid PEM, the key without passphrase, and matching.
 * One implementation for start-up, SIGHUP and the TLS code: src/tls/tls_keys.c
 * (which reads through the privileged key-store reader once mtad runs as
 * mail_owner).
 */
static int
chk_tls_files(const struct config *cfg, char *err, size_t errlen)
{
	const char *root = config_key_store(cfg);

	return tls_keys_check(root, cfg->ssl_key_file, cfg->ssl_cert_file, err, errlen);
}

/*
 * chk_data_dir - data_dir must be a directory or creatable: its parent
 * exists. Nothing is created here (mtad -t changes nothing).
 */
static int
chk_data_dir(const char *dir, char *err, size_t errlen)
{
	char parent[PATH_MAX], *slash;
	struct stat st;

	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			if (util_bsnprintf(err, errlen, "Error: failed to pre-configure MTA: "
			    "data_dir %s: not a directory", dir) < 0)
				util_strlcpy(err, "Error: failed to pre-configure MTA: data_dir", errlen);
			return -1;
		}
		return 0;
	}
	if (errno != ENOENT)
		goto fail;
	if (util_strlcpy(parent, dir, sizeof(parent)) >= sizeof(parent)) {
		errno = ENAMETOOLONG;
		goto fail;
	}
	while (strlen(parent) > 1 && parent[strlen(parent) - 1] == '/')
		parent[strlen(parent) - 1] = '\0';
	if ((slash = strrchr(parent, '/')) == NULL)
		return 0;                       /* relative, in the working directory */
	if (slash == parent)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (stat(parent, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	if (util_bsnprintf(err, errlen, "Error: failed to pre-configure MTA: "
	    "data_dir %s: cannot be created (parent directory %s missing)", dir, parent) < 0)
		util_strlcpy(err, "Error: failed to pre-configure MTA: data_dir", errlen);
	return -1;

fail:
	if (util_bsnprintf(err, errlen, "Error: failed to pre-configure MTA: data_dir %s: %s",
	    dir, strerror(errno)) < 0)
		util_strlcpy(err, "Error: failed to pre-configure MTA: data_dir", errlen);
	return -1;
}

/*
 * chk_relay_files - SPEC §11.2: the smart relay's password (or token) file,
 * CA file and sender_relay_map must be on the key store and usable. The
 * secret read here is wiped at once; the files are read again when used
 * (the token file at every connection).
 */
static int
chk_relay_files(const struct config *cfg, char *err, size_t errlen)
{
	const char *root = config_key_store(cfg);
	const char *what = "";                   /* the property, when why does not name it */
	char why[512], secret[4097];

	if (cfg->smart_relay_password_file[0] != '\0') {
		int r = tls_keys_read_line(root, cfg->smart_relay_password_file, secret,
		    sizeof(secret), why, sizeof(why));

		OPENSSL_cleanse(secret, sizeof(secret));
		what = "smart_relay_password_file ";
		if (r < 0)
			goto fail;
	}
	if (cfg->smart_relay_ca_file[0] != '\0') {
		struct ssl_ctx_st *ctx = tls_client_new_ca(root, cfg->smart_relay_ca_file, why,
		    sizeof(why));

		what = "smart_relay_ca_file ";
		if (ctx == NULL)
			goto fail;
		tls_ctx_free(ctx);
	}
	if (cfg->sender_relay_map[0] != '\0') {
		struct relay_map *m;

		what = "";                       /* "sender_relay_map FILE line N: ..." */
		if ((m = relay_map_load(root, cfg->sender_relay_map, why, sizeof(why))) == NULL)
			goto fail;
		what = "sender_relay_map ";      /* a rule's password file: "FILE: why" */
		for (size_t i = 0; i < m->n; i++) {
			if (m->rules[i].password_file == NULL)
				continue;
			if (tls_keys_read_line(root, m->rules[i].password_file, secret,
			    sizeof(secret), why, sizeof(why)) < 0) {
				OPENSSL_cleanse(secret, sizeof(secret));
				relay_map_free(m);
				goto fail;
			}
			OPENSSL_cleanse(secret, sizeof(secret));
		}
		relay_map_free(m);
	}
	return 0;
fail:
	(void)util_bsnprintf(err, errlen, "Error: failed to pre-configure MTA: %s%s", what, why);
	return -1;                               /* (cut short if need be, still a start) */
}

/* config_check_environment - see config.h; the order is in the file header */
int
config_check_environment(const struct config *cfg, char *err, size_t errlen)
{
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (cfg->key_dir[0] != '\0' && chk_key_store("key_dir", cfg->key_dir, err, errlen) < 0)
		return -1;
	if (cfg->fs_dir[0] != '\0' && chk_key_store("fs_dir", cfg->fs_dir, err, errlen) < 0)
		return -1;
	if (cfg->logs_enabled && chk_log_share(cfg->log_dir, err, errlen) < 0)
		return -1;
	if (!cfg->ssl_disabled && chk_tls_files(cfg, err, errlen) < 0)
		return -1;
	if (chk_relay_files(cfg, err, errlen) < 0)
		return -1;
	if (cfg->destination_policy_file[0] != '\0') {
		char why[600];
		struct dest_policy *p = dest_policy_read(cfg, why, sizeof(why));

		if (p == NULL) {
			if (util_bsnprintf(err, errlen, "Error: failed to pre-configure MTA: %s",
			    why) < 0)
				util_strlcpy(err, "Error: failed to pre-configure MTA: "
				    "destination_policy_file", errlen);
			return -1;
		}
		dest_policy_free(p);
	}
	if (chk_data_dir(cfg->data_dir, err, errlen) < 0)
		return -1;
	return 0;
}

/*
 * config_check_warnings - log (log_warnx) each warning cfg deserves and
 * return how many. A warning is a setting that works but opens the relay
 * or the queue to others, or is ignored: one list, so that start-up,
 * SIGHUP and -t say the same.
 */
int
config_check_warnings(const struct config *cfg)
{
	int n = 0;

	if (cidr_list_is_open(cfg->smtpd_trusted_networks)) {
		log_warnx("smtpd_trusted_networks contains 0.0.0.0/0 or ::/0: "
		    "THIS IS AN OPEN RELAY, anyone can send mail anywhere through it");
		n++;
	}
	if (cfg->cc_mta.set && cfg->smart_relay.set) {
		log_warnx("cc_mta has no effect when smart_relay is set; ignoring it");
		n++;
	}
	if (config_check_ui_is_open(cfg)) {
		log_warnx("the web UI on %s port %d has no username and password: anyone who can "
		    "reach it can read and change the queue (set username and password, or "
		    "ui_address = 127.0.0.1)", cfg->ui_address, cfg->ui_port);
		n++;
	}
	return n;
}

/* config_check_ui_is_open - no UI credentials and a UI address beyond loopback? */
int
config_check_ui_is_open(const struct config *cfg)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (cfg->username != NULL && cfg->username[0] != '\0')
		return 0;
	if (inet_pton(AF_INET, cfg->ui_address, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) != 127;
	if (inet_pton(AF_INET6, cfg->ui_address, &a6) == 1)
		return !IN6_IS_ADDR_LOOPBACK(&a6) &&
		    !(IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	return 1;
}
