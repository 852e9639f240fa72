/*
 * ctl_queue.c - read the queue straight from <data_dir>/queue while mtad is
 *               stopped: list, load one message, copy out its content
 *
 * Owns:     nothing past a call: each file is opened, parsed and closed
 *           inside it; loaded messages belong to the caller.
 * Lifetime: stateless.
 * Errors:   -1 with errno (ENOENT: no such message, EACCES: permission)
 *           and a reason in err; corrupt files are reported on stderr and
 *           skipped, uncommitted ones (never acknowledged) silently skipped.
 * Context:  the mtactl process. Nothing here writes to data_dir: only the
 *           daemon changes the queue.
 *
 * The file format is the queue's own (src/queue/queue_rec.h, docs/queue.md):
 * its resumable parser checks every file, so a half-written or damaged file
 * is never shown as a message.
 */
#include "ctl/ctl_int.h"
#include "lib/util.h"
#include "queue/queue.h"
#include "queue/queue_rec.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CTL_QUEUE_BUF 65536

/* ctl_queue_id_valid - a plausible queue id from the command line (letters and digits) */
int
ctl_queue_id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)id[i];

		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
			return 0;
	}
	return 1;
}

/* ctl_queue_name_ok - a queue file name: QUEUE_ID_LEN upper-case hex digits */
static int
ctl_queue_name_ok(const char *name)
{
	size_t i;

	for (i = 0; name[i] != '\0'; i++) {
		unsigned char c = (unsigned char)name[i];

		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F')))
			return 0;
	}
	return i == QUEUE_ID_LEN;
}

void
ctl_queue_msg_free(struct queue_msg *m)
{
	queue_msg_free_fields(m);
}

/*
 * ctl_queue_parse_fd - run the queue's parser over the whole file.
 * Returns the verdict; on OK the message (with id) is in *m and the
 * locations in *loc.
 */
static enum queue_parse_status
ctl_queue_parse_fd(int fd, const char *id, unsigned char *buf, struct queue_parse *p,
    struct queue_msg *m, struct queue_loc *loc, const char **reason)
{
	enum queue_parse_status st;
	ssize_t n;

