/* SPDX-License-Identifier: MIT */
/*
 * struct problem: where bad input is and what is wrong with it.  Parsers
 * fill one and return -EINVAL (or -E2BIG/-EFBIG); callers render it as
 * "path:line:col: msg" and send it to .mlfs/errors and the log.
 */
#ifndef MLFS_FS_PROBLEM_H
#define MLFS_FS_PROBLEM_H

#include <stddef.h>

struct json_t;

struct problem {
	char path[512]; /* mount-relative path of the file, may be empty */
	unsigned line;  /* 1-based; 0 if not applicable */
	unsigned col;   /* 1-based; 0 if not applicable */
	char msg[512];  /* lower-case, no trailing period */
};

/*
 * problem_set: fill pb (line, col and a printf-style message; path is left
 * as it is) and return -EINVAL, so parsers can write
 * `return problem_set(pb, line, col, "...")`.  pb may be NULL.
 */
int problem_set(struct problem *pb, unsigned line, unsigned col,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * problem_field: like problem_set, at the first occurrence of the quoted
 * key "field" in text (line and column found there, 1:1 if absent), with
 * the message prefixed by "\"field\": ".  Returns -EINVAL.
 */
int problem_field(struct problem *pb, const char *text, const char *field,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * problem_locate: the line and column (1-based) of the first occurrence of
 * the quoted key "needle" in text; 1:1 when text is NULL or has none.
 */
void problem_locate(const char *text, const char *needle, unsigned *line,
		    unsigned *col);

/*
 * problem_check_fields: every key of the object obj is one of allowed (a
 * NULL-terminated list), or pb names the first that is not, where
 * problem_field places it: "\"key\": unknown field (expected a, b or c)",
 * or with of (e.g. "monitor", "a feature") "\"key\": unknown field of
 * monitor (expected ...)".  obj need not be an object (then it has no
 * keys); text is the spec as written, for the position.  Returns 0, or
 * -EINVAL with pb filled.  Any thread.
 */
int problem_check_fields(struct problem *pb, const char *text,
			 struct json_t *obj, const char *const *allowed,
			 const char *of);

/* problem_format: "path:line:col: msg" (parts omitted when empty/0). */
void problem_format(const struct problem *pb, char *out, size_t outlen);

#endif
