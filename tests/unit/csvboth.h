/* SPDX-License-Identifier: MIT */
/*
 * csv.c built in with CSV_CPU_SSE41() under a test's control, and
 * csv_both_ways(): one input scanned with the record loop for any CPU and
 * with the SSE4.1 one, compared to the bit.  For the unit program
 * csvsimd and the libFuzzer target csvsimd; include it once, in place of
 * csv.h.
 */
#ifndef MLFS_TESTS_CSVBOTH_H
#define MLFS_TESTS_CSVBOTH_H

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static bool use_sse41;
#define CSV_CPU_SSE41() use_sse41

#include "csv.c"

static bool same_double(double a, double b)
{
	return !memcmp(&a, &b, sizeof(a)) || (isnan(a) && isnan(b));
}

static bool same_info(const struct csv_info *a, const struct csv_info *b)
{
	size_t i;
	size_t k;

	if (!a || !b)
		return a == b;
	if (a->ncols != b->ncols || a->nrows != b->nrows)
		return false;
	for (i = 0; i < a->ncols; i++) {
		const struct csv_column *x = &a->cols[i];
		const struct csv_column *y = &b->cols[i];

		if (x->type != y->type || x->count != y->count ||
		    x->missing != y->missing || x->distinct != y->distinct ||
		    x->distinct_estimated != y->distinct_estimated ||
		    !same_double(x->mean, y->mean) ||
		    !same_double(x->std, y->std) ||
		    !same_double(x->min, y->min) ||
		    !same_double(x->max, y->max) ||
		    x->nclasses != y->nclasses)
			return false;
		for (k = 0; k < x->nclasses; k++)
			if (x->classes[k].count != y->classes[k].count ||
			    strcmp(x->classes[k].value, y->classes[k].value))
				return false;
	}
	return true;
}

/*
 * Scan buf/len both ways (as one pass, with lim), with the float matrix:
 * true if the answers match (the error, its line, column and message, or
 * every column's counts, statistics and classes, and the matrix).
 * *failed: whether the scan failed.
 */
static bool csv_both_ways(const char *buf, size_t len,
		      const struct csv_limits *lim, bool *failed)
{
	struct csv_info *info[2] = { NULL, NULL };
	struct csv_matrix mat[2] = { { 0 }, { 0 } };
	struct problem pb[2];
	int rc[2];
	bool same;
	int w;

	for (w = 0; w < 2; w++) {
		memset(&pb[w], 0, sizeof(pb[w]));
		use_sse41 = w == 1;
		rc[w] = csv_scan(buf, len, lim, &info[w], &mat[w], &pb[w]);
	}
	*failed = rc[0] < 0;
	same = rc[0] == rc[1] && pb[0].line == pb[1].line &&
	       pb[0].col == pb[1].col && !strcmp(pb[0].msg, pb[1].msg) &&
	       same_info(info[0], info[1]) && mat[0].rows == mat[1].rows;
	if (same && mat[0].data)
		same = !memcmp(mat[0].data, mat[1].data,
			       mat[0].rows * mat[0].cols * sizeof(float));
	for (w = 0; w < 2; w++) {
		csv_info_free(info[w]);
		free(mat[w].data);
	}
	return same;
}

#endif
