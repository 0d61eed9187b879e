/* SPDX-License-Identifier: MIT */
/*
 * Records and versions of every kind: keys, the index and its catalog
 * entries, create, chmod, remove, and the commit of a new version.
 */
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bcache.h"
#include "catalog.h"
#include "csv.h"
#include "repo.h"
#include "fs.h"
#include "hash.h"
#include "hostfile.h"
#include "jsonout.h"
#include "meta.h"
#include "reap.h"
#include "remote.h"
#include "repo_int.h"
#include "store.h"

/*
 * Index keys: META_REC "<dir>/<name>", META_VER "<dir>/<name>/<10
 * digits>", so that one scan of META_VER sees every kind's versions and
 * a prefix one kind's, or one object's, in version order.
 */
void repo_index_key(const struct repo_kind *k, const char *name, char *out,
		    size_t len)
{
	snprintf(out, len, "%s/%s", k->dir, name);
}

void repo_version_key(const struct repo_kind *k, const char *name,
		      unsigned ver, char *out, size_t len)
{
	snprintf(out, len, "%s/%s/%010u", k->dir, name, ver);
}

void repo_manifest_key(const struct repo_kind *k, const char *name,
			    unsigned ver, char *out, size_t len)
{
	snprintf(out, len, "%s/%s/v%u.json", k->dir, name, ver);
}

void repo_record_key(const struct repo_kind *k, const char *name, char *out,
			  size_t len)
{
	snprintf(out, len, "%s/%s/%s", k->dir, name, k->record);
}

