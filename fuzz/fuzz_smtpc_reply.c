/*
 * fuzz_smtpc_reply.c - libFuzzer harness for the SMTP reply parser
 *                      (src/smtpc/smtpc_reply.c)
 *
 * Owns:     one parser per input.
 * Lifetime: one input.
 * Errors:   a broken invariant aborts (libFuzzer reports it).
 * Context:  libFuzzer's thread.
 *
 * The first byte seeds the chunk sizes, the rest is a peer's reply stream
 * fed in random-sized pieces; after each complete reply the invariants are
 * checked: a 2xx-5xx code, a NUL-terminated text within SMTPC_REPLY_MAX
 * that starts with the code, a dsn "c.n.n" whose class is the code's.
 * After SMTPC_R_INVALID the parser starts afresh (as a new connection).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpc/smtpc_int.h"

static void
check_reply(const struct smtpc_reply *r)
{
	size_t tl = strnlen(r->text, sizeof(r->text));
	size_t dl = strnlen(r->dsn, sizeof(r->dsn));

	if (r->code < 200 || r->code > 559)
		abort();
	if (tl >= sizeof(r->text) || tl < 3)
		abort();
	if (r->text[0] != (char)('0' + r->code / 100))
		abort();
	if (dl >= sizeof(r->dsn) || dl < 5 || r->dsn[0] != r->text[0] || r->dsn[1] != '.')
		abort();
	for (size_t i = 0; i < tl; i++)
		if ((unsigned char)r->text[i] < 0x20 || (unsigned char)r->text[i] >= 0x7f)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtpc_rparser p;
	uint32_t seed;
	size_t off = 1;

	if (size < 1)
		return 0;
	seed = data[0] * 2654435761u + 1;
	smtpc_reply_init(&p);
	while (off < size) {
		size_t chunk, pos = 0;

		seed = seed * 1103515245u + 12345u;
		chunk = 1 + (seed >> 16) % 97;
		if (chunk > size - off)
			chunk = size - off;
		while (pos < chunk) {
			size_t used = 0;
			enum smtpc_rstatus st;

			st = smtpc_reply_feed(&p, (const char *)data + off + pos, chunk - pos, &used);
			if (used > chunk - pos)
				abort();
			pos += used;
			if (st == SMTPC_R_DONE)
				check_reply(&p.reply);
			else if (st == SMTPC_R_LINE && (p.ltextlen > SMTPC_LINE_MAX || p.lineno < 1))
				abort();
			else if (st == SMTPC_R_INVALID)
				smtpc_reply_init(&p);
			else if (st == SMTPC_R_NEED_MORE && pos != chunk)
				abort();
		}
		off += chunk;
	}
	return 0;
}
