/* SPDX-License-Identifier: MIT */
/*
 * The S3 HTTP client: one request at a time per caller, over libcurl,
 * signed with SigV4 (s3_sign.c), retried with backoff, and translated at
 * this edge: HTTP statuses and CURLcodes become errnos in s3_errno() and
 * nowhere else.
 *
 * Threads: none of its own.  Any thread may call s3_request(); each call
 * borrows an easy handle from the client's pool (taken and returned under
 * c->lock, never held across a transfer) and returns it afterwards, so a
 * handle, and the keep-alive connections it caches, is used by one
 * thread at a time.  The pool keeps up to S3_POOL_IDLE handles; more
 * concurrent callers get fresh handles that are closed on return.
 * libcurl itself must have been initialised by main() before threads.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <pthread.h>

#include "s3_i.h"
#include "store_i.h"

/* Idle easy handles kept for reuse (each caches its connections). */
#define S3_POOL_IDLE 16
/* Ceiling of an error response body we keep (for its <Code>). */
#define S3_ERRBODY_MAX (64 * 1024)
/* Longest backoff between two attempts. */
#define S3_BACKOFF_CAP_MS 5000
/* A ranged GET answered with more than asked: read on to keep the
 * connection if at most this much is left, else drop it. */
#define S3_RANGE_DRAIN_MAX (1024 * 1024)
/* curl's receive and send buffers, bytes. */
#define S3_RECV_BUFFER (512L * 1024)
#define S3_SEND_BUFFER (1024L * 1024)
/* Stall allowed to a patient request (CompleteMultipartUpload), whose
 * answer S3 may take minutes to produce (it sends spaces meanwhile) and
 * s3rver produces after copying every part, silently. */
#define S3_PATIENT_STALL_S 120
/* Longest key shown in a log line. */
#define S3_LOG_KEY_MAX 200

#define S3_DEF_CONNECT_TIMEOUT_MS 5000
#define S3_DEF_LOW_SPEED_TIME_S 5
#define S3_DEF_LOW_SPEED_LIMIT 1024
#define S3_DEF_MAX_TRIES 5
#define S3_DEF_RETRY_BASE_MS 200
#define S3_DEF_RETRY_BUDGET_MS 20000

struct s3_client {
	char *scheme;			/* "http" or "https" */
	char *hostport;			/* endpoint's host[:port] */
	char *bucket;
	bool path_style;
	char region[64];
	char access_key[128];
	char secret_key[128];		/* never logged */
	char *token;			/* NULL without a session token */
	long connect_timeout_ms;
	long low_speed_time_s;
	long low_speed_limit;		/* bytes per second */
	unsigned max_tries;
	unsigned retry_base_ms;
	unsigned retry_budget_ms;
	void (*log)(void *arg, const char *msg);
	void *log_arg;
	_Atomic uint64_t rng;		/* jitter; racing updates are fine */
	pthread_mutex_t lock;
	CURL *idle[S3_POOL_IDLE];	/* under lock */
	unsigned nidle;			/* under lock */
};

/*
 * The table: every libcurl result and HTTP status the store can meet,
 * as an errno.  Transport failures are -EIO (a read through the mount
 * should fail with EIO however the network failed), except a host name
 * that does not resolve, which is a configuration error.  416 is
 * -ERANGE, which get_range turns into 0 bytes.
 */
int s3_errno(int cc, long status)
{
	switch (cc) {
	case CURLE_OK:
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		return -EIO;
	}
	if (status >= 200 && status < 300)
		return 0;
	switch (status) {
	case 400:
	case 411:
		return -EINVAL;
	case 401:
	case 403:
		return -EACCES;
	case 404:
		return -ENOENT;
	case 405:
	case 501:
		return -EOPNOTSUPP;
	case 409:
		return -EBUSY;
	case 412:
		return -ESTALE;
	case 413:
		return -EFBIG;
	case 416:
		return -ERANGE;
	default:
		return -EIO;
	}
}

/* Transient failures: worth another attempt after a pause. */
static bool s3_is_retryable(CURLcode cc, long status, const char *code)
{
	switch (cc) {
	case CURLE_OK:
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
	if (status == 408 || status == 429)
		return true;
	if (status >= 500 && status != 501)
		return true;
	/* S3 answers an idle upload with 400 RequestTimeout. */
	return status == 400 && strcmp(code, "RequestTimeout") == 0;
}

void s3_client_log(struct s3_client *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!c->log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->log(c->log_arg, msg);
}

static bool s3_region_is_valid(const char *r)
{
	if (!*r)
		return false;
	for (; *r; r++)
		if (!((*r >= 'a' && *r <= 'z') || (*r >= '0' && *r <= '9') ||
		      *r == '-'))
			return false;
	return true;
}

/*
 * Buckets as S3 and the common S3-compatible servers accept them; a
 * virtual-hosted bucket becomes part of a host name, so it must be a
 * lower-case DNS label sequence.
 */
static bool s3_bucket_is_valid(const char *b, bool path_style)
{
	size_t n = strlen(b);
	const char *p;

	if (n < 1 || n > 255)
		return false;
	for (p = b; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '.')
			continue;
		if (path_style && ((*p >= 'A' && *p <= 'Z') || *p == '_'))
			continue;
		return false;
	}
	return path_style || (n <= 63 && b[0] != '.' && b[n - 1] != '.');
}

