/* SPDX-License-Identifier: MIT */
/*
 * Objects with versions and aliases, as datasets/ and models/ show them
 * (objects.h).  The repository work is repo/'s; this file turns directory
 * operations into its calls for either kind.  Any FUSE worker enters.
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
#include "objects.h"
#include "store.h"
#include "bcache.h"

const struct repo_kind *obj_kind(struct node *n)
{
	/* the top directory of every kind's tree says which it is */
	for (; n; n = n->parent)
		if (n->type->kind)
			return n->type->kind;
	return NULL;
}

const char *obj_name(struct node *n)
{
	return n->depth > 1 ? n->comp[1] : "";
}

unsigned obj_ver(struct node *n)
{
	unsigned v = 0;

	if (n->depth > 2)
		node_name_is_version(n->comp[2], &v);
	return v;
}

int obj_attr(struct node *n, struct stat *st, bool dir)
{
	json_t *rec;
	int rc = repo_get(n->fs, obj_kind(n), obj_name(n), &rec);

	if (rc < 0)
		return rc;
	st->st_uid = (uid_t)json_integer_value(json_object_get(rec, "uid"));
	st->st_gid = (gid_t)json_integer_value(json_object_get(rec, "gid"));
	st->st_mtim.tv_sec = (time_t)json_integer_value(
		json_object_get(rec, "created_unix"));
	st->st_ctim = st->st_mtim;
	if (dir)
		st->st_mode = S_IFDIR | (mode_t)json_integer_value(
						json_object_get(rec, "mode"));
	json_decref(rec);
	return 0;
}

int obj_field_show(struct node *n, unsigned ver, const char *field,
		   const char *none, struct strbuf *out)
{
	json_t *man;
	int rc = repo_version(n->fs, obj_kind(n), obj_name(n), ver, &man);

	if (rc == -ENOENT && ver == 0 && none)
		return sb_puts(out, none);
	if (rc < 0)
		return rc;
	rc = repo_render_field(man, field, out);
	json_decref(man);
	return rc == -ENOENT && none ? sb_puts(out, none) : rc;
}

int obj_file_getattr(struct node *n, struct stat *st)
{
	return obj_attr(n, st, false);
}

int obj_dir_getattr(struct node *n, struct stat *st)
{
	return obj_attr(n, st, true);
}

int obj_version_getattr(struct node *n, struct stat *st)
{
	int rc = obj_attr(n, st, false);

	st->st_mode = S_IFDIR | 0555;
	return rc;
}

static int latest_readlink(struct node *n, char **target)
{
	json_t *rec;
	unsigned v;
	int rc = repo_get(n->fs, obj_kind(n), obj_name(n), &rec);

	if (rc < 0)
		return rc;
	v = (unsigned)json_integer_value(json_object_get(rec, "latest"));
	json_decref(rec);
	if (v == 0)
		return -ENOENT;
	return asprintf(target, "v%u", v) < 0 ? -ENOMEM : 0;
}

static int alias_readlink(struct node *n, char **target)
{
	unsigned v;
	int rc = repo_alias_get(n->fs, obj_kind(n), obj_name(n), n->name, &v);

	if (rc < 0)
		return rc;
	return asprintf(target, "v%u", v) < 0 ? -ENOMEM : 0;
}

static int link_getattr(struct node *n, struct stat *st)
{
	char *target = NULL;
	int rc = obj_attr(n, st, false);

	if (rc < 0)
		return rc;
	rc = n->type->readlink(n, &target);
	if (rc == 0)
		st->st_size = (off_t)strlen(target);
	free(target);
	return rc;
}

const struct node_type obj_latest_type = {
	NULL, S_IFLNK | 0777, NODE_F_VOLATILE, .readlink = latest_readlink,
	.getattr = link_getattr,
};

const struct node_type obj_alias_type = {
	NULL, S_IFLNK | 0777, NODE_F_VOLATILE, .readlink = alias_readlink,
	.getattr = link_getattr,
};

int obj_lookup(struct node *dir, const char *name,
	       const struct node_type *version_type,
	       const struct node_type **type)
{
	const struct repo_kind *k = obj_kind(dir);
	unsigned v;
	json_t *j;

	if (strcmp(name, "latest") == 0) {
		if (repo_get(dir->fs, k, obj_name(dir), &j) < 0)
			return -ENOENT;
		v = (unsigned)json_integer_value(json_object_get(j, "latest"));
		json_decref(j);
		if (v == 0)
			return -ENOENT;
		*type = &obj_latest_type;
		return 0;
	}
	if (node_name_is_version(name, &v)) {
		if (repo_version(dir->fs, k, obj_name(dir), v, &j) < 0)
			return -ENOENT;
		json_decref(j);
		*type = version_type;
		return 0;
	}
	if (repo_alias_get(dir->fs, k, obj_name(dir), name, &v) == 0) {
		*type = &obj_alias_type;
		return 0;
	}
	return -ENOENT;
}

