/* SPDX-License-Identifier: MIT */
/*
 * Part of the csvword unit test: csv_feed()'s 8-byte words (SWAR), its
 * fast path where there is no SSE2 (aarch64, i386), which x86-64 builds
 * never run: csv_feed.c is built in here without SSE2, and input fed in
 * one piece must end as it ends fed a byte at a time.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#undef __SSE2__
#include "csv_feed.c"

int feed_words_bad(void);

static uint64_t next(uint64_t *r)
{
	*r ^= *r << 13;
	*r ^= *r >> 7;
	*r ^= *r << 17;
	return *r;
}

/* Feed in[0..n) in one piece (step 0) or a byte at a time (step 1). */
static int feed_in(const char *in, size_t n, size_t ncols, size_t step,
		   struct csv_feed *c, struct problem *pb)
{
	int rc = 0;
	size_t at;

	memset(c, 0, sizeof(*c));
	memset(pb, 0, sizeof(*pb));
	c->ncols = ncols;
	if (!step)
		return csv_feed(c, in, n, pb);
	for (at = 0; at < n && rc == 0; at++)
		rc = csv_feed(c, in + at, 1, pb);
	return rc;
}

/*
 * Records of up to 3,000 bytes, most of them commas (over 255 in a run of
 * words), a header given or read: how many inputs end otherwise in one
 * piece (the words) than a byte at a time.  The main file reports it
 * (tap.h counts in one file).
 */
int feed_words_bad(void)
{
	static const char alphabet[] = ",,,,,,,,,,,,7\n\n\"\r";
	static char buf[3000];
	uint64_t r = 0x9e3779b97f4a7c15ULL;
	struct csv_feed a, b;
	struct problem pa, pbb;
	int bad = 0;
	int round;

	/* the review's case: a header of 257 empty fields, then 1 */
	memset(buf, ',', 256);
	memcpy(buf + 256, "\n1\n", 3);
	bad += feed_in(buf, 259, 0, 0, &a, &pa) != -EINVAL ||
	       pa.line != 2 || pa.col != 2;
	for (round = 0; round < 3000; round++) {
		size_t n = 1 + (size_t)(next(&r) % sizeof(buf));
		size_t ncols = (size_t)(next(&r) % 400);
		size_t i;
		int ra;
		int rb;

		for (i = 0; i < n; i++) {
			uint64_t k = next(&r) % 512;

			buf[i] = k < sizeof(alphabet) - 1 ? alphabet[k]
			       : k < 500		  ? ','
							  : '7';
		}
		ra = feed_in(buf, n, ncols, 0, &a, &pa);
		rb = feed_in(buf, n, ncols, 1, &b, &pbb);
		if (ra != rb || (ra < 0 && (pa.line != pbb.line ||
					    pa.col != pbb.col ||
					    strcmp(pa.msg, pbb.msg))) ||
		    (ra == 0 && (a.fields != b.fields || a.line != b.line ||
				 a.col != b.col || a.ncols != b.ncols ||
				 a.extra_col != b.extra_col)))
			bad++;
	}
	return bad;
}

