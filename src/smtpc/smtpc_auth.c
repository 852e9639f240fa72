/*
 * smtpc_auth.c - SMTP AUTH in the client (RFC 4954): PLAIN (RFC 4616), else
 *                LOGIN, as the server offers them, or XOAUTH2 (Google's and
 *                Microsoft's bearer-token mechanism)
 *
 * Owns:     nothing: the session's credentials are copies owned by struct
 *           smtpc (wiped by smtpc_free); the lines built here live on the
 *           stack and are wiped after they are queued.
 * Lifetime: one exchange per session, after TLS and EHLO, before the first
 *           transaction.
 * Errors:   every refusal (535, 454, 530 ...), a reply out of step, a
 *           dropped connection or a timeout fails the session with dsn
 *           4.7.8 and the server's reply in the text ("SASL authentication
 *           failed; server X said: 535 ..."): the scheduler defers, it never
 *           bounces for this.
 * Context:  event-loop thread; smtpc_auth_mechs() and smtpc_sasl_*() are
 *           pure (no I/O, no globals) for tests and fuzz/fuzz_smtpc_auth.c.
 *
 * The exchange is never started without TLS (the caller requires TLS when
 * credentials are set; smtpc_auth_start() refuses again). Nothing secret is
 * logged: traces show the mechanism and the server's replies only.
 *
 *   PLAIN:   C: AUTH PLAIN base64("\0" user "\0" password)    S: 235
 *   LOGIN:   C: AUTH LOGIN  S: 334 VXNlcm5hbWU6  C: base64(user)
 *            S: 334 UGFzc3dvcmQ6  C: base64(password)          S: 235
 *   XOAUTH2: C: AUTH XOAUTH2 base64("user=" U "\1auth=Bearer " T "\1\1")
 *            S: 235, or S: 334 base64(JSON error)  C: ""  S: 535
 */
#include <string.h>

#include <openssl/crypto.h>

#include "lib/base64.h"
#include "lib/log.h"
#include "lib/util.h"
#include "mail/maillog.h"
#include "smtpc/smtpc.h"
#include "smtpc/smtpc_int.h"

/* smtpc_auth_mechs - the SMTPC_MECH_* bits of an EHLO "AUTH" line's arguments */
unsigned
smtpc_auth_mechs(const char *s, size_t len)
{
	static const struct {
		const char *name;
		unsigned    bit;
	} mechs[] = {
		{ "PLAIN", SMTPC_MECH_PLAIN },
		{ "LOGIN", SMTPC_MECH_LOGIN },
		{ "XOAUTH2", SMTPC_MECH_XOAUTH2 },
	};
	unsigned bits = 0;
	size_t i = 0;

	while (i < len) {
		size_t start, n;

		while (i < len && (s[i] == ' ' || s[i] == '='))
			i++;
		start = i;
		while (i < len && s[i] != ' ')
			i++;
		n = i - start;
		for (size_t k = 0; k < sizeof(mechs) / sizeof(mechs[0]); k++)
			if (n == strlen(mechs[k].name) && util_ncaseeq(s + start, n, mechs[k].name))
				bits |= mechs[k].bit;
	}
	return bits;
}

/* sasl_b64 - "prefix" + base64(in) into out; 0, or -1 when it does not fit */
static int
sasl_b64(char *out, size_t size, const char *prefix, const unsigned char *in, size_t inlen)
{
	size_t plen = strlen(prefix);

	if (inlen > SMTPC_AUTH_LINE_MAX || plen >= size)
		return -1;
	memcpy(out, prefix, plen);
	return base64_encode(in, inlen, out + plen, size - plen) < 0 ? -1 : 0;
}

/*
 * sasl_challenge - the decoded text of a 334 reply ("334 VXNlcm5hbWU6" ->
 * "Username:") into buf, made printable and NUL-terminated; "" when it is
 * not base64.
 */
static void
sasl_challenge(const struct smtpc_reply *r, char *buf, size_t size)
{
	unsigned char dec[SMTPC_REPLY_MAX];
	const char *p = r->text;
	size_t len = strlen(p), n;

	buf[0] = '\0';
	if (len < 4)
		return;
	p += 4;                             /* "334 " or "334-" */
	len -= 4;
	while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\r'))
		len--;
	if (len == 0 || base64_decode(p, len, dec, sizeof(dec), &n) < 0)
		return;
	(void)maillog_sanitize(buf, size, (const char *)dec, n);
}