void repo_iso_time(time_t t, char *out, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/*
 * Mounts started together on a new prefix both find no format file: one
 * creates it (conditionally, so the other learns it is there), and a
 * reader may catch it empty while the server writes it (s3rver answers
 * before its file holds the bytes).  An empty one is read again.
 */
#define FORMAT_TRIES 30
#define FORMAT_RETRY_US 100000

int repo_format_check(struct fs *fs, char *msg, size_t msglen)
{
	char *buf = NULL, text[32];
	size_t len = 0;
	unsigned major = 0, minor = 0;
	int rc;

	snprintf(text, sizeof(text), "%d.%d\n", REPO_FORMAT_MAJOR,
		 REPO_FORMAT_MINOR);
	for (int tries = 0; tries < FORMAT_TRIES; tries++) {
		free(buf);
		buf = NULL;
		rc = store_get(fs->store, "mlfs-format", 64, &buf, &len);
		if (rc == -ENOENT) {
			rc = store_create(fs->store, "mlfs-format", text,
					  strlen(text));
			if (rc != -EEXIST)
				return rc;
			continue; /* another mount made it: read theirs */
		}
		if (rc < 0 || len > 0)
			break;
		usleep(FORMAT_RETRY_US);
	}
	if (rc < 0) {
		snprintf(msg, msglen, "cannot read the store's format file: %s",
			 strerror(-rc));
		return rc;
	}
	if (!buf || sscanf(buf, "%u.%u", &major, &minor) != 2 ||
	    major != REPO_FORMAT_MAJOR) {
		snprintf(msg, msglen,
			 "store format \"%.20s\" is not supported (this mlfs "
			 "reads format %d.x)",
			 buf ? buf : "", REPO_FORMAT_MAJOR);
		free(buf);
		return -EPROTO;
	}
	free(buf);
	return 0;
}

/* Parse JSON text held in the index; NULL on error. */
static json_t *json_from(const char *text, size_t len)
{
	return json_loadb(text, len, 0, NULL);
}

int repo_index_get_json(struct fs *fs, enum meta_table tab,
			  const char *key, json_t **out)
{
	struct meta_txn *t;
	char *val;
	size_t len;
	int rc;

	*out = NULL;
	rc = meta_txn_begin(fs->meta, true, &t);
	if (rc < 0)
		return rc;
	rc = meta_get(t, tab, key, &val, &len);
	meta_txn_abort(t);
	if (rc < 0)
		return rc;
	*out = json_from(val, len);
	free(val);
	return *out ? 0 : -EIO;
}

int repo_get(struct fs *fs, const struct repo_kind *k, const char *name, json_t **rec)
{
	char key[512];

	repo_index_key(k, name, key, sizeof(key));
	return repo_index_get_json(fs, META_REC, key, rec);
}

unsigned repo_rec_uint(json_t *rec, const char *field)
{
	return (unsigned)json_integer_value(json_object_get(rec, field));
}

int repo_version(struct fs *fs, const struct repo_kind *k, const char *name, unsigned ver, json_t **man)
{
	char key[512];
	int rc;

	*man = NULL;
	if (ver == 0) {
		json_t *rec;

		rc = repo_get(fs, k, name, &rec);
		if (rc < 0)
			return rc;
		ver = repo_rec_uint(rec, "latest");
		json_decref(rec);
		if (ver == 0)
			return -ENOENT;
	}
	repo_version_key(k, name, ver, key, sizeof(key));
	return repo_index_get_json(fs, META_VER, key, man);
}

struct list_arg {
	size_t skip; /* bytes of the prefix */
	int (*fn)(void *arg, const char *name);
	int (*vfn)(void *arg, unsigned ver);
	void *arg;
};

static int list_one(void *arg, const char *key, const char *val, size_t len)
{
	struct list_arg *la = arg;

	(void)val;
	(void)len;
	return la->fn(la->arg, key + la->skip);
}

int repo_list(struct fs *fs, const struct repo_kind *k, int (*fn)(void *arg, const char *name), void *arg)
{
	struct list_arg la = { .fn = fn, .arg = arg };
	struct meta_txn *t;
	char prefix[300];
	int rc;

	la.skip = (size_t)snprintf(prefix, sizeof(prefix), "%s/", k->dir);
	rc = meta_txn_begin(fs->meta, true, &t);
	if (rc < 0)
		return rc;
	rc = meta_scan(t, META_REC, prefix, NULL, list_one, &la);
	meta_txn_abort(t);
	return rc;
}

static int list_ver(void *arg, const char *key, const char *val, size_t len)
{
	struct list_arg *la = arg;
	const char *slash = strrchr(key, '/');

	(void)val;
	(void)len;
	return la->vfn(la->arg, (unsigned)strtoul(slash + 1, NULL, 10));
}

int repo_versions(struct fs *fs, const struct repo_kind *k, const char *name,
		int (*fn)(void *arg, unsigned ver), void *arg)
{
	struct list_arg la = { .vfn = fn, .arg = arg };
	struct meta_txn *t;
	char prefix[300];
	int rc;

	snprintf(prefix, sizeof(prefix), "%s/%s/", k->dir, name);
	rc = meta_txn_begin(fs->meta, true, &t);
	if (rc < 0)
		return rc;
	rc = meta_scan(t, META_VER, prefix, NULL, list_ver, &la);
	meta_txn_abort(t);
	return rc;
}

/*
 * The text of a record or manifest in the store.  repo_index_update() makes it
 * again for the catalog: the same function, so the same bytes.
 */
char *repo_manifest_text(json_t *j)
{
	return json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
}

/* Write json to the store at key, atomically. */
int repo_put_json_as(struct fs *fs, const char *key, json_t *j,
			     bool create)
{
	char *text = repo_manifest_text(j);
	int rc;

	if (!text)
		return -ENOMEM;
	rc = create ? store_create(fs->store, key, text, strlen(text))
		    : store_put(fs->store, key, text, strlen(text));
	free(text);
	return rc;
}

int repo_put_json(struct fs *fs, const char *key, json_t *j)
{
	return repo_put_json_as(fs, key, j, false);
}

/*
 * In t, key's catalog entry: the text repo_put_json() wrote for j (NULL:
 * the object is gone).  If j changed since, the entry's MD5 will not match
 * the object's ETag and readers GET it: slower, never wrong.
 */
static int index_catalog(struct meta_txn *t, const char *key, json_t *j)
{
	char *text;
	int rc;

	if (!j)
		return catalog_set(t, key, NULL, 0);
	text = repo_manifest_text(j);
	if (!text)
		return -ENOMEM;
	rc = catalog_set(t, key, text, strlen(text));
	free(text);
	return rc;
}

/*
 * Commit the index side of a change: the record of name (NULL: delete
 * it) and optionally one version (man NULL with ver: delete it), with
 * their catalog entries.
 */
int repo_index_update(struct fs *fs, const struct repo_kind *k, const char *name, json_t *rec,
			unsigned ver, json_t *man)
{
	struct meta_txn *t;
	char key[512];
	char *text;
	int rc;

	rc = meta_txn_begin(fs->meta, false, &t);
	if (rc < 0)
		return rc;
	repo_index_key(k, name, key, sizeof(key));
	if (rec) {
		text = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER);
		rc = text ? meta_put(t, META_REC, key, text, strlen(text))
			  : -ENOMEM;
		free(text);
	} else {
		rc = meta_del(t, META_REC, key);
	}
	if (rc < 0)
		goto out_abort;
	repo_record_key(k, name, key, sizeof(key));
	rc = index_catalog(t, key, rec);
	if (rc < 0)
		goto out_abort;
	if (ver) {
		repo_version_key(k, name, ver, key, sizeof(key));
		if (man) {
			text = json_dumps(man, JSON_COMPACT |
						       JSON_PRESERVE_ORDER);
			rc = text ? meta_put(t, META_VER, key, text,
					     strlen(text))
				  : -ENOMEM;
			free(text);
		} else {
			rc = meta_del(t, META_VER, key);
		}
		if (rc < 0)
			goto out_abort;
		repo_manifest_key(k, name, ver, key, sizeof(key));
		rc = index_catalog(t, key, man);
		if (rc < 0)
			goto out_abort;
	}
	rc = meta_txn_commit(t);
	if (rc == 0) {
		catalog_changed(fs);
		atomic_fetch_add(&fs->rec_gen, 1);
	}
	return rc;
out_abort:
	meta_txn_abort(t);
	return rc;
}

