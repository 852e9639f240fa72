/*
 * queue_rec.c - the queue file record format: encoders and the resumable
 *               parser that checks and loads a file (format: queue_rec.h)
 *
 * Owns:     the strings a struct queue_parse has collected.
 * Lifetime: struct queue_parse from queue_rec_parse_init() to queue_rec_parse_free();
 *           queue_rec_parse_take() moves the message out.
 * Errors:   a malformed file is a verdict (QUEUE_PARSE_CORRUPT + reason),
 *           never a crash: every length is bounded before it is used and
 *           the parser only ever keeps QUEUE_REC_COLLECT_MAX bytes of a
 *           record, plus the recipients (at most QUEUE_REC_RCPT_MAX).
 * Context:  any thread; no I/O.
 */
#include "queue/queue_rec.h"
#include "lib/crc32c.h"

#include <stdlib.h>
#include <string.h>

enum { PH_FILEHDR, PH_RECHDR, PH_PAYLOAD, PH_CUT, PH_STOP };
enum { STG_ENV, STG_DATA, STG_END, STG_STATE };

#define QUEUE_KNOWN_FLAGS (QUEUE_F_8BITMIME | QUEUE_F_SMTPUTF8 | QUEUE_F_BOUNCE | QUEUE_F_CC | \
    QUEUE_F_WIRE | QUEUE_F_WARNED)

void
queue_rec_put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

void
queue_rec_put64(unsigned char *p, uint64_t v)
{
	queue_rec_put32(p, (uint32_t)v);
	queue_rec_put32(p + 4, (uint32_t)(v >> 32));
}

uint32_t
queue_rec_get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

uint64_t
queue_rec_get64(const unsigned char *p)
{
	return (uint64_t)queue_rec_get32(p) | (uint64_t)queue_rec_get32(p + 4) << 32;
}

/* queue_rec_hdr - type and little-endian length */
void
queue_rec_hdr(unsigned char *out, unsigned type, uint32_t len)
{
	out[0] = (unsigned char)type;
	queue_rec_put32(out + 1, len);
}

/* queue_rec_filehdr - magic, version, three zero bytes */
void
queue_rec_filehdr(unsigned char *out)
{
	memcpy(out, QUEUE_REC_MAGIC, 4);
	out[4] = QUEUE_REC_VERSION;
	out[5] = out[6] = out[7] = 0;
}

/* queue_rec_state_close - fill in the header and the trailing crc of a state record */
static size_t
queue_rec_state_close(unsigned char *out, unsigned type, size_t body)
{
	uint32_t crc;

	queue_rec_hdr(out, type, (uint32_t)(body + 4));
	crc = crc32c(0, out, QUEUE_REC_HDR + body);
	queue_rec_put32(out + QUEUE_REC_HDR + body, crc);
	return QUEUE_REC_HDR + body + 4;
}

/* queue_rec_state_rcpt - an 'r' record: a recipient's state after an attempt */
size_t
queue_rec_state_rcpt(unsigned char *out, uint32_t idx, unsigned state,
    uint32_t attempts, uint64_t next_try_us, const char *dsn, const char *reply)
{
	unsigned char *p = out + QUEUE_REC_HDR;
	size_t dl = dsn != NULL ? strnlen(dsn, QUEUE_REC_DSN_MAX) : 0;
	size_t rl = reply != NULL ? strnlen(reply, QUEUE_REC_REPLY_MAX) : 0;

	queue_rec_put32(p, idx);
	p[4] = (unsigned char)state;
	queue_rec_put32(p + 5, attempts);
	queue_rec_put64(p + 9, next_try_us);
	p[17] = (unsigned char)dl;
	memcpy(p + 18, dsn, dl);
	if (rl > 0)
		memcpy(p + 18 + dl, reply, rl);
	return queue_rec_state_close(out, QUEUE_REC_ST_RCPT, 18 + dl + rl);
}

/* queue_rec_state_held - an 'h' record */
size_t
queue_rec_state_held(unsigned char *out, int held)
{
	out[QUEUE_REC_HDR] = held ? 1 : 0;
	return queue_rec_state_close(out, QUEUE_REC_ST_HELD, 1);
}

