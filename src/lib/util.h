/*
 * util.h - small string, number and allocation helpers
 *
 * Owns:     nothing.
 * Lifetime: stateless.
 * Errors:   x* functions call fatalx() on allocation failure (start-up and
 *           config code only); the others return -1/NULL with errno set.
 * Context:  any thread.
 */
#ifndef MTAD_UTIL_H
#define MTAD_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* A slice of someone else's bytes: never NUL-terminated, never owned. */
struct str {
	const char *p;
	size_t len;
};

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* util_strlcpy - copy with truncation; returns strlen(src) like strlcpy */
size_t util_strlcpy(char *dst, const char *src, size_t size);

/* util_bsnprintf - snprintf that returns -1 when truncated or failed */
int util_bsnprintf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * util_strtonum - parse a decimal integer in [min, max] from a NUL-terminated
 * string; 0 on success, -1 with errno = EINVAL/ERANGE otherwise.
 */
int util_strtonum(const char *s, long long min, long long max, long long *out);

/* util_ncaseeq - ASCII case-insensitive compare of a slice with a literal */
int util_ncaseeq(const char *p, size_t len, const char *lit);

/*
 * util_list_next - the next item of a list whose items are separated by
 * commas, spaces and tabs, in any number ("a, b  c,,d"): 1 with *item set
 * (a slice of the text) and *pp moved past it; 0 when only separators are
 * left. Used by every list-valued configuration property.
 */
int util_list_next(const char **pp, struct str *item);

/* util_now_us - CLOCK_REALTIME in microseconds */
uint64_t util_now_us(void);
/* util_mono_us - CLOCK_MONOTONIC in microseconds */
uint64_t util_mono_us(void);

/*
 * util_cov_exit - _exit() for a forked child. A child that leaves with
 * _exit() writes no line counts, so in a coverage build (`make coverage`
 * defines MTAD_COVERAGE) this writes them first, signals blocked so that a
 * SIGTERM cannot cut the count files short. In every other build it is
 * _exit() itself (callers include <unistd.h>).
 */
#ifdef MTAD_COVERAGE
_Noreturn void util_cov_exit(int status);
#else
#define util_cov_exit(status) _exit(status)
#endif

#endif
