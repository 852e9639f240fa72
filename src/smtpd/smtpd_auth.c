/*
 * smtpd_auth.c - SMTP AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN on
 *                submission_listen and smtps_listen, after TLS only
 *                (SPEC §11.3)
 *
 * Owns:     the server's users table reference, password worker and
 *           failure guard (srv->users, srv->auth_worker, srv->auth_guard);
 *           a session's struct smtpd_auth (exchange step, pending job,
 *           the authenticated user and its sender patterns).
 * Lifetime: server parts from smtpd_set_users() to smtpd_auth_server_free();
 *           the session part from the first AUTH to smtpd_auth_end(),
 *           which the session's kill and free call (cancelling a pending
 *           password check: its callback then never runs).
 * Errors:   every refusal is a reply; a failed login is logged as Postfix
 *           logs it ("warning: unknown[ADDR]: SASL PLAIN authentication
 *           failed: ..."), which fail2ban's postfix-sasl filter reads.
 * Context:  event-loop thread; the hash is checked on the worker threads.
 *
 * The exchange: "AUTH PLAIN [initial-response]" or "AUTH LOGIN
 * [initial-response]"; each 334 challenge's answer is one line routed here
 * by smtpd_cmd_line() while a.step is set; "*" cancels (501). The password
 * check runs off the loop while the session waits in SMTPD_S_AUTH (input
 * is not read, so pipelined commands wait for the 235/535, RFC 4954 §4).
 * Passwords are never logged; the decoding buffers are wiped.
 */
#include "smtpd/smtpd_int.h"
#include "auth/auth.h"
#include "lib/log.h"
#include "lib/util.h"
#include "mail/addr.h"
#include "mail/maillog.h"
#include "metrics/metrics.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <openssl/crypto.h>

#define AUTH_GUARD_ENTRIES 4096
#define AUTH_THREADS 2

enum auth_step {
	STEP_NONE = 0,
	STEP_PLAIN,                  /* 334 sent: the PLAIN message comes next */
	STEP_LOGIN_USER,             /* 334 Username: */
	STEP_LOGIN_PASS,             /* 334 Password: */
};

struct smtpd_auth {
	enum auth_step step;
	const char *method;          /* "PLAIN" or "LOGIN" */
	struct auth_job *job;        /* the password check in flight */
	int      known;              /* the pending user exists */
	char     user[AUTH_USER_MAX + 1];
	char    *patterns;           /* the user's sender patterns, copied; "" = any */
};

/* --- server ------------------------------------------------------------------- */

/* smtpd_set_users - see smtpd.h */
int
smtpd_set_users(struct smtpd *srv, struct auth_users *users)
{
	if (users != NULL && srv->auth_worker == NULL) {
		if ((srv->auth_worker = auth_worker_new(srv->base, AUTH_THREADS)) == NULL)
			return -1;
		if ((srv->auth_guard = auth_guard_new(AUTH_GUARD_ENTRIES)) == NULL)
			return -1;
	}
	auth_users_unref(srv->users);
	srv->users = auth_users_ref(users);
	return 0;
}

/* smtpd_auth_server_free - at smtpd_free(): after the sessions are gone */
void
smtpd_auth_server_free(struct smtpd *srv)
{
	srv->auth_worker = auth_worker_free(srv->auth_worker);
	srv->auth_guard = auth_guard_free(srv->auth_guard);
	srv->users = auth_users_unref(srv->users);
}

/* offered - AUTH is announced: users exist, TLS is on, and the port is submission or SMTPS */
static int
offered(const struct smtpd_sess *s)
{
	return s->srv->users != NULL && auth_users_count(s->srv->users) > 0 &&
	    (s->flags & SMTPD_F_TLS) && (s->flags & (SMTPD_F_SUBMISSION | SMTPD_F_SMTPS));
}

