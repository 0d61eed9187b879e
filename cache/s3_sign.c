/* SPDX-License-Identifier: MIT */
/*
 * AWS Signature Version 4 for S3, written out rather than left to
 * libcurl.  Debian 12's curl 7.88 has CURLOPT_AWS_SIGV4, but it signs the
 * path and query as they stand in the URL: a key or query value with '='
 * or '+' is canonicalised wrongly (fixed only in curl 8.9 and later) and
 * query parameters are not sorted, so S3 answers 403 (measured against
 * tests/s3/gateway.py: "/b/a+b=c" and "?prefix=a&list-type=2" are
 * refused).  Nor does it add x-amz-content-sha256, which S3 requires, or
 * x-amz-security-token.  The canonical request here follows the AWS
 * documentation and is checked against botocore's signer in
 * tests/unit/s3_test.c.  Also the small string builder the S3 client
 * uses.  Pure functions: any thread may enter.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "s3_i.h"

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"

static size_t buf_max(const struct s3_buf *b)
{
	return b->max ? b->max : S3_BUF_MAX_DEFAULT;
}

/* Make room for n more bytes and the NUL. */
static bool buf_reserve(struct s3_buf *b, size_t n)
{
	size_t want;
	size_t cap;
	char *p;

	if (b->err)
		return false;
	if (n > buf_max(b) || b->len > buf_max(b) - n) {
		b->err = -E2BIG;
		return false;
	}
	want = b->len + n + 1;
	if (want <= b->cap)
		return true;
	cap = b->cap ? b->cap : 256;
	while (cap < want)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->err = -ENOMEM;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void s3_buf_reserve(struct s3_buf *b, size_t n)
{
	buf_reserve(b, n);
}

void s3_buf_add(struct s3_buf *b, const void *p, size_t n)
{
	if (!buf_reserve(b, n))
		return;
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void s3_buf_adds(struct s3_buf *b, const char *s)
{
	s3_buf_add(b, s, strlen(s));
}

void s3_buf_addf(struct s3_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		if (!b->err)
			b->err = -EINVAL;
		return;
	}
	if (!buf_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void s3_buf_reset(struct s3_buf *b)
{
	b->len = 0;
	b->err = 0;
	if (b->p)
		b->p[0] = '\0';
}

void s3_buf_free(struct s3_buf *b)
{
	if (b->p)
		explicit_bzero(b->p, b->cap);
	free(b->p);
	b->p = NULL;
	b->len = 0;
	b->cap = 0;
	b->err = 0;
}

static bool uri_is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
	       c == '~';
}

void s3_uri_encode(struct s3_buf *b, const char *s, size_t n,
		   bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned char c;
	char esc[3];
	size_t run;
	size_t i;

	i = 0;
	while (i < n) {
		/* Copy runs of kept bytes at once: keys are mostly plain. */
		run = 0;
		while (i + run < n &&
		       (uri_is_unreserved((unsigned char)s[i + run]) ||
			(keep_slash && s[i + run] == '/')))
			run++;
		s3_buf_add(b, s + i, run);
		i += run;
		if (i == n)
			break;
		c = (unsigned char)s[i];
		esc[0] = '%';
		esc[1] = hex[c >> 4];
		esc[2] = hex[c & 15];
		s3_buf_add(b, esc, 3);
		i++;
	}
}

/* One query pair, encoded, as offsets into a shared buffer. */
struct enc_pair {
	const char *text;	/* "name\0value\0" inside the buffer */
	size_t name_len;
	size_t value_len;
};

/* Byte-wise order of encoded name, then encoded value, as AWS sorts. */
static int enc_pair_cmp(const void *a, const void *b)
{
	const struct enc_pair *x = a;
	const struct enc_pair *y = b;
	size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
	int c;

	c = memcmp(x->text, y->text, n);
	if (c)
		return c;
	if (x->name_len != y->name_len)
		return x->name_len < y->name_len ? -1 : 1;
	n = x->value_len < y->value_len ? x->value_len : y->value_len;
	c = memcmp(x->text + x->name_len + 1, y->text + y->name_len + 1, n);
	if (c)
		return c;
	if (x->value_len != y->value_len)
		return x->value_len < y->value_len ? -1 : 1;
	return 0;
}

void s3_canonical_query(struct s3_buf *b, const struct s3_kv *q, size_t n)
{
	struct s3_buf enc = { .max = buf_max(b) };
	struct enc_pair *pairs;
	size_t *offs;
	size_t start;
	size_t i;

	if (n == 0 || b->err)
		return;
	pairs = calloc(n, sizeof(*pairs));
	offs = calloc(n, sizeof(*offs));
	if (!pairs || !offs) {
		b->err = -ENOMEM;
		goto out_free;
	}
	for (i = 0; i < n; i++) {
		offs[i] = enc.len;
		s3_uri_encode(&enc, q[i].name, strlen(q[i].name), false);
		pairs[i].name_len = enc.len - offs[i];
		s3_buf_add(&enc, "", 1);
		start = enc.len;
		s3_uri_encode(&enc, q[i].value, strlen(q[i].value), false);
		pairs[i].value_len = enc.len - start;
		s3_buf_add(&enc, "", 1);
	}
	if (enc.err) {
		b->err = enc.err;
		goto out_free;
	}
	/* Pointers only now: enc.p moved while it grew. */
	for (i = 0; i < n; i++)
		pairs[i].text = enc.p + offs[i];
	qsort(pairs, n, sizeof(*pairs), enc_pair_cmp);
	for (i = 0; i < n; i++) {
		if (i)
			s3_buf_add(b, "&", 1);
		s3_buf_add(b, pairs[i].text, pairs[i].name_len);
		s3_buf_add(b, "=", 1);
		s3_buf_add(b, pairs[i].text + pairs[i].name_len + 1,
			   pairs[i].value_len);
	}
out_free:
	s3_buf_free(&enc);
	free(offs);
	free(pairs);
}

static int header_cmp(const void *a, const void *b)
{
	const struct s3_kv *x = a;
	const struct s3_kv *y = b;

	return strcmp(x->name, y->name);
}

/* Append v trimmed, with each inner run of spaces or tabs folded to one. */
static void add_trimmed(struct s3_buf *b, const char *v)
{
	bool space = false;
	bool started = false;

	for (; *v; v++) {
		if (*v == ' ' || *v == '\t') {
			space = started;
			continue;
		}
		if (space)
			s3_buf_add(b, " ", 1);
		space = false;
		started = true;
		s3_buf_add(b, v, 1);
	}
}

/* The headers sorted by name, in a new array the caller frees. */
static struct s3_kv *sorted_headers(const struct s3_sigv4 *r)
{
	struct s3_kv *h;

	h = calloc(r->nheaders ? r->nheaders : 1, sizeof(*h));
	if (!h)
		return NULL;
	if (r->nheaders)
		memcpy(h, r->headers, r->nheaders * sizeof(*h));
	qsort(h, r->nheaders, sizeof(*h), header_cmp);
	return h;
}

static void add_signed_names(struct s3_buf *b, const struct s3_kv *h,
			     size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (i)
			s3_buf_add(b, ";", 1);
		s3_buf_adds(b, h[i].name);
	}
}

int s3_canonical_request(const struct s3_sigv4 *r, struct s3_buf *out)
{
	struct s3_kv *h;
	size_t i;

	h = sorted_headers(r);
	if (!h)
		return -ENOMEM;
	s3_buf_adds(out, r->method);
	s3_buf_add(out, "\n", 1);
	s3_buf_adds(out, r->uri);
	s3_buf_add(out, "\n", 1);
	s3_canonical_query(out, r->query, r->nquery);
	s3_buf_add(out, "\n", 1);
	for (i = 0; i < r->nheaders; i++) {
		s3_buf_adds(out, h[i].name);
		s3_buf_add(out, ":", 1);
		add_trimmed(out, h[i].value);
		s3_buf_add(out, "\n", 1);
	}
	s3_buf_add(out, "\n", 1);
	add_signed_names(out, h, r->nheaders);
	s3_buf_add(out, "\n", 1);
	s3_buf_adds(out, r->payload_hash);
	free(h);
	return out->err;
}

static void to_hex(const unsigned char *p, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hex[p[i] >> 4];
		out[2 * i + 1] = hex[p[i] & 15];
	}
	out[2 * n] = '\0';
}

