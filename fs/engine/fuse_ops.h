/* SPDX-License-Identifier: MIT */
/* The FUSE low-level ops table (fs/fuse.c), for main(). */
#ifndef MLFS_FS_FUSE_OPS_H
#define MLFS_FS_FUSE_OPS_H

#include <fuse_lowlevel.h>

extern const struct fuse_lowlevel_ops fs_fuse_ops;

#endif
