/*
 * http_api.c - the JSON API: /api/stats, /api/history, /api/queue,
 * /api/queue/ID and the queue actions, and /metrics
 *
 * Owns:     nothing beyond one request: the JSON it builds, the list of
 *           matching messages, the ids of a bulk action being carried out.
 * Lifetime: per request; a bulk action over more than HTTP_BATCH messages
 *           keeps its ids (copies) until it is done.
 * Errors:   bad parameters 400, unknown id 404, a held message asked to
 *           retry 409, memory 503; every error body is {"error": "..."}.
 * Context:  event-loop thread. A listing walks the window (the messages
 *           in memory, queue_foreach) once; parked messages (on disk only,
 *           SPEC §11.5) follow it in directory order: an unfiltered page
 *           reads only its own files, a filter at most HTTP_PARKED_READ
 *           (then "partial": true). /api/queue/ID reads the message's
 *           header section, at most HTTP_MAX_DETAIL_HEAD bytes; a parked
 *           message asked for by id is loaded.
 *
 * The actions are Postfix's postqueue -f / -i ID (retry), postsuper -h
 * (hold), -H (release) and -d (delete), carried out through the scheduler
 * (sched_ops_retry, sched_ops_hold, sched_ops_delete), which knows whether a delivery
 * is running for the message.
 */
#include "http/http.h"
#include "http/http_int.h"
#include "lib/log.h"
#include "lib/util.h"
#include "mail/config.h"
#include "mail/diskguard.h"
#include "metrics/metrics.h"
#include "queue/queue.h"
#include "sched/sched.h"

#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

/* --- snapshot ------------------------------------------------------------- */

/* http_snap_walk - queue_foreach callback: count states and recipients, find the oldest */
static void
http_snap_walk(void *arg, struct queue_msg *m)
{
	struct http_snap *s = arg;

	switch (queue_view_state(m)) {
	case QUEUE_VIEW_HELD:     s->n_held++; break;
	case QUEUE_VIEW_DEFERRED: s->n_deferred++; break;
	default:                  s->n_active++; break;
	}
	for (size_t i = 0; i < m->nrcpt; i++)
		if (m->rcpt[i].state == QUEUE_RCPT_PENDING)
			s->queue_rcpts++;
	if (s->oldest_arrival_us == 0 || (m->arrival_us != 0 && m->arrival_us < s->oldest_arrival_us))
		s->oldest_arrival_us = m->arrival_us;
}

/* http_snap_disk - free space of data_dir's file system (mail/diskguard.c, as smtpd reads it) */
static void
http_snap_disk(struct http *h, struct http_snap *s)
{
	const struct diskguard_info *d;

	if (h->disk == NULL || diskguard_measure(h->disk, 0, NULL) < 0)
		return;
	d = diskguard_get(h->disk);
	if (d->total_bytes == 0)
		return;
	s->disk_known = 1;
	s->disk_total_bytes = d->total_bytes;
	s->disk_free_bytes = d->free_bytes;
	s->disk_free_pct = d->free_pct;
}

