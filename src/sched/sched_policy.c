/*
 * sched_policy.c - the scheduler's pure decisions: backoff, expiry, reply
 * classes, next hops and grouping by destination
 *
 * Owns:     nothing.
 * Lifetime: stateless.
 * Errors:   -1 for unroutable input; never fatal.
 * Context:  any thread.
 *
 * Kept free of clocks, I/O and other components' functions (only their
 * types), so the unit test links this file alone.
 */
#include "sched/sched_policy.h"
#include "lib/util.h"
#include "mail/config.h"
#include "smtpc/smtpc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define US_PER_S 1000000ull

/*
 * sched_policy_backoff - Postfix-like exponential backoff: the first failure waits
 * min_backoff, each further one doubles it, never more than max_backoff
 * (min(max, min * 2^(attempts-1))). At least one second, so a zero minimum
 * cannot make a busy loop.
 */
unsigned
sched_policy_backoff(unsigned attempts, unsigned min_backoff, unsigned max_backoff)
{
	uint64_t b = min_backoff;

	for (unsigned i = 1; i < attempts && b < max_backoff; i++)
		b *= 2;
	if (b > max_backoff)
		b = max_backoff;
	if (b == 0)
		b = 1;
	return (unsigned)b;
}

/* sched_policy_expired - lifetime counts from the end of DATA (arrival), as Postfix's maximal_queue_lifetime */
int
sched_policy_expired(uint64_t now_us, uint64_t arrival_us, unsigned lifetime)
{
	return now_us >= arrival_us + (uint64_t)lifetime * US_PER_S;
}

/*
 * sched_policy_defer - the decision after a temporary failure. A recipient past
 * its lifetime bounces; otherwise it waits its backoff, but never beyond
 * the expiry time, so that the last attempt is made right then and a
 * failure there bounces without another full backoff.
 */
int
sched_policy_defer(uint64_t now_us, uint64_t arrival_us, unsigned lifetime,
    unsigned attempts, unsigned min_backoff, unsigned max_backoff, uint64_t *next_us)
{
	uint64_t expiry = arrival_us + (uint64_t)lifetime * US_PER_S;
	uint64_t next;

	if (now_us >= expiry)
		return 1;
	next = now_us + (uint64_t)sched_policy_backoff(attempts, min_backoff, max_backoff) * US_PER_S;
	if (next > expiry)
		next = expiry;
	*next_us = next;
	return 0;
}

/* sched_policy_classify - RFC 5321 §4.2.1: the first digit decides */
enum sched_class
sched_policy_classify(int code)
{
	if (code >= 200 && code < 300)
		return SCHED_OK;
	if (code >= 500 && code < 600)
		return SCHED_PERM;
	return SCHED_TEMP;
}

/* sched_policy_rcpt_reply - the reply that decides recipient i (see sched_policy.h) */
const struct smtpc_reply *
sched_policy_rcpt_reply(const struct smtpc_result *r, size_t i)
{
	if (sched_policy_classify(r->mail.code) != SCHED_OK)
		return &r->mail;
	if (r->rcpt != NULL && i < r->nrcpt &&
	    sched_policy_classify(r->rcpt[i].code) != SCHED_OK)
		return &r->rcpt[i];
	return &r->data;
}

/* sched_policy_reply_stage - "MAIL FROM", "RCPT TO" or "end of DATA", as Postfix's "(in reply to ...)" */
const char *
sched_policy_reply_stage(const struct smtpc_result *r, const struct smtpc_reply *rp)
{
	if (rp == &r->mail)
		return "MAIL FROM";
	if (r->rcpt != NULL && rp >= r->rcpt && rp < r->rcpt + r->nrcpt)
		return "RCPT TO";
	return "end of DATA";
}

/* np_lower - copy an ASCII-lower-cased domain without a trailing dot; -1 if it does not fit */
static int
np_lower(char *dst, size_t size, const char *src, size_t len)
{
	if (len > 0 && src[len - 1] == '.')
		len--;
	if (len == 0 || len >= size)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
	}
	dst[len] = '\0';
	return 0;
}

/* np_literal - parse an IP address text into nh->addr with nh->port; -1 if not an address */
static int
np_literal(struct sched_nexthop *nh, const char *text)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&nh->addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&nh->addr;

	memset(&nh->addr, 0, sizeof(nh->addr));
	if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)nh->port);
		nh->addrlen = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)nh->port);
		nh->addrlen = sizeof(*sin6);
		return 0;
	}
	return -1;
}

