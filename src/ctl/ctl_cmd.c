/*
 * ctl_cmd.c - mtactl's commands: queue (mailq, search), flush, delete,
 *             hold, release, stats, qshape, check-config, health, drain,
 *             dkim-record (show is in ctl_show.c), and what they share:
 *             the API client, the common message shape, printing
 *
 * Owns:     one command's configuration, API replies and JSON documents,
 *           all released before ctl_cmd_main() returns.
 * Lifetime: ctl_cmd_main() runs one command line.
 * Errors:   the exit statuses of ctl.h, with "mtactl: ..." on stderr.
 * Context:  a command-line process; blocking I/O with deadlines.
 *
 * A running mtad is asked through its HTTP/JSON API on ui_address:ui_port
 * (docs/web-ui.md), with the configuration's basic-auth credentials and the
 * X-Requested-With header its cross-site check wants. When nothing answers
 * there, the read-only commands (queue, show, stats) read <data_dir>
 * directly (ctl_queue.c); the others fail with CTL_EX_NODAEMON, because
 * only the daemon changes its queue.
 *
 * Both sources are turned into one JSON shape, the API's message detail
 * ({"id", "sender", "arrival", "size", "state", "held", "recipients":
 * [{"address", "state", "attempts", "next_try", "last_reply", "dsn"}], ...}),
 * and everything is printed from that: a message read from data_dir goes
 * through the API's own encoder, queue_view_detail() (src/queue/queue_view.h).
 *
 * The filters (--domain, --state, ...; ctl_filter.c) go to the API as its
 * query parameters; offline, the listing applies the API's own filter
 * (http_filter_match()) to each message read.
 */
#include "ctl/ctl.h"
#include "ctl/ctl_int.h"
#include "queue/queue_view.h"
#include "lib/util.h"
#include "mail/config.h"
#include "queue/queue.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

extern char **environ;

#define CTL_PAGE        500        /* the API's largest page (HTTP_MAX_PER_PAGE) */
#define CTL_LIST_RCPTS  3          /* recipients in an /api/queue row */


/* What a mailq listing adds up. */
struct ctl_mailq {
	struct ctl *c;
	uint64_t count, bytes;
	int header_done;
};

const char *
ctl_cmd_config_path(const char *opt)
{
	const char *env;

	if (opt != NULL)
		return opt;
	if ((env = getenv("MTAD_CONFIG")) != NULL && env[0] != '\0')
		return env;
	return CTL_DEFAULT_CONFIG;
}

static const char ctl_filter_usage[] =
    "filters (all given must match):\n"
    "  --domain D              a recipient's domain is D or a subdomain of it\n"
    "  --sender S              the sender contains S (also --from)\n"
    "  --rcpt R                a recipient contains R (also --recipient, --to)\n"
    "  --state STATE           active, deferred or held\n"
    "  --min-age AGE           queued at least AGE: seconds, or 30m, 2h, 3d\n"
    "  --max-age AGE           queued at most AGE\n"
    "  --search TEXT           the id, sender or a recipient contains TEXT\n";

/* ctl_usage - the command summary on stderr (mtactl --help) */
static void
ctl_usage(const char *prog)
{
	if (strcmp(prog, "mailq") == 0) {
		fprintf(stderr, "usage: mailq [-c FILE] [--json] [FILTER ...]\n%s", ctl_filter_usage);
		return;
	}
	fprintf(stderr,
	    "usage: mtactl [-c FILE] COMMAND [ARGS]\n"
	    "commands:\n"
	    "  queue [--json] [FILTER ...]  list the queue, or its matches (also: mailq)\n"
	    "  search TEXT [--json] [FILTER ...]  the messages whose id, sender or a\n"
	    "                          recipient contains TEXT (queue --search TEXT)\n"
	    "  show ID [--body] [--json]  one message: envelope, recipients, headers\n"
	    "  flush [ID ... | FILTER ...]  retry deferred messages now\n"
	    "  delete ID ... | ALL | FILTER ...  remove messages from the queue\n"
	    "  hold ID ... | ALL | FILTER ...    put messages on hold\n"
	    "  release ID ... | ALL | FILTER ... release held messages\n"
	    "  stats [--json]          counters and queue totals\n"
	    "  qshape [--json]         pending recipients by domain and age (as Postfix's qshape)\n"
	    "  check-config            check the configuration like mtad -t\n"
	    "  health                  ask the running mtad's /healthz (exit 0 = healthy)\n"
	    "  drain                   stop accepting, deliver, hand the rest to drain_relay, exit\n"
	    "  dkim-record DOMAIN      the DNS TXT records of DOMAIN's DKIM keys\n"
	    "%s", ctl_filter_usage);
}

void __attribute__((format(printf, 2, 3)))
ctl_cmd_err(const struct ctl *c, const char *fmt, ...)
{
	va_list ap;
	char buf[4096];

	va_start(ap, fmt);
	/* a message cut at 4 KiB is still worth showing: truncation is accepted */
	if (vsnprintf(buf, sizeof(buf), fmt, ap) < 0)
		util_strlcpy(buf, "(unprintable message)", sizeof(buf));
	va_end(ap);
	fprintf(stderr, "%s: %s\n", c->prog, buf);
}

/* ctl_load_config - the configuration; a permission problem is CTL_EX_PERM */
static int
ctl_load_config(struct ctl *c)
{
	char err[2048];
	int fd;

	if ((fd = open(c->conf_path, O_RDONLY | O_CLOEXEC)) < 0) {
		int e = errno;

		/* SPEC §1: no file and no -c, as in a container: MTA_* alone, as mtad does */
		if (e == ENOENT && c->conf_implicit)
			c->conf_path = CONFIG_ENV_ONLY;
		else {
			ctl_cmd_err(c, "%s: %s", c->conf_path, strerror(e));
			return e == EACCES || e == EPERM ? CTL_EX_PERM : CTL_EX_USAGE;
		}
	} else
		close(fd);
	if ((c->cfg = config_load_default(c->conf_path, environ, err, sizeof(err))) == NULL) {
		ctl_cmd_err(c, "%s", err);
		return CTL_EX_USAGE;
	}
	if (ctl_http_init(&c->http, c->cfg) < 0) {
		ctl_cmd_err(c, "%s: cannot use ui_address/credentials: %s", c->conf_path,
		    strerror(errno));
		return CTL_EX_USAGE;
	}
	if (!c->cfg->ssl_disabled)
		c->http.tls = 1;
	return CTL_EX_OK;
}

