/* SPDX-License-Identifier: MIT */
/*
 * The S3 store: s3://bucket/prefix as a store (store.h), over the client
 * in s3.c.  Object "a/b" is the S3 object "prefix/a/b", so `aws s3 ls
 * --recursive` shows the store's tree.  Small puts are one PutObject,
 * which S3 makes atomic; large ones are multipart uploads, which become
 * visible only at CompleteMultipartUpload and are aborted on failure.
 * Listing is ListObjectsV2, page by page; keys that mlfs could not have
 * written (foreign objects with odd or huge names, "directory" markers)
 * are skipped, never trusted.  Also where credentials are read from the
 * environment and ~/.aws.
 *
 * Threads: any thread may enter any op; the store's own state is
 * immutable after open except an atomic counter.  A multipart upload
 * starts up to upload_parallel - 1 helper threads for its duration (the
 * calling thread uploads parts too): they take part numbers from an
 * atomic counter, each with its own connection, and stop at the first
 * failure, which they record with a compare-and-swap.  The caller joins
 * them all before completing or aborting the upload, so no thread
 * outlives the op that started it and parts complete in any order.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "s3_i.h"
#include "store.h"
#include "store_i.h"

#define MIB (1024ULL * 1024)
/* S3's limits on multipart uploads. */
#define S3S_PART_MIN (5 * MIB)
#define S3S_PART_MAX (5 * 1024 * MIB)
#define S3S_PARTS_MAX 10000
#define S3S_OBJECT_MAX (5 * 1024 * 1024 * MIB)
#define S3S_DEF_PART_SIZE (16 * MIB)
#define S3S_DEF_THRESHOLD (32 * MIB)
#define S3S_DEF_PARALLEL 4
#define S3S_PARALLEL_MAX 32
#define S3S_DEF_MAX_KEYS 1000
/* Ceiling of one listing page: 1000 keys of 1 KiB, each byte possibly
 * an entity, with room to spare. */
#define S3S_LIST_PAGE_MAX (64 * MIB)
/* Ceiling of the small XML answers to multipart requests. */
#define S3S_XML_MAX (1 * MIB)
/* Ceiling of ~/.aws/credentials and ~/.aws/config. */
#define S3S_INI_MAX (1 * MIB)

struct s3s {
	struct store base;		/* first: ops cast store to s3s */
	struct s3_client *c;
	char *prefix;			/* "" or "some/prefix/" */
	char *name;			/* "s3://bucket/prefix" */
	char *staging;			/* tmp_path()'s folder */
	uint64_t part_size;		/* bytes */
	uint64_t threshold;		/* bytes */
	unsigned parallel;
	unsigned max_keys;
	char writer[80];		/* x-amz-meta-mlfs-writer of puts */
	uint64_t salt;			/* random, set at open */
	_Atomic unsigned long seq;	/* tmp_path names made so far */
};

static struct s3s *to_s3s(struct store *s)
{
	return (struct s3s *)s;
}

/* The object key of store key key: prefix + key.  -EINVAL if invalid. */
static int s3s_key(struct s3s *s, const char *key, struct s3_buf *out)
{
	if (!store_key_is_valid(key))
		return -EINVAL;
	s3_buf_adds(out, s->prefix);
	s3_buf_adds(out, key);
	return out->err;
}

static int s3s_get(struct store *st, const char *key, size_t max, char **buf,
		   size_t *len)
{
	struct s3s *s = to_s3s(st);
	/* max 0 still needs a one-byte ceiling to notice a longer body. */
	struct s3_buf body = { .max = max ? max : 1 };
	struct s3_buf k = { 0 };
	struct s3_resp resp;
	struct s3_req r = {
		.method = "GET",
		.sink = S3_SINK_BUF,
		.buf = &body,
	};
	int rc;

	*buf = NULL;
	*len = 0;
	rc = s3s_key(s, key, &k);
	if (rc < 0)
		goto out;
	r.key = k.p;
	rc = s3_request(s->c, &r, &resp);
	if (rc < 0)
		goto out_free_body;
	if (body.len > max) {
		rc = -EFBIG;
		goto out_free_body;
	}
	if (!body.p) {
		body.p = calloc(1, 1);
		if (!body.p) {
			rc = -ENOMEM;
			goto out;
		}
	}
	*buf = body.p;
	*len = body.len;
	goto out;
out_free_body:
	free(body.p);
out:
	s3_buf_free(&k);
	return rc;
}

/* A ranged GET into buf, or to fn (buf NULL) as it arrives. */
static ssize_t s3s_range(struct s3s *s, const char *key, const char *etag,
			 void *buf, size_t len, uint64_t off,
			 store_sink_fn fn, void *arg)
{
	struct s3_buf k = { 0 };
	struct s3_resp resp = { 0 };
	char range[64];
	struct s3_req r = {
		.method = "GET",
		.if_match = etag,
		.range = range,
		.sink = S3_SINK_RANGE,
		.dst = buf,
		.dst_len = len,
		.dst_off = off,
		.stream = buf ? NULL : fn,
		.stream_arg = arg,
	};
	ssize_t ret;
	int rc;

	if (len == 0)
		return 0;
	if (len > SSIZE_MAX || off > UINT64_MAX - len)
		return -EINVAL;
	rc = s3s_key(s, key, &k);
	if (rc < 0)
		goto out;
	r.key = k.p;
	snprintf(range, sizeof(range), "bytes=%llu-%llu",
		 (unsigned long long)off, (unsigned long long)(off + len - 1));
	rc = s3_request(s->c, &r, &resp);
	/* 416: the range starts at or past the end. */
	if (rc == -ERANGE)
		rc = 0;
	/*
	 * A server that ignores If-Match (s3rver does) still names what it
	 * sent: bytes of another object are never taken for the pinned one.
	 */
	else if (rc == 0 && etag && resp.etag[0] && strcmp(resp.etag, etag))
		rc = -ESTALE;
out:
	s3_buf_free(&k);
	ret = rc < 0 ? rc : (ssize_t)resp.got;
	return ret;
}

static ssize_t s3s_get_range(struct store *st, const char *key, void *buf,
			     size_t len, uint64_t off)
{
	return s3s_range(to_s3s(st), key, NULL, buf, len, off, NULL, NULL);
}

