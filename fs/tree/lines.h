/* SPDX-License-Identifier: MIT */
/*
 * Files whose writes are lines, each taken by the file as it completes
 * (lines.c): features/<fs>/events and deployments/<d>/feedback.  A
 * write's complete lines are all taken, or none (the write fails, with
 * the reason in .mlfs/errors); a line without its newline waits for the
 * next write, or for close.  Reads find nothing; `>` and O_TRUNC are
 * fine.  The file's own work is one op.
 */
#ifndef MLFS_FS_LINES_H
#define MLFS_FS_LINES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "node.h"

#define LINES_MAX_LINE ((size_t)1 << 20) /* bytes of one line */

struct lines_ops {
	/*
	 * take the complete lines of text (all of it if final): 0 with
	 * *used the bytes taken (0: none yet), or -errno with pb (none
	 * taken).  Called under the handle's lock.
	 */
	int (*take)(struct fs_file *f, void *st, const char *text, size_t len,
		    bool final, size_t *used, struct problem *pb);
	/* the number of the line being written, for one too long */
	unsigned (*next_line)(void *st);
	void (*free)(void *st);
	/* optional: at each close, after the last line was taken, commit
	 * what the handle took (its result is close's) */
	int (*commit)(struct fs_file *f, void *st, const struct fs_ctx *ctx,
		      struct problem *pb);
};

/* open: f takes lines with ops on st (taken: freed by ops->free, even
 * on failure).  The other calls are the node_type's ops of such a file. */
int lines_open(struct fs_file *f, const struct lines_ops *ops, void *st);
ssize_t lines_write(struct fs_file *f, const char *buf, size_t size,
		    off_t off);
int lines_flush(struct fs_file *f, const struct fs_ctx *ctx,
		struct problem *pb);
int lines_read(struct fs_file *f, size_t size, off_t off,
	       struct fs_reply *r);
int lines_truncate(struct fs_file *f, off_t size);
void lines_release(struct fs_file *f);

#endif
