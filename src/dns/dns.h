/*
 * dns.h - asynchronous MX and address look-ups (public interface of src/dns/)
 *
 * Owns:     the libunbound context, its file descriptor's event, and every
 *           query in flight.
 * Lifetime: dns_new() to dns_free(); a query from dns_query_*() until its
 *           callback has run or dns_cancel() was called (then the callback
 *           never runs).
 * Errors:   dns_new() returns NULL with a reason; failed look-ups are
 *           reported through the callback's status, never fatal.
 * Context:  event-loop thread; libunbound's answers are read from ub_fd()
 *           on the loop, so callbacks run on the loop.
 *
 * Resolvers: config's dns_servers (forwarders, "host:port"), otherwise
 * /etc/resolv.conf. Validation of DNSSEC is a later step (DANE).
 */
#ifndef MTAD_DNS_H
#define MTAD_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct config;
struct dns;

#define DNS_MAX_MX    32
#define DNS_MAX_ADDRS 16

enum dns_status {
	DNS_OK = 0,        /* answer(s) present */
	DNS_NODATA,        /* name exists, no record of that type (MX: fall back to A/AAAA) */
	DNS_NXDOMAIN,      /* name does not exist: permanent */
	DNS_NULLMX,        /* RFC 7505 "0 ." : the domain accepts no mail: permanent */
	DNS_TEMPFAIL,      /* SERVFAIL, timeout, no resolver: retry later */
};

struct dns_mx {
	unsigned pref;
	char     host[256];   /* no trailing dot */
};

/*
 * MX answers are sorted by preference, with a random order among equal
 * preferences (RFC 5321 §5.1).
 */
typedef void dns_mx_cb(void *arg, enum dns_status st, const struct dns_mx *mx, size_t n);
/* Address answers: IPv6 and IPv4 together (AAAA first when both), port 0. */
typedef void dns_addr_cb(void *arg, enum dns_status st,
    const struct sockaddr_storage *addrs, size_t n);

struct dns *dns_new(struct event_base *base, const struct config *cfg, char *err, size_t errlen);
struct dns *dns_free(struct dns *d);   /* cancels every query; no callback runs */

/* dns_query_mx / dns_query_addr - start a look-up; returns an id (> 0) or 0 on failure */
uint64_t dns_query_mx(struct dns *d, const char *domain, dns_mx_cb *cb, void *arg);
uint64_t dns_query_addr(struct dns *d, const char *host, dns_addr_cb *cb, void *arg);
void dns_cancel(struct dns *d, uint64_t id);

#endif
