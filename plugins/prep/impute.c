/* SPDX-License-Identifier: MIT */
/*
 * impute: the "impute" prep plugin fills missing values, column by
 * column.  NUMERIC columns take the mean or the median of the column's
 * present values, or a constant ("numeric"); CATEGORICAL and TEXT columns
 * take the most frequent value (ties: the one seen first) or a constant
 * ("categorical").  TIME columns are left alone unless "categorical" is
 * "constant", which fills them too: neither a mean nor a mode of
 * timestamps is a sensible default.  "columns" names the columns to fill
 * (comma-separated, as the ABI has no list of strings); by default every
 * column but those with the label role.
 *
 * A filled number is written as the ABI asks: num set, text NULL, and the
 * host prints it.  A column with no present value at all keeps its
 * missing values (mean and median of nothing), and the host's log says so.
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

enum imp_numeric {
	IMP_MEAN,
	IMP_MEDIAN,
	IMP_NUM_CONSTANT,
};

enum imp_categorical {
	IMP_MODE,
	IMP_CAT_CONSTANT,
};

struct imp {
	int numeric;		/* enum imp_numeric */
	int categorical;	/* enum imp_categorical */
	bool has_value;		/* "value" given */
	double value_num;	/* "value" as a number; NaN if it is none */
	const char *value_text; /* "value" as text: the param's, or buf */
	char value_buf[32];	/* a numeric "value" printed */
	const char *columns;	/* borrowed; NULL: all but the label */
};

static const char *const imp_numerics[] = { "mean", "median", "constant",
					    NULL };
static const char *const imp_categoricals[] = { "mode", "constant", NULL };

static const struct mlfs_param_spec imp_params[] = {
	MLFS_PARAM_ENUM("numeric", struct imp, numeric, IMP_MEAN,
			imp_numerics),
	MLFS_PARAM_ENUM("categorical", struct imp, categorical, IMP_MODE,
			imp_categoricals),
	MLFS_PARAM_END,
};

/* Params the table cannot express, in this order in mine[] below. */
static const char *const imp_own[] = { "value", "columns", NULL };

/* The shortest "%g" text that reads back as v. */
static void imp_format(char *buf, size_t len, double v)
{
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, len, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			return;
	}
}

/* s read as a finite number, all of it; NaN if it is not one. */
static double imp_parse_number(const char *s)
{
	char *end;
	double v;

	if (!*s)
		return NAN;
	v = strtod(s, &end);
	if (*end || !isfinite(v))
		return NAN;
	return v;
}

static int imp_parse_columns(const struct mlfs_param *p, struct imp *im,
			     char *msg, size_t msglen)
{
	const char *rest;

	if (p->type != MLFS_PARAM_STRING || !p->string)
		return mlfs_err(msg, msglen,
				"\"columns\": must be a string of column names separated by commas, got %s",
				mlfs_param_type_name(p->type));
	rest = p->string;
	while (rest) {
		size_t len;

		prep_next_name(rest, &len, &rest);
		if (len == 0)
			return mlfs_err(msg, msglen,
					"\"columns\": an empty column name in \"%s\"",
					p->string);
	}
	im->columns = p->string;
	return 0;
}

static int imp_parse_value(const struct mlfs_param *p, struct imp *im,
			   char *msg, size_t msglen)
{
	if (p->type == MLFS_PARAM_NUMBER) {
		if (!isfinite(p->number))
			return mlfs_err(msg, msglen,
					"\"value\": must be finite, got %g",
					p->number);
		im->value_num = p->number;
		imp_format(im->value_buf, sizeof(im->value_buf), p->number);
		im->value_text = im->value_buf;
	} else if (p->type == MLFS_PARAM_STRING && p->string) {
		im->value_text = p->string;
		im->value_num = imp_parse_number(p->string);
	} else {
		return mlfs_err(msg, msglen,
				"\"value\": must be a number or a string, got %s",
				mlfs_param_type_name(p->type));
	}
	im->has_value = true;
	return 0;
}

/* Judge params completely; im's strings borrow from params. */
static int imp_parse(const struct mlfs_param *params, size_t nparams,
		     struct imp *im, char *msg, size_t msglen)
{
	const struct mlfs_param *mine[2];
	bool num_const, cat_const;
	int rc;

