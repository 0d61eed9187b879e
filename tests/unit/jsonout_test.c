/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for jsonout (fs/base/jsonout.c): reals print as the shortest
 * decimal that reads back to the same double, strings and integers are
 * left alone, and the text parses back equal; num_shortest prints a
 * float as the shortest decimal that reads back to it (predict's CSV
 * answers), as the printf search would, without printf.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jsonout.h"
#include "strbuf.h"
#include "tap.h"

/* What num_shortest replaces: the smallest %.Ng that reads back. */
static void printf_shortest(float v, char *out, size_t len)
{
	for (int p = 1; p <= 9; p++) {
		snprintf(out, len, "%.*g", p, (double)v);
		if (strtof(out, NULL) == v)
			break;
	}
}

static void test_float(void)
{
	static const struct {
		float v;
		const char *want;
	} cases[] = {
		{ 0.1f, "0.1" },           { 0.5f, "0.5" },
		{ 1.0f, "1" },             { -2.5f, "-2.5" },
		{ 0.0f, "0" },             { -0.0f, "-0" },
		{ 1e-5f, "1e-05" },        { 0.0001f, "0.0001" },
		{ 250000.0f, "2.5e+05" },  { 123456.0f, "123456" },
		{ 0.94998545f, "0.94998544" },
		{ 2.96101e-13f, "2.96101e-13" },
		{ 3.4028235e38f, "3.4028235e+38" },
		{ 1.4e-45f, "1e-45" },     { 469128.625f, "469128.62" },
		{ 0.333333343f, "0.33333334" },
	};
	char got[NUM_SHORTEST_MAX], want[40];
	uint64_t st = 42;
	int bad = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		num_shortest(cases[i].v, 9, got);
		is_str(got, cases[i].want, "a float as the shortest decimal");
	}
	num_shortest(NAN, 9, got);
	is_str(got, "nan", "NaN");
	num_shortest(-INFINITY, 9, got);
	is_str(got, "-inf", "infinity");
	/* any bits: the same text as the printf search */
	for (int i = 0; i < 200000; i++) {
		uint32_t u;
		float v;

		st = st * 6364136223846793005u + 1442695040888963407u;
		u = (uint32_t)(st >> 32);
		if (i % 2)
			u = (u & 0x807fffffu) | (uint32_t)(96 + i % 64) << 23;
		memcpy(&v, &u, sizeof(v));
		if (!isfinite(v))
			continue;
		num_shortest(v, 9, got);
		printf_shortest(v, want, sizeof(want));
		if (strcmp(got, want) != 0 && bad++ < 5)
			printf("# %a: got %s, want %s\n", (double)v, got, want);
	}
	is_int(bad, 0, "200000 floats print as the printf search prints them");
	num_shortest(5.4710000000000001, 17, got);
	is_str(got, "5.471", "a double");
}

/* num_shortest for doubles: the same text as trying %.1g to %.17g. */
static void test_double_search(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	size_t same = 0, total = 0;

	for (int i = 0; i < 300000; i++) {
		char got[NUM_SHORTEST_MAX], want[NUM_SHORTEST_MAX];
		double v;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		if (i % 3 == 0) {
			memcpy(&v, &x, sizeof(v)); /* any bits */
		} else {
			/* numbers as data has them: few digits, any scale */
			v = (double)(int64_t)(x % 2000001) - 1000000;
			v /= (double)(1ULL << (x >> 58)) * (i % 3 == 1 ? 1 : 100);
			if (i % 7 == 0)
				v *= 1e20;
		}
		num_shortest(v, 17, got);
		for (int p = 1; p <= 17; p++) {
			snprintf(want, sizeof(want), "%.*g", p, v);
			if (isnan(v) || strtod(want, NULL) == v)
				break;
		}
		same += strcmp(got, want) == 0;
		total++;
		if (strcmp(got, want) != 0 && total - same < 4)
			printf("# %a: got %s, want %s\n", v, got, want);
	}
	is_int(same, total, "doubles: the shortest %g, as the loop from 1");
}

/* g17_same: num_g17(v) is printf's %.17g of v, byte for byte. */
static bool g17_same(double v, size_t *shown)
{
	char got[NUM_SHORTEST_MAX], want[NUM_SHORTEST_MAX];
	size_t n = num_g17(v, got);

	snprintf(want, sizeof(want), "%.17g", v);
	if (strcmp(got, want) == 0 && n == strlen(want))
		return true;
	if ((*shown)++ < 5)
		printf("# %a: got %s, want %s\n", v, got, want);
	return false;
}

