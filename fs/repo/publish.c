/* SPDX-License-Identifier: MIT */
/*
 * Publish: a dataset version from a staged CSV, a model version from
 * blobs already put.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "bcache.h"
#include "catalog.h"
#include "csv.h"
#include "repo.h"
#include "fs.h"
#include "hash.h"
#include "hostfile.h"
#include "jsonout.h"
#include "meta.h"
#include "reap.h"
#include "remote.h"
#include "repo_int.h"
#include "stagescan.h"
#include "store.h"

int repo_map_file(int fd, struct mapped *m)
{
	struct stat st;

	m->map = NULL;
	m->data = "";
	if (fstat(fd, &st) < 0)
		return -errno;
	m->size = (uint64_t)st.st_size;
	if (st.st_size > 0) {
		m->map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE,
			      fd, 0);
		if (m->map == MAP_FAILED) {
			m->map = NULL;
			return -errno;
		}
		madvise(m->map, (size_t)st.st_size, MADV_SEQUENTIAL);
		m->data = m->map;
	}
	return 0;
}

void repo_unmap_file(struct mapped *m)
{
	if (m->map)
		munmap(m->map, (size_t)m->size);
	m->map = NULL;
}

/*
 * Scan the CSV in fd (schema, stats) and hash it: *info and hash on
 * success, -EINVAL with pb on bad CSV.
 */
int repo_scan_file(int fd, struct csv_info **info, char *hash,
		     uint64_t *size, struct problem *pb)
{
	struct mapped m;
	int rc = repo_map_file(fd, &m);

	if (rc < 0)
		return rc;
	rc = csv_scan(m.data, (size_t)m.size, NULL, info, NULL, pb);
	if (rc == 0)
		hash_hex(m.data, (size_t)m.size, hash);
	*size = m.size;
	repo_unmap_file(&m);
	return rc;
}

/* What a scan tells of a version: into its manifest man. */
int repo_manifest_content(json_t *man, json_t *rec,
			    const struct csv_info *info, const char *hash,
			    const char *key, uint64_t size)
{
	json_t *lin = json_object_get(man, "lineage");
	int rc = 0;

	rc |= json_object_set_new(man, "hash", json_string(hash));
	rc |= json_object_set_new(man, "blob", json_string(key));
	rc |= json_object_set_new(man, "size", json_integer((json_int_t)size));
	rc |= json_object_set_new(man, "rows",
				  json_integer((json_int_t)info->nrows));
	rc |= json_object_set_new(
		man, "schema",
		repo_schema_json(info, json_object_get(rec, "overrides"),
			    json_string_value(json_object_get(rec, "label"))));
	rc |= json_object_set_new(man, "stats", repo_stats_json(info));
	if (lin) {
		rc |= json_object_set_new(lin, "hash", json_string(hash));
		rc |= json_object_set_new(lin, "size",
					  json_integer((json_int_t)size));
	}
	return rc ? -ENOMEM : 0;
}

/* The number of the next version of rec, after parent. */
unsigned repo_next_version(json_t *rec, unsigned parent)
{
	unsigned v = repo_rec_uint(rec, "next");

	return v > parent ? v : parent + 1;
}

/* Commit man (NULL: out of memory) as new version v of name. */
int repo_commit_new(struct fs *fs, const char *name, json_t *rec,
		      json_t *man, unsigned v, unsigned *ver, bool *created)
{
	int rc;

	if (!man)
		return -ENOMEM;
	rc = repo_commit_version(fs, &repo_datasets, name, rec, man, v);
	if (rc == 0) {
		*ver = v;
		*created = true;
	}
	return rc;
}

/*
 * A large file starts its export before its scan: the blob goes into
 * the store (an S3 mount's outbox, which uploads in the background)
 * through a second link to the staging file while the CSV is checked,
 * so the upload and the scan, each bound by one core, overlap.  A file
 * that fails the check has that blob removed again and stays in place.
 * Small files gain nothing and would miss the cache's adoption of an
 * exported file (it needs the only link), so they go after the scan.
 */
#define EARLY_PUT_MIN ((uint64_t)64 << 20)

