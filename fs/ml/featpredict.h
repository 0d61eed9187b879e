/* SPDX-License-Identifier: MIT */
/*
 * Predict by key (featpredict.c): a model trained on feature sets
 * (meta.json "feature_sets") scores rows that carry only the entity key,
 * and maybe a time, or any columns after a header naming the entity
 * columns: each set's features come from its online store as of the
 * row's time (the set's timestamp column, or a second field), else now,
 * and the row then goes to the model's scoring stream (predict.h).
 */
#ifndef MLFS_FS_FEATPREDICT_H
#define MLFS_FS_FEATPREDICT_H

#include <stddef.h>

#include <jansson.h>

#include "predict.h"
#include "strbuf.h"

struct fs;
struct fpredict;

/*
 * fpredict_new: sets [{name, version}] (the model's manifest), feeding
 * ps (borrowed), read for caller: each set's online store is read on
 * their behalf.  -ENOENT or -ESTALE with why when a set is gone or its
 * spec is no longer the one the model learnt, -EACCES with why when
 * caller may not read a set.
 */
struct host_user;
int fpredict_new(struct fs *fs, json_t *sets, const struct host_user *caller,
		 struct pstream *ps, struct fpredict **out, char *why,
		 size_t whylen);
/* As pstream_write and pstream_finish (predict.h), on the input rows. */
int fpredict_write(struct fpredict *s, const char *buf, size_t len,
		   struct strbuf *out);
int fpredict_finish(struct fpredict *s, struct strbuf *out);
void fpredict_free(struct fpredict *s);

#endif
