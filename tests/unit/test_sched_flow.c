/*
 * test_sched_flow.c - the scheduler's flow in virtual time: dispatch,
 * retry with backoff, expiry, DSNs (and their failed commits), delay
 * warnings, the null sender, the cc_mta copy, operator delete, dead
 * destinations (src/sched/sched.c, sched_bounce.c, sched_ops.c,
 * sched_dead.c through sched_backend.h)
 *
 * Owns:     one fake backend per test: a virtual clock, messages in memory,
 *           a transport that records jobs, a DSN queue that records DSNs.
 * Lifetime: one test.
 * Errors:   each failed expectation prints "got X, want Y" through cmocka.
 * Context:  one thread; the event base only runs the scheduler's kick.
 *
 * The test plays the remote side: it takes the jobs the scheduler hands
 * to the transport and answers them with sched_job_result() or
 * sched_job_fail(), then moves the clock and calls sched_run().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "lib/util.h"
#include "mail/config.h"
#include "mail/maillog.h"
#include "metrics/metrics.h"
#include "queue/queue.h"
#include "queue/queue_tool.h"
#include "sched/bounce.h"
#include "sched/sched_backend.h"
#include "sched/sched_int.h"

#define S_US 1000000ull
#define T0 (1700000000ull * S_US)
#define FAKE_MAX 16

struct fake_dsn {
	char     to[256];
	int      delayed;           /* Action: delayed */
	void   (*cb)(void *, int, const char *);
	void    *cbarg;
	char     id[QUEUE_ID_SIZE];
	int      done;
};

struct fake {
	uint64_t now;
	struct queue_msg *msgs[FAKE_MAX];
	size_t   nmsgs;
	struct sched_job *jobs[FAKE_MAX];
	char     keys[FAKE_MAX][SCHED_KEY_MAX];
	size_t   njobs;
	unsigned enqueued;          /* jobs handed to the transport, ever */
	struct fake_dsn dsn[FAKE_MAX];
	size_t   ndsn;
	char     removed[FAKE_MAX][QUEUE_ID_SIZE];
	int      pending_at_remove[FAKE_MAX];  /* recipients still PENDING in the "file" */
	size_t   nremoved;
	unsigned nextid;
	struct queue_attempt hist[FAKE_MAX];  /* the history the "file" got */
	size_t   nhist;
	/* the real pieces around the scheduler */
	struct event_base *base;
	struct config *cfg;
	struct maillog *ml;
	struct metrics mt;
	struct sched *s;
};

/* --- the fake backend -------------------------------------------------- */

static uint64_t
fake_now(void *arg)
{
	return ((struct fake *)arg)->now;
}

static int
fake_update_rcpt(void *arg, struct queue_msg *m, size_t idx, enum queue_rcpt_state st,
    uint64_t next, const char *dsn, const char *reply, const struct queue_attempt *hist)
{
	struct queue_rcpt *r = &m->rcpt[idx];
	struct fake *f = arg;

	if (hist != NULL && f->nhist < FAKE_MAX)
		f->hist[f->nhist++] = *hist;
	r->state = st;
	r->attempts++;
	r->next_try_us = next;
	util_strlcpy(r->dsn, dsn != NULL ? dsn : "", sizeof(r->dsn));
	free(r->last_reply);
	r->last_reply = reply != NULL ? strdup(reply) : NULL;
	return 0;
}

static int
fake_update_flags(void *arg, struct queue_msg *m, unsigned flags)
{
	(void)arg;
	m->flags = flags;
	return 0;
}

static int
fake_set_held(void *arg, struct queue_msg *m, int held)
{
	(void)arg;
	m->held = held;
	return 0;
}

static void
msg_destroy(struct queue_msg *m)
{
	queue_rec_msg_free_fields(m);
	free(m);
}

static int
fake_remove(void *arg, struct queue_msg *m, int now)
{
	struct fake *f = arg;

	(void)now;
	for (size_t i = 0; i < f->nmsgs; i++)
		if (f->msgs[i] == m) {
			f->msgs[i] = f->msgs[--f->nmsgs];
			break;
		}
	f->pending_at_remove[f->nremoved] = 0;
	for (size_t i = 0; i < m->nrcpt; i++)
		if (m->rcpt[i].state == QUEUE_RCPT_PENDING)
			f->pending_at_remove[f->nremoved]++;
	util_strlcpy(f->removed[f->nremoved++], m->id, QUEUE_ID_SIZE);
	msg_destroy(m);
	return 0;
}

