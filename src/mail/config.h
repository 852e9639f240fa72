/*
 * config.h - the configuration file (SPEC §2): parse, validate, print
 *
 * Owns:     struct config and every string and list hanging off it.
 * Lifetime: config_load() to config_free(); read-only once loaded; SIGHUP
 *           builds a new one and swaps it whole.
 * Errors:   config_load() returns NULL and writes the complete user-facing
 *           error text of SPEC §3 ("Error: ...") into err.
 * Context:  event-loop thread (start-up and SIGHUP).
 */
#ifndef MTAD_CONFIG_H
#define MTAD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct cidr_list;

#define CONFIG_MAX_LISTEN 16
#define CONFIG_MAX_DNS    8
/*
 * The most recipients one message may have: the queue file format's own
 * limit (queue_rec.h QUEUE_REC_RCPT_MAX, checked equal at compile time), so
 * smtpd_recipient_limit can never promise more than the queue can store.
 */
#define CONFIG_RECIPIENT_LIMIT_MAX 100000

/* A next hop: "host", "host:port", "[host]", "[host]:port", "[2001:db8::1]:587". */
struct relay_target {
	int    set;          /* 0 = property empty */
	char   host[256];    /* host name or IP literal, brackets removed */
	int    port;         /* 0 = not given (use relay_smtp_port / 25) */
	int    no_mx;        /* brackets given: no MX lookup */
	int    smtps;        /* "smtps://host[:port]": implicit TLS (port 465 when not given) */
};

struct listen_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	char   text[64];     /* as written, for messages */
};

struct config {
	char  *path;                       /* the file read */

	/* SPEC §2.1 */
	char  *hostname;                   /* resolved: never empty after load */
	int    logs_enabled;
	char  *maillog_filename;           /* "" = none */
	struct cidr_list *smtpd_trusted_networks;
	struct relay_target smart_relay;
	struct relay_target cc_mta;
	char  *username;                   /* "" = no HTTP auth */
	char  *password;
	int    ui_port;
	int    ssl_disabled;
	char  *ssl_key_file;               /* relative to key store root */
	char  *ssl_cert_file;
	char  *timezone;                   /* "" = unchanged */

	/* SPEC §2.2 */
	char  *data_dir;
	char  *key_dir;                    /* "" = unset */
	char  *fs_dir;
	char  *log_dir;
	struct listen_addr smtp_listen[CONFIG_MAX_LISTEN];
	size_t n_smtp_listen;
	struct listen_addr smtps_listen[CONFIG_MAX_LISTEN];
	size_t n_smtps_listen;
	char  *ui_address;
	int    relay_smtp_port;
	struct listen_addr dns_servers[CONFIG_MAX_DNS];  /* port 53 when not given */
	size_t n_dns_servers;              /* 0 = use /etc/resolv.conf */
	char  *metrics_push;               /* "" or udp://host:port */

	/* SPEC §2.3 (durations in seconds) */
	uint64_t message_size_limit;
	unsigned smtpd_recipient_limit;
	unsigned smtpd_client_connection_limit;
	unsigned smtpd_max_sessions;
	unsigned smtpd_timeout;
	unsigned retry_min_backoff;
	unsigned retry_max_backoff;
	unsigned queue_lifetime;
	unsigned queue_active_limit;    /* messages in memory at most; the rest parked on disk (SPEC §11.5) */
	unsigned delay_warning_time;
	unsigned destination_concurrency;
	unsigned smtp_connect_timeout;

	/* SPEC §11.4: the appliance in a container, and many of them */
	int    maillog_stdout;             /* the mail log also on stdout */
	struct relay_target drain_relay;   /* set: SIGTERM hands the queue over to it */
	unsigned drain_timeout;            /* seconds of delivery after SIGTERM before that */

	/* beyond the appliance (documented in docs/configuration.md) */
	int    smtpd_proxy_protocol;       /* 0 = none, 1 = haproxy */
	struct cidr_list *smtpd_proxy_networks; /* whose PROXY header is believed; never NULL */
	char  *mail_owner;                 /* user to run as when started as root; default "mtad", falling back to "nobody" */
	char  *smart_relay_tls;            /* "may" (default), "encrypt" or "verify" */

	/* SPEC §11.1 */
	char  *ui_hosts;                   /* comma/space list of host names, "" = none */
	unsigned ui_max_connections;       /* HTTP connections in total */

