/*
 * metrics_push.h - push the counters to a StatsD server (metrics_push = udp://host:port)
 *
 * Owns:     one non-blocking UDP socket and the counters last pushed.
 * Lifetime: metrics_push_new() to metrics_push_free().
 * Errors:   metrics_push_new() returns NULL with a reason in err (a bad URL
 *           or an address that cannot be used); a failed send is counted,
 *           warned about once, and otherwise ignored: monitoring never
 *           stops mail.
 * Context:  event-loop thread (the HTTP service's 10 s timer calls it).
 */
#ifndef MTAD_METRICS_PUSH_H
#define MTAD_METRICS_PUSH_H

#include <stddef.h>
#include <stdint.h>

struct metrics;
struct metrics_push;

/*
 * metrics_push_new - parse "udp://host:port" ("udp://[2001:db8::1]:8125");
 * host must be an IP address literal or "localhost" unless resolve is set
 * (start-up only: a name look-up would block the event loop).
 */
struct metrics_push *metrics_push_new(const char *url, int resolve, char *err, size_t errlen);
/*
 * metrics_push_send - one datagram: the gauges of SPEC §7 (queue_messages,
 * queue_kb, m->sessions_active) and the counters' increase since the last push.
 */
int metrics_push_send(struct metrics_push *p, const struct metrics *m,
    uint64_t queue_messages, uint64_t queue_kb);
struct metrics_push *metrics_push_free(struct metrics_push *p);

/* metrics_push_name - a name in StatsD style: [A-Za-z0-9_.-] kept, the rest '_' */
int metrics_push_name(const char *in, char *out, size_t outlen);
/* metrics_push_format - the datagram's text (exposed for tests); length or -1 */
int metrics_push_format(struct metrics_push *p, const struct metrics *m,
    uint64_t queue_messages, uint64_t queue_kb, char *buf, size_t size);

#endif
