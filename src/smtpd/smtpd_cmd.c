/*
 * smtpd_cmd.c - the SMTP command table and the command handlers
 *
 * Owns:     the command table; the handlers create and end transactions
 *           (struct smtpd_txn) through the session.
 * Lifetime: a command line is a slice of the session's input buffer, valid
 *           only during smtpd_cmd_line(); what is kept (HELO name, sender,
 *           recipients) is copied.
 * Errors:   every refusal is a reply with an RFC 3463 enhanced code; the
 *           texts follow Postfix's where Postfix has one.
 * Context:  event-loop thread.
 *
 * A new command is one row in cmd_table (STYLE §7): its name, the index of
 * its counter in the disconnect line, flags (needs HELO first, may carry
 * non-ASCII arguments, ends a PIPELINING group, its success is known only
 * later) and its handler.
 */
#include "smtpd/smtpd_int.h"
#include "lib/cidr.h"
#include "lib/log.h"
#include "lib/util.h"
#include "mail/addr.h"
#include "mail/diskguard.h"
#include "mail/maillog.h"
#include "metrics/metrics.h"
#include "queue/queue.h"

#include <stdlib.h>
#include <string.h>

enum {
	CMD_F_HELO      = 1u << 0,   /* refused before HELO/EHLO (503) */
	CMD_F_8BIT      = 1u << 1,   /* the handler validates non-ASCII arguments itself */
	CMD_F_GROUP_END = 1u << 2,   /* RFC 2920 §3.1: reply goes out before later input */
	CMD_F_LATE      = 1u << 3,   /* success is counted when the content is done */
	CMD_F_JUNK      = 1u << 4,   /* not SMTP at all (a web client): say goodbye */
};

struct smtpd_cmd_def {
	const char *name;
	enum smtpd_cmd_id id;
	unsigned flags;
	void (*fn)(struct smtpd_sess *s, struct str arg);
};

static void cmd_helo(struct smtpd_sess *s, struct str arg);
static void cmd_ehlo(struct smtpd_sess *s, struct str arg);
static void cmd_starttls(struct smtpd_sess *s, struct str arg);
static void cmd_mail(struct smtpd_sess *s, struct str arg);
static void cmd_rcpt(struct smtpd_sess *s, struct str arg);
static void cmd_data(struct smtpd_sess *s, struct str arg);
static void cmd_bdat(struct smtpd_sess *s, struct str arg);
static void cmd_rset(struct smtpd_sess *s, struct str arg);
static void cmd_noop(struct smtpd_sess *s, struct str arg);
static void cmd_vrfy(struct smtpd_sess *s, struct str arg);
static void cmd_help(struct smtpd_sess *s, struct str arg);
static void cmd_quit(struct smtpd_sess *s, struct str arg);
static void cmd_junk(struct smtpd_sess *s, struct str arg);
static void cmd_auth(struct smtpd_sess *s, struct str arg);

static const struct smtpd_cmd_def cmd_table[] = {
	{ "EHLO",     SMTPD_C_EHLO,     CMD_F_GROUP_END,              cmd_ehlo },
	{ "HELO",     SMTPD_C_HELO,     CMD_F_GROUP_END,              cmd_helo },
	{ "MAIL",     SMTPD_C_MAIL,     CMD_F_HELO | CMD_F_8BIT,      cmd_mail },
	{ "RCPT",     SMTPD_C_RCPT,     CMD_F_8BIT,                   cmd_rcpt },
	{ "DATA",     SMTPD_C_DATA,     CMD_F_GROUP_END | CMD_F_LATE, cmd_data },
	{ "BDAT",     SMTPD_C_BDAT,     CMD_F_LATE,                   cmd_bdat },
	{ "RSET",     SMTPD_C_RSET,     0,                            cmd_rset },
	{ "NOOP",     SMTPD_C_NOOP,     CMD_F_8BIT | CMD_F_GROUP_END, cmd_noop },
	{ "QUIT",     SMTPD_C_QUIT,     CMD_F_GROUP_END,              cmd_quit },
	{ "VRFY",     SMTPD_C_VRFY,     CMD_F_8BIT | CMD_F_GROUP_END, cmd_vrfy },
	{ "HELP",     SMTPD_C_HELP,     CMD_F_8BIT | CMD_F_GROUP_END, cmd_help },
	{ "STARTTLS", SMTPD_C_STARTTLS, CMD_F_GROUP_END,              cmd_starttls },
	{ "AUTH",     SMTPD_C_AUTH,     CMD_F_HELO | CMD_F_GROUP_END | CMD_F_LATE, cmd_auth },
	/* Postfix's smtpd_forbidden_commands: HTTP through a proxy, cross-protocol attacks */
	{ "CONNECT",  SMTPD_C_UNKNOWN,  CMD_F_JUNK | CMD_F_8BIT,      cmd_junk },
	{ "GET",      SMTPD_C_UNKNOWN,  CMD_F_JUNK | CMD_F_8BIT,      cmd_junk },
	{ "POST",     SMTPD_C_UNKNOWN,  CMD_F_JUNK | CMD_F_8BIT,      cmd_junk },
};

