/*
 * auth_users.c - the SMTP AUTH users table (SPEC §11.3 smtpd_users_file):
 *                parse it, look a user up, match envelope senders
 *
 * Owns:     struct auth_users and its strings.
 * Lifetime: auth_users_load() to the last auth_users_unref(); a session
 *           copies what it keeps after a login, so a reload never pulls
 *           a pattern list from under it.
 * Errors:   NULL with "smtpd_users_file FILE line N: what" in err.
 * Context:  event-loop thread (start-up, SIGHUP).
 *
 * Format, one user a line, '#' starts a comment at the start of a line:
 *
 *     app1:$y$j9T$...:app1@example.com,@alerts.example.com
 *     cron:$6$rounds=5000$salt$...
 *
 * USER (no ':', no blanks or controls, at most AUTH_USER_MAX octets),
 * CRYPT_HASH as crypt(3) writes it, then optionally the envelope senders
 * the user may use: user@domain or @domain, comma-separated. No patterns:
 * any sender. The file is read beneath the key store, its lines and
 * fields by mail/tablefile.c; a line may hold USERS_LINE_MAX octets.
 */
#include "auth/auth.h"
#include "lib/util.h"
#include "mail/tablefile.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#define USERS_MAX      100000
#define USERS_LINE_MAX 65536         /* octets: a user with many sender patterns */

/* ':'-separated, the third field keeps the rest; '#' only in column one (hashes are free text) */
static const struct tablefile_format users_format = {
	"smtpd_users_file", USERS_LINE_MAX, ':', 3, 0
};

struct auth_user {
	char *name;
	char *hash;
	char *patterns;              /* "" = any sender */
};

struct auth_users {
	unsigned refs;
	size_t   n;
	struct auth_user *u;         /* sorted by name */
};

/* A SHA-512 hash of a random password: an unknown user costs a real crypt_r(). */
static const char dummy_hash[] =
    "$6$rounds=5000$mtaddummysalt$0Nt0xk2jBD3e3OaZAzvn6B3O3KmhHcCsUnqSrpj5rV.GhgKdX4Ek8hDV5U3VHRWC5oVTD1q1pqQyVd4h7wA0d/";

static int
user_cmp(const void *a, const void *b)
{
	return strcmp(((const struct auth_user *)a)->name, ((const struct auth_user *)b)->name);
}

/* hash_ok - a hash of a scheme we accept (strong, salted, libcrypt's) */
static int
hash_ok(const char *h)
{
	static const char *const prefixes[] = { "$y$", "$gy$", "$7$", "$6$", "$5$", "$2b$", "$2y$" };

	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncmp(h, prefixes[i], strlen(prefixes[i])) == 0)
			return strlen(h) > strlen(prefixes[i]) + 8 && strlen(h) < AUTH_HASH_MAX;
	return 0;
}

/* pattern_ok - "user@domain" or "@domain", no blanks or controls */
static int
pattern_ok(const char *p, size_t n)
{
	const char *at = memchr(p, '@', n);

	if (n == 0 || n > 320 || at == NULL || at == p + n - 1 || memchr(at + 1, '@', (size_t)(p + n - at - 1)))
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] <= ' ' || p[i] == 0x7f)
			return 0;
	return 1;
}

static void
users_free_entries(struct auth_users *u)
{
	for (size_t i = 0; i < u->n; i++) {
		free(u->u[i].name);
		if (u->u[i].hash != NULL) {
			OPENSSL_cleanse(u->u[i].hash, strlen(u->u[i].hash));
			free(u->u[i].hash);
		}
		free(u->u[i].patterns);
	}
	free(u->u);
}

/* users_add - one more user (strings copied); -1 when out of memory */
static int
users_add(struct auth_users *u, size_t *cap, const char *name, const char *hash,
    const char *patterns)
{
	struct auth_user *e;

	if (u->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct auth_user *nu = realloc(u->u, ncap * sizeof(*nu));

		if (nu == NULL)
			return -1;
		u->u = nu;
		*cap = ncap;
	}
	e = &u->u[u->n];
	e->name = strdup(name);
	e->hash = strdup(hash);
	e->patterns = strdup(patterns);
	u->n++;
	return e->name == NULL || e->hash == NULL || e->patterns == NULL ? -1 : 0;
}

