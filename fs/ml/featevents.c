/* SPDX-License-Identifier: MIT */
/*
 * Event rows (featevents.h): CSV after a header or JSON lines into a
 * batch, checked as the sync checks a source (featcalc.h: times ISO 8601
 * or seconds, reject bounds), with the line and column of the first bad
 * one; and the rows as the event log keeps them.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "csv.h"
#include "featevents.h"
#include "jsonout.h"

#define EVENT_MAX_FIELDS 4096
#define EVENT_MAX_KEY 400
#define EVENT_MAX_FIELD ((size_t)1 << 20) /* bytes of a field */

int feat_log_header(const struct feat_spec *s, struct strbuf *out)
{
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < s->nent; i++)
		rc = feat_put_field(out, s->entity[i], strlen(s->entity[i])) ||
		     sb_append(out, ",", 1);
	rc = rc || feat_put_field(out, s->timestamp, strlen(s->timestamp));
	for (size_t c = 0; rc == 0 && c < s->ncols; c++)
		rc = sb_append(out, ",", 1) ||
		     feat_put_field(out, s->cols[c], strlen(s->cols[c]));
	return rc || sb_append(out, "\n", 1) ? -ENOMEM : 0;
}

/* Room in b for need more events (at least). */
static int grow_by(struct feat_batch *b, size_t ncols, size_t need)
{
	size_t cap = b->cap ? b->cap * 2 : 64;

	b->ncols = ncols;
	if (b->n + need <= b->cap)
		return 0;
	if (cap < b->n + need)
		cap = b->n + need;
#define GROW(f, per)                                                          \
	do {                                                                  \
		void *p_ = realloc(b->f, cap * (per) * sizeof(*b->f) + 1);    \
		if (!p_)                                                      \
			return -ENOMEM;                                       \
		b->f = p_;                                                    \
	} while (0)
	GROW(ev, 1);
	GROW(line, 1);
	GROW(koff, 1);
	GROW(klen, 1);
	GROW(num, ncols);
	GROW(str, ncols);
	GROW(slen, ncols);
	GROW(soff, ncols);
#undef GROW
	b->cap = cap;
	return 0;
}

static int grow(struct feat_batch *b, size_t ncols)
{
	return grow_by(b, ncols, 1);
}

/* One row's values, as text (NULL: the field is absent). */
struct row {
	const char *ent[64];
	size_t entl[64];
	const char *ts;
	size_t tsl;
	const char **col;
	size_t *coll;
};

/*
 * Row r (line line; pos: its columns' places in the header, NULL for
 * JSON) into b.  raw (rawlen bytes, NULL: none): the row's text, whose
 * fields are r's in the log's order and need no quoting; the log takes it
 * as it came unless a column is missing by a word ("NA"), which the log
 * writes empty.
 */
