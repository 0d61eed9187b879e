/* SPDX-License-Identifier: MIT */
/*
 * The FUSE glue: libfuse's low-level calls arrive here, on any thread of
 * the multi-threaded loop, and are dispatched through the node's type
 * (node.h).  This is the only file that calls fuse_reply_* and the only
 * place where the sign of an errno flips.
 *
 * What the glue does for every type: lookup and readdir from the tables,
 * getattr with the caching the type's flags ask for, attribute files
 * (show at open, writes collected in a bounded buffer, store on the first
 * flush that carries new bytes), permission bits from the tables (the
 * kernel checks them: default_permissions).
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

static void file_free(struct fs_file *f);
static void file_put(struct fs_file *f);
static struct fs_file *file_get(struct fuse_file_info *fi);
static void dir_list_free(struct dir_list *dl);

static struct fs *req_fs(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void req_ctx(fuse_req_t req, struct fs_ctx *ctx)
{
	const struct fuse_ctx *fc = fuse_req_ctx(req);

	ctx->uid = fc->uid;
	ctx->gid = fc->gid;
	ctx->pid = fc->pid;
	ctx->umask = fc->umask;
	ctx->req = NULL;
}

bool fs_interrupted(const struct fs_ctx *ctx)
{
	/*
	 * libfuse marks a request when the kernel's INTERRUPT for it
	 * arrives, before or while we serve it; no callback is needed for
	 * an op that polls.
	 */
	return ctx && ctx->req && fuse_req_interrupted(ctx->req->req);
}

static struct fs_file *req_file(struct fuse_file_info *fi)
{
	return (struct fs_file *)(uintptr_t)fi->fh;
}

static bool is_attr_file(const struct node_type *t)
{
	return !node_is_dir(t) && !S_ISLNK(t->mode) && !t->open &&
	       (t->show || t->store);
}

int fs_reply_buf(struct fs_reply *r, const void *buf, size_t len)
{
	fuse_reply_buf(r->req, buf, len);
	return 0;
}

int fs_reply_fd(struct fs_reply *r, int fd, off_t off, size_t len)
{
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(len);

	bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	bv.buf[0].fd = fd;
	bv.buf[0].pos = off;
	fuse_reply_data(r->req, &bv, FUSE_BUF_SPLICE_MOVE);
	return 0;
}

int fs_reply_err(struct fs_reply *r, int err)
{
	fuse_reply_err(r->req, err < 0 ? -err : err);
	return 0;
}

/*
 * A read-only mount (-o ro, or an S3 prefix another mount writes)
 * refuses every change with EROFS; predict still scores.
 */
static bool refuse_change(fuse_req_t req)
{
	struct fs *fs = req_fs(req);

	/* an S3 writer unsure of its lease: see remote.c */
	return (fs->refuses_change &&
		fs->refuses_change(fs, fuse_req_ctx(req)->uid)) ||
	       __atomic_load_n(&fs->opts.read_only, __ATOMIC_RELAXED);
}

/*
 * Refuse a change in dir that its type does not support (the op is NULL)
 * with EPERM, saying why in the caller's .mlfs/errors: the type's own
 * reason, else what (printf-style).
 */
__attribute__((format(printf, 4, 5))) static int
refuse_in(struct node *dir, const char *name, const struct fs_ctx *ctx,
	  const char *what, ...)
{
	char why[300];
	va_list ap;

	if (dir->type->refuse)
		return fs_refused(dir->fs, ctx->uid, dir->path, name, -EPERM,
				  "%s", dir->type->refuse);
	va_start(ap, what);
	vsnprintf(why, sizeof(why), what, ap);
	va_end(ap);
	return fs_refused(dir->fs, ctx->uid, dir->path, name, -EPERM, "%s",
			  why);
}

/* A directory as messages name it: its path, "/" for the root. */
static const char *dir_name(const struct node *dir)
{
	return dir->path[0] ? dir->path : "/";
}

/* Fill st for n; 0 or -errno. */
static int node_stat(struct node *n, struct stat *st)
{
	const struct node_type *t = n->type;
	struct fs *fs = n->fs;
	int rc = 0;

	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino;
	st->st_mode = t->mode;
	st->st_nlink = node_is_dir(t) ? 2 : 1;
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_blksize = 4096;
	st->st_atim.tv_sec = fs->mounted;
	st->st_mtim.tv_sec = fs->mounted;
	st->st_ctim.tv_sec = fs->mounted;
	if (S_ISLNK(t->mode) && t->readlink && !t->getattr) {
		char *target = NULL;

		rc = t->readlink(n, &target);
		if (rc == 0)
			st->st_size = (off_t)strlen(target);
		free(target);
	}
	/* Generated files report the size of what a read returns. */
	if (is_attr_file(t) && t->show) {
		struct strbuf sb = { 0 };

		rc = t->show(n, &sb);
		if (rc == 0)
			rc = sb.err;
		st->st_size = (off_t)sb.len;
		sb_free(&sb);
	}
	if (rc == 0 && t->getattr)
		rc = t->getattr(n, st);
	st->st_blocks = (st->st_size + 511) / 512;
	return rc;
}