/* queue_rec_state_flags - an 'f' record */
size_t
queue_rec_state_flags(unsigned char *out, uint32_t flags)
{
	queue_rec_put32(out + QUEUE_REC_HDR, flags);
	return queue_rec_state_close(out, QUEUE_REC_ST_FLAGS, 4);
}

/* queue_rec_state_attempt - an 'a' record: one attempt of one recipient, for its history */
size_t
queue_rec_state_attempt(unsigned char *out, const struct queue_attempt *a)
{
	unsigned char *p = out + QUEUE_REC_HDR;
	size_t hl = strnlen(a->host, QUEUE_ATTEMPT_HOST_MAX);
	size_t dl = strnlen(a->dsn, QUEUE_REC_DSN_MAX);
	size_t rl = strnlen(a->reply, QUEUE_ATTEMPT_REPLY_MAX);

	queue_rec_put32(p, a->rcpt);
	p[4] = (unsigned char)a->result;
	queue_rec_put32(p + 5, a->attempt);
	queue_rec_put64(p + 9, a->time_us);
	for (int i = 0; i < 4; i++)
		queue_rec_put32(p + 17 + 4 * i, a->delays_ms[i]);
	p[33] = (unsigned char)(hl & 0xff);
	p[34] = (unsigned char)(hl >> 8);
	p[35] = (unsigned char)dl;
	p += QUEUE_REC_HIST_FIXED;
	memcpy(p, a->host, hl);
	memcpy(p + hl, a->dsn, dl);
	memcpy(p + hl + dl, a->reply, rl);
	return queue_rec_state_close(out, QUEUE_REC_ST_ATTEMPT, QUEUE_REC_HIST_FIXED + hl + dl + rl);
}

/* queue_rec_attempt_decode - the payload of an 'a' record (crc excluded) into *a */
int
queue_rec_attempt_decode(const unsigned char *b, size_t len, struct queue_attempt *a)
{
	size_t hl, dl, rl;

	if (len < QUEUE_REC_HIST_FIXED)
		return -1;
	hl = (size_t)b[33] | (size_t)b[34] << 8;
	dl = b[35];
	if (hl > QUEUE_ATTEMPT_HOST_MAX || dl > QUEUE_REC_DSN_MAX ||
	    QUEUE_REC_HIST_FIXED + hl + dl > len)
		return -1;
	rl = len - QUEUE_REC_HIST_FIXED - hl - dl;
	if (rl > QUEUE_ATTEMPT_REPLY_MAX || b[4] > QUEUE_ATTEMPT_BOUNCED ||
	    memchr(b + QUEUE_REC_HIST_FIXED, '\0', hl + dl + rl) != NULL)
		return -1;
	a->rcpt = queue_rec_get32(b);
	a->result = (enum queue_attempt_result)b[4];
	a->attempt = queue_rec_get32(b + 5);
	a->time_us = queue_rec_get64(b + 9);
	for (int i = 0; i < 4; i++)
		a->delays_ms[i] = queue_rec_get32(b + 17 + 4 * i);
	b += QUEUE_REC_HIST_FIXED;
	memcpy(a->host, b, hl);
	a->host[hl] = '\0';
	memcpy(a->dsn, b + hl, dl);
	a->dsn[dl] = '\0';
	memcpy(a->reply, b + hl + dl, rl);
	a->reply[rl] = '\0';
	return 0;
}

/* queue_rec_msg_free_fields - free what a queue_msg points to, leave it empty */
void
queue_rec_msg_free_fields(struct queue_msg *m)
{
	if (m == NULL)
		return;
	free(m->sender);
	for (size_t i = 0; i < m->nrcpt; i++) {
		free(m->rcpt[i].addr);
		free(m->rcpt[i].last_reply);
	}
	free(m->rcpt);
	free(m->client_addr);
	free(m->client_name);
	free(m->helo);
	m->sender = m->client_addr = m->client_name = m->helo = NULL;
	m->rcpt = NULL;
	m->nrcpt = 0;
}

