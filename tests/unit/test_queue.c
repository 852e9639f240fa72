/*
 * test_queue.c - tests for src/queue/ (record format, parser, commit,
 *                recovery, reader, state records, counters) and
 *                src/lib/crc32c.c
 *
 * Owns:     a temporary data_dir per test (removed at the end).
 * Lifetime: one run.
 * Errors:   each failing row prints "got X, want Y" and fails its test.
 * Context:  the test thread runs the event loop; the queue's commit
 *           thread runs as in the daemon.
 *
 * The commit throughput measurement is bench/queue_bench.c (make bench-queue).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "lib/crc32c.h"
#include "lib/log.h"
#include "lib/util.h"
#include "queue/queue.h"
#include "queue/queue_int.h"
#include "queue/queue_rec.h"
#include "queue/queue_tool.h"
#include "queue/queue_view.h"

/* ---------------------------------------------------------------- fixture */

/* hist_make - an attempt with the given fields */
static struct queue_attempt
hist_make(uint32_t rcpt, enum queue_attempt_result res, uint32_t attempt, uint64_t t,
    const char *host, const char *dsn, const char *reply)
{
	struct queue_attempt a;

	memset(&a, 0, sizeof(a));
	a.rcpt = rcpt;
	a.result = res;
	a.attempt = attempt;
	a.time_us = t;
	a.delays_ms[0] = 1;
	a.delays_ms[1] = 20;
	a.delays_ms[2] = 300;
	a.delays_ms[3] = 4000;
	util_strlcpy(a.host, host, sizeof(a.host));
	util_strlcpy(a.dsn, dsn, sizeof(a.dsn));
	util_strlcpy(a.reply, reply, sizeof(a.reply));
	return a;
}

struct hist_got {
	struct queue_attempt a[300];
	size_t n;
};

static int
hist_collect(void *arg, const struct queue_attempt *a)
{
	struct hist_got *g = arg;

	if (g->n < 300)
		g->a[g->n] = *a;
	g->n++;
	return 0;
}

struct fx {
	char dir[256];
	char data_dir[300];
	struct event_base *base;
	struct queue *q;
	/* commit results */
	int ncb, nok, nlisten;
	char last_id[QUEUE_ID_SIZE];
	struct queue_msg *last_listened;
	/* recovery results */
	int nrecovered;
};

/* fx_file_bytes - the sizes of the files in queue/ (what queue_bytes() counts) */
static uint64_t
fx_file_bytes(struct fx *f)
{
	char path[400];
	struct dirent *de;
	uint64_t n = 0;
	DIR *d;

	(void)util_bsnprintf(path, sizeof(path), "%s/queue", f->data_dir);
	assert_non_null(d = opendir(path));
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		if (de->d_name[0] != '.' && fstatat(dirfd(d), de->d_name, &st, 0) == 0)
			n += (uint64_t)st.st_size;
	}
	closedir(d);
	return n;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static void
fx_open(struct fx *f)
{
	char err[256];

	f->q = queue_open(f->base, f->data_dir, err, sizeof(err));
	if (f->q == NULL)
		fail_msg("queue_open: %s", err);
}

static void
fx_listener(void *arg, struct queue_msg *m)
{
	struct fx *f = arg;

	f->nlisten++;
	f->last_listened = m;
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	(void)util_strlcpy(f->dir, "/tmp/test_queue.XXXXXX", sizeof(f->dir));
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(util_bsnprintf(f->data_dir, sizeof(f->data_dir), "%s/data", f->dir) < 0, 0);
	f->base = event_base_new();
	assert_non_null(f->base);
	fx_open(f);
	queue_set_listener(f->q, fx_listener, f);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	f->q = queue_close(f->q);
	event_base_free(f->base);
	(void)nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void
on_commit(void *arg, int ok, const char *id)
{
	struct fx *f = arg;

	f->ncb++;
	f->nok += ok;
	(void)util_strlcpy(f->last_id, id, sizeof(f->last_id));
}

/* fx_wait - run the loop until n commit callbacks have come (bounded) */
static void
fx_wait(struct fx *f, int n)
{
	for (int i = 0; i < 100000 && f->ncb < n; i++)
		event_base_loop(f->base, EVLOOP_ONCE);
	if (f->ncb < n)
		fail_msg("commit callbacks: got %d, want %d", f->ncb, n);
}

static void
on_recovered(void *arg, struct queue_msg *m)
{
	struct fx *f = arg;

	(void)m;
	f->nrecovered++;
}

/* fx_reopen - close the queue and open it again with recovery */
static void
fx_reopen(struct fx *f)
{
	f->q = queue_close(f->q);
	fx_open(f);
	f->nrecovered = 0;
	assert_int_equal(queue_recover(f->q, on_recovered, f), 0);
}

static char *
fx_path(struct fx *f, const char *sub, const char *name, char *buf, size_t size)
{
	if (util_bsnprintf(buf, size, "%s/%s/%s", f->data_dir, sub, name) < 0)
		fail_msg("path too long");
	return buf;
}

/* read_file - the whole file into a malloc'd buffer */
static unsigned char *
read_file(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	unsigned char *b = NULL;
	long n;

	if (fp == NULL)
		return NULL;
	if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0) {
		b = malloc((size_t)n + 1);
		if (b != NULL && fread(b, 1, (size_t)n, fp) != (size_t)n) {
			free(b);
			b = NULL;
		}
		*len = (size_t)n;
	}
	fclose(fp);
	return b;
}

static void
write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static int
file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* count_dir - files in data_dir/sub; nonempty = 1: only those with content (not spares) */
static size_t
count_dir_if(struct fx *f, const char *sub, int nonempty)
{
	char path[400];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	if (util_bsnprintf(path, sizeof(path), "%s/%s", f->data_dir, sub) < 0)
		return 0;
	if ((d = opendir(path)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		if (nonempty && (fstatat(dirfd(d), de->d_name, &st, 0) < 0 || st.st_size == 0))
			continue;
		n++;
	}
	closedir(d);
	return n;
}

static size_t
count_dir(struct fx *f, const char *sub)
{
	return count_dir_if(f, sub, 0);
}

/* content - deterministic message bytes */
static unsigned char *
make_content(size_t len, unsigned seed)
{
	unsigned char *b = malloc(len + 1);

	for (size_t i = 0; i < len; i++)
		b[i] = (unsigned char)((i * 31 + seed * 7 + (i >> 8)) & 0xff);
	return b;
}

/* commit_msg - create, write in chunks of `chunk`, commit; returns the id (in f->last_id) */
static struct queue_msg *
commit_msg(struct fx *f, const struct queue_envelope *env, const unsigned char *data,
    size_t len, size_t chunk, const char *prepend, size_t plen)
{
	struct queue_file *qf = queue_file_create(f->q, env);
	int before = f->ncb;

	assert_non_null(qf);
	assert_int_equal(strlen(queue_file_id(qf)), QUEUE_ID_LEN);
	for (size_t off = 0; off < len; ) {
		size_t n = len - off < chunk ? len - off : chunk;

		assert_int_equal(queue_file_write(qf, data + off, n), 0);
		off += n;
	}
	assert_int_equal(queue_file_size(qf), len);
	queue_file_commit(qf, prepend, plen, on_commit, f);
	fx_wait(f, before + 1);
	return queue_lookup(f->q, f->last_id);
}

/* read_all - the message through queue_reader, in reads of `chunk` */
static unsigned char *
read_all(struct queue *q, const struct queue_msg *m, size_t chunk, size_t *len)
{
	struct queue_reader *r = queue_reader_open(q, m);
	size_t cap = 1024, n = 0;
	unsigned char *b = malloc(cap);
	ssize_t got;

	assert_non_null(r);
	for (;;) {
		if (cap - n < chunk) {
			cap = cap * 2 + chunk;
			b = realloc(b, cap);
			assert_non_null(b);
		}
		got = queue_reader_read(r, b + n, chunk);
		assert_true(got >= 0);
		if (got == 0)
			break;
		n += (size_t)got;
	}
	queue_reader_close(r);
	*len = n;
	return b;
}

static void
check_reader(struct queue *q, const struct queue_msg *m, const char *prepend, size_t plen,
    const unsigned char *data, size_t len, size_t chunk, const char *row)
{
	size_t got_len;
	unsigned char *got = read_all(q, m, chunk, &got_len);

	if (got_len != plen + len)
		fail_msg("%s: reader length: got %zu, want %zu", row, got_len, plen + len);
	if (memcmp(got, prepend, plen) != 0)
		fail_msg("%s: reader: prepended headers differ", row);
	if (len > 0 && memcmp(got + plen, data, len) != 0)
		fail_msg("%s: reader: content differs", row);
	free(got);
}

static const char *const rcpts3[] = { "a@example.org", "b@example.net", "c@example.com" };

/* ---------------------------------------------------------------- crc32c */

static void
test_crc32c(void **state)
{
	static const struct {
		const char *in;
		size_t len;
		uint32_t want;
	} rows[] = {
		{ "", 0, 0x00000000u },
		{ "123456789", 9, 0xE3069283u },
		{ "a", 1, 0xC1D04330u },
		{ "The quick brown fox jumps over the lazy dog", 43, 0x22620404u },
	};
	unsigned char zeros[32] = { 0 }, ones[32], big[1000];

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		uint32_t got = crc32c(0, rows[i].in, rows[i].len);
		uint32_t sw = crc32c_portable(0, rows[i].in, rows[i].len);

		if (got != rows[i].want || sw != rows[i].want)
			fail_msg("crc32c(\"%s\"): got %08x (tables %08x), want %08x", rows[i].in, got,
			    sw, rows[i].want);
	}
	memset(ones, 0xff, sizeof(ones));
	assert_int_equal(crc32c(0, zeros, 32), 0x8A9136AAu);    /* RFC 3720 B.4 */
	assert_int_equal(crc32c(0, ones, 32), 0x62A8AB43u);
	assert_int_equal(crc32c_portable(0, zeros, 32), 0x8A9136AAu);
	assert_int_equal(crc32c_portable(0, ones, 32), 0x62A8AB43u);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i * 7);
	/* both ways, whole and in two parts (any alignment, any tail), agree */
	for (size_t cut = 0; cut <= sizeof(big); cut += 37) {
		uint32_t whole = crc32c(0, big, sizeof(big));
		uint32_t parts = crc32c(crc32c(0, big, cut), big + cut, sizeof(big) - cut);
		uint32_t sw = crc32c_portable(crc32c_portable(0, big, cut), big + cut,
		    sizeof(big) - cut);

		if (whole != parts || whole != sw)
			fail_msg("crc32c split at %zu: got %08x (tables %08x), want %08x", cut, parts,
			    sw, whole);
	}
}

/* ---------------------------------------------------------------- round trip */

static const struct {
	const char *name;
	size_t len;                 /* content bytes */
	size_t chunk;               /* queue_file_write piece size */
	size_t plen;                /* prepend bytes */
	size_t nrcpt;
	int client;                 /* client fields given */
	unsigned flags;
} rt_rows[] = {
	{ "empty content",          0,      1,     0,      1, 0, 0 },
	{ "one byte",               1,      1,     60,     1, 1, 0 },
	{ "5 KB, line writes",      5000,   78,    300,    3, 1, QUEUE_F_8BITMIME },
	{ "5 KB, one write",        5000,   5000,  300,    1, 1, QUEUE_F_SMTPUTF8 },
	{ "buffer size - 1",        16383,  1000,  0,      2, 0, 0 },
	{ "buffer size",            16384,  16384, 10,     1, 1, 0 },
	{ "70 KB, 1-byte writes",   70000,  1,     100,    1, 1, QUEUE_F_CC },
	{ "70 KB, 7000 writes",     70000,  7000,  100,    3, 1, 0 },
	{ "300 KB, 64 KiB writes",  300000, 65536, 20000,  1, 1, QUEUE_F_BOUNCE },
	{ "300 KB, 200 KB writes",  300000, 200000, 17000, 2, 0, 0 },
	{ "big prepend",            100,    100,   200000, 1, 1, 0 },
};

