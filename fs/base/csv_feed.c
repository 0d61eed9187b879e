/* SPDX-License-Identifier: MIT */
/*
 * csv_feed: the check of CSV records as they are appended to a dataset's
 * data.csv (`>>`, a sequential cp), so that a bad record fails the write
 * that carries it; csv_scan() still judges the whole file at close.
 * Every byte of such a copy passes through here, so a copy must not slow
 * down by more than noise: plain ASCII and commas, outside quotes, are
 * read 8 bytes at a time, and everything else (quotes, CR, LF, NUL,
 * UTF-8) byte by byte, which decides every message and position.
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

/* Words of feed_plain()'s inner loop: a lane of its count stays < 256. */
#define FEED_BLOCK_WORDS 255

/*
 * Outside quotes, move past the plain bytes and commas at p[0..n): up to
 * the first byte that feed_special() names other than a comma, or n.
 * Eight bytes at a time (SWAR), counting commas in the bytes of a word
 * (a lane per byte) and adding the lanes up once per block; exactly what
 * feed_byte() would do for each of these bytes, c->col included.  Returns
 * the bytes moved past.  Byte by byte on a big-endian host (FEED_SWAR).
 */
static size_t feed_plain(struct csv_feed *c, const unsigned char *p,
			 size_t n)
{
	size_t fields = c->fields;
	size_t i = 0;

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
			/* the commas before the stop (0x80 | ',' is past it) */
			uint64_t comma = ~swar_ne(x & FEED_LOW7, ',') &
					 FEED_HIGH & (((uint64_t)1 << (8 * k)) - 1);

			fields += swar_sum(lanes + (comma >> 7));
			i += k;
			goto out;
		}
		fields += swar_sum(lanes);
	}
	for (; i < n && (p[i] == ',' || !feed_special(p[i])); i++)
		fields += p[i] == ',';
out:
	if (i)
		c->field_bytes = p[i - 1] != ',';
	/*
	 * The first field past the header's count starts after its comma:
	 * find that comma again, once a record.
	 */
	if (c->ncols && !c->extra_col && c->fields < c->ncols &&
	    fields >= c->ncols) {
		size_t left = c->ncols - c->fields;
		size_t j = 0;

		for (;; j++)
			if (p[j] == ',' && !--left)
				break;
		c->extra_col = c->col + j + 2;
	}
	c->fields = fields;
	c->col += i;
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
