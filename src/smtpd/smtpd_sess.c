/*
 * smtpd_sess.c - one inbound SMTP session: socket I/O, states, the input
 *                loop, DATA/BDAT content and the queue commit
 *
 * Owns:     struct smtpd_sess and what hangs off it: the bufferevent (and
 *           so the socket), the HELO name, the current transaction with its
 *           open queue file, and the link to a pending commit handle.
 * Lifetime: smtpd_sess_new() at accept; smtpd_sess_kill() moves it to the
 *           server's reap list and the reap event calls smtpd_sess_free(),
 *           so no callback ever returns into a freed session (STYLE §6).
 *           A commit handle outlives its session: the destructor only
 *           clears the handle's back pointer, and the message stays queued.
 * Errors:   peer trouble (EOF, reset, timeout, garbage) ends the session
 *           with a log line; allocation failure ends it with 421.
 * Context:  event-loop thread.
 *
 * I/O seam: the session talks to a bufferevent. On a plain socket
 * (SMTPD_F_DIRECT_IO) replies collected while a batch of input is processed
 * are written with one write(2) at the end of the batch, and EV_WRITE is
 * enabled only when the kernel did not take everything: one syscall per
 * batch instead of an epoll round trip per reply. TLS (smtpd_tls.c)
 * replaces s->bev with an OpenSSL bufferevent on the same socket (STARTTLS:
 * once the 220 is sent, dropping the input buffered before the handshake,
 * RFC 3207 §4.2) and clears SMTPD_F_DIRECT_IO, so smtpd_sess_flush() leaves
 * writing to libevent.
 *
 * PIPELINING (RFC 2920): every complete command already buffered is run
 * and its reply appended in order; input is not read while a commit waits
 * for its sync (the next replies must follow the 250) nor while more than
 * SMTPD_OUT_MAX bytes of replies are unsent (a client that never reads).
 */
#include "smtpd/smtpd_int.h"
#include "lib/log.h"
#include "lib/util.h"
#include "dkim/dkim.h"
#include "mail/maillog.h"
#include "metrics/metrics.h"
#include "queue/queue.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#define PREPEND_MAX 16384    /* Received:, Message-ID:, Date: and DKIM signatures */

static const char *const state_names[] = {
	"PROXY", "CMD", "DATA", "BDAT", "COMMIT", "AUTH", "CLOSING", "LINGER", "DEAD",
};

static void sess_readcb(struct bufferevent *bev, void *arg);
static void sess_writecb(struct bufferevent *bev, void *arg);
static void sess_eventcb(struct bufferevent *bev, short what, void *arg);
static void sess_process(struct smtpd_sess *s);
static void sess_output_done(struct smtpd_sess *s);

/* smtpd_sess_enter - the one place a session changes state (STYLE §7) */
void
smtpd_sess_enter(struct smtpd_sess *s, enum smtpd_state st)
{
	log_trace(TRACE_SMTPD, "smtpd %llu: %s -> %s", (unsigned long long)s->id,
	    state_names[s->state], state_names[st]);
	s->state = st;
}

/* smtpd_sess_set_addr - the client's address, text form for logs (v4-mapped shown as v4) */
void
smtpd_sess_set_addr(struct smtpd_sess *s, const struct sockaddr *sa, socklen_t salen)
{
	memset(&s->peer, 0, sizeof(s->peer));
	s->addr[0] = '\0';
	if (sa->sa_family == AF_INET6 && salen >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			s->peer.sin.sin_family = AF_INET;
			memcpy(&s->peer.sin.sin_addr, in6->sin6_addr.s6_addr + 12, 4);
			s->peer.sin.sin_port = in6->sin6_port;
		} else {
			s->peer.sin6 = *in6;
		}
	} else if (sa->sa_family == AF_INET && salen >= (socklen_t)sizeof(struct sockaddr_in)) {
		s->peer.sin = *(const struct sockaddr_in *)sa;
	} else {
		util_strlcpy(s->addr, "unknown", sizeof(s->addr));
		return;
	}
	if (s->peer.sa.sa_family == AF_INET)
		inet_ntop(AF_INET, &s->peer.sin.sin_addr, s->addr, sizeof(s->addr));
	else
		inet_ntop(AF_INET6, &s->peer.sin6.sin6_addr, s->addr, sizeof(s->addr));
}

/*
 * smtpd_sess_set_bev - the session's callbacks, timeouts and read limit on
 * bev, which becomes s->bev (at accept, and when TLS replaces the plain
 * bufferevent: smtpd_tls_start). Reading on, writing when there is output.
 */
void
smtpd_sess_set_bev(struct smtpd_sess *s, struct bufferevent *bev)
{
	s->bev = bev;
	bufferevent_setcb(bev, sess_readcb, sess_writecb, sess_eventcb, s);
	bufferevent_set_timeouts(bev, &s->srv->timeout, &s->srv->timeout);
	bufferevent_setwatermark(bev, EV_READ, 0, SMTPD_IN_MAX);
	bufferevent_disable(bev, EV_WRITE);
	bufferevent_enable(bev, EV_READ);
}

/* smtpd_sess_new - a session around an accepted socket (taken: closed by the bufferevent) */
struct smtpd_sess *
smtpd_sess_new(struct smtpd *srv, int fd, const struct sockaddr *sa, socklen_t salen)
{
	struct smtpd_sess *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		free(s);
		return NULL;
	}
	s->srv = srv;
	s->id = ++srv->next_id;
	s->state = SMTPD_S_PROXY;
	s->flags = SMTPD_F_DIRECT_IO;
	s->last_cmd = SMTPD_NCMD;
	smtpd_line_init(&s->line);
	smtpd_sess_set_addr(s, sa, salen);
	smtpd_sess_set_bev(s, s->bev);
	TAILQ_INSERT_TAIL(&srv->sessions, s, entry);
	srv->nsess++;
	srv->m->sessions_active++;
	srv->m->sessions_total++;
	return s;
}

