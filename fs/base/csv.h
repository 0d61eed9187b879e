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
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "problem.h"
#include "strbuf.h"

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

/*
 * csv_scan_split: csv_scan() in parts parts scanned on threads, whatever
 * the input's size (0: as csv_scan() chooses, by size and cores; 1: one
 * pass).  For tests and benchmarks: the outcome is csv_scan()'s, errors
 * included, and statistics equal but for the rounding of sums.
 */
int csv_scan_split(const char *data, size_t len,
		   const struct csv_limits *lim, struct csv_info **out,
		   struct csv_matrix *mat, struct problem *pb, size_t parts);

/*
 * The streaming scan, of an input that grows at its end (a file being
 * copied in), so that the work is done as the bytes arrive and the end
 * only finishes it: csv_scanner_new(), then csv_scanner_more() whenever
 * more has arrived (data[0..len): everything so far, at the same address
 * every time, never changed once given), then csv_scanner_end() with the
 * whole input, which gives exactly what csv_scan() of it gives (errors
 * included: any problem on the way is left to one csv_scan() at the
 * end) and frees the scanner; csv_scanner_free() drops one unfinished.
 * One thread at a time.
 */
struct csv_scanner;
int csv_scanner_new(const struct csv_limits *lim, struct csv_scanner **out);
void csv_scanner_more(struct csv_scanner *s, const char *data, size_t len);
int csv_scanner_end(struct csv_scanner *s, const char *data, size_t len,
		    struct csv_info **out, struct problem *pb);
void csv_scanner_free(struct csv_scanner *s);

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
 * csv_numbers: read the fields of one line (p to end, without its line
 * end) from p on, while each is a plain number: the field csv_field_next
 * would read there, ending at a comma or at end, which csv_parse_double
 * reads as a finite value with no blank around it; in one pass over the
 * bytes, where the tokenizer and then the parser took two.  Up to max
 * fields: each's text in fields[i], flen[i] (pointing into the line) and
 * its value in num[i].  Returns how many; *next is where the next field
 * starts (past the comma after the last one read), and *ended is true
 * when the last one read ended the line.  Any other field (text, a
 * blank, quotes, a missing value, a number out of range) stops it there,
 * unread, for csv_field_next.
 */
size_t csv_numbers(const char *p, const char *end, const char **fields,
		   size_t *flen, double *num, size_t max, const char **next,
		   bool *ended);

/*
 * csv_parse_time: parse one time field (surrounding spaces and tabs
 * allowed) as csv_scan recognises CSV_TIME values: ISO 8601 as it appears
 * in data, YYYY-MM-DD, then optionally 'T' or ' ' and HH:MM[:SS[.frac]],
 * then optionally 'Z' or an offset +HH:MM / -HH:MM, each part
 * range-checked (Feb 29 only in leap years; second 60 is a leap second).
 * Returns true and sets *out to seconds since the epoch, UTC (a time
 * without an offset is UTC).
 */
bool csv_parse_time(const char *s, size_t n, double *out);

/*
 * csv_is_missing: is the field (surrounding spaces and tabs allowed) a
 * missing value by csv_scan's rule: empty, NA, N/A, NaN, null, None or ?
 * in any case.
 */
bool csv_is_missing(const char *s, size_t len);

/*
 * The field tokenizer: the one RFC 4180 field grammar that csv_scan,
 * the training table (mlcore's table_parse) and predict's rows share.
 * A field is quoted ("..." with "" for a quote, and commas, CRs and LFs
 * as data) or plain (ending at a comma, an LF or a CRLF; a lone CR is
 * data), and is followed by a comma, a line end or the end of the input.
 * A quote inside a plain field, text after a closing quote, an
 * unterminated quote and a NUL byte are errors, and so is invalid UTF-8
 * when check_utf8 is set (otherwise bytes >= 0x80 are data).
 *
 * Set up a struct csv_tok on the input, then call csv_field_next() once a
 * field; it moves p, line and line_start past the field and its
 * terminator, so a caller may keep the position in its own variables
 * between calls (csv_scan's numeric fast path does) as long as it writes
 * them back before the next one.
 */
