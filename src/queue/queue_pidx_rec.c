/*
 * queue_pidx_rec.c - the records of the index of parked messages
 *                    (<data_dir>/queue.idx): encoding, a strict decoder,
 *                    and a buffered sequential reader of the file
 *
 * Owns:     a reader's buffer, from queue_pidx_rec_rd_init() to
 *           queue_pidx_rec_rd_free().
 * Lifetime: a decoded record points into the buffer it was decoded from.
 * Errors:   the decoder says "bad" for anything that is not a whole,
 *           checksummed, well-formed record; the reader fails with EIO at
 *           the first such record (the rest of the file is unusable).
 * Context:  any thread (the index's thread reads with it too).
 *
 * The format is described in queue_pidx.h and docs/queue.md ("The index").
 */
#include "queue/queue_int.h"
#include "queue/queue_pidx.h"
#include "queue/queue_rec.h"
#include "lib/crc32c.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PIDX_RBUF (256 * 1024)          /* a reader's buffer (grown for a bigger record) */

/* pidx_strs_len - bytes of m's addresses in a record (SIZE_MAX: more than a record holds) */
static size_t
pidx_strs_len(const struct queue_msg *m)
{
	size_t n = strnlen(m->sender != NULL ? m->sender : "", QUEUE_PIDX_REC_MAX) + 1;

	for (size_t i = 0; i < m->nrcpt; i++) {
		n += strnlen(m->rcpt[i].addr != NULL ? m->rcpt[i].addr : "", QUEUE_PIDX_REC_MAX) + 1;
		if (n > QUEUE_PIDX_REC_MAX)
			return SIZE_MAX;
	}
	if (n + QUEUE_PIDX_REC_MIN > QUEUE_PIDX_REC_MAX)
		return SIZE_MAX;
	return n;
}

/* queue_pidx_rec_encoded_len - see queue_pidx.h */
size_t
queue_pidx_rec_encoded_len(const struct queue_msg *m)
{
	size_t n = pidx_strs_len(m);

	return QUEUE_PIDX_REC_MIN + (n == SIZE_MAX ? 0 : n);
}

/* queue_pidx_rec_encode - see queue_pidx.h */
size_t
queue_pidx_rec_encode(unsigned char *out, size_t cap, uint64_t key, const struct queue_msg *m)
{
	size_t sl = pidx_strs_len(m), total, off = QUEUE_PIDX_REC_FIXED;
	uint32_t flags = 0;
	uint64_t nrcpt = m->nrcpt;

	if (sl == SIZE_MAX) {
		flags |= QUEUE_PIDX_F_NOADDR;
		sl = 0;
	}
	if (nrcpt == 0 || nrcpt > QUEUE_REC_RCPT_MAX)
		return 0;       /* not a queue message: a parse never gives one */
	total = QUEUE_PIDX_REC_MIN + sl;
	if (total > cap)
		return 0;
	queue_rec_put32(out, (uint32_t)(total - 4));
	queue_rec_put64(out + 4, key);
	queue_rec_put64(out + 12, m->arrival_us);
	queue_rec_put64(out + 20, m->size);
	queue_rec_put32(out + 28, (uint32_t)nrcpt);
	queue_rec_put32(out + 32, flags);
	if (!(flags & QUEUE_PIDX_F_NOADDR)) {
		const char *s = m->sender != NULL ? m->sender : "";
		size_t l = strlen(s);

		memcpy(out + off, s, l + 1);
		off += l + 1;
		for (size_t i = 0; i < m->nrcpt; i++) {
			s = m->rcpt[i].addr != NULL ? m->rcpt[i].addr : "";
			l = strlen(s);
			memcpy(out + off, s, l + 1);
			off += l + 1;
		}
	}
	queue_rec_put32(out + off, crc32c(0, out, off));
	return total;
}

