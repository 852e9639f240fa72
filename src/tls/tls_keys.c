/*
 * tls_keys.c - the TLS key store (SPEC §2.2, §3): find, read and check the
 *              PEM key and certificate chain; the privileged reader
 *
 * Owns:     the reader process and its socket (after tls_keys_helper_start).
 * Lifetime: key material is read into memory BIOs and parsed within one
 *           call; the caller owns what tls_keys_load() returns. The reader
 *           process lives until mtad exits (it sees EOF on its socket).
 * Errors:   SPEC §3 text "Error: SSL keys could not be found on key
 *           volume! (FILE: why)" in err; the key is checked first, then the
 *           certificate, then whether they match.
 * Context:  event-loop thread (start-up, SIGHUP): blocking reads of two
 *           small files, like reading the configuration.
 *
 * Privilege separation: mtad drops root after binding its ports, but a
 * renewed key is usually readable by root only. So before dropping, main
 * forks a reader (tls_keys_helper_start) that does one thing: given a
 * name relative to the key store root fixed at start, it opens it beneath
 * that root in one step (priv_open_beneath: no "..", no link out of the
 * store, no resolve-then-open race), reads at most TLS_PEM_MAX bytes of a
 * regular file and sends them back. It runs as mail_owner with one
 * capability, CAP_DAC_READ_SEARCH (read any file), no_new_privs, not
 * dumpable and no descriptor but its socket: a compromised mtad gains the
 * right to read files in the key store, which it already holds (the key).
 * Without it (not root) files are read directly, the same way. The
 * channel is one process-wide descriptor, set once at start-up before any
 * thread exists (XXX a global, like the log's).
 *
 * Wire format on the socket (stream): request = u32 length + the relative
 * name; reply = u32 status (0 ok, else errno-like) + u32 length + bytes
 * (file content, or the reason text). The reader's first reply, unasked,
 * says whether it could drop its privileges.
 */
#include "tls/tls.h"
#include "tls/tls_int.h"
#include "lib/priv.h"
#include "lib/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#define TLS_PEM_MAX  (1024 * 1024)
#define TLS_WHY_MAX  256

/* The reader process: its socket and the root it serves (see the header). */
static int keys_helper_fd = -1;
static char keys_helper_root[PATH_MAX];

/* keys_err - "TEXT (what: why)" into err */
static void
keys_err(char *err, size_t errlen, const char *what, const char *why)
{
	if (util_bsnprintf(err, errlen, "%s (%s: %s)", TLS_KEYS_ERR, what, why) < 0)
		util_strlcpy(err, TLS_KEYS_ERR, errlen);
}

/* keys_no_password - pem_password_cb that refuses: a key with a passphrase fails */
static int
keys_no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf; (void)size; (void)rwflag; (void)u;
	return -1;
}

/*
 * keys_open - open rel beneath the key store root for reading: no "..",
 * nothing outside the store, in one step (priv_open_beneath: openat2
 * RESOLVE_BENEATH, or an O_NOFOLLOW walk), so a link changed between a
 * check and the open cannot lead out. Links inside the store work where
 * openat2 exists (Kubernetes secrets are links to ..data/). -1 with why.
 */
