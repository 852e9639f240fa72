/*
 * fuzz_queue_pidx.c - libFuzzer harness for the decoder of the index of
 *                     parked messages (src/queue/queue_pidx.c:
 *                     queue_pidx_rec_decode)
 *
 * Owns:     a copy of each input, fed in chunks.
 * Lifetime: one input at a time.
 * Errors:   a broken invariant aborts (libFuzzer reports it as a crash).
 * Context:  libFuzzer's thread.
 *
 * The input is an index file's records (at most 2 MiB, the header left
 * out). They are decoded one after the other, as the readers do, with
 * the bytes arriving in chunks whose sizes come from the input's first
 * byte: a record is only ever accepted whole, never reads past what has
 * arrived, keeps every length inside its bounds, and decodes the same
 * whatever the chunking. Each accepted record is encoded again from its
 * fields and must come out byte for byte the same.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue_pidx.h"
#include "queue/queue_rec.h"

#define FUZZ_MAX (2 * 1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fuzz_reencode - the record's fields through the encoder: the same bytes */
static void
fuzz_reencode(const struct queue_pidx_rec *r, const unsigned char *raw, size_t len)
{
	struct queue_rcpt *rc;
	struct queue_msg m;
	unsigned char *out;
	const char *a;

	if (r->flags & QUEUE_PIDX_F_NOADDR)
		return;         /* the encoder sets it only for too many addresses */
	if ((rc = calloc(r->nrcpt, sizeof(*rc))) == NULL || (out = malloc(len)) == NULL) {
		free(rc);
		return;
	}
	memset(&m, 0, sizeof(m));
	a = r->strs;
	m.sender = (char *)(uintptr_t)a;
	a += strlen(a) + 1;
	for (uint32_t i = 0; i < r->nrcpt; i++) {
		if ((size_t)(a - r->strs) >= r->strs_len)
			abort();
		rc[i].addr = (char *)(uintptr_t)a;
		a += strlen(a) + 1;
	}
	if ((size_t)(a - r->strs) != r->strs_len)
		abort();
	m.rcpt = rc;
	m.nrcpt = r->nrcpt;
	m.arrival_us = r->arrival_us;
	m.size = r->size;
	if (queue_pidx_rec_encode(out, len, r->key, &m) != len || memcmp(out, raw, len) != 0)
		abort();
	free(out);
	free(rc);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *buf;
	size_t chunk, have, off = 0, off_whole = 0;

	if (size < 1 || size > FUZZ_MAX)
		return 0;
	chunk = (size_t)data[0] * 7 + 1;
	data++;
	size--;
	if ((buf = malloc(size + 1)) == NULL)
		return 0;
	memcpy(buf, data, size);
	have = size < chunk ? size : chunk;
	for (;;) {
		struct queue_pidx_rec r, w;
		size_t used = 0, wused = 0;
		int rc = queue_pidx_rec_decode(buf + off, have - off, &r, &used);
		int wrc = queue_pidx_rec_decode(buf + off_whole, size - off_whole, &w, &wused);

		if (rc == 1) {
			if (used < QUEUE_PIDX_REC_MIN || used > QUEUE_PIDX_REC_MAX || used > have - off ||
			    wrc != 1 || wused != used || w.key != r.key || r.key == 0 ||
			    r.nrcpt == 0 || r.nrcpt > QUEUE_REC_RCPT_MAX)
				abort();
			fuzz_reencode(&r, buf + off, used);
			off += used;
			off_whole += used;
			continue;
		}
		if (rc < 0) {
			if (wrc != -1)
				abort();
			break;
		}
		/* more bytes wanted: a record is never taken before it has all arrived */
		if (used <= have - off)
			abort();
		if (have == size)
			break;
		have = size - have < chunk ? size : have + chunk;
	}
	free(buf);
	return 0;
}
