/*
 * test_priv.c - table-driven tests for src/lib/priv.c: opening beneath a
 * directory (with openat2, and with the O_NOFOLLOW walk a seccomp filter
 * forces by making openat2 ENOSYS), the link-proof chowns and the
 * reader's privilege drop
 *
 * Owns:     a temporary tree under $TMPDIR, removed at the end.
 * Lifetime: one run.
 * Errors:   each failing row prints "got X, want Y" and fails its test.
 * Context:  single thread; forks for the seccomp filter and the drop.
 *           The chown and drop tests need root and are skipped without.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/priv.h"
#include "lib/util.h"

static char top[256];                 /* the temporary tree */

static void
mk(const char *rel, const char *kind, const char *target)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", top, rel);
	if (strcmp(kind, "dir") == 0)
		assert_int_equal(mkdir(p, 0755), 0);
	else if (strcmp(kind, "file") == 0) {
		int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
		assert_true(fd >= 0);
		close(fd);
	} else if (strcmp(kind, "link") == 0)
		assert_int_equal(symlink(target, p), 0);
	else if (strcmp(kind, "hard") == 0) {
		char t[512];
		snprintf(t, sizeof(t), "%s/%s", top, target);
		assert_int_equal(link(t, p), 0);
	} else if (strcmp(kind, "fifo") == 0)
		assert_int_equal(mkfifo(p, 0644), 0);
}