static double attr_timeout(const struct node_type *t)
{
	if (t->flags & NODE_F_IMMUTABLE)
		return TIMEOUT_IMMUTABLE;
	if (t->flags & (NODE_F_STREAM | NODE_F_VOLATILE) || is_attr_file(t))
		return 0.0;
	return TIMEOUT_NAMED;
}

/* Look name up in parent and fill e; takes a kernel lookup on success. */
static int do_lookup(struct node *parent, const char *name,
		     struct fuse_entry_param *e)
{
	const struct node_type *type;
	struct node *n;
	int rc;

	memset(e, 0, sizeof(*e));
	rc = node_resolve(parent, name, &type);
	if (rc < 0)
		return rc;
	rc = node_child(parent, name, type, &n);
	if (rc < 0)
		return rc;
	rc = node_stat(n, &e->attr);
	if (rc < 0) {
		node_forget(parent->fs, n->ino, 1);
		node_put(n);
		return rc;
	}
	e->ino = n->ino;
	e->generation = 1;
	e->attr_timeout = attr_timeout(type);
	e->entry_timeout = (type->flags & NODE_F_IMMUTABLE) ? TIMEOUT_IMMUTABLE
							    : TIMEOUT_NAMED;
	node_put(n);
	return 0;
}

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;

	/* O_TRUNC arrives with open, so a handle knows it started empty. */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* Versions change data.csv under the kernel: no writeback cache. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/*
	 * The kernel caches POSIX ACLs (here: their absence) per inode when
	 * the filesystem declares ACL support, so `ls -l` does not ask again
	 * for every entry.  Permissions stay the kernel's mode-bit checks.
	 */
	if (conn->capable & FUSE_CAP_POSIX_ACL)
		conn->want |= FUSE_CAP_POSIX_ACL;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	/* Splice immutable content straight from the store's files. */
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
	conn->max_write = 1 << 20;
	conn->max_readahead = 1 << 20;
	fs_log(fs, 6, "mounted %s on %s", fs->opts.store, fs->opts.mountpoint);
}

static void fs_destroy(void *userdata)
{
	struct fs *fs = userdata;

	fs_log(fs, 6, "unmounting %s", fs->opts.mountpoint);
	/* Handles whose RELEASE the kernel never sent: nothing is committed
	 * at release, so this only frees them (and their staging copies). */
	pthread_mutex_lock(&fs->files_lock);
	while (fs->files) {
		struct fs_file *f = fs->files;

		fs->files = f->next;
		file_put(f);
	}
	while (fs->dirs) {
		struct dir_list *dl = fs->dirs;

		fs->dirs = dl->next;
		dir_list_free(dl);
	}
	pthread_mutex_unlock(&fs->files_lock);
}

