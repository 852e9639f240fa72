/*
 * smtpc.c - the outbound SMTP client session (RFC 5321 client side)
 *
 * Owns:     the connection's bufferevent and socket, its timer, its notify
 *           event, copies of the parameters, of the current transaction's
 *           sender and recipients, and the result's reply array.
 * Lifetime: smtpc_connect() to smtpc_free() (or smtpc_quit(), which frees
 *           itself once QUIT was answered or timed out). The result given to
 *           done() lives until the next smtpc_send() or smtpc_free(). The
 *           transaction's content reader is borrowed until done()/failed().
 * Errors:   the peer's and the network's failures are callbacks: failed()
 *           with code 0 and dsn 4.4.1 (connect) or 4.4.2 (lost, timed out),
 *           or with the peer's reply (greeting/EHLO refused, 421). Local
 *           refusals (SIZE, 8BITMIME, SMTPUTF8) are a done() whose replies
 *           were made here. Nothing is fatal.
 * Context:  event-loop thread. Every user callback runs from the notify
 *           event (never from inside smtpc_*() nor from a bufferevent
 *           callback), and nothing touches the session after the user's
 *           callback returns, so the callback may free the session.
 *
 * State machine (one transition function, smtpc_enter(), traces it):
 *   CONNECTING -> GREETING -> EHLO [-> HELO] [-> STARTTLS -> TLS -> EHLO]
 *   -> READY -> TXN (MAIL, RCPT..., DATA replies) -> CONTENT -> TXN (the
 *   end-of-data reply) -> READY ... -> QUIT; any -> DEAD on failure.
 * A transaction is an ordered list of steps (MAIL, RCPT i, DATA, then DOT
 * or RSET) with a send position and a receive position, as Postfix's
 * smtp_loop() does (RFC 2920 §3.1): with PIPELINING everything up to DATA
 * goes out in one write, otherwise the send position waits for the
 * receive position.
 *
 * The result of a transaction, per recipient: rcpt[i] when it is not 2xx
 * (after a refused MAIL every rcpt[i] is the MAIL reply), otherwise data,
 * the reply to the end of data or the refusal of the DATA command. data is
 * code 0 when no recipient was accepted. A local refusal puts the same
 * reply in mail, every rcpt[i] and data.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <openssl/crypto.h>

#include "lib/log.h"
#include "lib/util.h"
#include "smtpc/smtpc.h"
#include "smtpc/smtpc_int.h"

#define SMTPC_QUIT_WAIT   10           /* seconds at most for the reply to QUIT */
#define SMTPC_CHUNK       16384        /* content read from the queue at a time */
#define SMTPC_OUT_HIGH    (128 * 1024) /* fill the output buffer up to this */
#define SMTPC_OUT_LOW     (32 * 1024)  /* write callback when drained below this */
#define SMTPC_MAX_WRITE   (256 * 1024) /* largest single write(v)/sendfile on a plain socket */

static const char *const smtpc_state_names[] = {
	"CONNECTING", "GREETING", "EHLO", "HELO", "STARTTLS", "TLS", "AUTH", "READY", "TXN",
	"CONTENT", "QUIT", "DEAD",
};

static const struct {
	const char *name;
	unsigned    bit;
} smtpc_exts[] = {
	{ "PIPELINING", SMTPC_EXT_PIPELINING },
	{ "SIZE", SMTPC_EXT_SIZE },
	{ "8BITMIME", SMTPC_EXT_8BITMIME },
	{ "SMTPUTF8", SMTPC_EXT_SMTPUTF8 },
	{ "STARTTLS", SMTPC_EXT_STARTTLS },
	{ "CHUNKING", SMTPC_EXT_CHUNKING },
	{ "ENHANCEDSTATUSCODES", SMTPC_EXT_ENHANCED },
	{ "DSN", SMTPC_EXT_DSN },
	{ "AUTH", SMTPC_EXT_AUTH },
};

static void smtpc_on_read(struct bufferevent *bev, void *arg);
static void smtpc_on_write(struct bufferevent *bev, void *arg);
static void smtpc_on_event(struct bufferevent *bev, short what, void *arg);
static void smtpc_fail_reply(struct smtpc *c, const struct smtpc_reply *r);

/* smtpc_enter - the one state transition, traced "old -> new" */
void
smtpc_enter(struct smtpc *c, enum smtpc_state st)
{
	log_trace(TRACE_SMTPC, "smtpc %s: %s -> %s", c->peer, smtpc_state_names[c->state],
	    smtpc_state_names[st]);
	c->state = st;
}

/* smtpc_timer - (re)arm the one timer for secs seconds */
void
smtpc_timer(struct smtpc *c, unsigned secs)
{
	struct timeval tv = { (time_t)secs, 0 };

	if (event_add(c->ev_timer, &tv) == -1)
		log_warnx("smtpc %s: cannot arm timer", c->peer);
}

/* smtpc_post - run a user callback (or the deferred free) from the loop */
static void
smtpc_post(struct smtpc *c, enum smtpc_notify n)
{
	c->notify = n;
	event_active(c->ev_notify, EV_TIMEOUT, 0);
}