	queue_parse_init(p);
	for (;;) {
		n = read(fd, buf, CTL_QUEUE_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (queue_parse_feed(p, buf, (size_t)n) < 0)
			break;
	}
	if (n < 0) {
		*reason = strerror(errno);
		queue_parse_free(p);
		return QUEUE_PARSE_CORRUPT;
	}
	st = queue_parse_finish(p);
	*reason = p->reason != NULL ? p->reason : "unreadable";
	if (st == QUEUE_PARSE_OK) {
		if (loc != NULL)
			*loc = p->loc;
		queue_parse_take(p, m);
		util_strlcpy(m->id, id, sizeof(m->id));
	}
	queue_parse_free(p);
	return st;
}

/* ctl_queue_pending - some recipient still waits (the daemon removes finished files) */
static int
ctl_queue_pending(const struct queue_msg *m)
{
	for (size_t i = 0; i < m->nrcpt; i++)
		if (m->rcpt[i].state == QUEUE_RCPT_PENDING)
			return 1;
	return 0;
}

static int
ctl_queue_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ctl_queue_open_dir - <data_dir>/queue as a directory fd */
static int
ctl_queue_open_dir(const char *data_dir, char *err, size_t errlen)
{
	char path[4096];
	int fd;

	if (util_bsnprintf(path, sizeof(path), "%s/queue", data_dir) < 0) {
		errno = ENAMETOOLONG;
		util_bsnprintf(err, errlen, "%s: path too long", data_dir);
		return -1;
	}
	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		util_bsnprintf(err, errlen, "%s: %s", path, strerror(errno));
	return fd;
}

/* ctl_queue_scan - every committed, unfinished message, in arrival (= id) order */
int
ctl_queue_scan(const char *data_dir, void (*cb)(void *arg, struct queue_msg *m),
    void *arg, char *err, size_t errlen)
{
	struct queue_parse *p = NULL;
	unsigned char *buf = NULL;
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d = NULL;
	int dfd, rc = -1, saved;

	if ((dfd = ctl_queue_open_dir(data_dir, err, errlen)) < 0) {
		if (errno == ENOENT)
			return 0;       /* no queue yet: nothing queued */
		return -1;
	}
	if ((d = fdopendir(dfd)) == NULL) {
		saved = errno;
		close(dfd);
		errno = saved;
		util_bsnprintf(err, errlen, "%s/queue: %s", data_dir, strerror(errno));
		return -1;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (!ctl_queue_name_ok(de->d_name))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 256;
			char **nn = realloc(names, ncap * sizeof(*nn));

			if (nn == NULL)
				goto nomem;
			names = nn;
			cap = ncap;
		}
		if ((names[n] = strdup(de->d_name)) == NULL)
			goto nomem;
		n++;
	}
	if (errno != 0) {
		util_bsnprintf(err, errlen, "%s/queue: %s", data_dir, strerror(errno));
		goto done;
	}
	if (n > 1)
		qsort(names, n, sizeof(*names), ctl_queue_name_cmp);
	if ((p = malloc(sizeof(*p))) == NULL || (buf = malloc(CTL_QUEUE_BUF)) == NULL)
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		struct queue_msg m;
		const char *why;
		enum queue_parse_status st;
		int fd = openat(dirfd(d), names[i], O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

		if (fd < 0) {
			if (errno == ENOENT)
				continue;       /* delivered meanwhile */
			util_bsnprintf(err, errlen, "%s/queue/%s: %s", data_dir, names[i],
			    strerror(errno));
			goto done;
		}
		memset(&m, 0, sizeof(m));
		st = ctl_queue_parse_fd(fd, names[i], buf, p, &m, NULL, &why);
		close(fd);
		if (st == QUEUE_PARSE_NOMEM)
			goto nomem;
		if (st == QUEUE_PARSE_CORRUPT) {
			fprintf(stderr, "mtactl: %s/queue/%s: corrupt queue file (%s); skipped\n",
			    data_dir, names[i], why);
			continue;
		}
		if (st != QUEUE_PARSE_OK)
			continue;
		if (ctl_queue_pending(&m))
			cb(arg, &m);
		queue_msg_free_fields(&m);
	}
	rc = 0;
	goto done;
nomem:
	errno = ENOMEM;
	util_bsnprintf(err, errlen, "out of memory");
done:
	saved = errno;
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(buf);
	free(p);
	closedir(d);
	errno = saved;
	return rc;
}

/* ctl_queue_open_msg - open and parse one message file */
static int
ctl_queue_open_msg(const char *data_dir, const char *id, struct queue_msg *m,
    struct queue_loc *loc, char *err, size_t errlen)
{
	struct queue_parse *p = NULL;
	unsigned char *buf = NULL;
	enum queue_parse_status st;
	const char *why;
	int dfd, fd = -1, saved;

