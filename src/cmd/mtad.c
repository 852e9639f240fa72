/*
 * mtad.c - main() of the daemon: configuration, start-up checks, privileges,
 * the event loop and the signals that stop and reload it
 *
 * Owns:     the event base, the current configuration and every component.
 * Lifetime: the process.
 * Errors:   start-up failures print the SPEC §3 text on stderr and exit 1.
 * Context:  the event-loop thread (the queue starts its own fsync thread).
 */
#include "auth/auth.h"
#include "dkim/dkim.h"
#include "http/http.h"
#include "lib/log.h"
#include "lib/priv.h"
#include "lib/util.h"
#include "mail/config.h"
#include "mail/maillog.h"
#include "mail/relay_map.h"
#include "mail/dest_policy.h"
#include "metrics/metrics.h"
#include "tls/tls.h"
#include "queue/queue.h"
#include "sched/sched.h"
#include "smtpd/smtpd.h"

#include <errno.h>
#include <stdarg.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#define MTAD_VERSION "0.1.0"
/* A drain ended with mail still in data_dir (EX_TEMPFAIL): nothing lost, not empty. */
#define MTAD_EX_LEFT 75

extern char **environ;

struct mtad {
	struct event_base *base;
	struct config *cfg;
	struct config *old_cfg;        /* kept until the next reload: borrowed by sessions */
	struct maillog *ml;
	struct queue *q;
	struct smtpd *smtpd;
	struct sched *sched;
	struct http *http;
	struct ssl_ctx_st *tls;        /* server context (SMTP, SMTPS, HTTPS); NULL = TLS off */
	struct ssl_ctx_st *tls_client; /* outbound STARTTLS */
	struct dkim_keys *dkim;        /* dkim_key_table; NULL = no signing */
	struct auth_users *users;      /* smtpd_users_file; NULL = no SMTP AUTH */
	struct metrics metrics;
	struct event *ev_term, *ev_int, *ev_hup, *ev_pipe;
	struct queue_recovery *recovery; /* the queue is still being read (in slices) */
	struct event *ev_recover;
	int chown_fd;                    /* priv_chown_sub_start(): EOF when queue/ is theirs; -1 */
	int stopping;
	int draining;                  /* SIGTERM with drain_relay, or mtactl drain */
	int exit_status;               /* 0, or MTAD_EX_LEFT after a drain that left mail */
	int smtpd_done, sched_done;
	int check;                     /* -t: check only (no mail-log line on error) */
	int owner_found;               /* started as root: owner_uid/gid is mail_owner */
	uid_t owner_uid;
	gid_t owner_gid;
};

static void
usage(void)
{
	fprintf(stderr, "usage: mtad [-c FILE] [-t [--print]] [-d]\n       mtad -V\n");
	exit(2);
}

static void maillog_path(const struct config *cfg, char *buf, size_t size);

/*
 * startup_log - SPEC §3: a start-up error goes "to the log when it can":
 * the mail log once the configuration is known and the log share works
 * (opened for this line if start-up has not got that far; never with -t).
 */
