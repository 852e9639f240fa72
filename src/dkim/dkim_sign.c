/*
 * dkim_sign.c - sign one message (RFC 6376 §5; Ed25519-SHA256 per RFC 8463)
 *               as it streams into the queue
 *
 * Owns:     struct dkim_sign: the header copy (struct dkim_hdrs), the body
 *           hash state, a reference to the key table.
 * Lifetime: dkim_sign_new() at the start of the content, dkim_sign_free()
 *           at commit or when the transaction ends.
 * Errors:   a message that cannot be signed is reported by
 *           dkim_sign_finish() (0 or -1 with a static reason) and goes out
 *           unsigned: signing never costs a message.
 * Context:  event-loop thread.
 *
 * One pass: header bytes go to the header reader, which keeps only the
 * fields of the signed set; at the empty line the From: domain picks the
 * keys (none: the body is not even hashed); body bytes go through the
 * relaxed canonicaliser straight into SHA-256. At the end the header hash
 * input is built from the kept fields (plus Message-ID:/Date: that the
 * server adds above the content), once per key with its own
 * DKIM-Signature field (b= empty), hashed and signed.
 *
 * XXX signing runs on the event loop: about 0.3 ms of CPU per RSA-2048
 * signature and 0.03 ms per Ed25519 one (openssl speed on the reference
 * machine), small beside the fsync a message waits for anyway.
 *
 * Header selection (§5.4.2): h= names every signed field as many times as
 * the message has it, and "from" once more (over-signing: a From: added
 * later breaks the signature). A verifier takes instances from the bottom
 * up, and so does the hash input here.
 */
#include "dkim/dkim_int.h"
#include "lib/base64.h"
#include "lib/util.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#define FOLD_AT 76

struct dkim_sign {
	struct dkim_keys *keys;
	struct dkim_hdrs hdrs;
	struct dkim_body body;
	EVP_MD_CTX *bh;
	int      decided;            /* the header section ended and keys were looked up */
	int      skip;               /* not signed: nothing more to do */
	const char *why;
	const struct dkim_key *use[DKIM_KEYS_PER_DOMAIN];
	unsigned nuse;
	char     domain[DKIM_DOMAIN_MAX + 1];
};

static void
sign_emit(void *arg, const char *p, size_t len)
{
	struct dkim_sign *s = arg;

	if (EVP_DigestUpdate(s->bh, p, len) != 1) {
		s->skip = 1;
		s->why = "hash failure";
	}
}

