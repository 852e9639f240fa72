/*
 * sched_dest.c - destinations and their outbound connections: MX and
 * address walk, connection limits (destination_policy_file, the rate
 * limit's timer, the throttling feedback of sched_rate.c), connection
 * reuse (also after a refused transaction), idle close
 *
 * Owns:     struct sched_dest (in s->dests) with its queued jobs and its
 *           struct sched_conn, each with an smtpc connection, a DNS wait,
 *           an idle timer and the queue reader of the job it sends; the
 *           rate timer of a destination whose rate held a job back.
 * Lifetime: a destination lives while it has jobs or connections; it is
 *           freed from its own kick event (dest_run), never from inside a
 *           call that still uses it. A connection is freed by conn_free()
 *           from a callback of its own (smtpc, DNS, timer), after which the
 *           callback returns at once.
 * Errors:   connection and DNS trouble become job results (deferred or
 *           bounced) through sched_job_fail(); allocation failures defer.
 * Context:  event-loop thread.
 *
 * RFC 5321 §5.1: the MX hosts in preference order (src/dns/ shuffles equal
 * preferences), each host's addresses (AAAA then A) in order, the next one
 * after a connection failure or a refused greeting; no MX record: the
 * domain's own addresses. A connection that fails before it is ready holds
 * no job; when the last connection of a destination gives up, every job
 * waiting there gets its reason (Postfix's "dead destination"), so a burst
 * to a dead host costs one walk, not one per message.
 */
#include "sched/sched_int.h"
#include "lib/map.h"
#include "lib/log.h"
#include "lib/util.h"
#include "mail/config.h"
#include "queue/queue.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <event2/buffer.h>
#include <event2/event.h>

static void conn_route(struct sched_conn *cn);
static void conn_next(struct sched_conn *cn);
static void conn_on_ready(void *arg, struct smtpc *c);
static void conn_on_done(void *arg, struct smtpc *c, const struct smtpc_result *r);
static void conn_on_failed(void *arg, struct smtpc *c, const struct smtpc_reply *r);

static const struct smtpc_cb conn_cb = {
	.ready = conn_on_ready,
	.done = conn_on_done,
	.failed = conn_on_failed,
};

static const char *const conn_state_names[] = {
	[SC_MX] = "mx", [SC_ADDR] = "addr", [SC_CONNECT] = "connect",
	[SC_IDLE] = "idle", [SC_BUSY] = "busy",
};

/* conn_enter - the one place a connection changes state (traced) */
static void
conn_enter(struct sched_conn *cn, enum sched_conn_state st)
{
	log_trace(TRACE_SCHED, "sched: %s conn %p: %s -> %s", cn->d->key, (void *)cn,
	    conn_state_names[cn->st], conn_state_names[st]);
	cn->st = st;
}

/* dest_kick - run dest_run() on the next loop pass (hand out jobs, start connections, free) */
static void
dest_kick(struct sched_dest *d)
{
	event_active(d->kick, EV_TIMEOUT, 0);
}

/* dest_free - unlink from s->dests and free (no jobs, no connections left) */
static void
dest_free(struct sched_dest *d)
{
	log_trace(TRACE_SCHED, "sched: %s: destination freed", d->key);
	map_del(d->s->dests, d->key);
	event_free(d->kick);
	if (d->rate_timer != NULL)
		event_free(d->rate_timer);
	free(d);
}

/* dest_limit - connections d may have now (feedback-adjusted, at most the configured) */
static unsigned
dest_limit(const struct sched_dest *d)
{
	return d->fb.limit;
}

/* dest_on_rate - the rate limit lets the next job go: hand it out */
static void
dest_on_rate(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	dest_kick(arg);
}

/*
 * dest_rate_ready - 1 when a job may leave d now (no rate limit, or its
 * time has come); else 0, with a timer that kicks d when it may
 */
static int
dest_rate_ready(struct sched_dest *d)
{
	uint64_t wait;
	struct timeval tv;

	if ((wait = sched_rate_wait(&d->rate, util_mono_us())) == 0)
		return 1;
	if (d->rate_timer == NULL &&
	    (d->rate_timer = evtimer_new(d->s->base, dest_on_rate, d)) == NULL) {
		log_warnx("sched: %s: out of memory: rate limit not enforced", d->key);
		return 1;
	}
	if (!evtimer_pending(d->rate_timer, NULL)) {
		tv.tv_sec = (time_t)(wait / 1000000u);
		tv.tv_usec = (suseconds_t)(wait % 1000000u);
		evtimer_add(d->rate_timer, &tv);
	}
	return 0;
}

/*
 * dest_throttled - cn saw a throttling signal (why): the limit halves, once
 * per cohort of connections (sched_rate.c)
 */
static void
dest_throttled(struct sched_conn *cn, const struct smtpc_reply *why)
{
	struct sched_dest *d = cn->d;
	unsigned before = d->fb.limit;

	d->throttle_us = util_now_us();
	util_strlcpy(d->throttle_why, why->text, sizeof(d->throttle_why));
	if (sched_fb_throttle(&d->fb, cn->epoch, d->nconns))
		log_info("sched: %s: throttled by %s, concurrency %u -> %u: %s", d->key,
		    cn->relay, before, d->fb.limit, why->text);
}

/* conn_refused - a connect() that the peer refused (a full listen queue, a limit) */
static int
conn_refused(const struct smtpc_reply *r)
{
	return r->code == 0 && strstr(r->text, "Connection refused") != NULL;
}

