/*
 * smtpd.c - the inbound SMTP server: listeners, session limits, the
 *           per-client table, the disk-space guard, reload and shutdown
 *
 * Owns:     struct smtpd: the listening sockets (smtp_listen, and
 *           smtps_listen when TLS is on), every session (through
 *           smtpd_sess.c), the pending commit handles, the per-client-IP
 *           counts, the cached greeting and EHLO replies, and one reference
 *           to the TLS server context (smtpd_set_tls).
 * Lifetime: smtpd_new() to smtpd_free(). The configuration is borrowed and
 *           replaced whole by smtpd_set_config(); sessions always read the
 *           current one through srv->cfg and keep no pointer into it.
 * Errors:   smtpd_new() fails with "cannot listen on ADDR: REASON" in err.
 *           accept(2) running out of descriptors pauses the listeners for
 *           a second instead of spinning.
 * Context:  event-loop thread.
 *
 * Limits (SPEC §2.3, §4): smtpd_max_sessions counts every session;
 * smtpd_client_connection_limit counts the sessions of one client IP, and
 * like Postfix (smtpd_client_event_limit_exceptions = $mynetworks) it does
 * not apply to clients inside smtpd_trusted_networks, the relay's own
 * applications, which may open many connections at once. A session from
 * smtpd_proxy_networks counts against the balancer's address while it
 * waits for its PROXY header (at most SMTPD_PROXY_WAIT_SEC), then against
 * the client's (SPEC §11.4): half-open sessions cannot pile up unseen.
 *
 * Disk guard (SPEC §8, mail/diskguard.c): measured every 2 s, at MAIL
 * when the last look is older, and at once for a MAIL with SIZE; the level
 * goes to metrics->disk_state (1 below 5 % free, 2 below 1 %, where MAIL
 * gets 452 4.3.1, as does a SIZE that would not leave the 1 % reserve).
 */
#include "smtpd/smtpd_int.h"
#include "lib/cidr.h"
#include "lib/log.h"
#include "lib/map.h"
#include "lib/util.h"
#include "mail/diskguard.h"
#include "mail/maillog.h"
#include "metrics/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include <openssl/ssl.h>

#define SMTPD_BACKLOG 4096

/* --- per-client session counts ------------------------------------------ */

/*
 * srv->ipt maps a client address, as smtpd_sess_set_addr() spells it (one
 * text per address, v4-mapped written as v4, "unknown" for the rest), to
 * its sessions; an entry lives while its count is above zero.
 */
struct smtpd_ipent {
	unsigned count;
};

/* smtpd_ip_acquire - count one more session of this client; -1 over the limit (or no memory) */
int
smtpd_ip_acquire(struct smtpd *srv, const char *addr)
{
	unsigned limit = srv->cfg->smtpd_client_connection_limit;
	struct smtpd_ipent *e = map_get(srv->ipt, addr);

	if (e == NULL) {
		if ((e = calloc(1, sizeof(*e))) == NULL)
			return -1;
		if (map_put(srv->ipt, addr, e) < 0) {
			free(e);
			return -1;
		}
	}
	if (limit != 0 && e->count >= limit)
		return -1;                       /* count >= limit > 0: the entry stays */
	e->count++;
	return 0;
}

/* smtpd_ip_release - one session of this client ended */
void
smtpd_ip_release(struct smtpd *srv, const char *addr)
{
	struct smtpd_ipent *e = map_get(srv->ipt, addr);

	if (e != NULL && --e->count == 0)
		free(map_del(srv->ipt, addr));
}

/* smtpd_trusted - the client may relay (smtpd_trusted_networks, current configuration) */
int
smtpd_trusted(const struct smtpd *srv, const union smtpd_sockaddr *peer)
{
	const struct cidr_list *l = srv->cfg->smtpd_trusted_networks;

	return l != NULL && (peer->sa.sa_family == AF_INET || peer->sa.sa_family == AF_INET6) &&
	    cidr_list_match(l, &peer->sa) == 1;
}

/* --- disk guard ------------------------------------------------------------ */

