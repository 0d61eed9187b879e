/* SPDX-License-Identifier: MIT */
/* .mlfs/metrics.prom (prom.c). */
#ifndef MLFS_FS_PROM_H
#define MLFS_FS_PROM_H

#include "node.h"
#include "strbuf.h"

struct fs;

/* The daemon's exposition (also what HTTP's /metrics starts with). */
int daemon_prom(struct fs *fs, struct strbuf *out);
int daemon_prom_show(struct node *n, struct strbuf *out);

#endif
