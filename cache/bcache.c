/* SPDX-License-Identifier: MIT */
/*
 * The block cache, in front of a slow store (S3) as FSx for Lustre is in
 * front of a bucket.  It is a store wrapping a store: content is fetched
 * on first read in blocks, kept on local disk under a size limit with LRU
 * eviction, checked against xxh3-64 on every read from disk, and new
 * content is written to a local outbox and exported in the background.
 *
 * On disk, under the cache directory:
 *
 *   lock            flock'd while open: one cache per directory
 *   index/          LMDB.  "obj": store key -> struct bc_orec (size,
 *                   ETag, block size, last access).  "blk": object id
 *                   and big-endian block number -> one xxh3-64 per chunk
 *                   of that block; a record means "block present".
 *   blocks/<id>     one sparse file per object version; block n lives at
 *                   n * block_size.  <id> is the xxh3-128 of key, NUL,
 *                   ETag in hex, so a new version is a new file and old
 *                   bytes can never be served under a new ETag.
 *   outbox/<h>      content written through the cache, not exported yet;
 *                   <h> is the xxh3-128 of the key.  The queue is these
 *                   files: on open every one is queued again.
 *   outbox/<h>.key  the key itself (written before <h> is renamed in),
 *                   then "\ncreate" if it was put by create (exported by
 *                   inner's create: a claim another writer may refuse).
 *   outbox/tmp/     staging: tmp_path, puts in progress, export links.
 *
 * A sparse file per object rather than a file per block: a 1 GiB object
 * is one open, one fd and pread/pwrite at block offsets instead of 1024
 * files to create, open and unlink; a block is evicted by punching a hole
 * (FALLOC_FL_PUNCH_HOLE), and a whole version by one unlink.
 *
 * Checksums cover chunks of at most 64 KiB (block_size / chunk per
 * block), so a 128 KiB read verifies 128 KiB instead of re-reading and
 * hashing a whole 1 MiB block.  The index is a hint and checksums carry
 * correctness: block data is not fsync'd, index changes are committed in
 * batches, and a block whose bytes are lost, torn or punched fails its
 * check and is fetched again, never served.
 *
 * Content-addressed objects (bcache_opts.content_hash: mlfs's blobs, whose
 * key is the xxh3-128 of their bytes) are checked whole before any byte
 * of them is served, because a block cannot be judged alone against a
 * whole-object hash.  The check point is bc_verify(), on the read path:
 * the first read of such an object reads all of it through the cache
 * (fetched in parallel, with read-ahead and hydration, and kept as
 * usual), hashes it in order and compares; every read meanwhile waits
 * there, and no read returns a byte before the object is verified.  A
 * mismatch, or an object shorter than HEAD said, is -EBADMSG: the version
 * is dropped with its file, so nothing of it stays; reads of the same
 * version (key and ETag) answer -EBADMSG for BC_BAD_MS without fetching
 * it again, and a new ETag (the bucket repaired) is fetched afresh.
 * Success keeps the checksum of every chunk of the verified content in
 * memory, so a block fetched again later (evicted, released, or read
 * around a full cache) must match it.  "Verified" is not kept in the
 * index: the first read after open checks again, from the local disk
 * when every block is there.  The price is the time to the first byte of
 * a cold object, which becomes the time to fetch all of it.
 *
 * All index state is loaded into memory at open; LMDB is only written
 * (by the janitor, in one txn per batch) and read at open.
 *
 * Threads.  Callers (FUSE workers) enter any op concurrently.  A read
 * answers from the outbox, or pins the cached blocks it needs and copies
 * them out without a lock; missing blocks go on the fetch queue and the
 * reader waits on blk_cond for exactly its blocks.  o->fetch_threads
 * fetch threads pop jobs from the queue, a deque in which demand reads go
 * to the front and read-ahead and prefetch to the back.  A thread takes
 * its job's block and the blocks queued right after it (a run, at most
 * BC_RUN_BYTES and a fair share of them), reads them by one get_stream of
 * inner with no lock held, and pwrites and publishes each block under
 * c->lock as it arrives.  One export thread walks the outbox queue in put
 * order, exporting one entry at a time and retrying failures with
 * exponential backoff; a success turns the outbox file into a fully
 * cached object.  The janitor commits index changes every BC_FLUSH_MS
 * (sooner after BC_FLUSH_BATCH blocks) and punches the holes of evicted
 * blocks.  close stops all of them; exports still queued stay on disk.
 *
 * Locks, in order: c->ob_lock (the outbox file names: publishing,
 * adopting and deleting outbox files), then c->lock (everything in
 * memory).  c->flush_lock serialises index commits and is never held with
 * ob_lock.  No lock is held across a call into the inner store, an LMDB
 * commit or a block's pread/pwrite; c->lock covers only small metadata
 * syscalls on rare paths (opening a cache file, unlinking a dropped one).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>
#include <xxhash.h>

#include "bcache.h"
#include "hash.h"
#include "store.h"
#include "store_i.h"

#define BC_CHUNK (64 * 1024)		/* bytes per checksum, at most */
#define BC_BSIZE_MIN 4096
#define BC_BSIZE_MAX (16 * 1024 * 1024)
#define BC_CPB_MAX (BC_BSIZE_MAX / BC_CHUNK)	/* checksums per block */
#define BC_THREADS_MAX 64
#define BC_RUN_BYTES (64 * 1024 * 1024) /* one fetch's range, at most */
_Static_assert(BC_RUN_BYTES >= BC_BSIZE_MAX, "a run holds a block");
#define BC_FLUSH_MS 200			/* index commit period */
#define BC_FLUSH_BATCH 256		/* dirty blocks that wake the janitor */
#define BC_FLUSH_STEP 64		/* blocks copied per lock round */
#define BC_FD_MAX 256			/* cache files kept open */
#define BC_RETRY_MAX_MS 5000		/* export backoff ceiling */
#define BC_RECHECK_MS 10000		/* HEAD again after a failed one */
#define BC_BAD_MAX 64			/* corrupt versions remembered */
#define BC_BAD_MS 10000			/* fetch one again after this */
#define BC_READ_TRIES 4			/* checksum failures before -EIO */
#define BC_RESOLVE_TRIES 4		/* object replaced under a read */
#define BC_MAP_SIZE ((size_t)1 << 30)	/* LMDB map, bytes */
#define BC_OREC_VERSION 1
#define BC_ID_LEN 16
#define BC_HEX_LEN (2 * BC_ID_LEN)
#define BC_NAME_MAX 64			/* staging file names */
#define BC_ETAG_LEN 80

#define bc_container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

enum bc_bstate {
	BC_ABSENT,	/* not on disk */
	BC_QUEUED,	/* a fetch job for it is queued */
	BC_FETCHING,	/* a fetch thread is on it */
	BC_PRESENT,	/* on disk, checksums in csum[], in the LRU */
	BC_EVICTING,	/* evicted, on the punch list, hole not punched */
};

struct bc_link {
	struct bc_link *prev;
	struct bc_link *next;
};

/* Chained hash table node; key and hash are set by the owner. */
struct bc_hnode {
	struct bc_hnode *next;
	uint64_t hash;
	const char *key;
};

struct bc_htab {
	struct bc_hnode **b;	/* nb chains */
	size_t nb;		/* a power of two */
	size_t n;		/* nodes */
};

struct bc_obj;

struct bc_blk {
	struct bc_blk *prev;	/* LRU or punch list, under c->lock */
	struct bc_blk *next;
	struct bc_obj *obj;	/* owner; constant */
	uint32_t idx;		/* block number; constant */
	uint8_t state;		/* enum bc_bstate, under c->lock */
	bool dirty;		/* index record stale, under c->lock */
	uint16_t pins;		/* readers copying it out, under c->lock */
	int err;		/* last fetch's error or 0, under c->lock */
};

/*
 * One version (key, ETag) of an object.  Found through c->objs while
 * current; a replaced or deleted version is "dead" and lives on only
 * while referenced.  Fields marked constant are set before the object is
 * published and never change; the rest are under c->lock.
 */
struct bc_obj {
	struct bc_hnode hn;		/* in c->objs unless dead */
	char *key;			/* constant */
	char etag[BC_ETAG_LEN];		/* identity; constant */
	uint8_t id[BC_ID_LEN];		/* constant */
	char name[BC_HEX_LEN + 1];	/* file in blocks/; constant */
	uint64_t size;			/* bytes; constant */
	uint32_t nblocks;		/* constant */
	struct bc_blk *blks;		/* nblocks; see struct bc_blk */
	uint64_t *csum;			/* per chunk, valid when PRESENT */
	uint64_t cached;		/* bytes of PRESENT blocks */
	unsigned refs;
	unsigned epoch;			/* bumped by release and drop */
	bool dead;
	bool in_dirty;			/* on c->dirty (holds a ref) */
	bool check_failed;		/* last HEAD failed */
	struct bc_obj *dirty_next;
	int64_t atime;			/* seconds since the epoch */
	int64_t atime_saved;		/* as last written to the index */
	int64_t checked;		/* ms (monotonic) of last HEAD, or 0 */
	int fd;				/* blocks/<name>, -1 while closed */
	unsigned fd_users;		/* threads using fd */
	struct bc_link fdl;		/* on c->fds while fd >= 0 */
	uint64_t ra_off;		/* end of the previous read */
	uint32_t ra_blk;		/* last block of the previous read */
	uint32_t ra_win;		/* read-ahead window, blocks */
	bool hydrating;			/* hydration decided (and queued) */
	bool content;			/* key names its hash; constant */
	char want[HASH_HEX_LEN + 1];	/* that hash; constant */
	bool verified;			/* csum[] of every chunk is of the
					 * named content, blocks present or
					 * not */
	bool verifying;			/* a reader is checking it */
	int verify_err;			/* set when a check drops it */
};

/* An outbox entry: content written here, not exported yet. */
struct bc_out {
	struct bc_hnode hn;		/* in c->outs unless gone */
	char *key;			/* constant */
	char name[BC_HEX_LEN + 1];	/* outbox/<name>; constant */
	uint64_t size;			/* bytes; constant */
	int64_t mtime;			/* seconds since the epoch; constant */
	int fd;				/* read-only, on the data; constant */
	unsigned refs;			/* under c->lock */
	bool exporting;			/* under c->lock */
	bool gone;			/* replaced or removed, under c->lock */
	bool create;			/* put by create; constant */
	unsigned tries;			/* failed exports, under c->lock */
	int64_t next_try;		/* monotonic ms, under c->lock */
	struct bc_link q;		/* on c->outq unless gone */
};

/* A version to forget in the index at the next flush. */
struct bc_dead {
	struct bc_dead *next;
	uint8_t id[BC_ID_LEN];
	bool has_key;			/* also delete key's obj record */
	char key[];
};

/* A version found corrupt: not fetched again until it expires. */
struct bc_bad {
	uint8_t id[BC_ID_LEN];		/* of key and ETag */
	int64_t until;			/* monotonic ms; 0: unused */
};

struct bc_job {
	struct bc_obj *o;		/* referenced by the job */
	uint32_t idx;
	unsigned epoch;
};

struct bc_worker {
	struct bcache *c;
	pthread_t th;
	char *buf;			/* one block */
	uint64_t cs[BC_CPB_MAX];
};

/* The index record of an object, as stored in "obj". */
struct bc_orec {
	uint32_t version;
	uint32_t bsize;			/* bytes */
	uint64_t size;			/* bytes */
	int64_t atime;			/* seconds since the epoch */
	char etag[BC_ETAG_LEN];		/* NUL-terminated */
};
_Static_assert(sizeof(struct bc_orec) == 104, "bc_orec has padding");

struct bcache {
	struct store base;		/* first: ops cast store to bcache */
	struct store *inner;		/* owned */
	char *dir;			/* absolute */
	char *name;			/* "bcache:DIR" */
	int dirfd;
	int lockfd;			/* flock'd */
	int blkfd;			/* blocks/ */
	int outfd;			/* outbox/ */
	int tmpfd;			/* outbox/tmp/ */
	uint32_t bsize;			/* bytes; constant */
	uint32_t csize;			/* bytes per checksum; constant */
	uint32_t cpb;			/* checksums per block; constant */
	unsigned nworkers;
	unsigned ra_max;		/* blocks */
	bool hydrate;			/* constant; see bcache_opts */
	int (*may_export)(void *);	/* constant; see bcache_opts */
	void (*conflict)(void *, const char *);
	void *gate_arg;
	/* constant; see bcache_opts */
	bool (*content_hash)(const char *key, char hash[HASH_HEX_LEN + 1]);
	int64_t ttl_ms;			/* 0: once per open */
	unsigned retry_ms;
	char content_prefix[BCACHE_PREFIX_MAX + 1]; /* constant; "": none */
	uint64_t limit;			/* bytes; 0: none */
	uint64_t min_free;		/* bytes */
	uint64_t salt;
	_Atomic unsigned long seq;	/* staging names made */

	MDB_env *env;
	MDB_dbi dbi_obj;
	MDB_dbi dbi_blk;

	pthread_mutex_t ob_lock;
	pthread_mutex_t flush_lock;
	uint64_t *flbuf;		/* flush scratch, under flush_lock */

	pthread_mutex_t lock;
	pthread_cond_t blk_cond;	/* a block changed state */
	pthread_cond_t fetch_cond;	/* the fetch queue grew, or stop */
	pthread_cond_t out_cond;	/* an outbox entry finished or went */
	pthread_cond_t export_cond;	/* an outbox entry is due, or stop */
	pthread_cond_t jan_cond;	/* many dirty blocks, or stop */
	/* everything below is under lock */
	bool stop;
	struct bc_htab objs;		/* key -> current bc_obj */
	struct bc_htab outs;		/* key -> bc_out */
	struct bc_link outq;		/* bc_out in put order */
	struct bc_blk lru;		/* PRESENT blocks, newest first */
	struct bc_blk punch;		/* EVICTING blocks */
	struct bc_link fds;		/* objects with an fd, newest first */
	unsigned nfds;
	struct bc_job *q;		/* fetch deque, qcap slots */
	size_t qcap;
	size_t qhead;
	size_t qlen;
	struct bc_obj *dirty;		/* objects with index changes */
	struct bc_bad bad[BC_BAD_MAX];	/* a ring */
	unsigned bad_next;
	struct bc_dead *dead;
	unsigned ndirty;		/* blocks dirtied since last flush */
	uint64_t cached_bytes;
	uint64_t outbox_bytes;
	uint64_t reserved;		/* bytes promised to writes in flight */
	uint64_t punching;		/* bytes evicted, holes not punched */
	unsigned fetch_active;
	int64_t fetch_t0;		/* ns, when fetch_active left 0 */
	uint64_t fetch_ns;
	struct bcache_stats st;

	struct bc_worker *workers;	/* nworkers */
	unsigned nstarted;
	pthread_t exporter;
	pthread_t janitor;
	bool exporter_started;
	bool janitor_started;
	char *xbuf;			/* export thread's block buffer */
	uint64_t *xcs;			/* export thread's checksum buffer */
	size_t xcs_len;			/* entries in xcs */
};

static const struct store_ops bc_ops;

static struct bcache *to_bc(struct store *s)
{
	return (struct bcache *)s;
}

/* ---- small helpers ---- */

static int64_t bc_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t bc_now_ms(void)
{
	return bc_now_ns() / 1000000;
}

static int64_t bc_real_s(void)
{
	return (int64_t)time(NULL);
}

static int bc_cond_init(pthread_cond_t *cond)
{
	pthread_condattr_t a;
	int rc;

	rc = pthread_condattr_init(&a);
	if (rc)
		return -rc;
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	rc = pthread_cond_init(cond, &a);
	pthread_condattr_destroy(&a);
	return -rc;
}