static ssize_t s3s_get_stream(struct store *st, const char *key,
			      uint64_t off, uint64_t len, store_sink_fn fn,
			      void *arg)
{
	if (len > SSIZE_MAX)
		return -EINVAL;
	return s3s_range(to_s3s(st), key, NULL, NULL, (size_t)len, off, fn,
			 arg);
}

ssize_t store_s3_get_range_if(struct store *st, const char *key,
			      const char *etag, void *buf, size_t len,
			      uint64_t off)
{
	if (!etag || !*etag || strpbrk(etag, "\r\n"))
		return -EINVAL;
	return s3s_range(to_s3s(st), key, etag, buf, len, off, NULL, NULL);
}

static int s3s_head(struct store *st, const char *key, struct store_stat *out)
{
	struct s3s *s = to_s3s(st);
	struct s3_buf k = { 0 };
	struct s3_resp resp;
	struct s3_req r = { .method = "HEAD" };
	int rc;

	rc = s3s_key(s, key, &k);
	if (rc < 0)
		goto out;
	r.key = k.p;
	rc = s3_request(s->c, &r, &resp);
	if (rc < 0)
		goto out;
	out->size = resp.length;
	out->mtime = resp.mtime;
	snprintf(out->etag, sizeof(out->etag), "%s", resp.etag);
out:
	s3_buf_free(&k);
	return rc;
}

/* Where a put's bytes come from: memory, or a file descriptor. */
struct s3s_src {
	const void *mem;	/* NULL: read fd */
	int fd;
	uint64_t size;		/* bytes */
};

/* A conditional write (S3 evaluates it atomically) and what it made. */
struct s3s_cond {
	const char *if_match;		/* an ETag, or NULL */
	const char *if_none_match;	/* "*", or NULL */
	char etag[80];			/* out: the new object's ETag */
	unsigned tries;			/* out: attempts the write took */
};

static int s3s_put_single(struct s3s *s, const char *key,
			  const struct s3s_src *src, struct s3s_cond *cond)
{
	struct s3_resp resp;
	struct s3_req r = {
		.method = "PUT",
		.key = key,
		.body = src->mem,
		.body_fd = src->mem ? -1 : src->fd,
		.body_len = src->size,
		.if_match = cond ? cond->if_match : NULL,
		.if_none_match = cond ? cond->if_none_match : NULL,
		.writer = s->writer[0] ? s->writer : NULL,
	};
	int rc = s3_request(s->c, &r, &resp);

	if (cond) {
		snprintf(cond->etag, sizeof(cond->etag), "%s", resp.etag);
		cond->tries = resp.tries;
	}
	return rc;
}

/* One multipart upload in flight. */
struct s3s_mpu {
	struct s3s *s;
	const char *key;		/* full object key */
	char *upload_id;
	const struct s3s_src *src;
	struct s3s_cond *cond;		/* of the complete; NULL: none */
	uint64_t part_size;		/* bytes */
	unsigned nparts;
	char (*etags)[80];		/* nparts, each set by one thread */
	_Atomic unsigned next;		/* next part to take, 0-based */
	_Atomic int rc;			/* first failure, 0 while none */
};

static int s3s_mpu_create(struct s3s_mpu *m)
{
	struct s3_buf body = { .max = S3S_XML_MAX };
	struct s3_buf id = { 0 };
	struct s3_resp resp;
	struct s3_req r = {
		.method = "POST",
		.key = m->key,
		.query = { { "uploads", "" } },
		.nquery = 1,
		.writer = m->s->writer[0] ? m->s->writer : NULL,
		.sink = S3_SINK_BUF,
		.buf = &body,
	};
	const char *pos;
	const char *v;
	size_t vlen;
	int rc;

	rc = s3_request(m->s->c, &r, &resp);
	if (rc < 0)
		goto out;
	pos = body.p;
	if (!pos || !s3_xml_find(&pos, body.p + body.len, "UploadId", &v,
				 &vlen) || vlen == 0) {
		s3_client_log(m->s->c, "s3: POST %s?uploads: no UploadId in the answer",
			      m->key);
		rc = -EIO;
		goto out;
	}
	rc = s3_xml_decode(&id, v, vlen);
	if (rc < 0)
		goto out_free_id;
	m->upload_id = id.p;
	goto out;
out_free_id:
	s3_buf_free(&id);
out:
	s3_buf_free(&body);
	return rc;
}

static int s3s_mpu_part(struct s3s_mpu *m, unsigned i)
{
	const struct s3s_src *src = m->src;
	uint64_t off = (uint64_t)i * m->part_size;
	uint64_t len = src->size - off < m->part_size ? src->size - off :
						      m->part_size;
	struct s3_resp resp;
	char num[16];
	struct s3_req r = {
		.method = "PUT",
		.key = m->key,
		.query = { { "partNumber", num }, { "uploadId", m->upload_id } },
		.nquery = 2,
		.body = src->mem ? (const char *)src->mem + off : NULL,
		.body_fd = src->mem ? -1 : src->fd,
		.body_off = src->mem ? 0 : off,
		.body_len = len,
	};
	int rc;

	snprintf(num, sizeof(num), "%u", i + 1);
	rc = s3_request(m->s->c, &r, &resp);
	if (rc < 0)
		return rc;
	if (!resp.etag[0]) {
		s3_client_log(m->s->c, "s3: PUT %s part %u: no ETag in the answer",
			      m->key, i + 1);
		return -EIO;
	}
	memcpy(m->etags[i], resp.etag, sizeof(m->etags[i]));
	return 0;
}

static void *s3s_mpu_worker(void *arg)
{
	struct s3s_mpu *m = arg;
	int none;
	unsigned i;
	int rc;

	while (atomic_load(&m->rc) == 0) {
		i = atomic_fetch_add(&m->next, 1);
		if (i >= m->nparts)
			break;
		rc = s3s_mpu_part(m, i);
		if (rc < 0) {
			none = 0;
			atomic_compare_exchange_strong(&m->rc, &none, rc);
			break;
		}
	}
	return NULL;
}

/* Upload every part, with up to s->parallel threads including ours. */
static int s3s_mpu_parts(struct s3s_mpu *m)
{
	pthread_t tids[S3S_PARALLEL_MAX];
	unsigned want = m->s->parallel;
	unsigned n = 0;

	if (want > m->nparts)
		want = m->nparts;
	/* A thread that fails to start leaves its parts to the others. */
	while (n + 1 < want &&
	       pthread_create(&tids[n], NULL, s3s_mpu_worker, m) == 0)
		n++;
	s3s_mpu_worker(m);
	while (n > 0)
		pthread_join(tids[--n], NULL);
	return atomic_load(&m->rc);
}

