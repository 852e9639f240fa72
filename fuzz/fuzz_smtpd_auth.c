/*
 * fuzz_smtpd_auth.c - libFuzzer harness for the SMTP AUTH exchange: the
 *                     client's lines through the command line reader, then
 *                     the AUTH command, initial responses, 334 answers,
 *                     "*" cancels and over-long lines, as src/smtpd/
 *                     smtpd_auth.c runs them, with the parsers of
 *                     src/auth/auth_sasl.c
 *
 * Owns:     nothing.
 * Lifetime: one input at a time.
 * Errors:   a broken invariant aborts (libFuzzer reports it as a crash).
 * Context:  libFuzzer's thread.
 *
 * Each line (at most SMTPD_LINE_MAX octets; longer ones are skipped by the
 * reader and end an exchange, as in the server) is either an AUTH command
 * or the answer to the current step. Every decode is checked against a
 * re-encoding (strict base64 round-trips), the PLAIN fields must lie inside
 * the decoded message, and each line is also decoded from an exact-size
 * heap copy so ASan sees any read past it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "auth/auth.h"
#include "smtpd/smtpd_proto.h"

#define FUZZ_MAX 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { S_NONE, S_PLAIN, S_USER, S_PASS };

/* check_decode - decode, and re-encode what was decoded: it must give the input back */
static enum auth_sasl_result
check_decode(const char *p, size_t len, char *out, size_t size, size_t *olen)
{
	char *copy = malloc(len ? len : 1), re[SMTPD_LINE_MAX * 2];
	enum auth_sasl_result r;

	if (copy == NULL)
		abort();
	memcpy(copy, p, len);
	r = auth_sasl_decode(copy, len, out, size, olen);
	free(copy);
	if (*olen >= size || out[*olen] != '\0')
		abort();
	if (r == AUTH_SASL_OK && !(len == 1 && p[0] == '=')) {
		int n = EVP_EncodeBlock((unsigned char *)re, (const unsigned char *)out, (int)*olen);
		if (n < 0 || (size_t)n != len || memcmp(re, p, len) != 0)
			abort();
	}
	if (r == AUTH_SASL_CANCEL && !(len == 1 && p[0] == '*'))
		abort();
	return r;
}

static void
plain(const char *msg, size_t len)
{
	const char *u, *pw;
	size_t ul, pl;

	if (auth_sasl_plain(msg, len, &u, &ul, &pw, &pl) != AUTH_SASL_OK)
		return;
	if (u < msg || u + ul > msg + len || pw < msg || pw + pl != msg + len ||
	    ul == 0 || ul > AUTH_USER_MAX || pl == 0 || pl > AUTH_PASS_MAX ||
	    !auth_sasl_valid_user(u, ul) || memchr(pw, '\0', pl) != NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtpd_line ls;
	const char *in = (const char *)data;
	size_t len = size > FUZZ_MAX ? FUZZ_MAX : size, pos = 0;
	int step = S_NONE;
	char buf[SMTPD_LINE_MAX];

	smtpd_line_init(&ls);
	while (pos < len) {
		struct str line;
		size_t used = 0, n = len - pos, olen = 0;
		enum smtpd_line_result r;
		enum auth_sasl_result d;

		if (!ls.discarding && n > SMTPD_LINE_MAX)
			n = SMTPD_LINE_MAX;
		r = smtpd_line_next(&ls, in + pos, n, &line, &used);
		if (used > n)
			abort();
		if (r == SMTPD_LINE_MORE) {
			if (used == 0)
				break;
			pos += used;
			continue;
		}
		pos += used;
		if (r == SMTPD_LINE_LONG) {
			step = S_NONE;               /* smtpd_auth_reset() */
			continue;
		}
		if (line.len > SMTPD_LINE_MAX)
			abort();
		if (step == S_NONE) {
			struct smtpd_cmdline cl;
			const char *sp;
			struct str mech, ir = { NULL, 0 };

			smtpd_line_split(line, &cl);
			if (!(cl.verb.len == 4 && strncasecmp(cl.verb.p, "AUTH", 4) == 0))
				continue;
			mech = cl.arg;
			if ((sp = memchr(cl.arg.p, ' ', cl.arg.len)) != NULL) {
				mech.len = (size_t)(sp - cl.arg.p);
				ir.p = sp + 1;
				ir.len = cl.arg.len - mech.len - 1;
			}
			if (mech.len == 5 && strncasecmp(mech.p, "PLAIN", 5) == 0)
				step = S_PLAIN;
			else if (mech.len == 5 && strncasecmp(mech.p, "LOGIN", 5) == 0)
				step = S_USER;
			else
				continue;
			if (ir.p == NULL)
				continue;
			line = ir;
		}
		d = check_decode(line.p, line.len, buf, sizeof(buf), &olen);
		if (d != AUTH_SASL_OK) {
			step = S_NONE;
			continue;
		}
		switch (step) {
		case S_PLAIN:
			plain(buf, olen);
			step = S_NONE;
			break;
		case S_USER:
			step = auth_sasl_valid_user(buf, olen) ? S_PASS : S_NONE;
			break;
		default:
			step = S_NONE;
			break;
		}
	}
	return 0;
}
