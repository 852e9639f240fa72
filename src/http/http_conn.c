/*
 * http_conn.c - the UI's connections: the caps, the whole-request deadline,
 * the descriptor reserve and accept(2) errors (SPEC §11.1)
 *
 * Owns:     struct http_conn (one per connection evhttp serves), the
 *           per-address counts and the pause of the listener.
 * Lifetime: a http_conn from evhttp's bufferevent factory (the accept) to
 *           evhttp's close callback of the connection (whoever ends it).
 * Errors:   a connection over a cap is closed at once; out of memory makes
 *           evhttp fall back to its own bufferevent (served, not counted).
 * Context:  event-loop thread.
 *
 * libevent 2.1's evhttp accepts by itself and has no hook that sees a new
 * connection's socket. What it has is the bufferevent factory
 * (evhttp_set_bevcb), called for each accepted socket before evhttp gives
 * the socket to the bufferevent. The factory makes the bufferevent, holds a
 * reference to it and activates an event that runs as soon as evhttp has
 * set it up: by then the bufferevent has its socket (the peer's address)
 * and evhttp's callbacks, whose argument is the struct evhttp_connection
 * (XXX an evhttp internal, checked against evhttp_connection_get_bufferevent
 * before use). The check then closes the connection (evhttp_connection_free)
 * or counts it and asks evhttp for a close callback to uncount it. Until
 * the check the listener is disabled, so accept(2) takes one connection at
 * a time (a flood cannot take a thousand descriptors before the first check
 * runs).
 *
 * The deadline: a request must arrive whole within HTTP_REQUEST_SECS of the
 * connection's start or of the previous reply, however slowly its bytes
 * trickle (evhttp's own timeout restarts with every byte).
 *
 * Descriptors: the UI never takes one of the last eighth of RLIMIT_NOFILE
 * (at least HTTP_FD_RESERVE, at most HTTP_FD_RESERVE_MAX), so that SMTP sessions, queue files
 * and DNS keep working; accept(2) failing for lack of descriptors or
 * memory pauses the listener for a second, like smtpd's, with one log line
 * a second at most.
 */
#include "http/http_int.h"
#include "lib/log.h"
#include "lib/util.h"
#include "mail/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include <openssl/ssl.h>

struct http_conn {
	struct http *h;
	struct bufferevent *bev;           /* the connection's; referenced until the check */
	struct evhttp_connection *evcon;   /* known from the check on */
	struct event *ev;                  /* the check after accept, then the deadline */
	int checked;                       /* the check ran */
	int counted;                       /* in h->nconns and its address's count */
	char addr[64];
	struct http_conn *next, *prev;     /* h->conns */
	struct http_conn *hnext;           /* h->conn_hash[] by bev */
};

struct http_addr_count {
	char addr[64];
	unsigned n;
	struct http_addr_count *next;
};

/*
 * XXX libevent calls a listener's error callback with the listener's user
 * data, which evhttp has taken (it is the struct evhttp): the one UI
 * service is found here instead. Set by http_conn_init(), cleared by
 * http_conn_detach(); read only by http_accept_error().
 */
static struct http *http_conn_service;

/* http_conn_bucket - the hash bucket of a bufferevent pointer */
static size_t
http_conn_bucket(const struct bufferevent *bev)
{
	uintptr_t v = (uintptr_t)bev;

	return (size_t)((v >> 4) ^ (v >> 14)) % HTTP_CONN_BUCKETS;
}

/* http_addr_bucket - the hash bucket of an address (FNV-1a) */
static size_t
http_addr_bucket(const char *a)
{
	uint32_t hsh = 2166136261u;

	for (; *a != '\0'; a++)
		hsh = (hsh ^ (unsigned char)*a) * 16777619u;
	return hsh % HTTP_ADDR_BUCKETS;
}

/* http_addr_find - the count of addr, made (at 0) when make; NULL when absent or out of memory */
static struct http_addr_count *
http_addr_find(struct http *h, const char *addr, int make)
{
	size_t b = http_addr_bucket(addr);
	struct http_addr_count *a;

	for (a = h->addr_hash[b]; a != NULL; a = a->next)
		if (strcmp(a->addr, addr) == 0)
			return a;
	if (!make || (a = calloc(1, sizeof(*a))) == NULL)
		return NULL;
	util_strlcpy(a->addr, addr, sizeof(a->addr));
	a->next = h->addr_hash[b];
	h->addr_hash[b] = a;
	return a;
}

