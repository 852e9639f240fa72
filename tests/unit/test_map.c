/*
 * test_map.c - src/lib/map.c's map_free_all(), and smtpd's per-client
 *              table on it (smtpd_ip_acquire/_release in src/smtpd/smtpd.c):
 *              counts as values, an entry dropped when its count ends
 *
 * Owns:     the maps and values allocated per test.
 * Lifetime: one run.
 * Errors:   each failing row prints "got X, want Y" and fails its test.
 * Context:  single thread.
 *
 * The plain put/get/del/sweep cases are in test_containers.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/map.h"
#include "mail/config.h"
#include "smtpd/smtpd_int.h"

/* smtpd_client_connection_limit 2: one row per session coming or going */
static void
test_smtpd_counts(void **state)
{
	static const struct {
		char op;                     /* '+' acquire, '-' release */
		const char *addr;
		int want;                    /* acquire's result */
		size_t want_count;           /* entries after the step */
	} rows[] = {
		{ '+', "192.0.2.1", 0, 1 },
		{ '+', "192.0.2.1", 0, 1 },
		{ '+', "192.0.2.1", -1, 1 },     /* limit 2 */
		{ '+', "2001:db8::1", 0, 2 },
		{ '+', "unknown", 0, 3 },
		{ '-', "192.0.2.1", 0, 3 },
		{ '+', "192.0.2.1", 0, 3 },      /* room again */
		{ '-', "192.0.2.1", 0, 3 },
		{ '-', "192.0.2.1", 0, 2 },      /* last session: the entry goes */
		{ '-', "192.0.2.1", 0, 2 },      /* not there: nothing happens */
		{ '-', "2001:db8::1", 0, 1 },
	};
	struct config cfg = { .smtpd_client_connection_limit = 2 };
	struct smtpd srv = { .cfg = &cfg };
	int failed = 0;

	(void)state;
	assert_non_null(srv.ipt = map_new());
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int got = 0;

		if (rows[i].op == '+')
			got = smtpd_ip_acquire(&srv, rows[i].addr);
		else
			smtpd_ip_release(&srv, rows[i].addr);
		if (got != rows[i].want || map_count(srv.ipt) != rows[i].want_count) {
			printf("row %zu %c%s: got %d with %zu entries, want %d with %zu\n", i,
			    rows[i].op, rows[i].addr, got, map_count(srv.ipt), rows[i].want,
			    rows[i].want_count);
			failed++;
		}
	}
	/* "unknown" is still counted: ASan reports a leak unless map_free_all frees it */
	assert_null(srv.ipt = map_free_all(srv.ipt, free));
	assert_int_equal(failed, 0);
}

static int freed;

static void
count_free(void *val)
{
	freed++;
	free(val);
}

/* map_free_all calls val_free once per value, after growth and deletions, and takes NULL */
static void
test_free_all(void **state)
{
	struct map *m = map_new();
	char key[32];

	(void)state;
	assert_non_null(m);
	for (int i = 0; i < 300; i++) {         /* past 64 buckets: the table grows twice */
		snprintf(key, sizeof(key), "10.0.%d.%d", i / 256, i % 256);
		assert_int_equal(map_put(m, key, malloc(1)), 0);
	}
	free(map_del(m, "10.0.0.7"));
	freed = 0;
	assert_null(map_free_all(m, count_free));
	assert_int_equal(freed, 299);
	assert_null(map_free_all(NULL, count_free));
	assert_int_equal(freed, 299);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_smtpd_counts),
		cmocka_unit_test(test_free_all),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