static int add(const struct feat_spec *s, struct feat_batch *b,
	       struct row *r, uint64_t line, const long *pos, const char *raw,
	       size_t rawlen, struct problem *pb)
{
	size_t i = b->n, nc = s->ncols, klen = 0, koff;
	double t;
	int rc = grow(b, nc);

	if (rc < 0)
		return rc;
	if (!r->ts || !(csv_parse_double(r->ts, r->tsl, &t) ||
			(csv_parse_time(r->ts, r->tsl, &t) && (b->iso = true))))
		return problem_set(pb, (unsigned)line,
				   pos ? (unsigned)pos[s->nent] + 1 : 0,
				   "\"%s\": %s", s->timestamp,
				   r->ts ? "not a time (ISO 8601 or seconds "
					   "since the epoch)"
					 : "missing");
	if (!FEAT_TIME_OK(t))
		return problem_set(pb, (unsigned)line,
				   pos ? (unsigned)pos[s->nent] + 1 : 0,
				   "\"%s\": outside the years 0000 to 9999",
				   s->timestamp);
	koff = b->arena.len;
	for (size_t e = 0; e < s->nent; e++) {
		if (!r->ent[e] || !r->entl[e] ||
		    memchr(r->ent[e], FEAT_KEY_SEP, r->entl[e]))
			return problem_set(pb, (unsigned)line,
					   pos ? (unsigned)pos[e] + 1 : 0,
					   "\"%s\": an entity value is needed "
					   "(without the byte 0x1f)",
					   s->entity[e]);
		rc = (e ? sb_append(&b->arena, "\x1f", 1) : 0) ||
		     sb_append(&b->arena, r->ent[e], r->entl[e]);
		klen += r->entl[e] + (e ? 1 : 0);
	}
	if (rc || klen > EVENT_MAX_KEY)
		return rc ? -ENOMEM
			  : problem_set(pb, (unsigned)line, 0,
					"the entity key is longer than %d "
					"bytes",
					EVENT_MAX_KEY);
	b->koff[i] = koff;
	b->klen[i] = klen;
	b->line[i] = line;
	b->ev[i].t = t;
	for (size_t c = 0; c < nc; c++) {
		const char *p = r->col[c];
		size_t l = r->coll[c];
		double v = NAN;
		bool missing = !p || csv_is_missing(p, l);

		b->str[i * nc + c] = NULL;
		b->slen[i * nc + c] = 0;
		b->soff[i * nc + c] = 0;
		if (missing && l)
			raw = NULL; /* "NA": the log writes it empty */
		if (!missing) {
			if (!csv_parse_double(p, l, &v))
				v = NAN;
			b->soff[i * nc + c] = b->arena.len;
			b->slen[i * nc + c] = l;
			b->str[i * nc + c] = p; /* set again by seal */
			if (sb_append(&b->arena, p, l) < 0)
				return -ENOMEM;
		}
		b->num[i * nc + c] = v;
		for (size_t f = 0; f < s->nfeat; f++) {
			const struct feat_def *d = &s->feat[f];

			if (d->col == (long)c && d->viol == VIOL_REJECT &&
			    !isnan(v) && (v < d->min || v > d->max))
				return problem_set(
					pb, (unsigned)line,
					pos ? (unsigned)pos[s->nent + 1 + c] + 1
					    : 0,
					"feature \"%s\": %g outside [%g, %g] "
					"(on_violation reject)",
					d->name, v, d->min, d->max);
		}
	}
	/* the log's row */
	if (raw) {
		if (sb_append(&b->csv, raw, rawlen) < 0 ||
		    sb_append(&b->csv, "\n", 1) < 0)
			return -ENOMEM;
		b->n++;
		return 0;
	}
	rc = 0;
	for (size_t e = 0; rc == 0 && e < s->nent; e++)
		rc = feat_put_field(&b->csv, r->ent[e], r->entl[e]) ||
		     sb_append(&b->csv, ",", 1);
	rc = rc || feat_put_field(&b->csv, r->ts, r->tsl);
	for (size_t c = 0; rc == 0 && c < nc; c++)
		rc = sb_append(&b->csv, ",", 1) ||
		     (b->str[i * nc + c] &&
		      feat_put_field(&b->csv, r->col[c], r->coll[c]));
	if (rc || sb_append(&b->csv, "\n", 1) < 0)
		return -ENOMEM;
	b->n++;
	return 0;
}

/* The fields of one line (no newline), unescaped into arena. */
static int fields(const char *p, size_t len, struct strbuf *arena,
		  size_t *off, size_t *n, struct problem *pb)
{
	return csv_line_fields(p, len, EVENT_MAX_FIELD, EVENT_MAX_FIELDS,
			       arena, off, n, pb);
}

/* The header's position of each needed column (-1: absent). */
static int header_map(const struct feat_spec *s, const char *h, size_t hlen,
		      long *pos, struct problem *pb)
{
	struct strbuf ar = { 0 };
	size_t *off = malloc(2 * EVENT_MAX_FIELDS * sizeof(*off));
	size_t n, need = s->nent + 1 + s->ncols;
	int rc = off ? fields(h, hlen, &ar, off, &n, pb) : -ENOMEM;

	for (size_t i = 0; rc == 0 && i < need; i++) {
		const char *name = i < s->nent    ? s->entity[i]
				   : i == s->nent ? s->timestamp
						  : s->cols[i - s->nent - 1];

		pos[i] = -1;
		for (size_t f = 0; f < n; f++)
			if (off[2 * f + 1] == strlen(name) &&
			    memcmp(ar.buf + off[2 * f], name,
				   off[2 * f + 1]) == 0)
				pos[i] = (long)f;
		if (pos[i] < 0 && i <= s->nent)
			rc = problem_set(pb, 1, 0,
					 "the header has no column \"%s\"",
					 name);
	}
	pos[need] = rc == 0 ? (long)n : 0;
	sb_free(&ar);
	free(off);
	return rc;
}

