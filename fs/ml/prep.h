/* SPDX-License-Identifier: MIT */
/*
 * datasets/<d>/prepare (prep.c): a spec of prep steps, run as job
 * <d>-prepare-<n> (job_prep.c), that publishes a new version.
 */
#ifndef MLFS_ML_PREP_H
#define MLFS_ML_PREP_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "ctx.h"
#include "problem.h"

struct fs;

/*
 * prep_check: judge text (len bytes; final: the whole of it) as a
 * prepare spec of dataset name for ctx: 0 while incomplete or good,
 * -errno with pb (line and column) otherwise.
 */
int prep_check(struct fs *fs, const char *name, const char *text,
	       size_t len, bool final, const struct fs_ctx *ctx,
	       struct problem *pb);
/* prep_submit: judge and queue it; the job's name in job. */
int prep_submit(struct fs *fs, const char *name, const char *text,
		const struct fs_ctx *ctx, char *job, size_t joblen,
		struct problem *pb);
/* The last job name's prepare started, or -ENOENT. */
int prep_last_job(struct fs *fs, const char *name, char *job, size_t joblen);
/*
 * The runner's end of a prepare job: its out/data.csv as a version, taken
 * from *tail if not NULL (followed while the job ran; taken: *tail is
 * then NULL).
 */
struct out_tail;
int prep_publish(struct fs *fs, const char *dir, json_t *plan, json_t *rec,
		 struct out_tail **tail, unsigned *ver);

#endif
