/*
 * maillog.c - the Postfix-format mail log (SPEC §9): every line type is built here
 *
 * Owns:     the mail log file descriptor, its path and host name copies.
 * Lifetime: struct maillog from maillog_open() to maillog_close(); strings
 *           passed to the line functions are borrowed for the call only.
 * Errors:   open failures are returned (maillog_open with a message,
 *           maillog_reopen with -1 and errno); a failed write is reported
 *           once on stderr and then ignored: the log never stops mail.
 * Context:  event-loop thread (each line is one write(2), so lines written
 *           from elsewhere would still not mix).
 *
 * Line format, as syslog writes Postfix's lines, so that pflogsumm
 * (--syslog-name=mtad) and fail2ban's postfix filters read it:
 *
 *   "Mon DD HH:MM:SS host mtad/PROC[PID]: TEXT\n"
 *
 * DD is space-padded ("Nov  3"), the time is local (main sets TZ from
 * `timezone`). TEXT is bounded (a line is at most ML_LINE_MAX octets) and
 * made printable after formatting: control characters, DEL and bytes that
 * are not well-formed UTF-8 become '?', so a peer can never start a new
 * line or forge a field with a CR or LF. docs/maillog.md lists every line.
 */
#include "mail/maillog.h"
#include "mail/addr.h"
#include "lib/log.h"
#include "lib/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ML_LINE_MAX  2048       /* one log line, newline included */
#define ML_HOST_MAX  255
#define ML_PATH_MAX  4096

/* Bounds on single fields, so one long peer string cannot crowd out the rest. */
#define ML_NAME_MAX  255        /* client or relay host names, HELO */
#define ML_ADDR_MAX  64         /* IP address text */
#define ML_MAIL_MAX  ADDR_MAX   /* envelope addresses */
#define ML_REPLY_MAX 1000       /* SMTP replies and reasons */
#define ML_DELAYS_MAX 192       /* "delay=D, delays=a/b/c/d": five delays of at most 31 */

struct maillog {
	int   fd;                   /* -1: disabled (path NULL) or not open */
	char *path;                 /* NULL: disabled */
	char  host[ML_HOST_MAX + 1];
	int   warned;               /* a write failure was already reported */
	int   out_fd;               /* -1, or STDOUT_FILENO with maillog_stdout (SPEC §11.4) */
	int   out_warned;
};

static const char *const ml_months[12] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

/* ml_s - a printable stand-in for a NULL string */
static const char *
ml_s(const char *s, const char *dflt)
{
	return s != NULL ? s : dflt;
}

/*
 * ml_mkparents - create the missing parent directories of path (0755),
 * like "mkdir -p $(dirname path)"; SPEC §2.1 maillog_filename may contain
 * directories. Returns 0 or -1 with errno set.
 */
static int
ml_mkparents(const char *path)
{
	char buf[ML_PATH_MAX];
	size_t i, len = strlen(path);
	struct stat st;

	if (len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, len + 1);
	for (i = 1; i < len; i++) {
		if (buf[i] != '/')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST) {
			buf[i] = '/';
			return -1;
		}
		if (stat(buf, &st) < 0)
			return -1;
		if (!S_ISDIR(st.st_mode)) {
			errno = ENOTDIR;
			return -1;
		}
		buf[i] = '/';
	}
	return 0;
}

/* ml_open_fd - open the log for appending, creating it (0640) and its parents */
static int
ml_open_fd(const char *path)
{
	if (ml_mkparents(path) < 0)
		return -1;
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
}

/*
 * maillog_open - a logger appending to path; path NULL or "" gives a
 * disabled logger (never NULL for that). hostname is copied (empty or NULL:
 * the system's host name). NULL with a message in err on failure.
 */
