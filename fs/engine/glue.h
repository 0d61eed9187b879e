/* SPDX-License-Identifier: MIT */
/*
 * Inside the FUSE glue (fs/engine/: fuse.c the namespace and attribute
 * ops, files.c open handles, dirs.c listings, parked.c blocking reads):
 * what its files share.  Nothing outside the engine includes this.
 */
#ifndef MLFS_FS_GLUE_H
#define MLFS_FS_GLUE_H

#include <stdbool.h>
#include <sys/types.h>

#include <fuse_lowlevel.h>

#include "fs.h"
#include "node.h"

#define ATTR_MAX_WRITE ((size_t)1 << 20) /* attribute files: bytes */
#define TIMEOUT_NAMED 1.0     /* seconds: entries and attrs that we change */
#define TIMEOUT_IMMUTABLE 3600.0

struct fs_reply {
	fuse_req_t req;
};

/* A directory handle: the listing, built at opendir. */
struct dir_list {
	struct dir_list *prev, *next; /* under fs->files_lock */
	struct node *dir;
	char **names;
	const struct node_type **types;
	size_t n;
	size_t cap;
	int err;
};

struct fs *req_fs(fuse_req_t req);
void req_ctx(fuse_req_t req, struct fs_ctx *ctx);
struct fs_file *req_file(struct fuse_file_info *fi);
bool is_attr_file(const struct node_type *t);
bool refuse_change(fuse_req_t req);
struct node *change_dir(fuse_req_t req, fuse_ino_t pino);
__attribute__((format(printf, 4, 5))) int
refuse_in(struct node *dir, const char *name, const struct fs_ctx *ctx,
	  const char *what, ...);
const char *dir_name(const struct node *dir);
int node_stat(struct node *n, struct stat *st);
double attr_timeout(const struct node_type *t);
int do_lookup(struct node *parent, const char *name,
		     struct fuse_entry_param *e);
void reply_new_entry(fuse_req_t req, struct node *dir,
			    const char *name);
int attr_truncate(struct fs_file *f, off_t size);
struct fs_file *file_get(struct fuse_file_info *fi);
void file_put(struct fs_file *f);
void file_free(struct fs_file *f);
void file_link(struct fs *fs, struct fs_file *f);
void file_unlink(struct fs *fs, struct fs_file *f);
void dir_list_free(struct dir_list *dl);
void dir_link(struct fs *fs, struct dir_list *dl, bool add);
struct fs_file *own_write_handle(struct fs *fs, struct node *n,
					pid_t tid);
int handles_charge(struct fs *fs, struct fs_file *f);
void handles_release(struct fs_file *f);
pid_t tgid_of(pid_t tid);

/* The ops of open files (files.c) and listings (dirs.c). */
void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi);
void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi);
void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi);
void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi);
void fs_create(fuse_req_t req, fuse_ino_t pino, const char *name,
		      mode_t mode, struct fuse_file_info *fi);
void fs_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi);
void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi);
void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi);
void fs_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi);

#endif
