/* SPDX-License-Identifier: MIT */
/*
 * Shortest round-trip reals in JSON text (jsonout.h).  jansson prints
 * every real with one precision (17 digits by default, for round trips),
 * so the text is dumped as jansson does it and each real number token,
 * outside strings, is printed again with the fewest digits (1 to 17) that
 * strtod reads back to the same double.  num_shortest does the same for
 * one number, a double or a float (predict's CSV answers).  Pure
 * functions; any thread.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "jsonout.h"
#include "pow10.h"
#include "strbuf.h"

/* Powers of ten; exact up to 1e22, correctly rounded beyond. */
static const double p10[] = {
	1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,
	1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
	1e20, 1e21, 1e22, 1e23, 1e24, 1e25, 1e26, 1e27, 1e28, 1e29,
	1e30, 1e31, 1e32, 1e33, 1e34, 1e35, 1e36, 1e37, 1e38, 1e39,
	1e40, 1e41, 1e42, 1e43, 1e44, 1e45,
};

#define P10_MAX 45

/* a * 10^k for |k| <= 2 * P10_MAX, within a few ulps. */
static double scale10(double a, int k)
{
	if (k > P10_MAX)
		return a * p10[P10_MAX] * p10[k - P10_MAX];
	if (k >= 0)
		return a * p10[k];
	if (k < -P10_MAX)
		return a / p10[P10_MAX] / p10[-k - P10_MAX];
	return a / p10[-k];
}

/* Significant digits of a %g text (leading and trailing zeros not). */
static int sig_digits(const char *s)
{
	int first = -1, last = -1, i = 0;

	for (; *s && *s != 'e'; s++) {
		if (*s < '0' || *s > '9')
			continue;
		if (*s != '0') {
			if (first < 0)
				first = i;
			last = i;
		}
		i++;
	}
	return first < 0 ? 1 : last - first + 1;
}

/*
 * The smallest %.Ng (N = 1..digits) of v that reads back as v.  For a
 * double, %.15g first: when it reads back, its digits without trailing
 * zeros are the shortest (a double holds 15 decimal digits exactly, so
 * the nearest 15-digit decimal is the shortest one padded), and one more
 * printf at that N gives the text; else 16, then 17.  Two or three
 * printf calls instead of up to 17 (offline.csv wrote 6.5 us a row with
 * the loop from 1, most of it here).
 */
static size_t shortest_printf(double v, int digits, char *out)
{
	int n = 0;

	if (digits > 9 && isfinite(v)) {
		for (int p = 15; p <= 17; p++) {
			n = snprintf(out, NUM_SHORTEST_MAX, "%.*g", p, v);
			if (p < 17 && strtod(out, NULL) != v)
				continue;
			if (p == 15 && sig_digits(out) < 15)
				n = snprintf(out, NUM_SHORTEST_MAX, "%.*g",
					     sig_digits(out), v);
			return (size_t)n;
		}
	}
	for (int p = 1; p <= digits; p++) {
		n = snprintf(out, NUM_SHORTEST_MAX, "%.*g", p, v);
		if (digits > 9 ? strtod(out, NULL) == v
			       : strtof(out, NULL) == (float)v)
			break;
	}
	return (size_t)n;
}

/* 10^k for k = -46..40 (p10_all[k + 46]), each the nearest double. */
static const double p10_all[] = {
	1e-46, 1e-45, 1e-44, 1e-43, 1e-42, 1e-41, 1e-40,
	1e-39, 1e-38, 1e-37, 1e-36, 1e-35, 1e-34, 1e-33,
	1e-32, 1e-31, 1e-30, 1e-29, 1e-28, 1e-27, 1e-26,
	1e-25, 1e-24, 1e-23, 1e-22, 1e-21, 1e-20, 1e-19,
	1e-18, 1e-17, 1e-16, 1e-15, 1e-14, 1e-13, 1e-12,
	1e-11, 1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5,
	1e-4, 1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2,
	1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
	1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
	1e17, 1e18, 1e19, 1e20, 1e21, 1e22, 1e23,
	1e24, 1e25, 1e26, 1e27, 1e28, 1e29, 1e30,
	1e31, 1e32, 1e33, 1e34, 1e35, 1e36, 1e37,
	1e38, 1e39, 1e40,
};