static int s3s_mpu_complete(struct s3s_mpu *m)
{
	struct s3_buf xml = { .max = S3S_XML_MAX * 2 };
	struct s3_buf body = { .max = S3S_XML_MAX };
	struct s3_resp resp;
	struct s3_req r = {
		.method = "POST",
		.key = m->key,
		.query = { { "uploadId", m->upload_id } },
		.nquery = 1,
		.content_type = "application/xml",
		.body_fd = -1,
		.body_may_be_error = true,
		.patient = true,
		.if_match = m->cond ? m->cond->if_match : NULL,
		.if_none_match = m->cond ? m->cond->if_none_match : NULL,
		.sink = S3_SINK_BUF,
		.buf = &body,
	};
	unsigned i;
	int rc;

	s3_buf_adds(&xml, "<CompleteMultipartUpload>");
	for (i = 0; i < m->nparts; i++) {
		s3_buf_addf(&xml, "<Part><PartNumber>%u</PartNumber><ETag>",
			    i + 1);
		s3_xml_escape(&xml, m->etags[i]);
		s3_buf_adds(&xml, "</ETag></Part>");
	}
	s3_buf_adds(&xml, "</CompleteMultipartUpload>");
	rc = xml.err;
	if (rc < 0)
		goto out;
	r.body = xml.p;
	r.body_len = xml.len;
	rc = s3_request(m->s->c, &r, &resp);
	if (m->cond) {
		snprintf(m->cond->etag, sizeof(m->cond->etag), "%s", resp.etag);
		m->cond->tries = resp.tries;
	}
	/*
	 * A retried complete whose first attempt got through but whose
	 * answer was lost finds the upload gone; the object tells.
	 */
	if (rc == -ENOENT && resp.tries > 1) {
		struct s3_req h = { .method = "HEAD", .key = m->key };

		if (s3_request(m->s->c, &h, &resp) == 0 &&
		    resp.length == m->src->size)
			rc = 0;
	}
out:
	s3_buf_free(&body);
	s3_buf_free(&xml);
	return rc;
}

static void s3s_mpu_abort(struct s3s_mpu *m)
{
	struct s3_resp resp;
	struct s3_req r = {
		.method = "DELETE",
		.key = m->key,
		.query = { { "uploadId", m->upload_id } },
		.nquery = 1,
	};

	/* Failure leaves parts for the bucket's lifecycle rule; s3.c logs. */
	s3_request(m->s->c, &r, &resp);
}

/* Parts of at least part_size, few enough for S3, rounded to 1 MiB. */
static uint64_t s3s_part_size(struct s3s *s, uint64_t size)
{
	uint64_t p = s->part_size;
	uint64_t need = (size + S3S_PARTS_MAX - 1) / S3S_PARTS_MAX;

	if (need > p)
		p = (need + MIB - 1) / MIB * MIB;
	return p;
}

static int s3s_put_multipart(struct s3s *s, const char *key,
			     const struct s3s_src *src, struct s3s_cond *cond)
{
	struct s3s_mpu m = {
		.s = s,
		.key = key,
		.src = src,
		.cond = cond,
	};
	int rc;

	m.part_size = s3s_part_size(s, src->size);
	m.nparts = (unsigned)((src->size + m.part_size - 1) / m.part_size);
	if (m.nparts == 0)
		m.nparts = 1;
	m.etags = calloc(m.nparts, sizeof(*m.etags));
	if (!m.etags)
		return -ENOMEM;
	rc = s3s_mpu_create(&m);
	if (rc < 0)
		goto out_free_etags;
	rc = s3s_mpu_parts(&m);
	if (rc == 0)
		rc = s3s_mpu_complete(&m);
	if (rc < 0)
		s3s_mpu_abort(&m);
	free(m.upload_id);
out_free_etags:
	free(m.etags);
	return rc;
}

/* Put src as key, under cond if not NULL: -ESTALE if cond failed. */
static int s3s_put_src(struct s3s *s, const char *key,
		       const struct s3s_src *src, struct s3s_cond *cond)
{
	struct s3_buf k = { 0 };
	int rc;

	if (src->size > S3S_OBJECT_MAX)
		return -EFBIG;
	rc = s3s_key(s, key, &k);
	if (rc < 0)
		goto out;
	if (src->size <= s->threshold)
		rc = s3s_put_single(s, k.p, src, cond);
	else
		rc = s3s_put_multipart(s, k.p, src, cond);
out:
	s3_buf_free(&k);
	return rc;
}

static int s3s_put(struct store *st, const char *key, const void *buf,
		   size_t len)
{
	struct s3s_src src = { .mem = len ? buf : NULL, .fd = -1, .size = len };

	return s3s_put_src(to_s3s(st), key, &src, NULL);
}

/* The mount id of a writer tag "<mount id>/<generation>". */
static size_t s3s_writer_id_len(const char *tag)
{
	const char *slash = strchr(tag, '/');

	return slash ? (size_t)(slash - tag) : strlen(tag);
}

/*
 * create: claim key with a conditional create (If-None-Match: *).  A key
 * that exists is replaced only if this store's writer made it (the same
 * mount id in its x-amz-meta-mlfs-writer: a retry whose first answer was
 * lost, or this mount's own rewrite), and then only while it is still
 * the object the HEAD saw (If-Match).  Anything else is another writer's
 * object: -EEXIST, and nothing is written.
 */
static int s3s_create(struct store *st, const char *key, const void *buf,
		      size_t len)
{
	struct s3s *s = to_s3s(st);
	struct s3s_src src = { .mem = len ? buf : NULL, .fd = -1, .size = len };
	struct s3s_cond cond = { .if_none_match = "*" };
	struct s3_buf k = { 0 };
	struct s3_resp resp;
	struct s3_req r = { .method = "HEAD" };
	size_t n = s3s_writer_id_len(s->writer);
	int rc;

	rc = s3s_put_src(s, key, &src, &cond);
	if (rc != -ESTALE)
		return rc;
	rc = s3s_key(s, key, &k);
	if (rc < 0)
		goto out;
	r.key = k.p;
	rc = s3_request(s->c, &r, &resp);
	if (rc == -ENOENT) {
		rc = -EAGAIN;	/* removed since: claim it again */
		goto out;
	}
	if (rc < 0)
		goto out;
	if (n == 0 || s3s_writer_id_len(resp.writer) != n ||
	    strncmp(resp.writer, s->writer, n) != 0) {
		s3_client_log(s->c, "s3: %s exists, written by another mlfs "
				    "(%.40s): not replaced", k.p,
			      resp.writer[0] ? resp.writer : "unknown");
		rc = -EEXIST;
		goto out;
	}
	cond = (struct s3s_cond){ .if_match = resp.etag };
	rc = s3s_put_src(s, key, &src, &cond);
	if (rc == -ESTALE || rc == -ENOENT)
		rc = -EAGAIN;	/* changed under us: judge again */
out:
	s3_buf_free(&k);
	return rc;
}

