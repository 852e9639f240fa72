/*
 * test_queue_pidx.c - tests for src/queue/queue_pidx.c: the index of
 *                     parked messages (<data_dir>/queue.idx)
 *
 * Owns:     a temporary data_dir per test (removed at the end).
 * Lifetime: one run.
 * Errors:   each failing check prints "got X, want Y" and fails its test.
 * Context:  the test thread runs the event loop; the queue's threads (and
 *           the index's) run as in the daemon.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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
#include "queue/queue_pidx.h"

#define FX_MAX 64

struct fx {
	char dir[256];
	char data_dir[300];
	struct event_base *base;
	struct queue *q;
	int ncb, nok;
	/* the evictor parks these, in order */
	struct queue_msg *victims[FX_MAX];
	int nvictims, nevicted;
};

/* one message seen by a scan */
struct seen {
	char id[QUEUE_ID_SIZE];
	char sender[64];
	char rcpt0[64];
	size_t nrcpt;
	unsigned attempts0;
	int state1;                  /* rcpt[1]'s state, -1 without one */
	int held;
	uint64_t arrival_us, size, file_size;
};

struct scan_got {
	struct seen s[FX_MAX];
	int n;
	int stop_after;              /* cb returns 1 after this many (0: never) */
};

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static void
on_commit(void *arg, int ok, const char *id)
{
	struct fx *f = arg;

	(void)id;
	f->ncb++;
	f->nok += ok;
}

static int
fx_evict(void *arg)
{
	struct fx *f = arg;

	if (f->nevicted == f->nvictims)
		return 0;
	assert_int_equal(queue_park(f->q, f->victims[f->nevicted++]), 0);
	return 1;
}

/* fx_spin - run the loop until the index is ready (bounded: 10 s) */
static void
fx_wait_ready(struct fx *f)
{
	uint64_t t0 = util_mono_us();

	while (!queue_pidx_ready(f->q) && util_mono_us() - t0 < 10000000) {
		struct timeval tv = { 0, 10000 };

		event_base_loopexit(f->base, &tv);
		event_base_loop(f->base, EVLOOP_ONCE);
	}
	if (!queue_pidx_ready(f->q))
		fail_msg("the index: not ready after 10 s");
}