/* smtpd_sess_proto - the protocol name for Received: and the mail log */
const char *
smtpd_sess_proto(const struct smtpd_sess *s)
{
	if (s->flags & SMTPD_F_AUTH)             /* RFC 3848 */
		return (s->flags & SMTPD_F_ESMTP) ? "ESMTPSA" : "SMTPSA";
	if (s->flags & SMTPD_F_TLS)
		return (s->flags & SMTPD_F_ESMTP) ? "ESMTPS" : "SMTPS";
	return (s->flags & SMTPD_F_ESMTP) ? "ESMTP" : "SMTP";
}

/* reply_code - the 3-digit code at the start of a reply; counts 4xx/5xx as errors */
static void
reply_code(struct smtpd_sess *s, const char *text, size_t len)
{
	unsigned code = 0;

	if (len >= 3)
		code = (unsigned)(text[0] - '0') * 100 + (unsigned)(text[1] - '0') * 10 +
		    (unsigned)(text[2] - '0');
	s->last_code = code;
	if (code >= 400 && code != 421)
		s->nerrors++;
}

/* smtpd_sess_reply - append a complete reply (with its CRLF) to the output */
void
smtpd_sess_reply(struct smtpd_sess *s, const char *text, size_t len)
{
	reply_code(s, text, len);
	if (evbuffer_add(bufferevent_get_output(s->bev), text, len) < 0)
		smtpd_sess_kill(s);
}

/* smtpd_sess_replyf - a formatted reply; the caller gives the CRLF */
void
smtpd_sess_replyf(struct smtpd_sess *s, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		/* our own formats with bounded fields: cannot happen */
		log_warnx("smtpd %llu: reply too long", (unsigned long long)s->id);
		SMTPD_REPLY(s, "451 4.3.0 Error: internal error\r\n");
		return;
	}
	smtpd_sess_reply(s, buf, (size_t)n);
}

/*
 * sess_input_update - read from the socket except while closing. Input
 * that the state cannot take yet (a commit waiting for its sync, unsent
 * replies over SMTPD_OUT_MAX) stays in the input buffer, which the read
 * high-water mark (SMTPD_IN_MAX) bounds: libevent stops reading at it and
 * goes on by itself once sess_process() has drained the buffer. So the
 * common path costs no epoll_ctl() per message.
 */
static void
sess_input_update(struct smtpd_sess *s)
{
	int want = !(s->flags & SMTPD_F_EOF) && s->state != SMTPD_S_PROXY &&
	    (s->state < SMTPD_S_CLOSING || s->state == SMTPD_S_LINGER);
	int have = (bufferevent_get_enabled(s->bev) & EV_READ) != 0;

	if (want && !have)
		bufferevent_enable(s->bev, EV_READ);
	else if (!want && have)
		bufferevent_disable(s->bev, EV_READ);
}

/*
 * smtpd_sess_flush - send what is in the output buffer: at once on a plain
 * socket, the rest (if any) by libevent when the socket is writable.
 */
void
smtpd_sess_flush(struct smtpd_sess *s)
{
	struct evbuffer *out;

	if (s->state == SMTPD_S_DEAD || (s->flags & SMTPD_F_WRITING))
		return;
	out = bufferevent_get_output(s->bev);
	if (evbuffer_get_length(out) == 0)
		return;
	if (s->flags & SMTPD_F_DIRECT_IO) {
		int n;
		/* a socket bufferevent keeps its output frozen at the front
		 * except while it writes itself; do what bufferevent_writecb does */
		evbuffer_unfreeze(out, 1);
		errno = 0;
		n = evbuffer_write(out, bufferevent_getfd(s->bev));
		evbuffer_freeze(out, 1);
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			log_trace(TRACE_SMTPD, "smtpd %llu: write: %s", (unsigned long long)s->id,
			    strerror(errno));
			smtpd_sess_kill(s);
			return;
		}
		if (evbuffer_get_length(out) == 0)
			return;
	}
	s->flags |= SMTPD_F_WRITING;
	bufferevent_enable(s->bev, EV_WRITE);
}

/* smtpd_sess_txn_free - end a transaction; an uncommitted queue file is removed */
struct smtpd_txn *
smtpd_sess_txn_free(struct smtpd_txn *t)
{
	if (t == NULL)
		return NULL;
	if (t->qf != NULL)
		t->qf = queue_file_abort(t->qf);
	t->dkim = dkim_sign_free(t->dkim);
	free(t->sender);
	free(t->rbuf);
	free(t);
	return NULL;
}

/* proxy_wait_free - the PROXY header is in, or the session ends */
static void
proxy_wait_free(struct smtpd_sess *s)
{
	if (s->proxy == NULL)
		return;
	event_free(s->proxy->ev);
	free(s->proxy);
	s->proxy = NULL;
}

/*
 * smtpd_sess_kill - stop all I/O now and free the session from the reap
 * event, after the current callback has returned.
 */
void
smtpd_sess_kill(struct smtpd_sess *s)
{
	struct smtpd *srv = s->srv;

	if (s->state == SMTPD_S_DEAD)
		return;
	smtpd_sess_enter(s, SMTPD_S_DEAD);
	bufferevent_disable(s->bev, EV_READ | EV_WRITE);
	proxy_wait_free(s);
	s->txn = smtpd_sess_txn_free(s->txn);
	smtpd_auth_end(s);                   /* a pending password check is cancelled */
	if (s->commit != NULL) {             /* its answer may come before the reap event */
		s->commit->sess = NULL;
		s->commit = NULL;
	}
	TAILQ_REMOVE(&srv->sessions, s, entry);
	TAILQ_INSERT_TAIL(&srv->reap, s, entry);
	event_active(srv->ev_reap, EV_TIMEOUT, 0);
}

