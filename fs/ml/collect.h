/* SPDX-License-Identifier: MIT */
/*
 * Collection (collect.c; DESIGN.md §4, "Preparation and collection"):
 * landing directories followed with inotify, and sources imported again
 * on a schedule.  Both are settings of a dataset, kept in its record
 * (so they survive a remount, a rebuild and the S3 store), and run by one
 * thread of the mount with the rights of the user who set them.
 *
 *   watch     {"path", "append", "uid", "gid"}: each file moved into
 *             path, or closed after writing and then left 2 s without a
 *             write, becomes a new version (or its rows are appended to
 *             the latest).  Files already there when the watch begins
 *             are not imported; files that arrive while the mount is
 *             down are, at the next mount, found by (name, size, mtime,
 *             inode) against the set recorded in the store object
 *             datasets/<d>/landing.seen.  Names starting with '.' are
 *             skipped (partial files of rsync and the like).
 *   schedule  {"every", "uid", "gid"}: the dataset's source (record
 *             field "source") imported again every `every` seconds; a
 *             version only when its content changed.
 */
#ifndef MLFS_ML_COLLECT_H
#define MLFS_ML_COLLECT_H

#include <stdbool.h>
#include <stddef.h>

#include "ctx.h"
#include "problem.h"
#include "strbuf.h"

struct fs;

#define COLLECT_QUIET_MS 2000 /* a closed file is taken after this quiet */

/*
 * collect_start: the thread, following every dataset's watch and
 * schedule (a writable mount only).  collect_stop ends it (unmount).
 */
int collect_start(struct fs *fs);
void collect_stop(struct fs *fs);

/*
 * collect_set_watch: text is what was written to datasets/<name>/watch:
 * a directory path (opened as ctx's user; relative to its working
 * directory), optionally after a line `append` or `replace`; an empty
 * text stops the watch.  Judged (final false: only once a line is
 * whole) and, if apply, kept and followed.  0 or -errno with pb.
 */
int collect_set_watch(struct fs *fs, const char *name, const char *text,
		      size_t len, const struct fs_ctx *ctx, bool apply,
		      struct problem *pb);
/* What watch reads back: "[append\n]PATH\n", or nothing. */
int collect_show_watch(struct fs *fs, const char *name, struct strbuf *out);

/*
 * collect_set_schedule: an interval ("30s", "5m", "2h", "1d", or
 * seconds) for datasets/<name>/schedule, or an empty text to stop.  The
 * dataset needs a source.  As collect_set_watch.
 */
int collect_set_schedule(struct fs *fs, const char *name, const char *text,
			 size_t len, const struct fs_ctx *ctx, bool apply,
			 struct problem *pb);
int collect_show_schedule(struct fs *fs, const char *name,
			  struct strbuf *out);

#endif