/*
 * (int)floor(log10(a)) for a float a > 0 (taken as a double), without
 * log10 where a is not within 1e-9 of a power of ten: there log10's
 * error (an ulp or two) cannot cross an integer, and comparing with the
 * table's powers (each within 1e-16 of 10^k) decides as 10^k would.
 * a is m 2^e, m in [0.5, 1): floor(log10(a)) is k or k + 1 for k =
 * floor((e - 1) log10(2)), whose product is never within 0.004 of an
 * integer (but 0) for the exponents of a float.
 */
static int floor_log10(double a)
{
	uint64_t bits;
	int e, k;

	memcpy(&bits, &a, sizeof(bits));
	e = (int)((bits >> 52) & 0x7FF) - 1022;
	k = (int)floor((double)(e - 1) * 0.30102999566398120);
	if (k < -46 || k + 2 > 40)
		return (int)floor(log10(a));
	for (int j = k; j <= k + 2; j++)
		if (fabs(a - p10_all[j + 46]) <= 1e-9 * a)
			return (int)floor(log10(a));
	return a >= p10_all[k + 1 + 46] ? k + 1 : k;
}

/*
 * Does the text s (n bytes) read back as f, as strtof reads it?  Without
 * strtof's big-number arithmetic where a double decides: the correctly
 * rounded double d of the text (csv_parse_double) rounds to the same
 * float as the text itself unless d is halfway between two floats.  (A
 * float's midpoint is a double; one strictly between the text's value
 * and d would be nearer to the text than d.)  Subnormal floats, whose
 * midpoints are others, and the halfway case go to strtof.
 */
static bool float_reads_back(const char *s, size_t n, float f)
{
	const uint64_t low = ((uint64_t)1 << 29) - 1; /* bits a float drops */
	uint64_t bits;
	double d;

	if (!csv_parse_double(s, n, &d) || !(fabs(d) >= FLT_MIN) ||
	    !(fabs(d) <= FLT_MAX))
		return strtof(s, NULL) == f;
	memcpy(&bits, &d, sizeof(bits));
	if ((bits & low) == (uint64_t)1 << 28)
		return strtof(s, NULL) == f;
	return (float)d == f;
}

/*
 * The same for a float, without printf: predict prints every probability
 * with it, and one snprintf("%g") costs more than scoring a row of a small
 * model.  The float is exact in a double, so each rounding to p
 * significant digits (p = 1..9; 9 always reads back) comes from one
 * scaling, and is tried by converting it back.  Scaling by an inexact
 * power of ten, or a candidate close to halfway between two floats, can
 * misjudge in rare cases, so the text is read back once (as strtof would:
 * float_reads_back) and, if it does not match, printf's answer is used
 * instead.
 */
static size_t shortest_float(float f, char *out)
{
	double a = fabs((double)f);
	uint64_t c = 0;
	int e, p, nd = 0, x, n = 0;
	char dig[24];

	if (!isfinite(f) || f == 0)
		return shortest_printf(f, 9, out);
	e = floor_log10(a);
	/* log10 can be one off near a power of ten: 9 digits decide */
	c = (uint64_t)llrint(scale10(a, 8 - e));
	if (c >= 1000000000u)
		e++;
	else if (c < 100000000u)
		e--;
	for (p = 1; p <= 9; p++) {
		c = (uint64_t)llrint(scale10(a, p - 1 - e));
		if (p == 9 || (float)scale10((double)c, e - p + 1) == (float)a)
			break;
	}
	/* c has p digits, or p + 1 when rounding carried (9.99 -> 10);
	 * llrint rounds a tie to even, as printf does */
	for (uint64_t t = c; t; t /= 10)
		dig[sizeof(dig) - 1 - nd++] = (char)('0' + t % 10);
	memmove(dig, dig + sizeof(dig) - nd, (size_t)nd);
	x = e + (nd > p); /* the exponent of the first digit */
	while (nd > 1 && dig[nd - 1] == '0')
		nd--;
	if (f < 0)
		out[n++] = '-';
	if (x < -4 || x >= nd) { /* as %g does */
		out[n++] = dig[0];
		if (nd > 1)
			out[n++] = '.';
		memcpy(out + n, dig + 1, (size_t)nd - 1);
		n += nd - 1;
		out[n++] = 'e';
		out[n++] = x < 0 ? '-' : '+';
		x = x < 0 ? -x : x;
		if (x >= 100)
			out[n++] = (char)('0' + x / 100);
		out[n++] = (char)('0' + x / 10 % 10);
		out[n++] = (char)('0' + x % 10);
	} else if (x >= 0) {
		memcpy(out + n, dig, (size_t)x + 1);
		n += x + 1;
		if (nd > x + 1) {
			out[n++] = '.';
			memcpy(out + n, dig + x + 1, (size_t)(nd - x - 1));
			n += nd - x - 1;
		}
	} else {
		out[n++] = '0';
		out[n++] = '.';
		for (int z = 0; z < -x - 1; z++)
			out[n++] = '0';
		memcpy(out + n, dig, (size_t)nd);
		n += nd;
	}
	out[n] = '\0';
	if (!float_reads_back(out, (size_t)n, f))
		return shortest_printf(f, 9, out);
	return (size_t)n;
}


