/*
 * sched_int.h - the scheduler's shared structures (private to src/sched/)
 *
 * Owns:     the declarations shared by sched.c (messages, retries,
 *           results), sched_bounce.c (DSNs), sched_ops.c (operator actions,
 *           reload, shutdown) and sched_dest.c (destinations and their
 *           connections).
 * Lifetime: struct sched from sched_new() to sched_free(); a sched_msg
 *           from sched_add() until its queue_msg is removed; a job from
 *           dispatch until its result is recorded (or it is abandoned); a
 *           destination while it has jobs or connections; a connection
 *           from its first look-up until it is closed.
 * Errors:   see each function.
 * Context:  event-loop thread.
 *
 * Ownership: s owns the destinations (s->dests), a destination owns its
 * queued jobs and its connections, a connection owns the job it is
 * sending. A sched_msg counts its jobs out (njobs) and is never freed
 * while one is out. Work that could re-enter (starting connections,
 * dispatching messages) runs from an event activated by *_kick(), never
 * from inside the call that asked for it.
 */
#ifndef MTAD_SCHED_INT_H
#define MTAD_SCHED_INT_H

#include "sched/sched.h"
#include "sched/sched_backend.h"
#include "sched/bounce.h"
#include "sched/sched_dnsc.h"
#include "lib/heap.h"
#include "sched/sched_policy.h"
#include "sched/sched_rate.h"
#include "mail/dest_policy.h"
#include "queue/queue.h"
#include "smtpc/smtpc.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct dns;
struct event;
struct ssl_ctx_st;
struct map;

#define SCHED_IDLE_SECONDS     3      /* an idle connection is closed after this */
#define SCHED_REUSE_MAX        1000   /* transactions per connection, then a fresh one */
#define SCHED_REUSE_SECONDS    300    /* and no older connections than this (Postfix) */
#define SCHED_BATCH            256    /* messages dispatched per loop pass */
#define SCHED_ACTIVE_MAX       20000  /* messages in delivery at once; the queue's window
                                        * (queue_active_limit, default 10000) is the tighter
                                        * bound in the daemon: this one guards the backends
                                        * without a window (tests) */
#define SCHED_INIT_CONCURRENCY 5      /* connections to a destination before one has worked */
#define SCHED_MAX_ADDRS        10     /* addresses tried per connection attempt */
#define SCHED_HEADERS_MAX      65536  /* original headers copied into a DSN */
#define SCHED_STOP_GRACE       3      /* seconds running transactions get at shutdown */
#define SCHED_DRAIN_RETRY      2      /* seconds between hand-over attempts of a message */
#define SCHED_REQUEUE_MAX      3      /* times a job refused by throttling waits again at its destination */

struct sched_job;
struct sched_conn;
struct sched_bounce;
TAILQ_HEAD(sched_jobq, sched_job);

struct sched_msg {
	struct heap_node hn;      /* in s->heap while waiting for a time */
	struct queue_msg *m;
	unsigned njobs;                 /* jobs out, a DSN being committed, or a dispatch guard */
	int      active;                /* counted in s->nactive */
	int      force;                 /* flush: everything pending is due now */
	int      deleted;               /* operator delete: remove once njobs is 0 */
	int      all_done;              /* the last job delivered every recipient left */
	int      warned;                /* delay warning sent (QUEUE_F_WARNED in the file) */
	int      cc_owed;               /* QUEUE_F_CC: the cc_mta copy is still to go */
	unsigned cc_attempts;
	uint64_t cc_next_us;
	uint64_t dispatch_us;           /* when the current attempt began */
	size_t  *fail;                  /* recipients failed for good this pass: DSN owed */
	size_t   nfail, failcap;
	int      expired;               /* some of fail[] outlived queue_lifetime */
	struct sched_jobq jobs;         /* its jobs out (queued or running) */
	TAILQ_ENTRY(sched_msg) wentry;  /* in s->waitq: may be parked to make room */
	int      waiting;               /* in s->waitq */
};

