/* SPDX-License-Identifier: MIT */
/*
 * The S3 client's internals, shared by cache/s3_sign.c (SigV4),
 * cache/s3.c (HTTP over libcurl, retries, errno translation, XML) and
 * cache/store_s3.c (the store backend), and by tests/unit/s3_test.c,
 * which checks the signer against fixed vectors.  Nothing else includes
 * this header: the rest of mlfs sees only store.h.
 */
#ifndef MLFS_CACHE_S3_I_H
#define MLFS_CACHE_S3_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "store.h"

/* Ceiling of a buffer made with max 0: request lines, signatures. */
#define S3_BUF_MAX_DEFAULT (1024 * 1024)

/*
 * A growable byte string with a ceiling.  The first failure (-ENOMEM, or
 * -E2BIG past max) sticks in err and makes later appends no-ops, so a
 * builder checks once at the end.  p is NUL-terminated whenever it is
 * not NULL.  A zeroed struct is an empty buffer with the default ceiling.
 */
struct s3_buf {
	char *p;
	size_t len;	/* bytes, not counting the NUL */
	size_t cap;	/* bytes allocated */
	size_t max;	/* ceiling in bytes; 0: S3_BUF_MAX_DEFAULT */
	int err;	/* 0, -ENOMEM or -E2BIG */
};

