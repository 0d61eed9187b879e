/* SPDX-License-Identifier: MIT */
/*
 * The feature extractor (mlcore.h): fitted on the training split of a
 * table (numeric columns clipped, imputed and standardised; categorical
 * ones one-hot over their most frequent values; times as seconds), then
 * applied to rows the same way in training and in serving.  Pure.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <jansson.h>

#include "csv.h"
#include "mlcore.h"
#include "mlcore_int.h"

/* ---------------------------------------------------------------- */
/* The feature extractor. */

/* A numeric or time field (not missing) as a number; false if unparseable. */
static bool fx_parse(enum fx_kind kind, const char *p, size_t n, double *out)
{
	if (kind == FX_TIME)
		return csv_parse_time(p, n, out);
	return csv_parse_double(p, n, out);
}

/* A numeric or time field as a number; false if missing or unparseable. */
static bool fx_value(enum fx_kind kind, const char *p, size_t n, double *out)
{
	if (csv_is_missing(p, n))
		return false;
	return fx_parse(kind, p, n, out);
}

/* Running statistics of one numeric or time column (Welford: one pass,
 * no cancellation on large offsets such as epoch seconds). */
struct num_acc {
	double mean;
	double m2;
	double lo;
	double hi;
	uint64_t count;
};

static void num_add(struct num_acc *a, double x)
{
	double d = x - a->mean;

	a->count++;
	a->mean += d / (double)a->count;
	a->m2 += d * (x - a->mean);
	if (x < a->lo)
		a->lo = x;
	if (x > a->hi)
		a->hi = x;
}

static void num_finish(const struct num_acc *a, struct fx_column *col)
{
	double mean = a->mean;
	double lo = a->lo;
	double hi = a->hi;

	col->std = a->count ? sqrt(a->m2 / (double)a->count) : 1;
	if (!isfinite(col->std) || col->std == 0)
		col->std = 1;
	if (!a->count || !isfinite(mean) || !isfinite(lo) || !isfinite(hi)) {
		/* Nothing usable to learn from: the output is always 0. */
		mean = 0;
		lo = 0;
		hi = 0;
	}
	col->mean = mean;
	col->min = lo;
	col->max = hi;
	col->impute = mean;
}

struct cat_ref {
	const char *p;
	size_t len;
	uint64_t count;
};

static int cat_value_cmp(const void *a, const void *b)
{
	const struct cat_ref *x = a;
	const struct cat_ref *y = b;

	return bytes_cmp(x->p, x->len, y->p, y->len);
}

/* Most frequent first, ties by value. */
static int cat_count_cmp(const void *a, const void *b)
{
	const struct cat_ref *x = a;
	const struct cat_ref *y = b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return cat_value_cmp(a, b);
}

/*
 * Categories from the non-missing training values v[0..nv) (reordered
 * here): sort them, count runs, keep the FX_MAX_CATS most frequent and
 * store them sorted by value, which is the order of their outputs and
 * what fx_transform_row searches.
 */
static int cat_finish(struct cat_ref *v, size_t nv, struct fx_column *col,
		      struct problem *pb)
{
	size_t nruns = 0;
	size_t keep;
	size_t i;

	qsort(v, nv, sizeof(*v), cat_value_cmp);
	for (i = 0; i < nv; i++) {
		if (nruns && !cat_value_cmp(&v[nruns - 1], &v[i]))
			v[nruns - 1].count++;
		else
			v[nruns++] = v[i];
	}
	qsort(v, nruns, sizeof(*v), cat_count_cmp);
	keep = nruns < FX_MAX_CATS ? nruns : FX_MAX_CATS;
	qsort(v, keep, sizeof(*v), cat_value_cmp);
	for (i = 0; i < keep; i++)
		if (!utf8_valid(v[i].p, v[i].len))
			return problem_set(pb, 0, 0,
					   "\"%s\": a value is not valid UTF-8",
					   col->name);
	col->cats = calloc(keep ? keep : 1, sizeof(*col->cats));
	if (!col->cats)
		return -ENOMEM;
	for (i = 0; i < keep; i++) {
		col->cats[i] = mem_dup(v[i].p, v[i].len);
		if (!col->cats[i])
			return -ENOMEM;
		col->ncats++;
	}
	return 0;
}

