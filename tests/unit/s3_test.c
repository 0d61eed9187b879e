/* SPDX-License-Identifier: MIT */
/*
 * Unit test of the S3 store (cache/store_s3.c, s3.c, s3_sign.c) against
 * the real thing: s3rver behind tests/s3/gateway.py, which recomputes
 * every request's SigV4 signature with botocore and refuses mismatches,
 * and the gateway's fault port for 5xx, resets, slow answers and
 * truncated bodies.  tests/s3/start.sh DIR starts them and writes the
 * environment this program reads (MLFS_S3_ENDPOINT, MLFS_S3_BUCKET,
 * MLFS_S3_FAULT_ENDPOINT, MLFS_S3_FAULT_CONTROL, ...); without
 * MLFS_S3_ENDPOINT the whole program is skipped (see main).  Each run
 * works under its own random prefix, so runs never see each other's
 * objects.  Only what needs the server is here: SigV4, XML, the errno
 * table and credentials are s3_offline_test.c's, which never skips.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <pthread.h>

#include "failalloc.h"
#include "sink.h"
#include "s3_i.h"
#include "store.h"
#include "tap.h"

static const char *endpoint;
static const char *bucket;
static const char *fault_endpoint;
static const char *fault_control;
static char run[64];		/* this run's prefix: "s3test-<random>" */
static char scratch[256];	/* a temp dir for files and staging */
static char logbuf[8192];	/* log lines from the store, for checks */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