/* Printable ASCII without spaces, and none of the bytes in bad. */
static bool s3_token_is_clean(const char *s, const char *bad)
{
	for (; *s; s++)
		if (*s <= ' ' || *s >= 0x7f || strchr(bad, *s))
			return false;
	return true;
}

/* Split o's endpoint (or the AWS default) into scheme and host[:port]. */
static int s3_parse_endpoint(struct s3_client *c, const char *endpoint)
{
	char *scheme = NULL;
	char *host = NULL;
	char *port = NULL;
	char *path = NULL;
	char *query = NULL;
	char *user = NULL;
	CURLUcode uc;
	CURLU *u;
	int rc;

	u = curl_url();
	if (!u)
		return -ENOMEM;
	uc = curl_url_set(u, CURLUPART_URL, endpoint, 0);
	if (uc) {
		s3_client_log(c, "s3: endpoint \"%s\": %s", endpoint,
			      curl_url_strerror(uc));
		rc = uc == CURLUE_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
		goto out_free_url;
	}
	rc = -ENOMEM;
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0))
		goto out_free_parts;
	curl_url_get(u, CURLUPART_PORT, &port, 0);
	curl_url_get(u, CURLUPART_PATH, &path, 0);
	curl_url_get(u, CURLUPART_QUERY, &query, 0);
	curl_url_get(u, CURLUPART_USER, &user, 0);
	rc = -EINVAL;
	if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
		s3_client_log(c, "s3: endpoint \"%s\": scheme must be http or https",
			      endpoint);
		goto out_free_parts;
	}
	/* A path would have to be part of every signed URI: unsupported. */
	if ((path && strcmp(path, "/") != 0) || query || user) {
		s3_client_log(c, "s3: endpoint \"%s\": only scheme://host[:port] is supported",
			      endpoint);
		goto out_free_parts;
	}
	rc = -ENOMEM;
	c->scheme = strdup(scheme);
	if (port) {
		c->hostport = malloc(strlen(host) + strlen(port) + 2);
		if (c->hostport)
			sprintf(c->hostport, "%s:%s", host, port);
	} else {
		c->hostport = strdup(host);
	}
	if (c->scheme && c->hostport)
		rc = 0;
out_free_parts:
	curl_free(user);
	curl_free(query);
	curl_free(path);
	curl_free(port);
	curl_free(host);
	curl_free(scheme);
out_free_url:
	curl_url_cleanup(u);
	return rc;
}

static unsigned s3_or(unsigned v, unsigned def)
{
	return v ? v : def;
}

int s3_client_new(const struct store_s3_opts *o, struct s3_client **out)
{
	struct s3_buf ep = { 0 };
	struct s3_client *c;
	uint64_t seed = 0;
	int rc;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->log = o->log;
	c->log_arg = o->log_arg;
	rc = -EINVAL;
	snprintf(c->region, sizeof(c->region), "%s",
		 o->region[0] ? o->region : "us-east-1");
	if (!s3_region_is_valid(c->region)) {
		s3_client_log(c, "s3: region \"%s\": must be lower-case letters, digits and '-'",
			      c->region);
		goto out_free;
	}
	if (!o->bucket || !s3_bucket_is_valid(o->bucket, o->path_style)) {
		s3_client_log(c, "s3: bucket \"%s\": not a valid bucket name%s",
			      o->bucket ? o->bucket : "",
			      o->path_style ? "" : " for virtual-hosted addressing");
		goto out_free;
	}
	/* Credentials go into headers: refuse what could break a line. */
	if (memchr(o->access_key, '\0', sizeof(o->access_key)) == NULL ||
	    memchr(o->secret_key, '\0', sizeof(o->secret_key)) == NULL ||
	    memchr(o->session_token, '\0', sizeof(o->session_token)) == NULL ||
	    !s3_token_is_clean(o->access_key, "/,;=") ||
	    !s3_token_is_clean(o->session_token, "")) {
		s3_client_log(c, "s3: credentials: the access key or session token has characters they never have");
		goto out_free;
	}
	if (o->access_key[0] && !o->secret_key[0]) {
		s3_client_log(c, "s3: credentials: an access key without a secret key");
		goto out_free;
	}
	if (o->endpoint) {
		rc = s3_parse_endpoint(c, o->endpoint);
	} else {
		s3_buf_addf(&ep, "https://s3.%s.amazonaws.com", c->region);
		rc = ep.err ? ep.err : s3_parse_endpoint(c, ep.p);
		s3_buf_free(&ep);
	}
	if (rc < 0)
		goto out_free;
	rc = -ENOMEM;
	c->bucket = strdup(o->bucket);
	if (!c->bucket)
		goto out_free;
	if (o->session_token[0]) {
		c->token = strdup(o->session_token);
		if (!c->token)
			goto out_free;
	}
	memcpy(c->access_key, o->access_key, sizeof(c->access_key));
	memcpy(c->secret_key, o->secret_key, sizeof(c->secret_key));
	c->path_style = o->path_style;
	c->connect_timeout_ms = s3_or(o->connect_timeout_ms,
				      S3_DEF_CONNECT_TIMEOUT_MS);
	c->low_speed_time_s = s3_or(o->low_speed_time_s,
				    S3_DEF_LOW_SPEED_TIME_S);
	c->low_speed_limit = s3_or(o->low_speed_limit, S3_DEF_LOW_SPEED_LIMIT);
	c->max_tries = s3_or(o->max_tries, S3_DEF_MAX_TRIES);
	c->retry_base_ms = s3_or(o->retry_base_ms, S3_DEF_RETRY_BASE_MS);
	c->retry_budget_ms = s3_or(o->retry_budget_ms,
				   S3_DEF_RETRY_BUDGET_MS);
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
		seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	atomic_store(&c->rng, seed | 1);
	rc = -pthread_mutex_init(&c->lock, NULL);
	if (rc < 0)
		goto out_free;
	*out = c;
	return 0;
out_free:
	free(c->token);
	free(c->bucket);
	free(c->hostport);
	free(c->scheme);
	explicit_bzero(c, sizeof(*c));
	free(c);
	return rc;
}

