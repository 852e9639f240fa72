/*
 * relay_map.h - sender_relay_map (SPEC §11.2): per-sender relays (public
 *               interface of src/mail/relay_map.c)
 *
 * Owns:     struct relay_map and its rules' strings.
 * Lifetime: relay_map_load() or relay_map_parse() to relay_map_free();
 *           read-only in between (SIGHUP builds a new map and swaps it whole).
 * Errors:   relay_map_load() returns NULL with "sender_relay_map FILE line
 *           N: what" (or "sender_relay_map FILE: why") in err,
 *           relay_map_parse() with "line N: what".
 * Context:  any thread; no globals.
 *
 * File format (lines, comments and fields as mail/tablefile.h reads them),
 * one rule a line, '#' starts a comment, blank lines ignored:
 *
 *     PATTERN RELAY [USERNAME PASSWORD_FILE]
 *
 * PATTERN is "user@domain" (that sender) or "@domain" (any sender of the
 * domain), compared without regard to case; RELAY is any smart_relay form
 * ("host", "[host]:587", "smtps://host"); USERNAME and PASSWORD_FILE (key
 * store relative, its first line the password) give the rule its own SMTP
 * AUTH credentials. The first matching rule wins; the null sender matches
 * no rule.
 */
#ifndef MTAD_RELAY_MAP_H
#define MTAD_RELAY_MAP_H

#include <stddef.h>

#include "mail/config.h"

#define RELAY_MAP_MAX_RULES 10000
#define RELAY_MAP_LINE_MAX  1024

struct relay_rule {
	char  *pattern;                 /* "user@domain" or "@domain", as written */
	struct relay_target relay;
	char  *username;                /* NULL = no AUTH */
	char  *password_file;           /* NULL = no AUTH */
};

struct relay_map {
	struct relay_rule *rules;
	size_t n;
};

/*
 * relay_map_load - the rules of the key store file rel (tablefile_open:
 * beneath root, at most 1 MiB); NULL with "sender_relay_map FILE line N:
 * what" or "sender_relay_map FILE: why" in err
 */
struct relay_map *relay_map_load(const char *root, const char *rel, char *err, size_t errlen);
/* relay_map_parse - the rules of text[0..len) (tests, fuzzing); NULL with "line N: what" in err */
struct relay_map *relay_map_parse(const char *text, size_t len, char *err, size_t errlen);
/* relay_map_lookup - the first rule matching sender (index in *idx), or NULL */
const struct relay_rule *relay_map_lookup(const struct relay_map *m, const char *sender,
    size_t *idx);
/*
 * relay_map_print - the rules as comment lines for mtad -t --print
 * ("# sender_relay_map rule 1 = @a.example [relay]:587 user=u password_file=********"):
 * the names of password files are masked like the secrets they hold
 */
void relay_map_print(const struct relay_map *m, int fd);
/* relay_map_free - takes NULL, returns NULL */
struct relay_map *relay_map_free(struct relay_map *m);

#endif
