/*
 * ctl_show.c - mtactl show ID [--body] [--json]: one message's envelope,
 *              recipients, delivery history and headers (or its content)
 *
 * Owns:     the message's JSON document, released before return.
 * Lifetime: one command.
 * Errors:   the exit statuses of ctl.h, with "mtactl: ..." on stderr.
 * Context:  the mtactl process; blocking I/O with deadlines.
 *
 * The message comes from the API's /api/queue/ID, or from data_dir while
 * mtad is stopped (through queue_view_detail(), the API's own encoder); the
 * headers and the content are read from data_dir in both cases.
 */
#include "ctl/ctl.h"
#include "ctl/ctl_int.h"
#include "lib/util.h"
#include "mail/config.h"
#include "queue/queue.h"
#include "queue/queue_view.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

/* ctl_show_headers_parse - a raw header section into [{"name","value"}] (unfolded) */
static json_t *
ctl_show_headers_parse(const char *buf, size_t len)
{
	json_t *arr = json_array(), *cur = NULL;
	size_t i = 0;

	if (arr == NULL)
		return NULL;
	while (i < len) {
		size_t j = i, ll;

		while (j < len && buf[j] != '\n')
			j++;
		ll = j - i;
		if (ll > 0 && buf[i + ll - 1] == '\r')
			ll--;
		if (ll == 0)
			break;
		if ((buf[i] == ' ' || buf[i] == '\t') && cur != NULL) {
			json_t *v = json_object_get(cur, "value");
			size_t pl = json_string_length(v), k = i;
			char *cat;

			while (k < i + ll && (buf[k] == ' ' || buf[k] == '\t'))
				k++;
			if ((cat = malloc(pl + 1 + (i + ll - k))) == NULL)
				goto fail;
			memcpy(cat, json_string_value(v), pl);
			cat[pl] = ' ';
			memcpy(cat + pl + 1, buf + k, i + ll - k);
			if (ctl_cmd_jset(cur, "value", json_stringn_nocheck(cat, pl + 1 + (i + ll - k))) < 0) {
				free(cat);
				goto fail;
			}
			free(cat);
		} else {
			const char *colon = memchr(buf + i, ':', ll);
			size_t nl = colon != NULL ? (size_t)(colon - (buf + i)) : ll;
			size_t vs = colon != NULL ? nl + 1 : ll;

			while (vs < ll && (buf[i + vs] == ' ' || buf[i + vs] == '\t'))
				vs++;
			if ((cur = json_object()) == NULL || json_array_append_new(arr, cur) < 0 ||
			    ctl_cmd_jset(cur, "name", json_stringn_nocheck(buf + i, nl)) < 0 ||
			    ctl_cmd_jset(cur, "value", json_stringn_nocheck(buf + i + vs, ll - vs)) < 0)
				goto fail;
		}
		i = j + 1;
	}
	return arr;
fail:
	json_decref(arr);
	return NULL;
}

/* A bounded in-memory sink for ctl_queue_content(). */
struct ctl_sink {
	char  *buf;
	size_t len, cap;
};

static int
ctl_show_sink_write(void *arg, const void *p, size_t n)
{
	struct ctl_sink *k = arg;

	if (n > k->cap - k->len)
		n = k->cap - k->len;        /* past CTL_HEAD_MAX: cut, like the API */
	memcpy(k->buf + k->len, p, n);
	k->len += n;
	return 0;
}

static int
ctl_show_fd_write(void *arg, const void *p, size_t n)
{
	return ctl_net_write_all(*(int *)arg, p, n, 60000);
}

/* ctl_show_file_headers - the header section of a queued message, read from data_dir */
static json_t *
ctl_show_file_headers(struct ctl *c, const char *id)
{
	struct ctl_sink k;
	char err[512];
	json_t *arr = NULL;

	k.len = 0;
	k.cap = CTL_HEAD_MAX;
	if ((k.buf = malloc(k.cap)) == NULL)
		return NULL;
	if (ctl_queue_content(c->cfg->data_dir, id, 1, ctl_show_sink_write, &k, err, sizeof(err)) == 0)
		arr = ctl_show_headers_parse(k.buf, k.len);
	else
		arr = json_array();
	free(k.buf);
	return arr;
}

