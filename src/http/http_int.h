/*
 * http_int.h - private to src/http/: the pieces the HTTP files share
 *
 * Owns:     struct http (the service), the request helpers, the queue
 *           filter, the history rings, the snapshot of counters and the
 *           embedded asset table.
 * Lifetime: struct http from http_new() to http_free(); everything a
 *           request handler builds lives until its reply is sent.
 * Errors:   helpers return -1 (or NULL) and the caller answers 500/503;
 *           nothing a client sends is fatal.
 * Context:  event-loop thread only.
 *
 * Only the files in src/http/ include this header; the rest of mtad sees
 * http.h. The filter, history, JSON and Prometheus formatters take plain
 * values (no queue calls) so the unit tests link them alone.
 */
#ifndef MTAD_HTTP_INT_H
#define MTAD_HTTP_INT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "http/http.h"
#include "lib/jsonout.h"
#include "queue/queue.h"
#include "queue/queue_view.h"

struct evbuffer;
struct evhttp_request;
struct event;
struct queue_msg;

/* --- limits ------------------------------------------------------------ */

#define HTTP_MAX_HEADERS_SIZE  16384   /* request line + headers */
#define HTTP_MAX_HEADER_COUNT  64
#define HTTP_MAX_BODY          65536
#define HTTP_TIMEOUT_SECS      30      /* read, write and keep-alive idle */
#define HTTP_REQUEST_SECS      30      /* a whole request, however it trickles (SPEC §11.1) */
#define HTTP_MAX_CONNS_PER_ADDR 32     /* connections of one client address (SPEC §11.1) */
#define HTTP_FD_RESERVE        16      /* descriptors the UI leaves to SMTP and the queue: */
#define HTTP_FD_RESERVE_MAX    1024    /* an eighth of RLIMIT_NOFILE within these bounds */
#define HTTP_CONN_BUCKETS      1024
#define HTTP_ADDR_BUCKETS      256
#define HTTP_MAX_AUTH_LEN      1024    /* Authorization header value */
#define HTTP_MAX_PER_PAGE      500
#define HTTP_DEF_PER_PAGE      50
#define HTTP_MAX_DETAIL_HEAD   65536   /* header bytes read for /api/queue/ID */
#define HTTP_MAX_DETAIL_LINES  500     /* header fields returned */
#define HTTP_MAX_PENDING       1024    /* delayed replies (bulk actions) at once */
#define HTTP_BATCH             1000    /* messages per loop turn in bulk actions */
#define HTTP_PARKED_READ       2000    /* parked files read while the index is rebuilt */
#define HTTP_PASS_STEP         256     /* index records per step of a view's pass */
#define HTTP_PASS_SLICE_US     5000    /* a view's pass runs this long per loop turn, at most */
#define HTTP_MAX_PASSES        8       /* passes over the index open at once */
#define HTTP_WALK_CACHE_US     1000000 /* see struct http, walk */

/* --- queue filter (http_filter.c): declared in http.h, mtactl uses it too --- */

/* --- passes over the index of parked messages (http_pass.c) -------------- */

struct http;
struct queue_pidx_scan;

/* A set of queue ids (copies), sorted for look-ups. */
struct http_idset {
	char (*v)[QUEUE_ID_SIZE];
	size_t n, cap;
};

int http_idset_add(struct http_idset *s, const char *id);
void http_idset_sort(struct http_idset *s);
int http_idset_has(const struct http_idset *s, const char *id);
void http_idset_free(struct http_idset *s);
/* http_filter_own - copy f's strings into *store (the caller frees it); -1 out of memory */
int http_filter_own(struct http_filter *f, char **store);
/* http_pass_open - a pass over the index (at most HTTP_MAX_PASSES); NULL with errno */
struct queue_pidx_scan *http_pass_open(struct http *h);
struct queue_pidx_scan *http_pass_close(struct http *h, struct queue_pidx_scan *s);
/* http_pass_refused - answer 503 for http_pass_open()'s errno e (EBUSY, EAGAIN, ...) */
void http_pass_refused(struct evhttp_request *req, int e);
/* http_pass_slice - one loop turn of a pass: 0 more, 1 over, -1 with errno */
int http_pass_slice(struct queue_pidx_scan *s, int (*cb)(void *arg, const struct queue_msg *m),
    void *arg);

/* --- JSON (http_json.c) --------------------------------------------------- */