enum csv_term {
	CSV_TERM_COMMA = 0, /* another field of the record follows */
	CSV_TERM_EOL,       /* LF or CRLF: the record ends */
	CSV_TERM_EOF,       /* the input ends */
};

struct csv_tok {
	const char *p;          /* next byte to read */
	const char *end;        /* end of the input */
	const char *line_start; /* first byte of p's physical line */
	uint64_t line;          /* 1-based physical line of p */
	size_t max_field;       /* bytes of raw content; past it -EFBIG */
	bool check_utf8;        /* refuse invalid UTF-8 */
	struct problem *pb;     /* filled on error */
};

struct csv_field {
	const char *p;          /* raw content: inside the quotes if quoted */
	size_t len;             /* bytes of raw content */
	bool esc;               /* content holds "" pairs: csv_unescape() */
	enum csv_term term;
	const char *term_at;    /* the terminator, or the end of the input */
	uint64_t line;          /* where the field starts, 1-based */
	uint64_t col;           /* bytes into that line, 1-based */
	uint64_t term_line;     /* where the terminator is */
	uint64_t term_col;
};

/*
 * csv_field_next: read the field at t->p and its terminator into *f
 * (which points into the input), moving t->p, t->line and t->line_start
 * past both.  0, or with t->pb filled (line and column 1-based, in bytes
 * within the physical line): -EINVAL "unterminated quoted field" (at the
 * opening quote), "quote inside unquoted field", "unexpected text after
 * closing quote", "binary data (NUL byte)", "invalid UTF-8"; -EFBIG
 * "field longer than N bytes" (at the field's start).  Any thread.
 */
int csv_field_next(struct csv_tok *t, struct csv_field *f);

/*
 * csv_ragged: fill pb with "record has n field(s), header has ncols" at
 * line:col and return -EINVAL, the answer every reader here gives a
 * record whose field count is not the header's.
 */
int csv_ragged(struct problem *pb, uint64_t line, uint64_t col, size_t n,
	       size_t ncols);

/*
 * csv_no_rows: the header was the last record: move t to the end of the
 * input and fill t->pb with "no data rows" there.  Returns -EINVAL.
 */
int csv_no_rows(struct csv_tok *t);

/*
 * csv_too_many: t->p is at field ncols + 1 of a record.  Read the rest
 * of the record to count its fields, and return csv_ragged()'s -EINVAL
 * at that field's position, or the tokenizer's error if one comes first.
 */
int csv_too_many(struct csv_tok *t, size_t ncols);

/*
 * Bytes that end the scan of a plain field: comma, LF, CR, quote, NUL
 * and every byte >= 0x80 (nonzero); the others (0) are data.
 */
extern const unsigned char csv_plain_stop[256];

/*
 * csv_plain_skip: p moved on 16 or 8 bytes at a time to the first byte
 * that ends a plain field's scan (csv_plain_stop), or by whole words as
 * far as end allows.  A hex digest or an e-mail address is a few words, and a
 * number's end is found in its word, where the byte loop after this pays
 * a table load and a branch a byte (and a mispredicted exit).  (v - 1) &
 * ~v has a high bit set in a byte (or after one) that is zero in v, and
 * none below the first such byte, so the lowest bit of hit marks the
 * first stop; no byte of x has its high bit once x & 0x80.. is 0, so
 * neither has x ^ c.  With SSE2 (every x86-64), 16 bytes at a time
 * first: a compare per stop byte, and the movemask gives the high bits
 * for free.  A 64-byte digest takes 4 steps instead of 8, each shorter;
 * the words then finish what is left of the input.
 */
