/*
 * sendmail.c - main() of sendmail: the conventional local submission
 * interface (cron, PHP mail(), git), submitting over SMTP to the running
 * mtad on its first smtp_listen address
 *
 * Owns:     the command line, the configuration it read, one SMTP
 *           connection to mtad (src/ctl/sendmail_smtp.c) and the message
 *           reader (src/ctl/sendmail_msg.c), declared in src/ctl/sendmail.h.
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
 * ends are made CRLF and lines dot-stuffed (src/ctl/sendmail_msg.c). Nothing is
 * added except a From: header when the message has none (with -F's name);
 * mtad adds Received:, Message-ID: and Date:.
 */
#include "ctl/ctl.h"
#include "ctl/ctl_int.h"
#include "ctl/sendmail.h"
#include "lib/util.h"
#include "mail/config.h"

#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

extern char **environ;

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
sm_qualify(const struct sendmail *s, const char *a)
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
sm_set_sender(struct sendmail *s, const char *opt_f)
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
sm_add_rcpts(struct sendmail *s, char **list, size_t n)
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
			if (s->nrcpt >= SENDMAIL_MSG_RCPT_MAX) {
				fprintf(stderr, "%s: more than %d recipients\n", s->prog,
				    SENDMAIL_MSG_RCPT_MAX);
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
sm_config(struct sendmail *s)
{
	const char *path = ctl_cmd_config_path(s->conf_arg);
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

/* sm_run_ctl - sendmail -bp / -q: the mtactl command of the same meaning */
static int
sm_run_ctl(struct sendmail *s, const char *cmd)
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
	return ctl_cmd_main(argc, argv);
}

int
main(int argc, char **argv)
{
	struct sendmail s;
	struct sendmail_msg_reader r;
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
		rc = sendmail_smtp_proxy(&s);
		goto done;
	}
	if (sm_set_sender(&s, opt_f) < 0) {
		fprintf(stderr, "%s: bad sender address: %s\n", s.prog, opt_f ? opt_f : "");
		rc = EX_DATAERR;
		goto done;
	}
	for (int i = optind; i < argc; i++) {
		if (sendmail_msg_addr_list(argv[i], strlen(argv[i]), &list, &n) < 0) {
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
	if (sendmail_msg_reader_init(&r, STDIN_FILENO, !s.opt_i) < 0) {
		rc = EX_OSERR;
		goto done;
	}
	reader = 1;
	if (sendmail_msg_read_headers(&r) < 0) {
		if (r.hdr_too_big) {
			fprintf(stderr, "%s: message headers larger than %d bytes\n", s.prog,
			    SENDMAIL_MSG_HEADER_MAX);
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
		if (sendmail_msg_extract_rcpts(&r, 1, &list, &n) < 0) {
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
	rc = sendmail_smtp_submit(&s, &r);
done:
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
	if (reader)
		sendmail_msg_reader_free(&r);
	for (size_t i = 0; i < s.nrcpt; i++)
		free(s.rcpt[i]);
	free(s.rcpt);
	config_free(s.cfg);
	return rc;
}
