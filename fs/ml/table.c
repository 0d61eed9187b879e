/* SPDX-License-Identifier: MIT */
/*
 * The in-memory CSV table that training reads (mlcore.h), the one hot
 * loop of the ML core.  It is built for large numeric files: fields are
 * recorded as (offset, length) into the caller's text, and only a quoted
 * field with doubled quotes ("") needs its bytes rewritten, into a copy
 * of the text made the first time one appears, so that one base pointer
 * addresses every field.  Fields, numbers, missing values and times are
 * read by the CSV reader of fs/base (csv_tok.c: csv_field_next and its
 * inline fast path; csv_value.c: csv_parse_double, csv_is_missing,
 * csv_parse_time), so training reads a file exactly as csv_scan judged
 * it.  Pure: no globals, no I/O.
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
#include "mlcore_int.h"

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
 * last: the end of the whole text, which blank lines are at the end of
 * (tok->end is earlier when only a part of the text is read).
 */
static int rows_read(struct tparse *ps, struct table *t, const char *last)
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
			blank_end = skip_blank(p, last);
			if (blank_end == last)
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

/*
 * Start reading text (len bytes): a BOM skipped, the header read into a
 * new *t.  -errno with pb (an empty file), *t NULL; on a bad header *t
 * is set for the caller to free with ps->owned.
 */
static int parse_start(struct tparse *ps, const char *text, size_t len,
		       struct table **t, struct problem *pb)
{
	*t = NULL;
	if (!text && len)
		return -EINVAL;
	ps->text = text;
	ps->tlen = len;
	ps->tok.p = text;
	ps->tok.end = text + len;
	ps->tok.line = 1;
	/* the offsets and lengths of struct table are 64 and 32 bits */
	ps->tok.max_field = UINT32_MAX;
	ps->tok.pb = pb;
	if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
		ps->tok.p += 3;
	ps->tok.line_start = ps->tok.p;
	if (skip_blank(ps->tok.p, ps->tok.end) == ps->tok.end)
		return problem_set(pb, 1, 1, "empty file");
	*t = calloc(1, sizeof(**t));
	if (!*t)
		return -ENOMEM;
	return header_read(ps, *t);
}

int table_parse(const char *text, size_t len, struct table **out,
		struct problem *pb)
{
	struct tparse ps = { 0 };
	struct table *t;
	int rc;

	*out = NULL;
	rc = parse_start(&ps, text, len, &t, pb);
	if (rc < 0)
		goto out_free_table;
	rc = rows_read(&ps, t, ps.tok.end);
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

int table_parse_head(const char *text, size_t len, struct table **out,
		     size_t *body, struct problem *pb)
{
	struct tparse ps = { 0 };
	struct table *t;
	int rc;

	*out = NULL;
	rc = parse_start(&ps, text, len, &t, pb);
	free(ps.owned); /* the names are copies */
	if (rc < 0) {
		table_free(t);
		return rc;
	}
	t->data = text;
	*body = (size_t)(ps.tok.p - text);
	*out = t;
	return 0;
}

int table_parse_rows(const char *text, size_t len, size_t from, size_t to,
		     size_t ncols, struct table **out, struct problem *pb)
{
	struct tparse ps = { 0 };
	struct table *t;
	int rc;

	*out = NULL;
	if (from > to || to > len || !ncols)
		return -EINVAL;
	/* offsets from the part: an unescaped field copies it, not text */
	ps.text = text + from;
	ps.tlen = to - from;
	ps.tok.p = ps.text;
	ps.tok.end = text + to;
	ps.tok.line = 1;
	ps.tok.line_start = ps.text;
	ps.tok.max_field = UINT32_MAX;
	ps.tok.pb = pb;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->ncols = ncols;
	rc = ps.tlen ? rows_read(&ps, t, text + len) : 0;
	if (rc < 0) {
		free(ps.owned);
		table_free(t);
		return rc;
	}
	t->owned = ps.owned;
	t->data = ps.owned ? ps.owned : ps.text;
	*out = t;
	return 0;
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
