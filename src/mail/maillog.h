/*
 * maillog.h - the Postfix-format mail log (SPEC §9): every line type is built here
 *
 * Owns:     the mail log file descriptor and the time zone used for it.
 * Lifetime: maillog_open() to maillog_close(); maillog_reopen() on SIGHUP.
 * Errors:   a failed write is reported once on stderr and then ignored:
 *           the log never stops mail.
 * Context:  event-loop thread.
 *
 * Line format: "Mon DD HH:MM:SS host mtad/PROC[PID]: TEXT\n", where PROC is
 * smtpd, smtp, qmgr, cleanup or bounce, as in Postfix, so pflogsumm and
 * fail2ban read it. When no log file is configured every call is cheap.
 */
#ifndef MTAD_MAILLOG_H
#define MTAD_MAILLOG_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct maillog;

/*
 * maillog_open - path NULL or "" = disabled (calls become cheap no-ops, the
 * result is still non-NULL); creates missing parent dirs, opens the file
 * O_APPEND (mode 0640). hostname (copied) is the host field of each line.
 * NULL with a message in err[errlen] when the file cannot be opened.
 * maillog_reopen - reopen the path (SIGHUP, log rotation); on failure the
 * old file stays in use and -1 is returned with errno set.
 */
struct maillog *maillog_open(const char *path, const char *hostname, char *err, size_t errlen);
struct maillog *maillog_close(struct maillog *ml);
int maillog_reopen(struct maillog *ml);
int maillog_enabled(const struct maillog *ml);
/* maillog_set_stdout - also write each line to fd (borrowed; -1 = stop), file or not */
void maillog_set_stdout(struct maillog *ml, int fd);

/*
 * maillog_printf - one raw line for PROC. Every line the daemon writes has
 * its builder below (STYLE §5: a line type is an interface); this stays for
 * tests and for the builders' own use.
 */