static struct queue_msg *
fake_lookup(void *arg, const char *id)
{
	struct fake *f = arg;

	for (size_t i = 0; i < f->nmsgs; i++)
		if (strcmp(f->msgs[i]->id, id) == 0)
			return f->msgs[i];
	return NULL;
}

static void
fake_foreach(void *arg, void (*cb)(void *, struct queue_msg *), void *cbarg)
{
	struct fake *f = arg;
	struct queue_msg *v[FAKE_MAX];
	size_t n = f->nmsgs;

	memcpy(v, f->msgs, n * sizeof(v[0]));
	for (size_t i = 0; i < n; i++)
		cb(cbarg, v[i]);
}

static char *
fake_headers(void *arg, const struct queue_msg *m, size_t max, size_t *len)
{
	static const char h[] = "Subject: test\r\n";

	(void)arg;
	(void)m;
	assert_true(max >= sizeof(h));
	*len = sizeof(h) - 1;
	return strdup(h);
}

static int
fake_dsn_queue(void *arg, const struct queue_envelope *env, const char *text, size_t len,
    void (*cb)(void *, int, const char *), void *cbarg, char *id, size_t idsize)
{
	struct fake *f = arg;
	struct fake_dsn *d = &f->dsn[f->ndsn++];

	assert_int_equal(env->nrcpt, 1);
	assert_string_equal(env->sender, "");
	assert_true(env->flags & QUEUE_F_BOUNCE);
	util_strlcpy(d->to, env->rcpts[0], sizeof(d->to));
	d->delayed = memmem(text, len, "Action: delayed", 15) != NULL;
	d->cb = cb;
	d->cbarg = cbarg;
	(void)snprintf(d->id, sizeof(d->id), "D%015u", f->nextid++);
	util_strlcpy(id, d->id, idsize);
	return 0;
}

static int
fake_enqueue(struct sched *s, const struct sched_nexthop *nh, const char *key,
    struct sched_job *job)
{
	struct fake *f = s->be_arg;

	(void)nh;
	assert_true(f->njobs < FAKE_MAX);
	f->jobs[f->njobs] = job;
	util_strlcpy(f->keys[f->njobs], key, SCHED_KEY_MAX);
	f->njobs++;
	f->enqueued++;
	return 0;
}

/* take - remove job i from the fake transport (it is being answered) */
static struct sched_job *
take(struct fake *f, size_t i)
{
	struct sched_job *job = f->jobs[i];

	f->jobs[i] = f->jobs[--f->njobs];
	memcpy(f->keys[i], f->keys[f->njobs], SCHED_KEY_MAX);
	return job;
}

static void
fake_unqueue_msg(struct sched *s, struct sched_msg *sm)
{
	struct fake *f = s->be_arg;

	for (size_t i = 0; i < f->njobs;)
		if (f->jobs[i]->sm == sm)
			sched_job_abandon(s, take(f, i));
		else
			i++;
}

static void
fake_abandon_all(struct sched *s)
{
	struct fake *f = s->be_arg;

	while (f->njobs > 0)
		sched_job_abandon(s, take(f, 0));
}

static void
fake_free_all(struct sched *s)
{
	(void)s;
}

static const struct sched_backend fake_backend = {
	.now_us = fake_now,
	.update_rcpt = fake_update_rcpt,
	.update_flags = fake_update_flags,
	.set_held = fake_set_held,
	.remove = fake_remove,
	.lookup = fake_lookup,
	.foreach = fake_foreach,
	.headers = fake_headers,
	.dsn_queue = fake_dsn_queue,
	.enqueue = fake_enqueue,
	.unqueue_msg = fake_unqueue_msg,
	.stop_all = fake_abandon_all,
	.abandon_all = fake_abandon_all,
	.free_all = fake_free_all,
};

/* --- helpers ------------------------------------------------------------- */

