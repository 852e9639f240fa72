/*
 * http_qshape.c - GET /api/qshape: the queue by recipient domain and age,
 *                 as Postfix's qshape shows it
 *
 * Owns:     the per-domain counters of one request, and its pass over the
 *           index of parked messages (freed when it answers).
 * Lifetime: one request; with parked messages it answers after its pass,
 *           run a slice per loop turn (http_pass.c).
 * Errors:   out of memory answers 500; a bad "limit" 400; too many passes
 *           at once 503.
 * Context:  event-loop thread: one walk over the window in memory, then a
 *           pass over the index of parked messages in slices (while the
 *           index is being rebuilt: at most HTTP_PARKED_READ parked files,
 *           read with blocking reads, bounded).
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
 * first; "total" counts every domain. At most QSHAPE_MAX_DOMAINS domains
 * are told apart; the recipients of further ones count in "total" and in
 * "other" ({"count", "ages"}, only when there are such). Messages parked
 * on disk (outside the window) count from the index; while it is being
 * rebuilt after an unclean stop, at most HTTP_PARKED_READ of their files
 * are read, and when more are parked the reply adds "partial": true and a
 * "note" saying so, as a filtered /api/queue listing does.
 */
#include "http/http_int.h"
#include "lib/jsonout.h"
#include "lib/map.h"
#include "lib/util.h"
#include "queue/queue.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#define QSHAPE_NBUCKET   10
#define QSHAPE_DEF_LIMIT 20
#define QSHAPE_MAX_LIMIT 1000
#define QSHAPE_MAX_DOMAINS 100000   /* domains told apart; the rest count as "other" */

static const unsigned qshape_minutes[QSHAPE_NBUCKET - 1] = {
	5, 10, 20, 40, 80, 160, 320, 640, 1280
};

struct qshape_dom {
	uint64_t count;
	uint64_t ages[QSHAPE_NBUCKET];
	char     name[];
};

struct qshape {
	struct http *h;
	struct map *doms;
	struct qshape_dom **v;          /* collected for sorting */
	size_t   n, cap, limit;
	uint64_t total, ages[QSHAPE_NBUCKET];
	uint64_t other, other_ages[QSHAPE_NBUCKET];  /* beyond QSHAPE_MAX_DOMAINS */
	uint64_t now_us;
	uint64_t parked_read;           /* parked messages read from their files */
	uint64_t parked;                /* parked messages when the request came */
	int      partial;               /* parked messages were left unread */
	int      nomem;
	struct queue_pidx_scan *scan;   /* the pass over the index */
	struct http_idset window;       /* the window's ids: never counted twice */
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
		if ((d = map_get(qs->doms, dom)) == NULL && map_count(qs->doms) >= QSHAPE_MAX_DOMAINS) {
			qs->other++;
			qs->other_ages[b]++;
			qs->total++;
			qs->ages[b]++;
			continue;
		}
		if (d == NULL) {
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
	struct qshape *qs = arg;

	qshape_add(qs, m);
	if (!qs->nomem && http_idset_add(&qs->window, m->id) < 0)
		qs->nomem = 1;
}

/* qshape_pass - a parked message of the pass over the index; stop when out of memory */
static int
qshape_pass(void *arg, const struct queue_msg *m)
{
	struct qshape *qs = arg;

	if (!http_idset_has(&qs->window, m->id))
		qshape_add(qs, m);
	return qs->nomem;
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
	    jsonout_set(o, "note", json_sprintf("the index of the messages kept on disk is being "
	    "rebuilt (after an unclean stop): read %llu of %llu of them, the counts leave the rest "
	    "out; ask again when it is done", (unsigned long long)qs->parked_read,
	    (unsigned long long)qs->parked)) < 0))
		goto fail;
	if (qs->other > 0) {
		json_t *ot;

		if (jsonout_set(o, "other", ot = json_object()) < 0 ||
		    jsonout_set(ot, "count", json_integer((json_int_t)qs->other)) < 0 ||
		    jsonout_set(ot, "ages", qshape_ages(qs->other_ages)) < 0)
			goto fail;
	}
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

