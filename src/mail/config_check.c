/*
 * config_check.c - the start-up checks that touch the file system (SPEC §3):
 * key store, log share, TLS key and certificate, data_dir
 *
 * Owns:     nothing (files are opened and closed inside one call).
 * Lifetime: stateless.
 * Errors:   config_check_environment() returns -1 with the SPEC §3 text in
 *           err; the fixed text comes first, details follow in parentheses.
 * Context:  event-loop thread, at start-up (as root, before privileges are
 *           dropped) and on SIGHUP.
 *
 * Order, and so which error is reported when several apply:
 *   1. key store (key_dir or fs_dir): "Error: failed to load key volume."
 *   2. log share (logs_enabled=yes): "Error: failed to mount log share."
 *   3. TLS files (ssl_disabled=no): "Error: SSL keys could not be found on
 *      key volume! (FILE: why)", the key first, then the certificate,
 *      then whether they match;
 *   4. data_dir: "Error: failed to pre-configure MTA: data_dir ...".
 */
#include "mail/config.h"
#include "mail/config_priv.h"
#include "lib/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#define CHK_KEYVOL_ERR "Error: failed to load key volume."
#define CHK_LOGSHARE_ERR "Error: failed to mount log share."
#define CHK_SSL_ERR "Error: SSL keys could not be found on key volume!"
#define CHK_PEM_MAX (1024 * 1024)

/* chk_err - "TEXT (detail)" into err */
static void
chk_err(char *err, size_t errlen, const char *text, const char *what, const char *why)
{
	if (util_bsnprintf(err, errlen, "%s (%s: %s)", text, what, why) < 0)
		util_strlcpy(err, text, errlen);
}

/*
 * chk_key_store - the directory must exist and be listable. opendir()
 * is the test rather than access(2): as root access() always succeeds,
 * while a dead NFS mount or a wrong type still fails opendir().
 */
