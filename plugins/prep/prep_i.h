/* SPDX-License-Identifier: MIT */
/*
 * prep_i.h: what the prep plugins of this directory share, as static
 * inline functions, so each plugin stays one shared object that exports
 * only its descriptor and sees nothing of the daemon but mlfs_plugin.h.
 *
 * - A seeded generator (xoshiro256**, seeded through splitmix64), so the
 *   same seed gives the same table on every host.
 * - Host calls that tolerate a NULL or older (shorter) host table.
 * - Cells: the text and the number of a cell, whatever the host filled in.
 * - Params: the util header's table for numbers and enums, and the
 *   plugin's own checks for the params the table cannot express (strings,
 *   "a number or a string").
 * - Column lists ("a, b", as the ABI has no list of strings).
 * - Distinct values: numbering strings by first appearance, and a key a
 *   row over chosen columns to number rows by.
 * - The output table.  prep_out_new() makes it with every text array and
 *   number array allocated; a plugin fills text[] with pointers borrowed
 *   from the input (or from its own strings) and num[] with values, then
 *   prep_out_finish() copies every string into one block per column, so
 *   the result shares nothing with the input.  prep_out_free() releases a
 *   table at any point of that.
 *
 * Nothing here keeps state: thread-safe as the caller's data.
 */
#ifndef MLFS_PLUGINS_PREP_PREP_I_H
#define MLFS_PLUGINS_PREP_PREP_I_H

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlfs_plugin.h"
#include "mlfs_plugin_util.h"

/* ---- the generator ---- */

struct prep_rng {
	uint64_t s[4];
};

static inline uint64_t prep_splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static inline void prep_rng_seed(struct prep_rng *r, uint64_t seed)
{
	/* splitmix64 never gives four zero words from one seed */
	for (int i = 0; i < 4; i++)
		r->s[i] = prep_splitmix64(&seed);
}

static inline uint64_t prep_rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman and Vigna) */
static inline uint64_t prep_rng_next(struct prep_rng *r)
{
	uint64_t *s = r->s;
	uint64_t out = prep_rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = prep_rotl(s[3], 45);
	return out;
}

