/*
 * ctl_net.c - blocking-style loopback connections with deadlines, for the
 *             command-line tools (mtactl, sendmail)
 *
 * Owns:     nothing; the caller owns the descriptors.
 * Lifetime: stateless.
 * Errors:   -1 with errno; a deadline passing is ETIMEDOUT.
 * Context:  command-line processes only (never the daemon's event loop).
 *
 * Sockets are non-blocking and every wait goes through poll(2) with the
 * time left, so a stuck peer can delay a command but never hang it.
 */
#include "ctl/ctl_int.h"
#include "lib/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ctl_net_loopback - a wildcard listener is reached through the loopback address */
int
ctl_net_loopback(const char *listen_addr, char *out, size_t outlen)
{
	struct in6_addr a6;
	const char *a = listen_addr;

	if (strcmp(a, "0.0.0.0") == 0 || a[0] == '\0')
		a = "127.0.0.1";
	else if (inet_pton(AF_INET6, a, &a6) == 1 && IN6_IS_ADDR_UNSPECIFIED(&a6))
		a = "::1";
	if (util_strlcpy(out, a, outlen) >= outlen) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* ctl_net_wait - poll fd for events until the deadline; 0, or -1 with ETIMEDOUT/errno */
int
ctl_net_wait(int fd, short events, uint64_t deadline_us)
{
	struct pollfd pfd;

	for (;;) {
		uint64_t now = util_mono_us();
		int ms, r;

		if (now >= deadline_us) {
			errno = ETIMEDOUT;
			return -1;
		}
		ms = (int)((deadline_us - now + 999) / 1000);
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		r = poll(&pfd, 1, ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r > 0)
			return 0;
	}
}

/* ctl_net_connect - connect to a numeric address within timeout_ms */
int
ctl_net_connect(const char *host, int port, int timeout_ms)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t slen;
	int fd, soerr, saved;
	socklen_t elen = sizeof(soerr);

	memset(&ss, 0, sizeof(ss));
	if (port < 1 || port > 65535) {
		errno = EINVAL;
		return -1;
	}
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		slen = sizeof(*sin);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		slen = sizeof(*sin6);
	} else {
		errno = EINVAL;
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&ss, slen) < 0) {
		if (errno != EINPROGRESS)
			goto fail;
		if (ctl_net_wait(fd, POLLOUT, util_mono_us() + (uint64_t)timeout_ms * 1000) < 0)
			goto fail;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &elen) < 0)
			goto fail;
		if (soerr != 0) {
			errno = soerr;
			goto fail;
		}
	}
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/* ctl_net_write_all - write everything before the deadline (MSG_NOSIGNAL on sockets) */
int
ctl_net_write_all(int fd, const void *buf, size_t len, int timeout_ms)
{
	const unsigned char *p = buf;
	uint64_t deadline = util_mono_us() + (uint64_t)timeout_ms * 1000;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -1;
			if (ctl_net_wait(fd, POLLOUT, deadline) < 0)
				return -1;
			continue;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ctl_net_read - one read once data (or the end) is there, before the deadline */
ssize_t
ctl_net_read(int fd, void *buf, size_t len, int timeout_ms)
{
	uint64_t deadline = util_mono_us() + (uint64_t)timeout_ms * 1000;

	for (;;) {
		ssize_t n = read(fd, buf, len);

		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		if (ctl_net_wait(fd, POLLIN, deadline) < 0)
			return -1;
	}
}
