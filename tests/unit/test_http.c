/*
 * test_http.c - unit tests for the pure parts of src/http/ and metrics_push.c:
 * the queue filter, JSON safety, basic auth, the cross-site check, the
 * failure delay, the history rings, the Prometheus and /api/stats formatters,
 * the embedded assets and the StatsD line format
 *
 * Owns:     the fake queue messages it builds.
 * Lifetime: one run.
 * Errors:   each failing row prints "got X, want Y" and fails its test.
 * Context:  single thread; no event loop, no sockets except one unconnected
 *           UDP socket for the StatsD formatter (127.0.0.1, nothing sent).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <openssl/evp.h>

#include "http/http_int.h"
#include "lib/util.h"
#include "metrics/metrics.h"
#include "metrics/metrics_push.h"
#include "queue/queue.h"

/* --- fake messages ------------------------------------------------------- */

#define NOW_US (1700000000ULL * 1000000)

struct fake {
	struct queue_msg m;
	struct queue_rcpt r[3];
};

static void
fake_init(struct fake *f, const char *id, const char *sender, uint64_t age_s,
    int held, const char *r0, unsigned att0, const char *r1, unsigned att1)
{
	memset(f, 0, sizeof(*f));
	util_strlcpy(f->m.id, id, sizeof(f->m.id));
	f->m.sender = (char *)sender;
	f->m.held = held;
	f->m.arrival_us = NOW_US - age_s * 1000000;
	f->m.rcpt = f->r;
	f->r[0].addr = (char *)r0;
	f->r[0].attempts = att0;
	f->m.nrcpt = 1;
	if (r1 != NULL) {
		f->r[1].addr = (char *)r1;
		f->r[1].attempts = att1;
		f->m.nrcpt = 2;
	}
}

/* --- the filter ------------------------------------------------------------ */

static void
test_filter(void **state)
{
	struct fake a, b, c;
	static const struct {
		const char *params;      /* "k=v&k=v" */
		int want_a, want_b, want_c;
	} rows[] = {
		{ "", 1, 1, 1 },
		{ "state=held", 0, 0, 1 },
		{ "state=deferred", 0, 1, 0 },
		{ "state=active", 1, 0, 0 },
		{ "sender=ALICE", 1, 0, 0 },
		{ "sender=example", 1, 1, 0 },
		{ "rcpt=carol@", 0, 1, 0 },
		{ "domain=corp.example", 1, 0, 0 },
		{ "domain=example.org", 0, 1, 1 },      /* sub.example.org is a subdomain */
		{ "domain=@example.org", 0, 1, 1 },
		{ "domain=ample.org", 0, 0, 0 },        /* not a label boundary */
		{ "q=0000000000000B0B", 0, 1, 0 },
		{ "q=dave", 0, 0, 1 },
		{ "id=0000000000000a0a", 1, 0, 0 },
		{ "min_age=1h", 0, 1, 1 },
		{ "max_age=10m", 1, 0, 0 },
		{ "min_age=90&max_age=2d", 0, 1, 0 },
		{ "state=deferred&sender=alice", 0, 0, 0 },
		{ "rcpt=bob&domain=corp.example", 1, 0, 0 },
		{ "rcpt=bob&domain=example.org", 0, 0, 0 },  /* both on the same recipient */
	};

	(void)state;
	fake_init(&a, "0000000000000A0A", "alice@example.com", 30, 0,
	    "bob@corp.example", 0, NULL, 0);
	fake_init(&b, "0000000000000B0B", "bounce@example.net", 7200, 0,
	    "carol@example.org", 2, "x@y.test", 0);
	fake_init(&c, "0000000000000C0C", "", 86400 * 3, 1, "dave@sub.example.org", 1, NULL, 0);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct http_filter f;
		char buf[256], err[128], *tok, *amp;
		int got[3];

		http_filter_init(&f, NOW_US);
		util_strlcpy(buf, rows[i].params, sizeof(buf));
		for (tok = buf; *tok != '\0'; tok = amp != NULL ? amp + 1 : tok + strlen(tok)) {
			char *eq;
			if ((amp = strchr(tok, '&')) != NULL)
				*amp = '\0';
			eq = strchr(tok, '=');
			assert_non_null(eq);
			*eq = '\0';
			if (http_filter_set(&f, tok, eq + 1, err, sizeof(err)) != 0)
				fail_msg("row %zu: %s rejected: %s", i, tok, err);
		}
		got[0] = http_filter_match(&f, &a.m);
		got[1] = http_filter_match(&f, &b.m);
		got[2] = http_filter_match(&f, &c.m);
		if (got[0] != rows[i].want_a || got[1] != rows[i].want_b || got[2] != rows[i].want_c)
			fail_msg("filter %s: got %d%d%d, want %d%d%d", rows[i].params, got[0],
			    got[1], got[2], rows[i].want_a, rows[i].want_b, rows[i].want_c);
		if (rows[i].params[0] != '\0' && !f.any)
			fail_msg("filter %s: got any=0, want 1", rows[i].params);
	}
}

static void
test_filter_bad(void **state)
{
	static const struct {
		const char *key, *value;
		int want;
	} rows[] = {
		{ "state", "bogus", -1 },
		{ "min_age", "-5", -1 },
		{ "min_age", "5x", -1 },
		{ "max_age", "99999999999d", -1 },
		{ "page", "2", 1 },               /* not a filter key */
		{ "sender", "", 0 },
		{ "state", "any", 0 },
	};
	char err[128];

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct http_filter f;
		int got;
		http_filter_init(&f, NOW_US);
		got = http_filter_set(&f, rows[i].key, rows[i].value, err, sizeof(err));
		if (got != rows[i].want)
			fail_msg("%s=%s: got %d, want %d", rows[i].key, rows[i].value, got, rows[i].want);
	}
}

