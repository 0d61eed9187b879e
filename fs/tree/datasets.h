/* SPDX-License-Identifier: MIT */
/* datasets/: the directory's node type (datasets.c). */
#ifndef MLFS_FS_DATASETS_H
#define MLFS_FS_DATASETS_H

#include "node.h"

extern const struct node_type datasets_type;

#endif
