/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the ML core (fs/ml/table.c, extract.c, split.c, metrics.c,
 * modelfile.c; mlcore.h): the table parser (quoting, line ends, the
 * BOM, bad input with exact messages and positions), the feature
 * extractor (numeric with missing values, categorical with an unseen
 * value, time, the JSON round trip, malformed JSON), the split
 * (determinism, exact set sizes, stratification), the metrics against
 * values computed with scikit-learn 1.2.1, and the model file (round trip
 * and a table of corruptions, then random garbage).  Table parsing,
 * fitting, JSON loading and model encoding also run with every allocation
 * failing in turn.  Single-threaded.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "csv.h"
#include "failalloc.h"
#include "mlcore.h"
#include "tap.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static bool near(double got, double want, double tol)
{
	return fabs(got - want) <= tol;
}

/* A number from a metrics object; NAN when absent or null. */
static double jnum(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_number(v) ? json_number_value(v) : NAN;
}

static bool field_is(const struct table *t, size_t r, size_t c,
		     const char *want)
{
	size_t k = r * t->ncols + c;

	return t->len[k] == strlen(want) &&
	       !memcmp(t->data + t->off[k], want, t->len[k]);
}

/* ---------------------------------------------------------------- */
/* table_parse */

static void test_table_good(void)
{
	static const char text[] =
		"\xef\xbb\xbf" " id ,\"na\"\"me\",note\r\n"
		"1,\"a,b\",\"x\"\"y\"\"\"\r\n"
		"2,plain,\"multi\nline\"\r\n"
		"3,,NA\n"
		"\n\r\n";
	struct problem pb = { 0 };
	struct table *t;
	double v;
	int rc;

	rc = table_parse(text, sizeof(text) - 1, &t, &pb);
	is_int(rc, 0, "table: parses quotes, CRLF, BOM, embedded newline");
	if (rc < 0)
		return;
	is_int(t->ncols, 3, "table: 3 columns");
	is_int(t->nrows, 3, "table: 3 rows, trailing blank lines ignored");
	is_str(t->names[0], "id", "table: header names are trimmed");
	is_str(t->names[1], "na\"me", "table: header unescaped");
	ok(field_is(t, 0, 1, "a,b"), "table: quoted comma");
	ok(field_is(t, 0, 2, "x\"y\""), "table: doubled quotes undone");
	ok(field_is(t, 1, 2, "multi\nline"), "table: embedded newline");
	ok(field_is(t, 2, 1, ""), "table: empty field");
	ok(t->owned != NULL, "table: owned buffer for unescaped fields");
	is_int(table_col(t, "note"), 2, "table_col finds a column");
	is_int(table_col(t, "nope"), -1, "table_col: -1 for unknown");
	ok(table_num(t, 1, 0, &v) && v == 2, "table_num parses");
	ok(!table_num(t, 2, 2, &v), "table_num: NA is missing");
	ok(!table_num(t, 0, 1, &v), "table_num: text is not a number");
	ok(!table_num(t, 3, 0, &v), "table_num: row out of range");
	table_free(t);

	rc = table_parse("a\n1\n\n2\n\n", 8, &t, &pb);
	is_int(rc, 0, "table: one column, blank line inside");
	if (rc == 0) {
		is_int(t->nrows, 3, "table: inner blank line is a record");
		ok(field_is(t, 1, 0, "") && field_is(t, 2, 0, "2"),
		   "table: blank record is one empty field");
		ok(t->owned == NULL && t->data != NULL,
		   "table: no copy without doubled quotes");
		table_free(t);
	}
	rc = table_parse("a,b\n1,2\r", 8, &t, &pb);
	is_int(rc, 0, "table: lone CR at the end");
	if (rc == 0) {
		ok(field_is(t, 0, 1, "2\r"), "table: a lone CR is data");
		table_free(t);
	}
	table_free(NULL);
}

struct bad_case {
	const char *in;
	size_t len; /* 0: strlen(in) */
	unsigned line;
	unsigned col;
	const char *msg;
};

/* The same messages and positions as csv_scan's. */
static const struct bad_case bad_cases[] = {
	{ "", 0, 1, 1, "empty file" },
	{ "\r\n\n", 0, 1, 1, "empty file" },
	{ "\xef\xbb\xbf", 0, 1, 1, "empty file" },
	{ "a,b\n", 0, 2, 1, "no data rows" },
	{ "a,b", 0, 1, 4, "no data rows" },
	{ "a,b\n\n\n", 0, 4, 1, "no data rows" },
	{ "a,b\n1,2\n3\n", 0, 3, 2, "record has 1 field, header has 2" },
	{ "a,b,c,d\n1,2,3\n", 0, 2, 6, "record has 3 fields, header has 4" },
	{ "a,b,c,d\n1,2,3", 0, 2, 6, "record has 3 fields, header has 4" },
	{ "a,b\r\n1\r\n", 0, 2, 2, "record has 1 field, header has 2" },
	{ "a,b\n1,2,3,4\n", 0, 2, 5, "record has 4 fields, header has 2" },
	{ "a,b\nx,\"y\",\"z\"\n", 0, 2, 7,
	  "record has 3 fields, header has 2" },
	{ "a,b\n1,2\n\n3,4\n", 0, 3, 1, "record has 1 field, header has 2" },
	{ "a,b\n\"x\ny\",2\n3\n", 0, 4, 2,
	  "record has 1 field, header has 2" },
	{ "a,b\n1,\"x\n", 0, 2, 3, "unterminated quoted field" },
	{ "\"a,b\n1,2\n", 0, 1, 1, "unterminated quoted field" },
	{ "a,b\n1,x\"y\n", 0, 2, 4, "quote inside unquoted field" },
	{ "a,b\n1, \"y\"\n", 0, 2, 4, "quote inside unquoted field" },
	{ "a,b\n1,\"x\"y\n", 0, 2, 6, "unexpected text after closing quote" },
	{ "a,b\n\"x\ny\"z,2\n", 0, 3, 3,
	  "unexpected text after closing quote" },
	{ "a,b\n1,x\0y\n", 10, 2, 4, "binary data (NUL byte)" },
	{ "a,b\n1,\"x\0\"\n", 11, 2, 5, "binary data (NUL byte)" },
	{ "a\0,b\n1,2\n", 9, 1, 2, "binary data (NUL byte)" },
	{ "a,,c\n1,2,3\n", 0, 1, 3, "empty column name" },
	{ "a, \t,c\n1,2,3\n", 0, 1, 3, "empty column name" },
	{ "a,\"\"\n1,2\n", 0, 1, 3, "empty column name" },
	{ "a,b,a\n1,2,3\n", 0, 1, 5, "duplicate column name \"a\"" },
	{ "a, b ,\"b\"\n1,2,3\n", 0, 1, 7, "duplicate column name \"b\"" },
	{ "b,a,b,a\n1,2,3,4\n", 0, 1, 5, "duplicate column name \"b\"" },
	{ "\xef\xbb\xbf" "a,a\n1,2\n", 0, 1, 3,
	  "duplicate column name \"a\"" },
};