struct fill_arg {
	node_fill_fn fill;
	void *ctx;
	const struct node_type *type;
};

static int fill_ver(void *arg, unsigned ver)
{
	struct fill_arg *fa = arg;
	char name[16];

	snprintf(name, sizeof(name), "v%u", ver);
	return fa->fill(fa->ctx, name, fa->type);
}

int obj_list(struct node *dir, const struct node_type *version_type,
	     node_fill_fn fill, void *ctx)
{
	struct fill_arg fa = { fill, ctx, version_type };
	const struct repo_kind *k = obj_kind(dir);
	const char *a;
	json_t *rec, *v;
	int rc = repo_get(dir->fs, k, obj_name(dir), &rec);

	if (rc < 0)
		return rc;
	if (json_integer_value(json_object_get(rec, "latest")) > 0)
		fill(ctx, "latest", &obj_latest_type);
	json_object_foreach(json_object_get(rec, "aliases"), a, v)
		fill(ctx, a, &obj_alias_type);
	json_decref(rec);
	rc = repo_versions(dir->fs, k, obj_name(dir), fill_ver, &fa);
	return rc < 0 ? rc : 0;
}

int obj_drop(struct node *dir, const char *name, const struct fs_ctx *ctx)
{
	struct problem pb = { 0 };
	unsigned v;
	int rc;

	if (!node_name_is_version(name, &v))
		return fs_refused(dir->fs, ctx->uid, dir->path, name, -EPERM,
				  "only versions can be removed from %s",
				  dir->path);
	rc = repo_remove_version(dir->fs, obj_kind(dir), obj_name(dir), v, &pb);
	if (rc == -EBUSY) {
		/* say what holds it, where the user looks */
		snprintf(pb.path, sizeof(pb.path), "%s/%s", dir->path, name);
		fs_problem(dir->fs, ctx->uid, &pb);
	}
	return rc;
}

int obj_symlink(struct node *dir, const char *name, const char *target,
		const struct fs_ctx *ctx)
{
	struct problem pb = { 0 };
	int rc;

	snprintf(pb.path, sizeof(pb.path), "%s/%s", dir->path, name);
	rc = repo_alias_set(dir->fs, obj_kind(dir), obj_name(dir), name, target,
			  false, &pb);
	if (rc == -EINVAL)
		fs_problem(dir->fs, ctx->uid, &pb);
	return rc;
}

int obj_unlink(struct node *dir, const char *name, const struct fs_ctx *ctx)
{
	if (strcmp(name, "latest") == 0)
		return fs_refused(dir->fs, ctx->uid, dir->path, name, -EPERM,
				  "kept by the filesystem: latest follows the "
				  "newest version");
	return repo_alias_del(dir->fs, obj_kind(dir), obj_name(dir), name);
}

int obj_rename(struct node *dir, const char *from, const char *to,
	       unsigned flags, const struct fs_ctx *ctx)
{
	int rc;

	if (strcmp(from, "latest") == 0)
		return fs_refused(dir->fs, ctx->uid, dir->path, from, -EPERM,
				  "kept by the filesystem: latest follows the "
				  "newest version");
	rc = repo_alias_rename(dir->fs, obj_kind(dir), obj_name(dir), from, to,
			     flags);
	/* -EPERM: to is latest, v<n> or not a name */
	return fs_refused(dir->fs, ctx->uid, dir->path, to, rc,
			  "not a name an alias may take (latest and v<n> are "
			  "kept by the filesystem)");
}

/*
 * Only the owner (or root) changes or removes an object; a refusal says
 * so in the caller's .mlfs/errors, naming dir/entry.
 */
static int owner_check(struct fs *fs, const struct repo_kind *k,
		       const char *name, const struct fs_ctx *ctx,
		       const char *dir, const char *entry)
{
	json_t *rec;
	uid_t owner;
	int rc = repo_get(fs, k, name, &rec);

	if (rc < 0)
		return rc;
	owner = (uid_t)json_integer_value(json_object_get(rec, "uid"));
	json_decref(rec);
	if (ctx->uid == 0 || ctx->uid == owner)
		return 0;
	return fs_refused(fs, ctx->uid, dir, entry, -EPERM,
			  "owned by uid %u, you are uid %u", (unsigned)owner,
			  (unsigned)ctx->uid);
}

