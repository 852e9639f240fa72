/*
 * diskguard.c - free space of data_dir's file system (SPEC §8)
 *
 * Owns:     struct diskguard and its descriptor of data_dir.
 * Lifetime: diskguard_new() to diskguard_free().
 * Errors:   open/fstatvfs failures return NULL/-1 with errno set; the last
 *           good measurement stays.
 * Context:  event-loop thread.
 *
 * The descriptor is opened by the root process before it drops its
 * privileges: data_dir's parents may not be searchable by mail_owner.
 * "Free" is f_bavail (what an unprivileged writer may use), as df shows it.
 */
#include "mail/diskguard.h"
#include "lib/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/statvfs.h>
#include <unistd.h>

struct diskguard {
	int fd;
	uint64_t measured_us;        /* monotonic; 0 = never */
	struct diskguard_info info;
};

/* diskguard_new - see diskguard.h */
struct diskguard *
diskguard_new(const char *data_dir)
{
	struct diskguard *g;
	int saved;

	if ((g = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	if ((g->fd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		saved = errno;
		free(g);
		errno = saved;
		return NULL;
	}
	return g;
}

/* diskguard_free - takes NULL, returns NULL */
struct diskguard *
diskguard_free(struct diskguard *g)
{
	if (g == NULL)
		return NULL;
	close(g->fd);
	free(g);
	return NULL;
}

/* diskguard_level - SPEC §8's thresholds */
int
diskguard_level(double free_pct)
{
	return free_pct < DISKGUARD_FULL_PCT ? 2 : free_pct < DISKGUARD_WARN_PCT ? 1 : 0;
}

/* diskguard_measure - see diskguard.h */
int
diskguard_measure(struct diskguard *g, uint64_t max_age_us, int *old_level)
{
	uint64_t now = util_mono_us();
	struct statvfs st;
	struct diskguard_info *d = &g->info;

	if (old_level != NULL)
		*old_level = d->level;
	if (max_age_us != 0 && g->measured_us != 0 && now - g->measured_us < max_age_us)
		return 0;
	if (fstatvfs(g->fd, &st) < 0)
		return -1;
	g->measured_us = now;
	d->known = 1;
	d->total_bytes = (uint64_t)st.f_blocks * st.f_frsize;
	d->free_bytes = (uint64_t)st.f_bavail * st.f_frsize;
	d->reserve_bytes = (uint64_t)((double)d->total_bytes * DISKGUARD_FULL_PCT / 100.0);
	d->free_pct = st.f_blocks == 0 ? 100.0 : 100.0 * (double)st.f_bavail / (double)st.f_blocks;
	d->level = st.f_blocks == 0 ? 0 : diskguard_level(d->free_pct);
	return 0;
}

/* diskguard_get - see diskguard.h */
const struct diskguard_info *
diskguard_get(const struct diskguard *g)
{
	return &g->info;
}

/*
 * diskguard_fits - the message's declared size, written, must leave the 1 %
 * reserve free (the queue file's own records are small against it).
 */
int
diskguard_fits(const struct diskguard_info *d, uint64_t size)
{
	if (!d->known || d->total_bytes == 0)
		return 1;
	if (d->free_bytes < d->reserve_bytes)
		return 0;
	return size <= d->free_bytes - d->reserve_bytes;
}
