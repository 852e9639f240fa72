/*
 * smtpd_int.h - the SMTP server's internal structures (private to src/smtpd/)
 *
 * Owns:     declares struct smtpd (the server), struct smtpd_sess (one
 *           inbound connection), struct smtpd_txn (one mail transaction)
 *           and struct smtpd_commit (a pending queue commit).
 * Lifetime: smtpd from smtpd_new() to smtpd_free(); a session from accept
 *           to its deferred free (smtpd_sess_kill() then the reap event);
 *           a transaction from MAIL to its commit, RSET or the session's
 *           end; a commit handle from queue_file_commit() to its callback.
 * Errors:   see the functions.
 * Context:  event-loop thread.
 *
 * Files: smtpd.c (listeners, limits, the disk guard's timer, shutdown), smtpd_sess.c
 * (socket I/O seam, states, input loop, DATA/BDAT content, commit),
 * smtpd_cmd.c (the command table and handlers), smtpd_auth.c (AUTH), smtpd_tls.c (STARTTLS,
 * SMTPS, what a TLS session logs and records), smtpd_line.c,
 * smtpd_data.c and smtpd_proxy.c (the parsers of smtpd_proto.h).
 */
#ifndef MTAD_SMTPD_INT_H
#define MTAD_SMTPD_INT_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include "mail/config.h"
#include "smtpd/smtpd.h"
#include "smtpd/smtpd_proto.h"

struct bufferevent;
struct evbuffer;
struct evconnlistener;
struct event;
struct queue_file;
struct diskguard;
struct dkim_keys;
struct auth_users;
struct auth_worker;
struct auth_guard;
struct map;
struct smtpd_auth;
struct dkim_sign;

#define SMTPD_ERROR_LIMIT   20       /* Postfix's smtpd_hard_error_limit */
#define SMTPD_HOP_LIMIT     50       /* Postfix's hopcount_limit: Received: headers */
#define SMTPD_OUT_MAX       16384    /* stop running commands while this much output is unsent */
#define SMTPD_IN_MAX        65536    /* read high-water mark: input kept while commands wait */
#define SMTPD_SCRATCH       131072   /* DATA content is un-stuffed through this buffer */
#define SMTPD_RBUF          131072   /* DATA content read straight from a plain socket */
#define SMTPD_DIRECT_MAX    (1024 * 1024) /* ... at most this much per input callback */
#define SMTPD_DISK_STALE_US 3000000  /* MAIL without SIZE trusts a look this recent */
#define SMTPD_LINGER_SEC    2        /* after a 421: read and drop input this long before close */
#define SMTPD_PROXY_WAIT_SEC 10      /* SPEC §11.4: the whole PROXY header within this */

/* Session states; every change goes through smtpd_sess_enter(). */
enum smtpd_state {
	SMTPD_S_PROXY = 0,           /* at accept; from a proxy: reading its PROXY header */
	SMTPD_S_CMD,                 /* reading commands */
	SMTPD_S_DATA,                /* reading DATA content up to <CRLF>.<CRLF> */
	SMTPD_S_BDAT,                /* reading a BDAT chunk (or discarding one) */
	SMTPD_S_COMMIT,              /* waiting for the queue's sync: input is not read */
	SMTPD_S_AUTH,                /* waiting for the password check: input is not read */
	SMTPD_S_CLOSING,             /* sending the last replies, then close */
	SMTPD_S_LINGER,              /* write side shut; dropping input until EOF */
	SMTPD_S_DEAD,                /* on the reap list */
};

/* Commands, in the order of the disconnect line's counts (Postfix's order). */
enum smtpd_cmd_id {
	SMTPD_C_HELO = 0, SMTPD_C_EHLO, SMTPD_C_STARTTLS, SMTPD_C_AUTH, SMTPD_C_MAIL, SMTPD_C_RCPT,
	SMTPD_C_DATA, SMTPD_C_BDAT, SMTPD_C_RSET, SMTPD_C_NOOP, SMTPD_C_VRFY,
	SMTPD_C_HELP, SMTPD_C_QUIT, SMTPD_C_UNKNOWN,
	SMTPD_NCMD,
};