static struct fake *
fake_new(const char *conf)
{
	struct fake *f = calloc(1, sizeof(*f));
	char err[512];

	assert_non_null(f);
	f->now = T0;
	f->base = event_base_new();
	assert_non_null(f->base);
	f->cfg = config_parse_buffer("test.conf", conf, strlen(conf), NULL, err, sizeof(err));
	if (f->cfg == NULL)
		fail_msg("config: %s", err);
	f->ml = maillog_open(NULL, "mx.test", err, sizeof(err));
	assert_non_null(f->ml);
	f->s = sched_new_backend(f->base, f->cfg, NULL, f->ml, &f->mt, &fake_backend, f,
	    err, sizeof(err));
	if (f->s == NULL)
		fail_msg("sched: %s", err);
	return f;
}

static void
fake_free(struct fake *f)
{
	f->s = sched_free(f->s);
	for (size_t i = 0; i < f->nmsgs; i++)
		msg_destroy(f->msgs[i]);
	maillog_close(f->ml);
	config_free(f->cfg);
	event_base_free(f->base);
	free(f);
}

/* add - a message from sender to the recipients, arrived now, handed to the scheduler */
static struct queue_msg *
add(struct fake *f, const char *sender, size_t nrcpt, const char *const *rcpts)
{
	struct queue_msg *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	(void)snprintf(m->id, sizeof(m->id), "%016X", 0xA000u + f->nextid++);
	m->sender = strdup(sender);
	m->rcpt = calloc(nrcpt, sizeof(*m->rcpt));
	assert_non_null(m->rcpt);
	m->nrcpt = nrcpt;
	for (size_t i = 0; i < nrcpt; i++)
		m->rcpt[i].addr = strdup(rcpts[i]);
	m->arrival_us = f->now;
	m->size = 100;
	f->msgs[f->nmsgs++] = m;
	sched_add(f->s, m);
	return m;
}

/* pump - run what the scheduler activated (its kick), without waiting */
static void
pump(struct fake *f)
{
	for (int i = 0; i < 4; i++)
		(void)event_base_loop(f->base, EVLOOP_NONBLOCK);
}

/* at - move the virtual clock to T0 + sec and let the scheduler look */
static void
at(struct fake *f, uint64_t sec)
{
	f->now = T0 + sec * S_US;
	sched_run(f->s);
	pump(f);
}

static struct smtpc_reply
reply(int code, const char *dsn, const char *text)
{
	struct smtpc_reply r;

	memset(&r, 0, sizeof(r));
	r.code = code;
	util_strlcpy(r.dsn, dsn, sizeof(r.dsn));
	util_strlcpy(r.text, text, sizeof(r.text));
	return r;
}

/* answer - job i of the transport gets code for MAIL, every RCPT and DATA */
static void
answer(struct fake *f, size_t i, int code)
{
	struct sched_job *job = take(f, i);
	struct smtpc_reply rr[FAKE_MAX];
	struct smtpc_result r;
	struct sched_attempt a;
	char text[64];
	const char *dsn = code < 300 ? "2.0.0" : code < 500 ? "4.0.0" : "5.0.0";

	(void)snprintf(text, sizeof(text), "%d %s test", code, dsn);
	memset(&a, 0, sizeof(a));
	a.relay = "mx.test[192.0.2.1]:25";
	a.start_us = f->now;
	memset(&r, 0, sizeof(r));
	r.mail = reply(code < 300 ? 250 : code, dsn, text);
	for (size_t k = 0; k < job->n; k++)
		rr[k] = reply(code, dsn, text);
	r.rcpt = rr;
	r.nrcpt = job->n;
	r.data = reply(code < 300 ? 250 : 0, dsn, code < 300 ? text : "");
	sched_job_result(f->s, job, &a, &r);
	pump(f);
}

/* refuse - job i fails as a whole with a connection error (no reply) */
static void
refuse(struct fake *f, size_t i)
{
	struct sched_job *job = take(f, i);
	struct smtpc_reply why = reply(0, "4.4.1", "connect to mx.test: Connection refused");
	struct sched_attempt a;

	memset(&a, 0, sizeof(a));
	sched_job_fail(f->s, job, &a, &why, SCHED_TEMP);
	pump(f);
}

static void
commit_dsn(struct fake *f, size_t i, int ok)
{
	struct fake_dsn *d = &f->dsn[i];

	assert_false(d->done);
	d->done = 1;
	d->cb(d->cbarg, ok, d->id);
	pump(f);
}

