/* SPDX-License-Identifier: MIT */
/*
 * Model bundles: the tar models/<m>/v<n>/bundle.tar serves and
 * models/<m>/import takes.  Pure: bytes in, bytes out, over libarchive
 * (tar only, gzip at most, in memory, never an external program).
 *
 * A bundle holds exactly the members below, each a regular file at the
 * top level.  It never carries code: the model is the train plugin's
 * saved state, read by the plugin of the same name installed where it is
 * imported.
 */
#ifndef MLFS_BUNDLE_H
#define MLFS_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <zlib.h>

/* Each member: its name and the most bytes it may have. */
#define BUNDLE_MEMBERS(X)                                                     \
	X(BUNDLE_INFO, "bundle.json", (uint64_t)1 << 16)                      \
	X(BUNDLE_MODEL, "model", (uint64_t)256 << 20)                         \
	X(BUNDLE_META, "meta.json", (uint64_t)4 << 20)                        \
	X(BUNDLE_METRICS, "metrics.json", (uint64_t)4 << 20)                  \
	X(BUNDLE_SAMPLE, "sample.csv", (uint64_t)16 << 20)

#define BUNDLE_MEMBER_ENUM(id, name, cap) id,
enum bundle_member { BUNDLE_MEMBERS(BUNDLE_MEMBER_ENUM) BUNDLE_NMEMBERS };
#undef BUNDLE_MEMBER_ENUM

extern const char *const bundle_names[BUNDLE_NMEMBERS];
extern const uint64_t bundle_caps[BUNDLE_NMEMBERS];

/* The most bytes of tar a bundle may be (its members, headers, the end). */
uint64_t bundle_max(void);

/*
 * The size of the ustar archive bundle_write makes of members of these
 * sizes: a header and the data in 512-byte blocks each, and two zero
 * blocks at the end.
 */
uint64_t bundle_size(const uint64_t len[BUNDLE_NMEMBERS]);

/*
 * bundle_write: the archive of data[i] (len[i] bytes) in member order,
 * read-only files dated mtime, into *out (malloc'd, bundle_size bytes).
 * -ENOMEM, or -EIO if libarchive failed, wrote another size or could not
 * be loaded (it is bound at the first bundle of the process); msg says
 * which.
 */
int bundle_write(const void *const data[BUNDLE_NMEMBERS],
		 const uint64_t len[BUNDLE_NMEMBERS], time_t mtime,
		 void **out, size_t *outlen, char *msg, size_t msglen);

struct bundle {
	void *data[BUNDLE_NMEMBERS]; /* malloc'd copies */
	size_t len[BUNDLE_NMEMBERS];
};

/*
 * bundle_read: the members of the tar (or gzip'd tar) in buf.  -EINVAL
 * with msg naming the member and the reason for: another format or
 * filter, a member that is not a regular file (a link, a device, a
 * directory, a sparse file), a path that is absolute or has "..", a name not in
 * BUNDLE_MEMBERS or given twice, a member over its cap, a missing
 * member, a truncated archive.  -ENOMEM.  -EIO, msg saying why, if
 * libarchive could not be loaded.  On error b holds nothing.
 */
int bundle_read(const void *buf, size_t len, struct bundle *b, char *msg,
		size_t msglen);
void bundle_free(struct bundle *b);

/*
 * Where an archive written a piece at a time ends: the framing of tar (a
 * header every 512 bytes and the data it announces) under gzip if the
 * first bytes say so.  A file system write cannot wait for the next
 * one, and libarchive reads by pulling, so the end is found here and
 * the archive is read by bundle_read once it is whole.  It judges no
 * content: a member's name or type is bundle_read's to refuse.
 */
struct bundle_walk {
	uint64_t in;           /* bytes fed */
	uint64_t tar;          /* bytes of tar seen */
	uint64_t next;         /* offset in the tar of the next header */
	unsigned char hdr[512];
	size_t hlen;
	uint64_t inflated;     /* gzip: bytes it came to */
	unsigned zeros;        /* zero blocks in a row */
	bool tar_end;          /* gzip: the tar inside it ended */
	bool gz;               /* the input is gzip */
	bool zlive;            /* z is initialised */
	bool done;             /* the archive ended */
	z_stream z;
};

/*
 * bundle_walk_feed: n more bytes.  Returns 1 once the archive has ended
 * (later bytes must be zeros, which tar writers pad with, and *keep is
 * how many of these bytes belong to it), 0 for more, -EINVAL (not tar
 * or gzip; bytes after the end) or -EFBIG (over bundle_max) with msg.
 */
int bundle_walk_feed(struct bundle_walk *w, const void *buf, size_t n,
		     size_t *keep, char *msg, size_t msglen);
void bundle_walk_end(struct bundle_walk *w);

#endif
