/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the catalog (fs/repo/catalog.c) over a memory store
 * standing in for the bucket: a table of catalog objects of format 2 and
 * of format 1 (which earlier versions wrote), each refused whole (bad
 * lengths or separators, a key twice; bad JSON, another format, wrong
 * types, truncated, too deep) or used as far as it is good, with a
 * lookup by key and listed ETag and the answer it must give; then a
 * catalog of many entries, walks by prefix, the NULL catalog a mount
 * gets without one, and a catalog written from an index and read back.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "fixture_fs.h"
#include "fs.h"
#include "meta.h"
#include "store.h"
#include "tap.h"

/* MD5s of the bodies used below */
#define MD5_OBJ "99914b932bd37a50b983c5e7c90ae93b" /* {} */
#define MD5_A "0cc175b9c0f1b6a831c399e269772661"   /* a */
#define MD5_EMPTY "d41d8cd98f00b204e9800998ecf8427e"
#define MD5_AB "8cdeb44417f3c26826595d5820cf5700"  /* a, newline, b */

#define H2 "{'format':2}\n"
#define K1 "datasets/a/v1.json"
#define K2 "models/m/v1.json"

#define HEAD "{'format': 1, 'objects': {"
#define V1 "'datasets/a/v1.json'"
#define ENTRY(md5, body) "{'md5': '" md5 "', 'body': " body "}"

