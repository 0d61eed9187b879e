/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for cache/store*.c and cache/hash.c.  The same store tests
 * run on a local store (in a fresh mkdtemp'd directory) and on the memory
 * store; the local store then gets the tests that look at its directory.
 * Error paths run through the faulty store (call N fails) and through
 * failalloc (allocation N fails).  Threads appear only where a test
 * races writers against readers; TAP output comes from the main thread.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "failalloc.h"
#include "sink.h"
#include "hash.h"
#include "store.h"
#include "store_i.h"
#include "tap.h"

enum kind {
	KIND_LOCAL,
	KIND_MEM,
};

static const char *const kind_names[] = {
	[KIND_LOCAL] = "local",
	[KIND_MEM] = "mem",
};

/* A store under test and, for a local one, its directory. */
struct fix {
	enum kind kind;
	struct store *s;
	char dir[64];
};

/* A test name, formatted; valid until the next call. */
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

static int make_tmpdir(char *out, size_t outlen)
{
	snprintf(out, outlen, "/tmp/mlfs-store-test-XXXXXX");
	return mkdtemp(out) ? 0 : -errno;
}

/* Open a fresh, empty store of the given kind. */
static int fix_open(struct fix *f, enum kind kind)
{
	int rc;

	f->kind = kind;
	f->s = NULL;
	f->dir[0] = '\0';
	if (kind == KIND_MEM)
		return store_mem_open(&f->s);
	rc = make_tmpdir(f->dir, sizeof(f->dir));
	if (rc < 0)
		return rc;
	rc = store_local_open(f->dir, &f->s);
	if (rc < 0)
		rm_rf(f->dir);
	return rc;
}

static void fix_close(struct fix *f)
{
	store_close(f->s);
	f->s = NULL;
	if (f->dir[0])
		rm_rf(f->dir);
}

static int write_file(const char *path, const void *buf, size_t len)
{
	ssize_t n;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	n = write(fd, buf, len);
	close(fd);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

/* Read a whole small file into buf (NUL-terminated); bytes or -errno. */
static ssize_t read_file(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return n;
}

static bool path_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* Entries in a directory, not counting "." and "..". */
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

/* get key and compare with want: 0 if equal, else an error or -EBADMSG. */
static int get_is(struct store *s, const char *key, const char *want)
{
	size_t len;
	char *buf;
	int rc;

	rc = store_get(s, key, SIZE_MAX, &buf, &len);
	if (rc < 0)
		return rc;
	if (len != strlen(want) || memcmp(buf, want, len) || buf[len])
		rc = -EBADMSG;
	free(buf);
	return rc;
}

/* ---- listing helpers ---- */

struct collect {
	char **keys;
	size_t n;
	size_t cap;
	uint64_t bytes;		/* sum of the sizes reported */
	bool nomem;
};

static int collect_fn(void *arg, const char *key, const struct store_stat *st)
{
	struct collect *c = arg;
	char **keys;
	size_t cap;

	if (c->n == c->cap) {
		cap = c->cap ? c->cap * 2 : 64;
		keys = realloc(c->keys, cap * sizeof(*keys));
		if (!keys) {
			c->nomem = true;
			return -ENOMEM;
		}
		c->keys = keys;
		c->cap = cap;
	}
	c->keys[c->n] = strdup(key);
	if (!c->keys[c->n]) {
		c->nomem = true;
		return -ENOMEM;
	}
	c->n++;
	c->bytes += st->size;
	return 0;
}

static void collect_free(struct collect *c)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		free(c->keys[i]);
	free(c->keys);
	memset(c, 0, sizeof(*c));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * list prefix and render the keys sorted and joined by ',', or
 * "error <rc>".  The result is valid until the next call.
 */
static const char *list_str(struct store *s, const char *prefix)
{
	static char out[8192];
	struct collect c = { 0 };
	size_t used = 0;
	size_t i;
	int rc;

	rc = store_list(s, prefix, collect_fn, &c);
	if (rc < 0) {
		snprintf(out, sizeof(out), "error %d", rc);
		collect_free(&c);
		return out;
	}
	if (c.n)
		qsort(c.keys, c.n, sizeof(*c.keys), cmp_str);
	out[0] = '\0';
	for (i = 0; i < c.n; i++) {
		used += (size_t)snprintf(out + used, sizeof(out) - used,
					 "%s%s", i ? "," : "", c.keys[i]);
		if (used >= sizeof(out))
			break;
	}
	collect_free(&c);
	return out;
}

/* Counts keys without allocating, so it is safe under failalloc. */
static int count_fn(void *arg, const char *key, const struct store_stat *st)
{
	unsigned *n = arg;

	(void)key;
	(void)st;
	(*n)++;
	return 0;
}

static int stop_fn(void *arg, const char *key, const struct store_stat *st)
{
	unsigned *n = arg;

	(void)key;
	(void)st;
	(*n)++;
	return 42;
}

/* ---- hash ---- */

#define VEC_LEN (3 * 1024 * 1024 + 123)

static void test_hash(void)
{
	static const char fox[] = "The quick brown fox jumps over the lazy dog";
	char hex[HASH_HEX_LEN + 1];
	char hex2[HASH_HEX_LEN + 1];
	char path[64];
	struct hash_state *h;
	unsigned char *vec;
	bool fired;
	unsigned n;
	size_t i;
	int fd;
	int rc;

	/* Expected values from xxh128sum (xxhash 0.8.1). */
	hash_hex("", 0, hex);
	is_str(hex, "99aa06d3014798d86001c324468d497f", "hash of \"\"");
	hash_hex("abc", 3, hex);
	is_str(hex, "06b05ab6733a618578af5f94892f3950", "hash of \"abc\"");
	hash_hex(fox, strlen(fox), hex);
	is_str(hex, "ddd650205ca3e7fa24a1cc2e3a8a7651", "hash of the fox");

	h = hash_new();
	ok(h, "hash_new");
	if (h) {
		hash_update(h, fox, 1);
		hash_update(h, fox + 1, 0);
		hash_update(h, fox + 1, 9);
		hash_update(h, fox + 10, strlen(fox) - 10);
		hash_final(h, hex);
		is_str(hex, "ddd650205ca3e7fa24a1cc2e3a8a7651",
		       "streaming hash equals one-shot");
		hash_free(h);
	}
	hash_free(NULL);

	/* Larger than hash_fd's 1 MiB chunk, and not a multiple of it. */
	vec = malloc(VEC_LEN);
	if (!vec) {
		skip("no memory for the hash vector");
		return;
	}
	for (i = 0; i < VEC_LEN; i++)
		vec[i] = (unsigned char)((i * 31 + 7) % 251);
	hash_hex(vec, VEC_LEN, hex);
	is_str(hex, "71229f7b0ebcbe723dd289f1a586cd2f", "hash of 3 MiB vector");

	snprintf(path, sizeof(path), "/tmp/mlfs-hash-test-XXXXXX");
	fd = mkstemp(path);
	ok(fd >= 0, "mkstemp for hash_fd");
	if (fd < 0) {
		free(vec);
		return;
	}
	unlink(path);
	hash_fd(fd, hex);
	is_str(hex, "99aa06d3014798d86001c324468d497f", "hash_fd of empty");
	ok(write(fd, vec, VEC_LEN) == VEC_LEN, "write vector");
	rc = hash_fd(fd, hex);
	is_int(rc, 0, "hash_fd");
	is_str(hex, "71229f7b0ebcbe723dd289f1a586cd2f", "hash_fd of vector");
	is_int(hash_fd(-1, hex), -EBADF, "hash_fd on a bad fd");

	/* Every allocation in hash_fd and hash_new may fail. */
	for (n = 1; n < 100; n++) {
		failalloc_arm(n);
		rc = hash_fd(fd, hex2);
		fired = failalloc_fired();
		failalloc_arm(0);
		if (!fired)
			break;
		if (rc != -ENOMEM)
			break;
	}
	is_int(rc, 0, nm("hash_fd: %u allocation failures give -ENOMEM",
			  n - 1));
	is_str(hex2, hex, "hash_fd after allocation failures");
	for (n = 1; n < 100; n++) {
		failalloc_arm(n);
		h = hash_new();
		failalloc_arm(0);
		if (h)
			break;
	}
	ok(h && n > 1, nm("hash_new: NULL until allocation %u", n));
	hash_free(h);
	close(fd);
	free(vec);
}

/* ---- keys ---- */

static void test_keys(void)
{
	static const struct {
		const char *key;
		bool valid;
	} keys[] = {
		{ "a", true },
		{ "a/b", true },
		{ "a/b/c.txt", true },
		{ ".a", true },
		{ "a/.b", true },
		{ "..a", true },
		{ "a..", true },
		{ "a/...", true },
		{ "a b/c", true },
		{ NULL, false },
		{ "", false },
		{ "/", false },
		{ "/a", false },
		{ "a/", false },
		{ "a//b", false },
		{ ".", false },
		{ "..", false },
		{ "./a", false },
		{ "a/.", false },
		{ "a/./b", false },
		{ "../a", false },
		{ "a/..", false },
		{ "a/../b", false },
	};
	static const struct {
		const char *prefix;
		bool valid;
	} prefixes[] = {
		{ "", true },
		{ "a", true },
		{ "a/", true },
		{ "a/b.", true },
		{ ".", true },
		{ "..", true },
		{ "datasets/ir", true },
		{ NULL, false },
		{ "/", false },
		{ "/a", false },
		{ "a//", false },
		{ "./", false },
		{ "../x", false },
		{ "a/./", false },
	};
	char big[STORE_KEY_MAX + 2];
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		ok(store_key_is_valid(keys[i].key) == keys[i].valid,
		   nm("key \"%s\" is %s", keys[i].key ? keys[i].key : "(null)",
		      keys[i].valid ? "valid" : "invalid"));
	for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		ok(store_prefix_is_valid(prefixes[i].prefix) ==
			   prefixes[i].valid,
		   nm("prefix \"%s\" is %s",
		      prefixes[i].prefix ? prefixes[i].prefix : "(null)",
		      prefixes[i].valid ? "valid" : "invalid"));
	memset(big, 'k', sizeof(big));
	big[STORE_KEY_MAX] = '\0';
	ok(store_key_is_valid(big), "key of 1024 bytes is valid");
	big[STORE_KEY_MAX] = 'k';
	big[STORE_KEY_MAX + 1] = '\0';
	ok(!store_key_is_valid(big), "key of 1025 bytes is invalid");
}

/* ---- the same tests on every backend ---- */

static void test_basic(struct store *s, const char *k)
{
	struct store_stat st;
	char range[16];
	size_t len;
	char *buf;
	time_t now;
	int rc;

	is_int(store_put(s, "a/b/c", "hello", 5), 0, nm("%s: put", k));
	rc = store_get(s, "a/b/c", 1 << 20, &buf, &len);
	is_int(rc, 0, nm("%s: get", k));
	if (rc == 0) {
		is_int(len, 5, nm("%s: get length", k));
		is_str(buf, "hello", nm("%s: get content, NUL-terminated", k));
		free(buf);
	}
	is_int(get_is(s, "a/b/c", "hello"), 0, nm("%s: get with max", k));
	buf = (char *)"junk";
	rc = store_get(s, "a/b/c", 4, &buf, &len);
	is_int(rc, -EFBIG, nm("%s: get over max", k));
	ok(!buf && !len, nm("%s: failed get gives NULL, 0", k));
	rc = store_get(s, "a/b/c", 5, &buf, &len);
	is_int(rc, 0, nm("%s: get at exactly max", k));
	free(buf);
	is_int(store_get(s, "a/b/x", 100, &buf, &len), -ENOENT,
	       nm("%s: get missing", k));
	is_int(store_get(s, "a/b", 100, &buf, &len), -ENOENT,
	       nm("%s: get of a key's parent", k));
	is_int(store_get(s, "a/b/c/d", 100, &buf, &len), -ENOENT,
	       nm("%s: get below an object", k));

	now = time(NULL);
	memset(&st, 0, sizeof(st));
	is_int(store_head(s, "a/b/c", &st), 0, nm("%s: head", k));
	is_int(st.size, 5, nm("%s: head size", k));
	ok(st.mtime > now - 60 && st.mtime < now + 60,
	   nm("%s: head mtime is now", k));
	is_int(store_head(s, "a/b/x", &st), -ENOENT,
	       nm("%s: head missing", k));
	is_int(store_head(s, "a/b", &st), -ENOENT,
	       nm("%s: head of a key's parent", k));

	memset(range, 0, sizeof(range));
	is_int(store_get_range(s, "a/b/c", range, 3, 1), 3,
	       nm("%s: get_range middle", k));
	is_str(range, "ell", nm("%s: get_range content", k));
	memset(range, 0, sizeof(range));
	is_int(store_get_range(s, "a/b/c", range, 10, 3), 2,
	       nm("%s: get_range short at end", k));
	is_str(range, "lo", nm("%s: get_range end content", k));
	is_int(store_get_range(s, "a/b/c", range, 10, 5), 0,
	       nm("%s: get_range at end", k));
	is_int(store_get_range(s, "a/b/c", range, 10, 1000), 0,
	       nm("%s: get_range past end", k));
	is_int(store_get_range(s, "a/b/c", range, 10, UINT64_MAX), 0,
	       nm("%s: get_range at UINT64_MAX", k));
	is_int(store_get_range(s, "a/b/x", range, 10, 0), -ENOENT,
	       nm("%s: get_range missing", k));

	is_int(store_put(s, "a/b/c", "bye!", 4), 0, nm("%s: overwrite", k));
	is_int(get_is(s, "a/b/c", "bye!"), 0, nm("%s: get new content", k));
	is_int(store_head(s, "a/b/c", &st), 0, nm("%s: head after put", k));
	is_int(st.size, 4, nm("%s: head size after overwrite", k));

	is_int(store_put(s, "e", "", 0), 0, nm("%s: put empty object", k));
	rc = store_get(s, "e", 0, &buf, &len);
	is_int(rc, 0, nm("%s: get empty object", k));
	ok(rc == 0 && buf && len == 0 && buf[0] == '\0',
	   nm("%s: empty object is an empty string", k));
	free(buf);
	is_int(store_head(s, "e", &st), 0, nm("%s: head empty object", k));
	is_int(st.size, 0, nm("%s: empty object has size 0", k));

	is_int(store_put(s, "/x", "x", 1), -EINVAL, nm("%s: put /x", k));
	is_int(store_get(s, "a/../b", 9, &buf, &len), -EINVAL,
	       nm("%s: get a/../b", k));
	is_int(store_head(s, "", &st), -EINVAL, nm("%s: head \"\"", k));
	is_int(store_del(s, "a//b"), -EINVAL, nm("%s: del a//b", k));
	is_int(store_get_range(s, ".", range, 1, 0), -EINVAL,
	       nm("%s: get_range .", k));
	is_int(store_list(s, "/a", count_fn, &(unsigned){ 0 }), -EINVAL,
	       nm("%s: list /a", k));

	is_int(store_del(s, "a/b/c"), 0, nm("%s: del", k));
	is_int(store_get(s, "a/b/c", 9, &buf, &len), -ENOENT,
	       nm("%s: get after del", k));
	is_int(store_del(s, "a/b/c"), -ENOENT, nm("%s: del again", k));
	is_int(store_del(s, "a/b"), -ENOENT, nm("%s: del of a parent", k));
	is_int(store_del(s, "e"), 0, nm("%s: del empty object", k));
	is_str(list_str(s, ""), "", nm("%s: store is empty again", k));
}

static void test_list(struct store *s, const char *k)
{
	static const char *const keys[] = {
		"datasets/iris/v1", "datasets/iris/v2", "datasets/iris2/x",
		"datasets/mnist/a", "models/m1", "top",
	};
	struct collect c = { 0 };
	unsigned n = 0;
	size_t i;
	int rc = 0;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (rc == 0)
			rc = store_put(s, keys[i], "0123456789", i + 1);
	}
	is_int(rc, 0, nm("%s: put list keys", k));
	is_str(list_str(s, ""),
	       "datasets/iris/v1,datasets/iris/v2,datasets/iris2/x,"
	       "datasets/mnist/a,models/m1,top",
	       nm("%s: list everything", k));
	is_str(list_str(s, "datasets/ir"),
	       "datasets/iris/v1,datasets/iris/v2,datasets/iris2/x",
	       nm("%s: list prefix ending mid-name", k));
	is_str(list_str(s, "datasets/iris"),
	       "datasets/iris/v1,datasets/iris/v2,datasets/iris2/x",
	       nm("%s: list prefix naming a directory", k));
	is_str(list_str(s, "datasets/iris/"),
	       "datasets/iris/v1,datasets/iris/v2",
	       nm("%s: list prefix ending in /", k));
	is_str(list_str(s, "datasets/iris/v1"), "datasets/iris/v1",
	       nm("%s: list prefix equal to a key", k));
	is_str(list_str(s, "datasets/"),
	       "datasets/iris/v1,datasets/iris/v2,datasets/iris2/x,"
	       "datasets/mnist/a",
	       nm("%s: list one top directory", k));
	is_str(list_str(s, "t"), "top", nm("%s: list top-level name", k));
	is_str(list_str(s, "top/"), "", nm("%s: list below an object", k));
	is_str(list_str(s, "nothing"), "", nm("%s: list no match", k));
	is_str(list_str(s, "no/such/dir/"), "",
	       nm("%s: list missing directory", k));

	rc = store_list(s, "datasets/iris/", collect_fn, &c);
	is_int(rc, 0, nm("%s: list with sizes", k));
	is_int(c.bytes, 1 + 2, nm("%s: list reports sizes", k));
	collect_free(&c);

	rc = store_list(s, "", stop_fn, &n);
	is_int(rc, 42, nm("%s: callback's return stops list", k));
	is_int(n, 1, nm("%s: no call after the stop", k));

	rc = 0;
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (rc == 0)
			rc = store_del(s, keys[i]);
	}
	is_int(rc, 0, nm("%s: del list keys", k));
	is_str(list_str(s, ""), "", nm("%s: empty after deleting all", k));
}

