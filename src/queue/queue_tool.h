/*
 * queue_tool.h - queue files read one at a time, without a struct queue:
 *                check and load a file, stream its content (public
 *                interface of src/queue/ for tools such as mtactl; the
 *                daemon's recovery uses the same calls)
 *
 * Owns:     nothing past a call: the caller keeps the file descriptor
 *           (until queue_reader_fdopen() takes it) and the message.
 * Lifetime: a loaded struct queue_msg until queue_rec_msg_free_fields().
 * Errors:   a damaged file is a verdict (QUEUE_PARSE_CORRUPT with a
 *           reason), never an error; -1 with errno only when the file
 *           cannot be read.
 * Context:  any thread; blocking reads (not for the event loop, except
 *           before it runs, as queue_recover() does).
 *
 * These calls only read: a tool that wants the queue changed asks the
 * daemon (only mtad writes to data_dir). The file format is described in
 * src/queue/queue_rec.h and docs/queue.md.
 */
#ifndef MTAD_QUEUE_TOOL_H
#define MTAD_QUEUE_TOOL_H

#include "queue/queue.h"

#include <stdint.h>

/* The verdict on one file. */
enum queue_parse_status {
	QUEUE_PARSE_OK = 0,          /* committed; state applied */
	QUEUE_PARSE_UNCOMMITTED,     /* no complete end record: never acknowledged */
	QUEUE_PARSE_CORRUPT,         /* see reason */
	QUEUE_PARSE_NOMEM,
};

/* Where things are in the file, for the reader and for truncating a torn tail. */
struct queue_loc {
	uint64_t data_off;           /* first 'D' record (or the 'P' record if none) */
	uint64_t prepend_off;        /* the 'P' record header */
	uint32_t prepend_len;
	uint64_t good_len;           /* end of the last good record */
	int      state_cut;          /* a state record was torn or failed its crc */
};

/* What queue_reader_parse_fd() found besides the message. */
struct queue_parse_result {
	enum queue_parse_status status;
	const char *reason;          /* CORRUPT: static text (may be NULL) */
	uint64_t    bad_off;         /* CORRUPT: offset of the record at fault */
	uint64_t    length;          /* bytes the parser consumed */
	struct queue_loc loc;        /* OK: where the content and the good state end */
};

/*
 * queue_open_read - openat(dirfd, name, O_RDONLY | flags) without updating
 * the file's access time (O_NOATIME: a queue file's atime is never used,
 * and an update dirties its inode, which the next group sync then writes:
 * after a restart, for every file read). Falls back to a plain open when
 * the file is not the caller's (EPERM). A descriptor, or -1 with errno.
 */
int queue_open_read(int dirfd, const char *name, int flags);

/*
 * queue_recover_open - open dirfd/name (a queue file) for queue_reader_parse_fd():
 * never blocks and never follows a link. -1 with errno when it cannot be
 * opened; ELOOP (a symbolic link) or EINVAL (a FIFO, device, directory...)
 * when it is not a regular file.
 */
int queue_recover_open(int dirfd, const char *name);

/*
 * queue_reader_parse_fd - read fd from its current offset to its end through the
 * queue's record parser (every check recovery makes). Returns 0 with the
 * verdict in *res; on QUEUE_PARSE_OK *m holds the message (m->id is left
 * empty: the file name is the id) until queue_rec_msg_free_fields(), otherwise
 * *m is empty. -1 with errno when a read fails (*m empty). fd is borrowed.
 */
int queue_reader_parse_fd(int fd, struct queue_msg *m, struct queue_parse_result *res);

/* queue_rec_msg_free_fields - free the strings and recipients of m (not m) */
void queue_rec_msg_free_fields(struct queue_msg *m);

/* queue_rec_msg_pending - 1 while some recipient still waits (a file without one is finished) */
int queue_rec_msg_pending(const struct queue_msg *m);

/*
 * queue_reader_fdopen - stream a file queue_reader_parse_fd() accepted, from the
 * locations it reported: the prepended headers, then the content (read with
 * queue_reader_read()). Takes fd (queue_reader_close() closes it); on NULL
 * (out of memory) fd is still the caller's.
 */
struct queue_reader *queue_reader_fdopen(int fd, const struct queue_loc *loc);

/*
 * queue_hist_read_fd - the attempts recorded in an open queue file (fd
 * borrowed, read with pread from offset 0), in file order, through cb
 * (0 to go on, -1 to stop). The walk skips the content by record
 * lengths and stops quietly at a torn or damaged state record, and after
 * QUEUE_HIST_READ_MAX state records (a bound on the time one request may
 * take). 0, or -1 with errno when a read fails or the file is not a
 * committed queue file.
 */
#define QUEUE_HIST_READ_MAX 100000
int queue_hist_read_fd(int fd, int (*cb)(void *arg, const struct queue_attempt *a), void *arg);

#endif