static int
chk_key_store(const char *name, const char *dir, char *err, size_t errlen)
{
	char what[4200];
	struct stat st;
	DIR *d;

	if (util_bsnprintf(what, sizeof(what), "%s %s", name, dir) < 0)
		util_strlcpy(what, name, sizeof(what));
	if (stat(dir, &st) < 0) {
		chk_err(err, errlen, CHK_KEYVOL_ERR, what, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		chk_err(err, errlen, CHK_KEYVOL_ERR, what, "not a directory");
		return -1;
	}
	if ((d = opendir(dir)) == NULL) {
		chk_err(err, errlen, CHK_KEYVOL_ERR, what, strerror(errno));
		return -1;
	}
	closedir(d);
	return 0;
}

/*
 * chk_log_share - log_dir must be a directory we can create files in.
 * Tested by creating and removing a temporary file: as root access(W_OK)
 * says yes even on a read-only mount.
 */
static int
chk_log_share(const char *dir, char *err, size_t errlen)
{
	char what[4200], tmp[4200];
	struct stat st;
	int fd;

	if (util_bsnprintf(what, sizeof(what), "log_dir %s", dir) < 0)
		util_strlcpy(what, "log_dir", sizeof(what));
	if (stat(dir, &st) < 0) {
		chk_err(err, errlen, CHK_LOGSHARE_ERR, what, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		chk_err(err, errlen, CHK_LOGSHARE_ERR, what, "not a directory");
		return -1;
	}
	if (util_bsnprintf(tmp, sizeof(tmp), "%s/.mtad-write-test.XXXXXX", dir) < 0) {
		chk_err(err, errlen, CHK_LOGSHARE_ERR, what, "path too long");
		return -1;
	}
	if ((fd = mkstemp(tmp)) < 0) {
		chk_err(err, errlen, CHK_LOGSHARE_ERR, what, strerror(errno));
		return -1;
	}
	close(fd);
	if (unlink(tmp) < 0) {
		chk_err(err, errlen, CHK_LOGSHARE_ERR, what, strerror(errno));
		return -1;
	}
	return 0;
}

/* chk_no_password - pem_password_cb that refuses: a key with a passphrase fails */
static int
chk_no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf; (void)size; (void)rwflag; (void)u;
	return -1;
}

/*
 * chk_resolve - root + "/" + rel into out, and make sure the real path
 * stays inside the real root (no "..", no symlink out of the store).
 * 0, or -1 with why.
 */
static int
chk_resolve(const char *root, const char *rel, char *out, size_t outlen, const char **why)
{
	char rroot[PATH_MAX], joined[PATH_MAX], real[PATH_MAX];
	size_t rl;

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
	if (realpath(root, rroot) == NULL) {
		*why = strerror(errno);
		return -1;
	}
	if (util_bsnprintf(joined, sizeof(joined), "%s/%s", rroot, rel) < 0) {
		*why = "path too long";
		return -1;
	}
	if (realpath(joined, real) == NULL) {
		*why = strerror(errno);
		return -1;
	}
	rl = strlen(rroot);
	if (!(strcmp(rroot, "/") == 0 ||
	    (strncmp(real, rroot, rl) == 0 && real[rl] == '/'))) {
		*why = "the file is outside the key store";
		return -1;
	}
	if (util_strlcpy(out, real, outlen) >= outlen) {
		*why = "path too long";
		return -1;
	}
	return 0;
}

/* chk_read_file - a regular file of at most CHK_PEM_MAX bytes into a BIO; NULL + why */
static BIO *
chk_read_file(const char *path, const char **why)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0) {
		*why = strerror(errno);
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		*why = strerror(errno);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		*why = "not a regular file";
		goto fail;
	}
	if (st.st_size > CHK_PEM_MAX) {
		*why = "file too large for a PEM key or certificate";
		goto fail;
	}
	if ((buf = malloc(CHK_PEM_MAX + 1)) == NULL) {
		*why = "out of memory";
		goto fail;
	}
	for (;;) {
		ssize_t r = read(fd, buf + len, CHK_PEM_MAX + 1 - len);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			*why = strerror(errno);
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > CHK_PEM_MAX) {
			*why = "file too large for a PEM key or certificate";
			goto fail;
		}
	}
	/* BIO_new_mem_buf does not copy: BIO_write into a memory BIO does. */
	if ((bio = BIO_new(BIO_s_mem())) == NULL ||
	    (len > 0 && BIO_write(bio, buf, (int)len) != (int)len)) {
		BIO_free(bio);
		bio = NULL;
		*why = "out of memory";
		goto fail;
	}

fail:
	free(buf);
	close(fd);
	return bio;
}

/* chk_bio_contains - 1 when the memory BIO's text contains needle */
static int
chk_bio_contains(BIO *bio, const char *needle)
{
	char *data;
	long n = BIO_get_mem_data(bio, &data);

	if (n <= 0)
		return 0;
	return memmem(data, (size_t)n, needle, strlen(needle)) != NULL;
}

/*
 * chk_tls_files - SPEC §3: the key and certificate must be on the key
 * store, readable, valid PEM, the key without passphrase, and matching.
 */