static const char *const cmd_names[SMTPD_NCMD] = {
	[SMTPD_C_HELO] = "helo", [SMTPD_C_EHLO] = "ehlo", [SMTPD_C_STARTTLS] = "starttls",
	[SMTPD_C_AUTH] = "auth",
	[SMTPD_C_MAIL] = "mail", [SMTPD_C_RCPT] = "rcpt", [SMTPD_C_DATA] = "data",
	[SMTPD_C_BDAT] = "bdat", [SMTPD_C_RSET] = "rset", [SMTPD_C_NOOP] = "noop",
	[SMTPD_C_VRFY] = "vrfy", [SMTPD_C_HELP] = "help", [SMTPD_C_QUIT] = "quit",
	[SMTPD_C_UNKNOWN] = "unknown",
};

static const char *const cmd_labels[SMTPD_NCMD] = {
	[SMTPD_C_HELO] = "HELO", [SMTPD_C_EHLO] = "EHLO", [SMTPD_C_STARTTLS] = "STARTTLS",
	[SMTPD_C_AUTH] = "AUTH",
	[SMTPD_C_MAIL] = "MAIL", [SMTPD_C_RCPT] = "RCPT", [SMTPD_C_DATA] = "DATA",
	[SMTPD_C_BDAT] = "BDAT", [SMTPD_C_RSET] = "RSET", [SMTPD_C_NOOP] = "NOOP",
	[SMTPD_C_VRFY] = "VRFY", [SMTPD_C_HELP] = "HELP", [SMTPD_C_QUIT] = "QUIT",
	[SMTPD_C_UNKNOWN] = "UNKNOWN",
};

/* smtpd_cmd_name - the counter's name in the disconnect line */
const char *
smtpd_cmd_name(enum smtpd_cmd_id id)
{
	return (unsigned)id < SMTPD_NCMD ? cmd_names[id] : "unknown";
}

/* smtpd_cmd_label - Postfix's "after X" for lost connections and timeouts */
const char *
smtpd_cmd_label(const struct smtpd_sess *s)
{
	if (s->state == SMTPD_S_DATA)
		return "DATA";
	if (s->state == SMTPD_S_BDAT)
		return "BDAT";
	if ((unsigned)s->last_cmd >= SMTPD_NCMD)
		return "CONNECT";
	return cmd_labels[s->last_cmd];
}

/* is_blank - SP or HTAB */
static int
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* log_reject - the "NOQUEUE: reject:" line for a refused MAIL or RCPT */
static void
log_reject(struct smtpd_sess *s, const char *stage, const char *reply, const char *sender,
    const char *rcpt)
{
	char text[512];

	if (!maillog_enabled(s->srv->ml))
		return;
	util_strlcpy(text, reply, sizeof(text));
	text[strcspn(text, "\r")] = '\0';
	maillog_reject(s->srv->ml, stage, "unknown", s->addr, text, sender, rcpt,
	    smtpd_sess_proto(s), s->helo);
}

