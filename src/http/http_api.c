/*
 * http_api.c - the JSON API: /api/stats, /api/history, /api/queue,
 * /api/queue/ID and the queue actions, and /metrics
 *
 * Owns:     nothing beyond one request: the JSON it builds, the window's
 *           matching messages, the ids of a bulk action being carried
 *           out, a filtered view's pass over the index of parked messages.
 * Lifetime: per request; a filtered listing or a bulk action that runs
 *           over several loop turns keeps its state (copies of the filter
 *           and of ids, at most a page or a step of them) until it answers.
 * Errors:   bad parameters 400, unknown id 404, a held message asked to
 *           retry 409, memory or too many passes at once 503; every error
 *           body is {"error": "..."}.
 * Context:  event-loop thread. A listing walks the window (the messages
 *           in memory, queue_foreach) once; parked messages (on disk only,
 *           SPEC §11.5) follow it: an unfiltered page reads only its own
 *           files, in directory order; a filter passes over the index of
 *           parked messages (queue_pidx_*, http_pass.c) in slices, one per
 *           loop turn, keeping counters and the page's ids only, then reads
 *           the page's files. While the index is being rebuilt after an
 *           unclean stop, a filter reads at most HTTP_PARKED_READ files
 *           instead and says "partial": true. /api/queue/ID reads the
 *           message's header section, at most HTTP_MAX_DETAIL_HEAD bytes; a
 *           parked message asked for by id is loaded.
 *
 * The actions are Postfix's postqueue -f / -i ID (retry), postsuper -h
 * (hold), -H (release) and -d (delete), carried out through the scheduler
 * (sched_ops_retry, sched_ops_hold, sched_ops_delete), which knows whether a delivery
 * is running for the message. A bulk action's parked matches must not fill
 * the window: hold and release stamp their files without keeping them
 * loaded (queue_parked_set_held()), a delete frees what it loads at once,
 * and a retry loads one only when the window has room (queue_parked_room()).
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
#include <errno.h>
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
	uint64_t counts[4];            /* by enum queue_view_state, over the window */
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

/* http_walk_ids - the ids of the window's matches, sorted; -1 out of memory */
static int
http_walk_ids(const struct http_walk *w, struct http_idset *s)
{
	for (size_t i = 0; i < w->n; i++)
		if (http_idset_add(s, w->v[i]->id) < 0)
			return -1;
	http_idset_sort(s);
	return 0;
}

/*
 * A walk over parked files read one by one (queue_parked_walk()): the
 * pages of an unfiltered listing, and filtered views while the index is
 * being rebuilt. Rows for positions [from, to).
 */
struct http_parked {
	const struct http_filter *f;
	json_t *items;
	uint64_t now;
	size_t pos, from, to;          /* pos: the next match's position in the listing */
	size_t read;                   /* parked files read */
	int oom;
	char (*ids)[QUEUE_ID_SIZE];    /* bulk actions: the matching ids */
	size_t nids, capids;
};

