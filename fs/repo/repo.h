/* SPDX-License-Identifier: MIT */
/*
 * The repository: every kind of versioned object (datasets, models,
 * feature sets; struct repo_kind below) with its immutable versions,
 * kept as content-addressed blobs plus JSON manifests in the store and
 * indexed in LMDB.  No FUSE here: the tree files (fs/tree/) call these.
 * repo_* calls work for any kind; ds_* calls are the dataset's own
 * (publishing a CSV, lazy imports, the schema override).
 *
 * Store layout (a readable tree):
 *   mlfs-format                      "1.0"
 *   blobs/<h0h1>/<hash>              content, by xxh3-128
 *   <kind>/<name>/<record>           owner, mode, created, aliases,
 *                                    next version (dataset.json,
 *                                    model.json, feature_set.json)
 *   <kind>/<name>/v<n>.json          a version's manifest
 *
 * Changes are serialised by fs->ds_lock (repo_lock), held across the
 * store writes of one change; readers take no lock: they read LMDB.
 */
#ifndef MLFS_FS_REPO_H
#define MLFS_FS_REPO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "hash.h"
#include "ctx.h"
#include "names.h"
#include "strbuf.h"
#include "problem.h"

struct fs;

/*
 * A kind of versioned object: datasets, models, and the kinds to come.
 * Every call below that takes a kind works on any of them: records with
 * owner, mode and aliases, immutable versions, removal with "used by"
 * checks, rebuild from the store, the catalog, gc.  Adding a kind is a
 * descriptor here (kinds.c, and repo_kinds) and a tree file serving it.
 *
 * Store layout of a kind (a readable tree):
 *   <dir>/<name>/<record>     owner, mode, created, aliases, next version
 *   <dir>/<name>/v<n>.json    a version's manifest
 */
struct repo_kind;

/*
 * A field of a version's manifest that names a version of another kind,
 * {"name": ..., "version": n}: that version stays while this one does
 * (EBUSY, "<noun> <name> was <verb> v<n>"), and a rebuild reports it if
 * it went missing ("<verb> it: <name> v<n>").
 */
struct repo_ref {
	const char *field; /* "dataset" */
	const struct repo_kind *to;
	const char *verb;  /* "trained on" */
};

struct repo_kind {
	const char *dir;    /* "datasets": the store prefix and mount dir */
	const char *record; /* "dataset.json": the object's record file */
	const char *noun;   /* "dataset", in messages */
	const struct repo_ref *refs; /* ended by { NULL }; NULL: none */
	/*
	 * Users outside the repository that keep name (version ver, or
	 * any if 0): 1 with why, else 0.  NULL: none.
	 */
	int (*busy)(struct fs *fs, const char *name, unsigned ver, char *why,
		    size_t whylen);
};

extern const struct repo_kind repo_datasets;
extern const struct repo_kind repo_models;
extern const struct repo_kind repo_features;
extern const struct repo_kind repo_deployments;
/* Every kind, NULL-terminated, in the order a rebuild reads them. */
extern const struct repo_kind *const repo_kinds[];

/* The kind whose dir starts key ("models/..."), or NULL. */
const struct repo_kind *repo_kind_of_key(const char *key);
/*
 * The i-th version man's field ref names (the field holds one
 * {"name", "version"} or a list of them): true with *name and *ver.
 */
bool repo_ref_get(json_t *man, const struct repo_ref *ref, size_t i,
		const char **name, unsigned *ver);

/*
 * repo_open: the repository's state for fs (fs->repo), before any call
 * below; repo_close frees it, once nothing calls in any more.
 */
int repo_open(struct fs *fs);
void repo_close(struct fs *fs);

#define REPO_FORMAT_MAJOR 1
#define REPO_FORMAT_MINOR 0

/*
 * repo_format_check: create the format file in an empty store, or check
 * that the store's major version is ours.  -EPROTO (with msg) for an
 * unknown major version.
 */
int repo_format_check(struct fs *fs, char *msg, size_t msglen);

/*
 * repo_rebuild: refill the index, and the catalog table, from the store's
 * manifests; on an S3 store, those the catalog object has current come
 * from it (catalog.h), the rest are read one by one.
 */