/*
 * ctl_show_history - the delivery attempts, oldest first: when, the
 * recipient, the result, the host and the enhanced status, then the reply
 */
static void
ctl_show_history(json_t *m)
{
	json_t *hist = json_object_get(m, "history"), *e;
	json_int_t omitted = json_integer_value(json_object_get(m, "history_omitted"));
	char when[64];
	size_t i;

	if (json_array_size(hist) == 0)
		return;
	printf("History:\n");
	json_array_foreach(hist, i, e) {
		const char *host = json_string_value(json_object_get(e, "host"));
		const char *dsn = json_string_value(json_object_get(e, "dsn"));

		if (i == 1 && omitted > 0)
			printf("  [%lld attempt%s not shown]\n", (long long)omitted,
			    omitted == 1 ? "" : "s");
		ctl_cmd_time(json_object_get(e, "time"), when, sizeof(when), 0);
		printf("  %s  #%lld <", when,
		    (long long)json_integer_value(json_object_get(e, "attempt")));
		ctl_cmd_print_clean(stdout, json_string_value(json_object_get(e, "recipient")));
		printf(">  ");
		ctl_cmd_print_clean(stdout, json_string_value(json_object_get(e, "result")));
		printf("  %s", host != NULL ? "" : "(no host)");
		ctl_cmd_print_clean(stdout, host);
		if (dsn != NULL) {
			printf("  dsn=");
			ctl_cmd_print_clean(stdout, dsn);
		}
		printf("\n      ");
		ctl_cmd_print_clean(stdout, json_string_value(json_object_get(e, "reply")));
		printf("\n");
	}
}

static void
ctl_show_print(struct ctl *c, json_t *m)
{
	json_t *client = json_object_get(m, "client"), *flags = json_object_get(m, "flags");
	json_t *r, *h;
	const char *sender = json_string_value(json_object_get(m, "sender"));
	char when[64];
	size_t i;

	(void)c;
	ctl_cmd_time(json_object_get(m, "arrival"), when, sizeof(when), 1);
	printf("Queue ID:   ");
	ctl_cmd_print_clean(stdout, json_string_value(json_object_get(m, "id")));
	printf("\nState:      ");
	ctl_cmd_print_clean(stdout, json_string_value(json_object_get(m, "state")));
	printf("\nArrival:    %s\nSize:       %lld bytes\nSender:     <", when,
	    (long long)json_integer_value(json_object_get(m, "size")));
	ctl_cmd_print_clean(stdout, sender);
	printf(">\n");
	if (json_is_object(client) && json_is_string(json_object_get(client, "addr"))) {
		printf("Client:     ");
		ctl_cmd_print_clean(stdout, json_string_value(json_object_get(client, "name")));
		printf("[");
		ctl_cmd_print_clean(stdout, json_string_value(json_object_get(client, "addr")));
		printf("]");
		if (json_is_string(json_object_get(client, "helo"))) {
			printf(" helo=");
			ctl_cmd_print_clean(stdout, json_string_value(json_object_get(client, "helo")));
		}
		printf("\n");
	}
	if (json_array_size(flags) > 0) {
		printf("Flags:     ");
		json_array_foreach(flags, i, r) {
			putchar(' ');
			ctl_cmd_print_clean(stdout, json_string_value(r));
		}
		printf("\n");
	}
	printf("Recipients:\n");
	json_array_foreach(json_object_get(m, "recipients"), i, r) {
		json_int_t att = json_integer_value(json_object_get(r, "attempts"));
		const char *dsn = json_string_value(json_object_get(r, "dsn"));
		const char *reply = json_string_value(json_object_get(r, "last_reply"));

		printf("  <");
		ctl_cmd_print_clean(stdout, json_string_value(json_object_get(r, "address")));
		printf(">  ");
		ctl_cmd_print_clean(stdout, json_string_value(json_object_get(r, "state")));
		printf(", %lld attempt%s", (long long)att, att == 1 ? "" : "s");
		if (json_is_integer(json_object_get(r, "next_try"))) {
			ctl_cmd_time(json_object_get(r, "next_try"), when, sizeof(when), 0);
			printf(", next try %s", when);
		}
		if (dsn != NULL) {
			printf(", dsn=");
			ctl_cmd_print_clean(stdout, dsn);
		}
		printf("\n");
		if (reply != NULL) {
			printf("      last reply: ");
			ctl_cmd_print_clean(stdout, reply);
			printf("\n");
		}
	}
	ctl_show_history(m);
	if (c->body)
		return;     /* the content follows, headers included */
	if (json_is_array(h = json_object_get(m, "headers"))) {
		printf("Headers:\n");
		json_array_foreach(h, i, r) {
			printf("  ");
			ctl_cmd_print_clean(stdout, json_string_value(json_object_get(r, "name")));
			printf(": ");
			ctl_cmd_print_clean(stdout, json_string_value(json_object_get(r, "value")));
			printf("\n");
		}
		if (json_is_true(json_object_get(m, "headers_truncated")))
			printf("  [...]\n");
	}
}