/* --- talking to the API -------------------------------------------------- */

/*
 * ctl_cmd_api - one request; on success *out holds the parsed JSON reply (or
 * NULL for a non-JSON body) and *status the HTTP status. Returns CTL_EX_OK,
 * CTL_EX_NODAEMON (nothing listens), CTL_EX_PERM (401/403) or CTL_EX_FAIL.
 */
int
ctl_cmd_api(struct ctl *c, const char *method, const char *path, json_t *body,
    json_t **out, int *status)
{
	struct ctl_http_resp r;
	char err[512], *text = NULL;
	json_error_t jerr;
	int rc;

	*out = NULL;
	*status = 0;
	if (body != NULL && (text = json_dumps(body, JSON_COMPACT)) == NULL) {
		ctl_cmd_err(c, "out of memory");
		return CTL_EX_FAIL;
	}
	rc = ctl_http_request(&c->http, method, path, text, text ? strlen(text) : 0,
	    &r, err, sizeof(err));
	free(text);
	if (rc == CTL_HTTP_ECONNECT) {
		c->direct = 1;
		return CTL_EX_NODAEMON;
	}
	if (rc != CTL_HTTP_OK) {
		ctl_cmd_err(c, "mtad API at %s port %d: %s", c->http.host, c->http.port, err);
		return CTL_EX_FAIL;
	}
	*status = r.status;
	if (r.len > 0)
		*out = json_loadb(r.body, r.len, 0, &jerr);
	ctl_http_resp_free(&r);
	if (*status == 401 || *status == 403) {
		const char *e = json_string_value(json_object_get(*out, "error"));

		ctl_cmd_err(c, "mtad refused the request (%d%s%s): check username and password in %s",
		    *status, e ? ": " : "", e ? e : "", c->conf_path);
		json_decref(*out);
		*out = NULL;
		return CTL_EX_PERM;
	}
	return CTL_EX_OK;
}

/* ctl_cmd_api_error - the {"error": ...} text of a reply, or a fallback */
const char *
ctl_cmd_api_error(json_t *j, const char *fallback)
{
	const char *e = json_string_value(json_object_get(j, "error"));

	return e != NULL ? e : fallback;
}

static void
ctl_no_daemon(const struct ctl *c)
{
	ctl_cmd_err(c, "mtad is not running (nothing answers on %s port %d)", c->http.host,
	    c->http.port);
}

/* ctl_cmd_id_norm - a queue id from the command line, upper-cased; -1 if it cannot be one */
int
ctl_cmd_id_norm(const char *in, char *out, size_t size)
{
	size_t i;

	if (!ctl_queue_id_valid(in))
		return -1;
	for (i = 0; in[i] != '\0' && i + 1 < size; i++)
		out[i] = (in[i] >= 'a' && in[i] <= 'z') ? (char)(in[i] - 'a' + 'A') : in[i];
	out[i] = '\0';
	return in[i] == '\0' ? 0 : -1;
}

/* --- the common message shape ---------------------------------------------- */

/* ctl_cmd_jset - set key to a new value; -1 when val is NULL or the set fails */
int
ctl_cmd_jset(json_t *o, const char *key, json_t *val)
{
	if (val == NULL)
		return -1;
	return json_object_set_new(o, key, val);
}

/*
 * ctl_row_detail - an /api/queue row in the detail shape: its recipients
 * (all of them when nrcpt <= CTL_LIST_RCPTS) become objects that carry the
 * message's state and last reply. Only used when that is exact: every
 * recipient listed and pending, and one recipient when deferred.
 */
static json_t *
ctl_row_detail(json_t *row)
{
	json_t *o = json_deep_copy(row), *arr, *out;
	const char *state = json_string_value(json_object_get(row, "state"));
	json_t *reply = json_object_get(row, "last_reply");
	size_t i;
	json_t *v;

	if (o == NULL || (out = json_array()) == NULL)
		goto fail;
	if (json_object_set_new(o, "recipients", out) < 0)
		goto fail;
	arr = json_object_get(row, "recipients");
	json_array_foreach(arr, i, v) {
		json_t *x = json_object();

		if (x == NULL || json_array_append_new(out, x) < 0 ||
		    json_object_set(x, "address", v) < 0 ||
		    ctl_cmd_jset(x, "state", json_string(state != NULL && strcmp(state, "deferred") == 0 ?
		    "deferred" : "pending")) < 0 ||
		    json_object_set(x, "last_reply", reply != NULL ? reply : json_null()) < 0)
			goto fail;
	}
	return o;
fail:
	json_decref(o);
	return NULL;
}

/* ctl_row_exact - the row says everything mailq prints (no detail request needed) */
static int
ctl_row_exact(json_t *row)
{
	json_int_t nrcpt = json_integer_value(json_object_get(row, "nrcpt"));
	json_int_t pending = json_integer_value(json_object_get(row, "pending"));
	const char *state = json_string_value(json_object_get(row, "state"));

	if (nrcpt > CTL_LIST_RCPTS || pending != nrcpt)
		return 0;
	if (state != NULL && strcmp(state, "deferred") == 0 && nrcpt > 1)
		return 0;
	return 1;
}

/* --- printing -------------------------------------------------------------- */

/* ctl_cmd_time - "Mon Jan  1 12:00:00" (local time), like mailq */
void
ctl_cmd_time(json_t *t, char *buf, size_t size, int with_year)
{
	struct tm tm;
	time_t secs;

	if (!json_is_integer(t)) {
		util_strlcpy(buf, "?", size);
		return;
	}
	secs = (time_t)json_integer_value(t);
	if (localtime_r(&secs, &tm) == NULL ||
	    strftime(buf, size, with_year ? "%a %b %e %H:%M:%S %Y" : "%a %b %e %H:%M:%S",
	    &tm) == 0)
		util_strlcpy(buf, "?", size);
}

