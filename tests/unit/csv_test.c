/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the CSV reader, fs/base/csv*.c: bad input with exact
 * messages and positions, quoting, line ends and the BOM, type inference,
 * statistics against hand-computed values, the float matrix, the
 * distinct-count tiers, csv_parse_double() against strtod(), every
 * allocation failing in turn, and csv_feed() (exact messages, and the
 * same outcome whatever the sizes of the pieces it is fed in).
 * Single-threaded.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "failalloc.h"
#include "tap.h"

struct bad_case {
	const char *in;
	size_t len;                /* 0: strlen(in) */
	struct csv_limits lim;
	int rc;
	unsigned line;
	unsigned col;
	const char *msg;
};

static const struct bad_case bad_cases[] = {
	{ "", 0, { 0 }, -EINVAL, 1, 1, "empty file" },
	{ "\r\n\n", 0, { 0 }, -EINVAL, 1, 1, "empty file" },
	{ "\xef\xbb\xbf", 0, { 0 }, -EINVAL, 1, 1, "empty file" },
	{ "a,b\n", 0, { 0 }, -EINVAL, 2, 1, "no data rows" },
	{ "a,b", 0, { 0 }, -EINVAL, 1, 4, "no data rows" },
	{ "a,b\n\n\n", 0, { 0 }, -EINVAL, 4, 1, "no data rows" },
	{ "a,b\n1,2\n3\n", 0, { 0 }, -EINVAL, 3, 2,
	  "record has 1 field, header has 2" },
	{ "a,b,c,d\n1,2,3\n", 0, { 0 }, -EINVAL, 2, 6,
	  "record has 3 fields, header has 4" },
	{ "a,b,c,d\n1,2,3", 0, { 0 }, -EINVAL, 2, 6,
	  "record has 3 fields, header has 4" },
	{ "a,b\r\n1\r\n", 0, { 0 }, -EINVAL, 2, 2,
	  "record has 1 field, header has 2" },
	{ "a,b\n1,2,3,4\n", 0, { 0 }, -EINVAL, 2, 5,
	  "record has 4 fields, header has 2" },
	{ "a,b\nx,\"y\",\"z\"\n", 0, { 0 }, -EINVAL, 2, 7,
	  "record has 3 fields, header has 2" },
	{ "a,b\n1,2\n\n3,4\n", 0, { 0 }, -EINVAL, 3, 1,
	  "record has 1 field, header has 2" },
	{ "a,b\n\"x\ny\",2\n3\n", 0, { 0 }, -EINVAL, 4, 2,
	  "record has 1 field, header has 2" },
	{ "a,b\n1,\"x\n", 0, { 0 }, -EINVAL, 2, 3,
	  "unterminated quoted field" },
	{ "\"a,b\n1,2\n", 0, { 0 }, -EINVAL, 1, 1,
	  "unterminated quoted field" },
	{ "a,b\n1,x\"y\n", 0, { 0 }, -EINVAL, 2, 4,
	  "quote inside unquoted field" },
	{ "a,b\n1, \"y\"\n", 0, { 0 }, -EINVAL, 2, 4,
	  "quote inside unquoted field" },
	{ "a,b\n1,\"x\"y\n", 0, { 0 }, -EINVAL, 2, 6,
	  "unexpected text after closing quote" },
	{ "a,b\n\"x\ny\"z,2\n", 0, { 0 }, -EINVAL, 3, 3,
	  "unexpected text after closing quote" },
	{ "a,b\n1,x\0y\n", 10, { 0 }, -EINVAL, 2, 4,
	  "binary data (NUL byte)" },
	{ "a,b\n1,\"x\0\"\n", 11, { 0 }, -EINVAL, 2, 5,
	  "binary data (NUL byte)" },
	{ "a\0,b\n1,2\n", 9, { 0 }, -EINVAL, 1, 2, "binary data (NUL byte)" },
	{ "a,b\n1,\xff\n", 0, { 0 }, -EINVAL, 2, 3, "invalid UTF-8" },
	{ "a,b\n1,x\xc3\n", 0, { 0 }, -EINVAL, 2, 4, "invalid UTF-8" },
	{ "a,b\n1,\xc3", 0, { 0 }, -EINVAL, 2, 3, "invalid UTF-8" },
	{ "a,b\n1,\xc0\xaf\n", 0, { 0 }, -EINVAL, 2, 3, "invalid UTF-8" },
	{ "a,b\n1,\xed\xa0\x80\n", 0, { 0 }, -EINVAL, 2, 3, "invalid UTF-8" },
	{ "a,b\n1,\xf4\x90\x80\x80\n", 0, { 0 }, -EINVAL, 2, 3,
	  "invalid UTF-8" },
	{ "a\n\"\xe0\x80\x80\"\n", 0, { 0 }, -EINVAL, 2, 2, "invalid UTF-8" },
	{ "a,,c\n1,2,3\n", 0, { 0 }, -EINVAL, 1, 3, "empty column name" },
	{ "a, \t,c\n1,2,3\n", 0, { 0 }, -EINVAL, 1, 3, "empty column name" },
	{ "a,\"\"\n1,2\n", 0, { 0 }, -EINVAL, 1, 3, "empty column name" },
	{ "a,b,a\n1,2,3\n", 0, { 0 }, -EINVAL, 1, 5,
	  "duplicate column name \"a\"" },
	{ "a\tb\n1\t2\n", 0, { 0 }, -EINVAL, 1, 2,
	  "looks tab-separated: use commas" },
	{ "xx;y\n1;2\n", 0, { 0 }, -EINVAL, 1, 3,
	  "looks semicolon-separated: use commas" },
	{ "a, b ,\"b\"\n1,2,3\n", 0, { 0 }, -EINVAL, 1, 7,
	  "duplicate column name \"b\"" },
	{ "\xef\xbb\xbf" "a,a\n1,2\n", 0, { 0 }, -EINVAL, 1, 3,
	  "duplicate column name \"a\"" },
	{ "a,b\n1,12345\n", 0, { 4, 0, 0 }, -EFBIG, 2, 3,
	  "field longer than 4 bytes" },
	{ "a,b\n1,\"12\"\"45\"\n", 0, { 4, 0, 0 }, -EFBIG, 2, 3,
	  "field longer than 4 bytes" },
	{ "a,b\n1234,5678\n", 0, { 0, 8, 0 }, -EFBIG, 2, 1,
	  "record longer than 8 bytes" },
	{ "abcd,efgh\n1,2\n", 0, { 0, 8, 0 }, -EFBIG, 1, 1,
	  "record longer than 8 bytes" },
	{ "a,b,c\n1,2,3\n", 0, { 0, 0, 2 }, -EFBIG, 1, 5,
	  "more than 2 columns" },
};

static int scan_str(const char *s, size_t len, const struct csv_limits *lim,
		    struct csv_info **info, struct csv_matrix *mat,
		    struct problem *pb)
{
	memset(pb, 0, sizeof(*pb));
	return csv_scan(s, len ? len : strlen(s), lim, info, mat, pb);
}

static void test_bad_input(void)
{
	size_t i;

	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct csv_info *info = (struct csv_info *)1;
		struct csv_matrix mat = { (float *)1, 1, 1 };
		struct problem pb;
		char name[160];
		int rc;

		rc = scan_str(c->in, c->len, &c->lim, &info, &mat, &pb);
		snprintf(name, sizeof(name), "bad %zu: %s", i, c->msg);
		is_int(rc, c->rc, name);
		is_str(pb.msg, c->msg, name);
		is_int(pb.line, c->line, name);
		is_int(pb.col, c->col, name);
		ok(!info && !mat.data, "nothing returned on error");
	}
}

static const struct csv_column *col_named(const struct csv_info *info,
					  const char *name)
{
	size_t i;

	for (i = 0; i < info->ncols; i++)
		if (!strcmp(info->cols[i].name, name))
			return &info->cols[i];
	return NULL;
}

static bool near(double a, double b)
{
	return fabs(a - b) <= 1e-12 * (fabs(b) > 1 ? fabs(b) : 1);
}

static void test_quoting(void)
{
	static const char in[] =
		"\xef\xbb\xbf\" a \", b ,\"c\"\"d\",\"e\nf\"\r\n"
		"\"x, y\",\"he said \"\"hi\"\"\",,\"multi\nline\"\r\n"
		"\"1\",2,\"\",\"\"\r\n"
		"plain,\"\"\"\",3,x\n"
		"\n\r\n";
	struct csv_info *info;
	struct problem pb;
	int rc;

	rc = scan_str(in, 0, NULL, &info, NULL, &pb);
	is_int(rc, 0, "quoted file scans");
	if (rc < 0) {
		printf("# %u:%u: %s\n", pb.line, pb.col, pb.msg);
		return;
	}
	ok(info->bom, "BOM seen");
	is_int(info->ncols, 4, "4 columns");
	is_int(info->nrows, 3, "3 rows, trailing blank lines ignored");
	is_str(info->cols[0].name, "a", "quoted name trimmed");
	is_str(info->cols[1].name, "b", "plain name trimmed");
	is_str(info->cols[2].name, "c\"d", "doubled quote in name");
	is_str(info->cols[3].name, "e\nf", "newline in name");
	is_int(info->cols[2].missing, 2, "empty and \"\" are missing");
	is_int(info->cols[3].missing, 1, "quoted empty is missing");
	csv_info_free(info);

	/* One column: an empty line in the middle is a missing value. */
	rc = scan_str("a\n1\n\n2", 0, NULL, &info, NULL, &pb);
	is_int(rc, 0, "one column with a blank line");
	if (rc == 0) {
		is_int(info->nrows, 3, "blank line is a row");
		is_int(info->cols[0].missing, 1, "and a missing value");
		is_int(info->cols[0].count, 2, "two values");
		ok(!info->bom, "no BOM");
	}
	csv_info_free(info);
}