/* smtpd_auth_ehlo - the EHLO reply with "250-AUTH PLAIN LOGIN" when offered; 0 = not offered */
int
smtpd_auth_ehlo(struct smtpd_sess *s)
{
	static const char line[] = "250-AUTH PLAIN LOGIN\r\n";
	const char *e = s->srv->ehlo, *nl;

	if (!offered(s) || (nl = memchr(e, '\n', s->srv->ehlo_len)) == NULL)
		return 0;
	/* after the greeting line; a one-line EHLO reply becomes "250-host" + AUTH as last */
	if ((size_t)(nl - e) + 1 == s->srv->ehlo_len) {
		smtpd_sess_replyf(s, "250-%.*s\r\n250 AUTH PLAIN LOGIN\r\n", (int)(nl - e - 5), e + 4);
		return 1;
	}
	smtpd_sess_reply(s, e, (size_t)(nl - e) + 1);
	smtpd_sess_reply(s, line, sizeof(line) - 1);
	smtpd_sess_reply(s, nl + 1, s->srv->ehlo_len - (size_t)(nl - e) - 1);
	return 1;
}

/* --- session ----------------------------------------------------------------- */

/* guard_key - family byte + address bytes */
static size_t
guard_key(const struct smtpd_sess *s, unsigned char *key)
{
	if (s->peer.sa.sa_family == AF_INET) {
		key[0] = 4;
		memcpy(key + 1, &s->peer.sin.sin_addr, 4);
		return 5;
	}
	key[0] = 6;
	memcpy(key + 1, &s->peer.sin6.sin6_addr, 16);
	return 17;
}

static uint64_t
now_sec(void)
{
	return util_mono_us() / 1000000;
}

/* smtpd_auth_end - the session ends: cancel a pending check, forget the login */
void
smtpd_auth_end(struct smtpd_sess *s)
{
	struct smtpd_auth *a = s->auth;

	if (a == NULL)
		return;
	auth_job_cancel(a->job);
	if (s->flags & SMTPD_F_AUTH) {
		s->srv->m->auth_sessions_active--;
		s->flags &= ~SMTPD_F_AUTH;
	}
	free(a->patterns);
	OPENSSL_cleanse(a, sizeof(*a));
	free(a);
	s->auth = NULL;
}

/* smtpd_auth_reset - an over-long line ends an exchange in progress */
void
smtpd_auth_reset(struct smtpd_sess *s)
{
	if (s->auth != NULL && s->auth->step != STEP_NONE)
		s->auth->step = STEP_NONE;
}

/* auth_failed - 535, the log line, the guard's count */
static void
auth_failed(struct smtpd_sess *s)
{
	struct smtpd *srv = s->srv;
	unsigned char key[17];
	size_t kl = guard_key(s, key);
	unsigned n = auth_guard_fail(srv->auth_guard, key, kl, now_sec());

	srv->m->auth_failures++;
	maillog_sasl_failed(srv->ml, s->addr, s->auth->method);
	if (n == AUTH_FAIL_LIMIT)
		maillog_sasl_blocked(srv->ml, s->addr, AUTH_BLOCK_TIME, n);
	SMTPD_REPLY(s, "535 5.7.8 Error: authentication failed\r\n");
}

/* auth_checked - the worker's answer, on the loop; the session is alive (else cancelled) */
static void
auth_checked(void *arg, int ok)
{
	struct smtpd_sess *s = arg;
	struct smtpd_auth *a = s->auth;

	a->job = NULL;
	smtpd_sess_enter(s, SMTPD_S_CMD);
	if (ok && a->known) {
		s->flags |= SMTPD_F_AUTH;
		s->counts[SMTPD_C_AUTH][0]++;
		s->srv->m->auth_sessions++;
		s->srv->m->auth_sessions_active++;
		SMTPD_REPLY(s, "235 2.7.0 Authentication successful\r\n");
	} else {
		free(a->patterns);
		a->patterns = NULL;
		a->user[0] = '\0';
		auth_failed(s);
	}
	smtpd_cmd_after(s);
	smtpd_sess_resume(s);
}

