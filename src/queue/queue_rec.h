/*
 * queue_rec.h - the queue file record format: encoders and the resumable
 *               parser (private to src/queue/, its tests and the fuzz
 *               harness; tools read files through queue_tool.h)
 *
 * Owns:     the on-disk format constants; struct queue_parse owns the
 *           strings it collected until they are taken or it is freed.
 * Lifetime: struct queue_parse from queue_rec_parse_init() to queue_rec_parse_free().
 * Errors:   the parser never fails on content: it reports
 *           QUEUE_PARSE_CORRUPT with a reason; allocation failure is
 *           QUEUE_PARSE_NOMEM (the file is left alone).
 * Context:  any thread; no I/O.
 *
 * File layout (all integers little-endian; described in docs/queue.md):
 *
 *   header   "MTQF" (4 bytes), version (1 byte, = 1), 3 zero bytes
 *   record   type (1 byte), len (u32), payload[len]
 *
 *   1. envelope, each at most once except 'R', in any order:
 *        'F' flags u32    'S' sender    'R' recipient (one each, >= 1)
 *        'C' client addr  'N' client name  'H' helo
 *      ('S' and at least one 'R' are required; strings have no NUL)
 *   2. 'D' content chunks, 1..QUEUE_REC_DATA_MAX bytes each, any number
 *   3. 'P' the headers prepended at delivery (0..QUEUE_REC_PREPEND_MAX)
 *   4. 'E' end: arrival_us u64, data_size u64, crc u32 = CRC-32C of
 *      every byte of the file before this crc field.
 *   5. state records, appended later, each closed by its own crc u32 =
 *      CRC-32C of the record's type, len and the payload before the crc:
 *        'r' rcpt state: idx u32, state u8, attempts u32, next_try_us u64,
 *            dsn_len u8, dsn, reply (the rest; empty = none)
 *        'h' held u8 (0 or 1)
 *        'f' flags u32
 *        'a' one delivery attempt of a recipient (its history, read on
 *            demand, never kept in memory): idx u32, result u8 (0
 *            deferred, 1 delivered, 2 bounced), attempt u32 (1 = first),
 *            time_us u64 (when it ended), delays 4 x u32 ms (Postfix's
 *            delays=a/b/c/d), host_len u16, dsn_len u8, host, dsn,
 *            reply (the rest; at most QUEUE_REC_HIST_REPLY_MAX)
 *
 * A file that ends before a complete 'E' is uncommitted (a crash before
 * the sync; never acknowledged). A state record that is incomplete or
 * fails its crc ends the state: it and anything after it are ignored
 * (at worst a delivery attempt repeats). Everything else that does not
 * match the above is corrupt.
 */
#ifndef MTAD_QUEUE_REC_H
#define MTAD_QUEUE_REC_H

#include "queue/queue.h"
#include "queue/queue_tool.h"

#include <stddef.h>
#include <stdint.h>

#define QUEUE_REC_MAGIC        "MTQF"
#define QUEUE_REC_VERSION      1
#define QUEUE_REC_FILEHDR      8
#define QUEUE_REC_HDR          5          /* type + u32 len */

#define QUEUE_REC_FLAGS        'F'
#define QUEUE_REC_SENDER       'S'
#define QUEUE_REC_RCPT         'R'
#define QUEUE_REC_CLIENT_ADDR  'C'
#define QUEUE_REC_CLIENT_NAME  'N'
#define QUEUE_REC_HELO         'H'
#define QUEUE_REC_DATA         'D'
#define QUEUE_REC_PREPEND      'P'
#define QUEUE_REC_END          'E'
#define QUEUE_REC_ST_RCPT      'r'
#define QUEUE_REC_ST_HELD      'h'
#define QUEUE_REC_ST_FLAGS     'f'
#define QUEUE_REC_ST_ATTEMPT   'a'

#define QUEUE_REC_END_LEN      20         /* arrival, data size, crc */
#define QUEUE_REC_ADDR_MAX     1024       /* sender or one recipient */
#define QUEUE_REC_TEXT_MAX     1024       /* client addr/name, helo */
#define QUEUE_REC_DATA_MAX     65536
#define QUEUE_REC_PREPEND_MAX  (256 * 1024)
#define QUEUE_REC_DSN_MAX      11         /* fits queue_rcpt.dsn[12] */
#define QUEUE_REC_REPLY_MAX    2048       /* longer replies are cut */
#define QUEUE_REC_RCPT_MAX     100000
/* 'r' payload: 4+1+4+8+1 fixed, dsn, reply, crc */
#define QUEUE_REC_ST_RCPT_MIN  (18 + 4)
#define QUEUE_REC_ST_RCPT_MAX  (QUEUE_REC_ST_RCPT_MIN + QUEUE_REC_DSN_MAX + QUEUE_REC_REPLY_MAX)
#define QUEUE_REC_ST_MAXLEN    (QUEUE_REC_HDR + QUEUE_REC_ST_RCPT_MAX)
/* 'a' payload: 4+1+4+8+16+2+1 fixed, host, dsn, reply, crc */
#define QUEUE_REC_HIST_FIXED   36
#define QUEUE_REC_HIST_MIN     (QUEUE_REC_HIST_FIXED + 4)
#define QUEUE_REC_HIST_MAX     (QUEUE_REC_HIST_MIN + QUEUE_ATTEMPT_HOST_MAX + QUEUE_REC_DSN_MAX + \
                                QUEUE_ATTEMPT_REPLY_MAX)