/*
 * http_json_dump - compact JSON into b, with <, > and & written as \u003c,
 * \u003e, \u0026 so no byte of it can be read as markup. 0 or -1.
 */
int http_json_dump(const json_t *j, struct evbuffer *b);

/* --- a message's header section (http_headers.c) -------------------------- */

/* http_headers_end - offset just past the header section (before its blank line); 0 if not seen */
size_t http_headers_end(const char *buf, size_t len);
int http_headers_json(const char *buf, size_t len, int cut, json_t *o);

/* --- counters snapshot (http_stats.c takes it, formatters read it) ------- */

struct http_snap {
	uint64_t now_us;
	uint64_t start_us;
	/* the queue, walked once */
	uint64_t queue_messages;
	uint64_t queue_bytes;
	uint64_t queue_rcpts;
	uint64_t n_active, n_deferred, n_held;
	uint64_t oldest_arrival_us;    /* 0 = queue empty */
	/* struct metrics, copied */
	uint64_t sessions_active, sessions_total, tls_sessions;
	uint64_t dkim_signed;
	uint64_t auth_sessions, auth_sessions_active, auth_failures;
	uint64_t accepted, accepted_bytes, rejected;
	uint64_t delivered, deferred, bounced;
	uint64_t latency_bucket[16];
	int      latency_buckets;
	double   latency_sum;
	uint64_t latency_count;
	/* data_dir's file system */
	int      disk_known;
	double   disk_free_pct;
	uint64_t disk_free_bytes, disk_total_bytes;
	int      disk_state;           /* 0 ok, 1 below 5 %, 2 below 1 % */
	/* per-minute rates over the last minute (from the 10 s ring) */
	double   rate_accepted, rate_delivered, rate_deferred, rate_bounced, rate_rejected;
	const char *hostname;
	int      ui_open;              /* no credentials and beyond loopback (SPEC §11.1) */
};

/* http_stats_disk_message - SPEC §8 banner text for a state; NULL when ok */
const char *http_stats_disk_message(int state);
/* http_stats_disk_state_of - 0/1/2 from a free percentage (SPEC §8: 5 %, 1 %) */
int http_stats_disk_state_of(double free_pct);
/* http_metrics_format - the body of /metrics: the snapshot through metrics_prom_format() */
int http_metrics_format(const struct http_snap *s, const double *bounds,
    struct evbuffer *b);
/* http_stats_json - the body of /api/stats */
json_t *http_stats_json(const struct http_snap *s);

/* --- history rings (http_history.c) ---------------------------------------- */

enum {
	HTTP_H_ACCEPTED, HTTP_H_DELIVERED, HTTP_H_DEFERRED, HTTP_H_BOUNCED,
	HTTP_H_REJECTED,
	HTTP_H_COUNTERS,                   /* the above are per-interval deltas */
	HTTP_H_SESSIONS = HTTP_H_COUNTERS, /* the rest are gauges at sample time */
	HTTP_H_QUEUE,
	HTTP_H_QUEUE_KB,
	HTTP_H_FIELDS,
};

extern const char *const http_history_names[HTTP_H_FIELDS];

struct http_sample {
	uint64_t t;                        /* unix seconds at the end of the interval */
	uint64_t v[HTTP_H_FIELDS];
};

struct http_ring {
	struct http_sample *s;
	size_t cap, len, head;             /* head = index of the next write */
	unsigned interval;                 /* seconds per sample */
};

#define HTTP_FINE_SECS     10
#define HTTP_FINE_LEN      360         /* one hour of 10 s samples */
#define HTTP_COARSE_SECS   60
#define HTTP_COARSE_LEN    1440        /* 24 hours of one-minute samples */

struct http_history {
	struct http_ring fine, coarse;
	uint64_t last[HTTP_H_COUNTERS];    /* cumulative counters at the previous tick */
	int      have_last;
	struct http_sample acc;            /* coarse sample being summed */
	unsigned acc_n;
};

int http_history_init(struct http_history *hi);
void http_history_free(struct http_history *hi);
/*
 * http_history_tick - one fine sample: cum[] are the cumulative counters,
 * gauges[] the gauges (HTTP_H_SESSIONS..), t the wall clock in seconds.
 * Every HTTP_COARSE_SECS / HTTP_FINE_SECS ticks a coarse sample follows.
 */
void http_history_tick(struct http_history *hi, uint64_t t,
    const uint64_t cum[HTTP_H_COUNTERS], const uint64_t gauges[HTTP_H_FIELDS - HTTP_H_COUNTERS]);
