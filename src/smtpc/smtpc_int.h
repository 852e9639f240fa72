/*
 * smtpc_int.h - private parts of src/smtpc/: the reply parser and test hooks
 *
 * Owns:     struct smtpc_rparser, embedded in a connection (or a fuzzer).
 * Lifetime: smtpc_reply_init() once; it resets itself after each reply.
 * Errors:   a malformed or oversized reply is SMTPC_R_INVALID: the caller
 *           drops the connection (the stream cannot be trusted any more).
 * Context:  any thread; no globals.
 */
#ifndef MTAD_SMTPC_INT_H
#define MTAD_SMTPC_INT_H

#include <stddef.h>
#include <sys/types.h>

#include "smtpc/smtpc.h"

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
