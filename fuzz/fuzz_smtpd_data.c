/*
 * fuzz_smtpd_data.c - libFuzzer harness for the DATA reader and the
 *                     header watch (src/smtpd/smtpd_data.c)
 *
 * Owns:     nothing.
 * Lifetime: one input at a time.
 * Errors:   a broken invariant aborts (libFuzzer reports it as a crash).
 * Context:  libFuzzer's thread.
 *
 * The first two octets seed the chunk sizes; the rest (at most 64 KiB) is
 * the stream after "DATA\r\n". It is fed in pseudo-random chunks, each in
 * an exact-size heap copy so ASan sees any read past it, and the result is
 * compared with a plain reference: the end is the first "\r\n.\r\n" of
 * "\r\n" + input, a line-leading dot is removed, and a CR not followed by
 * LF or an LF not preceded by CR is "bare". The header watch is fed the
 * same content in other chunks and must agree with a whole-buffer run.
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

/* ref_end - offset just past the end of data, or 0 when there is none */
static size_t
ref_end(const unsigned char *in, size_t len)
{
	if (len >= 3 && memcmp(in, ".\r\n", 3) == 0)
		return 3;
	for (size_t i = 2; i + 3 <= len; i++)
		if (in[i - 2] == '\r' && in[i - 1] == '\n' && memcmp(in + i, ".\r\n", 3) == 0)
			return i + 3;
	return 0;
}

/* ref_bare - a CR not followed by LF or an LF not after CR in in[0..len) (a last CR is pending) */
static int
ref_bare(const unsigned char *in, size_t len)
{
	for (size_t p = 0; p < len; p++) {
		if (in[p] == '\r' && p + 1 < len && in[p + 1] != '\n')
			return 1;
		if (in[p] == '\n' && (p == 0 || in[p - 1] != '\r'))
			return 1;
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char out[FUZZ_MAX + 2], ref[FUZZ_MAX];
	const unsigned char *in;
	size_t len, pos = 0, outlen = 0, refend, reflen = 0;
	struct smtpd_data d;
	struct smtpd_hdr h1, h2;
	uint32_t seed;
	int end = 0;

	if (size < 2)
		return 0;
	seed = (uint32_t)data[0] << 8 | data[1];
	in = data + 2;
	len = size - 2;
	if (len > FUZZ_MAX)
		len = FUZZ_MAX;

	smtpd_data_init(&d);
	while (pos < len && !end) {
		size_t n = 1 + next_rand(&seed) % 700, used = 0, olen = 0;
		unsigned char *chunk;
		enum smtpd_data_result r;

		if (n > len - pos)
			n = len - pos;
		if ((chunk = malloc(n)) == NULL)
			return 0;
		memcpy(chunk, in + pos, n);
		r = smtpd_data_feed(&d, (const char *)chunk, n, &used, (char *)out + outlen, &olen);
		free(chunk);
		if (used > n || olen > n + 2 || (r == SMTPD_DATA_MORE && used != n))
			abort();
		outlen += olen;
		pos += used;
		end = r == SMTPD_DATA_END;
	}

	refend = ref_end(in, len);
	if (end != (refend != 0))
		abort();
	if (end) {
		if (pos != refend)
			abort();
		if (d.bare != ref_bare(in, refend))
			abort();
		/* the content: everything before the final ".\r\n", dots at line starts removed */
		for (size_t p = 0; p + 3 < refend + (refend == 3 ? 0 : 0) && p < refend - 3; p++) {
			int bol = p == 0 || (p >= 2 && in[p - 2] == '\r' && in[p - 1] == '\n');
			if (bol && in[p] == '.')
				continue;
			ref[reflen++] = in[p];
		}
		if (reflen != outlen || memcmp(ref, out, outlen) != 0)
			abort();
	} else {
		if (d.bare != ref_bare(in, len))
			abort();
	}

	/* header watch: whole content vs random pieces */
	smtpd_data_hdr_init(&h1);
	smtpd_data_hdr_init(&h2);
	smtpd_data_hdr_feed(&h1, (const char *)out, outlen);
	for (size_t p = 0; p < outlen;) {
		size_t n = 1 + next_rand(&seed) % 40;
		if (n > outlen - p)
			n = outlen - p;
		smtpd_data_hdr_feed(&h2, (const char *)out + p, n);
		p += n;
	}
	if (h1.found != h2.found || h1.received != h2.received || h1.idlen != h2.idlen ||
	    strcmp(h1.msgid, h2.msgid) != 0 || smtpd_data_hdr_in_body(&h1) != smtpd_data_hdr_in_body(&h2) ||
	    h1.idlen > SMTPD_HDR_ID_MAX || strlen(h1.msgid) != h1.idlen)
		abort();
	return 0;
}