static void
test_roundtrip(void **state)
{
	struct fx *f = *state;
	char ids[sizeof(rt_rows) / sizeof(rt_rows[0])][QUEUE_ID_SIZE];
	size_t nrows = sizeof(rt_rows) / sizeof(rt_rows[0]);
	uint64_t want_bytes = 0;

	for (size_t i = 0; i < nrows; i++) {
		struct queue_envelope env = {
			.sender = i % 2 ? "" : "sender@example.org",
			.rcpts = rcpts3, .nrcpt = rt_rows[i].nrcpt,
			.client_addr = rt_rows[i].client ? "192.0.2.1" : NULL,
			.client_name = rt_rows[i].client ? "client.example.org" : NULL,
			.helo = rt_rows[i].client ? "helo.example.org" : NULL,
			.flags = rt_rows[i].flags,
		};
		unsigned char *data = make_content(rt_rows[i].len, (unsigned)i);
		char *prepend = (char *)make_content(rt_rows[i].plen, (unsigned)i + 100);
		struct queue_msg *m;
		int nl = f->nlisten;

		m = commit_msg(f, &env, data, rt_rows[i].len, rt_rows[i].chunk,
		    prepend, rt_rows[i].plen);
		if (m == NULL)
			fail_msg("%s: lookup after commit: got NULL", rt_rows[i].name);
		if (f->nlisten != nl + 1 || f->last_listened != m)
			fail_msg("%s: listener not called with the message", rt_rows[i].name);
		memcpy(ids[i], m->id, QUEUE_ID_SIZE);
		for (size_t k = 0; k < i; k++)
			if (strcmp(ids[k], ids[i]) == 0)
				fail_msg("%s: id %s used twice", rt_rows[i].name, ids[i]);
		assert_int_equal(m->size, rt_rows[i].len + rt_rows[i].plen);
		check_reader(f->q, m, prepend, rt_rows[i].plen, data, rt_rows[i].len, 4096,
		    rt_rows[i].name);
		want_bytes += m->size;
		free(data);
		free(prepend);
	}
	assert_int_equal(f->nok, (int)nrows);
	assert_int_equal(queue_count(f->q), nrows);
	assert_int_equal(queue_bytes(f->q), fx_file_bytes(f));

	fx_reopen(f);
	assert_int_equal(f->nrecovered, (int)nrows);
	assert_int_equal(queue_count(f->q), nrows);
	assert_int_equal(queue_bytes(f->q), fx_file_bytes(f));
	for (size_t i = 0; i < nrows; i++) {
		unsigned char *data = make_content(rt_rows[i].len, (unsigned)i);
		char *prepend = (char *)make_content(rt_rows[i].plen, (unsigned)i + 100);
		struct queue_msg *m = queue_lookup(f->q, ids[i]);

		if (m == NULL)
			fail_msg("%s: lookup after recovery: got NULL", rt_rows[i].name);
		assert_string_equal(m->id, ids[i]);
		assert_string_equal(m->sender, i % 2 ? "" : "sender@example.org");
		assert_int_equal(m->nrcpt, rt_rows[i].nrcpt);
		for (size_t r = 0; r < m->nrcpt; r++) {
			assert_string_equal(m->rcpt[r].addr, rcpts3[r]);
			assert_int_equal(m->rcpt[r].state, QUEUE_RCPT_PENDING);
			assert_int_equal(m->rcpt[r].attempts, 0);
		}
		assert_int_equal(m->flags, rt_rows[i].flags);
		assert_int_equal(m->held, 0);
		assert_int_equal(m->size, rt_rows[i].len + rt_rows[i].plen);
		assert_true(m->arrival_us > 0);
		if (rt_rows[i].client) {
			assert_string_equal(m->client_addr, "192.0.2.1");
			assert_string_equal(m->client_name, "client.example.org");
			assert_string_equal(m->helo, "helo.example.org");
		} else {
			assert_null(m->client_addr);
			assert_null(m->client_name);
			assert_null(m->helo);
		}
		check_reader(f->q, m, prepend, rt_rows[i].plen, data, rt_rows[i].len,
		    1 + i * 997, rt_rows[i].name);
		free(data);
		free(prepend);
	}
}

/* foreach visits in arrival order */
struct order { char ids[8][QUEUE_ID_SIZE]; int n; };

static void
collect_order(void *arg, struct queue_msg *m)
{
	struct order *o = arg;

	if (o->n < 8)
		memcpy(o->ids[o->n], m->id, QUEUE_ID_SIZE);
	o->n++;
}

static void
test_foreach_remove_counters(void **state)
{
	struct fx *f = *state;
	struct queue_envelope env = { .sender = "s@x.org", .rcpts = rcpts3, .nrcpt = 1 };
	char ids[5][QUEUE_ID_SIZE];
	struct order o = { .n = 0 };
	char path[400];

	for (int i = 0; i < 5; i++) {
		struct queue_msg *m = commit_msg(f, &env, (const unsigned char *)"0123456789",
		    10, 10, "X: y\r\n", 6);

		assert_non_null(m);
		memcpy(ids[i], m->id, QUEUE_ID_SIZE);
	}
	assert_int_equal(queue_count(f->q), 5);
	assert_int_equal(queue_bytes(f->q), fx_file_bytes(f));
	queue_foreach(f->q, collect_order, &o);
	assert_int_equal(o.n, 5);
	for (int i = 0; i < 5; i++)
		assert_string_equal(o.ids[i], ids[i]);

	assert_int_equal(queue_remove(f->q, queue_lookup(f->q, ids[2])), 0);
	assert_null(queue_lookup(f->q, ids[2]));
	/* the spare thread unlinks the file soon after: poll with a deadline */
	fx_path(f, "queue", ids[2], path, sizeof(path));
	for (int tries = 0; tries < 500 && file_exists(path); tries++) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	assert_false(file_exists(path));
	assert_int_equal(queue_count(f->q), 4);
	assert_int_equal(queue_bytes(f->q), fx_file_bytes(f));
	o.n = 0;
	queue_foreach(f->q, collect_order, &o);
	assert_int_equal(o.n, 4);
	assert_string_equal(o.ids[2], ids[3]);

	/* lookups of things that are not queued ids */
	assert_null(queue_lookup(f->q, ""));
	assert_null(queue_lookup(f->q, "0123"));
	assert_null(queue_lookup(f->q, "0123456789abcdef"));
	assert_null(queue_lookup(f->q, "0123456789ABCDEF0"));
	assert_null(queue_lookup(f->q, "FFFFFFFFFFFFFFFF"));

	fx_reopen(f);
	assert_int_equal(f->nrecovered, 4);
	assert_int_equal(queue_count(f->q), 4);
	assert_int_equal(queue_bytes(f->q), fx_file_bytes(f));
	o.n = 0;
	queue_foreach(f->q, collect_order, &o);
	assert_string_equal(o.ids[0], ids[0]);
	assert_string_equal(o.ids[3], ids[4]);
}

static void
test_abort_and_failures(void **state)
{
	struct fx *f = *state;
	struct queue_envelope env = { .sender = "s@x.org", .rcpts = rcpts3, .nrcpt = 2 };
	struct queue_envelope bad[] = {
		{ .sender = NULL, .rcpts = rcpts3, .nrcpt = 1 },
		{ .sender = "s@x.org", .rcpts = rcpts3, .nrcpt = 0 },
		{ .sender = "s@x.org", .rcpts = NULL, .nrcpt = 1 },
	};
	struct queue_file *qf;
	char path[400], path2[400], id[QUEUE_ID_SIZE];
	char *big;

	qf = queue_file_create(f->q, &env);
	assert_non_null(qf);
	(void)util_strlcpy(id, queue_file_id(qf), sizeof(id));
	assert_int_equal(queue_file_write(qf, "abc", 3), 0);
	assert_true(file_exists(fx_path(f, "incoming", id, path, sizeof(path))));
	assert_false(file_exists(fx_path(f, "queue", id, path2, sizeof(path2))));
	assert_null(queue_file_abort(qf));
	assert_false(file_exists(path));
	assert_int_equal(queue_count(f->q), 0);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		if (queue_file_create(f->q, &bad[i]) != NULL)
			fail_msg("bad envelope %zu: got a queue file, want NULL", i);
		assert_int_equal(errno, EINVAL);
	}
	assert_int_equal(count_dir_if(f, "incoming", 1), 0);
	assert_int_equal(count_dir(f, "queue"), 0);

	/* a prepend over the format's limit: the callback says no, the file is gone */
	big = calloc(1, QUEUE_REC_PREPEND_MAX + 2);
	memset(big, 'x', QUEUE_REC_PREPEND_MAX + 1);
	qf = queue_file_create(f->q, &env);
	assert_non_null(qf);
	(void)util_strlcpy(id, queue_file_id(qf), sizeof(id));
	queue_file_commit(qf, big, QUEUE_REC_PREPEND_MAX + 1, on_commit, f);
	fx_wait(f, 1);
	free(big);
	assert_int_equal(f->nok, 0);
	assert_string_equal(f->last_id, id);
	assert_false(file_exists(fx_path(f, "queue", id, path, sizeof(path))));
	assert_false(file_exists(fx_path(f, "incoming", id, path, sizeof(path))));
	assert_int_equal(queue_count(f->q), 0);
	assert_int_equal(f->nlisten, 0);
}

/* queue_close with commits still pending: their callbacks run, the files survive */
static void
test_close_finishes_pending(void **state)
{
	struct fx *f = *state;
	struct queue_envelope env = { .sender = "s@x.org", .rcpts = rcpts3, .nrcpt = 1 };

	for (int i = 0; i < 20; i++) {
		struct queue_file *qf = queue_file_create(f->q, &env);

		assert_non_null(qf);
		assert_int_equal(queue_file_write(qf, "hello\r\n", 7), 0);
		queue_file_commit(qf, "", 0, on_commit, f);
	}
	f->q = queue_close(f->q);
	assert_int_equal(f->ncb, 20);
	assert_int_equal(f->nok, 20);
	assert_int_equal(f->nlisten, 0);    /* no listener during close */
	fx_open(f);
	assert_int_equal(queue_recover(f->q, on_recovered, f), 0);
	assert_int_equal(f->nrecovered, 20);
	assert_int_equal(queue_count(f->q), 20);
}

/* Spare files are made ahead by their own thread; they never outlive a clean close. */
static void
test_spares(void **state)
{
	struct fx *f = *state;
	struct queue_envelope env = { .sender = "s@x.org", .rcpts = rcpts3, .nrcpt = 1 };
	char first[QUEUE_ID_SIZE], prev[QUEUE_ID_SIZE];
	size_t n = 0;

	assert_non_null(commit_msg(f, &env, (const unsigned char *)"x", 1, 1, "", 0));
	(void)util_strlcpy(first, f->last_id, sizeof(first));
	for (int i = 0; i < 5000 && (n = count_dir(f, "incoming")) < QUEUE_SPARE_MAX; i++)
		usleep(1000);
	if (n != QUEUE_SPARE_MAX)
		fail_msg("spare files in incoming/: got %zu, want %d", n, QUEUE_SPARE_MAX);
	assert_int_equal(count_dir(f, "queue"), 1);
	/* ids handed out from a full pool keep increasing (it is a FIFO refilled at the tail) */
	(void)util_strlcpy(prev, first, sizeof(prev));
	for (int i = 0; i < 2 * QUEUE_SPARE_MAX; i++) {
		struct queue_msg *m = commit_msg(f, &env, (const unsigned char *)"y", 1, 1, "", 0);

		assert_non_null(m);
		if (i < QUEUE_SPARE_MAX && strcmp(m->id, prev) <= 0)
			fail_msg("id %d: got %s after %s, want increasing", i, m->id, prev);
		(void)util_strlcpy(prev, m->id, sizeof(prev));
	}
	assert_int_equal(queue_count(f->q), 1 + 2 * QUEUE_SPARE_MAX);
	f->q = queue_close(f->q);
	n = count_dir(f, "queue");
	if (n != 1 + 2 * QUEUE_SPARE_MAX)
		fail_msg("files in queue/ after close: got %zu, want %d", n, 1 + 2 * QUEUE_SPARE_MAX);
	n = count_dir(f, "incoming");
	if (n != 0)
		fail_msg("files in incoming/ after close: got %zu, want 0 (no spare left)", n);
	fx_open(f);
}

/* ---------------------------------------------------------------- state records */

