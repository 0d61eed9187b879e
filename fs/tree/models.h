/* SPDX-License-Identifier: MIT */
/* models/: the directory's node type (models.c). */
#ifndef MLFS_FS_MODELS_H
#define MLFS_FS_MODELS_H

#include "node.h"

extern const struct node_type models_type;

#endif
