/*
 * test_dkim.c - table-driven tests for src/dkim/: relaxed body and header
 *               canonicalisation (RFC 6376 §3.4.5's example among the rows),
 *               the header section reader, the From: domain, the key table
 *               and the shape of a signature
 *
 * Owns:     a temporary key store under $TMPDIR, removed at the end.
 * Lifetime: one run.
 * Errors:   each failing row prints "got X, want Y" and fails its test.
 * Context:  single thread.
 *
 * Streaming readers get every row whole, byte by byte and split at every
 * position into two pieces: the answer must not depend on the split.
 * Signatures themselves are verified end to end by dkimpy and OpenDKIM
 * (tests/e2e/test_dkim.py).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "dkim/dkim.h"
#include "lib/util.h"

#define MAXBUF 8192

/* --- body ------------------------------------------------------------------ */

struct body_row {
	const char *name;
	const char *in;
	const char *want;
};

static const struct body_row body_rows[] = {
	/* RFC 6376 §3.4.5: " C \r\nD \t E\r\n\r\n\r\n" -> " C\r\nD E\r\n" */
	{ "RFC 6376 3.4.5", " C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n" },
	{ "empty body", "", "" },
	{ "only empty lines", "\r\n\r\n\r\n", "" },
	{ "only blanks", "  \t\r\n \r\n", "" },
	{ "no final CRLF", "abc", "abc\r\n" },
	{ "no final CRLF, trailing blank", "abc  ", "abc\r\n" },
	{ "inner empty lines kept", "a\r\n\r\n\r\nb\r\n", "a\r\n\r\n\r\nb\r\n" },
	{ "blank-only inner line", "a\r\n \t \r\nb\r\n", "a\r\n\r\nb\r\n" },
	{ "leading blanks become one SP", "\t\t  x\r\n", " x\r\n" },
	{ "runs inside a line", "a \t b\t\tc\r\n", "a b c\r\n" },
	{ "lone CR is a byte", "a\rb\r\n", "a\rb\r\n" },
	{ "lone CR at the end", "a\r", "a\r\r\n" },
	{ "CR before blank", "a\r \r\n", "a\r\r\n" },
	{ "8-bit bytes kept", "gr\xc3\xbc\xc3\x9f  e\r\n", "gr\xc3\xbc\xc3\x9f e\r\n" },
	{ "dot lines", ".\r\n..\r\n", ".\r\n..\r\n" },
};

struct sink {
	char   buf[MAXBUF];
	size_t len;
};

static void
sink_emit(void *arg, const char *p, size_t len)
{
	struct sink *s = arg;

	assert_true(s->len + len <= sizeof(s->buf));
	memcpy(s->buf + s->len, p, len);
	s->len += len;
}

static int
body_run(const struct body_row *r, size_t split, int bytewise)
{
	struct dkim_body b;
	static struct sink s;
	size_t n = strlen(r->in);

	s.len = 0;
	dkim_canon_body_init(&b, sink_emit, &s);
	if (bytewise) {
		for (size_t i = 0; i < n; i++)
			dkim_canon_body_feed(&b, r->in + i, 1);
	} else {
		dkim_canon_body_feed(&b, r->in, split);
		dkim_canon_body_feed(&b, r->in + split, n - split);
	}
	dkim_canon_body_end(&b);
	if (s.len != strlen(r->want) || memcmp(s.buf, r->want, s.len) != 0) {
		print_error("%s (split %zu%s): got \"%.*s\", want \"%s\"\n", r->name, split,
		    bytewise ? ", bytewise" : "", (int)s.len, s.buf, r->want);
		return 1;
	}
	return 0;
}

static void
test_body(void **state)
{
	int fails = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(body_rows) / sizeof(body_rows[0]); i++) {
		const struct body_row *r = &body_rows[i];
		fails += body_run(r, 0, 1);
		for (size_t k = 0; k <= strlen(r->in); k++)
			fails += body_run(r, k, 0);
	}
	assert_int_equal(fails, 0);
}

/* a big body through a small emit buffer: many flushes, bounded memory */
static void
test_body_large(void **state)
{
	struct dkim_body b;
	static struct sink s;
	const char *line = "x  y\t\r\n";
	size_t want = 0;

	(void)state;
	s.len = 0;
	dkim_canon_body_init(&b, sink_emit, &s);
	for (int i = 0; i < 1000; i++) {
		dkim_canon_body_feed(&b, line, strlen(line));
		want += 5;                   /* "x y\r\n" */
	}
	for (int i = 0; i < 100000; i++)
		dkim_canon_body_feed(&b, "\r\n", 2);   /* trailing empty lines: counted, not kept */
	dkim_canon_body_end(&b);
	assert_int_equal(s.len, want);
	assert_memory_equal(s.buf + s.len - 5, "x y\r\n", 5);
}