	memset(m, 0, sizeof(*m));
	if (!ctl_queue_name_ok(id)) {
		errno = ENOENT;
		util_bsnprintf(err, errlen, "%s: no such message", id);
		return -1;
	}
	if ((dfd = ctl_queue_open_dir(data_dir, err, errlen)) < 0) {
		if (errno == ENOENT)
			util_bsnprintf(err, errlen, "%s: no such message", id);
		return -1;
	}
	fd = openat(dfd, id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	saved = errno;
	close(dfd);
	if (fd < 0) {
		errno = saved;
		if (errno == ENOENT)
			util_bsnprintf(err, errlen, "%s: no such message", id);
		else
			util_bsnprintf(err, errlen, "%s/queue/%s: %s", data_dir, id, strerror(errno));
		return -1;
	}
	if ((p = malloc(sizeof(*p))) == NULL || (buf = malloc(CTL_QUEUE_BUF)) == NULL) {
		free(p);
		close(fd);
		errno = ENOMEM;
		util_bsnprintf(err, errlen, "out of memory");
		return -1;
	}
	st = ctl_queue_parse_fd(fd, id, buf, p, m, loc, &why);
	free(buf);
	free(p);
	if (st == QUEUE_PARSE_OK && ctl_queue_pending(m))
		return fd;
	close(fd);
	queue_msg_free_fields(m);
	if (st == QUEUE_PARSE_NOMEM) {
		errno = ENOMEM;
		util_bsnprintf(err, errlen, "out of memory");
	} else if (st == QUEUE_PARSE_CORRUPT) {
		errno = EIO;
		util_bsnprintf(err, errlen, "%s/queue/%s: corrupt queue file (%s)", data_dir, id, why);
	} else {
		errno = ENOENT;     /* uncommitted or finished: not (or no longer) queued */
		util_bsnprintf(err, errlen, "%s: no such message", id);
	}
	return -1;
}

int
ctl_queue_load(const char *data_dir, const char *id, struct queue_msg *m,
    char *err, size_t errlen)
{
	int fd = ctl_queue_open_msg(data_dir, id, m, NULL, err, errlen);

	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

/* ctl_queue_copy - write [off, off+len) of fd to out; with hdr_state, stop after the header section */
static int
ctl_queue_copy(int fd, uint64_t off, uint64_t len, int (*out)(void *, const void *, size_t),
    void *arg, int *hdr_state, int *done, unsigned char *buf)
{
	while (len > 0 && !*done) {
		size_t want = len > CTL_QUEUE_BUF ? CTL_QUEUE_BUF : (size_t)len;
		ssize_t n = pread(fd, buf, want, (off_t)off);
		size_t use;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		use = (size_t)n;
		if (hdr_state != NULL) {
			/* states: 0 mid-line, 1 after LF; a second LF (CRs ignored) ends the header */
			for (size_t i = 0; i < use; i++) {
				if (buf[i] == '\n') {
					if (*hdr_state == 1) {
						use = i + 1;
						*done = 1;
						break;
					}
					*hdr_state = 1;
				} else if (buf[i] != '\r')
					*hdr_state = 0;
			}
		}
		if (out(arg, buf, use) < 0)
			return -1;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

/* ctl_queue_content - the message as it will be delivered: prepended headers, then the data */
int
ctl_queue_content(const char *data_dir, const char *id, int headers_only,
    int (*out)(void *arg, const void *p, size_t len), void *arg, char *err, size_t errlen)
{
	struct queue_msg m;
	struct queue_loc loc;
	unsigned char *buf = NULL, hdr[QUEUE_REC_HDR];
	int fd, rc = -1, hstate = 1, done = 0;
	int *hs = headers_only ? &hstate : NULL;
	uint64_t off;

	if ((fd = ctl_queue_open_msg(data_dir, id, &m, &loc, err, errlen)) < 0)
		return -1;
	queue_msg_free_fields(&m);
	if ((buf = malloc(CTL_QUEUE_BUF)) == NULL) {
		errno = ENOMEM;
		goto fail;
	}
	if (loc.prepend_len > 0 && ctl_queue_copy(fd, loc.prepend_off + QUEUE_REC_HDR,
	    loc.prepend_len, out, arg, hs, &done, buf) < 0)
		goto fail;
	/* the 'D' records, one after another from data_off up to the 'P' record */
	for (off = loc.data_off; off < loc.prepend_off && !done; ) {
		uint32_t len;

		if (pread(fd, hdr, sizeof(hdr), (off_t)off) != (ssize_t)sizeof(hdr)) {
			errno = EIO;
			goto fail;
		}
		if (hdr[0] != QUEUE_REC_DATA)
			break;
		len = queue_rec_get32(hdr + 1);
		if (ctl_queue_copy(fd, off + QUEUE_REC_HDR, len, out, arg, hs, &done, buf) < 0)
			goto fail;
		off += QUEUE_REC_HDR + (uint64_t)len;
	}
	rc = 0;
	goto done;
fail:
	util_bsnprintf(err, errlen, "%s/queue/%s: %s", data_dir, id, strerror(errno));
done:
	free(buf);
	close(fd);
	return rc;
}