/* ctl_cmd_print_clean - a string from a peer or a file, without control characters */
void
ctl_cmd_print_clean(FILE *f, const char *s)
{
	for (; s != NULL && *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		fputc(ch < 0x20 || ch == 0x7f ? '?' : ch, f);
	}
}

/*
 * ctl_mailq_one - one message the way Postfix's mailq prints it: id (with
 * '!' when held), size, arrival and sender; then each pending recipient,
 * under its last reply in parentheses when it has been deferred.
 */
static void
ctl_mailq_one(struct ctl_mailq *q, json_t *m)
{
	const char *id = json_string_value(json_object_get(m, "id"));
	const char *sender = json_string_value(json_object_get(m, "sender"));
	json_int_t size = json_integer_value(json_object_get(m, "size"));
	int held = json_is_true(json_object_get(m, "held"));
	json_t *rcpts = json_object_get(m, "recipients"), *r;
	const char *last = NULL;
	char when[64];
	int indent;
	size_t i;

	if (!q->header_done) {
		printf("-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
		q->header_done = 1;
	}
	q->count++;
	q->bytes += size > 0 ? (uint64_t)size : 0;
	ctl_cmd_time(json_object_get(m, "arrival"), when, sizeof(when), 0);
	indent = printf("%-10s%c %8lld %s  ", id != NULL ? id : "?", held ? '!' : ' ',
	    (long long)size, when);
	if (indent < 0)
		indent = 0;
	ctl_cmd_print_clean(stdout, sender == NULL || sender[0] == '\0' ? "MAILER-DAEMON" : sender);
	putchar('\n');
	json_array_foreach(rcpts, i, r) {
		const char *st = json_string_value(json_object_get(r, "state"));
		const char *reply = json_string_value(json_object_get(r, "last_reply"));

		if (st != NULL && strcmp(st, "pending") != 0 && strcmp(st, "deferred") != 0)
			continue;       /* delivered or bounced: no longer queued for it */
		if (reply != NULL && reply[0] != '\0' && (last == NULL || strcmp(last, reply) != 0)) {
			printf("%*s(", indent > 8 ? indent - 8 : 0, "");
			ctl_cmd_print_clean(stdout, reply);
			printf(")\n");
			last = reply;
		}
		printf("%*s", indent, "");
		ctl_cmd_print_clean(stdout, json_string_value(json_object_get(r, "address")));
		putchar('\n');
	}
	putchar('\n');
}

/* ctl_postqueue_json - one message as one line of postqueue -j */
static int
ctl_postqueue_json(json_t *m)
{
	const char *state = json_string_value(json_object_get(m, "state"));
	json_t *o, *rc, *r;
	char *line;
	size_t i;

	o = json_pack("{s:s,s:O,s:O,s:O,s:b,s:O}",
	    "queue_name", state == NULL ? "active" : strcmp(state, "held") == 0 ? "hold" :
	    strcmp(state, "deferred") == 0 ? "deferred" : "active",
	    "queue_id", json_object_get(m, "id"),
	    "arrival_time", json_object_get(m, "arrival") ? json_object_get(m, "arrival") : json_null(),
	    "message_size", json_object_get(m, "size") ? json_object_get(m, "size") : json_null(),
	    "forced_expire", 0,
	    "sender", json_object_get(m, "sender") ? json_object_get(m, "sender") : json_null());
	if (o == NULL || (rc = json_array()) == NULL || ctl_cmd_jset(o, "recipients", rc) < 0) {
		json_decref(o);
		return -1;
	}
	json_array_foreach(json_object_get(m, "recipients"), i, r) {
		const char *st = json_string_value(json_object_get(r, "state"));
		json_t *reply = json_object_get(r, "last_reply");
		json_t *x;

		if (st != NULL && strcmp(st, "pending") != 0 && strcmp(st, "deferred") != 0)
			continue;
		x = json_pack("{s:O}", "address", json_object_get(r, "address"));
		if (x == NULL || json_array_append_new(rc, x) < 0 ||
		    (json_is_string(reply) && json_object_set(x, "delay_reason", reply) < 0)) {
			json_decref(o);
			return -1;
		}
	}
	line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(o);
	if (line == NULL)
		return -1;
	puts(line);
	free(line);
	return 0;
}

static void
ctl_mailq_emit(struct ctl_mailq *q, json_t *m)
{
	if (q->c->json) {
		if (ctl_postqueue_json(m) < 0)
			ctl_cmd_err(q->c, "out of memory");
		q->count++;
		return;
	}
	ctl_mailq_one(q, m);
}

static void
ctl_mailq_end(struct ctl_mailq *q)
{
	if (q->c->json)
		return;
	if (q->count == 0) {
		printf("Mail queue is empty\n");
		return;
	}
	printf("-- %llu Kbytes in %llu Request%s.\n", (unsigned long long)((q->bytes + 1023) / 1024),
	    (unsigned long long)q->count, q->count == 1 ? "" : "s");
}

/* --- qshape ----------------------------------------------------------------- */

/* ctl_qshape_row - one line: name, total, then the age columns */
static void
ctl_qshape_row(const char *name, json_t *row)
{
	json_t *ages = json_object_get(row, "ages"), *v;
	size_t i;

	printf("%32.32s %7lld", name, (long long)json_integer_value(json_object_get(row, "count")));
	json_array_foreach(ages, i, v)
		printf(" %6lld", (long long)json_integer_value(v));
	printf("\n");
}

/*
 * ctl_cmd_qshape - GET /api/qshape: pending recipients by domain (the 50
 * largest) and message age in minutes, the layout of Postfix's qshape
 */
static int
ctl_cmd_qshape(struct ctl *c)
{
	json_t *s = NULL, *b, *v, *doms;
	int rc, status;
	size_t i;

	c->http.timeout_ms = CTL_HTTP_VIEW_TIMEOUT_MS;    /* a pass over every parked message */
	rc = ctl_cmd_api(c, "GET", "/api/qshape?limit=50", NULL, &s, &status);
	c->http.timeout_ms = CTL_HTTP_TIMEOUT_MS;
	if (rc == CTL_EX_NODAEMON) {
		ctl_cmd_err(c, "mtad is not running: qshape asks the running daemon");
		return rc;
	}
	if (rc != CTL_EX_OK)
		return rc;
	if (status != 200 || !json_is_object(s)) {
		ctl_cmd_err(c, "GET /api/qshape: HTTP %d: %s", status, ctl_cmd_api_error(s, "bad reply"));
		json_decref(s);
		return CTL_EX_FAIL;
	}
	if (c->json) {
		char *t = json_dumps(s, JSON_INDENT(2));

		if (t != NULL)
			puts(t);
		free(t);
		json_decref(s);
		return CTL_EX_OK;
	}
	printf("%32s %7s", "", "T");
	b = json_object_get(s, "buckets");
	json_array_foreach(b, i, v) {
		if (json_is_integer(v))
			printf(" %6lld", (long long)json_integer_value(v));
		else
			printf(" %6s", "more");
	}
	printf("\n");
	ctl_qshape_row("TOTAL", json_object_get(s, "total"));
	doms = json_object_get(s, "domains");
	json_array_foreach(doms, i, v) {
		const char *d = json_string_value(json_object_get(v, "domain"));
		char name[64];
		size_t k = 0;

		/* a domain is peer data: printable ASCII only */
		for (; d != NULL && *d != '\0' && k + 1 < sizeof(name); d++)
			name[k++] = (*d > 0x20 && *d < 0x7f) ? *d : '?';
		name[k] = '\0';
		ctl_qshape_row(name, v);
	}
	if (json_is_object(json_object_get(s, "other")))
		ctl_qshape_row("(other domains)", json_object_get(s, "other"));
	if (json_is_true(json_object_get(s, "partial"))) {
		const char *n = json_string_value(json_object_get(s, "note"));

		printf("partial: %s\n", n != NULL ? n : "not every queued message was counted");
	}
	json_decref(s);
	return CTL_EX_OK;
}

/* --- queue ------------------------------------------------------------------- */

static void
ctl_direct_cb(void *arg, struct queue_msg *m)
{
	struct ctl_mailq *q = arg;
	json_t *j;

	if (q->c->filter.hf.any && !http_filter_match(&q->c->filter.hf, m))
		return;
	if ((j = queue_view_detail(m, util_now_us())) == NULL) {
		ctl_cmd_err(q->c, "out of memory");
		return;
	}
	ctl_mailq_emit(q, j);
	json_decref(j);
}

/* ctl_cmd_direct_error - data_dir could not be read */
int
ctl_cmd_direct_error(struct ctl *c, int e, const char *err)
{
	if (e == EACCES || e == EPERM) {
		ctl_cmd_err(c, "mtad is not running and %s (reading the queue directly needs "
		    "root or the mail_owner user)", err);
		return CTL_EX_PERM;
	}
	ctl_cmd_err(c, "mtad is not running and %s", err);
	return CTL_EX_FAIL;
}

/* ctl_queue_direct - mailq from data_dir */
static int
ctl_queue_direct(struct ctl *c, struct ctl_mailq *q)
{
	char err[1024];

	if (ctl_queue_scan(c->cfg->data_dir, ctl_direct_cb, q, err, sizeof(err)) < 0)
		return ctl_cmd_direct_error(c, errno, err);
	ctl_mailq_end(q);
	return CTL_EX_OK;
}

/*
 * ctl_queue_rows - print the rows of one page of /api/queue; a row that
 * does not tell every pending recipient and its reply is completed from
 * /api/queue/ID. A CTL_EX_* status.
 */
static int
ctl_queue_rows(struct ctl *c, struct ctl_mailq *q, json_t *items)
{
	json_t *row;
	size_t i;
	int rc, status;

	json_array_foreach(items, i, row) {
		const char *id = json_string_value(json_object_get(row, "id"));
		json_t *m = NULL;

		if (id == NULL)
			continue;
		if (ctl_row_exact(row)) {
			m = ctl_row_detail(row);
		} else if (ctl_queue_id_valid(id)) {
			char dpath[128];

			if (util_bsnprintf(dpath, sizeof(dpath), "/api/queue/%s", id) < 0)
				continue;
			rc = ctl_cmd_api(c, "GET", dpath, NULL, &m, &status);
			if (rc != CTL_EX_OK)
				return rc;
			if (status == 404) {
				json_decref(m);
				continue;           /* delivered meanwhile */
			}
			if (status != 200) {
				json_decref(m);
				m = ctl_row_detail(row);
			}
		}
		if (m == NULL) {
			ctl_cmd_err(c, "out of memory");
			return CTL_EX_FAIL;
		}
		ctl_mailq_emit(q, m);
		json_decref(m);
	}
	return CTL_EX_OK;
}

/* ctl_partial - the "partial:" line of a reply that says so (the index being rebuilt) */
static void
ctl_partial(const struct ctl *c, json_t *res, const char *fallback)
{
	const char *n;

	if (!json_is_true(json_object_get(res, "partial")))
		return;
	n = json_string_value(json_object_get(res, "note"));
	/* --json output is one message per line: the note goes to stderr */
	fprintf(c->json ? stderr : stdout, "partial: %s\n", n != NULL ? n : fallback);
}

/*
 * ctl_queue_filtered - the matches of the filter, through the API: a page
 * of CTL_PAGE at a time (each a pass over the index of parked messages)
 * until the reply's "total" is reached. Offline, data_dir's messages
 * through the same filter.
 */
static int
ctl_queue_filtered(struct ctl *c, struct ctl_mailq *q)
{
	char qs[CTL_FILTER_QUERY_MAX], path[CTL_FILTER_QUERY_MAX + 128];
	long long off = 0, total;
	json_t *page = NULL, *items;
	int rc, status;

	if (ctl_filter_query(&c->filter, qs, sizeof(qs)) < 0) {
		ctl_cmd_err(c, "the filters are too long");
		return CTL_EX_USAGE;
	}
	c->http.timeout_ms = CTL_HTTP_VIEW_TIMEOUT_MS;
	for (;;) {
		size_t n;

		if (util_bsnprintf(path, sizeof(path), "/api/queue?offset=%lld&limit=%d&order=asc%s",
		    off, CTL_PAGE, qs) < 0) {
			rc = CTL_EX_FAIL;
			goto done;
		}
		rc = ctl_cmd_api(c, "GET", path, NULL, &page, &status);
		if (rc == CTL_EX_NODAEMON && off == 0) {
			rc = ctl_queue_direct(c, q);
			goto done;
		}
		if (rc != CTL_EX_OK)
			goto done;
		if (status != 200 || !json_is_array(items = json_object_get(page, "items"))) {
			ctl_cmd_err(c, "GET /api/queue: HTTP %d: %s", status,
			    ctl_cmd_api_error(page, "bad reply"));
			rc = status == 400 ? CTL_EX_USAGE : CTL_EX_FAIL;
			goto done;
		}
		n = json_array_size(items);
		if ((rc = ctl_queue_rows(c, q, items)) != CTL_EX_OK)
			goto done;
		total = json_integer_value(json_object_get(page, "total"));
		off += (long long)n;
		if (n == 0 || off >= total) {
			ctl_mailq_end(q);
			ctl_partial(c, page, "not every queued message was searched");
			break;
		}
		json_decref(page);
		page = NULL;
	}
	rc = CTL_EX_OK;
done:
	json_decref(page);
	c->http.timeout_ms = CTL_HTTP_TIMEOUT_MS;
	fflush(stdout);
	return rc;
}

/*
 * ctl_cmd_queue - mailq through the API, a page of CTL_PAGE rows at a time
 * in arrival (commit) order. New messages join the end of that order, so
 * paging never shows one twice; a message that leaves meanwhile moves the
 * later ones up, and one of them may be missed, as with a Postfix mailq
 * taken while the queue changes. With a filter: ctl_queue_filtered().
 */
static int
ctl_cmd_queue(struct ctl *c)
{
	struct ctl_mailq q;
	char path[256];
	long long off = 0, cursor = 0, next;
	int rc, status;

	memset(&q, 0, sizeof(q));
	q.c = c;
	if (c->filter.hf.any)
		return ctl_queue_filtered(c, &q);
	for (;;) {
		json_t *page, *items;
		size_t n;

		if (cursor > 0 ? util_bsnprintf(path, sizeof(path), "/api/queue?cursor=%lld&limit=%d",
		    cursor, CTL_PAGE) < 0 :
		    util_bsnprintf(path, sizeof(path), "/api/queue?offset=%lld&limit=%d&order=asc",
		    off, CTL_PAGE) < 0)
			return CTL_EX_FAIL;
		rc = ctl_cmd_api(c, "GET", path, NULL, &page, &status);
		if (rc == CTL_EX_NODAEMON && off == 0)
			return ctl_queue_direct(c, &q);
		if (rc != CTL_EX_OK)
			return rc;
		if (status != 200 || !json_is_array(items = json_object_get(page, "items"))) {
			ctl_cmd_err(c, "GET %s: HTTP %d: %s", path, status, ctl_cmd_api_error(page, "bad reply"));
			json_decref(page);
			return CTL_EX_FAIL;
		}
		n = json_array_size(items);
		if ((rc = ctl_queue_rows(c, &q, items)) != CTL_EX_OK) {
			json_decref(page);
			return rc;
		}
		/* messages parked on disk come after the window, by the API's cursor */
		next = json_integer_value(json_object_get(page, "cursor"));
		json_decref(page);
		if (next > 0) {
			cursor = next;
			continue;
		}
		if (n < CTL_PAGE || cursor > 0)
			break;
		off += (long long)n;
	}
	ctl_mailq_end(&q);
	fflush(stdout);
	return CTL_EX_OK;
}

/* --- actions ------------------------------------------------------------------ */

struct ctl_action {
	const char *cmd;               /* command line */
	const char *api;               /* /api/queue/ID/<api> and /api/queue/<api> */
	const char *done;              /* "placed on hold" */
	const char *unchanged;         /* "already on hold" */
	const char *bulk;              /* "Placed on hold" (Postfix's postsuper wording) */
};

static const struct ctl_action ctl_actions[] = {
	{ "delete",  "delete",  "deleted",           "not deleted",     "Deleted" },
	{ "hold",    "hold",    "placed on hold",    "already on hold", "Placed on hold" },
	{ "release", "release", "released",          "not on hold",     "Released from hold" },
	{ "flush",   "retry",   "scheduled for delivery now", "not deferred", "Scheduled" },
};

/*
 * ctl_act_all - one bulk request for every message, or with a filter for
 * its matches (the filter as the query string, as GET /api/queue takes it)
 */
static int
ctl_act_all(struct ctl *c, const struct ctl_action *a)
{
	char qs[CTL_FILTER_QUERY_MAX], path[CTL_FILTER_QUERY_MAX + 64];
	json_t *body = NULL, *res = NULL;
	int rc, status, filtered = c->filter.hf.any;

	if (filtered && ctl_filter_query(&c->filter, qs, sizeof(qs)) < 0) {
		ctl_cmd_err(c, "the filters are too long");
		return CTL_EX_USAGE;
	}
	/* the query string starts with '&': its first one becomes '?' */
	if (util_bsnprintf(path, sizeof(path), "/api/queue/%s%s%s", a->api,
	    filtered ? "?" : "", filtered ? qs + 1 : "") < 0)
		return CTL_EX_FAIL;
	if (!filtered && (body = json_pack("{s:b}", "all", 1)) == NULL)
		return CTL_EX_FAIL;
	/* every parked message too: the answer comes when all are done */
	c->http.timeout_ms = CTL_HTTP_VIEW_TIMEOUT_MS;
	rc = ctl_cmd_api(c, "POST", path, body, &res, &status);
	c->http.timeout_ms = CTL_HTTP_TIMEOUT_MS;
	json_decref(body);
	if (rc == CTL_EX_NODAEMON) {
		ctl_no_daemon(c);
		ctl_cmd_err(c, "%s needs the running daemon: nothing was changed", a->cmd);
	}
	if (rc != CTL_EX_OK)
		return rc;
	if (status != 200) {
		ctl_cmd_err(c, "%s: HTTP %d: %s", a->cmd, status, ctl_cmd_api_error(res, "failed"));
		json_decref(res);
		return status == 400 ? CTL_EX_USAGE : CTL_EX_FAIL;
	}
	if (!filtered && strcmp(a->cmd, "flush") == 0) {
		printf("%s: every deferred message is being retried now\n", c->prog);
	} else {
		json_int_t matched = json_integer_value(json_object_get(res, "matched"));
		json_int_t changed = json_integer_value(json_object_get(res, "changed"));
		json_int_t failed = json_integer_value(json_object_get(res, "failed"));

		if (filtered)
			printf("%s: %s: %lld message%s (%lld matched, %lld failed)\n", c->prog,
			    a->bulk, (long long)changed, changed == 1 ? "" : "s", (long long)matched,
			    (long long)failed);
		else
			printf("%s: %s: %lld message%s\n", c->prog, a->bulk, (long long)changed,
			    changed == 1 ? "" : "s");
		/* the index of parked messages is being rebuilt: not every one was reached */
		ctl_partial(c, res, "not every queued message was reached");
		if (failed > 0) {
			ctl_cmd_err(c, "%s: %lld message%s could not be changed (see mtad's log)",
			    a->cmd, (long long)failed, failed == 1 ? "" : "s");
			json_decref(res);
			return CTL_EX_FAIL;
		}
	}
	json_decref(res);
	return CTL_EX_OK;
}

/* ctl_act_one - the action on one message; a CTL_EX_* status */
static int
ctl_act_one(struct ctl *c, const struct ctl_action *a, const char *id)
{
	char path[128], uid[72];
	json_t *res = NULL;
	int rc, status;

	if (ctl_cmd_id_norm(id, uid, sizeof(uid)) < 0) {
		ctl_cmd_err(c, "%s: no such message", id);
		return CTL_EX_NOTFOUND;
	}
	if (util_bsnprintf(path, sizeof(path), "/api/queue/%s/%s", uid, a->api) < 0)
		return CTL_EX_FAIL;
	rc = ctl_cmd_api(c, "POST", path, NULL, &res, &status);
	if (rc != CTL_EX_OK)
		return rc;
	if (status == 404) {
		ctl_cmd_err(c, "%s: no such message", id);
		rc = CTL_EX_NOTFOUND;
	} else if (status == 409) {
		ctl_cmd_err(c, "%s: %s", uid, ctl_cmd_api_error(res, "conflict"));
		rc = CTL_EX_FAIL;
	} else if (status != 200) {
		ctl_cmd_err(c, "%s: %s: HTTP %d: %s", uid, a->cmd, status, ctl_cmd_api_error(res, "failed"));
		rc = CTL_EX_FAIL;
	} else {
		printf("%s: %s\n", uid, json_is_false(json_object_get(res, "changed")) ?
		    a->unchanged : a->done);
	}
	json_decref(res);
	return rc;
}

/*
 * ctl_cmd_action - delete/hold/release/flush over ids, ALL or the filter's
 * matches. Every id is tried; the status is the worst: permission and no
 * daemon stop at once, an unknown id (2) is reported after the others.
 */
static int
ctl_cmd_action(struct ctl *c, const struct ctl_action *a, int argc, char **argv)
{
	int worst = CTL_EX_OK, all = 0;

	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], "ALL") == 0)
			all = 1;
	if (all && argc != 1) {
		ctl_cmd_err(c, "%s: ALL stands alone", a->cmd);
		return CTL_EX_USAGE;
	}
	if (c->filter.hf.any && argc > 0) {
		ctl_cmd_err(c, "%s: give queue IDs, ALL or filters, not both", a->cmd);
		return CTL_EX_USAGE;
	}
	if (argc == 0 && !c->filter.hf.any && strcmp(a->cmd, "flush") != 0) {
		ctl_cmd_err(c, "%s: give queue IDs, ALL or a filter (--domain, --state, ...)", a->cmd);
		return CTL_EX_USAGE;
	}
	if (all || argc == 0)
		return ctl_act_all(c, a);
	for (int i = 0; i < argc; i++) {
		int rc = ctl_act_one(c, a, argv[i]);

		if (rc == CTL_EX_NODAEMON) {
			ctl_no_daemon(c);
			ctl_cmd_err(c, "%s needs the running daemon: nothing was changed", a->cmd);
			return rc;
		}
		if (rc == CTL_EX_PERM)
			return rc;
		if (rc == CTL_EX_FAIL || (rc == CTL_EX_NOTFOUND && worst == CTL_EX_OK))
			worst = rc;
	}
	return worst;
}

