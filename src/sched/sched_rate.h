/*
 * sched_rate.h - per-destination rate limit and concurrency feedback:
 *                the arithmetic (private to src/sched/)
 *
 * Owns:     nothing: struct sched_rate and struct sched_fb live in their
 *           destination; every function here computes from its arguments
 *           and the given clock, with no I/O and no allocation, so
 *           tests/unit/test_sched_rate.c can drive them from tables.
 * Lifetime: stateless.
 * Errors:   none.
 * Context:  any thread.
 */
#ifndef MTAD_SCHED_RATE_H
#define MTAD_SCHED_RATE_H

#include <stdint.h>

struct smtpc_reply;

/*
 * A token bucket of one token, kept as its next due time (the generic cell
 * rate algorithm): N messages per unit are spaced unit/N apart, so that any
 * window of one unit holds at most N + 1 of them. interval_us 0 = no limit.
 */
struct sched_rate {
	uint64_t interval_us;           /* unit / N */
	uint64_t next_us;               /* monotonic: the next message may start then */
};

/* sched_rate_set - n messages per per_s seconds (n == 0: no limit); keeps next_us */
void sched_rate_set(struct sched_rate *r, uint32_t n, uint32_t per_s);
/* sched_rate_wait - µs until a message may start (0 = now) */
uint64_t sched_rate_wait(const struct sched_rate *r, uint64_t now_us);
/* sched_rate_take - a message starts now: the next one is due interval_us later */
void sched_rate_take(struct sched_rate *r, uint64_t now_us);

/*
 * Concurrency feedback (SPEC §11.2), as Postfix's queue manager: a
 * throttling signal halves the limit (never below 1), once per cohort of
 * connections (those started before the last halving count as the same
 * signal); while throttled, every `limit` successes add one connection
 * (Postfix's positive feedback of 1/concurrency) until the limit is back
 * at max, which ends the throttled state.
 */
struct sched_fb {
	unsigned limit;                 /* connections allowed now */
	unsigned max;                   /* configured concurrency */
	unsigned credit;                /* successes since the last step up */
	unsigned epoch;                 /* bumped at each halving */
	int      throttled;
	uint64_t halvings;              /* how many times, for the UI */
};

/* sched_fb_init - limit starts at min(init, max) (max 0 is taken as 1) */
void sched_fb_init(struct sched_fb *f, unsigned max, unsigned init);
/* sched_fb_set_max - a new configured concurrency (SIGHUP, policy): the limit is capped */
void sched_fb_set_max(struct sched_fb *f, unsigned max);
/*
 * sched_fb_throttle - a throttling signal from a connection started in
 * epoch conn_epoch while inflight connections were open: 1 when the limit
 * was halved (from min(limit, inflight)), 0 when this cohort already was.
 */
int sched_fb_throttle(struct sched_fb *f, unsigned conn_epoch, unsigned inflight);
/* sched_fb_success - a transaction went through: 1 when the limit grew */
int sched_fb_success(struct sched_fb *f);
/* sched_fb_connected - a connection became ready: slow start (+1) unless throttled */
void sched_fb_connected(struct sched_fb *f);

/*
 * sched_rate_throttle_reply - 1 when r tells the client to slow down: a 421,
 * or a 4xx with enhanced status 4.7.x whose text says "rate", "too many"
 * or "throttl" (any case)
 */
int sched_rate_throttle_reply(const struct smtpc_reply *r);

#endif
