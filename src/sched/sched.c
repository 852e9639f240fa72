/*
 * sched.c - the delivery scheduler (placeholder until delivery lands:
 * accepted mail stays queued)
 *
 * Owns:     nothing yet.
 * Lifetime: sched_new() to sched_free().
 * Errors:   none.
 * Context:  event-loop thread.
 */
#include "sched/sched.h"

#include <stdlib.h>

struct sched {
	int stopping;
};

struct sched *
sched_new(struct event_base *base, const struct config *cfg, struct queue *q,
    struct maillog *ml, struct metrics *m, char *err, size_t errlen)
{
	(void)base; (void)cfg; (void)q; (void)ml; (void)m; (void)err; (void)errlen;
	return calloc(1, sizeof(struct sched));
}

void sched_add(struct sched *s, struct queue_msg *m) { (void)s; (void)m; }
void sched_flush(struct sched *s) { (void)s; }
void sched_set_config(struct sched *s, const struct config *cfg) { (void)s; (void)cfg; }

void
sched_shutdown(struct sched *s, void (*done)(void *arg), void *arg)
{
	s->stopping = 1;
	done(arg);
}

struct sched *
sched_free(struct sched *s)
{
	free(s);
	return NULL;
}
