/*
 * fuzz_stats_file.c - libFuzzer harness for the decoder of <data_dir>/stats
 *                     (src/http/http_persist.c)
 *
 * Owns:     nothing.
 * Lifetime: one input at a time.
 * Errors:   a broken invariant aborts (libFuzzer reports it as a crash).
 * Context:  libFuzzer's thread.
 *
 * The first input octet chooses the mode: odd, the rest is a payload and
 * the harness writes a valid header for it (magic, version, length,
 * CRC-32C), so the fuzzer reaches the payload's parser past the checksum;
 * even, the rest is a whole file as read from disk. At most 1 MiB. A
 * decode that fails must leave the counters and history untouched; one
 * that succeeds must leave rings within their capacity and encode again.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_int.h"
#include "lib/crc32c.h"
#include "metrics/metrics.h"

#define FUZZ_MAX (1024 * 1024)
#define FUZZ_NOW 1700000000ULL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct metrics m;
	struct http_history hi;
	unsigned char *buf, *again;
	size_t len, alen;
	char err[128];

	if (size < 1 || size - 1 > FUZZ_MAX)
		return 0;
	len = size - 1 + ((data[0] & 1) ? 16 : 0);
	if ((buf = malloc(len ? len : 1)) == NULL)
		return 0;
	if (data[0] & 1) {
		uint32_t plen = (uint32_t)(size - 1), crc = crc32c(0, data + 1, size - 1);

		memcpy(buf, "MTST", 4);
		for (int i = 0; i < 4; i++) {
			buf[4 + i] = (unsigned char)(i == 0 ? 1 : 0);
			buf[8 + i] = (unsigned char)(plen >> (8 * i));
			buf[12 + i] = (unsigned char)(crc >> (8 * i));
		}
		memcpy(buf + 16, data + 1, size - 1);
	} else
		memcpy(buf, data + 1, len);
	memset(&m, 0, sizeof(m));
	m.accepted = 77;
	if (http_history_init(&hi) < 0)
		abort();
	if (http_persist_decode(buf, len, FUZZ_NOW, &m, &hi, err, sizeof(err)) < 0) {
		if (m.accepted != 77 || hi.fine.len != 0 || hi.coarse.len != 0 || err[0] == '\0')
			abort();
	} else {
		if (hi.fine.len > hi.fine.cap || hi.coarse.len > hi.coarse.cap ||
		    hi.fine.head >= hi.fine.cap || hi.coarse.head >= hi.coarse.cap ||
		    hi.acc_n >= HTTP_COARSE_SECS / HTTP_FINE_SECS)
			abort();
		if ((again = http_persist_encode(&m, &hi, FUZZ_NOW, &alen)) == NULL)
			abort();
		free(again);
	}
	http_history_free(&hi);
	free(buf);
	return 0;
}
