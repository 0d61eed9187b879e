/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for cache/bcache.c, the block cache.  Caches are stacked as
 * in production, over a store they wrap: cache over faulty over mem (to
 * count inner calls), cache over "flaky" over mem (a test store below
 * that can be switched down, so every call fails with EIO, or made to
 * fail only its puts), and cache over store_local (real ETags).  Each
 * test gets a fresh mkdtemp'd cache directory.  The cache runs its own
 * threads; the tests poll its state with a deadline where they wait for
 * background work.  Several reader threads race in one test; TAP output
 * comes from the main thread only.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bcache.h"
#include "failalloc.h"
#include "hash.h"
#include "store.h"
#include "tap.h"

#define BS 4096			/* block size of most tests */
#define WAIT_MS 5000		/* deadline for background work */

/* ---- a store that can be switched off ---- */

struct flaky {
	struct store base;		/* first */
	struct store *inner;		/* owned */
	atomic_bool down;		/* every call fails with EIO */
	atomic_bool fail_puts;		/* put and put_file fail with EIO */
	atomic_uint reads;		/* get and get_range calls passed on */
	atomic_uint heads;		/* head calls passed on */
	atomic_uint creates;		/* create calls passed on */
};

static struct flaky *to_flaky(struct store *s)
{
	return (struct flaky *)s;
}

static int fl_get(struct store *s, const char *key, size_t max, char **buf,
		  size_t *len)
{
	struct flaky *f = to_flaky(s);

	*buf = NULL;
	*len = 0;
	if (atomic_load(&f->down))
		return -EIO;
	atomic_fetch_add(&f->reads, 1);
	return store_get(f->inner, key, max, buf, len);
}

static ssize_t fl_get_range(struct store *s, const char *key, void *buf,
			    size_t len, uint64_t off)
{
	struct flaky *f = to_flaky(s);

	if (atomic_load(&f->down))
		return -EIO;
	atomic_fetch_add(&f->reads, 1);
	return store_get_range(f->inner, key, buf, len, off);
}

static int fl_put(struct store *s, const char *key, const void *buf,
		  size_t len)
{
	struct flaky *f = to_flaky(s);

	if (atomic_load(&f->down) || atomic_load(&f->fail_puts))
		return -EIO;
	return store_put(f->inner, key, buf, len);
}

static int fl_put_file(struct store *s, const char *key, const char *path)
{
	struct flaky *f = to_flaky(s);

	if (atomic_load(&f->down) || atomic_load(&f->fail_puts))
		return -EIO;
	return store_put_file(f->inner, key, path);
}

static int fl_head(struct store *s, const char *key, struct store_stat *st)
{
	struct flaky *f = to_flaky(s);

	if (atomic_load(&f->down))
		return -EIO;
	atomic_fetch_add(&f->heads, 1);
	return store_head(f->inner, key, st);
}

static int fl_list(struct store *s, const char *prefix, store_list_fn fn,
		   void *arg)
{
	struct flaky *f = to_flaky(s);

	if (atomic_load(&f->down))
		return -EIO;
	return store_list(f->inner, prefix, fn, arg);
}

static int fl_del(struct store *s, const char *key)
{
	struct flaky *f = to_flaky(s);

	if (atomic_load(&f->down))
		return -EIO;
	return store_del(f->inner, key);
}

static int fl_open_fd(struct store *s, const char *key)
{
	return store_open_fd(to_flaky(s)->inner, key);
}

static int fl_tmp_path(struct store *s, char *out, size_t outlen)
{
	return store_tmp_path(to_flaky(s)->inner, out, outlen);
}

static void fl_close(struct store *s)
{
	store_close(to_flaky(s)->inner);
	free(s);
}

/* A shared store's create: refuses a key that exists (another writer's). */
static int fl_create(struct store *s, const char *key, const void *buf,
		     size_t len)
{
	struct flaky *f = to_flaky(s);
	struct store_stat st;

	if (atomic_load(&f->down) || atomic_load(&f->fail_puts))
		return -EIO;
	atomic_fetch_add(&f->creates, 1);
	if (store_head(f->inner, key, &st) == 0)
		return -EEXIST;
	return store_put(f->inner, key, buf, len);
}

static const struct store_ops flaky_ops = {
	.create = fl_create,
	.get = fl_get,
	.get_range = fl_get_range,
	.put = fl_put,
	.put_file = fl_put_file,
	.head = fl_head,
	.list = fl_list,
	.del = fl_del,
	.open_fd = fl_open_fd,
	.tmp_path = fl_tmp_path,
	.close = fl_close,
};

static struct flaky *flaky_new(struct store *inner)
{
	struct flaky *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->base.ops = &flaky_ops;
	f->base.name = "flaky";
	f->inner = inner;
	return f;
}

/* ---- helpers ---- */

static const char *nm(const char *fmt, ...)
{
	static char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return buf;
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void rm_rf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void make_tmpdir(char *out, size_t outlen, const char *what)
{
	snprintf(out, outlen, "/tmp/mlfs-bcache-%s-XXXXXX", what);
	if (!mkdtemp(out)) {
		perror("mkdtemp");
		exit(1);
	}
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Byte off of the test object made with seed. */
static uint8_t pat(unsigned seed, uint64_t off)
{
	uint64_t x = off * 0x9e3779b97f4a7c15ULL + seed * 0xbf58476d1ce4e5b9ULL;

	return (uint8_t)(x >> 56 ^ x >> 29 ^ off);
}

static char *pat_buf(unsigned seed, size_t len)
{
	char *p = malloc(len ? len : 1);
	size_t i;

	if (!p)
		exit(1);
	for (i = 0; i < len; i++)
		p[i] = (char)pat(seed, i);
	return p;
}

static int put_pat(struct store *s, const char *key, unsigned seed,
		   size_t len)
{
	char *p = pat_buf(seed, len);
	int rc = store_put(s, key, p, len);

	free(p);
	return rc;
}

/* Read [off, off + len) of key through s; 0 if it matches seed's bytes. */
static int check_range(struct store *s, const char *key, unsigned seed,
		       uint64_t size, uint64_t off, size_t len)
{
	size_t want = off >= size ? 0 : (size_t)(size - off < len ? size - off
								   : len);
	char *buf = malloc(len ? len : 1);
	ssize_t n;
	size_t i;
	int rc = 0;

	if (!buf)
		exit(1);
	n = store_get_range(s, key, buf, len, off);
	if (n < 0) {
		rc = (int)n;
	} else if ((size_t)n != want) {
		printf("# %s: [%llu, +%zu): got %zd bytes, want %zu\n", key,
		       (unsigned long long)off, len, n, want);
		rc = -EMSGSIZE;
	} else {
		for (i = 0; i < want; i++) {
			if ((uint8_t)buf[i] != pat(seed, off + i)) {
				printf("# %s: byte %llu differs\n", key,
				       (unsigned long long)(off + i));
				rc = -EBADMSG;
				break;
			}
		}
	}
	free(buf);
	return rc;
}

/* get key from s and compare with seed's bytes. */
static int check_get(struct store *s, const char *key, unsigned seed,
		     size_t size)
{
	size_t len;
	char *buf;
	size_t i;
	int rc;

	rc = store_get(s, key, SIZE_MAX, &buf, &len);
	if (rc < 0)
		return rc;
	if (len != size)
		rc = -EMSGSIZE;
	for (i = 0; rc == 0 && i < len; i++) {
		if ((uint8_t)buf[i] != pat(seed, i))
			rc = -EBADMSG;
	}
	free(buf);
	return rc;
}

static const char *state_of(struct store *c, const char *key)
{
	static char buf[BCACHE_STATE_MAX];

	if (bcache_state(c, key, buf, sizeof(buf)) < 0)
		return "(error)";
	return buf;
}

/* Wait until key's state is want; true if it got there in time. */
static bool wait_state(struct store *c, const char *key, const char *want)
{
	int64_t end = now_ms() + WAIT_MS;

	while (strcmp(state_of(c, key), want) != 0) {
		if (now_ms() > end)
			return false;
		sleep_ms(2);
	}
	return true;
}

static struct bcache_stats stats_of(struct store *c)
{
	struct bcache_stats st;

	memset(&st, 0, sizeof(st));
	bcache_stats(c, &st);
	return st;
}

/* Entries of a directory, not counting "." and "..". */
static int count_dir(const char *path)
{
	struct dirent *de;
	DIR *d;
	int n = 0;

	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	}
	closedir(d);
	return n;
}

/* The path of the one file in dir/blocks, into out. */
static int block_file(const char *dir, char *out, size_t outlen)
{
	char path[128];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/blocks", dir);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(out, outlen, "%s/%s", path, de->d_name);
		n++;
	}
	closedir(d);
	return n == 1 ? 0 : -ENOENT;
}