static void test_table_bad(void)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];
		size_t len = c->len ? c->len : strlen(c->in);
		struct table *t = (struct table *)1;
		struct problem pb;
		char name[160];
		int rc;

		memset(&pb, 0, sizeof(pb));
		rc = table_parse(c->in, len, &t, &pb);
		snprintf(name, sizeof(name), "table bad %zu: %s", i, c->msg);
		is_int(rc, -EINVAL, name);
		is_str(pb.msg, c->msg, name);
		is_int(pb.line, c->line, name);
		is_int(pb.col, c->col, name);
		ok(!t, "table: nothing returned on error");
	}
}

/*
 * Random small inputs over the bytes that matter to the grammar: the
 * table must accept exactly what csv_scan accepts and refuse the rest
 * with the same message and position (ASCII only: UTF-8 is csv_scan's
 * alone), and every accepted field must lie inside the data.
 */
static void test_table_vs_csv_scan(void)
{
	static const char alphabet[] = ",,\"\"\n\n\r a1 \0";
	uint64_t st = 2024;
	char buf[40];
	int differ = 0;
	int inside = 1;
	int i;

	for (i = 0; i < 30000; i++) {
		size_t len = (size_t)(prng_next(&st) % sizeof(buf));
		struct csv_info *info = NULL;
		struct table *t = NULL;
		struct problem pa = { 0 };
		struct problem pt = { 0 };
		size_t k;
		int ra;
		int rt;

		for (k = 0; k < len; k++)
			buf[k] = alphabet[prng_next(&st) %
					  (sizeof(alphabet) - 1)];
		if (i % 3 == 0 && len > 4)
			memcpy(buf, "a,b\n", 4); /* mostly good headers */
		ra = csv_scan(buf, len, NULL, &info, NULL, &pa);
		rt = table_parse(buf, len, &t, &pt);
		if (ra != rt || strcmp(pa.msg, pt.msg) || pa.line != pt.line ||
		    pa.col != pt.col) {
			if (differ++ < 3)
				printf("# differ on %zu bytes: csv_scan %d "
				       "%u:%u %s, table %d %u:%u %s\n",
				       len, ra, pa.line, pa.col, pa.msg, rt,
				       pt.line, pt.col, pt.msg);
		}
		if (t) {
			size_t dlen = t->owned ? 2 * len : len;

			for (k = 0; k < t->nrows * t->ncols; k++)
				inside = inside &&
					 t->off[k] + t->len[k] <= dlen;
			if (info && (t->nrows != info->nrows ||
				     t->ncols != info->ncols))
				differ++;
		}
		table_free(t);
		csv_info_free(info);
	}
	is_int(differ, 0, "table_parse agrees with csv_scan on 30000 inputs");
	ok(inside, "table: every field lies inside the data");
}

/* Run op with allocation 1, 2, ... failing until it succeeds; each run
 * must succeed or fail with -ENOMEM (LSan checks that nothing leaks). */
#define FAIL_EACH_ALLOC(what, call, cleanup)                                 \
	do {                                                                 \
		unsigned n_;                                                 \
		int bad_ = 0;                                                \
		int rc_ = -ENOMEM;                                           \
		bool fired_ = true;                                          \
		for (n_ = 1; n_ < 10000 && fired_; n_++) {                   \
			failalloc_arm(n_);                                   \
			rc_ = (call);                                        \
			fired_ = failalloc_fired();                          \
			failalloc_arm(0);                                    \
			if (rc_ == 0) {                                      \
				cleanup;                                     \
			} else if (rc_ != -ENOMEM) {                         \
				bad_++;                                      \
				printf("# %s: allocation %u: rc %d\n", what, \
				       n_, rc_);                             \
			}                                                    \
		}                                                            \
		ok(!bad_ && rc_ == 0 && n_ > 2,                              \
		   what ": every allocation failure is clean");              \
	} while (0)

static void test_table_alloc(void)
{
	static const char text[] = "a,\"b\"\"\"\n1,\"x\"\"\"\n2,y\n";
	struct problem pb;
	struct table *t = NULL;

	FAIL_EACH_ALLOC("table_parse",
			table_parse(text, sizeof(text) - 1, &t, &pb),
			table_free(t));
}