static void test_types(void)
{
	static const char in[] =
		"num,cat,txt,when,none,mixed,qnum\n"
		"1,red,alice,2024-01-01,NA,1,\" 2.5 \"\n"
		"2.5,blue,bob,2024-02-29T12:30:00Z,,x,\"3\"\n"
		"-3e2,red,carol,2023-12-31 23:59:59.123+01:00,n/a,2,1e1\n"
		" 4 ,red,dave,2023-01-01t00:00,NULL,y,\"-0\"\n"
		"?,blue,erin,2023-06-30T23:59:60,None,1,7\n"
		"NaN,red,frank,2023-06-30 01:02:03z,?,x,8\n";
	struct csv_info *info;
	struct problem pb;
	int rc;

	rc = scan_str(in, 0, NULL, &info, NULL, &pb);
	is_int(rc, 0, "types file scans");
	if (rc < 0) {
		printf("# %u:%u: %s\n", pb.line, pb.col, pb.msg);
		return;
	}
	is_str(csv_type_name(col_named(info, "num")->type), "numeric", "num");
	is_int(col_named(info, "num")->missing, 2, "num: ? and NaN missing");
	is_str(csv_type_name(col_named(info, "cat")->type), "categorical",
	       "cat");
	is_str(csv_type_name(col_named(info, "txt")->type), "text", "txt");
	is_str(csv_type_name(col_named(info, "when")->type), "time", "when");
	ok(isnan(col_named(info, "when")->mean), "time has no mean");
	is_str(csv_type_name(col_named(info, "none")->type), "text",
	       "all missing is text");
	is_int(col_named(info, "none")->count, 0, "all missing: count 0");
	is_int(col_named(info, "none")->missing, 6, "all missing: 6");
	ok(isnan(col_named(info, "none")->mean), "all missing: no mean");
	is_str(csv_type_name(col_named(info, "mixed")->type), "categorical",
	       "mixed numbers and words");
	is_str(csv_type_name(col_named(info, "qnum")->type), "numeric",
	       "quoted numbers are numbers");
	csv_info_free(info);

	/* Bad dates make a column text. */
	rc = scan_str("d\n2023-02-29\n2024-13-01\n2024-01-01T24:00\n"
		      "2024-01-01T10:00+1:00\n",
		      0, NULL, &info, NULL, &pb);
	is_int(rc, 0, "bad dates scan");
	if (rc == 0)
		is_str(csv_type_name(info->cols[0].type), "text",
		       "invalid dates are not time");
	csv_info_free(info);
}

static void test_stats(void)
{
	static const char in[] =
		"x,k,c,f,big\n"
		"1,3,b,0.5,1e300\n"
		"2,1,a,,-1e300\n"
		"NA,3,b,1.5,1\n"
		"3,2,c,-2.25,1\n"
		"4,3,a,0.25,1\n"
		",1,b,1e-3,1\n";
	const struct csv_column *c;
	struct csv_info *info;
	struct csv_matrix mat;
	struct problem pb;
	int rc;

	rc = scan_str(in, 0, NULL, &info, &mat, &pb);
	is_int(rc, 0, "stats file scans");
	if (rc < 0) {
		printf("# %u:%u: %s\n", pb.line, pb.col, pb.msg);
		return;
	}
	c = col_named(info, "x");
	is_int(c->count, 4, "x count");
	is_int(c->missing, 2, "x missing");
	ok(near(c->mean, 2.5), "x mean 2.5");
	ok(near(c->std, sqrt(1.25)), "x population std");
	ok(c->min == 1 && c->max == 4, "x min/max");
	is_int(c->distinct, 4, "x distinct");
	ok(!c->distinct_estimated, "x exact");
	is_int(c->nclasses, 4, "x: integer column has classes");
	if (c->nclasses == 4) {
		is_str(c->classes[0].value, "1", "x class 0");
		is_str(c->classes[3].value, "4", "x class 3");
	}

	c = col_named(info, "k");
	is_int(c->nclasses, 3, "k classes");
	if (c->nclasses == 3) {
		is_str(c->classes[0].value, "3", "k most frequent");
		is_int(c->classes[0].count, 3, "k count 3");
		is_str(c->classes[1].value, "1", "k then 1");
		is_int(c->classes[1].count, 2, "k count 2");
		is_str(c->classes[2].value, "2", "k then 2");
	}

	c = col_named(info, "c");
	is_str(csv_type_name(c->type), "categorical", "c categorical");
	is_int(c->distinct, 3, "c distinct");
	ok(isnan(c->mean) && isnan(c->std) && isnan(c->min) &&
		   isnan(c->max),
	   "c has no numeric stats");
	is_int(c->nclasses, 3, "c classes");
	if (c->nclasses == 3) {
		is_str(c->classes[0].value, "b", "c: b first (3)");
		is_str(c->classes[1].value, "a", "c: a (2)");
		is_str(c->classes[2].value, "c", "c: c (1)");
		is_int(c->classes[0].count, 3, "c: b count");
	}

	c = col_named(info, "f");
	is_int(c->count, 5, "f count");
	/* 0.5 + 1.5 - 2.25 + 0.25 + 0.001 = 0.001; mean 0.0002 */
	ok(near(c->mean, 0.0002), "f mean");
	ok(near(c->std, sqrt((0.25 + 2.25 + 5.0625 + 0.0625 + 1e-6) / 5 -
			     0.0002 * 0.0002)),
	   "f std");
	ok(c->min == -2.25 && c->max == 1.5, "f min/max");
	is_int(c->nclasses, 0, "f: fractions have no classes");

	c = col_named(info, "big");
	ok(c->min == -1e300 && c->max == 1e300, "big min/max");
	is_int(c->distinct, 3, "big distinct");

	is_int(mat.rows, 6, "matrix rows");
	is_int(mat.cols, 5, "matrix cols");
	ok(mat.data[0] == 1.0f && mat.data[5] == 2.0f, "matrix x values");
	ok(isnan(mat.data[2 * 5 + 0]), "matrix NA is NAN");
	ok(isnan(mat.data[5 * 5 + 0]), "matrix empty is NAN");
	ok(isnan(mat.data[0 * 5 + 2]) && isnan(mat.data[3 * 5 + 2]),
	   "categorical column is NAN");
	ok(mat.data[3 * 5 + 3] == -2.25f, "matrix f value");
	ok(isinf(mat.data[0 * 5 + 4]), "1e300 overflows float");
	csv_info_free(info);
	free(mat.data);
}

static void test_classes(void)
{
	static const char in[] =
		"s,n,t\n"
		"y,1,a\n"
		"x,1.0,1\n"
		"y,01,b\n"
		"x,2,1.0\n"
		"\"q\"\"t\",2,a\n"
		"\"q\"\"t\",-0,2\n"
		"y,0,1\n";
	const struct csv_column *c;
	struct csv_info *info;
	struct problem pb;
	int rc;

	rc = scan_str(in, 0, NULL, &info, NULL, &pb);
	is_int(rc, 0, "classes file scans");
	if (rc < 0)
		return;
	c = col_named(info, "s");
	is_int(c->distinct, 3, "s distinct");
	is_int(c->nclasses, 3, "s classes");
	if (c->nclasses == 3) {
		is_str(c->classes[0].value, "y", "y most frequent");
		is_str(c->classes[1].value, "q\"t", "tie: q\"t before x");
		is_str(c->classes[2].value, "x", "then x");
	}
	c = col_named(info, "n");
	is_int(c->distinct, 3, "1, 1.0 and 01 are one value; -0 is 0");
	is_int(c->nclasses, 3, "n classes");
	if (c->nclasses == 3) {
		is_str(c->classes[0].value, "1", "n: 1 (3)");
		is_int(c->classes[0].count, 3, "n: 1 count");
		is_str(c->classes[1].value, "0", "n: tie 0 before 2");
		is_str(c->classes[2].value, "2", "n: then 2");
	}
	/* numbers counted among text (cset_count_num() skips text) */
	c = col_named(info, "t");
	is_str(csv_type_name(c->type), "categorical", "t: categorical");
	is_int(c->nclasses, 4, "t classes");
	if (c->nclasses == 4) {
		is_str(c->classes[0].value, "1", "t: 1 (3)");
		is_int(c->classes[0].count, 3, "t: 1 count");
		is_str(c->classes[1].value, "a", "t: then a (2)");
		is_int(c->classes[1].count, 2, "t: a count");
	}
	csv_info_free(info);
}