struct maillog *
maillog_open(const char *path, const char *hostname, char *err, size_t errlen)
{
	struct maillog *ml;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if ((ml = calloc(1, sizeof(*ml))) == NULL) {
		if (err != NULL)
			util_bsnprintf(err, errlen, "out of memory");
		return NULL;
	}
	ml->fd = -1;
	ml->out_fd = -1;
	if (hostname == NULL || hostname[0] == '\0') {
		if (gethostname(ml->host, sizeof(ml->host)) < 0)
			util_strlcpy(ml->host, "localhost", sizeof(ml->host));
		ml->host[sizeof(ml->host) - 1] = '\0';
	} else
		util_strlcpy(ml->host, hostname, sizeof(ml->host));
	/* the host is a syslog token: no spaces or controls */
	for (char *h = ml->host; *h != '\0'; h++)
		if ((unsigned char)*h <= ' ' || (unsigned char)*h >= 0x7f)
			*h = '?';
	if (path == NULL || path[0] == '\0')
		return ml;
	if ((ml->path = strdup(path)) == NULL) {
		if (err != NULL)
			util_bsnprintf(err, errlen, "out of memory");
		goto fail;
	}
	tzset();
	if ((ml->fd = ml_open_fd(path)) < 0) {
		if (err != NULL && util_bsnprintf(err, errlen, "%s: %s", path,
		    strerror(errno)) < 0 && errlen > 0)
			util_strlcpy(err, strerror(errno), errlen);
		goto fail;
	}
	return ml;
fail:
	free(ml->path);
	free(ml);
	return NULL;
}

/* maillog_close - close the file and free; takes NULL, returns NULL */
struct maillog *
maillog_close(struct maillog *ml)
{
	if (ml == NULL)
		return NULL;
	if (ml->fd >= 0)
		close(ml->fd);
	free(ml->path);
	free(ml);
	return NULL;
}

/*
 * maillog_reopen - open the path again (after log rotation, on SIGHUP) and
 * switch to the new file; on failure the old descriptor stays in use and
 * -1 is returned with errno set. A disabled logger stays disabled.
 */
int
maillog_reopen(struct maillog *ml)
{
	int fd;

	if (ml == NULL || ml->path == NULL)
		return 0;
	tzset();
	if ((fd = ml_open_fd(ml->path)) < 0)
		return -1;
	if (ml->fd >= 0)
		close(ml->fd);
	ml->fd = fd;
	ml->warned = 0;
	return 0;
}

/*
 * maillog_set_stdout - also write every line to fd (STDOUT_FILENO for
 * maillog_stdout = yes; -1 stops it), whether or not a file is open: a
 * container's log collector reads the same lines the share gets. The fd
 * is borrowed, never closed here.
 */
void
maillog_set_stdout(struct maillog *ml, int fd)
{
	if (ml == NULL)
		return;
	ml->out_fd = fd;
	ml->out_warned = 0;
	tzset();
}

/* maillog_enabled - 1 when lines are written somewhere */
int
maillog_enabled(const struct maillog *ml)
{
	return ml != NULL && (ml->fd >= 0 || ml->out_fd >= 0);
}

/*
 * maillog_stamp - "Mon DD HH:MM:SS" for t in local time, the day padded
 * with a space like syslog's ("Nov  3 09:04:05"). Returns the length or -1.
 */
