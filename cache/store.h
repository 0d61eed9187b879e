/* SPDX-License-Identifier: MIT */
/*
 * The object store interface: where the truth of an mlfs platform lives.
 *
 * A store maps keys (relative, '/'-separated, no leading '/', no "." or
 * ".." components) to immutable byte strings.  Backends: a local
 * directory (store_local.c, the embedded default), memory (store_mem.c,
 * for tests) and, later, S3.  Layers (the block cache, the fault-injecting
 * test store) take a store and return a new store calling through to it.
 *
 * Every op is thread-safe.  Ops return 0 or a negative errno; ops that
 * produce a size return ssize_t (bytes, or -errno).
 */
#ifndef MLFS_CACHE_STORE_H
#define MLFS_CACHE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct store;

struct store_stat {
	uint64_t size;  /* bytes */
	int64_t mtime;  /* seconds since the epoch */
	char etag[80];  /* the backend's entity tag ("" if it has none) */
};

/*
 * Called once per key by list(); key is borrowed for the call.  A non-zero
 * return stops the listing and becomes list()'s result.
 */
typedef int (*store_list_fn)(void *arg, const char *key,
			     const struct store_stat *st);
/*
 * Called by get_stream() with the next n bytes of a range, at object
 * offset off, borrowed for the call.  After a failure the store may
 * start again, handing bytes at offsets already seen: the sink skips
 * what it has.  A negative return stops the read and becomes its result.
 */
typedef int (*store_sink_fn)(void *arg, uint64_t off, const void *p,
			     size_t n);

struct store_ops {
	/*
	 * get: read the whole object into a malloc'd buffer (*buf, *len),
	 * NUL-terminated for convenience (the NUL is not counted).  Objects
	 * larger than max bytes give -EFBIG.  -ENOENT if missing.
	 */
	int (*get)(struct store *s, const char *key, size_t max, char **buf,
		   size_t *len);
	/* get_range: up to len bytes at off; 0 at or past the end. */
	ssize_t (*get_range)(struct store *s, const char *key, void *buf,
			     size_t len, uint64_t off);
	/*
	 * get_stream: get_range of a long range, handed to fn piece by
	 * piece as it arrives (one request to a remote store): the bytes
	 * delivered (fewer than len only at the end), or -errno.  NULL:
	 * store_get_stream() reads the range by get_range.
	 */
	ssize_t (*get_stream)(struct store *s, const char *key, uint64_t off,
			      uint64_t len, store_sink_fn fn, void *arg);
	/*
	 * put: store buf atomically and durably: when put returns 0 the
	 * object is complete and survives a crash; a reader never sees a
	 * partial object.  Overwrites an existing key.
	 */
	int (*put)(struct store *s, const char *key, const void *buf,
		   size_t len);
	/*
	 * put_file: like put, taking the content from the local file at
	 * path, which the store may consume (rename) on success; on failure
	 * the file is left where it was.
	 */
	int (*put_file)(struct store *s, const char *key, const char *path);
	/*
	 * create: put, for a key this writer claims as new (a version's
	 * manifest).  A store several writers share refuses to replace an
	 * object another writer made: -EEXIST, nothing written (S3: a
	 * conditional create).  A layer that defers the write (the block
	 * cache) may accept it and meet the refusal at export.  NULL: the
	 * store has one writer, and create is put.
	 */
	int (*create)(struct store *s, const char *key, const void *buf,
		      size_t len);
	int (*head)(struct store *s, const char *key, struct store_stat *st);
	/*
	 * list: every key starting with prefix (recursively), in no
	 * particular order.  Temporary files of in-flight puts never appear.
	 */
	int (*list)(struct store *s, const char *prefix, store_list_fn fn,
		    void *arg);
	/* del: remove a key; -ENOENT if missing. */
	int (*del)(struct store *s, const char *key);
	/*
	 * open_fd: a read-only file descriptor on the object's bytes when the
	 * backend keeps them in a local file (the caller closes it), or
	 * -EOPNOTSUPP.  Lets the filesystem serve local content at disk speed.
	 */
	int (*open_fd)(struct store *s, const char *key);
	/*
	 * tmp_path: a fresh path on the store's local disk (same file system
	 * as its objects when there is one) for staging content before
	 * put_file; written into out (size outlen).
	 */
	int (*tmp_path)(struct store *s, char *out, size_t outlen);
	void (*close)(struct store *s);
};

struct store {
	const struct store_ops *ops;
	const char *name; /* for messages: "local:/path", "mem" */
};

/* Thin wrappers so callers read store_get(s, ...) */
int store_get(struct store *s, const char *key, size_t max, char **buf,
	      size_t *len);