/* A view that answers later owns its filter's strings; an id set answers look-ups. */
static void
test_filter_own_idset(void **state)
{
	static const struct {
		const char *key, *value;
	} rows[] = {
		{ "q", "needle" }, { "sender", "alice@" }, { "rcpt", "bob" },
		{ "domain", "@example.org" }, { "id", "0123456789ABCDEF" },
	};
	static const char *const ids[] = {
		"00000000000000FF", "0000000000000001", "661603ED65EAE000", "0000000000000100",
	};
	static const struct {
		const char *id;
		int want;
	} look[] = {
		{ "0000000000000001", 1 }, { "00000000000000FF", 1 }, { "0000000000000100", 1 },
		{ "661603ED65EAE000", 1 }, { "0000000000000002", 0 }, { "FFFFFFFFFFFFFFFF", 0 },
	};
	struct http_filter f, g;
	struct http_idset set;
	char buf[5][64], err[128], *store = NULL;

	(void)state;
	http_filter_init(&f, NOW_US);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		(void)util_strlcpy(buf[i], rows[i].value, sizeof(buf[i]));
		assert_int_equal(http_filter_set(&f, rows[i].key, buf[i], err, sizeof(err)), 0);
	}
	g = f;
	assert_int_equal(http_filter_own(&g, &store), 0);
	assert_non_null(store);
	memset(buf, 'x', sizeof(buf));              /* the request's strings are gone */
	assert_string_equal(g.q, "needle");
	assert_string_equal(g.sender, "alice@");
	assert_string_equal(g.rcpt, "bob");
	assert_string_equal(g.domain, "example.org");
	assert_string_equal(g.id, "0123456789ABCDEF");
	free(store);
	http_filter_init(&f, NOW_US);                /* no strings: nothing to copy */
	assert_int_equal(http_filter_own(&f, &store), 0);
	assert_null(store);

	memset(&set, 0, sizeof(set));
	assert_int_equal(http_idset_has(&set, ids[0]), 0);
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
		assert_int_equal(http_idset_add(&set, ids[i]), 0);
	http_idset_sort(&set);
	for (size_t i = 0; i < sizeof(look) / sizeof(look[0]); i++)
		if (http_idset_has(&set, look[i].id) != look[i].want)
			fail_msg("%s: got %d, want %d", look[i].id, !look[i].want, look[i].want);
	http_idset_free(&set);
	assert_int_equal(set.n, 0);
}

static void
test_parse_age(void **state)
{
	static const struct {
		const char *in;
		int64_t want;
	} rows[] = {
		{ "0", 0 }, { "90", 90 }, { "90s", 90 }, { "15m", 900 }, { "2h", 7200 },
		{ "3d", 259200 }, { "", -1 }, { "m", -1 }, { "1w", -1 }, { "-1", -1 },
		{ " 5", -1 }, { "5 ", -1 }, { "4000d", -1 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int64_t got = http_filter_parse_age(rows[i].in);
		if (got != rows[i].want)
			fail_msg("age \"%s\": got %lld, want %lld", rows[i].in, (long long)got,
			    (long long)rows[i].want);
	}
}

static void
test_msg_state(void **state)
{
	struct fake f;

	(void)state;
	fake_init(&f, "0000000000000001", "a@b", 1, 0, "x@y", 0, "z@y", 0);
	assert_int_equal(queue_view_state(&f.m), QUEUE_VIEW_ACTIVE);
	f.r[1].attempts = 1;
	assert_int_equal(queue_view_state(&f.m), QUEUE_VIEW_DEFERRED);
	f.r[1].state = QUEUE_RCPT_DELIVERED;        /* tried, but done: not deferred */
	assert_int_equal(queue_view_state(&f.m), QUEUE_VIEW_ACTIVE);
	f.m.held = 1;
	assert_int_equal(queue_view_state(&f.m), QUEUE_VIEW_HELD);
	assert_string_equal(queue_view_state_name(QUEUE_VIEW_HELD), "held");
}

/* --- JSON ------------------------------------------------------------------ */

static void
test_json_utf8(void **state)
{
	static const struct {
		const char *in;
		size_t len;
		const char *want;
	} rows[] = {
		{ "plain", 5, "plain" },
		{ "caf\xc3\xa9", 5, "caf\xc3\xa9" },
		{ "\xff", 1, "\xef\xbf\xbd" },
		{ "a\xc3", 2, "a\xef\xbf\xbd" },                  /* truncated sequence */
		{ "\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd" },    /* overlong '/' */
		{ "\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" }, /* surrogate */
		{ "\xf4\x90\x80\x80", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		{ "\xf0\x9f\x93\xa7", 4, "\xf0\x9f\x93\xa7" },    /* U+1F4E7 */
		{ "a\0b", 3, "a\xef\xbf\xbd" "b" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		json_t *j = jsonout_strn(rows[i].in, rows[i].len);
		assert_non_null(j);
		if (strcmp(json_string_value(j), rows[i].want) != 0)
			fail_msg("row %zu: got \"%s\", want \"%s\"", i, json_string_value(j), rows[i].want);
		json_decref(j);
	}
	assert_true(json_is_null(jsonout_str(NULL)));
}

static void
test_json_dump_escapes(void **state)
{
	struct evbuffer *b = evbuffer_new();
	json_t *j = json_pack("{s:s}", "from", "\"<script>alert(1)</script>\" & co");
	char out[256];
	size_t n;

	(void)state;
	assert_int_equal(http_json_dump(j, b), 0);
	n = evbuffer_remove(b, out, sizeof(out) - 1);
	out[n] = '\0';
	assert_string_equal(out, "{\"from\":\"\\\"\\u003cscript\\u003ealert(1)\\u003c/script"
	    "\\u003e\\\" \\u0026 co\"}\n");
	assert_null(strchr(out, '<'));
	/* And it is still the same JSON. */
	json_t *back = json_loads(out, 0, NULL);
	assert_non_null(back);
	assert_string_equal(json_string_value(json_object_get(back, "from")),
	    "\"<script>alert(1)</script>\" & co");
	json_decref(back);
	json_decref(j);
	evbuffer_free(b);
}

/* --- auth ------------------------------------------------------------------- */

static void
b64(const char *in, char *out, size_t size)
{
	assert_true(size >= (strlen(in) + 2) / 3 * 4 + 1);
	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)strlen(in));
}

static void
test_auth_check(void **state)
{
	unsigned char want[HTTP_DIGEST_LEN];
	char enc[256], hdr[300];
	static const struct {
		const char *scheme;   /* NULL: raw header below */
		const char *cred;
		enum http_auth_result want;
	} rows[] = {
		{ "Basic ", "admin:s3cret pass", HTTP_AUTH_OK },
		{ "basic ", "admin:s3cret pass", HTTP_AUTH_OK },
		{ "Basic   ", "admin:s3cret pass", HTTP_AUTH_OK },
		{ "Basic ", "admin:s3cret pas", HTTP_AUTH_BAD },
		{ "Basic ", "admin:s3cret passX", HTTP_AUTH_BAD },
		{ "Basic ", "Admin:s3cret pass", HTTP_AUTH_BAD },
		{ "Basic ", "admin:", HTTP_AUTH_BAD },
		{ "Basic ", ":s3cret pass", HTTP_AUTH_BAD },
		{ "Basic ", "adminonly", HTTP_AUTH_MISSING },     /* no colon */
		{ "Bearer ", "admin:s3cret pass", HTTP_AUTH_MISSING },
		{ "Basic", "admin:s3cret pass", HTTP_AUTH_MISSING },  /* no space */
	};
	static const struct {
		const char *hdr;
		enum http_auth_result want;
	} raw[] = {
		{ "Basic", HTTP_AUTH_MISSING },
		{ "Basic ", HTTP_AUTH_MISSING },
		{ "Basic !!!!", HTTP_AUTH_MISSING },
		{ "Basic YWJj", HTTP_AUTH_MISSING },              /* "abc": no colon */
		{ "Basic YTpi", HTTP_AUTH_BAD },                  /* "a:b" */
		{ "Basic YTpiYw=", HTTP_AUTH_MISSING },           /* bad length */
		{ "Basic YT=pY", HTTP_AUTH_MISSING },             /* padding inside */
		{ "", HTTP_AUTH_MISSING },
	};

	(void)state;
	assert_int_equal(http_auth_digest("admin", "s3cret pass", want), 0);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		enum http_auth_result got;
		b64(rows[i].cred, enc, sizeof(enc));
		assert_true(util_bsnprintf(hdr, sizeof(hdr), "%s%s", rows[i].scheme, enc) >= 0);
		got = http_auth_check(hdr, want);
		if (got != rows[i].want)
			fail_msg("\"%s\" (%s): got %d, want %d", hdr, rows[i].cred, got, rows[i].want);
	}
	for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
		enum http_auth_result got = http_auth_check(raw[i].hdr, want);
		if (got != raw[i].want)
			fail_msg("\"%s\": got %d, want %d", raw[i].hdr, got, raw[i].want);
	}
	assert_int_equal(http_auth_check(NULL, want), HTTP_AUTH_MISSING);
	/* A header as long as the limit is refused without overflowing. */
	{
		char big[HTTP_MAX_AUTH_LEN * 2];
		memset(big, 'A', sizeof(big));
		memcpy(big, "Basic ", 6);
		big[sizeof(big) - 1] = '\0';
		assert_int_equal(http_auth_check(big, want), HTTP_AUTH_MISSING);
	}
}