/* fx_open - open the queue with recovery and the window at limit; wait for the index when asked */
static void
fx_open(struct fx *f, size_t limit, int wait)
{
	char err[256];

	f->q = queue_open(f->base, f->data_dir, err, sizeof(err));
	if (f->q == NULL)
		fail_msg("queue_open: %s", err);
	queue_set_active_limit(f->q, limit);
	queue_set_evictor(f->q, fx_evict, f);
	f->nvictims = f->nevicted = 0;
	assert_int_equal(queue_recover(f->q, NULL, NULL), 0);
	if (wait)
		fx_wait_ready(f);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	(void)util_strlcpy(f->dir, "/tmp/test_queue_pidx.XXXXXX", sizeof(f->dir));
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(util_bsnprintf(f->data_dir, sizeof(f->data_dir), "%s/data", f->dir) < 0, 0);
	assert_non_null(f->base = event_base_new());
	fx_open(f, 4, 1);
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

/* fx_commit - n messages (nrcpt recipients each, 1 or 2) committed; their ids in ids[] */
static void
fx_commit(struct fx *f, int n, size_t nrcpt, char (*ids)[QUEUE_ID_SIZE])
{
	static const char *const two[] = { "a@x.org", "b@y.org" };
	struct queue_envelope env = { .sender = "s@x.org", .rcpts = two, .nrcpt = nrcpt };
	int base = f->ncb;

	for (int i = 0; i < n; i++) {
		struct queue_file *qf = queue_file_create(f->q, &env);

		assert_non_null(qf);
		(void)util_strlcpy(ids[i], queue_file_id(qf), QUEUE_ID_SIZE);
		assert_int_equal(queue_file_write(qf, "Subject: p\r\n\r\nbody\r\n", 21), 0);
		queue_file_commit(qf, "", 0, on_commit, f);
	}
	for (int i = 0; i < 100000 && f->ncb < base + n; i++)
		event_base_loop(f->base, EVLOOP_ONCE);
	if (f->ncb != base + n)
		fail_msg("commit callbacks: got %d, want %d", f->ncb - base, n);
}

static int
scan_cb(void *arg, const struct queue_msg *m)
{
	struct scan_got *g = arg;
	struct seen *s;

	assert_true(g->n < FX_MAX);
	for (int i = 0; i < g->n; i++)
		if (strcmp(g->s[i].id, m->id) == 0)
			fail_msg("%s: seen twice in one pass", m->id);
	s = &g->s[g->n++];
	memset(s, 0, sizeof(*s));
	(void)util_strlcpy(s->id, m->id, sizeof(s->id));
	(void)util_strlcpy(s->sender, m->sender, sizeof(s->sender));
	(void)util_strlcpy(s->rcpt0, m->rcpt[0].addr, sizeof(s->rcpt0));
	s->nrcpt = m->nrcpt;
	s->attempts0 = m->rcpt[0].attempts;
	s->state1 = m->nrcpt > 1 ? (int)m->rcpt[1].state : -1;
	s->held = m->held;
	s->arrival_us = m->arrival_us;
	s->size = m->size;
	s->file_size = m->file_size;
	return g->stop_after > 0 && g->n >= g->stop_after;
}

/* fx_scan - a whole pass, in steps of 3 records */
static void
fx_scan(struct fx *f, struct scan_got *g)
{
	struct queue_pidx_scan *s = queue_pidx_scan_open(f->q);
	int rc, steps = 0;

	g->n = 0;
	if (s == NULL)
		fail_msg("queue_pidx_scan_open: %s", strerror(errno));
	while ((rc = queue_pidx_scan_step(s, 3, scan_cb, g)) == 0)
		assert_true(++steps < 1000);
	assert_int_equal(rc, 1);
	queue_pidx_scan_close(s);
}

static struct seen *
got_find(struct scan_got *g, const char *id)
{
	for (int i = 0; i < g->n; i++)
		if (strcmp(g->s[i].id, id) == 0)
			return &g->s[i];
	return NULL;
}

/* idx_path - data_dir/name */
static void
idx_path(struct fx *f, const char *name, char *buf, size_t size)
{
	assert_false(util_bsnprintf(buf, size, "%s/%s", f->data_dir, name) < 0);
}

/* idx_keys - the keys of the records in queue.idx (decoded here); their number */
static size_t
idx_keys(struct fx *f, uint64_t *keys, size_t max)
{
	char path[400];
	unsigned char *b;
	size_t len, off = QUEUE_PIDX_MAGIC_LEN, n = 0;
	struct stat st;
	int fd;

	idx_path(f, "queue.idx", path, sizeof(path));
	assert_true((fd = open(path, O_RDONLY)) >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	len = (size_t)st.st_size;
	assert_non_null(b = malloc(len + 1));
	assert_int_equal(read(fd, b, len), (ssize_t)len);
	close(fd);
	assert_true(len >= QUEUE_PIDX_MAGIC_LEN);
	assert_memory_equal(b, QUEUE_PIDX_MAGIC, QUEUE_PIDX_MAGIC_LEN);
	while (off < len) {
		struct queue_pidx_rec r;
		size_t used;

		if (queue_pidx_rec_decode(b + off, len - off, &r, &used) != 1)
			fail_msg("queue.idx: no valid record at offset %zu of %zu", off, len);
		if (n < max)
			keys[n] = r.key;
		n++;
		off += used;
	}
	free(b);
	return n;
}

static ino_t
idx_inode(struct fx *f)
{
	char path[400];
	struct stat st;

	idx_path(f, "queue.idx", path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	return st.st_ino;
}

static int
marker_exists(struct fx *f)
{
	char path[400];

	idx_path(f, "queue.idx.ok", path, sizeof(path));
	return access(path, F_OK) == 0;
}

/* ---------------------------------------------------------------- records */

/* Encode, decode; every single-byte flip, every cut, a wrong length is refused. */
static void
test_pidx_record(void **state)
{
	struct queue_rcpt rc[2] = { { .addr = "a@x.org" }, { .addr = "bb@y.org" } };
	struct queue_msg m = { .sender = "s@x.org", .rcpt = rc, .nrcpt = 2, .arrival_us = 77,
	    .size = 1234 };
	unsigned char buf[256], bad[256];
	struct queue_pidx_rec r;
	size_t n, used;

	(void)state;
	n = queue_pidx_rec_encode(buf, sizeof(buf), 0xABCDEFull, &m);
	assert_int_equal(n, queue_pidx_rec_encoded_len(&m));
	assert_int_equal(n, QUEUE_PIDX_REC_MIN + 8 + 8 + 9);
	assert_int_equal(queue_pidx_rec_decode(buf, n, &r, &used), 1);
	assert_int_equal(used, n);
	assert_int_equal(r.key, 0xABCDEFull);
	assert_int_equal(r.arrival_us, 77);
	assert_int_equal(r.size, 1234);
	assert_int_equal(r.nrcpt, 2);
	assert_string_equal(r.strs, "s@x.org");
	assert_string_equal(r.strs + 8, "a@x.org");
	assert_string_equal(r.strs + 16, "bb@y.org");
	assert_int_equal(queue_pidx_rec_encode(buf, n - 1, 1, &m), 0);     /* does not fit */
	for (size_t cut = 0; cut < n; cut++)
		if (queue_pidx_rec_decode(buf, cut, &r, &used) != 0)
			fail_msg("cut at %zu: got a verdict, want 'more'", cut);
	for (size_t i = 0; i < n; i++)
		for (int bit = 0; bit < 8; bit++) {
			int rc2;

			memcpy(bad, buf, n);
			bad[i] ^= (unsigned char)(1u << bit);
			rc2 = queue_pidx_rec_decode(bad, n, &r, &used);
			if (rc2 == 1)
				fail_msg("byte %zu bit %d flipped: got a record, want none", i, bit);
		}
	/* a length over the cap is refused at once, not waited for */
	memcpy(bad, buf, n);
	bad[3] = 0x7f;
	assert_int_equal(queue_pidx_rec_decode(bad, n, &r, &used), -1);
	/* addresses over a record's bound: left out (the reader reads the message file) */
	{
		enum { NBIG = 3000 };
		struct queue_rcpt *big = calloc(NBIG, sizeof(*big));
		char *addr = malloc(401);
		struct queue_msg mb = m;
		unsigned char *out;

		assert_non_null(big);
		assert_non_null(addr);
		memset(addr, 'x', 400);
		addr[0] = 'a';
		addr[400] = '\0';
		for (int i = 0; i < NBIG; i++)
			big[i].addr = addr;
		mb.rcpt = big;
		mb.nrcpt = NBIG;
		assert_int_equal(queue_pidx_rec_encoded_len(&mb), QUEUE_PIDX_REC_MIN);
		assert_non_null(out = malloc(QUEUE_PIDX_REC_MIN));
		assert_int_equal(queue_pidx_rec_encode(out, QUEUE_PIDX_REC_MIN, 9, &mb), QUEUE_PIDX_REC_MIN);
		assert_int_equal(queue_pidx_rec_decode(out, QUEUE_PIDX_REC_MIN, &r, &used), 1);
		assert_int_equal(r.flags, QUEUE_PIDX_F_NOADDR);
		assert_int_equal(r.nrcpt, NBIG);
		assert_null(r.strs);
		free(out);
		free(addr);
		free(big);
	}
	/* a checksummed record with an empty recipient is refused */
	rc[1].addr = "";
	n = queue_pidx_rec_encode(buf, sizeof(buf), 5, &m);
	assert_int_equal(queue_pidx_rec_decode(buf, n, &r, &used), -1);
}

/* ---------------------------------------------------------------- scans */

/* Parked -> one record; a scan sees it with its envelope and state; loaded and delivered ones are passed over. */
static void
test_pidx_park_scan(void **state)
{
	struct fx *f = *state;
	char ids[8][QUEUE_ID_SIZE], more[2][QUEUE_ID_SIZE];
	uint64_t keys[FX_MAX], later = util_now_us() + 3600ull * 1000000;
	struct scan_got g = { .n = 0 };
	struct queue_msg *m;
	struct seen *s;

	fx_commit(f, 8, 2, ids);            /* 4 loaded, 4 parked at commit */
	assert_int_equal(idx_keys(f, keys, FX_MAX), 4);
	assert_int_equal(queue_pidx_records(f->q), 4);
	fx_scan(f, &g);
	assert_int_equal(g.n, 4);
	for (int i = 4; i < 8; i++) {
		if ((s = got_find(&g, ids[i])) == NULL)
			fail_msg("%s: parked, not in the scan", ids[i]);
		assert_string_equal(s->sender, "s@x.org");
		assert_string_equal(s->rcpt0, "a@x.org");
		assert_int_equal(s->nrcpt, 2);
		assert_int_equal(s->attempts0, 0);
		assert_int_equal(s->held, 0);
		assert_int_equal(s->size, 21);
		assert_true(s->arrival_us + 60000000 > util_now_us() && s->arrival_us <= util_now_us());
		assert_true(s->file_size > 21);
	}
	for (int i = 0; i < 4; i++)
		assert_null(got_find(&g, ids[i]));      /* loaded: not parked */

	/* loaded ones evicted deferred / held: records; a recipient done: the file is read */
	m = queue_lookup(f->q, ids[0]);
	assert_int_equal(queue_update_rcpt(f->q, m, 0, QUEUE_RCPT_PENDING, later, "4.4.1", "no"), 0);
	assert_int_equal(queue_update_rcpt(f->q, m, 1, QUEUE_RCPT_PENDING, later, "4.4.1", "no"), 0);
	assert_int_equal(queue_park(f->q, m), 0);
	m = queue_lookup(f->q, ids[1]);
	assert_int_equal(queue_set_held(f->q, m, 1), 0);
	assert_int_equal(queue_park(f->q, m), 0);
	m = queue_lookup(f->q, ids[2]);
	assert_int_equal(queue_update_rcpt(f->q, m, 1, QUEUE_RCPT_DELIVERED, 0, "2.0.0", "ok"), 0);
	assert_int_equal(queue_park(f->q, m), 0);
	assert_int_equal(queue_pidx_records(f->q), 7);

	/* a parked one loaded (look-up) and one delivered: passed over */
	assert_non_null(m = queue_lookup(f->q, ids[4]));
	assert_non_null(m = queue_lookup(f->q, ids[5]));
	assert_int_equal(queue_remove(f->q, m), 0);
	fx_scan(f, &g);
	assert_int_equal(g.n, 5);
	assert_null(got_find(&g, ids[4]));
	assert_null(got_find(&g, ids[5]));
	assert_non_null(s = got_find(&g, ids[0]));
	assert_int_equal(s->attempts0, 1);
	assert_int_equal(s->held, 0);
	assert_non_null(s = got_find(&g, ids[1]));
	assert_int_equal(s->held, 1);
	assert_non_null(s = got_find(&g, ids[2]));
	assert_int_equal(s->state1, QUEUE_RCPT_DELIVERED);     /* read whole from its file */
	assert_int_equal(s->nrcpt, 2);

	/* one record per message: parked again after a load, nothing appended */
	m = queue_lookup(f->q, ids[4]);
	assert_int_equal(queue_park(f->q, m), 0);
	assert_int_equal(queue_pidx_records(f->q), 7);
	assert_int_equal(idx_keys(f, keys, FX_MAX), 7);
	fx_scan(f, &g);
	assert_int_equal(g.n, 6);

	/* a stop from the callback ends the pass */
	g.stop_after = 2;
	fx_scan(f, &g);
	assert_int_equal(g.n, 2);
	g.stop_after = 0;

	/* new mail evicting waiting mail: the victim gets its record */
	m = queue_lookup(f->q, ids[3]);
	assert_int_equal(queue_update_rcpt(f->q, m, 0, QUEUE_RCPT_PENDING, later, "4.4.1", "no"), 0);
	assert_int_equal(queue_update_rcpt(f->q, m, 1, QUEUE_RCPT_PENDING, later, "4.4.1", "no"), 0);
	f->victims[f->nvictims++] = m;      /* (not due: the refill leaves it parked) */
	queue_set_active_limit(f->q, 1);    /* ids[3] alone fills the window */
	fx_commit(f, 1, 1, more);
	assert_int_equal(f->nevicted, 1);
	fx_scan(f, &g);
	assert_non_null(got_find(&g, ids[3]));
	/* the new one: loaded, or parked (the refill may have filled the window): one or the other */
	assert_true((got_find(&g, more[0]) != NULL) != queue_window_busy(f->q,
	    queue_index_id_key(more[0])));
}

/* queue_parked_read: a parked message whole; ENOENT for a loaded one, a missing one, a bad id. */
static int
read_cb(void *arg, const struct queue_msg *m)
{
	struct scan_got *g = arg;

	return scan_cb(g, m);
}

static void
test_pidx_parked_read(void **state)
{
	struct fx *f = *state;
	char ids[6][QUEUE_ID_SIZE];
	struct scan_got g = { .n = 0 };

	fx_commit(f, 6, 2, ids);
	assert_int_equal(queue_parked_read(f->q, ids[5], read_cb, &g), 0);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.s[0].id, ids[5]);
	assert_int_equal(g.s[0].nrcpt, 2);
	assert_int_equal(g.s[0].state1, QUEUE_RCPT_PENDING);
	errno = 0;
	assert_int_equal(queue_parked_read(f->q, ids[0], read_cb, &g), -1);    /* loaded */
	assert_int_equal(errno, ENOENT);
	errno = 0;
	assert_int_equal(queue_parked_read(f->q, "0000000000000001", read_cb, &g), -1);
	assert_int_equal(errno, ENOENT);
	errno = 0;
	assert_int_equal(queue_parked_read(f->q, "nonsense", read_cb, &g), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(g.n, 1);
}

/* ---------------------------------------------------------------- restarts */

/* A clean stop: the loaded ones get records, the marker; the next start trusts the file (no rewrite). */
static void
test_pidx_clean_restart(void **state)
{
	struct fx *f = *state;
	char ids[7][QUEUE_ID_SIZE];
	uint64_t keys[FX_MAX];
	struct scan_got g = { .n = 0 };
	ino_t ino;
	size_t seen = 0;

	fx_commit(f, 7, 1, ids);            /* 4 loaded, 3 parked */
	assert_int_equal(idx_keys(f, keys, FX_MAX), 3);
	ino = idx_inode(f);
	f->q = queue_close(f->q);
	assert_true(marker_exists(f));
	assert_int_equal(idx_keys(f, keys, FX_MAX), 7);        /* one each, loaded ones at the stop */

	fx_open(f, 4, 1);
	assert_false(marker_exists(f));     /* gone before anything is appended */
	assert_int_equal(idx_inode(f), ino);    /* checked, not rebuilt */
	assert_int_equal(queue_pidx_records(f->q), 7);
	fx_scan(f, &g);
	for (int i = 0; i < 7; i++)
		seen += got_find(&g, ids[i]) != NULL || queue_window_busy(f->q, queue_index_id_key(ids[i]));
	assert_int_equal(seen, 7);
	assert_true(g.n >= 3);

	/* park after the restart: loaded from the file, no second record */
	for (int i = 0; i < 7; i++) {
		struct queue_msg *m = queue_lookup(f->q, ids[i]);

		if (m != NULL)
			assert_int_equal(queue_park(f->q, m), 0);
	}
	assert_int_equal(queue_pidx_records(f->q), 7);
	fx_scan(f, &g);
	assert_int_equal(g.n, 7);
}

/* no marker (a crash): rebuilt from queue/, complete; a damaged or cut index likewise, never trusted */
static void
test_pidx_rebuild(void **state)
{
	struct fx *f = *state;
	char ids[9][QUEUE_ID_SIZE], path[400];
	uint64_t keys[FX_MAX];
	struct scan_got g = { .n = 0 };
	ino_t ino;
	struct stat st;
	int fd;

	fx_commit(f, 9, 2, ids);
	f->q = queue_close(f->q);
	idx_path(f, "queue.idx.ok", path, sizeof(path));

	/* 1. the marker is gone: a crash */
	assert_int_equal(unlink(path), 0);
	ino = idx_inode(f);
	fx_open(f, 100, 1);
	assert_true(idx_inode(f) != ino);
	assert_int_equal(idx_keys(f, keys, FX_MAX), 9);
	assert_int_equal(queue_pidx_records(f->q), 9);
	fx_scan(f, &g);
	assert_int_equal(g.n, 0);           /* all loaded: nothing parked */
	f->q = queue_close(f->q);

	/* 2. a flipped byte, marker intact: the check fails, rebuilt */
	idx_path(f, "queue.idx", path, sizeof(path));
	assert_true((fd = open(path, O_RDWR)) >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	{
		unsigned char c;

		assert_int_equal(pread(fd, &c, 1, st.st_size / 2), 1);
		c ^= 0x20;
		assert_int_equal(pwrite(fd, &c, 1, st.st_size / 2), 1);
	}
	close(fd);
	ino = idx_inode(f);
	fx_open(f, 2, 1);
	assert_true(idx_inode(f) != ino);
	assert_int_equal(idx_keys(f, keys, FX_MAX), 9);
	fx_scan(f, &g);
	assert_int_equal(g.n, 7);
	f->q = queue_close(f->q);

	/* 3. cut short at a record boundary, marker intact: its length does not match */
	assert_true((fd = open(path, O_RDWR)) >= 0);
	{
		unsigned char hdr[4];

		assert_int_equal(pread(fd, hdr, 4, QUEUE_PIDX_MAGIC_LEN), 4);
		assert_int_equal(ftruncate(fd, QUEUE_PIDX_MAGIC_LEN + 4 +
		    (hdr[0] | hdr[1] << 8 | hdr[2] << 16)), 0);
	}
	close(fd);
	assert_true(marker_exists(f));
	fx_open(f, 2, 1);
	assert_int_equal(idx_keys(f, keys, FX_MAX), 9);
	fx_scan(f, &g);
	assert_int_equal(g.n, 7);
	f->q = queue_close(f->q);

	/* 4. a marker promising other counts: rebuilt */
	{
		char m[96], qdir[400];
		struct stat qst;

		assert_int_equal(stat(path, &st), 0);
		idx_path(f, "queue", qdir, sizeof(qdir));
		assert_int_equal(stat(qdir, &qst), 0);
		assert_false(util_bsnprintf(m, sizeof(m), "%lld 3 %llu\n", (long long)st.st_size,
		    (unsigned long long)qst.st_mtim.tv_sec * 1000000000u +
		    (unsigned long long)qst.st_mtim.tv_nsec) < 0);
		idx_path(f, "queue.idx.ok", path, sizeof(path));
		assert_true((fd = open(path, O_WRONLY | O_TRUNC)) >= 0);
		assert_int_equal(write(fd, m, strlen(m)), (ssize_t)strlen(m));
		close(fd);
	}
	ino = idx_inode(f);
	fx_open(f, 2, 1);
	assert_true(idx_inode(f) != ino);
	assert_int_equal(queue_pidx_records(f->q), 9);
}

/* A file put into queue/ while mtad was stopped (a restore): the index is rebuilt, not trusted. */
static void
test_pidx_restore_rebuilds(void **state)
{
	struct fx *f = *state;
	char ids[5][QUEUE_ID_SIZE], from[400], to[400];
	uint64_t keys[FX_MAX];
	struct scan_got g = { .n = 0 };
	unsigned char *b;
	size_t len;
	ino_t ino;
	int fd;

	fx_commit(f, 5, 1, ids);
	f->q = queue_close(f->q);
	assert_true(marker_exists(f));
	ino = idx_inode(f);
	/* a copy of ids[4] under an older id, as a restore from a backup would put it */
	assert_false(util_bsnprintf(from, sizeof(from), "%s/queue/%s", f->data_dir, ids[4]) < 0);
	assert_false(util_bsnprintf(to, sizeof(to), "%s/queue/0000000000003000", f->data_dir) < 0);
	assert_true((fd = open(from, O_RDONLY)) >= 0);
	len = (size_t)lseek(fd, 0, SEEK_END);
	assert_non_null(b = malloc(len));
	assert_int_equal(pread(fd, b, len, 0), (ssize_t)len);
	close(fd);
	assert_true((fd = open(to, O_WRONLY | O_CREAT | O_EXCL, 0600)) >= 0);
	assert_int_equal(write(fd, b, len), (ssize_t)len);
	close(fd);
	free(b);
	fx_open(f, 100, 1);
	assert_true(idx_inode(f) != ino);
	assert_int_equal(idx_keys(f, keys, FX_MAX), 6);
	f->q = queue_close(f->q);
	fx_open(f, 1, 1);
	fx_scan(f, &g);
	assert_int_equal(g.n, 5);
}

/* Mail parked while a rebuild runs is in its result (the tail), once. */
static void
test_pidx_appends_during_rebuild(void **state)
{
	struct fx *f = *state;
	char ids[6][QUEUE_ID_SIZE], fresh[6][QUEUE_ID_SIZE], path[400];
	uint64_t keys[FX_MAX];
	struct scan_got g = { .n = 0 };

	fx_commit(f, 6, 1, ids);
	f->q = queue_close(f->q);
	idx_path(f, "queue.idx.ok", path, sizeof(path));
	assert_int_equal(unlink(path), 0);

	/* the rebuild is held before its swap; mail comes and is parked meanwhile */
	{
		char err[256];

		f->q = queue_open(f->base, f->data_dir, err, sizeof(err));
		assert_non_null(f->q);
		queue_set_active_limit(f->q, 2);
		queue_set_evictor(f->q, fx_evict, f);
		f->nvictims = f->nevicted = 0;
		queue_pidx_tune(f->q, 1, 4096);
		assert_int_equal(queue_recover(f->q, NULL, NULL), 0);
	}
	fx_commit(f, 6, 1, fresh);          /* the window is full: all six parked */
	for (int i = 0; i < 20; i++)
		event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_false(queue_pidx_ready(f->q));
	assert_null(queue_pidx_scan_open(f->q));
	assert_int_equal(errno, EAGAIN);
	queue_pidx_tune(f->q, 0, 4096);
	fx_wait_ready(f);
	assert_int_equal(idx_keys(f, keys, FX_MAX), 12);
	assert_int_equal(queue_pidx_records(f->q), 12);
	fx_scan(f, &g);
	assert_int_equal(g.n, 10);          /* 12 less the 2 loaded */
	for (int i = 0; i < 6; i++)
		assert_non_null(got_find(&g, fresh[i]));
	/* and after it, appends go to the new file */
	{
		char one[1][QUEUE_ID_SIZE];

		fx_commit(f, 1, 1, one);
		assert_int_equal(idx_keys(f, keys, FX_MAX), 13);
	}
}

/*
 * Mail parked between the start of recovery and its first step (mtad waits
 * there for mtad-chown) is in the rebuilt index; files the rebuild cannot
 * read (corrupt, never committed) get no record and do no harm.
 */
static void
test_pidx_before_first_step(void **state)
{
	struct fx *f = *state;
	char ids[5][QUEUE_ID_SIZE], early[3][QUEUE_ID_SIZE], path[400];
	uint64_t keys[FX_MAX];
	struct queue_recovery *r;
	struct scan_got g = { .n = 0 };
	char err[256];
	int rc;

	fx_commit(f, 5, 1, ids);
	f->q = queue_close(f->q);
	idx_path(f, "queue.idx.ok", path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	/* a corrupt file and an empty one (never committed) under queue ids */
	assert_false(util_bsnprintf(path, sizeof(path), "%s/queue/0000000000001000", f->data_dir) < 0);
	{
		int fd = open(path, O_WRONLY | O_CREAT, 0600);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, "garbage, not a queue file", 25), 25);
		close(fd);
	}
	assert_false(util_bsnprintf(path, sizeof(path), "%s/queue/0000000000002000", f->data_dir) < 0);
	assert_true((rc = open(path, O_WRONLY | O_CREAT, 0600)) >= 0);
	close(rc);

	f->q = queue_open(f->base, f->data_dir, err, sizeof(err));
	assert_non_null(f->q);
	queue_set_active_limit(f->q, 1);
	queue_set_evictor(f->q, fx_evict, f);
	f->nvictims = f->nevicted = 0;
	assert_non_null(r = queue_recover_start(f->q, NULL, NULL));
	/* no step yet: the first new message takes the window, the next two are parked */
	fx_commit(f, 3, 1, early);
	assert_true(queue_window_busy(f->q, queue_index_id_key(early[0])));
	assert_false(queue_pidx_ready(f->q));
	while ((rc = queue_recover_step(r, 2)) == 0)
		;
	assert_int_equal(rc, 1);
	r = queue_recover_finish(r);
	fx_wait_ready(f);
	/* the 5 older files and the 2 parked, nothing for the two bad files */
	assert_int_equal(idx_keys(f, keys, FX_MAX), 7);
	for (int i = 0; i < 7; i++) {
		int found = 0;

		for (int k = 0; k < 5; k++)
			found += keys[i] == queue_index_id_key(ids[k]);
		for (int k = 1; k < 3; k++)
			found += keys[i] == queue_index_id_key(early[k]);
		if (found != 1)
			fail_msg("record %d: key %016llX: got %d matches, want 1", i,
			    (unsigned long long)keys[i], found);
	}
	fx_scan(f, &g);
	for (int i = 0; i < 3; i++)
		assert_true((got_find(&g, early[i]) != NULL) !=
		    queue_window_busy(f->q, queue_index_id_key(early[i])));
}

/* Records of delivered mail are dropped by a compaction; exactly the live ones stay. */
static void
test_pidx_compact(void **state)
{
	struct fx *f = *state;
	char ids[20][QUEUE_ID_SIZE], one[1][QUEUE_ID_SIZE];
	uint64_t keys[FX_MAX];
	struct scan_got g = { .n = 0 };
	ino_t ino;
	size_t n;

	queue_pidx_tune(f->q, 0, 0);
	fx_commit(f, 20, 1, ids);           /* 16 parked, 16 records */
	assert_int_equal(queue_pidx_records(f->q), 16);
	ino = idx_inode(f);
	/* deliver 14 of the parked ones: 2 parked + 4 loaded stay */
	for (int i = 4; i < 18; i++) {
		struct queue_msg *m = queue_lookup(f->q, ids[i]);

		assert_non_null(m);
		assert_int_equal(queue_remove(f->q, m), 0);
	}
	assert_int_equal(queue_count(f->q), 6);
	/* 17 > 2 x 7: the next record starts a compaction */
	fx_commit(f, 1, 1, one);
	for (int i = 0; i < 1000 && idx_inode(f) == ino; i++) {
		struct timeval tv = { 0, 10000 };

		event_base_loopexit(f->base, &tv);
		event_base_loop(f->base, EVLOOP_ONCE);
	}
	assert_true(idx_inode(f) != ino);
	n = idx_keys(f, keys, FX_MAX);
	assert_int_equal(n, 3);             /* ids[18], ids[19] and the new one */
	for (size_t i = 0; i < n; i++)
		assert_true(keys[i] == queue_index_id_key(ids[18]) ||
		    keys[i] == queue_index_id_key(ids[19]) || keys[i] == queue_index_id_key(one[0]));
	assert_true(queue_pidx_ready(f->q));
	fx_scan(f, &g);
	assert_int_equal(g.n, 3);
	/* the result is trusted at the next start */
	f->q = queue_close(f->q);
	ino = idx_inode(f);
	fx_open(f, 4, 1);
	assert_int_equal(idx_inode(f), ino);
	assert_int_equal(queue_pidx_records(f->q), 3 + 4);     /* + the loaded ones at the stop */
}

/* Mail parked while a compaction runs: in the old file for scans meanwhile, and in the result. */
static void
test_pidx_appends_during_compaction(void **state)
{
	struct fx *f = *state;
	char ids[20][QUEUE_ID_SIZE], more[3][QUEUE_ID_SIZE];
	uint64_t keys[FX_MAX];
	struct scan_got g = { .n = 0 };
	ino_t ino;

	fx_commit(f, 20, 1, ids);           /* 16 parked, the window (4) full */
	for (int i = 4; i < 18; i++)
		assert_int_equal(queue_remove(f->q, queue_lookup(f->q, ids[i])), 0);
	ino = idx_inode(f);
	queue_pidx_tune(f->q, 1, 0);        /* compactions wait before their swap */
	fx_commit(f, 3, 1, more);           /* parked; the first starts one: 17 > 2 x 7 */
	for (int i = 0; i < 20; i++)
		event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(idx_inode(f), ino);
	assert_true(queue_pidx_ready(f->q));        /* the old file serves meanwhile */
	fx_scan(f, &g);
	assert_int_equal(g.n, 5);
	for (int i = 0; i < 3; i++)
		assert_non_null(got_find(&g, more[i]));
	queue_pidx_tune(f->q, 0, 0);
	for (int i = 0; i < 1000 && idx_inode(f) == ino; i++) {
		struct timeval tv = { 0, 10000 };

		event_base_loopexit(f->base, &tv);
		event_base_loop(f->base, EVLOOP_ONCE);
	}
	assert_true(idx_inode(f) != ino);
	/* renamed by the thread; the loop takes the new file when it hears of it */
	for (int i = 0; i < 1000 && queue_pidx_records(f->q) != 5; i++) {
		struct timeval tv = { 0, 10000 };

		event_base_loopexit(f->base, &tv);
		event_base_loop(f->base, EVLOOP_ONCE);
	}
	assert_int_equal(idx_keys(f, keys, FX_MAX), 5);        /* ids[18], ids[19], more[] */
	assert_int_equal(queue_pidx_records(f->q), 5);
	fx_scan(f, &g);
	assert_int_equal(g.n, 5);
}

/* A stop while a rebuild runs: no marker, rebuilt again; a stop before the check began: checked then. */
static void
test_pidx_stop_during_jobs(void **state)
{
	struct fx *f = *state;
	char ids[6][QUEUE_ID_SIZE], path[400], err[256];
	uint64_t keys[FX_MAX];
	struct queue_recovery *r;
	ino_t ino;

	fx_commit(f, 6, 1, ids);
	f->q = queue_close(f->q);
	idx_path(f, "queue.idx.ok", path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	assert_non_null(f->q = queue_open(f->base, f->data_dir, err, sizeof(err)));
	queue_pidx_tune(f->q, 1, 4096);
	assert_int_equal(queue_recover(f->q, NULL, NULL), 0);
	f->q = queue_close(f->q);           /* the held rebuild is stopped */
	assert_false(marker_exists(f));
	fx_open(f, 4, 1);                   /* so: rebuilt */
	assert_int_equal(idx_keys(f, keys, FX_MAX), 6);
	f->q = queue_close(f->q);
	assert_true(marker_exists(f));
	ino = idx_inode(f);

	/* started, stopped before recovery's first step (mtad waiting for mtad-chown) */
	assert_non_null(f->q = queue_open(f->base, f->data_dir, err, sizeof(err)));
	assert_non_null(r = queue_recover_start(f->q, NULL, NULL));
	assert_false(marker_exists(f));
	r = queue_recover_finish(r);
	f->q = queue_close(f->q);
	assert_true(marker_exists(f));      /* the check ran at the stop */
	assert_int_equal(idx_inode(f), ino);
	fx_open(f, 4, 1);
	assert_int_equal(idx_inode(f), ino);
	assert_int_equal(queue_pidx_records(f->q), 6);
}

/* A damaged record found by a scan: the index is given up (never trusted), rebuilt at the next start. */
static void
test_pidx_damage_in_scan(void **state)
{
	struct fx *f = *state;
	char ids[8][QUEUE_ID_SIZE], path[400];
	struct scan_got g = { .n = 0 };
	struct queue_pidx_scan *s;
	unsigned char c;
	int fd;

	fx_commit(f, 8, 1, ids);
	idx_path(f, "queue.idx", path, sizeof(path));
	assert_true((fd = open(path, O_RDWR)) >= 0);
	assert_int_equal(pread(fd, &c, 1, QUEUE_PIDX_MAGIC_LEN + 10), 1);
	c ^= 1;
	assert_int_equal(pwrite(fd, &c, 1, QUEUE_PIDX_MAGIC_LEN + 10), 1);
	close(fd);
	assert_non_null(s = queue_pidx_scan_open(f->q));
	assert_int_equal(queue_pidx_scan_step(s, 100, scan_cb, &g), -1);
	assert_int_equal(errno, EIO);
	queue_pidx_scan_close(s);
	assert_false(queue_pidx_ready(f->q));
	f->q = queue_close(f->q);
	assert_false(marker_exists(f));
	fx_open(f, 4, 1);
	fx_scan(f, &g);
	assert_int_equal(g.n, 4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pidx_record),
		cmocka_unit_test_setup_teardown(test_pidx_park_scan, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pidx_parked_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pidx_clean_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pidx_rebuild, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pidx_restore_rebuilds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pidx_appends_during_rebuild, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pidx_before_first_step, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pidx_compact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pidx_appends_during_compaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pidx_stop_during_jobs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pidx_damage_in_scan, setup, teardown),
	};

	log_init("test_queue_pidx", 0);
	if (evthread_use_pthreads() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
