/* SPDX-License-Identifier: MIT */
/*
 * Rebuild: the index, and its catalog table, made again from the
 * store's records and manifests (and the S3 catalog object).
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
static bool split_key(const struct repo_kind *k, const char *key, char *name,
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
			       LIST lacks (key -> true), for repo_lineage_check */
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

/* A catalog entry taken as listed and read (repo_rebuild_trusted). */
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

/*
 * In t: the records of kind k the rebuild made (recs: name -> record
 * with its "versions"), and their manifests; trust: those are the
 * entries of rb they came from, put as they are.
 */
static int index_kind(struct meta_txn *t, const struct repo_kind *k,
		      json_t *recs, const struct rebuild *rb, bool trust)
{
	const char *n, *vn;
	json_t *rec, *man;
	char key[512];
	int rc = 0;

	json_object_foreach(recs, n, rec) {
		json_t *vers = json_incref(json_object_get(rec, "versions"));
		char *text;

		json_object_del(rec, "versions");
		text = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER);
		repo_index_key(k, n, key, sizeof(key));
		if (rc == 0)
			rc = text ? meta_put(t, META_REC, key, text,
					     strlen(text))
				  : -ENOMEM;
		free(text);
		json_object_foreach(vers, vn, man) {
			json_t *ent = trust ? json_object_get(man, "ent")
					    : NULL;

			repo_version_key(k, n, repo_rec_uint(man, "version"),
					 key, sizeof(key));
			if (ent) {
				const struct rebuild_ent *e =
					&rb->ents[json_integer_value(ent)];

				if (rc == 0)
					rc = meta_put(t, META_VER, key,
						      e->body, e->len);
				continue;
			}
			text = json_dumps(man, JSON_COMPACT |
						       JSON_PRESERVE_ORDER);
			if (rc == 0)
				rc = text ? meta_put(t, META_VER, key, text,
						     strlen(text))
					  : -ENOMEM;
			free(text);
		}
		json_decref(vers);
	}
	return rc;
}

static int rebuild_kind(struct fs *fs, const struct repo_kind *k,
			struct rebuild_cat *cat, size_t *fetched)
{
	struct rebuild rb = { 0 };
	struct meta_txn *t = NULL;
	json_t *recs, *named;
	char name[300], prefix[64];
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
			    repo_rec_uint(man, "version") != v) {
				json_decref(man);
				continue;
			}
			if (!repo_same_incarnation(rec, man)) {
				/* of an earlier object of the name */
				orphan(fs, cat, e);
				json_decref(man);
				continue;
			}
		}
		json_object_set_new(json_object_get(rec, "versions"), vname,
				    man);
		if (v > repo_rec_uint(rec, "latest"))
			json_object_set_new(rec, "latest", json_integer(v));
		if (v >= repo_rec_uint(rec, "next"))
			json_object_set_new(rec, "next", json_integer(v + 1));
	}
	rc = meta_txn_begin(fs->meta, false, &t);
	if (rc < 0)
		goto out_recs;
	rc = meta_drop_prefix(t, META_REC, prefix);
	if (rc == 0)
		rc = meta_drop_prefix(t, META_VER, prefix);
	if (rc == 0)
		rc = rebuild_catalog(t, prefix, &rb);
	if (rc == 0)
		rc = index_kind(t, k, recs, &rb, cat->trust);
	if (rc == 0)
		rc = meta_txn_commit(t);
	else
		meta_txn_abort(t);
	if (rc == 0)
		atomic_fetch_add(&fs->rec_gen, 1);
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
	/* This index has a catalog table that matches the store, and the
	 * layout of tables this mlfs reads (main.c rebuilds older ones). */
	if (rc == 0)
		rc = meta_put(t, META_MISC, "layout", META_LAYOUT,
			      strlen(META_LAYOUT));
	if (rc == 0)
		rc = meta_txn_commit(t);
	else
		meta_txn_abort(t);
out_free:
	*fetched += rb.fetched;
	rebuild_free(&rb);
	return rc;
}

double repo_now_s(void)
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

int repo_rebuild(struct fs *fs)
{
	return repo_rebuild_index(fs, true);
}

/*
 * The check of a live mount leaves jobs/ out: job records change under
 * the runner, not ds_lock, and a record saved between the LIST and the
 * commit would be lost.  Jobs are only ever made by the writer.
 */
int repo_rebuild_index(struct fs *fs, bool jobs)
{
	/* only a writer, rebuilding at mount (no change runs alongside),
	 * deletes what an interrupted rmdir left */
	struct rebuild_cat rcat = { .fs = fs,
				    .tidy = jobs && !fs->opts.read_only };
	double t0 = repo_now_s();
	struct catalog *cat;
	size_t fetched = 0, unused;
	int rc = 0;

	/*
	 * Only a writer compares the catalog with the LIST: it rebuilds
	 * when nothing changes alongside (at mount, or with changes held),
	 * while a reader's catalog may lag the writer's rmdir by seconds.
	 */
	if (!fs->opts.read_only)
		rcat.gone = json_object();
	rebuild_cat_start(&rcat);
	for (size_t i = 0; rc == 0 && repo_kinds[i]; i++)
		rc = rebuild_kind(fs, repo_kinds[i], &rcat, &fetched);
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
		       fetched, unused, repo_now_s() - t0);
	catalog_free(cat);
	if (rc == 0)
		repo_lineage_check(fs, rcat.gone);
	json_decref(rcat.gone);
	return rc;
}

int repo_rebuild_trusted(struct fs *fs)
{
	struct rebuild_cat rcat = { .fs = fs, .trust = true };
	double t0 = repo_now_s();
	size_t fetched = 0;
	int rc = 0;

	rcat.cat = catalog_load(fs);
	if (!rcat.cat)
		return -ENOENT;
	repo_verify_arm(fs); /* changes wait from now on */
	for (size_t i = 0; rc == 0 && repo_kinds[i]; i++)
		rc = rebuild_kind(fs, repo_kinds[i], &rcat, &fetched);
	if (rc == 0)
		rc = rebuild_jobs(fs, &rcat, &fetched);
	fs_log(fs, 6, "rebuild: from the catalog alone; %.3f s", repo_now_s() - t0);
	catalog_free(rcat.cat);
	if (rc == 0)
		repo_lineage_check(fs, NULL);
	if (rc < 0) {
		/* the caller rebuilds with a LIST instead: nothing to check */
		pthread_mutex_lock(&fs->repo->verify.m);
		fs->repo->verify.pending = false;
		pthread_mutex_unlock(&fs->repo->verify.m);
	}
	return rc;
}
