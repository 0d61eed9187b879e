/* SPDX-License-Identifier: MIT */
/*
 * features/<fs>/join, the stream (featjoin.h): rows of entity and time
 * in, the same rows with every feature as of that time out, computed by
 * featcalc.c as offline.csv is.  Pure: no mount; one handle's state.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "featjoin.h"

#define JOIN_MAX_LINE ((size_t)1 << 20)
#define JOIN_MAX_FIELDS 4096

struct jstream {
	const struct feat_spec *spec;
	jstream_find_fn find;
	void *arg;
	struct strbuf part;          /* a row not ended yet */
	uint64_t line;               /* rows read */
	bool decided;                /* the first row was looked at */
	bool header;                 /* it was a header */
	bool said_header;            /* the answer's header is out */
	size_t nin;                  /* fields of an input row */
	size_t *ent;                 /* entity value positions */
	size_t ts;                   /* time position */
	double *vals;                /* nfeat */
	struct strbuf key;
	struct strbuf tmp;
	/* the fields of the current row, unescaped, in tmp */
	size_t nf;
	size_t off[2 * JOIN_MAX_FIELDS];
	bool too_long;               /* the current row passed the limit */
};

int jstream_new(const struct feat_spec *spec, jstream_find_fn find,
		void *arg, struct jstream **out)
{
	struct jstream *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->spec = spec;
	s->find = find;
	s->arg = arg;
	s->ent = calloc(spec->nent + 1, sizeof(*s->ent));
	s->vals = calloc(spec->nfeat + 1, sizeof(*s->vals));
	if (!s->ent || !s->vals) {
		jstream_free(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

void jstream_free(struct jstream *s)
{
	if (!s)
		return;
	sb_free(&s->part);
	sb_free(&s->key);
	sb_free(&s->tmp);
	free(s->ent);
	free(s->vals);
	free(s);
}

static int error_line(struct jstream *s, struct strbuf *out,
		      const char *msg)
{
	int rc = sb_printf(out, "error: line %llu: %s\n",
			   (unsigned long long)s->line, msg);

	return rc < 0 ? rc : -EIO;
}

/* The fields of one row (no newline) into s->tmp and s->off. */
static int split(struct jstream *s, const char *p, size_t len,
		 struct problem *pb)
{
	return csv_line_fields(p, len, JOIN_MAX_LINE, JOIN_MAX_FIELDS,
			       &s->tmp, s->off, &s->nf, pb);
}

static const char *fld(const struct jstream *s, size_t i, size_t *len)
{
	*len = s->off[2 * i + 1];
	return s->tmp.buf ? s->tmp.buf + s->off[2 * i] : "";
}

static long find_name(const struct jstream *s, const char *name)
{
	for (size_t i = 0; i < s->nf; i++) {
		size_t len;
		const char *f = fld(s, i, &len);

		if (len == strlen(name) && memcmp(f, name, len) == 0)
			return (long)i;
	}
	return -1;
}

/* Is the first row a header naming the entity and timestamp columns? */
static void decide(struct jstream *s)
{
	const struct feat_spec *sp = s->spec;
	long ts = find_name(s, sp->timestamp);
	size_t i;

	s->decided = true;
	s->nin = sp->nent + 1;
	for (i = 0; i < sp->nent; i++)
		s->ent[i] = i;
	s->ts = sp->nent;
	if (ts < 0)
		return;
	for (i = 0; i < sp->nent; i++) {
		long e = find_name(s, sp->entity[i]);

		if (e < 0)
			return;
		s->ent[i] = (size_t)e;
	}
	s->ts = (size_t)ts;
	s->nin = s->nf;
	s->header = true;
}

/* The answer's header: the input's columns, then the features. */
static int put_header(struct jstream *s, struct strbuf *out)
{
	const struct feat_spec *sp = s->spec;
	int rc = 0;

	s->said_header = true;
	for (size_t i = 0; rc == 0 && i < s->nin; i++) {
		const char *name;
		size_t len;

		if (s->header) {
			name = fld(s, i, &len);
		} else {
			name = i < sp->nent ? sp->entity[i] : sp->timestamp;
			len = strlen(name);
		}
		rc = (i ? sb_append(out, ",", 1) : 0) ||
		     feat_put_field(out, name, len);
	}
	for (size_t i = 0; rc == 0 && i < sp->nfeat; i++)
		rc = sb_append(out, ",", 1) ||
		     feat_put_field(out, sp->feat[i].name,
				    strlen(sp->feat[i].name));
	return rc ? -ENOMEM : sb_append(out, "\n", 1);
}

static int answer(struct jstream *s, const char *p, size_t len,
		  struct strbuf *out)
{
	const struct feat_spec *sp = s->spec;
	const struct feat_hist *h = NULL;
	struct problem pb = { 0 };
	char msg[600];
	const char *f;
	size_t flen, k;
	double t;
	int rc;

	s->line++;
	if (len && p[len - 1] == '\r')
		len--;
	rc = split(s, p, len, &pb);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0) {
		snprintf(msg, sizeof(msg), "column %u: %s", pb.col, pb.msg);
		return error_line(s, out, msg);
	}
	if (!s->decided) {
		decide(s);
		if (s->header)
			return put_header(s, out);
	}
	if (!s->said_header && (rc = put_header(s, out)) < 0)
		return rc;
	if (s->nf != s->nin) {
		snprintf(msg, sizeof(msg), "expected %zu fields (%s), got %zu",
			 s->nin, s->header ? "as the header" : "entity, time",
			 s->nf);
		return error_line(s, out, msg);
	}
	f = fld(s, s->ts, &flen);
	if (!csv_parse_double(f, flen, &t) && !csv_parse_time(f, flen, &t)) {
		snprintf(msg, sizeof(msg),
			 "\"%s\": \"%.*s\" is not a time (ISO 8601 or seconds "
			 "since the epoch)",
			 sp->timestamp, (int)(flen > 40 ? 40 : flen), f);
		return error_line(s, out, msg);
	}
	s->key.len = 0;
	rc = 0;
	for (size_t i = 0; rc == 0 && i < sp->nent; i++) {
		f = fld(s, s->ent[i], &flen);
		rc = (i ? sb_append(&s->key, "\x1f", 1) : 0) ||
		     sb_append(&s->key, f, flen);
	}
	if (rc)
		return -ENOMEM;
	rc = s->find(s->arg, s->key.buf ? s->key.buf : "", s->key.len, &h, &k);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	rc = 0;
	if (h)
		feat_asof(sp, h, k, t, s->vals);
	else
		for (size_t i = 0; i < sp->nfeat; i++)
			s->vals[i] = NAN;
	for (size_t i = 0; rc == 0 && i < s->nf; i++) {
		f = fld(s, i, &flen);
		rc = (i ? sb_append(out, ",", 1) : 0) ||
		     feat_put_field(out, f, flen);
	}
	for (size_t i = 0; rc == 0 && i < sp->nfeat; i++)
		rc = sb_append(out, ",", 1) ||
		     (h && feat_put_value(out, sp, h, i, s->vals[i]));
	return rc ? -ENOMEM : sb_append(out, "\n", 1);
}

int jstream_write(struct jstream *s, const char *buf, size_t len,
		  struct strbuf *out)
{
	int rc = 0, r;

	while (len) {
		const char *nl = memchr(buf, '\n', len);
		size_t n = nl ? (size_t)(nl - buf) : len;

		if (s->too_long) {
			/* the rest of a row already answered with an error */
		} else if (s->part.len + n > JOIN_MAX_LINE) {
			s->part.len = 0;
			s->too_long = true;
			s->line++;
			r = sb_printf(out, "error: line %llu: row longer than "
					   "%zu bytes\n",
				      (unsigned long long)s->line,
				      JOIN_MAX_LINE);
			rc = r < 0 ? r : -E2BIG;
		} else if (!nl) {
			if (sb_append(&s->part, buf, n) < 0)
				return -ENOMEM;
		} else if (s->part.len) {
			if (sb_append(&s->part, buf, n) < 0)
				return -ENOMEM;
			r = answer(s, s->part.buf, s->part.len, out);
			s->part.len = 0;
			if (r < 0 && (rc == 0 || r == -ENOMEM))
				rc = r;
		} else {
			r = answer(s, buf, n, out);
			if (r < 0 && (rc == 0 || r == -ENOMEM))
				rc = r;
		}
		if (!nl)
			break;
		s->too_long = false;
		buf = nl + 1;
		len -= n + 1;
	}
	return rc;
}

int jstream_finish(struct jstream *s, struct strbuf *out)
{
	int rc = 0;

	if (s->part.len && !s->too_long)
		rc = answer(s, s->part.buf, s->part.len, out);
	s->part.len = 0;
	s->too_long = false;
	return rc;
}
