/* SPDX-License-Identifier: MIT */
/*
 * The fault-injecting store, for tests: it wraps another store, counts
 * every call but close, and makes call number fail_at fail with the
 * chosen errno without reaching the inner store.  Tests loop fail_at
 * upward to run each error path of the code above the store.  The count
 * is atomic, so any thread may enter; which call of several concurrent
 * ones is "the n-th" is then up to the scheduler.  Its get_stream hands
 * bytes on in odd pieces, and can be cut part way
 * (store_faulty_cut_streams).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "store.h"

struct faulty {
	struct store base;		/* first: ops cast store to faulty */
	struct store *inner;		/* owned */
	unsigned fail_at;		/* 1-based call to fail; 0: none */
	int err;			/* positive errno to fail with */
	_Atomic unsigned calls;		/* calls seen so far */
	_Atomic uint64_t cut;		/* get_stream's bytes; 0: all */
};

/* get_stream's pieces, bytes: a prime, so they fall anywhere. */
#define FAULTY_PIECE 7919

/* A get_stream passed through, to be cut after cut bytes. */
struct faulty_stream {
	store_sink_fn fn;
	void *arg;
	uint64_t left;			/* bytes still to hand over */
	int err;			/* negative errno once cut */
};

static struct faulty *to_faulty(struct store *s)
{
	return (struct faulty *)s;
}

/* Count a call; true if this is the one to fail. */
static bool faulty_hit(struct faulty *f)
{
	unsigned n = atomic_fetch_add(&f->calls, 1) + 1;

	return n == f->fail_at;
}

static int faulty_get(struct store *s, const char *key, size_t max,
		      char **buf, size_t *len)
{
	struct faulty *f = to_faulty(s);

	if (faulty_hit(f)) {
		*buf = NULL;
		*len = 0;
		return -f->err;
	}
	return store_get(f->inner, key, max, buf, len);
}

static ssize_t faulty_get_range(struct store *s, const char *key, void *buf,
				size_t len, uint64_t off)
{
	struct faulty *f = to_faulty(s);

	if (faulty_hit(f))
		return -f->err;
	return store_get_range(f->inner, key, buf, len, off);
}

/*
 * Hands the bytes on in pieces of a few KiB, of sizes that fall anywhere
 * in a block, as a network's do; after x->left bytes, fails.
 */
static int faulty_sink(void *arg, uint64_t off, const void *p, size_t n)
{
	struct faulty_stream *x = arg;
	const char *s = p;
	size_t piece;
	int rc;

	while (n) {
		if (!x->left)
			return x->err;
		piece = n < FAULTY_PIECE ? n : FAULTY_PIECE;
		if (piece > x->left)
			piece = (size_t)x->left;
		rc = x->fn(x->arg, off, s, piece);
		if (rc < 0)
			return rc;
		x->left -= piece;
		off += piece;
		s += piece;
		n -= piece;
	}
	return 0;
}

static ssize_t faulty_get_stream(struct store *s, const char *key,
				 uint64_t off, uint64_t len,
				 store_sink_fn fn, void *arg)
{
	struct faulty *f = to_faulty(s);
	struct faulty_stream x = {
		.fn = fn, .arg = arg, .left = atomic_load(&f->cut),
		.err = -f->err,
	};

	if (faulty_hit(f))
		return -f->err;
	if (!x.left)
		x.left = UINT64_MAX;
	return store_get_stream(f->inner, key, off, len, faulty_sink, &x);
}

static int faulty_put(struct store *s, const char *key, const void *buf,
		      size_t len)
{
	struct faulty *f = to_faulty(s);

	if (faulty_hit(f))
		return -f->err;
	return store_put(f->inner, key, buf, len);
}

static int faulty_put_file(struct store *s, const char *key,
			   const char *path)
{
	struct faulty *f = to_faulty(s);

	if (faulty_hit(f))
		return -f->err;
	return store_put_file(f->inner, key, path);
}

static int faulty_create(struct store *s, const char *key, const void *buf,
			 size_t len)
{
	struct faulty *f = to_faulty(s);

	if (faulty_hit(f))
		return -f->err;
	return store_create(f->inner, key, buf, len);
}

static int faulty_head(struct store *s, const char *key,
		       struct store_stat *st)
{
	struct faulty *f = to_faulty(s);

	if (faulty_hit(f))
		return -f->err;
	return store_head(f->inner, key, st);
}

static int faulty_list(struct store *s, const char *prefix,
		       store_list_fn fn, void *arg)
{
	struct faulty *f = to_faulty(s);

	if (faulty_hit(f))
		return -f->err;
	return store_list(f->inner, prefix, fn, arg);
}

static int faulty_del(struct store *s, const char *key)
{
	struct faulty *f = to_faulty(s);

	if (faulty_hit(f))
		return -f->err;
	return store_del(f->inner, key);
}

static int faulty_open_fd(struct store *s, const char *key)
{
	struct faulty *f = to_faulty(s);

	if (faulty_hit(f))
		return -f->err;
	return store_open_fd(f->inner, key);
}

static int faulty_tmp_path(struct store *s, char *out, size_t outlen)
{
	struct faulty *f = to_faulty(s);

	if (faulty_hit(f))
		return -f->err;
	return store_tmp_path(f->inner, out, outlen);
}

static void faulty_close(struct store *s)
{
	struct faulty *f = to_faulty(s);

	store_close(f->inner);
	free(f);
}

static const struct store_ops faulty_ops = {
	.get = faulty_get,
	.get_range = faulty_get_range,
	.get_stream = faulty_get_stream,
	.put = faulty_put,
	.put_file = faulty_put_file,
	.create = faulty_create,
	.head = faulty_head,
	.list = faulty_list,
	.del = faulty_del,
	.open_fd = faulty_open_fd,
	.tmp_path = faulty_tmp_path,
	.close = faulty_close,
};

/*
 * On failure the new store does not exist, so inner stays the caller's
 * to close.
 */
int store_faulty_open(struct store *inner, unsigned fail_at, int err,
		      struct store **out)
{
	struct faulty *f;

	*out = NULL;
	if (!inner || err <= 0)
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->base.ops = &faulty_ops;
	f->base.name = "faulty";
	f->inner = inner;
	f->fail_at = fail_at;
	f->err = err;
	atomic_init(&f->calls, 0);
	*out = &f->base;
	return 0;
}

void store_faulty_cut_streams(struct store *s, uint64_t bytes)
{
	if (s && s->ops == &faulty_ops)
		atomic_store(&to_faulty(s)->cut, bytes);
}

unsigned store_faulty_calls(struct store *s)
{
	if (!s || s->ops != &faulty_ops)
		return 0;
	return atomic_load(&to_faulty(s)->calls);
}
