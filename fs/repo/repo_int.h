/* SPDX-License-Identifier: MIT */
/*
 * Inside the repository (fs/repo/): what its files share and nothing
 * above it may call.  The public interface is repo.h.
 *
 * Locking: every change takes repo_lock() (fs->ds_lock, after the check
 * of an index taken from the catalog) from its checks to its index
 * commit, and releases it with repo_unlock().  Readers read LMDB only.
 */
#ifndef MLFS_FS_REPO_INT_H
#define MLFS_FS_REPO_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "csv.h"
#include "repo.h"
#include "meta.h"
#include "fs.h"
#include "problem.h"

#define DS_MANIFEST_MAX ((size_t)64 << 20) /* bytes */
#define DS_RECORD_MAX ((size_t)16 << 20)   /* bytes */

struct import_ent;
struct reap_ent;

/*
 * The repository's own state, hung off struct fs (fs->repo): made by
 * repo_open, freed by repo_close.
 */
struct repo {
	/*
	 * The check of an index taken from the catalog (verify.c): a
	 * thread runs the full rebuild, LIST and all, verify_delay seconds
	 * after the mount, or at once when a change asks for it first.
	 */
	struct {
		pthread_t th;
		bool started;
		pthread_mutex_t m;
		pthread_cond_t cond;
		bool pending; /* under m: the index is not checked yet */
		bool kicked;  /* under m: a change waits for the check */
		bool stop;    /* under m: unmounting */
		bool alive;   /* under m: the thread runs */
		int rc;       /* under m: the check's, once done */
	} verify;
	/* Lazy imports in flight or failed for good (import.c). */
	struct {
		pthread_mutex_t m;
		pthread_cond_t cond;
		struct import_ent *list; /* under m */
		unsigned running;        /* under m: imports on threads */
		bool stop;               /* under m: unmounting */
	} imports;
	/*
	 * Blobs of removed versions waiting out gc_grace (reap.c): one
	 * thread, started by reap_start on the writer of an S3 store.
	 */
	struct reap_queue {
		pthread_mutex_t lock;
		pthread_cond_t cond;
		struct reap_ent *head; /* under lock, earliest first */
		bool stop;             /* under lock */
		bool started;          /* under lock */
		pthread_t thread;
	} reap;
	/* Manifests reported missing, as of the last check (lineage.c). */
	struct {
		pthread_mutex_t m;
		json_t *reported; /* under m */
	} lineage;
	/* Versions' manifests parsed once, shared read-only (vercache.c). */
	struct {
		pthread_mutex_t m;
		struct vcache_ent *e; /* under m: VCACHE_KEEP of them */
		uint64_t tick;        /* under m */
	} vcache;
};

/* --- vercache.c --- */
int repo_vcache_open(struct repo *r);
void repo_vcache_close(struct repo *r);

/* A file mapped for reading; data is "" when it is empty. */
struct mapped {
	void *map;
	const char *data;
	uint64_t size;
};

/* --- records.c --- */
void repo_index_key(const struct repo_kind *k, const char *name, char *out,
		    size_t len);
void repo_version_key(const struct repo_kind *k, const char *name,
		      unsigned ver, char *out, size_t len);
void repo_manifest_key(const struct repo_kind *k, const char *name,
		       unsigned ver, char *out, size_t len);
void repo_record_key(const struct repo_kind *k, const char *name, char *out,
		     size_t len);
void repo_iso_time(time_t t, char *out, size_t len);
int repo_index_get_json(struct fs *fs, enum meta_table tab, const char *key,
			json_t **out);
unsigned repo_rec_uint(json_t *rec, const char *field);
/* The text of a record or manifest in the store, and in the catalog. */
char *repo_manifest_text(json_t *j);
/* Write j to the store at key, atomically; create: never over another's. */
int repo_put_json_as(struct fs *fs, const char *key, json_t *j, bool create);
int repo_put_json(struct fs *fs, const char *key, json_t *j);
/*
 * Commit the index side of a change: the record of name (NULL: delete
 * it) and optionally one version (man NULL with ver: delete it), with
 * their catalog entries.
 */
int repo_index_update(struct fs *fs, const struct repo_kind *k,
		      const char *name, json_t *rec, unsigned ver, json_t *man);
void repo_set_incarnation(json_t *rec);
bool repo_same_incarnation(json_t *rec, json_t *man);
/* Collect version numbers (repo_versions' fn): arg is a struct ver_collect. */
struct ver_collect {
	unsigned *v;
	size_t n;
	size_t cap;
};
int repo_collect_ver(void *arg, unsigned ver);
/* A new version's manifest, the record and the index.  Under the lock. */
int repo_commit_version(struct fs *fs, const struct repo_kind *k,
			const char *name, json_t *rec, json_t *man,
			unsigned ver);

/* --- kinds.c --- */
/* Is name (version ver, or any) used by something that must keep it? */
int repo_in_use(struct fs *fs, const struct repo_kind *k, const char *name,
		unsigned ver, char *why, size_t whylen);

/* --- verify.c --- */
void repo_lock(struct fs *fs);
static inline void repo_unlock(struct fs *fs)
{
	pthread_mutex_unlock(&fs->ds_lock);
}

/* --- blobs.c --- */
bool repo_blob_is_stored(struct fs *fs, const char *key, uint64_t size);
bool repo_blob_referenced(struct fs *fs, const char *hash);
void repo_drop_unreferenced(struct fs *fs, const char *hash, const char *key);
int repo_put_blob(struct fs *fs, const char *hash, const char *path,
		  uint64_t size, char *key, size_t keylen, bool *fresh);
/* Release every blob a manifest names, but for other versions' use. */
void repo_man_release(struct fs *fs, const struct repo_kind *k, json_t *man,
		      const char *name, unsigned ver);

/* --- aliases.c --- */
bool repo_alias_uses(json_t *rec, unsigned ver, const char **alias);

/* --- describe.c --- */
json_t *repo_stats_json(const struct csv_info *info);
json_t *repo_schema_json(const struct csv_info *info, json_t *overrides,
			 const char *label_override);
json_t *repo_lineage_json(unsigned parent, time_t now, uint64_t size,
			  const char *hash, const struct repo_origin *o);

/* --- publish.c --- */
int repo_map_file(int fd, struct mapped *m);
void repo_unmap_file(struct mapped *m);
int repo_scan_file(int fd, struct csv_info **info, char *hash,
		   uint64_t *size, struct problem *pb);
int repo_manifest_content(json_t *man, json_t *rec,
			  const struct csv_info *info, const char *hash,
			  const char *key, uint64_t size);
unsigned repo_next_version(json_t *rec, unsigned parent);
int repo_commit_new(struct fs *fs, const char *name, json_t *rec,
		    json_t *man, unsigned v, unsigned *ver, bool *created);

/* --- import.c --- */
/* Forget every import (repo_close: no reader is left). */
void repo_imports_free(struct fs *fs);

/* --- rebuild.c, lineage.c --- */
double repo_now_s(void);
void repo_lineage_check(struct fs *fs, json_t *gone);

#endif
