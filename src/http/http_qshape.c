/*
 * http_qshape.c - GET /api/qshape: the queue by recipient domain and age,
 *                 as Postfix's qshape shows it
 *
 * Owns:     the per-domain counters of one request (freed before it returns).
 * Lifetime: one request.
 * Errors:   out of memory answers 500; a bad "limit" 400.
 * Context:  event-loop thread: one walk over the window in memory, then at
 *           most HTTP_PARKED_READ parked files read (blocking reads, bounded).
 *
 * Every pending recipient counts once, under its domain (lower-cased) and
 * in one age bucket of its message: up to 5, 10, 20, 40, 80, 160, 320, 640,
 * 1280 minutes, and older (qshape's columns). The reply:
 *
 *   {"now": S, "buckets": [5, 10, ..., 1280, null], "total": {"count": N,
 *    "ages": [...]}, "domains": [{"domain": "example.org", "count": n,
 *    "ages": [...]}, ...], "ndomains": D}
 *
 * "domains" holds the `limit` (default 20, at most 1000) largest, biggest
 * first; "total" counts every domain. Messages parked on disk (outside the
 * window) are read from their files, at most HTTP_PARKED_READ of them; when
 * more are parked the reply adds "partial": true and a "note" saying how
 * many were read, as a filtered /api/queue listing does.
 */
#include "http/http_int.h"
#include "lib/jsonout.h"
#include "lib/map.h"
#include "lib/util.h"
#include "queue/queue.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#define QSHAPE_NBUCKET   10
#define QSHAPE_DEF_LIMIT 20
#define QSHAPE_MAX_LIMIT 1000

static const unsigned qshape_minutes[QSHAPE_NBUCKET - 1] = {
	5, 10, 20, 40, 80, 160, 320, 640, 1280
};

struct qshape_dom {
	uint64_t count;
	uint64_t ages[QSHAPE_NBUCKET];
	char     name[];
};

struct qshape {
	struct map *doms;
	struct qshape_dom **v;          /* collected for sorting */
	size_t   n, cap;
	uint64_t total, ages[QSHAPE_NBUCKET];
	uint64_t now_us;
	uint64_t parked_read;           /* parked messages read from their files */
	int      partial;               /* parked messages were left unread */
	int      nomem;
};

/* qshape_bucket - the age column of a message that arrived at arrival_us */
static int
qshape_bucket(uint64_t now_us, uint64_t arrival_us)
{
	uint64_t min = now_us > arrival_us ? (now_us - arrival_us) / 60000000u : 0;

	for (int i = 0; i < QSHAPE_NBUCKET - 1; i++)
		if (min <= qshape_minutes[i])
			return i;
	return QSHAPE_NBUCKET - 1;
}

/* qshape_dom_of - the recipient's domain, lower-cased into buf ("" when it has none) */
static void
qshape_dom_of(const char *addr, char *buf, size_t size)
{
	const char *at = strrchr(addr, '@');
	size_t i = 0;

	if (at != NULL)
		for (at++; *at != '\0' && i + 1 < size; at++)
			buf[i++] = (char)tolower((unsigned char)*at);
	buf[i] = '\0';
}

/* qshape_add - count the pending recipients of one message */
static void
qshape_add(struct qshape *qs, const struct queue_msg *m)
{
	int b = qshape_bucket(qs->now_us, m->arrival_us);
	char dom[256];

	for (size_t i = 0; i < m->nrcpt && !qs->nomem; i++) {
		struct qshape_dom *d;

		if (m->rcpt[i].state != QUEUE_RCPT_PENDING)
			continue;
		qshape_dom_of(m->rcpt[i].addr, dom, sizeof(dom));
		if ((d = map_get(qs->doms, dom)) == NULL) {
			size_t len = strlen(dom) + 1;

			if ((d = calloc(1, sizeof(*d) + len)) == NULL) {
				qs->nomem = 1;
				return;
			}
			memcpy(d->name, dom, len);
			if (map_put(qs->doms, dom, d) < 0) {
				free(d);
				qs->nomem = 1;
				return;
			}
		}
		d->count++;
		d->ages[b]++;
		qs->total++;
		qs->ages[b]++;
	}
}

/* qshape_walk - queue_foreach: a message in the window */
static void
qshape_walk(void *arg, struct queue_msg *m)
{
	qshape_add(arg, m);
}

/* qshape_parked - queue_parked_walk: a message read from its file; stop when out of memory */
static int
qshape_parked(void *arg, const struct queue_msg *m)
{
	struct qshape *qs = arg;

	qs->parked_read++;
	qshape_add(qs, m);
	return qs->nomem;
}

