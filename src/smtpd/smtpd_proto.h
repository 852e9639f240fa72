/*
 * smtpd_proto.h - the inbound SMTP parsers (private to src/smtpd/)
 *
 * Owns:     nothing: every parser keeps its position in a small struct that
 *           the caller embeds, and results are slices into the caller's input
 *           or bytes written into a caller buffer.
 * Lifetime: the structs are plain values; *_init() resets them.
 * Errors:   malformed peer input is a result code (INVALID, LONG, a flag),
 *           never a crash or an allocation.
 * Context:  any thread; no libevent, so unit tests and fuzzers drive these
 *           entry points directly with input split at every position.
 *
 * The parsers are resumable (STYLE §7): they eat what is buffered, keep
 * their position, and return "need more" when the input ends mid-token.
 */
#ifndef MTAD_SMTPD_PROTO_H
#define MTAD_SMTPD_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lib/util.h"

/* RFC 5321 §4.5.3.1.4: a command line is at most 512 octets with its CRLF. */
#define SMTPD_LINE_MAX 512

/* --- command lines -------------------------------------------------- */

enum smtpd_line_result {
	SMTPD_LINE_MORE = 0,         /* no complete line: drop *consumed bytes, wait */
	SMTPD_LINE_OK,               /* *line is a command (terminator removed) */
	SMTPD_LINE_LONG,             /* over SMTPD_LINE_MAX: reply 500, the rest is skipped */
};

struct smtpd_line {
	unsigned discarding;         /* inside an over-long line: skip up to its LF */
};

void smtpd_line_init(struct smtpd_line *st);
/*
 * smtpd_line_next - the next command line in p[0..len). The caller drops
 * *consumed bytes from its buffer after it is done with *line. A line ends
 * with CRLF or (like Postfix) a bare LF; one CR before the LF is removed.
 * Give at least min(buffered, SMTPD_LINE_MAX) bytes unless discarding.
 */
enum smtpd_line_result smtpd_line_next(struct smtpd_line *st, const char *p, size_t len,
    struct str *line, size_t *consumed);

/* Faults found by smtpd_line_split() (bit set). */
enum {
	SMTPD_CL_CTRL   = 1u << 0,   /* NUL, control character or DEL anywhere: 500 */
	SMTPD_CL_8BIT_VERB = 1u << 1,/* non-ASCII in the command name: 500 */
	SMTPD_CL_8BIT_ARG  = 1u << 2,/* non-ASCII in the arguments: the command decides */
};

struct smtpd_cmdline {
	struct str verb;             /* the command name, as sent */
	struct str arg;              /* the rest, outer blanks removed; may be empty */
	unsigned faults;             /* SMTPD_CL_* */
};

/* smtpd_line_split - split a line into verb and argument and classify its bytes */
void smtpd_line_split(struct str line, struct smtpd_cmdline *out);

/*
 * smtpd_line_path_arg - "FROM:<a> params" / "TO:<a> params": check the
 * keyword (case-insensitive, blanks allowed after the colon like Postfix)
 * and return in *rest the text from the '<'. -1 when the keyword is wrong.
 */
int smtpd_line_path_arg(struct str arg, const char *kw, struct str *rest);

/*
 * smtpd_line_param_next - the next "KEY[=VALUE]" of an ESMTP parameter list
 * (RFC 5321 §4.1.2 esmtp-param); 1 found, 0 at the end, -1 malformed.
 * *s advances; val.len is 0 and val.p NULL when there is no '='.
 */
int smtpd_line_param_next(struct str *s, struct str *key, struct str *val);

/* smtpd_line_u64 - all digits, at most 19 of them (no sign, no blanks) */
int smtpd_line_u64(struct str s, uint64_t *out);

/* smtpd_line_bdat_arg - "n" or "n LAST" (RFC 3030 §2); -1 on anything else */
int smtpd_line_bdat_arg(struct str arg, uint64_t *size, int *last);

/* --- DATA content (RFC 5321 §4.1.1.4, §4.5.2) ------------------------- */

enum smtpd_data_result {
	SMTPD_DATA_MORE = 0,         /* all input eaten, the end not seen yet */
	SMTPD_DATA_END,              /* <CRLF>.<CRLF> seen: *consumed stops after it */
};

