/*
 * base64.h - base64 (RFC 4648 §4): encoding, and strict decoding of
 *            untrusted text (public interface of src/lib/base64.c)
 *
 * Owns:     nothing; the output goes to the caller's buffer.
 * Lifetime: stateless.
 * Errors:   -1 with errno EINVAL (not strict base64) or EMSGSIZE (the
 *           output does not fit in size octets).
 * Context:  any thread.
 *
 * Decoding accepts one spelling per octet string: groups of four
 * characters of the standard alphabet, '=' only to pad the last group (one
 * or two), the pad bits zero (RFC 4648 §3.5), nothing else (no blanks, no
 * line breaks). Empty input is the empty string. The input is checked
 * whole before a byte is written, so a failed decode leaves out untouched.
 */
#ifndef MTAD_LIB_BASE64_H
#define MTAD_LIB_BASE64_H

#include <stddef.h>

/* BASE64_LEN - characters that n octets encode to (without the NUL) */
#define BASE64_LEN(n) (((n) + 2) / 3 * 4)

/* base64_encode - in[0..len) as NUL-terminated base64 into out[size]; its length, or -1 */
int base64_encode(const void *in, size_t len, char *out, size_t size);
/* base64_decode - strict base64 in[0..len) into out[size] (no NUL added), *outlen octets; 0 or -1 */
int base64_decode(const char *in, size_t len, void *out, size_t size, size_t *outlen);

#endif