struct sched_job {
	TAILQ_ENTRY(sched_job) entry;   /* in d->jobs while queued */
	TAILQ_ENTRY(sched_job) mentry;  /* in sm->jobs */
	int      queued;                /* in d->jobs (not yet taken by a connection) */
	struct sched_msg *sm;
	struct sched_dest *d;
	int      cc;                    /* the cc_mta copy: every recipient */
	size_t   n;
	size_t  *idx;                   /* recipient indices (in the same allocation) */
	const char **rcpts;             /* their addresses, borrowed from the queue_msg */
	uint64_t queued_us;
	unsigned requeued;              /* sent back to wait after a throttling reply */
};

enum sched_conn_state {
	SC_MX = 0,       /* waiting for the MX answer */
	SC_ADDR,         /* waiting for a host's addresses */
	SC_CONNECT,      /* smtpc connecting, greeting, EHLO */
	SC_IDLE,         /* connected, no job: reusable */
	SC_BUSY,         /* a transaction is running */
};

struct sched_conn {
	TAILQ_ENTRY(sched_conn) entry;  /* in d->conns */
	struct sched_dest *d;
	enum sched_conn_state st;
	struct sched_dnsc_wait wait;
	struct sched_dnsc_ent *mxe;     /* the MX answer; NULL: the only host is nh.name */
	struct sched_dnsc_ent *ae;      /* addresses of host hi */
	size_t   nhosts, hi, ai;
	unsigned tries;                 /* addresses tried */
	int      dns_perm;              /* every host so far failed with a permanent DNS error */
	int      err_dns;               /* err came from DNS, not from a peer */
	int      in_setup;              /* counted in d->nsetup */
	struct smtpc *c;
	struct sched_job *job;
	struct queue_reader *rd;
	struct event *idle;
	uint64_t setup_start_us;        /* monotonic */
	uint64_t setup_us;              /* c: reported with the first transaction only */
	uint64_t opened_us;             /* monotonic: connected at */
	uint64_t txn_start_us;          /* monotonic */
	uint64_t job_start_us;          /* wall clock: the job left the queue */
	unsigned ntxn;
	struct smtpc_reply err;         /* the last reason for a failed setup */
	int      tls_retried;           /* the TLS handshake failed: this attempt is the plain retry */
	unsigned epoch;                 /* d->fb.epoch when it started (feedback cohort) */
	struct sockaddr_storage cur_addr;  /* the address being tried (for that retry) */
	const char *cur_host;           /* its host name (in nh or the MX answer cn holds) */
	char     relay[320];            /* "host[addr]:port" */
};
TAILQ_HEAD(sched_connq, sched_conn);

struct sched_dest {
	struct sched *s;
	char     key[SCHED_KEY_MAX];
	struct sched_nexthop nh;
	struct sched_jobq jobs;
	size_t   njobs;
	struct sched_connq conns;
	unsigned nconns;
	unsigned nsetup;                /* connections not yet ready (will take jobs) */
	struct sched_fb fb;             /* connections allowed now: slow start, throttle feedback */
	struct sched_rate rate;         /* interval_us 0: no rate limit (no timer, no cost) */
	struct dest_rate rate_cfg;      /* the rate in force, as configured */
	struct event *rate_timer;       /* NULL until the rate first holds a job back */
	uint64_t delivered;             /* transactions that went through */
	uint64_t throttle_us;           /* wall clock of the last throttling signal; 0 = none */
	char     throttle_why[SMTPC_REPLY_MAX];  /* its reply */
	struct event *kick;
};