/* http_api_snap_take - fill s from the counters, the queue (walked, or the recent walk reused) and the disk */
void
http_api_snap_take(struct http *h, struct http_snap *s)
{
	const struct metrics *m = h->m;
	double rates[HTTP_H_COUNTERS];
	uint64_t now;

	memset(s, 0, sizeof(*s));
	s->now_us = util_now_us();
	s->start_us = m->start_us;
	s->queue_messages = queue_count(h->q);
	s->queue_bytes = queue_bytes(h->q);
	now = util_mono_us();
	if (h->walk.valid && now - h->walk.at_us < HTTP_WALK_CACHE_US &&
	    h->walk.count == s->queue_messages && h->walk.bytes == s->queue_bytes &&
	    h->walk.gen == h->action_gen) {
		s->queue_rcpts = h->walk.rcpts;
		s->n_active = h->walk.n_active;
		s->n_deferred = h->walk.n_deferred;
		s->n_held = h->walk.n_held;
		s->oldest_arrival_us = h->walk.oldest_us;
	} else {
		queue_foreach(h->q, http_snap_walk, s);
		h->walk.valid = 1;
		h->walk.at_us = now;
		h->walk.count = s->queue_messages;
		h->walk.bytes = s->queue_bytes;
		h->walk.gen = h->action_gen;
		h->walk.rcpts = s->queue_rcpts;
		h->walk.n_active = s->n_active;
		h->walk.n_deferred = s->n_deferred;
		h->walk.n_held = s->n_held;
		h->walk.oldest_us = s->oldest_arrival_us;
	}
	{
		/* the window's walk, plus what the parked messages' stamps say */
		struct queue_parked_info pk;

		queue_parked(h->q, &pk);
		s->n_held += pk.held;
		s->n_deferred += pk.deferred;
		s->n_active += pk.messages - pk.held - pk.deferred;
		s->queue_rcpts += pk.rcpts;
		if (pk.oldest_arrival_us != 0 && (s->oldest_arrival_us == 0 ||
		    pk.oldest_arrival_us < s->oldest_arrival_us))
			s->oldest_arrival_us = pk.oldest_arrival_us;
	}
	s->sessions_active = m->sessions_active;
	s->sessions_total = m->sessions_total;
	s->tls_sessions = m->tls_sessions;
	s->dkim_signed = m->dkim_signed;
	s->auth_sessions = m->auth_sessions;
	s->auth_sessions_active = m->auth_sessions_active;
	s->auth_failures = m->auth_failures;
	s->accepted = m->accepted;
	s->accepted_bytes = m->accepted_bytes;
	s->rejected = m->rejected;
	s->delivered = m->delivered;
	s->deferred = m->deferred;
	s->bounced = m->bounced;
	s->latency_buckets = METRICS_LATENCY_BUCKETS;
	for (int i = 0; i < METRICS_LATENCY_BUCKETS && i < 16; i++)
		s->latency_bucket[i] = m->latency_bucket[i];
	s->latency_sum = m->latency_sum;
	s->latency_count = m->latency_count;
	http_snap_disk(h, s);
	/* The SMTP server's state decides 452s; our own reading may be fresher. */
	s->disk_state = m->disk_state;
	if (s->disk_known && http_stats_disk_state_of(s->disk_free_pct) > s->disk_state)
		s->disk_state = http_stats_disk_state_of(s->disk_free_pct);
	http_history_rates(&h->hist, s->now_us / 1000000, rates);
	s->rate_accepted = rates[HTTP_H_ACCEPTED];
	s->rate_delivered = rates[HTTP_H_DELIVERED];
	s->rate_deferred = rates[HTTP_H_DEFERRED];
	s->rate_bounced = rates[HTTP_H_BOUNCED];
	s->rate_rejected = rates[HTTP_H_REJECTED];
	s->hostname = h->cfg->hostname;
	s->ui_open = config_check_ui_is_open(h->cfg);
}

/* http_api_tick_sample - the history's sample: cumulative counters and the gauges now */
void
http_api_tick_sample(struct http *h)
{
	const struct metrics *m = h->m;
	uint64_t cum[HTTP_H_COUNTERS], g[HTTP_H_FIELDS - HTTP_H_COUNTERS];

	cum[HTTP_H_ACCEPTED] = m->accepted;
	cum[HTTP_H_DELIVERED] = m->delivered;
	cum[HTTP_H_DEFERRED] = m->deferred;
	cum[HTTP_H_BOUNCED] = m->bounced;
	cum[HTTP_H_REJECTED] = m->rejected;
	g[HTTP_H_SESSIONS - HTTP_H_COUNTERS] = m->sessions_active;
	g[HTTP_H_QUEUE - HTTP_H_COUNTERS] = queue_count(h->q);
	g[HTTP_H_QUEUE_KB - HTTP_H_COUNTERS] = (queue_bytes(h->q) + 1023) / 1024;
	http_history_tick(&h->hist, util_now_us() / 1000000, cum, g);
}

/* --- /api/stats, /api/history, /metrics ------------------------------------ */

/* http_api_stats - GET /api/stats */
void
http_api_stats(struct http *h, struct evhttp_request *req, const char *path,
    struct evkeyvalq *query)
{
	struct http_snap s;

	(void)path; (void)query;
	http_api_snap_take(h, &s);
	http_reply_json(req, 200, http_stats_json(&s));
}

/* http_api_history - GET /api/history?range=1h|24h */
void
http_api_history(struct http *h, struct evhttp_request *req, const char *path,
    struct evkeyvalq *query)
{
	const char *range = evhttp_find_header(query, "range");
	const struct http_ring *r = &h->hist.fine;
	json_t *j;

	(void)path;
	if (range != NULL && (strcmp(range, "24h") == 0 || strcmp(range, "day") == 0))
		r = &h->hist.coarse;
	else if (range != NULL && strcmp(range, "1h") != 0 && strcmp(range, "hour") != 0) {
		http_error(req, 400, "range: want 1h or 24h");
		return;
	}
	j = http_history_json(r);
	if (j != NULL && jsonout_set(j, "now",
	    json_integer((json_int_t)(util_now_us() / 1000000))) < 0) {
		json_decref(j);
		j = NULL;
	}
	http_reply_json(req, 200, j);
}

