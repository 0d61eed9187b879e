/* SPDX-License-Identifier: MIT */
/*
 * augment: the "augment" prep plugin appends augmented copies of the rows
 * after them.  The input's rows come first, unchanged and in order; then
 * "copies" passes over them, each giving one new row per input row, so
 * row rows x (1 + c) + i of the output is copy c of input row i.  Feature
 * columns are the NUMERIC ones that are neither the label nor an id; the
 * method ("method") says what happens to them:
 *
 * - noise: each present value x becomes x + N(0, (sigma x s)^2), s the
 *   standard deviation of the column's finite values (over n, not n - 1;
 *   0 for a column of fewer than two).  A missing value stays missing.
 * - mixup (Zhang et al., 2018): another row j drawn uniformly from the
 *   other rows, and lambda ~ Beta(alpha, alpha), give
 *   lambda x_i + (1 - lambda) x_j in each feature column.  A missing
 *   value counts as the column's mean, as in balance's smote, and stays
 *   missing only where both rows lack it.  Every other column (the label,
 *   ids, categorical, time and text columns) is taken from the row with
 *   the larger weight: i when lambda >= 0.5, else j.  Mixup's soft label,
 *   lambda of one class and 1 - lambda of the other, has no place in a
 *   CSV's class column, and a hard label from the dominant row is what
 *   remains of it.  A table of one row mixes it with itself.
 * - flip, shift, cutout: the feature columns, in order, are the pixels of
 *   an image of "shape" [h, w], row-major, and the step refuses a table
 *   whose count of them is not h x w.  flip mirrors it left to right;
 *   shift moves it down dy and right dx rows and columns (each uniform
 *   in [-pixels, pixels], dy drawn first), with 0 where nothing moved in;
 *   cutout sets a "pixels" x "pixels" square to 0 (default max(1, h / 4)),
 *   centred on a pixel drawn uniformly (row first; the centre is the
 *   lower right of the middle four for an even side) and clipped to the
 *   image.  Missing pixels move as they are.
 *
 * Columns a method does not change are copied.  New numbers are written
 * as the ABI asks: num set, text NULL, and the host prints them.
 *
 * Every random choice comes from a xoshiro256** generator seeded by run's
 * seed, drawn row after row in output order, so one seed gives one
 * table.  No state; check and run may be called from any thread.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlfs_plugin.h"
#include "mlfs_plugin_util.h"
#include "prep_i.h"

#define AUG_COPIES_MAX 1000
#define AUG_SIDE_MAX 1000000 /* of "shape", and "pixels" */
#define AUG_TWO_PI 6.283185307179586
#define AUG_CANCEL_EVERY 4096 /* rows between looks at cancelled() */

enum aug_method {
	AUG_NOISE,
	AUG_MIXUP,
	AUG_FLIP,
	AUG_SHIFT,
	AUG_CUTOUT,
};

struct aug {
	int method;	/* enum aug_method; -1 until given */
	long copies;	/* new rows per input row */
	double sigma;	/* noise: a fraction of each column's std */
	double alpha;	/* mixup: Beta(alpha, alpha) */
	long pixels;	/* shift: the largest move; cutout: the side */
	size_t h;	/* "shape", in pixels; 0 when not given */
	size_t w;
};

static const char *const aug_methods[] = { "noise", "mixup", "flip",
					   "shift", "cutout", NULL };

static const struct mlfs_param_spec aug_params[] = {
	MLFS_PARAM_ENUM("method", struct aug, method, -1, aug_methods),
	MLFS_PARAM_INT("copies", struct aug, copies, 1, 1, AUG_COPIES_MAX),
	MLFS_PARAM_NUMBER_ABOVE("sigma", struct aug, sigma, 0.05, 0),
	MLFS_PARAM_NUMBER_ABOVE("alpha", struct aug, alpha, 0.2, 0),
	MLFS_PARAM_INT("pixels", struct aug, pixels, 1, 1, AUG_SIDE_MAX),
	MLFS_PARAM_END,
};

/* Params the table cannot express, in this order in mine[] below. */
static const char *const aug_own[] = { "shape", NULL };