	memset(im, 0, sizeof(*im));
	im->value_num = NAN;
	rc = prep_params(imp_params, "impute", im, imp_own, mine, params,
			 nparams, msg, msglen);
	if (rc < 0)
		return rc;
	if (mine[0]) {
		rc = imp_parse_value(mine[0], im, msg, msglen);
		if (rc < 0)
			return rc;
	}
	if (mine[1]) {
		rc = imp_parse_columns(mine[1], im, msg, msglen);
		if (rc < 0)
			return rc;
	}
	num_const = im->numeric == IMP_NUM_CONSTANT;
	cat_const = im->categorical == IMP_CAT_CONSTANT;
	if ((num_const || cat_const) && !im->has_value)
		return mlfs_err(msg, msglen,
				"\"value\": needed for \"%s\": \"constant\"",
				num_const ? "numeric" : "categorical");
	if (im->has_value && !num_const && !cat_const)
		return mlfs_err(msg, msglen,
				"\"value\": used only with \"constant\", but \"numeric\" is \"%s\" and \"categorical\" is \"%s\"",
				imp_numerics[im->numeric],
				imp_categoricals[im->categorical]);
	if (num_const && isnan(im->value_num))
		return mlfs_err(msg, msglen,
				"\"value\": must be a number for \"numeric\": \"constant\", got \"%s\"",
				im->value_text);
	return 0;
}

static int imp_check(const struct mlfs_param *params, size_t nparams,
		     char *msg, size_t msglen)
{
	struct imp im;

	return imp_parse(params, nparams, &im, msg, msglen);
}

/* Mark the columns to fill in sel[]; -EINVAL for a name not in t. */
static int imp_select(const struct imp *im, const struct mlfs_table *t,
		      bool *sel, char *msg, size_t msglen)
{
	const char *rest = im->columns;

	if (!rest) {
		for (size_t j = 0; j < t->cols; j++)
			sel[j] = !(t->col[j].roles & MLFS_ROLE_LABEL);
		return 0;
	}
	while (rest) {
		size_t len;
		const char *name = prep_next_name(rest, &len, &rest);
		bool found = false;

		for (size_t j = 0; j < t->cols; j++) {
			const char *cn = t->col[j].name;

			if (cn && strlen(cn) == len &&
			    memcmp(cn, name, len) == 0) {
				sel[j] = true;
				found = true;
			}
		}
		if (!found)
			return mlfs_err(msg, msglen,
					"column \"%.*s\": not in the table",
					(int)(len < 256 ? len : 256), name);
	}
	return 0;
}

static int imp_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/*
 * The mean or median of the present values of num[0..n): *fill, or NaN
 * when there are none.  -ENOMEM.
 */