static void fs_lookup(fuse_req_t req, fuse_ino_t pino, const char *name)
{
	struct fs *fs = req_fs(req);
	struct fuse_entry_param e;
	struct node *parent;
	int rc;

	atomic_fetch_add(&fs->n_lookup, 1);
	parent = node_get_ino(fs, pino);
	if (!parent) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	rc = do_lookup(parent, name, &e);
	node_put(parent);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_entry(req, &e);
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	node_forget(req_fs(req), ino, nlookup);
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		node_forget(req_fs(req), forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

/* The thread group (process) of a thread id, from /proc; tid if unknown. */
static pid_t tgid_of(pid_t tid)
{
	char path[64], line[128];
	pid_t tgid = tid;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	fp = fopen(path, "re");
	if (!fp)
		return tid;
	while (fgets(line, sizeof(line), fp))
		if (sscanf(line, "Tgid: %d", &tgid) == 1)
			break;
	fclose(fp);
	return tgid;
}

/*
 * A write handle on n held by the process of thread tid, with a
 * reference, or NULL.  fstat sends GETATTR without its handle: the
 * answer must still be what that handle holds, as a local file's would.
 */
static struct fs_file *own_write_handle(struct fs *fs, struct node *n,
					pid_t tid)
{
	struct fs_file *f, *found = NULL;
	bool any = false;
	pid_t tgid;

	pthread_mutex_lock(&fs->files_lock);
	for (f = fs->files; f && !any; f = f->next)
		any = f->node == n && (f->flags & O_ACCMODE) != O_RDONLY;
	pthread_mutex_unlock(&fs->files_lock);
	if (!any)
		return NULL; /* the usual case: no /proc read */
	tgid = tgid_of(tid);
	pthread_mutex_lock(&fs->files_lock);
	for (f = fs->files; f && !found; f = f->next) {
		if (f->node == n && f->tgid == tgid &&
		    (f->flags & O_ACCMODE) != O_RDONLY) {
			atomic_fetch_add(&f->refs, 1);
			found = f;
		}
	}
	pthread_mutex_unlock(&fs->files_lock);
	return found;
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct node *n = node_get_ino(req_fs(req), ino);
	struct stat st;
	int rc;

	if (!n) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	rc = node_stat(n, &st);
	if (rc == 0 && n->type->fgetattr) {
		struct fs_file *f = fi ? file_get(fi)
				       : own_write_handle(req_fs(req), n,
							  fuse_req_ctx(req)->pid);

		if (f) {
			if (f->node == n)
				rc = n->type->fgetattr(f, &st);
			file_put(f);
		}
	}
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, attr_timeout(n->type));
	node_put(n);
}

static int attr_truncate(struct fs_file *f, off_t size)
{
	if ((size_t)size > ATTR_MAX_WRITE)
		return -EFBIG;
	if ((size_t)size > f->wcap) {
		char *nb = realloc(f->wbuf, (size_t)size);

		if (!nb)
			return -ENOMEM;
		f->wbuf = nb;
		f->wcap = (size_t)size;
	}
	if ((size_t)size > f->wlen)
		memset(f->wbuf + f->wlen, 0, (size_t)size - f->wlen);
	f->wlen = (size_t)size;
	if (f->wdone > f->wlen)
		f->wdone = f->wlen;
	f->gen++;
	return 0;
}

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	struct node *n = node_get_ino(req_fs(req), ino);
	struct fs_ctx ctx;
	struct stat st;
	int rc = 0;

	if (!n) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	req_ctx(req, &ctx);
	/* touch too: a read-only mount changes no time either */
	if (refuse_change(req) && !(n->type->flags & NODE_F_SCRATCH) &&
	    (to_set & (FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MODE |
		       FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID |
		       FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
		       FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW))) {
		node_put(n);
		fuse_reply_err(req, EROFS);
		return;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		struct fs_file *f = fi ? req_file(fi) : NULL;

		if (!f)
			rc = fs_refused(n->fs, ctx.uid, n->path, NULL, -EPERM,
					"truncate by path is not supported: "
					"open it for writing");
		else if (n->type->truncate)
			rc = n->type->truncate(f, attr->st_size);
		else if (is_attr_file(n->type) && n->type->store)
			rc = attr_truncate(f, attr->st_size);
		else
			rc = fs_refused(n->fs, ctx.uid, n->path, NULL, -EPERM,
					"its content is not written here");
	}
	if (rc == 0 && (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID |
				  FUSE_SET_ATTR_GID))) {
		struct stat cur;

		/* cp -p, shutil.copy, rsync: setting the mode a file has
		 * already is fine everywhere */
		if (!n->type->chmod && to_set == FUSE_SET_ATTR_MODE &&
		    node_stat(n, &cur) == 0 &&
		    (cur.st_mode & 07777) == (attr->st_mode & 07777))
			rc = 0;
		else if (!n->type->chmod)
			rc = fs_refused(n->fs, ctx.uid, n->path, NULL, -EPERM,
					"its mode is kept by the filesystem");
		else if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
			rc = fs_refused(n->fs, ctx.uid, n->path, NULL, -EPERM,
					"owners cannot be changed"); /* yet */
		else
			rc = n->type->chmod(n, attr->st_mode, &ctx);
	}
	/* Times: accepted and ignored (touch, cp -p); content has its own. */
	if (rc == 0)
		rc = node_stat(n, &st);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, attr_timeout(n->type));
	node_put(n);
}

static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct node *n = node_get_ino(req_fs(req), ino);
	char *target = NULL;
	int rc;

	if (!n) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	rc = n->type->readlink ? n->type->readlink(n, &target) : -EINVAL;
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_readlink(req, target);
	free(target);
	node_put(n);
}

/* Reply with the entry of name in dir after a make or symlink. */
static void reply_new_entry(fuse_req_t req, struct node *dir,
			    const char *name)
{
	struct fuse_entry_param e;
	int rc = do_lookup(dir, name, &e);

	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_entry(req, &e);
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t pino, const char *name,
		     mode_t mode)
{
	struct node *dir = node_get_ino(req_fs(req), pino);
	const struct node_type *t;
	struct fs_ctx ctx;
	int rc;

	if (refuse_change(req)) {
		if (dir)
			node_put(dir);
		fuse_reply_err(req, EROFS);
		return;
	}
	if (!dir) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	req_ctx(req, &ctx);
	if (node_resolve(dir, name, &t) == 0)
		rc = -EEXIST;
	else if (!dir->type->make)
		rc = refuse_in(dir, name, &ctx, "%s takes no new directories",
			       dir_name(dir));
	else
		rc = dir->type->make(dir, name, mode & ~ctx.umask, &ctx);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		reply_new_entry(req, dir, name);
	node_put(dir);
}

