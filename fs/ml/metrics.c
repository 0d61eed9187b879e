/* SPDX-License-Identifier: MIT */
/*
 * Evaluation metrics (mlcore.h): classification (accuracy, per-class,
 * confusion, ROC AUC), regression, clustering (silhouette).  Pure.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <jansson.h>

#include "csv.h"
#include "mlcore.h"
#include "mlcore_int.h"
#include "mlfs_plugin.h"

/* ---------------------------------------------------------------- */
/* Metrics. */

struct scored {
	float s;
	bool pos;
};

/* NaN first, so the order is total whatever a model produced. */
static int scored_cmp(const void *a, const void *b)
{
	float x = ((const struct scored *)a)->s;
	float y = ((const struct scored *)b)->s;

	if (isnan(x) || isnan(y))
		return !isnan(x) - !isnan(y);
	return (x > y) - (x < y);
}

/*
 * ROC AUC of class j against the rest by the Mann-Whitney statistic, tied
 * scores sharing their average rank (scikit-learn's value exactly).  NAN
 * when y has no positives or no negatives.
 */
static double auc_ovr(const uint32_t *y, const float *prob, size_t n,
		      size_t k, size_t j, struct scored *tmp)
{
	double rank_sum = 0;
	double npos = 0;
	double nneg;
	size_t i = 0;

	for (i = 0; i < n; i++) {
		tmp[i].s = prob[i * k + j];
		tmp[i].pos = y[i] == j;
		npos += tmp[i].pos;
	}
	nneg = (double)n - npos;
	if (!npos || !nneg)
		return NAN;
	qsort(tmp, n, sizeof(*tmp), scored_cmp);
	i = 0;
	while (i < n) {
		size_t g = i + 1;
		double avg;
		double p = tmp[i].pos;

		while (g < n && !scored_cmp(&tmp[g], &tmp[i])) {
			p += tmp[g].pos;
			g++;
		}
		/* Ranks i+1 .. g share (i + 1 + g) / 2. */
		avg = ((double)i + 1 + (double)g) / 2;
		rank_sum += p * avg;
		i = g;
	}
	return (rank_sum - npos * (npos + 1) / 2) / (npos * nneg);
}

static size_t argmax(const float *v, size_t k)
{
	size_t best = 0;
	size_t j;

	for (j = 1; j < k; j++)
		if (v[j] > v[best])
			best = j;
	return best;
}

static double ratio(uint64_t a, uint64_t b)
{
	return b ? (double)a / (double)b : 0;
}

static json_t *per_class_json(const uint64_t *cm, size_t k,
			      const char *const *classes, double *macro,
			      const uint64_t *pred_n, const uint64_t *true_n)
{
	json_t *o = json_object();
	size_t present = 0;
	size_t j;

	if (!o)
		return NULL;
	for (j = 0; j < k; j++) {
		uint64_t tp = cm[j * k + j];
		double p = ratio(tp, pred_n[j]);
		double r = ratio(tp, true_n[j]);
		double f1 = ratio(2 * tp, pred_n[j] + true_n[j]);
		char num[32];
		const char *name = classes ? classes[j] : NULL;
		json_t *c;

		if (!name) {
			snprintf(num, sizeof(num), "%zu", j);
			name = num;
		}
		c = json_pack("{s:f, s:f, s:f, s:I}", "precision", p, "recall",
			      r, "f1", f1, "support", (json_int_t)true_n[j]);
		if (json_object_set_new(o, name, c)) {
			json_decref(o);
			return NULL;
		}
		/* scikit-learn averages over the labels seen in y or in the
		 * predictions. */
		if (pred_n[j] || true_n[j]) {
			macro[0] += p;
			macro[1] += r;
			macro[2] += f1;
			present++;
		}
	}
	for (j = 0; j < 3; j++)
		macro[j] = present ? macro[j] / (double)present : 0;
	return o;
}

static json_t *confusion_json(const uint64_t *cm, size_t k)
{
	json_t *rows = json_array();
	size_t i;
	size_t j;

	if (!rows)
		return NULL;
	for (i = 0; i < k; i++) {
		json_t *r = json_array();

		if (json_array_append_new(rows, r))
			goto out_fail;
		for (j = 0; j < k; j++)
			if (json_array_append_new(
				    r, json_integer((json_int_t)cm[i * k + j])))
				goto out_fail;
	}
	return rows;

out_fail:
	json_decref(rows);
	return NULL;
}

/* The AUC for metrics.json, or NAN (null) when it is not defined. */
static double roc_auc(const uint32_t *y, const float *prob, size_t n,
		      size_t k, struct scored *tmp)
{
	double sum = 0;
	size_t defined = 0;
	size_t j;

	if (k == 2)
		return auc_ovr(y, prob, n, k, 1, tmp);
	for (j = 0; j < k; j++) {
		double a = auc_ovr(y, prob, n, k, j, tmp);

		if (!isnan(a)) {
			sum += a;
			defined++;
		}
	}
	return defined ? sum / (double)defined : NAN;
}

