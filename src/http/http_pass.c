/*
 * http_pass.c - a pass over the index of parked messages run in slices
 *               for the API's views (filtered listing, bulk actions,
 *               qshape), and the small sets of ids those views keep
 *
 * Owns:     the open passes (counted in struct http, at most
 *           HTTP_MAX_PASSES at once), the arrays of struct http_idset,
 *           the copies of a filter's strings (http_filter_own()).
 * Lifetime: a pass from http_pass_open() to http_pass_close(); a set
 *           from its first http_idset_add() to http_idset_free().
 * Errors:   -1 / NULL with errno (EBUSY: too many passes at once).
 * Context:  event-loop thread.
 *
 * A pass reads every parked message's record from the index (queue.h,
 * queue_pidx_*): a million of them take longer than a loop turn should,
 * so a view runs http_pass_slice() once per turn (HTTP_PASS_SLICE_US at
 * most, steps of HTTP_PASS_STEP records) from a pending reply
 * (http_pending_new()) and answers when the pass is over. Views keep
 * counters and at most a page of ids, never the matches themselves.
 */
#include "http/http_int.h"
#include "lib/util.h"
#include "queue/queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* http_pass_open - a pass over every parked message; NULL with errno (EBUSY: at the limit) */
struct queue_pidx_scan *
http_pass_open(struct http *h)
{
	struct queue_pidx_scan *s;

	if (h->npasses >= HTTP_MAX_PASSES) {
		errno = EBUSY;
		return NULL;
	}
	if ((s = queue_pidx_scan_open(h->q)) == NULL)
		return NULL;
	h->npasses++;
	return s;
}

/* http_pass_refused - the 503 when http_pass_open() failed with errno e */
void
http_pass_refused(struct evhttp_request *req, int e)
{
	http_error(req, 503, e == EBUSY ? "too many searches at once: try again" :
	    e == EAGAIN ? "the index of parked messages is being rebuilt: try again" :
	    "the index of parked messages cannot be read (see the log)");
}

/* http_pass_close - end a pass (NULL is fine); returns NULL */
struct queue_pidx_scan *
http_pass_close(struct http *h, struct queue_pidx_scan *s)
{
	if (s == NULL)
		return NULL;
	h->npasses -= h->npasses > 0;
	return queue_pidx_scan_close(s);
}

/*
 * http_pass_slice - one loop turn of a pass: steps of HTTP_PASS_STEP
 * records until HTTP_PASS_SLICE_US have gone. 0 more to do, 1 over, -1
 * with errno.
 */
int
http_pass_slice(struct queue_pidx_scan *s, int (*cb)(void *arg, const struct queue_msg *m),
    void *arg)
{
	uint64_t t0 = util_mono_us();
	int rc;

	do
		rc = queue_pidx_scan_step(s, HTTP_PASS_STEP, cb, arg);
	while (rc == 0 && util_mono_us() - t0 < HTTP_PASS_SLICE_US);
	return rc;
}

/* http_idset_add - id (copied) joins the set; -1 out of memory */
int
http_idset_add(struct http_idset *s, const char *id)
{
	if (s->n == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 64;
		char (*nv)[QUEUE_ID_SIZE] = realloc(s->v, ncap * sizeof(*nv));

		if (nv == NULL)
			return -1;
		s->v = nv;
		s->cap = ncap;
	}
	util_strlcpy(s->v[s->n++], id, QUEUE_ID_SIZE);
	return 0;
}

/* http_idset_cmp - ids are fixed-length upper-case hex: strcmp() is their numeric order */
static int
http_idset_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* http_idset_sort - before http_idset_has() */
void
http_idset_sort(struct http_idset *s)
{
	if (s->n > 1)
		qsort(s->v, s->n, sizeof(*s->v), http_idset_cmp);
}

/* http_idset_has - is id in the (sorted) set? */
int
http_idset_has(const struct http_idset *s, const char *id)
{
	return s->n > 0 && bsearch(id, s->v, s->n, sizeof(*s->v), http_idset_cmp) != NULL;
}

/* http_idset_free - release the array; the set is empty again */
void
http_idset_free(struct http_idset *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/*
 * http_filter_own - the filter's strings (borrowed from a request's query,
 * which is freed when its handler returns) copied into one block, *store,
 * for a view that answers later; the caller frees *store. -1 out of memory.
 */
int
http_filter_own(struct http_filter *f, char **store)
{
	const char **slot[] = { &f->q, &f->sender, &f->rcpt, &f->domain, &f->id };
	size_t len = 0, off = 0;
	char *b;

	*store = NULL;
	for (size_t i = 0; i < sizeof(slot) / sizeof(slot[0]); i++)
		if (*slot[i] != NULL)
			len += strlen(*slot[i]) + 1;
	if (len == 0)
		return 0;
	if ((b = malloc(len)) == NULL)
		return -1;
	for (size_t i = 0; i < sizeof(slot) / sizeof(slot[0]); i++) {
		size_t n;

		if (*slot[i] == NULL)
			continue;
		n = strlen(*slot[i]) + 1;
		memcpy(b + off, *slot[i], n);
		*slot[i] = b + off;
		off += n;
	}
	*store = b;
	return 0;
}
