/* SPDX-License-Identifier: MIT */
/*
 * Predict by key (featpredict.h): rows of a model trained on feature
 * sets get those sets' features from the online store, as of the row's
 * time or now, before the scoring stream reads them.  Daemon side; one
 * handle's state.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "csv.h"
#include "featonline.h"
#include "featpredict.h"
#include "fs.h"
#include "hostfile.h"
#include "repo.h"

#define FP_MAX_LINE ((size_t)1 << 20)
#define FP_MAX_FIELDS 4096
#define FP_MAX_SETS 8

struct fset {
	char name[256];
	struct feat_spec *spec;
	struct featonline_reader rd;
	long *ent;            /* entity positions in the input row */
	long ts;              /* time position, -1: now */
};

struct fpredict {
	struct pstream *ps;   /* borrowed */
	size_t nsets;
	struct fset set[FP_MAX_SETS];
	struct strbuf part;
	struct strbuf row;
	struct strbuf key;
	struct strbuf arena;
	size_t off[2 * FP_MAX_FIELDS];
	size_t nf;
	bool decided;
	bool header;          /* the input has a header */
	size_t nin;           /* fields of an input row without one */
	uint64_t line;
	double *v;
};

void fpredict_free(struct fpredict *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nsets; i++) {
		featonline_reader_free(&s->set[i].rd);
		feat_spec_free(s->set[i].spec);
		free(s->set[i].ent);
	}
	sb_free(&s->part);
	sb_free(&s->row);
	sb_free(&s->key);
	sb_free(&s->arena);
	free(s->v);
	free(s);
}

/* May caller read set?  (A set that is gone is judged below.) */
static bool may_read(struct fs *fs, const char *set,
		     const struct host_user *caller)
{
	json_t *rec;
	bool ok;

	if (repo_get(fs, &repo_features, set, &rec) < 0)
		return true;
	ok = host_may_record(caller, rec, R_OK | X_OK);
	json_decref(rec);
	return ok;
}

int fpredict_new(struct fs *fs, json_t *sets, const struct host_user *caller,
		 struct pstream *ps, struct fpredict **out, char *why,
		 size_t whylen)
{
	struct fpredict *s = calloc(1, sizeof(*s));
	size_t i, nf = 0;
	json_t *ref;
	int rc = s ? 0 : -ENOMEM;

	*out = NULL;
	if (rc == 0 && json_array_size(sets) > FP_MAX_SETS)
		rc = -EINVAL;
	json_array_foreach(sets, i, ref) {
		const char *name = json_string_value(json_object_get(ref, "name"));
		unsigned ver = (unsigned)json_integer_value(
			json_object_get(ref, "version"));
		json_t *was = NULL, *now = NULL;
		struct fset *f;

		if (rc < 0)
			break;
		f = &s->set[s->nsets++];
		/* the features are read for the caller, who may read the model
		 * and not the set (a mode changed since the training) */
		if (name && !may_read(fs, name, caller)) {
			snprintf(why, whylen, "features/%s: permission denied",
				 name);
			rc = -EACCES;
			break;
		}
		/* the set must still define what the model learnt */
		if (!name || repo_version(fs, &repo_features, name, ver, &was) < 0 ||
		    repo_version(fs, &repo_features, name, 0, &now) < 0) {
			snprintf(why, whylen, "feature set %s v%u is gone",
				 name ? name : "?", ver);
			rc = -ENOENT;
		} else if (!json_equal(json_object_get(was, "spec"),
				       json_object_get(now, "spec"))) {
			snprintf(why, whylen,
				 "feature set %s has a new spec since v%u, "
				 "which the model was trained on",
				 name, ver);
			rc = -ESTALE;
		} else {
			rc = feat_spec_compile(json_object_get(now, "spec"),
					       &f->spec);
		}
		json_decref(was);
		json_decref(now);
		if (rc == 0)
			rc = featonline_refresh(fs, name);
		if (rc == 0) {
			f->rd.fs = fs;
			snprintf(f->name, sizeof(f->name), "%s", name);
			f->rd.set = f->name;
			f->rd.spec = f->spec;
			f->ent = calloc(f->spec->nent + 1, sizeof(*f->ent));
			if (!f->ent)
				rc = -ENOMEM;
			nf = f->spec->nfeat > nf ? f->spec->nfeat : nf;
		}
	}
	if (rc == 0 && !(s->v = calloc(nf + 1, sizeof(*s->v))))
		rc = -ENOMEM;
	if (rc < 0) {
		fpredict_free(s);
		return rc;
	}
	s->ps = ps;
	*out = s;
	return 0;
}