/* struct smtpd_sess flags */
enum {
	SMTPD_F_HELO      = 1u << 0,  /* HELO or EHLO accepted */
	SMTPD_F_ESMTP     = 1u << 1,  /* it was EHLO */
	SMTPD_F_DIRECT_IO = 1u << 2,  /* plain socket: replies are written at once (see smtpd_sess_flush) */
	SMTPD_F_WRITING   = 1u << 3,  /* EV_WRITE enabled: libevent sends the rest */
	SMTPD_F_OUT_FULL  = 1u << 4,  /* input paused until the output drains */
	SMTPD_F_IPCOUNT   = 1u << 5,  /* counted in the per-client table */
	SMTPD_F_QUIT      = 1u << 6,  /* QUIT received */
	SMTPD_F_BYE       = 1u << 7,  /* shutdown: close once the pending commit is answered */
	SMTPD_F_TLS       = 1u << 8,  /* TLS active: the handshake is done */
	SMTPD_F_LOGGED    = 1u << 9,  /* "connect from" logged: log the disconnect too */
	SMTPD_F_BUSY      = 1u << 10, /* inside sess_process(): closing waits for its end */
	SMTPD_F_EOF       = 1u << 11, /* the client shut its side: answer what came, then close */
	SMTPD_F_STARTTLS  = 1u << 12, /* 220 to STARTTLS queued: TLS starts once it is sent */
	SMTPD_F_HANDSHAKE = 1u << 13, /* TLS handshake in progress (STARTTLS or SMTPS) */
	SMTPD_F_SMTPS     = 1u << 14, /* accepted on smtps_listen: TLS from the first byte */
	SMTPD_F_SUBMISSION = 1u << 15, /* accepted on submission_listen (AUTH after STARTTLS) */
	SMTPD_F_AUTH      = 1u << 16, /* SMTP AUTH succeeded (smtpd_auth.c) */
};

/* struct smtpd_txn reject reasons, found while reading content */
enum {
	SMTPD_R_SIZE = 1u << 0,      /* over message_size_limit */
	SMTPD_R_IO   = 1u << 1,      /* queue file create or write failed */
};

struct smtpd_txn {
	char    *sender;             /* "" for <> */
	unsigned qflags;             /* QUEUE_F_8BITMIME, QUEUE_F_SMTPUTF8 */
	char    *rbuf;               /* recipients, each NUL-terminated, back to back */
	size_t   rlen, rcap;
	unsigned nrcpt;
	struct queue_file *qf;       /* from DATA / first BDAT until commit or abort */
	uint64_t size;               /* content bytes received */
	unsigned reject;             /* SMTPD_R_* */
	int      bdat;               /* a BDAT sequence has started */
	struct smtpd_data data;      /* DATA: end-of-data and dot state */
	struct smtpd_hdr hdr;        /* header section watch */
	struct dkim_sign *dkim;      /* DKIM signer (smtpd_dkim.c); NULL = not signing */
};

struct smtpd_commit {
	LIST_ENTRY(smtpd_commit) entry;
	struct smtpd *srv;           /* NULL once the server is freed */
	struct smtpd_sess *sess;     /* NULL once the session is gone */
	uint64_t size;
	unsigned nrcpt;
	char     sender[];           /* for the mail log's from= line */
};

union smtpd_sockaddr {
	struct sockaddr sa;
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
};

/*
 * The PROXY header being read (smtpd_sess_proxy_wait): straight from the
 * socket with MSG_PEEK, taking only the header's own bytes, so what
 * follows (commands, or an SMTPS client's TLS handshake) stays unread.
 */