/* auth_check - user and password are known: queue the hash check */
static void
auth_check(struct smtpd_sess *s, const char *user, size_t ulen, const char *pass, size_t plen)
{
	struct smtpd_auth *a = s->auth;
	const char *hash, *patterns;

	a->step = STEP_NONE;
	memcpy(a->user, user, ulen);
	a->user[ulen] = '\0';
	a->known = auth_users_lookup(s->srv->users, a->user, &hash, &patterns) == 0;
	free(a->patterns);
	if ((a->patterns = strdup(patterns)) == NULL ||
	    (a->job = auth_worker_submit(s->srv->auth_worker, hash, pass, plen, auth_checked, s)) == NULL) {
		SMTPD_REPLY(s, "454 4.7.0 Temporary authentication failure\r\n");
		return;
	}
	smtpd_sess_enter(s, SMTPD_S_AUTH);
}

/* auth_data - one decoded client message for the current step */
static void
auth_data(struct smtpd_sess *s, const char *msg, size_t len)
{
	struct smtpd_auth *a = s->auth;
	const char *user, *pass;
	size_t ulen, plen;

	switch (a->step) {
	case STEP_PLAIN:
		a->step = STEP_NONE;
		if (auth_sasl_plain(msg, len, &user, &ulen, &pass, &plen) != AUTH_SASL_OK) {
			auth_failed(s);
			return;
		}
		auth_check(s, user, ulen, pass, plen);
		return;
	case STEP_LOGIN_USER:
		if (!auth_sasl_valid_user(msg, len)) {
			a->step = STEP_NONE;
			auth_failed(s);
			return;
		}
		memcpy(a->user, msg, len);
		a->user[len] = '\0';
		a->step = STEP_LOGIN_PASS;
		SMTPD_REPLY(s, "334 UGFzc3dvcmQ6\r\n");       /* "Password:" */
		return;
	case STEP_LOGIN_PASS:
		a->step = STEP_NONE;
		if (len == 0 || len > AUTH_PASS_MAX || memchr(msg, '\0', len) != NULL) {
			auth_failed(s);
			return;
		}
		{
			char user_copy[AUTH_USER_MAX + 1];
			size_t ul = strlen(a->user);
			memcpy(user_copy, a->user, ul + 1);
			auth_check(s, user_copy, ul, msg, len);
		}
		return;
	case STEP_NONE:
		return;
	}
}

