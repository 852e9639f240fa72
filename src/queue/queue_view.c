/*
 * queue_view.c - a queued message as operators see it: its state (active,
 *                deferred, held) and its JSON shape, the /api/queue row and
 *                the envelope part of /api/queue/ID
 *
 * Owns:     the json_t it returns (the caller takes it).
 * Lifetime: each call is independent; m is borrowed and only read.
 * Errors:   allocation failure returns NULL.
 * Context:  any thread that may read m: the daemon's event loop (the API)
 *           and mtactl, which shows a stopped queue in the same shape.
 *
 * The field names and values are an interface (docs/web-ui.md); mtactl's
 * offline mode uses these functions so that what it prints from data_dir
 * is exactly what the API would have answered, without linking the web
 * server. Strings come from SMTP peers and go through jsonout_str()
 * (ill-formed UTF-8 becomes U+FFFD).
 */
#include "queue/queue_view.h"
#include "queue/queue.h"
#include "lib/jsonout.h"

#include <string.h>

/* queue_view_state_name - the name the API and the dashboard use */
const char *
queue_view_state_name(enum queue_view_state st)
{
	switch (st) {
	case QUEUE_VIEW_ACTIVE:   return "active";
	case QUEUE_VIEW_DEFERRED: return "deferred";
	case QUEUE_VIEW_HELD:     return "held";
	default:                  return "any";
	}
}

/*
 * queue_view_state - held wins; a message with a pending recipient that has
 * already failed once is deferred (Postfix's deferred queue); the rest are
 * active (Postfix's incoming and active queues together).
 */
enum queue_view_state
queue_view_state(const struct queue_msg *m)
{
	if (m->held)
		return QUEUE_VIEW_HELD;
	for (size_t i = 0; i < m->nrcpt; i++)
		if (m->rcpt[i].state == QUEUE_RCPT_PENDING && m->rcpt[i].attempts > 0)
			return QUEUE_VIEW_DEFERRED;
	return QUEUE_VIEW_ACTIVE;
}

/* queue_view_time - microseconds to Unix seconds; 0 (unset) to null */
static json_t *
queue_view_time(uint64_t us)
{
	return us == 0 ? json_null() : json_integer((json_int_t)(us / 1000000));
}

/* queue_view_rcpt_state - a recipient's state as the API names it */
static const char *
queue_view_rcpt_state(const struct queue_rcpt *r)
{
	switch (r->state) {
	case QUEUE_RCPT_DELIVERED: return "delivered";
	case QUEUE_RCPT_BOUNCED:   return "bounced";
	default:                   return r->attempts > 0 ? "deferred" : "pending";
	}
}

/*
 * queue_view_summary - one row of /api/queue: envelope only, no file access.
 * "recipients" lists the first QUEUE_VIEW_LIST_RCPTS addresses; "next_try" and
 * "last_reply" are the earliest and the first of the pending recipients.
 */
