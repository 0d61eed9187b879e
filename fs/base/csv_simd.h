/* SPDX-License-Identifier: MIT */
/*
 * A number field read 16 bytes at a time with SSE4.1 (csv.c only): the
 * record loop's fast_field() for x86-64 cores that have it, chosen at run
 * time (scan_rows(); the loop is compiled twice, csv_rows.h).
 *
 * The scalar fast_field() finds a number's end and value a digit run at a
 * time (8-byte words), and the next field cannot start before it ends: a
 * scan of numbers spent about 150 of its 255 instructions a field there.
 * Here one load classifies all 16 bytes (digits, the '.', the delimiter),
 * the '.' is closed up and the digits moved to the end of the vector with
 * two shuffles, and three multiply-adds sum them: about 70 instructions
 * with the checks, and csv_bench stats1 (7 float columns and a label, one
 * thread) 1.94 s → 1.64 s a GiB.  The answers are those of num_scan() and
 * num_value(): at most 15 characters here, so at most 15 digits, whose
 * integer is below 2^53 and whose scale (at most 10^14) a double holds
 * exactly: one rounding, by the division, as there.  Anything else
 * (longer, an exponent, two dots, no digit, no ',' or LF right after)
 * returns -1 and goes the scalar way.  Tried and dropped: the clone for
 * AVX2 and BMI2 instead of SSE4.1 (2%, within the noise); multiplying by
 * 10^-k instead of dividing (4% faster, but not correctly rounded).
 */
#ifndef MLFS_FS_CSV_SIMD_H
#define MLFS_FS_CSV_SIMD_H

#if defined(__x86_64__) && defined(__GNUC__)
#define CSV_SSE41 1
#include <smmintrin.h>

#define CSV_SSE41_FN __attribute__((target("sse4.1")))

/* Lane j takes lane j + 1 from the '.' at lane d on (d 16: no '.'). */
#define DC(d, j) ((j) + ((j) >= (d)) < 16 ? (j) + ((j) >= (d)) : 0x80)
#define DCROW(d) { DC(d, 0), DC(d, 1), DC(d, 2), DC(d, 3), DC(d, 4), \
	DC(d, 5), DC(d, 6), DC(d, 7), DC(d, 8), DC(d, 9), DC(d, 10), \
	DC(d, 11), DC(d, 12), DC(d, 13), DC(d, 14), DC(d, 15) }
static const uint8_t simd_dot_close[17][16] __attribute__((aligned(16))) = {
	DCROW(0), DCROW(1), DCROW(2), DCROW(3), DCROW(4), DCROW(5),
	DCROW(6), DCROW(7), DCROW(8), DCROW(9), DCROW(10), DCROW(11),
	DCROW(12), DCROW(13), DCROW(14), DCROW(15), DCROW(16),
};
#undef DCROW
#undef DC

/* The first n lanes moved to the end, the lanes before them zero. */
#define RA(n, j) ((j) >= 16 - (n) ? (j) - (16 - (n)) : 0x80)
#define RAROW(n) { RA(n, 0), RA(n, 1), RA(n, 2), RA(n, 3), RA(n, 4), \
	RA(n, 5), RA(n, 6), RA(n, 7), RA(n, 8), RA(n, 9), RA(n, 10), \
	RA(n, 11), RA(n, 12), RA(n, 13), RA(n, 14), RA(n, 15) }
static const uint8_t simd_right_align[17][16] __attribute__((aligned(16))) = {
	RAROW(0), RAROW(1), RAROW(2), RAROW(3), RAROW(4), RAROW(5),
	RAROW(6), RAROW(7), RAROW(8), RAROW(9), RAROW(10), RAROW(11),
	RAROW(12), RAROW(13), RAROW(14), RAROW(15), RAROW(16),
};
#undef RAROW
#undef RA

/*
 * num_simd: the number that fills the field at p (16 bytes readable)
 * and ends at a ',' or an LF: its length, its value in *out and *eol
 * (the LF), or -1 (see above).
 */
static inline CSV_HOT CSV_SSE41_FN int num_simd(const char *p, double *out,
						 bool *eol)
{
	const __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
	const __m128i t = _mm_sub_epi8(x, _mm_set1_epi8('0'));
	const __m128i dig = _mm_cmpeq_epi8(_mm_min_epu8(t, _mm_set1_epi8(9)),
					   t);
	const unsigned c0 = (unsigned char)p[0];
	const unsigned neg = c0 == '-';
	unsigned dm = (unsigned)_mm_movemask_epi8(dig);
	unsigned pm = (unsigned)_mm_movemask_epi8(
		_mm_cmpeq_epi8(x, _mm_set1_epi8('.')));
	const unsigned lf = (unsigned)_mm_movemask_epi8(
		_mm_cmpeq_epi8(x, _mm_set1_epi8('\n')));
	const unsigned delim = lf | (unsigned)_mm_movemask_epi8(
		_mm_cmpeq_epi8(x, _mm_set1_epi8(',')));
	/* The number's bytes run from lane 0 to n (at most 16). */
	const unsigned n = (unsigned)__builtin_ctz(~(dm | pm | neg |
						     (c0 == '+')));
	unsigned dot, nfrac;
	__m128i z;
	__m128d d;

	dm &= (1u << n) - 1;
	pm &= (1u << n) - 1;
	if (!((delim >> n) & 1) | !dm | ((pm & (pm - 1)) != 0))
		return -1;
	dot = (unsigned)__builtin_ctz(pm | 0x10000); /* 16: none */
	nfrac = n > dot ? n - dot - 1 : 0;
	z = _mm_and_si128(t, dig);
	z = _mm_shuffle_epi8(z, _mm_load_si128((const __m128i *)(const void *)
					       simd_dot_close[dot]));
	z = _mm_shuffle_epi8(z, _mm_load_si128((const __m128i *)(const void *)
					       simd_right_align[n - (pm != 0)]));
	z = _mm_maddubs_epi16(z, _mm_set1_epi16(0x010a));    /* 2 digits */
	z = _mm_madd_epi16(z, _mm_set1_epi32(0x00010064));  /* 4 */
	z = _mm_packus_epi32(z, z);
	z = _mm_madd_epi16(z, _mm_set1_epi32(0x00012710));  /* 8 */
	/* The two halves as doubles: first * 10^8 + second is exact (at
	 * most 15 digits, below 2^53). */
	d = _mm_cvtepi32_pd(z);
	d = _mm_add_sd(_mm_mul_sd(d, _mm_set_sd(1e8)), _mm_unpackhi_pd(d, d));
	d = _mm_div_sd(d, _mm_load_sd(&pow10_exact[nfrac]));
	/* The sign without a branch: in a column of random signs, half of
	 * them were mispredicted. */
	*out = _mm_cvtsd_f64(_mm_xor_pd(d, _mm_castsi128_pd(
		_mm_cvtsi64_si128((int64_t)((uint64_t)neg << 63)))));
	*eol = (lf >> n) & 1;
	return (int)n;
}

#else
#define CSV_SSE41 0
#endif

#endif
