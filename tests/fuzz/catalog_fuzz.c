/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the catalog reader (fs/repo/catalog.c).  Each input is
 * put in an in-memory store as mlfs-catalog.json and read back as a
 * mount does (catalog_load), then walked as a trusted rebuild does
 * (catalog_each over "datasets/", "models/", "jobs/" and everything),
 * and every key it has is looked up with its own MD5 as the listed
 * ETag (catalog_find, which must then return that very body), with a
 * wrong one, and again after it was used.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "fixture_fs.h"
#include "fs.h"
#include "store.h"

#define MAX_KEYS 64

static struct fs the_fs;

struct entry {
	char *key;
	char etag[40];
	char *body;
	size_t len;
};

struct walk {
	struct entry e[MAX_KEYS];
	size_t n;
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const struct fixture_fs_opts opts = { .s3 = true, .quiet = true };

	(void)argc;
	(void)argv;
	if (fixture_fs_setup(&the_fs, &opts) < 0)
		exit(1);
	return 0;
}

static int count(void *arg, const char *key, const char *etag,
		 const char *body, size_t len)
{
	(void)key;
	(void)etag;
	(void)body;
	(void)len;
	(*(size_t *)arg)++;
	return 0;
}

static int keep(void *arg, const char *key, const char *etag,
		const char *body, size_t len)
{
	struct walk *w = arg;
	struct entry *e;

	if (w->n == MAX_KEYS)
		return 1; /* stops the walk: enough */
	e = &w->e[w->n];
	e->key = strdup(key);
	e->body = malloc(len + 1);
	if (!e->key || !e->body) {
		free(e->key);
		free(e->body);
		return -ENOMEM;
	}
	snprintf(e->etag, sizeof(e->etag), "\"%s\"", etag);
	memcpy(e->body, body, len);
	e->len = len;
	w->n++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const prefixes[] = { "datasets/", "models/",
						"jobs/", "" };
	struct walk w = { .n = 0 };
	struct catalog *c;
	size_t n = 0;
	char *body;
	size_t len;

	if (store_put(the_fs.s3, CATALOG_KEY, data, size) < 0)
		return 0;
	c = catalog_load(&the_fs);
	for (size_t i = 0; i < 4; i++)
		catalog_each(c, prefixes[i], count, &n);
	catalog_each(c, "", keep, &w);
	for (size_t i = 0; i < w.n; i++) {
		struct entry *e = &w.e[i];

		if (catalog_find(c, e->key, "\"0123\"", &body, &len) == 0)
			abort(); /* not the MD5 of any body */
		/* its own body's MD5 finds it, once */
		if (catalog_find(c, e->key, e->etag, &body, &len) != 0 ||
		    len != e->len || memcmp(body, e->body, len))
			abort();
		free(body);
		if (catalog_find(c, e->key, e->etag, &body, &len) != -ENOENT)
			abort();
		free(e->key);
		free(e->body);
	}
	catalog_unused(c);
	catalog_free(c);
	return 0;
}
