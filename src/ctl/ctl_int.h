/*
 * ctl_int.h - internals shared by the files of src/ctl/, mtactl, sendmail
 *             and their unit tests (private to those); what only sendmail
 *             uses is in sendmail.h
 *
 * Owns:     struct ctl_http_resp bodies until ctl_http_resp_free() runs.
 * Lifetime: per call or per command; nothing is global.
 * Errors:   functions return -1 (or NULL) with errno set, or a reason in
 *           an out-buffer whose size is an argument.
 * Context:  command-line programs: blocking I/O bounded by deadlines.
 */
#ifndef MTAD_CTL_INT_H
#define MTAD_CTL_INT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "http/http.h"

struct config;
struct queue_msg;

/* --- ctl_net.c: loopback sockets with deadlines ---------------------- */

/* ctl_net_loopback - the address to connect to for a listener address: 0.0.0.0 -> 127.0.0.1, :: -> ::1 */
int ctl_net_loopback(const char *listen_addr, char *out, size_t outlen);
/* ctl_net_connect - numeric host and port, within timeout_ms; fd or -1 with errno */
int ctl_net_connect(const char *host, int port, int timeout_ms);
/* ctl_net_write_all - every byte or -1 (errno; ETIMEDOUT past the deadline) */
int ctl_net_write_all(int fd, const void *buf, size_t len, int timeout_ms);
/* ctl_net_read - up to len bytes once readable; 0 at end; -1 with errno (ETIMEDOUT) */
ssize_t ctl_net_read(int fd, void *buf, size_t len, int timeout_ms);
/* ctl_net_wait - poll fd for events (POLLIN/POLLOUT) until the monotonic deadline; 0 or -1 (ETIMEDOUT) */
int ctl_net_wait(int fd, short events, uint64_t deadline_us);

/* --- ctl_http.c: a minimal HTTP/1.0 client for mtad's API ------------ */

#define CTL_HTTP_BODY_MAX   (256u * 1024 * 1024)  /* largest response accepted */
#define CTL_HTTP_TIMEOUT_MS 30000
#define CTL_HTTP_VIEW_TIMEOUT_MS 600000  /* qshape, bulk ALL: a pass over a big queue */

struct ctl_http {
	char host[64];               /* numeric, no brackets */
	int  port;
	char auth[1024];             /* "Basic ..." or "" */
	int  timeout_ms;
	int  tls;                    /* HTTPS (ssl_disabled = no) */
	/*
	 * Beyond loopback the certificate is verified: against the system CA
	 * store (OpenSSL's; SSL_CERT_FILE/SSL_CERT_DIR name another) and the
	 * certificates of ssl_cert_file in the key store, for hostname.
	 */
	int  verify;
	char verify_name[256];       /* hostname */
	char ca_file[4096];          /* key store + ssl_cert_file, "" = none */
};

struct ctl_http_resp {
	int    status;               /* 200, 404, ... */
	char  *body;                 /* NUL-terminated (the NUL is not counted) */
	size_t len;
};

enum {
	CTL_HTTP_OK = 0,
	CTL_HTTP_ECONNECT = -1,      /* nothing listens / unreachable: mtad not running */
	CTL_HTTP_EPROTO = -2,        /* I/O error, timeout or a malformed reply */
};

/* ctl_http_init - where and how to reach the API of the mtad that cfg describes */
int ctl_http_init(struct ctl_http *h, const struct config *cfg);
/*
 * ctl_http_request - one request (body may be NULL); on CTL_HTTP_OK r holds
 * the status and the body, which the caller frees with ctl_http_resp_free().
 */
int ctl_http_request(const struct ctl_http *h, const char *method, const char *path,
    const char *body, size_t body_len, struct ctl_http_resp *r, char *err, size_t errlen);
void ctl_http_resp_free(struct ctl_http_resp *r);

/* --- ctl_queue.c: the queue as the operator sees it ------------------ */

/*
 * ctl_queue_scan - every committed message under data_dir (read directly,
 * mtad stopped), in arrival order: cb(arg, m) for each; m is freed after
 * cb returns. 0, or -1 with errno (EACCES: permission) and a reason in err.
 */
int ctl_queue_scan(const char *data_dir, void (*cb)(void *arg, struct queue_msg *m),
    void *arg, char *err, size_t errlen);
/*
 * ctl_queue_load - one message by id (0), -1 with errno ENOENT (unknown),
 * EACCES or another errno. m's fields are freed with ctl_queue_msg_free().
 */
int ctl_queue_load(const char *data_dir, const char *id, struct queue_msg *m,
    char *err, size_t errlen);
/*
 * ctl_queue_content - the message content as delivered (prepended headers,
 * then the data) through out(arg, bytes, len), which returns 0 or -1; with
 * headers_only it stops after the blank line ending the header section.
 */
