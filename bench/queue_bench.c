/*
 * queue_bench.c - commit throughput of the queue, and a filler for big
 *                 queues: N messages written through the queue's public API
 *
 *   build/bench/queue_bench DATA_DIR N [SIZE [DOMAINS]]
 *
 * Commits N messages of SIZE bytes (default 5000), 50 in flight, into
 * DATA_DIR (created if missing), each from bench@example.org to
 * rcptI@dI.example (I cycling over DOMAINS domains, default 1), and prints
 * commits/s and messages per group sync. QUEUE_BENCH_FDATASYNC=1 syncs file
 * by file instead of one syncfs per batch. A queue filled this way is what
 * mtad recovers at its next start (bench/queue_million.sh).
 *
 * Owns:     its event base and queue; everything is freed before exit.
 * Lifetime: one run.
 * Errors:   a failed commit or open exits 1 with the reason.
 * Context:  the main thread runs the event loop; the queue's threads as in mtad.
 */
#include "lib/log.h"
#include "lib/util.h"
#include "queue/queue.h"
#include "queue/queue_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>

#define BENCH_INFLIGHT 50

struct bench {
	struct queue *q;
	long long started, done, total;
	unsigned domains;
	size_t len;
	char *data;
	int failed;
};

static void bench_start(struct bench *b);

static void
bench_done(void *arg, int ok, const char *id)
{
	struct bench *b = arg;

	(void)id;
	if (!ok)
		b->failed = 1;
	b->done++;
	if (b->started < b->total && !b->failed)
		bench_start(b);
}

/* bench_start - one more message: create, write in 78-byte pieces, commit */
static void
bench_start(struct bench *b)
{
	static const char prepend[] = "Received: from bench (localhost [127.0.0.1])\r\n"
	    "\tby mx.test.example (mtad) with ESMTP; Mon, 1 Jan 2024 00:00:00 +0000\r\n";
	char rcpt[64];
	const char *r[1] = { rcpt };
	struct queue_envelope env = { .sender = "bench@example.org", .rcpts = r, .nrcpt = 1,
		.client_addr = "127.0.0.1", .client_name = "localhost", .helo = "bench" };
	struct queue_file *qf;
	unsigned d = (unsigned)(b->started % b->domains);

	if (util_bsnprintf(rcpt, sizeof(rcpt), "rcpt%u@d%u.example", d, d) < 0 ||
	    (qf = queue_file_create(b->q, &env)) == NULL) {
		b->failed = 1;
		b->done++;
		b->started++;
		return;
	}
	for (size_t off = 0; off < b->len; off += 78)
		(void)queue_file_write(qf, b->data + off, b->len - off < 78 ? b->len - off : 78);
	b->started++;
	queue_file_commit(qf, prepend, sizeof(prepend) - 1, bench_done, b);
}

/* bench_content - "Subject: ..." then text lines with CRLF, len bytes */
static char *
bench_content(size_t len)
{
	static const char hdr[] = "From: bench@example.org\r\nSubject: queue bench\r\n\r\n";
	char *b = malloc(len + 1);

	if (b == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++)
		b[i] = (i % 78 == 76) ? '\r' : (i % 78 == 77) ? '\n' : (char)('a' + i % 26);
	if (len >= sizeof(hdr))
		memcpy(b, hdr, sizeof(hdr) - 1);
	if (len >= 2) {
		b[len - 2] = '\r';
		b[len - 1] = '\n';
	}
	return b;
}

int
main(int argc, char **argv)
{
	struct bench b;
	struct event_base *base;
	char err[256];
	long long n, size = 5000, domains = 1;
	uint64_t t0, t1;

	if (argc < 3 || util_strtonum(argv[2], 1, 100000000, &n) < 0 ||
	    (argc > 3 && util_strtonum(argv[3], 64, 10000000, &size) < 0) ||
	    (argc > 4 && util_strtonum(argv[4], 1, 1000000, &domains) < 0)) {
		fprintf(stderr, "usage: queue_bench DATA_DIR N [SIZE [DOMAINS]]\n");
		return 2;
	}
	log_init("queue_bench", 0);
	if (evthread_use_pthreads() < 0 || (base = event_base_new()) == NULL)
		return 1;
	memset(&b, 0, sizeof(b));
	b.total = n;
	b.len = (size_t)size;
	b.domains = (unsigned)domains;
	if ((b.data = bench_content(b.len)) == NULL)
		return 1;
	if ((b.q = queue_open(base, argv[1], err, sizeof(err))) == NULL) {
		fprintf(stderr, "queue_bench: %s\n", err);
		return 1;
	}
	b.q->sync_files = getenv("QUEUE_BENCH_FDATASYNC") != NULL;
	t0 = util_mono_us();
	for (int i = 0; i < BENCH_INFLIGHT && b.started < b.total; i++)
		bench_start(&b);
	while (b.done < b.total && !b.failed)
		event_base_loop(base, EVLOOP_ONCE);
	t1 = util_mono_us();
	printf("queue_bench (%s): %lld messages of %zu bytes to %u domain(s), %d in flight: "
	    "%.0f commits/s, %llu syncs, %.1f messages per sync\n",
	    b.q->sync_files ? "fdatasync each" : "syncfs", b.done, b.len, b.domains,
	    BENCH_INFLIGHT, b.done / ((double)(t1 - t0 + 1) / 1e6),
	    (unsigned long long)b.q->stat_syncs,
	    (double)b.q->stat_synced / (double)(b.q->stat_syncs ? b.q->stat_syncs : 1));
	b.q = queue_close(b.q);
	free(b.data);
	event_base_free(base);
	if (b.failed) {
		fprintf(stderr, "queue_bench: a commit failed\n");
		return 1;
	}
	return 0;
}