static bool aug_is_image(int method)
{
	return method == AUG_FLIP || method == AUG_SHIFT ||
	       method == AUG_CUTOUT;
}

static bool aug_given(const struct mlfs_param *params, size_t nparams,
		      const char *name)
{
	for (size_t i = 0; i < nparams; i++)
		if (params[i].name && strcmp(params[i].name, name) == 0)
			return true;
	return false;
}

/* "[2, 0.5]", or what p is instead, for messages about "shape". */
static void aug_shape_text(const struct mlfs_param *p, char *buf, size_t len)
{
	char a[PREP_NUM_LEN], b[PREP_NUM_LEN];

	if (p->type != MLFS_PARAM_LIST) {
		snprintf(buf, len, "%s", mlfs_param_type_name(p->type));
	} else if (p->nlist != 2 || !p->list) {
		snprintf(buf, len, "a list of %zu", p->list ? p->nlist : 0);
	} else {
		prep_format(a, sizeof(a), p->list[0]);
		prep_format(b, sizeof(b), p->list[1]);
		snprintf(buf, len, "[%s, %s]", a, b);
	}
}

static int aug_parse_shape(const struct mlfs_param *p, struct aug *a,
			   char *msg, size_t msglen)
{
	char got[2 * PREP_NUM_LEN + 16];

	aug_shape_text(p, got, sizeof(got));
	if (p->type != MLFS_PARAM_LIST || p->nlist != 2 || !p->list ||
	    !mlfs_param_is_int(p->list[0], 1, 1e18) ||
	    !mlfs_param_is_int(p->list[1], 1, 1e18))
		return mlfs_err(msg, msglen,
				"\"shape\": must be [h, w] with h, w >= 1, got %s",
				got);
	if (p->list[0] > AUG_SIDE_MAX || p->list[1] > AUG_SIDE_MAX)
		return mlfs_err(msg, msglen,
				"\"shape\": must be [h, w] with h, w <= %d, got %s",
				AUG_SIDE_MAX, got);
	a->h = (size_t)p->list[0];
	a->w = (size_t)p->list[1];
	return 0;
}

/* Judge params completely. */
static int aug_parse(const struct mlfs_param *params, size_t nparams,
		     struct aug *a, char *msg, size_t msglen)
{
	const struct mlfs_param *mine[1];
	const char *m;
	int rc;

	memset(a, 0, sizeof(*a));
	rc = prep_params(aug_params, "augment", a, aug_own, mine, params,
			 nparams, msg, msglen);
	if (rc < 0)
		return rc;
	if (a->method < 0)
		return mlfs_err(msg, msglen,
				"\"method\": must be given: \"noise\", \"mixup\", \"flip\", \"shift\" or \"cutout\"");
	m = aug_methods[a->method];
	if (a->method != AUG_NOISE && aug_given(params, nparams, "sigma"))
		return mlfs_err(msg, msglen,
				"\"sigma\": only for \"method\": \"noise\", not \"%s\"",
				m);
	if (a->method != AUG_MIXUP && aug_given(params, nparams, "alpha"))
		return mlfs_err(msg, msglen,
				"\"alpha\": only for \"method\": \"mixup\", not \"%s\"",
				m);
	if (a->method != AUG_SHIFT && a->method != AUG_CUTOUT &&
	    aug_given(params, nparams, "pixels"))
		return mlfs_err(msg, msglen,
				"\"pixels\": only for \"method\": \"shift\" or \"cutout\", not \"%s\"",
				m);
	if (!aug_is_image(a->method)) {
		if (mine[0])
			return mlfs_err(msg, msglen,
					"\"shape\": only for \"method\": \"flip\", \"shift\" or \"cutout\", not \"%s\"",
					m);
		return 0;
	}
	if (!mine[0])
		return mlfs_err(msg, msglen,
				"\"shape\": needed for \"method\": \"%s\"", m);
	rc = aug_parse_shape(mine[0], a, msg, msglen);
	if (rc < 0)
		return rc;
	if (a->method == AUG_CUTOUT && !aug_given(params, nparams, "pixels"))
		a->pixels = a->h / 4 > 1 ? (long)(a->h / 4) : 1;
	return 0;
}

