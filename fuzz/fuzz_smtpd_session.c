/*
 * fuzz_smtpd_session.c - libFuzzer harness for one whole inbound SMTP
 *                        session (src/smtpd/), as a client would drive it
 *
 * Owns:     once per process: an event base, two configurations (with and
 *           without the PROXY protocol), a queue in a temporary directory,
 *           a mail log on /dev/null, a TLS server context with a throwaway
 *           key, the server; per input: a socket pair and its session.
 * Lifetime: the server lives for the process; each input's session ends
 *           (EOF from the harness) and is freed before the next input.
 * Errors:   a broken invariant aborts (libFuzzer reports it as a crash): a
 *           session that does not end once its client has gone, or a
 *           session or commit still counted after it ended.
 * Context:  libFuzzer's thread and the queue's sync thread.
 *
 * Input: octet 0 chooses the setting (bit 0: smtpd_proxy_protocol =
 * haproxy; bits 1-2: the client is trusted 127.0.0.1, untrusted
 * 198.51.100.7, a proxy 192.0.2.1, or untrusted IPv6; bit 3: TLS offered;
 * bit 4: SMTPS, TLS from the first byte), octet 1 seeds the chunk sizes,
 * the rest (at most 64 KiB) is what the client sends: a PROXY header,
 * commands, DATA and BDAT content, STARTTLS and whatever follows it. It
 * goes through smtpd_accept() over a socket pair in random-sized chunks,
 * with the event loop run between them and every reply read, like
 * chasquid's whole-session fuzzing. Messages that get committed (to the
 * temporary queue, fsync and all) are removed again by the queue listener.
 */
#include <errno.h>
#include <ftw.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/event.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "lib/log.h"
#include "lib/util.h"
#include "mail/config.h"
#include "mail/maillog.h"
#include "metrics/metrics.h"
#include "queue/queue.h"
#include "smtpd/smtpd_int.h"

#define FUZZ_MAX     65536
#define FUZZ_TURNS   4000        /* loop turns of at most 1 ms once the client is gone */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct {
	struct event_base *base;
	struct config *cfg[2];       /* [0] direct only, [1] smtpd_proxy_protocol = haproxy */
	struct queue *q;
	struct maillog *ml;
	struct metrics m;
	struct smtpd *srv;
	SSL_CTX *tls;
	struct event *tick;
	char dir[64];
	unsigned long committed;     /* messages that reached the queue, for the exit line */
} F;

static uint32_t
next_rand(uint32_t *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 16;
}

/* fuzz_remove - the queue listener: forget each committed message at once */
static void
fuzz_remove(void *arg, struct queue_msg *m)
{
	(void)arg;
	F.committed++;
	if (queue_remove(F.q, m) < 0)
		abort();
}

/* rm_one - nftw() callback of fuzz_exit */
static int
rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	remove(path);
	return 0;
}

/* fuzz_exit - say how many messages were committed; remove the temporary queue */
static void
fuzz_exit(void)
{
	fprintf(stderr, "fuzz_smtpd_session: %lu message(s) committed\n", F.committed);
	nftw(F.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* fuzz_tls - a server context with a fresh P-256 key and a self-signed certificate */
static SSL_CTX *
fuzz_tls(void)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *crt = X509_new();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	X509_NAME *name;

	if (key == NULL || crt == NULL || ctx == NULL)
		abort();
	ASN1_INTEGER_set(X509_get_serialNumber(crt), 1);
	X509_gmtime_adj(X509_getm_notBefore(crt), 0);
	X509_gmtime_adj(X509_getm_notAfter(crt), 86400);
	X509_set_pubkey(crt, key);
	name = X509_get_subject_name(crt);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"fuzz.example",
	    -1, -1, 0);
	X509_set_issuer_name(crt, name);
	if (X509_sign(crt, key, EVP_sha256()) <= 0 || SSL_CTX_use_certificate(ctx, crt) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, key) != 1)
		abort();
	X509_free(crt);
	EVP_PKEY_free(key);
	return ctx;
}

/* fuzz_config - one configuration; the harness binds no listener */
static struct config *
fuzz_config(int proxy)
{
	char text[1024], err[1024];
	struct config *cfg;
	int n = snprintf(text, sizeof(text),
	    "data_dir = %s\n"
	    "hostname = fuzz.example\n"
	    "smtpd_trusted_networks = 127.0.0.0/8\n"
	    "message_size_limit = 100000\n"
	    "smtpd_recipient_limit = 20\n"
	    "smtpd_client_connection_limit = 2\n"
	    "%s", F.dir, proxy ? "smtpd_proxy_protocol = haproxy\n"
	    "smtpd_proxy_networks = 192.0.2.0/24, 2001:db8::1\n" : "");

	if (n < 0 || (size_t)n >= sizeof(text))
		abort();
	cfg = config_parse_buffer("fuzz.conf", text, (size_t)n, NULL, err, sizeof(err));
	if (cfg == NULL) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	cfg->n_smtp_listen = 0;
	cfg->n_smtps_listen = 0;
	return cfg;
}

