/* SPDX-License-Identifier: MIT */
/*
 * The local directory store, the embedded default.  Object "a/b/c" is the
 * file DIR/a/b/c, so a store is a tree a user can read with ls and cat.
 * Puts stage their bytes in DIR/.tmp, fsync them and rename them into
 * place, so a reader sees the old object or the new one and never half of
 * either.  Names starting with ".tmp" are the store's own: list() never
 * shows them, and keys with such a component are refused with -EINVAL.
 * Any thread may enter any op: the only shared mutable state is an atomic
 * counter, and the races between threads (a del pruning the directory a
 * put is about to rename into) are retried where they happen.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "store_i.h"

/* The staging directory below DIR, and the prefix of every hidden name. */
#define LOCAL_HIDDEN ".tmp"
/* Room for a staging file name: "<pid>-<seq>-<salt>". */
#define LOCAL_TMP_NAME_MAX 64
/* Times a put retries when a del removes its parent directory (past a
 * few, it lets the deleter run first: two threads that put and del in
 * one directory could otherwise take each other's directory away 64
 * times in a row, measured under ASan). */
#define LOCAL_RETRIES 1000
#define LOCAL_RETRIES_EAGER 8
/* Buffer for copying a file across file systems. */
#define LOCAL_COPY_CHUNK (1024 * 1024)

struct local {
	struct store base;		/* first: ops cast store to local */
	char *dir;			/* absolute path of DIR */
	char *name;			/* "local:DIR" */
	int dirfd;			/* DIR */
	int tmpfd;			/* DIR/.tmp */
	uint64_t salt;			/* random, set at open */
	_Atomic unsigned long seq;	/* staging names made so far */
};

static struct local *to_local(struct store *s)
{
	return (struct local *)s;
}

static bool local_name_is_hidden(const char *name)
{
	return strncmp(name, LOCAL_HIDDEN, strlen(LOCAL_HIDDEN)) == 0;
}

/* A valid key with no hidden component, which list() could not show. */
static bool local_key_is_valid(const char *key)
{
	const char *p;

	if (!store_key_is_valid(key))
		return false;
	p = key;
	for (;;) {
		if (local_name_is_hidden(p))
			return false;
		p = strchr(p, '/');
		if (!p)
			return true;
		p++;
	}
}

/* A file name in DIR/.tmp no other thread or process will pick. */
static void local_tmp_name(struct local *l, char *out, size_t outlen)
{
	unsigned long seq = atomic_fetch_add(&l->seq, 1);
	uint64_t x = l->salt + seq * 0x9e3779b97f4a7c15ULL;

	/* splitmix64 finaliser: names made in a row look unrelated. */
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	x ^= x >> 31;
	snprintf(out, outlen, "%ld-%lu-%016llx", (long)getpid(), seq,
		 (unsigned long long)x);
}

