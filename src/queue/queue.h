/*
 * queue.h - the durable on-disk mail queue (public interface of src/queue/)
 *
 * Owns:     everything under <data_dir>: the message files, the group-commit
 *           (fsync) worker thread, the live counters of queued messages and
 *           bytes, and the in-memory struct queue_msg of each message in
 *           the window (queue_set_active_limit(); the others are parked).
 * Lifetime: struct queue from queue_open() to queue_close().
 *           struct queue_file from queue_file_create() until it is handed to
 *           queue_file_commit() (which takes it) or queue_file_abort().
 *           struct queue_msg is owned by the queue: created on commit, by
 *           queue_recover() or when a parked message is loaded, freed by
 *           queue_remove() or queue_park(); callers borrow it.
 * Errors:   I/O failures return -1 (or NULL) with errno set and leave the
 *           queue consistent; a corrupt file found on recovery is moved
 *           to <data_dir>/corrupt/ and logged, never fatal.
 * Context:  event-loop thread, except the fsync work, which runs on the
 *           queue's own worker thread; completions come back on the loop.
 *
 * Durability contract (SPEC §4): the commit callback reports ok only when
 * the message file and its directory entry are on stable storage. One
 * sync covers every message committed while the previous sync ran.
 */
#ifndef MTAD_QUEUE_H
#define MTAD_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct event_base;
struct queue;
struct queue_file;

#define QUEUE_ID_LEN 16          /* hex characters, upper case */
#define QUEUE_ID_SIZE (QUEUE_ID_LEN + 1)

/* Message flags (bit set in queue_envelope.flags / queue_msg.flags). */
enum {
	QUEUE_F_8BITMIME = 1u << 0,  /* BODY=8BITMIME given */
	QUEUE_F_SMTPUTF8 = 1u << 1,  /* SMTPUTF8 given */
	QUEUE_F_BOUNCE   = 1u << 2,  /* a DSN we generated: never bounce it */
	QUEUE_F_CC       = 1u << 3,  /* the cc_mta copy is still owed */
	QUEUE_F_WIRE     = 1u << 4,  /* content goes on the wire inside DATA as stored */
	QUEUE_F_WARNED   = 1u << 5,  /* the delay warning (delay_warning_time) was sent */
};

enum queue_rcpt_state {
	QUEUE_RCPT_PENDING = 0,      /* not tried yet, or deferred until next_try */
	QUEUE_RCPT_DELIVERED,
	QUEUE_RCPT_BOUNCED,          /* failed for good; the DSN is queued */
};

/*
 * One delivery attempt of one recipient, as its history keeps it (an 'a'
 * record appended to the message file; read back on demand, never held
 * in memory). At most QUEUE_HIST_WRITE_MAX are written per recipient
 * (the last attempt, delivered or bounced, always is); readers show the
 * first and the last QUEUE_HIST_SHOW_LAST.
 */
enum queue_attempt_result {
	QUEUE_ATTEMPT_DEFERRED = 0,
	QUEUE_ATTEMPT_DELIVERED,
	QUEUE_ATTEMPT_BOUNCED,
};

#define QUEUE_ATTEMPT_HOST_MAX   300    /* "host[addr]:port" */
#define QUEUE_ATTEMPT_REPLY_MAX  512    /* longer replies are cut */
#define QUEUE_HIST_WRITE_MAX     200    /* deferrals recorded per recipient */
#define QUEUE_HIST_SHOW_LAST     20     /* shown: the first attempt and the last 20 */

struct queue_attempt {
	uint32_t     rcpt;               /* recipient index */
	enum queue_attempt_result result;
	uint32_t     attempt;            /* 1 = the recipient's first attempt */
	uint64_t     time_us;            /* wall clock at its end */
	uint32_t     delays_ms[4];       /* before the queue manager, in it, connection set-up, transmission */
	char         host[QUEUE_ATTEMPT_HOST_MAX + 1];   /* "" = no host reached */
	char         dsn[12];
	char         reply[QUEUE_ATTEMPT_REPLY_MAX + 1];
};