/*
 * smtpd_disk_check - SPEC §8 through mail/diskguard.c: measure when the
 * last look is older than max_age_us (0: now), publish the level in the
 * metrics (the UI's banner and /readyz read it) and log each change.
 */
void
smtpd_disk_check(struct smtpd *srv, uint64_t max_age_us)
{
	int old, level;

	if (srv->disk == NULL)
		return;
	if (diskguard_measure(srv->disk, max_age_us, &old) < 0) {
		log_warn("smtpd: statvfs %s", srv->cfg->data_dir);
		return;
	}
	level = diskguard_get(srv->disk)->level;
	srv->m->disk_state = level;
	if (level == old)
		return;
	if (level == 2)
		log_warnx("Data volume has less than 1%% free disk space");
	else if (level == 1)
		log_warnx("Data volume has less than 5%% free disk space");
	else
		log_info("Data volume has 5%% or more free disk space again");
	maillog_disk(srv->ml, level);
}

/* disk_cb - the 2 s disk guard timer */
static void
disk_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	smtpd_disk_check(arg, 0);
}

/* --- sessions come and go ------------------------------------------------ */

/* smtpd_maybe_done - shutting down and nothing left: tell main */
void
smtpd_maybe_done(struct smtpd *srv)
{
	void (*done)(void *);

	if (!srv->stopping || srv->nsess != 0 || srv->ncommits != 0 || srv->done == NULL)
		return;
	done = srv->done;
	srv->done = NULL;
	done(srv->done_arg);
}

/* reap_cb - free the sessions killed since the last loop turn (STYLE §6) */
static void
reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd *srv = arg;
	struct smtpd_sess *s;

	(void)fd;
	(void)what;
	while ((s = TAILQ_FIRST(&srv->reap)) != NULL)
		smtpd_sess_free(s);
	smtpd_maybe_done(srv);
}

/* refuse - a connection over the total limit: one reply, no session */
static void
refuse(struct smtpd *srv, int fd, const char *text, size_t len)
{
	ssize_t n = send(fd, text, len, MSG_NOSIGNAL | MSG_DONTWAIT);

	(void)n;
	srv->m->rejected++;
	close(fd);
}

/*
 * smtpd_accept - a new connection (taken): total limit, TCP_NODELAY
 * (replies go out per batch), session. kind: SMTPD_LISTEN_SMTPS = TLS from
 * the first byte (RFC 8314 §3.3), SMTPD_LISTEN_SUBMISSION = STARTTLS then
 * AUTH. The listeners' callbacks and the session fuzzer.
 */
void
smtpd_accept(struct smtpd *srv, int fd, const struct sockaddr *sa, socklen_t salen, int kind)
{
	const struct config *cfg = srv->cfg;
	struct smtpd_sess *s;
	int one = 1;

	if (srv->stopping || (kind == SMTPD_LISTEN_SMTPS && srv->tls == NULL)) {
		close(fd);
		return;
	}
	if (cfg->smtpd_max_sessions != 0 && srv->nsess >= cfg->smtpd_max_sessions) {
		char text[512];
		int n = util_bsnprintf(text, sizeof(text),
		    "421 4.7.0 %s Error: too many connections\r\n", cfg->hostname);
		char addr[INET6_ADDRSTRLEN] = "unknown";
		if (sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, addr, sizeof(addr));
		else if (sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, addr,
			    sizeof(addr));
		maillog_too_many_sessions(srv->ml, srv->nsess, addr);
		refuse(srv, fd, text, n < 0 ? 0 : (size_t)n);
		return;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if ((s = smtpd_sess_new(srv, fd, sa, salen)) == NULL) {
		log_warnx("smtpd: out of memory for a new session");
		static const char oom[] = "421 4.3.2 Error: out of memory\r\n";
		refuse(srv, fd, oom, sizeof(oom) - 1);
		return;
	}
	if (kind == SMTPD_LISTEN_SMTPS)
		s->flags |= SMTPD_F_SMTPS;
	else if (kind == SMTPD_LISTEN_SUBMISSION)
		s->flags |= SMTPD_F_SUBMISSION;
	/* SPEC §11.4: a PROXY header is read only from smtpd_proxy_networks */
	if (cfg->smtpd_proxy_protocol && cidr_list_match(cfg->smtpd_proxy_networks, sa) == 1)
		smtpd_sess_proxy_wait(s);
	else
		smtpd_sess_start(s);
}

/* accept_cb - a connection on smtp_listen */
static void
accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int salen,
    void *arg)
{
	(void)lev;
	smtpd_accept(arg, fd, sa, (socklen_t)salen, 0);
}

