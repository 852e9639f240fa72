/*
 * sendmail_smtp.c - sendmail's SMTP client: one connection to mtad's first
 *                   smtp_listen address, the transaction for the message on
 *                   stdin, and the -bs relay
 *
 * Owns:     the connection (s->fd) and the reply buffer of struct sendmail.
 * Lifetime: one connection per run, closed before the functions return.
 * Errors:   sysexits(3) statuses with the reason on stderr: EX_TEMPFAIL
 *           mtad unreachable or a 4xx reply, EX_NOUSER a recipient refused
 *           with 550/551/553, EX_UNAVAILABLE other 5xx, EX_PROTOCOL a
 *           malformed reply, EX_OSERR out of memory.
 * Context:  blocking I/O with the deadlines of RFC 5321 §4.5.3.2.
 *
 * Durability is mtad's (SPEC §4): success only after mtad's 250 reply to
 * the end of data, which it sends once the message is fsync'd.
 */
#include "ctl/ctl_int.h"
#include "ctl/sendmail.h"
#include "lib/util.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <unistd.h>

/* sm_getline - one reply line (CRLF removed) into line; 0, or -1 (errno) */
static int
sm_getline(struct sendmail *s, char *line, size_t size, int timeout_ms)
{
	size_t n = 0;

	for (;;) {
		while (s->rpos < s->rlen) {
			char c = s->rbuf[s->rpos++];

			if (c == '\n') {
				if (n > 0 && line[n - 1] == '\r')
					n--;
				line[n] = '\0';
				return 0;
			}
			if (n + 1 < size)
				line[n++] = c;      /* longer lines are cut, not kept */
		}
		ssize_t r = ctl_net_read(s->fd, s->rbuf, sizeof(s->rbuf), timeout_ms);

		if (r < 0)
			return -1;
		if (r == 0) {
			errno = ECONNRESET;
			return -1;
		}
		s->rlen = (size_t)r;
		s->rpos = 0;
	}
}

/* sm_append - add text to a reply summary; what does not fit is cut (it is only shown) */
static void
sm_append(char *buf, size_t size, size_t *used, const char *text)
{
	size_t n = strlen(text);

	if (*used + 1 >= size)
		return;
	if (n > size - 1 - *used)
		n = size - 1 - *used;
	memcpy(buf + *used, text, n);
	*used += n;
	buf[*used] = '\0';
}

/*
 * sm_reply - read one (multi-line) reply: s->code and s->reply; 0, or -1
 * (I/O error, timeout or malformed: code 0). With ehlo, note extensions.
 */
static int
sm_reply(struct sendmail *s, int timeout_ms, int ehlo)
{
	char line[SENDMAIL_LINE_MAX];
	size_t used = 0;

	s->code = 0;
	s->reply[0] = '\0';
	for (int i = 0; i < SENDMAIL_REPLY_LINES; i++) {
		long long code;
		char num[4];
		size_t l;

		if (sm_getline(s, line, sizeof(line), timeout_ms) < 0) {
			util_bsnprintf(s->reply, sizeof(s->reply), "%s", strerror(errno));
			return -1;
		}
		l = strlen(line);
		if (l < 3 || (l > 3 && line[3] != ' ' && line[3] != '-')) {
			util_bsnprintf(s->reply, sizeof(s->reply), "malformed reply: %.200s", line);
			return -1;
		}
		memcpy(num, line, 3);
		num[3] = '\0';
		if (util_strtonum(num, 200, 599, &code) < 0 || (s->code != 0 && s->code != code)) {
			util_bsnprintf(s->reply, sizeof(s->reply), "malformed reply: %.200s", line);
			return -1;
		}
		s->code = (int)code;
		if (ehlo && i > 0 && l > 4 && util_ncaseeq(line + 4, l - 4 > 8 ? 8 : l - 4, "SMTPUTF8") &&
		    (l == 12 || line[12] == ' '))
			s->smtputf8 = 1;
		if (!ehlo || i == 0) {
			if (used > 0)
				sm_append(s->reply, sizeof(s->reply), &used, "; ");
			sm_append(s->reply, sizeof(s->reply), &used, line);
		}
		if (l == 3 || line[3] == ' ')
			return 0;
	}
	util_bsnprintf(s->reply, sizeof(s->reply), "reply with more than %d lines", SENDMAIL_REPLY_LINES);
	s->code = 0;
	return -1;
}

