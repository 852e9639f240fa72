/*
 * test_ctl_http.c - mtactl's HTTP client (src/ctl/ctl_http.c, ctl_net.c)
 *                   against a canned server on loopback: what it sends,
 *                   the replies it takes apart (Content-Length, chunked,
 *                   bare LF) and the ones it refuses, nothing listening,
 *                   a silent server, HTTPS falling back to plain on
 *                   loopback but never beyond it
 *
 * Owns:     one listening socket on 127.0.0.1 (a kernel-chosen port) and
 *           the server thread that answers it, one canned reply per
 *           connection.
 * Lifetime: one run.
 * Errors:   each failing row prints "got X, want Y" and fails its test.
 * Context:  the test thread makes the requests; the server thread only
 *           reads the row the test thread set before the request.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctl/ctl_int.h"
#include "lib/util.h"
#include "mail/config.h"

/* The server: what the next plain connection gets, and what it was sent. */
static struct {
	pthread_t thread;
	int       lfd;
	int       port;
	pthread_mutex_t mu;
	const char *reply;          /* NULL: read until the client gives up, say nothing */
	size_t    reply_len;
	char      req[4096];        /* the last plain request's head */
	unsigned  tls_hellos;       /* connections that opened with a TLS record: closed */
	int       stop;
} srv = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* serve_one - read the request head (or see a TLS hello), answer, close */
static void
serve_one(int fd)
{
	char buf[4096];
	size_t n = 0;
	ssize_t r;
	const char *reply;
	size_t rlen;

	while (n < sizeof(buf) - 1 && (r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0) {
		n += (size_t)r;
		buf[n] = '\0';
		if (buf[0] == 0x16) {               /* a TLS ClientHello: this server is plain */
			pthread_mutex_lock(&srv.mu);
			srv.tls_hellos++;
			pthread_mutex_unlock(&srv.mu);
			return;
		}
		if (strstr(buf, "\r\n\r\n") != NULL)
			break;
	}
	/*
	 * The body too, before answering: closing with unread bytes makes the
	 * kernel reset the connection, and the client could lose the reply.
	 */
	{
		const char *end = strstr(buf, "\r\n\r\n"), *cl = strcasestr(buf, "\r\nContent-Length:");
		size_t want = 0;

		if (end != NULL && cl != NULL && cl < end)
			want = (size_t)(end + 4 - buf) + strtoul(cl + 17, NULL, 10);
		while (n < want && n < sizeof(buf) - 1 &&
		    (r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0) {
			n += (size_t)r;
			buf[n] = '\0';
		}
	}
	pthread_mutex_lock(&srv.mu);
	util_strlcpy(srv.req, buf, sizeof(srv.req));
	reply = srv.reply;
	rlen = srv.reply_len;
	pthread_mutex_unlock(&srv.mu);
	if (reply == NULL) {
		while (read(fd, buf, sizeof(buf)) > 0)
			;                               /* silent until the client leaves */
		return;
	}
	(void)!write(fd, reply, rlen);
}

static void *
server_main(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept(srv.lfd, NULL, NULL);

		if (fd < 0)
			continue;
		pthread_mutex_lock(&srv.mu);
		if (srv.stop) {
			pthread_mutex_unlock(&srv.mu);
			close(fd);
			return NULL;
		}
		pthread_mutex_unlock(&srv.mu);
		serve_one(fd);
		close(fd);
	}
}

/* loopback_socket - a TCP socket bound to 127.0.0.1 on a port the kernel picks (*port) */
static int
loopback_socket(int *port)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	int fd;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &slen), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static int
setup(void **state)
{
	(void)state;
	srv.lfd = loopback_socket(&srv.port);
	assert_int_equal(listen(srv.lfd, 8), 0);
	assert_int_equal(pthread_create(&srv.thread, NULL, server_main, NULL), 0);
	return 0;
}