/* Uniform in [0, 1), 53 bits. */
static inline double prep_rng_unit(struct prep_rng *r)
{
	return (double)(prep_rng_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform in [0, n) for n >= 1, without modulo bias. */
static inline size_t prep_rng_below(struct prep_rng *r, size_t n)
{
	uint64_t lim = (uint64_t)n;
	uint64_t floor_ = (0 - lim) % lim; /* 2^64 mod n */
	uint64_t x;

	do {
		x = prep_rng_next(r);
	} while (x < floor_);
	return (size_t)(x % lim);
}

/* ---- the host ---- */

/* Whether the host table has field f (an older host's is shorter). */
#define PREP_HOST_HAS(h, f)                                                 \
	((h) && (h)->size >= offsetof(struct mlfs_host, f) + sizeof((h)->f) && \
	 (h)->f)

MLFS_UTIL_PRINTF(3, 4)
static inline void prep_log(const struct mlfs_host *host, int level,
			    const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!PREP_HOST_HAS(host, log))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	host->log(host->ctx, level, "%s", line);
}

static inline bool prep_cancelled(const struct mlfs_host *host)
{
	return PREP_HOST_HAS(host, cancelled) && host->cancelled(host->ctx);
}

/* ---- cells ---- */

/* The text of a cell: NULL when missing (or the host gave no text). */
static inline const char *prep_text(const struct mlfs_column *c, size_t row)
{
	return c->text ? c->text[row] : NULL;
}

/*
 * The number of a NUMERIC column's cell: num[] when the host filled it
 * in, else the text read as a number (the whole of it); NaN when missing.
 * NaN for any other type.
 */
static inline double prep_num(const struct mlfs_column *c, size_t row)
{
	const char *t;
	char *end;
	double v;

	if (c->type != MLFS_COL_NUMERIC)
		return NAN;
	if (c->num)
		return c->num[row];
	t = prep_text(c, row);
	if (!t || !*t)
		return NAN;
	v = strtod(t, &end);
	return *end ? NAN : v;
}

/* Whether a cell is missing: NaN for NUMERIC columns, else no text. */
static inline bool prep_missing(const struct mlfs_column *c, size_t row)
{
	if (c->type == MLFS_COL_NUMERIC)
		return isnan(prep_num(c, row));
	return !prep_text(c, row);
}

/* "age", or "(unnamed)" for a column without a name, for messages. */
static inline const char *prep_col_name(const struct mlfs_column *c)
{
	return c->name ? c->name : "(unnamed)";
}

/* The first column named name, or -1. */
static inline long prep_col_find(const struct mlfs_table *t, const char *name)
{
	for (size_t j = 0; j < t->cols; j++)
		if (t->col[j].name && strcmp(t->col[j].name, name) == 0)
			return (long)j;
	return -1;
}

/* A table run can read without faults; -EINVAL and msg if not. */
static inline int prep_table_check(const struct mlfs_table *t, char *msg,
				   size_t msglen)
{
	if (!t)
		return mlfs_err(msg, msglen, "no input table");
	if (t->cols && !t->col)
		return mlfs_err(msg, msglen, "input table has no columns");
	/* every output array is rows pointers or doubles, plus some */
	if (t->rows > (SIZE_MAX / 2) / sizeof(double))
		return mlfs_err(msg, msglen, "input table: %zu rows", t->rows);
	return 0;
}

/* ---- params ---- */

/*
 * Apply the util table to every param not named in own[] (NULL-ended, at
 * most 8 names), and point mine[i] at the param named own[i], or NULL.
 * Returns 0, -EINVAL with msg (unknown, twice, a bad value), or -ENOMEM.
 */
static inline int prep_params(const struct mlfs_param_spec *table,
			      const char *plugin, void *obj,
			      const char *const *own,
			      const struct mlfs_param **mine,
			      const struct mlfs_param *params, size_t nparams,
			      char *msg, size_t msglen)
{
	struct mlfs_param *rest;
	size_t nrest = 0;
	int rc;

	for (size_t i = 0; own[i]; i++)
		mine[i] = NULL;
	rest = (struct mlfs_param *)malloc((nparams ? nparams : 1) *
					   sizeof(*rest));
	if (!rest)
		return -ENOMEM;
	for (size_t p = 0; p < nparams; p++) {
		const char *name = params[p].name;
		size_t i;

		for (i = 0; own[i]; i++)
			if (name && strcmp(name, own[i]) == 0)
				break;
		if (!own[i]) {
			rest[nrest++] = params[p];
			continue;
		}
		if (mine[i]) {
			free(rest);
			return mlfs_err(msg, msglen, "\"%s\": given twice",
					own[i]);
		}
		mine[i] = &params[p];
	}
	rc = mlfs_params_apply(table, plugin, obj, rest, nrest, msg, msglen);
	free(rest);
	return rc;
}

/* ---- column lists ---- */

/*
 * "a, b" -> the next name: its start and length, spaces trimmed; *rest is
 * what follows its comma, or NULL after the last name.
 */
static inline const char *prep_next_name(const char *s, size_t *len,
					 const char **rest)
{
	const char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = strchr(s, ',');
	if (!end)
		end = s + strlen(s);
	*rest = *end ? end + 1 : NULL;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*len = (size_t)(end - s);
	return s;
}

/* p is a string of non-empty names separated by commas; -EINVAL if not. */
static inline int prep_names_check(const struct mlfs_param *p, char *msg,
				   size_t msglen)
{
	const char *rest;

	if (p->type != MLFS_PARAM_STRING || !p->string)
		return mlfs_err(msg, msglen,
				"\"%s\": must be a string of column names separated by commas, got %s",
				p->name, mlfs_param_type_name(p->type));
	rest = p->string;
	while (rest) {
		size_t len;

		prep_next_name(rest, &len, &rest);
		if (len == 0)
			return mlfs_err(msg, msglen,
					"\"%s\": an empty column name in \"%s\"",
					p->name, p->string);
	}
	return 0;
}

/* The first column named name[0..len), or -1. */
static inline long prep_col_findn(const struct mlfs_table *t,
				  const char *name, size_t len)
{
	for (size_t j = 0; j < t->cols; j++) {
		const char *cn = t->col[j].name;

		if (cn && strlen(cn) == len && memcmp(cn, name, len) == 0)
			return (long)j;
	}
	return -1;
}

/* ---- numbers as text ---- */

#define PREP_NUM_LEN 32 /* "%.17g" of any double, and its NUL */

/* The shortest "%g" text that reads back as v, for messages and params. */
static inline void prep_format(char *buf, size_t len, double v)
{
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, len, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			return;
	}
}

/*
 * A cell as the host writes it to the CSV: its text, else a NUMERIC
 * cell's finite number as "%.17g" in buf (PREP_NUM_LEN bytes); NULL when
 * the host writes nothing.
 */
static inline const char *prep_cell(const struct mlfs_column *c, size_t row,
				    char *buf)
{
	const char *t = prep_text(c, row);

	if (t)
		return t;
	if (c->type != MLFS_COL_NUMERIC || !c->num || !isfinite(c->num[row]))
		return NULL;
	snprintf(buf, PREP_NUM_LEN, "%.17g", c->num[row]);
	return buf;
}

/* ---- distinct values ---- */