/* auth_users_load - see auth.h */
struct auth_users *
auth_users_load(const char *root, const char *rel, char *err, size_t errlen)
{
	struct auth_users *u = NULL;
	struct tablefile t;
	struct tablefile_line l;
	size_t cap = 0;
	int r;

	if (tablefile_open(&t, &users_format, root, rel, err, errlen) < 0)
		return NULL;
	if ((u = calloc(1, sizeof(*u))) == NULL) {
		tablefile_err(&t, 0, err, errlen, "out of memory");
		goto fail;
	}
	u->refs = 1;
	while ((r = tablefile_next(&t, &l, err, errlen)) > 0) {
		const char *name = l.field[0], *hash = l.n > 1 ? l.field[1] : NULL;
		const char *patterns = l.n > 2 ? l.field[2] : NULL;

		if (hash == NULL || name[0] == '\0' || strlen(name) > AUTH_USER_MAX) {
			tablefile_err(&t, l.lineno, err, errlen,
			    "expected USER:CRYPT_HASH[:SENDER_PATTERN,...]");
			goto fail;
		}
		for (const char *p = name; *p; p++)
			if ((unsigned char)*p <= ' ' || *p == 0x7f) {
				tablefile_err(&t, l.lineno, err, errlen,
				    "blank or control character in the user name");
				goto fail;
			}
		if (!hash_ok(hash)) {
			tablefile_err(&t, l.lineno, err, errlen, "user %.64s: not a yescrypt ($y$), "
			    "SHA-512 ($6$) or bcrypt ($2b$) hash", name);
			goto fail;
		}
		for (const char *p = patterns; p != NULL && *p;) {
			size_t n = strcspn(p, ",");

			if (!pattern_ok(p, n)) {
				tablefile_err(&t, l.lineno, err, errlen, "user %.64s: bad sender pattern "
				    "'%.*s' (want user@domain or @domain)", name, (int)(n > 64 ? 64 : n), p);
				goto fail;
			}
			p += n + (p[n] == ',');
		}
		if (u->n == USERS_MAX) {
			tablefile_err(&t, l.lineno, err, errlen, "more than %d users", USERS_MAX);
			goto fail;
		}
		if (users_add(u, &cap, name, hash, patterns != NULL ? patterns : "") < 0) {
			tablefile_err(&t, l.lineno, err, errlen, "out of memory");
			goto fail;
		}
	}
	if (r < 0)
		goto fail;
	qsort(u->u, u->n, sizeof(*u->u), user_cmp);
	for (size_t i = 1; i < u->n; i++)
		if (strcmp(u->u[i - 1].name, u->u[i].name) == 0) {
			tablefile_err(&t, 0, err, errlen, "user %.64s is listed twice", u->u[i].name);
			goto fail;
		}
	tablefile_close(&t);
	return u;
fail:
	tablefile_close(&t);
	auth_users_unref(u);
	return NULL;
}

struct auth_users *
auth_users_ref(struct auth_users *u)
{
	if (u != NULL)
		u->refs++;
	return u;
}

struct auth_users *
auth_users_unref(struct auth_users *u)
{
	if (u == NULL || --u->refs > 0)
		return NULL;
	users_free_entries(u);
	free(u);
	return NULL;
}

size_t
auth_users_count(const struct auth_users *u)
{
	return u != NULL ? u->n : 0;
}

/* auth_users_lookup - see auth.h */
int
auth_users_lookup(const struct auth_users *u, const char *user, const char **hash,
    const char **patterns)
{
	struct auth_user key = { (char *)(uintptr_t)user, NULL, NULL };
	const struct auth_user *e = u != NULL && u->n > 0 ?
	    bsearch(&key, u->u, u->n, sizeof(*u->u), user_cmp) : NULL;

	if (e == NULL) {
		*hash = dummy_hash;
		*patterns = "";
		return -1;
	}
	*hash = e->hash;
	*patterns = e->patterns;
	return 0;
}

/* auth_sender_allowed - see auth.h */
int
auth_sender_allowed(const char *patterns, const char *sender)
{
	const char *at = strrchr(sender, '@');
	size_t sl = strlen(sender);

	if (patterns[0] == '\0')
		return 1;
	for (const char *p = patterns; *p;) {
		size_t n = strcspn(p, ",");

		if (p[0] == '@') {
			if (at != NULL && at != sender && (size_t)(sender + sl - at) == n &&
			    strncasecmp(at, p, n) == 0)
				return 1;
		} else if (sl == n && strncasecmp(sender, p, n) == 0) {
			return 1;
		}
		p += n + (p[n] == ',');
	}
	return 0;
}