static void
test_state_records(void **state)
{
	struct fx *f = *state;
	struct queue_envelope env = { .sender = "s@x.org", .rcpts = rcpts3, .nrcpt = 3 };
	char id1[QUEUE_ID_SIZE], id2[QUEUE_ID_SIZE], path[400], longreply[5000];
	struct queue_msg *m;

	memset(longreply, 'r', sizeof(longreply) - 1);
	longreply[sizeof(longreply) - 1] = '\0';
	m = commit_msg(f, &env, (const unsigned char *)"body\r\n", 6, 6, "", 0);
	assert_non_null(m);
	memcpy(id1, m->id, QUEUE_ID_SIZE);
	assert_int_equal(queue_update_rcpt(f->q, m, 0, QUEUE_RCPT_DELIVERED, 0, "2.0.0",
	    "250 2.0.0 Ok"), 0);
	assert_int_equal(queue_update_rcpt(f->q, m, 1, QUEUE_RCPT_PENDING, 1234567,
	    "4.4.1", "connect to mx: Connection refused"), 0);
	assert_int_equal(queue_update_rcpt(f->q, m, 1, QUEUE_RCPT_PENDING, 7654321,
	    "4.7.1", longreply), 0);
	assert_int_equal(queue_update_rcpt(f->q, m, 2, QUEUE_RCPT_BOUNCED, 0,
	    "5.1.1-too-long-dsn", NULL), 0);
	assert_int_equal(queue_update_rcpt(f->q, m, 3, QUEUE_RCPT_BOUNCED, 0, NULL, NULL), -1);
	assert_int_equal(queue_set_held(f->q, m, 1), 0);
	assert_int_equal(queue_update_flags(f->q, m, QUEUE_F_CC | QUEUE_F_8BITMIME), 0);
	assert_int_equal(queue_update_flags(f->q, m, QUEUE_F_8BITMIME), 0);

	/* a second message whose recipients are all done: removed on recovery */
	m = commit_msg(f, &env, (const unsigned char *)"x", 1, 1, "", 0);
	assert_non_null(m);
	memcpy(id2, m->id, QUEUE_ID_SIZE);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(queue_update_rcpt(f->q, m, i, i == 1 ? QUEUE_RCPT_BOUNCED :
		    QUEUE_RCPT_DELIVERED, 0, "2.0.0", "ok"), 0);

	fx_reopen(f);
	assert_int_equal(f->nrecovered, 1);
	assert_null(queue_lookup(f->q, id2));
	assert_false(file_exists(fx_path(f, "queue", id2, path, sizeof(path))));
	m = queue_lookup(f->q, id1);
	assert_non_null(m);
	assert_int_equal(m->rcpt[0].state, QUEUE_RCPT_DELIVERED);
	assert_int_equal(m->rcpt[0].attempts, 1);
	assert_string_equal(m->rcpt[0].dsn, "2.0.0");
	assert_string_equal(m->rcpt[0].last_reply, "250 2.0.0 Ok");
	assert_int_equal(m->rcpt[1].state, QUEUE_RCPT_PENDING);
	assert_int_equal(m->rcpt[1].attempts, 2);
	assert_int_equal(m->rcpt[1].next_try_us, 7654321);
	assert_string_equal(m->rcpt[1].dsn, "4.7.1");
	assert_int_equal(strlen(m->rcpt[1].last_reply), QUEUE_REC_REPLY_MAX);
	assert_int_equal(m->rcpt[2].state, QUEUE_RCPT_BOUNCED);
	assert_string_equal(m->rcpt[2].dsn, "5.1.1-too-l");
	assert_null(m->rcpt[2].last_reply);
	assert_int_equal(m->held, 1);
	assert_int_equal(m->flags, QUEUE_F_8BITMIME);

	/* updates keep working after recovery, and a second recovery sees them */
	assert_int_equal(queue_set_held(f->q, m, 0), 0);
	fx_reopen(f);
	m = queue_lookup(f->q, id1);
	assert_non_null(m);
	assert_int_equal(m->held, 0);
	assert_int_equal(m->rcpt[1].attempts, 2);
}

/* ---------------------------------------------------------------- parser */

/* A hand-built queue file. */
struct fb {
	unsigned char b[8192];
	size_t n;
	size_t data;
};

static void
fb_raw(struct fb *fb, const void *p, size_t len)
{
	assert_true(fb->n + len <= sizeof(fb->b));
	memcpy(fb->b + fb->n, p, len);
	fb->n += len;
}

static void
fb_rec(struct fb *fb, unsigned type, const void *p, size_t len)
{
	unsigned char h[QUEUE_REC_HDR];

	queue_rec_hdr(h, type, (uint32_t)len);
	fb_raw(fb, h, sizeof(h));
	fb_raw(fb, p, len);
	if (type == QUEUE_REC_DATA)
		fb->data += len;
}

static void
fb_str(struct fb *fb, unsigned type, const char *s)
{
	fb_rec(fb, type, s, strlen(s));
}

static void
fb_end(struct fb *fb, uint64_t data_size)
{
	unsigned char e[QUEUE_REC_HDR + QUEUE_REC_END_LEN];

	queue_rec_hdr(e, QUEUE_REC_END, QUEUE_REC_END_LEN);
	queue_rec_put64(e + 5, 1700000000000000ULL);
	queue_rec_put64(e + 13, data_size);
	fb_raw(fb, e, sizeof(e) - 4);
	queue_rec_put32(e, crc32c(0, fb->b, fb->n));
	fb_raw(fb, e, 4);
}

static void
fb_header(struct fb *fb)
{
	unsigned char h[QUEUE_REC_FILEHDR];

	memset(fb, 0, sizeof(*fb));
	queue_rec_filehdr(h);
	fb_raw(fb, h, sizeof(h));
}

/* fb_valid - a complete file; *ends holds the offset after each record (n of them) */
static void
fb_valid(struct fb *fb, size_t *ends, size_t *nends)
{
	unsigned char fl[4];
	size_t k = 0;

	fb_header(fb);
	ends[k++] = fb->n;
	queue_rec_put32(fl, QUEUE_F_8BITMIME);
	fb_rec(fb, QUEUE_REC_FLAGS, fl, 4);                 ends[k++] = fb->n;
	fb_str(fb, QUEUE_REC_SENDER, "s@example.org");      ends[k++] = fb->n;
	fb_str(fb, QUEUE_REC_RCPT, "r1@example.org");       ends[k++] = fb->n;
	fb_str(fb, QUEUE_REC_RCPT, "r2@example.org");       ends[k++] = fb->n;
	fb_str(fb, QUEUE_REC_CLIENT_ADDR, "192.0.2.7");     ends[k++] = fb->n;
	fb_str(fb, QUEUE_REC_CLIENT_NAME, "c.example.org"); ends[k++] = fb->n;
	fb_str(fb, QUEUE_REC_HELO, "helo.example.org");     ends[k++] = fb->n;
	fb_str(fb, QUEUE_REC_DATA, "Subject: x\r\n\r\n");   ends[k++] = fb->n;
	fb_str(fb, QUEUE_REC_DATA, "body\r\n");             ends[k++] = fb->n;
	fb_str(fb, QUEUE_REC_PREPEND, "Received: y\r\n");   ends[k++] = fb->n;
	fb_end(fb, fb->data);                               ends[k++] = fb->n;
	*nends = k;
}

static const char *
status_name(enum queue_parse_status s)
{
	switch (s) {
	case QUEUE_PARSE_OK:          return "OK";
	case QUEUE_PARSE_UNCOMMITTED: return "UNCOMMITTED";
	case QUEUE_PARSE_CORRUPT:     return "CORRUPT";
	case QUEUE_PARSE_NOMEM:       return "NOMEM";
	}
	return "?";
}

/* parse_bytes - verdict for a buffer, fed in pieces of `chunk` */
static enum queue_parse_status
parse_bytes(const unsigned char *b, size_t len, size_t chunk, struct queue_parse *p)
{
	queue_rec_parse_init(p);
	for (size_t off = 0; off < len; off += chunk)
		(void)queue_rec_parse_feed(p, b + off, len - off < chunk ? len - off : chunk);
	return queue_rec_parse_finish(p);
}

static void
expect_status(const char *row, const unsigned char *b, size_t len,
    enum queue_parse_status want)
{
	static const size_t chunks[] = { 1, 3, 64, 100000 };
	struct queue_parse p;

	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		enum queue_parse_status got = parse_bytes(b, len, chunks[c], &p);

		queue_rec_parse_free(&p);
		if (got != want)
			fail_msg("%s (chunks of %zu): got %s, want %s (%s)", row, chunks[c],
			    status_name(got), status_name(want), p.reason ? p.reason : "-");
	}
}

static void
test_parse_valid(void **state)
{
	struct fb fb;
	size_t ends[32], nends;
	struct queue_parse p;
	struct queue_msg m;

	(void)state;
	fb_valid(&fb, ends, &nends);
	expect_status("valid file", fb.b, fb.n, QUEUE_PARSE_OK);
	assert_int_equal(parse_bytes(fb.b, fb.n, 5, &p), QUEUE_PARSE_OK);
	assert_int_equal(p.loc.good_len, fb.n);
	assert_int_equal(p.loc.state_cut, 0);
	assert_int_equal(p.loc.data_off, ends[7]);
	assert_int_equal(p.loc.prepend_off, ends[9]);
	assert_int_equal(p.loc.prepend_len, 13);
	queue_rec_parse_take(&p, &m);
	queue_rec_parse_free(&p);
	assert_string_equal(m.sender, "s@example.org");
	assert_int_equal(m.nrcpt, 2);
	assert_string_equal(m.rcpt[1].addr, "r2@example.org");
	assert_string_equal(m.client_addr, "192.0.2.7");
	assert_string_equal(m.client_name, "c.example.org");
	assert_string_equal(m.helo, "helo.example.org");
	assert_int_equal(m.flags, QUEUE_F_8BITMIME);
	assert_int_equal(m.size, 14 + 6 + 13);
	assert_int_equal(m.arrival_us, 1700000000000000ULL);
	queue_rec_msg_free_fields(&m);
}

/* Every truncation before the end record is complete: uncommitted (remove). */
static void
test_parse_truncated(void **state)
{
	struct fb fb;
	size_t ends[32], nends;
	char row[80];

	(void)state;
	fb_valid(&fb, ends, &nends);
	for (size_t cut = 0; cut < fb.n; cut++) {
		(void)util_bsnprintf(row, sizeof(row), "truncated at %zu of %zu", cut, fb.n);
		expect_status(row, fb.b, cut, QUEUE_PARSE_UNCOMMITTED);
	}
	/* and the record boundaries once more, by name */
	for (size_t k = 0; k + 1 < nends; k++) {
		(void)util_bsnprintf(row, sizeof(row), "truncated after record %zu", k);
		expect_status(row, fb.b, ends[k], QUEUE_PARSE_UNCOMMITTED);
		(void)util_bsnprintf(row, sizeof(row), "truncated inside record %zu", k + 1);
		expect_status(row, fb.b, ends[k] + 3, QUEUE_PARSE_UNCOMMITTED);
	}
}

/*
 * A flipped byte anywhere before the end crc field is never accepted: the
 * crc or a structure check catches it. (A flip in a length field that
 * still fits and makes a record run past the end of the file reads as
 * truncated, i.e. uncommitted: docs/queue.md says so.)
 */
static void
test_parse_flipped(void **state)
{
	struct fb fb;
	size_t ends[32], nends;
	char row[80];

	(void)state;
	fb_valid(&fb, ends, &nends);
	for (size_t i = 0; i < fb.n; i++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			struct queue_parse p;
			enum queue_parse_status got;

			fb.b[i] ^= (unsigned char)(1u << bit);
			got = parse_bytes(fb.b, fb.n, 7, &p);
			queue_rec_parse_free(&p);
			fb.b[i] ^= (unsigned char)(1u << bit);
			if (got == QUEUE_PARSE_OK)
				fail_msg("flip bit %u of byte %zu: got OK, want not OK", bit, i);
		}
	}
	/* one named row per region: each gives CORRUPT */
	static const struct {
		const char *name;
		size_t rec;            /* flip in the record that ends at ends[rec] */
		size_t back;           /* bytes before that end */
	} rows[] = {
		{ "magic",            0, 8 },
		{ "version",          0, 4 },
		{ "reserved",         0, 1 },
		{ "flags value",      1, 1 },
		{ "sender text",      2, 2 },
		{ "recipient text",   3, 2 },
		{ "client addr text", 5, 1 },
		{ "helo text",        7, 3 },
		{ "content",          8, 4 },
		{ "content 2",        9, 1 },
		{ "prepend",          10, 2 },
		{ "end arrival",      11, 20 },
		{ "end size",         11, 9 },
		{ "end crc",          11, 1 },
		{ "record type",      3, 14 + 5 },
	};
	for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
		size_t at = ends[rows[r].rec] - rows[r].back;

		fb.b[at] ^= 0x40;
		(void)util_bsnprintf(row, sizeof(row), "flip in %s (offset %zu)", rows[r].name, at);
		expect_status(row, fb.b, fb.n, QUEUE_PARSE_CORRUPT);
		fb.b[at] ^= 0x40;
	}
}