static int
chk_tls_files(const struct config *cfg, char *err, size_t errlen)
{
	const char *root = cfg->key_dir[0] != '\0' ? cfg->key_dir : cfg->fs_dir;
	char kpath[PATH_MAX], cpath[PATH_MAX];
	const char *why = NULL;
	BIO *kbio = NULL, *cbio = NULL;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	int ret = -1;

	if (root[0] == '\0') {
		chk_err(err, errlen, CHK_SSL_ERR, cfg->ssl_key_file,
		    "no key store is configured (set key_dir or fs_dir)");
		return -1;
	}
	if (chk_resolve(root, cfg->ssl_key_file, kpath, sizeof(kpath), &why) < 0 ||
	    (kbio = chk_read_file(kpath, &why)) == NULL) {
		chk_err(err, errlen, CHK_SSL_ERR, cfg->ssl_key_file, why);
		goto fail;
	}
	/* PKCS#8 "BEGIN ENCRYPTED PRIVATE KEY" or traditional "Proc-Type: 4,ENCRYPTED" */
	if (chk_bio_contains(kbio, "-----BEGIN ENCRYPTED PRIVATE KEY-----") ||
	    chk_bio_contains(kbio, "Proc-Type: 4,ENCRYPTED")) {
		chk_err(err, errlen, CHK_SSL_ERR, cfg->ssl_key_file,
		    "the private key is protected by a passphrase");
		goto fail;
	}
	ERR_clear_error();
	if ((key = PEM_read_bio_PrivateKey(kbio, NULL, chk_no_password, NULL)) == NULL) {
		chk_err(err, errlen, CHK_SSL_ERR, cfg->ssl_key_file,
		    "not a PEM private key (or protected by a passphrase)");
		goto fail;
	}
	if (chk_resolve(root, cfg->ssl_cert_file, cpath, sizeof(cpath), &why) < 0 ||
	    (cbio = chk_read_file(cpath, &why)) == NULL) {
		chk_err(err, errlen, CHK_SSL_ERR, cfg->ssl_cert_file, why);
		goto fail;
	}
	ERR_clear_error();
	if ((cert = PEM_read_bio_X509(cbio, NULL, chk_no_password, NULL)) == NULL) {
		chk_err(err, errlen, CHK_SSL_ERR, cfg->ssl_cert_file, "not a PEM certificate");
		goto fail;
	}
	if (X509_check_private_key(cert, key) != 1) {
		chk_err(err, errlen, CHK_SSL_ERR, cfg->ssl_cert_file,
		    "the certificate does not match the private key");
		goto fail;
	}
	ret = 0;

fail:
	ERR_clear_error();
	X509_free(cert);
	EVP_PKEY_free(key);
	BIO_free(cbio);
	BIO_free(kbio);
	return ret;
}

/*
 * chk_data_dir - data_dir must be a directory or creatable: its parent
 * exists. Nothing is created here (mtad -t changes nothing).
 */
static int
chk_data_dir(const char *dir, char *err, size_t errlen)
{
	char parent[PATH_MAX], *slash;
	struct stat st;

	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			if (util_bsnprintf(err, errlen, "Error: failed to pre-configure MTA: "
			    "data_dir %s: not a directory", dir) < 0)
				util_strlcpy(err, "Error: failed to pre-configure MTA: data_dir", errlen);
			return -1;
		}
		return 0;
	}
	if (errno != ENOENT)
		goto fail;
	if (util_strlcpy(parent, dir, sizeof(parent)) >= sizeof(parent)) {
		errno = ENAMETOOLONG;
		goto fail;
	}
	while (strlen(parent) > 1 && parent[strlen(parent) - 1] == '/')
		parent[strlen(parent) - 1] = '\0';
	if ((slash = strrchr(parent, '/')) == NULL)
		return 0;                       /* relative, in the working directory */
	if (slash == parent)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (stat(parent, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	if (util_bsnprintf(err, errlen, "Error: failed to pre-configure MTA: "
	    "data_dir %s: cannot be created (parent directory %s missing)", dir, parent) < 0)
		util_strlcpy(err, "Error: failed to pre-configure MTA: data_dir", errlen);
	return -1;

fail:
	if (util_bsnprintf(err, errlen, "Error: failed to pre-configure MTA: data_dir %s: %s",
	    dir, strerror(errno)) < 0)
		util_strlcpy(err, "Error: failed to pre-configure MTA: data_dir", errlen);
	return -1;
}

/* config_check_environment - see config.h; the order is in the file header */
int
config_check_environment(const struct config *cfg, char *err, size_t errlen)
{
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (cfg->key_dir[0] != '\0' && chk_key_store("key_dir", cfg->key_dir, err, errlen) < 0)
		return -1;
	if (cfg->fs_dir[0] != '\0' && chk_key_store("fs_dir", cfg->fs_dir, err, errlen) < 0)
		return -1;
	if (cfg->logs_enabled && chk_log_share(cfg->log_dir, err, errlen) < 0)
		return -1;
	if (!cfg->ssl_disabled && chk_tls_files(cfg, err, errlen) < 0)
		return -1;
	if (chk_data_dir(cfg->data_dir, err, errlen) < 0)
		return -1;
	return 0;
}
