/*
 * test_diskguard.c - table-driven tests for src/mail/diskguard.c
 *
 * Owns:     nothing (measures the file system of the current directory).
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

#include "mail/diskguard.h"

static void
test_level(void **state)
{
	static const struct { double pct; int want; } rows[] = {
		{ 100.0, 0 }, { 5.0, 0 }, { 4.99, 1 }, { 1.0, 1 }, { 0.99, 2 }, { 0.0, 2 },
	};
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int got = diskguard_level(rows[i].pct);
		if (got != rows[i].want) {
			print_error("%g %%: got %d, want %d\n", rows[i].pct, got, rows[i].want);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

static void
test_fits(void **state)
{
	/* 1,000,000 bytes in all, so the reserve is 10,000 */
	static const struct { int known; uint64_t free_bytes, size; int want; } rows[] = {
		{ 0, 0, 1000000, 1 },            /* nothing known: no refusal */
		{ 1, 100000, 90000, 1 },
		{ 1, 100000, 90001, 0 },
		{ 1, 100000, 0, 1 },
		{ 1, 10000, 1, 0 },
		{ 1, 9999, 0, 0 },               /* already inside the reserve */
		{ 1, 1000000, UINT64_MAX, 0 },
	};
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct diskguard_info d = { rows[i].known, 0, 1000000, rows[i].free_bytes, 10000, 0.0 };
		int got = diskguard_fits(&d, rows[i].size);
		if (got != rows[i].want) {
			print_error("row %zu: got %d, want %d\n", i, got, rows[i].want);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

static void
test_measure(void **state)
{
	struct diskguard *g = diskguard_new(".");
	const struct diskguard_info *d;
	int old = -1;

	(void)state;
	assert_non_null(g);
	assert_int_equal(diskguard_get(g)->known, 0);
	assert_int_equal(diskguard_measure(g, 0, &old), 0);
	assert_int_equal(old, 0);
	d = diskguard_get(g);
	assert_int_equal(d->known, 1);
	assert_true(d->free_bytes <= d->total_bytes);
	assert_true(d->reserve_bytes <= d->total_bytes / 100);
	assert_int_equal(d->level, diskguard_level(d->free_pct));
	assert_int_equal(diskguard_measure(g, 60000000, NULL), 0);   /* recent: no new look */
	assert_null(diskguard_free(g));
	errno = 0;
	assert_null(diskguard_new("/nonexistent/mtad-test"));
	assert_int_equal(errno, ENOENT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_level),
		cmocka_unit_test(test_fits),
		cmocka_unit_test(test_measure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
