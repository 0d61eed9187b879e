/* SPDX-License-Identifier: MIT */
/*
 * Inside the CSV reader (fs/base/csv*.c, never installed, never included
 * from outside them): what more than one of its files needs.  csv.c is
 * the scan (header, records, matrix, per-column results), csv_value.c
 * reads one value (numbers, missing tokens, dates and times), csv_tok.c
 * is the field tokenizer, csv_distinct.c counts distinct values.  The
 * interface is csv.h.
 *
 * The helpers here are static inline because the record loop calls them
 * per field (num_parse(), hll_add()) or per value: a call into another
 * file there would cost what the loop was built to save.
 */
#ifndef MLFS_FS_CSV_INT_H
#define MLFS_FS_CSV_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "csv.h"
#include "pow10.h"
#include "problem.h"

/* Categorical columns have at most this many distinct values. */
#define CSV_CAT_MAX 1000
/* Bytes of the longest missing token ("null", "none"): csv_value.c. */
#define CSV_MISSING_MAX 4
/* HyperLogLog: 2^11 one-byte registers per column, about 2.3% error. */
#define HLL_BITS 11
#define HLL_REGS ((size_t)1 << HLL_BITS)

/*
 * For the functions the record loop calls per field: GCC otherwise
 * keeps them out of line in that large function, which cost about 10%.
 */
#define CSV_HOT __attribute__((always_inline))


