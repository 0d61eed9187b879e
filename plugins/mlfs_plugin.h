/* SPDX-License-Identifier: MIT */
/*
 * mlfs_plugin.h: the plugin ABI of mlfs.
 *
 * A plugin is a shared object exporting exactly one symbol, `mlfs_plugin`:
 * a const descriptor giving the ABI version, the stage, a name matching
 * the file name (train/logistic.so is "logistic"), and that stage's ops.
 * The daemon loads it with dlopen(RTLD_NOW | RTLD_LOCAL) and checks ABI,
 * stage, name and required ops before using it; it refuses a bad plugin,
 * naming the file and the reason.
 *
 * Rules of this header: it includes only standard headers and compiles as
 * C11 and C++.  Structs grow only at the end; no field is reordered,
 * renamed or reused.  Each ops struct starts with its size so the loader
 * knows which fields exist.  An incompatible change bumps MLFS_ABI_MAJOR.
 *
 * Plugins reach the daemon only through the struct mlfs_host table passed
 * to init (logging, progress, cancellation, allocation).  Plugin state
 * lives in the instance init returns, never in file-scope variables: ops
 * may be called from several threads unless the descriptor says otherwise.
 */
#ifndef MLFS_PLUGIN_H
#define MLFS_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MLFS_ABI_MAJOR 1
#define MLFS_ABI_MINOR 5

/*
 * Marks the descriptor.  In C++ a namespace-scope const has internal
 * linkage, so the macro also makes it extern "C".
 */
#if defined(__GNUC__)
#define MLFS_VISIBLE __attribute__((visibility("default")))
#else
#define MLFS_VISIBLE
#endif
#ifdef __cplusplus
#define MLFS_EXPORT extern "C" MLFS_VISIBLE
#else
#define MLFS_EXPORT MLFS_VISIBLE
#endif

enum mlfs_stage {
	MLFS_STAGE_PREP = 1,  /* split, balance, augment, anonymize, label */
	MLFS_STAGE_TRAIN,     /* linear, logistic, mlp, kmeans */
	MLFS_STAGE_TUNE,      /* grid, random, halving */
	MLFS_STAGE_SERVE,     /* routing strategies */
	MLFS_STAGE_MONITOR,   /* metrics, drift */
};

/* Log levels for mlfs_host.log, as syslog's. */
enum mlfs_log_level {
	MLFS_LOG_ERR = 3,
	MLFS_LOG_WARNING = 4,
	MLFS_LOG_INFO = 6,
	MLFS_LOG_DEBUG = 7,
};

/* What the daemon offers a plugin.  Valid from init until fini. */
struct mlfs_host {
	size_t size; /* sizeof(struct mlfs_host) as the daemon built it */
	void *ctx;   /* the host's own; pass back in every call */
	void (*log)(void *ctx, int level, const char *fmt, ...)
#if defined(__GNUC__)
		__attribute__((format(printf, 3, 4)))
#endif
		;
	/* Report progress: fraction 0..1 and a short line ("epoch 3/50"). */
	void (*progress)(void *ctx, double fraction, const char *line);
	/* Report a metric as training goes (jobs/<job>/metrics). */
	void (*metric)(void *ctx, const char *name, double value, long step);
	/* Non-zero once the job has been cancelled: return -ECANCELED soon. */
	int (*cancelled)(void *ctx);
	/* Threads the plugin may use (BLAS is already set to this). */
	int threads;
	/*
	 * ABI 1.1.  Say why fit stopped training, once, just before fit
	 * returns (and before it returns an error for a diverged run): rule
	 * is one of the MLFS_STOP_* strings, at the step it stopped after
	 * (the epoch or iteration, counted from 1), why one line for people
	 * ("validation accuracy did not improve by tol 0.0001 for 11
	 * epochs (best 0.967 at epoch 27)").  The daemon puts it in the
	 * job's log and progress and in the version's metrics.json.  A
	 * daemon older than 1.1 has no such field: copy the table as far as
	 * size says and call this only when it is not NULL.
	 */
	void (*stopped)(void *ctx, const char *rule, long at, const char *why);
	/*
	 * ABI 1.3, for prep plugins.  anon_hash: HMAC-SHA-256 of data (len
	 * bytes) under the key of the job's owner, derived from the mount's
	 * -o anon_key, into out (32 bytes): the plugin never holds the key,
	 * and one user cannot hash guesses to match another's column.
	 * -ENOKEY when the mount has no anon_key.  NULL in an older host.
	 */
	int (*anon_hash)(void *ctx, const void *data, size_t len,
			 unsigned char out[32]);
	/*
	 * ABI 1.5, for prep plugins.  anon_hash_many: anon_hash of n values
	 * at once, data[i] (len[i] bytes) into out[i], for i < n; 0 or the
	 * first error, as anon_hash's.  The host may hash several values
	 * together (two short ones cost about what one does with the CPU's
	 * SHA extensions).  NULL in an older host (or absent by size): call
	 * anon_hash for each value.
	 */
	int (*anon_hash_many)(void *ctx, size_t n, const void *const *data,
			      const size_t *len, unsigned char (*out)[32]);
	/*
	 * ABI 1.5, for prep plugins.  Nonzero when the host frees the input
	 * table of a run (and every table before it) only after out_free of
	 * that run's output: the output may then point at the input's
	 * strings and names instead of copying them.  0 (or absent by
	 * size): the output must share nothing with the input.
	 */
	int keeps_input;
};

