/* SPDX-License-Identifier: MIT */
/*
 * The field tokenizer: the one RFC 4180 field grammar of mlfs
 * (csv_field_next(), with csv_field_plain() in csv.h as its inline fast
 * path), which csv_scan(), the training table (ml/table.c) and predict's
 * rows (ml/predict.c) all read fields with; and the errors those readers
 * share (csv_ragged(), csv_no_rows(), csv_too_many(), csv_too_big()).
 *
 * No global state: any thread, one struct csv_tok per thread at a time.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "csv_int.h"
#include "problem.h"

/* Byte classes for the field scanners; 0 is an ordinary byte. */
enum { CH_OK, CH_COMMA, CH_LF, CH_CR, CH_QUOTE, CH_NUL, CH_HIGH };

#define X8(v) v, v, v, v, v, v, v, v
#define X64(v) X8(v), X8(v), X8(v), X8(v), X8(v), X8(v), X8(v), X8(v)

const unsigned char csv_plain_stop[256] = {
	[0] = CH_NUL,
	['\n'] = CH_LF,
	['\r'] = CH_CR,
	['"'] = CH_QUOTE,
	[','] = CH_COMMA,
	[0x80] = X64(CH_HIGH),
	X64(CH_HIGH),
};

/* Inside quotes, commas and CRs are data; LFs only move the line count. */
static const unsigned char quoted_class[256] = {
	[0] = CH_NUL,
	['\n'] = CH_LF,
	['"'] = CH_QUOTE,
	[0x80] = X64(CH_HIGH),
	X64(CH_HIGH),
};

int csv_too_big(struct problem *pb, uint64_t line, uint64_t col,
		const char *what, size_t lim)
{
	problem_set(pb, pos_u(line), pos_u(col), "%s longer than %zu bytes",
		    what, lim);
	return -EFBIG;
}

/* Length of the valid UTF-8 sequence at p (2..4), or 0. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
	size_t left = (size_t)(end - p);
	unsigned lo = 0x80;
	unsigned hi = 0xbf;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		return left >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (p[0] >= 0xe0 && p[0] <= 0xef) {
		if (p[0] == 0xe0)
			lo = 0xa0; /* overlong */
		if (p[0] == 0xed)
			hi = 0x9f; /* surrogates */
		return left >= 3 && p[1] >= lo && p[1] <= hi &&
		       (p[2] & 0xc0) == 0x80 ? 3 : 0;
	}
	if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		if (p[0] == 0xf0)
			lo = 0x90; /* overlong */
		if (p[0] == 0xf4)
			hi = 0x8f; /* past U+10FFFF */
		return left >= 4 && p[1] >= lo && p[1] <= hi &&
		       (p[2] & 0xc0) == 0x80 && (p[3] & 0xc0) == 0x80 ? 4 : 0;
	}
	return 0;
}

/*
 * The error for the byte at q that stopped a field scan and is neither
 * grammar nor the start of a valid UTF-8 sequence: 0 if it is data
 * (*len set to its bytes), else -EINVAL with t->pb.
 */
static int odd_byte(struct csv_tok *t, const unsigned char *q,
		    const unsigned char *end, size_t *len)
{
	uint64_t col = tok_col(t, (const char *)q);

	if (!*q)
		return problem_set(t->pb, pos_u(t->line), pos_u(col),
				   "binary data (NUL byte)");
	*len = t->check_utf8 ? utf8_seq(q, end) : 1;
	if (!*len)
		return problem_set(t->pb, pos_u(t->line), pos_u(col),
				   "invalid UTF-8");
	return 0;
}