static void fs_rmdir(fuse_req_t req, fuse_ino_t pino, const char *name)
{
	struct node *dir = node_get_ino(req_fs(req), pino);
	const struct node_type *t;
	struct fs_ctx ctx;
	int rc;

	if (refuse_change(req)) {
		if (dir)
			node_put(dir);
		fuse_reply_err(req, EROFS);
		return;
	}
	if (!dir) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	req_ctx(req, &ctx);
	rc = node_resolve(dir, name, &t);
	if (rc == 0 && !node_is_dir(t))
		rc = -ENOTDIR;
	else if (rc == 0 && !dir->type->drop)
		rc = refuse_in(dir, name, &ctx, "kept by the filesystem");
	else if (rc == 0)
		rc = dir->type->drop(dir, name, &ctx);
	fuse_reply_err(req, rc < 0 ? -rc : 0);
	node_put(dir);
}

static void fs_unlink(fuse_req_t req, fuse_ino_t pino, const char *name)
{
	struct node *dir = node_get_ino(req_fs(req), pino);
	const struct node_type *t;
	struct fs_ctx ctx;
	int rc;

	if (refuse_change(req)) {
		if (dir)
			node_put(dir);
		fuse_reply_err(req, EROFS);
		return;
	}
	if (!dir) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	req_ctx(req, &ctx);
	rc = node_resolve(dir, name, &t);
	if (rc == 0 && node_is_dir(t))
		rc = -EISDIR;
	/* Attribute files are part of their object: rmdir the object. */
	else if (rc == 0 && (!S_ISLNK(t->mode) || !dir->type->unlink))
		rc = refuse_in(dir, name, &ctx,
			       "kept by the filesystem: it is part of %s",
			       dir_name(dir));
	else if (rc == 0)
		rc = dir->type->unlink(dir, name, &ctx);
	fuse_reply_err(req, rc < 0 ? -rc : 0);
	node_put(dir);
}

static void fs_symlink(fuse_req_t req, const char *target, fuse_ino_t pino,
		       const char *name)
{
	struct node *dir = node_get_ino(req_fs(req), pino);
	const struct node_type *t;
	struct fs_ctx ctx;
	int rc;

	if (refuse_change(req)) {
		if (dir)
			node_put(dir);
		fuse_reply_err(req, EROFS);
		return;
	}
	if (!dir) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	req_ctx(req, &ctx);
	if (node_resolve(dir, name, &t) == 0)
		rc = -EEXIST;
	else if (!dir->type->symlink)
		rc = refuse_in(dir, name, &ctx, "%s takes no links",
			       dir_name(dir));
	else
		rc = dir->type->symlink(dir, name, target, &ctx);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		reply_new_entry(req, dir, name);
	node_put(dir);
}

static void fs_rename(fuse_req_t req, fuse_ino_t pino, const char *name,
		      fuse_ino_t npino, const char *newname, unsigned flags)
{
	struct node *dir = node_get_ino(req_fs(req), pino);
	struct fs_ctx ctx;
	int rc;

	if (refuse_change(req)) {
		if (dir)
			node_put(dir);
		fuse_reply_err(req, EROFS);
		return;
	}
	if (!dir) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	req_ctx(req, &ctx);
	if (npino != pino)
		rc = -EXDEV;
	else if (!dir->type->rename)
		rc = refuse_in(dir, name, &ctx,
			       "entries of %s cannot be renamed", dir_name(dir));
	else
		rc = dir->type->rename(dir, name, newname, flags, &ctx);
	if (rc == 0)
		node_move(dir, name, newname);
	fuse_reply_err(req, rc < 0 ? -rc : 0);
	node_put(dir);
}

static void file_link(struct fs *fs, struct fs_file *f)
{
	pthread_mutex_lock(&fs->files_lock);
	f->prev = NULL;
	f->next = fs->files;
	if (fs->files)
		fs->files->prev = f;
	fs->files = f;
	pthread_mutex_unlock(&fs->files_lock);
}

static void file_unlink(struct fs *fs, struct fs_file *f)
{
	pthread_mutex_lock(&fs->files_lock);
	if (f->prev)
		f->prev->next = f->next;
	else if (fs->files == f)
		fs->files = f->next;
	if (f->next)
		f->next->prev = f->prev;
	f->prev = f->next = NULL;
	pthread_mutex_unlock(&fs->files_lock);
}

/*
 * A reply can still be reading a handle's buffer (sanitizers check a
 * writev's memory after the call) when the kernel, already answered,
 * sends RELEASE: ops hold a reference for their whole run, and the last
 * one releases.
 */
static struct fs_file *file_get(struct fuse_file_info *fi)
{
	struct fs_file *f = req_file(fi);

	atomic_fetch_add(&f->refs, 1);
	return f;
}

static void file_put(struct fs_file *f)
{
	if (atomic_fetch_sub(&f->refs, 1) != 1)
		return;
	if (f->node && f->node->type->release)
		f->node->type->release(f);
	file_free(f);
}

