/* SPDX-License-Identifier: MIT */
/*
 * CSV reader: one pass over a file held in memory (usually mmap()ed) that
 * validates it as RFC 4180, infers each column's type, computes its
 * statistics and, on request, converts it to a row-major float matrix.
 * Datasets are scanned once when they are added, so this pass sets how
 * long `cp big.csv datasets/` takes: the loop is built for numeric files.
 *
 * The record loop first tries every field as a number ending at a
 * delimiter (num_parse(), which reads each byte once) and only falls back
 * to the general field parser when that fails: csv_field_next() (quotes,
 * UTF-8, NUL), the one field tokenizer of mlfs, which the training table
 * (ml/table.c) and predict's rows (ml/predict.c) use too, then the
 * missing tokens and text.  Distinct values go through three tiers per column
 * (struct colstate): a small set with counts, for classes; sorted batches
 * of 64-bit hashes up to CSV_DISTINCT_EXACT; then a HyperLogLog sketch.
 * The sets refer to values in the input instead of copying them, and all
 * of them together stay under CSV_SET_BUDGET bytes, so memory is bounded
 * whatever the input.
 *
 * No global state and no threads of its own: any thread may call any
 * function here, on inputs it does not modify meanwhile.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "csv.h"

#define CSV_DEF_FIELD ((size_t)1 << 20)
#define CSV_DEF_LINE ((size_t)16 << 20)
#define CSV_DEF_COLS ((size_t)65536)

/* Categorical columns have at most this many distinct values. */
#define CSV_CAT_MAX 1000
/* Bytes of exact distinct sets, all columns together. */
#define CSV_SET_BUDGET ((size_t)64 << 20)
/* Hashes appended to tier 2 between two sorts. */
#define KEYS_BATCH ((size_t)8192)
/* hash_sort(): buckets by the top bits, and the biggest insertion sort. */
#define SORT_BITS 11
#define SORT_SMALL 32
/* Matrix: rows before the first estimate of the total. */
#define MAT_FIRST_ROWS 4096
/* Matrix: bytes prefaulted at a time; blocks that get huge pages. */
#define MAT_PREFAULT ((size_t)8 << 20)
#define MAT_HUGE_MIN ((size_t)4 << 20)
/* Values per block of the running variance (see col_flush()). */
#define CSV_BLOCK 1024
/* HyperLogLog: 2^11 one-byte registers per column, about 2.3% error. */
#define HLL_BITS 11
#define HLL_REGS ((size_t)1 << HLL_BITS)

/* Significant digits csv_num_slow() keeps; see there. */
#define NUM_SLOW_DIGITS 780

/*
 * For the two functions the record loop calls per field: GCC otherwise
 * keeps them out of line in that large function, which cost about 10%.
 */
#define CSV_HOT __attribute__((always_inline))

/* Byte classes for the field scanners; 0 is an ordinary byte. */
enum { CH_OK, CH_COMMA, CH_LF, CH_CR, CH_QUOTE, CH_NUL, CH_HIGH };

#define X8(v) v, v, v, v, v, v, v, v
#define X64(v) X8(v), X8(v), X8(v), X8(v), X8(v), X8(v), X8(v), X8(v)

const unsigned char csv_plain_stop[256] = {
	[0] = CH_NUL,
	['\n'] = CH_LF,
	['\r'] = CH_CR,
	['"'] = CH_QUOTE,
	[','] = CH_COMMA,
	[0x80] = X64(CH_HIGH),
	X64(CH_HIGH),
};

/* Inside quotes, commas and CRs are data; LFs only move the line count. */
static const unsigned char quoted_class[256] = {
	[0] = CH_NUL,
	['\n'] = CH_LF,
	['"'] = CH_QUOTE,
	[0x80] = X64(CH_HIGH),
	X64(CH_HIGH),
};

static const uint64_t pow10_u64[20] = {
	1ULL,
	10ULL,
	100ULL,
	1000ULL,
	10000ULL,
	100000ULL,
	1000000ULL,
	10000000ULL,
	100000000ULL,
	1000000000ULL,
	10000000000ULL,
	100000000000ULL,
	1000000000000ULL,
	10000000000000ULL,
	100000000000000ULL,
	1000000000000000ULL,
	10000000000000000ULL,
	100000000000000000ULL,
	1000000000000000000ULL,
	10000000000000000000ULL,
};