static int
was_removed(const struct fake *f, const char *id)
{
	for (size_t i = 0; i < f->nremoved; i++)
		if (strcmp(f->removed[i], id) == 0)
			return 1;
	return 0;
}

#define BASE_CONF "hostname = mx.test\ndata_dir = /nonexistent\nretry_min_backoff = 300s\n" \
	"retry_max_backoff = 4000s\nqueue_lifetime = 1d\n"

static const char *const one_rcpt[] = { "rcpt@example.org" };

/* --- tests ------------------------------------------------------------------ */

/*
 * A new message goes out at once; 250 removes it. Its recipients are
 * recorded as delivered before the removal: the real file is unlinked a
 * moment later off the loop, and a crash in between must not send it again.
 */
static void
test_deliver_removes(void **state)
{
	static const char *const two[] = { "a@example.org", "b@example.org" };
	struct fake *f = fake_new(BASE_CONF);
	char id[QUEUE_ID_SIZE], id2[QUEUE_ID_SIZE];

	(void)state;
	util_strlcpy(id, add(f, "s@example.com", 1, one_rcpt)->id, sizeof(id));
	pump(f);
	assert_int_equal(f->njobs, 1);
	assert_string_equal(f->jobs[0]->rcpts[0], "rcpt@example.org");
	answer(f, 0, 250);
	assert_true(was_removed(f, id));
	assert_int_equal(f->nremoved, 1);
	assert_int_equal(f->pending_at_remove[0], 0);
	assert_int_equal(f->mt.delivered, 1);
	assert_int_equal(f->ndsn, 0);
	/* two recipients in one transaction that completes the message: both recorded */
	util_strlcpy(id2, add(f, "s@example.com", 2, two)->id, sizeof(id2));
	pump(f);
	assert_int_equal(f->njobs, 1);
	assert_int_equal(f->jobs[0]->n, 2);
	answer(f, 0, 250);
	assert_true(was_removed(f, id2));
	assert_int_equal(f->nremoved, 2);
	assert_int_equal(f->pending_at_remove[1], 0);
	assert_int_equal(f->mt.delivered, 3);
	fake_free(f);
}

/* 4xx: retried after retry_min_backoff, then twice that; nothing before its time. */
static void
test_retry_backoff(void **state)
{
	struct fake *f = fake_new(BASE_CONF);
	struct queue_msg *m;

	(void)state;
	m = add(f, "s@example.com", 1, one_rcpt);
	pump(f);
	answer(f, 0, 451);
	assert_int_equal(m->rcpt[0].state, QUEUE_RCPT_PENDING);
	assert_int_equal(m->rcpt[0].attempts, 1);
	assert_int_equal(m->rcpt[0].next_try_us, T0 + 300 * S_US);
	assert_string_equal(m->rcpt[0].dsn, "4.0.0");
	at(f, 299);
	assert_int_equal(f->njobs, 0);
	at(f, 300);
	assert_int_equal(f->njobs, 1);
	answer(f, 0, 451);
	assert_int_equal(m->rcpt[0].next_try_us, T0 + (300 + 600) * S_US);
	at(f, 899);
	assert_int_equal(f->njobs, 0);
	at(f, 900);
	assert_int_equal(f->njobs, 1);
	refuse(f, 0);               /* a connection failure defers the same way */
	assert_int_equal(m->rcpt[0].next_try_us, T0 + (900 + 1200) * S_US);
	assert_int_equal(f->mt.deferred, 3);
	assert_int_equal(f->ndsn, 0);
	fake_free(f);
}

/*
 * Each attempt goes into the recipient's history with its state (one
 * write): when, the host, the reply and the command it answered, the
 * result; a delivery that completes the message writes none (its file goes).
 */
