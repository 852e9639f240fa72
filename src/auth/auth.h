/*
 * auth.h - SMTP AUTH for submission (SPEC §11.3; public interface of
 *          src/auth/): the users table, the password-hash worker, the SASL
 *          PLAIN/LOGIN message parsers and the failed-login guard
 *
 * Owns:     struct auth_users (the parsed smtpd_users_file), struct
 *           auth_worker (its threads and job lists), struct auth_guard
 *           (failures per client address).
 * Lifetime: users from auth_users_load() to the last auth_users_unref()
 *           (replaced whole on SIGHUP); worker and guard from _new() to
 *           _free(). A job lives from auth_worker_submit() to its callback
 *           or its auth_job_cancel().
 * Errors:   loading writes "smtpd_users_file FILE line N: what" into err;
 *           the parsers return AUTH_SASL_* codes; a full job queue is -1.
 * Context:  event-loop thread, except the worker's threads, which only run
 *           crypt_r() on copies and touch the job lists under their mutex.
 *
 * Hashes are crypt(3)'s (libcrypt): yescrypt "$y$", SHA-512 "$6$", bcrypt
 * "$2b$" (also "$gy$", "$7$", "$5$", "$2y$"). Verifying one costs up to
 * ~100 ms of CPU by design, so it never runs on the event loop.
 */
#ifndef MTAD_AUTH_H
#define MTAD_AUTH_H

#include <stddef.h>
#include <stdint.h>

struct event_base;

#define AUTH_USER_MAX    255         /* user name, octets */
#define AUTH_PASS_MAX    1024        /* password, octets */
#define AUTH_HASH_MAX    512
#define AUTH_QUEUE_MAX   1024        /* jobs waiting for a thread */
#define AUTH_FAIL_LIMIT  10          /* failures from one address ... */
#define AUTH_FAIL_WINDOW 600         /* ... within this many seconds block it ... */
#define AUTH_BLOCK_TIME  600         /* ... for this long after its last failure */

/* --- users (auth_users.c) ---------------------------------------------------- */

struct auth_users;

struct auth_users *auth_users_load(const char *root, const char *rel, char *err, size_t errlen);
struct auth_users *auth_users_ref(struct auth_users *u);
struct auth_users *auth_users_unref(struct auth_users *u);
size_t auth_users_count(const struct auth_users *u);

/*
 * auth_users_lookup - the user's hash and sender patterns ("" = any
 * sender; comma-separated user@domain or @domain), borrowed from the table.
 * 0, or -1 when there is no such user (then *hash is a dummy hash of the
 * same cost, so that an unknown name takes as long as a wrong password).
 */
int auth_users_lookup(const struct auth_users *u, const char *user, const char **hash,
    const char **patterns);

/*
 * auth_sender_allowed - 1 when sender (an address, "" for <>) matches one
 * of patterns (case-insensitive; "@domain" matches any local part), or
 * patterns is empty; else 0.
 */
int auth_sender_allowed(const char *patterns, const char *sender);

/* --- the hash worker (auth_worker.c) -------------------------------------- */

struct auth_worker;
struct auth_job;

typedef void auth_done_fn(void *arg, int ok);

/* auth_worker_new - nthreads threads; NULL if they cannot be started */
struct auth_worker *auth_worker_new(struct event_base *base, unsigned nthreads);
struct auth_worker *auth_worker_free(struct auth_worker *w);

/*
 * auth_worker_submit - verify password against hash on a worker thread;
 * done(arg, ok) runs later on the loop (ok = 1: they match). Both strings
 * are copied (the password copy is wiped). NULL when AUTH_QUEUE_MAX jobs
 * are waiting or memory is short.
 */
struct auth_job *auth_worker_submit(struct auth_worker *w, const char *hash,
    const char *password, size_t passlen, auth_done_fn *done, void *arg);
/* auth_job_cancel - the callback will not run (its session is gone) */
void auth_job_cancel(struct auth_job *j);

/* --- SASL messages (auth_sasl.c) ---------------------------------------------- */

enum auth_sasl_result {
	AUTH_SASL_OK = 0,
	AUTH_SASL_CANCEL,            /* the client sent "*" (RFC 4954 §4) */
	AUTH_SASL_BAD_BASE64,        /* 501 5.5.2 */
	AUTH_SASL_BAD_MESSAGE,       /* decoded, but not a valid PLAIN message */
};

/*
 * auth_sasl_decode - a client response line (base64, or "=" for empty,
 * or "*") into out (NUL-terminated, *outlen octets without it). The
 * decoded data must fit size - 1.
 */
enum auth_sasl_result auth_sasl_decode(const char *line, size_t len, char *out, size_t size,
    size_t *outlen);

/*
 * auth_sasl_plain - RFC 4616: "authzid NUL authcid NUL passwd". authzid
 * must be empty or equal authcid; authcid 1..AUTH_USER_MAX octets without
 * controls, passwd 1..AUTH_PASS_MAX. user and pass point into msg.
 */
enum auth_sasl_result auth_sasl_plain(const char *msg, size_t len, const char **user,
    size_t *ulen, const char **pass, size_t *plen);

/* auth_sasl_valid_user - a decoded LOGIN user name is usable (1) or not (0) */
int auth_sasl_valid_user(const char *user, size_t len);

/* --- failed logins per client address (auth_guard.c) ------------------------ */

struct auth_guard;

struct auth_guard *auth_guard_new(size_t max_entries);
struct auth_guard *auth_guard_free(struct auth_guard *g);
/* auth_guard_blocked - 1 while key (an address) may not try AUTH at time now */
int auth_guard_blocked(struct auth_guard *g, const void *key, size_t keylen, uint64_t now);
/* auth_guard_fail - one more failure from key at now; returns its count in the window */
unsigned auth_guard_fail(struct auth_guard *g, const void *key, size_t keylen, uint64_t now);

#endif