struct smtpd_proxy_wait {
	struct event *ev;            /* readable, or the deadline */
	uint64_t deadline_us;        /* monotonic */
	size_t   len;                /* header bytes taken so far */
	unsigned char buf[SMTPD_PROXY_MAX];
};

struct smtpd_sess {
	TAILQ_ENTRY(smtpd_sess) entry;   /* srv->sessions, then srv->reap */
	struct smtpd *srv;
	struct bufferevent *bev;
	uint64_t id;
	enum smtpd_state state;
	unsigned flags;              /* SMTPD_F_* */
	unsigned nerrors;            /* 4xx/5xx replies since the last accepted message */
	unsigned last_code;          /* the code of the last reply (for command counts) */
	uint64_t bdat_left;          /* bytes of the current BDAT chunk still to read */
	uint64_t bdat_size;          /* the chunk's size, for its reply */
	const char *bdat_reply;      /* non-NULL: the chunk is discarded and this is the reply */
	int      bdat_last;
	enum smtpd_cmd_id last_cmd;  /* SMTPD_NCMD before the first command */
	struct smtpd_txn *txn;
	struct smtpd_commit *commit;
	struct smtpd_auth *auth;     /* AUTH exchange and login (smtpd_auth.c); NULL = none */
	struct smtpd_proxy_wait *proxy;  /* while the PROXY header is awaited */
	char    *helo;               /* the HELO/EHLO argument, copied */
	struct smtpd_line line;
	union smtpd_sockaddr peer;   /* the client (after PROXY: the real one) */
	char     addr[INET6_ADDRSTRLEN];
	uint16_t counts[SMTPD_NCMD][2];  /* [ok, total] per command */
};

struct smtpd {
	struct event_base *base;
	const struct config *cfg;    /* borrowed; replaced whole on SIGHUP */
	struct queue *q;
	struct maillog *ml;
	struct metrics *m;
	struct evconnlistener *lev[3 * CONFIG_MAX_LISTEN];  /* smtp, smtps, submission */
	size_t nlev;
	struct ssl_ctx_st *tls;      /* one reference; NULL = no TLS (smtpd_set_tls) */
	struct dkim_keys *dkim;      /* one reference; NULL = no signing (smtpd_dkim_set) */
	struct auth_users *users;    /* one reference; NULL = no AUTH (smtpd_set_users) */
	struct auth_worker *auth_worker;
	struct auth_guard *auth_guard;
	struct event *ev_reap;
	struct event *ev_disk;
	struct event *ev_relisten;
	TAILQ_HEAD(, smtpd_sess) sessions;
	TAILQ_HEAD(, smtpd_sess) reap;
	LIST_HEAD(, smtpd_commit) commits;
	size_t   nsess;              /* allocated sessions (live + on the reap list) */
	size_t   ncommits;
	uint64_t next_id;

	struct map *ipt;             /* client address text -> session count (untrusted clients) */

	/* replies built from the configuration */
	char    *greeting;
	size_t   greeting_len;
	char    *ehlo;               /* the whole multi-line EHLO reply */
	size_t   ehlo_len;
	char    *ehlo_starttls;      /* the same with STARTTLS: TLS on, not yet active */
	size_t   ehlo_starttls_len;
	struct timeval timeout;      /* smtpd_timeout, as a libevent common timeout */

	struct diskguard *disk;      /* data_dir's free space (SPEC §8); NULL if unwatchable */

	/* shutdown */
	int      stopping;
	void   (*done)(void *arg);
	void    *done_arg;

	time_t   date_sec;           /* the cached RFC 5322 date below is for this second */
	char     date[64];
	char     scratch[SMTPD_SCRATCH + 2];
	char     rbuf[SMTPD_RBUF];
};

/* smtpd.c */
enum { SMTPD_LISTEN_SMTP = 0, SMTPD_LISTEN_SMTPS = 1, SMTPD_LISTEN_SUBMISSION = 2 };
void smtpd_accept(struct smtpd *srv, int fd, const struct sockaddr *sa, socklen_t salen,
    int kind);
