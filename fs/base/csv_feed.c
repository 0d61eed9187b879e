/* SPDX-License-Identifier: MIT */
/*
 * csv_feed: the check of CSV records as they are appended to a dataset's
 * data.csv (`>>`, a sequential cp), so that a bad record fails the write
 * that carries it; csv_scan() still judges the whole file at close.
 * Every byte of such a copy passes through here, so a copy must not slow
 * down by more than noise: plain ASCII and commas, outside quotes, are
 * read 16 bytes at a time (SSE2; 8 elsewhere), as are the LFs of records
 * of the header's width, and everything else (quotes, CR, other LFs,
 * NUL, UTF-8) byte by byte, which decides every message and position.
 *
 * No global state: any thread, one struct csv_feed per thread at a time.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "csv.h"

static unsigned pos_u(uint64_t v)
{
	return v > UINT32_MAX ? UINT32_MAX : (unsigned)v;
}

/* The word-at-a-time scan takes the first byte in memory as the low one. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define FEED_SWAR 1
#else
#define FEED_SWAR 0
#endif

/* Eight bytes in memory order. */
static inline uint64_t load8(const unsigned char *p)
{
	uint64_t x;

	memcpy(&x, p, sizeof(x));
	return x;
}

/* Bytes csv_feed must look at: all others are ordinary field bytes. */
static inline bool feed_special(unsigned char b)
{
	return b >= 0x80 || b == 0 || b == '"' || b == ',' || b == '\n' ||
	       b == '\r';
}

/* The end of a record during csv_feed: its field count is the header's. */
static int feed_record_end(struct csv_feed *c, struct problem *pb)
{
	size_t n = c->fields + 1;

	/* as csv_scan says it: the first extra field, or the line's end */
	if (c->ncols == 0)
		c->ncols = n; /* the header */
	else if (n > c->ncols)
		return csv_ragged(pb, c->line, c->extra_col, n, c->ncols);
	else if (n < c->ncols && !(n == 1 && !c->field_bytes))
		return csv_ragged(pb, c->line, c->col + 1, n, c->ncols);
	c->line++;
	c->col = 0;
	c->fields = 0;
	c->extra_col = 0;
	c->field_bytes = false;
	return 0;
}

/* A comma at byte column col (0-based) ends field c->fields. */
static void feed_comma(struct csv_feed *c, uint64_t col)
{
	c->fields++;
	c->field_bytes = false;
	if (c->ncols && c->fields == c->ncols && !c->extra_col)
		c->extra_col = col + 2;
}

#define FEED_LOW7 0x7f7f7f7f7f7f7f7fULL
#define FEED_HIGH 0x8080808080808080ULL
#define FEED_ONES 0x0101010101010101ULL

/*
 * The high bit of each byte of y (all bytes < 0x80) that is not c.  Exact
 * for every byte, not only up to the first match: a byte's sum is at most
 * 0x7f + 0x7f, so no carry crosses into the next byte.
 */
static inline uint64_t swar_ne(uint64_t y, unsigned char c)
{
	return (y ^ (FEED_ONES * c)) + FEED_LOW7;
}

/* The sum of the bytes of x, each at most 255 / 8 (31). */
static inline size_t swar_sum(uint64_t x)
{
	return (size_t)((x * FEED_ONES) >> 56);
}

/*
 * Words of feed_plain()'s inner loop: a lane counts at most one comma a
 * word, and swar_sum() adds 8 lanes right while each is at most 31 (255
 * let a record of 256 commas pass as one field: review found it).
 */
#define FEED_BLOCK_WORDS 31

#ifdef __SSE2__
#include <emmintrin.h>
#define FEED_SSE2 1

/* Bits set in the low 16 bits of m. */
static inline unsigned bits16(unsigned m)
{
	m = m - ((m >> 1) & 0x5555);
	m = (m & 0x3333) + ((m >> 2) & 0x3333);
	m = (m + (m >> 4)) & 0x0f0f;
	return (m + (m >> 8)) & 0x1f;
}

/*
 * feed_plain()'s run 16 bytes at a time (SSE2, in every x86-64; twice
 * the SWAR words' speed here): the plain bytes and commas from p on, up
 * to the first other byte or the last whole 16 of n.  Adds the commas to
 * *fields; returns the bytes moved past.
 */
