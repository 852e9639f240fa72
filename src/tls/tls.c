/*
 * tls.c - TLS contexts for the SMTP/HTTPS server and the SMTP client, and
 *         what a session negotiated, in the words of Postfix's log lines
 *
 * Owns:     the SSL_CTX objects it creates (one reference each, given to
 *           the caller).
 * Lifetime: tls_server_new()/tls_client_new() to tls_ctx_free(); sessions
 *           (SSL) made from a context keep it alive (OpenSSL counts them).
 * Errors:   NULL with a reason in err; nothing here is fatal.
 * Context:  event-loop thread.
 *
 * Server policy (SPEC §10, docs/tls.md), the "best-configured Postfix":
 * TLS 1.2 and 1.3 only; TLS 1.2 ciphers are ECDHE (forward secrecy) with
 * AES-GCM or ChaCha20-Poly1305 (AEAD), no RSA key exchange, no CBC, no SHA-1
 * MACs; the TLS 1.3 suites are OpenSSL's three; the server picks (cipher
 * server preference); key exchange groups X25519, P-256, P-384; no
 * renegotiation, no compression. Resumption: one TLS 1.3 ticket per
 * handshake (OpenSSL sends two by default; one is enough for a client that
 * makes one connection at a time and costs one encryption less), TLS 1.2
 * tickets (keys rotated hourly, see struct tls_tickets), and a server-side
 * session cache for clients without tickets.
 * SSL_MODE_RELEASE_BUFFERS lets an idle session give its 34 KB of record
 * buffers back.
 */
#include "tls/tls.h"
#include "tls/tls_int.h"
#include "lib/util.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define TLS12_CIPHERS \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
#define TLS13_SUITES \
	"TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"
#define TLS_GROUPS          "X25519:P-256:P-384"
#define TLS_SESS_TIMEOUT    3600      /* Postfix's smtpd_tls_session_cache_timeout */
#define TLS_SESS_CACHE_MAX  20480     /* sessions kept for clients without tickets */
#define TLS_TICKET_ROTATE   3600      /* seconds a ticket key encrypts (Postfix: the cache timeout) */

/*
 * Session-ticket keys (RFC 5077 format, AES-256-CBC + HMAC-SHA256, as
 * OpenSSL's own): the current key encrypts new tickets and is replaced
 * every TLS_TICKET_ROTATE seconds; the previous one still decrypts (and
 * the ticket is renewed), so a ticket lives at most two periods and a
 * stolen key exposes at most that much resumed traffic (forward secrecy,
 * like Postfix's tlsmgr). Kept in the context's ex_data; a reload copies
 * them into the new context.
 */
struct tls_tkey {
	unsigned char name[16];
	unsigned char aes[32];
	unsigned char hmac[32];
};

struct tls_tickets {
	struct tls_tkey cur, prev;
	int      have_prev;
	uint64_t made_us;                 /* monotonic: when cur was made */
};

static int tls_tickets_idx = -1;      /* ex_data index, made once (OpenSSL's registry) */

/* tls_error_text - see tls.h */
void
tls_error_text(char *buf, size_t size, const char *dflt)
{
	unsigned long e = ERR_peek_last_error();

	if (e == 0) {
		util_strlcpy(buf, dflt, size);
	} else {
		ERR_error_string_n(e, buf, size);
	}
	ERR_clear_error();
}

/* ctx_fail - "what: OpenSSL's reason" into err */
static void
ctx_fail(char *err, size_t errlen, const char *what)
{
	char why[256];

	tls_error_text(why, sizeof(why), "unknown error");
	if (util_bsnprintf(err, errlen, "%s: %s", what, why) < 0)
		util_strlcpy(err, what, errlen);
}

/* tickets_free - ex_data destructor: wipe and free the keys with their context */
static void
tickets_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
	if (ptr != NULL)
		OPENSSL_clear_free(ptr, sizeof(struct tls_tickets));
}

/* tkey_new - a fresh random key; 0 or -1 */
static int
tkey_new(struct tls_tkey *k)
{
	return RAND_bytes(k->name, sizeof(k->name)) == 1 &&
	    RAND_priv_bytes(k->aes, sizeof(k->aes)) == 1 &&
	    RAND_priv_bytes(k->hmac, sizeof(k->hmac)) == 1 ? 0 : -1;
}

/* tkey_use - set up the cipher and the MAC for key k; 0 or -1 */
static int
tkey_use(const struct tls_tkey *k, unsigned char *iv, EVP_CIPHER_CTX *cctx,
    EVP_MAC_CTX *hctx, int enc)
{
	OSSL_PARAM params[2];

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_MAC_init(hctx, k->hmac, sizeof(k->hmac), params) != 1)
		return -1;
	if (enc)
		return EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv) == 1 ? 0 : -1;
	return EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv) == 1 ? 0 : -1;
}