/* Hand-built malformed files, one row each. */
enum mal {
	MAL_EMPTY, MAL_HDR_ONLY, MAL_MAGIC_PREFIX, MAL_BAD_MAGIC, MAL_BAD_VERSION,
	MAL_SHORT_GARBAGE, MAL_DATA_HUGE, MAL_SENDER_HUGE, MAL_RCPT_EMPTY, MAL_END_SHORT,
	MAL_FLAGS_LONG, MAL_UNKNOWN_TYPE, MAL_NO_SENDER, MAL_NO_RCPT, MAL_TWO_SENDERS,
	MAL_SIZE_MISMATCH, MAL_END_NO_PREPEND, MAL_ENV_AFTER_DATA, MAL_DATA_AFTER_PREPEND,
	MAL_NUL_IN_SENDER, MAL_UNKNOWN_FLAGS, MAL_DATA_ZERO, MAL_PREPEND_HUGE,
	MAL_NO_DATA_OK, MAL_EMPTY_SENDER_OK, MAL_ZERO_TAIL_BEFORE_END,
};

static void
fb_build(struct fb *fb, enum mal kind)
{
	unsigned char fl[4], h[QUEUE_REC_HDR];

	fb_header(fb);
	switch (kind) {
	case MAL_EMPTY:
		fb->n = 0;
		return;
	case MAL_HDR_ONLY:
		return;
	case MAL_MAGIC_PREFIX:
		fb->n = 3;
		return;
	case MAL_BAD_MAGIC:
		fb->b[0] = 'X';
		return;
	case MAL_BAD_VERSION:
		fb->b[4] = 2;
		return;
	case MAL_SHORT_GARBAGE:
		fb->n = 0;
		fb_raw(fb, "hello", 5);
		return;
	case MAL_DATA_HUGE:
		fb_str(fb, QUEUE_REC_SENDER, "s@x");
		queue_rec_hdr(h, QUEUE_REC_DATA, 0xffffffffu);
		fb_raw(fb, h, sizeof(h));
		return;
	case MAL_SENDER_HUGE:
		queue_rec_hdr(h, QUEUE_REC_SENDER, QUEUE_REC_ADDR_MAX + 1);
		fb_raw(fb, h, sizeof(h));
		return;
	case MAL_RCPT_EMPTY:
		fb_str(fb, QUEUE_REC_RCPT, "");
		return;
	case MAL_END_SHORT:
		fb_str(fb, QUEUE_REC_SENDER, "s@x");
		fb_str(fb, QUEUE_REC_RCPT, "r@x");
		fb_str(fb, QUEUE_REC_PREPEND, "");
		queue_rec_hdr(h, QUEUE_REC_END, QUEUE_REC_END_LEN - 1);
		fb_raw(fb, h, sizeof(h));
		return;
	case MAL_FLAGS_LONG:
		fb_rec(fb, QUEUE_REC_FLAGS, "12345", 5);
		return;
	case MAL_UNKNOWN_TYPE:
		fb_str(fb, 'Z', "what");
		return;
	case MAL_NO_SENDER:
		fb_str(fb, QUEUE_REC_RCPT, "r@x");
		fb_str(fb, QUEUE_REC_PREPEND, "");
		fb_end(fb, 0);
		return;
	case MAL_NO_RCPT:
		fb_str(fb, QUEUE_REC_SENDER, "s@x");
		fb_str(fb, QUEUE_REC_PREPEND, "");
		fb_end(fb, 0);
		return;
	case MAL_TWO_SENDERS:
		fb_str(fb, QUEUE_REC_SENDER, "s@x");
		fb_str(fb, QUEUE_REC_SENDER, "t@x");
		return;
	case MAL_SIZE_MISMATCH:
		fb_str(fb, QUEUE_REC_SENDER, "s@x");
		fb_str(fb, QUEUE_REC_RCPT, "r@x");
		fb_str(fb, QUEUE_REC_DATA, "abc");
		fb_str(fb, QUEUE_REC_PREPEND, "");
		fb_end(fb, 4);
		return;
	case MAL_END_NO_PREPEND:
		fb_str(fb, QUEUE_REC_SENDER, "s@x");
		fb_str(fb, QUEUE_REC_RCPT, "r@x");
		fb_end(fb, 0);
		return;
	case MAL_ENV_AFTER_DATA:
		fb_str(fb, QUEUE_REC_SENDER, "s@x");
		fb_str(fb, QUEUE_REC_DATA, "abc");
		fb_str(fb, QUEUE_REC_RCPT, "r@x");
		return;
	case MAL_DATA_AFTER_PREPEND:
		fb_str(fb, QUEUE_REC_SENDER, "s@x");
		fb_str(fb, QUEUE_REC_RCPT, "r@x");
		fb_str(fb, QUEUE_REC_PREPEND, "");
		fb_str(fb, QUEUE_REC_DATA, "abc");
		return;
	case MAL_NUL_IN_SENDER:
		fb_rec(fb, QUEUE_REC_SENDER, "s\0x", 3);
		return;
	case MAL_UNKNOWN_FLAGS:
		queue_rec_put32(fl, 1u << 20);
		fb_rec(fb, QUEUE_REC_FLAGS, fl, 4);
		return;
	case MAL_DATA_ZERO:
		fb_str(fb, QUEUE_REC_SENDER, "s@x");
		fb_rec(fb, QUEUE_REC_DATA, "", 0);
		return;
	case MAL_PREPEND_HUGE:
		fb_str(fb, QUEUE_REC_SENDER, "s@x");
		queue_rec_hdr(h, QUEUE_REC_PREPEND, QUEUE_REC_PREPEND_MAX + 1);
		fb_raw(fb, h, sizeof(h));
		return;
	case MAL_NO_DATA_OK:
		fb_str(fb, QUEUE_REC_SENDER, "s@x");
		fb_str(fb, QUEUE_REC_RCPT, "r@x");
		fb_str(fb, QUEUE_REC_PREPEND, "");
		fb_end(fb, 0);
		return;
	case MAL_EMPTY_SENDER_OK:
		fb_str(fb, QUEUE_REC_SENDER, "");
		fb_str(fb, QUEUE_REC_RCPT, "r@x");
		fb_str(fb, QUEUE_REC_DATA, "x");
		fb_str(fb, QUEUE_REC_PREPEND, "h");
		fb_end(fb, 1);
		return;
	case MAL_ZERO_TAIL_BEFORE_END:
		/* a torn file whose tail reads as zeros: type 0 is not a record */
		fb_str(fb, QUEUE_REC_SENDER, "s@x");
		memset(fb->b + fb->n, 0, 64);
		fb->n += 64;
		return;
	}
}

static void
test_parse_malformed(void **state)
{
	static const struct {
		const char *name;
		enum mal kind;
		enum queue_parse_status want;
	} rows[] = {
		{ "empty file",                 MAL_EMPTY,              QUEUE_PARSE_UNCOMMITTED },
		{ "header only",                MAL_HDR_ONLY,           QUEUE_PARSE_UNCOMMITTED },
		{ "3 bytes of magic",           MAL_MAGIC_PREFIX,       QUEUE_PARSE_UNCOMMITTED },
		{ "bad magic",                  MAL_BAD_MAGIC,          QUEUE_PARSE_CORRUPT },
		{ "bad version",                MAL_BAD_VERSION,        QUEUE_PARSE_CORRUPT },
		{ "short garbage",              MAL_SHORT_GARBAGE,      QUEUE_PARSE_CORRUPT },
		{ "data length 4 GiB",          MAL_DATA_HUGE,          QUEUE_PARSE_CORRUPT },
		{ "sender over the limit",      MAL_SENDER_HUGE,        QUEUE_PARSE_CORRUPT },
		{ "empty recipient",            MAL_RCPT_EMPTY,         QUEUE_PARSE_CORRUPT },
		{ "end record too short",       MAL_END_SHORT,          QUEUE_PARSE_CORRUPT },
		{ "flags record too long",      MAL_FLAGS_LONG,         QUEUE_PARSE_CORRUPT },
		{ "unknown record type",        MAL_UNKNOWN_TYPE,       QUEUE_PARSE_CORRUPT },
		{ "no sender",                  MAL_NO_SENDER,          QUEUE_PARSE_CORRUPT },
		{ "no recipient",               MAL_NO_RCPT,            QUEUE_PARSE_CORRUPT },
		{ "two senders",                MAL_TWO_SENDERS,        QUEUE_PARSE_CORRUPT },
		{ "content size mismatch",      MAL_SIZE_MISMATCH,      QUEUE_PARSE_CORRUPT },
		{ "end without prepend",        MAL_END_NO_PREPEND,     QUEUE_PARSE_CORRUPT },
		{ "envelope after content",     MAL_ENV_AFTER_DATA,     QUEUE_PARSE_CORRUPT },
		{ "content after prepend",      MAL_DATA_AFTER_PREPEND, QUEUE_PARSE_CORRUPT },
		{ "NUL in sender",              MAL_NUL_IN_SENDER,      QUEUE_PARSE_CORRUPT },
		{ "unknown flags",              MAL_UNKNOWN_FLAGS,      QUEUE_PARSE_CORRUPT },
		{ "empty content record",       MAL_DATA_ZERO,          QUEUE_PARSE_CORRUPT },
		{ "prepend over the limit",     MAL_PREPEND_HUGE,       QUEUE_PARSE_CORRUPT },
		{ "zeros before the end",       MAL_ZERO_TAIL_BEFORE_END, QUEUE_PARSE_CORRUPT },
		{ "no content (valid)",         MAL_NO_DATA_OK,         QUEUE_PARSE_OK },
		{ "null sender (valid)",        MAL_EMPTY_SENDER_OK,    QUEUE_PARSE_OK },
	};
	struct fb fb;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		fb_build(&fb, rows[i].kind);
		expect_status(rows[i].name, fb.b, fb.n, rows[i].want);
	}
}

/* State records after the end: applied; torn or bad-crc ones end the state. */
enum st_case {
	ST_CLEAN, ST_TORN_HDR, ST_TORN_BODY, ST_BAD_CRC, ST_BAD_CRC_THEN_MORE,
	ST_ZERO_TAIL, ST_BAD_IDX, ST_BAD_STATE, ST_BAD_HELD, ST_UNKNOWN_TYPE,
	ST_ABSURD_LEN, ST_BAD_FLAGS,
};