/* smtpc_txn_clear - forget the transaction's copies (not the result) */
static void
smtpc_txn_clear(struct smtpc *c)
{
	free(c->sender);
	c->sender = NULL;
	for (size_t i = 0; i < c->nrcpt && c->rcpts != NULL; i++)
		free(c->rcpts[i]);
	free(c->rcpts);
	c->rcpts = NULL;
	c->nrcpt = 0;
	free(c->steps);
	c->steps = NULL;
	c->nsteps = c->send_pos = c->recv_pos = 0;
	memset(&c->src, 0, sizeof(c->src));
}

/* smtpc_on_notify - deliver the pending callback; c may be gone afterwards */
static void
smtpc_on_notify(evutil_socket_t fd, short what, void *arg)
{
	struct smtpc *c = arg;
	enum smtpc_notify n = c->notify;

	(void)fd;
	(void)what;
	c->notify = SMTPC_N_NONE;
	if (c->fail_after && n == SMTPC_N_DONE) {
		/* the result stands; failed() follows from the loop */
		c->fail_after = 0;
		smtpc_post(c, SMTPC_N_FAILED);
	}
	if (n == SMTPC_N_FREE) {
		smtpc_free(c);
		return;
	}
	if (c->quitting)
		return;
	switch (n) {
	case SMTPC_N_READY:
		c->cb.ready(c->arg, c);
		return;
	case SMTPC_N_DONE:
		c->cb.done(c->arg, c, &c->res);
		return;
	case SMTPC_N_FAILED:
		c->cb.failed(c->arg, c, &c->fail);
		return;
	default:
		return;
	}
}

/* smtpc_on_timer - the peer did not answer (or connect) in time */
static void
smtpc_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct smtpc *c = arg;

	(void)fd;
	(void)what;
	switch (c->state) {
	case SMTPC_S_CONNECTING:
		smtpc_fail(c, 0, "4.4.1", "connect to %s: Connection timed out", c->peer);
		return;
	case SMTPC_S_QUIT:
		smtpc_enter(c, SMTPC_S_DEAD);
		smtpc_post(c, SMTPC_N_FREE);
		return;
	case SMTPC_S_GREETING:
		smtpc_fail(c, 0, "4.4.2", "conversation with %s timed out while receiving the "
		    "initial server greeting", c->peer);
		return;
	case SMTPC_S_CONTENT:
		smtpc_fail(c, 0, "4.4.2", "conversation with %s timed out while sending "
		    "message content", c->peer);
		return;
	case SMTPC_S_DEAD:
		return;
	case SMTPC_S_TLS:
		c->tls = SMTPC_TLS_FAILED;
		smtpc_fail(c, 0, "4.7.5", "Cannot start TLS: handshake with %s timed out", c->peer);
		return;
	case SMTPC_S_AUTH:
		smtpc_fail(c, 0, "4.7.8", "conversation with %s timed out while performing the "
		    "AUTH handshake", c->peer);
		return;
	default:
		smtpc_fail(c, 0, "4.4.2", "conversation with %s timed out while waiting for a "
		    "reply (%s)", c->peer, smtpc_state_names[c->state]);
		return;
	}
}

/* smtpc_fmt_peer - "host[addr]:port" */
static void
smtpc_fmt_peer(struct smtpc *c, const char *name)
{
	char a[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (c->addr.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&c->addr;

		(void)inet_ntop(AF_INET, &sin->sin_addr, a, sizeof(a));
		port = ntohs(sin->sin_port);
	} else if (c->addr.ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&c->addr;

		(void)inet_ntop(AF_INET6, &sin6->sin6_addr, a, sizeof(a));
		port = ntohs(sin6->sin6_port);
	}
	if (util_bsnprintf(c->peer, sizeof(c->peer), "%s[%s]:%d",
	    name != NULL && name[0] != '\0' ? name : a, a, port) == -1)
		(void)util_bsnprintf(c->peer, sizeof(c->peer), "[%s]:%d", a, port);
}

/* smtpc_free_strings - the copies of the parameters; the secret is wiped first */
static void
smtpc_free_strings(struct smtpc *c)
{
	if (c->auth_secret != NULL)
		OPENSSL_cleanse(c->auth_secret, strlen(c->auth_secret));
	free(c->auth_secret);
	free(c->auth_user);
	free(c->verify_name);
	free(c->tls_cache_key);
	free(c->helo_name);
	free(c->sni);
	memset(&c->sasl, 0, sizeof(c->sasl));
}

/*
 * smtpc_connect - start a non-blocking connect to p->addr; every outcome
 * is a callback. p and its strings are copied; cb is copied; arg borrowed.
 * NULL only when out of memory.
 */
struct smtpc *
smtpc_connect(struct event_base *base, const struct smtpc_params *p,
    const struct smtpc_cb *cb, void *arg)
{
	struct smtpc *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->base = base;
	c->cb = *cb;
	c->arg = arg;
	c->state = SMTPC_S_CONNECTING;
	c->connect_timeout = p->connect_timeout > 0 ? p->connect_timeout : 30;
	c->cmd_timeout = p->cmd_timeout > 0 ? p->cmd_timeout : 300;
	c->data_timeout = p->data_timeout > 0 ? p->data_timeout : 600;
	if (p->addrlen > sizeof(c->addr))
		goto fail;
	memcpy(&c->addr, &p->addr, p->addrlen);
	c->addrlen = p->addrlen;
	smtpc_fmt_peer(c, p->peer_name);
	c->tls_ctx = p->tls_ctx;
	c->tls_required = p->tls_required;
	c->smtps = p->smtps && p->tls_ctx != NULL;
	c->ml = p->ml;
	if ((p->verify_name != NULL && (c->verify_name = strdup(p->verify_name)) == NULL) ||
	    (p->tls_cache_key != NULL && (c->tls_cache_key = strdup(p->tls_cache_key)) == NULL))
		goto fail;
	c->authed = p->auth_user == NULL;
	if (p->auth_user != NULL && ((c->auth_user = strdup(p->auth_user)) == NULL ||
	    (c->auth_secret = strdup(p->auth_secret != NULL ? p->auth_secret : "")) == NULL))
		goto fail;
	c->auth_xoauth2 = p->auth_xoauth2;
	if (p->peer_name != NULL && p->peer_name[0] != '\0' && smtpc_tls_sni(p->peer_name) &&
	    (c->sni = strdup(p->peer_name)) == NULL)
		goto fail;
	c->helo_name = strdup(p->helo_name != NULL && p->helo_name[0] != '\0' ?
	    p->helo_name : "localhost");
	if (c->helo_name == NULL)
		goto fail;
	smtpc_reply_init(&c->rp);
	c->ev_timer = evtimer_new(base, smtpc_on_timer, c);
	c->ev_notify = event_new(base, -1, 0, smtpc_on_notify, c);
	c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (c->ev_timer == NULL || c->ev_notify == NULL || c->bev == NULL)
		goto fail;
	bufferevent_setcb(c->bev, smtpc_on_read, smtpc_on_write, smtpc_on_event, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, SMTPC_OUT_LOW, 0);
	/* writev/sendfile up to this much at once (libevent's default is 16 KiB) */
	bufferevent_set_max_single_write(c->bev, SMTPC_MAX_WRITE);
	log_trace(TRACE_SMTPC, "smtpc %s: connecting", c->peer);
	smtpc_timer(c, c->connect_timeout);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&c->addr,
	    (int)c->addrlen) == -1) {
		int e = EVUTIL_SOCKET_ERROR();

		smtpc_fail(c, 0, "4.4.1", "connect to %s: %s", c->peer,
		    e != 0 ? strerror(e) : "cannot connect");
	}
	return c;