static int aug_check(const struct mlfs_param *params, size_t nparams,
		     char *msg, size_t msglen)
{
	struct aug a;

	return aug_parse(params, nparams, &a, msg, msglen);
}

/* ---- one run ---- */

struct aug_job {
	const struct aug *a;
	const struct mlfs_table *in;
	struct mlfs_table *out;
	size_t *feat;	  /* [d]: the feature (pixel) columns, in order */
	long *feat_of;	  /* [cols]: a column's index in feat, or -1 */
	size_t d;
	double *stat;	  /* [d]: noise: sigma x std; mixup: the mean */
	struct prep_rng rng;
	bool have_spare;  /* Box-Muller gives normals two at a time */
	double spare;
};

static void aug_job_free(struct aug_job *jb)
{
	free(jb->feat);
	free(jb->feat_of);
	free(jb->stat);
}

/* N(0, 1), by Box-Muller. */
static double aug_gauss(struct aug_job *jb)
{
	double u1, u2, r;

	if (jb->have_spare) {
		jb->have_spare = false;
		return jb->spare;
	}
	u1 = 1.0 - prep_rng_unit(&jb->rng); /* (0, 1]: never log(0) */
	u2 = prep_rng_unit(&jb->rng);
	r = sqrt(-2.0 * log(u1));
	jb->spare = r * sin(AUG_TWO_PI * u2);
	jb->have_spare = true;
	return r * cos(AUG_TWO_PI * u2);
}

/*
 * The log of a Gamma(k, 1) draw, by Marsaglia and Tsang's method.  For
 * k < 1 the usual boost, Gamma(k + 1) x U^(1/k), is taken in logs: with
 * alpha 0.2, U^5 of two draws can both underflow to 0, and Beta's ratio
 * of them would be 0/0.
 */
static double aug_log_gamma(struct aug_job *jb, double k)
{
	double boost = 0, d, c;

	if (k < 1) {
		boost = log(1.0 - prep_rng_unit(&jb->rng)) / k;
		k += 1;
	}
	d = k - 1.0 / 3;
	c = 1 / sqrt(9 * d);
	for (;;) {
		double x = aug_gauss(jb), v = 1 + c * x, u;

		if (v <= 0)
			continue;
		v = v * v * v;
		u = 1.0 - prep_rng_unit(&jb->rng);
		if (u < 1 - 0.0331 * x * x * x * x ||
		    log(u) < 0.5 * x * x + d * (1 - v + log(v)))
			return boost + log(d * v);
	}
}

/* Beta(k, k) as G1 / (G1 + G2), from the two draws' logs. */
static double aug_beta(struct aug_job *jb, double k)
{
	double g1 = aug_log_gamma(jb, k);
	double g2 = aug_log_gamma(jb, k);

	return 1 / (1 + exp(g2 - g1));
}

/* Output cell (feature dst, row r) as input cell (feature src, row i). */
static void aug_pixel(struct aug_job *jb, size_t r, size_t dst, size_t i,
		      size_t src)
{
	const struct mlfs_column *c = &jb->in->col[jb->feat[src]];
	struct mlfs_column *o = &jb->out->col[jb->feat[dst]];

	o->text[r] = (char *)prep_text(c, i);
	o->num[r] = prep_num(c, i);
}

static void aug_pixel_zero(struct aug_job *jb, size_t r, size_t dst)
{
	struct mlfs_column *o = &jb->out->col[jb->feat[dst]];

	o->text[r] = NULL;
	o->num[r] = 0;
}

/* Every column of row r that is not a feature, from input row i. */
static void aug_copy_rest(struct aug_job *jb, size_t r, size_t i)
{
	for (size_t j = 0; j < jb->in->cols; j++)
		if (jb->feat_of[j] < 0)
			prep_out_copy(jb->out, r, jb->in, j, i);
}

static void aug_noise_row(struct aug_job *jb, size_t r, size_t i)
{
	aug_copy_rest(jb, r, i);
	for (size_t f = 0; f < jb->d; f++) {
		struct mlfs_column *o = &jb->out->col[jb->feat[f]];
		double x = prep_num(&jb->in->col[jb->feat[f]], i);

		o->text[r] = NULL;
		o->num[r] = isnan(x) ? NAN : x + jb->stat[f] * aug_gauss(jb);
	}
}