int repo_rebuild(struct fs *fs);

/* repo_get: the dataset record (JSON) of name; -ENOENT. Caller decrefs. */
int repo_get(struct fs *fs, const struct repo_kind *k, const char *name, json_t **rec);
/*
 * repo_version: the manifest of name's version ver (0: the latest);
 * -ENOENT if no such version.  Caller decrefs.
 */
int repo_version(struct fs *fs, const struct repo_kind *k, const char *name, unsigned ver, json_t **man);

/*
 * repo_version_shared: repo_version of a version (ver > 0) of name, whose
 * record the caller holds (rec), as a reference to a manifest parsed
 * once and shared: the caller reads it and decrefs it, and never changes
 * it.  Kept by kind, name, the record's incarnation and ver (a version
 * never changes, and a name made again has a new incarnation); a
 * dataset's pending version is not kept (importing fills it in).  For
 * the paths that read a manifest per request (predict's open, HTTP).
 */
int repo_version_shared(struct fs *fs, const struct repo_kind *k,
			const char *name, json_t *rec, unsigned ver,
			json_t **man);

/* List datasets / versions of name, in order; fn returns non-zero to stop. */
int repo_list(struct fs *fs, const struct repo_kind *k, int (*fn)(void *arg, const char *name), void *arg);
int repo_versions(struct fs *fs, const struct repo_kind *k, const char *name,
		int (*fn)(void *arg, unsigned ver), void *arg);

int repo_create(struct fs *fs, const struct repo_kind *k, const char *name, mode_t mode,
	      const struct fs_ctx *ctx, struct problem *pb);
/* Remove a dataset with its versions; -EBUSY while something uses it. */
int repo_remove(struct fs *fs, const struct repo_kind *k, const char *name,
	      struct problem *pb);
/* Remove one version; -EBUSY if an alias points to it. */
int repo_remove_version(struct fs *fs, const struct repo_kind *k, const char *name, unsigned ver,
		      struct problem *pb);
int repo_chmod(struct fs *fs, const struct repo_kind *k, const char *name, mode_t mode);
/*
 * repo_may: may u have the access want (R_OK, W_OK, X_OK) on object
 * name, by its record's owner, group and mode?  0, -EACCES, or
 * repo_get's -errno (-ENOENT).
 */
struct host_user;
int repo_may(struct fs *fs, const struct repo_kind *k, const char *name,
	     const struct host_user *u, int want);
/*
 * repo_record_set: set field of name's record to value (stolen; NULL
 * removes the field), for settings kept with the object (a dataset's
 * label model, watch, schedule).  The record is its store file, so the
 * setting survives a remount, a rebuild and the S3 store.  -ENOENT.
 */
int repo_record_set(struct fs *fs, const struct repo_kind *k,
		    const char *name, const char *field, json_t *value);

/* What made a version, for its lineage. */
struct repo_origin {
	const char *made_by; /* "write", "source", "schema" */
	const char *detail;  /* path, command; may be NULL */
	const char *etag;    /* an S3 source's ETag; may be NULL */
	uid_t uid;
	pid_t pid;
	unsigned over; /* ds_publish: only on top of this latest version,
			  else -ESTALE (a read-modify-write); 0: any */
};

/*
 * ds_publish: make a new version of name from the local file at path
 * (open as fd), which is validated as CSV.  On success the file has been
 * consumed (moved into the store, or removed when the store already had
 * the content) and *ver is the new version, or the current one when the
 * content is identical to it (*created false).  Bad CSV: -EINVAL/-EFBIG
 * with pb filled, nothing changed, the file left in place; -ESTALE, the
 * same, when origin->over names a version that is no longer the latest.
 */
int ds_publish(struct fs *fs, const char *name, const char *path, int fd,
	       const struct repo_origin *origin, unsigned *ver, bool *created,
	       struct problem *pb);

/*
 * ds_publish_scanned: ds_publish of a file already scanned and hashed
 * (stagescan.h): info (consumed, whatever the outcome) and hash are
 * csv_scan()'s and hash_hex()'s of its bytes.
 */
struct csv_info;