void maillog_printf(struct maillog *ml, const char *proc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* receive side (smtpd, cleanup, qmgr) */
void maillog_connect(struct maillog *ml, const char *name, const char *addr);
void maillog_disconnect(struct maillog *ml, const char *name, const char *addr,
    const char *counts);     /* "ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5" */
void maillog_client(struct maillog *ml, const char *qid, const char *name, const char *addr);
/*
 * maillog_client_sasl - the same for an authenticated session, as Postfix
 * writes it: "QID: client=name[addr], sasl_method=PLAIN, sasl_username=USER"
 */
void maillog_client_sasl(struct maillog *ml, const char *qid, const char *name, const char *addr,
    const char *method, const char *user);
void maillog_message_id(struct maillog *ml, const char *qid, const char *msgid);
void maillog_from(struct maillog *ml, const char *qid, const char *sender,
    uint64_t size, unsigned nrcpt);
/* "NOQUEUE: reject: RCPT from name[addr]: 554 5.7.1 <x>: Relay access denied; from=<s> to=<r> proto=ESMTP helo=<h>" */
void maillog_reject(struct maillog *ml, const char *stage, const char *name,
    const char *addr, const char *reply, const char *sender, const char *rcpt,
    const char *proto, const char *helo);

/* delivery side (smtp, qmgr, bounce) */
void maillog_delivery(struct maillog *ml, const char *qid, const char *rcpt,
    const char *relay, double delay, const double delays[4], const char *dsn,
    const char *status, const char *reply);
void maillog_removed(struct maillog *ml, const char *qid);
void maillog_bounce_notice(struct maillog *ml, const char *qid, const char *bounce_qid);
void maillog_expired(struct maillog *ml, const char *qid, const char *sender);

/* maillog_delay_notice - bounce "QID: sender delay notification: NOTICEQID" */
void maillog_delay_notice(struct maillog *ml, const char *qid, const char *notice_qid);
/*
 * maillog_cc_copy - smtp "QID: cc_mta copy, nrcpt=N, relay=R, delay=.., delays=../../../..,
 * dsn=D, status=S (REPLY)[, cc copy dropped]": no "to=<...>", so that pflogsumm does not
 * count the copy as a delivery. dropped: the copy is given up (expired).
 */
void maillog_cc_copy(struct maillog *ml, const char *qid, size_t nrcpt, const char *relay,
    double delay, const double delays[4], const char *dsn, const char *status,
    const char *reply, int dropped);
/* maillog_discarded - bounce "QID: undeliverable message to <R> discarded: no notification
 * is sent for the null sender" (or "delivery status notification" / "a bounce") */
void maillog_discarded(struct maillog *ml, const char *qid, const char *rcpt, int is_dsn);

/* SMTP server sessions (smtpd); addr is the client's IP address text */
/* "lost connection after CMD from unknown[ADDR]" (CMD: CONNECT, EHLO, DATA, STARTTLS...) */
void maillog_lost(struct maillog *ml, const char *after, const char *addr);
/* "timeout after CMD from unknown[ADDR]" */
void maillog_timeout(struct maillog *ml, const char *after, const char *addr);
/* "too many errors after CMD from unknown[ADDR]" */
void maillog_too_many_errors(struct maillog *ml, const char *after, const char *addr);
/* "warning: non-SMTP command from unknown[ADDR]" */
void maillog_non_smtp(struct maillog *ml, const char *addr);
/*
 * "warning: Connection concurrency limit exceeded: N from unknown[ADDR] for service smtp",
 * and " (waiting for PROXY headers)" after it for a balancer's connection (proxy_wait)
 */
void maillog_conn_limit(struct maillog *ml, unsigned n, const char *addr, int proxy_wait);
/* "warning: too many sessions (N): connection from unknown[ADDR] refused" */
void maillog_too_many_sessions(struct maillog *ml, size_t n, const char *addr);
/* "warning: haproxy read: WHAT PROXY header from [ADDR]", WHAT "bad or unsupported" or "no complete" */
void maillog_proxy_bad(struct maillog *ml, const char *what, const char *addr);
/* "warning: unknown[ADDR]: SASL PLAIN authentication failed: authentication failure" */
void maillog_sasl_failed(struct maillog *ml, const char *addr, const char *method);
/* "warning: unknown[ADDR]: SASL authentication blocked for 600s after 10 failures" */
void maillog_sasl_blocked(struct maillog *ml, const char *addr, int secs, unsigned failures);
/* "warning: unknown[ADDR]: SASL authentication refused: too many failures" */
void maillog_sasl_refused(struct maillog *ml, const char *addr);
/* "Anonymous TLS connection established from unknown[ADDR]: TLSv1.3 with cipher ..." */
void maillog_tls_from(struct maillog *ml, const char *addr, const char *tls);
/* "SSL_accept error from unknown[ADDR]: WHY" */
void maillog_tls_accept_error(struct maillog *ml, const char *addr, const char *why);

/* DKIM signing (dkim): "QID: DKIM-Signature field added (d=DOMAIN)" */
void maillog_dkim_signed(struct maillog *ml, const char *qid, const char *domain);
/* "QID: warning: message not signed: WHY" (a matching key, but no signature) */
void maillog_dkim_unsigned(struct maillog *ml, const char *qid, const char *why);

/*
 * maillog_fatal - "fatal: TEXT" as mtad/master, Postfix's line for a
 * daemon that cannot start: the SPEC §3 start-up error, when the log works
 */
void maillog_fatal(struct maillog *ml, const char *text);

/* disk guard (SPEC §8): level 2 = under 1 %, 1 = under 5 %, 0 = 5 % or more again */
void maillog_disk(struct maillog *ml, int level);
/*
 * maillog_disk_size - "warning: Data volume has too little free space for a
 * message of SIZE bytes from unknown[ADDR]: FREE bytes free, RESERVE kept in
 * reserve" (the MAIL that got 452 4.3.1 for its SIZE, SPEC §8)
 */
void maillog_disk_size(struct maillog *ml, const char *addr, uint64_t size, uint64_t free_bytes,
    uint64_t reserve);

/* SMTP client (smtp); peer is "host[addr]:port" */
/*
 * maillog_tls_to - "TRUST TLS connection established to PEER: TLSv1.3 with cipher ...",
 * TRUST as Postfix: "Verified" (chain and name checked), "Trusted" (chain only) or
 * "Untrusted"
 */
void maillog_tls_to(struct maillog *ml, const char *trust, const char *peer, const char *tls);
/* "warning: host PEER refused to start TLS: REPLY; continuing without TLS" */
void maillog_tls_refused(struct maillog *ml, const char *peer, const char *reply);
/* "warning: WHY; TLS is required for RELAY: not delivering without it" */
void maillog_tls_required(struct maillog *ml, const char *why, const char *relay);
/* "warning: WHY; trying RELAY again without TLS (and for the next N minutes)" */
void maillog_tls_fallback(struct maillog *ml, const char *why, const char *relay,
    int minutes);

/* maillog_stamp - "Mon DD HH:MM:SS" (day space-padded) in local time; length or -1 */
int maillog_stamp(char *buf, size_t size, time_t t);
/* maillog_format_delay - seconds as Postfix shows delays: "0", "0.01", "0.5", "1.2", "12" */
int maillog_format_delay(char *buf, size_t size, double sec);
/*
 * maillog_sanitize - copy len octets of src into dst (size >= 1, always
 * NUL-terminated), controls, DEL and invalid UTF-8 replaced by '?';
 * returns the octets written. Every log line's text goes through it.
 */
size_t maillog_sanitize(char *dst, size_t size, const char *src, size_t len);

#endif