fail:
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	if (c->ev_notify != NULL)
		event_free(c->ev_notify);
	if (c->ev_timer != NULL)
		event_free(c->ev_timer);
	smtpc_free_strings(c);
	free(c);
	return NULL;
}

/* smtpc_free - close at once, no QUIT, no callback; takes NULL */
struct smtpc *
smtpc_free(struct smtpc *c)
{
	if (c == NULL)
		return NULL;
	log_trace(TRACE_SMTPC, "smtpc %s: closed", c->peer);
	if (c->bev != NULL) {
		smtpc_tls_close(c);
		bufferevent_free(c->bev);
	}
	if (c->ev_notify != NULL)
		event_free(c->ev_notify);
	if (c->ev_timer != NULL)
		event_free(c->ev_timer);
	smtpc_txn_clear(c);
	free(c->res.rcpt);
	smtpc_free_strings(c);
	free(c);
	return NULL;
}

/* smtpc_fail_reply - the session is over: tell failed() with r (from the loop) */
static void
smtpc_fail_reply(struct smtpc *c, const struct smtpc_reply *r)
{
	if (c->state == SMTPC_S_DEAD)
		return;
	if (c->state == SMTPC_S_QUIT) {
		smtpc_enter(c, SMTPC_S_DEAD);
		smtpc_post(c, SMTPC_N_FREE);
		return;
	}
	log_trace(TRACE_SMTPC, "smtpc %s: failed: %s", c->peer, r->text);
	c->fail = *r;
	smtpc_enter(c, SMTPC_S_DEAD);
	(void)event_del(c->ev_timer);
	if (c->bev != NULL)
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	memset(&c->src, 0, sizeof(c->src));
	/*
	 * A transaction that finished just before (its 250 and a 421 in one
	 * read) keeps its done(): losing it would send the message twice.
	 */
	if (c->notify == SMTPC_N_DONE)
		c->fail_after = 1;
	else
		smtpc_post(c, SMTPC_N_FAILED);
}

/* smtpc_fail - fail with a locally made reply */
void
smtpc_fail(struct smtpc *c, int code, const char *dsn, const char *fmt, ...)
{
	struct smtpc_reply r;
	char text[SMTPC_REPLY_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n < 0)
		(void)util_strlcpy(text, "local error", sizeof(text));
	/* n >= size: truncated text is still the right reason */
	smtpc_reply_local(&r, code, dsn, text);
	smtpc_fail_reply(c, &r);
}

/* smtpc_write - queue a command line (with CRLF); -1 (and failed) when out of memory */
int
smtpc_write(struct smtpc *c, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	if (n < 0 || evbuffer_add(out, "\r\n", 2) == -1) {
		smtpc_fail(c, 0, "4.3.0", "out of memory writing to %s", c->peer);
		return -1;
	}
	return 0;
}