/* counts_text - Postfix's "ehlo=1 mail=1 rcpt=0/1 ... commands=3/4" */
static void
counts_text(const struct smtpd_sess *s, char *buf, size_t size)
{
	size_t off = 0;
	unsigned ok = 0, total = 0;
	int n;

	buf[0] = '\0';
	for (int i = 0; i < SMTPD_NCMD; i++) {
		unsigned o = s->counts[i][0], t = s->counts[i][1];
		if (t == 0)
			continue;
		ok += o;
		total += t;
		if (o == t)
			n = snprintf(buf + off, size - off, "%s=%u ", smtpd_cmd_name((enum smtpd_cmd_id)i), t);
		else
			n = snprintf(buf + off, size - off, "%s=%u/%u ", smtpd_cmd_name((enum smtpd_cmd_id)i), o, t);
		if (n < 0 || (size_t)n >= size - off)
			return;
		off += (size_t)n;
	}
	if (ok == total)
		n = snprintf(buf + off, size - off, "commands=%u", total);
	else
		n = snprintf(buf + off, size - off, "commands=%u/%u", ok, total);
	if (n < 0 || (size_t)n >= size - off)
		buf[off] = '\0';
}

/* smtpd_sess_free - the destructor (from the reap event or smtpd_free()); takes NULL */
struct smtpd_sess *
smtpd_sess_free(struct smtpd_sess *s)
{
	struct smtpd *srv;

	if (s == NULL)
		return NULL;
	srv = s->srv;
	if (s->state == SMTPD_S_DEAD)
		TAILQ_REMOVE(&srv->reap, s, entry);
	else
		TAILQ_REMOVE(&srv->sessions, s, entry);
	if (s->commit != NULL)
		s->commit->sess = NULL;      /* the message stays queued; only the reply is lost */
	s->txn = smtpd_sess_txn_free(s->txn);
	smtpd_auth_end(s);
	proxy_wait_free(s);
	if ((s->flags & SMTPD_F_LOGGED) && maillog_enabled(srv->ml)) {
		char counts[512];
		counts_text(s, counts, sizeof(counts));
		maillog_disconnect(srv->ml, "unknown", s->addr, counts);
	}
	if (s->flags & SMTPD_F_IPCOUNT)
		smtpd_ip_release(srv, s->addr);
	if (s->flags & SMTPD_F_TLS)
		smtpd_tls_close(s);          /* close_notify when the output is all out */
	bufferevent_free(s->bev);
	free(s->helo);
	srv->nsess--;
	srv->m->sessions_active--;
	free(s);
	return NULL;
}

/*
 * sess_output_done - the last replies are out: close now, or after a
 * QUIT-less end (421, errors) shut the write side and drop the client's
 * remaining input for a moment, so that closing with unread data does not
 * reset the connection before the client has read our last reply.
 */
static void
sess_output_done(struct smtpd_sess *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct timeval tv = { SMTPD_LINGER_SEC, 0 };

	if (s->srv->stopping || (s->flags & SMTPD_F_EOF) ||
	    ((s->flags & SMTPD_F_QUIT) && evbuffer_get_length(in) == 0)) {
		smtpd_sess_kill(s);
		return;
	}
	if (s->flags & SMTPD_F_TLS)
		smtpd_tls_close(s);
	if (shutdown(bufferevent_getfd(s->bev), SHUT_WR) < 0) {
		smtpd_sess_kill(s);
		return;
	}
	smtpd_sess_enter(s, SMTPD_S_LINGER);
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	evbuffer_drain(in, evbuffer_get_length(in));
	sess_input_update(s);
}

/* sess_close_finish - CLOSING: send what is queued; close once it is out */
static void
sess_close_finish(struct smtpd_sess *s)
{
	smtpd_sess_flush(s);
	if (s->state == SMTPD_S_CLOSING && !(s->flags & SMTPD_F_WRITING))
		sess_output_done(s);
}

/*
 * smtpd_sess_close - end the session after the replies already queued:
 * the transaction is dropped (an uncommitted file removed). Inside the
 * input loop the rest happens when the loop ends (the command line that
 * asked for it is still in the input buffer until then).
 */
void
smtpd_sess_close(struct smtpd_sess *s)
{
	if (s->state >= SMTPD_S_CLOSING)
		return;
	s->txn = smtpd_sess_txn_free(s->txn);
	smtpd_sess_enter(s, SMTPD_S_CLOSING);
	sess_input_update(s);
	if (!(s->flags & SMTPD_F_BUSY))
		sess_close_finish(s);
}

/* smtpd_sess_shutdown - the server stops: 421 to sessions not waiting for a commit */
void
smtpd_sess_shutdown(struct smtpd_sess *s)
{
	switch (s->state) {
	case SMTPD_S_COMMIT:
		s->flags |= SMTPD_F_BYE;     /* the 250 first, then 421 (commit_done) */
		break;
	case SMTPD_S_DEAD:
		break;
	case SMTPD_S_PROXY:
	case SMTPD_S_CLOSING:
	case SMTPD_S_LINGER:
		smtpd_sess_kill(s);
		break;
	default:
		smtpd_sess_replyf(s, "421 4.3.2 %s Service shutting down\r\n", s->srv->cfg->hostname);
		smtpd_sess_close(s);
		if (s->state != SMTPD_S_DEAD)
			smtpd_sess_kill(s);  /* no waiting for a client that does not read */
		break;
	}
}

/* sess_greet - the client's address is final: per-client limit, then the 220 */
static void
sess_greet(struct smtpd_sess *s)
{
	struct smtpd *srv = s->srv;
	const struct config *cfg = srv->cfg;

	maillog_connect(srv->ml, "unknown", s->addr);
	s->flags |= SMTPD_F_LOGGED;
	smtpd_sess_enter(s, SMTPD_S_CMD);
	if (!smtpd_trusted(srv, &s->peer)) {
		if (smtpd_ip_acquire(srv, s->addr) < 0) {
			srv->m->rejected++;
			maillog_conn_limit(srv->ml, cfg->smtpd_client_connection_limit + 1, s->addr, 0);
			smtpd_sess_replyf(s, "421 4.7.0 %s Error: too many connections from %s\r\n",
			    cfg->hostname, s->addr);
			smtpd_sess_close(s);
			return;
		}
		s->flags |= SMTPD_F_IPCOUNT;
	}
	smtpd_sess_reply(s, srv->greeting, srv->greeting_len);
}

