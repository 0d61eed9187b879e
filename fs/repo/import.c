/* SPDX-License-Identifier: MIT */
/*
 * Lazy import: a version of an s3:// source made without reading it,
 * fetched, scanned and filled in on its first read.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/random.h>
#include <sys/stat.h>
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

int ds_publish_pending(struct fs *fs, const char *name,
		       const struct repo_origin *origin, uint64_t size,
		       unsigned *ver, bool *created)
{
	const struct repo_kind *k = &repo_datasets;
	json_t *rec = NULL, *prev = NULL, *man = NULL;
	unsigned parent, v;
	int rc;

	*ver = 0;
	*created = false;
	repo_lock(fs);
	rc = repo_get(fs, k, name, &rec);
	if (rc < 0)
		goto out_unlock;
	parent = repo_rec_uint(rec, "latest");
	if (parent && repo_version(fs, k, name, parent, &prev) == 0) {
		json_t *lin = json_object_get(prev, "lineage");
		const char *pd = json_string_value(json_object_get(lin,
								   "detail"));
		const char *pe = json_string_value(
			json_object_get(lin, "source_etag"));

		/* The same object, unchanged: no new version. */
		if (pd && pe && origin->detail && origin->etag &&
		    strcmp(pd, origin->detail) == 0 &&
		    strcmp(pe, origin->etag) == 0) {
			*ver = parent;
			goto out_unlock;
		}
	}
	v = repo_next_version(rec, parent);
	man = json_pack("{s:i, s:s, s:i, s:I, s:b, s:o}", "format",
			REPO_FORMAT_MAJOR, "dataset", name, "version", (int)v,
			"size", (json_int_t)size, "pending", 1, "lineage",
			repo_lineage_json(parent, time(NULL), size, NULL, origin));
	rc = repo_commit_new(fs, name, rec, man, v, ver, created);
out_unlock:
	pthread_mutex_unlock(&fs->ds_lock);
	json_decref(man);
	json_decref(prev);
	json_decref(rec);
	return rc;
}

bool ds_is_pending(json_t *man)
{
	return json_is_true(json_object_get(man, "pending"));
}

/*
 * The bytes of a lazy version while its import runs, for the readers
 * that open it meanwhile (ds_version_open).  Under imports.m, whose cond
 * is broadcast as bytes land and when the import ends.
 */
struct ds_feed {
	struct fs *fs;
	unsigned refs;       /* the import's, and one a reader */
	int fd;              /* the staging file (dup), or -1 before it */
	uint64_t size;       /* the pinned object's */
	uint64_t have;       /* [0, have) landed and checked */
	bool fetched;        /* the copy ended (the ETag checked after it) */
	bool done;           /* the import ended (scan, hash, blob too) */
	int frc, rc;         /* the copy's result, the import's */
	struct problem fpb, pb; /* their accounts, when < 0 */
	char key[128];       /* the blob's store key, once rc == 0 */
};

/* What follows the fetch's bytes: the scan, and the feed's readers. */
struct import_follow {
	struct fs *fs;
	struct stage_scan *scan;
	struct ds_feed *feed; /* or NULL */
};

static int import_landed(void *arg, uint64_t whole)
{
	struct import_follow *fo = arg;
	struct ds_feed *fd = fo->feed;
	int rc = 0;

	if (fo->scan)
		stage_scan_grew(fo->scan, whole);
	pthread_mutex_lock(&fo->fs->repo->imports.m);
	if (fd) {
		fd->have = whole;
		pthread_cond_broadcast(&fo->fs->repo->imports.cond);
	}
	if (fo->fs->repo->imports.stop)
		rc = -ECANCELED; /* unmounting: the next mount imports it */
	pthread_mutex_unlock(&fo->fs->repo->imports.m);
	return rc;
}

/* The copy ended with rc (p: its account): its readers have every byte. */
static void feed_fetched(struct fs *fs, struct ds_feed *f, int rc,
			 const struct problem *p)
{
	if (!f)
		return;
	/* once, and before any reader is told: its read fails with it */
	if (rc < 0 && rc != -ECANCELED && p->msg[0])
		fs_problem(fs, 0, p);
	pthread_mutex_lock(&fs->repo->imports.m);
	f->fetched = true;
	f->frc = rc;
	if (rc < 0)
		f->fpb = *p;
	else
		f->have = f->size;
	pthread_cond_broadcast(&fs->repo->imports.cond);
	pthread_mutex_unlock(&fs->repo->imports.m);
}