json_t *
queue_view_summary(const struct queue_msg *m, uint64_t now_us)
{
	json_t *o = json_object(), *rc;
	unsigned attempts = 0;
	uint64_t next = 0;
	const char *reply = NULL;
	size_t pending = 0;

	if (o == NULL)
		return NULL;
	for (size_t i = 0; i < m->nrcpt; i++) {
		const struct queue_rcpt *r = &m->rcpt[i];
		if (r->attempts > attempts)
			attempts = r->attempts;
		if (r->state != QUEUE_RCPT_PENDING)
			continue;
		pending++;
		if (r->next_try_us != 0 && (next == 0 || r->next_try_us < next))
			next = r->next_try_us;
		if (reply == NULL && r->last_reply != NULL)
			reply = r->last_reply;
	}
	if ((rc = json_array()) == NULL || jsonout_set(o, "recipients", rc) < 0)
		goto fail;
	for (size_t i = 0; i < m->nrcpt && i < QUEUE_VIEW_LIST_RCPTS; i++)
		if (json_array_append_new(rc, jsonout_str(m->rcpt[i].addr)) < 0)
			goto fail;
	if (jsonout_set(o, "id", jsonout_str(m->id)) < 0 ||
	    jsonout_set(o, "sender", jsonout_str(m->sender != NULL ? m->sender : "")) < 0 ||
	    jsonout_set(o, "nrcpt", json_integer((json_int_t)m->nrcpt)) < 0 ||
	    jsonout_set(o, "pending", json_integer((json_int_t)pending)) < 0 ||
	    jsonout_set(o, "arrival", queue_view_time(m->arrival_us)) < 0 ||
	    jsonout_set(o, "age", json_integer((json_int_t)(now_us > m->arrival_us ?
	    (now_us - m->arrival_us) / 1000000 : 0))) < 0 ||
	    jsonout_set(o, "size", json_integer((json_int_t)m->size)) < 0 ||
	    jsonout_set(o, "state", json_string(queue_view_state_name(queue_view_state(m)))) < 0 ||
	    jsonout_set(o, "held", json_boolean(m->held)) < 0 ||
	    jsonout_set(o, "attempts", json_integer(attempts)) < 0 ||
	    jsonout_set(o, "next_try", queue_view_time(next)) < 0 ||
	    jsonout_set(o, "last_reply", jsonout_str(reply)) < 0)
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

/*
 * queue_view_detail - /api/queue/ID without its headers: the row, then the
 * client, the flags, and every recipient as an object (replacing the row's
 * list of addresses). The caller adds "headers" if it can read the file.
 */
json_t *
queue_view_detail(const struct queue_msg *m, uint64_t now_us)
{
	json_t *o = queue_view_summary(m, now_us), *rc, *client, *flags;

	if (o == NULL)
		return NULL;
	if ((client = json_object()) == NULL || jsonout_set(o, "client", client) < 0 ||
	    jsonout_set(client, "addr", jsonout_str(m->client_addr)) < 0 ||
	    jsonout_set(client, "name", jsonout_str(m->client_name)) < 0 ||
	    jsonout_set(client, "helo", jsonout_str(m->helo)) < 0)
		goto fail;
	if ((flags = json_array()) == NULL || jsonout_set(o, "flags", flags) < 0 ||
	    ((m->flags & QUEUE_F_8BITMIME) && json_array_append_new(flags, json_string("8BITMIME")) < 0) ||
	    ((m->flags & QUEUE_F_SMTPUTF8) && json_array_append_new(flags, json_string("SMTPUTF8")) < 0) ||
	    ((m->flags & QUEUE_F_BOUNCE) && json_array_append_new(flags, json_string("BOUNCE")) < 0) ||
	    ((m->flags & QUEUE_F_CC) && json_array_append_new(flags, json_string("CC_PENDING")) < 0))
		goto fail;
	if ((rc = json_array()) == NULL || jsonout_set(o, "recipients", rc) < 0)
		goto fail;
	for (size_t i = 0; i < m->nrcpt; i++) {
		const struct queue_rcpt *r = &m->rcpt[i];
		json_t *x = json_object();
		if (x == NULL || json_array_append_new(rc, x) < 0 ||
		    jsonout_set(x, "address", jsonout_str(r->addr)) < 0 ||
		    jsonout_set(x, "state", json_string(queue_view_rcpt_state(r))) < 0 ||
		    jsonout_set(x, "attempts", json_integer(r->attempts)) < 0 ||
		    jsonout_set(x, "next_try", r->state == QUEUE_RCPT_PENDING ?
		    queue_view_time(r->next_try_us) : json_null()) < 0 ||
		    jsonout_set(x, "last_reply", jsonout_str(r->last_reply)) < 0 ||
		    jsonout_set(x, "dsn", r->dsn[0] ? jsonout_strn(r->dsn,
		    strnlen(r->dsn, sizeof(r->dsn))) : json_null()) < 0)
			goto fail;
	}
	return o;
fail:
	json_decref(o);
	return NULL;
}