static bool put_early(struct fs *fs, const char *path, uint64_t size,
		      const char *hash, char *key, size_t keylen, bool *fresh)
{
	char link2[PATH_MAX];

	if (size < EARLY_PUT_MIN || !bcache_is_cache(fs->store) ||
	    snprintf(link2, sizeof(link2), "%s.early", path) >=
		    (int)sizeof(link2) ||
	    link(path, link2) < 0)
		return false;
	if (repo_put_blob(fs, hash, link2, size, key, keylen, fresh) < 0) {
		unlink(link2);
		return false;
	}
	return true;
}

/*
 * The early put on a thread of its own while the caller scans: it waits
 * for the disk (the store fsyncs the file before naming it), the scan
 * for a core, and a fresh copy of a job's output is mostly not on the
 * disk yet.
 */
struct early {
	struct fs *fs;
	const char *path;
	uint64_t size;
	const char *hash;
	char *key;
	size_t keylen;
	bool fresh;
	bool done;
};

static void *early_main(void *arg)
{
	struct early *e = arg;

	e->done = put_early(e->fs, e->path, e->size, e->hash, e->key,
			    e->keylen, &e->fresh);
	return NULL;
}

/* Is hash the content of name's latest version (*parent)?  Under ds_lock. */
static bool is_latest(struct fs *fs, const char *name, json_t *rec,
		      const char *hash, unsigned *parent)
{
	json_t *prev;
	const char *ph;
	bool same = false;

	*parent = repo_rec_uint(rec, "latest");
	if (*parent &&
	    repo_version(fs, &repo_datasets, name, *parent, &prev) == 0) {
		ph = json_string_value(json_object_get(
			json_object_get(prev, "lineage"), "hash"));
		same = ph && strcmp(ph, hash) == 0;
		json_decref(prev);
	}
	return same;
}

/*
 * ds_publish(), or with the scan and hash already made (info, consumed,
 * and hash; both NULL: made here).
 */
static int publish_csv(struct fs *fs, const char *name, const char *path,
		       int fd, const struct repo_origin *origin,
		       struct csv_info *info, const char *scanned,
		       unsigned *ver, bool *created, struct problem *pb)
{
	const struct repo_kind *k = &repo_datasets;
	char hash[HASH_HEX_LEN + 1], key[128];
	json_t *rec = NULL, *man = NULL;
	struct mapped m;
	struct early ep;
	pthread_t eth;
	unsigned parent, v;
	bool early = false, fresh = false, threaded;
	time_t now = time(NULL);
	int rc;

	*ver = 0;
	*created = false;
	rc = repo_map_file(fd, &m);
	if (rc < 0) {
		csv_info_free(info);
		return rc;
	}
	if (scanned)
		snprintf(hash, sizeof(hash), "%s", scanned);
	else
		hash_hex(m.data, (size_t)m.size, hash);
	repo_lock(fs);
	rc = repo_get(fs, k, name, &rec);
	if (rc < 0)
		goto out_unlock;
	/* Identical content makes no new version (it was checked). */
	if (is_latest(fs, name, rec, hash, &parent) &&
	    (!origin->over || origin->over == parent)) {
		unlink(path);
		*ver = parent;
		goto out_unlock;
	}
	pthread_mutex_unlock(&fs->ds_lock);
	ep = (struct early){ fs, path, m.size, hash, key, sizeof(key), false,
			     false };
	threaded = !info && m.size >= EARLY_PUT_MIN &&
		   pthread_create(&eth, NULL, early_main, &ep) == 0;
	if (!threaded)
		early_main(&ep);
	rc = info ? 0 : csv_scan(m.data, (size_t)m.size, NULL, &info, NULL, pb);
	if (threaded)
		pthread_join(eth, NULL);
	early = ep.done;
	fresh = ep.fresh;
	if (rc < 0) {
		if (early && fresh) {
			repo_lock(fs);
			repo_drop_unreferenced(fs, hash, key);
			pthread_mutex_unlock(&fs->ds_lock);
		}
		goto out;
	}

	repo_lock(fs);
	json_decref(rec);
	rec = NULL;
	rc = repo_get(fs, k, name, &rec);
	if (rc < 0)
		goto out_drop;
	/* the same bytes were published meanwhile */
	if (is_latest(fs, name, rec, hash, &parent) &&
	    (!origin->over || origin->over == parent)) {
		unlink(path);
		*ver = parent;
		goto out_unlock;
	}
	if (origin->over && origin->over != parent) {
		rc = -ESTALE; /* another change came first */
		goto out_drop;
	}
	/*
	 * Put (again) under the lock: an early put that found the blob
	 * already stored did not hold it, and gc or a version's removal may
	 * have taken it since.
	 */
	rc = repo_put_blob(fs, hash, path, m.size, key, sizeof(key), NULL);
	if (rc < 0)
		goto out_drop;
	v = repo_next_version(rec, parent);
	man = json_pack("{s:i, s:s, s:i, s:o}", "format", REPO_FORMAT_MAJOR,
			"dataset", name, "version", (int)v, "lineage",
			repo_lineage_json(parent, now, m.size, hash, origin));
	if (man && repo_manifest_content(man, rec, info, hash, key, m.size) < 0) {
		json_decref(man);
		man = NULL;
	}
	rc = repo_commit_new(fs, name, rec, man, v, ver, created);
out_drop:
	/* an early blob no version took: it shares the staging file's inode */
	if (rc < 0 && early && fresh)
		repo_drop_unreferenced(fs, hash, key);
out_unlock:
	pthread_mutex_unlock(&fs->ds_lock);
out:
	json_decref(man);
	json_decref(rec);
	csv_info_free(info);
	repo_unmap_file(&m);
	return rc;
}