/* Wide numeric rows: the layout the fast path is for. */
static void test_table_numeric(void)
{
	size_t rows = 2000;
	size_t cols = 20;
	size_t cap = rows * cols * 12 + 256;
	char *text = malloc(cap);
	struct problem pb;
	struct table *t;
	size_t len = 0;
	size_t r;
	size_t c;
	bool good = true;
	int rc;

	if (!text) {
		skip("no memory for the numeric table");
		return;
	}
	for (c = 0; c < cols; c++)
		len += (size_t)snprintf(text + len, cap - len, "%sc%zu",
					c ? "," : "", c);
	text[len++] = '\n';
	for (r = 0; r < rows; r++) {
		for (c = 0; c < cols; c++)
			len += (size_t)snprintf(text + len, cap - len,
						"%s%zu.5", c ? "," : "",
						r * cols + c);
		text[len++] = '\n';
	}
	rc = table_parse(text, len, &t, &pb);
	is_int(rc, 0, "table: numeric 2000 x 20");
	if (rc == 0) {
		for (r = 0; r < rows && good; r++) {
			for (c = 0; c < cols && good; c++) {
				double v = -1;

				good = table_num(t, r, c, &v) &&
				       v == (double)(r * cols + c) + 0.5;
			}
		}
		ok(good && t->nrows == rows,
		   "table: every numeric field reads back");
		table_free(t);
	}
	free(text);
}

/* ---------------------------------------------------------------- */
/* The feature extractor */

static const char fx_csv[] =
	"num,cat,when,txt,y\n"
	"1.5,red,2020-01-01,hello,0\n"
	"NA,blue,2020-01-02T00:00:00Z,x,1\n"
	"3.5, red ,,y,0\n"
	"2.5,green,2020-01-01T12:00:00+01:00,z,1\n"
	"10,red,2020-01-03,w,0\n";

static const size_t fx_feat[] = { 0, 1, 2 };
static const char *const fx_types[] = { "numeric", "categorical", "time" };
static const size_t fx_rows[] = { 0, 1, 2, 3 };

static void test_fx_fit(const struct table *t, struct fx **out)
{
	const double t0 = 1577836800; /* 2020-01-01T00:00:00Z */
	const double times[] = { t0, t0 + 86400, t0 + 11 * 3600 };
	double tmean = (times[0] + times[1] + times[2]) / 3;
	double tstd = 0;
	struct problem pb = { 0 };
	struct fx *fx;
	size_t i;
	int rc;

	for (i = 0; i < 3; i++)
		tstd += (times[i] - tmean) * (times[i] - tmean);
	tstd = sqrt(tstd / 3);
	*out = NULL;
	rc = fx_fit(t, fx_feat, fx_types, 3, fx_rows, 4, &fx, &pb);
	is_int(rc, 0, "fx_fit");
	if (rc < 0)
		return;
	is_int(fx->ncols, 3, "fx: 3 columns");
	is_int(fx->width, 5, "fx: width 1 + 3 categories + 1");
	ok(fx->cols[0].kind == FX_NUMERIC && near(fx->cols[0].mean, 2.5, 0) &&
		   near(fx->cols[0].std, sqrt(2.0 / 3), 1e-15) &&
		   fx->cols[0].min == 1.5 && fx->cols[0].max == 3.5 &&
		   fx->cols[0].impute == 2.5,
	   "fx: numeric mean, population std, min, max over non-missing");
	ok(fx->cols[1].kind == FX_ONEHOT && fx->cols[1].ncats == 3 &&
		   !strcmp(fx->cols[1].cats[0], "blue") &&
		   !strcmp(fx->cols[1].cats[1], "green") &&
		   !strcmp(fx->cols[1].cats[2], "red"),
	   "fx: categories sorted, values trimmed");
	ok(fx->cols[2].kind == FX_TIME && fx->cols[2].min == times[0] &&
		   fx->cols[2].max == times[1] &&
		   near(fx->cols[2].mean, tmean, 1e-6) &&
		   near(fx->cols[2].std, tstd, 1e-6),
	   "fx: time as epoch seconds, offsets applied");
	is_str(fx->cols[2].name, "when", "fx: column name");
	*out = fx;
}

static void test_fx_transform(const struct table *t, const struct fx *fx)
{
	const char *row[] = { "10", "red", "2020-01-03", "w", "0" };
	const char *row2[] = { " N/A ", "purple", "junk" };
	const char *row3[] = { "2", "blue" };
	const size_t map3[] = { 0, 1, (size_t)-1 };
	float out[5];
	double s0 = fx->cols[0].std;
	double s2 = fx->cols[2].std;
	int rc;

	(void)t;
	rc = fx_transform_row(fx, row, NULL, 5, NULL, out);
	is_int(rc, 0, "fx_transform_row: nothing imputed");
	ok(near(out[0], (3.5 - 2.5) / s0, 1e-6) && out[1] == 0 &&
		   out[2] == 0 && out[3] == 1 &&
		   near(out[4], (fx->cols[2].max - fx->cols[2].mean) / s2,
			1e-6),
	   "fx: numeric and time clipped to training range, one-hot");
	rc = fx_transform_row(fx, row2, NULL, 3, NULL, out);
	is_int(rc, 2, "fx: missing number and bad time imputed");
	ok(out[0] == 0 && out[1] == 0 && out[2] == 0 && out[3] == 0 &&
		   out[4] == 0,
	   "fx: imputed standardise to 0, unseen category all zeros");
	rc = fx_transform_row(fx, row3, NULL, 2, map3, out);
	is_int(rc, 1, "fx: unmapped column imputed");
	ok(near(out[0], (2 - 2.5) / s0, 1e-6) && out[1] == 1 && out[4] == 0,
	   "fx: mapped fields");
	rc = fx_transform_row(fx, row3, NULL, 2, NULL, out);
	is_int(rc, -EINVAL, "fx: too few fields");
}

