/* SPDX-License-Identifier: MIT */
/*
 * The store interface's front door: thin wrappers that call through a
 * store's ops table, so callers read store_get(s, ...) whatever the
 * backend, the one definition of a valid key and of a valid list prefix,
 * and a read helper the backends share (store_i.h).  Nothing here keeps
 * state; any thread may enter, and thread safety is the backend's.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "store_i.h"

int store_get(struct store *s, const char *key, size_t max, char **buf,
	      size_t *len)
{
	return s->ops->get(s, key, max, buf, len);
}

ssize_t store_get_range(struct store *s, const char *key, void *buf,
			size_t len, uint64_t off)
{
	return s->ops->get_range(s, key, buf, len, off);
}

/* What store_get_stream reads at a time from a store without streams. */
#define STORE_STREAM_PIECE (1024 * 1024)

ssize_t store_get_stream(struct store *s, const char *key, uint64_t off,
			 uint64_t len, store_sink_fn fn, void *arg)
{
	uint64_t done = 0;
	size_t want;
	ssize_t n = 0;
	char *buf;
	int rc;

	if (s->ops->get_stream)
		return s->ops->get_stream(s, key, off, len, fn, arg);
	if (len > SSIZE_MAX || off > UINT64_MAX - len)
		return -EINVAL;
	buf = malloc(len < STORE_STREAM_PIECE ? (len ? len : 1)
					      : STORE_STREAM_PIECE);
	if (!buf)
		return -ENOMEM;
	while (done < len) {
		want = len - done < STORE_STREAM_PIECE ? (size_t)(len - done)
						       : STORE_STREAM_PIECE;
		n = s->ops->get_range(s, key, buf, want, off + done);
		if (n <= 0)
			break;
		rc = fn(arg, off + done, buf, (size_t)n);
		if (rc < 0) {
			n = rc;
			break;
		}
		done += (uint64_t)n;
		if ((size_t)n < want)
			break;	/* the end of the object */
	}
	free(buf);
	return n < 0 ? n : (ssize_t)done;
}

int store_put(struct store *s, const char *key, const void *buf, size_t len)
{
	return s->ops->put(s, key, buf, len);
}

int store_put_file(struct store *s, const char *key, const char *path)
{
	return s->ops->put_file(s, key, path);
}

int store_create(struct store *s, const char *key, const void *buf,
		 size_t len)
{
	if (!s->ops->create)
		return s->ops->put(s, key, buf, len);
	return s->ops->create(s, key, buf, len);
}

int store_head(struct store *s, const char *key, struct store_stat *st)
{
	return s->ops->head(s, key, st);
}

int store_list(struct store *s, const char *prefix, store_list_fn fn,
	       void *arg)
{
	return s->ops->list(s, prefix, fn, arg);
}

int store_del(struct store *s, const char *key)
{
	return s->ops->del(s, key);
}

int store_open_fd(struct store *s, const char *key)
{
	return s->ops->open_fd(s, key);
}

int store_tmp_path(struct store *s, char *out, size_t outlen)
{
	return s->ops->tmp_path(s, out, outlen);
}

void store_close(struct store *s)
{
	if (!s)
		return;
	s->ops->close(s);
}

bool store_key_is_valid(const char *key)
{
	const char *p;
	size_t len;
	size_t n;

	if (!key)
		return false;
	/* Bounded: a huge key must not cost a full strlen. */
	len = strnlen(key, STORE_KEY_MAX + 1);
	if (len == 0 || len > STORE_KEY_MAX)
		return false;
	p = key;
	for (;;) {
		n = strcspn(p, "/");
		if (n == 0)
			return false;	/* leading '/', "//" or trailing '/' */
		if (p[0] == '.' && (n == 1 || (n == 2 && p[1] == '.')))
			return false;
		if (p[n] == '\0')
			return true;
		p += n + 1;
	}
}

bool store_prefix_is_valid(const char *prefix)
{
	const char *p;
	size_t n;

	if (!prefix)
		return false;
	if (strnlen(prefix, STORE_KEY_MAX + 1) > STORE_KEY_MAX)
		return false;
	p = prefix;
	for (;;) {
		n = strcspn(p, "/");
		if (p[n] == '\0')
			return true;	/* the partial last component */
		if (n == 0)
			return false;
		if (p[0] == '.' && (n == 1 || (n == 2 && p[1] == '.')))
			return false;
		p += n + 1;
	}
}

ssize_t store_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = pread(fd, p + got, len - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/*
 * Bytes a write(2) takes at most.  On the VM of doc/performance.md
 * ("Eleventh session") 1.1 GB written into new page cache 8 MiB a call
 * took 0.3 to 2.7 s, 1 MiB a call 0.26 to 1.8 s, 64 KiB a call 0.31 to
 * 0.43 s, the time all in the kernel's copy into the new folios: bigger
 * writes get bigger folios, likely from the free blocks the balloon's
 * page reporting gave back to the host, every page of which then faults
 * on the host when first written.
 */
#define WRITE_PIECE ((size_t)64 << 10)

int store_write_full(int fd, const void *buf, size_t len, int64_t off)
{
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		size_t piece = len < WRITE_PIECE ? len : WRITE_PIECE;

		n = off < 0 ? write(fd, p, piece)
			    : pwrite(fd, p, piece, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		if (off >= 0)
			off += n;
	}
	return 0;
}

int store_append_only(int fd, bool on)
{
	int flags;

	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) < 0)
		return -errno;
	flags = on ? flags | FS_APPEND_FL : flags & ~FS_APPEND_FL;
	return ioctl(fd, FS_IOC_SETFLAGS, &flags) < 0 ? -errno : 0;
}

int store_unlinkat(int dirfd, const char *name)
{
	int fd;

	if (unlinkat(dirfd, name, 0) == 0)
		return 0;
	if (errno != EPERM)
		return -errno;
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
				   O_CLOEXEC);
	if (fd < 0)
		return -errno;
	store_append_only(fd, false);
	close(fd);
	return unlinkat(dirfd, name, 0) < 0 ? -errno : 0;
}

int store_open_source(const char *path, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	int rc;

	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0)
		rc = -errno;
	else if (!S_ISREG(st->st_mode))
		rc = -EINVAL;
	else
		return fd;
	close(fd);
	return rc;
}