/* Keep the store's log lines (the last 8 KiB) for checks. */
static void test_log(void *arg, const char *msg)
{
	size_t n;

	(void)arg;
	pthread_mutex_lock(&log_lock);
	n = strlen(logbuf);
	if (n + strlen(msg) + 2 > sizeof(logbuf)) {
		logbuf[0] = '\0';
		n = 0;
	}
	snprintf(logbuf + n, sizeof(logbuf) - n, "%s\n", msg);
	pthread_mutex_unlock(&log_lock);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Options for the gateway with the test account, under prefix. */
static void opts_init(struct store_s3_opts *o, const char *prefix)
{
	memset(o, 0, sizeof(*o));
	o->bucket = bucket;
	o->prefix = prefix;
	o->endpoint = endpoint;
	o->path_style = true;
	o->retry_base_ms = 20;
	o->log = test_log;
	snprintf(o->region, sizeof(o->region), "us-east-1");
	snprintf(o->access_key, sizeof(o->access_key), "S3RVER");
	snprintf(o->secret_key, sizeof(o->secret_key), "S3RVER");
}

static struct store *open_store(const char *sub, struct store_s3_opts *o)
{
	char prefix[128];
	struct store *s = NULL;
	struct store_s3_opts def;
	int rc;

	if (!o) {
		o = &def;
		opts_init(o, NULL);
	}
	snprintf(prefix, sizeof(prefix), "%s/%s", run, sub);
	o->prefix = prefix;
	rc = store_s3_open(o, &s);
	if (rc < 0)
		printf("# store_s3_open: %s\n%s", strerror(-rc), logbuf);
	return s;
}

/* ---- the store against the gateway -------------------------------- */

static void test_open_checks(void)
{
	struct store_s3_opts o;
	struct store *s;
	char staging[300];
	char tmp[400];
	int rc;

	opts_init(&o, NULL);
	o.probe = true;
	s = open_store("open", &o);
	ok(s != NULL, "open with probe");
	ok(s && strncmp(s->name, "s3://", 5) == 0, "name is an s3:// URL");
	store_close(s);

	opts_init(&o, NULL);
	o.probe = true;
	snprintf(o.secret_key, sizeof(o.secret_key), "not-the-secret");
	logbuf[0] = '\0';
	rc = store_s3_open(&o, &s);
	is_int(rc, -EACCES, "a wrong secret is refused by the gateway (403)");
	ok(s == NULL, "no store on failure");
	ok(strstr(logbuf, "SignatureDoesNotMatch") != NULL,
	   "the log names S3's error code");
	ok(strstr(logbuf, "not-the-secret") == NULL &&
	   strstr(logbuf, "S3RVER") == NULL,
	   "the log holds no credentials");

	opts_init(&o, NULL);
	o.probe = true;
	snprintf(o.access_key, sizeof(o.access_key), "%s",
		 getenv("MLFS_S3_TOKEN_ACCESS_KEY_ID") ?
		 getenv("MLFS_S3_TOKEN_ACCESS_KEY_ID") : "MLFSTEMP");
	snprintf(o.secret_key, sizeof(o.secret_key), "%s",
		 getenv("MLFS_S3_TOKEN_SECRET_ACCESS_KEY") ?
		 getenv("MLFS_S3_TOKEN_SECRET_ACCESS_KEY") : "MLFSTEMPSECRET");
	rc = store_s3_open(&o, &s);
	is_int(rc, -EACCES, "temporary credentials without their token");
	snprintf(o.session_token, sizeof(o.session_token), "%s",
		 getenv("MLFS_S3_TOKEN_SESSION_TOKEN") ?
		 getenv("MLFS_S3_TOKEN_SESSION_TOKEN") : "MLFSTEMPTOKEN");
	rc = store_s3_open(&o, &s);
	is_int(rc, 0, "temporary credentials with x-amz-security-token");
	store_close(s);

	opts_init(&o, NULL);
	o.probe = true;
	o.bucket = "no-such-bucket-mlfs";
	is_int(store_s3_open(&o, &s), -ENOENT, "a missing bucket");

	opts_init(&o, NULL);
	o.bucket = "Bad_Bucket";
	o.path_style = false;
	is_int(store_s3_open(&o, &s), -EINVAL,
	       "a bucket that cannot be a host name, virtual-hosted");
	opts_init(&o, NULL);
	o.endpoint = "ftp://127.0.0.1:1";
	is_int(store_s3_open(&o, &s), -EINVAL, "an ftp endpoint");
	opts_init(&o, NULL);
	o.endpoint = "http://127.0.0.1:1/some/path";
	is_int(store_s3_open(&o, &s), -EINVAL, "an endpoint with a path");
	opts_init(&o, NULL);
	o.prefix = "a/../b";
	is_int(store_s3_open(&o, &s), -EINVAL, "a prefix with ..");
	opts_init(&o, NULL);
	snprintf(o.session_token, sizeof(o.session_token), "tok\r\nX-Evil: 1");
	is_int(store_s3_open(&o, &s), -EINVAL,
	       "a token that would split a header line");
	opts_init(&o, NULL);
	o.endpoint = "http://127.0.0.1:1";
	o.probe = true;
	o.max_tries = 2;
	is_int(store_s3_open(&o, &s), -EIO, "nothing listening: EIO");

	opts_init(&o, NULL);
	snprintf(staging, sizeof(staging), "%s/staging/deep", scratch);
	o.staging_dir = staging;
	s = open_store("tmp", &o);
	ok(s != NULL, "open with a staging folder");
	if (!s)
		return;
	is_int(store_tmp_path(s, tmp, sizeof(tmp)), 0, "tmp_path");
	ok(strncmp(tmp, staging, strlen(staging)) == 0,
	   "tmp_path is in the staging folder");
	ok(access(staging, W_OK) == 0, "the staging folder was created");
	is_int(store_tmp_path(s, tmp, 10), -ENAMETOOLONG, "tmp_path too long");
	is_int(store_open_fd(s, "x"), -EOPNOTSUPP, "open_fd unsupported");
	store_close(s);
}

static void fill(char *p, size_t n, unsigned seed)
{
	size_t i;
	uint32_t x = seed * 2654435761u + 1;

	for (i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (char)(x >> 16);
	}
}

static void test_objects(void)
{
	static const char *odd[] = {
		"odd/a b+c=d%e~f.txt",
		"odd/\xc3\xbcn\xc3\xaf/\xc3\xa7\xc3\xb8\xd0\xb4\xe2\x82\xac \xf0\x9f\x98\x80",
		"odd/semi;colon,comma&amp;?q=1#frag",
		"odd/x=1+2==",
		"odd/'quote\"s' <tag>",
		"odd/%2F%20not-decoded",
	};
	struct store_stat st;
	struct store *s;
	char *buf;
	size_t len;
	char data[1000];
	char out[1000];
	size_t i;
	int rc;

	s = open_store("obj", NULL);
	ok(s != NULL, "open");
	if (!s)
		return;
	fill(data, sizeof(data), 1);
	is_int(store_put(s, "a/one", data, sizeof(data)), 0, "put");
	buf = NULL;
	is_int(store_get(s, "a/one", 4096, &buf, &len), 0, "get");
	ok(buf && len == sizeof(data) && memcmp(buf, data, len) == 0,
	   "get returns the bytes put");
	ok(buf && buf[len] == '\0', "get NUL-terminates");
	free(buf);
	is_int(store_get(s, "a/one", 999, &buf, &len), -EFBIG,
	       "get over max is EFBIG");
	ok(buf == NULL, "no buffer on failure");
	is_int(store_get(s, "a/missing", 10, &buf, &len), -ENOENT,
	       "get of a missing key");
	is_int(store_put(s, "a/empty", "", 0), 0, "put an empty object");
	is_int(store_get(s, "a/empty", 0, &buf, &len), 0,
	       "get an empty object with max 0");
	ok(buf && len == 0 && buf[0] == '\0', "empty buffer");
	free(buf);

	rc = store_head(s, "a/one", &st);
	is_int(rc, 0, "head");
	is_int(st.size, sizeof(data), "head size");
	ok(llabs((long long)(st.mtime - time(NULL))) < 120, "head mtime is now");
	ok(st.etag[0] == '"' && strlen(st.etag) == 34,
	   "head ETag is a quoted MD5");
	is_int(store_head(s, "a/missing", &st), -ENOENT, "head of a missing key");

	memset(out, 0, sizeof(out));
	is_int(store_get_range(s, "a/one", out, 100, 250), 100, "range inside");
	ok(memcmp(out, data + 250, 100) == 0, "range bytes");
	is_int(store_get_range(s, "a/one", out, 1, 0), 1, "first byte only");
	ok(out[0] == data[0], "bytes=0-0 is one byte");
	is_int(store_get_range(s, "a/one", out, 100, 950), 50,
	       "range crossing the end is short");
	ok(memcmp(out, data + 950, 50) == 0, "short range bytes");
	is_int(store_get_range(s, "a/one", out, 100, 1000), 0,
	       "range at the end is 0 (416)");
	is_int(store_get_range(s, "a/one", out, 100, 5000), 0,
	       "range past the end is 0 (416)");
	is_int(store_get_range(s, "a/one", out, 0, 10), 0, "empty range");
	is_int(store_get_range(s, "a/empty", out, 10, 0), 0,
	       "range of an empty object");
	is_int(store_get_range(s, "a/missing", out, 10, 0), -ENOENT,
	       "range of a missing key");

	is_int(store_s3_get_range_if(s, "a/one", st.etag, out, 10, 5), 10,
	       "If-Match with the current ETag");
	ok(memcmp(out, data + 5, 10) == 0, "conditional range bytes");
	data[0] ^= 1;
	store_put(s, "a/one", data, sizeof(data));
	is_int(store_s3_get_range_if(s, "a/one", st.etag, out, 10, 5), -ESTALE,
	       "If-Match with an old ETag is ESTALE (412)");

	for (i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		char name[120];

		snprintf(name, sizeof(name), "odd key %zu put, get, head", i);
		fill(data, 100, (unsigned)i + 7);
		rc = store_put(s, odd[i], data, 100);
		if (rc == 0)
			rc = store_get(s, odd[i], 100, &buf, &len);
		if (rc == 0) {
			rc = len == 100 && memcmp(buf, data, 100) == 0 ? 0 :
									  -EIO;
			free(buf);
		}
		if (rc == 0)
			rc = store_head(s, odd[i], &st);
		is_int(rc, 0, name);
	}
	is_int(store_put(s, "../escape", "x", 1), -EINVAL, "put .. refused");
	is_int(store_put(s, "/abs", "x", 1), -EINVAL, "put /abs refused");
	is_int(store_get(s, "a//b", 1, &buf, &len), -EINVAL, "get a//b refused");

	is_int(store_del(s, "a/empty"), 0, "del");
	is_int(store_head(s, "a/empty", &st), -ENOENT, "gone after del");
	is_int(store_del(s, "a/empty"), -ENOENT, "del of a missing key");
	is_int(store_del(s, odd[0]), 0, "del of an odd key");
	store_close(s);
}

struct seen {
	char **keys;
	size_t n;
	size_t cap;
	unsigned stop_after;	/* 0: never stop */
};

static int collect(void *arg, const char *key, const struct store_stat *st)
{
	struct seen *v = arg;

	(void)st;
	if (v->n == v->cap) {
		v->cap = v->cap ? v->cap * 2 : 64;
		v->keys = realloc(v->keys, v->cap * sizeof(*v->keys));
	}
	v->keys[v->n++] = strdup(key);
	if (v->stop_after && v->n == v->stop_after)
		return 42;
	return 0;
}

static void seen_free(struct seen *v)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		free(v->keys[i]);
	free(v->keys);
	memset(v, 0, sizeof(*v));
}

