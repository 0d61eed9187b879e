/* SPDX-License-Identifier: MIT */
/*
 * datasets/<d>/v<n>/next and datasets/<d>/next (next.c): a read that
 * blocks until a newer version exists, then names the oldest one.
 */
#ifndef MLFS_TREE_NEXT_H
#define MLFS_TREE_NEXT_H

#include <stddef.h>
#include <sys/types.h>

struct fs;
struct fs_reply;
struct repo_kind;

/*
 * next_read: answer r with the oldest version of name newer than ver
 * ("v7\n"; ver 0: newer than latest), parking the read until one is
 * published if there is none; end of file past off 0 and once the
 * object is removed.  next_start/next_stop: from main(), around the
 * mount's life (the repository then tells of new versions).
 */
int next_read(struct fs *fs, const struct repo_kind *k, const char *name,
	      unsigned ver, struct fs_reply *r, size_t size, off_t off);
void next_start(struct fs *fs);
void next_stop(struct fs *fs);

#endif