void s3_client_free(struct s3_client *c)
{
	unsigned i;

	if (!c)
		return;
	for (i = 0; i < c->nidle; i++)
		curl_easy_cleanup(c->idle[i]);
	pthread_mutex_destroy(&c->lock);
	if (c->token)
		explicit_bzero(c->token, strlen(c->token));
	free(c->token);
	free(c->bucket);
	free(c->hostport);
	free(c->scheme);
	explicit_bzero(c, sizeof(*c));
	free(c);
}

static CURL *s3_handle_get(struct s3_client *c)
{
	CURL *h = NULL;

	pthread_mutex_lock(&c->lock);
	if (c->nidle)
		h = c->idle[--c->nidle];
	pthread_mutex_unlock(&c->lock);
	if (!h)
		h = curl_easy_init();
	return h;
}

static void s3_handle_put(struct s3_client *c, CURL *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&c->lock);
	if (c->nidle < S3_POOL_IDLE) {
		c->idle[c->nidle++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	curl_easy_cleanup(h);	/* NULL: kept in the pool */
}

/* The state of one attempt, shared with curl's callbacks. */
struct s3_xfer {
	const struct s3_req *r;
	struct s3_resp *resp;
	CURL *h;
	uint64_t sent;		/* request body bytes handed to curl */
	bool started;		/* first response bytes seen */
	bool to_errbody;	/* body goes to errbody (not a 2xx) */
	bool done_early;	/* range complete, transfer cut short */
	uint64_t pos;		/* object offset of the next body byte */
	uint64_t left;		/* body bytes still to come, if known */
	struct s3_buf errbody;
	int err;		/* our own failure inside a callback */
};

static int s3_header_u64(CURL *h, const char *name, uint64_t *v)
{
	struct curl_header *hh;
	char *end;

	if (curl_easy_header(h, name, 0, CURLH_HEADER, -1, &hh) != CURLHE_OK)
		return -ENOENT;
	errno = 0;
	*v = strtoull(hh->value, &end, 10);
	return errno || end == hh->value ? -EINVAL : 0;
}

/*
 * Where the body of a successful ranged GET starts in the object: the
 * first number of Content-Range on a 206, 0 on a 200 (the whole object:
 * some servers ignore Range).  -EIO for a 206 that does not say.
 */
static int s3_body_start(CURL *h, long status, uint64_t *start)
{
	struct curl_header *hh;
	unsigned long long a;

	*start = 0;
	if (status != 206)
		return 0;
	if (curl_easy_header(h, "Content-Range", 0, CURLH_HEADER, -1, &hh) !=
	    CURLHE_OK)
		return -EIO;
	if (sscanf(hh->value, "bytes %llu-", &a) != 1)
		return -EIO;
	*start = a;
	return 0;
}

static bool s3_range_total_is_zero(CURL *h)
{
	struct curl_header *hh;
	const char *slash;

	if (curl_easy_header(h, "Content-Range", 0, CURLH_HEADER, -1, &hh) !=
	    CURLHE_OK)
		return false;
	slash = strrchr(hh->value, '/');
	return slash && strcmp(slash, "/0") == 0;
}

/* First call of on_write for an attempt: decide where the body goes. */
static int s3_body_begin(struct s3_xfer *x)
{
	curl_off_t cl = -1;
	long status = 0;

	x->started = true;
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(x->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
	x->left = cl >= 0 ? (uint64_t)cl : UINT64_MAX;
	if (status < 200 || status >= 300) {
		x->to_errbody = true;
		return 0;
	}
	switch (x->r->sink) {
	case S3_SINK_BUF:
		if (cl >= 0 && (uint64_t)cl > (x->r->buf->max ?
					       x->r->buf->max :
					       S3_BUF_MAX_DEFAULT))
			return -EFBIG;
		/* One allocation rather than doubling copies. */
		if (cl > 0)
			s3_buf_reserve(x->r->buf, (size_t)cl);
		if (x->r->buf->err)
			return x->r->buf->err == -E2BIG ? -EFBIG :
							  x->r->buf->err;
		break;
	case S3_SINK_RANGE:
		/* A body starting after what we asked for would leave a
		 * hole in dst. */
		if (s3_body_start(x->h, status, &x->pos) < 0 ||
		    x->pos > x->r->dst_off)
			return -EIO;
		break;
	case S3_SINK_DISCARD:
		break;
	}
	return 0;
}

/*
 * Copy the part of p (object offset x->pos) that falls in the range to
 * dst, or hand it to the stream; 0 or the stream's error.
 */
static int s3_range_copy(struct s3_xfer *x, const char *p, size_t n)
{
	const struct s3_req *r = x->r;
	uint64_t lo = r->dst_off;
	uint64_t hi = r->dst_off + r->dst_len;
	uint64_t a = x->pos > lo ? x->pos : lo;
	uint64_t b = x->pos + n < hi ? x->pos + n : hi;
	int rc = 0;

	if (a < b) {
		if (r->stream)
			rc = r->stream(r->stream_arg, a, p + (a - x->pos),
				       (size_t)(b - a));
		else
			memcpy((char *)r->dst + (a - lo), p + (a - x->pos),
			       b - a);
		if (rc == 0 && b - lo > x->resp->got)
			x->resp->got = b - lo;
	}
	x->pos += n;
	return rc;
}

static size_t s3_on_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct s3_xfer *x = arg;
	size_t n = size * nmemb;
	int rc;

	if (!x->started) {
		rc = s3_body_begin(x);
		if (rc < 0) {
			x->err = rc;
			return 0;
		}
	}
	if (x->left != UINT64_MAX)
		x->left -= n <= x->left ? n : x->left;
	if (x->to_errbody) {
		/* Only the start matters (<Code>); drop the rest. */
		if (x->errbody.len < S3_ERRBODY_MAX)
			s3_buf_add(&x->errbody, p,
				   n < S3_ERRBODY_MAX - x->errbody.len ?
				   n : S3_ERRBODY_MAX - x->errbody.len);
		return n;
	}
	switch (x->r->sink) {
	case S3_SINK_BUF:
		s3_buf_add(x->r->buf, p, n);
		if (x->r->buf->err) {
			x->err = x->r->buf->err == -E2BIG ? -EFBIG :
							     x->r->buf->err;
			return 0;
		}
		break;
	case S3_SINK_RANGE:
		rc = s3_range_copy(x, p, n);
		if (rc < 0) {
			x->err = rc;
			return 0;
		}
		if (x->pos >= x->r->dst_off + x->r->dst_len &&
		    x->left > S3_RANGE_DRAIN_MAX) {
			x->done_early = true;
			return 0;
		}
		break;
	case S3_SINK_DISCARD:
		break;
	}
	return n;
}

/*
 * At the end of a response's headers: s3rver answers a range of an empty
 * object with a 206 "bytes 0-0/0" promising one byte it never sends (S3
 * answers 416), and the connection would stall until s3rver drops it.
 * Such an answer is complete as it stands: zero bytes.
 */
static size_t s3_on_header(char *p, size_t size, size_t nmemb, void *arg)
{
	struct s3_xfer *x = arg;
	size_t n = size * nmemb;
	long status = 0;

	if (x->r->sink != S3_SINK_RANGE || n == 0 || n > 2 ||
	    (p[0] != '\r' && p[0] != '\n'))
		return n;
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
	if (status == 206 && s3_range_total_is_zero(x->h)) {
		x->done_early = true;
		return 0;
	}
	return n;
}

static size_t s3_on_read(char *p, size_t size, size_t nmemb, void *arg)
{
	struct s3_xfer *x = arg;
	const struct s3_req *r = x->r;
	uint64_t left = r->body_len - x->sent;
	size_t n = size * nmemb;
	ssize_t got;

	if (n > left)
		n = (size_t)left;
	if (n == 0)
		return 0;
	if (r->body) {
		memcpy(p, (const char *)r->body + x->sent, n);
		x->sent += n;
		return n;
	}
	got = store_pread_full(r->body_fd, p, n, r->body_off + x->sent);
	if (got < 0 || (size_t)got < n) {
		/* The file shrank under us, or the disk failed. */
		x->err = got < 0 ? (int)got : -EIO;
		return CURL_READFUNC_ABORT;
	}
	x->sent += n;
	return n;
}

static int s3_on_seek(void *arg, curl_off_t off, int origin)
{
	struct s3_xfer *x = arg;

	if (origin != SEEK_SET || off < 0 || (uint64_t)off > x->r->body_len)
		return CURL_SEEKFUNC_CANTSEEK;
	x->sent = (uint64_t)off;
	return CURL_SEEKFUNC_OK;
}

/* The URI path (encoded) and host of a request, by addressing style. */
static void s3_target(struct s3_client *c, const struct s3_req *r,
		      struct s3_buf *uri, struct s3_buf *host)
{
	if (c->path_style) {
		s3_buf_add(uri, "/", 1);
		s3_uri_encode(uri, c->bucket, strlen(c->bucket), false);
		if (r->key) {
			s3_buf_add(uri, "/", 1);
			s3_uri_encode(uri, r->key, strlen(r->key), true);
		}
		s3_buf_adds(host, c->hostport);
	} else {
		s3_buf_add(uri, "/", 1);
		if (r->key)
			s3_uri_encode(uri, r->key, strlen(r->key), true);
		s3_buf_addf(host, "%s.%s", c->bucket, c->hostport);
	}
}

/* Everything about a request that stays the same across attempts. */
struct s3_prep {
	struct s3_buf uri;
	struct s3_buf host;
	struct s3_buf url;
	char payload_hash[65];
};

static int s3_prepare(struct s3_client *c, const struct s3_req *r,
		      struct s3_prep *p)
{
	int rc;

	s3_target(c, r, &p->uri, &p->host);
	s3_buf_addf(&p->url, "%s://%s%s", c->scheme, p->host.p ? p->host.p : "",
		    p->uri.p ? p->uri.p : "");
	if (r->nquery) {
		s3_buf_add(&p->url, "?", 1);
		s3_canonical_query(&p->url, r->query, r->nquery);
	}
	rc = p->uri.err ? p->uri.err : p->host.err ? p->host.err : p->url.err;
	if (rc < 0)
		return rc;
	/* A file body is streamed, so its hash cannot lead the request. */
	if (r->body_len && !r->body)
		snprintf(p->payload_hash, sizeof(p->payload_hash), "%s",
			 S3_UNSIGNED_PAYLOAD);
	else if (r->body_len)
		return s3_sha256_hex(r->body, r->body_len, p->payload_hash);
	else
		snprintf(p->payload_hash, sizeof(p->payload_hash), "%s",
			 S3_EMPTY_SHA256);
	return 0;
}

static void s3_prep_free(struct s3_prep *p)
{
	s3_buf_free(&p->url);
	s3_buf_free(&p->host);
	s3_buf_free(&p->uri);
}

static int s3_add_line(struct curl_slist **list, const char *line)
{
	struct curl_slist *l;

	l = curl_slist_append(*list, line);
	if (!l)
		return -ENOMEM;
	*list = l;
	return 0;
}

static int s3_add_header(struct curl_slist **list, struct s3_buf *line,
			 const char *name, const char *value)
{
	s3_buf_reset(line);
	s3_buf_addf(line, "%s: %s", name, value);
	if (line->err)
		return line->err;
	return s3_add_line(list, line->p);
}

/*
 * Sign the request as of now and build its header list.  Everything we
 * send that the server could act on is signed; Expect and Content-Type
 * are only cleared (curl would add them otherwise).
 */
static int s3_headers(struct s3_client *c, const struct s3_req *r,
		      const struct s3_prep *p, struct curl_slist **list)
{
	struct s3_buf authz = { 0 };
	struct s3_buf line = { 0 };
	struct s3_kv h[10];
	struct s3_sigv4 sv;
	char amz_date[17];
	char sig[65];
	struct tm tm;
	time_t now;
	size_t nh = 0;
	size_t i;
	int rc;

	now = time(NULL);
	gmtime_r(&now, &tm);
	strftime(amz_date, sizeof(amz_date), "%Y%m%dT%H%M%SZ", &tm);
	h[nh++] = (struct s3_kv){ "host", p->host.p };
	h[nh++] = (struct s3_kv){ "x-amz-content-sha256", p->payload_hash };
	h[nh++] = (struct s3_kv){ "x-amz-date", amz_date };
	if (c->token)
		h[nh++] = (struct s3_kv){ "x-amz-security-token", c->token };
	if (r->range)
		h[nh++] = (struct s3_kv){ "range", r->range };
	if (r->if_match)
		h[nh++] = (struct s3_kv){ "if-match", r->if_match };
	if (r->if_none_match)
		h[nh++] = (struct s3_kv){ "if-none-match", r->if_none_match };
	if (r->writer)
		h[nh++] = (struct s3_kv){ "x-amz-meta-mlfs-writer", r->writer };
	if (r->content_type)
		h[nh++] = (struct s3_kv){ "content-type", r->content_type };
	for (i = 0; i < nh; i++) {
		rc = s3_add_header(list, &line, h[i].name, h[i].value);
		if (rc < 0)
			goto out;
	}
	if (c->access_key[0]) {
		sv = (struct s3_sigv4){
			.method = r->method,
			.uri = p->uri.p,
			.query = r->query,
			.nquery = r->nquery,
			.headers = h,
			.nheaders = nh,
			.payload_hash = p->payload_hash,
			.amz_date = amz_date,
			.region = c->region,
			.service = "s3",
			.access_key = c->access_key,
			.secret_key = c->secret_key,
		};
		rc = s3_sigv4_sign(&sv, sig, &authz);
		if (rc < 0)
			goto out;
		rc = s3_add_header(list, &line, "Authorization", authz.p);
		if (rc < 0)
			goto out;
	}
	/* "Name:" with no value removes a header curl would add. */
	rc = s3_add_line(list, "Expect:");
	if (rc == 0 && !r->content_type)
		rc = s3_add_line(list, "Content-Type:");
	if (rc == 0)
		rc = s3_add_line(list, "Accept:");
out:
	explicit_bzero(sig, sizeof(sig));
	s3_buf_free(&line);
	s3_buf_free(&authz);
	return rc;
}

static void s3_setopt_method(CURL *h, const struct s3_req *r)
{
	if (strcmp(r->method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (strcmp(r->method, "PUT") == 0) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE,
				 (curl_off_t)r->body_len);
	} else if (strcmp(r->method, "POST") == 0) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)r->body_len);
	} else if (strcmp(r->method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
	}
}

