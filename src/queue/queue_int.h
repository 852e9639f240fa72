/*
 * queue_int.h - the queue's internal structures, shared by the files of
 *               src/queue/ (private: no other component includes it)
 *
 * Owns:     nothing itself; documents who owns what below.
 * Lifetime: see struct queue and struct queue_ent.
 * Errors:   n/a.
 * Context:  fields under "worker" are shared with the commit thread and
 *           guarded by queue.mu; everything else is event-loop only.
 */
#ifndef MTAD_QUEUE_INT_H
#define MTAD_QUEUE_INT_H

#include "queue/queue.h"

#include <pthread.h>
#include <sys/stat.h>
#include <stdint.h>

struct event;
struct map;
struct queue_pidx;
struct queue_scan;

/* What the parked messages (on disk only) add to the counters. */
struct queue_parked {
	uint64_t n, held, deferred, rcpts;
	uint64_t oldest_key;         /* the smallest id seen parked (0: none known) */
};

/* A queued message: the public struct plus index links and file offsets. */
struct queue_ent {
	struct queue_msg m;          /* first member: container of &m */
	uint64_t key;                /* the queue id as a number */
	struct queue_ent *prev, *next; /* arrival order */
	uint64_t data_off;           /* first content record */
	uint64_t prepend_off;        /* the prepend record header */
	uint32_t prepend_len;
	unsigned indexed : 1;        /* queue.idx has its record (queue_pidx.c): loaded from its file, or parked */
};

#define QUEUE_ENT(mp) ((struct queue_ent *)(void *)(mp))

/* An open, not yet durable message file. */
struct queue_file {
	struct queue *q;
	struct queue_ent *ent;       /* built at create; inserted when durable */
	char id[QUEUE_ID_SIZE];
	int fd;
	unsigned char *buf;          /* QUEUE_WBUF_SIZE; freed at commit */
	size_t used;
	size_t drec;                 /* offset in buf of the open 'D' header, or SIZE_MAX */
	uint64_t off;                /* bytes written to the file so far */
	uint64_t data_size;
	uint32_t crc;                /* CRC-32C of the bytes written so far */
	int err;                     /* first write errno; 0 if none */
	unsigned add_flags;          /* queue_file_add_flags(): an 'f' record at commit */
	int ok;                      /* set by the worker */
	int moved;                   /* renamed into queue/ by the worker */
	int listed;                  /* in queue.committing */
	void (*cb)(void *, int, const char *);
	void *cb_arg;
	struct queue_file *next;     /* pending / done lists */
};

#define QUEUE_WBUF_SIZE (16 * 1024)
#define QUEUE_SPARE_MAX 64
#define QUEUE_UNLINK_MAX 4096

struct queue {
	struct event_base *base;
	char *data_dir;
	int qdirfd;                  /* <data_dir>/queue: committed messages */
	int idirfd;                  /* <data_dir>/incoming: spares, files being written */
	int cdirfd;                  /* <data_dir>/corrupt */
	uint64_t last_id;            /* under mu once the spare thread runs */

	/* index: id -> loaded entry, and a list in arrival order */
	struct map *index;
	struct queue_ent *head, *tail;
	uint64_t count, bytes;       /* every message: loaded and parked */
	int recovering;              /* a recovery runs in slices (queue_recover_start) */
	struct queue_ent *recover_anchor; /* the last recovered entry; NULL: insert at head */

	void (*listener)(void *, struct queue_msg *);
	void *listener_arg;

