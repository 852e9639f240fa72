/*
 * smtpc_int.h - private parts of src/smtpc/: the session struct shared by
 *               smtpc.c (the protocol) and smtpc_tls.c (STARTTLS), and the
 *               reply parser
 *
 * Owns:     struct smtpc (one outbound session) and struct smtpc_rparser,
 *           embedded in a session (or a fuzzer).
 * Lifetime: a session from smtpc_connect() to smtpc_free(); a parser from
 *           smtpc_reply_init(), resetting itself after each reply.
 * Errors:   a malformed or oversized reply is SMTPC_R_INVALID: the caller
 *           drops the connection (the stream cannot be trusted any more).
 * Context:  any thread; no globals.
 */
#ifndef MTAD_SMTPC_INT_H
#define MTAD_SMTPC_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "smtpc/smtpc.h"

struct bufferevent;
struct event;

#define SMTPC_LINE_MAX  2048     /* octets of one reply line, without CRLF */
#define SMTPC_LINES_MAX 100      /* lines of one reply */

enum smtpc_rstatus {
	SMTPC_R_NEED_MORE,           /* all input eaten, no complete line yet */
	SMTPC_R_LINE,                /* a continuation line ("250-...") is complete */
	SMTPC_R_DONE,                /* the last line is in: p->reply is the reply */
	SMTPC_R_INVALID,             /* malformed line, too long, too many lines */
};

struct smtpc_rparser {
	char   line[SMTPC_LINE_MAX + 2];   /* the line being collected */
	size_t linelen;
	int    nlines;                     /* lines of the current reply so far */
	int    lineno;                     /* number of the last complete line (1 = first) */
	int    code;                       /* of the first line */
	int    has_dsn;                    /* the first line carried an enhanced code */
	size_t textlen;                    /* of reply.text */
	const char *ltext;                 /* last line's text after "NNN-" (into line) */
	size_t ltextlen;
	struct smtpc_reply reply;
};

enum smtpc_state {
	SMTPC_S_CONNECTING,
	SMTPC_S_GREETING,
	SMTPC_S_EHLO,
	SMTPC_S_HELO,
	SMTPC_S_STARTTLS,              /* waiting for the 220 to STARTTLS */
	SMTPC_S_TLS,                   /* TLS handshake (RFC 3207 §4, or RFC 8314 implicit TLS) */
	SMTPC_S_AUTH,                  /* SMTP AUTH exchange (RFC 4954) */
	SMTPC_S_READY,
	SMTPC_S_TXN,
	SMTPC_S_CONTENT,
	SMTPC_S_QUIT,
	SMTPC_S_DEAD,
};

/* EHLO keywords we act on (RFC 5321 §4.1.1.1, RFC 2920, 1870, 6152, 6531, 3207, 3030) */
enum {
	SMTPC_EXT_PIPELINING = 1u << 0,
	SMTPC_EXT_SIZE       = 1u << 1,
	SMTPC_EXT_8BITMIME   = 1u << 2,
	SMTPC_EXT_SMTPUTF8   = 1u << 3,
	SMTPC_EXT_STARTTLS   = 1u << 4,
	SMTPC_EXT_CHUNKING   = 1u << 5,
	SMTPC_EXT_ENHANCED   = 1u << 6,
	SMTPC_EXT_DSN        = 1u << 7,
	SMTPC_EXT_AUTH       = 1u << 8,
};

/* SASL mechanisms (the EHLO AUTH line) */
enum {
	SMTPC_MECH_PLAIN   = 1u << 0,
	SMTPC_MECH_LOGIN   = 1u << 1,
	SMTPC_MECH_XOAUTH2 = 1u << 2,
};

/* RFC 4954 §4: an AUTH command line may be 12288 octets; our own are no longer */
#define SMTPC_AUTH_LINE_MAX 12288
#define SMTPC_AUTH_USER_MAX 512
#define SMTPC_AUTH_SECRET_MAX 4096

/* The client side of one SASL exchange: pure, no I/O (fuzz/fuzz_smtpc_auth.c drives it). */
struct smtpc_sasl {
	unsigned    mech;                /* SMTPC_MECH_*: the one in use */
	int         step;                /* 0 = nothing sent yet */
	const char *user, *secret;       /* borrowed */
	char        why[SMTPC_REPLY_MAX];/* XOAUTH2: the server's decoded error of a 334 */
};

enum smtpc_sasl_rc {
	SMTPC_SASL_SEND,                 /* out holds the next line to send */
	SMTPC_SASL_OK,                   /* 235: authenticated */
	SMTPC_SASL_FAIL,                 /* refused, or a reply out of step */
};

enum smtpc_step_kind {
	SMTPC_STEP_MAIL,
	SMTPC_STEP_RCPT,
	SMTPC_STEP_DATA,
	SMTPC_STEP_DOT,                /* end of data: the reply is the result */
	SMTPC_STEP_DOT_IGNORE,         /* "." after a 354 with no recipient: reply ignored */
	SMTPC_STEP_RSET,               /* instead of DATA when no recipient was accepted */
};

