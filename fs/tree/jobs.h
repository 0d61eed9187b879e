/* SPDX-License-Identifier: MIT */
/* train/ and jobs/: the directories' node types (jobs.c). */
#ifndef MLFS_FS_JOBS_H
#define MLFS_FS_JOBS_H

#include "node.h"

extern const struct node_type train_type;
extern const struct node_type batch_type;
extern const struct node_type jobs_type;

#endif