/* accept_smtps_cb - a connection on smtps_listen (implicit TLS) */
static void
accept_smtps_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int salen,
    void *arg)
{
	(void)lev;
	smtpd_accept(arg, fd, sa, (socklen_t)salen, SMTPD_LISTEN_SMTPS);
}

/* accept_submission_cb - a connection on submission_listen (STARTTLS, then AUTH) */
static void
accept_submission_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	(void)lev;
	smtpd_accept(arg, fd, sa, (socklen_t)salen, SMTPD_LISTEN_SUBMISSION);
}

/* relisten_cb - accept again after a pause for lack of descriptors */
static void
relisten_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd *srv = arg;

	(void)fd;
	(void)what;
	for (size_t i = 0; i < srv->nlev; i++)
		evconnlistener_enable(srv->lev[i]);
}

/* accept_error_cb - out of descriptors or memory: pause accepting for a second */
static void
accept_error_cb(struct evconnlistener *lev, void *arg)
{
	struct smtpd *srv = arg;
	int e = EVUTIL_SOCKET_ERROR();
	struct timeval tv = { 1, 0 };

	(void)lev;
	log_warnx("smtpd: accept: %s", strerror(e));
	if (e != EMFILE && e != ENFILE && e != ENOBUFS && e != ENOMEM)
		return;
	for (size_t i = 0; i < srv->nlev; i++)
		evconnlistener_disable(srv->lev[i]);
	evtimer_add(srv->ev_relisten, &tv);
}

/* listen_socket - bind and listen (IPv6 sockets are v6-only: [::] and 0.0.0.0 can coexist) */
static int
listen_socket(const struct listen_addr *la, char *err, size_t errlen)
{
	int fd, one = 1, saved;

	fd = socket(la->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto fail;
	if (la->ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, (const struct sockaddr *)&la->ss, la->len) < 0)
		goto fail;
	if (listen(fd, SMTPD_BACKLOG) < 0)
		goto fail;
	return fd;
fail:
	saved = errno;
	if (fd >= 0)
		close(fd);
	if (util_bsnprintf(err, errlen, "cannot listen on %s: %s", la->text, strerror(saved)) < 0)
		util_strlcpy(err, "cannot listen", errlen);
	return -1;
}

/* build_replies - the greeting, the EHLO keywords and the timeout of a configuration */
static int
build_replies(struct smtpd *srv, const struct config *cfg)
{
	char buf[1024];
	char *greeting = NULL, *ehlo = NULL, *ehlo_tls = NULL;
	int gn, en, tn;
	struct timeval tv = { cfg->smtpd_timeout ? (time_t)cfg->smtpd_timeout : 300, 0 };
	const struct timeval *ct;

	gn = util_bsnprintf(buf, sizeof(buf), "220 %s ESMTP mtad\r\n", cfg->hostname);
	if (gn < 0 || (greeting = strdup(buf)) == NULL)
		goto fail;
	/* RFC 5321 §4.1.1.1 */
	en = util_bsnprintf(buf, sizeof(buf), "250-%s\r\n250-PIPELINING\r\n250-SIZE %llu\r\n"
	    "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n",
	    cfg->hostname, (unsigned long long)cfg->message_size_limit);
	if (en < 0 || (ehlo = strdup(buf)) == NULL)
		goto fail;
	/* RFC 3207 §4: STARTTLS while TLS is configured and not yet active */
	tn = util_bsnprintf(buf, sizeof(buf), "250-%s\r\n250-PIPELINING\r\n250-SIZE %llu\r\n"
	    "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-STARTTLS\r\n"
	    "250 CHUNKING\r\n", cfg->hostname, (unsigned long long)cfg->message_size_limit);
	if (tn < 0 || (ehlo_tls = strdup(buf)) == NULL)
		goto fail;
	free(srv->greeting);
	free(srv->ehlo);
	free(srv->ehlo_starttls);
	srv->greeting = greeting;
	srv->greeting_len = (size_t)gn;
	srv->ehlo = ehlo;
	srv->ehlo_len = (size_t)en;
	srv->ehlo_starttls = ehlo_tls;
	srv->ehlo_starttls_len = (size_t)tn;
	ct = event_base_init_common_timeout(srv->base, &tv);
	srv->timeout = ct != NULL ? *ct : tv;
	return 0;
fail:
	free(greeting);
	free(ehlo);
	free(ehlo_tls);
	return -1;
}

