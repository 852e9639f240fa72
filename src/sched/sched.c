/*
 * sched.c - the delivery scheduler: which message goes when, per-recipient
 * results, retries with backoff, expiry and cc_mta copies
 *
 * Owns:     struct sched, a struct sched_msg per queued message (hung on
 *           queue_msg.sched), the wake-up heap with its single timer, the
 *           DNS resolver and cache. The DSN flow is in sched_bounce.c,
 *           operator actions, reload and shutdown in sched_ops.c.
 * Lifetime: sched_new() to sched_free(). A sched_msg from sched_add() until
 *           the message leaves the queue (or sched_free()).
 * Errors:   sched_new() fails with a reason; everything later is logged and
 *           becomes a retry, never fatal.
 * Context:  event-loop thread.
 *
 * Every message waiting for a time sits in one min-heap keyed by its
 * earliest due recipient (or cc copy), with one timer for the top, so
 * 100,000 deferred messages cost one event. Due messages are dispatched in
 * batches from an activated event: their due recipients are grouped by
 * destination, one job (= one SMTP transaction) per destination, and the
 * jobs wait at their destinations (sched_dest.c) for a connection. When the
 * last job of a message has come back, the message is finished: a DSN for
 * what failed for good, then removal or the next wake-up.
 *
 * Retry: after the n-th temporary failure a recipient waits
 * min(retry_max_backoff, retry_min_backoff * 2^(n-1)) (sched_policy.c);
 * past queue_lifetime it bounces. Postfix's delays=a/b/c/d: a = arrival to
 * this attempt's dispatch, b = waiting for a connection, c = connection
 * set-up incl. DNS (first transaction of a connection only), d = transfer.
 */
#include "sched/sched_int.h"
#include "lib/map.h"
#include "dns/dns.h"
#include "lib/log.h"
#include "lib/util.h"
#include "mail/config.h"
#include "mail/maillog.h"
#include "metrics/metrics.h"
#include "queue/queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#define US_PER_S 1000000ull

static struct sched_msg *
msg_of(struct heap_node *hn)
{
	return (struct sched_msg *)(void *)((char *)hn - offsetof(struct sched_msg, hn));
}

/* sched_kick - dispatch on the next loop pass */
static void
sched_kick(struct sched *s)
{
	if (!s->stopping)
		event_active(s->kick, EV_TIMEOUT, 0);
}

static void
msg_activate(struct sched *s, struct sched_msg *sm)
{
	if (!sm->active) {
		sm->active = 1;
		s->nactive++;
	}
}

static void
msg_deactivate(struct sched *s, struct sched_msg *sm)
{
	if (sm->active) {
		sm->active = 0;
		s->nactive--;
	}
}

/* msg_cc_wanted - cc_mta applies: set, no smart relay, and not for our own DSNs */
static int
msg_cc_wanted(const struct sched *s, const struct queue_msg *m)
{
	return s->cfg->cc_mta.set && !s->cfg->smart_relay.set && !(m->flags & QUEUE_F_BOUNCE);
}

/*
 * msg_is_new - the message came after we started, or nothing was ever
 * tried for it. smtpd does not set QUEUE_F_CC, so the scheduler does, once;
 * a recovered message that was already worked on keeps what is on disk (a
 * cleared flag means the cc copy went).
 */
static int
msg_is_new(const struct sched *s, const struct queue_msg *m)
{
	if (m->arrival_us >= s->start_us)
		return 1;
	for (size_t i = 0; i < m->nrcpt; i++)
		if (m->rcpt[i].state != QUEUE_RCPT_PENDING || m->rcpt[i].attempts > 0)
			return 0;
	return 1;
}

/* msg_final - nothing left to do but remove it */
static int
msg_final(const struct sched_msg *sm)
{
	const struct queue_msg *m = sm->m;

	if (sm->cc_owed)
		return 0;
	if (sm->all_done)
		return 1;
	for (size_t i = 0; i < m->nrcpt; i++)
		if (m->rcpt[i].state == QUEUE_RCPT_PENDING)
			return 0;
	return 1;
}

/* msg_wake - when the message next has something due (UINT64_MAX: nothing) */
static uint64_t
msg_wake(const struct sched_msg *sm)
{
	const struct queue_msg *m = sm->m;
	uint64_t w = UINT64_MAX;

	for (size_t i = 0; i < m->nrcpt; i++) {
		const struct queue_rcpt *r = &m->rcpt[i];
		if (r->state != QUEUE_RCPT_PENDING)
			continue;
		if (sm->force)
			return 0;
		if (r->next_try_us < w)
			w = r->next_try_us;
	}
	if (sm->cc_owed) {
		if (sm->force)
			return 0;
		if (sm->cc_next_us < w)
			w = sm->cc_next_us;
	}
	return w;
}

/* msg_wait - sm waits (held, or for a later attempt): the window may park it */
static void
msg_wait(struct sched *s, struct sched_msg *sm, int waiting)
{
	if (waiting && !sm->waiting)
		TAILQ_INSERT_TAIL(&s->waitq, sm, wentry);
	else if (!waiting && sm->waiting)
		TAILQ_REMOVE(&s->waitq, sm, wentry);
	sm->waiting = waiting;
}

