/*
 * sendmail.c - main() of sendmail: the conventional local submission
 * interface (cron, PHP mail(), git), submitting over SMTP to the running
 * mtad on its first smtp_listen address
 *
 * Owns:     the command line, the configuration it read, one SMTP
 *           connection to mtad and the message reader (src/ctl/ctl_msg.c).
 * Lifetime: the process: one message (or one -bs session) per run.
 * Errors:   sysexits(3) codes with the reason on stderr: EX_USAGE bad
 *           options or no recipients, EX_DATAERR bad message or address,
 *           EX_NOINPUT unreadable input, EX_CONFIG bad configuration,
 *           EX_TEMPFAIL mtad unreachable or a 4xx reply, EX_NOUSER a
 *           recipient refused with 550/551/553, EX_UNAVAILABLE other 5xx,
 *           EX_PROTOCOL a malformed reply, EX_OSERR out of memory.
 * Context:  a short-lived process run by any local user; blocking I/O with
 *           deadlines. It needs no privileges: it is an SMTP client of
 *           mtad on the loopback address.
 *
 * Durability is mtad's (SPEC §4): exit 0 only after mtad's 250 reply to
 * the end of data, which it sends once the message is fsync'd. The message
 * is streamed (headers kept up to 1 MiB, the body never held whole); line
 * ends are made CRLF and lines dot-stuffed (src/ctl/ctl_msg.c). Nothing is
 * added except a From: header when the message has none (with -F's name);
 * mtad adds Received:, Message-ID: and Date:.
 */
#include "ctl/ctl.h"
#include "ctl/ctl_int.h"
#include "lib/util.h"
#include "mail/config.h"

#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <unistd.h>

extern char **environ;

#define SM_CONNECT_MS   10000
#define SM_REPLY_MS     300000      /* RFC 5321 §4.5.3.2: 5 minutes per command */
#define SM_DATA_END_MS  600000      /* 10 minutes for the end of data */
#define SM_LINE_MAX     2048        /* longest reply line kept */
#define SM_REPLY_LINES  100         /* most lines in one reply */
#define SM_BS_IDLE_MS   3600000     /* -bs: an hour without traffic ends it */

struct sm {
	const char *prog;
	const char *conf_arg;        /* -C */
	struct config *cfg;          /* NULL: unreadable, defaults used */
	char host[64];
	int  port;
	char myname[256];            /* EHLO name and the domain of bare names */
	char sender[1024];           /* "" = null sender */
	const char *fullname;        /* -F */
	int  opt_t, opt_i, verbose;
	char **rcpt;
	size_t nrcpt;
	int  fd;
	/* reply reader */
	char rbuf[8192];
	size_t rlen, rpos;
	int  code;
	char reply[SM_LINE_MAX];     /* the reply's lines, joined with "; " */
	int  smtputf8;               /* the server offers SMTPUTF8 */
};

static void
sm_usage(const char *prog)
{
	fprintf(stderr, "usage: %s [-t] [-i|-oi] [-f sender] [-F name] [-C config] [rcpt ...]\n"
	    "       %s -bs | -bp | -q\n", prog, prog);
}

/* sm_valid_addr - no control characters, no space or <> outside a quoted local part */
static int
sm_valid_addr(const char *a)
{
	int q = 0;

	for (; *a != '\0'; a++) {
		unsigned char c = (unsigned char)*a;

		if (c < 0x20 || c == 0x7f)
			return 0;
		if (c == '"')
			q = !q;
		else if (c == '\\' && q && a[1] != '\0')
			a++;
		else if (!q && (c == ' ' || c == '<' || c == '>'))
			return 0;
	}
	return !q;
}

/* sm_qualify - "user" -> "user@myname"; a copy, or NULL (ENOMEM) */
static char *
sm_qualify(const struct sm *s, const char *a)
{
	char buf[1100];

	if (strchr(a, '@') != NULL || a[0] == '\0')
		return strdup(a);
	if (util_bsnprintf(buf, sizeof(buf), "%s@%s", a, s->myname) < 0) {
		errno = E2BIG;
		return NULL;
	}
	return strdup(buf);
}

