/* SPDX-License-Identifier: MIT */
/*
 * models/: the registry's node tables and the predict files.  Any FUSE
 * worker enters.
 *
 *   models/<m>/               made by training (or mkdir); rmdir removes it
 *     predict                 scores with `production` if set, else latest
 *     latest -> v<n>          kept by the filesystem
 *     <alias> -> v<n>         ln -s / ln -sfn / rm (production, staging...)
 *     import                  write a bundle.tar: a new version once its
 *                             sample reproduces (modelbundle.c)
 *     v<n>/                   immutable: model meta.json metrics.json
 *                             sample.csv reference.csv evaluation.json
 *                             bundle.tar predict, and the pictures its
 *                             task has (modelplot.c): learning.svg
 *                             roc.svg confusion.svg residuals.svg
 *                             clusters.svg
 *
 * predict: rows written on a handle are scored, and reads of that handle
 * return the answers in order (a read with nothing pending is end of
 * file); an answer stream of answers.c, which keeps the answers for
 * shells (`echo row > predict; cat predict`).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "repo.h"
#include "fs.h"
#include "hostfile.h"
#include "jsonout.h"
#include "mlcore.h"
#include "answers.h"
#include "bundle.h"
#include "featpredict.h"
#include "modelbundle.h"
#include "modelplot.h"
#include "models.h"
#include "objects.h"
#include "predict.h"
#include "store.h"

#define META_JSON_MAX ((size_t)16 << 20)     /* bytes of a meta.json read */

static const char *node_model(struct node *n)
{
	return obj_name(n);
}

static unsigned node_ver(struct node *n)
{
	return obj_ver(n);
}

/* The version a node's predict uses: its own, else production, else latest. */
/* The version predict serves (the node's, else production, else the
 * latest) and the model's record (*rec, the caller's to decref). */
static int serving_version(struct node *n, unsigned *ver, json_t **rec)
{
	json_t *prod;
	int rc;

	rc = repo_get(n->fs, &repo_models, node_model(n), rec);
	if (rc < 0)
		return rc;
	*ver = node_ver(n);
	if (*ver)
		return 0;
	prod = json_object_get(json_object_get(*rec, "aliases"), "production");
	*ver = prod ? (unsigned)json_integer_value(prod)
		    : (unsigned)json_integer_value(json_object_get(*rec,
								   "latest"));
	if (*ver)
		return 0;
	json_decref(*rec);
	*rec = NULL;
	return -ENOENT;
}

/* --- the files of a version: blobs --- */

/*
 * meta.json of a version trained on a dataset version whose manifest went
 * missing from the bucket (a version a model uses cannot be removed, so
 * an index without it lost it): the stored text with "dataset" saying so
 * ("missing"), for readers of the model's lineage.  *text NULL (0) when
 * nothing is missing, else malloc'd (*len bytes); -errno (-EIO for a
 * blob that does not match its hash, reported for uid).
 */
static int meta_render(struct node *n, uid_t uid, char **text, size_t *len)
{
	struct fs *fs = n->fs;
	json_t *man, *dsman = NULL, *meta, *ds;
	const char *dsname;
	char key[96], why[600];
	uint64_t size;
	unsigned dsver;
	size_t blen;
	char *buf;
	int rc;

	*text = NULL;
	rc = repo_version(fs, &repo_models, node_model(n), node_ver(n), &man);
	if (rc < 0)
		return rc;
	ds = json_object_get(man, "dataset");
	dsname = json_string_value(json_object_get(ds, "name"));
	dsver = (unsigned)json_integer_value(json_object_get(ds, "version"));
	rc = dsname && dsver ? repo_version(fs, &repo_datasets, dsname, dsver,
					  &dsman)
			     : 0;
	if (rc == -ENOENT)
		snprintf(why, sizeof(why),
			 "datasets/%s/v%u.json is missing from the bucket",
			 dsname, dsver);
	json_decref(man);
	if (rc != -ENOENT) {
		if (rc == 0)
			json_decref(dsman);
		return 0; /* an index that cannot say: served as stored */
	}
	rc = obj_vfile_info(n, key, sizeof(key), &size, NULL);
	if (rc < 0)
		return rc;
	rc = store_get(fs->store, key, META_JSON_MAX, &buf, &blen);
	rc = repo_blob_error(fs, uid, n->path, key, rc);
	if (rc < 0)
		return rc;
	meta = json_loadb(buf, blen, 0, NULL);
	free(buf);
	ds = json_object_get(meta, "dataset");
	if (json_is_object(ds) &&
	    json_object_set_new(ds, "missing", json_string(why)) == 0)
		*text = json_dumps_short(meta, JSON_INDENT(2) |
						       JSON_PRESERVE_ORDER);
	json_decref(meta);
	if (*text)
		*len = strlen(*text);
	return 0;
}