/*
 * %.Pg without printf, for P from 15 to 17 and |v| from 1e-4 to under
 * 10^P (what %g prints without an exponent at P digits): v is m x 2^e
 * exactly, and its P significant digits are m x 10^s / 2^-e for s = P - 1
 * - (the decimal exponent), which fits 128 bits (m < 2^53, 10^s <= 10^20,
 * 2^-e < 2^128 here), rounded half to even on the exact remainder as
 * glibc's printf rounds.  The same bytes as printf; 0 (out untouched)
 * outside that range, for the caller to use printf.  glibc's %.17g,
 * big-number arithmetic on every call, took 0.35 us a number: most of
 * writing a prepared table of synthetic rows; %.15g then strtod, the
 * shortest text of a double, was 30 % of a feature set's sync.
 */
#ifdef __SIZEOF_INT128__
__extension__ typedef unsigned __int128 g17_u128;

static size_t g_fixed(double v, int P, char *out)
{
	const uint64_t lo = pow10_u64[P - 1], hi = pow10_u64[P];
	g17_u128 num, q, rem, half;
	uint64_t bits, m, d;
	int e, k, s, n = 0, nd;
	char dig[17];

	memcpy(&bits, &v, sizeof(bits));
	e = (int)((bits >> 52) & 0x7FF);
	if (e == 0 || e == 0x7FF)
		return 0; /* zero, subnormal, inf, nan */
	if (!(fabs(v) >= 1e-4 && fabs(v) < (double)hi))
		return 0;
	m = (bits & ((1ULL << 52) - 1)) | (1ULL << 52);
	e -= 1075;
	k = (int)floor(log10(fabs(v)));
	/* log10 may be one off near a power of ten: the truncated digits
	 * decide (at most two tries each way) */
	for (int tries = 0;; tries++) {
		if (tries > 4 || k < -5 || k > P)
			return 0;
		s = P - 1 - k;
		if (s < 0 || s > 20)
			return 0;
		num = (g17_u128)m;
		if (s > 19) {
			num *= pow10_u64[19];
			num *= 10;
		} else {
			num *= pow10_u64[s];
		}
		if (e >= 0) {
			q = num << e;
			rem = 0;
			half = 1;
		} else {
			q = num >> -e;
			rem = num & (((g17_u128)1 << -e) - 1);
			half = (g17_u128)1 << (-e - 1);
		}
		if (q >= hi)
			k++;
		else if (q < lo)
			k--;
		else
			break;
	}
	if (rem > half || (rem == half && (q & 1)))
		q++;
	if (q == hi) { /* 9.99...95 rounds up a decade */
		q = lo;
		k++;
	}
	if (k < -4 || k > P - 1)
		return 0;
	d = (uint64_t)q;
	for (int i = P - 1; i >= 0; i--) {
		dig[i] = (char)('0' + d % 10);
		d /= 10;
	}
	nd = P;
	while (nd > 1 && dig[nd - 1] == '0')
		nd--;
	if (v < 0)
		out[n++] = '-';
	if (k >= 0) {
		memcpy(out + n, dig, (size_t)k + 1);
		n += k + 1;
		if (nd > k + 1) {
			out[n++] = '.';
			memcpy(out + n, dig + k + 1, (size_t)(nd - k - 1));
			n += nd - k - 1;
		}
	} else {
		out[n++] = '0';
		out[n++] = '.';
		for (int z = 0; z < -k - 1; z++)
			out[n++] = '0';
		memcpy(out + n, dig, (size_t)nd);
		n += nd;
	}
	out[n] = '\0';
	return (size_t)n;
}
#else
static size_t g_fixed(double v, int P, char *out)
{
	(void)v;
	(void)P;
	(void)out;
	return 0; /* no 128-bit integers: printf */
}
#endif