/* sm_set_sender - -f's value or the invoking user @ myname */
static int
sm_set_sender(struct sm *s, const char *opt_f)
{
	char tmp[1024];
	const char *name;
	struct passwd *pw;

	if (opt_f != NULL) {
		size_t n = strlen(opt_f);

		if (n >= 2 && opt_f[0] == '<' && opt_f[n - 1] == '>') {
			if (n - 2 >= sizeof(tmp))
				return -1;
			memcpy(tmp, opt_f + 1, n - 2);
			tmp[n - 2] = '\0';
		} else if (util_strlcpy(tmp, opt_f, sizeof(tmp)) >= sizeof(tmp))
			return -1;
		if (tmp[0] == '\0') {
			s->sender[0] = '\0';
			return 0;
		}
	} else {
		pw = getpwuid(getuid());
		name = pw != NULL ? pw->pw_name : getenv("LOGNAME");
		if (name == NULL || name[0] == '\0')
			name = "nobody";
		if (util_strlcpy(tmp, name, sizeof(tmp)) >= sizeof(tmp))
			return -1;
	}
	if (!sm_valid_addr(tmp))
		return -1;
	if (strchr(tmp, '@') != NULL)
		return util_strlcpy(s->sender, tmp, sizeof(s->sender)) >= sizeof(s->sender) ? -1 : 0;
	return util_bsnprintf(s->sender, sizeof(s->sender), "%s@%s", tmp, s->myname);
}

/* sm_add_rcpts - qualify, check and append addresses (list is consumed) */
static int
sm_add_rcpts(struct sm *s, char **list, size_t n)
{
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		char *q = NULL, **nr;
		int dup = 0;

		if (rc == 0 && !sm_valid_addr(list[i])) {
			fprintf(stderr, "%s: bad recipient address: %s\n", s->prog, list[i]);
			rc = EX_DATAERR;
		}
		if (rc == 0 && (q = sm_qualify(s, list[i])) == NULL)
			rc = EX_OSERR;
		for (size_t k = 0; rc == 0 && k < s->nrcpt; k++)
			if (strcasecmp(s->rcpt[k], q) == 0)
				dup = 1;
		if (rc == 0 && !dup) {
			if (s->nrcpt >= CTL_MSG_RCPT_MAX) {
				fprintf(stderr, "%s: more than %d recipients\n", s->prog,
				    CTL_MSG_RCPT_MAX);
				rc = EX_DATAERR;
			} else if ((nr = realloc(s->rcpt, (s->nrcpt + 1) * sizeof(*nr))) == NULL) {
				rc = EX_OSERR;
			} else {
				s->rcpt = nr;
				s->rcpt[s->nrcpt++] = q;
				q = NULL;
			}
		}
		free(q);
		free(list[i]);
	}
	free(list);
	return rc;
}

