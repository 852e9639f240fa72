/*
 * priv.h - privilege changes that must not be fooled by the file system:
 *          hand files to an unprivileged user without following links,
 *          open a name strictly beneath a directory, keep one capability
 *
 * Owns:     nothing past a call (descriptors opened inside are closed).
 * Lifetime: stateless.
 * Errors:   -1 with errno; what was skipped is logged with log_warnx().
 * Context:  start-up, as root, before threads exist (priv_keep_read_only
 *           changes the whole process: call it in a child of its own).
 *
 * Why: data_dir and the mail log's directories belong to mail_owner, so
 * whatever mail_owner placed there (a symbolic link to /etc/shadow, a hard
 * link to a root file, a directory swapped for a link between a check and
 * a chown) must not make root change a file outside them.
 */
#ifndef MTAD_PRIV_H
#define MTAD_PRIV_H

#include <stddef.h>
#include <sys/types.h>

/* How deep priv_chown_tree() descends (data_dir is three levels deep). */
#define PRIV_MAX_DEPTH 16

/*
 * priv_chown_tree - give dir and everything beneath it to uid:gid. dir
 * itself is opened as named (it is the configuration's); beneath it, no
 * symbolic link is followed (directories are opened O_NOFOLLOW, files
 * changed through an O_PATH descriptor), no other file system is entered,
 * and only directories and regular files with one link are changed: a
 * link, FIFO, device or hard-linked file is left alone and logged. Returns
 * the number of entries left alone, or -1 with errno when dir cannot be
 * opened or changed. A directory of dir named later (NULL: none) is
 * given to uid:gid but not walked into: priv_chown_sub_start() does that.
 */
int priv_chown_tree(const char *dir, uid_t uid, gid_t gid, const char *later);

/*
 * priv_child_setup - in a forked helper process: SIGHUP, SIGINT and
 * SIGPIPE ignored, SIGTERM default, its name (prctl), fd moved to
 * descriptor 3, stdin and stdout on /dev/null, every descriptor above 3
 * closed (stderr stays for the log). 0, or -1 with errno.
 */
int priv_child_setup(int fd, const char *name);

/*
 * priv_chown_sub_start - walk dir/name (a directory; opened without
 * following a link, on dir's file system) as priv_chown_tree() does, in a
 * process of its own that goes on while the caller drops its privileges
 * and serves: a queue of millions of files costs the start-up nothing.
 * Returns the read end of a pipe that reaches end-of-file when the walk is
 * over (the caller closes it), -2 when there is nothing to walk (the
 * owner vouched for the directory: a newer "<name>.owned" of theirs), or
 * -1 with errno. The walker logs what it did; the caller reaps nothing.
 * Call it before priv_chown_tree() gives dir/name and its marker away:
 * whether the owner vouched for it is told by who owns them.
 */
int priv_chown_sub_start(const char *dir, const char *name, uid_t uid, gid_t gid);

/*
 * priv_chown_path - give root (opened as named: the configuration's), each
 * directory of rel (a relative path) beneath it and its last component (a
 * regular file with one link) to uid:gid, walking component by component
 * without following a link. 0, or -1 with
 * errno (ELOOP: a symbolic link on the way; EINVAL: not a regular file or
 * more than one link; ENOENT: missing).
 */
int priv_chown_path(const char *root, const char *rel, uid_t uid, gid_t gid);

/*
 * priv_open_beneath - open rel strictly beneath the directory dirfd:
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) where the kernel has it
 * (links inside the directory work; ".." or a link leading out gives
 * EXDEV), else a walk component by component with O_NOFOLLOW (then any
 * link gives ELOOP and ".." gives EXDEV). No resolve-then-open race: the
 * kernel resolves and opens in one step. flags as for open(2); O_CLOEXEC
 * and O_NOCTTY are added. A descriptor, or -1 with errno.
 */
int priv_open_beneath(int dirfd, const char *rel, int flags);

/*
 * priv_keep_read_only - become uid:gid keeping nothing but
 * CAP_DAC_READ_SEARCH (read any file, search any directory): every other
 * capability leaves the effective, permitted, inheritable, ambient and
 * (where CAP_SETPCAP allows) bounding sets; no_new_privs is set and the
 * process becomes non-dumpable (no ptrace by the unprivileged daemon of
 * the same uid). 0, or -1 with a reason in why.
 */
int priv_keep_read_only(uid_t uid, gid_t gid, char *why, size_t whylen);

#endif
