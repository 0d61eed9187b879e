/* SPDX-License-Identifier: MIT */
/*
 * The metadata index: LMDB on the local disk.  It indexes what the store
 * holds (datasets, versions, aliases; later jobs and models) so that
 * lookups and listings never touch the store.  It can always be rebuilt
 * from the store.
 *
 * Keys are strings; tables are LMDB named databases.  MDB_* codes stop
 * here and become errnos (meta.c has the one translation).  Transactions
 * belong to one thread and must be short: never hold one across store I/O.
 */
#ifndef MLFS_FS_META_H
#define MLFS_FS_META_H

#include <stdbool.h>
#include <stddef.h>

struct meta;
struct meta_txn;

/*
 * The layout of the tables, in META_MISC "layout": an index of another
 * (older) layout is rebuilt from the store at mount.
 */
#define META_LAYOUT "2"

enum meta_table {
	META_MISC = 0, /* small settings: "clean", "layout" */
	META_REC,      /* "<kind dir>/<name>" -> the object's record (JSON),
			* of every kind of versioned object (repo.h) */
	META_VER,      /* "<kind dir>/<name>/<10-digit n>" -> a version's
			* manifest (JSON) */
	META_JOB,      /* job name -> job record (JSON) */
	META_CAT,      /* store key of a manifest -> its exact bytes in the
			* store, for the catalog object (catalog.h) */
	META_ONLINE,   /* "<feature set>/<entity key>" -> the entity's events;
			* "<feature set>/" -> the history they came from
			* (featonline.c, in its scratch index; loaded from
			* the store on demand) */
	META_NTABLES,
};

/*
 * meta_open: open or create the index in directory dir (created if
 * missing).  *created tells whether the index was new (so the caller
 * rebuilds it from the store).  -errno on failure, *out NULL.
 */
int meta_open(const char *dir, struct meta **out, bool *created);
/*
 * meta_open_scratch: an index of derived state only (the online stores
 * of feature sets), in directory dir: commits are not synced, so one
 * that was not closed by meta_close (a crash, a kill) is started empty
 * at the next open, and its owner loads it again from the store.
 */
int meta_open_scratch(const char *dir, struct meta **out);
/* meta_close(NULL) does nothing.  No transaction may be open. */
void meta_close(struct meta *m);

/* Begin a transaction; rdonly for readers.  *out NULL on failure. */
int meta_txn_begin(struct meta *m, bool rdonly, struct meta_txn **out);
/* Commit (ends the txn either way): 0 or -errno (-ENOSPC, -EIO). */
int meta_txn_commit(struct meta_txn *t);
/* Abort; NULL does nothing. */
void meta_txn_abort(struct meta_txn *t);

/*
 * meta_get: the value of key as a malloc'd NUL-terminated copy (*val,
 * *len without the NUL).  -ENOENT if missing.
 */
int meta_get(struct meta_txn *t, enum meta_table tab, const char *key,
	     char **val, size_t *len);
/* meta_has: 1 if present, 0 if not, -errno. */
int meta_has(struct meta_txn *t, enum meta_table tab, const char *key);
int meta_put(struct meta_txn *t, enum meta_table tab, const char *key,
	     const void *val, size_t len);
/*
 * A cursor of transaction t on tab, for many gets and puts in key order:
 * each starts from where the last ended (on the same page, no descent
 * from the root).  meta_cursor_get lends the value (*val, *len bytes,
 * not NUL-terminated, not aligned), valid until the next put or the end
 * of t; -ENOENT.  Close the cursor before the transaction ends.
 */
struct meta_cursor;
int meta_cursor_open(struct meta_txn *t, enum meta_table tab,
		     struct meta_cursor **out);
int meta_cursor_get(struct meta_cursor *c, const char *key, const void **val,
		    size_t *len);
int meta_cursor_put(struct meta_cursor *c, const char *key, const void *val,
		    size_t len);
void meta_cursor_close(struct meta_cursor *c);

/* meta_del: -ENOENT if missing. */
int meta_del(struct meta_txn *t, enum meta_table tab, const char *key);

/*
 * meta_scan: call fn for each key starting with prefix, in key order,
 * with key and value borrowed (valid for the call only).  A non-zero
 * return from fn stops the scan and is returned.  after (may be NULL)
 * skips keys <= after, for resumable listings.
 */
typedef int (*meta_scan_fn)(void *arg, const char *key, const char *val,
			    size_t len);
int meta_scan(struct meta_txn *t, enum meta_table tab, const char *prefix,
	      const char *after, meta_scan_fn fn, void *arg);

/* meta_drop: empty a table (used by rebuilds). */
int meta_drop(struct meta_txn *t, enum meta_table tab);
/* meta_drop_prefix: delete every key of tab starting with prefix. */
int meta_drop_prefix(struct meta_txn *t, enum meta_table tab,
		     const char *prefix);

#endif
