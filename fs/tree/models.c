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
 * file).  For shells, the answers of the last handle that wrote in a
 * process session are kept for that session (user, session id, session
 * leader's start time) for PREDICT_SESSION_S seconds, so that
 * `echo row > predict; cat predict` works and no other session sees them.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "repo.h"
#include "fs.h"
#include "jsonout.h"
#include "mlcore.h"
#include "models.h"
#include "objects.h"
#include "predict.h"
#include "store.h"

#define PREDICT_SESSION_S 60
#define PREDICT_OUT_MAX ((size_t)1 << 30) /* bytes of unread answers */
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

/* --- predict --- */

struct session {
	struct session *next;     /* under fs->sessions->lock */
	char *file;               /* the predict file's path: answers belong
				     to the file that gave them */
	uid_t uid;
	pid_t sid;
	unsigned long long start; /* the session leader's start time */
	time_t at;
	char *out;
	size_t len;
};

/* The answers kept for shell sessions, of one mount (fs->sessions). */
struct predict_sessions {
	pthread_mutex_t lock;
	struct session *list; /* under lock */
};

static void session_free(struct session *s)
{
	free(s->out);
	free(s->file);
	free(s);
}

int models_open(struct fs *fs)
{
	struct predict_sessions *ss = calloc(1, sizeof(*ss));

	if (!ss)
		return -ENOMEM;
	pthread_mutex_init(&ss->lock, NULL);
	fs->sessions = ss;
	return 0;
}

void models_close(struct fs *fs)
{
	struct predict_sessions *ss = fs->sessions;
	struct session *s;

	if (!ss)
		return;
	while ((s = ss->list)) {
		ss->list = s->next;
		session_free(s);
	}
	pthread_mutex_destroy(&ss->lock);
	free(ss);
	fs->sessions = NULL;
}

/* Session id of pid and its leader's start time (proc(5) stat fields). */
static int proc_session(pid_t pid, pid_t *sid, unsigned long long *start)
{
	char path[64], buf[1024], *p;
	FILE *fp;
	size_t n;
	int field;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fp = fopen(path, "re");
	if (!fp)
		return -errno;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* comm may hold spaces */
	if (!p)
		return -EINVAL;
	/* fields after comm: 3 state, 4 ppid, 5 pgrp, 6 session */
	if (sscanf(p + 2, "%*c %*d %*d %d", sid) != 1)
		return -EINVAL;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)*sid);
	fp = fopen(path, "re");
	if (!fp) {
		*start = 0; /* a leader gone: the id alone */
		return 0;
	}
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p)
		return -EINVAL;
	p += 2;
	/* field 22 starttime is the 20th after comm */
	for (field = 3; field < 22 && p; field++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (!p || sscanf(p, "%llu", start) != 1)
		*start = 0;
	return 0;
}

/* Forget answers older than PREDICT_SESSION_S.  Under ss->lock. */
static void sessions_expire_locked(struct predict_sessions *ss, time_t now)
{
	struct session **pp = &ss->list, *s;

	while ((s = *pp)) {
		if (now - s->at > PREDICT_SESSION_S) {
			*pp = s->next;
			session_free(s);
		} else {
			pp = &s->next;
		}
	}
}

static bool session_is(const struct session *s, const struct fs_ctx *ctx,
		       pid_t sid, unsigned long long start, const char *file)
{
	return s->uid == ctx->uid && s->sid == sid && s->start == start &&
	       strcmp(s->file, file) == 0;
}

/* Keep out as the session's answers of file (replacing earlier ones). */
static void session_store(struct fs *fs, const struct fs_ctx *ctx,
			  const char *file, const char *out, size_t len)
{
	struct predict_sessions *ss = fs->sessions;
	struct session *s, **pp;
	unsigned long long start;
	time_t now = time(NULL);
	pid_t sid;
	char *copy;

	if (proc_session(ctx->pid, &sid, &start) < 0)
		return;
	copy = malloc(len ? len : 1);
	if (!copy)
		return;
	memcpy(copy, out, len);
	pthread_mutex_lock(&ss->lock);
	sessions_expire_locked(ss, now);
	for (pp = &ss->list; (s = *pp); pp = &s->next)
		if (session_is(s, ctx, sid, start, file))
			break;
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (s)
			s->file = strdup(file);
		if (!s || !s->file) {
			pthread_mutex_unlock(&ss->lock);
			free(s);
			free(copy);
			return;
		}
		s->uid = ctx->uid;
		s->sid = sid;
		s->start = start;
		s->next = ss->list;
		ss->list = s;
	}
	free(s->out);
	s->out = copy;
	s->len = len;
	s->at = now;
	pthread_mutex_unlock(&ss->lock);
}