/*
 * smtpd_sess_start - the client's address is known (the socket's, or the
 * one a PROXY header gave): SMTPS starts TLS (the greeting goes out once
 * the handshake is done), then the greeting.
 */
void
smtpd_sess_start(struct smtpd_sess *s)
{
	if ((s->flags & SMTPD_F_SMTPS) && smtpd_tls_start(s) < 0) {
		log_warnx("smtpd: %s: cannot start TLS", s->addr);
		smtpd_sess_kill(s);
		return;
	}
	sess_greet(s);
	smtpd_sess_flush(s);
	if (s->state != SMTPD_S_DEAD)
		sess_input_update(s);
}

/* proxy_refuse - a malformed header or none in time: close without a word */
static void
proxy_refuse(struct smtpd_sess *s, const char *why)
{
	log_warnx("smtpd: %s: %s PROXY protocol header, closing", s->addr, why);
	maillog_proxy_bad(s->srv->ml, why, s->addr);
	smtpd_sess_kill(s);
}

/*
 * proxy_readcb - haproxy's proxy-protocol.txt §2: look at what has come
 * (MSG_PEEK) and take only the header's bytes; what follows stays in the
 * socket for the session (or the TLS handshake). Until the header is
 * complete every byte seen belongs to it, so those are taken as they come.
 */
static void
proxy_readcb(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd_sess *s = arg;
	struct smtpd_proxy_wait *w = s->proxy;
	struct smtpd_proxy_addr pa;
	enum smtpd_proxy_result r;
	size_t used = 0, room = sizeof(w->buf) - w->len;
	uint64_t now = util_mono_us();
	ssize_t n;

	if ((what & EV_TIMEOUT) || now >= w->deadline_us) {
		proxy_refuse(s, "no complete");
		return;
	}
	n = recv(fd, w->buf + w->len, room, MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		goto wait;
	if (n <= 0) {                        /* gone before its header: nothing to say */
		smtpd_sess_kill(s);
		return;
	}
	r = smtpd_proxy_parse(w->buf, w->len + (size_t)n, &used, &pa);
	if (r == SMTPD_PROXY_INVALID || (r == SMTPD_PROXY_MORE && (size_t)n == room)) {
		proxy_refuse(s, "bad or unsupported");
		return;
	}
	if (r == SMTPD_PROXY_MORE)
		used = w->len + (size_t)n;
	if (used > w->len && recv(fd, w->buf + w->len, used - w->len, 0) != (ssize_t)(used - w->len)) {
		smtpd_sess_kill(s);
		return;
	}
	w->len = used;
	if (r == SMTPD_PROXY_MORE)
		goto wait;

	proxy_wait_free(s);
	if (s->flags & SMTPD_F_IPCOUNT) {    /* the balancer's count ends with the wait */
		smtpd_ip_release(s->srv, s->addr);
		s->flags &= ~SMTPD_F_IPCOUNT;
	}
	if (pa.have_src) {
		smtpd_sess_set_addr(s, (const struct sockaddr *)&pa.src, pa.srclen);
	} else {                             /* UNKNOWN, LOCAL: the socket's own peer */
		union smtpd_sockaddr self = s->peer;   /* set_addr clears s->peer first */
		smtpd_sess_set_addr(s, &self.sa, sizeof(self));
	}
	smtpd_sess_start(s);
	return;
wait:
	{
		uint64_t left = w->deadline_us - now;
		struct timeval tv = { (time_t)(left / 1000000), (suseconds_t)(left % 1000000) };

		if (event_add(w->ev, &tv) < 0)
			smtpd_sess_kill(s);
	}
}

/*
 * smtpd_sess_proxy_wait - a connection from smtpd_proxy_networks: count
 * it against the balancer's address while it waits (SPEC §11.4), then read
 * the PROXY header within SMTPD_PROXY_WAIT_SEC.
 */
void
smtpd_sess_proxy_wait(struct smtpd_sess *s)
{
	struct smtpd *srv = s->srv;
	struct timeval tv = { SMTPD_PROXY_WAIT_SEC, 0 };

	bufferevent_disable(s->bev, EV_READ);
	if (!smtpd_trusted(srv, &s->peer)) {
		if (smtpd_ip_acquire(srv, s->addr) < 0) {
			srv->m->rejected++;
			maillog_conn_limit(srv->ml, srv->cfg->smtpd_client_connection_limit + 1,
			    s->addr, 1);
			smtpd_sess_replyf(s, "421 4.7.0 %s Error: too many connections from %s\r\n",
			    srv->cfg->hostname, s->addr);
			smtpd_sess_close(s);
			return;
		}
		s->flags |= SMTPD_F_IPCOUNT;
	}
	if ((s->proxy = calloc(1, sizeof(*s->proxy))) == NULL ||
	    (s->proxy->ev = event_new(srv->base, bufferevent_getfd(s->bev), EV_READ,
	    proxy_readcb, s)) == NULL) {
		free(s->proxy);
		s->proxy = NULL;
		smtpd_sess_kill(s);
		return;
	}
	s->proxy->deadline_us = util_mono_us() + (uint64_t)SMTPD_PROXY_WAIT_SEC * 1000000u;
	if (event_add(s->proxy->ev, &tv) < 0)
		smtpd_sess_kill(s);
}

/* sess_cmd_input - one command line (or a piece of an over-long one); 0 = need more */
static int
sess_cmd_input(struct smtpd_sess *s, struct evbuffer *in, size_t len)
{
	const char *p;
	size_t n, used = 0;
	struct str line;
	enum smtpd_line_result r;

	if (s->line.discarding) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			return 0;
		p = v.iov_base;
		n = v.iov_len;
	} else {
		n = len < SMTPD_LINE_MAX ? len : SMTPD_LINE_MAX;
		p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
		if (p == NULL) {
			smtpd_sess_kill(s);
			return 0;
		}
	}
	r = smtpd_line_next(&s->line, p, n, &line, &used);
	switch (r) {
	case SMTPD_LINE_MORE:
		if (used == 0)
			return 0;
		evbuffer_drain(in, used);
		return 1;
	case SMTPD_LINE_LONG:
		evbuffer_drain(in, used);
		s->counts[SMTPD_C_UNKNOWN][1]++;
		SMTPD_REPLY(s, "500 5.5.2 Error: line too long\r\n");
		smtpd_auth_reset(s);         /* an AUTH exchange does not go on after it */
		smtpd_cmd_after(s);
		return 1;
	case SMTPD_LINE_OK:
		smtpd_cmd_line(s, line);     /* line points into the buffer: drain after */
		evbuffer_drain(in, used);
		return 1;
	}
	return 0;
}

