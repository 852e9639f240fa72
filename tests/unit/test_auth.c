/*
 * test_auth.c - table-driven tests for src/auth/: SASL decoding and PLAIN
 *               messages, the users file, sender patterns, the failed-login
 *               guard and the password worker
 *
 * Owns:     a temporary key store under $TMPDIR, removed at the end.
 * Lifetime: one run.
 * Errors:   each failing row prints "got X, want Y" and fails its test.
 * Context:  single thread plus the worker's threads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "auth/auth.h"
#include "lib/util.h"

struct dec_row {
	const char *in;
	enum auth_sasl_result want;
	const char *want_out;        /* decoded (no NULs in these rows) */
};

static const struct dec_row dec_rows[] = {
	{ "YWxpY2U=", AUTH_SASL_OK, "alice" },
	{ "YWxpY2Ux", AUTH_SASL_OK, "alice1" },
	{ "YQ==", AUTH_SASL_OK, "a" },
	{ "=", AUTH_SASL_OK, "" },
	{ "*", AUTH_SASL_CANCEL, "" },
	{ "", AUTH_SASL_BAD_BASE64, "" },
	{ "YWxpY2U", AUTH_SASL_BAD_BASE64, "" },         /* not a multiple of 4 */
	{ "YQ=a", AUTH_SASL_BAD_BASE64, "" },            /* data after padding */
	{ "Y===", AUTH_SASL_BAD_BASE64, "" },
	{ "YR==", AUTH_SASL_BAD_BASE64, "" },            /* non-zero pad bits */
	{ "YWx pY2U=", AUTH_SASL_BAD_BASE64, "" },
	{ "YQ==YQ==", AUTH_SASL_BAD_BASE64, "" },        /* padding in the middle */
	{ "**", AUTH_SASL_BAD_BASE64, "" },
};

static void
test_decode(void **state)
{
	char out[64];
	int fails = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(dec_rows) / sizeof(dec_rows[0]); i++) {
		const struct dec_row *r = &dec_rows[i];
		size_t n = 99;
		enum auth_sasl_result got = auth_sasl_decode(r->in, strlen(r->in), out, sizeof(out), &n);

		if (got != r->want || strcmp(out, r->want_out) != 0 || n != strlen(r->want_out)) {
			print_error("\"%s\": got %d \"%s\" (%zu), want %d \"%s\"\n", r->in, got, out, n,
			    r->want, r->want_out);
			fails++;
		}
	}
	/* output limit: 8 chars decode to 6 octets, which need 7 with the NUL */
	{
		size_t n;
		assert_int_equal(auth_sasl_decode("YWxpY2Ux", 8, out, 6, &n), AUTH_SASL_BAD_MESSAGE);
		assert_int_equal(auth_sasl_decode("YWxpY2Ux", 8, out, 7, &n), AUTH_SASL_OK);
	}
	assert_int_equal(fails, 0);
}

struct plain_row {
	const char *name;
	const char *msg;
	size_t len;
	enum auth_sasl_result want;
	const char *user, *pass;
};

static const struct plain_row plain_rows[] = {
	{ "no authzid", "\0alice\0pw", 9, AUTH_SASL_OK, "alice", "pw" },
	{ "authzid = user", "alice\0alice\0pw", 14, AUTH_SASL_OK, "alice", "pw" },
	{ "other authzid", "bob\0alice\0pw", 12, AUTH_SASL_BAD_MESSAGE, NULL, NULL },
	{ "no second NUL", "\0alice", 6, AUTH_SASL_BAD_MESSAGE, NULL, NULL },
	{ "empty user", "\0\0pw", 4, AUTH_SASL_BAD_MESSAGE, NULL, NULL },
	{ "empty password", "\0alice\0", 7, AUTH_SASL_BAD_MESSAGE, NULL, NULL },
	{ "NUL in password", "\0alice\0p\0w", 10, AUTH_SASL_BAD_MESSAGE, NULL, NULL },
	{ "blank in user", "\0al ice\0pw", 10, AUTH_SASL_BAD_MESSAGE, NULL, NULL },
	{ "colon in user", "\0a:b\0pw", 7, AUTH_SASL_BAD_MESSAGE, NULL, NULL },
};