/* http_addr_release - one connection of addr fewer; the entry goes at zero */
static void
http_addr_release(struct http *h, const char *addr)
{
	struct http_addr_count **pp = &h->addr_hash[http_addr_bucket(addr)];

	for (; *pp != NULL; pp = &(*pp)->next)
		if (strcmp((*pp)->addr, addr) == 0) {
			struct http_addr_count *a = *pp;
			if (a->n > 0)
				a->n--;
			if (a->n == 0) {
				*pp = a->next;
				free(a);
			}
			return;
		}
}

/* http_conn_find - the connection served through bev, or NULL */
static struct http_conn *
http_conn_find(struct http *h, const struct bufferevent *bev)
{
	struct http_conn *c;

	for (c = h->conn_hash[http_conn_bucket(bev)]; c != NULL; c = c->hnext)
		if (c->bev == bev)
			return c;
	return NULL;
}

/* http_conn_of - the connection a request came on, or NULL */
static struct http_conn *
http_conn_of(struct http *h, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev;

	if (evcon == NULL || (bev = evhttp_connection_get_bufferevent(evcon)) == NULL)
		return NULL;
	return http_conn_find(h, bev);
}

/* http_listen_resume - accept the next connection, unless paused for lack of descriptors */
static void
http_listen_resume(struct http *h)
{
	if (h->lev != NULL && !h->accept_paused)
		evconnlistener_enable(h->lev);
}

/*
 * http_conn_warn - a refusal or an accept error, logged at most once a
 * second; what was not logged is counted in the next line
 */
static void
http_conn_warn(struct http *h, const char *what, const char *addr)
{
	uint64_t now = util_mono_us();

	h->warn_unlogged++;
	if (h->warn_us != 0 && now - h->warn_us < 1000000)
		return;
	if (h->warn_unlogged > 1)
		log_warnx("http: %s%s%s (%u such events in the last second)", addr, addr[0] ? ": " : "",
		    what, h->warn_unlogged);
	else
		log_warnx("http: %s%s%s", addr, addr[0] ? ": " : "", what);
	h->warn_unlogged = 0;
	h->warn_us = now;
}

/* http_fd_reserved - is fd one of the descriptors kept for SMTP and the queue? */
static int
http_fd_reserved(evutil_socket_t fd)
{
	struct rlimit rl;
	rlim_t reserve;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return 0;
	reserve = rl.rlim_cur / 8 > HTTP_FD_RESERVE ? rl.rlim_cur / 8 : HTTP_FD_RESERVE;
	if (reserve > HTTP_FD_RESERVE_MAX)
		reserve = HTTP_FD_RESERVE_MAX;
	return rl.rlim_cur <= reserve || (rlim_t)fd >= rl.rlim_cur - reserve;
}

/* http_conn_deadline - HTTP_REQUEST_SECS without a whole request: close */
static void
http_conn_deadline(struct http_conn *c)
{
	log_trace(TRACE_HTTP, "http: %s: no whole request within %d s, closing", c->addr,
	    HTTP_REQUEST_SECS);
	evhttp_connection_free(c->evcon);      /* calls http_conn_closed(): c is gone */
}

/* http_conn_arm - the deadline for the next request, from now */
static void
http_conn_arm(struct http_conn *c)
{
	struct timeval tv = { HTTP_REQUEST_SECS, 0 };

	if (c->ev != NULL)
		evtimer_add(c->ev, &tv);
}

/* http_conn_unlink - take c out of the service's lists and counts, free it */
static void
http_conn_unlink(struct http_conn *c)
{
	struct http *h = c->h;
	struct http_conn **pp = &h->conn_hash[http_conn_bucket(c->bev)];

	for (; *pp != NULL; pp = &(*pp)->hnext)
		if (*pp == c) {
			*pp = c->hnext;
			break;
		}
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	if (c->counted) {
		h->nconns--;
		http_addr_release(h, c->addr);
	}
	if (c->ev != NULL)
		event_free(c->ev);
	free(c);
}