/* Flip one byte of a file. */
static int flip_byte(const char *path, off_t off)
{
	unsigned char b;
	int fd;
	int rc = 0;

	fd = open(path, O_RDWR);
	if (fd < 0)
		return -errno;
	if (pread(fd, &b, 1, off) != 1)
		rc = -EIO;
	b ^= 0x5a;
	if (rc == 0 && pwrite(fd, &b, 1, off) != 1)
		rc = -EIO;
	close(fd);
	return rc;
}

/* ---- fixtures ---- */

enum inner_kind {
	INNER_FAULTY,	/* cache over faulty (never failing) over mem */
	INNER_FLAKY,	/* cache over flaky over mem */
};

struct fix {
	char dir[64];
	struct store *mem;	/* borrowed: owned by the chain */
	struct store *faulty;	/* borrowed, or NULL */
	struct flaky *fl;	/* borrowed, or NULL */
	struct store *c;
	struct bcache_opts o;
};

static void opts_default(struct bcache_opts *o, const char *dir)
{
	memset(o, 0, sizeof(*o));
	o->dir = dir;
	o->block_size = BS;
	o->fetch_threads = 4;
	o->retry_ms = 10;
}

/* Build an inner chain of kind over a fresh mem store, and the cache. */
static int fix_reopen(struct fix *f, enum inner_kind kind)
{
	struct store *inner;
	int rc;

	f->faulty = NULL;
	f->fl = NULL;
	if (store_mem_open(&f->mem) < 0)
		exit(1);
	if (kind == INNER_FAULTY) {
		if (store_faulty_open(f->mem, 0, EIO, &f->faulty) < 0)
			exit(1);
		inner = f->faulty;
	} else {
		f->fl = flaky_new(f->mem);
		if (!f->fl)
			exit(1);
		inner = &f->fl->base;
	}
	rc = bcache_open(inner, &f->o, &f->c);
	if (rc < 0)
		store_close(inner);
	return rc;
}

static int fix_open(struct fix *f, enum inner_kind kind, const char *what)
{
	make_tmpdir(f->dir, sizeof(f->dir), what);
	opts_default(&f->o, f->dir);
	return fix_reopen(f, kind);
}

static void fix_close(struct fix *f)
{
	store_close(f->c);
	f->c = NULL;
}

static void fix_done(struct fix *f)
{
	fix_close(f);
	rm_rf(f->dir);
}

/* ---- tests ---- */

static void test_open(void)
{
	struct bcache_opts o;
	struct store *mem;
	struct store *c;
	struct store *c2;
	char dir[64];

	make_tmpdir(dir, sizeof(dir), "open");
	store_mem_open(&mem);
	opts_default(&o, dir);
	o.block_size = 1000;
	is_int(bcache_open(mem, &o, &c), -EINVAL, "block size not 2^n");
	ok(c == NULL, "no store on failure");
	o.block_size = 0;
	o.dir = "/nonexistent/mlfs-bcache";
	is_int(bcache_open(mem, &o, &c), -ENOENT, "missing dir");
	o.dir = dir;
	is_int(bcache_open(mem, &o, &c), 0, "open");
	ok(bcache_is_cache(c) && !bcache_is_cache(mem), "is_cache");
	store_mem_open(&mem);
	is_int(bcache_open(mem, &o, &c2), -EBUSY, "second open of the dir");
	is_int(bcache_sync(mem, NULL, 0), -EINVAL, "sync on a non-cache");
	store_close(mem);
	is_int(store_open_fd(c, "x"), -EOPNOTSUPP, "open_fd");
	store_close(c);
	rm_rf(dir);
}

static void test_cold_warm(void)
{
	const size_t size = 10 * BS + 100;
	struct bcache_stats st;
	struct fix f;
	unsigned calls;

	is_int(fix_open(&f, INNER_FAULTY, "warm"), 0, "open cache/faulty/mem");
	is_int(put_pat(f.mem, "a/obj", 1, size), 0, "object in inner");
	is_str(state_of(f.c, "a/obj"), "released", "never read: released");
	is_int(check_range(f.c, "a/obj", 1, size, 0, size), 0, "cold read");
	calls = store_faulty_calls(f.faulty);
	ok(calls >= 1, "cold read went to inner");
	is_str(state_of(f.c, "a/obj"), "synced", "fully cached: synced");
	is_int(bcache_cached_bytes(f.c, "a/obj"), size, "cached bytes");
	is_int(check_range(f.c, "a/obj", 1, size, 0, size), 0, "warm read");
	is_int(check_get(f.c, "a/obj", 1, size), 0, "warm get");
	is_int(store_faulty_calls(f.faulty), calls, "warm: inner not called");
	st = stats_of(f.c);
	is_int(st.misses, 1, "one miss");
	is_int(st.hits, 2, "two hits");
	is_int(st.fetches, 11, "each block fetched once");
	is_int(st.fetch_bytes, size, "fetch bytes");
	ok(st.fetch_seconds > 0, "fetch time measured");
	is_int(store_get_range(f.c, "a/none", (char[4]){ 0 }, 4, 0), -ENOENT,
	       "missing key");
	fix_done(&f);
}

/* Ranges against a reference, cold (after release) and warm. */
static void ranges_on(struct fix *f, const char *what, uint64_t size)
{
	const uint64_t cs = 65536;
	const struct {
		uint64_t off;
		size_t len;
	} r[] = {
		{ 0, 1 },		{ BS - 1, 2 },
		{ BS, BS },		{ 100, 3 * BS + 17 },
		{ cs - 1, 2 },		{ cs, cs },
		{ 2 * cs - 5, cs + 10 },	{ 1000, 200000 },
		{ size - 10, 100 },	{ size - 1, 1 },
		{ size, 10 },		{ size + 5, 1 },
		{ 1, size },		{ 0, size },
	};
	unsigned i;
	int pass;
	int bad;

	for (pass = 0; pass < 2; pass++) {
		bad = 0;
		for (i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
			if (pass == 0)
				bcache_release(f->c, "r/obj");
			if (check_range(f->c, "r/obj", 7, size, r[i].off,
					r[i].len) < 0) {
				printf("# range %u failed\n", i);
				bad++;
			}
		}
		is_int(bad, 0, nm("%s: table of ranges, %s", what,
				  pass ? "warm" : "cold"));
	}
	srand(42);
	bad = 0;
	for (i = 0; i < 300; i++) {
		uint64_t off = (uint64_t)rand() % (size + 10);
		size_t len = (size_t)rand() % (3 * 65536) + 1;

		if (i % 50 == 0)
			bcache_release(f->c, "r/obj");
		if (check_range(f->c, "r/obj", 7, size, off, len) < 0)
			bad++;
	}
	is_int(bad, 0, nm("%s: random ranges", what));
}