/*
 * The rules of mlfs_host.stopped.  A plugin may use another short word
 * when none of these fits; the daemon passes it on as it is.
 */
#define MLFS_STOP_COMPLETED "completed" /* ran every epoch it was given */
#define MLFS_STOP_MAX_ITER "max_iter"   /* a solver's cap, not converged */
#define MLFS_STOP_TOL "tol"             /* converged by the "tol" param */
#define MLFS_STOP_FTOL "ftol"           /* the loss stopped changing */
#define MLFS_STOP_EARLY "early_stopping" /* validation stopped improving */
#define MLFS_STOP_DIVERGED "diverged"   /* the loss became inf or NaN */

/*
 * A dense float matrix, row-major: rows x cols, element (i, j) at
 * data[i * ld + j].  Inputs are borrowed for the call.
 */
struct mlfs_matrix {
	float *data;
	size_t rows;
	size_t cols;
	size_t ld;
};

/*
 * Training data after the daemon's feature extraction (imputed,
 * standardised, one-hot encoded, clipped): x is rows x features; y is the
 * class index (0..nclasses-1) for classification, the target for
 * regression, and NULL for clustering.
 */
struct mlfs_data {
	struct mlfs_matrix x;
	const float *y;
	size_t nclasses; /* 0 for regression and clustering */
};

enum mlfs_param_type {
	MLFS_PARAM_NUMBER = 1,
	MLFS_PARAM_STRING,
	MLFS_PARAM_LIST, /* of numbers */
	MLFS_PARAM_BOOL,
};

/* One entry of a spec's "params". */
struct mlfs_param {
	const char *name;
	int type; /* enum mlfs_param_type */
	double number; /* NUMBER, and BOOL as 0/1 */
	const char *string;
	const double *list;
	size_t nlist;
};

/* What a train plugin can learn (mlfs_train_ops.tasks, a bit set). */
#define MLFS_TASK_CLASSIFICATION 0x1
#define MLFS_TASK_REGRESSION 0x2
#define MLFS_TASK_CLUSTERING 0x4

/*
 * A train plugin.  Errors are negative errnos, and msg (msglen bytes)
 * says why in the form "\"param\": must be > 0, got -1".
 *
 * Scores from predict: classification, nclasses columns of class
 * probabilities (each row sums to 1); regression, one column, the value;
 * clustering, k columns, the negated squared distance to each centre.
 * The prediction is the argmax (or the value).
 */
struct mlfs_train_ops {
	size_t size;    /* sizeof(struct mlfs_train_ops) */
	unsigned tasks; /* MLFS_TASK_* */
	/*
	 * init: an instance for task (one MLFS_TASK_*) with params.  Unknown
	 * or bad params give -EINVAL and msg; the daemon calls init when a
	 * spec is written, so a bad spec fails the write.
	 */
	int (*init)(const struct mlfs_host *host, unsigned task,
		    const struct mlfs_param *params, size_t nparams,
		    void **inst, char *msg, size_t msglen);
	/* fit: train on train, use val (may have 0 rows) to stop early. */
	int (*fit)(void *inst, const struct mlfs_data *train,
		   const struct mlfs_data *val, char *msg, size_t msglen);
	/* The number of score columns predict writes. */
	size_t (*outputs)(void *inst);
	/* predict: out is x->rows x outputs(), allocated by the caller. */
	int (*predict)(void *inst, const struct mlfs_matrix *x,
		       struct mlfs_matrix *out);
	/*
	 * save: the fitted state as bytes, malloc'd (*buf, *len); the caller
	 * frees.  load: restore an instance made by init (params and task as
	 * when it was saved) from such bytes; -EINVAL if they are not valid.
	 */
	int (*save)(void *inst, void **buf, size_t *len);
	int (*load)(void *inst, const void *buf, size_t len);
	void (*fini)(void *inst);
	/*
	 * ABI 1.2: the major version of the bytes save writes.  load reads
	 * every save of the same major; bump it when load can no longer
	 * read an older save.  A model bundle (models/<m>/v<n>/bundle.tar)
	 * is imported only where a plugin of the same name declares the
	 * same major.  0, or a 1.1 plugin whose ops end before it, is 1.
	 */
	uint32_t model_format;
};

/* A search space entry of a spec's "search": {"space": {...}}. */
enum mlfs_range_kind {
	MLFS_RANGE_UNIFORM = 1, /* real in [lo, hi] */
	MLFS_RANGE_LOG_UNIFORM, /* real in [lo, hi], uniform in log */
	MLFS_RANGE_INT,         /* integer in [lo, hi] */
	MLFS_RANGE_CHOICE,      /* one of nchoices values (index) */
};

