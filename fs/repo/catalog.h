/* SPDX-License-Identifier: MIT */
/*
 * The catalog: one object, mlfs-catalog.json at the top of an S3 prefix,
 * holding the exact bytes of every manifest under datasets/, models/ and
 * jobs/, so that a fresh mount rebuilds its index from a LIST and one GET
 * instead of a GET per manifest.  Format 2, a JSON header line and then
 * length-prefixed entries in key order, read without a parse or a copy
 * (format 1's JSON took a fresh mount 28 ms to parse for 1,000 datasets):
 *
 *     {"format":2}\n
 *     <key length> <body length>\n<key>\n<body>\n   (each entry)
 *
 * Format 1, {"format":1,"objects":{"<key>":{"md5":..,"body":..},...}},
 * which earlier versions wrote under the same name, is still read; they
 * read a format 2 catalog as none at all (a GET per manifest).
 *
 * It is a hint, never the truth: S3's ETag of a single-part PUT is the MD5
 * of the body, so a reader uses an entry only for a key the LIST shows
 * with an ETag equal to the MD5 of the entry's body (computed by the
 * reader, not taken from the catalog), and reads every other key itself.
 * A stale, foreign or broken catalog costs GETs, never wrong content.
 *
 * Only the writer mount of an S3 prefix writes it (remote.c), from the
 * META_CAT table that repo/ and runner.c keep in the same transactions as
 * the rest of the index.  A local store has no catalog: its rebuild reads
 * files, which is already fast.
 */
#ifndef MLFS_FS_CATALOG_H
#define MLFS_FS_CATALOG_H

#include <stdbool.h>
#include <stddef.h>

struct fs;
struct meta_txn;
struct catalog;

#define CATALOG_KEY "mlfs-catalog.json"
#define CATALOG_MAX ((size_t)1 << 30) /* bytes, the object's ceiling */

/*
 * catalog_set: in t (a write txn), record body (len bytes, exactly as put
 * in the store) as key's catalog entry, or forget key when body is NULL.
 * 0 or -errno from the index (a missing key to forget is not an error).
 * Call catalog_changed() once t has committed.
 */
int catalog_set(struct meta_txn *t, const char *key, const char *body,
		size_t len);

/* catalog_changed: META_CAT changed; the bucket's catalog is stale. */
void catalog_changed(struct fs *fs);

/*
 * catalog_write: if META_CAT changed since the catalog was last written
 * (or it never was), put a new catalog into fs->s3.  0 when written or
 * nothing was to do (no S3 store, a read-only mount, clean), -errno from
 * the store or -EFBIG past CATALOG_MAX; a failed write stays due.
 * Thread-safe (writes are serialised); blocks on the store.
 */
int catalog_write(struct fs *fs);

/*
 * catalog_load: read and parse the catalog from fs->s3.  NULL when there
 * is no S3 store, no catalog, or one that is unreadable, unparsable or of
 * another format (logged at notice level): the caller then reads every
 * manifest.  Free with catalog_free().
 */
struct catalog *catalog_load(struct fs *fs);

/*
 * catalog_find: key's body, if the catalog has one whose MD5 is etag (as
 * listed: quotes and case do not matter).  A malloc'd NUL-terminated copy
 * in *body (*len bytes, without the NUL): 0; -ENOENT when there is no
 * such current entry (*body NULL); -ENOMEM.  c may be NULL.
 */
int catalog_find(struct catalog *c, const char *key, const char *etag,
		 char **body, size_t *len);

/*
 * catalog_each: call fn for every entry of c whose key starts with
 * prefix, with the entry's MD5 as an ETag and its body (not a copy,
 * len bytes, valid while c lives), in no particular order.  Stops at
 * and returns fn's first non-zero return; 0 for NULL.  For a mount that
 * trusts the catalog before any LIST (see repo_rebuild_trusted).
 */
int catalog_each(struct catalog *c, const char *prefix,
		 int (*fn)(void *arg, const char *key, const char *etag,
			   const char *body, size_t len),
		 void *arg);

/* Entries of c that no catalog_find() returned yet; 0 for NULL. */
size_t catalog_unused(const struct catalog *c);

/* catalog_free(NULL) does nothing. */
void catalog_free(struct catalog *c);

#endif
