/* SPDX-License-Identifier: MIT */
/*
 * Unit test of csv.c's word-at-a-time counts (share_count() and its
 * SSE2 bulk, quotes_odd(), count_lfs()) against a loop over the bytes,
 * on random inputs at every alignment, across the 255-block flushes of
 * the byte lanes, with bytes that differ from a quote or an LF only in
 * the top bit.  They are static: the test builds csv.c in.  A wrong
 * count rarely shows in a scan's answers (a split whose cut is wrong
 * fails and is scanned again in one pass), only in its time: hence here.
 * Also csv_feed()'s 8-byte words (SWAR), the fast path where there is no
 * SSE2 (aarch64, i386): csvword_feed.c.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tap.h"

#include "csv.c"

/* csvword_feed.c: csv_feed.c built in without SSE2 */
int feed_words_bad(void);

static uint64_t next(uint64_t *r)
{
	*r ^= *r << 13;
	*r ^= *r >> 7;
	*r ^= *r << 17;
	return *r;
}

int main(void)
{
	static const char alphabet[] = { '"', '\n', (char)0xa2, (char)0x8a,
					 'a', ',', '1', '\r' };
	static char buf[20000 + 16];
	uint64_t r = 88172645463325252ULL;
	int odd_bad = 0;
	int lf_bad = 0;
	int round;

	for (round = 0; round < 4000; round++) {
		size_t off = (size_t)round % 16;
		size_t n = (size_t)(next(&r) % 20000);
		uint64_t lfs = 0;
		uint64_t want_lfs = 0;
		bool want_odd = false;
		size_t i;

		/* mostly plain bytes, as in a file of numbers */
		for (i = 0; i < n; i++) {
			uint64_t k = next(&r) % 64;

			buf[off + i] = k < 8 ? alphabet[k] : '7';
			want_odd ^= buf[off + i] == '"';
			want_lfs += buf[off + i] == '\n';
		}
		odd_bad += share_count(buf + off, buf + off + n, &lfs) !=
			   want_odd;
		odd_bad += quotes_odd(buf + off, buf + off + n) != want_odd;
		lf_bad += lfs != want_lfs;
		lf_bad += count_lfs(buf + off, buf + off + n) != want_lfs;
	}
	is_int(odd_bad, 0, "quote parity as the bytes give it");
	is_int(lf_bad, 0, "LF count as the bytes give it");
	is_int(feed_words_bad(), 0,
	       "csv_feed's words agree with its bytes, past 255 commas");
	return done();
}
