/*
 * priv.c - privilege changes that must not be fooled by the file system:
 *          hand files to an unprivileged user without following links,
 *          open a name strictly beneath a directory, keep one capability
 *
 * Owns:     nothing past a call.
 * Lifetime: stateless.
 * Errors:   -1 with errno (priv_keep_read_only: a reason in why); entries
 *           left alone by priv_chown_tree() are logged with log_warnx().
 * Context:  start-up, as root, before threads exist; the walk of
 *           priv_chown_sub_start() in a child process of its own.
 *
 * Every change goes through a descriptor obtained without following a
 * link (O_NOFOLLOW directories, O_PATH files checked with fstat), never
 * through a path name that could be re-resolved between check and use.
 */
#include "lib/priv.h"
#include "lib/log.h"
#include "lib/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/capability.h>
#include <linux/openat2.h>

#define PRIV_DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

/*
 * priv_chown_file - name under dirfd, whose lstat is st: change it only if
 * it is still that regular file with one link (an O_PATH descriptor opened
 * without following links is what gets changed). 0 changed, 1 left alone.
 */
static int
priv_chown_file(int dirfd, const char *name, const char *path, uid_t uid, gid_t gid)
{
	struct stat st;
	int fd, rc = 1;

	if ((fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		log_warn("%s: left alone", path);
		return 1;
	}
	if (fstat(fd, &st) < 0)
		log_warn("%s: left alone", path);
	else if (!S_ISREG(st.st_mode))
		log_warnx("%s: not a regular file or directory; left alone", path);
	else if (st.st_nlink != 1)
		log_warnx("%s: has %lu hard links; left alone", path, (unsigned long)st.st_nlink);
	else if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH) < 0)
		log_warn("chown %s", path);
	else
		rc = 0;
	close(fd);
	return rc;
}

/*
 * priv_dir_unchanged - the directory name (lstat st) was theirs already and
 * nothing entered or left it since its owner last vouched for it: a regular
 * file "<name>.owned" of theirs, beside it, newer than the directory. (mtad
 * touches <data_dir>/queue.owned at a clean stop: the next start then does
 * not look at every file of a big queue.)
 */
