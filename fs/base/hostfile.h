/* SPDX-License-Identifier: MIT */
/*
 * Host paths named in content (a dataset's `source`, later landing
 * directories and key files) opened with the rights of the user who named
 * them, never the daemon's.  The daemon runs as root and serves many
 * users: an open done with its rights would read files the writer cannot
 * read, and an open of a terminal or a FIFO would give the daemon a
 * controlling terminal or park a worker for ever.
 */
#ifndef MLFS_FS_HOSTFILE_H
#define MLFS_FS_HOSTFILE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Whose rights an open of a host path uses. */
struct host_user {
	uid_t uid;
	gid_t gid;
	pid_t pid; /* the requesting process: its groups and working
		      directory; 0 for actions with no request behind them,
		      which take the uid's groups from the group database */
};

/*
 * host_open: open path for reading as user u.  The calling thread takes
 * u's fsuid, fsgid and supplementary groups for the open alone (raw
 * syscalls: glibc's wrappers would change every thread of the daemon), so
 * the kernel judges every component, directory search included, as it
 * would for that user; then the thread's own credentials come back.  The
 * open is O_NOCTTY | O_NONBLOCK, and anything but a regular file (a
 * directory when want_dir) is refused before a byte is read.  A relative
 * path is taken from u.pid's working directory.
 * Returns 0 and the descriptor (O_CLOEXEC) in *fd, or -errno: -EACCES,
 * -ENOENT, -ELOOP..., -EINVAL for a file of the wrong type.  *fd is -1 on
 * failure.  Any thread.
 */
int host_open(const struct host_user *u, const char *path, bool want_dir,
	      int *fd);

/*
 * host_may: would the kernel grant u the access want (a mask of R_OK,
 * W_OK, X_OK) on an object with this owner, group and mode?  The owner's
 * bits if u owns it, else the group's if the group is u's primary or one
 * of its supplementary groups (host_open's groups), else the others';
 * root may do anything.  Any thread.
 */
bool host_may(const struct host_user *u, uid_t owner, gid_t group,
	      mode_t mode, int want);
/* host_may for a caller whose groups are known (an HTTP peer's, taken
 * when it connected): uid, primary gid, and ngroups supplementary. */
bool host_may_as(uid_t uid, gid_t gid, const gid_t *groups, int ngroups,
		 uid_t owner, gid_t group, mode_t mode, int want);

/*
 * host_copy: copy size bytes from the start of from to the start of to
 * (copy_file_range, else read and write).  0 or -errno.
 */
int host_copy(int from, int to, uint64_t size);
/*
 * host_copy_range: bytes [off, off + len) of from to the same place in
 * to; *done how many (fewer if from ends first).  0 or -errno.
 */
int host_copy_range(int from, int to, uint64_t off, uint64_t len,
		    uint64_t *done);

/*
 * host_close_later: close fd on a thread of its own.  The last close of
 * a big unlinked file frees its page cache and its blocks (with -o
 * discard, a synchronous discard): 0.24 s for 1.1 GB on the machine of
 * doc/performance.md, which no caller should wait for.  fd is the
 * callee's; closed at once when no thread can be made.
 */
void host_close_later(int fd);

/*
 * host_sole_opener: whether fd (open for writing) is the only open file
 * of its inode in the whole system, so that nothing can write it but
 * through fd: a write lease is granted only then (F_SETLEASE; it is let
 * go at once).  1 yes; 0 no (a descriptor passed to another process, or
 * in flight in a socket, is an open file); -errno when the file system
 * grants no leases (it cannot be told).
 */
int host_sole_opener(int fd);

/*
 * host_openat_nofollow: open dir/rel (rel may have '/'s) following no
 * symbolic link on the way, dir included, for a folder another user can
 * change (a job's folder is its writer's).  flags as for open(2)
 * (O_NOFOLLOW, O_NONBLOCK, O_NOCTTY and O_CLOEXEC are added; O_CREAT makes
 * the file 0600); anything but a regular file is -EINVAL.  0 and *fd, or
 * -errno (-ELOOP for a link); *fd is -1 on failure.  Any thread.
 */
int host_openat_nofollow(const char *dir, const char *rel, int flags,
			 int *fd);

/*
 * host_may_record: host_may on an object record of the repository (its
 * "uid", "gid" and "mode" fields).  rec is a jansson object.
 */
struct json_t;
bool host_may_record(const struct host_user *u, const struct json_t *rec,
		     int want);

#endif