/* helo_set - keep the HELO/EHLO argument (at most a line: bounded) and reset the transaction */
static int
helo_set(struct smtpd_sess *s, struct str arg)
{
	char *h = malloc(arg.len + 1);

	if (h == NULL)
		return -1;
	memcpy(h, arg.p, arg.len);
	h[arg.len] = '\0';
	free(s->helo);
	s->helo = h;
	s->txn = smtpd_sess_txn_free(s->txn);     /* RFC 5321 §4.1.4: EHLO mid-transaction = RSET */
	s->flags |= SMTPD_F_HELO;
	return 0;
}

/* cmd_helo - RFC 5321 §4.1.1.1 */
static void
cmd_helo(struct smtpd_sess *s, struct str arg)
{
	if (arg.len == 0) {
		SMTPD_REPLY(s, "501 5.5.4 Syntax: HELO hostname\r\n");
		return;
	}
	if (helo_set(s, arg) < 0) {
		SMTPD_REPLY(s, "451 4.3.0 Error: out of memory\r\n");
		return;
	}
	s->flags &= ~SMTPD_F_ESMTP;
	smtpd_sess_replyf(s, "250 %s\r\n", s->srv->cfg->hostname);
}

/* cmd_ehlo - RFC 5321 §4.1.1.1; the keyword list is built once per configuration */
static void
cmd_ehlo(struct smtpd_sess *s, struct str arg)
{
	if (arg.len == 0) {
		SMTPD_REPLY(s, "501 5.5.4 Syntax: EHLO hostname\r\n");
		return;
	}
	if (helo_set(s, arg) < 0) {
		SMTPD_REPLY(s, "451 4.3.0 Error: out of memory\r\n");
		return;
	}
	s->flags |= SMTPD_F_ESMTP;
	if (s->srv->tls != NULL && !(s->flags & SMTPD_F_TLS))
		smtpd_sess_reply(s, s->srv->ehlo_starttls, s->srv->ehlo_starttls_len);
	else if (!smtpd_auth_ehlo(s))        /* with AUTH after TLS on submission/SMTPS */
		smtpd_sess_reply(s, s->srv->ehlo, s->srv->ehlo_len);
}

/*
 * cmd_starttls - RFC 3207 §4: 220, then TLS. Everything known from before
 * (HELO name, transaction) is forgotten now (§4.2); what the client
 * pipelined behind the command is dropped unread when TLS starts
 * (smtpd_tls_start, after the 220 is sent: the CVE-2011-0411 class).
 */
static void
cmd_starttls(struct smtpd_sess *s, struct str arg)
{
	if (s->srv->tls == NULL) {
		SMTPD_REPLY(s, "502 5.5.1 Error: command not implemented\r\n");
		return;
	}
	if (s->flags & SMTPD_F_TLS) {
		SMTPD_REPLY(s, "554 5.5.1 Error: TLS already active\r\n");
		return;
	}
	if (arg.len != 0) {
		SMTPD_REPLY(s, "501 5.5.4 Syntax: STARTTLS\r\n");
		return;
	}
	if (s->txn != NULL) {
		SMTPD_REPLY(s, "503 5.5.1 Error: MAIL transaction in progress\r\n");
		return;
	}
	SMTPD_REPLY(s, "220 2.0.0 Ready to start TLS\r\n");
	free(s->helo);
	s->helo = NULL;
	s->flags &= ~(SMTPD_F_HELO | SMTPD_F_ESMTP);
	s->flags |= SMTPD_F_STARTTLS;
}

