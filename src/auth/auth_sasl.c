/*
 * auth_sasl.c - the client side of an SMTP AUTH exchange (RFC 4954) as
 *               data: base64 responses, "*" cancel, PLAIN messages
 *               (RFC 4616), LOGIN user names
 *
 * Owns:     nothing; results point into the caller's buffers.
 * Lifetime: stateless.
 * Errors:   AUTH_SASL_* codes; nothing is ever allocated.
 * Context:  any thread.
 *
 * Everything here sees untrusted bytes: lengths are checked before every
 * write, and fuzz/fuzz_smtpd_auth.c drives these functions together with
 * the command handler (src/smtpd/smtpd_auth.c).
 */
#include "auth/auth.h"
#include "lib/base64.h"

#include <errno.h>
#include <string.h>

/*
 * auth_sasl_decode - see auth.h: strict base64 (lib/base64.c); "=" alone
 * is the empty response and "*" the cancel (RFC 4954 §4).
 */
enum auth_sasl_result
auth_sasl_decode(const char *line, size_t len, char *out, size_t size, size_t *outlen)
{
	*outlen = 0;
	if (size == 0)
		return AUTH_SASL_BAD_BASE64;
	out[0] = '\0';
	if (len == 1 && line[0] == '*')
		return AUTH_SASL_CANCEL;
	if (len == 1 && line[0] == '=')
		return AUTH_SASL_OK;
	if (len == 0)
		return AUTH_SASL_BAD_BASE64;
	if (base64_decode(line, len, out, size - 1, outlen) < 0)    /* writes nothing then */
		return errno == EMSGSIZE ? AUTH_SASL_BAD_MESSAGE : AUTH_SASL_BAD_BASE64;
	out[*outlen] = '\0';
	return AUTH_SASL_OK;
}

/* auth_sasl_valid_user - see auth.h: 1..AUTH_USER_MAX octets, no controls, no NUL, no ':' */
int
auth_sasl_valid_user(const char *user, size_t len)
{
	if (len == 0 || len > AUTH_USER_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)user[i];
		if (c <= ' ' || c == 0x7f || c == ':')
			return 0;
	}
	return 1;
}

/* auth_sasl_plain - see auth.h */
enum auth_sasl_result
auth_sasl_plain(const char *msg, size_t len, const char **user, size_t *ulen,
    const char **pass, size_t *plen)
{
	const char *n1 = memchr(msg, '\0', len), *n2;
	size_t zlen;

	if (n1 == NULL)
		return AUTH_SASL_BAD_MESSAGE;
	zlen = (size_t)(n1 - msg);
	n2 = memchr(n1 + 1, '\0', len - zlen - 1);
	if (n2 == NULL)
		return AUTH_SASL_BAD_MESSAGE;
	*user = n1 + 1;
	*ulen = (size_t)(n2 - *user);
	*pass = n2 + 1;
	*plen = len - (size_t)(*pass - msg);
	if (!auth_sasl_valid_user(*user, *ulen) || *plen == 0 || *plen > AUTH_PASS_MAX ||
	    memchr(*pass, '\0', *plen) != NULL)
		return AUTH_SASL_BAD_MESSAGE;
	/* an authorization identity other than the user itself is not supported */
	if (zlen != 0 && (zlen != *ulen || memcmp(msg, *user, zlen) != 0))
		return AUTH_SASL_BAD_MESSAGE;
	return AUTH_SASL_OK;
}