	/* the window (queue_window.c): at most `limit` messages in memory */
	size_t limit;                /* 0: no limit, every message is loaded */
	size_t nloaded;              /* entries in the index */
	int (*evict)(void *);        /* make room: park one waiting message; 1 if done */
	void *evict_arg;
	struct queue_parked pk;      /* the parked messages, from their files' stamps */
	struct map *committing;      /* ids being committed (their files may be in queue/) */
	struct map *unlinking;       /* ids retired, not yet unlinked (under mu) */
	struct queue_scan *scan;     /* the refill scan; NULL before the first */
	struct event *ev_scan;
	uint64_t scan_next_us;       /* wall clock: the next pass is wanted then (UINT64_MAX: none) */
	int scan_flush;              /* a flush: every parked file is due, loaded as forced */
	int scan_want_room;          /* due files wait for room in the window */
	unsigned flush_gen, flush_done_gen; /* flushes asked for, and covered by a whole pass */

	/* worker */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	int thread_started;
	int stop;
	struct queue_file *pend_head, *pend_tail;   /* waiting for the next sync */
	struct queue_file *done_head, *done_tail;   /* synced, for the loop */
	uint64_t stat_syncs, stat_synced;            /* batches, messages */
	int sync_files;              /* 1: fdatasync each file + fsync dir (tests, fallback) */
	/* spare files: created ahead by their own thread, so that the loop never
	 * waits in openat(O_CREAT) behind a journal commit */
	pthread_cond_t spare_cv;
	pthread_t spare_thread;
	int spare_started;           /* 0 not yet, 1 running, -1 could not start */
	struct queue_spare { int fd; uint64_t key; } spare[QUEUE_SPARE_MAX];
	size_t spare_head, spare_n;  /* ring */
	uint64_t spare_floor;        /* first key the spare thread may use */
	/* files of delivered messages: unlinked by the spare thread, because an
	 * unlink on ext4 can wait behind a journal commit just as a create can */
	uint64_t unlink_key[QUEUE_UNLINK_MAX];
	size_t unlink_head, unlink_n; /* ring */
	int efd;                     /* eventfd: worker -> loop */
	void (*synced)(struct queue *, struct queue_file *, int);  /* loop end of a commit */
	struct event *ev_done;
	int closing;

	struct queue_pidx *pidx;     /* the index of parked messages (queue_pidx.c); NULL before recovery */
	int pidx_hold;               /* tests: queue_pidx_tune() */
};

/* queue_index.c: ids, entries, the index and its counters */
/* queue_index_insert - into the index (nloaded); -1 out of memory */
int queue_index_insert(struct queue *q, struct queue_ent *e);
void queue_index_unlink(struct queue *q, struct queue_ent *e);
/* queue_index_insert_recovered - a recovered message: after the recovered ones, before newer mail */
int queue_index_insert_recovered(struct queue *q, struct queue_ent *e);
/* queue_index_find - the loaded entry of key, or NULL */
struct queue_ent *queue_index_find(const struct queue *q, uint64_t key);
struct queue_ent *queue_index_ent_new(void);
struct queue_ent *queue_index_ent_free(struct queue_ent *e);
uint64_t queue_index_id_key(const char *id);
void queue_index_id_format(uint64_t key, char *out);

/* queue_window.c: parking, loading, the refill scan (and recovery's first pass) */
/* queue_window_room_freed - a message left the index: a refill waiting for room goes on */
void queue_window_room_freed(struct queue *q);
/* queue_window_busy - key's file must not be loaded: in memory, being committed or retired */
int queue_window_busy(struct queue *q, uint64_t key);
/* queue_window_pk - a parked file (its stamp in *st) joins (sign 1) or leaves (-1) the totals */
void queue_window_pk(struct queue *q, uint64_t key, const struct stat *st, int sign);
/* queue_window_stamp - write e's state into its file's mode and mtime; *st as written */
int queue_window_stamp(struct queue *q, struct queue_ent *e, struct stat *st);
/* queue_window_commit_room - 1: a committed message may be loaded; 0: park it */
int queue_window_commit_room(struct queue *q);
/* queue_window_park_new - a committed message parked at once (e is still the caller's) */
void queue_window_park_new(struct queue *q, struct queue_ent *e);
/* queue_window_lookup - load a parked message asked for by id; NULL if none */
struct queue_msg *queue_window_lookup(struct queue *q, uint64_t key);
int queue_window_init(struct queue *q);
void queue_window_free(struct queue *q);
/* queue_scan_begin - open a pass (counting = recovery's first); -1 when queue/ cannot be listed */
int queue_scan_begin(struct queue *q, int counting, void (*cb)(void *, struct queue_msg *),
    void *arg);