/* http_conn_closed - evhttp frees the connection (closed by either side, timed out, refused) */
static void
http_conn_closed(struct evhttp_connection *evcon, void *arg)
{
	evhttp_connection_set_closecb(evcon, NULL, NULL);    /* once only */
	http_conn_unlink(arg);
}

/* http_conn_peer - the peer's address of fd as text into c->addr ("unknown" when none) */
static void
http_conn_peer(struct http_conn *c, evutil_socket_t fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	const void *ip = NULL;

	util_strlcpy(c->addr, "unknown", sizeof(c->addr));
	if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
		return;
	if (ss.ss_family == AF_INET)
		ip = &((struct sockaddr_in *)&ss)->sin_addr;
	else if (ss.ss_family == AF_INET6)
		ip = &((struct sockaddr_in6 *)&ss)->sin6_addr;
	if (ip != NULL && inet_ntop(ss.ss_family, ip, c->addr, sizeof(c->addr)) == NULL)
		util_strlcpy(c->addr, "unknown", sizeof(c->addr));
}

/*
 * http_conn_check - evhttp has set the connection up: the peer, then the
 * caps (total, per address, descriptor reserve); over one, the connection
 * is closed at once. Also the deadline's timer (checked set).
 */
static void
http_conn_check(evutil_socket_t unused, short what, void *arg)
{
	struct http_conn *c = arg;
	struct http *h = c->h;
	struct bufferevent *bev = c->bev;
	struct http_addr_count *a;
	void *cbarg = NULL;
	evutil_socket_t fd;
	const char *refuse = NULL;

	(void)unused; (void)what;
	if (c->checked) {
		http_conn_deadline(c);
		return;
	}
	c->checked = 1;
	http_listen_resume(h);
	/* evhttp's callbacks carry its connection; a freed bufferevent has none left. */
	bufferevent_getcb(bev, NULL, NULL, NULL, &cbarg);
	if (cbarg == NULL ||
	    evhttp_connection_get_bufferevent((struct evhttp_connection *)cbarg) != bev) {
		http_conn_unlink(c);
		bufferevent_decref(bev);
		return;
	}
	c->evcon = cbarg;
	evhttp_connection_set_closecb(c->evcon, http_conn_closed, c);
	bufferevent_decref(bev);        /* evhttp's from here */
	fd = bufferevent_getfd(bev);
	http_conn_peer(c, fd);
	a = http_addr_find(h, c->addr, 0);
	if (fd < 0)
		refuse = "connection without a socket";
	else if (h->nconns >= h->max_conns)
		refuse = "too many connections (ui_max_connections), closing a new one";
	else if (a != NULL && a->n >= HTTP_MAX_CONNS_PER_ADDR)
		refuse = "too many connections from this address, closing a new one";
	else if (http_fd_reserved(fd))
		refuse = "descriptors kept for SMTP and the queue, closing a new connection";
	else if (a == NULL && (a = http_addr_find(h, c->addr, 1)) == NULL)
		refuse = "out of memory, closing a new connection";
	if (refuse != NULL) {
		h->conns_refused++;
		http_conn_warn(h, refuse, c->addr);
		evhttp_connection_free(c->evcon);      /* calls http_conn_closed(): c is gone */
		return;
	}
	a->n++;
	h->nconns++;
	c->counted = 1;
	http_conn_arm(c);
}

/*
 * http_conn_bev - evhttp's bufferevent factory (one call per accepted
 * socket, before evhttp sets it): a plain or TLS bufferevent, referenced
 * until http_conn_check() has run. evhttp sets the socket later, so it is
 * made without one (libevent's rule here).
 */
