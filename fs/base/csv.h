/* SPDX-License-Identifier: MIT */
/*
 * CSV: an RFC 4180 reader (quotes, doubled quotes, embedded commas and
 * newlines, CRLF or LF, an optional UTF-8 BOM) that validates a whole file,
 * infers its schema and computes per-column statistics in one pass, and
 * can parse numeric columns to a contiguous float matrix in the same pass.
 *
 * The first record is the header.  Every field and line is bounded by
 * struct csv_limits.  Pure functions of their input: any thread.
 */
#ifndef MLFS_FS_CSV_H
#define MLFS_FS_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "problem.h"

enum csv_type {
	CSV_NUMERIC = 0,
	CSV_CATEGORICAL,
	CSV_TEXT,
	CSV_TIME,
};

enum csv_role {
	CSV_ROLE_FEATURE = 0,
	CSV_ROLE_LABEL,
	CSV_ROLE_ID,
	CSV_ROLE_PII,
	CSV_ROLE_TIME,
};

struct csv_limits {
	size_t max_field; /* bytes in one field; 0: 1 MiB */
	size_t max_line;  /* bytes in one record; 0: 16 MiB */
	size_t max_cols;  /* columns; 0: 65536 */
};

struct csv_class {
	char *value;    /* owned */
	uint64_t count;
};

/*
 * Distinct values are counted exactly up to this many per column (text
 * values are compared by 64-bit hash past 1000 of them), as long as the
 * exact sets of all columns together stay under 64 MiB; beyond either, a
 * HyperLogLog estimate (about 2% error).  Values that parse as numbers
 * are compared as numbers in every column: "1", "1.0" and "01" are one.
 */
#define CSV_DISTINCT_EXACT 65536
/* At most this many classes are kept per column (the most frequent). */
#define CSV_MAX_CLASSES 256

struct csv_column {
	char *name;          /* owned; header text, unquoted, trimmed */
	enum csv_type type;  /* inferred; the rules are in csv.c */
	enum csv_role role;  /* CSV_ROLE_FEATURE; the caller assigns roles */
	uint64_t count;      /* non-missing values */
	uint64_t missing;    /* empty, NA, N/A, NaN, null, None, ? (any case) */
	double mean;         /* numeric columns; NAN otherwise */
	double std;          /* population std, numeric; NAN otherwise */
	double min;          /* numeric; NAN otherwise */
	double max;          /* numeric; NAN otherwise */
	uint64_t distinct;   /* exact if !distinct_estimated */
	bool distinct_estimated; /* past CSV_DISTINCT_EXACT: an estimate */
	/*
	 * Categorical (and integer-valued numeric columns with at most
	 * CSV_MAX_CLASSES distinct values): value counts, most frequent
	 * first, ties by value.  NULL/0 otherwise.  A numeric class is the
	 * integer in decimal ("3"); a categorical one the first spelling
	 * seen, unquoted and trimmed.
	 */
	struct csv_class *classes;
	size_t nclasses;
};

struct csv_info {
	size_t ncols;
	struct csv_column *cols; /* owned, ncols of them */
	uint64_t nrows;          /* data records, header excluded */
	bool bom;                /* the input started with a UTF-8 BOM */
};

/*
 * Optional matrix output of csv_scan: every column as float, row-major,
 * nrows x ncols.  Missing values are NAN, and so is every cell of a
 * column whose type is not CSV_NUMERIC.
 */
struct csv_matrix {
	float *data;   /* owned (free()) */
	uint64_t rows;
	size_t cols;
};

/*
 * csv_scan: validate data[0..len) as CSV and infer schema and stats.
 *
 * Errors (pb filled with line and column, 1-based, counted in bytes
 * within the physical line, after a BOM): -EINVAL for an empty input, no
 * data rows, a ragged record ("record has 3 fields, header has 4"), an
 * unterminated quote, a stray quote inside an unquoted field or text
 * after a closing one, NUL bytes ("binary data (NUL byte)") or invalid
 * UTF-8, an empty or duplicate header name; -EFBIG for a field, record
 * or header over the limits; -ENOMEM.  Blank lines at the end are
 * ignored; elsewhere a blank line is a record of one empty field.
 *
 * lim may be NULL (defaults).  mat may be NULL; if not, it is filled with
 * the float matrix.  On success *out is owned by the caller
 * (csv_info_free); on failure *out is NULL and mat->data NULL.
 */
int csv_scan(const char *data, size_t len, const struct csv_limits *lim,
	     struct csv_info **out, struct csv_matrix *mat,
	     struct problem *pb);

/* csv_info_free(NULL) does nothing. */
void csv_info_free(struct csv_info *info);

/* Names: "numeric", "categorical", "text", "time"; and back (-EINVAL). */
const char *csv_type_name(enum csv_type t);
int csv_type_parse(const char *s, enum csv_type *out);
/* Names: "feature", "label", "id", "pii", "time"; and back (-EINVAL). */
const char *csv_role_name(enum csv_role r);
int csv_role_parse(const char *s, enum csv_role *out);

/*
 * csv_parse_double: parse one numeric field (leading/trailing spaces
 * allowed) exactly as csv_scan does.  Returns true and sets *out on
 * success.
 */
bool csv_parse_double(const char *s, size_t len, double *out);

/*
 * csv_is_missing: is the field (surrounding spaces and tabs allowed) a
 * missing value by csv_scan's rule: empty, NA, N/A, NaN, null, None or ?
 * in any case.
 */
bool csv_is_missing(const char *s, size_t len);

/*
 * An incremental check of records as they are appended (`>>`, a
 * sequential cp), so that a bad record fails the write that carries it:
 * the field count against the header, NUL bytes, UTF-8 and quoting.  The
 * whole file is still scanned by csv_scan at close; this only moves what
 * can be judged early.  Zero it, then feed bytes in order.  The header is
 * the first record fed, unless ncols is set beforehand (appending to a
 * version whose header has ncols fields).  line counts records from 1
 * (the header) for messages.
 */
struct csv_feed {
	size_t ncols;      /* header's fields; 0: the next record is it */
	size_t fields;     /* fields so far in the current record */
	uint64_t line;     /* of the current record, 1-based */
	uint64_t col;      /* bytes into the current line */
	uint64_t extra_col; /* 1-based column of the first field past the
			       header's count; 0: none yet */
	unsigned utf8;     /* continuation bytes still expected */
	bool quoted;       /* inside a quoted field */
	bool quote_end;    /* a quote in a quoted field: its end, or the
			      first of a doubled pair */
	bool field_bytes;  /* the current field has had a byte */
};

/*
 * csv_feed: check buf[0..len) as the next bytes of the file.  0, or
 * -EINVAL with pb (line, column, "record has 2 fields, header has 5",
 * "binary data (NUL byte)", "invalid UTF-8", "stray quote"); after an
 * error the state is undefined.
 */
int csv_feed(struct csv_feed *c, const char *buf, size_t len,
	     struct problem *pb);

#endif