/* --- stats ------------------------------------------------------------------ */

struct ctl_count {
	uint64_t messages, bytes, rcpts, active, deferred, held, oldest_us;
};

static void
ctl_count_cb(void *arg, struct queue_msg *m)
{
	struct ctl_count *n = arg;
	int deferred = 0;

	n->messages++;
	n->bytes += m->file_size;
	for (size_t i = 0; i < m->nrcpt; i++) {
		if (m->rcpt[i].state != QUEUE_RCPT_PENDING)
			continue;
		n->rcpts++;
		if (m->rcpt[i].attempts > 0)
			deferred = 1;
	}
	if (m->held)
		n->held++;
	else if (deferred)
		n->deferred++;
	else
		n->active++;
	if (m->arrival_us != 0 && (n->oldest_us == 0 || m->arrival_us < n->oldest_us))
		n->oldest_us = m->arrival_us;
}

/* ctl_stats_direct - the queue totals from data_dir (the counters need the daemon) */
static int
ctl_stats_direct(struct ctl *c)
{
	struct ctl_count n;
	char err[1024];
	json_t *o;
	uint64_t now = util_now_us();
	uint64_t oldest = 0;

	memset(&n, 0, sizeof(n));
	if (ctl_queue_scan(c->cfg->data_dir, ctl_count_cb, &n, err, sizeof(err)) < 0)
		return ctl_cmd_direct_error(c, errno, err);
	if (n.oldest_us != 0 && now > n.oldest_us)
		oldest = (now - n.oldest_us) / 1000000;
	o = json_pack("{s:b,s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}}", "running", 0, "queue",
	    "messages", (json_int_t)n.messages, "kilobytes", (json_int_t)((n.bytes + 1023) / 1024),
	    "bytes", (json_int_t)n.bytes, "recipients", (json_int_t)n.rcpts,
	    "active", (json_int_t)n.active, "deferred", (json_int_t)n.deferred,
	    "held", (json_int_t)n.held, "oldest_age", (json_int_t)oldest);
	if (o == NULL)
		return CTL_EX_FAIL;
	if (c->json) {
		char *s = json_dumps(o, JSON_INDENT(2));

		if (s != NULL)
			puts(s);
		free(s);
	} else {
		printf("mtad:                 not running (queue read from %s)\n", c->cfg->data_dir);
		printf("Mqueue-Messages:      %llu\nMqueue-Kilobytes:     %llu\n",
		    (unsigned long long)n.messages, (unsigned long long)((n.bytes + 1023) / 1024));
		printf("queue recipients:     %llu\nqueue active:         %llu\n"
		    "queue deferred:       %llu\nqueue held:           %llu\n"
		    "oldest message age:   %llus\n",
		    (unsigned long long)n.rcpts, (unsigned long long)n.active,
		    (unsigned long long)n.deferred, (unsigned long long)n.held,
		    (unsigned long long)oldest);
	}
	json_decref(o);
	return CTL_EX_OK;
}