/* Every power of ten that a double holds exactly. */
static const double pow10_exact[] = {
	1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
	1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
	1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

struct scan {
	struct csv_tok tok;     /* the position, max_field and pb */
	size_t max_line;        /* bytes */
	size_t max_cols;
	size_t budget;          /* bytes of sets still allowed */
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
 * hll.  Tier 2 appends hashes, and sorts and merges them KEYS_BATCH at a
 * time: a hash table of 65536 values per column is bigger than the cache,
 * a wide file touches every column's table on every row, and waiting for
 * memory on each insert cost more than all the parsing.  (Prefetching
 * batches of inserts was still slower, mostly in first touches of the
 * bigger table.)
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
	uint64_t *keys;    /* tier 2: sorted distinct hashes, then a batch */
	size_t nkeys;      /* distinct, sorted hashes first in keys */
	size_t nbatch;     /* unsorted hashes after them */
	size_t kcap;       /* entries allocated */
	uint8_t *hll;      /* tier 3: HyperLogLog registers */
	uint64_t exact;    /* distinct values known when hll began */
};

struct matbuf {
	float *data;
	uint64_t cap;      /* rows */
	uint64_t ready;    /* rows that mat_reserve() made room for */
};

static unsigned pos_u(uint64_t v)
{
	return v > UINT32_MAX ? UINT32_MAX : (unsigned)v;
}

static int too_big(struct problem *pb, uint64_t line, uint64_t col,
		   const char *what, size_t lim)
{
	problem_set(pb, pos_u(line), pos_u(col), "%s longer than %zu bytes",
		    what, lim);
	return -EFBIG;
}

static bool is_digit(char c)
{
	return (unsigned char)(c - '0') < 10;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * Numbers.  strtod() is correct but slow for this loop: it needs a NUL
 * after the field (a copy, since the input is a read-only map), it reads
 * the locale, and it handles hex, inf and nan that we reject anyway.
 * Measured with tests/bench/csv (20 columns like "-1234.567890"), a
 * tokenizer calling strtod() on a NUL-terminated copy of each field ran
 * at 110-150 MB/s, the same tokenizer calling csv_parse_double() at
 * 315-450 MB/s (the ranges are machine load), and csv_scan() itself, which
 * reads each byte once, does more work than either and is faster still.
 *
 * So the mantissa is read into a uint64_t with a decimal exponent, and
 * when both are small, Clinger's fast path gives the correctly rounded
 * result with one IEEE multiply or divide: m <= 2^53 and 10^|e| <= 10^22
 * are both exact doubles, and one operation rounds once.  Everything else
 * (more than 19 digits, large exponents) goes to csv_num_slow().
 */

/*
 * csv_num_slow: the value of the number syntax in [p, end), which
 * num_parse() has already checked; NAN if it overflows a double.
 *
 * strtod() gets a NUL-terminated, locale-free copy: digits and an
 * exponent.  Halfway points between doubles have at most 767 significant
 * digits, so keeping 780 and replacing the rest by one nonzero "sticky"
 * digit keeps the value on the same side of every rounding boundary:
 * the result is exact for any length of input, with a bounded buffer.
 */
static double csv_num_slow(const char *p, const char *end)
{
	char buf[NUM_SLOW_DIGITS + 32];
	size_t n = 0;
	size_t kept = 0;
	int64_t e10 = 0;
	int64_t x = 0;
	bool neg = *p == '-';
	bool sticky = false;
	double v;

	if (*p == '-' || *p == '+')
		p++;
	if (neg)
		buf[n++] = '-';
	for (; p < end && is_digit(*p); p++) {
		if (!kept && *p == '0')
			continue;
		if (kept < NUM_SLOW_DIGITS) {
			buf[n++] = *p;
			kept++;
		} else {
			e10++;
			sticky |= *p != '0';
		}
	}
	if (p < end && *p == '.') {
		for (p++; p < end && is_digit(*p); p++) {
			if (kept >= NUM_SLOW_DIGITS) {
				sticky |= *p != '0';
				continue;
			}
			e10--;
			if (!kept && *p == '0')
				continue;
			buf[n++] = *p;
			kept++;
		}
	}
	if (p < end && (*p | 0x20) == 'e') {
		bool eneg = false;

		p++;
		if (*p == '-' || *p == '+') {
			eneg = *p == '-';
			p++;
		}
		for (; p < end && is_digit(*p); p++)
			if (x < 1000000000)
				x = x * 10 + (*p - '0');
		e10 += eneg ? -x : x;
	}
	if (!kept)
		return neg ? -0.0 : 0.0;
	if (sticky) {
		buf[n++] = '1';
		e10--;
	}
	/* Past this, every kept mantissa is 0 or inf anyway. */
	if (e10 > 999999)
		e10 = 999999;
	if (e10 < -999999)
		e10 = -999999;
	snprintf(buf + n, sizeof(buf) - n, "e%" PRId64, e10);
	v = strtod(buf, NULL);
	return isinf(v) ? NAN : v;
}

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

/*
 * num_parse: read the longest number at [s, end): optional sign, digits
 * with an optional '.', at least one digit, then an optional exponent
 * ('e' or 'E', optional sign, digits).  Returns the end of that syntax,
 * or s if there is none.  *out is the value, or NAN if it overflows.
 */
static inline CSV_HOT const char *num_parse(const char *s, const char *end,
					    double *out)
{
	const char *p = s;
	const char *d;
	uint64_t m;
	uint64_t frac = 0;
	size_t nint;
	size_t nfrac = 0;
	int64_t e10 = 0;
	bool neg = false;
	double v;

	if (p < end && (*p == '-' || *p == '+')) {
		neg = *p == '-';
		p++;
	}
	d = p;
	m = digit_run(&p, end);
	nint = (size_t)(p - d);
	if (p < end && *p == '.') {
		d = ++p;
		frac = digit_run(&p, end);
		nfrac = (size_t)(p - d);
	}
	if (!nint && !nfrac)
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
			e10 = eneg ? -x : x;
			p = q;
		}
	}
	/* 19 digits, leading zeros included, always fit in m. */
	if (nint + nfrac > 19) {
		*out = csv_num_slow(s, p);
		return p;
	}
	m = m * pow10_u64[nfrac] + frac;
	e10 -= (int64_t)nfrac;
	if (m <= (uint64_t)1 << 53 && e10 >= -22 && e10 <= 22) {
		v = (double)m;
		if (e10 < 0)
			v /= pow10_exact[-e10];
		else
			v *= pow10_exact[e10];
	} else if (!m) {
		v = 0;
	} else {
		*out = csv_num_slow(s, p);
		return p;
	}
	*out = neg ? -v : v;
	return p;
}