/* smtpc_ehlo_keyword - note one EHLO line's keyword ("SIZE 10240000") */
static void
smtpc_ehlo_keyword(struct smtpc *c, const char *s, size_t len)
{
	size_t kl = 0;

	while (kl < len && s[kl] != ' ' && s[kl] != '=')
		kl++;
	for (size_t i = 0; i < sizeof(smtpc_exts) / sizeof(smtpc_exts[0]); i++) {
		if (strlen(smtpc_exts[i].name) != kl || !util_ncaseeq(s, kl, smtpc_exts[i].name))
			continue;
		c->exts |= smtpc_exts[i].bit;
		if (smtpc_exts[i].bit == SMTPC_EXT_AUTH) {
			c->auth_mechs |= smtpc_auth_mechs(s + kl, len - kl);
			return;
		}
		if (smtpc_exts[i].bit == SMTPC_EXT_SIZE) {
			/* RFC 1870 §4: "SIZE" alone or "SIZE 0" means no fixed limit */
			uint64_t v = 0;
			size_t j = kl;

			while (j < len && s[j] == ' ')
				j++;
			for (; j < len && s[j] >= '0' && s[j] <= '9'; j++) {
				if (v > (UINT64_MAX - 9) / 10) {
					v = 0;
					break;
				}
				v = v * 10 + (uint64_t)(s[j] - '0');
			}
			c->size_limit = v;
		}
		return;
	}
}

/* smtpc_has_ext - see smtpc.h */
int
smtpc_has_ext(const struct smtpc *c, const char *keyword)
{
	for (size_t i = 0; i < sizeof(smtpc_exts) / sizeof(smtpc_exts[0]); i++)
		if (util_ncaseeq(keyword, strlen(keyword), smtpc_exts[i].name))
			return (c->exts & smtpc_exts[i].bit) != 0;
	return 0;
}

/* smtpc_peer - see smtpc.h */
const char *
smtpc_peer(const struct smtpc *c)
{
	return c->peer;
}

/* smtpc_send_hello - EHLO (or HELO) and wait for the reply */
void
smtpc_send_hello(struct smtpc *c, enum smtpc_state st)
{
	c->exts = 0;
	c->auth_mechs = 0;
	c->size_limit = 0;
	smtpc_enter(c, st);
	if (smtpc_write(c, "%s %s", st == SMTPC_S_EHLO ? "EHLO" : "HELO", c->helo_name) == 0)
		smtpc_timer(c, c->cmd_timeout);
}

/*
 * smtpc_ready - greeted and introduced: STARTTLS first when the peer offers
 * it and we have a context (opportunistic, SPEC §5); a peer that must use
 * TLS and does not offer it fails the session. Otherwise the user may send.
 */
void
smtpc_ready(struct smtpc *c)
{
	if (c->tls == SMTPC_TLS_NONE && c->tls_ctx != NULL && (c->exts & SMTPC_EXT_STARTTLS)) {
		smtpc_enter(c, SMTPC_S_STARTTLS);
		if (smtpc_write(c, "STARTTLS") == 0)
			smtpc_timer(c, c->cmd_timeout);
		return;
	}
	if (c->tls != SMTPC_TLS_ON && c->tls_required) {
		smtpc_fail(c, 0, "4.7.4", "TLS is required, but was not offered by host %s",
		    c->peer);
		return;
	}
	if (!c->authed) {
		smtpc_auth_start(c);
		return;
	}
	(void)event_del(c->ev_timer);
	smtpc_enter(c, SMTPC_S_READY);
	log_trace(TRACE_SMTPC, "smtpc %s: ready (extensions 0x%x, size %llu)", c->peer, c->exts,
	    (unsigned long long)c->size_limit);
	smtpc_post(c, SMTPC_N_READY);
}

/* smtpc_txn_done - the transaction is over: back to READY, tell done() */
static void
smtpc_txn_done(struct smtpc *c)
{
	(void)event_del(c->ev_timer);
	smtpc_txn_clear(c);
	smtpc_enter(c, SMTPC_S_READY);
	smtpc_post(c, SMTPC_N_DONE);
}

/* smtpc_send_step - write the command of one step */
static int
smtpc_send_step(struct smtpc *c, const struct smtpc_step *s)
{
	switch (s->kind) {
	case SMTPC_STEP_MAIL: {
		char size[40] = "";

		if ((c->exts & SMTPC_EXT_SIZE) &&
		    util_bsnprintf(size, sizeof(size), " SIZE=%llu",
		    (unsigned long long)c->size) == -1)
			size[0] = '\0';
		return smtpc_write(c, "MAIL FROM:<%s>%s%s%s", c->sender, size,
		    c->need_8bit && (c->exts & SMTPC_EXT_8BITMIME) ? " BODY=8BITMIME" : "",
		    c->smtputf8 && (c->exts & SMTPC_EXT_SMTPUTF8) ? " SMTPUTF8" : "");
	}
	case SMTPC_STEP_RCPT:
		return smtpc_write(c, "RCPT TO:<%s>", c->rcpts[s->rcpt]);
	case SMTPC_STEP_DATA:
		return smtpc_write(c, "DATA");
	case SMTPC_STEP_RSET:
		return smtpc_write(c, "RSET");
	case SMTPC_STEP_DOT:
	case SMTPC_STEP_DOT_IGNORE:
		return 0;                       /* written by the content code */
	}
	return 0;
}

/*
 * smtpc_send_more - advance the send position: with PIPELINING up to and
 * including DATA (RFC 2920 §3.1: DATA ends a group), otherwise one command
 * when the receive position has caught up.
 */
