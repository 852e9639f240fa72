/*
 * test_config.c - table-driven tests for src/mail/config*.c
 *
 * Owns:     temporary directories under $TMPDIR (or /tmp), removed at the end.
 * Lifetime: one run.
 * Errors:   each failing row prints "got X, want Y" and fails its test.
 * Context:  single thread; needs tzdata for the time zone rows that use
 *           the system zoneinfo (Debian's tzdata is a build dependency).
 *
 * Most rows are a configuration text plus MTA_* variables and either the
 * value config_print() must show for one property, or the exact error.
 * Every row gets MTA_DATA_DIR=/var/spool/mtad-test after its own variables
 * (the first occurrence of a variable wins), unless it asks for no base.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "lib/cidr.h"
#include "lib/util.h"
#include "mail/config.h"
#include "mail/config_priv.h"
#include "queue/queue_rec.h"

/* smtpd_recipient_limit can never promise more recipients than a queue file holds. */
_Static_assert(CONFIG_RECIPIENT_LIMIT_MAX == QUEUE_REC_RCPT_MAX,
    "smtpd_recipient_limit's maximum is the queue format's recipient limit");

#define PFX "Error: failed to pre-configure MTA: "
#define UI_PORT_ERR "Error: ui_port value must be between 1 and 65535."
#define LOGS_ERR "Error: logs are enabled, but log terminal is not connected."
#define KEYS_UNDEF_ERR "Error: ssl_disabled=no, but key files are not defined!"
#define DUR(lo, hi) "expected a duration from " lo " to " hi \
	" (a number with suffix s, m, h or d; no suffix = seconds)"
#define RELAY_WHY "expected host, host:port, [host], [host]:port or smtps://host[:port]"
#define SYSHOST "<system host name>"
#define NOBASE 1

static char sys_hostname[256];

/* parse - config_parse_buffer() of conf with env (NULL-terminated) + the base */
static struct config *
parse(const char *conf, size_t len, const char *const *env, int nobase, char *err, size_t errlen)
{
	const char *envp[16];
	size_t n = 0;

	for (size_t i = 0; env != NULL && env[i] != NULL && n < 12; i++)
		envp[n++] = env[i];
	envp[n++] = "PATH=/usr/bin";
	envp[n++] = "MTA_NOT_A_PROPERTY=whatever";
	if (!nobase)
		envp[n++] = "MTA_DATA_DIR=/var/spool/mtad-test";
	envp[n] = NULL;
	return config_parse_buffer("test.conf", conf, len, (char *const *)envp, err, errlen);
}