/* Create and open a fresh staging file; its name goes to name. */
static int local_tmp_create(struct local *l, char *name, size_t namelen)
{
	int fd;
	int i;

	for (i = 0; i < LOCAL_RETRIES; i++) {
		local_tmp_name(l, name, namelen);
		fd = openat(l->tmpfd, name,
			    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

static int sync_fd(int fd)
{
	return fsync(fd) < 0 ? -errno : 0;
}

/*
 * Open the subdirectory name of fd, creating it if missing.  A directory
 * we create is made durable by syncing fd, which holds its entry.
 */
static int local_enter_dir(int fd, const char *name)
{
	bool created;
	int sub;
	int rc;

	sub = openat(fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sub >= 0)
		return sub;
	if (errno != ENOENT)
		return -errno;
	created = mkdirat(fd, name, 0700) == 0;
	if (!created && errno != EEXIST)
		return -errno;
	sub = openat(fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sub < 0)
		return -errno;
	if (created) {
		rc = sync_fd(fd);
		if (rc < 0) {
			close(sub);
			return rc;
		}
	}
	return sub;
}

/*
 * Open the directory that holds key, creating the missing ones (mkdir -p),
 * and point *base at key's last component.  Returns an fd the caller
 * closes, or -errno: -ENOTDIR when a parent is an object, -ENOENT when a
 * concurrent del removed a directory on the way (worth a retry).
 */
static int local_open_parent(struct local *l, const char *key,
			     const char **base)
{
	char path[STORE_KEY_MAX + 1];
	const char *slash;
	char *comp;
	char *next;
	size_t len;
	int cur;
	int sub;

	slash = strrchr(key, '/');
	*base = slash ? slash + 1 : key;
	cur = fcntl(l->dirfd, F_DUPFD_CLOEXEC, 0);
	if (cur < 0)
		return -errno;
	if (!slash)
		return cur;
	len = (size_t)(slash - key);
	memcpy(path, key, len);
	path[len] = '\0';
	for (comp = path; comp; comp = next) {
		next = strchr(comp, '/');
		if (next)
			*next++ = '\0';
		sub = local_enter_dir(cur, comp);
		close(cur);
		if (sub < 0)
			return sub;
		cur = sub;
	}
	return cur;
}

/*
 * Move the complete, synced file name (in directory fd srcfd) to key and
 * make the rename durable.  A del of the last key in a directory removes
 * that directory, which can happen between our mkdir and our rename; the
 * rename then gives ENOENT and we build the path again.
 */
static int local_publish(struct local *l, int srcfd, const char *name,
			 const char *key)
{
	const char *base;
	int tries;
	int pfd;
	int rc;

	for (tries = 0;; tries++) {
		if (tries > LOCAL_RETRIES_EAGER) {
			struct timespec ts = { 0, 1000L * (tries % 100) };

			nanosleep(&ts, NULL);
		}
		pfd = local_open_parent(l, key, &base);
		if (pfd == -ENOENT && tries < LOCAL_RETRIES)
			continue;
		if (pfd < 0)
			return pfd;
		if (renameat(srcfd, name, pfd, base) == 0)
			break;
		rc = -errno;
		close(pfd);
		if (rc != -ENOENT || tries >= LOCAL_RETRIES)
			return rc;
	}
	rc = sync_fd(pfd);
	close(pfd);
	return rc;
}

static int local_put(struct store *s, const char *key, const void *buf,
		     size_t len)
{
	struct local *l = to_local(s);
	char tmp[LOCAL_TMP_NAME_MAX];
	int fd;
	int rc;

	if (!local_key_is_valid(key))
		return -EINVAL;
	fd = local_tmp_create(l, tmp, sizeof(tmp));
	if (fd < 0)
		return fd;
	rc = store_write_full(fd, buf, len, -1);
	if (rc == 0)
		rc = sync_fd(fd);
	if (rc == 0)
		rc = local_publish(l, l->tmpfd, tmp, key);
	if (rc < 0)
		unlinkat(l->tmpfd, tmp, 0);
	close(fd);
	return rc;
}

/* Copy the open file src into a staging file, then publish that. */
static int local_put_copy(struct local *l, const char *key, int src)
{
	char tmp[LOCAL_TMP_NAME_MAX];
	uint64_t off = 0;
	char *buf;
	ssize_t n;
	int fd;
	int rc;

	buf = malloc(LOCAL_COPY_CHUNK);
	if (!buf)
		return -ENOMEM;
	fd = local_tmp_create(l, tmp, sizeof(tmp));
	if (fd < 0) {
		rc = fd;
		goto out_free_buf;
	}
	for (;;) {
		n = pread(src, buf, LOCAL_COPY_CHUNK, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto out_unlink_tmp;
		}
		if (n == 0)
			break;
		rc = store_write_full(fd, buf, (size_t)n, -1);
		if (rc < 0)
			goto out_unlink_tmp;
		off += (uint64_t)n;
	}
	rc = sync_fd(fd);
	if (rc == 0)
		rc = local_publish(l, l->tmpfd, tmp, key);
out_unlink_tmp:
	if (rc < 0)
		unlinkat(l->tmpfd, tmp, 0);
	close(fd);
out_free_buf:
	free(buf);
	return rc;
}

/*
 * The file at path is consumed on success: renamed into place, or, from
 * another file system, copied and then unlinked.
 */
static int local_put_file(struct store *s, const char *key, const char *path)
{
	struct local *l = to_local(s);
	struct stat st;
	int fd;
	int rc;

	if (!local_key_is_valid(key))
		return -EINVAL;
	/* O_NONBLOCK: a FIFO at path must not hang the caller. */
	fd = store_open_source(path, &st);
	if (fd < 0)
		return fd;
	/* The rename must not publish a name whose data is still cached. */
	rc = sync_fd(fd);
	if (rc < 0)
		goto out_close_fd;
	rc = local_publish(l, AT_FDCWD, path, key);
	if (rc == -EXDEV) {
		rc = local_put_copy(l, key, fd);
		if (rc == 0)
			unlink(path);
	}
out_close_fd:
	close(fd);
	return rc;
}

/*
 * Open key's file for reading and fstat it into st.  Returns the fd or
 * -ENOENT (also for a directory, which is not an object), -EINVAL.
 */
static int local_open_obj(struct local *l, const char *key, struct stat *st)
{
	int fd;
	int rc;

	if (!local_key_is_valid(key))
		return -EINVAL;
	/* O_NONBLOCK: a FIFO someone left in the tree must not hang us. */
	fd = openat(l->dirfd, key, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return errno == ENOTDIR ? -ENOENT : -errno;
	if (fstat(fd, st) < 0) {
		rc = -errno;
		goto out_close_fd;
	}
	if (!S_ISREG(st->st_mode)) {
		rc = -ENOENT;
		goto out_close_fd;
	}
	return fd;

out_close_fd:
	close(fd);
	return rc;
}

static int local_get(struct store *s, const char *key, size_t max,
		     char **buf, size_t *len)
{
	struct local *l = to_local(s);
	struct stat st;
	size_t size;
	ssize_t n;
	char *p;
	int fd;
	int rc;

	*buf = NULL;
	*len = 0;
	fd = local_open_obj(l, key, &st);
	if (fd < 0)
		return fd;
	if ((uint64_t)st.st_size > max) {
		rc = -EFBIG;
		goto out_close_fd;
	}
	size = (size_t)st.st_size;
	p = malloc(size + 1);
	if (!p) {
		rc = -ENOMEM;
		goto out_close_fd;
	}
	n = store_pread_full(fd, p, size, 0);
	if (n < 0) {
		free(p);
		rc = (int)n;
		goto out_close_fd;
	}
	p[n] = '\0';
	*buf = p;
	*len = (size_t)n;
	rc = 0;
out_close_fd:
	close(fd);
	return rc;
}

static ssize_t local_get_range(struct store *s, const char *key, void *buf,
			       size_t len, uint64_t off)
{
	struct local *l = to_local(s);
	struct stat st;
	ssize_t n;
	int fd;

	fd = local_open_obj(l, key, &st);
	if (fd < 0)
		return fd;
	if (off >= (uint64_t)st.st_size) {
		n = 0;
		goto out_close_fd;
	}
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	n = store_pread_full(fd, buf, len, off);
out_close_fd:
	close(fd);
	return n;
}

static void local_stat_fill(struct store_stat *out, const struct stat *st)
{
	out->size = (uint64_t)st->st_size;
	out->mtime = (int64_t)st->st_mtim.tv_sec;
	/* a local file's identity: size, mtime and inode */
	snprintf(out->etag, sizeof(out->etag), "\"%llx-%llx-%llx\"",
		 (unsigned long long)st->st_size,
		 (unsigned long long)st->st_mtim.tv_sec * 1000000000ULL +
			 (unsigned long long)st->st_mtim.tv_nsec,
		 (unsigned long long)st->st_ino);
}

static int local_head(struct store *s, const char *key, struct store_stat *st)
{
	struct local *l = to_local(s);
	struct stat sb;

	if (!local_key_is_valid(key))
		return -EINVAL;
	if (fstatat(l->dirfd, key, &sb, 0) < 0)
		return errno == ENOTDIR ? -ENOENT : -errno;
	if (!S_ISREG(sb.st_mode))
		return -ENOENT;
	local_stat_fill(st, &sb);
	return 0;
}

struct local_walk {
	store_list_fn fn;
	void *arg;
	char key[STORE_KEY_MAX + 1];	/* the key being built */
};

static int local_walk_dir(struct local_walk *w, int dfd, size_t keylen,
			  const char *match);

/* An entry vanishing under us is a concurrent del, not an error. */
static bool local_walk_skips(int err)
{
	return err == ENOENT || err == ENOTDIR || err == ELOOP;
}

/*
 * One entry of the directory d, whose key is w->key[0..keylen).  Symbolic
 * links are followed to files but never to
 * directories, so a link cannot make the walk loop.
 */
static int local_walk_entry(struct local_walk *w, DIR *d,
			    const struct dirent *de, size_t keylen)
{
	struct store_stat sst;
	struct stat st;
	int sub;

	if (de->d_type != DT_DIR) {
		if (fstatat(dirfd(d), de->d_name, &st, 0) < 0)
			return local_walk_skips(errno) ? 0 : -errno;
		if (S_ISREG(st.st_mode)) {
			local_stat_fill(&sst, &st);
			return w->fn(w->arg, w->key, &sst);
		}
		if (!S_ISDIR(st.st_mode) || de->d_type != DT_UNKNOWN)
			return 0;
	}
	if (keylen + 1 > STORE_KEY_MAX)
		return 0;	/* nothing below could be a valid key */
	sub = openat(dirfd(d), de->d_name,
		     O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (sub < 0)
		return local_walk_skips(errno) ? 0 : -errno;
	w->key[keylen] = '/';
	return local_walk_dir(w, sub, keylen + 1, NULL);
}

/*
 * Report every object below the directory dfd (which this consumes),
 * whose key so far is w->key[0..keylen).  At the top, match keeps only
 * the names starting with it.
 */
static int local_walk_dir(struct local_walk *w, int dfd, size_t keylen,
			  const char *match)
{
	const struct dirent *de;
	size_t matchlen;
	size_t len;
	DIR *d;
	int rc = 0;

	d = fdopendir(dfd);
	if (!d) {
		rc = -errno;
		close(dfd);
		return rc;
	}
	matchlen = match ? strlen(match) : 0;
	while (rc == 0) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			rc = -errno;
			break;
		}
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 ||
		    local_name_is_hidden(de->d_name))
			continue;
		if (matchlen && strncmp(de->d_name, match, matchlen) != 0)
			continue;
		len = strlen(de->d_name);
		if (keylen + len > STORE_KEY_MAX)
			continue;
		memcpy(w->key + keylen, de->d_name, len + 1);
		rc = local_walk_entry(w, d, de, keylen + len);
	}
	closedir(d);
	return rc;
}

/*
 * The prefix may end inside a name ("datasets/ir"): open the deepest
 * directory it names completely and filter that directory's entries by
 * the rest.
 */
static int local_list(struct store *s, const char *prefix, store_list_fn fn,
		      void *arg)
{
	struct local *l = to_local(s);
	struct local_walk w;
	const char *slash;
	const char *p;
	size_t dirlen;
	int dfd;

	if (!store_prefix_is_valid(prefix))
		return -EINVAL;
	/* DIR/.tmp/ and its like hold no objects, whatever the prefix. */
	slash = strrchr(prefix, '/');
	p = prefix;
	while (slash && p <= slash) {
		if (local_name_is_hidden(p))
			return 0;
		p = strchr(p, '/') + 1;
	}
	w.fn = fn;
	w.arg = arg;
	if (slash) {
		dirlen = (size_t)(slash - prefix);
		memcpy(w.key, prefix, dirlen);
		w.key[dirlen] = '\0';
		dfd = openat(l->dirfd, w.key,
			     O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		w.key[dirlen] = '/';
		dirlen++;
		p = slash + 1;
	} else {
		dfd = openat(l->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		dirlen = 0;
		p = prefix;
	}
	if (dfd < 0)
		return local_walk_skips(errno) ? 0 : -errno;
	return local_walk_dir(&w, dfd, dirlen, p);
}

/*
 * Remove key, then the directories it leaves empty, up to but not
 * including DIR.  A failing rmdir (not empty, or a put just used it) ends
 * the pruning quietly.  Unlike put, del does not sync the directory: a
 * crash right after it may bring the old, complete object back.
 */
static int local_del(struct store *s, const char *key)
{
	struct local *l = to_local(s);
	char path[STORE_KEY_MAX + 1];
	char *slash;

	if (!local_key_is_valid(key))
		return -EINVAL;
	if (unlinkat(l->dirfd, key, 0) < 0) {
		if (errno == EISDIR || errno == ENOTDIR)
			return -ENOENT;
		return -errno;
	}
	strcpy(path, key);
	for (;;) {
		slash = strrchr(path, '/');
		if (!slash)
			break;
		*slash = '\0';
		if (unlinkat(l->dirfd, path, AT_REMOVEDIR) < 0)
			break;
	}
	return 0;
}

static int local_open_fd(struct store *s, const char *key)
{
	struct local *l = to_local(s);
	struct stat st;
	int flags;
	int fd;
	int rc;

	fd = local_open_obj(l, key, &st);
	if (fd < 0)
		return fd;
	/* The caller gets an ordinary blocking fd, as from open(2). */
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

static int local_tmp_path(struct store *s, char *out, size_t outlen)
{
	struct local *l = to_local(s);
	char name[LOCAL_TMP_NAME_MAX];
	int n;

	local_tmp_name(l, name, sizeof(name));
	n = snprintf(out, outlen, "%s/" LOCAL_HIDDEN "/%s", l->dir, name);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

static void local_close(struct store *s)
{
	struct local *l = to_local(s);

	close(l->tmpfd);
	close(l->dirfd);
	free(l->name);
	free(l->dir);
	free(l);
}

static const struct store_ops local_ops = {
	.get = local_get,
	.get_range = local_get_range,
	.put = local_put,
	.put_file = local_put_file,
	.head = local_head,
	.list = local_list,
	.del = local_del,
	.open_fd = local_open_fd,
	.tmp_path = local_tmp_path,
	.close = local_close,
};

/* A salt for staging names; the clock will do if getrandom cannot. */
static uint64_t local_salt(void)
{
	struct timespec ts;
	uint64_t salt;

	if (getrandom(&salt, sizeof(salt), GRND_NONBLOCK) == sizeof(salt))
		return salt;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int store_local_open(const char *dir, struct store **out)
{
	struct local *l;
	struct stat st;
	size_t n;
	int rc;

	*out = NULL;
	if (stat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (access(dir, W_OK) < 0)
		return -errno;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->base.ops = &local_ops;
	/* Absolute, so tmp_path stays right after a daemon's chdir("/"). */
	l->dir = realpath(dir, NULL);
	if (!l->dir) {
		rc = -errno;
		goto out_free_l;
	}
	n = strlen("local:") + strlen(l->dir) + 1;
	l->name = malloc(n);
	if (!l->name) {
		rc = -ENOMEM;
		goto out_free_dir;
	}
	snprintf(l->name, n, "local:%s", l->dir);
	l->base.name = l->name;
	l->dirfd = open(l->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (l->dirfd < 0) {
		rc = -errno;
		goto out_free_name;
	}
	if (mkdirat(l->dirfd, LOCAL_HIDDEN, 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		goto out_close_dirfd;
	}
	l->tmpfd = openat(l->dirfd, LOCAL_HIDDEN,
			  O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (l->tmpfd < 0) {
		rc = -errno;
		goto out_close_dirfd;
	}
	l->salt = local_salt();
	atomic_init(&l->seq, 0);
	*out = &l->base;
	return 0;

out_close_dirfd:
	close(l->dirfd);
out_free_name:
	free(l->name);
out_free_dir:
	free(l->dir);
out_free_l:
	free(l);
	return rc;
}