static int
keys_open(const char *root, const char *rel, const char **why)
{
	int dfd, fd;

	while (*rel == '/')
		rel++;
	if (*rel == '\0') {
		*why = "empty file name";
		return -1;
	}
	for (const char *c = rel; c != NULL; c = strchr(c, '/')) {
		while (*c == '/')
			c++;
		if (c[0] == '.' && c[1] == '.' && (c[2] == '/' || c[2] == '\0')) {
			*why = "'..' leaves the key store";
			return -1;
		}
	}
	if ((dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		*why = strerror(errno);
		return -1;
	}
	fd = priv_open_beneath(dfd, rel, O_RDONLY | O_NONBLOCK);
	if (fd < 0) {
		if (errno == EXDEV)
			*why = "the file is outside the key store";
		else if (errno == ELOOP)
			*why = "a symbolic link that may not be followed in the key store";
		else
			*why = strerror(errno);
	}
	close(dfd);
	return fd;
}

/*
 * keys_read_fd - a regular file of at most TLS_PEM_MAX bytes into a
 * malloc'ed buffer (*len bytes); NULL with why. fd is closed.
 */
static char *
keys_read_fd(int fd, size_t *len, const char **why)
{
	struct stat st;
	char *buf = NULL;

	*len = 0;
	if (fstat(fd, &st) < 0) {
		*why = strerror(errno);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		*why = "not a regular file";
		goto fail;
	}
	if (st.st_size > TLS_PEM_MAX) {
		*why = "file too large for a PEM key or certificate";
		goto fail;
	}
	if ((buf = malloc(TLS_PEM_MAX + 1)) == NULL) {
		*why = "out of memory";
		goto fail;
	}
	for (;;) {
		ssize_t r = read(fd, buf + *len, TLS_PEM_MAX + 1 - *len);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			*why = strerror(errno);
			goto fail;
		}
		if (r == 0)
			break;
		*len += (size_t)r;
		if (*len > TLS_PEM_MAX) {
			*why = "file too large for a PEM key or certificate";
			goto fail;
		}
	}
	close(fd);
	return buf;
fail:
	if (buf != NULL)
		OPENSSL_cleanse(buf, *len);
	free(buf);
	close(fd);
	return NULL;
}

/* keys_read_local - open rel beneath root and read it here */
static char *
keys_read_local(const char *root, const char *rel, size_t *len, char *why, size_t whylen)
{
	const char *w = NULL;
	char *buf;
	int fd;

	*len = 0;
	if ((fd = keys_open(root, rel, &w)) < 0) {
		util_strlcpy(why, w, whylen);
		return NULL;
	}
	if ((buf = keys_read_fd(fd, len, &w)) == NULL)
		util_strlcpy(why, w, whylen);
	return buf;
}

