/*
 * dkim_keys.c - the DKIM key table (SPEC §11.3 dkim_key_table): parse it,
 *               load its keys through the key store, find a message's keys,
 *               print the DNS records to publish
 *
 * Owns:     struct dkim_keys and its EVP_PKEYs.
 * Lifetime: dkim_keys_load() to the last dkim_keys_unref().
 * Errors:   NULL with "dkim_key_table FILE line N: what" in err; a key
 *           error names the key file and why.
 * Context:  event-loop thread (start-up, SIGHUP) and mtactl.
 *
 * Table format (lines, comments and fields read by mail/tablefile.c), one
 * key a line, '#' starts a comment:
 *
 *     example.com     sel2025r   dkim/example.com.rsa.pem
 *     example.com     sel2025e   dkim/example.com.ed25519.pem
 *
 * DOMAIN (lower-cased, an A-label domain), SELECTOR, KEY_FILE (a PEM
 * private key relative to the key store root: RSA of at least 1024 bits,
 * or Ed25519). A domain may have up to DKIM_KEYS_PER_DOMAIN keys; every
 * one of them signs (RFC 8463 §4: an Ed25519 signature next to an RSA one
 * for verifiers that know only RSA).
 */
#include "dkim/dkim_int.h"
#include "lib/base64.h"
#include "lib/util.h"
#include "mail/tablefile.h"
#include "tls/tls.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#define DKIM_TABLE_MAX_KEYS 4096
#define DKIM_LINE_MAX 4096

/* blank-separated fields, '#' anywhere: DOMAIN SELECTOR KEY_FILE, a fourth is an error */
static const struct tablefile_format keys_format = {
	"dkim_key_table", DKIM_LINE_MAX, '\0', 3, 1
};

static int
valid_domain(const char *d)
{
	size_t n = strlen(d);

	if (n == 0 || n > DKIM_DOMAIN_MAX || d[0] == '.' || d[0] == '-' || d[n - 1] == '.')
		return 0;
	for (const char *c = d; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
		    *c == '.') || (c[0] == '.' && c[1] == '.'))
			return 0;
	return 1;
}

static int
valid_selector(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > DKIM_SELECTOR_MAX || s[0] == '.' || s[n - 1] == '.')
		return 0;
	for (const char *c = s; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' || *c == '.'))
			return 0;
	return 1;
}

static int
no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf; (void)size; (void)rwflag; (void)u;
	return -1;
}

/* key_load - one PEM private key from the store; NULL with why */
static EVP_PKEY *
key_load(const char *root, const char *file, int *ed25519, char *why, size_t whylen)
{
	size_t len = 0;
	char *pem = tls_keys_read(root, file, &len, why, whylen);
	EVP_PKEY *pk = NULL;
	BIO *bio;

	if (pem == NULL)
		return NULL;
	if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL) {
		util_strlcpy(why, "out of memory", whylen);
		goto done;
	}
	ERR_clear_error();
	pk = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
	BIO_free(bio);
	ERR_clear_error();
	if (pk == NULL) {
		util_strlcpy(why, "not a PEM private key (or protected by a passphrase)", whylen);
		goto done;
	}
	if (EVP_PKEY_get_id(pk) == EVP_PKEY_ED25519) {
		*ed25519 = 1;
	} else if (EVP_PKEY_get_id(pk) == EVP_PKEY_RSA) {
		*ed25519 = 0;
		if (EVP_PKEY_get_bits(pk) < 1024) {
			(void)util_bsnprintf(why, whylen, "RSA key of %d bits: DKIM needs at least 1024",
			    EVP_PKEY_get_bits(pk));
			EVP_PKEY_free(pk);
			pk = NULL;
		}
	} else {
		util_strlcpy(why, "neither an RSA nor an Ed25519 key", whylen);
		EVP_PKEY_free(pk);
		pk = NULL;
	}
done:
	OPENSSL_cleanse(pem, len);
	free(pem);
	return pk;
}

/* keys_add - one more key slot, zeroed; NULL when out of memory */
static struct dkim_key *
keys_add(struct dkim_keys *k, size_t *cap)
{
	struct dkim_key *e;

	if (k->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 8;
		struct dkim_key *nk = realloc(k->k, ncap * sizeof(*nk));

		if (nk == NULL)
			return NULL;
		k->k = nk;
		*cap = ncap;
	}
	e = &k->k[k->n];
	memset(e, 0, sizeof(*e));
	return e;
}

