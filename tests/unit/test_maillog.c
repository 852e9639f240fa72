/*
 * test_maillog.c - unit tests for src/mail/maillog.c
 *
 * Owns:     a temporary directory under $TMPDIR (or /tmp), removed at the end.
 * Lifetime: one run.
 * Errors:   each failing row prints "got X, want Y" and fails its test.
 * Context:  single thread; TZ is set by the tests that need a fixed zone.
 *
 * The line tests call each maillog_* function, read the file back, check
 * the syslog prefix and compare the text after "mtad/PROC[PID]: " with the
 * Postfix line it must equal. The last test feeds such a log to pflogsumm
 * (when installed) and checks its grand totals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/util.h"
#include "mail/maillog.h"

static char tmpdir[256];

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static int
setup_dir(void **state)
{
	const char *t = getenv("TMPDIR");

	(void)state;
	if (util_bsnprintf(tmpdir, sizeof(tmpdir), "%s/test_maillog.XXXXXX",
	    t != NULL && t[0] != '\0' ? t : "/tmp") < 0 || mkdtemp(tmpdir) == NULL)
		return -1;
	umask(022);
	return 0;
}

static int
teardown_dir(void **state)
{
	(void)state;
	return nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* read_file - the whole file into buf (NUL-terminated); its length */
static size_t
read_file(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		fail_msg("cannot open %s: %s", path, strerror(errno));
	n = fread(buf, 1, size - 1, f);
	buf[n] = '\0';
	fclose(f);
	return n;
}

static void
tmp_path(char *buf, size_t size, const char *name)
{
	if (util_bsnprintf(buf, size, "%s/%s", tmpdir, name) < 0)
		fail_msg("path too long");
}

/*
 * check_prefix - line starts "Mon DD HH:MM:SS host mtad/PROC[PID]: "; returns
 * the text after it, or fails.
 */
static const char *
check_prefix(const char *line, const char *host, const char *proc)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	char want[128];
	const char *p;
	int i;

	for (i = 0; i < 12; i++)
		if (strncmp(line, months + 3 * i, 3) == 0)
			break;
	if (i == 12 || line[3] != ' ' || !(line[4] == ' ' || (line[4] >= '1' && line[4] <= '3')) ||
	    line[5] < '0' || line[5] > '9' || line[6] != ' ' || line[9] != ':' || line[12] != ':' ||
	    line[15] != ' ')
		fail_msg("bad time stamp in \"%s\"", line);
	if (util_bsnprintf(want, sizeof(want), "%s mtad/%s[%ld]: ", host, proc,
	    (long)getpid()) < 0)
		fail_msg("host too long");
	p = line + 16;
	if (strncmp(p, want, strlen(want)) != 0)
		fail_msg("got \"%.60s\", want prefix \"%s\"", p, want);
	return p + strlen(want);
}

/* maillog_format_delay: Postfix's two significant digits, 10 ms resolution */
static void
test_format_delay(void **state)
{
	static const struct {
		double in;
		const char *want;
	} rows[] = {
		{ 0, "0" }, { 0.004, "0" }, { 0.005, "0.01" }, { 0.01, "0.01" },
		{ 0.123, "0.12" }, { 0.5, "0.5" }, { 0.7, "0.7" }, { 0.999, "1" },
		{ 1.0, "1" }, { 1.2, "1.2" }, { 1.234, "1.2" }, { 1.26, "1.3" },
		{ 9.94, "9.9" }, { 9.96, "10" }, { 12.3, "12" }, { 12.5, "13" },
		{ 4321.2, "4321" }, { 432000, "432000" }, { -1, "0" }, { NAN, "0" },
	};
	char buf[32];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int n = maillog_format_delay(buf, sizeof(buf), rows[i].in);
		if (n < 0 || strcmp(buf, rows[i].want) != 0 || (size_t)n != strlen(buf))
			fail_msg("delay %g: got \"%s\" (%d), want \"%s\"", rows[i].in,
			    n < 0 ? "-1" : buf, n, rows[i].want);
	}
	assert_int_equal(maillog_format_delay(buf, 2, 12.0), -1);
}

