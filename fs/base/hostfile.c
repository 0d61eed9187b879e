/* SPDX-License-Identifier: MIT */
/*
 * Opening host paths as the user who named them (hostfile.h).  Linux keeps
 * credentials per thread; the raw setfsuid, setfsgid and setgroups system
 * calls change the calling thread's alone, and a change of fsuid away
 * from 0 drops the filesystem capabilities (CAP_DAC_OVERRIDE,
 * CAP_DAC_READ_SEARCH...) until it comes back to 0.  Any FUSE worker
 * thread enters; nothing is shared between calls.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <syslog.h>
#include <unistd.h>

#include <jansson.h>

#include "hostfile.h"

#define HOST_MAX_GROUPS 1024

/* The supplementary groups of pid (its "Groups:" line), else of uid. */
static int user_groups(const struct host_user *u, gid_t *groups, int max)
{
	char path[64], line[8192];
	struct passwd pw, *pwp = NULL;
	char pwbuf[4096];
	FILE *fp;
	int n = 0;

	if (u->pid > 0) {
		snprintf(path, sizeof(path), "/proc/%d/status", (int)u->pid);
		fp = fopen(path, "re");
		if (fp) {
			while (fgets(line, sizeof(line), fp)) {
				char *p = line + 7, *end;

				if (strncmp(line, "Groups:", 7) != 0)
					continue;
				while (n < max) {
					unsigned long g = strtoul(p, &end, 10);

					if (end == p)
						break;
					groups[n++] = (gid_t)g;
					p = end;
				}
				break;
			}
			fclose(fp);
			return n;
		}
	}
	/* No process (it ended, or none was behind the action): the
	 * uid's groups now, or none at all if the uid has no entry. */
	if (getpwuid_r(u->uid, &pw, pwbuf, sizeof(pwbuf), &pwp) != 0 || !pwp)
		return 0;
	n = max;
	if (getgrouplist(pw.pw_name, u->gid, groups, &n) < 0)
		n = max;
	return n;
}

/* Become u for filesystem access on this thread only.  0 or -errno. */
static int become(const struct host_user *u)
{
	gid_t groups[HOST_MAX_GROUPS];
	int n = user_groups(u, groups, HOST_MAX_GROUPS);

	if (syscall(SYS_setgroups, (size_t)n, groups) < 0)
		return -errno;
	syscall(SYS_setfsgid, u->gid);
	syscall(SYS_setfsuid, u->uid);
	/* setfsuid and setfsgid report no error: read them back */
	if ((uid_t)syscall(SYS_setfsuid, (uid_t)-1) != u->uid ||
	    (gid_t)syscall(SYS_setfsgid, (gid_t)-1) != u->gid)
		return -EPERM;
	return 0;
}

/*
 * Come back to the daemon's own credentials.  A thread that cannot would
 * serve every later request with a user's rights (or a user's with
 * root's): that cannot be carried on with.
 */
static void come_back(const gid_t *groups, int n)
{
	syscall(SYS_setfsuid, 0);
	syscall(SYS_setfsgid, getegid());
	if (syscall(SYS_setgroups, (size_t)n, groups) < 0 ||
	    (uid_t)syscall(SYS_setfsuid, (uid_t)-1) != geteuid()) {
		fprintf(stderr, "mlfs: cannot restore the daemon's "
			"credentials: %s\n", strerror(errno));
		syslog(LOG_CRIT, "cannot restore the daemon's credentials");
		abort();
	}
}

int host_open(const struct host_user *u, const char *path, bool want_dir,
	      int *fd)
{
	gid_t saved[HOST_MAX_GROUPS];
	char rel[PATH_MAX];
	struct stat st;
	int nsaved, rc;
	int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;

	*fd = -1;
	if (path[0] != '/') {
		if (u->pid <= 0)
			return -EINVAL;
		if (snprintf(rel, sizeof(rel), "/proc/%d/cwd/%s", (int)u->pid,
			     path) >= (int)sizeof(rel))
			return -ENAMETOOLONG;
		path = rel;
	}
	if (want_dir)
		flags |= O_DIRECTORY;
	nsaved = getgroups(HOST_MAX_GROUPS, saved);
	if (nsaved < 0)
		return -errno;
	if (geteuid() != 0 || u->uid == 0) {
		/* Not root (tests), or root asking: no change of rights. */
		rc = open(path, flags);
		rc = rc < 0 ? -errno : rc;
	} else {
		rc = become(u);
		if (rc == 0) {
			rc = open(path, flags);
			rc = rc < 0 ? -errno : rc;
		}
		come_back(saved, nsaved);
	}
	if (rc < 0)
		return rc;
	if (fstat(rc, &st) < 0 ||
	    (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))) {
		close(rc);
		return -EINVAL;
	}
	*fd = rc;
	return 0;
}