/* queue_rec_msg_pending - does any recipient still wait for delivery? */
int
queue_rec_msg_pending(const struct queue_msg *m)
{
	for (size_t i = 0; i < m->nrcpt; i++)
		if (m->rcpt[i].state == QUEUE_RCPT_PENDING)
			return 1;
	return 0;
}

/* queue_rec_parse_init - ready to read a file from its first byte */
void
queue_rec_parse_init(struct queue_parse *p)
{
	memset(p, 0, sizeof(*p));
	p->phase = PH_FILEHDR;
	p->stage = STG_ENV;
	p->status = QUEUE_PARSE_UNCOMMITTED;
}

/* queue_rec_parse_free - drop whatever was collected and not taken */
void
queue_rec_parse_free(struct queue_parse *p)
{
	queue_rec_msg_free_fields(&p->msg);
	p->rcpt_cap = 0;
}

/* queue_rec_parse_take - hand the collected message to the caller */
void
queue_rec_parse_take(struct queue_parse *p, struct queue_msg *m)
{
	*m = p->msg;
	memset(&p->msg, 0, sizeof(p->msg));
	p->rcpt_cap = 0;
}

/* queue_parse_bad - the file is corrupt: remember why and where, stop */
static int
queue_parse_bad(struct queue_parse *p, const char *reason)
{
	p->status = QUEUE_PARSE_CORRUPT;
	p->reason = reason;
	p->bad_off = p->rec_off;
	p->phase = PH_STOP;
	return -1;
}

/* queue_parse_nomem - out of memory: stop, the verdict is NOMEM (not the file's fault) */
static int
queue_parse_nomem(struct queue_parse *p)
{
	p->status = QUEUE_PARSE_NOMEM;
	p->reason = "out of memory";
	p->phase = PH_STOP;
	return -1;
}

/* queue_parse_cut - a state record is torn or fails its crc: the state ends before it */
static void
queue_parse_cut(struct queue_parse *p)
{
	p->loc.state_cut = 1;
	p->phase = PH_CUT;
}

/* queue_parse_str - the collected payload as a new C string; NULL if it holds a NUL */
static char *
queue_parse_str(struct queue_parse *p, int *nomem)
{
	char *s;

	*nomem = 0;
	if (memchr(p->buf, '\0', p->len) != NULL)
		return NULL;
	if ((s = malloc((size_t)p->len + 1)) == NULL) {
		*nomem = 1;
		return NULL;
	}
	memcpy(s, p->buf, p->len);
	s[p->len] = '\0';
	return s;
}

/* queue_parse_set_str - store a once-only string record (sender, client, helo) */
static int
queue_parse_set_str(struct queue_parse *p, char **dst)
{
	int nomem;
	char *s = queue_parse_str(p, &nomem);

	if (s == NULL)
		return nomem ? queue_parse_nomem(p) : queue_parse_bad(p, "NUL in a string record");
	*dst = s;
	return 0;
}

/* queue_parse_add_rcpt - append a recipient, growing the array within bounds */
static int
queue_parse_add_rcpt(struct queue_parse *p)
{
	struct queue_msg *m = &p->msg;
	int nomem;
	char *s;

	if (m->nrcpt >= QUEUE_REC_RCPT_MAX)
		return queue_parse_bad(p, "too many recipients");
	if (m->nrcpt == p->rcpt_cap) {
		size_t ncap = p->rcpt_cap ? p->rcpt_cap * 2 : 4;
		struct queue_rcpt *n;

		if (ncap > QUEUE_REC_RCPT_MAX)
			ncap = QUEUE_REC_RCPT_MAX;
		if ((n = realloc(m->rcpt, ncap * sizeof(*n))) == NULL)
			return queue_parse_nomem(p);
		m->rcpt = n;
		p->rcpt_cap = ncap;
	}
	if ((s = queue_parse_str(p, &nomem)) == NULL)
		return nomem ? queue_parse_nomem(p) : queue_parse_bad(p, "NUL in a recipient");
	memset(&m->rcpt[m->nrcpt], 0, sizeof(m->rcpt[0]));
	m->rcpt[m->nrcpt++].addr = s;
	return 0;
}

/*
 * queue_parse_rec_start - a record header before the end record: check the
 * type is allowed here and its length is in range; note where things are.
 */