/* The session's answers of file, copied into out; false if none. */
static bool session_fetch(struct fs *fs, const struct fs_ctx *ctx,
			  const char *file, struct strbuf *out)
{
	struct predict_sessions *ss = fs->sessions;
	unsigned long long start;
	struct session *s;
	bool found = false;
	pid_t sid;

	if (proc_session(ctx->pid, &sid, &start) < 0)
		return false;
	pthread_mutex_lock(&ss->lock);
	sessions_expire_locked(ss, time(NULL));
	for (s = ss->list; s; s = s->next) {
		if (session_is(s, ctx, sid, start, file)) {
			sb_append(out, s->out, s->len);
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&ss->lock);
	return found;
}

struct phandle {
	pthread_mutex_t lock;
	struct served *m;
	struct pstream *ps;
	struct strbuf out;   /* answers not yet read */
	size_t read_pos;     /* of out */
	struct strbuf all;   /* everything answered, for the session */
	bool wrote;
	bool read_any;       /* the handle has read answers itself */
	bool stored;         /* the session has this handle's answers */
};

static int predict_open(struct fs_file *f, const struct fs_ctx *ctx)
{
	struct node *n = f->node;
	struct phandle *h;
	char msg[300] = "", key[96];
	unsigned ver;
	json_t *man;
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
	json_decref(man);
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	pthread_mutex_init(&h->lock, NULL);
	h->out.max = PREDICT_OUT_MAX;
	h->all.max = PREDICT_OUT_MAX;
	rc = served_get(n->fs, key, &h->m, msg, sizeof(msg));
	if (rc < 0) {
		struct problem pb = { 0 };

		snprintf(pb.path, sizeof(pb.path), "%s", n->path);
		problem_set(&pb, 0, 0, "cannot load model v%u: %s", ver, msg);
		fs_problem(n->fs, f->uid, &pb);
		free(h);
		return rc == -ENOENT ? -ENOENT : -EIO;
	}
	rc = pstream_new(h->m, &h->ps);
	if (rc < 0) {
		served_put(h->m);
		free(h);
		return rc;
	}
	/* a reader that writes nothing reads its session's answers */
	if ((f->flags & O_ACCMODE) == O_RDONLY)
		session_fetch(n->fs, ctx, f->node->path, &h->out);
	f->priv = h;
	f->direct_io = true;
	return 0;
}

static ssize_t predict_write(struct fs_file *f, const char *buf, size_t size,
			     off_t off)
{
	struct phandle *h = f->priv;
	size_t before;
	int rc;

	(void)off; /* a stream: rows are taken in the order written */
	pthread_mutex_lock(&h->lock);
	if (!h->wrote) {
		/* this handle's answers replace the session's */
		sb_free(&h->out);
		h->out.max = PREDICT_OUT_MAX;
		h->read_pos = 0;
	}
	h->wrote = true;
	h->stored = false;
	before = h->out.len;
	rc = pstream_write(h->ps, buf, size, &h->out);
	/* the session's copy, only while the handle reads nothing itself */
	if (h->out.len > before && !h->read_any)
		sb_append(&h->all, h->out.buf + before, h->out.len - before);
	if (h->all.err) {
		/* keep only the newest answers for the session */
		sb_free(&h->all);
		h->all.max = PREDICT_OUT_MAX;
	}
	pthread_mutex_unlock(&h->lock);
	if (rc == -E2BIG)
		return -E2BIG;
	if (rc < 0 && rc != -EIO)
		return rc;
	return (ssize_t)size;
}

/* Score a last row without its newline. */
static void finish_locked(struct phandle *h)
{
	size_t before = h->out.len;

	pstream_finish(h->ps, &h->out);
	if (h->out.len > before && !h->read_any)
		sb_append(&h->all, h->out.buf + before, h->out.len - before);
}

static int predict_read(struct fs_file *f, size_t size, off_t off,
			struct fs_reply *r)
{
	struct phandle *h = f->priv;
	size_t avail;

	(void)off; /* answers are consumed in order */
	pthread_mutex_lock(&h->lock);
	if (h->wrote)
		finish_locked(h);
	avail = h->out.len - h->read_pos;
	if (size > avail)
		size = avail;
	fs_reply_buf(r, h->out.buf ? h->out.buf + h->read_pos : NULL, size);
	h->read_pos += size;
	if (size && !h->read_any) {
		/* a reader of its own answers: no session copy to keep */
		h->read_any = true;
		sb_free(&h->all);
		h->all.max = PREDICT_OUT_MAX;
	}
	if (h->read_pos == h->out.len) {
		h->out.len = 0;
		h->read_pos = 0;
	}
	pthread_mutex_unlock(&h->lock);
	return 0;
}

static int predict_flush(struct fs_file *f, const struct fs_ctx *ctx,
			 struct problem *pb)
{
	struct phandle *h = f->priv;

	(void)pb;
	pthread_mutex_lock(&h->lock);
	if (h->wrote && !h->stored) {
		finish_locked(h);
		/*
		 * Keep the answers for the session only when the handle has
		 * not read them all itself (echo > predict; cat predict): a
		 * program that reads its own answers needs no copy.
		 */
		if (h->out.len > h->read_pos || !h->read_any)
			session_store(f->node->fs, ctx, f->node->path,
				      h->all.buf ? h->all.buf : "",
				      h->all.len);
		h->stored = true;
	}
	pthread_mutex_unlock(&h->lock);
	return 0;
}

static int predict_truncate(struct fs_file *f, off_t size)
{
	(void)f;
	(void)size;
	return 0; /* O_TRUNC and `>` are fine: the content is a stream */
}

static void predict_release(struct fs_file *f)
{
	struct phandle *h = f->priv;

	if (!h)
		return;
	pstream_free(h->ps);
	served_put(h->m);
	sb_free(&h->out);
	sb_free(&h->all);
	pthread_mutex_destroy(&h->lock);
	free(h);
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
	  .read = predict_read, .write = predict_write,                       \
	  .truncate = predict_truncate, .flush = predict_flush,              \
	  .release = predict_release, .getattr = predict_getattr }

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