	/* SPEC §11.3: authenticated senders and signing */
	struct listen_addr submission_listen[CONFIG_MAX_LISTEN];  /* STARTTLS + AUTH */
	size_t n_submission_listen;
	char  *smtpd_users_file;           /* key-store relative; "" = no AUTH */
	char  *dkim_key_table;             /* key-store relative; "" = no signing */

	/* SPEC §11.2 (paths relative to the key store root) */
	char  *smart_relay_ca_file;        /* PEM CAs for "verify"; "" = the system store */
	char  *smart_relay_username;       /* "" = no SMTP AUTH */
	char  *smart_relay_password;       /* secret */
	char  *smart_relay_password_file;  /* its first line: the password (or XOAUTH2 token) */
	char  *smart_relay_auth;           /* "" (PLAIN, else LOGIN) or "xoauth2" */
	char  *sender_relay_map;           /* per-sender relays; "" = none */
	int    smtp_tls_session_cache;     /* resume outbound TLS sessions */
	char  *destination_rate_limit;     /* "N/UNIT" messages per destination; "" = none */
	char  *destination_policy_file;    /* per-domain limits (key store, else data_dir); "" = none */
};

/* Without -c: this file when it exists, else the environment alone. */
#define CONFIG_DEFAULT_PATH "/etc/mtad/mtad.conf"
/* The path of a configuration taken from MTA_* variables alone (messages, SIGHUP). */
#define CONFIG_ENV_ONLY     "(environment)"

/*
 * config_load - read FILE, apply MTA_* overrides from envp, validate
 * everything that needs no file-system access. NULL on error with the SPEC
 * §3 text in err (e.g. "Error: failed to pre-configure MTA: /etc/mtad.conf
 * line 7: unknown property 'foo'").
 */
struct config *config_load(const char *path, char *const *envp, char *err, size_t errlen);

/*
 * config_load_default - what `mtad` without -c reads (SPEC §1): path when
 * not NULL; else CONFIG_DEFAULT_PATH when it exists; else MTA_* alone
 * (cfg->path is then CONFIG_ENV_ONLY). Also the way to reload: pass
 * cfg->path, which config_load_default() recognises. NULL as config_load().
 */
struct config *config_load_default(const char *path, char *const *envp, char *err,
    size_t errlen);

/*
 * config_check_environment - the start-up checks that touch the file
 * system: key_dir/fs_dir readable, log_dir writable (when logs are
 * enabled), TLS key and certificate loadable and matching (when
 * ssl_disabled = no), data_dir creatable. 0 or -1 with the SPEC §3 text.
 */
int config_check_environment(const struct config *cfg, char *err, size_t errlen);

/*
 * config_check_warnings - log every warning about cfg (open relay, cc_mta
 * ignored under smart_relay, ...) with log_warnx(); returns the count. The
 * one list for start-up, SIGHUP and -t.
 */
int config_check_warnings(const struct config *cfg);

/*
 * config_check_ui_is_open - 1 when the web UI needs no password (username empty)
 * and listens beyond loopback (ui_address not 127.0.0.0/8 or ::1): anyone
 * who reaches the port can read and change the queue (SPEC §11.1).
 */
int config_check_ui_is_open(const struct config *cfg);

/* config_print - the effective configuration, one "name = value" a line, passwords masked */
void config_print(const struct config *cfg, int fd);

/*
 * config_key_store - the root every key-store relative file is read
 * beneath: key_dir, else fs_dir ("" when neither is set)
 */
const char *config_key_store(const struct config *cfg);

struct config *config_free(struct config *cfg);

/* config_value_parse_duration - "300", "300s", "5m", "4h", "5d" -> seconds; -1 on error */
int config_value_parse_duration(const char *text, unsigned *out);
/* config_value_parse_relay - SPEC's smart_relay/cc_mta forms; -1 on error */
int config_value_parse_relay(const char *text, struct relay_target *out);
/* config_value_format_relay - the canonical text of a relay target, port included ("" when unset) */
int config_value_format_relay(const struct relay_target *t, char *buf, size_t size);

/*
 * config_parse_buffer - config_load() without the file: parse buf[0..len)
 * (not necessarily NUL-terminated; path names it in messages), apply the
 * MTA_* overrides of envp (may be NULL), validate. For tests and fuzzing.
 */
struct config *config_parse_buffer(const char *path, const char *buf, size_t len,
    char *const *envp, char *err, size_t errlen);

#endif