/* ctl_show_body - the content as delivered, raw (CRLF), from data_dir */
static int
ctl_show_body(struct ctl *c, const char *id)
{
	char err[1024];
	int out = STDOUT_FILENO;

	fflush(stdout);
	if (ctl_queue_content(c->cfg->data_dir, id, 0, ctl_show_fd_write, &out, err, sizeof(err)) < 0) {
		int e = errno;

		if (e == EACCES || e == EPERM) {
			ctl_cmd_err(c, "%s (the message content is read from data_dir: run as root "
			    "or the mail_owner user)", err);
			return CTL_EX_PERM;
		}
		ctl_cmd_err(c, "%s", err);
		return e == ENOENT ? CTL_EX_NOTFOUND : CTL_EX_FAIL;
	}
	return CTL_EX_OK;
}

/* ctl_show_cmd - mtactl show ID [--body] [--json] */
int
ctl_show_cmd(struct ctl *c, const char *arg)
{
	char path[128], err[1024], id[72];
	json_t *m = NULL;
	int rc, status;

	if (ctl_cmd_id_norm(arg, id, sizeof(id)) < 0) {
		ctl_cmd_err(c, "%s: no such message", arg);
		return CTL_EX_NOTFOUND;
	}
	if (util_bsnprintf(path, sizeof(path), "/api/queue/%s", id) < 0)
		return CTL_EX_FAIL;
	rc = ctl_cmd_api(c, "GET", path, NULL, &m, &status);
	if (rc == CTL_EX_NODAEMON) {
		struct queue_msg qm;

		if (ctl_queue_load(c->cfg->data_dir, id, &qm, err, sizeof(err)) < 0) {
			if (errno == ENOENT) {
				ctl_cmd_err(c, "%s: no such message", id);
				return CTL_EX_NOTFOUND;
			}
			return ctl_cmd_direct_error(c, errno, err);
		}
		m = queue_view_detail(&qm, util_now_us());
		ctl_queue_msg_free(&qm);
		if (m == NULL || (!c->body && ctl_cmd_jset(m, "headers", ctl_show_file_headers(c, id)) < 0) ||
		    ctl_queue_history(c->cfg->data_dir, id, m) < 0) {
			json_decref(m);
			ctl_cmd_err(c, "out of memory");
			return CTL_EX_FAIL;
		}
	} else if (rc != CTL_EX_OK) {
		return rc;
	} else if (status == 404) {
		json_decref(m);
		ctl_cmd_err(c, "%s: no such message", id);
		return CTL_EX_NOTFOUND;
	} else if (status != 200 || !json_is_object(m)) {
		ctl_cmd_err(c, "GET %s: HTTP %d: %s", path, status, ctl_cmd_api_error(m, "bad reply"));
		json_decref(m);
		return CTL_EX_FAIL;
	}
	if (c->json) {
		char *s = json_dumps(m, JSON_INDENT(2) | JSON_ENSURE_ASCII);

		json_decref(m);
		if (s == NULL)
			return CTL_EX_FAIL;
		puts(s);
		free(s);
		return CTL_EX_OK;
	}
	ctl_show_print(c, m);
	json_decref(m);
	if (c->body) {
		printf("\n");
		return ctl_show_body(c, id);
	}
	return CTL_EX_OK;
}

