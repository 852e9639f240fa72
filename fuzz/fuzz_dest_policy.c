/*
 * fuzz_dest_policy.c - libFuzzer harness for the destination_policy_file
 *                      parser and the rate syntax (src/mail/dest_policy.c)
 *
 * Owns:     one policy per input.
 * Lifetime: one input.
 * Errors:   a broken invariant aborts (libFuzzer reports it).
 * Context:  libFuzzer's thread.
 *
 * The input is the file; its first line is also tried as a
 * destination_rate_limit value. Invariants: a parse either fails with a
 * NUL-terminated "destination_policy_file f ..." message or gives at most
 * DEST_POLICY_MAX_RULES rules, sorted, each domain lower case, unique and
 * found by the look-up (in any case), with a concurrency in range and a
 * rate that formats and parses back to itself.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/dest_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* check_rate - a parsed rate is in range and survives format + parse */
static void
check_rate(const struct dest_rate *r)
{
	char buf[32];
	char why[160];
	struct dest_rate back;

	if (r->n > DEST_RATE_MAX || (r->n != 0 && r->per_s == 0))
		abort();
	if (dest_rate_format(r, buf, sizeof(buf)) < 0 ||
	    dest_rate_parse(buf, &back, why, sizeof(why)) < 0 ||
	    back.n != r->n || (r->n != 0 && back.per_s != r->per_s))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256], line[64], why[160], upper[DEST_POLICY_DOMAIN_MAX + 1];
	struct dest_rate rate;
	struct dest_policy *p;
	size_t l = 0;

	while (l < size && l < sizeof(line) - 1 && data[l] != '\n' && data[l] != '\0') {
		line[l] = (char)data[l];
		l++;
	}
	line[l] = '\0';
	if (dest_rate_parse(line, &rate, why, sizeof(why)) == 0)
		check_rate(&rate);
	else if (strnlen(why, sizeof(why)) >= sizeof(why))
		abort();

	p = dest_policy_parse((const char *)data, size, "f", err, sizeof(err));
	if (p == NULL) {
		if (strnlen(err, sizeof(err)) >= sizeof(err) || strncmp(err, "destination_policy_file f", 25) != 0)
			abort();
		return 0;
	}
	if (p->n > DEST_POLICY_MAX_RULES)
		abort();
	for (size_t i = 0; i < p->n; i++) {
		const struct dest_policy_rule *r = &p->rules[i];
		size_t k;

		if (r->domain == NULL || r->domain[0] == '\0' ||
		    strlen(r->domain) > DEST_POLICY_DOMAIN_MAX ||
		    r->concurrency > DEST_CONCURRENCY_MAX ||
		    (i > 0 && strcmp(p->rules[i - 1].domain, r->domain) >= 0))
			abort();
		if (r->has_rate)
			check_rate(&r->rate);
		for (k = 0; r->domain[k] != '\0'; k++)
			upper[k] = (char)toupper((unsigned char)r->domain[k]);
		upper[k] = '\0';
		if (dest_policy_lookup(p, upper) != r)
			abort();
	}
	dest_policy_free(p);
	return 0;
}
