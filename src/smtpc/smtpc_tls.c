/*
 * smtpc_tls.c - TLS in the SMTP client: STARTTLS (RFC 3207), SNI, and what
 *               a TLS session logs
 *
 * Owns:     nothing beyond the session: the OpenSSL bufferevent (and its SSL)
 *           made here replaces the session's plain one and is freed with it.
 * Lifetime: smtpc_tls_reply() (the 220 to STARTTLS) to the session's end.
 *           The context is borrowed from the caller (struct smtpc_params).
 * Errors:   a refused STARTTLS goes on in the clear (opportunistic) or fails
 *           with 4.7.4 (TLS required); a failed handshake fails with 4.7.5
 *           and sets SMTPC_TLS_FAILED, so that the scheduler may retry the
 *           host without TLS.
 * Context:  event-loop thread.
 *
 * STARTTLS and pipelining (RFC 3207 §4.2, the CVE-2021-38371 class): once
 * the 220 is in, the plain bufferevent goes with every byte the server sent
 * behind it, unread, and an OpenSSL bufferevent takes over the socket; the
 * EHLO answer given in the clear is forgotten and EHLO is sent again.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "lib/log.h"
#include "lib/util.h"
#include "mail/maillog.h"
#include "tls/tls.h"
#include "smtpc/smtpc.h"
#include "smtpc/smtpc_int.h"

/* smtpc_tls_sni - 1 when name may go out as SNI (RFC 6066 §3: no IP literals, no trailing dot) */
int
smtpc_tls_sni(const char *name)
{
	struct in6_addr a6;
	struct in_addr a4;
	size_t n = strlen(name);

	if (n == 0 || n > 253 || name[n - 1] == '.' || strchr(name, '.') == NULL)
		return 0;
	return inet_pton(AF_INET, name, &a4) != 1 && inet_pton(AF_INET6, name, &a6) != 1;
}

/*
 * smtpc_tls_start - the 220 to STARTTLS (or, for implicit TLS, the
 * connect): everything the server sent before is dropped unread (a reply
 * injected before the handshake must never count as a reply over TLS), and
 * an OpenSSL bufferevent takes over the socket, with SNI for a host name,
 * the name to verify when there is one, and a cached session to resume.
 */