/* print_value - the value config_print() shows for name; 0 or -1 when absent */
static int
print_value(const struct config *cfg, const char *name, char *out, size_t size)
{
	char buf[16384], key[128];
	FILE *f = tmpfile();
	size_t n;
	const char *p;
	int ret = -1;

	assert_non_null(f);
	config_print(cfg, fileno(f));
	rewind(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	assert_true(util_bsnprintf(key, sizeof(key), "\n%s =", name) > 0);
	/* the first line has no "\n" before it */
	if (strncmp(buf, key + 1, strlen(key + 1)) == 0)
		p = buf;
	else if ((p = strstr(buf, key)) != NULL)
		p++;
	if (p != NULL) {
		const char *v = p + strlen(key + 1), *eol;

		if (*v == ' ')
			v++;
		eol = strchr(v, '\n');
		if (eol != NULL && (size_t)(eol - v) < size) {
			memcpy(out, v, (size_t)(eol - v));
			out[eol - v] = '\0';
			ret = 0;
		}
	}
	return ret;
}

/* ---- values that parse: what config_print() shows ------------------------ */

static const struct {
	const char *conf;
	const char *env[4];
	const char *name;
	const char *want;
} value_rows[] = {
	/* defaults of SPEC §2.1-2.3 and the extensions (empty file) */
	{ "", { NULL }, "hostname", SYSHOST },
	{ "", { NULL }, "logs_enabled", "no" },
	{ "", { NULL }, "maillog_filename", "" },
	{ "", { NULL }, "smtpd_trusted_networks", "127.0.0.1" },
	{ "", { NULL }, "smart_relay", "" },
	{ "", { NULL }, "cc_mta", "" },
	{ "", { NULL }, "username", "" },
	{ "", { NULL }, "password", "" },
	{ "", { NULL }, "ui_port", "80" },
	{ "", { NULL }, "ssl_disabled", "yes" },
	{ "", { NULL }, "ssl_key_file", "" },
	{ "", { NULL }, "ssl_cert_file", "" },
	{ "", { NULL }, "timezone", "" },
	{ "", { NULL }, "data_dir", "/var/spool/mtad-test" },
	{ "", { NULL }, "key_dir", "" },
	{ "", { NULL }, "fs_dir", "" },
	{ "", { NULL }, "log_dir", "" },
	{ "", { NULL }, "smtp_listen", "0.0.0.0:25" },
	{ "", { NULL }, "smtps_listen", "0.0.0.0:465" },
	{ "", { NULL }, "ui_address", "0.0.0.0" },
	{ "", { NULL }, "relay_smtp_port", "25" },
	{ "", { NULL }, "dns_servers", "" },
	{ "", { NULL }, "metrics_push", "" },
	{ "", { NULL }, "message_size_limit", "10240000" },
	{ "", { NULL }, "smtpd_recipient_limit", "1000" },
	{ "", { NULL }, "smtpd_client_connection_limit", "50" },
	{ "", { NULL }, "smtpd_max_sessions", "10000" },
	{ "", { NULL }, "smtpd_timeout", "5m" },
	{ "", { NULL }, "retry_min_backoff", "5m" },
	{ "", { NULL }, "retry_max_backoff", "4000s" },
	{ "", { NULL }, "queue_lifetime", "5d" },
	{ "", { NULL }, "delay_warning_time", "0" },
	{ "", { NULL }, "destination_concurrency", "20" },
	{ "", { NULL }, "smtp_connect_timeout", "30s" },
	{ "", { NULL }, "smtpd_proxy_protocol", "" },
	{ "", { NULL }, "smtpd_proxy_networks", "" },
	{ "", { NULL }, "mail_owner", "mtad" },
	{ "", { NULL }, "smart_relay_tls", "may" },
	{ "", { NULL }, "ui_hosts", "" },
	{ "", { NULL }, "ui_max_connections", "256" },

	/* strings, yes/no */
	{ "hostname = mx.example.com\n", { NULL }, "hostname", "mx.example.com" },
	{ "hostname = MX.Example.COM.\n", { NULL }, "hostname", "MX.Example.COM." },
	{ "hostname = relay1\n", { NULL }, "hostname", "relay1" },
	{ "hostname =\n", { NULL }, "hostname", SYSHOST },
	{ "logs_enabled = yes\nlog_dir = /logs\n", { NULL }, "logs_enabled", "yes" },
	{ "logs_enabled = YES\nlog_dir = /logs\n", { NULL }, "logs_enabled", "yes" },
	{ "logs_enabled = No\n", { NULL }, "logs_enabled", "no" },
	{ "ssl_disabled = NO\nssl_key_file = k.pem\nssl_cert_file = c.pem\n", { NULL },
	    "ssl_disabled", "no" },
	{ "maillog_filename = logs/hub1_maillog\n", { NULL }, "maillog_filename",
	    "logs/hub1_maillog" },
	{ "maillog_filename = /srv1_logs/maillog\n", { NULL }, "maillog_filename",
	    "/srv1_logs/maillog" },
	{ "username = admin\n", { NULL }, "username", "admin" },
	{ "password = s3cret\n", { NULL }, "password", "********" },
	{ "password = \"with # and \\\" and \\\\\"\n", { NULL }, "password", "********" },
	{ "password =\n", { NULL }, "password", "" },
	{ "ssl_key_file = tls/key.pem\n", { NULL }, "ssl_key_file", "tls/key.pem" },
	{ "ssl_cert_file = /tls/cert.pem\n", { NULL }, "ssl_cert_file", "/tls/cert.pem" },
	{ "log_dir = /srv/my log share\n", { NULL }, "log_dir", "/srv/my log share" },
	{ "key_dir = /keys\n", { NULL }, "key_dir", "/keys" },
	{ "fs_dir = /nfs/keys\n", { NULL }, "fs_dir", "/nfs/keys" },
	{ "log_dir = /mnt/cifs\n", { NULL }, "log_dir", "/mnt/cifs" },
	{ "mail_owner = nobody\n", { NULL }, "mail_owner", "nobody" },
	{ "smart_relay_tls = encrypt\n", { NULL }, "smart_relay_tls", "encrypt" },
	{ "ui_hosts = mta.example.com, ui.example.com\n", { NULL }, "ui_hosts",
	    "mta.example.com, ui.example.com" },
	{ "ui_max_connections = 10\n", { NULL }, "ui_max_connections", "10" },
	{ "smtpd_proxy_protocol = haproxy\nsmtpd_proxy_networks = 10.1.0.0/16\n", { NULL },
	    "smtpd_proxy_protocol", "haproxy" },
	{ "smtpd_proxy_protocol = haproxy\nsmtpd_proxy_networks = 10.1.0.0/16, ::1\n", { NULL },
	    "smtpd_proxy_networks", "10.1.0.0/16, ::1" },
	{ "smtpd_proxy_networks = 127.0.0.1\n", { NULL }, "smtpd_proxy_networks", "127.0.0.1" },
	{ "smtpd_proxy_protocol =\n", { NULL }, "smtpd_proxy_protocol", "" },

	/* time zones (system zoneinfo) */
	{ "timezone = Europe/Berlin\n", { NULL }, "timezone", "Europe/Berlin" },
	{ "timezone = America/New_York\n", { NULL }, "timezone", "America/New_York" },
	{ "timezone = UTC\n", { NULL }, "timezone", "UTC" },
	{ "timezone = Etc/GMT+5\n", { NULL }, "timezone", "Etc/GMT+5" },

	/* numbers and durations */
	{ "ui_port = 1\n", { NULL }, "ui_port", "1" },
	{ "ui_port = 65535\n", { NULL }, "ui_port", "65535" },
	{ "ui_port = 08080\n", { NULL }, "ui_port", "8080" },
	{ "relay_smtp_port = 2525\n", { NULL }, "relay_smtp_port", "2525" },
	{ "message_size_limit = 1\n", { NULL }, "message_size_limit", "1" },
	{ "message_size_limit = 52428800\n", { NULL }, "message_size_limit", "52428800" },
	{ "smtpd_recipient_limit = 5\n", { NULL }, "smtpd_recipient_limit", "5" },
	{ "smtpd_recipient_limit = 100000\n", { NULL }, "smtpd_recipient_limit", "100000" },
	{ "smtpd_client_connection_limit = 1\n", { NULL }, "smtpd_client_connection_limit", "1" },
	{ "smtpd_max_sessions = 100\n", { NULL }, "smtpd_max_sessions", "100" },
	{ "destination_concurrency = 1\n", { NULL }, "destination_concurrency", "1" },
	{ "smtpd_timeout = 60\n", { NULL }, "smtpd_timeout", "1m" },
	{ "smtpd_timeout = 90\n", { NULL }, "smtpd_timeout", "90s" },
	{ "smtpd_timeout = 45s\n", { NULL }, "smtpd_timeout", "45s" },
	{ "smtpd_timeout = 10M\n", { NULL }, "smtpd_timeout", "10m" },
	{ "smtpd_timeout = 1d\n", { NULL }, "smtpd_timeout", "1d" },
	{ "retry_min_backoff = 1\nretry_max_backoff = 1\n", { NULL }, "retry_min_backoff", "1s" },
	{ "retry_max_backoff = 2h\n", { NULL }, "retry_max_backoff", "2h" },
	{ "queue_lifetime = 0\n", { NULL }, "queue_lifetime", "0" },
	{ "queue_lifetime = 12h\n", { NULL }, "queue_lifetime", "12h" },
	{ "queue_lifetime = 365d\n", { NULL }, "queue_lifetime", "365d" },
	{ "delay_warning_time = 4h\n", { NULL }, "delay_warning_time", "4h" },
	{ "smtp_connect_timeout = 1h\n", { NULL }, "smtp_connect_timeout", "1h" },

	/* CIDR lists */
	{ "smtpd_trusted_networks = 127.0.0.1, 10.0.0.0/8 ::1\n", { NULL },
	    "smtpd_trusted_networks", "127.0.0.1, 10.0.0.0/8, ::1" },
	{ "smtpd_trusted_networks = 0.0.0.0/0\n", { NULL }, "smtpd_trusted_networks", "0.0.0.0/0" },
	{ "smtpd_trusted_networks =\n", { NULL }, "smtpd_trusted_networks", "" },
	{ "smtpd_trusted_networks = [2001:db8::]/32,192.168.0.0/16\n", { NULL },
	    "smtpd_trusted_networks", "2001:db8::/32, 192.168.0.0/16" },

	/* relay targets */
	{ "smart_relay = relay.example.com\n", { NULL }, "smart_relay", "relay.example.com" },
	{ "smart_relay = relay.example.com:587\n", { NULL }, "smart_relay", "relay.example.com:587" },
	{ "smart_relay = [relay.example.com]\n", { NULL }, "smart_relay", "[relay.example.com]" },
	{ "smart_relay = [relay.example.com]:2525\n", { NULL }, "smart_relay",
	    "[relay.example.com]:2525" },
	{ "smart_relay = [2001:db8::1]:587\n", { NULL }, "smart_relay", "[2001:db8::1]:587" },
	{ "smart_relay = [2001:db8::1]\n", { NULL }, "smart_relay", "[2001:db8::1]" },
	{ "smart_relay = 192.0.2.1\n", { NULL }, "smart_relay", "[192.0.2.1]" },
	{ "smart_relay = 192.0.2.1:25\n", { NULL }, "smart_relay", "[192.0.2.1]:25" },
	{ "cc_mta = [cc.example.org]:25\n", { NULL }, "cc_mta", "[cc.example.org]:25" },
	{ "cc_mta = archive.example.org\n", { NULL }, "cc_mta", "archive.example.org" },
	{ "smart_relay = smtps://relay.example.com\n", { NULL }, "smart_relay",
	    "smtps://relay.example.com:465" },
	{ "smart_relay = smtps://[2001:db8::1]:4650\n", { NULL }, "smart_relay",
	    "smtps://[2001:db8::1]:4650" },
	{ "smart_relay_tls = verify\n", { NULL }, "smart_relay_tls", "verify" },
	{ "smart_relay_auth = xoauth2\nsmart_relay_username = u\n"
	  "smart_relay_password_file = token\n", { NULL }, "smart_relay_auth", "xoauth2" },
	{ "smart_relay_username = u\nsmart_relay_password = p\n", { NULL },
	    "smart_relay_password", "********" },
	{ "", { "MTA_SMTP_TLS_SESSION_CACHE=no", NULL }, "smtp_tls_session_cache", "no" },
	{ "destination_rate_limit = 5/s\n", { NULL }, "destination_rate_limit", "5/s" },
	{ "", { "MTA_DESTINATION_RATE_LIMIT=100/m", NULL }, "destination_rate_limit", "100/m" },

	/* listen lists, DNS servers, UI address, metrics */
	{ "smtp_listen = 127.0.0.1:2525,[::1]:2525\n", { NULL }, "smtp_listen",
	    "127.0.0.1:2525, [::1]:2525" },
	{ "smtp_listen = [::]:25\n", { NULL }, "smtp_listen", "[::]:25" },
	{ "smtp_listen = 0.0.0.0:25 [::]:25\n", { NULL }, "smtp_listen", "0.0.0.0:25, [::]:25" },
	{ "smtp_listen = [0:0::0:1]:25\n", { NULL }, "smtp_listen", "[::1]:25" },
	{ "smtps_listen =\n", { NULL }, "smtps_listen", "" },
	{ "smtps_listen = 127.0.0.1:4650\n", { NULL }, "smtps_listen", "127.0.0.1:4650" },
	{ "dns_servers = 127.0.0.1:5353\n", { NULL }, "dns_servers", "127.0.0.1:5353" },
	{ "dns_servers = [::1]:53\n", { NULL }, "dns_servers", "[::1]:53" },
	{ "dns_servers = ::1\n", { NULL }, "dns_servers", "[::1]:53" },
	{ "dns_servers = [::1]\n", { NULL }, "dns_servers", "[::1]:53" },
	{ "dns_servers = 127.0.0.1\n", { NULL }, "dns_servers", "127.0.0.1:53" },
	{ "dns_servers = 1.1.1.1, 9.9.9.9\n", { NULL }, "dns_servers", "1.1.1.1:53, 9.9.9.9:53" },
	{ "ui_address = 127.0.0.1\n", { NULL }, "ui_address", "127.0.0.1" },
	{ "ui_address = ::1\n", { NULL }, "ui_address", "::1" },
	{ "ui_address = [::1]\n", { NULL }, "ui_address", "::1" },
	{ "metrics_push = udp://127.0.0.1:8125\n", { NULL }, "metrics_push", "udp://127.0.0.1:8125" },
	{ "metrics_push = udp://statsd.example:8125\n", { NULL }, "metrics_push",
	    "udp://statsd.example:8125" },
	{ "metrics_push = udp://[::1]:8125\n", { NULL }, "metrics_push", "udp://[::1]:8125" },

	/* file syntax: quoting, comments, white space, line ends */
	{ "hostname = \"mx.example.com\"\n", { NULL }, "hostname", "mx.example.com" },
	{ "hostname = \"mx.example.com\"   # quoted, then a comment\n", { NULL }, "hostname",
	    "mx.example.com" },
	{ "hostname = mx.example.com # the name\n", { NULL }, "hostname", "mx.example.com" },
	{ "hostname = mx.example.com#tight\n", { NULL }, "hostname", "mx.example.com" },
	{ "hostname=mx.example.com\n", { NULL }, "hostname", "mx.example.com" },
	{ "\thostname\t=\tmx.example.com\t\n", { NULL }, "hostname", "mx.example.com" },
	{ "   # indented comment\n\n\nhostname = a.example\n", { NULL }, "hostname", "a.example" },
	{ "hostname = mx.example.com\r\nui_port = 81\r\n", { NULL }, "ui_port", "81" },
	{ "ui_port = 81", { NULL }, "ui_port", "81" },                  /* no final newline */
	{ "maillog_filename = \"a#b\"\n", { NULL }, "maillog_filename", "\"a#b\"" },
	{ "username = \"  spaced  \"\n", { NULL }, "username", "\"  spaced  \"" },
	{ "username = \"\"\n", { NULL }, "username", "" },
	{ "username = a\"b\n", { NULL }, "username", "a\"b" },
	{ "log_dir = C:\\logs\n", { NULL }, "log_dir", "C:\\logs" },   /* unquoted: literal */
	{ "log_dir = \"C:\\\\logs\"\n", { NULL }, "log_dir", "C:\\logs" },

	/* environment overrides */
	{ "hostname = a.example\n", { "MTA_HOSTNAME=b.example", NULL }, "hostname", "b.example" },
	{ "", { "MTA_UI_PORT=8081", NULL }, "ui_port", "8081" },
	{ "ui_port = 81\n", { "MTA_UI_PORT=8081", NULL }, "ui_port", "8081" },
	{ "", { "MTA_SMART_RELAY=[relay.example]:587", NULL }, "smart_relay",
	    "[relay.example]:587" },
	{ "smart_relay = relay.example\n", { "MTA_SMART_RELAY=", NULL }, "smart_relay", "" },
	{ "", { "MTA_SMTPD_TRUSTED_NETWORKS=10.0.0.0/8 192.168.0.0/16", NULL },
	    "smtpd_trusted_networks", "10.0.0.0/8, 192.168.0.0/16" },
	{ "", { "MTA_QUEUE_LIFETIME=2d", NULL }, "queue_lifetime", "2d" },
	{ "", { "MTA_LOGS_ENABLED=yes", "MTA_LOG_DIR=/logs", NULL }, "logs_enabled", "yes" },
	{ "", { "MTA_USERNAME=a#b", NULL }, "username", "\"a#b\"" },  /* env value is literal */
	{ "", { "MTA_USERNAME=\"q\"", NULL }, "username", "\"\\\"q\\\"\"" },
	{ "", { "MTA_PASSWORD=pw", NULL }, "password", "********" },
	{ "", { "MTA_DATA_DIR=/first", "MTA_DATA_DIR=/second", NULL }, "data_dir", "/first" },
	{ "", { "mta_hostname=lower.example", NULL }, "hostname", SYSHOST },
	{ "", { "MTA_hostname=mixed.example", NULL }, "hostname", SYSHOST },
	{ "", { "MTA_HOSTNAMEX=x.example", "MTA_HOSTNAME", NULL }, "hostname", SYSHOST },
	{ "", { "XMTA_HOSTNAME=x.example", NULL }, "hostname", SYSHOST },
	{ "", { "MTA_SMTPS_LISTEN=", NULL }, "smtps_listen", "" },
	{ "", { "MTA_MAIL_OWNER=postfix", NULL }, "mail_owner", "postfix" },
	{ "", { "MTA_SMART_RELAY_TLS=encrypt", NULL }, "smart_relay_tls", "encrypt" },
};

static void
test_values(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(value_rows) / sizeof(value_rows[0]); i++) {
		char err[2048], got[4096];
		const char *want = value_rows[i].want;
		struct config *cfg = parse(value_rows[i].conf, strlen(value_rows[i].conf),
		    value_rows[i].env, 0, err, sizeof(err));

		if (strcmp(want, SYSHOST) == 0)
			want = sys_hostname;
		if (cfg == NULL) {
			print_error("row %zu (%s): got error '%s', want %s = '%s'\n", i,
			    value_rows[i].name, err, value_rows[i].name, want);
			failed++;
			continue;
		}
		if (print_value(cfg, value_rows[i].name, got, sizeof(got)) < 0) {
			print_error("row %zu: got no line for %s, want '%s'\n", i, value_rows[i].name,
			    want);
			failed++;
		} else if (strcmp(got, want) != 0) {
			print_error("row %zu: %s: got '%s', want '%s'\n", i, value_rows[i].name, got,
			    want);
			failed++;
		}
		config_free(cfg);
	}
	print_message("%zu value rows\n", sizeof(value_rows) / sizeof(value_rows[0]));
	assert_int_equal(failed, 0);
}

/* ---- errors: the exact text ---------------------------------------------- */

