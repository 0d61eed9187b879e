/* SPDX-License-Identifier: MIT */
/*
 * The catalog object (see catalog.h).  Writes come from the remote thread
 * (debounced), from the FUSE worker that handles `sync` in .mlfs/cache and
 * from main() at unmount; fs->cat_lock serialises them so that an older
 * snapshot is never put after a newer one.  Loads and lookups come from
 * the thread running the rebuild.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "catalog.h"
#include "fs.h"
#include "meta.h"
#include "store.h"

#define CATALOG_MD5_HEX 32

struct catalog {
	json_t *root;
	json_t *objects; /* borrowed from root; entries leave as they are used */
};

/* The lower-case hex MD5 of buf into out (CATALOG_MD5_HEX + 1 bytes). */
static int md5_hex(const void *buf, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!EVP_Digest(buf, len, md, &mdlen, EVP_md5(), NULL) || mdlen != 16)
		return -EIO;
	for (unsigned int i = 0; i < mdlen; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[2 * mdlen] = '\0';
	return 0;
}

int catalog_set(struct meta_txn *t, const char *key, const char *body,
		size_t len)
{
	int rc;

	if (body)
		return meta_put(t, META_CAT, key, body, len);
	rc = meta_del(t, META_CAT, key);
	return rc == -ENOENT ? 0 : rc;
}

void catalog_changed(struct fs *fs)
{
	atomic_fetch_add(&fs->cat_gen, 1);
}

static int catalog_add(void *arg, const char *key, const char *val,
		       size_t len)
{
	json_t *objs = arg;
	char md5[CATALOG_MD5_HEX + 1];
	json_t *body;
	int rc;

	rc = md5_hex(val, len, md5);
	if (rc < 0)
		return rc;
	/*
	 * jansson strings are UTF-8 without NULs.  Our manifests always are;
	 * anything else is left out, and readers GET it.
	 */
	body = json_stringn(val, len);
	if (!body)
		return 0;
	if (json_object_set_new(objs, key,
				json_pack("{s:s, s:o}", "md5", md5, "body",
					  body)) < 0)
		return -ENOMEM;
	return 0;
}

/* The catalog's text, from META_CAT as it is now. */
static int catalog_text(struct fs *fs, char **out, size_t *len)
{
	struct meta_txn *t;
	json_t *root, *objs;
	int rc;

	*out = NULL;
	root = json_pack("{s:i, s:{}}", "format", CATALOG_FORMAT, "objects");
	if (!root)
		return -ENOMEM;
	objs = json_object_get(root, "objects");
	rc = meta_txn_begin(fs->meta, true, &t);
	if (rc < 0)
		goto out_free;
	rc = meta_scan(t, META_CAT, "", NULL, catalog_add, objs);
	meta_txn_abort(t);
	if (rc < 0)
		goto out_free;
	/* Compact: bodies are most of it, and they keep their own layout. */
	*out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!*out) {
		rc = -ENOMEM;
		goto out_free;
	}
	*len = strlen(*out);
	if (*len > CATALOG_MAX) {
		free(*out);
		*out = NULL;
		rc = -EFBIG;
	}
out_free:
	json_decref(root);
	return rc;
}

int catalog_write(struct fs *fs)
{
	uint64_t gen;
	char *text;
	size_t len;
	int rc = 0;

	if (!fs->s3 || fs->opts.read_only)
		return 0;
	/*
	 * Held across the PUT, against the usual rule: it orders catalog
	 * writes, so an older snapshot never lands after a newer one, and
	 * only another catalog write ever waits for it.
	 */
	pthread_mutex_lock(&fs->cat_lock);
	/* Read before the snapshot: a change during it makes us due again. */
	gen = atomic_load(&fs->cat_gen);
	if (gen == fs->cat_written)
		goto out_unlock;
	rc = catalog_text(fs, &text, &len);
	if (rc < 0)
		goto out_unlock;
	rc = store_put(fs->s3, CATALOG_KEY, text, len);
	free(text);
	if (rc == 0)
		fs->cat_written = gen;
out_unlock:
	pthread_mutex_unlock(&fs->cat_lock);
	return rc;
}