/*
 * txn_content - message content (un-stuffed DATA, or BDAT bytes) to the
 * queue file. Once the message is known to be rejected (too big, bare line
 * ends, write error) the rest is only counted, so memory and disk stay
 * bounded while reading to the real end.
 */
static void
txn_content(struct smtpd_sess *s, const char *p, size_t n)
{
	struct smtpd_txn *t = s->txn;
	uint64_t limit = s->srv->cfg->message_size_limit;

	t->size += n;
	if (t->reject || t->data.bare || n == 0)
		return;
	if (limit != 0 && t->size > limit) {
		t->reject |= SMTPD_R_SIZE;
		return;
	}
	if (!smtpd_data_hdr_in_body(&t->hdr))
		smtpd_data_hdr_feed(&t->hdr, p, n);
	if (t->dkim != NULL)
		dkim_sign_feed(t->dkim, p, n);
	if (queue_file_write(t->qf, p, n) < 0) {
		log_warn("%s: queue file write", queue_file_id(t->qf));
		t->reject |= SMTPD_R_IO;
	}
}

/* smtpd_sess_date - RFC 5322 §3.3 date-time of now, local time, cached for the second */
const char *
smtpd_sess_date(struct smtpd *srv)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t now = time(NULL);
	struct tm tm;
	long off;

	if (now == srv->date_sec && srv->date[0] != '\0')
		return srv->date;
	if (localtime_r(&now, &tm) == NULL)
		gmtime_r(&now, &tm);
	off = tm.tm_gmtoff / 60;
	if (util_bsnprintf(srv->date, sizeof(srv->date), "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld (%.8s)",
	    days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900,
	    tm.tm_hour, tm.tm_min, tm.tm_sec, off < 0 ? '-' : '+', labs(off) / 60 % 100,
	    labs(off) % 60, tm.tm_zone != NULL ? tm.tm_zone : "UTC") < 0)
		util_strlcpy(srv->date, "Thu, 1 Jan 1970 00:00:00 +0000", sizeof(srv->date));
	srv->date_sec = now;
	return srv->date;
}

/*
 * build_prepend - the headers the queue adds in front of the content at
 * delivery: Received: as Postfix writes it (RFC 5321 §4.4; "for" only with
 * one recipient, so a Bcc list does not leak), then Message-ID: and Date:
 * when the message has none (RFC 5322 §3.6). Returns the length, 0 if it
 * did not fit (it always fits: every field is bounded).
 */
static size_t
build_prepend(struct smtpd_sess *s, const char *qid, char *buf, size_t size)
{
	struct smtpd *srv = s->srv;
	struct smtpd_txn *t = s->txn;
	const char *host = srv->cfg->hostname;
	const char *date = smtpd_sess_date(srv);
	const char *v6 = s->peer.sa.sa_family == AF_INET6 ? "IPv6:" : "";
	const char *helo = s->helo != NULL ? s->helo : "unknown";
	int n;
	size_t off;

	n = util_bsnprintf(buf, size, "Received: from %.510s (unknown [%s%s])\r\n",
	    helo, v6, s->addr);
	if (n < 0)
		return 0;
	off = (size_t)n;
	if (s->flags & SMTPD_F_TLS)          /* "\t(using TLSv1.3 with cipher ...)\r\n" */
		off += smtpd_tls_received(s, buf + off, size - off);
	if (t->nrcpt == 1)
		n = util_bsnprintf(buf + off, size - off, "\tby %.255s (mtad) with %s id %s\r\n"
		    "\tfor <%.330s>; %s\r\n", host, smtpd_sess_proto(s), qid, t->rbuf, date);
	else
		n = util_bsnprintf(buf + off, size - off, "\tby %.255s (mtad) with %s id %s; %s\r\n",
		    host, smtpd_sess_proto(s), qid, date);
	if (n < 0)
		return 0;
	off += (size_t)n;
	if (!(t->hdr.found & SMTPD_HDR_MESSAGE_ID)) {
		n = util_bsnprintf(buf + off, size - off, "Message-ID: <%s@%.255s>\r\n", qid, host);
		if (n < 0)
			return 0;
		off += (size_t)n;
	}
	if (!(t->hdr.found & SMTPD_HDR_DATE)) {
		n = util_bsnprintf(buf + off, size - off, "Date: %s\r\n", date);
		if (n < 0)
			return 0;
		off += (size_t)n;
	}
	return off;
}

/* commit_done - the queue's answer, on the loop, possibly after the session ended */
static void
commit_done(void *arg, int ok, const char *id)
{
	struct smtpd_commit *h = arg;
	struct smtpd *srv = h->srv;
	struct smtpd_sess *s = h->sess;

	if (srv == NULL) {                   /* the server is gone (queue_close at exit) */
		free(h);
		return;
	}
	LIST_REMOVE(h, entry);
	srv->ncommits--;
	if (ok) {
		srv->m->accepted++;
		srv->m->accepted_bytes += h->size;
		maillog_from(srv->ml, id, h->sender, h->size, h->nrcpt);
	} else {
		srv->m->rejected++;
	}
	free(h);
	if (s == NULL) {
		log_trace(TRACE_SMTPD, "smtpd: %s: client gone before the reply (%s)", id,
		    ok ? "queued" : "failed");
		smtpd_maybe_done(srv);
		return;
	}
	s->commit = NULL;
	if (ok) {
		s->counts[s->last_cmd][0]++;
		s->nerrors = 0;              /* Postfix: errors "without delivering mail" */
		smtpd_sess_replyf(s, "250 2.0.0 Ok: queued as %s\r\n", id);
	} else {
		SMTPD_REPLY(s, "451 4.3.0 Error: queue file write error\r\n");
	}
	smtpd_sess_enter(s, SMTPD_S_CMD);
	if (s->flags & SMTPD_F_BYE) {
		smtpd_sess_replyf(s, "421 4.3.2 %s Service shutting down\r\n", srv->cfg->hostname);
		smtpd_sess_close(s);
		if (s->state != SMTPD_S_DEAD)
			smtpd_sess_kill(s);
	} else {
		sess_process(s);             /* the commands that waited behind the commit */
	}
	smtpd_maybe_done(srv);
}

