/* SPDX-License-Identifier: MIT */
/*
 * Line streams (lines.h): the handle keeps the part of a line not ended
 * yet; each write appends to it and offers its complete lines to the
 * file's take op, and a refusal takes back what that write appended.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "lines.h"

struct lhandle {
	pthread_mutex_t lock;
	const struct lines_ops *ops;
	void *st;
	struct strbuf part; /* text not taken yet */
};

int lines_open(struct fs_file *f, const struct lines_ops *ops, void *st)
{
	struct lhandle *h = calloc(1, sizeof(*h));

	if (!h) {
		ops->free(st);
		return -ENOMEM;
	}
	pthread_mutex_init(&h->lock, NULL);
	h->ops = ops;
	h->st = st;
	f->priv = h;
	f->direct_io = true;
	return 0;
}

/* The taken bytes off the front of the part. */
static void drop_used(struct lhandle *h, size_t used)
{
	memmove(h->part.buf, h->part.buf + used, h->part.len - used);
	h->part.len -= used;
}

ssize_t lines_write(struct fs_file *f, const char *buf, size_t size,
		    off_t off)
{
	struct lhandle *h = f->priv;
	struct problem pb = { 0 };
	size_t used = 0;
	int rc;

	(void)off; /* taken in the order written */
	pthread_mutex_lock(&h->lock);
	if (h->part.len + size > LINES_MAX_LINE &&
	    !memchr(buf, '\n', size)) {
		rc = problem_set(&pb, h->ops->next_line(h->st), 0,
				 "a line longer than %zu bytes",
				 LINES_MAX_LINE);
	} else if (sb_append(&h->part, buf, size) < 0) {
		rc = -ENOMEM;
	} else {
		rc = h->ops->take(f, h->st, h->part.buf, h->part.len, false,
				  &used, &pb);
		if (rc < 0)
			h->part.len -= size; /* none of this write */
		else
			drop_used(h, used);
	}
	pthread_mutex_unlock(&h->lock);
	if (rc < 0 && (pb.msg[0] || pb.line)) {
		snprintf(pb.path, sizeof(pb.path), "%s", f->node->path);
		fs_problem(f->node->fs, f->uid, &pb);
	}
	return rc < 0 ? rc : (ssize_t)size;
}

/* A last line without its newline, at close. */
int lines_flush(struct fs_file *f, const struct fs_ctx *ctx,
		struct problem *pb)
{
	struct lhandle *h = f->priv;
	size_t used = 0;
	int rc = 0;

	pthread_mutex_lock(&h->lock);
	if (h->part.len) {
		rc = h->ops->take(f, h->st, h->part.buf, h->part.len, true,
				  &used, pb);
		if (rc == 0)
			drop_used(h, used);
	}
	if (rc == 0 && h->ops->commit)
		rc = h->ops->commit(f, h->st, ctx, pb);
	pthread_mutex_unlock(&h->lock);
	return rc;
}

int lines_read(struct fs_file *f, size_t size, off_t off, struct fs_reply *r)
{
	(void)f;
	(void)size;
	(void)off;
	return fs_reply_buf(r, NULL, 0); /* write-only in effect */
}

int lines_truncate(struct fs_file *f, off_t size)
{
	(void)f;
	(void)size;
	return 0; /* `>` and O_TRUNC are fine: lines are appended */
}

void lines_release(struct fs_file *f)
{
	struct lhandle *h = f->priv;

	if (!h)
		return;
	h->ops->free(h->st);
	sb_free(&h->part);
	pthread_mutex_destroy(&h->lock);
	free(h);
}
