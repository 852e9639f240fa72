/*
 * queue_pidx.h - the record format of the index of parked messages
 *                (<data_dir>/queue.idx; private to src/queue/ and its
 *                tests and fuzz harness)
 *
 * Owns:     nothing: queue_pidx_rec.c encodes, decodes and reads records.
 * Lifetime: a decoded record points into the buffer it was decoded from.
 * Errors:   the decoder says "bad" (-1) for anything that is not a whole,
 *           checksummed, well-formed record; it never reads past avail.
 * Context:  any thread (pure functions).
 *
 * The file (docs/queue.md, "The index"): an 8-byte header "mtaidx1\n",
 * then records, each (integers little-endian):
 *
 *   u32 len           bytes after this field, the checksum included
 *                     (36 .. QUEUE_PIDX_REC_MAX - 4)
 *   u64 key           the queue id as a number (queue_index_id_key())
 *   u64 arrival_us
 *   u64 size          content bytes as delivered (queue_msg.size)
 *   u32 nrcpt         recipients (1 .. QUEUE_REC_RCPT_MAX)
 *   u32 flags         QUEUE_PIDX_F_NOADDR: the addresses are left out
 *   ...               sender NUL, then nrcpt recipients, each NUL-ended
 *                     (nothing with QUEUE_PIDX_F_NOADDR)
 *   u32 crc           CRC-32C of every byte of the record before it
 *
 * A record that fails any check ends what can be used of the file.
 */
#ifndef MTAD_QUEUE_PIDX_H
#define MTAD_QUEUE_PIDX_H

#include "queue/queue.h"

#include <stddef.h>
#include <stdint.h>

#define QUEUE_PIDX_MAGIC      "mtaidx1\n"
#define QUEUE_PIDX_MAGIC_LEN  8
#define QUEUE_PIDX_REC_MAX    (1024 * 1024)   /* a whole record, at most */
#define QUEUE_PIDX_REC_FIXED  36              /* len + key + arrival + size + nrcpt + flags */
#define QUEUE_PIDX_REC_MIN    (QUEUE_PIDX_REC_FIXED + 4)
#define QUEUE_PIDX_F_NOADDR   1u              /* too many addresses: read the message file */

/* One decoded record; strs points into the decoded buffer. */
struct queue_pidx_rec {
	uint64_t key, arrival_us, size;
	uint32_t nrcpt, flags;
	const char *strs;            /* sender NUL rcpt NUL ...; NULL with QUEUE_PIDX_F_NOADDR */
	size_t strs_len;
};

/*
 * queue_pidx_rec_encode - m's record under key into out (cap bytes); its
 * length, or 0 when it does not fit in cap. A message whose addresses do
 * not fit in QUEUE_PIDX_REC_MAX gets QUEUE_PIDX_F_NOADDR.
 */
size_t queue_pidx_rec_encode(unsigned char *out, size_t cap, uint64_t key, const struct queue_msg *m);
/* queue_pidx_rec_encoded_len - the length queue_pidx_rec_encode() needs for m */
size_t queue_pidx_rec_encoded_len(const struct queue_msg *m);
/*
 * queue_pidx_rec_decode - the record at buf (avail bytes there): 1 with *r and
 * *used (its whole length), 0 when more bytes are needed (*used: at least
 * how many in all), -1 when buf does not start a valid record.
 */
int queue_pidx_rec_decode(const unsigned char *buf, size_t avail, struct queue_pidx_rec *r,
    size_t *used);

/*
 * A buffered reader of the records in [QUEUE_PIDX_MAGIC_LEN, end) of an
 * index file (pread: the file offset is not used, fd is borrowed).
 */
struct queue_pidx_rd {
	int fd;
	uint64_t off, end;           /* the next byte to read; where the pass stops */
	unsigned char *buf;
	size_t cap, pos, have;       /* bytes at buf[pos..have) are read, not decoded */
};

/* queue_pidx_rec_rd_init - a reader of fd up to end; -1 out of memory */
int queue_pidx_rec_rd_init(struct queue_pidx_rd *rd, int fd, uint64_t end);
void queue_pidx_rec_rd_free(struct queue_pidx_rd *rd);
/*
 * queue_pidx_rec_rd_next - the next record: 1 (*r points into the buffer
 * until the next call; *raw, *rawlen its bytes), 0 at the end, -1 with
 * errno (EIO: damaged or cut short; ENOMEM; a read error)
 */
int queue_pidx_rec_rd_next(struct queue_pidx_rd *rd, struct queue_pidx_rec *r,
    const unsigned char **raw, size_t *rawlen);
/* queue_pidx_rec_magic_ok - 0 when fd starts with QUEUE_PIDX_MAGIC; -1 (EIO) if not */
int queue_pidx_rec_magic_ok(int fd);

#endif