/* conn_free - close and forget a connection; the job it holds must be gone */
static void
conn_free(struct sched_conn *cn)
{
	struct sched_dest *d = cn->d;
	struct sched *s = d->s;

	sched_dnsc_cancel(&cn->wait);
	cn->mxe = sched_dnsc_unref(cn->mxe);
	cn->ae = sched_dnsc_unref(cn->ae);
	if (cn->job != NULL) {
		sched_job_abandon(s, cn->job);
		cn->job = NULL;
	}
	if (cn->rd != NULL)
		cn->rd = queue_reader_close(cn->rd);
	if (cn->c != NULL)
		cn->c = smtpc_free(cn->c);
	if (cn->idle != NULL)
		event_free(cn->idle);
	if (cn->in_setup)
		d->nsetup--;
	TAILQ_REMOVE(&d->conns, cn, entry);
	d->nconns--;
	s->nconns--;
	free(cn);
	dest_kick(d);
	if (s->stopping)
		sched_ops_check_done(s);
}

/*
 * conn_quit - polite close: QUIT, then smtpc frees itself. While stopping,
 * close at once instead: the loop ends as soon as the scheduler is idle, and
 * a connection still waiting for its 221 then would be left behind.
 */
static void
conn_quit(struct sched_conn *cn)
{
	if (cn->c != NULL) {
		if (cn->d->s->stopping)
			cn->c = smtpc_free(cn->c);
		else
			smtpc_quit(cn->c);
		cn->c = NULL;
	}
	conn_free(cn);
}

/*
 * dest_fail_all - every job waiting at d gets why (the destination is dead
 * or does not exist). They go back to their messages at once.
 */
static void
dest_fail_all(struct sched_dest *d, const struct smtpc_reply *why, enum sched_class cls,
    const char *relay)
{
	struct sched_job *job;
	struct sched_attempt a;

	memset(&a, 0, sizeof(a));
	a.relay = relay;
	while ((job = TAILQ_FIRST(&d->jobs)) != NULL) {
		TAILQ_REMOVE(&d->jobs, job, entry);
		job->queued = 0;
		d->njobs--;
		sched_job_fail(d->s, job, &a, why, cls);
	}
}

/*
 * conn_give_up - no host or address of the destination worked. The reason
 * is the last one seen. Permanent DNS answers (NXDOMAIN, null MX, no
 * address anywhere) bounce for a recipient domain but defer for the smart
 * relay and cc_mta (a configuration problem is no reason to return mail).
 */
static void
conn_give_up(struct sched_conn *cn)
{
	struct sched_dest *d = cn->d;
	struct smtpc_reply why = cn->err;
	enum sched_class cls;
	int others = d->nconns > 1;

	if (why.code == 0 && why.text[0] == '\0') {
		util_strlcpy(why.dsn, "4.4.1", sizeof(why.dsn));
		util_strlcpy(why.text, "no route to the destination", sizeof(why.text));
	}
	if (cn->err_dns)
		cls = cn->dns_perm && d->nh.kind == SCHED_KIND_MX ? SCHED_PERM : SCHED_TEMP;
	else
		cls = sched_policy_classify(why.code);
	log_trace(TRACE_SCHED, "sched: %s: giving up (%s), %zu job(s) waiting", d->key,
	    why.text, d->njobs);
	/* Others still trying or working keep the queue; the last one, or a DNS verdict, ends it. */
	if (!others && cls == SCHED_TEMP)
		sched_dead_mark(d->s, d->key, &why);    /* the rest of its mail waits, untried */
	if (!others || (cn->err_dns && cls == SCHED_PERM))
		dest_fail_all(d, &why, cls, cn->err_dns || why.code == 0 ? NULL : cn->relay);
	else if (d->fb.limit > d->nconns - 1)
		d->fb.limit = d->nconns - 1 > 0 ? d->nconns - 1 : 1;
	conn_free(cn);
}

/* conn_set_err - remember a set-up failure that is ours (DNS, resources) */
static void
conn_set_err(struct sched_conn *cn, int dns, int perm, const char *dsn, const char *text)
{
	cn->err.code = perm ? 550 : 0;
	util_strlcpy(cn->err.dsn, dsn, sizeof(cn->err.dsn));
	util_strlcpy(cn->err.text, text, sizeof(cn->err.text));
	cn->err_dns = dns;
	if (!perm)
		cn->dns_perm = 0;
}

/* conn_dns_err - Postfix's wording for a failed look-up of name (type "MX" or "A") */
static void
conn_dns_err(struct sched_conn *cn, int perm, const char *dsn, const char *type,
    const char *name)
{
	char text[SMTPC_REPLY_MAX];

	if (util_bsnprintf(text, sizeof(text), "Host or domain name not found. Name service "
	    "error for name=%.255s type=%s: Host not found%s", name, type,
	    perm ? "" : ", try again") < 0)
		util_strlcpy(text, "Host or domain name not found", sizeof(text));
	conn_set_err(cn, 1, perm, dsn, text);
}

/* conn_host - the name of host i of the walk */
static const char *
conn_host(const struct sched_conn *cn, size_t i)
{
	struct sched_dnsc_ans ans;

	if (cn->mxe == NULL)
		return cn->d->nh.name;
	sched_dnsc_answer(cn->mxe, &ans);
	return ans.mx[i].host;
}