/*
 * The shortest text of a double as shortest_printf's first loop finds
 * it (%.15g, %.16g, then %.17g, the first that reads back), printed by
 * g_fixed and read back by csv_parse_double (exact, as strtod); 0 where
 * g_fixed cannot print it.
 */
static size_t shortest_fixed(double v, char *out)
{
	for (int p = 15; p <= 17; p++) {
		size_t n = g_fixed(v, p, out);
		double back;

		if (!n)
			return 0;
		if (p < 17 && !(csv_parse_double(out, n, &back) && back == v))
			continue;
		/* %.15g of fewer digits is printf'd again at them, and %g
		 * takes an exponent once the integer part is longer */
		if (p == 15 && sig_digits(out) < 15 &&
		    (int)strcspn(out + (out[0] == '-'), ".") - 1 >=
			    sig_digits(out))
			return 0;
		return n;
	}
	return 0;
}

size_t num_shortest(double v, int digits, char *out)
{
	size_t n;

	if (digits <= 9)
		return shortest_float((float)v, out);
	n = shortest_fixed(v, out);
	return n ? n : shortest_printf(v, 17, out);
}

size_t num_g17(double v, char *out)
{
	size_t n = g_fixed(v, 17, out);

	if (n)
		return n;
	return (size_t)snprintf(out, NUM_SHORTEST_MAX, "%.17g", v);
}

/* The shortest %.Ng of v that reads back as v, into out, as a real. */
static void shortest(double v, char *out, size_t outlen)
{
	num_shortest(v, 17, out);
	/* a real stays a real: "5" would read back as an integer */
	if (!strpbrk(out, ".eEn") && strlen(out) + 2 < outlen)
		strcat(out, ".0");
}

char *json_dumps_short(const json_t *j, size_t flags)
{
	char *in = json_dumps(j, flags), *out;
	size_t n, o = 0;
	bool str = false;

	if (!in)
		return NULL;
	n = strlen(in);
	out = malloc(n + 1); /* never longer: 17 digits is jansson's most */
	if (!out) {
		free(in);
		return NULL;
	}
	for (size_t i = 0; i < n;) {
		char c = in[i];

		if (str) {
			out[o++] = c;
			i++;
			if (c == '\\' && i < n)
				out[o++] = in[i++];
			else if (c == '"')
				str = false;
			continue;
		}
		if (c == '"') {
			str = true;
			out[o++] = in[i++];
			continue;
		}
		if (c == '-' || (c >= '0' && c <= '9')) {
			size_t k = i + 1;
			bool real = false;
			char num[40];

			while (k < n && strchr("0123456789+-.eE", in[k])) {
				real = real || strchr(".eE", in[k]);
				k++;
			}
			if (real && k - i < sizeof(num)) {
				char fmt[40];

				memcpy(num, in + i, k - i);
				num[k - i] = '\0';
				shortest(strtod(num, NULL), fmt, sizeof(fmt));
				if (strlen(fmt) <= k - i) {
					memcpy(out + o, fmt, strlen(fmt));
					o += strlen(fmt);
					i = k;
					continue;
				}
			}
			memcpy(out + o, in + i, k - i);
			o += k - i;
			i = k;
			continue;
		}
		out[o++] = in[i++];
	}
	out[o] = '\0';
	free(in);
	return out;
}

int json_dump_file_short(const json_t *j, const char *path, size_t flags)
{
	char *text = json_dumps_short(j, flags);
	FILE *fp;
	int rc = 0;

	if (!text)
		return -ENOMEM;
	fp = fopen(path, "we");
	if (!fp) {
		free(text);
		return -errno;
	}
	if (fputs(text, fp) < 0)
		rc = -EIO;
	if (fclose(fp) != 0 && rc == 0)
		rc = -EIO;
	free(text);
	return rc;
}