static void
test_history_records(void **state)
{
	static const char *const two[] = { "a@example.org", "b@example.org" };
	struct fake *f = fake_new(BASE_CONF);
	struct queue_msg *m;

	(void)state;
	m = add(f, "s@example.com", 2, two);
	pump(f);
	answer(f, 0, 451);
	assert_int_equal(f->nhist, 2);
	assert_int_equal(f->hist[0].rcpt, 0);
	assert_int_equal(f->hist[1].rcpt, 1);
	assert_int_equal(f->hist[0].result, QUEUE_ATTEMPT_DEFERRED);
	assert_int_equal(f->hist[0].attempt, 1);
	assert_int_equal(f->hist[0].time_us, T0);
	assert_string_equal(f->hist[0].host, "mx.test[192.0.2.1]:25");
	assert_string_equal(f->hist[0].dsn, "4.0.0");
	if (strstr(f->hist[0].reply, "451 4.0.0 test") == NULL ||
	    strstr(f->hist[0].reply, "(in reply to MAIL FROM command)") == NULL)
		fail_msg("reply: got '%s', want the reply and its command", f->hist[0].reply);
	at(f, 300);
	refuse(f, 0);               /* no host reached: no host, the error as the reply */
	assert_int_equal(f->nhist, 4);
	assert_string_equal(f->hist[2].host, "");
	assert_int_equal(f->hist[2].attempt, 2);
	assert_string_equal(f->hist[2].reply, "connect to mx.test: Connection refused");
	at(f, 900);
	answer(f, 0, 550);
	assert_int_equal(f->nhist, 6);
	assert_int_equal(f->hist[4].result, QUEUE_ATTEMPT_BOUNCED);
	assert_int_equal(f->hist[4].attempt, 3);
	assert_int_equal(f->hist[4].time_us, T0 + 900 * S_US);
	assert_int_equal(m->rcpt[0].attempts, 3);
	assert_int_equal(f->ndsn, 1);
	commit_dsn(f, 0, 1);
	assert_int_equal(f->nhist, 6);      /* the DSN's bounce records add no attempt */
	fake_free(f);

	/* one recipient delivered, the other deferred: the delivery is in the history */
	f = fake_new(BASE_CONF);
	m = add(f, "s@example.com", 2, two);
	pump(f);
	{
		struct sched_job *job = take(f, 0);
		struct smtpc_reply rr[2], why;
		struct smtpc_result r;
		struct sched_attempt a;

		memset(&a, 0, sizeof(a));
		a.relay = "mx.test[192.0.2.1]:25";
		memset(&r, 0, sizeof(r));
		r.mail = reply(250, "2.0.0", "250 ok");
		rr[0] = reply(250, "2.1.5", "250 2.1.5 ok");
		rr[1] = reply(451, "4.2.0", "451 4.2.0 later");
		r.rcpt = rr;
		r.nrcpt = 2;
		r.data = reply(250, "2.0.0", "250 2.0.0 queued as X");
		sched_job_result(f->s, job, &a, &r);
		pump(f);
		(void)why;
	}
	assert_int_equal(f->nhist, 2);
	assert_int_equal(f->hist[0].result, QUEUE_ATTEMPT_DELIVERED);
	assert_int_equal(f->hist[1].result, QUEUE_ATTEMPT_DEFERRED);
	assert_int_equal(m->rcpt[0].state, QUEUE_RCPT_DELIVERED);
	fake_free(f);

	/* delivered at once, the message done: no history written */
	f = fake_new(BASE_CONF);
	(void)add(f, "s@example.com", 1, one_rcpt);
	pump(f);
	answer(f, 0, 250);
	assert_int_equal(f->nhist, 0);
	fake_free(f);
}

/* Past queue_lifetime a temporary failure bounces: DSN to the sender, then removal. */
static void
test_expiry_bounces(void **state)
{
	struct fake *f = fake_new(BASE_CONF);
	struct queue_msg *m;
	char id[QUEUE_ID_SIZE];

	(void)state;
	m = add(f, "s@example.com", 1, one_rcpt);
	util_strlcpy(id, m->id, sizeof(id));
	pump(f);
	answer(f, 0, 451);
	/* the last retry before expiry, and the failure after it */
	f->now = T0 + 86400 * S_US + 1;
	sched_ops_flush(f->s);
	pump(f);
	assert_int_equal(f->njobs, 1);
	answer(f, 0, 451);
	assert_int_equal(f->ndsn, 1);
	assert_string_equal(f->dsn[0].to, "s@example.com");
	assert_false(f->dsn[0].delayed);
	/* not bounced until the DSN is durable */
	assert_int_equal(m->rcpt[0].state, QUEUE_RCPT_PENDING);
	assert_false(was_removed(f, id));
	commit_dsn(f, 0, 1);
	assert_true(was_removed(f, id));
	assert_int_equal(f->mt.bounced, 1);
	fake_free(f);
}

