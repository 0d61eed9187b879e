/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the CSV scanner (fs/base/csv.c).  csv_scan takes a whole
 * file (it has no incremental API: a dataset is scanned once, complete,
 * at close), so each input is scanned whole, with the float matrix, once
 * with the default limits and once with tiny ones that make the field,
 * record and column ceilings reachable.  What csv_scan accepts, the
 * trainer's table_parse (fs/ml/table.c) must accept too, with the same
 * shape: a file whose stats and training rows disagree would be a bug.
 * The same input scanned in 3 parts on threads (csv_scan_split()) must
 * end as the one pass does: the same error at the same place, or the
 * same rows, types and distinct counts.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "mlcore.h"

static void split(const char *data, size_t len, const struct csv_info *one,
		  const struct problem *pone, int rone)
{
	struct csv_info *info = NULL;
	struct problem pb = { 0 };
	size_t i;
	int rc = csv_scan_split(data, len, NULL, &info, NULL, &pb, 3);

	if (rc != rone || (rc < 0 && (pb.line != pone->line ||
				      pb.col != pone->col ||
				      strcmp(pb.msg, pone->msg)))) {
		fprintf(stderr, "split: %d %u:%u %s; one pass: %d %u:%u %s\n",
			rc, pb.line, pb.col, pb.msg, rone, pone->line,
			pone->col, pone->msg);
		abort();
	}
	if (rc < 0)
		return;
	assert(info->nrows == one->nrows && info->ncols == one->ncols);
	for (i = 0; i < one->ncols; i++) {
		assert(info->cols[i].type == one->cols[i].type);
		assert(info->cols[i].count == one->cols[i].count);
		assert(info->cols[i].missing == one->cols[i].missing);
		assert(info->cols[i].distinct == one->cols[i].distinct);
		assert(info->cols[i].nclasses == one->cols[i].nclasses);
	}
	csv_info_free(info);
}

static void scan(const char *data, size_t len, const struct csv_limits *lim)
{
	struct csv_matrix mat = { 0 };
	struct csv_info *info = NULL;
	struct table *t = NULL;
	struct problem pb = { 0 };
	int rc;

	rc = csv_scan(data, len, lim, &info, &mat, &pb);
	if (!lim)
		split(data, len, info, &pb, rc);
	if (rc < 0) {
		assert(!info && !mat.data);
		return;
	}
	assert(mat.rows == info->nrows && mat.cols == info->ncols);
	if (!lim) {
		rc = table_parse(data, len, &t, &pb);
		if (rc != 0 || t->nrows != info->nrows ||
		    t->ncols != info->ncols) {
			fprintf(stderr, "csv_scan: %llu x %zu; table_parse: %d "
					"%zu x %zu (%s)\n",
				(unsigned long long)info->nrows, info->ncols,
				rc, t ? t->nrows : 0, t ? t->ncols : 0,
				pb.msg);
			abort();
		}
		table_free(t);
	}
	free(mat.data);
	csv_info_free(info);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct csv_limits tiny = {
		.max_field = 16,
		.max_line = 64,
		.max_cols = 8,
	};

	scan((const char *)data, size, NULL);
	scan((const char *)data, size, &tiny);
	return 0;
}