/* msg_free - forget the scheduler's state of a message */
static void
msg_free(struct sched *s, struct sched_msg *sm)
{
	msg_wait(s, sm, 0);
	heap_remove(&s->heap, &sm->hn);
	msg_deactivate(s, sm);
	sm->m->sched = NULL;
	free(sm->fail);
	free(sm);
}

/* msg_remove - the message is done (or deleted): "removed", out of the queue */
static void
msg_remove(struct sched *s, struct sched_msg *sm)
{
	struct queue_msg *m = sm->m;
	char id[QUEUE_ID_SIZE];
	int deleted = sm->deleted;

	util_strlcpy(id, m->id, sizeof(id));
	msg_free(s, sm);
	maillog_removed(s->ml, id);
	/* delivered: the unlink can wait; deleted by the operator: gone now */
	if (s->be->remove(s->be_arg, m, deleted) < 0)
		log_warn("%s: cannot remove the queue file", id);
	sched_rearm(s);
}

/*
 * sched_msg_schedule - a message with no job out: remove it when it is done,
 * park it when held, else (re)insert it into the heap at its wake-up time.
 */
void
sched_msg_schedule(struct sched *s, struct sched_msg *sm)
{
	uint64_t w;

	if (sm->deleted || msg_final(sm)) {
		msg_remove(s, sm);
		return;
	}
	msg_deactivate(s, sm);
	if (sm->m->held) {
		heap_remove(&s->heap, &sm->hn);
		msg_wait(s, sm, 1);
		sched_rearm(s);
		return;
	}
	w = msg_wake(sm);
	msg_wait(s, sm, w > sched_now(s));
	if (sm->hn.idx != HEAP_NONE)
		heap_update(&s->heap, &sm->hn, w);
	else if (heap_push(&s->heap, &sm->hn, w) < 0)
		log_warnx("%s: out of memory: not scheduled until a flush or restart", sm->m->id);
	sched_rearm(s);
}

/* sched_rearm - the timer for the heap's top, or a kick when it is due */
void
sched_rearm(struct sched *s)
{
	struct heap_node *top;
	uint64_t now;

	if (s->stopping)
		return;
	if ((top = heap_top(&s->heap)) == NULL) {
		if (s->timer_at != 0) {
			evtimer_del(s->timer);
			s->timer_at = 0;
		}
		return;
	}
	now = sched_now(s);
	if (top->key <= now) {
		if (s->nactive < SCHED_ACTIVE_MAX)
			sched_kick(s);
		return;
	}
	if (s->timer_at != top->key) {
		uint64_t d = top->key - now;
		struct timeval tv;

		if (d > 86400ull * US_PER_S)
			d = 86400ull * US_PER_S;    /* re-check daily; keeps timeval in range */
		tv.tv_sec = (time_t)(d / US_PER_S);
		tv.tv_usec = (suseconds_t)(d % US_PER_S);
		evtimer_add(s->timer, &tv);
		s->timer_at = top->key;
	}
}

/* fail_add - recipient idx failed for good: a DSN is owed */
static int
fail_add(struct sched_msg *sm, size_t idx)
{
	if (sm->nfail == sm->failcap) {
		size_t ncap = sm->failcap ? sm->failcap * 2 : 4;
		size_t *nv = realloc(sm->fail, ncap * sizeof(*nv));

		if (nv == NULL)
			return -1;
		sm->fail = nv;
		sm->failcap = ncap;
	}
	sm->fail[sm->nfail++] = idx;
	return 0;
}

/* relay_host - "host[addr]" of "host[addr]:port" for "host X said:" */
static void
relay_host(const char *relay, char *buf, size_t size)
{
	const char *b = strrchr(relay, ']');
	size_t n = b != NULL ? (size_t)(b - relay) + 1 : strlen(relay);

	if (n >= size)
		n = size - 1;
	memcpy(buf, relay, n);
	buf[n] = '\0';
}

/* reply_dsn - the reply's enhanced code, or one made from its class */
static const char *
reply_dsn(const struct smtpc_reply *rp, enum sched_class cls)
{
	if (rp->dsn[0] != '\0')
		return rp->dsn;
	return cls == SCHED_OK ? "2.0.0" : cls == SCHED_PERM ? "5.0.0" : "4.0.0";
}

/*
 * defer_dsn - the enhanced code of a deferral: always class 4, as Postfix
 * makes a hard error soft when it decides to retry (a smart relay's name
 * not found is NXDOMAIN, 5.1.2, yet retried: logged and kept as 4.1.2).
 */
static const char *
defer_dsn(const char *dsn, char *buf, size_t size)
{
	if (dsn[0] == '4' || util_strlcpy(buf, dsn, size) >= size)
		return dsn[0] == '4' ? dsn : "4.0.0";
	buf[0] = '4';
	return buf;
}

/*
 * log_text - the reason as the mail log shows it: a peer's refusal as
 * Postfix words it ("host mx[1.2.3.4] said: 550 5.1.1 ... (in reply to
 * RCPT TO command)"), anything else (success, our own reasons) as is.
 */
