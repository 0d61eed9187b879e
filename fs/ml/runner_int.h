/* SPDX-License-Identifier: MIT */
/*
 * Inside the job runner (runner.c: job records and what FUSE workers ask
 * of them; sched.c: the scheduler thread, spawning, reaping and
 * publishing): the structures and helpers both use.  The interface is
 * runner.h.
 */
#ifndef MLFS_FS_RUNNER_INT_H
#define MLFS_FS_RUNNER_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "outtail.h"
#include "runner.h"

#define SCHED_TICK_MS 50
#define CANCEL_GRACE_S 3.0
#define JOB_RECORD_MAX ((size_t)16 << 20)

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_ENDED };

struct job {
	struct runner *runner;  /* the runner it belongs to (fs->runner) */
	struct job *next;       /* under runner->lock */
	_Atomic unsigned refs;
	char name[256];
	enum job_state state;   /* under runner->lock */
	json_t *rec;            /* under runner->lock */
	json_t *plan;           /* queued/running only; under runner->lock */
	pid_t pid;              /* running: the job program */
	bool cancel;            /* under runner->lock */
	double cancel_at;       /* monotonic s of the first SIGTERM */
	double deadline;        /* monotonic s; 0 none */
	char dir[PATH_MAX];     /* the job folder in the cache */
	char *reason;           /* why it failed, set by the runner */
	uid_t uid;              /* the spec's writer */
	uint64_t memory;        /* bytes of resident memory allowed; 0 any */
	uint64_t resident;      /* bytes: what it had when it went over */
	uint64_t started;       /* start order (runner->starts); 0: never */
	struct out_tail *tail;  /* its output followed (outtail.h), or NULL;
				   the scheduler thread's */
	pthread_t watcher;      /* wakes the scheduler when it exits */
	bool watched;           /* watcher runs; the scheduler thread's */
};

struct runner {
	struct fs *fs;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *jobs;       /* in creation order; under lock */
	char **pending;         /* spec files being written; under lock */
	size_t npending;
	unsigned running;       /* under lock */
	bool stopping;          /* under lock */
	uint64_t starts;        /* jobs started so far; under lock */
	pthread_t thread;
	bool started;
	char jobbin[PATH_MAX];  /* the job program */
};

void append_locked(struct runner *r, struct job *j);
void iso_now(char *out, size_t len);
int job_save(struct fs *fs, const char *name, json_t *rec);
json_t *load_json(const char *dir, const char *file);
double now_mono(void);
int put_copy(struct fs *fs, const char *dir, const char *file,
		    char hash[33], uint64_t *size);
/*
 * publish_out: dir/file, a job's output CSV, as a new version of dataset
 * name: from *tail (taken, *tail NULL after), which followed it while the
 * job ran, else
 * copied, scanned and hashed at once (ds_publish_copy).
 */
int publish_out(struct fs *fs, const char *dir, const char *file,
		struct out_tail **tail, const char *name,
		const struct repo_origin *origin, unsigned *ver, bool *created,
		struct problem *pb);
/* A private copy of dir/file (the writer's) in the store's temporary
 * folder, its path in tmp: the caller consumes or unlinks it.  Not yet
 * fsync'd: store_put_file does that before the blob is named. */
int copy_out(struct fs *fs, const char *dir, const char *file, char *tmp,
	     size_t tmplen);
void rm_rf(const char *dir);
int status_text(json_t *rec, char *out, size_t len);

#endif
