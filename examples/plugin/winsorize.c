/* SPDX-License-Identifier: MIT */
/*
 * winsorize: a third-party prep plugin for mlfs, built out of tree
 * against the installed header (see Makefile).  One step of a dataset's
 * `prepare` spec, {"winsorize": {"lo": 0, "hi": 100}}, clips every
 * numeric column but the label and ids to [lo, hi]; "column" names one
 * column instead.  Nothing random: the seed is not used.
 *
 * A prep plugin reads a table and makes a new one that shares nothing
 * with it (mlfs_plugin.h, "ABI 1.3"): here the same columns, numbers
 * clipped, and the text of a clipped value set to NULL so that the host
 * prints the number.  No state: check and run may run on any thread.
 */
#define _POSIX_C_SOURCE 200809L /* strdup, in -std=c11 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mlfs_plugin.h>

struct wins {
	double lo, hi;
	const char *column; /* NULL: every numeric feature */
};

static int bad(char *msg, size_t msglen, const char *why)
{
	snprintf(msg, msglen, "%s", why);
	return -EINVAL;
}

static int parse(const struct mlfs_param *p, size_t n, struct wins *w,
		 char *msg, size_t msglen)
{
	bool lo = false, hi = false;

	w->column = NULL;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(p[i].name, "column") == 0 &&
		    p[i].type == MLFS_PARAM_STRING) {
			w->column = p[i].string;
		} else if (strcmp(p[i].name, "lo") == 0 &&
			   p[i].type == MLFS_PARAM_NUMBER) {
			w->lo = p[i].number;
			lo = true;
		} else if (strcmp(p[i].name, "hi") == 0 &&
			   p[i].type == MLFS_PARAM_NUMBER) {
			w->hi = p[i].number;
			hi = true;
		} else {
			snprintf(msg, msglen,
				 "\"%s\": unknown, or not the right type "
				 "(lo and hi: numbers; column: a name)",
				 p[i].name);
			return -EINVAL;
		}
	}
	if (!lo || !hi)
		return bad(msg, msglen, "\"lo\" and \"hi\" are needed");
	if (!(w->lo <= w->hi))
		return bad(msg, msglen, "\"lo\": must be at most \"hi\"");
	return 0;
}

static int wins_check(const struct mlfs_param *params, size_t nparams,
		      char *msg, size_t msglen)
{
	struct wins w;

	return parse(params, nparams, &w, msg, msglen);
}

static void wins_free(struct mlfs_table *t)
{
	if (!t)
		return;
	for (size_t c = 0; c < t->cols; c++) {
		for (size_t r = 0; t->col[c].text && r < t->rows; r++)
			free(t->col[c].text[r]);
		free(t->col[c].text);
		free(t->col[c].num);
		free((char *)t->col[c].name);
	}
	free(t->col);
	free(t);
}

static bool clipped(const struct wins *w, const struct mlfs_column *c)
{
	if (c->type != MLFS_COL_NUMERIC || !c->num)
		return false;
	if (w->column)
		return strcmp(c->name, w->column) == 0;
	return !(c->roles & (MLFS_ROLE_LABEL | MLFS_ROLE_ID));
}

/* Column src into dst, clipped if asked: 0 or -ENOMEM. */
static int copy_col(const struct wins *w, const struct mlfs_column *src,
		    struct mlfs_column *dst, size_t rows)
{
	bool clip = clipped(w, src);

	dst->name = strdup(src->name);
	dst->type = src->type;
	dst->roles = src->roles;
	dst->text = calloc(rows ? rows : 1, sizeof(*dst->text));
	if (src->num)
		dst->num = malloc((rows ? rows : 1) * sizeof(*dst->num));
	if (!dst->name || !dst->text || (src->num && !dst->num))
		return -ENOMEM;
	for (size_t r = 0; r < rows; r++) {
		double v = src->num ? src->num[r] : NAN;
		bool moved = clip && !isnan(v) && (v < w->lo || v > w->hi);

		if (src->num)
			dst->num[r] = moved ? (v < w->lo ? w->lo : w->hi) : v;
		if (src->text[r] && !moved) {
			dst->text[r] = strdup(src->text[r]);
			if (!dst->text[r])
				return -ENOMEM;
		}
	}
	return 0;
}

static int wins_run(const struct mlfs_host *host,
		    const struct mlfs_param *params, size_t nparams,
		    uint64_t seed, const struct mlfs_table *in,
		    struct mlfs_table **out, char *msg, size_t msglen)
{
	struct mlfs_table *t;
	struct wins w;
	bool found = false;
	int rc = parse(params, nparams, &w, msg, msglen);

	(void)host;
	(void)seed;
	*out = NULL;
	if (rc < 0)
		return rc;
	for (size_t c = 0; c < in->cols; c++)
		found |= clipped(&w, &in->col[c]);
	if (w.column && !found) {
		snprintf(msg, msglen, "column \"%s\": not a numeric column",
			 w.column);
		return -EINVAL;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->rows = in->rows;
	t->cols = in->cols;
	t->col = calloc(in->cols ? in->cols : 1, sizeof(*t->col));
	rc = t->col ? 0 : -ENOMEM;
	for (size_t c = 0; rc == 0 && c < in->cols; c++)
		rc = copy_col(&w, &in->col[c], &t->col[c], in->rows);
	if (rc < 0) {
		wins_free(t);
		return bad(msg, msglen, "out of memory");
	}
	*out = t;
	return 0;
}

static const struct mlfs_prep_ops wins_ops = {
	.size = sizeof(struct mlfs_prep_ops),
	.check = wins_check,
	.run = wins_run,
	.out_free = wins_free,
};

MLFS_EXPORT const struct mlfs_plugin mlfs_plugin = {
	.abi_major = MLFS_ABI_MAJOR,
	.abi_minor = MLFS_ABI_MINOR,
	.stage = MLFS_STAGE_PREP,
	.name = "winsorize",
	.version = "1.0",
	.ops = &wins_ops,
};