static bool seen_has(const struct seen *v, const char *key)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		if (strcmp(v->keys[i], key) == 0)
			return true;
	return false;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every key i of n listed exactly once. */
static bool seen_exactly(struct seen *v, unsigned n, const char *fmt)
{
	char key[64];
	unsigned i;

	if (v->n != n)
		return false;
	qsort(v->keys, v->n, sizeof(*v->keys), cmp_str);
	for (i = 1; i < v->n; i++)
		if (strcmp(v->keys[i - 1], v->keys[i]) == 0)
			return false;
	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), fmt, i);
		if (!bsearch(&(char *){ key }, v->keys, v->n,
			     sizeof(*v->keys), cmp_str))
			return false;
	}
	return true;
}

static void test_list(void)
{
	struct store_s3_opts o;
	struct seen v = { 0 };
	struct store *s;
	char key[64];
	unsigned i;
	int rc = 0;

	opts_init(&o, NULL);
	o.list_max_keys = 7;
	s = open_store("list", &o);
	ok(s != NULL, "open with 7 keys per page");
	if (!s)
		return;
	for (i = 0; i < 40 && rc == 0; i++) {
		snprintf(key, sizeof(key), "p/k%03u", i);
		rc = store_put(s, key, key, strlen(key));
	}
	is_int(rc, 0, "put 40 keys");
	store_put(s, "q/other", "x", 1);
	store_put(s, "pp", "x", 1);
	is_int(store_list(s, "p/", collect, &v), 0, "list p/ over 6 pages");
	ok(seen_exactly(&v, 40, "p/k%03u"), "each key once, relative to the store");
	seen_free(&v);
	is_int(store_list(s, "p", collect, &v), 0, "list p (partial name)");
	is_int(v.n, 41, "p/ and pp");
	ok(seen_has(&v, "pp"), "pp listed");
	seen_free(&v);
	is_int(store_list(s, "", collect, &v), 0, "list everything");
	is_int(v.n, 42, "all keys of the store, none outside it");
	seen_free(&v);
	v.stop_after = 10;
	is_int(store_list(s, "p/", collect, &v), 42,
	       "a callback's non-zero stops the listing");
	is_int(v.n, 10, "stopped at once");
	seen_free(&v);
	is_int(store_list(s, "nothing/", collect, &v), 0, "empty listing");
	is_int(v.n, 0, "no keys");
	is_int(store_list(s, "../", collect, &v), -EINVAL, "prefix with ..");
	store_close(s);
}

