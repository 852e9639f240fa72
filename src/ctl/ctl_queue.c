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
 * The files are read through the queue's own tool interface
 * (src/queue/queue_tool.h; the format is in docs/queue.md): its parser
 * checks every file, so a half-written or damaged file is never shown as a
 * message, and its reader streams the content as it would be delivered.
 */
#include "ctl/ctl_int.h"
#include "lib/util.h"
#include "queue/queue.h"
#include "queue/queue_tool.h"
#include "queue/queue_view.h"

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
	queue_rec_msg_free_fields(m);
}

/*
 * ctl_queue_parse_fd - the queue's verdict on one file. On OK the message
 * (with id) is in *m and, if loc is not NULL, its locations in *loc; a file
 * that cannot be read counts as corrupt, with the reason.
 */
static enum queue_parse_status
ctl_queue_parse_fd(int fd, const char *id, struct queue_msg *m, struct queue_loc *loc,
    const char **reason)
{
	struct queue_parse_result res;

	if (queue_reader_parse_fd(fd, m, &res) < 0) {
		*reason = strerror(errno);
		return QUEUE_PARSE_CORRUPT;
	}
	*reason = res.reason != NULL ? res.reason : "unreadable";
	if (res.status == QUEUE_PARSE_OK) {
		if (loc != NULL)
			*loc = res.loc;
		util_strlcpy(m->id, id, sizeof(m->id));
	}
	return res.status;
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
	for (size_t i = 0; i < n; i++) {
		struct queue_msg m;
		const char *why;
		enum queue_parse_status st;
		int fd = queue_recover_open(dirfd(d), names[i]);

		if (fd < 0) {
			if (errno == ENOENT)
				continue;       /* delivered meanwhile */
			if (errno == EINVAL || errno == ELOOP) {
				fprintf(stderr, "mtactl: %s/queue/%s: not a regular file; skipped\n",
				    data_dir, names[i]);
				continue;
			}
			util_bsnprintf(err, errlen, "%s/queue/%s: %s", data_dir, names[i],
			    strerror(errno));
			goto done;
		}
		st = ctl_queue_parse_fd(fd, names[i], &m, NULL, &why);
		{
			struct stat fst;

			/* Mqueue-Kilobytes counts file sizes, as the daemon does */
			if (st == QUEUE_PARSE_OK && fstat(fd, &fst) == 0)
				m.file_size = (uint64_t)fst.st_size;
		}
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
		if (queue_rec_msg_pending(&m))
			cb(arg, &m);
		queue_rec_msg_free_fields(&m);
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
	closedir(d);
	errno = saved;
	return rc;
}

/* ctl_queue_open_msg - open and parse one message file */
static int
ctl_queue_open_msg(const char *data_dir, const char *id, struct queue_msg *m,
    struct queue_loc *loc, char *err, size_t errlen)
{
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
	fd = queue_recover_open(dfd, id);
	saved = errno;
	close(dfd);
	if (fd < 0) {
		errno = saved;
		if (errno == ENOENT)
			util_bsnprintf(err, errlen, "%s: no such message", id);
		else if (errno == EINVAL || errno == ELOOP)
			util_bsnprintf(err, errlen, "%s/queue/%s: not a regular file", data_dir, id);
		else
			util_bsnprintf(err, errlen, "%s/queue/%s: %s", data_dir, id, strerror(errno));
		return -1;
	}
	st = ctl_queue_parse_fd(fd, id, m, loc, &why);
	if (st == QUEUE_PARSE_OK && queue_rec_msg_pending(m))
		return fd;
	close(fd);
	queue_rec_msg_free_fields(m);
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

/*
 * ctl_queue_head_end - the length of buf up to and including the LF that
 * ends the header section (the second LF in a row; CRs ignored), 0 if it
 * does not end in buf. *state carries over between calls: 1 at a line start.
 */
static size_t
ctl_queue_head_end(const unsigned char *buf, size_t len, int *state)
{
	for (size_t i = 0; i < len; i++) {
		if (buf[i] == '\n') {
			if (*state == 1)
				return i + 1;
			*state = 1;
		} else if (buf[i] != '\r')
			*state = 0;
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
	struct queue_reader *r = NULL;
	unsigned char *buf = NULL;
	int fd, rc = -1, hstate = 1;
	ssize_t n;

	if ((fd = ctl_queue_open_msg(data_dir, id, &m, &loc, err, errlen)) < 0)
		return -1;
	queue_rec_msg_free_fields(&m);
	if ((buf = malloc(CTL_QUEUE_BUF)) == NULL || (r = queue_reader_fdopen(fd, &loc)) == NULL) {
		close(fd);
		errno = ENOMEM;
		goto fail;
	}
	while ((n = queue_reader_read(r, buf, CTL_QUEUE_BUF)) > 0) {
		size_t use = (size_t)n, end = 0;

		if (headers_only && (end = ctl_queue_head_end(buf, use, &hstate)) > 0)
			use = end;
		if (out(arg, buf, use) < 0)
			goto fail;
		if (end > 0)
			break;
	}
	if (n < 0)
		goto fail;
	rc = 0;
	goto done;
fail:
	util_bsnprintf(err, errlen, "%s/queue/%s: %s", data_dir, id, strerror(errno));
done:
	free(buf);
	queue_reader_close(r);
	return rc;
}

/* ctl_queue_history - the attempts recorded in the message's file (mtad stopped) */
int
ctl_queue_history(const char *data_dir, const char *id, json_t *o)
{
	struct queue_msg m;
	char err[512];
	uint64_t omitted = 0;
	json_t *arr = NULL;
	int fd = ctl_queue_open_msg(data_dir, id, &m, NULL, err, sizeof(err));

	if (fd >= 0) {
		arr = queue_hist_json(fd, &m, &omitted);
		close(fd);
		queue_rec_msg_free_fields(&m);
	}
	if (arr == NULL && (arr = json_array()) == NULL)
		return -1;
	if (json_object_set_new(o, "history", arr) < 0 ||
	    json_object_set_new(o, "history_omitted", json_integer((json_int_t)omitted)) < 0)
		return -1;
	return 0;
}