/* dkim_keys_load - see dkim.h */
struct dkim_keys *
dkim_keys_load(const char *root, const char *rel, char *err, size_t errlen)
{
	struct dkim_keys *k = NULL;
	struct tablefile t;
	struct tablefile_line l;
	char why[256];
	size_t cap = 0;
	int r;

	if (tablefile_open(&t, &keys_format, root, rel, err, errlen) < 0)
		return NULL;
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		tablefile_err(&t, 0, err, errlen, "out of memory");
		goto fail;
	}
	k->refs = 1;
	while ((r = tablefile_next(&t, &l, err, errlen)) > 0) {
		char *domain;
		const char *selector, *file;
		struct dkim_key *e;

		if (l.n != 3) {
			tablefile_err(&t, l.lineno, err, errlen, "expected DOMAIN SELECTOR KEY_FILE");
			goto fail;
		}
		domain = l.field[0];
		selector = l.field[1];
		file = l.field[2];
		for (char *c = domain; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c + 32);
		if (!valid_domain(domain)) {
			tablefile_err(&t, l.lineno, err, errlen, "'%.64s' is not a domain name", domain);
			goto fail;
		}
		if (!valid_selector(selector)) {
			tablefile_err(&t, l.lineno, err, errlen, "'%.64s' is not a selector", selector);
			goto fail;
		}
		if (dkim_keys_find(k, domain, NULL, 0) >= DKIM_KEYS_PER_DOMAIN) {
			tablefile_err(&t, l.lineno, err, errlen, "more than %d keys for %s",
			    DKIM_KEYS_PER_DOMAIN, domain);
			goto fail;
		}
		if (k->n == DKIM_TABLE_MAX_KEYS) {
			tablefile_err(&t, l.lineno, err, errlen, "more than %d keys", DKIM_TABLE_MAX_KEYS);
			goto fail;
		}
		if ((e = keys_add(k, &cap)) == NULL) {
			tablefile_err(&t, l.lineno, err, errlen, "out of memory");
			goto fail;
		}
		util_strlcpy(e->domain, domain, sizeof(e->domain));
		util_strlcpy(e->selector, selector, sizeof(e->selector));
		if ((e->pkey = key_load(root, file, &e->ed25519, why, sizeof(why))) == NULL) {
			tablefile_err(&t, l.lineno, err, errlen, "%.200s: %s", file, why);
			goto fail;
		}
		k->n++;
	}
	if (r < 0)
		goto fail;
	tablefile_close(&t);
	return k;
fail:
	tablefile_close(&t);
	dkim_keys_unref(k);
	return NULL;
}

struct dkim_keys *
dkim_keys_ref(struct dkim_keys *k)
{
	if (k != NULL)
		k->refs++;
	return k;
}

/* dkim_keys_unref - see dkim.h */
struct dkim_keys *
dkim_keys_unref(struct dkim_keys *k)
{
	if (k == NULL || --k->refs > 0)
		return NULL;
	for (size_t i = 0; i < k->n; i++)
		EVP_PKEY_free(k->k[i].pkey);
	free(k->k);
	free(k);
	return NULL;
}

size_t
dkim_keys_count(const struct dkim_keys *k)
{
	return k != NULL ? k->n : 0;
}

/*
 * dkim_keys_find - the keys of the most specific table domain that is
 * domain or a parent of it (From: a.b.example.com matches b.example.com
 * before example.com), into out[0..max); returns how many there are.
 */
unsigned
dkim_keys_find(const struct dkim_keys *k, const char *domain, const struct dkim_key **out,
    unsigned max)
{
	size_t dl = strlen(domain), best = 0;
	unsigned n = 0;

	for (size_t i = 0; i < k->n; i++) {
		const char *d = k->k[i].domain;
		size_t l = strlen(d);

		if (l > dl || l < best)
			continue;
		if (strcmp(domain + dl - l, d) != 0 || (l < dl && domain[dl - l - 1] != '.'))
			continue;
		if (l > best) {
			best = l;
			n = 0;
		}
		if (out != NULL && n < max)
			out[n] = &k->k[i];
		n++;
	}
	return n;
}

/*
 * dkim_keys_public - the p= value: base64 of the SubjectPublicKeyInfo for
 * RSA (RFC 6376 §3.6.1), of the raw 32-octet key for Ed25519 (RFC 8463
 * §4.2). Length, or -1.
 */
int
dkim_keys_public(const struct dkim_key *e, char *out, size_t size)
{
	unsigned char raw[2048], *p = raw;
	size_t rl = sizeof(raw);
	int n;

	if (e->ed25519) {
		if (EVP_PKEY_get_raw_public_key(e->pkey, raw, &rl) != 1)
			return -1;
	} else {
		n = i2d_PUBKEY(e->pkey, NULL);
		if (n <= 0 || (size_t)n > sizeof(raw) || i2d_PUBKEY(e->pkey, &p) != n)
			return -1;
		rl = (size_t)n;
	}
	return base64_encode(raw, rl, out, size);
}

/* dkim_keys_record - see dkim.h */
int
dkim_keys_record(const struct dkim_keys *k, const char *domain, char *out, size_t size)
{
	size_t off = 0;
	int found = 0;

	if (size > 0)
		out[0] = '\0';
	for (size_t i = 0; i < k->n; i++) {
		const struct dkim_key *e = &k->k[i];
		char pub[4096];
		int pl, n;

		if (strcasecmp(e->domain, domain) != 0)
			continue;
		found = 1;
		if ((pl = dkim_keys_public(e, pub, sizeof(pub))) < 0)
			return -1;
		n = util_bsnprintf(out + off, size - off, "%s._domainkey.%s. IN TXT ( \"v=DKIM1; k=%s; \"",
		    e->selector, e->domain, e->ed25519 ? "ed25519" : "rsa");
		if (n < 0)
			return -1;
		off += (size_t)n;
		/* TXT character-strings hold at most 255 octets each (RFC 1035 §3.3) */
		for (int o = 0; o < pl; o += 250) {
			int c = pl - o < 250 ? pl - o : 250;
			n = util_bsnprintf(out + off, size - off, " \"%s%.*s\"", o == 0 ? "p=" : "",
			    c, pub + o);
			if (n < 0)
				return -1;
			off += (size_t)n;
		}
		if ((n = util_bsnprintf(out + off, size - off, " )\n")) < 0)
			return -1;
		off += (size_t)n;
	}
	return found ? (int)off : 0;
}