/* maillog_stamp: syslog's "Mon DD HH:MM:SS", day space-padded, local time */
static void
test_stamp(void **state)
{
	static const struct {
		const char *tz;
		time_t t;
		const char *want;
	} rows[] = {
		{ "UTC", 0, "Jan  1 00:00:00" },
		{ "UTC", 1699000000, "Nov  3 08:26:40" },
		{ "UTC", 1700000000, "Nov 14 22:13:20" },
		{ "UTC", 1709164800, "Feb 29 00:00:00" },
		{ "Europe/Berlin", 1699000000, "Nov  3 09:26:40" },
		{ "Europe/Berlin", 1690000000, "Jul 22 06:26:40" },
		{ "America/New_York", 1699000000, "Nov  3 04:26:40" },
	};
	char buf[32];
	size_t i;
	const char *old = getenv("TZ");
	char saved[128] = "";

	(void)state;
	if (old != NULL)
		util_strlcpy(saved, old, sizeof(saved));
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		setenv("TZ", rows[i].tz, 1);
		tzset();
		if (maillog_stamp(buf, sizeof(buf), rows[i].t) != 15 ||
		    strcmp(buf, rows[i].want) != 0)
			fail_msg("%s %lld: got \"%s\", want \"%s\"", rows[i].tz,
			    (long long)rows[i].t, buf, rows[i].want);
	}
	assert_int_equal(maillog_stamp(buf, 10, 0), -1);
	if (old != NULL)
		setenv("TZ", saved, 1);
	else
		unsetenv("TZ");
	tzset();
}

/* maillog_sanitize: nothing a peer sends can start a line or a terminal escape */
static void
test_sanitize(void **state)
{
	static const struct {
		const char *in;
		size_t len, size;
		const char *want;
	} rows[] = {
		{ "plain text", 10, 64, "plain text" },
		{ "a\r\nb", 4, 64, "a??b" },
		{ "a\nNov  3 00:00:00 h mtad/smtpd[1]: fake", 39, 64,
		  "a?Nov  3 00:00:00 h mtad/smtpd[1]: fake" },
		{ "\x1b[31mred", 8, 64, "?[31mred" },
		{ "tab\there", 8, 64, "tab?here" },
		{ "del\x7f", 4, 64, "del?" },
		{ "nul\0x", 5, 64, "nul?x" },
		{ "caf\xc3\xa9", 5, 64, "caf\xc3\xa9" },
		{ "\xf0\x9f\x98\x80", 4, 64, "\xf0\x9f\x98\x80" },
		{ "bad\xc3", 4, 64, "bad?" },
		{ "\xc0\xaf", 2, 64, "??" },
		{ "\xed\xa0\x80", 3, 64, "???" },
		{ "c1\xc2\x85", 4, 64, "c1??" },
		{ "\xff\xfe", 2, 64, "??" },
		{ "abcdef", 6, 4, "abc" },
		{ "a\xc3\xa9", 3, 3, "a" },           /* never split a sequence */
		{ "a\xc3\xa9", 3, 4, "a\xc3\xa9" },
		{ "x", 1, 1, "" },
	};
	char buf[64];
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		n = maillog_sanitize(buf, rows[i].size, rows[i].in, rows[i].len);
		if (strcmp(buf, rows[i].want) != 0 || n != strlen(rows[i].want))
			fail_msg("row %zu: got \"%s\" (%zu), want \"%s\"", i, buf, n, rows[i].want);
	}
}

/* A disabled logger: not NULL, every call a no-op, no file anywhere. */
static void
test_disabled(void **state)
{
	const char *paths[] = { NULL, "" };
	double d[4] = { 0, 0, 0, 0 };
	char err[128];
	size_t i;

	(void)state;
	for (i = 0; i < 2; i++) {
		struct maillog *ml = maillog_open(paths[i], "h", err, sizeof(err));
		assert_non_null(ml);
		assert_false(maillog_enabled(ml));
		maillog_connect(ml, "a", "b");
		maillog_printf(ml, "smtpd", "x %d", 1);
		maillog_delivery(ml, "Q", "r", NULL, 1, d, NULL, "sent", NULL);
		maillog_reject(ml, "RCPT", "a", "b", "c", "d", "e", "f", "g");
		assert_int_equal(maillog_reopen(ml), 0);
		assert_null(maillog_close(ml));
	}
	/* NULL handles too */
	maillog_connect(NULL, "a", "b");
	assert_false(maillog_enabled(NULL));
	assert_int_equal(maillog_reopen(NULL), 0);
	assert_null(maillog_close(NULL));
}

