/* SPDX-License-Identifier: MIT */
/*
 * An S3 store behind the block cache, for `mlfs s3://bucket/prefix MNT`:
 * the checks that run before the daemon detaches (endpoint, credentials,
 * bucket, store format, the writer's lease) and the parts that start
 * after it (the S3 client and the cache with their threads, the lease
 * renewal, the read-only mounts' refresh).  See remote.c.
 */
#ifndef MLFS_FS_REMOTE_H
#define MLFS_FS_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct fs;

struct remote_opts {
	const char *url;        /* s3://bucket[/prefix] */
	const char *endpoint;   /* -o endpoint=URL, or NULL */
	const char *region;     /* -o region=NAME, or NULL */
	bool path_style;        /* -o path_style */
	uint64_t cache_size;    /* bytes; 0: no limit */
	unsigned import_ttl;    /* seconds; 0: 60 */
	unsigned lease_ttl;     /* seconds; 0: 30 */
};

/* Is STORE an S3 URL? */
bool remote_is_url(const char *store);

/*
 * remote_open: fs's S3-mode state (fs->remote), before remote_check or
 * remote_poll_start and any call below that takes fs; -ENOMEM.
 * remote_close frees it, after remote_stop; NULL-safe.
 */
int remote_open(struct fs *fs);
void remote_close(struct fs *fs);

/*
 * remote_check: before the daemon detaches.  Probes the endpoint, the
 * credentials and the bucket, checks the store's format, and takes the
 * writer's lease, or finds it held and makes the mount read-only
 * (fs->opts.read_only).  -errno with msg (one line, never a secret).
 */
int remote_check(struct fs *fs, const struct remote_opts *o, char *msg,
		 size_t msglen);

/*
 * remote_start: after it.  Opens the S3 store behind the block cache in
 * fs->opts.cache_dir as fs->store and starts the lease renewal (writer)
 * or the index refresh every import_ttl (readers).
 */
int remote_start(struct fs *fs, char *msg, size_t msglen);

/*
 * remote_catalog_trusted: may a fresh index come from the catalog alone
 * (repo_rebuild_trusted)?  Only when no lease was found: the last writer
 * gave it back at a clean unmount, after putting its last catalog with
 * its outbox empty.  A lease left by a crash says the catalog may lag
 * the bucket; a live writer's catalog may name what it has not exported.
 */
bool remote_catalog_trusted(struct fs *fs);

/*
 * remote_index_current: may this cache's index stand as it is?  False
 * when another mount wrote the prefix since this cache last did (the
 * lease moved on): the index is rebuilt from the bucket.
 */
bool remote_index_current(struct fs *fs);

/*
 * remote_refuses_change: true (and a line in uid's .mlfs/errors) when
 * this mount took the lease but is not sure of it now: it lost it
 * (fenced: read-only for good, fs->opts.read_only set), or could not
 * renew it in time (until a renewal succeeds).  False for every other
 * mount: fs->opts.read_only says the rest.
 */
bool remote_refuses_change(struct fs *fs, uid_t uid);

/*
 * remote_export_wait: may this mount put to the bucket now?  0 at once
 * for a reader or a local store.  A writer waits until its lease is seen
 * ours (after a pause, one GET of the lease, as the export gate does):
 * 0, or -EROFS once it finds the lease lost, or while it cannot renew it
 * in time.  `sync` asks before it puts the catalog, which does not go
 * through the outbox: a writer stalled past its lease must not put its
 * stale catalog over the new writer's.
 */
int remote_export_wait(struct fs *fs);

/*
 * remote_describe: .mlfs/cache's lines about the lease (mount_id, lease
 * writer|reader|fenced|unconfirmed, lease_generation, lease_why,
 * kept_outbox PATH), or "" for a mount with a local store.  Returns the
 * length written.
 */
int remote_describe(struct fs *fs, char *out, size_t len);

/*
 * remote_index_ready: the index opened (and rebuilt, or checked): only
 * then may remote_stop call its handoff clean.
 */
void remote_index_ready(struct fs *fs);

/*
 * remote_stop: stop the thread; a writer gives its lease back, expired
 * (and "clean" when the bucket holds everything), unless it lost it.
 */
void remote_stop(struct fs *fs);

/*
 * remote_poll_start: on a mount with a local store, start the thread that
 * re-imports changed s3:// sources (remote_start does it for S3 stores).
 */
int remote_poll_start(struct fs *fs);

/*
 * remote_head: the size and ETag of the object at url (s3://bucket/key,
 * read with the mount's endpoint, region and credentials), at most max
 * bytes.  -EINVAL (bad URL), -ENOENT, -EACCES, -EFBIG, -EIO, with msg.
 */
int remote_head(struct fs *fs, const char *url, uint64_t max, uint64_t *size,
		char *etag, size_t etaglen, char *msg, size_t msglen);

/*
 * remote_fetch: copy that object into the file out (from offset 0, in
 * ranges fetched in parallel), its ETag into etag and its size into
 * *size.  landed (may be NULL) is told, under the fetch's lock, each
 * time the bytes with no gap before them grow: [0, whole) are in out
 * and will not change; a negative return ends the fetch with it.  With
 * expect non-NULL every range must come with that ETag, and the object
 * carry it after the copy, or -ESTALE: a changed object is never taken
 * for the one pinned, nor are bytes of two objects mixed.  Errors as
 * remote_head's, with msg.
 */
int remote_fetch(struct fs *fs, const char *url, int out,
		 int (*landed)(void *arg, uint64_t whole), void *arg,
		 uint64_t max, const char *expect, char *etag, size_t etaglen,
		 uint64_t *size, char *msg, size_t msglen);

#endif