struct sched {
	struct event_base *base;
	const struct sched_backend *be; /* clock, queue, transport (sched_backend.h) */
	void    *be_arg;                /* its argument: the struct queue for the real one */
	const struct config *cfg;
	struct queue *q;
	struct maillog *ml;
	struct metrics *mt;
	struct dns *dns;
	struct sched_dnsc *dnsc;
	struct map *dests;        /* key -> struct sched_dest */
	struct heap heap;
	struct event *timer;            /* the heap's earliest wake-up */
	uint64_t timer_at;              /* wall-clock µs it is armed for; 0 = not armed */
	struct event *kick;             /* dispatch on the next loop pass */
	struct event *grace;            /* shutdown: abandon what still runs */
	uint64_t start_us;
	size_t   nactive;               /* messages with jobs out */
	unsigned nconns;                /* connections, all destinations */
	LIST_HEAD(, sched_bounce) bounces;  /* DSN commits in flight */
	unsigned nbounces;
	struct ssl_ctx_st *tls;         /* outbound STARTTLS context (one reference); NULL = none */
	struct map *dead;         /* key -> until when it is not tried (sched_dead.c) */
	struct map *notls;        /* "host[addr]:port" -> until when TLS is skipped (sched_tls.c) */
	struct sched_drain *drain;      /* SIGTERM with drain_relay, mtactl drain (sched_drain.c) */
	struct sched_relays *relays;    /* sender_relay_map, verify context (sched_relay.c) */
	struct queue *wq;               /* the queue whose window this scheduler serves; NULL: none */
	TAILQ_HEAD(, sched_msg) waitq;  /* held, or waiting for a later attempt: eviction order */
	struct dest_policy *policy;     /* destination_policy_file; NULL = none */
	struct dest_rate rate_default;  /* destination_rate_limit */
	int      stopping;
	int      freeing;                /* sched_free(): results change nothing */
	int      done_called;
	void   (*done)(void *arg);
	void    *done_arg;
};

/* An attempt's facts for the mail log. */
struct sched_attempt {
	const char *relay;              /* "host[addr]:port"; NULL = "none" */
	uint64_t start_us;              /* wall clock: the job left the queue (0 = now) */
	double   setup_s;               /* c: connection set-up incl. DNS */
	double   xfer_s;                /* d: transmission */
};

/* sched_now - the scheduler's clock (wall-clock µs; virtual in the unit tests) */
static inline uint64_t
sched_now(const struct sched *s)
{
	return s->be->now_us(s->be_arg);
}

/*
 * sched_new_backend - sched_new() with another backend (the unit tests');
 * be and be_arg are borrowed and outlive s. q may be NULL when be does not
 * use it.
 */
struct sched *sched_new_backend(struct event_base *base, const struct config *cfg,
    struct queue *q, struct maillog *ml, struct metrics *m, const struct sched_backend *be,
    void *be_arg, char *err, size_t errlen);
/* sched_run - dispatch what is due now, a batch per call (the kick and the timer run it) */
void sched_run(struct sched *s);

/* sched.c: scheduling of a message and its recipients' state */
/* sched_msg_schedule - no job out: remove it when done, park it when held, else into the heap */
void sched_msg_schedule(struct sched *s, struct sched_msg *sm);
/* sched_msg_finish - every job is back: DSN, delay warning, then sched_msg_schedule() */
void sched_msg_finish(struct sched *s, struct sched_msg *sm);
/* sched_rearm - the timer for the heap's top, or a kick when it is due */
void sched_rearm(struct sched *s);
/* sched_rcpt_write - record a recipient's state; a failed write is logged */
void sched_rcpt_write(struct sched *s, struct queue_msg *m, size_t i,
    enum queue_rcpt_state st, uint64_t next, const char *dsn, const char *reply,
    const struct queue_attempt *hist);

/* sched.c: results come back here; each frees the job */
void sched_job_result(struct sched *s, struct sched_job *job, const struct sched_attempt *a,
    const struct smtpc_result *r);
void sched_job_fail(struct sched *s, struct sched_job *job, const struct sched_attempt *a,
    const struct smtpc_reply *why, enum sched_class cls);
void sched_job_abandon(struct sched *s, struct sched_job *job);
/* sched_ops_check_done - shutdown: call done() once nothing runs */
void sched_ops_check_done(struct sched *s);

/* sched_bounce.c: the DSN flow */
/* sched_bounce_start - queue a DSN for recipients idx[0..n); 0 under way, -1 not started */
int sched_bounce_start(struct sched *s, struct sched_msg *sm, const size_t *idx, size_t n,
    enum bounce_kind kind);
/* sched_bounce_none - failed recipients of a message that gets no DSN: logged, dropped */
void sched_bounce_none(struct sched *s, struct sched_msg *sm);
/* sched_bounce_delay_due - recipients owed a delay warning into idx[] (m->nrcpt slots); their count */
size_t sched_bounce_delay_due(struct sched *s, struct sched_msg *sm, size_t *idx);
/* sched_bounce_detach_all - sched_free: DSN commits in flight forget s */
void sched_bounce_detach_all(struct sched *s);

