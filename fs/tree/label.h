/* SPDX-License-Identifier: MIT */
/* datasets/<d>/label/ (label.c): the labelling queue and its counts. */
#ifndef MLFS_TREE_LABEL_H
#define MLFS_TREE_LABEL_H

#include "node.h"
#include "objects.h"

extern const struct node_type label_files[];

/* The entry of datasets/<d>/: a directory of the dataset's owner. */
#define LABEL_DIR_TYPE                                                        \
	{ "label", S_IFDIR | 0555, 0, .children = label_files,                \
	  .getattr = obj_file_getattr }

#endif