/* A big file in memory: rows of "i,i%modulo,s<i%smod>,i%1000". */
static char *make_rows(size_t rows, size_t modulo, size_t smod, size_t *len)
{
	size_t cap = rows * 48 + 64;
	char *buf = malloc(cap);
	size_t n;
	size_t i;

	if (!buf)
		return NULL;
	n = (size_t)snprintf(buf, cap, "id,m,s,k\n");
	for (i = 0; i < rows; i++)
		n += (size_t)snprintf(buf + n, cap - n, "%zu,%zu,s%zu,%zu\n",
				      i, i % modulo, i % smod, i % 1000);
	*len = n;
	return buf;
}

/*
 * Tier 2's table at its edges: n distinct numbers (0 among them, spelled
 * 0, -0 and 0.0, which are one value and hash to 0), each three times in
 * a scrambled order; n around the first table, the biggest one and past
 * it (sorted batches), and past the exact count.  One pass, split and
 * streamed all count n.
 */
static bool split_agrees(const char *in, size_t len, size_t parts,
			 bool print);
static bool stream_agrees(const char *in, size_t len, uint64_t *seed,
			  bool print);

/*
 * The number 0 first seen once a column counts its values in a table,
 * in batches (csv.c's col_drain()): its hash is 0, which is also what
 * an empty slot holds, so a probe must not take it as found.
 */
static void test_zero_late(void)
{
	const size_t n = 5000;
	size_t k;
	size_t cap = n * 16 + 64;
	char *buf = malloc(cap);
	struct csv_info *info = NULL;
	struct problem pb;
	size_t len;
	size_t i;
	int rc;

	if (!buf)
		return;
	len = (size_t)snprintf(buf, cap, "v\n");
	for (i = 1; i <= n; i++) {
		len += (size_t)snprintf(buf + len, cap - len, "%zu.25\n", i);
		if (i == n - 7)
			len += (size_t)snprintf(buf + len, cap - len,
						"0\n-0\n0.0\n");
	}
	rc = scan_str(buf, len, NULL, &info, NULL, &pb);
	is_int(rc, 0, "zero after 4,993 other numbers: scans");
	if (rc == 0)
		is_int(info->cols[0].distinct, n + 1,
		       "zero after 4,993 other numbers: counted once");
	csv_info_free(info);
	/*
	 * Of 0 and -0, the bound is the first seen, batch or not, whichever
	 * lane of a batch each falls on (1,100 or 1,101 rows before, 200
	 * after).
	 */
	for (k = 1100; k <= 1101; k++) {
		len = (size_t)snprintf(buf, cap, "v,w\n");
		for (i = 1; i <= k + 200; i++) {
			len += (size_t)snprintf(buf + len, cap - len,
						"%zu,-%zu\n", i, i);
			if (i == k)
				len += (size_t)snprintf(buf + len, cap - len,
							"0,-0\n-0,0\n");
		}
		rc = scan_str(buf, len, NULL, &info, NULL, &pb);
		is_int(rc, 0, "0 and -0 among 1,300 numbers: scans");
		if (rc == 0) {
			ok(info->cols[0].min == 0 &&
			   !signbit(info->cols[0].min), "min 0 then -0: 0");
			ok(info->cols[1].max == 0 &&
			   signbit(info->cols[1].max), "max -0 then 0: -0");
		}
		csv_info_free(info);
	}
	free(buf);
}

static void test_distinct_table(void)
{
	static const size_t ns[] = { 1001, 2049, 16383, 16384, 16385,
				     40000, CSV_DISTINCT_EXACT };
	uint64_t seed = 7;
	size_t k;

	for (k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) {
		size_t n = ns[k];
		size_t cap = 3 * n * 24 + 16;
		char *buf = malloc(cap);
		const char *zero[] = { "0", "-0", "0.0" };
		struct csv_info *info = NULL;
		struct problem pb;
		char name[80];
		size_t len;
		size_t i;
		int rc;

		if (!buf)
			continue;
		len = (size_t)snprintf(buf, cap, "v,w\n");
		for (i = 0; i < 3 * n; i++) {
			/* 7919 is prime to every n here: a permutation */
			size_t v = (i * 7919) % n;

			if (v == 0)
				len += (size_t)snprintf(buf + len, cap - len,
							"%s,%zu\n",
							zero[i % 3], i);
			else
				len += (size_t)snprintf(buf + len, cap - len,
							"%zu.5,%zu\n", v, i);
		}
		rc = scan_str(buf, len, NULL, &info, NULL, &pb);
		snprintf(name, sizeof(name), "%zu values three times: scans",
			 n);
		is_int(rc, 0, name);
		if (rc == 0) {
			snprintf(name, sizeof(name), "%zu values: distinct",
				 n);
			is_int(info->cols[0].distinct, n, name);
			ok(!info->cols[0].distinct_estimated, name);
		}
		csv_info_free(info);
		snprintf(name, sizeof(name), "%zu values: split agrees", n);
		ok(split_agrees(buf, len, 2, true) &&
		   split_agrees(buf, len, 3, true), name);
		snprintf(name, sizeof(name), "%zu values: streamed agrees", n);
		ok(stream_agrees(buf, len, &seed, true), name);
		free(buf);
	}
	test_zero_late();
}

/* The inverse of num_hash() (fmix64): the bits of the number of hash h. */
static uint64_t fmix_inverse(uint64_t h)
{
	static const uint64_t c[2] = { 0xc4ceb9fe1a85ec53ULL,
				       0xff51afd7ed558ccdULL };
	size_t k;
	int i;

	for (k = 0; k < 2; k++) {
		uint64_t inv = c[k]; /* Newton: right to 2^64 in 5 steps */

		for (i = 0; i < 5; i++)
			inv *= 2 - c[k] * inv;
		h ^= h >> 33;
		h *= inv;
	}
	return h ^ (h >> 33);
}

/* A moderate number whose hash has the low bits low (mask) and r above. */
static bool number_of_hash(uint64_t r, uint64_t low, uint64_t mask,
			   double *v)
{
	uint64_t bits = fmix_inverse((r << 12 & ~mask) | low);

	memcpy(v, &bits, sizeof(*v));
	return fabs(*v) > 1e-6 && fabs(*v) < 1e6;
}

/*
 * Numbers chosen so that their hashes all fall in one line of tier 2's
 * table (an adversary can invert the hash): the column leaves the table
 * for sorted batches after a few lines of probing, and still counts
 * exactly, in one pass, split and streamed.
 */
static void test_distinct_collide(void)
{
	const size_t n = 5000;
	size_t cap = 2 * n * 32 + 16;
	char *buf = malloc(cap);
	struct csv_info *info = NULL;
	struct problem pb;
	uint64_t seed = 11;
	size_t len;
	size_t got = 0;
	size_t i;
	int rc;

	if (!buf)
		return;
	len = (size_t)snprintf(buf, cap, "v\n");
	for (i = 1; got < n; i++) {
		double v;

		/* moderate ones: the sums stay finite, as they must to agree */
		if (!number_of_hash((uint64_t)i << 20, 0x5a5a, 0xffff, &v))
			continue;
		len += (size_t)snprintf(buf + len, cap - len, "%.17g\n%.17g\n",
					v, v);
		got++;
	}
	rc = scan_str(buf, len, NULL, &info, NULL, &pb);
	is_int(rc, 0, "colliding hashes: scans");
	if (rc == 0) {
		is_int(info->cols[0].distinct, n, "colliding hashes: distinct");
		ok(!info->cols[0].distinct_estimated,
		   "colliding hashes: exact");
	}
	csv_info_free(info);
	ok(split_agrees(buf, len, 2, true), "colliding hashes: split agrees");
	ok(stream_agrees(buf, len, &seed, true),
	   "colliding hashes: streamed agrees");
	free(buf);
}

/*
 * What review found: (1) the value left pending at the end probes a
 * full run of lines, so settling it moves the column to sorted batches,
 * whose flush allocates the sort buffer while the flush that settles
 * holds an old pointer to none (a leak that ASan's leak check names);
 * (2) a part whose column had no value yet takes the next part's table
 * (a merge into an empty tier 1: a NULL dereference).
 */
static void test_distinct_review(void)
{
	const size_t cap = 1200 * 32 + 16;
	char *buf = malloc(cap);
	struct csv_info *info = NULL;
	struct problem pb;
	uint64_t r = 1;
	size_t len;
	size_t n = 0;
	double v;
	int rc;

	if (!buf)
		return;
	/* 1000 values away from the colliding lines, then 129 in one */
	len = (size_t)snprintf(buf, cap, "v\n");
	for (; n < 1000; r++)
		if (number_of_hash(r, 0x800 | (r * 2654435761u & 0x7ff), 0xfff,
				   &v)) {
			len += (size_t)snprintf(buf + len, cap - len,
						"%.17g\n", v);
			n++;
		}
	for (; n < 1129; r++)
		if (number_of_hash(r, 0x010, 0xfff, &v)) {
			len += (size_t)snprintf(buf + len, cap - len,
						"%.17g\n", v);
			n++;
		}
	rc = scan_str(buf, len, NULL, &info, NULL, &pb);
	is_int(rc, 0, "a pending value that collides at the end: scans");
	if (rc == 0)
		is_int(info->cols[0].distinct, 1129,
		       "a pending value that collides at the end: distinct");
	csv_info_free(info);
	free(buf);

	/* 30000 records with x empty, then 5000 values: split in 2 */
	buf = malloc(35000 * 16 + 16);
	if (!buf)
		return;
	len = (size_t)sprintf(buf, "id,x\n");
	for (n = 0; n < 35000; n++)
		len += n < 30000 ? (size_t)sprintf(buf + len, "%zu,\n", n)
				 : (size_t)sprintf(buf + len, "%zu,%zu.5\n", n,
						   n);
	ok(split_agrees(buf, len, 2, true),
	   "tier 2 merged into a column with no values yet");
	free(buf);
}

