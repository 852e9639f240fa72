/*
 * dest_policy.h - destination limits (SPEC §11.2): destination_rate_limit
 *                 values and the destination_policy_file (public interface
 *                 of src/mail/dest_policy.c)
 *
 * Owns:     struct dest_policy and its rules' domain strings.
 * Lifetime: dest_policy_parse() to dest_policy_free(); read-only in between
 *           (SIGHUP builds a new policy and swaps it whole).
 * Errors:   dest_policy_parse() returns NULL with "destination_policy_file
 *           FILE line N: what" in err;
 *           dest_rate_parse() returns -1 with what in why.
 * Context:  any thread; no globals.
 *
 * A rate is "N/UNIT": N messages (1 .. DEST_RATE_MAX) per second, minute,
 * hour or day (UNIT s, m, h, d; also sec, min, hour, day); "" = no limit.
 *
 * Policy file format, one domain a line, '#' starts a comment, blank lines
 * ignored:
 *
 *     DOMAIN [concurrency=N] [rate=N/UNIT]
 *
 * DOMAIN is a recipient domain, or the host of smart_relay, cc_mta or a
 * sender_relay_map relay as written there (without brackets and port),
 * compared without regard to case; each domain once. concurrency (1 ..
 * DEST_CONCURRENCY_MAX) replaces destination_concurrency, rate replaces
 * destination_rate_limit ("rate=none" lifts it) for that destination.
 */
#ifndef MTAD_DEST_POLICY_H
#define MTAD_DEST_POLICY_H

#include <stddef.h>
#include <stdint.h>

#define DEST_POLICY_MAX_RULES  10000
#define DEST_POLICY_LINE_MAX   1024
#define DEST_POLICY_DOMAIN_MAX 255
#define DEST_RATE_MAX          1000000u
#define DEST_CONCURRENCY_MAX   1000u

/* A rate: n messages per per_s seconds; n == 0 = no limit. */
struct dest_rate {
	uint32_t n;
	uint32_t per_s;
};

struct dest_policy_rule {
	char    *domain;                /* lower case */
	unsigned concurrency;           /* 0 = destination_concurrency */
	int      has_rate;              /* rate= given (it may be "none") */
	struct dest_rate rate;
	unsigned line;                  /* where it was written */
};

struct dest_policy {
	struct dest_policy_rule *rules; /* sorted by domain */
	size_t n;
};

/* dest_rate_parse - "N/UNIT" or "" (none) into *out; 0, or -1 with why */
int dest_rate_parse(const char *s, struct dest_rate *out, char *why, size_t whylen);
/* dest_rate_format - "5/s" ("" for none) into buf; 0, or -1 when it does not fit */
int dest_rate_format(const struct dest_rate *r, char *buf, size_t size);
/*
 * dest_policy_parse - the rules of text[0..len) (file names the file in
 * messages); NULL with "destination_policy_file FILE line N: what" in err
 */
struct dest_policy *dest_policy_parse(const char *text, size_t len, const char *file,
    char *err, size_t errlen);
struct config;
/*
 * dest_policy_read - cfg's destination_policy_file (relative to the key
 * store, or to data_dir when there is none), read and parsed; NULL with
 * "destination_policy_file FILE line N: what" (or why it cannot be read) in err.
 * An empty destination_policy_file is an error too: check it first.
 */
struct dest_policy *dest_policy_read(const struct config *cfg, char *err, size_t errlen);
/* dest_policy_lookup - the rule for domain (any case), or NULL; p may be NULL */
const struct dest_policy_rule *dest_policy_lookup(const struct dest_policy *p,
    const char *domain);
/* dest_policy_print - the rules as comment lines for mtad -t --print ("# destination_policy a.example = concurrency=2 rate=5/s") */
void dest_policy_print(const struct dest_policy *p, int fd);
/* dest_policy_free - takes NULL, returns NULL */
struct dest_policy *dest_policy_free(struct dest_policy *p);

#endif
