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
#define MLFS_ABI_MINOR 0

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
	void (*log)(void *ctx, int level, const char *fmt, ...);
	/* Report progress: fraction 0..1 and a short line. */
	void (*progress)(void *ctx, double fraction, const char *line);
	/* Non-zero once the job has been cancelled: stop soon. */
	int (*cancelled)(void *ctx);
	void *(*alloc)(void *ctx, size_t size);
	void (*free)(void *ctx, void *p);
};

/*
 * A dense float matrix, row-major: rows x cols, element (i, j) at
 * data[i * ld + j].  Borrowed for the call.
 */
struct mlfs_matrix {
	float *data;
	size_t rows;
	size_t cols;
	size_t ld;
};

/* A parameter value from a spec's "params", as text (JSON). */
struct mlfs_param {
	const char *name;
	const char *json;
};

/*
 * Training: fit a model on X (features already extracted and scaled by
 * the daemon) and y (class index or target value), then predict.
 * Errors are negative errnos; msg (size msglen) says why.
 */
struct mlfs_train_ops {
	size_t size; /* sizeof(struct mlfs_train_ops) */
	/* Create an instance with params; NULL-terminated list. */
	int (*init)(const struct mlfs_host *host,
		    const struct mlfs_param *params, size_t nparams,
		    void **inst, char *msg, size_t msglen);
	int (*fit)(void *inst, const struct mlfs_matrix *x, const float *y,
		   size_t nclasses, const struct mlfs_matrix *xval,
		   const float *yval, char *msg, size_t msglen);
	/* Outputs: rows x nout (nout = nclasses for classifiers, else 1). */
	int (*predict)(void *inst, const struct mlfs_matrix *x,
		       struct mlfs_matrix *out);
	/* Serialise the fitted weights into buf (size *len); -ENOSPC with
	 * *len set to what is needed when buf is too small. */
	int (*save)(void *inst, void *buf, size_t *len);
	int (*load)(void *inst, const void *buf, size_t len);
	void (*fini)(void *inst);
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