static void test_distinct_tiers(void)
{
	const struct csv_column *c;
	struct csv_info *info;
	struct problem pb;
	size_t len;
	char *buf;
	int rc;

	buf = make_rows(CSV_DISTINCT_EXACT, 30000, 2000, &len);
	rc = scan_str(buf, len, NULL, &info, NULL, &pb);
	is_int(rc, 0, "65536 rows scan");
	if (rc == 0) {
		c = col_named(info, "id");
		is_int(c->distinct, CSV_DISTINCT_EXACT, "exact at the cap");
		ok(!c->distinct_estimated, "not estimated at the cap");
		c = col_named(info, "m");
		is_int(c->distinct, 30000, "m exact (tier 2, repeats)");
		ok(!c->distinct_estimated, "m not estimated");
		c = col_named(info, "s");
		is_int(c->distinct, 2000, "s exact (tier 2 text)");
		is_str(csv_type_name(c->type), "text", "2000 values: text");
	}
	csv_info_free(info);
	free(buf);

	/* A value on every other row: big buckets in tier 2's sort. */
	buf = malloc(70000 * 8 + 8);
	if (buf) {
		size_t i;

		len = (size_t)sprintf(buf, "h\n");
		for (i = 0; i < 70000; i++)
			len += (size_t)sprintf(buf + len, "%zu\n",
					       i % 2 ? 7 : i);
		rc = scan_str(buf, len, NULL, &info, NULL, &pb);
		is_int(rc, 0, "heavy hitter scans");
		if (rc == 0) {
			is_int(info->cols[0].distinct, 35001,
			       "heavy hitter: exact distinct");
			ok(!info->cols[0].distinct_estimated,
			   "heavy hitter: not estimated");
		}
		csv_info_free(info);
		free(buf);
	}

	buf = make_rows(300000, 150000, 7, &len);
	rc = scan_str(buf, len, NULL, &info, NULL, &pb);
	is_int(rc, 0, "300000 rows scan");
	if (rc == 0) {
		c = col_named(info, "id");
		ok(c->distinct_estimated, "estimated past the cap");
		ok(c->distinct <= 300000, "never more than the count");
		ok(near(c->mean, 149999.5), "id mean over 300000 rows");
		ok(near(c->std, sqrt((300000.0 * 300000.0 - 1) / 12)),
		   "id std");
		c = col_named(info, "m");
		ok(c->distinct_estimated, "m estimated");
		ok(c->distinct > 142500 && c->distinct < 157500,
		   "estimate within 5%");
		printf("# estimate %llu for 150000\n",
		       (unsigned long long)c->distinct);
		c = col_named(info, "k");
		is_int(c->distinct, 1000, "k: 1000 values, tier 1");
		ok(!c->distinct_estimated, "k exact");
		is_int(c->nclasses, 0, "k: over 256 values, no classes");
		c = col_named(info, "s");
		is_str(csv_type_name(c->type), "categorical", "s: categorical");
		is_int(c->nclasses, 7, "s: 7 classes");
	}
	csv_info_free(info);
	free(buf);
}

/*
 * The matrix capacity is estimated from the first rows: make them long,
 * so that the estimate falls short and the buffer has to double later.
 */
static void test_matrix_growth(void)
{
	size_t rows = 60000;
	size_t cap = rows * 64 + 64;
	char *buf = malloc(cap);
	struct csv_info *info;
	struct csv_matrix mat;
	struct problem pb;
	bool good = true;
	size_t n;
	size_t i;
	int rc;

	if (!buf) {
		skip("no memory for the input");
		return;
	}
	n = (size_t)snprintf(buf, cap, "a,b\n");
	for (i = 0; i < rows; i++)
		n += (size_t)snprintf(buf + n, cap - n,
				      i < 5000 ? "%zu.000000000000000,%zu\n"
					       : "%zu,%zu\n",
				      i, i % 3);
	rc = scan_str(buf, n, NULL, &info, &mat, &pb);
	is_int(rc, 0, "long rows then short ones");
	if (rc == 0) {
		is_int(mat.rows, rows, "every row in the matrix");
		for (i = 0; i < rows; i++)
			if (mat.data[2 * i] != (float)i ||
			    mat.data[2 * i + 1] != (float)(i % 3))
				good = false;
		ok(good, "every value in place");
		csv_info_free(info);
		free(mat.data);
	}
	free(buf);
}

static void test_alloc_failures(void)
{
	size_t len;
	size_t i;
	char *buf = make_rows(70000, 1500, 5, &len);
	char *big;
	unsigned n;
	unsigned failed = 0;
	bool clean = true;

	/* A quoted, escaped field exercises the unescape buffer too. */
	big = malloc(len + 64);
	if (!buf || !big) {
		skip("no memory for the input");
		free(buf);
		free(big);
		return;
	}
	/* After the header line of buf. */
	n = (unsigned)(strchr(buf, '\n') + 1 - buf);
	memcpy(big, buf, n);
	i = (size_t)snprintf(big + n, len + 64 - n, "1,2,\"a\"\"b\",3\n");
	memcpy(big + n + i, buf + n, len - n);
	len += i;
	for (n = 1; n < 10000; n++) {
		struct csv_info *info = NULL;
		struct csv_matrix mat;
		struct problem pb;
		bool fired;
		int rc;

		failalloc_arm(n);
		rc = scan_str(big, len, NULL, &info, &mat, &pb);
		fired = failalloc_fired();
		failalloc_arm(0);
		if (!fired) {
			is_int(rc, 0, "succeeds once no allocation fails");
			csv_info_free(info);
			free(mat.data);
			break;
		}
		failed++;
		/* Giving back matrix slack may fail harmlessly. */
		if (rc != -ENOMEM && rc != 0) {
			clean = false;
			printf("# allocation %u: rc %d\n", n, rc);
		}
		if (rc == -ENOMEM && (info || mat.data))
			clean = false;
		csv_info_free(info);
		free(mat.data);
	}
	ok(clean, "every failed allocation gives -ENOMEM and nothing");
	ok(failed > 10, "many allocations were failed in turn");
	printf("# %u allocations failed in turn\n", failed);
	free(big);
	free(buf);
}

static uint64_t rng_next(uint64_t *s);

/* Two scans' matrices (both scans succeeded) hold the same rows. */
static bool same_matrix(const struct csv_matrix *x, const struct csv_matrix *y)
{
	return x->rows == y->rows &&
	       !memcmp(x->data, y->data,
		       (size_t)x->rows * x->cols * sizeof(float));
}

/* Free what two csv_scan_split() calls, returning ra and rb, gave. */
static void free_pair(struct csv_info *a, int ra, struct csv_matrix *ma,
		      struct csv_info *b, int rb, struct csv_matrix *mb)
{
	csv_info_free(a);
	csv_info_free(b);
	if (ra == 0)
		free(ma->data);
	if (rb == 0)
		free(mb->data);
}

/*
 * csv_scan_split() against one pass: the same outcome, the same error
 * at the same place, the same columns, classes and matrix; means and
 * deviations equal to rounding.  Returns true if they agree.
 */
static bool same_outcome(const struct csv_info *a, int ra,
			 const struct problem *pa, const struct csv_info *b,
			 int rb, const struct problem *pbb)
{
	bool same = ra == rb;
	size_t i, j;

	if (same && ra < 0)
		same = pa->line == pbb->line && pa->col == pbb->col &&
		       !strcmp(pa->msg, pbb->msg) && !b;
	if (same && ra == 0)
		same = a->nrows == b->nrows && a->ncols == b->ncols &&
		       a->bom == b->bom;
	for (i = 0; same && ra == 0 && i < a->ncols; i++) {
		const struct csv_column *x = &a->cols[i], *y = &b->cols[i];

		same = !strcmp(x->name, y->name) && x->type == y->type &&
		       x->count == y->count && x->missing == y->missing &&
		       x->distinct == y->distinct &&
		       x->distinct_estimated == y->distinct_estimated &&
		       x->nclasses == y->nclasses &&
		       (x->type != CSV_NUMERIC ||
			(x->min == y->min && x->max == y->max &&
			 near(x->mean, y->mean) && near(x->std, y->std)));
		for (j = 0; same && j < x->nclasses; j++)
			same = x->classes[j].count == y->classes[j].count &&
			       !strcmp(x->classes[j].value,
				       y->classes[j].value);
	}
	return same;
}

/*
 * csv_scan_split() against one pass: the same outcome, the same error
 * at the same place, the same columns, classes and matrix; means and
 * deviations equal to rounding.  Returns true if they agree.
 */
