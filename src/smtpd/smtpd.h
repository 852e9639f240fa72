/*
 * smtpd.h - the inbound SMTP server (public interface of src/smtpd/)
 *
 * Owns:     the SMTP listeners, every inbound session, the per-client-IP
 *           session table and the disk-space guard.
 * Lifetime: smtpd_new() to smtpd_free(). Listening sockets are bound in
 *           smtpd_new() (before privileges are dropped).
 * Errors:   smtpd_new() returns NULL with "reason" text in err (main turns
 *           it into "Error: failed to start MTA server: <reason>").
 * Context:  event-loop thread.
 */
#ifndef MTAD_SMTPD_H
#define MTAD_SMTPD_H

#include <stddef.h>

struct event_base;
struct config;
struct queue;
struct maillog;
struct metrics;
struct smtpd;
struct ssl_ctx_st;
struct dkim_keys;

/* --- life cycle (smtpd.c) ------------------------------------------------ */

struct smtpd *smtpd_new(struct event_base *base, const struct config *cfg,
    struct queue *q, struct maillog *ml, struct metrics *m, char *err, size_t errlen);
/*
 * smtpd_shutdown - stop accepting; idle sessions get "421 4.3.2 Service
 * shutting down" and close; sessions mid-transaction finish their current
 * commit first. done(arg) runs once no session is left.
 */
void smtpd_shutdown(struct smtpd *s, void (*done)(void *arg), void *arg);
struct smtpd *smtpd_free(struct smtpd *s);

/* --- what SIGHUP changes for new sessions -------------------------------- */

/* smtpd_set_config - new sessions use cfg (listeners are not rebound); cfg borrowed */
void smtpd_set_config(struct smtpd *s, const struct config *cfg);
/*
 * smtpd_set_tls - STARTTLS and SMTPS use ctx for new sessions from now on
 * (a reference is taken; the previous context is released, and sessions
 * already running keep theirs). NULL = no TLS: STARTTLS is not offered
 * and SMTPS connections are closed. SMTPS listeners (smtps_listen) are
 * bound by smtpd_new() when cfg->ssl_disabled is no. (smtpd_tls.c)
 */
void smtpd_set_tls(struct smtpd *s, struct ssl_ctx_st *ctx);
/*
 * smtpd_dkim_set - messages whose content starts from now on are signed
 * with keys (a reference is taken, the previous table released; messages
 * in progress keep theirs). NULL = no signing. (smtpd_dkim.c)
 */
void smtpd_dkim_set(struct smtpd *s, struct dkim_keys *keys);

/*
 * smtpd_set_users - SMTP AUTH (PLAIN, LOGIN) is offered after TLS on
 * submission_listen and smtps_listen with these users from now on (a
 * reference is taken; logged-in sessions keep their login). NULL = no
 * AUTH. The first call starts the password-check threads: -1 when they
 * cannot be started. (smtpd_auth.c)
 */
struct auth_users;
int smtpd_set_users(struct smtpd *s, struct auth_users *users);

#endif