int ds_publish(struct fs *fs, const char *name, const char *path, int fd,
	       const struct repo_origin *origin, unsigned *ver, bool *created,
	       struct problem *pb)
{
	return publish_csv(fs, name, path, fd, origin, NULL, NULL, ver,
			   created, pb);
}

int ds_publish_scanned(struct fs *fs, const char *name, const char *path,
		       int fd, const struct repo_origin *origin,
		       struct csv_info *info, const char *hash, unsigned *ver,
		       bool *created, struct problem *pb)
{
	return publish_csv(fs, name, path, fd, origin, info, hash, ver,
			   created, pb);
}

/* Bytes copied between two wakes of the scan that follows the copy. */
#define COPY_STEP ((size_t)8 << 20)
/* Smaller copies are scanned after the copy, in one go. */
#define COPY_SCAN_MIN ((uint64_t)16 << 20)

/* Bytes [off, off + len) of in to the same place in out, all or -EIO. */
static int copy_range(int in, int out, uint64_t off, size_t len)
{
	uint64_t done;
	int rc = host_copy_range(in, out, off, len, &done);

	/* the source shrank under us: a short copy is no copy */
	return rc < 0 ? rc : done < len ? -EIO : 0;
}

/* A private copy being made of a file that grows (repo.h). */
struct repo_follow {
	struct fs *fs;
	char tmp[PATH_MAX];
	int out;
	uint64_t copied;        /* bytes */
	uint64_t max;
	bool direct;            /* written by another process: append-only */
	struct stage_scan *scan;
};

int repo_follow_start(struct fs *fs, uint64_t max, struct repo_follow **out)
{
	struct repo_follow *f = calloc(1, sizeof(*f));
	int rc;

	*out = NULL;
	if (!f)
		return -ENOMEM;
	f->fs = fs;
	f->max = max;
	rc = store_tmp_path(fs->store, f->tmp, sizeof(f->tmp));
	f->out = rc < 0 ? -1
			: open(f->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
			       0600);
	if (rc == 0 && f->out < 0)
		rc = -errno;
	if (rc < 0) {
		free(f);
		return rc;
	}
	if (max >= COPY_SCAN_MIN)
		f->scan = stage_scan_start(f->out, max);
	*out = f;
	return 0;
}

int repo_follow_copy(struct repo_follow *f, int in, uint64_t upto)
{
	int rc = 0;

	while (rc == 0 && f->copied < upto) {
		size_t len = upto - f->copied < COPY_STEP
				     ? (size_t)(upto - f->copied)
				     : COPY_STEP;

		rc = copy_range(in, f->out, f->copied, len);
		if (rc == 0) {
			f->copied += len;
			if (f->scan)
				stage_scan_grew(f->scan, f->copied);
		}
	}
	return rc;
}

uint64_t repo_follow_copied(const struct repo_follow *f)
{
	return f->copied;
}