/* conn_connect - start smtpc on one address; failures come back to conn_on_failed */
static void
conn_connect(struct sched_conn *cn, const struct sockaddr_storage *ss, const char *host)
{
	struct sched_dest *d = cn->d;
	struct sched *s = d->s;
	struct smtpc_params p;
	char ip[INET6_ADDRSTRLEN], secret[SCHED_SECRET_MAX], why[SMTPC_REPLY_MAX];
	const void *a;

	memset(&p, 0, sizeof(p));
	p.addr = *ss;
	if (ss->ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&p.addr;
		sin6->sin6_port = htons((uint16_t)d->nh.port);
		p.addrlen = sizeof(*sin6);
		a = &sin6->sin6_addr;
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&p.addr;
		sin->sin_port = htons((uint16_t)d->nh.port);
		p.addrlen = sizeof(*sin);
		a = &sin->sin_addr;
	}
	if (inet_ntop(ss->ss_family, a, ip, sizeof(ip)) == NULL)
		util_strlcpy(ip, "?", sizeof(ip));
	if (util_bsnprintf(cn->relay, sizeof(cn->relay), "%s[%s]:%d", host, ip, d->nh.port) < 0)
		util_strlcpy(cn->relay, "?", sizeof(cn->relay));
	p.helo_name = s->cfg->hostname;
	p.peer_name = host;
	p.connect_timeout = s->cfg->smtp_connect_timeout > 0 ? s->cfg->smtp_connect_timeout : 30;
	p.cmd_timeout = 300;
	p.data_timeout = 600;
	sched_tls_params(s, d, cn->relay, &p);
	if (sched_relay_params(s, d, host, cn->relay, &p, secret, sizeof(secret), why,
	    sizeof(why)) < 0) {
		log_warnx("sched: %s: %s", cn->relay, why);
		cn->err.code = 0;
		util_strlcpy(cn->err.dsn, "4.7.8", sizeof(cn->err.dsn));
		util_strlcpy(cn->err.text, why, sizeof(cn->err.text));
		cn->err_dns = 0;
		cn->tries++;
		conn_route(cn);
		return;
	}
	cn->cur_addr = *ss;
	cn->cur_host = host;
	cn->tries++;
	cn->dns_perm = 0;
	conn_enter(cn, SC_CONNECT);
	log_trace(TRACE_SCHED, "sched: %s: connecting to %s", d->key, cn->relay);
	cn->c = smtpc_connect(s->base, &p, &conn_cb, cn);
	OPENSSL_cleanse(secret, sizeof(secret));    /* smtpc has its own copy */
	if (cn->c == NULL) {
		log_warnx("sched: cannot start a connection to %s", cn->relay);
		cn->err.code = 0;
		util_strlcpy(cn->err.dsn, "4.3.0", sizeof(cn->err.dsn));
		util_strlcpy(cn->err.text, "cannot start a connection: out of resources",
		    sizeof(cn->err.text));
		cn->err_dns = 0;
		conn_route(cn);
	}
}

/* conn_on_addr - a host's addresses: continue the walk */
static void
conn_on_addr(void *arg, struct sched_dnsc_ent *e)
{
	struct sched_conn *cn = arg;

	cn->ae = e;
	cn->ai = 0;
	conn_route(cn);
}

/* conn_have_mx - the MX answer decides the hosts to try, or the destination's fate */
static void
conn_have_mx(struct sched_conn *cn, struct sched_dnsc_ent *e)
{
	struct sched_dnsc_ans ans;
	const char *name = cn->d->nh.name;
	char text[SMTPC_REPLY_MAX];

	sched_dnsc_answer(e, &ans);
	switch (ans.st) {
	case DNS_OK:
		cn->mxe = e;
		cn->nhosts = ans.n;
		break;
	case DNS_NODATA:
		sched_dnsc_unref(e);
		cn->nhosts = 1;     /* RFC 5321 §5.1: the domain itself as the only host */
		break;
	case DNS_NXDOMAIN:
		sched_dnsc_unref(e);
		conn_dns_err(cn, 1, "5.1.2", "MX", name);
		conn_give_up(cn);
		return;
	case DNS_NULLMX:
		sched_dnsc_unref(e);
		if (util_bsnprintf(text, sizeof(text), "Domain %.255s does not accept mail "
		    "(null MX)", name) < 0)
			util_strlcpy(text, "Domain does not accept mail (null MX)", sizeof(text));
		conn_set_err(cn, 1, 1, "5.1.10", text);
		conn_give_up(cn);
		return;
	case DNS_TEMPFAIL:
	default:
		sched_dnsc_unref(e);
		conn_dns_err(cn, 0, "4.4.3", "MX", name);
		conn_give_up(cn);
		return;
	}
	conn_route(cn);
}

static void
conn_on_mx(void *arg, struct sched_dnsc_ent *e)
{
	conn_have_mx(arg, e);
}

/*
 * conn_route - the walk: MX answer, then host by host, address by address,
 * until a connection attempt is under way (or a look-up is awaited), or
 * nothing is left (conn_give_up). Re-entered after each failed attempt.
 */
