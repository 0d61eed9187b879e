/* SPDX-License-Identifier: MIT */
/*
 * gen_csv: write a numeric CSV for the csv_scan benchmark to stdout:
 * a header and rows of 20 columns of decimals like "-1234.567890"
 * ("%.6f" of values up to 10^4 in size), until at least the requested
 * number of megabytes (10^6 bytes).  Deterministic (fixed xorshift seed),
 * formatted by hand so that writing 500 MB takes a second or two.
 *
 * usage: gen_csv MEGABYTES > file.csv
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NCOLS 20

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Digits of v, most significant first, into p; returns the end. */
static char *put_uint(char *p, uint64_t v, int width)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v || n < width);
	while (n)
		*p++ = tmp[--n];
	return p;
}

int main(int argc, char **argv)
{
	static char buf[1 << 16];
	uint64_t want;
	uint64_t done = 0;
	char *p;
	int c;

	if (argc != 2 || atol(argv[1]) <= 0) {
		fprintf(stderr, "usage: gen_csv MEGABYTES\n");
		return 2;
	}
	want = (uint64_t)atol(argv[1]) * 1000000;
	p = buf;
	for (c = 0; c < NCOLS; c++)
		p += sprintf(p, "%sx%d", c ? "," : "", c);
	*p++ = '\n';
	while (done < want) {
		for (c = 0; c < NCOLS; c++) {
			uint64_t r = next();

			if (c)
				*p++ = ',';
			if (r & 1)
				*p++ = '-';
			r >>= 1;
			/* Magnitudes from 0.000001 to 9999.999999. */
			p = put_uint(p, (r >> 20) % (c % 4 ? 10000 : 10), 1);
			*p++ = '.';
			p = put_uint(p, r % 1000000, 6);
		}
		*p++ = '\n';
		if (p - buf > (long)sizeof(buf) - 1024) {
			fwrite(buf, 1, (size_t)(p - buf), stdout);
			done += (uint64_t)(p - buf);
			p = buf;
		}
	}
	fwrite(buf, 1, (size_t)(p - buf), stdout);
	return ferror(stdout) ? 1 : 0;
}