static const char *
log_text(const struct smtpc_reply *rp, enum sched_class cls, const char *relay,
    const char *stage, char *buf, size_t size)
{
	char host[300];

	if (cls == SCHED_OK || rp->code == 0 || relay == NULL || stage == NULL ||
	    strstr(rp->text, " said: ") != NULL)
		return rp->text;
	relay_host(relay, host, sizeof(host));
	if (util_bsnprintf(buf, size, "host %s said: %s (in reply to %s command)", host,
	    rp->text, stage) < 0)
		return rp->text;
	return buf;
}

/* attempt_delays - delay and delays=a/b/c/d of an attempt finishing now */
static double
attempt_delays(const struct sched_msg *sm, const struct sched_attempt *a, uint64_t now,
    double delays[4])
{
	uint64_t arrival = sm->m->arrival_us;
	uint64_t disp = sm->dispatch_us > arrival ? sm->dispatch_us : arrival;
	uint64_t start = a->start_us != 0 ? a->start_us : now;
	double total = now > arrival ? (double)(now - arrival) / 1e6 : 0;
	double b;

	if (start < disp)
		start = disp;
	delays[0] = (double)(disp - arrival) / 1e6;
	delays[2] = a->setup_s;
	delays[3] = a->xfer_s;
	b = (double)(start - disp) / 1e6 - a->setup_s;
	delays[1] = b > 0 ? b : 0;
	return total;
}

/* sched_rcpt_write - record a recipient's state; a failed write is logged, the worst case a repeat */
void
sched_rcpt_write(struct sched *s, struct queue_msg *m, size_t i, enum queue_rcpt_state st,
    uint64_t next, const char *dsn, const char *reply, const struct queue_attempt *hist)
{
	if (s->be->update_rcpt(s->be_arg, m, i, st, next, dsn, reply, hist) < 0)
		log_warn("%s: cannot record the state of <%s>", m->id, m->rcpt[i].addr);
}

/*
 * attempt_fill - the attempt for the recipient's delivery history (an 'a'
 * record written with its state, see src/queue/queue_hist.c): when it
 * ended, the host it reached, the reply (with the command it answered),
 * the enhanced status and the delays
 */
static void
attempt_fill(struct queue_attempt *h, size_t i, enum queue_attempt_result res,
    unsigned attempt, const struct sched_attempt *a, const double delays[4], uint64_t now,
    const char *dsn, const struct smtpc_reply *rp, const char *stage)
{
	h->rcpt = (uint32_t)i;
	h->result = res;
	h->attempt = attempt;
	h->time_us = now;
	for (int k = 0; k < 4; k++) {
		double ms = delays[k] * 1000.0;
		h->delays_ms[k] = ms <= 0 ? 0 : ms >= 4e9 ? 4000000000u : (uint32_t)ms;
	}
	util_strlcpy(h->host, a->relay != NULL ? a->relay : "", sizeof(h->host));
	util_strlcpy(h->dsn, dsn != NULL ? dsn : "", sizeof(h->dsn));
	if (stage == NULL || rp->code == 0 ||
	    util_bsnprintf(h->reply, sizeof(h->reply), "%s (in reply to %s command)", rp->text,
	    stage) < 0)
		util_strlcpy(h->reply, rp->text, sizeof(h->reply));
}

/*
 * rcpt_outcome - one recipient's result: the mail-log line, the counters,
 * and its new state, recorded in the file at once (also when it completes the
 * message: the file's unlink is left to another thread, see sched_job_result()).
 * Temporary failures wait their backoff or, past queue_lifetime, join the
 * DSN; permanent ones join the DSN (they stay pending on disk until it is
 * queued, so a crash before that repeats the attempt instead of losing it).
 */