static void test_ranges(void)
{
	const uint64_t size = 5 * 65536 + 1234;
	struct fix f;

	is_int(fix_open(&f, INNER_FAULTY, "rng"), 0, "open, 4 KiB blocks");
	put_pat(f.mem, "r/obj", 7, size);
	ranges_on(&f, "4 KiB blocks", size);
	fix_done(&f);

	make_tmpdir(f.dir, sizeof(f.dir), "rng128");
	opts_default(&f.o, f.dir);
	f.o.block_size = 128 * 1024;	/* two 64 KiB checksums a block */
	is_int(fix_reopen(&f, INNER_FAULTY), 0, "open, 128 KiB blocks");
	put_pat(f.mem, "r/obj", 7, size);
	ranges_on(&f, "128 KiB blocks", size);
	fix_done(&f);
}

static void test_corrupt(void)
{
	const size_t size = 3 * BS + 50;
	char path[512];	/* room for dir/blocks/ and any name */
	unsigned calls;
	struct fix f;

	is_int(fix_open(&f, INNER_FAULTY, "bad"), 0, "open");
	put_pat(f.mem, "c/obj", 3, size);
	is_int(check_range(f.c, "c/obj", 3, size, 0, size), 0, "cold read");
	is_int(block_file(f.dir, path, sizeof(path)), 0, "one cache file");
	is_int(flip_byte(path, BS + 10), 0, "flip a byte of block 1");
	calls = store_faulty_calls(f.faulty);
	is_int(check_range(f.c, "c/obj", 3, size, BS, 100), 0,
	       "corrupt block: right bytes anyway");
	is_int(store_faulty_calls(f.faulty), calls + 1, "block refetched");
	is_int(stats_of(f.c).corrupt, 1, "corruption counted");
	is_int(check_range(f.c, "c/obj", 3, size, 0, size), 0,
	       "whole object right");
	is_int(store_faulty_calls(f.faulty), calls + 1, "then served warm");
	is_int(flip_byte(path, size - 1), 0, "flip the last byte");
	is_int(check_range(f.c, "c/obj", 3, size, size - 3, 3), 0,
	       "partial last block refetched");
	fix_close(&f);

	/*
	 * Corruption while closed, found after reopen.  Inner is down, so
	 * the block cannot be fetched again: EIO, never the bad bytes.
	 */
	is_int(flip_byte(path, 2 * BS + 1), 0, "flip while closed");
	is_int(fix_reopen(&f, INNER_FLAKY), 0, "reopen, inner down");
	atomic_store(&f.fl->down, true);
	is_int(check_range(f.c, "c/obj", 3, size, 0, 2 * BS), 0,
	       "reopened: good blocks served");
	is_int(check_range(f.c, "c/obj", 3, size, 2 * BS, 10), -EIO,
	       "corrupt block, inner down: EIO");
	atomic_store(&f.fl->down, false);
	put_pat(f.mem, "c/obj", 3, size);
	fix_done(&f);
}

/* A cache over a local store whose object the test replaces behind it. */
static void test_etag(void)
{
	const size_t size = 2 * BS + 5;
	struct bcache_opts o;
	struct store *side;
	struct store *loc;
	struct store *c;
	char sdir[64];
	char cdir[64];
	char bdir[128];

	make_tmpdir(sdir, sizeof(sdir), "etag-store");
	make_tmpdir(cdir, sizeof(cdir), "etag-cache");
	snprintf(bdir, sizeof(bdir), "%s/blocks", cdir);
	opts_default(&o, cdir);
	store_local_open(sdir, &side);
	store_local_open(sdir, &loc);
	is_int(bcache_open(loc, &o, &c), 0, "cache over store_local");
	put_pat(side, "d/f", 1, size);
	is_int(check_range(c, "d/f", 1, size, 0, size), 0, "v1 read");
	put_pat(side, "d/f", 2, size);	/* same size, new ETag */
	is_int(check_range(c, "d/f", 1, size, 0, size), 0,
	       "within the TTL the checked version is served");
	store_close(c);

	store_local_open(sdir, &loc);
	is_int(bcache_open(loc, &o, &c), 0, "reopen");
	is_int(check_range(c, "d/f", 2, size, 0, size), 0,
	       "first access after open revalidates: v2");
	is_int(count_dir(bdir), 1, "the old version's file is gone");
	put_pat(side, "d/f", 3, size);
	{
		struct store_stat st;

		is_int(store_head(c, "d/f", &st), 0, "head");
	}
	is_str(state_of(c, "d/f"), "released", "head saw a new ETag: dropped");
	is_int(check_range(c, "d/f", 3, size, 0, size), 0, "v3 after head");
	store_close(c);

	o.revalidate_ttl = 1;
	store_local_open(sdir, &loc);
	is_int(bcache_open(loc, &o, &c), 0, "reopen with a 1 s TTL");
	is_int(check_range(c, "d/f", 3, size, 0, size), 0, "v3 cached");
	put_pat(side, "d/f", 4, size + 1);
	sleep_ms(1100);
	is_int(check_range(c, "d/f", 4, size + 1, 0, size + 1), 0,
	       "after the TTL: v4");
	store_del(side, "d/f");
	is_int(store_get_range(c, "d/f", bdir, 1, 0), 1,
	       "deleted in inner: cached bytes within the TTL");
	sleep_ms(1100);
	is_int(store_get_range(c, "d/f", bdir, 1, 0), -ENOENT,
	       "deleted in inner: ENOENT after the TTL");
	is_int(bcache_cached_bytes(c, "d/f"), 0, "and dropped");
	store_close(c);
	store_close(side);
	rm_rf(sdir);
	rm_rf(cdir);
}

static void test_eviction(void)
{
	struct bcache_stats st;
	struct fix f;
	char key[16];
	int i;

	make_tmpdir(f.dir, sizeof(f.dir), "lru");
	opts_default(&f.o, f.dir);
	f.o.size_limit = 4 * BS;
	is_int(fix_reopen(&f, INNER_FAULTY), 0, "open, limit 4 blocks");
	for (i = 0; i < 6; i++) {
		snprintf(key, sizeof(key), "e/%d", i);
		put_pat(f.mem, key, (unsigned)i, BS);
	}
	for (i = 0; i < 4; i++) {
		snprintf(key, sizeof(key), "e/%d", i);
		check_range(f.c, key, (unsigned)i, BS, 0, BS);
	}
	is_int(stats_of(f.c).bytes_cached, 4 * BS, "cache full");
	is_int(check_range(f.c, "e/0", 0, BS, 0, BS), 0, "touch e/0");
	is_int(check_range(f.c, "e/4", 4, BS, 0, BS), 0, "read e/4");
	is_str(state_of(f.c, "e/1"), "released", "LRU e/1 evicted");
	is_str(state_of(f.c, "e/0"), "synced", "touched e/0 kept");
	is_str(state_of(f.c, "e/2"), "synced", "e/2 kept");
	is_int(check_range(f.c, "e/5", 5, BS, 0, BS), 0, "read e/5");
	is_str(state_of(f.c, "e/2"), "released", "then e/2 evicted");
	st = stats_of(f.c);
	is_int(st.evictions, 2, "two evictions");
	is_int(st.bytes_cached, 4 * BS, "at the limit, not over");
	is_int(check_range(f.c, "e/1", 1, BS, 0, BS), 0, "e/1 again: fetched");
	fix_close(&f);

	/* LRU order survives a reopen (by last access). */
	is_int(fix_reopen(&f, INNER_FAULTY), 0, "reopen");
	is_int(stats_of(f.c).bytes_cached, 4 * BS, "reopened: 4 blocks cached");
	fix_done(&f);
}