static int
setup(void **state)
{
	char abs_target[512];

	(void)state;
	snprintf(top, sizeof(top), "%s/test_priv.XXXXXX",
	    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
	assert_non_null(mkdtemp(top));
	mk("outside.pem", "file", NULL);
	mk("outdir", "dir", NULL);
	mk("outdir/x.pem", "file", NULL);
	mk("store", "dir", NULL);
	mk("store/a.pem", "file", NULL);
	mk("store/sub", "dir", NULL);
	mk("store/sub/b.pem", "file", NULL);
	mk("store/link_in", "link", "a.pem");
	mk("store/link_out", "link", "../outside.pem");
	snprintf(abs_target, sizeof(abs_target), "%s/outside.pem", top);
	mk("store/link_abs", "link", abs_target);
	mk("store/dirlink_out", "link", "../outdir");
	mk("store/fifo", "fifo", NULL);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[600];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	return system(cmd) == 0 ? 0 : -1;
}

/* want: 0 = opens; else the errno. Two columns: with openat2, with the walk. */
static const struct {
	const char *rel;
	int flags;
	int want_openat2, want_walk;
} beneath_rows[] = {
	{ "a.pem",             O_RDONLY,              0,      0 },
	{ "sub/b.pem",         O_RDONLY,              0,      0 },
	{ "./a.pem",           O_RDONLY,              0,      0 },
	{ "sub//b.pem",        O_RDONLY,              0,      0 },
	{ "link_in",           O_RDONLY,              0,      ELOOP },
	{ "sub/../a.pem",      O_RDONLY,              0,      EXDEV },
	{ "../outside.pem",    O_RDONLY,              EXDEV,  EXDEV },
	{ "sub/../../outside.pem", O_RDONLY,          EXDEV,  EXDEV },
	{ "link_out",          O_RDONLY,              EXDEV,  ELOOP },
	{ "link_abs",          O_RDONLY,              EXDEV,  ELOOP },
	{ "dirlink_out/x.pem", O_RDONLY,              EXDEV,  ELOOP },
	{ "/etc/passwd",       O_RDONLY,              EXDEV,  EXDEV },
	{ "missing.pem",       O_RDONLY,              ENOENT, ENOENT },
	{ "",                  O_RDONLY,              ENOENT, ENOENT },
	{ "fifo",              O_RDONLY | O_NONBLOCK, 0,      0 },    /* opens without blocking */
};

/* run_beneath_rows - every row in column walk (0/1); prints and counts failures */
static int
run_beneath_rows(int walk)
{
	char store[300];
	int dfd, bad = 0;

	snprintf(store, sizeof(store), "%s/store", top);
	if ((dfd = open(store, O_RDONLY | O_DIRECTORY)) < 0)
		return 1;
	for (size_t i = 0; i < sizeof(beneath_rows) / sizeof(beneath_rows[0]); i++) {
		int want = walk ? beneath_rows[i].want_walk : beneath_rows[i].want_openat2;
		int fd = priv_open_beneath(dfd, beneath_rows[i].rel, beneath_rows[i].flags);
		int got = fd >= 0 ? 0 : errno;

		if (fd >= 0)
			close(fd);
		if (got != want) {
			fprintf(stderr, "%s row %zu \"%s\": got %s, want %s\n",
			    walk ? "walk" : "openat2", i, beneath_rows[i].rel,
			    got ? strerror(got) : "open", want ? strerror(want) : "open");
			bad++;
		}
	}
	close(dfd);
	return bad;
}

static void
test_open_beneath_openat2(void **state)
{
	(void)state;
	assert_int_equal(run_beneath_rows(0), 0);
}

/* deny_openat2 - a seccomp filter that makes openat2 fail with ENOSYS, as old kernels do */
static int
deny_openat2(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}

static void
test_open_beneath_walk(void **state)
{
	int status;
	pid_t pid;

	(void)state;
	if ((pid = fork()) == 0) {
		if (deny_openat2() < 0)
			util_cov_exit(100);
		util_cov_exit(run_beneath_rows(1) > 0 ? 1 : 0);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 100)
		skip();
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static uid_t
owner(const char *rel)
{
	char p[512];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", top, rel);
	if (lstat(p, &st) < 0)
		fail_msg("lstat %s: %s", p, strerror(errno));
	return st.st_uid;
}

/* After priv_chown_tree(store): who owns what (1000 = given, 0 = left alone). */
static const struct {
	const char *rel;
	uid_t want;
} tree_rows[] = {
	{ "store",             1000 },
	{ "store/a.pem",       1000 },
	{ "store/sub",         1000 },
	{ "store/sub/b.pem",   1000 },
	{ "store/link_in",     0 },      /* the link itself is left alone */
	{ "store/link_out",    0 },
	{ "store/link_abs",    0 },
	{ "store/dirlink_out", 0 },
	{ "store/fifo",        0 },
	{ "store/hard",        0 },      /* a second name of outside.pem */
	{ "outside.pem",       0 },
	{ "outdir",            0 },
	{ "outdir/x.pem",      0 },
};

static void
test_chown_tree(void **state)
{
	char store[300];
	int n;

	(void)state;
	if (geteuid() != 0)
		skip();
	mk("store/hard", "hard", "outside.pem");
	snprintf(store, sizeof(store), "%s/store", top);
	n = priv_chown_tree(store, 1000, 1000, NULL);
	for (size_t i = 0; i < sizeof(tree_rows) / sizeof(tree_rows[0]); i++) {
		uid_t got = owner(tree_rows[i].rel);
		if (got != tree_rows[i].want)
			fail_msg("row %zu %s: got uid %u, want %u", i, tree_rows[i].rel,
			    (unsigned)got, (unsigned)tree_rows[i].want);
	}
	/* left alone: 4 links, the FIFO, the hard link */
	if (n != 6)
		fail_msg("entries left alone: got %d, want 6", n);
}

/* priv_chown_path(root=top, rel): the result and who owns outdir/x.pem after it */
static void
test_chown_path(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	/* through a link: refused, nothing behind it given away */
	errno = 0;
	assert_int_equal(priv_chown_path(top, "store/dirlink_out/x.pem", 1000, 1000), -1);
	if (errno != ELOOP && errno != ENOTDIR)
		fail_msg("through a link: got %s, want ELOOP", strerror(errno));
	assert_int_equal(owner("outdir/x.pem"), 0);
	assert_int_equal(priv_chown_path(top, "store/link_in", 1000, 1000), -1);
	assert_int_equal(priv_chown_path(top, "store/../outside.pem", 1000, 1000), -1);
	assert_int_equal(owner("outside.pem"), 0);
	/* the real thing: each directory and the file */
	assert_int_equal(priv_chown_path(top, "outdir/x.pem", 1000, 1000), 0);
	assert_int_equal(owner("outdir"), 1000);
	assert_int_equal(owner("outdir/x.pem"), 1000);
}

/*
 * The limits of the chowns: a tree deeper than PRIV_MAX_DEPTH stops there
 * (what is below stays root's), names that are no path, a FIFO, a missing
 * or non-directory root, a path longer than PATH_MAX.
 */
static void
test_chown_limits(void **state)
{
	char rel[600], p[800], longname[PATH_MAX + 16];
	int n;

	(void)state;
	if (geteuid() != 0)
		skip();
	/* deep/d1/.../d17/f: d1..d16 are walked into, d17 is left alone with f */
	mk("deep", "dir", NULL);
	rel[0] = '\0';
	snprintf(rel, sizeof(rel), "deep");
	for (int i = 1; i <= PRIV_MAX_DEPTH + 1; i++) {
		size_t l = strlen(rel);

		snprintf(rel + l, sizeof(rel) - l, "/d%d", i);
		mk(rel, "dir", NULL);
	}
	strncat(rel, "/f", sizeof(rel) - strlen(rel) - 1);
	mk(rel, "file", NULL);
	snprintf(p, sizeof(p), "%s/deep", top);
	n = priv_chown_tree(p, 1000, 1000, NULL);
	if (n != 1)
		fail_msg("deep tree: got %d entries left alone, want 1", n);
	*strrchr(rel, '/') = '\0';                      /* deep/d1/.../d17 */
	assert_int_equal(owner(rel), 0);
	*strrchr(rel, '/') = '\0';                      /* deep/d1/.../d16 */
	assert_int_equal(owner(rel), 1000);
	/* a second walk: all but the too deep left as they are, same count */
	assert_int_equal(priv_chown_tree(p, 1000, 1000, NULL), 1);
	/* the root itself: missing, not a directory, a name too long */
	snprintf(p, sizeof(p), "%s/missing", top);
	errno = 0;
	assert_int_equal(priv_chown_tree(p, 1000, 1000, NULL), -1);
	assert_int_equal(errno, ENOENT);
	snprintf(p, sizeof(p), "%s/outside.pem", top);
	assert_int_equal(priv_chown_tree(p, 1000, 1000, NULL), -1);
	assert_int_equal(errno, ENOTDIR);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(priv_chown_tree(longname, 1000, 1000, NULL), -1);
	assert_int_equal(errno, ENAMETOOLONG);
	/* priv_chown_path: names that are no path beneath root, a FIFO, a missing root */
	static const struct {
		const char *rel;
		int want;
	} rows[] = {
		{ "",                EINVAL },
		{ "/",               EINVAL },
		{ "outdir/./x.pem",  EINVAL },
		{ "outdir/../outside.pem", EINVAL },
		{ "store/fifo",      EINVAL },      /* not a regular file */
		{ "store",           EINVAL },      /* a directory as the last name */
		{ "store/missing",   ENOENT },
		{ "outside.pem/x",   ENOTDIR },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		errno = 0;
		if (priv_chown_path(top, rows[i].rel, 1000, 1000) != -1 || errno != rows[i].want)
			fail_msg("chown_path row %zu \"%s\": got %s, want %s", i, rows[i].rel,
			    strerror(errno), strerror(rows[i].want));
	}
	assert_int_equal(owner("store/fifo"), 0);
	assert_int_equal(owner("outside.pem"), 0);
	snprintf(p, sizeof(p), "%s/missing", top);
	assert_int_equal(priv_chown_path(p, "x", 1000, 1000), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(priv_chown_path(top, longname, 1000, 1000), -1);
	assert_int_equal(errno, ENAMETOOLONG);
}

static void
test_keep_read_only(void **state)
{
	int status;
	pid_t pid;

	(void)state;
	if (geteuid() != 0)
		skip();
	if ((pid = fork()) == 0) {
		struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
		struct __user_cap_data_struct data[2];
		char why[256];

		if (priv_keep_read_only(65534, 65534, why, sizeof(why)) < 0) {
			fprintf(stderr, "priv_keep_read_only: %s\n", why);
			util_cov_exit(1);
		}
		if (getuid() != 65534 || geteuid() != 65534 || getgid() != 65534)
			util_cov_exit(2);
		if (syscall(SYS_capget, &hdr, data) < 0 ||
		    data[0].effective != 1u << CAP_DAC_READ_SEARCH || data[1].effective != 0)
			util_cov_exit(3);
		if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1 || prctl(PR_GET_DUMPABLE) != 0)
			util_cov_exit(4);
		if (prctl(PR_CAPBSET_READ, CAP_CHOWN, 0, 0, 0) != 0)
			util_cov_exit(5);
		if (setuid(0) == 0)
			util_cov_exit(6);
		util_cov_exit(0);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) != 0)
		fail_msg("child: got exit status %d, want 0", WEXITSTATUS(status));
}

/* A directory of theirs with a newer "<name>.owned" beside it is not walked; once it changes, it is. */
static void
test_chown_skips_vouched_dir(void **state)
{
	char d[300], p[400], f[400], mk_[400];
	struct stat st;
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { 0, 0 } };
	int fd;

	(void)state;
	if (geteuid() != 0)
		skip();
	snprintf(d, sizeof(d), "%s/vouch", top);
	snprintf(p, sizeof(p), "%s/q", d);
	snprintf(f, sizeof(f), "%s/q/F", d);
	snprintf(mk_, sizeof(mk_), "%s/q.owned", d);
	assert_int_equal(mkdir(d, 0700), 0);
	assert_int_equal(mkdir(p, 0700), 0);
	assert_true((fd = open(f, O_WRONLY | O_CREAT, 0600)) >= 0);
	close(fd);
	assert_int_equal(priv_chown_tree(d, 1000, 1000, NULL), 0);
	assert_int_equal(lstat(f, &st), 0);
	assert_int_equal(st.st_uid, 1000);
	/* the owner vouches (a marker newer than q/), then a file's owner changes in place */
	assert_true((fd = open(mk_, O_WRONLY | O_CREAT, 0600)) >= 0);
	close(fd);
	assert_int_equal(lstat(p, &st), 0);
	ts[1].tv_sec = st.st_mtim.tv_sec + 10;
	assert_int_equal(utimensat(AT_FDCWD, mk_, ts, 0), 0);
	assert_int_equal(chown(mk_, 1000, 1000), 0);
	assert_int_equal(chown(f, 0, 0), 0);
	assert_int_equal(priv_chown_tree(d, 1000, 1000, NULL), 0);
	assert_int_equal(lstat(f, &st), 0);
	assert_int_equal(st.st_uid, 0);                 /* not walked */
	/* something enters q/ after the marker: walked again */
	ts[1].tv_sec = st.st_mtim.tv_sec - 100;
	assert_int_equal(utimensat(AT_FDCWD, mk_, ts, 0), 0);
	assert_int_equal(priv_chown_tree(d, 1000, 1000, NULL), 0);
	assert_int_equal(lstat(f, &st), 0);
	assert_int_equal(st.st_uid, 1000);
}