static int vfile_open(struct fs_file *f, const struct fs_ctx *ctx)
{
	int rc;

	if ((f->flags & O_ACCMODE) != O_RDONLY)
		return -EACCES;
	if (strcmp(f->node->name, "meta.json") == 0) {
		rc = meta_render(f->node, f->uid, &f->snap, &f->snap_len);
		if (rc < 0)
			return rc;
		if (f->snap) {
			/* not the stored bytes, and not their size */
			f->direct_io = true;
			return 0;
		}
	}
	return obj_vfile_open(f, ctx);
}

static int vfile_read(struct fs_file *f, size_t size, off_t off,
		      struct fs_reply *r)
{
	if (f->snap) {
		if ((size_t)off >= f->snap_len)
			return fs_reply_buf(r, NULL, 0);
		if (size > f->snap_len - (size_t)off)
			size = f->snap_len - (size_t)off;
		return fs_reply_buf(r, f->snap + off, size);
	}
	return obj_vfile_read(f, size, off, r);
}

static int vfile_getattr(struct node *n, struct stat *st)
{
	int rc = obj_vfile_getattr(n, st);
	char *text;
	size_t len;

	if (rc == 0 && strcmp(n->name, "meta.json") == 0 &&
	    meta_render(n, 0, &text, &len) == 0 && text) {
		st->st_size = (off_t)len;
		free(text);
	}
	return rc;
}

/* --- predict: an answer stream (answers.c) scored by predict.c --- */

struct pstate {
	struct served *m;
	struct pstream *ps;
	struct fpredict *fp; /* a model trained on feature sets: by key */
};

static int p_write(void *st, const char *buf, size_t len, struct strbuf *out)
{
	struct pstate *p = st;

	return p->fp ? fpredict_write(p->fp, buf, len, out)
		     : pstream_write(p->ps, buf, len, out);
}

static int p_finish(void *st, struct strbuf *out)
{
	struct pstate *p = st;

	return p->fp ? fpredict_finish(p->fp, out) : pstream_finish(p->ps, out);
}

static void p_free(void *st)
{
	struct pstate *p = st;

	fpredict_free(p->fp);
	pstream_free(p->ps);
	served_put(p->m);
	free(p);
}

static const struct answer_ops predict_ops = { p_write, p_finish, p_free,
					       NULL };