static void
conn_route(struct sched_conn *cn)
{
	struct sched_dest *d = cn->d;
	struct sched *s = d->s;
	struct sched_dnsc_ent *e;
	struct sched_dnsc_ans ans;

	if (d->nh.literal) {
		if (cn->tries == 0)
			conn_connect(cn, &d->nh.addr, d->nh.name);
		else
			conn_give_up(cn);
		return;
	}
	if (cn->nhosts == 0) {
		if (d->nh.no_mx)
			cn->nhosts = 1;
		else {
			conn_enter(cn, SC_MX);
			e = sched_dnsc_lookup(s->dnsc, SCHED_DNSC_MX, d->nh.name, &cn->wait,
			    conn_on_mx, cn);
			if (e != NULL)
				conn_have_mx(cn, e);
			return;
		}
	}
	for (;;) {
		if (cn->hi >= cn->nhosts || cn->tries >= SCHED_MAX_ADDRS) {
			conn_give_up(cn);
			return;
		}
		if (cn->ae == NULL) {
			conn_enter(cn, SC_ADDR);
			e = sched_dnsc_lookup(s->dnsc, SCHED_DNSC_ADDR, conn_host(cn, cn->hi),
			    &cn->wait, conn_on_addr, cn);
			if (e == NULL)
				return;
			cn->ae = e;
			cn->ai = 0;
		}
		sched_dnsc_answer(cn->ae, &ans);
		if (ans.st != DNS_OK) {
			int perm = ans.st == DNS_NXDOMAIN || ans.st == DNS_NODATA;
			/*
			 * An earlier connection attempt's reason beats a DNS one,
			 * and a temporary one beats a permanent one.
			 */
			if ((cn->tries == 0 || cn->err_dns) && !(perm && !cn->dns_perm))
				conn_dns_err(cn, perm, perm ? "5.4.4" : "4.4.3", "A",
				    conn_host(cn, cn->hi));
			else if (!perm)
				cn->dns_perm = 0;
		} else if (cn->ai < ans.n) {
			conn_connect(cn, &ans.addrs[cn->ai++], conn_host(cn, cn->hi));
			return;
		}
		cn->ae = sched_dnsc_unref(cn->ae);
		cn->hi++;
	}
}

/* conn_start - a new connection for d; it takes a job when it is ready */
static int
conn_start(struct sched_dest *d)
{
	struct sched *s = d->s;
	struct sched_conn *cn;

	if ((cn = calloc(1, sizeof(*cn))) == NULL) {
		log_warn("sched: %s: new connection", d->key);
		return -1;
	}
	cn->d = d;
	cn->st = SC_MX;
	cn->dns_perm = 1;
	cn->in_setup = 1;
	cn->epoch = d->fb.epoch;
	cn->setup_start_us = util_mono_us();
	TAILQ_INSERT_TAIL(&d->conns, cn, entry);
	d->nconns++;
	d->nsetup++;
	s->nconns++;
	conn_route(cn);
	return 0;
}

/* conn_on_idle - nothing came for SCHED_IDLE_SECONDS: QUIT */
static void
conn_on_idle(evutil_socket_t fd, short what, void *arg)
{
	struct sched_conn *cn = arg;

	(void)fd;
	(void)what;
	log_trace(TRACE_SCHED, "sched: %s: closing idle connection to %s", cn->d->key, cn->relay);
	conn_quit(cn);
}

/* conn_attempt - the log facts of the job cn has just finished */
static void
conn_attempt(struct sched_conn *cn, struct sched_attempt *a)
{
	uint64_t now = util_mono_us();

	a->relay = cn->relay;
	a->start_us = cn->job_start_us;
	a->setup_s = cn->ntxn == 0 ? (double)cn->setup_us / 1e6 : 0;
	a->xfer_s = now > cn->txn_start_us ? (double)(now - cn->txn_start_us) / 1e6 : 0;
}

/* conn_read - the content source smtpc reads: the queue file as delivered */
static ssize_t
conn_read(void *arg, void *buf, size_t len)
{
	return queue_reader_read(arg, buf, len);
}

#define SCHED_WIRE_MIN (64 * 1024)    /* smaller contents are copied, not sent with sendfile */

/* A content's file ranges collected into one evbuffer by reference. */
struct conn_wire_job {
	struct evbuffer *buf;
	struct evbuffer_file_segment *seg;
};

/* conn_wire_range - one range of the queue file, by reference */
static int
conn_wire_range(void *arg, uint64_t off, uint64_t len)
{
	struct conn_wire_job *w = arg;

	return evbuffer_add_file_segment(w->buf, w->seg, (ev_off_t)off, (ev_off_t)len);
}

/*
 * conn_wire - the content source's wire(): a content stored as it goes on
 * the wire (QUEUE_F_WIRE) is added to out as segments of the queue file,
 * which libevent sends with sendfile(2). The segment holds its own
 * descriptor (a dup, closed when the last byte is sent or the connection
 * is freed), so it never outlives or confuses the reader's. All or
 * nothing: the ranges are collected in a buffer of their own first.
 */
static int
conn_wire(void *arg, struct evbuffer *out)
{
	struct queue_reader *rd = arg;
	struct conn_wire_job w = { NULL, NULL };
	int fd, rc = -1;

	if ((fd = dup(queue_reader_fd(rd))) < 0)
		return -1;
	w.seg = evbuffer_file_segment_new(fd, 0, -1, EVBUF_FS_CLOSE_ON_FREE | EVBUF_FS_DISABLE_LOCKING);
	if (w.seg == NULL) {
		close(fd);
		return -1;
	}
	/* DRAINS_TO_FD, as on the socket's own buffer: segments stay sendfile
	 * chains (on a plain evbuffer libevent would map or read them in) */
	if ((w.buf = evbuffer_new()) != NULL &&
	    evbuffer_set_flags(w.buf, EVBUFFER_FLAG_DRAINS_TO_FD) == 0 &&
	    queue_reader_ranges(rd, conn_wire_range, &w) == 0 &&
	    evbuffer_add_buffer(out, w.buf) == 0)
		rc = 0;
	if (w.buf != NULL)
		evbuffer_free(w.buf);
	evbuffer_file_segment_free(w.seg);   /* the chains in out keep their references */
	return rc;
}

/*
 * conn_send - start the transaction of cn->job: the message's content
 * through a queue reader, the job's recipients. 0 when under way; when it
 * cannot start the job is deferred and taken off cn, and -1 says the
 * connection is still usable, -2 that it is not.
 */