/*
 * The fields of a line (len bytes, no newline) that holds only plain
 * ones, as pointers into it: off[2i] is field i's offset, off[2i + 1]
 * its length.  false (the caller goes to csv_line_fields, which judges
 * the line and names what is wrong) for anything else: not exactly nf
 * fields, a quote, a CR (data in a plain field, which the log would
 * quote), a NUL, a byte of UTF-8 (to be checked), a field over the
 * limit.  The rows of a stream are nearly always such lines: this split
 * copies nothing (csv_line_fields copies every field into an arena), and
 * with the row logged as it came the parse went from 12 % to 6 % of a
 * 2M-event stream's profile.
 */
static bool plain_fields(const char *p, size_t len, size_t nf, size_t *off)
{
	size_t n = 0, start = 0;

	if (len > EVENT_MAX_FIELD)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == ',') {
			if (n + 1 >= nf)
				return false;
			off[2 * n] = start;
			off[2 * n + 1] = i - start;
			n++;
			start = i + 1;
		} else if (c == '"' || c == '\r' || c == 0 || c >= 0x80) {
			return false;
		}
	}
	if (n + 1 != nf)
		return false;
	off[2 * n] = start;
	off[2 * n + 1] = len - start;
	return true;
}

static int csv_rows(const struct feat_spec *s, const long *pos,
		    const char *text, size_t len, uint64_t line,
		    struct feat_batch *b, struct row *r, struct problem *pb)
{
	size_t nf = (size_t)pos[s->nent + 1 + s->ncols];
	size_t need = s->nent + 1 + s->ncols;
	size_t *off = malloc(2 * EVENT_MAX_FIELDS * sizeof(*off));
	struct strbuf ar = { 0 };
	bool in_order = nf == need; /* the header is the log's */
	int rc = off ? 0 : -ENOMEM;

	for (size_t i = 0; i < need; i++)
		in_order = in_order && pos[i] == (long)i;
	while (rc == 0 && len) {
		const char *nl = memchr(text, '\n', len);
		size_t full = nl ? (size_t)(nl - text) : len, l = full, n;
		const char *base; /* where the fields are */
		bool plain;

		if (l && text[l - 1] == '\r')
			l--;
		plain = plain_fields(text, l, nf, off);
		if (plain) {
			n = nf;
			base = text;
		} else {
			rc = fields(text, l, &ar, off, &n, pb);
			base = ar.buf;
		}
		if (rc == -EINVAL) {
			pb->line = (unsigned)line;
		} else if (rc == 0 && n != nf) {
			rc = problem_set(pb, (unsigned)line, 0,
					 "record has %zu fields, header has "
					 "%zu",
					 n, nf);
		} else if (rc == 0) {
#define FIELD(i, p, l)                                                        \
	do {                                                                  \
		(p) = pos[i] < 0 ? NULL : base + off[2 * pos[i]];             \
		(l) = pos[i] < 0 ? 0 : off[2 * pos[i] + 1];                   \
	} while (0)
			for (size_t e = 0; e < s->nent; e++)
				FIELD(e, r->ent[e], r->entl[e]);
			FIELD(s->nent, r->ts, r->tsl);
			for (size_t c = 0; c < s->ncols; c++)
				FIELD(s->nent + 1 + c, r->col[c], r->coll[c]);
#undef FIELD
			rc = add(s, b, r, line, pos,
				 plain && in_order ? text : NULL, l, pb);
		}
		line++;
		if (!nl)
			break;
		text = nl + 1;
		len -= full + 1;
	}
	sb_free(&ar);
	free(off);
	return rc;
}

/* A JSON value's text: strings as they are, numbers shortest. */
static const char *jtext(json_t *v, char *num, size_t *len)
{
	if (json_is_string(v)) {
		*len = json_string_length(v);
		return json_string_value(v);
	}
	if (json_is_integer(v)) {
		*len = (size_t)snprintf(num, NUM_SHORTEST_MAX, "%lld",
					(long long)json_integer_value(v));
		return num;
	}
	if (json_is_real(v)) {
		*len = num_shortest(json_real_value(v), 17, num);
		return num;
	}
	return NULL;
}

