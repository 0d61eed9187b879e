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
#include <stdbool.h>
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
#include "strbuf.h"

#define CATALOG_MD5_HEX 32
/* The first line of a format 2 catalog, written and recognised. */
#define CATALOG_HEAD "{\"format\":2}\n"

/* An entry, pointing into the catalog's text (or format 1's JSON). */
struct cat_ent {
	const char *key; /* NUL-terminated */
	const char *body; /* NUL-terminated too, len bytes */
	size_t len;
	bool used;       /* taken by catalog_find: what is left is stale */
};

struct catalog {
	char *buf;       /* format 2: the object, separators made NULs */
	json_t *root;    /* format 1: the parsed object */
	struct cat_ent *ents; /* sorted by key, unique */
	size_t n;
	size_t unused;
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

/* One entry of the text: "<keylen> <bodylen>\n<key>\n<body>\n". */
static int catalog_add(void *arg, const char *key, const char *val,
		       size_t len)
{
	struct strbuf *sb = arg;
	size_t klen = strlen(key);

	sb_printf(sb, "%zu %zu\n", klen, len);
	sb_append(sb, key, klen);
	sb_append(sb, "\n", 1);
	sb_append(sb, val, len);
	sb_append(sb, "\n", 1);
	return sb->err; /* the first failure stops the scan */
}

/* The catalog's text, from META_CAT as it is now (in key order). */
static int catalog_text(struct fs *fs, char **out, size_t *len)
{
	struct strbuf sb = { .max = CATALOG_MAX };
	struct meta_txn *t;
	int rc;

	*out = NULL;
	sb_puts(&sb, CATALOG_HEAD);
	rc = meta_txn_begin(fs->meta, true, &t);
	if (rc < 0)
		goto out_free;
	rc = meta_scan(t, META_CAT, "", NULL, catalog_add, &sb);
	meta_txn_abort(t);
	if (rc == 0)
		rc = sb.err;
	if (rc < 0) {
		if (rc == -E2BIG)
			rc = -EFBIG;
		goto out_free;
	}
	*out = sb.buf;
	*len = sb.len;
	return 0;
out_free:
	sb_free(&sb);
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

static int ent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct cat_ent *)a)->key,
		      ((const struct cat_ent *)b)->key);
}

