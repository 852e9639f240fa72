/*
 * dkim.h - DKIM signing (RFC 6376, RSA-SHA256; Ed25519-SHA256 per RFC 8463):
 *          the key table, the per-message signer and the relaxed
 *          canonicalisers (public interface of src/dkim/)
 *
 * Owns:     struct dkim_keys (the parsed dkim_key_table with its keys),
 *           struct dkim_sign (one message's signing state), struct
 *           dkim_body and struct dkim_hdrs (the streaming canonicalisers).
 * Lifetime: dkim_keys from dkim_keys_load() to the last dkim_keys_unref()
 *           (a signer holds a reference, so a table replaced on SIGHUP
 *           lives on until the messages being signed with it are done);
 *           dkim_sign from dkim_sign_new() to dkim_sign_free().
 * Errors:   loading writes "dkim_key_table FILE line N: what" into err;
 *           signing never fails a message: a message that cannot be signed
 *           is queued unsigned and the reason is given to the caller.
 * Context:  event-loop thread (the loaders read small files with blocking
 *           I/O at start-up and on SIGHUP, like the TLS keys).
 *
 * Memory: a signer keeps the body's SHA-256 state (the body is hashed as
 * it arrives, never kept) and a copy of the header fields it signs, at
 * most DKIM_HDRS_MAX bytes; a message whose signed fields are larger is
 * not signed.
 */
#ifndef MTAD_DKIM_H
#define MTAD_DKIM_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define DKIM_HDRS_MAX     (64 * 1024)  /* bytes of signed header fields kept */
#define DKIM_FIELDS_MAX   64           /* signed header fields kept */
#define DKIM_NAME_MAX     32           /* longest field name we sign */
#define DKIM_SIG_MAX      4096         /* one DKIM-Signature field, folded */
#define DKIM_KEYS_PER_DOMAIN 4
#define DKIM_DOMAIN_MAX   253
#define DKIM_SELECTOR_MAX 63

/* --- relaxed canonicalisation (RFC 6376 §3.4.2, §3.4.4) ------------------- */

/* Where canonical bytes go: a hash update, or a test's buffer. */
typedef void dkim_emit_fn(void *arg, const char *p, size_t len);

/*
 * struct dkim_body - the relaxed body canonicaliser, streaming: whitespace
 * runs and empty lines are counted, not kept, so any body is canonicalised
 * in constant memory and one pass.
 */
struct dkim_body {
	dkim_emit_fn *emit;
	void    *arg;
	uint64_t nl;                 /* CRLFs seen but not yet emitted */
	int      wsp;                /* SP/HTAB run pending inside the line */
	int      cr;                 /* a CR is held back (CRLF or a lone CR?) */
	int      any;                /* something but line ends was emitted */
	size_t   olen;
	char     out[2048];          /* emitted in batches */
};

void dkim_canon_body_init(struct dkim_body *b, dkim_emit_fn *emit, void *arg);
/* dkim_canon_body_feed - the next len bytes of the body (any split) */
void dkim_canon_body_feed(struct dkim_body *b, const char *p, size_t len);
/* dkim_canon_body_end - the end of the body: the final CRLF (none for an empty body) */
void dkim_canon_body_end(struct dkim_body *b);

/*
 * dkim_canon_header - one header field (name ':' value, folded, with or
 * without its final CRLF) in relaxed form, "name:value\r\n", into out.
 * crlf = 0 leaves the final CRLF off (the DKIM-Signature field itself).
 * The length, or 0 when it does not fit or the field has no colon.
 */
size_t dkim_canon_header(const char *field, size_t len, char *out, size_t size, int crlf);

/*
 * struct dkim_hdrs - the header section reader: finds where the body
 * starts and keeps a raw copy of the fields named in the signed set
 * (dkim_hdrs_signed). Resumable over any split.
 */
struct dkim_field {
	uint32_t off, len;           /* in buf: the raw field, with its CRLFs */
	uint8_t  which;              /* index in the signed-field table */
};