/* http_api_metrics - GET /metrics */
void
http_api_metrics(struct http *h, struct evhttp_request *req, const char *path,
    struct evkeyvalq *query)
{
	struct http_snap s;
	struct evbuffer *b = evbuffer_new();

	(void)path; (void)query;
	http_api_snap_take(h, &s);
	if (b == NULL || http_metrics_format(&s, metrics_latency_bounds, b) < 0 ||
	    http_dests_metrics(h, b) < 0) {
		if (b != NULL)
			evbuffer_free(b);
		http_error(req, 503, "out of memory");
		return;
	}
	http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", b);
	evbuffer_free(b);
}

/* --- message JSON ----------------------------------------------------------- */

/*
 * http_msg_headers - the header section of m, read through the queue reader
 * (at most HTTP_MAX_DETAIL_HEAD bytes), into o (see http_headers_json()).
 */
static int
http_msg_headers(struct http *h, const struct queue_msg *m, json_t *o)
{
	struct queue_reader *r;
	char *buf;
	size_t len = 0;
	int rc;

	if ((r = queue_reader_open(h->q, m)) == NULL) {
		if (jsonout_set(o, "headers", json_array()) < 0)
			return -1;
		return jsonout_set(o, "headers_error", json_string("cannot read the message file"));
	}
	if ((buf = malloc(HTTP_MAX_DETAIL_HEAD)) == NULL) {
		queue_reader_close(r);
		return -1;
	}
	while (len < HTTP_MAX_DETAIL_HEAD) {
		ssize_t n = queue_reader_read(r, buf + len, HTTP_MAX_DETAIL_HEAD - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		if (http_headers_end(buf, len) > 0)
			break;
	}
	queue_reader_close(r);
	rc = http_headers_json(buf, len, len >= HTTP_MAX_DETAIL_HEAD, o);
	free(buf);
	return rc;
}

/*
 * http_msg_history - "history": every recipient's attempts as the message
 * file records them (the first and the last 20 each, src/queue/queue_hist.c);
 * an empty array when the file cannot be read (it may just have gone)
 */
static int
http_msg_history(struct http *h, const struct queue_msg *m, json_t *o)
{
	uint64_t omitted = 0;
	json_t *arr = NULL;
	int fd;

	if ((fd = queue_hist_open(h->q, m->id)) >= 0) {
		arr = queue_hist_json(fd, m, &omitted);
		close(fd);
	}
	if (arr == NULL && (arr = json_array()) == NULL)
		return -1;
	if (jsonout_set(o, "history", arr) < 0 ||
	    jsonout_set(o, "history_omitted", json_integer((json_int_t)omitted)) < 0)
		return -1;
	return 0;
}

/* http_msg_full - the body of /api/queue/ID: queue_view_detail(), the headers, the history */
static json_t *
http_msg_full(struct http *h, const struct queue_msg *m)
{
	json_t *o = queue_view_detail(m, util_now_us());

	if (o == NULL)
		return NULL;
	if (http_msg_headers(h, m, o) < 0 || http_msg_history(h, m, o) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* --- the actions ------------------------------------------------------------- */

enum http_action { HTTP_ACT_RETRY, HTTP_ACT_HOLD, HTTP_ACT_RELEASE, HTTP_ACT_DELETE };

static const char *const http_action_names[] = { "retry", "hold", "release", "delete" };

/* http_action_of - an action's name ("flush" is "retry") to its enum; -1 if unknown */
static int
http_action_of(const char *name, enum http_action *out)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(name, http_action_names[i]) == 0) {
			*out = (enum http_action)i;
			return 0;
		}
	if (strcmp(name, "flush") == 0) {
		*out = HTTP_ACT_RETRY;
		return 0;
	}
	return -1;
}

/*
 * http_act - one action on one message: 1 changed, 0 nothing to do, -1 failed.
 * The scheduler's calls are used (it may have a transaction running for the
 * message); the queue's directly only before the scheduler exists.
 * A deleted message may already be freed when this returns.
 */
static int
http_act(struct http *h, struct queue_msg *m, enum http_action a, const char *peer)
{
	char id[QUEUE_ID_SIZE];
	int rc;

	util_strlcpy(id, m->id, sizeof(id));
	h->action_gen++;
	switch (a) {
	case HTTP_ACT_RETRY:
		if (m->held)
			return 0;
		if (h->sched != NULL)
			sched_ops_retry(h->sched, m);
		return 1;
	case HTTP_ACT_HOLD:
	case HTTP_ACT_RELEASE:
		if (m->held == (a == HTTP_ACT_HOLD))
			return 0;
		rc = h->sched != NULL ? sched_ops_hold(h->sched, m, a == HTTP_ACT_HOLD) :
		    queue_set_held(h->q, m, a == HTTP_ACT_HOLD);
		if (rc < 0)
			return -1;
		log_info("%s: %s (web UI/API, %s)", id,
		    a == HTTP_ACT_HOLD ? "placed on hold" : "released from hold", peer);
		return 1;
	case HTTP_ACT_DELETE:
		/* sched_ops_delete() writes "removed" to the mail log, as postsuper -d does. */
		rc = h->sched != NULL ? sched_ops_delete(h->sched, m) : queue_remove(h->q, m);
		if (rc < 0)
			return -1;
		log_info("%s: removed (web UI/API, %s)", id, peer);
		return 1;
	}
	return -1;
}

/* http_id_ok - queue ids are QUEUE_ID_LEN hex characters; normalize to upper case */
static int
http_id_norm(const char *in, size_t len, char out[QUEUE_ID_SIZE])
{
	if (len != QUEUE_ID_LEN)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (!isxdigit((unsigned char)in[i]))
			return -1;
		out[i] = (char)toupper((unsigned char)in[i]);
	}
	out[len] = '\0';
	return 0;
}

