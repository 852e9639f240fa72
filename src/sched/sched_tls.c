/*
 * sched_tls.c - the scheduler's outbound TLS policy: which connections get
 *               STARTTLS, smart_relay_tls = encrypt, and the per-host plain
 *               fallback after a failed handshake
 *
 * Owns:     a reference to the client TLS context (sched_tls_set) and the
 *           fallback table s->notls: "host[addr]:port" -> until when that
 *           host is sent to without TLS.
 * Lifetime: from sched_tls_set() to sched_tls_free() (called when the
 *           destinations are freed, in sched_free). A table entry lives
 *           SCHED_TLS_FALLBACK seconds; expired ones go when next looked up.
 * Errors:   none: without memory for an entry the host is simply retried
 *           with TLS next time.
 * Context:  event-loop thread.
 *
 * Opportunistic TLS (SPEC §5, Postfix's "may"): STARTTLS whenever offered.
 * When the handshake fails, nothing but EHLO and STARTTLS has been said:
 * the same address is tried again at once without TLS, and for
 * SCHED_TLS_FALLBACK seconds that host gets no STARTTLS (a broken TLS
 * stack would otherwise cost every message a failed handshake). Both are
 * logged. The smart relay with smart_relay_tls = encrypt never falls back:
 * no STARTTLS, a refusal or a failed handshake defers its mail.
 */
#include "sched/sched_int.h"
#include "lib/map.h"
#include "lib/log.h"
#include "lib/util.h"
#include "mail/config.h"
#include "mail/maillog.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#define SCHED_TLS_FALLBACK 3600         /* seconds a host is sent to in the clear */

struct sched_tls_off {
	uint64_t until_us;                  /* monotonic */
};

/* sched_tls_set - see sched.h */
void
sched_tls_set(struct sched *s, struct ssl_ctx_st *ctx)
{
	if (ctx != NULL && SSL_CTX_up_ref(ctx) != 1)
		return;
	SSL_CTX_free(s->tls);
	s->tls = ctx;
}

/* tls_required - the destination must use TLS (see sched_relay_tls_required) */
static int
tls_required(const struct sched *s, const struct sched_dest *d)
{
	return sched_relay_tls_required(s, d);
}

/* tls_off - relay is in the fallback table (and the entry is still valid) */
static int
tls_off(struct sched *s, const char *relay)
{
	struct sched_tls_off *e;

	if (s->notls == NULL || (e = map_get(s->notls, relay)) == NULL)
		return 0;
	if (util_mono_us() < e->until_us)
		return 1;
	free(map_del(s->notls, relay));
	return 0;
}

/* sched_tls_params - the TLS part of a connection's smtpc parameters */
void
sched_tls_params(struct sched *s, const struct sched_dest *d, const char *relay,
    struct smtpc_params *p)
{
	p->ml = s->ml;
	p->tls_required = tls_required(s, d);
	p->tls_ctx = p->tls_required || !tls_off(s, relay) ? s->tls : NULL;
}

/*
 * sched_tls_fallback - the STARTTLS handshake with relay failed (why):
 * 1 = try it again now without TLS (remembered for SCHED_TLS_FALLBACK
 * seconds), 0 = no fallback (TLS is required there).
 */
int
sched_tls_fallback(struct sched *s, const struct sched_dest *d, const char *relay,
    const char *why)
{
	struct sched_tls_off *e;

	if (tls_required(s, d)) {
		maillog_tls_required(s->ml, why, relay);
		return 0;
	}
	if (s->notls == NULL && (s->notls = map_new()) == NULL)
		return 0;
	if ((e = map_get(s->notls, relay)) == NULL) {
		if ((e = malloc(sizeof(*e))) == NULL)
			return 0;
		if (map_put(s->notls, relay, e) < 0) {
			free(e);
			return 0;
		}
	}
	e->until_us = util_mono_us() + (uint64_t)SCHED_TLS_FALLBACK * 1000000u;
	maillog_tls_fallback(s->ml, why, relay, SCHED_TLS_FALLBACK / 60);
	return 1;
}

/* sched_tls_free - the table and the context reference */
void
sched_tls_free(struct sched *s)
{
	s->notls = map_free_all(s->notls, free);
	SSL_CTX_free(s->tls);
	s->tls = NULL;
}
