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
 *                  write returns; reads what it has had
 *     predictions  the prediction store (JSON lines; tail -f)
 *     metrics      a JSON line per candidate per monitor.interval (tail -f)
 *     metrics.prom the same, and drift, for Prometheus
 *     metrics.svg  the last 24 hours of it drawn (deployplot.c)
 *     drift        each input's drift, the live window against the
 *                  reference (made when read)
 *     traffic      weights and requests per candidate; write
 *                  `<model@v> <weight>` lines
 *     ctl          promote, rollback, pause, resume
 *     status       serving, paused, or rolled back: <why>
 *     log          a line per change
 *     v<n>/spec    a revision
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answers.h"
#include "deploy.h"
#include "deployments.h"
#include "fs.h"
#include "lines.h"
#include "objects.h"
#include "repo.h"

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

/* --- feedback: lines taken as they complete (lines.c) --- */

struct fhandle {
	unsigned line; /* lines taken so far */
};

/* The complete lines of text (all if final): every label durable, or
 * none taken. */
static int feedback_take(struct fs_file *f, void *st, const char *text,
			 size_t len, bool final, size_t *used,
			 struct problem *pb)
{
	struct fhandle *h = st;
	const char *end = final ? text + len : memrchr(text, '\n', len);
	size_t lines = 0;
	int rc;

	*used = 0;
	if (!end || !len)
		return 0;
	*used = (size_t)(end - text) + (!final);
	for (size_t i = 0; i < *used; i++)
		lines += text[i] == '\n';
	rc = deploy_feedback(f->node->fs, obj_name(f->node), text,
			     (size_t)(end - text), h->line + 1, pb);
	if (rc < 0) {
		*used = 0;
		return rc;
	}
	h->line += (unsigned)lines + (final && !lines);
	return 0;
}

static unsigned feedback_next_line(void *st)
{
	return ((struct fhandle *)st)->line + 1;
}

static const struct lines_ops feedback_ops = { feedback_take,
					       feedback_next_line, free, NULL };

/* Read: what feedback has had (received, labelled, unknown, repeated). */
static int feedback_read(struct fs_file *f, size_t size, off_t off,
			 struct fs_reply *r)
{
	struct strbuf sb = { 0 };
	int rc = deploy_show_feedback(f->node->fs, obj_name(f->node), &sb);

	if (rc == 0 && (size_t)off < sb.len)
		rc = fs_reply_buf(r, sb.buf + off,
				  sb.len - (size_t)off < size ? sb.len - (size_t)off
							      : size);
	else if (rc == 0)
		rc = fs_reply_buf(r, NULL, 0);
	sb_free(&sb);
	return rc;
}

static int feedback_open(struct fs_file *f, const struct fs_ctx *ctx)
{
	struct fhandle *h = calloc(1, sizeof(*h));

	(void)ctx;
	if (!h)
		return -ENOMEM;
	return lines_open(f, &feedback_ops, h);
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

/* A stream of the deployment's (deploy.h), read where asked. */
static int stream_read(struct fs_file *f, size_t size, off_t off,
		       struct fs_reply *r, enum dep_stream_file which)
{
	char *buf = malloc(size ? size : 1);
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	n = deploy_file_read(f->node->fs, obj_name(f->node), which, buf, size,
			     (uint64_t)off);
	if (n < 0) {
		free(buf);
		return (int)n;
	}
	fs_reply_buf(r, buf, (size_t)n);
	free(buf);
	return 0;
}

static int stream_size(struct node *n, struct stat *st,
		       enum dep_stream_file which)
{
	uint64_t size;
	int rc = obj_attr(n, st, false);

	if (rc == 0)
		rc = deploy_file_size(n->fs, obj_name(n), which, &size);
	if (rc == 0)
		st->st_size = (off_t)size;
	return rc;
}

#define STREAM_FILE(fn, which)                                                \
	static int fn##_read(struct fs_file *f, size_t size, off_t off,       \
			     struct fs_reply *r)                              \
	{                                                                     \
		return stream_read(f, size, off, r, which);                   \
	}                                                                     \
	static int fn##_getattr(struct node *n, struct stat *st)              \
	{                                                                     \
		return stream_size(n, st, which);                             \
	}
STREAM_FILE(predictions, DEP_PREDICTIONS)
STREAM_FILE(metrics, DEP_METRICS)
STREAM_FILE(alerts, DEP_ALERTS)

static int svg_show(struct node *n, struct strbuf *out)
{
	return deploy_show_svg(n->fs, obj_name(n), out);
}

static int drift_show(struct node *n, struct strbuf *out)
{
	return deploy_show_drift(n->fs, obj_name(n), out);
}

static int prom_show(struct node *n, struct strbuf *out)
{
	return deploy_show_prom(n->fs, obj_name(n), out);
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
	  .read = feedback_read, .write = lines_write, .flush = lines_flush,
	  .truncate = lines_truncate, .release = lines_release,
	  .getattr = stream_getattr },
	{ "predictions", S_IFREG | 0440, NODE_F_STREAM,
	  .open = predictions_open, .read = predictions_read,
	  .getattr = predictions_getattr },
	{ "metrics", S_IFREG | 0444, NODE_F_STREAM,
	  .open = predictions_open, .read = metrics_read,
	  .getattr = metrics_getattr },
	{ "metrics.prom", S_IFREG | 0444, NODE_F_VOLATILE, .show = prom_show,
	  .getattr = obj_file_getattr },
	{ "metrics.svg", S_IFREG | 0444, NODE_F_VOLATILE, .show = svg_show,
	  .getattr = obj_file_getattr },
	{ "drift", S_IFREG | 0444, NODE_F_VOLATILE, .show = drift_show,
	  .getattr = obj_file_getattr },
	{ "alerts", S_IFREG | 0444, NODE_F_STREAM,
	  .open = predictions_open, .read = alerts_read,
	  .getattr = alerts_getattr },
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