/*
 * ds_publish_copy: ds_publish of a private copy of the first size bytes
 * of in (a job's output, a host file: not the daemon's to trust once it
 * is read), scanned and hashed while it is copied (stagescan.h).  The
 * copy is the store's or removed, whatever the outcome; in is the
 * caller's.
 */
int ds_publish_copy(struct fs *fs, const char *name, int in, uint64_t size,
		    const struct repo_origin *origin, unsigned *ver,
		    bool *created, struct problem *pb);

/*
 * A private copy of a file that another process is still writing by
 * appends (a job's output), made and scanned as it grows, then
 * published: repo_follow_start (max: the most the file may grow to),
 * repo_follow_copy of its bytes up to upto whenever it has grown (from
 * repo_follow_copied() on; -EIO if in holds fewer), then exactly one of
 * repo_follow_publish (ds_publish_copy's outcome, of the bytes copied)
 * or repo_follow_drop.  One thread at a time.
 */
struct repo_follow;
int repo_follow_start(struct fs *fs, uint64_t max, struct repo_follow **out);
int repo_follow_copy(struct repo_follow *f, int in, uint64_t upto);
uint64_t repo_follow_copied(const struct repo_follow *f);
/*
 * Or no copy: repo_follow_writer gives a new write-only, O_APPEND
 * descriptor of the staging file itself, for another process (a job, as
 * its writer) to write into, the file made append-only first
 * (store_append_only).  -EOPNOTSUPP or -ENOTTY on a file system other
 * than ext4 and tmpfs, where concurrent direct appends may share a place,
 * or without the attribute: then copy.  repo_follow_grew takes what it has
 * written so far (-EFBIG past max).  When that process has ended,
 * repo_follow_seal checks that no descriptor of the file is left open
 * anywhere but the daemon's (-EBUSY otherwise: a descriptor kept or
 * passed on could still append; -ENOLCK where the file system cannot
 * tell) and takes its last bytes; then repo_follow_publish as after
 * copies.  The bytes scanned are the bytes published: append-only,
 * nobody could change one once written.  repo_follow_publish_copy
 * instead publishes a private copy of what the file holds (as
 * ds_publish_copy) and drops f: what is left when it cannot be sealed.
 */
int repo_follow_writer(struct repo_follow *f);
int repo_follow_grew(struct repo_follow *f);
int repo_follow_seal(struct repo_follow *f);
int repo_follow_publish_copy(struct repo_follow *f, const char *name,
			     const struct repo_origin *origin, unsigned *ver,
			     bool *created, struct problem *pb);
int repo_follow_publish(struct repo_follow *f, const char *name,
			const struct repo_origin *origin, unsigned *ver,
			bool *created, struct problem *pb);
void repo_follow_drop(struct repo_follow *f);
int ds_publish_scanned(struct fs *fs, const char *name, const char *path,
		       int fd, const struct repo_origin *origin,
		       struct csv_info *info, const char *hash, unsigned *ver,
		       bool *created, struct problem *pb);

/*
 * Lazy import (an s3:// source): ds_publish_pending makes version *ver
 * of name from the object origin names (origin->detail, pinned to
 * origin->etag) without reading it: its manifest has "pending": true
 * and the size, no hash, blob, schema or stats.  The latest version
 * already pinned to that object and ETag makes none (*created false).
 * ds_version_ready is repo_version for datasets that first imports a
 * pending version (fetch, scan, hash, blob; the manifest filled in):
 * -ESTALE if the object changed since it was pinned, -EINVAL with pb on
 * bad CSV (the version stays pending), or the fetch's errno with pb.
 * Blocks for the fetch; one import of a version runs at a time.
 */
int ds_publish_pending(struct fs *fs, const char *name,
		       const struct repo_origin *origin, uint64_t size,
		       unsigned *ver, bool *created);
int ds_version_ready(struct fs *fs, const char *name, unsigned ver,
		     json_t **man, struct problem *pb);
bool ds_is_pending(json_t *man);