static void
rcpt_outcome(struct sched *s, struct sched_msg *sm, size_t i, enum sched_class cls,
    const struct smtpc_reply *rp, const char *stage, const struct sched_attempt *a)
{
	struct queue_msg *m = sm->m;
	struct queue_rcpt *r = &m->rcpt[i];
	const struct config *cfg = s->cfg;
	uint64_t now = sched_now(s), next;
	double delays[4], total;
	const char *dsn = reply_dsn(rp, cls), *text;
	char buf[SMTPC_REPLY_MAX + 400], dbuf[sizeof(rp->dsn)];
	unsigned attempts = r->attempts + 1;
	struct queue_attempt h;

	total = attempt_delays(sm, a, now, delays);
	text = log_text(rp, cls, a->relay, stage, buf, sizeof(buf));
	if (cls == SCHED_TEMP || (cls != SCHED_OK && sched_drain_handover(s)))
		dsn = defer_dsn(dsn, dbuf, sizeof(dbuf));
	if (cls != SCHED_OK && sched_drain_handover(s)) {
		/* SPEC §11.4: what drain_relay refuses stays on the volume, never bounces */
		maillog_delivery(s->ml, m->id, r->addr, a->relay, total, delays, dsn, "deferred",
		    text);
		s->mt->deferred++;
		attempt_fill(&h, i, QUEUE_ATTEMPT_DEFERRED, attempts, a, delays, now, dsn, rp,
		    stage);
		next = now + (uint64_t)sched_policy_backoff(attempts, cfg->retry_min_backoff,
		    cfg->retry_max_backoff) * US_PER_S;
		sched_rcpt_write(s, m, i, QUEUE_RCPT_PENDING, next, dsn, rp->text, &h);
		/* the file keeps the backoff for the next start; a temporary refusal
		 * (a peer going away, a balancer's stale view) is tried again soon */
		if (cls == SCHED_TEMP)
			r->next_try_us = now + SCHED_DRAIN_RETRY * US_PER_S;
		return;
	}
	switch (cls) {
	case SCHED_OK:
		maillog_delivery(s->ml, m->id, r->addr, a->relay, total, delays, dsn, "sent", text);
		s->mt->delivered++;
		metrics_observe_latency(s->mt, total);
		/* the file of a message this completes goes: no history worth writing */
		if (!sm->all_done)
			attempt_fill(&h, i, QUEUE_ATTEMPT_DELIVERED, attempts, a, delays, now, dsn,
			    rp, stage);
		sched_rcpt_write(s, m, i, QUEUE_RCPT_DELIVERED, 0, dsn, rp->text,
		    sm->all_done ? NULL : &h);
		return;
	case SCHED_TEMP:
		maillog_delivery(s->ml, m->id, r->addr, a->relay, total, delays, dsn, "deferred",
		    text);
		s->mt->deferred++;
		if (!sched_policy_defer(now, m->arrival_us, cfg->queue_lifetime, attempts,
		    cfg->retry_min_backoff, cfg->retry_max_backoff, &next)) {
			attempt_fill(&h, i, QUEUE_ATTEMPT_DEFERRED, attempts, a, delays, now, dsn,
			    rp, stage);
			sched_rcpt_write(s, m, i, QUEUE_RCPT_PENDING, next, dsn, rp->text, &h);
			return;
		}
		sm->expired = 1;
		break;
	case SCHED_PERM:
		maillog_delivery(s->ml, m->id, r->addr, a->relay, total, delays, dsn, "bounced",
		    text);
		break;
	}
	/* the last attempt: bounced, for good or because the queue lifetime is over */
	attempt_fill(&h, i, QUEUE_ATTEMPT_BOUNCED, attempts, a, delays, now, dsn, rp, stage);
	/* failed for good: keep the reason for the DSN, retry later should it not be queued */
	next = now + (uint64_t)sched_policy_backoff(attempts, cfg->retry_min_backoff,
	    cfg->retry_max_backoff) * US_PER_S;
	sched_rcpt_write(s, m, i, QUEUE_RCPT_PENDING, next, dsn, rp->text, &h);
	if (fail_add(sm, i) < 0)
		log_warnx("%s: out of memory: <%s> will be tried again", m->id, r->addr);
}

/* cc_outcome - the cc_mta copy: done, or retried with the same backoff; never a DSN */
static void
cc_outcome(struct sched *s, struct sched_msg *sm, enum sched_class cls,
    const struct smtpc_reply *rp, const struct sched_attempt *a, size_t nrcpt)
{
	struct queue_msg *m = sm->m;
	const struct config *cfg = s->cfg;
	uint64_t now = sched_now(s), next = 0;
	double delays[4], total;
	const char *status = "sent", *dsn = reply_dsn(rp, cls);
	char dbuf[sizeof(rp->dsn)];
	int gone = 0;

	total = attempt_delays(sm, a, now, delays);
	if (cls == SCHED_OK)
		gone = 1;
	else {
		sm->cc_attempts++;
		if (sched_policy_defer(now, m->arrival_us, cfg->queue_lifetime, sm->cc_attempts,
		    cfg->retry_min_backoff, cfg->retry_max_backoff, &next)) {
			status = "expired";
			gone = 1;
		} else {
			status = "deferred";
			dsn = defer_dsn(dsn, dbuf, sizeof(dbuf));
			sm->cc_next_us = next;
		}
	}
	maillog_cc_copy(s->ml, m->id, nrcpt, a->relay, total, delays, dsn,
	    status, rp->text, cls != SCHED_OK && gone);
	if (gone) {
		sm->cc_owed = 0;
		if (s->be->update_flags(s->be_arg, m, m->flags & ~(unsigned)QUEUE_F_CC) < 0)
			log_warn("%s: cannot record the cc copy as done", m->id);
	}
}

/* job_free - the job is back: unlink, free, and finish the message after its last */
static void
job_free(struct sched *s, struct sched_job *job)
{
	struct sched_msg *sm = job->sm;

	TAILQ_REMOVE(&sm->jobs, job, mentry);
	free(job);
	if (--sm->njobs == 0)
		sched_msg_finish(s, sm);
}