struct mlfs_range {
	const char *name; /* the train param it sets */
	int kind;         /* enum mlfs_range_kind */
	double lo;
	double hi;
	size_t nchoices;  /* CHOICE */
};

/*
 * A tune plugin proposes the trials of a search and learns from their
 * results; the job program runs them (up to the spec's "parallel" at
 * once).  Scores are "higher is better" (the host negates metrics to
 * minimise).  Calls on one instance are serialised by the host.
 */
struct mlfs_tune_ops {
	size_t size; /* sizeof(struct mlfs_tune_ops) */
	/* init: a search over space[0..nspace) proposing at most trials
	 * trials, deterministic given seed. */
	int (*init)(const struct mlfs_host *host,
		    const struct mlfs_range *space, size_t nspace,
		    unsigned trials, uint64_t seed, void **inst, char *msg,
		    size_t msglen);
	/*
	 * next: propose a trial: *trial is its number (0, 1, ...; a trial
	 * may be proposed again with a larger budget), values[i] the value
	 * for space[i] (a CHOICE's index), *budget the fraction of the
	 * training rows it gets, in (0, 1].  Returns 1 for a proposal,
	 * -EAGAIN while it waits for reports of running trials, 0 when the
	 * search is over.
	 */
	int (*next)(void *inst, unsigned *trial, double *values,
		    double *budget);
	/* report: the score of trial at the budget it last got; NAN if it
	 * failed. */
	int (*report)(void *inst, unsigned trial, double score);
	void (*fini)(void *inst);
};

/*
 * ABI 1.3: the prep stage.  A prep plugin is one step of a dataset's
 * `prepare` spec ({"steps": [{"impute": {...}}, {"balance": {...}}]}):
 * it takes a table and gives a new one.  The job program runs the steps
 * in order, as the writer, out of the daemon; the version it publishes
 * records every step with its params and the seed in its lineage.
 *
 * A table holds columns of text as the CSV has them (UTF-8, NUL-ended;
 * NULL for a missing value), and for numeric columns the numbers too
 * (NaN when missing).  Types and roles come from the dataset's schema.
 */
enum mlfs_col_type {
	MLFS_COL_NUMERIC = 1,
	MLFS_COL_CATEGORICAL,
	MLFS_COL_TIME,
	MLFS_COL_TEXT,
};

/* Roles a column has (mlfs_column.roles, a bit set), as the schema's. */
#define MLFS_ROLE_LABEL 0x1
#define MLFS_ROLE_ID 0x2
#define MLFS_ROLE_PII 0x4
#define MLFS_ROLE_TIME 0x8

struct mlfs_column {
	const char *name;
	int type;        /* enum mlfs_col_type */
	unsigned roles;  /* MLFS_ROLE_* */
	char **text;     /* [rows]: the value as text, or NULL (missing) */
	double *num;     /* [rows] for NUMERIC columns (NaN: missing), else
			    NULL.  When both are set they agree: a step that
			    changes a number sets its text to NULL, and the
			    host prints the number. */
};

struct mlfs_table {
	size_t rows;
	size_t cols;
	struct mlfs_column *col; /* [cols] */
};

/*
 * A prep plugin.  run reads in (borrowed) and makes *out, which the
 * plugin allocates and out_free releases; out may share nothing with
 * in.  Errors are negative errnos with msg naming the param or column
 * ("\"k\": must be >= 1", "column \"age\": not numeric").  seed makes
 * every random choice; the same table, params and seed give the same
 * table.
 */
struct mlfs_prep_ops {
	size_t size; /* sizeof(struct mlfs_prep_ops) */
	/* check: judge params before the job starts (the spec's write). */
	int (*check)(const struct mlfs_param *params, size_t nparams,
		     char *msg, size_t msglen);
	int (*run)(const struct mlfs_host *host,
		   const struct mlfs_param *params, size_t nparams,
		   uint64_t seed, const struct mlfs_table *in,
		   struct mlfs_table **out, char *msg, size_t msglen);
	void (*out_free)(struct mlfs_table *out);
	/*
	 * ABI 1.4, optional (NULL, or absent by size: no).  by_rows: whether
	 * run, with these params (check accepted them), makes each output
	 * row from its input row alone (or drops it), in order, with columns
	 * that do not depend on the rows.  The host may then run the step
	 * on consecutive parts of the table, several at once on different
	 * threads, and join the parts' outputs: the table one run would
	 * make.  It keeps the log lines of the first part only (the others
	 * would repeat them), and if a part fails it runs the whole table
	 * in one piece, so that an error names its row as one run would.
	 */
	int (*by_rows)(const struct mlfs_param *params, size_t nparams);
};

/* The descriptor: `MLFS_EXPORT const struct mlfs_plugin mlfs_plugin`. */
struct mlfs_plugin {
	uint32_t abi_major;
	uint32_t abi_minor;
	uint32_t stage;      /* enum mlfs_stage */
	const char *name;    /* matches the file name without .so */
	const char *version; /* the plugin's own version */
	const void *ops;     /* the stage's ops struct */
};

#ifdef __cplusplus
}
#endif

#endif