static bool split_agrees(const char *in, size_t len, size_t parts,
			 bool print)
{
	struct csv_info *a = NULL, *b = NULL;
	struct csv_matrix ma, mb;
	struct problem pa = { 0 }, pbb = { 0 };
	int ra = csv_scan_split(in, len, NULL, &a, &ma, &pa, 1);
	int rb = csv_scan_split(in, len, NULL, &b, &mb, &pbb, parts);
	bool same = same_outcome(a, ra, &pa, b, rb, &pbb);

	if (same && ra == 0)
		same = same_matrix(&ma, &mb);
	if (same && ra < 0)
		same = !mb.data;
	if (!same && print)
		printf("# %zu parts: rc %d/%d, %u:%u/%u:%u %s/%s\n", parts, ra,
		       rb, pa.line, pa.col, pbb.line, pbb.col, pa.msg,
		       pbb.msg);
	free_pair(a, ra, &ma, b, rb, &mb);
	return same;
}

/*
 * The streaming scan fed in pieces cut at random against csv_scan() of
 * the whole: the same outcome.
 */
/*
 * A stream that falls behind by more than two split parts (SPLIT_MIN, 16
 * MiB, each) is scanned in parts on threads (csv_scanner_more): 40 MiB
 * with quoted newlines and commas, fed in pieces that end inside quoted
 * fields, agree with one csv_scan(); so does the same with a bad row
 * past the first part, which must still be reported where it is.
 */
static char *quoted_rows(size_t want, size_t bad_at, size_t *len)
{
	char *buf = malloc(want + 256);
	size_t n = 0;
	size_t i = 0;

	if (!buf)
		return NULL;
	n = (size_t)sprintf(buf, "id,x,note,y\n");
	while (n < want) {
		if (bad_at && n >= bad_at) {
			n += (size_t)sprintf(buf + n, "%zu,1,\"unclosed\n", i);
			bad_at = 0;
		}
		n += (size_t)sprintf(buf + n,
				     i % 3 ? "%zu,%zu.5,\"a,\nb \"\"q\"\"\",%zu\n"
					   : "%zu,%zu.5,plain,%zu\n",
				     i, i % 977, i % 13);
		i++;
	}
	*len = n;
	return buf;
}

static bool stream_big_agrees(const char *in, size_t len, const size_t *cuts,
			      size_t ncuts)
{
	struct csv_info *a = NULL, *b = NULL;
	struct problem pa = { 0 }, pbb = { 0 };
	struct csv_scanner *sc;
	int ra = csv_scan(in, len, NULL, &a, NULL, &pa);
	int rb;
	bool same;

	if (csv_scanner_new(NULL, &sc) < 0)
		return false;
	for (size_t i = 0; i < ncuts; i++)
		csv_scanner_more(sc, in, cuts[i] < len ? cuts[i] : len);
	rb = csv_scanner_end(sc, in, len, &b, &pbb);
	same = same_outcome(a, ra, &pa, b, rb, &pbb);
	if (!same)
		printf("# big stream: rc %d/%d, %u:%u/%u:%u %s/%s\n", ra, rb,
		       pa.line, pa.col, pbb.line, pbb.col, pa.msg, pbb.msg);
	csv_info_free(a);
	csv_info_free(b);
	return same;
}

static void test_stream_split(void)
{
	size_t len;
	char *buf = quoted_rows((size_t)40 << 20, 0, &len);
	/* 37 MiB at once (parts), a little more (serial), the rest (parts) */
	size_t cuts[] = { ((size_t)37 << 20) + 5, ((size_t)38 << 20) + 11,
			  len };
	const char *q;

	ok(buf && stream_big_agrees(buf, len, cuts, 3),
	   "a stream 37 MiB behind, scanned in parts, agrees with one scan");
	/* a cut inside a quoted field: the record waits for the next piece */
	q = buf ? strstr(buf + ((size_t)35 << 20), "\"a,\nb") : NULL;
	cuts[0] = q ? (size_t)(q - buf) + 3 : 0;
	ok(buf && q && stream_big_agrees(buf, len, cuts, 3),
	   "and cut inside a quoted field");
	free(buf);
	buf = quoted_rows((size_t)40 << 20, (size_t)30 << 20, &len);
	ok(buf && stream_big_agrees(buf, len, cuts, 3),
	   "an unclosed quote past the first part: the same error");
	free(buf);
	/*
	 * 20 MiB scanned serially first: column a (a new value every third
	 * row) is in tier 3 before the 45 MiB behind it are cut into parts,
	 * whose later parts then start it there; the estimate is the same.
	 */
	buf = malloc((size_t)66 << 20);
	len = buf ? (size_t)sprintf(buf, "a,b\n") : 0;
	for (size_t i = 0; buf && len < ((size_t)66 << 20) - 64; i++)
		len += (size_t)sprintf(buf + len, "%zu,%zu\n", i / 3, i % 100);
	cuts[0] = (size_t)20 << 20;
	cuts[1] = ((size_t)65 << 20) + 7;
	cuts[2] = len;
	ok(buf && stream_big_agrees(buf, len, cuts, 3),
	   "parts after a column went to tier 3 start it there: the same");
	free(buf);
}

static bool stream_agrees(const char *in, size_t len, uint64_t *seed,
			  bool print)
{
	struct csv_info *a = NULL, *b = NULL;
	struct problem pa = { 0 }, pbb = { 0 };
	struct csv_scanner *sc;
	size_t at = 0;
	int ra = csv_scan(in, len, NULL, &a, NULL, &pa);
	int rb;
	bool same;

	if (csv_scanner_new(NULL, &sc) < 0)
		return false;
	while (at < len) {
		at += 1 + rng_next(seed) % (len / 3 + 1);
		csv_scanner_more(sc, in, at < len ? at : len);
	}
	rb = csv_scanner_end(sc, in, len, &b, &pbb);
	same = same_outcome(a, ra, &pa, b, rb, &pbb);
	if (!same && print)
		printf("# stream: rc %d/%d, %u:%u/%u:%u %s/%s\n", ra, rb,
		       pa.line, pa.col, pbb.line, pbb.col, pa.msg, pbb.msg);
	csv_info_free(a);
	csv_info_free(b);
	return same;
}

/*
 * A random CSV of about n bytes: records of 3 fields from pieces that
 * stress the record splits (quoted newlines and commas, doubled quotes,
 * CRLF, blank lines), and now and then a piece that breaks it.
 */
static size_t random_csv(char *buf, size_t n, uint64_t *seed)
{
	static const char *const field[] = {
		"1", "-2.5", "3e2", "x", "\xc3\xa9", "\"q\"", "\"a,b\"",
		"\"l\nm\"", "\"\"\"\"", "", " 7 ", "NA", "2024-01-02",
		"\"\n\n\"",
	};
	static const char *const broken[] = {
		"\"", "x\"y", ",", "\n", "\"a\"b", "\xff",
	};
	const size_t nf = sizeof(field) / sizeof(field[0]);
	size_t k = (size_t)snprintf(buf, n, "a,b,c\n");
	size_t f;

	while (k + 40 < n) {
		for (f = 0; f < 3; f++) {
			uint64_t r = rng_next(seed);
			const char *s = r % 400 ? field[(r >> 16) % nf]
						: broken[(r >> 16) % 6];

			memcpy(buf + k, s, strlen(s));
			k += strlen(s);
			buf[k++] = f < 2 ? ',' : '\n';
		}
		if (rng_next(seed) % 5 == 0) {
			memcpy(buf + k - 1, "\r\n", 2);
			k++;
		}
	}
	if (rng_next(seed) % 3 == 0) {
		memcpy(buf + k, "\n\n", 2);
		k += 2;
	}
	return k;
}

static void test_split(void)
{
	static const char *const good[] = {
		"\xef\xbb\xbf\" a \", b ,\"c\"\"d\",\"e\nf\"\r\n"
		"\"x, y\",\"he said \"\"hi\"\"\",,\"multi\nline\"\r\n"
		"\"1\",2,\"\",\"\"\r\n"
		"plain,\"\"\"\",3,x\n"
		"\n\r\n",
		"a\n1\n\n2\n\n\n",
		"a,t\n\"x\ny\nz\",2024-01-01\n\"\"\"\n\",2024-02-03\n3,\n",
		"a,b\n1,2\n3,4\n\n\n\n",
	};
	uint64_t seed = 42;
	unsigned bad = 0;
	unsigned sbad = 0;
	unsigned good_runs = 0;
	size_t len;
	size_t i;
	size_t parts;
	char *buf;

	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		size_t n = c->len ? c->len : strlen(c->in);

		for (parts = 2; parts <= 5; parts++)
			if (!c->lim.max_field && !c->lim.max_line &&
			    !c->lim.max_cols &&
			    !split_agrees(c->in, n, parts, true))
				bad++;
		if (!c->lim.max_field && !c->lim.max_line &&
		    !c->lim.max_cols)
			for (parts = 0; parts < 8; parts++)
				sbad += !stream_agrees(c->in, n, &seed, true);
	}
	ok(!bad, "every bad input: the same error in 2 to 5 parts");
	ok(!sbad, "every bad input: the same error streamed in pieces");
	sbad = 0;
	bad = 0;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		for (parts = 2; parts <= 8; parts++) {
			bad += !split_agrees(good[i], strlen(good[i]), parts,
					     true);
			sbad += !stream_agrees(good[i], strlen(good[i]),
					       &seed, true);
		}
	ok(!bad, "quotes, newlines in fields, blank lines: 2 to 8 parts");
	ok(!sbad, "the same, streamed in pieces");
	bad = 0;
	buf = malloc(4096);
	for (i = 0; buf && i < 3000; i++) {
		size_t n = random_csv(buf, 64 + i % 4000, &seed);
		struct csv_info *info = NULL;
		struct problem pb;

		parts = 2 + i % 6;
		bad += !split_agrees(buf, n, parts, bad < 5);
		sbad += !stream_agrees(buf, n, &seed, sbad < 5);
		if (csv_scan_split(buf, n, NULL, &info, NULL, &pb, 1) == 0)
			good_runs++;
		csv_info_free(info);
	}
	free(buf);
	ok(!bad, "3000 random inputs: split and one pass agree");
	ok(!sbad, "3000 random inputs: streamed in pieces and whole agree");
	ok(good_runs > 30, "some of them valid");
	printf("# %u of the random inputs valid\n", good_runs);
	/* The distinct tiers meet in the merge: hashes, sketches, classes. */
	buf = make_rows(300000, 150000, 7, &len);
	bad = 0;
	for (parts = 2; buf && parts <= 4; parts++)
		bad += !split_agrees(buf, len, parts, true);
	free(buf);
	buf = make_rows(CSV_DISTINCT_EXACT, 30000, 2000, &len);
	for (parts = 2; buf && parts <= 4; parts++)
		bad += !split_agrees(buf, len, parts, true);
	sbad = buf && !stream_agrees(buf, len, &seed, true);
	free(buf);
	ok(!bad, "tiers 1 to 3 merged as one pass counts them");
	ok(!sbad, "and streamed in pieces");
	test_stream_split();
}

