/*
 * dest_policy.c - destination limits (SPEC §11.2): parse rates ("5/s") and
 *                 the destination_policy_file, find a destination's rule
 *
 * Owns:     struct dest_policy, its sorted rule array and every domain in it.
 * Lifetime: dest_policy_parse() to dest_policy_free(); text is not kept.
 * Errors:   NULL with "destination_policy_file FILE line N: what" in err
 *           for a malformed file (too many
 *           rules, a line over DEST_POLICY_LINE_MAX, a bad domain, an
 *           unknown or repeated option, a bad number, a repeated domain);
 *           out of memory likewise.
 * Context:  any thread; no globals.
 *
 * The format is in dest_policy.h. Lines, comments and fields are read by
 * mail/tablefile.c (fields separated by blanks, '#' anywhere). The rules are sorted by
 * domain once, so a look-up (one per new destination) is a binary search.
 */
#include "mail/dest_policy.h"
#include "lib/util.h"
#include "mail/config.h"
#include "mail/tablefile.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* dp_num - a decimal number of digits only in [1, max]; 0 or -1 */
static int
dp_num(const char *s, size_t len, unsigned max, uint32_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 10)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v < 1 || v > max)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* dest_rate_parse - see dest_policy.h */
int
dest_rate_parse(const char *s, struct dest_rate *out, char *why, size_t whylen)
{
	static const struct { const char *name; uint32_t secs; } units[] = {
		{ "s", 1 }, { "sec", 1 }, { "second", 1 },
		{ "m", 60 }, { "min", 60 }, { "minute", 60 },
		{ "h", 3600 }, { "hour", 3600 },
		{ "d", 86400 }, { "day", 86400 },
	};
	const char *slash;
	struct dest_rate r = { 0, 0 };

	if (s[0] == '\0' || strcmp(s, "none") == 0) {
		*out = r;
		return 0;
	}
	if ((slash = strchr(s, '/')) == NULL ||
	    dp_num(s, (size_t)(slash - s), DEST_RATE_MAX, &r.n) < 0)
		goto bad;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(slash + 1, units[i].name) == 0) {
			r.per_s = units[i].secs;
			*out = r;
			return 0;
		}
bad:
	if (util_bsnprintf(why, whylen, "expected N/UNIT with N from 1 to %u and UNIT s, m, h "
	    "or d (e.g. 100/m), or none", DEST_RATE_MAX) < 0)
		util_strlcpy(why, "expected N/UNIT (e.g. 100/m)", whylen);
	return -1;
}

/* dest_rate_format - see dest_policy.h */
int
dest_rate_format(const struct dest_rate *r, char *buf, size_t size)
{
	const char *u;

	if (r->n == 0)
		return util_bsnprintf(buf, size, "%s", "") < 0 ? -1 : 0;
	switch (r->per_s) {
	case 1: u = "s"; break;
	case 60: u = "m"; break;
	case 3600: u = "h"; break;
	case 86400: u = "d"; break;
	default:
		return util_bsnprintf(buf, size, "%u/%us", r->n, r->per_s) < 0 ? -1 : 0;
	}
	return util_bsnprintf(buf, size, "%u/%s", r->n, u) < 0 ? -1 : 0;
}

/* dp_domain_ok - a host name or address: letters, digits, '-', '.', '_', ':' */
static int
dp_domain_ok(const char *d)
{
	size_t n = strlen(d);

	if (n == 0 || n > DEST_POLICY_DOMAIN_MAX || d[0] == '.' || d[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)d[i];

		if (!isalnum(c) && c != '-' && c != '.' && c != '_' && c != ':')
			return 0;
	}
	return 1;
}