int obj_chmod(struct node *n, mode_t mode, const struct fs_ctx *ctx)
{
	int rc = owner_check(n->fs, obj_kind(n), obj_name(n), ctx, n->path,
			     NULL);

	return rc < 0 ? rc : repo_chmod(n->fs, obj_kind(n), obj_name(n), mode);
}

int obj_top_lookup(struct node *dir, const char *name,
		   const struct node_type *obj_type,
		   const struct node_type **type)
{
	json_t *rec;

	if (repo_get(dir->fs, obj_kind(dir), name, &rec) < 0)
		return -ENOENT;
	json_decref(rec);
	*type = obj_type;
	return 0;
}

static int fill_obj(void *arg, const char *name)
{
	struct fill_arg *fa = arg;

	return fa->fill(fa->ctx, name, fa->type);
}

int obj_top_list(struct node *dir, const struct node_type *obj_type,
		 node_fill_fn fill, void *ctx)
{
	struct fill_arg fa = { fill, ctx, obj_type };
	int rc = repo_list(dir->fs, obj_kind(dir), fill_obj, &fa);

	return rc < 0 ? rc : 0;
}

int obj_top_make(struct node *dir, const char *name, mode_t mode,
		 const struct fs_ctx *ctx)
{
	struct problem pb = { 0 };
	int rc;

	snprintf(pb.path, sizeof(pb.path), "%s/%s", dir->path, name);
	rc = repo_create(dir->fs, obj_kind(dir), name, mode, ctx, &pb);
	if (rc == -EINVAL)
		fs_problem(dir->fs, ctx->uid, &pb);
	return rc;
}

int obj_top_drop(struct node *dir, const char *name, const struct fs_ctx *ctx)
{
	struct problem pb = { 0 };
	/* like a sticky /tmp: only the owner (or root) removes an object */
	int rc = owner_check(dir->fs, obj_kind(dir), name, ctx, dir->path,
			     name);

	if (rc < 0)
		return rc;
	rc = repo_remove(dir->fs, obj_kind(dir), name, &pb);
	if (rc == -EBUSY) {
		snprintf(pb.path, sizeof(pb.path), "%s/%s", dir->path, name);
		fs_problem(dir->fs, ctx->uid, &pb);
	}
	return rc;
}

int obj_blob_open(struct fs *fs, const char *key, uint64_t size,
		  struct obj_blob **out)
{
	struct obj_blob *b;

	*out = NULL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->fd = -1;
	if (key) {
		snprintf(b->key, sizeof(b->key), "%s", key);
		b->size = size;
		b->fd = store_open_fd(fs->store, key);
		if (b->fd < 0 && b->fd != -EOPNOTSUPP) {
			int rc = b->fd;

			free(b);
			return rc;
		}
		if (b->fd < 0)
			b->fd = -1;
	}
	*out = b;
	return 0;
}

int obj_blob_open_feed(struct ds_feed *feed, struct obj_blob **out)
{
	struct obj_blob *b = calloc(1, sizeof(*b));

	*out = b;
	if (!b) {
		ds_feed_put(feed);
		return -ENOMEM;
	}
	b->fd = -1;
	b->size = ds_feed_size(feed);
	b->feed = feed;
	return 0;
}

void obj_blob_close(struct obj_blob *b)
{
	if (!b)
		return;
	if (b->fd >= 0)
		close(b->fd);
	ds_feed_put(b->feed);
	free(b);
}

/*
 * A read of a lazy version while it is imported: the bytes as they
 * land; the import's failure, if any, ends the read that reaches it.
 */
static int feed_read(struct fs_file *f, struct obj_blob *b, size_t size,
		     off_t off, struct fs_reply *r)
{
	struct fs *fs = f->node->fs;
	uint64_t end = (uint64_t)off + size;
	/* the import told .mlfs/errors of a failure, once */
	int rc = ds_feed_wait(b->feed, end, false, NULL);

	if (rc < 0)
		return rc;
	if ((uint64_t)off >= b->size)
		return fs_reply_buf(r, NULL, 0);
	if (size > b->size - (uint64_t)off)
		size = (size_t)(b->size - (uint64_t)off);
	atomic_fetch_add(&fs->bytes_read, size);
	return fs_reply_fd(r, ds_feed_fd(b->feed), off, size);
}