struct dkim_hdrs {
	unsigned char state;
	unsigned char keep;          /* the current field is copied */
	unsigned char bad;           /* malformed header line or over a limit */
	unsigned char done;          /* the empty line was seen: the body follows */
	unsigned char nlen;
	char     name[DKIM_NAME_MAX];
	char    *buf;
	size_t   len, cap;
	struct dkim_field f[DKIM_FIELDS_MAX];
	unsigned nf;
	unsigned nfrom;              /* From: fields seen (kept or not) */
};

void dkim_canon_hdrs_init(struct dkim_hdrs *h);
void dkim_canon_hdrs_clear(struct dkim_hdrs *h);
/* dkim_canon_hdrs_feed - header bytes; returns how many belong to the header section */
size_t dkim_canon_hdrs_feed(struct dkim_hdrs *h, const char *p, size_t len);
/* dkim_canon_hdrs_end - end of input: close the last field (a message with no body) */
void dkim_canon_hdrs_end(struct dkim_hdrs *h);

/* The fields signed (RFC 6376 §5.4.1's list), lower case; DKIM_H_FROM first. */
#define DKIM_H_FROM 0
extern const char *const dkim_hdrs_signed[];
extern const unsigned dkim_hdrs_nsigned;

/*
 * dkim_canon_from_domain - the domain of the address in a raw From: field
 * (`Name <user@Example.COM>`, `user@example.com (c)`): lower case, into
 * out. 0, or -1 when there is no single usable address.
 */
int dkim_canon_from_domain(const char *field, size_t len, char *out, size_t size);

/* --- the key table (dkim_keys.c) -------------------------------------------- */

struct dkim_keys;

/*
 * dkim_keys_load - read the key table rel (relative to the key store root)
 * and every key it names through the key store (tls_keys_read: the
 * privileged reader once mtad runs unprivileged). NULL with err
 * ("dkim_key_table FILE line N: KEYFILE: why").
 */
struct dkim_keys *dkim_keys_load(const char *root, const char *rel, char *err, size_t errlen);
struct dkim_keys *dkim_keys_ref(struct dkim_keys *k);
/* dkim_keys_unref - drop a reference; takes NULL, returns NULL */
struct dkim_keys *dkim_keys_unref(struct dkim_keys *k);
/* dkim_keys_count - how many keys the table holds */
size_t dkim_keys_count(const struct dkim_keys *k);

/*
 * dkim_keys_record - the DNS TXT records to publish for domain: one
 * "SELECTOR._domainkey.DOMAIN. IN TXT ( "v=DKIM1; k=...; " "p=..." )"
 * line per key, into out. The length, 0 when the domain has no key, -1
 * when out is too small.
 */
int dkim_keys_record(const struct dkim_keys *k, const char *domain, char *out, size_t size);

/* --- signing (dkim_sign.c) ------------------------------------------------ */

struct dkim_sign;

/* dkim_sign_new - a signer for one message; holds a reference to k (NULL if out of memory) */
struct dkim_sign *dkim_sign_new(struct dkim_keys *k);
/* dkim_sign_feed - the message content as it is stored, in any pieces */
void dkim_sign_feed(struct dkim_sign *s, const char *p, size_t len);

/*
 * dkim_sign_finish - the end of the content. extra: header fields the
 * server adds above the content (Message-ID:, Date:) which the message
 * will carry. The DKIM-Signature fields (one per key of the From:
 * domain) go into out, folded, each ending in CRLF. Returns the length
 * written, 0 when the message is not signed (then *why says why: "no key
 * for the From: domain" and the like, a static text), -1 when out is too
 * small or signing failed (*why).
 */
int dkim_sign_finish(struct dkim_sign *s, const char *extra, size_t extra_len, time_t now,
    char *out, size_t size, const char **why);
/* dkim_sign_domain - the d= of the last finish ("" when not signed) */
const char *dkim_sign_domain(const struct dkim_sign *s);
struct dkim_sign *dkim_sign_free(struct dkim_sign *s);

#endif