static const struct {
	const char *conf;
	const char *env[4];
	int nobase;
	const char *want;
} error_rows[] = {
	/* syntax, names, repetition, line numbers */
	{ "foo = 1\n", { NULL }, 0, PFX "test.conf line 1: unknown property 'foo'" },
	{ "# c\n\nfoo = 1\n", { NULL }, 0, PFX "test.conf line 3: unknown property 'foo'" },
	{ "Hostname = x\n", { NULL }, 0, PFX "test.conf line 1: unknown property 'Hostname'" },
	{ "mta_hostname = x\n", { NULL }, 0, PFX "test.conf line 1: unknown property 'mta_hostname'" },
	{ "\n\nhostname = a.example\nhostname = b.example\n", { NULL }, 0,
	    PFX "test.conf line 4: hostname repeated (first set on line 3)" },
	{ "ui_port = 80\n# x\nui_port = 80\n", { NULL }, 0,
	    PFX "test.conf line 3: ui_port repeated (first set on line 1)" },
	{ "hostname\n", { NULL }, 0, PFX "test.conf line 1: malformed line (expected name = value)" },
	{ "= x\n", { NULL }, 0, PFX "test.conf line 1: malformed line (expected name = value)" },
	{ "hostname: x\n", { NULL }, 0, PFX "test.conf line 1: malformed line (expected name = value)" },
	{ "host name = x\n", { NULL }, 0, PFX "test.conf line 1: malformed line (expected name = value)" },
	{ "\"hostname\" = x\n", { NULL }, 0,
	    PFX "test.conf line 1: malformed line (expected name = value)" },
	{ "ui_port = 80\r\nbad line\r\n", { NULL }, 0,
	    PFX "test.conf line 2: malformed line (expected name = value)" },
	{ "hostname = \"abc\n", { NULL }, 0, PFX "test.conf line 1: hostname: missing closing quote" },
	{ "hostname = \"a\\nb\"\n", { NULL }, 0,
	    PFX "test.conf line 1: hostname: bad escape in quoted value (only \\\" and \\\\)" },
	{ "hostname = \"abc\" x\n", { NULL }, 0,
	    PFX "test.conf line 1: hostname: text after the closing quote" },
	{ "hostname = \"abc\\\"\n", { NULL }, 0, PFX "test.conf line 1: hostname: missing closing quote" },
	/* order: the first bad line wins */
	{ "foo = 1\nui_port = 0\n", { NULL }, 0, PFX "test.conf line 1: unknown property 'foo'" },
	{ "ui_port = 0\nfoo = 1\n", { NULL }, 0, UI_PORT_ERR },
	{ "smtpd_timeout = x\n", { "MTA_SMTPD_TIMEOUT=10", NULL }, 0,
	    PFX "test.conf line 1: smtpd_timeout = 'x': " DUR("1s", "1d") },
	{ "foo = 1\n", { NULL }, NOBASE, PFX "test.conf line 1: unknown property 'foo'" },

	/* ui_port: SPEC's fixed text, from the file or the environment */
	{ "ui_port = 0\n", { NULL }, 0, UI_PORT_ERR },
	{ "ui_port = 65536\n", { NULL }, 0, UI_PORT_ERR },
	{ "ui_port = 99999999999999999999999\n", { NULL }, 0, UI_PORT_ERR },
	{ "ui_port = -1\n", { NULL }, 0, UI_PORT_ERR },
	{ "ui_port = http\n", { NULL }, 0, UI_PORT_ERR },
	{ "ui_port =\n", { NULL }, 0, UI_PORT_ERR },
	{ "ui_port = 80 80\n", { NULL }, 0, UI_PORT_ERR },
	{ "ui_port = 8o\n", { NULL }, 0, UI_PORT_ERR },
	{ "", { "MTA_UI_PORT=0", NULL }, 0, UI_PORT_ERR },
	{ "", { "MTA_UI_PORT=abc", NULL }, 0, UI_PORT_ERR },

	/* yes/no */
	{ "logs_enabled = maybe\n", { NULL }, 0,
	    PFX "test.conf line 1: logs_enabled = 'maybe': expected yes or no" },
	{ "logs_enabled = true\n", { NULL }, 0,
	    PFX "test.conf line 1: logs_enabled = 'true': expected yes or no" },
	{ "ssl_disabled = 1\n", { NULL }, 0,
	    PFX "test.conf line 1: ssl_disabled = '1': expected yes or no" },
	{ "ssl_disabled =\n", { NULL }, 0, PFX "test.conf line 1: ssl_disabled = '': expected yes or no" },

	/* numbers */
	{ "message_size_limit = 0\n", { NULL }, 0,
	    PFX "test.conf line 1: message_size_limit = '0': expected a number from 1 to 1099511627776" },
	{ "message_size_limit = 10k\n", { NULL }, 0,
	    PFX "test.conf line 1: message_size_limit = '10k': expected a number from 1 to 1099511627776" },
	{ "smtpd_recipient_limit = +5\n", { NULL }, 0,
	    PFX "test.conf line 1: smtpd_recipient_limit = '+5': expected a number from 1 to 100000" },
	{ "smtpd_recipient_limit = 100001\n", { NULL }, 0,
	    PFX "test.conf line 1: smtpd_recipient_limit = '100001': expected a number from 1 to 100000" },
	{ "smtpd_recipient_limit = 1000000\n", { NULL }, 0,
	    PFX "test.conf line 1: smtpd_recipient_limit = '1000000': expected a number from 1 to 100000" },
	{ "smtpd_max_sessions = 1e3\n", { NULL }, 0,
	    PFX "test.conf line 1: smtpd_max_sessions = '1e3': expected a number from 1 to 1000000" },
	{ "smtpd_client_connection_limit = 0\n", { NULL }, 0,
	    PFX "test.conf line 1: smtpd_client_connection_limit = '0': expected a number from 1 to 1000000" },
	{ "destination_concurrency = 1001\n", { NULL }, 0,
	    PFX "test.conf line 1: destination_concurrency = '1001': expected a number from 1 to 1000" },
	{ "relay_smtp_port = 70000\n", { NULL }, 0,
	    PFX "test.conf line 1: relay_smtp_port = '70000': expected a number from 1 to 65535" },
	{ "relay_smtp_port = 0\n", { NULL }, 0,
	    PFX "test.conf line 1: relay_smtp_port = '0': expected a number from 1 to 65535" },

	/* durations */
	{ "smtpd_timeout = 5x\n", { NULL }, 0, PFX "test.conf line 1: smtpd_timeout = '5x': " DUR("1s", "1d") },
	{ "smtpd_timeout = 0\n", { NULL }, 0, PFX "test.conf line 1: smtpd_timeout = '0': " DUR("1s", "1d") },
	{ "smtpd_timeout = -5\n", { NULL }, 0, PFX "test.conf line 1: smtpd_timeout = '-5': " DUR("1s", "1d") },
	{ "smtpd_timeout = 5 m\n", { NULL }, 0, PFX "test.conf line 1: smtpd_timeout = '5 m': " DUR("1s", "1d") },
	{ "smtpd_timeout = m\n", { NULL }, 0, PFX "test.conf line 1: smtpd_timeout = 'm': " DUR("1s", "1d") },
	{ "smtpd_timeout = 2d\n", { NULL }, 0, PFX "test.conf line 1: smtpd_timeout = '2d': " DUR("1s", "1d") },
	{ "smtpd_timeout = 1w\n", { NULL }, 0, PFX "test.conf line 1: smtpd_timeout = '1w': " DUR("1s", "1d") },
	{ "queue_lifetime = 366d\n", { NULL }, 0,
	    PFX "test.conf line 1: queue_lifetime = '366d': " DUR("0", "365d") },
	{ "queue_lifetime = 99999999999999999999\n", { NULL }, 0,
	    PFX "test.conf line 1: queue_lifetime = '99999999999999999999': " DUR("0", "365d") },
	{ "retry_min_backoff = 31d\n", { NULL }, 0,
	    PFX "test.conf line 1: retry_min_backoff = '31d': " DUR("1s", "30d") },
	{ "smtp_connect_timeout = 2h\n", { NULL }, 0,
	    PFX "test.conf line 1: smtp_connect_timeout = '2h': " DUR("1s", "1h") },
	{ "delay_warning_time = 1.5h\n", { NULL }, 0,
	    PFX "test.conf line 1: delay_warning_time = '1.5h': " DUR("0", "365d") },

	/* CIDR lists */
	{ "smtpd_trusted_networks = 10.1.2.3/8\n", { NULL }, 0,
	    PFX "test.conf line 1: smtpd_trusted_networks: host bits set after the prefix "
	    "(use the network address): '10.1.2.3/8'" },
	{ "smtpd_trusted_networks = 127.0.0.1, localhost\n", { NULL }, 0,
	    PFX "test.conf line 1: smtpd_trusted_networks: bad IPv4 address: 'localhost'" },
	{ "smtpd_trusted_networks = ::1/129\n", { NULL }, 0,
	    PFX "test.conf line 1: smtpd_trusted_networks: prefix length out of range: '::1/129'" },

	/* relay targets */
	{ "smart_relay = 2001:db8::1\n", { NULL }, 0,
	    PFX "test.conf line 1: smart_relay = '2001:db8::1': " RELAY_WHY },
	{ "smart_relay = [relay.example\n", { NULL }, 0,
	    PFX "test.conf line 1: smart_relay = '[relay.example': " RELAY_WHY },
	{ "smart_relay = relay.example:0\n", { NULL }, 0,
	    PFX "test.conf line 1: smart_relay = 'relay.example:0': " RELAY_WHY },
	{ "smart_relay = relay.example:\n", { NULL }, 0,
	    PFX "test.conf line 1: smart_relay = 'relay.example:': " RELAY_WHY },
	{ "smart_relay = -bad-.example\n", { NULL }, 0,
	    PFX "test.conf line 1: smart_relay = '-bad-.example': " RELAY_WHY },
	{ "cc_mta = under_score.example\n", { NULL }, 0,
	    PFX "test.conf line 1: cc_mta = 'under_score.example': " RELAY_WHY },
	{ "cc_mta = []\n", { NULL }, 0, PFX "test.conf line 1: cc_mta = '[]': " RELAY_WHY },
	{ "cc_mta = smtp://relay.example\n", { NULL }, 0,
	    PFX "test.conf line 1: cc_mta = 'smtp://relay.example': " RELAY_WHY },
	{ "", { "MTA_SMART_RELAY=a..b", NULL }, 0,
	    PFX "environment variable MTA_SMART_RELAY: smart_relay = 'a..b': " RELAY_WHY },

	/* listen lists and DNS servers */
	{ "smtp_listen = 127.0.0.1\n", { NULL }, 0,
	    PFX "test.conf line 1: smtp_listen = '127.0.0.1': port missing (write addr:port)" },
	{ "smtp_listen = ::1:25\n", { NULL }, 0,
	    PFX "test.conf line 1: smtp_listen = '::1:25': write IPv6 addresses as [addr]:port" },
	{ "smtp_listen = localhost:25\n", { NULL }, 0,
	    PFX "test.conf line 1: smtp_listen = 'localhost:25': not a numeric IP address" },
	{ "smtp_listen = 127.0.0.1:0\n", { NULL }, 0,
	    PFX "test.conf line 1: smtp_listen = '127.0.0.1:0': port must be 1..65535" },
	{ "smtp_listen =\n", { NULL }, 0,
	    PFX "test.conf line 1: smtp_listen = '': at least one addr:port is needed" },
	{ "smtp_listen = 127.0.0.1:25,127.0.0.1:25\n", { NULL }, 0,
	    PFX "test.conf line 1: smtp_listen = '127.0.0.1:25,127.0.0.1:25': address listed twice" },
	{ "smtps_listen = [127.0.0.1]:465\n", { NULL }, 0,
	    PFX "test.conf line 1: smtps_listen = '[127.0.0.1]:465': brackets are only for IPv6 addresses" },
	{ "smtps_listen = [::1]465\n", { NULL }, 0,
	    PFX "test.conf line 1: smtps_listen = '[::1]465': expected ':port' after ']'" },
	{ "dns_servers = [::1\n", { NULL }, 0, PFX "test.conf line 1: dns_servers = '[::1': missing ']'" },
	{ "dns_servers = 1.2.3.4:99999\n", { NULL }, 0,
	    PFX "test.conf line 1: dns_servers = '1.2.3.4:99999': port must be 1..65535" },
	{ "dns_servers = 1,2,3,4,5,6,7,8,9\n", { NULL }, 0,
	    PFX "test.conf line 1: dns_servers = '1,2,3,4,5,6,7,8,9': not a numeric IP address" },
	{ "dns_servers = 1.0.0.1 1.0.0.2 1.0.0.3 1.0.0.4 1.0.0.5 1.0.0.6 1.0.0.7 1.0.0.8 1.0.0.9\n",
	    { NULL }, 0, PFX "test.conf line 1: dns_servers = '1.0.0.1 1.0.0.2 1.0.0.3 1.0.0.4 "
	    "1.0.0.5 1.0.0.6 1.0.0.7 1.0.0.8 ...': too many addresses" },

	/* UI address, metrics push */
	{ "ui_address = localhost\n", { NULL }, 0,
	    PFX "test.conf line 1: ui_address = 'localhost': expected a numeric IPv4 or IPv6 address" },
	{ "ui_address =\n", { NULL }, 0,
	    PFX "test.conf line 1: ui_address = '': expected a numeric IPv4 or IPv6 address" },
	{ "ui_address = [127.0.0.1]\n", { NULL }, 0,
	    PFX "test.conf line 1: ui_address = '[127.0.0.1]': brackets are only for IPv6 addresses" },
	{ "metrics_push = tcp://127.0.0.1:8125\n", { NULL }, 0,
	    PFX "test.conf line 1: metrics_push = 'tcp://127.0.0.1:8125': expected udp://host:port" },
	{ "metrics_push = udp://statsd.example\n", { NULL }, 0,
	    PFX "test.conf line 1: metrics_push = 'udp://statsd.example': expected udp://host:port" },
	{ "metrics_push = udp://\n", { NULL }, 0,
	    PFX "test.conf line 1: metrics_push = 'udp://': expected udp://host:port" },

	/* strings with rules */
	{ "hostname = mx_1.example\n", { NULL }, 0,
	    PFX "test.conf line 1: hostname = 'mx_1.example': not a valid host name" },
	{ "hostname = \"mx.example.com\r\"\n", { NULL }, 0,
	    PFX "test.conf line 1: hostname = 'mx.example.com?': control character in value" },
	{ "timezone = Mars/Olympus_Mons\n", { NULL }, 0,
	    PFX "test.conf line 1: timezone = 'Mars/Olympus_Mons': unknown time zone" },
	{ "timezone = ../../etc/passwd\n", { NULL }, 0,
	    PFX "test.conf line 1: timezone = '../../etc/passwd': not an IANA time zone name" },
	{ "timezone = /etc/localtime\n", { NULL }, 0,
	    PFX "test.conf line 1: timezone = '/etc/localtime': not an IANA time zone name" },
	{ "timezone = Europe/../UTC\n", { NULL }, 0,
	    PFX "test.conf line 1: timezone = 'Europe/../UTC': not an IANA time zone name" },
	{ "timezone = Europe\n", { NULL }, 0,
	    PFX "test.conf line 1: timezone = 'Europe': unknown time zone" },
	{ "timezone = CET CEST\n", { NULL }, 0,
	    PFX "test.conf line 1: timezone = 'CET CEST': not an IANA time zone name" },
	{ "maillog_filename = ../maillog\n", { NULL }, 0,
	    PFX "test.conf line 1: maillog_filename = '../maillog': '.' and '..' are not allowed "
	    "(the file stays inside log_dir)" },
	{ "maillog_filename = logs/\n", { NULL }, 0,
	    PFX "test.conf line 1: maillog_filename = 'logs/': must name a file, not a directory" },
	{ "mail_owner =\n", { NULL }, 0, PFX "test.conf line 1: mail_owner = '': expected a user name" },
	{ "mail_owner = mail user\n", { NULL }, 0,
	    PFX "test.conf line 1: mail_owner = 'mail user': expected a user name" },
	{ "smart_relay_tls = none\n", { NULL }, 0,
	    PFX "test.conf line 1: smart_relay_tls = 'none': expected may, encrypt or verify" },
	{ "destination_rate_limit = 5/w\n", { NULL }, 0,
	    PFX "test.conf line 1: destination_rate_limit = '5/w': expected N/UNIT with N from 1 "
	    "to 1000000 and UNIT s, m, h or d (e.g. 100/m), or none" },
	{ "smart_relay_auth = cram-md5\n", { NULL }, 0,
	    PFX "test.conf line 1: smart_relay_auth = 'cram-md5': expected xoauth2 or an empty "
	    "value (PLAIN or LOGIN)" },
	{ "smart_relay_username = u\n", { NULL }, 0,
	    PFX "test.conf: smart_relay_username needs smart_relay_password or "
	    "smart_relay_password_file" },
	{ "smart_relay_username = u\nsmart_relay_password = p\nsmart_relay_password_file = f\n",
	    { NULL }, 0, PFX "test.conf: smart_relay_password and smart_relay_password_file are "
	    "both set; use one" },
	{ "smart_relay_auth = xoauth2\nsmart_relay_username = u\nsmart_relay_password = p\n",
	    { NULL }, 0, PFX "test.conf: smart_relay_auth = xoauth2 needs smart_relay_username "
	    "and smart_relay_password_file (the token file)" },
	/* a relay password is never echoed */
	{ "smart_relay_password = \"top\tsecret\"\n", { NULL }, 0,
	    PFX "test.conf line 1: smart_relay_password: control character in value" },
	{ "ui_hosts = a.example, bad_host\n", { NULL }, 0,
	    PFX "test.conf line 1: ui_hosts = 'a.example, bad_host': expected host names "
	    "separated by commas or spaces" },
	{ "ui_max_connections = 0\n", { NULL }, 0,
	    PFX "test.conf line 1: ui_max_connections = '0': expected a number from 1 to 100000" },
	{ "smtpd_proxy_protocol = v2\n", { NULL }, 0,
	    PFX "test.conf line 1: smtpd_proxy_protocol = 'v2': expected haproxy or an empty value" },
	{ "username = a:b\n", { NULL }, 0,
	    PFX "test.conf line 1: username = 'a:b': ':' is not allowed in a user name (HTTP basic auth)" },
	/* a password is never echoed */
	{ "password = \"top\tsecret\"\n", { NULL }, 0,
	    PFX "test.conf line 1: password: control character in value" },
	{ "", { "MTA_PASSWORD=top\x01secret", NULL }, 0,
	    PFX "environment variable MTA_PASSWORD: password: control character in value" },

	/* environment values */
	{ "", { "MTA_SMTPD_TIMEOUT=abc", NULL }, 0,
	    PFX "environment variable MTA_SMTPD_TIMEOUT: smtpd_timeout = 'abc': " DUR("1s", "1d") },
	{ "", { "MTA_LOGS_ENABLED=1", NULL }, 0,
	    PFX "environment variable MTA_LOGS_ENABLED: logs_enabled = '1': expected yes or no" },

	/* cross-property checks, in their order */
	{ "", { NULL }, NOBASE, PFX "test.conf: data_dir is not set (it is mandatory)" },
	{ "data_dir =\n", { NULL }, NOBASE, PFX "test.conf: data_dir is not set (it is mandatory)" },
	{ "", { "MTA_DATA_DIR=", NULL }, 0, PFX "test.conf: data_dir is not set (it is mandatory)" },
	{ "key_dir = /k\nfs_dir = /f\n", { NULL }, 0,
	    PFX "test.conf: key_dir and fs_dir are both set; use one key store" },
	{ "key_dir = /k\n", { "MTA_FS_DIR=/f", NULL }, 0,
	    PFX "test.conf: key_dir and fs_dir are both set; use one key store" },
	{ "retry_min_backoff = 5000\n", { NULL }, 0,
	    PFX "test.conf: retry_min_backoff (5000s) is greater than retry_max_backoff (4000s)" },
	{ "retry_min_backoff = 2h\nretry_max_backoff = 1h\n", { NULL }, 0,
	    PFX "test.conf: retry_min_backoff (7200s) is greater than retry_max_backoff (3600s)" },
	{ "smtpd_proxy_protocol = haproxy\n", { NULL }, 0,
	    PFX "test.conf: smtpd_proxy_protocol = haproxy needs smtpd_proxy_networks "
	    "(the load balancers whose PROXY header is believed)" },
	{ "smtpd_proxy_protocol = haproxy\nsmtpd_proxy_networks =\n", { NULL }, 0,
	    PFX "test.conf: smtpd_proxy_protocol = haproxy needs smtpd_proxy_networks "
	    "(the load balancers whose PROXY header is believed)" },
	{ "smtpd_proxy_networks = 10.0.0.0/33\n", { NULL }, 0,
	    PFX "test.conf line 1: smtpd_proxy_networks: prefix length out of range: '10.0.0.0/33'" },
	{ "logs_enabled = yes\n", { NULL }, 0, LOGS_ERR },
	{ "logs_enabled = yes\nlog_dir =\n", { NULL }, 0, LOGS_ERR },
	{ "", { "MTA_LOGS_ENABLED=yes", NULL }, 0, LOGS_ERR },
	{ "ssl_disabled = no\n", { NULL }, 0, KEYS_UNDEF_ERR },
	{ "ssl_disabled = no\nssl_key_file = key.pem\n", { NULL }, 0, KEYS_UNDEF_ERR },
	{ "ssl_disabled = no\nssl_cert_file = cert.pem\n", { NULL }, 0, KEYS_UNDEF_ERR },
	{ "logs_enabled = yes\nssl_disabled = no\n", { NULL }, 0, LOGS_ERR },
	{ "logs_enabled = yes\n", { NULL }, NOBASE, PFX "test.conf: data_dir is not set (it is mandatory)" },
};