static size_t feed_plain16(const unsigned char *p, size_t n, size_t *fields)
{
	const __m128i zero = _mm_setzero_si128();
	const __m128i quote = _mm_set1_epi8('"');
	const __m128i lf = _mm_set1_epi8('\n');
	const __m128i cr = _mm_set1_epi8('\r');
	const __m128i comma = _mm_set1_epi8(',');
	size_t i = 0;

	while (n - i >= 16) {
		size_t blocks = (n - i) / 16;
		__m128i lanes = zero; /* commas a byte lane, < 256 */
		__m128i x = zero;
		__m128i sum;
		unsigned stop = 0;

		if (blocks > 255)
			blocks = 255;
		for (; blocks; blocks--, i += 16) {
			__m128i special;

			x = _mm_loadu_si128((const __m128i *)(p + i));
			special = _mm_or_si128(
				_mm_or_si128(_mm_cmpeq_epi8(x, zero),
					     _mm_cmpeq_epi8(x, quote)),
				_mm_or_si128(_mm_cmpeq_epi8(x, lf),
					     _mm_cmpeq_epi8(x, cr)));
			/* the top bit of x: a byte >= 0x80 */
			stop = (unsigned)_mm_movemask_epi8(
				_mm_or_si128(special, x));
			if (stop)
				break;
			lanes = _mm_sub_epi8(lanes, _mm_cmpeq_epi8(x, comma));
		}
		sum = _mm_sad_epu8(lanes, zero);
		*fields += (size_t)_mm_cvtsi128_si32(sum) +
			   (size_t)_mm_extract_epi16(sum, 4);
		if (stop) {
			unsigned k = (unsigned)__builtin_ctz(stop);
			unsigned before = (unsigned)_mm_movemask_epi8(
						  _mm_cmpeq_epi8(x, comma)) &
					  ((1u << k) - 1);

			*fields += bits16(before);
			return i + k;
		}
	}
	return i;
}
#endif

/*
 * Outside quotes, move past the plain bytes and commas at p[0..n), and
 * the LF that ends a record of the header's width (a file of numbers is
 * mostly these, and a return a record cost 4% of this check): up to the
 * first other byte that feed_special() names, or n.  Sixteen bytes at a
 * time where there is SSE2 (feed_plain16()), else eight (SWAR), counting
 * commas in the bytes of a word (a lane per byte) and adding the lanes
 * up once per block; exactly what feed_byte() would do for each of these
 * bytes, c->line and c->col included.  Returns the bytes moved past.
 * Byte by byte on a big-endian host without SSE2 (FEED_SWAR).
 */
static size_t feed_plain(struct csv_feed *c, const unsigned char *p,
			 size_t n)
{
	size_t fields = c->fields;
	uint64_t col0 = c->col; /* the column of p[start] */
	size_t start = 0;       /* where the current line begins in p */
	size_t i = 0;

	for (;;) {
#ifdef FEED_SSE2
		if (n - i >= 16) {
			i += feed_plain16(p + i, n - i, &fields);
			if (i < n && (p[i] == ',' || !feed_special(p[i])))
				continue; /* fewer than 16 bytes left */
			goto stopped;
		}
#endif
		while (FEED_SWAR && n - i >= 8) {
			size_t words = (n - i) / 8;
			uint64_t lanes = 0;
			uint64_t stop = 0;
			uint64_t x = 0;

			if (words > FEED_BLOCK_WORDS)
				words = FEED_BLOCK_WORDS;
			for (; words; words--, i += 8) {
				uint64_t y;
				uint64_t plain;

				x = load8(p + i);
				y = x & FEED_LOW7;
				plain = swar_ne(y, 0) & swar_ne(y, '"') &
					swar_ne(y, '\n') & swar_ne(y, '\r');
				stop = (x | ~plain) & FEED_HIGH;
				if (stop)
					break;
				lanes += (~swar_ne(y, ',') & FEED_HIGH) >> 7;
			}
			if (stop) {
				unsigned k = (unsigned)__builtin_ctzll(stop) >> 3;
				/* the commas before the stop (0x80 | ',' is
				 * past it) */
				uint64_t comma = ~swar_ne(x & FEED_LOW7, ',') &
						 FEED_HIGH &
						 (((uint64_t)1 << (8 * k)) - 1);

				fields += swar_sum(lanes + (comma >> 7));
				i += k;
				goto stopped;
			}
			fields += swar_sum(lanes);
		}
		for (; i < n && (p[i] == ',' || !feed_special(p[i])); i++)
			fields += p[i] == ',';
stopped:
		/* a record of the header's width ends: on to the next */
		if (i == n || p[i] != '\n' || !c->ncols ||
		    fields + 1 != c->ncols)
			break;
		c->line++;
		c->extra_col = 0;
		fields = 0;
		col0 = 0;
		start = ++i;
	}
	if (i > start)
		c->field_bytes = p[i - 1] != ',';
	else if (start)
		c->field_bytes = false;
	/*
	 * The first field past the header's count starts after its comma:
	 * find that comma again, once a record.
	 */
	if (c->ncols && !c->extra_col && (start ? 0 : c->fields) < c->ncols &&
	    fields >= c->ncols) {
		size_t left = c->ncols - (start ? 0 : c->fields);
		size_t j = start;

		for (;; j++)
			if (p[j] == ',' && !--left)
				break;
		c->extra_col = col0 + (j - start) + 2;
	}
	c->fields = fields;
	c->col = col0 + (i - start);
	return i;
}