/* The fields of a line into the arena. */
static int split(struct fpredict *s, const char *p, size_t len,
		 struct problem *pb)
{
	return csv_line_fields(p, len, FP_MAX_LINE, FP_MAX_FIELDS, &s->arena,
			       s->off, &s->nf, pb);
}

static const char *fld(const struct fpredict *s, long i, size_t *len)
{
	*len = s->off[2 * i + 1];
	return s->arena.buf ? s->arena.buf + s->off[2 * i] : "";
}

static long find(const struct fpredict *s, const char *name)
{
	for (size_t i = 0; i < s->nf; i++) {
		size_t l;
		const char *f = fld(s, (long)i, &l);

		if (l == strlen(name) && memcmp(f, name, l) == 0)
			return (long)i;
	}
	return -1;
}

/*
 * The first line: a header naming every set's entity columns (and maybe
 * their timestamps), or a row of entity values and maybe a time (the
 * sets then share one entity).  The stream gets a header either way.
 */
static int decide(struct fpredict *s, struct strbuf *out)
{
	struct fset *f0 = &s->set[0];
	bool header = true;
	int rc = 0;

	s->decided = true;
	for (size_t i = 0; i < s->nsets && header; i++) {
		struct fset *f = &s->set[i];

		for (size_t e = 0; e < f->spec->nent && header; e++)
			header = (f->ent[e] = find(s, f->spec->entity[e])) >= 0;
		f->ts = find(s, f->spec->timestamp);
	}
	s->header = header;
	s->row.len = 0;
	if (!header) {
		/* entity values, then maybe a time: named as the first set's */
		for (size_t i = 0; i < s->nsets; i++) {
			for (size_t e = 0; e < s->set[i].spec->nent; e++)
				s->set[i].ent[e] = (long)e;
			s->set[i].ts = (long)f0->spec->nent;
		}
		s->nin = s->nf;
		if (s->nf != f0->spec->nent && s->nf != f0->spec->nent + 1)
			return 1; /* said per row */
		for (size_t e = 0; rc == 0 && e < f0->spec->nent; e++)
			rc = (e ? sb_append(&s->row, ",", 1) : 0) ||
			     feat_put_field(&s->row, f0->spec->entity[e],
					    strlen(f0->spec->entity[e]));
		if (rc == 0 && s->nf > f0->spec->nent)
			rc = sb_append(&s->row, ",", 1) ||
			     feat_put_field(&s->row, f0->spec->timestamp,
					    strlen(f0->spec->timestamp));
	} else {
		for (size_t i = 0; rc == 0 && i < s->nf; i++) {
			size_t l;
			const char *p = fld(s, (long)i, &l);

			rc = (i ? sb_append(&s->row, ",", 1) : 0) ||
			     feat_put_field(&s->row, p, l);
		}
	}
	for (size_t i = 0; rc == 0 && i < s->nsets; i++)
		for (size_t f = 0; rc == 0 && f < s->set[i].spec->nfeat; f++)
			rc = sb_append(&s->row, ",", 1) ||
			     feat_put_field(&s->row, s->set[i].spec->feat[f].name,
					    strlen(s->set[i].spec->feat[f].name));
	rc = rc || sb_append(&s->row, "\n", 1);
	if (rc)
		return -ENOMEM;
	rc = pstream_write(s->ps, s->row.buf, s->row.len, out);
	return rc == -EIO ? 0 : rc;
}

static int error_line(struct fpredict *s, struct strbuf *out, const char *msg)
{
	int rc = sb_printf(out, "error: line %llu: %s\n",
			   (unsigned long long)s->line, msg);

	return rc < 0 ? rc : -EIO;
}