struct num_case {
	const char *in;
	bool ok;
};

static const struct num_case num_cases[] = {
	{ "0.1", true },
	{ "1e-300", true },
	{ "123456789012345678901234", true },
	{ "  42\t", true },
	{ "+1.5", true },
	{ ".5", true },
	{ "5.", true },
	{ "1E+5", true },
	{ "1e-5", true },
	{ "9007199254740993", true },
	{ "1.7976931348623157e308", true },
	{ "4.9e-324", true },
	{ "2.2250738585072011e-308", true },
	{ "1e-400", true },
	{ "0.000000000000000000000000000001", true },
	{ "3.14159265358979323846264338327950288419716939937510", true },
	{ "12345678.12345678", true },
	{ "1234567890123456789", true },
	{ "1e22", true },
	{ "1e23", true },
	{ "-123.456e-7", true },
	{ "1e309", false },
	{ "", false },
	{ " ", false },
	{ "abc", false },
	{ "1e", false },
	{ "1e+", false },
	{ "--1", false },
	{ "1.2.3", false },
	{ "0x10", false },
	{ "inf", false },
	{ "nan", false },
	{ "NaN", false },
	{ "1,5", false },
	{ ".", false },
	{ "-", false },
	{ "e5", false },
	{ "1 2", false },
	{ "1_000", false },
	/* number syntax, then text: no value is taken, none is returned */
	{ "12e45abc", false },
	{ "1e400x", false },
	{ "123456789012345678901x", false },
};

static void test_parse_double(void)
{
	char *huge;
	double v;
	size_t i;
	size_t n;

	for (i = 0; i < sizeof(num_cases) / sizeof(num_cases[0]); i++) {
		const struct num_case *c = &num_cases[i];
		char name[128];
		bool r;

		v = -12345;
		r = csv_parse_double(c->in, strlen(c->in), &v);
		snprintf(name, sizeof(name), "parse \"%s\"", c->in);
		if (!c->ok) {
			ok(!r, name);
			continue;
		}
		ok(r && v == strtod(c->in, NULL), name);
	}
	ok(csv_parse_double("-0", 2, &v) && v == 0 && signbit(v), "-0");
	ok(csv_parse_double("0.1", 3, &v) && v == 0.1, "0.1 exact");
	ok(csv_parse_double("12x", 2, &v) && v == 12, "length respected");

	/*
	 * 2^53 + 1 is halfway between two doubles and rounds to even; a
	 * nonzero digit 800 places later must round it up, and the parser
	 * keeps only 780 digits.
	 */
	huge = malloc(1000);
	if (!huge) {
		skip("no memory");
		return;
	}
	n = (size_t)snprintf(huge, 1000, "9007199254740993.");
	memset(huge + n, '0', 800);
	n += 800;
	huge[n++] = '1';
	huge[n] = '\0';
	ok(csv_parse_double(huge, n, &v) && v == 9007199254740994.0,
	   "sticky digit past 780 rounds up");
	huge[n - 1] = '0';
	ok(csv_parse_double(huge, n, &v) && v == 9007199254740992.0,
	   "exact halfway rounds to even");
	free(huge);
}

/* A xorshift for test_parse_long: the same numbers every run. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Whether csv_parse_double reads s as strtod() does, bit for bit. */
static bool same_as_strtod(const char *s)
{
	double v, want = strtod(s, NULL);

	return csv_parse_double(s, strlen(s), &v) &&
	       memcmp(&v, &want, sizeof(v)) == 0;
}

/*
 * 17 to 19 digits (what "%.17g" prints) take a 64-bit mantissa path:
 * the same bits as strtod() for random doubles printed with 16 to 19
 * digits, random 19-digit mantissas times 10^-30..30, and the integers
 * exactly halfway between two doubles in [2^53, 2^64) and beside them.
 */
static void test_parse_long(void)
{
	static const char *const fmts[] = { "%.16g", "%.17g", "%.18g",
					    "%.19g" };
	uint64_t st = 88172645463325252ULL;
	long bad[3] = { 0, 0, 0 };
	char b[64];

	for (int i = 0; i < 200000; i++) {
		uint64_t bits = rng_next(&st);
		double d;

		memcpy(&d, &bits, sizeof(d));
		if (!isfinite(d))
			continue;
		snprintf(b, sizeof(b), fmts[i % 4], d);
		bad[0] += !same_as_strtod(b);
	}
	for (int i = 0; i < 200000; i++) {
		uint64_t m = rng_next(&st) % 10000000000000000000ULL;
		int e = (int)(rng_next(&st) % 61) - 30;

		snprintf(b, sizeof(b), "%llue%d", (unsigned long long)m, e);
		bad[1] += !same_as_strtod(b);
	}
	for (int i = 0; i < 200000; i++) {
		int k = 53 + (int)(rng_next(&st) % 11);
		uint64_t low = rng_next(&st) & ((1ULL << k) - 1);
		uint64_t mid = (1ULL << k) + (low & ~((1ULL << (k - 52)) - 1)) +
			       (1ULL << (k - 53));

		for (int dm = -1; dm <= 1; dm++) {
			snprintf(b, sizeof(b), "%llu",
				 (unsigned long long)(mid + (uint64_t)dm));
			bad[2] += !same_as_strtod(b);
		}
	}
	is_int(bad[0], 0, "random doubles, 16-19 digits: as strtod");
	is_int(bad[1], 0, "19-digit mantissas, 10^-30..30: as strtod");
	is_int(bad[2], 0, "halfway integers and neighbours: as strtod");
}

/*
 * csv_numbers reads a run of plain numbers as csv_field_next and then
 * csv_parse_double read them, and stops, unread, at any other field.
 */
static void test_numbers(void)
{
	static const struct {
		const char *line;
		size_t max;
		size_t want;     /* fields read */
		bool ended;
	} cases[] = {
		{ "1,2.5,-3e2,+.5,7", 16, 5, true },
		{ "12", 16, 1, true },
		{ "1, 2,3", 16, 1, false },  /* a blank: csv_parse_double's */
		{ "1,abc,3", 16, 1, false },
		{ "1,\"2\",3", 16, 1, false },
		{ "1,,3", 16, 1, false },    /* missing */
		{ "1,", 16, 1, false },      /* an empty last field */
		{ "1e400,2", 16, 0, false }, /* out of range */
		{ "1.5e,2", 16, 0, false },
		{ "nan,1", 16, 0, false },
		{ "-,1", 16, 0, false },
		{ "0x10", 16, 0, false },
		{ "1.,2", 16, 2, true },
		{ "1,2,3", 2, 2, false },    /* max */
		{ "", 16, 0, false },
	};
	char name[96];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *line = cases[i].line, *end = line + strlen(line);
		const char *fields[16], *next;
		size_t flen[16], n;
		double num[16];
		bool ended, same = true;
		struct csv_tok t = { line, end, line, 1, SIZE_MAX, false,
				     NULL };
		struct problem pb = { 0 };

		t.pb = &pb;
		n = csv_numbers(line, end, fields, flen, num, cases[i].max,
				&next, &ended);
		for (size_t k = 0; k < n; k++) {
			struct csv_field f;
			double v = 0;

			same = same && csv_field_next(&t, &f) == 0 &&
			       f.p == fields[k] && f.len == flen[k] &&
			       csv_parse_double(f.p, f.len, &v) &&
			       v == num[k];
		}
		snprintf(name, sizeof(name), "csv_numbers \"%s\": %zu "
					     "fields as the tokenizer reads "
					     "them", line, cases[i].want);
		ok(n == cases[i].want && ended == cases[i].ended && same &&
			   next == (ended ? end : t.p),
		   name);
	}
}

