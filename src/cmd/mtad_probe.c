/*
 * mtad_probe.c - main() of mtad_probe: look up a destination and/or send
 * one message the way mtad's delivery does (operators and tests)
 *
 * Owns:     its event base, one struct dns, one struct smtpc, the message.
 * Lifetime: one run.
 * Errors:   usage errors exit 64; DNS/SMTP outcomes are printed, and the
 *           exit status says which kind: 0 ok, 69 permanent (5xx, NXDOMAIN,
 *           null MX), 75 temporary (4xx, SERVFAIL, timeout, network).
 * Context:  single-threaded event loop (libunbound has its own thread).
 *
 *   mtad_probe [-v] [-s DNS]... mx DOMAIN...
 *   mtad_probe [-v] [-s DNS]... addr HOST...
 *   mtad_probe [-v] [-s DNS]... [-p PORT] [-H HELO] [-f SENDER] [-m FILE]
 *              [-8] [-u] [-T SECS] send TARGET RCPT...
 *
 * DNS is "127.0.0.1:5353" (repeatable; default /etc/resolv.conf). TARGET
 * has smart_relay's forms: "domain" or "host:port" (MX look-up, then the
 * host's own addresses when there is no MX), "[host]" or "[host]:port"
 * (no MX look-up); the first address of the first MX is used. The message
 * (default: standard input) is sent as it is; bare LF line ends become CRLF.
 * -8 / -u mark it as needing 8BITMIME / SMTPUTF8; -T sets every timeout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "dns/dns.h"
#include "lib/log.h"
#include "lib/util.h"
#include "mail/config.h"
#include "smtpc/smtpc.h"

#define PROBE_MAX_MSG (64u * 1024 * 1024)
#define EX_OK_         0
#define EX_USAGE_      64
#define EX_UNAVAIL_    69
#define EX_TEMPFAIL_   75

struct probe {
	struct event_base *base;
	struct dns    *dns;
	struct smtpc  *smtpc;
	const char    *mode;
	struct relay_target target;
	int            port;
	const char    *helo;
	const char    *sender;
	char         **rcpts;
	size_t         nrcpt;
	char          *msg;
	size_t         msglen, msgpos;
	int            need_8bit, smtputf8;
	unsigned       timeout;
	char           host[256];       /* the host whose address is looked up */
	char         **names;           /* mx/addr: the names still to look up */
	int            nnames;
	int            status;          /* exit status */
};

static const char *
probe_status_name(enum dns_status st)
{
	switch (st) {
	case DNS_OK:       return "OK";
	case DNS_NODATA:   return "NODATA";
	case DNS_NXDOMAIN: return "NXDOMAIN";
	case DNS_NULLMX:   return "NULLMX";
	case DNS_TEMPFAIL: return "TEMPFAIL";
	}
	return "?";
}

static void probe_next(struct probe *p);

static int
probe_exit_for(enum dns_status st)
{
	if (st == DNS_OK)
		return EX_OK_;
	return st == DNS_TEMPFAIL ? EX_TEMPFAIL_ : EX_UNAVAIL_;
}

static int
probe_exit_for_code(int code)
{
	if (code >= 200 && code < 300)
		return EX_OK_;
	return code >= 500 ? EX_UNAVAIL_ : EX_TEMPFAIL_;
}

/* probe_read - the smtpc content source: the message in memory */
static ssize_t
probe_read(void *src, void *buf, size_t len)
{
	struct probe *p = src;
	size_t n = p->msglen - p->msgpos;

	if (n > len)
		n = len;
	memcpy(buf, p->msg + p->msgpos, n);
	p->msgpos += n;
	return (ssize_t)n;
}