#define TXN_REJECT(s, lit) txn_reject((s), lit, sizeof(lit) - 1)
#define BARE_REPLY "550 5.5.2 Error: bare <CR> or <LF> received\r\n"

/* txn_reject - end of content, the message is refused: reply, log, drop it */
static void
txn_reject(struct smtpd_sess *s, const char *reply, size_t len)
{
	struct smtpd *srv = s->srv;
	struct smtpd_txn *t = s->txn;
	char text[128];

	srv->m->rejected++;
	if (maillog_enabled(srv->ml)) {
		util_strlcpy(text, reply, sizeof(text));
		text[strcspn(text, "\r")] = '\0';
		maillog_reject(srv->ml, "END-OF-MESSAGE", "unknown", s->addr, text, t->sender,
		    NULL, smtpd_sess_proto(s), s->helo);
	}
	smtpd_sess_reply(s, reply, len);
	s->txn = smtpd_sess_txn_free(t);
}

/*
 * txn_finish - the end of the content (<CRLF>.<CRLF> or BDAT LAST): reject
 * it, or hand the file to the queue and wait for the sync before the 250.
 */
static void
txn_finish(struct smtpd_sess *s, int is_data)
{
	struct smtpd *srv = s->srv;
	struct smtpd_txn *t = s->txn;
	struct smtpd_commit *h;
	struct queue_file *qf;
	char prepend[PREPEND_MAX];
	char qid[QUEUE_ID_SIZE];
	size_t plen, slen;

	smtpd_sess_enter(s, SMTPD_S_CMD);
	if ((!is_data && smtpd_data_bdat_end(&t->data)) || t->data.bare) {
		TXN_REJECT(s, BARE_REPLY);
		return;
	}
	if (t->reject & SMTPD_R_SIZE) {
		TXN_REJECT(s, "552 5.3.4 Message size exceeds fixed limit\r\n");
		return;
	}
	if ((t->reject & SMTPD_R_IO) || t->qf == NULL) {
		TXN_REJECT(s, "451 4.3.0 Error: queue file write error\r\n");
		return;
	}
	if (t->hdr.received > SMTPD_HOP_LIMIT) {
		TXN_REJECT(s, "554 5.4.0 Error: too many hops\r\n");
		return;
	}
	util_strlcpy(qid, queue_file_id(t->qf), sizeof(qid));
	plen = build_prepend(s, qid, prepend, sizeof(prepend));
	if (plen > 0 && t->dkim != NULL)     /* the signature goes on top: smtpd_dkim.c */
		plen = smtpd_dkim_prepend(s, qid, prepend, plen, sizeof(prepend));
	slen = strlen(t->sender);
	h = malloc(sizeof(*h) + slen + 1);
	if (plen == 0 || h == NULL) {
		free(h);
		TXN_REJECT(s, "451 4.3.0 Error: queue file write error\r\n");
		return;
	}
	h->srv = srv;
	h->sess = s;
	h->size = t->size + plen;
	h->nrcpt = t->nrcpt;
	memcpy(h->sender, t->sender, slen + 1);
	LIST_INSERT_HEAD(&srv->commits, h, entry);
	srv->ncommits++;
	s->commit = h;
	if (maillog_enabled(srv->ml)) {
		if (t->hdr.found & SMTPD_HDR_MESSAGE_ID) {
			maillog_message_id(srv->ml, qid, t->hdr.msgid);
		} else {
			char mid[QUEUE_ID_SIZE + 260];
			if (util_bsnprintf(mid, sizeof(mid), "<%s@%.255s>", qid, srv->cfg->hostname) >= 0)
				maillog_message_id(srv->ml, qid, mid);
		}
	}
	qf = t->qf;
	t->qf = NULL;
	if (smtpd_data_wire(&t->data))       /* delivery may send it from the file as it is */
		queue_file_add_flags(qf, QUEUE_F_WIRE);
	s->txn = smtpd_sess_txn_free(t);
	smtpd_sess_enter(s, SMTPD_S_COMMIT);
	queue_file_commit(qf, prepend, plen, commit_done, h);
}

/*
 * sess_data_feed - p[0..n) through the end-of-data machine into the queue
 * file; returns how much was eaten (less than n only at the end of data).
 */
static size_t
sess_data_feed(struct smtpd_sess *s, const char *p, size_t n)
{
	char *out = s->srv->scratch;
	size_t off = 0;

	while (off < n && s->state == SMTPD_S_DATA) {
		size_t len = n - off < SMTPD_SCRATCH ? n - off : SMTPD_SCRATCH;
		size_t used = 0, olen = 0;
		enum smtpd_data_result r;

		r = smtpd_data_feed(&s->txn->data, p + off, len, &used, out, &olen);
		txn_content(s, out, olen);
		off += used;
		if (r == SMTPD_DATA_END)
			txn_finish(s, 1);
	}
	return off;
}

/*
 * sess_data_direct - once the input buffer is empty, DATA content on a
 * plain socket is read straight into the server's 128 KiB read buffer:
 * libevent 2.1 reads at most 4096 bytes per read(2) (EVBUFFER_MAX_READ),
 * which made a 100 KB message cost 25 system calls and callbacks. At most
 * SMTPD_DIRECT_MAX bytes per callback, so one fast sender cannot hold the
 * loop; bytes after the end of data go back to the input buffer for the
 * command reader. EOF and errors are left for libevent's own read, which
 * sees them next (the socket stays readable).
 */
