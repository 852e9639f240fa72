/*
 * fuzz_smtpd_cmd.c - libFuzzer harness for the SMTP command reader
 *                    (src/smtpd/smtpd_line.c) and the PROXY header parser
 *
 * Owns:     nothing.
 * Lifetime: one input at a time.
 * Errors:   a broken invariant aborts (libFuzzer reports it as a crash).
 * Context:  libFuzzer's thread.
 *
 * The first two octets seed the chunk sizes; the rest (at most 64 KiB) is
 * what a client sends. It goes through a model of the session's input
 * buffer (at most SMTPD_LINE_MAX bytes offered unless an over-long line is
 * being skipped), in pseudo-random chunks and again whole: both must give
 * the same lines, the buffer must never hold more than SMTPD_LINE_MAX
 * bytes without a line end, and no line may exceed the limit. Every line
 * is split into verb and argument and its arguments run through the MAIL/
 * RCPT keyword, the ESMTP parameter and the BDAT parsers. The input's start
 * also goes to smtpd_proxy_parse() in an exact-size heap copy.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd/smtpd_proto.h"

#define FUZZ_MAX 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t
next_rand(uint32_t *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 16;
}

/* tokens - every argument parser on one line; invariants only */
static void
tokens(struct str line)
{
	struct smtpd_cmdline cl;
	struct str rest, key, val;
	uint64_t n;
	int last, r, guard = 0;

	smtpd_line_split(line, &cl);
	if (cl.verb.p < line.p || cl.verb.p + cl.verb.len > line.p + line.len ||
	    cl.arg.p < line.p || cl.arg.p + cl.arg.len > line.p + line.len)
		abort();
	if (smtpd_line_path_arg(cl.arg, "FROM:", &rest) == 0 ||
	    smtpd_line_path_arg(cl.arg, "TO:", &rest) == 0) {
		if (rest.p + rest.len != cl.arg.p + cl.arg.len)
			abort();
		while ((r = smtpd_line_param_next(&rest, &key, &val)) > 0) {
			if (key.len == 0 || key.p + key.len > cl.arg.p + cl.arg.len ||
			    (val.p != NULL && val.p + val.len > cl.arg.p + cl.arg.len) || ++guard > 512)
				abort();
			if (val.p != NULL)
				(void)smtpd_line_u64(val, &n);
		}
	}
	if (smtpd_line_bdat_arg(cl.arg, &n, &last) == 0 && last != 0 && last != 1)
		abort();
}

/* run - feed in[] in chunks (0 = whole); returns a hash of the line events */
static uint64_t
run(const unsigned char *in, size_t len, uint32_t seed, int chunked)
{
	static char buf[SMTPD_LINE_MAX + 4096];
	size_t blen = 0, pos = 0;
	uint64_t h = 1469598103934665603ull;
	struct smtpd_line st;

	smtpd_line_init(&st);
	while (pos < len) {
		size_t n = chunked ? 1 + next_rand(&seed) % 900 : 4096;
		if (n > len - pos)
			n = len - pos;
		if (n > sizeof(buf) - blen)
			n = sizeof(buf) - blen;
		memcpy(buf + blen, in + pos, n);
		blen += n;
		pos += n;
		for (;;) {
			struct str line;
			size_t used = 0, offer = st.discarding ? blen :
			    (blen < SMTPD_LINE_MAX ? blen : SMTPD_LINE_MAX);
			char *copy;
			enum smtpd_line_result r;

			if (offer == 0)
				break;
			if ((copy = malloc(offer)) == NULL)
				abort();
			memcpy(copy, buf, offer);
			r = smtpd_line_next(&st, copy, offer, &line, &used);
			if (used > offer)
				abort();
			if (r == SMTPD_LINE_OK) {
				if (line.len >= SMTPD_LINE_MAX || line.p != copy || used < line.len + 1 ||
				    copy[used - 1] != '\n')
					abort();
				tokens(line);
				for (size_t k = 0; k < line.len; k++)
					h = (h ^ (unsigned char)line.p[k]) * 1099511628211ull;
				h = (h ^ 0x100) * 1099511628211ull;
			} else if (r == SMTPD_LINE_LONG) {
				h = (h ^ 0x200) * 1099511628211ull;
			}
			free(copy);
			memmove(buf, buf + used, blen - used);
			blen -= used;
			if (r == SMTPD_LINE_MORE && used == 0)
				break;
		}
		if (blen >= SMTPD_LINE_MAX && !st.discarding)
			abort();
	}
	return h;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtpd_proxy_addr pa;
	unsigned char *copy;
	size_t len, used = 0, plen;
	uint32_t seed;
	enum smtpd_proxy_result pr;

	if (size < 2)
		return 0;
	seed = (uint32_t)data[0] << 8 | data[1];
	len = size - 2 > FUZZ_MAX ? FUZZ_MAX : size - 2;
	if (run(data + 2, len, seed, 1) != run(data + 2, len, seed, 0))
		abort();

	plen = len < SMTPD_PROXY_MAX ? len : SMTPD_PROXY_MAX;
	if ((copy = malloc(plen ? plen : 1)) == NULL)
		return 0;
	memcpy(copy, data + 2, plen);
	pr = smtpd_proxy_parse(copy, plen, &used, &pa);
	if (pr == SMTPD_PROXY_OK && (used == 0 || used > plen ||
	    (pa.have_src && pa.src.ss_family != 2 && pa.src.ss_family != 10)))
		abort();
	if (pr != SMTPD_PROXY_OK && used != 0)
		abort();
	free(copy);
	return 0;
}
