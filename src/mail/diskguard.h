/*
 * diskguard.h - free space of data_dir's file system (SPEC §8): the levels
 *               and the 1 % reserve that the SMTP server enforces and the
 *               web UI (dashboard banner, /api/stats, /readyz) shows
 *
 * Owns:     struct diskguard: a descriptor of data_dir (opened before
 *           privileges are dropped) and the last measurement.
 * Lifetime: diskguard_new() to diskguard_free().
 * Errors:   a failed statvfs leaves the last measurement (and level) as it
 *           was and returns -1 with errno set.
 * Context:  event-loop thread (a few microseconds: one fstatvfs).
 *
 * Levels: 0 ok; 1 below 5 % free ("Data volume has less than 5% free disk
 * space"); 2 below 1 % free, where new mail gets 452 4.3.1. A message whose
 * declared SIZE would take the free space below the 1 % reserve is refused
 * the same way at MAIL (diskguard_fits), so a small volume does not fill up
 * after the client has sent the whole body.
 */
#ifndef MTAD_DISKGUARD_H
#define MTAD_DISKGUARD_H

#include <stdint.h>

#define DISKGUARD_WARN_PCT  5.0      /* level 1 below this */
#define DISKGUARD_FULL_PCT  1.0      /* level 2 below this: the reserve */
#define DISKGUARD_PERIOD_US 2000000  /* how often the owner's timer measures */

struct diskguard_info {
	int      known;                  /* 0 until a measurement succeeded */
	int      level;                  /* 0, 1, 2 (see above) */
	uint64_t total_bytes;
	uint64_t free_bytes;             /* available to an unprivileged user */
	uint64_t reserve_bytes;          /* 1 % of total_bytes */
	double   free_pct;
};

struct diskguard;

/* diskguard_new - watch data_dir (opened now); NULL on failure with errno set */
struct diskguard *diskguard_new(const char *data_dir);
struct diskguard *diskguard_free(struct diskguard *g);
/*
 * diskguard_measure - fstatvfs now when the last look is older than
 * max_age_us (0: always). The level before the call is in *old_level (may
 * be NULL), so the caller can log a change. 0, or -1 with errno set.
 */
int diskguard_measure(struct diskguard *g, uint64_t max_age_us, int *old_level);
/* diskguard_get - the last measurement */
const struct diskguard_info *diskguard_get(const struct diskguard *g);
/* diskguard_level - 0/1/2 for a free percentage */
int diskguard_level(double free_pct);
/* diskguard_fits - 1 when size more bytes leave at least the reserve free (or nothing is known) */
int diskguard_fits(const struct diskguard_info *d, uint64_t size);

#endif