int ctl_queue_content(const char *data_dir, const char *id, int headers_only,
    int (*out)(void *arg, const void *p, size_t len), void *arg, char *err, size_t errlen);
void ctl_queue_msg_free(struct queue_msg *m);
/*
 * ctl_queue_history - set "history" and "history_omitted" in o (the detail
 * of message id, read from data_dir): its recipients' attempts as the file
 * records them (queue_hist_json); an empty history when it cannot be read.
 * -1 when out of memory.
 */
struct json_t;
int ctl_queue_history(const char *data_dir, const char *id, struct json_t *o);
/* ctl_queue_id_valid - looks like a queue id (letters and digits, 1..64) */
int ctl_queue_id_valid(const char *id);

/* --- ctl_filter.c: --domain, --sender, ... (the API's queue filter) --- */

#define CTL_FILTER_MAX       8       /* distinct filter parameters */
#define CTL_FILTER_QUERY_MAX 8192    /* their query string, encoded */

struct ctl_filter {
	struct {
		const char *key;             /* the API's parameter: "domain", "q", ... */
		const char *value;           /* borrowed from argv */
	} kv[CTL_FILTER_MAX];
	size_t n;
	struct http_filter hf;           /* the same criteria; hf.any: some were given */
};

/* ctl_filter_init - no criteria; ages measured from now_us (wall clock) */
void ctl_filter_init(struct ctl_filter *f, uint64_t now_us);
/* ctl_filter_add - one API parameter (key) = value; -1 a bad value (reason in err) */
int ctl_filter_add(struct ctl_filter *f, const char *key, const char *value,
    char *err, size_t errlen);
/*
 * ctl_filter_opt - argv[*i] as a filter option ("--domain D", "--domain=D"):
 * 1 taken (*i now at its value), 0 not one, -1 bad or missing value (err)
 */
int ctl_filter_opt(struct ctl_filter *f, int argc, char **argv, int *i, char *err,
    size_t errlen);
/* ctl_filter_query - "&key=value..." percent-encoded into buf; -1 if it does not fit */
int ctl_filter_query(const struct ctl_filter *f, char *buf, size_t size);

/* --- ctl_cmd.c: one command's state and what the command files share --- */

#define CTL_HEAD_MAX    65536        /* header bytes shown from a file */

struct ctl {
	const char *prog;              /* "mtactl" or "mailq" */
	const char *conf_path;
	int conf_implicit;             /* neither -c nor MTAD_CONFIG: the default path */
	struct config *cfg;
	struct ctl_http http;
	int json, body;
	int direct;                    /* reading data_dir: mtad is not running */
	struct ctl_filter filter;      /* --domain, --state, ...: the API's parameters */
};

/* ctl_cmd_err - "prog: message" on stderr (cut at 4 KiB) */
void ctl_cmd_err(const struct ctl *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/*
 * ctl_cmd_api - one request; on success *out holds the parsed JSON reply (or
 * NULL for a non-JSON body) and *status the HTTP status. Returns CTL_EX_OK,
 * CTL_EX_NODAEMON (nothing listens), CTL_EX_PERM (401/403) or CTL_EX_FAIL.
 */
int ctl_cmd_api(struct ctl *c, const char *method, const char *path, struct json_t *body,
    struct json_t **out, int *status);
/* ctl_cmd_api_error - the {"error": ...} text of a reply, or a fallback */
const char *ctl_cmd_api_error(struct json_t *j, const char *fallback);
/* ctl_cmd_direct_error - data_dir could not be read (errno e): a message and a status */
int ctl_cmd_direct_error(struct ctl *c, int e, const char *err);
/* ctl_cmd_id_norm - a queue id from the command line, upper-cased; -1 if it cannot be one */
int ctl_cmd_id_norm(const char *in, char *out, size_t size);
/* ctl_cmd_jset - set key to a new value; -1 when val is NULL or the set fails */
int ctl_cmd_jset(struct json_t *o, const char *key, struct json_t *val);
/* ctl_cmd_time - a Unix time in local time as mailq shows it, with the year or not */
void ctl_cmd_time(struct json_t *t, char *buf, size_t size, int with_year);
/* ctl_cmd_print_clean - a string from a peer or a file, control characters as '?' */
void ctl_cmd_print_clean(FILE *f, const char *s);

/* ctl_show.c: mtactl show ID [--body] [--json]; an exit status */
int ctl_show_cmd(struct ctl *c, const char *arg);

/* ctl_dkim.c: `dkim-record DOMAIN` prints the TXT records; an exit status */
struct config;
int ctl_dkim_record(const struct config *cfg, const char *prog, const char *domain);

#endif