static int
priv_dir_unchanged(int fd, const char *name, const struct stat *st, uid_t uid, gid_t gid)
{
	char marker[NAME_MAX + 8];
	struct stat ms;

	if (st->st_uid != uid || st->st_gid != gid ||
	    util_bsnprintf(marker, sizeof(marker), "%s.owned", name) < 0 ||
	    fstatat(fd, marker, &ms, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(ms.st_mode) ||
	    ms.st_uid != uid)
		return 0;
	return ms.st_mtim.tv_sec > st->st_mtim.tv_sec ||
	    (ms.st_mtim.tv_sec == st->st_mtim.tv_sec && ms.st_mtim.tv_nsec > st->st_mtim.tv_nsec);
}

/* priv_chown_dir - the entries of the open directory fd (on device dev), recursively */
static int
priv_chown_dir(int fd, dev_t dev, char *path, size_t pathsize, uid_t uid, gid_t gid, int depth,
    const char *later)
{
	size_t plen = strlen(path);
	struct dirent *de;
	int skipped = 0, dfd;
	DIR *d;

	if ((dfd = dup(fd)) < 0 || (d = fdopendir(dfd)) == NULL) {
		if (dfd >= 0)
			close(dfd);
		log_warn("%s: cannot list", path);
		return 1;
	}
	while ((de = readdir(d)) != NULL) {
		struct stat st, st2;
		int sub;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (util_bsnprintf(path + plen, pathsize - plen, "/%s", de->d_name) < 0) {
			path[plen] = '\0';
			log_warnx("%s/...: name too long; left alone", path);
			skipped++;
			continue;
		}
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT) {
				log_warn("%s: left alone", path);
				skipped++;
			}
			continue;
		}
		if (S_ISREG(st.st_mode) && st.st_uid == uid && st.st_gid == gid) {
			/* already theirs (every restart after the first): one fstatat, no
			 * open or chown, so a queue of millions costs no start-up time here */
		} else if (st.st_dev != dev) {
			log_warnx("%s: on another file system; left alone", path);
			skipped++;
		} else if (!S_ISDIR(st.st_mode)) {
			skipped += priv_chown_file(fd, de->d_name, path, uid, gid);
		} else if (depth >= PRIV_MAX_DEPTH) {
			log_warnx("%s: deeper than %d levels; left alone", path, PRIV_MAX_DEPTH);
			skipped++;
		} else if ((sub = openat(fd, de->d_name, PRIV_DIR_FLAGS)) < 0) {
			log_warn("%s: left alone", path);    /* replaced by a link meanwhile: ELOOP */
			skipped++;
		} else {
			if (fstat(sub, &st2) < 0 || st2.st_dev != dev || st2.st_ino != st.st_ino) {
				log_warnx("%s: changed while being walked; left alone", path);
				skipped++;
			} else if (fchown(sub, uid, gid) < 0) {
				log_warn("chown %s", path);
				skipped++;
			} else if (priv_dir_unchanged(fd, de->d_name, &st, uid, gid)) {
				log_trace(TRACE_QUEUE, "%s: unchanged since its owner's stop; not walked", path);
			} else if (depth == 0 && later != NULL && strcmp(de->d_name, later) == 0) {
				log_trace(TRACE_QUEUE, "%s: walked later (priv_chown_sub_start)", path);
			} else {
				skipped += priv_chown_dir(sub, dev, path, pathsize, uid, gid, depth + 1,
				    NULL);
			}
			close(sub);
		}
		path[plen] = '\0';
	}
	closedir(d);
	return skipped;
}