int store_s3_get_tagged(struct store *st, const char *key, size_t max,
			char **buf, size_t *len, char *etag, size_t etaglen)
{
	struct s3s *s = to_s3s(st);
	struct s3_buf body = { .max = max ? max : 1 };
	struct s3_buf k = { 0 };
	struct s3_resp resp;
	struct s3_req r = { .method = "GET", .sink = S3_SINK_BUF, .buf = &body };
	int rc;

	*buf = NULL;
	*len = 0;
	rc = s3s_key(s, key, &k);
	if (rc == 0) {
		r.key = k.p;
		rc = s3_request(s->c, &r, &resp);
	}
	if (rc == 0 && body.len > max)
		rc = -EFBIG;
	if (rc == 0 && !body.p && !(body.p = calloc(1, 1)))
		rc = -ENOMEM;
	if (rc == 0) {
		*buf = body.p;
		*len = body.len;
		snprintf(etag, etaglen, "%s", resp.etag);
	} else {
		free(body.p);
	}
	s3_buf_free(&k);
	return rc;
}

int store_s3_put_if(struct store *st, const char *key, const void *buf,
		    size_t len, const char *if_match, char *etag,
		    size_t etaglen, unsigned *tries)
{
	struct s3s_src src = { .mem = len ? buf : NULL, .fd = -1, .size = len };
	struct s3s_cond cond = {
		.if_match = if_match,
		.if_none_match = if_match ? NULL : "*",
	};
	int rc = s3s_put_src(to_s3s(st), key, &src, &cond);

	snprintf(etag, etaglen, "%s", rc == 0 ? cond.etag : "");
	*tries = cond.tries;
	return rc;
}

static int s3s_put_file(struct store *st, const char *key, const char *path)
{
	struct s3s_src src = { 0 };
	struct stat sb;
	int rc;

	src.fd = store_open_source(path, &sb);
	if (src.fd < 0)
		return src.fd;
	src.size = (uint64_t)sb.st_size;
	rc = s3s_put_src(to_s3s(st), key, &src, NULL);
	/* The bucket has it now: the staged copy is ours to drop. */
	if (rc == 0)
		unlink(path);
	close(src.fd);
	return rc;
}