static void test_export(void)
{
	const size_t size = 3 * BS + 11;
	unsigned reads;
	struct fix f;

	is_int(fix_open(&f, INNER_FLAKY, "exp"), 0, "open cache/flaky/mem");
	is_int(put_pat(f.c, "o/x", 5, size), 0, "put through the cache");
	is_int(check_get(f.c, "o/x", 5, size), 0, "readable at once");
	is_int(bcache_sync(f.c, "o/x", WAIT_MS), 0, "sync o/x");
	is_int(check_get(f.mem, "o/x", 5, size), 0, "exported to inner");
	is_str(state_of(f.c, "o/x"), "synced", "synced");
	reads = atomic_load(&f.fl->reads);
	is_int(check_get(f.c, "o/x", 5, size), 0, "read after export");
	is_int(atomic_load(&f.fl->reads), reads, "served from the cache");
	is_int(stats_of(f.c).exports_done, 1, "one export");
	is_int(count_dir(nm("%s/outbox", f.dir)), 1, "outbox empty (tmp/)");

	/* put_file from tmp_path, and from another directory */
	{
		char path[256];
		char *p = pat_buf(6, size);
		FILE *fp;

		is_int(store_tmp_path(f.c, path, sizeof(path)), 0, "tmp_path");
		ok(strstr(path, "/outbox/tmp/") != NULL, "in outbox staging");
		fp = fopen(path, "w");
		fwrite(p, 1, size, fp);
		fclose(fp);
		is_int(store_put_file(f.c, "o/y", path), 0, "put_file");
		ok(access(path, F_OK) < 0, "file consumed");
		is_int(check_get(f.c, "o/y", 6, size), 0, "put_file readable");
		snprintf(path, sizeof(path), "/dev/shm/mlfs-bcache-%d",
			 (int)getpid());
		fp = fopen(path, "w");
		if (fp) {
			fwrite(p, 1, size, fp);
			fclose(fp);
			is_int(store_put_file(f.c, "o/z", path), 0,
			       "put_file across file systems");
			ok(access(path, F_OK) < 0, "copied and unlinked");
		} else {
			skip("no /dev/shm");
			skip("no /dev/shm");
		}
		free(p);
		is_int(bcache_sync(f.c, NULL, WAIT_MS), 0, "sync all");
		is_int(check_get(f.mem, "o/y", 6, size), 0, "o/y in inner");
		if (fp)
			is_int(check_get(f.mem, "o/z", 6, size), 0,
			       "o/z in inner");
		else
			skip("no /dev/shm");
	}
	is_int(put_pat(f.c, "o/x", 9, 10), 0, "overwrite o/x");
	is_int(check_get(f.c, "o/x", 9, 10), 0, "new content at once");
	is_int(bcache_sync(f.c, "o/x", WAIT_MS), 0, "sync");
	is_int(check_get(f.mem, "o/x", 9, 10), 0, "new content exported");
	fix_done(&f);
}

static void test_reopen_outbox(void)
{
	const size_t size = 2 * BS + 3;
	struct bcache_stats st;
	struct fix f;
	char key[256];
	int64_t end;

	is_int(fix_open(&f, INNER_FLAKY, "reo"), 0, "open");
	atomic_store(&f.fl->down, true);
	is_int(put_pat(f.c, "keep/me", 8, size), 0, "put while inner down");
	is_int(put_pat(f.c, "keep/too", 9, 0), 0, "an empty object too");
	is_int(bcache_sync(f.c, "keep/me", 100), -ETIMEDOUT,
	       "sync times out");
	end = now_ms() + WAIT_MS;
	while (stats_of(f.c).export_failures < 2 && now_ms() < end)
		sleep_ms(2);
	st = stats_of(f.c);
	ok(st.export_failures >= 2, "exports attempted and failed");
	is_int(st.exports_queued, 2, "two queued");
	ok(!strcmp(state_of(f.c, "keep/me"), "local") ||
		   !strcmp(state_of(f.c, "keep/me"), "exporting"),
	   "state local");
	is_int(check_get(f.c, "keep/me", 8, size), 0, "readable from outbox");
	is_int(bcache_release(f.c, "keep/me"), -EBUSY, "cannot release");
	fix_close(&f);
	is_int(count_dir(nm("%s/outbox", f.dir)), 5, "outbox: 2 x 2 + tmp/");

	/* a crash between sidecar and data leaves a lone sidecar: dropped */
	snprintf(key, sizeof(key), "%s/outbox/%032d.key", f.dir, 0);
	fclose(fopen(key, "w"));
	is_int(fix_reopen(&f, INNER_FAULTY), 0, "reopen over a working inner");
	ok(access(key, F_OK) < 0, "lone sidecar removed");
	is_int(bcache_sync(f.c, NULL, WAIT_MS), 0, "sync all");
	is_int(check_get(f.mem, "keep/me", 8, size), 0, "exported on reopen");
	is_int(check_get(f.mem, "keep/too", 8, 0), 0, "empty one too");
	is_int(count_dir(nm("%s/outbox", f.dir)), 1, "outbox empty");
	is_str(state_of(f.c, "keep/me"), "synced", "synced");
	fix_done(&f);
}

/* The export gate and the conflict callback of bcache_opts. */
struct gate {
	atomic_int answer;		/* what may_export says */
	atomic_uint asked;
	atomic_uint conflicts;
	char key[64];			/* the last conflict's */
};

static int gate_may(void *arg)
{
	struct gate *g = arg;

	atomic_fetch_add(&g->asked, 1);
	return atomic_load(&g->answer);
}

static void gate_conflict(void *arg, const char *key)
{
	struct gate *g = arg;

	snprintf(g->key, sizeof(g->key), "%s", key);
	atomic_fetch_add(&g->conflicts, 1);
}

static void test_create_gate(void)
{
	struct gate g = { .answer = -EAGAIN };
	struct fix f;
	int64_t end;

	make_tmpdir(f.dir, sizeof(f.dir), "gate");
	opts_default(&f.o, f.dir);
	f.o.may_export = gate_may;
	f.o.conflict = gate_conflict;
	f.o.gate_arg = &g;
	is_int(fix_reopen(&f, INNER_FLAKY), 0, "open with a gate");
	is_int(store_put(f.mem, "claimed/v1", "theirs", 6), 0,
	       "another writer's object");
	is_int(store_create(f.c, "claimed/v1", "ours", 4), 0,
	       "create is accepted into the outbox");
	is_int(store_create(f.c, "new/v2", "ours", 4), 0, "a free key too");
	is_int(put_pat(f.c, "plain", 3, 100), 0, "a plain put");
	end = now_ms() + WAIT_MS;
	while (atomic_load(&g.asked) < 2 && now_ms() < end)
		sleep_ms(2);
	ok(atomic_load(&g.asked) >= 2, "the gate is asked again while shut");
	is_int(stats_of(f.c).exports_done, 0, "a shut gate holds exports");
	is_int(bcache_sync(f.c, NULL, 3 * BCACHE_GATE_MS), -ETIMEDOUT,
	       "sync waits while the gate says -EAGAIN");
	fix_close(&f);

	/* the create flag survives a reopen: the claim stays a claim */
	atomic_store(&g.answer, -EROFS);
	is_int(fix_reopen(&f, INNER_FLAKY), 0, "reopen");
	is_int(store_put(f.mem, "claimed/v1", "theirs", 6), 0,
	       "the other writer's object, in the new inner");
	is_int(bcache_sync(f.c, NULL, WAIT_MS), -EROFS,
	       "sync fails at once behind a gate shut for good");
	atomic_store(&g.answer, 0);
	end = now_ms() + WAIT_MS;
	while (atomic_load(&g.conflicts) == 0 && now_ms() < end)
		sleep_ms(2);
	is_int(atomic_load(&g.conflicts) > 0, 1, "conflict reported");
	is_str(g.key, "claimed/v1", "naming the key");
	is_int(check_get(f.mem, "plain", 3, 100), 0, "plain put exported");
	{
		char *buf = NULL;
		size_t len = 0;

		is_int(store_get(f.mem, "claimed/v1", 64, &buf, &len), 0,
		       "their object is there");
		ok(len == 6 && !memcmp(buf, "theirs", 6), "and not replaced");
		free(buf);
		is_int(store_get(f.mem, "new/v2", 64, &buf, &len), 0,
		       "the free claim was exported by create");
		ok(len == 4 && !memcmp(buf, "ours", 4), "with our bytes");
		free(buf);
	}
	ok(atomic_load(&f.fl->creates) >= 2, "exported with inner's create");
	is_int(stats_of(f.c).exports_queued, 1, "the refused claim stays");
	fix_done(&f);
}

