/*
 * smtpd_tls.c - TLS in the SMTP server: STARTTLS (RFC 3207) and SMTPS
 *               (RFC 8314 implicit TLS), what a TLS session logs and records
 *
 * Owns:     nothing beyond the session: the OpenSSL bufferevent (and its SSL)
 *           made here replaces the session's plain one and is freed with it.
 * Lifetime: smtpd_tls_start() to the session's end; the SSL holds a
 *           reference to the server context it came from, so a context
 *           replaced on SIGHUP stays valid for the sessions that use it.
 * Errors:   a failed handshake ends the session with Postfix's log lines
 *           ("SSL_accept error from ..."); allocation failure ends it too.
 * Context:  event-loop thread.
 *
 * STARTTLS and pipelining (RFC 3207 §4.2, the CVE-2011-0411 class): the
 * command handler queues the 220 and marks the session; the input loop
 * runs no further command; once the 220 has left, smtpd_tls_start() drops
 * the plain bufferevent, and with it every byte the client sent behind
 * STARTTLS, and puts an OpenSSL bufferevent on the same socket. Whatever
 * the client sends next is TLS, and only the handshake reads it. HELO and
 * the transaction were forgotten at the 220: the client must EHLO again.
 */
#include "smtpd/smtpd_int.h"
#include "lib/log.h"
#include "lib/util.h"
#include "mail/maillog.h"
#include "metrics/metrics.h"
#include "tls/tls.h"

#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

/*
 * smtpd_tls_start - s->bev becomes a server-side OpenSSL bufferevent on the
 * same socket, accepting the handshake. The plain bufferevent goes with
 * whatever input it had buffered (pipelined after STARTTLS: never run).
 * 0, or -1 (the caller kills the session).
 */
int
smtpd_tls_start(struct smtpd_sess *s)
{
	struct smtpd *srv = s->srv;
	struct bufferevent *old = s->bev, *nb;
	evutil_socket_t fd = bufferevent_getfd(old);
	SSL *ssl;

	s->flags &= ~(SMTPD_F_STARTTLS | SMTPD_F_DIRECT_IO | SMTPD_F_WRITING | SMTPD_F_OUT_FULL);
	if (srv->tls == NULL || fd < 0)
		return -1;
	ERR_clear_error();
	if ((ssl = SSL_new(srv->tls)) == NULL) {
		log_warnx("smtpd %llu: SSL_new failed", (unsigned long long)s->id);
		ERR_clear_error();
		return -1;
	}
	/* XXX on failure libevent may or may not have freed ssl: a rare leak beats a double free */
	nb = bufferevent_openssl_socket_new(srv->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE);
	if (nb == NULL)
		return -1;
	/* a client that closes without close_notify has just closed: EOF, not an error */
	bufferevent_openssl_set_allow_dirty_shutdown(nb, 1);
	/* the plain bufferevent lets go of the socket (no close) and drops its input */
	bufferevent_disable(old, EV_READ | EV_WRITE);
	bufferevent_setfd(old, -1);
	bufferevent_free(old);
	smtpd_sess_set_bev(s, nb);
	s->flags |= SMTPD_F_HANDSHAKE;
	s->txn = smtpd_sess_txn_free(s->txn);
	smtpd_line_init(&s->line);
	log_trace(TRACE_SMTPD, "smtpd %llu: TLS handshake started", (unsigned long long)s->id);
	return 0;
}

/*
 * smtpd_tls_done - the handshake finished: count it, log Postfix's line,
 * and carry on (SMTPS: the greeting queued at accept goes out now).
 */
void
smtpd_tls_done(struct smtpd_sess *s)
{
	struct smtpd *srv = s->srv;
	SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
	struct tls_info ti;
	char text[160];

	s->flags &= ~SMTPD_F_HANDSHAKE;
	s->flags |= SMTPD_F_TLS;
	srv->m->tls_sessions++;
	if (ssl == NULL)
		return;
	tls_info_get(ssl, &ti);
	if (tls_info_text(&ti, text, sizeof(text)) < 0)
		util_strlcpy(text, ti.protocol, sizeof(text));
	log_trace(TRACE_SMTPD, "smtpd %llu: TLS established: %s%s", (unsigned long long)s->id,
	    text, ti.reused ? " (resumed)" : "");
	maillog_tls_from(srv->ml, s->addr, text);
}

/*
 * smtpd_tls_failed - the handshake did not finish (error, EOF or timeout):
 * log it as Postfix does and end the session.
 */
void
smtpd_tls_failed(struct smtpd_sess *s, short what)
{
	struct smtpd *srv = s->srv;
	unsigned long e;
	char why[256] = "";

	if ((what & BEV_EVENT_TIMEOUT) != 0) {
		maillog_timeout(srv->ml, (s->flags & SMTPD_F_SMTPS) ? "CONNECT" : "STARTTLS",
		    s->addr);
		smtpd_sess_kill(s);
		return;
	}
	/* libevent queues OpenSSL's errors and SSL_get_error()'s code: the first real one */
	while ((e = bufferevent_get_openssl_error(s->bev)) != 0)
		if (why[0] == '\0' && ERR_GET_LIB(e) != 0)
			ERR_error_string_n(e, why, sizeof(why));
	ERR_clear_error();
	if (why[0] != '\0')
		maillog_tls_accept_error(srv->ml, s->addr, why);
	maillog_lost(srv->ml, (s->flags & SMTPD_F_SMTPS) ? "CONNECT" : "STARTTLS", s->addr);
	smtpd_sess_kill(s);
}

/*
 * smtpd_tls_received - the Received: header's TLS comment line, Postfix's
 * "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n";
 * its length, 0 when not TLS or it does not fit.
 */
size_t
smtpd_tls_received(const struct smtpd_sess *s, char *buf, size_t size)
{
	SSL *ssl = (s->flags & SMTPD_F_TLS) ? bufferevent_openssl_get_ssl(s->bev) : NULL;
	struct tls_info ti;
	char text[160];
	int n;

	if (ssl == NULL)
		return 0;
	tls_info_get(ssl, &ti);
	if (tls_info_text(&ti, text, sizeof(text)) < 0)
		return 0;
	n = util_bsnprintf(buf, size, "\t(using %s)\r\n", text);
	return n < 0 ? 0 : (size_t)n;
}

/*
 * smtpd_tls_close - send TLS close_notify (RFC 8446 §6.1) before the
 * socket closes, once: only when every reply has left (the alert goes
 * straight to the socket and must not cut a record in two). Best effort.
 */
void
smtpd_tls_close(struct smtpd_sess *s)
{
	SSL *ssl = bufferevent_openssl_get_ssl(s->bev);

	if (ssl == NULL || (SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN) ||
	    evbuffer_get_length(bufferevent_get_output(s->bev)) != 0)
		return;
	(void)SSL_shutdown(ssl);
	ERR_clear_error();
}
