/* SPDX-License-Identifier: MIT */
/*
 * The dataset repository (see ds.h): versions as blobs and manifests in
 * the store, indexed in LMDB.  FUSE workers enter from datasets.c; every
 * change holds fs->ds_lock from its checks to its index commit, so version
 * numbers and aliases never race.  Readers only read LMDB.
 *
 * Order of writes for a new version, so that a crash at any point leaves
 * either the old state or the new one: blob (fsync, rename), manifest
 * (fsync, rename), dataset record, then the index.  A crash between the
 * manifest and the index is repaired by the rebuild at the next mount
 * (main.c rebuilds after any unclean shutdown).
 */
#include <errno.h>
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
#include "ds.h"
#include "fs.h"
#include "hash.h"
#include "hostfile.h"
#include "jsonout.h"
#include "meta.h"
#include "reap.h"
#include "remote.h"
#include "csv.h"
#include "store.h"

#define DS_MANIFEST_MAX ((size_t)64 << 20) /* bytes */
#define DS_RECORD_MAX ((size_t)16 << 20)   /* bytes */

static void ds_version_key(const char *name, unsigned ver, char *out,
			   size_t len)
{
	snprintf(out, len, "%s/%010u", name, ver);
}

static void ds_manifest_key(const struct ds_kind *k, const char *name,
			    unsigned ver, char *out, size_t len)
{
	snprintf(out, len, "%s/%s/v%u.json", k->dir, name, ver);
}

static void ds_record_key(const struct ds_kind *k, const char *name, char *out,
			  size_t len)
{
	snprintf(out, len, "%s/%s/%s", k->dir, name, k->record);
}

const struct ds_kind ds_datasets = {
	"datasets", "dataset.json", META_DS, META_DSV,
};

const struct ds_kind ds_models = {
	"models", "model.json", META_MODEL, META_MODELV,
};

void ds_blob_key(const char *hash, char *out, size_t outlen)
{
	snprintf(out, outlen, "blobs/%.2s/%s", hash, hash);
}

bool ds_blob_hash(const char *key, char hash[HASH_HEX_LEN + 1])
{
	const char *h;

	if (strlen(key) != 9 + HASH_HEX_LEN || strncmp(key, "blobs/", 6) != 0 ||
	    key[8] != '/')
		return false;
	h = key + 9;	/* blobs/xx/<hash>, xx its first two digits */
	if (strncmp(key + 6, h, 2) != 0)
		return false;
	/* lower-case, as hash_hex writes them: the name is compared as text */
	if (strspn(h, "0123456789abcdef") != HASH_HEX_LEN)
		return false;
	memcpy(hash, h, HASH_HEX_LEN + 1);
	return true;
}

int ds_blob_error(struct fs *fs, uid_t uid, const char *path, const char *key,
		  int rc)
{
	struct problem pb = { 0 };

	if (rc != -EBADMSG)
		return rc;
	snprintf(pb.path, sizeof(pb.path), "%s", path);
	snprintf(pb.msg, sizeof(pb.msg),
		 "%s: the store's content does not match the hash it is "
		 "named by: not served",
		 key);
	fs_damage(fs, uid, &pb);
	return -EIO;
}

