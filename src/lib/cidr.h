/*
 * cidr.h - IPv4/IPv6 network lists ("127.0.0.1, 10.0.0.0/8 ::1 2001:db8::/32")
 *
 * Owns:     struct cidr_list and its entries.
 * Lifetime: cidr_list_parse() to cidr_list_free(); the input is copied.
 * Errors:   parse returns NULL and writes the offending token to err.
 * Context:  any thread; a list is read-only after parsing.
 */
#ifndef MTAD_CIDR_H
#define MTAD_CIDR_H

#include <stddef.h>
#include <sys/socket.h>

struct cidr_list;

/* cidr_list_parse - comma/space separated networks; bare address = /32 or /128 */
struct cidr_list *cidr_list_parse(const char *text, char *err, size_t errlen);
struct cidr_list *cidr_list_free(struct cidr_list *list);
/* cidr_list_match - 1 when addr (AF_INET or AF_INET6; v4-mapped v6 counts as v4) is inside */
int cidr_list_match(const struct cidr_list *list, const struct sockaddr *addr);
/* cidr_list_count - how many networks the list holds (0 for NULL) */
size_t cidr_list_count(const struct cidr_list *list);
/* cidr_list_is_open - 1 when the list contains 0.0.0.0/0 or ::/0 */
int cidr_list_is_open(const struct cidr_list *list);
/* cidr_list_format - the canonical text form, for `mtad -t --print` */
int cidr_list_format(const struct cidr_list *list, char *buf, size_t size);

#endif