/* Wait on cond for at most ms milliseconds (ms < 0: no limit). */
static void bc_wait_ms(pthread_cond_t *cond, pthread_mutex_t *m, int64_t ms)
{
	struct timespec ts;
	int64_t ns;

	if (ms < 0) {
		pthread_cond_wait(cond, m);
		return;
	}
	ns = bc_now_ns() + ms * 1000000;
	ts.tv_sec = ns / 1000000000;
	ts.tv_nsec = ns % 1000000000;
	pthread_cond_timedwait(cond, m, &ts);
}

static void bc_link_init(struct bc_link *l)
{
	l->prev = l;
	l->next = l;
}

static void bc_link_del(struct bc_link *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	bc_link_init(l);
}

static void bc_link_add_head(struct bc_link *head, struct bc_link *l)
{
	l->next = head->next;
	l->prev = head;
	head->next->prev = l;
	head->next = l;
}

static void bc_link_add_tail(struct bc_link *head, struct bc_link *l)
{
	bc_link_add_head(head->prev, l);
}

static void bc_blist_init(struct bc_blk *head)
{
	head->prev = head;
	head->next = head;
}

static void bc_blist_del(struct bc_blk *b)
{
	b->prev->next = b->next;
	b->next->prev = b->prev;
	b->prev = NULL;
	b->next = NULL;
}

static void bc_blist_add(struct bc_blk *head, struct bc_blk *b)
{
	b->next = head->next;
	b->prev = head;
	head->next->prev = b;
	head->next = b;
}