static void
probe_ready(void *arg, struct smtpc *c)
{
	struct probe *p = arg;
	struct smtpc_txn t;

	printf("connected: %s (8BITMIME %s, PIPELINING %s, SMTPUTF8 %s, STARTTLS %s)\n",
	    smtpc_peer(c), smtpc_has_ext(c, "8BITMIME") ? "yes" : "no",
	    smtpc_has_ext(c, "PIPELINING") ? "yes" : "no",
	    smtpc_has_ext(c, "SMTPUTF8") ? "yes" : "no",
	    smtpc_has_ext(c, "STARTTLS") ? "yes" : "no");
	memset(&t, 0, sizeof(t));
	t.sender = p->sender;
	t.rcpts = (const char *const *)p->rcpts;
	t.nrcpt = p->nrcpt;
	t.size = p->msglen;
	t.need_8bit = p->need_8bit;
	t.smtputf8 = p->smtputf8;
	t.content.read = probe_read;
	t.content.arg = p;
	if (smtpc_send(c, &t) == -1) {
		printf("error: cannot start the transaction\n");
		p->status = EX_TEMPFAIL_;
		p->smtpc = smtpc_free(c);
		event_base_loopbreak(p->base);
	}
}

static void
probe_done(void *arg, struct smtpc *c, const struct smtpc_result *r)
{
	struct probe *p = arg;

	printf("mail: %s (dsn %s)\n", r->mail.text, r->mail.dsn);
	for (size_t i = 0; i < r->nrcpt; i++)
		printf("rcpt <%s>: %s (dsn %s)\n", p->rcpts[i], r->rcpt[i].text, r->rcpt[i].dsn);
	if (r->data.code != 0)
		printf("data: %s (dsn %s)\n", r->data.text, r->data.dsn);
	else
		printf("data: not sent\n");
	if (r->data.code != 0) {
		p->status = probe_exit_for_code(r->data.code);
	} else {
		/* nothing sent: temporary when any refusal was */
		int code = r->mail.code / 100 != 2 ? r->mail.code : 500;

		for (size_t i = 0; i < r->nrcpt; i++)
			if (r->rcpt[i].code / 100 == 4)
				code = r->rcpt[i].code;
		p->status = probe_exit_for_code(code);
	}
	/* Without the resolver's event the loop ends once QUIT is through. */
	p->dns = dns_free(p->dns);
	p->smtpc = NULL;
	smtpc_quit(c);
}

static void
probe_failed(void *arg, struct smtpc *c, const struct smtpc_reply *r)
{
	struct probe *p = arg;

	printf("failed: %s (code %d, dsn %s)\n", r->text, r->code, r->dsn);
	p->status = r->code == 0 ? EX_TEMPFAIL_ : probe_exit_for_code(r->code);
	p->smtpc = smtpc_free(c);
	event_base_loopbreak(p->base);
}

static const struct smtpc_cb probe_cbs = { probe_ready, probe_done, probe_failed };

static void
probe_addr_cb(void *arg, enum dns_status st, const struct sockaddr_storage *a, size_t n)
{
	struct probe *p = arg;
	struct smtpc_params sp;
	char text[INET6_ADDRSTRLEN];

	printf("addr %s: %s", p->host, probe_status_name(st));
	for (size_t i = 0; i < n; i++) {
		const void *ap = a[i].ss_family == AF_INET ?
		    (const void *)&((const struct sockaddr_in *)&a[i])->sin_addr :
		    (const void *)&((const struct sockaddr_in6 *)&a[i])->sin6_addr;

		if (inet_ntop(a[i].ss_family, ap, text, sizeof(text)) != NULL)
			printf(" %s", text);
	}
	printf("\n");
	fflush(stdout);
	if (strcmp(p->mode, "send") != 0 || st != DNS_OK) {
		if (p->names == NULL || p->status == EX_OK_ || p->status == -1)
			p->status = probe_exit_for(st);
		probe_next(p);
		return;
	}
	memset(&sp, 0, sizeof(sp));
	sp.addr = a[0];
	if (a[0].ss_family == AF_INET) {
		((struct sockaddr_in *)&sp.addr)->sin_port = htons((uint16_t)p->port);
		sp.addrlen = sizeof(struct sockaddr_in);
	} else {
		((struct sockaddr_in6 *)&sp.addr)->sin6_port = htons((uint16_t)p->port);
		sp.addrlen = sizeof(struct sockaddr_in6);
	}
	sp.helo_name = p->helo;
	sp.peer_name = p->host;
	sp.connect_timeout = p->timeout;
	sp.cmd_timeout = p->timeout;
	sp.data_timeout = p->timeout;
	if ((p->smtpc = smtpc_connect(p->base, &sp, &probe_cbs, p)) == NULL) {
		printf("error: out of memory\n");
		p->status = EX_TEMPFAIL_;
		event_base_loopbreak(p->base);
	}
}

