/* SPDX-License-Identifier: MIT */
/*
 * Small pieces shared by fs/ without FUSE: the name grammar of objects
 * and aliases, and the strbuf that show() ops render into.  Pure
 * functions; any thread.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "strbuf.h"

/*
 * "latest" and every "v<digits>" (v0, v01, v99999999999 as well as v3):
 * not only the names of versions that exist, so that no object or alias
 * can look like a version to a user or to a later spelling check.
 */
static bool name_is_reserved(const char *name)
{
	const char *p;

	if (strcmp(name, "latest") == 0)
		return true;
	if (name[0] != 'v' || !name[1])
		return false;
	for (p = name + 1; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

int node_name_check(const char *name, struct problem *pb)
{
	size_t len = strlen(name);

	if (len == 0)
		return problem_set(pb, 0, 0, "empty name");
	if (len > 255)
		return problem_set(pb, 0, 0, "name longer than 255 bytes");
	if (name[0] == '.')
		return problem_set(pb, 0, 0,
				   "name \"%s\" starts with '.'", name);
	if (name_is_reserved(name))
		return problem_set(pb, 0, 0, "name \"%s\" is reserved", name);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '-')
			continue;
		if (c >= 0x20 && c < 0x7f)
			return problem_set(pb, 0, (unsigned)i + 1,
					   "name \"%s\" has '%c' (allowed: "
					   "letters, digits, '.', '_', '-')",
					   name, c);
		return problem_set(pb, 0, (unsigned)i + 1,
				   "name has byte 0x%02x (allowed: letters, "
				   "digits, '.', '_', '-')",
				   c);
	}
	return 0;
}

bool node_name_is_version(const char *name, unsigned *ver)
{
	unsigned long v = 0;
	const char *p;

	if (name[0] != 'v' || !name[1])
		return false;
	for (p = name + 1; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > 999999999UL)
			return false;
	}
	/* "v01" is not a version name: one spelling per version */
	if (name[1] == '0')
		return false;
	*ver = (unsigned)v;
	return true;
}

int sb_append(struct strbuf *sb, const char *s, size_t len)
{
	size_t max = sb->max ? sb->max : (size_t)64 << 20;

	if (sb->err)
		return sb->err;
	if (sb->len + len + 1 > sb->cap) {
		size_t cap = sb->cap ? sb->cap : 256;
		char *nb;

		while (cap < sb->len + len + 1)
			cap *= 2;
		if (cap > max + 1) {
			if (sb->len + len + 1 > max + 1) {
				sb->err = -E2BIG;
				return sb->err;
			}
			cap = max + 1;
		}
		nb = realloc(sb->buf, cap);
		if (!nb) {
			sb->err = -ENOMEM;
			return sb->err;
		}
		sb->buf = nb;
		sb->cap = cap;
	}
	memcpy(sb->buf + sb->len, s, len);
	sb->len += len;
	sb->buf[sb->len] = '\0';
	return 0;
}

int sb_puts(struct strbuf *sb, const char *s)
{
	return sb_append(sb, s, strlen(s));
}

int sb_printf(struct strbuf *sb, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n < sizeof(small))
		return sb_append(sb, small, (size_t)n);
	{
		char *big = malloc((size_t)n + 1);
		int rc;

		if (!big)
			return sb->err = -ENOMEM;
		va_start(ap, fmt);
		vsnprintf(big, (size_t)n + 1, fmt, ap);
		va_end(ap);
		rc = sb_append(sb, big, (size_t)n);
		free(big);
		return rc;
	}
}

void sb_free(struct strbuf *sb)
{
	free(sb->buf);
	sb->buf = NULL;
	sb->len = sb->cap = 0;
}

static bool unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
	       c == '~';
}

long name_encode(const char *p, size_t len, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (unreserved(c) && !(i == 0 && c == '.')) {
			if (n + 1 >= cap)
				return -ENAMETOOLONG;
			out[n++] = (char)c;
			continue;
		}
		if (n + 3 >= cap)
			return -ENAMETOOLONG;
		out[n++] = '%';
		out[n++] = hex[c >> 4];
		out[n++] = hex[c & 15];
	}
	if (n >= cap)
		return -ENAMETOOLONG;
	out[n] = '\0';
	return (long)n;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
				      : -1;
}

long name_decode(const char *name, size_t len, char *out, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (n + 1 >= cap)
			return -ENAMETOOLONG;
		if (c == '%') {
			int hi, lo;

			if (i + 2 >= len)
				return -EINVAL;
			hi = hexval(name[i + 1]);
			lo = hexval(name[i + 2]);
			if (hi < 0 || lo < 0)
				return -EINVAL;
			c = (unsigned char)(hi << 4 | lo);
			/* one spelling per value: no %XX of what stays plain */
			if (unreserved(c) && !(n == 0 && c == '.'))
				return -EINVAL;
			out[n++] = (char)c;
			i += 2;
			continue;
		}
		if (!unreserved(c) || (i == 0 && c == '.'))
			return -EINVAL;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return (long)n;
}

int name_ref_parse(const char *ref, char *name, size_t nlen, unsigned *ver)
{
	const char *at = strchr(ref, '@');
	size_t len = at ? (size_t)(at - ref) : strlen(ref);
	char *end;
	unsigned long v;

	*ver = 0;
	if (len == 0 || len >= nlen)
		return -EINVAL;
	memcpy(name, ref, len);
	name[len] = '\0';
	if (node_name_check(name, NULL) < 0)
		return -EINVAL;
	if (!at)
		return 0;
	/* digits only: strtoul would also take " 1", "+1" and "-1" */
	if (at[1] < '0' || at[1] > '9')
		return -EINVAL;
	v = strtoul(at + 1, &end, 10);
	if (*end || v == 0 || v > 999999999UL)
		return -EINVAL;
	*ver = (unsigned)v;
	return 0;
}
