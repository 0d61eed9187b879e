/* SPDX-License-Identifier: MIT */
/*
 * The pictures mlfs draws (svg.h does the drawing): a version's learning
 * curves, ROC curves, confusion matrix, residuals and clusters, a
 * search's trials and a deployment's last day.  Pure: JSON in, SVG
 * appended to out; any thread.  Each returns 0, -EINVAL when the data
 * cannot make the picture (with why), or the strbuf's error.
 */
#ifndef MLFS_ML_PLOT_H
#define MLFS_ML_PLOT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct strbuf;

/*
 * plot_auc: the area under the ROC curve of scores s[0..n) for the
 * labels pos[i] (true: the positive class), ties counted as half, as
 * scikit-learn's roc_auc_score counts them.  NaN without a positive or
 * a negative.
 */
double plot_auc(const double *s, const bool *pos, size_t n);

/* curves {name: [[step, value], ...]} (evaluation.json): losses above,
 * the other metrics below. */
int plot_learning(struct strbuf *out, const char *title, json_t *curves);
/* One ROC curve per class (binary: of the second class), AUCs in the
 * legend, from evaluation.json (eval). */
int plot_roc(struct strbuf *out, const char *title, json_t *eval);
/* matrix k x k (rows true), with the class names on the axes. */
int plot_confusion(struct strbuf *out, const char *title, json_t *matrix,
		   json_t *classes);
/* Predicted against true, and residuals, from evaluation.json; label
 * names the quantity (its unit is the data's). */
int plot_residuals(struct strbuf *out, const char *title, json_t *eval,
		   const char *label);
/* The rows on their first two principal components, by cluster. */
int plot_clusters(struct strbuf *out, const char *title, json_t *eval);
/*
 * A search's trials (jobs/<j>/trials: [{trial, budget, status, metrics,
 * best}]): metric per trial, the best marked, the best so far as a
 * step line; maximize says which way is better.
 */
int plot_trials(struct strbuf *out, const char *title, json_t *trials,
		const char *metric, bool maximize);
/*
 * A deployment's metrics lines (JSON, one per candidate per interval)
 * from since (seconds since the epoch) on: requests, latency p99,
 * accuracy (regression: rmse) and PSI per candidate.
 */
int plot_deployment(struct strbuf *out, const char *title, const char *lines,
		    size_t len, double since, double until);

#endif
