/* SPDX-License-Identifier: MIT */
/*
 * dedupe: the "dedupe" prep plugin keeps the first row of each distinct
 * combination of some columns' values ("columns", comma-separated, as
 * the ABI has no list of strings; by default every column), in order.
 *
 * Cells agree as balance's classes do: a NUMERIC column's by number ("1"
 * and "1.0" are one value), every other column's by its text, byte for
 * byte.  A missing cell agrees with a missing cell only, so two rows
 * missing the same values are duplicates.
 *
 * Nothing random: the seed is not used.  No state; check and run may be
 * called from any thread.
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

struct ddp {
	const char *columns; /* borrowed; NULL: every column */
};

static const struct mlfs_param_spec ddp_params[] = {
	MLFS_PARAM_END,
};

/* Params the table cannot express, in this order in mine[] below. */
static const char *const ddp_own[] = { "columns", NULL };

/* Judge params completely; d's strings borrow from params. */
static int ddp_parse(const struct mlfs_param *params, size_t nparams,
		     struct ddp *d, char *msg, size_t msglen)
{
	const struct mlfs_param *mine[1];
	int rc;

	memset(d, 0, sizeof(*d));
	rc = prep_params(ddp_params, "dedupe", d, ddp_own, mine, params,
			 nparams, msg, msglen);
	if (rc < 0)
		return rc;
	if (mine[0]) {
		rc = prep_names_check(mine[0], msg, msglen);
		if (rc < 0)
			return rc;
		d->columns = mine[0]->string;
	}
	return 0;
}

static int ddp_check(const struct mlfs_param *params, size_t nparams,
		     char *msg, size_t msglen)
{
	struct ddp d;

	return ddp_parse(params, nparams, &d, msg, msglen);
}

/* cols[0..*n): the columns compared; -EINVAL for a name not in t. */
static int ddp_select(const struct ddp *d, const struct mlfs_table *t,
		      size_t *cols, size_t *n, char *msg, size_t msglen)
{
	const char *rest = d->columns;

	*n = 0;
	if (!rest) {
		for (size_t j = 0; j < t->cols; j++)
			cols[(*n)++] = j;
		return 0;
	}
	while (rest) {
		size_t len;
		const char *name = prep_next_name(rest, &len, &rest);
		long j = prep_col_findn(t, name, len);

		if (j < 0)
			return mlfs_err(msg, msglen,
					"column \"%.*s\": not in the table",
					(int)(len < 256 ? len : 256), name);
		/* a name given twice is compared once: *n <= t->cols */
		for (size_t c = 0; c < *n && j >= 0; c++)
			if (cols[c] == (size_t)j)
				j = -1;
		if (j >= 0)
			cols[(*n)++] = (size_t)j;
	}
	return 0;
}

static int ddp_run(const struct mlfs_host *host,
		   const struct mlfs_param *params, size_t nparams,
		   uint64_t seed, const struct mlfs_table *in,
		   struct mlfs_table **out, char *msg, size_t msglen)
{
	struct mlfs_table *t;
	const char **keys = NULL;
	char *buf = NULL;
	size_t *cols, *id = NULL, *keep = NULL, ncols, nids, n = 0;
	bool *seen = NULL;
	struct ddp d;
	int rc;

	(void)seed;
	if (!out)
		return mlfs_err(msg, msglen, "no place for the output table");
	*out = NULL;
	rc = ddp_parse(params, nparams, &d, msg, msglen);
	if (rc < 0)
		return rc;
	rc = prep_table_check(in, msg, msglen);
	if (rc < 0)
		return rc;
	cols = malloc((in->cols ? in->cols : 1) * sizeof(*cols));
	if (!cols)
		return -ENOMEM;
	rc = ddp_select(&d, in, cols, &ncols, msg, msglen);
	if (rc < 0)
		goto out_free;
	rc = prep_row_keys(in, cols, ncols, true, &keys, &buf);
	if (rc < 0)
		goto out_free;
	rc = -ENOMEM;
	id = malloc((in->rows ? in->rows : 1) * sizeof(*id));
	keep = malloc((in->rows ? in->rows : 1) * sizeof(*keep));
	if (!id || !keep)
		goto out_free;
	rc = prep_distinct(keys, in->rows, id, &nids);
	if (rc < 0)
		goto out_free;
	rc = -ENOMEM;
	seen = calloc(nids ? nids : 1, sizeof(*seen));
	if (!seen)
		goto out_free;
	for (size_t i = 0; i < in->rows; i++) {
		if (seen[id[i]])
			continue;
		seen[id[i]] = true;
		keep[n++] = i;
	}
	rc = prep_out_new(in, n, &t);
	if (rc < 0)
		goto out_free;
	for (size_t j = 0; j < in->cols; j++)
		for (size_t r = 0; r < n; r++)
			prep_out_copy(t, r, in, j, keep[r]);
	rc = prep_out_finish(t, in);
	if (rc < 0) {
		prep_out_free(t);
		goto out_free;
	}
	prep_log(host, MLFS_LOG_INFO, "dedupe: kept %zu of %zu rows", n,
		 in->rows);
	*out = t;
out_free:
	free(seen);
	free(keep);
	free(id);
	free(keys);
	free(buf);
	free(cols);
	return rc;
}

static const struct mlfs_prep_ops ddp_ops = {
	.size = sizeof(ddp_ops),
	.check = ddp_check,
	.run = ddp_run,
	.out_free = prep_out_free,
};

MLFS_EXPORT const struct mlfs_plugin mlfs_plugin = {
	.abi_major = MLFS_ABI_MAJOR,
	.abi_minor = MLFS_ABI_MINOR,
	.stage = MLFS_STAGE_PREP,
	.name = "dedupe",
	.version = "1.0.0",
	.ops = &ddp_ops,
};
