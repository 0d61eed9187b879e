/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the record loop's SSE4.1 number reader (csv_simd.h)
 * against the loop for any CPU.  csv.c is built in, with CSV_CPU_SSE41()
 * defined here, so each input is scanned both ways, with the float
 * matrix, with the default limits and with fields of at most 12 bytes
 * (each side of the reader's 15): the same error at the same place, or
 * the same rows and every column's type, counts, distinct count and
 * classes, and the same statistics and matrix to the bit.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool use_sse41;
#define CSV_CPU_SSE41() use_sse41

#include "csv.c"

static bool same_double(double a, double b)
{
	return !memcmp(&a, &b, sizeof(a)) || (isnan(a) && isnan(b));
}

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "SSE4.1 and any-CPU scans differ: %s\n", what);
		abort();
	}
}

static void both_ways(const char *data, size_t len,
		      const struct csv_limits *lim)
{
	struct csv_info *info[2] = { NULL, NULL };
	struct csv_matrix mat[2] = { { 0 }, { 0 } };
	struct problem pb[2];
	int rc[2];
	size_t i;
	size_t k;
	int w;

	for (w = 0; w < 2; w++) {
		memset(&pb[w], 0, sizeof(pb[w]));
		use_sse41 = w == 1;
		rc[w] = csv_scan(data, len, lim, &info[w], &mat[w], &pb[w]);
	}
	check(rc[0] == rc[1] && pb[0].line == pb[1].line &&
	      pb[0].col == pb[1].col && !strcmp(pb[0].msg, pb[1].msg),
	      "result");
	if (rc[0] == 0) {
		check(info[0]->nrows == info[1]->nrows &&
		      info[0]->ncols == info[1]->ncols, "shape");
		for (i = 0; i < info[0]->ncols; i++) {
			const struct csv_column *x = &info[0]->cols[i];
			const struct csv_column *y = &info[1]->cols[i];

			check(x->type == y->type && x->count == y->count &&
			      x->missing == y->missing &&
			      x->distinct == y->distinct &&
			      x->nclasses == y->nclasses, "column");
			check(same_double(x->mean, y->mean) &&
			      same_double(x->std, y->std) &&
			      same_double(x->min, y->min) &&
			      same_double(x->max, y->max), "statistics");
			for (k = 0; k < x->nclasses; k++)
				check(x->classes[k].count ==
					      y->classes[k].count &&
				      !strcmp(x->classes[k].value,
					      y->classes[k].value), "classes");
		}
		check(mat[0].rows == mat[1].rows &&
		      !memcmp(mat[0].data, mat[1].data,
			      mat[0].rows * mat[0].cols * sizeof(float)),
		      "matrix");
	}
	for (w = 0; w < 2; w++) {
		csv_info_free(info[w]);
		free(mat[w].data);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct csv_limits short_field = { .max_field = 12 };

	if (!__builtin_cpu_supports("sse4.1"))
		return 0;
	both_ways((const char *)data, size, NULL);
	both_ways((const char *)data, size, &short_field);
	return 0;
}
