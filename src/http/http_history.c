/*
 * http_history.c - the counters over time, kept in memory for the graphs
 *
 * Owns:     two rings of samples: one every 10 s for the last hour, one a
 *           minute for the last 24 hours (1,440 samples).
 * Lifetime: http_history_init() to http_history_free(); restored at start
 *           from <data_dir>/stats and saved there (http_persist.c).
 * Errors:   init returns -1 when memory is short; nothing else fails.
 * Context:  event-loop thread (the HTTP service's 10 s timer).
 *
 * Counters (accepted, delivered, ...) are stored as the increase during the
 * interval; gauges (sessions, queue) as their value at the end of it. A
 * coarse sample sums the counters of its six fine samples and keeps the
 * last gauges.
 */
#include "http/http_int.h"

#include <stdlib.h>
#include <string.h>

const char *const http_history_names[HTTP_H_FIELDS] = {
	"accepted", "delivered", "deferred", "bounced", "rejected",
	"sessions", "queue", "queue_kb",
};

/* http_ring_init - an empty ring of cap samples, interval seconds apart */
static int
http_ring_init(struct http_ring *r, size_t cap, unsigned interval)
{
	r->s = calloc(cap, sizeof(*r->s));
	r->cap = cap;
	r->len = 0;
	r->head = 0;
	r->interval = interval;
	return r->s == NULL ? -1 : 0;
}

/* http_ring_push - append, dropping the oldest when full */
static void
http_ring_push(struct http_ring *r, const struct http_sample *s)
{
	r->s[r->head] = *s;
	r->head = (r->head + 1) % r->cap;
	if (r->len < r->cap)
		r->len++;
}

/* http_history_ring_get - the i-th oldest sample */
const struct http_sample *
http_history_ring_get(const struct http_ring *r, size_t i)
{
	size_t first = (r->head + r->cap - r->len) % r->cap;

	return &r->s[(first + i) % r->cap];
}

/* http_history_init - both rings, empty; -1 when memory is short */
int
http_history_init(struct http_history *hi)
{
	memset(hi, 0, sizeof(*hi));
	if (http_ring_init(&hi->fine, HTTP_FINE_LEN, HTTP_FINE_SECS) < 0 ||
	    http_ring_init(&hi->coarse, HTTP_COARSE_LEN, HTTP_COARSE_SECS) < 0) {
		http_history_free(hi);
		return -1;
	}
	return 0;
}

/* http_history_free - release the rings (the struct itself is the caller's) */
void
http_history_free(struct http_history *hi)
{
	free(hi->fine.s);
	free(hi->coarse.s);
	hi->fine.s = hi->coarse.s = NULL;
}

/* http_history_tick - one fine sample, and a coarse one every HTTP_COARSE_SECS */
void
http_history_tick(struct http_history *hi, uint64_t t,
    const uint64_t cum[HTTP_H_COUNTERS], const uint64_t gauges[HTTP_H_FIELDS - HTTP_H_COUNTERS])
{
	struct http_sample s;

	s.t = t;
	for (int i = 0; i < HTTP_H_COUNTERS; i++) {
		/* The first tick has no base yet: its interval counts from zero. */
		uint64_t base = hi->have_last ? hi->last[i] : cum[i];
		s.v[i] = cum[i] >= base ? cum[i] - base : 0;
		hi->last[i] = cum[i];
	}
	hi->have_last = 1;
	for (int i = HTTP_H_COUNTERS; i < HTTP_H_FIELDS; i++)
		s.v[i] = gauges[i - HTTP_H_COUNTERS];
	http_ring_push(&hi->fine, &s);

	for (int i = 0; i < HTTP_H_COUNTERS; i++)
		hi->acc.v[i] += s.v[i];
	for (int i = HTTP_H_COUNTERS; i < HTTP_H_FIELDS; i++)
		hi->acc.v[i] = s.v[i];
	hi->acc.t = t;
	if (++hi->acc_n >= HTTP_COARSE_SECS / HTTP_FINE_SECS) {
		http_ring_push(&hi->coarse, &hi->acc);
		memset(&hi->acc, 0, sizeof(hi->acc));
		hi->acc_n = 0;
	}
}

/*
 * http_history_rates - what happened in the last minute: the sum of the
 * last minute's fine samples. Soon after start there are fewer samples and
 * the sum is what was seen so far; it is never extrapolated (one message in
 * the first seconds is 1/min, not 6/min).
 */
void
http_history_rates(const struct http_history *hi, uint64_t now, double out[HTTP_H_COUNTERS])
{
	size_t n = HTTP_COARSE_SECS / HTTP_FINE_SECS;
	const struct http_ring *r = &hi->fine;

	for (int k = 0; k < HTTP_H_COUNTERS; k++)
		out[k] = 0;
	if (n > r->len)
		n = r->len;
	if (n == 0)
		return;
	for (size_t i = r->len - n; i < r->len; i++) {
		const struct http_sample *s = http_history_ring_get(r, i);
		if (s->t + HTTP_COARSE_SECS <= now)
			continue;              /* older than a minute (from before a restart) */
		for (int k = 0; k < HTTP_H_COUNTERS; k++)
			out[k] += (double)s->v[k];
	}
}

/* http_history_json - column arrays, the shape uPlot takes directly */
json_t *
http_history_json(const struct http_ring *r)
{
	json_t *o = json_object(), *col;

	if (o == NULL)
		return NULL;
	if (json_object_set_new(o, "interval", json_integer(r->interval)) < 0 ||
	    json_object_set_new(o, "capacity", json_integer((json_int_t)r->cap)) < 0)
		goto fail;
	if ((col = json_array()) == NULL || json_object_set_new(o, "t", col) < 0)
		goto fail;
	for (size_t i = 0; i < r->len; i++)
		if (json_array_append_new(col, json_integer((json_int_t)http_history_ring_get(r, i)->t)) < 0)
			goto fail;
	for (int k = 0; k < HTTP_H_FIELDS; k++) {
		if ((col = json_array()) == NULL ||
		    json_object_set_new(o, http_history_names[k], col) < 0)
			goto fail;
		for (size_t i = 0; i < r->len; i++)
			if (json_array_append_new(col,
			    json_integer((json_int_t)http_history_ring_get(r, i)->v[k])) < 0)
				goto fail;
	}
	return o;
fail:
	json_decref(o);
	return NULL;
}
