/*
 * test_tls.c - table-driven tests for src/tls/tls*.c: the key store loader,
 *              the server policy (checked by real handshakes over memory
 *              BIOs), resumption, ticket keys across a reload, log texts
 *
 * Owns:     a temporary key store under $TMPDIR (or /tmp), removed at the end.
 * Lifetime: one run.
 * Errors:   each failing row prints "got X, want Y" and fails its test.
 * Context:  single thread; no network (handshakes run through BIO pairs).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "lib/util.h"
#include "tls/tls.h"
#include "tls/tls_int.h"

static char root[256];

/* path - root + "/" + rel */
static void
path(char *buf, size_t size, const char *rel)
{
	assert_true(util_bsnprintf(buf, size, "%s/%s", root, rel) >= 0);
}

static EVP_PKEY *
make_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	assert_non_null(k);
	return k;
}

/* make_cert - a certificate for key signed by signer (self-signed when signer == key) */
static X509 *
make_cert(EVP_PKEY *key, EVP_PKEY *signer, const char *cn, long serial)
{
	X509 *x = X509_new();
	X509_NAME *name;

	assert_non_null(x);
	/* v1 for the self-signed CA: a trust anchor without a basicConstraints extension */
	assert_int_equal(X509_set_version(x, key == signer ? 0 : 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	assert_int_equal(X509_set_pubkey(x, key), 1);
	name = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0), 1);
	assert_int_equal(X509_set_issuer_name(x, name), 1);
	assert_true(X509_sign(x, signer, EVP_sha256()) > 0);
	return x;
}

static void
write_key(const char *rel, EVP_PKEY *key, const char *pass)
{
	char p[512];
	FILE *f;

	path(p, sizeof(p), rel);
	assert_non_null(f = fopen(p, "w"));
	if (pass != NULL)
		assert_int_equal(PEM_write_PrivateKey(f, key, EVP_aes_128_cbc(),
		    (const unsigned char *)pass, (int)strlen(pass), NULL, NULL), 1);
	else
		assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
	assert_int_equal(fclose(f), 0);
}

/* write_certs - rel gets a then b (b may be NULL): a leaf and its chain */
static void
write_certs(const char *rel, X509 *a, X509 *b)
{
	char p[512];
	FILE *f;

	path(p, sizeof(p), rel);
	assert_non_null(f = fopen(p, "w"));
	assert_int_equal(PEM_write_X509(f, a), 1);
	if (b != NULL)
		assert_int_equal(PEM_write_X509(f, b), 1);
	assert_int_equal(fclose(f), 0);
}