/*
 * Import pending version ver of name: fetch the object its lineage pins
 * (the same ETag, or -ESTALE), scan and hash it, put the blob and fill
 * in the manifest.  Under import_lock, not ds_lock (the fetch is long).
 */
static int import_pending(struct fs *fs, const char *name, unsigned ver,
			  json_t *pman, struct ds_feed *feed, struct problem *pb)
{
	const struct repo_kind *k = &repo_datasets;
	json_t *lin = json_object_get(pman, "lineage");
	const char *url = json_string_value(json_object_get(lin, "detail"));
	const char *etag = json_string_value(json_object_get(lin,
							     "source_etag"));
	char tmp[4096], msg[400] = "", got[80], hash[HASH_HEX_LEN + 1];
	char key[128], mkey[512];
	struct csv_info *info = NULL;
	struct import_follow fo = { fs, NULL, feed };
	struct stage_scan *scan;
	struct problem p = { 0 };
	json_t *rec = NULL, *man = NULL;
	uint64_t size;
	int fd = -1, rc;

	if (!url || !etag) {
		rc = problem_set(&p, 0, 0, "datasets/%s/v%u: pending, but its "
					   "lineage names no source", name, ver);
		goto out_problem;
	}
	/*
	 * The import rewrites the version's manifest and puts a blob: the
	 * writer's to do.  A reader mount serves it once the writer did.
	 */
	if (fs->opts.read_only) {
		rc = -EROFS;
		problem_set(&p, 0, 0, "datasets/%s/v%u: not imported yet from "
				      "%s; the writer mount imports it on its "
				      "first read", name, ver, url);
		goto out_problem;
	}
	snprintf(p.path, sizeof(p.path), "%.500s", url);
	rc = store_tmp_path(fs->store, tmp, sizeof(tmp));
	if (rc < 0)
		return rc;
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (feed) {
		/* readers read the staging file as it fills, and keep it */
		int rfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);

		if (rfd < 0) {
			rc = -errno;
			close(fd);
			goto out_unlink;
		}
		pthread_mutex_lock(&fs->repo->imports.m);
		feed->fd = rfd;
		pthread_mutex_unlock(&fs->repo->imports.m);
	}
	/*
	 * Scanned and hashed as the ranges arrive, unless readers wait for
	 * them: then after the copy, which the scan would slow (on this
	 * machine's 2 cores, s3rver's own and the daemon's: a cold read of
	 * 1 GiB 3.2-3.5 s with the scan beside it at nice 19, 2.8-2.9 s
	 * without it).
	 */
	scan = feed ? NULL : stage_scan_start(fd, fs->opts.max_file);
	fo.scan = scan;
	rc = remote_fetch(fs, url, fd, import_landed, &fo, fs->opts.max_file,
			  etag, got, sizeof(got), &size, msg, sizeof(msg));
	if (rc < 0) {
		stage_scan_cancel(scan);
		close(fd);
		/* gone is not "no such version": the pinned object is stale */
		if (rc == -ENOENT)
			rc = -ESTALE;
		problem_set(&p, 0, 0, "datasets/%s/v%u: %s", name, ver,
			    msg[0] ? msg : strerror(-rc));
		feed_fetched(fs, feed, rc, &p);
		goto out_unlink;
	}
	/* the readers are done waiting: the scan, hash and blob follow */
	feed_fetched(fs, feed, 0, &p);
	rc = scan ? stage_scan_end(scan, size, &info, hash, &p) : -EAGAIN;
	if (rc == -EAGAIN)
		rc = repo_scan_file(fd, &info, hash, &size, &p);
	close(fd);
	if (rc < 0)
		goto out_unlink;
	/* The blob goes in under the lock: gc must not take it first. */
	repo_lock(fs);
	rc = repo_get(fs, k, name, &rec);
	if (rc == 0)
		rc = repo_version(fs, k, name, ver, &man);
	if (rc == 0 && ds_is_pending(man)) {
		rc = repo_put_blob(fs, hash, tmp, size, key, sizeof(key), NULL);
		json_object_del(man, "pending");
		if (rc == 0)
			rc = repo_manifest_content(man, rec, info, hash, key, size);
		repo_manifest_key(k, name, ver, mkey, sizeof(mkey));
		if (rc == 0)
			rc = repo_put_json(fs, mkey, man);
		if (rc == 0)
			rc = repo_index_update(fs, k, name, rec, ver, man);
		if (rc == 0 && feed)
			snprintf(feed->key, sizeof(feed->key), "%s", key);
	} else {
		unlink(tmp);
	}
	pthread_mutex_unlock(&fs->ds_lock);
	json_decref(man);
	json_decref(rec);
	csv_info_free(info);
	return rc;