/* job_last_and_clean - the job's recipients are all that is left and all succeeded */
static int
job_last_and_clean(const struct sched_msg *sm, const struct sched_job *job,
    const struct smtpc_result *r)
{
	size_t pending = 0;

	if (sm->njobs != 1 || sm->cc_owed || sm->nfail > 0 || sm->deleted)
		return 0;
	for (size_t i = 0; i < job->n; i++)
		if (sched_policy_classify(sched_policy_rcpt_reply(r, i)->code) != SCHED_OK)
			return 0;
	for (size_t i = 0; i < sm->m->nrcpt; i++)
		if (sm->m->rcpt[i].state == QUEUE_RCPT_PENDING)
			pending++;
	return pending == job->n;
}

/*
 * sched_job_result - a transaction finished: each recipient's reply (see
 * sched_policy_rcpt_reply()). The delivered state is recorded even when the
 * transaction completes the message: its file is unlinked a moment later by
 * the queue's spare thread (queue_retire()), and a crash before that unlink
 * must find every recipient done rather than deliver them all again.
 */
void
sched_job_result(struct sched *s, struct sched_job *job, const struct sched_attempt *a,
    const struct smtpc_result *r)
{
	struct sched_msg *sm = job->sm;

	if (job->cc) {
		const struct smtpc_reply *rp = sched_policy_classify(r->mail.code) != SCHED_OK ?
		    &r->mail : &r->data;
		if (rp == &r->data && r->data.code == 0 && r->nrcpt > 0)
			rp = &r->rcpt[0];   /* no recipient accepted: say why */
		cc_outcome(s, sm, sched_policy_classify(rp->code), rp, a, job->n);
	} else {
		if (job_last_and_clean(sm, job, r))
			sm->all_done = 1;
		for (size_t i = 0; i < job->n; i++) {
			const struct smtpc_reply *rp = sched_policy_rcpt_reply(r, i);
			rcpt_outcome(s, sm, job->idx[i], sched_policy_classify(rp->code), rp,
			    sched_policy_reply_stage(r, rp), a);
		}
	}
	job_free(s, job);
}

/* sched_job_fail - the same reason for every recipient of the job (connection, DNS) */
void
sched_job_fail(struct sched *s, struct sched_job *job, const struct sched_attempt *a,
    const struct smtpc_reply *why, enum sched_class cls)
{
	struct sched_msg *sm = job->sm;

	if (cls == SCHED_OK)
		cls = SCHED_TEMP;
	if (job->cc)
		cc_outcome(s, sm, cls, why, a, job->n);
	else
		for (size_t i = 0; i < job->n; i++)
			rcpt_outcome(s, sm, job->idx[i], cls, why, NULL, a);
	job_free(s, job);
}

/* sched_job_abandon - shutdown or delete: the job goes, its recipients untouched */
void
sched_job_abandon(struct sched *s, struct sched_job *job)
{
	job_free(s, job);
}

/* job_new - a job for n recipients of sm (idx copied); counted in sm->njobs */
static struct sched_job *
job_new(struct sched *s, struct sched_msg *sm, const size_t *idx, size_t n, int cc)
{
	struct sched_job *job;
	size_t sz = sizeof(*job);

	if (n > (SIZE_MAX - sz) / (sizeof(size_t) + sizeof(char *)))
		return NULL;
	sz += n * (sizeof(size_t) + sizeof(char *));
	if ((job = calloc(1, sz)) == NULL)
		return NULL;
	job->sm = sm;
	job->cc = cc;
	job->n = n;
	job->rcpts = (const char **)(void *)(job + 1);
	job->idx = (size_t *)(void *)(job->rcpts + n);
	for (size_t i = 0; i < n; i++) {
		job->idx[i] = idx[i];
		job->rcpts[i] = sm->m->rcpt[idx[i]].addr;
	}
	job->queued_us = sched_now(s);
	TAILQ_INSERT_TAIL(&sm->jobs, job, mentry);
	sm->njobs++;
	return job;
}

/* dispatch_fail_now - recipients that cannot even be queued at a destination */
static void
dispatch_fail_now(struct sched *s, struct sched_msg *sm, const size_t *idx, size_t n,
    enum sched_class cls, const char *dsn, const char *text)
{
	struct smtpc_reply why;
	struct sched_attempt a;

	memset(&why, 0, sizeof(why));
	memset(&a, 0, sizeof(a));
	why.code = cls == SCHED_PERM ? 550 : 0;
	util_strlcpy(why.dsn, dsn, sizeof(why.dsn));
	util_strlcpy(why.text, text, sizeof(why.text));
	for (size_t i = 0; i < n; i++)
		rcpt_outcome(s, sm, idx[i], cls, &why, NULL, &a);
}

/* sched_dispatch_group - one job for recipients idx[0..n) that share next hop nh */
void
sched_dispatch_group(struct sched *s, struct sched_msg *sm, const struct sched_nexthop *nh,
    const char *key, const size_t *idx, size_t n, int cc)
{
	struct sched_job *job;
	struct smtpc_reply why;

	if ((job = job_new(s, sm, idx, n, cc)) != NULL && sched_dead_check(s, key, &why)) {
		struct sched_attempt a;

		memset(&a, 0, sizeof(a));
		sched_job_fail(s, job, &a, &why, SCHED_TEMP);     /* never the last: guarded */
		return;
	}
	if (job != NULL && s->be->enqueue(s, nh, key, job) < 0) {
		TAILQ_REMOVE(&sm->jobs, job, mentry);
		free(job);
		sm->njobs--;        /* never the last: msg_dispatch() holds a guard */
		job = NULL;
	}
	if (job == NULL) {
		log_warnx("%s: out of memory: deferring delivery to %s", sm->m->id, nh->name);
		if (cc)
			sm->cc_next_us = sched_now(s) + (uint64_t)s->cfg->retry_min_backoff * US_PER_S;
		else
			dispatch_fail_now(s, sm, idx, n, SCHED_TEMP, "4.3.0",
			    "Insufficient system resources");
		return;
	}
}

