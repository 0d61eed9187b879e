/* SPDX-License-Identifier: MIT */
/*
 * CSV reader: one pass over a file held in memory (usually mmap()ed) that
 * validates it as RFC 4180, infers each column's type, computes its
 * statistics and, on request, converts it to a row-major float matrix.
 * Datasets are scanned once when they are added, so this pass sets how
 * long `cp big.csv datasets/` takes: the loop is built for numeric files.
 *
 * This file is the scan itself: the header, the record loop, the matrix,
 * and each column's results (stats, classes, type), and the names of
 * types and roles.  The rest of the reader is in csv_value.c (one value:
 * numbers, missing tokens, dates and times), csv_tok.c (the field
 * tokenizer) and csv_distinct.c (distinct values), sharing csv_int.h;
 * csv_feed.c checks records as they are appended.
 *
 * The record loop first tries every field as a number ending at a
 * delimiter (num_scan(), which reads each byte once; 16 bytes at a time
 * where the core has SSE4.1, csv_simd.h and csv_rows.h), then as plain ASCII
 * text (plain_field(): digests, ids), and only falls back to the general
 * field parser when both fail: csv_field_next() (quotes, UTF-8, NUL), the
 * one field tokenizer of mlfs, which the training table (ml/table.c) and
 * predict's rows (ml/predict.c) use too, then the missing tokens and
 * text.  Distinct values go through three tiers per column
 * (struct colstate): a small set with counts, for classes; sorted batches
 * of 64-bit hashes up to CSV_DISTINCT_EXACT; then a HyperLogLog sketch.
 * The sets refer to values in the input instead of copying them, and all
 * of them together stay under CSV_SET_BUDGET bytes, so memory is bounded
 * whatever the input.
 *
 * Inputs of at least twice SPLIT_MIN bytes are scanned in parts, one a
 * core, merged in order (scan_split(); the same answers as one pass, but
 * for the last bits of means and deviations, which depend on the order
 * of additions).  No global state: any thread may call any function
 * here, on inputs it does not modify meanwhile.
 */
#include <errno.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "csv.h"
#include "csv_int.h"
#include "csv_simd.h"

/* Whether this core has SSE4.1; a unit test (csvsimd) defines its own. */
#ifndef CSV_CPU_SSE41
#define CSV_CPU_SSE41() __builtin_cpu_supports("sse4.1")
#endif

#define CSV_DEF_FIELD ((size_t)1 << 20)
#define CSV_DEF_LINE ((size_t)16 << 20)
#define CSV_DEF_COLS ((size_t)65536)

/* Bytes of exact distinct sets, all columns together. */
#define CSV_SET_BUDGET ((size_t)64 << 20)
/* Columns a scan (or part) counts in batches at most (col_batch()). */
#define CSV_BATCH_COLS 4096
/* Matrix: rows before the first estimate of the total. */
#define MAT_FIRST_ROWS 4096
/* Matrix: bytes prefaulted at a time; blocks that get huge pages. */
#define MAT_PREFAULT ((size_t)8 << 20)
#define MAT_HUGE_MIN ((size_t)4 << 20)
/* Values per block of the running variance (see col_flush()). */
#define CSV_BLOCK 1024
/* Numbers a column past tier 1 counts at a time (col_drain()). */
#define CSV_VALS 64

struct matbuf {
	float *data;
	uint64_t cap;      /* rows */
	uint64_t ready;    /* rows that mat_reserve() made room for */
	bool shared;       /* a part's rows in a split scan's matrix: the
			      room is cap rows, never grown */
};