static void
smtpc_send_more(struct smtpc *c)
{
	int sent = 0;

	while (c->send_pos < c->nsteps && c->state == SMTPC_S_TXN) {
		const struct smtpc_step *s = &c->steps[c->send_pos];

		if (s->kind == SMTPC_STEP_DOT || s->kind == SMTPC_STEP_DOT_IGNORE)
			break;
		if (!(c->exts & SMTPC_EXT_PIPELINING) && c->send_pos > c->recv_pos)
			break;
		if (c->send_pos > c->recv_pos && c->steps[c->send_pos - 1].kind == SMTPC_STEP_DATA)
			break;
		if (smtpc_send_step(c, s) == -1)
			return;
		c->send_pos++;
		sent = 1;
		if (s->kind == SMTPC_STEP_DATA || s->kind == SMTPC_STEP_RSET)
			break;
	}
	if (sent)
		smtpc_timer(c, c->cmd_timeout);
}

/* smtpc_local_txn - refuse the transaction here: every reply is r */
static void
smtpc_local_txn(struct smtpc *c, int code, const char *dsn, const char *text)
{
	smtpc_reply_local(&c->res.mail, code, dsn, text);
	for (size_t i = 0; i < c->res.nrcpt; i++)
		c->res.rcpt[i] = c->res.mail;
	c->res.data = c->res.mail;
	log_trace(TRACE_SMTPC, "smtpc %s: refused locally: %s", c->peer, c->res.mail.text);
	smtpc_txn_clear(c);
	smtpc_post(c, SMTPC_N_DONE);
}

/* smtpc_addr_ok - no CR, LF or angle brackets that would break the command */
static int
smtpc_addr_ok(const char *s)
{
	return s != NULL && strpbrk(s, "\r\n<>") == NULL && strlen(s) <= 1000;
}

/*
 * smtpc_send - start a transaction (in READY only): checks the peer's SIZE,
 * 8BITMIME and SMTPUTF8 first and refuses locally (a done() with 552 5.3.4,
 * 554 5.6.3 or 553 5.6.7) rather than sending what the peer cannot take.
 * t's strings are copied; t->content is borrowed until done()/failed().
 */
int
smtpc_send(struct smtpc *c, const struct smtpc_txn *t)
{
	size_t nsteps;

	if (c->state != SMTPC_S_READY || c->notify != SMTPC_N_NONE || t == NULL ||
	    t->nrcpt == 0 || t->rcpts == NULL || t->sender == NULL || t->content.read == NULL)
		return -1;
	if (t->nrcpt > SIZE_MAX / sizeof(struct smtpc_step) - 4)
		return -1;
	free(c->res.rcpt);
	memset(&c->res, 0, sizeof(c->res));
	if ((c->res.rcpt = calloc(t->nrcpt, sizeof(*c->res.rcpt))) == NULL)
		return -1;
	c->res.nrcpt = t->nrcpt;
	if ((c->rcpts = calloc(t->nrcpt, sizeof(*c->rcpts))) == NULL)
		goto fail;
	if ((c->sender = strdup(t->sender)) == NULL)
		goto fail;
	for (c->nrcpt = 0; c->nrcpt < t->nrcpt; c->nrcpt++)
		if ((c->rcpts[c->nrcpt] = strdup(t->rcpts[c->nrcpt] != NULL ?
		    t->rcpts[c->nrcpt] : "")) == NULL)
			goto fail;
	c->size = t->size;
	c->need_8bit = t->need_8bit;
	c->smtputf8 = t->smtputf8;
	c->src = t->content;
	c->mail_ok = 0;
	c->naccepted = 0;

	if (!smtpc_addr_ok(c->sender)) {
		smtpc_local_txn(c, 501, "5.1.7", "bad sender address syntax");
		return 0;
	}
	for (size_t i = 0; i < c->nrcpt; i++) {
		if (!smtpc_addr_ok(c->rcpts[i])) {
			smtpc_local_txn(c, 501, "5.1.3", "bad recipient address syntax");
			return 0;
		}
	}
	if ((c->exts & SMTPC_EXT_SIZE) && c->size_limit > 0 && c->size > c->size_limit) {
		char text[160];

		if (util_bsnprintf(text, sizeof(text), "message size %llu exceeds size limit "
		    "%llu of %s", (unsigned long long)c->size, (unsigned long long)c->size_limit,
		    c->peer) == -1)
			(void)util_strlcpy(text, "message size exceeds the next hop's limit",
			    sizeof(text));
		smtpc_local_txn(c, 552, "5.3.4", text);
		return 0;
	}
	if (c->need_8bit && !(c->exts & SMTPC_EXT_8BITMIME)) {
		smtpc_local_txn(c, 554, "5.6.3", "message has 8-bit content, but the next hop "
		    "does not support 8BITMIME");
		return 0;
	}
	if (c->smtputf8 && !(c->exts & SMTPC_EXT_SMTPUTF8)) {
		smtpc_local_txn(c, 553, "5.6.7", "message needs SMTPUTF8, but the next hop "
		    "does not support SMTPUTF8");
		return 0;
	}

	nsteps = c->nrcpt + 3;
	if ((c->steps = calloc(nsteps, sizeof(*c->steps))) == NULL)
		goto fail;
	c->steps[c->nsteps++].kind = SMTPC_STEP_MAIL;
	for (size_t i = 0; i < c->nrcpt; i++) {
		c->steps[c->nsteps].kind = SMTPC_STEP_RCPT;
		c->steps[c->nsteps++].rcpt = i;
	}
	c->steps[c->nsteps++].kind = SMTPC_STEP_DATA;
	/* the last slot: DOT, DOT_IGNORE or RSET, decided by the replies */
	smtpc_enter(c, SMTPC_S_TXN);
	smtpc_send_more(c);
	return 0;
fail:
	smtpc_txn_clear(c);
	free(c->res.rcpt);
	memset(&c->res, 0, sizeof(c->res));
	return -1;
}