/* http_history_ring_get - i-th oldest sample (0 <= i < len) */
const struct http_sample *http_history_ring_get(const struct http_ring *r, size_t i);
/* http_history_json - columns for uPlot: {"interval":..,"t":[..],"accepted":[..],..} */
json_t *http_history_json(const struct http_ring *r);
/*
 * http_history_rates - events in the last minute of the fine ring (never
 * extrapolated); only samples younger than a minute at now (unix seconds)
 * count, so samples restored from before a restart do not
 */
void http_history_rates(const struct http_history *hi, uint64_t now,
    double out[HTTP_H_COUNTERS]);

/* --- totals and history saved in <data_dir>/stats (http_persist.c) --------- */

#define HTTP_PERSIST_FILE  "stats"
#define HTTP_PERSIST_MAX   (1024 * 1024)  /* largest payload read */
#define HTTP_PERSIST_TICKS 6              /* a save every 6 history ticks (60 s) */

struct metrics;
struct http_persist;
/* http_persist_encode - the file for m's totals and hi (malloc'd, *lenp bytes); NULL: no memory */
unsigned char *http_persist_encode(const struct metrics *m, const struct http_history *hi,
    uint64_t now, size_t *lenp);
/* http_persist_decode - replace m's totals and hi from a file's bytes; -1 + err: both untouched */
int http_persist_decode(const unsigned char *buf, size_t len, uint64_t now, struct metrics *m,
    struct http_history *hi, char *err, size_t errlen);
/* http_persist_load - <dirfd>/stats into m and hi: 1 restored, 0 no file, -1 unusable (warned) */
int http_persist_load(int dirfd, uint64_t now, struct metrics *m, struct http_history *hi);
/* http_persist_write - buf as <dirfd>/stats: temp file, fsync, rename, fsync dir (blocks) */
int http_persist_write(int dirfd, const unsigned char *buf, size_t len);
/* http_persist_start - the writer thread for data_dir; NULL (warned): nothing is saved */
struct http_persist *http_persist_start(const char *data_dir);
int http_persist_dirfd(const struct http_persist *p);
/* http_persist_save - hand buf (taken) to the writer; a copy not yet written is dropped */
void http_persist_save(struct http_persist *p, unsigned char *buf, size_t len);
/* http_persist_stop - write last (taken, may be NULL), join the writer, free p; NULL */
struct http_persist *http_persist_stop(struct http_persist *p, unsigned char *last, size_t len);

/* --- embedded assets (http_assets.c, generated by tools/embed_assets.py) -- */

struct http_asset {
	const char *path;                  /* "/assets/app.js" */
	const char *ctype;
	const char *etag;                  /* quoted, from the content's SHA-256 */
	const unsigned char *data;
	size_t len;
	const unsigned char *gz;           /* gzip of data, or NULL */
	size_t gzlen;
};

extern const struct http_asset http_assets[];
extern const size_t http_assets_count;

const struct http_asset *http_ui_asset_find(const char *path);

/* --- basic auth and cross-site checks (http_auth.c) ----------------------- */

#define HTTP_DIGEST_LEN 32

/* http_auth_digest - SHA-256 of "user:password" into out; 0 or -1 */
int http_auth_digest(const char *user, const char *pass, unsigned char out[HTTP_DIGEST_LEN]);

enum http_auth_result {
	HTTP_AUTH_OK,
	HTTP_AUTH_MISSING,                 /* no or malformed credentials: 401 */
	HTTP_AUTH_BAD,                     /* wrong credentials: 401, counted per address */
};

/*
 * http_auth_check - compare an Authorization header value with the expected
 * digest in constant time (the supplied credentials are hashed first, so the
 * comparison always runs over HTTP_DIGEST_LEN bytes).
 */
enum http_auth_result http_auth_check(const char *header,
    const unsigned char want[HTTP_DIGEST_LEN]);

/*
 * The names the UI answers to (SPEC §11.1 ui_hosts): hostname, localhost,
 * IP literals and the ui_hosts list. Strings borrowed from the configuration.
 */
struct http_names {
	const char *hostname;
	const char *ui_hosts;              /* comma/space list, "" = none */
};

/*
 * http_auth_host_allowed - 1 when a request's Host header (NULL: none, as in
 * HTTP/1.0) names us, with or without a port; 0: answer 421 (a DNS
 * rebinding page names its own host).
 */
int http_auth_host_allowed(const struct http_names *n, const char *host);