/* Per-column state while fitting. */
struct fit_col {
	struct num_acc num;  /* NUMERIC, TIME */
	struct cat_ref *v;   /* ONEHOT: the training values, nrows room */
	size_t nv;
};

/*
 * One pass over the training rows, all columns of a row together: the
 * table is row-major, and walking it a column at a time missed the cache
 * on every field (measured: 3.4 s against 0.9 s for 1M x 50).
 */
static void fit_scan(const struct table *t, const struct fx *fx,
		     struct fit_col *fc, const size_t *rows, size_t nrows)
{
	size_t r;
	size_t i;

	for (r = 0; r < nrows; r++) {
		for (i = 0; i < fx->ncols; i++) {
			const struct fx_column *col = &fx->cols[i];
			const char *p;
			size_t n;
			double x;

			table_field(t, rows[r], col->src, &p, &n);
			if (col->kind != FX_ONEHOT) {
				if (fx_value(col->kind, p, n, &x))
					num_add(&fc[i].num, x);
				continue;
			}
			if (csv_is_missing(p, n))
				continue;
			trim(&p, &n);
			fc[i].v[fc[i].nv++] = (struct cat_ref){ p, n, 1 };
		}
	}
}

static void fx_col_clear(struct fx_column *c)
{
	size_t i;

	free(c->name);
	for (i = 0; i < c->ncats; i++)
		free(c->cats[i]);
	free(c->cats);
}

void fx_free(struct fx *fx)
{
	size_t i;

	if (!fx)
		return;
	for (i = 0; i < fx->ncols; i++)
		fx_col_clear(&fx->cols[i]);
	free(fx->cols);
	free(fx);
}

static size_t fx_col_width(const struct fx_column *c)
{
	return c->kind == FX_ONEHOT ? c->ncats : 1;
}

static int fx_kind_of(const char *type, enum fx_kind *kind)
{
	if (!type || !strcmp(type, "numeric"))
		*kind = FX_NUMERIC;
	else if (!strcmp(type, "categorical"))
		*kind = FX_ONEHOT;
	else if (!strcmp(type, "time"))
		*kind = FX_TIME;
	else
		return -EINVAL;
	return 0;
}

int fx_fit(const struct table *t, const size_t *feat, const char *const *types,
	   size_t nfeat, const size_t *rows, size_t nrows, struct fx **out,
	   struct problem *pb)
{
	struct fit_col *fc;
	struct fx *fx;
	size_t i;
	int rc;

	*out = NULL;
	if (!t || (nfeat && !feat) || (nrows && !rows))
		return -EINVAL;
	/* Check everything before allocating anything. */
	for (i = 0; i < nrows; i++)
		if (rows[i] >= t->nrows)
			return problem_set(pb, 0, 0,
					   "row %zu is out of range (%zu rows)",
					   rows[i], t->nrows);
	for (i = 0; i < nfeat; i++) {
		const char *type = types ? types[i] : NULL;
		enum fx_kind kind;

		if (feat[i] >= t->ncols)
			return problem_set(pb, 0, 0,
					   "column %zu is out of range (%zu "
					   "columns)",
					   feat[i], t->ncols);
		if (type && !strcmp(type, "text"))
			return problem_set(pb, 0, 0,
					   "\"%s\": text columns cannot be "
					   "features (set its type or leave it "
					   "out)",
					   t->names[feat[i]]);
		if (fx_kind_of(type, &kind) < 0)
			return problem_set(pb, 0, 0,
					   "\"%s\": unknown column type \"%s\"",
					   t->names[feat[i]], type);
		if (!utf8_valid(t->names[feat[i]], strlen(t->names[feat[i]])))
			return problem_set(pb, 0, 0,
					   "column %zu: name is not valid "
					   "UTF-8",
					   feat[i]);
	}