/* One byte b at column c->col of the file: 0, or -EINVAL with pb. */
static int feed_byte(struct csv_feed *c, unsigned char b, struct problem *pb)
{
	int rc;

	if (c->utf8) {
		if ((b & 0xc0) != 0x80)
			return problem_set(pb, pos_u(c->line),
					   pos_u(c->col + 1), "invalid UTF-8");
		c->utf8--;
		return 0;
	}
	if (b >= 0x80) {
		c->utf8 = b >= 0xf0 && b < 0xf5   ? 3
			  : b >= 0xe0 && b < 0xf0 ? 2
			  : b >= 0xc2 && b < 0xe0 ? 1
						  : 0;
		if (!c->utf8)
			return problem_set(pb, pos_u(c->line),
					   pos_u(c->col + 1), "invalid UTF-8");
		c->field_bytes = true;
		return 0;
	}
	if (b == 0)
		return problem_set(pb, pos_u(c->line), pos_u(c->col + 1),
				   "binary data (NUL byte)");
	if (c->quoted) {
		if (b == '"') {
			/* a closing quote, or the second of a "" pair */
			c->quote_end = !c->quote_end;
			return 0;
		}
		if (!c->quote_end) {
			if (b == '\n') {
				c->line++; /* a newline inside quotes */
				c->col = (uint64_t)-1;
			}
			return 0;
		}
		/* after the closing quote: only , or end of line */
		c->quoted = false;
		c->quote_end = false;
		if (b != ',' && b != '\n' && b != '\r')
			return problem_set(pb, pos_u(c->line),
					   pos_u(c->col + 1), "stray quote");
	}
	if (b == ',') {
		feed_comma(c, c->col);
	} else if (b == '\n') {
		rc = feed_record_end(c, pb);
		if (rc < 0)
			return rc;
		c->col = (uint64_t)-1;
	} else if (b == '"') {
		if (c->field_bytes)
			return problem_set(pb, pos_u(c->line),
					   pos_u(c->col + 1), "stray quote");
		c->quoted = true;
		c->field_bytes = true;
	} else if (b != '\r') {
		c->field_bytes = true;
	}
	return 0;
}

int csv_feed(struct csv_feed *c, const char *buf, size_t len,
	     struct problem *pb)
{
	const unsigned char *p = (const unsigned char *)buf;
	size_t i = 0;
	int rc;

	if (!c->line)
		c->line = 1;
	while (i < len) {
		/*
		 * The common bytes, outside quotes: plain ASCII and commas,
		 * a word at a time (a cp must not slow by more than noise).
		 */
		if (!c->quoted && !c->utf8) {
			i += feed_plain(c, p + i, len - i);
			if (i == len)
				break;
		}
		rc = feed_byte(c, p[i], pb);
		if (rc < 0)
			return rc;
		i++;
		c->col++;
	}
	return 0;
}