/* cmd_mail - RFC 5321 §4.1.1.2 with SIZE (RFC 1870), BODY (RFC 6152), SMTPUTF8 (RFC 6531) */
static void
cmd_mail(struct smtpd_sess *s, struct str arg)
{
	struct smtpd *srv = s->srv;
	const struct config *cfg = srv->cfg;
	struct str rest, params, key, val;
	struct addr a;
	size_t used = 0;
	unsigned qflags = 0;
	uint64_t size = 0;
	int r;

	if (s->txn != NULL) {
		SMTPD_REPLY(s, "503 5.5.1 Error: nested MAIL command\r\n");
		return;
	}
	if (smtpd_line_path_arg(arg, "FROM:", &rest) < 0) {
		SMTPD_REPLY(s, "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
		return;
	}
	if (addr_parse_path(rest.p, rest.len, 1, 1, &a, &used) != ADDR_OK ||
	    (used < rest.len && !is_blank(rest.p[used]))) {
		SMTPD_REPLY(s, "501 5.1.7 Bad sender address syntax\r\n");
		return;
	}
	params.p = rest.p + used;
	params.len = rest.len - used;
	while ((r = smtpd_line_param_next(&params, &key, &val)) > 0) {
		if (util_ncaseeq(key.p, key.len, "SIZE")) {
			if (val.p == NULL || smtpd_line_u64(val, &size) < 0) {
				SMTPD_REPLY(s, "501 5.5.4 Bad message size syntax\r\n");
				return;
			}
		} else if (util_ncaseeq(key.p, key.len, "BODY")) {
			if (val.p != NULL && util_ncaseeq(val.p, val.len, "8BITMIME")) {
				qflags |= QUEUE_F_8BITMIME;
			} else if (val.p == NULL || !util_ncaseeq(val.p, val.len, "7BIT")) {
				SMTPD_REPLY(s, "501 5.5.4 Unsupported BODY parameter\r\n");
				return;
			}
		} else if (util_ncaseeq(key.p, key.len, "SMTPUTF8")) {
			if (val.p != NULL) {
				SMTPD_REPLY(s, "501 5.5.4 Bad SMTPUTF8 parameter\r\n");
				return;
			}
			qflags |= QUEUE_F_SMTPUTF8;
		} else if (util_ncaseeq(key.p, key.len, "AUTH") && (s->flags & SMTPD_F_AUTH)) {
			/* RFC 4954 §5: accepted, not passed on */
		} else {
			smtpd_sess_replyf(s, "555 5.5.4 Unsupported option: %.*s\r\n",
			    (int)(key.len > 64 ? 64 : key.len), key.p);
			return;
		}
	}
	if (r < 0) {
		SMTPD_REPLY(s, "501 5.5.4 Syntax error in parameters or arguments\r\n");
		return;
	}
	if (a.utf8 && !(qflags & QUEUE_F_SMTPUTF8)) {
		SMTPD_REPLY(s, "553 5.6.7 Error: non-ASCII address without SMTPUTF8\r\n");
		return;
	}
	if (!smtpd_auth_sender_ok(s, a.text))
		return;                      /* 553 5.7.1: not this user's sender */
	if (cfg->message_size_limit != 0 && size > cfg->message_size_limit) {
		log_reject(s, "MAIL", "552 5.3.4 Message size exceeds fixed limit", a.text, NULL);
		SMTPD_REPLY(s, "552 5.3.4 Message size exceeds fixed limit\r\n");
		return;
	}
	/* SPEC §8: a declared size is checked against a fresh look at the disk */
	smtpd_disk_check(srv, size > 0 ? 0 : SMTPD_DISK_STALE_US);
	if (srv->m->disk_state >= 2) {
		log_reject(s, "MAIL", "452 4.3.1 Insufficient system storage", a.text, NULL);
		SMTPD_REPLY(s, "452 4.3.1 Insufficient system storage\r\n");
		return;
	}
	if (size > 0 && srv->disk != NULL && !diskguard_fits(diskguard_get(srv->disk), size)) {
		const struct diskguard_info *d = diskguard_get(srv->disk);

		log_warnx("smtpd: %s: MAIL SIZE=%llu refused: %llu bytes free on the data volume, "
		    "%llu kept in reserve", s->addr, (unsigned long long)size,
		    (unsigned long long)d->free_bytes, (unsigned long long)d->reserve_bytes);
		maillog_disk_size(srv->ml, s->addr, size, d->free_bytes, d->reserve_bytes);
		log_reject(s, "MAIL", "452 4.3.1 Insufficient system storage", a.text, NULL);
		SMTPD_REPLY(s, "452 4.3.1 Insufficient system storage\r\n");
		return;
	}
	if ((s->txn = calloc(1, sizeof(*s->txn))) == NULL ||
	    (s->txn->sender = strdup(a.text)) == NULL) {
		s->txn = smtpd_sess_txn_free(s->txn);
		SMTPD_REPLY(s, "451 4.3.0 Error: out of memory\r\n");
		return;
	}
	s->txn->qflags = qflags;
	SMTPD_REPLY(s, "250 2.1.0 Ok\r\n");
}

/* rcpt_add - append to the transaction's recipient list (one buffer, NUL-separated) */
static int
rcpt_add(struct smtpd_txn *t, const char *addr)
{
	size_t len = strlen(addr) + 1;

	if (t->rcap - t->rlen < len) {
		size_t ncap = t->rcap ? t->rcap * 2 : 256;
		char *n;
		while (ncap - t->rlen < len)
			ncap *= 2;
		if ((n = realloc(t->rbuf, ncap)) == NULL)
			return -1;
		t->rbuf = n;
		t->rcap = ncap;
	}
	memcpy(t->rbuf + t->rlen, addr, len);
	t->rlen += len;
	t->nrcpt++;
	return 0;
}

/*
 * cmd_rcpt - RFC 5321 §4.1.1.3. mtad has no local domains: a client outside
 * smtpd_trusted_networks can send nowhere (554 5.7.1). A trusted client's
 * routing tricks (user%host@, "user@host"@, bang paths; source routes are
 * already dropped by the parser) are kept as an opaque local part and go
 * to the domain after the last '@', never re-routed.
 */
static void
cmd_rcpt(struct smtpd_sess *s, struct str arg)
{
	struct smtpd *srv = s->srv;
	const struct config *cfg = srv->cfg;
	struct smtpd_txn *t = s->txn;
	struct str rest, params, key, val;
	struct addr a;
	size_t used = 0;
	int r;

	if (t == NULL) {
		SMTPD_REPLY(s, "503 5.5.1 Error: need MAIL command\r\n");
		return;
	}
	if (t->bdat) {
		SMTPD_REPLY(s, "503 5.5.1 Error: RCPT after BDAT\r\n");
		return;
	}
	if (smtpd_line_path_arg(arg, "TO:", &rest) < 0) {
		SMTPD_REPLY(s, "501 5.5.4 Syntax: RCPT TO:<address>\r\n");
		return;
	}
	if (addr_parse_path(rest.p, rest.len, 0, (t->qflags & QUEUE_F_SMTPUTF8) != 0, &a,
	    &used) != ADDR_OK || (used < rest.len && !is_blank(rest.p[used]))) {
		SMTPD_REPLY(s, "501 5.1.3 Bad recipient address syntax\r\n");
		return;
	}
	params.p = rest.p + used;
	params.len = rest.len - used;
	r = smtpd_line_param_next(&params, &key, &val);
	if (r < 0) {
		SMTPD_REPLY(s, "501 5.5.4 Syntax error in parameters or arguments\r\n");
		return;
	}
	if (r > 0) {
		smtpd_sess_replyf(s, "555 5.5.4 Unsupported option: %.*s\r\n",
		    (int)(key.len > 64 ? 64 : key.len), key.p);
		return;
	}
	if (cfg->smtpd_recipient_limit != 0 && t->nrcpt >= cfg->smtpd_recipient_limit) {
		SMTPD_REPLY(s, "452 4.5.3 Error: too many recipients\r\n");
		s->nerrors--;                /* RFC 5321 §4.5.3.1.10: expected, not an error */
		return;
	}
	if (!smtpd_trusted(srv, &s->peer) && !(s->flags & SMTPD_F_AUTH)) {
		char reply[ADDR_MAX + 64];
		if (util_bsnprintf(reply, sizeof(reply), "554 5.7.1 <%s>: Relay access denied",
		    a.text) < 0)
			util_strlcpy(reply, "554 5.7.1 Relay access denied", sizeof(reply));
		log_reject(s, "RCPT", reply, t->sender, a.text);
		smtpd_sess_replyf(s, "%s\r\n", reply);
		return;
	}
	if (rcpt_add(t, a.text) < 0) {
		SMTPD_REPLY(s, "451 4.3.0 Error: out of memory\r\n");
		return;
	}
	SMTPD_REPLY(s, "250 2.1.5 Ok\r\n");
}

/* cmd_data - RFC 5321 §4.1.1.4: create the queue file, then read up to <CRLF>.<CRLF> */
static void
cmd_data(struct smtpd_sess *s, struct str arg)
{
	struct smtpd_txn *t = s->txn;

	if (arg.len != 0) {
		SMTPD_REPLY(s, "501 5.5.4 Syntax: DATA\r\n");
		return;
	}
	if (t == NULL) {
		SMTPD_REPLY(s, "503 5.5.1 Error: need RCPT command\r\n");
		return;
	}
	if (t->bdat) {
		SMTPD_REPLY(s, "503 5.5.1 Error: DATA after BDAT\r\n");
		return;
	}
	if (t->nrcpt == 0) {
		SMTPD_REPLY(s, "554 5.5.1 Error: no valid recipients\r\n");
		return;
	}
	if (smtpd_sess_begin_content(s) < 0) {
		SMTPD_REPLY(s, "451 4.3.0 Error: queue file write error\r\n");
		return;
	}
	SMTPD_REPLY(s, "354 End data with <CR><LF>.<CR><LF>\r\n");
	smtpd_sess_enter(s, SMTPD_S_DATA);
}

/*
 * cmd_bdat - RFC 3030. The chunk always follows the command, so a BDAT
 * that is refused still has its chunk read and dropped before the reply.
 */
static void
cmd_bdat(struct smtpd_sess *s, struct str arg)
{
	struct smtpd_txn *t = s->txn;
	const char *reject = NULL;
	uint64_t size;
	int last;

	if (smtpd_line_bdat_arg(arg, &size, &last) < 0) {
		SMTPD_REPLY(s, "501 5.5.4 Syntax: BDAT count [LAST]\r\n");
		return;
	}
	if (t == NULL) {
		reject = "503 5.5.1 Error: need MAIL command\r\n";
	} else if (t->nrcpt == 0) {
		reject = "554 5.5.1 Error: no valid recipients\r\n";
	} else if (!t->bdat) {
		t->bdat = 1;
		if (smtpd_sess_begin_content(s) < 0)
			t->reject |= SMTPD_R_IO;
	}
	smtpd_sess_start_bdat(s, size, last, reject);
}

/* cmd_rset - RFC 5321 §4.1.1.5: drop the transaction */
static void
cmd_rset(struct smtpd_sess *s, struct str arg)
{
	if (arg.len != 0) {
		SMTPD_REPLY(s, "501 5.5.4 Syntax: RSET\r\n");
		return;
	}
	s->txn = smtpd_sess_txn_free(s->txn);
	SMTPD_REPLY(s, "250 2.0.0 Ok\r\n");
}

/* cmd_noop - RFC 5321 §4.1.1.9 (an argument is allowed and ignored) */
static void
cmd_noop(struct smtpd_sess *s, struct str arg)
{
	(void)arg;
	SMTPD_REPLY(s, "250 2.0.0 Ok\r\n");
}

/* cmd_vrfy - RFC 5321 §3.5.3: 252, we do not verify (and have no local users) */
static void
cmd_vrfy(struct smtpd_sess *s, struct str arg)
{
	if (arg.len == 0) {
		SMTPD_REPLY(s, "501 5.5.4 Syntax: VRFY address\r\n");
		return;
	}
	SMTPD_REPLY(s, "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery\r\n");
}

/* cmd_help - RFC 5321 §4.1.1.8 */
static void
cmd_help(struct smtpd_sess *s, struct str arg)
{
	(void)arg;
	SMTPD_REPLY(s, "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP\r\n");
}

/* cmd_quit - RFC 5321 §4.1.1.10: 221, then close once it is sent */
static void
cmd_quit(struct smtpd_sess *s, struct str arg)
{
	(void)arg;
	s->flags |= SMTPD_F_QUIT;
	SMTPD_REPLY(s, "221 2.0.0 Bye\r\n");
	smtpd_sess_close(s);
}

/* cmd_junk - an HTTP request or similar: Postfix's answer, then close */
static void
cmd_junk(struct smtpd_sess *s, struct str arg)
{
	(void)arg;
	maillog_non_smtp(s->srv->ml, s->addr);
	SMTPD_REPLY(s, "221 2.7.0 Error: I can break rules, too. Goodbye.\r\n");
	smtpd_sess_close(s);
}

/* cmd_auth - RFC 4954: smtpd_auth.c */
static void
cmd_auth(struct smtpd_sess *s, struct str arg)
{
	smtpd_auth_cmd(s, arg);
}

/* cmd_lookup - the table row for a verb (case-insensitive), or NULL */
static const struct smtpd_cmd_def *
cmd_lookup(struct str verb)
{
	for (size_t i = 0; i < sizeof(cmd_table) / sizeof(cmd_table[0]); i++)
		if (util_ncaseeq(verb.p, verb.len, cmd_table[i].name))
			return &cmd_table[i];
	return NULL;
}

/* smtpd_cmd_after - after each command: the error limit (Postfix's smtpd_hard_error_limit) */
void
smtpd_cmd_after(struct smtpd_sess *s)
{
	if (s->nerrors < SMTPD_ERROR_LIMIT || s->state >= SMTPD_S_CLOSING)
		return;
	maillog_too_many_errors(s->srv->ml, smtpd_cmd_label(s), s->addr);
	smtpd_sess_replyf(s, "421 4.7.0 %s Error: too many errors\r\n", s->srv->cfg->hostname);
	smtpd_sess_close(s);
}

/*
 * smtpd_cmd_line - run one command line: classify its bytes (RFC 5321
 * §2.4: commands are ASCII), look the verb up, check the table's
 * preconditions and call the handler.
 */
void
smtpd_cmd_line(struct smtpd_sess *s, struct str line)
{
	struct smtpd_cmdline cl;
	const struct smtpd_cmd_def *def = NULL;

	if (smtpd_auth_response(s, line)) {  /* a line of an AUTH exchange, not a command */
		smtpd_cmd_after(s);
		smtpd_sess_flush(s);
		return;
	}
	smtpd_line_split(line, &cl);
	s->last_code = 0;
	if ((cl.faults & (SMTPD_CL_CTRL | SMTPD_CL_8BIT_VERB)) || cl.verb.len == 0) {
		s->counts[SMTPD_C_UNKNOWN][1]++;
		SMTPD_REPLY(s, "500 5.5.2 Error: bad syntax\r\n");
		goto done;
	}
	if ((def = cmd_lookup(cl.verb)) == NULL) {
		s->counts[SMTPD_C_UNKNOWN][1]++;
		SMTPD_REPLY(s, "502 5.5.2 Error: command not recognized\r\n");
		goto done;
	}
	s->last_cmd = def->id;
	s->counts[def->id][1]++;
	if ((cl.faults & SMTPD_CL_8BIT_ARG) && !(def->flags & CMD_F_8BIT)) {
		SMTPD_REPLY(s, "501 5.5.4 Syntax error in parameters or arguments\r\n");
		goto done;
	}
	if ((def->flags & CMD_F_HELO) && !(s->flags & SMTPD_F_HELO)) {
		SMTPD_REPLY(s, "503 5.5.1 Error: send HELO/EHLO first\r\n");
		goto done;
	}
	def->fn(s, cl.arg);
	if (s->last_code != 0 && s->last_code < 400 && !(def->flags & (CMD_F_LATE | CMD_F_JUNK)))
		s->counts[def->id][0]++;
done:
	if (def != NULL && s->last_code >= 400 &&
	    (def->id == SMTPD_C_MAIL || def->id == SMTPD_C_RCPT || def->id == SMTPD_C_DATA ||
	    def->id == SMTPD_C_BDAT))
		s->srv->m->rejected++;
	smtpd_cmd_after(s);
	if (def != NULL && (def->flags & CMD_F_GROUP_END))
		smtpd_sess_flush(s);
}