/* queue_scan_step - the next max entries: 0 more, 1 over, 2 paused for room, -1 out of memory */
int queue_scan_step(struct queue *q, size_t max);
/* queue_scan_finish_counting - recovery's pass is over: refills from now on */
void queue_scan_finish_counting(struct queue *q);
size_t queue_scan_seen(const struct queue *q);
void queue_scan_summary(const struct queue *q, size_t *kept, size_t *dropped, size_t *skipped);

/* queue_recover.c: loading one file (recovery, refills, look-ups) */
enum { QUEUE_LOAD_KEPT, QUEUE_LOAD_GONE, QUEUE_LOAD_LEFT, QUEUE_LOAD_NOMEM };
/*
 * queue_window_load_key - parse queue/ID of key, counted and parked as *st
 * says, and act on the verdict (*verdict): a pending message joins the
 * index and is returned; a finished or uncommitted file is removed and a
 * corrupt one quarantined (both leave the counters); an unreadable one
 * stays (LEFT), as it does when memory runs out (NOMEM).
 */
struct queue_ent *queue_window_load_key(struct queue *q, uint64_t key, const struct stat *st,
    int *verdict);

/* queue_file.c: the loop's end of a commit (called back by queue_sync.c) */
void queue_file_synced(struct queue *q, struct queue_file *qf, int run_listener);

/* queue_sync.c: the commit worker, the spare-file thread, the delayed unlink */
int queue_sync_start(struct queue *q, void (*synced)(struct queue *, struct queue_file *, int),
    char *err, size_t errlen);
void queue_sync_stop(struct queue *q);
/* queue_sync_take_file - an open, empty file in incoming/ with a fresh id (a spare, or made now) */
int queue_sync_take_file(struct queue *q, char *id, uint64_t *keyp);
/* queue_sync_submit - a written file joins the next group sync (takes qf) */
void queue_sync_submit(struct queue *q, struct queue_file *qf);
/* queue_sync_unlink_later - hand queue/ID to the spare thread for unlinking; -1: do it yourself */
int queue_sync_unlink_later(struct queue *q, const char *id);

/* queue_pidx.c: the index of parked messages, <data_dir>/queue.idx */
/*
 * queue_pidx_start - at queue_recover_start() (the id counter raised above
 * every file, nothing created yet): trust the index left by a clean stop
 * (checked on its thread) or rebuild it there from queue/
 */
void queue_pidx_start(struct queue *q);
/*
 * queue_pidx_go - at recovery's first step: the check or the rebuild
 * prepared by queue_pidx_start() starts on its thread (queue/ is readable
 * now: after a crash, mtad-chown may have been giving it to mail_owner)
 */
void queue_pidx_go(struct queue *q);
/* queue_pidx_add - e is parked: its record is appended unless it has one (e->indexed) */
void queue_pidx_add(struct queue *q, struct queue_ent *e);
/*
 * queue_pidx_tune - tests: hold (1) a rewrite of the index before its swap
 * (also one started later by queue_pidx_start()), or let it go (0); the
 * records beyond twice the queue that start a compaction (default 4096)
 */
void queue_pidx_tune(struct queue *q, int hold, uint64_t slack);
/* queue_pidx_records - records in the index file (tests) */
uint64_t queue_pidx_records(const struct queue *q);
/* queue_pidx_close - at queue_close(): the loaded messages' missing records, fsync, the marker */
void queue_pidx_close(struct queue *q);

/* queue_pread_exact - exactly len bytes at off: 1, 0 at a short file, -1 with errno (queue_reader.c) */
int queue_pread_exact(int fd, void *buf, size_t len, uint64_t off);

#endif