out_unlink:
	unlink(tmp);
	csv_info_free(info);
out_problem:
	if (pb && p.msg[0])
		*pb = p;
	return rc;
}

/*
 * Imports in flight, and the ones that failed for good (the pinned
 * object is gone or changed, or is not valid CSV: nothing a retry
 * mends), so that each is fetched once per mount.  A second reader of a
 * version being imported waits for that import, or reads its feed;
 * other versions go on.  Keyed by dataset, version and pinned ETag.
 */
struct import_ent {
	struct import_ent *next;
	char *name;
	unsigned ver;
	char etag[80];
	bool busy;             /* being imported now */
	struct ds_feed *feed;  /* while busy on a thread: its bytes */
	int rc;                /* when !busy: the final failure */
	struct problem pb;     /* its account */
};

static struct import_ent *import_find(struct fs *fs, const char *name, unsigned ver,
				      const char *etag)
{
	for (struct import_ent *e = fs->repo->imports.list; e; e = e->next)
		if (e->ver == ver && strcmp(e->name, name) == 0 &&
		    strcmp(e->etag, etag) == 0)
			return e;
	return NULL;
}

static void import_forget(struct fs *fs, struct import_ent *e)
{
	for (struct import_ent **pp = &fs->repo->imports.list; *pp; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	free(e->name);
	free(e);
}

/*
 * Drop a reference to a feed, under imports.m: the feed to free (after
 * the lock: closing the last descriptor of a big unlinked staging file
 * frees its blocks, which is slow), or NULL.
 */
static struct ds_feed *feed_unref_locked(struct ds_feed *f)
{
	return f && --f->refs == 0 ? f : NULL;
}

static void feed_free(struct ds_feed *f)
{
	if (!f)
		return;
	if (f->fd >= 0)
		close(f->fd);
	free(f);
}

void ds_feed_put(struct ds_feed *f)
{
	struct fs *fs;

	if (!f)
		return;
	fs = f->fs;
	pthread_mutex_lock(&fs->repo->imports.m);
	f = feed_unref_locked(f);
	pthread_mutex_unlock(&fs->repo->imports.m);
	feed_free(f);
}

/*
 * The pinned ETag of pending manifest man, and the import entry of
 * (name, ver) under imports.m, after any import of it in flight ended
 * (unless feed is wanted: then one running on a thread is returned
 * busy).  NULL if there is none.
 */
static struct import_ent *import_wait_locked(struct fs *fs, const char *name,
					     unsigned ver, const char *etag,
					     bool feed)
{
	struct import_ent *e;

	for (;;) {
		e = import_find(fs, name, ver, etag);
		if (!e || !e->busy || (feed && e->feed))
			return e;
		pthread_cond_wait(&fs->repo->imports.cond,
				  &fs->repo->imports.m);
	}
}

/* A new busy entry for (name, ver, etag), listed; under imports.m. */
static struct import_ent *import_begin_locked(struct fs *fs, const char *name,
					      unsigned ver, const char *etag)
{
	struct import_ent *e = calloc(1, sizeof(*e));

	if (!e || !(e->name = strdup(name))) {
		free(e);
		return NULL;
	}
	e->ver = ver;
	snprintf(e->etag, sizeof(e->etag), "%s", etag);
	e->busy = true;
	e->next = fs->repo->imports.list;
	fs->repo->imports.list = e;
	return e;
}

/*
 * Run the import of entry e (busy, listed), then settle it: kept with
 * its failure when a retry would not mend it, else forgotten.  The
 * feed, if any, is told the end.  Any thread.
 */
static int import_run(struct fs *fs, struct import_ent *e, struct ds_feed *feed,
		      struct problem *pbout)
{
	struct problem pb = { 0 };
	struct ds_feed *gone = NULL;
	json_t *man = NULL;
	bool report = false;
	int rc;

	rc = repo_version(fs, &repo_datasets, e->name, e->ver, &man);
	if (rc == 0 && ds_is_pending(man))
		rc = import_pending(fs, e->name, e->ver, man, feed, &pb);
	json_decref(man);

	pthread_mutex_lock(&fs->repo->imports.m);
	if (rc < 0) {
		e->pb = pb;
		if (pbout)
			*pbout = pb;
	}
	if (feed) {
		/*
		 * Nobody waits for a failure after the copy (the scan's,
		 * the blob's): it is told here, once; one of the copy was
		 * told when it happened (feed_fetched).
		 */
		report = rc < 0 && rc != -ECANCELED && pb.msg[0] &&
			 (!feed->fetched || feed->frc == 0);
		if (!feed->fetched) {
			/* it failed before the copy ended */
			feed->fetched = true;
			feed->frc = rc;
			feed->fpb = pb;
		}
		feed->done = true;
		feed->rc = rc;
		feed->pb = pb;
		e->feed = NULL;
		gone = feed_unref_locked(feed);
	}
	if (rc == -ESTALE || rc == -EINVAL || rc == -EFBIG) {
		e->busy = false;
		e->rc = rc;
	} else {
		import_forget(fs, e); /* done, or worth another try (EIO, EROFS) */
	}
	pthread_cond_broadcast(&fs->repo->imports.cond);
	pthread_mutex_unlock(&fs->repo->imports.m);
	feed_free(gone);
	if (report)
		fs_problem(fs, 0, &pb);
	return rc;
}

/*
 * The manifest of (name, ver) into *man: 1 if it is pending, with *ver
 * its number (not 0) and *etag the ETag it pins (in *man; NULL if none),
 * 0 if not, or -errno.
 */
static int version_pending(struct fs *fs, const char *name, unsigned *ver,
			   json_t **man, const char **etag)
{
	int rc = repo_version(fs, &repo_datasets, name, *ver, man);

	if (rc < 0 || !ds_is_pending(*man))
		return rc;
	*ver = repo_rec_uint(*man, "version");
	*etag = json_string_value(json_object_get(
		json_object_get(*man, "lineage"), "source_etag"));
	return 1;
}

int ds_version_ready(struct fs *fs, const char *name, unsigned ver,
		     json_t **man, struct problem *pb)
{
	struct import_ent *e;
	const char *etag = NULL;
	int rc = version_pending(fs, name, &ver, man, &etag);

	if (rc <= 0)
		return rc;
	pthread_mutex_lock(&fs->repo->imports.m);
	e = import_wait_locked(fs, name, ver, etag ? etag : "", false);
	if (e) {
		/* failed for good before: the same answer, no new fetch */
		rc = e->rc;
		if (pb)
			*pb = e->pb;
		pthread_mutex_unlock(&fs->repo->imports.m);
		goto out;
	}
	/* unmounting: the next mount imports it */
	e = fs->repo->imports.stop
		    ? NULL
		    : import_begin_locked(fs, name, ver, etag ? etag : "");
	rc = fs->repo->imports.stop ? -ECANCELED : -ENOMEM;
	pthread_mutex_unlock(&fs->repo->imports.m);
	if (!e)
		goto out;
	rc = import_run(fs, e, NULL, pb);
	if (rc == 0) {
		json_decref(*man);
		rc = repo_version(fs, &repo_datasets, name, ver, man);
	}
out:
	if (rc < 0) {
		json_decref(*man);
		*man = NULL;
	}
	return rc;
}

/*
 * Imports on threads of their own at once, each with its fetch's
 * threads: a `grep -r` over many lazy datasets starts no more.
 */
#define IMPORT_THREADS 4

struct import_job {
	struct fs *fs;
	struct import_ent *e;
	struct ds_feed *feed;
};

static void *import_main(void *arg)
{
	struct import_job *j = arg;
	struct fs *fs = j->fs;

	import_run(fs, j->e, j->feed, NULL);
	free(j);
	pthread_mutex_lock(&fs->repo->imports.m);
	fs->repo->imports.running--;
	pthread_cond_broadcast(&fs->repo->imports.cond);
	pthread_mutex_unlock(&fs->repo->imports.m);
	return NULL;
}

/*
 * Start importing (name, ver) on a thread, with a feed for readers;
 * under imports.m.  NULL when no thread could be had: the caller
 * imports in its own.
 */
static struct ds_feed *import_spawn_locked(struct fs *fs, const char *name,
					   unsigned ver, const char *etag,
					   uint64_t size)
{
	struct import_job *j = calloc(1, sizeof(*j));
	struct ds_feed *f = calloc(1, sizeof(*f));
	pthread_attr_t attr;
	pthread_t th;
	int rc;

	/* past IMPORT_THREADS, the reader imports in its own thread */
	if (!j || !f || fs->repo->imports.stop ||
	    fs->repo->imports.running >= IMPORT_THREADS)
		goto fail;
	j->e = import_begin_locked(fs, name, ver, etag);
	if (!j->e)
		goto fail;
	f->fs = fs;
	f->refs = 2; /* the import's, the caller's */
	f->fd = -1;
	f->size = size;
	j->fs = fs;
	j->feed = f;
	j->e->feed = f;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&th, &attr, import_main, j);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		import_forget(fs, j->e);
		goto fail;
	}
	fs->repo->imports.running++;
	return f;
