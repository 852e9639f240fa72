/*
 * tls_load.c - SMTP load client with STARTTLS, for bench/tls_bench.sh
 *
 * Owns:     its threads, sockets and one client SSL_CTX.
 * Lifetime: the process: runs until the message count or the time limit,
 *           prints one result line and exits.
 * Errors:   a failed session is counted and the thread goes on; setup
 *           failures exit non-zero with a message.
 * Context:  N threads, one per concurrent session slot, blocking sockets
 *           (a load generator, not part of mtad: simple beats clever here).
 *
 * Each session: greeting, EHLO, STARTTLS, TLS handshake (resuming the
 * thread's previous session with -r), EHLO, then MAIL, RCPT, DATA with a
 * body of -S bytes and QUIT (or with -x only QUIT: a handshake per
 * connection and nothing else). smtp-source (Postfix) cannot do TLS.
 * With -A user:password, each session logs in (AUTH PLAIN, want 235) after
 * the second EHLO, for bench/auth_bench.sh.
 *
 *   tls_load [-c sessions] [-n messages] [-t seconds] [-S bytes] [-r] [-x]
 *            [-f from] [-a to] [-H host] [-A user:password] PORT
 *
 * Output (one line, key=value): sessions=N ok=N failed=N resumed=N
 * seconds=S rate=R (ok sessions per second) plus client CPU seconds.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#define LINE_MAX_BYTES 4096
#define IO_TIMEOUT_SEC 30
#define MAX_THREADS    1000

struct opts {
	int sessions;
	long messages;
	double seconds;
	size_t size;
	int resume;
	int handshake_only;
	const char *from, *to, *host;
	int port;
	char auth[512];              /* "AUTH PLAIN <base64>" or "" */
};

static struct opts o = { 50, 5000, 30.0, 5120, 0, 0, "bench@client.example",
	"rcpt@dest.example", "127.0.0.1", 0, "" };
static SSL_CTX *ctx;
static char *body;
static size_t body_len;
static atomic_long started, ok, failed, resumed;
static double deadline;

/* now - monotonic seconds */
static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One connection: the socket, its SSL once started, a read buffer. */
struct conn {
	int fd;
	SSL *ssl;
	char buf[LINE_MAX_BYTES];
	size_t len;
};

/* c_read - some bytes into c->buf; -1 on EOF or error */
static int
c_read(struct conn *c)
{
	int n;

	if (c->len >= sizeof(c->buf))
		return -1;
	if (c->ssl != NULL)
		n = SSL_read(c->ssl, c->buf + c->len, (int)(sizeof(c->buf) - c->len));
	else
		n = (int)read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
	if (n <= 0)
		return -1;
	c->len += (size_t)n;
	return 0;
}

/* c_reply - read one whole (multi-line) reply; its code or -1 */
static int
c_reply(struct conn *c)
{
	for (;;) {
		char *p = c->buf, *end = c->buf + c->len;

		for (;;) {
			char *nl = memchr(p, '\n', (size_t)(end - p));
			if (nl == NULL)
				break;
			if (nl - p >= 4 && p[3] == ' ') {
				int code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
				size_t used = (size_t)(nl + 1 - c->buf);
				memmove(c->buf, nl + 1, c->len - used);
				c->len -= used;
				return code;
			}
			p = nl + 1;
		}
		if (c_read(c) < 0)
			return -1;
	}
}

/* c_write - all of buf; 0 or -1 */
static int
c_write(struct conn *c, const char *buf, size_t len)
{
	while (len > 0) {
		int n = c->ssl != NULL ? SSL_write(c->ssl, buf, (int)len)
		    : (int)send(c->fd, buf, len, MSG_NOSIGNAL);
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* c_cmd - send a line, want a reply starting with digit want/100 */
static int
c_cmd(struct conn *c, const char *line, int want)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf), "%s\r\n", line);

	if (n < 0 || (size_t)n >= sizeof(buf) || c_write(c, buf, (size_t)n) < 0)
		return -1;
	n = c_reply(c);
	return n / 100 == want / 100 ? 0 : -1;
}

