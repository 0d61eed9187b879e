/* SPDX-License-Identifier: MIT */
/*
 * models/: the registry's node tables and the predict files.  Any FUSE
 * worker enters.
 *
 *   models/<m>/               made by training (or mkdir); rmdir removes it
 *     predict                 scores with `production` if set, else latest
 *     latest -> v<n>          kept by the filesystem
 *     <alias> -> v<n>         ln -s / ln -sfn / rm (production, staging...)
 *     v<n>/                   immutable: model meta.json metrics.json
 *                             sample.csv predict
 *
 * predict: rows written on a handle are scored, and reads of that handle
 * return the answers in order (a read with nothing pending is end of
 * file); an answer stream of answers.c, which keeps the answers for
 * shells (`echo row > predict; cat predict`).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "repo.h"
#include "fs.h"
#include "hostfile.h"
#include "jsonout.h"
#include "mlcore.h"
#include "answers.h"
#include "featpredict.h"
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
static int serving_version(struct node *n, unsigned *ver)
{
	json_t *rec, *prod;
	int rc;

	*ver = node_ver(n);
	if (*ver)
		return 0;
	rc = repo_get(n->fs, &repo_models, node_model(n), &rec);
	if (rc < 0)
		return rc;
	prod = json_object_get(json_object_get(rec, "aliases"), "production");
	*ver = prod ? (unsigned)json_integer_value(prod)
		    : (unsigned)json_integer_value(json_object_get(rec, "latest"));
	json_decref(rec);
	return *ver ? 0 : -ENOENT;
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
	json_t *man, *dsman, *meta, *ds;
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
	json_t *man, *sets;
	const char *hash;
	int rc;

	rc = serving_version(n, &ver);
	if (rc < 0)
		return rc;
	rc = repo_version(n->fs, &repo_models, node_model(n), ver, &man);
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

/* A stored file of a version: model_files (mlcore.h) lists them. */
#define VERSION_FILE(id, name)                                                \
	{ name, S_IFREG | 0444, NODE_F_IMMUTABLE, .open = vfile_open,         \
	  .read = vfile_read, .release = obj_vfile_release,                   \
	  .fsync = obj_vfile_fsync,                                           \
	  .getattr = vfile_getattr, .blob = obj_file_blob,                    \
	  .xattr = obj_file_xattr },

static const struct node_type version_files[] = {
	MODEL_FILES(VERSION_FILE)
	PREDICT_TYPE,
	{ NULL },
};

static const struct node_type version_type = {
	NULL, S_IFDIR | 0555, 0, .children = version_files,
	.getattr = obj_version_getattr, .refuse = "versions are immutable",
};

static const struct node_type model_dir_files[] = {
	PREDICT_TYPE,
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