static void
probe_mx_cb(void *arg, enum dns_status st, const struct dns_mx *mx, size_t n)
{
	struct probe *p = arg;

	printf("mx %s: %s\n", p->target.host, probe_status_name(st));
	for (size_t i = 0; i < n; i++)
		printf("  %u %s\n", mx[i].pref, mx[i].host);
	fflush(stdout);
	if (strcmp(p->mode, "send") != 0 || (st != DNS_OK && st != DNS_NODATA)) {
		if (p->names == NULL || p->status == EX_OK_ || p->status == -1)
			p->status = probe_exit_for(st);
		probe_next(p);
		return;
	}
	/* RFC 5321 §5.1: no MX, the domain itself is the host */
	(void)util_strlcpy(p->host, st == DNS_OK ? mx[0].host : p->target.host, sizeof(p->host));
	if (dns_query_addr(p->dns, p->host, probe_addr_cb, p) == 0) {
		p->status = EX_TEMPFAIL_;
		event_base_loopbreak(p->base);
	}
}

/*
 * probe_next - start the look-up of the next name (mx/addr take several,
 * one after the other on one resolver); ends the loop after the last.
 * The exit status is that of the first name that did not resolve.
 */
static void
probe_next(struct probe *p)
{
	uint64_t id;

	if (p->nnames == 0) {
		event_base_loopbreak(p->base);
		return;
	}
	if (util_strlcpy(p->target.host, p->names[0], sizeof(p->target.host)) >=
	    sizeof(p->target.host)) {
		printf("%s: name too long\n", p->names[0]);
		p->status = EX_USAGE_;
		event_base_loopbreak(p->base);
		return;
	}
	p->names++;
	p->nnames--;
	(void)util_strlcpy(p->host, p->target.host, sizeof(p->host));
	if (p->target.no_mx)
		id = dns_query_addr(p->dns, p->host, probe_addr_cb, p);
	else
		id = dns_query_mx(p->dns, p->target.host, probe_mx_cb, p);
	if (id == 0) {
		printf("%s: cannot start the look-up\n", p->host);
		p->status = EX_TEMPFAIL_;
		event_base_loopbreak(p->base);
	}
}

/* probe_dns_server - "addr", "addr:port", "[v6]:port" into cfg's list */
static int
probe_dns_server(struct config *cfg, const char *text)
{
	struct relay_target t;
	struct listen_addr *la;

	if (cfg->n_dns_servers >= CONFIG_MAX_DNS || config_value_parse_relay(text, &t) < 0)
		return -1;
	la = &cfg->dns_servers[cfg->n_dns_servers];
	memset(la, 0, sizeof(*la));
	if (inet_pton(AF_INET, t.host, &((struct sockaddr_in *)&la->ss)->sin_addr) == 1) {
		((struct sockaddr_in *)&la->ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&la->ss)->sin_port = htons((uint16_t)(t.port ? t.port : 53));
		la->len = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, t.host, &((struct sockaddr_in6 *)&la->ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&la->ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&la->ss)->sin6_port = htons((uint16_t)(t.port ? t.port : 53));
		la->len = sizeof(struct sockaddr_in6);
	} else {
		return -1;
	}
	(void)util_strlcpy(la->text, text, sizeof(la->text));
	cfg->n_dns_servers++;
	return 0;
}

/* probe_read_msg - the whole message from fd, bare LF made CRLF; 0 or -1 */
static int
probe_read_msg(struct probe *p, int fd)
{
	char buf[8192];
	size_t cap = 0;
	char prev = 0;

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		for (ssize_t i = 0; i < n; i++) {
			if (p->msglen + 2 > cap) {
				char *m;

				if (cap >= PROBE_MAX_MSG)
					return -1;
				cap = cap ? cap * 2 : 65536;
				if ((m = realloc(p->msg, cap)) == NULL)
					return -1;
				p->msg = m;
			}
			if (buf[i] == '\n' && prev != '\r')
				p->msg[p->msglen++] = '\r';
			p->msg[p->msglen++] = buf[i];
			prev = buf[i];
		}
	}
}

