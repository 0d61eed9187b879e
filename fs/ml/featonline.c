/* SPDX-License-Identifier: MIT */
/*
 * A feature set's online store (featonline.h): one LMDB record per
 * entity in META_ONLINE, "<set>/<entity key>" -> the entity's events as
 * a history of their own (feat_hist_slice), and "<set>/" -> the history
 * blob it was loaded from.  A read is the entity's vector as of now by
 * featcalc.c, the code that writes offline.csv and answers join.
 *
 * The store is loaded from the latest version's history when a sync
 * publishes it, and again whenever a read finds the marker behind the
 * latest version (after a rebuild of the index, a remount, a new spec):
 * the history is read from the store outside any transaction, and the
 * records replaced in one write transaction, which judges the marker
 * again, so readers see the old records or the new, never a mix.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "featcalc.h"
#include "featonline.h"
#include "fs.h"
#include "jsonout.h"
#include "meta.h"
#include "repo.h"
#include "store.h"

#define ONLINE_KEY_MAX 400                  /* bytes of an entity key */
#define HISTORY_MAX ((size_t)16 << 30)

/* "<set>/" + key: the record's LMDB key; -ENAMETOOLONG past the limit. */
static int record_key(const char *set, const char *key, size_t klen,
		      char *out, size_t cap)
{
	if (klen > ONLINE_KEY_MAX || memchr(key, '\0', klen))
		return -ENAMETOOLONG;
	if (snprintf(out, cap, "%s/%.*s", set, (int)klen, key) >= (int)cap)
		return -ENAMETOOLONG;
	return 0;
}

/* What the store should hold: the latest version's history, or none. */
static int wanted(struct fs *fs, const char *set, json_t **man,
		  char *mark, size_t cap)
{
	const char *hash;
	int rc = repo_version(fs, &repo_features, set, 0, man);

	if (rc < 0)
		return rc;
	hash = json_string_value(json_object_get(
		json_object_get(json_object_get(*man, "files"), "history"),
		"hash"));
	snprintf(mark, cap, "%s", hash ? hash : "none");
	return 0;
}

static bool is_loaded(struct fs *fs, const char *set, const char *mark)
{
	struct meta_txn *t;
	char key[300], *val = NULL;
	size_t len;
	bool same = false;

	snprintf(key, sizeof(key), "%s/", set);
	if (meta_txn_begin(fs->meta, true, &t) < 0)
		return false;
	if (meta_get(t, META_ONLINE, key, &val, &len) == 0)
		same = strcmp(val, mark) == 0;
	meta_txn_abort(t);
	free(val);
	return same;
}

/* Replace set's records by h's keys (h NULL: none), in one transaction. */
static int replace(struct fs *fs, const char *set, const char *mark,
		   const struct feat_hist *h, size_t *skipped)
{
	struct meta_txn *t;
	char prefix[300], key[800];
	int rc;

	snprintf(prefix, sizeof(prefix), "%s/", set);
	rc = meta_txn_begin(fs->meta, false, &t);
	if (rc < 0)
		return rc;
	{
		char *val = NULL;
		size_t len;

		/* another reader loaded it meanwhile */
		if (meta_get(t, META_ONLINE, prefix, &val, &len) == 0 &&
		    strcmp(val, mark) == 0) {
			free(val);
			meta_txn_abort(t);
			return 0;
		}
		free(val);
	}
	rc = meta_drop_prefix(t, META_ONLINE, prefix);
	for (size_t k = 0; rc == 0 && h && k < h->nkeys; k++) {
		void *buf;
		size_t len;

		if (record_key(set, h->keys + h->key_off[k],
			       h->key_off[k + 1] - h->key_off[k], key,
			       sizeof(key)) < 0) {
			(*skipped)++;
			continue;
		}
		rc = feat_hist_slice(h, k, &buf, &len);
		if (rc == 0) {
			rc = meta_put(t, META_ONLINE, key, buf, len);
			free(buf);
		}
	}
	if (rc == 0)
		rc = meta_put(t, META_ONLINE, prefix, mark, strlen(mark));
	if (rc < 0) {
		meta_txn_abort(t);
		return rc;
	}
	return meta_txn_commit(t);
}

