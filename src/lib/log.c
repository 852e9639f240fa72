/*
 * log.c - diagnostic logging to stderr
 *
 * Owns:     the diagnostic stream (fd 2) and the trace mask.
 * Lifetime: process-wide.
 * Errors:   a failed write to stderr is ignored (nothing better to do).
 * Context:  any thread: every line is formatted into a stack buffer and
 *           written with one write(2), so lines from threads never mix.
 */
#include "lib/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

unsigned log_trace_mask;
static const char *log_prog = "mtad";

void
log_init(const char *progname, unsigned trace_mask)
{
	if (progname != NULL)
		log_prog = progname;
	log_trace_mask = trace_mask;
}

/* log_emit - format "prog: level: text[: errno text]\n" and write it once */
static void __attribute__((format(printf, 4, 0)))
log_emit(const char *level, int with_errno, int saved_errno, const char *fmt,
    va_list ap)
{
	char line[2048];
	size_t off = 0;
	int n;

	n = snprintf(line, sizeof(line), "%s: %s%s", log_prog, level,
	    *level ? ": " : "");
	if (n < 0)
		return;
	off = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	n = vsnprintf(line + off, sizeof(line) - off, fmt, ap);
	if (n > 0)
		off += (size_t)n < sizeof(line) - off ? (size_t)n : sizeof(line) - off - 1;
	if (with_errno && off < sizeof(line) - 1) {
		n = snprintf(line + off, sizeof(line) - off, ": %s",
		    strerror(saved_errno));
		if (n > 0)
			off += (size_t)n < sizeof(line) - off ? (size_t)n :
			    sizeof(line) - off - 1;
	}
	if (off >= sizeof(line) - 1)
		off = sizeof(line) - 2;
	line[off++] = '\n';
	(void)!write(STDERR_FILENO, line, off);
}

#define LOG_BODY(level, witherr) do {		\
	int saved = errno;			\
	va_list ap;				\
	va_start(ap, fmt);			\
	log_emit(level, witherr, saved, fmt, ap); \
	va_end(ap);				\
	errno = saved;				\
} while (0)

void log_info(const char *fmt, ...) { LOG_BODY("", 0); }
void log_warn(const char *fmt, ...) { LOG_BODY("warning", 1); }
void log_warnx(const char *fmt, ...) { LOG_BODY("warning", 0); }
void log_debug(const char *fmt, ...) { LOG_BODY("debug", 0); }
void fatal(const char *fmt, ...) { LOG_BODY("fatal", 1); exit(1); }
void fatalx(const char *fmt, ...) { LOG_BODY("fatal", 0); exit(1); }
void panic(const char *fmt, ...) { LOG_BODY("panic", 0); abort(); }
