/*
 * fuzz_queue_record.c - libFuzzer harness for the queue file parser
 *                       (src/queue/queue_rec.c)
 *
 * Owns:     nothing.
 * Lifetime: one input at a time.
 * Errors:   a broken invariant aborts (libFuzzer reports it as a crash).
 * Context:  libFuzzer's thread.
 *
 * The first two input octets seed the chunk sizes; the rest is a queue
 * file (at most 1 MiB), copied into an exact-size heap block so ASan sees
 * any read past its end. It is parsed twice, whole and in pseudo-random
 * chunks of 1..512 bytes: the verdicts must agree (the parser is
 * resumable), and a file read as committed must satisfy the invariants
 * the reader and recovery rely on.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue_rec.h"

#define FUZZ_MAX (1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fuzz_check - what a committed verdict promises */
static void
fuzz_check(const struct queue_parse *p, size_t len)
{
	const struct queue_msg *m = &p->msg;
	const struct queue_loc *l = &p->loc;

	if (m->sender == NULL || m->nrcpt == 0 || m->nrcpt > QUEUE_REC_RCPT_MAX)
		abort();
	for (size_t i = 0; i < m->nrcpt; i++) {
		if (m->rcpt[i].addr == NULL || m->rcpt[i].addr[0] == '\0' ||
		    strlen(m->rcpt[i].addr) > QUEUE_REC_ADDR_MAX ||
		    (unsigned)m->rcpt[i].state > QUEUE_RCPT_BOUNCED ||
		    strlen(m->rcpt[i].dsn) > QUEUE_REC_DSN_MAX)
			abort();
		if (m->rcpt[i].last_reply != NULL &&
		    strlen(m->rcpt[i].last_reply) > QUEUE_REC_REPLY_MAX)
			abort();
	}
	if (l->good_len > len || p->off != len)
		abort();
	if (l->data_off < QUEUE_REC_FILEHDR || l->data_off > l->prepend_off)
		abort();
	if (l->prepend_len > QUEUE_REC_PREPEND_MAX ||
	    l->prepend_off + QUEUE_REC_HDR + l->prepend_len + QUEUE_REC_HDR +
	    QUEUE_REC_END_LEN > l->good_len)
		abort();
	if (m->size < l->prepend_len || m->size - l->prepend_len > len)
		abort();
	if (!l->state_cut && l->good_len != len)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct queue_parse *whole, *chunked;
	enum queue_parse_status a, b;
	unsigned seed;
	uint8_t *buf;
	size_t len, off;

	if (size < 2 || size - 2 > FUZZ_MAX)
		return 0;
	seed = (unsigned)data[0] << 8 | data[1];
	len = size - 2;
	if ((buf = malloc(len ? len : 1)) == NULL)
		return 0;
	memcpy(buf, data + 2, len);
	whole = malloc(sizeof(*whole));
	chunked = malloc(sizeof(*chunked));
	if (whole == NULL || chunked == NULL)
		abort();

	a = queue_rec_parse_buffer(whole, buf, len);

	queue_rec_parse_init(chunked);
	for (off = 0; off < len; ) {
		size_t n;

		seed = seed * 1103515245u + 12345u;
		n = 1 + (seed >> 16) % 512;
		if (n > len - off)
			n = len - off;
		(void)queue_rec_parse_feed(chunked, buf + off, n);
		off += n;
	}
	b = queue_rec_parse_finish(chunked);

	if (a != b)
		abort();
	if (a == QUEUE_PARSE_OK) {
		fuzz_check(whole, len);
		if (whole->loc.good_len != chunked->loc.good_len ||
		    whole->loc.state_cut != chunked->loc.state_cut ||
		    whole->msg.nrcpt != chunked->msg.nrcpt ||
		    whole->msg.held != chunked->msg.held ||
		    whole->msg.flags != chunked->msg.flags)
			abort();
	}
	if (a == QUEUE_PARSE_CORRUPT && (whole->reason == NULL || whole->bad_off > len))
		abort();
	queue_rec_parse_free(whole);
	queue_rec_parse_free(chunked);
	free(whole);
	free(chunked);
	free(buf);
	return 0;
}