static int s3s_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decoding as S3 does for encoding-type=url ('+' is a space). */
static int s3s_url_decode(struct s3_buf *b, const char *s, size_t n)
{
	int hi;
	int lo;
	char c;
	size_t i;

	for (i = 0; i < n; i++) {
		c = s[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			if (i + 2 >= n)
				return -EINVAL;
			hi = s3s_hex(s[i + 1]);
			lo = s3s_hex(s[i + 2]);
			if (hi < 0 || lo < 0)
				return -EINVAL;
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		s3_buf_add(b, &c, 1);
	}
	return b->err;
}

/* "2024-01-02T03:04:05.000Z" in seconds since the epoch; 0 if odd. */
static int64_t s3s_parse_time(const char *v, size_t n)
{
	char t[32];
	struct tm tm = { 0 };

	if (n >= sizeof(t))
		return 0;
	memcpy(t, v, n);
	t[n] = '\0';
	if (sscanf(t, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon,
		   &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm);
}

/*
 * One <Contents> entry: its store key and stat into key and st.  False
 * for an entry to skip: malformed, outside the prefix, or a key mlfs
 * could not have written.
 */
static bool s3s_entry(struct s3s *s, const char *blk, size_t blen,
		      bool url_encoded, struct s3_buf *key,
		      struct s3_buf *tmp, struct store_stat *st)
{
	const char *end = blk + blen;
	const char *pos;
	const char *v;
	size_t vlen;
	size_t plen = strlen(s->prefix);
	char num[24];

	memset(st, 0, sizeof(*st));
	s3_buf_reset(key);
	s3_buf_reset(tmp);
	pos = blk;
	if (!s3_xml_find(&pos, end, "Key", &v, &vlen))
		return false;
	if (s3_xml_decode(url_encoded ? tmp : key, v, vlen) < 0)
		return false;
	if (url_encoded && s3s_url_decode(key, tmp->p ? tmp->p : "",
					  tmp->len) < 0)
		return false;
	/* An entity or escape for NUL would cut the key short. */
	if (!key->p || strlen(key->p) != key->len)
		return false;
	if (strncmp(key->p, s->prefix, plen) != 0 ||
	    !store_key_is_valid(key->p + plen))
		return false;
	pos = blk;
	if (s3_xml_find(&pos, end, "Size", &v, &vlen) && vlen < sizeof(num)) {
		memcpy(num, v, vlen);
		num[vlen] = '\0';
		st->size = strtoull(num, NULL, 10);
	}
	pos = blk;
	if (s3_xml_find(&pos, end, "LastModified", &v, &vlen))
		st->mtime = s3s_parse_time(v, vlen);
	pos = blk;
	s3_buf_reset(tmp);
	/* an empty <ETag></ETag> leaves tmp without memory: etag stays "" */
	if (s3_xml_find(&pos, end, "ETag", &v, &vlen) &&
	    s3_xml_decode(tmp, v, vlen) == 0 && tmp->p &&
	    tmp->len < sizeof(st->etag))
		memcpy(st->etag, tmp->p, tmp->len + 1);
	return true;
}

/* One page: call fn for each entry; next gets the continuation token. */
static int s3s_list_page(struct s3s *s, const struct s3_buf *page,
			 store_list_fn fn, void *arg, struct s3_buf *next)
{
	const char *end = page->p + page->len;
	struct s3_buf key = { .max = 64 * 1024 };
	struct s3_buf tmp = { .max = 64 * 1024 };
	struct store_stat st;
	const char *pos;
	const char *v;
	size_t vlen;
	bool url;
	int rc = 0;

	pos = page->p;
	url = s3_xml_find(&pos, end, "EncodingType", &v, &vlen) &&
	      vlen == 3 && memcmp(v, "url", 3) == 0;
	pos = page->p;
	while (s3_xml_find(&pos, end, "Contents", &v, &vlen)) {
		if (!s3s_entry(s, v, vlen, url, &key, &tmp, &st))
			continue;
		rc = fn(arg, key.p + strlen(s->prefix), &st);
		if (rc)
			goto out;
	}
	s3_buf_reset(next);
	pos = page->p;
	if (!s3_xml_find(&pos, end, "IsTruncated", &v, &vlen) || vlen != 4 ||
	    memcmp(v, "true", 4) != 0)
		goto out;
	pos = page->p;
	if (!s3_xml_find(&pos, end, "NextContinuationToken", &v, &vlen) ||
	    vlen == 0) {
		s3_client_log(s->c, "s3: list: a truncated page without a continuation token");
		rc = -EIO;
		goto out;
	}
	rc = s3_xml_decode(next, v, vlen);
out:
	s3_buf_free(&tmp);
	s3_buf_free(&key);
	return rc;
}

static int s3s_list(struct store *st, const char *prefix, store_list_fn fn,
		    void *arg)
{
	struct s3s *s = to_s3s(st);
	struct s3_buf page = { .max = S3S_LIST_PAGE_MAX };
	struct s3_buf token = { .max = 64 * 1024 };
	struct s3_buf prev = { .max = 64 * 1024 };
	struct s3_buf full = { 0 };
	struct s3_resp resp;
	char maxkeys[16];
	struct s3_req r = {
		.method = "GET",
		.query = {
			{ "list-type", "2" },
			{ "prefix", NULL },
			{ "max-keys", maxkeys },
			{ "encoding-type", "url" },
			{ "continuation-token", NULL },
		},
		.nquery = 4,
		.sink = S3_SINK_BUF,
		.buf = &page,
	};
	int rc;

	if (!store_prefix_is_valid(prefix))
		return -EINVAL;
	s3_buf_adds(&full, s->prefix);
	s3_buf_adds(&full, prefix);
	rc = full.err;
	if (rc < 0)
		goto out;
	r.query[1].value = full.p ? full.p : "";
	snprintf(maxkeys, sizeof(maxkeys), "%u", s->max_keys);
	for (;;) {
		rc = s3_request(s->c, &r, &resp);
		if (rc < 0)
			break;
		if (!page.p)
			s3_buf_adds(&page, "");
		rc = s3s_list_page(s, &page, fn, arg, &token);
		if (rc || token.len == 0)
			break;
		/* A server repeating itself would make this loop forever. */
		if (prev.len == token.len &&
		    memcmp(prev.p, token.p, token.len) == 0) {
			s3_client_log(s->c, "s3: list: the server repeated a continuation token");
			rc = -EIO;
			break;
		}
		s3_buf_reset(&prev);
		s3_buf_add(&prev, token.p, token.len);
		rc = prev.err;
		if (rc < 0)
			break;
		r.query[4].value = prev.p;
		r.nquery = 5;
	}
out:
	s3_buf_free(&full);
	s3_buf_free(&prev);
	s3_buf_free(&token);
	s3_buf_free(&page);
	return rc;
}

static int s3s_del(struct store *st, const char *key)
{
	struct s3s *s = to_s3s(st);
	struct s3_buf k = { 0 };
	struct s3_resp resp;
	struct s3_req r = { .method = "HEAD" };
	int rc;

	rc = s3s_key(s, key, &k);
	if (rc < 0)
		goto out;
	r.key = k.p;
	/*
	 * DeleteObject answers 204 for a missing key too, and the store
	 * contract wants -ENOENT: ask first.  Two racing deletes of one key
	 * may both succeed.
	 */
	rc = s3_request(s->c, &r, &resp);
	if (rc < 0)
		goto out;
	r.method = "DELETE";
	rc = s3_request(s->c, &r, &resp);
out:
	s3_buf_free(&k);
	return rc;
}

static int s3s_open_fd(struct store *st, const char *key)
{
	(void)st;
	(void)key;
	return -EOPNOTSUPP;
}

static int s3s_tmp_path(struct store *st, char *out, size_t outlen)
{
	struct s3s *s = to_s3s(st);
	unsigned long seq = atomic_fetch_add(&s->seq, 1);
	uint64_t x = s->salt + seq * 0x9e3779b97f4a7c15ULL;
	int n;

	/* splitmix64 finaliser: names made in a row look unrelated. */
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	x ^= x >> 31;
	n = snprintf(out, outlen, "%s/s3put-%ld-%lu-%016llx", s->staging,
		     (long)getpid(), seq, (unsigned long long)x);
	if (n < 0 || (size_t)n >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

static void s3s_close(struct store *st)
{
	struct s3s *s = to_s3s(st);

	s3_client_free(s->c);
	free(s->staging);
	free(s->name);
	free(s->prefix);
	free(s);
}

static const struct store_ops s3s_ops = {
	.get = s3s_get,
	.get_range = s3s_get_range,
	.get_stream = s3s_get_stream,
	.put = s3s_put,
	.put_file = s3s_put_file,
	.create = s3s_create,
	.head = s3s_head,
	.list = s3s_list,
	.del = s3s_del,
	.open_fd = s3s_open_fd,
	.tmp_path = s3s_tmp_path,
	.close = s3s_close,
};

/* mkdir -p path, mode 0700 for what we create. */
static int s3s_mkdirs(const char *path)
{
	struct stat sb;
	char *p;
	char *q;
	char c;
	int rc = 0;

	if (!*path)
		return -EINVAL;
	p = strdup(path);
	if (!p)
		return -ENOMEM;
	for (q = p + 1;; q++) {
		if (*q != '/' && *q != '\0')
			continue;
		c = *q;
		*q = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST) {
			rc = -errno;
			break;
		}
		*q = c;
		if (c == '\0')
			break;
	}
	if (rc == 0 && (stat(path, &sb) < 0 || !S_ISDIR(sb.st_mode)))
		rc = stat(path, &sb) < 0 ? -errno : -ENOTDIR;
	free(p);
	return rc;
}

/* The prefix with one '/' at each end tolerated, and a '/' appended. */
static int s3s_set_prefix(struct s3s *s, const char *prefix)
{
	struct s3_buf b = { 0 };
	size_t n;

	if (!prefix)
		prefix = "";
	if (*prefix == '/')
		prefix++;
	n = strlen(prefix);
	if (n && prefix[n - 1] == '/')
		n--;
	s3_buf_add(&b, prefix, n);
	if (b.err)
		return b.err;
	if (n && !store_key_is_valid(b.p)) {
		s3_client_log(s->c, "s3: prefix \"%s\": not a valid key prefix",
			      b.p);
		s3_buf_free(&b);
		return -EINVAL;
	}
	if (n)
		s3_buf_add(&b, "/", 1);
	else
		s3_buf_adds(&b, "");
	if (b.err) {
		s3_buf_free(&b);
		return -ENOMEM;
	}
	s->prefix = b.p;
	return 0;
}

/* List one key: the endpoint answers, the bucket exists, we may read. */
static int s3s_probe(struct s3s *s)
{
	struct s3_buf page = { .max = S3S_LIST_PAGE_MAX };
	struct s3_resp resp;
	struct s3_req r = {
		.method = "GET",
		.query = {
			{ "list-type", "2" },
			{ "prefix", s->prefix },
			{ "max-keys", "1" },
		},
		.nquery = 3,
		.sink = S3_SINK_BUF,
		.buf = &page,
	};
	int rc;

	rc = s3_request(s->c, &r, &resp);
	s3_buf_free(&page);
	return rc;
}

static unsigned s3s_or(unsigned v, unsigned def)
{
	return v ? v : def;
}

int store_s3_open(const struct store_s3_opts *o, struct store **out)
{
	const char *staging;
	struct s3s *s;
	int rc;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	rc = s3_client_new(o, &s->c);
	if (rc < 0)
		goto out_free;
	rc = s3s_set_prefix(s, o->prefix);
	if (rc < 0)
		goto out_free;
	rc = -ENOMEM;
	s->name = malloc(strlen(o->bucket) + strlen(s->prefix) + 8);
	if (!s->name)
		goto out_free;
	sprintf(s->name, "s3://%s/%s", o->bucket, s->prefix);
	if (s->prefix[0])
		s->name[strlen(s->name) - 1] = '\0';
	staging = o->staging_dir;
	if (!staging)
		staging = getenv("TMPDIR");
	if (!staging || !*staging)
		staging = "/tmp";
	s->staging = strdup(staging);
	if (!s->staging)
		goto out_free;
	if (o->staging_dir) {
		rc = s3s_mkdirs(s->staging);
		if (rc < 0) {
			s3_client_log(s->c, "s3: staging folder \"%s\": %s",
				      s->staging, strerror(-rc));
			goto out_free;
		}
	}
	s->part_size = o->part_size ? o->part_size : S3S_DEF_PART_SIZE;
	if (s->part_size < S3S_PART_MIN)
		s->part_size = S3S_PART_MIN;
	if (s->part_size > S3S_PART_MAX)
		s->part_size = S3S_PART_MAX;
	s->threshold = o->multipart_threshold ? o->multipart_threshold :
						S3S_DEF_THRESHOLD;
	if (s->threshold > S3S_PART_MAX)
		s->threshold = S3S_PART_MAX;
	s->parallel = s3s_or(o->upload_parallel, S3S_DEF_PARALLEL);
	if (s->parallel > S3S_PARALLEL_MAX)
		s->parallel = S3S_PARALLEL_MAX;
	s->max_keys = s3s_or(o->list_max_keys, S3S_DEF_MAX_KEYS);
	if (o->writer)
		snprintf(s->writer, sizeof(s->writer), "%s", o->writer);
	if (getrandom(&s->salt, sizeof(s->salt), GRND_NONBLOCK) !=
	    sizeof(s->salt))
		s->salt = (uint64_t)time(NULL);
	s->base.ops = &s3s_ops;
	s->base.name = s->name;
	if (o->probe) {
		rc = s3s_probe(s);
		if (rc < 0)
			goto out_free;
	}
	*out = &s->base;
	return 0;
out_free:
	s3_client_free(s->c);
	free(s->staging);
	free(s->name);
	free(s->prefix);
	free(s);
	return rc;
}

/*
 * Credentials.  The files are INI: "[section]" lines, "name = value"
 * lines, comments starting with '#' or ';'.
 */

/* A file's text, NUL-terminated; -ENOENT if missing. */
static int s3s_read_file(const char *path, char **out)
{
	struct s3_buf b = { .max = S3S_INI_MAX };
	char chunk[4096];
	ssize_t n;
	int fd;
	int rc = 0;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		s3_buf_add(&b, chunk, (size_t)n);
		if (b.err) {
			rc = b.err == -E2BIG ? -EFBIG : b.err;
			break;
		}
	}
	explicit_bzero(chunk, sizeof(chunk));
	close(fd);
	if (rc == 0 && !b.p)
		s3_buf_adds(&b, "");
	if (rc == 0 && b.err)
		rc = b.err;
	if (rc < 0) {
		s3_buf_free(&b);
		return rc;
	}
	*out = b.p;
	return 0;
}

static char *s3s_trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* What to take from a section: names and where their values go. */
struct s3s_ini_want {
	const char *name;
	char *dst;
	size_t dstlen;
	bool found;
};

/*
 * Fill the wanted names from section sect of the file at path.  Returns
 * 1 if the section exists, 0 if not, -errno (with msg) on failure.
 */
static int s3s_ini_read(const char *path, const char *shown,
			const char *sect, struct s3s_ini_want *w, size_t nw,
			char *msg, size_t msglen)
{
	bool in = false;
	bool seen = false;
	char *text;
	char *line;
	char *next;
	char *name;
	char *val;
	char *eq;
	size_t len;
	unsigned lineno = 0;
	size_t i;
	int rc;

	rc = s3s_read_file(path, &text);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0) {
		snprintf(msg, msglen, "%s: %s", shown, strerror(-rc));
		return rc;
	}
	for (line = text; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		line = s3s_trim(line);
		if (*line == '\0' || *line == '#' || *line == ';')
			continue;
		if (*line == '[') {
			len = strlen(line);
			in = len >= 2 && line[len - 1] == ']';
			if (in) {
				line[len - 1] = '\0';
				in = strcmp(s3s_trim(line + 1), sect) == 0;
			}
			seen = seen || in;
			continue;
		}
		if (!in)
			continue;
		eq = strchr(line, '=');
		if (!eq)
			continue;
		*eq = '\0';
		name = s3s_trim(line);
		val = s3s_trim(eq + 1);
		for (i = 0; i < nw; i++) {
			if (strcmp(name, w[i].name) != 0)
				continue;
			if (strlen(val) >= w[i].dstlen) {
				snprintf(msg, msglen, "%s:%u: %s: longer than %zu bytes",
					 shown, lineno, name, w[i].dstlen - 1);
				rc = -EINVAL;
				goto out;
			}
			strcpy(w[i].dst, val);
			w[i].found = true;
		}
	}
	rc = seen;
out:
	explicit_bzero(text, strlen(text));
	free(text);
	return rc;
}

/* path of an AWS file: $var, else ~/.aws/name; shown is how to name it. */
static int s3s_aws_file(const char *var, const char *name, char *path,
			size_t pathlen, char *shown, size_t shownlen)
{
	const char *env = getenv(var);
	const char *home = getenv("HOME");
	int n;

	if (env && *env) {
		n = snprintf(path, pathlen, "%s", env);
		snprintf(shown, shownlen, "%s", env);
	} else {
		if (!home || !*home)
			return -ENOENT;
		n = snprintf(path, pathlen, "%s/.aws/%s", home, name);
		snprintf(shown, shownlen, "~/.aws/%s", name);
	}
	return n < 0 || (size_t)n >= pathlen ? -ENAMETOOLONG : 0;
}

static int s3s_copy_env(char *dst, size_t dstlen, const char *var,
			char *msg, size_t msglen)
{
	const char *v = getenv(var);

	if (!v)
		v = "";
	if (strlen(v) >= dstlen) {
		snprintf(msg, msglen, "%s: longer than %zu bytes", var,
			 dstlen - 1);
		return -EINVAL;
	}
	strcpy(dst, v);
	return 0;
}

static int s3s_region_from_config(struct store_s3_opts *o, const char *prof,
				  char *msg, size_t msglen)
{
	struct s3s_ini_want w = {
		.name = "region",
		.dst = o->region,
		.dstlen = sizeof(o->region),
	};
	char path[PATH_MAX];
	char shown[PATH_MAX];
	char sect[300];
	int rc;

	if (s3s_aws_file("AWS_CONFIG_FILE", "config", path, sizeof(path),
			 shown, sizeof(shown)) < 0)
		return 0;
	/* ~/.aws/config names profiles "[profile x]", except default. */
	if (strcmp(prof, "default") == 0)
		snprintf(sect, sizeof(sect), "default");
	else
		snprintf(sect, sizeof(sect), "profile %s", prof);
	rc = s3s_ini_read(path, shown, sect, &w, 1, msg, msglen);
	return rc < 0 ? rc : 0;
}

int store_s3_creds_from_env(struct store_s3_opts *o, char *msg, size_t msglen)
{
	const char *prof = getenv("AWS_PROFILE");
	const char *ak = getenv("AWS_ACCESS_KEY_ID");
	const char *sk = getenv("AWS_SECRET_ACCESS_KEY");
	struct s3s_ini_want w[3];
	char path[PATH_MAX];
	char shown[PATH_MAX];
	int rc;

	if (msglen)
		msg[0] = '\0';
	if (!prof || !*prof)
		prof = "default";
	explicit_bzero(o->access_key, sizeof(o->access_key));
	explicit_bzero(o->secret_key, sizeof(o->secret_key));
	explicit_bzero(o->session_token, sizeof(o->session_token));
	if (!o->region[0]) {
		rc = s3s_copy_env(o->region, sizeof(o->region), "AWS_REGION",
				  msg, msglen);
		if (rc == 0 && !o->region[0])
			rc = s3s_copy_env(o->region, sizeof(o->region),
					  "AWS_DEFAULT_REGION", msg, msglen);
		if (rc == 0 && !o->region[0])
			rc = s3s_region_from_config(o, prof, msg, msglen);
		if (rc < 0)
			return rc;
	}
	if ((ak && *ak) || (sk && *sk)) {
		if (!ak || !*ak || !sk || !*sk) {
			snprintf(msg, msglen, "%s is set but %s is not",
				 ak && *ak ? "AWS_ACCESS_KEY_ID" :
					     "AWS_SECRET_ACCESS_KEY",
				 ak && *ak ? "AWS_SECRET_ACCESS_KEY" :
					     "AWS_ACCESS_KEY_ID");
			return -EINVAL;
		}
		rc = s3s_copy_env(o->access_key, sizeof(o->access_key),
				  "AWS_ACCESS_KEY_ID", msg, msglen);
		if (rc == 0)
			rc = s3s_copy_env(o->secret_key, sizeof(o->secret_key),
					  "AWS_SECRET_ACCESS_KEY", msg, msglen);
		if (rc == 0)
			rc = s3s_copy_env(o->session_token,
					  sizeof(o->session_token),
					  "AWS_SESSION_TOKEN", msg, msglen);
		goto out;
	}
	rc = s3s_aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials", path,
			  sizeof(path), shown, sizeof(shown));
	if (rc < 0) {
		snprintf(msg, msglen, "no credentials: AWS_ACCESS_KEY_ID is not set and there is no credentials file");
		return -ENOENT;
	}
	w[0] = (struct s3s_ini_want){ .name = "aws_access_key_id",
				      .dst = o->access_key,
				      .dstlen = sizeof(o->access_key) };
	w[1] = (struct s3s_ini_want){ .name = "aws_secret_access_key",
				      .dst = o->secret_key,
				      .dstlen = sizeof(o->secret_key) };
	w[2] = (struct s3s_ini_want){ .name = "aws_session_token",
				      .dst = o->session_token,
				      .dstlen = sizeof(o->session_token) };
	rc = s3s_ini_read(path, shown, prof, w, 3, msg, msglen);
	if (rc < 0)
		goto out;
	if (rc == 0 || (!w[0].found && !w[1].found)) {
		snprintf(msg, msglen, "no credentials: AWS_ACCESS_KEY_ID is not set and %s has no profile \"%s\"",
			 shown, prof);
		rc = -ENOENT;
		goto out;
	}
	if (!w[0].found || !w[1].found || !o->access_key[0] ||
	    !o->secret_key[0]) {
		snprintf(msg, msglen, "%s: profile \"%s\": %s is missing",
			 shown, prof, w[0].found && o->access_key[0] ?
			 "aws_secret_access_key" : "aws_access_key_id");
		rc = -EINVAL;
		goto out;
	}
	rc = 0;
out:
	if (rc < 0) {
		explicit_bzero(o->access_key, sizeof(o->access_key));
		explicit_bzero(o->secret_key, sizeof(o->secret_key));
		explicit_bzero(o->session_token, sizeof(o->session_token));
	}
	return rc;
}

