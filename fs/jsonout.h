/* SPDX-License-Identifier: MIT */
/*
 * JSON as people read it: what the mount shows (stats, schema, lineage,
 * meta.json, metrics.json, trials) prints each real number as the
 * shortest decimal that reads back to the same double (5.471, not
 * 5.4710000000000001), which jansson's fixed precision cannot do.
 */
#ifndef MLFS_FS_JSONOUT_H
#define MLFS_FS_JSONOUT_H

#include <stddef.h>

#include <jansson.h>

/*
 * json_dumps_short: json_dumps(j, flags) with every real number in its
 * shortest round-trip form.  malloc'd text, or NULL (no memory, or j
 * cannot be encoded).  Any thread.
 */
char *json_dumps_short(const json_t *j, size_t flags);

/* json_dump_file_short: the same into path (replaced); 0 or -errno. */
int json_dump_file_short(const json_t *j, const char *path, size_t flags);

#endif