int
maillog_stamp(char *buf, size_t size, time_t t)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL || tm.tm_mon < 0 || tm.tm_mon > 11)
		return -1;
	return util_bsnprintf(buf, size, "%s %2d %02d:%02d:%02d",
	    ml_months[tm.tm_mon], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/*
 * maillog_sanitize - copy src (len octets) to dst (size >= 1), replacing
 * control characters, DEL and anything not well-formed UTF-8 by '?';
 * never splits a UTF-8 sequence. Returns the octets written (NUL not counted).
 */
size_t
maillog_sanitize(char *dst, size_t size, const char *src, size_t len)
{
	size_t i = 0, o = 0, n;
	unsigned char c;

	if (size == 0)
		return 0;
	while (i < len && o + 1 < size) {
		c = (unsigned char)src[i];
		if (c >= 0x20 && c < 0x7f) {
			dst[o++] = (char)c;
			i++;
			continue;
		}
		if (c >= 0x80 && (n = addr_utf8_len(src + i, len - i)) != 0) {
			if (o + n >= size)
				break;
			memcpy(dst + o, src + i, n);
			o += n;
			i += n;
			continue;
		}
		dst[o++] = '?';
		i++;
	}
	dst[o] = '\0';
	return o;
}

/*
 * maillog_format_delay - a delay in seconds as Postfix's format_tv() shows
 * it with two significant digits and 10 ms resolution: "0", "0.01",
 * "0.5", "1.2", "12", "4321"; trailing zeros are trimmed.
 */
int
maillog_format_delay(char *buf, size_t size, double sec)
{
	uint64_t us, res, q;
	char *dot, *end;
	int n;

	if (!(sec > 0))             /* also NaN */
		sec = 0;
	if (sec > 1e12)
		sec = 1e12;
	us = (uint64_t)(sec * 1e6 + 0.5);
	if (us >= 10000000)
		res = 1000000;      /* >= 10 s: whole seconds */
	else if (us >= 1000000)
		res = 100000;       /* 1..10 s: tenths */
	else
		res = 10000;        /* < 1 s: hundredths, Postfix's delay resolution */
	q = (us + res / 2) / res * res;
	n = util_bsnprintf(buf, size, "%llu.%02llu", (unsigned long long)(q / 1000000),
	    (unsigned long long)(q % 1000000 / 10000));
	if (n < 0)
		return -1;
	dot = strchr(buf, '.');
	end = buf + n;
	while (end > dot + 1 && end[-1] == '0')
		end--;
	if (end == dot + 1)
		end = dot;
	*end = '\0';
	return (int)(end - buf);
}

/* ml_write - one line with one write(2) (retried on EINTR); 0 or -1 with errno */
static int
ml_write(int fd, const char *line, size_t len)
{
	ssize_t w = -1;

	for (int tries = 0; tries < 3; tries++) {
		w = write(fd, line, len);
		if (w < 0 && errno == EINTR)
			continue;
		break;
	}
	if (w == (ssize_t)len)
		return 0;
	if (w >= 0)
		errno = ENOSPC;
	return -1;
}

/*
 * ml_emit - build "stamp host mtad/proc[pid]: " plus the sanitised text
 * and write it with one write(2); a failure is reported once.
 */
static void
ml_emit(struct maillog *ml, const char *proc, const char *text, size_t tlen)
{
	char line[ML_LINE_MAX];
	char stamp[32];
	int n;
	size_t off;

	if (maillog_stamp(stamp, sizeof(stamp), time(NULL)) < 0)
		util_strlcpy(stamp, "Jan  1 00:00:00", sizeof(stamp));
	n = util_bsnprintf(line, sizeof(line), "%s %s mtad/%s[%ld]: ", stamp,
	    ml->host, proc, (long)getpid());
	if (n < 0)
		return;             /* cannot happen: host <= 255, proc is ours */
	off = (size_t)n;
	/* leave one octet for '\n'; maillog_sanitize NUL-terminates in it */
	off += maillog_sanitize(line + off, sizeof(line) - off, text, tlen);
	line[off++] = '\n';
	if (ml->fd >= 0 && ml_write(ml->fd, line, off) < 0 && !ml->warned) {
		ml->warned = 1;
		log_warn("mail log %s: write failed; further failures are not reported",
		    ml->path);
	}
	/* XXX a blocking stdout (a pipe nobody reads) would stall the loop,
	 * as Postfix's maillog_file = /dev/stdout would: the collector reads. */
	if (ml->out_fd >= 0 && ml_write(ml->out_fd, line, off) < 0 && !ml->out_warned) {
		ml->out_warned = 1;
		log_warn("mail log on stdout: write failed; further failures are not reported");
	}
}

/* ml_vlog - format TEXT and emit it; truncation at ML_LINE_MAX is accepted */
static void __attribute__((format(printf, 3, 0)))
ml_vlog(struct maillog *ml, const char *proc, const char *fmt, va_list ap)
{
	char text[ML_LINE_MAX];
	int n;

	n = vsnprintf(text, sizeof(text), fmt, ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(text))
		n = (int)sizeof(text) - 1;  /* XXX truncated: the line is bounded */
	ml_emit(ml, proc, text, (size_t)n);
}

static void __attribute__((format(printf, 3, 4)))
ml_log(struct maillog *ml, const char *proc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ml_vlog(ml, proc, fmt, ap);
	va_end(ap);
}

/*
 * ml_append - append to buf at *off, truncating at the end of buf (the
 * line is bounded; a cut field is acceptable, an overflow is not)
 */
static void __attribute__((format(printf, 4, 5)))
ml_append(char *buf, size_t size, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*off >= size - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *off, size - *off, fmt, ap);
	va_end(ap);
	if (n < 0) {
		buf[*off] = '\0';
		return;
	}
	*off += (size_t)n < size - *off ? (size_t)n : size - *off - 1;
}

