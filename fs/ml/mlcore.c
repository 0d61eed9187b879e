/* SPDX-License-Identifier: MIT */
/*
 * The ML core: the in-memory CSV table that training reads, the feature
 * extractor fitted on it, the seeded train/validation/test split, the
 * evaluation metrics and the model file format.  The job program uses all
 * of it to train; the daemon uses the extractor, the metrics and the model
 * decoder to serve.  Everything here is a pure function of its arguments:
 * no globals, no I/O, no locks, so any thread may call anything on
 * objects it owns.
 *
 * The table parser is the one hot loop.  It is built for large numeric
 * files: fields are recorded as (offset, length) into the caller's text,
 * and only a quoted field with doubled quotes ("") needs its bytes
 * rewritten, into a copy of the text made the first time one appears, so
 * that one base pointer addresses every field.  Fields, numbers, missing
 * values and times are read by fs/base/csv.c (csv_field_next and its
 * inline fast path, csv_parse_double, csv_is_missing, csv_parse_time), so
 * training reads a file exactly as csv_scan judged it.
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
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "csv.h"
#include "mlcore.h"

/* ---------------------------------------------------------------- */
/* Field helpers shared by the table and the extractor. */

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static void trim(const char **p, size_t *n)
{
	const char *s = *p;
	size_t len = *n;

	while (len && is_blank(*s)) {
		s++;
		len--;
	}
	while (len && is_blank(s[len - 1]))
		len--;
	*p = s;
	*n = len;
}

static unsigned pos_u(uint64_t v)
{
	return v > UINT32_MAX ? UINT32_MAX : (unsigned)v;
}

/* Byte strings ordered as strcmp() orders the same strings. */
static int bytes_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static char *mem_dup(const char *p, size_t n)
{
	char *s = malloc(n + 1);

	if (!s)
		return NULL;
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/* jansson refuses invalid UTF-8, so anything bound for JSON is checked. */
static bool utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *end = p + n;

	while (p < end) {
		unsigned lo = 0x80;
		unsigned hi = 0xbf;
		size_t k;
		size_t i;

		if (*p < 0x80) {
			if (!*p)
				return false;
			p++;
			continue;
		}
		if (*p >= 0xc2 && *p <= 0xdf) {
			k = 2;
		} else if (*p >= 0xe0 && *p <= 0xef) {
			k = 3;
			if (*p == 0xe0)
				lo = 0xa0;
			if (*p == 0xed)
				hi = 0x9f;
		} else if (*p >= 0xf0 && *p <= 0xf4) {
			k = 4;
			if (*p == 0xf0)
				lo = 0x90;
			if (*p == 0xf4)
				hi = 0x8f;
		} else {
			return false;
		}
		if ((size_t)(end - p) < k || p[1] < lo || p[1] > hi)
			return false;
		for (i = 2; i < k; i++)
			if ((p[i] & 0xc0) != 0x80)
				return false;
		p += k;
	}
	return true;
}


/* ---------------------------------------------------------------- */
/* The table. */

struct tparse {
	const char *text;        /* start of the input (before any BOM) */
	size_t tlen;
	struct csv_tok tok;      /* the position in text, and the problem */
	char *owned;             /* copy of text + unescaped fields, or NULL */
	size_t olen;             /* bytes of owned in use */
	size_t ocap;
};

/* One field of the table: where its (unescaped) bytes are. */
struct tfield {
	struct csv_field f;      /* as the tokenizer found it */
	uint64_t off;            /* from text (== from owned) */
	size_t len;
};

/*
 * Collapse the "" pairs of content [p, p + n) into ps->owned.  The first
 * time, owned becomes a copy of the whole text followed by room for every
 * quoted byte still to come (unescaped content is never longer than its
 * source), so offsets from text stay valid and no later copy is needed.
 */
static int unescape_owned(struct tparse *ps, const char *p, size_t n,
			  uint64_t *off, size_t *len)
{
	if (!ps->owned) {
		size_t rest = (size_t)(ps->tok.end - p);

		ps->owned = malloc(ps->tlen + rest);
		if (!ps->owned)
			return -ENOMEM;
		memcpy(ps->owned, ps->text, ps->tlen);
		ps->olen = ps->tlen;
		ps->ocap = ps->tlen + rest;
	}
	*off = ps->olen;
	*len = csv_unescape(ps->owned + ps->olen, p, n);
	ps->olen += *len;
	return 0;
}

/*
 * Read one field at ps->tok.p and its terminator with the CSV tokenizer,
 * so quoting and NUL bytes are judged as csv_scan judges them, with its
 * messages and positions (UTF-8 was csv_scan's job).
 */
static int field_read(struct tparse *ps, struct tfield *tf)
{
	int rc;

	rc = csv_field_next(&ps->tok, &tf->f);
	if (rc < 0)
		return rc;
	if (tf->f.esc)
		return unescape_owned(ps, tf->f.p, tf->f.len, &tf->off,
				      &tf->len);
	tf->off = (uint64_t)(tf->f.p - ps->text);
	tf->len = tf->f.len;
	return 0;
}

static const char *tfield_ptr(const struct tparse *ps, const struct tfield *f)
{
	return (ps->owned ? ps->owned : ps->text) + f->off;
}

/* End of the run of CR and LF bytes at p. */
static const char *skip_blank(const char *p, const char *end)
{
	while (p < end && (*p == '\n' || *p == '\r'))
		p++;
	return p;
}

/*
 * The header names seen so far, as an open-addressing set of indices into
 * t->names, so a repeat is found when it is read, before any later error
 * in the header, as csv_scan finds it.
 */