fail:
	free(j);
	free(f);
	return NULL;
}

/*
 * Whether (name, ver) is still pending, under imports.m with no import
 * of it listed: an import commits its manifest before it leaves the
 * list, so what the index says now is the last word.
 */
static bool still_pending(struct fs *fs, const char *name, unsigned ver)
{
	json_t *man;
	bool pending = repo_version(fs, &repo_datasets, name, ver, &man) == 0 &&
		       ds_is_pending(man);

	json_decref(man);
	return pending;
}

int ds_version_open(struct fs *fs, const char *name, unsigned ver,
		    json_t **man, struct ds_feed **feed, struct problem *pb)
{
	struct import_ent *e;
	const char *etag = NULL;
	int rc;

	*feed = NULL;
	rc = version_pending(fs, name, &ver, man, &etag);
	if (rc <= 0)
		return rc;
	/* a reader mount serves it once the writer imported it */
	if (fs->opts.read_only || !etag)
		goto ready;
	pthread_mutex_lock(&fs->repo->imports.m);
	e = import_wait_locked(fs, name, ver, etag, true);
	if (e && e->busy) {
		*feed = e->feed;
		e->feed->refs++;
	} else if (!e && still_pending(fs, name, ver)) {
		*feed = import_spawn_locked(
			fs, name, ver, etag,
			(uint64_t)json_integer_value(json_object_get(*man,
								     "size")));
	}
	pthread_mutex_unlock(&fs->repo->imports.m);
	if (*feed)
		return 0;
ready:
	/* failed for good before, or no thread: as ds_version_ready */
	json_decref(*man);
	*man = NULL;
	return ds_version_ready(fs, name, ver, man, pb);
}

