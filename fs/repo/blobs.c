/* SPDX-License-Identifier: MIT */
/*
 * Blobs: content by xxh3-128, shared by every version that holds it;
 * put, release when no version names it, and reap after the grace.
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
#include "store.h"

void repo_blob_key(const char *hash, char *out, size_t outlen)
{
	snprintf(out, outlen, "blobs/%.2s/%s", hash, hash);
}

bool repo_blob_hash(const char *key, char hash[HASH_HEX_LEN + 1])
{
	const char *h;

	if (strlen(key) != 9 + HASH_HEX_LEN || strncmp(key, "blobs/", 6) != 0 ||
	    key[8] != '/')
		return false;
	h = key + 9;	/* blobs/xx/<hash>, xx its first two digits */
	if (strncmp(key + 6, h, 2) != 0)
		return false;
	/* lower-case, as hash_hex writes them: the name is compared as text */
	if (strspn(h, "0123456789abcdef") != HASH_HEX_LEN)
		return false;
	memcpy(hash, h, HASH_HEX_LEN + 1);
	return true;
}

int repo_blob_error(struct fs *fs, uid_t uid, const char *path, const char *key,
		  int rc)
{
	struct problem pb = { 0 };

	if (rc != -EBADMSG)
		return rc;
	snprintf(pb.path, sizeof(pb.path), "%s", path);
	snprintf(pb.msg, sizeof(pb.msg),
		 "%s: the store's content does not match the hash it is "
		 "named by: not served",
		 key);
	fs_damage(fs, uid, &pb);
	return -EIO;
}

struct hash_ref {
	const char *hash;
	const char *skip_prefix; /* versions being removed */
	unsigned skip_ver;       /* 0: all of skip_prefix */
	bool found;
};

static int hash_ref_one(void *arg, const char *key, const char *val,
			size_t len)
{
	struct hash_ref *hr = arg;
	size_t plen = strlen(hr->skip_prefix);

	if (strncmp(key, hr->skip_prefix, plen) == 0 &&
	    (hr->skip_ver == 0 ||
	     strtoul(key + plen, NULL, 10) == hr->skip_ver))
		return 0;
	if (memmem(val, len, hr->hash, HASH_HEX_LEN)) {
		hr->found = true;
		return 1;
	}
	return 0;
}

/*
 * Remove a blob no version references any more (other than the ones
 * being removed).  Open readers keep their descriptor on the local file;
 * on S3 the deletion waits out gc_grace (reap.c).  Called under ds_lock.
 */
static void repo_blob_release(struct fs *fs, const struct repo_kind *k,
			    const char *hash, const char *name, unsigned ver)
{
	char prefix[300], key[128];
	struct hash_ref hr = { .hash = hash, .skip_prefix = prefix,
			       .skip_ver = ver };
	struct meta_txn *t;

	if (strlen(hash) != HASH_HEX_LEN)
		return;
	if (meta_txn_begin(fs->meta, true, &t) < 0)
		return;
	/* every kind's versions but the ones being removed */
	snprintf(prefix, sizeof(prefix), "%s/%s/", k->dir, name);
	meta_scan(t, META_VER, "", NULL, hash_ref_one, &hr);
	meta_txn_abort(t);
	if (hr.found)
		return;
	repo_blob_key(hash, key, sizeof(key));
	/*
	 * On the bucket, not yet: a reader with the file open (here or on
	 * another mount) reads it from there.  It goes gc_grace later.
	 */
	if (reap_later(fs, key) < 0)
		store_del(fs->store, key);
}

/* Release every blob a manifest names (the "hash" and any "files"). */
void repo_man_release(struct fs *fs, const struct repo_kind *k,
			   json_t *man, const char *name, unsigned ver)
{
	const char *h = json_string_value(json_object_get(man, "hash"));
	const char *f;
	json_t *v;

	if (h)
		repo_blob_release(fs, k, h, name, ver);
	json_object_foreach(json_object_get(man, "files"), f, v) {
		h = json_string_value(json_object_get(v, "hash"));
		if (h)
			repo_blob_release(fs, k, h, name, ver);
	}
}

/*
 * Does the store hold blob key (size bytes) already?  On S3, only what the
 * cache knows (in the outbox, or exported and cached): asking the bucket
 * costs a round trip at every close, and an outage's retries.  A blob the
 * cache does not know goes into the outbox, and its export asks the
 * bucket instead (bcache_opts.content_prefix), skipping the upload of
 * content the bucket already has.
 */
