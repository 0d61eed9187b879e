/* SPDX-License-Identifier: MIT */
/*
 * Filling and rendering struct problem.  Any thread.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

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

void problem_locate(const char *text, const char *needle, unsigned *line,
		    unsigned *col)
{
	char q[300];
	const char *p, *ls = text;

	*line = 1;
	*col = 1;
	snprintf(q, sizeof(q), "\"%s\"", needle);
	p = text ? strstr(text, q) : NULL;
	if (!p)
		return;
	for (const char *c = text; c < p; c++)
		if (*c == '\n') {
			(*line)++;
			ls = c + 1;
		}
	*col = (unsigned)(p - ls) + 1;
}

int problem_field(struct problem *pb, const char *text, const char *field,
		  const char *fmt, ...)
{
	char msg[400];
	unsigned line, col;
	va_list ap;

	if (!pb)
		return -EINVAL;
	problem_locate(text, field, &line, &col);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return problem_set(pb, line, col, "\"%s\": %s", field, msg);
}

static bool is_one_of(const char *key, const char *const *set)
{
	for (; *set; set++)
		if (strcmp(key, *set) == 0)
			return true;
	return false;
}

int problem_check_fields(struct problem *pb, const char *text,
			 struct json_t *obj, const char *const *allowed,
			 const char *of)
{
	char list[320] = "";
	size_t len = 0;
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v) {
		if (is_one_of(k, allowed))
			continue;
		/* "a, b or c"; a list too long for the message is cut */
		for (size_t i = 0; allowed[i] && len < sizeof(list); i++) {
			const char *sep = ", ";

			if (i == 0)
				sep = "";
			else if (!allowed[i + 1])
				sep = " or ";
			len += (size_t)snprintf(list + len, sizeof(list) - len,
						"%s%s", sep, allowed[i]);
		}
		return problem_field(pb, text, k,
				     "unknown field%s%s (expected %s)",
				     of ? " of " : "", of ? of : "", list);
	}
	return 0;
}