/* raise_nofile - every session is a descriptor: use the hard limit */
static void
raise_nofile(const struct config *cfg)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warn("smtpd: cannot raise the descriptor limit");
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)cfg->smtpd_max_sessions + 64)
		log_warnx("smtpd: descriptor limit %llu is below smtpd_max_sessions %u",
		    (unsigned long long)rl.rlim_cur, cfg->smtpd_max_sessions);
}

/* add_listener - bind one address and accept on it with cb */
static int
add_listener(struct smtpd *srv, const struct listen_addr *la, evconnlistener_cb cb, char *err,
    size_t errlen)
{
	int fd;

	if (srv->nlev >= sizeof(srv->lev) / sizeof(srv->lev[0])) {
		util_strlcpy(err, "too many listeners", errlen);
		return -1;
	}
	if ((fd = listen_socket(la, err, errlen)) < 0)
		return -1;
	srv->lev[srv->nlev] = evconnlistener_new(srv->base, cb, srv,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE, 0, fd);
	if (srv->lev[srv->nlev] == NULL) {
		close(fd);
		if (util_bsnprintf(err, errlen, "cannot listen on %s: out of memory", la->text) < 0)
			util_strlcpy(err, "cannot listen", errlen);
		return -1;
	}
	evconnlistener_set_error_cb(srv->lev[srv->nlev], accept_error_cb);
	srv->nlev++;
	return 0;
}

/* smtpd_new - bind every smtp_listen address, start the disk guard; cfg borrowed */
struct smtpd *
smtpd_new(struct event_base *base, const struct config *cfg, struct queue *q,
    struct maillog *ml, struct metrics *m, char *err, size_t errlen)
{
	struct smtpd *srv;
	struct timeval period = { DISKGUARD_PERIOD_US / 1000000, 0 };

	if ((srv = calloc(1, sizeof(*srv))) == NULL) {
		util_strlcpy(err, "out of memory", errlen);
		return NULL;
	}
	srv->base = base;
	srv->cfg = cfg;
	srv->q = q;
	srv->ml = ml;
	srv->m = m;
	TAILQ_INIT(&srv->sessions);
	TAILQ_INIT(&srv->reap);
	LIST_INIT(&srv->commits);
	/* opened now: data_dir's parents may not be searchable once we run as mail_owner */
	if ((srv->disk = diskguard_new(cfg->data_dir)) == NULL)
		log_warn("smtpd: %s: cannot watch its free space", cfg->data_dir);
	srv->ev_reap = event_new(base, -1, 0, reap_cb, srv);
	srv->ev_disk = event_new(base, -1, EV_PERSIST, disk_cb, srv);
	srv->ev_relisten = evtimer_new(base, relisten_cb, srv);
	srv->ipt = map_new();
	if (srv->ev_reap == NULL || srv->ev_disk == NULL || srv->ev_relisten == NULL ||
	    srv->ipt == NULL || build_replies(srv, cfg) < 0) {
		util_strlcpy(err, "out of memory", errlen);
		goto fail;
	}
	raise_nofile(cfg);
	for (size_t i = 0; i < cfg->n_smtp_listen; i++)
		if (add_listener(srv, &cfg->smtp_listen[i], accept_cb, err, errlen) < 0)
			goto fail;
	/* SMTPS (RFC 8314 implicit TLS) only when TLS is on (SPEC §2.2) */
	for (size_t i = 0; !cfg->ssl_disabled && i < cfg->n_smtps_listen; i++)
		if (add_listener(srv, &cfg->smtps_listen[i], accept_smtps_cb, err, errlen) < 0)
			goto fail;
	for (size_t i = 0; !cfg->ssl_disabled && i < cfg->n_submission_listen; i++)
		if (add_listener(srv, &cfg->submission_listen[i], accept_submission_cb, err, errlen) < 0)
			goto fail;
	smtpd_disk_check(srv, 0);
	event_add(srv->ev_disk, &period);
	return srv;
fail:
	smtpd_free(srv);
	return NULL;
}