struct name_set {
	size_t *slots;  /* index + 1; 0 is empty */
	size_t mask;    /* slots - 1, a power of two minus one */
};

static size_t name_slot(const struct name_set *ns, char *const *names,
			const char *name)
{
	size_t i = (size_t)XXH3_64bits(name, strlen(name)) & ns->mask;

	while (ns->slots[i] && strcmp(names[ns->slots[i] - 1], name))
		i = (i + 1) & ns->mask;
	return i;
}

/* Make room for n names at load <= 1/2. */
static int name_set_reserve(struct name_set *ns, char *const *names,
			    size_t n)
{
	struct name_set big;
	size_t cap = ns->slots ? ns->mask + 1 : 32;
	size_t i;

	if (n * 2 <= cap && ns->slots)
		return 0;
	while (n * 2 > cap)
		cap *= 2;
	big.slots = calloc(cap, sizeof(*big.slots));
	if (!big.slots)
		return -ENOMEM;
	big.mask = cap - 1;
	for (i = 0; ns->slots && i <= ns->mask; i++)
		if (ns->slots[i])
			big.slots[name_slot(&big, names,
					    names[ns->slots[i] - 1])] =
				ns->slots[i];
	free(ns->slots);
	*ns = big;
	return 0;
}

/* Header names: trimmed, unescaped, not empty, not repeated. */
static int header_read(struct tparse *ps, struct table *t)
{
	struct name_set ns = { NULL, 0 };
	size_t cap = 0;
	struct tfield f;
	int rc;

	do {
		const char *p;
		size_t n;
		size_t slot;
		char *name;

		rc = field_read(ps, &f);
		if (rc < 0)
			goto out_free_set;
		p = tfield_ptr(ps, &f);
		n = f.len;
		trim(&p, &n);
		if (!n) {
			rc = problem_set(ps->tok.pb, pos_u(f.f.line),
					 pos_u(f.f.col), "empty column name");
			goto out_free_set;
		}
		if (t->ncols == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char **names;

			names = realloc(t->names, ncap * sizeof(*names));
			if (!names) {
				rc = -ENOMEM;
				goto out_free_set;
			}
			t->names = names;
			cap = ncap;
		}
		rc = name_set_reserve(&ns, t->names, t->ncols + 1);
		if (rc < 0)
			goto out_free_set;
		name = mem_dup(p, n);
		if (!name) {
			rc = -ENOMEM;
			goto out_free_set;
		}
		t->names[t->ncols++] = name;
		slot = name_slot(&ns, t->names, name);
		if (ns.slots[slot]) {
			rc = problem_set(ps->tok.pb, pos_u(f.f.line),
					 pos_u(f.f.col),
					 "duplicate column name \"%s\"", name);
			goto out_free_set;
		}
		ns.slots[slot] = t->ncols;
	} while (f.f.term == CSV_TERM_COMMA);
	rc = 0;
out_free_set:
	free(ns.slots);
	return rc;
}

/*
 * An upper bound on the data records in [p, end): each but the last ends
 * with an LF, and each holds at least ncols - 1 commas and a terminator.
 * Sizing the field arrays once avoids copying them as they grow.
 */
static size_t rows_bound(const char *p, const char *end, size_t ncols)
{
	size_t lf = 0;
	size_t by_bytes = (size_t)(end - p) / ncols + 1;

	while (p < end) {
		p = memchr(p, '\n', (size_t)(end - p));
		if (!p)
			break;
		p++;
		lf++;
	}
	return lf + 1 < by_bytes ? lf + 1 : by_bytes;
}

/*
 * The field arrays are new memory, twice the size of a numeric input, and
 * taking it a 4 KiB fault at a time cost more than the parse (measured
 * on 420 MB, 1M x 50: 2.6 s of page faults in a VM).  Huge pages make
 * that 512 times fewer.  Advice only: errors are ignored.
 */
#define TABLE_HUGE_MIN ((size_t)4 << 20)

static void huge_advise(void *p, size_t len)
{
#ifdef MADV_HUGEPAGE
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = ((uintptr_t)p + page - 1) & ~(page - 1);
	uintptr_t e = ((uintptr_t)p + len) & ~(page - 1);

	if (len >= TABLE_HUGE_MIN && e > a)
		madvise((void *)a, e - a, MADV_HUGEPAGE);
#else
	(void)p;
	(void)len;
#endif
}

static int rows_grow(struct table *t, size_t *cap)
{
	size_t ncap = *cap ? *cap * 2 : 64;
	uint64_t *off;
	uint32_t *len;

	if (ncap > SIZE_MAX / sizeof(*off) / t->ncols)
		return -ENOMEM;
	off = realloc(t->off, ncap * t->ncols * sizeof(*off));
	if (!off)
		return -ENOMEM;
	t->off = off;
	len = realloc(t->len, ncap * t->ncols * sizeof(*len));
	if (!len)
		return -ENOMEM;
	t->len = len;
	*cap = ncap;
	return 0;
}

/*
 * The record loop.  A plain field (no quote, CR or NUL before its comma
 * or LF) takes the tokenizer's inline fast path, which is nearly every
 * field of a numeric file; anything else goes through field_read().
 */