/*
 * ticket_cb - OpenSSL's ticket key callback: enc = 1 for a new ticket (1,
 * or -1 on failure); enc = 0 to open one: 1 with the current key (2 for
 * TLS 1.3, see below), 2 with the previous one (OpenSSL then issues a
 * fresh ticket), 0 = unknown key (a full handshake follows).
 */
static int
ticket_cb(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
    EVP_MAC_CTX *hctx, int enc)
{
	struct tls_tickets *t = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls_tickets_idx);
	uint64_t now = util_mono_us();

	if (t == NULL)
		return enc ? -1 : 0;
	if (enc) {
		if (now - t->made_us >= (uint64_t)TLS_TICKET_ROTATE * 1000000u) {
			struct tls_tkey k;
			if (tkey_new(&k) == 0) {
				t->prev = t->cur;
				t->have_prev = 1;
				t->cur = k;
				t->made_us = now;
			}
			OPENSSL_cleanse(&k, sizeof(k));
		}
		if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1)
			return -1;
		memcpy(name, t->cur.name, sizeof(t->cur.name));
		return tkey_use(&t->cur, iv, cctx, hctx, 1) == 0 ? 1 : -1;
	}
	/*
	 * TLS 1.3 tickets are for one use (RFC 8446 §C.4): asking for a
	 * renewal (2) makes OpenSSL send a fresh ticket after every resumed
	 * handshake, so a client that comes back again resumes again.
	 */
	if (memcmp(name, t->cur.name, sizeof(t->cur.name)) == 0)
		return tkey_use(&t->cur, iv, cctx, hctx, 0) == 0 ?
		    (SSL_version(ssl) >= TLS1_3_VERSION ? 2 : 1) : 0;
	if (t->have_prev && memcmp(name, t->prev.name, sizeof(t->prev.name)) == 0)
		return tkey_use(&t->prev, iv, cctx, hctx, 0) == 0 ? 2 : 0;
	return 0;
}

/* tickets_setup - ctx's ticket keys: a copy of prev's, or new ones; 0 or -1 */
static int
tickets_setup(SSL_CTX *ctx, SSL_CTX *prev)
{
	struct tls_tickets *t, *old;

	if (tls_tickets_idx < 0 &&
	    (tls_tickets_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, tickets_free)) < 0)
		return -1;
	if ((t = OPENSSL_zalloc(sizeof(*t))) == NULL)
		return -1;
	old = prev != NULL ? SSL_CTX_get_ex_data(prev, tls_tickets_idx) : NULL;
	if (old != NULL) {
		*t = *old;
	} else if (tkey_new(&t->cur) < 0) {
		OPENSSL_clear_free(t, sizeof(*t));
		return -1;
	} else {
		t->made_us = util_mono_us();
	}
	if (SSL_CTX_set_ex_data(ctx, tls_tickets_idx, t) != 1) {
		OPENSSL_clear_free(t, sizeof(*t));
		return -1;
	}
	return SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb) == 1 ? 0 : -1;
}

/* tls_tickets_age - see tls_int.h */
void
tls_tickets_age(SSL_CTX *ctx, unsigned secs)
{
	struct tls_tickets *t = tls_tickets_idx < 0 ? NULL :
	    SSL_CTX_get_ex_data(ctx, tls_tickets_idx);

	if (t != NULL)
		t->made_us -= (uint64_t)secs * 1000000u;
}

/* ctx_common - the settings both sides share: versions, no renegotiation, buffers */
static int
ctx_common(SSL_CTX *ctx)
{
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, 0) != 1)
		return -1;
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return 0;
}

/* tls_server_new - see tls.h */
SSL_CTX *
tls_server_new(const char *root, const char *key_file, const char *cert_file,
    SSL_CTX *prev, char *err, size_t errlen)
{
	static const unsigned char sid_ctx[] = "mtad";
	struct tls_keys k;
	SSL_CTX *ctx;

	if (tls_keys_load(root, key_file, cert_file, &k, err, errlen) < 0)
		return NULL;
	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		ctx_fail(err, errlen, "cannot create a TLS context");
		goto fail;
	}
	if (ctx_common(ctx) < 0 ||
	    SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, TLS13_SUITES) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1) {
		ctx_fail(err, errlen, "TLS policy refused");
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_cert_and_key(ctx, k.cert, k.key, k.chain, 1) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		ctx_fail(err, errlen, "cannot use the key and certificate");
		goto fail;
	}
	/* resumption: tickets (TLS 1.2 and 1.3) and a session cache */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_sess_set_cache_size(ctx, TLS_SESS_CACHE_MAX);
	SSL_CTX_set_timeout(ctx, TLS_SESS_TIMEOUT);
	/* a reload keeps the ticket keys: tickets issued before it still resume */
	if (SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1) != 1 ||
	    SSL_CTX_set_num_tickets(ctx, 1) != 1 || tickets_setup(ctx, prev) < 0) {
		ctx_fail(err, errlen, "cannot set up session resumption");
		goto fail;
	}
	tls_keys_free(&k);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	tls_keys_free(&k);
	return NULL;
}

