/* SPDX-License-Identifier: MIT */
/*
 * Open files (the FUSE glue, glue.h): handles, counted per uid, and the
 * read, write, flush, fsync and release of every type; attribute files'
 * bounded write buffers, their checks and commands; create.
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

void file_link(struct fs *fs, struct fs_file *f)
{
	pthread_mutex_lock(&fs->files_lock);
	f->prev = NULL;
	f->next = fs->files;
	if (fs->files)
		fs->files->prev = f;
	fs->files = f;
	pthread_mutex_unlock(&fs->files_lock);
}

void file_unlink(struct fs *fs, struct fs_file *f)
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
struct fs_file *file_get(struct fuse_file_info *fi)
{
	struct fs_file *f = req_file(fi);

	atomic_fetch_add(&f->refs, 1);
	return f;
}

void file_put(struct fs_file *f)
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
int handles_charge(struct fs *fs, struct fs_file *f)
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

void handles_release(struct fs_file *f)
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

void file_free(struct fs_file *f)
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

void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct node *n = node_get_ino(req_fs(req), ino);
	const struct node_type *t;
	struct fs_file *f;
	struct fs_ctx ctx;
	int acc = fi->flags & O_ACCMODE;
	int rc = 0;

	atomic_fetch_add(&req_fs(req)->n_open, 1);
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
	/*
	 * A handle that can change nothing has nothing to say at close:
	 * the kernel sends no FLUSH for it (FOPEN_NOFLUSH, Linux 5.15), one
	 * round trip less for every cat.  A type may say the same of a
	 * handle that writes (f->noflush).
	 */
	fi->noflush = f->noflush || (acc == O_RDONLY && !(fi->flags & O_TRUNC));
	file_link(req_fs(req), f);
	if (fuse_reply_open(req, fi) == -ENOENT) {
		/* interrupted: the kernel will not release it */
		file_unlink(req_fs(req), f);
		if (t->release)
			t->release(f);
		file_free(f);
	}
}

void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
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

void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
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

void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_file *f = file_get(fi);
	struct fs *fs = req_fs(req);
	const struct node_type *t = f->node->type;
	struct fs_reply r = { req };
	struct problem pb = { 0 };
	struct fs_ctx ctx;
	int rc = 0;

	(void)ino;
	atomic_fetch_add(&fs->n_flush, 1);
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

void fs_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs_file *f = req_file(fi);

	(void)ino;
	file_unlink(req_fs(req), f);
	file_put(f);
	fuse_reply_err(req, 0);
}

void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
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



void fs_create(fuse_req_t req, fuse_ino_t pino, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct node *dir = change_dir(req, pino);
	struct fuse_entry_param e;
	const struct node_type *t;
	struct fs_file *f = NULL;
	struct fs_ctx ctx;
	int rc;

	(void)mode;
	if (!dir)
		return; /* answered */
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