/* ---- multipart uploads a crash left behind ---- */

/*
 * The text of element tag in [blk, blk + blen), entities decoded (and
 * then percent-decoded if url) into out (tmp is scratch); false if it is
 * missing, malformed or holds a NUL.
 */
static bool s3s_field(const char *blk, size_t blen, const char *tag, bool url,
		      struct s3_buf *out, struct s3_buf *tmp)
{
	const char *pos = blk;
	const char *v;
	size_t vlen;

	s3_buf_reset(out);
	s3_buf_reset(tmp);
	if (!s3_xml_find(&pos, blk + blen, tag, &v, &vlen))
		return false;
	if (s3_xml_decode(url ? tmp : out, v, vlen) < 0)
		return false;
	if (url && s3s_url_decode(out, tmp->p ? tmp->p : "", tmp->len) < 0)
		return false;
	s3_buf_adds(out, "");	/* an empty value still has its NUL */
	return out->err == 0 && strlen(out->p) == out->len;
}

/* Abort one upload; one already gone (completed, aborted) is fine. */
static int s3s_abort_upload(struct s3s *s, const char *key, const char *id)
{
	struct s3_resp resp;
	struct s3_req r = {
		.method = "DELETE",
		.key = key,
		.query = { { "uploadId", id } },
		.nquery = 1,
	};
	int rc = s3_request(s->c, &r, &resp);

	return rc == -ENOENT ? 0 : rc;
}