/* maillog_open creates missing parent directories and a 0640 file; errors are reported */
static void
test_open_dirs(void **state)
{
	char path[512], err[256];
	struct maillog *ml;
	struct stat st;

	(void)state;
	tmp_path(path, sizeof(path), "srv1_logs/sub/maillog");
	ml = maillog_open(path, "h", err, sizeof(err));
	if (ml == NULL)
		fail_msg("open %s: got NULL (%s), want a logger", path, err);
	assert_true(maillog_enabled(ml));
	assert_int_equal(stat(path, &st), 0);
	if ((st.st_mode & 07777) != 0640)
		fail_msg("mode: got %o, want 640", (unsigned)(st.st_mode & 07777));
	maillog_close(ml);

	/* a parent that is a file: NULL and a message naming the path */
	tmp_path(path, sizeof(path), "srv1_logs/sub/maillog/x");
	err[0] = '\0';
	ml = maillog_open(path, "h", err, sizeof(err));
	assert_null(ml);
	if (strstr(err, "maillog") == NULL)
		fail_msg("err: got \"%s\", want the path in it", err);
}

enum call {
	C_CONNECT, C_CLIENT, C_MSGID, C_MSGID_BARE, C_FROM, C_SENT, C_DEFERRED_NONE,
	C_BOUNCED, C_REJECT, C_REJECT_MIN, C_DISCONNECT, C_DISCONNECT_EMPTY, C_NOTICE,
	C_DELAY_NOTICE, C_REMOVED, C_EXPIRED, C_NULL_SENDER, C_PRINTF, C_INJECT,
	C_DSN_DEFAULT, C_NULLS,
	C_CC_SENT, C_CC_DROPPED, C_DISCARDED, C_DISCARDED_DSN, C_LOST, C_LOST_TLS, C_TIMEOUT,
	C_TIMEOUT_NOADDR, C_TOO_MANY_ERRORS, C_NON_SMTP, C_CONN_LIMIT, C_TOO_MANY_SESSIONS,
	C_PROXY_BAD, C_PROXY_NONE, C_CONN_LIMIT_PROXY, C_TLS_FROM, C_TLS_ACCEPT_ERROR, C_DISK_1,
	C_DISK_5, C_DISK_OK, C_TLS_TO,
	C_TLS_TO_VERIFIED, C_TLS_REFUSED, C_TLS_REQUIRED, C_TLS_FALLBACK, C_SASL_FAILED,
	C_SASL_BLOCKED, C_SASL_REFUSED, C_DKIM_SIGNED, C_DKIM_UNSIGNED,
};

