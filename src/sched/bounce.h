/*
 * bounce.h - RFC 3464 delivery status notifications
 *
 * Owns:     nothing; returns malloc'd text the caller frees.
 * Lifetime: stateless.
 * Errors:   NULL on allocation failure or an unreadable original.
 * Context:  event-loop thread.
 */
#ifndef MTAD_BOUNCE_H
#define MTAD_BOUNCE_H

#include <stddef.h>
#include <stdint.h>

struct queue_msg;

enum bounce_kind {
	BOUNCE_FAILED = 0,       /* Action: failed (the DSN of SPEC §5) */
	BOUNCE_DELAYED,          /* Action: delayed (delay_warning_time) */
};

/*
 * bounce_build - a complete message (headers + multipart/report body, CRLF
 * line ends) from MAILER-DAEMON@hostname to m->sender, reporting the
 * recipients m->rcpt[idx[i]] (their last_reply and dsn), followed by the
 * original message's header section (orig_headers, orig_len bytes: the
 * content up to the first empty line). now_us is the Date:. *len_out gets
 * the length.
 */
char *bounce_build(const char *hostname, const struct queue_msg *m,
    const size_t *idx, size_t nidx, enum bounce_kind kind,
    const char *orig_headers, size_t orig_len, uint64_t now_us, size_t *len_out);

#endif
