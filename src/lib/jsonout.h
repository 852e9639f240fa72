/*
 * jsonout.h - JSON strings out of untrusted text (jansson)
 *
 * Owns:     nothing; the caller takes the json_t values returned.
 * Lifetime: stateless.
 * Errors:   NULL / -1 when out of memory.
 * Context:  any thread.
 */
#ifndef MTAD_JSONOUT_H
#define MTAD_JSONOUT_H

#include <stddef.h>

#include <jansson.h>

/* jsonout_strn - a JSON string from len untrusted bytes (ill-formed UTF-8 and NUL to U+FFFD) */
json_t *jsonout_strn(const char *s, size_t len);
/* jsonout_str - the same for a C string; NULL gives JSON null */
json_t *jsonout_str(const char *s);
/* jsonout_set - json_object_set_new that fails (-1) on a NULL value instead of crashing */
int jsonout_set(json_t *obj, const char *key, json_t *val);

#endif
