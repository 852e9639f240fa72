/*
 * ctl_http.c - a minimal HTTP/1.0 client for mtad's JSON API (mtactl)
 *
 * Owns:     the response body of each request until ctl_http_resp_free().
 * Lifetime: one connection per request (HTTP/1.0, "Connection: close").
 * Errors:   CTL_HTTP_ECONNECT when nothing answers (mtad is not running),
 *           CTL_HTTP_EPROTO for I/O errors, timeouts and malformed replies,
 *           with a reason in err.
 * Context:  command-line process; blocking with deadlines (ctl_net.c).
 *
 * The reply is read whole, up to CTL_HTTP_BODY_MAX, then split into
 * status line, headers and body; Content-Length is checked when given and
 * a chunked body (not expected for an HTTP/1.0 request) is decoded.
 */
#include "ctl/ctl_int.h"
#include "lib/base64.h"
#include "lib/util.h"
#include "mail/config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/ssl.h>
#include <poll.h>

#define CTL_HTTP_REQ_MAX 8192

/* ctl_http_is_loopback - is the numeric address in 127.0.0.0/8 or ::1? */
static int
ctl_http_is_loopback(const char *addr)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, addr, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, addr, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6) ||
		    (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	return 0;
}

/* ctl_http_init - host, port, basic auth credentials and TLS checks from the configuration */
int
ctl_http_init(struct ctl_http *h, const struct config *cfg)
{
	char cred[512];
	char b64[sizeof(h->auth)];
	int n;

	memset(h, 0, sizeof(*h));
	if (ctl_net_loopback(cfg->ui_address, h->host, sizeof(h->host)) < 0)
		return -1;
	h->port = cfg->ui_port;
	/* SPEC §11.1 finding: verify the UI's certificate when it is reached over a network. */
	if (!ctl_http_is_loopback(h->host)) {
		const char *store = config_key_store(cfg);

		h->verify = 1;
		if (util_strlcpy(h->verify_name, cfg->hostname, sizeof(h->verify_name)) >=
		    sizeof(h->verify_name)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		if (cfg->ssl_cert_file[0] != '\0' &&
		    util_bsnprintf(h->ca_file, sizeof(h->ca_file), "%s%s%s",
		    cfg->ssl_cert_file[0] == '/' ? "" : store,
		    cfg->ssl_cert_file[0] == '/' || store[0] == '\0' ? "" : "/",
		    cfg->ssl_cert_file) < 0) {
			errno = ENAMETOOLONG;
			return -1;
		}
	}
	h->timeout_ms = CTL_HTTP_TIMEOUT_MS;
	if (cfg->username == NULL || cfg->username[0] == '\0')
		return 0;
	if (util_bsnprintf(cred, sizeof(cred), "%s:%s", cfg->username,
	    cfg->password != NULL ? cfg->password : "") < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	n = base64_encode(cred, strlen(cred), b64, sizeof(b64));
	explicit_bzero(cred, sizeof(cred));
	if (n < 0 || util_bsnprintf(h->auth, sizeof(h->auth), "Basic %s", b64) < 0) {
		explicit_bzero(b64, sizeof(b64));
		errno = ENAMETOOLONG;
		return -1;
	}
	explicit_bzero(b64, sizeof(b64));
	return 0;
}

void
ctl_http_resp_free(struct ctl_http_resp *r)
{
	free(r->body);
	r->body = NULL;
	r->len = 0;
}

/* ctl_http_find_header - the value of header name in the header block, or NULL */
static const char *
ctl_http_find_header(const char *hdrs, size_t hlen, const char *name, size_t *vlen)
{
	const char *p = hdrs, *end = hdrs + hlen;
	size_t nlen = strlen(name);

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *le = eol != NULL ? eol : end;

		if ((size_t)(le - p) > nlen && p[nlen] == ':' && util_ncaseeq(p, nlen, name)) {
			const char *v = p + nlen + 1;

			while (v < le && (*v == ' ' || *v == '\t'))
				v++;
			while (le > v && (le[-1] == '\r' || le[-1] == ' ' || le[-1] == '\t'))
				le--;
			*vlen = (size_t)(le - v);
			return v;
		}
		p = eol != NULL ? eol + 1 : end;
	}
	return NULL;
}

/* ctl_http_dechunk - decode a chunked body in place (RFC 9112 §7.1); -1 if malformed */
static int
ctl_http_dechunk(char *body, size_t len, size_t *outlen)
{
	size_t in = 0, out = 0;

	for (;;) {
		size_t size = 0;
		int digits = 0;

		while (in < len) {
			int c = (unsigned char)body[in], v;

			if (c >= '0' && c <= '9')
				v = c - '0';
			else if (c >= 'a' && c <= 'f')
				v = c - 'a' + 10;
			else if (c >= 'A' && c <= 'F')
				v = c - 'A' + 10;
			else
				break;
			if (size > (SIZE_MAX >> 4))
				return -1;
			size = size << 4 | (size_t)v;
			digits++;
			in++;
		}
		if (digits == 0)
			return -1;
		while (in < len && body[in] != '\n')    /* chunk extensions */
			in++;
		if (in >= len)
			return -1;
		in++;
		if (size == 0)
			break;
		if (size > len - in)
			return -1;
		memmove(body + out, body + in, size);
		out += size;
		in += size;
		if (in < len && body[in] == '\r')
			in++;
		if (in >= len || body[in] != '\n')
			return -1;
		in++;
	}
	*outlen = out;
	return 0;
}

/* ctl_http_parse - split a whole reply into status and body (moved to the front of buf) */
static int
ctl_http_parse(char *buf, size_t len, struct ctl_http_resp *r, char *err, size_t errlen)
{
	char *hend = NULL, *sp;
	size_t hlen, blen, vlen;
	const char *v;
	long long status;
	char code[4];

	for (size_t i = 0; i + 1 < len; i++) {
		if (buf[i] == '\n' && (buf[i + 1] == '\n' ||
		    (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n'))) {
			hend = buf + i + (buf[i + 1] == '\n' ? 2 : 3);
			break;
		}
	}
	if (hend == NULL || len < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ') {
		util_bsnprintf(err, errlen, "malformed HTTP reply");
		return -1;
	}
	sp = buf + 9;
	memcpy(code, sp, 3);
	code[3] = '\0';
	if (util_strtonum(code, 100, 599, &status) < 0) {
		util_bsnprintf(err, errlen, "malformed HTTP status line");
		return -1;
	}
	hlen = (size_t)(hend - buf);
	blen = len - hlen;
	if ((v = ctl_http_find_header(buf, hlen, "Transfer-Encoding", &vlen)) != NULL &&
	    util_ncaseeq(v, vlen, "chunked")) {
		if (ctl_http_dechunk(hend, blen, &blen) < 0) {
			util_bsnprintf(err, errlen, "malformed chunked HTTP body");
			return -1;
		}
	} else if ((v = ctl_http_find_header(buf, hlen, "Content-Length", &vlen)) != NULL) {
		char num[24];
		long long cl;

		if (vlen == 0 || vlen >= sizeof(num)) {
			util_bsnprintf(err, errlen, "malformed Content-Length");
			return -1;
		}
		memcpy(num, v, vlen);
		num[vlen] = '\0';
		if (util_strtonum(num, 0, CTL_HTTP_BODY_MAX, &cl) < 0 || (size_t)cl > blen) {
			util_bsnprintf(err, errlen, "truncated HTTP reply");
			return -1;
		}
		blen = (size_t)cl;
	}
	memmove(buf, hend, blen);
	buf[blen] = '\0';
	r->status = (int)status;
	r->body = buf;
	r->len = blen;
	return 0;
}

/*
 * One connection, plain or TLS. For HTTPS (ssl_disabled = no) on loopback
 * the server's certificate is not verified: the peer is mtad on the
 * loopback address, reached by a number, and usually holds a certificate
 * for its public name only. XXX a local process that takes the port while
 * mtad is down would see the credentials, exactly as with plain HTTP on
 * loopback. Beyond loopback (h->verify) the chain must verify against the
 * system CA store or the certificates of ssl_cert_file (a self-signed or
 * private-CA certificate: its file in the key store is trusted as it
 * stands) and name hostname; a failure is an error, never a retry in
 * plain HTTP.
 */
struct ctl_http_conn {
	int      fd;
	SSL_CTX *ctx;
	SSL     *ssl;
	uint64_t deadline;
};

/* ctl_http_tls_wait - wait for what OpenSSL asked for; 0 to retry, -1 on error */
static int
ctl_http_tls_wait(struct ctl_http_conn *k, int r)
{
	switch (SSL_get_error(k->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return ctl_net_wait(k->fd, POLLIN, k->deadline);
	case SSL_ERROR_WANT_WRITE:
		return ctl_net_wait(k->fd, POLLOUT, k->deadline);
	default:
		errno = EPROTO;
		return -1;
	}
}

/* ctl_http_tls_trust - the system CA store and, when readable, the certificates of ca_file */
static int
ctl_http_tls_trust(SSL_CTX *ctx, const struct ctl_http *h)
{
	X509_STORE *st = SSL_CTX_get_cert_store(ctx);

	if (SSL_CTX_set_default_verify_paths(ctx) != 1)
		ERR_clear_error();
	if (h->ca_file[0] != '\0' && access(h->ca_file, R_OK) == 0 &&
	    X509_STORE_load_file(st, h->ca_file) != 1)
		ERR_clear_error();
	/* A trusted leaf (self-signed, or its CA not at hand) ends the chain. */
	return X509_STORE_set_flags(st, X509_V_FLAG_PARTIAL_CHAIN) == 1 ? 0 : -1;
}

static int
ctl_http_tls_start(struct ctl_http_conn *k, const struct ctl_http *h)
{
	int r;

	if ((k->ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    SSL_CTX_set_min_proto_version(k->ctx, TLS1_2_VERSION) != 1 ||
	    (h->verify && ctl_http_tls_trust(k->ctx, h) < 0) ||
	    (k->ssl = SSL_new(k->ctx)) == NULL || SSL_set_fd(k->ssl, k->fd) != 1) {
		errno = ENOMEM;
		return -1;
	}
	if (h->verify) {
		SSL_set_verify(k->ssl, SSL_VERIFY_PEER, NULL);
		if (SSL_set1_host(k->ssl, h->verify_name) != 1) {
			errno = ENOMEM;
			return -1;
		}
		(void)SSL_set_tlsext_host_name(k->ssl, h->verify_name);
	} else
		SSL_set_verify(k->ssl, SSL_VERIFY_NONE, NULL);
	/* OpenSSL 3 reports a close without close_notify (evhttp's) as an error */
	SSL_set_options(k->ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
	while ((r = SSL_connect(k->ssl)) != 1)
		if (ctl_http_tls_wait(k, r) < 0)
			return -1;
	return 0;
}

static int
ctl_http_send(struct ctl_http_conn *k, const void *buf, size_t len)
{
	const char *p = buf;
	uint64_t now = util_mono_us();

	if (k->ssl == NULL)
		return ctl_net_write_all(k->fd, buf, len,
		    (int)(k->deadline > now ? (k->deadline - now) / 1000 : 0));
	while (len > 0) {
		int chunk = len > 65536 ? 65536 : (int)len;
		int r = SSL_write(k->ssl, p, chunk);

		if (r > 0) {
			p += r;
			len -= (size_t)r;
		} else if (ctl_http_tls_wait(k, r) < 0)
			return -1;
	}
	return 0;
}

static ssize_t
ctl_http_recv(struct ctl_http_conn *k, void *buf, size_t len)
{
	uint64_t now = util_mono_us();

	if (k->ssl == NULL)
		return ctl_net_read(k->fd, buf, len,
		    (int)(k->deadline > now ? (k->deadline - now) / 1000 : 0));
	for (;;) {
		int r = SSL_read(k->ssl, buf, len > 65536 ? 65536 : (int)len);

		if (r > 0)
			return r;
		if (SSL_get_error(k->ssl, r) == SSL_ERROR_ZERO_RETURN)
			return 0;
		if (SSL_get_error(k->ssl, r) == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
			return 0;   /* closed without close_notify: HTTP/1.0 ends there */
		if (ctl_http_tls_wait(k, r) < 0)
			return -1;
	}
}

static void
ctl_http_close(struct ctl_http_conn *k)
{
	if (k->ssl != NULL) {
		(void)SSL_shutdown(k->ssl);
		SSL_free(k->ssl);
	}
	SSL_CTX_free(k->ctx);
	if (k->fd >= 0)
		close(k->fd);
	memset(k, 0, sizeof(*k));
	k->fd = -1;
}

/* ctl_http_request - send one request and read the whole reply */
int
ctl_http_request(const struct ctl_http *h, const char *method, const char *path,
    const char *body, size_t body_len, struct ctl_http_resp *r, char *err, size_t errlen)
{
	struct ctl_http_conn k;
	char req[CTL_HTTP_REQ_MAX], hostbuf[80];
	char *buf = NULL;
	size_t cap = 65536, len = 0;
	int rc = CTL_HTTP_EPROTO;

	memset(r, 0, sizeof(*r));
	memset(&k, 0, sizeof(k));
	k.fd = -1;
	if (strchr(h->host, ':') != NULL) {
		if (util_bsnprintf(hostbuf, sizeof(hostbuf), "[%s]:%d", h->host, h->port) < 0)
			return CTL_HTTP_EPROTO;
	} else if (util_bsnprintf(hostbuf, sizeof(hostbuf), "%s:%d", h->host, h->port) < 0)
		return CTL_HTTP_EPROTO;
	/*
	 * X-Requested-With: the API refuses state-changing requests without it
	 * (a browser cannot add it cross-site without a CORS preflight).
	 */
	if (util_bsnprintf(req, sizeof(req),
	    "%s %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: mtactl\r\n"
	    "Accept: application/json\r\nX-Requested-With: mtactl\r\n"
	    "%s%s%sContent-Length: %zu\r\n%sConnection: close\r\n\r\n",
	    method, path, hostbuf,
	    h->auth[0] != '\0' ? "Authorization: " : "", h->auth,
	    h->auth[0] != '\0' ? "\r\n" : "",
	    body_len, body_len > 0 ? "Content-Type: application/json\r\n" : "") < 0) {
		util_bsnprintf(err, errlen, "request too long");
		return CTL_HTTP_EPROTO;
	}
	if ((k.fd = ctl_net_connect(h->host, h->port, 5000)) < 0) {
		util_bsnprintf(err, errlen, "cannot connect to %s: %s", hostbuf, strerror(errno));
		explicit_bzero(req, sizeof(req));
		return CTL_HTTP_ECONNECT;
	}
	k.deadline = util_mono_us() + (uint64_t)h->timeout_ms * 1000;
	if (h->tls && ctl_http_tls_start(&k, h) < 0) {
		if (h->verify) {
			long v = k.ssl != NULL ? SSL_get_verify_result(k.ssl) : X509_V_OK;

			util_bsnprintf(err, errlen, "TLS: %s (certificate checked for %s)",
			    v != X509_V_OK ? X509_verify_cert_error_string(v) :
			    "handshake failed", h->verify_name);
			ctl_http_close(&k);
			explicit_bzero(req, sizeof(req));
			return CTL_HTTP_EPROTO;
		}
		/*
		 * XXX the UI serves HTTPS only once the daemon installs its TLS
		 * context; a handshake that fails on loopback is retried in
		 * plain HTTP, which is what the other side then speaks.
		 */
		ctl_http_close(&k);
		if ((k.fd = ctl_net_connect(h->host, h->port, 5000)) < 0) {
			util_bsnprintf(err, errlen, "cannot connect to %s: %s", hostbuf,
			    strerror(errno));
			explicit_bzero(req, sizeof(req));
			return CTL_HTTP_ECONNECT;
		}
		k.deadline = util_mono_us() + (uint64_t)h->timeout_ms * 1000;
	}
	if (ctl_http_send(&k, req, strlen(req)) < 0 ||
	    (body_len > 0 && ctl_http_send(&k, body, body_len) < 0)) {
		util_bsnprintf(err, errlen, "%s: %s", hostbuf, strerror(errno));
		goto done;
	}
	explicit_bzero(req, sizeof(req));
	if ((buf = malloc(cap)) == NULL) {
		util_bsnprintf(err, errlen, "out of memory");
		goto done;
	}
	for (;;) {
		ssize_t n;

		if (cap - len < 4096) {
			char *nb;

			if (cap >= CTL_HTTP_BODY_MAX + 65536) {
				util_bsnprintf(err, errlen, "reply larger than %u bytes",
				    CTL_HTTP_BODY_MAX);
				goto done;
			}
			cap *= 2;
			if ((nb = realloc(buf, cap)) == NULL) {
				util_bsnprintf(err, errlen, "out of memory");
				goto done;
			}
			buf = nb;
		}
		n = ctl_http_recv(&k, buf + len, cap - len - 1);
		if (n < 0) {
			util_bsnprintf(err, errlen, "%s: %s", hostbuf, strerror(errno));
			goto done;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (ctl_http_parse(buf, len, r, err, errlen) < 0)
		goto done;
	buf = NULL;     /* now r->body */
	rc = CTL_HTTP_OK;
done:
	explicit_bzero(req, sizeof(req));
	free(buf);
	ctl_http_close(&k);
	return rc;
}