/* What the SMTP server (or sendmail, or the bounce builder) hands over. */
struct queue_envelope {
	const char  *sender;         /* "" = null sender <> */
	const char *const *rcpts;    /* nrcpt addresses, no angle brackets */
	size_t       nrcpt;
	const char  *client_addr;    /* "127.0.0.1" or "local"; may be NULL */
	const char  *client_name;    /* reverse name or "unknown"; may be NULL */
	const char  *helo;           /* may be NULL */
	unsigned     flags;          /* QUEUE_F_* */
};

struct queue_rcpt {
	char        *addr;
	enum queue_rcpt_state state;
	unsigned     attempts;
	uint64_t     next_try_us;    /* wall clock; 0 = now */
	char        *last_reply;     /* last reply or error text; NULL if none */
	char         dsn[12];        /* last enhanced status "4.4.1"; "" if none */
};

struct queue_msg {
	char         id[QUEUE_ID_SIZE];
	char        *sender;
	struct queue_rcpt *rcpt;
	size_t       nrcpt;
	unsigned     flags;
	int          held;
	uint64_t     arrival_us;     /* wall clock at end of data */
	uint64_t     size;           /* bytes of content as delivered (prepend + data) */
	uint64_t     file_size;      /* bytes of its queue file: what queue_bytes() counts */
	char        *client_addr;
	char        *client_name;
	char        *helo;
	void        *sched;          /* the scheduler's own per-message state */
	int          forced;         /* loaded by a flush: every pending recipient is due now */
};

/* queue_open - create <data_dir> layout if missing, start the commit thread */
struct queue *queue_open(struct event_base *base, const char *data_dir,
    char *err, size_t errlen);
/* queue_close - wait for pending commits (their callbacks run), stop the thread, free */
struct queue *queue_close(struct queue *q);

/*
 * queue_recover - load every committed message (calling cb for each), remove
 * files that were never committed, quarantine corrupt ones. Run once at start.
 */
int queue_recover(struct queue *q, void (*cb)(void *arg, struct queue_msg *m), void *arg);

/*
 * The same in slices, so that mail is accepted while a big queue is read
 * (SPEC §11.5): queue_recover_start() (before the first queue_file_create():
 * it empties incoming/ and raises the id counter above every file), then
 * queue_recover_step(r, max) from the loop until it returns 1 (0: more
 * left; -1: out of memory, the rest stays on disk), then
 * queue_recover_finish(). Messages recovered this way keep id order in
 * queue_foreach(), before the mail that came meanwhile.
 */
struct queue_recovery;
struct queue_recovery *queue_recover_start(struct queue *q,
    void (*cb)(void *arg, struct queue_msg *m), void *arg);
int queue_recover_step(struct queue_recovery *r, size_t max);
/* queue_recover_progress - files looked at so far, of the total listed at the start */
void queue_recover_progress(const struct queue_recovery *r, size_t *done, size_t *total);
struct queue_recovery *queue_recover_finish(struct queue_recovery *r);

/* queue_set_listener - cb(arg, m) runs on the loop after each successful commit */
void queue_set_listener(struct queue *q, void (*cb)(void *arg, struct queue_msg *m), void *arg);

/* --- writing a message ------------------------------------------------ */

/* queue_file_create - new file with a fresh queue id and the envelope records; env copied */
struct queue_file *queue_file_create(struct queue *q, const struct queue_envelope *env);
const char *queue_file_id(const struct queue_file *qf);
/* queue_file_write - append message content (CRLF line ends, already un-dot-stuffed) */
int queue_file_write(struct queue_file *qf, const void *data, size_t len);

/*
 * queue_file_add_flags - flags learnt from the content (QUEUE_F_WIRE: no
 * line starts with '.', no bare CR or LF, empty or ending with CRLF); they
 * are recorded at commit, as an 'f' state record right after the end record.
 */
void queue_file_add_flags(struct queue_file *qf, unsigned flags);
/* queue_file_size - content bytes written so far */
uint64_t queue_file_size(const struct queue_file *qf);
/*
 * queue_file_commit - write the headers to prepend at delivery (Received:,
 * and Message-ID:/Date: when missing; copied), the end record, and queue the
 * file for the next group sync. Takes qf. cb(arg, ok, id) runs later on the
 * loop: ok = 1 only when durable; on failure the file is gone.
 */
void queue_file_commit(struct queue_file *qf, const char *prepend, size_t prepend_len,
    void (*cb)(void *arg, int ok, const char *id), void *arg);