ssize_t store_get_range(struct store *s, const char *key, void *buf,
			size_t len, uint64_t off);
ssize_t store_get_stream(struct store *s, const char *key, uint64_t off,
			 uint64_t len, store_sink_fn fn, void *arg);
int store_put(struct store *s, const char *key, const void *buf, size_t len);
int store_put_file(struct store *s, const char *key, const char *path);
int store_create(struct store *s, const char *key, const void *buf,
		 size_t len);
int store_head(struct store *s, const char *key, struct store_stat *st);
int store_list(struct store *s, const char *prefix, store_list_fn fn,
	       void *arg);
int store_del(struct store *s, const char *key);
int store_open_fd(struct store *s, const char *key);
int store_tmp_path(struct store *s, char *out, size_t outlen);
/* store_close(NULL) does nothing. */
void store_close(struct store *s);

/*
 * store_write_full: write all len bytes to fd, at off (off < 0: at the
 * file position), retrying short writes and EINTR, 64 KiB a call (big
 * writes into new page cache were slow, store.c).  0 or -errno (-EIO for
 * a write that makes no progress).  For the layers above too: a job's
 * output, a dataset's staging file, a fetched range.
 */
int store_write_full(int fd, const void *buf, size_t len, int64_t off);

/*
 * store_append_only: set (on) or clear the inode's append-only attribute
 * (FS_APPEND_FL; CAP_LINUX_IMMUTABLE).  While it is set, no descriptor of
 * any process can change a byte already written: writes append, and
 * O_APPEND cannot be cleared, nor the file truncated, mapped shared, or
 * written with RWF_NOAPPEND; nor can it be renamed or unlinked.  0, or
 * -errno (-ENOTTY, -EOPNOTSUPP: the file system has no such attribute).
 */
int store_append_only(int fd, bool on);

/*
 * store_unlinkat: unlinkat(dirfd, name, 0), and for a file left
 * append-only (by a daemon that stopped while a job wrote it) the
 * attribute cleared first.  0 or -errno.
 */
int store_unlinkat(int dirfd, const char *name);

/* True if key is a valid store key (see the top of this file). */
bool store_key_is_valid(const char *key);

/*
 * store_local_open: open (creating subfolders as needed) a store in the
 * existing directory dir.  -ENOENT if dir is missing, -ENOTDIR, -EACCES if
 * it is not writable.  *out is NULL on failure.
 */
int store_local_open(const char *dir, struct store **out);

/* store_mem_open: an empty in-memory store, for tests. */
int store_mem_open(struct store **out);

/*
 * store_faulty_open: wrap inner (which the new store owns and closes) so
 * that the fail_at-th call (1-based, counting every op except close) fails
 * with -err, and every other call passes through.  fail_at 0 never fails.
 */
int store_faulty_open(struct store *inner, unsigned fail_at, int err,
		      struct store **out);
/* Number of calls a faulty store has seen. */
unsigned store_faulty_calls(struct store *s);
/*
 * get_stream of a faulty store hands the bytes on in pieces of a few KiB
 * that fall anywhere in a block.
 * From now on every get_stream of faulty store s hands over at most bytes
 * of its range, then fails with the store's errno, as a connection lost
 * mid-body would after its retries (0: whole streams again).
 */
void store_faulty_cut_streams(struct store *s, uint64_t bytes);

/*
 * Options of an S3 store (s3://bucket/prefix).  Numbers left 0 take the
 * default named beside them.  The strings are borrowed for the call to
 * store_s3_open(), which copies what it keeps.  The credentials are held
 * in the struct itself so that store_s3_creds_from_env() can fill them;
 * wipe the struct (explicit_bzero) once the store is open.
 */
struct store_s3_opts {
	const char *bucket;		/* required */
	const char *prefix;		/* key prefix, no '/' at either end;
					 * NULL or "": the whole bucket */
	const char *endpoint;		/* "http://127.0.0.1:9000"; NULL:
					 * https://s3.<region>.amazonaws.com */
	const char *staging_dir;	/* tmp_path()'s folder, created if
					 * missing; NULL: $TMPDIR or /tmp */
	bool path_style;		/* http://host/bucket/key rather than
					 * http://bucket.host/key */
	bool probe;			/* open() lists one key to check the
					 * endpoint, bucket and credentials */
	char region[64];		/* "": us-east-1 */
	char access_key[128];		/* "": unsigned (anonymous) requests */
	char secret_key[128];		/* never logged */
	char session_token[4096];	/* "" unless temporary credentials */
	unsigned connect_timeout_ms;	/* 5000 */
	unsigned low_speed_time_s;	/* a transfer below low_speed_limit
					 * for this long fails: 5 */
	unsigned low_speed_limit;	/* bytes per second: 1024 */
	unsigned max_tries;		/* attempts per request: 5 */
	unsigned retry_base_ms;		/* first backoff ceiling: 200 */
	unsigned retry_budget_ms;	/* retries end within: 20000 */
	uint64_t part_size;		/* multipart part bytes: 16 MiB;
					 * at least 5 MiB (S3's minimum) */
	uint64_t multipart_threshold;	/* bigger puts use multipart: 32 MiB */
	unsigned upload_parallel;	/* parts in flight per upload: 4 */
	unsigned list_max_keys;		/* keys per listing page: 1000 */
	/* Stamped on every object put as x-amz-meta-mlfs-writer:
	 * "<mount id>/<generation>" of the lease (remote.c); create()
	 * replaces only objects with the same mount id.  NULL: none. */
	const char *writer;
	/* Retries and failures, one line each, never with credentials;
	 * called from any thread.  NULL: silent. */
	void (*log)(void *arg, const char *msg);
	void *log_arg;
};