/* smtpd_set_config - SIGHUP: replies and limits of cfg from now on; listeners stay */
void
smtpd_set_config(struct smtpd *srv, const struct config *cfg)
{
	if (build_replies(srv, cfg) < 0)
		log_warnx("smtpd: out of memory: keeping the old greeting and EHLO reply");
	srv->cfg = cfg;
}

/* smtpd_set_tls - see smtpd.h */
void
smtpd_set_tls(struct smtpd *srv, struct ssl_ctx_st *ctx)
{
	if (ctx != NULL && SSL_CTX_up_ref(ctx) != 1) {
		log_warnx("smtpd: cannot take a reference to the new TLS context; keeping the old one");
		return;
	}
	SSL_CTX_free(srv->tls);
	srv->tls = ctx;
}

/*
 * smtpd_shutdown - close the listeners; sessions get 421 4.3.2 and close,
 * except those waiting for a commit, which get their 250 first.
 */
void
smtpd_shutdown(struct smtpd *srv, void (*done)(void *arg), void *arg)
{
	struct smtpd_sess *s, *next;

	srv->stopping = 1;
	srv->done = done;
	srv->done_arg = arg;
	for (size_t i = 0; i < srv->nlev; i++)
		evconnlistener_free(srv->lev[i]);
	srv->nlev = 0;
	event_del(srv->ev_relisten);
	for (s = TAILQ_FIRST(&srv->sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		smtpd_sess_shutdown(s);
	}
	smtpd_maybe_done(srv);
}

/* smtpd_free - close everything now (after smtpd_shutdown() normally); takes NULL */
struct smtpd *
smtpd_free(struct smtpd *srv)
{
	struct smtpd_sess *s;
	struct smtpd_commit *h;

	if (srv == NULL)
		return NULL;
	for (size_t i = 0; i < srv->nlev; i++)
		evconnlistener_free(srv->lev[i]);
	while ((s = TAILQ_FIRST(&srv->sessions)) != NULL)
		smtpd_sess_free(s);
	while ((s = TAILQ_FIRST(&srv->reap)) != NULL)
		smtpd_sess_free(s);
	while ((h = LIST_FIRST(&srv->commits)) != NULL) {
		/* the queue still calls back (queue_close): the handle frees itself then */
		LIST_REMOVE(h, entry);
		h->srv = NULL;
		h->sess = NULL;
	}
	srv->ipt = map_free_all(srv->ipt, free);
	if (srv->ev_reap != NULL)
		event_free(srv->ev_reap);
	if (srv->ev_disk != NULL)
		event_free(srv->ev_disk);
	if (srv->ev_relisten != NULL)
		event_free(srv->ev_relisten);
	srv->disk = diskguard_free(srv->disk);
	free(srv->greeting);
	free(srv->ehlo);
	free(srv->ehlo_starttls);
	SSL_CTX_free(srv->tls);
	smtpd_dkim_set(srv, NULL);
	smtpd_auth_server_free(srv);
	free(srv);
	return NULL;
}
