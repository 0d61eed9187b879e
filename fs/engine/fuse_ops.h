/* SPDX-License-Identifier: MIT */
/* The FUSE low-level ops table (fs/fuse.c), for main(). */
#ifndef MLFS_FS_FUSE_OPS_H
#define MLFS_FS_FUSE_OPS_H

#include <fuse_lowlevel.h>

struct fs;

/*
 * The largest read request (-o max_read, the read-ahead, the bdi's
 * read_ahead_kb): reads are answered by splicing the blob into a pipe,
 * and libfuse wants the pipe 3 pages longer than the reply; a pipe may
 * not pass 1 MiB (pipe-max-size) without CAP_SYS_RESOURCE, which root
 * here lacks.  At 1 MiB every read fell back to a fresh buffer, pread
 * and writev: `dd bs=1M` of a warm data.csv 1.4 GB/s, at 128 KiB 3.8.
 */
#define FUSE_READ_MAX (1008 * 1024)

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
