/*
 * smtpd_dkim.c - DKIM signing of inbound messages (SPEC §11.3): the glue
 *                between a transaction and src/dkim/
 *
 * Owns:     the server's reference to the key table (srv->dkim) and a
 *           transaction's signer (t->dkim, freed with the transaction).
 * Lifetime: the table from smtpd_dkim_set() to the next one or smtpd_free();
 *           each signer holds its own reference, so a SIGHUP never pulls
 *           keys from under a message being signed.
 * Errors:   a message that cannot be signed is queued unsigned, with a
 *           warning in the mail log; it is never refused for it.
 * Context:  event-loop thread.
 *
 * Where the signature goes: a queue file holds the content as received,
 * then at commit a 'P' record of header fields the queue puts in front of
 * it at delivery (Received:, and Message-ID:/Date: when missing; see
 * queue_rec.h). The content is hashed as it streams into the file; at the
 * end of data the signature is computed over the content's fields plus
 * the Message-ID:/Date: about to be added, and placed at the very top of
 * that record. So the queued copy is the signed one without a second pass
 * over the body or a rewrite of the file: the DKIM-Signature field is the
 * first line of every delivered copy, above our Received: field.
 */
#include "smtpd/smtpd_int.h"
#include "dkim/dkim.h"
#include "lib/log.h"
#include "mail/maillog.h"
#include "metrics/metrics.h"

#include <string.h>
#include <time.h>

/* smtpd_dkim_set - see smtpd.h */
void
smtpd_dkim_set(struct smtpd *srv, struct dkim_keys *keys)
{
	dkim_keys_unref(srv->dkim);
	srv->dkim = dkim_keys_ref(keys);
}

/* smtpd_dkim_begin - the content starts: a signer when there are keys */
void
smtpd_dkim_begin(struct smtpd_sess *s)
{
	struct smtpd_txn *t = s->txn;

	t->dkim = dkim_sign_free(t->dkim);
	if (s->srv->dkim != NULL && dkim_keys_count(s->srv->dkim) > 0)
		t->dkim = dkim_sign_new(s->srv->dkim);
}

/* first_field_len - the length of the first field of a header block (with its continuations) */
static size_t
first_field_len(const char *p, size_t len)
{
	for (size_t i = 0; i + 2 < len; i++)
		if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] != ' ' && p[i + 2] != '\t')
			return i + 2;
	return len;
}

/*
 * smtpd_dkim_prepend - the end of the content: put the signature fields in
 * front of the prepend block buf[0..len) (Received:, then the fields the
 * server adds to the message). The new length; len unchanged when the
 * message is not signed.
 */
size_t
smtpd_dkim_prepend(struct smtpd_sess *s, const char *qid, char *buf, size_t len, size_t size)
{
	struct smtpd *srv = s->srv;
	struct smtpd_txn *t = s->txn;
	char sig[2 * DKIM_SIG_MAX];
	const char *why = NULL;
	size_t rl = first_field_len(buf, len);
	int n;

	n = dkim_sign_finish(t->dkim, buf + rl, len - rl, time(NULL), sig, sizeof(sig), &why);
	if (n == 0) {
		log_trace(TRACE_SMTPD, "%s: not signed: %s", qid, why);
		return len;
	}
	if (n < 0 || (size_t)n > size - len) {
		log_warnx("%s: DKIM: not signed: %s", qid, n < 0 ? why : "no room for the signature");
		maillog_dkim_unsigned(srv->ml, qid, n < 0 ? why : "no room for the signature");
		return len;
	}
	memmove(buf + n, buf, len);
	memcpy(buf, sig, (size_t)n);
	srv->m->dkim_signed++;
	maillog_dkim_signed(srv->ml, qid, dkim_sign_domain(t->dkim));
	return len + (size_t)n;
}