/*
 * dispatch_rcpts - the due recipients idx[0..n) grouped by destination:
 * one transaction per destination. Unroutable recipients bounce.
 */
static void
dispatch_rcpts(struct sched *s, struct sched_msg *sm, size_t *idx, size_t n)
{
	const struct config *cfg = s->cfg;
	struct queue_msg *m = sm->m;
	struct sched_grp *grp = NULL;
	char *keys = NULL;
	size_t *run = NULL, k = 0;
	struct sched_nexthop nh;
	unsigned rule;
	const struct relay_target *relay = sched_relay_for(s, m->sender, &rule);
	const struct sched_nexthop *drain;
	const char *drain_key;

	/* draining (sched_drain.c): every recipient to drain_relay, one transaction */
	if ((drain = sched_drain_route(s, &drain_key)) != NULL) {
		sched_dispatch_group(s, sm, drain, drain_key, idx, n, 0);
		return;
	}
	if ((grp = calloc(n, sizeof(*grp))) == NULL || (keys = calloc(n, SCHED_KEY_MAX)) == NULL ||
	    (run = calloc(n, sizeof(*run))) == NULL) {
		log_warnx("%s: out of memory: deferring", m->id);
		dispatch_fail_now(s, sm, idx, n, SCHED_TEMP, "4.3.0", "Insufficient system resources");
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		char *key = keys + i * SCHED_KEY_MAX;
		int bad = sched_policy_nexthop_rcpt(m->rcpt[idx[i]].addr, relay, cfg->relay_smtp_port,
		    &nh) < 0;

		if (!bad && nh.kind == SCHED_KIND_RELAY)
			nh.rule = rule;
		if (bad || sched_policy_nexthop_key(&nh, key, SCHED_KEY_MAX) < 0) {
			dispatch_fail_now(s, sm, &idx[i], 1, SCHED_PERM, "5.1.3",
			    "Bad recipient address syntax: no routable domain");
			continue;
		}
		grp[k].key = key;
		grp[k].idx = idx[i];
		k++;
	}
	sched_policy_group(grp, k);
	for (size_t i = 0; i < k;) {
		size_t j = i, nrun = 0;

		while (j < k && strcmp(grp[j].key, grp[i].key) == 0)
			run[nrun++] = grp[j++].idx;
		if (sched_policy_nexthop_rcpt(m->rcpt[run[0]].addr, relay, cfg->relay_smtp_port,
		    &nh) == 0) {
			if (nh.kind == SCHED_KIND_RELAY)
				nh.rule = rule;
			sched_dispatch_group(s, sm, &nh, grp[i].key, run, nrun, 0);
		}
		i = j;
	}
done:
	free(run);
	free(keys);
	free(grp);
}

/* dispatch_cc - the cc_mta copy: every envelope recipient, to the cc host */
static void
dispatch_cc(struct sched *s, struct sched_msg *sm)
{
	const struct config *cfg = s->cfg;
	struct sched_nexthop nh;
	char key[SCHED_KEY_MAX];
	size_t *all;

	if (sched_policy_nexthop_relay(&cfg->cc_mta, SCHED_KIND_CC, cfg->relay_smtp_port, &nh) < 0 ||
	    sched_policy_nexthop_key(&nh, key, sizeof(key)) < 0) {
		char text[300];

		if (config_value_format_relay(&cfg->cc_mta, text, sizeof(text)) < 0)
			util_strlcpy(text, cfg->cc_mta.host, sizeof(text));
		log_warnx("%s: cc_mta %s cannot be used: dropping the cc copy", sm->m->id, text);
		sm->cc_owed = 0;
		(void)s->be->update_flags(s->be_arg, sm->m, sm->m->flags & ~(unsigned)QUEUE_F_CC);
		return;
	}
	if ((all = calloc(sm->m->nrcpt ? sm->m->nrcpt : 1, sizeof(*all))) == NULL) {
		sm->cc_next_us = sched_now(s) + (uint64_t)cfg->retry_min_backoff * US_PER_S;
		return;
	}
	for (size_t i = 0; i < sm->m->nrcpt; i++)
		all[i] = i;
	sched_dispatch_group(s, sm, &nh, key, all, sm->m->nrcpt, 1);
	free(all);
}

/*
 * msg_dispatch - start an attempt: due recipients to their destinations,
 * and the cc copy when due. A guard count keeps sm alive until the end.
 */
