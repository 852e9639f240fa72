/*
 * fuzz_sendmail_msg.c - libFuzzer harness for sendmail's input handling
 *                     (src/ctl/sendmail_msg.c): address lists and the message stream
 *
 * Owns:     nothing.
 * Lifetime: one input at a time.
 * Errors:   a broken invariant aborts (libFuzzer reports it as a crash).
 * Context:  libFuzzer's thread.
 *
 * The first octet picks the mode: even = one header value through
 * sendmail_msg_addr_list(); odd = the whole path (read the header section from a
 * pipe, take -t recipients, write the DATA stream), with bit 1 = -i. The
 * stream must come out with CRLF line ends only, no line starting with a
 * lone '.' other than the final one, and end with "\r\n.\r\n".
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl/ctl_int.h"
#include "ctl/sendmail.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_sink {
	unsigned char *buf;
	size_t len, cap;
};

static int
fuzz_write(void *arg, const void *p, size_t n)
{
	struct fuzz_sink *s = arg;

	if (n > s->cap - s->len)
		abort();
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	return 0;
}

/* fuzz_check_stream - CRLF only, dot-stuffed, terminated */
static void
fuzz_check_stream(const unsigned char *b, size_t n)
{
	size_t line = 0;

	if (n < 3 || memcmp(b + n - 3, ".\r\n", 3) != 0)
		abort();
	if (n > 3 && (n < 5 || memcmp(b + n - 5, "\r\n", 2) != 0))
		abort();
	for (size_t i = 0; i < n; i++) {
		if (b[i] == '\n' && (i == 0 || b[i - 1] != '\r'))
			abort();
		if (b[i] == '\r' && (i + 1 >= n || b[i + 1] != '\n'))
			abort();
		if (b[i] == '\n') {
			/* a line of one '.' may only be the terminator */
			if (i - line == 2 && b[line] == '.' && i + 1 != n)
				abort();
			line = i + 1;
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sendmail_msg_reader r;
	struct sendmail_msg_out *o;
	struct fuzz_sink s;
	char **list = NULL;
	size_t n = 0;
	int fds[2];

	if (size < 1 || size > 32768)
		return 0;
	if ((data[0] & 1) == 0) {
		char *copy = malloc(size - 1 ? size - 1 : 1);

		if (copy == NULL)
			return 0;
		memcpy(copy, data + 1, size - 1);
		(void)sendmail_msg_addr_list(copy, size - 1, &list, &n);
		for (size_t i = 0; i < n; i++) {
			if (list[i][0] == '\0')
				abort();
			for (const char *c = list[i]; *c != '\0'; c++)
				if ((unsigned char)*c < 0x20 || *c == 0x7f)
					abort();
			free(list[i]);
		}
		free(list);
		free(copy);
		return 0;
	}
	if (pipe(fds) < 0)
		return 0;
	if (write(fds[1], data + 1, size - 1) != (ssize_t)(size - 1))
		abort();
	close(fds[1]);
	if (sendmail_msg_reader_init(&r, fds[0], (data[0] & 2) == 0) < 0) {
		close(fds[0]);
		return 0;
	}
	o = malloc(sizeof(*o));
	s.cap = 4 * size + 16;
	s.len = 0;
	s.buf = malloc(s.cap);
	if (o != NULL && s.buf != NULL && sendmail_msg_read_headers(&r) == 0) {
		(void)sendmail_msg_extract_rcpts(&r, 1, &list, &n);
		sendmail_msg_out_init(o, fuzz_write, &s);
		if (sendmail_msg_out_headers(o, &r) < 0 || sendmail_msg_out_body(o, &r) < 0)
			abort();
		fuzz_check_stream(s.buf, s.len);
	}
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
	free(s.buf);
	free(o);
	sendmail_msg_reader_free(&r);
	close(fds[0]);
	return 0;
}