/*
 * Whether an O_APPEND write lands only at the end even when another one
 * is still in flight: ext4 takes the inode lock for every direct write
 * that extends the file and waits for it to finish; tmpfs has no direct
 * writes.  XFS runs aligned direct appends under a shared lock and moves
 * the size only when each ends, so two could take the same place and
 * the second change bytes already scanned: not there, nor elsewhere.
 */
static bool appends_in_order(int fd)
{
	struct statfs sf;

	return fstatfs(fd, &sf) == 0 &&
	       (sf.f_type == EXT4_SUPER_MAGIC || sf.f_type == TMPFS_MAGIC);
}

int repo_follow_writer(struct repo_follow *f)
{
	int fd, rc;

	if (!appends_in_order(f->out))
		return -EOPNOTSUPP;
	rc = store_append_only(f->out, true);
	if (rc < 0)
		return rc;
	fd = open(f->tmp, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		store_append_only(f->out, false);
		return rc;
	}
	f->direct = true;
	return fd;
}

int repo_follow_grew(struct repo_follow *f)
{
	struct stat st;

	if (fstat(f->out, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size > f->max)
		return -EFBIG;
	if ((uint64_t)st.st_size > f->copied) {
		f->copied = (uint64_t)st.st_size;
		if (f->scan)
			stage_scan_grew(f->scan, f->copied);
	}
	return 0;
}

int repo_follow_seal(struct repo_follow *f)
{
	int rc = host_sole_opener(f->out);

	if (rc <= 0)
		return rc < 0 ? -ENOLCK : -EBUSY;
	/* nothing else can write it now; and an append-only file cannot
	 * be renamed into the store */
	rc = store_append_only(f->out, false);
	if (rc < 0)
		return rc;
	f->direct = false;
	rc = repo_follow_grew(f);
	/*
	 * Blocks the writer reserved past the end (fallocate with
	 * FALLOC_FL_KEEP_SIZE, which append-only allows) would stay with
	 * the blob: a truncation to the same size frees them (ext4 calls
	 * its truncate even then, for preallocated blocks).
	 */
	if (rc == 0 && ftruncate(f->out, (off_t)f->copied) < 0)
		rc = -errno;
	return rc;
}

int repo_follow_publish_copy(struct repo_follow *f, const char *name,
			     const struct repo_origin *origin, unsigned *ver,
			     bool *created, struct problem *pb)
{
	struct stat st;
	int rc;

	*ver = 0;
	*created = false;
	rc = fstat(f->out, &st) < 0 ? -errno
	     : (uint64_t)st.st_size > f->max
		     ? -EFBIG
		     : ds_publish_copy(f->fs, name, f->out,
				       (uint64_t)st.st_size, origin, ver,
				       created, pb);
	repo_follow_drop(f);
	return rc;
}

void repo_follow_drop(struct repo_follow *f)
{
	if (!f)
		return;
	/*
	 * The scan unmaps first: once the attribute is gone, a writer still
	 * holding the file (a descriptor passed on) could truncate it under
	 * the mapping (SIGBUS).  Cleared, else it cannot be unlinked.
	 */
	stage_scan_cancel(f->scan);
	f->scan = NULL;
	if (f->direct)
		store_append_only(f->out, false);
	close(f->out);
	unlink(f->tmp);
	free(f);
}

int repo_follow_publish(struct repo_follow *f, const char *name,
			const struct repo_origin *origin, unsigned *ver,
			bool *created, struct problem *pb)
{
	struct csv_info *info = NULL;
	char hash[HASH_HEX_LEN + 1];
	int rc = -EAGAIN;

	*ver = 0;
	*created = false;
	if (f->direct) { /* not sealed: another process may still write */
		repo_follow_drop(f);
		return -EBUSY;
	}
	if (f->scan) {
		rc = stage_scan_end(f->scan, f->copied, &info, hash, pb);
		f->scan = NULL;
		if (rc == 0)
			rc = ds_publish_scanned(f->fs, name, f->tmp, f->out,
						origin, info, hash, ver,
						created, pb);
	}
	if (rc == -EAGAIN)
		rc = ds_publish(f->fs, name, f->tmp, f->out, origin, ver,
				created, pb);
	if (rc < 0)
		unlink(f->tmp);
	/* unlinked when the content was there already: freeing it is slow */
	host_close_later(f->out);
	free(f);
	return rc;
}

int ds_publish_copy(struct fs *fs, const char *name, int in, uint64_t size,
		    const struct repo_origin *origin, unsigned *ver,
		    bool *created, struct problem *pb)
{
	struct repo_follow *f;
	int rc;

	*ver = 0;
	*created = false;
	if (size > fs->opts.max_file)
		return -EFBIG;
	rc = repo_follow_start(fs, size, &f);
	if (rc < 0)
		return rc;
	rc = repo_follow_copy(f, in, size);
	if (rc < 0) {
		repo_follow_drop(f);
		return rc;
	}
	return repo_follow_publish(f, name, origin, ver, created, pb);
}

int repo_commit_model(struct fs *fs, const char *name, json_t *man,
		    const struct fs_ctx *ctx, unsigned *ver)
{
	const struct repo_kind *k = &repo_models;
	json_t *rec = NULL;
	unsigned v;
	int rc;

	*ver = 0;
	rc = node_name_check(name, NULL);
	if (rc < 0)
		return rc;
	repo_lock(fs);
	rc = repo_get(fs, k, name, &rec);
	if (rc == -ENOENT) {
		char when[32], key[512];
		time_t now = time(NULL);

		repo_iso_time(now, when, sizeof(when));
		rec = json_pack("{s:s, s:s, s:I, s:i, s:i, s:i, s:i, s:i, "
				"s:{}}",
				"name", name, "created", when, "created_unix",
				(json_int_t)now, "uid", (int)ctx->uid, "gid",
				(int)ctx->gid, "mode", 0755, "latest", 0,
				"next", 1, "aliases");
		rc = rec ? 0 : -ENOMEM;
		if (rec)
			repo_set_incarnation(rec);
		if (rc == 0) {
			repo_record_key(k, name, key, sizeof(key));
			rc = repo_put_json(fs, key, rec);
		}
	}
	if (rc < 0)
		goto out_unlock;
	/* A model is derived from its data (sample.csv holds raw rows): it
	 * is no wider than the data it came from (ctx->umask: the bits the
	 * dataset lacks), narrowed with this version if need be. */
	json_object_set_new(rec, "mode",
			    json_integer(repo_rec_uint(rec, "mode") & ~ctx->umask &
					 07777));
	v = repo_rec_uint(rec, "next");
	if (v <= repo_rec_uint(rec, "latest"))
		v = repo_rec_uint(rec, "latest") + 1;
	json_object_set_new(man, "version", json_integer(v));
	rc = repo_commit_version(fs, k, name, rec, man, v);
	if (rc == 0)
		*ver = v;
out_unlock:
	pthread_mutex_unlock(&fs->ds_lock);
	json_decref(rec);
	return rc;
}

/* Does man say what prev says, in every field man has but these? */
static bool same_content(json_t *man, json_t *prev)
{
	const char *key;
	json_t *v;

	json_object_foreach(man, key, v) {
		if (strcmp(key, "version") == 0 || strcmp(key, "lineage") == 0 ||
		    strcmp(key, "incarnation") == 0)
			continue;
		if (!json_equal(v, json_object_get(prev, key)))
			return false;
	}
	return true;
}

int repo_commit(struct fs *fs, const struct repo_kind *k, const char *name,
	      json_t *man, const struct repo_origin *origin, unsigned *ver,
	      bool *created)
{
	json_t *rec = NULL, *prev = NULL;
	unsigned parent, v;
	int rc;

	*ver = 0;
	*created = false;
	repo_lock(fs);
	rc = repo_get(fs, k, name, &rec);
	if (rc < 0)
		goto out_unlock;
	parent = repo_rec_uint(rec, "latest");
	if (parent && repo_version(fs, k, name, parent, &prev) == 0 &&
	    same_content(man, prev)) {
		*ver = parent; /* nothing changes: no new version */
		goto out_unlock;
	}
	v = repo_next_version(rec, parent);
	json_object_set_new(man, "format", json_integer(REPO_FORMAT_MAJOR));
	json_object_set_new(man, "version", json_integer(v));
	json_object_set_new(man, "lineage",
			    repo_lineage_json(parent, time(NULL), 0, NULL,
					      origin));
	rc = repo_commit_version(fs, k, name, rec, man, v);
	if (rc == 0) {
		*ver = v;
		*created = true;
	}
out_unlock:
	repo_unlock(fs);
	json_decref(prev);
	json_decref(rec);
	return rc;
}
