/* SPDX-License-Identifier: MIT */
/*
 * Inside the job program: out/evaluation.json, what the version's plots
 * are drawn from (models/<m>/v<n>/learning.svg, roc.svg, residuals.svg,
 * clusters.svg), kept in the version so that they draw the same after a
 * remount, a rebuild and on S3:
 *
 *   {"format": 1, "task": ..., "classes": [...] (classification),
 *    "curves": {"loss": [[step, value], ...], "val_accuracy": ...},
 *    "heldout": {"set": "test", "rows": N, "kept": n,
 *                "y": [...], "proba": [[p0, p1, ...], ...]}}
 *
 * "y" is the class number (classification) or the value (regression),
 * "pred" the regression's answers; a clustering keeps "cluster" and "pc"
 * (each row on the first two principal components of the model's
 * inputs) with "explained" (their share of the variance).  At most
 * PLOTDATA_ROWS held-out rows are kept, evenly spaced.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "job_int.h"

#define PLOTDATA_ROWS 5000  /* held-out rows kept */
#define CURVE_POINTS 4096   /* points a curve keeps; then every other */

void curves_add(json_t *curves, const char *name, long step, double value)
{
	json_t *c = json_object_get(curves, name);

	if (!c) {
		c = json_array();
		if (!c || json_object_set_new(curves, name, c) < 0)
			return;
	}
	if (json_array_size(c) >= CURVE_POINTS) {
		/* halve: keep the even points, so the shape stays */
		for (size_t i = 1; i < json_array_size(c); i++)
			json_array_remove(c, i);
	}
	json_array_append_new(c, json_pack("[I, f]", (json_int_t)step, value));
}

/*
 * The first two principal components of the n x d rows x (row-major):
 * pc[2 * i] and pc[2 * i + 1] for row i, and their share of the
 * variance.  Power iteration on the covariance, with deflation: two
 * vectors are all a picture needs, and it is deterministic.
 */
static void principal_2(const float *x, size_t n, size_t d, double *pc,
			double explained[2])
{
	double *c = calloc(d * d, sizeof(*c)), *xc = malloc(n * d * sizeof(*xc));
	double *mean = calloc(d, sizeof(*mean)), *v = malloc(d * sizeof(*v));
	double *vec[2] = { malloc(d * sizeof(double)), malloc(d * sizeof(double)) };
	double total = 0, lambda[2] = { 0, 0 };

	if (!c || !xc || !mean || !v || !vec[0] || !vec[1])
		fail("out of memory");
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < d; j++)
			mean[j] += x[i * d + j] / (double)n;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < d; j++)
			xc[i * d + j] = x[i * d + j] - mean[j];
	cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)n,
		    1.0 / (double)(n > 1 ? n - 1 : 1), xc, (int)d, 0, c, (int)d);
	for (size_t i = 0; i < d; i++) {
		total += c[i * d + i];
		for (size_t j = 0; j < i; j++)
			c[i * d + j] = c[j * d + i];
	}
	for (int k = 0; k < 2; k++) {
		double *u = vec[k];

		for (size_t j = 0; j < d; j++)
			u[j] = 1.0 / sqrt((double)d) + 1e-3 * (double)j;
		for (int it = 0; it < 300; it++) {
			double norm = 0;

			cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)d, (int)d,
				    1, c, (int)d, u, 1, 0, v, 1);
			norm = cblas_dnrm2((int)d, v, 1);
			if (norm == 0)
				break;
			for (size_t j = 0; j < d; j++)
				u[j] = v[j] / norm;
			lambda[k] = norm;
		}
		/* deflate: C -= lambda u u' */
		cblas_dger(CblasRowMajor, (int)d, (int)d, -lambda[k], u, 1, u,
			   1, c, (int)d);
	}
	for (size_t i = 0; i < n; i++)
		for (int k = 0; k < 2; k++)
			pc[2 * i + (size_t)k] =
				d >= (size_t)k + 1
					? cblas_ddot((int)d, xc + i * d, 1,
						     vec[k], 1)
					: 0;
	for (int k = 0; k < 2; k++)
		explained[k] = total > 0 ? lambda[k] / total : 0;
	free(c);
	free(xc);
	free(mean);
	free(v);
	free(vec[0]);
	free(vec[1]);
}