static int
queue_parse_rec_start(struct queue_parse *p)
{
	unsigned t = p->type;
	uint32_t len = p->len;
	unsigned bit = 0;
	uint32_t min = 0, max = 0;

	switch (t) {
	case QUEUE_REC_FLAGS:       bit = 1u << 0; min = max = 4; break;
	case QUEUE_REC_SENDER:      bit = 1u << 1; max = QUEUE_REC_ADDR_MAX; break;
	case QUEUE_REC_CLIENT_ADDR: bit = 1u << 2; max = QUEUE_REC_TEXT_MAX; break;
	case QUEUE_REC_CLIENT_NAME: bit = 1u << 3; max = QUEUE_REC_TEXT_MAX; break;
	case QUEUE_REC_HELO:        bit = 1u << 4; max = QUEUE_REC_TEXT_MAX; break;
	case QUEUE_REC_RCPT:        min = 1; max = QUEUE_REC_ADDR_MAX; break;
	case QUEUE_REC_DATA:        min = 1; max = QUEUE_REC_DATA_MAX; break;
	case QUEUE_REC_PREPEND:     max = QUEUE_REC_PREPEND_MAX; break;
	case QUEUE_REC_END:         min = max = QUEUE_REC_END_LEN; break;
	default:
		return queue_parse_bad(p, "unknown record type");
	}
	if (len < min || len > max)
		return queue_parse_bad(p, "record length out of range");
	switch (p->stage) {
	case STG_ENV:
		if (t == QUEUE_REC_END)
			return queue_parse_bad(p, "end record without prepend record");
		if (bit != 0 && (p->seen & bit))
			return queue_parse_bad(p, "envelope record repeated");
		p->seen |= bit;
		if (t == QUEUE_REC_DATA || t == QUEUE_REC_PREPEND)
			p->loc.data_off = p->rec_off;
		if (t == QUEUE_REC_DATA)
			p->stage = STG_DATA;
		break;
	case STG_DATA:
		if (t != QUEUE_REC_DATA && t != QUEUE_REC_PREPEND)
			return queue_parse_bad(p, "envelope or end record among content");
		break;
	case STG_END:
		if (t != QUEUE_REC_END)
			return queue_parse_bad(p, "record after prepend record is not the end");
		break;
	}
	if (t == QUEUE_REC_PREPEND) {
		p->loc.prepend_off = p->rec_off;
		p->loc.prepend_len = len;
	}
	p->collect = t != QUEUE_REC_DATA && t != QUEUE_REC_PREPEND;
	return 0;
}

/* queue_parse_state_start - a state record header: plausible, or the state ends here */
static int
queue_parse_state_start(struct queue_parse *p)
{
	switch (p->type) {
	case QUEUE_REC_ST_RCPT:
		return p->len >= QUEUE_REC_ST_RCPT_MIN && p->len <= QUEUE_REC_ST_RCPT_MAX;
	case QUEUE_REC_ST_HELD:
		return p->len == 1 + 4;
	case QUEUE_REC_ST_FLAGS:
		return p->len == 4 + 4;
	case QUEUE_REC_ST_ATTEMPT:
		return p->len >= QUEUE_REC_HIST_MIN && p->len <= QUEUE_REC_HIST_MAX;
	default:
		return 0;
	}
}

/* queue_parse_end - the end record: crc, content size, required records */
static int
queue_parse_end(struct queue_parse *p)
{
	struct queue_msg *m = &p->msg;
	uint32_t crc = crc32c(p->crc, p->buf, QUEUE_REC_END_LEN - 4);

	if (crc != queue_rec_get32(p->buf + 16))
		return queue_parse_bad(p, "end record crc mismatch");
	m->arrival_us = queue_rec_get64(p->buf);
	if (queue_rec_get64(p->buf + 8) != p->data_seen)
		return queue_parse_bad(p, "content size differs from end record");
	if (!(p->seen & (1u << 1)))
		return queue_parse_bad(p, "no sender record");
	if (m->nrcpt == 0)
		return queue_parse_bad(p, "no recipient record");
	m->size = p->data_seen + p->loc.prepend_len;
	p->stage = STG_STATE;
	p->status = QUEUE_PARSE_OK;
	return 0;
}

