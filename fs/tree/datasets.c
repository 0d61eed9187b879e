/* SPDX-License-Identifier: MIT */
/*
 * datasets/: the node tables of datasets, their versions and aliases, and
 * the data.csv handles.  The repository logic is in repo/; this file turns
 * file operations into its calls.  Any FUSE worker enters.
 *
 *   datasets/<ds>/            mkdir / rmdir
 *     data.csv                the latest version; writable: a handle
 *                             stages a private copy, and the first flush
 *                             after new bytes publishes it as a version
 *     source                  write a local path: import it as a version
 *     schema                  the latest schema; write JSON to override
 *     stats                   the latest stats
 *     latest -> v<n>          kept by the filesystem
 *     <alias> -> v<n>         ln -s / ln -sfn / rm
 *     v<n>/                   immutable: data.csv schema stats lineage
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "collect.h"
#include "csv.h"
#include "datasets.h"
#include "hostfile.h"
#include "repo.h"
#include "objects.h"
#include "fs.h"
#include "hash.h"
#include "label.h"
#include "next.h"
#include "prep.h"
#include "source.h"
#include "stagescan.h"
#include "store.h"

/* node->comp[1] is the dataset, comp[2] the version directory */
static const char *node_ds(struct node *n)
{
	return obj_name(n);
}

static unsigned node_ver(struct node *n)
{
	return obj_ver(n);
}

/* Owner, mode bits and times of anything inside a dataset. */
/* --- data.csv of a version: immutable, served from the blob --- */

/* The blob of a version manifest (empty if it has none). */
static int open_blob(struct fs *fs, json_t *man, struct obj_blob **out)
{
	return obj_blob_open(fs, json_string_value(json_object_get(man, "blob")),
			     (uint64_t)json_integer_value(
				     json_object_get(man, "size")),
			     out);
}

/* The manifest of a version, imported first if it was lazy. */
static int version_ready(struct node *n, unsigned ver, json_t **man)
{
	struct problem pb = { 0 };
	int rc = ds_version_ready(n->fs, node_ds(n), ver, man, &pb);

	if (rc < 0 && pb.msg[0])
		fs_problem(n->fs, 0, &pb);
	return rc;
}

/*
 * The blob of version ver (0: the latest) to read: a lazy one is read
 * as its import lands (ds_version_open), not after it.
 */
static int open_version_blob(struct node *n, unsigned ver,
			     struct obj_blob **out)
{
	struct problem pb = { 0 };
	struct ds_feed *feed;
	json_t *man;
	int rc = ds_version_open(n->fs, node_ds(n), ver, &man, &feed, &pb);

	if (rc < 0 && pb.msg[0])
		fs_problem(n->fs, 0, &pb);
	if (rc < 0)
		return rc;
	rc = feed ? obj_blob_open_feed(feed, out) : open_blob(n->fs, man, out);
	json_decref(man);
	return rc;
}

static int vdata_open(struct fs_file *f, const struct fs_ctx *ctx)
{
	struct node *n = f->node;
	struct obj_blob *bf;
	int rc;

	(void)ctx;
	if ((f->flags & O_ACCMODE) != O_RDONLY)
		return -EACCES;
	rc = open_version_blob(n, node_ver(n), &bf);
	if (rc < 0)
		return rc;
	f->priv = bf;
	f->keep_cache = true; /* immutable: the page cache stays valid */
	return 0;
}

static int vdata_read(struct fs_file *f, size_t size, off_t off,
		      struct fs_reply *r)
{
	return obj_blob_read(f, f->priv, size, off, r);
}

static int vdata_fsync(struct fs_file *f, const struct fs_ctx *ctx)
{
	return obj_blob_sync(f->node, f->priv, ctx);
}

static void vdata_release(struct fs_file *f)
{
	obj_blob_close(f->priv);
}

static int vdata_getattr(struct node *n, struct stat *st)
{
	json_t *man;
	int rc = obj_attr(n, st, false);

	if (rc < 0)
		return rc;
	rc = repo_version(n->fs, &repo_datasets, node_ds(n), node_ver(n), &man);
	if (rc < 0)
		return rc;
	st->st_size = (off_t)json_integer_value(json_object_get(man, "size"));
	st->st_mtim.tv_sec = (time_t)json_integer_value(json_object_get(
		json_object_get(man, "lineage"), "created_unix"));
	st->st_ctim = st->st_mtim;
	json_decref(man);
	return 0;
}

