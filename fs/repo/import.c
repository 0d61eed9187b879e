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
 * Import pending version ver of name: fetch the object its lineage pins
 * (the same ETag, or -ESTALE), scan and hash it, put the blob and fill
 * in the manifest.  Under import_lock, not ds_lock (the fetch is long).
 */
static int import_pending(struct fs *fs, const char *name, unsigned ver,
			  json_t *pman, struct problem *pb)
{
	const struct repo_kind *k = &repo_datasets;
	json_t *lin = json_object_get(pman, "lineage");
	const char *url = json_string_value(json_object_get(lin, "detail"));
	const char *etag = json_string_value(json_object_get(lin,
							     "source_etag"));
	char tmp[4096], msg[400] = "", got[80], hash[HASH_HEX_LEN + 1];
	char key[128], mkey[512];
	struct csv_info *info = NULL;
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
	/* scanned and hashed as the ranges arrive */
	scan = stage_scan_start(fd, fs->opts.max_file);
	rc = remote_fetch(fs, url, fd, scan, fs->opts.max_file, etag, got,
			  sizeof(got), &size, msg, sizeof(msg));
	if (rc < 0) {
		stage_scan_cancel(scan);
		close(fd);
		/* gone is not "no such version": the pinned object is stale */
		if (rc == -ENOENT)
			rc = -ESTALE;
		problem_set(&p, 0, 0, "datasets/%s/v%u: %s", name, ver,
			    msg[0] ? msg : strerror(-rc));
		goto out_unlink;
	}
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
 * version being imported waits for that import; other versions go on.
 * Keyed by dataset, version and pinned ETag.
 */
struct import_ent {
	struct import_ent *next;
	char *name;
	unsigned ver;
	char etag[80];
	bool busy;             /* being imported now */
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

int ds_version_ready(struct fs *fs, const char *name, unsigned ver,
		     json_t **man, struct problem *pb)
{
	struct import_ent *e;
	const char *etag;
	int rc = repo_version(fs, &repo_datasets, name, ver, man);

	if (rc < 0 || !ds_is_pending(*man))
		return rc;
	ver = repo_rec_uint(*man, "version");
	etag = json_string_value(json_object_get(
		json_object_get(*man, "lineage"), "source_etag"));
	pthread_mutex_lock(&fs->repo->imports.m);
	for (;;) {
		e = import_find(fs, name, ver, etag ? etag : "");
		if (!e || !e->busy)
			break;
		pthread_cond_wait(&fs->repo->imports.cond, &fs->repo->imports.m);
	}
	if (e) {
		/* failed for good before: the same answer, no new fetch */
		rc = e->rc;
		if (pb)
			*pb = e->pb;
		pthread_mutex_unlock(&fs->repo->imports.m);
		goto out;
	}
	e = calloc(1, sizeof(*e));
	if (!e || !(e->name = strdup(name))) {
		free(e);
		pthread_mutex_unlock(&fs->repo->imports.m);
		rc = -ENOMEM;
		goto out;
	}
	e->ver = ver;
	snprintf(e->etag, sizeof(e->etag), "%s", etag ? etag : "");
	e->busy = true;
	e->next = fs->repo->imports.list;
	fs->repo->imports.list = e;
	pthread_mutex_unlock(&fs->repo->imports.m);

	json_decref(*man);
	rc = repo_version(fs, &repo_datasets, name, ver, man);
	if (rc == 0 && ds_is_pending(*man))
		rc = import_pending(fs, name, ver, *man, &e->pb);

	pthread_mutex_lock(&fs->repo->imports.m);
	if (pb && rc < 0)
		*pb = e->pb;
	if (rc == -ESTALE || rc == -EINVAL || rc == -EFBIG) {
		e->busy = false;
		e->rc = rc;
	} else {
		import_forget(fs, e); /* done, or worth another try (EIO, EROFS) */
	}
	pthread_cond_broadcast(&fs->repo->imports.cond);
	pthread_mutex_unlock(&fs->repo->imports.m);
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

void repo_imports_free(struct fs *fs)
{
	while (fs->repo->imports.list)
		import_forget(fs, fs->repo->imports.list);
}
