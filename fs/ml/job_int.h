/* SPDX-License-Identifier: MIT */
/*
 * Inside the job program (mlfs-job: job_main.c the run of one job,
 * job_search.c a search's trials): what its two files share.  A process
 * of its own, so its few variables are the process's.
 */
#ifndef MLFS_FS_JOB_INT_H
#define MLFS_FS_JOB_INT_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include "mlcore.h"
#include "plugin.h"

struct run {
	json_t *plan;
	const struct plugin *pl;
	const struct mlfs_train_ops *ops;
	unsigned task;
	const char *taskname; /* borrowed from plan */
	double t0;        /* monotonic start */
	FILE *metrics;
};

/*
 * What one fit reports through the host table: its place in the job's
 * progress and the prefix of its lines.  Trials of a search run on
 * several threads; out_lock serialises their writes.
 */
struct hctx {
	struct run *run;
	double frac_base; /* progress: base + span * fraction */
	double frac_span;
	char prefix[64];  /* "trial 3: " */
	long metric_base; /* steps of earlier trials */
	struct mlfs_host host; /* the table the plugin gets, ctx = this */
	json_t *stopped;  /* why the last fit ended {rule, at, why}, or NULL */
	json_t *curves;   /* the registered fit's metrics by step, or NULL
			     (a trial's: jobs/<j>/metrics only) */
};

extern volatile sig_atomic_t cancelled; /* SIGTERM: stop between steps */
extern pthread_mutex_t out_lock;        /* the job's shared output files */

void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2),
					       noreturn));
json_t *evaluate(struct run *run, void *inst, const float *x,
			const float *y, size_t rows, size_t w,
			const char *const *classes, size_t ncls);
void finish(int ok, const char *reason, json_t *metrics,
		   json_t *trials) __attribute__((noreturn));
double metric_of(json_t *m, const char *name);
float *score(struct run *run, void *inst, const float *x, size_t rows,
		    size_t w, size_t *nout);
int train_once(struct run *run, const struct mlfs_host *base,
		      struct hctx *hc, json_t *params,
		      const struct mlfs_data *tr, const struct mlfs_data *va,
		      void **inst, double *fit_s, char *msg, size_t msglen);
void write_trial(size_t n, json_t *t);
double now_mono(void);
/* The index of the largest of n scores (the first on a tie). */
size_t argmax(const float *s, size_t n);
json_t *search_run(struct run *run, const struct mlfs_host *host,
			  json_t *plan, struct mlfs_data *tr,
			  const struct mlfs_data *va, const char **cnames,
			  size_t ncls, json_t **trials_out);

/*
 * What a version's plots are drawn from (job_plotdata.c): curves_add
 * keeps one metric's value at step in curves {name: [[step, value]]};
 * evaluation_write writes path from the model inst on rows x (y the
 * labels, NULL when clustering) of the named set.
 */
void curves_add(json_t *curves, const char *name, long step, double value);
void evaluation_write(const char *path, struct run *run, void *inst,
		      const float *x, const float *y, size_t rows, size_t w,
		      const char *set, json_t *curves,
		      const char *const *classes, size_t ncls);

/* A CSV field, quoted when it must be. */
/* Does a CSV field need quotes: a comma, a quote or an LF in it? */
bool csv_needs_quotes(const char *f, size_t len);
/* strlen(s), and in *quote csv_needs_quotes(s, strlen(s)): one pass. */
size_t csv_field_len(const char *s, bool *quote);
void csv_put(FILE *fp, const char *f, size_t len);
/*
 * The descriptor the daemon gave for the output data (argv[3]: write-
 * only, append-only, its own copy, which it follows as it grows), or -1
 * (write out/data.csv).
 */
extern int job_out_fd;
/* A dataset's prepare steps (job_prep.c): the whole job; no return. */
void prep_run(json_t *plan) __attribute__((noreturn));
/* Batch scoring (job_batch.c): the whole job; does not return. */
void batch_run(json_t *plan) __attribute__((noreturn));
/* A feature set's sync (job_sync.c): the whole job; does not return. */
void sync_run(json_t *plan) __attribute__((noreturn));
/* t with the plan's feature sets joined point in time (t is freed). */
struct table *sets_join(struct table *t, json_t *plan);

/* The host table (job_host.c). */
void host_log(void *ctx, int level, const char *fmt, ...);
void host_progress(void *ctx, double fraction, const char *line);
void host_metric(void *ctx, const char *name, double value, long step);
void host_stopped(void *ctx, const char *rule, long at,
			 const char *why);
int host_cancelled(void *ctx);
json_t *stopped_unknown(const struct plugin *pl);
void progress_stopped(struct hctx *h, double frac, const char *what);

#endif
