/* SPDX-License-Identifier: MIT */
/*
 * filter: the "filter" prep plugin keeps the rows where one column's
 * value stands in a relation ("op": ==, !=, <, <=, >, >= or "contains")
 * to "value", in their order.
 *
 * A NUMERIC column and a number "value" compare as numbers; anything else
 * compares as text, byte by byte (code point order for UTF-8): the cell
 * as the CSV has it, and a number "value" as its shortest text ("value":
 * 3 is "3").  "contains" is always text: the cell holds "value" as a
 * substring.  A missing cell matches only "!=", which is what a reader of
 * "keep rows whose x is not 3" expects of a row with no x.
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

enum flt_op {
	FLT_EQ,
	FLT_NE,
	FLT_LT,
	FLT_LE,
	FLT_GT,
	FLT_GE,
	FLT_CONTAINS,
};

struct flt {
	int op;			     /* enum flt_op; -1 until given */
	const char *column;	     /* borrowed */
	bool value_is_num;	     /* "value" is a number */
	double value_num;
	const char *value_text;	     /* the param's, or value_buf */
	char value_buf[PREP_NUM_LEN]; /* a number "value" printed */
};

static const char *const flt_op_names[] = { "==", "!=", "<",	      "<=",
				       ">",  ">=", "contains", NULL };

static const struct mlfs_param_spec flt_params[] = {
	MLFS_PARAM_ENUM("op", struct flt, op, -1, flt_op_names),
	MLFS_PARAM_END,
};

/* Params the table cannot express, in this order in mine[] below. */
static const char *const flt_own[] = { "column", "value", NULL };

static int flt_parse_value(const struct mlfs_param *p, struct flt *f,
			   char *msg, size_t msglen)
{
	if (p->type == MLFS_PARAM_NUMBER) {
		if (!isfinite(p->number))
			return mlfs_err(msg, msglen,
					"\"value\": must be finite, got %g",
					p->number);
		f->value_is_num = true;
		f->value_num = p->number;
		prep_format(f->value_buf, sizeof(f->value_buf), p->number);
		f->value_text = f->value_buf;
		return 0;
	}
	if (p->type == MLFS_PARAM_STRING && p->string) {
		f->value_text = p->string;
		return 0;
	}
	return mlfs_err(msg, msglen,
			"\"value\": must be a number or a string, got %s",
			mlfs_param_type_name(p->type));
}

/* Judge params completely; f's strings borrow from params. */
static int flt_parse(const struct mlfs_param *params, size_t nparams,
		     struct flt *f, char *msg, size_t msglen)
{
	const struct mlfs_param *mine[2];
	int rc;

	memset(f, 0, sizeof(*f));
	rc = prep_params(flt_params, "filter", f, flt_own, mine, params,
			 nparams, msg, msglen);
	if (rc < 0)
		return rc;
	if (!mine[0])
		return mlfs_err(msg, msglen, "\"column\": must be given");
	if (mine[0]->type != MLFS_PARAM_STRING || !mine[0]->string)
		return mlfs_err(msg, msglen,
				"\"column\": must be a column name, got %s",
				mlfs_param_type_name(mine[0]->type));
	if (!*mine[0]->string)
		return mlfs_err(msg, msglen,
				"\"column\": must be a column name, got \"\"");
	f->column = mine[0]->string;
	if (f->op < 0)
		return mlfs_err(msg, msglen,
				"\"op\": must be given: \"==\", \"!=\", \"<\", \"<=\", \">\", \">=\" or \"contains\"");
	if (!mine[1])
		return mlfs_err(msg, msglen, "\"value\": must be given");
	return flt_parse_value(mine[1], f, msg, msglen);
}

static int flt_check(const struct mlfs_param *params, size_t nparams,
		     char *msg, size_t msglen)
{
	struct flt f;

	return flt_parse(params, nparams, &f, msg, msglen);
}

/* A comparison's result (<0, 0, >0) against op. */
static bool flt_holds(int op, int cmp)
{
	switch (op) {
	case FLT_EQ:
		return cmp == 0;
	case FLT_NE:
		return cmp != 0;
	case FLT_LT:
		return cmp < 0;
	case FLT_LE:
		return cmp <= 0;
	case FLT_GT:
		return cmp > 0;
	case FLT_GE:
		return cmp >= 0;
	}
	return false;
}

static bool flt_match(const struct flt *f, const struct mlfs_column *c,
		      size_t row)
{
	char num[PREP_NUM_LEN];
	const char *v;

	if (f->op != FLT_CONTAINS && f->value_is_num &&
	    c->type == MLFS_COL_NUMERIC) {
		double x = prep_num(c, row);

		if (isnan(x))
			return f->op == FLT_NE;
		return flt_holds(f->op,
				 (x > f->value_num) - (x < f->value_num));
	}
	v = prep_cell(c, row, num);
	if (!v)
		return f->op == FLT_NE;
	if (f->op == FLT_CONTAINS)
		return strstr(v, f->value_text) != NULL;
	return flt_holds(f->op, strcmp(v, f->value_text));
}

static int flt_run(const struct mlfs_host *host,
		   const struct mlfs_param *params, size_t nparams,
		   uint64_t seed, const struct mlfs_table *in,
		   struct mlfs_table **out, char *msg, size_t msglen)
{
	struct mlfs_table *t;
	size_t *keep, n = 0;
	struct flt f;
	long col;
	int rc;

	(void)seed;
	if (!out)
		return mlfs_err(msg, msglen, "no place for the output table");
	*out = NULL;
	rc = flt_parse(params, nparams, &f, msg, msglen);
	if (rc < 0)
		return rc;
	rc = prep_table_check(in, msg, msglen);
	if (rc < 0)
		return rc;
	col = prep_col_find(in, f.column);
	if (col < 0)
		return mlfs_err(msg, msglen,
				"\"column\": column \"%s\" not in the table",
				f.column);
	keep = malloc((in->rows ? in->rows : 1) * sizeof(*keep));
	if (!keep)
		return -ENOMEM;
	for (size_t i = 0; i < in->rows; i++)
		if (flt_match(&f, &in->col[col], i))
			keep[n++] = i;
	rc = prep_out_new(in, n, &t);
	if (rc < 0)
		goto out_free_keep;
	for (size_t j = 0; j < in->cols; j++)
		for (size_t r = 0; r < n; r++)
			prep_out_copy(t, r, in, j, keep[r]);
	rc = prep_out_finish(t, in);
	if (rc < 0) {
		prep_out_free(t);
		goto out_free_keep;
	}
	prep_log(host, MLFS_LOG_INFO,
		 "filter: \"%s\" %s \"%s\": kept %zu of %zu rows", f.column,
		 flt_op_names[f.op], f.value_text, n, in->rows);
	*out = t;
out_free_keep:
	free(keep);
	return rc;
}

static const struct mlfs_prep_ops flt_ops = {
	.size = sizeof(flt_ops),
	.check = flt_check,
	.run = flt_run,
	.out_free = prep_out_free,
};

MLFS_EXPORT const struct mlfs_plugin mlfs_plugin = {
	.abi_major = MLFS_ABI_MAJOR,
	.abi_minor = MLFS_ABI_MINOR,
	.stage = MLFS_STAGE_PREP,
	.name = "filter",
	.version = "1.0.0",
	.ops = &flt_ops,
};
