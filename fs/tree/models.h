/* SPDX-License-Identifier: MIT */
/* models/: the directory's node type (models.c). */
#ifndef MLFS_FS_MODELS_H
#define MLFS_FS_MODELS_H

#include "node.h"

struct fs;

extern const struct node_type models_type;

/*
 * models_open: models/'s own state in fs (fs->sessions: the predict
 * answers kept for shell sessions), before the session starts; -ENOMEM.
 * models_close frees it once no request can arrive; NULL-safe.
 */
int models_open(struct fs *fs);
void models_close(struct fs *fs);

#endif
