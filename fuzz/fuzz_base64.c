/*
 * fuzz_base64.c - libFuzzer harness for the strict base64 decoder and the
 *                 encoder (src/lib/base64.c)
 *
 * Owns:     nothing.
 * Lifetime: one input at a time.
 * Errors:   a broken invariant aborts (libFuzzer reports it as a crash).
 * Context:  libFuzzer's thread.
 *
 * The first input octet picks the output size (0..255); the rest is the
 * text, copied into an exact-size heap block so ASan sees a read past it.
 * Invariants: a failure writes nothing and says EINVAL or EMSGSIZE (the
 * latter only for valid text); a success fits the size and, encoded
 * again, gives the input back (one spelling per octet string).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base64.h"

#define FUZZ_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char out[256], big[FUZZ_MAX];
	char re[FUZZ_MAX + 8];
	size_t len, cap, n = 99, nbig = 0;
	char *in;
	int r;

	if (size < 1)
		return 0;
	cap = data[0];
	len = size - 1 > FUZZ_MAX ? FUZZ_MAX : size - 1;
	if ((in = malloc(len ? len : 1)) == NULL)
		abort();
	memcpy(in, data + 1, len);
	memset(out, 0xa5, sizeof(out));
	errno = 0;
	r = base64_decode(in, len, out, cap, &n);
	if (r < 0) {
		for (size_t i = 0; i < sizeof(out); i++)
			if (out[i] != 0xa5)
				abort();
		if (n != 0 || (errno != EINVAL && errno != EMSGSIZE))
			abort();
		/* too long only for text that decodes with room enough */
		if (errno == EMSGSIZE && (base64_decode(in, len, big, sizeof(big), &nbig) < 0 ||
		    nbig <= cap))
			abort();
	} else {
		if (n > cap || n != len / 4 * 3 - (len > 0 && in[len - 1] == '=') -
		    (len > 1 && in[len - 2] == '='))
			abort();
		if (base64_encode(out, n, re, sizeof(re)) != (int)len || memcmp(re, in, len) != 0)
			abort();
	}
	free(in);
	return 0;
}