static const struct {
	enum call call;
	const char *proc;
	const char *want;
} line_rows[] = {
	{ C_CONNECT, "smtpd", "connect from mail.example.org[192.0.2.7]" },
	{ C_CLIENT, "smtpd", "0123456789ABCDEF: client=mail.example.org[192.0.2.7]" },
	{ C_MSGID, "cleanup", "0123456789ABCDEF: message-id=<abc.123@example.org>" },
	{ C_MSGID_BARE, "cleanup", "0123456789ABCDEF: message-id=<bare@example.org>" },
	{ C_FROM, "qmgr", "0123456789ABCDEF: from=<alice@example.org>, size=1234, nrcpt=2 (queue active)" },
	{ C_SENT, "smtp", "0123456789ABCDEF: to=<bob@example.net>, relay=mx.example.net[198.51.100.2]:25, "
	  "delay=1.2, delays=0.01/0/0.5/0.7, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 3F1A)" },
	{ C_DEFERRED_NONE, "smtp", "0123456789ABCDEF: to=<carol@example.com>, relay=none, delay=3.2, "
	  "delays=3.2/0/0/0, dsn=4.4.1, status=deferred (connect to mx.example.com[203.0.113.5]:25: "
	  "Connection refused)" },
	{ C_BOUNCED, "smtp", "0123456789ABCDEF: to=<dave@example.com>, relay=mx.example.com[203.0.113.5]:25, "
	  "delay=12, delays=0.1/0/11/0.9, dsn=5.1.1, status=bounced (host mx.example.com[203.0.113.5] said: "
	  "550 5.1.1 <dave@example.com>: User unknown (in reply to RCPT TO command))" },
	{ C_REJECT, "smtpd", "NOQUEUE: reject: RCPT from unknown[192.0.2.9]: 554 5.7.1 <x@example.com>: "
	  "Relay access denied; from=<s@example.org> to=<x@example.com> proto=ESMTP helo=<spam.example>" },
	{ C_REJECT_MIN, "smtpd", "NOQUEUE: reject: CONNECT from unknown[192.0.2.9]: 421 4.7.0 Too many connections;" },
	{ C_DISCONNECT, "smtpd", "disconnect from mail.example.org[192.0.2.7] ehlo=1 mail=1 rcpt=2 data=1 quit=1 commands=6" },
	{ C_DISCONNECT_EMPTY, "smtpd", "disconnect from unknown[192.0.2.9] commands=0" },
	{ C_NOTICE, "bounce", "0123456789ABCDEF: sender non-delivery notification: FEDCBA9876543210" },
	{ C_DELAY_NOTICE, "bounce", "0123456789ABCDEF: sender delay notification: AAAABBBBCCCCDDDD" },
	{ C_REMOVED, "qmgr", "0123456789ABCDEF: removed" },
	{ C_EXPIRED, "qmgr", "1111111111111111: from=<eve@example.org>, status=expired, returned to sender" },
	{ C_NULL_SENDER, "qmgr", "FEDCBA9876543210: from=<>, size=2000, nrcpt=1 (queue active)" },
	{ C_PRINTF, "qmgr", "warning: raw line 42" },
	{ C_INJECT, "smtpd", "NOQUEUE: reject: RCPT from unknown[192.0.2.9]: 554 5.7.1 <x@example.com>: "
	  "Relay access denied; from=<a??Nov  3 00:00:00 h mtad/smtpd[1]: X: client=evil[1.2.3.4]@x> "
	  "to=<x@example.com> proto=ESMTP helo=<?[2J>" },
	{ C_DSN_DEFAULT, "smtp", "Q1: to=<r@x>, relay=none, delay=0, delays=0/0/0/0, dsn=5.0.0, status=bounced" },
	{ C_NULLS, "smtpd", "connect from unknown[unknown]" },
	{ C_CC_SENT, "smtp", "0123456789ABCDEF: cc_mta copy, nrcpt=2, relay=cc.example[192.0.2.1]:25, "
	  "delay=1.2, delays=0.01/0/0.5/0.7, dsn=2.0.0, status=sent (250 2.0.0 Ok)" },
	{ C_CC_DROPPED, "smtp", "0123456789ABCDEF: cc_mta copy, nrcpt=1, relay=none, delay=3.2, "
	  "delays=3.2/0/0/0, dsn=4.4.1, status=expired (connect to cc.example[192.0.2.1]:25: "
	  "Connection refused), cc copy dropped" },
	{ C_DISCARDED, "bounce", "0123456789ABCDEF: undeliverable message to <r@example.com> "
	  "discarded: no notification is sent for the null sender" },
	{ C_DISCARDED_DSN, "bounce", "0123456789ABCDEF: undeliverable delivery status notification "
	  "to <s@example.org> discarded: no notification is sent for a bounce" },
	{ C_LOST, "smtpd", "lost connection after DATA from unknown[192.0.2.9]" },
	{ C_LOST_TLS, "smtpd", "lost connection after STARTTLS from unknown[2001:db8::1]" },
	{ C_TIMEOUT, "smtpd", "timeout after RCPT from unknown[192.0.2.9]" },
	{ C_TIMEOUT_NOADDR, "smtpd", "timeout after CONNECT from unknown[unknown]" },
	{ C_TOO_MANY_ERRORS, "smtpd", "too many errors after RCPT from unknown[192.0.2.9]" },
	{ C_NON_SMTP, "smtpd", "warning: non-SMTP command from unknown[192.0.2.9]" },
	{ C_CONN_LIMIT, "smtpd", "warning: Connection concurrency limit exceeded: 51 from "
	  "unknown[192.0.2.9] for service smtp" },
	{ C_TOO_MANY_SESSIONS, "smtpd", "warning: too many sessions (10000): connection from "
	  "unknown[192.0.2.9] refused" },
	{ C_PROXY_BAD, "smtpd", "warning: haproxy read: bad or unsupported PROXY header from [192.0.2.9]" },
	{ C_PROXY_NONE, "smtpd", "warning: haproxy read: no complete PROXY header from [192.0.2.9]" },
	{ C_CONN_LIMIT_PROXY, "smtpd", "warning: Connection concurrency limit exceeded: 4 from "
	  "unknown[192.0.2.9] for service smtp (waiting for PROXY headers)" },
	{ C_TLS_FROM, "smtpd", "Anonymous TLS connection established from unknown[192.0.2.9]: "
	  "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" },
	{ C_TLS_ACCEPT_ERROR, "smtpd", "SSL_accept error from unknown[192.0.2.9]: error:0A00010B:"
	  "SSL routines::wrong version number" },
	{ C_DISK_1, "smtpd", "warning: Data volume has less than 1% free disk space" },
	{ C_DISK_5, "smtpd", "warning: Data volume has less than 5% free disk space" },
	{ C_DISK_OK, "smtpd", "Data volume has 5% or more free disk space again" },
	{ C_TLS_TO, "smtp", "Untrusted TLS connection established to mx.example.net[198.51.100.2]:25: "
	  "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" },
	{ C_TLS_TO_VERIFIED, "smtp", "Verified TLS connection established to relay.example[192.0.2.3]:465: "
	  "TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits)" },
	{ C_TLS_REFUSED, "smtp", "warning: host mx.example.net[198.51.100.2]:25 refused to start TLS: "
	  "454 4.7.0 TLS not available; continuing without TLS" },
	{ C_TLS_REQUIRED, "smtp", "warning: Cannot start TLS: handshake failure; TLS is required for "
	  "mx.example.net[198.51.100.2]:25: not delivering without it" },
	{ C_TLS_FALLBACK, "smtp", "warning: Cannot start TLS: handshake failure; trying "
	  "mx.example.net[198.51.100.2]:25 again without TLS (and for the next 60 minutes)" },
	{ C_SASL_FAILED, "smtpd", "warning: unknown[192.0.2.9]: SASL PLAIN authentication failed: "
	  "authentication failure" },
	{ C_SASL_BLOCKED, "smtpd", "warning: unknown[192.0.2.9]: SASL authentication blocked for "
	  "600s after 10 failures" },
	{ C_SASL_REFUSED, "smtpd", "warning: unknown[192.0.2.9]: SASL authentication refused: too "
	  "many failures" },
	{ C_DKIM_SIGNED, "dkim", "0123456789ABCDEF: DKIM-Signature field added (d=example.com)" },
	{ C_DKIM_UNSIGNED, "dkim", "0123456789ABCDEF: warning: message not signed: header field "
	  "not canonicalisable" },
};