int s3_sha256_hex(const void *p, size_t n, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
		return -EIO;
	to_hex(md, 32, out);
	return 0;
}

/* out = HMAC-SHA256(key, msg); 32 bytes. */
static int hmac(const void *key, size_t keylen, const char *msg,
		size_t msglen, unsigned char out[32])
{
	unsigned int outlen = 0;

	if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg,
		  msglen, out, &outlen) ||
	    outlen != 32)
		return -EIO;
	return 0;
}

int s3_sigv4_sign(const struct s3_sigv4 *r, char sig[65],
		  struct s3_buf *authz)
{
	struct s3_buf canon = { 0 };
	struct s3_buf sts = { 0 };
	struct s3_buf key = { 0 };
	/* HMAC outputs alternate between two buffers, never aliasing the
	 * key of the same call. */
	unsigned char k[32];
	unsigned char mac[32];
	char date[9];
	char hash[65];
	struct s3_kv *h;
	int rc;

	if (strlen(r->amz_date) != 16)
		return -EINVAL;
	memcpy(date, r->amz_date, 8);
	date[8] = '\0';
	rc = s3_canonical_request(r, &canon);
	if (rc < 0)
		goto out;
	rc = s3_sha256_hex(canon.p, canon.len, hash);
	if (rc < 0)
		goto out;
	s3_buf_addf(&sts, SIGV4_ALGORITHM "\n%s\n%s/%s/%s/aws4_request\n%s",
		    r->amz_date, date, r->region, r->service, hash);
	s3_buf_addf(&key, "AWS4%s", r->secret_key);
	rc = sts.err ? sts.err : key.err;
	if (rc < 0)
		goto out;
	/* The signing key: date, region, service, "aws4_request". */
	rc = hmac(key.p, key.len, date, 8, k);
	if (!rc)
		rc = hmac(k, 32, r->region, strlen(r->region), mac);
	if (!rc)
		rc = hmac(mac, 32, r->service, strlen(r->service), k);
	if (!rc)
		rc = hmac(k, 32, "aws4_request", 12, mac);
	if (!rc)
		rc = hmac(mac, 32, sts.p, sts.len, k);
	if (rc < 0)
		goto out_wipe;
	to_hex(k, 32, sig);
	h = sorted_headers(r);
	if (!h) {
		rc = -ENOMEM;
		goto out_wipe;
	}
	s3_buf_addf(authz, SIGV4_ALGORITHM " Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=",
		    r->access_key, date, r->region, r->service);
	add_signed_names(authz, h, r->nheaders);
	s3_buf_addf(authz, ", Signature=%s", sig);
	free(h);
	rc = authz->err;
out_wipe:
	explicit_bzero(k, sizeof(k));
	explicit_bzero(mac, sizeof(mac));
out:
	s3_buf_free(&key);
	s3_buf_free(&sts);
	s3_buf_free(&canon);
	return rc;
}