/* qshape_collect - map_sweep: move every domain into the array (all removed) */
static int
qshape_collect(void *arg, void *val)
{
	struct qshape *qs = arg;

	if (qs->n < qs->cap)
		qs->v[qs->n++] = val;
	else
		free(val);
	return 1;
}

/* qshape_cmp - biggest first, then by name */
static int
qshape_cmp(const void *a, const void *b)
{
	const struct qshape_dom *x = *(const struct qshape_dom *const *)a;
	const struct qshape_dom *y = *(const struct qshape_dom *const *)b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* qshape_ages - a JSON array of the age columns */
static json_t *
qshape_ages(const uint64_t *ages)
{
	json_t *a = json_array();

	for (int i = 0; a != NULL && i < QSHAPE_NBUCKET; i++)
		if (json_array_append_new(a, json_integer((json_int_t)ages[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

/* qshape_json - the reply (NULL when out of memory); each part is hung on o first */
static json_t *
qshape_json(struct qshape *qs, size_t limit)
{
	json_t *o = json_object(), *buckets, *total, *doms;

	if (o == NULL)
		return NULL;
	if (jsonout_set(o, "now", json_integer((json_int_t)(qs->now_us / 1000000))) < 0 ||
	    jsonout_set(o, "buckets", buckets = json_array()) < 0 ||
	    jsonout_set(o, "total", total = json_object()) < 0 ||
	    jsonout_set(o, "domains", doms = json_array()) < 0 ||
	    jsonout_set(o, "ndomains", json_integer((json_int_t)qs->n)) < 0)
		goto fail;
	for (int i = 0; i < QSHAPE_NBUCKET - 1; i++)
		if (json_array_append_new(buckets, json_integer(qshape_minutes[i])) < 0)
			goto fail;
	if (qs->partial && (jsonout_set(o, "partial", json_true()) < 0 ||
	    jsonout_set(o, "note", json_sprintf("read %llu of the messages kept on disk "
	    "(at most %d): the counts leave the rest out", (unsigned long long)qs->parked_read,
	    HTTP_PARKED_READ)) < 0))
		goto fail;
	if (json_array_append_new(buckets, json_null()) < 0 ||
	    jsonout_set(total, "count", json_integer((json_int_t)qs->total)) < 0 ||
	    jsonout_set(total, "ages", qshape_ages(qs->ages)) < 0)
		goto fail;
	for (size_t i = 0; i < qs->n && i < limit; i++) {
		json_t *d = json_object();

		if (d == NULL || json_array_append_new(doms, d) < 0 ||
		    jsonout_set(d, "domain", jsonout_str(qs->v[i]->name)) < 0 ||
		    jsonout_set(d, "count", json_integer((json_int_t)qs->v[i]->count)) < 0 ||
		    jsonout_set(d, "ages", qshape_ages(qs->v[i]->ages)) < 0)
			goto fail;
	}
	return o;
fail:
	json_decref(o);
	return NULL;
}

/* http_api_qshape - GET /api/qshape[?limit=N] */
void
http_api_qshape(struct http *h, struct evhttp_request *req, const char *path,
    struct evkeyvalq *query)
{
	struct qshape qs;
	const char *ls = evhttp_find_header(query, "limit");
	long long limit = QSHAPE_DEF_LIMIT;
	json_t *j = NULL;

	(void)path;
	if (ls != NULL && util_strtonum(ls, 1, QSHAPE_MAX_LIMIT, &limit) < 0) {
		http_error(req, 400, "limit: want 1 to 1000");
		return;
	}
	memset(&qs, 0, sizeof(qs));
	qs.now_us = util_now_us();
	if ((qs.doms = map_new()) == NULL) {
		http_reply_json(req, 500, NULL);
		return;
	}
	queue_foreach(h->q, qshape_walk, &qs);
	if (!qs.nomem) {
		int more = 0;

		if (queue_parked_walk(h->q, 0, HTTP_PARKED_READ, qshape_parked, &qs, &more, NULL) < 0 ||
		    more)
			qs.partial = 1;
	}
	qs.cap = map_count(qs.doms);
	if (qs.cap > 0 && (qs.v = calloc(qs.cap, sizeof(*qs.v))) == NULL)
		qs.nomem = 1;
	map_sweep(qs.doms, qshape_collect, &qs);
	qs.doms = map_free(qs.doms);
	if (!qs.nomem) {
		qsort(qs.v, qs.n, sizeof(*qs.v), qshape_cmp);
		j = qshape_json(&qs, (size_t)limit);
	}
	for (size_t i = 0; i < qs.n; i++)
		free(qs.v[i]);
	free(qs.v);
	http_reply_json(req, 200, j);
}
