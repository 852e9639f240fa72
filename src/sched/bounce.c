/*
 * bounce.c - RFC 3464 delivery status notifications
 *
 * Owns:     nothing; bounce_build() returns malloc'd text the caller frees.
 * Lifetime: stateless; every argument is borrowed for the call.
 * Errors:   NULL with errno set: ENOMEM, or EINVAL for a null sender, no
 *           recipient or an index out of range (a caller's bug, not fatal).
 * Context:  event-loop thread (pure computation, no I/O).
 *
 * The message (CRLF line ends throughout, every line <= 998 octets):
 *
 *   From: MAILER-DAEMON@host (Mail Delivery System)
 *   To: <sender>
 *   Subject: Undelivered Mail Returned to Sender    (or: Delayed Mail (still being retried))
 *   Date, Message-ID, Auto-Submitted: auto-replied, MIME-Version: 1.0
 *   Content-Type: multipart/report; report-type=delivery-status; boundary="..."
 *
 *   part 1  text/plain: the explanation, like Postfix's, and each recipient with its reply
 *   part 2  message/delivery-status (RFC 3464 §2): per-message fields
 *           (Reporting-MTA, X-Mtad-Queue-ID, X-Mtad-Sender, Arrival-Date), then one
 *           block per recipient (Final-Recipient, Action, Status, Diagnostic-Code,
 *           Last-Attempt-Date)
 *   part 3  text/rfc822-headers (RFC 6522 §4): the original header section
 *
 * When an address is not ASCII (SMTPUTF8 mail), parts 2 and 3 become
 * message/global-delivery-status and message/global-headers with "utf-8"
 * address types (RFC 6533). 8-bit octets anywhere set
 * "Content-Transfer-Encoding: 8bit" on the part that holds them.
 *
 * The boundary is "QUEUEID.SECONDS/host", made longer until it occurs
 * nowhere in the parts it separates (RFC 2046 §5.1.1), so the original
 * headers cannot end a part early.
 */
#include "sched/bounce.h"
#include "queue/queue.h"
#include "lib/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BOUNCE_HDRS_MAX   (64 * 1024)  /* original header section kept, cut at a line end */
#define BOUNCE_REPLY_MAX  2000         /* one recipient's diagnostic text */
#define BOUNCE_FOLD       76           /* fold text and fields near this column */
#define BOUNCE_LINE_MAX   998          /* RFC 5322 §2.1.1 hard limit, CRLF excluded */
#define BOUNCE_BOUNDARY_MAX 70         /* RFC 2046 §5.1.1 */
#define BOUNCE_ADDR_MAX   512          /* an address as quoted (mtad's are <= 320) */

/* A growing output buffer; any failure sticks and is reported once at the end. */
struct bounce_buf {
	char  *p;
	size_t len, cap;
	int    failed;
};

/* bb_reserve - room for n more octets plus a NUL */
static int
bb_reserve(struct bounce_buf *b, size_t n)
{
	size_t ncap;
	char *np;

	if (b->failed)
		return -1;
	if (b->len + n + 1 <= b->cap)
		return 0;
	ncap = b->cap != 0 ? b->cap : 4096;
	while (ncap < b->len + n + 1) {
		if (ncap > SIZE_MAX / 2) {
			b->failed = 1;
			return -1;
		}
		ncap *= 2;
	}
	if ((np = realloc(b->p, ncap)) == NULL) {
		b->failed = 1;
		return -1;
	}
	b->p = np;
	b->cap = ncap;
	return 0;
}

static void
bb_add(struct bounce_buf *b, const char *s, size_t n)
{
	if (bb_reserve(b, n) < 0)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
bb_puts(struct bounce_buf *b, const char *s)
{
	bb_add(b, s, strlen(s));
}

/* bb_printf - append formatted text; only short fixed-format pieces go through here */
static void __attribute__((format(printf, 2, 3)))
bb_printf(struct bounce_buf *b, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		b->failed = 1;      /* a bug: callers bound every %s */
		return;
	}
	bb_add(b, tmp, (size_t)n);
}

/*
 * bounce_clean - s as one line: CR, LF, TAB and other controls become a
 * space (a reply from a next hop may hold anything), NUL-terminated, at
 * most max octets. In ASCII mode 8-bit octets become '?'.
 */
