/*
 * metrics_push.c - StatsD push of the counters (SPEC §2.2 metrics_push, §7)
 *
 * Owns:     one non-blocking, connected UDP socket and the counter values
 *           of the previous push.
 * Lifetime: metrics_push_new() to metrics_push_free().
 * Errors:   a bad URL is a NULL return with the reason; a send that fails
 *           (no listener: ECONNREFUSED; full buffer: EAGAIN) is dropped and
 *           warned about once until a send succeeds again.
 * Context:  event-loop thread; sendto() on a non-blocking datagram socket
 *           never waits.
 *
 * Wire format (the StatsD line protocol, several lines in one datagram):
 *     Mqueue-Messages:12|g
 *     Mqueue-Kilobytes:345|g
 *     Active_SMTP_sessions:3|g
 *     Messages-Accepted:10|c      (increase since the previous push)
 * The SPEC §7 names are kept, made StatsD-safe by metrics_push_name():
 * characters other than letters, digits, '_', '-' and '.' become '_'
 * (so "Active SMTP sessions" is "Active_SMTP_sessions").
 */
#include "metrics/metrics_push.h"
#include "metrics/metrics.h"
#include "lib/log.h"
#include "lib/util.h"

#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define METRICS_PUSH_MAX_DGRAM 1400   /* fits one Ethernet frame */

enum {
	PUSH_C_ACCEPTED, PUSH_C_REJECTED, PUSH_C_DELIVERED, PUSH_C_DEFERRED,
	PUSH_C_BOUNCED, PUSH_C_SESSIONS, PUSH_C_TLS, PUSH_C_N,
};

static const char *const metrics_push_gauges[] = {
	"Mqueue-Messages", "Mqueue-Kilobytes", "Active SMTP sessions",
};

static const char *const metrics_push_counters[PUSH_C_N] = {
	"Messages-Accepted", "Messages-Rejected", "Recipients-Delivered",
	"Recipients-Deferred", "Recipients-Bounced", "SMTP-Sessions", "TLS-Sessions",
};

struct metrics_push {
	int fd;
	uint64_t last[PUSH_C_N];
	int warned;
	uint64_t sent, failed;
};

/* metrics_push_name - make a name StatsD-safe (see the file comment); -1 if out does not fit */
int
metrics_push_name(const char *in, char *out, size_t outlen)
{
	size_t i;

	if (outlen == 0)
		return -1;
	for (i = 0; in[i] != '\0'; i++) {
		unsigned char c = (unsigned char)in[i];
		if (i + 1 >= outlen) {
			out[0] = '\0';
			return -1;
		}
		out[i] = ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.') ? (char)c : '_';
	}
	out[i] = '\0';
	return 0;
}

/* metrics_push_parse - "udp://host:port" or "udp://[v6]:port" into host and port */
static int
metrics_push_parse(const char *url, char *host, size_t hostlen, char *port,
    size_t portlen, char *err, size_t errlen)
{
	const char *p, *end, *colon;
	long long pn;

	if (strncmp(url, "udp://", 6) != 0) {
		util_bsnprintf(err, errlen, "metrics_push %s: want udp://host:port", url);
		return -1;
	}
	p = url + 6;
	if (*p == '[') {
		if ((end = strchr(p, ']')) == NULL || end[1] != ':')
			goto bad;
		if ((size_t)(end - p - 1) >= hostlen || end == p + 1)
			goto bad;
		memcpy(host, p + 1, (size_t)(end - p - 1));
		host[end - p - 1] = '\0';
		colon = end + 1;
	} else {
		if ((colon = strrchr(p, ':')) == NULL || colon == p ||
		    (size_t)(colon - p) >= hostlen || memchr(p, ':', (size_t)(colon - p)) != NULL)
			goto bad;
		memcpy(host, p, (size_t)(colon - p));
		host[colon - p] = '\0';
	}
	if (util_strtonum(colon + 1, 1, 65535, &pn) < 0 ||
	    util_bsnprintf(port, portlen, "%lld", pn) < 0)
		goto bad;
	return 0;
bad:
	util_bsnprintf(err, errlen, "metrics_push %s: want udp://host:port "
	    "(port 1..65535, IPv6 in brackets)", url);
	return -1;
}