int csv_field_next(struct csv_tok *t, struct csv_field *f)
{
	const unsigned char *p = (const unsigned char *)t->p;
	const unsigned char *end = (const unsigned char *)t->end;
	const unsigned char *q;
	size_t n;
	int rc;

	f->line = t->line;
	f->col = tok_col(t, t->p);
	f->esc = false;
	if (p < end && *p == '"') {
		q = p + 1;
		for (;;) {
			while (q < end && !quoted_class[*q])
				q++;
			if (q == end)
				return problem_set(t->pb, pos_u(f->line),
						   pos_u(f->col),
						   "unterminated quoted field");
			if (*q == '"') {
				if (q + 1 < end && q[1] == '"') {
					f->esc = true;
					q += 2;
					continue;
				}
				break;
			}
			if (*q == '\n') {
				q++;
				t->line++;
				t->line_start = (const char *)q;
				continue;
			}
			rc = odd_byte(t, q, end, &n);
			if (rc < 0)
				return rc;
			q += n;
		}
		f->p = (const char *)p + 1;
		f->len = (size_t)(q - p) - 1;
		q++;
		if (q < end && *q != ',' && *q != '\n' &&
		    !(*q == '\r' && q + 1 < end && q[1] == '\n'))
			return problem_set(
				t->pb, pos_u(t->line),
				pos_u(tok_col(t, (const char *)q)),
				"unexpected text after closing quote");
	} else {
		q = csv_plain_skip(p, end);
		for (;;) {
			while (q < end && !csv_plain_stop[*q])
				q++;
			if (q == end || *q == ',' || *q == '\n')
				break;
			if (*q == '\r') {
				/* A lone CR is data; CRLF ends the record. */
				if (q + 1 < end && q[1] == '\n')
					break;
				q++;
				continue;
			}
			if (*q == '"')
				return problem_set(
					t->pb, pos_u(t->line),
					pos_u(tok_col(t, (const char *)q)),
					"quote inside unquoted field");
			rc = odd_byte(t, q, end, &n);
			if (rc < 0)
				return rc;
			q += n;
		}
		f->p = (const char *)p;
		f->len = (size_t)(q - p);
	}
	if (f->len > t->max_field)
		return csv_too_big(t->pb, f->line, f->col, "field",
				   t->max_field);
	f->term_at = (const char *)q;
	f->term_line = t->line;
	f->term_col = tok_col(t, (const char *)q);
	if (q == end) {
		f->term = CSV_TERM_EOF;
	} else if (*q == ',') {
		f->term = CSV_TERM_COMMA;
		q++;
	} else {
		f->term = CSV_TERM_EOL;
		q += *q == '\r' ? 2 : 1;
		t->line++;
		t->line_start = (const char *)q;
	}
	t->p = (const char *)q;
	return 0;
}

int sb_csv_field(struct strbuf *out, const char *f, size_t len)
{
	if (!memchr(f, ',', len) && !memchr(f, '"', len) &&
	    !memchr(f, '\n', len) && !memchr(f, '\r', len))
		return sb_append(out, f, len);
	sb_puts(out, "\"");
	for (size_t b = 0; b < len; b++) {
		if (f[b] == '"')
			sb_puts(out, "\"");
		sb_append(out, f + b, 1);
	}
	return sb_puts(out, "\"");
}

size_t csv_unescape(char *dst, const char *p, size_t n)
{
	size_t i;
	size_t j = 0;

	for (i = 0; i < n; i++) {
		dst[j++] = p[i];
		if (p[i] == '"')
			i++;
	}
	return j;
}

int csv_ragged(struct problem *pb, uint64_t line, uint64_t col, size_t n,
	       size_t ncols)
{
	return problem_set(pb, pos_u(line), pos_u(col),
			   "record has %zu field%s, header has %zu", n,
			   n == 1 ? "" : "s", ncols);
}

int csv_no_rows(struct csv_tok *t)
{
	/* Point at the end of the input, where data should be. */
	for (; t->p < t->end; t->p++) {
		if (*t->p == '\n') {
			t->line++;
			t->line_start = t->p + 1;
		}
	}
	return problem_set(t->pb, pos_u(t->line), pos_u(tok_col(t, t->end)),
			   "no data rows");
}

int csv_too_many(struct csv_tok *t, size_t ncols)
{
	uint64_t line = t->line;
	uint64_t col = tok_col(t, t->p);
	size_t n = ncols;
	struct csv_field f;
	int rc;

	do {
		rc = csv_field_next(t, &f);
		if (rc < 0)
			return rc;
		n++;
	} while (f.term == CSV_TERM_COMMA);
	return csv_ragged(t->pb, line, col, n, ncols);
}

int csv_line_fields(const char *p, size_t len, size_t max_field, size_t max,
		    struct strbuf *arena, size_t *off, size_t *n,
		    struct problem *pb)
{
	struct csv_tok t = { p, p + len, p, 1, max_field, true, pb };
	struct csv_field f;
	int rc;

	arena->len = 0;
	*n = 0;
	do {
		if (*n == max)
			return problem_set(pb, 1, 0, "more than %zu fields", max);
		rc = csv_field_next(&t, &f);
		if (rc < 0)
			return rc;
		off[2 * *n] = arena->len;
		if (f.esc) {
			char *u = malloc(f.len + 1);

			if (!u)
				return -ENOMEM;
			rc = sb_append(arena, u, csv_unescape(u, f.p, f.len));
			free(u);
		} else {
			rc = sb_append(arena, f.p, f.len);
		}
		if (rc < 0)
			return rc;
		off[2 * *n + 1] = arena->len - off[2 * *n];
		(*n)++;
	} while (f.term == CSV_TERM_COMMA);
	return 0;
}
