/* SPDX-License-Identifier: MIT */
/*
 * The name grammar of objects and aliases (datasets, models, jobs, and
 * the names users give them).  Pure functions; any thread.
 */
#ifndef MLFS_FS_NAMES_H
#define MLFS_FS_NAMES_H

#include <stdbool.h>

#include "problem.h"

/* Name grammar of objects and aliases (DESIGN.md): 0 or -EINVAL. */
int node_name_check(const char *name, struct problem *pb);
/* "v<digits>" -> 1 and *ver; 0 otherwise. */
bool node_name_is_version(const char *name, unsigned *ver);

#endif