static const struct {
	const char *text;  /* the catalog object, ' for " */
	bool loads;        /* catalog_load gives a catalog */
	int entries;       /* catalog_each over "" visits this many */
	const char *key;   /* looked up, NULL: none */
	const char *etag;  /* as listed, ' for " */
	int rc;            /* catalog_find's */
	const char *body;  /* what it returns */
	const char *why;
} cases[] = {
	/* format 2: "<key length> <body length>\n<key>\n<body>\n" each */
	{ H2, true, 0, K1, "'" MD5_OBJ "'", -ENOENT, NULL, "2: no entry" },
	{ H2 "18 2\n" K1 "\n{}\n", true, 1, K1, "'" MD5_OBJ "'", 0, "{}",
	  "2: found by its listed ETag" },
	{ H2 "18 1\n" K1 "\na\n16 2\n" K2 "\n{}\n", true, 2, K2, MD5_OBJ, 0,
	  "{}", "2: the second entry" },
	{ H2 "16 2\n" K2 "\n{}\n18 1\n" K1 "\na\n", true, 2, K1, MD5_A, 0,
	  "a", "2: keys out of order" },
	{ H2 "18 0\n" K1 "\n\n", true, 1, K1, MD5_EMPTY, 0, "",
	  "2: an empty body" },
	{ H2 "18 3\n" K1 "\na\nb\n", true, 1, K1, MD5_AB, 0, "a\nb",
	  "2: a body of two lines" },
	{ H2 "18 2\n" K1 "\n{}\n", true, 1, K1, MD5_A, -ENOENT, NULL,
	  "2: another ETag (the object changed)" },
	{ H2 "18 2\n" K1 "\n{}", false, 0, NULL, NULL, 0, NULL,
	  "2: truncated" },
	{ H2 "18 2\n" K1 "\n{}\nx", false, 0, NULL, NULL, 0, NULL,
	  "2: trailing bytes" },
	{ H2 "18 3\n" K1 "\n{}\n", false, 0, NULL, NULL, 0, NULL,
	  "2: a body length past the end" },
	{ H2 "18 1\n" K1 "\n{}\n", false, 0, NULL, NULL, 0, NULL,
	  "2: a body length short" },
	{ H2 "17 2\n" K1 "\n{}\n", false, 0, NULL, NULL, 0, NULL,
	  "2: a key length short" },
	{ H2 "0 2\n\n{}\n", false, 0, NULL, NULL, 0, NULL, "2: an empty key" },
	{ H2 "18 2 \n" K1 "\n{}\n", false, 0, NULL, NULL, 0, NULL,
	  "2: a space after the lengths" },
	{ H2 "18\n" K1 "\n{}\n", false, 0, NULL, NULL, 0, NULL,
	  "2: one length" },
	{ H2 "-1 2\n" K1 "\n{}\n", false, 0, NULL, NULL, 0, NULL,
	  "2: a negative length" },
	{ H2 "18 99999999999999999999999\n" K1 "\n{}\n", false, 0, NULL,
	  NULL, 0, NULL, "2: a length past any size" },
	{ H2 "18 2\n" K1 "\n{}\n18 1\n" K1 "\na\n", false, 0, NULL, NULL, 0,
	  NULL, "2: a key twice" },
	{ "{'format':2}", false, 0, NULL, NULL, 0, NULL,
	  "2: the header without its newline" },
	{ "{'format':3}\n", false, 0, NULL, NULL, 0, NULL, "format 3" },
	/* format 1, refused whole: the mount reads every manifest instead */
	{ "", false, 0, NULL, NULL, 0, NULL, "empty object" },
	{ "not json", false, 0, NULL, NULL, 0, NULL, "not JSON" },
	{ "[]", false, 0, NULL, NULL, 0, NULL, "an array" },
	{ "null", false, 0, NULL, NULL, 0, NULL, "null" },
	{ "{}", false, 0, NULL, NULL, 0, NULL, "no format" },
	{ "{'format': 2, 'objects': {}}", false, 0, NULL, NULL, 0, NULL,
	  "another format" },
	{ "{'format': '1', 'objects': {}}", false, 0, NULL, NULL, 0, NULL,
	  "format a string" },
	{ "{'format': 1.0, 'objects': {}}", false, 0, NULL, NULL, 0, NULL,
	  "format a real" },
	{ "{'format': true, 'objects': {}}", false, 0, NULL, NULL, 0, NULL,
	  "format a boolean" },
	{ "{'format': 1}", false, 0, NULL, NULL, 0, NULL, "no objects" },
	{ "{'format': 1, 'objects': []}", false, 0, NULL, NULL, 0, NULL,
	  "objects an array" },
	{ "{'format': 1, 'objects': null}", false, 0, NULL, NULL, 0, NULL,
	  "objects null" },
	{ HEAD V1 ": " ENTRY(MD5_OBJ, "'{}'"), false, 0, NULL, NULL, 0, NULL,
	  "truncated" },
	{ HEAD V1 ": " ENTRY(MD5_OBJ, "'{}'") "}} x", false, 0, NULL, NULL,
	  0, NULL, "trailing bytes" },
	{ HEAD V1 ": " ENTRY(MD5_OBJ, "'a\\u0000b'") "}}", false, 0, NULL,
	  NULL, 0, NULL, "a NUL in a body" },
	{ HEAD V1 ": " ENTRY(MD5_OBJ, "'\xff'") "}}", false, 0, NULL, NULL,
	  0, NULL, "a body not UTF-8" },
	{ HEAD "'a\\u0000b': " ENTRY(MD5_OBJ, "'{}'") "}}", false, 0, NULL,
	  NULL, 0, NULL, "a NUL in a key" },
	/* good */
	{ HEAD "}}", true, 0, V1, "'" MD5_OBJ "'", -ENOENT, NULL,
	  "empty catalog" },
	{ HEAD V1 ": " ENTRY(MD5_OBJ, "'{}'") "}}", true, 1, V1,
	  "'" MD5_OBJ "'", 0, "{}", "found by its listed ETag" },
	{ HEAD V1 ": " ENTRY(MD5_OBJ, "'{}'") "}}", true, 1, V1, MD5_OBJ, 0,
	  "{}", "an ETag without quotes" },
	{ HEAD V1 ": " ENTRY(MD5_OBJ, "'{}'") "}}", true, 1, V1,
	  "'99914B932BD37A50B983C5E7C90AE93B'", 0, "{}",
	  "an ETag in upper case" },
	{ HEAD V1 ": " ENTRY("0000", "'{}'") "}}", true, 1, V1,
	  "'" MD5_OBJ "'", 0, "{}",
	  "a wrong md5 field: the body's own MD5 counts" },
	{ HEAD V1 ": {'body': 'a'}}, 'extra': 5}", true, 1, V1,
	  "'" MD5_A "'", 0, "a", "no md5 field, extra fields" },
	{ HEAD V1 ": " ENTRY(MD5_EMPTY, "''") "}}", true, 1, V1,
	  "'" MD5_EMPTY "'", 0, "", "an empty body" },
	{ HEAD V1 ": " ENTRY(MD5_OBJ, "'{}'") ", " V1 ": {'body': 'a'}}}",
	  true, 1, V1, "'" MD5_A "'", 0, "a", "a repeated key: the last" },
	/* good catalog, no current entry */
	{ HEAD V1 ": " ENTRY(MD5_OBJ, "'{}'") "}}", true, 1, V1,
	  "'" MD5_A "'", -ENOENT, NULL, "another ETag (the object changed)" },
	{ HEAD V1 ": " ENTRY(MD5_OBJ, "'{}'") "}}", true, 1, V1, "", -ENOENT,
	  NULL, "an empty ETag" },
	{ HEAD V1 ": " ENTRY(MD5_OBJ, "'{}'") "}}", true, 1, V1, "''",
	  -ENOENT, NULL, "an ETag of two quotes" },
	{ HEAD V1 ": " ENTRY(MD5_OBJ, "'{}'") "}}", true, 1, V1,
	  "'" MD5_OBJ, -ENOENT, NULL, "an ETag with one quote" },
	{ HEAD V1 ": " ENTRY(MD5_OBJ, "'{}'") "}}", true, 1, V1,
	  "'" MD5_OBJ "-2'", -ENOENT, NULL, "a multipart ETag" },
	{ HEAD V1 ": " ENTRY(MD5_OBJ, "'{}'") "}}", true, 1, V1,
	  "'" MD5_OBJ "0'", -ENOENT, NULL, "an ETag one digit long" },
	{ HEAD V1 ": " ENTRY(MD5_OBJ, "'{}'") "}}", true, 1,
	  "datasets/b/v1.json", "'" MD5_OBJ "'", -ENOENT, NULL,
	  "a key it does not have" },
	{ HEAD V1 ": " ENTRY(MD5_OBJ, "'{}'") "}}", true, 1, "", "'" MD5_OBJ
	  "'", -ENOENT, NULL, "the empty key" },
	/* entries of the wrong shape are left out, the rest used */
	{ HEAD V1 ": " ENTRY(MD5_OBJ, "5") "}}", true, 0, V1, "'" MD5_OBJ "'",
	  -ENOENT, NULL, "a body that is a number" },
	{ HEAD V1 ": " ENTRY(MD5_OBJ, "{'a': 1}") "}}", true, 0, V1,
	  "'" MD5_OBJ "'", -ENOENT, NULL, "a body that is an object" },
	{ HEAD V1 ": " ENTRY(MD5_OBJ, "null") "}}", true, 0, V1,
	  "'" MD5_OBJ "'", -ENOENT, NULL, "a body that is null" },
	{ HEAD V1 ": '{}', 'models/m/v1.json': {'body': 'a'}}}", true, 1, V1,
	  "'" MD5_OBJ "'", -ENOENT, NULL, "an entry that is a string" },
	{ HEAD V1 ": [], 'models/m/v1.json': {'body': 'a'}}}", true, 1,
	  "models/m/v1.json", "'" MD5_A "'", 0, "a",
	  "the good entry beside a bad one" },
};

