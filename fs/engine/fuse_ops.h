/* SPDX-License-Identifier: MIT */
/* The FUSE low-level ops table (fs/fuse.c), for main(). */
#ifndef MLFS_FS_FUSE_OPS_H
#define MLFS_FS_FUSE_OPS_H

#include <fuse_lowlevel.h>

struct fs;

/*
 * fuse_read_max: the largest read request, 1 MiB less four pages (1008
 * KiB with 4 KiB pages), for -o max_read, the read-ahead and the bdi's
 * read_ahead_kb.  Reads are answered by splicing the file into a pipe,
 * and libfuse wants the pipe three pages longer than the answer; a pipe
 * may not pass pipe-max-size (1 MiB) without CAP_SYS_RESOURCE, which
 * root here lacks.  At 1 MiB every read fell back to a fresh buffer,
 * pread and writev: `dd bs=1M` of a warm data.csv 1.6 GB/s, at 1008 KiB
 * 6.0 (and 3.8 at 128 KiB).
 */
unsigned fuse_read_max(void);

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