/* tick_cb - keeps EVLOOP_ONCE from sleeping longer than a millisecond */
static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

static void
fuzz_init(void)
{
	char err[512];

	log_init("fuzz_smtpd_session", 0);
	F.base = event_base_new();
	util_strlcpy(F.dir, "/dev/shm/mtad-fuzz-XXXXXX", sizeof(F.dir));
	if (mkdtemp(F.dir) == NULL) {
		util_strlcpy(F.dir, "/tmp/mtad-fuzz-XXXXXX", sizeof(F.dir));
		if (mkdtemp(F.dir) == NULL)
			abort();
	}
	F.cfg[0] = fuzz_config(0);
	F.cfg[1] = fuzz_config(1);
	F.q = queue_open(F.base, F.dir, err, sizeof(err));
	F.ml = maillog_open("/dev/null", "fuzz.example", err, sizeof(err));
	F.srv = smtpd_new(F.base, F.cfg[0], F.q, F.ml, &F.m, err, sizeof(err));
	F.tls = fuzz_tls();
	F.tick = evtimer_new(F.base, tick_cb, NULL);
	if (F.base == NULL || F.q == NULL || F.srv == NULL || F.tick == NULL) {
		fprintf(stderr, "fuzz_smtpd_session: %s\n", err);
		abort();
	}
	queue_set_listener(F.q, fuzz_remove, NULL);
	atexit(fuzz_exit);
}

/* drain - read and drop what the server sent */
static void
drain(int fd)
{
	char buf[16384];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

/* turn - one loop pass that waits at most a millisecond */
static void
turn(void)
{
	struct timeval ms = { 0, 1000 };

	evtimer_add(F.tick, &ms);
	event_base_loop(F.base, EVLOOP_ONCE);
	evtimer_del(F.tick);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct sockaddr_storage ss;
	socklen_t sslen;
	unsigned mode;
	uint32_t seed;
	size_t pos = 0;
	int sv[2];

	if (!ready) {
		fuzz_init();
		ready = 1;
	}
	if (size < 2 || size > FUZZ_MAX + 2)
		return 0;
	mode = data[0];
	seed = data[1];
	data += 2;
	size -= 2;

	memset(&ss, 0, sizeof(ss));
	switch ((mode >> 1) & 3) {
	case 0:
	case 1:
	case 2: {
		static const char *const v4[3] = { "127.0.0.1", "198.51.100.7", "192.0.2.1" };
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(40000);
		inet_pton(AF_INET, v4[(mode >> 1) & 3], &sin->sin_addr);
		sslen = sizeof(*sin);
		break;
	}
	default: {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(40000);
		inet_pton(AF_INET6, (mode & 0x20) ? "2001:db8::1" : "2001:db8::2",
		    &sin6->sin6_addr);
		sslen = sizeof(*sin6);
		break;
	}
	}
	smtpd_set_config(F.srv, F.cfg[mode & 1]);
	smtpd_set_tls(F.srv, (mode & 0x18) ? F.tls : NULL);

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	smtpd_accept(F.srv, sv[0], (const struct sockaddr *)&ss, sslen, (mode & 0x10) != 0);

	while (pos < size) {
		size_t n = 1 + next_rand(&seed) % 700;
		ssize_t w;

		if (n > size - pos)
			n = size - pos;
		w = send(sv[1], data + pos, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			break;                   /* the server closed: the rest is unsent */
		if (w > 0)
			pos += (size_t)w;
		event_base_loop(F.base, EVLOOP_NONBLOCK);
		drain(sv[1]);
		if (w <= 0)
			turn();                  /* a commit on its way, or a full socket */
	}
	/* the client is done: the session must end by itself */
	shutdown(sv[1], SHUT_WR);
	for (int i = 0; i < FUZZ_TURNS && (F.srv->nsess != 0 || F.srv->ncommits != 0); i++) {
		drain(sv[1]);
		turn();
	}
	drain(sv[1]);
	close(sv[1]);
	if (F.srv->nsess != 0 || F.srv->ncommits != 0) {
		fprintf(stderr, "fuzz_smtpd_session: %zu session(s), %zu commit(s) left after "
		    "the client went away\n", F.srv->nsess, F.srv->ncommits);
		abort();
	}
	if (F.m.sessions_active != 0 || F.srv->ipt_count != 0)
		abort();
	return 0;
}