/* /api/queue/ID, /api/queue/ID/ACTION */
void
http_api_message(struct http *h, struct evhttp_request *req, const char *path,
    struct evkeyvalq *query)
{
	const char *p = path + strlen("/api/queue/");
	const char *slash = strchr(p, '/');
	size_t idlen = slash != NULL ? (size_t)(slash - p) : strlen(p);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	char id[QUEUE_ID_SIZE], peer[64];
	struct queue_msg *m;
	enum http_action a;
	int rc;

	(void)query;
	if (http_id_norm(p, idlen, id) < 0) {
		http_error(req, 404, "no such message");
		return;
	}
	if (slash == NULL || slash[1] == '\0') {
		if (cmd == EVHTTP_REQ_DELETE)
			a = HTTP_ACT_DELETE;
		else if (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD) {
			if ((m = queue_lookup(h->q, id)) == NULL) {
				http_error(req, 404, "no such message");
				return;
			}
			http_reply_json(req, 200, http_msg_full(h, m));
			return;
		} else {
			evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
			    "GET, HEAD, DELETE");
			http_error(req, 405, "method not allowed");
			return;
		}
	} else if (http_action_of(slash + 1, &a) < 0) {
		http_error(req, 404, "unknown action");
		return;
	} else if (cmd != EVHTTP_REQ_POST) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
		http_error(req, 405, "method not allowed");
		return;
	}
	if ((m = queue_lookup(h->q, id)) == NULL) {
		http_error(req, 404, "no such message");
		return;
	}
	if (a == HTTP_ACT_RETRY && m->held) {
		http_error(req, 409, "the message is on hold: release it first");
		return;
	}
	http_peer(req, peer, sizeof(peer), "?");
	if ((rc = http_act(h, m, a, peer)) < 0) {
		http_error(req, 500, "the queue could not be updated (see the log)");
		return;
	}
	http_reply_json(req, 200, json_pack("{s:s,s:s,s:b}", "id", id, "action",
	    http_action_names[a], "changed", rc > 0));
}

/* --- /api/queue --------------------------------------------------------------- */

struct http_walk {
	const struct http_filter *f;
	struct queue_msg **v;
	size_t n, cap;
	int oom;
	uint64_t counts[4];            /* by enum queue_view_state, over the whole queue */
};

/* http_walk_cb - queue_foreach callback of a listing: count by state, keep the matches */
static void
http_walk_cb(void *arg, struct queue_msg *m)
{
	struct http_walk *w = arg;

	w->counts[queue_view_state(m)]++;
	if (w->oom || !http_filter_match(w->f, m))
		return;
	if (w->n == w->cap) {
		size_t ncap = w->cap ? w->cap * 2 : 256;
		struct queue_msg **nv = realloc(w->v, ncap * sizeof(*nv));
		if (nv == NULL) {
			w->oom = 1;
			return;
		}
		w->v = nv;
		w->cap = ncap;
	}
	w->v[w->n++] = m;
}

/* A listing's walk over parked messages: rows for positions [from, to). */
struct http_parked {
	const struct http_filter *f;
	json_t *items;
	uint64_t now;
	size_t pos, from, to;          /* pos: the next match's position in the listing */
	uint64_t counts[4];
	int oom;
	char (*ids)[QUEUE_ID_SIZE];    /* bulk actions: the matching ids */
	size_t nids, capids;
};

