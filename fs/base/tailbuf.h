/* SPDX-License-Identifier: MIT */
/*
 * The last lines of a stream that tail -f follows, kept in memory at
 * absolute offsets: when it outgrows its ceiling the older half goes,
 * and the offsets of what stays stay where they were (a read before
 * them goes on from the oldest kept).  Callers lock.
 */
#ifndef MLFS_TAILBUF_H
#define MLFS_TAILBUF_H

#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

struct tailbuf {
	struct strbuf sb; /* the lines kept */
	uint64_t base;    /* bytes dropped before them */
};

/* Append n bytes (whole lines), dropping the older half past max. */
void tailbuf_append(struct tailbuf *t, const char *p, size_t n, size_t max);
/* The stream's size: what was dropped and what is kept. */
uint64_t tailbuf_size(const struct tailbuf *t);
/* Up to size bytes at off into buf: how many. */
size_t tailbuf_read(const struct tailbuf *t, char *buf, size_t size,
		    uint64_t off);
void tailbuf_free(struct tailbuf *t);

#endif
