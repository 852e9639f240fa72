/*
 * sched_relay.c - the upstream relay's policy (SPEC §11.2): per-sender
 *                 relays (sender_relay_map), SMTP AUTH credentials, implicit
 *                 TLS and certificate verification of the smart relay
 *
 * Owns:     s->relays: the parsed sender_relay_map and the client TLS
 *           context for smart_relay_tls = verify (one reference).
 * Lifetime: sched_relay_load() at start and on SIGHUP (a new set replaces
 *           the old whole only when it loaded) to sched_relay_free().
 *           Connections already made keep their context reference.
 * Errors:   a map or CA file that cannot be loaded on SIGHUP keeps the old
 *           set (logged); a password file that cannot be read when a
 *           connection is made defers that connection's mail (4.7.8).
 * Context:  event-loop thread. The password (or XOAUTH2 token) file is read
 *           at every connection, so an outside helper may refresh it; it is
 *           one small file on the key store. XXX a blocking read on the
 *           event loop, as Postfix's smtp reads its SASL password map.
 *
 * Destinations: a map rule's relay is a destination of its own (rule
 * number in the next hop, sched_policy.c), so that two senders' mail to the
 * same relay host with different credentials never share a connection.
 * Rule 0 is smart_relay with smart_relay_username; rule i+1 is map line i.
 */
#include "sched/sched_int.h"
#include "lib/log.h"
#include "lib/util.h"
#include "mail/config.h"
#include "mail/relay_map.h"
#include "smtpc/smtpc.h"
#include "tls/tls.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

struct sched_relays {
	struct relay_map  *map;         /* NULL = no sender_relay_map */
	struct ssl_ctx_st *verify_ctx;  /* smart_relay_tls = verify: system store or CA file */
};

/* relays_free - one set */
static struct sched_relays *
relays_free(struct sched_relays *r)
{
	if (r == NULL)
		return NULL;
	relay_map_free(r->map);
	tls_ctx_free(r->verify_ctx);
	free(r);
	return NULL;
}

/* sched_relay_read_map - see sched_int.h */
struct relay_map *
sched_relay_read_map(const struct config *cfg, char *err, size_t errlen)
{
	return relay_map_load(config_key_store(cfg), cfg->sender_relay_map, err, errlen);
}

/* sched_relay_load - see sched_int.h */
int
sched_relay_load(struct sched *s, const struct config *cfg, char *err, size_t errlen)
{
	struct sched_relays *r;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		util_bsnprintf(err, errlen, "out of memory");
		return -1;
	}
	if (cfg->sender_relay_map[0] != '\0' &&
	    (r->map = sched_relay_read_map(cfg, err, errlen)) == NULL)
		goto fail;
	if (strcmp(cfg->smart_relay_tls, "verify") == 0 &&
	    (r->verify_ctx = tls_client_new_ca(config_key_store(cfg), cfg->smart_relay_ca_file, err,
	    errlen)) == NULL)
		goto fail;
	relays_free(s->relays);
	s->relays = r;
	if (r->map != NULL)
		log_info("sender_relay_map: %zu rule(s) from %s", r->map->n, cfg->sender_relay_map);
	return 0;
fail:
	relays_free(r);
	return -1;
}

/* sched_relay_free - see sched_int.h */
void
sched_relay_free(struct sched *s)
{
	s->relays = relays_free(s->relays);
}

/* sched_relay_for - see sched_int.h */
const struct relay_target *
sched_relay_for(struct sched *s, const char *sender, unsigned *rule)
{
	const struct relay_rule *r;
	size_t i = 0;

	*rule = 0;
	if (s->relays != NULL &&
	    (r = relay_map_lookup(s->relays->map, sender, &i)) != NULL) {
		*rule = (unsigned)i + 1;
		return &r->relay;
	}
	return &s->cfg->smart_relay;
}

/* relay_rule - the map rule of a next hop, or NULL (smart_relay, MX, cc) */
static const struct relay_rule *
relay_rule(const struct sched *s, const struct sched_dest *d)
{
	if (d->nh.rule == 0 || s->relays == NULL || s->relays->map == NULL ||
	    d->nh.rule > s->relays->map->n)
		return NULL;
	return &s->relays->map->rules[d->nh.rule - 1];
}

/* relay_has_auth - the destination has credentials */
static int
relay_has_auth(const struct sched *s, const struct sched_dest *d)
{
	const struct relay_rule *r;

	if (d->nh.kind != SCHED_KIND_RELAY)
		return 0;
	if (d->nh.rule == 0)
		return s->cfg->smart_relay_username[0] != '\0';
	return (r = relay_rule(s, d)) != NULL && r->username != NULL;
}

/* sched_relay_tls_required - see sched_int.h */
int
sched_relay_tls_required(const struct sched *s, const struct sched_dest *d)
{
	const char *t = s->cfg->smart_relay_tls;

	if (d->nh.smtps)
		return 1;
	if (d->nh.kind != SCHED_KIND_RELAY)
		return 0;
	return strcmp(t, "encrypt") == 0 || strcmp(t, "verify") == 0 || relay_has_auth(s, d);
}

/* sched_relay_params - see sched_int.h */
int
sched_relay_params(struct sched *s, const struct sched_dest *d, const char *host,
    const char *cache_key, struct smtpc_params *p, char *secret, size_t size, char *why,
    size_t whylen)
{
	const struct config *cfg = s->cfg;
	const struct relay_rule *r = relay_rule(s, d);
	const char *user = NULL, *pwfile = NULL, *pw = NULL;
	char err[256];

	secret[0] = '\0';
	p->smtps = d->nh.smtps;
	if (cfg->smtp_tls_session_cache)
		p->tls_cache_key = cache_key;
	if (d->nh.kind != SCHED_KIND_RELAY)
		return 0;
	if (strcmp(cfg->smart_relay_tls, "verify") == 0 && s->relays != NULL &&
	    s->relays->verify_ctx != NULL) {
		p->tls_ctx = s->relays->verify_ctx;
		p->verify_name = host;
	}
	if (d->nh.rule == 0 && cfg->smart_relay_username[0] != '\0') {
		user = cfg->smart_relay_username;
		pwfile = cfg->smart_relay_password_file[0] != '\0' ? cfg->smart_relay_password_file :
		    NULL;
		pw = cfg->smart_relay_password;
		p->auth_xoauth2 = strcmp(cfg->smart_relay_auth, "xoauth2") == 0;
	} else if (r != NULL && r->username != NULL) {
		user = r->username;
		pwfile = r->password_file;
	}
	if (user == NULL)
		return 0;
	if (pwfile != NULL) {
		if (tls_keys_read_line(config_key_store(cfg), pwfile, secret, size, err,
		    sizeof(err)) < 0) {
			util_bsnprintf(why, whylen, "SASL authentication not attempted: cannot read "
			    "the password file %s", err);
			return -1;
		}
	} else if (util_strlcpy(secret, pw, size) >= size) {
		OPENSSL_cleanse(secret, size);
		util_strlcpy(why, "SASL authentication not attempted: the password is too long",
		    whylen);
		return -1;
	}
	p->auth_user = user;
	p->auth_secret = secret;
	return 0;
}