/* 1200 keys through the default 1000-key pages, put by eight threads. */
struct bulk {
	struct store *s;
	unsigned from;
	unsigned to;
	int rc;
};

static void *bulk_put(void *arg)
{
	struct bulk *b = arg;
	char key[64];
	unsigned i;

	for (i = b->from; i < b->to && b->rc == 0; i++) {
		snprintf(key, sizeof(key), "k%05u", i);
		b->rc = store_put(b->s, key, "v", 1);
	}
	return NULL;
}

static void test_list_big(void)
{
	struct bulk b[8];
	pthread_t t[8];
	struct seen v = { 0 };
	struct store *s;
	double t0;
	int rc = 0;
	int i;

	s = open_store("big", NULL);
	ok(s != NULL, "open");
	if (!s)
		return;
	t0 = now_s();
	for (i = 0; i < 8; i++) {
		b[i] = (struct bulk){ s, (unsigned)i * 150,
				      (unsigned)i * 150 + 150, 0 };
		pthread_create(&t[i], NULL, bulk_put, &b[i]);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		if (b[i].rc)
			rc = b[i].rc;
	}
	is_int(rc, 0, "put 1200 keys from 8 threads");
	printf("# 1200 puts in %.1f s\n", now_s() - t0);
	is_int(store_list(s, "", collect, &v), 0, "list 1200 keys");
	ok(seen_exactly(&v, 1200, "k%05u"), "1200 keys over 2 pages, each once");
	seen_free(&v);
	store_close(s);
}

/*
 * Objects mlfs could not have written, put with the raw client: a
 * "folder" marker, a key over 1024 bytes, control characters, XML
 * specials.  Listing skips what is not a valid store key and never
 * crashes.
 */
static void test_foreign_keys(void)
{
	struct store_s3_opts o;
	struct s3_client *c = NULL;
	struct s3_resp resp;
	struct s3_req r = { .method = "PUT", .body = "x", .body_len = 1 };
	struct seen v = { 0 };
	struct store *s;
	char huge[1200];
	char k[1300];
	const char *keys[] = {
		"",		/* the marker "<prefix>/" */
		huge,
		"ctl\x01" "char",
		"nl\nx",
		"amp&lt;<>\"'",
		"ok",
	};
	size_t i;
	int rc = 0;

	opts_init(&o, NULL);
	if (s3_client_new(&o, &c) < 0) {
		ok(0, "client");
		return;
	}
	for (i = 0; i + 2 < sizeof(huge); i += 2)
		memcpy(huge + i, "a/", 2);
	huge[i] = 'z';
	huge[i + 1] = '\0';
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]) && rc == 0; i++) {
		snprintf(k, sizeof(k), "%s/foreign/%s", run, keys[i]);
		r.key = k;
		rc = s3_request(c, &r, &resp);
	}
	is_int(rc, 0, "put foreign objects with the raw client");
	s3_client_free(c);
	s = open_store("foreign", NULL);
	ok(s != NULL, "open");
	if (!s)
		return;
	is_int(store_list(s, "", collect, &v), 0, "list foreign objects");
	if (!ok(seen_has(&v, "ok") && seen_has(&v, "ctl\x01" "char") &&
		seen_has(&v, "nl\nx") && seen_has(&v, "amp&lt;<>\"'"),
		"valid keys listed, decoded"))
		for (i = 0; i < v.n; i++)
			printf("#   listed \"%.60s\"\n", v.keys[i]);
	ok(!seen_has(&v, "") && !seen_has(&v, huge), "marker and huge key skipped");
	is_int(v.n, 4, "nothing else");
	seen_free(&v);
	store_close(s);
}

static int write_file(const char *path, size_t size, unsigned seed)
{
	char *p = malloc(size);
	int fd;
	int rc = 0;

	if (!p)
		return -ENOMEM;
	fill(p, size, seed);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, p, size) != (ssize_t)size)
		rc = -EIO;
	if (fd >= 0)
		close(fd);
	free(p);
	return rc;
}

