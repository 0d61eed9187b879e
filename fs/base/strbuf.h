/* SPDX-License-Identifier: MIT */
/*
 * A growable string: what show() ops render a file's content into, and
 * what renderers of every layer append to.  Any thread (one owner).
 */
#ifndef MLFS_FS_STRBUF_H
#define MLFS_FS_STRBUF_H

#include <stddef.h>

struct strbuf {
	char *buf;
	size_t len;
	size_t cap;
	size_t max; /* ceiling (0: 64 MiB); past it appends fail -E2BIG */
	int err;    /* sticky first error */
};

int sb_append(struct strbuf *sb, const char *s, size_t len);
int sb_printf(struct strbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int sb_puts(struct strbuf *sb, const char *s);
void sb_free(struct strbuf *sb);

#endif
