/* SPDX-License-Identifier: MIT */
/*
 * A job's output CSV followed while the job writes it: what the job
 * appends to out/data.csv is copied into the store's staging area as it
 * arrives, and scanned and hashed there (repo_follow), so that the
 * publish after the job has ended has only the last bytes to take.  Or
 * the job appends to the staging file itself (out_tail_writer), and
 * nothing is copied.
 */
#ifndef MLFS_ML_OUTTAIL_H
#define MLFS_ML_OUTTAIL_H

#include <stdbool.h>

#include "fs.h"
#include "problem.h"
#include "repo.h"

struct out_tail;

/*
 * out_tail_start: follow dir/file (opened without following links, as
 * copy_out does) from now on, until out_tail_publish or out_tail_cancel.
 * NULL when it cannot (the publish then copies the whole file).
 */
struct out_tail *out_tail_start(struct fs *fs, const char *dir,
				const char *file);

/*
 * out_tail_writer: instead of copying dir/file, have the job write into
 * the copy itself (repo_follow_writer): a descriptor for the job, the
 * caller's, or -errno (then the file is copied as before).  The job
 * may still write dir/file instead (a second start of its output); the
 * publish then takes that file, whole.
 */
int out_tail_writer(struct out_tail *t);

/*
 * out_tail_publish: the job has ended: copy what is left and publish it
 * as ds_publish_copy would, and free t.  -EAGAIN when the file was not
 * followed to its end (not there, truncated, replaced): the caller
 * copies it whole.  A job that rewrites bytes it has already written in
 * place gets them as first written: a job's output is appended, and the
 * job program makes a new file when it starts its output again.
 */
int out_tail_publish(struct out_tail *t, const char *name,
		     const struct repo_origin *origin, unsigned *ver,
		     bool *created, struct problem *pb);

/* out_tail_cancel: stop and free t (NULL: nothing). */
void out_tail_cancel(struct out_tail *t);

#endif
