/*
 * sched_ops.c - the scheduler's operator actions (flush, retry, hold,
 * delete), reload (SIGHUP) and shutdown
 *
 * Owns:     nothing of its own; acts on struct sched (sched.c) and the
 *           messages it holds.
 * Lifetime: each call borrows s and m for its duration.
 * Errors:   hold/delete return 0 or -1 (a queue write failed); the rest log.
 * Context:  event-loop thread (called from the UI, the API, mtactl's socket
 *           and the signal handlers).
 *
 * A transaction already running for a message is never interrupted: a
 * delete marks the message and removes it when its last job is back.
 */
#include "sched/sched_int.h"
#include "dns/dns.h"
#include "lib/log.h"
#include "mail/config.h"
#include "mail/maillog.h"
#include "queue/queue.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

/* msg_retry_now - everything pending is due at once (flush, retry) */
static void
msg_retry_now(struct sched *s, struct queue_msg *m)
{
	struct sched_msg *sm = m->sched;

	if (sm == NULL) {
		sched_add(s, m);
		if ((sm = m->sched) == NULL)
			return;
	}
	sm->force = 1;
	sm->cc_next_us = 0;
	if (sm->njobs == 0)
		sched_msg_schedule(s, sm);
}

static void
flush_one(void *arg, struct queue_msg *m)
{
	msg_retry_now(arg, m);
}

/* sched_ops_flush - every deferred recipient is due now (kept in memory: no disk writes) */
void
sched_ops_flush(struct sched *s)
{
	if (s == NULL || s->stopping)
		return;
	s->be->foreach(s->be_arg, flush_one, s);
	if (s->wq != NULL)
		queue_flush_parked(s->wq);      /* parked messages come back as forced */
	sched_rearm(s);
}

/* sched_ops_retry - one message now */
void
sched_ops_retry(struct sched *s, struct queue_msg *m)
{
	if (s == NULL || m == NULL || s->stopping)
		return;
	msg_retry_now(s, m);
}

/* sched_ops_hold - hold or release; a transaction already running finishes */
int
sched_ops_hold(struct sched *s, struct queue_msg *m, int held)
{
	struct sched_msg *sm = m->sched;

	if (s->be->set_held(s->be_arg, m, held) < 0)
		return -1;
	if (sm == NULL)
		sched_add(s, m);
	else if (sm->njobs == 0)
		sched_msg_schedule(s, sm);
	return 0;
}

/* sched_ops_delete - the operator removes a message; after a running transaction when there is one */
int
sched_ops_delete(struct sched *s, struct queue_msg *m)
{
	struct sched_msg *sm = m->sched;

	if (sm == NULL) {
		maillog_removed(s->ml, m->id);
		return s->be->remove(s->be_arg, m, 1);
	}
	sm->deleted = 1;
	heap_remove(&s->heap, &sm->hn);
	sm->njobs++;
	s->be->unqueue_msg(s, sm);
	if (--sm->njobs == 0)
		sched_msg_finish(s, sm);
	return 0;
}

/* dns_changed - whether dns_servers differ between two configurations */
static int
dns_changed(const struct config *a, const struct config *b)
{
	if (a->n_dns_servers != b->n_dns_servers)
		return 1;
	for (size_t i = 0; i < a->n_dns_servers; i++)
		if (strcmp(a->dns_servers[i].text, b->dns_servers[i].text) != 0)
			return 1;
	return 0;
}

/*
 * sched_ops_set_config - SIGHUP: limits, timers, relays and cc_mta apply to
 * what is dispatched from now on; new dns_servers get a new resolver.
 */
void
sched_ops_set_config(struct sched *s, const struct config *cfg)
{
	char err[640];
	struct dns *nd;

	if (s == NULL || cfg == NULL)
		return;
	if (dns_changed(s->cfg, cfg)) {
		if ((nd = dns_new(s->base, cfg, err, sizeof(err))) == NULL)
			log_warnx("dns_servers: %s; keeping the old resolvers", err);
		else if (sched_dnsc_set_dns(s->dnsc, nd) < 0) {
			log_warnx("dns_servers: out of memory; keeping the old resolvers");
			dns_free(nd);
		} else {
			dns_free(s->dns);
			s->dns = nd;
		}
	}
	if (sched_relay_load(s, cfg, err, sizeof(err)) < 0)
		log_warnx("%s; keeping the previous sender_relay_map and relay TLS settings", err);
	s->cfg = cfg;
	if (sched_dest_limits_load(s, cfg, err, sizeof(err)) < 0)
		log_warnx("%s; keeping the previous destination limits", err);
	sched_rearm(s);
}

/* sched_ops_check_done - shutdown: done() once no connection and no DSN commit is left */
void
sched_ops_check_done(struct sched *s)
{
	if (!s->stopping || s->done_called || s->nconns > 0 || s->nbounces > 0)
		return;
	s->done_called = 1;
	if (s->grace != NULL)
		evtimer_del(s->grace);
	log_trace(TRACE_SCHED, "sched: stopped");
	if (s->done != NULL)
		s->done(s->done_arg);
}

static void
sched_on_grace(evutil_socket_t fd, short what, void *arg)
{
	struct sched *s = arg;

	(void)fd;
	(void)what;
	log_info("sched: abandoning %u connection(s) still delivering", s->nconns);
	s->be->abandon_all(s);
	sched_ops_check_done(s);
}

/*
 * sched_ops_shutdown - no new deliveries; waiting jobs are abandoned (their
 * recipients stay pending on disk), idle connections QUIT, running
 * transactions get SCHED_STOP_GRACE seconds to finish before they are
 * dropped too (a repeat after the restart at worst). done() when idle.
 */
void
sched_ops_shutdown(struct sched *s, void (*done)(void *arg), void *arg)
{
	struct timeval tv = { SCHED_STOP_GRACE, 0 };

	s->stopping = 1;
	s->done = done;
	s->done_arg = arg;
	evtimer_del(s->timer);
	s->timer_at = 0;
	event_del(s->kick);
	s->be->stop_all(s);
	if (s->nconns > 0 && (s->grace = evtimer_new(s->base, sched_on_grace, s)) != NULL)
		evtimer_add(s->grace, &tv);
	else if (s->nconns > 0)
		s->be->abandon_all(s);
	sched_ops_check_done(s);
}
