/*
 * sched_dead.c - dead destinations: after a destination's connections have
 * all failed, the mail for it is deferred at once for a while, without a
 * connection attempt per message (as Postfix's queue manager does)
 *
 * Owns:     s->dead, a map of destination key -> struct sched_dead.
 * Lifetime: a record from sched_dead_mark() until it expires (removed at
 *           the next look-up), sched_dead_clear() (a connection worked) or
 *           sched_dead_free_all() (sched_free).
 * Errors:   out of memory when marking: the destination is just not marked
 *           (each message then tries as before).
 * Context:  event-loop thread.
 *
 * The transport (sched_dest.c) marks a destination when its last
 * connection gives up with a temporary failure: refused, unreachable,
 * timed out (also a host that drops packets), a 4xx greeting, a temporary
 * DNS failure. For min(retry_min_backoff, SCHED_DEAD_MAX_SECONDS) from
 * then on, sched.c defers every job for it with "delivery temporarily
 * suspended: <the reason>" and the usual backoff, so a backlog of a dead
 * destination costs no connection per message and holds no delivery slot.
 * When the time is up the next due message probes it again; a connection
 * that works clears the mark at once.
 */
#include "sched/sched_int.h"
#include "lib/map.h"
#include "lib/log.h"
#include "lib/util.h"
#include "mail/config.h"

#include <stdlib.h>
#include <string.h>

#define SCHED_DEAD_MAX_SECONDS 60

struct sched_dead {
	uint64_t until_us;
	uint64_t suspended;             /* jobs deferred without an attempt */
	struct smtpc_reply why;
};

/*
 * sched_dead_mark - the destination key is dead for a while; why is the
 * last failure (copied)
 */
void
sched_dead_mark(struct sched *s, const char *key, const struct smtpc_reply *why)
{
	struct sched_dead *dd;
	unsigned secs = s->cfg->retry_min_backoff;

	if (secs > SCHED_DEAD_MAX_SECONDS)
		secs = SCHED_DEAD_MAX_SECONDS;
	if (secs == 0)
		secs = 1;
	if (s->dead == NULL && (s->dead = map_new()) == NULL)
		return;
	if ((dd = map_get(s->dead, key)) == NULL) {
		if ((dd = calloc(1, sizeof(*dd))) == NULL)
			return;
		if (map_put(s->dead, key, dd) < 0) {
			free(dd);
			return;
		}
	}
	dd->until_us = sched_now(s) + (uint64_t)secs * 1000000u;
	dd->why = *why;
	if (dd->why.dsn[0] == '\0')
		util_strlcpy(dd->why.dsn, "4.4.1", sizeof(dd->why.dsn));
	log_trace(TRACE_SCHED, "sched: %s: dead for %u s: %s", key, secs, why->text);
}

/* sched_dead_clear - a connection to key worked: no longer dead */
void
sched_dead_clear(struct sched *s, const char *key)
{
	struct sched_dead *dd;

	if (s->dead != NULL && (dd = map_del(s->dead, key)) != NULL) {
		log_trace(TRACE_SCHED, "sched: %s: alive again (%llu job(s) were suspended)",
		    key, (unsigned long long)dd->suspended);
		free(dd);
	}
}

/*
 * sched_dead_check - whether key is dead now; if so, *why gets the reason
 * to defer with ("delivery temporarily suspended: ..."). An expired mark
 * is removed: the caller's job is the probe.
 */
int
sched_dead_check(struct sched *s, const char *key, struct smtpc_reply *why)
{
	struct sched_dead *dd;

	if (s->dead == NULL || (dd = map_get(s->dead, key)) == NULL)
		return 0;
	if (sched_now(s) >= dd->until_us) {
		free(map_del(s->dead, key));
		return 0;
	}
	dd->suspended++;
	memset(why, 0, sizeof(*why));
	why->code = 0;          /* no reply of its own: a temporary failure */
	util_strlcpy(why->dsn, dd->why.dsn, sizeof(why->dsn));
	if (util_bsnprintf(why->text, sizeof(why->text), "delivery temporarily suspended: %s",
	    dd->why.text) < 0)
		util_strlcpy(why->text, "delivery temporarily suspended", sizeof(why->text));
	return 1;
}

/* sched_dead_free_all - sched_free: every mark */
void
sched_dead_free_all(struct sched *s)
{
	s->dead = map_free_all(s->dead, free);
}
