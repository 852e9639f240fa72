/*
 * relay_map.c - sender_relay_map (SPEC §11.2): parse the per-sender relay
 *               rules and find a sender's rule
 *
 * Owns:     struct relay_map, its rule array and every string in it.
 * Lifetime: relay_map_load() or relay_map_parse() to relay_map_free();
 *           the file's text is not kept.
 * Errors:   NULL with "sender_relay_map FILE line N: what" in err ("line N:
 *           what" from relay_map_parse) for a malformed file (too many
 *           rules, a line over RELAY_MAP_LINE_MAX, a bad pattern or relay,
 *           a user name without a password file); out of memory likewise.
 * Context:  any thread; no globals.
 *
 * The format is in relay_map.h; lines, comments and fields are read by
 * mail/tablefile.c (fields separated by blanks, '#' anywhere).
 */

#include "mail/relay_map.h"
#include "mail/tablefile.h"
#include "lib/util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* blank-separated fields, '#' anywhere: PATTERN RELAY [USERNAME PASSWORD_FILE] and more is an error */
static const struct tablefile_format relay_map_format = {
	"sender_relay_map", RELAY_MAP_LINE_MAX, '\0', 4, 1
};

/* rm_pattern_ok - "local@domain" or "@domain": one '@', a domain, no controls */
static int
rm_pattern_ok(const char *p)
{
	const char *at = strchr(p, '@');

	if (at == NULL || strchr(at + 1, '@') != NULL || at[1] == '\0')
		return 0;
	for (; *p != '\0'; p++)
		if ((unsigned char)*p < 0x21 || *p == 0x7f)
			return 0;
	return 1;
}

/* rm_rule_free - one rule's strings */
static void
rm_rule_free(struct relay_rule *r)
{
	free(r->pattern);
	free(r->username);
	free(r->password_file);
	memset(r, 0, sizeof(*r));
}

/* relay_map_free - see relay_map.h */
struct relay_map *
relay_map_free(struct relay_map *m)
{
	if (m == NULL)
		return NULL;
	for (size_t i = 0; i < m->n; i++)
		rm_rule_free(&m->rules[i]);
	free(m->rules);
	free(m);
	return NULL;
}

/* rm_rule - one line's fields (tok[0..ntok)) into r; -1 with what */
static int
rm_rule(struct relay_rule *r, char *const *tok, unsigned ntok, const char **what)
{
	memset(r, 0, sizeof(*r));
	if (ntok != 2 && ntok != 4) {
		*what = "expected PATTERN RELAY [USERNAME PASSWORD_FILE]";
		return -1;
	}
	if (!rm_pattern_ok(tok[0])) {
		*what = "the pattern must be user@domain or @domain";
		return -1;
	}
	if (config_value_parse_relay(tok[1], &r->relay) < 0 || !r->relay.set) {
		*what = "the relay must be host, host:port, [host], [host]:port or smtps://host[:port]";
		return -1;
	}
	if ((r->pattern = strdup(tok[0])) == NULL)
		goto nomem;
	if (ntok == 4 && ((r->username = strdup(tok[2])) == NULL ||
	    (r->password_file = strdup(tok[3])) == NULL))
		goto nomem;
	return 0;
nomem:
	rm_rule_free(r);
	*what = "out of memory";
	return -1;
}

/* relay_map_read - the rules of the open table t; NULL with "... line N: what" in err */
static struct relay_map *
relay_map_read(struct tablefile *t, char *err, size_t errlen)
{
	struct relay_map *m;
	struct tablefile_line l;
	size_t cap = 0;
	int r;

	if ((m = calloc(1, sizeof(*m))) == NULL) {
		tablefile_err(t, 0, err, errlen, "out of memory");
		return NULL;
	}
	while ((r = tablefile_next(t, &l, err, errlen)) > 0) {
		const char *what = NULL;

		if (m->n == RELAY_MAP_MAX_RULES) {
			tablefile_err(t, l.lineno, err, errlen, "too many rules");
			goto fail;
		}
		if (m->n == cap) {
			size_t ncap = cap == 0 ? 8 : cap * 2;
			struct relay_rule *nr = realloc(m->rules, ncap * sizeof(*nr));

			if (nr == NULL) {
				tablefile_err(t, l.lineno, err, errlen, "out of memory");
				goto fail;
			}
			m->rules = nr;
			cap = ncap;
		}
		if (rm_rule(&m->rules[m->n], l.field, l.n, &what) < 0) {
			tablefile_err(t, l.lineno, err, errlen, "%s", what);
			goto fail;
		}
		m->n++;
	}
	if (r < 0)
		goto fail;
	return m;
fail:
	return relay_map_free(m);
}

/* relay_map_parse - see relay_map.h */
struct relay_map *
relay_map_parse(const char *text, size_t len, char *err, size_t errlen)
{
	static const struct tablefile_format nameless = { NULL, RELAY_MAP_LINE_MAX, '\0', 4, 1 };
	struct tablefile t;
	struct relay_map *m;

	if (tablefile_open_text(&t, &nameless, NULL, text, len, err, errlen) < 0)
		return NULL;
	m = relay_map_read(&t, err, errlen);
	tablefile_close(&t);
	return m;
}

/* relay_map_load - see relay_map.h */
struct relay_map *
relay_map_load(const char *root, const char *rel, char *err, size_t errlen)
{
	struct tablefile t;
	struct relay_map *m;

	if (tablefile_open(&t, &relay_map_format, root, rel, err, errlen) < 0)
		return NULL;
	m = relay_map_read(&t, err, errlen);
	tablefile_close(&t);
	return m;
}

/* relay_map_print - see relay_map.h */
void
relay_map_print(const struct relay_map *m, int fd)
{
	char relay[300], line[RELAY_MAP_LINE_MAX + 128];

	for (size_t i = 0; m != NULL && i < m->n; i++) {
		const struct relay_rule *r = &m->rules[i];
		int n;

		if (config_value_format_relay(&r->relay, relay, sizeof(relay)) < 0)
			util_strlcpy(relay, r->relay.host, sizeof(relay));
		if (r->username != NULL)
			n = util_bsnprintf(line, sizeof(line), "# sender_relay_map rule %zu = %s %s "
			    "user=%s password_file=********\n", i + 1, r->pattern, relay, r->username);
		else
			n = util_bsnprintf(line, sizeof(line), "# sender_relay_map rule %zu = %s %s\n",
			    i + 1, r->pattern, relay);
		if (n < 0 || write(fd, line, strlen(line)) < 0)
			return;
	}
}

/* relay_map_lookup - see relay_map.h */
const struct relay_rule *
relay_map_lookup(const struct relay_map *m, const char *sender, size_t *idx)
{
	const char *at;

	if (m == NULL || sender == NULL || sender[0] == '\0' ||
	    (at = strrchr(sender, '@')) == NULL)
		return NULL;
	for (size_t i = 0; i < m->n; i++) {
		const char *p = m->rules[i].pattern;
		int hit = p[0] == '@' ? util_ncaseeq(at, strlen(at), p) :
		    util_ncaseeq(sender, strlen(sender), p);

		if (hit) {
			if (idx != NULL)
				*idx = i;
			return &m->rules[i];
		}
	}
	return NULL;
}