/*
 * The client session cache (tls_client_session): per context, at most
 * TLS_CLIENT_CACHE_MAX entries "key -> SSL_SESSION", the least recently
 * used one replaced when full. OpenSSL hands every new session (TLS 1.2
 * at the end of the handshake, TLS 1.3 with each ticket) to ccache_new_cb,
 * which files it under the key the connection was given.
 */
#define TLS_CLIENT_CACHE_MAX 256

struct tls_ccache_ent {
	char        *key;                 /* NULL: free slot */
	SSL_SESSION *sess;
	uint64_t     used;                /* ccache tick of the last use */
};

struct tls_ccache {
	struct tls_ccache_ent ent[TLS_CLIENT_CACHE_MAX];
	uint64_t tick;
};

static int tls_ccache_idx = -1;       /* SSL_CTX ex_data: struct tls_ccache */
static int tls_ckey_idx = -1;         /* SSL ex_data: the connection's cache key (char *) */

/* ccache_free - ex_data destructor of the context's cache */
static void
ccache_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct tls_ccache *c = ptr;

	(void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
	if (c == NULL)
		return;
	for (size_t i = 0; i < TLS_CLIENT_CACHE_MAX; i++) {
		free(c->ent[i].key);
		SSL_SESSION_free(c->ent[i].sess);
	}
	free(c);
}

/* ckey_free - ex_data destructor of a connection's key */
static void
ckey_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
	free(ptr);
}

/* ccache_find - the entry of key, or NULL */
static struct tls_ccache_ent *
ccache_find(struct tls_ccache *c, const char *key)
{
	for (size_t i = 0; i < TLS_CLIENT_CACHE_MAX; i++)
		if (c->ent[i].key != NULL && strcmp(c->ent[i].key, key) == 0)
			return &c->ent[i];
	return NULL;
}

/* ccache_new_cb - OpenSSL's new-session callback: 1 = we keep the reference */
static int
ccache_new_cb(SSL *ssl, SSL_SESSION *sess)
{
	struct tls_ccache *c = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls_ccache_idx);
	const char *key = SSL_get_ex_data(ssl, tls_ckey_idx);
	struct tls_ccache_ent *e;

	if (c == NULL || key == NULL || !SSL_SESSION_is_resumable(sess))
		return 0;
	if ((e = ccache_find(c, key)) == NULL) {
		struct tls_ccache_ent *lru = &c->ent[0];
		char *k;

		for (size_t i = 0; i < TLS_CLIENT_CACHE_MAX; i++) {
			if (c->ent[i].key == NULL) {
				lru = &c->ent[i];
				break;
			}
			if (c->ent[i].used < lru->used)
				lru = &c->ent[i];
		}
		if ((k = strdup(key)) == NULL)
			return 0;
		free(lru->key);
		SSL_SESSION_free(lru->sess);
		lru->key = k;
		lru->sess = NULL;
		e = lru;
	}
	SSL_SESSION_free(e->sess);
	e->sess = sess;
	e->used = ++c->tick;
	return 1;
}

/* client_setup - the policy and the session cache of a client context */
static SSL_CTX *
client_setup(char *err, size_t errlen)
{
	SSL_CTX *ctx;
	struct tls_ccache *c;

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		ctx_fail(err, errlen, "cannot create a TLS client context");
		return NULL;
	}
	if (ctx_common(ctx) < 0) {
		ctx_fail(err, errlen, "TLS client policy refused");
		SSL_CTX_free(ctx);
		return NULL;
	}
	if ((tls_ccache_idx < 0 && (tls_ccache_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL,
	    NULL, ccache_free)) < 0) ||
	    (tls_ckey_idx < 0 && (tls_ckey_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL,
	    ckey_free)) < 0) ||
	    (c = calloc(1, sizeof(*c))) == NULL) {
		ctx_fail(err, errlen, "out of memory");
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_set_ex_data(ctx, tls_ccache_idx, c) != 1) {
		free(c);
		ctx_fail(err, errlen, "out of memory");
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, ccache_new_cb);
	/*
	 * The handshake never fails on the peer's certificate unless
	 * tls_client_verify() asks for it (Postfix's "may" and "encrypt"):
	 * the verification result is read afterwards and logged.
	 */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