static void
probe_usage(void)
{
	fprintf(stderr,
	    "usage: mtad_probe [-v] [-s DNS]... mx DOMAIN...\n"
	    "       mtad_probe [-v] [-s DNS]... addr HOST...\n"
	    "       mtad_probe [-v] [-s DNS]... [-p PORT] [-H HELO] [-f SENDER] [-m FILE]\n"
	    "                  [-8] [-u] [-T SECS] send TARGET RCPT...\n");
	exit(EX_USAGE_);
}

int
main(int argc, char *argv[])
{
	struct probe p;
	struct config cfg;
	char err[256];
	const char *file = NULL;
	unsigned trace = 0;
	int ch, rc;

	memset(&p, 0, sizeof(p));
	memset(&cfg, 0, sizeof(cfg));
	p.port = 25;
	p.helo = "localhost";
	p.sender = "";
	p.timeout = 30;
	p.status = EX_TEMPFAIL_;
	while ((ch = getopt(argc, argv, "8f:H:m:p:s:T:uv")) != -1) {
		long long v;

		switch (ch) {
		case '8': p.need_8bit = 1; break;
		case 'u': p.smtputf8 = 1; break;
		case 'f': p.sender = optarg; break;
		case 'H': p.helo = optarg; break;
		case 'm': file = optarg; break;
		case 'v': trace = TRACE_DNS | TRACE_SMTPC; break;
		case 's':
			if (probe_dns_server(&cfg, optarg) == -1) {
				fprintf(stderr, "mtad_probe: bad DNS server %s\n", optarg);
				return EX_USAGE_;
			}
			break;
		case 'p':
			if (util_strtonum(optarg, 1, 65535, &v) == -1)
				probe_usage();
			p.port = (int)v;
			break;
		case 'T':
			if (util_strtonum(optarg, 1, 86400, &v) == -1)
				probe_usage();
			p.timeout = (unsigned)v;
			break;
		default:
			probe_usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 2)
		probe_usage();
	log_init("mtad_probe", trace);
	p.mode = argv[0];
	if (strcmp(p.mode, "send") == 0) {
		int fd = 0;

		if (argc < 3)
			probe_usage();
		if (config_value_parse_relay(argv[1], &p.target) < 0 || !p.target.set) {
			fprintf(stderr, "mtad_probe: bad target %s\n", argv[1]);
			return EX_USAGE_;
		}
		if (p.target.port != 0)
			p.port = p.target.port;
		p.rcpts = argv + 2;
		p.nrcpt = (size_t)argc - 2;
		if (file != NULL && (fd = open(file, O_RDONLY)) == -1) {
			fprintf(stderr, "mtad_probe: %s: %s\n", file, strerror(errno));
			return EX_USAGE_;
		}
		if (probe_read_msg(&p, fd) == -1) {
			fprintf(stderr, "mtad_probe: cannot read the message\n");
			return EX_USAGE_;
		}
		if (fd != 0)
			close(fd);
	} else if (strcmp(p.mode, "mx") == 0 || strcmp(p.mode, "addr") == 0) {
		p.names = argv + 1;
		p.nnames = argc - 1;
		p.target.set = 1;
		p.target.no_mx = strcmp(p.mode, "addr") == 0;
		p.status = -1;
	} else {
		probe_usage();
	}
	if ((p.base = event_base_new()) == NULL)
		fatalx("mtad_probe: event_base_new failed");
	if ((p.dns = dns_new(p.base, &cfg, err, sizeof(err))) == NULL)
		fatalx("%s", err);
	if (p.names != NULL) {
		probe_next(&p);
	} else {
		(void)util_strlcpy(p.host, p.target.host, sizeof(p.host));
		if (p.target.no_mx)
			rc = dns_query_addr(p.dns, p.host, probe_addr_cb, &p) == 0;
		else
			rc = dns_query_mx(p.dns, p.target.host, probe_mx_cb, &p) == 0;
		if (rc) {
			fprintf(stderr, "mtad_probe: cannot start the look-up\n");
			return EX_TEMPFAIL_;
		}
	}
	event_base_dispatch(p.base);
	if (p.status == -1)
		p.status = EX_OK_;
	p.smtpc = smtpc_free(p.smtpc);
	p.dns = dns_free(p.dns);
	event_base_free(p.base);
	free(p.msg);
	return p.status;
}