static char *unescape_dup(const char *p, size_t n, bool esc)
{
	char *s = malloc(n + 1);

	if (!s)
		return NULL;
	if (esc)
		n = csv_unescape(s, p, n);
	else
		memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/*
 * Fold the current block into mean and m2 (Chan, Golub and LeVeque's
 * pairwise update).  Inside a block, sums of deviations from the block's
 * first value are accurate because that value is close to the others;
 * this costs no division per value, unlike Welford's update.
 */
static void col_flush(struct colstate *s)
{
	double nb = (double)s->bn;
	double na = (double)(s->nnum - s->bn);
	double mb = s->bk + s->bs1 / nb;
	double m2b = s->bs2 - s->bs1 * s->bs1 / nb;
	double delta = mb - s->mean;

	if (!s->bn)
		return;
	if (m2b < 0)
		m2b = 0;
	s->mean += delta * nb / (na + nb);
	s->m2 += m2b + delta * delta * na * nb / (na + nb);
	s->bn = 0;
	s->bs1 = 0;
	s->bs2 = 0;
}

/* One number's statistics (counted in s->nnum; s->n is the caller's). */
static inline CSV_HOT void col_stats_one(struct colstate *s, double v)
{
	double d;

	s->nnum++;
	if (!s->bn)
		s->bk = v;
	d = v - s->bk;
	s->bs1 += d;
	s->bs2 += d * d;
	if (++s->bn == CSV_BLOCK)
		col_flush(s);
	s->min = v < s->min ? v : s->min;
	s->max = v > s->max ? v : s->max;
}

/* Whether v is an integer an int64_t holds (int_ok). */
static inline CSV_HOT bool num_is_int(double v)
{
	return fabs(v) < 0x1p63 && (double)(int64_t)v == v;
}

typedef uint64_t u64x2 __attribute__((vector_size(16), aligned(16)));

/*
 * The first of h[i..n) that its table line (keys[h & mask]) lacks, or
 * is 0 (the number 0: a flag, not a slot, and an empty slot holds 0), or
 * n: csv_keys_put() then.
 */
static inline CSV_HOT size_t probe_any(const uint64_t *keys, size_t mask,
				       const uint64_t *h, size_t i, size_t n)
{
	for (; i < n; i++) {
		const u64x2 *l = (const u64x2 *)(const void *)&keys[h[i] & mask];
		const u64x2 x = { h[i], h[i] };
		const u64x2 m = (l[0] == x) | (l[1] == x) | (l[2] == x) |
				(l[3] == x);

		if (!(m[0] | m[1]) || !h[i])
			break;
	}
	return i;
}

#if CSV_SSE41
/* probe_any() with SSE4.1's 64-bit compares and PTEST. */
static CSV_SSE41_FN size_t probe_sse41(const uint64_t *keys, size_t mask,
				       const uint64_t *h, size_t i, size_t n)
{
	for (; i < n; i++) {
		const __m128i *l = (const __m128i *)(const void *)
					   &keys[h[i] & mask];
		const __m128i x = _mm_set1_epi64x((long long)h[i]);
		const __m128i m = _mm_or_si128(
			_mm_or_si128(_mm_cmpeq_epi64(l[0], x),
				     _mm_cmpeq_epi64(l[1], x)),
			_mm_or_si128(_mm_cmpeq_epi64(l[2], x),
				     _mm_cmpeq_epi64(l[3], x)));

		if (_mm_testz_si128(m, m) | !h[i])
			break;
	}
	return i;
}
#endif

static size_t probe_run(const uint64_t *keys, size_t mask, const uint64_t *h,
			size_t i, size_t n)
{
#if CSV_SSE41
	if (CSV_CPU_SSE41())
		return probe_sse41(keys, mask, h, i, n);
#endif
	return probe_any(keys, mask, h, i, n);
}

/*
 * The statistics of the n numbers waiting in s->vals, as col_add_num()
 * counts them one by one; a whole batch inside one block (CSV_BLOCK) in
 * two sums a statistic, which halves the wait for each addition (the
 * last bits of the mean and deviation differ, as in a split scan).
 */
static void vals_stats(struct colstate *s, uint32_t n)
{
	const double *v = s->vals;
	double a1 = 0, b1 = 0, a2 = 0, b2 = 0;
	double min = s->min, max = s->max;
	double bk;
	uint32_t i;

	s->n += n;
	if (n % 2 || s->bn + n > CSV_BLOCK) {
		for (i = 0; i < n; i++)
			col_stats_one(s, v[i]);
		return;
	}
	if (!s->bn)
		s->bk = v[0];
	bk = s->bk;
#ifdef __SSE2__
	{
		/* The same two sums in the two lanes of a register. */
		const __m128d k = _mm_set1_pd(bk);
		__m128d s1 = _mm_setzero_pd();
		__m128d s2 = _mm_setzero_pd();
		__m128d lo = _mm_set1_pd(min);
		__m128d hi = _mm_set1_pd(max);

		for (i = 0; i < n; i += 2) {
			const __m128d x = _mm_loadu_pd(&v[i]);
			const __m128d d = _mm_sub_pd(x, k);

			s1 = _mm_add_pd(s1, d);
			s2 = _mm_add_pd(s2, _mm_mul_pd(d, d));
			lo = _mm_min_pd(x, lo); /* x < lo ? x : lo */
			hi = _mm_max_pd(x, hi);
		}
		a1 = _mm_cvtsd_f64(s1);
		b1 = _mm_cvtsd_f64(_mm_unpackhi_pd(s1, s1));
		a2 = _mm_cvtsd_f64(s2);
		b2 = _mm_cvtsd_f64(_mm_unpackhi_pd(s2, s2));
		min = _mm_cvtsd_f64(lo);
		min = _mm_cvtsd_f64(_mm_unpackhi_pd(lo, lo)) < min ?
			      _mm_cvtsd_f64(_mm_unpackhi_pd(lo, lo)) : min;
		max = _mm_cvtsd_f64(hi);
		max = _mm_cvtsd_f64(_mm_unpackhi_pd(hi, hi)) > max ?
			      _mm_cvtsd_f64(_mm_unpackhi_pd(hi, hi)) : max;
		if (min == 0 || max == 0) {
			/* 0 and -0: which came first takes the order */
			min = s->min;
			max = s->max;
			for (i = 0; i < n; i++) {
				min = v[i] < min ? v[i] : min;
				max = v[i] > max ? v[i] : max;
			}
		}
	}
#else
	for (i = 0; i < n; i += 2) {
		double d = v[i] - bk;
		double e = v[i + 1] - bk;

		a1 += d;
		b1 += e;
		a2 += d * d;
		b2 += e * e;
		/* in order: of 0 and -0, the first one seen stays */
		min = v[i] < min ? v[i] : min;
		min = v[i + 1] < min ? v[i + 1] : min;
		max = v[i] > max ? v[i] : max;
		max = v[i + 1] > max ? v[i + 1] : max;
	}
#endif
	s->nnum += n;
	s->bs1 += a1 + b1;
	s->bs2 += a2 + b2;
	s->min = min;
	s->max = max;
	s->bn += n;
	if (s->bn == CSV_BLOCK)
		col_flush(s);
}

/*
 * The numbers waiting in s->vals, counted as col_add_num() counts one,
 * but a batch at a time: the statistics in registers (vals_stats()), and
 * every hash's line of the table prefetched before the first is probed,
 * 16 bytes at a time.  One number at a time, a scan of 7 float columns
 * (csv_bench stats1) spent about 80 instructions a value there, most of
 * them waiting on the column's state in memory or on the hash before.
 */
static int col_drain(struct scan *sc, struct colstate *s)
{
	uint64_t h[CSV_VALS];
	const uint32_t n = s->nvals;
	uint32_t i;
	int rc;

	s->nvals = 0;
	vals_stats(s, n);
	for (i = 0; s->int_ok && i < n; i++)
		s->int_ok = num_is_int(s->vals[i]);
	for (i = 0; i < n; i++)
		h[i] = num_hash(s->vals[i]);
	if (s->hll) {
		for (i = 0; i < n; i++)
			hll_add(s->hll, h[i]);
		return 0;
	}
	i = 0;
	if (s->kmask) {
		const uint64_t *keys = s->keys;
		const size_t mask = s->kmask & ~(size_t)(KEYS_LINE - 1);

		for (i = 0; i < n; i++)
			__builtin_prefetch(&keys[h[i] & mask]);
		for (i = 0; (i = probe_run(keys, mask, h, i, n)) < n; i++) {
			rc = csv_keys_put(sc, s, h[i]);
			if (rc < 0)
				return rc;
			if (keys != s->keys || !s->kmask) {
				i++;
				break; /* grown, or gone on to batches */
			}
		}
	}
	for (; i < n; i++) {
		/* past tier 1: the spelling is not kept */
		rc = csv_col_distinct(sc, s, h[i], ENT_NUM, NULL, 0);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Every column's waiting numbers, at the end of scan_rows(). */
static int cols_drain(struct scan *sc, struct colstate *cs, size_t ncols)
{
	size_t c;
	int rc;

	for (c = 0; c < ncols; c++) {
		if (cs[c].nvals) {
			rc = col_drain(sc, &cs[c]);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

/*
 * From now on s counts its numbers in batches (col_drain()), if the scan
 * may batch one more column (at most CSV_BATCH_COLS, so that a file of
 * 65,536 wide columns adds 2 MiB a part, not 32) and malloc() gives the
 * room; one try only, so that a column short of memory does not pay a
 * malloc() a value.
 */
static void col_batch(struct scan *sc, struct colstate *s)
{
	if (!s->batch_tried && sc->batch_cols) {
		s->vals = malloc(CSV_VALS * sizeof(*s->vals));
		sc->batch_cols -= s->vals != NULL;
	}
	s->batch_tried = true;
}

/* A number in column s; p/n is its spelling in the input. */
static inline CSV_HOT int col_add_num(struct scan *sc, struct colstate *s,
				      double v, const char *p, size_t n)
{
	uint64_t h;

	if (s->vals) {
		s->vals[s->nvals++] = v;
		return s->nvals == CSV_VALS ? col_drain(sc, s) : 0;
	}
	s->n++;
	col_stats_one(s, v);
	if (s->hll) {
		hll_add(s->hll, num_hash(v));
		col_batch(sc, s);
		return 0;
	}
	if (s->int_ok && !num_is_int(v))
		s->int_ok = false;
	h = num_hash(v);
	if (s->kmask) {
		col_batch(sc, s);
		return keys_defer(sc, s, h);
	}
	if (cset_count_num(&s->set, h))
		return 0;
	return csv_col_distinct(sc, s, h, ENT_NUM, p, n);
}

/*
 * A value that is neither missing nor a number.  Inline (CSV_HOT): in a
 * file of digests it is called for most fields, and the call cost 4%.
 */
static inline CSV_HOT int col_add_text(struct scan *sc, struct colstate *s,
				       const char *p, size_t n, bool esc)
{
	const char *hp = p;
	size_t hn = n;
	uint64_t h;
	double secs;

	s->n++;
	if (s->time_ok && (esc || !csv_parse_time(p, n, &secs)))
		s->time_ok = false;
	if (esc) {
		if (n > sc->scratch_cap) {
			char *b = realloc(sc->scratch, n);

			if (!b)
				return -ENOMEM;
			sc->scratch = b;
			sc->scratch_cap = n;
		}
		hn = csv_unescape(sc->scratch, p, n);
		hp = sc->scratch;
	}
	h = XXH3_64bits(hp, hn);
	/* A column of digests or ids is in tier 3 after 65536 rows. */
	if (s->hll) {
		hll_add(s->hll, h);
		return 0;
	}
	if (s->kmask)
		return keys_defer(sc, s, h);
	return csv_col_distinct(sc, s, h, esc ? ENT_ESC : 0, p, n);
}

/* Any field: missing, a number (spaces or quotes around it) or text. */
static int col_add_field(struct scan *sc, struct colstate *s,
			 const struct csv_field *f, float *cell)
{
	const char *p = f->p;
	size_t n = f->len;
	struct num_parts np;
	double v;

	trim(&p, &n);
	if (!f->esc && csv_is_missing(p, n)) {
		s->missing++;
		if (cell)
			*cell = NAN;
		return 0;
	}
	/* The value only of a whole field (num_scan()). */
	if (!f->esc && num_scan(p, p + n, &np) == p + n) {
		v = num_value(p, p + n, &np);
		if (!isnan(v)) {
			if (cell)
				*cell = (float)v;
			return col_add_num(sc, s, v, p, n);
		}
	}
	if (cell)
		*cell = NAN;
	return col_add_text(sc, s, p, n, f->esc);
}

/*
 * A plain field p/n that fast_field() did not take.  Without blanks
 * around it, those same bytes with the same end are no number, so it is
 * missing or text, and col_add_field() need not parse it again.
 */
static inline int col_add_plain(struct scan *sc, struct colstate *s,
				const char *p, size_t n, float *cell)
{
	struct csv_field f = { .p = p, .len = n };

	if (!n || is_blank(p[0]) || is_blank(p[n - 1]))
		return col_add_field(sc, s, &f, cell);
	if (cell)
		*cell = NAN;
	if (n <= CSV_MISSING_MAX && csv_is_missing(p, n)) {
		s->missing++;
		return 0;
	}
	return col_add_text(sc, s, p, n, false);
}

static int parse_header(struct scan *sc, struct csv_info *info)
{
	struct cset names = { 0 };
	size_t cap = 0;
	const char *rec = sc->tok.p;
	uint64_t rec_line = sc->tok.line;
	struct csv_field f;
	int rc;

	do {
		const char *p;
		size_t n;
		char *name;

		if (info->ncols == sc->max_cols) {
			problem_set(sc->tok.pb, pos_u(sc->tok.line),
				    pos_u(tok_col(&sc->tok, sc->tok.p)),
				    "more than %zu columns", sc->max_cols);
			rc = -EFBIG;
			goto out_free_names;
		}
		rc = csv_field_next(&sc->tok, &f);
		if (rc < 0)
			goto out_free_names;
		p = f.p;
		n = f.len;
		trim(&p, &n);
		if (!n) {
			rc = problem_set(sc->tok.pb, pos_u(f.line),
					 pos_u(f.col), "empty column name");
			goto out_free_names;
		}
		if (info->ncols == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct csv_column *c;

			c = realloc(info->cols, ncap * sizeof(*c));
			if (!c) {
				rc = -ENOMEM;
				goto out_free_names;
			}
			memset(c + cap, 0, (ncap - cap) * sizeof(*c));
			info->cols = c;
			cap = ncap;
		}
		name = unescape_dup(p, n, f.esc);
		if (!name) {
			rc = -ENOMEM;
			goto out_free_names;
		}
		info->cols[info->ncols++].name = name;
		n = strlen(name);
		rc = csv_cset_add(&names, XXH3_64bits(name, n), 0, name, n, 1,
				  NULL, SIZE_MAX);
		if (rc < 0)
			goto out_free_names;
		if (!rc) {
			rc = problem_set(sc->tok.pb, pos_u(f.line),
					 pos_u(f.col),
					 "duplicate column name \"%s\"", name);
			goto out_free_names;
		}
	} while (f.term == CSV_TERM_COMMA);
	rc = 0;
	if (info->ncols == 1 && !f.esc) {
		/* One column whose name holds tabs or semicolons: another
		 * delimiter, never one text column taken silently. */
		const char *nm = info->cols[0].name;
		const char *tab = strchr(nm, '\t'), *semi = strchr(nm, ';');

		if (tab || semi)
			rc = problem_set(sc->tok.pb, pos_u(rec_line),
					 pos_u((uint64_t)((tab ? tab : semi) -
							  nm) + 1),
					 "looks %s-separated: use commas",
					 tab ? "tab" : "semicolon");
	}
	if (rc == 0 && (size_t)(f.term_at - rec) > sc->max_line)
		rc = csv_too_big(sc->tok.pb, rec_line, 1, "record",
				 sc->max_line);
out_free_names:
	free(names.slots);
	return rc;
}

/* End of the run of CR and LF bytes at p. */
static const char *skip_blank(const char *p, const char *end)
{
	while (p < end && (*p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* madvise() the whole pages inside [p, p + len); advice only, no errors. */
static void mem_advise(void *p, size_t len, int advice)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = ((uintptr_t)p + page - 1) & ~(page - 1);
	uintptr_t e = ((uintptr_t)p + len) & ~(page - 1);

	if (e > a)
		madvise((void *)a, e - a, advice);
}

/* Room for cap rows: one realloc(), huge pages for a big block. */
static int mat_grow(struct matbuf *mb, size_t ncols, uint64_t cap)
{
	size_t row = ncols * sizeof(*mb->data);
	float *d;

	if (cap > SIZE_MAX / row)
		return -ENOMEM;
	d = realloc(mb->data, (size_t)cap * row);
	if (!d)
		return -ENOMEM;
	mb->data = d;
	mb->cap = cap;
#ifdef MADV_HUGEPAGE
	if (cap * row >= MAT_HUGE_MIN)
		mem_advise(d, (size_t)cap * row, MADV_HUGEPAGE);
#endif
	return 0;
}

/* Fault rows [from, to) in with one call, not a fault a page. */
static void mat_populate(struct matbuf *mb, size_t ncols, uint64_t from,
			 uint64_t to)
{
#ifdef MADV_POPULATE_WRITE
	mem_advise(mb->data + from * ncols,
		   (size_t)(to - from) * ncols * sizeof(*mb->data),
		   MADV_POPULATE_WRITE);
#else
	(void)mb;
	(void)ncols;
	(void)from;
	(void)to;
#endif
}

/*
 * Room for row nrows, done of total bytes into the records.  The matrix
 * is new memory written once, about a third of the file's size, and how
 * its pages arrive costs more than the parsing: on 160 MB, doubling
 * realloc()s with a fault per 4 KiB page took 0.6 s, one block of huge
 * pages 0.05 s.  So:
 *  - at the first growth the capacity jumps to the row count that the
 *    rows so far predict for the whole input, plus 1/16 (never more
 *    bytes than the input itself), so that one realloc() usually moves
 *    the block and doubling is the exception (a split scan sizes one
 *    block for all parts from their line ends: scan_split());
 *  - big blocks are advised MADV_HUGEPAGE, and prefaulted MAT_PREFAULT
 *    bytes ahead with MADV_POPULATE_WRITE: one call, not a fault a page.
 * mat_finish() gives back what the estimate overshot.
 */
static int mat_reserve(struct matbuf *mb, size_t ncols, uint64_t nrows,
		       size_t done, size_t total)
{
	size_t row = ncols * sizeof(*mb->data);
	uint64_t ready;

	if (nrows == mb->cap && mb->shared)
		return -ENOSPC; /* more records than line ends: never */
	if (nrows == mb->cap) {
		uint64_t cap = mb->cap ? mb->cap * 2 : MAT_FIRST_ROWS;
		double est;
		int rc;

		if (mb->cap && done) {
			est = (double)nrows * ((double)total / (double)done);
			est += est / 16;
			if (est > (double)cap && est < (double)(total / row))
				cap = (uint64_t)est;
		}
		rc = mat_grow(mb, ncols, cap);
		if (rc < 0)
			return rc;
	}
	ready = nrows + MAT_PREFAULT / row + 1;
	if (ready > mb->cap)
		ready = mb->cap;
	mat_populate(mb, ncols, nrows, ready);
	mb->ready = ready;
	return 0;
}

/*
 * The fast path for one field at p: empty, or a number up to max_field
 * bytes, followed by a delimiter.  Sets *v (NAN if empty), *q (the end of
 * the field), *next (past the delimiter) and *term.  Anything else (text,
 * quotes, spaces, odd bytes) returns false, for csv_field_next().
 */
static inline CSV_HOT bool fast_field(const char *p, const char *end,
				      size_t max_field, double *v,
				      const char **q, const char **next,
				      enum csv_term *term)
{
	struct num_parts np;
	const char *e = num_scan(p, end, &np);

	if ((size_t)(e - p) > max_field)
		return false;
	*q = e;
	/* The delimiter first: text that starts like a number stops here
	 * without its value (num_scan()). */
	if (e == end) {
		*term = CSV_TERM_EOF;
		*next = e;
	} else if (*e == ',') {
		*term = CSV_TERM_COMMA;
		*next = e + 1;
	} else if (*e == '\n') {
		*term = CSV_TERM_EOL;
		*next = e + 1;
	} else if (*e == '\r' && e + 1 < end && e[1] == '\n') {
		*term = CSV_TERM_EOL;
		*next = e + 2;
	} else {
		return false;
	}
	if (e == p) {
		*v = NAN; /* empty */
		return true;
	}
	*v = num_value(p, e, &np);
	return !isnan(*v);
}

/*
 * The fast path for a field that fast_field() did not take: plain ASCII
 * (no quote, NUL, lone CR or byte >= 0x80, where csv_field_next() has
 * more to say) up to max_field bytes, followed by a delimiter.  Sets *q,
 * *next and *term as fast_field() does, or returns false.
 */
static inline CSV_HOT bool plain_field(const char *p, const char *end,
				       size_t max_field, const char **q,
				       const char **next, enum csv_term *term)
{
	const unsigned char *e = csv_plain_skip((const unsigned char *)p,
						(const unsigned char *)end);

	while (e < (const unsigned char *)end && !csv_plain_stop[*e])
		e++;
	if ((size_t)((const char *)e - p) > max_field)
		return false;
	*q = (const char *)e;
	if (*q == end) {
		*term = CSV_TERM_EOF;
		*next = end;
	} else if (*e == ',') {
		*term = CSV_TERM_COMMA;
		*next = *q + 1;
	} else if (*e == '\n') {
		*term = CSV_TERM_EOL;
		*next = *q + 1;
	} else if (*e == '\r' && *q + 1 < end && e[1] == '\n') {
		*term = CSV_TERM_EOL;
		*next = *q + 2;
	} else {
		return false;
	}
	return true;
}

/* The record loop, once for any CPU and once with SSE4.1: csv_rows.h. */
#define SCAN_ROWS scan_rows_any
#define SCAN_ROWS_FN
#define FAST_FIELD fast_field
#include "csv_rows.h"
#undef SCAN_ROWS
#undef SCAN_ROWS_FN
#undef FAST_FIELD

#if CSV_SSE41
/* fast_field(), 16 bytes at a time where 16 are left: csv_simd.h. */
static inline CSV_HOT CSV_SSE41_FN bool
fast_field_sse41(const char *p, const char *end, size_t max_field, double *v,
		 const char **q, const char **next, enum csv_term *term)
{
	bool eol;
	int n;

	if (end - p >= 16 && (n = num_simd(p, v, &eol)) >= 0 &&
	    (size_t)n <= max_field) {
		*q = p + n;
		*next = p + n + 1;
		*term = eol ? CSV_TERM_EOL : CSV_TERM_COMMA;
		return true;
	}
	return fast_field(p, end, max_field, v, q, next, term);
}

#define SCAN_ROWS scan_rows_sse41
#define SCAN_ROWS_FN CSV_SSE41_FN
#define FAST_FIELD fast_field_sse41
#include "csv_rows.h"
#undef SCAN_ROWS
#undef SCAN_ROWS_FN
#undef FAST_FIELD
#endif

static int scan_rows(struct scan *sc, struct colstate *cs, size_t ncols,
		     struct matbuf *mb, uint64_t *nrows_out)
{
	int rc;

#if CSV_SSE41
	if (CSV_CPU_SSE41())
		rc = scan_rows_sse41(sc, cs, ncols, mb, nrows_out);
	else
#endif
		rc = scan_rows_any(sc, cs, ncols, mb, nrows_out);
	return rc < 0 ? rc : cols_drain(sc, cs, ncols);
}

struct class_tmp {
	const struct cset_ent *e;
	double v;
};

static int class_cmp_num(const void *a, const void *b)
{
	const struct class_tmp *x = a;
	const struct class_tmp *y = b;

	if (x->e->count != y->e->count)
		return x->e->count > y->e->count ? -1 : 1;
	return (x->v > y->v) - (x->v < y->v);
}

static int class_cmp_str(const void *a, const void *b)
{
	const struct cset_ent *x = ((const struct class_tmp *)a)->e;
	const struct cset_ent *y = ((const struct class_tmp *)b)->e;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return csv_raw_cmp(x->p, x->len, x->flags & ENT_ESC, y->p, y->len,
			   y->flags & ENT_ESC);
}

/*
 * The most frequent values of a column, ties by value.  Numeric columns
 * (integers only) name classes by the number, so "1.0" and "01" are "1";
 * other columns by the first spelling seen.
 */
static int col_classes(const struct colstate *s, struct csv_column *col,
		       bool numeric)
{
	const struct cset *set = &s->set;
	struct class_tmp *tmp;
	size_t n = 0;
	size_t k;
	size_t i;
	int rc = 0;

	tmp = malloc(set->size * sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	for (i = 0; i <= set->mask; i++) {
		const struct cset_ent *e = &set->slots[i];

		if (!e->count)
			continue;
		tmp[n].e = e;
		tmp[n].v = 0;
		if (numeric)
			num_parse(e->p, e->p + e->len, &tmp[n].v);
		n++;
	}
	qsort(tmp, n, sizeof(*tmp), numeric ? class_cmp_num : class_cmp_str);
	k = n < CSV_MAX_CLASSES ? n : CSV_MAX_CLASSES;
	col->classes = calloc(k, sizeof(*col->classes));
	if (!col->classes) {
		rc = -ENOMEM;
		goto out_free_tmp;
	}
	for (i = 0; i < k; i++) {
		const struct cset_ent *e = tmp[i].e;
		char num[32];

		if (numeric) {
			snprintf(num, sizeof(num), "%.0f", tmp[i].v + 0.0);
			col->classes[i].value = unescape_dup(num, strlen(num),
							     false);
		} else {
			col->classes[i].value = unescape_dup(
				e->p, e->len, e->flags & ENT_ESC);
		}
		if (!col->classes[i].value) {
			rc = -ENOMEM;
			goto out_free_tmp;
		}
		col->classes[i].count = e->count;
		col->nclasses++;
	}
out_free_tmp:
	free(tmp);
	return rc;
}

/*
 * Types, in this order: no values at all is text; all numbers is numeric;
 * all dates/times is time.  Otherwise a column is categorical when values
 * repeat: at most CSV_CAT_MAX distinct values, each seen twice on average
 * (distinct * 2 <= count); small columns (at most 20 values) need only one
 * repeat (distinct < count), since a handful of rows rarely shows every
 * value twice.  Everything else (identifiers, free text) is text.
 */
static enum csv_type col_type(const struct colstate *s,
			      const struct csv_column *col)
{
	if (!s->n)
		return CSV_TEXT;
	if (s->nnum == s->n)
		return CSV_NUMERIC;
	if (!s->nnum && s->time_ok)
		return CSV_TIME;
	if (col->distinct_estimated || col->distinct > CSV_CAT_MAX)
		return CSV_TEXT;
	if (col->distinct * 2 <= col->count ||
	    (col->count <= 20 && col->distinct < col->count))
		return CSV_CATEGORICAL;
	return CSV_TEXT;
}

static int finish(struct scan *sc, struct colstate *cs,
		  struct csv_info *info)
{
	size_t i;
	int rc;

	for (i = 0; i < info->ncols; i++) {
		struct colstate *s = &cs[i];
		struct csv_column *col = &info->cols[i];

		col->count = s->n;
		col->missing = s->missing;
		col->role = CSV_ROLE_FEATURE;
		rc = s->keys ? csv_keys_flush(sc, s) : 0;
		if (rc < 0)
			return rc;
		if (s->hll) {
			uint64_t d = csv_hll_estimate(s->hll);

			d = d < s->exact ? s->exact : d;
			col->distinct = d > s->n ? s->n : d;
			col->distinct_estimated = true;
		} else if (s->keys) {
			col->distinct = s->nkeys;
		} else {
			col->distinct = s->set.size;
		}
		col->type = col_type(s, col);
		col->mean = NAN;
		col->std = NAN;
		col->min = NAN;
		col->max = NAN;
		if (col->type == CSV_NUMERIC) {
			col_flush(s);
			col->mean = s->mean;
			col->std = sqrt(s->m2 / (double)s->nnum);
			col->min = s->min;
			col->max = s->max;
		}
		/* Classes need tier 1; categorical columns never leave it. */
		rc = 0;
		if (col->type == CSV_CATEGORICAL)
			rc = col_classes(s, col, false);
		else if (col->type == CSV_NUMERIC && s->int_ok &&
			 s->set.slots && col->distinct <= CSV_MAX_CLASSES)
			rc = col_classes(s, col, true);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static void cols_free(struct colstate *cs, size_t ncols)
{
	size_t i;

	if (!cs)
		return;
	for (i = 0; i < ncols; i++) {
		free(cs[i].set.slots);
		free(cs[i].keys);
		free(cs[i].hll);
		free(cs[i].vals);
	}
	free(cs);
}

/* Hand the matrix over: non-numeric columns are NAN throughout. */
static void mat_finish(struct matbuf *mb, const struct csv_info *info,
		       struct csv_matrix *mat)
{
	size_t ncols = info->ncols;
	uint64_t r;
	size_t c;
	float *d;

	for (c = 0; c < ncols; c++) {
		if (info->cols[c].type == CSV_NUMERIC)
			continue;
		for (r = 0; r < info->nrows; r++)
			mb->data[r * ncols + c] = NAN;
	}
	/* Give back the slack; if that fails the bigger block is fine. */
	d = realloc(mb->data, (size_t)info->nrows * ncols * sizeof(*d));
	if (d)
		mb->data = d;
	mat->data = mb->data;
	mat->rows = info->nrows;
	mat->cols = ncols;
	mb->data = NULL;
}

static struct colstate *cols_new(size_t ncols)
{
	struct colstate *cs = calloc(ncols, sizeof(*cs));
	size_t i;

	for (i = 0; cs && i < ncols; i++) {
		cs[i].min = INFINITY;
		cs[i].max = -INFINITY;
		cs[i].int_ok = true;
		cs[i].time_ok = true;
	}
	return cs;
}

/* Bytes of set memory s holds against the budget. */
static size_t col_bytes(const struct colstate *s)
{
	size_t n = s->kcap * sizeof(*s->keys);

	if (s->set.slots)
		n += (s->set.mask + 1) * sizeof(*s->set.slots);
	return n;
}

/* b's statistics, of the records after a's, into a (Chan et al.). */
static void col_merge_stats(struct colstate *a, struct colstate *b)
{
	double na;
	double nb;
	double delta;

	col_flush(a);
	col_flush(b);
	na = (double)a->nnum;
	nb = (double)b->nnum;
	if (b->nnum && !a->nnum) {
		a->mean = b->mean;
		a->m2 = b->m2;
	} else if (b->nnum) {
		delta = b->mean - a->mean;
		a->mean += delta * nb / (na + nb);
		a->m2 += b->m2 + delta * delta * na * nb / (na + nb);
	}
	a->n += b->n;
	a->nnum += b->nnum;
	a->missing += b->missing;
	a->min = b->min < a->min ? b->min : a->min;
	a->max = b->max > a->max ? b->max : a->max;
	a->int_ok = a->int_ok && b->int_ok;
	a->time_ok = a->time_ok && b->time_ok;
}

/*
 * A split scan (csv_scan_split()): the records cut into parts at record
 * starts, each scanned by a thread into a state of its own, then merged
 * in order into the first part's, which is the scan's own.
 *
 * Where a record starts depends on the quotes before it: a newline
 * inside a quoted field is data.  In valid CSV a byte is inside quotes
 * exactly when an odd number of quote bytes come before it ("" inside a
 * field is two), so each thread first counts the quotes of its share of
 * the bytes (a few percent of the scan), and a part starts after the
 * first newline outside quotes at or after its share's start.  When the
 * input is not valid CSV that guess can be wrong, but then the part
 * before fails (a record or quote runs over its end), and any failure
 * in any part sends csv_scan_split() back to the serial scan, which
 * finds the first problem and names its line and column: the parts only
 * ever decide success.
 */
#define SPLIT_MAX 8
/* Bytes of records each part gets at least, automatically. */
#define SPLIT_MIN ((size_t)16 << 20)

struct split {
	const char *from;    /* the first record */
	const char *end;     /* the input's end */
	size_t nparts;
	size_t ncols;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool counted[SPLIT_MAX];
	bool odd[SPLIT_MAX]; /* an odd number of quotes in share i */
	uint64_t lfs[SPLIT_MAX]; /* line ends in share i */
	/* the matrix, when asked for: one block, each part's rows at its
	 * first line end's number, the upper bound of the rows before it */
	bool mat;
	float *mdata;        /* under mu: part 0's to make */
	uint64_t mrows;      /* rows of room */
	bool mready;         /* under mu: mdata made, or failed (NULL) */
};

struct part {
	struct split *sp;
	size_t i;
	struct scan sc;      /* part 0: the caller's */
	struct colstate *cs;
	struct matbuf mb;
	bool mat;
	uint64_t row0;       /* its first row's place in the matrix */
	struct problem pb;
	uint64_t nrows;
	int rc;
};

/* 0x80 in each byte of x that is 0, 0 in the others. */
static inline uint64_t zero_bytes(uint64_t x)
{
	const uint64_t low7 = 0x7f7f7f7f7f7f7f7fULL;

	return ~(((x & low7) + low7) | x | low7);
}

/*
 * The number of bytes of m with 0x80 set, when no other bit is: one
 * multiply sums the eight bytes into the top one.  __builtin_popcountll
 * is a call into libgcc on the baseline x86-64 we build for (no POPCNT),
 * and cost 11 % of a split scan.
 */
static inline uint64_t count_high(uint64_t m)
{
	return ((m >> 7) * 0x0101010101010101ULL) >> 56;
}

#ifdef __SSE2__
/*
 * share_count()'s bulk 16 bytes at a time (SSE2, in every x86-64; half
 * the time of the words below, and the streaming scan runs it over every
 * byte that arrives): quotes and LFs counted in byte lanes, the quotes
 * mod 256 (their parity is what counts), the LFs summed every 255 blocks.
 * Returns where it stopped, fewer than 16 bytes before end.
 */
static const char *share_count16(const char *p, const char *end,
				 unsigned *odd, uint64_t *lfs)
{
	const __m128i zero = _mm_setzero_si128();
	const __m128i quote = _mm_set1_epi8('"');
	const __m128i lf = _mm_set1_epi8('\n');
	__m128i q = zero;
	__m128i sum;

	while (end - p >= 16) {
		size_t blocks = (size_t)(end - p) / 16;
		__m128i l = zero;

		if (blocks > 255)
			blocks = 255;
		for (; blocks; blocks--, p += 16) {
			__m128i x = _mm_loadu_si128((const __m128i *)p);

			q = _mm_sub_epi8(q, _mm_cmpeq_epi8(x, quote));
			l = _mm_sub_epi8(l, _mm_cmpeq_epi8(x, lf));
		}
		sum = _mm_sad_epu8(l, zero);
		*lfs += (uint64_t)_mm_cvtsi128_si32(sum) +
			(uint64_t)_mm_extract_epi16(sum, 4);
	}
	sum = _mm_sad_epu8(q, zero);
	*odd ^= (unsigned)(_mm_cvtsi128_si32(sum) + _mm_extract_epi16(sum, 4)) &
		1;
	return p;
}
#endif

/*
 * Is the number of quote bytes in [p, end) odd?  And, with lfs, how many
 * LF bytes are there?  16 bytes at a time with SSE2, else 8.  Without
 * lfs, bytes with no quote at all (most numeric CSV) are settled by
 * glibc's memchr: the streaming scan of a cp asks this of every byte
 * that arrives, and its first touch of them is the cost (perf of the
 * daemon during a cp of 1 GiB: memchr 3.1 % of the samples, where this
 * loop was 4.1 %).
 */
static bool share_count(const char *p, const char *end, uint64_t *lfs)
{
	uint64_t acc = 0;
	uint64_t n = 0;
	unsigned odd = 0;

	if (!lfs && !memchr(p, '"', (size_t)(end - p)))
		return false;
#ifdef __SSE2__
	p = share_count16(p, end, &odd, &n);
#endif
	for (; end - p >= 8; p += 8) {
		uint64_t x = load8(p);

		acc ^= zero_bytes(x ^ 0x2222222222222222ULL);
		if (lfs)
			n += count_high(
				zero_bytes(x ^ 0x0a0a0a0a0a0a0a0aULL));
	}
	for (; p < end; p++) {
		odd ^= *p == '"';
		n += *p == '\n';
	}
	if (lfs)
		*lfs = n;
	return (count_high(acc) + odd) & 1;
}

static bool quotes_odd(const char *p, const char *end)
{
	return share_count(p, end, NULL);
}

/* LF bytes in [p, end). */
static uint64_t count_lfs(const char *p, const char *end)
{
	uint64_t n;

	share_count(p, end, &n);
	return n;
}

/* Past the first LF outside quotes at or after p (inq: p is inside). */
static const char *record_after(const char *p, const char *end, bool inq)
{
	for (; p < end; p++) {
		if (*p == '"')
			inq = !inq;
		else if (*p == '\n' && !inq)
			return p + 1;
	}
	return end;
}

/* Where share i of the bytes begins (share nparts: the end). */
static const char *share_at(const struct split *sp, size_t i)
{
	size_t len = (size_t)(sp->end - sp->from);

	return i >= sp->nparts ? sp->end : sp->from + len / sp->nparts * i;
}

/*
 * The matrix of a split scan, once every share's line ends are counted:
 * a record ends at an LF, but the last, so the rows before a part are at
 * most the LFs before it and the matrix holds them all in LFs + 1 rows.
 * A block far bigger than the input (blank lines, say) is not made:
 * the scan goes serial.  Under sp->mu.
 */
static void mat_make(struct split *sp)
{
	size_t row = sp->ncols * sizeof(float);
	size_t len = (size_t)(sp->end - sp->from);
	uint64_t rows = 1;
	size_t i;

	for (i = 0; i < sp->nparts; i++)
		rows += sp->lfs[i];
	sp->mrows = rows;
	if (rows <= (len * 4 + ((size_t)64 << 20)) / row) {
		sp->mdata = malloc((size_t)rows * row);
#ifdef MADV_HUGEPAGE
		if (sp->mdata && rows * row >= MAT_HUGE_MIN)
			mem_advise(sp->mdata, (size_t)rows * row,
				   MADV_HUGEPAGE);
#endif
	}
	sp->mready = true;
	pthread_cond_broadcast(&sp->cv);
}

static void *part_run(void *arg)
{
	struct part *pt = arg;
	struct split *sp = pt->sp;
	const char *share = share_at(sp, pt->i);
	const char *next = share_at(sp, pt->i + 1);
	uint64_t lfs;
	bool odd = share_count(share, next, sp->mat ? &lfs : NULL);
	bool before = false;
	uint64_t lf_before = 0;
	const char *from;
	const char *to;
	uint64_t row_end;
	size_t j;

	pthread_mutex_lock(&sp->mu);
	sp->odd[pt->i] = odd;
	sp->lfs[pt->i] = sp->mat ? lfs : 0;
	sp->counted[pt->i] = true;
	pthread_cond_broadcast(&sp->cv);
	/* the matrix needs every share's count; the cut only those before */
	for (j = 0; j < (sp->mat ? sp->nparts : pt->i); j++) {
		while (!sp->counted[j])
			pthread_cond_wait(&sp->cv, &sp->mu);
		if (j < pt->i) {
			before ^= sp->odd[j];
			lf_before += sp->lfs[j];
		}
	}
	if (sp->mat && pt->i == 0)
		mat_make(sp);
	while (sp->mat && !sp->mready)
		pthread_cond_wait(&sp->cv, &sp->mu);
	pthread_mutex_unlock(&sp->mu);
	from = pt->i ? record_after(share, sp->end, before) : sp->from;
	to = pt->i + 1 < sp->nparts
		     ? record_after(next, sp->end, before ^ odd)
		     : sp->end;
	if (sp->mat) {
		if (!sp->mdata) {
			pt->rc = -ENOMEM;
			return NULL;
		}
		pt->row0 = pt->i ? lf_before + count_lfs(share, from) : 0;
		row_end = pt->i + 1 < sp->nparts
				  ? lf_before + lfs + count_lfs(next, to)
				  : sp->mrows;
		pt->mb.data = sp->mdata + pt->row0 * sp->ncols;
		pt->mb.cap = row_end - pt->row0;
		pt->mb.shared = true;
	}
	pt->sc.tok.p = from;
	pt->sc.tok.line_start = from;
	pt->sc.tok.end = to;
	pt->rc = scan_rows(&pt->sc, pt->cs, sp->ncols,
			   pt->mat ? &pt->mb : NULL, &pt->nrows);
	return NULL;
}

/* Part b's rows after part a's: statistics, distinct values, matrix. */
static int part_merge(struct part *a, struct part *b, size_t ncols)
{
	size_t row = ncols * sizeof(float);
	size_t c;
	int rc;

	for (c = 0; c < ncols; c++) {
		col_merge_stats(&a->cs[c], &b->cs[c]);
		rc = b->cs[c].keys ? csv_keys_flush(&b->sc, &b->cs[c]) : 0;
		if (rc == 0)
			rc = csv_col_merge(&a->sc, &a->cs[c], &b->cs[c]);
		if (rc < 0)
			return rc;
		a->sc.budget += col_bytes(&b->cs[c]);
	}
	a->sc.budget += b->sc.budget;
	b->sc.budget = 0;
	/* rows of b where a's end: moved only past quoted LFs, blank lines */
	if (a->mat && b->nrows && b->row0 != a->nrows)
		memmove(a->mb.data + a->nrows * ncols, b->mb.data,
			(size_t)b->nrows * row);
	a->nrows += b->nrows;
	return 0;
}

/*
 * The first part's sort and unescape buffers are the caller's, and its
 * matrix is all parts' (the others' point into it).
 */
static void part_free(struct part *pt, size_t ncols)
{
	cols_free(pt->cs, ncols);
	if (!pt->i)
		free(pt->mb.data);
	if (pt->i) {
		free(pt->sc.sort_tmp);
		free(pt->sc.scratch);
	}
}

/*
 * A column the scan so far (prev) counts in tier 3 ends there whatever
 * a later part finds: that part starts it there too, and skips the
 * 65536 values it would otherwise sort through tier 2 first (a third of
 * a streamed 1 GiB file of random numbers, cut into 16 MiB parts, went
 * through tier 2; it was a quarter of the scan's time).  -ENOMEM.
 */
static int cols_estimated_like(struct colstate *cs,
			       const struct colstate *prev, size_t ncols)
{
	for (size_t c = 0; c < ncols; c++)
		if (prev[c].hll && !(cs[c].hll = calloc(HLL_REGS, 1)))
			return -ENOMEM;
	return 0;
}

/*
 * The records from sc->tok.p on, in nparts parts, each on a thread of its
 * own but the first, which is the caller's (and goes on into *cs, if it
 * is not NULL).  0, with *cs and mb holding every part's rows, merged;
 * -EAGAIN when a part failed, or a thread or memory was missing: nothing
 * is kept, *cs is freed and NULL, and the caller scans serially.
 */
static int scan_split(struct scan *sc, size_t ncols, struct matbuf *mb,
		      size_t nparts, struct colstate **cs, uint64_t *nrows)
{
	struct split sp = {
		sc->tok.p, sc->tok.end, nparts, ncols,
		PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
		{ false }, { false }, { 0 }, mb != NULL, NULL, 0, false,
	};
	struct part pts[SPLIT_MAX];
	pthread_t tid[SPLIT_MAX];
	bool started[SPLIT_MAX] = { false };
	size_t i;
	int rc = 0;

	memset(pts, 0, sizeof(pts));
	for (i = 0; i < nparts; i++) {
		struct part *pt = &pts[i];

		pt->sp = &sp;
		pt->i = i;
		pt->mat = mb != NULL;
		pt->sc = *sc;
		pt->sc.tok.pb = &pt->pb;
		pt->sc.budget = sc->budget / nparts;
		if (i) {
			pt->sc.sort_tmp = NULL;
			pt->sc.scratch = NULL;
			pt->sc.scratch_cap = 0;
		}
		pt->cs = i || !*cs ? cols_new(ncols) : *cs;
		if (!pt->cs)
			rc = -ENOMEM;
		else if (i && *cs && cols_estimated_like(pt->cs, *cs, ncols))
			rc = -ENOMEM;
	}
	for (i = 1; rc == 0 && i < nparts; i++)
		started[i] = !pthread_create(&tid[i], NULL, part_run, &pts[i]);
	/* the first part waits for every share's count: count those here */
	for (i = 1; rc == 0 && i < nparts; i++) {
		uint64_t lfs;
		bool odd;

		if (started[i])
			continue;
		odd = share_count(share_at(&sp, i), share_at(&sp, i + 1), &lfs);
		pthread_mutex_lock(&sp.mu);
		sp.odd[i] = odd;
		sp.lfs[i] = lfs;
		sp.counted[i] = true;
		pthread_mutex_unlock(&sp.mu);
	}
	/* A part whose thread did not start runs here, after the first. */
	for (i = 0; rc == 0 && i < nparts; i++)
		if (!started[i])
			part_run(&pts[i]);
	for (i = 1; i < nparts; i++)
		if (started[i])
			pthread_join(tid[i], NULL);
	for (i = 0; rc == 0 && i < nparts; i++)
		if (pts[i].rc < 0)
			rc = pts[i].rc;
	for (i = 1; rc == 0 && i < nparts; i++)
		rc = part_merge(&pts[0], &pts[i], ncols);
	if (rc == 0 && !pts[0].nrows)
		rc = -EAGAIN; /* blank lines only: the serial scan says so */
	for (i = rc == 0 ? 1 : 0; i < nparts; i++)
		part_free(&pts[i], ncols);
	pthread_mutex_destroy(&sp.mu);
	pthread_cond_destroy(&sp.cv);
	sc->sort_tmp = pts[0].sc.sort_tmp;
	sc->scratch = pts[0].sc.scratch;
	sc->scratch_cap = pts[0].sc.scratch_cap;
	if (rc < 0) {
		*cs = NULL;
		return -EAGAIN;
	}
	sc->budget = pts[0].sc.budget;
	*cs = pts[0].cs;
	if (mb) {
		*mb = pts[0].mb;
		mb->cap = sp.mrows;
		mb->ready = pts[0].nrows;
		mb->shared = false;
	}
	*nrows = pts[0].nrows;
	return 0;
}

/* Parts for len bytes of records, automatically. */
static size_t split_parts(size_t len)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t n = len / SPLIT_MIN;

	if (cpus > 0 && n > (size_t)cpus)
		n = (size_t)cpus;
	return n < SPLIT_MAX ? n : SPLIT_MAX;
}
/* The scan of data[0..len) set up, past a BOM (info->bom). */
static void scan_init(struct scan *sc, struct csv_info *info,
		      const char *data, size_t len,
		      const struct csv_limits *lim, struct problem *pb)
{
	memset(sc, 0, sizeof(*sc));
	sc->tok.p = data;
	sc->tok.end = data + len;
	sc->data_end = data + len;
	sc->tok.line_start = data;
	sc->tok.line = 1;
	sc->tok.max_field = lim && lim->max_field ? lim->max_field
						  : CSV_DEF_FIELD;
	sc->max_line = lim && lim->max_line ? lim->max_line : CSV_DEF_LINE;
	sc->max_cols = lim && lim->max_cols ? lim->max_cols : CSV_DEF_COLS;
	/* Set entries keep a 32-bit length. */
	if (sc->tok.max_field > UINT32_MAX)
		sc->tok.max_field = UINT32_MAX;
	sc->budget = CSV_SET_BUDGET;
	sc->batch_cols = CSV_BATCH_COLS;
	sc->tok.pb = pb;
	sc->tok.check_utf8 = true;
	if (len >= 3 && !memcmp(data, "\xef\xbb\xbf", 3)) {
		info->bom = true;
		sc->tok.p += 3;
		sc->tok.line_start = sc->tok.p;
	}
}

int csv_scan(const char *data, size_t len, const struct csv_limits *lim,
	     struct csv_info **out, struct csv_matrix *mat,
	     struct problem *pb)
{
	return csv_scan_split(data, len, lim, out, mat, pb, 0);
}

int csv_scan_split(const char *data, size_t len,
		   const struct csv_limits *lim, struct csv_info **out,
		   struct csv_matrix *mat, struct problem *pb, size_t parts)
{
	struct scan sc = { 0 };
	struct matbuf mb = { 0 };
	struct colstate *cs = NULL;
	struct csv_info *info;
	uint64_t nrows = 0;
	size_t ncols = 0;
	int rc;

	*out = NULL;
	if (mat)
		memset(mat, 0, sizeof(*mat));
	info = calloc(1, sizeof(*info));
	if (!info)
		return -ENOMEM;
	scan_init(&sc, info, data, len, lim, pb);
	if (skip_blank(sc.tok.p, sc.tok.end) == sc.tok.end) {
		rc = problem_set(pb, 1, 1, "empty file");
		goto out_free_info;
	}
	rc = parse_header(&sc, info);
	if (rc < 0)
		goto out_free_info;
	ncols = info->ncols;
	if (!parts)
		parts = split_parts((size_t)(sc.tok.end - sc.tok.p));
	parts = parts < SPLIT_MAX ? parts : SPLIT_MAX;
	rc = -EAGAIN;
	if (parts > 1)
		rc = scan_split(&sc, ncols, mat ? &mb : NULL, parts, &cs,
				&nrows);
	if (rc == -EAGAIN) {
		cs = cols_new(ncols);
		if (!cs) {
			rc = -ENOMEM;
			goto out_free_info;
		}
		rc = scan_rows(&sc, cs, ncols, mat ? &mb : NULL, &nrows);
	}
	if (rc < 0)
		goto out_free_cols;
	if (!nrows) {
		rc = csv_no_rows(&sc.tok);
		goto out_free_cols;
	}
	info->nrows = nrows;
	rc = finish(&sc, cs, info);
	if (rc < 0)
		goto out_free_cols;
	if (mat)
		mat_finish(&mb, info, mat);
	*out = info;
	info = NULL;
out_free_cols:
	cols_free(cs, ncols);
	free(mb.data);
	free(sc.sort_tmp);
	free(sc.scratch);
out_free_info:
	csv_info_free(info);
	return rc;
}

/*
 * The streaming scan (csv_scanner_*): the same scan, of an input that
 * grows at its end, as a file being copied in.  Each call takes the whole
 * records that have arrived, in a batch; blank lines at the end of what
 * has arrived wait for what follows them (they are records before more
 * data, and nothing at the input's end).  The end does what csv_scan()
 * would have done with what is left; whatever goes wrong on the way (an
 * error, a header not yet whole) is left to one csv_scan() of everything
 * at the end, which names the first problem exactly.
 */
struct csv_scanner {
	struct csv_limits lim;
	struct scan sc;
	struct csv_info *info;  /* the header's columns, once it is whole */
	struct colstate *cs;    /* ncols of them */
	size_t ncols;
	struct problem pb;      /* of a failed batch; csv_scan() says it */
	size_t done;            /* bytes before the next record */
	uint64_t nrows;
	bool failed;
};

int csv_scanner_new(const struct csv_limits *lim, struct csv_scanner **out)
{
	struct csv_scanner *s = calloc(1, sizeof(*s));

	*out = s;
	if (!s)
		return -ENOMEM;
	if (lim)
		s->lim = *lim;
	return 0;
}

/*
 * The end of the last whole record in [p, end), p a record start: past
 * an LF outside quotes (even quotes before it), and before any blank
 * lines that come after that record.  p if there is none.
 */
static const char *last_record_end(const char *p, const char *end)
{
	const char *lf = memrchr(p, '\n', (size_t)(end - p));
	const char *q;
	bool odd;

	if (!lf)
		return p;
	odd = quotes_odd(p, lf);
	while (odd) {
		const char *prev = memrchr(p, '\n', (size_t)(lf - p));

		if (!prev)
			return p;
		odd ^= quotes_odd(prev, lf);
		lf = prev;
	}
	for (q = lf; q > p && (q[-1] == '\n' || q[-1] == '\r'); q--)
		;
	if (q == p)
		return p;
	/* Only CRs and LFs from q to lf, no quotes: the first LF ends it. */
	return (const char *)memchr(q, '\n', (size_t)(lf - q) + 1) + 1;
}

/* The header, once the first record is whole.  0: not yet, or read. */
static int scanner_header(struct csv_scanner *s, const char *data,
			  size_t len)
{
	const char *from = data;
	const char *e;
	bool odd;
	int rc;

	if (len >= 3 && !memcmp(data, "\xef\xbb\xbf", 3))
		from += 3;
	e = from < data + len ? memchr(from, '\n', len - (size_t)(from - data))
			      : NULL;
	odd = e && quotes_odd(from, e);
	while (e && odd) {
		const char *next = memchr(e + 1, '\n',
					  len - (size_t)(e + 1 - data));

		odd ^= next && quotes_odd(e, next);
		e = next;
	}
	if (!e || skip_blank(from, e + 1) == e + 1)
		return e ? -EINVAL : 0; /* a blank first line: at the end */
	s->info = calloc(1, sizeof(*s->info));
	if (!s->info)
		return -ENOMEM;
	scan_init(&s->sc, s->info, data, (size_t)(e + 1 - data), &s->lim,
		  &s->pb);
	rc = parse_header(&s->sc, s->info);
	if (rc < 0)
		return rc;
	s->cs = cols_new(s->info->ncols);
	if (!s->cs)
		return -ENOMEM;
	s->ncols = s->info->ncols;
	s->done = (size_t)(e + 1 - data);
	return 0;
}

/*
 * The records that arrived since the last call.  A scan that fell behind
 * the writer (SPLIT_MIN bytes a part or more waiting) goes on in parts on
 * threads, as the end does: on 2 cores a `cp` of 1 GiB arrives faster
 * than one thread scans numbers.  A part that fails loses the columns:
 * the end then scans everything again, and reports the error as ever.
 */
void csv_scanner_more(struct csv_scanner *s, const char *data, size_t len)
{
	const char *e;
	uint64_t n = 0;
	size_t parts;
	int rc = 0;

	if (s->failed || len <= s->done)
		return;
	if (!s->info)
		rc = scanner_header(s, data, len);
	if (rc == 0 && s->info) {
		e = last_record_end(data + s->done, data + len);
		if (e == data + s->done)
			return;
		s->sc.tok.p = data + s->done;
		s->sc.tok.end = e;
		s->sc.data_end = e;
		parts = split_parts((size_t)(e - (data + s->done)));
		rc = -EAGAIN;
		if (parts > 1)
			rc = scan_split(&s->sc, s->info->ncols, NULL, parts,
					&s->cs, &n);
		if (rc == -EAGAIN && s->cs)
			rc = scan_rows(&s->sc, s->cs, s->info->ncols, NULL,
				       &n);
		s->nrows += n;
		s->done = (size_t)(e - data);
	}
	if (rc < 0)
		s->failed = true;
}

static void scanner_free(struct csv_scanner *s)
{
	cols_free(s->cs, s->ncols);
	csv_info_free(s->info);
	free(s->sc.sort_tmp);
	free(s->sc.scratch);
	free(s);
}

int csv_scanner_end(struct csv_scanner *s, const char *data, size_t len,
		    struct csv_info **out, struct problem *pb)
{
	struct csv_limits lim = s->lim;
	struct csv_info *info;
	size_t ncols;
	size_t parts;
	uint64_t n = 0;
	int rc = -EAGAIN;

	*out = NULL;
	if (!s->failed && s->info && len >= s->done) {
		ncols = s->info->ncols;
		s->sc.tok.p = data + s->done;
		s->sc.tok.end = data + len;
		s->sc.data_end = data + len;
		parts = split_parts(len - s->done);
		if (parts > 1)
			rc = scan_split(&s->sc, ncols, NULL, parts, &s->cs, &n);
		/* a failed split freed the columns: one csv_scan() below */
		if (rc == -EAGAIN && s->cs)
			rc = scan_rows(&s->sc, s->cs, ncols, NULL, &n);
		s->nrows += n;
		if (rc == 0 && s->nrows) {
			info = s->info;
			info->nrows = s->nrows;
			rc = finish(&s->sc, s->cs, info);
			if (rc == 0) {
				s->info = NULL;
				*out = info;
				scanner_free(s);
				return 0;
			}
		}
	}
	scanner_free(s);
	return csv_scan(data, len, &lim, out, NULL, pb);
}

void csv_scanner_free(struct csv_scanner *s)
{
	if (s)
		scanner_free(s);
}

void csv_info_free(struct csv_info *info)
{
	size_t i;
	size_t j;

	if (!info)
		return;
	for (i = 0; i < info->ncols; i++) {
		struct csv_column *c = &info->cols[i];

		free(c->name);
		for (j = 0; j < c->nclasses; j++)
			free(c->classes[j].value);
		free(c->classes);
	}
	free(info->cols);
	free(info);
}

static const char *const type_names[] = {
	[CSV_NUMERIC] = "numeric",
	[CSV_CATEGORICAL] = "categorical",
	[CSV_TEXT] = "text",
	[CSV_TIME] = "time",
};

static const char *const role_names[] = {
	[CSV_ROLE_FEATURE] = "feature",
	[CSV_ROLE_LABEL] = "label",
	[CSV_ROLE_ID] = "id",
	[CSV_ROLE_PII] = "pii",
	[CSV_ROLE_TIME] = "time",
};

#define NNAMES(a) (sizeof(a) / sizeof((a)[0]))

const char *csv_type_name(enum csv_type t)
{
	if ((unsigned)t >= NNAMES(type_names))
		return "?";
	return type_names[t];
}

int csv_type_parse(const char *s, enum csv_type *out)
{
	size_t i;

	for (i = 0; i < NNAMES(type_names); i++) {
		if (!strcmp(s, type_names[i])) {
			*out = (enum csv_type)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *csv_role_name(enum csv_role r)
{
	if ((unsigned)r >= NNAMES(role_names))
		return "?";
	return role_names[r];
}

int csv_role_parse(const char *s, enum csv_role *out)
{
	size_t i;

	for (i = 0; i < NNAMES(role_names); i++) {
		if (!strcmp(s, role_names[i])) {
			*out = (enum csv_role)i;
			return 0;
		}
	}
	return -EINVAL;
}