static int imp_statistic(int how, const double *num, size_t n, double *fill)
{
	long double sum = 0;
	size_t count = 0;
	double *v;

	*fill = NAN;
	if (how == IMP_MEAN) {
		for (size_t i = 0; i < n; i++) {
			if (isnan(num[i]))
				continue;
			sum += num[i];
			count++;
		}
		if (count)
			*fill = (double)(sum / (long double)count);
		return 0;
	}
	v = malloc((n ? n : 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (!isnan(num[i]))
			v[count++] = num[i];
	if (count) {
		qsort(v, count, sizeof(*v), imp_cmp_double);
		if (count % 2)
			*fill = v[count / 2];
		else
			*fill = v[count / 2 - 1] / 2 + v[count / 2] / 2;
	}
	free(v);
	return 0;
}

static int imp_numeric(const struct mlfs_host *host, const struct imp *im,
		       const char *name, struct mlfs_column *c, size_t rows)
{
	size_t missing = 0;
	double fill;
	int rc;

	for (size_t i = 0; i < rows; i++)
		missing += isnan(c->num[i]);
	if (!missing)
		return 0;
	if (im->numeric == IMP_NUM_CONSTANT) {
		fill = im->value_num;
	} else {
		rc = imp_statistic(im->numeric, c->num, rows, &fill);
		if (rc < 0)
			return rc;
	}
	if (isnan(fill)) {
		prep_log(host, MLFS_LOG_WARNING,
			 "impute: column \"%s\": no values, %zu left missing",
			 name, missing);
		return 0;
	}
	for (size_t i = 0; i < rows; i++) {
		if (!isnan(c->num[i]))
			continue;
		/* the ABI's way: the host prints a changed number */
		c->num[i] = fill;
		c->text[i] = NULL;
	}
	prep_log(host, MLFS_LOG_INFO,
		 "impute: column \"%s\": %zu missing, filled with %s %.17g",
		 name, missing, imp_numerics[im->numeric], fill);
	return 0;
}

/* The most frequent text of c (ties: the first seen); NULL if none. */
static int imp_mode(const struct mlfs_column *c, size_t rows,
		    const char **mode)
{
	const char *const *keys = (const char *const *)c->text;
	size_t *id, *count, nids, best = 0;
	int rc;

	*mode = NULL;
	id = malloc((rows ? rows : 1) * sizeof(*id));
	if (!id)
		return -ENOMEM;
	rc = prep_distinct(keys, rows, id, &nids);
	if (rc < 0)
		goto out_free_id;
	if (!nids)
		goto out_free_id;
	count = calloc(nids, sizeof(*count));
	if (!count) {
		rc = -ENOMEM;
		goto out_free_id;
	}
	for (size_t i = 0; i < rows; i++)
		if (id[i] != SIZE_MAX)
			count[id[i]]++;
	/* ids count in order of first appearance: strict > keeps the first */
	for (size_t v = 1; v < nids; v++)
		if (count[v] > count[best])
			best = v;
	for (size_t i = 0; i < rows; i++) {
		if (id[i] == best) {
			*mode = keys[i];
			break;
		}
	}
	free(count);
out_free_id:
	free(id);
	return rc;
}

static int imp_text(const struct mlfs_host *host, const struct imp *im,
		    const char *name, struct mlfs_column *c, size_t rows)
{
	const char *fill = NULL;
	size_t missing = 0;
	int rc;

	for (size_t i = 0; i < rows; i++)
		missing += !c->text[i];
	if (!missing)
		return 0;
	if (im->categorical == IMP_CAT_CONSTANT) {
		fill = im->value_text;
	} else if (c->type != MLFS_COL_TIME) {
		rc = imp_mode(c, rows, &fill);
		if (rc < 0)
			return rc;
	} else {
		return 0;
	}
	if (!fill) {
		prep_log(host, MLFS_LOG_WARNING,
			 "impute: column \"%s\": no values, %zu left missing",
			 name, missing);
		return 0;
	}
	for (size_t i = 0; i < rows; i++)
		if (!c->text[i])
			c->text[i] = (char *)fill; /* copied at finish */
	prep_log(host, MLFS_LOG_INFO,
		 "impute: column \"%s\": %zu missing, filled with %s \"%s\"",
		 name, missing,
		 imp_categoricals[im->categorical], fill);
	return 0;
}

static int imp_run(const struct mlfs_host *host,
		   const struct mlfs_param *params, size_t nparams,
		   uint64_t seed, const struct mlfs_table *in,
		   struct mlfs_table **out, char *msg, size_t msglen)
{
	struct mlfs_table *t;
	struct imp im;
	bool *sel;
	int rc;

	(void)seed;
	if (!out)
		return mlfs_err(msg, msglen, "no place for the output table");
	*out = NULL;
	rc = imp_parse(params, nparams, &im, msg, msglen);
	if (rc < 0)
		return rc;
	rc = prep_table_check(in, msg, msglen);
	if (rc < 0)
		return rc;
	sel = calloc(in->cols ? in->cols : 1, sizeof(*sel));
	if (!sel)
		return -ENOMEM;
	rc = imp_select(&im, in, sel, msg, msglen);
	if (rc < 0)
		goto out_free_sel;
	rc = prep_out_new(in, in->rows, &t);
	if (rc < 0)
		goto out_free_sel;
	for (size_t j = 0; j < in->cols && rc == 0; j++) {
		struct mlfs_column *c = &t->col[j];
		const char *name;

		for (size_t i = 0; i < in->rows; i++)
			prep_out_copy(t, i, in, j, i);
		if (!sel[j])
			continue;
		name = prep_col_name(&in->col[j]);
		if (c->type == MLFS_COL_NUMERIC)
			rc = imp_numeric(host, &im, name, c, in->rows);
		else if (c->type == MLFS_COL_CATEGORICAL ||
			 c->type == MLFS_COL_TEXT || c->type == MLFS_COL_TIME)
			rc = imp_text(host, &im, name, c, in->rows);
	}
	if (rc == 0)
		rc = prep_out_finish(t, in);
	if (rc < 0) {
		prep_out_free(t);
		goto out_free_sel;
	}
	*out = t;
out_free_sel:
	free(sel);
	return rc;
}

static const struct mlfs_prep_ops imp_ops = {
	.size = sizeof(imp_ops),
	.check = imp_check,
	.run = imp_run,
	.out_free = prep_out_free,
};

MLFS_EXPORT const struct mlfs_plugin mlfs_plugin = {
	.abi_major = MLFS_ABI_MAJOR,
	.abi_minor = MLFS_ABI_MINOR,
	.stage = MLFS_STAGE_PREP,
	.name = "impute",
	.version = "1.0.0",
	.ops = &imp_ops,
};
