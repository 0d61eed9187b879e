/* SPDX-License-Identifier: MIT */
/*
 * deployments/: a kind of versioned object (repo_deployments) whose
 * versions are the revisions of its spec.  mkdir makes one; each
 * accepted spec is a revision v<n>/ (what is shared with datasets/ and
 * models/ is objects.c's).  Routing, the prediction store and the
 * controls are deploy.c's; this file turns files into them.  Any FUSE
 * worker.
 *
 *   deployments/<d>/
 *     spec         the latest revision's; write one to make the next
 *     predict      rows in, answers out (as models/<m>/predict), each
 *                  with a request id, routed by the strategy
 *     feedback     `id,truth` rows or JSON lines: durable when the
 *                  write returns
 *     predictions  the prediction store (JSON lines; tail -f)
 *     traffic      weights and requests per candidate; write
 *                  `<model@v> <weight>` lines
 *     ctl          promote, rollback, pause, resume
 *     status       serving, paused, or rolled back: <why>
 *     log          a line per change
 *     v<n>/spec    a revision
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answers.h"
#include "deploy.h"
#include "deployments.h"
#include "fs.h"
#include "objects.h"
#include "repo.h"

#define FEEDBACK_MAX_LINE ((size_t)1 << 20)

/* The latest revision's spec (empty before the first), or v<n>'s. */
static int spec_show(struct node *n, struct strbuf *out)
{
	return obj_field_show(n, 0, "spec", "", out);
}

static int vspec_show(struct node *n, struct strbuf *out)
{
	return obj_field_show(n, obj_ver(n), "spec", NULL, out);
}

/* Judged in the write that completes the JSON value (bash ignores close):
 * the models too, each scoring its sample. */
static int spec_check(struct node *n, const char *text, size_t len,
		      const struct fs_ctx *ctx, struct problem *pb)
{
	return deploy_spec(n->fs, obj_name(n), text, len, false, false, ctx,
			   pb);
}

static int spec_store(struct node *n, const char *text, size_t len,
		      const struct fs_ctx *ctx, struct problem *pb)
{
	return deploy_spec(n->fs, obj_name(n), text, len, true, true, ctx, pb);
}

/* --- predict: an answer stream (answers.c) routed by deploy.c --- */

static int p_write(void *st, const char *buf, size_t len, struct strbuf *out)
{
	return deploy_stream_write(st, buf, len, out);
}

static int p_finish(void *st, struct strbuf *out)
{
	return deploy_stream_finish(st, out);
}

static void p_free(void *st)
{
	deploy_stream_free(st);
}

static int p_sync(void *st)
{
	return deploy_stream_sync(st);
}

static const struct answer_ops predict_ops = { p_write, p_finish, p_free,
					       p_sync };

static void say(struct node *n, uid_t uid, const char *msg)
{
	struct problem pb = { 0 };

	snprintf(pb.path, sizeof(pb.path), "%s", n->path);
	problem_set(&pb, 0, 0, "%s", msg);
	fs_problem(n->fs, uid, &pb);
}

static int predict_open(struct fs_file *f, const struct fs_ctx *ctx)
{
	struct dstream *s;
	char msg[400] = "";
	int rc;

	rc = deploy_stream_open(f->node->fs, obj_name(f->node), ctx, &s, msg,
				sizeof(msg));
	if (rc < 0) {
		if (msg[0])
			say(f->node, f->uid, msg);
		return rc == -ENOENT && msg[0] ? -ENODATA : rc;
	}
	return answers_open(f, ctx, &predict_ops, s);
}

static int stream_getattr(struct node *n, struct stat *st)
{
	int rc = obj_attr(n, st, false);

	st->st_size = 0; /* a stream: read until end of file */
	return rc;
}

/* --- feedback: lines taken as they complete --- */

struct fhandle {
	pthread_mutex_t lock;
	struct strbuf part; /* a line not ended yet */
	unsigned line;      /* lines taken so far */
};

static int feedback_open(struct fs_file *f, const struct fs_ctx *ctx)
{
	struct fhandle *h = calloc(1, sizeof(*h));

	(void)ctx;
	if (!h)
		return -ENOMEM;
	pthread_mutex_init(&h->lock, NULL);
	f->priv = h;
	f->direct_io = true;
	return 0;
}

/* The complete lines of the handle's text (all if final): taken, or
 * none.  Under h->lock. */
static int feedback_take(struct fs_file *f, struct fhandle *h, bool final,
			 struct problem *pb)
{
	const char *end = final ? h->part.buf + h->part.len
				: memrchr(h->part.buf, '\n', h->part.len);
	size_t used, lines = 0;
	int rc;

