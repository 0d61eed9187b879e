/* SPDX-License-Identifier: MIT */
/* deployments/: the directory's node type (deployments.c). */
#ifndef MLFS_FS_DEPLOYMENTS_H
#define MLFS_FS_DEPLOYMENTS_H

#include "node.h"

extern const struct node_type deployments_type;

#endif