static void
sess_data_direct(struct smtpd_sess *s, struct evbuffer *in)
{
	int fd = bufferevent_getfd(s->bev);
	size_t total = 0;

	if (fd < 0 || !(s->flags & SMTPD_F_DIRECT_IO) ||
	    (s->flags & (SMTPD_F_TLS | SMTPD_F_HANDSHAKE | SMTPD_F_SMTPS)))
		return;
	while (s->state == SMTPD_S_DATA && total < SMTPD_DIRECT_MAX) {
		ssize_t n = recv(fd, s->srv->rbuf, SMTPD_RBUF, MSG_DONTWAIT);
		size_t used;

		if (n <= 0)
			return;
		total += (size_t)n;
		used = sess_data_feed(s, s->srv->rbuf, (size_t)n);
		if (used < (size_t)n && evbuffer_add(in, s->srv->rbuf + used, (size_t)n - used) < 0) {
			log_warnx("smtpd: out of memory keeping pipelined input");
			smtpd_sess_kill(s);
			return;
		}
	}
}

/* sess_data_input - DATA content through the end-of-data machine, one buffer chain at a time */
static void
sess_data_input(struct smtpd_sess *s, struct evbuffer *in)
{
	struct evbuffer_iovec v;

	while (s->state == SMTPD_S_DATA && evbuffer_peek(in, -1, NULL, &v, 1) > 0) {
		size_t used;

		if (v.iov_len == 0)
			break;
		used = sess_data_feed(s, v.iov_base, v.iov_len);
		evbuffer_drain(in, used);
	}
	if (s->state == SMTPD_S_DATA && evbuffer_get_length(in) == 0)
		sess_data_direct(s, in);
}

/* bdat_chunk_done - a whole chunk is in: its reply (RFC 3030 §2), or the end of the message */
static void
bdat_chunk_done(struct smtpd_sess *s)
{
	const char *reply = s->bdat_reply;
	struct smtpd_txn *t = s->txn;

	s->bdat_reply = NULL;
	if (reply != NULL) {                 /* the chunk of a refused BDAT was discarded */
		smtpd_sess_enter(s, SMTPD_S_CMD);
		smtpd_sess_reply(s, reply, strlen(reply));
		s->srv->m->rejected++;
		return;
	}
	if (s->bdat_last) {
		txn_finish(s, 0);
		return;
	}
	smtpd_sess_enter(s, SMTPD_S_CMD);
	if (t->data.bare) {                  /* no use reading the rest of the message */
		TXN_REJECT(s, BARE_REPLY);
		return;
	}
	if (t->reject & SMTPD_R_SIZE) {
		TXN_REJECT(s, "552 5.3.4 Message size exceeds fixed limit\r\n");
		return;
	}
	if (t->reject & SMTPD_R_IO) {
		TXN_REJECT(s, "451 4.3.0 Error: queue file write error\r\n");
		return;
	}
	s->counts[SMTPD_C_BDAT][0]++;
	smtpd_sess_replyf(s, "250 2.0.0 Ok: %llu octets\r\n", (unsigned long long)s->bdat_size);
}

/*
 * sess_bdat_input - the chunk's bytes, taken as they are (no dot-stuffing
 * in BDAT), but a bare CR or LF refuses the message as in DATA (SPEC §4):
 * a next hop that reads lines differently must never see one.
 */
static void
sess_bdat_input(struct smtpd_sess *s, struct evbuffer *in)
{
	struct evbuffer_iovec v;

	while (s->bdat_left > 0 && evbuffer_peek(in, -1, NULL, &v, 1) > 0 && v.iov_len > 0) {
		size_t n = v.iov_len;
		if ((uint64_t)n > s->bdat_left)
			n = (size_t)s->bdat_left;
		if (s->bdat_reply == NULL) {
			smtpd_data_bdat_scan(&s->txn->data, v.iov_base, n);
			txn_content(s, v.iov_base, n);
		}
		evbuffer_drain(in, n);
		s->bdat_left -= n;
	}
	if (s->bdat_left == 0)
		bdat_chunk_done(s);
}

/*
 * smtpd_sess_start_bdat - read a chunk of size octets next. reject
 * non-NULL: the chunk is read and dropped, then reject is the reply (the
 * bytes must never be taken as commands).
 */
void
smtpd_sess_start_bdat(struct smtpd_sess *s, uint64_t size, int last, const char *reject)
{
	s->bdat_left = size;
	s->bdat_size = size;
	s->bdat_last = last;
	s->bdat_reply = reject;
	smtpd_sess_enter(s, SMTPD_S_BDAT);
	if (size == 0)
		bdat_chunk_done(s);
}

/*
 * smtpd_sess_begin_content - DATA or the first BDAT: create the queue file
 * with the envelope; -1 if the queue cannot take it (the caller replies 451).
 */
int
smtpd_sess_begin_content(struct smtpd_sess *s)
{
	struct smtpd *srv = s->srv;
	struct smtpd_txn *t = s->txn;
	struct queue_envelope env;
	const char **rv;
	const char *p = t->rbuf;

	rv = calloc(t->nrcpt, sizeof(*rv));
	if (rv == NULL)
		return -1;
	for (unsigned i = 0; i < t->nrcpt; i++) {
		rv[i] = p;
		p += strlen(p) + 1;
	}
	memset(&env, 0, sizeof(env));
	env.sender = t->sender;
	env.rcpts = rv;
	env.nrcpt = t->nrcpt;
	env.client_addr = s->addr;
	env.client_name = "unknown";
	env.helo = s->helo;
	env.flags = t->qflags;
	t->qf = queue_file_create(srv->q, &env);
	free(rv);
	if (t->qf == NULL) {
		log_warn("smtpd: cannot create a queue file");
		return -1;
	}
	smtpd_auth_log_client(s, queue_file_id(t->qf));
	t->size = 0;
	t->reject = 0;
	smtpd_data_init(&t->data);
	smtpd_data_hdr_init(&t->hdr);
	smtpd_dkim_begin(s);
	return 0;
}