static int predict_open(struct fs_file *f, const struct fs_ctx *ctx)
{
	struct node *n = f->node;
	struct pstate *p;
	char msg[300] = "", key[96];
	unsigned ver;
	json_t *rec, *man, *sets;
	const char *hash;
	int rc;

	rc = serving_version(n, &ver, &rec);
	if (rc < 0)
		return rc;
	rc = repo_version_shared(n->fs, &repo_models, node_model(n), rec, ver,
				 &man);
	json_decref(rec);
	if (rc < 0)
		return rc;
	hash = json_string_value(json_object_get(
		json_object_get(json_object_get(man, "files"), "model"),
		"hash"));
	snprintf(key, sizeof(key), "%s", hash ? hash : "");
	sets = json_incref(json_object_get(man, "feature_sets"));
	json_decref(man);
	p = calloc(1, sizeof(*p));
	if (!p) {
		json_decref(sets);
		return -ENOMEM;
	}
	rc = served_get(n->fs, key, &p->m, msg, sizeof(msg));
	if (rc < 0) {
		struct problem pb = { 0 };

		snprintf(pb.path, sizeof(pb.path), "%s", n->path);
		problem_set(&pb, 0, 0, "cannot load model v%u: %s", ver, msg);
		fs_problem(n->fs, f->uid, &pb);
		free(p);
		json_decref(sets);
		return rc == -ENOENT ? -ENOENT : -EIO;
	}
	rc = pstream_new(p->m, &p->ps);
	if (rc == 0 && sets) {
		struct host_user caller = { ctx->uid, ctx->gid, ctx->pid };
		struct problem pb = { 0 };

		rc = fpredict_new(n->fs, sets, &caller, p->ps, &p->fp, pb.msg,
				  sizeof(pb.msg));
		if (rc < 0 && pb.msg[0]) {
			snprintf(pb.path, sizeof(pb.path), "%s", n->path);
			fs_problem(n->fs, f->uid, &pb);
		}
	}
	json_decref(sets);
	if (rc < 0) {
		p_free(p);
		return rc;
	}
	return answers_open(f, ctx, &predict_ops, p);
}

static int predict_getattr(struct node *n, struct stat *st)
{
	int rc = obj_attr(n, st, false);

	st->st_size = 0; /* a stream of answers: read until end of file */
	return rc;
}

#define PREDICT_TYPE                                                          \
	{ "predict", S_IFREG | 0666, NODE_F_SCRATCH,                          \
	  .open = predict_open,                                               \
	  .read = answers_read, .write = answers_write,                       \
	  .truncate = answers_truncate, .flush = answers_flush,              \
	  .release = answers_release, .getattr = predict_getattr }

/* --- bundle.tar: made from the version's blobs at open --- */

static int tar_open(struct fs_file *f, const struct fs_ctx *ctx)
{
	void *buf;
	size_t len;
	int rc;

	(void)ctx;
	if ((f->flags & O_ACCMODE) != O_RDONLY)
		return -EACCES;
	rc = mbundle_make(f->node->fs, node_model(f->node), node_ver(f->node),
			  f->uid, f->node->path, &buf, &len);
	if (rc < 0)
		return rc;
	f->snap = buf;
	f->snap_len = len;
	f->keep_cache = true; /* the same bytes every time */
	return 0;
}

static int tar_read(struct fs_file *f, size_t size, off_t off,
		    struct fs_reply *r)
{
	if ((size_t)off >= f->snap_len)
		return fs_reply_buf(r, NULL, 0);
	if (size > f->snap_len - (size_t)off)
		size = f->snap_len - (size_t)off;
	return fs_reply_buf(r, f->snap + off, size);
}

static int tar_getattr(struct node *n, struct stat *st)
{
	uint64_t size = 0;
	int rc = obj_vfile_getattr(n, st);

	if (rc == 0)
		rc = mbundle_size(n->fs, node_model(n), node_ver(n), &size);
	st->st_size = (off_t)size;
	return rc;
}

/* --- the pictures: drawn from the version's files at open --- */

#define PLOT_TYPE(id, name)                                                   \
	{ name, S_IFREG | 0444, NODE_F_IMMUTABLE, .open = plot_open,          \
	  .read = tar_read, .getattr = plot_getattr },

static enum mplot plot_of(struct node *n);