struct catalog *catalog_load(struct fs *fs)
{
	struct catalog *c;
	json_error_t err;
	char *buf = NULL;
	size_t len;
	json_t *root;
	int rc;

	if (!fs->s3)
		return NULL;
	rc = store_get(fs->s3, CATALOG_KEY, CATALOG_MAX, &buf, &len);
	if (rc < 0) {
		if (rc != -ENOENT)
			fs_log(fs, 5, "%s: %s: reading every manifest instead",
			       CATALOG_KEY, strerror(-rc));
		return NULL;
	}
	root = json_loadb(buf, len, 0, &err);
	free(buf);
	if (!json_is_object(root) ||
	    json_integer_value(json_object_get(root, "format")) !=
		    CATALOG_FORMAT ||
	    !json_is_object(json_object_get(root, "objects"))) {
		fs_log(fs, 5, "%s: %s: reading every manifest instead",
		       CATALOG_KEY,
		       root ? "not a catalog of format 1" : err.text);
		json_decref(root);
		return NULL;
	}
	c = malloc(sizeof(*c));
	if (!c) {
		json_decref(root);
		return NULL;
	}
	c->root = root;
	c->objects = json_object_get(root, "objects");
	return c;
}

/* etag as listed ("\"abc\"" or "abc") is the hex MD5 md5? */
static bool etag_is(const char *etag, const char *md5)
{
	size_t len = strlen(etag);

	if (len >= 2 && etag[0] == '"' && etag[len - 1] == '"') {
		etag++;
		len -= 2;
	}
	return len == CATALOG_MD5_HEX &&
	       strncasecmp(etag, md5, CATALOG_MD5_HEX) == 0;
}

int catalog_find(struct catalog *c, const char *key, const char *etag,
		 char **body, size_t *len)
{
	char md5[CATALOG_MD5_HEX + 1];
	const char *text;
	json_t *b;
	size_t n;

	*body = NULL;
	if (!c || !etag[0])
		return -ENOENT;
	b = json_object_get(json_object_get(c->objects, key), "body");
	text = json_string_value(b);
	if (!text)
		return -ENOENT;
	n = json_string_length(b);
	/*
	 * The MD5 of the body itself, not the entry's "md5" field: then
	 * what we use is exactly the object the LIST showed, whatever wrote
	 * the catalog.
	 */
	if (md5_hex(text, n, md5) < 0 || !etag_is(etag, md5))
		return -ENOENT;
	*body = malloc(n + 1);
	if (!*body)
		return -ENOMEM;
	memcpy(*body, text, n);
	(*body)[n] = '\0';
	*len = n;
	json_object_del(c->objects, key); /* used: what is left is stale */
	return 0;
}

int catalog_each(struct catalog *c, const char *prefix,
		 int (*fn)(void *arg, const char *key, const char *etag,
			   const char *body, size_t len),
		 void *arg)
{
	char md5[CATALOG_MD5_HEX + 1];
	size_t plen = strlen(prefix);
	const char *key;
	json_t *e;
	int rc;

	if (!c)
		return 0;
	json_object_foreach(c->objects, key, e) {
		json_t *b = json_object_get(e, "body");
		const char *text = json_string_value(b);

		if (!text || strncmp(key, prefix, plen) != 0)
			continue;
		rc = md5_hex(text, json_string_length(b), md5);
		if (rc == 0)
			rc = fn(arg, key, md5, text, json_string_length(b));
		if (rc)
			return rc;
	}
	return 0;
}

size_t catalog_unused(const struct catalog *c)
{
	return c ? json_object_size(c->objects) : 0;
}

void catalog_free(struct catalog *c)
{
	if (!c)
		return;
	json_decref(c->root);
	free(c);
}
