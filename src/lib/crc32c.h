/*
 * crc32c.h - CRC-32C (Castagnoli), as used by iSCSI, ext4 and SCTP
 *
 * Owns:     nothing (a constant table built on first use).
 * Lifetime: stateless.
 * Errors:   none.
 * Context:  any thread (the table is built once under pthread_once).
 *
 * Incremental use: crc = crc32c(0, a, alen); crc = crc32c(crc, b, blen);
 * gives the same value as one call over a followed by b.
 */
#ifndef MTAD_CRC32C_H
#define MTAD_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* crc32c - extend crc (0 to start) over len bytes at p */
uint32_t crc32c(uint32_t crc, const void *p, size_t len);
/*
 * crc32c_portable - the same value without the CPU instruction: the tables
 * crc32c() uses where SSE 4.2 is missing, callable here so that the tests
 * compare the two on every machine.
 */
uint32_t crc32c_portable(uint32_t crc, const void *p, size_t len);

#endif