static int plot_open(struct fs_file *f, const struct fs_ctx *ctx)
{
	char *buf;
	size_t len;
	int rc;

	(void)ctx;
	if ((f->flags & O_ACCMODE) != O_RDONLY)
		return -EACCES;
	rc = mplot_make(f->node->fs, node_model(f->node), node_ver(f->node),
			plot_of(f->node), f->uid, f->node->path, &buf, &len);
	if (rc < 0)
		return rc;
	f->snap = buf;
	f->snap_len = len;
	f->keep_cache = true; /* the same picture every time */
	return 0;
}

static int plot_getattr(struct node *n, struct stat *st)
{
	int rc = obj_attr(n, st, false);
	char *buf;
	size_t len = 0;

	if (rc == 0)
		rc = mplot_make(n->fs, node_model(n), node_ver(n), plot_of(n),
				0, n->path, &buf, &len);
	if (rc == 0)
		free(buf);
	st->st_size = (off_t)len;
	return rc;
}

static const struct node_type plot_types[] = { MODEL_PLOTS(PLOT_TYPE) };

static enum mplot plot_of(struct node *n)
{
	return (enum mplot)(n->type - plot_types);
}

/* The pictures a version has (mplot_has): its dynamic entries. */
static unsigned version_plots(struct node *dir)
{
	json_t *man;
	unsigned has;

	if (repo_version(dir->fs, &repo_models, node_model(dir), node_ver(dir),
			 &man) < 0)
		return 0;
	has = mplot_has(man);
	json_decref(man);
	return has;
}

static int version_lookup(struct node *dir, const char *name,
			  const struct node_type **type)
{
	unsigned has = version_plots(dir);

	for (int p = 0; p < MPLOT_N; p++)
		if ((has & (1u << p)) && strcmp(name, mplot_names[p]) == 0) {
			*type = &plot_types[p];
			return 0;
		}
	return -ENOENT;
}

static int version_list(struct node *dir, node_fill_fn fill, void *ctx)
{
	unsigned has = version_plots(dir);

	for (int p = 0; p < MPLOT_N; p++)
		if ((has & (1u << p)) && fill(ctx, mplot_names[p], &plot_types[p]))
			break;
	return 0;
}

/* --- import: a bundle written here becomes a version --- */

struct import {
	int fd;                  /* the archive so far: an unlinked file in
				    the store's temporary folder, not memory
				    (up to bundle_max bytes a handle) */
	uint64_t len;
	struct bundle_walk walk; /* where it ends */
	bool ran;                /* judged: rc says how */
	int rc;
	unsigned ver;            /* imported as */
};

static int import_fail(struct fs_file *f, struct import *im, int rc,
		       struct problem *pb)
{
	if (!pb->path[0])
		snprintf(pb->path, sizeof(pb->path), "%s", f->node->path);
	if (!pb->msg[0])
		problem_set(pb, 0, 0, "%s", strerror(-rc));
	fs_problem(f->node->fs, f->uid, pb);
	im->ran = true;
	im->rc = rc;
	return rc;
}

/* The whole archive is here (or closed): judge it, reproduce, commit. */
static int import_run(struct fs_file *f, struct import *im)
{
	struct fs_ctx ctx = { f->uid, f->gid, f->pid, 0, NULL };
	struct problem pb = { 0 };
	char job[300];
	unsigned ver;
	int rc;

	void *map = MAP_FAILED;

	if (im->len)
		map = mmap(NULL, (size_t)im->len, PROT_READ, MAP_PRIVATE, im->fd,
			   0);
	if (im->len && map == MAP_FAILED)
		return import_fail(f, im, -errno, &pb);
	rc = mbundle_import(f->node->fs, node_model(f->node),
			    im->len ? map : "", (size_t)im->len, &ctx, job,
			    sizeof(job), &ver, &pb);
	if (im->len)
		munmap(map, (size_t)im->len);
	if (rc < 0)
		return import_fail(f, im, rc, &pb);
	fs_log(f->node->fs, 6, "models/%s: v%u imported from a bundle (jobs/%s)",
	       node_model(f->node), ver, job);
	im->ran = true;
	im->rc = 0;
	im->ver = ver;
	return 0;
}

