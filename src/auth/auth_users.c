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
 * any sender. The file is read through the key store (tls_keys_read).
 */
#include "auth/auth.h"
#include "lib/util.h"
#include "tls/tls.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#define USERS_MAX 100000

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

static void __attribute__((format(printf, 5, 6)))
users_err(char *err, size_t errlen, const char *file, unsigned line, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(what, sizeof(what), fmt, ap) < 0)
		what[0] = '\0';
	va_end(ap);
	if (line > 0)
		(void)util_bsnprintf(err, errlen, "smtpd_users_file %s line %u: %s", file, line, what);
	else
		(void)util_bsnprintf(err, errlen, "smtpd_users_file %s: %s", file, what);
}

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

/* auth_users_load - see auth.h */
struct auth_users *
auth_users_load(const char *root, const char *rel, char *err, size_t errlen)
{
	struct auth_users *u = NULL;
	size_t len = 0, cap = 0;
	unsigned lineno = 0;
	char why[256], *text, *line, *next;

	if (root == NULL || root[0] == '\0') {
		users_err(err, errlen, rel, 0, "no key store is configured (set key_dir or fs_dir)");
		return NULL;
	}
	if ((text = tls_keys_read(root, rel, &len, why, sizeof(why))) == NULL) {
		users_err(err, errlen, rel, 0, "%s", why);
		return NULL;
	}
	if ((u = calloc(1, sizeof(*u))) == NULL) {
		users_err(err, errlen, rel, 0, "out of memory");
		goto fail;
	}
	u->refs = 1;
	for (line = text; line < text + len; line = next) {
		char *c1, *c2, *end;
		struct auth_user *e;

		lineno++;
		next = memchr(line, '\n', (size_t)(text + len - line));
		next = next != NULL ? next + 1 : text + len;
		end = next;
		while (end > line && (end[-1] == '\n' || end[-1] == '\r'))
			end--;
		*end = '\0';
		if (line[0] == '#' || line[strspn(line, " \t")] == '\0')
			continue;
		if ((c1 = strchr(line, ':')) == NULL || c1 == line || (size_t)(c1 - line) > AUTH_USER_MAX) {
			users_err(err, errlen, rel, lineno, "expected USER:CRYPT_HASH[:SENDER_PATTERN,...]");
			goto fail;
		}
		*c1++ = '\0';
		for (const char *p = line; *p; p++)
			if ((unsigned char)*p <= ' ' || *p == 0x7f) {
				users_err(err, errlen, rel, lineno, "blank or control character in the user name");
				goto fail;
			}
		/* bcrypt and SHA-crypt hashes contain no ':', so the next one ends the hash */
		if ((c2 = strchr(c1, ':')) != NULL)
			*c2++ = '\0';
		if (!hash_ok(c1)) {
			users_err(err, errlen, rel, lineno, "user %.64s: not a yescrypt ($y$), SHA-512 ($6$) "
			    "or bcrypt ($2b$) hash", line);
			goto fail;
		}
		if (c2 != NULL) {
			for (const char *p = c2; *p;) {
				size_t n = strcspn(p, ",");
				if (!pattern_ok(p, n)) {
					users_err(err, errlen, rel, lineno, "user %.64s: bad sender pattern '%.*s' "
					    "(want user@domain or @domain)", line, (int)(n > 64 ? 64 : n), p);
					goto fail;
				}
				p += n + (p[n] == ',');
			}
		}
		if (u->n == USERS_MAX) {
			users_err(err, errlen, rel, lineno, "more than %d users", USERS_MAX);
			goto fail;
		}
		if (u->n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct auth_user *nu = realloc(u->u, ncap * sizeof(*nu));
			if (nu == NULL) {
				users_err(err, errlen, rel, lineno, "out of memory");
				goto fail;
			}
			u->u = nu;
			cap = ncap;
		}
		e = &u->u[u->n];
		e->name = strdup(line);
		e->hash = strdup(c1);
		e->patterns = strdup(c2 != NULL ? c2 : "");
		u->n++;
		if (e->name == NULL || e->hash == NULL || e->patterns == NULL) {
			users_err(err, errlen, rel, lineno, "out of memory");
			goto fail;
		}
	}
	qsort(u->u, u->n, sizeof(*u->u), user_cmp);
	for (size_t i = 1; i < u->n; i++)
		if (strcmp(u->u[i - 1].name, u->u[i].name) == 0) {
			users_err(err, errlen, rel, 0, "user %.64s is listed twice", u->u[i].name);
			goto fail;
		}
	OPENSSL_cleanse(text, len);
	free(text);
	return u;
fail:
	OPENSSL_cleanse(text, len);
	free(text);
	u->refs = 1;
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