static void test_inner_down(void)
{
	const size_t size = 3 * BS + 7;
	struct store_stat sst;
	struct fix f;
	int64_t end;

	is_int(fix_open(&f, INNER_FLAKY, "down"), 0, "open");
	put_pat(f.mem, "x", 1, size);
	put_pat(f.mem, "y", 2, size);
	is_int(check_range(f.c, "x", 1, size, 0, size), 0, "x cached");
	atomic_store(&f.fl->down, true);
	is_int(check_range(f.c, "x", 1, size, 0, size), 0,
	       "inner down: cached x readable");
	is_int(check_range(f.c, "y", 2, size, 0, 10), -EIO,
	       "inner down: uncached y is EIO");
	is_int(store_head(f.c, "x", &sst), 0, "head x from the cache");
	is_int(sst.size, size, "with its size");
	is_int(store_list(f.c, "", NULL, NULL), -EIO, "list passes EIO on");

	is_int(put_pat(f.c, "w", 3, 100), 0, "put w while down");
	end = now_ms() + WAIT_MS;
	while (stats_of(f.c).export_failures < 3 && now_ms() < end)
		sleep_ms(5);
	ok(stats_of(f.c).export_failures >= 3, "export retried");
	atomic_store(&f.fl->down, false);
	ok(wait_state(f.c, "w", "synced"), "retry succeeds without sync");
	is_int(check_get(f.mem, "w", 3, 100), 0, "w in inner");
	fix_close(&f);

	/* Reopened while inner is down: the cache still answers. */
	is_int(fix_reopen(&f, INNER_FLAKY), 0, "reopen");
	atomic_store(&f.fl->down, true);
	is_int(check_range(f.c, "x", 1, size, 0, size), 0,
	       "after reopen, inner down: cached x readable");
	is_int(check_range(f.c, "y", 2, size, 5, 10), -EIO, "y still EIO");
	fix_done(&f);
}

static void test_controls(void)
{
	const size_t size = 20 * BS + 7;
	unsigned calls;
	struct fix f;

	is_int(fix_open(&f, INNER_FAULTY, "ctl"), 0, "open");
	put_pat(f.mem, "p", 4, size);
	is_str(state_of(f.c, "p"), "released", "released before any read");
	is_int(bcache_prefetch(f.c, "p"), 0, "prefetch");
	ok(wait_state(f.c, "p", "synced"), "prefetched: synced");
	is_int(bcache_cached_bytes(f.c, "p"), size, "all bytes cached");
	calls = store_faulty_calls(f.faulty);
	is_int(check_range(f.c, "p", 4, size, 0, size), 0, "read it");
	is_int(store_faulty_calls(f.faulty), calls, "without inner");
	is_int(bcache_release(f.c, "p"), 0, "release");
	is_str(state_of(f.c, "p"), "released", "released");
	is_int(bcache_cached_bytes(f.c, "p"), 0, "nothing cached");
	is_int(stats_of(f.c).bytes_cached, 0, "stats agree");
	is_int(check_range(f.c, "p", 4, size, 5 * BS, BS), 0, "read a block");
	is_str(state_of(f.c, "p"), "cached", "partly cached: cached");
	is_int(bcache_prefetch(f.c, "nope"), -ENOENT, "prefetch missing key");
	is_int(bcache_release(f.c, "nope"), 0, "release unknown key");
	{
		char small[4];

		is_int(bcache_state(f.c, "p", small, sizeof(small)), -ERANGE,
		       "state buffer too small");
	}
	fix_done(&f);

	is_int(fix_open(&f, INNER_FLAKY, "ctl2"), 0, "open over flaky");
	atomic_store(&f.fl->fail_puts, true);
	is_int(put_pat(f.c, "q", 5, 3 * BS), 0, "put q");
	is_int(bcache_release(f.c, "q"), -EBUSY, "q not exported: EBUSY");
	is_int(bcache_cached_bytes(f.c, "q"), 3 * BS, "q's bytes are local");
	atomic_store(&f.fl->fail_puts, false);
	is_int(bcache_sync(f.c, "q", WAIT_MS), 0, "sync q");
	is_str(state_of(f.c, "q"), "synced", "q synced");
	is_int(bcache_release(f.c, "q"), 0, "release q");
	is_str(state_of(f.c, "q"), "released", "q released");
	is_int(check_get(f.c, "q", 5, 3 * BS), 0, "q read back from inner");
	is_str(state_of(f.c, "q"), "synced", "q synced again");
	fix_done(&f);
}

static void test_enospc(void)
{
	struct fix f;

	make_tmpdir(f.dir, sizeof(f.dir), "nospc");
	opts_default(&f.o, f.dir);
	f.o.size_limit = 4 * BS;
	is_int(fix_reopen(&f, INNER_FLAKY), 0, "open, limit 4 blocks");
	put_pat(f.mem, "in", 1, 3 * BS);
	put_pat(f.mem, "big", 2, 6 * BS);
	is_int(check_range(f.c, "in", 1, 3 * BS, 0, 3 * BS), 0, "3 cached");
	atomic_store(&f.fl->fail_puts, true);
	is_int(put_pat(f.c, "a", 3, 2 * BS), 0, "put a: evicts");
	ok(stats_of(f.c).evictions >= 1, "cached blocks evicted for it");
	is_int(put_pat(f.c, "b", 4, 2 * BS), 0, "put b: evicts the rest");
	is_int(stats_of(f.c).bytes_cached, 0, "nothing cached now");
	is_int(put_pat(f.c, "c", 5, 1), -ENOSPC, "all unexported: ENOSPC");
	is_int(put_pat(f.c, "d", 5, 5 * BS), -ENOSPC, "too big: ENOSPC");
	is_int(check_get(f.c, "a", 3, 2 * BS), 0, "a intact");
	is_int(check_range(f.c, "big", 2, 6 * BS, BS + 3, 3 * BS), 0,
	       "no room: reads go around the cache");
	atomic_store(&f.fl->fail_puts, false);
	is_int(bcache_sync(f.c, NULL, WAIT_MS), 0, "exports drain");
	is_int(put_pat(f.c, "c", 5, 1), 0, "room again: put c");
	is_int(bcache_sync(f.c, NULL, WAIT_MS), 0, "sync");
	ok(stats_of(f.c).bytes_cached <= 4 * BS, "under the limit");
	fix_done(&f);
}