struct smtpc_step {
	enum smtpc_step_kind kind;
	size_t rcpt;                   /* SMTPC_STEP_RCPT: index */
};

enum smtpc_notify {
	SMTPC_N_NONE,
	SMTPC_N_READY,
	SMTPC_N_DONE,
	SMTPC_N_FAILED,
	SMTPC_N_FREE,
};

struct smtpc {
	struct event_base  *base;
	struct bufferevent *bev;
	struct event       *ev_timer;
	struct event       *ev_notify;
	enum smtpc_notify   notify;
	enum smtpc_state    state;
	struct smtpc_cb     cb;
	void               *arg;
	int                 quitting;          /* smtpc_quit() called: no callbacks */
	int                 fail_after;        /* failed() is due after the pending done() */

	char               *helo_name;
	char                peer[320];          /* "host[addr]:port" */
	struct sockaddr_storage addr;
	socklen_t           addrlen;
	unsigned            connect_timeout, cmd_timeout, data_timeout;

	/* TLS */
	struct ssl_ctx_st  *tls_ctx;            /* borrowed; NULL = no STARTTLS */
	int                 tls_required;
	int                 tls;                /* SMTPC_TLS_* */
	int                 smtps;              /* implicit TLS: the handshake before the greeting */
	char               *sni;                /* host name for SNI; NULL for an address */
	char               *verify_name;        /* RFC 6125 check; NULL = none */
	char               *tls_cache_key;      /* session cache key; NULL = no resumption */
	struct maillog     *ml;

	/* AUTH */
	char               *auth_user;          /* NULL = no AUTH */
	char               *auth_secret;        /* wiped on free */
	int                 auth_xoauth2;
	int                 authed;             /* AUTH done (or not needed) */
	unsigned            auth_mechs;         /* SMTPC_MECH_* the peer offered */
	struct smtpc_sasl   sasl;

	struct smtpc_rparser rp;
	unsigned            exts;
	uint64_t            size_limit;         /* SIZE n; 0 = none given */
	struct smtpc_reply  fail;               /* for SMTPC_N_FAILED */

	/* the transaction */
	char               *sender;
	char              **rcpts;
	size_t              nrcpt;
	int                 need_8bit, smtputf8;
	uint64_t            size;
	struct smtpc_source src;                /* the content; src.read NULL outside a txn */
	struct smtpc_step  *steps;
	size_t              nsteps, send_pos, recv_pos;
	int                 mail_ok;
	size_t              naccepted;
	struct smtpc_result res;
	/* content streaming state: dot-stuffing across chunks */
	int                 at_bol;
	char                last2[2];
	int                 content_eof;
};

/* smtpc.c: the session's one transition, timer, failure and command writer */
void smtpc_enter(struct smtpc *c, enum smtpc_state st);
void smtpc_timer(struct smtpc *c, unsigned secs);
void smtpc_fail(struct smtpc *c, int code, const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int smtpc_write(struct smtpc *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void smtpc_send_hello(struct smtpc *c, enum smtpc_state st);
void smtpc_ready(struct smtpc *c);
void smtpc_set_bev(struct smtpc *c, struct bufferevent *bev);

/* smtpc_tls.c: STARTTLS (RFC 3207), implicit TLS (RFC 8314) */
int smtpc_tls_sni(const char *name);
void smtpc_tls_start(struct smtpc *c);
void smtpc_tls_reply(struct smtpc *c, const struct smtpc_reply *r);
void smtpc_tls_event(struct smtpc *c, short what);
void smtpc_tls_close(struct smtpc *c);

/* smtpc_auth.c: SMTP AUTH (RFC 4954) */
unsigned smtpc_auth_mechs(const char *s, size_t len);
int smtpc_auth_sasl_start(struct smtpc_sasl *s, unsigned offered, int xoauth2, const char *user,
    const char *secret, char *out, size_t size);
enum smtpc_sasl_rc smtpc_auth_sasl_reply(struct smtpc_sasl *s, const struct smtpc_reply *r,
    char *out, size_t size);
void smtpc_auth_start(struct smtpc *c);
void smtpc_auth_reply(struct smtpc *c, const struct smtpc_reply *r);

/* smtpc_reply_init - an empty parser */
void smtpc_reply_init(struct smtpc_rparser *p);

/*
 * smtpc_reply_feed - eat up to len bytes of buf (sets *used) and stop after
 * each complete line: SMTPC_R_LINE for a continuation line, SMTPC_R_DONE for
 * the last one (p->reply then holds code, dsn and the joined text, p->ltext
 * the line's text), SMTPC_R_NEED_MORE when buf is used up. Resumable: bytes
 * may come in any chunking. A line end is CRLF (a bare LF is taken too).
 */
enum smtpc_rstatus smtpc_reply_feed(struct smtpc_rparser *p, const char *buf, size_t len,
    size_t *used);

/* smtpc_reply_local - fill r with a locally made reply ("552 5.3.4 text") */
void smtpc_reply_local(struct smtpc_reply *r, int code, const char *dsn, const char *text);

#endif
