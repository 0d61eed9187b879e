/* SPDX-License-Identifier: MIT */
/*
 * Stream files that answer what is written to them (answers.c):
 * models/<m>/predict and features/<fs>/join.  Rows go in with write(2),
 * answers come out with read(2) on the same handle; a handle that only
 * reads gets the answers its shell session's last writer got (`echo rows
 * > f; cat f`) for a minute.  The file's own work is three ops.
 */
#ifndef MLFS_FS_ANSWERS_H
#define MLFS_FS_ANSWERS_H

#include <sys/types.h>

#include "node.h"
#include "strbuf.h"

struct fs;

struct answer_ops {
	/* answer every complete row of buf; append answers to out; 0, or
	 * -errno failing that write (-EIO: answered with error lines) */
	int (*write)(void *st, const char *buf, size_t len, struct strbuf *out);
	/* answer a last row without its newline */
	int (*finish)(void *st, struct strbuf *out);
	void (*free)(void *st);
	/* optional: make what the handle did durable (close, fsync) */
	int (*sync)(void *st);
};

/*
 * answers_start: the sessions' answers of fs (fs->sessions), before
 * requests arrive; answers_stop frees them once none can; NULL-safe.
 */
int answers_start(struct fs *fs);
void answers_stop(struct fs *fs);

/* open: f answers with ops on st (taken: freed by ops->free, even on
 * failure).  The other calls are the node_type's ops of such a file. */
int answers_open(struct fs_file *f, const struct fs_ctx *ctx,
		 const struct answer_ops *ops, void *st);
ssize_t answers_write(struct fs_file *f, const char *buf, size_t size,
		      off_t off);
int answers_read(struct fs_file *f, size_t size, off_t off,
		 struct fs_reply *r);
int answers_flush(struct fs_file *f, const struct fs_ctx *ctx,
		  struct problem *pb);
int answers_fsync(struct fs_file *f, const struct fs_ctx *ctx);
int answers_truncate(struct fs_file *f, off_t size);
void answers_release(struct fs_file *f);

#endif