/* queue_file_abort - unlink and free an uncommitted file; returns NULL */
struct queue_file *queue_file_abort(struct queue_file *qf);

/* --- reading and updating (scheduler, UI, mtactl) -------------------- */

/* queue_lookup - by id; a parked message is loaded (beyond the window if need be) */
struct queue_msg *queue_lookup(struct queue *q, const char *id);
/* queue_foreach - every loaded message (the window), in arrival order */
void queue_foreach(struct queue *q, void (*cb)(void *arg, struct queue_msg *m), void *arg);

struct queue_reader;
/* queue_reader_open - the content as delivered: the prepended headers, then the data */
struct queue_reader *queue_reader_open(struct queue *q, const struct queue_msg *m);
/* queue_reader_read - up to len bytes; 0 at end; -1 on error */
ssize_t queue_reader_read(struct queue_reader *r, void *buf, size_t len);

/*
 * queue_reader_ranges - the content as delivered, as byte ranges of the
 * file (queue_reader_fd()): the prepend payload, then each content
 * record's payload, in order, each given to fn(arg, off, len) (which
 * returns 0, or -1 to stop). For sending straight from the page cache
 * (sendfile). 0, or -1 with errno (EIO: the file does not have the shape
 * its entry says). Use it instead of queue_reader_read(), not after it.
 */
int queue_reader_ranges(struct queue_reader *r,
    int (*fn)(void *arg, uint64_t off, uint64_t len), void *arg);
int queue_reader_fd(const struct queue_reader *r);
struct queue_reader *queue_reader_close(struct queue_reader *r);

/*
 * queue_update_rcpt - record a recipient's new state (appended to the file,
 * not synced: after a crash the worst case is a repeated attempt).
 */
int queue_update_rcpt(struct queue *q, struct queue_msg *m, size_t idx,
    enum queue_rcpt_state state, uint64_t next_try_us, const char *dsn, const char *reply);
int queue_set_held(struct queue *q, struct queue_msg *m, int held);
/*
 * queue_update_rcpt_hist - queue_update_rcpt() and, in the same append,
 * the attempt that led to it for the recipient's history (a may be NULL).
 * A deferral past QUEUE_HIST_WRITE_MAX is left out of the history.
 */
int queue_update_rcpt_hist(struct queue *q, struct queue_msg *m, size_t idx,
    enum queue_rcpt_state state, uint64_t next_try_us, const char *dsn, const char *reply,
    const struct queue_attempt *a);
/*
 * queue_hist_open - the file of message id, opened read-only for
 * queue_hist_read_fd() / queue_hist_json() (queue_tool.h, queue_view.h);
 * the caller closes it. -1 with errno (ENOENT: no such message).
 */
int queue_hist_open(struct queue *q, const char *id);
/* queue_update_flags - record new flags (e.g. QUEUE_F_CC cleared) */
int queue_update_flags(struct queue *q, struct queue_msg *m, unsigned flags);
/* queue_remove - unlink the file, free m, update counters */
int queue_remove(struct queue *q, struct queue_msg *m);
/*
 * queue_retire - the same for a message whose delivery is finished, except
 * that the file is unlinked a moment later off the event loop (a crash in
 * between repeats a delivery, the rare duplicate SPEC §5 allows). An
 * operator's delete uses queue_remove(): the file is gone when it returns.
 */
int queue_retire(struct queue *q, struct queue_msg *m);

/* --- the window (SPEC §11.5; queue_window.c, docs/queue.md) ---------- */

/*
 * queue_set_active_limit - at most limit messages in memory (0: every
 * message, the default). The others are parked: on disk only, loaded
 * again by a scan of queue/ when due and the window has room.
 */
void queue_set_active_limit(struct queue *q, size_t limit);
/*
 * queue_set_evictor - when a committed message finds the window full,
 * fn(arg) is asked to park one message that waits (queue_park()): 1 if it
 * did, 0 if nothing waits (the new message is parked instead).
 */
void queue_set_evictor(struct queue *q, int (*fn)(void *arg), void *arg);
/*
 * queue_park - m leaves memory (freed), its state stamped on its file; it
 * stays queued and is loaded again when due. The caller has dropped its
 * own state (m->sched NULL). -1: m stays loaded.
 */
