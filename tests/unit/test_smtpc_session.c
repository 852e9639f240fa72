/*
 * test_smtpc_session.c - the outbound SMTP client (src/smtpc/smtpc.c)
 *                        against a scripted in-process server on loopback
 *
 * Owns:     per test: an event base, a listener on 127.0.0.1:0, the
 *           server's connection, the client session.
 * Lifetime: one test each; every loop has a 10 s deadline.
 * Errors:   each failing check prints "got X, want Y" and fails its test.
 * Context:  one thread: server and client share the event loop.
 *
 * The server follows a script: one row per expected client line (matched
 * as a prefix; "<CONNECT>" is the greeting, "<DATA>" the end of the
 * content) with the raw reply to send, or an action (close, hang). It
 * records every line with the number of the read that brought it, so a
 * test can tell pipelined commands (one read) from lock-step ones.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "smtpc/smtpc.h"
#include "smtpc/smtpc_int.h"

enum srv_action {
	SRV_REPLY,        /* send reply */
	SRV_CLOSE,        /* close the connection instead */
	SRV_HANG,         /* never answer */
	SRV_DATA,         /* send reply (354), then collect content until "." */
	SRV_PAUSE_DATA,   /* as SRV_DATA, but stop reading for 300 ms first */
};

struct srv_step {
	const char     *expect;
	enum srv_action action;
	const char     *reply;
};

struct txn_spec {
	const char *sender;
	const char *rcpts[4];
	size_t      nrcpt;
	uint64_t    size;
	int         need_8bit;
	int         smtputf8;
	const char *content;       /* NULL: generated (gen_bytes) */
	size_t      chunk;         /* reader chunk size */
};

struct result {
	int  mail, rcpt[4], data;
	char mail_dsn[12], rcpt_dsn[4][12], data_dsn[12];
	char data_text[SMTPC_REPLY_MAX];
};

struct h {
	struct event_base *base;
	struct evconnlistener *lis;
	int port;
	/* server */
	const struct srv_step *script;
	size_t nscript, pos;
	struct bufferevent *sbev;
	int in_data;
	struct evbuffer *data;     /* raw content as received (dot-stuffed) */
	uint64_t data_bytes;
	char log[16384];
	int batch;
	int script_errors;
	struct event *pause_ev;
	/* client */
	struct smtpc *c;
	const struct txn_spec *txns;
	size_t ntxn, txpos;
	int quit_after;
	int nready, ndone, nfailed;
	struct smtpc_reply fail;
	struct result res[4];
	int ext_pipelining, ext_8bit, ext_size, ext_starttls;
	/* content reader */
	const char *content;
	size_t content_len, content_pos, chunk;
	uint64_t gen_bytes, gen_pos;
	uint64_t max_ahead;        /* most content read beyond what the server got */
	int free_in_failed;
	int keep_after_done;       /* neither quit nor free after the last done() */
	int order[8], norder;      /* 1 = done, 2 = failed, in the order they came */
	int timed_out;
	char got[8192];            /* the start of h->data, kept after run() */
	size_t gotlen;
};

/* ---- server ------------------------------------------------------------ */

static void srv_step_run(struct h *h, const char *line);

static void
srv_log(struct h *h, const char *line)
{
	size_t l = strlen(h->log);

	(void)snprintf(h->log + l, sizeof(h->log) - l, "%s%d:%s", l ? "|" : "", h->batch, line);
}

static void
srv_send(struct h *h, const char *s)
{
	if (h->sbev != NULL && s != NULL)
		(void)evbuffer_add(bufferevent_get_output(h->sbev), s, strlen(s));
}

static void
srv_resume(evutil_socket_t fd, short what, void *arg)
{
	struct h *h = arg;

	(void)fd;
	(void)what;
	if (h->sbev != NULL)
		bufferevent_enable(h->sbev, EV_READ);
}

static void
srv_close(struct h *h)
{
	if (h->sbev != NULL)
		bufferevent_free(h->sbev);
	h->sbev = NULL;
}

/* srv_step_run - the client sent line: check it against the script, act */
static void
srv_step_run(struct h *h, const char *line)
{
	const struct srv_step *s;

	if (h->pos >= h->nscript) {
		printf("server: unexpected line \"%s\" after the script\n", line);
		h->script_errors++;
		return;
	}
	s = &h->script[h->pos++];
	if (strncmp(line, s->expect, strlen(s->expect)) != 0) {
		printf("server: got \"%s\", want \"%s\"\n", line, s->expect);
		h->script_errors++;
	}
	switch (s->action) {
	case SRV_REPLY:
		srv_send(h, s->reply);
		break;
	case SRV_CLOSE:
		srv_close(h);
		break;
	case SRV_HANG:
		break;
	case SRV_DATA:
	case SRV_PAUSE_DATA:
		srv_send(h, s->reply);
		h->in_data = 1;
		if (s->action == SRV_PAUSE_DATA) {
			struct timeval tv = { 0, 300000 };

			bufferevent_disable(h->sbev, EV_READ);
			h->pause_ev = evtimer_new(h->base, srv_resume, h);
			evtimer_add(h->pause_ev, &tv);
		}
		break;
	}
}