/* text with ' for ", malloc'd */
static char *dq(const char *text)
{
	char *s = strdup(text);

	for (char *p = s; p && *p; p++)
		if (*p == '\'')
			*p = '"';
	return s;
}

static int count(void *arg, const char *key, const char *etag,
		 const char *body, size_t len)
{
	(void)key;
	(void)etag;
	(void)body;
	(void)len;
	(*(int *)arg)++;
	return 0;
}

static int stop_at_first(void *arg, const char *key, const char *etag,
			 const char *body, size_t len)
{
	(void)key;
	(void)body;
	(void)len;
	(*(int *)arg)++;
	return strlen(etag) == 32 ? 7 : -1;
}

static int keep_md5(void *arg, const char *key, const char *etag,
		    const char *body, size_t len)
{
	(void)key;
	(void)body;
	(void)len;
	snprintf(arg, 33, "%s", etag);
	return 1;
}

static struct catalog *load_text(struct fs *fs, const char *text, size_t len)
{
	if (store_put(fs->s3, CATALOG_KEY, text, len) < 0)
		return NULL;
	return catalog_load(fs);
}

static void test_table(struct fs *fs)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *text = dq(cases[i].text);
		char *etag = cases[i].etag ? dq(cases[i].etag) : NULL;
		struct catalog *c = load_text(fs, text, strlen(text));
		char name[200];
		char *body = (char *)"x";
		size_t len = 99;
		int n = 0, rc;

		snprintf(name, sizeof(name), "%s: %s", cases[i].why,
			 cases[i].loads ? "used" : "refused");
		ok((c != NULL) == cases[i].loads, name);
		catalog_each(c, "", count, &n);
		is_int(n, cases[i].entries, "entries walked");
		if (cases[i].key) {
			/* V1 is written as it stands in the text: quoted */
			char key[64];

			snprintf(key, sizeof(key), "%.*s",
				 (int)strcspn(cases[i].key + (cases[i].key[0] ==
							       '\''),
					      "'"),
				 cases[i].key + (cases[i].key[0] == '\''));
			rc = catalog_find(c, key, etag, &body, &len);
			is_int(rc, cases[i].rc, "catalog_find");
			if (cases[i].rc == 0 && rc == 0) {
				ok(len == strlen(cases[i].body) &&
					   strcmp(body, cases[i].body) == 0,
				   "the body, NUL-terminated");
				free(body);
				is_int(catalog_find(c, key, etag,
						    &body, &len),
				       -ENOENT, "used once");
			}
			ok(body == NULL, "no body when not found");
		}
		catalog_free(c);
		free(text);
		free(etag);
	}
}