/* tls_client_new - see tls.h; an unusable system CA store only makes every peer "Untrusted" */
SSL_CTX *
tls_client_new(char *err, size_t errlen)
{
	SSL_CTX *ctx = client_setup(err, errlen);

	if (ctx != NULL && SSL_CTX_set_default_verify_paths(ctx) != 1)
		ERR_clear_error();
	return ctx;
}

/* tls_client_new_ca - see tls.h */
SSL_CTX *
tls_client_new_ca(const char *root, const char *ca_file, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	if (ca_file == NULL || ca_file[0] == '\0')
		return tls_client_new(err, errlen);
	if ((ctx = client_setup(err, errlen)) == NULL)
		return NULL;
	if (tls_keys_read_cas(root, ca_file, SSL_CTX_get_cert_store(ctx), err, errlen) < 0) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* tls_client_verify - see tls.h */
int
tls_client_verify(SSL *ssl, const char *name)
{
	unsigned char a[16];
	int r;

	SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	if (inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1)
		r = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
	else {
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		r = SSL_set1_host(ssl, name);
	}
	if (r != 1) {
		ERR_clear_error();
		return -1;
	}
	return 0;
}

/* tls_client_session - see tls.h */
int
tls_client_session(SSL *ssl, const char *key)
{
	struct tls_ccache *c = tls_ccache_idx < 0 ? NULL :
	    SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls_ccache_idx);
	struct tls_ccache_ent *e;
	char *k;

	if (c == NULL || (k = strdup(key)) == NULL)
		return -1;
	if (SSL_set_ex_data(ssl, tls_ckey_idx, k) != 1) {
		free(k);
		return -1;
	}
	if ((e = ccache_find(c, key)) == NULL || e->sess == NULL)
		return 0;
	if (!SSL_SESSION_is_resumable(e->sess) ||
	    (uint64_t)SSL_SESSION_get_time(e->sess) + (uint64_t)SSL_SESSION_get_timeout(e->sess) <
	    (uint64_t)time(NULL)) {
		SSL_SESSION_free(e->sess);
		e->sess = NULL;
		return 0;
	}
	e->used = ++c->tick;
	if (SSL_set_session(ssl, e->sess) != 1)
		ERR_clear_error();
	return 0;
}

/* tls_ctx_free - see tls.h */
SSL_CTX *
tls_ctx_free(SSL_CTX *ctx)
{
	SSL_CTX_free(ctx);
	return NULL;
}

/* tls_cert_describe - see tls.h */
void
tls_cert_describe(SSL_CTX *ctx, char *buf, size_t size)
{
	X509 *x = ctx != NULL ? SSL_CTX_get0_certificate(ctx) : NULL;
	char subj[256];
	char *serial = NULL;
	BIGNUM *bn = NULL;

	buf[0] = '\0';
	if (x == NULL)
		return;
	if (X509_NAME_oneline(X509_get_subject_name(x), subj, sizeof(subj)) == NULL)
		util_strlcpy(subj, "?", sizeof(subj));
	if ((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL)) != NULL)
		serial = BN_bn2hex(bn);
	if (util_bsnprintf(buf, size, "subject %s, serial %s", subj,
	    serial != NULL ? serial : "?") < 0)
		util_strlcpy(buf, subj, size);
	OPENSSL_free(serial);
	BN_free(bn);
}

/* tls_info_get - see tls.h */
void
tls_info_get(const SSL *ssl, struct tls_info *ti)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);

	memset(ti, 0, sizeof(*ti));
	util_strlcpy(ti->protocol, SSL_get_version(ssl), sizeof(ti->protocol));
	if (c != NULL) {
		util_strlcpy(ti->cipher, SSL_CIPHER_get_name(c), sizeof(ti->cipher));
		ti->bits = SSL_CIPHER_get_bits(c, &ti->alg_bits);
	} else {
		util_strlcpy(ti->cipher, "unknown", sizeof(ti->cipher));
	}
	ti->reused = SSL_session_reused(ssl);
	ti->verified = SSL_get0_peer_certificate(ssl) != NULL &&
	    SSL_get_verify_result(ssl) == X509_V_OK;
}

/* tls_info_text - see tls.h */
int
tls_info_text(const struct tls_info *ti, char *buf, size_t size)
{
	return util_bsnprintf(buf, size, "%s with cipher %s (%d/%d bits)", ti->protocol,
	    ti->cipher, ti->bits, ti->alg_bits);
}