/* fx_apply_row answers as fx_check_row and then fx_transform_row do. */
static void test_fx_apply(const struct fx *fx)
{
	static const struct {
		const char *f[3];
		const size_t *map;
		size_t n;
	} rows[] = {
		{ { "10", "red", "2020-01-03" }, NULL, 3 },
		{ { " N/A ", "purple", "" }, NULL, 3 },
		{ { "abc", "red", "2020-01-03" }, NULL, 3 },
		{ { "1", "red", "junk" }, NULL, 3 },
		{ { "inf", "red", "junk" }, NULL, 3 },
		{ { "0x10", "blue", "" }, NULL, 3 },
		{ { "2", "blue", "" }, NULL, 2 },
	};
	char name[96];

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char why1[128] = "", why2[128] = "";
		float a[5] = { 0 }, b[5] = { 0 };
		int rc1, rc2;

		rc1 = fx_check_row(fx, rows[i].f, NULL, rows[i].n, rows[i].map,
				   why1, sizeof(why1));
		if (rc1 == 0)
			rc1 = fx_transform_row(fx, rows[i].f, NULL, rows[i].n,
					       rows[i].map, a);
		rc2 = fx_apply_row(fx, rows[i].f, NULL, NULL, rows[i].n,
				   rows[i].map, b, why2, sizeof(why2));
		if (rc2 == -ERANGE)
			rc2 = -EINVAL; /* transform's refusal */
		snprintf(name, sizeof(name), "fx_apply_row %zu: as check and "
					     "transform (%d, \"%s\")", i,
			 rc1, why1);
		ok(rc1 == rc2 && strcmp(why1, why2) == 0 &&
			   (rc1 < 0 || memcmp(a, b, sizeof(a)) == 0),
		   name);
	}
}

static void test_fx_refuse(const struct table *t)
{
	static const size_t feat[] = { 0, 3 };
	static const char *const types[] = { "numeric", "text" };
	static const char *const types2[] = { "numeric", "blob" };
	static const size_t bad_feat[] = { 9 };
	static const size_t bad_rows[] = { 5 };
	struct problem pb = { 0 };
	struct fx *fx = (struct fx *)1;
	int rc;

	rc = fx_fit(t, feat, types, 2, fx_rows, 4, &fx, &pb);
	is_int(rc, -EINVAL, "fx: text column refused");
	is_str(pb.msg,
	       "\"txt\": text columns cannot be features (set its type or "
	       "leave it out)",
	       "fx: text column message");
	ok(!fx, "fx: nothing returned on error");
	rc = fx_fit(t, feat, types2, 2, fx_rows, 4, &fx, &pb);
	is_int(rc, -EINVAL, "fx: unknown type refused");
	is_str(pb.msg, "\"txt\": unknown column type \"blob\"",
	       "fx: unknown type message");
	rc = fx_fit(t, bad_feat, NULL, 1, fx_rows, 4, &fx, &pb);
	is_int(rc, -EINVAL, "fx: column index out of range");
	rc = fx_fit(t, fx_feat, fx_types, 3, bad_rows, 1, &fx, &pb);
	is_int(rc, -EINVAL, "fx: row index out of range");
	rc = fx_fit(t, fx_feat, fx_types, 3, NULL, 0, &fx, &pb);
	is_int(rc, 0, "fx: fit on no rows");
	if (rc == 0) {
		ok(fx->cols[0].mean == 0 && fx->cols[0].std == 1 &&
			   fx->cols[1].ncats == 0 && fx->width == 2,
		   "fx: no rows: mean 0, std 1, no categories");
		fx_free(fx);
	}
}

static bool fx_equal(const struct fx *a, const struct fx *b)
{
	size_t i;
	size_t j;

	if (a->ncols != b->ncols || a->width != b->width)
		return false;
	for (i = 0; i < a->ncols; i++) {
		const struct fx_column *x = &a->cols[i];
		const struct fx_column *y = &b->cols[i];

		if (strcmp(x->name, y->name) || x->kind != y->kind ||
		    x->src != y->src || x->ncats != y->ncats)
			return false;
		if (x->kind != FX_ONEHOT &&
		    (x->mean != y->mean || x->std != y->std ||
		     x->min != y->min || x->max != y->max ||
		     x->impute != y->impute))
			return false;
		for (j = 0; j < x->ncats; j++)
			if (strcmp(x->cats[j], y->cats[j]))
				return false;
	}
	return true;
}