/*
 * One ListMultipartUploads page: abort the uploads under the prefix
 * initiated before `before`; the markers of the next page go to km and
 * im (emptied on the last page).
 */
static int s3s_uploads_page(struct s3s *s, const struct s3_buf *page,
			    int64_t before, unsigned *n, struct s3_buf *km,
			    struct s3_buf *im)
{
	const char *end = page->p + page->len;
	struct s3_buf key = { .max = 64 * 1024 };
	struct s3_buf id = { .max = 64 * 1024 };
	struct s3_buf when = { .max = 256 };
	struct s3_buf tmp = { .max = 64 * 1024 };
	const char *pos = page->p;
	const char *v;
	size_t vlen;
	size_t plen = strlen(s->prefix);
	bool url;
	int rc = 0;

	url = s3_xml_find(&pos, end, "EncodingType", &v, &vlen) &&
	      vlen == 3 && memcmp(v, "url", 3) == 0;
	pos = page->p;
	while (rc == 0 && s3_xml_find(&pos, end, "Upload", &v, &vlen)) {
		int64_t t;

		if (!s3s_field(v, vlen, "Key", url, &key, &tmp) ||
		    !s3s_field(v, vlen, "UploadId", false, &id, &tmp) ||
		    !s3s_field(v, vlen, "Initiated", false, &when, &tmp) ||
		    strncmp(key.p, s->prefix, plen) != 0 || id.len == 0)
			continue;
		/* an unreadable time is taken as new: never abort blind */
		t = s3s_parse_time(when.p, when.len);
		if (t == 0 || t >= before)
			continue;
		rc = s3s_abort_upload(s, key.p, id.p);
		if (rc == 0)
			(*n)++;
	}
	s3_buf_reset(km);
	s3_buf_reset(im);
	pos = page->p;
	if (rc == 0 && s3_xml_find(&pos, end, "IsTruncated", &v, &vlen) &&
	    vlen == 4 && memcmp(v, "true", 4) == 0 &&
	    (!s3s_field(page->p, page->len, "NextKeyMarker", url, km, &tmp) ||
	     !s3s_field(page->p, page->len, "NextUploadIdMarker", false, im,
			&tmp) ||
	     km->len == 0)) {
		s3_client_log(s->c, "s3: list uploads: a truncated page without its next markers");
		rc = -EIO;
	}
	s3_buf_free(&tmp);
	s3_buf_free(&when);
	s3_buf_free(&id);
	s3_buf_free(&key);
	return rc;
}

