/*
 * tls_int.h - private parts of src/tls/tls*.c: the loaded key pair
 *
 * Owns:     struct tls_keys: a private key, its certificate and the chain.
 * Lifetime: tls_keys_load() to tls_keys_free().
 * Errors:   tls_keys_load() returns -1 with the SPEC §3 text in err.
 * Context:  event-loop thread (start-up, SIGHUP).
 */
#ifndef MTAD_TLS_INT_H
#define MTAD_TLS_INT_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

struct tls_keys {
	EVP_PKEY *key;
	X509     *cert;              /* the leaf: the first certificate of the file */
	STACK_OF(X509) *chain;       /* the others, in file order (may be empty) */
};

/* tls_keys_load - read and check the pair (see tls_keys_check in tls.h) */
int tls_keys_load(const char *root, const char *key_file, const char *cert_file,
    struct tls_keys *k, char *err, size_t errlen);
/* tls_keys_free - release what tls_keys_load() gave (zeroes k) */
void tls_keys_free(struct tls_keys *k);

/* tls_keys_read_cas - add the PEM certificates of the key-store file rel to store; 0 or -1 */
int tls_keys_read_cas(const char *root, const char *rel, X509_STORE *store, char *err,
    size_t errlen);

/* tls_tickets_age - tests only: make ctx's current ticket key secs seconds older */
struct ssl_ctx_st;
void tls_tickets_age(struct ssl_ctx_st *ctx, unsigned secs);

#endif
