/* SPDX-License-Identifier: MIT */
/*
 * Allocation wrappers for --wrap: see failalloc.h.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "failalloc.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void *__real_aligned_alloc(size_t align, size_t n);

static unsigned countdown;
static bool fired;

void failalloc_arm(unsigned n)
{
	countdown = n;
	fired = false;
}

bool failalloc_fired(void)
{
	return fired;
}

static bool should_fail(void)
{
	if (countdown == 0)
		return false;
	if (--countdown)
		return false;
	fired = true;
	errno = ENOMEM;
	return true;
}

void *__wrap_malloc(size_t n)
{
	return should_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m)
{
	return should_fail() ? NULL : __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n)
{
	return should_fail() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
	return should_fail() ? NULL : __real_strdup(s);
}

void *__wrap_aligned_alloc(size_t align, size_t n)
{
	return should_fail() ? NULL : __real_aligned_alloc(align, n);
}