/* sm_config - smtp_listen[0] and hostname from the configuration, or defaults */
static int
sm_config(struct sm *s)
{
	const char *path = ctl_config_path(s->conf_arg);
	char err[2048];

	s->port = 25;
	util_strlcpy(s->host, "127.0.0.1", sizeof(s->host));
	if (gethostname(s->myname, sizeof(s->myname)) < 0 || s->myname[0] == '\0')
		util_strlcpy(s->myname, "localhost", sizeof(s->myname));
	s->myname[sizeof(s->myname) - 1] = '\0';
	if (access(path, R_OK) < 0 && s->conf_arg == NULL && getenv("MTAD_CONFIG") == NULL &&
	    (errno == ENOENT || errno == EACCES)) {
		/* No readable default configuration: mtad on 127.0.0.1:25. */
		if (s->verbose)
			fprintf(stderr, "%s: %s: %s; using 127.0.0.1:25\n", s->prog, path,
			    strerror(errno));
		return 0;
	}
	if ((s->cfg = config_load(path, environ, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s: %s\n", s->prog, err);
		return EX_CONFIG;
	}
	if (s->cfg->n_smtp_listen > 0) {
		const struct listen_addr *la = &s->cfg->smtp_listen[0];
		char addr[64];
		const char *p = la->text, *colon;

		/* text is "a.b.c.d:port" or "[v6]:port" */
		if (p[0] == '[') {
			const char *rb = strchr(p, ']');

			if (rb == NULL || (size_t)(rb - p - 1) >= sizeof(addr))
				goto bad;
			memcpy(addr, p + 1, (size_t)(rb - p - 1));
			addr[rb - p - 1] = '\0';
			colon = rb + 1;
		} else {
			colon = strrchr(p, ':');
			if (colon == NULL || (size_t)(colon - p) >= sizeof(addr))
				goto bad;
			memcpy(addr, p, (size_t)(colon - p));
			addr[colon - p] = '\0';
		}
		if (*colon == ':') {
			long long port;

			if (util_strtonum(colon + 1, 1, 65535, &port) < 0)
				goto bad;
			s->port = (int)port;
		}
		if (ctl_net_loopback(addr, s->host, sizeof(s->host)) < 0)
			goto bad;
	}
	if (s->cfg->hostname != NULL && s->cfg->hostname[0] != '\0')
		util_strlcpy(s->myname, s->cfg->hostname, sizeof(s->myname));
	return 0;
bad:
	fprintf(stderr, "%s: %s: cannot use smtp_listen %s\n", s->prog, path,
	    s->cfg->smtp_listen[0].text);
	return EX_CONFIG;
}

/* --- the SMTP client --------------------------------------------------- */

/* sm_getline - one reply line (CRLF removed) into line; 0, or -1 (errno) */
static int
sm_getline(struct sm *s, char *line, size_t size, int timeout_ms)
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
sm_reply(struct sm *s, int timeout_ms, int ehlo)
{
	char line[SM_LINE_MAX];
	size_t used = 0;

	s->code = 0;
	s->reply[0] = '\0';
	for (int i = 0; i < SM_REPLY_LINES; i++) {
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
	util_bsnprintf(s->reply, sizeof(s->reply), "reply with more than %d lines", SM_REPLY_LINES);
	s->code = 0;
	return -1;
}

/* sm_cmd - send one command line and read its reply; 0 or -1 */
static int
sm_cmd(struct sm *s, int timeout_ms, int ehlo, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
sm_cmd(struct sm *s, int timeout_ms, int ehlo, const char *fmt, ...)
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
sm_fail(struct sm *s, const char *what, int rcpt_step)
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
sm_quit(struct sm *s)
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
sm_connect(struct sm *s)
{
	if ((s->fd = ctl_net_connect(s->host, s->port, SM_CONNECT_MS)) < 0) {
		fprintf(stderr, "%s: cannot connect to mtad at %s port %d: %s\n", s->prog,
		    s->host, s->port, strerror(errno));
		return EX_TEMPFAIL;
	}
	if (sm_reply(s, SM_REPLY_MS, 0) < 0 || s->code != 220) {
		int rc = sm_fail(s, "greeting", 0);

		close(s->fd);
		s->fd = -1;
		return rc;
	}
	return 0;
}

/* sm_needs_utf8 - a non-ASCII octet in the envelope */
static int
sm_needs_utf8(const struct sm *s)
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
	struct sm *s = arg;

	return ctl_net_write_all(s->fd, data, len, SM_REPLY_MS);
}

/* sm_submit - the SMTP transaction for the message on stdin; an exit status */
static int
sm_submit(struct sm *s, struct ctl_msg_reader *r)
{
	struct ctl_msg_out *o = NULL;
	char from[1400];
	int rc;

	if ((rc = sm_connect(s)) != 0)
		return rc;
	if (sm_cmd(s, SM_REPLY_MS, 1, "EHLO %s", s->myname) < 0)
		goto fail_ehlo;
	if (s->code != 250) {
		if (sm_cmd(s, SM_REPLY_MS, 0, "HELO %s", s->myname) < 0 || s->code != 250)
			goto fail_ehlo;
	}
	if (sm_cmd(s, SM_REPLY_MS, 0, "MAIL FROM:<%s>%s", s->sender,
	    sm_needs_utf8(s) && s->smtputf8 ? " SMTPUTF8" : "") < 0 || s->code != 250) {
		rc = sm_fail(s, "sender refused", 0);
		goto done;
	}
	for (size_t i = 0; i < s->nrcpt; i++) {
		if (sm_cmd(s, SM_REPLY_MS, 0, "RCPT TO:<%s>", s->rcpt[i]) < 0 ||
		    (s->code != 250 && s->code != 251)) {
			char what[1200];

			util_bsnprintf(what, sizeof(what), "recipient <%.1000s> refused", s->rcpt[i]);
			rc = sm_fail(s, what, 1);
			goto done;
		}
	}
	if (sm_cmd(s, SM_REPLY_MS, 0, "DATA") < 0 || s->code != 354) {
		rc = sm_fail(s, "DATA refused", 0);
		goto done;
	}
	if ((o = malloc(sizeof(*o))) == NULL) {
		rc = EX_OSERR;
		goto done;
	}
	ctl_msg_out_init(o, sm_write_cb, s);
	if (!r->have_from) {
		if (ctl_msg_from_header(s->fullname,
		    s->sender[0] != '\0' ? s->sender : "MAILER-DAEMON", from, sizeof(from)) < 0) {
			fprintf(stderr, "%s: full name too long\n", s->prog);
			rc = EX_DATAERR;
			goto done;
		}
		if (ctl_msg_out_line(o, from, strlen(from)) < 0)
			goto write_err;
	}
	if (ctl_msg_out_headers(o, r) < 0 || ctl_msg_out_body(o, r) < 0)
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
	if (sm_reply(s, SM_DATA_END_MS, 0) < 0 || s->code != 250) {
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
 * sm_proxy - -bs: an SMTP session on stdin/stdout, relayed to mtad. Line
 * ends from the local client are made CRLF (local input is trusted); the
 * server's bytes pass unchanged. Ends when mtad closes the connection.
 */
static int
sm_proxy(struct sm *s)
{
	unsigned char in[16384], out[2 * 16384];
	int stdin_open = 1, prev_cr = 0, rc;
	struct pollfd pfd[2];

	if ((s->fd = ctl_net_connect(s->host, s->port, SM_CONNECT_MS)) < 0) {
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
		rc = poll(pfd, stdin_open ? 2 : 1, SM_BS_IDLE_MS);
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
			if (ctl_net_write_all(STDOUT_FILENO, in, (size_t)r, SM_REPLY_MS) < 0) {
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
			if (ctl_net_write_all(s->fd, out, (size_t)n, SM_REPLY_MS) < 0) {
				rc = EX_TEMPFAIL;
				break;
			}
		}
	}
	close(s->fd);
	s->fd = -1;
	return rc;
}

/* sm_run_ctl - sendmail -bp / -q: the mtactl command of the same meaning */
static int
sm_run_ctl(struct sm *s, const char *cmd)
{
	char *argv[5];
	int argc = 0;

	argv[argc++] = (char *)"mtactl";
	if (s->conf_arg != NULL) {
		argv[argc++] = (char *)"-c";
		argv[argc++] = (char *)s->conf_arg;
	}
	argv[argc++] = (char *)cmd;
	argv[argc] = NULL;
	return ctl_main(argc, argv);
}

int
main(int argc, char **argv)
{
	struct sm s;
	struct ctl_msg_reader r;
	const char *opt_f = NULL, *mode = "m";
	int c, rc, flush = 0, reader = 0;
	char **list = NULL;
	size_t n = 0;

	memset(&s, 0, sizeof(s));
	s.fd = -1;
	s.prog = strrchr(argv[0], '/') != NULL ? strrchr(argv[0], '/') + 1 : argv[0];
	signal(SIGPIPE, SIG_IGN);
	opterr = 0;
	/*
	 * Sendmail's options as Postfix's sendmail knows them: the ones that
	 * matter here are handled, the rest accepted and ignored so that no
	 * caller fails over a flag (-odi, -oem, -v ...).
	 */
	while ((c = getopt(argc, argv, "A:B:b:C:d:e:F:f:Gh:iL:mN:nO:o:p:q::R:r:tUV:vX:")) != -1) {
		switch (c) {
		case 'b':
			mode = optarg;
			break;
		case 'C':
			s.conf_arg = optarg;
			break;
		case 'F':
			s.fullname = optarg;
			break;
		case 'f':
		case 'r':
			opt_f = optarg;
			break;
		case 'i':
			s.opt_i = 1;
			break;
		case 'o':
			/* -oi = -i; -odi, -oem, -om, -oXvalue: quietly ignored like Postfix */
			if (strcmp(optarg, "i") == 0)
				s.opt_i = 1;
			break;
		case 'q':
			flush = 1;
			break;
		case 't':
			s.opt_t = 1;
			break;
		case 'v':
			s.verbose = 1;
			break;
		case 'A': case 'B': case 'd': case 'e': case 'G': case 'h': case 'L':
		case 'm': case 'N': case 'n': case 'O': case 'p': case 'R': case 'U':
		case 'V': case 'X':
			break;
		default:
			fprintf(stderr, "%s: unknown option -%c\n", s.prog, optopt);
			sm_usage(s.prog);
			return EX_USAGE;
		}
	}
	if (flush)
		return sm_run_ctl(&s, "flush");
	if (strcmp(mode, "p") == 0)
		return sm_run_ctl(&s, "queue");
	if (strcmp(mode, "m") != 0 && strcmp(mode, "s") != 0) {
		fprintf(stderr, "%s: -b%s is not supported\n", s.prog, mode);
		return EX_USAGE;
	}
	if ((rc = sm_config(&s)) != 0)
		goto done;
	if (strcmp(mode, "s") == 0) {
		rc = sm_proxy(&s);
		goto done;
	}
	if (sm_set_sender(&s, opt_f) < 0) {
		fprintf(stderr, "%s: bad sender address: %s\n", s.prog, opt_f ? opt_f : "");
		rc = EX_DATAERR;
		goto done;
	}
	for (int i = optind; i < argc; i++) {
		if (ctl_msg_addr_list(argv[i], strlen(argv[i]), &list, &n) < 0) {
			fprintf(stderr, "%s: bad recipient address: %s\n", s.prog, argv[i]);
			rc = EX_DATAERR;
			goto done;
		}
	}
	if ((rc = sm_add_rcpts(&s, list, n)) != 0) {
		list = NULL;
		goto done;
	}
	list = NULL;
	n = 0;
	if (!s.opt_t && s.nrcpt == 0) {
		fprintf(stderr, "%s: recipient addresses must be given on the command line "
		    "or with -t\n", s.prog);
		rc = EX_USAGE;
		goto done;
	}
	if (ctl_msg_reader_init(&r, STDIN_FILENO, !s.opt_i) < 0) {
		rc = EX_OSERR;
		goto done;
	}
	reader = 1;
	if (ctl_msg_read_headers(&r) < 0) {
		if (r.hdr_too_big) {
			fprintf(stderr, "%s: message headers larger than %d bytes\n", s.prog,
			    CTL_MSG_HEADER_MAX);
			rc = EX_DATAERR;
		} else {
			rc = EX_OSERR;
		}
		goto done;
	}
	if (r.input_err != 0) {
		fprintf(stderr, "%s: cannot read the message: %s\n", s.prog, strerror(r.input_err));
		rc = EX_NOINPUT;
		goto done;
	}
	if (s.opt_t) {
		if (ctl_msg_extract_rcpts(&r, 1, &list, &n) < 0) {
			fprintf(stderr, "%s: cannot take the recipients from the headers: %s\n",
			    s.prog, strerror(errno));
			rc = errno == ENOMEM ? EX_OSERR : EX_DATAERR;
			goto done;
		}
		rc = sm_add_rcpts(&s, list, n);
		list = NULL;
		n = 0;
		if (rc != 0)
			goto done;
		if (s.nrcpt == 0) {
			fprintf(stderr, "%s: no recipient addresses found in the message headers\n",
			    s.prog);
			rc = EX_DATAERR;
			goto done;
		}
	}
	rc = sm_submit(&s, &r);
done:
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
	if (reader)
		ctl_msg_reader_free(&r);
	for (size_t i = 0; i < s.nrcpt; i++)
		free(s.rcpt[i]);
	free(s.rcpt);
	config_free(s.cfg);
	return rc;
}
