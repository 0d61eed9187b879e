/* SPDX-License-Identifier: MIT */
/*
 * The block cache: a store layer that keeps object content on local disk
 * in front of a slower store (S3), the way FSx for Lustre sits in front of
 * a bucket.  bcache_open() takes a store and returns a store; every
 * store_* op works on the result, plus the controls below.
 *
 * Reads fetch content in blocks on first use (in parallel, with
 * sequential read-ahead), keep it under a size limit with LRU eviction,
 * and verify each block read from disk against its xxh3-64 checksum.
 * Objects whose key names their content's xxh3-128 (content_hash below)
 * are also verified whole, against that name, before any byte is served.
 * Writes go to a local outbox first and are exported to the inner store
 * in the background; the outbox survives a crash and a reopen.  The cache
 * persists across reopen and revalidates objects by ETag.
 */
#ifndef MLFS_CACHE_BCACHE_H
#define MLFS_CACHE_BCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hash.h"
#include "store.h"

#define BCACHE_BLOCK_SIZE_DEFAULT (1024 * 1024)	/* bytes */
#define BCACHE_FETCH_THREADS_DEFAULT 4
#define BCACHE_READAHEAD_DEFAULT 32		/* blocks */
#define BCACHE_RETRY_MS_DEFAULT 100		/* first export retry */

/* Longest state name bcache_state() writes, with its NUL. */
#define BCACHE_STATE_MAX 10

struct bcache_opts {
	/*
	 * An existing directory for the cache, used by one cache at a time
	 * (-EBUSY otherwise).  Holds lock, index/ (LMDB), blocks/ and
	 * outbox/.  Borrowed for the call.
	 */
	const char *dir;
	uint64_t size_limit;	/* bytes on disk, cached + outbox; 0: none */
	uint64_t min_free;	/* bytes to leave free on dir's file system */
	/* bytes; a power of two from 4 KiB to 16 MiB; 0: 1 MiB */
	uint32_t block_size;
	unsigned fetch_threads;	/* 0: 4; at most 64 */
	unsigned readahead_max;	/* blocks; 0: 32 */
	/*
	 * Seconds after which an object is revalidated (HEAD, compare the
	 * ETag) on its next access; 0: only on the first access after open.
	 */
	unsigned revalidate_ttl;
	/* First delay before retrying a failed export, doubling; 0: 100 ms */
	unsigned retry_ms;
	/*
	 * Hydrate: the first read of an object that misses queues the rest
	 * of it behind any demand reads, as FSx for Lustre does, when the
	 * object fits in half the size limit.  Random readers then find
	 * the object local soon instead of paying a round trip per block.
	 */
	bool hydrate;
	/*
	 * The export gate (NULL: always open), asked before each export
	 * with the cache's lock held, so it must not call into the cache:
	 * 0 exports, -EAGAIN holds exports for now (asked again every
	 * BCACHE_GATE_MS), -EROFS holds them for good (bcache_sync then
	 * fails with -EROFS).  An S3 writer closes it when it cannot be
	 * sure it still holds the lease.
	 */
	int (*may_export)(void *arg);
	/*
	 * Called (from the export thread, no lock held) when the inner
	 * store refused a create with -EEXIST: another writer made the
	 * key.  The entry stays in the outbox.  NULL: nothing is called.
	 */
	void (*conflict)(void *arg, const char *key);
	void *gate_arg;
	/*
	 * Keys starting with this prefix name their content (blobs named by
	 * their hash); NULL or "": none.  Their export first asks inner
	 * (head) and skips the upload when it already holds an object of
	 * that size, so a writer can put such a key into the outbox without
	 * asking inner whether it is new: a close never waits for inner.
	 * At most BCACHE_PREFIX_MAX bytes.  Borrowed for the call.
	 */
	const char *content_prefix;
	/*
	 * Content-addressed keys, or NULL for none.  Called for each
	 * version of a key found in inner (under the cache's lock: it must
	 * not call back into the cache): true if key names its content,
	 * with the content's xxh3-128 as hash_hex() writes it in hash.
	 * The first read of such an object fetches it whole and checks the
	 * hash (and so the size) before it returns a byte; reads that come
	 * meanwhile wait for that check.  Once checked, the checksum of
	 * every chunk is known, and a block fetched again (after eviction
	 * or a release) must match it.  A mismatch is -EBADMSG, counted in
	 * corrupt_objects, and nothing of the object stays cached.
	 */
	bool (*content_hash)(const char *key, char hash[HASH_HEX_LEN + 1]);
};