/* http_parked_cb - queue_parked_walk callback: filter, then a row when in the page */
static int
http_parked_cb(void *arg, const struct queue_msg *m)
{
	struct http_parked *pw = arg;

	pw->counts[queue_view_state(m)]++;
	if (pw->f->any && !http_filter_match(pw->f, m))
		return 0;
	if (pw->items != NULL && pw->pos >= pw->from && pw->pos < pw->to &&
	    json_array_append_new(pw->items, queue_view_summary(m, pw->now)) < 0)
		pw->oom = 1;
	if (pw->items == NULL) {
		if (pw->nids == pw->capids) {
			size_t ncap = pw->capids ? pw->capids * 2 : 64;
			char (*nv)[QUEUE_ID_SIZE] = realloc(pw->ids, ncap * sizeof(*nv));

			if (nv == NULL) {
				pw->oom = 1;
				return 1;
			}
			pw->ids = nv;
			pw->capids = ncap;
		}
		util_strlcpy(pw->ids[pw->nids++], m->id, QUEUE_ID_SIZE);
	}
	pw->pos++;
	return pw->oom;
}

/* http_query_filter - apply every filter key in the query; the others go to other */
static int
http_query_filter(struct evkeyvalq *query, struct http_filter *f,
    const char *const *known, char *err, size_t errlen)
{
	const struct evkeyval *kv;

	TAILQ_FOREACH(kv, query, next) {
		int rc = http_filter_set(f, kv->key, kv->value, err, errlen);
		if (rc < 0)
			return -1;
		if (rc == 0)
			continue;
		for (size_t i = 0; known[i] != NULL; i++)
			if (strcmp(kv->key, known[i]) == 0)
				goto next;
		util_bsnprintf(err, errlen, "unknown parameter '%.40s'", kv->key);
		return -1;
next:		;
	}
	return 0;
}

/* http_query_num - an optional numeric parameter in [min, max]: 1 given, 0 absent, -1 bad */
static int
http_query_num(struct evkeyvalq *query, const char *key, long long min, long long max,
    long long *out, char *err, size_t errlen)
{
	const char *v = evhttp_find_header(query, key);

	if (v == NULL || v[0] == '\0')
		return 0;
	if (util_strtonum(v, min, max, out) < 0) {
		util_bsnprintf(err, errlen, "%s: want a number from %lld to %lld", key, min, max);
		return -1;
	}
	return 1;
}

/* http_api_queue - GET /api/queue: one walk, the filter, one page of rows */
void
http_api_queue(struct http *h, struct evhttp_request *req, const char *path,
    struct evkeyvalq *query)
{
	static const char *const known[] = {
		"page", "per_page", "offset", "limit", "order", "cursor", NULL,
	};
	struct http_filter f;
	struct http_walk w;
	char err[256];
	long long page = 1, per = HTTP_DEF_PER_PAGE, off = -1, lim = -1, cursor = 0;
	long pos = 0;
	const char *order = evhttp_find_header(query, "order");
	int desc = 0, have_page, partial = 0;
	uint64_t now = util_now_us();
	json_t *o = NULL, *items, *counts;
	struct queue_parked_info pk;
	struct http_parked pw;
	size_t total;

	(void)path;
	http_filter_init(&f, now);
	memset(&w, 0, sizeof(w));
	memset(&pw, 0, sizeof(pw));
	w.f = &f;
	if (http_query_filter(query, &f, known, err, sizeof(err)) < 0 ||
	    (have_page = http_query_num(query, "page", 1, 1000000000, &page, err, sizeof(err))) < 0 ||
	    http_query_num(query, "per_page", 1, HTTP_MAX_PER_PAGE, &per, err, sizeof(err)) < 0 ||
	    http_query_num(query, "offset", 0, 1000000000, &off, err, sizeof(err)) < 0 ||
	    http_query_num(query, "limit", 1, HTTP_MAX_PER_PAGE, &lim, err, sizeof(err)) < 0 ||
	    http_query_num(query, "cursor", 1, LONG_MAX, &cursor, err, sizeof(err)) < 0) {
		http_error(req, 400, err);
		return;
	}
	if (order != NULL && strcmp(order, "desc") == 0)
		desc = 1;
	else if (order != NULL && order[0] != '\0' && strcmp(order, "asc") != 0) {
		http_error(req, 400, "order: want asc or desc");
		return;
	}
	if (lim > 0)
		per = lim;
	if (off < 0)
		off = (page - 1) * per;
	else
		page = off / per + 1;

