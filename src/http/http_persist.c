/*
 * http_persist.c - the totals and the history rings saved in
 *                  <data_dir>/stats, so that a restart does not zero the
 *                  dashboard, /api/stats or the Prometheus counters
 *
 * Owns:     the file's format (encoder and bounded decoder), the writer
 *           thread and the directory descriptor it writes through.
 * Lifetime: struct http_persist from http_persist_start() (http_new) to
 *           http_persist_stop() (http_free), which writes the last copy.
 * Errors:   a missing file starts from zero; a corrupt, truncated or
 *           foreign one starts from zero with a warning (never a refused
 *           start); a failed write is a warning and the next one retries.
 * Context:  encode/decode/load on the event-loop thread; the write (temp
 *           file, fsync, rename, fsync of the directory) on the writer
 *           thread, so the loop never waits for the disk.
 *
 * File format, all integers little-endian (docs/architecture.md):
 *
 *   header (16 bytes)
 *     magic "MTST", version u32 (= 1), payload length u32 (<= 1 MiB),
 *     CRC-32C u32 of the payload
 *   payload
 *     saved_at u64                  unix seconds of the save
 *     ncounters u32 (<= 64)         then ncounters u64 in the order of
 *                                   http_persist_counters[] (new counters
 *                                   are only ever added at the end; a file
 *                                   with fewer leaves the rest at zero)
 *     nbuckets u32 (<= 64)          then the latency histogram, nbuckets
 *                                   u64 (not cumulative) and its sum as an
 *                                   IEEE 754 double in a u64; a count that
 *                                   differs from this build's drops the
 *                                   histogram and keeps the rest
 *     nfields u32 (<= 32)           values per sample (HTTP_H_FIELDS)
 *     have_last u32, nfields u64    the counters at the last history tick
 *     2 rings, fine then coarse:    interval u32, len u32 (<= 100,000),
 *                                   len samples of t u64 + nfields u64,
 *                                   oldest first
 *     acc_n u32, one sample         the coarse sample being summed
 *
 * A ring whose interval differs from this build's is dropped; samples
 * older than the ring's span (1 h, 24 h) are dropped at load; a ring
 * longer than this build's keeps its newest samples.
 */
#include "http/http_int.h"
#include "lib/crc32c.h"
#include "lib/log.h"
#include "lib/util.h"
#include "metrics/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HTTP_PERSIST_MAGIC     "MTST"
#define HTTP_PERSIST_VERSION   1
#define HTTP_PERSIST_HDR       16
#define HTTP_PERSIST_MAX_LIST  64
#define HTTP_PERSIST_MAX_FIELDS 32
#define HTTP_PERSIST_MAX_RING  100000
#define HTTP_PERSIST_TMP       "stats.tmp"

/* The counters of struct metrics that are totals, in file order: append only. */
static const size_t http_persist_counters[] = {
	offsetof(struct metrics, accepted),
	offsetof(struct metrics, accepted_bytes),
	offsetof(struct metrics, rejected),
	offsetof(struct metrics, delivered),
	offsetof(struct metrics, deferred),
	offsetof(struct metrics, bounced),
	offsetof(struct metrics, sessions_total),
	offsetof(struct metrics, tls_sessions),
	offsetof(struct metrics, dkim_signed),
	offsetof(struct metrics, auth_sessions),
	offsetof(struct metrics, auth_failures),
	offsetof(struct metrics, latency_count),
};
#define HTTP_PERSIST_NCOUNTERS (sizeof(http_persist_counters) / sizeof(http_persist_counters[0]))

/* --- encoding ------------------------------------------------------------------- */

struct http_pbuf {
	unsigned char *p;
	size_t len, cap;
};

