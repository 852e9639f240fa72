/*
 * smtpc.h - the outbound SMTP client (public interface of src/smtpc/)
 *
 * Owns:     one outbound connection, its bufferevent and its timers.
 * Lifetime: smtpc_connect() to smtpc_free(). A connection can carry many
 *           transactions one after another (connection reuse).
 * Errors:   everything the peer or the network does is reported through
 *           the callbacks; nothing is fatal.
 * Context:  event-loop thread. Callbacks run from the loop, never from
 *           inside the smtpc_*() call that caused them; a callback may call
 *           smtpc_send(), smtpc_quit() or smtpc_free() on its connection.
 *
 * RFC 5321 client: greeting, EHLO (HELO when EHLO is refused), then for
 * each transaction MAIL FROM (SIZE=, BODY=8BITMIME when the peer has it),
 * RCPT TO for each recipient, DATA with dot-stuffing — MAIL/RCPT/DATA sent
 * as one group when the peer offers PIPELINING (RFC 2920). STARTTLS (RFC
 * 3207) whenever the peer offers it and a TLS context is given, then EHLO
 * again; see smtpc_tls() for how a failed handshake is reported. Implicit
 * TLS (RFC 8314) from the first byte instead when asked. SMTP AUTH (RFC
 * 4954: PLAIN, else LOGIN, or XOAUTH2) once TLS is up, before the first
 * transaction, when credentials are given.
 */
#ifndef MTAD_SMTPC_H
#define MTAD_SMTPC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <sys/types.h>

struct evbuffer;

struct event_base;
struct maillog;
struct smtpc;
struct ssl_ctx_st;

#define SMTPC_REPLY_MAX 512

struct smtpc_params {
	const char *helo_name;                  /* copied */
	struct sockaddr_storage addr;           /* with port set */
	socklen_t   addrlen;
	const char *peer_name;                  /* host name for logs; copied */
	unsigned    connect_timeout;            /* seconds */
	unsigned    cmd_timeout;                /* per reply; 300 as Postfix */
	unsigned    data_timeout;               /* whole content transfer; 600 */
	/* TLS (all zero = plain SMTP) */
	struct ssl_ctx_st *tls_ctx;             /* borrowed: STARTTLS whenever offered; NULL = never */
	int         tls_required;               /* no STARTTLS, refused or failed = failure, never plain */
	int         smtps;                      /* implicit TLS from the first byte (needs tls_ctx) */
	const char *verify_name;                /* non-NULL: the handshake fails unless the chain
	                                         * verifies and the certificate matches this name
	                                         * (RFC 6125); copied */
	const char *tls_cache_key;              /* non-NULL: resume TLS sessions cached under this
	                                         * key ("host[addr]:port"); copied */
	struct maillog *ml;                     /* "... TLS connection established to ..."; may be NULL */
	/* SMTP AUTH (all NULL = none). Secrets are copied and wiped when the session ends. */
	const char *auth_user;                  /* copied */
	const char *auth_secret;                /* password, or the XOAUTH2 bearer token; copied */
	int         auth_xoauth2;               /* SASL XOAUTH2 instead of PLAIN/LOGIN */
};

/* A reply: its code, enhanced status ("" when the peer gave none) and text. */
struct smtpc_reply {
	int  code;                               /* 0 = no reply (network error, timeout) */
	char dsn[12];                            /* "2.0.0"; for code 0 a local one, "4.4.1"/"4.4.2" */
	char text[SMTPC_REPLY_MAX];              /* "250 2.0.0 Ok: queued as X" (one line, multi-line joined) */
};

/*
 * A content source: read(arg, buf, len) gives up to len bytes of the
 * message as stored (CRLF line ends, not dot-stuffed), 0 at the end, -1 on
 * error. The scheduler's reads the queue file; mtad_probe's and the tests'
 * read memory. arg is borrowed until done()/failed().
 */
struct smtpc_source {
	ssize_t   (*read)(void *arg, void *buf, size_t len);
	void       *arg;
	/*
	 * wire (optional, NULL = none): the content needs no change inside
	 * DATA (no line starts with '.', CRLF line ends, ends with CRLF or is
	 * empty). On a plain connection smtpc calls it instead of read(): it
	 * appends the whole content to out by reference (file segments that
	 * libevent sends with sendfile(2)), all or nothing, and returns 0;
	 * -1 = nothing appended, use read().
	 */
	int       (*wire)(void *arg, struct evbuffer *out);
};

struct smtpc_txn {
	const char *sender;                      /* "" for <> */
	const char *const *rcpts;
	size_t      nrcpt;
	uint64_t    size;                        /* for SIZE= */
	int         need_8bit;                   /* BODY=8BITMIME required */
	int         smtputf8;                    /* SMTPUTF8 required */
	struct smtpc_source content;             /* borrowed until done()/failed() */
};

struct smtpc_result {
	struct smtpc_reply mail;                 /* MAIL FROM reply (or the failure) */
	struct smtpc_reply *rcpt;                /* nrcpt replies, owned by smtpc until the next txn */
	size_t      nrcpt;
	struct smtpc_reply data;                 /* end-of-data reply (code 0 if not reached) */
	int         rset;                        /* reply code to the RSET that ended a refused
	                                          * transaction; 0 = none was needed */
};

struct smtpc_cb {
	/* ready - connected, greeted and EHLO/HELO done: call smtpc_send() or smtpc_quit() */
	void (*ready)(void *arg, struct smtpc *c);
	/* done - a transaction finished (per-recipient results in r); connection usable again */
	void (*done)(void *arg, struct smtpc *c, const struct smtpc_result *r);
	/* failed - the session is unusable (connect error, greeting/EHLO refused, timeout,
	 * dropped, 421): r is the reason; a transaction in progress is failed with it too */
	void (*failed)(void *arg, struct smtpc *c, const struct smtpc_reply *r);
};

struct smtpc *smtpc_connect(struct event_base *base, const struct smtpc_params *p,
    const struct smtpc_cb *cb, void *arg);
/* smtpc_send - start a transaction (only between ready/done and the next send); 0 or -1 */
int smtpc_send(struct smtpc *c, const struct smtpc_txn *t);
/* smtpc_quit - send QUIT and close; no callback follows; c is freed by smtpc itself */
void smtpc_quit(struct smtpc *c);
/* smtpc_free - close at once without QUIT; no callback follows */
struct smtpc *smtpc_free(struct smtpc *c);
/* smtpc_has_ext - 1 when the peer's EHLO listed keyword (e.g. "8BITMIME") */
int smtpc_has_ext(const struct smtpc *c, const char *keyword);
/* smtpc_peer - "host[addr]:port" for logs */
const char *smtpc_peer(const struct smtpc *c);

/*
 * smtpc_tls - SMTPC_TLS_NONE (plain so far), SMTPC_TLS_ON (the session is
 * encrypted), or SMTPC_TLS_FAILED: the STARTTLS handshake failed, and the
 * failed() that follows says why (dsn 4.7.5). Nothing was sent in the clear
 * beyond EHLO and STARTTLS, so the caller may try the host again without TLS.
 */
enum { SMTPC_TLS_NONE = 0, SMTPC_TLS_ON, SMTPC_TLS_FAILED };
int smtpc_tls(const struct smtpc *c);

#endif