	fc = calloc(nfeat ? nfeat : 1, sizeof(*fc));
	if (!fc)
		return -ENOMEM;
	fx = calloc(1, sizeof(*fx));
	if (!fx) {
		rc = -ENOMEM;
		goto out_free_fc;
	}
	fx->cols = calloc(nfeat ? nfeat : 1, sizeof(*fx->cols));
	if (!fx->cols) {
		rc = -ENOMEM;
		goto out_free_fx;
	}
	for (i = 0; i < nfeat; i++) {
		struct fx_column *col = &fx->cols[i];

		fx_kind_of(types ? types[i] : NULL, &col->kind);
		col->src = feat[i];
		/* Counted before filling, so fx_free sees what to free. */
		fx->ncols++;
		col->name = strdup(t->names[feat[i]]);
		if (!col->name) {
			rc = -ENOMEM;
			goto out_free_fx;
		}
		fc[i].num.lo = INFINITY;
		fc[i].num.hi = -INFINITY;
		if (col->kind == FX_ONEHOT) {
			fc[i].v = malloc((nrows ? nrows : 1) *
					 sizeof(*fc[i].v));
			if (!fc[i].v) {
				rc = -ENOMEM;
				goto out_free_fx;
			}
		}
	}
	fit_scan(t, fx, fc, rows, nrows);
	for (i = 0; i < nfeat; i++) {
		struct fx_column *col = &fx->cols[i];

		if (col->kind == FX_ONEHOT) {
			rc = cat_finish(fc[i].v, fc[i].nv, col, pb);
			if (rc < 0)
				goto out_free_fx;
		} else {
			num_finish(&fc[i].num, col);
		}
		fx->width += fx_col_width(col);
	}
	*out = fx;
	fx = NULL;
	rc = 0;
out_free_fx:
	fx_free(fx); /* NULL on success */
out_free_fc:
	for (i = 0; i < nfeat; i++)
		free(fc[i].v);
	free(fc);
	return rc;
}