static void
test_parse_state(void **state)
{
	static const struct {
		const char *name;
		enum st_case c;
		enum queue_parse_status want;
		int cut;               /* state_cut expected */
		unsigned r0;           /* rcpt 0 state expected (when OK) */
		int held;              /* expected (when OK) */
	} rows[] = {
		{ "clean state records",       ST_CLEAN,             QUEUE_PARSE_OK, 0, QUEUE_RCPT_DELIVERED, 1 },
		{ "torn record header",        ST_TORN_HDR,          QUEUE_PARSE_OK, 1, QUEUE_RCPT_DELIVERED, 0 },
		{ "torn record body",          ST_TORN_BODY,         QUEUE_PARSE_OK, 1, QUEUE_RCPT_DELIVERED, 0 },
		{ "bad crc on the last",       ST_BAD_CRC,           QUEUE_PARSE_OK, 1, QUEUE_RCPT_DELIVERED, 0 },
		{ "bad crc, then good ones",   ST_BAD_CRC_THEN_MORE, QUEUE_PARSE_OK, 1, QUEUE_RCPT_PENDING, 0 },
		{ "zeros after the end",       ST_ZERO_TAIL,         QUEUE_PARSE_OK, 1, QUEUE_RCPT_DELIVERED, 0 },
		{ "unknown state type",        ST_UNKNOWN_TYPE,      QUEUE_PARSE_OK, 1, QUEUE_RCPT_DELIVERED, 0 },
		{ "absurd state length",       ST_ABSURD_LEN,        QUEUE_PARSE_OK, 1, QUEUE_RCPT_DELIVERED, 0 },
		{ "recipient index too big",   ST_BAD_IDX,           QUEUE_PARSE_CORRUPT, 0, 0, 0 },
		{ "unknown recipient state",   ST_BAD_STATE,         QUEUE_PARSE_CORRUPT, 0, 0, 0 },
		{ "held not 0/1",              ST_BAD_HELD,          QUEUE_PARSE_CORRUPT, 0, 0, 0 },
		{ "unknown flags",             ST_BAD_FLAGS,         QUEUE_PARSE_CORRUPT, 0, 0, 0 },
	};
	struct fb fb;
	size_t ends[32], nends;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		unsigned char rec[QUEUE_REC_ST_MAXLEN];
		size_t len, good;
		struct queue_parse p;
		enum queue_parse_status got;

		fb_valid(&fb, ends, &nends);
		len = queue_rec_state_rcpt(rec, 0, QUEUE_RCPT_DELIVERED, 1, 0, "2.0.0", "250 ok");
		fb_raw(&fb, rec, len);
		good = fb.n;
		switch (rows[i].c) {
		case ST_CLEAN:
			fb_raw(&fb, rec, queue_rec_state_held(rec, 1));
			good = fb.n;
			break;
		case ST_TORN_HDR:
			fb_raw(&fb, rec, 3);
			break;
		case ST_TORN_BODY:
			len = queue_rec_state_held(rec, 1);
			fb_raw(&fb, rec, len - 1);
			break;
		case ST_BAD_CRC:
			len = queue_rec_state_held(rec, 1);
			rec[len - 1] ^= 1;
			fb_raw(&fb, rec, len);
			break;
		case ST_BAD_CRC_THEN_MORE:
			/* the first record is the damaged one: nothing after it counts */
			fb.b[fb.n - 1] ^= 1;
			good = ends[nends - 1];
			fb_raw(&fb, rec, queue_rec_state_held(rec, 1));
			break;
		case ST_ZERO_TAIL:
			memset(rec, 0, 40);
			fb_raw(&fb, rec, 40);
			break;
		case ST_UNKNOWN_TYPE:
			len = queue_rec_state_held(rec, 1);
			rec[0] = 'q';
			fb_raw(&fb, rec, len);
			break;
		case ST_ABSURD_LEN:
			queue_rec_hdr(rec, QUEUE_REC_ST_RCPT, 0x7fffffff);
			fb_raw(&fb, rec, 5);
			break;
		case ST_BAD_IDX:
			fb_raw(&fb, rec, queue_rec_state_rcpt(rec, 2, QUEUE_RCPT_DELIVERED, 1, 0, "", ""));
			break;
		case ST_BAD_STATE:
			fb_raw(&fb, rec, queue_rec_state_rcpt(rec, 1, 7, 1, 0, "", ""));
			break;
		case ST_BAD_HELD:
			len = queue_rec_state_held(rec, 1);
			rec[QUEUE_REC_HDR] = 2;
			queue_rec_put32(rec + len - 4, crc32c(0, rec, len - 4));
			fb_raw(&fb, rec, len);
			break;
		case ST_BAD_FLAGS:
			fb_raw(&fb, rec, queue_rec_state_flags(rec, 0x80000000u));
			break;
		}
		expect_status(rows[i].name, fb.b, fb.n, rows[i].want);
		got = parse_bytes(fb.b, fb.n, 11, &p);
		if (got == QUEUE_PARSE_OK) {
			if (p.loc.state_cut != rows[i].cut)
				fail_msg("%s: state_cut: got %d, want %d", rows[i].name,
				    p.loc.state_cut, rows[i].cut);
			if (p.loc.good_len != good)
				fail_msg("%s: good length: got %llu, want %zu", rows[i].name,
				    (unsigned long long)p.loc.good_len, good);
			if ((unsigned)p.msg.rcpt[0].state != rows[i].r0)
				fail_msg("%s: rcpt 0 state: got %u, want %u", rows[i].name,
				    (unsigned)p.msg.rcpt[0].state, rows[i].r0);
			if (p.msg.held != rows[i].held)
				fail_msg("%s: held: got %d, want %d", rows[i].name, p.msg.held,
				    rows[i].held);
		}
		queue_rec_parse_free(&p);
	}
}

/* ---------------------------------------------------------------- recovery on disk */

static void
test_recover_dir(void **state)
{
	struct fx *f = *state;
	struct queue_envelope env = { .sender = "s@x.org", .rcpts = rcpts3, .nrcpt = 1 };
	char good[QUEUE_ID_SIZE], torn[QUEUE_ID_SIZE], path[400], path2[400];
	struct queue_file *qf;
	struct queue_msg *m;
	unsigned char *bytes, rec[QUEUE_REC_ST_MAXLEN];
	size_t len, slen;
	struct fb fb;
	size_t ends[32], nends;

	/* a committed message with a torn state record at its end */
	m = commit_msg(f, &env, (const unsigned char *)"body\r\n", 6, 6, "H: v\r\n", 6);
	assert_non_null(m);
	memcpy(good, m->id, QUEUE_ID_SIZE);
	bytes = read_file(fx_path(f, "queue", good, path, sizeof(path)), &len);
	assert_non_null(bytes);
	slen = queue_rec_state_held(rec, 1);
	{
		int fd = open(path, O_WRONLY | O_APPEND);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, rec, slen - 2), (ssize_t)slen - 2);
		close(fd);
	}
	/*
	 * A file being written when the "crash" came (in incoming/), and one
	 * that made it into queue/ but whose sync never finished (cut short).
	 */
	qf = queue_file_create(f->q, &env);
	assert_non_null(qf);
	assert_int_equal(queue_file_write(qf, "partial", 7), 0);
	write_file(fx_path(f, "incoming", queue_file_id(qf), path2, sizeof(path2)), bytes, len);
	(void)util_strlcpy(torn, "0000000000000009", sizeof(torn));
	write_file(fx_path(f, "queue", torn, path2, sizeof(path2)), bytes, len - 10);
	free(bytes);
	/* corrupt files, a stray name, and an empty file */
	fb_valid(&fb, ends, &nends);
	fb.b[ends[8] - 2] ^= 0x01;                    /* content flip: end crc fails */
	write_file(fx_path(f, "queue", "0000000000000001", path2, sizeof(path2)), fb.b, fb.n);
	write_file(fx_path(f, "queue", "0000000000000002", path2, sizeof(path2)), "garbage!!", 9);
	write_file(fx_path(f, "queue", "0000000000000003", path2, sizeof(path2)), "", 0);
	fb_valid(&fb, ends, &nends);
	write_file(fx_path(f, "queue", "0000000000000004", path2, sizeof(path2)), fb.b, fb.n);
	write_file(fx_path(f, "queue", "README.txt", path2, sizeof(path2)), "hi", 2);

	/* "restart": drop the open file's handle without unlinking (the crash) */
	close(qf->fd);
	qf->fd = -1;
	queue_index_ent_free(qf->ent);
	free(qf->buf);
	free(qf);

	fx_reopen(f);
	assert_int_equal(f->nrecovered, 2);          /* good and ...04 */
	assert_int_equal(queue_count(f->q), 2);
	assert_non_null(queue_lookup(f->q, good));
	assert_non_null(queue_lookup(f->q, "0000000000000004"));
	assert_null(queue_lookup(f->q, torn));
	assert_false(file_exists(fx_path(f, "queue", torn, path, sizeof(path))));
	assert_int_equal(count_dir(f, "incoming"), 0);
	assert_false(file_exists(fx_path(f, "queue", "0000000000000003", path, sizeof(path))));
	assert_true(file_exists(fx_path(f, "corrupt", "0000000000000001", path, sizeof(path))));
	assert_true(file_exists(fx_path(f, "corrupt", "0000000000000002", path, sizeof(path))));
	assert_false(file_exists(fx_path(f, "queue", "0000000000000001", path, sizeof(path))));
	assert_true(file_exists(fx_path(f, "queue", "README.txt", path, sizeof(path))));
	assert_int_equal(count_dir(f, "corrupt"), 2);
	/* the torn state record was cut off: the file is as committed */
	m = queue_lookup(f->q, good);
	assert_int_equal(m->held, 0);
	bytes = read_file(fx_path(f, "queue", good, path, sizeof(path)), &slen);
	assert_non_null(bytes);
	assert_int_equal(slen, len);
	free(bytes);
	check_reader(f->q, m, "H: v\r\n", 6, (const unsigned char *)"body\r\n", 6, 3, "recovered");
	/* new ids sort after everything recovered */
	m = commit_msg(f, &env, (const unsigned char *)"x", 1, 1, "", 0);
	assert_non_null(m);
	assert_true(strcmp(m->id, good) > 0);
	/* a state record appended after the cut is read back */
	assert_int_equal(queue_set_held(f->q, queue_lookup(f->q, good), 1), 0);
	fx_reopen(f);
	assert_int_equal(queue_lookup(f->q, good)->held, 1);
	assert_int_equal(count_dir(f, "corrupt"), 2);
}

/* Many messages: the index grows, lookups stay right, removal in any order. */
static void
test_many(void **state)
{
	struct fx *f = *state;
	struct queue_envelope env = { .sender = "s@x.org", .rcpts = rcpts3, .nrcpt = 1 };
	enum { N = 3000 };
	char (*ids)[QUEUE_ID_SIZE] = calloc(N, QUEUE_ID_SIZE);

	assert_non_null(ids);
	for (int i = 0; i < N; i++) {
		struct queue_file *qf = queue_file_create(f->q, &env);

		assert_non_null(qf);
		memcpy(ids[i], queue_file_id(qf), QUEUE_ID_SIZE);
		assert_int_equal(queue_file_write(qf, "0123456789", 10), 0);
		queue_file_commit(qf, "", 0, on_commit, f);
	}
	fx_wait(f, N);
	assert_int_equal(f->nok, N);
	assert_int_equal(queue_count(f->q), N);
	assert_int_equal(queue_bytes(f->q), fx_file_bytes(f));
	for (int i = 0; i < N; i++)
		if (queue_lookup(f->q, ids[i]) == NULL)
			fail_msg("lookup %d (%s): got NULL", i, ids[i]);
	for (int i = 0; i < N; i += 2)
		assert_int_equal(queue_remove(f->q, queue_lookup(f->q, ids[i])), 0);
	assert_int_equal(queue_count(f->q), N / 2);
	for (int i = 0; i < N; i++)
		if ((queue_lookup(f->q, ids[i]) != NULL) != (i % 2 == 1))
			fail_msg("lookup %d after removals: got %s", i,
			    queue_lookup(f->q, ids[i]) ? "found" : "NULL");
	fx_reopen(f);
	assert_int_equal(f->nrecovered, N / 2);
	assert_int_equal(count_dir(f, "queue"), N / 2);
	free(ids);
}

/* ---------------------------------------------------------------- recovery in slices */

struct slice_order { char ids[16][QUEUE_ID_SIZE]; size_t n; };

static void
slice_order_cb(void *arg, struct queue_msg *m)
{
	struct slice_order *o = arg;

	if (o->n < 16)
		(void)util_strlcpy(o->ids[o->n++], m->id, QUEUE_ID_SIZE);
}

/*
 * A recovery in slices: mail committed between two slices gets a higher id
 * than every file on disk and stays after the recovered messages in
 * queue_foreach(); a message removed while the recovery runs does not
 * disturb the order; the counters are exact at the end.
 */
static void
test_recover_in_slices(void **state)
{
	struct fx *f = *state;
	struct queue_envelope env = { .sender = "s@x.org", .rcpts = rcpts3, .nrcpt = 1 };
	char old[4][QUEUE_ID_SIZE];
	struct queue_recovery *r;
	struct queue_msg *m, *fresh;
	struct slice_order o = { .n = 0 };
	int rc, steps = 0;

	for (int i = 0; i < 4; i++) {
		m = commit_msg(f, &env, (const unsigned char *)"body\r\n", 6, 6, "H: v\r\n", 6);
		assert_non_null(m);
		(void)util_strlcpy(old[i], m->id, QUEUE_ID_SIZE);
	}
	f->q = queue_close(f->q);
	fx_open(f);
	r = queue_recover_start(f->q, NULL, NULL);
	assert_non_null(r);
	assert_int_equal(queue_recover_step(r, 1), 0);          /* one directory entry */
	fresh = commit_msg(f, &env, (const unsigned char *)"new\r\n", 5, 5, "", 0);
	assert_non_null(fresh);
	assert_true(strcmp(fresh->id, old[3]) > 0);           /* above every file on disk */
	while ((rc = queue_recover_step(r, 1)) == 0)
		assert_true(++steps < 100);
	assert_int_equal(rc, 1);
	r = queue_recover_finish(r);
	assert_null(r);
	assert_int_equal(queue_count(f->q), 5);                /* each counted once */
	assert_int_equal(queue_bytes(f->q), fx_file_bytes(f));
	queue_foreach(f->q, slice_order_cb, &o);
	assert_int_equal(o.n, 5);
	for (int i = 0; i < 4; i++)
		assert_string_equal(o.ids[i], old[i]);         /* recovered in id order */
	assert_string_equal(o.ids[4], fresh->id);              /* before the mail that came meanwhile */
	assert_int_equal(queue_remove(f->q, queue_lookup(f->q, old[1])), 0);
	assert_int_equal(queue_count(f->q), 4);
	/* a new commit after the recovery goes last */
	m = commit_msg(f, &env, (const unsigned char *)"last\r\n", 6, 6, "", 0);
	assert_non_null(m);
	o.n = 0;
	queue_foreach(f->q, slice_order_cb, &o);
	assert_int_equal(o.n, 5);
	assert_string_equal(o.ids[4], m->id);
}