/* --- one header field ---------------------------------------------------------- */

struct hdr_row {
	const char *name;
	const char *in;
	const char *want;            /* NULL = refused */
};

static const struct hdr_row hdr_rows[] = {
	/* RFC 6376 §3.4.5 */
	{ "RFC 6376 3.4.5 A", "A: X\r\n", "a:X\r\n" },
	{ "RFC 6376 3.4.5 B", "B : Y\t\r\n\tZ  \r\n", "b:Y Z\r\n" },
	{ "no blank after colon", "Subject:x\r\n", "subject:x\r\n" },
	{ "empty value", "Subject:\r\n", "subject:\r\n" },
	{ "blank-only value", "Subject: \t \r\n", "subject:\r\n" },
	{ "folded empty first line", "To:\r\n a@b,\r\n\tc@d\r\n", "to:a@b, c@d\r\n" },
	{ "mixed case name", "MESSAGE-Id: <x@y>\r\n", "message-id:<x@y>\r\n" },
	{ "colon in value", "Subject: a: b\r\n", "subject:a: b\r\n" },
	{ "8-bit value", "Subject: Gr\xc3\xbc\xc3\x9f" "e \r\n", "subject:Gr\xc3\xbc\xc3\x9f" "e\r\n" },
	{ "without CRLF", "From: a@b", "from:a@b\r\n" },
	{ "no colon", "From a@b\r\n", NULL },
};

static void
test_header(void **state)
{
	char out[512];
	int fails = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(hdr_rows) / sizeof(hdr_rows[0]); i++) {
		const struct hdr_row *r = &hdr_rows[i];
		size_t n = dkim_canon_header(r->in, strlen(r->in), out, sizeof(out), 1);

		if (r->want == NULL ? n != 0 : (n != strlen(r->want) || memcmp(out, r->want, n) != 0)) {
			print_error("%s: got \"%.*s\", want \"%s\"\n", r->name, (int)n, out,
			    r->want ? r->want : "(refused)");
			fails++;
		}
	}
	/* crlf = 0 and a buffer that is too small */
	assert_int_equal(dkim_canon_header("A: b\r\n", 6, out, sizeof(out), 0), 3);
	assert_memory_equal(out, "a:b", 3);
	assert_int_equal(dkim_canon_header("Subject: long", 13, out, 8, 1), 0);
	assert_int_equal(fails, 0);
}

/* --- the header section ------------------------------------------------------- */

struct hdrs_row {
	const char *name;
	const char *in;
	int         want_bad;
	int         want_done;
	size_t      want_used;       /* unused: the section ends after the first CRLF CRLF */
	const char *want_fields;     /* kept fields, each raw, joined by '|' */
	unsigned    want_nfrom;
};

static const struct hdrs_row hdrs_rows[] = {
	{ "simple", "From: a@b\r\nSubject: s\r\nX-Other: o\r\n\r\nbody\r\n", 0, 1, 36,
	  "From: a@b\r\n|Subject: s\r\n", 1 },
	{ "folded kept field", "To: a,\r\n\tb\r\nX: y\r\n z\r\n\r\n", 0, 1, 24,
	  "To: a,\r\n\tb\r\n", 0 },
	{ "no body", "From: a@b\r\n", 0, 0, 0, "From: a@b\r\n", 1 },
	{ "two From", "From: a@b\r\nfrom: c@d\r\n\r\n", 0, 1, 24, "From: a@b\r\n|from: c@d\r\n", 2 },
	{ "blank before colon", "Subject : x\r\n\r\n", 0, 1, 15, "Subject : x\r\n", 0 },
	{ "long unknown name", "X-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa: v\r\n\r\n", 0, 1,
	  66, "", 0 },
	{ "continuation first", " x\r\nFrom: a\r\n\r\n", 1, 1, 0, "", 0 },
	{ "line without colon", "From: a\r\nnot a header\r\n\r\n", 1, 1, 0, "", 1 },
	{ "CR without LF at line start", "From: a\r\n\rx\r\n\r\n", 1, 1, 0, "", 1 },
};