/*
 * http_auth_csrf_check - may this state-changing request come from our own page?
 * It needs a non-empty X-Requested-With header (a cross-site form cannot
 * send one, a cross-site script cannot without a CORS preflight we never
 * grant), and Origin, or else Referer, when present, must name one of our
 * names (n, never the Host header's name) on the port of the Host header.
 * 0 = allowed; -1 = refuse (reason, for the log and the 403 body, in why).
 */
int http_auth_csrf_check(const char *xrw, const char *origin, const char *referer,
    const char *host, const struct http_names *n, int https, const char **why);

/*
 * Failed logins per client address (SPEC §11.1): after HTTP_LOCK_FAILS
 * failures within HTTP_LOCK_WINDOW_US, every request of the address gets
 * 429 until HTTP_LOCK_US after the last failure. A set-associative table:
 * HTTP_AUTH_SETS sets of HTTP_AUTH_WAYS clients; a new client takes the
 * place of the least recent one of its set that is not locked out.
 */
#define HTTP_LOCK_FAILS      10
#define HTTP_LOCK_WINDOW_US  (600ULL * 1000000)
#define HTTP_LOCK_US         (600ULL * 1000000)
#define HTTP_AUTH_LOG_US     1000000       /* at most one log line a second per address */
#define HTTP_AUTH_SETS       256
#define HTTP_AUTH_WAYS       8

struct http_auth_client {
	char     addr[64];                 /* "" = free slot */
	uint64_t t[HTTP_LOCK_FAILS];       /* times of the last failures (a ring) */
	unsigned head, n;                  /* next write in t[], entries used */
	uint64_t last_us;                  /* last failure */
	uint64_t locked_until_us;          /* 0 = never locked */
	uint64_t logged_us;                /* last log line */
	unsigned unlogged;                 /* failures not yet in a log line */
};

struct http_auth_table {
	struct http_auth_client c[HTTP_AUTH_SETS * HTTP_AUTH_WAYS];
};

/*
 * http_auth_fail - record a failure of addr at now (monotonic µs). 1 when
 * it locks the address out, else 0. *log_count: failures to report in a
 * log line now (0: none, a line was written less than a second ago).
 */
int http_auth_fail(struct http_auth_table *t, const char *addr, uint64_t now,
    unsigned *log_count);
/* http_auth_locked - seconds (rounded up) until addr may log in again; 0 = not locked out */
unsigned http_auth_locked(struct http_auth_table *t, const char *addr, uint64_t now);

/* --- the service (http.c) ------------------------------------------------- */

struct config;
struct queue;
struct metrics;
struct sched;
struct evhttp;
struct event_base;
struct evkeyvalq;
struct metrics_push;
struct ssl_ctx_st;
struct http_pending;
struct http_conn;
struct http_addr_count;
struct evconnlistener;
struct evhttp_bound_socket;
struct bufferevent;

struct http {
	struct event_base *base;
	struct evhttp *evh;
	const struct config *cfg;          /* borrowed; replaced on SIGHUP */
	struct queue *q;                   /* borrowed */
	struct metrics *m;                 /* borrowed */
	struct sched *sched;               /* borrowed; NULL until http_set_sched() */
	void (*drain_fn)(void *arg);       /* POST /api/drain (http_set_drain); NULL = 503 */
	void *drain_arg;
	struct ssl_ctx_st *tls;            /* borrowed; NULL = plain HTTP */
	struct diskguard *disk;            /* data_dir's free space; NULL if it could not be opened */
	int auth_on;
	unsigned char auth_want[HTTP_DIGEST_LEN];
	struct http_auth_table fails;
	struct http_names names;           /* from cfg: the Host names we answer to */
	/* connections (http_conn.c) */
	struct evconnlistener *lev;        /* evhttp's listener on ui_address:ui_port */
	struct event *relisten;            /* the end of a pause after an accept error */
	int accept_paused;
	struct http_conn *conns;
	struct http_conn *conn_hash[HTTP_CONN_BUCKETS];
	struct http_addr_count *addr_hash[HTTP_ADDR_BUCKETS];
	size_t nconns, max_conns;
	uint64_t conns_refused;
	uint64_t warn_us;                  /* last connection warning (one a second) */
	unsigned warn_unlogged;
	struct http_history hist;
	struct event *tick;                /* every HTTP_FINE_SECS: history, StatsD */
	struct event *push_soon;           /* the first StatsD push, soon after start */
	struct metrics_push *push;
	char *push_url;                    /* what push was made from */
	struct http_persist *persist;      /* <data_dir>/stats; NULL: not saved */
	int persist_on;                    /* http_new() succeeded: save at http_free() */
	/*
	 * The queue walk behind /api/stats and /metrics (state counts, oldest
	 * message), reused for up to HTTP_WALK_CACHE_US while the queue's count
	 * and size are unchanged and no action ran: pollers then cost almost
	 * nothing however long the queue.
	 */
	struct {
		uint64_t at_us, count, bytes;
		unsigned gen;
		int valid;
		uint64_t rcpts, n_active, n_deferred, n_held, oldest_us;
	} walk;
	unsigned action_gen;               /* bumped by every action on the queue */
	struct http_pending *pending;      /* replies waiting on a timer or a job */
	size_t npending;
	size_t npasses;                    /* passes over the index open (http_pass.c) */
	unsigned ticks;
};