static inline const unsigned char *csv_plain_skip(const unsigned char *p,
						  const unsigned char *end)
{
#ifdef __SSE2__
	while (end - p >= 16) {
		__m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
		__m128i hit = _mm_or_si128(
			_mm_cmpeq_epi8(x, _mm_setzero_si128()),
			_mm_cmpeq_epi8(x, _mm_set1_epi8(',')));
		unsigned m;

		hit = _mm_or_si128(hit, _mm_cmpeq_epi8(x, _mm_set1_epi8('\n')));
		hit = _mm_or_si128(hit, _mm_cmpeq_epi8(x, _mm_set1_epi8('\r')));
		hit = _mm_or_si128(hit, _mm_cmpeq_epi8(x, _mm_set1_epi8('"')));
		m = (unsigned)_mm_movemask_epi8(_mm_or_si128(hit, x));
		if (m)
			return p + __builtin_ctz(m);
		p += 16;
	}
#endif
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	while (end - p >= 8) {
		const uint64_t ones = 0x0101010101010101ULL;
		const uint64_t high = 0x8080808080808080ULL;
		uint64_t x, hit;

		memcpy(&x, p, sizeof(x));
		hit = x;
		hit |= (x - ones) & ~x;
		hit |= ((x ^ (ones * ',')) - ones) & ~(x ^ (ones * ','));
		hit |= ((x ^ (ones * '\n')) - ones) & ~(x ^ (ones * '\n'));
		hit |= ((x ^ (ones * '\r')) - ones) & ~(x ^ (ones * '\r'));
		hit |= ((x ^ (ones * '"')) - ones) & ~(x ^ (ones * '"'));
		hit &= high;
		if (hit)
			return p + (__builtin_ctzll(hit) >> 3);
		p += 8;
	}
#else
	(void)end;
#endif
	return p;
}

/*
 * csv_field_plain: csv_field_next's fast path, inline for record loops.
 * If the field at t->p is plain ASCII without a CR or a NUL, at most
 * t->max_field bytes, ending at a comma, an LF or the end of the input,
 * move past it and its terminator exactly as csv_field_next() would, set
 * *p, *len and *term, and return true.  Otherwise change nothing and
 * return false: csv_field_next() reads that field.
 */
static inline bool csv_field_plain(struct csv_tok *t, const char **p,
				   size_t *len, enum csv_term *term)
{
	const unsigned char *s = (const unsigned char *)t->p;
	const unsigned char *end = (const unsigned char *)t->end;
	const unsigned char *q = csv_plain_skip(s, end);

	while (q < end && !csv_plain_stop[*q])
		q++;
	if ((size_t)(q - s) > t->max_field)
		return false;
	if (q == end) {
		*term = CSV_TERM_EOF;
	} else if (*q == ',') {
		*term = CSV_TERM_COMMA;
	} else if (*q == '\n') {
		*term = CSV_TERM_EOL;
	} else {
		return false;
	}
	*p = (const char *)s;
	*len = (size_t)(q - s);
	t->p = (const char *)q + (q < end);
	if (*term == CSV_TERM_EOL) {
		t->line++;
		t->line_start = t->p;
	}
	return true;
}

/*
 * csv_unescape: copy raw content p[0..n) to dst with each "" pair made
 * one quote; dst has room for n bytes (it may not overlap p).  Returns
 * the bytes written.
 */
size_t csv_unescape(char *dst, const char *p, size_t n);

/*
 * sb_csv_field: f[0..len) appended to out as one CSV field, quoted (and
 * its quotes doubled) when it holds a comma, a quote, a CR or an LF.
 * out->err.
 */
int sb_csv_field(struct strbuf *out, const char *f, size_t len);

/*
 * csv_line_fields: the fields of one record held on one line (p, len
 * bytes, without its newline), unescaped into arena (emptied first):
 * field i is arena->buf + off[2i], off[2i + 1] bytes (off holds 2 * max).
 * -EINVAL with pb (line 1, the column) for bad quoting, a NUL byte,
 * invalid UTF-8, a field over max_field bytes or more than max fields;
 * -ENOMEM.  What the streams of feature sets read rows with.
 */
int csv_line_fields(const char *p, size_t len, size_t max_field, size_t max,
		    struct strbuf *arena, size_t *off, size_t *n,
		    struct problem *pb);

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
