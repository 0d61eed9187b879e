/* SPDX-License-Identifier: MIT */
/*
 * The FUSE glue: libfuse's low-level calls arrive here, on any thread of
 * the multi-threaded loop, and are dispatched through the node's type
 * (node.h).  The glue (fs/engine/: this file, files.c, dirs.c,
 * parked.c) is the only code that calls fuse_reply_* and the only place
 * where the sign of an errno flips.
 *
 * What the glue does for every type: lookup and readdir from the tables,
 * getattr with the caching the type's flags ask for, attribute files
 * (show at open, writes collected in a bounded buffer, store on the first
 * flush that carries new bytes), permission bits from the tables (the
 * kernel checks them: default_permissions).
 *
 * This file: the request's context, lookups and attributes, the
 * namespace ops (mkdir, rmdir, unlink, symlink, rename), statfs, xattrs,
 * and the ops table; open handles are files.c's, listings dirs.c's,
 * blocking reads parked.c's.
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

unsigned fuse_read_max(void)
{
	long page = sysconf(_SC_PAGESIZE);

	return (1u << 20) - 4 * (unsigned)(page > 0 ? page : 4096);
}

struct fs *req_fs(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

void req_ctx(fuse_req_t req, struct fs_ctx *ctx)
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

struct fs_file *req_file(struct fuse_file_info *fi)
{
	return (struct fs_file *)(uintptr_t)fi->fh;
}

bool is_attr_file(const struct node_type *t)
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
bool refuse_change(fuse_req_t req)
{
	struct fs *fs = req_fs(req);

	/* an S3 writer unsure of its lease: see remote.c */
	return (fs->refuses_change &&
		fs->refuses_change(fs, fuse_req_ctx(req)->uid)) ||
	       __atomic_load_n(&fs->opts.read_only, __ATOMIC_RELAXED);
}

/*
 * The directory of a change (mkdir, rmdir, unlink, symlink, rename,
 * create), with a reference; NULL once the request is answered: EROFS on
 * a read-only mount, ESTALE for an inode the kernel no longer has.
 */
struct node *change_dir(fuse_req_t req, fuse_ino_t pino)
{
	struct node *dir = node_get_ino(req_fs(req), pino);

	if (refuse_change(req)) {
		if (dir)
			node_put(dir);
		fuse_reply_err(req, EROFS);
		return NULL;
	}
	if (!dir)
		fuse_reply_err(req, ESTALE);
	return dir;
}

/*
 * Refuse a change in dir that its type does not support (the op is NULL)
 * with EPERM, saying why in the caller's .mlfs/errors: the type's own
 * reason, else what (printf-style).
 */
__attribute__((format(printf, 4, 5))) int
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
const char *dir_name(const struct node *dir)
{
	return dir->path[0] ? dir->path : "/";
}

/* Fill st for n; 0 or -errno. */
int node_stat(struct node *n, struct stat *st)
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

double attr_timeout(const struct node_type *t)
{
	if (t->flags & (NODE_F_IMMUTABLE | NODE_F_LASTING))
		return TIMEOUT_IMMUTABLE;
	if (t->flags & (NODE_F_STREAM | NODE_F_VOLATILE) || is_attr_file(t))
		return 0.0;
	return TIMEOUT_NAMED;
}

/* Look name up in parent and fill e; takes a kernel lookup on success. */
int do_lookup(struct node *parent, const char *name,
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
	e->entry_timeout = type->flags & (NODE_F_IMMUTABLE | NODE_F_LASTING)
				   ? TIMEOUT_IMMUTABLE
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
	 * No POSIX ACLs: permissions are the kernel's mode-bit checks
	 * (default_permissions), and the ACL names answer EOPNOTSUPP, which
	 * ls takes as "none on this file system" (fs_getxattr).  With
	 * FUSE_CAP_POSIX_ACL the kernel would read the ACLs itself, but
	 * READDIRPLUS forgets an entry's cached ACLs, so `ls -l` sent two
	 * GETXATTRs per entry (measured: 20,068 requests for 10,000).
	 */
	conn->want &= ~FUSE_CAP_POSIX_ACL;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	/* Splice immutable content straight from the store's files. */
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
	conn->max_write = 1 << 20;
	conn->max_read = fuse_read_max(); /* as -o max_read says */
	conn->max_readahead = fuse_read_max();
	fs_log(fs, 6, "mounted %s on %s", fs->opts.store, fs->opts.mountpoint);
}

static void fs_destroy(void *userdata)
{
	struct fs *fs = userdata;
	struct fs_file *files;
	struct dir_list *dirs;

	fs_log(fs, 6, "unmounting %s", fs->opts.mountpoint);
	/*
	 * Handles whose RELEASE the kernel never sent (an unmount can drop
	 * one still queued): nothing is committed at release, so this only
	 * frees them and their staging copies.  The lists are taken whole
	 * and freed unlocked: freeing a user's handle takes files_lock to
	 * uncount it (handles_release).
	 */
	pthread_mutex_lock(&fs->files_lock);
	files = fs->files;
	dirs = fs->dirs;
	fs->files = NULL;
	fs->dirs = NULL;
	pthread_mutex_unlock(&fs->files_lock);
	while (files) {
		struct fs_file *f = files;

		files = f->next;
		f->prev = f->next = NULL;
		file_put(f);
	}
	while (dirs) {
		struct dir_list *dl = dirs;

		dirs = dl->next;
		dir_list_free(dl);
	}
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
pid_t tgid_of(pid_t tid)
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
struct fs_file *own_write_handle(struct fs *fs, struct node *n,
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

	atomic_fetch_add(&req_fs(req)->n_getattr, 1);
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

int attr_truncate(struct fs_file *f, off_t size)
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
void reply_new_entry(fuse_req_t req, struct node *dir,
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
	struct node *dir = change_dir(req, pino);
	const struct node_type *t;
	struct fs_ctx ctx;
	int rc;

	if (!dir)
		return; /* answered */
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
	struct node *dir = change_dir(req, pino);
	const struct node_type *t;
	struct fs_ctx ctx;
	int rc;

	if (!dir)
		return; /* answered */
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
	struct node *dir = change_dir(req, pino);
	const struct node_type *t;
	struct fs_ctx ctx;
	int rc;

	if (!dir)
		return; /* answered */
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
	struct node *dir = change_dir(req, pino);
	const struct node_type *t;
	struct fs_ctx ctx;
	int rc;

	if (!dir)
		return; /* answered */
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
	struct node *dir = change_dir(req, pino);
	struct fs_ctx ctx;
	int rc;

	if (!dir)
		return; /* answered */
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

	/*
	 * security.* (SELinux labels, capabilities) and the POSIX ACL names
	 * (system.posix_acl_*, no ACLs here: fs_init): EOPNOTSUPP, which ls
	 * takes as "none on this file system" and stops asking for each
	 * entry (ls -l of 10,000 entries sent a getxattr per entry and
	 * name).  Every other name: ENODATA, never ENOSYS, which would turn
	 * xattrs off mount-wide (user.mlfs.* are ours).
	 */
	if (strncmp(name, "security.", 9) == 0 ||
	    strncmp(name, "system.posix_acl_", 17) == 0) {
		if (n)
			node_put(n);
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
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
