/*
 * sched_bounce.c - the scheduler's DSN flow: build the delivery status
 * notification (bounce.c), queue it, and only then mark the recipients
 *
 * Owns:     struct sched_bounce, one per DSN commit in flight (on s->bounces).
 * Lifetime: from sched_bounce_start() to its commit callback; a commit that
 *           outlives sched_free() finds op->s NULL and frees only itself.
 * Errors:   a DSN that cannot be built or queued leaves its recipients
 *           pending (tried again later), never lost; logged, never fatal.
 * Context:  event-loop thread.
 *
 * Failed recipients (5xx, or past queue_lifetime) are kept pending on disk
 * with their reason until the DSN to the sender is durable; a crash before
 * that repeats the attempt instead of losing the notice. The null sender
 * and our own DSNs get none (sched_bounce_none), never a bounce loop.
 */
#include "sched/sched_int.h"
#include "sched/bounce.h"
#include "lib/log.h"
#include "lib/util.h"
#include "mail/config.h"
#include "mail/maillog.h"
#include "metrics/metrics.h"
#include "queue/queue.h"

#include <stdlib.h>
#include <string.h>

/* A DSN being committed; outlives sched_free() if the queue still holds it (s = NULL). */
struct sched_bounce {
	LIST_ENTRY(sched_bounce) entry;
	struct sched *s;
	char     id[QUEUE_ID_SIZE];     /* the original message */
	char     bid[QUEUE_ID_SIZE];    /* the DSN */
	enum bounce_kind kind;
	int      expired;
	size_t   n;
	size_t   idx[];
};

static void bounce_on_commit(void *arg, int ok, const char *id);

/*
 * sched_bounce_start - build the DSN for recipients idx[0..n) and queue it as a
 * new message from <> to the sender (QUEUE_F_BOUNCE: it never bounces
 * itself). The recipients are marked bounced only when the commit says it
 * is durable (bounce_on_commit). 0 when under way, -1 when it could not
 * start (the recipients then stay pending and are tried again).
 */
int
sched_bounce_start(struct sched *s, struct sched_msg *sm, const size_t *idx, size_t n,
    enum bounce_kind kind)
{
	struct queue_msg *m = sm->m;
	struct queue_envelope env;
	struct sched_bounce *op = NULL;
	const char *rcpts[1];
	char *hdr = NULL, *text = NULL;
	size_t hlen = 0, tlen = 0;

	if ((hdr = s->be->headers(s->be_arg, m, SCHED_HEADERS_MAX, &hlen)) == NULL)
		log_warn("%s: cannot read the original headers for the DSN", m->id);
	text = bounce_build(s->cfg->hostname, m, idx, n, kind, hdr != NULL ? hdr : "", hlen,
	    sched_now(s), &tlen);
	free(hdr);
	if (text == NULL) {
		log_warnx("%s: cannot build the DSN", m->id);
		goto fail;
	}
	if ((op = calloc(1, sizeof(*op) + n * sizeof(op->idx[0]))) == NULL)
		goto fail;
	memset(&env, 0, sizeof(env));
	rcpts[0] = m->sender;
	env.sender = "";
	env.rcpts = rcpts;
	env.nrcpt = 1;
	env.client_addr = "local";     /* made here, not received */
	env.client_name = "localhost";
	env.helo = s->cfg->hostname;
	env.flags = QUEUE_F_BOUNCE | (m->flags & (QUEUE_F_8BITMIME | QUEUE_F_SMTPUTF8));
	op->s = s;
	util_strlcpy(op->id, m->id, sizeof(op->id));
	op->kind = kind;
	op->expired = kind == BOUNCE_FAILED && sm->expired;
	op->n = n;
	memcpy(op->idx, idx, n * sizeof(op->idx[0]));
	LIST_INSERT_HEAD(&s->bounces, op, entry);
	s->nbounces++;
	sm->njobs++;
	if (s->be->dsn_queue(s->be_arg, &env, text, tlen, bounce_on_commit, op, op->bid,
	    sizeof(op->bid)) < 0) {
		log_warn("%s: cannot queue the DSN", m->id);
		LIST_REMOVE(op, entry);
		s->nbounces--;
		sm->njobs--;        /* back as it was: the caller goes on with sm */
		goto fail;
	}
	free(text);
	return 0;
fail:
	free(op);
	free(text);
	return -1;
}