static void bc_hex(const uint8_t *id, char out[BC_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	int i;

	for (i = 0; i < BC_ID_LEN; i++) {
		out[2 * i] = digits[id[i] >> 4];
		out[2 * i + 1] = digits[id[i] & 15];
	}
	out[BC_HEX_LEN] = '\0';
}

static void bc_hash128(const void *buf, size_t len, uint8_t id[BC_ID_LEN])
{
	XXH128_canonical_t canon;

	XXH128_canonicalFromHash(&canon, XXH3_128bits(buf, len));
	memcpy(id, canon.digest, BC_ID_LEN);
}

/* The id of a version: xxh3-128 of key, NUL, etag. */
static void bc_obj_id(const char *key, const char *etag,
		      uint8_t id[BC_ID_LEN])
{
	char buf[STORE_KEY_MAX + 1 + BC_ETAG_LEN];
	size_t klen = strlen(key);
	size_t elen = strnlen(etag, BC_ETAG_LEN - 1);

	memcpy(buf, key, klen);
	buf[klen] = '\0';
	memcpy(buf + klen + 1, etag, elen);
	bc_hash128(buf, klen + 1 + elen, id);
}

/*
 * What identifies a version: the ETag, or for a store without one its
 * size and mtime (a weaker check, but the best such a store offers).
 */
static void bc_ident(const struct store_stat *st, char out[BC_ETAG_LEN])
{
	if (st->etag[0]) {
		snprintf(out, BC_ETAG_LEN, "%s", st->etag);
		return;
	}
	snprintf(out, BC_ETAG_LEN, "size=%llu,mtime=%lld",
		 (unsigned long long)st->size, (long long)st->mtime);
}

static int bc_fsync(int fd)
{
	return fsync(fd) < 0 ? -errno : 0;
}

/* A staging name in outbox/tmp no other thread or process will pick. */
static void bc_tmp_name(struct bcache *c, const char *what, char *out,
			size_t outlen)
{
	unsigned long seq = atomic_fetch_add(&c->seq, 1);
	uint64_t x = c->salt + seq * 0x9e3779b97f4a7c15ULL;

	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	x ^= x >> 31;
	snprintf(out, outlen, "%s-%ld-%lu-%016llx", what, (long)getpid(), seq,
		 (unsigned long long)x);
}

/* Create a fresh staging file; its name goes to name. */
static int bc_tmp_create(struct bcache *c, const char *what, char *name,
			 size_t namelen)
{
	int fd;
	int i;

	for (i = 0; i < 16; i++) {
		bc_tmp_name(c, what, name, namelen);
		fd = openat(c->tmpfd, name,
			    O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

/* ---- hash table ---- */

static uint64_t bc_hash(const char *key)
{
	return XXH3_64bits(key, strlen(key));
}

static int bc_htab_init(struct bc_htab *t, size_t nb)
{
	t->b = calloc(nb, sizeof(*t->b));
	if (!t->b)
		return -ENOMEM;
	t->nb = nb;
	t->n = 0;
	return 0;
}

static struct bc_hnode *bc_htab_find(const struct bc_htab *t,
				     const char *key)
{
	uint64_t h = bc_hash(key);
	struct bc_hnode *n;

	for (n = t->b[h & (t->nb - 1)]; n; n = n->next) {
		if (n->hash == h && strcmp(n->key, key) == 0)
			return n;
	}
	return NULL;
}

/* Double the chains; if that fails they just get longer. */
static void bc_htab_grow(struct bc_htab *t)
{
	struct bc_hnode **nb;
	struct bc_hnode *n;
	struct bc_hnode *next;
	size_t nnb = t->nb * 2;
	size_t i;

	nb = calloc(nnb, sizeof(*nb));
	if (!nb)
		return;
	for (i = 0; i < t->nb; i++) {
		for (n = t->b[i]; n; n = next) {
			next = n->next;
			n->next = nb[n->hash & (nnb - 1)];
			nb[n->hash & (nnb - 1)] = n;
		}
	}
	free(t->b);
	t->b = nb;
	t->nb = nnb;
}

static void bc_htab_add(struct bc_htab *t, struct bc_hnode *n)
{
	size_t i;

	if (t->n >= t->nb)
		bc_htab_grow(t);
	i = n->hash & (t->nb - 1);
	n->next = t->b[i];
	t->b[i] = n;
	t->n++;
}

static void bc_htab_del(struct bc_htab *t, struct bc_hnode *n)
{
	struct bc_hnode **pp = &t->b[n->hash & (t->nb - 1)];

	while (*pp != n)
		pp = &(*pp)->next;
	*pp = n->next;
	n->next = NULL;
	t->n--;
}

/* ---- objects ---- */

static uint32_t bc_blen(const struct bcache *c, const struct bc_obj *o,
			uint32_t idx)
{
	uint64_t off = (uint64_t)idx * c->bsize;
	uint64_t left = o->size - off;

	return left < c->bsize ? (uint32_t)left : c->bsize;
}

/* Checksums in block idx (fewer than cpb in the last block). */
static uint32_t bc_nch(const struct bcache *c, const struct bc_obj *o,
		       uint32_t idx)
{
	return (bc_blen(c, o, idx) + c->csize - 1) / c->csize;
}

static void bc_obj_free(struct bc_obj *o)
{
	if (!o)
		return;
	if (o->fd >= 0)
		close(o->fd);
	free(o->csum);
	free(o->blks);
	free(o->key);
	free(o);
}

/* A new version with no block present and one reference, the caller's. */
static int bc_obj_new(struct bcache *c, const char *key, const char *etag,
		      uint64_t size, struct bc_obj **out)
{
	uint64_t nb = (size + c->bsize - 1) / c->bsize;
	uint64_t nch = (size + c->csize - 1) / c->csize;
	struct bc_obj *o;
	uint32_t i;

	*out = NULL;
	if (nb > UINT32_MAX || nch > SIZE_MAX / sizeof(uint64_t))
		return -EFBIG;
	o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->fd = -1;
	o->key = strdup(key);
	o->blks = calloc(nb ? nb : 1, sizeof(*o->blks));
	o->csum = calloc(nch ? nch : 1, sizeof(*o->csum));
	if (!o->key || !o->blks || !o->csum) {
		bc_obj_free(o);
		return -ENOMEM;
	}
	snprintf(o->etag, sizeof(o->etag), "%s", etag);
	bc_obj_id(key, o->etag, o->id);
	bc_hex(o->id, o->name);
	o->size = size;
	o->nblocks = (uint32_t)nb;
	for (i = 0; i < o->nblocks; i++) {
		o->blks[i].obj = o;
		o->blks[i].idx = i;
	}
	if (c->content_hash)
		o->content = c->content_hash(o->key, o->want);
	o->hn.key = o->key;
	o->hn.hash = bc_hash(o->key);
	o->refs = 1;
	o->atime = bc_real_s();
	bc_link_init(&o->fdl);
	*out = o;
	return 0;
}

static void bc_obj_unref_locked(struct bcache *c, struct bc_obj *o)
{
	if (--o->refs)
		return;
	if (o->fd >= 0) {
		bc_link_del(&o->fdl);
		c->nfds--;
	}
	bc_obj_free(o);
}

static struct bc_obj *bc_obj_find_locked(struct bcache *c, const char *key)
{
	struct bc_hnode *n = bc_htab_find(&c->objs, key);

	return n ? bc_container_of(n, struct bc_obj, hn) : NULL;
}

static void bc_obj_dirty_locked(struct bcache *c, struct bc_obj *o)
{
	if (o->in_dirty || o->dead)
		return;
	o->in_dirty = true;
	o->refs++;
	o->dirty_next = c->dirty;
	c->dirty = o;
}

static void bc_blk_dirty_locked(struct bcache *c, struct bc_blk *b)
{
	b->dirty = true;
	bc_obj_dirty_locked(c, b->obj);
	if (++c->ndirty == BC_FLUSH_BATCH)
		pthread_cond_signal(&c->jan_cond);
}

/* Note an access; the index learns of it at the next flush. */
static void bc_obj_touch_locked(struct bcache *c, struct bc_obj *o)
{
	int64_t now = bc_real_s();

	o->atime = now;
	if (now != o->atime_saved)
		bc_obj_dirty_locked(c, o);
}

/* Publish o (the caller's reference passes to the table). */
static void bc_obj_insert_locked(struct bcache *c, struct bc_obj *o)
{
	bc_htab_add(&c->objs, &o->hn);
	bc_obj_dirty_locked(c, o);
}

/* The fd of o's cache file, opened if needed; pair with bc_fd_put. */
static int bc_fd_get_locked(struct bcache *c, struct bc_obj *o)
{
	struct bc_link *l;
	struct bc_obj *v;
	int fd;

	if (o->dead && o->fd < 0)
		return -ESTALE;	/* its file is gone: never recreate it */
	if (o->fd < 0) {
		fd = openat(c->blkfd, o->name, O_RDWR | O_CREAT | O_CLOEXEC,
			    0600);
		if (fd < 0)
			return -errno;
		o->fd = fd;
		bc_link_add_head(&c->fds, &o->fdl);
		c->nfds++;
	} else {
		bc_link_del(&o->fdl);
		bc_link_add_head(&c->fds, &o->fdl);
	}
	o->fd_users++;
	/* Close the least recently used idle files beyond the cap. */
	for (l = c->fds.prev; c->nfds > BC_FD_MAX && l != &c->fds;) {
		v = bc_container_of(l, struct bc_obj, fdl);
		l = l->prev;
		if (v->fd_users)
			continue;
		bc_link_del(&v->fdl);
		close(v->fd);
		v->fd = -1;
		c->nfds--;
	}
	return o->fd;
}

static void bc_fd_put_locked(struct bc_obj *o)
{
	o->fd_users--;
}

/* Remember to delete version o (and, with_key, its key) from the index. */
static void bc_dead_add_locked(struct bcache *c, const uint8_t *id,
			       const char *key)
{
	size_t klen = key ? strlen(key) + 1 : 0;
	struct bc_dead *d;

	d = malloc(sizeof(*d) + klen);
	if (!d)
		return;	/* the index keeps a stale record; open drops it */
	memcpy(d->id, id, BC_ID_LEN);
	d->has_key = key != NULL;
	if (key)
		memcpy(d->key, key, klen);
	d->next = c->dead;
	c->dead = d;
}

/*
 * Forget version o: out of the table, its blocks uncounted and its file
 * unlinked (under the lock, so a new version's file of the same name
 * cannot be created in between).  Threads still holding o see o->dead;
 * fetches for it are discarded.
 */
static void bc_obj_drop_locked(struct bcache *c, struct bc_obj *o)
{
	struct bc_blk *b;
	uint32_t i;

	bc_htab_del(&c->objs, &o->hn);
	o->dead = true;
	o->epoch++;
	for (i = 0; i < o->nblocks; i++) {
		b = &o->blks[i];
		if (b->state == BC_PRESENT) {
			bc_blist_del(b);
			b->state = BC_ABSENT;
		} else if (b->state == BC_QUEUED) {
			b->state = BC_ABSENT;
		}
	}
	c->cached_bytes -= o->cached;
	o->cached = 0;
	unlinkat(c->blkfd, o->name, 0);
	bc_dead_add_locked(c, o->id, o->key);
	pthread_cond_broadcast(&c->blk_cond);
	bc_obj_unref_locked(c, o);	/* the table's reference */
}

/*
 * Inner's bytes of content-addressed o do not match its name: count it
 * and drop o with its file, so that nothing of it stays and the next
 * read fetches the key afresh.  Threads waiting on o get -EBADMSG.
 */
static void bc_obj_corrupt_locked(struct bcache *c, struct bc_obj *o)
{
	struct bc_bad *bad = &c->bad[c->bad_next++ % BC_BAD_MAX];

	c->st.corrupt_objects++;
	o->verify_err = -EBADMSG;
	/*
	 * The kernel retries a failed read, and users do: answer them for a
	 * while without fetching the same bad bytes again (a new ETag, the
	 * bucket repaired, is fetched at once).
	 */
	memcpy(bad->id, o->id, BC_ID_LEN);
	bad->until = bc_now_ms() + BC_BAD_MS;
	if (!o->dead)
		bc_obj_drop_locked(c, o);
}

/* Was version (key, ident) found corrupt lately? */
static bool bc_is_bad_locked(struct bcache *c, const char *key,
			     const char *ident, int64_t now)
{
	uint8_t id[BC_ID_LEN];
	unsigned i;

	bc_obj_id(key, ident, id);
	for (i = 0; i < BC_BAD_MAX; i++) {
		if (c->bad[i].until > now &&
		    memcmp(c->bad[i].id, id, BC_ID_LEN) == 0)
			return true;
	}
	return false;
}

/* ---- space ---- */

/* Bytes the cache may still write before the free-space floor. */
static int64_t bc_disk_room(struct bcache *c)
{
	struct statvfs sv;

	if (!c->min_free)
		return INT64_MAX;
	if (fstatvfs(c->dirfd, &sv) < 0)
		return INT64_MAX;
	return (int64_t)((uint64_t)sv.f_bavail * sv.f_frsize) -
	       (int64_t)c->min_free;
}

/* Move a PRESENT block to the punch list. */
static void bc_evict_blk_locked(struct bcache *c, struct bc_blk *b)
{
	struct bc_obj *o = b->obj;
	uint32_t blen = bc_blen(c, o, b->idx);

	bc_blist_del(b);
	b->state = BC_EVICTING;
	bc_blk_dirty_locked(c, b);
	o->cached -= blen;
	c->cached_bytes -= blen;
	c->punching += blen;
	o->refs++;	/* the punch list's */
	bc_blist_add(&c->punch, b);
}

/* Evict the least recently used unpinned block; false if none. */
static bool bc_evict_one_locked(struct bcache *c)
{
	struct bc_blk *b;

	for (b = c->lru.prev; b != &c->lru; b = b->prev) {
		if (!b->pins)
			break;
	}
	if (b == &c->lru)
		return false;
	bc_evict_blk_locked(c, b);
	c->st.evictions++;
	return true;
}

/*
 * Promise n more bytes on disk, evicting cached blocks as needed, under
 * the size limit and above the free-space floor (room, from
 * bc_disk_room() measured just before).  -ENOSPC if evicting everything
 * evictable is not enough; outbox content is never evicted.
 */
static int bc_reserve_locked(struct bcache *c, uint64_t n, int64_t room)
{
	uint64_t used;
	bool over;

	/* Fail at once if evicting everything would not be enough. */
	if (c->limit && n + c->outbox_bytes + c->reserved > c->limit)
		return -ENOSPC;
	if (room != INT64_MAX &&
	    (int64_t)(c->reserved + n) >
		    room + (int64_t)(c->punching + c->cached_bytes))
		return -ENOSPC;
	for (;;) {
		used = c->cached_bytes + c->outbox_bytes + c->reserved;
		over = c->limit && used + n > c->limit;
		if (room != INT64_MAX &&
		    (int64_t)(c->reserved + n) > room + (int64_t)c->punching)
			over = true;
		if (!over) {
			c->reserved += n;
			return 0;
		}
		if (!bc_evict_one_locked(c))
			return -ENOSPC;
	}
}

static int bc_reserve(struct bcache *c, uint64_t n)
{
	int64_t room = bc_disk_room(c);
	int rc;

	pthread_mutex_lock(&c->lock);
	rc = bc_reserve_locked(c, n, room);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

static void bc_unreserve(struct bcache *c, uint64_t n)
{
	pthread_mutex_lock(&c->lock);
	c->reserved -= n;
	pthread_mutex_unlock(&c->lock);
}

/*
 * Punch the holes of evicted blocks, outside the lock.  A block stays
 * EVICTING until its hole is punched, so no fetch writes it meanwhile.
 */
static void bc_punch_drain(struct bcache *c)
{
	struct bc_blk *b;
	struct bc_obj *o;
	uint32_t blen;
	int fd;

	pthread_mutex_lock(&c->lock);
	while (c->punch.next != &c->punch) {
		b = c->punch.prev;
		bc_blist_del(b);
		o = b->obj;
		blen = bc_blen(c, o, b->idx);
		fd = o->dead ? -1 : bc_fd_get_locked(c, o);
		pthread_mutex_unlock(&c->lock);
		/* A failed punch leaves bytes on disk, never wrong ones. */
		if (fd >= 0)
			fallocate(fd,
				  FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				  (off_t)b->idx * c->bsize, blen);
		pthread_mutex_lock(&c->lock);
		if (fd >= 0)
			bc_fd_put_locked(o);
		c->punching -= blen;
		if (b->state == BC_EVICTING) {
			b->state = BC_ABSENT;
			b->err = 0;
		}
		pthread_cond_broadcast(&c->blk_cond);
		bc_obj_unref_locked(c, o);
	}
	pthread_mutex_unlock(&c->lock);
}

/* ---- the fetch queue ---- */

static int bc_q_push_locked(struct bcache *c, struct bc_job job, bool front)
{
	struct bc_job *q;
	size_t cap;
	size_t i;

	if (c->qlen == c->qcap) {
		cap = c->qcap ? c->qcap * 2 : 64;
		q = malloc(cap * sizeof(*q));
		if (!q)
			return -ENOMEM;
		for (i = 0; i < c->qlen; i++)
			q[i] = c->q[(c->qhead + i) % c->qcap];
		free(c->q);
		c->q = q;
		c->qcap = cap;
		c->qhead = 0;
	}
	if (front) {
		c->qhead = (c->qhead + c->qcap - 1) % c->qcap;
		c->q[c->qhead] = job;
	} else {
		c->q[(c->qhead + c->qlen) % c->qcap] = job;
	}
	c->qlen++;
	return 0;
}

static bool bc_q_pop_locked(struct bcache *c, struct bc_job *job)
{
	if (!c->qlen)
		return false;
	*job = c->q[c->qhead];
	c->qhead = (c->qhead + 1) % c->qcap;
	c->qlen--;
	return true;
}

/*
 * Ask for block idx of o: an absent block is queued; a queued one asked
 * for at the front (a demand read) gets a second job there, and whichever
 * job runs first fetches it.
 */
static int bc_want_locked(struct bcache *c, struct bc_obj *o, uint32_t idx,
			  bool front)
{
	struct bc_blk *b = &o->blks[idx];
	struct bc_job job = { o, idx, o->epoch };
	int rc;

	if (o->dead)
		return 0;
	if (b->state != BC_ABSENT && !(b->state == BC_QUEUED && front))
		return 0;
	rc = bc_q_push_locked(c, job, front);
	if (rc < 0)
		return rc;
	o->refs++;
	b->state = BC_QUEUED;
	b->err = 0;
	pthread_cond_signal(&c->fetch_cond);
	return 0;
}

/* ---- fetch threads ---- */

static void bc_fetch_begin_locked(struct bcache *c)
{
	if (c->fetch_active++ == 0)
		c->fetch_t0 = bc_now_ns();
}

static void bc_fetch_end_locked(struct bcache *c)
{
	if (--c->fetch_active == 0)
		c->fetch_ns += (uint64_t)(bc_now_ns() - c->fetch_t0);
}

/*
 * The end of block b's fetch: rc 0 with its bytes on disk and their
 * checksums in cs, or the error.  Publishes b, or gives it up (ABSENT
 * with the error); a fetch made void by a release or a drop (o's epoch
 * moved on) publishes nothing.  changed: inner's object was not what
 * HEAD said.  Returns rc, or -EBADMSG if the bytes are not those o was
 * verified with.
 */
static int bc_fetch_done_locked(struct bcache *c, struct bc_obj *o,
				struct bc_blk *b, unsigned epoch, int rc,
				const uint64_t *cs, bool changed)
{
	uint32_t blen = bc_blen(c, o, b->idx);
	uint32_t nch = bc_nch(c, o, b->idx);

	/* Not the bytes o was verified with: inner changed since. */
	if (rc == 0 && o->verified &&
	    memcmp(&o->csum[(uint64_t)b->idx * c->cpb], cs,
		   nch * sizeof(*cs)) != 0)
		rc = -EBADMSG;
	if (rc == -EBADMSG && o->verified && !o->dead)
		bc_obj_corrupt_locked(c, o);	/* else its verifier counts */
	if (rc == 0) {
		c->st.fetches++;
		c->st.fetch_bytes += blen;
	}
	if (rc == 0 && !o->dead && o->epoch == epoch) {
		memcpy(&o->csum[(uint64_t)b->idx * c->cpb], cs,
		       nch * sizeof(*cs));
		b->state = BC_PRESENT;
		b->err = 0;
		bc_blist_add(&c->lru, b);
		o->cached += blen;
		c->cached_bytes += blen;
		bc_blk_dirty_locked(c, b);
	} else {
		b->state = BC_ABSENT;
		b->err = rc;
		if (changed)
			o->checked = 0;	/* revalidate on the next access */
	}
	pthread_cond_broadcast(&c->blk_cond);
	return rc;
}

/*
 * A run of blocks of one object, fetched by one ranged read of inner (one
 * GET: the local S3 server spends 1.4 CPU-s a GiB on 64 MiB ranges and
 * 2.0-2.2 on 8 MiB ones) and published block by block as it arrives, so
 * the run's first block is served as soon as a single block's fetch
 * would be.  Its blocks are FETCHING and the run's until done.
 */
struct bc_run {
	struct bcache *c;
	struct bc_worker *w;
	struct bc_obj *o;		/* referenced by the worker's job */
	unsigned epoch;
	int fd;
	uint32_t b0;			/* first block */
	uint32_t n;			/* blocks */
	uint32_t done;			/* blocks published or given up */
	uint32_t fill;			/* bytes of block b0 + done in buf */
	uint64_t next;			/* object offset the run needs */
};

/* Block b0 + done is whole in w->buf: write it and publish it. */
static int bc_run_block(struct bc_run *r)
{
	struct bcache *c = r->c;
	struct bc_worker *w = r->w;
	struct bc_obj *o = r->o;
	struct bc_blk *b = &o->blks[r->b0 + r->done];
	uint64_t off = (uint64_t)b->idx * c->bsize;
	uint32_t blen = bc_blen(c, o, b->idx);
	uint32_t nch = bc_nch(c, o, b->idx);
	bool reserved;
	uint32_t i;
	uint32_t cl;
	int rc;

	for (i = 0; i < nch; i++) {
		cl = blen - i * c->csize;
		if (cl > c->csize)
			cl = c->csize;
		w->cs[i] = XXH3_64bits(w->buf + (size_t)i * c->csize, cl);
	}
	rc = bc_reserve(c, blen);
	reserved = rc == 0;
	bc_punch_drain(c);
	if (rc == 0)
		rc = store_write_full(r->fd, w->buf, blen, (int64_t)off);
	pthread_mutex_lock(&c->lock);
	if (reserved)
		c->reserved -= blen;
	rc = bc_fetch_done_locked(c, o, b, r->epoch, rc, w->cs, false);
	/* released or dropped meanwhile: the rest of the run is void too */
	if (rc == 0 && (o->dead || o->epoch != r->epoch))
		rc = -ECANCELED;
	pthread_mutex_unlock(&c->lock);
	r->done++;
	r->fill = 0;
	return rc;
}

/* store_sink_fn of a run: the range's bytes, in order, maybe again. */
static int bc_run_sink(void *arg, uint64_t off, const void *p, size_t n)
{
	struct bc_run *r = arg;
	const char *s = p;
	uint32_t blen;
	size_t take;
	int rc;

	if (off > r->next)
		return -EIO;	/* a hole: a store that skipped bytes */
	if (off + n <= r->next)
		return 0;	/* handed again after a retry */
	s += r->next - off;
	n -= (size_t)(r->next - off);
	while (n) {
		if (r->done == r->n)
			return -EIO;	/* more than the range */
		blen = bc_blen(r->c, r->o, r->b0 + r->done);
		take = blen - r->fill < n ? blen - r->fill : n;
		memcpy(r->w->buf + r->fill, s, take);
		r->fill += (uint32_t)take;
		r->next += take;
		s += take;
		n -= take;
		if (r->fill == blen) {
			rc = bc_run_block(r);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

/*
 * Fetch blocks b0 .. b0 + n - 1 (FETCHING, consecutive) of o into the
 * cache.  Called and returns with c->lock held; drops it for the store
 * call and the writes.
 */
static void bc_fetch_run(struct bcache *c, struct bc_worker *w,
			 struct bc_obj *o, uint32_t b0, uint32_t n,
			 unsigned epoch)
{
	struct bc_run r = {
		.c = c, .w = w, .o = o, .epoch = epoch, .b0 = b0, .n = n,
		.next = (uint64_t)b0 * c->bsize,
	};
	uint64_t len = 0;
	bool changed = false;
	ssize_t got;
	uint32_t i;
	int rc;

	for (i = b0; i < b0 + n; i++)
		len += bc_blen(c, o, i);
	r.fd = bc_fd_get_locked(c, o);
	if (r.fd < 0) {
		for (i = b0; i < b0 + n; i++) {
			o->blks[i].state = BC_ABSENT;
			o->blks[i].err = r.fd == -ESTALE ? 0 : r.fd;
		}
		pthread_cond_broadcast(&c->blk_cond);
		return;
	}
	bc_fetch_begin_locked(c);
	pthread_mutex_unlock(&c->lock);

	got = store_get_stream(c->inner, o->key, r.next, len, bc_run_sink,
			       &r);
	rc = got < 0 ? (int)got : 0;
	if (rc == 0 && r.done < n) {
		changed = true;	/* shorter than HEAD said */
		/* content named by its hash never changes size */
		rc = o->content ? -EBADMSG : -EIO;
	}

	pthread_mutex_lock(&c->lock);
	for (i = b0 + r.done; i < b0 + n; i++) {
		if (rc != -ECANCELED) {
			bc_fetch_done_locked(c, o, &o->blks[i], epoch, rc,
					     NULL, changed);
			continue;
		}
		/* void, not failed: nothing to report */
		o->blks[i].state = BC_ABSENT;
		o->blks[i].err = 0;
	}
	pthread_cond_broadcast(&c->blk_cond);
	bc_fetch_end_locked(c);
	bc_fd_put_locked(o);
}

/*
 * The run a fetch thread takes with job's block: the blocks queued right
 * after it, up to BC_RUN_BYTES, and no more than a fair share of them
 * among the fetch threads, so a short object is still fetched in
 * parallel.  Marks them FETCHING; their own jobs find them taken.
 */
static uint32_t bc_run_take_locked(struct bcache *c, struct bc_obj *o,
				   uint32_t b0)
{
	uint32_t max = BC_RUN_BYTES / c->bsize;	/* >= 4: BC_BSIZE_MAX */
	uint32_t lim = max * c->nworkers;
	uint32_t k = 1;
	uint32_t n;
	uint32_t i;

	while (k < lim && (uint64_t)b0 + k < o->nblocks &&
	       o->blks[b0 + k].state == BC_QUEUED)
		k++;
	n = (k + c->nworkers - 1) / c->nworkers;
	if (n > max)
		n = max;
	for (i = 0; i < n; i++)
		o->blks[b0 + i].state = BC_FETCHING;
	return n;
}

static void *bc_fetch_main(void *arg)
{
	struct bc_worker *w = arg;
	struct bcache *c = w->c;
	struct bc_job job;
	struct bc_blk *b;
	uint32_t n;

	pthread_mutex_lock(&c->lock);
	while (!c->stop) {
		if (!bc_q_pop_locked(c, &job)) {
			pthread_cond_wait(&c->fetch_cond, &c->lock);
			continue;
		}
		b = &job.o->blks[job.idx];
		if (!job.o->dead && job.epoch == job.o->epoch &&
		    b->state == BC_QUEUED) {
			n = bc_run_take_locked(c, job.o, job.idx);
			bc_fetch_run(c, w, job.o, job.idx, n, job.epoch);
		}
		bc_obj_unref_locked(c, job.o);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* ---- reading ---- */

/*
 * Sequential read-ahead: a read continuing the previous one (or starting
 * the object) keeps a window of blocks queued past its end, doubling the
 * window each time the reader enters a new block, up to ra_max; any other
 * read closes the window.
 */
static void bc_readahead_locked(struct bcache *c, struct bc_obj *o,
				uint64_t off, uint64_t end, uint32_t b1)
{
	bool seq;
	uint32_t i;

	seq = off == 0 || (o->ra_off && off <= o->ra_off + c->bsize &&
			   off + c->bsize >= o->ra_off);
	if (!seq)
		o->ra_win = 0;
	else if (o->ra_win == 0)
		o->ra_win = 1;
	else if (b1 > o->ra_blk)
		o->ra_win = o->ra_win * 2 > c->ra_max ? c->ra_max
						       : o->ra_win * 2;
	o->ra_off = end;
	o->ra_blk = b1;
	for (i = 1; i <= o->ra_win && (uint64_t)b1 + i < o->nblocks; i++) {
		if (bc_want_locked(c, o, b1 + i, false) < 0)
			break;
	}
}

/*
 * Hydrate o after its first miss: queue every block behind the demand
 * reads, those after the read first (a reader that started here likely
 * goes on), then those before it.
 */
static void bc_hydrate_locked(struct bcache *c, struct bc_obj *o, uint32_t b0,
			      uint32_t b1)
{
	uint32_t i;

	if (!c->hydrate || o->hydrating)
		return;
	/* decided once per object (until a release), not on every miss */
	o->hydrating = true;
	if ((c->limit && o->size > c->limit / 2) ||
	    (int64_t)o->size > bc_disk_room(c) / 2)
		return;
	for (i = b1 + 1; i < o->nblocks; i++)
		if (bc_want_locked(c, o, i, false) < 0)
			return;
	for (i = 0; i < b0; i++)
		if (bc_want_locked(c, o, i, false) < 0)
			return;
}

/*
 * Copy [lo, hi) of o (inside one pinned block) from fd to dst, checking
 * every chunk touched against cs (that block's checksums, from chunk
 * cs0).  Whole chunks are read straight into dst; partial ones through
 * *bounce (allocated here, freed by the caller).  -EBADMSG if a chunk is
 * short or fails its checksum.
 */
static int bc_copy_verified(struct bcache *c, const struct bc_obj *o, int fd,
			    char *dst, uint64_t lo, uint64_t hi,
			    const uint64_t *cs, uint64_t cs0, char **bounce)
{
	uint64_t pos = lo;
	uint64_t cstart;
	uint64_t cend;
	uint64_t run;
	uint64_t ch;
	ssize_t n;

	while (pos < hi) {
		ch = pos / c->csize;
		cstart = ch * c->csize;
		cend = cstart + c->csize < o->size ? cstart + c->csize
						   : o->size;
		if (pos == cstart && cend <= hi) {
			/* a run of whole chunks: one pread */
			run = cend;
			while (run < hi && run + c->csize <= hi)
				run += c->csize;
			if (run < hi && o->size <= hi)
				run = o->size;
			n = store_pread_full(fd, dst + (pos - lo), run - pos,
					     pos);
			if (n < 0 || (uint64_t)n != run - pos)
				return -EBADMSG;
			for (; pos < run; pos = cend, ch++) {
				cend = pos + c->csize < run ? pos + c->csize
							    : run;
				if (XXH3_64bits(dst + (pos - lo), cend - pos) !=
				    cs[ch - cs0])
					return -EBADMSG;
			}
			continue;
		}
		if (!*bounce) {
			*bounce = malloc(c->csize);
			if (!*bounce)
				return -ENOMEM;
		}
		n = store_pread_full(fd, *bounce, cend - cstart, cstart);
		if (n < 0 || (uint64_t)n != cend - cstart ||
		    XXH3_64bits(*bounce, cend - cstart) != cs[ch - cs0])
			return -EBADMSG;
		cend = cend < hi ? cend : hi;
		memcpy(dst + (pos - lo), *bounce + (pos - cstart), cend - pos);
		pos = cend;
	}
	return 0;
}

/*
 * Wait until block idx of o is PRESENT, asking for it as needed.  Called
 * and returns with c->lock held.  0, -ESTALE if o was replaced, -EBADMSG
 * if it was found corrupt, or the error of the fetch this read waited for.
 */
static int bc_wait_present_locked(struct bcache *c, struct bc_obj *o,
				  uint32_t idx)
{
	struct bc_blk *b = &o->blks[idx];
	bool waited = false;
	int rc;

	for (;;) {
		if (o->dead)
			return o->verify_err ? o->verify_err : -ESTALE;
		if (b->state == BC_PRESENT)
			return 0;
		if (b->state == BC_ABSENT) {
			/* A failure seen before we asked is someone else's. */
			if (waited && b->err)
				return b->err;
			rc = bc_want_locked(c, o, idx, true);
			if (rc < 0)
				return rc;
		}
		waited = true;
		pthread_cond_wait(&c->blk_cond, &c->lock);
	}
}

/*
 * Read [off, off + len) of o straight from inner, for a cache with no
 * room for it.  The bytes of a verified object are checked chunk by chunk
 * against the checksums its verification recorded, so even this path
 * serves nothing the check did not see (an object being verified is read
 * here only by its verifier, which hashes what it gets).  The bytes read,
 * -EBADMSG on a mismatch, or inner's errno.
 */
static ssize_t bc_read_around(struct bcache *c, struct bc_obj *o, char *buf,
			      size_t len, uint64_t off)
{
	uint64_t cs[BC_CPB_MAX];
	uint64_t lo;
	uint64_t hi;
	uint64_t p;
	uint64_t s;
	uint64_t e;
	size_t plen;
	size_t i;
	size_t cl;
	bool verified;
	bool bad = false;
	char *tmp;
	ssize_t n;

	pthread_mutex_lock(&c->lock);
	verified = o->verified;
	pthread_mutex_unlock(&c->lock);
	if (!verified)
		return store_get_range(c->inner, o->key, buf, len, off);
	if (off >= o->size || len == 0)
		return 0;
	if (len > o->size - off)
		len = (size_t)(o->size - off);
	/* whole chunks around the range, at most a block per GET */
	lo = off / c->csize * c->csize;
	hi = (off + len + c->csize - 1) / c->csize * c->csize;
	hi = hi < o->size ? hi : o->size;
	tmp = malloc(hi - lo < c->bsize ? hi - lo : c->bsize);
	if (!tmp)
		return -ENOMEM;
	for (p = lo; p < hi; p += plen) {
		plen = hi - p < c->bsize ? (size_t)(hi - p) : c->bsize;
		n = store_get_range(c->inner, o->key, tmp, plen, p);
		if (n >= 0 && (size_t)n != plen)
			n = -EBADMSG;	/* shorter than it was verified */
		for (i = 0; n >= 0 && i < plen; i += cl) {
			cl = plen - i < c->csize ? plen - i : c->csize;
			cs[i / c->csize] = XXH3_64bits(tmp + i, cl);
		}
		pthread_mutex_lock(&c->lock);
		for (i = 0; n >= 0 && i < plen; i += c->csize)
			bad |= cs[i / c->csize] != o->csum[(p + i) / c->csize];
		if ((n == -EBADMSG || bad) && !o->dead)
			bc_obj_corrupt_locked(c, o);
		pthread_mutex_unlock(&c->lock);
		if (n < 0 || bad) {
			free(tmp);
			return n < 0 ? n : -EBADMSG;
		}
		s = p > off ? p : off;
		e = p + plen < off + len ? p + plen : off + len;
		memcpy(buf + (s - off), tmp + (s - p), e - s);
	}
	free(tmp);
	return (ssize_t)len;
}

/*
 * Read [off, off + len) of o into buf.  Returns the bytes copied (short
 * only at the end of the object), -ESTALE if o was replaced meanwhile
 * (resolve it again), -EIO after repeated checksum failures, or the
 * inner store's errno.  When the cache has no room the read goes
 * straight to the inner store.
 */
static ssize_t bc_obj_read(struct bcache *c, struct bc_obj *o, char *buf,
			   size_t len, uint64_t off)
{
	uint64_t cs[BC_CPB_MAX];
	char *bounce = NULL;
	struct bc_blk *blk;
	uint64_t end;
	uint64_t pos;
	uint64_t bend;
	uint64_t cs0;
	uint32_t nch;
	uint32_t b0;
	uint32_t b1;
	uint32_t b;
	uint32_t qend;
	bool hit = true;
	ssize_t n;
	int tries;
	int fd;
	int rc = 0;

	if (off >= o->size || len == 0)
		return 0;
	if (len > o->size - off)
		len = (size_t)(o->size - off);
	end = off + len;
	b0 = (uint32_t)(off / c->bsize);
	b1 = (uint32_t)((end - 1) / c->bsize);
	pos = off;

	pthread_mutex_lock(&c->lock);
	fd = bc_fd_get_locked(c, o);
	if (fd < 0) {
		pthread_mutex_unlock(&c->lock);
		return fd;
	}
	bc_obj_touch_locked(c, o);
	for (b = b0; b <= b1; b++) {
		if (o->blks[b].state != BC_PRESENT)
			hit = false;
	}
	if (hit) {
		c->st.hits++;
	} else {
		c->st.misses++;
		/* the front of the request first, b0 at the very front */
		qend = b1 - b0 >= c->ra_max ? b0 + c->ra_max - 1 : b1;
		for (b = qend + 1; b-- > b0;) {
			rc = bc_want_locked(c, o, b, true);
			if (rc < 0)
				goto out_unlock;
		}
		bc_hydrate_locked(c, o, b0, b1);
	}
	bc_readahead_locked(c, o, off, end, b1);

	for (b = b0; b <= b1; b++) {
		if (!hit && (uint64_t)b + c->ra_max <= b1)
			bc_want_locked(c, o, b + c->ra_max, false);
		bend = ((uint64_t)b + 1) * c->bsize;
		bend = bend < end ? bend : end;
		for (tries = 0;; tries++) {
			rc = bc_wait_present_locked(c, o, b);
			if (rc < 0)
				goto out_unlock;
			blk = &o->blks[b];
			blk->pins++;
			bc_blist_del(blk);
			bc_blist_add(&c->lru, blk);
			nch = bc_nch(c, o, b);
			cs0 = (uint64_t)b * c->cpb;
			memcpy(cs, &o->csum[cs0], nch * sizeof(*cs));
			pthread_mutex_unlock(&c->lock);

			rc = bc_copy_verified(c, o, fd, buf + (pos - off), pos,
					      bend, cs, cs0, &bounce);

			pthread_mutex_lock(&c->lock);
			blk->pins--;
			if (rc != -EBADMSG)
				break;
			/* Never served: drop it and fetch it again. */
			c->st.corrupt++;
			if (blk->state == BC_PRESENT) {
				bc_blist_del(blk);
				blk->state = BC_ABSENT;
				blk->err = 0;
				o->cached -= bc_blen(c, o, b);
				c->cached_bytes -= bc_blen(c, o, b);
				bc_blk_dirty_locked(c, blk);
			}
			if (tries + 1 >= BC_READ_TRIES) {
				rc = -EIO;
				goto out_unlock;
			}
		}
		if (rc < 0)
			goto out_unlock;
		pos = bend;
	}
	rc = 0;
out_unlock:
	bc_fd_put_locked(o);
	pthread_mutex_unlock(&c->lock);
	free(bounce);
	if (rc == -ENOSPC) {
		/* Full of unexported content: read around the cache. */
		n = bc_read_around(c, o, buf + (pos - off),
				   (size_t)(end - pos), pos);
		if (n < 0)
			return n;
		return (ssize_t)(pos - off) + n;
	}
	if (rc < 0)
		return rc;
	return (ssize_t)len;
}

/*
 * Read all of o through the cache, as a reader would (so it is fetched in
 * parallel, read ahead and kept), and check it against the hash its key
 * names.  0 with the checksum of every chunk of the content in sums[];
 * -EBADMSG if it does not match (or is shorter than HEAD said), else the
 * error of a read.
 */
static int bc_verify_run(struct bcache *c, struct bc_obj *o, uint64_t *sums)
{
	char got[HASH_HEX_LEN + 1];
	struct hash_state *h;
	uint64_t off;
	uint64_t want;
	uint64_t k = 0;
	size_t i;
	size_t cl;
	ssize_t n;
	char *buf;
	int rc = 0;

	buf = malloc(c->bsize);
	h = hash_new();
	if (!buf || !h) {
		rc = -ENOMEM;
		goto out_free;
	}
	/* block by block: chunks never straddle a read */
	for (off = 0; off < o->size; off += (uint64_t)n) {
		want = o->size - off < c->bsize ? o->size - off : c->bsize;
		n = bc_obj_read(c, o, buf, (size_t)want, off);
		if (n < 0) {
			rc = (int)n;
			goto out_free;
		}
		if ((uint64_t)n != want) {
			rc = -EBADMSG;	/* inner's object ended early */
			goto out_free;
		}
		hash_update(h, buf, (size_t)n);
		for (i = 0; i < (size_t)n; i += cl) {
			cl = (size_t)n - i < c->csize ? (size_t)n - i
						      : c->csize;
			sums[k++] = XXH3_64bits(buf + i, cl);
		}
	}
	hash_final(h, got);
	if (strcmp(got, o->want) != 0)
		rc = -EBADMSG;
out_free:
	hash_free(h);
	free(buf);
	return rc;
}

/*
 * The check point of a content-addressed object (see the file comment):
 * its first reader fetches it whole and checks it against its name, and
 * every other reader waits here until that is done.  0 once o is
 * verified; -EBADMSG if it is corrupt (counted, and o is dropped, so the
 * next read fetches the key afresh); -ESTALE if o was replaced meanwhile;
 * or the error that cut the check short (the next reader tries again).
 */
static int bc_verify(struct bcache *c, struct bc_obj *o)
{
	uint64_t nch = (o->size + c->csize - 1) / c->csize;
	uint64_t *sums;
	uint32_t i;
	int rc;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		if (o->verified) {
			pthread_mutex_unlock(&c->lock);
			return 0;
		}
		if (o->dead) {
			rc = o->verify_err ? o->verify_err : -ESTALE;
			pthread_mutex_unlock(&c->lock);
			return rc;
		}
		if (!o->verifying)
			break;
		pthread_cond_wait(&c->blk_cond, &c->lock);
	}
	o->verifying = true;
	pthread_mutex_unlock(&c->lock);

	sums = calloc(nch ? nch : 1, sizeof(*sums));
	rc = sums ? bc_verify_run(c, o, sums) : -ENOMEM;

	pthread_mutex_lock(&c->lock);
	/*
	 * A block fetched again since the verifier read it (evicted, then
	 * wanted by read-ahead) holds bytes the hash did not cover.
	 */
	for (i = 0; rc == 0 && i < o->nblocks; i++) {
		if (o->blks[i].state == BC_PRESENT &&
		    memcmp(&o->csum[(uint64_t)i * c->cpb],
			   &sums[(uint64_t)i * c->cpb],
			   bc_nch(c, o, i) * sizeof(*sums)) != 0)
			rc = -EBADMSG;
	}
	if (rc == 0) {
		memcpy(o->csum, sums, nch * sizeof(*sums));
		o->verified = true;
	} else if (rc == -EBADMSG && !o->dead) {
		bc_obj_corrupt_locked(c, o);
	} else if (rc == -EBADMSG) {
		rc = -ESTALE;	/* replaced meanwhile: judge the new one */
	}
	o->verifying = false;
	pthread_cond_broadcast(&c->blk_cond);
	pthread_mutex_unlock(&c->lock);
	free(sums);
	return rc;
}

/* Where a key's bytes come from: one of the two, referenced. */
struct bc_src {
	struct bc_out *e;
	struct bc_obj *o;
};

static struct bc_out *bc_out_find_locked(struct bcache *c, const char *key)
{
	struct bc_hnode *n = bc_htab_find(&c->outs, key);

	return n ? bc_container_of(n, struct bc_out, hn) : NULL;
}

static void bc_out_free(struct bc_out *e)
{
	if (!e)
		return;
	if (e->fd >= 0)
		close(e->fd);
	free(e->key);
	free(e);
}

static void bc_out_unref_locked(struct bc_out *e)
{
	if (--e->refs == 0)
		bc_out_free(e);
}

/* Take e out of the table and queue (outbox files are the caller's). */
static void bc_out_remove_locked(struct bcache *c, struct bc_out *e)
{
	bc_htab_del(&c->outs, &e->hn);
	bc_link_del(&e->q);
	e->gone = true;
	c->outbox_bytes -= e->size;
	pthread_cond_broadcast(&c->out_cond);
	bc_out_unref_locked(e);
}

/* Does o need a HEAD before it is used? */
static bool bc_obj_is_fresh(struct bcache *c, const struct bc_obj *o,
			    int64_t now)
{
	int64_t age = now - o->checked;

	if (!o->checked)
		return false;
	if (o->check_failed)
		return age < BC_RECHECK_MS && (!c->ttl_ms || age < c->ttl_ms);
	return !c->ttl_ms || age < c->ttl_ms;
}

/*
 * Find where key's bytes are: the outbox, or a cached version that is
 * revalidated (HEAD, compare the ETag) on the first access after open or
 * after the TTL.  A changed ETag drops the old version.  If inner cannot
 * be asked, a cached version is used as it is.
 */
static int bc_resolve(struct bcache *c, const char *key, struct bc_src *src)
{
	char ident[BC_ETAG_LEN];
	struct store_stat st;
	struct bc_out *e;
	struct bc_obj *o;
	int64_t now;
	int rc;

	src->e = NULL;
	src->o = NULL;
	now = bc_now_ms();
	pthread_mutex_lock(&c->lock);
	e = bc_out_find_locked(c, key);
	if (e)
		goto out_take_e;
	o = bc_obj_find_locked(c, key);
	if (o && bc_obj_is_fresh(c, o, now))
		goto out_take_o;
	pthread_mutex_unlock(&c->lock);

	rc = store_head(c->inner, key, &st);
	if (rc == 0)
		bc_ident(&st, ident);
	now = bc_now_ms();

	pthread_mutex_lock(&c->lock);
	e = bc_out_find_locked(c, key);
	if (e)
		goto out_take_e;	/* a put landed meanwhile */
	o = bc_obj_find_locked(c, key);
	if (rc == 0) {
		if (o && (o->size != st.size || strcmp(o->etag, ident))) {
			bc_obj_drop_locked(c, o);
			o = NULL;
		}
		if (!o && bc_is_bad_locked(c, key, ident, now)) {
			rc = -EBADMSG;
			goto out_unlock;
		}
		if (!o) {
			rc = bc_obj_new(c, key, ident, st.size, &o);
			if (rc < 0)
				goto out_unlock;
			bc_obj_insert_locked(c, o);
		}
		o->checked = now;
		o->check_failed = false;
	} else if (rc == -ENOENT) {
		if (o)
			bc_obj_drop_locked(c, o);
		goto out_unlock;
	} else {
		if (!o)
			goto out_unlock;
		/* Inner is down: serve what we have, ask again later. */
		o->checked = now;
		o->check_failed = true;
	}
out_take_o:
	o->refs++;
	src->o = o;
	pthread_mutex_unlock(&c->lock);
	return 0;
out_take_e:
	e->refs++;
	src->e = e;
	pthread_mutex_unlock(&c->lock);
	return 0;
out_unlock:
	pthread_mutex_unlock(&c->lock);
	return rc;
}

static void bc_src_put(struct bcache *c, struct bc_src *src)
{
	pthread_mutex_lock(&c->lock);
	if (src->e)
		bc_out_unref_locked(src->e);
	if (src->o)
		bc_obj_unref_locked(c, src->o);
	pthread_mutex_unlock(&c->lock);
	src->e = NULL;
	src->o = NULL;
}

static uint64_t bc_src_size(const struct bc_src *src)
{
	return src->e ? src->e->size : src->o->size;
}

static ssize_t bc_src_read(struct bcache *c, struct bc_src *src, char *buf,
			   size_t len, uint64_t off)
{
	struct bc_out *e = src->e;
	int rc;

	if (!e) {
		rc = src->o->content ? bc_verify(c, src->o) : 0;
		if (rc < 0)
			return rc;
		return bc_obj_read(c, src->o, buf, len, off);
	}
	pthread_mutex_lock(&c->lock);
	c->st.hits++;
	pthread_mutex_unlock(&c->lock);
	if (off >= e->size)
		return 0;
	if (len > e->size - off)
		len = (size_t)(e->size - off);
	return store_pread_full(e->fd, buf, len, off);
}

static ssize_t bc_get_range(struct store *s, const char *key, void *buf,
			    size_t len, uint64_t off)
{
	struct bcache *c = to_bc(s);
	struct bc_src src;
	ssize_t n = -EIO;
	int tries;
	int rc;

	if (!store_key_is_valid(key))
		return -EINVAL;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	for (tries = 0; tries < BC_RESOLVE_TRIES; tries++) {
		rc = bc_resolve(c, key, &src);
		if (rc < 0)
			return rc;
		n = bc_src_read(c, &src, buf, len, off);
		bc_src_put(c, &src);
		if (n != -ESTALE)
			return n;
	}
	return -EIO;
}

static int bc_get(struct store *s, const char *key, size_t max, char **buf,
		  size_t *len)
{
	struct bcache *c = to_bc(s);
	struct bc_src src;
	uint64_t size;
	ssize_t n;
	char *p;
	int tries;
	int rc;

	*buf = NULL;
	*len = 0;
	if (!store_key_is_valid(key))
		return -EINVAL;
	for (tries = 0; tries < BC_RESOLVE_TRIES; tries++) {
		rc = bc_resolve(c, key, &src);
		if (rc < 0)
			return rc;
		size = bc_src_size(&src);
		if (size > max || size >= SSIZE_MAX) {
			bc_src_put(c, &src);
			return -EFBIG;
		}
		p = malloc((size_t)size + 1);
		if (!p) {
			bc_src_put(c, &src);
			return -ENOMEM;
		}
		n = bc_src_read(c, &src, p, (size_t)size, 0);
		bc_src_put(c, &src);
		if (n == -ESTALE) {
			free(p);
			continue;
		}
		if (n < 0 || (uint64_t)n != size) {
			free(p);
			return n < 0 ? (int)n : -EIO;
		}
		p[n] = '\0';
		*buf = p;
		*len = (size_t)n;
		return 0;
	}
	return -EIO;
}

/* ---- the outbox ---- */

static void bc_out_name(const char *key, char out[BC_HEX_LEN + 1])
{
	uint8_t id[BC_ID_LEN];

	bc_hash128(key, strlen(key), id);
	bc_hex(id, out);
}

static int bc_out_new(const char *key, uint64_t size, struct bc_out **out)
{
	struct bc_out *e;

	*out = NULL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->fd = -1;
	e->key = strdup(key);
	if (!e->key) {
		free(e);
		return -ENOMEM;
	}
	bc_out_name(key, e->name);
	e->hn.key = e->key;
	e->hn.hash = bc_hash(key);
	e->size = size;
	e->mtime = bc_real_s();
	e->refs = 1;
	bc_link_init(&e->q);
	*out = e;
	return 0;
}

/* Queue e (the caller's reference passes to the table), replacing any. */
static void bc_out_insert_locked(struct bcache *c, struct bc_out *e)
{
	struct bc_out *old = bc_out_find_locked(c, e->key);

	if (old)
		bc_out_remove_locked(c, old);
	bc_htab_add(&c->outs, &e->hn);
	bc_link_add_tail(&c->outq, &e->q);
	c->outbox_bytes += e->size;
	pthread_cond_signal(&c->export_cond);
}

/* Write key's sidecar to a staging file, synced; its name to name. */
static int bc_sidecar_stage(struct bcache *c, const char *key, bool create,
			    char *name, size_t namelen)
{
	static const char flag[] = "\ncreate";
	int fd;
	int rc;

	fd = bc_tmp_create(c, "key", name, namelen);
	if (fd < 0)
		return fd;
	rc = store_write_full(fd, key, strlen(key), -1);
	if (rc == 0 && create)
		rc = store_write_full(fd, flag, sizeof(flag) - 1, -1);
	if (rc == 0)
		rc = bc_fsync(fd);
	close(fd);
	if (rc < 0)
		unlinkat(c->tmpfd, name, 0);
	return rc;
}

/*
 * Move the complete, synced file (srcdir, src) into the outbox as key's
 * content, with fd (read-only use) as the entry's descriptor, which this
 * takes over once *taken is true.  The sidecar goes in first, so a data
 * file in the outbox always has its key.  Space for size bytes was
 * reserved by the caller and becomes outbox space once taken.  An error
 * with *taken true means the content is queued but maybe not durable.
 */
static int bc_out_publish(struct bcache *c, const char *key, bool create,
			  int srcdir, const char *src, int fd, uint64_t size,
			  bool *taken)
{
	char side[BC_NAME_MAX];
	char sname[BC_HEX_LEN + 5];
	struct bc_out *e;
	struct bc_obj *o;
	int rc;

	*taken = false;
	rc = bc_out_new(key, size, &e);
	if (rc < 0)
		return rc;
	e->create = create;
	rc = bc_sidecar_stage(c, key, create, side, sizeof(side));
	if (rc < 0)
		goto out_free_e;
	snprintf(sname, sizeof(sname), "%s.key", e->name);

	pthread_mutex_lock(&c->ob_lock);
	if (renameat(c->tmpfd, side, c->outfd, sname) < 0) {
		rc = -errno;
		pthread_mutex_unlock(&c->ob_lock);
		unlinkat(c->tmpfd, side, 0);
		goto out_free_e;
	}
	if (renameat(srcdir, src, c->outfd, e->name) < 0) {
		rc = -errno;
		pthread_mutex_unlock(&c->ob_lock);
		goto out_free_e;	/* a sidecar alone is harmless */
	}
	e->fd = fd;
	*taken = true;
	pthread_mutex_lock(&c->lock);
	c->reserved -= size;
	bc_out_insert_locked(c, e);
	/* The cached old version is shadowed now; free its space. */
	o = bc_obj_find_locked(c, key);
	if (o)
		bc_obj_drop_locked(c, o);
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_unlock(&c->ob_lock);
	/* Both renames durable before put returns. */
	return bc_fsync(c->outfd);

out_free_e:
	bc_out_free(e);
	return rc;
}

static int bc_put_as(struct store *s, const char *key, const void *buf,
		     size_t len, bool create)
{
	struct bcache *c = to_bc(s);
	char tmp[BC_NAME_MAX];
	bool taken = false;
	int fd;
	int rc;

	if (!store_key_is_valid(key))
		return -EINVAL;
	rc = bc_reserve(c, len);
	bc_punch_drain(c);
	if (rc < 0)
		return rc;
	fd = bc_tmp_create(c, "put", tmp, sizeof(tmp));
	if (fd < 0) {
		rc = fd;
		goto out_unreserve;
	}
	rc = store_write_full(fd, buf, len, -1);
	if (rc == 0)
		rc = bc_fsync(fd);
	if (rc == 0)
		rc = bc_out_publish(c, key, create, c->tmpfd, tmp, fd, len,
				    &taken);
	if (taken)
		return rc;
	unlinkat(c->tmpfd, tmp, 0);
	close(fd);
out_unreserve:
	bc_unreserve(c, len);
	return rc;
}

static int bc_put(struct store *s, const char *key, const void *buf,
		  size_t len)
{
	return bc_put_as(s, key, buf, len, false);
}

static int bc_create(struct store *s, const char *key, const void *buf,
		     size_t len)
{
	return bc_put_as(s, key, buf, len, true);
}

/* Copy the open file src into a new staging file; fd and name out. */
static int bc_copy_to_tmp(struct bcache *c, int src, char *name,
			  size_t namelen, int *out)
{
	uint64_t off = 0;
	char *buf;
	ssize_t n;
	int fd;
	int rc;

	*out = -1;
	buf = malloc(c->bsize);
	if (!buf)
		return -ENOMEM;
	fd = bc_tmp_create(c, "put", name, namelen);
	if (fd < 0) {
		rc = fd;
		goto out_free_buf;
	}
	for (;;) {
		n = store_pread_full(src, buf, c->bsize, off);
		if (n < 0) {
			rc = (int)n;
			goto out_unlink;
		}
		if (n == 0)
			break;
		rc = store_write_full(fd, buf, (size_t)n, -1);
		if (rc < 0)
			goto out_unlink;
		off += (uint64_t)n;
	}
	rc = bc_fsync(fd);
	if (rc < 0)
		goto out_unlink;
	*out = fd;
	goto out_free_buf;
out_unlink:
	unlinkat(c->tmpfd, name, 0);
	close(fd);
out_free_buf:
	free(buf);
	return rc;
}

/*
 * The file at path becomes key's content: renamed into the outbox (paths
 * from tmp_path are on the same file system), or copied from elsewhere
 * and then unlinked.  On failure it is left where it was.
 */
static int bc_put_file(struct store *s, const char *key, const char *path)
{
	struct bcache *c = to_bc(s);
	char tmp[BC_NAME_MAX];
	struct stat st;
	bool taken = false;
	uint64_t size;
	int cfd;
	int fd;
	int rc;

	if (!store_key_is_valid(key))
		return -EINVAL;
	fd = store_open_source(path, &st);
	if (fd < 0)
		return fd;
	size = (uint64_t)st.st_size;
	rc = bc_reserve(c, size);
	bc_punch_drain(c);
	if (rc < 0)
		goto out_close_fd;
	rc = bc_fsync(fd);
	if (rc == 0)
		rc = bc_out_publish(c, key, false, AT_FDCWD, path, fd, size,
				    &taken);
	if (taken)
		return rc;
	if (rc != -EXDEV)
		goto out_unreserve;
	rc = bc_copy_to_tmp(c, fd, tmp, sizeof(tmp), &cfd);
	if (rc < 0)
		goto out_unreserve;
	rc = bc_out_publish(c, key, false, c->tmpfd, tmp, cfd, size, &taken);
	if (!taken) {
		unlinkat(c->tmpfd, tmp, 0);
		close(cfd);
		goto out_unreserve;
	}
	unlink(path);
	close(fd);
	return rc;

out_unreserve:
	bc_unreserve(c, size);
out_close_fd:
	close(fd);
	return rc;
}

/* ---- the export thread ---- */

/* The first entry due for export, or NULL and how long to wait (ms). */
static struct bc_out *bc_out_next_locked(struct bcache *c, int64_t *wait)
{
	int64_t now = bc_now_ms();
	struct bc_link *l;
	struct bc_out *e;

	*wait = -1;
	for (l = c->outq.next; l != &c->outq; l = l->next) {
		e = bc_container_of(l, struct bc_out, q);
		if (e->next_try <= now)
			return e;
		if (*wait < 0 || e->next_try - now < *wait)
			*wait = e->next_try - now;
	}
	return NULL;
}

/* Checksums of every chunk of the open file fd (size bytes) into c->xcs. */
static int bc_csum_file(struct bcache *c, int fd, uint64_t size)
{
	uint64_t nch = (size + c->csize - 1) / c->csize;
	uint64_t off;
	uint64_t *cs;
	uint64_t k = 0;
	size_t cl;
	size_t i;
	ssize_t n;

	if (nch > c->xcs_len) {
		if (nch > SIZE_MAX / sizeof(*cs))
			return -EFBIG;
		cs = realloc(c->xcs, nch * sizeof(*cs));
		if (!cs)
			return -ENOMEM;
		c->xcs = cs;
		c->xcs_len = nch;
	}
	for (off = 0; off < size; off += (uint64_t)n) {
		n = store_pread_full(fd, c->xbuf, c->bsize, off);
		if (n < 0)
			return (int)n;
		if (n == 0 || (n < c->bsize && off + (uint64_t)n != size))
			return -EIO;
		for (i = 0; i < (size_t)n; i += cl) {
			cl = (size_t)n - i < c->csize ? (size_t)n - i
						      : c->csize;
			c->xcs[k++] = XXH3_64bits(c->xbuf + i, cl);
		}
	}
	return 0;
}

/*
 * The exported file of e becomes version o, fully cached.  Under both
 * locks; e is still current.  Returns false if the rename failed.
 */
static bool bc_adopt_locked(struct bcache *c, struct bc_out *e,
			    struct bc_obj *o)
{
	struct bc_obj *old;
	uint32_t i;

	old = bc_obj_find_locked(c, e->key);
	if (old)
		bc_obj_drop_locked(c, old);	/* unlinks before we rename */
	if (renameat(c->outfd, e->name, c->blkfd, o->name) < 0)
		return false;
	if (o->size)	/* an empty object has no checksums, xcs maybe NULL */
		memcpy(o->csum, c->xcs,
		       ((o->size + c->csize - 1) / c->csize) *
			       sizeof(*o->csum));
	for (i = 0; i < o->nblocks; i++) {
		o->blks[i].state = BC_PRESENT;
		bc_blist_add(&c->lru, &o->blks[i]);
		bc_blk_dirty_locked(c, &o->blks[i]);
	}
	o->cached = o->size;
	c->cached_bytes += o->size;
	o->checked = bc_now_ms();
	bc_obj_insert_locked(c, o);
	return true;
}

static int64_t bc_backoff_ms(struct bcache *c, unsigned tries)
{
	int64_t ms = c->retry_ms;

	while (--tries > 0 && ms < BC_RETRY_MAX_MS)
		ms *= 2;
	return ms < BC_RETRY_MAX_MS ? ms : BC_RETRY_MAX_MS;
}

/* Export e, put by create, with inner's create: claims are small. */
static int bc_export_create(struct bcache *c, struct bc_out *e,
			    const char *path)
{
	char *buf = malloc(e->size ? e->size : 1);
	ssize_t n;
	int fd;
	int rc;

	if (!buf || e->size > SIZE_MAX / 2) {
		free(buf);
		return -ENOMEM;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd < 0 ? -errno : store_pread_full(fd, buf, e->size, 0);
	if (fd >= 0)
		close(fd);
	rc = n < 0 ? (int)n : (uint64_t)n != e->size ? -EIO : 0;
	if (rc == 0)
		rc = store_create(c->inner, e->key, buf, e->size);
	free(buf);
	return rc;
}

/*
 * Hand e's content (the link at path) to inner, unless e's key names its
 * content and inner already holds it: the writer put such a key into the
 * outbox without asking inner whether it was new (a close must not wait
 * for the bucket), so the question is asked here, off every caller's
 * path.  A HEAD that fails (not a 404) fails this attempt, retried with
 * backoff, rather than uploading blind into an outage.
 */
static int bc_put_inner(struct bcache *c, const struct bc_out *e,
			const char *path)
{
	size_t plen = strlen(c->content_prefix);
	struct store_stat st;
	int rc;

	if (plen && strncmp(e->key, c->content_prefix, plen) == 0) {
		rc = store_head(c->inner, e->key, &st);
		if (rc == 0 && st.size == e->size)
			return 0;
		if (rc < 0 && rc != -ENOENT)
			return rc;
	}
	return store_put_file(c->inner, e->key, path);
}

/*
 * Export e (marked exporting): hand inner a hard link of the outbox file
 * (put_file may consume it), then turn the file into a cached version,
 * unless inner took the inode itself (a local store renaming our link:
 * punching holes in it would then damage the store's object).
 */
static void bc_export_one(struct bcache *c, struct bc_out *e)
{
	char ident[BC_ETAG_LEN];
	char link[BC_NAME_MAX];
	char sname[BC_HEX_LEN + 5];
	struct store_stat st;
	struct bc_obj *o = NULL;
	struct stat sb;
	char *path;
	bool adopt;
	int rc;

	bc_tmp_name(c, "exp", link, sizeof(link));
	pthread_mutex_lock(&c->ob_lock);
	pthread_mutex_lock(&c->lock);
	rc = e->gone ? -ESTALE : 0;
	pthread_mutex_unlock(&c->lock);
	if (rc == 0 && linkat(c->outfd, e->name, c->tmpfd, link, 0) < 0)
		rc = -errno;
	pthread_mutex_unlock(&c->ob_lock);
	if (rc == -ESTALE)
		return;
	path = NULL;
	if (rc == 0 && asprintf(&path, "%s/outbox/tmp/%s", c->dir, link) < 0) {
		path = NULL;
		rc = -ENOMEM;
	}
	if (rc == 0)
		rc = e->create ? bc_export_create(c, e, path)
			       : bc_put_inner(c, e, path);
	free(path);
	unlinkat(c->tmpfd, link, 0);
	if (rc == -EEXIST && c->conflict)
		c->conflict(c->gate_arg, e->key);
	if (rc < 0) {
		pthread_mutex_lock(&c->lock);
		c->st.export_failures++;
		e->tries++;
		e->next_try = bc_now_ms() + bc_backoff_ms(c, e->tries);
		pthread_mutex_unlock(&c->lock);
		return;
	}

	adopt = store_head(c->inner, e->key, &st) == 0 && st.size == e->size &&
		fstat(e->fd, &sb) == 0 && sb.st_nlink == 1 &&
		bc_csum_file(c, e->fd, e->size) == 0;
	if (adopt) {
		bc_ident(&st, ident);
		adopt = bc_obj_new(c, e->key, ident, e->size, &o) == 0;
	}
	snprintf(sname, sizeof(sname), "%s.key", e->name);
	pthread_mutex_lock(&c->ob_lock);
	pthread_mutex_lock(&c->lock);
	c->st.exports_done++;
	if (!e->gone) {
		if (!adopt || !bc_adopt_locked(c, e, o))
			unlinkat(c->outfd, e->name, 0);
		else
			o = NULL;	/* the table's now */
		unlinkat(c->outfd, sname, 0);
		bc_out_remove_locked(c, e);
	}
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_unlock(&c->ob_lock);
	bc_obj_free(o);
}

static void *bc_export_main(void *arg)
{
	struct bcache *c = arg;
	struct bc_out *e;
	int64_t wait;

	pthread_mutex_lock(&c->lock);
	while (!c->stop) {
		e = bc_out_next_locked(c, &wait);
		if (!e) {
			bc_wait_ms(&c->export_cond, &c->lock, wait);
			continue;
		}
		if (c->may_export && c->may_export(c->gate_arg) < 0) {
			pthread_cond_broadcast(&c->out_cond);	/* syncs ask */
			bc_wait_ms(&c->export_cond, &c->lock, BCACHE_GATE_MS);
			continue;
		}
		e->exporting = true;
		e->refs++;
		pthread_mutex_unlock(&c->lock);
		bc_export_one(c, e);
		pthread_mutex_lock(&c->lock);
		e->exporting = false;
		pthread_cond_broadcast(&c->out_cond);
		bc_out_unref_locked(e);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* ---- the index ---- */

/* The one place MDB_* codes become errnos. */
static int bc_mdb_errno(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_MAP_FULL:
	case MDB_TXN_FULL:
		return -ENOSPC;
	case MDB_READERS_FULL:
		return -EAGAIN;
	case MDB_VERSION_MISMATCH:
	case MDB_INVALID:
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
		return -EUCLEAN;
	default:
		return rc > 0 ? -rc : -EIO;
	}
}

static void bc_bkey(const uint8_t *id, uint32_t idx, uint8_t out[20])
{
	memcpy(out, id, BC_ID_LEN);
	out[16] = (uint8_t)(idx >> 24);
	out[17] = (uint8_t)(idx >> 16);
	out[18] = (uint8_t)(idx >> 8);
	out[19] = (uint8_t)idx;
}

/* Delete every blk record of version id. */
static int bc_mdb_del_blocks(struct bcache *c, MDB_txn *txn,
			     const uint8_t *id)
{
	uint8_t kb[20];
	MDB_cursor *cur;
	MDB_val k;
	MDB_val v;
	int rc;

	rc = mdb_cursor_open(txn, c->dbi_blk, &cur);
	if (rc)
		return bc_mdb_errno(rc);
	bc_bkey(id, 0, kb);
	/* Seek again after each delete: simplest cursor contract to trust. */
	for (;;) {
		k.mv_size = sizeof(kb);
		k.mv_data = kb;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc)
			break;
		if (k.mv_size != sizeof(kb) ||
		    memcmp(k.mv_data, id, BC_ID_LEN) != 0) {
			rc = MDB_NOTFOUND;
			break;
		}
		rc = mdb_cursor_del(cur, 0);
		if (rc)
			break;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : bc_mdb_errno(rc);
}

static int bc_mdb_del(MDB_txn *txn, MDB_dbi dbi, void *key, size_t klen)
{
	MDB_val k = { .mv_size = klen, .mv_data = key };
	int rc = mdb_del(txn, dbi, &k, NULL);

	return rc == MDB_NOTFOUND ? 0 : bc_mdb_errno(rc);
}

static int bc_mdb_put(MDB_txn *txn, MDB_dbi dbi, void *key, size_t klen,
		      void *val, size_t vlen)
{
	MDB_val k = { .mv_size = klen, .mv_data = key };
	MDB_val v = { .mv_size = vlen, .mv_data = val };

	return bc_mdb_errno(mdb_put(txn, dbi, &k, &v, 0));
}

/* Write o's record and its dirty blocks, a few at a time. */
static int bc_flush_obj(struct bcache *c, MDB_txn *txn, struct bc_obj *o)
{
	size_t stride = 1 + c->cpb;
	struct bc_orec rec;
	uint8_t kb[20];
	uint32_t start = 0;
	uint32_t i;
	uint32_t n;
	uint32_t j;
	uint64_t *e;
	bool first = true;
	bool present;
	int rc;

	for (;;) {
		pthread_mutex_lock(&c->lock);
		if (o->dead) {
			pthread_mutex_unlock(&c->lock);
			return 0;
		}
		if (first) {
			memset(&rec, 0, sizeof(rec));
			rec.version = BC_OREC_VERSION;
			rec.bsize = c->bsize;
			rec.size = o->size;
			rec.atime = o->atime;
			memcpy(rec.etag, o->etag, sizeof(rec.etag));
			o->atime_saved = o->atime;
		}
		n = 0;
		for (i = start; i < o->nblocks && n < BC_FLUSH_STEP; i++) {
			if (!o->blks[i].dirty)
				continue;
			o->blks[i].dirty = false;
			e = &c->flbuf[n * stride];
			present = o->blks[i].state == BC_PRESENT;
			e[0] = (uint64_t)i | (present ? 1ULL << 32 : 0);
			if (present)
				memcpy(&e[1], &o->csum[(uint64_t)i * c->cpb],
				       bc_nch(c, o, i) * sizeof(*e));
			n++;
		}
		start = i;
		pthread_mutex_unlock(&c->lock);

		if (first) {
			rc = bc_mdb_put(txn, c->dbi_obj, o->key, strlen(o->key),
					&rec, sizeof(rec));
			if (rc < 0)
				return rc;
			first = false;
		}
		for (j = 0; j < n; j++) {
			e = &c->flbuf[j * stride];
			i = (uint32_t)e[0];
			bc_bkey(o->id, i, kb);
			if (e[0] >> 32)
				rc = bc_mdb_put(txn, c->dbi_blk, kb, sizeof(kb),
						&e[1],
						bc_nch(c, o, i) * sizeof(*e));
			else
				rc = bc_mdb_del(txn, c->dbi_blk, kb,
						sizeof(kb));
			if (rc < 0)
				return rc;
		}
		if (start >= o->nblocks)
			return 0;
	}
}

/*
 * Commit every index change since the last flush in one txn: forgotten
 * versions first, then new records, so a key dropped and cached again
 * ends up with its new record.  A failed commit loses those changes; the
 * checksums and the file check at open make that harmless.
 */
static void bc_flush(struct bcache *c)
{
	struct bc_dead *dead;
	struct bc_dead *d;
	struct bc_obj *objs;
	struct bc_obj *o;
	MDB_txn *txn = NULL;
	int rc;

	pthread_mutex_lock(&c->flush_lock);
	pthread_mutex_lock(&c->lock);
	dead = c->dead;
	c->dead = NULL;
	/* in_dirty stays set until each is popped: dirty_next is ours */
	objs = c->dirty;
	c->dirty = NULL;
	c->ndirty = 0;
	pthread_mutex_unlock(&c->lock);
	if (!dead && !objs)
		goto out_unlock;

	rc = bc_mdb_errno(mdb_txn_begin(c->env, NULL, 0, &txn));
	if (rc < 0)
		txn = NULL;
	for (d = dead; d && txn; d = d->next) {
		rc = bc_mdb_del_blocks(c, txn, d->id);
		if (rc == 0 && d->has_key)
			rc = bc_mdb_del(txn, c->dbi_obj, d->key,
					strlen(d->key));
		if (rc < 0) {
			mdb_txn_abort(txn);
			txn = NULL;
		}
	}
	while (objs) {
		o = objs;
		pthread_mutex_lock(&c->lock);
		objs = o->dirty_next;
		o->dirty_next = NULL;
		o->in_dirty = false;	/* may be queued again from here on */
		pthread_mutex_unlock(&c->lock);
		if (txn && bc_flush_obj(c, txn, o) < 0) {
			mdb_txn_abort(txn);
			txn = NULL;
		}
		pthread_mutex_lock(&c->lock);
		bc_obj_unref_locked(c, o);
		pthread_mutex_unlock(&c->lock);
	}
	if (txn)
		mdb_txn_commit(txn);
	while (dead) {
		d = dead;
		dead = d->next;
		free(d);
	}
out_unlock:
	pthread_mutex_unlock(&c->flush_lock);
}

static void *bc_janitor_main(void *arg)
{
	struct bcache *c = arg;

	pthread_mutex_lock(&c->lock);
	while (!c->stop) {
		bc_wait_ms(&c->jan_cond, &c->lock, BC_FLUSH_MS);
		pthread_mutex_unlock(&c->lock);
		bc_punch_drain(c);
		bc_flush(c);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* ---- other ops ---- */

static int bc_head(struct store *s, const char *key, struct store_stat *st)
{
	struct bcache *c = to_bc(s);
	char ident[BC_ETAG_LEN];
	struct bc_out *e;
	struct bc_obj *o;
	int rc;

	if (!store_key_is_valid(key))
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	e = bc_out_find_locked(c, key);
	if (e) {
		st->size = e->size;
		st->mtime = e->mtime;
		st->etag[0] = '\0';	/* not exported: no ETag yet */
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	pthread_mutex_unlock(&c->lock);

	rc = store_head(c->inner, key, st);
	if (rc == 0)
		bc_ident(st, ident);
	pthread_mutex_lock(&c->lock);
	o = bc_obj_find_locked(c, key);
	if (rc == 0 && o && (o->size != st->size || strcmp(o->etag, ident)))
		bc_obj_drop_locked(c, o);	/* never serve old bytes */
	else if (rc == -ENOENT && o)
		bc_obj_drop_locked(c, o);
	else if (rc < 0 && rc != -ENOENT && rc != -EINVAL && o) {
		st->size = o->size;
		st->mtime = o->atime;
		snprintf(st->etag, sizeof(st->etag), "%s", o->etag);
		rc = 0;	/* inner is down: what the cache knows */
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/* A snapshot of the outbox for list(): keys sorted, stats beside. */
struct bc_lent {
	char *key;
	struct store_stat st;
};

struct bc_lctx {
	struct bc_lent *ents;
	size_t n;
	store_list_fn fn;
	void *arg;
};

static int bc_lent_cmp(const void *a, const void *b)
{
	const struct bc_lent *x = a;
	const struct bc_lent *y = b;

	return strcmp(x->key, y->key);
}

/* Keys in the outbox are reported from there, once. */
static int bc_list_cb(void *arg, const char *key, const struct store_stat *st)
{
	struct bc_lctx *x = arg;
	struct bc_lent probe = { .key = (char *)key };

	if (x->n &&
	    bsearch(&probe, x->ents, x->n, sizeof(*x->ents), bc_lent_cmp))
		return 0;
	return x->fn(x->arg, key, st);
}

static int bc_list(struct store *s, const char *prefix, store_list_fn fn,
		   void *arg)
{
	struct bcache *c = to_bc(s);
	struct bc_lctx x = { .fn = fn, .arg = arg };
	size_t plen;
	struct bc_link *l;
	struct bc_out *e;
	size_t cap;
	size_t i;
	int rc = 0;

	if (!store_prefix_is_valid(prefix))
		return -EINVAL;
	plen = strlen(prefix);
	pthread_mutex_lock(&c->lock);
	cap = c->outs.n;
	x.ents = calloc(cap ? cap : 1, sizeof(*x.ents));
	if (!x.ents) {
		pthread_mutex_unlock(&c->lock);
		return -ENOMEM;
	}
	for (l = c->outq.next; l != &c->outq && rc == 0; l = l->next) {
		e = bc_container_of(l, struct bc_out, q);
		if (strncmp(e->key, prefix, plen) != 0)
			continue;
		x.ents[x.n].key = strdup(e->key);
		if (!x.ents[x.n].key) {
			rc = -ENOMEM;
			break;
		}
		x.ents[x.n].st.size = e->size;
		x.ents[x.n].st.mtime = e->mtime;
		x.n++;
	}
	pthread_mutex_unlock(&c->lock);
	if (rc < 0)
		goto out_free;
	qsort(x.ents, x.n, sizeof(*x.ents), bc_lent_cmp);
	rc = store_list(c->inner, prefix, bc_list_cb, &x);
	for (i = 0; i < x.n && rc == 0; i++)
		rc = fn(arg, x.ents[i].key, &x.ents[i].st);
out_free:
	for (i = 0; i < x.n; i++)
		free(x.ents[i].key);
	free(x.ents);
	return rc;
}

/*
 * Remove key everywhere.  An export in flight is waited for first, or
 * it could put the object back into inner after our del.
 */
static int bc_del(struct store *s, const char *key)
{
	struct bcache *c = to_bc(s);
	char sname[BC_HEX_LEN + 5];
	struct bc_out *e;
	struct bc_obj *o;
	bool had = false;
	int rc;

	if (!store_key_is_valid(key))
		return -EINVAL;
	for (;;) {
		pthread_mutex_lock(&c->ob_lock);
		pthread_mutex_lock(&c->lock);
		e = bc_out_find_locked(c, key);
		if (!e || !e->exporting)
			break;
		pthread_mutex_unlock(&c->ob_lock);
		pthread_cond_wait(&c->out_cond, &c->lock);
		pthread_mutex_unlock(&c->lock);
	}
	if (e) {
		had = true;
		unlinkat(c->outfd, e->name, 0);
		snprintf(sname, sizeof(sname), "%s.key", e->name);
		unlinkat(c->outfd, sname, 0);
		bc_out_remove_locked(c, e);
	}
	o = bc_obj_find_locked(c, key);
	if (o)
		bc_obj_drop_locked(c, o);
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_unlock(&c->ob_lock);

	rc = store_del(c->inner, key);
	if (rc == -ENOENT && had)
		rc = 0;	/* it had not been exported yet */
	return rc;
}

static int bc_open_fd(struct store *s, const char *key)
{
	(void)s;
	(void)key;
	return -EOPNOTSUPP;
}

static int bc_tmp_path(struct store *s, char *out, size_t outlen)
{
	struct bcache *c = to_bc(s);
	char name[BC_NAME_MAX];
	int n;

	bc_tmp_name(c, "stage", name, sizeof(name));
	n = snprintf(out, outlen, "%s/outbox/tmp/%s", c->dir, name);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

/* ---- open and close ---- */

/* Stop and join the threads started so far. */
static void bc_stop_threads(struct bcache *c)
{
	unsigned i;

	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_broadcast(&c->fetch_cond);
	pthread_cond_broadcast(&c->export_cond);
	pthread_cond_broadcast(&c->jan_cond);
	pthread_cond_broadcast(&c->blk_cond);
	pthread_mutex_unlock(&c->lock);
	for (i = 0; i < c->nstarted; i++)
		pthread_join(c->workers[i].th, NULL);
	c->nstarted = 0;
	if (c->exporter_started)
		pthread_join(c->exporter, NULL);
	if (c->janitor_started)
		pthread_join(c->janitor, NULL);
	c->exporter_started = false;
	c->janitor_started = false;
}

/* Free everything in memory; threads are stopped. */
static void bc_free_state(struct bcache *c)
{
	struct bc_hnode *n;
	struct bc_hnode *next;
	struct bc_job job;
	struct bc_dead *d;
	struct bc_obj *o;
	size_t i;

	pthread_mutex_lock(&c->lock);
	while (bc_q_pop_locked(c, &job))
		bc_obj_unref_locked(c, job.o);
	pthread_mutex_unlock(&c->lock);
	bc_punch_drain(c);
	if (c->env)
		bc_flush(c);
	pthread_mutex_lock(&c->lock);
	while (c->dead) {
		d = c->dead;
		c->dead = d->next;
		free(d);
	}
	while (c->dirty) {
		o = c->dirty;
		c->dirty = o->dirty_next;
		o->in_dirty = false;
		bc_obj_unref_locked(c, o);
	}
	for (i = 0; c->objs.b && i < c->objs.nb; i++) {
		for (n = c->objs.b[i]; n; n = next) {
			next = n->next;
			bc_obj_unref_locked(c,
					    bc_container_of(n, struct bc_obj,
							    hn));
		}
	}
	for (i = 0; c->outs.b && i < c->outs.nb; i++) {
		for (n = c->outs.b[i]; n; n = next) {
			next = n->next;
			bc_out_unref_locked(bc_container_of(n, struct bc_out,
							    hn));
		}
	}
	pthread_mutex_unlock(&c->lock);
	free(c->objs.b);
	free(c->outs.b);
	c->objs.b = NULL;
	c->outs.b = NULL;
	free(c->q);
	c->q = NULL;
}

static void bc_destroy(struct bcache *c)
{
	unsigned i;

	bc_stop_threads(c);
	bc_free_state(c);
	if (c->env)
		mdb_env_close(c->env);
	for (i = 0; c->workers && i < c->nworkers; i++)
		free(c->workers[i].buf);
	free(c->workers);
	free(c->xbuf);
	free(c->xcs);
	free(c->flbuf);
	if (c->tmpfd >= 0)
		close(c->tmpfd);
	if (c->outfd >= 0)
		close(c->outfd);
	if (c->blkfd >= 0)
		close(c->blkfd);
	if (c->lockfd >= 0)
		close(c->lockfd);	/* releases the flock */
	if (c->dirfd >= 0)
		close(c->dirfd);
	pthread_cond_destroy(&c->jan_cond);
	pthread_cond_destroy(&c->export_cond);
	pthread_cond_destroy(&c->out_cond);
	pthread_cond_destroy(&c->fetch_cond);
	pthread_cond_destroy(&c->blk_cond);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->flush_lock);
	pthread_mutex_destroy(&c->ob_lock);
	free(c->name);
	free(c->dir);
	free(c);
}

static void bc_close(struct store *s)
{
	struct bcache *c = to_bc(s);
	struct store *inner = c->inner;

	bc_destroy(c);
	store_close(inner);
}

static const struct store_ops bc_ops = {
	.get = bc_get,
	.get_range = bc_get_range,
	.put = bc_put,
	.put_file = bc_put_file,
	.create = bc_create,
	.head = bc_head,
	.list = bc_list,
	.del = bc_del,
	.open_fd = bc_open_fd,
	.tmp_path = bc_tmp_path,
	.close = bc_close,
};

/* Open (creating) the subdirectory name of dirfd. */
static int bc_subdir(int dirfd, const char *name)
{
	int fd;

	if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
		return -errno;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Remove every entry of the directory dirfd (files only). */
static void bc_empty_dir(int dirfd)
{
	const struct dirent *de;
	DIR *d;
	int fd;

	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			store_unlinkat(dirfd, de->d_name); /* append-only too */
	}
	closedir(d);
}

static bool bc_is_hex_name(const char *name)
{
	size_t i;

	for (i = 0; i < BC_HEX_LEN; i++) {
		if (!((name[i] >= '0' && name[i] <= '9') ||
		      (name[i] >= 'a' && name[i] <= 'f')))
			return false;
	}
	return true;
}

/* Queue one outbox file found at open; a bad one is left alone. */
static int bc_load_out(struct bcache *c, const char *name)
{
	char key[STORE_KEY_MAX + 2];
	char sname[BC_HEX_LEN + 5];
	char want[BC_HEX_LEN + 1];
	struct bc_out *e;
	struct stat st;
	bool create = false;
	char *nl;
	ssize_t n;
	int fd;
	int rc;

	snprintf(sname, sizeof(sname), "%.*s.key", BC_HEX_LEN, name);
	fd = openat(c->outfd, sname, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = store_pread_full(fd, key, sizeof(key) - 1, 0);
	close(fd);
	if (n < 0)
		return 0;
	key[n] = '\0';
	nl = memchr(key, '\n', (size_t)n);
	if (nl) {
		create = strcmp(nl, "\ncreate") == 0;
		*nl = '\0';
		n = nl - key;
	}
	if (!store_key_is_valid(key) || strlen(key) != (size_t)n)
		return 0;
	bc_out_name(key, want);
	if (strcmp(want, name) != 0)
		return 0;
	fd = openat(c->outfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return 0;
	}
	rc = bc_out_new(key, (uint64_t)st.st_size, &e);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	e->fd = fd;
	e->mtime = (int64_t)st.st_mtim.tv_sec;
	e->create = create;
	bc_out_insert_locked(c, e);
	return 0;
}

/*
 * Queue every outbox file again, drop sidecars whose data is gone (an
 * adopt or del that crashed half-way) and empty the staging directory.
 */
static int bc_load_outbox(struct bcache *c)
{
	const struct dirent *de;
	char data[BC_HEX_LEN + 1];
	struct stat st;
	size_t len;
	DIR *d;
	int fd;
	int rc = 0;

	bc_empty_dir(c->tmpfd);
	fd = openat(c->outfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		rc = -errno;
		close(fd);
		return rc;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (len < BC_HEX_LEN || !bc_is_hex_name(de->d_name))
			continue;
		if (len == BC_HEX_LEN) {
			rc = bc_load_out(c, de->d_name);
			continue;
		}
		if (strcmp(de->d_name + BC_HEX_LEN, ".key") != 0)
			continue;
		memcpy(data, de->d_name, BC_HEX_LEN);
		data[BC_HEX_LEN] = '\0';
		if (fstatat(c->outfd, data, &st, 0) < 0 && errno == ENOENT)
			unlinkat(c->outfd, de->d_name, 0);
	}
	closedir(d);
	return rc;
}

static int bc_obj_cmp_id(const void *a, const void *b)
{
	const struct bc_obj *x = *(const struct bc_obj *const *)a;
	const struct bc_obj *y = *(const struct bc_obj *const *)b;

	return memcmp(x->id, y->id, BC_ID_LEN);
}

static int bc_obj_cmp_atime(const void *a, const void *b)
{
	const struct bc_obj *x = *(const struct bc_obj *const *)a;
	const struct bc_obj *y = *(const struct bc_obj *const *)b;

	return (x->atime > y->atime) - (x->atime < y->atime);
}

static int bc_obj_cmp_name(const void *key, const void *elem)
{
	const struct bc_obj *o = *(const struct bc_obj *const *)elem;

	return strcmp(key, o->name);
}

/* Unlink files in blocks/ that no loaded version owns. */
static void bc_prune_blocks(struct bcache *c, struct bc_obj **v, size_t n)
{
	const struct dirent *de;
	DIR *d;
	int fd;

	fd = openat(c->blkfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!n || !bsearch(de->d_name, v, n, sizeof(*v),
				   bc_obj_cmp_name))
			unlinkat(c->blkfd, de->d_name, 0);
	}
	closedir(d);
}

/* Load one obj record; stale or unreadable ones are forgotten. */
static int bc_load_orec(struct bcache *c, const MDB_val *k, const MDB_val *v,
			struct bc_obj **out)
{
	char key[STORE_KEY_MAX + 1];
	struct bc_orec rec;
	uint8_t id[BC_ID_LEN];
	int rc;

	*out = NULL;
	if (k->mv_size == 0 || k->mv_size > STORE_KEY_MAX)
		return 0;
	memcpy(key, k->mv_data, k->mv_size);
	key[k->mv_size] = '\0';
	if (!store_key_is_valid(key))
		return 0;
	if (v->mv_size != sizeof(rec)) {
		bc_dead_add_locked(c, (const uint8_t[BC_ID_LEN]){ 0 }, key);
		return 0;
	}
	memcpy(&rec, v->mv_data, sizeof(rec));
	rec.etag[sizeof(rec.etag) - 1] = '\0';
	if (rec.version != BC_OREC_VERSION || rec.bsize != c->bsize) {
		bc_obj_id(key, rec.etag, id);
		bc_dead_add_locked(c, id, key);
		return 0;
	}
	rc = bc_obj_new(c, key, rec.etag, rec.size, out);
	if (rc == -EFBIG)
		return 0;
	if (rc < 0)
		return rc;
	(*out)->atime = rec.atime;
	(*out)->atime_saved = rec.atime;
	return 0;
}

/* Mark the blocks of one blk record present in v[] (sorted by id). */
static void bc_load_brec(struct bcache *c, struct bc_obj **v, size_t n,
			 const MDB_val *k, const MDB_val *val)
{
	const uint8_t *kb = k->mv_data;
	struct bc_obj *probe;
	struct bc_obj **hit;
	struct bc_obj key;
	struct bc_blk *b;
	uint32_t idx;

	if (k->mv_size != 20 || !n)
		return;
	memcpy(key.id, kb, BC_ID_LEN);
	probe = &key;
	hit = bsearch(&probe, v, n, sizeof(*v), bc_obj_cmp_id);
	if (!hit) {
		/* a version nobody owns: forget all of it, once */
		if (!c->dead || memcmp(c->dead->id, kb, BC_ID_LEN))
			bc_dead_add_locked(c, kb, NULL);
		return;
	}
	idx = (uint32_t)kb[16] << 24 | (uint32_t)kb[17] << 16 |
	      (uint32_t)kb[18] << 8 | kb[19];
	if (idx >= (*hit)->nblocks)
		return;
	b = &(*hit)->blks[idx];
	if (val->mv_size != bc_nch(c, *hit, idx) * sizeof(uint64_t)) {
		bc_blk_dirty_locked(c, b);	/* deleted at the first flush */
		return;
	}
	memcpy(&(*hit)->csum[(uint64_t)idx * c->cpb], val->mv_data,
	       val->mv_size);
	b->state = BC_PRESENT;
	(*hit)->cached += bc_blen(c, *hit, idx);
}

/*
 * Load the index into memory: versions into c->objs, present blocks into
 * the LRU in order of last access.  A version whose file is missing
 * loses its blocks; files nobody owns are unlinked.
 */
static int bc_load_index(struct bcache *c)
{
	struct bc_obj **v = NULL;
	struct bc_obj **nv;
	struct bc_obj *o;
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k;
	MDB_val val;
	size_t n = 0;
	size_t cap = 0;
	size_t i;
	uint32_t j;
	int mrc;
	int rc;

	rc = bc_mdb_errno(mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn));
	if (rc < 0)
		return rc;
	rc = bc_mdb_errno(mdb_cursor_open(txn, c->dbi_obj, &cur));
	if (rc < 0)
		goto out_abort;
	pthread_mutex_lock(&c->lock);
	rc = 0;
	for (mrc = mdb_cursor_get(cur, &k, &val, MDB_FIRST); mrc == 0;
	     mrc = mdb_cursor_get(cur, &k, &val, MDB_NEXT)) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				rc = -ENOMEM;
				break;
			}
			v = nv;
		}
		rc = bc_load_orec(c, &k, &val, &o);
		if (rc < 0)
			break;
		if (o)
			v[n++] = o;
	}
	mdb_cursor_close(cur);
	if (rc == 0 && mrc != MDB_NOTFOUND)
		rc = bc_mdb_errno(mrc);
	if (rc < 0)
		goto out_free;
	if (n)
		qsort(v, n, sizeof(*v), bc_obj_cmp_id);

	rc = bc_mdb_errno(mdb_cursor_open(txn, c->dbi_blk, &cur));
	if (rc < 0)
		goto out_free;
	for (mrc = mdb_cursor_get(cur, &k, &val, MDB_FIRST); mrc == 0;
	     mrc = mdb_cursor_get(cur, &k, &val, MDB_NEXT))
		bc_load_brec(c, v, n, &k, &val);
	mdb_cursor_close(cur);
	rc = mrc == MDB_NOTFOUND ? 0 : bc_mdb_errno(mrc);
	if (rc < 0)
		goto out_free;

	for (i = 0; i < n; i++) {
		o = v[i];
		if (o->cached && faccessat(c->blkfd, o->name, F_OK, 0) < 0) {
			for (j = 0; j < o->nblocks; j++) {
				if (o->blks[j].state != BC_PRESENT)
					continue;
				o->blks[j].state = BC_ABSENT;
				bc_blk_dirty_locked(c, &o->blks[j]);
			}
			o->cached = 0;
		}
		c->cached_bytes += o->cached;
	}
	bc_prune_blocks(c, v, n);
	if (n)
		qsort(v, n, sizeof(*v), bc_obj_cmp_atime);
	for (i = 0; i < n; i++) {
		o = v[i];
		for (j = 0; j < o->nblocks; j++) {
			if (o->blks[j].state == BC_PRESENT)
				bc_blist_add(&c->lru, &o->blks[j]);
		}
		bc_htab_add(&c->objs, &o->hn);
		v[i] = NULL;
	}
	rc = 0;
out_free:
	for (i = 0; i < n; i++) {
		if (v[i])
			bc_obj_unref_locked(c, v[i]);
	}
	pthread_mutex_unlock(&c->lock);
	free(v);
out_abort:
	mdb_txn_abort(txn);
	return rc;
}

static int bc_env_open(struct bcache *c, const char *path)
{
	MDB_txn *txn;
	int rc;

	rc = bc_mdb_errno(mdb_env_create(&c->env));
	if (rc < 0) {
		c->env = NULL;
		return rc;
	}
	mdb_env_set_maxdbs(c->env, 4);
	mdb_env_set_mapsize(c->env, BC_MAP_SIZE);
	rc = bc_mdb_errno(mdb_env_open(c->env, path, MDB_NOTLS, 0600));
	if (rc < 0)
		goto out_close_env;
	rc = bc_mdb_errno(mdb_txn_begin(c->env, NULL, 0, &txn));
	if (rc < 0)
		goto out_close_env;
	rc = bc_mdb_errno(mdb_dbi_open(txn, "obj", MDB_CREATE, &c->dbi_obj));
	if (rc == 0)
		rc = bc_mdb_errno(mdb_dbi_open(txn, "blk", MDB_CREATE,
					       &c->dbi_blk));
	if (rc < 0) {
		mdb_txn_abort(txn);
		goto out_close_env;
	}
	rc = bc_mdb_errno(mdb_txn_commit(txn));
	if (rc < 0)
		goto out_close_env;
	return 0;

out_close_env:
	mdb_env_close(c->env);
	c->env = NULL;
	return rc;
}

/*
 * Open the index, loading it.  The cache is disposable and the outbox
 * lives outside the index, so an index LMDB cannot read is wiped along
 * with the blocks it described, and the cache starts empty.
 */
static int bc_index_open(struct bcache *c)
{
	char *path;
	int idxfd;
	int rc;

	idxfd = bc_subdir(c->dirfd, "index");
	if (idxfd < 0)
		return idxfd;
	if (asprintf(&path, "%s/index", c->dir) < 0) {
		close(idxfd);
		return -ENOMEM;
	}
	rc = bc_env_open(c, path);
	if (rc == -EUCLEAN) {
		bc_empty_dir(idxfd);
		bc_empty_dir(c->blkfd);
		rc = bc_env_open(c, path);
	}
	free(path);
	close(idxfd);
	if (rc < 0)
		return rc;
	return bc_load_index(c);
}

static int bc_start_threads(struct bcache *c)
{
	unsigned i;
	int rc;

	for (i = 0; i < c->nworkers; i++) {
		rc = pthread_create(&c->workers[i].th, NULL, bc_fetch_main,
				    &c->workers[i]);
		if (rc)
			return -rc;
		c->nstarted++;
	}
	rc = pthread_create(&c->exporter, NULL, bc_export_main, c);
	if (rc)
		return -rc;
	c->exporter_started = true;
	rc = pthread_create(&c->janitor, NULL, bc_janitor_main, c);
	if (rc)
		return -rc;
	c->janitor_started = true;
	return 0;
}

static int bc_check_opts(const struct bcache_opts *o)
{
	uint32_t bs = o->block_size;

	if (!o->dir || !o->dir[0])
		return -EINVAL;
	if (bs && (bs < BC_BSIZE_MIN || bs > BC_BSIZE_MAX || (bs & (bs - 1))))
		return -EINVAL;
	if (o->fetch_threads > BC_THREADS_MAX)
		return -EINVAL;
	if (o->content_prefix && strlen(o->content_prefix) > BCACHE_PREFIX_MAX)
		return -EINVAL;
	return 0;
}

static uint64_t bc_salt(void)
{
	uint64_t salt;

	if (getrandom(&salt, sizeof(salt), GRND_NONBLOCK) == sizeof(salt))
		return salt;
	return (uint64_t)bc_now_ns() ^ (uint64_t)getpid();
}

/* Allocate c, its locks and buffers; files and threads come later. */
static int bc_alloc(const struct bcache_opts *o, struct bcache **out)
{
	struct bcache *c;
	unsigned i;
	int rc;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->dirfd = -1;
	c->lockfd = -1;
	c->blkfd = -1;
	c->outfd = -1;
	c->tmpfd = -1;
	c->bsize = o->block_size ? o->block_size : BCACHE_BLOCK_SIZE_DEFAULT;
	c->csize = c->bsize < BC_CHUNK ? c->bsize : BC_CHUNK;
	c->cpb = c->bsize / c->csize;
	c->nworkers = o->fetch_threads ? o->fetch_threads
				       : BCACHE_FETCH_THREADS_DEFAULT;
	c->hydrate = o->hydrate;
	c->may_export = o->may_export;
	c->conflict = o->conflict;
	c->gate_arg = o->gate_arg;
	c->content_hash = o->content_hash;
	c->ra_max = o->readahead_max ? o->readahead_max
				     : BCACHE_READAHEAD_DEFAULT;
	c->ttl_ms = (int64_t)o->revalidate_ttl * 1000;
	c->retry_ms = o->retry_ms ? o->retry_ms : BCACHE_RETRY_MS_DEFAULT;
	if (o->content_prefix)
		snprintf(c->content_prefix, sizeof(c->content_prefix), "%s",
			 o->content_prefix);
	c->limit = o->size_limit;
	c->min_free = o->min_free;
	c->salt = bc_salt();
	atomic_init(&c->seq, 0);
	pthread_mutex_init(&c->ob_lock, NULL);
	pthread_mutex_init(&c->flush_lock, NULL);
	pthread_mutex_init(&c->lock, NULL);
	rc = bc_cond_init(&c->blk_cond);
	if (rc == 0)
		rc = bc_cond_init(&c->fetch_cond);
	if (rc == 0)
		rc = bc_cond_init(&c->out_cond);
	if (rc == 0)
		rc = bc_cond_init(&c->export_cond);
	if (rc == 0)
		rc = bc_cond_init(&c->jan_cond);
	/* any failure above is an init that cannot fail on Linux */
	bc_link_init(&c->outq);
	bc_link_init(&c->fds);
	bc_blist_init(&c->lru);
	bc_blist_init(&c->punch);
	*out = c;	/* bc_destroy() can take it from here */
	if (rc < 0)
		return rc;
	rc = bc_htab_init(&c->objs, 64);
	if (rc == 0)
		rc = bc_htab_init(&c->outs, 64);
	if (rc < 0)
		return rc;
	c->workers = calloc(c->nworkers, sizeof(*c->workers));
	c->xbuf = malloc(c->bsize);
	c->flbuf = malloc((size_t)BC_FLUSH_STEP * (1 + c->cpb) *
			  sizeof(*c->flbuf));
	if (!c->workers || !c->xbuf || !c->flbuf)
		return -ENOMEM;
	for (i = 0; i < c->nworkers; i++) {
		c->workers[i].c = c;
		c->workers[i].buf = malloc(c->bsize);
		if (!c->workers[i].buf)
			return -ENOMEM;
	}
	return 0;
}

/* Open the directories and take the directory's lock. */
static int bc_open_dirs(struct bcache *c, const char *dir)
{
	c->dir = realpath(dir, NULL);
	if (!c->dir)
		return -errno;
	if (asprintf(&c->name, "bcache:%s", c->dir) < 0) {
		c->name = NULL;
		return -ENOMEM;
	}
	c->base.name = c->name;
	c->dirfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->dirfd < 0)
		return -errno;
	c->lockfd = openat(c->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC,
			   0600);
	if (c->lockfd < 0)
		return -errno;
	if (flock(c->lockfd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? -EBUSY : -errno;
	c->blkfd = bc_subdir(c->dirfd, "blocks");
	if (c->blkfd < 0)
		return c->blkfd;
	c->outfd = bc_subdir(c->dirfd, "outbox");
	if (c->outfd < 0)
		return c->outfd;
	c->tmpfd = bc_subdir(c->outfd, "tmp");
	if (c->tmpfd < 0)
		return c->tmpfd;
	return 0;
}

int bcache_open(struct store *inner, const struct bcache_opts *o,
		struct store **out)
{
	struct bcache *c;
	int rc;

	*out = NULL;
	if (!inner || !o)
		return -EINVAL;
	rc = bc_check_opts(o);
	if (rc < 0)
		return rc;
	rc = bc_alloc(o, &c);
	if (rc < 0)
		goto out_destroy;
	c->base.ops = &bc_ops;
	c->inner = inner;
	rc = bc_open_dirs(c, o->dir);
	if (rc < 0)
		goto out_destroy;
	rc = bc_index_open(c);
	if (rc < 0)
		goto out_destroy;
	pthread_mutex_lock(&c->lock);
	rc = bc_load_outbox(c);
	pthread_mutex_unlock(&c->lock);
	if (rc < 0)
		goto out_destroy;
	rc = bc_start_threads(c);
	if (rc < 0)
		goto out_destroy;
	*out = &c->base;
	return 0;

out_destroy:
	if (c)
		bc_destroy(c);	/* inner stays the caller's */
	return rc;
}

/* ---- controls ---- */

bool bcache_is_cache(const struct store *s)
{
	return s && s->ops == &bc_ops;
}

int bcache_sync(struct store *s, const char *key, int timeout_ms)
{
	struct bcache *c;
	struct bc_link *l;
	struct bc_out *e;
	int64_t deadline;
	int64_t left;
	int rc = 0;

	if (!bcache_is_cache(s))
		return -EINVAL;
	c = to_bc(s);
	deadline = bc_now_ms() + timeout_ms;
	pthread_mutex_lock(&c->lock);
	/* Whoever syncs wants it now, not after the backoff. */
	for (l = c->outq.next; l != &c->outq; l = l->next) {
		e = bc_container_of(l, struct bc_out, q);
		if (!key || strcmp(e->key, key) == 0)
			e->next_try = 0;
	}
	pthread_cond_signal(&c->export_cond);
	for (;;) {
		if (key ? !bc_out_find_locked(c, key) : c->outs.n == 0)
			break;
		if (c->may_export && c->may_export(c->gate_arg) == -EROFS) {
			rc = -EROFS;	/* never exported from this mount */
			break;
		}
		left = deadline - bc_now_ms();
		if (timeout_ms >= 0 && left <= 0) {
			rc = -ETIMEDOUT;
			break;
		}
		if (c->may_export && (timeout_ms < 0 || left > BCACHE_GATE_MS))
			left = BCACHE_GATE_MS;
		bc_wait_ms(&c->out_cond, &c->lock,
			   timeout_ms < 0 && !c->may_export ? -1 : left);
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int bcache_prefetch(struct store *s, const char *key)
{
	struct bcache *c;
	struct bc_src src;
	uint32_t i;
	int rc = 0;

	if (!bcache_is_cache(s) || !store_key_is_valid(key))
		return -EINVAL;
	c = to_bc(s);
	rc = bc_resolve(c, key, &src);
	if (rc < 0)
		return rc;
	if (src.o) {
		pthread_mutex_lock(&c->lock);
		for (i = 0; i < src.o->nblocks && rc == 0; i++)
			rc = bc_want_locked(c, src.o, i, false);
		pthread_mutex_unlock(&c->lock);
	}
	bc_src_put(c, &src);
	return rc;
}

int bcache_release(struct store *s, const char *key)
{
	struct bcache *c;
	struct bc_blk *b;
	struct bc_obj *o;
	uint32_t i;

	if (!bcache_is_cache(s) || !store_key_is_valid(key))
		return -EINVAL;
	c = to_bc(s);
	pthread_mutex_lock(&c->lock);
	if (bc_out_find_locked(c, key)) {
		pthread_mutex_unlock(&c->lock);
		return -EBUSY;
	}
	o = bc_obj_find_locked(c, key);
	if (o) {
		o->epoch++;	/* queued and running fetches are void */
		o->hydrating = false;
		for (i = 0; i < o->nblocks; i++) {
			b = &o->blks[i];
			if (b->state == BC_QUEUED)
				b->state = BC_ABSENT;
			else if (b->state == BC_PRESENT && !b->pins)
				bc_evict_blk_locked(c, b);
		}
		pthread_cond_broadcast(&c->blk_cond);
	}
	pthread_mutex_unlock(&c->lock);
	bc_punch_drain(c);
	return 0;
}

int bcache_state(struct store *s, const char *key, char *out, size_t outlen)
{
	const char *state = "released";
	struct bcache *c;
	struct bc_out *e;
	struct bc_obj *o;

	if (!bcache_is_cache(s) || !key || !out)
		return -EINVAL;
	c = to_bc(s);
	pthread_mutex_lock(&c->lock);
	e = bc_out_find_locked(c, key);
	o = e ? NULL : bc_obj_find_locked(c, key);
	if (e)
		state = e->exporting ? "exporting" : "local";
	else if (o && o->cached == o->size)
		state = "synced";
	else if (o && o->cached)
		state = "cached";
	pthread_mutex_unlock(&c->lock);
	if (strlen(state) >= outlen)
		return -ERANGE;
	memcpy(out, state, strlen(state) + 1);
	return 0;
}

ssize_t bcache_cached_bytes(struct store *s, const char *key)
{
	struct bcache *c;
	struct bc_out *e;
	struct bc_obj *o;
	ssize_t n = 0;

	if (!bcache_is_cache(s) || !key)
		return -EINVAL;
	c = to_bc(s);
	pthread_mutex_lock(&c->lock);
	e = bc_out_find_locked(c, key);
	o = e ? NULL : bc_obj_find_locked(c, key);
	if (e)
		n = (ssize_t)e->size;
	else if (o)
		n = (ssize_t)o->cached;
	pthread_mutex_unlock(&c->lock);
	return n;
}

int bcache_stats(struct store *s, struct bcache_stats *st)
{
	struct bcache *c;
	uint64_t ns;

	if (!bcache_is_cache(s) || !st)
		return -EINVAL;
	c = to_bc(s);
	pthread_mutex_lock(&c->lock);
	*st = c->st;
	st->bytes_cached = c->cached_bytes;
	st->bytes_outbox = c->outbox_bytes;
	st->size_limit = c->limit;
	st->exports_queued = c->outs.n;
	ns = c->fetch_ns;
	if (c->fetch_active)
		ns += (uint64_t)(bc_now_ns() - c->fetch_t0);
	st->fetch_seconds = (double)ns / 1e9;
	st->fetch_threads = c->nworkers;
	pthread_mutex_unlock(&c->lock);
	return 0;
}