/*
 * A plain field ends at its first comma, LF or CRLF, or fails at its
 * first quote, NUL or invalid byte, wherever that byte is among the
 * 8-byte words csv_plain_skip passes over.
 */
static void test_plain_words(void)
{
	static const char stops[] = { ',', '\n', '"', '\0', '\r', '\x80' };
	int bad = 0;

	for (size_t k = 0; k < sizeof(stops); k++) {
		for (size_t at = 0; at < 40; at++) {
			char in[48];
			struct problem pb = { 0 };
			struct csv_tok t = { 0 };
			struct csv_field f;
			int rc;

			memset(in, 'x', sizeof(in));
			in[at] = stops[k];
			in[at + 1] = stops[k] == '\r' ? '\n' : 'y';
			t.p = in;
			t.end = in + sizeof(in);
			t.line = 1;
			t.line_start = in;
			t.max_field = 1000;
			t.check_utf8 = true;
			t.pb = &pb;
			rc = csv_field_next(&t, &f);
			if (stops[k] == ',' || stops[k] == '\n' ||
			    stops[k] == '\r')
				bad += rc != 0 || f.len != at;
			else
				bad += rc != -EINVAL || pb.col != at + 1;
		}
	}
	is_int(bad, 0, "plain fields end or fail at the byte, any offset");
}

/*
 * One pass over in and over the same fields all quoted, which the record
 * loop's fast paths leave to csv_field_next(): the same outcome, matrix
 * bits and (one pass each) the same sums.  Returns true if they agree.
 */
static bool quoted_agrees(const char *in, size_t len, const char *qin,
			  size_t qlen)
{
	struct csv_info *a = NULL, *b = NULL;
	struct csv_matrix ma, mb;
	struct problem pa = { 0 }, pbb = { 0 };
	int ra = csv_scan_split(in, len, NULL, &a, &ma, &pa, 1);
	int rb = csv_scan_split(qin, qlen, NULL, &b, &mb, &pbb, 1);
	bool same = ra == 0 && same_outcome(a, ra, &pa, b, rb, &pbb);
	size_t i;

	for (i = 0; same && i < a->ncols; i++)
		same = memcmp(&a->cols[i].mean, &b->cols[i].mean,
			      sizeof(double)) == 0 &&
		       memcmp(&a->cols[i].std, &b->cols[i].std,
			      sizeof(double)) == 0;
	if (same)
		same = same_matrix(&ma, &mb);
	if (!same)
		printf("# plain/quoted: rc %d/%d, %u:%u %s\n", ra, rb, pa.line,
		       pa.col, pa.msg);
	free_pair(a, ra, &ma, b, rb, &mb);
	return same;
}

/*
 * A random plain field for test_text_fields() at buf: digests, text of
 * any length with the bytes that numbers, blanks and times are made of,
 * missing tokens, numbers.  Returns its length.
 */
static size_t text_field(char *buf, uint64_t *seed)
{
	static const char *const fixed[] = {
		"", "NA", "null", "?", "N/a", "none", " 12 ", "\t-3.5",
		"1e999", "12e45abc", "12e45", "0x1f", "1e", "-", ".", " ",
		"2024-01-01", "2024-01-01T10:00Z", "nan", "x ", " x",
		"123456789012345678901234", "1234567890123456789012e3x",
	};
	static const char alpha[] = "0123456789abcdef e.-+\tXyZ:";
	uint64_t r = rng_next(seed);
	size_t n = 0;

	switch (r % 4) {
	case 0:
		n = strlen(fixed[(r >> 8) % (sizeof(fixed) / sizeof(*fixed))]);
		memcpy(buf, fixed[(r >> 8) % (sizeof(fixed) / sizeof(*fixed))],
		       n);
		break;
	case 1:
		for (; n < 64; n++)
			buf[n] = "0123456789abcdef"[rng_next(seed) % 16];
		break;
	case 2:
		for (r = (r >> 8) % 71; n < r; n++)
			buf[n] = alpha[rng_next(seed) % (sizeof(alpha) - 1)];
		break;
	default:
		if (r & 256)
			n = (size_t)sprintf(buf, "%d",
					    (int)((r >> 9) % 100000));
		else
			n = (size_t)sprintf(buf, "%.3f",
					    (double)((r >> 9) % 100000) / 7);
		break;
	}
	return n;
}

/*
 * The record loop's fast path for plain text fields (plain_field() in
 * csv.c) against csv_field_next(), which reads the same fields quoted:
 * random rows of digests, text, numbers and missing tokens with LF or
 * CRLF line ends, with and without a last line end, in every tier of
 * distinct values (the digests pass 65536 in the second file).
 */
static void test_text_fields(void)
{
	static const size_t rows[] = { 2000, 70000 };
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	int bad = 0;

	for (size_t k = 0; k < 2 * sizeof(rows) / sizeof(*rows); k++) {
		size_t nr = rows[k / 2];
		size_t ncols = nr > 2000 ? 1 : 4;
		size_t cap = 80 + nr * ncols * 80;
		char *in = malloc(cap);
		char *qin = malloc(cap);
		size_t len = 0;
		size_t qlen = 0;

		if (!in || !qin) {
			free(in);
			free(qin);
			skip("no memory");
			return;
		}
		len = (size_t)sprintf(in, ncols == 1 ? "h\n" : "a,b,c,d\n");
		memcpy(qin, in, len);
		qlen = len;
		for (size_t i = 0; i < nr; i++) {
			for (size_t c = 0; c < ncols; c++) {
				size_t n = ncols == 1 ? 64 : 0;
				char f[80];

				if (ncols == 1)
					for (size_t j = 0; j < n; j++)
						f[j] = "0123456789abcdef"
							[rng_next(&seed) % 16];
				else
					n = text_field(f, &seed);
				memcpy(in + len, f, n);
				len += n;
				qin[qlen++] = '"';
				memcpy(qin + qlen, f, n);
				qlen += n;
				qin[qlen++] = '"';
				if (c + 1 < ncols) {
					in[len++] = ',';
					qin[qlen++] = ',';
				}
			}
			/* the last line end is there in odd k only */
			if (i + 1 == nr && !(k & 1))
				break;
			if (rng_next(&seed) % 4 == 0) {
				in[len++] = '\r';
				qin[qlen++] = '\r';
			}
			in[len++] = '\n';
			qin[qlen++] = '\n';
		}
		bad += !quoted_agrees(in, len, qin, qlen);
		free(in);
		free(qin);
	}
	is_int(bad, 0, "plain text fields read as when quoted");
}

/*
 * Long plain fields: of every length from 1 to 70 at the end of the
 * input (no line end after it), where the 16-byte steps of
 * csv_plain_skip() stop short; and 70 bytes with a quote, a NUL, a byte
 * >= 0x80, a two-byte UTF-8 letter, a lone CR, a blank or a "," at
 * every position, which end the field, fail it at that byte or are data
 * exactly as csv_field_next() says.
 */
static void test_long_fields(void)
{
	static const struct {
		const char *s;
		size_t n;
		const char *msg; /* NULL: data, the same as quoted */
	} odd[] = {
		{ "\"", 1, "quote inside unquoted field" },
		{ "\0", 1, "binary data (NUL byte)" },
		{ "\x80", 1, "invalid UTF-8" },
		{ "\xc3\xa9", 2, NULL },
		{ "\r", 1, NULL },
		{ " ", 1, NULL },
		{ ",", 1, "record has 3 fields, header has 2" },
	};
	int bad = 0;

	for (size_t n = 1; n <= 70; n++) {
		char in[128];
		char qin[128];
		size_t len = (size_t)sprintf(in, "h\n");
		size_t qlen = (size_t)sprintf(qin, "h\n\"");

		for (size_t j = 0; j < n; j++)
			in[len++] = qin[qlen++] = "0123456789abcdef"[j % 16];
		qin[qlen++] = '"';
		bad += !quoted_agrees(in, len, qin, qlen);
	}
	for (size_t k = 0; k < sizeof(odd) / sizeof(*odd); k++) {
		for (size_t at = 0; at < 70; at++) {
			char in[160];
			char qin[160];
			size_t len = (size_t)sprintf(in, "a,b\n");
			size_t qlen = (size_t)sprintf(qin, "a,b\n\"");
			struct csv_info *info = NULL;
			struct csv_matrix mat;
			struct problem pb;
			unsigned col = *odd[k].s == ',' ? 73 : (unsigned)at + 1;
			const char *msg = odd[k].msg;
			int rc;

			for (size_t j = 0; j < 70; j++) {
				if (j == at) {
					memcpy(in + len, odd[k].s, odd[k].n);
					memcpy(qin + qlen, odd[k].s, odd[k].n);
					len += odd[k].n;
					qlen += odd[k].n;
				}
				in[len++] = qin[qlen++] = "abcdef12"[j % 8];
			}
			len += (size_t)sprintf(in + len, ",1\n");
			qlen += (size_t)sprintf(qin + qlen, "\",1\n");
			if (!odd[k].msg) {
				bad += !quoted_agrees(in, len, qin, qlen);
				continue;
			}
			/* a comma makes 3 fields: the third is the error;
			 * a quote first opens a quoted field, never closed */
			if (at == 0 && *odd[k].s == '"')
				msg = "unterminated quoted field";
			rc = scan_str(in, len, NULL, &info, &mat, &pb);
			bad += rc != -EINVAL || pb.line != 2 || pb.col != col ||
			       strcmp(pb.msg, msg);
			if (rc == 0) {
				csv_info_free(info);
				free(mat.data);
			}
		}
	}
	is_int(bad, 0, "long fields end, fail or go on at the byte, "
		       "any offset");
}