bool host_may_as(uid_t uid, gid_t gid, const gid_t *groups, int ngroups,
		 uid_t owner, gid_t group, mode_t mode, int want)
{
	unsigned bits;

	if (uid == 0)
		return true;
	if (uid == owner) {
		bits = (mode >> 6) & 7;
	} else {
		bool member = gid == group;

		for (int i = 0; i < ngroups && !member; i++)
			member = groups[i] == group;
		bits = member ? (mode >> 3) & 7 : mode & 7;
	}
	return (bits & (unsigned)want) == (unsigned)want;
}

bool host_may(const struct host_user *u, uid_t owner, gid_t group,
	      mode_t mode, int want)
{
	gid_t groups[HOST_MAX_GROUPS];
	unsigned w = (unsigned)want;
	int n = 0;

	/*
	 * The groups are looked up only when they can change the answer:
	 * not for root, the owner, the primary group, or a mode whose
	 * group bits grant what the others' do.
	 */
	if (u->uid != 0 && u->uid != owner && u->gid != group &&
	    ((((mode >> 3) & 7) & w) == w) != (((mode & 7) & w) == w))
		n = user_groups(u, groups, HOST_MAX_GROUPS);
	return host_may_as(u->uid, u->gid, groups, n, owner, group, mode,
			   want);
}

bool host_may_record(const struct host_user *u, const struct json_t *rec,
		     int want)
{
	json_t *r = (json_t *)rec; /* jansson's getters take no const */

	return host_may(u, (uid_t)json_integer_value(json_object_get(r, "uid")),
			(gid_t)json_integer_value(json_object_get(r, "gid")),
			(mode_t)json_integer_value(json_object_get(r, "mode")),
			want);
}

int host_sole_opener(int fd)
{
	if (fcntl(fd, F_SETLEASE, F_WRLCK) < 0)
		return errno == EAGAIN || errno == EBUSY ? 0 : -errno;
	fcntl(fd, F_SETLEASE, F_UNLCK);
	return 1;
}

static void *close_main(void *arg)
{
	close((int)(intptr_t)arg);
	return NULL;
}

void host_close_later(int fd)
{
	pthread_attr_t at;
	pthread_t th;
	bool started = false;

	if (fd < 0)
		return;
	if (pthread_attr_init(&at) == 0) {
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		started = pthread_create(&th, &at, close_main,
					 (void *)(intptr_t)fd) == 0;
		pthread_attr_destroy(&at);
	}
	if (!started)
		close(fd);
}

int host_copy_range(int from, int to, uint64_t off, uint64_t len,
		    uint64_t *done)
{
	loff_t in = (loff_t)off, out = (loff_t)off;
	const loff_t end = (loff_t)(off + len);

	*done = 0;
	while (in < end) {
		ssize_t n = copy_file_range(from, &in, to, &out,
					    (size_t)(end - in), 0);

		if (n < 0 && (errno == EXDEV || errno == ENOSYS ||
			      errno == EOPNOTSUPP || errno == EINVAL)) {
			char buf[1 << 16];
			size_t want = end - in < (loff_t)sizeof(buf)
					      ? (size_t)(end - in)
					      : sizeof(buf);

			n = pread(from, buf, want, in);
			if (n > 0 && pwrite(to, buf, (size_t)n, out) != n)
				return -EIO;
			if (n > 0) {
				in += n;
				out += n;
			}
		}
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
	}
	*done = (uint64_t)in - off;
	return 0;
}

int host_copy(int from, int to, uint64_t size)
{
	uint64_t done;

	return host_copy_range(from, to, 0, size, &done);
}

int host_openat_nofollow(const char *dir, const char *rel, int flags,
			 int *fd)
{
	char buf[PATH_MAX], *p, *slash;
	struct stat st;
	int dfd, next, rc;

	*fd = -1;
	if (snprintf(buf, sizeof(buf), "%s", rel) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	for (p = buf; (slash = strchr(p, '/')); p = slash + 1) {
		*slash = '\0';
		next = openat(dfd, p,
			      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		rc = -errno;
		close(dfd);
		if (next < 0)
			return rc;
		dfd = next;
	}
	next = openat(dfd, p,
		      flags | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
		      0600);
	rc = -errno;
	close(dfd);
	if (next < 0)
		return rc;
	if (fstat(next, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(next);
		return -EINVAL;
	}
	*fd = next;
	return 0;
}