static void
startup_log(const struct mtad *d, const char *text)
{
	char path[4096], err[256];
	struct maillog *ml;
	struct stat st;

	if (d == NULL || d->cfg == NULL || d->check)
		return;
	if (d->ml != NULL) {
		maillog_fatal(d->ml, text);
		return;
	}
	maillog_path(d->cfg, path, sizeof(path));
	/* only into a log share that is there: never create log_dir for this */
	if (path[0] == '\0' || stat(d->cfg->log_dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return;
	if ((ml = maillog_open(path, d->cfg->hostname, err, sizeof(err))) == NULL)
		return;
	maillog_set_stdout(ml, d->cfg->maillog_stdout ? STDOUT_FILENO : -1);
	maillog_fatal(ml, text);
	maillog_close(ml);
}

/*
 * startup_error - the SPEC §3 text (a format) on stderr, one line, and in
 * the mail log when it works (startup_log); exit non-zero. d may be NULL.
 */
static _Noreturn void __attribute__((format(printf, 2, 3)))
startup_error(const struct mtad *d, const char *fmt, ...)
{
	char text[2048];
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(text, sizeof(text), fmt, ap) < 0)
		util_strlcpy(text, fmt, sizeof(text));
	va_end(ap);
	fprintf(stderr, "%s\n", text);
	startup_log(d, text);
	exit(1);
}

static void
maillog_path(const struct config *cfg, char *buf, size_t size)
{
	buf[0] = '\0';
	if (!cfg->logs_enabled || cfg->maillog_filename[0] == '\0')
		return;
	const char *name = cfg->maillog_filename;
	while (*name == '/')
		name++;
	if (util_bsnprintf(buf, size, "%s/%s", cfg->log_dir, name) < 0)
		buf[0] = '\0';
}

/*
 * owner_lookup - when root: the mail_owner user to run as (SPEC §10). A
 * missing user is a start-up error naming it: falling back to another
 * user (nobody, shared with other daemons) would hand it the queue.
 * mail_owner = nobody must be said explicitly. Root itself is refused.
 */
static void
owner_lookup(struct mtad *d)
{
	struct passwd *pw;

	if (geteuid() != 0)
		return;
	errno = 0;
	pw = getpwnam(d->cfg->mail_owner);
	if (pw == NULL)
		startup_error(d, "Error: failed to pre-configure MTA: mail_owner: no such user '%s' "
		    "(create it, e.g. useradd --system --home-dir /nonexistent "
		    "--shell /usr/sbin/nologin %s; or set mail_owner = nobody)",
		    d->cfg->mail_owner, d->cfg->mail_owner);
	if (pw->pw_uid == 0)
		startup_error(d, "Error: failed to pre-configure MTA: mail_owner: '%s' has uid 0; "
		    "mtad must not keep root's powers", d->cfg->mail_owner);
	d->owner_uid = pw->pw_uid;
	d->owner_gid = pw->pw_gid;
	d->owner_found = 1;
}

/*
 * drop_privileges - when root: give data_dir (and the mail log) to
 * mail_owner, then setgid/setuid to it. Sockets and keys are already open.
 * Neither chown follows a link or is fooled by one mail_owner placed: see
 * lib/priv.h.
 */
static void
drop_privileges(struct mtad *d)
{
	char path[4096];
	int n;

	if (!d->owner_found)
		return;
	/*
	 * queue/ may hold millions of files: its walk runs in a process of its
	 * own while mtad serves (SPEC §11.5), and recovery reads queue/ once it
	 * is over (on_chown_done). It starts first: whether mail_owner vouched
	 * for queue/ is told by the owners of queue/ and queue.owned, before the
	 * walk of data_dir gives both to mail_owner.
	 */
	if ((d->chown_fd = priv_chown_sub_start(d->cfg->data_dir, "queue", d->owner_uid,
	    d->owner_gid)) == -1) {
		log_warn("cannot hand %s/queue to %s in the background; doing it now",
		    d->cfg->data_dir, d->cfg->mail_owner);
		n = priv_chown_tree(d->cfg->data_dir, d->owner_uid, d->owner_gid, NULL);
	} else {
		if (d->chown_fd >= 0)
			log_info("%s/queue: checking its files' owner in the background",
			    d->cfg->data_dir);
		n = priv_chown_tree(d->cfg->data_dir, d->owner_uid, d->owner_gid, "queue");
	}
	if (n < 0)
		log_warn("cannot hand %s to %s", d->cfg->data_dir, d->cfg->mail_owner);
	else if (n > 0)
		log_warnx("%s: %d entr%s left to its owner (see above)", d->cfg->data_dir, n,
		    n == 1 ? "y" : "ies");
	/* The mail log file and the directories mtad made for it, so that a
	 * reopen after rotation (SIGHUP) can create the file again. */
	maillog_path(d->cfg, path, sizeof(path));
	if (path[0] != '\0') {
		const char *rel = path + strlen(d->cfg->log_dir);

		while (*rel == '/')
			rel++;
		if (priv_chown_path(d->cfg->log_dir, rel, d->owner_uid, d->owner_gid) < 0)
			log_warn("cannot hand %s to %s", path, d->cfg->mail_owner);
	}
	if (setgroups(0, NULL) < 0 || setgid(d->owner_gid) < 0 || setuid(d->owner_uid) < 0)
		fatal("cannot drop privileges to %s", d->cfg->mail_owner);
	if (setuid(0) == 0)
		fatalx("privileges were not dropped");
	log_info("running as %s (uid %u)", d->cfg->mail_owner, (unsigned)d->owner_uid);
}

static void
apply_timezone(const struct config *cfg)
{
	if (cfg->timezone[0] == '\0')
		return;
	setenv("TZ", cfg->timezone, 1);
	tzset();
}

static void
maybe_exit(struct mtad *d)
{
	if (d->smtpd_done && d->sched_done)
		event_base_loopexit(d->base, NULL);
}

static void smtpd_stopped(void *arg) { struct mtad *d = arg; d->smtpd_done = 1; maybe_exit(d); }
static void sched_stopped(void *arg) { struct mtad *d = arg; d->sched_done = 1; maybe_exit(d); }

/* stop_now - no more deliveries: abandon running ones safely and exit when idle */
static void
stop_now(struct mtad *d)
{
	if (d->stopping)
		return;
	d->stopping = 1;
	if (!d->draining)
		smtpd_shutdown(d->smtpd, smtpd_stopped, d);
	sched_ops_shutdown(d->sched, sched_stopped, d);
}

/* drained - the drain is over (sched_drain.c logged the numbers): stop */
static void
drained(void *arg, const struct sched_drain_result *r)
{
	struct mtad *d = arg;

	if (r->left > 0) {
		d->exit_status = MTAD_EX_LEFT;
		log_warnx("drain: stopping with %llu message(s) left in %s: they are delivered "
		    "when an mtad runs on this data_dir again", r->left, d->cfg->data_dir);
	}
	stop_now(d);
}

/*
 * drain_start - SPEC §11.4: stop accepting (listeners closed, sessions
 * ended as on a stop), keep delivering for drain_timeout, then hand the
 * rest to drain_relay; the process exits when that is over.
 */
static void
drain_start(struct mtad *d, const char *why)
{
	if (d->draining || d->stopping)
		return;
	d->draining = 1;
	metrics_set_unready(&d->metrics, METRICS_UNREADY_DRAINING, 1);      /* /readyz: 503 */
	log_info("%s: draining: no new mail; delivering for up to %u s%s%s", why,
	    d->cfg->drain_timeout, d->cfg->drain_relay.set ? ", then handing over to " : "",
	    d->cfg->drain_relay.set ? d->cfg->drain_relay.host : "");
	smtpd_shutdown(d->smtpd, smtpd_stopped, d);
	if (sched_drain(d->sched, &d->cfg->drain_relay, d->cfg->drain_timeout, drained, d) < 0) {
		log_warnx("drain: cannot start; stopping");
		stop_now(d);
	}
}

/* on_drain - POST /api/drain (mtactl drain) */
static void
on_drain(void *arg)
{
	drain_start(arg, "mtactl drain");
}

/*
 * on_stop - SIGTERM/SIGINT. With drain_relay set, SIGTERM drains (a
 * container being stopped, a pod scaled away); without, or on a second
 * signal, or on SIGINT, stop now: the queue stays on disk for the next start.
 */
static void
on_stop(evutil_socket_t sig, short what, void *arg)
{
	struct mtad *d = arg;

	(void)what;
	if (sig == SIGTERM && d->cfg->drain_relay.set && !d->draining && !d->stopping) {
		drain_start(d, "SIGTERM");
		return;
	}
	if (d->stopping)
		return;
	log_info("signal %d: stopping", (int)sig);
	stop_now(d);
}

/* print_relay_map - -t --print: the sender_relay_map rules, as comments (checked already) */
static void
print_relay_map(const struct config *cfg)
{
	char err[512];
	struct relay_map *m;

	if (cfg->sender_relay_map[0] == '\0' ||
	    (m = relay_map_load(config_key_store(cfg), cfg->sender_relay_map, err,
	    sizeof(err))) == NULL)
		return;
	relay_map_print(m, STDOUT_FILENO);
	relay_map_free(m);
}

/* print_dest_policy - -t --print: the destination_policy_file rules, as comments (checked already) */
static void
print_dest_policy(const struct config *cfg)
{
	char err[600];
	struct dest_policy *p;

	if (cfg->destination_policy_file[0] == '\0' ||
	    (p = dest_policy_read(cfg, err, sizeof(err))) == NULL)
		return;
	dest_policy_print(p, STDOUT_FILENO);
	dest_policy_free(p);
}

/*
 * tls_reload - SIGHUP: a new server context from the key store for new
 * sessions (SMTP, SMTPS, HTTPS); sessions running keep theirs (each SSL
 * holds its context). A pair that cannot be used keeps the old one.
 * Switching TLS on or off needs a restart (the SMTPS listeners).
 */
static void
tls_reload(struct mtad *d, const struct config *ncfg)
{
	char err[1024], desc[512];
	struct ssl_ctx_st *ctx;

	if (ncfg->ssl_disabled != d->cfg->ssl_disabled) {
		log_warnx("ssl_disabled changes need a restart; TLS stays %s",
		    d->tls != NULL ? "on" : "off");
		return;
	}
	if (d->tls == NULL)
		return;
	ctx = tls_server_new(config_key_store(ncfg), ncfg->ssl_key_file, ncfg->ssl_cert_file,
	    d->tls, err, sizeof(err));
	if (ctx == NULL) {
		log_warnx("TLS: keeping the current key and certificate: %s", err);
		return;
	}
	smtpd_set_tls(d->smtpd, ctx);
	http_set_tls(d->http, ctx);
	tls_ctx_free(d->tls);        /* sessions still using it hold their own reference */
	d->tls = ctx;
	tls_cert_describe(ctx, desc, sizeof(desc));
	log_info("TLS: key and certificate reloaded (%s)", desc);
}

/*
 * dkim_load - the DKIM key table of cfg (NULL when none is configured);
 * -1 with the SPEC §3 text in err when the table or a key is unusable.
 */
static int
dkim_load(const struct config *cfg, struct dkim_keys **out, char *err, size_t errlen)
{
	char why[1024];

	*out = NULL;
	if (cfg->dkim_key_table[0] == '\0')
		return 0;
	if ((*out = dkim_keys_load(config_key_store(cfg), cfg->dkim_key_table, why,
	    sizeof(why))) == NULL) {
		if (util_bsnprintf(err, errlen, "Error: failed to pre-configure MTA: %s", why) < 0)
			util_strlcpy(err, "Error: failed to pre-configure MTA: dkim_key_table", errlen);
		return -1;
	}
	return 0;
}

/* dkim_reload - SIGHUP: the new key table for new messages; a bad one keeps the old */
static void
dkim_reload(struct mtad *d, const struct config *ncfg)
{
	struct dkim_keys *k;
	char err[1200];

	if (dkim_load(ncfg, &k, err, sizeof(err)) < 0) {
		log_warnx("DKIM: keeping the current keys: %s", err);
		return;
	}
	smtpd_dkim_set(d->smtpd, k);
	dkim_keys_unref(d->dkim);
	d->dkim = k;
	if (k != NULL)
		log_info("DKIM: %zu key(s) loaded from %s", dkim_keys_count(k), ncfg->dkim_key_table);
}

/* users_load - the SMTP AUTH users of cfg (NULL when none); -1 with the SPEC §3 text */
static int
users_load(const struct config *cfg, struct auth_users **out, char *err, size_t errlen)
{
	char why[1024];

	*out = NULL;
	if (cfg->smtpd_users_file[0] == '\0')
		return 0;
	if ((*out = auth_users_load(config_key_store(cfg), cfg->smtpd_users_file, why,
	    sizeof(why))) == NULL) {
		if (util_bsnprintf(err, errlen, "Error: failed to pre-configure MTA: %s", why) < 0)
			util_strlcpy(err, "Error: failed to pre-configure MTA: smtpd_users_file", errlen);
		return -1;
	}
	return 0;
}

/* users_reload - SIGHUP: the users file again; a bad one keeps the running table */
static void
users_reload(struct mtad *d, const struct config *ncfg)
{
	struct auth_users *u;
	char err[1200];

	if (users_load(ncfg, &u, err, sizeof(err)) < 0) {
		log_warnx("AUTH: keeping the current users: %s", err);
		return;
	}
	if (smtpd_set_users(d->smtpd, u) < 0) {
		log_warnx("AUTH: cannot start the password-check threads; keeping the current users");
		auth_users_unref(u);
		return;
	}
	auth_users_unref(d->users);
	d->users = u;
	if (u != NULL)
		log_info("AUTH: %zu user(s) loaded from %s", auth_users_count(u), ncfg->smtpd_users_file);
}

/* on_hup - re-read the configuration; what needs a restart (listeners, data_dir) is kept */
static void
on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct mtad *d = arg;
	char err[1024];
	struct config *ncfg;

	(void)sig; (void)what;
	ncfg = config_load_default(d->cfg->path, environ, err, sizeof(err));
	if (ncfg == NULL || config_check_environment(ncfg, err, sizeof(err)) < 0) {
		log_warnx("reload failed, keeping the running configuration: %s", err);
		config_free(ncfg);
		return;
	}
	if (strcmp(ncfg->data_dir, d->cfg->data_dir) != 0)
		log_warnx("data_dir changes need a restart; keeping %s", d->cfg->data_dir);
	apply_timezone(ncfg);
	config_check_warnings(ncfg);
	tls_reload(d, ncfg);
	dkim_reload(d, ncfg);
	users_reload(d, ncfg);
	smtpd_set_config(d->smtpd, ncfg);
	sched_ops_set_config(d->sched, ncfg);
	queue_set_active_limit(d->q, ncfg->queue_active_limit);
	http_set_config(d->http, ncfg);
	if (maillog_reopen(d->ml) < 0)
		log_warn("cannot reopen the mail log");
	maillog_set_stdout(d->ml, ncfg->maillog_stdout ? STDOUT_FILENO : -1);
	config_free(d->old_cfg);
	d->old_cfg = d->cfg;
	d->cfg = ncfg;
	log_info("configuration reloaded from %s", ncfg->path);
}