/*
 * smtpc_auth_sasl_start - choose the mechanism (XOAUTH2 when asked for, else
 * PLAIN, else LOGIN, among those offered) and build the AUTH line into out.
 * user and secret are borrowed for the exchange. -1 when no usable
 * mechanism is offered or the credentials are too long.
 */
int
smtpc_auth_sasl_start(struct smtpc_sasl *s, unsigned offered, int xoauth2, const char *user,
    const char *secret, char *out, size_t size)
{
	unsigned char buf[SMTPC_AUTH_USER_MAX + SMTPC_AUTH_SECRET_MAX + 32];
	size_t ul = strlen(user), sl = strlen(secret), n = 0;
	int r = -1;

	memset(s, 0, sizeof(*s));
	s->user = user;
	s->secret = secret;
	if (ul > SMTPC_AUTH_USER_MAX || sl > SMTPC_AUTH_SECRET_MAX)
		return -1;
	if (xoauth2) {
		if (!(offered & SMTPC_MECH_XOAUTH2))
			return -1;
		s->mech = SMTPC_MECH_XOAUTH2;
		memcpy(buf, "user=", 5);
		n = 5;
		memcpy(buf + n, user, ul);
		n += ul;
		memcpy(buf + n, "\001auth=Bearer ", 13);
		n += 13;
		memcpy(buf + n, secret, sl);
		n += sl;
		memcpy(buf + n, "\001\001", 2);
		n += 2;
		r = sasl_b64(out, size, "AUTH XOAUTH2 ", buf, n);
	} else if (offered & SMTPC_MECH_PLAIN) {
		/* RFC 4616: authzid (empty) NUL authcid NUL passwd */
		s->mech = SMTPC_MECH_PLAIN;
		buf[n++] = '\0';
		memcpy(buf + n, user, ul);
		n += ul;
		buf[n++] = '\0';
		memcpy(buf + n, secret, sl);
		n += sl;
		r = sasl_b64(out, size, "AUTH PLAIN ", buf, n);
	} else if (offered & SMTPC_MECH_LOGIN) {
		s->mech = SMTPC_MECH_LOGIN;
		r = util_strlcpy(out, "AUTH LOGIN", size) < size ? 0 : -1;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	if (r == 0)
		s->step = 1;
	return r;
}

/*
 * smtpc_auth_sasl_reply - the server's reply to what was sent last: OK (235),
 * SEND with the next line in out (a 334 challenge), or FAIL (anything
 * else, or a 334 where none may come). For XOAUTH2 a 334 carries the
 * error as base64 JSON: it is kept in s->why and answered with an empty
 * line, after which the server sends its final (failure) reply.
 */
enum smtpc_sasl_rc
smtpc_auth_sasl_reply(struct smtpc_sasl *s, const struct smtpc_reply *r, char *out, size_t size)
{
	char ch[SMTPC_REPLY_MAX];
	const char *v;

	if (r->code == 235 && s->step > 0)
		return SMTPC_SASL_OK;
	if (r->code != 334 || s->step <= 0)
		return SMTPC_SASL_FAIL;
	switch (s->mech) {
	case SMTPC_MECH_PLAIN:
		/* a server that wants no initial response sends an empty challenge first */
		if (s->step != 1)
			return SMTPC_SASL_FAIL;
		{
			unsigned char buf[SMTPC_AUTH_USER_MAX + SMTPC_AUTH_SECRET_MAX + 2];
			size_t ul = strlen(s->user), sl = strlen(s->secret), n = 0;
			int rc;

			if (ul > SMTPC_AUTH_USER_MAX || sl > SMTPC_AUTH_SECRET_MAX)
				return SMTPC_SASL_FAIL;
			buf[n++] = '\0';
			memcpy(buf + n, s->user, ul);
			n += ul;
			buf[n++] = '\0';
			memcpy(buf + n, s->secret, sl);
			n += sl;
			rc = sasl_b64(out, size, "", buf, n);
			OPENSSL_cleanse(buf, sizeof(buf));
			if (rc < 0)
				return SMTPC_SASL_FAIL;
		}
		s->step = 2;
		return SMTPC_SASL_SEND;
	case SMTPC_MECH_LOGIN:
		/* the challenges name what they want; a server that words them otherwise gets them in order */
		if (s->step > 2)
			return SMTPC_SASL_FAIL;
		sasl_challenge(r, ch, sizeof(ch));
		if (strlen(ch) >= 8 && util_ncaseeq(ch, 8, "Password"))
			s->step = 2;
		v = s->step == 1 ? s->user : s->secret;
		if (sasl_b64(out, size, "", (const unsigned char *)v, strlen(v)) < 0)
			return SMTPC_SASL_FAIL;
		s->step = s->step == 1 ? 2 : 3;
		return SMTPC_SASL_SEND;
	case SMTPC_MECH_XOAUTH2:
		if (s->step != 1)
			return SMTPC_SASL_FAIL;
		sasl_challenge(r, s->why, sizeof(s->why));
		if (size < 1)
			return SMTPC_SASL_FAIL;
		out[0] = '\0';
		s->step = 2;
		return SMTPC_SASL_SEND;
	default:
		return SMTPC_SASL_FAIL;
	}
}

/* auth_send - queue one line of the exchange and wipe the copy */
static void
auth_send(struct smtpc *c, char *line, size_t size)
{
	if (smtpc_write(c, "%s", line) == 0)
		smtpc_timer(c, c->cmd_timeout);
	OPENSSL_cleanse(line, size);
}

/*
 * smtpc_auth_start - after TLS and EHLO: AUTH with the mechanism the
 * server offers, or fail (4.7.8) when it offers none we can use. Never
 * without TLS.
 */
void
smtpc_auth_start(struct smtpc *c)
{
	char line[SMTPC_AUTH_LINE_MAX + 1];

	if (c->tls != SMTPC_TLS_ON) {
		smtpc_fail(c, 0, "4.7.8", "SASL authentication not attempted with %s: the "
		    "connection is not encrypted", c->peer);
		return;
	}
	if (!(c->exts & SMTPC_EXT_AUTH) || c->auth_mechs == 0) {
		smtpc_fail(c, 0, "4.7.8", "SASL authentication failed: host %s offers no "
		    "authentication mechanism we can use (%s)", c->peer,
		    c->auth_xoauth2 ? "XOAUTH2" : "PLAIN, LOGIN");
		return;
	}
	if (smtpc_auth_sasl_start(&c->sasl, c->auth_mechs, c->auth_xoauth2, c->auth_user,
	    c->auth_secret, line, sizeof(line)) < 0) {
		OPENSSL_cleanse(line, sizeof(line));
		smtpc_fail(c, 0, "4.7.8", "SASL authentication failed: %s with %s", c->auth_xoauth2 ?
		    "XOAUTH2 is not offered" : "the credentials are too long", c->peer);
		return;
	}
	smtpc_enter(c, SMTPC_S_AUTH);
	log_trace(TRACE_SMTPC, "smtpc %s: AUTH %s", c->peer,
	    c->sasl.mech == SMTPC_MECH_PLAIN ? "PLAIN" :
	    c->sasl.mech == SMTPC_MECH_LOGIN ? "LOGIN" : "XOAUTH2");
	auth_send(c, line, sizeof(line));
}

/* smtpc_auth_reply - a reply during the exchange: the next line, ready, or failed */
void
smtpc_auth_reply(struct smtpc *c, const struct smtpc_reply *r)
{
	char line[SMTPC_AUTH_LINE_MAX + 1];

	switch (smtpc_auth_sasl_reply(&c->sasl, r, line, sizeof(line))) {
	case SMTPC_SASL_SEND:
		auth_send(c, line, sizeof(line));
		return;
	case SMTPC_SASL_OK:
		c->authed = 1;
		log_trace(TRACE_SMTPC, "smtpc %s: authenticated", c->peer);
		smtpc_ready(c);
		return;
	case SMTPC_SASL_FAIL:
		break;
	}
	if (c->sasl.why[0] != '\0')
		smtpc_fail(c, 0, "4.7.8", "SASL authentication failed; server %s said: %s (%s)",
		    c->peer, r->text, c->sasl.why);
	else
		smtpc_fail(c, 0, "4.7.8", "SASL authentication failed; server %s said: %s",
		    c->peer, r->text);
}
