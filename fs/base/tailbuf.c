/* SPDX-License-Identifier: MIT */
/* Lines kept for tail -f (tailbuf.h). */
#include <string.h>

#include "tailbuf.h"

void tailbuf_append(struct tailbuf *t, const char *p, size_t n, size_t max)
{
	struct strbuf *sb = &t->sb;

	if (sb->len && sb->len + n > max) {
		const char *cut = memchr(sb->buf + sb->len / 2, '\n',
					 sb->len - sb->len / 2);
		size_t drop = cut ? (size_t)(cut + 1 - sb->buf) : sb->len;

		memmove(sb->buf, sb->buf + drop, sb->len - drop);
		sb->len -= drop;
		t->base += drop;
	}
	sb_append(sb, p, n);
}

uint64_t tailbuf_size(const struct tailbuf *t)
{
	return t->base + t->sb.len;
}

size_t tailbuf_read(const struct tailbuf *t, char *buf, size_t size,
		    uint64_t off)
{
	size_t n;

	if (off < t->base)
		off = t->base;
	if (off - t->base >= t->sb.len)
		return 0;
	n = t->sb.len - (size_t)(off - t->base);
	if (n > size)
		n = size;
	memcpy(buf, t->sb.buf + (off - t->base), n);
	return n;
}

void tailbuf_free(struct tailbuf *t)
{
	sb_free(&t->sb);
	t->base = 0;
}
