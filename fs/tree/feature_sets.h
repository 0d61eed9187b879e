/* SPDX-License-Identifier: MIT */
/* features/: the directory's node type (features.c; not features.h,
 * which is glibc's). */
#ifndef MLFS_FS_FEATURE_SETS_H
#define MLFS_FS_FEATURE_SETS_H

#include "node.h"

extern const struct node_type features_type;

#endif