/* Read key back in 3 MiB ranges and compare with fill(seed). */
static bool same_content(struct store *s, const char *key, size_t size,
			 unsigned seed)
{
	size_t chunk = 3 << 20;
	char *want = malloc(size);
	char *got = malloc(chunk);
	size_t off;
	ssize_t n;
	bool same = want && got;

	if (same)
		fill(want, size, seed);
	for (off = 0; same && off < size; off += chunk) {
		n = store_get_range(s, key, got, chunk, off);
		same = n == (ssize_t)(size - off < chunk ? size - off : chunk) &&
		       memcmp(got, want + off, (size_t)n) == 0;
	}
	free(got);
	free(want);
	return same;
}

static void test_multipart(void)
{
	struct store_s3_opts o;
	struct store_stat st;
	struct store *s;
	char path[300];
	char *big;
	size_t size = 20 * 1000 * 1000 + 12345;
	double t0;

	opts_init(&o, NULL);
	o.part_size = 1;		/* clamped to S3's 5 MiB */
	o.multipart_threshold = 6 << 20;
	s = open_store("mp", &o);
	ok(s != NULL, "open with 5 MiB parts");
	if (!s)
		return;
	snprintf(path, sizeof(path), "%s/small", scratch);
	write_file(path, 1000, 3);
	is_int(store_put_file(s, "small", path), 0, "put_file, one PUT");
	ok(access(path, F_OK) < 0, "put_file consumed the file");
	ok(same_content(s, "small", 1000, 3), "small file content");

	snprintf(path, sizeof(path), "%s/big", scratch);
	is_int(write_file(path, size, 4), 0, "write a 20 MB file");
	t0 = now_s();
	is_int(store_put_file(s, "big", path), 0, "put_file, multipart");
	printf("# 20 MB multipart put_file in %.2f s\n", now_s() - t0);
	ok(access(path, F_OK) < 0, "multipart put_file consumed the file");
	is_int(store_head(s, "big", &st), 0, "head the multipart object");
	is_int(st.size, size, "its size");
	ok(same_content(s, "big", size, 4), "multipart content intact");

	big = malloc(12 << 20);
	if (big) {
		fill(big, 12 << 20, 5);
		is_int(store_put(s, "bigmem", big, 12 << 20), 0,
		       "put from memory, multipart");
		ok(same_content(s, "bigmem", 12 << 20, 5),
		   "memory multipart content intact");
		free(big);
	}
	is_int(store_put_file(s, "x", "/nonexistent/file"), -ENOENT,
	       "put_file of a missing file");
	store_close(s);
}

/*
 * Straight to s3rver, without the gateway's corrections: the client
 * copes with a 206 larger than asked (bytes=0-0 answered with the whole
 * object), a 206 of an empty object promising a byte it never sends, and
 * raw control characters in listings (no encoding-type=url).
 */
static void test_direct(const char *direct)
{
	struct store_s3_opts o;
	struct seen v = { 0 };
	struct store *s;
	char data[3000];
	char out[3000];

	opts_init(&o, NULL);
	o.endpoint = direct;
	s = open_store("direct", &o);
	ok(s != NULL, "open on s3rver directly");
	if (!s)
		return;
	fill(data, sizeof(data), 11);
	store_put(s, "one", data, sizeof(data));
	store_put(s, "empty", "", 0);
	store_put(s, "ctl\x02" "x", "", 0);
	is_int(store_get_range(s, "one", out, 1, 0), 1,
	       "bytes=0-0 answered with everything: one byte");
	ok(out[0] == data[0], "the right byte");
	is_int(store_get_range(s, "one", out, 5, 2000), 5, "a range inside");
	ok(memcmp(out, data + 2000, 5) == 0, "its bytes");
	is_int(store_get_range(s, "empty", out, 10, 0), 0,
	       "a range of an empty object is 0 bytes");
	{
		/* s3rver ignores If-Match: the answer's own ETag decides */
		struct store_stat st;

		is_int(store_head(s, "one", &st), 0, "head");
		is_int(store_s3_get_range_if(s, "one", st.etag, out, 10, 5),
		       10, "a pinned range of the same object");
		data[0] ^= 1;
		store_put(s, "one", data, sizeof(data));
		is_int(store_s3_get_range_if(s, "one", st.etag, out, 10, 5),
		       -ESTALE,
		       "a pinned range of a changed object: ESTALE, though "
		       "the server ignored If-Match");
	}
	is_int(store_list(s, "", collect, &v), 0, "list raw keys");
	ok(v.n == 3 && seen_has(&v, "ctl\x02" "x"),
	   "a raw control character in a key");
	seen_free(&v);
	store_close(s);
}

/* ---- faults ------------------------------------------------------ */

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

/* POST (or DELETE with json NULL) to the fault proxy's control. */
static int fault_set(const char *json)
{
	struct curl_slist *h = NULL;
	long status = 0;
	CURL *c;
	CURLcode cc;

	c = curl_easy_init();
	if (!c)
		return -ENOMEM;
	curl_easy_setopt(c, CURLOPT_URL, fault_control);
	if (json) {
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
	} else {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return cc == CURLE_OK && status == 200 ? 0 : -EIO;
}

static size_t into_buf(char *p, size_t size, size_t n, void *arg)
{
	s3_buf_add(arg, p, size * n);
	return size * n;
}

/* Hits of the first rule whose match is pfx + m, from the control. */
static int fault_hits(const char *pfx, const char *m)
{
	struct s3_buf b = { 0 };
	char needle[200];
	const char *p;
	CURL *c;
	int hits = -1;

	c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_URL, fault_control);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, into_buf);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_perform(c);
	curl_easy_cleanup(c);
	snprintf(needle, sizeof(needle), "\"match\": \"%s%s\"", pfx, m);
	p = b.p ? strstr(b.p, needle) : NULL;
	if (p)
		p = strstr(p, "\"hits\": ");
	if (p)
		hits = atoi(p + 8);
	s3_buf_free(&b);
	return hits;
}