static void test_fx_json(const struct fx *fx)
{
	static const char *const bad[] = {
		"{}",
		"[1]",
		"[{\"type\":\"numeric\",\"src\":0,\"mean\":0,\"std\":1,"
		"\"min\":0,\"max\":1,\"impute\":0}]",
		"[{\"name\":\"a\",\"type\":\"text\",\"src\":0}]",
		"[{\"name\":\"a\",\"type\":\"numeric\",\"src\":-1,\"mean\":0,"
		"\"std\":1,\"min\":0,\"max\":1,\"impute\":0}]",
		"[{\"name\":\"a\",\"type\":\"numeric\",\"src\":0,\"mean\":0,"
		"\"std\":0,\"min\":0,\"max\":1,\"impute\":0}]",
		"[{\"name\":\"a\",\"type\":\"numeric\",\"src\":0,\"mean\":0,"
		"\"std\":1,\"min\":2,\"max\":1,\"impute\":0}]",
		"[{\"name\":\"a\",\"type\":\"numeric\",\"src\":0,\"mean\":0,"
		"\"std\":1,\"min\":0,\"impute\":0}]",
		"[{\"name\":\"a\",\"type\":\"numeric\",\"src\":0,\"mean\":0,"
		"\"std\":1,\"min\":0,\"max\":1,\"impute\":0,"
		"\"encoding\":\"onehot\"}]",
		"[{\"name\":\"a\",\"type\":\"categorical\",\"src\":0,"
		"\"categories\":[\"b\",\"a\"]}]",
		"[{\"name\":\"a\",\"type\":\"categorical\",\"src\":0,"
		"\"categories\":[\"a\",\"a\"]}]",
		"[{\"name\":\"a\",\"type\":\"categorical\",\"src\":0,"
		"\"categories\":[1]}]",
		"[{\"name\":\"a\",\"type\":\"categorical\",\"src\":0}]",
	};
	json_t *j = fx_to_json(fx);
	json_t *back;
	struct fx *fx2 = NULL;
	char *s;
	size_t i;
	int rc;

	ok(j && json_array_size(j) == 3, "fx_to_json: one object per column");
	if (!j)
		return;
	is_str(json_string_value(json_object_get(json_array_get(j, 1),
						 "encoding")),
	       "onehot", "fx_to_json: categorical encoding");
	is_str(json_string_value(json_object_get(json_array_get(j, 2),
						 "type")),
	       "time", "fx_to_json: time type");
	s = json_dumps(j, JSON_REAL_PRECISION(17));
	json_decref(j);
	back = s ? json_loads(s, 0, NULL) : NULL;
	free(s);
	rc = fx_from_json(back, &fx2);
	is_int(rc, 0, "fx_from_json");
	ok(fx2 && fx_equal(fx, fx2), "fx: JSON round trip is exact");
	fx_free(fx2);

	FAIL_EACH_ALLOC("fx_from_json", fx_from_json(back, &fx2),
			fx_free(fx2));
	json_decref(back);

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		json_t *b = json_loads(bad[i], 0, NULL);
		char name[64];

		fx2 = (struct fx *)1;
		snprintf(name, sizeof(name), "fx_from_json refuses bad %zu",
			 i);
		rc = fx_from_json(b, &fx2);
		ok(rc == -EINVAL && !fx2, name);
		json_decref(b);
	}
}

static void test_fx(void)
{
	struct problem pb = { 0 };
	struct table *t;
	struct fx *fx = NULL;
	int rc;

	rc = table_parse(fx_csv, sizeof(fx_csv) - 1, &t, &pb);
	is_int(rc, 0, "fx: table");
	if (rc < 0)
		return;
	test_fx_fit(t, &fx);
	if (fx) {
		test_fx_transform(t, fx);
		test_fx_apply(fx);
		test_fx_json(fx);
		fx_free(fx);
	}
	test_fx_refuse(t);
	FAIL_EACH_ALLOC("fx_fit",
			fx_fit(t, fx_feat, fx_types, 3, fx_rows, 4, &fx, &pb),
			fx_free(fx));
	table_free(t);
	fx_free(NULL);
}

/* ---------------------------------------------------------------- */
/* The split */

static void count_sets(const uint8_t *out, size_t n, const uint32_t *strata,
		       uint32_t want, size_t *c)
{
	size_t i;

	c[0] = c[1] = c[2] = 0;
	for (i = 0; i < n; i++)
		if (!strata || strata[i] == want)
			c[out[i]]++;
}

static void test_split(void)
{
	enum { N = 1003 };
	static uint32_t strata[N];
	static uint8_t a[N], b[N], c[N];
	struct split_spec sp = { 0.6, 0.2, 0.2, 42, true };
	const size_t m[3] = { 500, 300, 203 };
	size_t cnt[3];
	bool within = true;
	uint64_t st = 0;
	size_t i;
	size_t k;
	int rc;

	is_int(prng_next(&st) == 0xe220a8397b1dcdafULL, 1,
	       "prng: splitmix64 reference value");
	st = 7;
	for (i = 0; i < 1000 && within; i++) {
		double u = prng_uniform(&st);

		within = u >= 0 && u < 1;
	}
	ok(within, "prng_uniform in [0, 1)");

	for (i = 0; i < N; i++)
		strata[i] = i < m[0] ? 0 : i < m[0] + m[1] ? 1 : 2;
	rc = split_rows(N, strata, 3, &sp, a);
	is_int(rc, 0, "split_rows stratified");
	split_rows(N, strata, 3, &sp, b);
	ok(!memcmp(a, b, N), "split: same seed, same split");
	sp.seed = 43;
	split_rows(N, strata, 3, &sp, c);
	ok(memcmp(a, c, N), "split: another seed, another split");
	count_sets(a, N, NULL, 0, cnt);
	ok(cnt[0] == 602 && cnt[1] == 201 && cnt[2] == 200,
	   "split: set sizes by largest remainder (601.8, 200.6, 200.6)");
	within = true;
	for (k = 0; k < 3; k++) {
		count_sets(a, N, strata, (uint32_t)k, cnt);
		within = within && fabs((double)cnt[0] - 0.6 * m[k]) < 1 &&
			 fabs((double)cnt[1] - 0.2 * m[k]) < 1 &&
			 fabs((double)cnt[2] - 0.2 * m[k]) < 1;
	}
	ok(within, "split: each class within one row of its share");

	sp = (struct split_spec){ 0.7, 0.0, 0.3, 1, false };
	rc = split_rows(1000, strata, 3, &sp, a);
	count_sets(a, 1000, NULL, 0, cnt);
	ok(rc == 0 && cnt[0] == 700 && cnt[1] == 0 && cnt[2] == 300,
	   "split: unstratified exact sizes, empty validation");
	/* The first rows are one class, so an unshuffled cut would put
	 * them all in train. */
	count_sets(a, 500, NULL, 0, cnt);
	ok(cnt[2] > 100, "split: rows are shuffled");

	sp = (struct split_spec){ 0.6, 0.2, 0.3, 1, false };
	is_int(split_rows(10, NULL, 0, &sp, a), -EINVAL,
	       "split: fractions must sum to 1");
	sp = (struct split_spec){ 0, 0.5, 0.5, 1, false };
	is_int(split_rows(10, NULL, 0, &sp, a), -EINVAL,
	       "split: train must be > 0");
	sp = (struct split_spec){ 1.2, -0.2, 0, 1, false };
	is_int(split_rows(10, NULL, 0, &sp, a), -EINVAL,
	       "split: fractions in [0, 1]");
	sp = (struct split_spec){ 0.6, 0.2, 0.2000001, 1, true };
	is_int(split_rows(N, strata, 2, &sp, a), -EINVAL,
	       "split: stratum out of range");
	is_int(split_rows(N, strata, 3, &sp, a), 0,
	       "split: sum within 1e-6 accepted");
	is_int(split_rows(0, NULL, 0, &sp, a), 0, "split: no rows");
	sp = (struct split_spec){ 0.5, 0.25, 0.25, 1, true };
	FAIL_EACH_ALLOC("split_rows", split_rows(N, strata, 3, &sp, a),
			(void)0);
}

