/* SPDX-License-Identifier: MIT */
/*
 * Blobs of removed versions, deleted gc_grace seconds after the rmdir
 * (reap.c), so that readers with the file open are not cut off.
 */
#ifndef MLFS_FS_REAP_H
#define MLFS_FS_REAP_H

#include <stdbool.h>

struct fs;

/*
 * reap_start: on the writer of an S3 store with gc_grace > 0, start the
 * thread that deletes blobs when their grace is over.  Elsewhere it does
 * nothing, and reap_later() refuses (the caller deletes at once: on a
 * local store an open reader holds the file itself).  0 or -errno.
 */
int reap_start(struct fs *fs);

/*
 * reap_stop: stop the thread.  Deletions not due yet are dropped with a
 * log line: the blobs stay, unreferenced, until a gc removes them.
 */
void reap_stop(struct fs *fs);

/*
 * reap_later: delete blob key gc_grace seconds from now, unless a version
 * or a job names it by then (repo_blob_reap checks).  0, or -EAGAIN when no
 * thread runs (delete now), or -ENOMEM.  Any thread; key is copied.
 */
int reap_later(struct fs *fs, const char *key);

/* reap_cancel: forget a pending deletion of key (it is stored again). */
void reap_cancel(struct fs *fs, const char *key);

/* reap_is_pending: is key waiting out its grace?  gc leaves it alone. */
bool reap_is_pending(struct fs *fs, const char *key);

#endif