/*
 * Open handles per uid: one user cannot take the descriptors and memory
 * the others need.  Root is not counted.  A short list: one entry per uid
 * holding handles now.
 */
struct uid_count {
	struct uid_count *next;
	uid_t uid;
	unsigned n;
};

/* Count a handle of uid; -EMFILE past the bound.  Sets f->charged. */
static int handles_charge(struct fs *fs, struct fs_file *f)
{
	struct uid_count *c;
	int rc = 0;

	if (f->uid == 0 || !fs->opts.handles_per_uid)
		return 0;
	pthread_mutex_lock(&fs->files_lock);
	for (c = fs->handles; c && c->uid != f->uid; c = c->next)
		;
	if (!c) {
		c = calloc(1, sizeof(*c));
		if (c) {
			c->uid = f->uid;
			c->next = fs->handles;
			fs->handles = c;
		}
	}
	if (!c)
		rc = -ENOMEM;
	else if (c->n >= fs->opts.handles_per_uid)
		rc = -EMFILE;
	else
		c->n++, f->charged = fs;
	pthread_mutex_unlock(&fs->files_lock);
	return rc;
}

static void handles_release(struct fs_file *f)
{
	struct fs *fs = f->charged;
	struct uid_count **pp, *c;

	if (!fs)
		return;
	pthread_mutex_lock(&fs->files_lock);
	for (pp = &fs->handles; (c = *pp) && c->uid != f->uid; pp = &c->next)
		;
	if (c && --c->n == 0) {
		*pp = c->next;
		free(c);
	}
	pthread_mutex_unlock(&fs->files_lock);
	f->charged = NULL;
}

