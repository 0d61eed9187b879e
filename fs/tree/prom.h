/* SPDX-License-Identifier: MIT */
/* .mlfs/metrics.prom (prom.c). */
#ifndef MLFS_FS_PROM_H
#define MLFS_FS_PROM_H

#include "node.h"
#include "strbuf.h"

int daemon_prom_show(struct node *n, struct strbuf *out);

#endif