/*
 * smtpc_stuff - buf[0..n) to out, with one more '.' before every line that
 * starts with '.' (RFC 5321 §4.5.2). A line starts after LF and also after
 * CR: a next hop that takes a bare CR as a line end must never see
 * "<CR>.<CR>" (SMTP smuggling), whatever the content holds. memchr finds
 * the dots; the text between them goes out in one evbuffer_add.
 */
static int
smtpc_stuff(struct smtpc *c, struct evbuffer *out, const char *buf, size_t n)
{
	size_t i = 0, start = 0;

	while (i < n) {
		const char *dot = memchr(buf + i, '.', n - i);
		size_t j;

		if (dot == NULL)
			break;
		j = (size_t)(dot - buf);
		if (j == 0 ? c->at_bol : (buf[j - 1] == '\n' || buf[j - 1] == '\r')) {
			if (evbuffer_add(out, buf + start, j - start) == -1 ||
			    evbuffer_add(out, ".", 1) == -1)
				return -1;
			start = j;           /* the line's own dot goes with the next run */
		}
		i = j + 1;
	}
	if (n > 0)
		c->at_bol = buf[n - 1] == '\n' || buf[n - 1] == '\r';
	return evbuffer_add(out, buf + start, n - start);
}

/* smtpc_content_fill - move content into the output, dot-stuffed, up to HIGH */
static void
smtpc_content_fill(struct smtpc *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	char buf[SMTPC_CHUNK];

	while (!c->content_eof && evbuffer_get_length(out) < SMTPC_OUT_HIGH) {
		ssize_t n = c->src.read(c->src.arg, buf, sizeof(buf));

		if (n < 0) {
			smtpc_fail(c, 0, "4.3.0", "error reading the queue file while sending to %s",
			    c->peer);
			return;
		}
		if (n == 0) {
			c->content_eof = 1;
			break;
		}
		if (smtpc_stuff(c, out, buf, (size_t)n) == -1)
			goto nomem;
		if (n >= 2) {
			c->last2[0] = buf[n - 2];
			c->last2[1] = buf[n - 1];
		} else {
			c->last2[0] = c->last2[1];
			c->last2[1] = buf[0];
		}
	}
	if (!c->content_eof)
		return;
	/* The end: CRLF unless the content ended with one, then ".". */
	if (!(c->last2[0] == '\r' && c->last2[1] == '\n') && !(c->at_bol && c->last2[1] == 0)) {
		if (evbuffer_add(out, "\r\n", 2) == -1)
			goto nomem;
	}
	if (evbuffer_add(out, ".\r\n", 3) == -1)
		goto nomem;
	memset(&c->src, 0, sizeof(c->src));
	smtpc_enter(c, SMTPC_S_TXN);
	smtpc_timer(c, c->data_timeout);
	return;
nomem:
	smtpc_fail(c, 0, "4.3.0", "out of memory sending to %s", c->peer);
}

/*
 * smtpc_content_wire - a content that needs no change goes out by
 * reference: the source appends file segments that libevent hands to
 * sendfile(2), so its bytes never pass through this process. Plain
 * connections only: over TLS the bytes must be encrypted here. 0 when
 * the whole content and the final "." are queued for sending.
 */
static int
smtpc_content_wire(struct smtpc *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	if (c->src.wire == NULL || bufferevent_openssl_get_ssl(c->bev) != NULL)
		return -1;
	if (c->src.wire(c->src.arg, out) < 0)
		return -1;
	if (evbuffer_add(out, ".\r\n", 3) == -1) {
		smtpc_fail(c, 0, "4.3.0", "out of memory sending to %s", c->peer);
		return 0;
	}
	c->content_eof = 1;
	memset(&c->src, 0, sizeof(c->src));
	smtpc_enter(c, SMTPC_S_TXN);
	smtpc_timer(c, c->data_timeout);
	return 0;
}

/* smtpc_content_start - the 354: stream the message */
static void
smtpc_content_start(struct smtpc *c)
{
	c->steps[c->nsteps++].kind = SMTPC_STEP_DOT;
	c->send_pos = c->nsteps;
	c->at_bol = 1;
	c->last2[0] = c->last2[1] = 0;
	c->content_eof = 0;
	smtpc_enter(c, SMTPC_S_CONTENT);
	smtpc_timer(c, c->data_timeout);
	if (smtpc_content_wire(c) == 0)
		return;
	smtpc_content_fill(c);
}

