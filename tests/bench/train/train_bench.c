/* SPDX-License-Identifier: MIT */
/*
 * train_bench: time one train plugin on a data file written by
 * bench_train.py, and print the median time, the test accuracy and the
 * BLAS threads the plugin's OpenBLAS runs on.
 *
 *   train_bench [-n RUNS] PLUGIN.so DATA [name=number|name=[a,b]|name=true ...]
 *
 * The timed span is the plugin's init (the params) and fit, from the
 * arrays in memory to the fitted model, as bench_train.py times
 * scikit-learn's fit() with its input checks; RUNS times (default 3).
 * DATA: u64 n_train, n_test, d, k (little-endian), then x_train (f32,
 * n_train x d), y_train (f32), x_test, y_test.  Single-threaded driver;
 * BLAS threads come from OPENBLAS_NUM_THREADS, as in a job.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mlfs_plugin.h"

static void quiet_log(void *ctx, int level, const char *fmt, ...)
{
	va_list ap;

	(void)ctx;
	fprintf(stderr, "log %d: ", level);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void no_progress(void *ctx, double f, const char *line)
{
	(void)ctx;
	(void)f;
	(void)line;
}

static long epochs_seen;

static void count_metric(void *ctx, const char *name, double v, long step)
{
	(void)ctx;
	(void)v;
	if (strcmp(name, "loss") == 0)
		epochs_seen = step;
}

static int never(void *ctx)
{
	(void)ctx;
	return 0;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
	double s[64];

	memcpy(s, v, (size_t)n * sizeof(*s));
	qsort(s, (size_t)n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static void *slurp(FILE *f, size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p || fread(p, 1, n, f) != n) {
		fprintf(stderr, "short data file\n");
		exit(1);
	}
	return p;
}

int main(int argc, char **argv)
{
	static double lists[16][4];
	struct mlfs_host host = { sizeof(host), NULL, quiet_log, no_progress,
				  count_metric, never, 2, NULL, NULL, NULL, 0 };
	struct mlfs_param params[16];
	const struct mlfs_plugin *pl;
	const struct mlfs_train_ops *o;
	struct mlfs_data train, test;
	struct mlfs_matrix out;
	uint64_t hdr[4];
	size_t np = 0, right = 0, k;
	char msg[256] = "";
	void *h, *inst = NULL;
	double secs[64];
	int (*blas_threads)(void);
	int runs = 3;
	FILE *f;
	float *xtr, *ytr, *xte, *yte;
	int rc;

	if (argc > 2 && strcmp(argv[1], "-n") == 0) {
		runs = atoi(argv[2]);
		argc -= 2;
		argv += 2;
	}
	if (argc < 3 || runs < 1 || runs > 64) {
		fprintf(stderr, "usage: train_bench [-n RUNS (1 to 64)] "
				"PLUGIN.so DATA [p=v ...]\n");
		return 2;
	}
	h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "%s\n", dlerror());
		return 1;
	}
	pl = dlsym(h, "mlfs_plugin");
	o = pl->ops;
	f = fopen(argv[2], "rb");
	if (!f || fread(hdr, sizeof(hdr), 1, f) != 1) {
		fprintf(stderr, "%s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	xtr = slurp(f, hdr[0] * hdr[2] * sizeof(float));
	ytr = slurp(f, hdr[0] * sizeof(float));
	xte = slurp(f, hdr[1] * hdr[2] * sizeof(float));
	yte = slurp(f, hdr[1] * sizeof(float));
	fclose(f);
	train = (struct mlfs_data){ { xtr, hdr[0], hdr[2], hdr[2] }, ytr,
				    hdr[3] };
	test = (struct mlfs_data){ { xte, hdr[1], hdr[2], hdr[2] }, yte,
				   hdr[3] };

	for (int i = 3; i < argc && np < 16; i++, np++) {
		char *eq = strchr(argv[i], '=');
		struct mlfs_param *p = &params[np];

		if (!eq) {
			fprintf(stderr, "%s: want name=value\n", argv[i]);
			return 2;
		}
		*eq = '\0';
		memset(p, 0, sizeof(*p));
		p->name = argv[i];
		if (eq[1] == '[') {
			char *s = eq + 2;

			p->type = MLFS_PARAM_LIST;
			p->list = lists[np];
			while (*s && *s != ']' && p->nlist < 4) {
				lists[np][p->nlist++] = strtod(s, &s);
				s += *s == ',';
			}
		} else if (!strcmp(eq + 1, "true") || !strcmp(eq + 1, "false")) {
			p->type = MLFS_PARAM_BOOL;
			p->number = eq[1] == 't';
		} else if ((eq[1] >= '0' && eq[1] <= '9') || eq[1] == '-' ||
			   eq[1] == '.') {
			p->type = MLFS_PARAM_NUMBER;
			p->number = strtod(eq + 1, NULL);
		} else {
			p->type = MLFS_PARAM_STRING;
			p->string = eq + 1;
		}
	}
	for (int r = 0; r < runs; r++) {
		double t0;

		if (inst)
			o->fini(inst);
		t0 = now();
		rc = o->init(&host, hdr[3] ? MLFS_TASK_CLASSIFICATION
					   : MLFS_TASK_REGRESSION,
			     params, np, &inst, msg, sizeof(msg));
		if (rc < 0) {
			fprintf(stderr, "init: %s\n", msg);
			return 1;
		}
		rc = o->fit(inst, &train, NULL, msg, sizeof(msg));
		secs[r] = now() - t0;
		if (rc < 0) {
			fprintf(stderr, "fit: %d %s\n", rc, msg);
			return 1;
		}
	}
	k = o->outputs(inst);
	out = (struct mlfs_matrix){ malloc(hdr[1] * k * sizeof(float)),
				    hdr[1], k, k };
	o->predict(inst, &test.x, &out);
	for (size_t i = 0; i < hdr[1]; i++) {
		size_t best = 0;

		for (size_t c = 1; c < k; c++)
			if (out.data[i * k + c] > out.data[i * k + best])
				best = c;
		right += best == (size_t)yte[i];
	}
	/* the plugin's own OpenBLAS, found through its handle */
	*(void **)&blas_threads = dlsym(h, "openblas_get_num_threads");
	printf("mlfs %s: fit %.3f s (median of %d:", pl->name,
	       median(secs, runs), runs);
	for (int r = 0; r < runs; r++)
		printf("%s %.3f", r ? "," : "", secs[r]);
	printf("), %ld iterations, test accuracy %.4f; OpenBLAS: %d threads\n",
	       epochs_seen, (double)right / (double)hdr[1],
	       blas_threads ? blas_threads() : -1);
	free(out.data);
	o->fini(inst);
	free(xtr);
	free(ytr);
	free(xte);
	free(yte);
	dlclose(h);
	return 0;
}
