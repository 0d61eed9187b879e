/* SPDX-License-Identifier: MIT */
/*
 * Multipart uploads a crash left behind in the bucket (uploads.c).
 */
#ifndef MLFS_FS_UPLOADS_H
#define MLFS_FS_UPLOADS_H

struct fs;

/*
 * uploads_sweep: abort the multipart uploads under the mount's prefix
 * that began before this mount did and more than gc_grace seconds ago,
 * and log how many.  Only the writer uploads, so an upload older than its
 * mount is a dead writer's; the grace spares a stalled one's that may
 * still complete, and clock skew between us and the bucket.  0 on a
 * local store, a read-only mount or a server that cannot list uploads
 * (logged); else 0 or the listing's errno (logged).  Blocks for the requests; the writer calls it at mount and
 * at gc.
 */
int uploads_sweep(struct fs *fs);

#endif