/* One input line: the sets' features appended, then scored. */
static int row(struct fpredict *s, const char *p, size_t len,
	       struct strbuf *out)
{
	struct problem pb = { 0 };
	double now = floor((double)time(NULL));
	char msg[600];
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
		rc = decide(s, out);
		if (rc < 0)
			return rc;
		if (s->header)
			return 0;
	}
	if (!s->header && s->nf != s->nin) {
		snprintf(msg, sizeof(msg),
			 "expected %zu fields as the first row had, got %zu",
			 s->nin, s->nf);
		return error_line(s, out, msg);
	}
	if (!s->header && s->nin != s->set[0].spec->nent &&
	    s->nin != s->set[0].spec->nent + 1) {
		snprintf(msg, sizeof(msg),
			 "expected the entity (%zu field%s), and maybe a time, "
			 "or a header naming the columns",
			 s->set[0].spec->nent,
			 s->set[0].spec->nent == 1 ? "" : "s");
		return error_line(s, out, msg);
	}
	s->row.len = 0;
	for (size_t i = 0; rc == 0 && i < s->nf; i++) {
		size_t l;
		const char *f = fld(s, (long)i, &l);

		rc = (i ? sb_append(&s->row, ",", 1) : 0) ||
		     feat_put_field(&s->row, f, l);
	}
	for (size_t i = 0; rc == 0 && i < s->nsets; i++) {
		struct fset *f = &s->set[i];
		const struct feat_hist *h = NULL;
		double t = now;
		size_t l;
		const char *q;

		if (f->ts >= 0 && (size_t)f->ts < s->nf) {
			q = fld(s, f->ts, &l);
			if (!csv_parse_double(q, l, &t) &&
			    !csv_parse_time(q, l, &t)) {
				snprintf(msg, sizeof(msg),
					 "\"%s\": \"%.*s\" is not a time",
					 f->spec->timestamp,
					 (int)(l > 40 ? 40 : l), q);
				return error_line(s, out, msg);
			}
		}
		s->key.len = 0;
		for (size_t e = 0; rc == 0 && e < f->spec->nent; e++) {
			q = fld(s, f->ent[e], &l);
			rc = (e ? sb_append(&s->key, "\x1f", 1) : 0) ||
			     sb_append(&s->key, q, l);
		}
		if (rc)
			return -ENOMEM;
		rc = featonline_asof(&f->rd, s->key.buf ? s->key.buf : "",
				     s->key.len, t, s->v, &h);
		if (rc < 0 && rc != -ENOENT)
			return rc;
		rc = 0;
		for (size_t x = 0; rc == 0 && x < f->spec->nfeat; x++)
			rc = sb_append(&s->row, ",", 1) ||
			     (h && feat_put_value(&s->row, f->spec, h, x,
						  s->v[x]));
	}
	if (rc || sb_append(&s->row, "\n", 1) < 0)
		return -ENOMEM;
	rc = pstream_write(s->ps, s->row.buf, s->row.len, out);
	return rc;
}

int fpredict_write(struct fpredict *s, const char *buf, size_t len,
		   struct strbuf *out)
{
	int rc = 0, r;

	while (len) {
		const char *nl = memchr(buf, '\n', len);
		size_t n = nl ? (size_t)(nl - buf) : len;

		if (s->part.len + n > FP_MAX_LINE) {
			s->part.len = 0;
			s->line++;
			r = sb_printf(out, "error: line %llu: row longer than "
					   "%zu bytes\n",
				      (unsigned long long)s->line,
				      FP_MAX_LINE);
			rc = r < 0 ? r : -E2BIG;
		} else if (sb_append(&s->part, buf, n) < 0) {
			return -ENOMEM;
		} else if (nl) {
			r = row(s, s->part.buf, s->part.len, out);
			s->part.len = 0;
			if (r < 0 && (rc == 0 || r == -ENOMEM))
				rc = r;
		}
		if (!nl)
			break;
		buf = nl + 1;
		len -= n + 1;
	}
	return rc;
}

int fpredict_finish(struct fpredict *s, struct strbuf *out)
{
	int rc = 0;

	if (s->part.len)
		rc = row(s, s->part.buf, s->part.len, out);
	s->part.len = 0;
	if (rc == 0 || rc == -EIO) {
		int r = pstream_finish(s->ps, out);

		rc = rc ? rc : r;
	}
	return rc;
}