/* do_call - the maillog_* call of one row */
static void
do_call(struct maillog *ml, enum call c)
{
	const double d1[4] = { 0.01, 0, 0.5, 0.7 };
	const double d2[4] = { 3.2, 0, 0, 0 };
	const double d3[4] = { 0.1, 0, 11, 0.9 };
	const char *qid = "0123456789ABCDEF";

	switch (c) {
	case C_CONNECT: maillog_connect(ml, "mail.example.org", "192.0.2.7"); break;
	case C_CLIENT: maillog_client(ml, qid, "mail.example.org", "192.0.2.7"); break;
	case C_MSGID: maillog_message_id(ml, qid, "<abc.123@example.org>"); break;
	case C_MSGID_BARE: maillog_message_id(ml, qid, "bare@example.org"); break;
	case C_FROM: maillog_from(ml, qid, "alice@example.org", 1234, 2); break;
	case C_SENT:
		maillog_delivery(ml, qid, "bob@example.net", "mx.example.net[198.51.100.2]:25", 1.234,
		    d1, "2.0.0", "sent", "250 2.0.0 Ok: queued as 3F1A");
		break;
	case C_DEFERRED_NONE:
		maillog_delivery(ml, qid, "carol@example.com", NULL, 3.2, d2, "4.4.1", "deferred",
		    "connect to mx.example.com[203.0.113.5]:25: Connection refused");
		break;
	case C_BOUNCED:
		maillog_delivery(ml, qid, "dave@example.com", "mx.example.com[203.0.113.5]:25", 12.4,
		    d3, "5.1.1", "bounced", "host mx.example.com[203.0.113.5] said: 550 5.1.1 "
		    "<dave@example.com>: User unknown (in reply to RCPT TO command)");
		break;
	case C_REJECT:
		maillog_reject(ml, "RCPT", "unknown", "192.0.2.9",
		    "554 5.7.1 <x@example.com>: Relay access denied", "s@example.org",
		    "x@example.com", "ESMTP", "spam.example");
		break;
	case C_REJECT_MIN:
		maillog_reject(ml, "CONNECT", "unknown", "192.0.2.9", "421 4.7.0 Too many connections",
		    NULL, NULL, NULL, NULL);
		break;
	case C_DISCONNECT:
		maillog_disconnect(ml, "mail.example.org", "192.0.2.7",
		    "ehlo=1 mail=1 rcpt=2 data=1 quit=1 commands=6");
		break;
	case C_DISCONNECT_EMPTY: maillog_disconnect(ml, "unknown", "192.0.2.9", ""); break;
	case C_NOTICE: maillog_bounce_notice(ml, qid, "FEDCBA9876543210"); break;
	case C_DELAY_NOTICE: maillog_delay_notice(ml, qid, "AAAABBBBCCCCDDDD"); break;
	case C_REMOVED: maillog_removed(ml, qid); break;
	case C_EXPIRED: maillog_expired(ml, "1111111111111111", "eve@example.org"); break;
	case C_NULL_SENDER: maillog_from(ml, "FEDCBA9876543210", "", 2000, 1); break;
	case C_PRINTF: maillog_printf(ml, "qmgr", "warning: raw line %d", 42); break;
	case C_INJECT:
		maillog_reject(ml, "RCPT", "unknown", "192.0.2.9",
		    "554 5.7.1 <x@example.com>: Relay access denied",
		    "a\r\nNov  3 00:00:00 h mtad/smtpd[1]: X: client=evil[1.2.3.4]@x",
		    "x@example.com", "ESMTP", "\x1b[2J");
		break;
	case C_DSN_DEFAULT:
		maillog_delivery(ml, "Q1", "r@x", "", 0, NULL, NULL, "bounced", NULL);
		break;
	case C_NULLS: maillog_connect(ml, NULL, NULL); break;
	case C_CC_SENT:
		maillog_cc_copy(ml, qid, 2, "cc.example[192.0.2.1]:25", 1.234, d1, "2.0.0", "sent",
		    "250 2.0.0 Ok", 0);
		break;
	case C_CC_DROPPED:
		maillog_cc_copy(ml, qid, 1, NULL, 3.2, d2, "4.4.1", "expired",
		    "connect to cc.example[192.0.2.1]:25: Connection refused", 1);
		break;
	case C_DISCARDED: maillog_discarded(ml, qid, "r@example.com", 0); break;
	case C_DISCARDED_DSN: maillog_discarded(ml, qid, "s@example.org", 1); break;
	case C_LOST: maillog_lost(ml, "DATA", "192.0.2.9"); break;
	case C_LOST_TLS: maillog_lost(ml, "STARTTLS", "2001:db8::1"); break;
	case C_TIMEOUT: maillog_timeout(ml, "RCPT", "192.0.2.9"); break;
	case C_TIMEOUT_NOADDR: maillog_timeout(ml, "CONNECT", ""); break;
	case C_TOO_MANY_ERRORS: maillog_too_many_errors(ml, "RCPT", "192.0.2.9"); break;
	case C_NON_SMTP: maillog_non_smtp(ml, "192.0.2.9"); break;
	case C_CONN_LIMIT: maillog_conn_limit(ml, 51, "192.0.2.9", 0); break;
	case C_CONN_LIMIT_PROXY: maillog_conn_limit(ml, 4, "192.0.2.9", 1); break;
	case C_TOO_MANY_SESSIONS: maillog_too_many_sessions(ml, 10000, "192.0.2.9"); break;
	case C_PROXY_BAD: maillog_proxy_bad(ml, "bad or unsupported", "192.0.2.9"); break;
	case C_PROXY_NONE: maillog_proxy_bad(ml, "no complete", "192.0.2.9"); break;
	case C_TLS_FROM:
		maillog_tls_from(ml, "192.0.2.9",
		    "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)");
		break;
	case C_TLS_ACCEPT_ERROR:
		maillog_tls_accept_error(ml, "192.0.2.9",
		    "error:0A00010B:SSL routines::wrong version number");
		break;
	case C_DISK_1: maillog_disk(ml, 2); break;
	case C_DISK_5: maillog_disk(ml, 1); break;
	case C_DISK_OK: maillog_disk(ml, 0); break;
	case C_TLS_TO:
		maillog_tls_to(ml, "Untrusted", "mx.example.net[198.51.100.2]:25",
		    "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)");
		break;
	case C_TLS_TO_VERIFIED:
		maillog_tls_to(ml, "Verified", "relay.example[192.0.2.3]:465",
		    "TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits)");
		break;
	case C_TLS_REFUSED:
		maillog_tls_refused(ml, "mx.example.net[198.51.100.2]:25",
		    "454 4.7.0 TLS not available");
		break;
	case C_TLS_REQUIRED:
		maillog_tls_required(ml, "Cannot start TLS: handshake failure",
		    "mx.example.net[198.51.100.2]:25");
		break;
	case C_TLS_FALLBACK:
		maillog_tls_fallback(ml, "Cannot start TLS: handshake failure",
		    "mx.example.net[198.51.100.2]:25", 60);
		break;
	case C_SASL_FAILED: maillog_sasl_failed(ml, "192.0.2.9", "PLAIN"); break;
	case C_SASL_BLOCKED: maillog_sasl_blocked(ml, "192.0.2.9", 600, 10); break;
	case C_SASL_REFUSED: maillog_sasl_refused(ml, "192.0.2.9"); break;
	case C_DKIM_SIGNED: maillog_dkim_signed(ml, qid, "example.com"); break;
	case C_DKIM_UNSIGNED:
		maillog_dkim_unsigned(ml, qid, "header field not canonicalisable");
		break;
	}
}