/*
 * store_s3_open: a store on s3://o->bucket/o->prefix.  Keys are relative
 * to the prefix.  Returns 0, -EINVAL for bad options (the reason goes to
 * o->log), -ENOMEM, or with o->probe what the probe met: -EACCES (bad
 * credentials), -ENOENT (no such bucket), -EHOSTUNREACH (unknown host),
 * -EIO (unreachable or failing after retries).  *out is NULL on failure.
 * open_fd is not supported (-EOPNOTSUPP); put_file unlinks the file on
 * success.  A failing or silent server fails an op within about
 * retry_budget_ms (-EIO); a transfer that keeps moving is never cut
 * short.  main() must call curl_global_init() before any thread.
 */
int store_s3_open(const struct store_s3_opts *o, struct store **out);
/*
 * store_s3_counters: S3 requests this process made (each once, however
 * many attempts), attempts after the first, and requests that failed
 * (a 404 or 412 an answer expects is no failure).
 */
void store_s3_counters(uint64_t *requests, uint64_t *retries,
		       uint64_t *failed);

/*
 * store_s3_creds_from_env: fill o's access_key, secret_key and
 * session_token from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
 * AWS_SESSION_TOKEN, or else from the profile AWS_PROFILE ("default") of
 * ~/.aws/credentials (or AWS_SHARED_CREDENTIALS_FILE); and o->region, if
 * empty, from AWS_REGION, AWS_DEFAULT_REGION or the profile's region in
 * ~/.aws/config (or AWS_CONFIG_FILE).  Returns 0, -ENOENT if no
 * credentials were found, -EINVAL for incomplete or oversized ones,
 * -ENOMEM; on failure msg (size msglen) says why, naming variables and
 * files but never a secret.
 */
int store_s3_creds_from_env(struct store_s3_opts *o, char *msg,
			    size_t msglen);

/*
 * store_s3_get_range_if: get_range of an S3 store, answered only while
 * the object's ETag is still etag (If-Match); -ESTALE once it changed.
 * For pinning a cached object to the version it was first read at.
 */
/*
 * store_s3_get_tagged: get of an S3 store that also gives the object's
 * ETag (etaglen bytes), for a later store_s3_put_if.
 */
int store_s3_get_tagged(struct store *s, const char *key, size_t max,
			char **buf, size_t *len, char *etag, size_t etaglen);

/*
 * store_s3_put_if: a conditional put of an S3 store: with if_match, only
 * while the object's ETag is still if_match (-ESTALE if it changed,
 * -ENOENT if it is gone); with if_match NULL, only if the key does not
 * exist (-ESTALE if it does).  etag (etaglen bytes) gets the new ETag;
 * *tries the attempts made (a retried write may have landed at its
 * first attempt and then failed its own condition).  For the lease.
 */
int store_s3_put_if(struct store *s, const char *key, const void *buf,
		    size_t len, const char *if_match, char *etag,
		    size_t etaglen, unsigned *tries);

ssize_t store_s3_get_range_if(struct store *s, const char *key,
			      const char *etag, void *buf, size_t len,
			      uint64_t off);

/*
 * store_s3_abort_uploads: abort every multipart upload under the store's
 * prefix initiated before `before` (seconds since the epoch), as
 * ListMultipartUploads lists them: the parts of an upload a crash cut
 * stay in the bucket (and are billed) until aborted.  An upload gone
 * meanwhile (completed, aborted) is not an error.  *n (may be NULL) gets
 * how many were aborted.  Returns 0, -EINVAL if s is not an S3 store,
 * -EOPNOTSUPP if the server does not list uploads (501), or the errno of
 * the listing or of the first abort that failed.
 */
int store_s3_abort_uploads(struct store *s, int64_t before, unsigned *n);

#endif