/* ---------------------------------------------------------------- */
/* Metrics, against scikit-learn 1.2.1 (Debian 12's python3-sklearn) */

static void test_metrics_multiclass(void)
{
	static const char *const names[] = { "setosa", "versicolor",
					     "virginica" };
	static const uint32_t y[] = { 0, 1, 2, 2, 1, 0, 1, 2, 0, 1 };
	static const float p[] = {
		.7f,  .2f,  .1f, .1f,  .6f, .3f, .2f, .2f, .6f, .3f,
		.4f,  .3f,  .25f, .5f, .25f, .4f, .4f, .2f, .1f, .3f,
		.6f,  .05f, .05f, .9f, .6f,  .3f, .1f, .2f, .2f, .6f,
	};
	static const int cm[3][3] = { { 3, 0, 0 }, { 0, 2, 2 }, { 0, 1, 2 } };
	json_t *o = metrics_classification(y, p, 10, 3, names);
	json_t *m;
	json_t *pc;
	bool same = true;
	int i;
	int j;

	ok(o != NULL, "metrics_classification");
	if (!o)
		return;
	ok(near(jnum(o, "accuracy"), 0.7, 1e-12), "accuracy");
	ok(near(jnum(o, "precision_macro"), 0.72222222222222221, 1e-12),
	   "precision_macro");
	ok(near(jnum(o, "recall_macro"), 0.72222222222222221, 1e-12),
	   "recall_macro");
	ok(near(jnum(o, "f1_macro"), 0.71428571428571441, 1e-12), "f1_macro");
	ok(near(jnum(o, "roc_auc"), 0.85416666666666663, 1e-12),
	   "roc_auc multiclass ovr macro, ties");
	ok(near(jnum(o, "log_loss"), 0.76213337657154978, 1e-6), "log_loss");
	is_int(json_integer_value(json_object_get(o, "n")), 10, "n");
	m = json_object_get(o, "confusion_matrix");
	for (i = 0; i < 3; i++)
		for (j = 0; j < 3; j++)
			same = same &&
			       json_integer_value(json_array_get(
				       json_array_get(m, (size_t)i),
				       (size_t)j)) == cm[i][j];
	ok(same && json_array_size(m) == 3, "confusion_matrix, rows true");
	pc = json_object_get(json_object_get(o, "per_class"), "versicolor");
	ok(near(jnum(pc, "precision"), 2.0 / 3, 1e-12) &&
		   jnum(pc, "support") == 4,
	   "per_class by name");
	json_decref(o);
}

static void test_metrics_binary(void)
{
	static const uint32_t y[] = { 0, 0, 1, 1, 0, 1, 1, 0, 1, 0 };
	static const float p1[] = { .1f, .4f, .35f, .8f, .4f,
				    .9f, .4f, .2f,  .65f, .5f };
	float p[20];
	json_t *o;
	size_t i;

	for (i = 0; i < 10; i++) {
		p[2 * i] = 1 - p1[i];
		p[2 * i + 1] = p1[i];
	}
	o = metrics_classification(y, p, 10, 2, NULL);
	ok(o != NULL, "metrics_classification binary");
	if (!o)
		return;
	ok(near(jnum(o, "roc_auc"), 0.8, 1e-12), "roc_auc binary, ties");
	ok(near(jnum(o, "accuracy"), 0.8, 1e-12), "accuracy binary");
	ok(near(jnum(o, "f1_macro"), 0.79166666666666652, 1e-12),
	   "f1_macro binary");
	ok(near(jnum(o, "log_loss"), 0.47687024101487879, 1e-6),
	   "log_loss binary");
	ok(json_object_get(json_object_get(o, "per_class"), "1") != NULL,
	   "per_class named by index without names");
	json_decref(o);

	/* One class only: AUC undefined. */
	o = metrics_classification((const uint32_t[]){ 1, 1 },
				   (const float[]){ .2f, .8f, .6f, .4f }, 2, 2,
				   NULL);
	ok(o && json_is_null(json_object_get(o, "roc_auc")),
	   "roc_auc null when y has one class");
	json_decref(o);
	ok(!metrics_classification((const uint32_t[]){ 2 },
				   (const float[]){ .5f, .5f }, 1, 2, NULL),
	   "metrics_classification: label out of range");
	o = metrics_classification(NULL, NULL, 0, 2, NULL);
	ok(o && json_is_null(json_object_get(o, "accuracy")) &&
		   json_integer_value(json_object_get(o, "n")) == 0,
	   "metrics_classification: no rows, null values");
	json_decref(o);
}