/* smtpc_txn_reply - a reply for the step at the receive position */
static void
smtpc_txn_reply(struct smtpc *c, const struct smtpc_reply *r)
{
	struct smtpc_step *s;
	int ok = r->code >= 200 && r->code < 300;

	if (c->recv_pos >= c->send_pos) {
		smtpc_fail(c, 0, "4.4.2", "protocol error: unexpected reply from %s: %s",
		    c->peer, r->text);
		return;
	}
	s = &c->steps[c->recv_pos++];
	switch (s->kind) {
	case SMTPC_STEP_MAIL:
		c->res.mail = *r;
		c->mail_ok = ok;
		if (!ok && !(c->exts & SMTPC_EXT_PIPELINING)) {
			/* Lock-step: nothing else was sent, nothing more to do. */
			for (size_t i = 0; i < c->res.nrcpt; i++)
				c->res.rcpt[i] = *r;
			smtpc_txn_done(c);
			return;
		}
		break;
	case SMTPC_STEP_RCPT:
		/* After a refused MAIL the RCPT replies are 503s: the MAIL reply says why. */
		c->res.rcpt[s->rcpt] = c->mail_ok ? *r : c->res.mail;
		if (ok && c->mail_ok)
			c->naccepted++;
		if (!(c->exts & SMTPC_EXT_PIPELINING) && s->rcpt + 1 == c->nrcpt &&
		    c->naccepted == 0) {
			/* RFC 5321 §3.3: no recipient, no DATA; RSET ends the transaction. */
			c->steps[c->recv_pos].kind = SMTPC_STEP_RSET;
		}
		break;
	case SMTPC_STEP_DATA:
		if (r->code == 354 && c->mail_ok && c->naccepted > 0) {
			smtpc_content_start(c);
			return;
		}
		if (r->code == 354) {
			/* RFC 2920 §3.1: DATA accepted though no RCPT was: send an empty message */
			c->steps[c->nsteps++].kind = SMTPC_STEP_DOT_IGNORE;
			c->send_pos = c->nsteps;
			if (evbuffer_add(bufferevent_get_output(c->bev), ".\r\n", 3) == -1) {
				smtpc_fail(c, 0, "4.3.0", "out of memory sending to %s", c->peer);
				return;
			}
			smtpc_timer(c, c->cmd_timeout);
			return;
		}
		if (c->mail_ok && c->naccepted > 0)
			c->res.data = *r;
		if (c->mail_ok) {
			/*
			 * DATA refused after an accepted MAIL: the peer may still hold
			 * the transaction (RFC 5321 §4.1.1.5); RSET so that the
			 * connection can carry the next one.
			 */
			c->steps[c->nsteps++].kind = SMTPC_STEP_RSET;
			smtpc_send_more(c);
			return;
		}
		smtpc_txn_done(c);
		return;
	case SMTPC_STEP_DOT:
		c->res.data = *r;
		smtpc_txn_done(c);
		return;
	case SMTPC_STEP_DOT_IGNORE:
		smtpc_txn_done(c);
		return;
	case SMTPC_STEP_RSET:
		c->res.rset = r->code;
		smtpc_txn_done(c);
		return;
	}
	/* the command timeout runs per reply */
	if (c->recv_pos < c->send_pos)
		smtpc_timer(c, c->cmd_timeout);
	smtpc_send_more(c);
}

/*
 * smtpc_reply - one complete reply from the peer, by state. A 421 (RFC 5321
 * §3.8: the server is closing) fails the session wherever it comes.
 */
static void
smtpc_reply(struct smtpc *c, const struct smtpc_reply *r)
{
	log_trace(TRACE_SMTPC, "smtpc %s: <- %s", c->peer, r->text);
	if (c->state == SMTPC_S_QUIT) {
		smtpc_enter(c, SMTPC_S_DEAD);
		smtpc_post(c, SMTPC_N_FREE);
		return;
	}
	if (r->code == 421) {
		smtpc_fail_reply(c, r);
		return;
	}
	switch (c->state) {
	case SMTPC_S_GREETING:
		if (r->code != 220) {
			smtpc_fail_reply(c, r);
			return;
		}
		smtpc_send_hello(c, SMTPC_S_EHLO);
		return;
	case SMTPC_S_EHLO:
		if (r->code >= 200 && r->code < 300) {
			smtpc_ready(c);
			return;
		}
		if (r->code >= 500) {
			smtpc_send_hello(c, SMTPC_S_HELO);
			return;
		}
		smtpc_fail_reply(c, r);
		return;
	case SMTPC_S_HELO:
		if (r->code >= 200 && r->code < 300) {
			smtpc_ready(c);
			return;
		}
		smtpc_fail_reply(c, r);
		return;
	case SMTPC_S_STARTTLS:
		smtpc_tls_reply(c, r);
		return;
	case SMTPC_S_AUTH:
		smtpc_auth_reply(c, r);
		return;
	case SMTPC_S_TXN:
		smtpc_txn_reply(c, r);
		return;
	default:
		/* READY, CONTENT: nothing was asked; the stream is out of step. */
		smtpc_fail(c, 0, "4.4.2", "protocol error: unexpected reply from %s in state %s: "
		    "%s", c->peer, smtpc_state_names[c->state], r->text);
		return;
	}
}

/* smtpc_on_read - parse what arrived, one reply at a time */
static void
smtpc_on_read(struct bufferevent *bev, void *arg)
{
	struct smtpc *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char buf[4096];

	while (c->state != SMTPC_S_DEAD && c->state != SMTPC_S_TLS && c->bev == bev &&
	    evbuffer_get_length(in) > 0) {
		ev_ssize_t n = evbuffer_copyout(in, buf, sizeof(buf));
		size_t used = 0;
		enum smtpc_rstatus st;

		if (n <= 0)
			break;
		st = smtpc_reply_feed(&c->rp, buf, (size_t)n, &used);
		(void)evbuffer_drain(in, used);
		if (st == SMTPC_R_INVALID) {
			smtpc_fail(c, 0, "4.4.2", "protocol error: malformed or oversized reply "
			    "from %s", c->peer);
			return;
		}
		if ((st == SMTPC_R_LINE || st == SMTPC_R_DONE) && c->state == SMTPC_S_EHLO &&
		    c->rp.lineno > 1 && c->rp.code / 100 == 2)
			smtpc_ehlo_keyword(c, c->rp.ltext, c->rp.ltextlen);
		if (st == SMTPC_R_DONE)
			smtpc_reply(c, &c->rp.reply);
	}
}

