/*
 * metrics_prom.c - the Prometheus text exposition format 0.0.4 of mtad's
 * metrics (served as /metrics by src/http/)
 *
 * Owns:     the metric names (SPEC §7: mta_queue_messages, mta_queue_kilobytes,
 *           mta_smtp_sessions_active, and the totals) and their help texts.
 * Lifetime: stateless: it formats a struct metrics_prom_values.
 * Errors:   -1 when the buffer cannot grow (the caller answers 500).
 * Context:  event-loop thread.
 */
#include "metrics/metrics_prom.h"

#include <event2/buffer.h>

struct metrics_prom {
	const char *name;
	const char *type;
	const char *help;
};

/* metrics_prom_u - HELP, TYPE and the sample of one unsigned metric */
static int
metrics_prom_u(struct evbuffer *b, const struct metrics_prom *p, uint64_t v)
{
	return evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n",
	    p->name, p->help, p->name, p->type, p->name, (unsigned long long)v) < 0 ? -1 : 0;
}

/* metrics_prom_d - HELP, TYPE and the sample of one floating-point metric */
static int
metrics_prom_d(struct evbuffer *b, const struct metrics_prom *p, double v)
{
	return evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.6g\n",
	    p->name, p->help, p->name, p->type, p->name, v) < 0 ? -1 : 0;
}

/* metrics_prom_format - every metric of /metrics into b; -1 when b cannot grow */
int
metrics_prom_format(const struct metrics_prom_values *s, struct evbuffer *b)
{
	static const struct metrics_prom gauges[] = {
		{ "mta_queue_messages", "gauge", "Messages in the queue (Mqueue-Messages)." },
		{ "mta_queue_kilobytes", "gauge", "Size of the queued messages in kilobytes (Mqueue-Kilobytes)." },
		{ "mta_smtp_sessions_active", "gauge", "Active inbound SMTP sessions (Active SMTP sessions)." },
		{ "mta_queue_recipients", "gauge", "Recipients not yet delivered or bounced." },
		{ "mta_queue_active_messages", "gauge", "Queued messages waiting for their first attempt or in delivery." },
		{ "mta_queue_deferred_messages", "gauge", "Queued messages with a recipient deferred." },
		{ "mta_queue_held_messages", "gauge", "Queued messages on hold." },
		{ "mta_smtp_auth_sessions_active", "gauge", "Open inbound sessions logged in with SMTP AUTH." },
	};
	static const struct metrics_prom counters[] = {
		{ "mta_messages_accepted_total", "counter", "Messages accepted into the queue." },
		{ "mta_messages_accepted_bytes_total", "counter", "Bytes of messages accepted into the queue." },
		{ "mta_messages_rejected_total", "counter", "SMTP commands and connections refused with 4xx/5xx." },
		{ "mta_recipients_delivered_total", "counter", "Recipients delivered." },
		{ "mta_recipients_deferred_total", "counter", "Delivery attempts deferred (per recipient)." },
		{ "mta_recipients_bounced_total", "counter", "Recipients bounced." },
		{ "mta_smtp_sessions_total", "counter", "Inbound SMTP sessions." },
		{ "mta_tls_sessions_total", "counter", "Inbound SMTP sessions that used TLS." },
		{ "mta_dkim_signed_total", "counter", "Messages given DKIM signatures before queueing." },
		{ "mta_smtp_auth_sessions_total", "counter", "Successful SMTP AUTH logins." },
		{ "mta_smtp_auth_failures_total", "counter", "Failed SMTP AUTH attempts." },
	};
	static const struct metrics_prom age = { "mta_queue_oldest_message_age_seconds",
	    "gauge", "Age of the oldest queued message (0 when the queue is empty)." };
	static const struct metrics_prom uptime = { "mta_uptime_seconds", "gauge",
	    "Seconds since mtad started." };
	static const struct metrics_prom dstate = { "mta_disk_state", "gauge",
	    "data_dir free space: 0 ok, 1 below 5 % (warning), 2 below 1 % (new mail refused)." };
	static const struct metrics_prom dfree = { "mta_disk_free_ratio", "gauge",
	    "Free fraction of data_dir's file system (for unprivileged users)." };
	const uint64_t gv[] = {
		s->queue_messages, (s->queue_bytes + 1023) / 1024, s->sessions_active,
		s->queue_rcpts, s->n_active, s->n_deferred, s->n_held, s->auth_sessions_active,
	};
	const uint64_t cv[] = {
		s->accepted, s->accepted_bytes, s->rejected, s->delivered, s->deferred,
		s->bounced, s->sessions_total, s->tls_sessions, s->dkim_signed,
		s->auth_sessions, s->auth_failures,
	};
	uint64_t cum = 0;
	double oldest = 0;

	for (size_t i = 0; i < sizeof(gauges) / sizeof(gauges[0]); i++)
		if (metrics_prom_u(b, &gauges[i], gv[i]) < 0)
			return -1;
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
		if (metrics_prom_u(b, &counters[i], cv[i]) < 0)
			return -1;
	if (s->oldest_arrival_us != 0 && s->now_us > s->oldest_arrival_us)
		oldest = (double)(s->now_us - s->oldest_arrival_us) / 1e6;
	if (metrics_prom_d(b, &age, oldest) < 0 ||
	    metrics_prom_d(b, &uptime, s->now_us > s->start_us ?
	    (double)(s->now_us - s->start_us) / 1e6 : 0) < 0 ||
	    metrics_prom_u(b, &dstate, (uint64_t)s->disk_state) < 0)
		return -1;
	if (s->disk_known && metrics_prom_d(b, &dfree, s->disk_free_pct / 100.0) < 0)
		return -1;

	if (evbuffer_add_printf(b, "# HELP mta_delivery_latency_seconds Time from "
	    "arrival to delivery, per recipient.\n"
	    "# TYPE mta_delivery_latency_seconds histogram\n") < 0)
		return -1;
	for (int i = 0; i < s->latency_buckets; i++) {
		int rc;
		cum += s->latency_bucket[i];
		if (i == s->latency_buckets - 1)
			rc = evbuffer_add_printf(b,
			    "mta_delivery_latency_seconds_bucket{le=\"+Inf\"} %llu\n",
			    (unsigned long long)cum);
		else
			rc = evbuffer_add_printf(b,
			    "mta_delivery_latency_seconds_bucket{le=\"%g\"} %llu\n",
			    s->latency_bounds[i], (unsigned long long)cum);
		if (rc < 0)
			return -1;
	}
	if (evbuffer_add_printf(b, "mta_delivery_latency_seconds_sum %.6f\n"
	    "mta_delivery_latency_seconds_count %llu\n",
	    s->latency_sum, (unsigned long long)s->latency_count) < 0)
		return -1;
	return 0;
}