static void s3_resp_headers(CURL *h, struct s3_resp *resp)
{
	struct curl_header *hh;
	curl_off_t ft = -1;
	uint64_t len = 0;

	if (curl_easy_header(h, "ETag", 0, CURLH_HEADER, -1, &hh) ==
	    CURLHE_OK)
		snprintf(resp->etag, sizeof(resp->etag), "%s", hh->value);
	if (s3_header_u64(h, "Content-Length", &len) == 0) {
		resp->length = len;
		resp->has_length = true;
	}
	curl_easy_getinfo(h, CURLINFO_FILETIME_T, &ft);
	resp->mtime = ft >= 0 ? (int64_t)ft : 0;
	if (curl_easy_header(h, "x-amz-meta-mlfs-writer", 0, CURLH_HEADER, -1,
			     &hh) == CURLHE_OK)
		snprintf(resp->writer, sizeof(resp->writer), "%s", hh->value);
	/* S3 names the bucket's region when a request went to the wrong
	 * one: the commonest mistake, worth saying in the log. */
	if (resp->status >= 300 &&
	    curl_easy_header(h, "x-amz-bucket-region", 0, CURLH_HEADER, -1,
			     &hh) == CURLHE_OK)
		snprintf(resp->region, sizeof(resp->region), "%s", hh->value);
}