static int
teardown(void **state)
{
	int fd;

	(void)state;
	pthread_mutex_lock(&srv.mu);
	srv.stop = 1;
	pthread_mutex_unlock(&srv.mu);
	/* wake the accept() */
	fd = ctl_net_connect("127.0.0.1", srv.port, 1000);
	if (fd >= 0)
		close(fd);
	pthread_join(srv.thread, NULL);
	close(srv.lfd);
	return 0;
}

/* answer - the reply of the next connection (a C string; NULL = none) */
static void
answer(const char *reply)
{
	pthread_mutex_lock(&srv.mu);
	srv.reply = reply;
	srv.reply_len = reply != NULL ? strlen(reply) : 0;
	srv.req[0] = '\0';
	pthread_mutex_unlock(&srv.mu);
}

static void
plain_client(struct ctl_http *h)
{
	memset(h, 0, sizeof(*h));
	util_strlcpy(h->host, "127.0.0.1", sizeof(h->host));
	h->port = srv.port;
	h->timeout_ms = 5000;
}

/* Replies taken apart, replies refused: "got X, want Y" per row. */
static void
test_replies(void **state)
{
	static const struct {
		const char *reply;
		int want_rc, want_status;
		const char *want;           /* the body, or the error text */
	} rows[] = {
		{ "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello", CTL_HTTP_OK, 200, "hello" },
		{ "HTTP/1.1 404 Not Found\r\ncontent-length:  2 \r\n\r\nno", CTL_HTTP_OK, 404, "no" },
		{ "HTTP/1.0 200 OK\nContent-Length: 3\n\nabc", CTL_HTTP_OK, 200, "abc" },
		{ "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabcdef", CTL_HTTP_OK, 200, "abc" },
		{ "HTTP/1.0 204 No Content\r\nX-A: b\r\n\r\n", CTL_HTTP_OK, 204, "" },
		{ "HTTP/1.0 200 OK\r\n\r\nto the end", CTL_HTTP_OK, 200, "to the end" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "5\r\nhello\r\nA;ext=1\r\n big world\r\n0\r\n\r\n", CTL_HTTP_OK, 200,
		    "hello big world" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\nb\nhello\nworld\n0\n\n",
		    CTL_HTTP_OK, 200, "hello\nworld" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
		    CTL_HTTP_EPROTO, 0, "malformed chunked HTTP body" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n50\r\nhello\r\n0\r\n\r\n",
		    CTL_HTTP_EPROTO, 0, "malformed chunked HTTP body" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX0\r\n\r\n",
		    CTL_HTTP_EPROTO, 0, "malformed chunked HTTP body" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5", CTL_HTTP_EPROTO, 0,
		    "malformed chunked HTTP body" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "fffffffffffffffff\r\n", CTL_HTTP_EPROTO, 0, "malformed chunked HTTP body" },
		{ "SMTP/1.0 200 OK\r\n\r\n", CTL_HTTP_EPROTO, 0, "malformed HTTP reply" },
		{ "HTTP/1.0 200 OK\r\nno end of the head", CTL_HTTP_EPROTO, 0,
		    "malformed HTTP reply" },
		{ "", CTL_HTTP_EPROTO, 0, "malformed HTTP reply" },
		{ "HTTP/1.0 2x0 OK\r\n\r\n", CTL_HTTP_EPROTO, 0, "malformed HTTP status line" },
		{ "HTTP/1.0 999 Too Big\r\n\r\n", CTL_HTTP_EPROTO, 0, "malformed HTTP status line" },
		{ "HTTP/1.0 200 OK\r\nContent-Length: 100\r\n\r\nshort", CTL_HTTP_EPROTO, 0,
		    "truncated HTTP reply" },
		{ "HTTP/1.0 200 OK\r\nContent-Length: -1\r\n\r\nx", CTL_HTTP_EPROTO, 0,
		    "truncated HTTP reply" },
		{ "HTTP/1.0 200 OK\r\nContent-Length:\r\n\r\nx", CTL_HTTP_EPROTO, 0,
		    "malformed Content-Length" },
		{ "HTTP/1.0 200 OK\r\nContent-Length: 123456789012345678901234\r\n\r\nx",
		    CTL_HTTP_EPROTO, 0, "malformed Content-Length" },
	};
	struct ctl_http h;
	int failed = 0;

	(void)state;
	plain_client(&h);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct ctl_http_resp r;
		char err[256] = "";
		int rc;

		answer(rows[i].reply);
		rc = ctl_http_request(&h, "GET", "/api/queue", NULL, 0, &r, err, sizeof(err));
		if (rc != rows[i].want_rc ||
		    (rc == CTL_HTTP_OK && (r.status != rows[i].want_status ||
		    r.len != strlen(rows[i].want) || strcmp(r.body, rows[i].want) != 0)) ||
		    (rc != CTL_HTTP_OK && strcmp(err, rows[i].want) != 0)) {
			print_error("row %zu: got %d/%d \"%s\", want %d/%d \"%s\"\n", i, rc,
			    rc == CTL_HTTP_OK ? r.status : 0, rc == CTL_HTTP_OK ? r.body : err,
			    rows[i].want_rc, rows[i].want_status, rows[i].want);
			failed++;
		}
		if (rc == CTL_HTTP_OK)
			ctl_http_resp_free(&r);
	}
	assert_int_equal(failed, 0);
}

