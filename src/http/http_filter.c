/*
 * http_filter.c - which queued messages an API request means
 *
 * Owns:     nothing: struct http_filter borrows its strings from the request.
 * Lifetime: a filter lives for one request.
 * Errors:   a bad parameter value is -1 with the reason (the API answers 400).
 * Context:  event-loop thread; pure functions over struct queue_msg (it reads
 *           the in-memory envelope only, never the message file), so that a
 *           request walks 100,000 messages without any disk I/O.
 */
#include "http/http_int.h"
#include "lib/util.h"
#include "queue/queue.h"

#include <string.h>
#include <strings.h>

/* http_filter_init - an empty filter (matches everything) measuring ages from now_us */
void
http_filter_init(struct http_filter *f, uint64_t now_us)
{
	memset(f, 0, sizeof(*f));
	f->state = QUEUE_VIEW_ANY;
	f->min_age = -1;
	f->max_age = -1;
	f->now_us = now_us;
}

/* http_filter_parse_age - seconds, with an optional s/m/h/d suffix, up to ten years */
int64_t
http_filter_parse_age(const char *s)
{
	char num[24];
	size_t n = strlen(s);
	long long v, mult = 1;

	if (n == 0 || n >= sizeof(num))
		return -1;
	memcpy(num, s, n + 1);
	switch (num[n - 1]) {
	case 's': mult = 1; num[--n] = '\0'; break;
	case 'm': mult = 60; num[--n] = '\0'; break;
	case 'h': mult = 3600; num[--n] = '\0'; break;
	case 'd': mult = 86400; num[--n] = '\0'; break;
	default: break;
	}
	if (n == 0 || util_strtonum(num, 0, 10LL * 366 * 86400, &v) < 0)
		return -1;
	if (v > 10LL * 366 * 86400 / mult)
		return -1;
	return (int64_t)(v * mult);
}

/* http_filter_text - a text criterion; empty means none; bounded length */
static int
http_filter_text(const char **slot, const char *value, const char *what,
    char *err, size_t errlen)
{
	if (strlen(value) > 320) {
		util_bsnprintf(err, errlen, "%s: longer than 320 characters", what);
		return -1;
	}
	*slot = value[0] != '\0' ? value : NULL;
	return 0;
}

/* http_filter_set - one parameter into the filter (see http_int.h for the results) */
int
http_filter_set(struct http_filter *f, const char *key, const char *value,
    char *err, size_t errlen)
{
	int rc;

	if (strcmp(key, "q") == 0 || strcmp(key, "search") == 0)
		rc = http_filter_text(&f->q, value, key, err, errlen);
	else if (strcmp(key, "sender") == 0 || strcmp(key, "from") == 0)
		rc = http_filter_text(&f->sender, value, key, err, errlen);
	else if (strcmp(key, "rcpt") == 0 || strcmp(key, "to") == 0 ||
	    strcmp(key, "recipient") == 0)
		rc = http_filter_text(&f->rcpt, value, key, err, errlen);
	else if (strcmp(key, "domain") == 0) {
		if (value[0] == '@')
			value++;
		rc = http_filter_text(&f->domain, value, key, err, errlen);
	} else if (strcmp(key, "id") == 0)
		rc = http_filter_text(&f->id, value, key, err, errlen);
	else if (strcmp(key, "state") == 0) {
		if (value[0] == '\0' || strcmp(value, "any") == 0 || strcmp(value, "all") == 0)
			f->state = QUEUE_VIEW_ANY;
		else if (strcmp(value, "active") == 0)
			f->state = QUEUE_VIEW_ACTIVE;
		else if (strcmp(value, "deferred") == 0)
			f->state = QUEUE_VIEW_DEFERRED;
		else if (strcmp(value, "held") == 0 || strcmp(value, "hold") == 0)
			f->state = QUEUE_VIEW_HELD;
		else {
			util_bsnprintf(err, errlen,
			    "state: want active, deferred, held or any");
			return -1;
		}
		if (f->state != QUEUE_VIEW_ANY)
			f->any = 1;
		return 0;
	} else if (strcmp(key, "min_age") == 0 || strcmp(key, "max_age") == 0) {
		int64_t *slot = key[1] == 'i' ? &f->min_age : &f->max_age;
		if (value[0] == '\0') {
			*slot = -1;
			return 0;
		}
		if ((*slot = http_filter_parse_age(value)) < 0) {
			util_bsnprintf(err, errlen,
			    "%s: want seconds, or a number with s, m, h or d", key);
			return -1;
		}
		f->any = 1;
		return 0;
	} else
		return 1;
	if (rc == 0 && value[0] != '\0')
		f->any = 1;
	return rc;
}

/* http_domain_match - addr's domain is dom or a subdomain of it */
static int
http_domain_match(const char *addr, const char *dom)
{
	const char *at = strrchr(addr, '@');
	size_t dl = strlen(dom), al;

	if (at == NULL)
		return 0;
	at++;
	al = strlen(at);
	if (al == dl)
		return strcasecmp(at, dom) == 0;
	if (al > dl && at[al - dl - 1] == '.')
		return strcasecmp(at + al - dl, dom) == 0;
	return 0;
}

/* http_contains - case-insensitive substring test; NULL hay never matches */
static int
http_contains(const char *hay, const char *needle)
{
	return hay != NULL && strcasestr(hay, needle) != NULL;
}

/* http_filter_match - does m pass every criterion given? */
int
http_filter_match(const struct http_filter *f, const struct queue_msg *m)
{
	if (f->id != NULL && strcasecmp(f->id, m->id) != 0)
		return 0;
	if (f->state != QUEUE_VIEW_ANY && queue_view_state(m) != f->state)
		return 0;
	if (f->min_age >= 0 || f->max_age >= 0) {
		int64_t age = f->now_us > m->arrival_us ?
		    (int64_t)((f->now_us - m->arrival_us) / 1000000) : 0;
		if (f->min_age >= 0 && age < f->min_age)
			return 0;
		if (f->max_age >= 0 && age > f->max_age)
			return 0;
	}
	if (f->sender != NULL && !http_contains(m->sender, f->sender))
		return 0;
	if (f->rcpt != NULL || f->domain != NULL) {
		size_t i;
		for (i = 0; i < m->nrcpt; i++) {
			const char *a = m->rcpt[i].addr;
			if (a == NULL)
				continue;
			if (f->rcpt != NULL && !http_contains(a, f->rcpt))
				continue;
			if (f->domain != NULL && !http_domain_match(a, f->domain))
				continue;
			break;
		}
		if (i == m->nrcpt)
			return 0;
	}
	if (f->q != NULL) {
		if (http_contains(m->id, f->q) || http_contains(m->sender, f->q))
			return 1;
		for (size_t i = 0; i < m->nrcpt; i++)
			if (http_contains(m->rcpt[i].addr, f->q))
				return 1;
		return 0;
	}
	return 1;
}