static void aug_mixup_row(struct aug_job *jb, size_t r, size_t i)
{
	size_t rows = jb->in->rows, j = i;
	double lambda;

	if (rows > 1) {
		j = prep_rng_below(&jb->rng, rows - 1);
		j += j >= i;
	}
	lambda = aug_beta(jb, jb->a->alpha);
	aug_copy_rest(jb, r, lambda >= 0.5 ? i : j);
	for (size_t f = 0; f < jb->d; f++) {
		const struct mlfs_column *c = &jb->in->col[jb->feat[f]];
		struct mlfs_column *o = &jb->out->col[jb->feat[f]];
		double x = prep_num(c, i), y = prep_num(c, j);

		o->text[r] = NULL;
		if (isnan(x) && isnan(y))
			continue; /* num[r] is NaN from prep_out_new */
		x = isnan(x) ? jb->stat[f] : x;
		y = isnan(y) ? jb->stat[f] : y;
		/* y + lambda (x - y): y exactly when x == y */
		o->num[r] = y + lambda * (x - y);
	}
}

/* A whole number uniform in [-p, p]. */
static long aug_offset(struct aug_job *jb, long p)
{
	return (long)prep_rng_below(&jb->rng, 2 * (size_t)p + 1) - p;
}

static void aug_image_row(struct aug_job *jb, size_t r, size_t i)
{
	const long h = (long)jb->a->h, w = (long)jb->a->w;
	const long p = jb->a->pixels;
	long dy = 0, dx = 0, y0 = 0, y1 = 0, x0 = 0, x1 = 0;

	aug_copy_rest(jb, r, i);
	if (jb->a->method == AUG_SHIFT) {
		dy = aug_offset(jb, p);
		dx = aug_offset(jb, p);
	} else if (jb->a->method == AUG_CUTOUT) {
		y0 = (long)prep_rng_below(&jb->rng, (size_t)h) - p / 2;
		x0 = (long)prep_rng_below(&jb->rng, (size_t)w) - p / 2;
		y1 = y0 + p;
		x1 = x0 + p;
	}
	for (long y = 0; y < h; y++) {
		for (long x = 0; x < w; x++) {
			size_t dst = (size_t)(y * w + x);
			long sy = y - dy, sx = x - dx;

			if (jb->a->method == AUG_FLIP)
				aug_pixel(jb, r, dst, i,
					  (size_t)(y * w + (w - 1 - x)));
			else if (jb->a->method == AUG_CUTOUT &&
				 y >= y0 && y < y1 && x >= x0 && x < x1)
				aug_pixel_zero(jb, r, dst);
			else if (sy < 0 || sy >= h || sx < 0 || sx >= w)
				aug_pixel_zero(jb, r, dst);
			else
				aug_pixel(jb, r, dst, i, (size_t)(sy * w + sx));
		}
	}
}

/*
 * The feature columns, and the statistic noise or mixup needs of each;
 * -EINVAL and msg when an image method's shape does not fit them.
 */