static void test_faults(void)
{
	struct store_s3_opts o;
	struct store *s;
	char json[1024];
	char pfx[200];
	char out[100];
	char path[300];
	double t0;
	double dt;
	int rc;

	opts_init(&o, NULL);
	o.endpoint = fault_endpoint;
	o.retry_base_ms = 50;
	o.low_speed_time_s = 1;
	o.part_size = 5 << 20;
	o.multipart_threshold = 5 << 20;
	s = open_store("faults", &o);
	ok(s != NULL, "open through the fault proxy");
	if (!s)
		return;
	snprintf(pfx, sizeof(pfx), "%s/faults/", run);
	is_int(store_put(s, "obj", "0123456789", 10), 0, "put through the proxy");

#define RULE(m, rest) \
	snprintf(json, sizeof(json), \
		 "{\"rules\": [{\"match\": \"%s%s\", " rest "}]}", pfx, m)

	RULE("obj", "\"action\": \"status\", \"status\": 503, \"times\": 2");
	fault_set(json);
	logbuf[0] = '\0';
	is_int(store_get_range(s, "obj", out, 10, 0), 10,
	       "503 twice, then success");
	is_int(fault_hits(pfx, "obj"), 2, "both 503s were met");
	ok(strstr(logbuf, "HTTP 503 (SlowDown), retry 2 of 5") != NULL,
	   "retries are logged");

	RULE("obj", "\"action\": \"status\", \"status\": 429, \"times\": 1");
	fault_set(json);
	is_int(store_get_range(s, "obj", out, 10, 0), 10, "429 is retried");

	RULE("obj", "\"action\": \"status\", \"status\": 500, \"times\": -1");
	fault_set(json);
	t0 = now_s();
	rc = (int)store_get_range(s, "obj", out, 10, 0);
	dt = now_s() - t0;
	is_int(rc, -EIO, "persistent 500 is EIO");
	is_int(fault_hits(pfx, "obj"), 5, "after 5 tries");
	ok(dt < 10, "within a bounded time");
	printf("# persistent 500: %.2f s\n", dt);

	RULE("obj", "\"action\": \"status\", \"status\": 403, \"times\": -1");
	fault_set(json);
	is_int(store_head(s, "obj", &(struct store_stat){ 0 }), -EACCES,
	       "403 is EACCES");
	is_int(fault_hits(pfx, "obj"), 1, "and never retried");

	RULE("obj", "\"action\": \"status\", \"status\": 400, \"code\": \"RequestTimeout\", \"times\": 1");
	fault_set(json);
	is_int(store_get_range(s, "obj", out, 10, 0), 10,
	       "400 RequestTimeout is retried");

	RULE("obj", "\"action\": \"reset\", \"times\": 2");
	fault_set(json);
	is_int(store_get_range(s, "obj", out, 10, 0), 10,
	       "connection resets are retried");
	is_int(fault_hits(pfx, "obj"), 2, "two resets met");

	RULE("obj", "\"action\": \"close\", \"times\": 1");
	fault_set(json);
	is_int(store_get_range(s, "obj", out, 10, 0), 10,
	       "a connection closed without an answer is retried");

	RULE("obj", "\"action\": \"truncate\", \"times\": 1");
	fault_set(json);
	memset(out, 0, sizeof(out));
	is_int(store_get_range(s, "obj", out, 10, 0), 10,
	       "a body cut short is retried");
	ok(memcmp(out, "0123456789", 10) == 0, "and the bytes are whole");

	RULE("obj", "\"action\": \"slow\", \"delay_ms\": 300, \"times\": 1");
	fault_set(json);
	memset(out, 0, sizeof(out));
	is_int(store_get_range(s, "obj", out, 10, 0), 10,
	       "a slow but moving answer is waited for");

	RULE("obj", "\"action\": \"delay\", \"delay_ms\": 4000, \"times\": -1");
	fault_set(json);
	t0 = now_s();
	rc = (int)store_get_range(s, "obj", out, 10, 0);
	dt = now_s() - t0;
	is_int(rc, -EIO, "a server that does not answer is EIO");
	ok(dt < 15, "within a bounded time");
	printf("# silent server: %.2f s\n", dt);

	/* The budget stops retries early: 1 s budget, 2 s per attempt. */
	store_close(s);
	o.retry_budget_ms = 1000;
	s = open_store("faults", &o);
	t0 = now_s();
	rc = (int)store_get_range(s, "obj", out, 10, 0);
	dt = now_s() - t0;
	is_int(rc, -EIO, "silent server, 1 s retry budget");
	ok(dt < 5, "the budget bounds the retries");
	printf("# silent server, 1 s budget: %.2f s\n", dt);
	fault_set(NULL);

	/* A part that fails for good aborts the upload and keeps the file. */
	snprintf(json, sizeof(json),
		 "{\"rules\": ["
		 "{\"match\": \"partNumber=2\", \"action\": \"status\", \"status\": 400, \"times\": -1},"
		 "{\"match\": \"%smp?uploadId\", \"method\": \"DELETE\", \"action\": \"delay\", \"delay_ms\": 0, \"times\": -1}]}",
		 pfx);
	fault_set(json);
	snprintf(path, sizeof(path), "%s/mpfail", scratch);
	write_file(path, 11 << 20, 9);
	is_int(store_put_file(s, "mp", path), -EINVAL,
	       "multipart with a refused part fails");
	ok(access(path, F_OK) == 0, "the file is left where it was");
	is_int(fault_hits(pfx, "mp?uploadId"), 1,
	       "the upload was aborted (DELETE ?uploadId)");
	is_int(store_head(s, "mp", &(struct store_stat){ 0 }), -ENOENT,
	       "no object appeared");
	fault_set(NULL);

	/* Transient failures inside a multipart upload are retried. */
	snprintf(json, sizeof(json),
		 "{\"rules\": [{\"match\": \"partNumber=1&\", \"action\": \"reset\", \"times\": 1},"
		 "{\"match\": \"uploads=\", \"action\": \"status\", \"status\": 503, \"times\": 1},"
		 "{\"match\": \"%smp?uploadId\", \"method\": \"POST\", \"action\": \"status\", \"status\": 500, \"times\": 1}]}",
		 pfx);
	fault_set(json);
	is_int(store_put_file(s, "mp", path), 0,
	       "multipart with a reset part, a 503 create and a 500 complete");
	ok(same_content(s, "mp", 11 << 20, 9), "content intact");
	fault_set(NULL);
	store_close(s);
#undef RULE
}