#define QUEUE_REC_COLLECT_MAX  4096       /* largest payload the parser keeps */

_Static_assert(QUEUE_REC_HIST_MAX <= QUEUE_REC_COLLECT_MAX, "an 'a' record fits the parser's buffer");
_Static_assert(QUEUE_REC_HDR + QUEUE_REC_HIST_MAX <= QUEUE_REC_ST_MAXLEN,
    "an 'a' record fits a state record buffer");

/* enum queue_parse_status and struct queue_loc are in queue_tool.h. */

struct queue_parse {
	/* position */
	int          phase;
	int          stage;          /* envelope, data, end, state */
	uint64_t     off;            /* bytes consumed */
	uint32_t     crc;            /* running CRC of everything before the end crc */
	unsigned char hdr[QUEUE_REC_FILEHDR];
	size_t       hlen;
	unsigned     type;           /* current record */
	uint32_t     len, got;
	uint64_t     rec_off;
	int          collect;        /* payload kept in buf */
	unsigned char buf[QUEUE_REC_COLLECT_MAX];
	uint64_t     data_seen;
	unsigned     seen;           /* bit per envelope record type seen */
	size_t       rcpt_cap;
	/* results */
	enum queue_parse_status status;
	const char  *reason;         /* static text, for the log line */
	uint64_t     bad_off;        /* offset of the record at fault */
	struct queue_msg msg;        /* id is not set by the parser */
	struct queue_loc loc;
};

void queue_rec_parse_init(struct queue_parse *p);
/* queue_rec_parse_feed - consume len bytes (any chunking); -1 once the file is known corrupt */
int queue_rec_parse_feed(struct queue_parse *p, const void *data, size_t len);
/* queue_rec_parse_finish - end of file reached: the verdict (p->status) */
enum queue_parse_status queue_rec_parse_finish(struct queue_parse *p);
/* queue_rec_parse_take - move the parsed strings into *m (p keeps nothing) */
void queue_rec_parse_take(struct queue_parse *p, struct queue_msg *m);
void queue_rec_parse_free(struct queue_parse *p);
/* queue_rec_parse_buffer - init p and parse a whole file held in one buffer (tests, fuzzing) */
enum queue_parse_status queue_rec_parse_buffer(struct queue_parse *p, const void *data, size_t len);

/* Encoders. */
void queue_rec_put32(unsigned char *p, uint32_t v);
void queue_rec_put64(unsigned char *p, uint64_t v);
uint32_t queue_rec_get32(const unsigned char *p);
uint64_t queue_rec_get64(const unsigned char *p);
/* queue_rec_hdr - the 5-byte record header */
void queue_rec_hdr(unsigned char *out, unsigned type, uint32_t len);
/* queue_rec_filehdr - the 8-byte file header */
void queue_rec_filehdr(unsigned char *out);
/*
 * queue_rec_state_* - a complete state record (crc included) in out, which
 * has QUEUE_REC_ST_MAXLEN bytes; returns its length. dsn and reply may be
 * NULL; a longer reply is cut at QUEUE_REC_REPLY_MAX, a dsn at its max.
 */
size_t queue_rec_state_rcpt(unsigned char *out, uint32_t idx, unsigned state,
    uint32_t attempts, uint64_t next_try_us, const char *dsn, const char *reply);
size_t queue_rec_state_held(unsigned char *out, int held);
size_t queue_rec_state_flags(unsigned char *out, uint32_t flags);
/* queue_rec_state_attempt - an 'a' record (host, dsn and reply cut at their maxima) */
size_t queue_rec_state_attempt(unsigned char *out, const struct queue_attempt *a);
/*
 * queue_rec_attempt_decode - an 'a' record's payload without its crc
 * (body, len) into *a: 0, or -1 when the lengths or the result make no sense
 */
int queue_rec_attempt_decode(const unsigned char *body, size_t len, struct queue_attempt *a);

#endif
