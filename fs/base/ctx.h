/* SPDX-License-Identifier: MIT */
/*
 * Who is asking: the caller of one FUSE request, as every layer sees it
 * (the repository judges owners by it, the tree and the runner act as
 * it).  The engine fills it from the request.
 */
#ifndef MLFS_FS_CTX_H
#define MLFS_FS_CTX_H

#include <sys/types.h>

struct fs_reply;

/* Who is asking: from the FUSE request. */
struct fs_ctx {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	mode_t umask;
	struct fs_reply *req; /* the request, for fs_interrupted(); NULL in
				 ops the glue does not let wait */
};

#endif