/* A floor above the free space: nothing fits, reads go around. */
static void test_min_free(void)
{
	struct fix f;

	make_tmpdir(f.dir, sizeof(f.dir), "floor");
	opts_default(&f.o, f.dir);
	f.o.min_free = UINT64_MAX / 4;
	is_int(fix_reopen(&f, INNER_FAULTY), 0, "open, huge free-space floor");
	put_pat(f.mem, "m", 1, 3 * BS);
	is_int(put_pat(f.c, "n", 2, 10), -ENOSPC, "put below the floor");
	is_int(check_range(f.c, "m", 1, 3 * BS, 10, 2 * BS), 0,
	       "read below the floor: straight from inner");
	is_int(bcache_cached_bytes(f.c, "m"), 0, "nothing cached");
	fix_done(&f);
}

/* An index LMDB cannot read is wiped; the outbox is not in it. */
static void test_bad_index(void)
{
	char path[512];
	struct fix f;
	FILE *fp;

	is_int(fix_open(&f, INNER_FLAKY, "idx"), 0, "open");
	put_pat(f.mem, "i", 1, 2 * BS);
	is_int(check_range(f.c, "i", 1, 2 * BS, 0, 2 * BS), 0, "cached");
	is_int(block_file(f.dir, path, sizeof(path)), 0, "its cache file");
	atomic_store(&f.fl->down, true);
	is_int(put_pat(f.c, "j", 2, 10), 0, "queued");
	fix_close(&f);
	fp = fopen(nm("%s/index/data.mdb", f.dir), "w");
	fputs("this is not an LMDB file, not even close; it is text\n", fp);
	fclose(fp);
	is_int(fix_reopen(&f, INNER_FAULTY), 0, "reopen over a junk index");
	is_int(bcache_cached_bytes(f.c, "i"), 0, "cache started empty");
	ok(access(path, F_OK) < 0, "its cache file removed");
	is_int(bcache_sync(f.c, NULL, WAIT_MS), 0, "outbox kept and exported");
	is_int(check_get(f.mem, "j", 2, 10), 0, "j in inner");
	fix_done(&f);
}

struct seen {
	char keys[8][32];
	uint64_t sizes[8];
	int n;
};

static int seen_fn(void *arg, const char *key, const struct store_stat *st)
{
	struct seen *s = arg;

	if (s->n < 8) {
		snprintf(s->keys[s->n], sizeof(s->keys[0]), "%s", key);
		s->sizes[s->n] = st->size;
	}
	s->n++;
	return 0;
}

static int seen_find(const struct seen *s, const char *key)
{
	int i;
	int hits = 0;

	for (i = 0; i < s->n && i < 8; i++)
		hits += strcmp(s->keys[i], key) == 0;
	return hits;
}

static void test_list_del(void)
{
	struct store_stat sst;
	struct seen s;
	struct fix f;
	int i;

	is_int(fix_open(&f, INNER_FLAKY, "list"), 0, "open");
	put_pat(f.mem, "m/a", 1, 10);
	put_pat(f.mem, "m/b", 2, 20);
	put_pat(f.mem, "n/x", 3, 30);
	atomic_store(&f.fl->fail_puts, true);
	put_pat(f.c, "m/a", 4, 40);
	put_pat(f.c, "m/c", 5, 50);
	memset(&s, 0, sizeof(s));
	is_int(store_list(f.c, "m/", seen_fn, &s), 0, "list m/");
	is_int(s.n, 3, "three keys");
	ok(seen_find(&s, "m/a") == 1 && seen_find(&s, "m/b") == 1 &&
		   seen_find(&s, "m/c") == 1,
	   "a, b and c, once each");
	for (i = 0; i < s.n; i++) {
		if (!strcmp(s.keys[i], "m/a"))
			is_int(s.sizes[i], 40, "m/a: the outbox's size");
	}
	is_int(store_head(f.c, "m/c", &sst), 0, "head m/c");
	is_int(sst.size, 50, "its size");
	is_int(store_head(f.c, "m/b", &sst), 0, "head m/b (inner)");
	is_int(sst.size, 20, "its size");

	is_int(store_del(f.c, "m/c"), 0, "del an unexported key");
	is_int(store_get_range(f.c, "m/c", &sst, 1, 0), -ENOENT, "gone");
	is_int(store_del(f.c, "m/zz"), -ENOENT, "del missing: ENOENT");
	atomic_store(&f.fl->fail_puts, false);
	is_int(bcache_sync(f.c, NULL, WAIT_MS), 0, "sync");
	is_int(check_get(f.c, "m/a", 4, 40), 0, "m/a new content");
	is_int(store_del(f.c, "m/a"), 0, "del an exported, cached key");
	is_int(store_get_range(f.c, "m/a", &sst, 1, 0), -ENOENT,
	       "gone through the cache");
	is_int(store_head(f.mem, "m/a", &sst), -ENOENT, "gone from inner");
	is_str(state_of(f.c, "m/a"), "released", "nothing cached");
	is_int(store_get_range(f.mem, "m/c", &sst, 1, 0), -ENOENT,
	       "m/c never reached inner");
	fix_done(&f);
}

/* hydrate: one small read in the middle brings the whole object in. */
static void test_hydrate(void)
{
	const size_t size = 24 * BS + 5;
	struct bcache_stats st;
	unsigned calls;
	struct fix f;

	make_tmpdir(f.dir, sizeof(f.dir), "hyd");
	opts_default(&f.o, f.dir);
	f.o.hydrate = true;
	is_int(fix_reopen(&f, INNER_FAULTY), 0, "open with hydrate");
	put_pat(f.mem, "h", 8, size);
	is_int(check_range(f.c, "h", 8, size, 10 * BS + 3, 100), 0,
	       "a small read in the middle");
	ok(wait_state(f.c, "h", "synced"), "the rest follows in the background");
	is_int(bcache_cached_bytes(f.c, "h"), size, "every byte cached");
	st = stats_of(f.c);
	is_int(st.fetches, 25, "each block fetched once");
	calls = store_faulty_calls(f.faulty);
	printf("# hydrating 25 blocks took %u calls of inner\n", calls);
	ok(calls < 25, "in runs of blocks: fewer reads of inner than blocks");
	is_int(check_range(f.c, "h", 8, size, 0, size), 0, "read it all");
	is_int(store_faulty_calls(f.faulty), calls, "without inner");
	fix_close(&f);

	/* Too big for half the limit: only what is read (and read ahead). */
	f.o.size_limit = 16 * BS;
	is_int(fix_reopen(&f, INNER_FAULTY), 0, "reopen with a small limit");
	put_pat(f.mem, "g", 9, size);
	is_int(check_range(f.c, "g", 9, size, 3 * BS, 10), 0, "read 10 bytes");
	sleep_ms(50);
	ok(bcache_cached_bytes(f.c, "g") < (ssize_t)(4 * BS),
	   "an object over half the limit is not hydrated");
	fix_done(&f);
}

/*
 * Runs of blocks fetched by one read of inner that fails part way: the
 * blocks that arrived whole are kept, the rest fail cleanly (a reader
 * asks again for a block whose failure it did not wait for), and the
 * next read fetches only what is missing.
 */
static void test_run_cut(void)
{
	const size_t size = 12 * BS;
	struct bcache_stats st;
	struct fix f;
	int rc;

	is_int(fix_open(&f, INNER_FAULTY, "cut"), 0, "open");
	put_pat(f.mem, "r", 3, size);
	store_faulty_cut_streams(f.faulty, 100);
	is_int(check_range(f.c, "r", 3, size, 0, size), -EIO,
	       "every run cut inside its first block: the read fails");
	is_int(bcache_cached_bytes(f.c, "r"), 0, "nothing kept");
	store_faulty_cut_streams(f.faulty, BS + 100);
	rc = check_range(f.c, "r", 3, size, 0, size);
	ok(rc == 0 || rc == -EIO,
	   "every run cut after one block: the read fails cleanly or gets "
	   "the rest in later runs");
	ok(bcache_cached_bytes(f.c, "r") >= (ssize_t)BS,
	   "the blocks that arrived before a cut are kept");
	store_faulty_cut_streams(f.faulty, 0);
	is_int(check_range(f.c, "r", 3, size, 0, size), 0,
	       "read again: whole and right");
	st = stats_of(f.c);
	is_int(st.fetches, 12, "each block fetched once");
	fix_done(&f);
}