static int cat_find(const struct fx_column *c, const char *p, size_t n)
{
	size_t lo = 0;
	size_t hi = c->ncats;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *s = c->cats[mid];
		int cmp = bytes_cmp(p, n, s, strlen(s));

		if (!cmp)
			return (int)mid;
		if (cmp < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

/* Column c's value p[0..n) is not a number (a time): why says so. */
static int bad_value(const struct fx_column *c, const char *p, size_t n,
		     char *why, size_t whylen)
{
	bool shown = true;

	for (size_t k = 0; k < n; k++)
		shown = shown && p[k] >= 0x20 && p[k] < 0x7f;
	if (shown && n <= 64)
		snprintf(why, whylen, "%s: not a %s \"%.*s\"", c->name,
			 c->kind == FX_TIME ? "time" : "number", (int)n, p);
	else
		snprintf(why, whylen, "%s: not a %s", c->name,
			 c->kind == FX_TIME ? "time" : "number");
	return -EINVAL;
}

/* Field idx of a row (NULL, n 0: none, or no such column mapped). */
static const char *fx_field(const char *const *fields, const size_t *fieldlen,
			    size_t idx, size_t *n)
{
	*n = 0;
	if (idx == (size_t)-1 || !fields[idx])
		return NULL;
	*n = fieldlen ? fieldlen[idx] : strlen(fields[idx]);
	return fields[idx];
}

/* Does a column of fx map to a field past the row's nfields? */
static bool fx_maps_past(const struct fx *fx, const size_t *map,
			 size_t nfields)
{
	for (size_t i = 0; i < fx->ncols; i++) {
		size_t idx = map ? map[i] : fx->cols[i].src;

		if (idx != (size_t)-1 && idx >= nfields)
			return true;
	}
	return false;
}

/*
 * Column c's one-hot cells at out from the value p[0..n) (NULL: none):
 * all zero for a missing or unknown category.  1 if it was missing.
 */
static int fx_onehot(const struct fx_column *c, const char *p, size_t n,
		     float *out)
{
	int k = -1;

	memset(out, 0, c->ncats * sizeof(*out));
	if (!p || csv_is_missing(p, n))
		return 1;
	trim(&p, &n);
	k = cat_find(c, p, n);
	if (k >= 0)
		out[k] = 1;
	return 0;
}

/* A numeric or time value x of column c, clamped and standardised. */
static float fx_scale(const struct fx_column *c, double x)
{
	if (x < c->min)
		x = c->min;
	if (x > c->max)
		x = c->max;
	return (float)((x - c->mean) / c->std);
}

int fx_check_row(const struct fx *fx, const char *const *fields,
		 const size_t *fieldlen, size_t nfields, const size_t *map,
		 char *why, size_t whylen)
{
	for (size_t i = 0; i < fx->ncols; i++) {
		const struct fx_column *c = &fx->cols[i];
		size_t idx = map ? map[i] : c->src;
		const char *p;
		size_t n;
		double x;

		if (c->kind == FX_ONEHOT || idx == (size_t)-1 || idx >= nfields ||
		    !fields[idx])
			continue;
		p = fields[idx];
		n = fieldlen ? fieldlen[idx] : strlen(p);
		if (csv_is_missing(p, n) ||
		    (fx_value(c->kind, p, n, &x) && isfinite(x)))
			continue;
		return bad_value(c, p, n, why, whylen);
	}
	return 0;
}

int fx_transform_row(const struct fx *fx, const char *const *fields,
		     const size_t *fieldlen, size_t nfields, const size_t *map,
		     float *out)
{
	int imputed = 0;
	size_t i;

	if (fx_maps_past(fx, map, nfields))
		return -EINVAL;
	for (i = 0; i < fx->ncols; i++) {
		const struct fx_column *c = &fx->cols[i];
		size_t idx = map ? map[i] : c->src;
		size_t n;
		const char *p = fx_field(fields, fieldlen, idx, &n);
		double x;

		if (c->kind == FX_ONEHOT) {
			imputed += fx_onehot(c, p, n, out);
			out += c->ncats;
			continue;
		}
		if (!p || !fx_value(c->kind, p, n, &x)) {
			x = c->impute;
			imputed++;
		}
		*out++ = fx_scale(c, x);
	}
	return imputed;
}

int fx_apply_row(const struct fx *fx, const char *const *fields,
		 const size_t *fieldlen, const double *num, size_t nfields,
		 const size_t *map, float *out, char *why, size_t whylen)
{
	int imputed = 0;
	size_t i;

	if (fx_maps_past(fx, map, nfields)) {
		/* rare (no caller maps past its fields): the two passes,
		 * which say what each says about it */
		if (fx_check_row(fx, fields, fieldlen, nfields, map, why,
				 whylen) < 0)
			return -EINVAL;
		return -ERANGE;
	}
	for (i = 0; i < fx->ncols; i++) {
		const struct fx_column *c = &fx->cols[i];
		size_t idx = map ? map[i] : c->src;
		size_t n;
		const char *p = fx_field(fields, fieldlen, idx, &n);
		double x;

		if (c->kind == FX_ONEHOT) {
			imputed += fx_onehot(c, p, n, out);
			out += c->ncats;
			continue;
		}
		if (num && p && c->kind == FX_NUMERIC && !isnan(num[idx])) {
			x = num[idx]; /* fx_parse's value; not missing */
		} else if (!p || csv_is_missing(p, n)) {
			x = c->impute;
			imputed++;
		} else if (!fx_parse(c->kind, p, n, &x) || !isfinite(x)) {
			/* what fx_check_row refuses, with its words */
			return bad_value(c, p, n, why, whylen);
		}
		*out++ = fx_scale(c, x);
	}
	return imputed;
}

static const char *const fx_type_names[] = {
	[FX_NUMERIC] = "numeric",
	[FX_ONEHOT] = "categorical",
	[FX_TIME] = "time",
};

static json_t *fx_col_to_json(const struct fx_column *c)
{
	json_t *o = json_object();
	json_t *cats;
	int bad = 0;
	size_t i;

	if (!o)
		return NULL;
	bad |= json_object_set_new(o, "name", json_string(c->name));
	bad |= json_object_set_new(o, "type",
				   json_string(fx_type_names[c->kind]));
	bad |= json_object_set_new(o, "src", json_integer((json_int_t)c->src));
	if (c->kind == FX_ONEHOT) {
		/* DESIGN.md lists min and max for every feature. */
		bad |= json_object_set_new(o, "min", json_null());
		bad |= json_object_set_new(o, "max", json_null());
		bad |= json_object_set_new(o, "encoding",
					   json_string("onehot"));
		/* a missing value is no category: every output 0 */
		bad |= json_object_set_new(o, "impute", json_null());
		cats = json_array();
		bad |= json_object_set_new(o, "categories", cats);
		for (i = 0; !bad && i < c->ncats; i++)
			bad |= json_array_append_new(cats,
						     json_string(c->cats[i]));
	} else {
		bad |= json_object_set_new(o, "mean", json_num(c->mean));
		bad |= json_object_set_new(o, "std", json_num(c->std));
		bad |= json_object_set_new(o, "min", json_num(c->min));
		bad |= json_object_set_new(o, "max", json_num(c->max));
		bad |= json_object_set_new(o, "impute", json_num(c->impute));
		bad |= json_object_set_new(o, "encoding",
					   json_string("standard"));
	}
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *fx_to_json(const struct fx *fx)
{
	json_t *a = json_array();
	size_t i;

	if (!a)
		return NULL;
	for (i = 0; i < fx->ncols; i++) {
		if (json_array_append_new(a, fx_col_to_json(&fx->cols[i]))) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static int json_get_num(json_t *o, const char *key, double *out)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_number(v))
		return -EINVAL;
	*out = json_number_value(v);
	return isfinite(*out) ? 0 : -EINVAL;
}

static int fx_col_from_json(json_t *o, struct fx_column *c)
{
	json_t *name = json_object_get(o, "name");
	json_t *type = json_object_get(o, "type");
	json_t *src = json_object_get(o, "src");
	json_t *enc = json_object_get(o, "encoding");
	const char *want;
	size_t i;

	if (!json_is_object(o) || !json_is_string(name) ||
	    !json_is_string(type) || !json_is_integer(src) ||
	    json_integer_value(src) < 0)
		return -EINVAL;
	if (fx_kind_of(json_string_value(type), &c->kind) < 0)
		return -EINVAL;
	want = c->kind == FX_ONEHOT ? "onehot" : "standard";
	if (enc && (!json_is_string(enc) ||
		    strcmp(json_string_value(enc), want)))
		return -EINVAL;
	c->src = (size_t)json_integer_value(src);
	if (c->kind == FX_ONEHOT) {
		json_t *cats = json_object_get(o, "categories");
		size_t n = json_array_size(cats);

		if (!json_is_array(cats) || n > FX_MAX_CATS)
			return -EINVAL;
		/* The outputs are in this order: it must be the one fitting
		 * made (sorted, no repeats), or binary search would fail. */
		for (i = 0; i < n; i++) {
			json_t *s = json_array_get(cats, i);

			if (!json_is_string(s))
				return -EINVAL;
			if (i && strcmp(json_string_value(
						json_array_get(cats, i - 1)),
					json_string_value(s)) >= 0)
				return -EINVAL;
		}
		c->cats = calloc(n ? n : 1, sizeof(*c->cats));
		if (!c->cats)
			return -ENOMEM;
		for (i = 0; i < n; i++) {
			c->cats[i] = strdup(
				json_string_value(json_array_get(cats, i)));
			if (!c->cats[i])
				return -ENOMEM;
			c->ncats++;
		}
	} else {
		if (json_get_num(o, "mean", &c->mean) < 0 ||
		    json_get_num(o, "std", &c->std) < 0 ||
		    json_get_num(o, "min", &c->min) < 0 ||
		    json_get_num(o, "max", &c->max) < 0 ||
		    json_get_num(o, "impute", &c->impute) < 0)
			return -EINVAL;
		if (!(c->std > 0) || c->min > c->max)
			return -EINVAL;
	}
	c->name = strdup(json_string_value(name));
	if (!c->name)
		return -ENOMEM;
	return 0;
}

int fx_from_json(json_t *j, struct fx **out)
{
	size_t n = json_array_size(j);
	struct fx *fx;
	size_t i;
	int rc;

	*out = NULL;
	if (!json_is_array(j))
		return -EINVAL;
	fx = calloc(1, sizeof(*fx));
	if (!fx)
		return -ENOMEM;
	fx->cols = calloc(n ? n : 1, sizeof(*fx->cols));
	if (!fx->cols) {
		rc = -ENOMEM;
		goto out_free_fx;
	}
	for (i = 0; i < n; i++) {
		fx->ncols++;
		rc = fx_col_from_json(json_array_get(j, i), &fx->cols[i]);
		if (rc < 0)
			goto out_free_fx;
		fx->width += fx_col_width(&fx->cols[i]);
	}
	*out = fx;
	return 0;

out_free_fx:
	fx_free(fx);
	return rc;
}