void smtpd_disk_check(struct smtpd *srv, uint64_t max_age_us);
/* smtpd_ip_acquire/_release - a session of the client whose address text (s->addr) is addr */
int smtpd_ip_acquire(struct smtpd *srv, const char *addr);
void smtpd_ip_release(struct smtpd *srv, const char *addr);
int smtpd_trusted(const struct smtpd *srv, const union smtpd_sockaddr *peer);
void smtpd_maybe_done(struct smtpd *srv);
const char *smtpd_sess_date(struct smtpd *srv);

/* smtpd_sess.c */
struct smtpd_sess *smtpd_sess_new(struct smtpd *srv, int fd, const struct sockaddr *sa,
    socklen_t salen);
void smtpd_sess_enter(struct smtpd_sess *s, enum smtpd_state st);
void smtpd_sess_reply(struct smtpd_sess *s, const char *text, size_t len);
void smtpd_sess_replyf(struct smtpd_sess *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void smtpd_sess_flush(struct smtpd_sess *s);
void smtpd_sess_resume(struct smtpd_sess *s);
void smtpd_sess_close(struct smtpd_sess *s);
void smtpd_sess_kill(struct smtpd_sess *s);
struct smtpd_sess *smtpd_sess_free(struct smtpd_sess *s);
void smtpd_sess_shutdown(struct smtpd_sess *s);
void smtpd_sess_start(struct smtpd_sess *s);
void smtpd_sess_proxy_wait(struct smtpd_sess *s);
void smtpd_sess_set_addr(struct smtpd_sess *s, const struct sockaddr *sa, socklen_t salen);
int smtpd_sess_begin_content(struct smtpd_sess *s);
void smtpd_sess_start_bdat(struct smtpd_sess *s, uint64_t size, int last, const char *reject);
struct smtpd_txn *smtpd_sess_txn_free(struct smtpd_txn *t);
const char *smtpd_sess_proto(const struct smtpd_sess *s);

/* smtpd_sess.c: the I/O seam for smtpd_tls.c */
void smtpd_sess_set_bev(struct smtpd_sess *s, struct bufferevent *bev);

/* smtpd_tls.c */
int smtpd_tls_start(struct smtpd_sess *s);
void smtpd_tls_done(struct smtpd_sess *s);
void smtpd_tls_failed(struct smtpd_sess *s, short what);
size_t smtpd_tls_received(const struct smtpd_sess *s, char *buf, size_t size);
void smtpd_tls_close(struct smtpd_sess *s);

/* smtpd_dkim.c */
void smtpd_dkim_begin(struct smtpd_sess *s);
size_t smtpd_dkim_prepend(struct smtpd_sess *s, const char *qid, char *buf, size_t len,
    size_t size);

/* smtpd_auth.c */
void smtpd_auth_server_free(struct smtpd *srv);
int smtpd_auth_ehlo(struct smtpd_sess *s);
void smtpd_auth_cmd(struct smtpd_sess *s, struct str arg);
int smtpd_auth_response(struct smtpd_sess *s, struct str line);
void smtpd_auth_reset(struct smtpd_sess *s);
void smtpd_auth_end(struct smtpd_sess *s);
int smtpd_auth_sender_ok(struct smtpd_sess *s, const char *sender);
void smtpd_auth_log_client(struct smtpd_sess *s, const char *qid);
const char *smtpd_auth_user(const struct smtpd_sess *s);

/* smtpd_cmd.c */
void smtpd_cmd_line(struct smtpd_sess *s, struct str line);
void smtpd_cmd_after(struct smtpd_sess *s);
const char *smtpd_cmd_name(enum smtpd_cmd_id id);
const char *smtpd_cmd_label(const struct smtpd_sess *s);

#define SMTPD_REPLY(s, lit) smtpd_sess_reply((s), lit, sizeof(lit) - 1)

#endif
