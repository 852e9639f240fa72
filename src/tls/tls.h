/*
 * tls.h - TLS for mtad (public interface of src/tls/tls*.c): the key store,
 *         server and client contexts, and what a session negotiated
 *
 * Owns:     OpenSSL contexts (SSL_CTX) made here; the key-store reader
 *           process started by tls_keys_helper_start().
 * Lifetime: a context from tls_server_new()/tls_client_new() to
 *           tls_ctx_free(). SSL_CTX is reference-counted by OpenSSL: every
 *           SSL made from it holds a reference, so a context replaced on
 *           SIGHUP lives on until the last session that uses it ends.
 * Errors:   the key store functions write the SPEC §3 text into err ("Error:
 *           SSL keys could not be found on key volume! (FILE: why)");
 *           context creation failures say what OpenSSL refused.
 * Context:  event-loop thread (start-up and SIGHUP for the loaders, which
 *           read small files with blocking I/O, like the configuration).
 *
 * Policy (docs/tls.md): TLS 1.2 and 1.3 only; forward-secret AEAD ciphers
 * only (ECDHE with AES-GCM or ChaCha20-Poly1305 for TLS 1.2, the TLS 1.3
 * suites), the server's order; session tickets and a session cache so that
 * repeat clients resume; renegotiation off. The client side (outbound
 * STARTTLS) uses TLS 1.2+ with the system CA store (OpenSSL's default
 * paths, so SSL_CERT_FILE / SSL_CERT_DIR in the environment change it) and
 * reports whether the peer's chain verified.
 */
#ifndef MTAD_TLS_H
#define MTAD_TLS_H

#include <stddef.h>
#include <sys/types.h>

struct ssl_ctx_st;
struct ssl_st;

#define TLS_KEYS_ERR "Error: SSL keys could not be found on key volume!"

/* --- key store ------------------------------------------------------------- */

/*
 * tls_keys_check - SPEC §3: key_file and cert_file, relative to the key
 * store root, exist inside it, are readable regular PEM files, the key has
 * no passphrase and the certificate matches it. root "" = no key store.
 * 0, or -1 with the SPEC text and "(FILE: why)" in err.
 */
int tls_keys_check(const char *root, const char *key_file, const char *cert_file,
    char *err, size_t errlen);

/*
 * tls_keys_helper_start - when running as root, before privileges are
 * dropped: fork a small process that becomes uid:gid keeping only
 * CAP_DAC_READ_SEARCH (priv_keep_read_only) and does one thing: read files
 * beneath root (so SIGHUP can re-read a key only root may read). From then
 * on the key store functions read through it. A no-op (0) when not root.
 * -1 with a reason in err when the process cannot be started or cannot
 * drop its privileges. Call it before any thread exists.
 */
int tls_keys_helper_start(const char *root, uid_t uid, gid_t gid, char *err, size_t errlen);

/*
 * tls_keys_read - the file rel under the key store root (at most 1 MiB,
 * inside the store: no "..", no symbolic link out of it), read through the
 * privileged reader when it runs, for the other key material on the store
 * (DKIM keys, the SMTP AUTH users file). A malloc'ed, NUL-terminated copy
 * of *len bytes (the caller wipes and frees it), or NULL with why.
 */
char *tls_keys_read(const char *root, const char *rel, size_t *len, char *why, size_t whylen);

/*
 * tls_keys_read_text - tls_keys_read() for text files (secrets, maps): no
 * key store, a missing file or a NUL in it is an error, with "FILE: why"
 * in err. The caller wipes (when it holds a secret) and frees it.
 * tls_keys_read_line - its first line without the line end into buf
 * (SPEC §11: a secret read from a file); 0, or -1 with "FILE: why" (also
 * for an empty first line or one that does not fit).
 */
char *tls_keys_read_text(const char *root, const char *rel, size_t *len, char *err,
    size_t errlen);
int tls_keys_read_line(const char *root, const char *rel, char *buf, size_t size, char *err,
    size_t errlen);

/* --- contexts ---------------------------------------------------------------- */

/*
 * tls_server_new - a server context with the key pair from the key store
 * (as tls_keys_check). prev (may be NULL): the context it replaces, whose
 * session-ticket keys are carried over so that tickets issued before a
 * reload still resume. NULL with err on failure.
 */
struct ssl_ctx_st *tls_server_new(const char *root, const char *key_file,
    const char *cert_file, struct ssl_ctx_st *prev, char *err, size_t errlen);

/*
 * tls_client_new - the outbound context: TLS 1.2+, the system CA store, or
 * with ca_file (key-store relative under root; NULL or "" = none) only the
 * CAs of that PEM file. The handshake itself checks nothing unless
 * tls_client_verify() asks for it. Each context keeps a cache of client
 * sessions (see tls_client_session). NULL with err.
 */
struct ssl_ctx_st *tls_client_new(char *err, size_t errlen);
struct ssl_ctx_st *tls_client_new_ca(const char *root, const char *ca_file, char *err,
    size_t errlen);

/*
 * tls_client_verify - before the handshake: the peer's chain must verify
 * and its certificate match name (RFC 6125 via X509_VERIFY_PARAM: DNS
 * names with one left-most wildcard label, no partial wildcards; an IP
 * address text matches an iPAddress entry), or the handshake fails.
 * 0 or -1 (out of memory).
 */
int tls_client_verify(struct ssl_st *ssl, const char *name);

/*
 * tls_client_session - before the handshake: offer the session cached
 * under key ("host:port" plus whatever else must match, e.g. the policy)
 * and cache the session the server gives under it (TLS 1.2 session ids and
 * tickets, TLS 1.3 tickets). The cache is the context's, bounded
 * (TLS_CLIENT_CACHE_MAX entries, the oldest goes) and in-memory; sessions
 * expire as the server says. 0, or -1 when the key cannot be kept (the
 * handshake is then simply a full one).
 */
int tls_client_session(struct ssl_st *ssl, const char *key);

/* tls_ctx_free - drop our reference; takes NULL, returns NULL */
struct ssl_ctx_st *tls_ctx_free(struct ssl_ctx_st *ctx);

/* tls_cert_subject - the leaf certificate's subject and serial, for logs; "" if none */
void tls_cert_describe(struct ssl_ctx_st *ctx, char *buf, size_t size);

/* --- sessions ----------------------------------------------------------------- */

/* What a finished handshake negotiated. */
struct tls_info {
	char protocol[16];          /* "TLSv1.3" */
	char cipher[64];            /* "TLS_AES_256_GCM_SHA384" */
	int  bits, alg_bits;        /* 256, 256 */
	int  reused;                /* the session was resumed */
	int  verified;              /* client side: the peer's chain verified */
};

/* tls_info_get - fill ti from a connected SSL */
void tls_info_get(const struct ssl_st *ssl, struct tls_info *ti);

/*
 * tls_info_text - Postfix's "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384
 * (256/256 bits)"; length, or -1 when it did not fit.
 */
int tls_info_text(const struct tls_info *ti, char *buf, size_t size);

/*
 * tls_error_text - the reason of the last failure in this thread's OpenSSL
 * error queue (emptied), or dflt when there is none.
 */
void tls_error_text(char *buf, size_t size, const char *dflt);

#endif