/* qshape_free - a request's state (NULL is fine) */
static void
qshape_free(struct qshape *qs)
{
	if (qs == NULL)
		return;
	qs->scan = http_pass_close(qs->h, qs->scan);
	qs->doms = map_free_all(qs->doms, free);  /* the domains not collected yet */
	for (size_t i = 0; i < qs->n; i++)
		free(qs->v[i]);
	free(qs->v);
	http_idset_free(&qs->window);
	free(qs);
}

/* qshape_answer - sort the domains and answer */
static void
qshape_answer(struct qshape *qs, struct evhttp_request *req)
{
	json_t *j = NULL;

	qs->cap = map_count(qs->doms);
	if (qs->cap > 0 && (qs->v = calloc(qs->cap, sizeof(*qs->v))) == NULL)
		qs->nomem = 1;
	map_sweep(qs->doms, qshape_collect, qs);
	qs->doms = map_free(qs->doms);
	if (!qs->nomem) {
		qsort(qs->v, qs->n, sizeof(*qs->v), qshape_cmp);
		j = qshape_json(qs, qs->limit);
	}
	http_reply_json(req, 200, j);
}

/* qshape_drop - struct http_pending's drop */
static void
qshape_drop(struct http_pending *p)
{
	qshape_free(p->job);
	p->job = NULL;
}

/* qshape_run - the next slice of the pass over the index; answer when it is over */
static void
qshape_run(struct http_pending *p)
{
	struct qshape *qs = p->job;
	struct evhttp_request *req = p->req;
	int rc = http_pass_slice(qs->scan, qshape_pass, qs);

	if (rc == 0 && !qs->nomem) {
		if (http_pending_again(p, 0) == 0)
			return;
		rc = -1;
	}
	p->job = NULL;
	http_pending_done(p);
	if (rc < 0 && !qs->nomem) {
		qshape_free(qs);
		http_error(req, 500, "the index of parked messages could not be read (see the log)");
		return;
	}
	qshape_answer(qs, req);
	qshape_free(qs);
}

/* http_api_qshape - GET /api/qshape[?limit=N] */
void
http_api_qshape(struct http *h, struct evhttp_request *req, const char *path,
    struct evkeyvalq *query)
{
	struct qshape *qs;
	struct queue_parked_info pk;
	const char *ls = evhttp_find_header(query, "limit");
	long long limit = QSHAPE_DEF_LIMIT;

	(void)path;
	if (ls != NULL && util_strtonum(ls, 1, QSHAPE_MAX_LIMIT, &limit) < 0) {
		http_error(req, 400, "limit: want 1 to 1000");
		return;
	}
	if ((qs = calloc(1, sizeof(*qs))) == NULL || (qs->doms = map_new()) == NULL) {
		qshape_free(qs);
		http_reply_json(req, 500, NULL);
		return;
	}
	qs->h = h;
	qs->limit = (size_t)limit;
	qs->now_us = util_now_us();
	queue_foreach(h->q, qshape_walk, qs);
	queue_parked(h->q, &pk);
	qs->parked = pk.messages;
	if (!qs->nomem && (pk.messages > 0 || queue_count(h->q) > pk.loaded)) {
		if (queue_pidx_ready(h->q)) {
			http_idset_sort(&qs->window);
			if ((qs->scan = http_pass_open(h)) == NULL) {
				int e = errno;

				qshape_free(qs);
				http_pass_refused(req, e);
				return;
			}
			if (http_pending_new(h, req, 0, qshape_run, qshape_drop, qs) == NULL) {
				qshape_free(qs);
				http_error(req, 503, "too many requests in progress");
			}
			return;
		} else {
			int more = 0;

			if (queue_parked_walk(h->q, 0, HTTP_PARKED_READ, qshape_parked, qs, &more,
			    NULL) < 0 || more)
				qs->partial = 1;
		}
	}
	qshape_answer(qs, req);
	qshape_free(qs);
}