/*
 * ds_version_open is ds_version_ready for a reader of the bytes, which
 * need not wait for the whole import: for a pending version of a
 * writable mount it starts the import on a thread (or joins the one
 * running) and gives *feed, with *man the pending manifest; else *feed
 * is NULL and it is ds_version_ready.  The feed's bytes are those of
 * the pinned object, each range checked against its ETag as it lands.
 *
 * ds_feed_wait blocks until bytes [0, end) have landed: 0, or the
 * copy's failure with pb (bytes that landed before it are good).  The
 * end (end at the size or past it) waits for the whole copy, whose
 * ETag is checked after it.  Then read them from ds_feed_fd (a staging
 * file that holds all of them, even after the import).  The hash,
 * schema and stats follow: with all, it waits for them too and gives
 * the import's result.  ds_feed_key is the blob's store key once the
 * import succeeded ("" before).  ds_feed_put drops the reader's
 * reference.
 */
struct ds_feed;
int ds_version_open(struct fs *fs, const char *name, unsigned ver,
		    json_t **man, struct ds_feed **feed, struct problem *pb);
int ds_feed_wait(struct ds_feed *f, uint64_t end, bool all,
		 struct problem *pb);
int ds_feed_fd(const struct ds_feed *f);
uint64_t ds_feed_size(const struct ds_feed *f);
const char *ds_feed_key(const struct ds_feed *f);
void ds_feed_put(struct ds_feed *f);

/*
 * repo_imports_stop: at unmount, end the imports running on threads
 * (their fetches stop at the next range; the versions stay pending for
 * the next mount) and wait for them.  Idempotent.
 */
void repo_imports_stop(struct fs *fs);

/*
 * repo_rebuild_trusted: rebuild the index from the S3 catalog object alone,
 * without a LIST (-ENOENT when there is none to use).  Only for a fresh
 * index of a prefix whose writer left cleanly (or a read-only mount).
 * Changes (repo_create, ds_publish, ..., repo_gc) wait from then on until
 * the thread repo_verify_start starts has checked it against the bucket
 * (a rebuild with a LIST, jobs left out: repo_rebuild_index), which it
 * does fs->opts.verify_delay seconds later or as soon as a change asks,
 * retrying with backoff.  repo_verify_join, at unmount, drops a check not
 * begun (a later change then checks first, in the caller's thread) and
 * waits for one running: 0 once checked, -ECANCELED if dropped, or the
 * rebuild's -errno (then do not mark the index clean).
 */
int repo_rebuild_trusted(struct fs *fs);
int repo_rebuild_index(struct fs *fs, bool jobs);
void repo_verify_arm(struct fs *fs);
int repo_verify_start(struct fs *fs);
int repo_verify_join(struct fs *fs);

/*
 * ds_set_schema: apply a schema override (JSON text, see doc/manual.md)
 * to the latest version: a new version with the same data and the new
 * schema; the override is kept for later versions.  Bad text: -EINVAL,
 * pb.
 */
int ds_set_schema(struct fs *fs, const char *name, const char *text,
		  const struct repo_origin *origin, struct problem *pb);

/*
 * ds_check_schema: would ds_set_schema accept text?  The same checks
 * (JSON, fields, columns, types against the latest version), nothing
 * changed.  0, or -EINVAL with pb.
 */
int ds_check_schema(struct fs *fs, const char *name, const char *text,
		    struct problem *pb);

/*
 * repo_ref_resolve: ref as "name", "name@<n>", "name@latest" or
 * "name@<alias>" (no suffix: the production alias if set, else the
 * latest) into name (nlen bytes) and *ver, with the object's record in
 * *rec (if rec; caller decrefs).  -EINVAL with why ("no model \"x\"",
 * "... has no such alias", "... has no version 9").
 */
int repo_ref_resolve(struct fs *fs, const struct repo_kind *k,
		     const char *ref, char *name, size_t nlen, unsigned *ver,
		     json_t **rec, char *why, size_t whylen);

/* Aliases: name -> version. */
int repo_alias_get(struct fs *fs, const struct repo_kind *k, const char *name, const char *alias,
		 unsigned *ver);
int repo_alias_set(struct fs *fs, const struct repo_kind *k, const char *name, const char *alias,
		 const char *target, bool replace, struct problem *pb);