static int version_show(struct node *n, struct strbuf *out,
			int (*render)(json_t *, struct strbuf *))
{
	json_t *man;
	/* the lineage is known at once; schema and stats need the data */
	int rc = render == ds_render_lineage
			 ? repo_version(n->fs, &repo_datasets, node_ds(n),
				      node_ver(n), &man)
			 : version_ready(n, node_ver(n), &man);

	if (rc == -ENOENT && node_ver(n) == 0)
		return 0; /* no version yet: empty */
	if (rc < 0)
		return rc;
	rc = render(man, out);
	json_decref(man);
	return rc;
}

static int schema_show(struct node *n, struct strbuf *out)
{
	return version_show(n, out, ds_render_schema);
}

static int stats_show(struct node *n, struct strbuf *out)
{
	return version_show(n, out, ds_render_stats);
}

static int lineage_show(struct node *n, struct strbuf *out)
{
	return version_show(n, out, ds_render_lineage);
}

/* next: blocks until a newer version than this one (or latest) exists */
static int next_open(struct fs_file *f, const struct fs_ctx *ctx)
{
	(void)ctx;
	if ((f->flags & O_ACCMODE) != O_RDONLY)
		return -EACCES;
	f->direct_io = true; /* no cache: every read asks anew */
	return 0;
}

static int next_file_read(struct fs_file *f, size_t size, off_t off,
			  struct fs_reply *r)
{
	struct node *n = f->node;

	return next_read(n->fs, obj_kind(n), obj_name(n), obj_ver(n), r, size,
			 off);
}

static int next_getattr(struct node *n, struct stat *st)
{
	int rc = obj_attr(n, st, false);

	st->st_size = 0; /* an answer that comes when it comes */
	return rc;
}

#define NEXT_TYPE                                                             \
	{ "next", S_IFREG | 0444, NODE_F_STREAM, .open = next_open,           \
	  .read = next_file_read, .getattr = next_getattr }

static const struct node_type version_files[] = {
	{ "data.csv", S_IFREG | 0444, NODE_F_IMMUTABLE,
	  .open = vdata_open, .read = vdata_read, .release = vdata_release,
	  .fsync = vdata_fsync,
	  .getattr = vdata_getattr, .blob = obj_file_blob,
	  .xattr = obj_file_xattr },
	{ "schema", S_IFREG | 0444, NODE_F_IMMUTABLE, .show = schema_show,
	  .getattr = obj_file_getattr },
	{ "stats", S_IFREG | 0444, NODE_F_IMMUTABLE, .show = stats_show,
	  .getattr = obj_file_getattr },
	{ "lineage", S_IFREG | 0444, NODE_F_IMMUTABLE, .show = lineage_show,
	  .getattr = obj_file_getattr },
	NEXT_TYPE,
	{ NULL },
};

static const struct node_type version_type = {
	NULL, S_IFDIR | 0555, 0, .children = version_files,
	.getattr = obj_version_getattr, .refuse = "versions are immutable",
};

/* --- data.csv: the current version, writable --- */

struct ds_handle {
	pthread_mutex_t lock;
	struct obj_blob *blob; /* the version this handle reads */
	int fd;                 /* private staging copy, or -1 */
	char path[PATH_MAX];    /* of the staging copy */
	uint64_t staged_size;   /* bytes: high-water mark of the copy */
	bool truncated;         /* opened with O_TRUNC */
	int failed;             /* -errno of a write that failed, else 0:
				   the copy lacks bytes, it never publishes */
	/* appends judged as they arrive (feed_write) */
	bool feed_started;      /* feed_start has run */
	bool feeding;           /* every write so far landed at feed_off */
	uint64_t feed_off;      /* bytes: where the next checked byte goes */
	uint64_t feed_base;     /* bytes: the copy before the first check */
	struct csv_feed feed;
	/* the copy scanned as it grows: only while every write appends */
	struct stage_scan *scan;
	bool scan_tried;        /* one start a copy: none after a cancel */
};