/* io_full - write or read exactly n bytes on a blocking descriptor; 0 or -1 */
static int
io_full(int fd, void *p, size_t n, int wr)
{
	char *c = p;

	while (n > 0) {
		ssize_t r = wr ? send(fd, c, n, MSG_NOSIGNAL) : read(fd, c, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

/*
 * keys_helper_reply - one reply on the reader's socket: status, length,
 * bytes. 0 or -1 (the other end is gone).
 */
static int
keys_helper_reply(int fd, uint32_t status, const char *data, size_t len)
{
	uint32_t hdr[2] = { status, (uint32_t)len };

	if (io_full(fd, hdr, sizeof(hdr), 1) < 0 || (len > 0 && io_full(fd, (void *)data, len, 1) < 0))
		return -1;
	return 0;
}

/* keys_helper_loop - the reader process: serve requests until EOF, then exit */
static _Noreturn void
keys_helper_loop(int fd)
{
	char name[PATH_MAX];

	for (;;) {
		uint32_t n;
		char why[TLS_WHY_MAX];
		size_t len = 0;
		char *buf;

		if (io_full(fd, &n, sizeof(n), 0) < 0 || n == 0 || n >= sizeof(name) ||
		    io_full(fd, name, n, 0) < 0)
			util_cov_exit(0);
		name[n] = '\0';
		buf = keys_read_local(keys_helper_root, name, &len, why, sizeof(why));
		if (buf == NULL) {
			if (keys_helper_reply(fd, 1, why, strlen(why)) < 0)
				util_cov_exit(0);
			continue;
		}
		if (keys_helper_reply(fd, 0, buf, len) < 0)
			util_cov_exit(0);
		OPENSSL_cleanse(buf, len);
		free(buf);
	}
}

/* tls_keys_helper_start - see tls.h */
int
tls_keys_helper_start(const char *root, uid_t uid, gid_t gid, char *err, size_t errlen)
{
	uint32_t hdr[2];
	char why[TLS_WHY_MAX];
	int sv[2];
	pid_t pid;

	if (geteuid() != 0 || root == NULL || root[0] == '\0' || keys_helper_fd >= 0)
		return 0;
	if (realpath(root, keys_helper_root) == NULL) {
		keys_err(err, errlen, root, strerror(errno));
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		util_bsnprintf(err, errlen, "key store reader: socketpair: %s", strerror(errno));
		return -1;
	}
	if ((pid = fork()) < 0) {
		util_bsnprintf(err, errlen, "key store reader: fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		/* the reader: nothing but its socket and stderr, and of root's
		 * powers only reading (CAP_DAC_READ_SEARCH) as mail_owner */
#ifndef MTAD_COVERAGE
		/* (a coverage build relies on the EOF alone: a SIGTERM would lose the counts) */
		(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
		if (priv_child_setup(sv[1], "mtad-keys") < 0)
			util_cov_exit(1);
		if (priv_keep_read_only(uid, gid, why, sizeof(why)) < 0) {
			(void)keys_helper_reply(3, 1, why, strlen(why));
			util_cov_exit(1);
		}
		if (keys_helper_reply(3, 0, NULL, 0) < 0)
			util_cov_exit(1);
		keys_helper_loop(3);
	}
	close(sv[1]);
	keys_helper_fd = sv[0];
	/* the reader's first word: it has dropped what it must */
	if (io_full(keys_helper_fd, hdr, sizeof(hdr), 0) < 0 || hdr[1] >= sizeof(why) ||
	    (hdr[1] > 0 && io_full(keys_helper_fd, why, hdr[1], 0) < 0)) {
		util_strlcpy(why, "the process exited", sizeof(why));
		hdr[0] = 1;
		hdr[1] = (uint32_t)strlen(why);
	}
	if (hdr[0] != 0) {
		why[hdr[1]] = '\0';
		util_bsnprintf(err, errlen, "key store reader: cannot drop privileges: %s", why);
		close(keys_helper_fd);
		keys_helper_fd = -1;
		return -1;
	}
	return 0;
}

/*
 * keys_read - the file rel of the key store root: through the reader when
 * it serves this root, else directly. NULL with why.
 */
static char *
keys_read(const char *root, const char *rel, size_t *len, char *why, size_t whylen)
{
	char rroot[PATH_MAX];
	uint32_t n, hdr[2];
	char *buf;

	if (keys_helper_fd < 0 || realpath(root, rroot) == NULL ||
	    strcmp(rroot, keys_helper_root) != 0)
		return keys_read_local(root, rel, len, why, whylen);
	n = (uint32_t)strlen(rel);
	if (n == 0 || n >= PATH_MAX) {
		util_strlcpy(why, n == 0 ? "empty file name" : "path too long", whylen);
		return NULL;
	}
	if (io_full(keys_helper_fd, &n, sizeof(n), 1) < 0 ||
	    io_full(keys_helper_fd, (void *)rel, n, 1) < 0 ||
	    io_full(keys_helper_fd, hdr, sizeof(hdr), 0) < 0 || hdr[1] > TLS_PEM_MAX) {
		close(keys_helper_fd);
		keys_helper_fd = -1;
		util_strlcpy(why, "the key store reader process is gone", whylen);
		return NULL;
	}
	if ((buf = malloc((size_t)hdr[1] + 1)) == NULL) {
		/* the reply is not read: the stream is out of step, stop using it */
		close(keys_helper_fd);
		keys_helper_fd = -1;
		util_strlcpy(why, "out of memory", whylen);
		return NULL;
	}
	if (hdr[1] > 0 && io_full(keys_helper_fd, buf, hdr[1], 0) < 0) {
		free(buf);
		close(keys_helper_fd);
		keys_helper_fd = -1;
		util_strlcpy(why, "the key store reader process is gone", whylen);
		return NULL;
	}
	buf[hdr[1]] = '\0';
	if (hdr[0] != 0) {
		util_strlcpy(why, buf, whylen);
		free(buf);
		return NULL;
	}
	*len = hdr[1];
	return buf;
}

/* tls_keys_read - see tls.h */
char *
tls_keys_read(const char *root, const char *rel, size_t *len, char *why, size_t whylen)
{
	char *buf = keys_read(root, rel, len, why, whylen);

	if (buf != NULL)
		buf[*len] = '\0';       /* both readers leave room for it */
	return buf;
}

/* keys_bio - the file as a memory BIO (copied; the buffer is wiped); NULL with why */
static BIO *
keys_bio(const char *root, const char *rel, char *why, size_t whylen)
{
	size_t len = 0;
	char *buf = keys_read(root, rel, &len, why, whylen);
	BIO *bio;

	if (buf == NULL)
		return NULL;
	if ((bio = BIO_new(BIO_s_mem())) == NULL ||
	    (len > 0 && BIO_write(bio, buf, (int)len) != (int)len)) {
		BIO_free(bio);
		bio = NULL;
		util_strlcpy(why, "out of memory", whylen);
	}
	OPENSSL_cleanse(buf, len);
	free(buf);
	return bio;
}

/* keys_bio_contains - 1 when the memory BIO's text contains needle */
static int
keys_bio_contains(BIO *bio, const char *needle)
{
	char *data;
	long n = BIO_get_mem_data(bio, &data);

	if (n <= 0)
		return 0;
	return memmem(data, (size_t)n, needle, strlen(needle)) != NULL;
}

/* tls_keys_free - see tls_int.h */
void
tls_keys_free(struct tls_keys *k)
{
	EVP_PKEY_free(k->key);
	X509_free(k->cert);
	if (k->chain != NULL)
		sk_X509_pop_free(k->chain, X509_free);
	memset(k, 0, sizeof(*k));
}

/* tls_keys_load - see tls_int.h */
int
tls_keys_load(const char *root, const char *key_file, const char *cert_file,
    struct tls_keys *k, char *err, size_t errlen)
{
	char why[TLS_WHY_MAX];
	BIO *kbio = NULL, *cbio = NULL;
	X509 *x;
	int ret = -1;

	memset(k, 0, sizeof(*k));
	if (root == NULL || root[0] == '\0') {
		keys_err(err, errlen, key_file, "no key store is configured (set key_dir or fs_dir)");
		return -1;
	}
	if ((kbio = keys_bio(root, key_file, why, sizeof(why))) == NULL) {
		keys_err(err, errlen, key_file, why);
		goto fail;
	}
	/* PKCS#8 "BEGIN ENCRYPTED PRIVATE KEY" or traditional "Proc-Type: 4,ENCRYPTED" */
	if (keys_bio_contains(kbio, "-----BEGIN ENCRYPTED PRIVATE KEY-----") ||
	    keys_bio_contains(kbio, "Proc-Type: 4,ENCRYPTED")) {
		keys_err(err, errlen, key_file, "the private key is protected by a passphrase");
		goto fail;
	}
	ERR_clear_error();
	if ((k->key = PEM_read_bio_PrivateKey(kbio, NULL, keys_no_password, NULL)) == NULL) {
		keys_err(err, errlen, key_file, "not a PEM private key (or protected by a passphrase)");
		goto fail;
	}
	if ((cbio = keys_bio(root, cert_file, why, sizeof(why))) == NULL) {
		keys_err(err, errlen, cert_file, why);
		goto fail;
	}
	ERR_clear_error();
	if ((k->cert = PEM_read_bio_X509(cbio, NULL, keys_no_password, NULL)) == NULL) {
		keys_err(err, errlen, cert_file, "not a PEM certificate");
		goto fail;
	}
	if (X509_check_private_key(k->cert, k->key) != 1) {
		keys_err(err, errlen, cert_file, "the certificate does not match the private key");
		goto fail;
	}
	/* the rest of the file: intermediate certificates, sent with the leaf */
	if ((k->chain = sk_X509_new_null()) == NULL) {
		keys_err(err, errlen, cert_file, "out of memory");
		goto fail;
	}
	while ((x = PEM_read_bio_X509(cbio, NULL, keys_no_password, NULL)) != NULL) {
		if (sk_X509_push(k->chain, x) <= 0) {
			X509_free(x);
			keys_err(err, errlen, cert_file, "out of memory");
			goto fail;
		}
	}
	ret = 0;
fail:
	ERR_clear_error();
	BIO_free(cbio);
	BIO_free(kbio);
	if (ret < 0)
		tls_keys_free(k);
	return ret;
}

/* tls_keys_check - see tls.h */
int
tls_keys_check(const char *root, const char *key_file, const char *cert_file,
    char *err, size_t errlen)
{
	struct tls_keys k;

	if (tls_keys_load(root, key_file, cert_file, &k, err, errlen) < 0)
		return -1;
	tls_keys_free(&k);
	return 0;
}

/*
 * tls_keys_read_text - see tls.h. The whole file is read (at most
 * TLS_PEM_MAX), the copy handed out is NUL-terminated, and the read buffer
 * is wiped: the file may hold a password.
 */
char *
tls_keys_read_text(const char *root, const char *rel, size_t *len, char *err, size_t errlen)
{
	char why[TLS_WHY_MAX];
	size_t n = 0;
	char *buf;

	if (root == NULL || root[0] == '\0') {
		util_bsnprintf(err, errlen, "%s: no key store is configured (set key_dir or fs_dir)",
		    rel);
		return NULL;
	}
	if ((buf = tls_keys_read(root, rel, &n, why, sizeof(why))) == NULL) {
		if (util_bsnprintf(err, errlen, "%s: %s", rel, why) < 0)
			util_strlcpy(err, why, errlen);
		return NULL;
	}
	if (memchr(buf, '\0', n) != NULL) {
		OPENSSL_cleanse(buf, n);
		free(buf);
		util_bsnprintf(err, errlen, "%s: not a text file", rel);
		return NULL;
	}
	if (len != NULL)
		*len = n;
	return buf;
}

/* tls_keys_read_line - see tls.h */
int
tls_keys_read_line(const char *root, const char *rel, char *buf, size_t size, char *err,
    size_t errlen)
{
	size_t n = 0, l;
	char *text = tls_keys_read_text(root, rel, &n, err, errlen);
	int ret = -1;

	if (text == NULL)
		return -1;
	l = strcspn(text, "\r\n");
	if (l == 0)
		util_bsnprintf(err, errlen, "%s: the first line is empty", rel);
	else if (l >= size)
		util_bsnprintf(err, errlen, "%s: the first line is too long (over %zu octets)", rel,
		    size - 1);
	else {
		memcpy(buf, text, l);
		buf[l] = '\0';
		ret = 0;
	}
	OPENSSL_cleanse(text, n);
	free(text);
	return ret;
}

/* tls_keys_read_cas - see tls_int.h */
int
tls_keys_read_cas(const char *root, const char *rel, X509_STORE *store, char *err,
    size_t errlen)
{
	char why[TLS_WHY_MAX];
	BIO *bio;
	X509 *x;
	int n = 0;

	if (root == NULL || root[0] == '\0') {
		util_bsnprintf(err, errlen, "%s: no key store is configured (set key_dir or fs_dir)",
		    rel);
		return -1;
	}
	if ((bio = keys_bio(root, rel, why, sizeof(why))) == NULL) {
		util_bsnprintf(err, errlen, "%s: %s", rel, why);
		return -1;
	}
	ERR_clear_error();
	while ((x = PEM_read_bio_X509(bio, NULL, keys_no_password, NULL)) != NULL) {
		if (X509_STORE_add_cert(store, x) != 1)
			ERR_clear_error();          /* a duplicate: harmless */
		X509_free(x);
		n++;
	}
	ERR_clear_error();
	BIO_free(bio);
	if (n == 0) {
		util_bsnprintf(err, errlen, "%s: no PEM certificate in it", rel);
		return -1;
	}
	return 0;
}
