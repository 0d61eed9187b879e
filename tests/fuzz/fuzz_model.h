/* SPDX-License-Identifier: MIT */
/*
 * What the predict and model fuzz targets share: a struct fs with just
 * what serving reads (an in-memory store, the build tree's train
 * plugins, a log to /dev/null), and a small logistic model trained in
 * memory on numeric, categorical and time columns, as mlfs-job would
 * write it.  Set up once, in LLVMFuzzerInitialize; exits on failure.
 */
#ifndef MLFS_TESTS_FUZZ_MODEL_H
#define MLFS_TESTS_FUZZ_MODEL_H

#include <stddef.h>

struct fs;
struct mlfs_host;
struct served;

/* A host for plugins that ignores log, progress and metrics. */
extern const struct mlfs_host fuzz_host;

/* The fs every call below uses (plugins loaded); made on the first call. */
struct fs *fuzz_fs(void);

/*
 * fuzz_model_file: the encoded model file (inputs x, color, when; classes
 * a, b, c).  Owned by this module; valid for the whole run.
 */
void fuzz_model_file(const void **file, size_t *len);

/*
 * fuzz_serve: put file[0..len) in the store as a blob and load it as
 * predict does (served_get).  0 and *out (served_put() it), or -errno.
 * The model cache is emptied first, so every call decodes again.
 */
int fuzz_serve(const void *file, size_t len, struct served **out);

#endif