static void
test_errors(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(error_rows) / sizeof(error_rows[0]); i++) {
		char err[2048];
		struct config *cfg = parse(error_rows[i].conf, strlen(error_rows[i].conf),
		    error_rows[i].env, error_rows[i].nobase, err, sizeof(err));

		if (cfg != NULL) {
			print_error("row %zu '%s': got success, want '%s'\n", i, error_rows[i].conf,
			    error_rows[i].want);
			failed++;
			config_free(cfg);
			continue;
		}
		if (strcmp(err, error_rows[i].want) != 0) {
			print_error("row %zu:\n  got  '%s'\n  want '%s'\n", i, err, error_rows[i].want);
			failed++;
		}
	}
	print_message("%zu error rows\n", sizeof(error_rows) / sizeof(error_rows[0]));
	assert_int_equal(failed, 0);
}

/* ---- the struct itself: defaults and parsed forms as consumers see them --- */

static void
test_struct_defaults(void **state)
{
	char err[2048];
	struct config *cfg = parse("", 0, NULL, 0, err, sizeof(err));
	const struct sockaddr_in *sin;
	const struct {
		const char *name;
		unsigned long long got, want;
	} rows[] = {
		{ "logs_enabled", 0, 0 },
		{ "ui_port", 0, 80 },
		{ "ssl_disabled", 0, 1 },
		{ "n_smtp_listen", 0, 1 },
		{ "n_smtps_listen", 0, 1 },
		{ "relay_smtp_port", 0, 25 },
		{ "n_dns_servers", 0, 0 },
		{ "message_size_limit", 0, 10240000 },
		{ "smtpd_recipient_limit", 0, 1000 },
		{ "smtpd_client_connection_limit", 0, 50 },
		{ "smtpd_max_sessions", 0, 10000 },
		{ "smtpd_timeout", 0, 300 },
		{ "retry_min_backoff", 0, 300 },
		{ "retry_max_backoff", 0, 4000 },
		{ "queue_lifetime", 0, 5 * 86400 },
		{ "delay_warning_time", 0, 0 },
		{ "destination_concurrency", 0, 20 },
		{ "smtp_connect_timeout", 0, 30 },
		{ "smtpd_proxy_protocol", 0, 0 },
		{ "smart_relay.set", 0, 0 },
		{ "cc_mta.set", 0, 0 },
	};
	unsigned long long got[sizeof(rows) / sizeof(rows[0])];
	int failed = 0;

	(void)state;
	assert_non_null(cfg);
	got[0] = (unsigned long long)cfg->logs_enabled;
	got[1] = (unsigned long long)cfg->ui_port;
	got[2] = (unsigned long long)cfg->ssl_disabled;
	got[3] = cfg->n_smtp_listen;
	got[4] = cfg->n_smtps_listen;
	got[5] = (unsigned long long)cfg->relay_smtp_port;
	got[6] = cfg->n_dns_servers;
	got[7] = cfg->message_size_limit;
	got[8] = cfg->smtpd_recipient_limit;
	got[9] = cfg->smtpd_client_connection_limit;
	got[10] = cfg->smtpd_max_sessions;
	got[11] = cfg->smtpd_timeout;
	got[12] = cfg->retry_min_backoff;
	got[13] = cfg->retry_max_backoff;
	got[14] = cfg->queue_lifetime;
	got[15] = cfg->delay_warning_time;
	got[16] = cfg->destination_concurrency;
	got[17] = cfg->smtp_connect_timeout;
	got[18] = (unsigned long long)cfg->smtpd_proxy_protocol;
	got[19] = (unsigned long long)cfg->smart_relay.set;
	got[20] = (unsigned long long)cfg->cc_mta.set;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		if (got[i] != rows[i].want) {
			print_error("%s: got %llu, want %llu\n", rows[i].name, got[i], rows[i].want);
			failed++;
		}
	}
	/* Strings are never NULL, so consumers need no NULL checks. */
	const char *strs[] = { cfg->path, cfg->hostname, cfg->maillog_filename, cfg->username,
	    cfg->password, cfg->ssl_key_file, cfg->ssl_cert_file, cfg->timezone, cfg->data_dir,
	    cfg->key_dir, cfg->fs_dir, cfg->log_dir, cfg->ui_address, cfg->metrics_push,
	    cfg->mail_owner, cfg->smart_relay_tls, cfg->ui_hosts };
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		if (strs[i] == NULL) {
			print_error("string %zu: got NULL, want a string\n", i);
			failed++;
		}
	}
	assert_string_equal(cfg->hostname, sys_hostname);
	assert_string_equal(cfg->path, "test.conf");
	assert_non_null(cfg->smtpd_trusted_networks);
	sin = (const struct sockaddr_in *)&cfg->smtp_listen[0].ss;
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 25);
	assert_int_equal(sin->sin_addr.s_addr, htonl(INADDR_ANY));
	assert_int_equal(cfg->smtp_listen[0].len, sizeof(struct sockaddr_in));
	assert_string_equal(cfg->smtp_listen[0].text, "0.0.0.0:25");
	assert_string_equal(cfg->smtps_listen[0].text, "0.0.0.0:465");
	config_free(cfg);
	assert_int_equal(failed, 0);
}