static int
hdrs_run(const struct hdrs_row *r, size_t split, int bytewise)
{
	struct dkim_hdrs h;
	char got[MAXBUF];
	size_t n = strlen(r->in), used = 0, gl = 0;
	int bad = 0;

	dkim_canon_hdrs_init(&h);
	if (bytewise) {
		for (size_t i = 0; i < n && !h.done; i++)
			used += dkim_canon_hdrs_feed(&h, r->in + i, 1);
	} else {
		used = dkim_canon_hdrs_feed(&h, r->in, split);
		if (!h.done)
			used += dkim_canon_hdrs_feed(&h, r->in + split, n - split);
	}
	if (!h.done && !r->want_done)
		dkim_canon_hdrs_end(&h);
	for (unsigned i = 0; i < h.nf; i++) {
		if (i > 0)
			got[gl++] = '|';
		memcpy(got + gl, h.buf + h.f[i].off, h.f[i].len);
		gl += h.f[i].len;
	}
	got[gl] = '\0';
	if (h.bad != r->want_bad) {
		print_error("%s (split %zu): bad got %d, want %d\n", r->name, split, h.bad, r->want_bad);
		bad = 1;
	} else if (!r->want_bad && (h.done != 1 ||
	    (r->want_done && used != (size_t)(strstr(r->in, "\r\n\r\n") + 4 - r->in)) || strcmp(got, r->want_fields) != 0 ||
	    h.nfrom != r->want_nfrom)) {
		print_error("%s (split %zu): got used %zu fields \"%s\" nfrom %u, want %zu \"%s\" %u\n",
		    r->name, split, used, got, h.nfrom, r->want_used, r->want_fields, r->want_nfrom);
		bad = 1;
	}
	dkim_canon_hdrs_clear(&h);
	return bad;
}

static void
test_hdrs(void **state)
{
	int fails = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(hdrs_rows) / sizeof(hdrs_rows[0]); i++) {
		fails += hdrs_run(&hdrs_rows[i], 0, 1);
		for (size_t k = 0; k <= strlen(hdrs_rows[i].in); k++)
			fails += hdrs_run(&hdrs_rows[i], k, 0);
	}
	assert_int_equal(fails, 0);
}

/* limits: more kept fields than DKIM_FIELDS_MAX, or bytes than DKIM_HDRS_MAX, is "bad" */
static void
test_hdrs_limits(void **state)
{
	struct dkim_hdrs h;
	char line[1100];

	(void)state;
	dkim_canon_hdrs_init(&h);
	for (int i = 0; i <= DKIM_FIELDS_MAX && !h.bad; i++)
		dkim_canon_hdrs_feed(&h, "To: x\r\n", 7);
	assert_true(h.bad);
	dkim_canon_hdrs_clear(&h);

	memset(line, 'a', sizeof(line));
	memcpy(line, "Subject: ", 9);
	line[sizeof(line) - 2] = '\r';
	line[sizeof(line) - 1] = '\n';
	dkim_canon_hdrs_init(&h);
	dkim_canon_hdrs_feed(&h, "Subject: a\r\n", 12);
	for (int i = 0; i < DKIM_HDRS_MAX / (int)sizeof(line) + 1 && !h.bad; i++)
		dkim_canon_hdrs_feed(&h, " aaaaaaaa", 9), dkim_canon_hdrs_feed(&h, line + 9, sizeof(line) - 9);
	assert_true(h.bad);
	assert_true(h.len <= DKIM_HDRS_MAX);
	dkim_canon_hdrs_clear(&h);
}

/* --- From: domain --------------------------------------------------------------- */

struct from_row {
	const char *in;
	const char *want;            /* NULL = refused */
};

static const struct from_row from_rows[] = {
	{ "From: alice@Example.COM\r\n", "example.com" },
	{ "From: Alice <alice@example.com>\r\n", "example.com" },
	{ "From: \"Smith, A <x@evil.test>\" <a@sub.example.com>\r\n", "sub.example.com" },
	{ "From: a@example.com (comment <x@evil.test>)\r\n", "example.com" },
	{ "From:\r\n Alice\r\n <alice@example.com.>\r\n", "example.com" },
	{ "From: a@example.com, b@example.org\r\n", NULL },
	{ "From: group: a@example.com;\r\n", NULL },
	{ "From: nobody\r\n", NULL },
	{ "From: <@example.com>\r\n", NULL },
	{ "From: <a@>\r\n", NULL },
	{ "From: Alice <alice@example.com\r\n", NULL },
	{ "From: a b@example.com\r\n", NULL },
	{ "From: j\xc3\xb6rg@example.com\r\n", "example.com" },
};