/* ---- allocation failures ------------------------------------------ */

/* One GET streamed to a sink, through the fault proxy. */
static void test_stream(void)
{
	const size_t size = 4 << 20;
	struct store_s3_opts o;
	struct sink k = { 0 };
	struct store *s;
	char json[1024];
	char pfx[200];
	char *data;

	opts_init(&o, NULL);
	o.endpoint = fault_endpoint;
	o.retry_base_ms = 50;
	s = open_store("stream", &o);
	ok(s != NULL, "open through the fault proxy");
	if (!s)
		return;
	snprintf(pfx, sizeof(pfx), "%s/stream/", run);
	data = malloc(size);
	k.buf = malloc(size);
	k.cap = size;
	fill(data, size, 11);
	is_int(store_put(s, "big", data, size), 0, "put 4 MiB");
	is_int(store_put(s, "empty", "", 0), 0, "put an empty object");

	/* every GET of big counted (a rule that acts on none) */
	snprintf(json, sizeof(json),
		 "{\"rules\": [{\"match\": \"%sbig\", \"action\": \"delay\", \"delay_ms\": 0, \"times\": -1}]}",
		 pfx);
	fault_set(json);
	k.base = k.next = 3;
	is_int(store_get_stream(s, "big", 3, size, sink_fn, &k),
	       (ssize_t)(size - 3), "get_stream to the end");
	ok(k.next == size && memcmp(k.buf, data + 3, size - 3) == 0,
	   "the bytes, in order, whole");
	is_int(fault_hits(pfx, "big"), 1, "in one GET");
	ok(k.calls > 1, "handed over as they arrived");

	snprintf(json, sizeof(json),
		 "{\"rules\": [{\"match\": \"%sbig\", \"action\": \"truncate\", \"times\": 1}]}",
		 pfx);
	fault_set(json);
	k = (struct sink){ .buf = k.buf, .cap = size };
	is_int(store_get_stream(s, "big", 0, size, sink_fn, &k),
	       (ssize_t)size, "a body cut short is retried");
	ok(k.next == size && memcmp(k.buf, data, size) == 0,
	   "and the sink got every byte once");
	ok(k.again > 0, "the retry handed the first half again");

	snprintf(json, sizeof(json),
		 "{\"rules\": [{\"match\": \"%sbig\", \"action\": \"delay\", \"delay_ms\": 0, \"times\": -1}]}",
		 pfx);
	fault_set(json);
	k = (struct sink){ .buf = k.buf, .cap = size, .fail_at = 2 };
	is_int(store_get_stream(s, "big", 0, size, sink_fn, &k), -ENOSPC,
	       "the sink's error ends the GET");
	is_int(fault_hits(pfx, "big"), 1, "and is not retried");
	fault_set(NULL);

	k = (struct sink){ .buf = k.buf, .cap = size };
	is_int(store_get_stream(s, "big", size, 10, sink_fn, &k), 0,
	       "get_stream at the end is 0 (416)");
	is_int(store_get_stream(s, "empty", 0, 10, sink_fn, &k), 0,
	       "get_stream of an empty object");
	is_int(k.calls, 0, "no bytes, no calls");
	is_int(store_get_stream(s, "missing", 0, 10, sink_fn, &k), -ENOENT,
	       "get_stream of a missing key");
	store_del(s, "big");
	store_del(s, "empty");
	store_close(s);
	free(k.buf);
	free(data);
}