static int json_rows(const struct feat_spec *s, const char *text, size_t len,
		     uint64_t line, struct feat_batch *b, struct row *r,
		     struct problem *pb)
{
	char (*nums)[NUM_SHORTEST_MAX] =
		calloc(s->nent + 2 + s->ncols, sizeof(*nums));
	int rc = nums ? 0 : -ENOMEM;

	while (rc == 0 && len) {
		const char *nl = memchr(text, '\n', len);
		size_t l = nl ? (size_t)(nl - text) : len;
		json_error_t err;
		json_t *o = json_loadb(text, l, JSON_REJECT_DUPLICATES, &err);

		if (!json_is_object(o)) {
			rc = problem_set(pb, (unsigned)line,
					 o ? 1 : (unsigned)err.column,
					 "%s", o ? "not a JSON object"
						 : err.text);
		} else {
			for (size_t e = 0; e < s->nent; e++)
				r->ent[e] = jtext(json_object_get(
							  o, s->entity[e]),
						  nums[e], &r->entl[e]);
			r->ts = jtext(json_object_get(o, s->timestamp),
				      nums[s->nent], &r->tsl);
			for (size_t c = 0; c < s->ncols; c++)
				r->col[c] = jtext(json_object_get(o, s->cols[c]),
						  nums[s->nent + 1 + c],
						  &r->coll[c]);
			rc = add(s, b, r, line, NULL, NULL, 0, pb);
		}
		json_decref(o);
		line++;
		if (!nl)
			break;
		text = nl + 1;
		len -= l + 1;
	}
	free(nums);
	return rc;
}

int feat_rows_parse(const struct feat_spec *s, const char *header,
		    size_t hlen, const char *text, size_t len, uint64_t line,
		    struct feat_batch *b, struct problem *pb)
{
	long *pos = calloc(s->nent + s->ncols + 2, sizeof(*pos));
	struct row r = { 0 };
	int rc = 0;

	size_t lines = 0, left = len;

	r.col = calloc(s->ncols + 1, sizeof(*r.col));
	r.coll = calloc(s->ncols + 1, sizeof(*r.coll));
	/* room for every line at once, not by doubling */
	for (const char *p = text, *nl; left && (nl = memchr(p, '\n', left));
	     p = nl + 1) {
		left -= (size_t)(nl + 1 - p);
		lines++;
	}
	if (!pos || !r.col || !r.coll || grow_by(b, s->ncols, lines + 1) < 0)
		rc = -ENOMEM;
	else if (s->nent > 64)
		rc = problem_set(pb, 0, 0, "more than 64 entity columns");
	if (rc == 0 && header) {
		if (hlen && header[hlen - 1] == '\r')
			hlen--;
		rc = header_map(s, header, hlen, pos, pb);
		if (rc == 0)
			rc = csv_rows(s, pos, text, len, line, b, &r, pb);
	} else if (rc == 0) {
		rc = json_rows(s, text, len, line, b, &r, pb);
	}
	free(pos);
	free(r.col);
	free(r.coll);
	return rc;
}

void feat_batch_seal(struct feat_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		for (size_t c = 0; c < b->ncols; c++)
			if (b->str[i * b->ncols + c])
				b->str[i * b->ncols + c] =
					b->arena.buf + b->soff[i * b->ncols + c];
		b->ev[i].num = b->num + i * b->ncols;
		b->ev[i].str = b->str + i * b->ncols;
		b->ev[i].slen = b->slen + i * b->ncols;
	}
}

const char *feat_batch_key(const struct feat_batch *b, size_t i, size_t *len)
{
	*len = b->klen[i];
	return b->arena.buf ? b->arena.buf + b->koff[i] : "";
}

void feat_batch_reset(struct feat_batch *b)
{
	b->n = 0;
	b->arena.len = 0;
	b->csv.len = 0;
	b->iso = false;
}

void feat_batch_free(struct feat_batch *b)
{
	free(b->ev);
	free(b->line);
	free(b->koff);
	free(b->klen);
	free(b->num);
	free(b->str);
	free(b->slen);
	free(b->soff);
	sb_free(&b->arena);
	sb_free(&b->csv);
	memset(b, 0, sizeof(*b));
}