static inline uint64_t prep_hash(const char *s)
{
	return mlfs_fnv1a64(s, strlen(s));
}

/*
 * Number the distinct strings of keys[0..n) in order of first
 * appearance: id[i] is the number of keys[i], or SIZE_MAX where keys[i]
 * is NULL; *nids is how many there are.  Returns 0 or -ENOMEM.
 */
static inline int prep_distinct(const char *const *keys, size_t n,
				size_t *id, size_t *nids)
{
	size_t cap = 16, mask, count = 0;
	size_t *slot; /* first row of the value + 1; 0: empty */

	*nids = 0;
	while (cap < 2 * n)
		cap *= 2;
	slot = (size_t *)calloc(cap, sizeof(*slot));
	if (!slot)
		return -ENOMEM;
	mask = cap - 1;
	for (size_t i = 0; i < n; i++) {
		size_t h;

		id[i] = SIZE_MAX;
		if (!keys[i])
			continue;
		h = (size_t)prep_hash(keys[i]) & mask;
		while (slot[h] && strcmp(keys[slot[h] - 1], keys[i]) != 0)
			h = (h + 1) & mask;
		if (!slot[h]) {
			slot[h] = i + 1;
			id[i] = count++;
		} else {
			id[i] = id[slot[h] - 1];
		}
	}
	free(slot);
	*nids = count;
	return 0;
}

/*
 * A cell as part of a row's key: by_number, a NUMERIC cell with a number
 * by that number ("1" and "1.0" one value; -0 as 0), else as the host
 * writes it.  NULL when missing.
 */
static inline const char *prep_key_cell(const struct mlfs_column *c,
					size_t row, bool by_number, char *buf)
{
	double v;

	if (by_number && c->type == MLFS_COL_NUMERIC) {
		v = prep_num(c, row) + 0.0;
		if (!isnan(v)) {
			snprintf(buf, PREP_NUM_LEN, "%.17g", v);
			return buf;
		}
	}
	return prep_cell(c, row, buf);
}

/*
 * A key for each row of t over its columns cols[0..ncols), for
 * prep_distinct: two rows have one key exactly when their cells agree
 * (prep_key_cell; missing agrees with missing only).  Each cell is its
 * length, ':' and its bytes, or '-' when missing, so no two different
 * rows can spell one key.  *keys ([rows]) point into *buf; the caller
 * frees both.  Returns 0 or -ENOMEM.
 */
static inline int prep_row_keys(const struct mlfs_table *t,
				const size_t *cols, size_t ncols,
				bool by_number, const char ***keys,
				char **buf)
{
	char num[PREP_NUM_LEN], *at;
	const char **k;
	size_t len = 0;

	*keys = NULL;
	*buf = NULL;
	for (size_t i = 0; i < t->rows; i++) {
		for (size_t c = 0; c < ncols; c++) {
			const char *v = prep_key_cell(&t->col[cols[c]], i,
						      by_number, num);
			size_t l = v ? strlen(v) + 24 : 1;

			if (l > SIZE_MAX / 2 - len)
				return -ENOMEM;
			len += l;
		}
		if (len > SIZE_MAX / 2 - 1)
			return -ENOMEM;
		len++;
	}
	k = (const char **)malloc((t->rows ? t->rows : 1) * sizeof(*k));
	at = (char *)malloc(len ? len : 1);
	if (!k || !at) {
		free(k);
		free(at);
		return -ENOMEM;
	}
	*buf = at;
	for (size_t i = 0; i < t->rows; i++) {
		k[i] = at;
		for (size_t c = 0; c < ncols; c++) {
			const char *v = prep_key_cell(&t->col[cols[c]], i,
						      by_number, num);
			size_t l;

			if (!v) {
				*at++ = '-';
				continue;
			}
			l = strlen(v);
			at += snprintf(at, 24, "%zu:", l);
			memcpy(at, v, l);
			at += l;
		}
		*at++ = '\0';
	}
	*keys = k;
	return 0;
}

/* ---- the output table ---- */

/* The table a plugin hands out; t is first, so &o->t is the table. */
struct prep_out {
	struct mlfs_table t;
	char **block;            /* [cols]: each column's name and strings */
	struct mlfs_column col[]; /* [cols] */
};

static inline struct prep_out *prep_out_of(struct mlfs_table *t)
{
	return (struct prep_out *)(void *)((char *)t -
					   offsetof(struct prep_out, t));
}

/* Release a table from prep_out_new, finished or not.  NULL: nothing. */
static inline void prep_out_free(struct mlfs_table *t)
{
	struct prep_out *o;

	if (!t)
		return;
	o = prep_out_of(t);
	for (size_t j = 0; j < t->cols; j++) {
		free(o->col[j].text);
		free(o->col[j].num);
		if (o->block)
			free(o->block[j]);
	}
	free(o->block);
	free(o);
}