struct bufferevent *
http_conn_bev(struct event_base *base, void *arg)
{
	struct http *h = arg;
	struct bufferevent *bev = NULL;
	struct http_conn *c = NULL;
	size_t b;

	/* One accept per loop turn until this connection is checked. */
	if (h->lev != NULL)
		evconnlistener_disable(h->lev);
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->ev = event_new(base, -1, 0, http_conn_check, c)) == NULL)
		goto fail;
	if (h->tls != NULL) {
		SSL *ssl = SSL_new((SSL_CTX *)h->tls);
		if (ssl == NULL)
			goto fail;
		bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
		    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (bev == NULL) {
			SSL_free(ssl);
			goto fail;
		}
	} else if ((bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE)) == NULL)
		goto fail;
	bufferevent_incref(bev);
	c->h = h;
	c->bev = bev;
	c->next = h->conns;
	if (h->conns != NULL)
		h->conns->prev = c;
	h->conns = c;
	b = http_conn_bucket(bev);
	c->hnext = h->conn_hash[b];
	h->conn_hash[b] = c;
	event_active(c->ev, EV_TIMEOUT, 1);
	return bev;
fail:
	if (c != NULL && c->ev != NULL)
		event_free(c->ev);
	free(c);
	http_listen_resume(h);
	return NULL;
}

/* http_conn_request - a whole request arrived: its deadline is met */
void
http_conn_request(struct http *h, struct evhttp_request *req)
{
	struct http_conn *c = http_conn_of(h, req);

	if (c != NULL && c->checked && c->ev != NULL)
		evtimer_del(c->ev);
}

/* http_conn_replied - a reply went out: the next request's deadline starts */
void
http_conn_replied(struct evhttp_request *req, void *arg)
{
	struct http_conn *c = http_conn_of(arg, req);

	if (c != NULL && c->checked)
		http_conn_arm(c);
}

/* http_relisten - the pause after an accept error is over */
static void
http_relisten(evutil_socket_t fd, short what, void *arg)
{
	struct http *h = arg;

	(void)fd; (void)what;
	h->accept_paused = 0;
	http_listen_resume(h);
}

/*
 * http_accept_error - accept(2) failed with what libevent does not retry:
 * out of descriptors or memory pauses accepting for a second (instead of
 * libevent's warning on every turn of a spinning loop)
 */
static void
http_accept_error(struct evconnlistener *lev, void *arg)
{
	struct http *h = http_conn_service;
	int e = EVUTIL_SOCKET_ERROR();
	struct timeval tv = { 1, 0 };
	char what[128];

	(void)arg;
	if (h == NULL || h->lev != lev)
		return;
	if (util_bsnprintf(what, sizeof(what), "accept: %s", strerror(e)) < 0)
		util_strlcpy(what, "accept failed", sizeof(what));
	http_conn_warn(h, what, "");
	if (e != EMFILE && e != ENFILE && e != ENOBUFS && e != ENOMEM)
		return;
	h->accept_paused = 1;
	evconnlistener_disable(h->lev);
	if (h->relisten != NULL)
		evtimer_add(h->relisten, &tv);
}

/* http_conn_init - take over evhttp's listener: accept errors and one accept at a time */
int
http_conn_init(struct http *h, struct evhttp_bound_socket *bound)
{
	h->lev = evhttp_bound_socket_get_listener(bound);
	if (h->lev == NULL || (h->relisten = evtimer_new(h->base, http_relisten, h)) == NULL)
		return -1;
	evconnlistener_set_error_cb(h->lev, http_accept_error);
	evhttp_set_bevcb(h->evh, http_conn_bev, h);
	http_conn_service = h;
	return 0;
}

/*
 * http_conn_detach - the service goes, after evhttp_free() (which closed
 * every connection through http_conn_closed()): what remains is a
 * connection not yet checked, and the per-address counts
 */
void
http_conn_detach(struct http *h)
{
	while (h->conns != NULL) {
		struct bufferevent *bev = h->conns->bev;

		http_conn_unlink(h->conns);
		bufferevent_decref(bev);
	}
	if (http_conn_service == h)
		http_conn_service = NULL;
	for (size_t i = 0; i < HTTP_ADDR_BUCKETS; i++)
		while (h->addr_hash[i] != NULL) {
			struct http_addr_count *a = h->addr_hash[i];
			h->addr_hash[i] = a->next;
			free(a);
		}
	if (h->relisten != NULL) {
		event_free(h->relisten);
		h->relisten = NULL;
	}
}
