/*
 * log.h - diagnostic logging to stderr (not the mail log: see mail/maillog.h)
 *
 * Owns:     the diagnostic stream and the trace mask.
 * Lifetime: process-wide; log_init() once at start, before threads.
 * Errors:   fatal()/fatalx() exit(1); panic() aborts.
 * Context:  any thread; each line is written with one write(2).
 *
 * Severities follow Postfix's msg(3): info; warn (environment or peer
 * trouble, carry on); fatal (cannot run); panic (our invariant broken).
 * The *x variants do not append strerror(errno).
 */
#ifndef MTAD_LOG_H
#define MTAD_LOG_H

#include <stdarg.h>

enum {
	TRACE_SMTPD = 1u << 0,
	TRACE_QUEUE = 1u << 1,
	TRACE_DNS   = 1u << 2,
	TRACE_SMTPC = 1u << 3,
	TRACE_SCHED = 1u << 4,
	TRACE_HTTP  = 1u << 5,
	TRACE_CONF  = 1u << 6,
};

extern unsigned log_trace_mask;

void log_init(const char *progname, unsigned trace_mask);
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* log_trace - one test when the subsystem's bit is off */
#define log_trace(bit, ...) \
	do { if (log_trace_mask & (bit)) log_debug(__VA_ARGS__); } while (0)

#endif