static long long
ctl_jint(json_t *o, const char *a, const char *b)
{
	return (long long)json_integer_value(json_object_get(json_object_get(o, a), b));
}

static int
ctl_cmd_stats(struct ctl *c)
{
	json_t *s = NULL;
	int rc, status;

	rc = ctl_cmd_api(c, "GET", "/api/stats", NULL, &s, &status);
	if (rc == CTL_EX_NODAEMON)
		return ctl_stats_direct(c);
	if (rc != CTL_EX_OK)
		return rc;
	if (status != 200 || !json_is_object(s)) {
		ctl_cmd_err(c, "GET /api/stats: HTTP %d: %s", status, ctl_cmd_api_error(s, "bad reply"));
		json_decref(s);
		return CTL_EX_FAIL;
	}
	if (c->json) {
		char *t;

		json_object_set_new(s, "running", json_true());
		if ((t = json_dumps(s, JSON_INDENT(2))) != NULL)
			puts(t);
		free(t);
	} else {
		const char *disk = json_string_value(json_object_get(json_object_get(s, "disk"),
		    "message"));
		json_t *started = json_object_get(s, "started"), *now = json_object_get(s, "now");

		printf("mtad:                 running on ");
		ctl_cmd_print_clean(stdout, json_string_value(json_object_get(s, "hostname")));
		if (json_is_integer(started) && json_is_integer(now))
			printf(", up %llds", (long long)(json_integer_value(now) -
			    json_integer_value(started)));
		printf("\nMqueue-Messages:      %lld\nMqueue-Kilobytes:     %lld\n",
		    ctl_jint(s, "queue", "messages"), ctl_jint(s, "queue", "kilobytes"));
		printf("queue recipients:     %lld\nqueue active:         %lld\n"
		    "queue deferred:       %lld\nqueue held:           %lld\n"
		    "oldest message age:   %llds\n",
		    ctl_jint(s, "queue", "recipients"), ctl_jint(s, "queue", "active"),
		    ctl_jint(s, "queue", "deferred"), ctl_jint(s, "queue", "held"),
		    ctl_jint(s, "queue", "oldest_age"));
		printf("Active SMTP sessions: %lld\nSMTP sessions total:  %lld\n",
		    ctl_jint(s, "sessions", "active"), ctl_jint(s, "sessions", "total"));
		printf("accepted:             %lld\nrejected:             %lld\n"
		    "delivered:            %lld\ndeferred:             %lld\n"
		    "bounced:              %lld\n",
		    ctl_jint(s, "totals", "accepted"), ctl_jint(s, "totals", "rejected"),
		    ctl_jint(s, "totals", "delivered"), ctl_jint(s, "totals", "deferred"),
		    ctl_jint(s, "totals", "bounced"));
		if (disk != NULL)
			printf("disk:                 %s\n", disk);
	}
	json_decref(s);
	return CTL_EX_OK;
}

