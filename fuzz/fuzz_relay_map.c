/*
 * fuzz_relay_map.c - libFuzzer harness for the sender_relay_map parser
 *                    (src/mail/relay_map.c)
 *
 * Owns:     one map per input.
 * Lifetime: one input.
 * Errors:   a broken invariant aborts (libFuzzer reports it).
 * Context:  libFuzzer's thread.
 *
 * The input is the file. Invariants: a parse either fails with a
 * NUL-terminated "line N: ..." message or gives at most
 * RELAY_MAP_MAX_RULES rules, each with a pattern holding one '@' and a set
 * relay, user name and password file both present or both absent; the
 * lookup of a few senders returns a rule of the map or NULL.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/relay_map.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const senders[] = { "a@b.example", "bob@b.example", "", "x@", "@" };
	char err[256];
	struct relay_map *m = relay_map_parse((const char *)data, size, err, sizeof(err));

	if (m == NULL) {
		if (strnlen(err, sizeof(err)) >= sizeof(err) || strncmp(err, "line ", 5) != 0)
			abort();
		return 0;
	}
	if (m->n > RELAY_MAP_MAX_RULES)
		abort();
	for (size_t i = 0; i < m->n; i++) {
		const struct relay_rule *r = &m->rules[i];

		if (r->pattern == NULL || strchr(r->pattern, '@') == NULL || !r->relay.set ||
		    (r->username == NULL) != (r->password_file == NULL))
			abort();
	}
	for (size_t i = 0; i < sizeof(senders) / sizeof(senders[0]); i++) {
		size_t idx = 0;
		const struct relay_rule *r = relay_map_lookup(m, senders[i], &idx);

		if (r != NULL && (idx >= m->n || r != &m->rules[idx]))
			abort();
	}
	relay_map_free(m);
	return 0;
}
