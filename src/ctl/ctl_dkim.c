/*
 * ctl_dkim.c - `mtactl dkim-record DOMAIN`: the DNS TXT records that
 *              publish the public halves of a domain's DKIM keys
 *
 * Owns:     nothing beyond one call (the key table is loaded and freed).
 * Lifetime: stateless.
 * Errors:   exit status CTL_EX_USAGE for a configuration or key table
 *           that cannot be used (the reason on stderr), CTL_EX_NOTFOUND
 *           when the domain has no key.
 * Context:  mtactl, run by the operator (it reads the key store directly,
 *           so it needs the rights mtad has on it, e.g. root).
 */
#include "ctl/ctl.h"
#include "ctl/ctl_int.h"
#include "dkim/dkim.h"
#include "mail/config.h"

#include <stdio.h>
#include <stdlib.h>

#define RECORD_MAX (DKIM_KEYS_PER_DOMAIN * 4096)

/* ctl_dkim_record - see ctl_int.h */
int
ctl_dkim_record(const struct config *cfg, const char *prog, const char *domain)
{
	const char *root = config_key_store(cfg);
	struct dkim_keys *k;
	char err[1024], *out;
	int n;

	if (cfg->dkim_key_table[0] == '\0') {
		fprintf(stderr, "%s: dkim_key_table is not set in %s\n", prog, cfg->path);
		return CTL_EX_USAGE;
	}
	if ((k = dkim_keys_load(root, cfg->dkim_key_table, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s: %s\n", prog, err);
		return CTL_EX_USAGE;
	}
	if ((out = malloc(RECORD_MAX)) == NULL) {
		dkim_keys_unref(k);
		fprintf(stderr, "%s: out of memory\n", prog);
		return CTL_EX_FAIL;
	}
	n = dkim_keys_record(k, domain, out, RECORD_MAX);
	dkim_keys_unref(k);
	if (n > 0)
		fputs(out, stdout);
	free(out);
	if (n == 0) {
		fprintf(stderr, "%s: no DKIM key for %s in %s\n", prog, domain, cfg->dkim_key_table);
		return CTL_EX_NOTFOUND;
	}
	if (n < 0) {
		fprintf(stderr, "%s: cannot print the record for %s\n", prog, domain);
		return CTL_EX_FAIL;
	}
	return CTL_EX_OK;
}
