/* SPDX-License-Identifier: MIT */
/*
 * Failing allocations on purpose.  Unit programs link with
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,
 * --wrap=aligned_alloc and this file's wrappers: after failalloc_arm(n),
 * the n-th allocation from then on (1-based) returns NULL, and every
 * later one succeeds again.
 * Single-threaded tests only.
 */
#ifndef MLFS_TESTS_FAILALLOC_H
#define MLFS_TESTS_FAILALLOC_H

#include <stdbool.h>

/* Fail the n-th allocation from now; 0 disarms. */
void failalloc_arm(unsigned n);
/* True if the armed failure has happened since the last arm. */
bool failalloc_fired(void);

#endif