/* dp_rule - tok[0..ntok) of one line into r (domain copied); -1 with what */
static int
dp_rule(struct dest_policy_rule *r, char *const *tok, unsigned ntok, char *what, size_t wlen)
{
	int have_conc = 0;

	memset(r, 0, sizeof(*r));
	if (!dp_domain_ok(tok[0])) {
		util_strlcpy(what, "expected DOMAIN [concurrency=N] [rate=N/UNIT]: not a domain",
		    wlen);
		return -1;
	}
	if (ntok < 2) {
		util_strlcpy(what, "expected DOMAIN [concurrency=N] [rate=N/UNIT]: no limit given",
		    wlen);
		return -1;
	}
	for (unsigned i = 1; i < ntok; i++) {
		const char *t = tok[i];

		if (strncmp(t, "concurrency=", 12) == 0) {
			uint32_t v;

			if (have_conc) {
				util_strlcpy(what, "concurrency given twice", wlen);
				return -1;
			}
			if (dp_num(t + 12, strlen(t + 12), DEST_CONCURRENCY_MAX, &v) < 0) {
				if (util_bsnprintf(what, wlen, "concurrency: expected a number from 1 "
				    "to %u", DEST_CONCURRENCY_MAX) < 0)
					util_strlcpy(what, "concurrency: bad number", wlen);
				return -1;
			}
			r->concurrency = v;
			have_conc = 1;
		} else if (strncmp(t, "rate=", 5) == 0) {
			char why[128];

			if (r->has_rate) {
				util_strlcpy(what, "rate given twice", wlen);
				return -1;
			}
			if (dest_rate_parse(t + 5, &r->rate, why, sizeof(why)) < 0 || t[5] == '\0') {
				if (t[5] == '\0')
					util_strlcpy(why, "expected N/UNIT (e.g. 100/m) or none",
					    sizeof(why));
				if (util_bsnprintf(what, wlen, "rate: %s", why) < 0)
					util_strlcpy(what, "rate: bad value", wlen);
				return -1;
			}
			r->has_rate = 1;
		} else {
			char shown[48];
			size_t k;

			for (k = 0; t[k] != '\0' && k < sizeof(shown) - 1; k++)
				shown[k] = (unsigned char)t[k] < 0x20 || (unsigned char)t[k] >= 0x7f ?
				    '?' : t[k];
			shown[k] = '\0';
			if (util_bsnprintf(what, wlen, "unknown option '%s' (expected concurrency=N "
			    "or rate=N/UNIT)", shown) < 0)
				util_strlcpy(what, "unknown option", wlen);
			return -1;
		}
	}
	if ((r->domain = strdup(tok[0])) == NULL) {
		util_strlcpy(what, "out of memory", wlen);
		return -1;
	}
	for (char *p = r->domain; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return 0;
}

/* dest_policy_free - see dest_policy.h */
struct dest_policy *
dest_policy_free(struct dest_policy *p)
{
	if (p == NULL)
		return NULL;
	for (size_t i = 0; i < p->n; i++)
		free(p->rules[i].domain);
	free(p->rules);
	free(p);
	return NULL;
}

static int
dp_cmp(const void *a, const void *b)
{
	const struct dest_policy_rule *x = a, *y = b;
	int c = strcmp(x->domain, y->domain);

	if (c != 0)
		return c;
	return x->line < y->line ? -1 : x->line > y->line;
}

static const struct tablefile_format dest_policy_format = {
	"destination_policy_file", DEST_POLICY_LINE_MAX, '\0', 3, 1
};

/* dp_read - the rules of the open table t, sorted; NULL with "... line N: what" in err */
static struct dest_policy *
dp_read(struct tablefile *t, char *err, size_t errlen)
{
	struct dest_policy *p;
	struct tablefile_line l;
	size_t cap = 0;
	char what[160];
	int r;

	if ((p = calloc(1, sizeof(*p))) == NULL) {
		tablefile_err(t, 0, err, errlen, "out of memory");
		return NULL;
	}
	while ((r = tablefile_next(t, &l, err, errlen)) > 0) {
		if (l.n > dest_policy_format.fields_max) {
			tablefile_err(t, l.lineno, err, errlen,
			    "expected DOMAIN [concurrency=N] [rate=N/UNIT]: too many fields");
			goto fail;
		}
		if (p->n == DEST_POLICY_MAX_RULES) {
			tablefile_err(t, l.lineno, err, errlen, "too many lines");
			goto fail;
		}
		if (p->n == cap) {
			size_t ncap = cap == 0 ? 8 : cap * 2;
			struct dest_policy_rule *nr = realloc(p->rules, ncap * sizeof(*nr));

			if (nr == NULL) {
				tablefile_err(t, l.lineno, err, errlen, "out of memory");
				goto fail;
			}
			p->rules = nr;
			cap = ncap;
		}
		if (dp_rule(&p->rules[p->n], l.field, l.n, what, sizeof(what)) < 0) {
			tablefile_err(t, l.lineno, err, errlen, "%s", what);
			goto fail;
		}
		p->rules[p->n].line = l.lineno;
		p->n++;
	}
	if (r < 0)
		goto fail;
	if (p->n > 1)
		qsort(p->rules, p->n, sizeof(*p->rules), dp_cmp);
	for (size_t i = 1; i < p->n; i++)
		if (strcmp(p->rules[i - 1].domain, p->rules[i].domain) == 0) {
			tablefile_err(t, p->rules[i].line, err, errlen, "domain %.100s repeated (first "
			    "on line %u)", p->rules[i].domain, p->rules[i - 1].line);
			goto fail;
		}
	return p;
fail:
	return dest_policy_free(p);
}

/* dest_policy_parse - see dest_policy.h */
struct dest_policy *
dest_policy_parse(const char *text, size_t len, const char *file, char *err, size_t errlen)
{
	struct tablefile t;
	struct dest_policy *p;

	if (tablefile_open_text(&t, &dest_policy_format, file, text, len, err, errlen) < 0)
		return NULL;
	p = dp_read(&t, err, errlen);
	tablefile_close(&t);
	return p;
}

/* dest_policy_read - see dest_policy.h */
struct dest_policy *
dest_policy_read(const struct config *cfg, char *err, size_t errlen)
{
	const char *root = config_key_store(cfg);
	struct tablefile t;
	struct dest_policy *p;

	if (root[0] == '\0')
		root = cfg->data_dir;
	if (tablefile_open(&t, &dest_policy_format, root, cfg->destination_policy_file, err,
	    errlen) < 0)
		return NULL;
	p = dp_read(&t, err, errlen);
	tablefile_close(&t);
	return p;
}

/* dest_policy_lookup - see dest_policy.h */
const struct dest_policy_rule *
dest_policy_lookup(const struct dest_policy *p, const char *domain)
{
	size_t lo = 0, hi;

	if (p == NULL || p->n == 0)
		return NULL;
	hi = p->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcasecmp(domain, p->rules[mid].domain);

		if (c == 0)
			return &p->rules[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* dest_policy_print - see dest_policy.h */
void
dest_policy_print(const struct dest_policy *p, int fd)
{
	char line[DEST_POLICY_DOMAIN_MAX + 128], conc[32], rate[48];

	for (size_t i = 0; p != NULL && i < p->n; i++) {
		const struct dest_policy_rule *r = &p->rules[i];

		conc[0] = rate[0] = '\0';
		if (r->concurrency > 0 &&
		    util_bsnprintf(conc, sizeof(conc), " concurrency=%u", r->concurrency) < 0)
			conc[0] = '\0';
		if (r->has_rate) {
			char v[32];

			if (dest_rate_format(&r->rate, v, sizeof(v)) < 0 ||
			    util_bsnprintf(rate, sizeof(rate), " rate=%s", v[0] != '\0' ? v : "none") < 0)
				rate[0] = '\0';
		}
		if (util_bsnprintf(line, sizeof(line), "# destination_policy %s =%s%s\n", r->domain,
		    conc, rate) < 0 || write(fd, line, strlen(line)) < 0)
			return;
	}
}