/* 5xx bounces at once; a DSN whose commit fails leaves the recipient to be tried again. */
static void
test_perm_dsn_commit_fails(void **state)
{
	struct fake *f = fake_new(BASE_CONF);
	struct queue_msg *m;

	(void)state;
	m = add(f, "s@example.com", 1, one_rcpt);
	pump(f);
	answer(f, 0, 550);
	assert_int_equal(f->ndsn, 1);
	commit_dsn(f, 0, 0);
	assert_int_equal(m->rcpt[0].state, QUEUE_RCPT_PENDING);
	assert_int_equal(f->nremoved, 0);
	assert_int_equal(f->mt.bounced, 0);
	/* its backoff later: tried again, bounced again, this time for good */
	at(f, 300);
	assert_int_equal(f->njobs, 1);
	answer(f, 0, 550);
	assert_int_equal(f->ndsn, 2);
	commit_dsn(f, 1, 1);
	assert_int_equal(f->nremoved, 1);
	assert_int_equal(f->mt.bounced, 1);
	fake_free(f);
}

/* The null sender and our own DSNs get no DSN: dropped, never a bounce loop. */
static void
test_null_sender_no_dsn(void **state)
{
	struct fake *f = fake_new(BASE_CONF);

	(void)state;
	(void)add(f, "", 1, one_rcpt);
	pump(f);
	answer(f, 0, 550);
	assert_int_equal(f->ndsn, 0);
	assert_int_equal(f->nremoved, 1);
	assert_int_equal(f->mt.bounced, 1);
	fake_free(f);
}

/* delay_warning_time: one "delayed" DSN once it has passed, the message stays. */
static void
test_delay_warning(void **state)
{
	struct fake *f = fake_new(BASE_CONF "delay_warning_time = 1h\n");
	struct queue_msg *m;

	(void)state;
	m = add(f, "s@example.com", 1, one_rcpt);
	pump(f);
	answer(f, 0, 451);
	assert_int_equal(f->ndsn, 0);       /* not yet: only 0 s old */
	f->now = T0 + 3601 * S_US;
	sched_ops_flush(f->s);
	pump(f);
	answer(f, 0, 451);
	assert_int_equal(f->ndsn, 1);
	assert_true(f->dsn[0].delayed);
	commit_dsn(f, 0, 1);
	assert_int_equal(f->nremoved, 0);
	assert_int_equal(m->rcpt[0].state, QUEUE_RCPT_PENDING);
	/* no second warning */
	f->now = T0 + 7200 * S_US;
	sched_ops_flush(f->s);
	pump(f);
	answer(f, 0, 451);
	assert_int_equal(f->ndsn, 1);
	fake_free(f);
}

/* cc_mta: a second job with every recipient; the message stays until the copy is done. */
static void
test_cc_copy(void **state)
{
	struct fake *f = fake_new(BASE_CONF "cc_mta = cc.test\n");
	struct queue_msg *m;
	size_t cc, main;

	(void)state;
	m = add(f, "s@example.com", 1, one_rcpt);
	assert_true(m->flags & QUEUE_F_CC);
	pump(f);
	assert_int_equal(f->njobs, 2);
	cc = f->jobs[0]->cc ? 0 : 1;
	main = 1 - cc;
	assert_true(f->jobs[cc]->cc);
	assert_false(f->jobs[main]->cc);
	assert_non_null(strstr(f->keys[cc], "cc.test"));
	answer(f, main, 250);               /* the recipient is done ... */
	cc = 0;
	assert_int_equal(f->nremoved, 0);  /* ... the copy is not */
	refuse(f, cc);
	assert_int_equal(f->nremoved, 0);
	assert_true(m->flags & QUEUE_F_CC);
	at(f, 299);
	assert_int_equal(f->njobs, 0);
	at(f, 300);                         /* the copy alone is retried */
	assert_int_equal(f->njobs, 1);
	assert_true(f->jobs[0]->cc);
	answer(f, 0, 250);
	assert_int_equal(f->nremoved, 1);
	assert_int_equal(f->ndsn, 0);       /* never a DSN for the copy */
	fake_free(f);
}

