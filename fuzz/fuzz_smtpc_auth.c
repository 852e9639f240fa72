/*
 * fuzz_smtpc_auth.c - libFuzzer harness for the client side of SMTP AUTH
 *                     (src/smtpc/smtpc_auth.c): the EHLO AUTH line and the
 *                     server's replies during the exchange
 *
 * Owns:     one reply parser and one SASL exchange per input.
 * Lifetime: one input.
 * Errors:   a broken invariant aborts (libFuzzer reports it).
 * Context:  libFuzzer's thread.
 *
 * Byte 0 picks the mechanisms asked for (bit 0: XOAUTH2) and seeds the
 * chunking; the first line of the rest is an EHLO "AUTH ..." argument, the
 * rest is the server's reply stream during the exchange, parsed as smtpc
 * does (smtpc_reply.c) and handed to smtpc_auth_sasl_reply() reply by reply.
 * Invariants: the exchange ends (OK or FAIL) or asks to send a line that is
 * NUL-terminated, within SMTPC_AUTH_LINE_MAX, plain base64 (or empty) and
 * free of CR and LF; OK only after a 235; nothing after the end.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpc/smtpc_int.h"

static char line[SMTPC_AUTH_LINE_MAX + 1];

/* check_line - what the client would send: printable, no line end, bounded */
static void
check_line(const char *s)
{
	size_t n = strnlen(s, sizeof(line));

	if (n >= sizeof(line))
		abort();
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\r' || s[i] == '\n' || (unsigned char)s[i] < 0x20 ||
		    (unsigned char)s[i] >= 0x7f)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtpc_rparser p;
	struct smtpc_sasl s;
	const char *nl;
	size_t off, used = 0;
	unsigned mechs;
	int done = 0;

	if (size < 1)
		return 0;
	off = 1;
	nl = memchr(data + off, '\n', size - off);
	mechs = smtpc_auth_mechs((const char *)data + off,
	    nl != NULL ? (size_t)((const uint8_t *)nl - (data + off)) : size - off);
	if (mechs & ~(unsigned)(SMTPC_MECH_PLAIN | SMTPC_MECH_LOGIN | SMTPC_MECH_XOAUTH2))
		abort();
	off = nl != NULL ? (size_t)((const uint8_t *)nl - data) + 1 : size;
	if (smtpc_auth_sasl_start(&s, mechs, data[0] & 1, "user@example.com",
	    "secret-password-or-token", line, sizeof(line)) < 0)
		return 0;
	check_line(line);
	if (strncmp(line, "AUTH ", 5) != 0)
		abort();
	smtpc_reply_init(&p);
	while (off < size) {
		enum smtpc_rstatus st = smtpc_reply_feed(&p, (const char *)data + off, size - off,
		    &used);

		if (st == SMTPC_R_INVALID)
			return 0;              /* smtpc drops the connection */
		if (used == 0 || used > size - off)
			abort();
		off += used;
		if (st != SMTPC_R_DONE)
			continue;
		if (done)
			return 0;              /* smtpc would have left the AUTH state */
		switch (smtpc_auth_sasl_reply(&s, &p.reply, line, sizeof(line))) {
		case SMTPC_SASL_SEND:
			check_line(line);
			break;
		case SMTPC_SASL_OK:
			if (p.reply.code != 235)
				abort();
			done = 1;
			break;
		case SMTPC_SASL_FAIL:
			if (p.reply.code == 235)
				abort();
			if (strnlen(s.why, sizeof(s.why)) >= sizeof(s.why))
				abort();
			done = 1;
			break;
		}
	}
	return 0;
}