static int
conn_send(struct sched_conn *cn)
{
	struct sched_dest *d = cn->d;
	struct sched *s = d->s;
	struct sched_job *job = cn->job;
	struct queue_msg *m = job->sm->m;
	struct smtpc_txn t;
	struct smtpc_reply why;
	struct sched_attempt a;
	int rc = -1;

	memset(&why, 0, sizeof(why));
	if ((cn->rd = queue_reader_open(s->q, m)) == NULL) {
		log_warn("%s: cannot open the queue file", m->id);
		util_strlcpy(why.dsn, "4.3.0", sizeof(why.dsn));
		util_strlcpy(why.text, "cannot read the queued message", sizeof(why.text));
		goto fail;
	}
	memset(&t, 0, sizeof(t));
	t.sender = m->sender;
	t.rcpts = job->rcpts;
	t.nrcpt = job->n;
	t.size = m->size;
	t.need_8bit = (m->flags & QUEUE_F_8BITMIME) != 0;
	t.smtputf8 = (m->flags & QUEUE_F_SMTPUTF8) != 0;
	t.content.read = conn_read;
	/*
	 * sendfile only pays for big contents: a small one would go out as
	 * three writes (prepend, content, ".") that Nagle's algorithm holds
	 * back behind delayed ACKs, where one copy through the buffer is cheap.
	 */
	t.content.wire = (m->flags & QUEUE_F_WIRE) && m->size >= SCHED_WIRE_MIN ? conn_wire : NULL;
	t.content.arg = cn->rd;
	cn->txn_start_us = util_mono_us();
	cn->job_start_us = util_now_us();
	if (smtpc_send(cn->c, &t) < 0) {
		util_strlcpy(why.dsn, "4.3.0", sizeof(why.dsn));
		util_strlcpy(why.text, "cannot start the SMTP transaction", sizeof(why.text));
		rc = -2;
		goto fail;
	}
	conn_enter(cn, SC_BUSY);
	return 0;
fail:
	if (cn->rd != NULL)
		cn->rd = queue_reader_close(cn->rd);
	cn->job = NULL;
	conn_attempt(cn, &a);
	sched_job_fail(s, job, &a, &why, SCHED_TEMP);
	return rc;
}

/*
 * conn_next - a ready connection takes the next waiting job (connection
 * reuse), goes idle, or is closed (shutdown, reuse limits). Jobs that
 * cannot start are deferred and the next one is tried.
 */
static void
conn_next(struct sched_conn *cn)
{
	struct sched_dest *d = cn->d;
	struct sched *s = d->s;
	struct sched_job *job;
	struct timeval tv = { SCHED_IDLE_SECONDS, 0 };
	int rc;

	if (s->stopping || cn->ntxn >= SCHED_REUSE_MAX || d->nconns > dest_limit(d) ||
	    util_mono_us() - cn->opened_us > (uint64_t)SCHED_REUSE_SECONDS * 1000000u) {
		conn_quit(cn);
		return;
	}
	while ((job = TAILQ_FIRST(&d->jobs)) != NULL) {
		if (d->rate.interval_us != 0) {
			if (!dest_rate_ready(d))
				break;
			sched_rate_take(&d->rate, util_mono_us());
		}
		TAILQ_REMOVE(&d->jobs, job, entry);
		job->queued = 0;
		d->njobs--;
		if (cn->idle != NULL)
			event_del(cn->idle);
		cn->job = job;
		rc = conn_send(cn);
		if (rc == 0)
			return;
		if (rc == -2) {
			conn_free(cn);
			return;
		}
	}
	conn_enter(cn, SC_IDLE);
	if (cn->idle == NULL && (cn->idle = evtimer_new(s->base, conn_on_idle, cn)) == NULL) {
		conn_quit(cn);
		return;
	}
	evtimer_add(cn->idle, &tv);
	if (d->njobs == 0)
		dest_kick(d);   /* maybe nothing is left: let the destination go */
}

static void
conn_on_ready(void *arg, struct smtpc *c)
{
	struct sched_conn *cn = arg;
	struct sched_dest *d = cn->d;

	(void)c;
	cn->in_setup = 0;
	d->nsetup--;
	cn->opened_us = util_mono_us();
	cn->setup_us = cn->opened_us - cn->setup_start_us;
	cn->ae = sched_dnsc_unref(cn->ae);
	cn->mxe = sched_dnsc_unref(cn->mxe);
	sched_fb_connected(&d->fb);
	log_trace(TRACE_SCHED, "sched: %s: connected to %s", d->key, cn->relay);
	sched_dead_clear(d->s, d->key);
	conn_next(cn);
	if (d->njobs > d->nsetup)
		dest_kick(d);   /* a larger cap may allow another connection */
}

/*
 * dest_requeue - a job refused by throttling waits at d again, first in
 * line, instead of going to the retry schedule; -1 when it has come back
 * SCHED_REQUEUE_MAX times already (then it is deferred as usual)
 */
static int
dest_requeue(struct sched_dest *d, struct sched_job *job)
{
	if (job->requeued >= SCHED_REQUEUE_MAX || d->s->stopping)
		return -1;
	job->requeued++;
	job->queued = 1;
	TAILQ_INSERT_HEAD(&d->jobs, job, entry);
	d->njobs++;
	dest_kick(d);
	return 0;
}