/* Seconds a transfer of r may go without progress. */
static long s3_stall_s(const struct s3_client *c, const struct s3_req *r)
{
	if (r->patient && c->low_speed_time_s < S3_PATIENT_STALL_S)
		return S3_PATIENT_STALL_S;
	return c->low_speed_time_s;
}

/* One attempt; *cc gets curl's result.  Returns our own failures only. */
static int s3_attempt(struct s3_client *c, CURL *h, const struct s3_req *r,
		      const struct s3_prep *p, struct s3_resp *resp,
		      CURLcode *cc, char *errbuf)
{
	struct curl_slist *list = NULL;
	struct s3_xfer x = {
		.r = r,
		.resp = resp,
		.h = h,
		.errbody = { .max = S3_ERRBODY_MAX },
		.left = UINT64_MAX,
	};
	const char *v;
	size_t vlen;
	const char *pos;
	int rc;

	*cc = CURLE_OK;
	resp->status = 0;
	resp->etag[0] = '\0';
	resp->writer[0] = '\0';
	resp->length = 0;
	resp->has_length = false;
	resp->mtime = 0;
	resp->got = 0;
	resp->code[0] = '\0';
	resp->region[0] = '\0';
	if (r->sink == S3_SINK_BUF)
		s3_buf_reset(r->buf);
	rc = s3_headers(c, r, p, &list);
	if (rc < 0)
		goto out;
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, p->url.p);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, c->low_speed_limit);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, s3_stall_s(c, r));
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_FILETIME, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "mlfs/" "0.1");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s3_on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, s3_on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
	curl_easy_setopt(h, CURLOPT_READFUNCTION, s3_on_read);
	curl_easy_setopt(h, CURLOPT_READDATA, &x);
	curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, s3_on_seek);
	curl_easy_setopt(h, CURLOPT_SEEKDATA, &x);
	/* Bigger buffers than curl's 16 KiB: fewer callbacks and syscalls
	 * on the multi-megabyte transfers the block cache makes. */
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, S3_RECV_BUFFER);
	if (r->body_len)
		curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, S3_SEND_BUFFER);
	s3_setopt_method(h, r);
	errbuf[0] = '\0';
	*cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
	if (x.done_early && *cc == CURLE_WRITE_ERROR)
		*cc = CURLE_OK;
	if (x.err) {
		rc = x.err;
		goto out;
	}
	if (*cc != CURLE_OK)
		goto out;
	s3_resp_headers(h, resp);
	/* A 200 can still carry an error (CompleteMultipartUpload). */
	if (r->body_may_be_error && resp->status == 200 && r->buf &&
	    r->buf->p && strstr(r->buf->p, "<Error>")) {
		pos = r->buf->p;
		if (s3_xml_find(&pos, r->buf->p + r->buf->len, "Code", &v,
				&vlen))
			snprintf(resp->code, sizeof(resp->code), "%.*s",
				 (int)vlen, v);
		resp->status = 500;
	}
	if (x.errbody.p) {
		pos = x.errbody.p;
		if (s3_xml_find(&pos, x.errbody.p + x.errbody.len, "Code", &v,
				&vlen))
			snprintf(resp->code, sizeof(resp->code), "%.*s",
				 (int)vlen, v);
	}
