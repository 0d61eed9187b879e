/* SPDX-License-Identifier: MIT */
/*
 * bundle: the tar bundle_write makes is bundle_size bytes and reads back;
 * the framing walk finds its end however the bytes are cut, plain and
 * gzip'd, and refuses bytes after it; bundle_read refuses what a bundle
 * must not hold.  Crafted tars come from libarchive's writer here;
 * tests/integration/test_bundles.py crafts more with Python's tarfile.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>
#include <zlib.h>

#include "bundle.h"
#include "failalloc.h"
#include "tap.h"

static const char *const text[BUNDLE_NMEMBERS] = {
	"{\"bundle\": 1}", "MODELBYTES", "{}", "{\"accuracy\": 1}",
	"a,prediction\n1,x\n",
};

static int make(void **out, size_t *len, uint64_t *sizes)
{
	const void *data[BUNDLE_NMEMBERS];

	for (int i = 0; i < BUNDLE_NMEMBERS; i++) {
		data[i] = text[i];
		sizes[i] = strlen(text[i]);
	}
	return bundle_write(data, sizes, 1700000000, out, len, NULL, 0);
}

/* Feed buf in pieces of step bytes: the offset its end was found at. */
static long walk_end(const void *buf, size_t len, size_t step, int *rc)
{
	struct bundle_walk w = { 0 };
	size_t at = 0, keep, kept = 0;
	char msg[200];
	long end = -1;

	*rc = 0;
	while (at < len) {
		size_t n = len - at < step ? len - at : step;
		int r = bundle_walk_feed(&w, (const char *)buf + at, n, &keep,
					 msg, sizeof(msg));

		if (r < 0) {
			*rc = r;
			break;
		}
		kept += keep;
		if (r == 1 && end < 0)
			end = (long)kept;
		at += n;
	}
	bundle_walk_end(&w);
	return end;
}

/* One crafted archive: these names and types, through libarchive. */
static void *craft(size_t *len, const char *const *names, const int *types,
		   size_t n)
{
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	size_t cap = 65536, used = 0;
	char *buf = malloc(cap);

	archive_write_set_format_pax_restricted(a);
	archive_write_open_memory(a, buf, cap, &used);
	for (size_t i = 0; i < n; i++) {
		archive_entry_clear(e);
		archive_entry_set_pathname(e, names[i]);
		archive_entry_set_filetype(e, (unsigned)types[i]);
		archive_entry_set_perm(e, 0644);
		if (types[i] == AE_IFLNK)
			archive_entry_set_symlink(e, "/etc/passwd");
		archive_entry_set_size(e, types[i] == AE_IFREG ? 2 : 0);
		archive_write_header(a, e);
		if (types[i] == AE_IFREG)
			archive_write_data(a, "{}", 2);
	}
	archive_write_close(a);
	archive_write_free(a);
	archive_entry_free(e);
	*len = used;
	return buf;
}

int main(void)
{
	uint64_t sizes[BUNDLE_NMEMBERS];
	struct bundle b;
	char msg[300];
	void *tar;
	size_t len;
	int rc;

	is_int(make(&tar, &len, sizes), 0, "bundle_write");
	is_int((long)len, (long)bundle_size(sizes), "its size is bundle_size's");
	is_int(len % 512, 0, "whole blocks");
	is_int(bundle_read(tar, len, &b, msg, sizeof(msg)), 0, msg);
	for (int i = 0; i < BUNDLE_NMEMBERS; i++)
		ok(b.len[i] == strlen(text[i]) &&
			   memcmp(b.data[i], text[i], b.len[i]) == 0,
		   bundle_names[i]);
	bundle_free(&b);

	/* the end is found whatever the cut, and nothing before it */
	for (size_t step = 1; step <= len + 1; step = step * 3 + 1) {
		long end = walk_end(tar, len, step, &rc);

		ok(rc == 0 && end == (long)len, "plain tar: end at its length");
	}
	is_int(walk_end(tar, len - 1, 512, &rc), -1, "one byte short: no end");
	{
		char *padded = calloc(1, len + 9728);

		memcpy(padded, tar, len);
		ok(walk_end(padded, len + 9728, 4096, &rc) == (long)len &&
			   rc == 0,
		   "zero padding after the end is taken");
		padded[len + 100] = 'x';
		walk_end(padded, len + 9728, 4096, &rc);
		is_int(rc, -EINVAL, "a byte after the end is refused");
		free(padded);
	}
	{
		/* gzip: the end is the stream's */
		uLongf zcap = compressBound(len) + 64;
		unsigned char *z = malloc(zcap);
		z_stream s = { 0 };

		deflateInit2(&s, 6, Z_DEFLATED, 16 + MAX_WBITS, 8,
			     Z_DEFAULT_STRATEGY);
		s.next_in = tar;
		s.avail_in = (uInt)len;
		s.next_out = z;
		s.avail_out = (uInt)zcap;
		deflate(&s, Z_FINISH);
		zcap = s.total_out;
		deflateEnd(&s);
		for (size_t step = 1; step <= zcap; step = step * 2 + 1)
			ok(walk_end(z, zcap, step, &rc) == (long)zcap && rc == 0,
			   "gzip: end at the trailer");
		is_int(bundle_read(z, zcap, &b, msg, sizeof(msg)), 0,
		       "gzip'd bundle reads");
		bundle_free(&b);
		is_int(walk_end(z, zcap - 4, 7, &rc), -1, "gzip short: no end");
		free(z);
	}
	is_int(bundle_read(tar, len / 2, &b, msg, sizeof(msg)), -EINVAL,
	       "half a bundle");
	ok(msg[0] != '\0', msg);
	free(tar);

	{
		static const struct {
			const char *name; /* replaces meta.json */
			int type;
			const char *why;
		} bad[] = {
			{ "../meta.json", AE_IFREG, "\"..\"" },
			{ "/meta.json", AE_IFREG, "absolute" },
			{ "meta.json", AE_IFLNK, "symbolic link" },
			{ "meta.json", AE_IFCHR, "device" },
			{ "meta.json", AE_IFDIR, "directory" },
			{ "lib.so", AE_IFREG, "unknown" },
			{ "model", AE_IFREG, "twice" },
		};
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			const char *names[] = { "bundle.json", "model",
						bad[i].name, "metrics.json",
						"sample.csv" };
			int types[] = { AE_IFREG, AE_IFREG, bad[i].type,
					AE_IFREG, AE_IFREG };
			char *t = craft(&len, names, types, 5);

			is_int(bundle_read(t, len, &b, msg, sizeof(msg)),
			       -EINVAL, bad[i].why);
			ok(strstr(msg, bad[i].why) != NULL, msg);
			free(t);
		}
	}
	is_int(bundle_read("garbage", 7, &b, msg, sizeof(msg)), -EINVAL,
	       "not a tar");
	ok(strstr(msg, "not a") != NULL, msg);
	return done();
}