	/* One block for every message: no regrowth during the walk. */
	w.cap = (size_t)queue_count(h->q) + 1;
	if ((w.v = malloc(w.cap * sizeof(*w.v))) == NULL) {
		http_error(req, 503, "out of memory");
		return;
	}
	queue_foreach(h->q, http_walk_cb, &w);
	if (w.oom) {
		free(w.v);
		http_error(req, 503, "out of memory");
		return;
	}
	if ((o = json_object()) == NULL || (items = json_array()) == NULL ||
	    jsonout_set(o, "items", items) < 0)
		goto oom;
	for (size_t i = (size_t)off; cursor == 0 && i < w.n && i < (size_t)(off + per); i++) {
		const struct queue_msg *m = desc ? w.v[w.n - 1 - i] : w.v[i];
		if (json_array_append_new(items, queue_view_summary(m, now)) < 0)
			goto oom;
	}
	/*
	 * Parked messages (on disk only) follow the window, in directory order:
	 * without a filter the page's files alone are read; a filter reads at
	 * most HTTP_PARKED_READ files and says when it stopped short.
	 */
	queue_parked(h->q, &pk);
	pw.f = &f;
	pw.items = items;
	pw.now = now;
	pw.pos = w.n;
	pw.from = (size_t)off;
	pw.to = (size_t)(off + per);
	total = w.n;
	if (pk.messages > 0 || queue_count(h->q) > pk.loaded) {
		int more = 0, rc;

		if (!f.any) {
			size_t skip = (size_t)off > w.n ? (size_t)off - w.n : 0;
			size_t want = (size_t)(off + per) > w.n + skip ?
			    (size_t)(off + per) - (w.n + skip) : 0;

			if (cursor > 0) {
				/* a cursor: the next parked rows, where the last page stopped */
				pos = (long)cursor;
				skip = 0;
				want = (size_t)per;
				pw.from = 0;
				pw.to = (size_t)per;
				pw.pos = 0;
			} else
				pw.pos = w.n + skip;
			rc = want > 0 ? queue_parked_walk(h->q, skip, want, http_parked_cb, &pw, &more,
			    &pos) : 0;
			if (!more)
				pos = 0;
			total = w.n + pk.messages;
			for (int st = 1; st < 4; st++)
				w.counts[st] += st == QUEUE_VIEW_HELD ? pk.held :
				    st == QUEUE_VIEW_DEFERRED ? pk.deferred :
				    pk.messages - pk.held - pk.deferred;
		} else {
			rc = queue_parked_walk(h->q, 0, HTTP_PARKED_READ, http_parked_cb, &pw, &more,
			    NULL);
			total = pw.pos;
			partial = more;
			for (int st = 1; st < 4; st++)
				w.counts[st] += pw.counts[st];
		}
		if (rc < 0 || pw.oom)
			goto oom;
	}
	if ((counts = json_pack("{s:I,s:I,s:I,s:I}",
	    "all", (json_int_t)(w.counts[QUEUE_VIEW_ACTIVE] + w.counts[QUEUE_VIEW_DEFERRED] +
	    w.counts[QUEUE_VIEW_HELD]),
	    "active", (json_int_t)w.counts[QUEUE_VIEW_ACTIVE],
	    "deferred", (json_int_t)w.counts[QUEUE_VIEW_DEFERRED],
	    "held", (json_int_t)w.counts[QUEUE_VIEW_HELD])) == NULL ||
	    jsonout_set(o, "counts", counts) < 0 ||
	    jsonout_set(o, "total", json_integer((json_int_t)total)) < 0 ||
	    jsonout_set(o, "offset", json_integer(off)) < 0 ||
	    jsonout_set(o, "limit", json_integer(per)) < 0 ||
	    jsonout_set(o, "page", json_integer(page)) < 0 ||
	    jsonout_set(o, "per_page", json_integer(per)) < 0 ||
	    jsonout_set(o, "pages", json_integer((json_int_t)((total + (size_t)per - 1) / (size_t)per))) < 0 ||
	    jsonout_set(o, "order", json_string(desc ? "desc" : "asc")) < 0 ||
	    jsonout_set(o, "now", json_integer((json_int_t)(now / 1000000))) < 0)
		goto oom;
	if (pos > 0 && jsonout_set(o, "cursor", json_integer((json_int_t)pos)) < 0)
		goto oom;
	if (partial && (jsonout_set(o, "partial", json_true()) < 0 ||
	    jsonout_set(o, "note", json_sprintf("the search read %d of %llu messages kept on disk; "
	    "narrow it to see the rest", HTTP_PARKED_READ, (unsigned long long)pk.messages)) < 0))
		goto oom;
	free(w.v);
	http_reply_json(req, 200, o);
	return;
oom:
	free(w.v);
	json_decref(o);
	http_error(req, 503, "out of memory");
}