out:
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(list);
	s3_buf_free(&x.errbody);
	return rc;
}

static uint64_t s3_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Full jitter: uniform in [0, min(cap, base * 2^(try - 1))]. */
static unsigned s3_backoff_ms(struct s3_client *c, unsigned try)
{
	uint64_t ceil = c->retry_base_ms;
	uint64_t x;

	while (--try && ceil < S3_BACKOFF_CAP_MS)
		ceil *= 2;
	if (ceil > S3_BACKOFF_CAP_MS)
		ceil = S3_BACKOFF_CAP_MS;
	/* xorshift64: statistical quality is irrelevant for jitter. */
	x = atomic_load(&c->rng);
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	atomic_store(&c->rng, x);
	return (unsigned)(x % (ceil + 1));
}

static void s3_sleep_ms(unsigned ms)
{
	struct timespec ts = {
		.tv_sec = ms / 1000,
		.tv_nsec = (long)(ms % 1000) * 1000000,
	};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* "HTTP 503 (SlowDown)" or curl's words, for a log line. */
static void s3_describe(char *out, size_t outlen, CURLcode cc,
			const struct s3_resp *resp, const char *errbuf)
{
	if (cc != CURLE_OK)
		snprintf(out, outlen, "%s", errbuf[0] ? errbuf :
			 curl_easy_strerror(cc));
	else if (resp->code[0])
		snprintf(out, outlen, "HTTP %ld (%s)%s%s", resp->status,
			 resp->code,
			 resp->region[0] ? ", the bucket is in " : "",
			 resp->region);
	else
		snprintf(out, outlen, "HTTP %ld%s%s", resp->status,
			 resp->region[0] ? ", the bucket is in " : "",
			 resp->region);
}

/* Expected answers that callers handle: no log line for them. */
static bool s3_is_quiet(long status)
{
	return status == 404 || status == 412 || status == 416;
}

/*
 * Whether another attempt fits: tries left, and the pause ending within
 * the budget.  After a stall, the next attempt may stall as long again,
 * so it must fit whole: a server that stopped answering fails a request
 * within about the budget, not the budget plus one more stall.
 */
static bool s3_has_time(struct s3_client *c, const struct s3_req *r,
			unsigned try, uint64_t start, unsigned pause_ms,
			CURLcode cc)
{
	uint64_t need = pause_ms;

	if (try >= c->max_tries)
		return false;
	if (cc == CURLE_OPERATION_TIMEDOUT)
		need += (uint64_t)s3_stall_s(c, r) * 1000;
	return s3_now_ms() - start + need <= c->retry_budget_ms;
}

/* What every client of the process sent (.mlfs/metrics.prom). */
static _Atomic uint64_t n_requests, n_retries, n_failed;

void store_s3_counters(uint64_t *requests, uint64_t *retries,
		       uint64_t *failed)
{
	*requests = atomic_load(&n_requests);
	*retries = atomic_load(&n_retries);
	*failed = atomic_load(&n_failed);
}

int s3_request(struct s3_client *c, const struct s3_req *r,
	       struct s3_resp *resp)
{
	char errbuf[CURL_ERROR_SIZE];
	struct s3_prep p = { 0 };
	char what[CURL_ERROR_SIZE + 80];
	uint64_t start;
	unsigned try;
	unsigned ms;
	CURLcode cc;
	CURL *h;
	int rc;

	memset(resp, 0, sizeof(*resp));
	rc = s3_prepare(c, r, &p);
	if (rc < 0)
		goto out_free_prep;
	h = s3_handle_get(c);
	if (!h) {
		rc = -ENOMEM;
		goto out_free_prep;
	}
	start = s3_now_ms();
	atomic_fetch_add(&n_requests, 1);
	for (try = 1;; try++) {
		resp->tries = try;
		if (try > 1)
			atomic_fetch_add(&n_retries, 1);
		rc = s3_attempt(c, h, r, &p, resp, &cc, errbuf);
		if (rc < 0)
			goto out_put_handle;	/* ours, not the server's */
		rc = s3_errno(cc, resp->status);
		if (rc == 0 || !s3_is_retryable(cc, resp->status, resp->code))
			break;
		s3_describe(what, sizeof(what), cc, resp, errbuf);
		ms = s3_backoff_ms(c, try);
		if (!s3_has_time(c, r, try, start, ms, cc)) {
			s3_client_log(c, "s3: %s %.*s: %s, giving up after %u tries",
				      r->method, S3_LOG_KEY_MAX,
				      r->key ? r->key : c->bucket, what, try);
			goto out_put_handle;
		}
		s3_client_log(c, "s3: %s %.*s: %s, retry %u of %u in %u ms",
			      r->method, S3_LOG_KEY_MAX,
			      r->key ? r->key : c->bucket, what, try + 1,
			      c->max_tries, ms);
		s3_sleep_ms(ms);
	}
	if (rc < 0 && !s3_is_quiet(resp->status))
		atomic_fetch_add(&n_failed, 1);
	if (rc < 0 && !s3_is_quiet(resp->status)) {
		s3_describe(what, sizeof(what), cc, resp, errbuf);
		s3_client_log(c, "s3: %s %.*s: %s", r->method, S3_LOG_KEY_MAX,
			      r->key ? r->key : c->bucket, what);
	}
out_put_handle:
	s3_handle_put(c, h);
out_free_prep:
	s3_prep_free(&p);
	return rc;
}

bool s3_xml_find(const char **pos, const char *end, const char *tag,
		 const char **val, size_t *vlen)
{
	char open[72];
	char close[72];
	size_t ol;
	size_t cl;
	const char *a;
	const char *b;

	if (strlen(tag) > 64 || *pos >= end)
		return false;
	ol = (size_t)sprintf(open, "<%s>", tag);
	cl = (size_t)sprintf(close, "</%s>", tag);
	a = memmem(*pos, (size_t)(end - *pos), open, ol);
	if (!a)
		return false;
	a += ol;
	b = memmem(a, (size_t)(end - a), close, cl);
	if (!b)
		return false;
	*val = a;
	*vlen = (size_t)(b - a);
	*pos = b + cl;
	return true;
}

static void s3_utf8_put(struct s3_buf *b, unsigned long cp)
{
	char u[4];

	if (cp < 0x80) {
		u[0] = (char)cp;
		s3_buf_add(b, u, 1);
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3f));
		s3_buf_add(b, u, 2);
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		s3_buf_add(b, u, 3);
	} else {
		u[0] = (char)(0xf0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		s3_buf_add(b, u, 4);
	}
}