/* auth_decode_and_go - base64 response (or "*", "=") to the current step */
static void
auth_decode_and_go(struct smtpd_sess *s, const char *p, size_t len)
{
	char buf[SMTPD_LINE_MAX];
	size_t n = 0;

	switch (auth_sasl_decode(p, len, buf, sizeof(buf), &n)) {
	case AUTH_SASL_OK:
		auth_data(s, buf, n);
		break;
	case AUTH_SASL_CANCEL:
		s->auth->step = STEP_NONE;
		SMTPD_REPLY(s, "501 5.7.0 Authentication aborted\r\n");
		break;
	case AUTH_SASL_BAD_BASE64:
		s->auth->step = STEP_NONE;
		SMTPD_REPLY(s, "501 5.5.2 Cannot decode response\r\n");
		break;
	case AUTH_SASL_BAD_MESSAGE:
		s->auth->step = STEP_NONE;
		auth_failed(s);
		break;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
}

/* smtpd_auth_response - a line while an exchange waits for it; 0 = not ours */
int
smtpd_auth_response(struct smtpd_sess *s, struct str line)
{
	if (s->auth == NULL || s->auth->step == STEP_NONE)
		return 0;
	auth_decode_and_go(s, line.p, line.len);
	return 1;
}

/* smtpd_auth_cmd - the AUTH command (RFC 4954 §4) */
void
smtpd_auth_cmd(struct smtpd_sess *s, struct str arg)
{
	struct smtpd *srv = s->srv;
	struct str mech = arg, ir = { NULL, 0 };
	const char *sp = memchr(arg.p, ' ', arg.len);
	unsigned char key[17];

	if (!offered(s)) {
		if ((s->flags & SMTPD_F_SUBMISSION) && !(s->flags & SMTPD_F_TLS))
			SMTPD_REPLY(s, "530 5.7.0 Must issue a STARTTLS command first\r\n");
		else
			SMTPD_REPLY(s, "503 5.5.1 Error: authentication not enabled\r\n");
		return;
	}
	if (s->flags & SMTPD_F_AUTH) {
		SMTPD_REPLY(s, "503 5.5.1 Error: already authenticated\r\n");
		return;
	}
	if (s->txn != NULL) {
		SMTPD_REPLY(s, "503 5.5.1 Error: MAIL transaction in progress\r\n");
		return;
	}
	if (auth_guard_blocked(srv->auth_guard, key, guard_key(s, key), now_sec())) {
		maillog_sasl_refused(srv->ml, s->addr);
		SMTPD_REPLY(s, "454 4.7.0 Error: too many failed authentications, try again later\r\n");
		return;
	}
	if (sp != NULL) {
		mech.len = (size_t)(sp - arg.p);
		ir.p = sp + 1;
		ir.len = arg.len - mech.len - 1;
	}
	if (s->auth == NULL && (s->auth = calloc(1, sizeof(*s->auth))) == NULL) {
		SMTPD_REPLY(s, "454 4.7.0 Temporary authentication failure\r\n");
		return;
	}
	if (util_ncaseeq(mech.p, mech.len, "PLAIN")) {
		s->auth->method = "PLAIN";
		s->auth->step = STEP_PLAIN;
		if (ir.p == NULL)
			SMTPD_REPLY(s, "334 \r\n");
		else
			auth_decode_and_go(s, ir.p, ir.len);
	} else if (util_ncaseeq(mech.p, mech.len, "LOGIN")) {
		s->auth->method = "LOGIN";
		s->auth->step = STEP_LOGIN_USER;
		if (ir.p == NULL)
			SMTPD_REPLY(s, "334 VXNlcm5hbWU6\r\n");   /* "Username:" */
		else
			auth_decode_and_go(s, ir.p, ir.len);
	} else {
		SMTPD_REPLY(s, "504 5.5.4 Unrecognized authentication type\r\n");
	}
}

/*
 * smtpd_auth_sender_ok - MAIL FROM of an authenticated user must match its
 * patterns (Postfix's reject_sender_login_mismatch); 0 after a 553 reply.
 */
int
smtpd_auth_sender_ok(struct smtpd_sess *s, const char *sender)
{
	char reply[ADDR_MAX + AUTH_USER_MAX + 96];

	if (!(s->flags & SMTPD_F_AUTH) || auth_sender_allowed(s->auth->patterns, sender))
		return 1;
	if (util_bsnprintf(reply, sizeof(reply), "553 5.7.1 <%s>: Sender address rejected: "
	    "not owned by user %s", sender, s->auth->user) < 0)
		util_strlcpy(reply, "553 5.7.1 Sender address rejected: not owned by user", sizeof(reply));
	if (maillog_enabled(s->srv->ml))
		maillog_reject(s->srv->ml, "MAIL", "unknown", s->addr, reply, sender, NULL,
		    smtpd_sess_proto(s), s->helo);
	smtpd_sess_replyf(s, "%s\r\n", reply);
	return 0;
}

/* smtpd_auth_log_client - the "client=" line, with Postfix's sasl_method/sasl_username */
void
smtpd_auth_log_client(struct smtpd_sess *s, const char *qid)
{
	if (s->flags & SMTPD_F_AUTH)
		maillog_client_sasl(s->srv->ml, qid, "unknown", s->addr, s->auth->method, s->auth->user);
	else
		maillog_client(s->srv->ml, qid, "unknown", s->addr);
}

/* smtpd_auth_user - the authenticated user name, or NULL */
const char *
smtpd_auth_user(const struct smtpd_sess *s)
{
	return (s->flags & SMTPD_F_AUTH) ? s->auth->user : NULL;
}