static void
test_struct_parsed(void **state)
{
	const char *conf =
	    "smart_relay = [2001:db8::1]:587\n"
	    "cc_mta = archive.example.org\n"
	    "smtp_listen = [::1]:2525, 127.0.0.1:2526\n"
	    "dns_servers = 127.0.0.1:5353 ::1\n"
	    "smtpd_proxy_protocol = haproxy\n"
	    "smtpd_proxy_networks = 10.9.9.9\n"
	    "smtpd_trusted_networks = 10.0.0.0/8\n"
	    "ui_address = [::1]\n";
	char err[2048];
	struct config *cfg = parse(conf, strlen(conf), NULL, 0, err, sizeof(err));
	const struct sockaddr_in6 *s6;
	const struct sockaddr_in *s4;
	struct sockaddr_in probe;

	(void)state;
	assert_non_null(cfg);
	assert_int_equal(cfg->smart_relay.set, 1);
	assert_string_equal(cfg->smart_relay.host, "2001:db8::1");
	assert_int_equal(cfg->smart_relay.port, 587);
	assert_int_equal(cfg->smart_relay.no_mx, 1);
	assert_int_equal(cfg->cc_mta.set, 1);
	assert_string_equal(cfg->cc_mta.host, "archive.example.org");
	assert_int_equal(cfg->cc_mta.port, 0);
	assert_int_equal(cfg->cc_mta.no_mx, 0);
	assert_int_equal(cfg->n_smtp_listen, 2);
	s6 = (const struct sockaddr_in6 *)&cfg->smtp_listen[0].ss;
	assert_int_equal(s6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(s6->sin6_port), 2525);
	assert_int_equal(cfg->smtp_listen[0].len, sizeof(struct sockaddr_in6));
	assert_true(IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr));
	s4 = (const struct sockaddr_in *)&cfg->smtp_listen[1].ss;
	assert_int_equal(ntohs(s4->sin_port), 2526);
	assert_int_equal(cfg->n_dns_servers, 2);
	assert_int_equal(ntohs(((const struct sockaddr_in *)&cfg->dns_servers[0].ss)->sin_port), 5353);
	assert_int_equal(ntohs(((const struct sockaddr_in6 *)&cfg->dns_servers[1].ss)->sin6_port), 53);
	assert_int_equal(cfg->smtpd_proxy_protocol, 1);
	assert_string_equal(cfg->ui_address, "::1");
	memset(&probe, 0, sizeof(probe));
	probe.sin_family = AF_INET;
	probe.sin_addr.s_addr = htonl(0x0a010203);
	assert_int_equal(cidr_list_match(cfg->smtpd_trusted_networks, (struct sockaddr *)&probe), 1);
	probe.sin_addr.s_addr = htonl(0x7f000001);
	assert_int_equal(cidr_list_match(cfg->smtpd_trusted_networks, (struct sockaddr *)&probe), 0);
	config_free(cfg);
}

/* ---- the public value parsers ------------------------------------------ */

static const struct {
	const char *in;
	int ok;
	unsigned want;
} duration_rows[] = {
	{ "0", 1, 0 }, { "300", 1, 300 }, { "300s", 1, 300 }, { "5m", 1, 300 },
	{ "4h", 1, 14400 }, { "5d", 1, 432000 }, { "5D", 1, 432000 }, { "1S", 1, 1 },
	{ "4294967295", 1, 4294967295u }, { "49710d", 1, 49710u * 86400u },
	{ "4294967296", 0, 0 }, { "49711d", 0, 0 }, { "", 0, 0 }, { "s", 0, 0 },
	{ "5ms", 0, 0 }, { "5 s", 0, 0 }, { " 5", 0, 0 }, { "5 ", 0, 0 }, { "-5", 0, 0 },
	{ "+5", 0, 0 }, { "1w", 0, 0 }, { "1y", 0, 0 }, { "0x10", 0, 0 }, { "1.5h", 0, 0 },
	{ "99999999999999999999999999", 0, 0 },
};

