/*
 * test_smtpc_auth.c - table-driven tests for src/smtpc/smtpc_auth.c: the
 *                     EHLO AUTH line and the SASL exchanges (PLAIN, LOGIN,
 *                     XOAUTH2) as pure functions
 *
 * Owns:     nothing beyond each row.
 * Lifetime: one run.
 * Errors:   each failing row prints "got X, want Y" and fails its test.
 * Context:  single thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "smtpc/smtpc_int.h"

/* AUTH arguments as servers write them */
static void
test_mechs(void **state)
{
	static const struct {
		const char *in;
		unsigned want;
	} rows[] = {
		{ " PLAIN LOGIN", SMTPC_MECH_PLAIN | SMTPC_MECH_LOGIN },
		{ "=PLAIN LOGIN", SMTPC_MECH_PLAIN | SMTPC_MECH_LOGIN },      /* old "AUTH=" form */
		{ " login", SMTPC_MECH_LOGIN },
		{ " CRAM-MD5 DIGEST-MD5 XOAUTH2", SMTPC_MECH_XOAUTH2 },
		{ " PLAINX LOGINY", 0 },
		{ "", 0 },
		{ "   ", 0 },
		{ " GSSAPI NTLM PLAIN", SMTPC_MECH_PLAIN },
	};
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		unsigned got = smtpc_auth_mechs(rows[i].in, strlen(rows[i].in));

		if (got != rows[i].want) {
			printf("row %zu '%s': got 0x%x, want 0x%x\n", i, rows[i].in, got, rows[i].want);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

static void
reply(struct smtpc_reply *r, int code, const char *text)
{
	memset(r, 0, sizeof(*r));
	r->code = code;
	snprintf(r->text, sizeof(r->text), "%s", text);
}

/*
 * Each row: what the server offers, whether XOAUTH2 is asked for, the
 * first line, then up to three (server reply, wanted result, wanted line).
 */
static void
test_exchanges(void **state)
{
	static const struct {
		unsigned offered;
		int xoauth2;
		const char *first;           /* NULL: smtpc_auth_sasl_start must fail */
		struct {
			int code;
			const char *text;
			enum smtpc_sasl_rc rc;
			const char *line;
		} steps[3];
	} rows[] = {
		/* PLAIN preferred; base64("\0user\0pw") */
		{ SMTPC_MECH_PLAIN | SMTPC_MECH_LOGIN, 0, "AUTH PLAIN AHVzZXIAcHc=",
		  { { 235, "235 2.7.0 Authentication successful", SMTPC_SASL_OK, NULL } } },
		{ SMTPC_MECH_PLAIN, 0, "AUTH PLAIN AHVzZXIAcHc=",
		  { { 535, "535 5.7.8 Error: authentication failed", SMTPC_SASL_FAIL, NULL } } },
		/* a server that wants the response after an empty challenge */
		{ SMTPC_MECH_PLAIN, 0, "AUTH PLAIN AHVzZXIAcHc=",
		  { { 334, "334 ", SMTPC_SASL_SEND, "AHVzZXIAcHc=" },
		    { 235, "235 ok", SMTPC_SASL_OK, NULL } } },
		{ SMTPC_MECH_PLAIN, 0, "AUTH PLAIN AHVzZXIAcHc=",
		  { { 334, "334 ", SMTPC_SASL_SEND, "AHVzZXIAcHc=" },
		    { 334, "334 ", SMTPC_SASL_FAIL, NULL } } },
		/* LOGIN: Username:, Password: */
		{ SMTPC_MECH_LOGIN, 0, "AUTH LOGIN",
		  { { 334, "334 VXNlcm5hbWU6", SMTPC_SASL_SEND, "dXNlcg==" },
		    { 334, "334 UGFzc3dvcmQ6", SMTPC_SASL_SEND, "cHc=" },
		    { 235, "235 2.7.0 ok", SMTPC_SASL_OK, NULL } } },
		/* a server asking for the password first gets the password */
		{ SMTPC_MECH_LOGIN, 0, "AUTH LOGIN",
		  { { 334, "334 UGFzc3dvcmQ6", SMTPC_SASL_SEND, "cHc=" },
		    { 334, "334 UGFzc3dvcmQ6", SMTPC_SASL_FAIL, NULL } } },
		{ SMTPC_MECH_LOGIN, 0, "AUTH LOGIN",
		  { { 454, "454 4.7.0 Temporary authentication failure", SMTPC_SASL_FAIL, NULL } } },
		/* XOAUTH2: base64("user=user\1auth=Bearer pw\1\1"); an error comes as 334 JSON */
		{ SMTPC_MECH_XOAUTH2 | SMTPC_MECH_PLAIN, 1, "AUTH XOAUTH2 dXNlcj11c2VyAWF1dGg9QmVhcmVyIHB3AQE=",
		  { { 235, "235 2.7.0 Accepted", SMTPC_SASL_OK, NULL } } },
		{ SMTPC_MECH_XOAUTH2, 1, "AUTH XOAUTH2 dXNlcj11c2VyAWF1dGg9QmVhcmVyIHB3AQE=",
		  { { 334, "334 eyJzdGF0dXMiOiI0MDEifQ==", SMTPC_SASL_SEND, "" },
		    { 535, "535 5.7.8 Username and Password not accepted", SMTPC_SASL_FAIL, NULL } } },
		/* nothing usable offered */
		{ SMTPC_MECH_XOAUTH2, 0, NULL, { { 0, NULL, 0, NULL } } },
		{ SMTPC_MECH_PLAIN | SMTPC_MECH_LOGIN, 1, NULL, { { 0, NULL, 0, NULL } } },
		{ 0, 0, NULL, { { 0, NULL, 0, NULL } } },
		/* a 235 before anything was asked is out of step only when nothing was sent */
		{ SMTPC_MECH_LOGIN, 0, "AUTH LOGIN",
		  { { 250, "250 ok", SMTPC_SASL_FAIL, NULL } } },
	};
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct smtpc_sasl s;
		struct smtpc_reply r;
		char line[SMTPC_AUTH_LINE_MAX + 1];
		int rc = smtpc_auth_sasl_start(&s, rows[i].offered, rows[i].xoauth2, "user", "pw", line,
		    sizeof(line));

		if (rows[i].first == NULL) {
			if (rc != -1) {
				printf("row %zu: got start %d, want -1\n", i, rc);
				failed++;
			}
			continue;
		}
		if (rc != 0 || strcmp(line, rows[i].first) != 0) {
			printf("row %zu: got start %d '%s', want '%s'\n", i, rc, line, rows[i].first);
			failed++;
			continue;
		}
		for (size_t k = 0; k < 3 && rows[i].steps[k].text != NULL; k++) {
			enum smtpc_sasl_rc got;

			reply(&r, rows[i].steps[k].code, rows[i].steps[k].text);
			line[0] = '\0';
			got = smtpc_auth_sasl_reply(&s, &r, line, sizeof(line));
			if (got != rows[i].steps[k].rc || (rows[i].steps[k].line != NULL &&
			    strcmp(line, rows[i].steps[k].line) != 0)) {
				printf("row %zu step %zu: got %d '%s', want %d '%s'\n", i, k, got, line,
				    rows[i].steps[k].rc, rows[i].steps[k].line ? rows[i].steps[k].line : "");
				failed++;
				break;
			}
		}
	}
	assert_int_equal(failed, 0);
}

/* the XOAUTH2 error is kept, decoded and printable, for the log */
static void
test_xoauth2_why(void **state)
{
	struct smtpc_sasl s;
	struct smtpc_reply r;
	char line[SMTPC_AUTH_LINE_MAX + 1];

	(void)state;
	assert_int_equal(smtpc_auth_sasl_start(&s, SMTPC_MECH_XOAUTH2, 1, "u", "t", line,
	    sizeof(line)), 0);
	reply(&r, 334, "334 eyJzdGF0dXMiOiI0MDEifQ==");
	assert_int_equal(smtpc_auth_sasl_reply(&s, &r, line, sizeof(line)), SMTPC_SASL_SEND);
	assert_string_equal(s.why, "{\"status\":\"401\"}");
	/* not base64: no text, still answered */
	assert_int_equal(smtpc_auth_sasl_start(&s, SMTPC_MECH_XOAUTH2, 1, "u", "t", line,
	    sizeof(line)), 0);
	reply(&r, 334, "334 !!not base64!!");
	assert_int_equal(smtpc_auth_sasl_reply(&s, &r, line, sizeof(line)), SMTPC_SASL_SEND);
	assert_string_equal(s.why, "");
}

/* credentials past the limits are refused, never cut */
static void
test_limits(void **state)
{
	static char big[SMTPC_AUTH_SECRET_MAX + 2];
	struct smtpc_sasl s;
	char line[SMTPC_AUTH_LINE_MAX + 1];

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	assert_int_equal(smtpc_auth_sasl_start(&s, SMTPC_MECH_PLAIN, 0, "u", big, line, sizeof(line)),
	    -1);
	big[SMTPC_AUTH_SECRET_MAX] = '\0';
	assert_int_equal(smtpc_auth_sasl_start(&s, SMTPC_MECH_PLAIN, 0, "u", big, line, sizeof(line)),
	    0);
	assert_true(strlen(line) < sizeof(line));
	/* a too small output buffer fails instead of truncating */
	assert_int_equal(smtpc_auth_sasl_start(&s, SMTPC_MECH_PLAIN, 0, "u", big, line, 64), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mechs),
		cmocka_unit_test(test_exchanges),
		cmocka_unit_test(test_xoauth2_why),
		cmocka_unit_test(test_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
