/*
 * ctl_filter.c - mtactl's queue filters (--domain, --sender, --rcpt,
 *                --state, --min-age, --max-age, --search): the command
 *                line into the API's query string, and into the API's own
 *                filter for data_dir's messages while mtad is stopped
 *
 * Owns:     nothing: struct ctl_filter borrows its values from argv.
 * Lifetime: one command line.
 * Errors:   a bad option or value is -1 with the reason in err (mtactl
 *           exits with CTL_EX_USAGE).
 * Context:  the mtactl process.
 *
 * Each value is checked by http_filter_set() (src/http/http_filter.c), the
 * function the API applies to the same parameter, and the offline listing
 * matches with http_filter_match(): online and offline select alike, and
 * the rules are written once.
 */
#include "ctl/ctl_int.h"
#include "lib/util.h"

#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

/* The options, each with its API parameter (docs/web-ui.md, "Views over the index"). */
static const struct {
	const char *opt;
	const char *key;
} ctl_filter_opts[] = {
	{ "--domain",    "domain" },
	{ "--sender",    "sender" },
	{ "--from",      "sender" },
	{ "--rcpt",      "rcpt" },
	{ "--recipient", "rcpt" },
	{ "--to",        "rcpt" },
	{ "--state",     "state" },
	{ "--min-age",   "min_age" },
	{ "--max-age",   "max_age" },
	{ "--search",    "q" },
};

void
ctl_filter_init(struct ctl_filter *f, uint64_t now_us)
{
	memset(f, 0, sizeof(*f));
	http_filter_init(&f->hf, now_us);
}

/* ctl_filter_add - key=value into the list (a repeated key replaces its value) and the filter */
int
ctl_filter_add(struct ctl_filter *f, const char *key, const char *value,
    char *err, size_t errlen)
{
	size_t i;

	if (value[0] == '\0') {
		util_bsnprintf(err, errlen, "%s: empty value", key);
		return -1;
	}
	if (http_filter_set(&f->hf, key, value, err, errlen) != 0)
		return -1;          /* 1 cannot happen: every key is the API's */
	for (i = 0; i < f->n; i++)
		if (strcmp(f->kv[i].key, key) == 0)
			break;
	if (i == CTL_FILTER_MAX) {
		util_bsnprintf(err, errlen, "too many filters");
		return -1;
	}
	if (i == f->n)
		f->n++;
	f->kv[i].key = key;
	f->kv[i].value = value;
	return 0;
}

/*
 * ctl_filter_opt - argv[*i] as a filter option ("--domain D" or
 * "--domain=D"): 1 taken (*i moved past its value), 0 not a filter
 * option, -1 a bad or missing value (reason in err)
 */
int
ctl_filter_opt(struct ctl_filter *f, int argc, char **argv, int *i, char *err, size_t errlen)
{
	const char *a = argv[*i], *value = NULL;
	char why[256];

	for (size_t k = 0; k < sizeof(ctl_filter_opts) / sizeof(ctl_filter_opts[0]); k++) {
		size_t n = strlen(ctl_filter_opts[k].opt);

		if (strncmp(a, ctl_filter_opts[k].opt, n) != 0)
			continue;
		if (a[n] == '=')
			value = a + n + 1;
		else if (a[n] != '\0')
			continue;
		else if (*i + 1 < argc)
			value = argv[++*i];
		else {
			util_bsnprintf(err, errlen, "%s: needs a value", ctl_filter_opts[k].opt);
			return -1;
		}
		if (ctl_filter_add(f, ctl_filter_opts[k].key, value, why, sizeof(why)) < 0) {
			/* the API's reason names its parameter: name the option instead */
			const char *colon = strchr(why, ':');

			util_bsnprintf(err, errlen, "%s%s%.60s: %s", ctl_filter_opts[k].opt,
			    value[0] != '\0' ? " " : "", value, colon != NULL ? colon + 2 : why);
			return -1;
		}
		return 1;
	}
	return 0;
}

/* ctl_filter_query - "&key=value..." (values percent-encoded) in buf; -1 if it does not fit */
int
ctl_filter_query(const struct ctl_filter *f, char *buf, size_t size)
{
	size_t pos = 0, vl;
	char *enc;

	if (size == 0)
		return -1;
	buf[0] = '\0';
	for (size_t i = 0; i < f->n; i++) {
		size_t kl = strlen(f->kv[i].key);

		if (pos + kl + 2 >= size)
			return -1;
		buf[pos++] = '&';
		memcpy(buf + pos, f->kv[i].key, kl);
		pos += kl;
		buf[pos++] = '=';
		buf[pos] = '\0';
		/* percent-encoded by libevent (RFC 3986 unreserved characters kept) */
		if ((enc = evhttp_uriencode(f->kv[i].value, -1, 0)) == NULL)
			return -1;
		vl = strlen(enc);
		if (pos + vl >= size) {
			free(enc);
			return -1;
		}
		memcpy(buf + pos, enc, vl + 1);
		pos += vl;
		free(enc);
	}
	return 0;
}