static void test_failalloc(void)
{
	struct store_s3_opts o;
	struct store_stat st;
	struct seen v = { 0 };
	struct store *s = NULL;
	char *buf;
	size_t len;
	char out[16];
	unsigned n;
	int rc;
	int bad = 0;

	opts_init(&o, NULL);
	o.list_max_keys = 2;
	o.probe = true;
	for (n = 1;; n++) {
		failalloc_arm(n);
		rc = store_s3_open(&o, &s);
		failalloc_arm(0);
		if (rc == 0)
			break;
		if (rc != -ENOMEM || n > 200)
			bad++;
		if (n > 200)
			break;
	}
	is_int(bad, 0, "open fails cleanly with ENOMEM until it succeeds");
	if (!s)
		return;
	store_close(s);
	s = open_store("alloc", &o);
	if (!s)
		return;
	store_put(s, "a", "1", 1);
	store_put(s, "b", "2", 1);
	store_put(s, "c", "3", 1);
#define LOOP(what, call)                                                     \
	do {                                                                 \
		bad = 0;                                                     \
		for (n = 1; n < 300; n++) {                                  \
			failalloc_arm(n);                                    \
			rc = (call);                                         \
			failalloc_arm(0);                                    \
			if (rc >= 0 && !failalloc_fired())                   \
				break;                                       \
			if (rc < 0 && rc != -ENOMEM)                         \
				bad++;                                       \
		}                                                            \
		ok(bad == 0 && n < 300, what " fails cleanly, then works");  \
	} while (0)

	LOOP("put", store_put(s, "x", "hello", 5));
	LOOP("get", (rc = store_get(s, "x", 10, &buf, &len),
		     rc == 0 ? (free(buf), 0) : rc));
	LOOP("get_range", (int)store_get_range(s, "x", out, 5, 0));
	LOOP("head", store_head(s, "x", &st));
	LOOP("list", (seen_free(&v), store_list(s, "", collect, &v)));
	seen_free(&v);
#undef LOOP
	bad = 0;
	for (n = 1; n < 300; n++) {
		store_put(s, "d", "1", 1);
		failalloc_arm(n);
		rc = store_del(s, "d");
		failalloc_arm(0);
		if (rc >= 0 && !failalloc_fired())
			break;
		if (rc < 0 && rc != -ENOMEM)
			bad++;
	}
	ok(bad == 0 && n < 300, "del fails cleanly, then works");
	store_close(s);
}

int main(void)
{
	unsigned long long r;
	FILE *f;

	endpoint = getenv("MLFS_S3_ENDPOINT");
	if (!endpoint || !*endpoint) {
		/*
		 * A skip of the whole program is the TAP plan "1..0 # SKIP
		 * why" with exit status 0: meson (1.0.1) then reports SKIP.
		 * Its TAP runner counts any non-zero exit, 77 included, as
		 * an ERROR, so exit 77 would not read as a skip here.
		 */
		printf("1..0 # SKIP MLFS_S3_ENDPOINT is not set (tests/s3/start.sh)\n");
		return 0;
	}
	bucket = getenv("MLFS_S3_BUCKET") ? getenv("MLFS_S3_BUCKET") :
					    "mlfs-test";
	fault_endpoint = getenv("MLFS_S3_FAULT_ENDPOINT");
	fault_control = getenv("MLFS_S3_FAULT_CONTROL");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	f = fopen("/dev/urandom", "r");
	if (!f || fread(&r, sizeof(r), 1, f) != 1)
		r = (unsigned long long)time(NULL);
	if (f)
		fclose(f);
	snprintf(run, sizeof(run), "s3test-%016llx", r);
	snprintf(scratch, sizeof(scratch), "/tmp/mlfs-s3test-%016llx", r);
	mkdir(scratch, 0700);
	printf("# prefix %s, scratch %s\n", run, scratch);

	test_open_checks();
	test_objects();
	test_list();
	test_list_big();
	test_foreign_keys();
	test_multipart();
	if (getenv("MLFS_S3_DIRECT_ENDPOINT"))
		test_direct(getenv("MLFS_S3_DIRECT_ENDPOINT"));
	else
		skip("MLFS_S3_DIRECT_ENDPOINT is not set");
	if (fault_endpoint && fault_control) {
		test_faults();
		test_stream();
	} else {
		skip("MLFS_S3_FAULT_ENDPOINT is not set");
	}
	test_failalloc();

	curl_global_cleanup();
	{
		char cmd[400];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", scratch);
		if (system(cmd) != 0)
			printf("# could not remove %s\n", scratch);
	}
	return done();
}