/* sm_cmd - send one command line and read its reply; 0 or -1 */
static int
sm_cmd(struct sendmail *s, int timeout_ms, int ehlo, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
sm_cmd(struct sendmail *s, int timeout_ms, int ehlo, const char *fmt, ...)
{
	char line[2100];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2) {
		util_bsnprintf(s->reply, sizeof(s->reply), "command too long");
		s->code = 0;
		return -1;
	}
	if (s->verbose)
		fprintf(stderr, ">>> %s\n", line);
	memcpy(line + n, "\r\n", 2);
	if (ctl_net_write_all(s->fd, line, (size_t)n + 2, timeout_ms) < 0) {
		util_bsnprintf(s->reply, sizeof(s->reply), "%s", strerror(errno));
		s->code = 0;
		return -1;
	}
	if (sm_reply(s, timeout_ms, ehlo) < 0)
		return -1;
	if (s->verbose)
		fprintf(stderr, "<<< %s\n", s->reply);
	return 0;
}

/* sm_fail - report a failed step; the exit status for the reply code */
static int
sm_fail(struct sendmail *s, const char *what, int rcpt_step)
{
	fprintf(stderr, "%s: %s: %s\n", s->prog, what, s->reply[0] ? s->reply : "failed");
	if (s->code == 0)
		return s->reply[0] != '\0' && strncmp(s->reply, "malformed", 9) == 0 ?
		    EX_PROTOCOL : EX_TEMPFAIL;
	if (s->code >= 400 && s->code < 500)
		return EX_TEMPFAIL;
	if (rcpt_step && (s->code == 550 || s->code == 551 || s->code == 553))
		return EX_NOUSER;
	if (s->code >= 500)
		return EX_UNAVAILABLE;
	return EX_PROTOCOL;
}

static void
sm_quit(struct sendmail *s)
{
	if (s->fd >= 0) {
		(void)ctl_net_write_all(s->fd, "QUIT\r\n", 6, 5000);
		(void)sm_reply(s, 5000, 0);
		close(s->fd);
		s->fd = -1;
	}
}

/* sm_connect - connect and read the greeting; 0 or an exit status */
static int
sm_connect(struct sendmail *s)
{
	if ((s->fd = ctl_net_connect(s->host, s->port, SENDMAIL_CONNECT_MS)) < 0) {
		fprintf(stderr, "%s: cannot connect to mtad at %s port %d: %s\n", s->prog,
		    s->host, s->port, strerror(errno));
		return EX_TEMPFAIL;
	}
	if (sm_reply(s, SENDMAIL_REPLY_MS, 0) < 0 || s->code != 220) {
		int rc = sm_fail(s, "greeting", 0);

		close(s->fd);
		s->fd = -1;
		return rc;
	}
	return 0;
}

/* sm_needs_utf8 - a non-ASCII octet in the envelope */
static int
sm_needs_utf8(const struct sendmail *s)
{
	for (const char *p = s->sender; *p != '\0'; p++)
		if ((unsigned char)*p >= 0x80)
			return 1;
	for (size_t i = 0; i < s->nrcpt; i++)
		for (const char *p = s->rcpt[i]; *p != '\0'; p++)
			if ((unsigned char)*p >= 0x80)
				return 1;
	return 0;
}

static int
sm_write_cb(void *arg, const void *data, size_t len)
{
	struct sendmail *s = arg;

	return ctl_net_write_all(s->fd, data, len, SENDMAIL_REPLY_MS);
}