/* sched.c: one job for recipients idx[0..n) of sm that share next hop nh (key) */
void sched_dispatch_group(struct sched *s, struct sched_msg *sm, const struct sched_nexthop *nh,
    const char *key, const size_t *idx, size_t n, int cc);

/* sched_drain.c: the hand-over phase routes everything to drain_relay */
/* sched_drain_route - in the hand-over: drain_relay's next hop (its key in *key); else NULL */
const struct sched_nexthop *sched_drain_route(const struct sched *s, const char **key);
/* sched_drain_handover - 1 while messages go to drain_relay: refusals never bounce */
int sched_drain_handover(const struct sched *s);
/* sched_drain_free - sched_free: drop the drain state */
void sched_drain_free(struct sched *s);

/* sched_dead.c: destinations whose connections all failed are not tried for a while */
void sched_dead_mark(struct sched *s, const char *key, const struct smtpc_reply *why);
void sched_dead_clear(struct sched *s, const char *key);
/* sched_dead_check - 1 when key is dead now (why: the reason to defer with), else 0 */
int sched_dead_check(struct sched *s, const char *key, struct smtpc_reply *why);
void sched_dead_free_all(struct sched *s);

/* sched_tls.c: outbound TLS policy (smart_relay_tls, per-host plain fallback) */
void sched_tls_params(struct sched *s, const struct sched_dest *d, const char *relay,
    struct smtpc_params *p);
int sched_tls_fallback(struct sched *s, const struct sched_dest *d, const char *relay,
    const char *why);
void sched_tls_free(struct sched *s);

/* sched_relay.c: per-sender relays, AUTH credentials, implicit TLS, verify */
struct relay_map;
#define SCHED_SECRET_MAX 4097           /* a password or token, with its NUL */
/* sched_relay_read_map - read and parse cfg's sender_relay_map; NULL with err */
struct relay_map *sched_relay_read_map(const struct config *cfg, char *err, size_t errlen);
/* sched_relay_load - (re)load the map and the verify context from cfg; 0, or -1 (old kept) */
int sched_relay_load(struct sched *s, const struct config *cfg, char *err, size_t errlen);
void sched_relay_free(struct sched *s);
/* sched_relay_for - the relay of a sender's mail (*rule: 0 = smart_relay, i+1 = map rule i) */
const struct relay_target *sched_relay_for(struct sched *s, const char *sender, unsigned *rule);
/* sched_relay_tls_required - TLS is a must: encrypt/verify, smtps://, or credentials */
int sched_relay_tls_required(const struct sched *s, const struct sched_dest *d);
/*
 * sched_relay_params - implicit TLS, verification, the session cache key
 * and the AUTH credentials of a connection to host; the secret is read into
 * secret[size] (the caller wipes it once smtpc has its copy). 0, or -1 with
 * why (the password file cannot be read).
 */
int sched_relay_params(struct sched *s, const struct sched_dest *d, const char *host,
    const char *cache_key, struct smtpc_params *p, char *secret, size_t size, char *why,
    size_t whylen);

/* sched_dest.c */
struct sched_dest *sched_dest_get(struct sched *s, const struct sched_nexthop *nh,
    const char *key);
void sched_dest_enqueue(struct sched_dest *d, struct sched_job *job);
/* sched_dest_stop_all - shutdown: close idle connections, abandon set-ups and queued jobs */
void sched_dest_stop_all(struct sched *s);
/* sched_dest_abandon_all - shutdown grace over, or sched_free: drop every connection */
void sched_dest_abandon_all(struct sched *s);
/* sched_dest_free_all - sched_free: everything (after sched_dest_abandon_all) */
void sched_dest_free_all(struct sched *s);
/* sched_dest_unqueue_msg - operator delete: take sm's queued (not running) jobs back */
void sched_dest_unqueue_msg(struct sched *s, struct sched_msg *sm);
/*
 * sched_dest_limits_load - destination_rate_limit and destination_policy_file
 * of cfg, applied to the destinations there are and to new ones; 0, or -1
 * with err (the previous limits are kept)
 */
int sched_dest_limits_load(struct sched *s, const struct config *cfg, char *err, size_t errlen);
/* sched_dest_limits_free - sched_free: the policy */
void sched_dest_limits_free(struct sched *s);

#endif