static void
test_duration(void **state)
{
	int failed = 0;

	(void)state;
	assert_int_equal(config_value_parse_duration(NULL, NULL), -1);
	for (size_t i = 0; i < sizeof(duration_rows) / sizeof(duration_rows[0]); i++) {
		unsigned got = 12345;
		int r = config_value_parse_duration(duration_rows[i].in, &got);

		if (duration_rows[i].ok && (r != 0 || got != duration_rows[i].want)) {
			print_error("row %zu '%s': got r=%d %u, want %u\n", i, duration_rows[i].in, r,
			    got, duration_rows[i].want);
			failed++;
		} else if (!duration_rows[i].ok && r != -1) {
			print_error("row %zu '%s': got %u, want an error\n", i, duration_rows[i].in, got);
			failed++;
		}
	}
	/* the printed form reads back to the same number */
	for (unsigned s = 0; s < 200000; s += 997) {
		char buf[32];
		unsigned back;

		assert_int_equal(config_value_format_duration(s, buf, sizeof(buf)), 0);
		assert_int_equal(config_value_parse_duration(buf, &back), 0);
		if (back != s) {
			print_error("format %u -> '%s' -> %u\n", s, buf, back);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

static const struct {
	const char *in;
	int ok;
	const char *host;
	int port, no_mx, set;
} relay_rows[] = {
	{ "", 1, "", 0, 0, 0 },
	{ "relay.example.com", 1, "relay.example.com", 0, 0, 1 },
	{ "relay.example.com:587", 1, "relay.example.com", 587, 0, 1 },
	{ "[relay.example.com]", 1, "relay.example.com", 0, 1, 1 },
	{ "[relay.example.com]:2525", 1, "relay.example.com", 2525, 1, 1 },
	{ "[2001:db8::1]:587", 1, "2001:db8::1", 587, 1, 1 },
	{ "[2001:db8::1]", 1, "2001:db8::1", 0, 1, 1 },
	{ "[192.0.2.1]", 1, "192.0.2.1", 0, 1, 1 },
	{ "192.0.2.1", 1, "192.0.2.1", 0, 1, 1 },
	{ "192.0.2.1:26", 1, "192.0.2.1", 26, 1, 1 },
	{ "relay", 1, "relay", 0, 0, 1 },
	{ "relay.example.com.", 1, "relay.example.com.", 0, 0, 1 },
	{ "relay.example.com:65535", 1, "relay.example.com", 65535, 0, 1 },
	{ "xn--bcher-kva.example", 1, "xn--bcher-kva.example", 0, 0, 1 },
	/* implicit TLS: port 465 unless given, never an MX lookup */
	{ "smtps://relay.example.com", 1, "relay.example.com", 465, 1, 1 },
	{ "smtps://relay.example.com:4650", 1, "relay.example.com", 4650, 1, 1 },
	{ "smtps://[relay.example.com]", 1, "relay.example.com", 465, 1, 1 },
	{ "smtps://[2001:db8::1]:465", 1, "2001:db8::1", 465, 1, 1 },
	{ "smtps://", 0, NULL, 0, 0, 0 },
	{ "smtps://relay.example.com/", 0, NULL, 0, 0, 0 },
	{ "smtps:/relay.example.com", 0, NULL, 0, 0, 0 },
	{ "SMTPS://relay.example.com", 0, NULL, 0, 0, 0 },
	{ "2001:db8::1", 0, NULL, 0, 0, 0 },
	{ "2001:db8::1:25", 0, NULL, 0, 0, 0 },
	{ "[2001:db8::1", 0, NULL, 0, 0, 0 },
	{ "[relay.example.com]x", 0, NULL, 0, 0, 0 },
	{ "[relay.example.com]:", 0, NULL, 0, 0, 0 },
	{ "relay.example.com:0", 0, NULL, 0, 0, 0 },
	{ "relay.example.com:65536", 0, NULL, 0, 0, 0 },
	{ "relay.example.com:25x", 0, NULL, 0, 0, 0 },
	{ "relay.example.com:-25", 0, NULL, 0, 0, 0 },
	{ "relay.example.com:+25", 0, NULL, 0, 0, 0 },
	{ "relay.example.com: 25", 0, NULL, 0, 0, 0 },
	{ "relay .example.com", 0, NULL, 0, 0, 0 },
	{ "relay..example.com", 0, NULL, 0, 0, 0 },
	{ ".relay.example.com", 0, NULL, 0, 0, 0 },
	{ "-relay.example.com", 0, NULL, 0, 0, 0 },
	{ "relay-.example.com", 0, NULL, 0, 0, 0 },
	{ "relay_1.example.com", 0, NULL, 0, 0, 0 },
	{ "relay.example.123", 0, NULL, 0, 0, 0 },
	{ "999.1.1.1", 0, NULL, 0, 0, 0 },
	{ "[]", 0, NULL, 0, 0, 0 },
	{ "[]:25", 0, NULL, 0, 0, 0 },
	{ ":25", 0, NULL, 0, 0, 0 },
	{ "user@relay.example.com", 0, NULL, 0, 0, 0 },
	{ "[[::1]]", 0, NULL, 0, 0, 0 },
	{ "r\xc3\xa9lay.example", 0, NULL, 0, 0, 0 },
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example", 0, NULL, 0, 0, 0 },
};

static void
test_relay(void **state)
{
	int failed = 0;
	struct relay_target t;
	char name[300];

	(void)state;
	for (size_t i = 0; i < sizeof(relay_rows) / sizeof(relay_rows[0]); i++) {
		int r;

		memset(&t, 0xa5, sizeof(t));
		r = config_value_parse_relay(relay_rows[i].in, &t);
		if (!relay_rows[i].ok) {
			if (r != -1) {
				print_error("row %zu '%s': got host '%s', want an error\n", i,
				    relay_rows[i].in, t.host);
				failed++;
			}
			continue;
		}
		if (r != 0 || t.set != relay_rows[i].set || t.port != relay_rows[i].port ||
		    t.no_mx != relay_rows[i].no_mx || strcmp(t.host, relay_rows[i].host) != 0) {
			print_error("row %zu '%s': got r=%d set=%d host='%s' port=%d no_mx=%d, "
			    "want set=%d host='%s' port=%d no_mx=%d\n", i, relay_rows[i].in, r, t.set,
			    r == 0 ? t.host : "", t.port, t.no_mx, relay_rows[i].set, relay_rows[i].host,
			    relay_rows[i].port, relay_rows[i].no_mx);
			failed++;
		}
	}
	/* the longest legal name (253 octets) fits, 254 does not */
	for (int len = 253; len <= 254; len++) {
		int o = 0;

		while (o < len) {
			int chunk = len - o > 63 ? 63 : len - o;

			if (o > 0) {
				name[o - 1] = '.';
			}
			memset(name + o, 'a', (size_t)chunk);
			o += chunk + 1;
		}
		name[len] = '\0';
		if (name[len - 1] == '.')
			name[len - 1] = 'a';
		assert_int_equal(strlen(name), (size_t)len);
		assert_int_equal(config_value_parse_relay(name, &t), len == 253 ? 0 : -1);
	}
	assert_int_equal(config_value_parse_relay(NULL, &t), -1);
	assert_int_equal(failed, 0);
}

static const struct {
	const char *in;
	int default_port;
	const char *want;       /* the texts joined by " ", NULL = error */
} listen_rows[] = {
	{ "0.0.0.0:25", 0, "0.0.0.0:25" },
	{ "[::]:25", 0, "[::]:25" },
	{ "127.0.0.1:2525,[::1]:2525", 0, "127.0.0.1:2525 [::1]:2525" },
	{ " 127.0.0.1:1 , , [::1]:2 ", 0, "127.0.0.1:1 [::1]:2" },
	{ "", 0, "" },
	{ "[::ffff:127.0.0.1]:25", 0, "[::ffff:127.0.0.1]:25" },
	{ "127.0.0.1", 0, NULL },
	{ "127.0.0.1:", 0, NULL },
	{ "127.0.0.1:65536", 0, NULL },
	{ "127.0.0.1:25:25", 0, NULL },
	{ "[::1]", 0, NULL },
	{ "::1", 0, NULL },
	{ "*:25", 0, NULL },
	{ "example.com:25", 0, NULL },
	{ "[127.0.0.1]:25", 0, NULL },
	{ "127.0.0.1:25 127.0.0.1:25", 0, NULL },
	{ "127.0.0.1", 53, "127.0.0.1:53" },
	{ "::1", 53, "[::1]:53" },
	{ "[::1]", 53, "[::1]:53" },
	{ "[::1]:5353", 53, "[::1]:5353" },
	{ "2001:db8::53 192.0.2.53:5353", 53, "[2001:db8::53]:53 192.0.2.53:5353" },
	{ "ns.example", 53, NULL },
	{ "[::1]:", 53, NULL },
	{ "1.2.3.4:0", 53, NULL },
};

static void
test_listen(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(listen_rows) / sizeof(listen_rows[0]); i++) {
		struct listen_addr arr[CONFIG_MAX_LISTEN];
		char why[128] = "", got[1024] = "";
		size_t n = 99, o = 0;
		int r = config_value_listen(listen_rows[i].in, arr, CONFIG_MAX_LISTEN, &n,
		    listen_rows[i].default_port, why, sizeof(why));

		if (listen_rows[i].want == NULL) {
			if (r != -1 || why[0] == '\0') {
				print_error("row %zu '%s': got r=%d, want an error with a reason\n", i,
				    listen_rows[i].in, r);
				failed++;
			}
			continue;
		}
		for (size_t j = 0; r == 0 && j < n; j++) {
			int k = util_bsnprintf(got + o, sizeof(got) - o, "%s%s", j ? " " : "",
			    arr[j].text);
			assert_true(k >= 0);
			o += (size_t)k;
		}
		if (r != 0 || strcmp(got, listen_rows[i].want) != 0) {
			print_error("row %zu '%s': got r=%d '%s' (%s), want '%s'\n", i,
			    listen_rows[i].in, r, got, why, listen_rows[i].want);
			failed++;
		}
	}
	/* CONFIG_MAX_LISTEN addresses fit, one more does not */
	{
		char text[2048];
		struct listen_addr arr[CONFIG_MAX_LISTEN];
		char why[128];
		size_t n, o = 0;

		for (int i = 0; i <= CONFIG_MAX_LISTEN; i++) {
			int k = util_bsnprintf(text + o, sizeof(text) - o, "%s127.0.0.1:%d",
			    i ? "," : "", 1000 + i);
			assert_true(k > 0);
			o += (size_t)k;
		}
		assert_int_equal(config_value_listen(text, arr, CONFIG_MAX_LISTEN, &n, 0, why,
		    sizeof(why)), -1);
		assert_string_equal(why, "too many addresses");
		*strrchr(text, ',') = '\0';
		assert_int_equal(config_value_listen(text, arr, CONFIG_MAX_LISTEN, &n, 0, why,
		    sizeof(why)), 0);
		assert_int_equal(n, CONFIG_MAX_LISTEN);
	}
	assert_int_equal(failed, 0);
}

static const struct {
	const char *in;
	int ok;
} hostname_rows[] = {
	{ "a", 1 }, { "mx", 1 }, { "mx.example.com", 1 }, { "mx.example.com.", 1 },
	{ "MX-1.Example.COM", 1 }, { "1mx.example", 1 }, { "a.b.c.d.e.f.g", 1 },
	{ "xn--80ak6aa92e.com", 1 }, { "123.example", 1 },
	{ "", 0 }, { ".", 0 }, { "..", 0 }, { "a..b", 0 }, { ".a", 0 }, { "-a", 0 },
	{ "a-", 0 }, { "a-.b", 0 }, { "a.-b", 0 }, { "a_b", 0 }, { "a b", 0 },
	{ "a/b", 0 }, { "a:b", 0 }, { "1.2.3.4", 0 }, { "123", 0 }, { "a.123", 0 },
	{ "a.b.", 1 }, { "a.b..", 0 }, { "\xc3\xa9", 0 }, { "a\r\n", 0 },
};

static void
test_hostname(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(hostname_rows) / sizeof(hostname_rows[0]); i++) {
		int got = config_value_hostname(hostname_rows[i].in, strlen(hostname_rows[i].in));

		if (got != hostname_rows[i].ok) {
			print_error("row %zu '%s': got %d, want %d\n", i, hostname_rows[i].in, got,
			    hostname_rows[i].ok);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

/* ---- helpers for the file-system tests ---------------------------------- */

static char tmp_root[256];

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	remove(path);
	return 0;
}

static void
rm_tree(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void
tpath(char *buf, size_t size, const char *rel)
{
	assert_true(util_bsnprintf(buf, size, "%s/%s", tmp_root, rel) > 0);
}

static void
write_file(const char *rel, const char *text, size_t len)
{
	char p[512];
	FILE *f;

	tpath(p, sizeof(p), rel);
	f = fopen(p, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static int
setup_tmp(void **state)
{
	const char *base = getenv("TMPDIR");

	(void)state;
	if (base == NULL || base[0] == '\0')
		base = "/tmp";
	if (util_bsnprintf(tmp_root, sizeof(tmp_root), "%s/test_config.XXXXXX", base) < 0 ||
	    mkdtemp(tmp_root) == NULL)
		return -1;
	return 0;
}

static int
teardown_tmp(void **state)
{
	(void)state;
	rm_tree(tmp_root);
	return 0;
}

/* ---- config_load: reading the file -------------------------------------- */

static void
test_load(void **state)
{
	char err[2048], want[2048], p[512], dir[512];
	char *const env[] = { NULL };
	struct config *cfg;
	static char big[CONFIG_FILE_MAX + 2];

	(void)state;
	write_file("ok.conf", "data_dir = /d\nui_port = 81\n", 26);
	tpath(p, sizeof(p), "ok.conf");
	cfg = config_load(p, env, err, sizeof(err));
	assert_non_null(cfg);
	assert_string_equal(cfg->path, p);
	assert_int_equal(cfg->ui_port, 81);
	config_free(cfg);

	tpath(p, sizeof(p), "missing.conf");
	assert_null(config_load(p, env, err, sizeof(err)));
	assert_true(util_bsnprintf(want, sizeof(want), PFX "%s: No such file or directory", p) > 0);
	assert_string_equal(err, want);

	tpath(dir, sizeof(dir), "");
	assert_null(config_load(dir, env, err, sizeof(err)));
	assert_true(util_bsnprintf(want, sizeof(want), PFX "%s: not a regular file", dir) > 0);
	assert_string_equal(err, want);

	/* an error names the real file and line */
	write_file("bad.conf", "data_dir = /d\n\n# x\nbogus = 1\n", 29);
	tpath(p, sizeof(p), "bad.conf");
	assert_null(config_load(p, env, err, sizeof(err)));
	assert_true(util_bsnprintf(want, sizeof(want), PFX "%s line 4: unknown property 'bogus'",
	    p) > 0);
	assert_string_equal(err, want);

	/* at most CONFIG_FILE_MAX bytes: comments up to the limit are fine, one more is not */
	memset(big, '#', sizeof(big));
	for (size_t i = 100; i < sizeof(big); i += 100)
		big[i] = '\n';
	memcpy(big, "data_dir = /d\n", 14);
	write_file("big.conf", big, CONFIG_FILE_MAX);
	tpath(p, sizeof(p), "big.conf");
	cfg = config_load(p, env, err, sizeof(err));
	assert_non_null(cfg);
	config_free(cfg);
	write_file("big.conf", big, CONFIG_FILE_MAX + 1);
	assert_null(config_load(p, env, err, sizeof(err)));
	assert_true(util_bsnprintf(want, sizeof(want), PFX "%s: file too large (more than %d bytes)",
	    p, CONFIG_FILE_MAX) > 0);
	assert_string_equal(err, want);
	/* the same bound without the file */
	assert_null(config_parse_buffer("b.conf", big, CONFIG_FILE_MAX + 1, env, err, sizeof(err)));
	assert_string_equal(err, PFX "b.conf: file too large (more than 1048576 bytes)");

	/* envp may be NULL; a tiny err buffer is still terminated */
	cfg = config_parse_buffer("n.conf", "data_dir = /d\n", 14, NULL, err, sizeof(err));
	assert_non_null(cfg);
	config_free(cfg);
	{
		char tiny[8];

		assert_null(config_parse_buffer("n.conf", "x", 1, NULL, tiny, sizeof(tiny)));
		assert_true(strlen(tiny) < sizeof(tiny));
	}
	assert_null(config_free(NULL));
}

/* Lines: the bound, NUL bytes, a missing final newline, CR LF. */
static void
test_lines(void **state)
{
	static char line[CONFIG_LINE_MAX + 64];
	char err[2048];
	struct config *cfg;
	size_t n;

	(void)state;
	/* exactly CONFIG_LINE_MAX octets: fine */
	memcpy(line, "username = ", 11);
	memset(line + 11, 'u', CONFIG_LINE_MAX - 11);
	n = CONFIG_LINE_MAX;
	line[n++] = '\n';
	cfg = parse(line, n, NULL, 0, err, sizeof(err));
	assert_non_null(cfg);
	assert_int_equal(strlen(cfg->username), CONFIG_LINE_MAX - 11);
	config_free(cfg);
	/* one more: an error naming the line */
	memcpy(line, "# x\nusername = ", 15);
	memset(line + 15, 'u', CONFIG_LINE_MAX - 10);
	n = CONFIG_LINE_MAX + 5;
	line[n++] = '\n';
	assert_null(parse(line, n, NULL, 0, err, sizeof(err)));
	assert_string_equal(err, PFX "test.conf line 2: line too long (more than 8192 bytes)");
	/* with a CR before the LF, the limit is on the line without LF */
	memcpy(line, "username = ", 11);
	memset(line + 11, 'u', CONFIG_LINE_MAX - 12);
	n = CONFIG_LINE_MAX - 1;
	line[n++] = '\r';
	line[n++] = '\n';
	cfg = parse(line, n, NULL, 0, err, sizeof(err));
	assert_non_null(cfg);
	config_free(cfg);

	/* a NUL byte anywhere in a line */
	assert_null(parse("ui_port = 81\nhostname = a\0b\n", 27, NULL, 0, err, sizeof(err)));
	assert_string_equal(err, PFX "test.conf line 2: NUL byte in line");
	assert_null(parse("# comment \0 too\n", 16, NULL, 0, err, sizeof(err)));
	assert_string_equal(err, PFX "test.conf line 1: NUL byte in line");

	/* the buffer need not be terminated: only len bytes are read */
	cfg = parse("ui_port = 81XXXX", 12, NULL, 0, err, sizeof(err));
	assert_non_null(cfg);
	assert_int_equal(cfg->ui_port, 81);
	config_free(cfg);

	/* a long environment value is refused */
	{
		static char ev[CONFIG_LINE_MAX + 32];
		const char *env[] = { ev, NULL };

		memcpy(ev, "MTA_USERNAME=", 13);
		memset(ev + 13, 'u', CONFIG_LINE_MAX + 1);
		ev[13 + CONFIG_LINE_MAX + 1] = '\0';
		assert_null(parse("", 0, env, 0, err, sizeof(err)));
		assert_string_equal(err, PFX "environment variable MTA_USERNAME: value too long");
	}
}

/* config_print output reads back to the same configuration (password aside). */
static void
test_print_roundtrip(void **state)
{
	const char *conf =
	    "hostname = mx.example.com\n"
	    "logs_enabled = yes\n"
	    "log_dir = \"/mnt/log share\"\n"
	    "maillog_filename = \"odd#name\"\n"
	    "smtpd_trusted_networks = 127.0.0.0/8, ::1, 10.0.0.0/8\n"
	    "smart_relay = [2001:db8::25]:587\n"
	    "cc_mta = cc.example.net:2525\n"
	    "username = \" admin \"\n"
	    "password = \"p\\\"w\"\n"
	    "ui_port = 8080\n"
	    "ssl_disabled = no\n"
	    "ssl_key_file = key.pem\n"
	    "ssl_cert_file = cert.pem\n"
	    "timezone = Europe/Berlin\n"
	    "data_dir = /var/spool/mtad\n"
	    "key_dir = /keys\n"
	    "smtp_listen = 127.0.0.1:25, [::1]:25\n"
	    "smtps_listen =\n"
	    "ui_address = ::1\n"
	    "relay_smtp_port = 2525\n"
	    "dns_servers = 127.0.0.1:5353 ::1\n"
	    "metrics_push = udp://127.0.0.1:8125\n"
	    "message_size_limit = 1000000\n"
	    "smtpd_recipient_limit = 50\n"
	    "smtpd_client_connection_limit = 5\n"
	    "smtpd_max_sessions = 500\n"
	    "smtpd_timeout = 90\n"
	    "retry_min_backoff = 1m\n"
	    "retry_max_backoff = 2h\n"
	    "queue_lifetime = 3d\n"
	    "delay_warning_time = 4h\n"
	    "destination_concurrency = 5\n"
	    "smtp_connect_timeout = 10s\n"
	    "maillog_stdout = yes\n"
	    "drain_relay = [10.1.2.3]:2525\n"
	    "drain_timeout = 2m\n"
	    "smtpd_proxy_protocol = haproxy\n"
	    "smtpd_proxy_networks = 192.0.2.0/24, 2001:db8::/32\n"
	    "mail_owner = nobody\n"
	    "smart_relay_tls = encrypt\n"
	    "ui_hosts = mta.example.com ui.example.com\n"
	    "ui_max_connections = 64\n"
	    "submission_listen = 127.0.0.1:587\n"
	    "smtpd_users_file = users\n"
	    "dkim_key_table = dkim/keytable\n"
	    "smart_relay_ca_file = relay-ca.pem\n"
	    "smart_relay_username = relay-user\n"
	    "smart_relay_password = \"s3cret pw\"\n"
	    "smart_relay_auth = \n"
	    "sender_relay_map = senders.map\n"
	    "smtp_tls_session_cache = no\n"
	    "destination_rate_limit = 100/m\n"
	    "destination_policy_file = limits/policy\n";
	char err[2048], out1[16384], out2[16384];
	struct config *a, *b;
	FILE *f;
	size_t n1, n2, lines = 0;

	(void)state;
	a = parse(conf, strlen(conf), NULL, NOBASE, err, sizeof(err));
	if (a == NULL)
		fail_msg("got '%s', want success", err);
	f = tmpfile();
	config_print(a, fileno(f));
	rewind(f);
	n1 = fread(out1, 1, sizeof(out1) - 1, f);
	fclose(f);
	out1[n1] = '\0';
	for (size_t i = 0; i < n1; i++)
		lines += out1[i] == '\n';
	assert_int_equal(lines, 56);            /* every property, one line each */
	assert_non_null(strstr(out1, "\ndestination_rate_limit = 100/m\n"));
	assert_non_null(strstr(out1, "\npassword = ********\n"));
	assert_non_null(strstr(out1, "\nsmart_relay_password = ********\n"));
	assert_null(strstr(out1, "s3cret"));
	assert_null(strstr(out1, "p\\\"w"));
	assert_non_null(strstr(out1, "\nusername = \" admin \"\n"));

	b = parse(out1, n1, NULL, NOBASE, err, sizeof(err));
	if (b == NULL)
		fail_msg("re-reading the printed configuration: got '%s'", err);
	assert_string_equal(b->password, "********");
	assert_string_equal(b->username, " admin ");
	assert_string_equal(b->log_dir, "/mnt/log share");
	assert_string_equal(b->maillog_filename, "odd#name");
	f = tmpfile();
	config_print(b, fileno(f));
	rewind(f);
	n2 = fread(out2, 1, sizeof(out2) - 1, f);
	fclose(f);
	out2[n2] = '\0';
	if (strcmp(out1, out2) != 0)
		fail_msg("print, parse, print differs:\n--- got\n%s--- want\n%s", out2, out1);
	config_free(a);
	config_free(b);
}

/* ---- time zones against a private zoneinfo tree -------------------------- */

static void
test_timezone(void **state)
{
	char zi[512], d[512];
	int failed = 0;
	const struct {
		const char *in;
		int ok;
	} rows[] = {
		{ "", 1 }, { "Test/Zone", 1 }, { "Flat", 1 }, { "UTC", 1 }, { "GMT", 1 },
		{ "Test/NotTZif", 0 }, { "Test", 0 }, { "Test/Missing", 0 }, { "../Flat", 0 },
		{ "Test/../Flat", 0 }, { "./Flat", 0 }, { "/Flat", 0 }, { "Test//Zone", 0 },
		{ "Test/Zone/", 0 }, { "Test/Zone\n", 0 }, { "Te st", 0 }, { "Test/Link", 0 },
		{ "..", 0 }, { ".", 0 },
	};

	(void)state;
	tpath(zi, sizeof(zi), "zoneinfo");
	assert_int_equal(mkdir(zi, 0755), 0);
	tpath(d, sizeof(d), "zoneinfo/Test");
	assert_int_equal(mkdir(d, 0755), 0);
	write_file("zoneinfo/Test/Zone", "TZif2\0\0\0", 8);
	write_file("zoneinfo/Flat", "TZif", 4);
	write_file("zoneinfo/Test/NotTZif", "# zone.tab\n", 11);
	tpath(d, sizeof(d), "zoneinfo/Test/Link");
	assert_int_equal(symlink("/dev/null", d), 0);   /* not a regular file */

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char why[128] = "";
		int r = config_value_timezone(rows[i].in, zi, why, sizeof(why));

		if ((r == 0) != rows[i].ok) {
			print_error("row %zu '%s': got r=%d (%s), want %s\n", i, rows[i].in, r, why,
			    rows[i].ok ? "ok" : "error");
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

/* ---- config_check_environment ------------------------------------------- */

/* make_key - a fresh P-256 key */
static EVP_PKEY *
make_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	assert_non_null(k);
	return k;
}

/* make_cert - a self-signed certificate for key */
static X509 *
make_cert(EVP_PKEY *key)
{
	X509 *x = X509_new();
	X509_NAME *name;

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	assert_int_equal(X509_set_pubkey(x, key), 1);
	name = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)"mx.test.example", -1, -1, 0), 1);
	assert_int_equal(X509_set_issuer_name(x, name), 1);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	return x;
}

static void
write_key(const char *rel, EVP_PKEY *key, const char *pass)
{
	char p[512];
	FILE *f;

	tpath(p, sizeof(p), rel);
	f = fopen(p, "w");
	assert_non_null(f);
	if (pass != NULL)
		assert_int_equal(PEM_write_PrivateKey(f, key, EVP_aes_128_cbc(),
		    (const unsigned char *)pass, (int)strlen(pass), NULL, NULL), 1);
	else
		assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
	assert_int_equal(fclose(f), 0);
}

static void
write_cert(const char *rel, X509 *x)
{
	char p[512];
	FILE *f;

	tpath(p, sizeof(p), rel);
	f = fopen(p, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, x), 1);
	assert_int_equal(fclose(f), 0);
}

static void
test_environment(void **state)
{
	char keys[512], logs[512], data[512], p[512], q[512];
	EVP_PKEY *key, *other;
	X509 *cert;
	int failed = 0;

	(void)state;
	tpath(keys, sizeof(keys), "keys");
	tpath(logs, sizeof(logs), "logs");
	tpath(data, sizeof(data), "data");
	assert_int_equal(mkdir(keys, 0755), 0);
	assert_int_equal(mkdir(logs, 0755), 0);
	tpath(p, sizeof(p), "keys/tls");
	assert_int_equal(mkdir(p, 0755), 0);
	write_file("afile", "x", 1);
	write_file("secret.pem", "not on the key store", 20);

	key = make_key();
	other = make_key();
	cert = make_cert(key);
	write_key("keys/key.pem", key, NULL);
	write_key("keys/tls/key.pem", key, NULL);
	write_cert("keys/cert.pem", cert);
	write_cert("keys/tls/cert.pem", cert);
	write_key("keys/other.pem", other, NULL);
	write_key("keys/locked.pem", key, "passphrase");
	write_file("keys/garbage.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", 58);
	write_file("keys/empty.pem", "", 0);
	{
		static const char trad[] = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
		    "DEK-Info: AES-128-CBC,8F8549AD6354BF8F484E4DA583DC9F4B\n\nAAAA\n"
		    "-----END RSA PRIVATE KEY-----\n";
		write_file("keys/trad.pem", trad, sizeof(trad) - 1);
	}
	tpath(p, sizeof(p), "keys/out.pem");
	tpath(q, sizeof(q), "secret.pem");
	assert_int_equal(symlink(q, p), 0);
	tpath(p, sizeof(p), "keys/dir.pem");
	assert_int_equal(mkdir(p, 0755), 0);
	tpath(p, sizeof(p), "keys/link.pem");
	assert_int_equal(symlink("tls/key.pem", p), 0);     /* inside the store: fine */

	const struct {
		const char *conf;       /* with %K = keys, %L = logs, %T = tmp root */
		const char *want;       /* NULL = success; else exact text with the same escapes */
	} rows[] = {
		{ "", NULL },
		{ "key_dir = %K\n", NULL },
		{ "fs_dir = %K\n", NULL },
		{ "key_dir = %T/nokeys\n",
		    "Error: failed to load key volume. (key_dir %T/nokeys: No such file or directory)" },
		{ "key_dir = %T/afile\n",
		    "Error: failed to load key volume. (key_dir %T/afile: not a directory)" },
		{ "fs_dir = %T/nofs\n",
		    "Error: failed to load key volume. (fs_dir %T/nofs: No such file or directory)" },
		{ "logs_enabled = yes\nlog_dir = %L\n", NULL },
		{ "logs_enabled = no\nlog_dir = %T/nologs\n", NULL },
		{ "logs_enabled = yes\nlog_dir = %T/nologs\n",
		    "Error: failed to mount log share. (log_dir %T/nologs: No such file or directory)" },
		{ "logs_enabled = yes\nlog_dir = %T/afile\n",
		    "Error: failed to mount log share. (log_dir %T/afile: not a directory)" },
		{ "key_dir = %T/nokeys\nlogs_enabled = yes\nlog_dir = %T/nologs\n",
		    "Error: failed to load key volume. (key_dir %T/nokeys: No such file or directory)" },
		{ "ssl_disabled = no\nkey_dir = %K\nssl_key_file = key.pem\nssl_cert_file = cert.pem\n",
		    NULL },
		{ "ssl_disabled = no\nfs_dir = %K\nssl_key_file = /tls/key.pem\n"
		    "ssl_cert_file = tls/cert.pem\n", NULL },
		{ "ssl_disabled = no\nkey_dir = %K\nssl_key_file = link.pem\nssl_cert_file = cert.pem\n",
		    NULL },
		{ "ssl_disabled = yes\nkey_dir = %K\nssl_key_file = missing.pem\n", NULL },
		{ "ssl_disabled = no\nssl_key_file = key.pem\nssl_cert_file = cert.pem\n",
		    "Error: SSL keys could not be found on key volume! (key.pem: no key store is "
		    "configured (set key_dir or fs_dir))" },
		{ "ssl_disabled = no\nkey_dir = %K\nssl_key_file = missing.pem\nssl_cert_file = cert.pem\n",
		    "Error: SSL keys could not be found on key volume! (missing.pem: No such file or directory)" },
		{ "ssl_disabled = no\nkey_dir = %K\nssl_key_file = key.pem\nssl_cert_file = missing.pem\n",
		    "Error: SSL keys could not be found on key volume! (missing.pem: No such file or directory)" },
		{ "ssl_disabled = no\nkey_dir = %K\nssl_key_file = locked.pem\nssl_cert_file = cert.pem\n",
		    "Error: SSL keys could not be found on key volume! (locked.pem: the private key is "
		    "protected by a passphrase)" },
		{ "ssl_disabled = no\nkey_dir = %K\nssl_key_file = trad.pem\nssl_cert_file = cert.pem\n",
		    "Error: SSL keys could not be found on key volume! (trad.pem: the private key is "
		    "protected by a passphrase)" },
		{ "ssl_disabled = no\nkey_dir = %K\nssl_key_file = garbage.pem\nssl_cert_file = cert.pem\n",
		    "Error: SSL keys could not be found on key volume! (garbage.pem: not a PEM private key "
		    "(or protected by a passphrase))" },
		{ "ssl_disabled = no\nkey_dir = %K\nssl_key_file = empty.pem\nssl_cert_file = cert.pem\n",
		    "Error: SSL keys could not be found on key volume! (empty.pem: not a PEM private key "
		    "(or protected by a passphrase))" },
		{ "ssl_disabled = no\nkey_dir = %K\nssl_key_file = cert.pem\nssl_cert_file = cert.pem\n",
		    "Error: SSL keys could not be found on key volume! (cert.pem: not a PEM private key "
		    "(or protected by a passphrase))" },
		{ "ssl_disabled = no\nkey_dir = %K\nssl_key_file = key.pem\nssl_cert_file = key.pem\n",
		    "Error: SSL keys could not be found on key volume! (key.pem: not a PEM certificate)" },
		{ "ssl_disabled = no\nkey_dir = %K\nssl_key_file = other.pem\nssl_cert_file = cert.pem\n",
		    "Error: SSL keys could not be found on key volume! (cert.pem: the certificate does not "
		    "match the private key)" },
		{ "ssl_disabled = no\nkey_dir = %K\nssl_key_file = ../secret.pem\nssl_cert_file = cert.pem\n",
		    "Error: SSL keys could not be found on key volume! (../secret.pem: '..' leaves the key store)" },
		{ "ssl_disabled = no\nkey_dir = %K\nssl_key_file = out.pem\nssl_cert_file = cert.pem\n",
		    "Error: SSL keys could not be found on key volume! (out.pem: the file is outside the key store)" },
		{ "ssl_disabled = no\nkey_dir = %K\nssl_key_file = dir.pem\nssl_cert_file = cert.pem\n",
		    "Error: SSL keys could not be found on key volume! (dir.pem: not a regular file)" },
		{ "ssl_disabled = no\nkey_dir = %K\nssl_key_file = missing.pem\nssl_cert_file = cert.pem\n"
		    "logs_enabled = yes\nlog_dir = %T/nologs\n",
		    "Error: failed to mount log share. (log_dir %T/nologs: No such file or directory)" },
		{ "data_dir = %T/newdata\n", NULL },
		{ "data_dir = %T/afile\n", PFX "data_dir %T/afile: not a directory" },
		{ "data_dir = %T/no/such/data\n",
		    PFX "data_dir %T/no/such/data: cannot be created (parent directory %T/no/such missing)" },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char conf[2048], want[2048], err[2048];
		struct config *cfg;
		const char *srcs[2] = { rows[i].conf, rows[i].want };
		char *dsts[2] = { conf, want };

		/* expand %K %L %T */
		for (int s = 0; s < 2; s++) {
			size_t o = 0;

			if (srcs[s] == NULL) {
				dsts[s][0] = '\0';
				continue;
			}
			for (const char *c = srcs[s]; *c != '\0'; c++) {
				const char *rep = NULL;

				if (c[0] == '%' && c[1] == 'K')
					rep = keys;
				else if (c[0] == '%' && c[1] == 'L')
					rep = logs;
				else if (c[0] == '%' && c[1] == 'T')
					rep = tmp_root;
				if (rep != NULL) {
					size_t rl = strlen(rep);

					assert_true(o + rl < sizeof(conf));
					memcpy(dsts[s] + o, rep, rl);
					o += rl;
					c++;
				} else {
					assert_true(o + 1 < sizeof(conf));
					dsts[s][o++] = *c;
				}
			}
			dsts[s][o] = '\0';
		}
		/* data_dir defaults to the existing tmp "data" sibling's parent */
		if (strstr(conf, "data_dir") == NULL) {
			size_t o = strlen(conf);
			assert_true(util_bsnprintf(conf + o, sizeof(conf) - o, "data_dir = %s\n", data) > 0);
		}
		cfg = parse(conf, strlen(conf), NULL, NOBASE, err, sizeof(err));
		if (cfg == NULL) {
			print_error("row %zu: config_parse_buffer failed: %s\n", i, err);
			failed++;
			continue;
		}
		err[0] = 'X';
		err[1] = '\0';
		int r = config_check_environment(cfg, err, sizeof(err));
		if (rows[i].want == NULL && r != 0) {
			print_error("row %zu: got '%s', want success\n", i, err);
			failed++;
		} else if (rows[i].want != NULL && (r != -1 || strcmp(err, want) != 0)) {
			print_error("row %zu:\n  got  r=%d '%s'\n  want '%s'\n", i, r, r ? err : "", want);
			failed++;
		}
		config_free(cfg);
	}
	/* the log-share probe leaves nothing behind */
	{
		char cmd[600];
		FILE *f;
		char line[256];
		int files = 0;

		assert_true(util_bsnprintf(cmd, sizeof(cmd), "ls -A %s", logs) > 0);
		f = popen(cmd, "r");
		assert_non_null(f);
		while (fgets(line, sizeof(line), f) != NULL)
			files++;
		pclose(f);
		assert_int_equal(files, 0);
	}
	X509_free(cert);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
	assert_int_equal(failed, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_struct_defaults),
		cmocka_unit_test(test_struct_parsed),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_relay),
		cmocka_unit_test(test_listen),
		cmocka_unit_test(test_hostname),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_print_roundtrip),
		cmocka_unit_test(test_timezone),
		cmocka_unit_test(test_environment),
	};

	if (gethostname(sys_hostname, sizeof(sys_hostname)) < 0)
		return 1;
	sys_hostname[sizeof(sys_hostname) - 1] = '\0';
	return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
