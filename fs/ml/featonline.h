/* SPDX-License-Identifier: MIT */
/*
 * A feature set's online store in LMDB (featonline.c): the latest
 * version's entities, each read as its vector as of now.  Any FUSE
 * worker, and the scheduler thread after a sync.
 */
#ifndef MLFS_FS_FEATONLINE_H
#define MLFS_FS_FEATONLINE_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

struct fs;

/*
 * featonline_refresh: load the latest version's history into the store
 * unless it holds it already (one write transaction).  0 also for a set
 * with no version yet.
 */
int featonline_refresh(struct fs *fs, const char *set);

/* Does the store hold entity key (values joined by 0x1f, klen bytes)? */
bool featonline_has(struct fs *fs, const char *set, const char *key,
		    size_t klen);

/*
 * featonline_render: the entity's vector as of now (whole seconds): a
 * CSV header (entity columns, as_of, features) and one row, or (json) one
 * JSON object.  -ENOENT for an unknown key.
 */
int featonline_render(struct fs *fs, const char *set, const char *key,
		      size_t klen, bool json, struct strbuf *out);

/* fn(arg, key, len) for each entity key, in byte order; fn's non-zero
 * return stops the listing and is returned. */
int featonline_list(struct fs *fs, const char *set,
		    int (*fn)(void *arg, const char *key, size_t len),
		    void *arg);

#endif