static void
test_from_domain(void **state)
{
	char out[DKIM_DOMAIN_MAX + 1];
	int fails = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(from_rows) / sizeof(from_rows[0]); i++) {
		const struct from_row *r = &from_rows[i];
		int rc = dkim_canon_from_domain(r->in, strlen(r->in), out, sizeof(out));

		if (r->want == NULL ? rc != -1 : (rc != 0 || strcmp(out, r->want) != 0)) {
			print_error("%s: got %d \"%s\", want %s\n", r->in, rc, rc == 0 ? out : "",
			    r->want ? r->want : "refused");
			fails++;
		}
	}
	assert_int_equal(fails, 0);
}

/* --- key table and signing ------------------------------------------------------ */

static char tmp_root[512];

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static void
write_file(const char *rel, const char *text)
{
	char path[1024];
	FILE *f;

	assert_true(util_bsnprintf(path, sizeof(path), "%s/%s", tmp_root, rel) >= 0);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
}

static void
write_key(const char *rel, EVP_PKEY *pk)
{
	char path[1024];
	FILE *f;

	assert_true(util_bsnprintf(path, sizeof(path), "%s/%s", tmp_root, rel) >= 0);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	EVP_PKEY_free(pk);
}

static int
setup_keys(void **state)
{
	const char *base = getenv("TMPDIR");

	(void)state;
	if (base == NULL || base[0] == '\0')
		base = "/tmp";
	if (util_bsnprintf(tmp_root, sizeof(tmp_root), "%s/test_dkim.XXXXXX", base) < 0 ||
	    mkdtemp(tmp_root) == NULL)
		return -1;
	write_key("rsa.pem", EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024));
	write_key("small.pem", EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)768));
	write_key("ed.pem", EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"));
	write_key("ec.pem", EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"));
	return 0;
}

static int
teardown_keys(void **state)
{
	(void)state;
	return nftw(tmp_root, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

struct table_row {
	const char *name;
	const char *table;
	const char *want_err;        /* NULL = loads */
	size_t      want_keys;
};

static const struct table_row table_rows[] = {
	{ "good", "# c\n\nexample.com s1 rsa.pem\nEXAMPLE.com s2 ed.pem # both\n", NULL, 2 },
	{ "missing key file", "example.com s1 nope.pem\n",
	  "dkim_key_table table line 1: nope.pem: No such file or directory", 0 },
	{ "two words", "example.com rsa.pem\n", "line 1: expected DOMAIN SELECTOR KEY_FILE", 0 },
	{ "four words", "example.com s rsa.pem x\n", "line 1: expected DOMAIN SELECTOR KEY_FILE", 0 },
	{ "bad domain", "exa_mple.com s rsa.pem\n", "line 1: 'exa_mple.com' is not a domain name", 0 },
	{ "bad selector", "\nexample.com s/1 rsa.pem\n", "line 2: 's/1' is not a selector", 0 },
	{ "small RSA key", "example.com s small.pem\n",
	  "small.pem: RSA key of 768 bits: DKIM needs at least 1024", 0 },
	{ "EC key", "example.com s ec.pem\n", "ec.pem: neither an RSA nor an Ed25519 key", 0 },
	{ "not a key", "example.com s table\n", "not a PEM private key", 0 },
	{ "outside the store", "example.com s ../x.pem\n", "'..' leaves the key store", 0 },
	{ "five keys", "a.test a rsa.pem\na.test b rsa.pem\na.test c rsa.pem\na.test d rsa.pem\n"
	  "a.test e rsa.pem\n", "line 5: more than 4 keys for a.test", 0 },
};

static void
test_key_table(void **state)
{
	char err[1024];
	int fails = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(table_rows) / sizeof(table_rows[0]); i++) {
		const struct table_row *r = &table_rows[i];
		struct dkim_keys *k;

		write_file("table", r->table);
		err[0] = '\0';
		k = dkim_keys_load(tmp_root, "table", err, sizeof(err));
		if (r->want_err == NULL ? (k == NULL || dkim_keys_count(k) != r->want_keys) :
		    (k != NULL || strstr(err, r->want_err) == NULL)) {
			print_error("%s: got %s \"%s\", want %s\n", r->name, k ? "loaded" : "error",
			    err, r->want_err ? r->want_err : "loaded");
			fails++;
		}
		dkim_keys_unref(k);
	}
	assert_int_equal(fails, 0);
}

static void
test_record(void **state)
{
	struct dkim_keys *k;
	char err[512], out[8192];

	(void)state;
	write_file("table", "example.com s1 rsa.pem\nexample.com s2 ed.pem\n");
	assert_non_null(k = dkim_keys_load(tmp_root, "table", err, sizeof(err)));
	assert_true(dkim_keys_record(k, "example.com", out, sizeof(out)) > 0);
	assert_non_null(strstr(out, "s1._domainkey.example.com. IN TXT ( \"v=DKIM1; k=rsa; \" \"p=MIGf"));
	assert_non_null(strstr(out, "\ns2._domainkey.example.com. IN TXT ( \"v=DKIM1; k=ed25519; \" \"p="));
	assert_int_equal(dkim_keys_record(k, "other.test", out, sizeof(out)), 0);
	assert_int_equal(dkim_keys_record(k, "example.com", out, 40), -1);
	dkim_keys_unref(k);
}

/* sign_msg - sign text in pieces of `piece` bytes; the signature fields or "" */
static int
sign_msg(struct dkim_keys *k, const char *text, size_t piece, const char *extra, char *out,
    size_t size, const char **why)
{
	struct dkim_sign *s = dkim_sign_new(k);
	size_t n = strlen(text);
	int rc;

	assert_non_null(s);
	for (size_t i = 0; i < n; i += piece)
		dkim_sign_feed(s, text + i, n - i < piece ? n - i : piece);
	rc = dkim_sign_finish(s, extra, strlen(extra), 1700000000, out, size, why);
	dkim_sign_free(s);
	return rc;
}

static void
test_sign_shape(void **state)
{
	struct dkim_keys *k;
	char err[512], a[2 * DKIM_SIG_MAX], b[2 * DKIM_SIG_MAX];
	const char *why;
	const char *msg = "From: A <a@mail.example.com>\r\nTo: b@x.test\r\nSubject: s\r\n"
	    "Received: not signed\r\n\r\nbody  \r\n\r\n";
	int na, nb;

	(void)state;
	write_file("table", "example.com s1 rsa.pem\nexample.com s2 ed.pem\nmail.example.com s3 ed.pem\n");
	assert_non_null(k = dkim_keys_load(tmp_root, "table", err, sizeof(err)));
	/* the most specific domain wins: mail.example.com, one Ed25519 key */
	na = sign_msg(k, msg, 1000, "Message-ID: <q@h>\r\nDate: Thu, 1 Jan 2026 00:00:00 +0000\r\n",
	    a, sizeof(a), &why);
	assert_true(na > 0);
	a[na] = '\0';
	assert_non_null(strstr(a, "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;"));
	assert_non_null(strstr(a, "d=mail.example.com;"));
	assert_non_null(strstr(a, "s=s3;"));
	assert_non_null(strstr(a, "t=1700000000;"));
	{
		char u[sizeof(a)];
		size_t ul = 0;
		for (int i = 0; i < na; i++)     /* unfolded */
			if (a[i] != '\r' && a[i] != '\n' && a[i] != '\t')
				u[ul++] = a[i];
		u[ul] = '\0';
		if (strstr(u, "h=from:from:subject:date:to:message-id;") == NULL)
			fail_msg("got %s, want h=from:from:subject:date:to:message-id;", u);
	}
	assert_null(strstr(a, "received"));
	/* Ed25519 is deterministic: any split of the input gives the same field */
	nb = sign_msg(k, msg, 1, "Message-ID: <q@h>\r\nDate: Thu, 1 Jan 2026 00:00:00 +0000\r\n",
	    b, sizeof(b), &why);
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, (size_t)na);
	/* every line of the field is at most 78 octets, folded with CRLF HTAB */
	for (char *l = a, *e; (e = strstr(l, "\r\n")) != NULL; l = e + 2)
		assert_true(e - l <= 78);
	/* no key: not signed, with a reason */
	assert_int_equal(sign_msg(k, "From: a@example.org\r\n\r\nx\r\n", 7, "", a, sizeof(a), &why), 0);
	assert_string_equal(why, "no key for the From: domain");
	assert_int_equal(sign_msg(k, "Subject: x\r\n\r\nx\r\n", 7, "", a, sizeof(a), &why), 0);
	assert_string_equal(why, "no From: field");
	/* too small an output buffer: -1, nothing half-written is returned */
	assert_int_equal(sign_msg(k, msg, 9, "", a, 100, &why), -1);
	dkim_keys_unref(k);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_body),
		cmocka_unit_test(test_body_large),
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_hdrs),
		cmocka_unit_test(test_hdrs_limits),
		cmocka_unit_test(test_from_domain),
		cmocka_unit_test(test_key_table),
		cmocka_unit_test(test_record),
		cmocka_unit_test(test_sign_shape),
	};

	return cmocka_run_group_tests(tests, setup_keys, teardown_keys);
}
