/* SPDX-License-Identifier: MIT */
/*
 * Directory listings (the FUSE glue, glue.h): a listing is built at
 * opendir, from the type's table and its dynamic entries, and served by
 * readdir and readdirplus from that snapshot.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "fs.h"
#include "fuse_ops.h"
#include "glue.h"
#include "node.h"

static int dir_add(void *ctx, const char *name, const struct node_type *t)
{
	struct dir_list *dl = ctx;

	if (dl->n == dl->cap) {
		size_t cap = dl->cap ? dl->cap * 2 : 32;
		char **nn = realloc(dl->names, cap * sizeof(*nn));
		const struct node_type **nt;

		if (!nn) {
			dl->err = -ENOMEM;
			return 1;
		}
		dl->names = nn;
		nt = realloc(dl->types, cap * sizeof(*nt));
		if (!nt) {
			dl->err = -ENOMEM;
			return 1;
		}
		dl->types = nt;
		dl->cap = cap;
	}
	dl->names[dl->n] = strdup(name);
	if (!dl->names[dl->n]) {
		dl->err = -ENOMEM;
		return 1;
	}
	dl->types[dl->n++] = t;
	return 0;
}

void dir_link(struct fs *fs, struct dir_list *dl, bool add)
{
	pthread_mutex_lock(&fs->files_lock);
	if (add) {
		dl->prev = NULL;
		dl->next = fs->dirs;
		if (fs->dirs)
			fs->dirs->prev = dl;
		fs->dirs = dl;
	} else {
		if (dl->prev)
			dl->prev->next = dl->next;
		else if (fs->dirs == dl)
			fs->dirs = dl->next;
		if (dl->next)
			dl->next->prev = dl->prev;
		dl->prev = dl->next = NULL;
	}
	pthread_mutex_unlock(&fs->files_lock);
}

void dir_list_free(struct dir_list *dl)
{
	if (!dl)
		return;
	for (size_t i = 0; i < dl->n; i++)
		free(dl->names[i]);
	free(dl->names);
	free(dl->types);
	if (dl->dir)
		node_put(dl->dir);
	free(dl);
}

void fs_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct node *n = node_get_ino(req_fs(req), ino);
	struct dir_list *dl;
	int rc = 0;

	if (!n) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (!node_is_dir(n->type)) {
		node_put(n);
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	dl = calloc(1, sizeof(*dl));
	if (!dl) {
		node_put(n);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	dl->dir = n;
	dir_add(dl, ".", n->type);
	dir_add(dl, "..", n->type);
	for (const struct node_type *t = n->type->children; t && t->name; t++)
		dir_add(dl, t->name, t);
	if (n->type->list)
		rc = n->type->list(n, dir_add, dl);
	if (rc == 0)
		rc = dl->err;
	if (rc < 0) {
		dir_list_free(dl);
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uintptr_t)dl;
	fi->cache_readdir = 0;
	dir_link(req_fs(req), dl, true);
	if (fuse_reply_open(req, fi) == -ENOENT) {
		dir_link(req_fs(req), dl, false);
		dir_list_free(dl);
	}
}

static void do_readdir(fuse_req_t req, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct dir_list *dl = (struct dir_list *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	size_t used = 0;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (size_t i = (size_t)off; i < dl->n; i++) {
		const char *name = dl->names[i];
		size_t len;

		if (plus) {
			struct fuse_entry_param e = { 0 };
			bool dot = strcmp(name, ".") == 0 ||
				   strcmp(name, "..") == 0;

			if (dot) {
				e.attr.st_mode = S_IFDIR;
				e.attr.st_ino = dl->dir->ino;
			} else if (do_lookup(dl->dir, name, &e) < 0) {
				continue; /* vanished since opendir */
			}
			len = fuse_add_direntry_plus(req, buf + used,
						     size - used, name, &e,
						     (off_t)i + 1);
			if (len > size - used) {
				if (!dot)
					node_forget(req_fs(req), e.ino, 1);
				break;
			}
		} else {
			struct stat st = { 0 };
			size_t h = 5381;

			/*
			 * readdir's inode numbers are only hints, but glibc
			 * skips entries whose d_ino is 0: give a stable,
			 * non-zero one (the real one comes with lookup).
			 */
			for (const char *c = name; *c; c++)
				h = h * 33 + (unsigned char)*c;
			st.st_ino = (ino_t)(h | 1);
			if (strcmp(name, ".") == 0)
				st.st_ino = dl->dir->ino;
			st.st_mode = dl->types[i]->mode;
			len = fuse_add_direntry(req, buf + used, size - used,
						name, &st, (off_t)i + 1);
			if (len > size - used)
				break;
		}
		used += len;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)ino;
	do_readdir(req, size, off, fi, false);
}

void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	do_readdir(req, size, off, fi, true);
}

void fs_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	(void)ino;
	dir_link(req_fs(req), (struct dir_list *)(uintptr_t)fi->fh, false);
	dir_list_free((struct dir_list *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}