/* conn_txn_throttled - a refused transaction's reply that asks to slow down, or NULL */
static const struct smtpc_reply *
conn_txn_throttled(const struct smtpc_result *r)
{
	if (sched_rate_throttle_reply(&r->mail))
		return &r->mail;
	for (size_t i = 0; i < r->nrcpt; i++)
		if (sched_rate_throttle_reply(&r->rcpt[i]))
			return &r->rcpt[i];
	return NULL;
}

/*
 * conn_on_done - a transaction finished: its result goes to sched.c, a
 * success feeds the concurrency back up, a throttling reply halves it.
 * After a refused transaction smtpc has ended it (a refused MAIL leaves
 * none; otherwise RSET, or the end-of-data reply): the connection is
 * reused unless the RSET itself was refused.
 */
static void
conn_on_done(void *arg, struct smtpc *c, const struct smtpc_result *r)
{
	struct sched_conn *cn = arg;
	struct sched_dest *d = cn->d;
	struct sched_job *job = cn->job;
	const struct smtpc_reply *thr;
	struct sched_attempt a;

	(void)c;
	cn->job = NULL;
	if (cn->rd != NULL)
		cn->rd = queue_reader_close(cn->rd);
	conn_attempt(cn, &a);
	cn->ntxn++;
	if (sched_policy_classify(r->mail.code) == SCHED_OK &&
	    sched_policy_classify(r->data.code) == SCHED_OK) {
		d->delivered++;
		if (d->fb.throttled && sched_fb_success(&d->fb)) {
			if (!d->fb.throttled)
				log_info("sched: %s: concurrency back to %u", d->key, d->fb.limit);
			if (d->njobs > d->nsetup)
				dest_kick(d);   /* one more connection is allowed */
		}
	} else if ((thr = conn_txn_throttled(r)) != NULL) {
		dest_throttled(cn, thr);
		/* MAIL refused by the throttle: nobody got it, the whole job waits again */
		if (job != NULL && thr == &r->mail && dest_requeue(d, job) == 0)
			job = NULL;
	}
	if (job != NULL)
		sched_job_result(d->s, job, &a, r);
	if (r->rset != 0 && sched_policy_classify(r->rset) != SCHED_OK) {
		conn_quit(cn);
		return;
	}
	conn_next(cn);
}

/*
 * conn_on_failed - the session is unusable. Before it was ready: try the
 * next address. During a transaction: that job gets the reason (a network
 * failure or 421 defers). Idle: just forget it.
 */
static void
conn_on_failed(void *arg, struct smtpc *c, const struct smtpc_reply *r)
{
	struct sched_conn *cn = arg;
	struct sched *s = cn->d->s;
	struct sched_job *job;
	struct sched_attempt a;
	struct smtpc_reply why = *r;    /* r lives in the session freed next */
	int tls_failed = smtpc_tls(c) == SMTPC_TLS_FAILED;

	cn->c = smtpc_free(cn->c);
	switch (cn->st) {
	case SC_CONNECT:
		/* TLS handshake failed before any mail: the same address, in the clear */
		if (tls_failed && !cn->tls_retried &&
		    sched_tls_fallback(s, cn->d, cn->relay, why.text)) {
			cn->tls_retried = 1;
			conn_connect(cn, &cn->cur_addr, cn->cur_host);
			return;
		}
		cn->tls_retried = 0;
		log_trace(TRACE_SCHED, "sched: %s: %s: %s", cn->d->key, cn->relay, why.text);
		if (sched_rate_throttle_reply(&why) || conn_refused(&why))
			dest_throttled(cn, &why);
		cn->err = why;
		cn->err_dns = 0;
		if (why.code != 0 && strstr(why.text, " said: ") == NULL &&
		    util_bsnprintf(cn->err.text, sizeof(cn->err.text), "host %s said: %s",
		    cn->relay, why.text) < 0)
			cn->err = why;
		conn_route(cn);
		return;
	case SC_BUSY:
		job = cn->job;
		cn->job = NULL;
		if (cn->rd != NULL)
			cn->rd = queue_reader_close(cn->rd);
		conn_attempt(cn, &a);
		if (sched_rate_throttle_reply(&why)) {
			dest_throttled(cn, &why);
			if (job != NULL && dest_requeue(cn->d, job) == 0)
				job = NULL;
		}
		if (job != NULL)
			sched_job_fail(s, job, &a, &why, sched_policy_classify(why.code) == SCHED_PERM ?
			    SCHED_PERM : SCHED_TEMP);
		conn_free(cn);
		return;
	default:
		conn_free(cn);
		return;
	}
}

/*
 * dest_run - the destination's kick event: idle connections take waiting
 * jobs first, then new connections start while jobs outnumber the
 * connections being set up, up to the limit; an empty destination goes.
 */
static void
dest_run(evutil_socket_t fd, short what, void *arg)
{
	struct sched_dest *d = arg;
	struct sched *s = d->s;

	(void)fd;
	(void)what;
	if (!s->stopping) {
		while (d->njobs > 0) {
			struct sched_conn *cn;
			if (d->rate.interval_us != 0 && !dest_rate_ready(d))
				break;
			TAILQ_FOREACH(cn, &d->conns, entry)
				if (cn->st == SC_IDLE)
					break;
			if (cn == NULL)
				break;
			conn_next(cn);
		}
		/* rate-limited: one connection in set-up at a time, and only when a job may go */
		while (d->njobs > d->nsetup && d->nconns < dest_limit(d) &&
		    (d->rate.interval_us == 0 || (d->nsetup == 0 && dest_rate_ready(d))))
			if (conn_start(d) < 0)
				break;
	}
	if (d->njobs == 0 && d->nconns == 0)
		dest_free(d);
}