/* ml_on - one test when the log is off */
static int
ml_on(const struct maillog *ml)
{
	return ml != NULL && (ml->fd >= 0 || ml->out_fd >= 0);
}

/* maillog_printf - one raw line for proc; the text is sanitised like all others */
void
maillog_printf(struct maillog *ml, const char *proc, const char *fmt, ...)
{
	va_list ap;

	if (!ml_on(ml))
		return;
	va_start(ap, fmt);
	ml_vlog(ml, proc, fmt, ap);
	va_end(ap);
}

/* maillog_connect - smtpd "connect from name[addr]" */
void
maillog_connect(struct maillog *ml, const char *name, const char *addr)
{
	if (!ml_on(ml))
		return;
	ml_log(ml, "smtpd", "connect from %.*s[%.*s]", ML_NAME_MAX,
	    ml_s(name, "unknown"), ML_ADDR_MAX, ml_s(addr, "unknown"));
}

/* maillog_disconnect - smtpd "disconnect from name[addr] ehlo=1 ... commands=N" */
void
maillog_disconnect(struct maillog *ml, const char *name, const char *addr,
    const char *counts)
{
	if (!ml_on(ml))
		return;
	ml_log(ml, "smtpd", "disconnect from %.*s[%.*s] %.*s", ML_NAME_MAX,
	    ml_s(name, "unknown"), ML_ADDR_MAX, ml_s(addr, "unknown"),
	    ML_REPLY_MAX, counts != NULL && counts[0] != '\0' ? counts : "commands=0");
}

/* maillog_client - smtpd "QID: client=name[addr]" (pflogsumm counts it as received) */
void
maillog_client(struct maillog *ml, const char *qid, const char *name, const char *addr)
{
	if (!ml_on(ml))
		return;
	ml_log(ml, "smtpd", "%.*s: client=%.*s[%.*s]", ML_NAME_MAX, ml_s(qid, "NOQUEUE"),
	    ML_NAME_MAX, ml_s(name, "unknown"), ML_ADDR_MAX, ml_s(addr, "unknown"));
}

/* maillog_client_sasl - see maillog.h */
void
maillog_client_sasl(struct maillog *ml, const char *qid, const char *name, const char *addr,
    const char *method, const char *user)
{
	if (!ml_on(ml))
		return;
	ml_log(ml, "smtpd", "%.*s: client=%.*s[%.*s], sasl_method=%.16s, sasl_username=%.*s",
	    ML_NAME_MAX, ml_s(qid, "NOQUEUE"), ML_NAME_MAX, ml_s(name, "unknown"), ML_ADDR_MAX,
	    ml_s(addr, "unknown"), ml_s(method, "PLAIN"), ML_NAME_MAX, ml_s(user, ""));
}

/*
 * maillog_message_id - cleanup "QID: message-id=<...>"; msgid is the
 * header's value, shown as is when it has its angle brackets.
 */
void
maillog_message_id(struct maillog *ml, const char *qid, const char *msgid)
{
	const char *m = ml_s(msgid, "");
	int bracketed = m[0] == '<';

	if (!ml_on(ml))
		return;
	ml_log(ml, "cleanup", "%.*s: message-id=%s%.*s%s", ML_NAME_MAX, ml_s(qid, "NOQUEUE"),
	    bracketed ? "" : "<", ML_REPLY_MAX, m, bracketed ? "" : ">");
}

/* maillog_from - qmgr "QID: from=<sender>, size=N, nrcpt=N (queue active)" */
void
maillog_from(struct maillog *ml, const char *qid, const char *sender,
    uint64_t size, unsigned nrcpt)
{
	if (!ml_on(ml))
		return;
	ml_log(ml, "qmgr", "%.*s: from=<%.*s>, size=%llu, nrcpt=%u (queue active)",
	    ML_NAME_MAX, ml_s(qid, "NOQUEUE"), ML_MAIL_MAX, ml_s(sender, ""),
	    (unsigned long long)size, nrcpt);
}