/* --- bulk actions: POST /api/queue/{retry,flush,hold,release,delete} ---------- */

struct http_bulk {
	enum http_action a;
	char (*ids)[QUEUE_ID_SIZE];
	size_t n, i, changed, failed;
	char peer[64];
};

/* http_bulk_result - the answer of a bulk action */
static json_t *
http_bulk_result(const struct http_bulk *b)
{
	return json_pack("{s:s,s:I,s:I,s:I}", "action", http_action_names[b->a],
	    "matched", (json_int_t)b->n, "changed", (json_int_t)b->changed,
	    "failed", (json_int_t)b->failed);
}

/* http_bulk_step - up to HTTP_BATCH messages; 1 when all are done */
static int
http_bulk_step(struct http *h, struct http_bulk *b)
{
	size_t stop = b->i + HTTP_BATCH;

	for (; b->i < b->n && b->i < stop; b->i++) {
		struct queue_msg *m = queue_lookup(h->q, b->ids[b->i]);
		int rc;
		if (m == NULL)
			continue;                /* gone meanwhile: delivered or removed */
		if ((rc = http_act(h, m, b->a, b->peer)) < 0)
			b->failed++;
		else
			b->changed += (size_t)rc;
	}
	return b->i >= b->n;
}

/* http_bulk_free - free a bulk action's state (NULL is fine) */
static void
http_bulk_free(struct http_bulk *b)
{
	if (b != NULL)
		free(b->ids);
	free(b);
}

/* http_bulk_drop - struct http_pending's drop: free the bulk action it carries */
static void
http_bulk_drop(struct http_pending *p)
{
	http_bulk_free(p->job);
	p->job = NULL;
}

/* http_bulk_run - the next slice of a bulk action; answer when all are done */
static void
http_bulk_run(struct http_pending *p)
{
	struct http *h = p->h;
	struct http_bulk *b = p->job;
	struct evhttp_request *req = p->req;

	if (!http_bulk_step(h, b)) {
		if (http_pending_again(p, 0) == 0)
			return;
		b->failed += b->n - b->i;    /* cannot continue: report the rest */
	}
	log_info("web UI (%s): %s: %zu matched, %zu changed", b->peer,
	    http_action_names[b->a], b->n, b->changed);
	json_t *res = http_bulk_result(b);
	http_pending_done(p);
	http_reply_json(req, 200, res);
}

/*
 * http_body_params - a JSON object body's string, number and boolean members
 * as extra query parameters ({"state": "deferred", "all": true}); an "ids"
 * array is returned in *ids (borrowed from *doc). Form bodies are parsed as
 * a query string.
 */
static int
http_body_params(struct evhttp_request *req, struct evkeyvalq *query, json_t **doc,
    json_t **ids, char *err, size_t errlen)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
	const unsigned char *body;
	json_error_t jerr;
	const char *k;
	json_t *v;

	*doc = NULL;
	*ids = NULL;
	if (len == 0)
		return 0;
	if ((body = evbuffer_pullup(in, (ev_ssize_t)len)) == NULL) {
		util_bsnprintf(err, errlen, "out of memory");
		return -1;
	}
	if (ct != NULL && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0) {
		char *s = malloc(len + 1);
		int rc;
		if (s == NULL) {
			util_bsnprintf(err, errlen, "out of memory");
			return -1;
		}
		memcpy(s, body, len);
		s[len] = '\0';
		rc = evhttp_parse_query_str(s, query);
		free(s);
		if (rc < 0)
			util_bsnprintf(err, errlen, "malformed form body");
		return rc;
	}
	if ((*doc = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL ||
	    !json_is_object(*doc)) {
		util_bsnprintf(err, errlen, "the body must be a JSON object");
		return -1;
	}
	json_object_foreach(*doc, k, v) {
		char num[32];
		if (strcmp(k, "ids") == 0) {
			if (!json_is_array(v)) {
				util_bsnprintf(err, errlen, "ids: want an array of queue ids");
				return -1;
			}
			*ids = v;
			continue;
		}
		if (json_is_string(v))
			evhttp_add_header(query, k, json_string_value(v));
		else if (json_is_integer(v) && util_bsnprintf(num, sizeof(num), "%lld",
		    (long long)json_integer_value(v)) >= 0)
			evhttp_add_header(query, k, num);
		else if (json_is_boolean(v))
			evhttp_add_header(query, k, json_is_true(v) ? "1" : "0");
		else if (!json_is_null(v)) {
			util_bsnprintf(err, errlen, "%.40s: want a string, number or boolean", k);
			return -1;
		}
	}
	return 0;
}

