/* SPDX-License-Identifier: MIT */
/*
 * Unit test of the record loop's SSE4.1 number reader (csv_simd.h)
 * against the loop for any CPU: both are csv.c's scan_rows(), chosen by
 * CSV_CPU_SSE41(), which this test defines so that it can scan each
 * random input both ways and compare everything csv_scan() answers:
 * error, line, column and message, and each column's type, counts,
 * mean, deviation, bounds, distinct count and classes, bit for bit, and
 * the float matrix.  The fields are made to hit the reader's edges:
 * 13 to 17 bytes, signs, no digit, a '.' first or last or twice, an
 * exponent, leading zeros, spaces, CR, quotes, the last 16 bytes of the
 * input (where the reader must not look), and field limits of 9 to 16
 * bytes.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tap.h"

#include "csvboth.h"

static uint64_t next(uint64_t *r)
{
	*r ^= *r << 13;
	*r ^= *r >> 7;
	*r ^= *r << 17;
	return *r;
}

static size_t digits(char *o, uint64_t *r, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		o[i] = (char)('0' + next(r) % 10);
	return n;
}

/* One field at o, mostly numbers of every length around 16. */
static size_t field(char *o, uint64_t *r)
{
	static const char *const odd[] = {
		"", "-", "+", ".", "-.", "1.2.3", "1e5", "2E-3", "12e", " 4",
		"5 ", "\"7\"", "x", "1-2", "--1", "+.5", "-0", "-0.0", "0.",
		"NA", "nan", "inf", "00000000000000001", "9999999999999999",
		"-99999999999999.9", "123456789012345", "1234567890123456",
		"1:2", "3/4", "12:30", "9:", "/5",
	};
	size_t n = 0;
	uint64_t k = next(r) % 16;

	if (k == 0) {
		const char *s = odd[next(r) % (sizeof(odd) / sizeof(odd[0]))];

		memcpy(o, s, strlen(s));
		return strlen(s);
	}
	if (k < 4)
		o[n++] = k == 1 ? '+' : '-';
	n += digits(o + n, r, (unsigned)(next(r) % 10));
	if (next(r) % 4) {
		o[n++] = '.';
		n += digits(o + n, r, (unsigned)(next(r) % 10));
	}
	if (next(r) % 50 == 0)
		o[n++] = 'e';
	return n;
}

/* A CSV of 3 columns, sometimes ragged, sometimes with CRLF. */
static size_t make(char *buf, uint64_t *r, unsigned rows)
{
	bool ragged = next(r) % 4 == 0;
	size_t n = 0;
	unsigned i;
	unsigned c;

	memcpy(buf, "a,b,c\n", 6);
	n = 6;
	for (i = 0; i < rows; i++) {
		unsigned nc = ragged && next(r) % 100 == 0 ?
				      2 + (unsigned)(next(r) % 3) : 3;

		for (c = 0; c < nc; c++) {
			n += field(buf + n, r);
			if (c + 1 < nc)
				buf[n++] = ',';
		}
		if (next(r) % 40 == 0)
			buf[n++] = '\r';
		buf[n++] = '\n';
	}
	return n;
}

int main(void)
{
	static char buf[400 * 3 * 24 + 64];
	struct csv_limits short_field = { 0 };
	uint64_t r = 0x9e3779b97f4a7c15ULL;
	unsigned differ = 0;
	unsigned failed = 0;
	unsigned round;
	bool f;

	if (!CSV_SSE41 || !__builtin_cpu_supports("sse4.1"))
		return skip_all("no SSE4.1 here");
	for (round = 0; round < 4000; round++) {
		size_t len = make(buf, &r, 1 + (unsigned)(next(&r) % 400));

		/* Inputs cut anywhere: the reader's last 16 bytes. */
		if (round % 3 == 0)
			len -= next(&r) % 20 % len;
		if (!csv_both_ways(buf, len, NULL, &f))
			differ++;
		failed += f;
		/* Fields of at most 9 + round % 8 bytes: each side of 15. */
		short_field.max_field = 9 + round % 8;
		if (!csv_both_ways(buf, len, &short_field, &f))
			differ++;
	}
	printf("# %u of 8000 scans differ, %u of 4000 inputs fail\n", differ, failed);
	ok(differ == 0, "random CSVs scan the same with SSE4.1 and without");
	ok(failed > 100 && failed < 3900,
	   "both errors and successes were compared");
	return done();
}