/*
 * maillog_reject - smtpd "NOQUEUE: reject: STAGE from name[addr]: REPLY;
 * from=<s> to=<r> proto=P helo=<h>", as Postfix's log_whatsup() writes it:
 * each of from/to/proto/helo only when given (non-NULL).
 */
void
maillog_reject(struct maillog *ml, const char *stage, const char *name,
    const char *addr, const char *reply, const char *sender, const char *rcpt,
    const char *proto, const char *helo)
{
	char text[ML_LINE_MAX];
	size_t off;

	if (!ml_on(ml))
		return;
	text[0] = '\0';
	off = 0;
	ml_append(text, sizeof(text), &off, "NOQUEUE: reject: %.*s from %.*s[%.*s]: %.*s;",
	    ML_NAME_MAX, ml_s(stage, "CONNECT"), ML_NAME_MAX, ml_s(name, "unknown"),
	    ML_ADDR_MAX, ml_s(addr, "unknown"), ML_REPLY_MAX, ml_s(reply, ""));
	if (sender != NULL)
		ml_append(text, sizeof(text), &off, " from=<%.*s>", ML_MAIL_MAX, sender);
	if (rcpt != NULL)
		ml_append(text, sizeof(text), &off, " to=<%.*s>", ML_MAIL_MAX, rcpt);
	if (proto != NULL)
		ml_append(text, sizeof(text), &off, " proto=%.*s", ML_NAME_MAX, proto);
	if (helo != NULL)
		ml_append(text, sizeof(text), &off, " helo=<%.*s>", ML_NAME_MAX, helo);
	ml_emit(ml, "smtpd", text, off);
}

/*
 * ml_delays - "delay=D, delays=a/b/c/d" as log_adhoc() writes them in the
 * delivery and cc_mta lines; delays NULL is 0/0/0/0
 */
static void
ml_delays(char *buf, size_t size, double delay, const double delays[4])
{
	char d[5][32];

	if (maillog_format_delay(d[0], sizeof(d[0]), delay) < 0)
		util_strlcpy(d[0], "0", sizeof(d[0]));
	for (int i = 0; i < 4; i++)
		if (maillog_format_delay(d[i + 1], sizeof(d[i + 1]),
		    delays != NULL ? delays[i] : 0) < 0)
			util_strlcpy(d[i + 1], "0", sizeof(d[i + 1]));
	if (util_bsnprintf(buf, size, "delay=%s, delays=%s/%s/%s/%s", d[0], d[1], d[2], d[3],
	    d[4]) < 0)
		util_strlcpy(buf, "delay=0, delays=0/0/0/0", size);
}

/*
 * maillog_delivery - smtp "QID: to=<rcpt>, relay=R, delay=D,
 * delays=a/b/c/d, dsn=X.Y.Z, status=S (reply)" as Postfix's log_adhoc()
 * writes it. relay NULL or "" is "none" (no connection was made); delays
 * NULL is 0/0/0/0; dsn NULL or "" defaults from status (2.0.0 for sent,
 * 4.0.0 for deferred, else 5.0.0); reply NULL leaves out the parentheses.
 */
void
maillog_delivery(struct maillog *ml, const char *qid, const char *rcpt,
    const char *relay, double delay, const double delays[4], const char *dsn,
    const char *status, const char *reply)
{
	char d[ML_DELAYS_MAX];
	const char *st = ml_s(status, "deferred");

	if (!ml_on(ml))
		return;
	ml_delays(d, sizeof(d), delay, delays);
	if (dsn == NULL || dsn[0] == '\0')
		dsn = strcmp(st, "sent") == 0 ? "2.0.0" :
		    strcmp(st, "deferred") == 0 ? "4.0.0" : "5.0.0";
	ml_log(ml, "smtp", "%.*s: to=<%.*s>, relay=%.*s, %s, dsn=%.*s, status=%.*s%s%.*s%s",
	    ML_NAME_MAX, ml_s(qid, "NOQUEUE"), ML_MAIL_MAX, ml_s(rcpt, ""),
	    ML_NAME_MAX + ML_ADDR_MAX + 8, relay != NULL && relay[0] != '\0' ? relay : "none",
	    d, 16, dsn, 32, st,
	    reply != NULL ? " (" : "", ML_REPLY_MAX, ml_s(reply, ""), reply != NULL ? ")" : "");
}