static void
msg_dispatch(struct sched *s, struct sched_msg *sm, uint64_t now)
{
	struct queue_msg *m = sm->m;
	size_t *due = NULL, n = 0;
	int force = sm->force;

	if (m->held)
		return;     /* parked until released */
	msg_wait(s, sm, 0);
	msg_activate(s, sm);
	sm->dispatch_us = now;
	sm->force = 0;
	sm->njobs++;
	if (m->nrcpt > 0 && (due = calloc(m->nrcpt, sizeof(*due))) == NULL) {
		log_warnx("%s: out of memory: retrying later", m->id);
		sm->cc_next_us = now + (uint64_t)s->cfg->retry_min_backoff * US_PER_S;
		for (size_t i = 0; i < m->nrcpt; i++)
			if (m->rcpt[i].state == QUEUE_RCPT_PENDING)
				m->rcpt[i].next_try_us = sm->cc_next_us;
	}
	for (size_t i = 0; due != NULL && i < m->nrcpt; i++) {
		const struct queue_rcpt *r = &m->rcpt[i];
		if (r->state == QUEUE_RCPT_PENDING && (force || r->next_try_us <= now))
			due[n++] = i;
	}
	log_trace(TRACE_SCHED, "%s: dispatch: %zu of %zu recipient(s) due%s", m->id, n,
	    m->nrcpt, sm->cc_owed ? ", cc copy owed" : "");
	if (n > 0)
		dispatch_rcpts(s, sm, due, n);
	free(due);
	/* the hand-over leaves a cc copy owed here: the relay makes its own (sched_drain.c) */
	if (sm->cc_owed && (force || sm->cc_next_us <= now) && !sched_drain_handover(s))
		dispatch_cc(s, sm);
	if (--sm->njobs == 0)
		sched_msg_finish(s, sm);
}

/*
 * sched_msg_finish - every job of the attempt is back: send the DSN for what
 * failed (then come back here), the delay warning when due, then remove
 * the message or schedule its next wake-up.
 */
void
sched_msg_finish(struct sched *s, struct sched_msg *sm)
{
	struct queue_msg *m = sm->m;

	if (s->freeing)
		return;
	if (!sm->deleted && sm->nfail > 0) {
		if (m->sender[0] == '\0' || (m->flags & QUEUE_F_BOUNCE))
			sched_bounce_none(s, sm);
		else if (sched_bounce_start(s, sm, sm->fail, sm->nfail, BOUNCE_FAILED) == 0)
			return;
		else {
			sm->nfail = 0;  /* they stay pending with their retry time */
			sm->expired = 0;
		}
	}
	if (!sm->deleted && s->cfg->delay_warning_time > 0 && !sm->warned && m->nrcpt > 0) {
		size_t *idx = calloc(m->nrcpt, sizeof(*idx)), n;

		if (idx != NULL && (n = sched_bounce_delay_due(s, sm, idx)) > 0 &&
		    sched_bounce_start(s, sm, idx, n, BOUNCE_DELAYED) == 0) {
			free(idx);
			return;
		}
		free(idx);
	}
	sched_msg_schedule(s, sm);
}

/* sched_run - the kick event and the timer: dispatch what is due, a batch per pass */
void
sched_run(struct sched *s)
{
	struct heap_node *top;
	uint64_t now = sched_now(s);
	unsigned n = 0;

	if (s->stopping)
		return;
	while ((top = heap_top(&s->heap)) != NULL && top->key <= now &&
	    n < SCHED_BATCH && s->nactive < SCHED_ACTIVE_MAX) {
		struct sched_msg *sm = msg_of(top);

		heap_remove(&s->heap, top);
		msg_dispatch(s, sm, now);
		n++;
	}
	sched_rearm(s);
}

static void
sched_on_kick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	sched_run(arg);
}

static void
sched_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct sched *s = arg;

	(void)fd;
	(void)what;
	s->timer_at = 0;
	sched_run(s);
}

struct sched *
sched_new(struct event_base *base, const struct config *cfg, struct queue *q,
    struct maillog *ml, struct metrics *m, char *err, size_t errlen)
{
	return sched_new_backend(base, cfg, q, ml, m, &sched_backend_real, q, err, errlen);
}

/* sched_new_backend - see sched_int.h */
struct sched *
sched_new_backend(struct event_base *base, const struct config *cfg, struct queue *q,
    struct maillog *ml, struct metrics *m, const struct sched_backend *be, void *be_arg,
    char *err, size_t errlen)
{
	struct sched *s;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		util_bsnprintf(err, errlen, "scheduler: out of memory");
		return NULL;
	}
	s->base = base;
	s->be = be;
	s->be_arg = be_arg;
	s->cfg = cfg;
	s->q = q;
	s->ml = ml;
	s->mt = m;
	s->start_us = sched_now(s);
	heap_init(&s->heap);
	LIST_INIT(&s->bounces);
	TAILQ_INIT(&s->waitq);
	if ((s->dns = dns_new(base, cfg, err, errlen)) == NULL)
		goto fail;
	if ((s->dnsc = sched_dnsc_new(s->dns)) == NULL || (s->dests = map_new()) == NULL ||
	    (s->timer = evtimer_new(base, sched_on_timer, s)) == NULL ||
	    (s->kick = event_new(base, -1, 0, sched_on_kick, s)) == NULL) {
		util_bsnprintf(err, errlen, "scheduler: out of memory");
		goto fail;
	}
	if (sched_relay_load(s, cfg, err, errlen) < 0 ||
	    sched_dest_limits_load(s, cfg, err, errlen) < 0)
		goto fail;
	if (cfg->cc_mta.set && !cfg->smart_relay.set) {
		char text[300];

		if (config_value_format_relay(&cfg->cc_mta, text, sizeof(text)) < 0)
			util_strlcpy(text, cfg->cc_mta.host, sizeof(text));
		log_info("cc_mta: a copy of every relayed message goes to %s", text);
	}
	return s;