/* num_g17: the same text as %.17g, around every edge of its fast path. */
static void test_g17(void)
{
	static const double cases[] = {
		0.0, -0.0, 1.0, -1.0, 0.1, 0.5, 1e-4, 9.9999999999999991e-05,
		1e-5, 1e16, 1e17, 9.9999999999999984e16, 99999999999999999.0,
		123456789.123, 0.30000000000000004, 1.0 / 3, 2.0 / 3, 1e300,
		5e-324, 2.2250738585072014e-308, NAN, INFINITY, -INFINITY,
		4503599627370496.5, 9007199254740993.0, 0.000123456,
	};
	uint64_t x = 0x2545f4914f6cdd1dULL;
	size_t bad = 0, shown = 0, total = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		bad += !g17_same(cases[i], &shown);
	/* both sides of every power of ten, and a few ulps away */
	for (int k = -8; k <= 19; k++) {
		double p = pow(10, k), up = p, down = p;

		for (int u = 0; u < 4; u++) {
			bad += !g17_same(up, &shown) + !g17_same(-down, &shown);
			up = nextafter(up, INFINITY);
			down = nextafter(down, 0);
			total += 2;
		}
	}
	for (int i = 0; i < 2000000; i++) {
		double v;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		switch (i % 4) {
		case 0: /* any bits */
			memcpy(&v, &x, sizeof(v));
			break;
		case 1: /* any bits of a number the fast path takes */
			v = ldexp((double)(x >> 11) / 9007199254740992.0 + 1,
				  (int)(x % 72) - 16);
			break;
		case 2: /* a CSV's numbers: 6 decimals */
			v = (double)(int64_t)(x % 20000001 - 10000000) / 1e6;
			break;
		default: /* smote's: a + u (b - a) */
			v = (double)(int64_t)(x % 2000001 - 1000000) / 1e6;
			v += (double)(x >> 11) / 9007199254740992.0 * (1 - v);
			break;
		}
		bad += !g17_same(v, &shown);
		total++;
	}
	ok(total > 2000000, "the cases ran");
	is_int(bad, 0, "num_g17 prints 2 million doubles as %.17g does");
}

/* prom_merge: one HELP and TYPE a family, its samples together. */
static void test_prom_merge(void)
{
	const char *a = "# HELP x_total X.\n# TYPE x_total counter\n"
			"x_total{d=\"a\"} 1\n"
			"# HELP h Latency.\n# TYPE h histogram\n"
			"h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
			"h_sum 3\nh_count 2\n";
	const char *b = "# HELP x_total X again.\n# TYPE x_total counter\n"
			"x_total{d=\"b\"} 5\n\nuntyped 7\n"
			"# HELP h Latency.\n# TYPE h histogram\n"
			"h_bucket{le=\"1\"} 0\nh_count 0\n";
	const char *texts[2] = { a, b };
	size_t lens[2] = { strlen(a), strlen(b) };
	struct strbuf out = { 0 };

	prom_merge(texts, lens, 2, &out);
	is_str(out.buf,
	       "# HELP x_total X.\n# TYPE x_total counter\n"
	       "x_total{d=\"a\"} 1\nx_total{d=\"b\"} 5\n"
	       "# HELP h Latency.\n# TYPE h histogram\n"
	       "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\n"
	       "h_count 2\nh_bucket{le=\"1\"} 0\nh_count 0\n"
	       "untyped 7\n",
	       "families merged, in the order they first come");
	sb_free(&out);
}

int main(void)
{
	json_t *j = json_pack(
		"{s:f, s:f, s:f, s:f, s:f, s:s, s:[i, f, f, f], s:i}", "a",
		5.471, "b", 0.1, "c", 1.0, "d", 1e300, "e",
		0.30000000000000004, "s", "5.4710000000000001", "n", 7, 2.5,
		-0.0, 123456789.123, "i", 42);
	char *text = json_dumps_short(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_t *back;

	is_str(text,
	       "{\"a\":5.471,\"b\":0.1,\"c\":1.0,\"d\":1e+300,"
	       "\"e\":0.30000000000000004,\"s\":\"5.4710000000000001\","
	       "\"n\":[7,2.5,-0.0,123456789.123],\"i\":42}",
	       "shortest reals, strings and integers as they are");
	back = text ? json_loads(text, 0, NULL) : NULL;
	ok(back && json_equal(back, j), "reads back equal");
	json_decref(back);
	free(text);
	text = json_dumps_short(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	ok(text && strstr(text, "\"a\": 5.471,\n"), "indented too");
	free(text);
	json_decref(j);
	test_float();
	test_double_search();
	test_g17();
	test_prom_merge();
	return done();
}
