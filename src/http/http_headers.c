/*
 * http_headers.c - a message's header section as JSON, for /api/queue/ID
 *
 * Owns:     nothing: it reads the caller's buffer and adds to its object.
 * Lifetime: stateless.
 * Errors:   -1 only when memory is short; any bytes are accepted (the
 *           header section comes from an SMTP client and may be anything).
 * Context:  event-loop thread; a pure function, fuzzed by fuzz/fuzz_http.c.
 */
#include "http/http_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* http_headers_end - offset just past the header section (its blank line excluded); 0 if not seen */
size_t
http_headers_end(const char *buf, size_t len)
{
	if (len >= 1 && buf[0] == '\n')
		return 0;
	for (size_t i = 0; i + 1 < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (buf[i + 1] == '\n' || (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n'))
			return i + 1;
	}
	return 0;
}

/* http_line - the line at i ending before hend: its length without CR LF, and where the next starts */
static size_t
http_line(const char *buf, size_t i, size_t hend, size_t *next)
{
	const char *nl = memchr(buf + i, '\n', hend - i);
	size_t j = nl != NULL ? (size_t)(nl - buf) : hend, ll = j - i;

	if (ll > 0 && buf[i + ll - 1] == '\r')
		ll--;
	*next = j + 1;
	return ll;
}

/*
 * http_field - one field from its first line at i through its continuation
 * lines, unfolded into tmp (each fold becomes one space); *next = the line
 * after it. Linear in the field's size.
 */
static json_t *
http_field(const char *buf, size_t i, size_t hend, char *tmp, size_t *next)
{
	size_t ll = http_line(buf, i, hend, next), nlen, vs, o = 0;
	const char *colon = memchr(buf + i, ':', ll);
	json_t *f;

	nlen = colon != NULL ? (size_t)(colon - (buf + i)) : ll;
	vs = colon != NULL ? nlen + 1 : ll;
	while (vs < ll && (buf[i + vs] == ' ' || buf[i + vs] == '\t'))
		vs++;
	memcpy(tmp, buf + i + vs, ll - vs);
	o = ll - vs;
	while (*next < hend && (buf[*next] == ' ' || buf[*next] == '\t')) {
		size_t c = *next, cl = http_line(buf, c, hend, next), k = 0;
		if (cl == 0)
			break;
		while (k < cl && (buf[c + k] == ' ' || buf[c + k] == '\t'))
			k++;
		tmp[o++] = ' ';
		memcpy(tmp + o, buf + c + k, cl - k);
		o += cl - k;
	}
	if ((f = json_object()) == NULL)
		return NULL;
	if (jsonout_set(f, "name", jsonout_strn(buf + i, nlen)) < 0 ||
	    jsonout_set(f, "value", jsonout_strn(tmp, o)) < 0) {
		json_decref(f);
		return NULL;
	}
	return f;
}

/*
 * http_headers_json - the header section in buf (len bytes; cut: the read
 * stopped at its limit) as o.headers = [{"name","value"}], at most
 * HTTP_MAX_DETAIL_LINES fields, folded lines unfolded (RFC 5322 §2.2.3);
 * o.subject = the first Subject; o.headers_truncated. 0 or -1 (memory).
 */
int
http_headers_json(const char *buf, size_t len, int cut, json_t *o)
{
	size_t hend = http_headers_end(buf, len), nfields = 0, i = 0, next;
	int truncated = 0, rc = -1;
	json_t *arr = json_array(), *f;
	char *tmp = NULL;

	if (arr == NULL || jsonout_set(o, "headers", arr) < 0)
		return -1;
	if (hend == 0 && !(len > 0 && (buf[0] == '\n' || (len > 1 && buf[0] == '\r' && buf[1] == '\n')))) {
		/* No blank line seen: all of it is headers (no body, or cut). */
		truncated = cut;
		hend = len;
	}
	if ((tmp = malloc(hend + 1)) == NULL)
		return -1;
	/* A continuation line before any field has nothing to continue: skip it. */
	while (i < hend && (buf[i] == ' ' || buf[i] == '\t')) {
		if (http_line(buf, i, hend, &next) == 0)
			break;
		i = next;
	}
	while (i < hend) {
		if (http_line(buf, i, hend, &next) == 0)
			break;
		if (nfields >= HTTP_MAX_DETAIL_LINES) {
			truncated = 1;
			break;
		}
		if ((f = http_field(buf, i, hend, tmp, &next)) == NULL ||
		    json_array_append_new(arr, f) < 0)
			goto out;
		nfields++;
		i = next;
	}
	for (size_t k = 0; k < json_array_size(arr); k++) {
		json_t *fld = json_array_get(arr, k);
		const char *nm = json_string_value(json_object_get(fld, "name"));
		if (nm != NULL && strcasecmp(nm, "Subject") == 0) {
			if (json_object_set(o, "subject", json_object_get(fld, "value")) < 0)
				goto out;
			break;
		}
	}
	rc = jsonout_set(o, "headers_truncated", json_boolean(truncated));
out:
	free(tmp);
	return rc;
}