/* queue_parse_state - a complete state record: crc, then content, then apply */
static int
queue_parse_state(struct queue_parse *p)
{
	struct queue_msg *m = &p->msg;
	const unsigned char *b = p->buf;
	size_t body = p->len - 4;
	uint32_t crc = crc32c(crc32c(0, p->hdr, QUEUE_REC_HDR), b, body);

	if (crc != queue_rec_get32(b + body)) {
		queue_parse_cut(p);
		return 0;
	}
	switch (p->type) {
	case QUEUE_REC_ST_RCPT: {
		uint32_t idx = queue_rec_get32(b);
		unsigned state = b[4];
		size_t dl = b[17], rl;
		struct queue_rcpt *r;
		char *reply = NULL;

		if (idx >= m->nrcpt)
			return queue_parse_bad(p, "state record for a recipient that does not exist");
		if (state > QUEUE_RCPT_BOUNCED)
			return queue_parse_bad(p, "unknown recipient state");
		if (dl > QUEUE_REC_DSN_MAX || 18 + dl > body)
			return queue_parse_bad(p, "dsn length out of range");
		rl = body - 18 - dl;
		if (memchr(b + 18, '\0', dl + rl) != NULL)
			return queue_parse_bad(p, "NUL in a state record");
		if (rl > 0) {
			if ((reply = malloc(rl + 1)) == NULL)
				return queue_parse_nomem(p);
			memcpy(reply, b + 18 + dl, rl);
			reply[rl] = '\0';
		}
		r = &m->rcpt[idx];
		r->state = (enum queue_rcpt_state)state;
		r->attempts = queue_rec_get32(b + 5);
		r->next_try_us = queue_rec_get64(b + 9);
		memcpy(r->dsn, b + 18, dl);
		r->dsn[dl] = '\0';
		free(r->last_reply);
		r->last_reply = reply;
		break;
	}
	case QUEUE_REC_ST_HELD:
		if (b[0] > 1)
			return queue_parse_bad(p, "held state is not 0 or 1");
		m->held = b[0];
		break;
	case QUEUE_REC_ST_FLAGS: {
		uint32_t fl = queue_rec_get32(b);

		if (fl & ~(uint32_t)QUEUE_KNOWN_FLAGS)
			return queue_parse_bad(p, "unknown message flags");
		m->flags = fl;
		break;
	}
	case QUEUE_REC_ST_ATTEMPT: {
		/* checked, not kept: the history is read from the file on demand */
		struct queue_attempt a;

		if (queue_rec_attempt_decode(b, body, &a) < 0)
			return queue_parse_bad(p, "malformed attempt record");
		if (a.rcpt >= m->nrcpt)
			return queue_parse_bad(p, "attempt record for a recipient that does not exist");
		break;
	}
	}
	return 0;
}

/* queue_parse_rec_done - a record is complete: store what it says */
static int
queue_parse_rec_done(struct queue_parse *p)
{
	struct queue_msg *m = &p->msg;
	int rc = 0;

	if (p->stage == STG_STATE) {
		rc = queue_parse_state(p);
	} else {
		switch (p->type) {
		case QUEUE_REC_FLAGS:
			m->flags = queue_rec_get32(p->buf);
			if (m->flags & ~(unsigned)QUEUE_KNOWN_FLAGS)
				rc = queue_parse_bad(p, "unknown message flags");
			break;
		case QUEUE_REC_SENDER:      rc = queue_parse_set_str(p, &m->sender); break;
		case QUEUE_REC_CLIENT_ADDR: rc = queue_parse_set_str(p, &m->client_addr); break;
		case QUEUE_REC_CLIENT_NAME: rc = queue_parse_set_str(p, &m->client_name); break;
		case QUEUE_REC_HELO:        rc = queue_parse_set_str(p, &m->helo); break;
		case QUEUE_REC_RCPT:        rc = queue_parse_add_rcpt(p); break;
		case QUEUE_REC_DATA:        p->data_seen += p->len; break;
		case QUEUE_REC_PREPEND:     p->stage = STG_END; break;
		case QUEUE_REC_END:         rc = queue_parse_end(p); break;
		}
	}
	if (rc < 0)
		return -1;
	if (p->phase == PH_PAYLOAD || p->phase == PH_RECHDR) {
		p->phase = PH_RECHDR;
		p->rec_off = p->off;
		if (p->stage == STG_STATE)
			p->loc.good_len = p->off;
	}
	return 0;
}