static void
test_csrf(void **state)
{
	static const struct http_names names = { "mx.example", "ui.example.net" };
	static const struct {
		const char *xrw, *origin, *referer, *host;
		int https, want;
	} rows[] = {
		{ "mtad", NULL, NULL, "127.0.0.1:8080", 0, 0 },
		{ "mtad", "http://127.0.0.1:8080", NULL, "127.0.0.1:8080", 0, 0 },
		{ "mtad", NULL, "http://127.0.0.1:8080/", "127.0.0.1:8080", 0, 0 },
		{ "mtad", NULL, "http://127.0.0.1:8080/?q=x", "127.0.0.1:8080", 0, 0 },
		{ "mtad", "https://mx.example", NULL, "mx.example", 1, 0 },
		{ "mtad", "https://mx.example:443", NULL, "mx.example", 1, 0 },
		{ "mtad", "http://ui.example.net:8080", NULL, "127.0.0.1:8080", 0, 0 },
		{ "mtad", "http://localhost:8080", NULL, "[::1]:8080", 0, 0 },
		{ "mtad", "http://[::1]:8080", NULL, "localhost:8080", 0, 0 },
		{ NULL, NULL, NULL, "127.0.0.1:8080", 0, -1 },
		{ "", NULL, NULL, "127.0.0.1:8080", 0, -1 },
		{ "mtad", "http://evil.example", NULL, "127.0.0.1:8080", 0, -1 },
		/* DNS rebinding: Host and Origin both name the attacker's host */
		{ "mtad", "http://evil.example:8080", NULL, "evil.example:8080", 0, -1 },
		{ "mtad", "null", NULL, "127.0.0.1:8080", 0, -1 },
		{ "mtad", "http://127.0.0.1:8080.evil.example", NULL, "127.0.0.1:8080", 0, -1 },
		{ "mtad", "http://127.0.0.1:9999", NULL, "127.0.0.1:8080", 0, -1 },
		{ "mtad", "https://127.0.0.1:8080", NULL, "127.0.0.1:8080", 0, -1 },  /* scheme */
		{ "mtad", NULL, "http://evil.example/page", "127.0.0.1:8080", 0, -1 },
		{ "mtad", NULL, "http://127.0.0.1:8080@evil.example/", "127.0.0.1:8080", 0, -1 },
		{ "mtad", "http://127.0.0.1:8080", "http://evil.example/", "127.0.0.1:8080", 0, 0 },
		{ "mtad", NULL, NULL, NULL, 0, -1 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const char *why = NULL;
		int got = http_auth_csrf_check(rows[i].xrw, rows[i].origin, rows[i].referer,
		    rows[i].host, &names, rows[i].https, &why);
		if (got != rows[i].want)
			fail_msg("row %zu (origin %s, referer %s): got %d, want %d", i,
			    rows[i].origin ? rows[i].origin : "-",
			    rows[i].referer ? rows[i].referer : "-", got, rows[i].want);
		if (got < 0 && why == NULL)
			fail_msg("row %zu: refused without a reason", i);
	}
}

static void
test_host_allowed(void **state)
{
	static const struct http_names names = { "mx.example", "ui.example.net, other.example.org" };
	static const struct {
		const char *host;
		int want;
	} rows[] = {
		{ NULL, 1 },                            /* HTTP/1.0 */
		{ "mx.example", 1 }, { "MX.Example:8080", 1 }, { "mx.example.", 1 },
		{ "localhost", 1 }, { "localhost:80", 1 },
		{ "127.0.0.1", 1 }, { "192.0.2.7:8080", 1 }, { "[::1]", 1 }, { "[2001:db8::1]:443", 1 },
		{ "ui.example.net", 1 }, { "other.example.org:1", 1 },
		{ "", 0 }, { "evil.example", 0 }, { "evil.example:8080", 0 },
		{ "mx.example.evil.example", 0 }, { "xmx.example", 0 }, { "example.net", 0 },
		{ "ui.example", 0 }, { "127.0.0.1.evil", 0 }, { "999.1.1.1", 0 },
		{ "[::1", 0 }, { "[::1]x", 0 }, { "[evil.example]", 0 }, { "::1", 0 },
		{ "mx.example:", 0 }, { "mx.example:80a", 0 }, { "mx.example:123456", 0 },
		{ "localhost.", 1 }, { "user@mx.example", 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int got = http_auth_host_allowed(&names, rows[i].host);
		if (got != rows[i].want)
			fail_msg("Host %s: got %d, want %d", rows[i].host ? rows[i].host : "(none)",
			    got, rows[i].want);
	}
}

/* The lockout in virtual time (SPEC §11.1): 10 failures in 10 minutes lock out for 10 minutes. */
static void
test_auth_lockout(void **state)
{
	struct http_auth_table *t = calloc(1, sizeof(*t));
	const uint64_t S = 1000000, MIN = 60 * S;
	uint64_t now = 1000 * S, last;
	unsigned nlog;

	(void)state;
	assert_non_null(t);
	/* Nine failures: not locked. */
	for (int i = 0; i < 9; i++) {
		assert_int_equal(http_auth_fail(t, "192.0.2.1", now += S, &nlog), 0);
		assert_int_equal(http_auth_locked(t, "192.0.2.1", now), 0);
	}
	/* The tenth within ten minutes locks the address, not its neighbours. */
	assert_int_equal(http_auth_fail(t, "192.0.2.1", now += S, &nlog), 1);
	last = now;
	assert_int_equal(http_auth_locked(t, "192.0.2.1", now), 600);
	assert_int_equal(http_auth_locked(t, "192.0.2.2", now), 0);
	/* Retry-After counts down; the lockout ends 10 minutes after the last failure. */
	assert_int_equal(http_auth_locked(t, "192.0.2.1", last + 5 * MIN), 300);
	assert_int_equal(http_auth_locked(t, "192.0.2.1", last + 10 * MIN - S / 2), 1);
	assert_int_equal(http_auth_locked(t, "192.0.2.1", last + 10 * MIN), 0);
	/* Afterwards it starts from zero: one failure does not lock again. */
	now = last + 10 * MIN;
	assert_int_equal(http_auth_fail(t, "192.0.2.1", now, &nlog), 0);
	assert_int_equal(http_auth_locked(t, "192.0.2.1", now + 1), 0);

	/* Ten failures spread over more than ten minutes never lock. */
	now = 5000 * S;
	for (int i = 0; i < 30; i++) {
		assert_int_equal(http_auth_fail(t, "198.51.100.9", now, &nlog), 0);
		now += 67 * S;                          /* 10 failures span 603 s */
	}
	/* ...but ten within ten minutes do: after a quiet while, the tenth locks. */
	now += 11 * MIN;
	for (int i = 0; i < 10; i++)
		assert_int_equal(http_auth_fail(t, "198.51.100.9", now += S, &nlog), i < 9 ? 0 : 1);
	/* A sliding window: an old failure and nine recent ones lock too. */
	now += 20 * MIN;
	assert_int_equal(http_auth_fail(t, "198.51.100.10", now, &nlog), 0);
	now += 9 * MIN;
	for (int i = 0; i < 9; i++)
		assert_int_equal(http_auth_fail(t, "198.51.100.10", now += S, &nlog), i < 8 ? 0 : 1);
	free(t);
}

/* Log lines: at most one a second per address, carrying the count of failures. */
static void
test_auth_log_rate(void **state)
{
	struct http_auth_table *t = calloc(1, sizeof(*t));
	const uint64_t S = 1000000;
	uint64_t now = 77 * S;
	unsigned nlog, logged = 0, lines = 0;

	(void)state;
	assert_non_null(t);
	assert_int_equal(http_auth_fail(t, "2001:db8::1", now, &nlog), 0);
	assert_int_equal(nlog, 1);                      /* the first at once */
	logged += nlog;
	lines++;
	for (int i = 0; i < 5; i++) {                   /* five more in the same second */
		http_auth_fail(t, "2001:db8::1", now += S / 10, &nlog);
		assert_int_equal(nlog, 0);
	}
	http_auth_fail(t, "2001:db8::1", now += S, &nlog);
	assert_int_equal(nlog, 6);                      /* the five and this one */
	logged += nlog;
	lines++;
	assert_int_equal(logged, 7);
	assert_int_equal(lines, 2);
	/* Another address has its own second. */
	http_auth_fail(t, "2001:db8::2", now, &nlog);
	assert_int_equal(nlog, 1);
	free(t);
}

/* The table is bounded; a flood of new addresses does not evict a locked-out one. */
static void
test_auth_table_bounded(void **state)
{
	struct http_auth_table *t = calloc(1, sizeof(*t));
	const uint64_t S = 1000000;
	uint64_t now = 10 * S;
	unsigned nlog;

	(void)state;
	assert_non_null(t);
	for (int i = 0; i < 10; i++)
		http_auth_fail(t, "203.0.113.5", now += 1000, &nlog);
	assert_true(http_auth_locked(t, "203.0.113.5", now) > 0);
	for (int i = 0; i < HTTP_AUTH_SETS * HTTP_AUTH_WAYS * 4; i++) {
		char a[32];
		assert_true(util_bsnprintf(a, sizeof(a), "10.%d.%d.%d", i / 65536, (i / 256) % 256,
		    i % 256) >= 0);
		assert_int_equal(http_auth_fail(t, a, now += 1000, &nlog), 0);
	}
	assert_true(http_auth_locked(t, "203.0.113.5", now) > 0);
	free(t);
}

/* --- history -------------------------------------------------------------------- */

static void
test_history(void **state)
{
	struct http_history hi;
	uint64_t cum[HTTP_H_COUNTERS] = { 0 }, g[HTTP_H_FIELDS - HTTP_H_COUNTERS] = { 0 };
	double rates[HTTP_H_COUNTERS];
	const struct http_sample *s;

	(void)state;
	assert_int_equal(http_history_init(&hi), 0);
	/* Counters start at 100: the first tick counts nothing (no base yet). */
	cum[HTTP_H_ACCEPTED] = 100;
	http_history_tick(&hi, 1000, cum, g);
	assert_int_equal(hi.fine.len, 1);
	assert_int_equal(http_history_ring_get(&hi.fine, 0)->v[HTTP_H_ACCEPTED], 0);
	/* Just started, one message: 1 in the last minute, not extrapolated to 6/min. */
	cum[HTTP_H_ACCEPTED] = 101;
	http_history_tick(&hi, 1001, cum, g);
	http_history_rates(&hi, 1001, rates);
	if (rates[HTTP_H_ACCEPTED] != 1.0)
		fail_msg("accepted rate after start: got %f, want 1/min", rates[HTTP_H_ACCEPTED]);
	http_history_free(&hi);
	assert_int_equal(http_history_init(&hi), 0);
	cum[HTTP_H_ACCEPTED] = 100;
	http_history_tick(&hi, 1000, cum, g);
	/* Then 6 per tick, 5 sessions, queue 42. */
	for (int i = 1; i <= 11; i++) {
		cum[HTTP_H_ACCEPTED] += 6;
		cum[HTTP_H_REJECTED] += 1;
		g[HTTP_H_SESSIONS - HTTP_H_COUNTERS] = 5;
		g[HTTP_H_QUEUE - HTTP_H_COUNTERS] = 42;
		http_history_tick(&hi, 1000 + 10 * (uint64_t)i, cum, g);
	}
	assert_int_equal(hi.fine.len, 12);
	s = http_history_ring_get(&hi.fine, 11);
	assert_int_equal(s->t, 1110);
	assert_int_equal(s->v[HTTP_H_ACCEPTED], 6);
	assert_int_equal(s->v[HTTP_H_SESSIONS], 5);
	/* Two coarse samples: ticks 1-6 (0+5*6=30 accepted) and 7-12 (36). */
	assert_int_equal(hi.coarse.len, 2);
	if (http_history_ring_get(&hi.coarse, 0)->v[HTTP_H_ACCEPTED] != 30 ||
	    http_history_ring_get(&hi.coarse, 1)->v[HTTP_H_ACCEPTED] != 36)
		fail_msg("coarse accepted: got %llu,%llu, want 30,36",
		    (unsigned long long)http_history_ring_get(&hi.coarse, 0)->v[HTTP_H_ACCEPTED],
		    (unsigned long long)http_history_ring_get(&hi.coarse, 1)->v[HTTP_H_ACCEPTED]);
	assert_int_equal(http_history_ring_get(&hi.coarse, 1)->v[HTTP_H_QUEUE], 42);
	http_history_rates(&hi, 1110, rates);
	if (rates[HTTP_H_ACCEPTED] < 35.99 || rates[HTTP_H_ACCEPTED] > 36.01)
		fail_msg("accepted rate: got %f, want 36/min", rates[HTTP_H_ACCEPTED]);
	/* Samples older than a minute (restored from before a restart) are not a rate. */
	http_history_rates(&hi, 1110 + 3600, rates);
	if (rates[HTTP_H_ACCEPTED] != 0)
		fail_msg("accepted rate an hour later: got %f, want 0", rates[HTTP_H_ACCEPTED]);
	/* Wrap the fine ring: it keeps the newest HTTP_FINE_LEN. */
	for (int i = 0; i < HTTP_FINE_LEN + 50; i++)
		http_history_tick(&hi, 5000 + (uint64_t)i, cum, g);
	assert_int_equal(hi.fine.len, HTTP_FINE_LEN);
	assert_int_equal(http_history_ring_get(&hi.fine, 0)->t, 5000 + 50);
	assert_int_equal(http_history_ring_get(&hi.fine, HTTP_FINE_LEN - 1)->t, 5000 + HTTP_FINE_LEN + 49);
	/* A counter that goes backwards (never should) gives 0, not a huge number. */
	cum[HTTP_H_ACCEPTED] = 1;
	http_history_tick(&hi, 9999, cum, g);
	assert_int_equal(http_history_ring_get(&hi.fine, HTTP_FINE_LEN - 1)->v[HTTP_H_ACCEPTED], 0);
	/* The JSON has a column per field, each as long as "t". */
	json_t *j = http_history_json(&hi.fine);
	assert_non_null(j);
	assert_int_equal(json_array_size(json_object_get(j, "t")), HTTP_FINE_LEN);
	for (int k = 0; k < HTTP_H_FIELDS; k++)
		assert_int_equal(json_array_size(json_object_get(j, http_history_names[k])), HTTP_FINE_LEN);
	assert_int_equal(json_integer_value(json_object_get(j, "interval")), 10);
	json_decref(j);
	/* 24 hours of coarse samples fit. */
	assert_true(HTTP_COARSE_LEN * HTTP_COARSE_SECS >= 24 * 3600);
	http_history_free(&hi);
}

/* --- <data_dir>/stats (http_persist.c) -------------------------------------------- */

/* persist_fill - a history of n fine ticks from t0 and totals that look used */
static void
persist_fill(struct metrics *m, struct http_history *hi, uint64_t t0, int n)
{
	uint64_t cum[HTTP_H_COUNTERS] = { 0 }, g[HTTP_H_FIELDS - HTTP_H_COUNTERS] = { 0 };

	memset(m, 0, sizeof(*m));
	assert_int_equal(http_history_init(hi), 0);
	for (int i = 0; i < n; i++) {
		cum[HTTP_H_ACCEPTED] += 3;
		cum[HTTP_H_DELIVERED] += 2;
		g[HTTP_H_QUEUE - HTTP_H_COUNTERS] = (uint64_t)i;
		http_history_tick(hi, t0 + 10 * (uint64_t)i, cum, g);
	}
	m->accepted = cum[HTTP_H_ACCEPTED];
	m->delivered = cum[HTTP_H_DELIVERED];
	m->deferred = 7;
	m->bounced = 5;
	m->rejected = 11;
	m->accepted_bytes = 123456789012ULL;
	m->sessions_total = 99;
	m->auth_failures = 4;
	m->latency_bucket[3] = 2;
	m->latency_bucket[METRICS_LATENCY_BUCKETS - 1] = 1;
	m->latency_count = 3;
	m->latency_sum = 12.5;
	m->sessions_active = 8;     /* a gauge: never saved */
}

static void
test_persist_roundtrip(void **state)
{
	struct metrics m, r;
	struct http_history hi, rh;
	unsigned char *buf;
	size_t len;
	char err[128];
	const uint64_t t0 = 1700000000;
	const int n = 200;             /* 2,000 s: the fine ring keeps all, 33 coarse samples */

	(void)state;
	persist_fill(&m, &hi, t0, n);
	assert_non_null(buf = http_persist_encode(&m, &hi, t0 + 10 * n, &len));
	memset(&r, 0, sizeof(r));
	r.sessions_active = 1;
	assert_int_equal(http_history_init(&rh), 0);
	if (http_persist_decode(buf, len, t0 + 10 * n + 5, &r, &rh, err, sizeof(err)) != 0)
		fail_msg("decode: got error '%s', want success", err);
	assert_int_equal(r.accepted, m.accepted);
	assert_int_equal(r.delivered, m.delivered);
	assert_int_equal(r.deferred, 7);
	assert_int_equal(r.bounced, 5);
	assert_int_equal(r.rejected, 11);
	assert_int_equal(r.accepted_bytes, 123456789012ULL);
	assert_int_equal(r.sessions_total, 99);
	assert_int_equal(r.auth_failures, 4);
	assert_memory_equal(r.latency_bucket, m.latency_bucket, sizeof(m.latency_bucket));
	assert_int_equal(r.latency_count, 3);
	assert_true(r.latency_sum == 12.5);
	assert_int_equal(r.sessions_active, 1);     /* gauges are left alone */
	assert_int_equal(rh.fine.len, hi.fine.len);
	assert_int_equal(rh.coarse.len, hi.coarse.len);
	for (size_t i = 0; i < hi.fine.len; i++)
		assert_memory_equal(http_history_ring_get(&rh.fine, i),
		    http_history_ring_get(&hi.fine, i), sizeof(struct http_sample));
	for (size_t i = 0; i < hi.coarse.len; i++)
		assert_memory_equal(http_history_ring_get(&rh.coarse, i),
		    http_history_ring_get(&hi.coarse, i), sizeof(struct http_sample));
	assert_int_equal(rh.acc_n, hi.acc_n);
	assert_int_equal(rh.have_last, 1);
	assert_memory_equal(rh.last, hi.last, sizeof(hi.last));
	http_history_free(&rh);

	/* Two hours later: the fine ring (1 h) is gone, the 24 h ring stays. */
	memset(&r, 0, sizeof(r));
	assert_int_equal(http_history_init(&rh), 0);
	assert_int_equal(http_persist_decode(buf, len, t0 + 7200 + 10 * n, &r, &rh, err,
	    sizeof(err)), 0);
	assert_int_equal(rh.fine.len, 0);
	assert_int_equal(rh.coarse.len, hi.coarse.len);
	assert_int_equal(rh.acc_n, 0);
	assert_int_equal(r.accepted, m.accepted);
	/* Two days later: no history, the totals still. */
	assert_int_equal(http_persist_decode(buf, len, t0 + 2 * 86400, &r, &rh, err,
	    sizeof(err)), 0);
	assert_int_equal(rh.fine.len + rh.coarse.len, 0);
	assert_int_equal(r.delivered, m.delivered);
	http_history_free(&rh);
	http_history_free(&hi);
	free(buf);
}

static void
test_persist_bad(void **state)
{
	struct metrics m, r;
	struct http_history hi, rh;
	unsigned char *buf, *copy;
	size_t len;
	char err[128];
	const uint64_t t0 = 1700000000;

	(void)state;
	persist_fill(&m, &hi, t0, 50);
	assert_non_null(buf = http_persist_encode(&m, &hi, t0 + 500, &len));
	assert_non_null(copy = malloc(len));
	assert_int_equal(http_history_init(&rh), 0);
	/* Every truncation is refused and leaves the counters and history alone. */
	for (size_t cut = 0; cut < len; cut += (cut < 64 ? 1 : 97)) {
		memset(&r, 0, sizeof(r));
		r.accepted = 42;
		if (http_persist_decode(buf, cut, t0 + 500, &r, &rh, err, sizeof(err)) == 0)
			fail_msg("truncated at %zu of %zu: got success, want an error", cut, len);
		assert_int_equal(r.accepted, 42);
		assert_int_equal(rh.fine.len, 0);
	}
	/* A flipped bit anywhere is refused (the header checks or the checksum). */
	for (size_t i = 0; i < len; i += (i < 64 ? 1 : 211)) {
		memcpy(copy, buf, len);
		copy[i] ^= 0x10;
		memset(&r, 0, sizeof(r));
		if (http_persist_decode(copy, len, t0 + 500, &r, &rh, err, sizeof(err)) == 0)
			fail_msg("bit flipped at %zu: got success, want an error", i);
		assert_int_equal(r.accepted, 0);
	}
	/* The reasons say what is wrong. */
	memcpy(copy, buf, len);
	copy[0] = 'X';
	assert_int_equal(http_persist_decode(copy, len, t0, &r, &rh, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "magic"));
	memcpy(copy, buf, len);
	copy[4] = 2;
	assert_int_equal(http_persist_decode(copy, len, t0, &r, &rh, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "version"));
	memcpy(copy, buf, len);
	copy[len - 1] ^= 1;
	assert_int_equal(http_persist_decode(copy, len, t0, &r, &rh, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "checksum"));
	free(copy);
	free(buf);
	http_history_free(&rh);
	http_history_free(&hi);
}

static void
test_persist_file(void **state)
{
	char dir[] = "/tmp/mtad-test-stats-XXXXXX", path[256];
	struct metrics m, r;
	struct http_history hi, rh;
	struct http_persist *p;
	unsigned char *buf;
	size_t len;
	FILE *f;
	const uint64_t t0 = 1700000000;

	(void)state;
	assert_non_null(mkdtemp(dir));
	persist_fill(&m, &hi, t0, 30);
	/* No file: nothing restored, not an error. */
	assert_non_null(p = http_persist_start(dir));
	memset(&r, 0, sizeof(r));
	assert_int_equal(http_history_init(&rh), 0);
	assert_int_equal(http_persist_load(http_persist_dirfd(p), t0 + 300, &r, &rh), 0);
	/* The writer thread writes it; stop waits for the last copy. */
	assert_non_null(buf = http_persist_encode(&m, &hi, t0 + 300, &len));
	http_persist_save(p, buf, len);
	m.accepted += 1000;
	assert_non_null(buf = http_persist_encode(&m, &hi, t0 + 300, &len));
	p = http_persist_stop(p, buf, len);
	assert_null(p);
	assert_non_null(p = http_persist_start(dir));
	assert_int_equal(http_persist_load(http_persist_dirfd(p), t0 + 300, &r, &rh), 1);
	assert_int_equal(r.accepted, m.accepted);
	assert_int_equal(rh.fine.len, 30);
	/* A garbage file: -1, the counters untouched (start from zero). */
	assert_true(util_bsnprintf(path, sizeof(path), "%s/stats", dir) > 0);
	assert_non_null(f = fopen(path, "w"));
	fputs("garbage", f);
	fclose(f);
	memset(&r, 0, sizeof(r));
	assert_int_equal(http_persist_load(http_persist_dirfd(p), t0 + 300, &r, &rh), -1);
	assert_int_equal(r.accepted, 0);
	p = http_persist_stop(p, NULL, 0);
	unlink(path);
	assert_true(util_bsnprintf(path, sizeof(path), "%s/stats.tmp", dir) > 0);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(rmdir(dir), 0);
	http_history_free(&rh);
	http_history_free(&hi);
}

/* --- formatters ------------------------------------------------------------------ */

static void
snap_fill(struct http_snap *s)
{
	memset(s, 0, sizeof(*s));
	s->now_us = NOW_US;
	s->start_us = NOW_US - 3600ULL * 1000000;
	s->queue_messages = 7;
	s->queue_bytes = 2049;
	s->sessions_active = 3;
	s->accepted = 11;
	s->delivered = 5;
	s->tls_sessions = 2;
	s->oldest_arrival_us = NOW_US - 90ULL * 1000000;
	s->latency_buckets = METRICS_LATENCY_BUCKETS;
	s->latency_bucket[0] = 2;
	s->latency_bucket[3] = 1;
	s->latency_bucket[METRICS_LATENCY_BUCKETS - 1] = 1;
	s->latency_count = 4;
	s->latency_sum = 700.5;
	s->disk_known = 1;
	s->disk_free_pct = 3.5;
	s->disk_state = 1;
	s->hostname = "mx.<b>test</b>";
}

static void
test_prometheus(void **state)
{
	struct http_snap s;
	struct evbuffer *b = evbuffer_new();
	char *text;
	size_t n;
	static const char *const want[] = {
		"\nmta_queue_messages 7\n",
		"\nmta_queue_kilobytes 3\n",             /* 2049 bytes round up */
		"\nmta_smtp_sessions_active 3\n",
		"\nmta_messages_accepted_total 11\n",
		"\nmta_recipients_delivered_total 5\n",
		"\nmta_recipients_deferred_total 0\n",
		"\nmta_recipients_bounced_total 0\n",
		"\nmta_messages_rejected_total 0\n",
		"\nmta_tls_sessions_total 2\n",
		"\nmta_queue_oldest_message_age_seconds 90\n",
		"\nmta_disk_state 1\n",
		"\nmta_disk_free_ratio 0.035\n",
		"# TYPE mta_delivery_latency_seconds histogram\n",
		"mta_delivery_latency_seconds_bucket{le=\"0.01\"} 2\n",
		"mta_delivery_latency_seconds_bucket{le=\"0.25\"} 3\n",
		"mta_delivery_latency_seconds_bucket{le=\"600\"} 3\n",
		"mta_delivery_latency_seconds_bucket{le=\"+Inf\"} 4\n",
		"mta_delivery_latency_seconds_count 4\n",
		"mta_delivery_latency_seconds_sum 700.5",
		"# TYPE mta_queue_messages gauge\n",
		"# TYPE mta_messages_accepted_total counter\n",
	};

	(void)state;
	snap_fill(&s);
	assert_int_equal(http_metrics_format(&s, metrics_latency_bounds, b), 0);
	n = evbuffer_get_length(b);
	text = calloc(1, n + 1);
	assert_non_null(text);
	evbuffer_remove(b, text, n);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (strstr(text, want[i]) == NULL)
			fail_msg("want \"%s\" in:\n%s", want[i], text);
	/* Every sample line is "name value" or "name{labels} value". */
	for (char *line = text, *nl; *line != '\0'; line = nl + 1) {
		if ((nl = strchr(line, '\n')) == NULL)
			fail_msg("last line without a newline: \"%s\"", line);
		*nl = '\0';
		if (line[0] != '#' && strchr(line, ' ') == NULL)
			fail_msg("malformed line \"%s\"", line);
	}
	free(text);
	evbuffer_free(b);
}

static void
test_stats_json(void **state)
{
	struct http_snap s;
	json_t *j, *disk;
	static const struct {
		double pct;
		int state;
		const char *msg;
	} rows[] = {
		{ 50.0, 0, NULL },
		{ 5.0, 0, NULL },
		{ 4.99, 1, "Data volume has less than 5% free disk space" },
		{ 1.0, 1, "Data volume has less than 5% free disk space" },
		{ 0.99, 2, "Data volume has less than 1% free disk space" },
		{ 0.0, 2, "Data volume has less than 1% free disk space" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int got = http_stats_disk_state_of(rows[i].pct);
		const char *m = http_stats_disk_message(got);
		if (got != rows[i].state || (m == NULL) != (rows[i].msg == NULL) ||
		    (m != NULL && strcmp(m, rows[i].msg) != 0))
			fail_msg("%.2f %% free: got %d \"%s\", want %d \"%s\"", rows[i].pct, got,
			    m ? m : "-", rows[i].state, rows[i].msg ? rows[i].msg : "-");
	}
	snap_fill(&s);
	j = http_stats_json(&s);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "queue"), "messages")), 7);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "queue"), "kilobytes")), 3);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "queue"), "oldest_age")), 90);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "sessions"), "active")), 3);
	assert_int_equal(json_integer_value(json_object_get(j, "uptime")), 3600);
	disk = json_object_get(j, "disk");
	assert_string_equal(json_string_value(json_object_get(disk, "state")), "low");
	assert_string_equal(json_string_value(json_object_get(disk, "message")),
	    "Data volume has less than 5% free disk space");
	assert_true(json_is_real(json_object_get(disk, "free_percent")));
	assert_string_equal(json_string_value(json_object_get(j, "hostname")), "mx.<b>test</b>");
	json_decref(j);
}