/* k = 4, class 3 in neither y nor the predictions: scikit-learn's macro
 * averages leave it out. */
static void test_metrics_absent_class(void)
{
	static const uint32_t y[] = { 0, 1, 2, 0, 1, 2 };
	static const uint32_t pred[] = { 0, 2, 2, 0, 1, 1 };
	float p[24];
	json_t *o;
	size_t i;

	memset(p, 0, sizeof(p));
	for (i = 0; i < 6; i++) {
		p[i * 4 + pred[i]] = .7f;
		p[i * 4 + (pred[i] + 1) % 3] = .3f;
	}
	o = metrics_classification(y, p, 6, 4, NULL);
	ok(o && near(jnum(o, "precision_macro"), 0.66666666666666663, 1e-12) &&
		   near(jnum(o, "recall_macro"), 0.66666666666666663, 1e-12) &&
		   near(jnum(o, "f1_macro"), 0.66666666666666663, 1e-12),
	   "macro averages over the classes present");
	json_decref(o);
}

static void test_metrics_regression(void)
{
	static const float y[] = { 3, -0.5f, 2, 7, 4.25f };
	static const float pred[] = { 2.5f, 0, 2, 8, 4 };
	json_t *o = metrics_regression(y, pred, 5);

	ok(o && near(jnum(o, "r2"), 0.94910423452768733, 1e-12) &&
		   near(jnum(o, "rmse"), 0.55901699437494745, 1e-12) &&
		   near(jnum(o, "mae"), 0.45, 1e-12) &&
		   json_integer_value(json_object_get(o, "n")) == 5,
	   "metrics_regression: r2, rmse, mae");
	json_decref(o);
	o = metrics_regression((const float[]){ 2, 2 },
			       (const float[]){ 2, 2 }, 2);
	ok(o && jnum(o, "r2") == 1, "r2 of a constant predicted exactly");
	json_decref(o);
}

static void test_metrics_clustering(void)
{
	static const float x[] = { 0,   0, 0.5f, 0.2f, 0.1f, 0.9f, 5, 5,
				   5.5f, 4.8f, 4.9f, 5.3f, 6, 6, 10, 0 };
	static const uint32_t lab[] = { 7, 7, 7, 3, 3, 3, 3, 9 };
	static const uint32_t lab2[] = { 0, 1, 0, 1, 0, 1, 0, 1 };
	static const float d2[] = { 1, 2, 3, 4, 5, 6, 7, 8.5f };
	json_t *o;
	json_t *o2;

	o = metrics_clustering(x, 8, 2, lab, d2, 0, 1);
	ok(o && near(jnum(o, "silhouette"), 0.76676781614628819, 1e-6),
	   "silhouette, a singleton cluster, sparse labels");
	ok(o && jnum(o, "inertia") == 36.5, "inertia is the sum of dist2");
	json_decref(o);
	o = metrics_clustering(x, 8, 2, lab2, NULL, 100, 1);
	ok(o && near(jnum(o, "silhouette"), -0.13010880648625225, 1e-6) &&
		   json_is_null(json_object_get(o, "inertia")),
	   "silhouette, sample larger than n");
	json_decref(o);
	o = metrics_clustering(x, 8, 2, lab2, NULL, 5, 3);
	o2 = metrics_clustering(x, 8, 2, lab2, NULL, 5, 3);
	ok(o && o2 && jnum(o, "silhouette") >= -1 &&
		   jnum(o, "silhouette") <= 1 &&
		   jnum(o, "silhouette") == jnum(o2, "silhouette"),
	   "silhouette on a seeded sample is repeatable");
	json_decref(o);
	json_decref(o2);
	o = metrics_clustering(x, 8, 2, (const uint32_t[8]){ 0 }, NULL, 0, 1);
	ok(o && json_is_null(json_object_get(o, "silhouette")),
	   "silhouette null for one cluster");
	json_decref(o);
}

/* ---------------------------------------------------------------- */
/* The model file */

static void reseal(unsigned char *b, size_t len)
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, XXH3_128bits(b, len - 16));
	memcpy(b + len - 16, c.digest, 16);
}

static int decode(const void *b, size_t len, char *msg, size_t msglen)
{
	json_t *h = NULL;
	const void *w;
	size_t wlen;
	int rc;

	rc = model_decode(b, len, &h, &w, &wlen, msg, msglen);
	if (rc == 0 && (!h || (size_t)((const char *)w - (const char *)b) +
					      wlen + 16 != len))
		rc = -EIO; /* a success must describe the buffer */
	json_decref(h);
	if (rc < 0 && msg[0] == '\0')
		rc = -EIO; /* every refusal says why */
	return rc;
}

