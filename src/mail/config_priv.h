/*
 * config_priv.h - value parsers shared by config.c, config_check.c and
 * the unit tests (private to src/mail/config*.c and tests/unit/test_config.c)
 *
 * Owns:     nothing.
 * Lifetime: stateless functions; outputs are written into caller storage.
 * Errors:   0 on success, -1 with a short reason in why (why never echoes
 *           the value itself: the caller decides whether it may be shown).
 * Context:  any thread.
 */
#ifndef MTAD_CONFIG_PRIV_H
#define MTAD_CONFIG_PRIV_H

#include "mail/config.h"

#include <stddef.h>

#define CONFIG_LINE_MAX   8192            /* longest line, including the name */
#define CONFIG_FILE_MAX   (1024 * 1024)   /* largest configuration file */
#define CONFIG_ZONEINFO   "/usr/share/zoneinfo"

/* config_value_bool - "yes"/"no" in any case */
int config_value_bool(const char *v, int *out, char *why, size_t whylen);
/* config_value_uint - decimal digits only, 0..max */
int config_value_uint(const char *v, unsigned long long max, unsigned long long *out,
    char *why, size_t whylen);
/* config_value_text - no control characters (and no NUL: the text is a C string) */
int config_value_text(const char *v, char *why, size_t whylen);
/* config_value_hostname - RFC 1123 host name syntax (labels, hyphens, length) */
int config_value_hostname(const char *p, size_t len);
/* config_value_host_list - "" or a comma/space list of host names (ui_hosts) */
int config_value_host_list(const char *v, char *why, size_t whylen);
/* config_value_ip - numeric IPv4 or IPv6 address (no brackets) -> family */
int config_value_ip(const char *p, size_t len, int *family);
/*
 * config_value_listen - a comma/space list of "a.b.c.d:port" or
 * "[v6]:port"; when default_port is non-zero the port may be left out and
 * a bare IPv6 address is allowed (dns_servers). Duplicates are rejected.
 */
int config_value_listen(const char *text, struct listen_addr *arr, size_t max, size_t *n,
    int default_port, char *why, size_t whylen);
/* config_value_ui_address - numeric address, optional brackets; writes the bare form */
int config_value_ui_address(const char *v, char *out, size_t outlen, char *why, size_t whylen);
/* config_value_metrics_push - "" or "udp://host:port" */
int config_value_metrics_push(const char *v, char *why, size_t whylen);
/* config_value_timezone - "" or an IANA zone name that exists under zoneinfo */
int config_value_timezone(const char *v, const char *zoneinfo, char *why, size_t whylen);
/* config_value_relpath - a relative path with no ".." component (maillog_filename) */
int config_value_relpath(const char *v, char *why, size_t whylen);
/* config_value_mail_owner - a plausible user name */
int config_value_mail_owner(const char *v, char *why, size_t whylen);
/* config_value_format_duration - seconds -> "5d", "4h", "5m", "4000s", "0" */
int config_value_format_duration(unsigned secs, char *buf, size_t size);

#endif