/* http_put, http_get - n bytes (4 or 8), little-endian */
static void
http_put(unsigned char *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t
http_get(const unsigned char *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* http_pb_put - append n bytes to a buffer sized in advance (never grows) */
static void
http_pb_put(struct http_pbuf *b, uint64_t v, int n)
{
	if (b->len + (size_t)n <= b->cap)
		http_put(b->p + b->len, v, n);
	b->len += (size_t)n;
}

/* http_pb_sample - t and the nfields values */
static void
http_pb_sample(struct http_pbuf *b, const struct http_sample *s)
{
	http_pb_put(b, s->t, 8);
	for (int k = 0; k < HTTP_H_FIELDS; k++)
		http_pb_put(b, s->v[k], 8);
}

/* http_pb_ring - interval, length, samples oldest first */
static void
http_pb_ring(struct http_pbuf *b, const struct http_ring *r)
{
	http_pb_put(b, r->interval, 4);
	http_pb_put(b, (uint32_t)r->len, 4);
	for (size_t i = 0; i < r->len; i++)
		http_pb_sample(b, http_history_ring_get(r, i));
}

/*
 * http_persist_encode - the whole file for m's totals and hi, saved at now
 * (unix seconds): a malloc'd buffer of *lenp bytes; NULL when memory is short
 */
unsigned char *
http_persist_encode(const struct metrics *m, const struct http_history *hi, uint64_t now,
    size_t *lenp)
{
	size_t sample = 8 + 8 * HTTP_H_FIELDS;
	size_t payload = 8 + 4 + 8 * HTTP_PERSIST_NCOUNTERS + 4 + 8 * METRICS_LATENCY_BUCKETS + 8 +
	    4 + 4 + 8 * HTTP_H_FIELDS + 2 * (4 + 4) + (hi->fine.len + hi->coarse.len) * sample +
	    4 + sample;
	struct http_pbuf b;
	uint64_t sum;

	if ((b.p = malloc(HTTP_PERSIST_HDR + payload)) == NULL)
		return NULL;
	b.cap = HTTP_PERSIST_HDR + payload;
	b.len = HTTP_PERSIST_HDR;
	http_pb_put(&b, now, 8);
	http_pb_put(&b, (uint32_t)HTTP_PERSIST_NCOUNTERS, 4);
	for (size_t i = 0; i < HTTP_PERSIST_NCOUNTERS; i++) {
		uint64_t v;
		memcpy(&v, (const char *)m + http_persist_counters[i], sizeof(v));
		http_pb_put(&b, v, 8);
	}
	http_pb_put(&b, METRICS_LATENCY_BUCKETS, 4);
	for (int i = 0; i < METRICS_LATENCY_BUCKETS; i++)
		http_pb_put(&b, m->latency_bucket[i], 8);
	memcpy(&sum, &m->latency_sum, sizeof(sum));
	http_pb_put(&b, sum, 8);
	http_pb_put(&b, HTTP_H_FIELDS, 4);
	http_pb_put(&b, (uint32_t)hi->have_last, 4);
	for (int k = 0; k < HTTP_H_FIELDS; k++)
		http_pb_put(&b, k < HTTP_H_COUNTERS ? hi->last[k] : 0, 8);
	http_pb_ring(&b, &hi->fine);
	http_pb_ring(&b, &hi->coarse);
	http_pb_put(&b, hi->acc_n, 4);
	http_pb_sample(&b, &hi->acc);
	if (b.len != b.cap) {
		/* the size computed above and what was written disagree: our bug */
		free(b.p);
		log_warnx("stats: encoder size mismatch (%zu != %zu)", b.len, b.cap);
		errno = EINVAL;
		return NULL;
	}
	memcpy(b.p, HTTP_PERSIST_MAGIC, 4);
	http_put(b.p + 4, HTTP_PERSIST_VERSION, 4);
	http_put(b.p + 8, (uint32_t)payload, 4);
	http_put(b.p + 12, crc32c(0, b.p + HTTP_PERSIST_HDR, payload), 4);
	*lenp = b.len;
	return b.p;
}

/* --- decoding ------------------------------------------------------------------- */

/* A cursor over the payload: every read checks what is left. */
struct http_pcur {
	const unsigned char *p;
	size_t left;
	int bad;
};

/* http_pc_get - the next n bytes; past the end marks the cursor bad (0) */
static uint64_t
http_pc_get(struct http_pcur *c, int n)
{
	uint64_t v;

	if (c->bad || c->left < (size_t)n) {
		c->bad = 1;
		return 0;
	}
	v = http_get(c->p, n);
	c->p += n;
	c->left -= (size_t)n;
	return v;
}

/* http_pc_sample - one sample of nfields values; fields this build lacks are skipped */
static void
http_pc_sample(struct http_pcur *c, uint32_t nfields, struct http_sample *s)
{
	memset(s, 0, sizeof(*s));
	s->t = http_pc_get(c, 8);
	for (uint32_t k = 0; k < nfields; k++) {
		uint64_t v = http_pc_get(c, 8);
		if (k < HTTP_H_FIELDS)
			s->v[k] = v;
	}
}

/*
 * http_pc_ring - read one ring into r (empty, allocated with this build's
 * capacity and interval): the newest samples that fit and are younger than
 * the ring's span at now; a different interval reads the samples and keeps none
 */
static void
http_pc_ring(struct http_pcur *c, uint32_t nfields, uint64_t now, struct http_ring *r)
{
	uint32_t interval = (uint32_t)http_pc_get(c, 4), len = (uint32_t)http_pc_get(c, 4);
	uint64_t span = (uint64_t)r->cap * r->interval;
	struct http_sample s;

	if (c->bad || len > HTTP_PERSIST_MAX_RING ||
	    (uint64_t)len * (8 + 8 * (uint64_t)nfields) > c->left) {
		c->bad = 1;
		return;
	}
	for (uint32_t i = 0; i < len; i++) {
		http_pc_sample(c, nfields, &s);
		if (interval != r->interval || s.t + span <= now)
			continue;
		r->s[r->head] = s;
		r->head = (r->head + 1) % r->cap;
		if (r->len < r->cap)
			r->len++;
	}
}

/*
 * http_persist_decode - a file's bytes into m's totals and hi. On success
 * the totals and the history are replaced (gauges and readiness of m are
 * left alone); on failure (-1, the reason in err) neither is touched.
 * now (unix seconds) drops samples too old to show.
 */
int
http_persist_decode(const unsigned char *buf, size_t len, uint64_t now, struct metrics *m,
    struct http_history *hi, char *err, size_t errlen)
{
	struct http_pcur c;
	struct http_history nh;
	uint64_t counters[HTTP_PERSIST_NCOUNTERS] = { 0 };
	uint64_t buckets[METRICS_LATENCY_BUCKETS] = { 0 };
	uint64_t sumbits = 0;
	uint32_t n, nbuckets, nfields, plen;
	int have_hist = 0, have_buckets = 0;
	const char *why;

	if (len < HTTP_PERSIST_HDR) {
		why = "shorter than its header";
		goto bad;
	}
	if (memcmp(buf, HTTP_PERSIST_MAGIC, 4) != 0) {
		why = "not a statistics file (bad magic)";
		goto bad;
	}
	if (http_get(buf + 4, 4) != HTTP_PERSIST_VERSION) {
		why = "unsupported format version";
		goto bad;
	}
	plen = http_get(buf + 8, 4);
	if (plen > HTTP_PERSIST_MAX || plen != len - HTTP_PERSIST_HDR) {
		why = "truncated or wrong length";
		goto bad;
	}
	if (crc32c(0, buf + HTTP_PERSIST_HDR, plen) != http_get(buf + 12, 4)) {
		why = "checksum mismatch";
		goto bad;
	}
	c.p = buf + HTTP_PERSIST_HDR;
	c.left = plen;
	c.bad = 0;
	(void)http_pc_get(&c, 8);                        /* saved_at: for people */
	n = (uint32_t)http_pc_get(&c, 4);
	if (n > HTTP_PERSIST_MAX_LIST) {
		why = "too many counters";
		goto bad;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint64_t v = http_pc_get(&c, 8);
		if (i < HTTP_PERSIST_NCOUNTERS)
			counters[i] = v;
	}
	nbuckets = (uint32_t)http_pc_get(&c, 4);
	if (nbuckets > HTTP_PERSIST_MAX_LIST) {
		why = "too many latency buckets";
		goto bad;
	}
	for (uint32_t i = 0; i < nbuckets; i++) {
		uint64_t v = http_pc_get(&c, 8);
		if (i < METRICS_LATENCY_BUCKETS)
			buckets[i] = v;
	}
	sumbits = http_pc_get(&c, 8);
	have_buckets = nbuckets == METRICS_LATENCY_BUCKETS;
	nfields = (uint32_t)http_pc_get(&c, 4);
	if (nfields > HTTP_PERSIST_MAX_FIELDS) {
		why = "too many fields per sample";
		goto bad;
	}
	if (c.bad) {
		why = "payload ends early";
		goto bad;
	}
	if (http_history_init(&nh) < 0) {
		why = "out of memory";
		goto bad;
	}
	have_hist = 1;
	nh.have_last = (uint32_t)http_pc_get(&c, 4) != 0;
	for (uint32_t k = 0; k < nfields; k++) {
		uint64_t v = http_pc_get(&c, 8);
		if (k < HTTP_H_COUNTERS)
			nh.last[k] = v;
	}
	if (nfields < HTTP_H_COUNTERS)
		nh.have_last = 0;
	http_pc_ring(&c, nfields, now, &nh.fine);
	http_pc_ring(&c, nfields, now, &nh.coarse);
	nh.acc_n = (uint32_t)http_pc_get(&c, 4);
	http_pc_sample(&c, nfields, &nh.acc);
	if (nh.acc_n >= HTTP_COARSE_SECS / HTTP_FINE_SECS) {
		why = "partial coarse sample out of range";
		goto bad;
	}
	if (nh.acc.t + HTTP_COARSE_SECS <= now) {
		/* the minute it was summing is over: it would land at the wrong time */
		memset(&nh.acc, 0, sizeof(nh.acc));
		nh.acc_n = 0;
	}
	if (c.bad) {
		why = "payload ends early";
		goto bad;
	}
	if (c.left != 0) {
		why = "bytes after the payload";
		goto bad;
	}
	for (size_t i = 0; i < HTTP_PERSIST_NCOUNTERS; i++)
		memcpy((char *)m + http_persist_counters[i], &counters[i], sizeof(counters[i]));
	if (have_buckets) {
		memcpy(m->latency_bucket, buckets, sizeof(buckets));
		memcpy(&m->latency_sum, &sumbits, sizeof(sumbits));
	} else {
		memset(m->latency_bucket, 0, sizeof(m->latency_bucket));
		m->latency_sum = 0;
		m->latency_count = 0;
	}
	http_history_free(hi);
	*hi = nh;
	return 0;
bad:
	if (have_hist)
		http_history_free(&nh);
	util_bsnprintf(err, errlen, "%s", why);
	return -1;
}

/* --- the file --------------------------------------------------------------------- */

/*
 * http_persist_load - read <dirfd>/stats into m and hi: 1 restored, 0 no
 * file, -1 unusable (warned; m and hi untouched: the start goes on from zero)
 */
int
http_persist_load(int dirfd, uint64_t now, struct metrics *m, struct http_history *hi)
{
	unsigned char *buf = NULL;
	char why[128];
	struct stat st;
	size_t got = 0;
	int fd, rc = -1;

	if ((fd = openat(dirfd, HTTP_PERSIST_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		if (errno == ENOENT)
			return 0;
		log_warn("stats: cannot open %s; counters start from zero", HTTP_PERSIST_FILE);
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_warnx("stats: %s is not a readable file; counters start from zero",
		    HTTP_PERSIST_FILE);
		goto done;
	}
	if (st.st_size > (off_t)(HTTP_PERSIST_HDR + HTTP_PERSIST_MAX)) {
		log_warnx("stats: %s is larger than %d bytes; counters start from zero",
		    HTTP_PERSIST_FILE, HTTP_PERSIST_HDR + HTTP_PERSIST_MAX);
		goto done;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		log_warnx("stats: out of memory; counters start from zero");
		goto done;
	}
	while (got < (size_t)st.st_size + 1) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size + 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			log_warn("stats: cannot read %s; counters start from zero", HTTP_PERSIST_FILE);
			goto done;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (http_persist_decode(buf, got, now, m, hi, why, sizeof(why)) < 0) {
		log_warnx("stats: %s is unusable (%s); counters and graphs start from zero",
		    HTTP_PERSIST_FILE, why);
		goto done;
	}
	rc = 1;
done:
	free(buf);
	close(fd);
	return rc;
}

/*
 * http_persist_write - buf as <dirfd>/stats, atomically: a temporary file,
 * fsync, rename over the old one, fsync of the directory. Blocks: the
 * writer thread, and the last save at shutdown. 0 or -1 (errno).
 */
int
http_persist_write(int dirfd, const unsigned char *buf, size_t len)
{
	size_t off = 0;
	int fd, saved;

	(void)unlinkat(dirfd, HTTP_PERSIST_TMP, 0);
	if ((fd = openat(dirfd, HTTP_PERSIST_TMP, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) < 0)
		return -1;
	while (off < len) {
		ssize_t n = write(fd, buf + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ENOSPC;
			goto fail;
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (renameat(dirfd, HTTP_PERSIST_TMP, dirfd, HTTP_PERSIST_FILE) < 0)
		goto fail;
	(void)fsync(dirfd);
	return 0;
fail:
	saved = errno;
	if (fd >= 0)
		close(fd);
	(void)unlinkat(dirfd, HTTP_PERSIST_TMP, 0);
	errno = saved;
	return -1;
}

/* --- the writer thread ------------------------------------------------------------ */

struct http_persist {
	int dirfd;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned char *next;          /* under mu: the newest copy, not written yet */
	size_t next_len;
	int stop;                     /* under mu */
	int warned;                   /* writer thread only */
};

/* http_persist_main - write each copy handed over; the newest wins */
static void *
http_persist_main(void *arg)
{
	struct http_persist *p = arg;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		unsigned char *buf;
		size_t len;

		while (p->next == NULL && !p->stop)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->next == NULL)
			break;
		buf = p->next;
		len = p->next_len;
		p->next = NULL;
		pthread_mutex_unlock(&p->mu);
		if (http_persist_write(p->dirfd, buf, len) < 0) {
			if (!p->warned)
				log_warn("stats: cannot save %s (retrying every minute)",
				    HTTP_PERSIST_FILE);
			p->warned = 1;
		} else
			p->warned = 0;
		free(buf);
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* http_persist_start - the writer for data_dir (opened now: later the path may not be searchable) */
struct http_persist *
http_persist_start(const char *data_dir)
{
	struct http_persist *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	if ((p->dirfd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		log_warn("stats: cannot open %s; counters are not saved", data_dir);
		free(p);
		return NULL;
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if (pthread_create(&p->thread, NULL, http_persist_main, p) != 0) {
		log_warnx("stats: cannot start the writer thread; counters are not saved");
		pthread_mutex_destroy(&p->mu);
		pthread_cond_destroy(&p->cv);
		close(p->dirfd);
		free(p);
		return NULL;
	}
	return p;
}

/* http_persist_dirfd - data_dir, for the load at start */
int
http_persist_dirfd(const struct http_persist *p)
{
	return p->dirfd;
}

/* http_persist_save - hand a copy (taken) to the writer; an older one not yet written is dropped */
void
http_persist_save(struct http_persist *p, unsigned char *buf, size_t len)
{
	unsigned char *old;

	pthread_mutex_lock(&p->mu);
	old = p->next;
	p->next = buf;
	p->next_len = len;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	free(old);
}

/*
 * http_persist_stop - write last (taken; may be NULL) after whatever is
 * pending, wait for the writer and free p. Returns NULL.
 */
struct http_persist *
http_persist_stop(struct http_persist *p, unsigned char *last, size_t len)
{
	if (p == NULL) {
		free(last);
		return NULL;
	}
	if (last != NULL)
		http_persist_save(p, last, len);
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	free(p->next);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	close(p->dirfd);
	free(p);
	return NULL;
}