#define MANY 10000

static int many_fn(void *arg, const char *key, const struct store_stat *st)
{
	unsigned char *seen = arg;
	unsigned d;
	unsigned i;

	if (sscanf(key, "many/d%u/k%u", &d, &i) != 2 || i >= MANY ||
	    d != i / 100 || st->size != 6)
		return -EBADMSG;
	if (seen[i])
		return -EEXIST;
	seen[i] = 1;
	return 0;
}

struct many_job {
	struct store *s;
	unsigned from;
	unsigned to;
	int rc;
};

static void *many_put(void *arg)
{
	struct many_job *j = arg;
	char key[64];
	unsigned i;

	for (i = j->from; i < j->to && j->rc == 0; i++) {
		snprintf(key, sizeof(key), "many/d%02u/k%05u", i / 100, i);
		j->rc = store_put(j->s, key, "object", 6);
	}
	return NULL;
}

static void test_many(struct store *s, const char *k)
{
	struct many_job jobs[8];
	struct timespec t0;
	struct timespec t1;
	unsigned char *seen;
	pthread_t th[8];
	bool started[8];
	unsigned n = 0;
	unsigned i;
	int rc = 0;

	/* Threads, because a local put waits for two fsyncs. */
	for (i = 0; i < 8; i++) {
		jobs[i] = (struct many_job){ s, i * MANY / 8,
					     (i + 1) * MANY / 8, 0 };
		started[i] = pthread_create(&th[i], NULL, many_put,
					    &jobs[i]) == 0;
		if (!started[i])
			many_put(&jobs[i]);
	}
	for (i = 0; i < 8; i++) {
		if (started[i])
			pthread_join(th[i], NULL);
		if (rc == 0)
			rc = jobs[i].rc;
	}
	is_int(rc, 0, nm("%s: put %d keys", k, MANY));
	seen = calloc(MANY, 1);
	if (!seen) {
		skip("no memory");
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = store_list(s, "many/", many_fn, seen);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	is_int(rc, 0, nm("%s: list %d keys", k, MANY));
	for (i = 0; i < MANY; i++)
		n += seen[i];
	is_int(n, MANY, nm("%s: every key listed exactly once", k));
	printf("# %s: listing %d keys took %.1f ms\n", k, MANY,
	       (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
		       (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	free(seen);
	n = 0;
	is_int(store_list(s, "many/d07/", count_fn, &n), 0,
	       nm("%s: list one of 100 directories", k));
	is_int(n, 100, nm("%s: 100 keys in it", k));
	n = 0;
	is_int(store_list(s, "many/d07/k0070", count_fn, &n), 0,
	       nm("%s: list mid-name among many", k));
	is_int(n, 10, nm("%s: 10 keys match", k));

	rc = 0;
	for (i = 0; i < MANY && rc == 0; i++) {
		char key[64];

		snprintf(key, sizeof(key), "many/d%02u/k%05u", i / 100, i);
		rc = store_del(s, key);
	}
	is_int(rc, 0, nm("%s: del %d keys", k, MANY));
	is_str(list_str(s, ""), "", nm("%s: empty after del", k));
}

static void test_put_file(struct fix *f, const char *k)
{
	char path[512];
	char path2[512];
	ssize_t n;
	int rc;

	rc = store_tmp_path(f->s, path, sizeof(path));
	is_int(rc, 0, nm("%s: tmp_path", k));
	is_int(store_tmp_path(f->s, path2, sizeof(path2)), 0,
	       nm("%s: tmp_path again", k));
	ok(strcmp(path, path2) != 0, nm("%s: tmp_path is fresh", k));
	is_int(store_tmp_path(f->s, path2, 8), -ENAMETOOLONG,
	       nm("%s: tmp_path too long for the buffer", k));
	if (rc < 0)
		return;

	is_int(write_file(path, "from a file", 11), 0,
	       nm("%s: write staging file", k));
	is_int(store_put_file(f->s, "pf/one", path), 0,
	       nm("%s: put_file", k));
	is_int(get_is(f->s, "pf/one", "from a file"), 0,
	       nm("%s: put_file content", k));
	ok(!path_exists(path), nm("%s: put_file consumed the file", k));

	is_int(store_put_file(f->s, "pf/two", path), -ENOENT,
	       nm("%s: put_file of a missing file", k));
	is_int(write_file(path, "again", 5), 0, nm("%s: write again", k));
	is_int(store_put_file(f->s, "pf/../two", path), -EINVAL,
	       nm("%s: put_file with a bad key", k));
	ok(path_exists(path), nm("%s: failed put_file leaves the file", k));
	is_int(store_put_file(f->s, "pf/one", path), 0,
	       nm("%s: put_file over a key", k));
	is_int(get_is(f->s, "pf/one", "again"), 0,
	       nm("%s: put_file replaced the content", k));

	/* From another file system: /dev/shm is tmpfs, /tmp often not. */
	if (f->kind == KIND_LOCAL) {
		struct stat a;
		struct stat b;
		char shm[] = "/dev/shm/mlfs-store-test-XXXXXX";
		int fd;

		fd = mkstemp(shm);
		if (fd < 0 || stat(f->dir, &a) < 0 || fstat(fd, &b) < 0 ||
		    a.st_dev == b.st_dev) {
			skip("no second file system for put_file EXDEV");
			skip("no second file system for put_file EXDEV");
			skip("no second file system for put_file EXDEV");
		} else {
			n = write(fd, "crossing", 8);
			rc = n == 8 ? store_put_file(f->s, "pf/x", shm) : -EIO;
			is_int(rc, 0, nm("%s: put_file across file systems", k));
			is_int(get_is(f->s, "pf/x", "crossing"), 0,
			       nm("%s: copied content", k));
			ok(!path_exists(shm),
			   nm("%s: copied file was consumed", k));
			store_del(f->s, "pf/x");
		}
		if (fd >= 0) {
			close(fd);
			unlink(shm);
		}
	}
	is_int(store_del(f->s, "pf/one"), 0, nm("%s: del put_file key", k));
}

static void test_open_fd(struct fix *f, const char *k)
{
	char buf[16];
	ssize_t n;
	int fd;

	is_int(store_put(f->s, "fd/x", "data", 4), 0, nm("%s: put", k));
	fd = store_open_fd(f->s, "fd/x");
	if (f->kind == KIND_MEM) {
		is_int(fd, -EOPNOTSUPP, nm("%s: open_fd unsupported", k));
	} else {
		ok(fd >= 0, nm("%s: open_fd", k));
		n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
		buf[n > 0 ? n : 0] = '\0';
		is_str(buf, "data", nm("%s: read through open_fd", k));
		ok(fd >= 0 && !(fcntl(fd, F_GETFL) & O_NONBLOCK),
		   nm("%s: open_fd gives a blocking fd", k));
		ok(fd >= 0 && (fcntl(fd, F_GETFD) & FD_CLOEXEC),
		   nm("%s: open_fd gives a close-on-exec fd", k));
		if (fd >= 0)
			close(fd);
		is_int(store_open_fd(f->s, "fd/y"), -ENOENT,
		       nm("%s: open_fd missing", k));
		is_int(store_open_fd(f->s, "fd"), -ENOENT,
		       nm("%s: open_fd on a key's parent", k));
	}
	store_del(f->s, "fd/x");
}

/* Writer and reader race on one key; a reader must never see a mix. */
#define ATOM_ROUNDS 100
#define ATOM_A (256 * 1024)
#define ATOM_B (512 * 1024)

struct atom {
	struct store *s;
	char *a;
	char *b;
	int rc;
	_Atomic bool done;
};

static void *atom_writer(void *arg)
{
	struct atom *t = arg;
	int i;

	for (i = 0; i < ATOM_ROUNDS && t->rc == 0; i++) {
		if (i % 2)
			t->rc = store_put(t->s, "atom/obj", t->b, ATOM_B);
		else
			t->rc = store_put(t->s, "atom/obj", t->a, ATOM_A);
	}
	t->done = true;
	return NULL;
}

static int tmp_name_fn(void *arg, const char *key,
		       const struct store_stat *st)
{
	unsigned *bad = arg;

	(void)st;
	if (strstr(key, ".tmp") || strcmp(key, "atom/obj"))
		(*bad)++;
	return 0;
}

static void test_atomic(struct fix *f, const char *k)
{
	struct atom t = { .s = f->s };
	unsigned reads = 0;
	unsigned bad = 0;
	unsigned listed = 0;
	pthread_t th;
	size_t len;
	char *buf;
	int rc;

	t.a = malloc(ATOM_A);
	t.b = malloc(ATOM_B);
	if (!t.a || !t.b || pthread_create(&th, NULL, atom_writer, &t)) {
		skip("cannot start the writer");
		goto out;
	}
	while (!t.done) {
		rc = store_get(f->s, "atom/obj", SIZE_MAX, &buf, &len);
		if (rc == 0) {
			const char *want = len == ATOM_A ? t.a : t.b;

			if ((len != ATOM_A && len != ATOM_B) ||
			    memcmp(buf, want, len))
				bad++;
			free(buf);
		} else if (rc != -ENOENT) {
			bad++;
		}
		reads++;
		rc = store_list(f->s, "", tmp_name_fn, &listed);
		if (rc < 0)
			bad++;
	}
	pthread_join(th, NULL);
	is_int(t.rc, 0, nm("%s: writer's puts", k));
	ok(bad == 0 && listed == 0,
	   nm("%s: %u reads during puts saw whole objects only", k, reads));
	if (f->kind == KIND_LOCAL) {
		char path[128];

		snprintf(path, sizeof(path), "%s/.tmp", f->dir);
		is_int(count_dir(path), 0,
		       nm("%s: no staging file left behind", k));
	}
	store_del(f->s, "atom/obj");
out:
	free(t.a);
	free(t.b);
}

/* put and del in the same directory from two threads, many times. */
struct racer {
	struct store *s;
	const char *key;
	int rc;
};

static void *race_put_del(void *arg)
{
	struct racer *r = arg;
	int i;

	for (i = 0; i < 300 && r->rc == 0; i++) {
		r->rc = store_put(r->s, r->key, "x", 1);
		if (r->rc == 0)
			r->rc = store_del(r->s, r->key);
	}
	return NULL;
}

static void test_race(struct fix *f, const char *k)
{
	struct racer r[2] = {
		{ f->s, "race/d/e/k0", 0 },
		{ f->s, "race/d/e/k1", 0 },
	};
	pthread_t th;

	if (pthread_create(&th, NULL, race_put_del, &r[0])) {
		skip("cannot start a thread");
		return;
	}
	race_put_del(&r[1]);
	pthread_join(th, NULL);
	is_int(r[0].rc, 0, nm("%s: put/del racing a del, thread 1", k));
	is_int(r[1].rc, 0, nm("%s: put/del racing a del, thread 2", k));
	is_str(list_str(f->s, ""), "", nm("%s: nothing left after race", k));
}

/* ---- error paths ---- */

/*
 * The operations the error-path loops run.  Returns the first failure,
 * with *step saying which operation gave it.
 */
static int run_ops(struct store *s, const char *tmp, int *step)
{
	struct store_stat st;
	char range[8];
	unsigned n = 0;
	size_t len;
	char *buf;
	int rc;

	*step = 0;
	rc = store_put(s, "d/k1", "value1", 6);
	if (rc < 0)
		return rc;
	*step = 1;
	rc = store_get(s, "d/k1", 100, &buf, &len);
	if (rc < 0)
		return rc;
	free(buf);
	*step = 2;
	rc = store_list(s, "d/", count_fn, &n);
	if (rc < 0)
		return rc;
	*step = 3;
	rc = store_head(s, "d/k1", &st);
	if (rc < 0)
		return rc;
	*step = 4;
	rc = (int)store_get_range(s, "d/k1", range, sizeof(range), 2);
	if (rc < 0)
		return rc;
	*step = 5;
	rc = store_del(s, "d/k1");
	if (rc < 0)
		return rc;
	*step = 6;
	rc = store_put_file(s, "d/k2", tmp);
	if (rc < 0)
		return rc;
	*step = 7;
	return 0;
}

/* After any run_ops, each key is missing or complete: 0, or -EBADMSG. */
static int check_clean(struct store *s)
{
	int rc;

	rc = get_is(s, "d/k1", "value1");
	if (rc < 0 && rc != -ENOENT)
		return -EBADMSG;
	rc = get_is(s, "d/k2", "staged");
	if (rc < 0 && rc != -ENOENT)
		return -EBADMSG;
	return 0;
}

static void test_faulty(enum kind kind, const char *k)
{
	struct store *faulty;
	struct fix f;
	char tmp[512];
	unsigned fail_at;
	unsigned calls = 0;
	unsigned runs = 0;
	unsigned bad = 0;
	int step = 0;
	int rc = -1;

	for (fail_at = 1; fail_at < 50; fail_at++) {
		if (fix_open(&f, kind) < 0) {
			bad++;
			break;
		}
		rc = store_faulty_open(f.s, fail_at, EIO, &faulty);
		if (rc < 0) {
			fix_close(&f);
			bad++;
			break;
		}
		if (store_tmp_path(f.s, tmp, sizeof(tmp)) < 0 ||
		    write_file(tmp, "staged", 6) < 0)
			bad++;
		rc = run_ops(faulty, tmp, &step);
		calls = store_faulty_calls(faulty);
		if (rc < 0 && (rc != -EIO || calls != fail_at)) {
			printf("# fail_at %u: step %d gave %d after %u calls\n",
			       fail_at, step, rc, calls);
			bad++;
		}
		if (rc < 0 && step == 6 && !path_exists(tmp))
			bad++;	/* failed put_file must leave the file */
		if (check_clean(f.s) < 0)
			bad++;
		runs++;
		/* The faulty store owns the inner one now. */
		store_close(faulty);
		f.s = NULL;
		fix_close(&f);
		if (rc == 0)
			break;
	}
	is_int(rc, 0, nm("%s: faulty: ops succeed once fail_at passes them",
			 k));
	is_int(calls, 7, nm("%s: faulty: 7 calls counted", k));
	ok(bad == 0 && runs == 8,
	   nm("%s: faulty: %u runs, every injected failure clean", k,
	      runs));
}

/*
 * Open a store, run the ops and close it, with allocation n failing.
 * For a local store dir is reused and checked between runs.
 */
static int alloc_run(enum kind kind, const char *dir, unsigned n,
		     bool *fired)
{
	struct store *s;
	char tmp[512] = "";
	int step = -1;
	int rc;

	failalloc_arm(n);
	if (kind == KIND_MEM)
		rc = store_mem_open(&s);
	else
		rc = store_local_open(dir, &s);
	if (rc < 0)
		goto out;
	rc = store_tmp_path(s, tmp, sizeof(tmp));
	if (rc == 0)
		rc = write_file(tmp, "staged", 6);
	if (rc == 0)
		rc = run_ops(s, tmp, &step);
	if (rc < 0 && rc != -ENOMEM)
		printf("# allocation %u: step %d gave %d\n", n, step, rc);
	if (rc < 0 && tmp[0])
		unlink(tmp);	/* put_file did not take it */
	store_close(s);
out:
	*fired = failalloc_fired();
	failalloc_arm(0);
	return rc;
}

static void test_failalloc(enum kind kind, const char *k)
{
	struct store *s;
	char dir[64];
	char path[128];
	unsigned n;
	unsigned bad = 0;
	bool fired = true;
	int rc = -1;

	if (kind == KIND_LOCAL && make_tmpdir(dir, sizeof(dir)) < 0) {
		skip("no temp dir");
		return;
	}
	for (n = 1; n < 1000 && fired; n++) {
		rc = alloc_run(kind, dir, n, &fired);
		if (rc < 0 && (rc != -ENOMEM || !fired))
			bad++;
		if (kind != KIND_LOCAL)
			continue;
		/* Whatever failed, the directory holds whole objects. */
		if (store_local_open(dir, &s) < 0) {
			bad++;
			continue;
		}
		if (check_clean(s) < 0)
			bad++;
		store_del(s, "d/k1");
		store_del(s, "d/k2");
		store_close(s);
		snprintf(path, sizeof(path), "%s/.tmp", dir);
		if (count_dir(path) != 0)
			bad++;
	}
	is_int(rc, 0, nm("%s: ops succeed once allocations do", k));
	ok(n > 2 && bad == 0,
	   nm("%s: %u allocation failures, each -ENOMEM and clean", k,
	      n - 2));
	if (kind == KIND_LOCAL)
		rm_rf(dir);
}

/* ---- the local store's own tests ---- */

/*
 * open_as_nobody: store_local_open(path) by a user who may not write the
 * directory.  Root may write anywhere, so as root the open runs in a child
 * that has become nobody (65534) and owns the 0500 directory; the errno
 * comes back as its exit status.  Returns store_local_open's result.
 */
static int open_as_nobody(const char *parent, const char *path)
{
	struct store *s = NULL;
	int status;
	pid_t pid;
	int rc;

	if (geteuid() != 0) {
		rc = store_local_open(path, &s);
		store_close(s);
		return rc;
	}
	if (chmod(parent, 0711) < 0 || chown(path, 65534, 65534) < 0)
		return -errno;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
		    setresuid(65534, 65534, 65534) < 0)
			_exit(255);
		rc = store_local_open(path, &s);
		store_close(s);
		_exit(rc < 0 ? -rc : 0);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status) == 255)
		return -ECHILD;
	return -WEXITSTATUS(status);
}

static void test_local_open(void)
{
	static struct store dummy;
	struct store *s = &dummy;
	char dir[64];
	char path[128];
	int cwd;

	is_int(store_local_open("/nonexistent/mlfs", &s), -ENOENT,
	       "local: open missing dir");
	ok(!s, "local: failed open gives NULL");
	if (make_tmpdir(dir, sizeof(dir)) < 0) {
		skip("no temp dir");
		return;
	}
	snprintf(path, sizeof(path), "%s/file", dir);
	write_file(path, "x", 1);
	is_int(store_local_open(path, &s), -ENOTDIR, "local: open a file");
	snprintf(path, sizeof(path), "%s/ro", dir);
	mkdir(path, 0500);
	is_int(open_as_nobody(dir, path), -EACCES, "local: open read-only dir");
	/* A relative path works and still yields an absolute tmp_path. */
	cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cwd >= 0 && chdir(dir) == 0) {
		char tmp[512] = "";

		mkdir("rel", 0755);
		is_int(store_local_open("rel", &s), 0,
		       "local: open relative path");
		if (fchdir(cwd) < 0)
			perror("fchdir");
		if (s) {
			store_tmp_path(s, tmp, sizeof(tmp));
			ok(tmp[0] == '/', "local: tmp_path is absolute");
			is_str(s->name, nm("local:%s/rel", dir),
			       "local: store name");
			store_close(s);
		}
	}
	if (cwd >= 0)
		close(cwd);
	rm_rf(dir);
}