/* Every power of ten that a double holds exactly. */
static const double pow10_exact[] = {
	1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
	1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
	1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* One csv_scan()'s state (KEYS_BATCH, hash_sort(): csv_distinct.c). */
struct scan {
	struct csv_tok tok;     /* the position, max_field and pb */
	const char *data_end;   /* the input's end (tok.end: a part's) */
	size_t max_line;        /* bytes */
	size_t max_cols;
	size_t budget;          /* bytes of sets still allowed */
	size_t batch_cols;      /* columns that may still batch (csv.c) */
	uint64_t *sort_tmp;     /* KEYS_BATCH entries for hash_sort() */
	char *scratch;          /* unescaped field, for hashing */
	size_t scratch_cap;     /* bytes */
};

/* Flags of a set entry. */
#define ENT_NUM 1u /* a number: the hash is its (bijective) key */
#define ENT_ESC 2u /* the spelling holds doubled quotes */

struct cset_ent {
	uint64_t hash;
	uint64_t count;   /* 0: free slot */
	const char *p;    /* first spelling, raw and trimmed, in the input */
	uint32_t len;     /* bytes; max_field is capped to fit */
	uint32_t flags;   /* ENT_* */
};

struct cset {
	struct cset_ent *slots;
	size_t mask;      /* slots - 1; 0 with no slots */
	size_t size;      /* entries in use */
};

/*
 * Running state of one column during the scan.  Distinct values go
 * through three tiers, each used only while the one before is too small:
 * set (values, counts and spellings, for classes) up to CSV_CAT_MAX
 * values, then keys (64-bit hashes only) up to CSV_DISTINCT_EXACT, then
 * hll.  Tier 2 starts as a small hash table of hashes, where a value seen
 * before costs one probe; past KEYS_TABLE_MAX slots it appends hashes,
 * and sorts and merges them KEYS_BATCH at a time: a hash table of 65536
 * values per column is bigger than the cache, a wide file touches every
 * column's table on every row, and waiting for memory on each insert cost
 * more than all the parsing.  (Prefetching batches of inserts was still
 * slower, mostly in first touches of the bigger table.)
 */
struct colstate {
	uint64_t n;        /* non-missing values */
	uint64_t nnum;     /* of those, numbers */
	uint64_t missing;
	double mean;       /* over the numbers in flushed blocks */
	double m2;         /* sum of squared deviations, same */
	double bk;         /* current block: its first value */
	double bs1;        /* sum of (v - bk) */
	double bs2;        /* sum of (v - bk)^2 */
	uint32_t bn;       /* values in the current block */
	bool int_ok;       /* every number so far is an integer */
	bool time_ok;      /* every non-number so far is a date or time */
	double min;
	double max;
	struct cset set;   /* tier 1 */
	uint64_t *keys;    /* tier 2: a table of hashes (kmask), or sorted
			      distinct hashes, then a batch */
	size_t nkeys;      /* distinct hashes (the table's, with 0 if kzero) */
	size_t nbatch;     /* unsorted hashes after the sorted ones */
	size_t kcap;       /* entries allocated (the table's slots) */
	size_t kmask;      /* kcap - 1 while keys is a table, else 0 */
	bool kzero;        /* the table holds hash 0 (number 0), not in a slot */
	bool pending;      /* pend is a value's hash not yet in the table */
	uint64_t pend;     /* its slot is being fetched (keys_defer()) */
	uint8_t *hll;      /* tier 3: HyperLogLog registers */
	uint64_t exact;    /* distinct values known when hll began */
	/* past tier 1: numbers not yet counted, CSV_VALS of room (csv.c's
	 * col_drain(), col_batch()) */
	double *vals;
	uint32_t nvals;
	bool batch_tried;  /* vals was asked for once */
};

static inline unsigned pos_u(uint64_t v)
{
	return v > UINT32_MAX ? UINT32_MAX : (unsigned)v;
}

static inline bool is_digit(char c)
{
	return (unsigned char)(c - '0') < 10;
}

static inline bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Drop the spaces and tabs around the field *p of *n bytes. */
static inline void trim(const char **p, size_t *n)
{
	const char *a = *p;
	const char *b = a + *n;

	while (a < b && is_blank(*a))
		a++;
	while (b > a && is_blank(b[-1]))
		b--;
	*p = a;
	*n = (size_t)(b - a);
}

/* 1-based column of p, on t's current line. */
static inline uint64_t tok_col(const struct csv_tok *t, const char *p)
{
	return (uint64_t)(p - t->line_start) + 1;
}

/*
 * csv_too_big (csv_tok.c): fill pb with "<what> longer than <lim> bytes"
 * at line:col and return -EFBIG.
 */
int csv_too_big(struct problem *pb, uint64_t line, uint64_t col,
		const char *what, size_t lim);

/*
 * csv_num_slow (csv_value.c): the value of the number syntax in
 * [p, end), which num_parse() has already checked; NAN if it overflows a
 * double.  Exact for any length of input; see there.
 */
double csv_num_slow(const char *p, const char *end);
/*
 * csv_num_ld: m x 10^e10 (m up to 19 digits, |e10| <= 27), correctly
 * rounded, when a 64-bit long double mantissa decides it; false when it
 * cannot (other exponents, no such long double, exactly halfway between
 * two doubles): csv_num_slow() then.  See csv_value.c.
 */
bool csv_num_ld(uint64_t m, int64_t e10, bool neg, double *out);

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define CSV_SWAR 1
#else
#define CSV_SWAR 0
#endif

/*
 * Eight digits at a time (SWAR): a field's digit runs are short, and a
 * byte loop pays a mispredicted exit per run.  Bytes are in memory order,
 * the first in the low byte, so this needs a little-endian host.
 */
static inline uint64_t load8(const char *p)
{
	uint64_t x;

	memcpy(&x, p, sizeof(x));
	return x;
}

/*
 * How many of the 8 bytes in x, from the first, are ASCII digits.  Borrows
 * and carries only run towards later bytes, so they can only disturb bytes
 * after the first non-digit, which do not count.
 */
static inline unsigned swar_ndigits(uint64_t x)
{
	uint64_t a = x - 0x3030303030303030ULL;
	uint64_t t = ((a + 0x7676767676767676ULL) | a) & 0x8080808080808080ULL;

	return t ? (unsigned)__builtin_ctzll(t) >> 3 : 8;
}

/* Value of the first n (1..8) digits of x. */
static inline uint64_t swar_value(uint64_t x, unsigned n)
{
	uint64_t a = (x - 0x3030303030303030ULL) << (8 * (8 - n));

	a = a * 10 + (a >> 8);
	return ((a & 0x000000ff000000ffULL) * 0x000f424000000064ULL +
		((a >> 16) & 0x000000ff000000ffULL) * 0x0000271000000001ULL) >>
	       32;
}

/* A run of digits at *pp: its value (mod 2^64); *pp moves past it. */
static inline uint64_t digit_run(const char **pp, const char *end)
{
	const char *p = *pp;
	uint64_t v = 0;

	if (CSV_SWAR && end - p >= 8) {
		uint64_t x = load8(p);
		unsigned k = swar_ndigits(x);

		if (k < 8) {
			*pp = p + k;
			return k ? swar_value(x, k) : 0;
		}
		v = swar_value(x, 8);
		p += 8;
	}
	for (; p < end && is_digit(*p); p++)
		v = v * 10 + (uint64_t)(*p - '0');
	*pp = p;
	return v;
}

/* The pieces of a number's syntax that num_scan() read. */
struct num_parts {
	uint64_t m;      /* integer digits' value, mod 2^64 */
	uint64_t frac;   /* fraction digits' value, mod 2^64 */
	size_t nint;     /* integer digits */
	size_t nfrac;    /* fraction digits */
	int64_t e10;     /* the exponent as written, clamped */
	bool neg;
};

/*
 * num_scan: the syntax half of num_parse(): read the longest number at
 * [s, end) into *np and return its end, or s if there is none.  Apart so
 * that a caller can check what follows the number before paying for its
 * value: a hex digest such as "12e45a..." starts with number syntax whose
 * exponent sends num_value() to csv_num_slow() (snprintf() and strtod(),
 * 7% of a scan of digests), for a field that is text anyway.
 */
static inline CSV_HOT const char *num_scan(const char *s, const char *end,
					   struct num_parts *np)
{
	const char *p = s;
	const char *d;

	np->neg = false;
	np->frac = 0;
	np->nfrac = 0;
	np->e10 = 0;
	if (p < end && (*p == '-' || *p == '+')) {
		np->neg = *p == '-';
		p++;
	}
	d = p;
	np->m = digit_run(&p, end);
	np->nint = (size_t)(p - d);
	if (p < end && *p == '.') {
		d = ++p;
		np->frac = digit_run(&p, end);
		np->nfrac = (size_t)(p - d);
	}
	if (!np->nint && !np->nfrac)
		return s;
	if (p < end && (*p | 0x20) == 'e') {
		const char *q = p + 1;
		bool eneg = false;
		int64_t x = 0;

		if (q < end && (*q == '-' || *q == '+')) {
			eneg = *q == '-';
			q++;
		}
		if (q < end && is_digit(*q)) {
			for (; q < end && is_digit(*q); q++)
				if (x < 1000000000)
					x = x * 10 + (*q - '0');
			np->e10 = eneg ? -x : x;
			p = q;
		}
	}
	return p;
}

/*
 * num_value: the value of the number num_scan() read at [s, p) into *np,
 * or NAN if it overflows.  Why it is not strtod(), and how it stays
 * exact: csv_value.c.
 */
static inline CSV_HOT double num_value(const char *s, const char *p,
				       const struct num_parts *np)
{
	uint64_t m;
	int64_t e10;
	double v;

	/* 19 digits, leading zeros included, always fit in m. */
	if (np->nint + np->nfrac > 19)
		return csv_num_slow(s, p);
	m = np->m * pow10_u64[np->nfrac] + np->frac;
	e10 = np->e10 - (int64_t)np->nfrac;
	if (m <= (uint64_t)1 << 53 && e10 >= -22 && e10 <= 22) {
		v = (double)m;
		if (e10 < 0)
			v /= pow10_exact[-e10];
		else
			v *= pow10_exact[e10];
	} else if (!m) {
		v = 0;
	} else if (!csv_num_ld(m, e10, false, &v)) {
		return csv_num_slow(s, p);
	}
	return np->neg ? -v : v;
}

/*
 * num_parse: read the longest number at [s, end): optional sign, digits
 * with an optional '.', at least one digit, then an optional exponent
 * ('e' or 'E', optional sign, digits).  Returns the end of that syntax,
 * or s if there is none.  *out is the value, or NAN if it overflows
 * (left alone when there is no number).
 */
static inline CSV_HOT const char *num_parse(const char *s, const char *end,
					    double *out)
{
	struct num_parts np;
	const char *p = num_scan(s, end, &np);

	if (p != s)
		*out = num_value(s, p, &np);
	return p;
}

/* fmix64 from MurmurHash3: a bijection, so equal hashes mean equal keys. */
static inline uint64_t num_hash(double v)
{
	uint64_t x;

	v = v + 0.0; /* -0.0 becomes 0.0: one value */
	memcpy(&x, &v, sizeof(x));
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static inline void hll_add(uint8_t *reg, uint64_t h)
{
	size_t i = (size_t)(h >> (64 - HLL_BITS));
	uint64_t w = (h << HLL_BITS) | ((uint64_t)1 << (HLL_BITS - 1));
	uint8_t rank = (uint8_t)(__builtin_clzll(w) + 1);

	if (rank > reg[i])
		reg[i] = rank;
}

/*
 * cset_count_num: if the number of hash h is in set, count it once more
 * and return true; false if it is not there (or set has no slots), for
 * csv_col_distinct() to add it.  The hit is what a tier 1 column of
 * numbers does on almost every value, and the calls down to
 * csv_cset_add() cost a fifth of a scan of small integers.  An entry
 * equals a number when its hash does and it is one (ent_equal() in
 * csv_distinct.c).
 */
static inline CSV_HOT bool cset_count_num(struct cset *set, uint64_t h)
{
	size_t i;

	if (!set->slots)
		return false;
	for (i = h & set->mask; set->slots[i].count; i = (i + 1) & set->mask) {
		struct cset_ent *e = &set->slots[i];

		if (e->hash == h && (e->flags & ENT_NUM)) {
			e->count++;
			return true;
		}
	}
	return false;
}

/* Tier 2's table is probed a cache line of slots at a time. */
#define KEYS_LINE ((size_t)8)

/*
 * csv_keys_put (csv_distinct.c): the slow part of keys_defer(): h, of a
 * column whose tier 2 is a table, is not in its line (new, or pushed on
 * to the next).  0 or -ENOMEM.
 */
int csv_keys_put(struct scan *sc, struct colstate *s, uint64_t h);

/*
 * keys_defer: count the value of hash h of a column whose tier 2 is a
 * table (s->kmask).  The probe of a table bigger than the core's cache
 * waits for memory, so h's slot is only prefetched now, and h is looked
 * up at the column's next value (a row later), or by csv_keys_flush():
 * the scan goes on parsing the other columns of the row meanwhile.
 * A wide file touches every column's table each row: 7 tables of 256 KiB
 * (14,000 values each) miss a core's 1 MiB L2.  One thread's scan of
 * them (csv_bench stats1) took 2.95 s probing slot by slot at once, 2.45
 * s a row late without the prefetch, 2.2 s with it; by lines, 2.13 s
 * without the prefetch and 1.97 s with it.
 */
static inline CSV_HOT int keys_defer(struct scan *sc, struct colstate *s,
				     uint64_t h)
{
	uint64_t prev = s->pend;
	bool had = s->pending;
	const uint64_t *line;

	__builtin_prefetch(&s->keys[h & s->kmask & ~(KEYS_LINE - 1)]);
	s->pend = h;
	s->pending = true;
	if (!had)
		return 0;
	if (!prev) { /* the number 0: a flag, not a slot */
		s->nkeys += !s->kzero;
		s->kzero = true;
		return 0;
	}
	line = &s->keys[prev & s->kmask & ~(KEYS_LINE - 1)];
	if ((line[0] == prev) | (line[1] == prev) | (line[2] == prev) |
	    (line[3] == prev) | (line[4] == prev) | (line[5] == prev) |
	    (line[6] == prev) | (line[7] == prev))
		return 0; /* the usual case: seen, in its line */
	return csv_keys_put(sc, s, prev);
}

/*
 * csv_raw_cmp (csv_distinct.c): the order of two raw contents (esc: the
 * content holds "" pairs) as unescaped bytes, like memcmp().
 */
int csv_raw_cmp(const char *a, size_t an, bool aesc, const char *b,
		size_t bn, bool besc);

/*
 * csv_cset_add (csv_distinct.c): count a value of hash h and ENT_*
 * flags, spelled p/n in the input (kept by pointer, not copied), seen
 * times more.  Returns
 * 1 if it was new, 0 if seen before, -ENOMEM, or -ENOSPC if the set
 * would have to grow past *budget bytes (budget NULL: no limit) or hold
 * more than cap values.  Free set->slots when done.
 */
int csv_cset_add(struct cset *set, uint64_t h, uint32_t flags, const char *p,
		 size_t n, uint64_t times, size_t *budget, size_t cap);

/*
 * csv_col_distinct (csv_distinct.c): count one non-missing value of
 * column s (hash h, ENT_* flags, spelling p/n) in whichever tier the
 * column is in, moving it to the next tier when this one is full.  0 or
 * -ENOMEM.
 */
int csv_col_distinct(struct scan *sc, struct colstate *s, uint64_t h,
		     uint32_t flags, const char *p, size_t n);

/*
 * csv_keys_flush (csv_distinct.c): merge the batch of tier 2 hashes of s
 * into its sorted ones, as at the end of the scan (which may move s on to
 * tier 3).  0 or -ENOMEM.
 */
int csv_keys_flush(struct scan *sc, struct colstate *s);

/*
 * csv_col_merge (csv_distinct.c): add the distinct values of b, a column
 * of the records after a's, to a (b is left as it was: the caller frees
 * it).  The set budget is sa's.  0 or -ENOMEM.
 */
int csv_col_merge(struct scan *sa, struct colstate *a,
		  const struct colstate *b);

/* csv_hll_estimate (csv_distinct.c): the distinct values in a sketch. */
uint64_t csv_hll_estimate(const uint8_t *reg);

#endif