bool csv_parse_double(const char *s, size_t len, double *out)
{
	const char *end = s + len;
	double v = 0;

	while (s < end && is_blank(*s))
		s++;
	while (end > s && is_blank(end[-1]))
		end--;
	if (s == end || num_parse(s, end, &v) != end || isnan(v))
		return false;
	*out = v;
	return true;
}

/* "NA", "N/A", "NaN", "null", "None", "?" in any case, or nothing. */
static bool is_missing(const char *p, size_t n)
{
	static const char *const tokens[] = { "na",   "n/a",  "nan",
					      "null", "none", "?" };
	char low[4];
	size_t i;

	if (!n)
		return true;
	if (n > sizeof(low))
		return false;
	for (i = 0; i < n; i++)
		low[i] = (char)(p[i] | (p[i] >= 'A' && p[i] <= 'Z' ? 0x20 : 0));
	for (i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++)
		if (strlen(tokens[i]) == n && !memcmp(low, tokens[i], n))
			return true;
	return false;
}

bool csv_is_missing(const char *p, size_t n)
{
	while (n && (*p == ' ' || *p == '\t')) {
		p++;
		n--;
	}
	while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	return is_missing(p, n);
}

/* Reads exactly n digits at p; false if one is not a digit. */
static bool read_digits(const char *p, int n, int *out)
{
	int v = 0;
	int i;

	for (i = 0; i < n; i++) {
		if (!is_digit(p[i]))
			return false;
		v = v * 10 + (p[i] - '0');
	}
	*out = v;
	return true;
}

static void trim(const char **p, size_t *n)
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

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era;
	int64_t yoe;
	int64_t doy;
	int64_t doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

bool csv_parse_time(const char *s, size_t n, double *out)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30,
				     31, 31, 30, 31, 30, 31 };
	const char *p;
	const char *end;
	int y, mo, d;
	int hh = 0;
	int mm = 0;
	int ss = 0;
	double frac = 0;
	double secs;

	trim(&s, &n);
	p = s + 10;
	end = s + n;
	if (n < 10 || s[4] != '-' || s[7] != '-')
		return false;
	if (!read_digits(s, 4, &y) || !read_digits(s + 5, 2, &mo) ||
	    !read_digits(s + 8, 2, &d))
		return false;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1])
		return false;
	if (mo == 2 && d == 29 && (y % 4 || (y % 100 == 0 && y % 400)))
		return false;
	secs = (double)days_from_civil(y, mo, d) * 86400.0;
	if (p == end) {
		*out = secs;
		return true;
	}
	if ((*p != 'T' && *p != 't' && *p != ' ') || end - p < 6 || p[3] != ':')
		return false;
	if (!read_digits(p + 1, 2, &hh) || !read_digits(p + 4, 2, &mm) ||
	    hh > 23 || mm > 59)
		return false;
	p += 6;
	if (p < end && *p == ':') {
		if (end - p < 3 || !read_digits(p + 1, 2, &ss) || ss > 60)
			return false;
		p += 3;
		if (p < end && *p == '.') {
			double scale = 0.1;
			const char *f = ++p;

			while (p < end && is_digit(*p)) {
				frac += (*p - '0') * scale;
				scale /= 10;
				p++;
			}
			if (p == f)
				return false;
		}
	}
	secs += hh * 3600.0 + mm * 60.0 + ss + frac;
	if (p < end && (*p == 'Z' || *p == 'z')) {
		p++;
	} else if (p < end && (*p == '+' || *p == '-')) {
		int oh, om;

		if (end - p < 6 || p[3] != ':' || !read_digits(p + 1, 2, &oh) ||
		    !read_digits(p + 4, 2, &om) || oh > 23 || om > 59)
			return false;
		/* Local time is UTC plus the offset. */
		secs -= (*p == '+' ? 1 : -1) * (oh * 3600.0 + om * 60.0);
		p += 6;
	}
	if (p != end)
		return false;
	*out = secs;
	return true;
}

/* Length of the valid UTF-8 sequence at p (2..4), or 0. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
	size_t left = (size_t)(end - p);
	unsigned lo = 0x80;
	unsigned hi = 0xbf;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		return left >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (p[0] >= 0xe0 && p[0] <= 0xef) {
		if (p[0] == 0xe0)
			lo = 0xa0; /* overlong */
		if (p[0] == 0xed)
			hi = 0x9f; /* surrogates */
		return left >= 3 && p[1] >= lo && p[1] <= hi &&
		       (p[2] & 0xc0) == 0x80 ? 3 : 0;
	}
	if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		if (p[0] == 0xf0)
			lo = 0x90; /* overlong */
		if (p[0] == 0xf4)
			hi = 0x8f; /* past U+10FFFF */
		return left >= 4 && p[1] >= lo && p[1] <= hi &&
		       (p[2] & 0xc0) == 0x80 && (p[3] & 0xc0) == 0x80 ? 4 : 0;
	}
	return 0;
}