int obj_blob_read(struct fs_file *f, struct obj_blob *b, size_t size,
		  off_t off, struct fs_reply *r)
{
	struct fs *fs = f->node->fs;
	char *buf;
	ssize_t n;

	if (b->feed)
		return feed_read(f, b, size, off, r);
	if (!b->key[0] || (uint64_t)off >= b->size)
		return fs_reply_buf(r, NULL, 0);
	if (size > b->size - (uint64_t)off)
		size = (size_t)(b->size - (uint64_t)off);
	atomic_fetch_add(&fs->bytes_read, size);
	if (b->fd >= 0)
		return fs_reply_fd(r, b->fd, off, size);
	buf = malloc(size);
	if (!buf)
		return -ENOMEM;
	n = store_get_range(fs->store, b->key, buf, size, (uint64_t)off);
	/* the manifest's size is part of what the blob must be */
	if (n >= 0 && (size_t)n != size)
		n = -EBADMSG;
	if (n < 0)
		n = repo_blob_error(fs, f->uid, f->node->path, b->key, (int)n);
	else
		fs_reply_buf(r, buf, (size_t)n);
	free(buf);
	/*
	 * The blob left the store under an open handle: its version was
	 * removed and its grace is over (reap.c).  Stale, as NFS says of a
	 * handle whose file is gone; not "no such file", which it was.
	 */
	if (n == -ENOENT)
		return -ESTALE;
	return n < 0 ? (int)n : 0;
}

int obj_file_blob(struct node *n, char *key, size_t len)
{
	const char *h = NULL;
	json_t *man, *files;
	int rc;

	rc = repo_version(n->fs, obj_kind(n), obj_name(n), obj_ver(n), &man);
	if (rc < 0)
		return rc == -ENOENT ? -ENODATA : rc;
	files = json_object_get(man, "files");
	if (ds_is_pending(man))
		rc = -EREMOTE; /* a lazy import not read yet */
	else if (files) /* a version of several files: this one's */
		h = json_string_value(json_object_get(
			json_object_get(files, n->name), "hash"));
	else /* a version of one file */
		h = json_string_value(json_object_get(man, "hash"));
	if (h)
		repo_blob_key(h, key, len);
	json_decref(man);
	return rc < 0 ? rc : h ? 0 : -ENODATA;
}

int obj_vfile_info(struct node *n, char *key, size_t klen, uint64_t *size,
		   time_t *mtime)
{
	json_t *man, *f;
	const char *h;
	int rc = repo_version(n->fs, obj_kind(n), obj_name(n), obj_ver(n), &man);

	if (rc < 0)
		return rc;
	f = json_object_get(json_object_get(man, "files"), n->name);
	h = json_string_value(json_object_get(f, "hash"));
	if (h) {
		repo_blob_key(h, key, klen);
		*size = (uint64_t)json_integer_value(json_object_get(f, "size"));
	}
	if (mtime)
		*mtime = (time_t)json_integer_value(json_object_get(
			json_object_get(man, "lineage"), "created_unix"));
	json_decref(man);
	return h ? 0 : -ENODATA;
}

int obj_vfile_open(struct fs_file *f, const struct fs_ctx *ctx)
{
	struct obj_blob *b;
	char key[96];
	uint64_t size = 0;
	int rc;

	(void)ctx;
	if ((f->flags & O_ACCMODE) != O_RDONLY)
		return -EACCES;
	rc = obj_vfile_info(f->node, key, sizeof(key), &size, NULL);
	if (rc == -ENOENT && !obj_ver(f->node))
		rc = -ENODATA; /* no version yet */
	if (rc < 0 && rc != -ENODATA)
		return rc;
	rc = obj_blob_open(f->node->fs, rc == 0 ? key : NULL, size, &b);
	if (rc < 0)
		return rc;
	f->priv = b;
	/* the latest changes under cached sizes: read it to its end */
	f->keep_cache = obj_ver(f->node) != 0;
	f->direct_io = !f->keep_cache;
	return 0;
}

int obj_vfile_read(struct fs_file *f, size_t size, off_t off,
		   struct fs_reply *r)
{
	return obj_blob_read(f, f->priv, size, off, r);
}

int obj_vfile_fsync(struct fs_file *f, const struct fs_ctx *ctx)
{
	return obj_blob_sync(f->node, f->priv, ctx);
}

void obj_vfile_release(struct fs_file *f)
{
	obj_blob_close(f->priv);
}

int obj_vfile_getattr(struct node *n, struct stat *st)
{
	char key[96];
	uint64_t size = 0;
	time_t mtime = 0;
	int rc = obj_attr(n, st, false);

	if (rc < 0)
		return rc;
	rc = obj_vfile_info(n, key, sizeof(key), &size, &mtime);
	if (rc < 0 && rc != -ENODATA && (rc != -ENOENT || obj_ver(n)))
		return rc;
	st->st_size = (off_t)size;
	if (mtime)
		st->st_mtim.tv_sec = mtime;
	return 0;
}