	if (!end || !h->part.len)
		return 0;
	used = (size_t)(end - h->part.buf) + (!final);
	for (size_t i = 0; i < used; i++)
		lines += h->part.buf[i] == '\n';
	rc = deploy_feedback(f->node->fs, obj_name(f->node), h->part.buf,
			     (size_t)(end - h->part.buf), h->line + 1, pb);
	if (rc < 0)
		return rc;
	h->line += (unsigned)lines + (final && used && !lines);
	memmove(h->part.buf, h->part.buf + used, h->part.len - used);
	h->part.len -= used;
	return 0;
}

static ssize_t feedback_write(struct fs_file *f, const char *buf, size_t size,
			      off_t off)
{
	struct fhandle *h = f->priv;
	struct problem pb = { 0 };
	int rc;

	(void)off; /* taken in the order written */
	pthread_mutex_lock(&h->lock);
	if (h->part.len + size > FEEDBACK_MAX_LINE &&
	    !memchr(buf, '\n', size)) {
		rc = problem_set(&pb, h->line + 1, 0,
				 "a line longer than %zu bytes",
				 FEEDBACK_MAX_LINE);
	} else if (sb_append(&h->part, buf, size) < 0) {
		rc = -ENOMEM;
	} else {
		rc = feedback_take(f, h, false, &pb);
		if (rc < 0)
			h->part.len -= size; /* none of this write */
	}
	pthread_mutex_unlock(&h->lock);
	if (rc < 0 && (pb.msg[0] || pb.line)) {
		snprintf(pb.path, sizeof(pb.path), "%s", f->node->path);
		fs_problem(f->node->fs, f->uid, &pb);
	}
	return rc < 0 ? rc : (ssize_t)size;
}

static int feedback_flush(struct fs_file *f, const struct fs_ctx *ctx,
			  struct problem *pb)
{
	struct fhandle *h = f->priv;
	int rc;

	(void)ctx;
	pthread_mutex_lock(&h->lock);
	rc = feedback_take(f, h, true, pb);
	pthread_mutex_unlock(&h->lock);
	return rc;
}

static int nothing_read(struct fs_file *f, size_t size, off_t off,
			struct fs_reply *r)
{
	(void)f;
	(void)size;
	(void)off;
	return fs_reply_buf(r, NULL, 0); /* write-only in effect */
}

static int nothing_truncate(struct fs_file *f, off_t size)
{
	(void)f;
	(void)size;
	return 0; /* `>` and O_TRUNC are fine: lines are appended */
}

