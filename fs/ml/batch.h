/* SPDX-License-Identifier: MIT */
/*
 * Batch scoring (DESIGN.md §4): batch/<name>.json
 *
 *   {"model": "churn@production", "dataset": "customers@3",
 *    "output": "customers_scored", "keep": ["customer_id"]}
 *
 * ("deployment": "<d>" may stand for "model": the version that takes
 * most of its traffic) starts job <name>, run out of process as the
 * writer (job_batch.c), which scores every row of the dataset version;
 * its answers are published as a new version of the output dataset:
 * the keep columns, then prediction and one probability column per
 * class, with a lineage naming the model and input versions.  The
 * daemon's half (the spec, the job, the publication) is here; part of
 * the runner (runner_int.h).
 */
#ifndef MLFS_FS_BATCH_H
#define MLFS_FS_BATCH_H

#include <jansson.h>

#include "node.h"
#include "problem.h"

struct fs;

/*
 * batch_resolve: check a batch spec (text) for job name as ctx writes
 * it: its fields (line:col errors), then the model, dataset and output
 * against the registry and ctx's rights.  *plan (if plan) is the job's
 * plan.  0 while the JSON is incomplete (then *plan stays NULL);
 * -EINVAL or -EACCES with pb.
 */
int batch_resolve(struct fs *fs, const char *name, const char *text,
		  const struct fs_ctx *ctx, json_t **plan, struct problem *pb);

/* batch_submit: resolve and queue job name.  -EEXIST if it is taken. */
int batch_submit(struct fs *fs, const char *name, const char *text,
		 const struct fs_ctx *ctx, struct problem *pb);

/*
 * batch_publish: the job in dir succeeded: its out/data.csv becomes a
 * version of the output dataset (made for the writer if it does not
 * exist), taken from *tail if not NULL (followed while the job ran;
 * taken: *tail is then NULL).  *ver the version.
 */
struct out_tail;
int batch_publish(struct fs *fs, const char *dir, json_t *plan, json_t *rec,
		  struct out_tail **tail, unsigned *ver);

#endif