/* --- check-config --------------------------------------------------------------- */

/* ctl_cmd_check - what mtad -t checks: the file, the values, the file system */
static int
ctl_cmd_check(struct ctl *c)
{
	char err[2048];

	if (config_check_environment(c->cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return CTL_EX_USAGE;
	}
	printf("%s: configuration OK\n", c->conf_path);
	return CTL_EX_OK;
}

/* --- health ---------------------------------------------------------------------- */

/*
 * ctl_cmd_health - GET /healthz of the running daemon: 0 on 200, for a
 * container's HEALTHCHECK (no curl in a slim image, and HTTPS when TLS is on)
 */
static int
ctl_cmd_health(struct ctl *c)
{
	json_t *j = NULL;
	int rc, status;

	rc = ctl_cmd_api(c, "GET", "/healthz", NULL, &j, &status);
	json_decref(j);
	if (rc == CTL_EX_NODAEMON) {
		ctl_no_daemon(c);
		return CTL_EX_NODAEMON;
	}
	if (rc != CTL_EX_OK)
		return rc;
	if (status != 200) {
		ctl_cmd_err(c, "GET /healthz: HTTP %d", status);
		return CTL_EX_FAIL;
	}
	printf("ok\n");
	return CTL_EX_OK;
}

/*
 * ctl_cmd_drain - POST /api/drain: the daemon stops accepting, delivers for
 * drain_timeout, hands the rest to drain_relay and exits (SPEC §11.4)
 */
static int
ctl_cmd_drain(struct ctl *c)
{
	json_t *j = NULL;
	int rc, status;
	char relay[300];

	rc = ctl_cmd_api(c, "POST", "/api/drain", NULL, &j, &status);
	if (rc == CTL_EX_NODAEMON) {
		ctl_no_daemon(c);
		return CTL_EX_NODAEMON;
	}
	if (rc != CTL_EX_OK)
		return rc;
	if (status != 202) {
		ctl_cmd_err(c, "POST /api/drain: HTTP %d: %s", status, ctl_cmd_api_error(j, "bad reply"));
		json_decref(j);
		return CTL_EX_FAIL;
	}
	json_decref(j);
	if (c->cfg->drain_relay.set) {
		if (c->cfg->drain_relay.port > 0 ? util_bsnprintf(relay, sizeof(relay), "%s port %d",
		    c->cfg->drain_relay.host, c->cfg->drain_relay.port) < 0 :
		    util_bsnprintf(relay, sizeof(relay), "%s", c->cfg->drain_relay.host) < 0)
			util_strlcpy(relay, "drain_relay", sizeof(relay));
		printf("mtad is draining: delivering for up to %us, then handing the rest "
		    "over to ", c->cfg->drain_timeout);
		ctl_cmd_print_clean(stdout, relay);
		printf("; it exits when done\n");
	}
	else
		printf("mtad is draining: delivering for up to %us (no drain_relay: what is "
		    "left then stays in data_dir); it exits when done\n", c->cfg->drain_timeout);
	return CTL_EX_OK;
}

/* --- main ----------------------------------------------------------------------- */

int
ctl_cmd_main(int argc, char **argv)
{
	struct ctl c;
	const char *base = strrchr(argv[0], '/') != NULL ? strrchr(argv[0], '/') + 1 : argv[0];
	const char *conf = NULL, *cmd = NULL;
	char **args, ferr[512];
	int nargs = 0, rc;

	memset(&c, 0, sizeof(c));
	ctl_filter_init(&c.filter, util_now_us());
	c.prog = strcmp(base, "mailq") == 0 ? "mailq" : "mtactl";
	if ((args = calloc((size_t)argc + 1, sizeof(*args))) == NULL) {
		fprintf(stderr, "%s: out of memory\n", c.prog);
		return CTL_EX_FAIL;
	}
	if (strcmp(c.prog, "mailq") == 0)
		cmd = "queue";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "-c") == 0 && i + 1 < argc) {
			conf = argv[++i];
		} else if (strcmp(a, "--json") == 0 || strcmp(a, "-j") == 0) {
			c.json = 1;
		} else if (strcmp(a, "--body") == 0) {
			c.body = 1;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			ctl_usage(c.prog);
			free(args);
			return CTL_EX_OK;
		} else if ((rc = ctl_filter_opt(&c.filter, argc, argv, &i, ferr, sizeof(ferr))) != 0) {
			if (rc < 0) {
				fprintf(stderr, "%s: %s\n", c.prog, ferr);
				free(args);
				return CTL_EX_USAGE;
			}
		} else if (a[0] == '-' && a[1] != '\0') {
			fprintf(stderr, "%s: unknown option %s\n", c.prog, a);
			ctl_usage(c.prog);
			free(args);
			return CTL_EX_USAGE;
		} else if (cmd == NULL) {
			cmd = a;
		} else {
			args[nargs++] = argv[i];
		}
	}
	if (cmd == NULL) {
		ctl_usage(c.prog);
		free(args);
		return CTL_EX_USAGE;
	}
	c.conf_path = ctl_cmd_config_path(conf);
	c.conf_implicit = conf == NULL && strcmp(c.conf_path, CTL_DEFAULT_CONFIG) == 0;
	if ((rc = ctl_load_config(&c)) != CTL_EX_OK)
		goto done;
	if (strcmp(cmd, "mailq") == 0 || strcmp(cmd, "list") == 0)
		cmd = "queue";
	if (strcmp(cmd, "search") == 0 && nargs == 1) {
		/* search TEXT: queue --search TEXT */
		if (ctl_filter_add(&c.filter, "q", args[0], ferr, sizeof(ferr)) < 0) {
			fprintf(stderr, "%s: search: %s\n", c.prog, ferr);
			rc = CTL_EX_USAGE;
			goto done;
		}
		cmd = "queue";
		nargs = 0;
	} else if (strcmp(cmd, "search") == 0) {
		fprintf(stderr, "%s: search: give one TEXT\n", c.prog);
		ctl_usage(c.prog);
		rc = CTL_EX_USAGE;
		goto done;
	}
	if (c.filter.n > 0 && strcmp(cmd, "queue") != 0 && strcmp(cmd, "flush") != 0 &&
	    strcmp(cmd, "delete") != 0 && strcmp(cmd, "hold") != 0 &&
	    strcmp(cmd, "release") != 0) {
		fprintf(stderr, "%s: %s: takes no filter (--domain, --state, ...)\n", c.prog, cmd);
		rc = CTL_EX_USAGE;
		goto done;
	}
	if (((strcmp(cmd, "queue") == 0 || strcmp(cmd, "stats") == 0 ||
	    strcmp(cmd, "qshape") == 0 ||
	    strcmp(cmd, "check-config") == 0 || strcmp(cmd, "health") == 0 ||
	    strcmp(cmd, "drain") == 0) && nargs != 0) ||
	    ((strcmp(cmd, "show") == 0 || strcmp(cmd, "dkim-record") == 0) && nargs != 1)) {
		fprintf(stderr, "%s: %s: wrong number of arguments\n", c.prog, cmd);
		ctl_usage(c.prog);
		rc = CTL_EX_USAGE;
	} else if (strcmp(cmd, "queue") == 0) {
		rc = ctl_cmd_queue(&c);
	} else if (strcmp(cmd, "show") == 0) {
		rc = ctl_show_cmd(&c, args[0]);
	} else if (strcmp(cmd, "stats") == 0) {
		rc = ctl_cmd_stats(&c);
	} else if (strcmp(cmd, "qshape") == 0) {
		rc = ctl_cmd_qshape(&c);
	} else if (strcmp(cmd, "check-config") == 0) {
		rc = ctl_cmd_check(&c);
	} else if (strcmp(cmd, "health") == 0) {
		rc = ctl_cmd_health(&c);
	} else if (strcmp(cmd, "drain") == 0) {
		rc = ctl_cmd_drain(&c);
	} else if (strcmp(cmd, "dkim-record") == 0) {
		rc = ctl_dkim_record(c.cfg, c.prog, args[0]);
	} else {
		rc = -1;
		for (size_t i = 0; i < sizeof(ctl_actions) / sizeof(ctl_actions[0]); i++)
			if (strcmp(cmd, ctl_actions[i].cmd) == 0)
				rc = ctl_cmd_action(&c, &ctl_actions[i], nargs, args);
		if (rc == -1) {
			fprintf(stderr, "%s: unknown command '%s'\n", c.prog, cmd);
			ctl_usage(c.prog);
			rc = CTL_EX_USAGE;
		}
	}
done:
	fflush(stdout);
	config_free(c.cfg);
	explicit_bzero(&c.http, sizeof(c.http));
	free(args);
	return rc;
}