static void test_model(void)
{
	static const unsigned char weights[] = { 1, 2, 3, 0, 255, 42, 7 };
	json_t *hdr = json_pack("{s:s, s:i, s:[s,s], s:f}", "plugin",
				"logistic", "plugin_version", 1, "classes",
				"a", "b", "l2", 0.1);
	json_t *back = NULL;
	const void *w = NULL;
	size_t wlen = 0;
	unsigned char *buf = NULL;
	unsigned char *cp;
	size_t len = 0;
	char msg[128];
	size_t cuts[] = { 0, 3, 7, 8, 16, 23, 24, 30, 0, 0, 0 };
	bool all = true;
	uint64_t st = 99;
	size_t i;
	int rc;

	rc = model_encode(hdr, weights, sizeof(weights), (void **)&buf, &len);
	is_int(rc, 0, "model_encode");
	if (rc < 0) {
		json_decref(hdr);
		return;
	}
	ok(!memcmp(buf, "MLFSMDL\0", 8) && buf[8] == 1 && !buf[9] &&
		   len == 24 + (size_t)buf[12] + sizeof(weights) + 16 &&
		   buf[16] == sizeof(weights),
	   "model: layout");
	rc = model_decode(buf, len, &back, &w, &wlen, msg, sizeof(msg));
	is_int(rc, 0, "model_decode");
	ok(back && json_equal(back, hdr) && wlen == sizeof(weights) &&
		   !memcmp(w, weights, wlen),
	   "model: round trip");
	json_decref(back);

	cp = malloc(len + 1);
	if (!cp) {
		skip("no memory for the corruption table");
		goto out;
	}
#define CORRUPT(what, edit, n, want)                                      \
	do {                                                              \
		memcpy(cp, buf, len);                                     \
		edit;                                                     \
		msg[0] = '\0';                                            \
		rc = decode(cp, (n), msg, sizeof(msg));                   \
		is_int(rc, -EINVAL, what);                                \
		is_str(msg, want, what);                                  \
	} while (0)

	CORRUPT("bad magic", cp[0] = 'X', len, "model: bad magic");
	CORRUPT("bad magic NUL", cp[7] = 'X', len, "model: bad magic");
	CORRUPT("bad magic short", cp[1] = 'X', 3, "model: bad magic");
	CORRUPT("format 7", (cp[8] = 7, reseal(cp, len)), len,
		"model: format 7 is not supported");
	CORRUPT("flipped header byte", cp[30] ^= 1, len,
		"model: checksum mismatch");
	CORRUPT("flipped weight byte", cp[len - 17] ^= 0x80, len,
		"model: checksum mismatch");
	CORRUPT("flipped checksum byte", cp[len - 1] ^= 1, len,
		"model: checksum mismatch");
	CORRUPT("huge header length",
		(cp[12] = cp[13] = cp[14] = cp[15] = 0xff), len,
		"model: truncated");
	CORRUPT("huge weights length", memset(cp + 16, 0xff, 8), len,
		"model: truncated");
	CORRUPT("weights length past the end", cp[16] += 1, len,
		"model: truncated");
	CORRUPT("trailing byte", cp[len] = 0, len + 1,
		"model: data after the checksum");
	CORRUPT("header not an object",
		(memcpy(cp + 24, "[", 1), memset(cp + 25, ' ', buf[12] - 2),
		 cp[24 + buf[12] - 1] = ']', reseal(cp, len)),
		len, "model: header is not a JSON object");
	memcpy(cp, buf, len);
	cp[24] = '!';
	reseal(cp, len);
	rc = decode(cp, len, msg, sizeof(msg));
	ok(rc == -EINVAL && !strncmp(msg, "model: bad header: ", 19),
	   "model: header not JSON");

	cuts[8] = len - 17;
	cuts[9] = len - 16;
	cuts[10] = len - 1;
	for (i = 0; i < ARRAY_SIZE(cuts); i++) {
		char name[64];

		snprintf(name, sizeof(name), "model: truncated at %zu",
			 cuts[i]);
		memcpy(cp, buf, len);
		rc = decode(cp, cuts[i], msg, sizeof(msg));
		ok(rc == -EINVAL && !strcmp(msg, "model: truncated"), name);
	}

	/* Garbage: random mutations of a good file, never a crash. */
	for (i = 0; i < 20000; i++) {
		size_t n = 1 + (size_t)(prng_next(&st) % 4);
		size_t cut = len - (size_t)(prng_next(&st) % 8);

		memcpy(cp, buf, len);
		while (n--) {
			size_t at = (size_t)(prng_next(&st) % len);

			cp[at] = (unsigned char)prng_next(&st);
		}
		if (i % 2)
			reseal(cp, cut); /* get past the checksum */
		msg[0] = '\0';
		rc = decode(cp, cut, msg, sizeof(msg));
		all = all && (rc == 0 || rc == -EINVAL);
	}
	ok(all, "model: 20000 mutated files decode or are refused");
	ok(model_decode(buf, len, &back, &w, &wlen, NULL, 0) == 0,
	   "model_decode without a message buffer");
	json_decref(back);
	free(cp);
out:
	free(buf);
	buf = NULL;
	FAIL_EACH_ALLOC("model_encode",
			model_encode(hdr, weights, sizeof(weights),
				     (void **)&buf, &len),
			free(buf));
	json_decref(hdr);
	hdr = json_array();
	is_int(model_encode(hdr, NULL, 0, (void **)&buf, &len), -EINVAL,
	       "model_encode refuses a non-object header");
	json_decref(hdr);
}

int main(void)
{
	test_table_good();
	test_table_bad();
	test_table_vs_csv_scan();
	test_table_alloc();
	test_table_numeric();
	test_fx();
	test_split();
	test_metrics_multiclass();
	test_metrics_binary();
	test_metrics_absent_class();
	test_metrics_regression();
	test_metrics_clustering();
	test_model();
	return done();
}