static int aug_features(struct aug_job *jb, const struct mlfs_host *host,
			char *msg, size_t msglen)
{
	const struct mlfs_table *in = jb->in;
	const struct aug *a = jb->a;
	size_t cols = in->cols ? in->cols : 1;

	jb->feat = malloc(cols * sizeof(*jb->feat));
	jb->feat_of = malloc(cols * sizeof(*jb->feat_of));
	jb->stat = calloc(cols, sizeof(*jb->stat));
	if (!jb->feat || !jb->feat_of || !jb->stat)
		return -ENOMEM;
	for (size_t j = 0; j < in->cols; j++) {
		const struct mlfs_column *c = &in->col[j];

		jb->feat_of[j] = -1;
		if (c->type != MLFS_COL_NUMERIC ||
		    (c->roles & (MLFS_ROLE_LABEL | MLFS_ROLE_ID)))
			continue;
		jb->feat_of[j] = (long)jb->d;
		jb->feat[jb->d++] = j;
	}
	if (aug_is_image(a->method)) {
		if (jb->d % a->w != 0 || jb->d / a->w != a->h)
			return mlfs_err(msg, msglen,
					"\"shape\": [%zu, %zu] is %zu x %zu pixels, but the table has %zu pixel columns (numeric, not the label or an id)",
					a->h, a->w, a->h, a->w, jb->d);
		return 0;
	}
	if (!jb->d)
		prep_log(host, MLFS_LOG_WARNING,
			 "augment: no numeric feature columns; %s copies the rows as they are",
			 aug_methods[a->method]);
	for (size_t f = 0; f < jb->d; f++) {
		const struct mlfs_column *c = &in->col[jb->feat[f]];
		double sum = 0, mean, ss = 0;
		size_t n = 0;

		/* finite values only: one inf would make every value NaN */
		for (size_t i = 0; i < in->rows; i++) {
			double v = prep_num(c, i);

			if (isfinite(v)) {
				sum += v;
				n++;
			}
		}
		mean = n ? sum / (double)n : 0;
		for (size_t i = 0; i < in->rows; i++) {
			double v = prep_num(c, i);

			if (isfinite(v))
				ss += (v - mean) * (v - mean);
		}
		if (a->method == AUG_MIXUP)
			jb->stat[f] = mean;
		else
			jb->stat[f] = n > 1 ? a->sigma * sqrt(ss / (double)n)
					    : 0;
	}
	return 0;
}

static int aug_run(const struct mlfs_host *host,
		   const struct mlfs_param *params, size_t nparams,
		   uint64_t seed, const struct mlfs_table *in,
		   struct mlfs_table **out, char *msg, size_t msglen)
{
	const size_t most = (SIZE_MAX / 2) / sizeof(double);
	struct aug_job jb = { .in = in };
	struct aug a;
	size_t rows;
	int rc;

	if (!out)
		return mlfs_err(msg, msglen, "no place for the output table");
	*out = NULL;
	rc = aug_parse(params, nparams, &a, msg, msglen);
	if (rc < 0)
		return rc;
	jb.a = &a;
	rc = prep_table_check(in, msg, msglen);
	if (rc < 0)
		return rc;
	rows = in->rows;
	if (rows > most / (size_t)(a.copies + 1)) {
		mlfs_err(msg, msglen,
			 "\"copies\": %ld makes %zu rows grow past %zu",
			 a.copies, rows, most);
		return -E2BIG;
	}
	rc = aug_features(&jb, host, msg, msglen);
	if (rc < 0)
		goto out_free_job;
	rc = prep_out_new(in, rows * (size_t)(a.copies + 1), &jb.out);
	if (rc < 0)
		goto out_free_job;
	for (size_t j = 0; j < in->cols; j++)
		for (size_t i = 0; i < rows; i++)
			prep_out_copy(jb.out, i, in, j, i);
	prep_rng_seed(&jb.rng, seed);
	for (size_t c = 1; c <= (size_t)a.copies; c++) {
		for (size_t i = 0; i < rows; i++) {
			size_t r = c * rows + i;

			if (i % AUG_CANCEL_EVERY == 0 && prep_cancelled(host)) {
				mlfs_err(msg, msglen, "cancelled");
				rc = -ECANCELED;
				goto out_free_table;
			}
			if (a.method == AUG_NOISE)
				aug_noise_row(&jb, r, i);
			else if (a.method == AUG_MIXUP)
				aug_mixup_row(&jb, r, i);
			else
				aug_image_row(&jb, r, i);
		}
	}
	rc = prep_out_finish(jb.out, in);
	if (rc < 0)
		goto out_free_table;
	*out = jb.out;
	jb.out = NULL;
out_free_table:
	prep_out_free(jb.out);
out_free_job:
	aug_job_free(&jb);
	return rc;
}

static const struct mlfs_prep_ops aug_ops = {
	.size = sizeof(aug_ops),
	.check = aug_check,
	.run = aug_run,
	.out_free = prep_out_free,
};

MLFS_EXPORT const struct mlfs_plugin mlfs_plugin = {
	.abi_major = MLFS_ABI_MAJOR,
	.abi_minor = MLFS_ABI_MINOR,
	.stage = MLFS_STAGE_PREP,
	.name = "augment",
	.version = "1.0.0",
	.ops = &aug_ops,
};