/*
 * dest_apply_limits - the destination's concurrency and rate from
 * destination_policy_file (its domain's line) or the defaults; fresh: a
 * new destination starts its slow start, else the running limit is capped
 */
static void
dest_apply_limits(struct sched_dest *d, int fresh)
{
	struct sched *s = d->s;
	const struct dest_policy_rule *r = dest_policy_lookup(s->policy, d->nh.name);
	unsigned conc = s->cfg->destination_concurrency;
	struct dest_rate rate = s->rate_default;

	if (r != NULL) {
		if (r->concurrency > 0)
			conc = r->concurrency;
		if (r->has_rate)
			rate = r->rate;
	}
	if (fresh)
		sched_fb_init(&d->fb, conc, SCHED_INIT_CONCURRENCY);
	else
		sched_fb_set_max(&d->fb, conc);
	d->rate_cfg = rate;
	sched_rate_set(&d->rate, rate.n, rate.per_s);
}

/* sched_dest_get - the destination for key, created on first use; NULL when out of memory */
struct sched_dest *
sched_dest_get(struct sched *s, const struct sched_nexthop *nh, const char *key)
{
	struct sched_dest *d = map_get(s->dests, key);

	if (d != NULL)
		return d;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	d->s = s;
	util_strlcpy(d->key, key, sizeof(d->key));
	d->nh = *nh;
	TAILQ_INIT(&d->jobs);
	TAILQ_INIT(&d->conns);
	dest_apply_limits(d, 1);
	if ((d->kick = event_new(s->base, -1, 0, dest_run, d)) == NULL)
		goto fail;
	if (map_put(s->dests, d->key, d) < 0)
		goto fail;
	log_trace(TRACE_SCHED, "sched: %s: new destination", d->key);
	return d;
fail:
	if (d->kick != NULL)
		event_free(d->kick);
	free(d);
	return NULL;
}

/*
 * dest_rate_defer - a rate-limited destination with more waiting than it
 * may send within retry_min_backoff: the job is deferred (4.7.0, the usual
 * backoff) instead of waiting, so that a slow destination cannot hold the
 * scheduler's active messages (SCHED_ACTIVE_MAX) for hours. 1 when deferred.
 */
static int
dest_rate_defer(struct sched_dest *d, struct sched_job *job)
{
	struct smtpc_reply why;
	struct sched_attempt a;
	char rate[32];

	if ((uint64_t)d->njobs * d->rate.interval_us <=
	    (uint64_t)d->s->cfg->retry_min_backoff * 1000000u)
		return 0;
	memset(&why, 0, sizeof(why));
	memset(&a, 0, sizeof(a));
	util_strlcpy(why.dsn, "4.7.0", sizeof(why.dsn));
	if (dest_rate_format(&d->rate_cfg, rate, sizeof(rate)) < 0)
		util_strlcpy(rate, "?", sizeof(rate));
	if (util_bsnprintf(why.text, sizeof(why.text), "delivery deferred: destination rate "
	    "limit %s reached (%zu messages waiting)", rate, d->njobs) < 0)
		util_strlcpy(why.text, "delivery deferred: destination rate limit reached",
		    sizeof(why.text));
	job->d = d;
	sched_job_fail(d->s, job, &a, &why, SCHED_TEMP);    /* never the last: dispatch guards it */
	return 1;
}

/* sched_dest_enqueue - a job waits at d; the destination runs on the next pass */
void
sched_dest_enqueue(struct sched_dest *d, struct sched_job *job)
{
	if (d->rate.interval_us != 0 && dest_rate_defer(d, job)) {
		if (d->njobs == 0 && d->nconns == 0)
			dest_kick(d);   /* let it go */
		return;
	}
	job->d = d;
	job->queued = 1;
	TAILQ_INSERT_TAIL(&d->jobs, job, entry);
	d->njobs++;
	dest_kick(d);
}

/* Destinations collected from the map, so that the walk may change it. */
struct dest_list {
	struct sched_dest **v;
	size_t n, cap;
};

static int
dest_collect(void *arg, void *val)
{
	struct dest_list *l = arg;

	if (l->n < l->cap)
		l->v[l->n++] = val;
	return 0;
}

static int
dest_list_get(struct sched *s, struct dest_list *l)
{
	l->n = 0;
	l->cap = map_count(s->dests);
	l->v = NULL;
	if (l->cap == 0)
		return 0;
	if ((l->v = calloc(l->cap, sizeof(*l->v))) == NULL)
		return -1;
	map_sweep(s->dests, dest_collect, l);
	return 0;
}

/* dest_abandon_jobs - queued jobs go back to their messages untouched */
static void
dest_abandon_jobs(struct sched_dest *d)
{
	struct sched_job *job;

	while ((job = TAILQ_FIRST(&d->jobs)) != NULL) {
		TAILQ_REMOVE(&d->jobs, job, entry);
		job->queued = 0;
		d->njobs--;
		sched_job_abandon(d->s, job);
	}
}

/*
 * sched_dest_stop_all - shutdown: waiting jobs are abandoned (their
 * recipients stay pending on disk), idle connections QUIT, set-ups stop;
 * running transactions may finish (then their connections QUIT).
 */
void
sched_dest_stop_all(struct sched *s)
{
	struct dest_list l;

	if (dest_list_get(s, &l) < 0) {
		sched_dest_abandon_all(s);
		return;
	}
	for (size_t i = 0; i < l.n; i++) {
		struct sched_dest *d = l.v[i];
		struct sched_conn *cn, *next;

		dest_abandon_jobs(d);
		for (cn = TAILQ_FIRST(&d->conns); cn != NULL; cn = next) {
			next = TAILQ_NEXT(cn, entry);
			if (cn->st == SC_IDLE)
				conn_quit(cn);
			else if (cn->st != SC_BUSY)
				conn_free(cn);
		}
	}
	free(l.v);
}

