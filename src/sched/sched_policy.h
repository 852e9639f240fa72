/*
 * sched_policy.h - the scheduler's pure decisions (private to src/sched/)
 *
 * Owns:     nothing: every function here computes from its arguments, with
 *           no clock, no I/O and no allocation, so tests/unit/test_sched.c
 *           can drive them from tables.
 * Lifetime: stateless.
 * Errors:   -1 for input that cannot be routed (a recipient without a
 *           domain, a malformed address literal); never fatal.
 * Context:  any thread.
 */
#ifndef MTAD_SCHED_POLICY_H
#define MTAD_SCHED_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct relay_target;
struct smtpc_result;

/* What a destination is, which decides how a DNS failure is treated. */
enum sched_kind {
	SCHED_KIND_MX = 0,   /* a recipient domain: NXDOMAIN and null MX bounce */
	SCHED_KIND_RELAY,    /* smart_relay: every DNS failure defers (a config problem) */
	SCHED_KIND_CC,       /* cc_mta: likewise, and never bounces to the sender */
	SCHED_KIND_DRAIN,    /* drain_relay (sched_drain.c): likewise; no smart_relay TLS policy */
};

/* A next hop: where the recipients of one transaction go. */
struct sched_nexthop {
	enum sched_kind kind;
	char     name[256];  /* domain or host (lower case), or the IP address text */
	int      port;
	int      no_mx;      /* look up A/AAAA of name only */
	int      literal;    /* name is an IP address: no DNS at all */
	int      smtps;      /* implicit TLS (smtps://) */
	unsigned rule;       /* relays: 0 = smart_relay, i+1 = sender_relay_map rule i */
	struct sockaddr_storage addr;  /* literal: the address, port set */
	socklen_t addrlen;
};

#define SCHED_KEY_MAX 300

/* The class of an SMTP reply code (0 = no reply: network trouble, temporary). */
enum sched_class {
	SCHED_OK = 0,
	SCHED_TEMP,
	SCHED_PERM,
};

/* sched_policy_backoff - seconds to wait after the attempts'th failure (attempts >= 1) */
unsigned sched_policy_backoff(unsigned attempts, unsigned min_backoff, unsigned max_backoff);

/*
 * sched_policy_defer - after a temporary failure at now_us of a recipient that
 * arrived at arrival_us and has now failed attempts times: 1 when it has
 * outlived lifetime (seconds) and must bounce, else 0 with *next_us the
 * next try (capped at the expiry time, so the last try happens then).
 */
int sched_policy_defer(uint64_t now_us, uint64_t arrival_us, unsigned lifetime,
    unsigned attempts, unsigned min_backoff, unsigned max_backoff, uint64_t *next_us);

/* sched_policy_classify - OK for 2xx, PERM for 5xx, TEMP otherwise (4xx, 0, junk) */
enum sched_class sched_policy_classify(int code);

/*
 * sched_policy_rcpt_reply - which reply decides recipient i of a finished
 * transaction: a failed MAIL FROM for everyone, else the recipient's own
 * RCPT reply when it was refused, else the end-of-data reply.
 */
const struct smtpc_reply *sched_policy_rcpt_reply(const struct smtpc_result *r, size_t i);

/* sched_policy_reply_stage - the command a reply answered, for log texts ("RCPT TO") */
const char *sched_policy_reply_stage(const struct smtpc_result *r, const struct smtpc_reply *rp);

/*
 * sched_policy_nexthop_rcpt - the next hop of a recipient: the smart relay when
 * one is set (relay->set), else the recipient's domain (an address literal
 * "[1.2.3.4]" / "[IPv6:...]" goes to that address). Ports default to
 * default_port. -1 when the address has no usable domain.
 */
int sched_policy_nexthop_rcpt(const char *rcpt, const struct relay_target *relay,
    int default_port, struct sched_nexthop *out);

/* sched_policy_nexthop_relay - the next hop for smart_relay or cc_mta (kind says which) */
int sched_policy_nexthop_relay(const struct relay_target *t, enum sched_kind kind,
    int default_port, struct sched_nexthop *out);

/* sched_policy_nexthop_key - a string naming the destination ("m|example.com|25|0"); -1 if too long */
int sched_policy_nexthop_key(const struct sched_nexthop *nh, char *buf, size_t size);

/* One recipient (or other item) to group by destination key. */
struct sched_grp {
	const char *key;     /* borrowed */
	size_t      idx;
};

/*
 * sched_policy_group - sort v so that equal keys are adjacent, keeping the
 * original order (idx) among equals; returns the number of distinct keys.
 * Callers walk the runs of equal keys: one transaction each.
 */
size_t sched_policy_group(struct sched_grp *v, size_t n);

/* sched_policy_expired - 1 when a message that arrived at arrival_us has outlived lifetime at now_us */
int sched_policy_expired(uint64_t now_us, uint64_t arrival_us, unsigned lifetime);

#endif