static void file_free(struct fs_file *f)
{
	if (!f)
		return;
	handles_release(f);
	free(f->snap);
	free(f->wbuf);
	if (f->node)
		node_put(f->node);
	free(f);
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct node *n = node_get_ino(req_fs(req), ino);
	const struct node_type *t;
	struct fs_file *f;
	struct fs_ctx ctx;
	int acc = fi->flags & O_ACCMODE;
	int rc = 0;

	if (!n) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	t = n->type;
	if (acc != O_RDONLY && refuse_change(req) &&
	    !(t->flags & NODE_F_SCRATCH)) {
		node_put(n);
		fuse_reply_err(req, EROFS);
		return;
	}
	req_ctx(req, &ctx);
	f = calloc(1, sizeof(*f));
	if (!f) {
		node_put(n);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	f->refs = 1;
	f->node = n; /* the reference from node_get_ino */
	f->flags = fi->flags;
	f->uid = ctx.uid;
	f->gid = ctx.gid;
	f->pid = ctx.pid;
	/* only write handles are looked up by process (own_write_handle) */
	f->tgid = acc != O_RDONLY && t->fgetattr ? tgid_of(ctx.pid) : ctx.pid;
	rc = handles_charge(req_fs(req), f);
	if (rc < 0) {
		file_free(f);
		fuse_reply_err(req, -rc);
		return;
	}
	if (t->open) {
		rc = t->open(f, &ctx);
	} else if (is_attr_file(t)) {
		if (acc != O_WRONLY && t->show) {
			struct strbuf sb = { 0 };

			rc = t->show(n, &sb);
			if (rc == 0)
				rc = sb.err;
			f->snap = sb.buf;
			f->snap_len = sb.len;
			if (rc < 0)
				sb_free(&sb), f->snap = NULL;
		}
		if (acc != O_RDONLY && !t->store)
			rc = -EACCES;
		/* Generated content: never trust the page cache or i_size. */
		f->direct_io = true;
	} else {
		rc = -EACCES;
	}
	if (rc < 0) {
		file_free(f);
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uintptr_t)f;
	fi->direct_io = f->direct_io;
	fi->keep_cache = f->keep_cache;
	file_link(req_fs(req), f);
	if (fuse_reply_open(req, fi) == -ENOENT) {
		/* interrupted: the kernel will not release it */
		file_unlink(req_fs(req), f);
		if (t->release)
			t->release(f);
		file_free(f);
	}
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs_file *f = file_get(fi);
	struct fs *fs = req_fs(req);
	struct fs_reply r = { req };
	int rc;

	(void)ino;
	atomic_fetch_add(&fs->n_read, 1);
	if (f->node->type->read) {
		rc = f->node->type->read(f, size, off, &r);
		if (rc < 0)
			fuse_reply_err(req, -rc);
		file_put(f);
		return;
	}
	if (!f->snap || (size_t)off >= f->snap_len) {
		fuse_reply_buf(req, NULL, 0);
		file_put(f);
		return;
	}
	if (size > f->snap_len - (size_t)off)
		size = f->snap_len - (size_t)off;
	atomic_fetch_add(&fs->bytes_read, size);
	fuse_reply_buf(req, f->snap + off, size);
	file_put(f);
}

/*
 * Judge an attribute file's text as written so far (node_type.check).  A
 * refusal reports the problem, fails this write and leaves the handle
 * with nothing to store at close.  Returns n or -errno.
 */
static ssize_t attr_check(struct fs_file *f, ssize_t n)
{
	struct fs_ctx ctx = { f->uid, f->gid, f->pid, 0, NULL };
	struct problem pb = { 0 };
	char *text = malloc(f->wlen + 1);
	int rc;

	if (!text)
		return -ENOMEM;
	memcpy(text, f->wbuf, f->wlen);
	text[f->wlen] = '\0';
	snprintf(pb.path, sizeof(pb.path), "%s", f->node->path);
	rc = f->node->type->check(f->node, text, f->wlen, &ctx, &pb);
	free(text);
	if (rc == 0)
		return n;
	if (pb.msg[0])
		fs_problem(f->node->fs, f->uid, &pb);
	f->wlen = 0;
	f->committed = f->gen; /* reported: close adds nothing */
	return rc;
}

/*
 * A command file (NODE_F_COMMAND): run each line that this write
 * completes, in order, as the writer, and fail the write with the first
 * refusal: `echo sync > .mlfs/cache` then exits with the sync's result,
 * which a close error would not give it.  A last line without a newline
 * runs at flush.  Returns n or -errno.
 */
static ssize_t attr_command(struct fs_file *f, fuse_req_t req, ssize_t n)
{
	struct fs_reply r = { req };
	struct problem pb = { 0 };
	struct fs_ctx ctx;
	const char *nl;
	int rc = 0;

	req_ctx(req, &ctx);
	ctx.req = &r; /* sync waits: it answers an interrupt */
	snprintf(pb.path, sizeof(pb.path), "%s", f->node->path);
	while (rc == 0 && f->wdone < f->wlen &&
	       (nl = memchr(f->wbuf + f->wdone, '\n', f->wlen - f->wdone))) {
		size_t len = (size_t)(nl - (f->wbuf + f->wdone));
		char *line = strndup(f->wbuf + f->wdone, len);

		if (!line)
			return -ENOMEM;
		f->wdone += len + 1;
		if (len)
			rc = f->node->type->store(f->node, line, len, &ctx, &pb);
		free(line);
	}
	if (f->wdone == f->wlen)
		f->committed = f->gen; /* every line ran: close adds nothing */
	if (rc < 0 && pb.msg[0])
		fs_problem(f->node->fs, ctx.uid, &pb);
	return rc < 0 ? rc : n;
}

static void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fs_file *f = file_get(fi);
	struct fs *fs = req_fs(req);
	ssize_t n;

	(void)ino;
	atomic_fetch_add(&fs->n_write, 1);
	if (f->node->type->write) {
		n = f->node->type->write(f, buf, size, off);
	} else if (f->node->type->store) {
		if (f->flags & O_APPEND)
			off = (off_t)f->wlen;
		if ((size_t)off + size > ATTR_MAX_WRITE) {
			n = -EFBIG;
		} else if ((size_t)off + size > f->wlen &&
			   (n = attr_truncate(f, off + (off_t)size)) < 0) {
			/* n set */
		} else {
			memcpy(f->wbuf + off, buf, size);
			f->gen++;
			n = (ssize_t)size;
			if (f->node->type->check)
				n = attr_check(f, n);
			if (n > 0 && (f->node->type->flags & NODE_F_COMMAND))
				n = attr_command(f, req, n);
		}
	} else {
		n = -EBADF;
	}
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
	if (n > 0)
		atomic_fetch_add(&fs->bytes_written, (uint64_t)n);
	file_put(f);
}

static void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_file *f = file_get(fi);
	struct fs *fs = req_fs(req);
	const struct node_type *t = f->node->type;
	struct fs_reply r = { req };
	struct problem pb = { 0 };
	struct fs_ctx ctx;
	int rc = 0;

	(void)ino;
	req_ctx(req, &ctx);
	ctx.req = &r; /* a store may wait (sync): it answers an interrupt */
	snprintf(pb.path, sizeof(pb.path), "%s", f->node->path);
	if (t->flush) {
		rc = t->flush(f, &ctx, &pb);
	} else if (t->store && f->gen != f->committed) {
		/* Only a flush that carries new bytes commits. */
		size_t len = f->wlen - f->wdone; /* what no write ran */
		char *text = malloc(len + 1);

		if (!text) {
			rc = -ENOMEM;
		} else {
			if (len)
				memcpy(text, f->wbuf + f->wdone, len);
			text[len] = '\0';
			rc = t->store(f->node, text, len, &ctx, &pb);
			free(text);
		}
		if (rc == 0)
			f->committed = f->gen;
	}
	if (rc < 0 && pb.msg[0])
		fs_problem(fs, ctx.uid, &pb);
	fuse_reply_err(req, rc < 0 ? -rc : 0);
	file_put(f);
}

static void fs_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs_file *f = req_file(fi);

	(void)ino;
	file_unlink(req_fs(req), f);
	file_put(f);
	fuse_reply_err(req, 0);
}

