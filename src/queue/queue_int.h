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
#include <stdint.h>

struct event;

/* A queued message: the public struct plus index links and file offsets. */
struct queue_ent {
	struct queue_msg m;          /* first member: container of &m */
	uint64_t key;                /* the queue id as a number */
	struct queue_ent *hnext;     /* hash chain */
	struct queue_ent *prev, *next; /* arrival order */
	uint64_t data_off;           /* first content record */
	uint64_t prepend_off;        /* the prepend record header */
	uint32_t prepend_len;
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

	/* index: hash id -> entry, and a list in arrival order */
	struct queue_ent **bucket;
	size_t nbucket;              /* power of two */
	struct queue_ent *head, *tail;
	uint64_t count, bytes;
	int recovering;              /* a recovery runs in slices (queue_recover_start) */
	struct queue_ent *recover_anchor; /* the last recovered entry; NULL: insert at head */

	void (*listener)(void *, struct queue_msg *);
	void *listener_arg;

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
};

/* queue_index.c: ids, entries, the index and its counters */
void queue_index_insert(struct queue *q, struct queue_ent *e);
void queue_index_unlink(struct queue *q, struct queue_ent *e);
/* queue_index_insert_recovered - a recovered message: after the recovered ones, before newer mail */
void queue_index_insert_recovered(struct queue *q, struct queue_ent *e);
/* queue_index_hash - the bucket of a key */
size_t queue_index_hash(const struct queue *q, uint64_t key);
struct queue_ent *queue_index_ent_new(void);
struct queue_ent *queue_index_ent_free(struct queue_ent *e);
uint64_t queue_index_id_key(const char *id);
void queue_index_id_format(uint64_t key, char *out);

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

#endif