static int import_open(struct fs_file *f, const struct fs_ctx *ctx)
{
	struct host_user writer = { ctx->uid, ctx->gid, ctx->pid };
	struct import *im;
	int rc;

	if ((f->flags & O_ACCMODE) == O_RDONLY)
		return -EACCES; /* a place to write to, with nothing to read */
	rc = repo_may(f->node->fs, &repo_models, node_model(f->node), &writer,
		      W_OK | X_OK);
	if (rc < 0)
		return rc;
	char tmp[PATH_MAX];

	im = calloc(1, sizeof(*im));
	if (!im)
		return -ENOMEM;
	rc = store_tmp_path(f->node->fs->store, tmp, sizeof(tmp));
	im->fd = rc < 0 ? rc
			: open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (im->fd < 0) {
		rc = rc < 0 ? rc : -errno;
		free(im);
		return rc;
	}
	unlink(tmp);
	f->priv = im;
	f->direct_io = true;
	return 0;
}

/*
 * Judged in the write that completes the archive (bash ignores close's
 * result): the bytes after it are tar's zero padding at most.
 */
static ssize_t import_write(struct fs_file *f, const char *buf, size_t size,
			    off_t off)
{
	struct import *im = f->priv;
	struct problem pb = { 0 };
	size_t keep;
	int rc;

	if (im->ran && im->rc < 0)
		return im->rc;
	if ((uint64_t)off != im->walk.in) {
		problem_set(&pb, 0, 0, "a bundle is written from its start, in "
				       "order (byte %llu came at %llu)",
			    (unsigned long long)off,
			    (unsigned long long)im->walk.in);
		return import_fail(f, im, -EINVAL, &pb);
	}
	rc = bundle_walk_feed(&im->walk, buf, size, &keep, pb.msg,
			      sizeof(pb.msg));
	if (rc < 0 && im->ran) {
		/* the bundle before them stays imported */
		snprintf(pb.msg + strlen(pb.msg),
			 sizeof(pb.msg) - strlen(pb.msg),
			 " (the bundle before it was imported as v%u)",
			 im->ver);
		return import_fail(f, im, -EINVAL, &pb);
	}
	if (rc < 0)
		return import_fail(f, im, rc == -EFBIG ? -EFBIG : -EINVAL, &pb);
	if (im->ran)
		return (ssize_t)size; /* padding after a bundle taken */
	if (im->len + keep > bundle_max()) {
		problem_set(&pb, 0, 0, "bundle: over the size cap of %llu bytes",
			    (unsigned long long)bundle_max());
		return import_fail(f, im, -EFBIG, &pb);
	}
	for (size_t at = 0; at < keep;) {
		ssize_t n = pwrite(im->fd, buf + at, keep - at,
				   (off_t)(im->len + at));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return import_fail(f, im, n < 0 ? -errno : -EIO, &pb);
		at += (size_t)n;
	}
	im->len += keep;
	if (rc == 1) {
		rc = import_run(f, im);
		if (rc < 0)
			return rc;
	}
	return (ssize_t)size;
}

static int import_truncate(struct fs_file *f, off_t size)
{
	struct import *im = f->priv;

	/* O_TRUNC of a handle with nothing written: nothing to do */
	return size == 0 && im->walk.in == 0 ? 0 : -EINVAL;
}

static int import_flush(struct fs_file *f, const struct fs_ctx *ctx,
			struct problem *pb)
{
	struct import *im = f->priv;

	(void)ctx;
	if (im->ran)
		return im->rc;
	if (im->walk.in == 0)
		return 0; /* opened and closed: nothing imported */
	/*
	 * Not whole yet.  This may be one close of several (a shell group,
	 * a dup), so the handle goes on taking bytes; the last close says
	 * so in .mlfs/errors if it never ends.
	 */
	problem_set(pb, 0, 0, "not a whole bundle yet: %llu bytes without "
			      "the end of the archive",
		    (unsigned long long)im->walk.in);
	return -EINVAL;
}