/* maillog_removed - qmgr "QID: removed" (the message left the queue) */
void
maillog_removed(struct maillog *ml, const char *qid)
{
	if (!ml_on(ml))
		return;
	ml_log(ml, "qmgr", "%.*s: removed", ML_NAME_MAX, ml_s(qid, "NOQUEUE"));
}

/* maillog_bounce_notice - bounce "QID: sender non-delivery notification: BQID" */
void
maillog_bounce_notice(struct maillog *ml, const char *qid, const char *bounce_qid)
{
	if (!ml_on(ml))
		return;
	ml_log(ml, "bounce", "%.*s: sender non-delivery notification: %.*s", ML_NAME_MAX,
	    ml_s(qid, "NOQUEUE"), ML_NAME_MAX, ml_s(bounce_qid, "NOQUEUE"));
}

/* maillog_delay_notice - bounce "QID: sender delay notification: BQID" */
void
maillog_delay_notice(struct maillog *ml, const char *qid, const char *notice_qid)
{
	if (!ml_on(ml))
		return;
	ml_log(ml, "bounce", "%.*s: sender delay notification: %.*s", ML_NAME_MAX,
	    ml_s(qid, "NOQUEUE"), ML_NAME_MAX, ml_s(notice_qid, "NOQUEUE"));
}

/* maillog_expired - qmgr "QID: from=<sender>, status=expired, returned to sender" */
void
maillog_expired(struct maillog *ml, const char *qid, const char *sender)
{
	if (!ml_on(ml))
		return;
	ml_log(ml, "qmgr", "%.*s: from=<%.*s>, status=expired, returned to sender",
	    ML_NAME_MAX, ml_s(qid, "NOQUEUE"), ML_MAIL_MAX, ml_s(sender, ""));
}

/* maillog_cc_copy - see maillog.h; delays as maillog_delivery() formats them */
void
maillog_cc_copy(struct maillog *ml, const char *qid, size_t nrcpt, const char *relay,
    double delay, const double delays[4], const char *dsn, const char *status,
    const char *reply, int dropped)
{
	char d[ML_DELAYS_MAX];

	if (!ml_on(ml))
		return;
	ml_delays(d, sizeof(d), delay, delays);
	ml_log(ml, "smtp", "%.*s: cc_mta copy, nrcpt=%zu, relay=%.*s, %s, dsn=%.*s, "
	    "status=%.*s (%.*s)%s",
	    ML_NAME_MAX, ml_s(qid, "NOQUEUE"), nrcpt,
	    ML_NAME_MAX + ML_ADDR_MAX + 8, relay != NULL && relay[0] != '\0' ? relay : "none",
	    d, 16, ml_s(dsn, "4.0.0"), 32, ml_s(status, "deferred"),
	    ML_REPLY_MAX, ml_s(reply, ""), dropped ? ", cc copy dropped" : "");
}

/* maillog_discarded - see maillog.h */
void
maillog_discarded(struct maillog *ml, const char *qid, const char *rcpt, int is_dsn)
{
	if (!ml_on(ml))
		return;
	ml_log(ml, "bounce", "%.*s: undeliverable %s to <%.*s> discarded: no notification is "
	    "sent for %s", ML_NAME_MAX, ml_s(qid, "NOQUEUE"),
	    is_dsn ? "delivery status notification" : "message", ML_MAIL_MAX, ml_s(rcpt, ""),
	    is_dsn ? "a bounce" : "the null sender");
}

/* ml_after - the smtpd "WHAT after CMD from unknown[ADDR]" lines */
static void
ml_after(struct maillog *ml, const char *what, const char *after, const char *addr)
{
	if (!ml_on(ml))
		return;
	ml_log(ml, "smtpd", "%s after %.*s from unknown[%.*s]", what, 32, ml_s(after, "CONNECT"),
	    ML_ADDR_MAX, addr != NULL && addr[0] != '\0' ? addr : "unknown");
}

/* maillog_lost - see maillog.h */
void
maillog_lost(struct maillog *ml, const char *after, const char *addr)
{
	ml_after(ml, "lost connection", after, addr);
}