static int ents_grow(struct catalog *c, size_t *cap)
{
	struct cat_ent *n;

	if (c->n < *cap)
		return 0;
	*cap = *cap ? *cap * 2 : 256;
	n = realloc(c->ents, *cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	c->ents = n;
	return 0;
}

/* An unsigned decimal ending at *p's stop character; false if none. */
static bool read_len(const char **p, const char *end, char stop,
		     size_t *out)
{
	size_t v = 0;
	const char *q = *p;

	if (q == end || *q < '0' || *q > '9')
		return false;
	for (; q < end && *q >= '0' && *q <= '9'; q++) {
		if (v > CATALOG_MAX / 10)
			return false;
		v = v * 10 + (size_t)(*q - '0');
	}
	if (q == end || *q != stop)
		return false;
	*p = q + 1;
	*out = v;
	return true;
}

#define WHY_LEN 160 /* what is wrong with a catalog, for the log */

/*
 * Format 2: entries point into buf, their separators turned into NULs.
 * False, with why (WHY_LEN bytes) naming what is wrong, for the log.
 */
static bool parse_v2(struct catalog *c, char *buf, size_t len, char *why)
{
	const char *end = buf + len;
	const char *p = memchr(buf, '\n', len);
	size_t cap = 0;

	p++; /* past the header line */
	while (p < end) {
		size_t klen, blen;
		char *key, *body;

		if (!read_len(&p, end, ' ', &klen) ||
		    !read_len(&p, end, '\n', &blen) || klen == 0 ||
		    (size_t)(end - p) < klen + 1 ||
		    (size_t)(end - p) - klen - 1 < blen + 1) {
			snprintf(why, WHY_LEN, "an entry's lengths are wrong");
			return false;
		}
		key = (char *)p;
		body = key + klen + 1;
		if (key[klen] != '\n' || body[blen] != '\n' ||
		    memchr(key, '\0', klen)) {
			snprintf(why, WHY_LEN,
				 "an entry's separators are wrong");
			return false;
		}
		if (ents_grow(c, &cap) < 0) {
			snprintf(why, WHY_LEN, "%s", strerror(ENOMEM));
			return false;
		}
		key[klen] = '\0';
		body[blen] = '\0';
		c->ents[c->n++] = (struct cat_ent){ key, body, blen, false };
		p = body + blen + 1;
	}
	return true;
}

/* Format 1 (before 2026-12-05): a JSON object, entries point into it. */
static bool parse_v1(struct catalog *c, const char *buf, size_t len,
		     char *why)
{
	json_error_t err;
	json_t *objs, *e;
	const char *key;
	size_t cap = 0;

	c->root = json_loadb(buf, len, 0, &err);
	objs = json_object_get(c->root, "objects");
	if (!json_is_object(c->root) ||
	    json_integer_value(json_object_get(c->root, "format")) != 1 ||
	    !json_is_object(objs)) {
		snprintf(why, WHY_LEN, "%s",
			 c->root ? "not a catalog of format 1 or 2" : err.text);
		return false;
	}
	json_object_foreach(objs, key, e) {
		json_t *b = json_object_get(e, "body");

		/* NULs cannot be told from the end: left out, GET instead */
		if (!json_is_string(b) ||
		    strlen(json_string_value(b)) != json_string_length(b))
			continue;
		if (ents_grow(c, &cap) < 0) {
			snprintf(why, WHY_LEN, "%s", strerror(ENOMEM));
			return false;
		}
		c->ents[c->n++] = (struct cat_ent){
			key, json_string_value(b), json_string_length(b), false
		};
	}
	return true;
}

struct catalog *catalog_load(struct fs *fs)
{
	char why[WHY_LEN] = "";
	struct catalog *c;
	char *buf = NULL;
	size_t len;
	bool ok;
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
	c = calloc(1, sizeof(*c));
	if (!c) {
		free(buf);
		return NULL;
	}
	if (len >= strlen(CATALOG_HEAD) &&
	    memcmp(buf, CATALOG_HEAD, strlen(CATALOG_HEAD)) == 0) {
		c->buf = buf;
		ok = parse_v2(c, buf, len, why);
	} else {
		ok = parse_v1(c, buf, len, why);
		free(buf);
		/* a writer puts it again as format 2, even if nothing changed */
		if (ok)
			catalog_changed(fs);
	}
	if (ok && c->n) {
		qsort(c->ents, c->n, sizeof(*c->ents), ent_cmp);
		for (size_t i = 1; ok && i < c->n; i++)
			if (strcmp(c->ents[i - 1].key, c->ents[i].key) == 0) {
				snprintf(why, sizeof(why), "a key is there twice");
				ok = false;
			}
	}
	if (!ok) {
		fs_log(fs, 5, "%s: %s: reading every manifest instead",
		       CATALOG_KEY, why);
		catalog_free(c);
		return NULL;
	}
	c->unused = c->n;
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

/* The first entry whose key is not below key (c->n if none). */
static size_t lower_bound(const struct catalog *c, const char *key)
{
	size_t lo = 0, hi = c->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(c->ents[mid].key, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int catalog_find(struct catalog *c, const char *key, const char *etag,
		 char **body, size_t *len)
{
	char md5[CATALOG_MD5_HEX + 1];
	struct cat_ent *e;
	size_t i;

	*body = NULL;
	if (!c || !etag[0])
		return -ENOENT;
	i = lower_bound(c, key);
	if (i == c->n || strcmp(c->ents[i].key, key) != 0)
		return -ENOENT;
	e = &c->ents[i];
	if (e->used)
		return -ENOENT;
	/*
	 * The MD5 of the body itself: then what we use is exactly the
	 * object the LIST showed, whatever wrote the catalog.
	 */
	if (md5_hex(e->body, e->len, md5) < 0 || !etag_is(etag, md5))
		return -ENOENT;
	*body = malloc(e->len + 1);
	if (!*body)
		return -ENOMEM;
	memcpy(*body, e->body, e->len);
	(*body)[e->len] = '\0';
	*len = e->len;
	e->used = true; /* what is left unused is stale */
	c->unused--;
	return 0;
}

int catalog_each(struct catalog *c, const char *prefix,
		 int (*fn)(void *arg, const char *key, const char *etag,
			   const char *body, size_t len),
		 void *arg)
{
	char md5[CATALOG_MD5_HEX + 1];
	size_t plen = strlen(prefix);
	int rc;

	if (!c)
		return 0;
	for (size_t i = lower_bound(c, prefix);
	     i < c->n && strncmp(c->ents[i].key, prefix, plen) == 0; i++) {
		const struct cat_ent *e = &c->ents[i];

		if (e->used)
			continue;
		rc = md5_hex(e->body, e->len, md5);
		if (rc == 0)
			rc = fn(arg, e->key, md5, e->body, e->len);
		if (rc)
			return rc;
	}
	return 0;
}

size_t catalog_unused(const struct catalog *c)
{
	return c ? c->unused : 0;
}

void catalog_free(struct catalog *c)
{
	if (!c)
		return;
	json_decref(c->root);
	free(c->buf);
	free(c->ents);
	free(c);
}