/* bounce_on_commit - the DSN is durable (or lost): now the recipients are bounced */
static void
bounce_on_commit(void *arg, int ok, const char *id)
{
	struct sched_bounce *op = arg;
	struct sched *s = op->s;
	struct queue_msg *m;
	struct sched_msg *sm;

	(void)id;
	if (s == NULL) {
		free(op);
		return;
	}
	LIST_REMOVE(op, entry);
	s->nbounces--;
	if ((m = s->be->lookup(s->be_arg, op->id)) == NULL || (sm = m->sched) == NULL) {
		log_warnx("%s: gone before its DSN %s was queued", op->id, op->bid);
		free(op);
		sched_ops_check_done(s);
		return;
	}
	if (!ok)
		log_warnx("%s: cannot queue the DSN; the recipients will be tried again", m->id);
	else if (op->kind == BOUNCE_DELAYED)
		maillog_delay_notice(s->ml, m->id, op->bid);
	else {
		for (size_t i = 0; i < op->n; i++) {
			struct queue_rcpt *r = &m->rcpt[op->idx[i]];
			char dsn[sizeof(r->dsn)];
			char *reply = r->last_reply != NULL ? strdup(r->last_reply) : NULL;

			util_strlcpy(dsn, r->dsn, sizeof(dsn));
			sched_rcpt_write(s, m, op->idx[i], QUEUE_RCPT_BOUNCED, 0, dsn, reply, NULL);
			free(reply);
			s->mt->bounced++;
		}
		if (op->expired)
			maillog_expired(s->ml, m->id, m->sender);
		maillog_bounce_notice(s->ml, m->id, op->bid);
	}
	if (op->kind == BOUNCE_DELAYED) {
		/* in the file too: a message loaded again (restart, window) is not warned twice */
		sm->warned = 1;
		if (ok && s->be->update_flags(s->be_arg, m, m->flags | QUEUE_F_WARNED) < 0)
			log_warn("%s: cannot record its delay warning", m->id);
	} else {
		sm->nfail = 0;
		sm->expired = 0;
	}
	free(op);
	if (--sm->njobs == 0)
		sched_msg_finish(s, sm);
	sched_ops_check_done(s);
}

/*
 * sched_bounce_none - failed recipients of a message that gets no DSN (the null
 * sender, or a DSN of ours): logged and dropped, never a bounce loop.
 */
void
sched_bounce_none(struct sched *s, struct sched_msg *sm)
{
	struct queue_msg *m = sm->m;

	for (size_t i = 0; i < sm->nfail; i++) {
		struct queue_rcpt *r = &m->rcpt[sm->fail[i]];
		char dsn[sizeof(r->dsn)];
		char *reply = r->last_reply != NULL ? strdup(r->last_reply) : NULL;

		util_strlcpy(dsn, r->dsn, sizeof(dsn));
		sched_rcpt_write(s, m, sm->fail[i], QUEUE_RCPT_BOUNCED, 0, dsn, reply, NULL);
		free(reply);
		s->mt->bounced++;
	}
	if (sm->expired)
		maillog_expired(s->ml, m->id, m->sender);
	maillog_discarded(s->ml, m->id, m->rcpt[sm->fail[0]].addr,
	    (m->flags & QUEUE_F_BOUNCE) != 0);
	sm->nfail = 0;
	sm->expired = 0;
}

/* sched_bounce_delay_due - delay_warning_time has passed with recipients still deferred */
size_t
sched_bounce_delay_due(struct sched *s, struct sched_msg *sm, size_t *idx)
{
	const struct queue_msg *m = sm->m;
	size_t n = 0;

	if (s->cfg->delay_warning_time == 0 || sm->warned || m->sender[0] == '\0' ||
	    (m->flags & QUEUE_F_BOUNCE) || sm->all_done ||
	    !sched_policy_expired(sched_now(s), m->arrival_us, s->cfg->delay_warning_time))
		return 0;
	for (size_t i = 0; i < m->nrcpt; i++)
		if (m->rcpt[i].state == QUEUE_RCPT_PENDING && m->rcpt[i].attempts > 0)
			idx[n++] = i;
	return n;
}

/* sched_bounce_detach_all - sched_free: commits still in the queue will find s gone */
void
sched_bounce_detach_all(struct sched *s)
{
	struct sched_bounce *op;

	while ((op = LIST_FIRST(&s->bounces)) != NULL) {
		LIST_REMOVE(op, entry);
		op->s = NULL;
	}
}