static void import_release(struct fs_file *f)
{
	struct import *im = f->priv;

	if (!im)
		return;
	if (!im->ran && im->walk.in) {
		struct problem pb = { 0 };

		snprintf(pb.path, sizeof(pb.path), "%s", f->node->path);
		problem_set(&pb, 0, 0, "bundle: never ended (%llu bytes): "
				       "nothing imported",
			    (unsigned long long)im->walk.in);
		fs_problem(f->node->fs, f->uid, &pb);
	}
	bundle_walk_end(&im->walk);
	close(im->fd);
	free(im);
}

static int import_getattr(struct node *n, struct stat *st)
{
	json_t *rec;
	int rc = obj_attr(n, st, false);

	if (rc < 0)
		return rc;
	rc = repo_get(n->fs, &repo_models, node_model(n), &rec);
	if (rc < 0)
		return rc;
	/* writable by who may add versions: the model's write bits */
	st->st_mode = S_IFREG |
		      ((mode_t)json_integer_value(json_object_get(rec, "mode")) &
		       0222);
	st->st_size = 0;
	json_decref(rec);
	return 0;
}

/* A stored file of a version: model_files (mlcore.h) lists them. */
#define VERSION_FILE(id, name)                                                \
	{ name, S_IFREG | 0444, NODE_F_IMMUTABLE, .open = vfile_open,         \
	  .read = vfile_read, .release = obj_vfile_release,                   \
	  .fsync = obj_vfile_fsync,                                           \
	  .getattr = vfile_getattr, .blob = obj_file_blob,                    \
	  .xattr = obj_file_xattr },

static const struct node_type version_files[] = {
	MODEL_FILES(VERSION_FILE)
	{ "bundle.tar", S_IFREG | 0444, NODE_F_IMMUTABLE, .open = tar_open,
	  .read = tar_read, .getattr = tar_getattr },
	PREDICT_TYPE,
	{ NULL },
};

static const struct node_type version_type = {
	NULL, S_IFDIR | 0555, 0, .children = version_files,
	.lookup = version_lookup, .list = version_list,
	.getattr = obj_version_getattr, .refuse = "versions are immutable",
};

static const struct node_type model_dir_files[] = {
	PREDICT_TYPE,
	{ "import", S_IFREG | 0220, 0, .open = import_open,
	  .write = import_write, .truncate = import_truncate,
	  .flush = import_flush, .release = import_release,
	  .getattr = import_getattr },
	{ NULL },
};

static int model_lookup(struct node *dir, const char *name,
			const struct node_type **type)
{
	return obj_lookup(dir, name, &version_type, type);
}

static int model_list(struct node *dir, node_fill_fn fill, void *ctx)
{
	return obj_list(dir, &version_type, fill, ctx);
}

static const struct node_type model_type = {
	NULL, S_IFDIR | 0755, NODE_F_DYNAMIC, .children = model_dir_files,
	.lookup = model_lookup, .list = model_list, .drop = obj_drop,
	.symlink = obj_symlink, .unlink = obj_unlink, .rename = obj_rename,
	.getattr = obj_dir_getattr, .chmod = obj_chmod,
};

static int models_lookup(struct node *dir, const char *name,
			 const struct node_type **type)
{
	return obj_top_lookup(dir, name, &model_type, type);
}

static int models_list(struct node *dir, node_fill_fn fill, void *ctx)
{
	return obj_top_list(dir, &model_type, fill, ctx);
}

const struct node_type models_type = {
	"models", S_IFDIR | 01777, NODE_F_DYNAMIC, .lookup = models_lookup,
	.list = models_list, .make = obj_top_make, .drop = obj_top_drop,
	.kind = &repo_models,
};