/* 1-based column of p, on t's current line. */
static uint64_t tok_col(const struct csv_tok *t, const char *p)
{
	return (uint64_t)(p - t->line_start) + 1;
}

/*
 * The error for the byte at q that stopped a field scan and is neither
 * grammar nor the start of a valid UTF-8 sequence: 0 if it is data
 * (*len set to its bytes), else -EINVAL with t->pb.
 */
static int odd_byte(struct csv_tok *t, const unsigned char *q,
		    const unsigned char *end, size_t *len)
{
	uint64_t col = tok_col(t, (const char *)q);

	if (!*q)
		return problem_set(t->pb, pos_u(t->line), pos_u(col),
				   "binary data (NUL byte)");
	*len = t->check_utf8 ? utf8_seq(q, end) : 1;
	if (!*len)
		return problem_set(t->pb, pos_u(t->line), pos_u(col),
				   "invalid UTF-8");
	return 0;
}

int csv_field_next(struct csv_tok *t, struct csv_field *f)
{
	const unsigned char *p = (const unsigned char *)t->p;
	const unsigned char *end = (const unsigned char *)t->end;
	const unsigned char *q;
	size_t n;
	int rc;

	f->line = t->line;
	f->col = tok_col(t, t->p);
	f->esc = false;
	if (p < end && *p == '"') {
		q = p + 1;
		for (;;) {
			while (q < end && !quoted_class[*q])
				q++;
			if (q == end)
				return problem_set(t->pb, pos_u(f->line),
						   pos_u(f->col),
						   "unterminated quoted field");
			if (*q == '"') {
				if (q + 1 < end && q[1] == '"') {
					f->esc = true;
					q += 2;
					continue;
				}
				break;
			}
			if (*q == '\n') {
				q++;
				t->line++;
				t->line_start = (const char *)q;
				continue;
			}
			rc = odd_byte(t, q, end, &n);
			if (rc < 0)
				return rc;
			q += n;
		}
		f->p = (const char *)p + 1;
		f->len = (size_t)(q - p) - 1;
		q++;
		if (q < end && *q != ',' && *q != '\n' &&
		    !(*q == '\r' && q + 1 < end && q[1] == '\n'))
			return problem_set(
				t->pb, pos_u(t->line),
				pos_u(tok_col(t, (const char *)q)),
				"unexpected text after closing quote");
	} else {
		q = p;
		for (;;) {
			while (q < end && !csv_plain_stop[*q])
				q++;
			if (q == end || *q == ',' || *q == '\n')
				break;
			if (*q == '\r') {
				/* A lone CR is data; CRLF ends the record. */
				if (q + 1 < end && q[1] == '\n')
					break;
				q++;
				continue;
			}
			if (*q == '"')
				return problem_set(
					t->pb, pos_u(t->line),
					pos_u(tok_col(t, (const char *)q)),
					"quote inside unquoted field");
			rc = odd_byte(t, q, end, &n);
			if (rc < 0)
				return rc;
			q += n;
		}
		f->p = (const char *)p;
		f->len = (size_t)(q - p);
	}
	if (f->len > t->max_field)
		return too_big(t->pb, f->line, f->col, "field", t->max_field);
	f->term_at = (const char *)q;
	f->term_line = t->line;
	f->term_col = tok_col(t, (const char *)q);
	if (q == end) {
		f->term = CSV_TERM_EOF;
	} else if (*q == ',') {
		f->term = CSV_TERM_COMMA;
		q++;
	} else {
		f->term = CSV_TERM_EOL;
		q += *q == '\r' ? 2 : 1;
		t->line++;
		t->line_start = (const char *)q;
	}
	t->p = (const char *)q;
	return 0;
}

size_t csv_unescape(char *dst, const char *p, size_t n)
{
	size_t i;
	size_t j = 0;

	for (i = 0; i < n; i++) {
		dst[j++] = p[i];
		if (p[i] == '"')
			i++;
	}
	return j;
}

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