static void
test_plain(void **state)
{
	int fails = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(plain_rows) / sizeof(plain_rows[0]); i++) {
		const struct plain_row *r = &plain_rows[i];
		const char *u = NULL, *p = NULL;
		size_t ul = 0, pl = 0;
		enum auth_sasl_result got = auth_sasl_plain(r->msg, r->len, &u, &ul, &p, &pl);

		if (got != r->want || (r->want == AUTH_SASL_OK &&
		    (ul != strlen(r->user) || memcmp(u, r->user, ul) != 0 ||
		    pl != strlen(r->pass) || memcmp(p, r->pass, pl) != 0))) {
			print_error("%s: got %d, want %d\n", r->name, got, r->want);
			fails++;
		}
	}
	assert_int_equal(fails, 0);
}

struct pat_row {
	const char *patterns, *sender;
	int want;
};

static const struct pat_row pat_rows[] = {
	{ "", "anyone@any.test", 1 },
	{ "", "", 1 },
	{ "bob@example.com", "bob@example.com", 1 },
	{ "bob@example.com", "BOB@EXAMPLE.COM", 1 },
	{ "bob@example.com", "bob@example.co", 0 },
	{ "bob@example.com", "xbob@example.com", 0 },
	{ "@bob.test", "x@bob.test", 1 },
	{ "@bob.test", "x@sub.bob.test", 0 },
	{ "@bob.test", "x@notbob.test", 0 },
	{ "@bob.test", "@bob.test", 0 },
	{ "a@x.test,@bob.test", "y@bob.test", 1 },
	{ "a@x.test,@bob.test", "a@x.test", 1 },
	{ "a@x.test", "", 0 },
};

static void
test_sender_patterns(void **state)
{
	int fails = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(pat_rows) / sizeof(pat_rows[0]); i++) {
		const struct pat_row *r = &pat_rows[i];
		int got = auth_sender_allowed(r->patterns, r->sender);

		if (got != r->want) {
			print_error("\"%s\" vs \"%s\": got %d, want %d\n", r->patterns, r->sender, got, r->want);
			fails++;
		}
	}
	assert_int_equal(fails, 0);
}

static char tmp_root[512];

static void
write_users(const char *text)
{
	char path[1024];
	FILE *f;

	assert_true(util_bsnprintf(path, sizeof(path), "%s/users", tmp_root) >= 0);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
}

#define H6 "$6$saltsalt$ZXhhbXBsZWhhc2hleGFtcGxlaGFzaGV4YW1wbGVoYXNoZXhhbXBsZWhhc2hleGFtcGxl"

struct users_row {
	const char *name, *text, *want_err;
	size_t want_n;
};

static const struct users_row users_rows[] = {
	{ "good", "# c\n\nalice:" H6 "\nbob:" H6 ":bob@x.test,@y.test\r\n", NULL, 2 },
	{ "no colon", "alice\n", "line 1: expected USER:CRYPT_HASH", 0 },
	{ "md5 hash", "alice:$1$abc$defdefdefdef\n", "line 1: user alice: not a yescrypt", 0 },
	{ "blank in name", "al ice:" H6 "\n", "line 1: blank or control character", 0 },
	{ "bad pattern", "\nbob:" H6 ":bob\n", "line 2: user bob: bad sender pattern 'bob'", 0 },
	{ "twice", "a:" H6 "\na:" H6 "\n", "user a is listed twice", 0 },
};

static void
test_users_file(void **state)
{
	char err[512];
	int fails = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(users_rows) / sizeof(users_rows[0]); i++) {
		const struct users_row *r = &users_rows[i];
		struct auth_users *u;

		write_users(r->text);
		err[0] = '\0';
		u = auth_users_load(tmp_root, "users", err, sizeof(err));
		if (r->want_err == NULL ? (u == NULL || auth_users_count(u) != r->want_n) :
		    (u != NULL || strstr(err, r->want_err) == NULL)) {
			print_error("%s: got %s \"%s\", want %s\n", r->name, u ? "loaded" : "error", err,
			    r->want_err ? r->want_err : "loaded");
			fails++;
		}
		auth_users_unref(u);
	}
	assert_int_equal(fails, 0);
}

static void
test_users_lookup(void **state)
{
	struct auth_users *u;
	const char *h, *p;
	char err[256];

	(void)state;
	write_users("alice:" H6 "\nbob:" H6 ":@y.test\n");
	assert_non_null(u = auth_users_load(tmp_root, "users", err, sizeof(err)));
	assert_int_equal(auth_users_lookup(u, "bob", &h, &p), 0);
	assert_string_equal(p, "@y.test");
	assert_int_equal(auth_users_lookup(u, "alice", &h, &p), 0);
	assert_string_equal(h, H6);
	assert_string_equal(p, "");
	/* unknown: a dummy hash, so that the check costs the same */
	assert_int_equal(auth_users_lookup(u, "carol", &h, &p), -1);
	assert_true(strncmp(h, "$6$", 3) == 0);
	auth_users_unref(u);
}

