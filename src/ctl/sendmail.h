/*
 * sendmail.h - sendmail's parts (private to src/cmd/sendmail.c, the files
 *              src/ctl/sendmail_*.c and their tests): the message reader
 *              and DATA writer (sendmail_msg.c), the SMTP client that hands
 *              the message to mtad (sendmail_smtp.c), and their state
 *
 * Owns:     struct sendmail (one run of the program) with its connection
 *           and reply buffer; struct sendmail_msg_reader buffers until
 *           sendmail_msg_reader_free().
 * Lifetime: the process: one message (or one -bs session) per run.
 * Errors:   the SMTP functions return a sysexits(3) status with the reason
 *           on stderr; the message functions 0/-1 with errno.
 * Context:  a short-lived command-line process; blocking I/O bounded by
 *           deadlines (src/ctl/ctl_net.c).
 */
#ifndef MTAD_SENDMAIL_H
#define MTAD_SENDMAIL_H

#include <stddef.h>

struct config;

/* --- struct sendmail: the run, and its connection to mtad ------------- */

#define SENDMAIL_CONNECT_MS   10000
#define SENDMAIL_REPLY_MS     300000      /* RFC 5321 §4.5.3.2: 5 minutes per command */
#define SENDMAIL_DATA_END_MS  600000      /* 10 minutes for the end of data */
#define SENDMAIL_LINE_MAX     2048        /* longest reply line kept */
#define SENDMAIL_REPLY_LINES  100         /* most lines in one reply */
#define SENDMAIL_BS_IDLE_MS   3600000     /* -bs: an hour without traffic ends it */

struct sendmail {
	const char *prog;
	const char *conf_arg;        /* -C */
	struct config *cfg;          /* NULL: unreadable, defaults used */
	char host[64];
	int  port;
	char myname[256];            /* EHLO name and the domain of bare names */
	char sender[1024];           /* "" = null sender */
	const char *fullname;        /* -F */
	int  opt_t, opt_i, verbose;
	char **rcpt;
	size_t nrcpt;
	int  fd;
	/* reply reader */
	char rbuf[8192];
	size_t rlen, rpos;
	int  code;
	char reply[SENDMAIL_LINE_MAX];     /* the reply's lines, joined with "; " */
	int  smtputf8;               /* the server offers SMTPUTF8 */
};

/* --- sendmail_msg.c: the message on stdin, and the DATA stream -------- */

#define SENDMAIL_MSG_HEADER_MAX  (1024 * 1024)  /* header section kept for -t / From: */
#define SENDMAIL_MSG_RCPT_MAX    10000

/* What the input looks like once read: the header lines, the rest is streamed. */
struct sendmail_msg_reader {
	int    fd;
	int    dot_ends;             /* no -i: a line of one '.' ends the input */
	unsigned char *in;           /* read buffer */
	size_t in_len, in_pos;
	int    eof;                  /* the input (or the '.' line) has ended */
	int    input_err;            /* errno of a read error */
	/* header section: logical lines (folded lines kept), CRLF-free, each NUL-terminated */
	char  *hdr;
	size_t hdr_len;
	int    hdr_too_big;
	int    have_from;
	int    body_follows;         /* a blank line (or a non-header line) came */
	char  *first_body_line;      /* a line that was not a header, stored for the body */
	size_t first_body_len;
};

/* sendmail_msg_reader_init - read from fd; dot_ends as above */
int sendmail_msg_reader_init(struct sendmail_msg_reader *r, int fd, int dot_ends);
void sendmail_msg_reader_free(struct sendmail_msg_reader *r);
/*
 * sendmail_msg_read_headers - read the header section (up to SENDMAIL_MSG_HEADER_MAX;
 * a leading mbox "From " line is dropped). 0, or -1 (read error or headers
 * too large: see input_err / hdr_too_big).
 */
int sendmail_msg_read_headers(struct sendmail_msg_reader *r);
/*
 * sendmail_msg_extract_rcpts - the addresses of To:, Cc: and Bcc: (RFC 5322
 * address lists: display names, comments, groups), appended to *list
 * (grown, at most SENDMAIL_MSG_RCPT_MAX); with remove_bcc the Bcc: lines are
 * dropped from the header section. 0 or -1 (ENOMEM, E2BIG).
 */
int sendmail_msg_extract_rcpts(struct sendmail_msg_reader *r, int remove_bcc, char ***list, size_t *n);
/*
 * sendmail_msg_addr_list - parse one header's address-list value into *list
 * (appended, copies). 0 or -1 (ENOMEM, E2BIG).
 */
int sendmail_msg_addr_list(const char *value, size_t len, char ***list, size_t *n);
/* sendmail_msg_from_header - "From: Name <addr>" with Name quoted or RFC 2047 encoded as needed */
int sendmail_msg_from_header(const char *name, const char *addr, char *out, size_t outlen);

/*
 * Output side: the SMTP DATA stream. sendmail_msg_stuff_* write dot-stuffed CRLF
 * lines through the callback, which returns 0 or -1.
 */
typedef int (*sendmail_msg_out_fn)(void *arg, const void *data, size_t len);
struct sendmail_msg_out {
	sendmail_msg_out_fn fn;
	void  *arg;
	unsigned char buf[65536];
	size_t used;
	int    at_line_start;
	int    err;
};
void sendmail_msg_out_init(struct sendmail_msg_out *o, sendmail_msg_out_fn fn, void *arg);
/* sendmail_msg_out_line - one logical line (no line end): dot-stuffed, CRLF added */
int sendmail_msg_out_line(struct sendmail_msg_out *o, const char *line, size_t len);
/* sendmail_msg_out_headers - the kept header section, then the blank line when one was read */
int sendmail_msg_out_headers(struct sendmail_msg_out *o, struct sendmail_msg_reader *r);
/*
 * sendmail_msg_out_body - stream the rest of the input: any of CRLF, LF or a
 * lone CR ends a line and becomes CRLF; lines are dot-stuffed; the last
 * line gets a CRLF; then ".\r\n" and a flush. 0 or -1.
 */
int sendmail_msg_out_body(struct sendmail_msg_out *o, struct sendmail_msg_reader *r);
int sendmail_msg_out_flush(struct sendmail_msg_out *o);

/* --- sendmail_smtp.c: the SMTP client ------------------------------------ */

/*
 * sendmail_smtp_submit - one SMTP transaction with mtad (s->host:s->port)
 * for the message r reads: EHLO (HELO), MAIL, every RCPT, DATA and the
 * dot-stuffed content. 0 (EX_OK) only after mtad's 250 to the end of data
 * (the message is on disk, SPEC §4); otherwise a sysexits status.
 */
int sendmail_smtp_submit(struct sendmail *s, struct sendmail_msg_reader *r);

/*
 * sendmail_smtp_proxy - -bs: relay an SMTP session on stdin/stdout to mtad
 * until mtad closes it; local line ends become CRLF. A sysexits status.
 */
int sendmail_smtp_proxy(struct sendmail *s);

#endif