/* dkim_sign_new - see dkim.h */
struct dkim_sign *
dkim_sign_new(struct dkim_keys *k)
{
	struct dkim_sign *s;

	if (k == NULL || (s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->keys = dkim_keys_ref(k);
	dkim_canon_hdrs_init(&s->hdrs);
	return s;
}

struct dkim_sign *
dkim_sign_free(struct dkim_sign *s)
{
	if (s == NULL)
		return NULL;
	dkim_canon_hdrs_clear(&s->hdrs);
	EVP_MD_CTX_free(s->bh);
	dkim_keys_unref(s->keys);
	free(s);
	return NULL;
}

const char *
dkim_sign_domain(const struct dkim_sign *s)
{
	return s->domain;
}

/* sign_decide - the header section is complete: whose keys sign it, if any */
static void
sign_decide(struct dkim_sign *s)
{
	const struct dkim_hdrs *h = &s->hdrs;
	char from[DKIM_DOMAIN_MAX + 1];

	s->decided = 1;
	s->skip = 1;
	if (h->bad) {
		s->why = "header section unreadable or over the size kept for signing";
		return;
	}
	if (h->nfrom != 1) {
		s->why = h->nfrom == 0 ? "no From: field" : "more than one From: field";
		return;
	}
	for (unsigned i = 0; i < h->nf; i++) {
		if (h->f[i].which != DKIM_H_FROM)
			continue;
		if (dkim_canon_from_domain(h->buf + h->f[i].off, h->f[i].len, from, sizeof(from)) < 0) {
			s->why = "no single address in From:";
			return;
		}
		break;
	}
	s->nuse = dkim_keys_find(s->keys, from, s->use, DKIM_KEYS_PER_DOMAIN);
	if (s->nuse == 0) {
		s->why = "no key for the From: domain";
		return;
	}
	if (s->nuse > DKIM_KEYS_PER_DOMAIN)
		s->nuse = DKIM_KEYS_PER_DOMAIN;
	util_strlcpy(s->domain, s->use[0]->domain, sizeof(s->domain));
	if ((s->bh = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(s->bh, EVP_sha256(), NULL) != 1) {
		s->why = "out of memory";
		return;
	}
	dkim_canon_body_init(&s->body, sign_emit, s);
	s->skip = 0;
}

/* dkim_sign_feed - see dkim.h */
void
dkim_sign_feed(struct dkim_sign *s, const char *p, size_t len)
{
	if (s->skip)
		return;
	if (!s->decided) {
		size_t used = dkim_canon_hdrs_feed(&s->hdrs, p, len);
		if (!s->hdrs.done)
			return;
		sign_decide(s);
		if (s->skip)
			return;
		p += used;
		len -= used;
	}
	dkim_canon_body_feed(&s->body, p, len);
}

/* --- the signature field ------------------------------------------------------ */

struct obuf {
	char  *p;
	size_t len, size, col;       /* col: length of the current line */
	int    full;
};

static void
ob_add(struct obuf *o, const char *p, size_t n)
{
	if (o->full || n > o->size - o->len) {
		o->full = 1;
		return;
	}
	memcpy(o->p + o->len, p, n);
	o->len += n;
	o->col += n;
}

static void
ob_str(struct obuf *o, const char *s)
{
	ob_add(o, s, strlen(s));
}

/* ob_word - a tag or list item; fold before it when the line would grow past FOLD_AT */
static void
ob_word(struct obuf *o, const char *s, size_t n, const char *sep)
{
	if (o->col + n + strlen(sep) > FOLD_AT && o->col > 1) {
		ob_add(o, "\r\n\t", 3);
		o->col = 1;
	} else if (o->col > 0 && sep[0] == ' ') {
		ob_add(o, " ", 1);
	}
	ob_add(o, s, n);
	if (sep[0] != ' ')
		ob_str(o, sep);
}

/*
 * sig_field - the DKIM-Signature field for key e up to "b=" (no value, no
 * CRLF): the text both hashed (canonicalised) and, with the value appended,
 * written.
 */
static size_t
sig_field(const struct dkim_key *e, const char *hlist, const char *bh, time_t now,
    char *out, size_t size)
{
	struct obuf o = { out, 0, size, 0, 0 };
	char tag[DKIM_DOMAIN_MAX + 64];
	const char *h = hlist;

	ob_str(&o, "DKIM-Signature: v=1;");
	(void)util_bsnprintf(tag, sizeof(tag), "a=%s;", e->ed25519 ? "ed25519-sha256" : "rsa-sha256");
	ob_word(&o, tag, strlen(tag), " ");
	ob_word(&o, "c=relaxed/relaxed;", 18, " ");
	(void)util_bsnprintf(tag, sizeof(tag), "d=%s;", e->domain);
	ob_word(&o, tag, strlen(tag), " ");
	(void)util_bsnprintf(tag, sizeof(tag), "s=%s;", e->selector);
	ob_word(&o, tag, strlen(tag), " ");
	(void)util_bsnprintf(tag, sizeof(tag), "t=%lld;", (long long)now);
	ob_word(&o, tag, strlen(tag), " ");
	/* h=a:b:c; folded between names (FWS is allowed around ':', §3.5) */
	ob_word(&o, "h=", 2, " ");
	while (*h != '\0') {
		const char *c = strchr(h, ':');
		size_t n = c != NULL ? (size_t)(c - h) : strlen(h);
		if (o.col + n + 1 > FOLD_AT) {
			ob_add(&o, "\r\n\t", 3);
			o.col = 1;
		}
		ob_add(&o, h, n);
		ob_str(&o, c != NULL ? ":" : ";");
		h += n + (c != NULL);
	}
	(void)util_bsnprintf(tag, sizeof(tag), "bh=%s;", bh);
	ob_word(&o, tag, strlen(tag), " ");
	ob_add(&o, "\r\n\tb=", 5);
	o.col = 3;
	return o.full ? 0 : o.len;
}

/*
 * pick - the field for h= entry number k of name `which` (k-th from the
 * bottom): extra fields are above the content's. NULL = over-signed.
 */
static void
pick(const struct dkim_hdrs *x, const struct dkim_hdrs *c, unsigned which, unsigned k,
    const char **p, size_t *len)
{
	for (unsigned i = c->nf; i-- > 0;)
		if (c->f[i].which == which && k-- == 0) {
			*p = c->buf + c->f[i].off;
			*len = c->f[i].len;
			return;
		}
	for (unsigned i = x->nf; i-- > 0;)
		if (x->f[i].which == which && k-- == 0) {
			*p = x->buf + x->f[i].off;
			*len = x->f[i].len;
			return;
		}
	*p = NULL;
	*len = 0;
}

/* sign_digest - the signature of the SHA-256 of data with key e; length or -1 */
static int
sign_digest(const struct dkim_key *e, const unsigned char *data, size_t dlen,
    unsigned char *sig, size_t *slen)
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	EVP_PKEY_CTX *pc = NULL;
	EVP_MD_CTX *mc = NULL;
	int ok = 0;

	if (EVP_Digest(data, dlen, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
		return -1;
	if (e->ed25519) {
		/* RFC 8463 §3: PureEdDSA over the SHA-256 hash of the header data */
		if ((mc = EVP_MD_CTX_new()) != NULL &&
		    EVP_DigestSignInit(mc, NULL, NULL, NULL, e->pkey) == 1 &&
		    EVP_DigestSign(mc, sig, slen, md, mdlen) == 1)
			ok = 1;
	} else {
		if ((pc = EVP_PKEY_CTX_new(e->pkey, NULL)) != NULL &&
		    EVP_PKEY_sign_init(pc) == 1 &&
		    EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1 &&
		    EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) == 1 &&
		    EVP_PKEY_sign(pc, sig, slen, md, mdlen) == 1)
			ok = 1;
	}
	EVP_MD_CTX_free(mc);
	EVP_PKEY_CTX_free(pc);
	ERR_clear_error();
	return ok ? 0 : -1;
}

/* dkim_sign_finish - see dkim.h */
int
dkim_sign_finish(struct dkim_sign *s, const char *extra, size_t extra_len, time_t now,
    char *out, size_t size, const char **why)
{
	struct dkim_hdrs x;
	unsigned char bh[32], sig[1024];
	unsigned int bhlen = 0;
	char bh64[48], hlist[1024];
	unsigned count[32];
	size_t hl = 0, off = 0, dlen = 0, dcap;
	char *data = NULL;
	int ret = -1;

	*why = NULL;
	if (!s->decided && !s->skip) {
		dkim_canon_hdrs_end(&s->hdrs);
		sign_decide(s);
	}
	if (s->skip) {
		s->domain[0] = '\0';
		*why = s->why != NULL ? s->why : "not signed";
		return 0;
	}
	dkim_canon_body_end(&s->body);
	if (EVP_DigestFinal_ex(s->bh, bh, &bhlen) != 1 || bhlen != 32) {
		*why = "hash failure";
		return -1;
	}
	(void)base64_encode(bh, 32, bh64, sizeof(bh64));      /* 44 characters: fits */

	/* the server's own fields above the content */
	dkim_canon_hdrs_init(&x);
	if (extra_len > 0) {
		dkim_canon_hdrs_feed(&x, extra, extra_len);
		dkim_canon_hdrs_end(&x);
		if (x.bad) {
			dkim_canon_hdrs_clear(&x);
			*why = "added header fields unreadable";
			return -1;
		}
	}

	/* h=: each signed name as often as it occurs, from once more */
	memset(count, 0, sizeof(count));
	for (unsigned i = 0; i < s->hdrs.nf; i++)
		count[s->hdrs.f[i].which]++;
	for (unsigned i = 0; i < x.nf; i++)
		count[x.f[i].which]++;
	count[DKIM_H_FROM]++;
	hlist[0] = '\0';
	for (unsigned w = 0; w < dkim_hdrs_nsigned; w++)
		for (unsigned k = 0; k < count[w]; k++) {
			int n = util_bsnprintf(hlist + hl, sizeof(hlist) - hl, "%s%s",
			    hl ? ":" : "", dkim_hdrs_signed[w]);
			if (n < 0) {
				*why = "too many header fields to sign";
				goto done;
			}
			hl += (size_t)n;
		}

	/* the canonical fields, in h= order; then room for one signature field */
	dcap = s->hdrs.len + x.len + 4 * (s->hdrs.nf + x.nf + 1) + DKIM_SIG_MAX;
	if ((data = malloc(dcap)) == NULL) {
		*why = "out of memory";
		goto done;
	}
	for (unsigned w = 0; w < dkim_hdrs_nsigned; w++)
		for (unsigned k = 0; k < count[w]; k++) {
			const char *f;
			size_t fl, n;

			pick(&x, &s->hdrs, w, k, &f, &fl);
			if (f == NULL)
				continue;                /* over-signed: contributes nothing */
			n = dkim_canon_header(f, fl, data + dlen, dcap - dlen - DKIM_SIG_MAX, 1);
			if (n == 0) {
				*why = "header field not canonicalisable";
				goto done;
			}
			dlen += n;
		}

	for (unsigned i = 0; i < s->nuse; i++) {
		const struct dkim_key *e = s->use[i];
		char field[DKIM_SIG_MAX];
		size_t fl = sig_field(e, hlist, bh64, now, field, sizeof(field)), cl, slen = sizeof(sig);
		char sig64[BASE64_LEN(sizeof(sig)) + 1];
		struct obuf o;

		if (fl == 0 || (cl = dkim_canon_header(field, fl, data + dlen, DKIM_SIG_MAX, 0)) == 0) {
			*why = "signature field too long";
			goto done;
		}
		if (sign_digest(e, (unsigned char *)data, dlen + cl, sig, &slen) < 0) {
			*why = "the signing operation failed";
			goto done;
		}
		(void)base64_encode(sig, slen, sig64, sizeof(sig64));   /* sized for sig: fits */
		o.p = out + off;
		o.len = 0;
		o.size = size - off;
		o.col = 0;
		o.full = 0;
		ob_add(&o, field, fl);
		o.col = 3;
		for (size_t p = 0, n = strlen(sig64); p < n; p += 72) {
			size_t c = n - p < 72 ? n - p : 72;
			if (p > 0)
				ob_add(&o, "\r\n\t", 3);
			ob_add(&o, sig64 + p, c);
		}
		ob_add(&o, "\r\n", 2);
		if (o.full) {
			*why = "no room for the signature";
			goto done;
		}
		off += o.len;
	}
	ret = (int)off;
done:
	free(data);
	dkim_canon_hdrs_clear(&x);
	if (ret < 0)
		s->domain[0] = '\0';
	return ret;
}