/*
 * A request whose reply comes later, from a timer: a failed login's 401,
 * or a bulk action done in slices. libevent keeps the request alive until
 * it is answered, even if the client has gone (the reply then frees it);
 * http_free() answers whatever is still pending.
 */
struct http_pending {
	struct http *h;
	struct evhttp_request *req;
	struct event *ev;
	void (*run)(struct http_pending *p);   /* the timer fired */
	void (*drop)(struct http_pending *p);  /* free job state (may be NULL) */
	void *job;
	struct http_pending *next, *prev;
};

/* http_pending_new - run(p) after ms milliseconds; NULL when at the limit or out of memory */
struct http_pending *http_pending_new(struct http *h, struct evhttp_request *req,
    unsigned ms, void (*run)(struct http_pending *), void (*drop)(struct http_pending *),
    void *job);
/* http_pending_again - run again after ms */
int http_pending_again(struct http_pending *p, unsigned ms);
/* http_pending_done - unlink and free (after the reply was sent) */
void http_pending_done(struct http_pending *p);

/* Replies. Every one carries the security headers set in http_dispatch(). */
void http_reply(struct evhttp_request *req, int code, const char *ctype,
    struct evbuffer *body);
/* http_reply_json - j taken (decref'd); a NULL j answers 500 */
void http_reply_json(struct evhttp_request *req, int code, json_t *j);
/* http_error - {"error": msg} for /api/, text otherwise */
void http_error(struct evhttp_request *req, int code, const char *msg);
int http_is_head(struct evhttp_request *req);
/* http_peer - the client's address as text for log lines; unknown when there is none */
void http_peer(struct evhttp_request *req, char *buf, size_t size, const char *unknown);

/* Route handlers (http_api.c, http_ui.c). */
typedef void http_handler_fn(struct http *h, struct evhttp_request *req,
    const char *path, struct evkeyvalq *query);
http_handler_fn http_api_stats, http_api_history, http_api_queue, http_api_message,
    http_api_bulk, http_api_metrics, http_ui_index, http_ui_asset;
/* http_qshape.c: GET /api/qshape, the queue by recipient domain and age */
http_handler_fn http_api_qshape;
/* http_dests.c: GET /api/destinations, limits and throttling per destination */
http_handler_fn http_api_destinations;
/* http_dests_metrics - the per-destination gauges of /metrics, appended to b; 0 or -1 */
int http_dests_metrics(struct http *h, struct evbuffer *b);

/* Connections (http_conn.c). */
/* http_conn_init - caps and accept errors on evhttp's listener; 0 or -1 */
int http_conn_init(struct http *h, struct evhttp_bound_socket *bound);
/* http_conn_bev - evhttp's bufferevent factory: every connection passes here */
struct bufferevent *http_conn_bev(struct event_base *base, void *arg);
/* http_conn_request - a whole request arrived on its connection (stops the deadline) */
void http_conn_request(struct http *h, struct evhttp_request *req);
/* http_conn_replied - evhttp's on-complete callback (arg: struct http): the next deadline */
void http_conn_replied(struct evhttp_request *req, void *arg);
/* http_conn_detach - after evhttp_free(): forget the connections still being freed */
void http_conn_detach(struct http *h);

/* http_api_snap_take - counters, one queue walk and statvfs of data_dir */
void http_api_snap_take(struct http *h, struct http_snap *s);
/* http_api_tick_sample - add the 10 s sample to the history */
void http_api_tick_sample(struct http *h);

#endif