static int rows_read(struct tparse *ps, struct table *t)
{
	struct csv_tok *tok = &ps->tok;
	const size_t ncols = t->ncols;
	const char *const text = ps->text;
	const char *const end = tok->end;
	const char *blank_end = tok->p;
	size_t cap;
	int rc;

	cap = rows_bound(tok->p, end, ncols);
	if (cap > SIZE_MAX / sizeof(uint64_t) / ncols)
		return -ENOMEM;
	t->off = malloc(cap * ncols * sizeof(*t->off));
	if (!t->off)
		return -ENOMEM;
	huge_advise(t->off, cap * ncols * sizeof(*t->off));
	t->len = malloc(cap * ncols * sizeof(*t->len));
	if (!t->len)
		return -ENOMEM;
	huge_advise(t->len, cap * ncols * sizeof(*t->len));
	while (tok->p < end) {
		const char *p = tok->p;
		uint64_t *roff;
		uint32_t *rlen;
		size_t c = 0;
		enum csv_term term = CSV_TERM_COMMA;
		uint64_t term_line = 0;
		uint64_t term_col = 0;

		if ((*p == '\n' || *p == '\r') && p >= blank_end) {
			/* Blank lines at the end are ignored; elsewhere a
			 * blank line is a record of one empty field. */
			blank_end = skip_blank(p, end);
			if (blank_end == end)
				break;
		}
		if (t->nrows == cap) {
			rc = rows_grow(t, &cap);
			if (rc < 0)
				return rc;
		}
		roff = t->off + t->nrows * ncols;
		rlen = t->len + t->nrows * ncols;
		while (term == CSV_TERM_COMMA) {
			uint64_t line = tok->line;
			const char *line_start = tok->line_start;
			struct tfield f;
			size_t n;

			if (c == ncols)
				return csv_too_many(tok, ncols);
			if (csv_field_plain(tok, &p, &n, &term)) {
				roff[c] = (uint64_t)(p - text);
				rlen[c] = (uint32_t)n;
				term_line = line;
				term_col = (uint64_t)(p + n - line_start) + 1;
			} else {
				rc = field_read(ps, &f);
				if (rc < 0)
					return rc;
				roff[c] = f.off;
				rlen[c] = (uint32_t)f.len;
				term = f.f.term;
				term_line = f.f.term_line;
				term_col = f.f.term_col;
			}
			c++;
		}
		if (c < ncols)
			return csv_ragged(tok->pb, term_line, term_col, c,
					  ncols);
		t->nrows++;
	}
	return 0;
}

/* Give back what the row bound over-reserved; failing to is harmless. */
static void rows_shrink(struct table *t)
{
	size_t n = t->nrows * t->ncols;
	uint64_t *off;
	uint32_t *len;

	off = realloc(t->off, n * sizeof(*off));
	if (off)
		t->off = off;
	len = realloc(t->len, n * sizeof(*len));
	if (len)
		t->len = len;
}

int table_parse(const char *text, size_t len, struct table **out,
		struct problem *pb)
{
	struct tparse ps = { 0 };
	struct table *t;
	int rc;

	*out = NULL;
	if (!text && len)
		return -EINVAL;
	ps.text = text;
	ps.tlen = len;
	ps.tok.p = text;
	ps.tok.end = text + len;
	ps.tok.line = 1;
	/* the offsets and lengths of struct table are 64 and 32 bits */
	ps.tok.max_field = UINT32_MAX;
	ps.tok.pb = pb;
	if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
		ps.tok.p += 3;
	ps.tok.line_start = ps.tok.p;
	if (skip_blank(ps.tok.p, ps.tok.end) == ps.tok.end)
		return problem_set(pb, 1, 1, "empty file");

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	rc = header_read(&ps, t);
	if (rc < 0)
		goto out_free_table;
	rc = rows_read(&ps, t);
	if (rc < 0)
		goto out_free_table;
	if (!t->nrows) {
		rc = csv_no_rows(&ps.tok);
		goto out_free_table;
	}
	rows_shrink(t);
	t->owned = ps.owned;
	t->data = ps.owned ? ps.owned : text;
	*out = t;
	return 0;

out_free_table:
	free(ps.owned);
	table_free(t);
	return rc;
}

void table_free(struct table *t)
{
	size_t i;

	if (!t)
		return;
	if (t->names)
		for (i = 0; i < t->ncols; i++)
			free(t->names[i]);
	free(t->names);
	free(t->off);
	free(t->len);
	free(t->owned);
	free(t);
}

long table_col(const struct table *t, const char *name)
{
	size_t i;

	for (i = 0; i < t->ncols; i++)
		if (!strcmp(t->names[i], name))
			return (long)i;
	return -1;
}

static void table_field(const struct table *t, size_t r, size_t c,
			const char **p, size_t *n)
{
	size_t k = r * t->ncols + c;

	*p = t->data + t->off[k];
	*n = t->len[k];
}

bool table_num(const struct table *t, size_t r, size_t c, double *out)
{
	const char *p;
	size_t n;

	if (r >= t->nrows || c >= t->ncols)
		return false;
	table_field(t, r, c, &p, &n);
	if (csv_is_missing(p, n))
		return false;
	return csv_parse_double(p, n, out);
}

/* ---------------------------------------------------------------- */
/* The feature extractor. */