/* session - one whole SMTP session; 0 on success. *sess: the thread's saved TLS session */
static int
session(SSL_SESSION **sess)
{
	struct sockaddr_in sin;
	struct timeval tv = { IO_TIMEOUT_SEC, 0 };
	struct conn c;
	int one = 1, rc = -1;
	char line[512];

	memset(&c, 0, sizeof(c));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)o.port);
	if (inet_pton(AF_INET, o.host, &sin.sin_addr) != 1)
		return -1;
	if ((c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(c.fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		goto out;
	if (c_reply(&c) != 220 || c_cmd(&c, "EHLO client.example", 250) < 0 ||
	    c_cmd(&c, "STARTTLS", 220) < 0)
		goto out;
	if (c.len != 0)                     /* nothing may come before the handshake */
		goto out;
	if ((c.ssl = SSL_new(ctx)) == NULL || SSL_set_fd(c.ssl, c.fd) != 1)
		goto out;
	if (o.resume && *sess != NULL)
		SSL_set_session(c.ssl, *sess);
	if (SSL_connect(c.ssl) != 1)
		goto out;
	if (SSL_session_reused(c.ssl))
		atomic_fetch_add(&resumed, 1);
	if (c_cmd(&c, "EHLO client.example", 250) < 0)
		goto out;
	if (o.auth[0] != '\0' && c_cmd(&c, o.auth, 235) < 0)
		goto out;
	if (!o.handshake_only) {
		snprintf(line, sizeof(line), "MAIL FROM:<%s>", o.from);
		if (c_cmd(&c, line, 250) < 0)
			goto out;
		snprintf(line, sizeof(line), "RCPT TO:<%s>", o.to);
		if (c_cmd(&c, line, 250) < 0 || c_cmd(&c, "DATA", 354) < 0)
			goto out;
		if (c_write(&c, body, body_len) < 0 || c_cmd(&c, ".", 250) < 0)
			goto out;
	}
	if (c_cmd(&c, "QUIT", 221) < 0)
		goto out;
	rc = 0;
	if (o.resume) {
		/* TLS 1.3: the ticket came after the handshake and was read with the replies */
		SSL_SESSION *s = SSL_get1_session(c.ssl);
		if (s != NULL && SSL_SESSION_is_resumable(s)) {
			SSL_SESSION_free(*sess);
			*sess = s;
		} else {
			SSL_SESSION_free(s);
		}
	}
	SSL_shutdown(c.ssl);
out:
	if (c.ssl != NULL)
		SSL_free(c.ssl);
	close(c.fd);
	ERR_clear_error();
	return rc;
}

/* worker - sessions until the count or the time is used up */
static void *
worker(void *arg)
{
	SSL_SESSION *sess = NULL;

	(void)arg;
	while (now() < deadline && atomic_fetch_add(&started, 1) < o.messages) {
		if (session(&sess) == 0)
			atomic_fetch_add(&ok, 1);
		else
			atomic_fetch_add(&failed, 1);
	}
	SSL_SESSION_free(sess);
	return NULL;
}

static void
usage(void)
{
	fprintf(stderr, "usage: tls_load [-c sessions] [-n messages] [-t seconds] [-S bytes] "
	    "[-r] [-x] [-f from] [-a to] [-H host] [-A user:password] PORT\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	pthread_t th[MAX_THREADS];
	struct rusage ru;
	double t0, el;
	int ch;

	while ((ch = getopt(argc, argv, "c:n:t:S:rxf:a:H:A:")) != -1) {
		switch (ch) {
		case 'A': {
			/* "\0user\0password", base64 (RFC 4616) */
			unsigned char raw[300];
			const char *colon = strchr(optarg, ':');
			size_t ul, pl;
			if (colon == NULL || (ul = (size_t)(colon - optarg)) + (pl = strlen(colon + 1)) + 2 > sizeof(raw))
				usage();
			raw[0] = '\0';
			memcpy(raw + 1, optarg, ul);
			raw[1 + ul] = '\0';
			memcpy(raw + 2 + ul, colon + 1, pl);
			memcpy(o.auth, "AUTH PLAIN ", 11);
			EVP_EncodeBlock((unsigned char *)o.auth + 11, raw, (int)(ul + pl + 2));
			break;
		}
		case 'c': o.sessions = (int)strtol(optarg, NULL, 10); break;
		case 'n': o.messages = strtol(optarg, NULL, 10); break;
		case 't': o.seconds = strtod(optarg, NULL); break;
		case 'S': o.size = (size_t)strtoul(optarg, NULL, 10); break;
		case 'r': o.resume = 1; break;
		case 'x': o.handshake_only = 1; break;
		case 'f': o.from = optarg; break;
		case 'a': o.to = optarg; break;
		case 'H': o.host = optarg; break;
		default: usage();
		}
	}
	if (optind + 1 != argc)
		usage();
	o.port = (int)strtol(argv[optind], NULL, 10);
	if (o.sessions < 1 || o.sessions > MAX_THREADS || o.port <= 0 || o.port > 65535 ||
	    o.messages < 1 || o.seconds <= 0)
		usage();

	/* the body: headers, then lines of 'x' up to size, CRLF, no leading dots */
	body_len = o.size + 128;
	if ((body = malloc(body_len)) == NULL)
		return 1;
	{
		size_t off = (size_t)snprintf(body, body_len, "Subject: tls bench\r\n"
		    "From: <%s>\r\nTo: <%s>\r\n\r\n", o.from, o.to);
		while (off + 78 < o.size + 64) {
			memset(body + off, 'x', 76);
			memcpy(body + off + 76, "\r\n", 2);
			off += 78;
		}
		body_len = off;
	}

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return 1;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);

	deadline = now() + o.seconds;
	t0 = now();
	for (int i = 0; i < o.sessions; i++)
		if (pthread_create(&th[i], NULL, worker, NULL) != 0) {
			fprintf(stderr, "tls_load: pthread_create: %s\n", strerror(errno));
			return 1;
		}
	for (int i = 0; i < o.sessions; i++)
		pthread_join(th[i], NULL);
	el = now() - t0;
	getrusage(RUSAGE_SELF, &ru);
	printf("sessions=%ld ok=%ld failed=%ld resumed=%ld seconds=%.2f rate=%.1f "
	    "client_cpu=%.2f\n", atomic_load(&ok) + atomic_load(&failed), atomic_load(&ok),
	    atomic_load(&failed), atomic_load(&resumed), el, (double)atomic_load(&ok) / el,
	    (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
	SSL_CTX_free(ctx);
	free(body);
	return atomic_load(&ok) > 0 ? 0 : 1;
}