static void
srv_read(struct bufferevent *bev, void *arg)
{
	struct h *h = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	h->batch++;
	while (h->sbev != NULL) {
		size_t len;
		char *line;

		if (h->in_data) {
			/* content: line by line until "." */
			line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF_STRICT);
			if (line == NULL)
				return;
			if (len == 1 && line[0] == '.') {
				h->in_data = 0;
				srv_log(h, "<DATA>");
				srv_step_run(h, "<DATA>");
			} else {
				h->data_bytes += len + 2;
				if (h->data_bytes < 1024 * 1024) {
					evbuffer_add(h->data, line, len);
					evbuffer_add(h->data, "\r\n", 2);
				}
			}
			free(line);
			continue;
		}
		line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF_STRICT);
		if (line == NULL)
			return;
		srv_log(h, line);
		srv_step_run(h, line);
		free(line);
	}
}

static void
srv_event(struct bufferevent *bev, short what, void *arg)
{
	struct h *h = arg;

	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		srv_close(h);
}

static void
srv_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
    void *arg)
{
	struct h *h = arg;

	(void)l;
	(void)sa;
	(void)salen;
	h->sbev = bufferevent_socket_new(h->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(h->sbev, srv_read, NULL, srv_event, h);
	bufferevent_enable(h->sbev, EV_READ | EV_WRITE);
	srv_step_run(h, "<CONNECT>");
}

/* ---- client -------------------------------------------------------------- */

static ssize_t
h_read(void *src, void *buf, size_t len)
{
	struct h *h = src;
	size_t n;

	if (h->content != NULL) {
		n = h->content_len - h->content_pos;
		if (n > h->chunk)
			n = h->chunk;
		if (n > len)
			n = len;
		memcpy(buf, h->content + h->content_pos, n);
		h->content_pos += n;
		return (ssize_t)n;
	}
	/* generated: lines of 99 'x' and CRLF */
	n = h->gen_bytes - h->gen_pos > len ? len : (size_t)(h->gen_bytes - h->gen_pos);
	for (size_t i = 0; i < n; i++) {
		uint64_t k = (h->gen_pos + i) % 101;

		((char *)buf)[i] = k == 99 ? '\r' : k == 100 ? '\n' : 'x';
	}
	h->gen_pos += n;
	if (h->gen_pos > h->data_bytes && h->gen_pos - h->data_bytes > h->max_ahead)
		h->max_ahead = h->gen_pos - h->data_bytes;
	return (ssize_t)n;
}

static void
h_send_next(struct h *h, struct smtpc *c)
{
	const struct txn_spec *t = &h->txns[h->txpos];
	struct smtpc_txn txn;

	memset(&txn, 0, sizeof(txn));
	txn.sender = t->sender;
	txn.rcpts = t->rcpts;
	txn.nrcpt = t->nrcpt;
	txn.size = t->size;
	txn.need_8bit = t->need_8bit;
	txn.smtputf8 = t->smtputf8;
	txn.content.read = h_read;
	txn.content.arg = h;
	h->content = t->content;
	h->content_len = t->content != NULL ? strlen(t->content) : 0;
	h->content_pos = 0;
	h->chunk = t->chunk > 0 ? t->chunk : 4096;
	h->gen_pos = 0;
	assert_int_equal(smtpc_send(c, &txn), 0);
	/* a second send while one runs is refused */
	assert_int_equal(smtpc_send(c, &txn), -1);
}

static void
h_ready(void *arg, struct smtpc *c)
{
	struct h *h = arg;

	h->nready++;
	h->ext_pipelining = smtpc_has_ext(c, "PIPELINING");
	h->ext_8bit = smtpc_has_ext(c, "8bitmime");
	h->ext_size = smtpc_has_ext(c, "SIZE");
	h->ext_starttls = smtpc_has_ext(c, "STARTTLS");
	if (h->ntxn == 0) {
		h->c = NULL;
		smtpc_quit(c);
		return;
	}
	h_send_next(h, c);
}

static void
h_done(void *arg, struct smtpc *c, const struct smtpc_result *r)
{
	struct h *h = arg;
	struct result *res = &h->res[h->txpos];

	h->ndone++;
	if (h->norder < 8)
		h->order[h->norder++] = 1;
	res->mail = r->mail.code;
	(void)snprintf(res->mail_dsn, sizeof(res->mail_dsn), "%s", r->mail.dsn);
	for (size_t i = 0; i < r->nrcpt && i < 4; i++) {
		res->rcpt[i] = r->rcpt[i].code;
		(void)snprintf(res->rcpt_dsn[i], sizeof(res->rcpt_dsn[i]), "%s", r->rcpt[i].dsn);
	}
	res->data = r->data.code;
	(void)snprintf(res->data_dsn, sizeof(res->data_dsn), "%s", r->data.dsn);
	(void)snprintf(res->data_text, sizeof(res->data_text), "%s", r->data.text);
	if (++h->txpos < h->ntxn) {
		h_send_next(h, c);
		return;
	}
	if (h->keep_after_done) {
		/* a second send on a dead session is refused */
		if (smtpc_send(c, &(struct smtpc_txn){ "a", (const char *const[]){ "b" }, 1, 1, 0, 0,
		    { h_read, h, NULL } }) != -1)
			fail_msg("smtpc_send on a dead session accepted");
		return;
	}
	h->c = NULL;
	if (h->quit_after)
		smtpc_quit(c);
	else
		smtpc_free(c);
}

static void
h_failed(void *arg, struct smtpc *c, const struct smtpc_reply *r)
{
	struct h *h = arg;

	h->nfailed++;
	if (h->norder < 8)
		h->order[h->norder++] = 2;
	h->fail = *r;
	if (h->free_in_failed) {
		h->c = NULL;
		smtpc_free(c);
	}
}

static const struct smtpc_cb h_cbs = { h_ready, h_done, h_failed };

static void
h_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct h *h = arg;

	(void)fd;
	(void)what;
	h->timed_out = 1;
	event_base_loopbreak(h->base);
}