/* maillog_timeout - see maillog.h */
void
maillog_timeout(struct maillog *ml, const char *after, const char *addr)
{
	ml_after(ml, "timeout", after, addr);
}

/* maillog_too_many_errors - see maillog.h */
void
maillog_too_many_errors(struct maillog *ml, const char *after, const char *addr)
{
	ml_after(ml, "too many errors", after, addr);
}

/* maillog_non_smtp - see maillog.h */
void
maillog_non_smtp(struct maillog *ml, const char *addr)
{
	if (!ml_on(ml))
		return;
	ml_log(ml, "smtpd", "warning: non-SMTP command from unknown[%.*s]", ML_ADDR_MAX,
	    ml_s(addr, "unknown"));
}

/* maillog_conn_limit - see maillog.h */
void
maillog_conn_limit(struct maillog *ml, unsigned n, const char *addr, int proxy_wait)
{
	if (!ml_on(ml))
		return;
	ml_log(ml, "smtpd", "warning: Connection concurrency limit exceeded: %u from "
	    "unknown[%.*s] for service smtp%s", n, ML_ADDR_MAX, ml_s(addr, "unknown"),
	    proxy_wait ? " (waiting for PROXY headers)" : "");
}

/* maillog_too_many_sessions - see maillog.h */
void
maillog_too_many_sessions(struct maillog *ml, size_t n, const char *addr)
{
	if (!ml_on(ml))
		return;
	ml_log(ml, "smtpd", "warning: too many sessions (%zu): connection from unknown[%.*s] "
	    "refused", n, ML_ADDR_MAX, ml_s(addr, "unknown"));
}

/* maillog_proxy_bad - see maillog.h */
void
maillog_proxy_bad(struct maillog *ml, const char *what, const char *addr)
{
	if (!ml_on(ml))
		return;
	ml_log(ml, "smtpd", "warning: haproxy read: %.*s PROXY header from [%.*s]", 32,
	    ml_s(what, "bad or unsupported"), ML_ADDR_MAX, ml_s(addr, "unknown"));
}

/* maillog_tls_from - see maillog.h */
void
maillog_tls_from(struct maillog *ml, const char *addr, const char *tls)
{
	if (!ml_on(ml))
		return;
	ml_log(ml, "smtpd", "Anonymous TLS connection established from unknown[%.*s]: %.*s",
	    ML_ADDR_MAX, ml_s(addr, "unknown"), ML_REPLY_MAX, ml_s(tls, ""));
}

/* maillog_tls_accept_error - see maillog.h */
void
maillog_tls_accept_error(struct maillog *ml, const char *addr, const char *why)
{
	if (!ml_on(ml))
		return;
	ml_log(ml, "smtpd", "SSL_accept error from unknown[%.*s]: %.*s", ML_ADDR_MAX,
	    ml_s(addr, "unknown"), ML_REPLY_MAX, ml_s(why, ""));
}

/* maillog_sasl_failed - see maillog.h; fail2ban's postfix-sasl filter reads this line */
void
maillog_sasl_failed(struct maillog *ml, const char *addr, const char *method)
{
	if (!ml_on(ml))
		return;
	ml_log(ml, "smtpd", "warning: unknown[%.*s]: SASL %.16s authentication failed: "
	    "authentication failure", ML_ADDR_MAX, ml_s(addr, "unknown"), ml_s(method, "PLAIN"));
}

/* maillog_sasl_blocked - see maillog.h */
void
maillog_sasl_blocked(struct maillog *ml, const char *addr, int secs, unsigned failures)
{
	if (!ml_on(ml))
		return;
	ml_log(ml, "smtpd", "warning: unknown[%.*s]: SASL authentication blocked for %ds after "
	    "%u failures", ML_ADDR_MAX, ml_s(addr, "unknown"), secs, failures);
}

/* maillog_sasl_refused - see maillog.h */
void
maillog_sasl_refused(struct maillog *ml, const char *addr)
{
	if (!ml_on(ml))
		return;
	ml_log(ml, "smtpd", "warning: unknown[%.*s]: SASL authentication refused: too many "
	    "failures", ML_ADDR_MAX, ml_s(addr, "unknown"));
}