/* A directory named "later" is given away but not walked; priv_chown_sub_start() walks it in a child. */
static void
test_chown_later_in_the_background(void **state)
{
	char d[300], q[400], f[400], x[400], g[400], mk_[400], out[400], of[400], ln[400];
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { 0, 0 } };
	struct stat st;
	char c;
	int fd;

	(void)state;
	if (geteuid() != 0)
		skip();
	snprintf(d, sizeof(d), "%s/later", top);
	snprintf(q, sizeof(q), "%s/q", d);
	snprintf(f, sizeof(f), "%s/q/F", d);
	snprintf(x, sizeof(x), "%s/x", d);
	snprintf(g, sizeof(g), "%s/x/G", d);
	snprintf(mk_, sizeof(mk_), "%s/q.owned", d);
	assert_int_equal(mkdir(d, 0700), 0);
	assert_int_equal(mkdir(q, 0700), 0);
	assert_int_equal(mkdir(x, 0700), 0);
	assert_true((fd = open(f, O_WRONLY | O_CREAT, 0600)) >= 0);
	close(fd);
	assert_true((fd = open(g, O_WRONLY | O_CREAT, 0600)) >= 0);
	close(fd);
	assert_int_equal(priv_chown_tree(d, 1000, 1000, "q"), 0);
	assert_int_equal(lstat(g, &st), 0);
	assert_int_equal(st.st_uid, 1000);             /* other directories: walked */
	assert_int_equal(lstat(q, &st), 0);
	assert_int_equal(st.st_uid, 1000);             /* q itself: given */
	assert_int_equal(lstat(f, &st), 0);
	assert_int_equal(st.st_uid, 0);                /* its files: not yet */
	/* the walk of q/ in its own process: the pipe ends when it is over */
	assert_true((fd = priv_chown_sub_start(d, "q", 1000, 1000)) >= 0);
	assert_int_equal(read(fd, &c, 1), 0);
	close(fd);
	assert_int_equal(lstat(f, &st), 0);
	assert_int_equal(st.st_uid, 1000);
	/* vouched for by a newer q.owned of theirs: nothing to walk */
	assert_true((fd = open(mk_, O_WRONLY | O_CREAT, 0600)) >= 0);
	close(fd);
	assert_int_equal(lstat(q, &st), 0);
	ts[1].tv_sec = st.st_mtim.tv_sec + 10;
	assert_int_equal(utimensat(AT_FDCWD, mk_, ts, 0), 0);
	assert_int_equal(chown(mk_, 1000, 1000), 0);
	assert_int_equal(priv_chown_sub_start(d, "q", 1000, 1000), -2);
	/* q replaced by a link out of d: the walker does not follow it */
	snprintf(out, sizeof(out), "%s/later-out", top);
	snprintf(of, sizeof(of), "%s/later-out/H", top);
	snprintf(ln, sizeof(ln), "%s/q2", d);
	assert_int_equal(mkdir(out, 0700), 0);
	assert_true((fd = open(of, O_WRONLY | O_CREAT, 0600)) >= 0);
	close(fd);
	assert_int_equal(symlink(out, ln), 0);
	assert_true((fd = priv_chown_sub_start(d, "q2", 1000, 1000)) >= 0);
	assert_int_equal(read(fd, &c, 1), 0);
	close(fd);
	assert_int_equal(lstat(of, &st), 0);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(lstat(out, &st), 0);
	assert_int_equal(st.st_uid, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_beneath_openat2),
		cmocka_unit_test(test_open_beneath_walk),
		cmocka_unit_test(test_chown_tree),
		cmocka_unit_test(test_chown_path),
		cmocka_unit_test(test_chown_limits),
		cmocka_unit_test(test_keep_read_only),
		cmocka_unit_test(test_chown_skips_vouched_dir),
		cmocka_unit_test(test_chown_later_in_the_background),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