json_t *metrics_classification(const uint32_t *y, const float *prob,
			       size_t n, size_t k,
			       const char *const *classes)
{
	uint64_t *cm;
	uint64_t *pred_n;
	uint64_t *true_n;
	struct scored *tmp;
	json_t *per_class;
	double macro[3] = { 0, 0, 0 };
	double loss = 0;
	double auc = NAN;
	uint64_t correct = 0;
	json_t *o = NULL;
	int bad = 0;
	size_t i;

	if (!k || (n && (!y || !prob)))
		return NULL;
	for (i = 0; i < n; i++)
		if (y[i] >= k)
			return NULL;
	if (k > SIZE_MAX / sizeof(*cm) / k)
		return NULL;
	cm = calloc(k * k + 2 * k, sizeof(*cm));
	if (!cm)
		return NULL;
	pred_n = cm + k * k;
	true_n = pred_n + k;
	tmp = malloc((n ? n : 1) * sizeof(*tmp));
	if (!tmp)
		goto out_free_cm;

	for (i = 0; i < n; i++) {
		size_t p = argmax(prob + i * k, k);
		double pt = prob[i * k + y[i]];

		cm[y[i] * k + p]++;
		pred_n[p]++;
		true_n[y[i]]++;
		correct += p == y[i];
		if (!(pt >= 1e-15))
			pt = 1e-15;
		if (pt > 1 - 1e-15)
			pt = 1 - 1e-15;
		loss -= log(pt);
	}
	if (n && k >= 2)
		auc = roc_auc(y, prob, n, k, tmp);

	per_class = per_class_json(cm, k, classes, macro, pred_n, true_n);
	if (!per_class)
		goto out_free_tmp;
	o = json_object();
	if (!o) {
		json_decref(per_class);
		goto out_free_tmp;
	}
	bad |= json_object_set_new(o, "accuracy",
				   n ? json_num(ratio(correct, n)) :
				       json_null());
	bad |= json_object_set_new(o, "precision_macro",
				   n ? json_num(macro[0]) : json_null());
	bad |= json_object_set_new(o, "recall_macro",
				   n ? json_num(macro[1]) : json_null());
	bad |= json_object_set_new(o, "f1_macro",
				   n ? json_num(macro[2]) : json_null());
	bad |= json_object_set_new(o, "per_class", per_class);
	bad |= json_object_set_new(o, "roc_auc", json_num(auc));
	bad |= json_object_set_new(o, "log_loss",
				   n ? json_num(loss / (double)n) :
				       json_null());
	bad |= json_object_set_new(o, "confusion_matrix",
				   confusion_json(cm, k));
	bad |= json_object_set_new(o, "n", json_integer((json_int_t)n));
	if (bad) {
		json_decref(o);
		o = NULL;
	}
out_free_tmp:
	free(tmp);
out_free_cm:
	free(cm);
	return o;
}