/* smtpc_on_write - the output drained below the low-water mark: more content */
static void
smtpc_on_write(struct bufferevent *bev, void *arg)
{
	struct smtpc *c = arg;

	(void)bev;
	if (c->state == SMTPC_S_CONTENT)
		smtpc_content_fill(c);
}

/* smtpc_state_doing - what the session was doing, for "lost connection ... while" */
static const char *
smtpc_state_doing(const struct smtpc *c)
{
	switch (c->state) {
	case SMTPC_S_GREETING:  return "receiving the initial server greeting";
	case SMTPC_S_EHLO:      return "performing the EHLO handshake";
	case SMTPC_S_HELO:      return "performing the HELO handshake";
	case SMTPC_S_STARTTLS:  return "sending STARTTLS";
	case SMTPC_S_TLS:       return "performing the TLS handshake";
	case SMTPC_S_AUTH:      return "performing the AUTH handshake";
	case SMTPC_S_CONTENT:   return "sending message content";
	case SMTPC_S_TXN:
		if (c->recv_pos < c->nsteps) {
			switch (c->steps[c->recv_pos].kind) {
			case SMTPC_STEP_MAIL: return "sending MAIL FROM";
			case SMTPC_STEP_RCPT: return "sending RCPT TO";
			case SMTPC_STEP_DATA: return "sending DATA command";
			case SMTPC_STEP_DOT:  return "sending end of data -- message may be sent more than once";
			default:              return "finishing the transaction";
			}
		}
		return "in a transaction";
	default:                return "idle";
	}
}

/*
 * smtpc_set_bev - the session's I/O moves to bev (the OpenSSL one after
 * STARTTLS): the same callbacks and write watermark as the plain one.
 */
void
smtpc_set_bev(struct smtpc *c, struct bufferevent *bev)
{
	c->bev = bev;
	bufferevent_setcb(bev, smtpc_on_read, smtpc_on_write, smtpc_on_event, c);
	bufferevent_setwatermark(bev, EV_WRITE, SMTPC_OUT_LOW, 0);
}

/* smtpc_on_event - connected, or the connection broke */
static void
smtpc_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct smtpc *c = arg;
	int e = EVUTIL_SOCKET_ERROR();

	(void)bev;
	if (c->state == SMTPC_S_TLS) {
		smtpc_tls_event(c, what);
		return;
	}
	if ((what & BEV_EVENT_CONNECTED) && c->smtps) {
		/* RFC 8314 §3: TLS from the first byte; the greeting comes over it */
		smtpc_tls_start(c);
		return;
	}
	if (what & BEV_EVENT_CONNECTED) {
		smtpc_enter(c, SMTPC_S_GREETING);
		/* the greeting gets the command timeout (Postfix's smtp_helo_timeout) */
		smtpc_timer(c, c->cmd_timeout);
		bufferevent_enable(c->bev, EV_READ | EV_WRITE);
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (c->state == SMTPC_S_QUIT || c->state == SMTPC_S_DEAD) {
		if (c->state == SMTPC_S_QUIT) {
			smtpc_enter(c, SMTPC_S_DEAD);
			smtpc_post(c, SMTPC_N_FREE);
		}
		return;
	}
	if (c->state == SMTPC_S_CONNECTING) {
		smtpc_fail(c, 0, "4.4.1", "connect to %s: %s", c->peer,
		    (what & BEV_EVENT_ERROR) && e != 0 ? strerror(e) : "Connection closed");
		return;
	}
	/* a drop during AUTH is an AUTH failure (4.7.8): deferred, like a refusal */
	if ((what & BEV_EVENT_ERROR) && e != 0)
		smtpc_fail(c, 0, c->state == SMTPC_S_AUTH ? "4.7.8" : "4.4.2",
		    "lost connection with %s while %s: %s", c->peer, smtpc_state_doing(c),
		    strerror(e));
	else
		smtpc_fail(c, 0, c->state == SMTPC_S_AUTH ? "4.7.8" : "4.4.2",
		    "lost connection with %s while %s", c->peer, smtpc_state_doing(c));
}

/*
 * smtpc_quit - say QUIT when idle and free the session once the peer
 * answered, closed, or SMTPC_QUIT_WAIT seconds passed; in any other state
 * close at once. No callback runs after this call.
 */
void
smtpc_quit(struct smtpc *c)
{
	unsigned wait;

	if (c == NULL)
		return;
	c->quitting = 1;
	if (c->state != SMTPC_S_READY) {
		smtpc_enter(c, SMTPC_S_DEAD);
		(void)event_del(c->ev_timer);
		smtpc_post(c, SMTPC_N_FREE);
		return;
	}
	smtpc_enter(c, SMTPC_S_QUIT);
	if (smtpc_write(c, "QUIT") == -1)
		return;                         /* smtpc_fail() in QUIT posted the free */
	wait = c->cmd_timeout < SMTPC_QUIT_WAIT ? c->cmd_timeout : SMTPC_QUIT_WAIT;
	smtpc_timer(c, wait);
}
