/*
 * queue_read.c - stream a queued message as it is delivered: the prepended
 *                headers, then the content records
 *
 * Owns:     struct queue_reader and its file descriptor.
 * Lifetime: queue_reader_open() to queue_reader_close(); the message must
 *           stay queued meanwhile (queue_remove() after closing).
 * Errors:   -1 with errno set (EIO when the file does not have the shape
 *           its index entry says: the file changed under us).
 * Context:  event-loop thread (page-cache reads of a file we just wrote or
 *           recovered; bounded by the caller's buffer size).
 */
#include "queue/queue_int.h"
#include "queue/queue_rec.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

enum { QR_PREPEND, QR_DATA, QR_EOF };

struct queue_reader {
	int fd;
	int phase;
	uint64_t poff;               /* prepend payload */
	uint32_t plen, pdone;
	uint64_t off;                /* next byte in the content records */
	uint64_t end;                /* the prepend record: content ends here */
	uint32_t rrem;               /* bytes left in the current 'D' record */
};

/* queue_reader_open - open a queued message for streaming (offsets from its entry) */
struct queue_reader *
queue_reader_open(struct queue *q, const struct queue_msg *m)
{
	const struct queue_ent *e = (const struct queue_ent *)(const void *)m;
	struct queue_reader *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	if ((r->fd = openat(q->qdirfd, m->id, O_RDONLY | O_CLOEXEC)) < 0) {
		int saved = errno;

		free(r);
		errno = saved;
		return NULL;
	}
	r->phase = QR_PREPEND;
	r->poff = e->prepend_off + QUEUE_REC_HDR;
	r->plen = e->prepend_len;
	r->off = e->data_off;
	r->end = e->prepend_off;
	return r;
}

/* queue_pread_full - pread exactly len bytes; a short file is EIO */
static int
queue_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/*
 * queue_reader_read - the prepend payload, then each content record's payload;
 * 0 at the end
 */
ssize_t
queue_reader_read(struct queue_reader *r, void *buf, size_t len)
{
	unsigned char *out = buf, hdr[QUEUE_REC_HDR];
	size_t total = 0, n;

	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	while (total < len && r->phase != QR_EOF) {
		if (r->phase == QR_PREPEND) {
			if (r->pdone == r->plen) {
				r->phase = QR_DATA;
				continue;
			}
			n = r->plen - r->pdone;
			if (n > len - total)
				n = len - total;
			if (queue_pread_full(r->fd, out + total, n, r->poff + r->pdone) < 0)
				return -1;
			r->pdone += (uint32_t)n;
			total += n;
			continue;
		}
		if (r->rrem == 0) {
			uint32_t rl;

			if (r->off == r->end) {
				r->phase = QR_EOF;
				break;
			}
			if (r->off + QUEUE_REC_HDR > r->end ||
			    queue_pread_full(r->fd, hdr, sizeof(hdr), r->off) < 0)
				goto bad;
			rl = queue_rec_get32(hdr + 1);
			if (hdr[0] != QUEUE_REC_DATA || rl == 0 || rl > QUEUE_REC_DATA_MAX ||
			    r->off + QUEUE_REC_HDR + rl > r->end)
				goto bad;
			r->off += QUEUE_REC_HDR;
			r->rrem = rl;
		}
		n = r->rrem;
		if (n > len - total)
			n = len - total;
		if (queue_pread_full(r->fd, out + total, n, r->off) < 0)
			return -1;
		r->off += n;
		r->rrem -= (uint32_t)n;
		total += n;
	}
	return (ssize_t)total;
bad:
	errno = EIO;
	return -1;
}

/* queue_reader_close - close and free; returns NULL */
struct queue_reader *
queue_reader_close(struct queue_reader *r)
{
	if (r == NULL)
		return NULL;
	close(r->fd);
	free(r);
	return NULL;
}