/* What a text cannot hold in the table: a NUL in a format 2 key. */
static void test_v2_nul(struct fs *fs)
{
	static const char text[] = "{\"format\":2}\n3 2\na\0b\n{}\n";
	struct catalog *c = load_text(fs, text, sizeof(text) - 1);

	ok(c == NULL, "2: a NUL in a key refused");
	catalog_free(c);
}

/* A catalog written from an index (catalog_write) reads back whole. */
static void test_written(struct fs *fs, const char *dir)
{
	static const char *const keys[] = { "datasets/a b/dataset.json",
					    "datasets/a b/v1.json",
					    "jobs/j.json", "models/m/v1.json" };
	static const char *const bodies[] = { "{}", "{\n  \"x\": 1\n}", "",
					      "\"\\\n\t" };
	struct fixture_fs_opts opts = { .s3 = true, .index = dir,
					.quiet = true };
	struct fs w;
	struct meta_txn *t;
	struct catalog *c;
	int rc, n = 0;

	(void)fs;
	if (fixture_fs_setup(&w, &opts) < 0) {
		ok(0, "written: an index");
		return;
	}
	rc = meta_txn_begin(w.meta, false, &t);
	for (size_t i = 0; rc == 0 && i < 4; i++)
		rc = catalog_set(t, keys[i], bodies[i], strlen(bodies[i]));
	if (rc == 0)
		rc = meta_txn_commit(t);
	is_int(rc, 0, "written: entries in the index");
	catalog_changed(&w);
	is_int(catalog_write(&w), 0, "written: catalog_write");
	c = catalog_load(&w);
	ok(c != NULL, "written: loads");
	catalog_each(c, "", count, &n);
	is_int(n, 4, "written: every entry");
	for (size_t i = 0; i < 4; i++) {
		if (i == 2) {
			/* two used: walks skip them, two left unused */
			n = 0;
			catalog_each(c, "", count, &n);
			is_int(n, 2, "written: a walk skips used entries");
			is_int((int)catalog_unused(c), 2,
			       "written: two unused");
			n = 0;
			catalog_each(c, "datasets/", count, &n);
			is_int(n, 0, "written: a prefix whose entries are used");
		}
		char md5[33], *body = NULL;
		size_t len = 0;

		catalog_each(c, keys[i], keep_md5, md5);
		is_int(catalog_find(c, keys[i], md5, &body, &len), 0, keys[i]);
		ok(body && len == strlen(bodies[i]) &&
			   memcmp(body, bodies[i], len) == 0,
		   "written: the very body");
		free(body);
	}
	is_int((int)catalog_unused(c), 0, "written: all used");
	catalog_free(c);
	fixture_fs_teardown(&w);
}