int repo_alias_del(struct fs *fs, const struct repo_kind *k, const char *name, const char *alias);
int repo_alias_rename(struct fs *fs, const struct repo_kind *k, const char *name, const char *from,
		    const char *to, unsigned flags);

/*
 * repo_copy_to_tmp: a private copy of the first size bytes of in, in a new
 * file of the store's temporary folder (its path in tmp, an open
 * descriptor in *out), for content whose source another user can change
 * or that is not ours to move.  The caller publishes it, or closes and
 * unlinks it.  0, or -errno with nothing left behind (*out is -1).
 */
int repo_copy_to_tmp(struct fs *fs, int in, uint64_t size, char *tmp,
		   size_t tmplen, int *out);

/*
 * repo_commit_model: publish a new model version from files already put in
 * the store as blobs: man is the manifest without "version" (it gets the
 * next number, set in man).  Creates the model if it does not exist,
 * owned by ctx's uid and gid.  ctx->umask holds the mode bits the model
 * may not have (those its dataset lacks): the model's mode loses them.
 */
int repo_commit_model(struct fs *fs, const char *name, json_t *man,
		    const struct fs_ctx *ctx, unsigned *ver);

/*
 * repo_commit: a new version of name (any kind) whose manifest is man: its
 * fields, to which "format", "version" and "lineage" (from origin) are
 * added.  When every field of man equals the latest version's, no
 * version is made: *ver is the latest, *created false.  -ENOENT if name
 * does not exist.
 */
int repo_commit(struct fs *fs, const struct repo_kind *k, const char *name,
	      json_t *man, const struct repo_origin *origin, unsigned *ver,
	      bool *created);

/*
 * repo_put_file: put the local file at path into the store by content
 * (consumed on success) and give its hash and size.
 */
int repo_put_file(struct fs *fs, const char *path, char hash[33],
		uint64_t *size);

/*
 * repo_gc: remove the blobs no dataset version, model version or job
 * references (blobs are shared by content).  Number removed, or -errno.
 */
int repo_gc(struct fs *fs);

/*
 * repo_blob_reap: delete blob key from the store (the cache and the bucket)
 * unless a dataset version, model version or job names it now: the end
 * of a removed version's grace (reap.c).  Takes ds_lock.  0 (also when
 * kept, or already gone), or the store's errno.
 */
int repo_blob_reap(struct fs *fs, const char *key);

/* The store key of a version's blob (out: at least 80 bytes). */
void repo_blob_key(const char *hash, char *out, size_t outlen);

/*
 * repo_blob_hash: is key a blob's key (blobs/<2 hex>/<xxh3-128 hex>, as
 * repo_blob_key makes them)?  If so, the hash it names into hash.  Pure:
 * the block cache calls it under its lock (bcache_opts.content_hash).
 */
bool repo_blob_hash(const char *key, char hash[HASH_HEX_LEN + 1]);

/*
 * repo_blob_error: rc from reading blob key for uid (path: the file of the
 * mount that was read, or a job's name).  -EBADMSG, content in the store
 * that does not match the hash its key names, is reported (a line naming
 * path and key in .mlfs/errors, shown to uid, and in the log) and becomes
 * -EIO; any other rc is returned as it is.
 */
int repo_blob_error(struct fs *fs, uid_t uid, const char *path, const char *key,
		  int rc);

/*
 * repo_file_json: the file of version manifest man (its "files" entry),
 * at most max bytes of it read from the store and parsed: a new
 * reference in *out.  -ENOENT when the version has no such file; a blob
 * that does not match its hash is reported for uid at path and -EIO, as
 * repo_blob_error says; -EIO for one that is not JSON.
 */
int repo_file_json(struct fs *fs, json_t *man, const char *file, size_t max,
		   uid_t uid, const char *path, json_t **out);

/*
 * A manifest's field as the mount shows it: indented JSON, numbers as
 * people write them, a newline at the end.  -ENOENT without the field.
 */
int repo_render_field(json_t *man, const char *field, struct strbuf *out);
/* Render helpers shared by datasets.c. */
int ds_render_schema(json_t *man, struct strbuf *out);
int ds_render_stats(json_t *man, struct strbuf *out);
int ds_render_lineage(json_t *man, struct strbuf *out);

#endif