/* --- header section ------------------------------------------------------------ */

static void
test_headers(void **state)
{
	static const struct {
		const char *in;
		int cut;
		const char *want;      /* "name=value|..." then " T" if truncated, " S=subject" */
	} rows[] = {
		{ "From: a@b\r\nSubject: hi\r\n\r\nbody", 0, "From=a@b|Subject=hi| S=hi" },
		{ "From: a@b\nSubject:  hi there \n\nbody", 0, "From=a@b|Subject=hi there | S=hi there " },
		{ "Subject: one\r\n two\r\n\tthree\r\nX: y\r\n\r\n", 0,
		  "Subject=one two three|X=y| S=one two three" },
		{ "NoColon\r\nA:b\r\n\r\n", 0, "NoColon=|A=b|" },
		{ " leading\r\nA: b\r\n\r\n", 0, "A=b|" },
		{ "\r\nbody: not a header\r\n", 0, "" },
		{ "\nbody: not a header\n", 0, "" },
		{ "A: 1\r\nB: 2", 0, "A=1|B=2|" },            /* no body */
		{ "A: 1\r\nB: 2", 1, "A=1|B=2| T" },          /* cut at the limit */
		{ "subject: lower\r\nSubject: second\r\n\r\n", 0,
		  "subject=lower|Subject=second| S=lower" },
		{ "A:\r\n\r\n", 0, "A=|" },
		{ "", 0, "" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		json_t *o = json_object(), *arr, *f;
		char got[512] = "";
		size_t off = 0, k;
		int n;

		assert_int_equal(http_headers_json(rows[i].in, strlen(rows[i].in), rows[i].cut, o), 0);
		arr = json_object_get(o, "headers");
		json_array_foreach(arr, k, f) {
			n = util_bsnprintf(got + off, sizeof(got) - off, "%s=%s|",
			    json_string_value(json_object_get(f, "name")),
			    json_string_value(json_object_get(f, "value")));
			assert_true(n >= 0);
			off += (size_t)n;
		}
		if (json_is_true(json_object_get(o, "headers_truncated"))) {
			n = util_bsnprintf(got + off, sizeof(got) - off, " T");
			assert_true(n >= 0);
			off += (size_t)n;
		}
		if (json_object_get(o, "subject") != NULL) {
			n = util_bsnprintf(got + off, sizeof(got) - off, " S=%s",
			    json_string_value(json_object_get(o, "subject")));
			assert_true(n >= 0);
		}
		if (strcmp(got, rows[i].want) != 0)
			fail_msg("row %zu: got \"%s\", want \"%s\"", i, got, rows[i].want);
		json_decref(o);
	}
}

static void
test_headers_limits(void **state)
{
	/* 600 fields: only HTTP_MAX_DETAIL_LINES kept, and marked truncated. */
	size_t cap = 600 * 16 + 8, len = 0;
	char *buf = malloc(cap);
	json_t *o = json_object();

	(void)state;
	assert_non_null(buf);
	for (int i = 0; i < 600; i++) {
		int n = util_bsnprintf(buf + len, cap - len, "X-%d: v\r\n", i);
		assert_true(n >= 0);
		len += (size_t)n;
	}
	memcpy(buf + len, "\r\n", 2);
	len += 2;
	assert_int_equal(http_headers_json(buf, len, 0, o), 0);
	assert_int_equal(json_array_size(json_object_get(o, "headers")), HTTP_MAX_DETAIL_LINES);
	assert_true(json_is_true(json_object_get(o, "headers_truncated")));
	json_decref(o);
	/* One field folded 20,000 times stays linear and whole. */
	free(buf);
	cap = 8 + 20000 * 4;
	buf = malloc(cap);
	assert_non_null(buf);
	memcpy(buf, "X: a", 4);
	len = 4;
	for (int i = 0; i < 20000; i++) {
		memcpy(buf + len, "\r\n b", 4);
		len += 4;
	}
	o = json_object();
	assert_int_equal(http_headers_json(buf, len, 1, o), 0);
	assert_int_equal(json_string_length(json_object_get(json_array_get(
	    json_object_get(o, "headers"), 0), "value")), 1 + 20000 * 2);
	json_decref(o);
	free(buf);
}

/* --- assets ------------------------------------------------------------------------- */

static void
test_assets(void **state)
{
	static const struct {
		const char *path, *ctype_prefix;
	} rows[] = {
		{ "/assets/index.html", "text/html" },
		{ "/assets/app.js", "text/javascript" },
		{ "/assets/app.css", "text/css" },
		{ "/assets/vendor/uplot-1.6.32.min.js", "text/javascript" },
		{ "/assets/vendor/uplot-1.6.32.min.css", "text/css" },
		{ "/assets/favicon.svg", "image/svg+xml" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct http_asset *a = http_ui_asset_find(rows[i].path);
		if (a == NULL)
			fail_msg("%s: got no asset, want one", rows[i].path);
		if (strncmp(a->ctype, rows[i].ctype_prefix, strlen(rows[i].ctype_prefix)) != 0)
			fail_msg("%s: got %s, want %s", rows[i].path, a->ctype, rows[i].ctype_prefix);
		assert_true(a->len > 0);
		assert_true(a->etag[0] == '"');
		if (a->gz != NULL)
			assert_true(a->gzlen < a->len && a->gz[0] == 0x1f && a->gz[1] == 0x8b);
	}
	assert_null(http_ui_asset_find("/assets/vendor/LICENSE.uplot"));
	assert_null(http_ui_asset_find("/assets/vendor/README.md"));
	assert_null(http_ui_asset_find("/assets/../http.c"));
	/* The page loads no inline script: every <script> has a src. */
	const struct http_asset *ix = http_ui_asset_find("/assets/index.html");
	char *page = calloc(1, ix->len + 1);
	assert_non_null(page);
	memcpy(page, ix->data, ix->len);
	for (char *p = page; (p = strstr(p, "<script")) != NULL; p++) {
		char *end = strchr(p, '>');
		assert_non_null(end);
		if (memmem(p, (size_t)(end - p), "src=", 4) == NULL)
			fail_msg("inline <script> in index.html");
	}
	assert_null(strstr(page, "style="));
	assert_null(strstr(page, "<style"));
	/* No event-handler attributes (onclick= and the like). */
	for (char *p = page; (p = strstr(p, " on")) != NULL; p++) {
		char *q = p + 3;
		while (*q >= 'a' && *q <= 'z')
			q++;
		if (q > p + 3 && *q == '=')
			fail_msg("event handler attribute in index.html: %.20s", p);
	}
	free(page);
}

/* --- StatsD --------------------------------------------------------------------------- */

static void
test_push_name(void **state)
{
	static const struct {
		const char *in, *want;
	} rows[] = {
		{ "Mqueue-Messages", "Mqueue-Messages" },
		{ "Active SMTP sessions", "Active_SMTP_sessions" },
		{ "a:b|c@d", "a_b_c_d" },
		{ "x.y_z-1", "x.y_z-1" },
		{ "", "" },
	};
	char out[64];

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		assert_int_equal(metrics_push_name(rows[i].in, out, sizeof(out)), 0);
		if (strcmp(out, rows[i].want) != 0)
			fail_msg("\"%s\": got \"%s\", want \"%s\"", rows[i].in, out, rows[i].want);
	}
	assert_int_equal(metrics_push_name("toolong", out, 4), -1);
}

static void
test_push_format(void **state)
{
	struct metrics m;
	struct metrics_push *p;
	char err[256], buf[1400];
	int n;
	static const char *const bad[] = {
		"http://127.0.0.1:8125", "udp://127.0.0.1", "udp://127.0.0.1:0",
		"udp://127.0.0.1:65536", "udp://:8125", "udp://[::1:8125",
		"udp://no-such-host.invalid:8125",   /* names need resolve=1 */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p = metrics_push_new(bad[i], 0, err, sizeof(err));
		if (p != NULL)
			fail_msg("%s: got a push target, want an error", bad[i]);
		assert_true(strstr(err, "metrics_push") != NULL);
	}
	p = metrics_push_new("udp://[::1]:8125", 0, err, sizeof(err));
	metrics_push_free(p);   /* may fail where IPv6 is off: no assertion */
	p = metrics_push_new("udp://127.0.0.1:9", 0, err, sizeof(err));
	assert_non_null(p);
	memset(&m, 0, sizeof(m));
	m.sessions_active = 4;
	m.accepted = 10;
	m.tls_sessions = 1;
	n = metrics_push_format(p, &m, 12, 345, buf, sizeof(buf));
	assert_true(n > 0);
	assert_string_equal(buf,
	    "Mqueue-Messages:12|g\nMqueue-Kilobytes:345|g\nActive_SMTP_sessions:4|g\n"
	    "Messages-Accepted:10|c\nMessages-Rejected:0|c\nRecipients-Delivered:0|c\n"
	    "Recipients-Deferred:0|c\nRecipients-Bounced:0|c\nSMTP-Sessions:0|c\nTLS-Sessions:1|c");
	/* The next push carries only the increase. */
	m.accepted = 15;
	n = metrics_push_format(p, &m, 12, 345, buf, sizeof(buf));
	assert_true(n > 0);
	assert_non_null(strstr(buf, "Messages-Accepted:5|c\n"));
	assert_non_null(strstr(buf, "TLS-Sessions:0|c"));
	/* Too small a buffer is an error, not a cut line. */
	assert_int_equal(metrics_push_format(p, &m, 12, 345, buf, 40), -1);
	metrics_push_free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_filter),
		cmocka_unit_test(test_filter_bad),
		cmocka_unit_test(test_filter_own_idset),
		cmocka_unit_test(test_parse_age),
		cmocka_unit_test(test_msg_state),
		cmocka_unit_test(test_json_utf8),
		cmocka_unit_test(test_json_dump_escapes),
		cmocka_unit_test(test_auth_check),
		cmocka_unit_test(test_csrf),
		cmocka_unit_test(test_host_allowed),
		cmocka_unit_test(test_auth_lockout),
		cmocka_unit_test(test_auth_log_rate),
		cmocka_unit_test(test_auth_table_bounded),
		cmocka_unit_test(test_history),
		cmocka_unit_test(test_persist_roundtrip),
		cmocka_unit_test(test_persist_bad),
		cmocka_unit_test(test_persist_file),
		cmocka_unit_test(test_prometheus),
		cmocka_unit_test(test_stats_json),
		cmocka_unit_test(test_headers),
		cmocka_unit_test(test_headers_limits),
		cmocka_unit_test(test_assets),
		cmocka_unit_test(test_push_name),
		cmocka_unit_test(test_push_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