json_t *metrics_regression(const float *y, const float *pred, size_t n)
{
	double mean = 0;
	double ss_res = 0;
	double ss_tot = 0;
	double abs_sum = 0;
	double r2;
	json_t *o;
	int bad = 0;
	size_t i;

	if (n && (!y || !pred))
		return NULL;
	for (i = 0; i < n; i++)
		mean += y[i];
	if (n)
		mean /= (double)n;
	for (i = 0; i < n; i++) {
		double e = (double)y[i] - (double)pred[i];
		double d = (double)y[i] - mean;

		ss_res += e * e;
		ss_tot += d * d;
		abs_sum += fabs(e);
	}
	/* scikit-learn's force_finite: a constant y scores 1 if predicted
	 * exactly, else 0. */
	if (ss_tot == 0)
		r2 = ss_res == 0 ? 1 : 0;
	else
		r2 = 1 - ss_res / ss_tot;

	o = json_object();
	if (!o)
		return NULL;
	bad |= json_object_set_new(o, "r2", n ? json_num(r2) : json_null());
	bad |= json_object_set_new(o, "rmse",
				   n ? json_num(sqrt(ss_res / (double)n)) :
				       json_null());
	bad |= json_object_set_new(o, "mae",
				   n ? json_num(abs_sum / (double)n) :
				       json_null());
	bad |= json_object_set_new(o, "n", json_integer((json_int_t)n));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a;
	uint32_t y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static size_t label_index(const uint32_t *labels, size_t nl, uint32_t v)
{
	const uint32_t *p = bsearch(&v, labels, nl, sizeof(*labels), u32_cmp);

	return (size_t)(p - labels);
}

/*
 * Mean silhouette of the rows idx[0..s), with distances to every other
 * row of the sample, as scikit-learn's silhouette_score(sample_size=s),
 * into *out: NAN when the sample has fewer than 2 or more than s - 1
 * clusters, where scikit-learn refuses.  Returns 0 or -ENOMEM.
 */
static int silhouette(const float *x, size_t d, const uint32_t *label,
		      const size_t *idx, size_t s, double *out)
{
	uint32_t *labels;
	size_t *lab = NULL;
	size_t *cnt = NULL;
	double *sums = NULL;
	double total = 0;
	size_t nl = 0;
	size_t i;
	size_t j;
	int rc = 0;

	*out = NAN;
	labels = malloc(s * sizeof(*labels));
	if (!labels)
		return -ENOMEM;
	for (i = 0; i < s; i++)
		labels[i] = label[idx[i]];
	qsort(labels, s, sizeof(*labels), u32_cmp);
	for (i = 0; i < s; i++)
		if (!nl || labels[nl - 1] != labels[i])
			labels[nl++] = labels[i];
	if (nl < 2 || nl > s - 1)
		goto out_free;
	lab = malloc(s * sizeof(*lab));
	cnt = calloc(nl, sizeof(*cnt));
	sums = malloc(nl * sizeof(*sums));
	if (!lab || !cnt || !sums) {
		rc = -ENOMEM;
		goto out_free;
	}
	for (i = 0; i < s; i++) {
		lab[i] = label_index(labels, nl, label[idx[i]]);
		cnt[lab[i]]++;
	}
	for (i = 0; i < s; i++) {
		const float *xi = x + idx[i] * d;
		double a;
		double b = INFINITY;
		double m;
		size_t l;

		if (cnt[lab[i]] < 2)
			continue; /* a singleton scores 0 */
		for (l = 0; l < nl; l++)
			sums[l] = 0;
		for (j = 0; j < s; j++) {
			const float *xj = x + idx[j] * d;
			double dd = 0;
			size_t e;

			if (j == i)
				continue;
			for (e = 0; e < d; e++) {
				double t = (double)xi[e] - (double)xj[e];

				dd += t * t;
			}
			sums[lab[j]] += sqrt(dd);
		}
		a = sums[lab[i]] / (double)(cnt[lab[i]] - 1);
		for (l = 0; l < nl; l++)
			if (l != lab[i] && sums[l] / (double)cnt[l] < b)
				b = sums[l] / (double)cnt[l];
		m = a > b ? a : b;
		if (m > 0)
			total += (b - a) / m;
	}
	*out = total / (double)s;
out_free:
	free(sums);
	free(cnt);
	free(lab);
	free(labels);
	return rc;
}

json_t *metrics_clustering(const float *x, size_t n, size_t d,
			   const uint32_t *label, const float *dist2,
			   size_t sample, uint64_t seed)
{
	double inertia = NAN;
	double sil = NAN;
	size_t *idx = NULL;
	size_t s = n;
	json_t *o;
	int bad = 0;
	size_t i;
	int rc;

	if (n && (!x || !label || !d))
		return NULL;
	if (dist2) {
		inertia = 0;
		for (i = 0; i < n; i++)
			inertia += dist2[i];
	}
	if (sample && sample < n)
		s = sample;
	if (s >= 2) {
		idx = malloc(n * sizeof(*idx));
		if (!idx)
			return NULL;
		for (i = 0; i < n; i++)
			idx[i] = i;
		if (s < n) {
			uint64_t state = seed;

			/* The first s of a seeded partial Fisher-Yates. */
			for (i = 0; i < s; i++) {
				size_t j = i + (size_t)prng_below(&state,
								  n - i);
				size_t tmp = idx[i];

				idx[i] = idx[j];
				idx[j] = tmp;
			}
		}
		rc = silhouette(x, d, label, idx, s, &sil);
		free(idx);
		if (rc < 0)
			return NULL;
	}

	o = json_object();
	if (!o)
		return NULL;
	bad |= json_object_set_new(o, "inertia", json_num(inertia));
	bad |= json_object_set_new(o, "silhouette", json_num(sil));
	bad |= json_object_set_new(o, "n", json_integer((json_int_t)n));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

const char *metric_default(unsigned task)
{
	return task == MLFS_TASK_CLASSIFICATION ? "accuracy"
	       : task == MLFS_TASK_REGRESSION	? "r2"
						: "inertia";
}

bool metric_maximize(const char *metric)
{
	return !(strcmp(metric, "log_loss") == 0 ||
		 strcmp(metric, "rmse") == 0 || strcmp(metric, "mae") == 0 ||
		 strcmp(metric, "inertia") == 0);
}