void sb_json_string(struct strbuf *sb, const char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t run = 0;

	sb_append(sb, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		sb_append(sb, p + run, i - run);
		run = i + 1;
		if (c == '"' || c == '\\') {
			esc[1] = (char)c;
			sb_append(sb, esc, 2);
		} else if (c == '\n') {
			sb_append(sb, "\\n", 2);
		} else {
			sb_append(sb, esc, 6);
		}
	}
	sb_append(sb, p + run, n - run);
	sb_append(sb, "\"", 1);
}

void sb_prom_family(struct strbuf *sb, const char *name, const char *type,
		    const char *help)
{
	sb_printf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void sb_put_json(struct strbuf *sb, const json_t *j, size_t flags)
{
	char *text = json_dumps(j, flags);

	if (!text) {
		if (!sb->err)
			sb->err = -ENOMEM;
		return;
	}
	sb_puts(sb, text);
	free(text);
}

/* A family of a merged exposition. */
struct prom_fam {
	char name[200];
	const char *help, *type; /* their lines, in the texts */
	size_t help_len, type_len;
	struct strbuf samples;
};

/* The index of family name (len bytes) in *fams, added if new; -1 when
 * out of memory. */
static long fam_of(struct prom_fam **fams, size_t *n, const char *name,
		   size_t len)
{
	struct prom_fam *f;

	if (len >= sizeof(f->name))
		len = sizeof(f->name) - 1;
	for (size_t i = 0; i < *n; i++)
		if (strlen((*fams)[i].name) == len &&
		    memcmp((*fams)[i].name, name, len) == 0)
			return (long)i;
	f = realloc(*fams, (*n + 1) * sizeof(**fams));
	if (!f)
		return -1;
	*fams = f;
	f = &f[*n];
	memset(f, 0, sizeof(*f));
	memcpy(f->name, name, len);
	return (long)(*n)++;
}

/* Is sample name (len bytes) one of family f's: the name itself, or it
 * with a suffix of its type (_bucket, _sum, _count, _total...)? */
static bool fam_has(const struct prom_fam *f, const char *name, size_t len)
{
	size_t n = strlen(f->name);

	return len >= n && memcmp(name, f->name, n) == 0 &&
	       (len == n || name[n] == '_');
}

void prom_merge(const char *const *texts, const size_t *lens, size_t n,
		struct strbuf *out)
{
	struct prom_fam *fams = NULL;
	size_t nf = 0;

	for (size_t t = 0; t < n; t++) {
		const char *at = texts[t], *end = texts[t] + lens[t];
		long cur = -1; /* the family the text opened last */

		while (at < end) {
			const char *nl = memchr(at, '\n', (size_t)(end - at));
			size_t l = nl ? (size_t)(nl - at) : (size_t)(end - at);
			const char *line = at;
			struct prom_fam *f;
			size_t sl;
			long k;

			at += l + 1;
			if (l == 0)
				continue;
			if (l > 7 && (strncmp(line, "# HELP ", 7) == 0 ||
				      strncmp(line, "# TYPE ", 7) == 0)) {
				cur = fam_of(&fams, &nf, line + 7,
					     strcspn(line + 7, " \n"));
				if (cur < 0)
					continue;
				f = &fams[cur];
				if (line[2] == 'H' && !f->help) {
					f->help = line;
					f->help_len = l;
				} else if (line[2] == 'T' && !f->type) {
					f->type = line;
					f->type_len = l;
				}
				continue;
			}
			if (line[0] == '#')
				continue;
			sl = strcspn(line, "{ ");
			k = cur >= 0 && fam_has(&fams[cur], line, sl)
				    ? cur
				    : fam_of(&fams, &nf, line, sl);
			if (k < 0)
				continue;
			sb_append(&fams[k].samples, line, l);
			sb_puts(&fams[k].samples, "\n");
			if (k != cur)
				cur = -1; /* an untyped family of its own */
		}
	}
	for (size_t i = 0; i < nf; i++) {
		if (fams[i].help) {
			sb_append(out, fams[i].help, fams[i].help_len);
			sb_puts(out, "\n");
		}
		if (fams[i].type) {
			sb_append(out, fams[i].type, fams[i].type_len);
			sb_puts(out, "\n");
		}
		sb_append(out, fams[i].samples.buf ? fams[i].samples.buf : "",
			  fams[i].samples.len);
		sb_free(&fams[i].samples);
	}
	free(fams);
}