/* ---------------------------------------------------------------- the window */

#define WIN_MAX 64

struct win {
	struct fx *f;
	char loaded[WIN_MAX][QUEUE_ID_SIZE];   /* every load the listener heard of */
	int nloaded, nforced;
	struct queue_msg *victims[WIN_MAX];    /* the evictor parks these, in order */
	int nvictims, nevicted;
};

static void
win_listener(void *arg, struct queue_msg *m)
{
	struct win *w = arg;

	assert_true(w->nloaded < WIN_MAX);
	(void)util_strlcpy(w->loaded[w->nloaded++], m->id, QUEUE_ID_SIZE);
	w->nforced += m->forced;
	m->forced = 0;
}

static int
win_evict(void *arg)
{
	struct win *w = arg;

	if (w->nevicted == w->nvictims)
		return 0;
	assert_int_equal(queue_park(w->f->q, w->victims[w->nevicted++]), 0);
	return 1;
}

/* win_commit - n messages of two recipients each, committed; their ids in ids[] */
static void
win_commit(struct fx *f, int n, char (*ids)[QUEUE_ID_SIZE])
{
	static const char *const two[] = { "a@x.org", "b@y.org" };
	struct queue_envelope env = { .sender = "s@x.org", .rcpts = two, .nrcpt = 2 };
	int base = f->ncb;

	for (int i = 0; i < n; i++) {
		struct queue_file *qf = queue_file_create(f->q, &env);

		assert_non_null(qf);
		(void)util_strlcpy(ids[i], queue_file_id(qf), QUEUE_ID_SIZE);
		assert_int_equal(queue_file_write(qf, "Subject: w\r\n\r\nbody\r\n", 21), 0);
		queue_file_commit(qf, "", 0, on_commit, f);
	}
	fx_wait(f, base + n);
}

/* win_spin - run the loop's ready events (the refill scan) a bounded number of times */
static void
win_spin(struct fx *f)
{
	for (int i = 0; i < 50; i++)
		event_base_loop(f->base, EVLOOP_NONBLOCK);
}

struct win_walk { struct queue_msg *m[WIN_MAX]; int n; };

static int
win_id_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void
win_walk_cb(void *arg, struct queue_msg *m)
{
	struct win_walk *ww = arg;

	assert_true(ww->n < WIN_MAX);
	ww->m[ww->n++] = m;
}

/* Parked when full, loaded again as room comes, each message exactly once; counters exact. */
static void
test_window_park_refill(void **state)
{
	struct fx *f = *state;
	struct win w = { .f = f };
	char ids[30][QUEUE_ID_SIZE], done[30][QUEUE_ID_SIZE];
	struct queue_parked_info pk;
	int ndone = 0;

	queue_set_listener(f->q, win_listener, &w);
	queue_set_active_limit(f->q, 10);
	win_commit(f, 30, ids);
	assert_int_equal(f->nok, 30);
	queue_parked(f->q, &pk);
	assert_int_equal(queue_count(f->q), 30);
	assert_int_equal(queue_bytes(f->q), fx_file_bytes(f));
	assert_int_equal(pk.loaded, 10);
	assert_int_equal(pk.messages, 20);
	assert_int_equal(pk.rcpts, 40);                /* two pending recipients each, from the stamps */
	assert_int_equal(pk.deferred + pk.held, 0);
	assert_int_equal(w.nloaded, 10);               /* the listener heard only of loaded ones */
	assert_null(queue_lookup(f->q, "0000000000000001"));

	/* deliver what is loaded, let the scan refill, until the queue is empty */
	for (int round = 0; round < 20 && queue_count(f->q) > 0; round++) {
		struct win_walk ww = { .n = 0 };

		queue_foreach(f->q, win_walk_cb, &ww);
		assert_true(ww.n <= 10);
		for (int i = 0; i < ww.n; i++) {
			for (int k = 0; k < ndone; k++)
				if (strcmp(done[k], ww.m[i]->id) == 0)
					fail_msg("%s delivered twice", ww.m[i]->id);
			(void)util_strlcpy(done[ndone++], ww.m[i]->id, QUEUE_ID_SIZE);
			assert_int_equal(queue_remove(f->q, ww.m[i]), 0);
		}
		win_spin(f);
		queue_parked(f->q, &pk);
		assert_true(pk.loaded <= 10);
		assert_int_equal(queue_count(f->q), pk.loaded + pk.messages);
		assert_int_equal(queue_bytes(f->q), fx_file_bytes(f));
		assert_int_equal(pk.rcpts, 2 * pk.messages);
	}
	assert_int_equal(ndone, 30);
	assert_int_equal(queue_count(f->q), 0);
	assert_int_equal(queue_bytes(f->q), 0);
	assert_int_equal(w.nloaded, 30);
	for (int i = 0; i < 30; i++) {
		int found = 0;

		for (int k = 0; k < ndone; k++)
			found += strcmp(done[k], ids[i]) == 0;
		assert_int_equal(found, 1);
	}
}

/* New mail evicts waiting (deferred) messages; those stay parked until due or flushed. */
static void
test_window_evict_for_new_mail(void **state)
{
	struct fx *f = *state;
	struct win w = { .f = f };
	char ids[10][QUEUE_ID_SIZE], fresh[3][QUEUE_ID_SIZE];
	struct queue_parked_info pk;
	uint64_t later = util_now_us() + 3600ull * 1000000;

	queue_set_listener(f->q, win_listener, &w);
	queue_set_active_limit(f->q, 10);
	queue_set_evictor(f->q, win_evict, &w);
	win_commit(f, 10, ids);
	for (int i = 0; i < 3; i++) {
		struct queue_msg *m = queue_lookup(f->q, ids[i]);

		assert_non_null(m);
		for (size_t r = 0; r < m->nrcpt; r++)
			assert_int_equal(queue_update_rcpt(f->q, m, r, QUEUE_RCPT_PENDING, later,
			    "4.4.1", "connection refused"), 0);
		w.victims[w.nvictims++] = m;
	}
	win_commit(f, 3, fresh);
	assert_int_equal(w.nevicted, 3);
	assert_int_equal(w.nloaded, 13);               /* the new mail got in */
	assert_string_equal(w.loaded[12], fresh[2]);
	queue_parked(f->q, &pk);
	assert_int_equal(pk.loaded, 10);
	assert_int_equal(pk.messages, 3);
	assert_int_equal(pk.deferred, 3);
	assert_int_equal(queue_count(f->q), 13);
	assert_int_equal(queue_bytes(f->q), fx_file_bytes(f));

	/* room, but nothing parked is due: nothing comes back */
	for (int i = 3; i < 8; i++)
		assert_int_equal(queue_remove(f->q, queue_lookup(f->q, ids[i])), 0);
	win_spin(f);
	queue_parked(f->q, &pk);
	assert_int_equal(pk.messages, 3);
	assert_int_equal(w.nloaded, 13);

	/* a flush brings them back, marked forced, with their state */
	queue_flush_parked(f->q);
	win_spin(f);
	queue_parked(f->q, &pk);
	assert_int_equal(pk.messages, 0);
	assert_int_equal(pk.deferred, 0);
	assert_int_equal(w.nloaded, 16);
	assert_int_equal(w.nforced, 3);
	for (int i = 0; i < 3; i++) {
		struct queue_msg *m = queue_lookup(f->q, ids[i]);

		assert_non_null(m);
		assert_int_equal(m->rcpt[0].attempts, 1);
		assert_int_equal(m->rcpt[1].next_try_us, later);
	}
	assert_int_equal(queue_count(f->q), 8);
	assert_int_equal(queue_bytes(f->q), fx_file_bytes(f));
}

/* A restart with a parked backlog: counted without reading, oldest loaded, states exact. */
static void
test_window_restart(void **state)
{
	struct fx *f = *state;
	struct win w = { .f = f };
	char ids[15][QUEUE_ID_SIZE];
	struct queue_parked_info pk;
	struct queue_recovery *r;
	struct win_walk ww = { .n = 0 };
	uint64_t later = util_now_us() + 3600ull * 1000000;
	int held = 0, deferred = 0, rc;

	queue_set_listener(f->q, win_listener, &w);
	queue_set_active_limit(f->q, 10);
	win_commit(f, 15, ids);
	qsort(ids, 15, sizeof(ids[0]), win_id_cmp);    /* spares are not taken strictly in id order */
	assert_int_equal(queue_update_rcpt(f->q, queue_lookup(f->q, ids[1]), 0,
	    QUEUE_RCPT_PENDING, later, "4.4.1", "refused"), 0);
	assert_int_equal(queue_update_rcpt(f->q, queue_lookup(f->q, ids[9]), 1,
	    QUEUE_RCPT_PENDING, later, "4.4.1", "refused"), 0);
	assert_int_equal(queue_set_held(f->q, queue_lookup(f->q, ids[8]), 1), 0);
	/* a recipient done: one pending left */
	assert_int_equal(queue_update_rcpt(f->q, queue_lookup(f->q, ids[7]), 0,
	    QUEUE_RCPT_DELIVERED, 0, "2.0.0", "ok"), 0);
	f->q = queue_close(f->q);               /* stamps what was loaded */

	fx_open(f);
	w.nloaded = 0;
	queue_set_listener(f->q, win_listener, &w);
	queue_set_active_limit(f->q, 10);
	assert_non_null(r = queue_recover_start(f->q, win_listener, &w));
	queue_parked(f->q, &pk);
	assert_int_equal(pk.recovering, 1);     /* parked files cannot be loaded yet */
	assert_int_equal(queue_parked_set_held(f->q, ids[14], 1), -1);
	assert_int_equal(errno, ENOENT);
	while ((rc = queue_recover_step(r, 4)) == 0)
		;
	assert_int_equal(rc, 1);
	r = queue_recover_finish(r);
	queue_parked(f->q, &pk);
	assert_int_equal(pk.recovering, 0);
	assert_int_equal(queue_count(f->q), 15);
	assert_int_equal(queue_bytes(f->q), fx_file_bytes(f));
	queue_parked(f->q, &pk);
	assert_int_equal(pk.loaded, 8);                /* the window less the share of new mail */
	assert_int_equal(pk.messages, 7);
	queue_foreach(f->q, win_walk_cb, &ww);
	assert_int_equal(ww.n, 8);
	for (int i = 0; i < 8; i++)
		assert_string_equal(ww.m[i]->id, ids[i]);       /* the oldest, in id order */
	for (int i = 0; i < ww.n; i++) {
		held += ww.m[i]->held;
		deferred += !ww.m[i]->held && ww.m[i]->rcpt[0].attempts + ww.m[i]->rcpt[1].attempts > 0 &&
		    ww.m[i]->rcpt[0].state == QUEUE_RCPT_PENDING;
	}
	assert_int_equal(held + (int)pk.held, 1);
	assert_int_equal(deferred + (int)pk.deferred, 2);
	assert_int_equal(pk.rcpts, 2 * 7);             /* ids[8..14]: two pending each */
}

/* win_was_loaded - did the listener hear of id? */
static int
win_was_loaded(const struct win *w, const char *id)
{
	for (int i = 0; i < w->nloaded; i++)
		if (strcmp(w->loaded[i], id) == 0)
			return 1;
	return 0;
}

/*
 * Hold and release of parked messages leave them parked (the window and the
 * listener never see them), stamped as held or not; loaded ones are refused
 * (ENOENT); queue_parked_room() parks a waiting message when the window is full.
 */