/* queue_pidx_rec_decode - see queue_pidx.h */
int
queue_pidx_rec_decode(const unsigned char *buf, size_t avail, struct queue_pidx_rec *r,
    size_t *used)
{
	size_t total, sl, nul = 0;
	uint32_t len;

	if (avail < 4) {
		*used = 4;
		return 0;
	}
	len = queue_rec_get32(buf);
	if (len < QUEUE_PIDX_REC_MIN - 4 || len > QUEUE_PIDX_REC_MAX - 4)
		return -1;
	total = (size_t)len + 4;
	if (avail < total) {
		*used = total;
		return 0;
	}
	if (crc32c(0, buf, total - 4) != queue_rec_get32(buf + total - 4))
		return -1;
	r->key = queue_rec_get64(buf + 4);
	r->arrival_us = queue_rec_get64(buf + 12);
	r->size = queue_rec_get64(buf + 20);
	r->nrcpt = queue_rec_get32(buf + 28);
	r->flags = queue_rec_get32(buf + 32);
	sl = total - QUEUE_PIDX_REC_MIN;
	if (r->key == 0 || r->nrcpt == 0 || r->nrcpt > QUEUE_REC_RCPT_MAX ||
	    (r->flags & ~QUEUE_PIDX_F_NOADDR) != 0)
		return -1;
	if (r->flags & QUEUE_PIDX_F_NOADDR) {
		if (sl != 0)
			return -1;
		r->strs = NULL;
		r->strs_len = 0;
		*used = total;
		return 1;
	}
	r->strs = (const char *)buf + QUEUE_PIDX_REC_FIXED;
	r->strs_len = sl;
	/* sender NUL, then nrcpt non-empty recipients, each NUL-ended: nothing more */
	if (sl == 0 || r->strs[sl - 1] != '\0')
		return -1;
	for (size_t i = 0, start = 0; i < sl; i++) {
		if (r->strs[i] != '\0')
			continue;
		if (nul > 0 && i == start)
			return -1;      /* an empty recipient */
		if (i - start > QUEUE_REC_ADDR_MAX)
			return -1;
		nul++;
		start = i + 1;
	}
	if (nul != (size_t)r->nrcpt + 1)
		return -1;
	*used = total;
	return 1;
}

int
queue_pidx_rec_rd_init(struct queue_pidx_rd *rd, int fd, uint64_t end)
{
	memset(rd, 0, sizeof(*rd));
	rd->fd = fd;
	rd->off = QUEUE_PIDX_MAGIC_LEN;
	rd->end = end;
	rd->cap = PIDX_RBUF;
	if ((rd->buf = malloc(rd->cap)) == NULL)
		return -1;
	return 0;
}

void
queue_pidx_rec_rd_free(struct queue_pidx_rd *rd)
{
	free(rd->buf);
	rd->buf = NULL;
}

/*
 * queue_pidx_rec_rd_next - the next record: 1 (*r points into the buffer until the
 * next call; *raw, *rawlen its bytes), 0 at the end, -1 with errno (EIO:
 * damaged or cut short, ENOMEM, or a read error).
 */
int
queue_pidx_rec_rd_next(struct queue_pidx_rd *rd, struct queue_pidx_rec *r, const unsigned char **raw,
    size_t *rawlen)
{
	for (;;) {
		size_t used = 0;
		ssize_t n;
		int rc;

		if (rd->have > rd->pos) {
			rc = queue_pidx_rec_decode(rd->buf + rd->pos, rd->have - rd->pos, r, &used);
			if (rc < 0) {
				errno = EIO;
				return -1;
			}
			if (rc == 1) {
				*raw = rd->buf + rd->pos;
				*rawlen = used;
				rd->pos += used;
				return 1;
			}
		} else
			used = 4;
		if (rd->off >= rd->end) {
			if (rd->have > rd->pos) {
				errno = EIO;        /* a record cut short */
				return -1;
			}
			return 0;
		}
		/* room for the record that is needed (at most QUEUE_PIDX_REC_MAX) */
		if (rd->pos > 0) {
			memmove(rd->buf, rd->buf + rd->pos, rd->have - rd->pos);
			rd->have -= rd->pos;
			rd->pos = 0;
		}
		if (used > rd->cap) {
			unsigned char *nb = realloc(rd->buf, used);

			if (nb == NULL) {
				errno = ENOMEM;
				return -1;
			}
			rd->buf = nb;
			rd->cap = used;
		}
		{
			size_t want = rd->cap - rd->have;

			if ((uint64_t)want > rd->end - rd->off)
				want = (size_t)(rd->end - rd->off);
			do
				n = pread(rd->fd, rd->buf + rd->have, want, (off_t)rd->off);
			while (n < 0 && errno == EINTR);
		}
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = EIO;        /* shorter than it was */
			return -1;
		}
		rd->have += (size_t)n;
		rd->off += (uint64_t)n;
	}
}

/* queue_pidx_rec_magic_ok - 0 when fd starts with the header */
int
queue_pidx_rec_magic_ok(int fd)
{
	unsigned char h[QUEUE_PIDX_MAGIC_LEN];

	if (queue_pread_exact(fd, h, sizeof(h), 0) != 1 ||
	    memcmp(h, QUEUE_PIDX_MAGIC, QUEUE_PIDX_MAGIC_LEN) != 0) {
		errno = EIO;
		return -1;
	}
	return 0;
}
