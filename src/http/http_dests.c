/*
 * http_dests.c - GET /api/destinations and the per-destination gauges of
 *                /metrics (SPEC §11.2: limits and throttling, visible)
 *
 * Owns:     nothing beyond one request: a bounded array of
 *           struct sched_dest_info copied from the scheduler.
 * Lifetime: one request.
 * Errors:   out of memory: 503 (API) or -1 (the metrics text goes without
 *           these gauges).
 * Context:  event-loop thread (the scheduler's data is read in place).
 *
 * Only destinations that have jobs or connections now exist in the
 * scheduler, so the label set of the gauges follows the active
 * destinations, and it is capped (HTTP_DESTS_METRICS_MAX, the busiest
 * first) so that a burst to many domains cannot blow up a Prometheus
 * server's series count.
 */
#include "http/http.h"
#include "http/http_int.h"
#include "lib/jsonout.h"
#include "lib/util.h"
#include "sched/sched.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#define HTTP_DESTS_API_MAX     1000    /* destinations in /api/destinations */
#define HTTP_DESTS_METRICS_MAX 50      /* destinations with gauges in /metrics */

/* dests_take - at most max destinations (busiest first) into *out; count, or -1 */
static long
dests_take(struct http *h, size_t max, struct sched_dest_info **out, size_t *total)
{
	struct sched_dest_info *v;

	*out = NULL;
	*total = 0;
	if (h->sched == NULL)
		return 0;
	if ((v = calloc(max, sizeof(*v))) == NULL)
		return -1;
	*out = v;
	return (long)sched_dest_list(h->sched, v, max, total);
}

/* dest_json - one destination as a JSON object */
static json_t *
dest_json(const struct sched_dest_info *d)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	if (jsonout_set(o, "destination", jsonout_str(d->name)) < 0 ||
	    jsonout_set(o, "kind", json_string(d->kind)) < 0 ||
	    jsonout_set(o, "port", json_integer(d->port)) < 0 ||
	    jsonout_set(o, "concurrency_limit", json_integer(d->limit)) < 0 ||
	    jsonout_set(o, "concurrency_max", json_integer(d->max)) < 0 ||
	    jsonout_set(o, "connections", json_integer(d->conns)) < 0 ||
	    jsonout_set(o, "in_flight", json_integer(d->busy)) < 0 ||
	    jsonout_set(o, "queued", json_integer((json_int_t)d->queued)) < 0 ||
	    jsonout_set(o, "rate_limit", d->rate[0] != '\0' ? json_string(d->rate) :
	    json_null()) < 0 ||
	    jsonout_set(o, "throttled", json_boolean(d->throttled)) < 0 ||
	    jsonout_set(o, "throttle_events", json_integer((json_int_t)d->halvings)) < 0 ||
	    jsonout_set(o, "delivered", json_integer((json_int_t)d->delivered)) < 0 ||
	    jsonout_set(o, "last_throttle_time", d->throttle_us != 0 ?
	    json_integer((json_int_t)(d->throttle_us / 1000000u)) : json_null()) < 0 ||
	    jsonout_set(o, "last_throttle_reply", d->throttle_us != 0 ?
	    jsonout_str(d->throttle_why) : json_null()) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* http_api_destinations - GET /api/destinations */
void
http_api_destinations(struct http *h, struct evhttp_request *req, const char *path,
    struct evkeyvalq *query)
{
	struct sched_dest_info *v;
	size_t total = 0, throttled = 0;
	long n = dests_take(h, HTTP_DESTS_API_MAX, &v, &total);
	json_t *o = NULL, *a = NULL;

	(void)path; (void)query;
	if (n < 0)
		goto nomem;
	if ((o = json_object()) == NULL || (a = json_array()) == NULL)
		goto nomem;
	for (long i = 0; i < n; i++) {
		if (v[i].throttled)
			throttled++;
		if (json_array_append_new(a, dest_json(&v[i])) < 0)
			goto nomem;
	}
	if (jsonout_set(o, "destinations", a) < 0) {
		a = NULL;
		goto nomem;
	}
	a = NULL;
	if (jsonout_set(o, "total", json_integer((json_int_t)total)) < 0 ||
	    jsonout_set(o, "shown", json_integer(n)) < 0 ||
	    jsonout_set(o, "throttled", json_integer((json_int_t)throttled)) < 0)
		goto nomem;
	free(v);
	http_reply_json(req, 200, o);
	return;
nomem:
	json_decref(a);
	json_decref(o);
	free(v);
	http_error(req, 503, "out of memory");
}

/* dests_label - name:port as a Prometheus label value (\ and " escaped) */
static void
dests_label(const struct sched_dest_info *d, char *buf, size_t size)
{
	char raw[300];
	size_t j = 0;

	if (util_bsnprintf(raw, sizeof(raw), "%s:%d", d->name, d->port) < 0)
		util_strlcpy(raw, d->name, sizeof(raw));
	for (size_t i = 0; raw[i] != '\0' && j + 3 < size; i++) {
		unsigned char c = (unsigned char)raw[i];

		if (c == '\\' || c == '"')
			buf[j++] = '\\';
		buf[j++] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
	}
	buf[j] = '\0';
}

/* http_dests_metrics - the per-destination gauges, appended to b; 0 or -1 */
int
http_dests_metrics(struct http *h, struct evbuffer *b)
{
	static const struct { const char *name, *help; } g[] = {
		{ "mta_destination_concurrency_limit", "Connections a destination may have now "
		    "(lowered by throttling feedback)." },
		{ "mta_destination_concurrency_max", "Configured connections per destination." },
		{ "mta_destination_in_flight", "Transactions running to a destination." },
		{ "mta_destination_queued", "Jobs waiting at a destination." },
		{ "mta_destination_throttled", "1 while a destination's limit is lowered by "
		    "throttling feedback." },
	};
	struct sched_dest_info *v;
	size_t total = 0;
	long n = dests_take(h, HTTP_DESTS_METRICS_MAX, &v, &total);
	char label[600];
	int rc = 0;

	if (n < 0)
		return -1;
	for (size_t k = 0; k < sizeof(g) / sizeof(g[0]) && rc == 0; k++) {
		if (evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", g[k].name, g[k].help,
		    g[k].name) < 0)
			rc = -1;
		for (long i = 0; i < n && rc == 0; i++) {
			unsigned long long val = k == 0 ? v[i].limit : k == 1 ? v[i].max :
			    k == 2 ? v[i].busy : k == 3 ? (unsigned long long)v[i].queued :
			    (unsigned long long)(v[i].throttled != 0);

			dests_label(&v[i], label, sizeof(label));
			if (evbuffer_add_printf(b, "%s{destination=\"%s\"} %llu\n", g[k].name, label,
			    val) < 0)
				rc = -1;
		}
	}
	free(v);
	return rc;
}
