/* SPDX-License-Identifier: MIT */
/*
 * Imports from outside the mount (source.c): a dataset's `source` (a
 * host file, or an s3:// object imported lazily), its schedule, and the
 * files of a landing directory (collect.c).  Host files are read with
 * the rights of the user behind the import, never the daemon's.
 */
#ifndef MLFS_ML_SOURCE_H
#define MLFS_ML_SOURCE_H

#include <stdbool.h>
#include <stddef.h>

#include "hostfile.h"
#include "problem.h"

struct fs;

/*
 * source_import: import src (a host path, opened as u, or s3://bucket/key)
 * as a new version of dataset name made by made_by ("source",
 * "schedule"), its detail src.  Content equal to the latest version's
 * (the same hash; for S3, the same object and ETag) makes none: *created
 * false.  -errno with pb (line 1 names src) otherwise.  If where, the
 * source as it can be found again (the file's absolute path, or the URL)
 * goes there (wherelen bytes).
 */
int source_import(struct fs *fs, const char *name, const char *src,
		  const struct host_user *u, const char *made_by,
		  unsigned *ver, bool *created, char *where, size_t wherelen,
		  struct problem *pb);

/*
 * source_check: would source_import find src?  It exists and u may read
 * it (a host file), or it answers HEAD (S3).  0, or -errno with pb.
 */
int source_check(struct fs *fs, const char *src, const struct host_user *u,
		 struct problem *pb);

/*
 * source_import_fd: the file in (read from its start) as a new version of
 * name (append false), or its rows appended to the latest version's
 * (append: the file's header must be the version's, and is not
 * repeated).  Made by made_by with detail, as u.  As source_import.
 */
int source_import_fd(struct fs *fs, const char *name, int in,
		     const char *detail, const struct host_user *u,
		     const char *made_by, bool append, unsigned *ver,
		     bool *created, struct problem *pb);

#endif