bool repo_blob_is_stored(struct fs *fs, const char *key, uint64_t size)
{
	char state[BCACHE_STATE_MAX];
	struct store_stat sst;

	if (bcache_is_cache(fs->store))
		return bcache_state(fs->store, key, state, sizeof(state)) == 0 &&
		       strcmp(state, "released") != 0;
	return store_head(fs->store, key, &sst) == 0 && sst.size == size;
}

static int ref_one(void *arg, const char *key, const char *val, size_t len)
{
	const char *hash = arg;

	(void)key;
	return memmem(val, len, hash, HASH_HEX_LEN) ? 1 : 0;
}

/* Does a version or a job name blob hash?  Under ds_lock; true on error. */
bool repo_blob_referenced(struct fs *fs, const char *hash)
{
	static const enum meta_table tabs[] = { META_VER, META_JOB };
	struct meta_txn *t;
	int rc = 0;

	if (meta_txn_begin(fs->meta, true, &t) < 0)
		return true;
	for (size_t i = 0; i < sizeof(tabs) / sizeof(tabs[0]) && rc == 0; i++)
		rc = meta_scan(t, tabs[i], "", NULL, ref_one, (void *)hash);
	meta_txn_abort(t);
	return rc != 0;
}

/*
 * Take back a blob put for a version that was not made.  "Fresh" only
 * means the cache did not know it (repo_blob_is_stored): the bucket may hold
 * it for another version, so it goes only if nothing names it.  Under
 * ds_lock.
 */
void repo_drop_unreferenced(struct fs *fs, const char *hash,
			      const char *key)
{
	if (!repo_blob_referenced(fs, hash))
		store_del(fs->store, key);
}

int repo_blob_reap(struct fs *fs, const char *key)
{
	const char *hash = strrchr(key, '/');
	int rc = 0;

	hash = hash ? hash + 1 : key;
	if (strlen(hash) != HASH_HEX_LEN)
		return 0; /* not a blob of ours */
	repo_lock(fs);
	if (!repo_blob_referenced(fs, hash))
		rc = store_del(fs->store, key);
	pthread_mutex_unlock(&fs->ds_lock);
	return rc == -ENOENT ? 0 : rc;
}

/*
 * Move the file at path into the store as the blob of hash (key);
 * *fresh (may be NULL) tells whether the store did not have it yet, as
 * far as repo_blob_is_stored() knows: the bucket may hold it all the same.
 */
int repo_put_blob(struct fs *fs, const char *hash, const char *path,
		    uint64_t size, char *key, size_t keylen, bool *fresh)
{
	repo_blob_key(hash, key, keylen);
	if (fresh)
		*fresh = false;
	if (repo_blob_is_stored(fs, key, size)) {
		unlink(path); /* content already stored once */
		reap_cancel(fs, key); /* a removed version's: wanted again */
		return 0;
	}
	if (fresh)
		*fresh = true;
	return store_put_file(fs->store, key, path);
}

int repo_copy_to_tmp(struct fs *fs, int in, uint64_t size, char *tmp,
		   size_t tmplen, int *out)
{
	int rc;

	*out = -1;
	rc = store_tmp_path(fs->store, tmp, tmplen);
	if (rc < 0)
		return rc;
	*out = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (*out < 0)
		return -errno;
	rc = host_copy(in, *out, size);
	if (rc < 0) {
		close(*out);
		*out = -1;
		unlink(tmp);
	}
	return rc;
}

int repo_put_file(struct fs *fs, const char *path, char hash[33],
		uint64_t *size)
{
	struct stat st;
	char key[128];
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = fstat(fd, &st) < 0 ? -errno : hash_fd(fd, hash);
	close(fd);
	if (rc < 0)
		return rc;
	*size = (uint64_t)st.st_size;
	return repo_put_blob(fs, hash, path, *size, key, sizeof(key), NULL);
}

int repo_file_json(struct fs *fs, json_t *man, const char *file, size_t max,
		   uid_t uid, const char *path, json_t **out)
{
	const char *hash = json_string_value(json_object_get(
		json_object_get(json_object_get(man, "files"), file), "hash"));
	char key[96], *buf;
	size_t len;
	int rc;

	*out = NULL;
	if (!hash)
		return -ENOENT;
	repo_blob_key(hash, key, sizeof(key));
	rc = store_get(fs->store, key, max, &buf, &len);
	rc = repo_blob_error(fs, uid, path, key, rc);
	if (rc < 0)
		return rc;
	*out = json_loadb(buf, len, 0, NULL);
	free(buf);
	return *out ? 0 : -EIO;
}