/* ms between two questions to a closed export gate */
#define BCACHE_GATE_MS 200

#define BCACHE_PREFIX_MAX 63

struct bcache_stats {
	uint64_t hits;			/* reads answered from local disk */
	uint64_t misses;		/* reads that waited for a fetch */
	uint64_t bytes_cached;		/* fetched or exported content kept */
	uint64_t bytes_outbox;		/* content not exported yet */
	uint64_t size_limit;		/* bytes; 0: none */
	uint64_t evictions;		/* blocks evicted for room */
	uint64_t corrupt;		/* blocks failing their checksum */
	uint64_t corrupt_objects;	/* fetched content not matching the
					 * hash its key names (each time) */
	uint64_t exports_queued;	/* outbox entries now */
	uint64_t exports_done;		/* exports that succeeded */
	uint64_t export_failures;	/* export attempts that failed */
	uint64_t fetches;		/* blocks fetched from inner */
	uint64_t fetch_bytes;		/* bytes fetched from the inner store */
	double fetch_seconds;		/* wall time with a fetch running */
	uint64_t fetch_threads;		/* fetch threads started */
};

/*
 * bcache_open: a store caching inner's content under o->dir.  On success
 * the new store owns inner and closes it at store_close(); on failure
 * inner stays the caller's.  Starts o->fetch_threads fetch threads, an
 * export thread and a janitor; store_close() stops them, leaving queued
 * exports in the outbox for the next open (which queues them again).
 *
 * The store's ops: get/get_range answer from the outbox, then from
 * cached blocks (verified), fetching what is missing; -EIO (or inner's
 * errno) when a missing block cannot be fetched, -EBADMSG when inner's
 * bytes of a content-addressed key do not match its hash (see
 * content_hash; the caller reports it and answers its own caller -EIO).
 * put/put_file write to the outbox (durably) and return; the export
 * happens later (create is exported as inner's create, put as put).
 * head/list pass through to inner, merged with the outbox; head falls
 * back to the cached size when inner fails.  del removes the key from
 * the outbox, the cache and inner.  open_fd is -EOPNOTSUPP: reads go
 * through the checksum.  tmp_path gives a path in the outbox staging
 * directory, so put_file renames instead of copying.
 *
 * Returns 0, -EINVAL (bad options), -EBUSY (dir in use), -ENOMEM, or an
 * errno from the file system.  *out is NULL on failure.
 */
int bcache_open(struct store *inner, const struct bcache_opts *o,
		struct store **out);

/* True if s was made by bcache_open(). */
bool bcache_is_cache(const struct store *s);

/*
 * bcache_sync: wait until key's export (key NULL: every export queued)
 * has finished, retrying failed ones at once rather than after their
 * backoff.  timeout_ms < 0 waits for ever.  Returns 0, -ETIMEDOUT, or
 * -EINVAL if s is not a cache.  Thread-safe; blocks.
 */
int bcache_sync(struct store *s, const char *key, int timeout_ms);

/*
 * bcache_prefetch: fetch every block of key in the background (FSx's
 * hsm_restore); returns once they are queued.  0 for content in the
 * outbox.  -ENOENT if inner has no such key, -EBADMSG for a version
 * found corrupt lately (see content_hash), or inner's errno.
 */
int bcache_prefetch(struct store *s, const char *key);

/*
 * bcache_release: drop key's cached blocks (FSx's hsm_release); later
 * reads fetch them again.  -EBUSY if key is in the outbox (not exported
 * yet).  0 if nothing was cached.
 */
int bcache_release(struct store *s, const char *key);

/*
 * bcache_state: write key's state into out (outlen bytes, at least
 * BCACHE_STATE_MAX): "local" (in the outbox, waiting), "exporting",
 * "synced" (in inner and fully cached), "cached" (partly cached) or
 * "released" (nothing cached, or never seen).  Never calls inner.
 * Returns 0, -ERANGE if out is too small, -EINVAL.
 */
int bcache_state(struct store *s, const char *key, char *out, size_t outlen);

/* bcache_cached_bytes: bytes of key held on local disk, or -EINVAL. */
ssize_t bcache_cached_bytes(struct store *s, const char *key);

/* bcache_stats: a consistent snapshot of the counters.  0 or -EINVAL. */
int bcache_stats(struct store *s, struct bcache_stats *st);

#endif