/* http_api_bulk - POST /api/queue/{retry,flush,hold,release,delete} over a filter, ids or all */
void
http_api_bulk(struct http *h, struct evhttp_request *req, const char *path,
    struct evkeyvalq *query)
{
	static const char *const known[] = { "all", NULL };
	struct http_filter f;
	struct http_walk w;
	struct http_bulk *b = NULL;
	json_t *doc = NULL, *ids = NULL;
	const char *all;
	char err[256];
	enum http_action a;

	memset(&w, 0, sizeof(w));
	if (http_action_of(path + strlen("/api/queue/"), &a) < 0) {
		http_error(req, 404, "unknown action");
		return;
	}
	http_filter_init(&f, util_now_us());
	if (http_body_params(req, query, &doc, &ids, err, sizeof(err)) < 0 ||
	    http_query_filter(query, &f, known, err, sizeof(err)) < 0) {
		json_decref(doc);
		http_error(req, 400, err);
		return;
	}
	all = evhttp_find_header(query, "all");
	if (all != NULL && strcmp(all, "1") != 0 && strcmp(all, "true") != 0 &&
	    strcmp(all, "yes") != 0)
		all = NULL;
	if (ids == NULL && !f.any && all == NULL && a != HTTP_ACT_RETRY) {
		json_decref(doc);
		http_error(req, 400, "give a filter, ids, or all=1 to act on every message");
		return;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL)
		goto oom;
	b->a = a;
	http_peer(req, b->peer, sizeof(b->peer), "?");
	if (ids != NULL) {
		size_t n = json_array_size(ids);
		if (n > 0 && (b->ids = calloc(n, sizeof(*b->ids))) == NULL)
			goto oom;
		for (size_t i = 0; i < n; i++) {
			const char *s = json_string_value(json_array_get(ids, i));
			if (s == NULL || http_id_norm(s, strlen(s), b->ids[b->n]) < 0)
				continue;            /* not an id: it matches nothing */
			b->n++;
		}
	} else if (a == HTTP_ACT_RETRY && !f.any) {
		/* postqueue -f: everything deferred, now. */
		http_bulk_free(b);
		json_decref(doc);
		if (h->sched != NULL)
			sched_ops_flush(h->sched);
		log_info("web UI: flush: retry every deferred message now");
		http_reply_json(req, 200, json_pack("{s:s,s:b}", "action", "retry", "all", 1));
		return;
	} else {
		struct http_parked pw;
		int more = 0;

		w.f = &f;
		queue_foreach(h->q, http_walk_cb, &w);
		if (w.oom)
			goto oom;
		/* parked messages too, as far as HTTP_PARKED_READ files go (they are loaded to act) */
		memset(&pw, 0, sizeof(pw));
		pw.f = &f;
		if (queue_parked_walk(h->q, 0, HTTP_PARKED_READ, http_parked_cb, &pw, &more, NULL) < 0 ||
		    pw.oom) {
			free(pw.ids);
			goto oom;
		}
		if (more)
			log_warnx("web UI: %s: acting on the first %zu matching message(s) kept on "
			    "disk only (%d read)", http_action_names[a], pw.nids, HTTP_PARKED_READ);
		if (w.n + pw.nids > 0 && (b->ids = calloc(w.n + pw.nids, sizeof(*b->ids))) == NULL) {
			free(pw.ids);
			goto oom;
		}
		/* Copy the ids: messages may go away between slices. */
		for (size_t i = 0; i < w.n; i++)
			util_strlcpy(b->ids[i], w.v[i]->id, QUEUE_ID_SIZE);
		for (size_t i = 0; i < pw.nids; i++)
			util_strlcpy(b->ids[w.n + i], pw.ids[i], QUEUE_ID_SIZE);
		b->n = w.n + pw.nids;
		free(pw.ids);
		free(w.v);
		w.v = NULL;
	}
	json_decref(doc);
	doc = NULL;
	if (b->n <= HTTP_BATCH) {
		http_bulk_step(h, b);
		log_info("web UI (%s): %s: %zu matched, %zu changed", b->peer,
		    http_action_names[b->a], b->n, b->changed);
		http_reply_json(req, 200, http_bulk_result(b));
		http_bulk_free(b);
		return;
	}
	/* Many: a slice per loop turn so SMTP sessions keep being served. */
	if (http_pending_new(h, req, 0, http_bulk_run, http_bulk_drop, b) == NULL)
		goto oom;
	return;
oom:
	free(w.v);
	http_bulk_free(b);
	json_decref(doc);
	http_error(req, 503, "out of memory or too many requests in progress");
}
