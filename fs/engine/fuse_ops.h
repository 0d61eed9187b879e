/* SPDX-License-Identifier: MIT */
/* The FUSE low-level ops table (fs/fuse.c), for main(). */
#ifndef MLFS_FS_FUSE_OPS_H
#define MLFS_FS_FUSE_OPS_H

#include <fuse_lowlevel.h>

struct fs;

extern const struct fuse_lowlevel_ops fs_fuse_ops;

/*
 * fs_glue_init: the glue's own state in fs (the open handles' and the
 * parked requests' locks), before the session starts.  fs_glue_free
 * undoes it once no request can arrive; requests still parked then are
 * forgotten unanswered (their session is gone).
 */
void fs_glue_init(struct fs *fs);
void fs_glue_free(struct fs *fs);

#endif