/*
 * sched_policy_nexthop_rcpt - route one recipient. With a smart relay everything
 * goes there. Otherwise the domain after the last '@' (a quoted local part
 * may hold '@'), lower-cased: an MX destination, or for an RFC 5321 §4.1.3
 * address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]") that address.
 */
int
sched_policy_nexthop_rcpt(const char *rcpt, const struct relay_target *relay,
    int default_port, struct sched_nexthop *out)
{
	const char *at, *dom;
	size_t len;
	char lit[64];

	if (relay != NULL && relay->set)
		return sched_policy_nexthop_relay(relay, SCHED_KIND_RELAY, default_port, out);
	memset(out, 0, sizeof(*out));
	out->kind = SCHED_KIND_MX;
	out->port = default_port;
	if ((at = strrchr(rcpt, '@')) == NULL)
		return -1;
	dom = at + 1;
	len = strlen(dom);
	if (len >= 2 && dom[0] == '[' && dom[len - 1] == ']') {
		const char *p = dom + 1;
		size_t plen = len - 2;
		int v6 = 0;

		if (plen >= 5 && util_ncaseeq(p, 5, "IPv6:")) {
			p += 5;
			plen -= 5;
			v6 = 1;
		}
		if (plen == 0 || plen >= sizeof(lit))
			return -1;
		memcpy(lit, p, plen);
		lit[plen] = '\0';
		/* only IPv4 goes untagged; "[IPv6:1.2.3.4]" and "[::1]" are not routable */
		if (np_literal(out, lit) < 0 || (out->addr.ss_family == AF_INET6) != v6)
			return -1;
		util_strlcpy(out->name, lit, sizeof(out->name));
		out->literal = 1;
		out->no_mx = 1;
		return 0;
	}
	if (np_lower(out->name, sizeof(out->name), dom, len) < 0)
		return -1;
	return 0;
}

/*
 * sched_policy_nexthop_relay - smart_relay / cc_mta in every SPEC §2.1 form: an IP
 * address (bracketed or not) needs no DNS; "[host]" is A/AAAA only; a bare
 * host is MX then A/AAAA. The port, when not given, is relay_smtp_port.
 */
int
sched_policy_nexthop_relay(const struct relay_target *t, enum sched_kind kind,
    int default_port, struct sched_nexthop *out)
{
	memset(out, 0, sizeof(*out));
	out->kind = kind;
	out->port = t->port > 0 ? t->port : default_port;
	out->no_mx = t->no_mx;
	out->smtps = t->smtps;
	if (np_lower(out->name, sizeof(out->name), t->host, strlen(t->host)) < 0)
		return -1;
	if (np_literal(out, t->host) == 0) {
		util_strlcpy(out->name, t->host, sizeof(out->name));
		out->literal = 1;
		out->no_mx = 1;
	}
	return 0;
}

/*
 * sched_policy_nexthop_key - one destination per (kind, name, port, MX or not),
 * and for relays per implicit TLS and rule (each rule its own credentials)
 */
int
sched_policy_nexthop_key(const struct sched_nexthop *nh, char *buf, size_t size)
{
	static const char kinds[] = { 'm', 'r', 'c', 'd' };

	if (nh->smtps || nh->rule > 0)
		return util_bsnprintf(buf, size, "%c|%s|%d|%d|%s%u", kinds[nh->kind], nh->name,
		    nh->port, nh->no_mx, nh->smtps ? "s" : "", nh->rule) < 0 ? -1 : 0;
	return util_bsnprintf(buf, size, "%c|%s|%d|%d", kinds[nh->kind], nh->name,
	    nh->port, nh->no_mx) < 0 ? -1 : 0;
}

/* grp_cmp - by key, then by original position: a stable order from qsort */
static int
grp_cmp(const void *a, const void *b)
{
	const struct sched_grp *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	if (c != 0)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* sched_policy_group - sort by destination key; the number of distinct keys */
size_t
sched_policy_group(struct sched_grp *v, size_t n)
{
	size_t runs = 0;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), grp_cmp);
	for (size_t i = 0; i < n; i++)
		if (i == 0 || strcmp(v[i - 1].key, v[i].key) != 0)
			runs++;
	return runs;
}