/* priv_chown_open - dir opened as named, given to uid:gid; -1 with errno */
static int
priv_chown_open(const char *dir, uid_t uid, gid_t gid, struct stat *st)
{
	int fd;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	if (fstat(fd, st) < 0 || fchown(fd, uid, gid) < 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* priv_chown_tree - see priv.h */
int
priv_chown_tree(const char *dir, uid_t uid, gid_t gid, const char *later)
{
	char path[PATH_MAX];
	struct stat st;
	int fd, n;

	if (util_strlcpy(path, dir, sizeof(path)) >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = priv_chown_open(dir, uid, gid, &st)) < 0)
		return -1;
	n = priv_chown_dir(fd, st.st_dev, path, sizeof(path), uid, gid, 0, later);
	close(fd);
	return n;
}

/*
 * priv_chown_sub_walk - the walk of dir/name (a directory of dir, opened
 * without following a link, on dir's file system); the entries left alone
 * or -1 with errno
 */
static int
priv_chown_sub_walk(const char *dir, const char *name, uid_t uid, gid_t gid)
{
	char path[PATH_MAX];
	struct stat st, sst;
	int fd, sub, n;

	if (util_bsnprintf(path, sizeof(path), "%s/%s", dir, name) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	if (fstat(fd, &st) < 0 || (sub = openat(fd, name, PRIV_DIR_FLAGS)) < 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	close(fd);
	if (fstat(sub, &sst) < 0 || sst.st_dev != st.st_dev) {
		close(sub);
		errno = EXDEV;
		return -1;
	}
	n = priv_chown_dir(sub, st.st_dev, path, sizeof(path), uid, gid, 1, NULL);
	close(sub);
	return n;
}

/* priv_child_setup - see priv.h */
int
priv_child_setup(int fd, const char *name)
{
	int nul;

	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	(void)prctl(PR_SET_NAME, name);
	if (fd != 3 && dup2(fd, 3) < 0)
		return -1;
	if ((nul = open("/dev/null", O_RDWR)) >= 0) {
		(void)dup2(nul, STDIN_FILENO);
		(void)dup2(nul, STDOUT_FILENO);
	}
	return close_range(4, ~0U, 0);
}

/* priv_chown_sub_start - see priv.h */
int
priv_chown_sub_start(const char *dir, const char *name, uid_t uid, gid_t gid)
{
	struct stat st;
	int pfd[2], status, fd;
	pid_t pid;

	/* vouched for by its owner at a clean stop: nothing to walk */
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		int same = fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) &&
		    priv_dir_unchanged(fd, name, &st, uid, gid);

		close(fd);
		if (same)
			return -2;
	}
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	if ((pid = fork()) < 0) {
		int saved = errno;

		close(pfd[0]);
		close(pfd[1]);
		errno = saved;
		return -1;
	}
	if (pid == 0) {
		/*
		 * The intermediate child: the walker is its child, adopted by
		 * init when this one exits at once (no zombie for the daemon to
		 * reap, no SIGCHLD handler in it).
		 */
		if ((pid = fork()) != 0)
			util_cov_exit(pid < 0);
		/* the walker: nothing but stderr and the pipe's write end */
		if (priv_child_setup(pfd[1], "mtad-chown") < 0)
			util_cov_exit(1);
		{
			uint64_t t0 = util_mono_us();
			int n = priv_chown_sub_walk(dir, name, uid, gid);

			if (n < 0)
				log_warn("%s/%s: cannot hand to its owner", dir, name);
			else
				log_info("%s/%s: owners checked in %.1f s (%d entr%s left alone)", dir,
				    name, (double)(util_mono_us() - t0) / 1e6, n, n == 1 ? "y" : "ies");
		}
		util_cov_exit(0);
	}
	close(pfd[1]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		close(pfd[0]);
		errno = ECHILD;
		return -1;
	}
	return pfd[0];
}

/*
 * priv_split - cut the path at comp into its first component (returned,
 * NUL-terminated, leading slashes skipped) and the rest (*next, NULL when
 * nothing but slashes follows). Modifies the buffer.
 */
static char *
priv_split(char *comp, char **next)
{
	while (*comp == '/')
		comp++;
	if ((*next = strchr(comp, '/')) != NULL)
		*(*next)++ = '\0';
	while (*next != NULL && **next == '/')
		(*next)++;
	if (*next != NULL && **next == '\0')
		*next = NULL;
	return comp;
}

/* priv_chown_path - see priv.h */
int
priv_chown_path(const char *root, const char *rel, uid_t uid, gid_t gid)
{
	char buf[PATH_MAX], *comp, *next;
	struct stat st;
	int fd, sub, saved;

	if (util_strlcpy(buf, rel, sizeof(buf)) >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	if (fchown(fd, uid, gid) < 0)
		goto fail;
	for (comp = buf; ; comp = next) {
		comp = priv_split(comp, &next);
		if (*comp == '\0' || strcmp(comp, ".") == 0 || strcmp(comp, "..") == 0) {
			errno = EINVAL;
			goto fail;
		}
		if (next == NULL)
			break;
		if ((sub = openat(fd, comp, PRIV_DIR_FLAGS)) < 0)
			goto fail;
		close(fd);
		fd = sub;
		if (fchown(fd, uid, gid) < 0)
			goto fail;
	}
	if ((sub = openat(fd, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0)
		goto fail;
	close(fd);
	fd = sub;
	if (fstat(fd, &st) < 0)
		goto fail;
	if (S_ISLNK(st.st_mode)) {
		errno = ELOOP;
		goto fail;
	}
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		errno = EINVAL;
		goto fail;
	}
	if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH) < 0)
		goto fail;
	close(fd);
	return 0;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/* priv_walk_beneath - priv_open_beneath() without openat2: no link is followed */
static int
priv_walk_beneath(int dirfd, const char *rel, int flags)
{
	char buf[PATH_MAX], *comp, *next;
	int fd = -1, at = dirfd, saved;

	if (util_strlcpy(buf, rel, sizeof(buf)) >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (comp = buf; ; comp = next) {
		int sub;

		comp = priv_split(comp, &next);
		if (strcmp(comp, "..") == 0) {
			errno = EXDEV;
			goto fail;
		}
		if (*comp == '\0') {
			errno = ENOENT;
			goto fail;
		}
		if (next == NULL) {
			sub = openat(at, comp, flags | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
		} else if (strcmp(comp, ".") == 0) {
			continue;
		} else {
			struct stat st;

			sub = openat(at, comp, PRIV_DIR_FLAGS);
			/* O_DIRECTORY | O_NOFOLLOW on a link says ENOTDIR: name it */
			if (sub < 0 && errno == ENOTDIR &&
			    fstatat(at, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
				errno = ELOOP;
		}
		if (sub < 0)
			goto fail;
		if (fd >= 0)
			close(fd);
		fd = at = sub;
		if (next == NULL)
			return fd;
	}
fail:
	saved = errno;
	if (fd >= 0)
		close(fd);
	errno = saved;
	return -1;
}

/* priv_open_beneath - see priv.h */
int
priv_open_beneath(int dirfd, const char *rel, int flags)
{
	struct open_how how;
	int fd;

	if (rel == NULL || rel[0] == '\0' || rel[0] == '/') {
		errno = rel != NULL && rel[0] == '/' ? EXDEV : ENOENT;
		return -1;
	}
	memset(&how, 0, sizeof(how));
	how.flags = (uint64_t)(unsigned)(flags | O_NOCTTY | O_CLOEXEC);
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
	for (int i = 0; i < 8; i++) {
		fd = (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
		if (fd >= 0)
			return fd;
		if (errno != EAGAIN)    /* a rename raced with ".." resolution: again */
			break;
	}
	if (errno != ENOSYS && errno != EPERM)      /* EPERM: a seccomp filter */
		return -1;
	return priv_walk_beneath(dirfd, rel, flags);
}

/* priv_keep_read_only - see priv.h */
int
priv_keep_read_only(uid_t uid, gid_t gid, char *why, size_t whylen)
{
	struct __user_cap_header_struct hdr;
	struct __user_cap_data_struct data[2];
	const unsigned keep = CAP_DAC_READ_SEARCH;
	const char *step;

	/* The bounding set first, while CAP_SETPCAP may still be ours. */
	for (unsigned cap = 0; cap < 64; cap++) {
		if (cap == keep)
			continue;
		if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0)
			break;                  /* past the kernel's last capability */
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EPERM) {
			step = "PR_CAPBSET_DROP";
			goto fail;
		}
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) {
		step = "PR_CAP_AMBIENT_CLEAR_ALL";
		goto fail;
	}
	step = "change of user";
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 || setgroups(0, NULL) < 0 ||
	    setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
		goto fail;
	memset(&hdr, 0, sizeof(hdr));
	memset(data, 0, sizeof(data));
	hdr.version = _LINUX_CAPABILITY_VERSION_3;
	data[0].effective = data[0].permitted = 1u << keep;
	step = "capset";
	if (syscall(SYS_capset, &hdr, data) < 0)
		goto fail;
	step = "prctl";
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0 ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		goto fail;
	/* Check what we got: root must be gone for good, one capability left. */
	memset(data, 0, sizeof(data));
	if (setuid(0) == 0 || syscall(SYS_capget, &hdr, data) < 0 ||
	    data[0].effective != 1u << keep || data[0].permitted != 1u << keep ||
	    data[1].effective != 0 || data[1].permitted != 0 || data[0].inheritable != 0) {
		errno = EPERM;
		step = "check of the dropped privileges";
		goto fail;
	}
	return 0;
fail:
	if (util_bsnprintf(why, whylen, "%s: %s", step, strerror(errno)) < 0)
		util_strlcpy(why, step, whylen);
	return -1;
}