static void
test_parked_set_held(void **state)
{
	struct fx *f = *state;
	struct win w = { .f = f };
	char ids[15][QUEUE_ID_SIZE], parked[15][QUEUE_ID_SIZE], loaded[QUEUE_ID_SIZE] = "";
	struct queue_parked_info pk;
	static const struct { int held, rc, pk_held; } steps[] = {
		{ 1, 1, 5 },       /* held: every parked one changes */
		{ 1, 0, 5 },       /* again: nothing to do */
		{ 0, 1, 0 },       /* released */
		{ 0, 0, 0 },
	};
	int np = 0, nl0;

	queue_set_listener(f->q, win_listener, &w);
	queue_set_active_limit(f->q, 10);
	queue_set_evictor(f->q, win_evict, &w);
	win_commit(f, 15, ids);
	for (int i = 0; i < 15; i++) {
		if (!win_was_loaded(&w, ids[i]))
			(void)util_strlcpy(parked[np++], ids[i], QUEUE_ID_SIZE);
		else if (loaded[0] == '\0')
			(void)util_strlcpy(loaded, ids[i], QUEUE_ID_SIZE);
	}
	assert_int_equal(np, 5);
	nl0 = w.nloaded;
	for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
		for (int i = 0; i < np; i++) {
			int rc = queue_parked_set_held(f->q, parked[i], steps[s].held);

			if (rc != steps[s].rc)
				fail_msg("step %zu, %s: got %d, want %d", s, parked[i], rc, steps[s].rc);
		}
		queue_parked(f->q, &pk);
		if (pk.held != (uint64_t)steps[s].pk_held)
			fail_msg("step %zu: parked held: got %llu, want %d", s,
			    (unsigned long long)pk.held, steps[s].pk_held);
		assert_int_equal(pk.messages, 5);
		assert_int_equal(pk.loaded, 10);
		assert_int_equal(w.nloaded, nl0);      /* nobody was handed a message */
		assert_int_equal(queue_count(f->q), 15);
		assert_int_equal(queue_bytes(f->q), fx_file_bytes(f));
	}
	/* the held state is in the file: a look-up loads it as the last step left it */
	assert_int_equal(queue_parked_set_held(f->q, parked[0], 1), 1);
	{
		struct queue_msg *m = queue_lookup(f->q, parked[0]);

		assert_non_null(m);
		assert_int_equal(m->held, 1);
	}
	/* a loaded message is not parked */
	errno = 0;
	assert_int_equal(queue_parked_set_held(f->q, loaded, 1), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(queue_parked_set_held(f->q, "00000000000000FF", 1), -1);
	assert_int_equal(errno, ENOENT);

	/* room: 11 loaded now; nothing waits, then one does */
	assert_int_equal(queue_parked_room(f->q), 0);
	w.victims[w.nvictims++] = queue_lookup(f->q, loaded);
	w.victims[w.nvictims++] = queue_lookup(f->q, parked[0]);
	assert_int_equal(queue_parked_room(f->q), 1);
	queue_parked(f->q, &pk);
	assert_int_equal(pk.loaded, 9);
	assert_int_equal(queue_count(f->q), 15);
	assert_int_equal(queue_bytes(f->q), fx_file_bytes(f));
}

/* ---------------------------------------------------------------- tool interface */

/* tool_read_all - a file's content through queue_reader_fdopen(), in reads of `chunk` */
static unsigned char *
tool_read_all(int fd, const struct queue_loc *loc, size_t chunk, size_t *len)
{
	struct queue_reader *r = queue_reader_fdopen(fd, loc);
	size_t cap = 1024, n = 0;
	unsigned char *b = malloc(cap);
	ssize_t got;

	assert_non_null(r);
	for (;;) {
		if (cap - n < chunk) {
			cap = cap * 2 + chunk;
			b = realloc(b, cap);
			assert_non_null(b);
		}
		got = queue_reader_read(r, b + n, chunk);
		assert_true(got >= 0);
		if (got == 0)
			break;
		n += (size_t)got;
	}
	queue_reader_close(r);      /* closes fd */
	*len = n;
	return b;
}

/*
 * queue_reader_parse_fd() and queue_reader_fdopen() on the daemon's own files:
 * the same message and content as the index and queue_reader_open() give.
 */
static void
test_tool_committed(void **state)
{
	struct fx *f = *state;
	size_t nrows = sizeof(rt_rows) / sizeof(rt_rows[0]);

	for (size_t i = 0; i < nrows; i++) {
		struct queue_envelope env = {
			.sender = "sender@example.org", .rcpts = rcpts3, .nrcpt = rt_rows[i].nrcpt,
			.client_addr = rt_rows[i].client ? "192.0.2.1" : NULL,
			.flags = rt_rows[i].flags,
		};
		unsigned char *data = make_content(rt_rows[i].len, (unsigned)i);
		char *prepend = (char *)make_content(rt_rows[i].plen, (unsigned)i + 100);
		struct queue_msg *m = commit_msg(f, &env, data, rt_rows[i].len, rt_rows[i].chunk,
		    prepend, rt_rows[i].plen);
		struct queue_parse_result res;
		struct queue_msg got;
		unsigned char *content;
		size_t clen, want_len;
		char path[600];
		int fd;

		assert_non_null(m);
		fd = open(fx_path(f, "queue", m->id, path, sizeof(path)), O_RDONLY);
		assert_true(fd >= 0);
		assert_int_equal(queue_reader_parse_fd(fd, &got, &res), 0);
		if (res.status != QUEUE_PARSE_OK)
			fail_msg("%s: status: got %s, want OK", rt_rows[i].name,
			    status_name(res.status));
		if (got.id[0] != '\0')
			fail_msg("%s: id: got \"%s\", want \"\" (the caller sets it)",
			    rt_rows[i].name, got.id);
		assert_string_equal(got.sender, "sender@example.org");
		assert_int_equal(got.nrcpt, rt_rows[i].nrcpt);
		for (size_t r = 0; r < got.nrcpt; r++)
			assert_string_equal(got.rcpt[r].addr, rcpts3[r]);
		assert_int_equal(got.flags, rt_rows[i].flags);
		assert_int_equal(got.size, m->size);
		assert_int_equal(got.arrival_us, m->arrival_us);
		assert_int_equal(queue_rec_msg_pending(&got), 1);
		assert_int_equal(res.loc.state_cut, 0);
		assert_int_equal(res.loc.good_len, res.length);
		content = tool_read_all(fd, &res.loc, 1 + i * 1999, &clen);
		want_len = rt_rows[i].plen + rt_rows[i].len;
		if (clen != want_len)
			fail_msg("%s: content length: got %zu, want %zu", rt_rows[i].name, clen,
			    want_len);
		if (memcmp(content, prepend, rt_rows[i].plen) != 0 ||
		    (rt_rows[i].len > 0 && memcmp(content + rt_rows[i].plen, data, rt_rows[i].len) != 0))
			fail_msg("%s: content differs from what was written", rt_rows[i].name);
		queue_rec_msg_free_fields(&got);
		free(content);
		free(data);
		free(prepend);
	}
}

/* queue_reader_parse_fd() on hand-built files: the verdict and what comes with it */
static void
test_tool_verdicts(void **state)
{
	static const struct {
		const char *name;
		int kind;               /* -1: the valid file of fb_valid(), else enum mal */
		size_t cut;             /* bytes dropped from the end */
		enum queue_parse_status want;
		int reason;             /* a reason is given */
	} rows[] = {
		{ "valid file",          -1,                 0,  QUEUE_PARSE_OK,          0 },
		{ "valid, end cut",      -1,                 1,  QUEUE_PARSE_UNCOMMITTED, 0 },
		{ "empty file",          MAL_EMPTY,          0,  QUEUE_PARSE_UNCOMMITTED, 0 },
		{ "bad magic",           MAL_BAD_MAGIC,      0,  QUEUE_PARSE_CORRUPT,     1 },
		{ "no recipient",        MAL_NO_RCPT,        0,  QUEUE_PARSE_CORRUPT,     1 },
		{ "content size wrong",  MAL_SIZE_MISMATCH,  0,  QUEUE_PARSE_CORRUPT,     1 },
		{ "no content is fine",  MAL_NO_DATA_OK,     0,  QUEUE_PARSE_OK,          0 },
	};
	char dir[] = "/tmp/test_queue_tool.XXXXXX", path[64];
	struct fb fb;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_true(util_bsnprintf(path, sizeof(path), "%s/f", dir) >= 0);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct queue_parse_result res;
		struct queue_msg m;
		size_t ends[16], nends;
		int fd;

		if (rows[i].kind < 0)
			fb_valid(&fb, ends, &nends);
		else
			fb_build(&fb, (enum mal)rows[i].kind);
		write_file(path, fb.b, fb.n - rows[i].cut);
		assert_true((fd = open(path, O_RDONLY)) >= 0);
		assert_int_equal(queue_reader_parse_fd(fd, &m, &res), 0);
		close(fd);
		if (res.status != rows[i].want)
			fail_msg("%s: status: got %s, want %s", rows[i].name,
			    status_name(res.status), status_name(rows[i].want));
		if ((res.reason != NULL) != rows[i].reason)
			fail_msg("%s: reason: got %s, want %s", rows[i].name,
			    res.reason != NULL ? res.reason : "none", rows[i].reason ? "one" : "none");
		if (res.status == QUEUE_PARSE_OK) {
			assert_non_null(m.sender);
			assert_true(m.nrcpt >= 1);
			assert_int_equal(res.length, fb.n - rows[i].cut);
		} else if (m.sender != NULL || m.nrcpt != 0 || m.rcpt != NULL) {
			fail_msg("%s: a message came with verdict %s", rows[i].name,
			    status_name(res.status));
		}
		queue_rec_msg_free_fields(&m);
	}
	/* a file that cannot be read: -1 and errno, nothing in m */
	{
		struct queue_parse_result res;
		struct queue_msg m;
		int fd = open(dir, O_RDONLY | O_DIRECTORY);

		assert_true(fd >= 0);
		errno = 0;
		assert_int_equal(queue_reader_parse_fd(fd, &m, &res), -1);
		if (errno != EISDIR)
			fail_msg("read of a directory: errno got %d, want EISDIR", errno);
		assert_null(m.sender);
		close(fd);
	}
	unlink(path);
	rmdir(dir);
}

