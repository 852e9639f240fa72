/*
 * sched_drain.c - drain (SPEC §11.4): deliver for up to drain_timeout, then
 * hand every message still queued to drain_relay
 *
 * Owns:     struct sched_drain (hung on s->drain) and its tick timer.
 * Lifetime: sched_drain() until its done callback has run (then freed by
 *           the next tick) or sched_free().
 * Errors:   sched_drain() returns -1 when out of memory or already draining;
 *           a message the relay does not take stays queued, never bounces.
 * Context:  event-loop thread.
 *
 * Two phases. Delivery: every deferred message is retried at once (as a
 * flush) and the scheduler goes on as usual; the phase ends when the queue
 * is empty (done), at drain_timeout, or earlier when nothing is in flight
 * and nothing is due before that deadline (waiting longer changes nothing).
 * Hand-over (only with drain_relay): from then on every recipient of every
 * message routes to drain_relay (SCHED_KIND_DRAIN: no smart-relay TLS
 * policy or credentials), all of them due now. A recipient is marked
 * delivered only on the relay's 250 and a message leaves the queue only
 * when every recipient is, so a crash or a kill during the hand-over
 * repeats a delivery at worst. A refusal (4xx or 5xx) keeps the recipient
 * pending with its backoff: it is never bounced from here, since the next
 * instance on this volume can still deliver it; a temporary refusal is
 * tried again every SCHED_DRAIN_RETRY seconds (the file keeps the usual
 * backoff). The phase ends when the queue is empty, when nothing is in
 * flight and nothing is due before its end, or after another drain_timeout.
 * Held messages are not handed over (the operator held them) and a cc_mta
 * copy still owed keeps its message: both are reported as left.
 */
#include "sched/sched_int.h"
#include "lib/log.h"
#include "lib/util.h"
#include "mail/config.h"
#include "queue/queue.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#define DRAIN_TICK_MS 100

struct sched_drain {
	struct sched *s;
	struct sched_nexthop nh;        /* drain_relay */
	char     key[SCHED_KEY_MAX];    /* its destination (kind 'd': apart from smart_relay's) */
	char     relay_text[300];       /* for the log */
	int      has_relay;
	int      handover;              /* phase 2 */
	int      finished;              /* done() was called */
	unsigned timeout;
	uint64_t start_mono, phase_end_mono;
	uint64_t at_handover;           /* messages queued when the hand-over began */
	struct event *tick;
	void   (*done)(void *arg, const struct sched_drain_result *r);
	void    *arg;
};

/* drain_count - messages in the queue and how many of them are held (through the backend) */
static void
count_cb(void *arg, struct queue_msg *m)
{
	struct sched_drain_result *r = arg;

	r->left++;
	if (m->held)
		r->held++;
}

static void
drain_count(struct sched *s, struct sched_drain_result *r)
{
	r->left = 0;
	r->held = 0;
	s->be->foreach(s->be_arg, count_cb, r);
	if (s->wq != NULL) {
		struct queue_parked_info pk;

		queue_parked(s->wq, &pk);
		r->left += pk.messages;
		r->held += pk.held;
	}
}

/*
 * drain_quiet - nothing in flight, no DSN being queued and nothing due
 * before the phase's end (the scheduler's clock is the wall clock, the
 * deadline monotonic)
 */
static int
drain_quiet(const struct sched_drain *dr)
{
	const struct sched *s = dr->s;
	const struct heap_node *top = heap_top(&s->heap);
	uint64_t mono = util_mono_us();
	uint64_t left = dr->phase_end_mono > mono ? dr->phase_end_mono - mono : 0;
	struct queue_parked_info pk;

	if (dr->handover && s->wq != NULL) {
		queue_parked(s->wq, &pk);
		if (pk.messages > pk.held)
			return 0;       /* parked messages still come back to be handed over */
	}

	return s->nactive == 0 && s->nbounces == 0 &&
	    (top == NULL || top->key > sched_now(s) + left);
}

/* drain_finish - report and hand control back (sched_ops_shutdown follows in the caller) */
static void
drain_finish(struct sched_drain *dr)
{
	struct sched *s = dr->s;
	struct sched_drain_result r;

	memset(&r, 0, sizeof(r));
	drain_count(s, &r);
	r.relay = dr->has_relay;
	r.handed_over = dr->handover && dr->at_handover > r.left ? dr->at_handover - r.left : 0;
	r.seconds = (double)(util_mono_us() - dr->start_mono) / 1e6;
	dr->finished = 1;
	evtimer_del(dr->tick);
	if (r.left == 0)
		log_info("drain: the queue is empty after %.1f s%s", r.seconds,
		    dr->handover ? "" : " (nothing needed handing over)");
	else
		log_warnx("drain: %llu message(s) stay in the queue after %.1f s (%llu held)%s%s",
		    (unsigned long long)r.left, r.seconds, (unsigned long long)r.held,
		    dr->has_relay ? "; drain_relay " : "; no drain_relay set",
		    dr->has_relay ? (dr->handover ? "did not take them" : "was not tried") : "");
	if (dr->handover)
		log_info("drain: %llu message(s) handed over to %s",
		    (unsigned long long)r.handed_over, dr->relay_text);
	if (dr->done != NULL)
		dr->done(dr->arg, &r);
}

