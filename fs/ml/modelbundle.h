/* SPDX-License-Identifier: MIT */
/*
 * Model bundles in the registry: models/<m>/v<n>/bundle.tar and
 * models/<m>/import (modelbundle.c says how an import is judged).
 */
#ifndef MLFS_FS_MODELBUNDLE_H
#define MLFS_FS_MODELBUNDLE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "node.h"
#include "problem.h"

struct fs;

/* The size of bundle.tar of models/<model>/v<ver>: 0 or -errno. */
int mbundle_size(struct fs *fs, const char *model, unsigned ver,
		 uint64_t *size);
/*
 * mbundle_make: bundle.tar of models/<model>/v<ver> into *out (malloc'd),
 * mbundle_size bytes.  A blob that fails its hash is reported for uid
 * reading path and gives -EIO.
 */
int mbundle_make(struct fs *fs, const char *model, unsigned ver, uid_t uid,
		 const char *path, void **out, size_t *outlen);
/*
 * mbundle_import: the bundle in buf, written into models/<model>/import
 * by ctx: judged, reproduced by the job *job, and committed as version
 * *ver.  -EACCES without write permission on the model, -EINVAL with pb
 * for a bundle refused, -ETIMEDOUT if the job is still running after
 * the wait, -errno.
 */
int mbundle_import(struct fs *fs, const char *model, const void *buf,
		   size_t len, const struct fs_ctx *ctx, char *job,
		   size_t joblen, unsigned *ver, struct problem *pb);
/*
 * mbundle_publish: an import job ended well (sched.c): its answers in
 * dir against the sample's, then the version.  -EINVAL with why when
 * they differ.
 */
int mbundle_publish(struct fs *fs, const char *dir, json_t *plan,
		    json_t *rec, unsigned *ver, char *why, size_t whylen);

#endif
