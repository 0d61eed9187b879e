/* SPDX-License-Identifier: MIT */
/*
 * A store_sink_fn for tests of get_stream: it keeps the range's bytes in
 * buf once each, in order, skipping what a retry hands over again
 * (counted in again), and fails call number fail_at with -ENOSPC.
 */
#ifndef MLFS_TESTS_SINK_H
#define MLFS_TESTS_SINK_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct sink {
	char *buf;
	uint64_t base;		/* object offset of buf[0] */
	uint64_t next;		/* object offset wanted next */
	size_t cap;
	uint64_t again;		/* bytes handed a second time */
	unsigned calls;
	unsigned fail_at;	/* the call that fails; 0: none */
};

static inline int sink_fn(void *arg, uint64_t off, const void *p, size_t n)
{
	struct sink *k = arg;
	uint64_t skip;

	if (++k->calls == k->fail_at)
		return -ENOSPC;
	if (off > k->next)
		return -EIO;
	skip = k->next - off < n ? k->next - off : n;
	k->again += skip;
	if (skip == n)
		return 0;
	if (k->next - k->base + (n - skip) > k->cap)
		return -EOVERFLOW;
	memcpy(k->buf + (k->next - k->base), (const char *)p + skip,
	       n - skip);
	k->next += n - skip;
	return 0;
}

#endif
