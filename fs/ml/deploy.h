/* SPDX-License-Identifier: MIT */
/*
 * Deployments (DESIGN.md §4): a spec's candidates held in memory, rows
 * routed among them by the strategy, every answer given a request id and
 * logged in the prediction store, feedback matched to the answers, and
 * the controls (traffic, ctl, status).  No FUSE here: fs/tree/
 * deployments.c serves it.
 *
 * Store layout, beside the repository's record and revisions:
 *   deployments/<d>/state/<inc>.json           weights, promotion, pause,
 *                                              the ids reserved
 *   deployments/<d>/changes/<inc>.log          a line per change
 *   deployments/<d>/predictions/<inc>/<n>.jsonl the prediction store, a
 *                                              segment per group commit
 * where <inc> is the record's incarnation: a deployment made again under
 * the same name starts afresh.
 */
#ifndef MLFS_FS_DEPLOY_H
#define MLFS_FS_DEPLOY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "ctx.h"
#include "problem.h"
#include "strbuf.h"

struct fs;
struct dstream;

/*
 * deploy_start: fs's deployments (fs->deploys) and the thread that
 * commits the prediction stores every sync_ms; deploy_stop commits what
 * is pending and frees them, once no request can call in.
 */
int deploy_start(struct fs *fs, unsigned sync_ms);
void deploy_stop(struct fs *fs);

/*
 * deploy_spec: judge a spec for deployment name written by ctx (text,
 * len bytes; final at close): its fields (deployspec.h), then, once the
 * JSON is complete, its models: each exists and ctx may read it, they
 * are alike (task, classes, inputs), and each reproduces its sample.csv.
 * commit: make it a revision (none when nothing changed).  0 while
 * incomplete and not final; -EINVAL or -EACCES with pb.
 */
int deploy_spec(struct fs *fs, const char *name, const char *text,
		size_t len, bool final, bool commit, const struct fs_ctx *ctx,
		struct problem *pb);

/*
 * A predict handle's stream for ctx: rows routed and answered as a
 * model's predict answers them (by entity key for models trained on
 * feature sets, read as ctx), each with a request id; logged unless the
 * mount is read-only.  -ENOENT without a revision (why in msg), -EIO
 * when a model cannot load.  deploy_stream_sync makes what the handle
 * logged durable (close, fsync).
 */
int deploy_stream_open(struct fs *fs, const char *name,
		       const struct fs_ctx *ctx, struct dstream **out,
		       char *msg, size_t msglen);
int deploy_stream_write(struct dstream *s, const char *buf, size_t len,
			struct strbuf *out);
int deploy_stream_finish(struct dstream *s, struct strbuf *out);
int deploy_stream_sync(struct dstream *s);
void deploy_stream_free(struct dstream *s);

/*
 * deploy_feedback: the complete lines of text (`id,truth` CSV rows,
 * optionally under an `id,truth` header, or JSON lines {"id", "truth"}),
 * first_line their line number: every one durable in the prediction
 * store when it returns, or none taken (-EINVAL with pb).
 */
int deploy_feedback(struct fs *fs, const char *name, const char *text,
		    size_t len, unsigned first_line, struct problem *pb);

/*
 * Controls: traffic (`<model@v> <weight>` lines), ctl (promote,
 * rollback, pause, resume).  check: judge only.  -EINVAL with pb.
 */
int deploy_traffic(struct fs *fs, const char *name, const char *text,
		   size_t len, bool check, const struct fs_ctx *ctx,
		   struct problem *pb);
int deploy_ctl(struct fs *fs, const char *name, const char *text,
	       size_t len, bool check, const struct fs_ctx *ctx,
	       struct problem *pb);

/*
 * Renderings: traffic, status (one line), the change log, and what
 * feedback has had: lines received, labels matched, ids unknown (never
 * answered, or too long ago) and repeated (their answers all labelled).
 */
int deploy_show_feedback(struct fs *fs, const char *name, struct strbuf *out);
int deploy_show_traffic(struct fs *fs, const char *name, struct strbuf *out);
int deploy_show_status(struct fs *fs, const char *name, struct strbuf *out);
int deploy_show_changes(struct fs *fs, const char *name, struct strbuf *out);

/* The prediction store as a file: its size, and bytes at off. */
/* Monitoring (deploymon.c): drift and metrics.prom, made when read. */
int deploy_show_drift(struct fs *fs, const char *name, struct strbuf *out);
int deploy_show_prom(struct fs *fs, const char *name, struct strbuf *out);
/* metrics.svg (deployplot.c): the last 24 hours of metrics, drawn */
int deploy_show_svg(struct fs *fs, const char *name, struct strbuf *out);

/*
 * The streams of a deployment that tail -f follows, read where asked at
 * absolute offsets: predictions (the prediction store), metrics (a JSON
 * line per candidate per monitor.interval; deploymon.c) and alerts
 * (raised, cleared, and the steps of the loop they close;
 * deployalert.c).  Size and read: 0 and nothing before the first spec.
 */
enum dep_stream_file { DEP_PREDICTIONS, DEP_METRICS, DEP_ALERTS };
int deploy_file_size(struct fs *fs, const char *name,
		     enum dep_stream_file which, uint64_t *size);
ssize_t deploy_file_read(struct fs *fs, const char *name,
			 enum dep_stream_file which, char *buf, size_t size,
			 uint64_t off);

/*
 * deploy_serving: the version ("model@v", in ref) that takes most of
 * name's traffic now (the first on a tie).  -ENOENT with why.
 */
int deploy_serving(struct fs *fs, const char *name, char *ref, size_t len,
		   char *why, size_t whylen);

/* rmdir deployments/<name>: drop what is held and stored of it. */
void deploy_forget(struct fs *fs, const char *name);

#endif
