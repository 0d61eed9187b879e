/* SPDX-License-Identifier: MIT */
/*
 * Model bundles (bundle.h): written and read with libarchive in memory,
 * and the framing walk that finds where one written a piece at a time
 * ends.  Pure, but for binding libarchive at the first bundle.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>

#include "bundle.h"

#define BLOCK 512

/*
 * libarchive is bound at the first bundle, not when the program starts:
 * with what it needs (libxml2, ICU, liblzma, ...) it cost a fresh mount
 * about 20 ms from a cold page cache, for a feature most mounts never
 * use (systemd binds its optional libraries the same way).  The types
 * come from <archive.h>; LIBARCHIVE_SONAME is the ABI those declare.
 */
#define LIBARCHIVE_SONAME "libarchive.so.13"
#define ARCHIVE_FNS(X) \
	X(archive_entry_clear) \
	X(archive_entry_filetype) \
	X(archive_entry_free) \
	X(archive_entry_hardlink) \
	X(archive_entry_new) \
	X(archive_entry_pathname) \
	X(archive_entry_set_filetype) \
	X(archive_entry_set_mtime) \
	X(archive_entry_set_pathname) \
	X(archive_entry_set_perm) \
	X(archive_entry_set_size) \
	X(archive_entry_size) \
	X(archive_entry_size_is_set) \
	X(archive_entry_sparse_count) \
	X(archive_error_string) \
	X(archive_read_data) \
	X(archive_read_free) \
	X(archive_read_new) \
	X(archive_read_next_header) \
	X(archive_read_open_memory) \
	X(archive_read_support_filter_gzip) \
	X(archive_read_support_format_tar) \
	X(archive_write_add_filter_none) \
	X(archive_write_close) \
	X(archive_write_data) \
	X(archive_write_free) \
	X(archive_write_header) \
	X(archive_write_new) \
	X(archive_write_open_memory) \
	X(archive_write_set_bytes_in_last_block) \
	X(archive_write_set_bytes_per_block) \
	X(archive_write_set_format_ustar)

static struct {
#define FN_PTR(f) __typeof__(f) *f;
	ARCHIVE_FNS(FN_PTR)
#undef FN_PTR
} la;
static pthread_once_t la_once = PTHREAD_ONCE_INIT;
static char la_err[256]; /* why it could not be bound, or empty */

