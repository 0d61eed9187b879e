/* SPDX-License-Identifier: MIT */
/*
 * The pictures of a model version (models/<m>/v<n>/learning.svg and the others), drawn by
 * plot.c from the version's evaluation.json, metrics.json and meta.json,
 * and kept in the mount's plot cache (a version never changes).
 */
#ifndef MLFS_ML_MODELPLOT_H
#define MLFS_ML_MODELPLOT_H

#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

struct fs;

#define MODEL_PLOTS(X)                                                        \
	X(MPLOT_LEARNING, "learning.svg")                                     \
	X(MPLOT_ROC, "roc.svg")                                               \
	X(MPLOT_CONFUSION, "confusion.svg")                                   \
	X(MPLOT_RESIDUALS, "residuals.svg")                                   \
	X(MPLOT_CLUSTERS, "clusters.svg")

#define MPLOT_ENUM(id, name) id,
enum mplot { MODEL_PLOTS(MPLOT_ENUM) MPLOT_N };
#undef MPLOT_ENUM

extern const char *const mplot_names[MPLOT_N];

/*
 * mplot_has: the pictures version manifest man can draw, a bit (1 << p)
 * each: learning.svg for every version trained here (evaluation.json),
 * roc.svg, residuals.svg or clusters.svg by its task, and confusion.svg
 * for every classifier (an imported one too: metrics.json has it).
 */
unsigned mplot_has(json_t *man);

/*
 * mplot_make: picture p of model version ver, malloc'd in *out (*len
 * bytes).  -ENOENT when the version cannot draw it; -EIO for a blob that
 * does not match its hash (reported for uid at path).
 */
int mplot_make(struct fs *fs, const char *model, unsigned ver, enum mplot p,
	       uid_t uid, const char *path, char **out, size_t *len);

#endif