/* The request itself: method, path, Host, the marker the API wants, credentials, a body. */
static void
test_request(void **state)
{
	static const char conf[] = "hostname = mx.test.example\ndata_dir = /nonexistent\n"
	    "ui_address = 127.0.0.1\n"
	    "username = admin\npassword = s3cret\n";
	char err[256], text[sizeof(conf) + 32];
	struct ctl_http_resp r;
	struct ctl_http h;
	struct config *cfg;

	(void)state;
	assert_true(util_bsnprintf(text, sizeof(text), "%sui_port = %d\n", conf, srv.port) >= 0);
	cfg = config_parse_buffer("test.conf", text, strlen(text), NULL, err, sizeof(err));
	if (cfg == NULL)
		fail_msg("config: %s", err);
	assert_int_equal(ctl_http_init(&h, cfg), 0);
	assert_string_equal(h.host, "127.0.0.1");
	assert_int_equal(h.verify, 0);                  /* loopback: no certificate check */
	assert_string_equal(h.auth, "Basic YWRtaW46czNjcmV0");     /* admin:s3cret */
	answer("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}");
	assert_int_equal(ctl_http_request(&h, "POST", "/api/queue/flush", "{\"a\":1}", 7, &r, err,
	    sizeof(err)), CTL_HTTP_OK);
	ctl_http_resp_free(&r);
	pthread_mutex_lock(&srv.mu);
	if (strncmp(srv.req, "POST /api/queue/flush HTTP/1.0\r\n", 32) != 0 ||
	    strstr(srv.req, "\r\nAuthorization: Basic YWRtaW46czNjcmV0\r\n") == NULL ||
	    strstr(srv.req, "\r\nX-Requested-With: mtactl\r\n") == NULL ||
	    strstr(srv.req, "\r\nContent-Length: 7\r\n") == NULL ||
	    strstr(srv.req, "\r\nContent-Type: application/json\r\n") == NULL ||
	    strstr(srv.req, "\r\nConnection: close\r\n") == NULL)
		fail_msg("request: got \"%s\"", srv.req);
	pthread_mutex_unlock(&srv.mu);
	config_free(cfg);
	/* a wildcard or IPv6 listener is reached on loopback; a remote one is verified */
	static const struct {
		const char *addr, *want_host;
		int want_verify;
	} rows[] = {
		{ "0.0.0.0", "127.0.0.1", 0 },
		{ "::", "::1", 0 },
		{ "::1", "::1", 0 },
		{ "127.0.0.9", "127.0.0.9", 0 },
		{ "192.0.2.7", "192.0.2.7", 1 },
		{ "2001:db8::7", "2001:db8::7", 1 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char c[256];

		assert_true(util_bsnprintf(c, sizeof(c), "hostname = mx.test.example\ndata_dir = /x\n"
		    "ui_address = %s\nkey_dir = /keys\nssl_cert_file = ui.pem\n", rows[i].addr) >= 0);
		cfg = config_parse_buffer("test.conf", c, strlen(c), NULL, err, sizeof(err));
		if (cfg == NULL)
			fail_msg("row %zu: config: %s", i, err);
		assert_int_equal(ctl_http_init(&h, cfg), 0);
		if (strcmp(h.host, rows[i].want_host) != 0 || h.verify != rows[i].want_verify)
			fail_msg("row %zu %s: got %s verify %d, want %s verify %d", i, rows[i].addr,
			    h.host, h.verify, rows[i].want_host, rows[i].want_verify);
		if (h.verify && (strcmp(h.verify_name, "mx.test.example") != 0 ||
		    strcmp(h.ca_file, "/keys/ui.pem") != 0))
			fail_msg("row %zu: got name %s, CA file %s", i, h.verify_name, h.ca_file);
		assert_string_equal(h.auth, "");
		config_free(cfg);
	}
}

/* Nothing listening, a server that never answers, HTTPS to a plain server. */
static void
test_failures(void **state)
{
	struct ctl_http_resp r;
	struct ctl_http h;
	char err[256], want[128];
	unsigned hellos;
	int port;

	(void)state;
	/* a port nobody listens on: a closed socket's */
	close(loopback_socket(&port));
	plain_client(&h);
	h.port = port;
	assert_int_equal(ctl_http_request(&h, "GET", "/", NULL, 0, &r, err, sizeof(err)),
	    CTL_HTTP_ECONNECT);
	assert_true(util_bsnprintf(want, sizeof(want), "cannot connect to 127.0.0.1:%d: "
	    "Connection refused", port) >= 0);
	assert_string_equal(err, want);
	/* no such port, no such address: refused before connecting */
	errno = 0;
	assert_int_equal(ctl_net_connect("127.0.0.1", 0, 100), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(ctl_net_connect("localhost", 25, 100), -1);
	assert_int_equal(errno, EINVAL);
	/* a server that says nothing: the deadline ends it */
	plain_client(&h);
	h.timeout_ms = 300;
	answer(NULL);
	assert_int_equal(ctl_http_request(&h, "GET", "/", NULL, 0, &r, err, sizeof(err)),
	    CTL_HTTP_EPROTO);
	assert_true(util_bsnprintf(want, sizeof(want), "127.0.0.1:%d: Connection timed out",
	    srv.port) >= 0);
	assert_string_equal(err, want);
	/* HTTPS on loopback to a server still speaking plain HTTP: the same request in plain */
	plain_client(&h);
	h.tls = 1;
	pthread_mutex_lock(&srv.mu);
	hellos = srv.tls_hellos;
	pthread_mutex_unlock(&srv.mu);
	answer("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
	assert_int_equal(ctl_http_request(&h, "GET", "/api/stats", NULL, 0, &r, err, sizeof(err)),
	    CTL_HTTP_OK);
	assert_string_equal(r.body, "ok");
	ctl_http_resp_free(&r);
	pthread_mutex_lock(&srv.mu);
	assert_int_equal(srv.tls_hellos, hellos + 1);
	assert_non_null(strstr(srv.req, "GET /api/stats HTTP/1.0\r\n"));
	pthread_mutex_unlock(&srv.mu);
	/* beyond loopback (verify): a failed handshake is an error, never plain HTTP */
	h.verify = 1;
	util_strlcpy(h.verify_name, "mx.test.example", sizeof(h.verify_name));
	answer("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
	assert_int_equal(ctl_http_request(&h, "GET", "/api/stats", NULL, 0, &r, err, sizeof(err)),
	    CTL_HTTP_EPROTO);
	assert_string_equal(err, "TLS: handshake failed (certificate checked for mx.test.example)");
	pthread_mutex_lock(&srv.mu);
	assert_int_equal(srv.tls_hellos, hellos + 2);
	pthread_mutex_unlock(&srv.mu);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replies),
		cmocka_unit_test(test_request),
		cmocka_unit_test(test_failures),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