/* One entity at v (just past '&'), at most n bytes; its length or 0. */
static size_t s3_xml_entity(struct s3_buf *b, const char *v, size_t n)
{
	static const struct {
		const char *name;
		char c;
	} named[] = {
		{ "amp;", '&' }, { "lt;", '<' }, { "gt;", '>' },
		{ "quot;", '"' }, { "apos;", '\'' },
	};
	unsigned long cp = 0;
	size_t i;
	size_t l;
	int base = 10;
	int d;

	for (i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
		l = strlen(named[i].name);
		if (n >= l && memcmp(v, named[i].name, l) == 0) {
			s3_buf_add(b, &named[i].c, 1);
			return l;
		}
	}
	if (n < 3 || v[0] != '#')
		return 0;
	i = 1;
	if (v[1] == 'x' || v[1] == 'X') {
		base = 16;
		i = 2;
	}
	l = i;
	for (; i < n && i < l + 8 && v[i] != ';'; i++) {
		if (v[i] >= '0' && v[i] <= '9')
			d = v[i] - '0';
		else if (base == 16 && v[i] >= 'a' && v[i] <= 'f')
			d = v[i] - 'a' + 10;
		else if (base == 16 && v[i] >= 'A' && v[i] <= 'F')
			d = v[i] - 'A' + 10;
		else
			return 0;
		cp = cp * (unsigned long)base + (unsigned long)d;
	}
	if (i == l || i >= n || v[i] != ';' || cp == 0 || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	s3_utf8_put(b, cp);
	return i + 1;
}

int s3_xml_decode(struct s3_buf *b, const char *v, size_t n)
{
	const char *amp;
	size_t used;

	while (n) {
		amp = memchr(v, '&', n);
		if (!amp) {
			s3_buf_add(b, v, n);
			break;
		}
		s3_buf_add(b, v, (size_t)(amp - v));
		n -= (size_t)(amp - v) + 1;
		v = amp + 1;
		used = s3_xml_entity(b, v, n);
		if (!used)
			return -EINVAL;
		v += used;
		n -= used;
	}
	return b->err;
}

void s3_xml_escape(struct s3_buf *b, const char *s)
{
	size_t n;

	while (*s) {
		n = strcspn(s, "&<>\"");
		s3_buf_add(b, s, n);
		s += n;
		switch (*s) {
		case '&':
			s3_buf_adds(b, "&amp;");
			break;
		case '<':
			s3_buf_adds(b, "&lt;");
			break;
		case '>':
			s3_buf_adds(b, "&gt;");
			break;
		case '"':
			s3_buf_adds(b, "&quot;");
			break;
		default:
			return;
		}
		s++;
	}
}