static void test_local_layout(struct fix *f)
{
	struct store *s2;
	char path[256];
	char buf[512];
	int rc;

	is_int(store_put(f->s, "lay/out/file", "on disk", 7), 0,
	       "local: put");
	snprintf(path, sizeof(path), "%s/lay/out/file", f->dir);
	read_file(path, buf, sizeof(buf));
	is_str(buf, "on disk", "local: object is DIR/<key>");
	snprintf(path, sizeof(path), "%s/.tmp", f->dir);
	is_int(count_dir(path), 0, "local: staging dir exists and is empty");

	store_tmp_path(f->s, buf, sizeof(buf));
	ok(strncmp(buf, path, strlen(path)) == 0 &&
		   buf[strlen(path)] == '/',
	   "local: tmp_path is in DIR/.tmp");

	/* Junk in the hidden places never shows up in a listing. */
	snprintf(path, sizeof(path), "%s/.tmp/junk", f->dir);
	write_file(path, "j", 1);
	snprintf(path, sizeof(path), "%s/lay/.tmp-x", f->dir);
	write_file(path, "j", 1);
	snprintf(path, sizeof(path), "%s/.tmpdir", f->dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/.tmpdir/y", f->dir);
	write_file(path, "j", 1);
	is_str(list_str(f->s, ""), "lay/out/file", "local: list hides .tmp*");
	is_str(list_str(f->s, ".tmp/"), "", "local: list .tmp/ is empty");
	is_str(list_str(f->s, ".tm"), "", "local: list .tm finds nothing");
	is_str(list_str(f->s, "lay/.tmp-x"), "",
	       "local: list of a hidden name finds nothing");
	is_int(store_put(f->s, ".tmp/x", "x", 1), -EINVAL,
	       "local: key in .tmp is refused");
	is_int(store_put(f->s, "lay/.tmpz", "x", 1), -EINVAL,
	       "local: key with a .tmp* component is refused");
	snprintf(path, sizeof(path), "%s/lay/.tmp-x", f->dir);
	unlink(path);

	/* A symlink to a directory is not followed (no loops). */
	snprintf(path, sizeof(path), "%s/lay/loop", f->dir);
	rc = symlink("..", path);
	is_str(list_str(f->s, ""), "lay/out/file",
	       "local: list does not follow a directory symlink");
	if (rc == 0)
		unlink(path);

	/* Collisions between objects and directories fail cleanly. */
	ok(store_put(f->s, "lay/out/file/sub", "x", 1) < 0,
	   "local: put below an object fails");
	ok(store_put(f->s, "lay/out", "x", 1) < 0,
	   "local: put over a directory fails");
	snprintf(path, sizeof(path), "%s/.tmp", f->dir);
	is_int(count_dir(path), 1, "local: failed puts leave no staging file");

	/* The data survives the store. */
	rc = store_local_open(f->dir, &s2);
	is_int(rc, 0, "local: reopen");
	if (rc == 0) {
		is_int(get_is(s2, "lay/out/file", "on disk"), 0,
		       "local: object read after reopen");
		store_close(s2);
	}

	/* del removes the directories it empties, and only those. */
	store_put(f->s, "lay/q/r/1", "1", 1);
	store_put(f->s, "lay/2", "2", 1);
	is_int(store_del(f->s, "lay/q/r/1"), 0, "local: del nested");
	snprintf(path, sizeof(path), "%s/lay/q", f->dir);
	ok(!path_exists(path), "local: del removed empty parents");
	snprintf(path, sizeof(path), "%s/lay", f->dir);
	ok(path_exists(path), "local: del kept a non-empty parent");
	store_del(f->s, "lay/2");
	store_del(f->s, "lay/out/file");
	ok(!path_exists(path), "local: last del removed the tree");
	ok(path_exists(f->dir), "local: del never removes DIR");
}

/* get_stream, here by get_range in pieces (no backend streams but S3). */
static void test_stream(struct store *s, const char *k)
{
	const size_t size = (3 << 20) + 7;
	struct sink sk = { 0 };
	char *pat;
	size_t i;

	pat = malloc(size);
	sk.buf = malloc(size);
	sk.cap = size;
	for (i = 0; i < size; i++)
		pat[i] = (char)(i * 7 + i / 4099);
	is_int(store_put(s, "st", pat, size), 0, nm("%s: put 3 MiB", k));
	sk.base = sk.next = 5;
	is_int(store_get_stream(s, "st", 5, size, sink_fn, &sk),
	       (ssize_t)(size - 5), nm("%s: get_stream short at end", k));
	ok(sk.next == size && memcmp(sk.buf, pat + 5, size - 5) == 0,
	   nm("%s: get_stream bytes in order, whole", k));
	ok(sk.calls >= 2, nm("%s: handed over in pieces", k));
	sk = (struct sink){ .buf = sk.buf, .cap = size,
			    .base = (1 << 20) + 3, .next = (1 << 20) + 3 };
	is_int(store_get_stream(s, "st", (1 << 20) + 3, 100, sink_fn, &sk),
	       100, nm("%s: get_stream middle", k));
	ok(memcmp(sk.buf, pat + (1 << 20) + 3, 100) == 0,
	   nm("%s: get_stream middle bytes", k));
	sk = (struct sink){ .buf = sk.buf, .cap = size };
	is_int(store_get_stream(s, "st", 0, 0, sink_fn, &sk), 0,
	       nm("%s: get_stream of nothing", k));
	is_int(store_get_stream(s, "st", size, 10, sink_fn, &sk), 0,
	       nm("%s: get_stream at the end", k));
	is_int(sk.calls, 0, nm("%s: no bytes, no calls", k));
	is_int(store_get_stream(s, "nope", 0, 10, sink_fn, &sk), -ENOENT,
	       nm("%s: get_stream missing", k));
	sk = (struct sink){ .buf = sk.buf, .cap = size, .fail_at = 2 };
	is_int(store_get_stream(s, "st", 0, size, sink_fn, &sk), -ENOSPC,
	       nm("%s: the sink's error ends get_stream", k));
	is_int(sk.calls, 2, nm("%s: at once", k));
	is_int(store_del(s, "st"), 0, nm("%s: del", k));
	free(sk.buf);
	free(pat);
}

static void test_store(enum kind kind)
{
	const char *k = kind_names[kind];
	struct fix f;
	int rc;

	rc = fix_open(&f, kind);
	is_int(rc, 0, nm("%s: open", k));
	if (rc < 0)
		return;
	test_basic(f.s, k);
	test_stream(f.s, k);
	test_list(f.s, k);
	test_many(f.s, k);
	test_put_file(&f, k);
	test_open_fd(&f, k);
	test_atomic(&f, k);
	test_race(&f, k);
	if (kind == KIND_LOCAL)
		test_local_layout(&f);
	fix_close(&f);
	test_faulty(kind, k);
	test_failalloc(kind, k);
}

static void test_faulty_misc(void)
{
	struct store *mem;
	struct store *s;
	int rc;

	store_close(NULL);
	ok(1, "store_close(NULL) does nothing");
	is_int(store_faulty_calls(NULL), 0, "faulty: calls of NULL");
	rc = store_mem_open(&mem);
	if (rc < 0) {
		skip("no mem store");
		return;
	}
	is_int(store_faulty_calls(mem), 0, "faulty: calls of another store");
	failalloc_arm(1);
	rc = store_faulty_open(mem, 0, EIO, &s);
	failalloc_arm(0);
	is_int(rc, -ENOMEM, "faulty: open without memory");
	ok(!s, "faulty: failed open gives NULL");
	rc = store_faulty_open(mem, 0, EIO, &s);
	if (rc < 0) {
		store_close(mem);
		skip("no faulty store");
		return;
	}
	is_int(store_put(s, "k", "v", 1), 0, "faulty: fail_at 0 passes");
	is_int(store_put(s, "k", "v", 1), 0, "faulty: and passes again");
	is_int(store_faulty_calls(s), 2, "faulty: counts calls");
	store_close(s);
}

int main(void)
{
	test_hash();
	test_keys();
	test_local_open();
	test_store(KIND_LOCAL);
	test_store(KIND_MEM);
	test_faulty_misc();
	return done();
}