/*
 * sess_process - run everything buffered that the current state can take,
 * then send the replies; when the replies filled SMTPD_OUT_MAX and the
 * kernel took them all, go on with the rest of the input.
 */
static void
sess_process(struct smtpd_sess *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct evbuffer *out = bufferevent_get_output(s->bev);
	unsigned busy = s->flags & SMTPD_F_BUSY;
	size_t len;

	s->flags |= SMTPD_F_BUSY;
again:
	s->flags &= ~SMTPD_F_OUT_FULL;
	while ((len = evbuffer_get_length(in)) > 0) {
		if (evbuffer_get_length(out) >= SMTPD_OUT_MAX && s->state < SMTPD_S_CLOSING) {
			s->flags |= SMTPD_F_OUT_FULL;
			break;
		}
		switch (s->state) {
		case SMTPD_S_PROXY:          /* read by proxy_readcb(), not from here */
			goto done;
		case SMTPD_S_CMD:
			if (s->flags & SMTPD_F_STARTTLS)
				goto done;           /* RFC 3207 §4.2: nothing more before TLS */
			if (!sess_cmd_input(s, in, len))
				goto done;
			break;
		case SMTPD_S_DATA:
			sess_data_input(s, in);
			break;
		case SMTPD_S_BDAT:
			sess_bdat_input(s, in);
			break;
		case SMTPD_S_COMMIT:
		case SMTPD_S_AUTH:
		case SMTPD_S_CLOSING:        /* sess_output_done() decides about the rest */
		case SMTPD_S_DEAD:
			goto done;
		case SMTPD_S_LINGER:
			evbuffer_drain(in, len);
			goto done;
		}
	}
done:
	if (s->state == SMTPD_S_DEAD || busy) {
		s->flags = (s->flags & ~SMTPD_F_BUSY) | busy;
		return;
	}
	if (s->state == SMTPD_S_CLOSING) {
		s->flags &= ~SMTPD_F_BUSY;
		sess_close_finish(s);
		return;
	}
	smtpd_sess_flush(s);
	if ((s->flags & SMTPD_F_STARTTLS) && !(s->flags & SMTPD_F_WRITING)) {
		/* the 220 is out: drop what was pipelined behind STARTTLS, start TLS */
		s->flags &= ~SMTPD_F_BUSY;
		if (smtpd_tls_start(s) < 0)
			smtpd_sess_kill(s);
		return;
	}
	if ((s->flags & SMTPD_F_OUT_FULL) && !(s->flags & SMTPD_F_WRITING) &&
	    s->state < SMTPD_S_CLOSING)
		goto again;                  /* all sent: the rest of the input */
	s->flags &= ~SMTPD_F_BUSY;
	if ((s->flags & SMTPD_F_EOF) && s->state < SMTPD_S_COMMIT &&
	    s->state != SMTPD_S_DEAD && !(s->flags & SMTPD_F_OUT_FULL)) {
		/* the client shut its side and every command it sent is answered */
		if (s->flags & SMTPD_F_LOGGED)
			maillog_lost(s->srv->ml, smtpd_cmd_label(s), s->addr);
		smtpd_sess_close(s);
		return;
	}
	if (s->state != SMTPD_S_DEAD)
		sess_input_update(s);
}

/* smtpd_sess_resume - a wait (password check) is over: run what was buffered meanwhile */
void
smtpd_sess_resume(struct smtpd_sess *s)
{
	sess_process(s);
}

/* sess_readcb - input arrived */
static void
sess_readcb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	sess_process(arg);
}

/* sess_writecb - libevent sent the rest of the output */
static void
sess_writecb(struct bufferevent *bev, void *arg)
{
	struct smtpd_sess *s = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return;
	s->flags &= ~SMTPD_F_WRITING;
	bufferevent_disable(bev, EV_WRITE);
	if (s->state == SMTPD_S_CLOSING) {
		sess_output_done(s);
		return;
	}
	if (s->flags & SMTPD_F_STARTTLS) {   /* the 220 to STARTTLS is out at last */
		if (smtpd_tls_start(s) < 0)
			smtpd_sess_kill(s);
		return;
	}
	if (s->flags & SMTPD_F_OUT_FULL) {
		s->flags &= ~SMTPD_F_OUT_FULL;
		sess_process(s);
	}
}

/* sess_eventcb - EOF, error or timeout from libevent */
static void
sess_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct smtpd_sess *s = arg;
	struct smtpd *srv = s->srv;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {    /* the TLS handshake is done */
		smtpd_tls_done(s);
		return;
	}
	if ((s->flags & SMTPD_F_HANDSHAKE) && s->state < SMTPD_S_CLOSING) {
		smtpd_tls_failed(s, what);
		return;
	}
	if (s->state == SMTPD_S_LINGER || s->state == SMTPD_S_CLOSING ||
	    s->state == SMTPD_S_DEAD) {
		smtpd_sess_kill(s);
		return;
	}
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING)) {
		maillog_timeout(srv->ml, smtpd_cmd_label(s), s->addr);
		if (s->state == SMTPD_S_PROXY) {
			smtpd_sess_kill(s);
			return;
		}
		smtpd_sess_replyf(s, "421 4.4.2 %s Error: timeout exceeded\r\n", srv->cfg->hostname);
		smtpd_sess_close(s);
		return;
	}
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
		/*
		 * A half-close: the client still reads. Answer what it sent
		 * (a commit may be waiting, QUIT may be buffered behind it),
		 * then close; libevent has stopped reading.
		 */
		s->flags |= SMTPD_F_EOF;
		if (s->state != SMTPD_S_COMMIT)
			sess_process(s);
		return;
	}
	if (s->state != SMTPD_S_PROXY && !(s->flags & SMTPD_F_QUIT))
		maillog_lost(srv->ml, smtpd_cmd_label(s), s->addr);
	smtpd_sess_kill(s);
}
