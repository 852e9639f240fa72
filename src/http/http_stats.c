/*
 * http_stats.c - the body of /api/stats, the disk banner texts (SPEC §8) and
 * the snapshot handed to the Prometheus format (src/metrics/metrics_prom.c)
 *
 * Owns:     the SPEC §8 texts as the UI shows them.
 * Lifetime: stateless: it formats a struct http_snap.
 * Errors:   NULL when memory is short.
 * Context:  event-loop thread.
 */
#include "http/http_int.h"
#include "mail/diskguard.h"
#include "metrics/metrics_prom.h"

/* http_stats_disk_message - SPEC §8's text for a disk state; NULL when there is nothing to say */
const char *
http_stats_disk_message(int state)
{
	switch (state) {
	case 1:  return "Data volume has less than 5% free disk space";
	case 2:  return "Data volume has less than 1% free disk space";
	default: return NULL;
	}
}

/* http_stats_disk_state_of - SPEC §8's thresholds, as the disk guard has them */
int
http_stats_disk_state_of(double free_pct)
{
	return diskguard_level(free_pct);
}

/* http_disk_state_name - the state's name in /api/stats */
static const char *
http_disk_state_name(int state)
{
	return state == 2 ? "critical" : state == 1 ? "low" : "ok";
}

/* http_obj - {"k": v, ...} from pairs of name and unsigned value */
static json_t *
http_obj_u(const char *const *names, const uint64_t *vals, size_t n)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (jsonout_set(o, names[i], json_integer((json_int_t)vals[i])) < 0) {
			json_decref(o);
			return NULL;
		}
	return o;
}

/* http_stats_json - the body of /api/stats from a snapshot */
json_t *
http_stats_json(const struct http_snap *s)
{
	static const char *const qn[] = {
		"messages", "kilobytes", "bytes", "recipients", "active", "deferred", "held",
	};
	static const char *const sn[] = {
		"active", "total", "tls_total", "auth_active", "auth_total", "auth_failures",
	};
	static const char *const tn[] = {
		"accepted", "accepted_bytes", "rejected", "delivered", "deferred", "bounced",
	};
	const uint64_t qv[] = {
		s->queue_messages, (s->queue_bytes + 1023) / 1024, s->queue_bytes,
		s->queue_rcpts, s->n_active, s->n_deferred, s->n_held,
	};
	const uint64_t sv[] = {
		s->sessions_active, s->sessions_total, s->tls_sessions, s->auth_sessions_active,
		s->auth_sessions, s->auth_failures,
	};
	const uint64_t tv[] = {
		s->accepted, s->accepted_bytes, s->rejected, s->delivered, s->deferred, s->bounced,
	};
	json_t *o = json_object(), *queue, *disk, *rates, *lat;
	uint64_t oldest = 0;
	const char *msg = http_stats_disk_message(s->disk_state);

	if (o == NULL)
		return NULL;
	if (s->oldest_arrival_us != 0 && s->now_us > s->oldest_arrival_us)
		oldest = (s->now_us - s->oldest_arrival_us) / 1000000;
	if ((queue = http_obj_u(qn, qv, sizeof(qn) / sizeof(qn[0]))) == NULL ||
	    jsonout_set(o, "queue", queue) < 0 ||
	    jsonout_set(queue, "oldest_age", json_integer((json_int_t)oldest)) < 0 ||
	    jsonout_set(o, "sessions", http_obj_u(sn, sv, sizeof(sn) / sizeof(sn[0]))) < 0 ||
	    jsonout_set(o, "totals", http_obj_u(tn, tv, sizeof(tn) / sizeof(tn[0]))) < 0)
		goto fail;
	if ((rates = json_pack("{s:f,s:f,s:f,s:f,s:f}",
	    "accepted_per_min", s->rate_accepted, "delivered_per_min", s->rate_delivered,
	    "deferred_per_min", s->rate_deferred, "bounced_per_min", s->rate_bounced,
	    "rejected_per_min", s->rate_rejected)) == NULL ||
	    jsonout_set(o, "rates", rates) < 0)
		goto fail;
	if ((lat = json_pack("{s:I,s:f,s:f}", "count", (json_int_t)s->latency_count,
	    "sum_seconds", s->latency_sum, "avg_seconds",
	    s->latency_count ? s->latency_sum / (double)s->latency_count : 0.0)) == NULL ||
	    jsonout_set(o, "latency", lat) < 0)
		goto fail;
	if ((disk = json_pack("{s:s,s:i,s:o}", "state", http_disk_state_name(s->disk_state),
	    "level", s->disk_state, "message", msg ? json_string(msg) : json_null())) == NULL ||
	    jsonout_set(o, "disk", disk) < 0)
		goto fail;
	if (s->disk_known) {
		if (jsonout_set(disk, "free_percent", json_real(s->disk_free_pct)) < 0 ||
		    jsonout_set(disk, "free_bytes", json_integer((json_int_t)s->disk_free_bytes)) < 0 ||
		    jsonout_set(disk, "total_bytes", json_integer((json_int_t)s->disk_total_bytes)) < 0)
			goto fail;
	} else if (jsonout_set(disk, "free_percent", json_null()) < 0)
		goto fail;
	if (jsonout_set(o, "ui", json_pack("{s:b}", "open", s->ui_open)) < 0 ||
	    jsonout_set(o, "hostname", jsonout_str(s->hostname)) < 0 ||
	    jsonout_set(o, "now", json_integer((json_int_t)(s->now_us / 1000000))) < 0 ||
	    jsonout_set(o, "started", json_integer((json_int_t)(s->start_us / 1000000))) < 0 ||
	    jsonout_set(o, "uptime", json_integer((json_int_t)(s->now_us > s->start_us ?
	    (s->now_us - s->start_us) / 1000000 : 0))) < 0)
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

/*
 * http_metrics_format - /metrics: the snapshot in the Prometheus text
 * format (metrics_prom.c owns the names and the encoding)
 */
int
http_metrics_format(const struct http_snap *s, const double *bounds, struct evbuffer *b)
{
	struct metrics_prom_values v = {
		.now_us = s->now_us, .start_us = s->start_us,
		.queue_messages = s->queue_messages, .queue_bytes = s->queue_bytes,
		.queue_rcpts = s->queue_rcpts, .n_active = s->n_active,
		.n_deferred = s->n_deferred, .n_held = s->n_held,
		.oldest_arrival_us = s->oldest_arrival_us,
		.sessions_active = s->sessions_active, .sessions_total = s->sessions_total,
		.tls_sessions = s->tls_sessions, .accepted = s->accepted,
		.accepted_bytes = s->accepted_bytes, .rejected = s->rejected,
		.delivered = s->delivered, .deferred = s->deferred, .bounced = s->bounced,
		.dkim_signed = s->dkim_signed, .auth_sessions = s->auth_sessions,
		.auth_sessions_active = s->auth_sessions_active, .auth_failures = s->auth_failures,
		.latency_bucket = s->latency_bucket, .latency_bounds = bounds,
		.latency_buckets = s->latency_buckets, .latency_sum = s->latency_sum,
		.latency_count = s->latency_count,
		.disk_known = s->disk_known, .disk_free_pct = s->disk_free_pct,
		.disk_state = s->disk_state,
	};

	return metrics_prom_format(&v, b);
}
