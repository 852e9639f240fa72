/*
 * test_log.c - table-driven tests for src/lib/log.c: the line format of
 *              each severity, errno text and its preservation, the cut of
 *              an over-long line, the trace mask, fatal's exit status and
 *              panic's abort
 *
 * Owns:     one child process per row (its stderr is a pipe read here).
 * Lifetime: one run.
 * Errors:   each failing row prints "got X, want Y" and fails its test.
 * Context:  single thread; forks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"

#define LONG_TEXT 5000

/* row_run - what child row i writes to stderr (it exits on its own only for fatal/panic) */
static void
row_run(int i)
{
	static char big[LONG_TEXT + 1];

	log_init("prog", TRACE_QUEUE);
	switch (i) {
	case 0:
		log_info("hello %d", 5);
		break;
	case 1:
		log_warnx("disk %s", "full");
		break;
	case 2:
		errno = ENOENT;
		log_warn("open %s", "x.pem");
		/* the caller's errno survives the log line */
		if (errno != ENOENT)
			log_info("errno changed");
		break;
	case 3:
		log_debug("d");
		break;
	case 4:
		log_trace(TRACE_QUEUE, "queue %s", "on");
		log_trace(TRACE_SMTPD, "smtpd %s", "off");
		break;
	case 5:
		memset(big, 'x', LONG_TEXT);
		errno = EIO;
		log_warn("%s", big);
		break;
	case 6:
		errno = EACCES;
		fatal("cannot read %s", "mtad.conf");
	case 7:
		fatalx("bad %s", "value");
	case 8:
		panic("broken %d", 7);
	default:
		break;
	}
}

/* capture - run row i in a child; its stderr into out (NUL-terminated), its wait status */
static int
capture(int i, char *out, size_t size)
{
	int fds[2], status;
	size_t n = 0;
	ssize_t r;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	if ((pid = fork()) == 0) {
		close(fds[0]);
		if (dup2(fds[1], STDERR_FILENO) < 0)
			util_cov_exit(99);
		row_run(i);
		util_cov_exit(0);
	}
	assert_true(pid > 0);
	close(fds[1]);
	while (n + 1 < size && (r = read(fds[0], out + n, size - 1 - n)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void
test_lines(void **state)
{
	static const struct {
		const char *want;
		int exit_status;            /* -1: killed by SIGABRT */
	} rows[] = {
		{ "prog: hello 5\n", 0 },
		{ "prog: warning: disk full\n", 0 },
		{ "prog: warning: open x.pem: No such file or directory\n", 0 },
		{ "prog: debug: d\n", 0 },
		{ "prog: debug: queue on\n", 0 },
		{ NULL, 0 },                /* row 5: checked below */
		{ "prog: fatal: cannot read mtad.conf: Permission denied\n", 1 },
		{ "prog: fatal: bad value\n", 1 },
		{ "prog: panic: broken 7\n", -1 },
	};
	static char out[LONG_TEXT * 2];
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int st = capture((int)i, out, sizeof(out));
		int ok_status = rows[i].exit_status < 0 ?
		    WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT :
		    WIFEXITED(st) && WEXITSTATUS(st) == rows[i].exit_status;

		if (!ok_status) {
			print_error("row %zu: got wait status 0x%x, want %d\n", i, (unsigned)st,
			    rows[i].exit_status);
			failed++;
		}
		if (rows[i].want != NULL && strcmp(out, rows[i].want) != 0) {
			print_error("row %zu: got \"%s\", want \"%s\"\n", i, out, rows[i].want);
			failed++;
		}
	}
	/*
	 * Over-long: one write of 2,047 bytes, the prefix and the text cut,
	 * a line end last; no room is left for the errno text.
	 */
	(void)capture(5, out, sizeof(out));
	if (strlen(out) != 2047 || strncmp(out, "prog: warning: xxx", 18) != 0 ||
	    out[2045] != 'x' || out[2046] != '\n' || strstr(out, "error") != NULL) {
		print_error("long line: got %zu bytes \"%.30s...%s\"\n", strlen(out), out,
		    strlen(out) > 10 ? out + strlen(out) - 10 : out);
		failed++;
	}
	assert_int_equal(failed, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