static void feedback_release(struct fs_file *f)
{
	struct fhandle *h = f->priv;

	if (!h)
		return;
	sb_free(&h->part);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* --- predictions: the store, read where asked --- */

static int predictions_open(struct fs_file *f, const struct fs_ctx *ctx)
{
	(void)ctx;
	if ((f->flags & O_ACCMODE) != O_RDONLY)
		return -EACCES;
	f->direct_io = true;
	return 0;
}

static int predictions_read(struct fs_file *f, size_t size, off_t off,
			    struct fs_reply *r)
{
	char *buf = malloc(size ? size : 1);
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	n = deploy_log_read(f->node->fs, obj_name(f->node), buf, size,
			    (uint64_t)off);
	if (n < 0) {
		free(buf);
		return (int)n;
	}
	fs_reply_buf(r, buf, (size_t)n);
	free(buf);
	return 0;
}

static int predictions_getattr(struct node *n, struct stat *st)
{
	uint64_t size;
	int rc = obj_attr(n, st, false);

	if (rc == 0)
		rc = deploy_log_size(n->fs, obj_name(n), &size);
	if (rc == 0)
		st->st_size = (off_t)size;
	return rc;
}

/* --- the controls --- */

static int traffic_show(struct node *n, struct strbuf *out)
{
	return deploy_show_traffic(n->fs, obj_name(n), out);
}

static int traffic_check(struct node *n, const char *text, size_t len,
			 const struct fs_ctx *ctx, struct problem *pb)
{
	const char *nl = memrchr(text, '\n', len);

	/* the complete lines so far */
	return nl ? deploy_traffic(n->fs, obj_name(n), text,
				   (size_t)(nl - text), true, ctx, pb)
		  : 0;
}

static int traffic_store(struct node *n, const char *text, size_t len,
			 const struct fs_ctx *ctx, struct problem *pb)
{
	return deploy_traffic(n->fs, obj_name(n), text, len, false, ctx, pb);
}

static int ctl_show(struct node *n, struct strbuf *out)
{
	(void)n;
	return sb_puts(out, "promote | rollback | pause | resume\n");
}

static int ctl_check(struct node *n, const char *text, size_t len,
		     const struct fs_ctx *ctx, struct problem *pb)
{
	if (!memchr(text, '\n', len))
		return 0;
	return deploy_ctl(n->fs, obj_name(n), text, len, true, ctx, pb);
}

static int ctl_store(struct node *n, const char *text, size_t len,
		     const struct fs_ctx *ctx, struct problem *pb)
{
	return deploy_ctl(n->fs, obj_name(n), text, len, false, ctx, pb);
}

static int status_show(struct node *n, struct strbuf *out)
{
	return deploy_show_status(n->fs, obj_name(n), out);
}

static int log_show(struct node *n, struct strbuf *out)
{
	return deploy_show_changes(n->fs, obj_name(n), out);
}

static const struct node_type version_files[] = {
	{ "spec", S_IFREG | 0444, NODE_F_IMMUTABLE, .show = vspec_show,
	  .getattr = obj_file_getattr },
	{ NULL },
};

static const struct node_type version_type = {
	NULL, S_IFDIR | 0555, 0, .children = version_files,
	.getattr = obj_version_getattr, .refuse = "revisions are immutable",
};

/*
 * Modes: anyone who may enter the deployment may score with it; its
 * feedback (which moves bandits and rollbacks) is the owner's and
 * group's to give; its log of inputs is theirs to read.
 */
static const struct node_type deployment_files[] = {
	{ "spec", S_IFREG | 0644, 0, .show = spec_show, .store = spec_store,
	  .check = spec_check, .getattr = obj_file_getattr },
	{ "predict", S_IFREG | 0666, NODE_F_SCRATCH, .open = predict_open,
	  .read = answers_read, .write = answers_write,
	  .truncate = answers_truncate, .flush = answers_flush,
	  .fsync = answers_fsync, .release = answers_release,
	  .getattr = stream_getattr },
	{ "feedback", S_IFREG | 0620, NODE_F_STREAM, .open = feedback_open,
	  .read = nothing_read, .write = feedback_write,
	  .flush = feedback_flush, .truncate = nothing_truncate,
	  .release = feedback_release, .getattr = stream_getattr },
	{ "predictions", S_IFREG | 0440, NODE_F_STREAM,
	  .open = predictions_open, .read = predictions_read,
	  .getattr = predictions_getattr },
	{ "traffic", S_IFREG | 0644, NODE_F_VOLATILE, .show = traffic_show,
	  .store = traffic_store, .check = traffic_check,
	  .getattr = obj_file_getattr },
	{ "ctl", S_IFREG | 0644, 0, .show = ctl_show, .store = ctl_store,
	  .check = ctl_check, .getattr = obj_file_getattr },
	{ "status", S_IFREG | 0444, NODE_F_VOLATILE, .show = status_show,
	  .getattr = obj_file_getattr },
	{ "log", S_IFREG | 0444, NODE_F_VOLATILE, .show = log_show,
	  .getattr = obj_file_getattr },
	{ NULL },
};

static int deployment_lookup(struct node *dir, const char *name,
			     const struct node_type **type)
{
	return obj_lookup(dir, name, &version_type, type);
}

static int deployment_list(struct node *dir, node_fill_fn fill, void *ctx)
{
	return obj_list(dir, &version_type, fill, ctx);
}

static const struct node_type deployment_type = {
	NULL, S_IFDIR | 0755, NODE_F_DYNAMIC, .children = deployment_files,
	.lookup = deployment_lookup, .list = deployment_list,
	.drop = obj_drop, .symlink = obj_symlink, .unlink = obj_unlink,
	.rename = obj_rename, .getattr = obj_dir_getattr, .chmod = obj_chmod,
};

static int deployments_lookup(struct node *dir, const char *name,
			      const struct node_type **type)
{
	return obj_top_lookup(dir, name, &deployment_type, type);
}

static int deployments_list(struct node *dir, node_fill_fn fill, void *ctx)
{
	return obj_top_list(dir, &deployment_type, fill, ctx);
}

/* rmdir deployments/<d>: the deployment, then what is held of it */
static int deployments_drop(struct node *dir, const char *name,
			    const struct fs_ctx *ctx)
{
	int rc = obj_top_drop(dir, name, ctx);

	if (rc == 0)
		deploy_forget(dir->fs, name);
	return rc;
}

const struct node_type deployments_type = {
	"deployments", S_IFDIR | 01777, NODE_F_DYNAMIC,
	.lookup = deployments_lookup, .list = deployments_list,
	.make = obj_top_make, .drop = deployments_drop,
	.kind = &repo_deployments,
};
