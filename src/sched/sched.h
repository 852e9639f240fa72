/*
 * sched.h - the delivery scheduler (public interface of src/sched/)
 *
 * Owns:     destinations, the retry timers, outbound connections (through
 *           src/smtpc/), DNS look-ups (through src/dns/) and bounce creation.
 * Lifetime: sched_new() to sched_free().
 * Errors:   sched_new() returns NULL with a reason in err.
 * Context:  event-loop thread.
 */
#ifndef MTAD_SCHED_H
#define MTAD_SCHED_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct config;
struct queue;
struct queue_msg;
struct maillog;
struct metrics;
struct relay_target;
struct sched;
struct ssl_ctx_st;

/* --- life cycle (sched.c, sched_ops.c) ----------------------------------- */

struct sched *sched_new(struct event_base *base, const struct config *cfg,
    struct queue *q, struct maillog *ml, struct metrics *m, char *err, size_t errlen);
/* sched_ops_set_config - SIGHUP; cfg borrowed */
void sched_ops_set_config(struct sched *s, const struct config *cfg);
/*
 * sched_tls_set - outbound connections use STARTTLS with ctx whenever the
 * next hop offers it (a reference is taken; NULL = never). With
 * smart_relay_tls = encrypt the smart relay must do TLS: otherwise its
 * mail is deferred. (sched_tls.c)
 */
void sched_tls_set(struct sched *s, struct ssl_ctx_st *ctx);
/* sched_ops_shutdown - stop starting deliveries; abandon running ones safely; done(arg) when idle */
void sched_ops_shutdown(struct sched *s, void (*done)(void *arg), void *arg);
struct sched *sched_free(struct sched *s);

/* --- messages to deliver (sched.c) --------------------------------------- */

/*
 * sched_set_window - q's window (queue_set_active_limit()) may ask s to
 * park a message that waits (held, or deferred until later) when new mail
 * finds it full; flushes and the drain reach parked messages too.
 */
void sched_set_window(struct sched *s, struct queue *q);
/* sched_add - a message to deliver (from queue_recover() or the commit listener); m borrowed from the queue */
void sched_add(struct sched *s, struct queue_msg *m);

/*
 * --- operator actions: UI, API, mtactl (sched_ops.c) ----------------------
 * For a message the scheduler knows (m->sched set), use these instead of
 * queue_set_held()/queue_remove(): the scheduler may have a transaction
 * running for it. A transaction already running is not interrupted.
 */
/* sched_ops_flush - retry every deferred message now (mtactl flush, UI "retry all") */
void sched_ops_flush(struct sched *s);
/* sched_ops_retry - deliver one message now (its deferred recipients and cc copy) */
void sched_ops_retry(struct sched *s, struct queue_msg *m);
/* sched_ops_hold - hold (1) or release (0); held messages are not delivered; 0 or -1 */
int sched_ops_hold(struct sched *s, struct queue_msg *m, int held);
/* sched_ops_delete - remove from the queue ("removed" in the mail log), now or when the running transaction ends; 0 or -1 */
int sched_ops_delete(struct sched *s, struct queue_msg *m);

/* --- drain: SPEC §11.4 (sched_drain.c) ----------------------------------- */

/*
 * sched_drain - retry everything now and keep delivering for up to
 * timeout_s; then, when relay is set, hand every message still queued to
 * it (deleted only after its 250) for at most another timeout_s.
 * done(arg, result) once the queue is empty or that is over; the caller
 * then calls sched_ops_shutdown(). relay borrowed for the call. 0, or -1
 * (already draining or stopping, out of memory).
 */
struct sched_drain_result {
	unsigned long long left;        /* messages still queued (on disk) */
	unsigned long long held;        /* of which on hold (never handed over) */
	unsigned long long handed_over; /* messages drain_relay took */
	int    relay;                   /* a drain_relay was used */
	double seconds;                 /* the drain's duration */
};
int sched_drain(struct sched *s, const struct relay_target *relay, unsigned timeout_s,
    void (*done)(void *arg, const struct sched_drain_result *r), void *arg);

/* --- destinations: limits and throttling, SPEC §11.2 (sched_dest.c) ------ */

struct sched_dest_info {
	char     name[256];             /* recipient domain, or the relay host */
	const char *kind;               /* "mx", "relay", "cc" or "drain" (static) */
	int      port;
	unsigned limit;                 /* connections allowed now (feedback) */
	unsigned max;                   /* configured concurrency */
	unsigned conns;                 /* connections open or being set up */
	unsigned busy;                  /* transactions in flight */
	size_t   queued;                /* jobs waiting at the destination */
	char     rate[32];              /* "5/s"; "" = no rate limit */
	int      throttled;             /* limit below max after a throttling signal */
	uint64_t halvings;              /* throttling signals that halved the limit */
	uint64_t delivered;             /* transactions that went through */
	uint64_t throttle_us;           /* wall clock of the last throttling signal; 0 = none */
	char     throttle_why[512];     /* its reply */
};

/*
 * sched_dest_list - the destinations with jobs or connections now, busiest
 * (queued + in flight) first, at most max into v; their total in *total
 */
size_t sched_dest_list(struct sched *s, struct sched_dest_info *v, size_t max, size_t *total);

#endif