static void test_readahead(void)
{
	const size_t size = 64 * BS;
	struct bcache_stats st;
	struct fix f;
	uint64_t off;
	int64_t end;
	int bad = 0;

	is_int(fix_open(&f, INNER_FAULTY, "ra"), 0, "open");
	put_pat(f.mem, "s", 6, size);
	for (off = 0; off < 8 * BS; off += 1024)
		bad += check_range(f.c, "s", 6, size, off, 1024) < 0;
	is_int(bad, 0, "first 8 blocks, 1 KiB at a time");
	end = now_ms() + WAIT_MS;
	while ((uint64_t)bcache_cached_bytes(f.c, "s") <= 12 * BS &&
	       now_ms() < end)
		sleep_ms(2);
	ok(bcache_cached_bytes(f.c, "s") > 12 * BS, "read ahead of the reader");
	for (; off < size; off += 4096)
		bad += check_range(f.c, "s", 6, size, off, 4096) < 0;
	is_int(bad, 0, "the rest");
	ok(wait_state(f.c, "s", "synced"), "all cached");
	st = stats_of(f.c);
	is_int(st.fetches, 64, "each block fetched once");
	ok(st.hits > st.misses, "mostly hits");
	fix_done(&f);
}

struct racer {
	struct store *c;
	uint64_t size;
	unsigned seed;
	int bad;
	int id;
};

static void *racer_main(void *arg)
{
	struct racer *r = arg;
	unsigned st = (unsigned)r->id * 7919u + 1;
	char key[32];
	int i;

	for (i = 0; i < 300; i++) {
		uint64_t off;
		size_t len;

		st = st * 1103515245u + 12345u;
		off = (uint64_t)(st >> 8) % r->size;
		st = st * 1103515245u + 12345u;
		len = (size_t)(st >> 8) % (5 * BS) + 1;
		if (check_range(r->c, "race", r->seed, r->size, off, len) < 0)
			r->bad++;
		if (r->id == 0 && i % 50 == 0) {
			snprintf(key, sizeof(key), "race-put/%d", i);
			if (put_pat(r->c, key, (unsigned)i, 3 * BS) < 0 ||
			    check_get(r->c, key, (unsigned)i, 3 * BS) < 0)
				r->bad++;
		}
		if (r->id == 1 && i % 50 == 0)
			bcache_release(r->c, "race");
	}
	return NULL;
}

static void test_concurrent(void)
{
	const uint64_t size = 64 * BS + 99;
	struct racer r[4];
	pthread_t th[4];
	struct fix f;
	int bad = 0;
	int i;

	make_tmpdir(f.dir, sizeof(f.dir), "race");
	opts_default(&f.o, f.dir);
	f.o.size_limit = 48 * BS;	/* forces evictions while reading */
	is_int(fix_reopen(&f, INNER_FAULTY), 0, "open, limit 48 blocks");
	put_pat(f.mem, "race", 11, size);
	for (i = 0; i < 4; i++) {
		r[i] = (struct racer){ f.c, size, 11, 0, i };
		pthread_create(&th[i], NULL, racer_main, &r[i]);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		bad += r[i].bad;
	}
	is_int(bad, 0, "4 readers, a writer, a releaser, evictions");
	is_int(bcache_sync(f.c, NULL, WAIT_MS), 0, "exports drain");
	ok(stats_of(f.c).bytes_cached + stats_of(f.c).bytes_outbox <=
		   48 * BS,
	   "under the limit");
	fix_done(&f);
}

/* ---- content-addressed keys ---- */

/* Keys "h/<xxh3-128 hex>" name their content, as mlfs's blobs/ do. */
static bool key_names_hash(const char *key, char hash[HASH_HEX_LEN + 1])
{
	if (strncmp(key, "h/", 2) != 0 || strlen(key + 2) != HASH_HEX_LEN)
		return false;
	memcpy(hash, key + 2, HASH_HEX_LEN + 1);
	return true;
}

/* Into out: the key that names seed's first len bytes. */
static void content_key(unsigned seed, size_t len, char *out, size_t outlen)
{
	char hex[HASH_HEX_LEN + 1];
	char *p = pat_buf(seed, len);

	hash_hex(p, len, hex);
	free(p);
	snprintf(out, outlen, "h/%s", hex);
}

struct cas_reader {
	struct store *c;
	const char *key;
	uint64_t size;
	int rc;
};

static void *cas_reader_main(void *arg)
{
	struct cas_reader *r = arg;

	r->rc = check_range(r->c, r->key, 1, r->size, r->size / 2, 100);
	return NULL;
}

/*
 * An object whose key names its hash is checked whole before a byte of
 * it is served; content that does not match is EBADMSG, counted, and
 * not kept; a verified object fetched again must match what was checked.
 */
