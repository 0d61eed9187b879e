/* SPDX-License-Identifier: MIT */
/*
 * The name grammar of objects and aliases (datasets, models, jobs, and
 * the names users give them).  Pure functions; any thread.
 */
#ifndef MLFS_FS_NAMES_H
#define MLFS_FS_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#include "problem.h"

/* Name grammar of objects and aliases (DESIGN.md): 0 or -EINVAL. */
int node_name_check(const char *name, struct problem *pb);
/* "v<digits>" -> 1 and *ver; 0 otherwise. */
bool node_name_is_version(const char *name, unsigned *ver);

/*
 * name_ref_parse: "name" or "name@n" (a version, 1 to 999999999, digits
 * only) into name (nlen bytes) and *ver (0: none given); -EINVAL for
 * anything else, a name the grammar refuses included.
 */
int name_ref_parse(const char *ref, char *name, size_t nlen, unsigned *ver);

/*
 * File names for values that may hold any byte (the keys of a feature
 * set's online store): bytes other than letters, digits, '-', '_', '.'
 * and '~' are %XX (as RFC 3986's unreserved set), and so is a leading
 * '.' (no hidden names, no "." or "..").  name_encode writes into out
 * (cap bytes, NUL-terminated) and returns the length, or -ENAMETOOLONG;
 * name_decode gives the bytes (NUL-terminated), or -EINVAL for a name
 * that is not an encoding (a stray '%', or a byte that should be one).
 */
long name_encode(const char *p, size_t len, char *out, size_t cap);
long name_decode(const char *name, size_t len, char *out, size_t cap);

#endif