/* sendmail_smtp_submit - the SMTP transaction for the message on stdin; an exit status */
int
sendmail_smtp_submit(struct sendmail *s, struct sendmail_msg_reader *r)
{
	struct sendmail_msg_out *o = NULL;
	char from[1400];
	int rc;

	if ((rc = sm_connect(s)) != 0)
		return rc;
	if (sm_cmd(s, SENDMAIL_REPLY_MS, 1, "EHLO %s", s->myname) < 0)
		goto fail_ehlo;
	if (s->code != 250) {
		if (sm_cmd(s, SENDMAIL_REPLY_MS, 0, "HELO %s", s->myname) < 0 || s->code != 250)
			goto fail_ehlo;
	}
	if (sm_cmd(s, SENDMAIL_REPLY_MS, 0, "MAIL FROM:<%s>%s", s->sender,
	    sm_needs_utf8(s) && s->smtputf8 ? " SMTPUTF8" : "") < 0 || s->code != 250) {
		rc = sm_fail(s, "sender refused", 0);
		goto done;
	}
	for (size_t i = 0; i < s->nrcpt; i++) {
		if (sm_cmd(s, SENDMAIL_REPLY_MS, 0, "RCPT TO:<%s>", s->rcpt[i]) < 0 ||
		    (s->code != 250 && s->code != 251)) {
			char what[1200];

			util_bsnprintf(what, sizeof(what), "recipient <%.1000s> refused", s->rcpt[i]);
			rc = sm_fail(s, what, 1);
			goto done;
		}
	}
	if (sm_cmd(s, SENDMAIL_REPLY_MS, 0, "DATA") < 0 || s->code != 354) {
		rc = sm_fail(s, "DATA refused", 0);
		goto done;
	}
	if ((o = malloc(sizeof(*o))) == NULL) {
		rc = EX_OSERR;
		goto done;
	}
	sendmail_msg_out_init(o, sm_write_cb, s);
	if (!r->have_from) {
		if (sendmail_msg_from_header(s->fullname,
		    s->sender[0] != '\0' ? s->sender : "MAILER-DAEMON", from, sizeof(from)) < 0) {
			fprintf(stderr, "%s: full name too long\n", s->prog);
			rc = EX_DATAERR;
			goto done;
		}
		if (sendmail_msg_out_line(o, from, strlen(from)) < 0)
			goto write_err;
	}
	if (sendmail_msg_out_headers(o, r) < 0 || sendmail_msg_out_body(o, r) < 0)
		goto write_err;
	if (r->input_err != 0) {
		/* The data ended early: do not let a partial message through. */
		fprintf(stderr, "%s: cannot read the message: %s\n", s->prog,
		    strerror(r->input_err));
		close(s->fd);
		s->fd = -1;
		rc = EX_NOINPUT;
		goto done;
	}
	if (sm_reply(s, SENDMAIL_DATA_END_MS, 0) < 0 || s->code != 250) {
		rc = sm_fail(s, "message refused", 0);
		if (s->code >= 500)
			rc = EX_DATAERR;
		goto done;
	}
	if (s->verbose)
		fprintf(stderr, "<<< %s\n", s->reply);
	rc = EX_OK;
	goto done;
fail_ehlo:
	rc = sm_fail(s, "EHLO refused", 0);
	goto done;
write_err:
	/* mtad may have said why it stopped reading: show that */
	if (sm_reply(s, 5000, 0) < 0 || s->code < 400)
		util_bsnprintf(s->reply, sizeof(s->reply), "connection lost while sending the message");
	rc = sm_fail(s, "message not sent", 0);
done:
	free(o);
	sm_quit(s);
	return rc;
}

/*
 * sendmail_smtp_proxy - -bs: an SMTP session on stdin/stdout, relayed to mtad. Line
 * ends from the local client are made CRLF (local input is trusted); the
 * server's bytes pass unchanged. Ends when mtad closes the connection.
 */
int
sendmail_smtp_proxy(struct sendmail *s)
{
	unsigned char in[16384], out[2 * 16384];
	int stdin_open = 1, prev_cr = 0, rc;
	struct pollfd pfd[2];

	if ((s->fd = ctl_net_connect(s->host, s->port, SENDMAIL_CONNECT_MS)) < 0) {
		printf("421 4.3.0 mtad is not available\r\n");
		fflush(stdout);
		fprintf(stderr, "%s: cannot connect to mtad at %s port %d: %s\n", s->prog,
		    s->host, s->port, strerror(errno));
		return EX_TEMPFAIL;
	}
	for (;;) {
		int n = 0;

		pfd[0].fd = s->fd;
		pfd[0].events = POLLIN;
		pfd[1].fd = STDIN_FILENO;
		pfd[1].events = POLLIN;
		rc = poll(pfd, stdin_open ? 2 : 1, SENDMAIL_BS_IDLE_MS);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0) {
			fprintf(stderr, "%s: poll: %s\n", s->prog, strerror(errno));
			rc = EX_OSERR;
			break;
		}
		if (rc == 0) {
			fprintf(stderr, "%s: -bs session idle for too long\n", s->prog);
			rc = EX_TEMPFAIL;
			break;
		}
		if (pfd[0].revents != 0) {
			ssize_t r = ctl_net_read(s->fd, in, sizeof(in), 1000);

			if (r <= 0) {
				rc = EX_OK;     /* mtad closed (after QUIT, or a 421) */
				break;
			}
			if (ctl_net_write_all(STDOUT_FILENO, in, (size_t)r, SENDMAIL_REPLY_MS) < 0) {
				rc = EX_IOERR;
				break;
			}
		}
		if (stdin_open && pfd[1].revents != 0) {
			ssize_t r = read(STDIN_FILENO, in, sizeof(in));

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				stdin_open = 0;
				shutdown(s->fd, SHUT_WR);
				continue;
			}
			for (ssize_t i = 0; i < r; i++) {
				if (in[i] == '\n' && !prev_cr)
					out[n++] = '\r';
				out[n++] = in[i];
				prev_cr = in[i] == '\r';
			}
			if (ctl_net_write_all(s->fd, out, (size_t)n, SENDMAIL_REPLY_MS) < 0) {
				rc = EX_TEMPFAIL;
				break;
			}
		}
	}
	close(s->fd);
	s->fd = -1;
	return rc;
}