/*
 * run - one session: listen, connect, run the loop until nothing is left
 * to do (or 10 s), tear down. port_override > 0 connects there instead.
 */
static void
run(struct h *h, const struct srv_step *script, size_t nscript, const struct txn_spec *txns,
    size_t ntxn, unsigned cmd_timeout, int port_override)
{
	struct sockaddr_in sin;
	struct smtpc_params p;
	struct event *deadline;
	struct timeval tv = { 10, 0 };
	socklen_t sl = sizeof(sin);

	h->base = event_base_new();
	assert_non_null(h->base);
	h->data = evbuffer_new();
	h->script = script;
	h->nscript = nscript;
	h->txns = txns;
	h->ntxn = ntxn;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	h->lis = evconnlistener_new_bind(h->base, srv_accept, h,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16, (struct sockaddr *)&sin, sizeof(sin));
	assert_non_null(h->lis);
	assert_int_equal(getsockname(evconnlistener_get_fd(h->lis), (struct sockaddr *)&sin,
	    &sl), 0);
	h->port = ntohs(sin.sin_port);
	if (port_override > 0)
		sin.sin_port = htons((uint16_t)port_override);
	memset(&p, 0, sizeof(p));
	p.helo_name = "client.test";
	memcpy(&p.addr, &sin, sizeof(sin));
	p.addrlen = sizeof(sin);
	p.peer_name = "mx.test";
	p.connect_timeout = 2;
	p.cmd_timeout = cmd_timeout;
	p.data_timeout = cmd_timeout;
	h->c = smtpc_connect(h->base, &p, &h_cbs, h);
	assert_non_null(h->c);
	deadline = evtimer_new(h->base, h_deadline, h);
	evtimer_add(deadline, &tv);
	/* the loop ends when the deadline or the last event is gone */
	while (event_base_loop(h->base, EVLOOP_ONCE) == 0 && !h->timed_out) {
		if (h->c == NULL && h->sbev == NULL)
			break;
		if (h->nfailed > 0 && !h->free_in_failed)
			break;
	}
	h->c = smtpc_free(h->c);
	srv_close(h);
	event_free(deadline);
	if (h->pause_ev != NULL)
		event_free(h->pause_ev);
	evconnlistener_free(h->lis);
	h->gotlen = evbuffer_copyout(h->data, h->got, sizeof(h->got)) < 0 ? 0 :
	    evbuffer_get_length(h->data) < sizeof(h->got) ? evbuffer_get_length(h->data) :
	    sizeof(h->got);
	evbuffer_free(h->data);
	h->data = NULL;
	event_base_free(h->base);
}

static int
data_eq(struct h *h, const char *want)
{
	if (h->gotlen == strlen(want) && memcmp(h->got, want, h->gotlen) == 0)
		return 1;
	printf("content: got \"%.*s\", want \"%s\"\n", (int)h->gotlen, h->got, want);
	return 0;
}