static void
bounce_clean(char *dst, size_t size, const char *s, size_t max, int keep8bit)
{
	size_t i, o = 0;
	unsigned char c;

	for (i = 0; s != NULL && s[i] != '\0' && i < max && o + 1 < size; i++) {
		c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			c = ' ';
		else if (c >= 0x80 && !keep8bit)
			c = '?';
		dst[o++] = (char)c;
	}
	/* no trailing blanks (a reply ended by CRLF) */
	while (o > 0 && dst[o - 1] == ' ')
		o--;
	dst[o] = '\0';
}

/* bounce_has8bit - any octet >= 0x80 in s[0..n) */
static int
bounce_has8bit(const char *s, size_t n)
{
	size_t i;

	for (i = 0; s != NULL && i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 1;
	return 0;
}

/*
 * bounce_date - RFC 5322 §3.3 date-time in local time: "Fri, 03 Nov 2023
 * 09:26:40 +0100". Returns 0 or -1.
 */
static int
bounce_date(char *buf, size_t size, uint64_t us)
{
	static const char *const days[7] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const months[12] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t t = (time_t)(us / 1000000);
	struct tm tm;
	long off;
	char sign = '+';

	if (localtime_r(&t, &tm) == NULL || tm.tm_wday < 0 || tm.tm_wday > 6 ||
	    tm.tm_mon < 0 || tm.tm_mon > 11)
		return -1;
	off = tm.tm_gmtoff / 60;
	if (off < 0) {
		sign = '-';
		off = -off;
	}
	return util_bsnprintf(buf, size, "%s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld",
	    days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
	    tm.tm_hour, tm.tm_min, tm.tm_sec, sign, off / 60, off % 60) < 0 ? -1 : 0;
}

/*
 * bounce_status - the Status: field (RFC 3464 §2.3.4): the recipient's
 * enhanced code when it is well formed, with its class made to agree with
 * the action (a recipient that failed after 4xx replies, at the end of
 * its lifetime, reports 5.x.y); otherwise 5.0.0 / 4.0.0.
 */
static void
bounce_status(char *out, size_t size, const char *dsn, enum bounce_kind kind)
{
	char cls = kind == BOUNCE_DELAYED ? '4' : '5';
	size_t i, digits = 0, dots = 0;
	int ok = dsn != NULL && (dsn[0] == '2' || dsn[0] == '4' || dsn[0] == '5') &&
	    dsn[1] == '.';

	for (i = 2; ok && dsn[i] != '\0'; i++) {
		if (dsn[i] >= '0' && dsn[i] <= '9') {
			if (++digits > 3)
				ok = 0;
		} else if (dsn[i] == '.' && digits > 0 && dots == 0) {
			dots++;
			digits = 0;
		} else
			ok = 0;
	}
	if (!ok || dots != 1 || digits == 0 || i >= size) {
		util_strlcpy(out, kind == BOUNCE_DELAYED ? "4.0.0" : "5.0.0", size);
		return;
	}
	util_strlcpy(out, dsn, size);
	out[0] = cls;
}

/* bounce_is_smtp_reply - "ddd" then space, '-' or end: the text came from an SMTP server */
static int
bounce_is_smtp_reply(const char *r)
{
	return r[0] >= '2' && r[0] <= '5' && r[1] >= '0' && r[1] <= '9' &&
	    r[2] >= '0' && r[2] <= '9' && (r[3] == ' ' || r[3] == '-' || r[3] == '\0');
}

/*
 * bounce_fold - append prefix and text (one line, no controls), folded at
 * spaces before BOUNCE_FOLD columns; continuation lines start with indent
 * (RFC 5322 §2.2.3 folding for fields). A word longer than a line is cut
 * at BOUNCE_LINE_MAX - 8 octets, so no line ever exceeds 998.
 */
static void
bounce_fold(struct bounce_buf *b, const char *prefix, const char *text, const char *indent)
{
	const size_t hard = BOUNCE_LINE_MAX - 8, ilen = strlen(indent);
	size_t col = strlen(prefix), n = strlen(text), i = 0, w;
	int fresh = 0;      /* just after an indent: no space before the word */

	bb_puts(b, prefix);
	for (;;) {
		while (i < n && text[i] == ' ')
			i++;
		if (i >= n)
			break;
		for (w = 0; i + w < n && text[i + w] != ' ' && w < hard; w++)
			;
		if (!fresh && col + 1 + w > BOUNCE_FOLD) {
			bb_puts(b, "\r\n");
			bb_puts(b, indent);
			col = ilen;
			fresh = 1;
		}
		if (!fresh) {
			bb_puts(b, " ");
			col++;
		}
		bb_add(b, text + i, w);
		col += w;
		i += w;
		fresh = 0;
	}
	bb_puts(b, "\r\n");
}

/*
 * bounce_headers_len - how much of orig to quote: at most BOUNCE_HDRS_MAX,
 * cut after a line end, and never the empty line that ends the section.
 */
static size_t
bounce_headers_len(const char *orig, size_t len)
{
	size_t i;

	if (orig == NULL || len == 0 || orig[0] == '\n' ||
	    (len > 1 && orig[0] == '\r' && orig[1] == '\n'))
		return 0;
	/* stop at the first empty line, in case the caller gave more */
	for (i = 0; i < len; i++) {
		if (orig[i] == '\n' && i + 1 < len &&
		    (orig[i + 1] == '\n' || (orig[i + 1] == '\r' && i + 2 < len && orig[i + 2] == '\n'))) {
			len = i + 1;
			break;
		}
	}
	if (len > BOUNCE_HDRS_MAX) {
		len = BOUNCE_HDRS_MAX;
		while (len > 0 && orig[len - 1] != '\n')
			len--;
	}
	return len;
}

/* bounce_add_headers - the original header section with CRLF line ends and no NUL */
static void
bounce_add_headers(struct bounce_buf *b, const char *orig, size_t len)
{
	size_t i, start = 0;

	for (i = 0; i < len; i++) {
		if (orig[i] == '\r' && i + 1 < len && orig[i + 1] == '\n')
			continue;           /* the CR of a CRLF */
		if (orig[i] == '\n' || orig[i] == '\r' || orig[i] == '\0') {
			size_t end = i;
			if (orig[i] == '\n' && end > start && orig[end - 1] == '\r')
				end--;
			bb_add(b, orig + start, end - start);
			if (orig[i] == '\0') {
				bb_puts(b, " ");   /* a NUL cannot be sent: a space */
				start = i + 1;
				continue;
			}
			bb_puts(b, "\r\n");
			start = i + 1;
		}
	}
	if (start < len) {
		bb_add(b, orig + start, len - start);
		bb_puts(b, "\r\n");
	}
}

/* bounce_boundary_ok - the boundary occurs in none of the given texts */
static int
bounce_boundary_ok(const char *bd, const char *t1, size_t n1, const char *t2, size_t n2)
{
	size_t bl = strlen(bd);

	return (t1 == NULL || memmem(t1, n1, bd, bl) == NULL) &&
	    (t2 == NULL || memmem(t2, n2, bd, bl) == NULL);
}

/*
 * bounce_build - see bounce.h. The three parts are built first, then a
 * boundary that occurs in none of them, then the message around them.
 */
char *
bounce_build(const char *hostname, const struct queue_msg *m,
    const size_t *idx, size_t nidx, enum bounce_kind kind,
    const char *orig_headers, size_t orig_len, uint64_t now_us, size_t *len_out)
{
	struct bounce_buf human = { 0 }, report = { 0 }, msg = { 0 };
	char host[256], sender[BOUNCE_ADDR_MAX + 1], rcpt[BOUNCE_ADDR_MAX + 1], reply[BOUNCE_REPLY_MAX + 1];
	char date[64], arrival[64], status[16], boundary[BOUNCE_BOUNDARY_MAX + 1];
	char prefix[BOUNCE_ADDR_MAX + 8];
	int utf8 = 0, human8 = 0, hdrs8, tries;
	size_t i, hlen;
	const char *atype;

	if (len_out != NULL)
		*len_out = 0;
	if (m == NULL || m->sender == NULL || m->sender[0] == '\0' || idx == NULL || nidx == 0) {
		errno = EINVAL;
		return NULL;
	}
	for (i = 0; i < nidx; i++) {
		if (idx[i] >= m->nrcpt || m->rcpt[idx[i]].addr == NULL) {
			errno = EINVAL;
			return NULL;
		}
		if (bounce_has8bit(m->rcpt[idx[i]].addr, strlen(m->rcpt[idx[i]].addr)))
			utf8 = 1;
	}
	if (bounce_has8bit(m->sender, strlen(m->sender)))
		utf8 = 1;
	/* the host name goes into headers and the boundary: LDH and dots only */
	bounce_clean(host, sizeof(host), hostname != NULL && hostname[0] != '\0' ?
	    hostname : "localhost", sizeof(host) - 1, 0);
	for (i = 0; host[i] != '\0'; i++)
		if (!((host[i] >= 'a' && host[i] <= 'z') || (host[i] >= 'A' && host[i] <= 'Z') ||
		    (host[i] >= '0' && host[i] <= '9') || host[i] == '-' || host[i] == '.'))
			host[i] = '-';
	bounce_clean(sender, sizeof(sender), m->sender, sizeof(sender) - 1, 1);
	if (bounce_date(date, sizeof(date), now_us) < 0 ||
	    bounce_date(arrival, sizeof(arrival), m->arrival_us) < 0) {
		errno = EINVAL;
		return NULL;
	}
	atype = utf8 ? "utf-8" : "rfc822";

	/* Part 1: the explanation for people (after Postfix's bounce templates). */
	bb_printf(&human, "This is the mail system at host %s.\r\n\r\n", host);
	if (kind == BOUNCE_DELAYED) {
		bb_puts(&human,
		    "####################################################################\r\n"
		    "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\r\n"
		    "####################################################################\r\n"
		    "\r\n"
		    "Your message could not be delivered yet to one or more recipients.\r\n"
		    "The mail system will keep trying; you will be notified if it\r\n"
		    "finally cannot be delivered.\r\n\r\n");
	} else {
		bb_puts(&human,
		    "I'm sorry to have to inform you that your message could not\r\n"
		    "be delivered to one or more recipients. The headers of your\r\n"
		    "message are attached below.\r\n\r\n");
	}
	bb_puts(&human,
	    "For further assistance, please send mail to postmaster.\r\n\r\n"
	    "If you do so, please include this problem report. You can\r\n"
	    "delete your own text from the attached returned message.\r\n\r\n"
	    "                   The mail system\r\n");
	for (i = 0; i < nidx; i++) {
		const struct queue_rcpt *r = &m->rcpt[idx[i]];

		bounce_clean(rcpt, sizeof(rcpt), r->addr, sizeof(rcpt) - 1, 1);
		bounce_clean(reply, sizeof(reply), r->last_reply, BOUNCE_REPLY_MAX, 1);
		if (reply[0] == '\0')
			util_strlcpy(reply, kind == BOUNCE_DELAYED ? "delivery temporarily deferred" :
			    "delivery failed", sizeof(reply));
		if (bounce_has8bit(reply, strlen(reply)) || bounce_has8bit(rcpt, strlen(rcpt)))
			human8 = 1;
		if (util_bsnprintf(prefix, sizeof(prefix), "<%s>:", rcpt) < 0) {
			errno = EINVAL;
			goto fail;
		}
		bb_puts(&human, "\r\n");
		bounce_fold(&human, prefix, reply, "    ");
	}

	/* Part 2: the machine-readable report, RFC 3464 §2.2 and §2.3. */
	bb_printf(&report, "Reporting-MTA: dns; %s\r\n", host);
	bb_printf(&report, "X-Mtad-Queue-ID: %.*s\r\n", QUEUE_ID_LEN, m->id);
	bb_printf(&report, "X-Mtad-Sender: %s; ", atype);
	bb_puts(&report, sender);
	bb_puts(&report, "\r\n");
	bb_printf(&report, "Arrival-Date: %s\r\n", arrival);
	for (i = 0; i < nidx; i++) {
		const struct queue_rcpt *r = &m->rcpt[idx[i]];

		bounce_clean(rcpt, sizeof(rcpt), r->addr, sizeof(rcpt) - 1, utf8);
		bounce_status(status, sizeof(status), r->dsn, kind);
		bb_printf(&report, "\r\nFinal-Recipient: %s; ", atype);
		bb_puts(&report, rcpt);
		bb_puts(&report, "\r\n");
		bb_printf(&report, "Action: %s\r\n", kind == BOUNCE_DELAYED ? "delayed" : "failed");
		bb_printf(&report, "Status: %s\r\n", status);
		/* RFC 3464 §2.3.6: printable ASCII unless the report is the global kind */
		bounce_clean(reply, sizeof(reply), r->last_reply, BOUNCE_REPLY_MAX, utf8);
		if (reply[0] != '\0') {
			const char *dtype = bounce_is_smtp_reply(reply) ? "smtp" : "X-Mtad";
			if (util_bsnprintf(prefix, sizeof(prefix), "Diagnostic-Code: %s;", dtype) < 0) {
				errno = EINVAL;
				goto fail;
			}
			bounce_fold(&report, prefix, reply, " ");
		}
		bb_printf(&report, "Last-Attempt-Date: %s\r\n", date);
	}

	hlen = bounce_headers_len(orig_headers, orig_len);
	hdrs8 = bounce_has8bit(orig_headers, hlen);
	if (human.failed || report.failed) {
		errno = ENOMEM;
		goto fail;
	}

	/* A boundary found in no part; normally the first try. */
	for (tries = 0; ; tries++) {
		int n;

		if (tries == 0)
			n = util_bsnprintf(boundary, sizeof(boundary), "%.*s.%llu/%.30s",
			    QUEUE_ID_LEN, m->id, (unsigned long long)(now_us / 1000000), host);
		else
			n = util_bsnprintf(boundary, sizeof(boundary), "%.*s.%llu=_%d/%.30s",
			    QUEUE_ID_LEN, m->id, (unsigned long long)(now_us / 1000000), tries, host);
		if (n < 0 || tries > 1000) {
			errno = EINVAL;
			goto fail;
		}
		if (bounce_boundary_ok(boundary, human.p, human.len, report.p, report.len) &&
		    bounce_boundary_ok(boundary, orig_headers, hlen, NULL, 0))
			break;
	}

	/* The message: header section (RFC 5322, RFC 3834 Auto-Submitted), then the parts. */
	bb_printf(&msg, "From: MAILER-DAEMON@%s (Mail Delivery System)\r\n", host);
	bb_puts(&msg, "To: <");
	bb_puts(&msg, sender);
	bb_puts(&msg, ">\r\n");
	bb_printf(&msg, "Subject: %s\r\n", kind == BOUNCE_DELAYED ?
	    "Delayed Mail (still being retried)" : "Undelivered Mail Returned to Sender");
	bb_printf(&msg, "Date: %s\r\n", date);
	bb_printf(&msg, "Message-ID: <%llu.%06llu.%.*s.%s@%s>\r\n",
	    (unsigned long long)(now_us / 1000000), (unsigned long long)(now_us % 1000000),
	    QUEUE_ID_LEN, m->id, kind == BOUNCE_DELAYED ? "delay" : "bounce", host);
	bb_puts(&msg, "Auto-Submitted: auto-replied\r\n");
	bb_puts(&msg, "MIME-Version: 1.0\r\n");
	bb_puts(&msg, "Content-Type: multipart/report; report-type=delivery-status;\r\n");
	bb_printf(&msg, "\tboundary=\"%s\"\r\n", boundary);
	if (human8 || utf8 || hdrs8)
		bb_puts(&msg, "Content-Transfer-Encoding: 8bit\r\n");
	bb_puts(&msg, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");

	bb_printf(&msg, "--%s\r\n", boundary);
	bb_puts(&msg, "Content-Description: Notification\r\n");
	bb_printf(&msg, "Content-Type: text/plain; charset=%s\r\n", human8 ? "utf-8" : "us-ascii");
	if (human8)
		bb_puts(&msg, "Content-Transfer-Encoding: 8bit\r\n");
	bb_puts(&msg, "\r\n");
	bb_add(&msg, human.p, human.len);

	bb_printf(&msg, "\r\n--%s\r\n", boundary);
	bb_puts(&msg, "Content-Description: Delivery report\r\n");
	bb_printf(&msg, "Content-Type: message/%sdelivery-status\r\n", utf8 ? "global-" : "");
	if (utf8)
		bb_puts(&msg, "Content-Transfer-Encoding: 8bit\r\n");
	bb_puts(&msg, "\r\n");
	bb_add(&msg, report.p, report.len);

	bb_printf(&msg, "\r\n--%s\r\n", boundary);
	bb_puts(&msg, "Content-Description: Undelivered Message Headers\r\n");
	bb_printf(&msg, "Content-Type: %s\r\n", utf8 ? "message/global-headers" :
	    "text/rfc822-headers");
	if (hdrs8)
		bb_puts(&msg, "Content-Transfer-Encoding: 8bit\r\n");
	bb_puts(&msg, "\r\n");
	bounce_add_headers(&msg, orig_headers, hlen);
	bb_printf(&msg, "\r\n--%s--\r\n", boundary);

	if (msg.failed) {
		errno = ENOMEM;
		goto fail;
	}
	free(human.p);
	free(report.p);
	if (len_out != NULL)
		*len_out = msg.len;
	return msg.p;
fail:
	free(human.p);
	free(report.p);
	free(msg.p);
	return NULL;
}