static void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	struct fs_file *f = file_get(fi);
	struct fs_reply r = { req };
	struct fs_ctx ctx;
	int rc = 0;

	(void)ino;
	(void)datasync;
	req_ctx(req, &ctx);
	ctx.req = &r;
	if (f->node->type->fsync)
		rc = f->node->type->fsync(f, &ctx);
	fuse_reply_err(req, rc < 0 ? -rc : 0);
	file_put(f);
}


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

static void dir_link(struct fs *fs, struct dir_list *dl, bool add)
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

static void dir_list_free(struct dir_list *dl)
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

static void fs_opendir(fuse_req_t req, fuse_ino_t ino,
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

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)ino;
	do_readdir(req, size, off, fi, false);
}

static void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	do_readdir(req, size, off, fi, true);
}

static void fs_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	(void)ino;
	dir_link(req_fs(req), (struct dir_list *)(uintptr_t)fi->fh, false);
	dir_list_free((struct dir_list *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = req_fs(req);
	struct statvfs sv;
	int rc = -ENOSYS;

	(void)ino;
	memset(&sv, 0, sizeof(sv));
	if (fs->root->type->statfs)
		rc = fs->root->type->statfs(fs->root, &sv);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_statfs(req, &sv);
}

static void fs_create(fuse_req_t req, fuse_ino_t pino, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct node *dir = node_get_ino(req_fs(req), pino);
	struct fuse_entry_param e;
	const struct node_type *t;
	struct fs_file *f = NULL;
	struct fs_ctx ctx;
	int rc;

	if (refuse_change(req)) {
		if (dir)
			node_put(dir);
		fuse_reply_err(req, EROFS);
		return;
	}
	(void)mode;
	if (!dir) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	req_ctx(req, &ctx);
	/* Files are attributes of objects; only action dirs make new ones. */
	if (!dir->type->create) {
		rc = -EACCES;
		goto out_put;
	}
	if (node_resolve(dir, name, &t) == 0) {
		rc = -EEXIST;
		goto out_put;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		rc = -ENOMEM;
		goto out_put;
	}
	f->refs = 1;
	f->flags = fi->flags;
	f->uid = ctx.uid;
	f->gid = ctx.gid;
	f->pid = ctx.pid;
	rc = handles_charge(req_fs(req), f);
	if (rc < 0)
		goto out_free;
	rc = dir->type->create(dir, name, f, &ctx);
	if (rc < 0)
		goto out_free;
	rc = do_lookup(dir, name, &e);
	if (rc < 0)
		goto out_release;
	f->node = node_get_ino(req_fs(req), e.ino);
	if (!f->node) {
		rc = -ESTALE;
		goto out_release;
	}
	fi->fh = (uintptr_t)f;
	fi->direct_io = f->direct_io;
	file_link(req_fs(req), f);
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		file_unlink(req_fs(req), f);
		if (f->node->type->release)
			f->node->type->release(f);
		file_free(f);
	}
	node_put(dir);
	return;
out_release:
	/* the created file's release must cope with f->node == NULL */
	if (node_resolve(dir, name, &t) == 0 && t->release)
		t->release(f);
out_free:
	handles_release(f);
	free(f);
out_put:
	node_put(dir);
	fuse_reply_err(req, -rc);
}

/* --- parked requests --- */

/*
 * Parked requests live here, not with their owner: the interrupt callback
 * finds an entry by its id, so neither side ever holds a pointer the
 * other may have freed.  In fs->parked, under fs->parked_lock.
 */
struct parked {
	struct parked *next;
	uint64_t id;
	const void *key;
	size_t size;
	fuse_req_t req;
};

void fs_glue_init(struct fs *fs)
{
	pthread_mutex_init(&fs->files_lock, NULL);
	pthread_mutex_init(&fs->parked_lock, NULL);
}

void fs_glue_free(struct fs *fs)
{
	struct parked *p;

	/* the session is gone: nobody is left to answer */
	while ((p = fs->parked)) {
		fs->parked = p->next;
		free(p);
	}
	pthread_mutex_destroy(&fs->parked_lock);
	pthread_mutex_destroy(&fs->files_lock);
}

static void parked_interrupt(fuse_req_t req, void *data)
{
	struct fs *fs = req_fs(req);
	uint64_t id = (uint64_t)(uintptr_t)data;
	struct parked **pp, *p = NULL;

	pthread_mutex_lock(&fs->parked_lock);
	for (pp = &fs->parked; *pp; pp = &(*pp)->next) {
		if ((*pp)->id == id) {
			p = *pp;
			*pp = p->next;
			break;
		}
	}
	pthread_mutex_unlock(&fs->parked_lock);
	if (p) {
		fuse_reply_err(p->req, EINTR);
		free(p);
	}
}