/* Many entries, walks by prefix, a walk stopped by its callback. */
static void test_many(struct fs *fs)
{
	enum { N = 10000 };
	size_t cap = (size_t)N * 120 + 100, len = 0;
	char *text = malloc(cap);
	struct catalog *c;
	int n = 0;
	char *body;
	size_t blen;

	if (!text) {
		ok(0, "many: memory");
		return;
	}
	len += (size_t)snprintf(text, cap, "{\"format\": 1, \"objects\": {");
	for (int i = 0; i < N; i++)
		len += (size_t)snprintf(text + len, cap - len,
					"%s\"%s/x%d/v1.json\": {\"body\": \"a\"}",
					i ? ", " : "",
					i % 2 ? "models" : "datasets", i);
	len += (size_t)snprintf(text + len, cap - len, "}}");
	c = load_text(fs, text, len);
	ok(c != NULL, "10000 entries load");
	catalog_each(c, "", count, &n);
	is_int(n, N, "all walked");
	n = 0;
	catalog_each(c, "models/", count, &n);
	is_int(n, N / 2, "a prefix walks its own");
	n = 0;
	catalog_each(c, "jobs/", count, &n);
	is_int(n, 0, "and none of another");
	n = 0;
	is_int(catalog_each(c, "", stop_at_first, &n), 7,
	       "a walk stops at its callback's answer");
	is_int(n, 1, "after one entry");
	is_int(catalog_find(c, "models/x1/v1.json", "\"" MD5_A "\"", &body,
			    &blen),
	       0, "one found");
	free(body);
	is_int((int)catalog_unused(c), N - 1, "the rest unused");
	catalog_free(c);

	/* nesting deeper than jansson parses: refused, not a crash */
	len = (size_t)snprintf(text, cap, "{\"format\": 1, \"objects\": ");
	memset(text + len, '[', 100000);
	c = load_text(fs, text, len + 100000);
	ok(c == NULL, "100000 levels of nesting refused");
	catalog_free(c);
	free(text);
}

int main(void)
{
	struct fixture_fs_opts opts = { .s3 = true, .quiet = true };
	struct fs fs;
	char *body = (char *)"x";
	size_t len;
	int n = 0;

	if (fixture_fs_setup(&fs, &opts) < 0)
		return skip_all("no memory store");
	ok(catalog_load(&fs) == NULL, "no catalog object: NULL");
	is_int(catalog_find(NULL, "k", "\"" MD5_OBJ "\"", &body, &len),
	       -ENOENT, "a NULL catalog finds nothing");
	ok(body == NULL, "and sets no body");
	is_int(catalog_each(NULL, "", count, &n), 0, "walks nothing");
	is_int((int)catalog_unused(NULL), 0, "has nothing unused");
	catalog_free(NULL);
	test_table(&fs);
	test_v2_nul(&fs);
	test_many(&fs);
	store_close(fs.s3);
	fs.s3 = NULL;
	ok(catalog_load(&fs) == NULL, "a local store has no catalog");
	fixture_fs_teardown(&fs);
	{
		char dir[] = "/tmp/mlfs-catalog-test-XXXXXX";

		if (mkdtemp(dir)) {
			test_written(&fs, dir);
			fixture_fs_rmrf(dir);
		} else {
			ok(0, "a temporary directory");
		}
	}
	return done();
}
