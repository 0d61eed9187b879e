/* SPDX-License-Identifier: MIT */
/*
 * What datasets/ and models/ share: objects with immutable versions,
 * `latest` and user aliases (DESIGN.md: "versions look the same
 * everywhere").  The kind of object is the one its top directory's node
 * type names (node_type.kind); the object is the node's second path
 * component, the version directory the third.  These are
 * node ops and helpers for datasets.c and models.c; any FUSE worker.
 */
#ifndef MLFS_FS_OBJECTS_H
#define MLFS_FS_OBJECTS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "node.h"

struct repo_kind;

const struct repo_kind *obj_kind(struct node *n);
const char *obj_name(struct node *n);
/* The version a node is under (v<n>/...), or 0. */
unsigned obj_ver(struct node *n);

/* Owner, group, times (and mode for dir) from the object's record. */
int obj_attr(struct node *n, struct stat *st, bool dir);
/*
 * obj_field_show: a field of n's object's version ver (0: the latest)
 * as the mount shows it (repo_render_field); none (if not NULL) when the
 * object has no version yet or the version lacks the field.
 */
int obj_field_show(struct node *n, unsigned ver, const char *field,
		   const char *none, struct strbuf *out);
int obj_file_getattr(struct node *n, struct stat *st);
int obj_dir_getattr(struct node *n, struct stat *st);
int obj_version_getattr(struct node *n, struct stat *st);

/* latest -> v<n> and <alias> -> v<n> */
extern const struct node_type obj_latest_type;
extern const struct node_type obj_alias_type;

/*
 * An object directory's dynamic entries: latest, aliases and v<n>
 * directories of type version_type.
 */
int obj_lookup(struct node *dir, const char *name,
	       const struct node_type *version_type,
	       const struct node_type **type);
int obj_list(struct node *dir, const struct node_type *version_type,
	     node_fill_fn fill, void *ctx);
/* rmdir v<n>, ln -s, rm, rename (ln -sfn), chmod of the object. */
int obj_drop(struct node *dir, const char *name, const struct fs_ctx *ctx);
int obj_symlink(struct node *dir, const char *name, const char *target,
		const struct fs_ctx *ctx);
int obj_unlink(struct node *dir, const char *name, const struct fs_ctx *ctx);
int obj_rename(struct node *dir, const char *from, const char *to,
	       unsigned flags, const struct fs_ctx *ctx);
int obj_chmod(struct node *n, mode_t mode, const struct fs_ctx *ctx);

/* The top directory (datasets/, models/): objects of type obj_type. */
int obj_top_lookup(struct node *dir, const char *name,
		   const struct node_type *obj_type,
		   const struct node_type **type);
int obj_top_list(struct node *dir, const struct node_type *obj_type,
		 node_fill_fn fill, void *ctx);
int obj_top_make(struct node *dir, const char *name, mode_t mode,
		 const struct fs_ctx *ctx);
int obj_top_drop(struct node *dir, const char *name,
		 const struct fs_ctx *ctx);

/*
 * A blob opened for reading: a descriptor on the store's local file when
 * there is one (served by splice), else ranged reads from the store.
 */
struct ds_feed;

struct obj_blob {
	int fd;       /* or -1 */
	char key[96]; /* store key; empty: no content */
	uint64_t size;
	struct ds_feed *feed; /* a lazy version being imported, or NULL */
};

/* key may be NULL for an empty blob. */
int obj_blob_open(struct fs *fs, const char *key, uint64_t size,
		  struct obj_blob **out);
/* A blob read from a lazy import's feed as it lands (taken). */
int obj_blob_open_feed(struct ds_feed *feed, struct obj_blob **out);
/*
 * obj_blob_read: answer a read of handle f from b.  Content the store
 * holds shorter than b->size, or that does not match its hash, is -EIO,
 * with a line naming the key in .mlfs/errors (repo_blob_error).
 */
int obj_blob_read(struct fs_file *f, struct obj_blob *b, size_t size,
		  off_t off, struct fs_reply *r);
void obj_blob_close(struct obj_blob *b);
/*
 * obj_sync: wait until the bucket has key (NULL: everything queued for
 * export), for at most -o sync_timeout seconds.  0 at once on a local
 * store.  -EINTR as soon as the caller behind ctx is signalled,
 * -ETIMEDOUT at the limit (with a line about path in .mlfs/errors for
 * ctx's uid); the export stays queued either way.  Blocks the calling
 * FUSE worker while it waits.
 */
int obj_sync(struct fs *fs, const char *key, const char *path,
	     const struct fs_ctx *ctx);
/* obj_sync for the blob behind an open file of node n. */
int obj_blob_sync(struct node *n, struct obj_blob *b,
		  const struct fs_ctx *ctx);

/*
 * Files whose content is a stored blob (a dataset version's data.csv, a
 * model version's files): node_type.blob and node_type.xattr.
 */
int obj_file_blob(struct node *n, char *key, size_t len);
int obj_file_xattr(struct node *n, const char *name, char *out,
		   size_t outlen);

/*
 * A stored file that a version's manifest lists under "files" (any
 * kind): node_type ops.  Inside v<n>/ that version's, else the latest
 * version's, read with direct I/O since the latest changes under the
 * kernel's cached size; a version without the file reads as empty.
 * obj_vfile_info: its key, size and the version's time; -ENOENT (no
 * such version), -ENODATA (a version without that file).
 */
int obj_vfile_info(struct node *n, char *key, size_t klen, uint64_t *size,
		   time_t *mtime);
int obj_vfile_open(struct fs_file *f, const struct fs_ctx *ctx);
int obj_vfile_read(struct fs_file *f, size_t size, off_t off,
		   struct fs_reply *r);
int obj_vfile_fsync(struct fs_file *f, const struct fs_ctx *ctx);
void obj_vfile_release(struct fs_file *f);
int obj_vfile_getattr(struct node *n, struct stat *st);

/*
 * obj_path_blob: the store key of the content behind a mount-relative
 * path (datasets/<d>/data.csv, datasets/<d>/v<n>/data.csv,
 * models/<m>/v<n>/<file>).  -ENODATA for a path without stored content.
 */
int obj_path_blob(struct fs *fs, const char *path, char *key, size_t len);

/*
 * obj_path_import: import the lazy (s3:// source) version behind a
 * dataset's data.csv path now (ds_version_ready); 0 if it was not lazy.
 * -ENODATA for another path, else the import's errno with pb.
 */
int obj_path_import(struct fs *fs, const char *path, struct problem *pb);

#endif