/* Every line type, exactly as Postfix writes it (see docs/maillog.md). */
static void
test_lines(void **state)
{
	static char buf[65536];
	char path[512], err[256];
	struct maillog *ml;
	size_t i, nrows = sizeof(line_rows) / sizeof(line_rows[0]);
	char *line, *next = NULL;

	(void)state;
	tmp_path(path, sizeof(path), "lines.log");
	if ((ml = maillog_open(path, "relay1.example", err, sizeof(err))) == NULL)
		fail_msg("open: %s", err);
	for (i = 0; i < nrows; i++)
		do_call(ml, line_rows[i].call);
	maillog_close(ml);
	read_file(path, buf, sizeof(buf));
	line = buf;
	for (i = 0; i < nrows; i++, line = next) {
		const char *text;
		if (*line == '\0' || (next = strchr(line, '\n')) == NULL)
			fail_msg("row %zu: got end of file, want a line", i);
		*next++ = '\0';
		text = check_prefix(line, "relay1.example", line_rows[i].proc);
		if (strcmp(text, line_rows[i].want) != 0)
			fail_msg("row %zu:\n got \"%s\"\nwant \"%s\"", i, text, line_rows[i].want);
	}
	if (*line != '\0')
		fail_msg("got extra line \"%s\", want end of file", line);
}