/* maillog_dkim_signed - see maillog.h */
void
maillog_dkim_signed(struct maillog *ml, const char *qid, const char *domain)
{
	if (!ml_on(ml))
		return;
	ml_log(ml, "dkim", "%.*s: DKIM-Signature field added (d=%.*s)", ML_NAME_MAX,
	    ml_s(qid, "NOQUEUE"), ML_NAME_MAX, ml_s(domain, ""));
}

/* maillog_dkim_unsigned - see maillog.h */
void
maillog_dkim_unsigned(struct maillog *ml, const char *qid, const char *why)
{
	if (!ml_on(ml))
		return;
	ml_log(ml, "dkim", "%.*s: warning: message not signed: %.*s", ML_NAME_MAX,
	    ml_s(qid, "NOQUEUE"), ML_REPLY_MAX, ml_s(why, ""));
}

/* maillog_fatal - see maillog.h */
void
maillog_fatal(struct maillog *ml, const char *text)
{
	if (!ml_on(ml))
		return;
	ml_log(ml, "master", "fatal: %.*s", ML_REPLY_MAX, ml_s(text, ""));
}

/* maillog_disk - see maillog.h; the texts are SPEC §8's */
void
maillog_disk(struct maillog *ml, int level)
{
	if (!ml_on(ml))
		return;
	if (level >= 2)
		ml_log(ml, "smtpd", "warning: Data volume has less than 1%% free disk space");
	else if (level == 1)
		ml_log(ml, "smtpd", "warning: Data volume has less than 5%% free disk space");
	else
		ml_log(ml, "smtpd", "Data volume has 5%% or more free disk space again");
}

/* maillog_disk_size - see maillog.h */
void
maillog_disk_size(struct maillog *ml, const char *addr, uint64_t size, uint64_t free_bytes,
    uint64_t reserve)
{
	if (!ml_on(ml))
		return;
	ml_log(ml, "smtpd", "warning: Data volume has too little free space for a message of "
	    "%llu bytes from unknown[%.*s]: %llu bytes free, %llu kept in reserve",
	    (unsigned long long)size, ML_ADDR_MAX, ml_s(addr, "unknown"),
	    (unsigned long long)free_bytes, (unsigned long long)reserve);
}

/* maillog_tls_to - see maillog.h */
void
maillog_tls_to(struct maillog *ml, const char *trust, const char *peer, const char *tls)
{
	if (!ml_on(ml))
		return;
	ml_log(ml, "smtp", "%.*s TLS connection established to %.*s: %.*s", 16,
	    ml_s(trust, "Untrusted"), ML_NAME_MAX + ML_ADDR_MAX + 8, ml_s(peer, "none"),
	    ML_REPLY_MAX, ml_s(tls, ""));
}

/* maillog_tls_refused - see maillog.h */
void
maillog_tls_refused(struct maillog *ml, const char *peer, const char *reply)
{
	if (!ml_on(ml))
		return;
	ml_log(ml, "smtp", "warning: host %.*s refused to start TLS: %.*s; continuing without "
	    "TLS", ML_NAME_MAX + ML_ADDR_MAX + 8, ml_s(peer, "none"), ML_REPLY_MAX,
	    ml_s(reply, ""));
}

/* maillog_tls_required - see maillog.h */
void
maillog_tls_required(struct maillog *ml, const char *why, const char *relay)
{
	if (!ml_on(ml))
		return;
	ml_log(ml, "smtp", "warning: %.*s; TLS is required for %.*s: not delivering without it",
	    ML_REPLY_MAX, ml_s(why, ""), ML_NAME_MAX + ML_ADDR_MAX + 8, ml_s(relay, "none"));
}

/* maillog_tls_fallback - see maillog.h */
void
maillog_tls_fallback(struct maillog *ml, const char *why, const char *relay, int minutes)
{
	if (!ml_on(ml))
		return;
	ml_log(ml, "smtp", "warning: %.*s; trying %.*s again without TLS (and for the next %d "
	    "minutes)", ML_REPLY_MAX, ml_s(why, ""), ML_NAME_MAX + ML_ADDR_MAX + 8,
	    ml_s(relay, "none"), minutes);
}