static void iso_time(time_t t, char *out, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int ds_format_check(struct fs *fs, char *msg, size_t msglen)
{
	char *buf = NULL;
	size_t len;
	unsigned major = 0, minor = 0;
	int rc;

	rc = store_get(fs->store, "mlfs-format", 64, &buf, &len);
	if (rc == -ENOENT) {
		char text[32];

		snprintf(text, sizeof(text), "%d.%d\n", DS_FORMAT_MAJOR,
			 DS_FORMAT_MINOR);
		return store_put(fs->store, "mlfs-format", text, strlen(text));
	}
	if (rc < 0) {
		snprintf(msg, msglen, "cannot read the store's format file: %s",
			 strerror(-rc));
		return rc;
	}
	if (sscanf(buf, "%u.%u", &major, &minor) != 2 ||
	    major != DS_FORMAT_MAJOR) {
		snprintf(msg, msglen,
			 "store format \"%.20s\" is not supported (this mlfs "
			 "reads format %d.x)",
			 buf, DS_FORMAT_MAJOR);
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

static int index_get_json(struct fs *fs, enum meta_table tab,
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

int ds_get(struct fs *fs, const struct ds_kind *k, const char *name, json_t **rec)
{
	return index_get_json(fs, k->tab, name, rec);
}

static unsigned rec_uint(json_t *rec, const char *field)
{
	return (unsigned)json_integer_value(json_object_get(rec, field));
}

int ds_version(struct fs *fs, const struct ds_kind *k, const char *name, unsigned ver, json_t **man)
{
	char key[512];
	int rc;

	*man = NULL;
	if (ver == 0) {
		json_t *rec;

		rc = ds_get(fs, k, name, &rec);
		if (rc < 0)
			return rc;
		ver = rec_uint(rec, "latest");
		json_decref(rec);
		if (ver == 0)
			return -ENOENT;
	}
	ds_version_key(name, ver, key, sizeof(key));
	return index_get_json(fs, k->vtab, key, man);
}

struct list_arg {
	int (*fn)(void *arg, const char *name);
	int (*vfn)(void *arg, unsigned ver);
	void *arg;
};

static int list_one(void *arg, const char *key, const char *val, size_t len)
{
	struct list_arg *la = arg;

	(void)val;
	(void)len;
	return la->fn(la->arg, key);
}

int ds_list(struct fs *fs, const struct ds_kind *k, int (*fn)(void *arg, const char *name), void *arg)
{
	struct list_arg la = { .fn = fn, .arg = arg };
	struct meta_txn *t;
	int rc;

	rc = meta_txn_begin(fs->meta, true, &t);
	if (rc < 0)
		return rc;
	rc = meta_scan(t, k->tab, "", NULL, list_one, &la);
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

int ds_versions(struct fs *fs, const struct ds_kind *k, const char *name,
		int (*fn)(void *arg, unsigned ver), void *arg)
{
	struct list_arg la = { .vfn = fn, .arg = arg };
	struct meta_txn *t;
	char prefix[300];
	int rc;

	snprintf(prefix, sizeof(prefix), "%s/", name);
	rc = meta_txn_begin(fs->meta, true, &t);
	if (rc < 0)
		return rc;
	rc = meta_scan(t, k->vtab, prefix, NULL, list_ver, &la);
	meta_txn_abort(t);
	return rc;
}

/*
 * The text of a record or manifest in the store.  index_update() makes it
 * again for the catalog: the same function, so the same bytes.
 */
static char *manifest_text(json_t *j)
{
	return json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
}

/*
 * The check of an index taken from the catalog (ds_rebuild_trusted): a
 * thread runs the full rebuild, LIST and all, verify_delay seconds after
 * the mount, or at once when a change asks for it first.  Reads use the
 * index meanwhile; every change to datasets, models and blobs goes
 * through lock_changes(), which waits for the check, so no version
 * number is handed out and no blob collected from an unchecked index.
 * Deferred, the check does not compete with the first reads of a fresh
 * mount for the server (its LIST costs s3rver about half a second).
 */
static struct {
	pthread_t th;
	bool started;
	pthread_mutex_t m;
	pthread_cond_t cond;
	bool pending;      /* under m: the index is not checked yet */
	bool kicked;       /* under m: a change waits for the check */
	bool stop;         /* under m: unmounting */
	bool alive;        /* under m: the thread runs */
	int rc;            /* under m: the check's, once done */
} verify = { .m = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

/* ds_lock, for a change: after the check of a catalog index, if any. */
static void lock_changes(struct fs *fs)
{
	int rc;

	pthread_mutex_lock(&verify.m);
	while (verify.pending && verify.alive) {
		verify.kicked = true;
		pthread_cond_broadcast(&verify.cond);
		pthread_cond_wait(&verify.cond, &verify.m);
	}
	if (!verify.pending) {
		pthread_mutex_unlock(&verify.m);
		pthread_mutex_lock(&fs->ds_lock);
		return;
	}
	/* Unmounting left it unchecked: a late change (a job's end) checks. */
	pthread_mutex_unlock(&verify.m);
	pthread_mutex_lock(&fs->ds_lock);
	rc = ds_rebuild_index(fs, false);
	pthread_mutex_lock(&verify.m);
	if (rc == 0)
		verify.pending = false;
	pthread_mutex_unlock(&verify.m);
}

/* Write json to the store at key, atomically. */
static int store_put_json_as(struct fs *fs, const char *key, json_t *j,
			     bool create)
{
	char *text = manifest_text(j);
	int rc;

	if (!text)
		return -ENOMEM;
	rc = create ? store_create(fs->store, key, text, strlen(text))
		    : store_put(fs->store, key, text, strlen(text));
	free(text);
	return rc;
}

static int store_put_json(struct fs *fs, const char *key, json_t *j)
{
	return store_put_json_as(fs, key, j, false);
}

/*
 * In t, key's catalog entry: the text store_put_json() wrote for j (NULL:
 * the object is gone).  If j changed since, the entry's MD5 will not match
 * the object's ETag and readers GET it: slower, never wrong.
 */
static int index_catalog(struct meta_txn *t, const char *key, json_t *j)
{
	char *text;
	int rc;

	if (!j)
		return catalog_set(t, key, NULL, 0);
	text = manifest_text(j);
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
static int index_update(struct fs *fs, const struct ds_kind *k, const char *name, json_t *rec,
			unsigned ver, json_t *man)
{
	struct meta_txn *t;
	char key[512];
	char *text;
	int rc;

	rc = meta_txn_begin(fs->meta, false, &t);
	if (rc < 0)
		return rc;
	if (rec) {
		text = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER);
		rc = text ? meta_put(t, k->tab, name, text, strlen(text))
			  : -ENOMEM;
		free(text);
	} else {
		rc = meta_del(t, k->tab, name);
	}
	if (rc < 0)
		goto out_abort;
	ds_record_key(k, name, key, sizeof(key));
	rc = index_catalog(t, key, rec);
	if (rc < 0)
		goto out_abort;
	if (ver) {
		ds_version_key(name, ver, key, sizeof(key));
		if (man) {
			text = json_dumps(man, JSON_COMPACT |
						       JSON_PRESERVE_ORDER);
			rc = text ? meta_put(t, k->vtab, key, text,
					     strlen(text))
				  : -ENOMEM;
			free(text);
		} else {
			rc = meta_del(t, k->vtab, key);
		}
		if (rc < 0)
			goto out_abort;
		ds_manifest_key(k, name, ver, key, sizeof(key));
		rc = index_catalog(t, key, man);
		if (rc < 0)
			goto out_abort;
	}
	rc = meta_txn_commit(t);
	if (rc == 0)
		catalog_changed(fs);
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
static void set_incarnation(json_t *rec)
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
static bool same_incarnation(json_t *rec, json_t *man)
{
	const char *a = json_string_value(json_object_get(rec, "incarnation"));
	const char *b = json_string_value(json_object_get(man, "incarnation"));

	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int ds_create(struct fs *fs, const struct ds_kind *k, const char *name, mode_t mode,
	      const struct fs_ctx *ctx, struct problem *pb)
{
	char key[512], when[32];
	json_t *rec;
	time_t now = time(NULL);
	int rc;

	rc = node_name_check(name, pb);
	if (rc < 0)
		return rc;
	iso_time(now, when, sizeof(when));
	rec = json_pack("{s:s, s:s, s:I, s:i, s:i, s:i, s:i, s:i, s:{}, s:{}}",
			"name", name, "created", when, "created_unix",
			(json_int_t)now, "uid", (int)ctx->uid, "gid",
			(int)ctx->gid, "mode", (int)(mode & 07777), "latest", 0,
			"next", 1, "aliases", "overrides");
	if (!rec)
		return -ENOMEM;
	set_incarnation(rec);
	lock_changes(fs);
	{
		json_t *old;

		if (ds_get(fs, k, name, &old) == 0) {
			json_decref(old);
			rc = -EEXIST;
			goto out_unlock;
		}
	}
	ds_record_key(k, name, key, sizeof(key));
	rc = store_put_json(fs, key, rec);
	if (rc < 0)
		goto out_unlock;
	rc = index_update(fs, k, name, rec, 0, NULL);
	if (rc < 0)
		store_del(fs->store, key); /* a failed mkdir leaves no record */
out_unlock:
	pthread_mutex_unlock(&fs->ds_lock);
	json_decref(rec);
	return rc;
}

int ds_chmod(struct fs *fs, const struct ds_kind *k, const char *name, mode_t mode)
{
	char key[512];
	json_t *rec;
	int rc;

	lock_changes(fs);
	rc = ds_get(fs, k, name, &rec);
	if (rc < 0)
		goto out_unlock;
	json_object_set_new(rec, "mode", json_integer(mode & 07777));
	ds_record_key(k, name, key, sizeof(key));
	rc = store_put_json(fs, key, rec);
	if (rc == 0)
		rc = index_update(fs, k, name, rec, 0, NULL);
	json_decref(rec);
out_unlock:
	pthread_mutex_unlock(&fs->ds_lock);
	return rc;
}

struct hash_ref {
	const char *hash;
	const char *skip_prefix; /* versions being removed */
	unsigned skip_ver;       /* 0: all of skip_prefix */
	bool found;
};

static int hash_ref_one(void *arg, const char *key, const char *val,
			size_t len)
{
	struct hash_ref *hr = arg;
	size_t plen = strlen(hr->skip_prefix);

	if (strncmp(key, hr->skip_prefix, plen) == 0 &&
	    (hr->skip_ver == 0 ||
	     strtoul(key + plen, NULL, 10) == hr->skip_ver))
		return 0;
	if (memmem(val, len, hr->hash, HASH_HEX_LEN)) {
		hr->found = true;
		return 1;
	}
	return 0;
}

/*
 * Remove a blob no version references any more (other than the ones
 * being removed).  Open readers keep their descriptor on the local file;
 * on S3 the deletion waits out gc_grace (reap.c).  Called under ds_lock.
 */
static void ds_blob_release(struct fs *fs, const struct ds_kind *k,
			    const char *hash, const char *name, unsigned ver)
{
	static const enum meta_table vtabs[] = { META_DSV, META_MODELV };
	char prefix[300], key[128];
	struct hash_ref hr = { .hash = hash, .skip_prefix = prefix,
			       .skip_ver = ver };
	struct meta_txn *t;

	if (strlen(hash) != HASH_HEX_LEN)
		return;
	if (meta_txn_begin(fs->meta, true, &t) < 0)
		return;
	for (size_t i = 0; i < sizeof(vtabs) / sizeof(vtabs[0]); i++) {
		/* skip the versions being removed, in their own table only */
		if ((int)vtabs[i] == k->vtab)
			snprintf(prefix, sizeof(prefix), "%s/", name);
		else
			snprintf(prefix, sizeof(prefix), "/");
		meta_scan(t, vtabs[i], "", NULL, hash_ref_one, &hr);
		if (hr.found)
			break;
	}
	meta_txn_abort(t);
	if (hr.found)
		return;
	ds_blob_key(hash, key, sizeof(key));
	/*
	 * On the bucket, not yet: a reader with the file open (here or on
	 * another mount) reads it from there.  It goes gc_grace later.
	 */
	if (reap_later(fs, key) < 0)
		store_del(fs->store, key);
}

/* Release every blob a manifest names (the "hash" and any "files"). */
static void ds_man_release(struct fs *fs, const struct ds_kind *k,
			   json_t *man, const char *name, unsigned ver)
{
	const char *h = json_string_value(json_object_get(man, "hash"));
	const char *f;
	json_t *v;

	if (h)
		ds_blob_release(fs, k, h, name, ver);
	json_object_foreach(json_object_get(man, "files"), f, v) {
		h = json_string_value(json_object_get(v, "hash"));
		if (h)
			ds_blob_release(fs, k, h, name, ver);
	}
}

static bool rec_alias_uses(json_t *rec, unsigned ver, const char **alias)
{
	const char *k;
	json_t *v;

	json_object_foreach(json_object_get(rec, "aliases"), k, v) {
		if ((unsigned)json_integer_value(v) == ver) {
			*alias = k;
			return true;
		}
	}
	return false;
}

struct ver_collect {
	unsigned *v;
	size_t n;
	size_t cap;
};

static int collect_ver(void *arg, unsigned ver)
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

struct use_scan {
	const char *name;
	unsigned ver; /* 0: any version */
	char *why;
	size_t whylen;
	struct meta_txn *t;
};

static int use_one(void *arg, const char *key, const char *val, size_t len)
{
	struct use_scan *us = arg;
	json_t *man = json_loadb(val, len, 0, NULL);
	json_t *ds = json_object_get(man, "dataset");
	const char *n = json_string_value(json_object_get(ds, "name"));
	unsigned v = (unsigned)json_integer_value(json_object_get(ds, "version"));
	int rc = 0;

	if (n && strcmp(n, us->name) == 0 && (us->ver == 0 || us->ver == v)) {
		char vkey[512];

		/* a version a model uses is never removed: it went missing */
		ds_version_key(n, v, vkey, sizeof(vkey));
		snprintf(us->why, us->whylen, "model %.*s was trained on v%u%s",
			 (int)(strchr(key, '/') ? strchr(key, '/') - key : 0),
			 key, v,
			 meta_has(us->t, META_DSV, vkey) == 0
				 ? ", whose manifest is missing from the bucket"
				 : "");
		rc = 1;
	}
	json_decref(man);
	return rc;
}

/*
 * Is name (version ver, or any) used by something that must keep it?
 * Datasets: a queued or running job that reads it, a model version
 * trained on it.  1 with why, 0, or -errno.
 */
static int ds_in_use(struct fs *fs, const struct ds_kind *k, const char *name,
		     unsigned ver, char *why, size_t whylen)
{
	struct use_scan us = { name, ver, why, whylen, NULL };
	struct meta_txn *t;
	int rc;

	if (k != &ds_datasets)
		return 0;
	if (fs->jobs_read_dataset &&
	    fs->jobs_read_dataset(fs, name, ver, why, whylen) > 0)
		return 1;
	rc = meta_txn_begin(fs->meta, true, &t);
	if (rc < 0)
		return rc;
	us.t = t;
	rc = meta_scan(t, META_MODELV, "", NULL, use_one, &us);
	meta_txn_abort(t);
	return rc;
}

int ds_remove(struct fs *fs, const struct ds_kind *k, const char *name,
	      struct problem *pb)
{
	struct ver_collect vc = { 0 };
	struct meta_txn *t;
	char key[512], why[300];
	json_t **mans = NULL;
	json_t *rec;
	int rc;

	lock_changes(fs);
	rc = ds_get(fs, k, name, &rec);
	if (rc < 0)
		goto out_unlock;
	json_decref(rec);
	rc = ds_in_use(fs, k, name, 0, why, sizeof(why));
	if (rc > 0) {
		problem_set(pb, 0, 0, "busy: %s", why);
		rc = -EBUSY;
	}
	if (rc < 0)
		goto out_unlock;
	rc = ds_versions(fs, k, name, collect_ver, &vc);
	if (rc < 0)
		goto out_unlock;
	mans = calloc(vc.n + 1, sizeof(*mans));
	if (!mans) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	for (size_t i = 0; i < vc.n; i++)
		ds_version(fs, k, name, vc.v[i], &mans[i]);
	/*
	 * The record goes first: a rebuild after a crash ignores versions
	 * of an object without a record, so a half-removed object never
	 * comes back half.
	 */
	ds_record_key(k, name, key, sizeof(key));
	rc = store_del(fs->store, key);
	if (rc < 0 && rc != -ENOENT)
		goto out_unlock;
	for (size_t i = 0; i < vc.n; i++) {
		ds_manifest_key(k, name, vc.v[i], key, sizeof(key));
		store_del(fs->store, key);
	}
	rc = meta_txn_begin(fs->meta, false, &t);
	if (rc < 0)
		goto out_unlock;
	meta_del(t, k->tab, name);
	ds_record_key(k, name, key, sizeof(key));
	catalog_set(t, key, NULL, 0);
	for (size_t i = 0; i < vc.n; i++) {
		ds_version_key(name, vc.v[i], key, sizeof(key));
		meta_del(t, k->vtab, key);
		ds_manifest_key(k, name, vc.v[i], key, sizeof(key));
		catalog_set(t, key, NULL, 0);
	}
	rc = meta_txn_commit(t);
	if (rc == 0)
		catalog_changed(fs);
	for (size_t i = 0; rc == 0 && i < vc.n; i++)
		if (mans[i])
			ds_man_release(fs, k, mans[i], name, 0);
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

int ds_remove_version(struct fs *fs, const struct ds_kind *k,
		      const char *name, unsigned ver, struct problem *pb)
{
	char key[512], why[300];
	const char *alias;
	unsigned m[2] = { 0, ver };
	json_t *rec = NULL, *man = NULL;
	int rc;

	lock_changes(fs);
	rc = ds_get(fs, k, name, &rec);
	if (rc < 0)
		goto out_unlock;
	rc = ds_version(fs, k, name, ver, &man);
	if (rc < 0)
		goto out_unlock;
	if (rec_alias_uses(rec, ver, &alias)) {
		rc = -EBUSY;
		problem_set(pb, 0, 0, "busy: alias \"%s\" points to it",
			    alias);
		goto out_unlock;
	}
	rc = ds_in_use(fs, k, name, ver, why, sizeof(why));
	if (rc > 0) {
		problem_set(pb, 0, 0, "busy: %s", why);
		rc = -EBUSY;
	}
	if (rc < 0)
		goto out_unlock;
	rc = ds_versions(fs, k, name, max_ver, m);
	if (rc < 0)
		goto out_unlock;
	json_object_set_new(rec, "latest", json_integer(m[0]));
	/* next never goes down: a removed version's name is not reused */
	ds_record_key(k, name, key, sizeof(key));
	rc = store_put_json(fs, key, rec);
	if (rc < 0)
		goto out_unlock;
	ds_manifest_key(k, name, ver, key, sizeof(key));
	rc = store_del(fs->store, key);
	if (rc < 0 && rc != -ENOENT)
		goto out_unlock;
	rc = index_update(fs, k, name, rec, ver, NULL);
	if (rc == 0)
		ds_man_release(fs, k, man, name, ver);
out_unlock:
	pthread_mutex_unlock(&fs->ds_lock);
	json_decref(man);
	json_decref(rec);
	return rc;
}

/* --- schema and stats from a scan --- */

static json_t *num_or_null(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

static json_t *stats_json(const struct csv_info *info)
{
	json_t *cols = json_array();
	json_t *st;

	if (!cols)
		return NULL;
	for (size_t i = 0; i < info->ncols; i++) {
		const struct csv_column *c = &info->cols[i];
		json_t *o = json_object();

		if (!o || json_array_append_new(cols, o) < 0)
			goto out_free;
		json_object_set_new(o, "name", json_string(c->name));
		json_object_set_new(o, "type",
				    json_string(csv_type_name(c->type)));
		json_object_set_new(o, "count", json_integer((json_int_t)c->count));
		json_object_set_new(o, "missing",
				    json_integer((json_int_t)c->missing));
		json_object_set_new(o, "mean", num_or_null(c->mean));
		json_object_set_new(o, "std", num_or_null(c->std));
		json_object_set_new(o, "min", num_or_null(c->min));
		json_object_set_new(o, "max", num_or_null(c->max));
		json_object_set_new(o, "distinct",
				    json_integer((json_int_t)c->distinct));
		if (c->distinct_estimated)
			json_object_set_new(o, "distinct_estimated",
					    json_true());
		if (c->nclasses) {
			json_t *cl = json_object();

			for (size_t k = 0; cl && k < c->nclasses; k++)
				json_object_set_new(
					cl, c->classes[k].value,
					json_integer(
						(json_int_t)c->classes[k].count));
			json_object_set_new(o, "classes", cl);
		}
	}
	st = json_pack("{s:I, s:o}", "rows", (json_int_t)info->nrows,
		       "columns", cols);
	return st;
out_free:
	json_decref(cols);
	return NULL;
}

static bool name_is_id(const char *n)
{
	size_t len = strlen(n);

	return strcasecmp(n, "id") == 0 ||
	       (len > 3 && strcasecmp(n + len - 3, "_id") == 0);
}

/*
 * The schema of a scan with the dataset's overrides applied: inferred
 * types; roles: a time type is a time role, an all-distinct column named
 * id or *_id is an id, the last remaining column is the label; then the
 * user's overrides (columns missing from this version are skipped).
 */
static json_t *schema_json(const struct csv_info *info, json_t *overrides,
			   const char *label_override)
{
	json_t *cols = json_array();
	const char *label = NULL;
	json_t *sc;

	if (!cols)
		return NULL;
	for (size_t i = 0; i < info->ncols; i++) {
		const struct csv_column *c = &info->cols[i];
		const char *type = csv_type_name(c->type);
		const char *role = "feature";
		json_t *ov = json_object_get(overrides, c->name);

		if (c->type == CSV_TIME)
			role = "time";
		else if (name_is_id(c->name) && c->distinct == info->nrows &&
			 !c->distinct_estimated)
			role = "id";
		if (json_string_value(json_object_get(ov, "type")))
			type = json_string_value(json_object_get(ov, "type"));
		if (json_string_value(json_object_get(ov, "role")))
			role = json_string_value(json_object_get(ov, "role"));
		json_array_append_new(cols,
				      json_pack("{s:s, s:s, s:s}", "name",
						c->name, "type", type, "role",
						role));
	}
	if (label_override) {
		for (size_t i = 0; i < info->ncols; i++)
			if (strcmp(info->cols[i].name, label_override) == 0)
				label = label_override;
	}
	if (!label) {
		/* default: the last column that is a plain feature */
		for (size_t i = info->ncols; i-- > 0;) {
			json_t *c = json_array_get(cols, i);
			const char *role = json_string_value(
				json_object_get(c, "role"));

			if (strcmp(role, "feature") == 0 ||
			    strcmp(role, "label") == 0) {
				label = info->cols[i].name;
				break;
			}
		}
	}
	for (size_t i = 0; label && i < info->ncols; i++) {
		json_t *c = json_array_get(cols, i);
		const char *role = json_string_value(json_object_get(c, "role"));

		if (strcmp(info->cols[i].name, label) == 0)
			json_object_set_new(c, "role", json_string("label"));
		else if (strcmp(role, "label") == 0)
			json_object_set_new(c, "role", json_string("feature"));
	}
	sc = json_pack("{s:s?, s:o}", "label", label, "columns", cols);
	return sc;
}

static json_t *lineage_json(unsigned parent, time_t now, uint64_t size,
			    const char *hash, const struct ds_origin *o)
{
	char when[32];

	iso_time(now, when, sizeof(when));
	json_t *j = json_pack("{s:o, s:s, s:I, s:I, s:s?, s:s, s:s?, s:i, s:i}",
			      "parent",
			      parent ? json_integer(parent) : json_null(),
			      "created", when, "created_unix", (json_int_t)now,
			      "size", (json_int_t)size, "hash", hash,
			      "made_by", o->made_by, "detail", o->detail,
			      "uid", (int)o->uid, "pid", (int)o->pid);

	if (j && o->etag)
		json_object_set_new(j, "source_etag", json_string(o->etag));
	return j;
}

/*
 * Write a new version's manifest, the record and the index.  Under
 * ds_lock; the blob is already in the store.
 */
static int ds_commit_version(struct fs *fs, const struct ds_kind *k, const char *name, json_t *rec,
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
	ds_manifest_key(k, name, ver, key, sizeof(key));
	rc = store_put_json_as(fs, key, man, true);
	if (rc < 0)
		return rc;
	json_object_set_new(rec, "latest", json_integer(ver));
	json_object_set_new(rec, "next", json_integer(ver + 1));
	ds_record_key(k, name, key, sizeof(key));
	rc = store_put_json(fs, key, rec);
	if (rc < 0)
		goto out_undo_manifest;
	rc = index_update(fs, k, name, rec, ver, man);
	if (rc < 0)
		goto out_undo_manifest;
	atomic_fetch_add(&fs->n_versions, 1);
	return 0;
out_undo_manifest:
	ds_manifest_key(k, name, ver, key, sizeof(key));
	store_del(fs->store, key);
	return rc;
}

/* A file mapped for reading; data is "" when it is empty. */
struct mapped {
	void *map;
	const char *data;
	uint64_t size;
};

static int map_file(int fd, struct mapped *m)
{
	struct stat st;

	m->map = NULL;
	m->data = "";
	if (fstat(fd, &st) < 0)
		return -errno;
	m->size = (uint64_t)st.st_size;
	if (st.st_size > 0) {
		m->map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE,
			      fd, 0);
		if (m->map == MAP_FAILED) {
			m->map = NULL;
			return -errno;
		}
		madvise(m->map, (size_t)st.st_size, MADV_SEQUENTIAL);
		m->data = m->map;
	}
	return 0;
}

static void unmap_file(struct mapped *m)
{
	if (m->map)
		munmap(m->map, (size_t)m->size);
	m->map = NULL;
}

/*
 * Scan the CSV in fd (schema, stats) and hash it: *info and hash on
 * success, -EINVAL with pb on bad CSV.
 */
static int scan_file(int fd, struct csv_info **info, char *hash,
		     uint64_t *size, struct problem *pb)
{
	struct mapped m;
	int rc = map_file(fd, &m);

	if (rc < 0)
		return rc;
	rc = csv_scan(m.data, (size_t)m.size, NULL, info, NULL, pb);
	if (rc == 0)
		hash_hex(m.data, (size_t)m.size, hash);
	*size = m.size;
	unmap_file(&m);
	return rc;
}

/*
 * Does the store hold blob key (size bytes) already?  On S3, only what the
 * cache knows (in the outbox, or exported and cached): asking the bucket
 * costs a round trip at every close, and an outage's retries.  A blob the
 * cache does not know goes into the outbox, and its export asks the
 * bucket instead (bcache_opts.content_prefix), skipping the upload of
 * content the bucket already has.
 */
static bool blob_is_stored(struct fs *fs, const char *key, uint64_t size)
{
	char state[BCACHE_STATE_MAX];
	struct store_stat sst;

	if (bcache_is_cache(fs->store))
		return bcache_state(fs->store, key, state, sizeof(state)) == 0 &&
		       strcmp(state, "released") != 0;
	return store_head(fs->store, key, &sst) == 0 && sst.size == size;
}

static int ref_one(void *arg, const char *key, const char *val, size_t len)
{
	const char *hash = arg;

	(void)key;
	return memmem(val, len, hash, HASH_HEX_LEN) ? 1 : 0;
}

/* Does a version or a job name blob hash?  Under ds_lock; true on error. */
static bool blob_referenced(struct fs *fs, const char *hash)
{
	static const enum meta_table tabs[] = { META_DSV, META_MODELV,
						META_JOB };
	struct meta_txn *t;
	int rc = 0;

	if (meta_txn_begin(fs->meta, true, &t) < 0)
		return true;
	for (size_t i = 0; i < sizeof(tabs) / sizeof(tabs[0]) && rc == 0; i++)
		rc = meta_scan(t, tabs[i], "", NULL, ref_one, (void *)hash);
	meta_txn_abort(t);
	return rc != 0;
}

/*
 * Take back a blob put for a version that was not made.  "Fresh" only
 * means the cache did not know it (blob_is_stored): the bucket may hold
 * it for another version, so it goes only if nothing names it.  Under
 * ds_lock.
 */
static void drop_unreferenced(struct fs *fs, const char *hash,
			      const char *key)
{
	if (!blob_referenced(fs, hash))
		store_del(fs->store, key);
}

int ds_blob_reap(struct fs *fs, const char *key)
{
	const char *hash = strrchr(key, '/');
	int rc = 0;

	hash = hash ? hash + 1 : key;
	if (strlen(hash) != HASH_HEX_LEN)
		return 0; /* not a blob of ours */
	lock_changes(fs);
	if (!blob_referenced(fs, hash))
		rc = store_del(fs->store, key);
	pthread_mutex_unlock(&fs->ds_lock);
	return rc == -ENOENT ? 0 : rc;
}

/*
 * Move the file at path into the store as the blob of hash (key);
 * *fresh (may be NULL) tells whether the store did not have it yet, as
 * far as blob_is_stored() knows: the bucket may hold it all the same.
 */
static int put_blob(struct fs *fs, const char *hash, const char *path,
		    uint64_t size, char *key, size_t keylen, bool *fresh)
{
	ds_blob_key(hash, key, keylen);
	if (fresh)
		*fresh = false;
	if (blob_is_stored(fs, key, size)) {
		unlink(path); /* content already stored once */
		reap_cancel(fs, key); /* a removed version's: wanted again */
		return 0;
	}
	if (fresh)
		*fresh = true;
	return store_put_file(fs->store, key, path);
}

/* What a scan tells of a version: into its manifest man. */
static int manifest_content(json_t *man, json_t *rec,
			    const struct csv_info *info, const char *hash,
			    const char *key, uint64_t size)
{
	json_t *lin = json_object_get(man, "lineage");
	int rc = 0;

	rc |= json_object_set_new(man, "hash", json_string(hash));
	rc |= json_object_set_new(man, "blob", json_string(key));
	rc |= json_object_set_new(man, "size", json_integer((json_int_t)size));
	rc |= json_object_set_new(man, "rows",
				  json_integer((json_int_t)info->nrows));
	rc |= json_object_set_new(
		man, "schema",
		schema_json(info, json_object_get(rec, "overrides"),
			    json_string_value(json_object_get(rec, "label"))));
	rc |= json_object_set_new(man, "stats", stats_json(info));
	if (lin) {
		rc |= json_object_set_new(lin, "hash", json_string(hash));
		rc |= json_object_set_new(lin, "size",
					  json_integer((json_int_t)size));
	}
	return rc ? -ENOMEM : 0;
}

/* The number of the next version of rec, after parent. */
static unsigned next_version(json_t *rec, unsigned parent)
{
	unsigned v = rec_uint(rec, "next");

	return v > parent ? v : parent + 1;
}

/* Commit man (NULL: out of memory) as new version v of name. */
static int commit_new(struct fs *fs, const char *name, json_t *rec,
		      json_t *man, unsigned v, unsigned *ver, bool *created)
{
	int rc;

	if (!man)
		return -ENOMEM;
	rc = ds_commit_version(fs, &ds_datasets, name, rec, man, v);
	if (rc == 0) {
		*ver = v;
		*created = true;
	}
	return rc;
}

/*
 * A large file starts its export before its scan: the blob goes into
 * the store (an S3 mount's outbox, which uploads in the background)
 * through a second link to the staging file while the CSV is checked,
 * so the upload and the scan, each bound by one core, overlap.  A file
 * that fails the check has that blob removed again and stays in place.
 * Small files gain nothing and would miss the cache's adoption of an
 * exported file (it needs the only link), so they go after the scan.
 */
#define EARLY_PUT_MIN ((uint64_t)64 << 20)

static bool put_early(struct fs *fs, const char *path, uint64_t size,
		      const char *hash, char *key, size_t keylen, bool *fresh)
{
	char link2[PATH_MAX];

	if (size < EARLY_PUT_MIN || !bcache_is_cache(fs->store) ||
	    snprintf(link2, sizeof(link2), "%s.early", path) >=
		    (int)sizeof(link2) ||
	    link(path, link2) < 0)
		return false;
	if (put_blob(fs, hash, link2, size, key, keylen, fresh) < 0) {
		unlink(link2);
		return false;
	}
	return true;
}

/* Is hash the content of name's latest version (*parent)?  Under ds_lock. */
static bool is_latest(struct fs *fs, const char *name, json_t *rec,
		      const char *hash, unsigned *parent)
{
	json_t *prev;
	const char *ph;
	bool same = false;

	*parent = rec_uint(rec, "latest");
	if (*parent &&
	    ds_version(fs, &ds_datasets, name, *parent, &prev) == 0) {
		ph = json_string_value(json_object_get(
			json_object_get(prev, "lineage"), "hash"));
		same = ph && strcmp(ph, hash) == 0;
		json_decref(prev);
	}
	return same;
}

int ds_publish(struct fs *fs, const char *name, const char *path, int fd,
	       const struct ds_origin *origin, unsigned *ver, bool *created,
	       struct problem *pb)
{
	const struct ds_kind *k = &ds_datasets;
	struct csv_info *info = NULL;
	char hash[HASH_HEX_LEN + 1], key[128];
	json_t *rec = NULL, *man = NULL;
	struct mapped m;
	unsigned parent, v;
	bool early = false, fresh = false;
	time_t now = time(NULL);
	int rc;

	*ver = 0;
	*created = false;
	rc = map_file(fd, &m);
	if (rc < 0)
		return rc;
	hash_hex(m.data, (size_t)m.size, hash);
	lock_changes(fs);
	rc = ds_get(fs, k, name, &rec);
	if (rc < 0)
		goto out_unlock;
	/* Identical content makes no new version (it was checked). */
	if (is_latest(fs, name, rec, hash, &parent)) {
		unlink(path);
		*ver = parent;
		goto out_unlock;
	}
	pthread_mutex_unlock(&fs->ds_lock);
	early = put_early(fs, path, m.size, hash, key, sizeof(key), &fresh);
	rc = csv_scan(m.data, (size_t)m.size, NULL, &info, NULL, pb);
	if (rc < 0) {
		if (early && fresh) {
			lock_changes(fs);
			drop_unreferenced(fs, hash, key);
			pthread_mutex_unlock(&fs->ds_lock);
		}
		goto out;
	}

	lock_changes(fs);
	json_decref(rec);
	rec = NULL;
	rc = ds_get(fs, k, name, &rec);
	if (rc < 0)
		goto out_drop;
	/* the same bytes were published meanwhile */
	if (is_latest(fs, name, rec, hash, &parent)) {
		unlink(path);
		*ver = parent;
		goto out_unlock;
	}
	/*
	 * Put (again) under the lock: an early put that found the blob
	 * already stored did not hold it, and gc or a version's removal may
	 * have taken it since.
	 */
	rc = put_blob(fs, hash, path, m.size, key, sizeof(key), NULL);
	if (rc < 0)
		goto out_drop;
	v = next_version(rec, parent);
	man = json_pack("{s:i, s:s, s:i, s:o}", "format", DS_FORMAT_MAJOR,
			"dataset", name, "version", (int)v, "lineage",
			lineage_json(parent, now, m.size, hash, origin));
	if (man && manifest_content(man, rec, info, hash, key, m.size) < 0) {
		json_decref(man);
		man = NULL;
	}
	rc = commit_new(fs, name, rec, man, v, ver, created);
out_drop:
	/* an early blob no version took: it shares the staging file's inode */
	if (rc < 0 && early && fresh)
		drop_unreferenced(fs, hash, key);
out_unlock:
	pthread_mutex_unlock(&fs->ds_lock);
out:
	json_decref(man);
	json_decref(rec);
	csv_info_free(info);
	unmap_file(&m);
	return rc;
}

int ds_publish_pending(struct fs *fs, const char *name,
		       const struct ds_origin *origin, uint64_t size,
		       unsigned *ver, bool *created)
{
	const struct ds_kind *k = &ds_datasets;
	json_t *rec = NULL, *prev = NULL, *man = NULL;
	unsigned parent, v;
	int rc;

	*ver = 0;
	*created = false;
	lock_changes(fs);
	rc = ds_get(fs, k, name, &rec);
	if (rc < 0)
		goto out_unlock;
	parent = rec_uint(rec, "latest");
	if (parent && ds_version(fs, k, name, parent, &prev) == 0) {
		json_t *lin = json_object_get(prev, "lineage");
		const char *pd = json_string_value(json_object_get(lin,
								   "detail"));
		const char *pe = json_string_value(
			json_object_get(lin, "source_etag"));

		/* The same object, unchanged: no new version. */
		if (pd && pe && origin->detail && origin->etag &&
		    strcmp(pd, origin->detail) == 0 &&
		    strcmp(pe, origin->etag) == 0) {
			*ver = parent;
			goto out_unlock;
		}
	}
	v = next_version(rec, parent);
	man = json_pack("{s:i, s:s, s:i, s:I, s:b, s:o}", "format",
			DS_FORMAT_MAJOR, "dataset", name, "version", (int)v,
			"size", (json_int_t)size, "pending", 1, "lineage",
			lineage_json(parent, time(NULL), size, NULL, origin));
	rc = commit_new(fs, name, rec, man, v, ver, created);
out_unlock:
	pthread_mutex_unlock(&fs->ds_lock);
	json_decref(man);
	json_decref(prev);
	json_decref(rec);
	return rc;
}

bool ds_is_pending(json_t *man)
{
	return json_is_true(json_object_get(man, "pending"));
}

/*
 * Import pending version ver of name: fetch the object its lineage pins
 * (the same ETag, or -ESTALE), scan and hash it, put the blob and fill
 * in the manifest.  Under import_lock, not ds_lock (the fetch is long).
 */
static int import_pending(struct fs *fs, const char *name, unsigned ver,
			  json_t *pman, struct problem *pb)
{
	const struct ds_kind *k = &ds_datasets;
	json_t *lin = json_object_get(pman, "lineage");
	const char *url = json_string_value(json_object_get(lin, "detail"));
	const char *etag = json_string_value(json_object_get(lin,
							     "source_etag"));
	char tmp[4096], msg[400] = "", got[80], hash[HASH_HEX_LEN + 1];
	char key[128], mkey[512];
	struct csv_info *info = NULL;
	struct problem p = { 0 };
	json_t *rec = NULL, *man = NULL;
	uint64_t size;
	int fd = -1, rc;

	if (!url || !etag) {
		rc = problem_set(&p, 0, 0, "datasets/%s/v%u: pending, but its "
					   "lineage names no source", name, ver);
		goto out_problem;
	}
	/*
	 * The import rewrites the version's manifest and puts a blob: the
	 * writer's to do.  A reader mount serves it once the writer did.
	 */
	if (fs->opts.read_only) {
		rc = -EROFS;
		problem_set(&p, 0, 0, "datasets/%s/v%u: not imported yet from "
				      "%s; the writer mount imports it on its "
				      "first read", name, ver, url);
		goto out_problem;
	}
	snprintf(p.path, sizeof(p.path), "%.500s", url);
	rc = store_tmp_path(fs->store, tmp, sizeof(tmp));
	if (rc < 0)
		return rc;
	rc = remote_fetch(fs, url, tmp, fs->opts.max_file, etag, got,
			  sizeof(got), msg, sizeof(msg));
	if (rc < 0) {
		/* gone is not "no such version": the pinned object is stale */
		if (rc == -ENOENT)
			rc = -ESTALE;
		problem_set(&p, 0, 0, "datasets/%s/v%u: %s", name, ver,
			    msg[0] ? msg : strerror(-rc));
		goto out_unlink;
	}
	fd = open(tmp, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto out_unlink;
	}
	rc = scan_file(fd, &info, hash, &size, &p);
	close(fd);
	if (rc < 0)
		goto out_unlink;
	/* The blob goes in under the lock: gc must not take it first. */
	lock_changes(fs);
	rc = ds_get(fs, k, name, &rec);
	if (rc == 0)
		rc = ds_version(fs, k, name, ver, &man);
	if (rc == 0 && ds_is_pending(man)) {
		rc = put_blob(fs, hash, tmp, size, key, sizeof(key), NULL);
		json_object_del(man, "pending");
		if (rc == 0)
			rc = manifest_content(man, rec, info, hash, key, size);
		ds_manifest_key(k, name, ver, mkey, sizeof(mkey));
		if (rc == 0)
			rc = store_put_json(fs, mkey, man);
		if (rc == 0)
			rc = index_update(fs, k, name, rec, ver, man);
	} else {
		unlink(tmp);
	}
	pthread_mutex_unlock(&fs->ds_lock);
	json_decref(man);
	json_decref(rec);
	csv_info_free(info);
	return rc;
out_unlink:
	unlink(tmp);
	csv_info_free(info);
out_problem:
	if (pb && p.msg[0])
		*pb = p;
	return rc;
}

/*
 * Imports in flight, and the ones that failed for good (the pinned
 * object is gone or changed, or is not valid CSV: nothing a retry
 * mends), so that each is fetched once per mount.  A second reader of a
 * version being imported waits for that import; other versions go on.
 * Keyed by dataset, version and pinned ETag.
 */
struct import_ent {
	struct import_ent *next;
	char *name;
	unsigned ver;
	char etag[80];
	bool busy;             /* being imported now */
	int rc;                /* when !busy: the final failure */
	struct problem pb;     /* its account */
};

static struct {
	pthread_mutex_t m;
	pthread_cond_t cond;
	struct import_ent *list;
} imports = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL };

static struct import_ent *import_find(const char *name, unsigned ver,
				      const char *etag)
{
	for (struct import_ent *e = imports.list; e; e = e->next)
		if (e->ver == ver && strcmp(e->name, name) == 0 &&
		    strcmp(e->etag, etag) == 0)
			return e;
	return NULL;
}

static void import_forget(struct import_ent *e)
{
	for (struct import_ent **pp = &imports.list; *pp; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	free(e->name);
	free(e);
}

int ds_version_ready(struct fs *fs, const char *name, unsigned ver,
		     json_t **man, struct problem *pb)
{
	struct import_ent *e;
	const char *etag;
	int rc = ds_version(fs, &ds_datasets, name, ver, man);

	if (rc < 0 || !ds_is_pending(*man))
		return rc;
	ver = rec_uint(*man, "version");
	etag = json_string_value(json_object_get(
		json_object_get(*man, "lineage"), "source_etag"));
	pthread_mutex_lock(&imports.m);
	for (;;) {
		e = import_find(name, ver, etag ? etag : "");
		if (!e || !e->busy)
			break;
		pthread_cond_wait(&imports.cond, &imports.m);
	}
	if (e) {
		/* failed for good before: the same answer, no new fetch */
		rc = e->rc;
		if (pb)
			*pb = e->pb;
		pthread_mutex_unlock(&imports.m);
		goto out;
	}
	e = calloc(1, sizeof(*e));
	if (!e || !(e->name = strdup(name))) {
		free(e);
		pthread_mutex_unlock(&imports.m);
		rc = -ENOMEM;
		goto out;
	}
	e->ver = ver;
	snprintf(e->etag, sizeof(e->etag), "%s", etag ? etag : "");
	e->busy = true;
	e->next = imports.list;
	imports.list = e;
	pthread_mutex_unlock(&imports.m);

	json_decref(*man);
	rc = ds_version(fs, &ds_datasets, name, ver, man);
	if (rc == 0 && ds_is_pending(*man))
		rc = import_pending(fs, name, ver, *man, &e->pb);

	pthread_mutex_lock(&imports.m);
	if (pb && rc < 0)
		*pb = e->pb;
	if (rc == -ESTALE || rc == -EINVAL || rc == -EFBIG) {
		e->busy = false;
		e->rc = rc;
	} else {
		import_forget(e); /* done, or worth another try (EIO, EROFS) */
	}
	pthread_cond_broadcast(&imports.cond);
	pthread_mutex_unlock(&imports.m);
	if (rc == 0) {
		json_decref(*man);
		rc = ds_version(fs, &ds_datasets, name, ver, man);
	}
out:
	if (rc < 0) {
		json_decref(*man);
		*man = NULL;
	}
	return rc;
}

int ds_copy_to_tmp(struct fs *fs, int in, uint64_t size, char *tmp,
		   size_t tmplen, int *out)
{
	int rc;

	*out = -1;
	rc = store_tmp_path(fs->store, tmp, tmplen);
	if (rc < 0)
		return rc;
	*out = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (*out < 0)
		return -errno;
	rc = host_copy(in, *out, size);
	if (rc < 0) {
		close(*out);
		*out = -1;
		unlink(tmp);
	}
	return rc;
}

int ds_put_blob(struct fs *fs, const char *path, char hash[33],
		uint64_t *size)
{
	struct stat st;
	char key[128];
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = fstat(fd, &st) < 0 ? -errno : hash_fd(fd, hash);
	close(fd);
	if (rc < 0)
		return rc;
	*size = (uint64_t)st.st_size;
	return put_blob(fs, hash, path, *size, key, sizeof(key), NULL);
}

int ds_commit_model(struct fs *fs, const char *name, json_t *man,
		    const struct fs_ctx *ctx, unsigned *ver)
{
	const struct ds_kind *k = &ds_models;
	json_t *rec = NULL;
	unsigned v;
	int rc;

	*ver = 0;
	rc = node_name_check(name, NULL);
	if (rc < 0)
		return rc;
	lock_changes(fs);
	rc = ds_get(fs, k, name, &rec);
	if (rc == -ENOENT) {
		char when[32], key[512];
		time_t now = time(NULL);

		iso_time(now, when, sizeof(when));
		rec = json_pack("{s:s, s:s, s:I, s:i, s:i, s:i, s:i, s:i, "
				"s:{}}",
				"name", name, "created", when, "created_unix",
				(json_int_t)now, "uid", (int)ctx->uid, "gid",
				(int)ctx->gid, "mode", 0755, "latest", 0,
				"next", 1, "aliases");
		rc = rec ? 0 : -ENOMEM;
		if (rec)
			set_incarnation(rec);
		if (rc == 0) {
			ds_record_key(k, name, key, sizeof(key));
			rc = store_put_json(fs, key, rec);
		}
	}
	if (rc < 0)
		goto out_unlock;
	/* A model is derived from its data (sample.csv holds raw rows): it
	 * is no wider than the data it came from (ctx->umask: the bits the
	 * dataset lacks), narrowed with this version if need be. */
	json_object_set_new(rec, "mode",
			    json_integer(rec_uint(rec, "mode") & ~ctx->umask &
					 07777));
	v = rec_uint(rec, "next");
	if (v <= rec_uint(rec, "latest"))
		v = rec_uint(rec, "latest") + 1;
	json_object_set_new(man, "version", json_integer(v));
	rc = ds_commit_version(fs, k, name, rec, man, v);
	if (rc == 0)
		*ver = v;
out_unlock:
	pthread_mutex_unlock(&fs->ds_lock);
	json_decref(rec);
	return rc;
}

/* Line and column of the first occurrence of "needle" (quoted) in text. */
static void locate(const char *text, const char *needle, unsigned *line,
		   unsigned *col)
{
	char q[300];
	const char *p, *ls = text;

	*line = 1;
	*col = 1;
	snprintf(q, sizeof(q), "\"%s\"", needle);
	p = strstr(text, q);
	if (!p)
		return;
	for (const char *c = text; c < p; c++)
		if (*c == '\n') {
			(*line)++;
			ls = c + 1;
		}
	*col = (unsigned)(p - ls) + 1;
}

static bool man_has_column(json_t *man, const char *col, json_t **stat)
{
	size_t i;
	json_t *c;

	json_array_foreach(json_object_get(json_object_get(man, "stats"),
					   "columns"),
			   i, c) {
		if (strcmp(json_string_value(json_object_get(c, "name")),
			   col) == 0) {
			*stat = c;
			return true;
		}
	}
	return false;
}

/*
 * Validate an override text against the latest version and merge it into
 * the record's overrides.  Fills pb; changes only *merged.
 */
static int schema_parse(const char *text, json_t *man, json_t *rec,
			json_t **merged, const char **label,
			struct problem *pb)
{
	json_error_t err;
	json_t *j, *cols, *c;
	const char *k;
	json_t *v;
	size_t i;
	unsigned line, col;

	*merged = NULL;
	*label = NULL;
	j = json_loads(text, JSON_REJECT_DUPLICATES, &err);
	if (!j)
		return problem_set(pb, (unsigned)err.line,
				   (unsigned)err.column, "%s", err.text);
	if (!json_is_object(j)) {
		json_decref(j);
		return problem_set(pb, 1, 1, "expected a JSON object");
	}
	json_object_foreach(j, k, v) {
		if (strcmp(k, "columns") != 0 && strcmp(k, "label") != 0) {
			locate(text, k, &line, &col);
			problem_set(pb, line, col,
				    "\"%s\": unknown field (expected "
				    "\"columns\" or \"label\")",
				    k);
			json_decref(j);
			return -EINVAL;
		}
	}
	*merged = json_deep_copy(json_object_get(rec, "overrides"));
	if (!*merged)
		*merged = json_object();
	cols = json_object_get(j, "columns");
	if (cols && !json_is_array(cols)) {
		locate(text, "columns", &line, &col);
		goto out_bad_cols;
	}
	json_array_foreach(cols, i, c) {
		const char *name = json_string_value(json_object_get(c, "name"));
		const char *type = json_string_value(json_object_get(c, "type"));
		const char *role = json_string_value(json_object_get(c, "role"));
		enum csv_type ct;
		enum csv_role cr;
		json_t *st, *ov;

		if (!json_is_object(c) || !name) {
			locate(text, "columns", &line, &col);
			problem_set(pb, line, col,
				    "\"columns\"[%zu]: needs a \"name\"", i);
			goto out_bad;
		}
		locate(text, name, &line, &col);
		if (!man_has_column(man, name, &st)) {
			problem_set(pb, line, col,
				    "\"name\": no column \"%s\" in this dataset",
				    name);
			goto out_bad;
		}
		json_object_foreach(c, k, v) {
			if (strcmp(k, "name") && strcmp(k, "type") &&
			    strcmp(k, "role")) {
				locate(text, k, &line, &col);
				problem_set(pb, line, col,
					    "\"%s\": unknown field (expected "
					    "\"name\", \"type\" or \"role\")",
					    k);
				goto out_bad;
			}
		}
		if ((json_object_get(c, "type") && !type) ||
		    (type && csv_type_parse(type, &ct) < 0)) {
			locate(text, "type", &line, &col);
			problem_set(pb, line, col,
				    "\"type\": must be numeric, categorical, "
				    "text or time, got \"%s\"",
				    type ? type : "?");
			goto out_bad;
		}
		if (type && ct == CSV_NUMERIC &&
		    strcmp(json_string_value(json_object_get(st, "type")),
			   "numeric") != 0) {
			locate(text, name, &line, &col);
			problem_set(pb, line, col,
				    "\"type\": column \"%s\" has non-numeric "
				    "values",
				    name);
			goto out_bad;
		}
		if ((json_object_get(c, "role") && !role) ||
		    (role && csv_role_parse(role, &cr) < 0)) {
			locate(text, "role", &line, &col);
			problem_set(pb, line, col,
				    "\"role\": must be feature, label, id, pii "
				    "or time, got \"%s\"",
				    role ? role : "?");
			goto out_bad;
		}
		ov = json_object_get(*merged, name);
		if (!ov) {
			ov = json_object();
			json_object_set_new(*merged, name, ov);
		}
		if (type)
			json_object_set_new(ov, "type", json_string(type));
		if (role && strcmp(role, "label") == 0) {
			*label = json_string_value(json_object_get(c, "name"));
			json_object_del(ov, "role");
		} else if (role) {
			json_object_set_new(ov, "role", json_string(role));
		}
	}
	if (json_object_get(j, "label")) {
		const char *l = json_string_value(json_object_get(j, "label"));
		json_t *st;

		locate(text, "label", &line, &col);
		if (!l || !man_has_column(man, l, &st)) {
			problem_set(pb, line, col,
				    "\"label\": no column \"%s\" in this "
				    "dataset",
				    l ? l : "?");
			goto out_bad;
		}
		*label = l;
	}
	/* Keep *label valid after j is gone: it lives in the record. */
	if (*label) {
		json_object_set_new(rec, "label", json_string(*label));
		*label = json_string_value(json_object_get(rec, "label"));
	}
	json_decref(j);
	return 0;
out_bad_cols:
	problem_set(pb, line, col, "\"columns\": expected a list");
out_bad:
	json_decref(j);
	json_decref(*merged);
	*merged = NULL;
	return -EINVAL;
}

/* Rebuild the schema of man from its stats with overrides applied. */
static json_t *schema_from_manifest(json_t *man, json_t *overrides,
				    const char *label)
{
	json_t *cols = json_object_get(json_object_get(man, "stats"),
				       "columns");
	struct csv_info info = { 0 };
	json_t *sc;
	size_t i;
	json_t *c;

	info.ncols = json_array_size(cols);
	info.nrows = (uint64_t)json_integer_value(json_object_get(
		json_object_get(man, "stats"), "rows"));
	info.cols = calloc(info.ncols ? info.ncols : 1, sizeof(*info.cols));
	if (!info.cols)
		return NULL;
	json_array_foreach(cols, i, c) {
		info.cols[i].name =
			(char *)json_string_value(json_object_get(c, "name"));
		csv_type_parse(json_string_value(json_object_get(c, "type")),
			       &info.cols[i].type);
		info.cols[i].distinct = (uint64_t)json_integer_value(
			json_object_get(c, "distinct"));
		info.cols[i].distinct_estimated = json_is_true(
			json_object_get(c, "distinct_estimated"));
	}
	sc = schema_json(&info, overrides, label);
	free(info.cols);
	return sc;
}

static int set_schema(struct fs *fs, const char *name, const char *text,
		      const struct ds_origin *origin, bool apply,
		      struct problem *pb);

int ds_set_schema(struct fs *fs, const char *name, const char *text,
		  const struct ds_origin *origin, struct problem *pb)
{
	return set_schema(fs, name, text, origin, true, pb);
}

int ds_check_schema(struct fs *fs, const char *name, const char *text,
		    struct problem *pb)
{
	return set_schema(fs, name, text, NULL, false, pb);
}

static int set_schema(struct fs *fs, const char *name, const char *text,
		      const struct ds_origin *origin, bool apply,
		      struct problem *pb)
{
	const struct ds_kind *k = &ds_datasets;
	json_t *rec = NULL, *man = NULL, *merged = NULL, *sc = NULL;
	json_t *nman = NULL;
	const char *label;
	unsigned ver;
	time_t now = time(NULL);
	int rc;

	/* A lazily imported latest version needs its schema first. */
	rc = ds_version_ready(fs, name, 0, &man, pb);
	json_decref(man);
	man = NULL;
	if (rc < 0 && rc != -ENOENT)
		return rc;
	lock_changes(fs);
	rc = ds_get(fs, k, name, &rec);
	if (rc < 0)
		goto out_unlock;
	ver = rec_uint(rec, "latest");
	if (ver == 0) {
		rc = problem_set(pb, 1, 1,
				 "the dataset has no version yet: write "
				 "data.csv first");
		goto out_unlock;
	}
	rc = ds_version(fs, k, name, ver, &man);
	if (rc < 0)
		goto out_unlock;
	if (ds_is_pending(man)) {
		rc = problem_set(pb, 1, 1, "v%u is still being imported; "
					   "try again", ver);
		goto out_unlock;
	}
	rc = schema_parse(text, man, rec, &merged, &label, pb);
	if (rc < 0 || !apply)
		goto out_unlock;
	sc = schema_from_manifest(man, merged, label);
	if (!sc) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	if (json_equal(sc, json_object_get(man, "schema"))) {
		rc = 0; /* nothing changes: no new version */
		goto out_unlock;
	}
	nman = json_deep_copy(man);
	if (!nman) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	{
		unsigned v = rec_uint(rec, "next");
		const char *h = json_string_value(json_object_get(man, "hash"));
		uint64_t size = (uint64_t)json_integer_value(
			json_object_get(man, "size"));

		if (v <= ver)
			v = ver + 1;
		json_object_set_new(nman, "version", json_integer(v));
		json_object_set(nman, "schema", sc);
		json_object_set_new(nman, "lineage",
				    lineage_json(ver, now, size, h, origin));
		json_object_set(rec, "overrides", merged);
		rc = ds_commit_version(fs, k, name, rec, nman, v);
	}
out_unlock:
	pthread_mutex_unlock(&fs->ds_lock);
	json_decref(nman);
	json_decref(sc);
	json_decref(merged);
	json_decref(man);
	json_decref(rec);
	return rc;
}

int ds_alias_get(struct fs *fs, const struct ds_kind *k, const char *name, const char *alias,
		 unsigned *ver)
{
	json_t *rec, *v;
	int rc;

	rc = ds_get(fs, k, name, &rec);
	if (rc < 0)
		return rc;
	v = json_object_get(json_object_get(rec, "aliases"), alias);
	*ver = v ? (unsigned)json_integer_value(v) : 0;
	json_decref(rec);
	return v ? 0 : -ENOENT;
}

static int alias_store(struct fs *fs, const struct ds_kind *k, const char *name, json_t *rec)
{
	char key[512];
	int rc;

	ds_record_key(k, name, key, sizeof(key));
	rc = store_put_json(fs, key, rec);
	if (rc < 0)
		return rc;
	return index_update(fs, k, name, rec, 0, NULL);
}

int ds_alias_set(struct fs *fs, const struct ds_kind *k, const char *name, const char *alias,
		 const char *target, bool replace, struct problem *pb)
{
	unsigned ver;
	json_t *rec = NULL, *man = NULL;
	int rc;

	rc = node_name_check(alias, pb);
	if (rc < 0)
		return rc;
	if (strncmp(target, "./", 2) == 0)
		target += 2;
	if (!node_name_is_version(target, &ver))
		return problem_set(pb, 0, 0,
				   "alias target \"%s\": must be v<n> of this "
				   "dataset",
				   target);
	lock_changes(fs);
	rc = ds_get(fs, k, name, &rec);
	if (rc < 0)
		goto out_unlock;
	rc = ds_version(fs, k, name, ver, &man);
	if (rc < 0)
		goto out_unlock;
	if (!replace && json_object_get(json_object_get(rec, "aliases"), alias)) {
		rc = -EEXIST;
		goto out_unlock;
	}
	json_object_set_new(json_object_get(rec, "aliases"), alias,
			    json_integer(ver));
	rc = alias_store(fs, k, name, rec);
out_unlock:
	pthread_mutex_unlock(&fs->ds_lock);
	json_decref(man);
	json_decref(rec);
	return rc;
}

int ds_alias_del(struct fs *fs, const struct ds_kind *k, const char *name, const char *alias)
{
	json_t *rec;
	int rc;

	lock_changes(fs);
	rc = ds_get(fs, k, name, &rec);
	if (rc < 0)
		goto out_unlock;
	if (json_object_del(json_object_get(rec, "aliases"), alias) < 0)
		rc = -ENOENT;
	else
		rc = alias_store(fs, k, name, rec);
	json_decref(rec);
out_unlock:
	pthread_mutex_unlock(&fs->ds_lock);
	return rc;
}

int ds_alias_rename(struct fs *fs, const struct ds_kind *k, const char *name, const char *from,
		    const char *to, unsigned flags)
{
	struct problem pb = { 0 };
	json_t *rec, *aliases, *v;
	int rc;

	/* RENAME_NOREPLACE is 1, RENAME_EXCHANGE 2 */
	if (flags & ~1u)
		return -EINVAL;
	rc = node_name_check(to, &pb);
	if (rc < 0)
		return -EPERM; /* over latest, v<n>, or a bad name */
	lock_changes(fs);
	rc = ds_get(fs, k, name, &rec);
	if (rc < 0)
		goto out_unlock;
	aliases = json_object_get(rec, "aliases");
	v = json_object_get(aliases, from);
	if (!v) {
		rc = -ENOENT;
	} else if ((flags & 1) && json_object_get(aliases, to)) {
		rc = -EEXIST;
	} else if (strcmp(from, to) != 0) {
		/* one record write: the alias moves atomically */
		json_object_set(aliases, to, v);
		json_object_del(aliases, from);
		rc = alias_store(fs, k, name, rec);
	}
	json_decref(rec);
out_unlock:
	pthread_mutex_unlock(&fs->ds_lock);
	return rc;
}

/* --- rebuild --- */

/* One listed object and, once read, its bytes. */
struct rebuild_ent {
	char *key;
	char etag[80];  /* as listed; "" for content still in the outbox */
	char *body;     /* NULL where reading failed */
	size_t len;     /* bytes */
};

struct rebuild {
	struct rebuild_ent *ents;
	size_t n;
	size_t cap;
	size_t fetched; /* objects read one by one, not from the catalog */
};

static int rebuild_collect(void *arg, const char *key,
			   const struct store_stat *st)
{
	struct rebuild *rb = arg;
	size_t len = strlen(key);

	if (len < 5 || strcmp(key + len - 5, ".json") != 0)
		return 0; /* not ours: foreign objects are ignored */
	if (rb->n == rb->cap) {
		size_t cap = rb->cap ? rb->cap * 2 : 256;
		struct rebuild_ent *ne = realloc(rb->ents, cap * sizeof(*ne));

		if (!ne)
			return -ENOMEM;
		rb->ents = ne;
		rb->cap = cap;
	}
	memset(&rb->ents[rb->n], 0, sizeof(rb->ents[rb->n]));
	rb->ents[rb->n].key = strdup(key);
	if (!rb->ents[rb->n].key)
		return -ENOMEM;
	snprintf(rb->ents[rb->n].etag, sizeof(rb->ents[rb->n].etag), "%s",
		 st->etag);
	rb->n++;
	return 0;
}

static void rebuild_free(struct rebuild *rb)
{
	for (size_t i = 0; i < rb->n; i++) {
		free(rb->ents[i].key);
		free(rb->ents[i].body);
	}
	free(rb->ents);
}

static int ent_cmp(const void *a, const void *b)
{
	const struct rebuild_ent *x = a;
	const struct rebuild_ent *y = b;

	return strcmp(x->key, y->key);
}

/* "<dir>/<name>/<file>" -> name, file; false if not of that shape */
static bool split_key(const struct ds_kind *k, const char *key, char *name,
		      size_t nlen, const char **file)
{
	const char *p = key + strlen(k->dir) + 1;
	const char *slash = strchr(p, '/');

	if (!slash || (size_t)(slash - p) >= nlen || strchr(slash + 1, '/'))
		return false;
	memcpy(name, p, (size_t)(slash - p));
	name[slash - p] = '\0';
	*file = slash + 1;
	return node_name_check(name, NULL) == 0;
}

/*
 * Read the objects the catalog did not give, REBUILD_THREADS at a time:
 * a fresh mount of an S3 prefix without a current catalog reads every
 * manifest, and round trips, not bytes, are its cost.
 */
#define REBUILD_THREADS 8

struct fetch_pool {
	struct fs *fs;
	struct rebuild_ent *ents;
	size_t *todo; /* indices into ents */
	size_t n;
	_Atomic size_t next;
};

static void *fetch_main(void *arg)
{
	struct fetch_pool *p = arg;
	struct rebuild_ent *e;
	struct store *s;
	size_t i;

	while ((i = atomic_fetch_add(&p->next, 1)) < p->n) {
		e = &p->ents[p->todo[i]];
		/*
		 * Straight from S3 when the bucket has it: the cache would
		 * HEAD first and keep a copy nobody reads again.  Content
		 * still in the outbox (no ETag) only the cache has.
		 */
		s = e->etag[0] && p->fs->s3 ? p->fs->s3 : p->fs->store;
		if (store_get(s, e->key, DS_MANIFEST_MAX, &e->body, &e->len) <
		    0)
			e->body = NULL;
	}
	return NULL;
}

static int fetch_all(struct fs *fs, struct rebuild *rb)
{
	struct fetch_pool p = { fs, rb->ents, NULL, 0, 0 };
	pthread_t th[REBUILD_THREADS];
	size_t nth = 0;

	p.todo = calloc(rb->n + 1, sizeof(*p.todo));
	if (!p.todo)
		return -ENOMEM;
	for (size_t i = 0; i < rb->n; i++)
		if (!rb->ents[i].body)
			p.todo[p.n++] = i;
	for (size_t i = 0; i < REBUILD_THREADS && i + 1 < p.n; i++)
		if (pthread_create(&th[nth], NULL, fetch_main, &p) == 0)
			nth++;
	fetch_main(&p); /* this thread helps, and finishes alone if need be */
	for (size_t i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	rb->fetched += p.n;
	free(p.todo);
	return 0;
}

/*
 * The catalog of a rebuild, read by a thread of its own while the first
 * LIST runs: both are round trips of a few hundred milliseconds.
 */
struct rebuild_cat {
	struct fs *fs;
	bool trust;         /* take the catalog as the listing, no LIST */
	bool tidy;          /* a writer's mount-time rebuild: delete the
			       manifests of no record (a cut-short rmdir) */
	pthread_t th;
	bool started;       /* th runs or has run, not joined yet */
	struct catalog *cat; /* once joined: the catalog, or NULL */
	json_t *gone;       /* or NULL: manifests the catalog names and the
			       LIST lacks (key -> true), for lineage_check */
};

static void *rebuild_cat_main(void *arg)
{
	struct rebuild_cat *rc = arg;

	rc->cat = catalog_load(rc->fs);
	return NULL;
}

static void rebuild_cat_start(struct rebuild_cat *rc)
{
	if (!rc->fs->s3)
		return;
	if (pthread_create(&rc->th, NULL, rebuild_cat_main, rc) == 0)
		rc->started = true;
	else
		rc->cat = catalog_load(rc->fs); /* no thread: read it here */
}

/* The catalog, once it has been read (NULL: none to use). */
static struct catalog *rebuild_cat_get(struct rebuild_cat *rc)
{
	if (rc->started) {
		pthread_join(rc->th, NULL);
		rc->started = false;
	}
	return rc->cat;
}

/* A catalog entry taken as listed and read (ds_rebuild_trusted). */
static int trusted_collect(void *arg, const char *key, const char *etag,
			   const char *body, size_t len)
{
	struct rebuild *rb = arg;
	struct store_stat st = { 0 };
	struct rebuild_ent *e;
	size_t n = rb->n;
	int rc;

	snprintf(st.etag, sizeof(st.etag), "%s", etag);
	rc = rebuild_collect(rb, key, &st);
	if (rc < 0 || rb->n == n)
		return rc;
	e = &rb->ents[rb->n - 1];
	e->body = malloc(len + 1);
	if (!e->body)
		return -ENOMEM;
	memcpy(e->body, body, len);
	e->body[len] = '\0';
	e->len = len;
	return 0;
}

struct gone_scan {
	const struct rebuild *rb;
	json_t *gone;
};

/* A catalog entry left unused: is its object gone from the LIST? */
static int gone_one(void *arg, const char *key, const char *etag,
		    const char *body, size_t len)
{
	struct gone_scan *gs = arg;
	struct rebuild_ent probe = { .key = (char *)key };

	(void)etag;
	(void)body;
	(void)len;
	if (!bsearch(&probe, gs->rb->ents, gs->rb->n, sizeof(*gs->rb->ents),
		     ent_cmp))
		json_object_set_new(gs->gone, key, json_true());
	return 0;
}

/*
 * List prefix and read every listed object: from the catalog where its
 * entry is the listed object, from the store otherwise.  Entries are
 * sorted by key.  Catalog entries under datasets/ and models/ the LIST
 * lacks go to rcat->gone, if set.
 */
static int rebuild_read(struct fs *fs, const char *prefix,
			struct rebuild_cat *rcat, struct rebuild *rb)
{
	struct catalog *cat;
	int rc;

	if (rcat->trust) {
		rc = catalog_each(rcat->cat, prefix, trusted_collect, rb);
		if (rc == 0 && rb->n)
			qsort(rb->ents, rb->n, sizeof(*rb->ents), ent_cmp);
		return rc;
	}
	rc = store_list(fs->store, prefix, rebuild_collect, rb);
	if (rc < 0)
		return rc;
	if (rb->n)
		qsort(rb->ents, rb->n, sizeof(*rb->ents), ent_cmp);
	cat = rebuild_cat_get(rcat);
	for (size_t i = 0; i < rb->n; i++) {
		struct rebuild_ent *e = &rb->ents[i];

		rc = catalog_find(cat, e->key, e->etag, &e->body, &e->len);
		if (rc == -ENOMEM)
			return rc;
	}
	if (rcat->gone && strcmp(prefix, "jobs/") != 0) {
		struct gone_scan gs = { rb, rcat->gone };

		catalog_each(cat, prefix, gone_one, &gs);
	}
	return fetch_all(fs, rb);
}

/* In t: META_CAT under prefix becomes what the rebuild read. */
static int rebuild_catalog(struct meta_txn *t, const char *prefix,
			   const struct rebuild *rb)
{
	int rc = meta_drop_prefix(t, META_CAT, prefix);

	for (size_t i = 0; rc == 0 && i < rb->n; i++)
		if (rb->ents[i].body)
			rc = catalog_set(t, rb->ents[i].key, rb->ents[i].body,
					 rb->ents[i].len);
	return rc;
}

/*
 * A manifest of no live record: an rmdir a crash cut short left it.  It
 * is never attached, leaves the catalog, and a writer's mount-time
 * rebuild deletes it from the store (its blobs go with the next gc).
 */
static void orphan(struct fs *fs, struct rebuild_cat *cat,
		   struct rebuild_ent *e)
{
	free(e->body);
	e->body = NULL; /* out of the catalog */
	if (cat->tidy && store_del(fs->store, e->key) == 0)
		fs_log(fs, 5, "rebuild: %s: of no record: deleted", e->key);
	else
		fs_log(fs, 5, "rebuild: %s: of no record: left out", e->key);
}

static int rebuild_kind(struct fs *fs, const struct ds_kind *k,
			struct rebuild_cat *cat, size_t *fetched)
{
	struct rebuild rb = { 0 };
	struct meta_txn *t = NULL;
	json_t *recs, *named;
	char name[300], key[512], prefix[64];
	const char *file;
	int rc;

	snprintf(prefix, sizeof(prefix), "%s/", k->dir);
	/* Read everything first: no write txn across store reads. */
	rc = rebuild_read(fs, prefix, cat, &rb);
	if (rc < 0)
		goto out_free;
	recs = json_object();
	named = json_object();
	if (!recs || !named) {
		json_decref(recs);
		json_decref(named);
		rc = -ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; i < rb.n; i++) {
		struct rebuild_ent *e = &rb.ents[i];
		json_t *j;

		if (!split_key(k, e->key, name, sizeof(name), &file) ||
		    strcmp(file, k->record) != 0)
			continue;
		/* a record is there, readable or not: its manifests are
		 * not orphans, whatever becomes of it */
		json_object_set_new(named, name, json_true());
		if (!e->body)
			continue;
		j = json_loadb(e->body, e->len, 0, NULL);
		if (!json_is_object(j)) {
			json_decref(j);
			fs_log(fs, 4, "rebuild: %s: not a record", e->key);
			continue;
		}
		json_object_set_new(j, "latest", json_integer(0));
		json_object_set_new(j, "versions", json_object());
		json_object_set_new(recs, name, j);
	}
	for (size_t i = 0; i < rb.n; i++) {
		struct rebuild_ent *e = &rb.ents[i];
		unsigned v;
		char vname[32];
		json_t *rec, *man;

		if (!split_key(k, e->key, name, sizeof(name), &file))
			continue;
		rec = json_object_get(recs, name);
		snprintf(vname, sizeof(vname), "%s", file);
		if (strlen(vname) < 6)
			continue;
		vname[strlen(vname) - 5] = '\0';
		if (!node_name_is_version(vname, &v) || !e->body)
			continue;
		if (!rec && !cat->trust && !json_object_get(named, name)) {
			/* left by an rmdir a crash cut short */
			orphan(fs, cat, e);
			continue;
		}
		if (!rec)
			continue;
		if (cat->trust) {
			/*
			 * The writer's own catalog: the body goes into the
			 * index as it is, unparsed (half a fresh mount's
			 * time was parsing and printing manifests).
			 */
			man = json_pack("{s:I, s:I}", "version", (json_int_t)v,
					"ent", (json_int_t)i);
		} else {
			man = json_loadb(e->body, e->len, 0, NULL);
			if (!json_is_object(man) ||
			    rec_uint(man, "version") != v) {
				json_decref(man);
				continue;
			}
			if (!same_incarnation(rec, man)) {
				/* of an earlier object of the name */
				orphan(fs, cat, e);
				json_decref(man);
				continue;
			}
		}
		json_object_set_new(json_object_get(rec, "versions"), vname,
				    man);
		if (v > rec_uint(rec, "latest"))
			json_object_set_new(rec, "latest", json_integer(v));
		if (v >= rec_uint(rec, "next"))
			json_object_set_new(rec, "next", json_integer(v + 1));
	}
	rc = meta_txn_begin(fs->meta, false, &t);
	if (rc < 0)
		goto out_recs;
	rc = meta_drop(t, k->tab);
	if (rc == 0)
		rc = meta_drop(t, k->vtab);
	if (rc == 0)
		rc = rebuild_catalog(t, prefix, &rb);
	{
		const char *n;
		json_t *rec;

		json_object_foreach(recs, n, rec) {
			json_t *vers = json_incref(json_object_get(rec,
								   "versions"));
			const char *vn;
			json_t *man;
			char *text;

			json_object_del(rec, "versions");
			text = json_dumps(rec, JSON_COMPACT |
						       JSON_PRESERVE_ORDER);
			if (rc == 0)
				rc = text ? meta_put(t, k->tab, n, text,
						     strlen(text))
					  : -ENOMEM;
			free(text);
			json_object_foreach(vers, vn, man) {
				json_t *ent = cat->trust
						      ? json_object_get(man, "ent")
						      : NULL;

				ds_version_key(n, rec_uint(man, "version"),
					       key, sizeof(key));
				if (ent) {
					const struct rebuild_ent *e =
						&rb.ents[json_integer_value(ent)];

					if (rc == 0)
						rc = meta_put(t, k->vtab, key,
							      e->body, e->len);
					continue;
				}
				text = json_dumps(man, JSON_COMPACT |
							       JSON_PRESERVE_ORDER);
				if (rc == 0)
					rc = text ? meta_put(t, k->vtab, key,
							     text,
							     strlen(text))
						  : -ENOMEM;
				free(text);
			}
			json_decref(vers);
		}
	}
	if (rc == 0)
		rc = meta_txn_commit(t);
	else
		meta_txn_abort(t);
out_recs:
	json_decref(recs);
	json_decref(named);
out_free:
	*fetched += rb.fetched;
	rebuild_free(&rb);
	return rc;
}

/* Job records: jobs/<name>.json -> META_JOB. */
static int rebuild_jobs(struct fs *fs, struct rebuild_cat *cat,
			size_t *fetched)
{
	struct rebuild rb = { 0 };
	struct meta_txn *t;
	char name[300];
	int rc;

	rc = rebuild_read(fs, "jobs/", cat, &rb);
	if (rc == 0)
		rc = meta_txn_begin(fs->meta, false, &t);
	if (rc < 0)
		goto out_free;
	rc = meta_drop(t, META_JOB);
	if (rc == 0)
		rc = rebuild_catalog(t, "jobs/", &rb);
	for (size_t i = 0; rc == 0 && i < rb.n; i++) {
		const struct rebuild_ent *e = &rb.ents[i];
		const char *base = e->key + strlen("jobs/");
		size_t len = strlen(base) - strlen(".json");

		if (strchr(base, '/') || len >= sizeof(name) || !e->body ||
		    e->len > DS_RECORD_MAX)
			continue;
		memcpy(name, base, len);
		name[len] = '\0';
		if (node_name_check(name, NULL) < 0)
			continue;
		rc = meta_put(t, META_JOB, name, e->body, e->len);
	}
	/* This index has a catalog table that matches the store. */
	if (rc == 0)
		rc = meta_put(t, META_MISC, "catalog", "1", 1);
	if (rc == 0)
		rc = meta_txn_commit(t);
	else
		meta_txn_abort(t);
out_free:
	*fetched += rb.fetched;
	rebuild_free(&rb);
	return rc;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int count_one(void *arg, const char *key, const char *etag,
		     const char *body, size_t len)
{
	(void)key;
	(void)etag;
	(void)body;
	(void)len;
	++*(size_t *)arg;
	return 0;
}

/* Manifests reported missing, as of the last check (lineage_check). */
static struct {
	pthread_mutex_t m;
	json_t *reported; /* under m */
} lineage = { PTHREAD_MUTEX_INITIALIZER, NULL };

struct lineage_scan {
	struct meta_txn *t;
	json_t *missing; /* key -> {"models": [...], "uids": {uid: true}} */
};

/* Note uid of record name in tab (if readable) in the entry's "uids". */
static void lineage_uid(struct meta_txn *t, enum meta_table tab,
			const char *name, json_t *ent)
{
	char *val, uid[16];
	size_t len;
	json_t *rec;

	if (meta_get(t, tab, name, &val, &len) < 0)
		return;
	rec = json_loadb(val, len, 0, NULL);
	free(val);
	if (json_is_integer(json_object_get(rec, "uid"))) {
		snprintf(uid, sizeof(uid), "%u", rec_uint(rec, "uid"));
		json_object_set_new(json_object_get(ent, "uids"), uid,
				    json_true());
	}
	json_decref(rec);
}

/* The entry of key in missing, made if need be (NULL: no memory). */
static json_t *lineage_ent(json_t *missing, const char *key)
{
	json_t *ent = json_object_get(missing, key);

	if (json_is_object(ent))
		return ent;
	ent = json_pack("{s:[], s:{}}", "models", "uids");
	if (json_object_set_new(missing, key, ent) < 0)
		return NULL;
	return ent;
}

/* A model version: is the dataset version it was trained on indexed? */
static int lineage_one(void *arg, const char *key, const char *val,
		       size_t len)
{
	struct lineage_scan *ls = arg;
	json_t *man = json_loadb(val, len, 0, NULL);
	json_t *ds = json_object_get(man, "dataset");
	const char *n = json_string_value(json_object_get(ds, "name"));
	unsigned v = (unsigned)json_integer_value(json_object_get(ds, "version"));
	const char *slash = strchr(key, '/');
	char vkey[512], mkey[600], model[600];
	json_t *ent;

	ds_version_key(n ? n : "", v, vkey, sizeof(vkey));
	if (n && v && slash && meta_has(ls->t, META_DSV, vkey) == 0) {
		snprintf(mkey, sizeof(mkey), "datasets/%s/v%u.json", n, v);
		snprintf(model, sizeof(model), "%.*s", (int)(slash - key), key);
		ent = lineage_ent(ls->missing, mkey);
		if (ent) {
			json_array_append_new(
				json_object_get(ent, "models"),
				json_sprintf("%s v%u", model,
					     (unsigned)strtoul(slash + 1, NULL,
							       10)));
			lineage_uid(ls->t, META_MODEL, model, ent);
		}
	}
	json_decref(man);
	return 0;
}

/*
 * After a rebuild: manifests gone from the bucket.  Those the catalog
 * names and the LIST lacks (gone, from a writer's rebuild, or NULL), and
 * the dataset versions model versions were trained on that the index
 * lacks (rmdir of a version a model uses is EBUSY, so it went missing).
 * Each goes to the log and .mlfs/errors once while it stays missing,
 * naming the models trained on it (meta.json and EBUSY reasons say so
 * too, from the index).
 */
static void lineage_check(struct fs *fs, json_t *gone)
{
	struct lineage_scan ls = { NULL, json_object() };
	const char *key, *uid;
	char name[300];
	json_t *ent, *u;
	size_t i;

	if (!ls.missing || meta_txn_begin(fs->meta, true, &ls.t) < 0) {
		json_decref(ls.missing);
		return;
	}
	json_object_foreach(gone, key, u)
		lineage_ent(ls.missing, key);
	meta_scan(ls.t, META_MODELV, "", NULL, lineage_one, &ls);
	/* the dataset's owner sees it too, if its record is still there */
	json_object_foreach(ls.missing, key, ent) {
		if (sscanf(key, "datasets/%299[^/]/", name) == 1)
			lineage_uid(ls.t, META_DS, name, ent);
	}
	meta_txn_abort(ls.t);
	pthread_mutex_lock(&lineage.m);
	json_object_foreach(ls.missing, key, ent) {
		struct problem pb = { 0 };
		size_t off;

		if (json_object_get(lineage.reported, key))
			continue;
		snprintf(pb.path, sizeof(pb.path), "%s", key);
		off = (size_t)snprintf(pb.msg, sizeof(pb.msg),
				       "missing from the bucket");
		json_array_foreach(json_object_get(ent, "models"), i, u) {
			if (off < sizeof(pb.msg))
				off += (size_t)snprintf(
					pb.msg + off, sizeof(pb.msg) - off,
					"%s%s", i ? ", " : "; trained on it: ",
					json_string_value(u));
		}
		/* shown to each owner concerned, else to root alone */
		if (!json_object_size(json_object_get(ent, "uids")))
			fs_damage(fs, 0, &pb);
		json_object_foreach(json_object_get(ent, "uids"), uid, u)
			fs_damage(fs, (uid_t)strtoul(uid, NULL, 10), &pb);
	}
	json_decref(lineage.reported);
	lineage.reported = ls.missing; /* once back, reported again if lost */
	pthread_mutex_unlock(&lineage.m);
}

int ds_rebuild(struct fs *fs)
{
	return ds_rebuild_index(fs, true);
}

/*
 * The check of a live mount leaves jobs/ out: job records change under
 * the runner, not ds_lock, and a record saved between the LIST and the
 * commit would be lost.  Jobs are only ever made by the writer.
 */
int ds_rebuild_index(struct fs *fs, bool jobs)
{
	/* only a writer, rebuilding at mount (no change runs alongside),
	 * deletes what an interrupted rmdir left */
	struct rebuild_cat rcat = { .fs = fs,
				    .tidy = jobs && !fs->opts.read_only };
	double t0 = now_s();
	struct catalog *cat;
	size_t fetched = 0, unused;
	int rc;

	/*
	 * Only a writer compares the catalog with the LIST: it rebuilds
	 * when nothing changes alongside (at mount, or with changes held),
	 * while a reader's catalog may lag the writer's rmdir by seconds.
	 */
	if (!fs->opts.read_only)
		rcat.gone = json_object();
	rebuild_cat_start(&rcat);
	rc = rebuild_kind(fs, &ds_datasets, &rcat, &fetched);
	if (rc == 0)
		rc = rebuild_kind(fs, &ds_models, &rcat, &fetched);
	if (rc == 0 && jobs)
		rc = rebuild_jobs(fs, &rcat, &fetched);
	cat = rebuild_cat_get(&rcat); /* joined even when a LIST failed */
	unused = catalog_unused(cat);
	if (!jobs) {
		size_t left = 0; /* jobs/ entries were not looked at */

		catalog_each(cat, "jobs/", count_one, &left);
		unused -= left;
	}
	/*
	 * A catalog that missed objects, or names objects gone, is due
	 * again (a writer puts it; readers never do).
	 */
	if (rc == 0 && (fetched || unused))
		catalog_changed(fs);
	if (fs->s3)
		fs_log(fs, 6, "rebuild: %zu objects read one by one, %zu "
			      "catalog entries not current; %.3f s",
		       fetched, unused, now_s() - t0);
	catalog_free(cat);
	if (rc == 0)
		lineage_check(fs, rcat.gone);
	json_decref(rcat.gone);
	return rc;
}

int ds_rebuild_trusted(struct fs *fs)
{
	struct rebuild_cat rcat = { .fs = fs, .trust = true };
	double t0 = now_s();
	size_t fetched = 0;
	int rc;

	rcat.cat = catalog_load(fs);
	if (!rcat.cat)
		return -ENOENT;
	ds_verify_arm(); /* changes wait from now on */
	rc = rebuild_kind(fs, &ds_datasets, &rcat, &fetched);
	if (rc == 0)
		rc = rebuild_kind(fs, &ds_models, &rcat, &fetched);
	if (rc == 0)
		rc = rebuild_jobs(fs, &rcat, &fetched);
	fs_log(fs, 6, "rebuild: from the catalog alone; %.3f s", now_s() - t0);
	catalog_free(rcat.cat);
	if (rc == 0)
		lineage_check(fs, NULL);
	if (rc < 0) {
		/* the caller rebuilds with a LIST instead: nothing to check */
		pthread_mutex_lock(&verify.m);
		verify.pending = false;
		pthread_mutex_unlock(&verify.m);
	}
	return rc;
}

static void *verify_main(void *arg)
{
	struct fs *fs = arg;
	struct timespec until;
	unsigned backoff = 1;
	double t0;
	int rc;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += fs->opts.verify_delay;
	for (;;) {
		pthread_mutex_lock(&verify.m);
		while (!verify.kicked && !verify.stop &&
		       pthread_cond_timedwait(&verify.cond, &verify.m,
					      &until) != ETIMEDOUT)
			;
		if (verify.stop && !verify.kicked) {
			/*
			 * Unmounting before any change asked: leave it
			 * unchecked (the index is not marked clean; a late
			 * change checks in lock_changes) rather than hold the
			 * unmount, and the lease, for a LIST.
			 */
			verify.rc = -ECANCELED;
			verify.alive = false;
			pthread_cond_broadcast(&verify.cond);
			pthread_mutex_unlock(&verify.m);
			return NULL;
		}
		/* Below the FUSE workers, unless a change waits for it. */
		if (!verify.kicked && !verify.stop)
			setpriority(PRIO_PROCESS, (id_t)gettid(), 10);
		pthread_mutex_unlock(&verify.m);
		t0 = now_s();
		pthread_mutex_lock(&fs->ds_lock);
		rc = ds_rebuild_index(fs, false);
		pthread_mutex_unlock(&fs->ds_lock);
		setpriority(PRIO_PROCESS, (id_t)gettid(), 0);
		if (rc == 0) {
			fs_log(fs, 6, "the index from the catalog checked "
				      "against the bucket in %.3f s",
			       now_s() - t0);
			break;
		}
		fs_log(fs, 4, "checking the catalog against the bucket: %s; "
			      "changes wait, retrying in %u s", strerror(-rc),
		       backoff);
		pthread_mutex_lock(&verify.m);
		if (verify.stop) {
			/* unmounting: the index is not marked clean */
			pthread_mutex_unlock(&verify.m);
			break;
		}
		pthread_mutex_unlock(&verify.m);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += backoff;
		backoff = backoff < 30 ? backoff * 2 : 30;
		pthread_mutex_lock(&verify.m);
		verify.kicked = false;	/* wait out the backoff */
		pthread_mutex_unlock(&verify.m);
	}
	pthread_mutex_lock(&verify.m);
	verify.pending = rc < 0 && verify.pending;
	if (rc == 0)
		verify.pending = false;
	verify.rc = rc;
	verify.alive = false;
	pthread_cond_broadcast(&verify.cond);
	pthread_mutex_unlock(&verify.m);
	return NULL;
}

void ds_verify_arm(void)
{
	pthread_mutex_lock(&verify.m);
	verify.pending = true;
	verify.kicked = false;
	verify.stop = false;
	verify.rc = 0;
	pthread_mutex_unlock(&verify.m);
}

int ds_verify_start(struct fs *fs)
{
	int rc;

	pthread_mutex_lock(&verify.m);
	verify.alive = true;
	pthread_mutex_unlock(&verify.m);
	rc = pthread_create(&verify.th, NULL, verify_main, fs);
	if (rc) {
		verify.alive = false;
		pthread_mutex_lock(&verify.m);
		verify.pending = false;
		verify.rc = -rc;
		pthread_mutex_unlock(&verify.m);
		return -rc;
	}
	verify.started = true;
	return 0;
}

int ds_verify_join(struct fs *fs)
{
	(void)fs;
	if (!verify.started) {
		pthread_mutex_lock(&verify.m);
		verify.pending = false;
		pthread_mutex_unlock(&verify.m);
		return verify.rc;
	}
	/* a check not begun is dropped; one running is waited for */
	pthread_mutex_lock(&verify.m);
	verify.stop = true;
	pthread_cond_broadcast(&verify.cond);
	pthread_mutex_unlock(&verify.m);
	pthread_join(verify.th, NULL);
	verify.started = false;
	return verify.rc;
}

/* --- garbage collection --- */

struct gc_keys {
	char **k;
	size_t n;
	size_t cap;
	int64_t young;  /* blobs modified after this are spared */
};

static int gc_collect(void *arg, const char *key, const struct store_stat *st)
{
	struct gc_keys *g = arg;

	/*
	 * Blobs are put before the manifest that names them (a job's files,
	 * a model's): a young blob may be about to be referenced.
	 */
	if (st->mtime > g->young)
		return 0;
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 256;
		char **nk = realloc(g->k, cap * sizeof(*nk));

		if (!nk)
			return -ENOMEM;
		g->k = nk;
		g->cap = cap;
	}
	g->k[g->n] = strdup(key);
	if (!g->k[g->n])
		return -ENOMEM;
	g->n++;
	return 0;
}

struct gc_ref {
	const char *hash;
	bool found;
};

static int gc_ref_one(void *arg, const char *key, const char *val, size_t len)
{
	struct gc_ref *r = arg;

	(void)key;
	if (memmem(val, len, r->hash, HASH_HEX_LEN)) {
		r->found = true;
		return 1;
	}
	return 0;
}

int ds_gc(struct fs *fs)
{
	static const enum meta_table tabs[] = { META_DSV, META_MODELV,
						META_JOB };
	struct gc_keys g = { .young = (int64_t)time(NULL) -
				      (int64_t)fs->opts.gc_grace };
	int removed = 0, rc;

	/* under ds_lock: no version can be published half-way through */
	lock_changes(fs);
	rc = store_list(fs->store, "blobs/", gc_collect, &g);
	for (size_t i = 0; rc == 0 && i < g.n; i++) {
		const char *slash = strrchr(g.k[i], '/');
		struct gc_ref r = { slash ? slash + 1 : g.k[i], false };
		struct meta_txn *t;

		if (strlen(r.hash) != HASH_HEX_LEN)
			continue; /* not ours */
		if (reap_is_pending(fs, g.k[i]))
			continue; /* a removed version's, read until its grace ends */
		if (meta_txn_begin(fs->meta, true, &t) < 0)
			break;
		for (size_t k = 0; k < 3 && !r.found; k++)
			meta_scan(t, tabs[k], "", NULL, gc_ref_one, &r);
		meta_txn_abort(t);
		if (!r.found && store_del(fs->store, g.k[i]) == 0)
			removed++;
	}
	pthread_mutex_unlock(&fs->ds_lock);
	for (size_t i = 0; i < g.n; i++)
		free(g.k[i]);
	free(g.k);
	if (rc == 0)
		fs_log(fs, 6, "gc: removed %d unreferenced blob%s", removed,
		       removed == 1 ? "" : "s");
	return rc < 0 ? rc : removed;
}

/* --- rendering --- */

static int render_json(json_t *j, struct strbuf *out)
{
	char *text;
	int rc;

	if (!j)
		return -ENOENT;
	text = json_dumps_short(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (!text)
		return -ENOMEM;
	rc = sb_puts(out, text);
	if (rc == 0)
		rc = sb_puts(out, "\n");
	free(text);
	return rc;
}

int ds_render_schema(json_t *man, struct strbuf *out)
{
	return render_json(json_object_get(man, "schema"), out);
}

int ds_render_stats(json_t *man, struct strbuf *out)
{
	return render_json(json_object_get(man, "stats"), out);
}

int ds_render_lineage(json_t *man, struct strbuf *out)
{
	return render_json(json_object_get(man, "lineage"), out);
}