/* queue_rec_msg_pending - one row per recipient-state mix */
static void
test_tool_pending(void **state)
{
	static const struct {
		enum queue_rcpt_state st[3];
		size_t n;
		int want;
	} rows[] = {
		{ { QUEUE_RCPT_PENDING }, 1, 1 },
		{ { QUEUE_RCPT_DELIVERED }, 1, 0 },
		{ { QUEUE_RCPT_BOUNCED, QUEUE_RCPT_DELIVERED }, 2, 0 },
		{ { QUEUE_RCPT_DELIVERED, QUEUE_RCPT_BOUNCED, QUEUE_RCPT_PENDING }, 3, 1 },
		{ { QUEUE_RCPT_PENDING }, 0, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct queue_rcpt r[3];
		struct queue_msg m;
		int got;

		memset(&m, 0, sizeof(m));
		memset(r, 0, sizeof(r));
		for (size_t k = 0; k < 3; k++)
			r[k].state = rows[i].st[k];
		m.rcpt = r;
		m.nrcpt = rows[i].n;
		if ((got = queue_rec_msg_pending(&m)) != rows[i].want)
			fail_msg("row %zu: got %d, want %d", i, got, rows[i].want);
	}
}

/* --- delivery history ('a' records) ------------------------------------------ */

/* The record's encoder and decoder: fields round-trip, long texts are cut, bad lengths refused. */
static void
test_hist_record(void **state)
{
	unsigned char rec[QUEUE_REC_ST_MAXLEN];
	char longtext[3000];
	struct queue_attempt a, b;
	size_t len;

	(void)state;
	memset(longtext, 'x', sizeof(longtext) - 1);
	longtext[sizeof(longtext) - 1] = '\0';
	a = hist_make(7, QUEUE_ATTEMPT_BOUNCED, 3, 1700000000123456ULL, "mx.example.org[192.0.2.1]:25",
	    "5.1.1", "550 5.1.1 no such user (in reply to RCPT TO command)");
	len = queue_rec_state_attempt(rec, &a);
	assert_int_equal(rec[0], QUEUE_REC_ST_ATTEMPT);
	assert_int_equal(queue_rec_get32(rec + 1), len - QUEUE_REC_HDR);
	assert_int_equal(crc32c(0, rec, len - 4), queue_rec_get32(rec + len - 4));
	memset(&b, 0xAA, sizeof(b));
	assert_int_equal(queue_rec_attempt_decode(rec + QUEUE_REC_HDR, len - QUEUE_REC_HDR - 4, &b), 0);
	assert_int_equal(b.rcpt, 7);
	assert_int_equal(b.result, QUEUE_ATTEMPT_BOUNCED);
	assert_int_equal(b.attempt, 3);
	assert_int_equal(b.time_us, 1700000000123456ULL);
	assert_memory_equal(b.delays_ms, a.delays_ms, sizeof(a.delays_ms));
	assert_string_equal(b.host, a.host);
	assert_string_equal(b.dsn, "5.1.1");
	assert_string_equal(b.reply, a.reply);
	/* cut at their maxima; the record fits a state record buffer */
	util_strlcpy(a.host, longtext, sizeof(a.host));
	util_strlcpy(a.reply, longtext, sizeof(a.reply));
	len = queue_rec_state_attempt(rec, &a);
	assert_true(len <= QUEUE_REC_HDR + QUEUE_REC_HIST_MAX);
	assert_int_equal(queue_rec_attempt_decode(rec + QUEUE_REC_HDR, len - QUEUE_REC_HDR - 4, &b), 0);
	assert_int_equal(strlen(b.host), QUEUE_ATTEMPT_HOST_MAX);
	assert_int_equal(strlen(b.reply), QUEUE_ATTEMPT_REPLY_MAX);
	/* host length past the payload, an unknown result, a NUL: refused */
	a = hist_make(0, QUEUE_ATTEMPT_DEFERRED, 1, 1, "h", "4.0.0", "r");
	len = queue_rec_state_attempt(rec, &a);
	rec[QUEUE_REC_HDR + 33] = 200;
	assert_int_equal(queue_rec_attempt_decode(rec + QUEUE_REC_HDR, len - QUEUE_REC_HDR - 4, &b), -1);
	len = queue_rec_state_attempt(rec, &a);
	rec[QUEUE_REC_HDR + 4] = 3;
	assert_int_equal(queue_rec_attempt_decode(rec + QUEUE_REC_HDR, len - QUEUE_REC_HDR - 4, &b), -1);
	len = queue_rec_state_attempt(rec, &a);
	rec[QUEUE_REC_HDR + QUEUE_REC_HIST_FIXED] = '\0';
	assert_int_equal(queue_rec_attempt_decode(rec + QUEUE_REC_HDR, len - QUEUE_REC_HDR - 4, &b), -1);
	assert_int_equal(queue_rec_attempt_decode(rec + QUEUE_REC_HDR, 10, &b), -1);
}

/*
 * Attempts go into the file with the state (not into memory), are read back
 * in order, capped per recipient (deferrals past QUEUE_HIST_WRITE_MAX are not
 * written, the final result is), shown as the first and the last 20; recovery
 * accepts the records and a torn last one.
 */
static void
test_hist_file(void **state)
{
	struct fx *f = *state;
	struct queue_envelope env = { .sender = "s@x.org", .rcpts = rcpts3, .nrcpt = 3 };
	static struct hist_got got;
	struct queue_attempt a;
	char id[QUEUE_ID_SIZE], path[400];
	struct queue_msg *m;
	uint64_t omitted;
	json_t *j, *e;
	size_t len;
	unsigned char *raw;
	int fd;

	m = commit_msg(f, &env, (const unsigned char *)"body\r\n", 6, 6, "", 0);
	assert_non_null(m);
	memcpy(id, m->id, QUEUE_ID_SIZE);
	/* recipient 0: 205 deferrals, then delivered; recipient 1: one deferral */
	for (uint32_t n = 1; n <= 205; n++) {
		char reply[64];

		(void)snprintf(reply, sizeof(reply), "451 4.7.1 try %u", n);
		a = hist_make(0, QUEUE_ATTEMPT_DEFERRED, n, 1000000ULL * n, "mx[192.0.2.1]:25",
		    "4.7.1", reply);
		assert_int_equal(queue_update_rcpt_hist(f->q, m, 0, QUEUE_RCPT_PENDING, 99, "4.7.1",
		    reply, &a), 0);
	}
	a = hist_make(1, QUEUE_ATTEMPT_DEFERRED, 1, 5000000, "", "4.4.1", "connect: refused");
	assert_int_equal(queue_update_rcpt_hist(f->q, m, 1, QUEUE_RCPT_PENDING, 99, "4.4.1",
	    "connect: refused", &a), 0);
	a = hist_make(0, QUEUE_ATTEMPT_DELIVERED, 206, 300000000, "mx[192.0.2.1]:25", "2.0.0",
	    "250 ok");
	assert_int_equal(queue_update_rcpt_hist(f->q, m, 0, QUEUE_RCPT_DELIVERED, 0, "2.0.0",
	    "250 ok", &a), 0);
	assert_int_equal(m->rcpt[0].attempts, 206);

	assert_true((fd = queue_hist_open(f->q, id)) >= 0);
	memset(&got, 0, sizeof(got));
	assert_int_equal(queue_hist_read_fd(fd, hist_collect, &got), 0);
	assert_int_equal(got.n, 200 + 1 + 1);
	assert_int_equal(got.a[0].attempt, 1);
	assert_string_equal(got.a[0].reply, "451 4.7.1 try 1");
	assert_string_equal(got.a[0].host, "mx[192.0.2.1]:25");
	assert_int_equal(got.a[199].attempt, 200);
	assert_int_equal(got.a[200].rcpt, 1);
	assert_string_equal(got.a[200].host, "");
	assert_int_equal(got.a[201].result, QUEUE_ATTEMPT_DELIVERED);
	assert_int_equal(got.a[201].attempt, 206);

	/* the view: recipient 0's first and last 20, recipient 1's one */
	j = queue_hist_json(fd, m, &omitted);
	assert_non_null(j);
	assert_int_equal(json_array_size(j), 1 + QUEUE_HIST_SHOW_LAST + 1);
	assert_int_equal(omitted, 201 - 1 - QUEUE_HIST_SHOW_LAST);
	e = json_array_get(j, 0);
	assert_int_equal(json_integer_value(json_object_get(e, "attempt")), 1);
	assert_string_equal(json_string_value(json_object_get(e, "recipient")), rcpts3[0]);
	assert_string_equal(json_string_value(json_object_get(e, "result")), "deferred");
	assert_string_equal(json_string_value(json_object_get(e, "dsn")), "4.7.1");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(j, 1), "attempt")), 182);
	e = json_array_get(j, json_array_size(j) - 1);
	assert_string_equal(json_string_value(json_object_get(e, "result")), "delivered");
	assert_int_equal(json_integer_value(json_object_get(e, "attempt")), 206);
	assert_true(json_is_null(json_object_get(json_array_get(j, 20), "host")));
	json_decref(j);
	close(fd);

	/* a torn last record: recovery keeps the message, the history stops before it */
	fx_path(f, "queue", id, path, sizeof(path));
	raw = read_file(path, &len);
	assert_non_null(raw);
	{
		unsigned char rec[QUEUE_REC_ST_MAXLEN];
		size_t rl;
		FILE *fp = fopen(path, "ab");

		a = hist_make(1, QUEUE_ATTEMPT_DEFERRED, 2, 6000000, "h", "4.0.0", "torn");
		rl = queue_rec_state_attempt(rec, &a);
		assert_non_null(fp);
		assert_int_equal(fwrite(rec, 1, rl / 2, fp), rl / 2);
		fclose(fp);
	}
	free(raw);
	fx_reopen(f);
	assert_int_equal(f->nrecovered, 1);
	m = queue_lookup(f->q, id);
	assert_non_null(m);
	assert_int_equal(m->rcpt[0].state, QUEUE_RCPT_DELIVERED);
	assert_int_equal(m->rcpt[1].attempts, 1);
	assert_true((fd = queue_hist_open(f->q, id)) >= 0);
	memset(&got, 0, sizeof(got));
	assert_int_equal(queue_hist_read_fd(fd, hist_collect, &got), 0);
	assert_int_equal(got.n, 202);
	close(fd);
	/* appending goes on after the recovery cut the torn tail */
	a = hist_make(1, QUEUE_ATTEMPT_DEFERRED, 2, 7000000, "h2", "4.0.0", "again");
	assert_int_equal(queue_update_rcpt_hist(f->q, m, 1, QUEUE_RCPT_PENDING, 99, "4.0.0",
	    "again", &a), 0);
	assert_true((fd = queue_hist_open(f->q, id)) >= 0);
	memset(&got, 0, sizeof(got));
	assert_int_equal(queue_hist_read_fd(fd, hist_collect, &got), 0);
	assert_int_equal(got.n, 203);
	assert_string_equal(got.a[202].reply, "again");
	close(fd);
	assert_int_equal(queue_hist_open(f->q, "0000000000000001"), -1);
}

/* The parser checks 'a' records: one for a recipient that does not exist is corrupt. */
static void
test_hist_parse(void **state)
{
	struct fx *f = *state;
	struct queue_envelope env = { .sender = "s@x.org", .rcpts = rcpts3, .nrcpt = 3 };
	struct queue_parse *p = malloc(sizeof(*p));
	unsigned char rec[QUEUE_REC_ST_MAXLEN], *raw, *buf;
	struct queue_attempt a;
	char path[400];
	size_t len, rl;
	struct queue_msg *m;

	assert_non_null(p);
	m = commit_msg(f, &env, (const unsigned char *)"x", 1, 1, "", 0);
	assert_non_null(m);
	fx_path(f, "queue", m->id, path, sizeof(path));
	raw = read_file(path, &len);
	assert_non_null(raw);
	assert_non_null(buf = malloc(len + QUEUE_REC_ST_MAXLEN));
	memcpy(buf, raw, len);
	/* a good one: OK, nothing of it kept */
	a = hist_make(2, QUEUE_ATTEMPT_DEFERRED, 1, 1, "h", "4.0.0", "r");
	rl = queue_rec_state_attempt(rec, &a);
	memcpy(buf + len, rec, rl);
	assert_int_equal(queue_rec_parse_buffer(p, buf, len + rl), QUEUE_PARSE_OK);
	assert_int_equal(p->loc.good_len, len + rl);
	assert_int_equal(p->loc.state_cut, 0);
	queue_rec_parse_free(p);
	/* a recipient out of range, crc right: corrupt */
	a.rcpt = 3;
	rl = queue_rec_state_attempt(rec, &a);
	memcpy(buf + len, rec, rl);
	assert_int_equal(queue_rec_parse_buffer(p, buf, len + rl), QUEUE_PARSE_CORRUPT);
	queue_rec_parse_free(p);
	/* a failing crc: the state ends there (cut), the message stays */
	a.rcpt = 0;
	rl = queue_rec_state_attempt(rec, &a);
	rec[rl - 1] ^= 1;
	memcpy(buf + len, rec, rl);
	assert_int_equal(queue_rec_parse_buffer(p, buf, len + rl), QUEUE_PARSE_OK);
	assert_int_equal(p->loc.state_cut, 1);
	assert_int_equal(p->loc.good_len, len);
	queue_rec_parse_free(p);
	free(buf);
	free(raw);
	free(p);
}

/* Reading a queue file (delivery, recovery, history) leaves its atime alone: no dirty inode to sync. */
static void
test_reads_keep_atime(void **state)
{
	struct fx *f = *state;
	struct queue_envelope env = { .sender = "s@example.org", .rcpts = rcpts3, .nrcpt = 1 };
	unsigned char *data = make_content(3000, 7), *back, buf[64];
	struct timespec ts[2] = { { 1000, 0 }, { 0, UTIME_OMIT } };
	struct queue_msg *m = commit_msg(f, &env, data, 3000, 3000, NULL, 0);
	struct stat st;
	char path[600];
	size_t len;
	int fd;

	assert_non_null(m);
	fx_path(f, "queue", m->id, path, sizeof(path));
	/* an atime older than the mtime: relatime would update it on a read */
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
	back = read_all(f->q, m, 512, &len);
	assert_int_equal(len, 3000);
	assert_true((fd = queue_hist_open(f->q, m->id)) >= 0);
	assert_true(read(fd, buf, sizeof(buf)) > 0);
	close(fd);
	{
		char qd[400];
		int dfd;

		assert_int_equal(util_bsnprintf(qd, sizeof(qd), "%s/queue", f->data_dir) < 0, 0);
		assert_true((dfd = open(qd, O_RDONLY | O_DIRECTORY)) >= 0);
		assert_true((fd = queue_recover_open(dfd, m->id)) >= 0);
		assert_true(read(fd, buf, sizeof(buf)) > 0);
		close(fd);
		close(dfd);
	}
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_atim.tv_sec, 1000);
	free(back);
	free(data);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c),
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_truncated),
		cmocka_unit_test(test_parse_flipped),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_parse_state),
		cmocka_unit_test(test_hist_record),
		cmocka_unit_test(test_tool_verdicts),
		cmocka_unit_test(test_tool_pending),
		cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reads_keep_atime, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tool_committed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreach_remove_counters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort_and_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_finishes_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spares, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hist_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hist_parse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_in_slices, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window_park_refill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window_evict_for_new_mail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parked_set_held, setup, teardown),
	};

	log_init("test_queue", 0);
	if (evthread_use_pthreads() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
