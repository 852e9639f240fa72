/*
 * sched_rate.c - per-destination rate limit (a token bucket) and the
 *                concurrency feedback arithmetic (halve, grow back)
 *
 * Owns:     nothing (see sched_rate.h).
 * Lifetime: stateless.
 * Errors:   none.
 * Context:  any thread.
 *
 * sched_dest.c asks sched_rate_wait() before a job leaves a rate-limited
 * destination and arms a timer for the answer; a destination without a
 * limit never calls in here (one branch per job). The feedback follows
 * Postfix's qmgr: negative feedback on throttling (here a halving, as
 * SPEC §11.2 says, applied once per cohort like Postfix's failed-cohort
 * logic, so ten connections refused at once halve once, not ten times),
 * positive feedback of 1/limit per success.
 */
#include "sched/sched_rate.h"
#include "smtpc/smtpc.h"

#include <ctype.h>
#include <stddef.h>
#include <string.h>

/* sched_rate_set - see sched_rate.h */
void
sched_rate_set(struct sched_rate *r, uint32_t n, uint32_t per_s)
{
	if (n == 0 || per_s == 0) {
		r->interval_us = 0;
		return;
	}
	r->interval_us = (uint64_t)per_s * 1000000u / n;
	if (r->interval_us == 0)
		r->interval_us = 1;
}

/* sched_rate_wait - see sched_rate.h */
uint64_t
sched_rate_wait(const struct sched_rate *r, uint64_t now_us)
{
	if (r->interval_us == 0 || now_us >= r->next_us)
		return 0;
	return r->next_us - now_us;
}

/* sched_rate_take - see sched_rate.h; an idle bucket holds one token, no more */
void
sched_rate_take(struct sched_rate *r, uint64_t now_us)
{
	uint64_t base = r->next_us > now_us ? r->next_us : now_us;

	r->next_us = base + r->interval_us;
}

/* sched_fb_init - see sched_rate.h */
void
sched_fb_init(struct sched_fb *f, unsigned max, unsigned init)
{
	memset(f, 0, sizeof(*f));
	f->max = max > 0 ? max : 1;
	f->limit = init < f->max ? init : f->max;
	if (f->limit == 0)
		f->limit = 1;
}

/* sched_fb_set_max - see sched_rate.h */
void
sched_fb_set_max(struct sched_fb *f, unsigned max)
{
	f->max = max > 0 ? max : 1;
	if (f->limit > f->max)
		f->limit = f->max;
	if (f->throttled && f->limit >= f->max) {
		f->throttled = 0;
		f->credit = 0;
	}
}

/* sched_fb_throttle - see sched_rate.h */
int
sched_fb_throttle(struct sched_fb *f, unsigned conn_epoch, unsigned inflight)
{
	unsigned base = f->limit;

	if (conn_epoch != f->epoch)
		return 0;               /* started before the last halving: same signal */
	if (inflight > 0 && inflight < base)
		base = inflight;
	f->limit = base / 2 > 0 ? base / 2 : 1;
	f->throttled = 1;
	f->credit = 0;
	f->epoch++;
	f->halvings++;
	return 1;
}

/* sched_fb_success - see sched_rate.h */
int
sched_fb_success(struct sched_fb *f)
{
	if (!f->throttled)
		return 0;
	if (++f->credit < f->limit)
		return 0;
	f->credit = 0;
	if (f->limit < f->max)
		f->limit++;
	if (f->limit >= f->max)
		f->throttled = 0;
	return 1;
}

/* sched_fb_connected - see sched_rate.h */
void
sched_fb_connected(struct sched_fb *f)
{
	if (!f->throttled && f->limit < f->max)
		f->limit++;
}

/* rate_has - text contains word (ASCII, any case) */
static int
rate_has(const char *text, const char *word)
{
	size_t wl = strlen(word);

	for (const char *p = text; *p != '\0'; p++) {
		size_t i;

		for (i = 0; i < wl && p[i] != '\0'; i++)
			if (tolower((unsigned char)p[i]) != word[i])
				break;
		if (i == wl)
			return 1;
	}
	return 0;
}

/* sched_rate_throttle_reply - see sched_rate.h */
int
sched_rate_throttle_reply(const struct smtpc_reply *r)
{
	if (r->code == 421)
		return 1;
	if (r->code < 400 || r->code >= 500 || strncmp(r->dsn, "4.7.", 4) != 0)
		return 0;
	return rate_has(r->text, "rate") || rate_has(r->text, "too many") ||
	    rate_has(r->text, "throttl");
}
