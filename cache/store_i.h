/* SPDX-License-Identifier: MIT */
/*
 * Declarations shared by the store backends in cache/ and nobody else.
 */
#ifndef MLFS_CACHE_STORE_I_H
#define MLFS_CACHE_STORE_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Longest valid key in bytes, not counting the NUL. */
#define STORE_KEY_MAX 1024

/*
 * store_prefix_is_valid: true if prefix could start a valid key, so that
 * list() may search for it: "" (everything), at most STORE_KEY_MAX bytes,
 * and every complete component (those followed by '/') non-empty and not
 * "." or "..".  The last, partial component may be anything.  Backends
 * answer -EINVAL for a prefix failing this.
 */
bool store_prefix_is_valid(const char *prefix);

/*
 * store_pread_full: read up to len bytes at off from fd, retrying short
 * reads and EINTR.  Returns the bytes read, fewer than len only at the end
 * of the file, or -errno.
 */
ssize_t store_pread_full(int fd, void *buf, size_t len, uint64_t off);

/*
 * store_open_source: open the file a put_file() takes, read-only; it must
 * be a regular file (-EINVAL otherwise).  The descriptor, with *st, or
 * -errno.
 */
int store_open_source(const char *path, struct stat *st);

#endif