void s3_buf_add(struct s3_buf *b, const void *p, size_t n);
void s3_buf_adds(struct s3_buf *b, const char *s);
void s3_buf_addf(struct s3_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Make room for n more bytes at once (a failure sticks in err). */
void s3_buf_reserve(struct s3_buf *b, size_t n);
/* Empty the buffer, keeping its memory and ceiling; clears err. */
void s3_buf_reset(struct s3_buf *b);
/* Free the memory (wiping it first: buffers may hold signatures). */
void s3_buf_free(struct s3_buf *b);

/*
 * s3_uri_encode: append s[0..n) URI-encoded the way SigV4 requires:
 * A-Z a-z 0-9 - _ . ~ are kept, '/' is kept if keep_slash (object key
 * paths), and every other byte becomes %XX with upper-case hex.
 */
void s3_uri_encode(struct s3_buf *b, const char *s, size_t n,
		   bool keep_slash);

/* A name and value, borrowed. */
struct s3_kv {
	const char *name;
	const char *value;
};

/* One request as SigV4 sees it; every pointer is borrowed. */
struct s3_sigv4 {
	const char *method;		/* "GET", "PUT", ... */
	const char *uri;		/* the path as sent, already encoded */
	const struct s3_kv *query;	/* decoded names and values */
	size_t nquery;
	const struct s3_kv *headers;	/* lower-case names */
	size_t nheaders;
	const char *payload_hash;	/* hex SHA-256, or UNSIGNED-PAYLOAD */
	const char *amz_date;		/* "20130524T000000Z" */
	const char *region;		/* "us-east-1" */
	const char *service;		/* "s3" */
	const char *access_key;
	const char *secret_key;
};

#define S3_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
/* SHA-256 of zero bytes, the payload hash of a request without a body. */
#define S3_EMPTY_SHA256 \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/*
 * s3_canonical_query: append the query in canonical form: each name and
 * value URI-encoded (keep_slash false), pairs sorted by encoded name and
 * then value, joined by '&', "name=" for an empty value.  The same string
 * serves as the query of the URL actually sent, so the two cannot differ.
 */
void s3_canonical_query(struct s3_buf *b, const struct s3_kv *q, size_t n);

/*
 * s3_canonical_request: append r's canonical request (six lines: method,
 * URI, query, headers, signed header names, payload hash) to out.
 * Headers are sorted by name, their values trimmed with inner runs of
 * spaces folded to one.  Returns 0 or out->err.
 */
int s3_canonical_request(const struct s3_sigv4 *r, struct s3_buf *out);

/*
 * s3_sigv4_sign: sign r.  Writes the signature (64 hex digits and a NUL)
 * to sig and appends the Authorization header's value to authz.  Returns
 * 0, -ENOMEM, -E2BIG or -EIO (the crypto library failed).
 */
int s3_sigv4_sign(const struct s3_sigv4 *r, char sig[65],
		  struct s3_buf *authz);

/* Lower-case hex SHA-256 of p[0..n); out gets 64 digits and a NUL. */
int s3_sha256_hex(const void *p, size_t n, char out[65]);

/*
 * The HTTP client: endpoint, credentials, retry policy and a pool of curl
 * easy handles, one per concurrent caller.  Thread-safe.
 */
struct s3_client;

/*
 * s3_client_new: check o and build a client.  -EINVAL for a bad bucket,
 * endpoint or region (reported through o->log), -ENOMEM.  The client
 * copies everything it keeps from o.
 */
int s3_client_new(const struct store_s3_opts *o, struct s3_client **out);
/* s3_client_free(NULL) does nothing.  Wipes the credentials. */
void s3_client_free(struct s3_client *c);
/* Report msg through the client's log callback, if any. */
void s3_client_log(struct s3_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

enum s3_sink_kind {
	S3_SINK_DISCARD,	/* drop the response body */
	S3_SINK_BUF,		/* grow buf up to buf->max (-EFBIG) */
	S3_SINK_RANGE,		/* object bytes at dst_off into dst (or
				 * to stream) */
};

/* One S3 request; fields the caller does not use stay zero. */
struct s3_req {
	const char *method;	/* "GET", "HEAD", "PUT", "POST", "DELETE" */
	const char *key;	/* full object key; NULL: the bucket itself */
	struct s3_kv query[8];	/* decoded */
	size_t nquery;
	const char *range;	/* Range header value, e.g. "bytes=0-9" */
	const char *if_match;	/* If-Match header value: an ETag */
	/* If-None-Match: "*" on a PUT or a complete creates only (S3's
	 * conditional write: 412 if the key exists) */
	const char *if_none_match;
	/* x-amz-meta-mlfs-writer of a PUT or an upload's create: who
	 * wrote the object (see store_s3_opts.writer) */
	const char *writer;
	const char *content_type;
	/* Request body: body_len bytes from body, or else at body_off of
	 * body_fd when body_fd >= 0.  A file body is sent UNSIGNED-PAYLOAD,
	 * a memory body with its SHA-256. */
	const void *body;
	int body_fd;		/* -1 (or 0 with body_len 0): no file */
	uint64_t body_off;	/* bytes */
	uint64_t body_len;	/* bytes */
	/* A 200 whose body is an <Error> (CompleteMultipartUpload) fails. */
	bool body_may_be_error;
	/* The server may think for minutes before answering: allow a long
	 * stall (CompleteMultipartUpload). */
	bool patient;
	/* Response body. */
	enum s3_sink_kind sink;
	struct s3_buf *buf;	/* S3_SINK_BUF; also gets the body of 200s */
	void *dst;		/* S3_SINK_RANGE */
	size_t dst_len;		/* bytes */
	uint64_t dst_off;	/* object offset of dst[0] */
	/* S3_SINK_RANGE without dst: the range's bytes are handed to
	 * stream as they arrive (see store_sink_fn); a retry hands them
	 * again from dst_off, and stream's error ends the request. */
	int (*stream)(void *arg, uint64_t off, const void *p, size_t n);
	void *stream_arg;
};

/* What came back from the last attempt of a request. */
struct s3_resp {
	long status;		/* HTTP status; 0 if none arrived */
	char etag[80];		/* ETag header, quotes kept; "" if none */
	uint64_t length;	/* Content-Length; 0 if none */
	bool has_length;
	int64_t mtime;		/* Last-Modified, epoch seconds */
	size_t got;		/* S3_SINK_RANGE: bytes copied to dst (or
				 * handed to stream) */
	char code[64];		/* S3 error code from the body, "" if none */
	char region[32];	/* x-amz-bucket-region of an error, or "" */
	char writer[80];	/* x-amz-meta-mlfs-writer, or "" */
	unsigned tries;		/* attempts made */
};

/*
 * s3_request: send r, retrying with exponential backoff and full jitter
 * on 5xx, 408, 429, S3's RequestTimeout and transport failures (reset,
 * refused, timed out), up to the client's tries and time budget.
 * Returns 0 for a 2xx status, else the errno of s3_errno() for the last
 * attempt.  resp describes the last attempt.  Thread-safe; blocks for at
 * most about the retry budget plus one attempt.
 */
int s3_request(struct s3_client *c, const struct s3_req *r,
	       struct s3_resp *resp);

/*
 * s3_errno: the one translation of libcurl results and HTTP statuses into
 * errnos (see the table in s3.c).  cc is a CURLcode (0: the transfer
 * worked and status counts).
 */
int s3_errno(int cc, long status);

/*
 * s3_xml_find: the text of the first <tag>...</tag> in [*pos, end),
 * raw (entities not decoded).  On success sets *val, *vlen and moves *pos
 * past the closing tag.  False if absent.
 */
bool s3_xml_find(const char **pos, const char *end, const char *tag,
		 const char **val, size_t *vlen);

/*
 * s3_xml_decode: append the text v[0..n) with XML entities (&amp; &lt;
 * &gt; &quot; &apos; &#N; &#xN;) decoded; -EINVAL for a malformed one or
 * a character reference to NUL.
 */
int s3_xml_decode(struct s3_buf *b, const char *v, size_t n);

/* s3_xml_escape: append s with & < > " escaped. */
void s3_xml_escape(struct s3_buf *b, const char *s);

#endif