/* drain_handover - phase 2: everything to drain_relay, due now */
static void
drain_handover(struct sched_drain *dr)
{
	struct sched_drain_result r;

	memset(&r, 0, sizeof(r));
	drain_count(dr->s, &r);
	dr->handover = 1;
	dr->at_handover = r.left;
	if (dr->s->wq != NULL)
		queue_flush_parked(dr->s->wq);      /* parked messages are handed over too */
	dr->phase_end_mono = util_mono_us() + (uint64_t)dr->timeout * 1000000u;
	log_info("drain: handing %llu message(s) over to %s", (unsigned long long)r.left,
	    dr->relay_text);
	sched_ops_flush(dr->s);
}

static void
drain_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct sched_drain *dr = arg;
	struct sched *s = dr->s;
	uint64_t now = util_mono_us();
	struct timeval tv = { 0, DRAIN_TICK_MS * 1000 };

	(void)fd;
	(void)what;
	if (dr->finished || s->stopping)
		return;     /* stopped meanwhile (a second SIGTERM): sched_free() frees dr */
	if (s->nactive == 0 && s->nbounces == 0 && (s->q == NULL || queue_count(s->q) == 0) &&
	    heap_top(&s->heap) == NULL) {
		drain_finish(dr);
		return;
	}
	if (!dr->handover) {
		if (now >= dr->phase_end_mono || drain_quiet(dr)) {
			if (!dr->has_relay) {
				drain_finish(dr);
				return;
			}
			drain_handover(dr);
		}
	} else if (now >= dr->phase_end_mono || drain_quiet(dr)) {
		drain_finish(dr);
		return;
	}
	evtimer_add(dr->tick, &tv);
}

/*
 * sched_drain - see sched.h. relay NULL or unset: only the delivery phase.
 */
int
sched_drain(struct sched *s, const struct relay_target *relay, unsigned timeout_s,
    void (*done)(void *arg, const struct sched_drain_result *r), void *arg)
{
	struct sched_drain *dr;
	struct timeval tv = { 0, DRAIN_TICK_MS * 1000 };

	if (s == NULL || s->stopping || s->drain != NULL)
		return -1;
	if ((dr = calloc(1, sizeof(*dr))) == NULL)
		return -1;
	dr->s = s;
	dr->timeout = timeout_s;
	dr->done = done;
	dr->arg = arg;
	if (relay != NULL && relay->set) {
		if (sched_policy_nexthop_relay(relay, SCHED_KIND_DRAIN, s->cfg->relay_smtp_port,
		    &dr->nh) < 0 || sched_policy_nexthop_key(&dr->nh, dr->key, sizeof(dr->key)) < 0) {
			log_warnx("drain: drain_relay %s cannot be used; delivering only",
			    relay->host);
		} else {
			dr->has_relay = 1;
			if (util_bsnprintf(dr->relay_text, sizeof(dr->relay_text), "%s:%d",
			    dr->nh.name, dr->nh.port) < 0)
				util_strlcpy(dr->relay_text, dr->nh.name, sizeof(dr->relay_text));
		}
	}
	if ((dr->tick = evtimer_new(s->base, drain_on_tick, dr)) == NULL) {
		free(dr);
		return -1;
	}
	dr->start_mono = util_mono_us();
	dr->phase_end_mono = dr->start_mono + (uint64_t)timeout_s * 1000000u;
	s->drain = dr;
	log_info("drain: delivering for up to %u s%s%s", timeout_s,
	    dr->has_relay ? ", then handing the rest over to " : "",
	    dr->has_relay ? dr->relay_text : "");
	sched_ops_flush(s);
	evtimer_add(dr->tick, &tv);
	return 0;
}

/* sched_drain_route - in the hand-over: the drain relay's next hop and key, else NULL */
const struct sched_nexthop *
sched_drain_route(const struct sched *s, const char **key)
{
	const struct sched_drain *dr = s->drain;

	if (dr == NULL || !dr->handover || dr->finished)
		return NULL;
	*key = dr->key;
	return &dr->nh;
}

/* sched_drain_handover - 1 while messages go to drain_relay */
int
sched_drain_handover(const struct sched *s)
{
	return s->drain != NULL && s->drain->handover && !s->drain->finished;
}

/* sched_drain_free - sched_free: the timer and the state */
void
sched_drain_free(struct sched *s)
{
	struct sched_drain *dr = s->drain;

	if (dr == NULL)
		return;
	if (dr->tick != NULL)
		event_free(dr->tick);
	free(dr);
	s->drain = NULL;
}