int store_s3_abort_uploads(struct store *st, int64_t before, unsigned *n)
{
	struct s3s *s = to_s3s(st);
	struct s3_buf page = { .max = S3S_LIST_PAGE_MAX };
	struct s3_buf km = { .max = 64 * 1024 };
	struct s3_buf im = { .max = 64 * 1024 };
	struct s3_buf prev = { .max = 64 * 1024 };
	struct s3_resp resp;
	struct s3_req r = {
		.method = "GET",
		.query = {
			{ "uploads", "" },
			{ "prefix", s->prefix },
			{ "encoding-type", "url" },
			{ "key-marker", NULL },
			{ "upload-id-marker", NULL },
		},
		.nquery = 3,
		.sink = S3_SINK_BUF,
		.buf = &page,
	};
	unsigned done = 0;
	int rc;

	if (st->ops != &s3s_ops)
		return -EINVAL;
	for (;;) {
		s3_buf_reset(&page);
		rc = s3_request(s->c, &r, &resp);
		if (rc < 0)
			break;
		if (!page.p)
			s3_buf_adds(&page, "");
		rc = s3s_uploads_page(s, &page, before, &done, &km, &im);
		if (rc < 0 || km.len == 0)
			break;
		/* A server repeating itself would make this loop forever. */
		if (prev.len == km.len + im.len + 1 &&
		    memcmp(prev.p, km.p, km.len) == 0 &&
		    strcmp(prev.p + km.len + 1, im.p) == 0) {
			s3_client_log(s->c, "s3: list uploads: the server repeated its markers");
			rc = -EIO;
			break;
		}
		s3_buf_reset(&prev);
		s3_buf_add(&prev, km.p, km.len + 1);
		s3_buf_adds(&prev, im.p);
		rc = prev.err;
		if (rc < 0)
			break;
		r.query[3].value = km.p;
		r.query[4].value = im.p;
		r.nquery = 5;
	}
	if (n)
		*n = done;
	s3_buf_free(&prev);
	s3_buf_free(&im);
	s3_buf_free(&km);
	s3_buf_free(&page);
	return rc;
}
