/* SPDX-License-Identifier: MIT */
/*
 * A feature set's sync, the daemon's half (featsync.c): features/<fs>/ctl
 * starts it as job <fs>-sync-<n>; the runner publishes what the job made
 * as a version of the set.
 */
#ifndef MLFS_FS_FEATSYNC_H
#define MLFS_FS_FEATSYNC_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "ctx.h"
#include "problem.h"

struct fs;

/*
 * featsync_start: run cmd ("sync", or "materialize START END") on set's
 * latest spec as ctx's writer: queue the job (with dry_run, judge all of
 * that and queue nothing).  -EINVAL with pb for a bad command, no spec
 * yet or a source the writer cannot use; -EACCES.
 */
int featsync_start(struct fs *fs, const char *set, const char *cmd,
		   size_t len, bool dry_run, const struct fs_ctx *ctx,
		   struct problem *pb);

/* The name of set's last sync job, or -ENOENT. */
int featsync_last(struct fs *fs, const char *set, char *job, size_t len);

/*
 * featsync_publish: the sync job in dir (plan, record rec) ended well:
 * its history and offline.csv become blobs and a new version of the set
 * (*ver).  -ESTALE if a new spec was written meanwhile (the history is of
 * the old one).  Scheduler thread.
 */
int featsync_publish(struct fs *fs, const char *dir, json_t *plan,
		     json_t *rec, unsigned *ver);

/*
 * featsync_tick: start the syncs that sets' schedules call for (the
 * spec's "schedule": a sync that long after the last one started), as
 * each set's owner.  The runner's thread, about once a second.
 */
void featsync_tick(struct fs *fs);

#endif
