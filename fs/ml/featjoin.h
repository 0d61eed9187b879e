/* SPDX-License-Identifier: MIT */
/*
 * Point-in-time join (featjoin.c), the stream behind features/<fs>/join:
 * CSV rows "<entity>,<time>" in (or, after a header naming the entity and
 * timestamp columns, any columns: passed through), one row out for each:
 * the input's fields, then every feature as of that time (featcalc.h).
 * The answer starts with a header.  A row that cannot be read is answered
 * by "error: line N: ..." in its place.  A row is a line (a quoted
 * newline is not supported here).
 */
#ifndef MLFS_FS_FEATJOIN_H
#define MLFS_FS_FEATJOIN_H

#include "featcalc.h"
#include "strbuf.h"

struct jstream;

/*
 * Where the events of an entity are: find gives the history holding key
 * (klen bytes) and its index there (valid until the next call), or
 * -ENOENT for an entity with none.
 */
typedef int (*jstream_find_fn)(void *arg, const char *key, size_t klen,
			       const struct feat_hist **h, size_t *k);

/* spec and what find reads outlive s. */
int jstream_new(const struct feat_spec *spec, jstream_find_fn find,
		void *arg, struct jstream **out);
/*
 * jstream_write: answer every complete row of buf into out.  0, -EIO if a
 * row was answered with an error line, -E2BIG for a row past 1 MiB,
 * -ENOMEM.  jstream_finish answers a last row without a newline.
 */
int jstream_write(struct jstream *s, const char *buf, size_t len,
		  struct strbuf *out);
int jstream_finish(struct jstream *s, struct strbuf *out);
void jstream_free(struct jstream *s);

#endif
