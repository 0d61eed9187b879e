/* SPDX-License-Identifier: MIT */
/*
 * The spec of a feature set (features/<fs>/spec; DESIGN.md §4):
 *
 *   {"entity": "customer_id", "timestamp": "ts", "source": "transactions",
 *    "ttl": "30d", "schedule": "1h", "allowed_lateness": "7d",
 *    "features": [{"name": "spend_7d", "column": "amount", "agg": "sum",
 *                  "window": "7d", "type": "numeric", "min": 0,
 *                  "max": 1e6, "on_violation": "clip"}, ...]}
 *
 * Checked as written, with the line and column of the first problem, as
 * train specs are.  Pure: no mount, no store; featspec_resolve checks the
 * source dataset against the repository.
 */
#ifndef MLFS_FS_FEATSPEC_H
#define MLFS_FS_FEATSPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "problem.h"

struct fs;

/*
 * featspec_check: judge text (len bytes; final: the whole of it, at
 * close).  0 while incomplete JSON is not final.  On success with a
 * complete value and out non-NULL, *out is the spec with its defaults
 * filled in (agg "last", on_violation "null", entity a list, type
 * "numeric" or "categorical" by agg): what a version keeps.  -EINVAL or
 * -EFBIG with pb.
 */
int featspec_check(const char *text, size_t len, bool final, json_t **out,
		   struct problem *pb);

/*
 * featspec_resolve: does spec's source (if any) name a dataset the
 * repository has, with the entity, timestamp and feature columns in its
 * latest version's schema?  A source that writer may not read is judged
 * at sync, as the writer, so that a spec tells nothing of its columns.
 * 0, -EINVAL with pb (text: the spec as written, for line and column).
 */
struct host_user;
int featspec_resolve(struct fs *fs, const struct host_user *writer,
		     json_t *spec, const char *text,
		     struct problem *pb);

struct host_user;

/*
 * featspec_train_ref: a train spec's "feature_sets" entry, ref ("name",
 * its latest version, or "name@n"), for writer: *out {"name", "version",
 * "blob", "spec", "types": {feature: "numeric" | "categorical"}} of a
 * synced version.  -EINVAL or -EACCES with why.
 */
int featspec_train_ref(struct fs *fs, const char *ref,
		       const struct host_user *writer, json_t **out,
		       char *why, size_t whylen);

/*
 * featspec_duration: "30d", "12h", "15m", "10s", "2w" (a positive integer
 * and a unit) into seconds.  -EINVAL for anything else.
 */
int featspec_duration(const char *s, int64_t *secs);

#endif
