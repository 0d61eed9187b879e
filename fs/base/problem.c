/* SPDX-License-Identifier: MIT */
/*
 * Filling and rendering struct problem.  Any thread.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "problem.h"

int problem_set(struct problem *pb, unsigned line, unsigned col,
		const char *fmt, ...)
{
	va_list ap;

	if (!pb)
		return -EINVAL;
	pb->line = line;
	pb->col = col;
	va_start(ap, fmt);
	vsnprintf(pb->msg, sizeof(pb->msg), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

void problem_format(const struct problem *pb, char *out, size_t outlen)
{
	const char *path = pb->path[0] ? pb->path : "";
	const char *sep = pb->path[0] ? ":" : "";

	if (pb->line && pb->col)
		snprintf(out, outlen, "%s%s%u:%u: %s", path, sep, pb->line,
			 pb->col, pb->msg);
	else if (pb->line)
		snprintf(out, outlen, "%s%s%u: %s", path, sep, pb->line,
			 pb->msg);
	else
		snprintf(out, outlen, "%s%s%s%s", path, pb->path[0] ? ": " : "",
			 "", pb->msg);
}

int problem_field(struct problem *pb, const char *text, const char *field,
		  const char *fmt, ...)
{
	char q[300], msg[400];
	const char *p, *ls = text;
	unsigned line = 1, col = 1;
	va_list ap;

	if (!pb)
		return -EINVAL;
	snprintf(q, sizeof(q), "\"%s\"", field);
	p = text ? strstr(text, q) : NULL;
	if (p) {
		for (const char *c = text; c < p; c++)
			if (*c == '\n') {
				line++;
				ls = c + 1;
			}
		col = (unsigned)(p - ls) + 1;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return problem_set(pb, line, col, "\"%s\": %s", field, msg);
}