/* Order of two raw contents as unescaped bytes. */
static int raw_cmp(const char *a, size_t an, bool aesc, const char *b,
		   size_t bn, bool besc)
{
	size_t i = 0;
	size_t j = 0;
	int r;

	if (!aesc && !besc) {
		r = memcmp(a, b, an < bn ? an : bn);
		if (r)
			return r;
		return (an > bn) - (an < bn);
	}
	while (i < an && j < bn) {
		unsigned char x = (unsigned char)a[i];
		unsigned char y = (unsigned char)b[j];

		if (x != y)
			return x < y ? -1 : 1;
		i += aesc && x == '"' ? 2 : 1;
		j += besc && y == '"' ? 2 : 1;
	}
	return (i < an) - (j < bn);
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

static uint64_t hll_estimate(const uint8_t *reg)
{
	double m = (double)HLL_REGS;
	double sum = 0;
	double e;
	size_t zeros = 0;
	size_t i;

	for (i = 0; i < HLL_REGS; i++) {
		sum += ldexp(1.0, -reg[i]);
		zeros += !reg[i];
	}
	e = 0.7213 / (1 + 1.079 / m) * m * m / sum;
	/* Small range: linear counting is better while registers are 0. */
	if (e <= 2.5 * m && zeros)
		e = m * log(m / (double)zeros);
	return (uint64_t)llround(e);
}

static bool ent_equal(const struct cset_ent *e, uint64_t h, uint32_t flags,
		      const char *p, size_t n)
{
	if (e->hash != h || ((e->flags ^ flags) & ENT_NUM))
		return false;
	if (flags & ENT_NUM)
		return true;
	return !raw_cmp(e->p, e->len, e->flags & ENT_ESC, p, n,
			flags & ENT_ESC);
}

/*
 * cset_add: count one value.  Returns 1 if it was new, 0 if seen before,
 * -ENOMEM, or -ENOSPC if the set would have to grow past *budget bytes
 * (budget NULL: no limit) or hold more than cap values.
 */
static int cset_add(struct cset *set, uint64_t h, uint32_t flags,
		    const char *p, size_t n, size_t *budget, size_t cap)
{
	struct cset_ent *e;
	size_t i = 0; /* set by the probe loop; gcc -O2 cannot tell */

	if (set->slots) {
		for (i = h & set->mask;; i = (i + 1) & set->mask) {
			e = &set->slots[i];
			if (!e->count)
				break;
			if (ent_equal(e, h, flags, p, n)) {
				e->count++;
				return 0;
			}
		}
	}
	if (set->size >= cap)
		return -ENOSPC;
	/* Keep the load at most 1/2: probes stay short. */
	if (!set->slots || (set->size + 1) * 2 > set->mask + 1) {
		size_t old = set->slots ? set->mask + 1 : 0;
		size_t nslots = old ? old * 2 : 16;
		struct cset_ent *ns;
		size_t j;

		if (budget && (nslots - old) * sizeof(*ns) > *budget)
			return -ENOSPC;
		ns = calloc(nslots, sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		for (j = 0; j < old; j++) {
			if (!set->slots[j].count)
				continue;
			for (i = set->slots[j].hash & (nslots - 1); ns[i].count;
			     i = (i + 1) & (nslots - 1))
				;
			ns[i] = set->slots[j];
		}
		free(set->slots);
		set->slots = ns;
		set->mask = nslots - 1;
		if (budget)
			*budget -= (nslots - old) * sizeof(*ns);
		for (i = h & set->mask; ns[i].count; i = (i + 1) & set->mask)
			;
	}
	e = &set->slots[i];
	e->hash = h;
	e->count = 1;
	e->p = p;
	e->len = (uint32_t)n;
	e->flags = flags;
	set->size++;
	return 1;
}

/* Tier 3: move a column's distinct values into a HyperLogLog sketch. */
static int col_estimate(struct scan *sc, struct colstate *s, uint64_t h,
			uint64_t known)
{
	size_t i;

	s->hll = calloc(HLL_REGS, 1);
	if (!s->hll)
		return -ENOMEM;
	for (i = 0; i < s->nkeys + s->nbatch; i++)
		hll_add(s->hll, s->keys[i]);
	for (i = 0; s->set.slots && i <= s->set.mask; i++)
		if (s->set.slots[i].count)
			hll_add(s->hll, s->set.slots[i].hash);
	hll_add(s->hll, h);
	s->exact = known;
	sc->budget += s->kcap * sizeof(*s->keys);
	free(s->keys);
	s->keys = NULL;
	s->nkeys = 0;
	s->nbatch = 0;
	s->kcap = 0;
	if (s->set.slots)
		sc->budget += (s->set.mask + 1) * sizeof(*s->set.slots);
	free(s->set.slots);
	memset(&s->set, 0, sizeof(s->set));
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a;
	uint64_t y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/*
 * Sort n hashes from a into out.  They are uniform, so one pass into
 * 2^SORT_BITS buckets by the top bits leaves a handful per bucket, and
 * an insertion sort finishes each; a big bucket (a value repeated many
 * times, or inputs chosen to collide) goes to qsort() instead.
 */
static void hash_sort(const uint64_t *a, uint64_t *out, size_t n)
{
	uint32_t start[((size_t)1 << SORT_BITS) + 1] = { 0 };
	size_t b;
	size_t i;
	size_t j;

	for (i = 0; i < n; i++)
		start[(a[i] >> (64 - SORT_BITS)) + 1]++;
	for (b = 1; b <= (size_t)1 << SORT_BITS; b++)
		start[b] += start[b - 1];
	for (i = 0; i < n; i++)
		out[start[a[i] >> (64 - SORT_BITS)]++] = a[i];
	/* Each start[b] now is where bucket b + 1 begins. */
	for (b = 0; b < (size_t)1 << SORT_BITS; b++) {
		size_t lo = b ? start[b - 1] : 0;
		size_t hi = start[b];

		if (hi - lo > SORT_SMALL) {
			qsort(out + lo, hi - lo, sizeof(*out), cmp_u64);
			continue;
		}
		for (i = lo + 1; i < hi; i++) {
			uint64_t x = out[i];

			for (j = i; j > lo && out[j - 1] > x; j--)
				out[j] = out[j - 1];
			out[j] = x;
		}
	}
}

/*
 * Sort the batch and merge it into the sorted distinct hashes.  Past
 * CSV_DISTINCT_EXACT the column moves on to tier 3.
 */
static int keys_flush(struct scan *sc, struct colstate *s)
{
	uint64_t *k = s->keys;
	uint64_t *b = sc->sort_tmp;
	size_t nb = 0;
	size_t total;
	size_t i;
	size_t j;
	size_t w;

	if (!s->nbatch)
		return 0;
	if (!b) {
		b = malloc(KEYS_BATCH * sizeof(*b));
		if (!b)
			return -ENOMEM;
		sc->sort_tmp = b;
	}
	hash_sort(k + s->nkeys, b, s->nbatch);
	for (i = 0; i < s->nbatch; i++)
		if (!nb || b[nb - 1] != b[i])
			b[nb++] = b[i];
	/*
	 * Merge from the back: the write index never passes a read index.
	 * Hashes are random, so the loop is written without branches on
	 * their order, which would be mispredicted half the time.
	 */
	total = s->nkeys + nb;
	i = s->nkeys;
	j = nb;
	w = total;
	while (i && j) {
		uint64_t x = k[i - 1];
		uint64_t y = b[j - 1];

		k[--w] = x >= y ? x : y;
		i -= x >= y;
		j -= y >= x;
	}
	while (j)
		k[--w] = b[--j];
	w -= i;
	memmove(k + i, k + i + w, (total - i - w) * sizeof(*k));
	s->nkeys = total - w;
	s->nbatch = 0;
	if (s->nkeys > CSV_DISTINCT_EXACT)
		return col_estimate(sc, s, k[0], s->nkeys);
	return 0;
}

/*
 * Tier 2 keeps 64-bit hashes.  For numbers the hash is a bijection of
 * the value, so the count is exact; two texts are taken as one only if
 * their XXH3 hashes collide (about 1e-10 for 65536 values).
 */
static int keys_add(struct scan *sc, struct colstate *s, uint64_t h)
{
	if (s->nkeys + s->nbatch == s->kcap) {
		/* A flush leaves at most CSV_DISTINCT_EXACT, then a batch. */
		size_t cap = s->kcap * 2;
		uint64_t *k;

		if (cap > CSV_DISTINCT_EXACT + KEYS_BATCH)
			cap = CSV_DISTINCT_EXACT + KEYS_BATCH;
		if ((cap - s->kcap) * sizeof(*k) > sc->budget)
			return col_estimate(sc, s, h, s->nkeys + 1);
		k = realloc(s->keys, cap * sizeof(*k));
		if (!k)
			return -ENOMEM;
		sc->budget -= (cap - s->kcap) * sizeof(*k);
		s->keys = k;
		s->kcap = cap;
	}
	s->keys[s->nkeys + s->nbatch++] = h;
	if (s->nbatch < KEYS_BATCH)
		return 0;
	return keys_flush(sc, s);
}

/* Tier 1 is full: move its hashes to tier 2, then add h there. */
static int col_to_keys(struct scan *sc, struct colstate *s, uint64_t h)
{
	struct cset *set = &s->set;
	size_t cap = 4 * KEYS_BATCH;
	size_t i;

	if (cap * sizeof(*s->keys) > sc->budget)
		return col_estimate(sc, s, h, set->size + 1);
	s->keys = malloc(cap * sizeof(*s->keys));
	if (!s->keys)
		return -ENOMEM;
	sc->budget -= cap * sizeof(*s->keys);
	s->kcap = cap;
	/* CSV_CAT_MAX hashes: one batch, not yet full. */
	for (i = 0; i <= set->mask; i++)
		if (set->slots[i].count)
			s->keys[s->nbatch++] = set->slots[i].hash;
	sc->budget += (set->mask + 1) * sizeof(*set->slots);
	free(set->slots);
	memset(set, 0, sizeof(*set));
	return keys_add(sc, s, h);
}

static int col_distinct(struct scan *sc, struct colstate *s, uint64_t h,
			uint32_t flags, const char *p, size_t n)
{
	int rc;

	if (s->hll) {
		hll_add(s->hll, h);
		return 0;
	}
	if (s->keys)
		return keys_add(sc, s, h);
	rc = cset_add(&s->set, h, flags, p, n, &sc->budget, CSV_CAT_MAX);
	if (rc == -ENOSPC && s->set.size == CSV_CAT_MAX)
		return col_to_keys(sc, s, h);
	if (rc == -ENOSPC)
		return col_estimate(sc, s, h, s->set.size + 1);
	return rc < 0 ? rc : 0;
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

/* A number in column s; p/n is its spelling in the input. */
static inline CSV_HOT int col_add_num(struct scan *sc, struct colstate *s,
				      double v, const char *p, size_t n)
{
	double d;

	s->n++;
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
	if (s->hll) {
		hll_add(s->hll, num_hash(v));
		return 0;
	}
	if (s->int_ok && !(fabs(v) < 0x1p63 && (double)(int64_t)v == v))
		s->int_ok = false;
	return col_distinct(sc, s, num_hash(v), ENT_NUM, p, n);
}

/* A value that is neither missing nor a number. */
static int col_add_text(struct scan *sc, struct colstate *s, const char *p,
			size_t n, bool esc)
{
	const char *hp = p;
	size_t hn = n;
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
	return col_distinct(sc, s, XXH3_64bits(hp, hn), esc ? ENT_ESC : 0, p,
			    n);
}

/* Any field: missing, a number (spaces or quotes around it) or text. */
static int col_add_field(struct scan *sc, struct colstate *s,
			 const struct csv_field *f, float *cell)
{
	const char *p = f->p;
	size_t n = f->len;
	double v = 0;

	trim(&p, &n);
	if (!f->esc && is_missing(p, n)) {
		s->missing++;
		if (cell)
			*cell = NAN;
		return 0;
	}
	if (!f->esc && num_parse(p, p + n, &v) == p + n && !isnan(v)) {
		if (cell)
			*cell = (float)v;
		return col_add_num(sc, s, v, p, n);
	}
	if (cell)
		*cell = NAN;
	return col_add_text(sc, s, p, n, f->esc);
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
		rc = cset_add(&names, XXH3_64bits(name, n), 0, name, n, NULL,
			      SIZE_MAX);
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
		rc = too_big(sc->tok.pb, rec_line, 1, "record", sc->max_line);
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

int csv_ragged(struct problem *pb, uint64_t line, uint64_t col, size_t n,
	       size_t ncols)
{
	return problem_set(pb, pos_u(line), pos_u(col),
			   "record has %zu field%s, header has %zu", n,
			   n == 1 ? "" : "s", ncols);
}

int csv_no_rows(struct csv_tok *t)
{
	/* Point at the end of the input, where data should be. */
	for (; t->p < t->end; t->p++) {
		if (*t->p == '\n') {
			t->line++;
			t->line_start = t->p + 1;
		}
	}
	return problem_set(t->pb, pos_u(t->line), pos_u(tok_col(t, t->end)),
			   "no data rows");
}

int csv_too_many(struct csv_tok *t, size_t ncols)
{
	uint64_t line = t->line;
	uint64_t col = tok_col(t, t->p);
	size_t n = ncols;
	struct csv_field f;
	int rc;

	do {
		rc = csv_field_next(t, &f);
		if (rc < 0)
			return rc;
		n++;
	} while (f.term == CSV_TERM_COMMA);
	return csv_ragged(t->pb, line, col, n, ncols);
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

/*
 * Room for row nrows, done of total bytes into the records.  The matrix
 * is new memory written once, about a third of the file's size, and how
 * its pages arrive costs more than the parsing: on 160 MB, doubling
 * realloc()s with a fault per 4 KiB page took 0.6 s, one block of huge
 * pages 0.05 s.  So:
 *  - at the first growth the capacity jumps to the row count that the
 *    rows so far predict for the whole input, plus 1/16 (never more
 *    bytes than the input itself), so that one realloc() usually moves
 *    the block and doubling is the exception;
 *  - big blocks are advised MADV_HUGEPAGE, and prefaulted MAT_PREFAULT
 *    bytes ahead with MADV_POPULATE_WRITE: one call, not a fault a page.
 * mat_finish() gives back what the estimate overshot.
 */
static int mat_reserve(struct matbuf *mb, size_t ncols, uint64_t nrows,
		       size_t done, size_t total)
{
	size_t row = ncols * sizeof(*mb->data);
	uint64_t ready;

	if (nrows == mb->cap) {
		uint64_t cap = mb->cap ? mb->cap * 2 : MAT_FIRST_ROWS;
		double est;
		float *d;

		if (mb->cap && done) {
			est = (double)nrows * ((double)total / (double)done);
			est += est / 16;
			if (est > (double)cap && est < (double)(total / row))
				cap = (uint64_t)est;
		}
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
	}
	ready = nrows + MAT_PREFAULT / row + 1;
	if (ready > mb->cap)
		ready = mb->cap;
#ifdef MADV_POPULATE_WRITE
	mem_advise(mb->data + nrows * ncols, (size_t)(ready - nrows) * row,
		   MADV_POPULATE_WRITE);
#endif
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
	const char *e = num_parse(p, end, v);

	if (e == p)
		*v = NAN;
	else if (isnan(*v) || (size_t)(e - p) > max_field)
		return false;
	*q = e;
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
	return true;
}

/*
 * The data records: fast_field() where it can, csv_field_next() otherwise.
 * The physical position lives in locals here, and in *sc around slow
 * fields.
 */
static int scan_rows(struct scan *sc, struct colstate *cs, size_t ncols,
		     struct matbuf *mb, uint64_t *nrows_out)
{
	const char *const start = sc->tok.p;
	const char *const end = sc->tok.end;
	const char *p = start;
	const char *line_start = sc->tok.line_start;
	const char *blank_end = p; /* blank lines before it don't reach EOF */
	const size_t max_field = sc->tok.max_field;
	uint64_t line = sc->tok.line;
	uint64_t nrows = 0;
	int rc;

	while (p < end) {
		const char *rec = p;
		const char *term_at = p;
		uint64_t rec_line = line;
		uint64_t term_line = line;
		uint64_t term_col = 1;
		float *row = NULL;
		size_t c = 0;
		enum csv_term term = CSV_TERM_COMMA;

		if ((*p == '\n' || *p == '\r') && p >= blank_end) {
			blank_end = skip_blank(p, end);
			if (blank_end == end)
				break;
		}
		if (mb) {
			if (nrows == mb->ready) {
				rc = mat_reserve(mb, ncols, nrows,
						 (size_t)(p - start),
						 (size_t)(end - start));
				if (rc < 0)
					return rc;
			}
			row = mb->data + nrows * ncols;
		}
		while (term == CSV_TERM_COMMA) {
			const char *q;
			const char *next;
			double v;
			struct csv_field f;

			if (c == ncols) {
				sc->tok.p = p;
				sc->tok.line = line;
				sc->tok.line_start = line_start;
				return csv_too_many(&sc->tok, ncols);
			}
			if (fast_field(p, end, max_field, &v, &q, &next,
				       &term)) {
				if (q == p) {
					cs[c].missing++;
				} else {
					rc = col_add_num(sc, &cs[c], v, p,
							 (size_t)(q - p));
					if (rc < 0)
						return rc;
				}
				if (row)
					row[c] = (float)v;
				if (term != CSV_TERM_COMMA) {
					term_at = q;
					term_line = line;
					term_col = (uint64_t)(q - line_start) +
						   1;
				}
				if (term == CSV_TERM_EOL) {
					line++;
					line_start = next;
				}
				p = next;
			} else {
				sc->tok.p = p;
				sc->tok.line = line;
				sc->tok.line_start = line_start;
				rc = csv_field_next(&sc->tok, &f);
				if (rc < 0)
					return rc;
				rc = col_add_field(sc, &cs[c], &f,
						   row ? &row[c] : NULL);
				if (rc < 0)
					return rc;
				p = sc->tok.p;
				line = sc->tok.line;
				line_start = sc->tok.line_start;
				term = f.term;
				term_at = f.term_at;
				term_line = f.term_line;
				term_col = f.term_col;
			}
			c++;
		}
		if (c < ncols)
			return csv_ragged(sc->tok.pb, term_line, term_col, c,
					  ncols);
		if ((size_t)(term_at - rec) > sc->max_line)
			return too_big(sc->tok.pb, rec_line, 1, "record",
				       sc->max_line);
		nrows++;
	}
	sc->tok.p = p;
	sc->tok.line = line;
	sc->tok.line_start = line_start;
	*nrows_out = nrows;
	return 0;
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
	return raw_cmp(x->p, x->len, x->flags & ENT_ESC, y->p, y->len,
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
		rc = s->keys ? keys_flush(sc, s) : 0;
		if (rc < 0)
			return rc;
		if (s->hll) {
			uint64_t d = hll_estimate(s->hll);

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

int csv_scan(const char *data, size_t len, const struct csv_limits *lim,
	     struct csv_info **out, struct csv_matrix *mat,
	     struct problem *pb)
{
	struct scan sc = { 0 };
	struct matbuf mb = { 0 };
	struct colstate *cs = NULL;
	struct csv_info *info;
	uint64_t nrows = 0;
	size_t ncols = 0;
	size_t i;
	int rc;

	*out = NULL;
	if (mat)
		memset(mat, 0, sizeof(*mat));
	sc.tok.p = data;
	sc.tok.end = data + len;
	sc.tok.line_start = data;
	sc.tok.line = 1;
	sc.tok.max_field = lim && lim->max_field ? lim->max_field
						 : CSV_DEF_FIELD;
	sc.max_line = lim && lim->max_line ? lim->max_line : CSV_DEF_LINE;
	sc.max_cols = lim && lim->max_cols ? lim->max_cols : CSV_DEF_COLS;
	/* Set entries keep a 32-bit length. */
	if (sc.tok.max_field > UINT32_MAX)
		sc.tok.max_field = UINT32_MAX;
	sc.budget = CSV_SET_BUDGET;
	sc.tok.pb = pb;
	sc.tok.check_utf8 = true;

	info = calloc(1, sizeof(*info));
	if (!info)
		return -ENOMEM;
	if (len >= 3 && !memcmp(data, "\xef\xbb\xbf", 3)) {
		info->bom = true;
		sc.tok.p += 3;
		sc.tok.line_start = sc.tok.p;
	}
	if (skip_blank(sc.tok.p, sc.tok.end) == sc.tok.end) {
		rc = problem_set(pb, 1, 1, "empty file");
		goto out_free_info;
	}
	rc = parse_header(&sc, info);
	if (rc < 0)
		goto out_free_info;
	ncols = info->ncols;
	cs = calloc(ncols, sizeof(*cs));
	if (!cs) {
		rc = -ENOMEM;
		goto out_free_info;
	}
	for (i = 0; i < ncols; i++) {
		cs[i].min = INFINITY;
		cs[i].max = -INFINITY;
		cs[i].int_ok = true;
		cs[i].time_ok = true;
	}
	rc = scan_rows(&sc, cs, ncols, mat ? &mb : NULL, &nrows);
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