static void
on_recovered(void *arg, struct queue_msg *m)
{
	struct mtad *d = arg;

	sched_add(d->sched, m);
}

#define RECOVER_SLICE_FILES 512        /* queue files read per loop pass at most */
#define RECOVER_SLICE_US    20000      /* and for no longer than this */

/*
 * on_recover_slice - read the next slice of the queue, then let the loop
 * serve SMTP, HTTP and deliveries before the next one (SPEC §11.5: the
 * listeners accept at once, recovery continues in the background).
 */
static void
on_recover_slice(evutil_socket_t fd, short what, void *arg)
{
	struct mtad *d = arg;
	uint64_t t0 = util_mono_us();
	int rc = 0;

	(void)fd;
	(void)what;
	/*
	 * The loop runs: the listeners accept mail, so /readyz says 200 from
	 * the first slice on, while the rest of the queue is still being read.
	 */
	metrics_set_unready(&d->metrics, METRICS_UNREADY_RECOVERING, 0);
	if (d->recovery == NULL || d->stopping || d->chown_fd >= 0)
		return;         /* (queue/ is not all mail_owner's yet: on_chown_done goes on) */
	while (rc == 0 && util_mono_us() - t0 < RECOVER_SLICE_US)
		rc = queue_recover_step(d->recovery, RECOVER_SLICE_FILES / 8);
	if (rc == 0) {
		/* a zero timer, not event_active(): the loop polls the sockets first */
		struct timeval now = { 0, 0 };

		evtimer_add(d->ev_recover, &now);
		return;
	}
	if (rc < 0)
		log_warnx("queue recovery in %s ran out of memory: the rest stays on disk "
		    "until the next start", d->cfg->data_dir);
	d->recovery = queue_recover_finish(d->recovery);
	metrics_set_unready(&d->metrics, METRICS_UNREADY_RECOVERING, 0);
}

