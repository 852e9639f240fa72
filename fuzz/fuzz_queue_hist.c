/*
 * fuzz_queue_hist.c - libFuzzer harness for the delivery-history reader
 *                     (src/queue/queue_hist.c: queue_hist_read_fd and
 *                     queue_hist_json)
 *
 * Owns:     one memfd per input.
 * Lifetime: one input at a time.
 * Errors:   a broken invariant aborts (libFuzzer reports it as a crash).
 * Context:  libFuzzer's thread.
 *
 * The input is a queue file (at most 1 MiB) put in a memfd. The reader
 * walks any bytes without trusting a length: every attempt it hands out
 * must have bounded, NUL-terminated strings and a known result. When the
 * record parser accepts the file, the "history" array is built for the
 * message it found and must stay within QUEUE_HIST_JSON_MAX entries, each
 * naming an existing recipient.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "queue/queue_rec.h"
#include "queue/queue_tool.h"
#include "queue/queue_view.h"

#define FUZZ_MAX (1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fuzz_check_attempt - what every attempt handed out promises */
static int
fuzz_check_attempt(void *arg, const struct queue_attempt *a)
{
	(void)arg;
	if (strnlen(a->host, sizeof(a->host)) > QUEUE_ATTEMPT_HOST_MAX ||
	    strnlen(a->dsn, sizeof(a->dsn)) > QUEUE_REC_DSN_MAX ||
	    strnlen(a->reply, sizeof(a->reply)) > QUEUE_ATTEMPT_REPLY_MAX ||
	    (unsigned)a->result > QUEUE_ATTEMPT_BOUNCED)
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct queue_parse *p;
	uint64_t omitted;
	json_t *j;
	int fd;

	if (size > FUZZ_MAX)
		return 0;
	if ((fd = memfd_create("fuzz", MFD_CLOEXEC)) < 0)
		return 0;
	if (size > 0 && write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	(void)queue_hist_read_fd(fd, fuzz_check_attempt, NULL);
	if ((p = malloc(sizeof(*p))) == NULL)
		abort();
	if (queue_rec_parse_buffer(p, data, size) == QUEUE_PARSE_OK) {
		if ((j = queue_hist_json(fd, &p->msg, &omitted)) != NULL) {
			size_t i;
			json_t *e;

			if (json_array_size(j) > QUEUE_HIST_JSON_MAX)
				abort();
			json_array_foreach(j, i, e) {
				json_int_t r = json_integer_value(json_object_get(e, "rcpt"));
				if (r < 0 || (size_t)r >= p->msg.nrcpt)
					abort();
			}
			json_decref(j);
		}
	}
	queue_rec_parse_free(p);
	free(p);
	close(fd);
	return 0;
}