/*
 * A record's incarnation: random, written into every manifest of that
 * object.  A rebuild attaches a manifest only to the record of its own
 * incarnation, so the versions a crash left behind in the middle of an
 * rmdir are never adopted by a later object of the same name.
 */
void repo_set_incarnation(json_t *rec)
{
	unsigned char r[8];
	char hex[17];

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return; /* no incarnation: matched as an old record is */
	for (int i = 0; i < 8; i++)
		snprintf(hex + 2 * i, 3, "%02x", r[i]);
	json_object_set_new(rec, "incarnation", json_string(hex));
}

/* Is man a version of rec's incarnation (both without one: old stores)? */
bool repo_same_incarnation(json_t *rec, json_t *man)
{
	const char *a = json_string_value(json_object_get(rec, "incarnation"));
	const char *b = json_string_value(json_object_get(man, "incarnation"));

	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int repo_create(struct fs *fs, const struct repo_kind *k, const char *name, mode_t mode,
	      const struct fs_ctx *ctx, struct problem *pb)
{
	char key[512], when[32];
	json_t *rec;
	time_t now = time(NULL);
	int rc;

	rc = node_name_check(name, pb);
	if (rc < 0)
		return rc;
	repo_iso_time(now, when, sizeof(when));
	rec = json_pack("{s:s, s:s, s:I, s:i, s:i, s:i, s:i, s:i, s:{}, s:{}}",
			"name", name, "created", when, "created_unix",
			(json_int_t)now, "uid", (int)ctx->uid, "gid",
			(int)ctx->gid, "mode", (int)(mode & 07777), "latest", 0,
			"next", 1, "aliases", "overrides");
	if (!rec)
		return -ENOMEM;
	repo_set_incarnation(rec);
	repo_lock(fs);
	{
		json_t *old;

		if (repo_get(fs, k, name, &old) == 0) {
			json_decref(old);
			rc = -EEXIST;
			goto out_unlock;
		}
	}
	repo_record_key(k, name, key, sizeof(key));
	rc = repo_put_json(fs, key, rec);
	if (rc < 0)
		goto out_unlock;
	rc = repo_index_update(fs, k, name, rec, 0, NULL);
	if (rc < 0)
		store_del(fs->store, key); /* a failed mkdir leaves no record */
out_unlock:
	pthread_mutex_unlock(&fs->ds_lock);
	json_decref(rec);
	return rc;
}

int repo_chmod(struct fs *fs, const struct repo_kind *k, const char *name, mode_t mode)
{
	return repo_record_set(fs, k, name, "mode",
			       json_integer((json_int_t)(mode & 07777)));
}

int repo_may(struct fs *fs, const struct repo_kind *k, const char *name,
	     const struct host_user *u, int want)
{
	json_t *rec;
	int rc = repo_get(fs, k, name, &rec);

	if (rc < 0)
		return rc;
	if (!host_may_record(u, rec, want))
		rc = -EACCES;
	json_decref(rec);
	return rc;
}

int repo_record_set(struct fs *fs, const struct repo_kind *k,
		    const char *name, const char *field, json_t *value)
{
	char key[512];
	json_t *rec;
	int rc;

	repo_lock(fs);
	rc = repo_get(fs, k, name, &rec);
	if (rc < 0) {
		json_decref(value);
		goto out_unlock;
	}
	if (value)
		json_object_set_new(rec, field, value);
	else
		json_object_del(rec, field);
	repo_record_key(k, name, key, sizeof(key));
	rc = repo_put_json(fs, key, rec);
	if (rc == 0)
		rc = repo_index_update(fs, k, name, rec, 0, NULL);
	json_decref(rec);
out_unlock:
	pthread_mutex_unlock(&fs->ds_lock);
	return rc;
}

int repo_collect_ver(void *arg, unsigned ver)
{
	struct ver_collect *vc = arg;

	if (vc->n == vc->cap) {
		size_t cap = vc->cap ? vc->cap * 2 : 16;
		unsigned *nv = realloc(vc->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		vc->v = nv;
		vc->cap = cap;
	}
	vc->v[vc->n++] = ver;
	return 0;
}

int repo_remove(struct fs *fs, const struct repo_kind *k, const char *name,
	      struct problem *pb)
{
	struct ver_collect vc = { 0 };
	struct meta_txn *t;
	char key[512], why[300];
	json_t **mans = NULL;
	json_t *rec;
	int rc;

	repo_lock(fs);
	rc = repo_get(fs, k, name, &rec);
	if (rc < 0)
		goto out_unlock;
	json_decref(rec);
	rc = repo_in_use(fs, k, name, 0, why, sizeof(why));
	if (rc > 0) {
		problem_set(pb, 0, 0, "busy: %s", why);
		rc = -EBUSY;
	}
	if (rc < 0)
		goto out_unlock;
	rc = repo_versions(fs, k, name, repo_collect_ver, &vc);
	if (rc < 0)
		goto out_unlock;
	mans = calloc(vc.n + 1, sizeof(*mans));
	if (!mans) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	for (size_t i = 0; i < vc.n; i++)
		repo_version(fs, k, name, vc.v[i], &mans[i]);
	/*
	 * The record goes first: a rebuild after a crash ignores versions
	 * of an object without a record, so a half-removed object never
	 * comes back half.
	 */
	repo_record_key(k, name, key, sizeof(key));
	rc = store_del(fs->store, key);
	if (rc < 0 && rc != -ENOENT)
		goto out_unlock;
	for (size_t i = 0; i < vc.n; i++) {
		repo_manifest_key(k, name, vc.v[i], key, sizeof(key));
		store_del(fs->store, key);
	}
	rc = meta_txn_begin(fs->meta, false, &t);
	if (rc < 0)
		goto out_unlock;
	repo_index_key(k, name, key, sizeof(key));
	meta_del(t, META_REC, key);
	repo_record_key(k, name, key, sizeof(key));
	catalog_set(t, key, NULL, 0);
	for (size_t i = 0; i < vc.n; i++) {
		repo_version_key(k, name, vc.v[i], key, sizeof(key));
		meta_del(t, META_VER, key);
		repo_manifest_key(k, name, vc.v[i], key, sizeof(key));
		catalog_set(t, key, NULL, 0);
	}
	rc = meta_txn_commit(t);
	if (rc == 0) {
		catalog_changed(fs);
		atomic_fetch_add(&fs->rec_gen, 1);
		if (fs->on_version)
			fs->on_version(fs, k, name, 0);
	}
	for (size_t i = 0; rc == 0 && i < vc.n; i++)
		if (mans[i])
			repo_man_release(fs, k, mans[i], name, 0);
out_unlock:
	pthread_mutex_unlock(&fs->ds_lock);
	for (size_t i = 0; mans && i < vc.n; i++)
		json_decref(mans[i]);
	free(mans);
	free(vc.v);
	return rc;
}

/* Highest version other than m[1], into m[0]. */
static int max_ver(void *arg, unsigned ver)
{
	unsigned *m = arg;

	if (ver != m[1] && ver > m[0])
		m[0] = ver;
	return 0;
}

int repo_remove_version(struct fs *fs, const struct repo_kind *k,
		      const char *name, unsigned ver, struct problem *pb)
{
	char key[512], why[300];
	const char *alias;
	unsigned m[2] = { 0, ver };
	json_t *rec = NULL, *man = NULL;
	int rc;

	repo_lock(fs);
	rc = repo_get(fs, k, name, &rec);
	if (rc < 0)
		goto out_unlock;
	rc = repo_version(fs, k, name, ver, &man);
	if (rc < 0)
		goto out_unlock;
	if (repo_alias_uses(rec, ver, &alias)) {
		rc = -EBUSY;
		problem_set(pb, 0, 0, "busy: alias \"%s\" points to it",
			    alias);
		goto out_unlock;
	}
	rc = repo_in_use(fs, k, name, ver, why, sizeof(why));
	if (rc > 0) {
		problem_set(pb, 0, 0, "busy: %s", why);
		rc = -EBUSY;
	}
	if (rc < 0)
		goto out_unlock;
	rc = repo_versions(fs, k, name, max_ver, m);
	if (rc < 0)
		goto out_unlock;
	json_object_set_new(rec, "latest", json_integer(m[0]));
	/* next never goes down: a removed version's name is not reused */
	repo_record_key(k, name, key, sizeof(key));
	rc = repo_put_json(fs, key, rec);
	if (rc < 0)
		goto out_unlock;
	repo_manifest_key(k, name, ver, key, sizeof(key));
	rc = store_del(fs->store, key);
	if (rc < 0 && rc != -ENOENT)
		goto out_unlock;
	rc = repo_index_update(fs, k, name, rec, ver, NULL);
	if (rc == 0)
		repo_man_release(fs, k, man, name, ver);
out_unlock:
	pthread_mutex_unlock(&fs->ds_lock);
	json_decref(man);
	json_decref(rec);
	return rc;
}

/*
 * Write a new version's manifest, the record and the index.  Under
 * ds_lock; the blob is already in the store.
 */
int repo_commit_version(struct fs *fs, const struct repo_kind *k, const char *name, json_t *rec,
			     json_t *man, unsigned ver)
{
	char key[512];
	int rc;

	if (json_object_get(rec, "incarnation"))
		json_object_set(man, "incarnation",
				json_object_get(rec, "incarnation"));
	/*
	 * A new version claims its number: in a bucket several mounts
	 * share, a manifest another writer made is never replaced (the
	 * S3 store's conditional create; see remote.c).
	 */
	repo_manifest_key(k, name, ver, key, sizeof(key));
	rc = repo_put_json_as(fs, key, man, true);
	if (rc < 0)
		return rc;
	json_object_set_new(rec, "latest", json_integer(ver));
	json_object_set_new(rec, "next", json_integer(ver + 1));
	repo_record_key(k, name, key, sizeof(key));
	rc = repo_put_json(fs, key, rec);
	if (rc < 0)
		goto out_undo_manifest;
	rc = repo_index_update(fs, k, name, rec, ver, man);
	if (rc < 0)
		goto out_undo_manifest;
	atomic_fetch_add(&fs->n_versions, 1);
	if (fs->on_version)
		fs->on_version(fs, k, name, ver);
	return 0;
out_undo_manifest:
	repo_manifest_key(k, name, ver, key, sizeof(key));
	store_del(fs->store, key);
	return rc;
}

int repo_open(struct fs *fs)
{
	struct repo *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->verify.m, NULL);
	pthread_cond_init(&r->verify.cond, NULL);
	pthread_mutex_init(&r->imports.m, NULL);
	pthread_cond_init(&r->imports.cond, NULL);
	pthread_mutex_init(&r->reap.lock, NULL);
	pthread_cond_init(&r->reap.cond, NULL);
	pthread_mutex_init(&r->lineage.m, NULL);
	if (repo_vcache_open(r) < 0) {
		free(r);
		return -ENOMEM;
	}
	fs->repo = r;
	return 0;
}

void repo_close(struct fs *fs)
{
	struct repo *r = fs->repo;

	if (!r)
		return;
	repo_imports_free(fs);
	json_decref(r->lineage.reported);
	pthread_mutex_destroy(&r->verify.m);
	pthread_cond_destroy(&r->verify.cond);
	pthread_mutex_destroy(&r->imports.m);
	pthread_cond_destroy(&r->imports.cond);
	pthread_mutex_destroy(&r->reap.lock);
	pthread_cond_destroy(&r->reap.cond);
	pthread_mutex_destroy(&r->lineage.m);
	repo_vcache_close(r);
	free(r);
	fs->repo = NULL;
}