fail:
	return sched_free(s);
}

/*
 * sched_add - take on a message (recovered, or just committed). Known
 * messages are looked at again (released from hold, changed by the UI).
 */
void
sched_add(struct sched *s, struct queue_msg *m)
{
	struct sched_msg *sm;

	if (s == NULL || m == NULL)
		return;
	if ((sm = m->sched) != NULL) {
		if (sm->njobs == 0)
			sched_msg_schedule(s, sm);
		return;
	}
	if ((sm = calloc(1, sizeof(*sm))) == NULL) {
		log_warn("%s: not scheduled until a flush or restart", m->id);
		return;
	}
	heap_node_init(&sm->hn);
	sm->m = m;
	TAILQ_INIT(&sm->jobs);
	m->sched = sm;
	if (m->forced) {
		sm->force = 1;  /* loaded by a flush */
		m->forced = 0;
	}
	sm->warned = (m->flags & QUEUE_F_WARNED) != 0;
	if (msg_cc_wanted(s, m) && !(m->flags & QUEUE_F_CC) && msg_is_new(s, m) &&
	    s->be->update_flags(s->be_arg, m, m->flags | QUEUE_F_CC) < 0)
		log_warn("%s: cannot record the cc copy; sending it anyway", m->id);
	if (msg_cc_wanted(s, m))
		sm->cc_owed = (m->flags & QUEUE_F_CC) != 0 || msg_is_new(s, m);
	else if (m->flags & QUEUE_F_CC) {
		log_warnx("%s: cc_mta is no longer configured: dropping its cc copy", m->id);
		(void)s->be->update_flags(s->be_arg, m, m->flags & ~(unsigned)QUEUE_F_CC);
	}
	log_trace(TRACE_SCHED, "%s: added: %zu recipient(s)%s", m->id, m->nrcpt,
	    sm->cc_owed ? " + cc copy" : "");
	sched_msg_schedule(s, sm);
}

/*
 * sched_evict - the window is full and new mail wants in: park the
 * message that has waited longest (held, or deferred until later). Its
 * state is in its file already; only memory is freed. 1 if one was parked.
 */
static int
sched_evict(void *arg)
{
	struct sched *s = arg;
	struct sched_msg *sm;

	while ((sm = TAILQ_FIRST(&s->waitq)) != NULL) {
		struct queue_msg *m = sm->m;

		msg_wait(s, sm, 0);
		if (sm->njobs > 0 || sm->active || sm->nfail > 0 || sm->deleted)
			continue;
		heap_remove(&s->heap, &sm->hn);
		m->sched = NULL;
		free(sm->fail);
		free(sm);
		if (queue_park(s->wq, m) < 0) {
			sched_add(s, m);        /* cannot stamp its file: it stays */
			return 0;
		}
		sched_rearm(s);
		return 1;
	}
	return 0;
}

/* sched_set_window - see sched.h */
void
sched_set_window(struct sched *s, struct queue *q)
{
	s->wq = q;
	queue_set_evictor(q, sched_evict, s);
}

static void
free_msg_cb(void *arg, struct queue_msg *m)
{
	struct sched_msg *sm = m->sched;

	(void)arg;
	if (sm == NULL)
		return;
	m->sched = NULL;
	free(sm->fail);
	free(sm);
}

/* sched_free - everything; DSN commits still in the queue find s gone and just free themselves */
struct sched *
sched_free(struct sched *s)
{
	if (s == NULL)
		return NULL;
	s->freeing = 1;
	s->stopping = 1;
	s->done_called = 1;
	if (s->dests != NULL) {
		s->be->abandon_all(s);
		s->be->free_all(s);
		s->dests = map_free(s->dests);
	}
	sched_dead_free_all(s);
	sched_bounce_detach_all(s);
	sched_drain_free(s);
	heap_clear(&s->heap);     /* touches the nodes: before they go */
	if (s->be_arg != NULL)
		s->be->foreach(s->be_arg, free_msg_cb, s);
	if (s->timer != NULL)
		event_free(s->timer);
	if (s->kick != NULL)
		event_free(s->kick);
	if (s->grace != NULL)
		event_free(s->grace);
	s->dnsc = sched_dnsc_free(s->dnsc);
	s->dns = dns_free(s->dns);
	sched_relay_free(s);
	sched_dest_limits_free(s);
	free(s);
	return NULL;
}