/*
 * Where a stored file's content is (FSx's hsm_state): with a local store
 * everything is on the store's disk ("synced"); on S3 the cache says.
 */
int obj_file_xattr(struct node *n, const char *name, char *out,
		   size_t outlen)
{
	struct fs *fs = n->fs;
	char key[128];
	int rc = obj_file_blob(n, key, sizeof(key));

	if (strcmp(name, "user.mlfs.state") == 0) {
		if (rc == -EREMOTE) /* in the bucket only: not imported yet */
			return snprintf(out, outlen, "released");
		if (rc < 0)
			return snprintf(out, outlen, "local");
		if (bcache_is_cache(fs->store))
			return bcache_state(fs->store, key, out, outlen) < 0
				       ? -EIO
				       : (int)strlen(out);
		return snprintf(out, outlen, "synced");
	}
	if (strcmp(name, "user.mlfs.cached_bytes") == 0) {
		long long bytes = 0;
		struct stat st;

		if (rc == 0 && bcache_is_cache(fs->store))
			bytes = bcache_cached_bytes(fs->store, key);
		else if (rc != -EREMOTE && n->type->getattr &&
			 n->type->getattr(n, &st) == 0)
			bytes = st.st_size;
		return snprintf(out, outlen, "%lld", bytes < 0 ? 0 : bytes);
	}
	return -ENODATA;
}

int obj_path_blob(struct fs *fs, const char *path, char *key, size_t len)
{
	struct node *n;
	int rc = node_walk(fs, path, &n);

	if (rc < 0)
		return rc == -ENOENT || rc == -ENOTDIR ? -ENODATA : rc;
	rc = n->type->blob ? n->type->blob(n, key, len) : -ENODATA;
	node_walk_free(n);
	return rc;
}

int obj_path_import(struct fs *fs, const char *path, struct problem *pb)
{
	char key[128];
	struct node *n;
	json_t *man;
	int rc = node_walk(fs, path, &n);

	if (rc < 0)
		return -ENODATA;
	rc = n->type->blob ? n->type->blob(n, key, sizeof(key)) : -ENODATA;
	/* only a dataset's version is imported lazily (an s3:// source) */
	if (rc == -EREMOTE && obj_kind(n) == &repo_datasets) {
		rc = ds_version_ready(fs, obj_name(n), obj_ver(n), &man, pb);
		json_decref(man);
	} else if (rc == 0) {
		rc = 0; /* here already */
	} else {
		rc = -ENODATA;
	}
	node_walk_free(n);
	return rc;
}

/* How often a wait for the bucket looks for the caller's interrupt. */
#define OBJ_SYNC_POLL_MS 100

static int64_t obj_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int obj_sync(struct fs *fs, const char *key, const char *path,
	     const struct fs_ctx *ctx)
{
	int64_t limit = (int64_t)fs->opts.sync_timeout * 1000;
	int64_t start = obj_now_ms();
	struct problem pb = { 0 };
	int rc;

	if (!bcache_is_cache(fs->store))
		return 0;
	/*
	 * In slices, between which the caller's interrupt is looked at:
	 * the kernel holds a signalled caller of fsync (SIGKILL included)
	 * until we answer, so an outage must not keep it.  Each slice asks
	 * for the export at once again, as a waiter wants.
	 */
	for (;;) {
		rc = bcache_sync(fs->store, key, OBJ_SYNC_POLL_MS);
		if (rc != -ETIMEDOUT)
			return rc;
		if (fs_interrupted(ctx))
			return -EINTR;
		if (limit > 0 && obj_now_ms() - start >= limit)
			break;
	}
	snprintf(pb.path, sizeof(pb.path), "%s", path);
	problem_set(&pb, 0, 0,
		    "not in the bucket after %u s (sync_timeout); the export "
		    "stays queued and is retried",
		    fs->opts.sync_timeout);
	fs_problem(fs, ctx ? ctx->uid : 0, &pb);
	return -ETIMEDOUT;
}

int obj_blob_sync(struct node *n, struct obj_blob *b,
		  const struct fs_ctx *ctx)
{
	const char *key = b ? b->key : "";

	/* a lazy version's: once imported, its blob's */
	if (b && b->feed) {
		int rc = ds_feed_wait(b->feed, b->size, true, NULL);

		if (rc < 0)
			return rc;
		key = ds_feed_key(b->feed);
	}
	/* fsync on S3: wait until the bucket has the content */
	if (!key[0])
		return 0;
	return obj_sync(n->fs, key, n->path, ctx);
}