/*
 * queue_rec_parse_feed - consume bytes in any chunking: file header, then record
 * headers and payloads; checks run as each record completes
 */
int
queue_rec_parse_feed(struct queue_parse *p, const void *data, size_t len)
{
	static const unsigned char want[QUEUE_REC_FILEHDR] = {
		'M', 'T', 'Q', 'F', QUEUE_REC_VERSION, 0, 0, 0 };
	const unsigned char *s = data;
	size_t n;

	while (len > 0) {
		switch (p->phase) {
		case PH_STOP:
		default:
			return -1;
		case PH_CUT:
			p->off += len;
			return 0;
		case PH_FILEHDR:
			if (*s != want[p->hlen])
				return queue_parse_bad(p, p->hlen < 4 ? "bad magic" :
				    p->hlen == 4 ? "unsupported format version" :
				    "bad file header");
			p->hdr[p->hlen++] = *s;
			p->crc = crc32c(p->crc, s, 1);
			s++;
			len--;
			p->off++;
			if (p->hlen == QUEUE_REC_FILEHDR) {
				p->hlen = 0;
				p->phase = PH_RECHDR;
				p->rec_off = p->off;
			}
			break;
		case PH_RECHDR:
			n = QUEUE_REC_HDR - p->hlen;
			if (n > len)
				n = len;
			memcpy(p->hdr + p->hlen, s, n);
			p->hlen += n;
			s += n;
			len -= n;
			p->off += n;
			if (p->hlen < QUEUE_REC_HDR)
				break;
			p->hlen = 0;
			p->type = p->hdr[0];
			p->len = queue_rec_get32(p->hdr + 1);
			p->got = 0;
			if (p->stage == STG_STATE) {
				if (!queue_parse_state_start(p)) {
					queue_parse_cut(p);
					break;
				}
				p->collect = 1;
			} else {
				if (queue_parse_rec_start(p) < 0)
					return -1;
				p->crc = crc32c(p->crc, p->hdr, QUEUE_REC_HDR);
			}
			p->phase = PH_PAYLOAD;
			if (p->len == 0 && queue_parse_rec_done(p) < 0)
				return -1;
			break;
		case PH_PAYLOAD:
			n = p->len - p->got;
			if (n > len)
				n = len;
			if (p->collect)
				memcpy(p->buf + p->got, s, n);
			if (p->stage != STG_STATE && p->type != QUEUE_REC_END)
				p->crc = crc32c(p->crc, s, n);
			p->got += (uint32_t)n;
			s += n;
			len -= n;
			p->off += n;
			if (p->got == p->len && queue_parse_rec_done(p) < 0)
				return -1;
			break;
		}
	}
	return p->phase == PH_STOP ? -1 : 0;
}

/* queue_rec_parse_finish - end of file: committed, uncommitted or corrupt */
enum queue_parse_status
queue_rec_parse_finish(struct queue_parse *p)
{
	if (p->phase == PH_STOP)
		return p->status;
	if (p->stage != STG_STATE)
		return p->status = QUEUE_PARSE_UNCOMMITTED;
	/* a torn last state record: ignore it */
	if (p->phase == PH_PAYLOAD || (p->phase == PH_RECHDR && p->hlen > 0))
		p->loc.state_cut = 1;
	return p->status = QUEUE_PARSE_OK;
}

/* queue_rec_parse_buffer - a whole file at once (tests and the fuzz harness) */
enum queue_parse_status
queue_rec_parse_buffer(struct queue_parse *p, const void *data, size_t len)
{
	queue_rec_parse_init(p);
	(void)queue_rec_parse_feed(p, data, len);
	return queue_rec_parse_finish(p);
}