/* A long text is cut to one bounded line; a bad host name cannot break the prefix. */
static void
test_bounded(void **state)
{
	static char big[8192], buf[16384];
	char path[512], err[256];
	struct maillog *ml;
	size_t n;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	tmp_path(path, sizeof(path), "bounded.log");
	if ((ml = maillog_open(path, "bad host\n", err, sizeof(err))) == NULL)
		fail_msg("open: %s", err);
	maillog_printf(ml, "smtpd", "%s", big);
	maillog_reject(ml, "RCPT", big, big, big, big, big, big, big);
	maillog_client(ml, "Q", "n", "a");
	maillog_close(ml);
	n = read_file(path, buf, sizeof(buf));
	/* three lines, each <= 2048 octets with its newline */
	{
		char *p = buf, *nl;
		int lines = 0;
		while ((nl = memchr(p, '\n', n - (size_t)(p - buf))) != NULL) {
			if ((size_t)(nl - p + 1) > 2048)
				fail_msg("line %d: got %zu octets, want <= 2048", lines, (size_t)(nl - p + 1));
			if (strncmp(p + 16, "bad?host? mtad/", 15) != 0)
				fail_msg("line %d: got host \"%.20s\", want \"bad?host?\"", lines, p + 16);
			lines++;
			p = nl + 1;
		}
		assert_int_equal(lines, 3);
		assert_true(p == buf + n);
	}
}

/* maillog_reopen after rotation: new lines go to a new file at the path */
static void
test_reopen(void **state)
{
	char path[512], rotated[512], err[256], buf[4096];
	struct maillog *ml;

	(void)state;
	tmp_path(path, sizeof(path), "rot/maillog");
	tmp_path(rotated, sizeof(rotated), "rot/maillog.1");
	if ((ml = maillog_open(path, "h", err, sizeof(err))) == NULL)
		fail_msg("open: %s", err);
	maillog_removed(ml, "OLD");
	assert_int_equal(rename(path, rotated), 0);
	maillog_removed(ml, "STILLOLD");        /* still the old descriptor */
	assert_int_equal(maillog_reopen(ml), 0);
	maillog_removed(ml, "NEW");
	maillog_close(ml);
	read_file(rotated, buf, sizeof(buf));
	if (strstr(buf, "OLD: removed") == NULL || strstr(buf, "STILLOLD: removed") == NULL ||
	    strstr(buf, "NEW: removed") != NULL)
		fail_msg("rotated file: got \"%s\", want OLD and STILLOLD only", buf);
	read_file(path, buf, sizeof(buf));
	if (strstr(buf, "NEW: removed") == NULL || strstr(buf, "OLD") != NULL)
		fail_msg("new file: got \"%s\", want NEW only", buf);
}