/* put - rel gets the n bytes of text */
static void
put(const char *rel, const char *text, size_t n)
{
	char p[512];
	FILE *f;

	path(p, sizeof(p), rel);
	assert_non_null(f = fopen(p, "w"));
	assert_int_equal(fwrite(text, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(p);
}

static int
setup(void **state)
{
	const char *tmp = getenv("TMPDIR");
	EVP_PKEY *k1, *k2, *ca;
	X509 *c1, *c2, *cac;

	(void)state;
	assert_true(util_bsnprintf(root, sizeof(root), "%s/test_tls.XXXXXX",
	    tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp") >= 0);
	assert_non_null(mkdtemp(root));
	k1 = make_key();
	k2 = make_key();
	ca = make_key();
	cac = make_cert(ca, ca, "test CA", 1);
	c1 = make_cert(k1, ca, "mx.test.example", 4242);
	c2 = make_cert(k2, k2, "other.example", 7);
	X509_set_issuer_name(c1, X509_get_subject_name(cac));
	assert_true(X509_sign(c1, ca, EVP_sha256()) > 0);
	write_key("key.pem", k1, NULL);
	write_certs("cert.pem", c1, cac);          /* leaf + chain */
	write_certs("leaf.pem", c1, NULL);
	write_key("key2.pem", k2, NULL);
	write_certs("cert2.pem", c2, NULL);
	write_key("locked.pem", k1, "secret");
	{
		char p[512];
		FILE *f;
		path(p, sizeof(p), "garbage.pem");
		assert_non_null(f = fopen(p, "w"));
		fputs("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", f);
		fclose(f);
	}
	/* the odd files of the key store tests */
	{
		char p[512];
		int fd;

		put("empty.pem", "", 0);
		put("nul.txt", "pass\0word\n", 10);
		put("pass.txt", "s3cret\r\nsecond line\n", 20);
		put("blank.txt", "\nsecond line\n", 13);
		put("nocert.pem", "just text\n", 10);
		path(p, sizeof(p), "big.pem");
		assert_true((fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >= 0);
		assert_int_equal(ftruncate(fd, 1024 * 1024 + 1), 0);
		close(fd);
		path(p, sizeof(p), "dir.pem");
		assert_int_equal(mkdir(p, 0700), 0);
		path(p, sizeof(p), "fifo.pem");
		assert_int_equal(mkfifo(p, 0600), 0);
		path(p, sizeof(p), "sub");
		assert_int_equal(mkdir(p, 0700), 0);
		write_key("sub/key.pem", k1, NULL);
		path(p, sizeof(p), "link_in.pem");
		assert_int_equal(symlink("sub/key.pem", p), 0);
		path(p, sizeof(p), "link_out.pem");
		assert_int_equal(symlink("../outside.pem", p), 0);
		/* a private key only its owner (root) may read */
		write_key("root_only.pem", k1, NULL);
		path(p, sizeof(p), "root_only.pem");
		assert_int_equal(chmod(p, 0600), 0);
	}
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(ca);
	X509_free(c1);
	X509_free(c2);
	X509_free(cac);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	return nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The key store loader: every SPEC §3 case, "got X, want Y". */
static void
test_keys(void **state)
{
	static const struct {
		const char *key, *cert, *want;          /* want NULL = loads */
		int chain;                              /* certificates after the leaf */
	} rows[] = {
		{ "key.pem", "cert.pem", NULL, 1 },
		{ "key.pem", "leaf.pem", NULL, 0 },
		{ "/key.pem", "cert.pem", NULL, 1 },    /* a leading / is still the store */
		{ "missing.pem", "cert.pem", TLS_KEYS_ERR " (missing.pem: No such file or directory)", 0 },
		{ "key.pem", "missing.pem", TLS_KEYS_ERR " (missing.pem: No such file or directory)", 0 },
		{ "locked.pem", "cert.pem", TLS_KEYS_ERR " (locked.pem: the private key is protected "
		    "by a passphrase)", 0 },
		{ "cert.pem", "cert.pem", TLS_KEYS_ERR " (cert.pem: not a PEM private key (or "
		    "protected by a passphrase))", 0 },
		{ "key.pem", "garbage.pem", TLS_KEYS_ERR " (garbage.pem: not a PEM certificate)", 0 },
		{ "key.pem", "cert2.pem", TLS_KEYS_ERR " (cert2.pem: the certificate does not match "
		    "the private key)", 0 },
		{ "../key.pem", "cert.pem", TLS_KEYS_ERR " (../key.pem: '..' leaves the key store)", 0 },
		{ "", "cert.pem", TLS_KEYS_ERR " (: empty file name)", 0 },
	};
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct tls_keys k;
		char err[512] = "";
		int rc = tls_keys_load(root, rows[i].key, rows[i].cert, &k, err, sizeof(err));

		if (rows[i].want == NULL) {
			if (rc != 0) {
				print_error("row %zu: got %s, want success\n", i, err);
				failed++;
				continue;
			}
			if (sk_X509_num(k.chain) != rows[i].chain) {
				print_error("row %zu: got a chain of %d, want %d\n", i,
				    sk_X509_num(k.chain), rows[i].chain);
				failed++;
			}
			tls_keys_free(&k);
			continue;
		}
		if (rc != -1 || strcmp(err, rows[i].want) != 0) {
			print_error("row %zu: got %d \"%s\", want -1 \"%s\"\n", i, rc, err, rows[i].want);
			failed++;
		}
		/* the check function says the same */
		char err2[512] = "";
		if (tls_keys_check(root, rows[i].key, rows[i].cert, err2, sizeof(err2)) != -1 ||
		    strcmp(err, err2) != 0) {
			print_error("row %zu: tls_keys_check got \"%s\", want \"%s\"\n", i, err2, err);
			failed++;
		}
	}
	{
		char err[512];
		if (tls_keys_check("", "key.pem", "cert.pem", err, sizeof(err)) != -1 ||
		    strstr(err, "no key store is configured") == NULL) {
			print_error("no store: got \"%s\"\n", err);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

/*
 * handshake - run a client and a server SSL against each other over a BIO
 * pair until both are done or stuck; 1 = connected, 0 = failed.
 */
static int
handshake(SSL *c, SSL *s)
{
	BIO *cb, *sb;
	int cdone = 0, sdone = 0;

	assert_int_equal(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
	SSL_set_bio(c, cb, cb);
	SSL_set_bio(s, sb, sb);
	SSL_set_connect_state(c);
	SSL_set_accept_state(s);
	for (int i = 0; i < 100 && !(cdone && sdone); i++) {
		int rc;
		if (!cdone) {
			rc = SSL_do_handshake(c);
			if (rc == 1)
				cdone = 1;
			else if (SSL_get_error(c, rc) != SSL_ERROR_WANT_READ &&
			    SSL_get_error(c, rc) != SSL_ERROR_WANT_WRITE)
				return 0;
		}
		if (!sdone) {
			rc = SSL_do_handshake(s);
			if (rc == 1)
				sdone = 1;
			else if (SSL_get_error(s, rc) != SSL_ERROR_WANT_READ &&
			    SSL_get_error(s, rc) != SSL_ERROR_WANT_WRITE)
				return 0;
		}
	}
	return cdone && sdone;
}

/* bye - close both sides properly (a session freed without close_notify is not resumable) */
static void
bye(SSL *c, SSL *s)
{
	(void)SSL_shutdown(c);
	(void)SSL_shutdown(s);
	ERR_clear_error();
}

/* pump - exchange application data so that the TLS 1.3 ticket reaches the client */
static void
pump(SSL *c, SSL *s)
{
	char buf[64];

	assert_int_equal(SSL_write(s, "220 x\r\n", 7), 7);
	assert_true(SSL_read(c, buf, sizeof(buf)) > 0);
}

/* One client per row against mtad's server context: what is accepted, what is negotiated. */
static void
test_policy(void **state)
{
	static const struct {
		int min, max;                 /* client protocol range (0 = library default) */
		const char *ciphers;          /* TLS 1.2 cipher list, NULL = default */
		int ok;
		const char *proto, *cipher;   /* what must be negotiated */
	} rows[] = {
		{ 0, 0, NULL, 1, "TLSv1.3", "TLS_AES_256_GCM_SHA384" },
		{ TLS1_2_VERSION, TLS1_2_VERSION, NULL, 1, "TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384" },
		/* server preference: the client's order is ignored */
		{ TLS1_2_VERSION, TLS1_2_VERSION,
		    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305", 1, "TLSv1.2",
		    "ECDHE-ECDSA-CHACHA20-POLY1305" },
		{ TLS1_VERSION, TLS1_VERSION, "DEFAULT@SECLEVEL=0", 0, NULL, NULL },
		{ TLS1_1_VERSION, TLS1_1_VERSION, "DEFAULT@SECLEVEL=0", 0, NULL, NULL },
		{ TLS1_2_VERSION, TLS1_2_VERSION, "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384"
		    "@SECLEVEL=0", 0, NULL, NULL },           /* CBC */
		{ TLS1_2_VERSION, TLS1_2_VERSION, "AES256-GCM-SHA384@SECLEVEL=0", 0, NULL, NULL },
	};
	char err[512];
	SSL_CTX *sctx = tls_server_new(root, "key.pem", "cert.pem", NULL, err, sizeof(err));
	int failed = 0;

	(void)state;
	assert_non_null(sctx);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
		SSL *c, *s;
		int ok;

		assert_non_null(cctx);
		SSL_CTX_set_security_level(cctx, 0);
		SSL_CTX_set_min_proto_version(cctx, rows[i].min);
		SSL_CTX_set_max_proto_version(cctx, rows[i].max);
		if (rows[i].ciphers != NULL)
			assert_int_equal(SSL_CTX_set_cipher_list(cctx, rows[i].ciphers), 1);
		c = SSL_new(cctx);
		s = SSL_new(sctx);
		ok = handshake(c, s);
		if (ok != rows[i].ok) {
			print_error("row %zu: got handshake %d, want %d\n", i, ok, rows[i].ok);
			failed++;
		} else if (ok) {
			struct tls_info ti;
			tls_info_get(s, &ti);
			if (strcmp(ti.protocol, rows[i].proto) != 0 ||
			    strcmp(ti.cipher, rows[i].cipher) != 0) {
				print_error("row %zu: got %s %s, want %s %s\n", i, ti.protocol,
				    ti.cipher, rows[i].proto, rows[i].cipher);
				failed++;
			}
		}
		SSL_free(c);
		SSL_free(s);
		SSL_CTX_free(cctx);
		ERR_clear_error();
	}
	tls_ctx_free(sctx);
	assert_int_equal(failed, 0);
}

/* Resumption (tickets, TLS 1.2 and 1.3), also with a context made by a reload. */
static void
test_resumption(void **state)
{
	static const struct {
		int proto;
		int reload;                   /* resume against the context that replaced it */
	} rows[] = {
		{ TLS1_3_VERSION, 0 }, { TLS1_2_VERSION, 0 }, { TLS1_3_VERSION, 1 }, { TLS1_2_VERSION, 1 },
	};
	char err[512];
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		SSL_CTX *sctx = tls_server_new(root, "key.pem", "cert.pem", NULL, err, sizeof(err));
		SSL_CTX *sctx2 = NULL, *cctx = SSL_CTX_new(TLS_client_method());
		SSL_SESSION *sess;
		SSL *c, *s;

		assert_non_null(sctx);
		SSL_CTX_set_min_proto_version(cctx, rows[i].proto);
		SSL_CTX_set_max_proto_version(cctx, rows[i].proto);
		c = SSL_new(cctx);
		s = SSL_new(sctx);
		assert_int_equal(handshake(c, s), 1);
		pump(c, s);
		assert_non_null(sess = SSL_get1_session(c));
		bye(c, s);
		SSL_free(c);
		SSL_free(s);
		if (rows[i].reload) {
			sctx2 = tls_server_new(root, "key.pem", "cert.pem", sctx, err, sizeof(err));
			assert_non_null(sctx2);
		}
		c = SSL_new(cctx);
		s = SSL_new(sctx2 != NULL ? sctx2 : sctx);
		SSL_set_session(c, sess);
		assert_int_equal(handshake(c, s), 1);
		struct tls_info ti;
		tls_info_get(s, &ti);
		if (!ti.reused) {
			print_error("row %zu: got a full handshake, want a resumed one\n", i);
			failed++;
		}
		SSL_free(c);
		SSL_free(s);
		SSL_SESSION_free(sess);
		SSL_CTX_free(cctx);
		tls_ctx_free(sctx2);
		tls_ctx_free(sctx);
	}
	assert_int_equal(failed, 0);
}

/* new_session - a full handshake with sctx; the client's session (with its ticket) */
static SSL_SESSION *
new_session(SSL_CTX *cctx, SSL_CTX *sctx, SSL_SESSION *resume, int *reused)
{
	SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
	SSL_SESSION *sess;

	if (resume != NULL)
		SSL_set_session(c, resume);
	assert_int_equal(handshake(c, s), 1);
	pump(c, s);
	*reused = SSL_session_reused(s);
	assert_non_null(sess = SSL_get1_session(c));
	bye(c, s);
	SSL_free(c);
	SSL_free(s);
	return sess;
}

/*
 * Ticket keys rotate every hour: a ticket opens with the current key and
 * the previous one, not with the one before. Rows: steps of (hours to age
 * the key, then a fresh handshake that issues with the current key), and
 * whether the first ticket still resumes afterwards.
 */
static void
test_ticket_rotation(void **state)
{
	static const struct {
		int proto;
		unsigned age1, age2;          /* seconds the key ages before each fresh handshake */
		int want;                     /* the first ticket still resumes */
	} rows[] = {
		{ TLS1_3_VERSION, 0, 0, 1 },
		{ TLS1_3_VERSION, 3600, 0, 1 },         /* one rotation: previous key */
		{ TLS1_3_VERSION, 3600, 3600, 0 },      /* two: gone */
		{ TLS1_2_VERSION, 3600, 0, 1 },
		{ TLS1_2_VERSION, 3600, 3600, 0 },
	};
	char err[512];
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		SSL_CTX *sctx = tls_server_new(root, "key.pem", "cert.pem", NULL, err, sizeof(err));
		SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
		SSL_SESSION *first, *x;
		int reused;

		assert_non_null(sctx);
		SSL_CTX_set_min_proto_version(cctx, rows[i].proto);
		SSL_CTX_set_max_proto_version(cctx, rows[i].proto);
		/* no server cache: only the ticket can resume */
		SSL_CTX_set_session_cache_mode(sctx, SSL_SESS_CACHE_OFF);
		first = new_session(cctx, sctx, NULL, &reused);
		tls_tickets_age(sctx, rows[i].age1);
		SSL_SESSION_free(new_session(cctx, sctx, NULL, &reused));
		tls_tickets_age(sctx, rows[i].age2);
		SSL_SESSION_free(new_session(cctx, sctx, NULL, &reused));
		x = new_session(cctx, sctx, first, &reused);
		if (reused != rows[i].want) {
			print_error("row %zu: got resumed %d, want %d\n", i, reused, rows[i].want);
			failed++;
		}
		if (reused) {
			/* a resumed session brings a ticket that resumes again (TLS 1.3: one use each) */
			SSL_SESSION *y = new_session(cctx, sctx, x, &reused);
			if (!reused) {
				print_error("row %zu: got no resumption from a resumed session\n", i);
				failed++;
			}
			SSL_SESSION_free(y);
		}
		SSL_SESSION_free(x);
		SSL_SESSION_free(first);
		SSL_CTX_free(cctx);
		tls_ctx_free(sctx);
	}
	assert_int_equal(failed, 0);
}

/* The client context: TLS 1.2+, the verification result reported, not enforced. */
static void
test_client(void **state)
{
	char err[512], cafile[512];
	SSL_CTX *sctx = tls_server_new(root, "key.pem", "cert.pem", NULL, err, sizeof(err));
	SSL_CTX *cctx = tls_client_new(err, sizeof(err));
	struct tls_info ti;
	SSL *c, *s;

	(void)state;
	assert_non_null(sctx);
	assert_non_null(cctx);
	/* unknown CA: the handshake works, verified = 0 */
	c = SSL_new(cctx);
	s = SSL_new(sctx);
	assert_int_equal(handshake(c, s), 1);
	tls_info_get(c, &ti);
	assert_int_equal(ti.verified, 0);
	SSL_free(c);
	SSL_free(s);
	/* the chain file's CA trusted: verified = 1 */
	path(cafile, sizeof(cafile), "cert.pem");
	assert_int_equal(SSL_CTX_load_verify_locations(cctx, cafile, NULL), 1);
	c = SSL_new(cctx);
	s = SSL_new(sctx);
	assert_int_equal(handshake(c, s), 1);
	tls_info_get(c, &ti);
	assert_int_equal(ti.verified, 1);
	SSL_free(c);
	SSL_free(s);
	tls_ctx_free(cctx);
	tls_ctx_free(sctx);
}

/*
 * The client session cache: a second connection under the same key resumes
 * (TLS 1.3 ticket), another key does not; with no key nothing is cached.
 */
static void
test_client_session_cache(void **state)
{
	static const struct {
		const char *key;             /* NULL: tls_client_session() not called */
		int want_reused;
	} rows[] = {
		{ "mx.test.example[192.0.2.1]:25", 0 },     /* first: full handshake */
		{ "mx.test.example[192.0.2.1]:25", 1 },     /* same host: resumed */
		{ "mx.test.example[192.0.2.1]:25", 1 },     /* and again */
		{ "other.example[192.0.2.2]:25", 0 },       /* another host: full */
		{ NULL, 0 },                                /* no cache asked for */
		{ "other.example[192.0.2.2]:25", 1 },
	};
	char err[512];
	SSL_CTX *sctx = tls_server_new(root, "key.pem", "cert.pem", NULL, err, sizeof(err));
	SSL_CTX *cctx = tls_client_new(err, sizeof(err));

	(void)state;
	assert_non_null(sctx);
	assert_non_null(cctx);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		SSL *c = SSL_new(cctx), *s = SSL_new(sctx);

		if (rows[i].key != NULL)
			assert_int_equal(tls_client_session(c, rows[i].key), 0);
		assert_int_equal(handshake(c, s), 1);
		pump(c, s);
		if (SSL_session_reused(c) != rows[i].want_reused)
			print_error("row %zu: got reused %d, want %d\n", i, SSL_session_reused(c),
			    rows[i].want_reused);
		assert_int_equal(SSL_session_reused(c), rows[i].want_reused);
		bye(c, s);
		SSL_free(c);
		SSL_free(s);
	}
	tls_ctx_free(cctx);
	tls_ctx_free(sctx);
}

/*
 * tls_client_verify with a CA file from the key store: the right name
 * connects, a wrong one fails the handshake with a host name mismatch, and
 * without the CA (system store) even the right name fails.
 */
static void
test_client_verify(void **state)
{
	static const struct {
		int use_ca;
		const char *name;
		int want_ok;
		long want_err;
	} rows[] = {
		{ 1, "mx.test.example", 1, X509_V_OK },
		{ 1, "MX.Test.Example", 1, X509_V_OK },
		{ 1, "other.example", 0, X509_V_ERR_HOSTNAME_MISMATCH },
		{ 1, "test.example", 0, X509_V_ERR_HOSTNAME_MISMATCH },
		{ 1, "192.0.2.1", 0, X509_V_ERR_IP_ADDRESS_MISMATCH },
		{ 0, "mx.test.example", 0, X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN },  /* CA not trusted */
	};
	char err[512];
	SSL_CTX *sctx = tls_server_new(root, "key.pem", "cert.pem", NULL, err, sizeof(err));
	SSL_CTX *ca = tls_client_new_ca(root, "cert.pem", err, sizeof(err));
	SSL_CTX *sys = tls_client_new(err, sizeof(err));

	(void)state;
	assert_non_null(sctx);
	assert_non_null(ca);
	assert_non_null(sys);
	/* a CA file that is not PEM, or missing: an error naming it */
	assert_null(tls_client_new_ca(root, "garbage.pem", err, sizeof(err)));
	assert_null(tls_client_new_ca(root, "missing.pem", err, sizeof(err)));
	assert_non_null(strstr(err, "missing.pem"));
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		SSL *c = SSL_new(rows[i].use_ca ? ca : sys), *s = SSL_new(sctx);
		int ok;

		assert_int_equal(tls_client_verify(c, rows[i].name), 0);
		ok = handshake(c, s);
		if (ok != rows[i].want_ok || SSL_get_verify_result(c) != rows[i].want_err)
			print_error("row %zu (%s): got %d/%ld, want %d/%ld\n", i, rows[i].name, ok,
			    SSL_get_verify_result(c), rows[i].want_ok, rows[i].want_err);
		assert_int_equal(ok, rows[i].want_ok);
		assert_int_equal(SSL_get_verify_result(c), rows[i].want_err);
		ERR_clear_error();
		SSL_free(c);
		SSL_free(s);
	}
	tls_ctx_free(sys);
	tls_ctx_free(ca);
	tls_ctx_free(sctx);
}

/* Log and header texts, and the certificate description for the reload log line. */
static void
test_texts(void **state)
{
	static const struct {
		struct tls_info ti;
		const char *want;
	} rows[] = {
		{ { "TLSv1.3", "TLS_AES_256_GCM_SHA384", 256, 256, 0, 0 },
		    "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" },
		{ { "TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256", 128, 128, 1, 1 },
		    "TLSv1.2 with cipher ECDHE-RSA-AES128-GCM-SHA256 (128/128 bits)" },
	};
	char buf[256], err[512];
	SSL_CTX *ctx;
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		if (tls_info_text(&rows[i].ti, buf, sizeof(buf)) < 0 || strcmp(buf, rows[i].want) != 0) {
			print_error("row %zu: got \"%s\", want \"%s\"\n", i, buf, rows[i].want);
			failed++;
		}
	}
	if (tls_info_text(&rows[0].ti, buf, 10) != -1) {
		print_error("short buffer: got success, want -1\n");
		failed++;
	}
	ctx = tls_server_new(root, "key.pem", "cert.pem", NULL, err, sizeof(err));
	assert_non_null(ctx);
	tls_cert_describe(ctx, buf, sizeof(buf));
	if (strcmp(buf, "subject /CN=mx.test.example, serial 1092") != 0) {
		print_error("describe: got \"%s\", want \"subject /CN=mx.test.example, serial 1092\"\n",
		    buf);
		failed++;
	}
	tls_ctx_free(ctx);
	assert_null(tls_server_new(root, "key.pem", "cert2.pem", NULL, err, sizeof(err)));
	if (strstr(err, "does not match") == NULL) {
		print_error("bad pair: got \"%s\"\n", err);
		failed++;
	}
	assert_int_equal(failed, 0);
}

/* The files a key store may hold by mistake: each refused with its reason. */
static const struct {
	const char *key, *cert, *want;          /* want NULL = loads */
	const char *want2;                      /* or this, without openat2 (priv.c's walk) */
} store_rows[] = {
	{ "link_in.pem", "cert.pem", NULL, NULL },  /* a link inside the store is followed */
	{ "sub/key.pem", "cert.pem", NULL, NULL },
	{ "link_out.pem", "cert.pem", TLS_KEYS_ERR " (link_out.pem: the file is outside the key "
	    "store)", TLS_KEYS_ERR " (link_out.pem: a symbolic link that may not be followed in "
	    "the key store)" },
	{ "dir.pem", "cert.pem", TLS_KEYS_ERR " (dir.pem: not a regular file)", NULL },
	{ "fifo.pem", "cert.pem", TLS_KEYS_ERR " (fifo.pem: not a regular file)", NULL },
	{ "big.pem", "cert.pem", TLS_KEYS_ERR " (big.pem: file too large for a PEM key or "
	    "certificate)", NULL },
	{ "empty.pem", "cert.pem", TLS_KEYS_ERR " (empty.pem: not a PEM private key (or "
	    "protected by a passphrase))", NULL },
	{ "key.pem", "empty.pem", TLS_KEYS_ERR " (empty.pem: not a PEM certificate)", NULL },
	{ "key.pem", "key.pem", TLS_KEYS_ERR " (key.pem: not a PEM certificate)", NULL },
	{ "key.pem", "dir.pem", TLS_KEYS_ERR " (dir.pem: not a regular file)", NULL },
	{ "sub/../key.pem", "cert.pem", TLS_KEYS_ERR " (sub/../key.pem: '..' leaves the key "
	    "store)", NULL },
	{ "//", "cert.pem", TLS_KEYS_ERR " (//: empty file name)", NULL },
};

/* run_store_rows - every store_rows row through tls_keys_load; the number that failed */
static int
run_store_rows(const char *how)
{
	int failed = 0;

	for (size_t i = 0; i < sizeof(store_rows) / sizeof(store_rows[0]); i++) {
		struct tls_keys k;
		char err[512] = "";
		int rc = tls_keys_load(root, store_rows[i].key, store_rows[i].cert, &k, err,
		    sizeof(err));

		if (store_rows[i].want == NULL ? rc != 0 : rc != -1 || (strcmp(err,
		    store_rows[i].want) != 0 && (store_rows[i].want2 == NULL ||
		    strcmp(err, store_rows[i].want2) != 0))) {
			print_error("%s row %zu: got %d \"%s\", want \"%s\"\n", how, i, rc, err,
			    store_rows[i].want != NULL ? store_rows[i].want : "success");
			failed++;
		}
		if (rc == 0)
			tls_keys_free(&k);
	}
	return failed;
}

/* The key store read here (no reader process): odd files, a missing store, a root-only file. */
static void
test_store_files(void **state)
{
	char err[512], store[300];
	struct tls_keys k;
	int failed, status;
	pid_t pid;

	(void)state;
	failed = run_store_rows("local");
	assert_true(util_bsnprintf(store, sizeof(store), "%s/no-such-store", root) >= 0);
	assert_int_equal(tls_keys_load(store, "key.pem", "cert.pem", &k, err, sizeof(err)), -1);
	if (strcmp(err, TLS_KEYS_ERR " (key.pem: No such file or directory)") != 0) {
		print_error("missing store: got \"%s\"\n", err);
		failed++;
	}
	assert_int_equal(failed, 0);
	/* without root (and without the reader) a file only root may read is refused, named */
	if (geteuid() != 0)
		skip();
	if ((pid = fork()) == 0) {
		if (setgid(65534) < 0 || setuid(65534) < 0)
			util_cov_exit(2);
		if (tls_keys_load(root, "root_only.pem", "cert.pem", &k, err, sizeof(err)) != -1)
			util_cov_exit(3);
		util_cov_exit(strcmp(err, TLS_KEYS_ERR " (root_only.pem: Permission denied)") == 0 ?
		    0 : 4);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* Secrets and CA files from the key store: the first line, text only, certificates only. */
static void
test_store_texts(void **state)
{
	char err[512], line[64];
	size_t n = 0;
	char *text;
	X509_STORE *st;

	(void)state;
	/* the first line, without its line end */
	assert_int_equal(tls_keys_read_line(root, "pass.txt", line, sizeof(line), err,
	    sizeof(err)), 0);
	assert_string_equal(line, "s3cret");
	assert_int_equal(tls_keys_read_line(root, "pass.txt", line, 4, err, sizeof(err)), -1);
	assert_string_equal(err, "pass.txt: the first line is too long (over 3 octets)");
	assert_int_equal(tls_keys_read_line(root, "blank.txt", line, sizeof(line), err,
	    sizeof(err)), -1);
	assert_string_equal(err, "blank.txt: the first line is empty");
	assert_int_equal(tls_keys_read_line(root, "missing.txt", line, sizeof(line), err,
	    sizeof(err)), -1);
	assert_string_equal(err, "missing.txt: No such file or directory");
	/* the whole text: its length; a NUL makes it binary; no store configured */
	assert_non_null(text = tls_keys_read_text(root, "pass.txt", &n, err, sizeof(err)));
	assert_int_equal(n, 20);
	assert_string_equal(text, "s3cret\r\nsecond line\n");
	free(text);
	assert_null(tls_keys_read_text(root, "nul.txt", &n, err, sizeof(err)));
	assert_string_equal(err, "nul.txt: not a text file");
	assert_null(tls_keys_read_text("", "pass.txt", &n, err, sizeof(err)));
	assert_string_equal(err, "pass.txt: no key store is configured (set key_dir or fs_dir)");
	assert_null(tls_keys_read_text(root, "../pass.txt", &n, err, sizeof(err)));
	assert_string_equal(err, "../pass.txt: '..' leaves the key store");
	/* CA files: every certificate of the file counts, text without one is refused */
	assert_non_null(st = X509_STORE_new());
	assert_int_equal(tls_keys_read_cas(root, "cert.pem", st, err, sizeof(err)), 0);
	assert_int_equal(sk_X509_OBJECT_num(X509_STORE_get0_objects(st)), 2);
	assert_int_equal(tls_keys_read_cas(root, "cert.pem", st, err, sizeof(err)), 0);
	assert_int_equal(sk_X509_OBJECT_num(X509_STORE_get0_objects(st)), 2);   /* no duplicates */
	assert_int_equal(tls_keys_read_cas(root, "nocert.pem", st, err, sizeof(err)), -1);
	assert_string_equal(err, "nocert.pem: no PEM certificate in it");
	assert_int_equal(tls_keys_read_cas(root, "fifo.pem", st, err, sizeof(err)), -1);
	assert_string_equal(err, "fifo.pem: not a regular file");
	assert_int_equal(tls_keys_read_cas("", "cert.pem", st, err, sizeof(err)), -1);
	assert_string_equal(err, "cert.pem: no key store is configured (set key_dir or fs_dir)");
	X509_STORE_free(st);
	/* a client context: without a CA file the system store, with a bad one an error */
	SSL_CTX *ctx = tls_client_new_ca(root, "", err, sizeof(err));
	assert_non_null(ctx);
	tls_ctx_free(ctx);
	assert_null(tls_client_new_ca(root, "nocert.pem", err, sizeof(err)));
	assert_string_equal(err, "nocert.pem: no PEM certificate in it");
}

/* What the loop asks of a context or a connection that has not got that far. */
static void
test_edges(void **state)
{
	char buf[256], err[512];
	struct tls_info ti;
	SSL_CTX *sctx;
	SSL *ssl;

	(void)state;
	/* the OpenSSL reason when there is one, else the default */
	ERR_clear_error();
	tls_error_text(buf, sizeof(buf), "nothing");
	assert_string_equal(buf, "nothing");
	ERR_raise(ERR_LIB_SSL, SSL_R_NO_CERTIFICATE_ASSIGNED);
	tls_error_text(buf, sizeof(buf), "nothing");
	assert_non_null(strstr(buf, "no certificate assigned"));
	assert_int_equal(ERR_peek_error(), 0);          /* and the queue is left empty */
	/* no context, no description */
	strcpy(buf, "x");
	tls_cert_describe(NULL, buf, sizeof(buf));
	assert_string_equal(buf, "");
	/* before a handshake: no cipher yet, and a server connection has no client cache */
	assert_non_null(sctx = tls_server_new(root, "key.pem", "cert.pem", NULL, err,
	    sizeof(err)));
	assert_non_null(ssl = SSL_new(sctx));
	tls_info_get(ssl, &ti);
	assert_string_equal(ti.cipher, "unknown");
	assert_int_equal(ti.reused, 0);
	assert_int_equal(tls_client_session(ssl, "mx.example:25"), -1);
	SSL_free(ssl);
	tls_ctx_free(sctx);
}

/*
 * The key store reader process (root only): started with the store's root,
 * it answers exactly as the local reader does, reads a file only root may
 * read although it runs as nobody, and serves no other root.
 */
static void
test_store_reader(void **state)
{
	char err[512], link[300], other[300], line[64], name[PATH_MAX + 8];
	size_t n;
	char *text;
	int failed;

	(void)state;
	if (geteuid() != 0)
		skip();
	assert_true(util_bsnprintf(other, sizeof(other), "%s/no-such-store", root) >= 0);
	assert_int_equal(tls_keys_helper_start(other, 65534, 65534, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no-such-store: No such file or directory"));
	/* the store named through a link: the reader works on the real path */
	assert_true(util_bsnprintf(link, sizeof(link), "%s.link", root) >= 0);
	(void)unlink(link);
	assert_int_equal(symlink(root, link), 0);
	assert_int_equal(tls_keys_helper_start(link, 65534, 65534, err, sizeof(err)), 0);
	assert_int_equal(tls_keys_helper_start(root, 65534, 65534, err, sizeof(err)), 0);  /* once */
	failed = run_store_rows("reader");
	assert_int_equal(failed, 0);
	/* nobody could not read it (test_store_files); the reader can */
	assert_int_equal(tls_keys_check(root, "root_only.pem", "cert.pem", err, sizeof(err)), 0);
	assert_int_equal(tls_keys_check(link, "root_only.pem", "cert.pem", err, sizeof(err)), 0);
	assert_int_equal(tls_keys_read_line(root, "pass.txt", line, sizeof(line), err,
	    sizeof(err)), 0);
	assert_string_equal(line, "s3cret");
	assert_null(tls_keys_read_text(root, "nul.txt", &n, err, sizeof(err)));
	assert_string_equal(err, "nul.txt: not a text file");
	/* names the reader refuses before asking: empty, longer than a path */
	assert_null(tls_keys_read(root, "", &n, err, sizeof(err)));
	assert_string_equal(err, "empty file name");
	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_null(tls_keys_read(root, name, &n, err, sizeof(err)));
	assert_string_equal(err, "path too long");
	/* another root is read here, the reader is still there afterwards */
	assert_non_null(text = tls_keys_read_text(root, "sub/key.pem", &n, err, sizeof(err)));
	free(text);
	assert_null(tls_keys_read_text(other, "key.pem", &n, err, sizeof(err)));
	assert_string_equal(err, "key.pem: No such file or directory");
	assert_int_equal(tls_keys_check(root, "key.pem", "cert.pem", err, sizeof(err)), 0);
	assert_int_equal(unlink(link), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_policy),
		cmocka_unit_test(test_resumption),
		cmocka_unit_test(test_ticket_rotation),
		cmocka_unit_test(test_client),
		cmocka_unit_test(test_client_session_cache),
		cmocka_unit_test(test_client_verify),
		cmocka_unit_test(test_texts),
		cmocka_unit_test(test_store_files),
		cmocka_unit_test(test_store_texts),
		cmocka_unit_test(test_edges),
		cmocka_unit_test(test_store_reader),     /* last: the reader stays for the process */
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
