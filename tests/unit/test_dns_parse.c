/*
 * test_dns_parse.c - table-driven tests of MX/A/AAAA rdata parsing, MX
 *                    ordering and address merging (src/dns/dns_parse.c)
 *
 * Owns:     nothing.
 * Lifetime: one run.
 * Errors:   each failing row prints "got X, want Y" and fails its test.
 * Context:  plain process; no resolver: rdata is written here in wire format.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "dns/dns_parse.h"

/* ---- wire-format names ------------------------------------------------ */

struct name_row {
	const char *name;
	const char *wire;        /* bytes */
	size_t      len;
	int         want_rc;
	const char *want;
};

#define W(s) s, sizeof(s) - 1

static const struct name_row name_rows[] = {
	{ "two labels", W("\x03mx1\x07" "example\x04test\x00"), 0, "mx1.example.test" },
	{ "root", W("\x00"), 0, "." },
	{ "hyphen underscore", W("\x05" "a-b_c\x00"), 0, "a-b_c" },
	{ "no terminator", W("\x03mx1"), -1, NULL },
	{ "label past end", W("\x05mx1\x00"), -1, NULL },
	{ "compression pointer", W("\x03mx1\xc0\x0c"), -1, NULL },
	{ "trailing garbage", W("\x03mx1\x00x"), -1, NULL },
	{ "space in label", W("\x03m x\x00"), -1, NULL },
	{ "dot in label", W("\x03m.x\x00"), -1, NULL },
	{ "NUL in label", W("\x03m\x00x\x00"), -1, NULL },
	{ "empty input", "", 0, -1, NULL },
	{ "label 64", W("\x40" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\x00"),
	  -1, NULL },
};

static void
test_name_from_wire(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(name_rows) / sizeof(name_rows[0]); i++) {
		const struct name_row *r = &name_rows[i];
		char out[256];
		int rc = dns_parse_name_from_wire((const unsigned char *)r->wire, r->len, out, sizeof(out));

		if (rc != r->want_rc || (rc == 0 && strcmp(out, r->want) != 0)) {
			printf("%s: got %d \"%s\", want %d \"%s\"\n", r->name, rc, rc == 0 ? out : "",
			    r->want_rc, r->want != NULL ? r->want : "");
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

/* A name longer than 253 characters (5 labels of 63) is refused. */
static void
test_name_too_long(void **state)
{
	unsigned char wire[5 * 64 + 1];
	char out[400];
	size_t o = 0;

	(void)state;
	for (int l = 0; l < 5; l++) {
		wire[o++] = 63;
		memset(wire + o, 'a', 63);
		o += 63;
	}
	wire[o++] = 0;
	assert_int_equal(dns_parse_name_from_wire(wire, o, out, sizeof(out)), -1);
	/* and the output buffer bounds the result too */
	assert_int_equal(dns_parse_name_from_wire((const unsigned char *)"\x03mx1\x00", 5, out, 3), -1);
	assert_int_equal(dns_parse_name_from_wire((const unsigned char *)"\x03mx1\x00", 5, out, 4), 0);
}

/* ---- MX ---------------------------------------------------------------- */

#define MX_ROWS_MAX 6

struct mx_row {
	const char *name;
	int         rcode;
	int         havedata;
	size_t      count;
	struct { const char *rdata; int len; } rr[MX_ROWS_MAX];
	enum dns_status want_st;
	size_t      want_n;
	const char *want_hosts;      /* "pref host,pref host" after sorting (no shuffle) */
};

static const struct mx_row mx_rows[] = {
	{ "two, sorted", 0, 1, 2, {
	    { W("\x00\x14\x03mx2\x07" "example\x04test\x00") },
	    { W("\x00\x0a\x03mx1\x07" "example\x04test\x00") } },
	  DNS_OK, 2, "10 mx1.example.test,20 mx2.example.test" },
	{ "null MX", 0, 1, 1, { { W("\x00\x00\x00") } }, DNS_NULLMX, 0, "" },
	{ "null MX with a real one", 0, 1, 2, { { W("\x00\x00\x00") },
	    { W("\x00\x05\x02mx\x00") } }, DNS_OK, 1, "5 mx" },
	{ "NXDOMAIN", 3, 0, 0, { { NULL, 0 } }, DNS_NXDOMAIN, 0, "" },
	{ "SERVFAIL", 2, 0, 0, { { NULL, 0 } }, DNS_TEMPFAIL, 0, "" },
	{ "REFUSED", 5, 0, 0, { { NULL, 0 } }, DNS_TEMPFAIL, 0, "" },
	{ "NODATA", 0, 0, 0, { { NULL, 0 } }, DNS_NODATA, 0, "" },
	{ "only malformed", 0, 1, 2, { { W("\x00\x0a\x03mx") }, { W("\x00") } },
	  DNS_TEMPFAIL, 0, "" },
	{ "malformed skipped", 0, 1, 2, { { W("\x00\x0a\x05mx\x00") },
	    { W("\x00\x1e\x02ok\x00") } }, DNS_OK, 1, "30 ok" },
	{ "preference 65535", 0, 1, 1, { { W("\xff\xff\x01z\x00") } }, DNS_OK, 1, "65535 z" },
};

static void
format_mx(char *buf, size_t size, const struct dns_mx *mx, size_t n)
{
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		int k = snprintf(buf + o, size - o, "%s%u %s", i ? "," : "", mx[i].pref, mx[i].host);

		if (k < 0 || (size_t)k >= size - o)
			return;
		o += (size_t)k;
	}
}

static void
test_mx_table(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(mx_rows) / sizeof(mx_rows[0]); i++) {
		const struct mx_row *r = &mx_rows[i];
		char *data[MX_ROWS_MAX + 1];
		int len[MX_ROWS_MAX + 1];
		struct dns_answer a;
		struct dns_mx mx[DNS_MAX_MX];
		size_t n = 99;
		enum dns_status st;
		char got[1024];

		for (size_t k = 0; k < r->count; k++) {
			data[k] = (char *)(uintptr_t)r->rr[k].rdata;
			len[k] = r->rr[k].len;
		}
		data[r->count] = NULL;
		a.rcode = r->rcode;
		a.havedata = r->havedata;
		a.data = data;
		a.len = len;
		a.count = r->count;
		st = dns_parse_mx(&a, mx, DNS_MAX_MX, &n);
		dns_parse_sort_mx(mx, n, NULL, NULL);
		format_mx(got, sizeof(got), mx, n);
		if (st != r->want_st || n != r->want_n || strcmp(got, r->want_hosts) != 0) {
			printf("%s: got %d n=%zu \"%s\", want %d n=%zu \"%s\"\n", r->name, st, n, got,
			    r->want_st, r->want_n, r->want_hosts);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

/* More records than DNS_MAX_MX: bounded, the first ones kept. */
static void
test_mx_bounded(void **state)
{
	enum { N = DNS_MAX_MX + 10 };
	static char rd[N][16];
	char *data[N + 1];
	int len[N + 1];
	struct dns_answer a = { 0, 1, data, len, N };
	struct dns_mx mx[DNS_MAX_MX];
	size_t n = 0;

	(void)state;
	for (int i = 0; i < N; i++) {
		rd[i][0] = 0;
		rd[i][1] = (char)i;
		rd[i][2] = 2;
		rd[i][3] = (char)('a' + i % 26);
		rd[i][4] = (char)('a' + i / 26);
		rd[i][5] = 0;
		data[i] = rd[i];
		len[i] = 6;
	}
	data[N] = NULL;
	assert_int_equal(dns_parse_mx(&a, mx, DNS_MAX_MX, &n), DNS_OK);
	assert_int_equal(n, DNS_MAX_MX);
	assert_string_equal(mx[0].host, "aa");
	assert_int_equal(mx[DNS_MAX_MX - 1].pref, DNS_MAX_MX - 1);
}

/* a deterministic "random" source for the shuffle */
static uint32_t
seq_rnd(void *arg)
{
	uint32_t *s = arg;

	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

/*
 * Sorting: preferences ascend whatever the keys; equal preferences come in
 * every order over many shuffles (random order, RFC 5321 §5.1).
 */
static void
test_mx_sort_shuffle(void **state)
{
	const char *hosts[] = { "a", "b", "c" };
	int first_seen[3] = { 0, 0, 0 };
	uint32_t seed = 1;

	(void)state;
	for (int round = 0; round < 300; round++) {
		struct dns_mx mx[5];

		mx[0].pref = 20;
		(void)snprintf(mx[0].host, sizeof(mx[0].host), "late");
		for (int i = 0; i < 3; i++) {
			mx[i + 1].pref = 10;
			(void)snprintf(mx[i + 1].host, sizeof(mx[i + 1].host), "%s", hosts[i]);
		}
		mx[4].pref = 5;
		(void)snprintf(mx[4].host, sizeof(mx[4].host), "first");
		dns_parse_sort_mx(mx, 5, seq_rnd, &seed);
		assert_string_equal(mx[0].host, "first");
		assert_string_equal(mx[4].host, "late");
		for (int i = 1; i < 4; i++)
			assert_int_equal(mx[i].pref, 10);
		for (int h = 0; h < 3; h++)
			if (strcmp(mx[1].host, hosts[h]) == 0)
				first_seen[h]++;
	}
	for (int h = 0; h < 3; h++)
		if (first_seen[h] < 50)
			fail_msg("host %s first %d times of 300, want about 100", hosts[h],
			    first_seen[h]);
}

/* ---- addresses ---------------------------------------------------------- */

static struct sockaddr_storage
mk(const char *text)
{
	struct sockaddr_storage ss;

	assert_int_equal(dns_parse_literal(text, &ss), 0);
	return ss;
}

static void
fmt_addr(const struct sockaddr_storage *ss, char *buf, size_t size)
{
	const void *p = ss->ss_family == AF_INET ?
	    (const void *)&((const struct sockaddr_in *)ss)->sin_addr :
	    (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;

	if (inet_ntop(ss->ss_family, p, buf, (socklen_t)size) == NULL)
		(void)snprintf(buf, size, "?");
}

static void
test_parse_addr(void **state)
{
	char a4[] = "\x7f\x00\x00\x02";
	char a6[] = "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01";
	char bad[] = "\x01\x02\x03";
	char *data4[] = { a4, bad, NULL };
	int len4[] = { 4, 3 };
	char *data6[] = { a6, NULL };
	int len6[] = { 16 };
	struct dns_answer ans4 = { 0, 1, data4, len4, 2 };
	struct dns_answer ans6 = { 0, 1, data6, len6, 1 };
	struct dns_answer wrongfam = { 0, 1, data4, len4, 1 };
	struct dns_answer nx = { 3, 0, NULL, NULL, 0 };
	struct sockaddr_storage out[4];
	char buf[64];
	size_t n;

	(void)state;
	assert_int_equal(dns_parse_addr(&ans4, AF_INET, out, 4, &n), DNS_OK);
	assert_int_equal(n, 1);
	fmt_addr(&out[0], buf, sizeof(buf));
	assert_string_equal(buf, "127.0.0.2");
	assert_int_equal(((struct sockaddr_in *)&out[0])->sin_port, 0);
	assert_int_equal(dns_parse_addr(&ans6, AF_INET6, out, 4, &n), DNS_OK);
	fmt_addr(&out[0], buf, sizeof(buf));
	assert_string_equal(buf, "2001:db8::1");
	/* a 4-byte item in an AAAA answer is malformed */
	assert_int_equal(dns_parse_addr(&wrongfam, AF_INET6, out, 4, &n), DNS_TEMPFAIL);
	assert_int_equal(dns_parse_addr(&nx, AF_INET, out, 4, &n), DNS_NXDOMAIN);
	assert_int_equal(n, 0);
}

struct merge_row {
	const char *name;
	enum dns_status st6;
	size_t      n6;
	enum dns_status st4;
	size_t      n4;
	size_t      max;
	enum dns_status want;
	const char *want_addrs;
};

static const struct merge_row merge_rows[] = {
	{ "both", DNS_OK, 2, DNS_OK, 2, 16, DNS_OK, "::1,::2,127.0.0.1,127.0.0.2" },
	{ "v4 only", DNS_NODATA, 0, DNS_OK, 1, 16, DNS_OK, "127.0.0.1" },
	{ "v6 only, A failed", DNS_OK, 1, DNS_TEMPFAIL, 0, 16, DNS_OK, "::1" },
	{ "both NXDOMAIN", DNS_NXDOMAIN, 0, DNS_NXDOMAIN, 0, 16, DNS_NXDOMAIN, "" },
	{ "one NXDOMAIN one NODATA", DNS_NXDOMAIN, 0, DNS_NODATA, 0, 16, DNS_NODATA, "" },
	{ "tempfail and nodata", DNS_TEMPFAIL, 0, DNS_NODATA, 0, 16, DNS_TEMPFAIL, "" },
	{ "tempfail and nxdomain", DNS_NXDOMAIN, 0, DNS_TEMPFAIL, 0, 16, DNS_TEMPFAIL, "" },
	{ "both nodata", DNS_NODATA, 0, DNS_NODATA, 0, 16, DNS_NODATA, "" },
	{ "bounded, split", DNS_OK, 3, DNS_OK, 3, 4, DNS_OK, "::1,::2,127.0.0.1,127.0.0.2" },
	{ "bounded, v4 short", DNS_OK, 4, DNS_OK, 1, 4, DNS_OK, "::1,::2,::3,127.0.0.1" },
	{ "bounded, v6 short", DNS_OK, 1, DNS_OK, 4, 4, DNS_OK, "::1,127.0.0.1,127.0.0.2,127.0.0.3" },
};

static void
test_merge_table(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(merge_rows) / sizeof(merge_rows[0]); i++) {
		const struct merge_row *r = &merge_rows[i];
		struct sockaddr_storage a6[4], a4[4], out[16];
		char got[512] = "", one[64];
		size_t n = 0, o = 0;
		enum dns_status st;

		for (size_t k = 0; k < 4; k++) {
			char t[32];

			(void)snprintf(t, sizeof(t), "::%zu", k + 1);
			a6[k] = mk(t);
			(void)snprintf(t, sizeof(t), "127.0.0.%zu", k + 1);
			a4[k] = mk(t);
		}
		st = dns_parse_merge_addr(r->st6, a6, r->n6, r->st4, a4, r->n4, out, r->max, &n);
		for (size_t k = 0; k < n; k++) {
			int w;

			fmt_addr(&out[k], one, sizeof(one));
			w = snprintf(got + o, sizeof(got) - o, "%s%s", k ? "," : "", one);
			if (w > 0 && (size_t)w < sizeof(got) - o)
				o += (size_t)w;
		}
		if (st != r->want || strcmp(got, r->want_addrs) != 0) {
			printf("%s: got %d \"%s\", want %d \"%s\"\n", r->name, st, got, r->want,
			    r->want_addrs);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

static void
test_literal(void **state)
{
	static const struct {
		const char *in;
		int         rc;
		int         family;
	} rows[] = {
		{ "127.0.0.1", 0, AF_INET },
		{ "::1", 0, AF_INET6 },
		{ "[2001:db8::1]", 0, AF_INET6 },
		{ "[127.0.0.1]", 0, AF_INET },
		{ "mx.example.test", -1, 0 },
		{ "[]", -1, 0 },
		{ "", -1, 0 },
		{ "1.2.3", -1, 0 },
		{ "[::1", -1, 0 },
	};
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct sockaddr_storage ss;
		int rc = dns_parse_literal(rows[i].in, &ss);

		if (rc != rows[i].rc || (rc == 0 && ss.ss_family != rows[i].family)) {
			printf("literal \"%s\": got %d family %d, want %d family %d\n", rows[i].in, rc,
			    rc == 0 ? ss.ss_family : 0, rows[i].rc, rows[i].family);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_from_wire),
		cmocka_unit_test(test_name_too_long),
		cmocka_unit_test(test_mx_table),
		cmocka_unit_test(test_mx_bounded),
		cmocka_unit_test(test_mx_sort_shuffle),
		cmocka_unit_test(test_parse_addr),
		cmocka_unit_test(test_merge_table),
		cmocka_unit_test(test_literal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