int featonline_refresh(struct fs *fs, const char *set)
{
	struct feat_spec *spec = NULL;
	struct feat_hist h = { 0 };
	char mark[80], key[96], why[200];
	size_t skipped = 0, len;
	json_t *man = NULL;
	char *buf = NULL;
	int rc;

	rc = wanted(fs, set, &man, mark, sizeof(mark));
	if (rc == -ENOENT)
		return 0; /* no spec yet: nothing to serve */
	if (rc < 0 || is_loaded(fs, set, mark)) {
		json_decref(man);
		return rc;
	}
	if (strcmp(mark, "none") != 0) {
		repo_blob_key(mark, key, sizeof(key));
		rc = store_get(fs->store, key, HISTORY_MAX, &buf, &len);
		if (rc == 0)
			rc = feat_spec_compile(json_object_get(man, "spec"),
					       &spec);
		if (rc == 0 &&
		    feat_hist_load(buf, len, spec, &h, why, sizeof(why)) < 0) {
			fs_log(fs, 3, "features/%s: %s", set, why);
			rc = -EIO;
		}
	}
	if (rc == 0)
		rc = replace(fs, set, mark, strcmp(mark, "none") ? &h : NULL,
			     &skipped);
	if (rc == 0 && strcmp(mark, "none") != 0)
		fs_log(fs, 6,
		       "features/%s: online store loaded: %zu entities%s",
		       set, h.nkeys - skipped,
		       skipped ? " (some keys too long to keep)" : "");
	feat_hist_free(&h);
	free(buf);
	feat_spec_free(spec);
	json_decref(man);
	return rc;
}

/* The entity's record as a loaded history (an aligned copy) and the spec. */
static int record_load(struct fs *fs, const char *set, const char *key,
		       size_t klen, struct feat_spec **spec,
		       struct feat_hist *h)
{
	char rkey[800], why[200], *val = NULL;
	struct meta_txn *t;
	json_t *man;
	size_t len;
	int rc;

	*spec = NULL;
	rc = record_key(set, key, klen, rkey, sizeof(rkey));
	if (rc < 0)
		return -ENOENT;
	rc = featonline_refresh(fs, set);
	if (rc < 0)
		return rc;
	rc = repo_version(fs, &repo_features, set, 0, &man);
	if (rc < 0)
		return rc;
	rc = feat_spec_compile(json_object_get(man, "spec"), spec);
	json_decref(man);
	if (rc == 0)
		rc = meta_txn_begin(fs->meta, true, &t);
	if (rc == 0) {
		rc = meta_get(t, META_ONLINE, rkey, &val, &len);
		meta_txn_abort(t);
	}
	if (rc == 0 && feat_hist_load(val, len, *spec, h, why, sizeof(why)) < 0)
		rc = -EIO;
	if (rc < 0) {
		free(val);
		feat_spec_free(*spec);
		*spec = NULL;
		return rc;
	}
	h->owned = val;
	return 0;
}

bool featonline_has(struct fs *fs, const char *set, const char *key,
		    size_t klen)
{
	char rkey[800];
	struct meta_txn *t;
	int rc;

	if (record_key(set, key, klen, rkey, sizeof(rkey)) < 0 || !klen ||
	    featonline_refresh(fs, set) < 0 ||
	    meta_txn_begin(fs->meta, true, &t) < 0)
		return false;
	rc = meta_has(t, META_ONLINE, rkey);
	meta_txn_abort(t);
	return rc == 1;
}

static int render_csv(const struct feat_spec *s, const struct feat_hist *h,
		      double now, const double *v, struct strbuf *out)
{
	const char *p = h->keys, *end = h->keys + h->key_off[1];
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < s->nent; i++)
		rc = feat_put_field(out, s->entity[i], strlen(s->entity[i])) ||
		     sb_append(out, ",", 1);
	rc = rc || sb_puts(out, "as_of");
	for (size_t i = 0; rc == 0 && i < s->nfeat; i++)
		rc = sb_append(out, ",", 1) ||
		     feat_put_field(out, s->feat[i].name,
				    strlen(s->feat[i].name));
	rc = rc || sb_append(out, "\n", 1);
	while (rc == 0) {
		const char *sep = memchr(p, FEAT_KEY_SEP, (size_t)(end - p));
		const char *e = sep ? sep : end;

		rc = feat_put_field(out, p, (size_t)(e - p)) ||
		     sb_append(out, ",", 1);
		if (!sep)
			break;
		p = sep + 1;
	}
	rc = rc || feat_put_time(out, h, now);
	for (size_t i = 0; rc == 0 && i < s->nfeat; i++)
		rc = sb_append(out, ",", 1) || feat_put_value(out, s, h, i, v[i]);
	return rc || sb_append(out, "\n", 1) ? -ENOMEM : 0;
}