int ds_feed_wait(struct ds_feed *f, uint64_t end, bool all,
		 struct problem *pb)
{
	struct fs *fs = f->fs;
	int rc = 0;

	pthread_mutex_lock(&fs->repo->imports.m);
	if (all) {
		while (!f->done)
			pthread_cond_wait(&fs->repo->imports.cond,
					  &fs->repo->imports.m);
		rc = f->rc;
		if (rc < 0 && pb)
			*pb = f->pb;
	} else {
		/* the end waits for the copy: its ETag check is the end's */
		while (!f->fetched && (f->have < end || end >= f->size))
			pthread_cond_wait(&fs->repo->imports.cond,
					  &fs->repo->imports.m);
		/* bytes that landed before the copy failed are good */
		if (f->have < end || end >= f->size)
			rc = f->frc;
		/* a copy said done with no file is a bug: never serve it */
		if (rc == 0 && f->fd < 0)
			rc = -EIO;
		if (rc < 0 && pb)
			*pb = f->fpb;
	}
	pthread_mutex_unlock(&fs->repo->imports.m);
	return rc;
}

int ds_feed_fd(const struct ds_feed *f)
{
	return f->fd;
}

uint64_t ds_feed_size(const struct ds_feed *f)
{
	return f->size;
}

const char *ds_feed_key(const struct ds_feed *f)
{
	return f->key;
}

void repo_imports_stop(struct fs *fs)
{
	if (!fs->repo)
		return;
	pthread_mutex_lock(&fs->repo->imports.m);
	fs->repo->imports.stop = true;
	while (fs->repo->imports.running)
		pthread_cond_wait(&fs->repo->imports.cond,
				  &fs->repo->imports.m);
	pthread_mutex_unlock(&fs->repo->imports.m);
}

void repo_imports_free(struct fs *fs)
{
	repo_imports_stop(fs);
	while (fs->repo->imports.list)
		import_forget(fs, fs->repo->imports.list);
}