static void
test_guard(void **state)
{
	struct auth_guard *g = auth_guard_new(64);
	const unsigned char a[5] = { 4, 10, 0, 0, 1 }, b[5] = { 4, 10, 0, 0, 2 };
	uint64_t t = 1000;

	(void)state;
	assert_non_null(g);
	for (unsigned i = 1; i < AUTH_FAIL_LIMIT; i++) {
		assert_int_equal(auth_guard_fail(g, a, 5, t + i), i);
		assert_false(auth_guard_blocked(g, a, 5, t + i));
	}
	assert_int_equal(auth_guard_fail(g, a, 5, t + 20), AUTH_FAIL_LIMIT);
	assert_true(auth_guard_blocked(g, a, 5, t + 21));
	assert_false(auth_guard_blocked(g, b, 5, t + 21));
	assert_true(auth_guard_blocked(g, a, 5, t + 20 + AUTH_BLOCK_TIME - 1));
	assert_false(auth_guard_blocked(g, a, 5, t + 20 + AUTH_BLOCK_TIME));
	/* failures spread wider than the window never add up */
	for (unsigned i = 0; i < 3 * AUTH_FAIL_LIMIT; i++)
		auth_guard_fail(g, b, 5, t + (uint64_t)i * (AUTH_FAIL_WINDOW / 5 + 1));
	assert_false(auth_guard_blocked(g, b, 5, t + 3 * AUTH_FAIL_LIMIT * (AUTH_FAIL_WINDOW / 5 + 1)));
	/* many addresses: a fixed table, the stalest entries are replaced */
	for (unsigned i = 0; i < 10000; i++) {
		unsigned char k[5] = { 4, (unsigned char)(i >> 16), (unsigned char)(i >> 8), (unsigned char)i, 9 };
		auth_guard_fail(g, k, 5, t + 100);
	}
	auth_guard_free(g);
}

struct wres {
	int n, ok[4];
	struct event_base *base;
};

static void
wdone(void *arg, int ok)
{
	struct wres *r = arg;

	r->ok[r->n++] = ok;
	if (r->n == 3)
		event_base_loopbreak(r->base);
}

static void
test_worker(void **state)
{
	struct crypt_data cd;
	struct wres r;
	struct auth_worker *w;
	struct auth_job *j;
	char hash[256];
	const char *h;

	(void)state;
	memset(&r, 0, sizeof(r));
	memset(&cd, 0, sizeof(cd));
	assert_int_equal(evthread_use_pthreads(), 0);
	assert_non_null(r.base = event_base_new());
	assert_non_null(h = crypt_r("secret", "$6$rounds=1000$abcdefgh$", &cd));
	util_strlcpy(hash, h, sizeof(hash));
	assert_non_null(w = auth_worker_new(r.base, 2));
	assert_non_null(auth_worker_submit(w, hash, "secret", 6, wdone, &r));
	assert_non_null(auth_worker_submit(w, hash, "wrong", 5, wdone, &r));
	assert_non_null(j = auth_worker_submit(w, hash, "secret", 6, wdone, &r));
	auth_job_cancel(j);              /* its callback never runs */
	assert_non_null(auth_worker_submit(w, "*0", "x", 1, wdone, &r));
	{
		/* a deadline keeps the loop running until the answers come (or fails it) */
		struct timeval tv = { 20, 0 };
		event_base_loopexit(r.base, &tv);
		event_base_loop(r.base, EVLOOP_NO_EXIT_ON_EMPTY);
	}
	assert_int_equal(r.n, 3);
	assert_int_equal(r.ok[0] + r.ok[1] + r.ok[2], 1);   /* only the right password */
	auth_worker_free(w);
	event_base_free(r.base);
}

static int
setup(void **state)
{
	const char *base = getenv("TMPDIR");

	(void)state;
	if (base == NULL || base[0] == '\0')
		base = "/tmp";
	if (util_bsnprintf(tmp_root, sizeof(tmp_root), "%s/test_auth.XXXXXX", base) < 0 ||
	    mkdtemp(tmp_root) == NULL)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	char path[1024];

	(void)state;
	if (util_bsnprintf(path, sizeof(path), "%s/users", tmp_root) >= 0)
		unlink(path);
	return rmdir(tmp_root);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode),
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_sender_patterns),
		cmocka_unit_test(test_users_file),
		cmocka_unit_test(test_users_lookup),
		cmocka_unit_test(test_guard),
		cmocka_unit_test(test_worker),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