int fs_park(struct fs_reply *r, const void *key, size_t size)
{
	struct fs *fs = req_fs(r->req);
	struct parked *p = malloc(sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->key = key;
	p->size = size;
	p->req = r->req;
	pthread_mutex_lock(&fs->parked_lock);
	p->id = ++fs->parked_next_id;
	p->next = fs->parked;
	fs->parked = p;
	pthread_mutex_unlock(&fs->parked_lock);
	/* May call parked_interrupt at once if already interrupted. */
	fuse_req_interrupt_func(r->req, parked_interrupt,
				(void *)(uintptr_t)p->id);
	return 0;
}

static void unpark(struct fs *fs, const void *key, bool all, const char *buf,
		   size_t len)
{
	struct parked **pp, *p, *done = NULL;

	pthread_mutex_lock(&fs->parked_lock);
	pp = &fs->parked;
	while ((p = *pp)) {
		if (all || p->key == key) {
			*pp = p->next;
			p->next = done;
			done = p;
		} else {
			pp = &p->next;
		}
	}
	pthread_mutex_unlock(&fs->parked_lock);
	/* Replies outside the lock: a reply can run the interrupt path. */
	while ((p = done)) {
		done = p->next;
		fuse_reply_buf(p->req, buf, len < p->size ? len : p->size);
		free(p);
	}
}

void fs_unpark(struct fs *fs, const void *key, const char *buf, size_t len)
{
	unpark(fs, key, false, buf, len);
}

void fs_unpark_all(struct fs *fs, const char *buf, size_t len)
{
	unpark(fs, NULL, true, buf, len);
}

/*
 * user.mlfs.state and user.mlfs.cached_bytes on every regular file: where
 * its content is (FSx's hsm_state).  A type whose content is stored
 * answers itself (node_type.xattr); generated content is "local", all
 * of it here.
 */
static int file_xattr(struct node *n, const char *name, char *out,
		      size_t outlen)
{
	struct stat st;

	if (!S_ISREG(n->type->mode))
		return -ENODATA;
	if (n->type->xattr)
		return n->type->xattr(n, name, out, outlen);
	if (strcmp(name, "user.mlfs.state") == 0)
		return snprintf(out, outlen, "local");
	if (strcmp(name, "user.mlfs.cached_bytes") == 0)
		return snprintf(out, outlen, "%lld",
				node_stat(n, &st) == 0 ? (long long)st.st_size
						       : 0LL);
	return -ENODATA;
}

static void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	struct node *n = node_get_ino(req_fs(req), ino);
	char val[64];
	int len;

	/* ENODATA, never ENOSYS: ENOSYS turns xattrs off mount-wide. */
	if (!n) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	len = strncmp(name, "user.mlfs.", 10) == 0
		      ? file_xattr(n, name, val, sizeof(val))
		      : -ENODATA;
	node_put(n);
	if (len < 0)
		fuse_reply_err(req, -len);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)len);
	else if ((size_t)len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, val, (size_t)len);
}

static void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	static const char names[] = "user.mlfs.state\0user.mlfs.cached_bytes";
	struct node *n = node_get_ino(req_fs(req), ino);
	size_t len = 0;

	if (n && S_ISREG(n->type->mode))
		len = sizeof(names);
	if (n)
		node_put(n);
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, names, len);
}

static void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	(void)ino;
	(void)name;
	(void)value;
	(void)size;
	(void)flags;
	fuse_reply_err(req, refuse_change(req) ? EROFS : ENOTSUP);
}

static void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino;
	(void)name;
	fuse_reply_err(req, refuse_change(req) ? EROFS : ENOTSUP);
}

/* No fifos, devices or sockets here; a read-only mount says EROFS. */
static void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	(void)parent;
	(void)name;
	(void)mode;
	(void)rdev;
	fuse_reply_err(req, refuse_change(req) ? EROFS : EPERM);
}

/* Objects are directories and versions are made by writes: no links. */
static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	(void)ino;
	(void)newparent;
	(void)newname;
	fuse_reply_err(req, refuse_change(req) ? EROFS : EPERM);
}

const struct fuse_lowlevel_ops fs_fuse_ops = {
	.init = fs_init,
	.destroy = fs_destroy,
	.lookup = fs_lookup,
	.forget = fs_forget,
	.forget_multi = fs_forget_multi,
	.getattr = fs_getattr,
	.setattr = fs_setattr,
	.readlink = fs_readlink,
	.mkdir = fs_mkdir,
	.unlink = fs_unlink,
	.rmdir = fs_rmdir,
	.symlink = fs_symlink,
	.rename = fs_rename,
	.open = fs_open,
	.read = fs_read,
	.write = fs_write,
	.flush = fs_flush,
	.release = fs_release,
	.fsync = fs_fsync,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.readdirplus = fs_readdirplus,
	.releasedir = fs_releasedir,
	.statfs = fs_statfs,
	.create = fs_create,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.setxattr = fs_setxattr,
	.removexattr = fs_removexattr,
	.mknod = fs_mknod,
	.link = fs_link,
};