/* A failing write is reported on stderr once, then ignored. */
static void
test_write_failure(void **state)
{
	char path[512], err[256], buf[4096];
	struct maillog *ml;
	int saved, fd, i;
	const char *p;
	int count = 0;

	(void)state;
	if (access("/dev/full", W_OK) != 0)
		skip();
	tmp_path(path, sizeof(path), "stderr.txt");
	if ((ml = maillog_open("/dev/full", "h", err, sizeof(err))) == NULL)
		fail_msg("open /dev/full: %s", err);
	fflush(stderr);
	saved = dup(2);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, 2);
	for (i = 0; i < 5; i++)
		maillog_removed(ml, "Q");
	assert_int_equal(maillog_reopen(ml), 0);   /* a reopen re-arms the warning */
	maillog_removed(ml, "Q");
	dup2(saved, 2);
	close(saved);
	close(fd);
	maillog_close(ml);
	read_file(path, buf, sizeof(buf));
	for (p = buf; (p = strstr(p, "write failed")) != NULL; p++)
		count++;
	if (count != 2)
		fail_msg("got %d warnings, want 2 (one per open):\n%s", count, buf);
	if (strstr(buf, "/dev/full") == NULL)
		fail_msg("warning: got \"%s\", want the path in it", buf);
}

/* pflogsumm --syslog-name=mtad reads our lines as Postfix's */
static void
test_pflogsumm(void **state)
{
	static const struct {
		const char *label;
		int want;
	} totals[] = {
		{ "received", 1 }, { "delivered", 1 }, { "deferred", 1 }, { "bounced", 1 },
		{ "rejected", 2 },
	};
	/*
	 * Not C_INJECT: its sender holds "mtad/smtpd[1]: X: client=", which
	 * pflogsumm's unanchored client= pattern counts (as it would for
	 * Postfix). No new line is forged; docs/maillog.md notes the limit.
	 */
	static const enum call calls[] = {
		C_CONNECT, C_CLIENT, C_MSGID, C_FROM, C_SENT, C_DEFERRED_NONE, C_BOUNCED,
		C_NOTICE, C_REMOVED, C_REJECT, C_REJECT_MIN, C_DISCONNECT,
	};
	char path[512], cmd[1024], err[256], line[512];
	struct maillog *ml;
	FILE *f;
	size_t i;
	int got[5] = { -1, -1, -1, -1, -1 };

	(void)state;
	if (access("/usr/sbin/pflogsumm", R_OK) != 0)
		skip();
	tmp_path(path, sizeof(path), "pflogsumm.log");
	if ((ml = maillog_open(path, "relay1", err, sizeof(err))) == NULL)
		fail_msg("open: %s", err);
	for (i = 0; i < sizeof(calls) / sizeof(calls[0]); i++)
		do_call(ml, calls[i]);
	maillog_close(ml);
	if (util_bsnprintf(cmd, sizeof(cmd), "perl /usr/sbin/pflogsumm --syslog-name=mtad '%s' 2>&1",
	    path) < 0)
		fail_msg("command too long");
	if ((f = popen(cmd, "r")) == NULL)
		fail_msg("popen: %s", strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL) {
		int n;
		char label[64];
		char *end;
		long v = strtol(line, &end, 10);
		if (end == line || *end != ' ')
			continue;
		while (*end == ' ')
			end++;
		for (n = 0; n < 63 && end[n] != '\0' && end[n] != ' ' && end[n] != '\n'; n++)
			label[n] = end[n];
		label[n] = '\0';
		for (i = 0; i < 5; i++)
			if (got[i] < 0 && strcmp(label, totals[i].label) == 0)
				got[i] = (int)v;
	}
	pclose(f);
	for (i = 0; i < 5; i++)
		if (got[i] != totals[i].want)
			fail_msg("pflogsumm %s: got %d, want %d", totals[i].label, got[i], totals[i].want);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_delay),
		cmocka_unit_test(test_stamp),
		cmocka_unit_test(test_sanitize),
		cmocka_unit_test(test_disabled),
		cmocka_unit_test(test_open_dirs),
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_bounded),
		cmocka_unit_test(test_reopen),
		cmocka_unit_test(test_write_failure),
		cmocka_unit_test(test_pflogsumm),
	};
	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