/*
 * A table of rows rows with in's columns (type, roles; the names come at
 * finish), every text NULL and every number NaN.  Returns 0 and *out, or
 * -ENOMEM.
 */
static inline int prep_out_new(const struct mlfs_table *in, size_t rows,
			       struct mlfs_table **out)
{
	struct prep_out *o;
	size_t cells = rows ? rows : 1;

	*out = NULL;
	if (rows > SIZE_MAX / 2 / sizeof(double) ||
	    in->cols > (SIZE_MAX / 2) / sizeof(struct mlfs_column))
		return -ENOMEM;
	o = (struct prep_out *)calloc(1, sizeof(*o) +
					      in->cols * sizeof(o->col[0]));
	if (!o)
		return -ENOMEM;
	o->t.rows = rows;
	o->t.cols = in->cols;
	o->t.col = o->col;
	o->block = (char **)calloc(in->cols ? in->cols : 1,
				   sizeof(*o->block));
	if (!o->block)
		goto out_free;
	for (size_t j = 0; j < in->cols; j++) {
		struct mlfs_column *c = &o->col[j];

		c->type = in->col[j].type;
		c->roles = in->col[j].roles;
		c->text = (char **)calloc(cells, sizeof(*c->text));
		if (!c->text)
			goto out_free;
		if (c->type != MLFS_COL_NUMERIC)
			continue;
		c->num = (double *)malloc(cells * sizeof(*c->num));
		if (!c->num)
			goto out_free;
		for (size_t i = 0; i < rows; i++)
			c->num[i] = NAN;
	}
	*out = &o->t;
	return 0;
out_free:
	prep_out_free(&o->t);
	return -ENOMEM;
}

/* Make out's cell (j, r) a copy of in's cell (j, i) (text borrowed). */
static inline void prep_out_copy(struct mlfs_table *out, size_t r,
				 const struct mlfs_table *in, size_t j,
				 size_t i)
{
	struct mlfs_column *c = &out->col[j];

	c->text[r] = (char *)prep_text(&in->col[j], i);
	if (c->num)
		c->num[r] = prep_num(&in->col[j], i);
}

/*
 * out's column j owns buf from now on (prep_out_free frees it): strings
 * the plugin made for it, which prep_out_borrow does not copy.
 */
static inline void prep_out_adopt(struct mlfs_table *out, size_t j,
				  char *buf)
{
	struct prep_out *o = prep_out_of(out);

	free(o->block[j]);
	o->block[j] = buf;
}

/*
 * Whether host keeps a run's input until its output is freed (ABI 1.5
 * keeps_input): prep_out_borrow may then stand for prep_out_finish.
 */
#define PREP_HOST_KEEPS_INPUT(h) PREP_HOST_HAS(h, keeps_input)

/*
 * prep_out_finish for a host that keeps the input (keeps_input): the
 * names are in's, the strings stay where the plugin pointed them (into
 * in, or into blocks it gave with prep_out_adopt).  Nothing is copied: a
 * prepare job of 5M rows copied 1.1 GB here.  Returns 0.
 */
static inline int prep_out_borrow(struct mlfs_table *out,
				  const struct mlfs_table *in)
{
	for (size_t j = 0; j < out->cols; j++)
		out->col[j].name = in->col[j].name;
	return 0;
}

/*
 * Copy every string the text arrays point at, and the names of in's
 * columns, into one block per column, so out shares nothing with in.
 * Returns 0 or -ENOMEM (out is then still for prep_out_free only).
 */
static inline int prep_out_finish(struct mlfs_table *out,
				  const struct mlfs_table *in)
{
	struct prep_out *o = prep_out_of(out);

	for (size_t j = 0; j < out->cols; j++) {
		struct mlfs_column *c = &o->col[j];
		const char *name = in->col[j].name;
		size_t len = name ? strlen(name) + 1 : 0;
		char *b, *at;

		for (size_t i = 0; i < out->rows; i++) {
			size_t l;

			if (!c->text[i])
				continue;
			l = strlen(c->text[i]) + 1;
			if (l > SIZE_MAX - len)
				return -ENOMEM;
			len += l;
		}
		b = (char *)malloc(len ? len : 1);
		if (!b)
			return -ENOMEM;
		o->block[j] = b;
		at = b;
		if (name) {
			len = strlen(name) + 1;
			memcpy(at, name, len);
			c->name = at;
			at += len;
		}
		for (size_t i = 0; i < out->rows; i++) {
			const char *s = c->text[i];

			if (!s)
				continue;
			len = strlen(s) + 1;
			memcpy(at, s, len);
			c->text[i] = at;
			at += len;
		}
	}
	return 0;
}

#endif