struct feed_case {
	const char *in;
	size_t len;                /* 0: strlen(in) */
	size_t ncols;              /* preset header count; 0: from in */
	int rc;
	unsigned line;
	unsigned col;
	const char *msg;
};

/* Long enough that the word-at-a-time path of csv_feed meets each error. */
static const struct feed_case feed_cases[] = {
	{ "a,b\n1,2\n3,4\n", 0, 0, 0, 0, 0, NULL },
	{ "a,b\n1,2\n\n3,4\n", 0, 0, 0, 0, 0, NULL },
	{ "a,b\n1,2\n3\n", 0, 0, -EINVAL, 3, 2,
	  "record has 1 field, header has 2" },
	{ "a,b\n1,2,3\n", 0, 0, -EINVAL, 2, 5,
	  "record has 3 fields, header has 2" },
	{ "aaaa,bbbb,cccc\n11111111,22222222,33333333,44444444,5\n", 0, 0,
	  -EINVAL, 2, 28, "record has 5 fields, header has 3" },
	{ "11111111,22222222,33333333,4444,5555,6666\n", 0, 3, -EINVAL, 1, 28,
	  "record has 6 fields, header has 3" },
	{ "1,2,3,4,5,6,7,8,9,10,11,12\n", 0, 9, -EINVAL, 1, 19,
	  "record has 12 fields, header has 9" },
	{ "1,2,3,4,5,6,7,8,9,10,11,12\n", 0, 12, 0, 0, 0, NULL },
	{ "123456789,123456789\n12345678901234\n", 0, 0, -EINVAL, 2, 15,
	  "record has 1 field, header has 2" },
	{ "a,b\n1234567890,12345\x00" "678\n", 25, 0, -EINVAL, 2, 17,
	  "binary data (NUL byte)" },
	{ "a,b\n1234567890,\xff\n", 0, 0, -EINVAL, 2, 12, "invalid UTF-8" },
	{ "a,b\n1234567890,caf\xc3\xa9,x\n", 0, 0, -EINVAL, 2, 18,
	  "record has 3 fields, header has 2" },
	{ "a,b\n1234567890,caf\xc3(,x\n", 0, 0, -EINVAL, 2, 16,
	  "invalid UTF-8" },
	{ "a,b\n1234567890,12\"34\n", 0, 0, -EINVAL, 2, 14, "stray quote" },
	{ "a,b\n1234567890,\"1,2\n3\"x\n", 0, 0, -EINVAL, 3, 3, "stray quote" },
	{ "a,b\n\"12345,\"\"678\n9\",12345678901\r\n1,2\n", 0, 0, 0, 0, 0,
	  NULL },
	{ "a,b\r\n12345678901234,1\r\n12345678901234\r\n", 0, 0, -EINVAL, 3, 16,
	  "record has 1 field, header has 2" },
	/* records of the header's width passed in one run, then an error */
	{ "a,b\n1,2\n3,4\n55555,666666,7\n", 0, 0, -EINVAL, 4, 14,
	  "record has 3 fields, header has 2" },
	{ "a,b,c\n1,2,3\n4,5,6\n77777777,8\n9,9,9\n", 0, 0, -EINVAL, 4, 11,
	  "record has 2 fields, header has 3" },
	{ "1,2\n3,4\n5,6\n7,8\n9,0\n", 0, 2, 0, 0, 0, NULL },
};

/* Feed in[0..n) in pieces of at most step bytes (0: in one). */
static int feed_steps(const char *in, size_t n, size_t ncols, size_t step,
		      struct csv_feed *c, struct problem *pb)
{
	int rc = 0;

	memset(c, 0, sizeof(*c));
	memset(pb, 0, sizeof(*pb));
	c->ncols = ncols;
	for (size_t at = 0; at < n && rc == 0;) {
		size_t k = step && n - at > step ? step : n - at;

		rc = csv_feed(c, in + at, k, pb);
		at += k;
	}
	return rc;
}

/* The same outcome, error or final state, in one piece and byte by byte. */
static bool feed_agrees(const char *in, size_t n, size_t ncols, size_t step)
{
	struct csv_feed a, b;
	struct problem pa, pbb;
	int ra = feed_steps(in, n, ncols, step, &a, &pa);
	int rb = feed_steps(in, n, ncols, 1, &b, &pbb);

	if (ra != rb)
		return false;
	if (ra < 0)
		return pa.line == pbb.line && pa.col == pbb.col &&
		       !strcmp(pa.msg, pbb.msg);
	return a.ncols == b.ncols && a.fields == b.fields &&
	       a.line == b.line && a.col == b.col &&
	       a.extra_col == b.extra_col && a.utf8 == b.utf8 &&
	       a.quoted == b.quoted && a.quote_end == b.quote_end &&
	       a.field_bytes == b.field_bytes;
}

static void test_feed(void)
{
	static const char alpha[] = "0123456789012345678901234567.-,,,,,,"
				    "\n\n\r\"\xc3\xa9\xff\0";
	uint64_t rng = 0x2545f4914f6cdd1dULL;
	char buf[256];
	bool same = true;

	for (size_t i = 0; i < sizeof(feed_cases) / sizeof(feed_cases[0]);
	     i++) {
		const struct feed_case *fc = &feed_cases[i];
		size_t n = fc->len ? fc->len : strlen(fc->in);
		struct csv_feed c;
		struct problem pb;
		int rc = feed_steps(fc->in, n, fc->ncols, 0, &c, &pb);
		bool splits = true;
		char name[64];

		/* the input's first line names the case: TAP takes one line */
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(fc->in, "\n"),
			 fc->in);
		is_int(rc, fc->rc, name);
		if (fc->rc < 0) {
			is_int(pb.line, fc->line, name);
			is_int(pb.col, fc->col, name);
			is_str(pb.msg, fc->msg, name);
		}
		for (size_t step = 1; step <= n; step++)
			splits = splits && feed_agrees(fc->in, n, fc->ncols,
						       step);
		ok(splits, "every piece size agrees");
	}
	/* random bytes of CSV: in one piece and in 3..9 byte pieces */
	for (int round = 0; round < 20000; round++) {
		size_t n = 1 + round % sizeof(buf);

		for (size_t i = 0; i < n; i++) {
			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			buf[i] = alpha[(rng >> 32) % (sizeof(alpha) - 1)];
		}
		/* mostly plain records, so that runs get past the first */
		if (round % 4)
			for (size_t i = 0; i < n; i++)
				if (buf[i] == '"' || buf[i] == '\0' ||
				    (unsigned char)buf[i] >= 0x80)
					buf[i] = '7';
		same = same && feed_agrees(buf, n, round % 7, 0) &&
		       feed_agrees(buf, n, round % 5, 3 + round % 7);
	}
	ok(same, "random input: the same in one piece as byte by byte");
}

static void test_names(void)
{
	enum csv_type t;
	enum csv_role r;

	is_str(csv_type_name(CSV_CATEGORICAL), "categorical", "type name");
	is_int(csv_type_parse("time", &t), 0, "type parse");
	is_int(t, CSV_TIME, "type parse value");
	is_int(csv_type_parse("Time", &t), -EINVAL, "type parse is exact");
	is_str(csv_role_name(CSV_ROLE_PII), "pii", "role name");
	is_int(csv_role_parse("label", &r), 0, "role parse");
	is_int(r, CSV_ROLE_LABEL, "role parse value");
	is_int(csv_role_parse("x", &r), -EINVAL, "role parse unknown");
	csv_info_free(NULL);
	ok(1, "csv_info_free(NULL)");
}

/* The missing tokens in any case and with blanks around; near misses. */
static void test_missing_tokens(void)
{
	static const char *const yes[] = { "", "na", "NA", "n/a", "N/A",
					   "nan", "NaN", "null", "NULL",
					   "none", "None", "?", " na ",
					   "\tnull", " " };
	static const char *const no[] = { "n", "N", "nab", "nul", "nonee",
					  "x", "0", "-", ".", "?x", "n?",
					  "1e5", "nan1", "an", "na na" };
	bool good = true;

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		good = good && csv_is_missing(yes[i], strlen(yes[i]));
	ok(good, "every missing token, in any case, blanks around");
	good = true;
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (csv_is_missing(no[i], strlen(no[i]))) {
			printf("# %s\n", no[i]);
			good = false;
		}
	ok(good, "near misses are values");
}

int main(void)
{
	test_missing_tokens();
	test_bad_input();
	test_quoting();
	test_types();
	test_stats();
	test_classes();
	test_distinct_tiers();
	test_distinct_table();
	test_distinct_collide();
	test_distinct_review();
	test_matrix_growth();
	test_split();
	test_alloc_failures();
	test_parse_double();
	test_parse_long();
	test_plain_words();
	test_text_fields();
	test_long_fields();
	test_numbers();
	test_names();
	test_feed();
	return done();
}