/* Operator delete: a queued job is taken back and the message goes at once. */
static void
test_delete_queued(void **state)
{
	struct fake *f = fake_new(BASE_CONF);
	struct queue_msg *m;

	(void)state;
	m = add(f, "s@example.com", 1, one_rcpt);
	pump(f);
	assert_int_equal(f->njobs, 1);
	assert_int_equal(sched_ops_delete(f->s, m), 0);
	assert_int_equal(f->njobs, 0);
	assert_int_equal(f->nremoved, 1);
	fake_free(f);
}

/* Held messages are not dispatched, released ones are. */
static void
test_hold_release(void **state)
{
	struct fake *f = fake_new(BASE_CONF);
	struct queue_msg *m;

	(void)state;
	m = add(f, "s@example.com", 1, one_rcpt);
	pump(f);
	answer(f, 0, 451);
	assert_int_equal(sched_ops_hold(f->s, m, 1), 0);
	at(f, 1000);
	assert_int_equal(f->njobs, 0);
	assert_int_equal(sched_ops_hold(f->s, m, 0), 0);
	pump(f);
	assert_int_equal(f->njobs, 1);
	answer(f, 0, 250);
	assert_int_equal(f->nremoved, 1);
	fake_free(f);
}

/*
 * A dead destination (its transport gave up on every connection): the rest
 * of its mail is deferred without a connection attempt, mail elsewhere goes
 * on; when the mark runs out the next due message probes it again.
 */
static void
test_dead_destination(void **state)
{
	struct fake *f = fake_new(BASE_CONF);
	static const char *const other[] = { "x@other.example" };
	struct smtpc_reply why = reply(0, "4.4.1", "connect to mx.test[192.0.2.1]:25: "
	    "Connection refused");
	struct queue_msg *b, *c;
	char key[SCHED_KEY_MAX];

	(void)state;
	(void)add(f, "s@example.com", 1, one_rcpt);
	pump(f);
	assert_int_equal(f->njobs, 1);
	util_strlcpy(key, f->keys[0], sizeof(key));
	sched_dead_mark(f->s, key, &why);       /* as sched_dest.c does when it gives up */
	refuse(f, 0);
	b = add(f, "s@example.com", 1, one_rcpt);
	c = add(f, "s@example.com", 1, one_rcpt);
	(void)add(f, "s@example.com", 1, other);
	pump(f);
	/* only the healthy destination got a job */
	assert_int_equal(f->enqueued, 2);
	assert_int_equal(f->njobs, 1);
	assert_string_equal(f->jobs[0]->rcpts[0], "x@other.example");
	answer(f, 0, 250);
	assert_int_equal(b->rcpt[0].state, QUEUE_RCPT_PENDING);
	assert_int_equal(b->rcpt[0].attempts, 1);
	assert_int_equal(b->rcpt[0].next_try_us, T0 + 300 * S_US);
	assert_non_null(strstr(b->rcpt[0].last_reply, "delivery temporarily suspended: "
	    "connect to mx.test"));
	assert_string_equal(c->rcpt[0].dsn, "4.4.1");
	assert_int_equal(f->mt.deferred, 3);
	/* the mark (60 s) is over when they are due again: all three go to the transport */
	at(f, 300);
	assert_int_equal(f->njobs, 3);
	assert_int_equal(f->enqueued, 5);
	/* a connection that works clears a mark at once */
	sched_dead_mark(f->s, key, &why);
	sched_dead_clear(f->s, key);
	while (f->njobs > 0)
		answer(f, 0, 250);
	assert_int_equal(f->nmsgs, 0);
	fake_free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deliver_removes),
		cmocka_unit_test(test_retry_backoff),
		cmocka_unit_test(test_history_records),
		cmocka_unit_test(test_expiry_bounces),
		cmocka_unit_test(test_perm_dsn_commit_fails),
		cmocka_unit_test(test_null_sender_no_dsn),
		cmocka_unit_test(test_delay_warning),
		cmocka_unit_test(test_cc_copy),
		cmocka_unit_test(test_delete_queued),
		cmocka_unit_test(test_hold_release),
		cmocka_unit_test(test_dead_destination),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