void evaluation_write(const char *path, struct run *run, void *inst,
		      const float *x, const float *y, size_t rows, size_t w,
		      const char *set, json_t *curves,
		      const char *const *classes, size_t ncls)
{
	size_t n = rows < PLOTDATA_ROWS ? rows : PLOTDATA_ROWS, nout;
	float *xs = malloc((n ? n : 1) * w * sizeof(*xs)), *s;
	float *ys = malloc((n ? n : 1) * sizeof(*ys));
	FILE *fp = fopen(path, "we");
	json_t *top;
	char *text;

	if (!fp || !xs || !ys)
		fail("cannot write evaluation.json");
	/* evenly spaced rows: the same ones every time */
	for (size_t k = 0; k < n; k++) {
		size_t i = (size_t)((double)k * (double)rows / (double)n);

		memcpy(xs + k * w, x + i * w, w * sizeof(*xs));
		ys[k] = y ? y[i] : 0;
	}
	s = score(run, inst, xs, n, w, &nout);
	top = json_pack("{s:i, s:s, s:O}", "format", 1, "task", run->taskname,
			"curves", curves);
	if (top && run->task == MLFS_TASK_CLASSIFICATION) {
		json_t *cl = json_array();

		for (size_t c = 0; c < ncls; c++)
			json_array_append_new(cl, json_string(classes[c]));
		json_object_set_new(top, "classes", cl);
	}
	text = top ? json_dumps(top, JSON_COMPACT | JSON_PRESERVE_ORDER |
					     JSON_REAL_PRECISION(9))
		   : NULL;
	json_decref(top);
	if (!text)
		fail("out of memory");
	/* the object without its closing brace, then the rows by hand:
	 * 5,000 rows as jansson values would be 30,000 allocations */
	fprintf(fp, "%.*s, \"heldout\": {\"set\": \"%s\", \"rows\": %zu, "
		    "\"kept\": %zu",
		(int)strlen(text) - 1, text, set, rows, n);
	free(text);
	if (run->task == MLFS_TASK_CLUSTERING) {
		double *pc = malloc((n ? n : 1) * 2 * sizeof(*pc)), ex[2] = { 0, 0 };

		if (!pc)
			fail("out of memory");
		if (n)
			principal_2(xs, n, w, pc, ex);
		fprintf(fp, ", \"explained\": [%.6g, %.6g], \"cluster\": [",
			ex[0], ex[1]);
		for (size_t k = 0; k < n; k++)
			fprintf(fp, "%s%zu", k ? "," : "",
				argmax(s + k * nout, nout));
		fputs("], \"pc\": [", fp);
		for (size_t k = 0; k < n; k++)
			fprintf(fp, "%s[%.6g,%.6g]", k ? "," : "", pc[2 * k],
				pc[2 * k + 1]);
		free(pc);
	} else {
		fputs(", \"y\": [", fp);
		for (size_t k = 0; k < n; k++)
			fprintf(fp, "%s%.9g", k ? "," : "", (double)ys[k]);
		fputs(run->task == MLFS_TASK_REGRESSION ? "], \"pred\": ["
							 : "], \"proba\": [",
		      fp);
		for (size_t k = 0; k < n; k++) {
			fputs(k ? "," : "", fp);
			if (run->task == MLFS_TASK_REGRESSION) {
				fprintf(fp, "%.9g", (double)s[k]);
				continue;
			}
			fputc('[', fp);
			for (size_t c = 0; c < nout; c++)
				fprintf(fp, "%s%.9g", c ? "," : "",
					(double)s[k * nout + c]);
			fputc(']', fp);
		}
	}
	fputs("]}}\n", fp);
	free(s);
	free(xs);
	free(ys);
	if (fclose(fp) != 0)
		fail("writing evaluation.json");
}