/* sched_dest_abandon_all - every connection closed at once, every job abandoned */
void
sched_dest_abandon_all(struct sched *s)
{
	struct dest_list l;

	if (dest_list_get(s, &l) < 0) {
		log_warnx("sched: out of memory while stopping");
		return;
	}
	for (size_t i = 0; i < l.n; i++) {
		struct sched_dest *d = l.v[i];

		dest_abandon_jobs(d);
		while (!TAILQ_EMPTY(&d->conns))
			conn_free(TAILQ_FIRST(&d->conns));
	}
	free(l.v);
}

static int
dest_free_cb(void *arg, void *val)
{
	struct sched_dest *d = val;

	(void)arg;
	event_free(d->kick);
	if (d->rate_timer != NULL)
		event_free(d->rate_timer);
	free(d);
	return 1;
}

/* sched_dest_free_all - sched_free: the destinations themselves (already emptied) */
void
sched_dest_free_all(struct sched *s)
{
	map_sweep(s->dests, dest_free_cb, NULL);
	sched_tls_free(s);      /* TLS state goes with the destinations (sched_tls.c) */
}

/* sched_dest_unqueue_msg - operator delete: sm's waiting jobs are taken back (running ones finish) */
void
sched_dest_unqueue_msg(struct sched *s, struct sched_msg *sm)
{
	struct sched_job *job, *next;

	for (job = TAILQ_FIRST(&sm->jobs); job != NULL; job = next) {
		next = TAILQ_NEXT(job, mentry);
		if (!job->queued)
			continue;
		TAILQ_REMOVE(&job->d->jobs, job, entry);
		job->queued = 0;
		job->d->njobs--;
		dest_kick(job->d);
		sched_job_abandon(s, job);
	}
}

static int
dest_limits_cb(void *arg, void *val)
{
	struct sched_dest *d = val;

	(void)arg;
	dest_apply_limits(d, 0);
	dest_kick(d);
	return 0;
}

/* sched_dest_limits_load - see sched_int.h */
int
sched_dest_limits_load(struct sched *s, const struct config *cfg, char *err, size_t errlen)
{
	struct dest_policy *p = NULL;
	struct dest_rate rate;
	char why[160];

	if (dest_rate_parse(cfg->destination_rate_limit, &rate, why, sizeof(why)) < 0) {
		if (util_bsnprintf(err, errlen, "destination_rate_limit: %s", why) < 0)
			util_strlcpy(err, "destination_rate_limit: bad value", errlen);
		return -1;
	}
	if (cfg->destination_policy_file[0] != '\0' &&
	    (p = dest_policy_read(cfg, err, errlen)) == NULL)
		return -1;
	dest_policy_free(s->policy);
	s->policy = p;
	s->rate_default = rate;
	if (s->dests != NULL)
		map_sweep(s->dests, dest_limits_cb, NULL);
	if (p != NULL)
		log_info("destination_policy_file: %zu domain(s) from %s", p->n,
		    cfg->destination_policy_file);
	return 0;
}

/* sched_dest_limits_free - see sched_int.h */
void
sched_dest_limits_free(struct sched *s)
{
	s->policy = dest_policy_free(s->policy);
}

/* dest_load - how busy d is, for sched_dest_list's order */
static size_t
dest_load(const struct sched_dest *d)
{
	return d->njobs + d->nconns;
}

static int
dest_load_cmp(const void *a, const void *b)
{
	size_t x = dest_load(*(struct sched_dest *const *)a);
	size_t y = dest_load(*(struct sched_dest *const *)b);

	return x > y ? -1 : x < y;
}

/* sched_dest_list - see sched.h */
size_t
sched_dest_list(struct sched *s, struct sched_dest_info *v, size_t max, size_t *total)
{
	static const char *const kinds[] = { "mx", "relay", "cc", "drain" };
	struct dest_list l;
	size_t n = 0;

	*total = 0;
	if (s == NULL || s->dests == NULL || dest_list_get(s, &l) < 0)
		return 0;
	*total = l.n;
	if (l.n > 1)
		qsort(l.v, l.n, sizeof(*l.v), dest_load_cmp);
	for (size_t i = 0; i < l.n && n < max; i++, n++) {
		const struct sched_dest *d = l.v[i];
		struct sched_dest_info *o = &v[n];
		const struct sched_conn *cn;

		memset(o, 0, sizeof(*o));
		util_strlcpy(o->name, d->nh.name, sizeof(o->name));
		o->kind = (size_t)d->nh.kind < sizeof(kinds) / sizeof(kinds[0]) ?
		    kinds[d->nh.kind] : "mx";
		o->port = d->nh.port;
		o->limit = d->fb.limit;
		o->max = d->fb.max;
		o->conns = d->nconns;
		TAILQ_FOREACH(cn, &d->conns, entry)
			if (cn->st == SC_BUSY)
				o->busy++;
		o->queued = d->njobs;
		if (dest_rate_format(&d->rate_cfg, o->rate, sizeof(o->rate)) < 0)
			o->rate[0] = '\0';
		o->throttled = d->fb.throttled;
		o->halvings = d->fb.halvings;
		o->delivered = d->delivered;
		o->throttle_us = d->throttle_us;
		util_strlcpy(o->throttle_why, d->throttle_why, sizeof(o->throttle_why));
	}
	free(l.v);
	return n;
}
