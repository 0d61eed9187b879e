/* SPDX-License-Identifier: MIT */
/*
 * One CSV value, as csv_scan() and every other reader of fields in mlfs
 * judge it: numbers (csv_parse_double(), and csv_num_slow() behind the
 * inline num_parse() of csv_int.h), the missing tokens (csv_is_missing())
 * and dates and times (csv_parse_time()).
 *
 * No global state: any thread.
 */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "csv_int.h"

/* Significant digits csv_num_slow() keeps; see there. */
#define NUM_SLOW_DIGITS 780

/*
 * Numbers.  strtod() is correct but slow for the record loop: it needs a NUL
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
 * (more than 19 digits, large exponents) goes to csv_num_slow().  That
 * fast path is num_parse(), in csv_int.h so that the record loop of
 * csv.c can inline it.
 */

#if LDBL_MANT_DIG >= 64
/* Powers of ten a 64-bit mantissa holds exactly (5^27 < 2^63). */
static const long double pow10_ld[] = {
	1e0L,  1e1L,  1e2L,  1e3L,  1e4L,  1e5L,  1e6L,  1e7L,
	1e8L,  1e9L,  1e10L, 1e11L, 1e12L, 1e13L, 1e14L, 1e15L,
	1e16L, 1e17L, 1e18L, 1e19L, 1e20L, 1e21L, 1e22L, 1e23L,
	1e24L, 1e25L, 1e26L, 1e27L,
};

/*
 * m x 10^e10 for a mantissa of up to 19 digits and a small exponent,
 * what "%.17g" prints (mlfs's own outputs are full of them), where
 * Clinger's fast path does not reach (m > 2^53).  In a 64-bit mantissa m
 * and 10^|e10| are exact, so one multiply or divide rounds once, and
 * rounding that to a double is correct unless it lies exactly halfway
 * between two doubles, where the first rounding may have decided the
 * second: false then, and strtod() decides.  strtod() after snprintf()
 * was 60% of csv_scan() on such a file (380,954 x 21, 111 MB: 1.3 s).
 */
bool csv_num_ld(uint64_t m, int64_t e10, bool neg, double *out)
{
	long double r;
	double d;

	if (e10 < -27 || e10 > 27 || !m)
		return false;
	r = e10 < 0 ? (long double)m / pow10_ld[-e10]
		    : (long double)m * pow10_ld[e10];
#if LDBL_MANT_DIG == 64 && (defined(__x86_64__) || defined(__i386__))
	{
		/* x87: the significand, integer bit included, comes first;
		 * its low 11 bits are what a double drops */
		uint64_t sig;

		memcpy(&sig, &r, sizeof(sig));
		if ((sig & 0x7ff) == 0x400)
			return false;
		d = (double)r;
	}
#else
	d = (double)r;
	if ((long double)d != r) {
		long double gap = (long double)nextafter(
					  d, (long double)d < r ? INFINITY
								: -INFINITY) -
				  (long double)d;

		if (2 * (r - (long double)d) == gap)
			return false;
	}
#endif
	*out = neg ? -d : d;
	return true;
}
#else
bool csv_num_ld(uint64_t m, int64_t e10, bool neg, double *out)
{
	(void)m;
	(void)e10;
	(void)neg;
	(void)out;
	return false;
}
#endif

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
double csv_num_slow(const char *p, const char *end)
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
#if LDBL_MANT_DIG >= 64
	if (kept <= 19) {
		uint64_t m = 0;

		for (size_t i = neg ? 1 : 0; i < n; i++)
			m = m * 10 + (uint64_t)(buf[i] - '0');
		if (csv_num_ld(m, e10, neg, &v))
			return v;
	}
#endif
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

bool csv_parse_double(const char *s, size_t len, double *out)
{
	const char *end = s + len;
	struct num_parts np;
	double v;

	while (s < end && is_blank(*s))
		s++;
	while (end > s && is_blank(end[-1]))
		end--;
	/* the value only of a whole field: see num_scan() */
	if (s == end || num_scan(s, end, &np) != end)
		return false;
	v = num_value(s, end, &np);
	if (isnan(v))
		return false;
	*out = v;
	return true;
}

size_t csv_numbers(const char *p, const char *end, const char **fields,
		   size_t *flen, double *num, size_t max, const char **next,
		   bool *ended)
{
	size_t n = 0;

	*ended = false;
	while (n < max && p < end) {
		struct num_parts np;
		const char *r;
		double v;

		/* a number starts so; a blank, a quote or a letter does not */
		if (!is_digit(*p) && *p != '-' && *p != '+' && *p != '.')
			break;
		r = num_scan(p, end, &np);
		if (r == p || (r < end && *r != ','))
			break;
		v = num_value(p, r, &np);
		if (!isfinite(v))
			break;
		fields[n] = p;
		flen[n] = (size_t)(r - p);
		num[n] = v;
		n++;
		if (r == end) {
			*ended = true;
			p = r;
			break;
		}
		p = r + 1;
	}
	*next = p;
	return n;
}

/* "NA", "N/A", "NaN", "null", "None", "?" in any case, or nothing. */
static bool is_missing(const char *p, size_t n)
{
	static const char *const tokens[] = { "na",   "n/a",  "nan",
					      "null", "none", "?" };
	char low[CSV_MISSING_MAX];
	size_t i;

	if (!n)
		return true;
	if (n > sizeof(low))
		return false;
	/* every token starts with n or ?: a number or a word ends here */
	if ((p[0] | 0x20) != 'n' && p[0] != '?')
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
