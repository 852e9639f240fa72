/*
 * test_base64.c - table-driven tests for src/lib/base64.c: RFC 4648 §10
 *                 vectors both ways, strict decoding (bad padding, bad
 *                 characters, pad bits, lengths) and the output bounds
 *
 * Owns:     nothing.
 * Lifetime: one run.
 * Errors:   each failing row prints "got X, want Y" and fails its test.
 * Context:  single thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/base64.h"

/* RFC 4648 §10, and octets that use '+' and '/' */
static const struct {
	const char *plain;
	size_t len;
	const char *enc;
} vectors[] = {
	{ "", 0, "" },
	{ "f", 1, "Zg==" },
	{ "fo", 2, "Zm8=" },
	{ "foo", 3, "Zm9v" },
	{ "foob", 4, "Zm9vYg==" },
	{ "fooba", 5, "Zm9vYmE=" },
	{ "foobar", 6, "Zm9vYmFy" },
	{ "\xfb\xff\xbf", 3, "+/+/" },
	{ "\0user\0pass", 10, "AHVzZXIAcGFzcw==" },
};

static void
test_vectors(void **state)
{
	char enc[64], dec[64];
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		size_t n = 99;
		int e = base64_encode(vectors[i].plain, vectors[i].len, enc, sizeof(enc));

		if (e != (int)strlen(vectors[i].enc) || strcmp(enc, vectors[i].enc) != 0) {
			printf("encode row %zu: got %d '%s', want '%s'\n", i, e, enc, vectors[i].enc);
			failed++;
		}
		if (base64_decode(vectors[i].enc, strlen(vectors[i].enc), dec, sizeof(dec), &n) != 0 ||
		    n != vectors[i].len || memcmp(dec, vectors[i].plain, n) != 0) {
			printf("decode row %zu '%s': got %zu octets, want %zu\n", i, vectors[i].enc, n,
			    vectors[i].len);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

static void
test_strict(void **state)
{
	static const struct {
		const char *in;
		const char *why;
	} bad[] = {
		{ "Zg=", "length not a multiple of 4" },
		{ "Zm9vY", "length not a multiple of 4" },
		{ "=", "a lone pad" },
		{ "====", "nothing but padding" },
		{ "Z===", "three pads" },
		{ "Zg=a", "data after the pad" },
		{ "Zg==Zg==", "padding in the middle" },
		{ "Z=g=", "pad inside the group" },
		{ "Zh==", "non-zero pad bits, two pads" },
		{ "Zm9=", "non-zero pad bits, one pad" },
		{ "Zm 9v", "a blank" },
		{ "Zm9v\r\n", "a line end" },
		{ "Zm9-", "base64url '-'" },
		{ "Zm9_", "base64url '_'" },
		{ "Zm\x80v", "an 8-bit octet" },
		{ "Zm9v*AAA", "a '*'" },
	};
	char out[16];
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = 99;
		int r;

		memset(out, 'x', sizeof(out));
		errno = 0;
		r = base64_decode(bad[i].in, strlen(bad[i].in), out, sizeof(out), &n);
		if (r != -1 || errno != EINVAL || n != 0 || out[0] != 'x') {
			printf("'%s' (%s): got %d errno %d, %zu octets, want -1 EINVAL, nothing written\n",
			    bad[i].in, bad[i].why, r, errno, n);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

/* the sizes: exact fits pass, one short fails with EMSGSIZE before a write */
static void
test_bounds(void **state)
{
	char out[16];
	size_t n = 0;

	(void)state;
	assert_int_equal(base64_decode("Zm9vYmFy", 8, out, 6, &n), 0);
	assert_int_equal(n, 6);
	memset(out, 'x', sizeof(out));
	errno = 0;
	assert_int_equal(base64_decode("Zm9vYmFy", 8, out, 5, &n), -1);
	assert_int_equal(errno, EMSGSIZE);
	assert_int_equal(out[0], 'x');
	assert_int_equal(base64_decode("Zm9vYg==", 8, out, 4, &n), 0);   /* pads count */
	assert_int_equal(n, 4);
	assert_int_equal(base64_decode("", 0, out, 0, &n), 0);
	assert_int_equal(n, 0);

	/* encode: BASE64_LEN characters and the NUL */
	assert_int_equal(BASE64_LEN(0), 0);
	assert_int_equal(BASE64_LEN(1), 4);
	assert_int_equal(BASE64_LEN(3), 4);
	assert_int_equal(BASE64_LEN(4), 8);
	assert_int_equal(base64_encode("foob", 4, out, 9), 8);
	errno = 0;
	assert_int_equal(base64_encode("foob", 4, out, 8), -1);
	assert_int_equal(errno, EMSGSIZE);
	assert_int_equal(base64_encode("", 0, out, 1), 0);
	assert_string_equal(out, "");
	assert_int_equal(base64_encode("", 0, out, 0), -1);
}

/* every octet string of up to 3 octets over a few values round-trips */
static void
test_round_trip(void **state)
{
	static const unsigned char vals[] = { 0x00, 0x01, 0x3e, 0x3f, 0x7f, 0x80, 0xfe, 0xff };
	unsigned char in[3], dec[3];
	char enc[8];

	(void)state;
	for (size_t len = 1; len <= 3; len++)
		for (size_t k = 0; k < 512; k++) {
			size_t n = 0;

			for (size_t j = 0; j < len; j++)
				in[j] = vals[(k >> (3 * j)) & 7];
			assert_int_equal(base64_encode(in, len, enc, sizeof(enc)), 4);
			assert_int_equal(base64_decode(enc, 4, dec, sizeof(dec), &n), 0);
			assert_int_equal(n, len);
			assert_memory_equal(dec, in, len);
		}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_strict),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