int queue_park(struct queue *q, struct queue_msg *m);
/* queue_flush_parked - every parked message (not held) is due now, loaded as forced */
void queue_flush_parked(struct queue *q);
/*
 * queue_parked_set_held - hold (1) or release (0) parked message id
 * without keeping it in memory: read, its held record appended, parked
 * again (queue_parked.c). 1 changed, 0 it already was, -1 with errno
 * (ENOENT: not parked now: loaded, being committed, or gone).
 */
int queue_parked_set_held(struct queue *q, const char *id, int held);
/*
 * queue_parked_room - before loading a parked message on purpose (a
 * retry): waiting messages are parked until the window has room for
 * one. 1 room, 0 none (every loaded message is busy).
 */
int queue_parked_room(struct queue *q);

struct queue_parked_info {
	uint64_t messages, held, deferred, rcpts;  /* parked: by state, pending recipients */
	uint64_t oldest_arrival_us;  /* of the oldest parked message seen by the last scan; 0 */
	uint64_t loaded;             /* messages in memory */
	int      recovering;         /* recovery still reads queue/: parked ones cannot be loaded */
};
/*
 * queue_parked_walk - parked messages read from their files, in directory
 * order: skip parked files passed over unread, then up to max_read read
 * and given to cb(arg, m) (m valid during the call; cb returns 1 to
 * stop); *more = 1 when parked files were left unread. pos (may be NULL)
 * is a cursor: *pos > 0 resumes where a walk stopped (skip ignored); when
 * *more is set, *pos is where this one stopped. Blocking reads: the
 * caller bounds max_read. 0, or -1 with errno.
 */
int queue_parked_walk(struct queue *q, size_t skip, size_t max_read,
    int (*cb)(void *arg, const struct queue_msg *m), void *arg, int *more, long *pos);
/*
 * The index of parked messages (queue_pidx.c; docs/queue.md, "The index"):
 * <data_dir>/queue.idx holds, for every message that has been parked, its
 * id, arrival, size, sender and recipients. It is written when a message is
 * first parked (never for mail delivered from the window) and at a clean
 * stop, so a filtered view of a big queue reads that one file instead of one
 * file per message. After a crash it is rebuilt from queue/ off the event
 * loop; until that is done queue_pidx_ready() is 0 and views fall back to
 * queue_parked_walk().
 */
int queue_pidx_ready(const struct queue *q);
struct queue_pidx_scan;
/* queue_pidx_scan_open - a pass over every message parked now; NULL with errno */
struct queue_pidx_scan *queue_pidx_scan_open(struct queue *q);
/*
 * queue_pidx_scan_step - the next (at most) max records of the pass. For each
 * message still parked (loaded ones and files gone are passed over; each
 * message once per pass) cb(arg, m) gets its envelope from the index and
 * its file's stamp: id, sender, recipients, arrival, size, held; every
 * recipient pending, with attempts 1 when the message is deferred. When the
 * stamp says fewer recipients are pending than the message has, the file is
 * read and m is the whole message. m lives for the call; cb returns 1 to
 * stop. 0 more to do, 1 the pass is over (or was stopped), -1 with errno.
 * Blocking reads on the calling thread: the caller bounds max.
 */
int queue_pidx_scan_step(struct queue_pidx_scan *s, size_t max,
    int (*cb)(void *arg, const struct queue_msg *m), void *arg);
/* queue_pidx_scan_close - end a pass; returns NULL */
struct queue_pidx_scan *queue_pidx_scan_close(struct queue_pidx_scan *s);
/*
 * queue_parked_read - parked message id read whole from its file, given to
 * cb(arg, m) once (m lives for the call), without loading it. 0, or -1
 * with errno (ENOENT: no such parked message).
 */
int queue_parked_read(struct queue *q, const char *id,
    int (*cb)(void *arg, const struct queue_msg *m), void *arg);
/* queue_parked - what the parked messages add to the counters of the loaded ones */
void queue_parked(const struct queue *q, struct queue_parked_info *out);

/*
 * Live counters (SPEC §7 Mqueue-Messages, Mqueue-Kilobytes): every queued
 * message, loaded or parked; bytes are the sizes of their files. While
 * recovery's first pass runs, the files it has not reached yet are not
 * counted.
 */
uint64_t queue_count(const struct queue *q);
uint64_t queue_bytes(const struct queue *q);
const char *queue_data_dir(const struct queue *q);

#endif