/*
 * Make the handle's private copy: empty, or a copy of the version it
 * opened (random writes and O_APPEND change that content).  Under h->lock.
 */
static int stage(struct fs_file *f, bool empty)
{
	struct ds_handle *h = f->priv;
	struct fs *fs = f->node->fs;
	int rc;

	if (h->fd >= 0)
		return 0;
	rc = store_tmp_path(fs->store, h->path, sizeof(h->path));
	if (rc < 0)
		return rc;
	h->fd = open(h->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (h->fd < 0)
		return -errno;
	h->staged_size = 0;
	if (!empty && h->blob && h->blob->key[0]) {
		if (h->blob->fd >= 0) {
			rc = host_copy(h->blob->fd, h->fd, h->blob->size);
		} else {
			char *buf = NULL;
			size_t len;

			rc = store_get(fs->store, h->blob->key, SIZE_MAX, &buf,
				       &len);
			rc = repo_blob_error(fs, f->uid, f->node->path,
					   h->blob->key, rc);
			if (rc == 0 && pwrite(h->fd, buf, len, 0) != (ssize_t)len)
				rc = -EIO;
			free(buf);
		}
		if (rc < 0) {
			close(h->fd);
			unlink(h->path);
			h->fd = -1;
			return rc;
		}
		h->staged_size = h->blob->size;
	}
	return 0;
}

/*
 * Start judging appends: from the header of an empty copy, or after the
 * last record of the version being appended to (its header read for the
 * field count).  A copy that does not end a record, or whose header is
 * longer than we look at, is judged at close only.  Under h->lock.
 */
static void feed_start(struct ds_handle *h)
{
	struct csv_feed hdr = { 0 };
	struct problem pb;
	char buf[65536], last;
	ssize_t n;

	h->feed_started = true;
	memset(&h->feed, 0, sizeof(h->feed));
	h->feed_off = h->feed_base = h->staged_size;
	if (h->staged_size == 0) {
		h->feeding = true;
		return;
	}
	if (pread(h->fd, &last, 1, (off_t)h->staged_size - 1) != 1 ||
	    last != '\n')
		return;
	n = pread(h->fd, buf, sizeof(buf), 0);
	for (ssize_t i = 0; i < n && !hdr.ncols; i++)
		if (csv_feed(&hdr, buf + i, 1, &pb) < 0)
			return;
	if (!hdr.ncols)
		return;
	h->feed.ncols = hdr.ncols;
	h->feed.line = 1;
	h->feeding = true;
}

/*
 * Judge the bytes of a write that lands where the last one ended (>>,
 * O_APPEND, a sequential cp): a bad record fails this write, and the
 * handle never publishes.  A write elsewhere ends the checks: close
 * judges the whole file.  0 or -EINVAL with pb.  Under h->lock.
 */
static int feed_write(struct fs_file *f, const char *buf, size_t size,
		      off_t off, struct problem *pb)
{
	struct ds_handle *h = f->priv;
	char chunk[65536];
	uint64_t lines = 0;
	int rc;

	if (!h->feed_started)
		feed_start(h);
	if (!h->feeding)
		return 0;
	if ((uint64_t)off != h->feed_off) {
		h->feeding = false;
		return 0;
	}
	rc = csv_feed(&h->feed, buf, size, pb);
	if (rc == 0) {
		h->feed_off += size;
		return 0;
	}
	/* Name the line in the whole file: the records before the checks
	 * are counted only now, on the error path. */
	for (uint64_t at = 0; h->feed.ncols && at < h->feed_base;) {
		ssize_t n = pread(h->fd, chunk,
				  h->feed_base - at < sizeof(chunk)
					  ? (size_t)(h->feed_base - at)
					  : sizeof(chunk),
				  (off_t)at);

		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			lines += chunk[i] == '\n';
		at += (uint64_t)n;
	}
	if (h->feed_base)
		pb->line += (unsigned)lines;
	return rc;
}

/* Past this many bytes a copy is scanned as it grows (stagescan.h). */
#define SCAN_AHEAD_MIN ((uint64_t)16 << 20)

/* The copy is about to change other than by an append. */
static void scan_drop(struct ds_handle *h)
{
	stage_scan_cancel(h->scan);
	h->scan = NULL;
}

/* An append of the copy landed: the scan, if it is worth one, follows. */
static void scan_follow(struct fs_file *f)
{
	struct ds_handle *h = f->priv;

	if (!h->scan && !h->scan_tried && h->staged_size >= SCAN_AHEAD_MIN) {
		h->scan_tried = true;
		h->scan = stage_scan_start(h->fd, f->node->fs->opts.max_file);
	}
	if (h->scan)
		stage_scan_grew(h->scan, h->staged_size);
}

static void unstage(struct ds_handle *h)
{
	scan_drop(h);
	h->scan_tried = false;
	if (h->fd < 0)
		return;
	close(h->fd);
	unlink(h->path);
	h->fd = -1;
}

static int open_latest_blob(struct fs_file *f, struct obj_blob **out)
{
	struct node *n = f->node;
	bool trunc = (f->flags & O_ACCMODE) != O_RDONLY && (f->flags & O_TRUNC);
	json_t *man;
	int rc;

	/* Replacing the content does not need a lazy version's old bytes. */
	if (!trunc && (f->flags & O_ACCMODE) == O_RDONLY) {
		rc = open_version_blob(n, 0, out);
		if (rc != -ENOENT)
			return rc;
	}
	rc = trunc ? repo_version(n->fs, &repo_datasets, node_ds(n), 0, &man)
		   : version_ready(n, 0, &man);
	if (rc == 0 && ds_is_pending(man)) {
		json_decref(man);
		man = json_object();
	}
	if (rc == -ENOENT) {
		json_t *rec;

		/* a dataset without versions reads as empty */
		rc = repo_get(n->fs, &repo_datasets, node_ds(n), &rec);
		json_decref(rec);
		if (rc < 0)
			return rc;
		man = json_object();
	} else if (rc < 0) {
		return rc;
	}
	rc = open_blob(n->fs, man, out);
	json_decref(man);
	return rc;
}

static int data_open(struct fs_file *f, const struct fs_ctx *ctx)
{
	struct ds_handle *h;
	int rc;

	(void)ctx;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	pthread_mutex_init(&h->lock, NULL);
	h->fd = -1;
	rc = open_latest_blob(f, &h->blob);
	if (rc < 0)
		goto out_free;
	f->priv = h;
	/*
	 * Readers and writers share one inode, whose size the kernel caches
	 * for all: a writer's staged size (SEEK_END, O_TRUNC) would cut or
	 * stretch what a cached reader sees.  So no handle uses the page
	 * cache; each reads what its own handle holds.
	 */
	f->direct_io = true;
	if ((f->flags & O_ACCMODE) != O_RDONLY && (f->flags & O_TRUNC)) {
		/*
		 * Truncation alone is not new bytes: shells open with O_TRUNC
		 * and flush a duplicate before writing.  An empty result is
		 * reported at release.
		 */
		rc = stage(f, true);
		if (rc < 0)
			goto out_free;
		h->truncated = true;
	}
	return 0;
out_free:
	obj_blob_close(h->blob);
	pthread_mutex_destroy(&h->lock);
	free(h);
	f->priv = NULL;
	return rc;
}

static int data_read(struct fs_file *f, size_t size, off_t off,
		     struct fs_reply *r)
{
	struct ds_handle *h = f->priv;
	char *buf;
	ssize_t n;

	pthread_mutex_lock(&h->lock);
	if (h->fd < 0) {
		pthread_mutex_unlock(&h->lock);
		return obj_blob_read(f, h->blob, size, off, r);
	}
	buf = malloc(size);
	if (!buf) {
		pthread_mutex_unlock(&h->lock);
		return -ENOMEM;
	}
	n = pread(h->fd, buf, size, off);
	pthread_mutex_unlock(&h->lock);
	if (n < 0) {
		free(buf);
		return -errno;
	}
	fs_reply_buf(r, buf, (size_t)n);
	free(buf);
	return 0;
}

static ssize_t data_write(struct fs_file *f, const char *buf, size_t size,
			  off_t off)
{
	struct ds_handle *h = f->priv;
	struct fs *fs = f->node->fs;
	struct problem pb = { 0 };
	bool appends;
	ssize_t n;
	int rc;

	pthread_mutex_lock(&h->lock);
	if (h->failed) {
		/* as a local file's writeback error: the handle stays failed */
		pthread_mutex_unlock(&h->lock);
		return h->failed;
	}
	rc = stage(f, false);
	if (rc < 0) {
		h->failed = rc;
		pthread_mutex_unlock(&h->lock);
		return rc;
	}
	if (f->flags & O_APPEND)
		off = (off_t)h->staged_size;
	if ((uint64_t)off + size > fs->opts.max_file) {
		h->failed = -EFBIG;
		pthread_mutex_unlock(&h->lock);
		return -EFBIG;
	}
	snprintf(pb.path, sizeof(pb.path), "%s", f->node->path);
	rc = feed_write(f, buf, size, off, &pb);
	if (rc < 0) {
		/* this request's bytes are dropped; the version is not made */
		scan_drop(h);
		h->failed = rc;
		f->gen++; /* close reports it */
		pthread_mutex_unlock(&h->lock);
		fs_problem(fs, f->uid, &pb);
		return rc;
	}
	appends = (uint64_t)off == h->staged_size;
	if (!appends)
		scan_drop(h);
	n = store_write_full(h->fd, buf, size, off);
	if (n == 0)
		n = (ssize_t)size;
	if (n < 0) {
		h->failed = (int)n;
		f->gen++; /* close reports it */
	} else {
		if ((uint64_t)off + (uint64_t)n > h->staged_size)
			h->staged_size = (uint64_t)off + (uint64_t)n;
		f->gen++;
		if (appends)
			scan_follow(f);
	}
	pthread_mutex_unlock(&h->lock);
	return n;
}

static int data_truncate(struct fs_file *f, off_t size)
{
	struct ds_handle *h = f->priv;
	int rc;

	if ((uint64_t)size > f->node->fs->opts.max_file)
		return -EFBIG;
	pthread_mutex_lock(&h->lock);
	rc = h->failed;
	if (rc == 0)
		rc = stage(f, size == 0);
	scan_drop(h); /* a page it maps may be cut: SIGBUS */
	if (size == 0)
		h->scan_tried = false;
	if (rc == 0 && ftruncate(h->fd, size) < 0) {
		rc = -errno;
		h->failed = rc;
		f->gen++; /* close reports it */
	}
	if (rc == 0) {
		h->staged_size = (uint64_t)size;
		f->gen++;
		h->feed_started = false; /* judged afresh from here */
		h->feeding = false;
		if (size == 0)
			feed_start(h);
	}
	pthread_mutex_unlock(&h->lock);
	return rc;
}

/* The caller's command name, for lineage. */
static void proc_comm(pid_t pid, char *out, size_t len)
{
	char path[64];
	FILE *fp;

	snprintf(out, len, "?");
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	fp = fopen(path, "re");
	if (!fp)
		return;
	if (fgets(out, (int)len, fp))
		out[strcspn(out, "\n")] = '\0';
	fclose(fp);
}

static int data_flush(struct fs_file *f, const struct fs_ctx *ctx,
		      struct problem *pb)
{
	struct ds_handle *h = f->priv;
	struct fs *fs = f->node->fs;
	struct repo_origin origin = { "write", NULL, NULL, ctx->uid,
				      ctx->pid, 0 };
	char comm[64];
	unsigned ver;
	bool created;
	int rc;

	if (f->gen == f->committed)
		return 0; /* only a flush that carries new bytes commits */
	pthread_mutex_lock(&h->lock);
	/* Another flush of this handle (a forked child's close) may have
	 * committed these bytes while we waited: nothing is left to do. */
	if (f->gen == f->committed) {
		pthread_mutex_unlock(&h->lock);
		return 0;
	}
	/* A write failed: what the copy holds is not what was written, even
	 * if space came back since.  Every close of the handle says so. */
	rc = h->failed;
	if (rc < 0)
		goto out_unlock;
	rc = stage(f, true);
	if (rc < 0)
		goto out_unlock;
	proc_comm(ctx->pid, comm, sizeof(comm));
	origin.detail = comm;
	rc = -EAGAIN;
	if (h->scan) {
		struct csv_info *info;
		char hash[HASH_HEX_LEN + 1];

		rc = stage_scan_end(h->scan, h->staged_size, &info, hash, pb);
		h->scan = NULL;
		if (rc == 0)
			rc = ds_publish_scanned(fs, node_ds(f->node), h->path,
						h->fd, &origin, info, hash,
						&ver, &created, pb);
	}
	if (rc == -EAGAIN)
		rc = ds_publish(fs, node_ds(f->node), h->path, h->fd, &origin,
				&ver, &created, pb);
	if (rc < 0)
		goto out_unlock;
	/* The copy now belongs to the store; later writes start a new one. */
	close(h->fd);
	h->fd = -1;
	h->feed_started = false;
	h->scan_tried = false;
	f->committed = f->gen;
	{
		json_t *man;
		struct obj_blob *bf;

		if (repo_version(fs, &repo_datasets, node_ds(f->node), ver, &man) == 0) {
			if (open_blob(fs, man, &bf) == 0) {
				obj_blob_close(h->blob);
				h->blob = bf;
			}
			json_decref(man);
		}
	}
	if (created)
		fs_log(fs, 6, "datasets/%s: v%u from %s", node_ds(f->node),
		       ver, comm);
out_unlock:
	pthread_mutex_unlock(&h->lock);
	return rc;
}

static void data_release(struct fs_file *f)
{
	struct ds_handle *h = f->priv;

	if (!h)
		return;
	if (h->truncated && f->gen == 0) {
		struct problem pb = { 0 };

		snprintf(pb.path, sizeof(pb.path), "%s", f->node->path);
		problem_set(&pb, 1, 1,
			    "empty file: truncated and closed without data, "
			    "no version made");
		fs_problem(f->node->fs, f->uid, &pb);
	}
	unstage(h);
	obj_blob_close(h->blob);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

static int data_fsync(struct fs_file *f, const struct fs_ctx *ctx)
{
	struct ds_handle *h = f->priv;
	int rc = 0;

	/* Committed versions are durable at close; a copy in progress can
	 * be synced, though it is not a version until flush. */
	pthread_mutex_lock(&h->lock);
	if (h->fd >= 0 && fsync(h->fd) < 0)
		rc = -errno;
	pthread_mutex_unlock(&h->lock);
	if (rc == 0)
		rc = obj_blob_sync(f->node, h->blob, ctx);
	return rc;
}

/* A write handle sees its staged copy: lseek(SEEK_END), fstat. */
static int data_fgetattr(struct fs_file *f, struct stat *st)
{
	struct ds_handle *h = f->priv;

	if (!h)
		return 0;
	pthread_mutex_lock(&h->lock);
	if (h->fd >= 0)
		st->st_size = (off_t)h->staged_size;
	pthread_mutex_unlock(&h->lock);
	return 0;
}

static int data_getattr(struct node *n, struct stat *st)
{
	json_t *man;
	int rc = obj_attr(n, st, false);

	if (rc < 0)
		return rc;
	if (repo_version(n->fs, &repo_datasets, node_ds(n), 0, &man) == 0) {
		st->st_size = (off_t)json_integer_value(
			json_object_get(man, "size"));
		st->st_mtim.tv_sec = (time_t)json_integer_value(json_object_get(
			json_object_get(man, "lineage"), "created_unix"));
		st->st_ctim = st->st_mtim;
		json_decref(man);
	}
	return 0;
}

/* --- source: import a local file --- */

static int source_show(struct node *n, struct strbuf *out)
{
	json_t *man;
	const char *by, *detail;
	int rc = repo_version(n->fs, &repo_datasets, node_ds(n), 0, &man);

	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	by = json_string_value(
		json_object_get(json_object_get(man, "lineage"), "made_by"));
	detail = json_string_value(
		json_object_get(json_object_get(man, "lineage"), "detail"));
	if (by && strcmp(by, "source") == 0 && detail)
		rc = sb_printf(out, "%s\n", detail);
	json_decref(man);
	return rc;
}

/*
 * A source line: a host path (read as the writer, relative to their
 * working directory) or an s3:// object, imported lazily: the write
 * HEADs the object and makes a version pinned to its ETag at once; the
 * first read of the version's data, schema or stats fetches it, checks
 * it is the pinned object and fills in hash, schema and stats.  When the
 * object changes, the next poll (every import_ttl) makes a new version.
 */
static int source_line(const char *text, size_t len, char *src,
		       size_t srclen, struct problem *pb)
{
	while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		len--;
	if (len == 0)
		return problem_set(pb, 1, 1, "empty source (write a path)");
	if (memchr(text, '\n', len) || memchr(text, '\0', len))
		return problem_set(pb, 1, 1, "source must be one line");
	if (len >= srclen - 64)
		return problem_set(pb, 1, 1, "source path too long");
	snprintf(src, srclen, "%.*s", (int)len, text);
	return 0;
}

static int source_store(struct node *n, const char *text, size_t len,
			const struct fs_ctx *ctx, struct problem *pb)
{
	struct host_user writer = { ctx->uid, ctx->gid, ctx->pid };
	char src[PATH_MAX], where[PATH_MAX];
	unsigned ver;
	bool created;
	int rc = source_line(text, len, src, sizeof(src), pb);

	if (rc == 0)
		rc = source_import(n->fs, node_ds(n), src, &writer, "source",
				   &ver, &created, where, sizeof(where), pb);
	/* kept for the schedule, which imports it again */
	if (rc == 0)
		rc = repo_record_set(n->fs, &repo_datasets, node_ds(n),
				     "source", json_string(where));
	return rc;
}

/* A schema write is judged once its JSON value is complete. */
static int schema_check(struct node *n, const char *text, size_t len,
			const struct fs_ctx *ctx, struct problem *pb)
{
	json_t *j = json_loadb(text, len, 0, NULL);

	(void)ctx;
	if (!j)
		return 0; /* not complete yet (or never: flush says why) */
	json_decref(j);
	return ds_check_schema(n->fs, node_ds(n), text, pb);
}

/* A source is resolved once its line is complete: it exists, the
 * writer may read it (a local file), or it answers HEAD (S3). */
static int source_judge(struct node *n, const char *text, size_t len,
			const struct fs_ctx *ctx, struct problem *pb)
{
	struct host_user writer = { ctx->uid, ctx->gid, ctx->pid };
	struct problem ignored = { 0 };
	char src[PATH_MAX];

	if (!len || text[len - 1] != '\n')
		return 0;
	if (source_line(text, len, src, sizeof(src), &ignored) < 0)
		return 0; /* store says why */
	return source_check(n->fs, src, &writer, pb);
}

static int schema_store(struct node *n, const char *text, size_t len,
			const struct fs_ctx *ctx, struct problem *pb)
{
	struct repo_origin origin = { "schema", NULL, NULL, ctx->uid,
				      ctx->pid, 0 };

	(void)len;
	return ds_set_schema(n->fs, node_ds(n), text, &origin, pb);
}

/*
 * prepare: a spec of prep steps written here starts job <d>-prepare-<n>
 * (prep.c), judged in the write that completes it; reads back the path
 * of the last job it started.  Anyone may write it: the spec is judged
 * as the writer (reading the input, writing the output dataset), as a
 * train spec is.
 */
static int prepare_show(struct node *n, struct strbuf *out)
{
	char job[NAME_MAX + 32];

	if (prep_last_job(n->fs, obj_name(n), job, sizeof(job)) < 0)
		return 0;
	return sb_printf(out, "jobs/%s\n", job);
}

static int prepare_check(struct node *n, const char *text, size_t len,
			 const struct fs_ctx *ctx, struct problem *pb)
{
	return prep_check(n->fs, obj_name(n), text, len, false, ctx, pb);
}

static int prepare_store(struct node *n, const char *text, size_t len,
			 const struct fs_ctx *ctx, struct problem *pb)
{
	char job[NAME_MAX + 32];
	int rc;

	(void)len;
	rc = prep_submit(n->fs, obj_name(n), text, ctx, job, sizeof(job), pb);
	if (rc == 0)
		fs_log(n->fs, 6, "datasets/%s: prepare started jobs/%s",
		       obj_name(n), job);
	return rc;
}

/*
 * watch and schedule (collect.h): a landing directory followed with
 * inotify, and the source imported again every interval.  0666: who may
 * set them is the dataset's mode (its writers), judged in the write.
 */
static int watch_show(struct node *n, struct strbuf *out)
{
	return collect_show_watch(n->fs, node_ds(n), out);
}

static int watch_check(struct node *n, const char *text, size_t len,
		       const struct fs_ctx *ctx, struct problem *pb)
{
	return collect_set_watch(n->fs, node_ds(n), text, len, ctx, false,
				 pb);
}

static int watch_store(struct node *n, const char *text, size_t len,
		       const struct fs_ctx *ctx, struct problem *pb)
{
	return collect_set_watch(n->fs, node_ds(n), text, len, ctx, true, pb);
}

static int schedule_show(struct node *n, struct strbuf *out)
{
	return collect_show_schedule(n->fs, node_ds(n), out);
}

static int schedule_check(struct node *n, const char *text, size_t len,
			  const struct fs_ctx *ctx, struct problem *pb)
{
	return collect_set_schedule(n->fs, node_ds(n), text, len, ctx, false,
				    pb);
}

static int schedule_store(struct node *n, const char *text, size_t len,
			  const struct fs_ctx *ctx, struct problem *pb)
{
	return collect_set_schedule(n->fs, node_ds(n), text, len, ctx, true,
				    pb);
}

static const struct node_type dataset_files[] = {
	{ "data.csv", S_IFREG | 0644, NODE_F_VOLATILE, .open = data_open,
	  .read = data_read, .write = data_write, .truncate = data_truncate,
	  .flush = data_flush, .fsync = data_fsync, .release = data_release,
	  .getattr = data_getattr, .fgetattr = data_fgetattr,
	  .blob = obj_file_blob, .xattr = obj_file_xattr },
	{ "source", S_IFREG | 0644, 0, .show = source_show,
	  .store = source_store, .check = source_judge,
	  .getattr = obj_file_getattr },
	{ "schema", S_IFREG | 0644, 0, .show = schema_show,
	  .store = schema_store, .check = schema_check,
	  .getattr = obj_file_getattr },
	{ "stats", S_IFREG | 0444, 0, .show = stats_show,
	  .getattr = obj_file_getattr },
	{ "prepare", S_IFREG | 0666, 0, .show = prepare_show,
	  .check = prepare_check, .store = prepare_store,
	  .getattr = obj_file_getattr },
	{ "watch", S_IFREG | 0666, 0, .show = watch_show,
	  .check = watch_check, .store = watch_store,
	  .getattr = obj_file_getattr },
	{ "schedule", S_IFREG | 0666, 0, .show = schedule_show,
	  .check = schedule_check, .store = schedule_store,
	  .getattr = obj_file_getattr },
	LABEL_DIR_TYPE,
	NEXT_TYPE,
	{ NULL },
};

static int dataset_lookup(struct node *dir, const char *name,
			  const struct node_type **type)
{
	return obj_lookup(dir, name, &version_type, type);
}

static int dataset_list(struct node *dir, node_fill_fn fill, void *ctx)
{
	return obj_list(dir, &version_type, fill, ctx);
}

static const struct node_type dataset_type = {
	NULL, S_IFDIR | 0755, NODE_F_DYNAMIC, .children = dataset_files,
	.lookup = dataset_lookup, .list = dataset_list, .drop = obj_drop,
	.symlink = obj_symlink, .unlink = obj_unlink, .rename = obj_rename,
	.getattr = obj_dir_getattr, .chmod = obj_chmod,
};

static int datasets_lookup(struct node *dir, const char *name,
			   const struct node_type **type)
{
	return obj_top_lookup(dir, name, &dataset_type, type);
}

static int datasets_list(struct node *dir, node_fill_fn fill, void *ctx)
{
	return obj_top_list(dir, &dataset_type, fill, ctx);
}

const struct node_type datasets_type = {
	"datasets", S_IFDIR | 01777, NODE_F_DYNAMIC,
	.lookup = datasets_lookup, .list = datasets_list,
	.make = obj_top_make, .drop = obj_top_drop, .kind = &repo_datasets,
};