/* A numeric or time field as a number; false if missing or unparseable. */
static bool fx_value(enum fx_kind kind, const char *p, size_t n, double *out)
{
	if (csv_is_missing(p, n))
		return false;
	if (kind == FX_TIME)
		return csv_parse_time(p, n, out);
	return csv_parse_double(p, n, out);
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

int fx_check_row(const struct fx *fx, const char *const *fields,
		 const size_t *fieldlen, size_t nfields, const size_t *map,
		 char *why, size_t whylen)
{
	for (size_t i = 0; i < fx->ncols; i++) {
		const struct fx_column *c = &fx->cols[i];
		size_t idx = map ? map[i] : c->src;
		const char *p;
		bool shown = true;
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
		for (size_t k = 0; k < n; k++)
			shown = shown && p[k] >= 0x20 && p[k] < 0x7f;
		if (shown && n <= 64)
			snprintf(why, whylen, "%s: not a %s \"%.*s\"", c->name,
				 c->kind == FX_TIME ? "time" : "number", (int)n,
				 p);
		else
			snprintf(why, whylen, "%s: not a %s", c->name,
				 c->kind == FX_TIME ? "time" : "number");
		return -EINVAL;
	}
	return 0;
}

int fx_transform_row(const struct fx *fx, const char *const *fields,
		     const size_t *fieldlen, size_t nfields, const size_t *map,
		     float *out)
{
	int imputed = 0;
	size_t i;

	for (i = 0; i < fx->ncols; i++) {
		size_t idx = map ? map[i] : fx->cols[i].src;

		if (idx != (size_t)-1 && idx >= nfields)
			return -EINVAL;
	}
	for (i = 0; i < fx->ncols; i++) {
		const struct fx_column *c = &fx->cols[i];
		size_t idx = map ? map[i] : c->src;
		const char *p = NULL;
		size_t n = 0;
		double x;

		if (idx != (size_t)-1 && fields[idx]) {
			p = fields[idx];
			n = fieldlen ? fieldlen[idx] : strlen(p);
		}
		if (c->kind == FX_ONEHOT) {
			int k = -1;

			memset(out, 0, c->ncats * sizeof(*out));
			if (!p || csv_is_missing(p, n)) {
				imputed++;
			} else {
				trim(&p, &n);
				k = cat_find(c, p, n);
			}
			if (k >= 0)
				out[k] = 1;
			out += c->ncats;
			continue;
		}
		if (!p || !fx_value(c->kind, p, n, &x)) {
			x = c->impute;
			imputed++;
		}
		if (x < c->min)
			x = c->min;
		if (x > c->max)
			x = c->max;
		*out++ = (float)((x - c->mean) / c->std);
	}
	return imputed;
}

static const char *const fx_type_names[] = {
	[FX_NUMERIC] = "numeric",
	[FX_ONEHOT] = "categorical",
	[FX_TIME] = "time",
};

/* A finite double, or null (which jansson cannot hold as a real). */
static json_t *json_num(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

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

/* ---------------------------------------------------------------- */
/* The split. */

uint64_t prng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

double prng_uniform(uint64_t *state)
{
	return (double)(prng_next(state) >> 11) * 0x1.0p-53;
}

/* Uniform in [0, bound), bound > 0, without modulo bias. */
static uint64_t prng_below(uint64_t *state, uint64_t bound)
{
	uint64_t threshold = -bound % bound;

	for (;;) {
		uint64_t r = prng_next(state);

		if (r >= threshold)
			return r % bound;
	}
}

static void shuffle(size_t *v, size_t n, uint64_t *state)
{
	size_t i;

	for (i = n; i > 1; i--) {
		size_t j = (size_t)prng_below(state, i);
		size_t tmp = v[i - 1];

		v[i - 1] = v[j];
		v[j] = tmp;
	}
}

struct split_cand {
	double rem;    /* fractional part of the stratum's exact share */
	size_t k;      /* stratum */
	int s;         /* set */
};

static int split_cand_cmp(const void *a, const void *b)
{
	const struct split_cand *x = a;
	const struct split_cand *y = b;

	if (x->rem != y->rem)
		return x->rem > y->rem ? -1 : 1;
	if (x->k != y->k)
		return x->k < y->k ? -1 : 1;
	return (x->s > y->s) - (x->s < y->s);
}

/*
 * How many rows of each stratum go to each set: a[k * 3 + s].  The set
 * totals are the largest-remainder rounding of frac * n, and each
 * stratum's counts are its exact shares rounded down, plus one for the
 * largest fractional parts as long as both the stratum and the set still
 * have rows to give and take.  So every set's total is as close to its
 * fraction as integers allow, and no stratum is off by more than one row
 * per set but for the rare leftovers of the last loop.
 */
static int split_counts(const size_t *m, size_t nk, size_t n,
			const double *frac, size_t *a)
{
	struct split_cand *cand;
	size_t nc = 0;
	size_t floor_sum = 0;
	int64_t need[3];
	size_t *left;
	size_t k;
	size_t i;
	int s;

	cand = malloc(nk * 3 * sizeof(*cand));
	if (!cand)
		return -ENOMEM;
	left = calloc(nk, sizeof(*left));
	if (!left) {
		free(cand);
		return -ENOMEM;
	}

	/* Set totals by largest remainder. */
	{
		double rem[3];
		size_t tot[3];

		for (s = 0; s < 3; s++) {
			double x = frac[s] * (double)n;

			tot[s] = (size_t)floor(x);
			if (tot[s] > n)
				tot[s] = n;
			rem[s] = x - (double)tot[s];
			floor_sum += tot[s];
		}
		while (floor_sum > n) {
			int best = -1;

			for (s = 0; s < 3; s++)
				if (tot[s] && (best < 0 || rem[s] < rem[best]))
					best = s;
			tot[best]--;
			rem[best] += 1;
			floor_sum--;
		}
		while (floor_sum < n) {
			int best = 0;

			for (s = 1; s < 3; s++)
				if (rem[s] > rem[best])
					best = s;
			tot[best]++;
			rem[best] -= 1;
			floor_sum++;
		}
		for (s = 0; s < 3; s++)
			need[s] = (int64_t)tot[s];
	}

	for (k = 0; k < nk; k++) {
		size_t sum = 0;

		for (s = 0; s < 3; s++) {
			double x = frac[s] * (double)m[k];
			size_t f = (size_t)floor(x);

			if (sum + f > m[k])
				f = m[k] - sum;
			a[k * 3 + s] = f;
			sum += f;
			need[s] -= (int64_t)f;
			if (x > (double)f)
				cand[nc++] = (struct split_cand){
					x - (double)f, k, s
				};
		}
		left[k] = m[k] - sum;
	}
	qsort(cand, nc, sizeof(*cand), split_cand_cmp);
	for (i = 0; i < nc; i++) {
		k = cand[i].k;
		s = cand[i].s;
		if (left[k] && need[s] > 0) {
			a[k * 3 + s]++;
			left[k]--;
			need[s]--;
		}
	}
	/* Leftovers the greedy pass could not place within one row of a
	 * stratum's share go where rows are still needed most. */
	for (k = 0; k < nk; k++) {
		while (left[k]) {
			int best = 0;

			for (s = 1; s < 3; s++)
				if (need[s] > need[best])
					best = s;
			a[k * 3 + best]++;
			left[k]--;
			need[best]--;
		}
	}
	free(left);
	free(cand);
	return 0;
}

int split_rows(size_t n, const uint32_t *strata, size_t nstrata,
	       const struct split_spec *sp, uint8_t *out)
{
	double frac[3];
	double sum = 0;
	size_t *start;
	size_t *m;
	size_t *a;
	size_t *idx;
	uint64_t state;
	size_t nk = 1;
	size_t i;
	size_t k;
	int s;
	int rc = 0;

	if (!sp || (n && !out))
		return -EINVAL;
	frac[SPLIT_TRAIN] = sp->train;
	frac[SPLIT_VALIDATION] = sp->validation;
	frac[SPLIT_TEST] = sp->test;
	for (s = 0; s < 3; s++) {
		if (!(frac[s] >= 0 && frac[s] <= 1))
			return -EINVAL;
		sum += frac[s];
	}
	if (fabs(sum - 1) > 1e-6 || !(sp->train > 0))
		return -EINVAL;
	/* Within the tolerance the fractions need not sum to exactly 1;
	 * normalised, the counts can never exceed the rows. */
	for (s = 0; s < 3; s++)
		frac[s] /= sum;
	if (!sp->stratify)
		strata = NULL;
	if (strata) {
		if (!nstrata)
			return -EINVAL;
		for (i = 0; i < n; i++)
			if (strata[i] >= nstrata)
				return -EINVAL;
		nk = nstrata;
	}
	if (!n)
		return 0;

	m = calloc(nk, sizeof(*m));
	if (!m)
		return -ENOMEM;
	start = calloc(nk, sizeof(*start));
	if (!start) {
		rc = -ENOMEM;
		goto out_free_m;
	}
	a = calloc(nk * 3, sizeof(*a));
	if (!a) {
		rc = -ENOMEM;
		goto out_free_start;
	}
	idx = malloc(n * sizeof(*idx));
	if (!idx) {
		rc = -ENOMEM;
		goto out_free_a;
	}
	for (i = 0; i < n; i++)
		m[strata ? strata[i] : 0]++;
	for (k = 1; k < nk; k++)
		start[k] = start[k - 1] + m[k - 1];
	/* Rows of each stratum in order (a, not yet needed, holds where
	 * the next one goes), then shuffled below: the result depends only
	 * on the inputs and the seed. */
	for (k = 0; k < nk; k++)
		a[k] = start[k];
	for (i = 0; i < n; i++)
		idx[a[strata ? strata[i] : 0]++] = i;
	rc = split_counts(m, nk, n, frac, a);
	if (rc < 0)
		goto out_free_idx;
	state = sp->seed;
	for (k = 0; k < nk; k++) {
		size_t *v = idx + start[k];
		size_t j = 0;

		shuffle(v, m[k], &state);
		for (s = 0; s < 3; s++) {
			size_t e;

			for (e = 0; e < a[k * 3 + s]; e++)
				out[v[j++]] = (uint8_t)s;
		}
	}
out_free_idx:
	free(idx);
out_free_a:
	free(a);
out_free_start:
	free(start);
out_free_m:
	free(m);
	return rc;
}

/* ---------------------------------------------------------------- */
/* Metrics. */

struct scored {
	float s;
	bool pos;
};

/* NaN first, so the order is total whatever a model produced. */
static int scored_cmp(const void *a, const void *b)
{
	float x = ((const struct scored *)a)->s;
	float y = ((const struct scored *)b)->s;

	if (isnan(x) || isnan(y))
		return !isnan(x) - !isnan(y);
	return (x > y) - (x < y);
}

/*
 * ROC AUC of class j against the rest by the Mann-Whitney statistic, tied
 * scores sharing their average rank (scikit-learn's value exactly).  NAN
 * when y has no positives or no negatives.
 */
static double auc_ovr(const uint32_t *y, const float *prob, size_t n,
		      size_t k, size_t j, struct scored *tmp)
{
	double rank_sum = 0;
	double npos = 0;
	double nneg;
	size_t i = 0;

	for (i = 0; i < n; i++) {
		tmp[i].s = prob[i * k + j];
		tmp[i].pos = y[i] == j;
		npos += tmp[i].pos;
	}
	nneg = (double)n - npos;
	if (!npos || !nneg)
		return NAN;
	qsort(tmp, n, sizeof(*tmp), scored_cmp);
	i = 0;
	while (i < n) {
		size_t g = i + 1;
		double avg;
		double p = tmp[i].pos;

		while (g < n && !scored_cmp(&tmp[g], &tmp[i])) {
			p += tmp[g].pos;
			g++;
		}
		/* Ranks i+1 .. g share (i + 1 + g) / 2. */
		avg = ((double)i + 1 + (double)g) / 2;
		rank_sum += p * avg;
		i = g;
	}
	return (rank_sum - npos * (npos + 1) / 2) / (npos * nneg);
}

static size_t argmax(const float *v, size_t k)
{
	size_t best = 0;
	size_t j;

	for (j = 1; j < k; j++)
		if (v[j] > v[best])
			best = j;
	return best;
}

static double ratio(uint64_t a, uint64_t b)
{
	return b ? (double)a / (double)b : 0;
}

static json_t *per_class_json(const uint64_t *cm, size_t k,
			      const char *const *classes, double *macro,
			      const uint64_t *pred_n, const uint64_t *true_n)
{
	json_t *o = json_object();
	size_t present = 0;
	size_t j;

	if (!o)
		return NULL;
	for (j = 0; j < k; j++) {
		uint64_t tp = cm[j * k + j];
		double p = ratio(tp, pred_n[j]);
		double r = ratio(tp, true_n[j]);
		double f1 = ratio(2 * tp, pred_n[j] + true_n[j]);
		char num[32];
		const char *name = classes ? classes[j] : NULL;
		json_t *c;

		if (!name) {
			snprintf(num, sizeof(num), "%zu", j);
			name = num;
		}
		c = json_pack("{s:f, s:f, s:f, s:I}", "precision", p, "recall",
			      r, "f1", f1, "support", (json_int_t)true_n[j]);
		if (json_object_set_new(o, name, c)) {
			json_decref(o);
			return NULL;
		}
		/* scikit-learn averages over the labels seen in y or in the
		 * predictions. */
		if (pred_n[j] || true_n[j]) {
			macro[0] += p;
			macro[1] += r;
			macro[2] += f1;
			present++;
		}
	}
	for (j = 0; j < 3; j++)
		macro[j] = present ? macro[j] / (double)present : 0;
	return o;
}

static json_t *confusion_json(const uint64_t *cm, size_t k)
{
	json_t *rows = json_array();
	size_t i;
	size_t j;

	if (!rows)
		return NULL;
	for (i = 0; i < k; i++) {
		json_t *r = json_array();

		if (json_array_append_new(rows, r))
			goto out_fail;
		for (j = 0; j < k; j++)
			if (json_array_append_new(
				    r, json_integer((json_int_t)cm[i * k + j])))
				goto out_fail;
	}
	return rows;

out_fail:
	json_decref(rows);
	return NULL;
}

/* The AUC for metrics.json, or NAN (null) when it is not defined. */
static double roc_auc(const uint32_t *y, const float *prob, size_t n,
		      size_t k, struct scored *tmp)
{
	double sum = 0;
	size_t defined = 0;
	size_t j;

	if (k == 2)
		return auc_ovr(y, prob, n, k, 1, tmp);
	for (j = 0; j < k; j++) {
		double a = auc_ovr(y, prob, n, k, j, tmp);

		if (!isnan(a)) {
			sum += a;
			defined++;
		}
	}
	return defined ? sum / (double)defined : NAN;
}

json_t *metrics_classification(const uint32_t *y, const float *prob,
			       size_t n, size_t k,
			       const char *const *classes)
{
	uint64_t *cm;
	uint64_t *pred_n;
	uint64_t *true_n;
	struct scored *tmp;
	json_t *per_class;
	double macro[3] = { 0, 0, 0 };
	double loss = 0;
	double auc = NAN;
	uint64_t correct = 0;
	json_t *o = NULL;
	int bad = 0;
	size_t i;

	if (!k || (n && (!y || !prob)))
		return NULL;
	for (i = 0; i < n; i++)
		if (y[i] >= k)
			return NULL;
	if (k > SIZE_MAX / sizeof(*cm) / k)
		return NULL;
	cm = calloc(k * k + 2 * k, sizeof(*cm));
	if (!cm)
		return NULL;
	pred_n = cm + k * k;
	true_n = pred_n + k;
	tmp = malloc((n ? n : 1) * sizeof(*tmp));
	if (!tmp)
		goto out_free_cm;

	for (i = 0; i < n; i++) {
		size_t p = argmax(prob + i * k, k);
		double pt = prob[i * k + y[i]];

		cm[y[i] * k + p]++;
		pred_n[p]++;
		true_n[y[i]]++;
		correct += p == y[i];
		if (!(pt >= 1e-15))
			pt = 1e-15;
		if (pt > 1 - 1e-15)
			pt = 1 - 1e-15;
		loss -= log(pt);
	}
	if (n && k >= 2)
		auc = roc_auc(y, prob, n, k, tmp);

	per_class = per_class_json(cm, k, classes, macro, pred_n, true_n);
	if (!per_class)
		goto out_free_tmp;
	o = json_object();
	if (!o) {
		json_decref(per_class);
		goto out_free_tmp;
	}
	bad |= json_object_set_new(o, "accuracy",
				   n ? json_num(ratio(correct, n)) :
				       json_null());
	bad |= json_object_set_new(o, "precision_macro",
				   n ? json_num(macro[0]) : json_null());
	bad |= json_object_set_new(o, "recall_macro",
				   n ? json_num(macro[1]) : json_null());
	bad |= json_object_set_new(o, "f1_macro",
				   n ? json_num(macro[2]) : json_null());
	bad |= json_object_set_new(o, "per_class", per_class);
	bad |= json_object_set_new(o, "roc_auc", json_num(auc));
	bad |= json_object_set_new(o, "log_loss",
				   n ? json_num(loss / (double)n) :
				       json_null());
	bad |= json_object_set_new(o, "confusion_matrix",
				   confusion_json(cm, k));
	bad |= json_object_set_new(o, "n", json_integer((json_int_t)n));
	if (bad) {
		json_decref(o);
		o = NULL;
	}
out_free_tmp:
	free(tmp);
out_free_cm:
	free(cm);
	return o;
}

json_t *metrics_regression(const float *y, const float *pred, size_t n)
{
	double mean = 0;
	double ss_res = 0;
	double ss_tot = 0;
	double abs_sum = 0;
	double r2;
	json_t *o;
	int bad = 0;
	size_t i;

	if (n && (!y || !pred))
		return NULL;
	for (i = 0; i < n; i++)
		mean += y[i];
	if (n)
		mean /= (double)n;
	for (i = 0; i < n; i++) {
		double e = (double)y[i] - (double)pred[i];
		double d = (double)y[i] - mean;

		ss_res += e * e;
		ss_tot += d * d;
		abs_sum += fabs(e);
	}
	/* scikit-learn's force_finite: a constant y scores 1 if predicted
	 * exactly, else 0. */
	if (ss_tot == 0)
		r2 = ss_res == 0 ? 1 : 0;
	else
		r2 = 1 - ss_res / ss_tot;

	o = json_object();
	if (!o)
		return NULL;
	bad |= json_object_set_new(o, "r2", n ? json_num(r2) : json_null());
	bad |= json_object_set_new(o, "rmse",
				   n ? json_num(sqrt(ss_res / (double)n)) :
				       json_null());
	bad |= json_object_set_new(o, "mae",
				   n ? json_num(abs_sum / (double)n) :
				       json_null());
	bad |= json_object_set_new(o, "n", json_integer((json_int_t)n));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a;
	uint32_t y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static size_t label_index(const uint32_t *labels, size_t nl, uint32_t v)
{
	const uint32_t *p = bsearch(&v, labels, nl, sizeof(*labels), u32_cmp);

	return (size_t)(p - labels);
}

/*
 * Mean silhouette of the rows idx[0..s), with distances to every other
 * row of the sample, as scikit-learn's silhouette_score(sample_size=s),
 * into *out: NAN when the sample has fewer than 2 or more than s - 1
 * clusters, where scikit-learn refuses.  Returns 0 or -ENOMEM.
 */
static int silhouette(const float *x, size_t d, const uint32_t *label,
		      const size_t *idx, size_t s, double *out)
{
	uint32_t *labels;
	size_t *lab = NULL;
	size_t *cnt = NULL;
	double *sums = NULL;
	double total = 0;
	size_t nl = 0;
	size_t i;
	size_t j;
	int rc = 0;

	*out = NAN;
	labels = malloc(s * sizeof(*labels));
	if (!labels)
		return -ENOMEM;
	for (i = 0; i < s; i++)
		labels[i] = label[idx[i]];
	qsort(labels, s, sizeof(*labels), u32_cmp);
	for (i = 0; i < s; i++)
		if (!nl || labels[nl - 1] != labels[i])
			labels[nl++] = labels[i];
	if (nl < 2 || nl > s - 1)
		goto out_free;
	lab = malloc(s * sizeof(*lab));
	cnt = calloc(nl, sizeof(*cnt));
	sums = malloc(nl * sizeof(*sums));
	if (!lab || !cnt || !sums) {
		rc = -ENOMEM;
		goto out_free;
	}
	for (i = 0; i < s; i++) {
		lab[i] = label_index(labels, nl, label[idx[i]]);
		cnt[lab[i]]++;
	}
	for (i = 0; i < s; i++) {
		const float *xi = x + idx[i] * d;
		double a;
		double b = INFINITY;
		double m;
		size_t l;

		if (cnt[lab[i]] < 2)
			continue; /* a singleton scores 0 */
		for (l = 0; l < nl; l++)
			sums[l] = 0;
		for (j = 0; j < s; j++) {
			const float *xj = x + idx[j] * d;
			double dd = 0;
			size_t e;

			if (j == i)
				continue;
			for (e = 0; e < d; e++) {
				double t = (double)xi[e] - (double)xj[e];

				dd += t * t;
			}
			sums[lab[j]] += sqrt(dd);
		}
		a = sums[lab[i]] / (double)(cnt[lab[i]] - 1);
		for (l = 0; l < nl; l++)
			if (l != lab[i] && sums[l] / (double)cnt[l] < b)
				b = sums[l] / (double)cnt[l];
		m = a > b ? a : b;
		if (m > 0)
			total += (b - a) / m;
	}
	*out = total / (double)s;
out_free:
	free(sums);
	free(cnt);
	free(lab);
	free(labels);
	return rc;
}

json_t *metrics_clustering(const float *x, size_t n, size_t d,
			   const uint32_t *label, const float *dist2,
			   size_t sample, uint64_t seed)
{
	double inertia = NAN;
	double sil = NAN;
	size_t *idx = NULL;
	size_t s = n;
	json_t *o;
	int bad = 0;
	size_t i;
	int rc;

	if (n && (!x || !label || !d))
		return NULL;
	if (dist2) {
		inertia = 0;
		for (i = 0; i < n; i++)
			inertia += dist2[i];
	}
	if (sample && sample < n)
		s = sample;
	if (s >= 2) {
		idx = malloc(n * sizeof(*idx));
		if (!idx)
			return NULL;
		for (i = 0; i < n; i++)
			idx[i] = i;
		if (s < n) {
			uint64_t state = seed;

			/* The first s of a seeded partial Fisher-Yates. */
			for (i = 0; i < s; i++) {
				size_t j = i + (size_t)prng_below(&state,
								  n - i);
				size_t tmp = idx[i];

				idx[i] = idx[j];
				idx[j] = tmp;
			}
		}
		rc = silhouette(x, d, label, idx, s, &sil);
		free(idx);
		if (rc < 0)
			return NULL;
	}

	o = json_object();
	if (!o)
		return NULL;
	bad |= json_object_set_new(o, "inertia", json_num(inertia));
	bad |= json_object_set_new(o, "silhouette", json_num(sil));
	bad |= json_object_set_new(o, "n", json_integer((json_int_t)n));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* ---------------------------------------------------------------- */
/* The model file. */

#define MODEL_HDR 24
#define MODEL_SUM 16

static void put_le(unsigned char *p, uint64_t v, int n)
{
	int i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n)
{
	uint64_t v = 0;
	int i;

	for (i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void model_sum(const void *buf, size_t n, unsigned char *out)
{
	XXH128_canonical_t c;

	/* The canonical form is big-endian, high half first. */
	XXH128_canonicalFromHash(&c, XXH3_128bits(buf, n));
	memcpy(out, c.digest, MODEL_SUM);
}

int model_encode(json_t *header, const void *weights, size_t wlen,
		 void **out, size_t *outlen)
{
	unsigned char *buf;
	char *h;
	size_t hlen;
	size_t total;
	int rc = 0;

	*out = NULL;
	*outlen = 0;
	if (!json_is_object(header) || (wlen && !weights))
		return -EINVAL;
	h = json_dumps(header, JSON_COMPACT | JSON_SORT_KEYS |
				       JSON_REAL_PRECISION(17));
	if (!h)
		return -ENOMEM;
	hlen = strlen(h);
	if (hlen > UINT32_MAX ||
	    wlen > SIZE_MAX - MODEL_HDR - MODEL_SUM - hlen) {
		rc = -EFBIG;
		goto out_free_h;
	}
	total = MODEL_HDR + hlen + wlen + MODEL_SUM;
	buf = malloc(total);
	if (!buf) {
		rc = -ENOMEM;
		goto out_free_h;
	}
	memcpy(buf, MODEL_MAGIC, 8); /* with its NUL */
	put_le(buf + 8, MODEL_FORMAT, 4);
	put_le(buf + 12, hlen, 4);
	put_le(buf + 16, wlen, 8);
	memcpy(buf + MODEL_HDR, h, hlen);
	if (wlen)
		memcpy(buf + MODEL_HDR + hlen, weights, wlen);
	model_sum(buf, total - MODEL_SUM, buf + total - MODEL_SUM);
	*out = buf;
	*outlen = total;
out_free_h:
	free(h);
	return rc;
}

static int model_bad(char *msg, size_t msglen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int model_bad(char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;

	if (msg && msglen) {
		va_start(ap, fmt);
		vsnprintf(msg, msglen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

int model_decode(const void *buf, size_t len, json_t **header,
		 const void **weights, size_t *wlen, char *msg, size_t msglen)
{
	const unsigned char *b = buf;
	unsigned char sum[MODEL_SUM];
	json_error_t err;
	uint64_t version;
	uint64_t hlen;
	uint64_t w;
	json_t *h;

	*header = NULL;
	*weights = NULL;
	*wlen = 0;
	if (msg && msglen)
		msg[0] = '\0';
	if (!b && len)
		return model_bad(msg, msglen, "model: no buffer");
	if (memcmp(b ? (const void *)b : "", MODEL_MAGIC,
		   len < 8 ? len : 8))
		return model_bad(msg, msglen, "model: bad magic");
	if (len < MODEL_HDR)
		return model_bad(msg, msglen, "model: truncated");
	version = get_le(b + 8, 4);
	if (version != MODEL_FORMAT)
		return model_bad(msg, msglen,
				 "model: format %u is not supported",
				 (unsigned)version);
	hlen = get_le(b + 12, 4);
	w = get_le(b + 16, 8);
	/* Compared against what is left, so no sum can overflow. */
	if (hlen > len - MODEL_HDR || len - MODEL_HDR - hlen < MODEL_SUM ||
	    w > len - MODEL_HDR - hlen - MODEL_SUM)
		return model_bad(msg, msglen, "model: truncated");
	if (w < len - MODEL_HDR - hlen - MODEL_SUM)
		return model_bad(msg, msglen, "model: data after the checksum");
	model_sum(b, len - MODEL_SUM, sum);
	if (memcmp(sum, b + len - MODEL_SUM, MODEL_SUM))
		return model_bad(msg, msglen, "model: checksum mismatch");
	h = json_loadb((const char *)b + MODEL_HDR, (size_t)hlen,
		       JSON_REJECT_DUPLICATES, &err);
	if (!h)
		return model_bad(msg, msglen, "model: bad header: %s",
				 err.text);
	if (!json_is_object(h)) {
		json_decref(h);
		return model_bad(msg, msglen,
				 "model: header is not a JSON object");
	}
	*header = h;
	*weights = b + MODEL_HDR + hlen;
	*wlen = (size_t)w;
	return 0;
}

#define MODEL_FILE_NAME(id, name) [id] = name,
const char *const model_files[MODEL_NFILES] = { MODEL_FILES(MODEL_FILE_NAME) };
#undef MODEL_FILE_NAME