/* on_chown_done - the walk of queue/ is over: recovery reads it now */
static void
on_chown_done(evutil_socket_t fd, short what, void *arg)
{
	struct mtad *d = arg;

	(void)what;
	close(fd);
	d->chown_fd = -1;
	if (d->ev_recover != NULL)
		event_active(d->ev_recover, EV_TIMEOUT, 0);
}

int
main(int argc, char **argv)
{
	struct mtad d;
	const char *conf = NULL;
	int check = 0, print = 0, debug = 0;
	char err[2048], path[4096];

	memset(&d, 0, sizeof(d));
	d.chown_fd = -1;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			conf = argv[++i];
		else if (strcmp(argv[i], "-t") == 0)
			check = 1;
		else if (strcmp(argv[i], "--print") == 0)
			print = 1;
		else if (strcmp(argv[i], "-d") == 0)
			debug = 1;
		else if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0) {
			printf("mtad %s\n", MTAD_VERSION);
			return 0;
		} else
			usage();
	}
	log_init("mtad", debug ? ~0u : 0);
	d.check = check;

	/* SPEC §1: without -c, /etc/mtad/mtad.conf or else MTA_* alone */
	d.cfg = config_load_default(conf, environ, err, sizeof(err));
	if (d.cfg == NULL)
		startup_error(&d, "%s", err);
	if (config_check_environment(d.cfg, err, sizeof(err)) < 0)
		startup_error(&d, "%s", err);
	owner_lookup(&d);
	if (dkim_load(d.cfg, &d.dkim, err, sizeof(err)) < 0)
		startup_error(&d, "%s", err);
	if (users_load(d.cfg, &d.users, err, sizeof(err)) < 0)
		startup_error(&d, "%s", err);
	if (check) {
		d.dkim = dkim_keys_unref(d.dkim);
		d.users = auth_users_unref(d.users);
		config_check_warnings(d.cfg);
		if (print) {
			config_print(d.cfg, STDOUT_FILENO);
			print_relay_map(d.cfg);
			print_dest_policy(d.cfg);
		}
		config_free(d.cfg);
		return 0;
	}
	/*
	 * TLS: the key store reader keeps read access to the key store for
	 * SIGHUP (forked before any thread exists, as mail_owner with
	 * CAP_DAC_READ_SEARCH alone); the server context is made now, as
	 * root, and handed to smtpd and http once they exist.
	 */
	if (!d.cfg->ssl_disabled || d.cfg->dkim_key_table[0] != '\0' ||
	    d.cfg->smart_relay_password_file[0] != '\0' || d.cfg->smart_relay_ca_file[0] != '\0' ||
	    d.cfg->sender_relay_map[0] != '\0' ||
	    (d.cfg->destination_policy_file[0] != '\0' && config_key_store(d.cfg)[0] != '\0') ||
	    d.cfg->smtpd_users_file[0] != '\0') {
		if (tls_keys_helper_start(config_key_store(d.cfg), d.owner_uid, d.owner_gid,
		    err, sizeof(err)) < 0)
			startup_error(&d, "%s", err);
	}
	if (!d.cfg->ssl_disabled) {
		char desc[512];
		d.tls = tls_server_new(config_key_store(d.cfg), d.cfg->ssl_key_file,
		    d.cfg->ssl_cert_file, NULL, err, sizeof(err));
		if (d.tls == NULL)
			startup_error(&d, "%s", err);
		tls_cert_describe(d.tls, desc, sizeof(desc));
		log_info("TLS: STARTTLS and SMTPS with %s", desc);
	}
	if ((d.tls_client = tls_client_new(err, sizeof(err))) == NULL)
		log_warnx("TLS: no outbound STARTTLS: %s", err);
	apply_timezone(d.cfg);
	config_check_warnings(d.cfg);

	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() < 0)
		fatalx("libevent has no thread support");
	if ((d.base = event_base_new()) == NULL)
		fatalx("cannot create the event loop");
	d.metrics.start_us = util_now_us();
	/* Before any socket is bound: a SIGTERM that arrives once clients can
	 * connect is held by libevent until the loop runs, never fatal. */
	d.ev_term = evsignal_new(d.base, SIGTERM, on_stop, &d);
	d.ev_int = evsignal_new(d.base, SIGINT, on_stop, &d);
	d.ev_hup = evsignal_new(d.base, SIGHUP, on_hup, &d);
	if (d.ev_term == NULL || d.ev_int == NULL || d.ev_hup == NULL ||
	    evsignal_add(d.ev_term, NULL) < 0 || evsignal_add(d.ev_int, NULL) < 0 ||
	    evsignal_add(d.ev_hup, NULL) < 0)
		fatalx("cannot install signal handlers");

	maillog_path(d.cfg, path, sizeof(path));
	d.ml = maillog_open(path, d.cfg->hostname, err, sizeof(err));
	if (d.ml == NULL)
		startup_error(&d, "Error: failed to mount log share. (%s)", err);
	maillog_set_stdout(d.ml, d.cfg->maillog_stdout ? STDOUT_FILENO : -1);
	if (mkdir(d.cfg->data_dir, 0700) < 0 && errno != EEXIST)
		startup_error(&d, "Error: failed to pre-configure MTA: "
		    "data_dir %s: %s", d.cfg->data_dir, strerror(errno));
	d.q = queue_open(d.base, d.cfg->data_dir, err, sizeof(err));
	if (d.q == NULL)
		startup_error(&d, "Error: failed to pre-configure MTA: "
		    "data_dir: %s", err);
	d.smtpd = smtpd_new(d.base, d.cfg, d.q, d.ml, &d.metrics, err, sizeof(err));
	if (d.smtpd == NULL)
		startup_error(&d, "Error: failed to start MTA server: %s", err);
	smtpd_set_tls(d.smtpd, d.tls);
	smtpd_dkim_set(d.smtpd, d.dkim);
	if (smtpd_set_users(d.smtpd, d.users) < 0)
		startup_error(&d, "Error: failed to start MTA server: cannot start the password-check threads");
	if (d.users != NULL)
		log_info("AUTH: %zu user(s) from %s", auth_users_count(d.users), d.cfg->smtpd_users_file);
	if (d.dkim != NULL)
		log_info("DKIM: signing with %zu key(s) from %s", dkim_keys_count(d.dkim),
		    d.cfg->dkim_key_table);
	d.http = http_new(d.base, d.cfg, d.q, &d.metrics, err, sizeof(err));
	if (d.http == NULL)
		startup_error(&d, "Error: failed to initialize UI backend: %s", err);
	if (d.tls != NULL)
		http_set_tls(d.http, d.tls);     /* SPEC §6: HTTPS when TLS is on */
	drop_privileges(&d);

	d.sched = sched_new(d.base, d.cfg, d.q, d.ml, &d.metrics, err, sizeof(err));
	if (d.sched == NULL)
		startup_error(&d, "Error: failed to pre-configure MTA: %s", err);
	http_set_sched(d.http, d.sched);
	http_set_drain(d.http, on_drain, &d);
	sched_tls_set(d.sched, d.tls_client);    /* SPEC §5: STARTTLS whenever offered */
	queue_set_active_limit(d.q, d.cfg->queue_active_limit);
	sched_set_window(d.sched, d.q);
	if ((d.recovery = queue_recover_start(d.q, on_recovered, &d)) == NULL)
		fatal("queue recovery in %s failed", d.cfg->data_dir);
	metrics_set_unready(&d.metrics, METRICS_UNREADY_RECOVERING, 1);   /* /readyz: 503 until the loop runs */
	queue_set_listener(d.q, on_recovered, &d);
	if ((d.ev_recover = evtimer_new(d.base, on_recover_slice, &d)) == NULL)
		fatalx("cannot create the recovery event");
	/* the first slice once the loop runs: the listeners take mail meanwhile */
	event_active(d.ev_recover, EV_TIMEOUT, 0);
	if (d.chown_fd >= 0 && event_base_once(d.base, d.chown_fd, EV_READ, on_chown_done, &d,
	    NULL) < 0)
		fatalx("cannot wait for the walk of %s/queue", d.cfg->data_dir);
	log_info("mtad %s started: the queue is recovered in the background (a window of %u "
	    "message(s) in memory)", MTAD_VERSION, d.cfg->queue_active_limit);
	event_base_dispatch(d.base);
	d.recovery = queue_recover_finish(d.recovery);
	event_free(d.ev_recover);

	/* Stopped: every acknowledged message is on disk; nothing else to save. */
	d.http = http_free(d.http);
	d.smtpd = smtpd_free(d.smtpd);
	d.sched = sched_free(d.sched);
	d.tls = tls_ctx_free(d.tls);
	d.tls_client = tls_ctx_free(d.tls_client);
	d.dkim = dkim_keys_unref(d.dkim);
	d.users = auth_users_unref(d.users);
	d.q = queue_close(d.q);
	d.ml = maillog_close(d.ml);
	event_free(d.ev_term);
	event_free(d.ev_int);
	event_free(d.ev_hup);
	event_base_free(d.base);
	config_free(d.old_cfg);
	config_free(d.cfg);
	log_info("stopped");
	return d.exit_status;
}