/* metrics_push_new - a connected non-blocking UDP socket to the URL's address */
struct metrics_push *
metrics_push_new(const char *url, int resolve, char *err, size_t errlen)
{
	struct metrics_push *p = NULL;
	struct addrinfo hints, *res = NULL, *ai;
	char host[256], port[8];
	int rc;

	if (metrics_push_parse(url, host, sizeof(host), port, sizeof(port), err, errlen) < 0)
		return NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (!resolve && strcmp(host, "localhost") != 0)
		hints.ai_flags |= AI_NUMERICHOST;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		util_bsnprintf(err, errlen, "metrics_push %s: %s%s", url, gai_strerror(rc),
		    resolve ? "" : " (an address literal is needed here)");
		return NULL;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		util_bsnprintf(err, errlen, "out of memory");
		goto fail;
	}
	p->fd = -1;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		p->fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (p->fd < 0)
			continue;
		if (connect(p->fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(p->fd);
		p->fd = -1;
	}
	if (p->fd < 0) {
		util_bsnprintf(err, errlen, "metrics_push %s: %s", url, strerror(errno));
		goto fail;
	}
	freeaddrinfo(res);
	return p;
fail:
	freeaddrinfo(res);
	free(p);
	return NULL;
}

/* metrics_push_format - the datagram's lines; remembers the counters for the next increase */
int
metrics_push_format(struct metrics_push *p, const struct metrics *m,
    uint64_t queue_messages, uint64_t queue_kb, char *buf, size_t size)
{
	const uint64_t gv[] = { queue_messages, queue_kb, m->sessions_active };
	const uint64_t cv[PUSH_C_N] = {
		m->accepted, m->rejected, m->delivered, m->deferred, m->bounced,
		m->sessions_total, m->tls_sessions,
	};
	char name[64];
	size_t off = 0;
	int n;

	for (size_t i = 0; i < sizeof(gv) / sizeof(gv[0]); i++) {
		if (metrics_push_name(metrics_push_gauges[i], name, sizeof(name)) < 0 ||
		    (n = util_bsnprintf(buf + off, size - off, "%s:%llu|g\n", name,
		    (unsigned long long)gv[i])) < 0)
			return -1;
		off += (size_t)n;
	}
	for (int i = 0; i < PUSH_C_N; i++) {
		uint64_t d = cv[i] >= p->last[i] ? cv[i] - p->last[i] : cv[i];
		if (metrics_push_name(metrics_push_counters[i], name, sizeof(name)) < 0 ||
		    (n = util_bsnprintf(buf + off, size - off, "%s:%llu|c\n", name,
		    (unsigned long long)d)) < 0)
			return -1;
		off += (size_t)n;
	}
	for (int i = 0; i < PUSH_C_N; i++)
		p->last[i] = cv[i];
	/* No newline after the last line: some servers read it as an empty metric. */
	if (off > 0)
		buf[--off] = '\0';
	return (int)off;
}

/* metrics_push_send - format and send one datagram; never waits */
int
metrics_push_send(struct metrics_push *p, const struct metrics *m,
    uint64_t queue_messages, uint64_t queue_kb)
{
	char buf[METRICS_PUSH_MAX_DGRAM];
	int n = metrics_push_format(p, m, queue_messages, queue_kb, buf, sizeof(buf));

	if (n < 0)
		return -1;
	if (send(p->fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		p->failed++;
		if (!p->warned)
			log_warn("metrics_push: send failed (further failures not logged)");
		p->warned = 1;
		return -1;
	}
	p->sent++;
	p->warned = 0;
	return 0;
}

/* metrics_push_free - close and free; NULL is fine */
struct metrics_push *
metrics_push_free(struct metrics_push *p)
{
	if (p == NULL)
		return NULL;
	if (p->fd >= 0)
		close(p->fd);
	free(p);
	return NULL;
}
