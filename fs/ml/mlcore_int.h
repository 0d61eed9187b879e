/* SPDX-License-Identifier: MIT */
/*
 * Inside the ML core (fs/ml/: table.c, extract.c, split.c, metrics.c,
 * modelfile.c): the small helpers more than one of them uses.  The
 * interface is mlcore.h.
 */
#ifndef MLFS_FS_MLCORE_INT_H
#define MLFS_FS_MLCORE_INT_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mlcore.h"

/* A uniform integer in [0, bound), without modulo bias (split.c). */
uint64_t prng_below(uint64_t *state, uint64_t bound);

/* Field c of row r of t: its bytes (not NUL-terminated). */
static inline void table_field(const struct table *t, size_t r, size_t c,
			       const char **p, size_t *n)
{
	size_t k = r * t->ncols + c;

	*p = t->data + t->off[k];
	*n = t->len[k];
}

/* ---------------------------------------------------------------- */
/* Field helpers shared by the table and the extractor. */

static inline bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static inline void trim(const char **p, size_t *n)
{
	const char *s = *p;
	size_t len = *n;

	while (len && is_blank(*s)) {
		s++;
		len--;
	}
	while (len && is_blank(s[len - 1]))
		len--;
	*p = s;
	*n = len;
}

static inline unsigned pos_u(uint64_t v)
{
	return v > UINT32_MAX ? UINT32_MAX : (unsigned)v;
}

/* Byte strings ordered as strcmp() orders the same strings. */
static inline int bytes_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static inline char *mem_dup(const char *p, size_t n)
{
	char *s = malloc(n + 1);

	if (!s)
		return NULL;
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/* jansson refuses invalid UTF-8, so anything bound for JSON is checked. */
static inline bool utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *end = p + n;

	while (p < end) {
		unsigned lo = 0x80;
		unsigned hi = 0xbf;
		size_t k;
		size_t i;

		if (*p < 0x80) {
			if (!*p)
				return false;
			p++;
			continue;
		}
		if (*p >= 0xc2 && *p <= 0xdf) {
			k = 2;
		} else if (*p >= 0xe0 && *p <= 0xef) {
			k = 3;
			if (*p == 0xe0)
				lo = 0xa0;
			if (*p == 0xed)
				hi = 0x9f;
		} else if (*p >= 0xf0 && *p <= 0xf4) {
			k = 4;
			if (*p == 0xf0)
				lo = 0x90;
			if (*p == 0xf4)
				hi = 0x8f;
		} else {
			return false;
		}
		if ((size_t)(end - p) < k || p[1] < lo || p[1] > hi)
			return false;
		for (i = 2; i < k; i++)
			if ((p[i] & 0xc0) != 0x80)
				return false;
		p += k;
	}
	return true;
}

/* A finite double, or null (which jansson cannot hold as a real). */
static inline json_t *json_num(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

#endif
