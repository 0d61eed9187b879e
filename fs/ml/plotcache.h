/* SPDX-License-Identifier: MIT */
/*
 * Pictures already drawn (plot.h), one cache a mount (fs->plots), so
 * that the stat and the open of a picture, and every later read of an
 * immutable version's, draw it once.  Keys name what the picture is drawn
 * from (a version's blob hashes), so a key's picture never changes while
 * it is cached; a picture of something that changes (a deployment's
 * metrics.svg) is kept until a time.  Any thread.
 */
#ifndef MLFS_ML_PLOTCACHE_H
#define MLFS_ML_PLOTCACHE_H

#include <stdbool.h>
#include <stddef.h>

struct fs;
struct strbuf;

int plot_cache_open(struct fs *fs);
void plot_cache_close(struct fs *fs);

/*
 * plot_cache_get: key's picture appended to out, if cached and, for one
 * with an end (until, monotonic seconds, 0: none), now is before it.
 */
bool plot_cache_get(struct fs *fs, const char *key, double now,
		    struct strbuf *out);
/* Keep a copy of len bytes as key's picture (the least used one goes). */
void plot_cache_put(struct fs *fs, const char *key, const char *buf,
		    size_t len, double until);

#endif