/* log_has - the dialogue contains want (prefix: at its start) */
static int
log_has(struct h *h, const char *want, int prefix)
{
	if (prefix ? strncmp(h->log, want, strlen(want)) == 0 : strstr(h->log, want) != NULL)
		return 1;
	printf("dialogue: got \"%s\"\n          want %s \"%s\"\n", h->log,
	    prefix ? "prefix" : "part", want);
	return 0;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char EHLO_FULL[] = "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n"
    "250-8BITMIME\r\n250-SMTPUTF8\r\n250 ENHANCEDSTATUSCODES\r\n";
static const char EHLO_PLAIN[] = "250-mx.test\r\n250 SIZE\r\n";

/* ---- tests ------------------------------------------------------------------ */

/* PIPELINING: MAIL, both RCPTs and DATA come in one read; content dot-stuffed. */
static void
test_pipelined(void **state)
{
	static const struct srv_step script[] = {
		{ "<CONNECT>", SRV_REPLY, "220 mx.test ESMTP\r\n" },
		{ "EHLO client.test", SRV_REPLY, EHLO_FULL },
		{ "MAIL FROM:<a@b.test> SIZE=17 BODY=8BITMIME", SRV_REPLY, "250 2.1.0 Ok\r\n" },
		{ "RCPT TO:<x@mx.test>", SRV_REPLY, "250 2.1.5 Ok\r\n" },
		{ "RCPT TO:<y@mx.test>", SRV_REPLY, "550-5.1.1 no such\r\n550 5.1.1 user\r\n" },
		{ "DATA", SRV_DATA, "354 go\r\n" },
		{ "<DATA>", SRV_REPLY, "250 2.0.0 Ok: queued as 1\r\n" },
		{ "QUIT", SRV_REPLY, "221 2.0.0 Bye\r\n" },
	};
	static const struct txn_spec txn[] = {
		{ "a@b.test", { "x@mx.test", "y@mx.test" }, 2, 17, 1, 0,
		  ".a\r\n..b\r\nc.\r\n.", 1 },
	};
	struct h h;

	(void)state;
	memset(&h, 0, sizeof(h));
	h.quit_after = 1;
	run(&h, script, N(script), txn, N(txn), 5, 0);
	assert_int_equal(h.script_errors, 0);
	assert_int_equal(h.nready, 1);
	assert_int_equal(h.ndone, 1);
	assert_int_equal(h.nfailed, 0);
	assert_true(h.ext_pipelining && h.ext_8bit && h.ext_size && !h.ext_starttls);
	assert_true(log_has(&h, "1:EHLO client.test|"
	    "2:MAIL FROM:<a@b.test> SIZE=17 BODY=8BITMIME|2:RCPT TO:<x@mx.test>|"
	    "2:RCPT TO:<y@mx.test>|2:DATA|", 1));
	assert_true(log_has(&h, ":<DATA>|", 0));
	assert_true(log_has(&h, ":QUIT", 0));
	assert_true(data_eq(&h, "..a\r\n...b\r\nc.\r\n..\r\n"));
	assert_int_equal(h.res[0].mail, 250);
	assert_int_equal(h.res[0].rcpt[0], 250);
	assert_int_equal(h.res[0].rcpt[1], 550);
	assert_string_equal(h.res[0].rcpt_dsn[1], "5.1.1");
	assert_int_equal(h.res[0].data, 250);
	assert_string_equal(h.res[0].data_text, "250 2.0.0 Ok: queued as 1");
}

/*
 * A line starts after CR as well as after LF: content with bare line ends
 * (which smtpd no longer accepts, but a queue file may still hold) never
 * puts "<CR>.<CR>" or "<LF>.<LF>" on the wire, for any chunking of it.
 */
static void
test_dot_after_any_line_end(void **state)
{
	static const struct srv_step script[] = {
		{ "<CONNECT>", SRV_REPLY, "220 mx.test\r\n" },
		{ "EHLO client.test", SRV_REPLY, EHLO_PLAIN },
		{ "MAIL FROM:<>", SRV_REPLY, "250 ok\r\n" },
		{ "RCPT TO:<x@mx.test>", SRV_REPLY, "250 ok\r\n" },
		{ "DATA", SRV_DATA, "354 go\r\n" },
		{ "<DATA>", SRV_REPLY, "250 ok\r\n" },
	};
	static const char content[] = "a\r.\rb\n.\nc\r\n.d\r\r.\r\n.";
	static const char want[] = "a\r..\rb\n..\nc\r\n..d\r\r..\r\n..\r\n";
	struct txn_spec txn[1];

	(void)state;
	for (size_t chunk = 1; chunk <= sizeof(content); chunk++) {
		struct h h;

		memset(txn, 0, sizeof(txn));
		txn[0].sender = "";
		txn[0].rcpts[0] = "x@mx.test";
		txn[0].nrcpt = 1;
		txn[0].size = sizeof(content) - 1;
		txn[0].content = content;
		txn[0].chunk = chunk;
		memset(&h, 0, sizeof(h));
		run(&h, script, N(script), txn, 1, 5, 0);
		assert_int_equal(h.script_errors, 0);
		assert_int_equal(h.ndone, 1);
		if (!data_eq(&h, want))
			fail_msg("chunk size %zu", chunk);
		assert_null(memmem(h.got, h.gotlen, "\r.\r", 3));
		assert_null(memmem(h.got, h.gotlen, "\n.\n", 3));
	}
}

/* No PIPELINING: one command per read; HELO after a refused EHLO. */
static void
test_lockstep_helo(void **state)
{
	static const struct srv_step script[] = {
		{ "<CONNECT>", SRV_REPLY, "220 mx.test\r\n" },
		{ "EHLO", SRV_REPLY, "502 5.5.2 what\r\n" },
		{ "HELO client.test", SRV_REPLY, "250 mx.test\r\n" },
		{ "MAIL FROM:<>", SRV_REPLY, "250 ok\r\n" },
		{ "RCPT TO:<x@mx.test>", SRV_REPLY, "250 ok\r\n" },
		{ "DATA", SRV_DATA, "354 go\r\n" },
		{ "<DATA>", SRV_REPLY, "250 ok\r\n" },
	};
	static const struct txn_spec txn[] = {
		{ "", { "x@mx.test" }, 1, 5, 0, 0, "hello", 2 },
	};
	struct h h;

	(void)state;
	memset(&h, 0, sizeof(h));
	run(&h, script, N(script), txn, N(txn), 5, 0);
	assert_int_equal(h.script_errors, 0);
	assert_int_equal(h.ndone, 1);
	assert_true(!h.ext_pipelining && !h.ext_8bit);
	assert_true(log_has(&h, "1:EHLO client.test|2:HELO client.test|3:MAIL FROM:<>|"
	    "4:RCPT TO:<x@mx.test>|5:DATA|", 1));
	/* content without a final CRLF gets one */
	assert_true(data_eq(&h, "hello\r\n"));
	assert_int_equal(h.res[0].data, 250);
	assert_string_equal(h.res[0].data_dsn, "2.0.0");
}

/* Local refusals: SIZE over the peer's limit, 8BITMIME and SMTPUTF8 missing. */
static void
test_local_refusals(void **state)
{
	static const struct srv_step script_full[] = {
		{ "<CONNECT>", SRV_REPLY, "220 mx.test\r\n" },
		{ "EHLO", SRV_REPLY, EHLO_FULL },
	};
	static const struct srv_step script_plain[] = {
		{ "<CONNECT>", SRV_REPLY, "220 mx.test\r\n" },
		{ "EHLO", SRV_REPLY, EHLO_PLAIN },
	};
	static const struct {
		const char *name;
		const struct srv_step *script;
		struct txn_spec txn;
		int code;
		const char *dsn;
	} rows[] = {
		{ "size", script_full, { "a@b", { "x@y" }, 1, 1001, 0, 0, "x", 1 }, 552, "5.3.4" },
		{ "8bit", script_plain, { "a@b", { "x@y" }, 1, 5, 1, 0, "x", 1 }, 554, "5.6.3" },
		{ "utf8", script_plain, { "a@b", { "x@y" }, 1, 5, 0, 1, "x", 1 }, 553, "5.6.7" },
		{ "bad rcpt", script_full, { "a@b", { "x@y>\r\nRSET" }, 1, 5, 0, 0, "x", 1 }, 501,
		  "5.1.3" },
	};

	(void)state;
	for (size_t i = 0; i < N(rows); i++) {
		struct h h;

		memset(&h, 0, sizeof(h));
		run(&h, rows[i].script, 2, &rows[i].txn, 1, 5, 0);
		if (h.ndone != 1 || h.res[0].mail != rows[i].code ||
		    strcmp(h.res[0].mail_dsn, rows[i].dsn) != 0 || h.res[0].rcpt[0] != rows[i].code ||
		    h.script_errors != 0)
			fail_msg("%s: got done %d code %d dsn %s rcpt %d errors %d, want 1 %d %s",
			    rows[i].name, h.ndone, h.res[0].mail, h.res[0].mail_dsn, h.res[0].rcpt[0],
			    h.script_errors, rows[i].code, rows[i].dsn);
		/* nothing of the transaction reached the server */
		if (strstr(h.log, "MAIL") != NULL)
			fail_msg("%s: MAIL was sent: %s", rows[i].name, h.log);
	}
}

/*
 * No recipient accepted: pipelined gets "." after a 354, or RSET after a
 * refused DATA (the peer may still hold the MAIL); lock-step sends RSET
 * instead of DATA.
 */
static void
test_no_recipient(void **state)
{
	static const struct srv_step piped[] = {
		{ "<CONNECT>", SRV_REPLY, "220 mx.test\r\n" },
		{ "EHLO", SRV_REPLY, EHLO_FULL },
		{ "MAIL", SRV_REPLY, "250 ok\r\n" },
		{ "RCPT", SRV_REPLY, "550 5.1.1 no\r\n" },
		{ "DATA", SRV_DATA, "354 go anyway\r\n" },
		{ "<DATA>", SRV_REPLY, "554 5.5.1 no valid recipients\r\n" },
		{ "MAIL", SRV_REPLY, "250 ok\r\n" },
		{ "RCPT", SRV_REPLY, "451 4.3.0 later\r\n" },
		{ "DATA", SRV_REPLY, "554 5.5.1 no valid recipients\r\n" },
		{ "RSET", SRV_REPLY, "250 ok\r\n" },
	};
	static const struct srv_step lock[] = {
		{ "<CONNECT>", SRV_REPLY, "220 mx.test\r\n" },
		{ "EHLO", SRV_REPLY, EHLO_PLAIN },
		{ "MAIL", SRV_REPLY, "250 ok\r\n" },
		{ "RCPT", SRV_REPLY, "550 5.1.1 no\r\n" },
		{ "RSET", SRV_REPLY, "250 ok\r\n" },
	};
	static const struct txn_spec txn[] = {
		{ "a@b", { "x@y" }, 1, 5, 0, 0, "body\r\n", 10 },
		{ "a@b", { "x@y" }, 1, 5, 0, 0, "body\r\n", 10 },
	};
	struct h h;

	(void)state;
	memset(&h, 0, sizeof(h));
	run(&h, piped, N(piped), txn, 2, 5, 0);
	assert_int_equal(h.script_errors, 0);
	assert_int_equal(h.ndone, 2);
	assert_true(data_eq(&h, ""));                  /* an empty message, no content */
	assert_int_equal(h.res[0].rcpt[0], 550);
	assert_int_equal(h.res[0].data, 0);
	assert_int_equal(h.res[1].rcpt[0], 451);
	assert_int_equal(h.res[1].data, 0);

	memset(&h, 0, sizeof(h));
	run(&h, lock, N(lock), txn, 1, 5, 0);
	assert_int_equal(h.script_errors, 0);
	assert_int_equal(h.ndone, 1);
	assert_null(strstr(h.log, "DATA"));
	assert_int_equal(h.res[0].rcpt[0], 550);
	assert_int_equal(h.res[0].data, 0);
}

/* MAIL refused: every recipient carries the MAIL reply (pipelined and not). */
static void
test_mail_refused(void **state)
{
	static const struct srv_step piped[] = {
		{ "<CONNECT>", SRV_REPLY, "220 mx.test\r\n" },
		{ "EHLO", SRV_REPLY, EHLO_FULL },
		{ "MAIL", SRV_REPLY, "452 4.3.1 full\r\n" },
		{ "RCPT", SRV_REPLY, "503 5.5.1 need MAIL\r\n" },
		{ "RCPT", SRV_REPLY, "503 5.5.1 need MAIL\r\n" },
		{ "DATA", SRV_REPLY, "503 5.5.1 need MAIL\r\n" },
	};
	static const struct srv_step lock[] = {
		{ "<CONNECT>", SRV_REPLY, "220 mx.test\r\n" },
		{ "EHLO", SRV_REPLY, EHLO_PLAIN },
		{ "MAIL", SRV_REPLY, "452 4.3.1 full\r\n" },
	};
	static const struct txn_spec txn[] = {
		{ "a@b", { "x@y", "z@y" }, 2, 5, 0, 0, "body\r\n", 10 },
	};

	(void)state;
	for (int k = 0; k < 2; k++) {
		struct h h;

		memset(&h, 0, sizeof(h));
		run(&h, k == 0 ? piped : lock, k == 0 ? N(piped) : N(lock), txn, 1, 5, 0);
		assert_int_equal(h.script_errors, 0);
		assert_int_equal(h.ndone, 1);
		assert_int_equal(h.res[0].mail, 452);
		assert_int_equal(h.res[0].rcpt[0], 452);
		assert_int_equal(h.res[0].rcpt[1], 452);
		assert_string_equal(h.res[0].rcpt_dsn[1], "4.3.1");
		assert_int_equal(h.res[0].data, 0);
	}
}

/* Failures of the session: each row one way for the peer to end it. */
static void
test_failures(void **state)
{
	static const struct srv_step greet554[] = {
		{ "<CONNECT>", SRV_REPLY, "554 5.7.1 go away\r\n" },
	};
	static const struct srv_step ehlo421[] = {
		{ "<CONNECT>", SRV_REPLY, "220 mx.test\r\n" },
		{ "EHLO", SRV_REPLY, "421 4.3.2 shutting down\r\n" },
	};
	static const struct srv_step helo550[] = {
		{ "<CONNECT>", SRV_REPLY, "220 mx.test\r\n" },
		{ "EHLO", SRV_REPLY, "500 no\r\n" },
		{ "HELO", SRV_REPLY, "550 5.7.1 not you\r\n" },
	};
	static const struct srv_step rcpt421[] = {
		{ "<CONNECT>", SRV_REPLY, "220 mx.test\r\n" },
		{ "EHLO", SRV_REPLY, EHLO_FULL },
		{ "MAIL", SRV_REPLY, "250 ok\r\n" },
		{ "RCPT", SRV_REPLY, "421 4.4.2 timeout\r\n" },
	};
	static const struct srv_step drop_data[] = {
		{ "<CONNECT>", SRV_REPLY, "220 mx.test\r\n" },
		{ "EHLO", SRV_REPLY, EHLO_PLAIN },
		{ "MAIL", SRV_REPLY, "250 ok\r\n" },
		{ "RCPT", SRV_REPLY, "250 ok\r\n" },
		{ "DATA", SRV_CLOSE, NULL },
	};
	static const struct srv_step drop_greet[] = {
		{ "<CONNECT>", SRV_CLOSE, NULL },
	};
	static const struct srv_step hang_mail[] = {
		{ "<CONNECT>", SRV_REPLY, "220 mx.test\r\n" },
		{ "EHLO", SRV_REPLY, EHLO_PLAIN },
		{ "MAIL", SRV_HANG, NULL },
	};
	static const struct srv_step hang_dot[] = {
		{ "<CONNECT>", SRV_REPLY, "220 mx.test\r\n" },
		{ "EHLO", SRV_REPLY, EHLO_PLAIN },
		{ "MAIL", SRV_REPLY, "250 ok\r\n" },
		{ "RCPT", SRV_REPLY, "250 ok\r\n" },
		{ "DATA", SRV_DATA, "354 go\r\n" },
		{ "<DATA>", SRV_HANG, NULL },
	};
	static const struct srv_step garbage[] = {
		{ "<CONNECT>", SRV_REPLY, "220 mx.test\r\n" },
		{ "EHLO", SRV_REPLY, "250-mx.test\r\nhello there\r\n" },
	};
	static const struct srv_step unasked[] = {
		{ "<CONNECT>", SRV_REPLY, "220 mx.test\r\n" },
		{ "EHLO", SRV_REPLY, "250-mx.test\r\n250 SIZE\r\n250 surprise\r\n" },
	};
	static const struct txn_spec txn[] = {
		{ "a@b", { "x@y" }, 1, 5, 0, 0, "body\r\n", 10 },
	};
	static const struct {
		const char *name;
		const struct srv_step *script;
		size_t nscript;
		int code;
		const char *dsn;
		const char *text;          /* a substring of the reason */
	} rows[] = {
		{ "greeting 554", greet554, N(greet554), 554, "5.7.1", "go away" },
		{ "EHLO 421", ehlo421, N(ehlo421), 421, "4.3.2", "shutting down" },
		{ "HELO 550", helo550, N(helo550), 550, "5.7.1", "not you" },
		{ "RCPT 421", rcpt421, N(rcpt421), 421, "4.4.2", "421 4.4.2 timeout" },
		{ "drop at DATA", drop_data, N(drop_data), 0, "4.4.2",
		  "lost connection with mx.test[127.0.0.1]" },
		{ "drop at greeting", drop_greet, N(drop_greet), 0, "4.4.2",
		  "while receiving the initial server greeting" },
		{ "hang at MAIL", hang_mail, N(hang_mail), 0, "4.4.2", "timed out" },
		{ "hang after dot", hang_dot, N(hang_dot), 0, "4.4.2", "timed out" },
		{ "garbage line", garbage, N(garbage), 0, "4.4.2", "malformed" },
		{ "reply nobody asked for", unasked, N(unasked), 0, "4.4.2", "unexpected reply" },
	};

	(void)state;
	for (size_t i = 0; i < N(rows); i++) {
		struct h h;

		memset(&h, 0, sizeof(h));
		h.free_in_failed = 1;
		run(&h, rows[i].script, rows[i].nscript, txn, 1, 1, 0);
		if (h.nfailed != 1 || h.fail.code != rows[i].code ||
		    strcmp(h.fail.dsn, rows[i].dsn) != 0 || strstr(h.fail.text, rows[i].text) == NULL)
			fail_msg("%s: got failed %d code %d dsn %s \"%s\", want 1 %d %s \"%s\"",
			    rows[i].name, h.nfailed, h.fail.code, h.fail.dsn, h.fail.text,
			    rows[i].code, rows[i].dsn, rows[i].text);
		if (h.ndone != 0)
			fail_msg("%s: done() ran %d times", rows[i].name, h.ndone);
	}
}

/*
 * The 250 after the dot and a 421 in one read: the transaction's done()
 * still comes (else the message would be sent twice), then failed().
 */
static void
test_done_then_421(void **state)
{
	static const struct srv_step script[] = {
		{ "<CONNECT>", SRV_REPLY, "220 mx.test\r\n" },
		{ "EHLO", SRV_REPLY, EHLO_FULL },
		{ "MAIL", SRV_REPLY, "250 ok\r\n" },
		{ "RCPT", SRV_REPLY, "250 ok\r\n" },
		{ "DATA", SRV_DATA, "354 go\r\n" },
		{ "<DATA>", SRV_REPLY, "250 2.0.0 queued\r\n421 4.3.2 closing\r\n" },
	};
	static const struct txn_spec txn[] = {
		{ "a@b", { "x@y" }, 1, 5, 0, 0, "body\r\n", 10 },
	};
	struct h h;

	(void)state;
	memset(&h, 0, sizeof(h));
	h.keep_after_done = 1;
	h.free_in_failed = 1;
	run(&h, script, N(script), txn, 1, 5, 0);
	assert_int_equal(h.script_errors, 0);
	assert_int_equal(h.norder, 2);
	assert_int_equal(h.order[0], 1);
	assert_int_equal(h.order[1], 2);
	assert_int_equal(h.res[0].data, 250);
	assert_int_equal(h.fail.code, 421);
}

/* Nothing listens: connect fails with 4.4.1. */
static void
test_connect_refused(void **state)
{
	static const struct srv_step none[] = { { "<CONNECT>", SRV_CLOSE, NULL } };
	int port;
	struct h h;

	(void)state;
	/* a port that was free a moment ago */
	{
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in sin;
		socklen_t sl = sizeof(sin);

		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
		assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
		port = ntohs(sin.sin_port);
		close(fd);
	}
	memset(&h, 0, sizeof(h));
	h.free_in_failed = 1;
	run(&h, none, 1, NULL, 0, 1, port);
	assert_int_equal(h.nfailed, 1);
	assert_int_equal(h.nready, 0);
	assert_int_equal(h.fail.code, 0);
	assert_string_equal(h.fail.dsn, "4.4.1");
	assert_non_null(strstr(h.fail.text, "connect to mx.test[127.0.0.1]"));
	assert_non_null(strstr(h.fail.text, "refused"));
}

/* Two transactions over one connection, no RSET between them, then QUIT. */
static void
test_reuse(void **state)
{
	static const struct srv_step script[] = {
		{ "<CONNECT>", SRV_REPLY, "220 mx.test\r\n" },
		{ "EHLO", SRV_REPLY, EHLO_FULL },
		{ "MAIL FROM:<a@b>", SRV_REPLY, "250 ok\r\n" },
		{ "RCPT TO:<x@y>", SRV_REPLY, "250 ok\r\n" },
		{ "DATA", SRV_DATA, "354 go\r\n" },
		{ "<DATA>", SRV_REPLY, "250 2.0.0 first\r\n" },
		{ "MAIL FROM:<c@d>", SRV_REPLY, "250 ok\r\n" },
		{ "RCPT TO:<z@y>", SRV_REPLY, "250 ok\r\n" },
		{ "DATA", SRV_DATA, "354 go\r\n" },
		{ "<DATA>", SRV_REPLY, "451 4.3.0 second\r\n" },
		{ "QUIT", SRV_REPLY, "221 bye\r\n" },
	};
	static const struct txn_spec txn[] = {
		{ "a@b", { "x@y" }, 1, 5, 0, 0, "one\r\n", 10 },
		{ "c@d", { "z@y" }, 1, 5, 0, 0, "two\r\n", 10 },
	};
	struct h h;

	(void)state;
	memset(&h, 0, sizeof(h));
	h.quit_after = 1;
	run(&h, script, N(script), txn, N(txn), 5, 0);
	assert_int_equal(h.script_errors, 0);
	assert_int_equal(h.ndone, 2);
	assert_int_equal(h.res[0].data, 250);
	assert_int_equal(h.res[1].data, 451);
	assert_string_equal(h.res[1].data_dsn, "4.3.0");
	assert_true(data_eq(&h, "one\r\ntwo\r\n"));
	assert_non_null(strstr(h.log, "QUIT"));
}

/*
 * A 20 MB message to a peer that stops reading for a while: the content is
 * read from the source only as the peer takes it (bounded memory), and all
 * of it arrives.
 */
static void
test_large_bounded(void **state)
{
	static const struct srv_step script[] = {
		{ "<CONNECT>", SRV_REPLY, "220 mx.test\r\n" },
		{ "EHLO", SRV_REPLY, EHLO_PLAIN },
		{ "MAIL", SRV_REPLY, "250 ok\r\n" },
		{ "RCPT", SRV_REPLY, "250 ok\r\n" },
		{ "DATA", SRV_PAUSE_DATA, "354 go\r\n" },
		{ "<DATA>", SRV_REPLY, "250 ok\r\n" },
	};
	static const struct txn_spec txn[] = {
		{ "a@b", { "x@y" }, 1, 0, 0, 0, NULL, 0 },
	};
	struct h h;

	(void)state;
	memset(&h, 0, sizeof(h));
	h.gen_bytes = 20 * 101 * 10000;     /* 200,000 lines, 20.2 MB */
	run(&h, script, N(script), txn, 1, 5, 0);
	assert_int_equal(h.script_errors, 0);
	assert_int_equal(h.ndone, 1);
	assert_int_equal(h.res[0].data, 250);
	assert_int_equal(h.data_bytes, h.gen_bytes);
	/* socket buffers (a few MB on loopback) plus smtpc's own 128 KiB */
	if (h.max_ahead > 12u * 1024 * 1024)
		fail_msg("read ahead of the peer: got %llu bytes, want < 12 MiB",
		    (unsigned long long)h.max_ahead);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_dot_after_any_line_end),
		cmocka_unit_test(test_lockstep_helo),
		cmocka_unit_test(test_local_refusals),
		cmocka_unit_test(test_no_recipient),
		cmocka_unit_test(test_mail_refused),
		cmocka_unit_test(test_failures),
		cmocka_unit_test(test_done_then_421),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_reuse),
		cmocka_unit_test(test_large_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