struct smtpd_data {
	unsigned char state;         /* private */
	unsigned char bare;          /* a bare CR or bare LF was seen: reject at the end */
	unsigned char dotline;       /* a line of the content (as stored) starts with '.' */
};

void smtpd_data_init(struct smtpd_data *d);
/*
 * smtpd_data_feed - eat in[0..len) up to the end of data. The content, with
 * dot-stuffing removed and line ends as sent, goes to out, which must have
 * room for len + 2 bytes; *outlen says how much was written. Only
 * <CRLF>.<CRLF> ends the data (the first CRLF may be the one of the DATA
 * command itself); a CR or LF that is not part of a CRLF sets d->bare and
 * is kept as data, never taken as a line end (SMTP smuggling defence).
 */
enum smtpd_data_result smtpd_data_feed(struct smtpd_data *d, const char *in, size_t len,
    size_t *consumed, char *out, size_t *outlen);

/*
 * smtpd_data_bdat_scan - check BDAT content in[0..len) (taken as sent) for bare
 * CR or LF, across chunk boundaries; sets d->bare. smtpd_data_bdat_end - after
 * the LAST chunk (a trailing CR is bare); returns d->bare. Start each
 * message with smtpd_data_init().
 */
void smtpd_data_bdat_scan(struct smtpd_data *d, const char *in, size_t len);
int smtpd_data_bdat_end(struct smtpd_data *d);

/*
 * smtpd_data_wire - after the end of the content (DATA or the last BDAT):
 * the content as stored can go on the wire inside DATA without change (no
 * bare CR or LF, no line starting with '.', empty or ending with CRLF), so
 * delivery may send it straight from the queue file (QUEUE_F_WIRE).
 */
int smtpd_data_wire(const struct smtpd_data *d);

/* --- the header section (RFC 5322 §2.2) ---------------------------- */

#define SMTPD_HDR_ID_MAX 250         /* Message-ID value kept for the mail log */

enum {
	SMTPD_HDR_MESSAGE_ID = 1u << 0,
	SMTPD_HDR_DATE       = 1u << 1,
	SMTPD_HDR_FROM       = 1u << 2,
};

struct smtpd_hdr {
	unsigned char state;         /* private */
	unsigned char nlen;          /* private: bytes of name[] in use; 0xff = too long */
	unsigned char cur;           /* private: the header being read (SMTPD_HDR_*) */
	unsigned found;              /* SMTPD_HDR_* seen */
	unsigned received;           /* Received: headers seen (hop count) */
	uint16_t idlen;
	char name[12];               /* private: lower-cased field name so far */
	char msgid[SMTPD_HDR_ID_MAX + 1]; /* the first Message-ID value, blanks removed */
};

void smtpd_data_hdr_init(struct smtpd_hdr *h);
/*
 * smtpd_data_hdr_feed - follow the header section across any split of the
 * content; stops looking at the first empty line or non-header line.
 */
void smtpd_data_hdr_feed(struct smtpd_hdr *h, const char *p, size_t len);
/* smtpd_data_hdr_in_body - 1 once the header section has ended */
int smtpd_data_hdr_in_body(const struct smtpd_hdr *h);

/* --- PROXY protocol v1/v2 (haproxy's proxy-protocol.txt) --------------- */

#define SMTPD_PROXY_MAX 536          /* v1 is at most 107; v2 beyond this is refused */

enum smtpd_proxy_result {
	SMTPD_PROXY_MORE = 0,
	SMTPD_PROXY_OK,
	SMTPD_PROXY_INVALID,
};

struct smtpd_proxy_addr {
	struct sockaddr_storage src; /* the client, when have_src */
	socklen_t srclen;
	int have_src;                /* 0 for UNKNOWN / LOCAL: keep the socket's peer */
};

/*
 * smtpd_proxy_parse - one PROXY header at the start of p[0..len); on OK
 * *consumed is its length. MORE while it may still be incomplete (the
 * caller bounds the wait with SMTPD_PROXY_MAX and its timeout).
 */
enum smtpd_proxy_result smtpd_proxy_parse(const unsigned char *p, size_t len,
    size_t *consumed, struct smtpd_proxy_addr *out);

#endif