static void test_content(void)
{
	const size_t size = 6 * BS + 7;
	struct cas_reader r[4];
	struct bcache_stats st;
	pthread_t th[4];
	char key[64];
	char bad[64];
	char bdir[128];
	struct fix f;
	unsigned n;
	int fails = 0;
	int rc;
	int i;

	make_tmpdir(f.dir, sizeof(f.dir), "cas");
	opts_default(&f.o, f.dir);
	f.o.content_hash = key_names_hash;
	f.o.hydrate = true;
	is_int(fix_reopen(&f, INNER_FAULTY), 0, "open with content_hash");
	snprintf(bdir, sizeof(bdir), "%s/blocks", f.dir);
	content_key(1, size, key, sizeof(key));
	put_pat(f.mem, key, 1, size);
	is_int(check_range(f.c, key, 1, size, 3 * BS + 1, 10), 0,
	       "10 bytes in the middle of a good object");
	st = stats_of(f.c);
	is_int(st.fetch_bytes, size, "all of it was fetched before them");
	is_int(st.corrupt_objects, 0, "nothing corrupt");
	is_str(state_of(f.c, key), "synced", "and kept");
	is_int(check_get(f.c, key, 1, size), 0, "get");

	/* the same key and size with other bytes, as if changed in place */
	content_key(2, size, bad, sizeof(bad));
	put_pat(f.mem, bad, 1, size);
	is_int(check_range(f.c, bad, 1, size, 0, 10), -EBADMSG,
	       "changed bytes: EBADMSG, nothing served");
	is_int(stats_of(f.c).corrupt_objects, 1, "counted");
	is_int(bcache_cached_bytes(f.c, bad), 0, "nothing of it cached");
	is_int(count_dir(bdir), 1, "its cache file is gone");
	n = (unsigned)stats_of(f.c).fetches;
	is_int(check_get(f.c, bad, 1, size), -EBADMSG,
	       "read again: EBADMSG again");
	is_int(stats_of(f.c).fetches, n, "without fetching it again");
	is_int(stats_of(f.c).corrupt_objects, 1, "one corrupt version");
	sleep_ms(1100);	/* a new mtime: the mem store has no ETags */
	put_pat(f.mem, bad, 2, size);
	is_int(check_range(f.c, bad, 2, size, 0, size), 0,
	       "repaired in inner: reads fine");

	/* cut short */
	content_key(3, size, bad, sizeof(bad));
	put_pat(f.mem, bad, 3, size - 100);
	is_int(check_range(f.c, bad, 3, size - 100, 0, 10), -EBADMSG,
	       "truncated: EBADMSG");
	is_int(stats_of(f.c).corrupt_objects, 2, "counted");

	/* verified, changed in inner, released: a block fetched again */
	put_pat(f.mem, key, 4, size);
	is_int(bcache_release(f.c, key), 0, "release the verified object");
	is_int(check_range(f.c, key, 1, size, BS, 10), -EBADMSG,
	       "a block fetched again differs: EBADMSG");
	is_int(stats_of(f.c).corrupt_objects, 3, "counted");
	sleep_ms(1100);
	put_pat(f.mem, key, 1, size);
	is_int(check_range(f.c, key, 1, size, 0, size), 0,
	       "repaired: reads fine");

	/* keys that name nothing are served as they are */
	put_pat(f.mem, "plain", 5, size);
	is_int(check_range(f.c, "plain", 5, size, 0, size), 0,
	       "other keys are not checked");
	fix_close(&f);

	/* Not kept in the index: checked again, from the disk alone. */
	is_int(fix_reopen(&f, INNER_FLAKY), 0, "reopen, inner down");
	atomic_store(&f.fl->down, true);
	is_int(check_range(f.c, key, 1, size, 0, size), 0,
	       "reopened: verified from the cached blocks");
	atomic_store(&f.fl->down, false);
	fix_done(&f);

	/* Readers arriving during the check wait for it; one fetch each. */
	make_tmpdir(f.dir, sizeof(f.dir), "cas2");
	opts_default(&f.o, f.dir);
	f.o.content_hash = key_names_hash;
	is_int(fix_reopen(&f, INNER_FAULTY), 0, "open");
	put_pat(f.mem, key, 1, size);
	for (i = 0; i < 4; i++) {
		r[i] = (struct cas_reader){ f.c, key, size, 0 };
		pthread_create(&th[i], NULL, cas_reader_main, &r[i]);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		fails += r[i].rc != 0;
	}
	is_int(fails, 0, "4 readers at once");
	is_int(stats_of(f.c).fetches, 7, "each block fetched once");
	fix_done(&f);

	/* No room: verified around the cache, and checked there after. */
	make_tmpdir(f.dir, sizeof(f.dir), "cas3");
	opts_default(&f.o, f.dir);
	f.o.content_hash = key_names_hash;
	f.o.min_free = UINT64_MAX / 4;
	is_int(fix_reopen(&f, INNER_FAULTY), 0, "open, nothing fits");
	put_pat(f.mem, key, 1, size);
	is_int(check_range(f.c, key, 1, size, BS + 3, 2 * BS), 0,
	       "verified around the cache");
	is_int(bcache_cached_bytes(f.c, key), 0, "nothing cached");
	put_pat(f.mem, key, 4, size);
	is_int(check_range(f.c, key, 1, size, BS + 3, 10), -EBADMSG,
	       "changed since: EBADMSG around the cache too");
	is_int(stats_of(f.c).corrupt_objects, 1, "counted");
	fix_done(&f);

	/* Allocation N fails in the first read: clean, then it works. */
	make_tmpdir(f.dir, sizeof(f.dir), "cas4");
	opts_default(&f.o, f.dir);
	f.o.content_hash = key_names_hash;
	is_int(fix_reopen(&f, INNER_FAULTY), 0, "open");
	put_pat(f.mem, key, 1, size);
	fails = 0;
	for (n = 1; n < 10000; n++) {
		size_t len;
		char *buf;

		failalloc_arm(n);
		rc = store_get(f.c, key, SIZE_MAX, &buf, &len);
		failalloc_arm(0);
		if (rc == 0) {
			free(buf);
			break;
		}
		fails += rc != -ENOMEM;
	}
	is_int(fails, 0, "first read: each failure clean");
	is_int(check_get(f.c, key, 1, size), 0, "then it reads");
	is_int(stats_of(f.c).corrupt_objects, 0, "never taken for corrupt");
	fix_done(&f);
}

/* Allocation N fails in open, put and a cold get: clean every time. */
static void test_failalloc(void)
{
	struct store *mem;
	struct store *c;
	struct fix f;
	unsigned n;
	int bad = 0;
	int rc;

	is_int(fix_open(&f, INNER_FLAKY, "fa"), 0, "open");
	put_pat(f.mem, "fa/cached", 1, 3 * BS);
	check_range(f.c, "fa/cached", 1, 3 * BS, 0, 3 * BS);
	atomic_store(&f.fl->down, true);
	put_pat(f.c, "fa/queued", 2, 100);
	fix_close(&f);

	for (n = 1; n < 10000; n++) {
		struct flaky *fl;

		store_mem_open(&mem);
		fl = flaky_new(mem);
		atomic_store(&fl->down, true);
		failalloc_arm(n);
		rc = bcache_open(&fl->base, &f.o, &c);
		failalloc_arm(0);
		if (rc < 0) {
			store_close(&fl->base);
			bad += rc != -ENOMEM;
			continue;
		}
		bad += check_get(c, "fa/cached", 1, 3 * BS) < 0;
		bad += check_get(c, "fa/queued", 2, 100) < 0;
		store_close(c);
		if (!failalloc_fired())
			break;
	}
	is_int(bad, 0, nm("open: %u allocations, each failure clean", n));

	is_int(fix_reopen(&f, INNER_FLAKY), 0, "reopen");
	/*
	 * failalloc is single-threaded: no export may allocate while it is
	 * armed, so drain the outbox, then make inner refuse puts (which
	 * the flaky store does before allocating anything).
	 */
	is_int(bcache_sync(f.c, NULL, WAIT_MS), 0, "fa/queued exported");
	atomic_store(&f.fl->fail_puts, true);
	put_pat(f.mem, "fa/cold", 3, 5 * BS);
	for (n = 1; n < 10000; n++) {
		char *p = pat_buf(4, 2 * BS);

		failalloc_arm(n);
		rc = store_put(f.c, "fa/put", p, 2 * BS);
		failalloc_arm(0);
		free(p);
		bad += rc < 0 && rc != -ENOMEM;
		if (rc == 0)
			break;
	}
	is_int(bad, 0, "put: each failure clean");
	is_int(check_get(f.c, "fa/put", 4, 2 * BS), 0, "then put worked");
	for (n = 1; n < 10000; n++) {
		size_t len;
		char *buf;

		bcache_release(f.c, "fa/cold");
		failalloc_arm(n);
		rc = store_get(f.c, "fa/cold", SIZE_MAX, &buf, &len);
		failalloc_arm(0);
		if (rc == 0) {
			free(buf);
			break;
		}
		bad += rc != -ENOMEM;
	}
	is_int(bad, 0, "cold get: each failure clean");
	is_int(check_get(f.c, "fa/cold", 3, 5 * BS), 0, "then get worked");
	atomic_store(&f.fl->fail_puts, false);
	is_int(bcache_sync(f.c, NULL, WAIT_MS), 0, "sync");
	is_int(check_get(f.mem, "fa/put", 4, 2 * BS), 0, "fa/put exported");
	fix_done(&f);
}

int main(void)
{
	test_open();
	test_cold_warm();
	test_ranges();
	test_corrupt();
	test_etag();
	test_eviction();
	test_export();
	test_reopen_outbox();
	test_create_gate();
	test_inner_down();
	test_controls();
	test_enospc();
	test_min_free();
	test_bad_index();
	test_list_del();
	test_readahead();
	test_hydrate();
	test_run_cut();
	test_concurrent();
	test_content();
	test_failalloc();
	return done();
}