/* http_parked_cb - queue_parked_walk callback: filter, then a row when in the page */
static int
http_parked_cb(void *arg, const struct queue_msg *m)
{
	struct http_parked *pw = arg;

	pw->read++;
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

/* http_rebuild_note - the "note" of a filtered view while the index is rebuilt */
static json_t *
http_rebuild_note(size_t read, uint64_t parked)
{
	return json_sprintf("the index of the messages kept on disk is being rebuilt (after an "
	    "unclean stop): this read %zu of %llu of them; ask again when it is done, or narrow "
	    "the search", read, (unsigned long long)parked);
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

/* What a listing's answer says besides its rows. */
struct http_page {
	long long off, per, page;
	int desc;
	uint64_t now;
	uint64_t counts[4];            /* the whole queue by state: window plus parked stamps */
	size_t total;                  /* the matches */
};

/* http_page_answer - the counters and the paging, added to o; -1 out of memory */
static int
http_page_answer(json_t *o, const struct http_page *pg)
{
	const uint64_t *c = pg->counts;
	json_t *counts;
	size_t per = (size_t)pg->per;

	if ((counts = json_pack("{s:I,s:I,s:I,s:I}",
	    "all", (json_int_t)(c[QUEUE_VIEW_ACTIVE] + c[QUEUE_VIEW_DEFERRED] + c[QUEUE_VIEW_HELD]),
	    "active", (json_int_t)c[QUEUE_VIEW_ACTIVE],
	    "deferred", (json_int_t)c[QUEUE_VIEW_DEFERRED],
	    "held", (json_int_t)c[QUEUE_VIEW_HELD])) == NULL ||
	    jsonout_set(o, "counts", counts) < 0 ||
	    jsonout_set(o, "total", json_integer((json_int_t)pg->total)) < 0 ||
	    jsonout_set(o, "offset", json_integer(pg->off)) < 0 ||
	    jsonout_set(o, "limit", json_integer(pg->per)) < 0 ||
	    jsonout_set(o, "page", json_integer(pg->page)) < 0 ||
	    jsonout_set(o, "per_page", json_integer(pg->per)) < 0 ||
	    jsonout_set(o, "pages", json_integer((json_int_t)((pg->total + per - 1) / per))) < 0 ||
	    jsonout_set(o, "order", json_string(pg->desc ? "desc" : "asc")) < 0 ||
	    jsonout_set(o, "now", json_integer((json_int_t)(pg->now / 1000000))) < 0)
		return -1;
	return 0;
}

/*
 * A filtered listing waiting on its pass over the index of parked
 * messages: the window's rows are in the reply already; the pass counts
 * the parked matches and keeps the ids of those on the page (at most
 * per_page), whose files are read when it is over.
 */
struct http_list {
	struct http *h;
	struct http_filter f;
	char *fstore;                  /* f's strings */
	struct queue_pidx_scan *scan;
	struct http_idset window;      /* the window's matches: never counted twice */
	struct http_idset rows;        /* the page's parked rows, in order */
	json_t *o, *items;
	struct http_page pg;
	size_t pos, from, to;          /* pos: the next parked match's position */
	int oom;
};

/* http_list_free - a listing's state (NULL is fine) */
static void
http_list_free(struct http_list *l)
{
	if (l == NULL)
		return;
	l->scan = http_pass_close(l->h, l->scan);
	http_idset_free(&l->window);
	http_idset_free(&l->rows);
	json_decref(l->o);
	free(l->fstore);
	free(l);
}

/* http_list_drop - struct http_pending's drop */
static void
http_list_drop(struct http_pending *p)
{
	http_list_free(p->job);
	p->job = NULL;
}

/* http_list_cb - a parked message of the pass: counted when it matches, its id kept when on the page */
static int
http_list_cb(void *arg, const struct queue_msg *m)
{
	struct http_list *l = arg;

	if (!http_filter_match(&l->f, m) || http_idset_has(&l->window, m->id))
		return 0;
	if (l->pos >= l->from && l->pos < l->to && http_idset_add(&l->rows, m->id) < 0) {
		l->oom = 1;
		return 1;
	}
	l->pos++;
	return 0;
}

/* http_list_row - queue_parked_read callback: the row of one parked message */
static int
http_list_row(void *arg, const struct queue_msg *m)
{
	struct http_list *l = arg;

	if (json_array_append_new(l->items, queue_view_summary(m, l->pg.now)) < 0)
		l->oom = 1;
	return 0;
}

/*
 * http_list_rows - the page's parked rows, each read whole from its file; one
 * loaded meanwhile is shown from memory, one gone meanwhile is left out
 */
static void
http_list_rows(struct http_list *l)
{
	struct queue *q = l->h->q;

	for (size_t i = 0; i < l->rows.n && !l->oom; i++) {
		struct queue_msg *m;

		if (queue_parked_read(q, l->rows.v[i], http_list_row, l) == 0 || errno != ENOENT)
			continue;
		if ((m = queue_lookup(q, l->rows.v[i])) != NULL)
			(void)http_list_row(l, m);
	}
}

/* http_list_run - the next slice of a filtered listing's pass; answer when it is over */
static void
http_list_run(struct http_pending *p)
{
	struct http_list *l = p->job;
	struct evhttp_request *req = p->req;
	json_t *o;
	int rc;

	rc = http_pass_slice(l->scan, http_list_cb, l);
	if (rc == 0 && !l->oom) {
		if (http_pending_again(p, 0) == 0)
			return;
		rc = -1;
	}
	l->scan = http_pass_close(l->h, l->scan);
	if (rc >= 0 && !l->oom) {
		l->pg.total = l->pos;
		http_list_rows(l);
	}
	if (rc < 0 || l->oom || http_page_answer(l->o, &l->pg) < 0) {
		http_pending_done(p);
		http_error(req, 503, "out of memory, or the index of parked messages cannot be read");
		return;
	}
	o = l->o;
	l->o = NULL;
	http_pending_done(p);
	http_reply_json(req, 200, o);
}

/*
 * http_list_start - a filtered listing goes on with a pass over the index
 * (takes o); the reply comes from http_list_run(). -1: o freed, answered.
 */
static int
http_list_start(struct http *h, struct evhttp_request *req, const struct http_filter *f,
    const struct http_walk *w, json_t *o, json_t *items, const struct http_page *pg)
{
	struct http_list *l;

	if ((l = calloc(1, sizeof(*l))) == NULL) {
		json_decref(o);
		goto oom;
	}
	l->h = h;
	l->o = o;
	l->items = items;
	l->f = *f;
	l->pg = *pg;
	l->pos = w->n;
	l->from = (size_t)pg->off;
	l->to = (size_t)(pg->off + pg->per);
	if (http_filter_own(&l->f, &l->fstore) < 0 || http_walk_ids(w, &l->window) < 0)
		goto oom_free;
	if ((l->scan = http_pass_open(h)) == NULL) {
		int e = errno;

		http_list_free(l);
		http_pass_refused(req, e);
		return -1;
	}
	if (http_pending_new(h, req, 0, http_list_run, http_list_drop, l) == NULL)
		goto oom_free;
	return 0;
oom_free:
	http_list_free(l);
oom:
	http_error(req, 503, "out of memory or too many requests in progress");
	return -1;
}

/*
 * http_api_queue - GET /api/queue: one walk over the window, the filter,
 * one page of rows; parked messages after the window's (see the top)
 */
void
http_api_queue(struct http *h, struct evhttp_request *req, const char *path,
    struct evkeyvalq *query)
{
	static const char *const known[] = {
		"page", "per_page", "offset", "limit", "order", "cursor", NULL,
	};
	struct http_filter f;
	struct http_walk w;
	struct http_page pg;
	char err[256];
	long long page = 1, per = HTTP_DEF_PER_PAGE, off = -1, lim = -1, cursor = 0;
	long pos = 0;
	const char *order = evhttp_find_header(query, "order");
	int desc = 0, have_page, partial = 0;
	uint64_t now = util_now_us();
	json_t *o = NULL, *items;
	struct queue_parked_info pk;
	struct http_parked pw;

	(void)path;
	http_filter_init(&f, now);
	memset(&w, 0, sizeof(w));
	memset(&pw, 0, sizeof(pw));
	memset(&pg, 0, sizeof(pg));
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

	/* One block for the window: no regrowth during the walk. */
	queue_parked(h->q, &pk);
	w.cap = (size_t)pk.loaded + 1;
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
	pg.off = off;
	pg.per = per;
	pg.page = page;
	pg.desc = desc;
	pg.now = now;
	pg.total = w.n;
	memcpy(pg.counts, w.counts, sizeof(pg.counts));
	/* the parked messages, as their stamps count them */
	pg.counts[QUEUE_VIEW_HELD] += pk.held;
	pg.counts[QUEUE_VIEW_DEFERRED] += pk.deferred;
	pg.counts[QUEUE_VIEW_ACTIVE] += pk.messages - pk.held - pk.deferred;
	/*
	 * Parked messages (on disk only) follow the window: without a filter,
	 * in directory order, the page's files alone are read; with one, a
	 * pass over the index in slices finds every match (while the index is
	 * rebuilt, at most HTTP_PARKED_READ files are read instead).
	 */
	pw.f = &f;
	pw.items = items;
	pw.now = now;
	pw.pos = w.n;
	pw.from = (size_t)off;
	pw.to = (size_t)(off + per);
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
			pg.total = w.n + pk.messages;
		} else if (queue_pidx_ready(h->q)) {
			/* answered when the pass is over (or already, on failure) */
			(void)http_list_start(h, req, &f, &w, o, items, &pg);
			free(w.v);
			return;
		} else {
			rc = queue_parked_walk(h->q, 0, HTTP_PARKED_READ, http_parked_cb, &pw, &more,
			    NULL);
			pg.total = pw.pos;
			partial = more;
		}
		if (rc < 0 || pw.oom)
			goto oom;
	}
	if (http_page_answer(o, &pg) < 0)
		goto oom;
	if (pos > 0 && jsonout_set(o, "cursor", json_integer((json_int_t)pos)) < 0)
		goto oom;
	if (partial && (jsonout_set(o, "partial", json_true()) < 0 ||
	    jsonout_set(o, "note", http_rebuild_note(pw.read, pk.messages)) < 0))
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

/* A parked match of a bulk action's pass: its id and whether its stamp says held. */
struct http_bulk_one {
	char id[QUEUE_ID_SIZE];
	int held;
};

/*
 * A bulk action: the ids asked for, or the window's matches (sorted: the
 * pass passes over them), then, with a filter (or all=1) and the index
 * ready, every parked match, a step of the pass (at most HTTP_PASS_STEP
 * records, so as many matches) at a time.
 */
struct http_bulk {
	struct http *h;
	enum http_action a;
	struct http_idset ids;
	size_t i, matched, changed, failed;
	char peer[64];
	struct http_filter f;
	char *fstore;
	struct queue_pidx_scan *scan;
	struct http_bulk_one *pv;      /* this step's parked matches */
	size_t pn, pi;
	int pass_failed;
	size_t unreachable;            /* parked matches that could not be loaded (counted failed) */
	int partial;                   /* the index was being rebuilt: parked files left unread */
	size_t parked_read;
	uint64_t parked;
};

/* http_bulk_result - the answer of a bulk action */
static json_t *
http_bulk_result(const struct http_bulk *b)
{
	json_t *o = json_pack("{s:s,s:I,s:I,s:I}", "action", http_action_names[b->a],
	    "matched", (json_int_t)b->matched, "changed", (json_int_t)b->changed,
	    "failed", (json_int_t)b->failed);

	if (o != NULL && b->partial && (jsonout_set(o, "partial", json_true()) < 0 ||
	    jsonout_set(o, "note", http_rebuild_note(b->parked_read, b->parked)) < 0)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* http_bulk_cb - a parked message of the pass: kept for this step when it matches */
static int
http_bulk_cb(void *arg, const struct queue_msg *m)
{
	struct http_bulk *b = arg;

	if (!http_filter_match(&b->f, m) || http_idset_has(&b->ids, m->id) ||
	    b->pn >= HTTP_PASS_STEP)
		return 0;
	util_strlcpy(b->pv[b->pn].id, m->id, QUEUE_ID_SIZE);
	b->pv[b->pn++].held = m->held;
	b->matched++;
	return 0;
}

/* http_bulk_count - the result of one message's action */
static void
http_bulk_count(struct http_bulk *b, int rc)
{
	if (rc < 0)
		b->failed++;
	else
		b->changed += (size_t)rc;
}

/*
 * http_bulk_parked - the action on one parked match without filling the
 * window: hold and release stamp the file (queue_parked_set_held()), a
 * delete frees what it loads, a retry loads it only when the window has
 * room. 1 done, 0 wait for room.
 */
static int
http_bulk_parked(struct http *h, struct http_bulk *b, const struct http_bulk_one *x)
{
	struct queue_parked_info pk;
	struct queue_msg *m;
	int rc, fd, hold = b->a == HTTP_ACT_HOLD;

	switch (b->a) {
	case HTTP_ACT_HOLD:
	case HTTP_ACT_RELEASE:
		if (x->held == hold)
			return 1;
		if ((rc = queue_parked_set_held(h->q, x->id, hold)) >= 0) {
			h->action_gen++;
			if (rc > 0)
				log_info("%s: %s (web UI/API, %s)", x->id,
				    hold ? "placed on hold" : "released from hold", b->peer);
			http_bulk_count(b, rc);
			return 1;
		}
		if (errno != ENOENT) {
			b->failed++;
			return 1;
		}
		break;                       /* loaded meanwhile, or gone */
	case HTTP_ACT_RETRY:
		if (x->held)
			return 1;
		if (!queue_parked_room(h->q))
			return 0;
		break;
	case HTTP_ACT_DELETE:
		break;                       /* loaded, then removed and freed at once */
	}
	if ((m = queue_lookup(h->q, x->id)) != NULL) {
		http_bulk_count(b, http_act(h, m, b->a, b->peer));
		return 1;
	}
	queue_parked(h->q, &pk);
	if (pk.recovering && (fd = queue_hist_open(h->q, x->id)) >= 0) {
		/* still queued but out of reach until recovery has counted every file */
		close(fd);
		b->failed++;
		b->unreachable++;
	}
	return 1;                        /* else gone meanwhile: delivered or removed */
}

/*
 * http_bulk_step - one loop turn of a bulk action: up to HTTP_BATCH
 * messages, within HTTP_PASS_SLICE_US. 1 when all are done, 0 more to
 * do, 2 waiting for room in the window.
 */
static int
http_bulk_step(struct http *h, struct http_bulk *b)
{
	uint64_t t0 = util_mono_us();
	size_t done = 0;

	for (; b->i < b->ids.n && done < HTTP_BATCH; b->i++, done++) {
		struct queue_msg *m = queue_lookup(h->q, b->ids.v[b->i]);

		if (m != NULL)               /* else gone meanwhile: delivered or removed */
			http_bulk_count(b, http_act(h, m, b->a, b->peer));
	}
	if (b->i < b->ids.n)
		return 0;
	while (b->pi < b->pn || b->scan != NULL) {
		if (done >= HTTP_BATCH || util_mono_us() - t0 >= HTTP_PASS_SLICE_US)
			return 0;
		if (b->pi < b->pn) {
			if (!http_bulk_parked(h, b, &b->pv[b->pi]))
				return 2;
			b->pi++;
			done++;
			continue;
		}
		b->pn = b->pi = 0;
		switch (queue_pidx_scan_step(b->scan, HTTP_PASS_STEP, http_bulk_cb, b)) {
		case 0:
			break;
		case 1:
			b->scan = http_pass_close(h, b->scan);
			break;
		default:
			log_warn("web UI: %s: cannot read the index of parked messages",
			    http_action_names[b->a]);
			b->pass_failed = 1;
			b->scan = http_pass_close(h, b->scan);
			break;
		}
	}
	return 1;
}

/* http_bulk_free - free a bulk action's state (NULL is fine) */
static void
http_bulk_free(struct http_bulk *b)
{
	if (b == NULL)
		return;
	b->scan = http_pass_close(b->h, b->scan);
	http_idset_free(&b->ids);
	free(b->pv);
	free(b->fstore);
	free(b);
}

/* http_bulk_drop - struct http_pending's drop: free the bulk action it carries */
static void
http_bulk_drop(struct http_pending *p)
{
	http_bulk_free(p->job);
	p->job = NULL;
}

/* http_bulk_answer - log and answer a bulk action that is over (or cannot go on) */
static void
http_bulk_answer(struct http_bulk *b, struct evhttp_request *req)
{
	log_info("web UI (%s): %s: %zu matched, %zu changed", b->peer,
	    http_action_names[b->a], b->matched, b->changed);
	if (b->unreachable > 0)
		log_warnx("web UI (%s): %s: %zu parked message(s) could not be loaded (the queue "
		    "is still being recovered): try again when it is", b->peer,
		    http_action_names[b->a], b->unreachable);
	if (b->pass_failed) {
		http_error(req, 500, "the index of parked messages could not be read (see the log)");
		return;
	}
	http_reply_json(req, 200, http_bulk_result(b));
}

/* http_bulk_run - the next slice of a bulk action; answer when all are done */
static void
http_bulk_run(struct http_pending *p)
{
	struct http *h = p->h;
	struct http_bulk *b = p->job;
	struct evhttp_request *req = p->req;
	int rc = http_bulk_step(h, b);

	if (rc != 1) {
		if (http_pending_again(p, rc == 2 ? 50 : 0) == 0)
			return;
		/* cannot continue: report what is left of the ids, stop the pass */
		b->failed += b->ids.n - b->i + (b->pn - b->pi);
		b->pass_failed = b->scan != NULL;
	}
	p->job = NULL;
	http_pending_done(p);
	http_bulk_answer(b, req);
	http_bulk_free(b);
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


/*
 * http_api_bulk - POST /api/queue/{retry,flush,hold,release,delete} over a
 * filter, ids or all: the ids, or the window's matches then (the index
 * ready) every parked match from a pass over the index, in slices
 */
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
	b->h = h;
	b->a = a;
	http_peer(req, b->peer, sizeof(b->peer), "?");
	if (ids != NULL) {
		size_t n = json_array_size(ids);

		for (size_t i = 0; i < n; i++) {
			const char *s = json_string_value(json_array_get(ids, i));
			char id[QUEUE_ID_SIZE];

			if (s == NULL || http_id_norm(s, strlen(s), id) < 0)
				continue;            /* not an id: it matches nothing */
			if (http_idset_add(&b->ids, id) < 0)
				goto oom;
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
		struct queue_parked_info pk;

		w.f = &f;
		queue_foreach(h->q, http_walk_cb, &w);
		if (w.oom || http_walk_ids(&w, &b->ids) < 0)
			goto oom;
		free(w.v);
		w.v = NULL;
		queue_parked(h->q, &pk);
		b->parked = pk.messages;
		if ((pk.messages > 0 || queue_count(h->q) > pk.loaded) && queue_pidx_ready(h->q)) {
			/* every parked match, from a pass over the index */
			b->f = f;
			if (http_filter_own(&b->f, &b->fstore) < 0 ||
			    (b->pv = calloc(HTTP_PASS_STEP, sizeof(*b->pv))) == NULL)
				goto oom;
			if ((b->scan = http_pass_open(h)) == NULL) {
				int e = errno;

				http_bulk_free(b);
				json_decref(doc);
				http_pass_refused(req, e);
				return;
			}
		} else if (pk.messages > 0 || queue_count(h->q) > pk.loaded) {
			/* the index is being rebuilt: the first HTTP_PARKED_READ parked files */
			struct http_parked pw;
			int more = 0;

			memset(&pw, 0, sizeof(pw));
			pw.f = &f;
			if (queue_parked_walk(h->q, 0, HTTP_PARKED_READ, http_parked_cb, &pw, &more,
			    NULL) < 0 || pw.oom) {
				free(pw.ids);
				goto oom;
			}
			for (size_t i = 0; i < pw.nids; i++)
				if (http_idset_add(&b->ids, pw.ids[i]) < 0) {
					free(pw.ids);
					goto oom;
				}
			free(pw.ids);
			b->partial = more;
			b->parked_read = pw.read;
			if (more)
				log_warnx("web UI: %s: the index of parked messages is being rebuilt: "
				    "acting on the matches among the first %zu parked file(s)",
				    http_action_names[a], pw.read);
		}
	}
	b->matched = b->ids.n;
	json_decref(doc);
	doc = NULL;
	if (b->scan == NULL && b->ids.n <= HTTP_BATCH) {
		(void)http_bulk_step(h, b);
		http_bulk_answer(b, req);
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
