/* SPDX-License-Identifier: MIT */
/*
 * The job runner: training jobs as records in the store and the index,
 * run out of process by the job program (mlfs-job), at most -o jobs=N at
 * once, the rest queued.  See runner.c for its threads.
 */
#ifndef MLFS_FS_RUNNER_H
#define MLFS_FS_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#include "node.h"
#include "problem.h"

struct fs;
struct job;

/* Start the runner: load job records, fail the ones a crash interrupted,
 * start the scheduler.  After the daemon detached. */
int runner_start(struct fs *fs);
/* Stop: cancel running jobs (marked so), answer parked readers, join. */
void runner_stop(struct fs *fs);

/*
 * job_submit: resolve spec text (spec.h) and create job name, queued.
 * -EEXIST if the name is taken, -EINVAL with pb for a bad spec.
 */
int job_submit(struct fs *fs, const char *name, const char *text,
	       const struct fs_ctx *ctx, struct problem *pb);

/*
 * job_enqueue: queue job name to run plan (job.json for the job program;
 * "kind" says what it runs: "train" when absent, "sync") with record rec
 * (its status, spec and owner as jobs/<name>/ shows them).  Takes both
 * references, whatever it returns.  -EEXIST if the name is taken.
 */
int job_enqueue(struct fs *fs, const char *name, json_t *plan, json_t *rec,
		const struct fs_ctx *ctx);

/* Is there a job (or a spec being written) of this name? */
bool job_exists(struct fs *fs, const char *name);
/* Call fn for each job name, in order. */
int job_list(struct fs *fs, int (*fn)(void *arg, const char *name),
	     void *arg);

/* How many jobs are queued, running and ended. */
void job_counts(struct fs *fs, unsigned *queued, unsigned *running,
		unsigned *ended);
/* The largest n of the jobs named "<prefix><n>", or 0. */
unsigned job_last_number(struct fs *fs, const char *prefix);

/* Find a job with a reference (job_put), -ENOENT. */
int job_get(struct fs *fs, const char *name, struct job **out);
void job_put(struct job *j);

/* The status line ("running\n", "failed: reason\n"). */
int job_status(struct job *j, struct strbuf *out);
bool job_has_ended(struct job *j);
/* The record (JSON, a copy). */
json_t *job_record(struct job *j);
/* Park a `wait` read on the job, or answer at once if it has ended. */
int job_wait(struct job *j, size_t size, off_t off, struct fs_reply *r);
/* Block until the job ends (0) or seconds pass (-ETIMEDOUT). */
int job_wait_end(struct job *j, double seconds);
/* Cancel a queued or running job.  -EINVAL if it has ended. */
int job_cancel(struct job *j);
/* Remove an ended job's record.  -EBUSY while it runs. */
int job_remove(struct fs *fs, const char *name);

/*
 * The job's growing files: "log", "metrics", "split", "progress".  Read
 * from the job folder while it runs and from the store after.
 * job_file_size gives the current size; job_file_read reads at off.
 */
int64_t job_file_size(struct job *j, const char *file);
ssize_t job_file_read(struct job *j, const char *file, char *buf,
		      size_t size, off_t off);

/*
 * The search trials so far (a JSON array, new reference): read from the
 * job folder while it runs, from the record after.
 */
json_t *job_trials(struct job *j);

/* Spec files being written (train/<job>.json before its close). */
int job_pending_add(struct fs *fs, const char *name);
void job_pending_del(struct fs *fs, const char *name);
bool job_pending(struct fs *fs, const char *name);

#endif