static int render_json(const struct feat_spec *s, const struct feat_hist *h,
		       double now, const double *v, struct strbuf *out)
{
	const char *p = h->keys, *end = h->keys + h->key_off[1];
	json_t *o = json_object();
	struct strbuf sb = { 0 };
	char *text;
	int rc = o ? 0 : -ENOMEM;

	for (size_t i = 0; rc == 0 && i < s->nent; i++) {
		const char *sep = memchr(p, FEAT_KEY_SEP, (size_t)(end - p));
		const char *e = sep ? sep : end;

		rc = json_object_set_new(o, s->entity[i],
					 json_stringn(p, (size_t)(e - p)));
		p = sep ? sep + 1 : end;
	}
	if (rc == 0 && feat_put_time(&sb, h, now) == 0)
		rc = json_object_set_new(o, "as_of",
					 h->iso ? json_stringn(sb.buf, sb.len)
						: json_real(now));
	for (size_t i = 0; rc == 0 && i < s->nfeat; i++) {
		long c = s->feat[i].col;
		json_t *j;

		if (isnan(v[i])) {
			j = json_null();
		} else if (c >= 0 && h->coltype[c]) {
			uint64_t x = (uint64_t)v[i];

			j = x < h->ndict[c] && (double)x == v[i]
				    ? json_stringn(h->dict[c] + h->doff[c][x],
						   h->doff[c][x + 1] -
							   h->doff[c][x])
				    : json_null();
		} else {
			j = json_real(v[i]);
		}
		rc = json_object_set_new(o, s->feat[i].name, j);
	}
	sb_free(&sb);
	text = rc == 0 ? json_dumps_short(o, JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	if (!text)
		return -ENOMEM;
	rc = sb_puts(out, text) || sb_append(out, "\n", 1) ? -ENOMEM : 0;
	free(text);
	return rc;
}

int featonline_render(struct fs *fs, const char *set, const char *key,
		      size_t klen, bool json, struct strbuf *out)
{
	struct feat_spec *spec;
	struct feat_hist h;
	double now = floor((double)time(NULL));
	double *v;
	int rc;

	rc = record_load(fs, set, key, klen, &spec, &h);
	if (rc < 0)
		return rc;
	v = calloc(spec->nfeat + 1, sizeof(*v));
	if (!v) {
		rc = -ENOMEM;
	} else {
		feat_asof(spec, &h, 0, now, v);
		rc = json ? render_json(spec, &h, now, v, out)
			  : render_csv(spec, &h, now, v, out);
	}
	free(v);
	feat_hist_free(&h);
	feat_spec_free(spec);
	return rc;
}

struct list_arg {
	size_t plen;
	int (*fn)(void *arg, const char *key, size_t len);
	void *arg;
};

static int list_one(void *arg, const char *key, const char *val, size_t len)
{
	struct list_arg *l = arg;

	(void)val;
	(void)len;
	if (!key[l->plen])
		return 0; /* the marker */
	return l->fn(l->arg, key + l->plen, strlen(key + l->plen));
}

int featonline_list(struct fs *fs, const char *set,
		    int (*fn)(void *arg, const char *key, size_t len),
		    void *arg)
{
	char prefix[300];
	struct list_arg l = { 0, fn, arg };
	struct meta_txn *t;
	int rc;

	rc = featonline_refresh(fs, set);
	if (rc < 0)
		return rc;
	snprintf(prefix, sizeof(prefix), "%s/", set);
	l.plen = strlen(prefix);
	rc = meta_txn_begin(fs->meta, true, &t);
	if (rc < 0)
		return rc;
	rc = meta_scan(t, META_ONLINE, prefix, NULL, list_one, &l);
	meta_txn_abort(t);
	return rc;
}