void
smtpc_tls_start(struct smtpc *c)
{
	struct bufferevent *old = c->bev, *nb;
	evutil_socket_t fd = bufferevent_getfd(old);
	SSL *ssl;

	smtpc_enter(c, SMTPC_S_TLS);
	smtpc_reply_init(&c->rp);
	ERR_clear_error();
	if (fd < 0 || (ssl = SSL_new(c->tls_ctx)) == NULL) {
		ERR_clear_error();
		smtpc_fail(c, 0, "4.3.0", "cannot start TLS with %s: out of resources", c->peer);
		return;
	}
	if (c->sni != NULL && SSL_set_tlsext_host_name(ssl, c->sni) != 1)
		ERR_clear_error();
	if ((c->verify_name != NULL && tls_client_verify(ssl, c->verify_name) < 0) ||
	    (c->tls_cache_key != NULL && tls_client_session(ssl, c->tls_cache_key) < 0)) {
		SSL_free(ssl);
		smtpc_fail(c, 0, "4.3.0", "cannot start TLS with %s: out of resources", c->peer);
		return;
	}
	/* XXX on failure libevent may or may not have freed ssl: a rare leak beats a double free */
	nb = bufferevent_openssl_socket_new(c->base, fd, ssl, BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE);
	if (nb == NULL) {
		smtpc_fail(c, 0, "4.3.0", "cannot start TLS with %s: out of resources", c->peer);
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(nb, 1);
	bufferevent_disable(old, EV_READ | EV_WRITE);
	bufferevent_setfd(old, -1);         /* the plain one lets go of the socket ... */
	bufferevent_free(old);              /* ... and drops what it had read */
	smtpc_set_bev(c, nb);
	bufferevent_enable(nb, EV_READ | EV_WRITE);
	smtpc_timer(c, c->cmd_timeout);
}

/*
 * smtpc_tls_reply - the reply to STARTTLS: 220 starts the handshake; a
 * refusal fails the session when TLS is required (4.7.4), otherwise the
 * session goes on in the clear, as Postfix's "may" does.
 */
void
smtpc_tls_reply(struct smtpc *c, const struct smtpc_reply *r)
{
	if (r->code == 220) {
		smtpc_tls_start(c);
		return;
	}
	if (c->tls_required) {
		smtpc_fail(c, 0, "4.7.4", "TLS is required, but host %s refused to start "
		    "TLS: %s", c->peer, r->text);
		return;
	}
	maillog_tls_refused(c->ml, c->peer, r->text);
	c->tls_ctx = NULL;
	smtpc_ready(c);
}

/*
 * smtpc_tls_event - the handshake's outcome: EHLO again over TLS (RFC 3207
 * §4.2: forget the plain EHLO answer), or SMTPC_TLS_FAILED and failed().
 */
void
smtpc_tls_event(struct smtpc *c, short what)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	struct tls_info ti;
	char text[160], why[256] = "";
	unsigned long e;

	if ((what & BEV_EVENT_CONNECTED) && ssl != NULL) {
		c->tls = SMTPC_TLS_ON;
		tls_info_get(ssl, &ti);
		if (tls_info_text(&ti, text, sizeof(text)) < 0)
			util_strlcpy(text, ti.protocol, sizeof(text));
		/* Postfix's words: Verified = chain and name checked, Trusted = chain only */
		maillog_tls_to(c->ml, c->verify_name != NULL ? "Verified" :
		    ti.verified ? "Trusted" : "Untrusted", c->peer, text);
		log_trace(TRACE_SMTPC, "smtpc %s: TLS: %s%s", c->peer, text,
		    ti.reused ? " (resumed)" : "");
		if (c->smtps) {
			/* implicit TLS: now the greeting (the command timeout, as in plain) */
			smtpc_enter(c, SMTPC_S_GREETING);
			smtpc_timer(c, c->cmd_timeout);
			return;
		}
		smtpc_send_hello(c, SMTPC_S_EHLO);
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	/* libevent queues OpenSSL's errors and SSL_get_error()'s code: the first real one */
	while ((e = bufferevent_get_openssl_error(c->bev)) != 0)
		if (why[0] == '\0' && ERR_GET_LIB(e) != 0)
			ERR_error_string_n(e, why, sizeof(why));
	ERR_clear_error();
	c->tls = SMTPC_TLS_FAILED;
	if (c->verify_name != NULL && ssl != NULL && SSL_get_verify_result(ssl) != X509_V_OK) {
		long v = SSL_get_verify_result(ssl);

		smtpc_fail(c, 0, "4.7.5", "Server certificate not verified: %s: %s (name %s)",
		    c->peer, X509_verify_cert_error_string(v), c->verify_name);
		return;
	}
	smtpc_fail(c, 0, "4.7.5", "Cannot start TLS: handshake failure with %s%s%s", c->peer,
	    why[0] != '\0' ? ": " : "", why);
}

/*
 * smtpc_tls_close - end an established TLS session with a close_notify
 * (RFC 8446 §6.1) before the socket closes, so the server sees an orderly
 * end, not a truncation (Exim logs "TLS error ... non-properly terminated").
 * One non-blocking attempt, only when nothing is left to write; its outcome
 * does not matter.
 */
void
smtpc_tls_close(struct smtpc *c)
{
	SSL *ssl;

	if (c->tls != SMTPC_TLS_ON || c->bev == NULL ||
	    (ssl = bufferevent_openssl_get_ssl(c->bev)) == NULL)
		return;
	if ((SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN) ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)) != 0)
		return;
	(void)SSL_shutdown(ssl);
	ERR_clear_error();
}

/* smtpc_tls - see smtpc.h */
int
smtpc_tls(const struct smtpc *c)
{
	return c->tls;
}