static void la_bind(void)
{
	void *h = dlopen(LIBARCHIVE_SONAME, RTLD_NOW | RTLD_LOCAL);
	const char *missing = NULL;

	if (!h) {
		snprintf(la_err, sizeof(la_err), "%s", dlerror());
		return;
	}
#define FN_BIND(f) \
	if (!(*(void **)&la.f = dlsym(h, #f)) && !missing) \
		missing = #f;
	ARCHIVE_FNS(FN_BIND)
#undef FN_BIND
	if (missing)
		snprintf(la_err, sizeof(la_err), "%s: no %s", LIBARCHIVE_SONAME,
			 missing);
}

/* libarchive, bound once; false (and la_err says why) if it cannot be. */
static bool la_ready(void)
{
	pthread_once(&la_once, la_bind);
	return la_err[0] == '\0';
}

#define BUNDLE_NAME(id, name, cap) [id] = name,
const char *const bundle_names[BUNDLE_NMEMBERS] = {
	BUNDLE_MEMBERS(BUNDLE_NAME)
};
#undef BUNDLE_NAME
#define BUNDLE_CAP(id, name, cap) [id] = cap,
const uint64_t bundle_caps[BUNDLE_NMEMBERS] = { BUNDLE_MEMBERS(BUNDLE_CAP) };
#undef BUNDLE_CAP

static uint64_t blocks(uint64_t n)
{
	return (n + BLOCK - 1) / BLOCK * BLOCK;
}

uint64_t bundle_size(const uint64_t len[BUNDLE_NMEMBERS])
{
	uint64_t total = 2 * BLOCK;

	for (int i = 0; i < BUNDLE_NMEMBERS; i++)
		total += BLOCK + blocks(len[i]);
	return total;
}

uint64_t bundle_max(void)
{
	return bundle_size(bundle_caps);
}

static int bad(char *msg, size_t msglen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int bad(char *msg, size_t msglen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (msg && msglen) {
		va_start(ap, fmt);
		vsnprintf(msg, msglen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* --- writing --- */

int bundle_write(const void *const data[BUNDLE_NMEMBERS],
		 const uint64_t len[BUNDLE_NMEMBERS], time_t mtime,
		 void **out, size_t *outlen, char *msg, size_t msglen)
{
	uint64_t size = bundle_size(len);
	struct archive_entry *e;
	struct archive *a;
	size_t used = 0;
	char *buf;
	int rc;

	*out = NULL;
	*outlen = 0;
	if (msg && msglen)
		msg[0] = '\0';
	if (!la_ready())
		return bad(msg, msglen, -EIO, "%s", la_err);
	e = la.archive_entry_new();
	a = la.archive_write_new();
	buf = size <= SIZE_MAX ? malloc((size_t)size) : NULL;
	if (!e || !a || !buf) {
		rc = bad(msg, msglen, -ENOMEM, "out of memory");
		goto out;
	}
	rc = -EIO;
	/* ustar, 512-byte blocks and no padding of the last record: the
	 * size is bundle_size's, so a getattr need not make the archive */
	if (la.archive_write_set_format_ustar(a) != ARCHIVE_OK ||
	    la.archive_write_add_filter_none(a) != ARCHIVE_OK ||
	    la.archive_write_set_bytes_per_block(a, BLOCK) != ARCHIVE_OK ||
	    la.archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    la.archive_write_open_memory(a, buf, (size_t)size, &used) !=
		    ARCHIVE_OK)
		goto out;
	for (int i = 0; i < BUNDLE_NMEMBERS; i++) {
		la.archive_entry_clear(e);
		la.archive_entry_set_pathname(e, bundle_names[i]);
		la.archive_entry_set_filetype(e, AE_IFREG);
		la.archive_entry_set_perm(e, 0444);
		la.archive_entry_set_size(e, (la_int64_t)len[i]);
		la.archive_entry_set_mtime(e, mtime, 0);
		if (la.archive_write_header(a, e) != ARCHIVE_OK ||
		    (len[i] && la.archive_write_data(a, data[i], (size_t)len[i]) !=
				       (la_ssize_t)len[i]))
			goto out;
	}
	if (la.archive_write_close(a) != ARCHIVE_OK)
		goto out;
	if (used != size) {
		rc = bad(msg, msglen, -EIO,
			 "libarchive wrote %zu bytes, not %llu", used,
			 (unsigned long long)size);
		goto out;
	}
	*out = buf;
	*outlen = used;
	buf = NULL;
	rc = 0;
out:
	if (rc == -EIO && msg && msglen && !msg[0])
		bad(msg, msglen, rc, "libarchive: %s",
		    la.archive_error_string(a) ? la.archive_error_string(a)
					       : "failed");
	la.archive_write_free(a);
	la.archive_entry_free(e);
	free(buf);
	return rc;
}

/* --- reading --- */

void bundle_free(struct bundle *b)
{
	for (int i = 0; i < BUNDLE_NMEMBERS; i++) {
		free(b->data[i]);
		b->data[i] = NULL;
		b->len[i] = 0;
	}
}

static bool has_dotdot(const char *p)
{
	for (;;) {
		if (p[0] == '.' && p[1] == '.' && (p[2] == '/' || !p[2]))
			return true;
		p = strchr(p, '/');
		if (!p)
			return false;
		p++;
	}
}

/* What is wrong with entry e's name and type, or NULL. */
static const char *entry_wrong(struct archive_entry *e, const char *name)
{
	if (name[0] == '/')
		return "an absolute path";
	if (has_dotdot(name))
		return "a path with \"..\"";
	if (la.archive_entry_hardlink(e))
		return "a hard link";
	if (la.archive_entry_sparse_count(e) > 0)
		return "a sparse file"; /* holes: far more than its bytes */
	switch (la.archive_entry_filetype(e)) {
	case AE_IFREG:
		return NULL;
	case AE_IFLNK:
		return "a symbolic link";
	case AE_IFDIR:
		return "a directory";
	case AE_IFCHR:
	case AE_IFBLK:
		return "a device";
	default:
		return "not a regular file";
	}
}

static int member_index(const char *name)
{
	for (int i = 0; i < BUNDLE_NMEMBERS; i++)
		if (strcmp(name, bundle_names[i]) == 0)
			return i;
	return -1;
}

/* Member i's data, exactly its announced size. */
static int member_read(struct archive *a, struct archive_entry *e, int i,
		       struct bundle *b, char *msg, size_t msglen)
{
	la_int64_t size = la.archive_entry_size(e);
	char *buf;
	size_t got = 0;

	if (!la.archive_entry_size_is_set(e) || size < 0)
		return bad(msg, msglen, -EINVAL, "member %s: no size",
			   bundle_names[i]);
	if ((uint64_t)size > bundle_caps[i])
		return bad(msg, msglen, -EINVAL,
			   "member %s: %lld bytes, over the cap of %llu",
			   bundle_names[i], (long long)size,
			   (unsigned long long)bundle_caps[i]);
	buf = malloc((size_t)size + 1);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		la_ssize_t n = la.archive_read_data(a, buf + got,
						 (size_t)size + 1 - got);

		if (n < 0) {
			free(buf);
			return bad(msg, msglen, -EINVAL, "member %s: %s",
				   bundle_names[i], la.archive_error_string(a));
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > (size_t)size) {
			free(buf);
			return bad(msg, msglen, -EINVAL,
				   "member %s: more data than its size",
				   bundle_names[i]);
		}
	}
	if (got != (size_t)size) {
		free(buf);
		return bad(msg, msglen, -EINVAL, "member %s: truncated",
			   bundle_names[i]);
	}
	buf[got] = '\0';
	b->data[i] = buf;
	b->len[i] = got;
	return 0;
}

int bundle_read(const void *buf, size_t len, struct bundle *b, char *msg,
		size_t msglen)
{
	struct archive *a;
	struct archive_entry *e;
	bool seen[BUNDLE_NMEMBERS] = { false };
	int rc = 0, r;

	memset(b, 0, sizeof(*b));
	if (msg && msglen)
		msg[0] = '\0';
	if (!la_ready())
		return bad(msg, msglen, -EIO, "%s", la_err);
	a = la.archive_read_new();
	if (!a)
		return -ENOMEM;
	/*
	 * tar and gzip only, each compiled in: not _all (some run external
	 * programs such as lrzip), and a gzip filter that would fall back to
	 * the gzip program says so with a warning, refused here.
	 */
	if (la.archive_read_support_format_tar(a) != ARCHIVE_OK ||
	    la.archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
	    la.archive_read_open_memory(a, buf, len) != ARCHIVE_OK) {
		rc = bad(msg, msglen, -EINVAL, "not a tar archive: %s",
			 la.archive_error_string(a) ? la.archive_error_string(a)
						 : "unreadable");
		goto out;
	}
	while (rc == 0 && (r = la.archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		const char *name = la.archive_entry_pathname(e);
		const char *wrong;
		int i;

		if (!name || !name[0]) {
			rc = bad(msg, msglen, -EINVAL, "a member without a name");
			break;
		}
		wrong = entry_wrong(e, name);
		if (wrong) {
			rc = bad(msg, msglen, -EINVAL, "member %.200s: %s", name,
				 wrong);
			break;
		}
		i = member_index(name);
		if (i < 0) {
			rc = bad(msg, msglen, -EINVAL,
				 "member %.200s: unknown (a bundle holds "
				 "bundle.json, model, meta.json, metrics.json "
				 "and sample.csv)",
				 name);
			break;
		}
		if (seen[i]) {
			rc = bad(msg, msglen, -EINVAL, "member %s: given twice",
				 name);
			break;
		}
		seen[i] = true;
		rc = member_read(a, e, i, b, msg, msglen);
	}
	if (rc == 0 && r != ARCHIVE_EOF)
		rc = bad(msg, msglen, -EINVAL, "not a whole tar archive: %s",
			 la.archive_error_string(a) ? la.archive_error_string(a)
						 : "unreadable");
	for (int i = 0; rc == 0 && i < BUNDLE_NMEMBERS; i++)
		if (!seen[i])
			rc = bad(msg, msglen, -EINVAL, "no member %s",
				 bundle_names[i]);
out:
	la.archive_read_free(a);
	if (rc < 0)
		bundle_free(b);
	return rc;
}

/* --- where a bundle written piecewise ends --- */

/* An octal tar number field, or -1 (base-256 or garbage: not ours). */
static int64_t octal(const unsigned char *f, size_t n)
{
	int64_t v = 0;
	size_t i = 0;

	while (i < n && f[i] == ' ')
		i++;
	if (i == n || f[i] < '0' || f[i] > '7')
		return -1;
	for (; i < n && f[i] >= '0' && f[i] <= '7'; i++) {
		if (v > (INT64_MAX >> 3))
			return -1;
		v = v << 3 | (f[i] - '0');
	}
	for (; i < n; i++)
		if (f[i] != ' ' && f[i] != '\0')
			return -1;
	return v;
}

static bool zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* n bytes of tar; 1 at its end (*used: bytes of p it took). */
static int tar_feed(struct bundle_walk *w, const unsigned char *p, size_t n,
		    size_t *used, char *msg, size_t msglen)
{
	size_t at = 0;

	while (at < n) {
		if (w->tar < w->next) {
			uint64_t skip = w->next - w->tar;

			if (skip > n - at)
				skip = n - at;
			w->tar += skip;
			at += (size_t)skip;
			continue;
		}
		size_t take = BLOCK - w->hlen;

		if (take > n - at)
			take = n - at;
		memcpy(w->hdr + w->hlen, p + at, take);
		w->hlen += take;
		w->tar += take;
		at += take;
		if (w->hlen < BLOCK)
			break;
		w->hlen = 0;
		w->next = w->tar;
		if (zero(w->hdr, BLOCK)) {
			if (++w->zeros == 2) {
				*used = at;
				return 1;
			}
			continue;
		}
		w->zeros = 0;
		int64_t size = octal(w->hdr + 124, 12);

		if (size < 0)
			return bad(msg, msglen, -EINVAL,
				   "not a tar archive: a header at byte %llu "
				   "has no size",
				   (unsigned long long)(w->tar - BLOCK));
		w->next = w->tar + blocks((uint64_t)size);
		if (w->next > bundle_max())
			return bad(msg, msglen, -EFBIG,
				   "over the size cap of %llu bytes",
				   (unsigned long long)bundle_max());
	}
	*used = at;
	return 0;
}

void bundle_walk_end(struct bundle_walk *w)
{
	if (w->zlive)
		inflateEnd(&w->z);
	w->zlive = false;
}

int bundle_walk_feed(struct bundle_walk *w, const void *buf, size_t n,
		     size_t *keep, char *msg, size_t msglen)
{
	const unsigned char *p = buf;
	unsigned char out[16384];
	size_t used = 0;
	int rc;

	*keep = 0;
	if (w->done) {
		if (!zero(p, n))
			return bad(msg, msglen, -EINVAL,
				   "data after the end of the archive");
		w->in += n;
		return 1;
	}
	if (w->in == 0 && n && p[0] == 0x1f) {
		w->gz = true;
		if (inflateInit2(&w->z, 16 + MAX_WBITS) != Z_OK)
			return -ENOMEM;
		w->zlive = true;
	}
	if (!w->gz) {
		rc = tar_feed(w, p, n, &used, msg, msglen);
		w->in += used;
		*keep = used;
		if (rc == 1) {
			w->done = true;
			if (!zero(p + used, n - used))
				return bad(msg, msglen, -EINVAL,
					   "data after the end of the archive");
			w->in += n - used;
		}
		return rc;
	}
	/* gzip: inflate and walk what comes out, until the stream ends */
	w->z.next_in = (unsigned char *)p;
	w->z.avail_in = (uInt)n;
	do {
		int zr;
		size_t got;

		w->z.next_out = out;
		w->z.avail_out = sizeof(out);
		zr = inflate(&w->z, Z_NO_FLUSH);
		if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR)
			return bad(msg, msglen, -EINVAL, "gzip: %s",
				   w->z.msg ? w->z.msg : "corrupt data");
		got = sizeof(out) - w->z.avail_out;
		w->inflated += got;
		if (w->inflated > bundle_max())
			return bad(msg, msglen, -EFBIG,
				   "over the size cap of %llu bytes",
				   (unsigned long long)bundle_max());
		if (!w->tar_end && got) {
			rc = tar_feed(w, out, got, &used, msg, msglen);
			if (rc < 0)
				return rc;
			/* the rest is padding, then the gzip trailer */
			w->tar_end = rc == 1;
		}
		if (zr == Z_STREAM_END) {
			*keep = n - w->z.avail_in;
			w->in += *keep;
			bundle_walk_end(w);
			w->done = true;
			if (!zero(p + *keep, n - *keep))
				return bad(msg, msglen, -EINVAL,
					   "data after the end of the archive");
			w->in += n - *keep;
			return 1;
		}
		if (zr == Z_BUF_ERROR && w->z.avail_in == 0)
			break;
	} while (w->z.avail_in > 0 || w->z.avail_out == 0);
	*keep = n;
	w->in += n;
	return 0;
}
