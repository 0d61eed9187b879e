/* SPDX-License-Identifier: MIT */
/*
 * Labelling (labeling.h): versions parsed as tables, rows found by key
 * and known by a fingerprint of their fields but the label, the model's
 * entropy for active learning, and answers published with the
 * repository's compare-and-publish (repo_origin.over), so that two
 * labellers never overwrite each other: the second is judged again on
 * top of the first's version.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "csv.h"
#include "fs.h"
#include "hostfile.h"
#include "labeling.h"
#include "mlcore.h"
#include "mlfs_plugin.h"
#include "predict.h"
#include "repo.h"
#include "store.h"
#include "strbuf.h"

#define LABEL_DATA_MAX ((size_t)256 << 20) /* bytes of a version read */
#define LABEL_TRIES 4 /* publishes raced by another change, then ESTALE */

static const char *field(const struct table *t, size_t r, size_t c,
			 size_t *len)
{
	*len = t->len[r * t->ncols + c];
	return t->data + t->off[r * t->ncols + c];
}

bool label_view_unlabelled(const struct label_view *v, size_t r)
{
	size_t len;
	const char *f;

	if (v->lab < 0)
		return false;
	f = field(v->t, r, (size_t)v->lab, &len);
	return csv_is_missing(f, len);
}

/* The schema's label column and first id column, or NULL. */
static void roles_of(json_t *man, const char **label, const char **id)
{
	json_t *schema = json_object_get(man, "schema"), *c;
	size_t i;

	*label = json_string_value(json_object_get(schema, "label"));
	*id = NULL;
	json_array_foreach(json_object_get(schema, "columns"), i, c) {
		const char *role = json_string_value(json_object_get(c, "role"));

		if (!*id && role && strcmp(role, "id") == 0)
			*id = json_string_value(json_object_get(c, "name"));
	}
}

int label_view_load(struct fs *fs, const char *name, unsigned ver,
		    struct label_view *v)
{
	struct problem pb = { 0 };
	const char *label, *id;
	json_t *rec, *man;
	size_t len;
	int rc;

	memset(v, 0, sizeof(*v));
	v->lab = v->id = -1;
	if (!ver) {
		rc = repo_get(fs, &repo_datasets, name, &rec);
		if (rc < 0)
			return rc;
		ver = (unsigned)json_integer_value(json_object_get(rec,
								   "latest"));
		json_decref(rec);
		if (!ver)
			return -ENODATA;
	}
	rc = ds_version_ready(fs, name, ver, &man, &pb);
	if (rc < 0)
		return rc == -EINVAL ? -EIO : rc;
	v->ver = ver;
	roles_of(man, &label, &id);
	rc = store_get(fs->store,
		       json_string_value(json_object_get(man, "blob")),
		       LABEL_DATA_MAX, &v->buf, &len);
	rc = rc < 0 ? rc : table_parse(v->buf, len, &v->t, &pb);
	if (rc == 0) {
		v->lab = label ? table_col(v->t, label) : -1;
		v->id = id ? table_col(v->t, id) : -1;
	}
	json_decref(man);
	if (rc < 0)
		label_view_free(v);
	return rc == -EINVAL ? -EIO : rc;
}

void label_view_free(struct label_view *v)
{
	table_free(v->t);
	free(v->buf);
	v->t = NULL;
	v->buf = NULL;
}

/* Row r's fields but the label, as one number. */
static uint64_t row_print(const struct label_view *v, size_t r)
{
	uint64_t h = v->t->ncols;
	size_t len;

	for (size_t c = 0; c < v->t->ncols; c++) {
		const char *f;

		if ((long)c == v->lab)
			continue;
		f = field(v->t, r, c, &len);
		h = XXH3_64bits_withSeed(f, len, h + c);
	}
	return h;
}

/* --- active learning: the model's entropy --- */

struct scored {
	double *ent; /* per row, in order; NAN: not scored */
	size_t n, at;
};

static int pick_only(void *arg, size_t *cand, long *mirror, char *why,
		     size_t whylen)
{
	(void)arg;
	(void)why;
	(void)whylen;
	*cand = 0;
	*mirror = -1;
	return 0;
}

static int assign_row(void *arg, struct strbuf *id)
{
	struct scored *s = arg;

	return sb_printf(id, "%zu", s->at + 1);
}

static void answered(void *arg, const struct pstream_answer *a)
{
	struct scored *s = arg;
	double h = NAN;

	if (a->mirror || s->at >= s->n)
		return;
	if (a->out) {
		h = 0;
		for (size_t c = 0; c < a->nout; c++)
			if (a->out[c] > 0)
				h -= a->out[c] * log(a->out[c]);
	}
	s->ent[s->at++] = h;
}

/* ref's served model, a classifier, with a new reference in *m. */
static int model_of(struct fs *fs, const char *ref, json_t **rec,
		    struct served **m, char *why, size_t whylen)
{
	char name[NAME_MAX + 1];
	const char *hash;
	unsigned ver;
	json_t *man;
	int rc;

	*m = NULL;
	rc = repo_ref_resolve(fs, &repo_models, ref, name, sizeof(name), &ver,
			      rec, why, whylen);
	if (rc < 0)
		return -EINVAL;
	rc = repo_version(fs, &repo_models, name, ver, &man);
	if (rc < 0) {
		json_decref(*rec);
		*rec = NULL;
		snprintf(why, whylen, "model %s: no version %u", name, ver);
		return -EINVAL;
	}
	hash = json_string_value(json_object_get(
		json_object_get(json_object_get(man, "files"), "model"),
		"hash"));
	rc = hash ? served_get(fs, hash, m, why, whylen) : -EINVAL;
	if (!hash)
		snprintf(why, whylen, "model %s@%u has no model file", name,
			 ver);
	json_decref(man);
	if (rc == 0 && served_task(*m) != MLFS_TASK_CLASSIFICATION) {
		snprintf(why, whylen, "model %s@%u is not a classifier", name,
			 ver);
		served_put(*m);
		*m = NULL;
		rc = -EINVAL;
	}
	if (rc < 0) {
		json_decref(*rec);
		*rec = NULL;
	}
	return rc < 0 ? -EINVAL : 0;
}

int label_model_check(struct fs *fs, const char *ref,
		      const struct fs_ctx *ctx, char *why, size_t whylen)
{
	struct host_user u = { ctx->uid, ctx->gid, ctx->pid };
	struct served *m;
	json_t *rec;
	int rc = model_of(fs, ref, &rec, &m, why, whylen);

	if (rc < 0)
		return rc;
	if (!host_may_record(&u, rec, R_OK | X_OK)) {
		snprintf(why, whylen, "model %s: permission denied", ref);
		rc = -EACCES;
	}
	served_put(m);
	json_decref(rec);
	return rc;
}

/* A CSV of v's header and rows[0..n), for the model's stream. */
static int rows_csv(const struct label_view *v, const size_t *rows, size_t n,
		    struct strbuf *out)
{
	size_t len;

	for (size_t c = 0; c < v->t->ncols; c++) {
		if (c)
			sb_puts(out, ",");
		sb_csv_field(out, v->t->names[c], strlen(v->t->names[c]));
	}
	sb_puts(out, "\n");
	for (size_t i = 0; i < n && !out->err; i++) {
		for (size_t c = 0; c < v->t->ncols; c++) {
			const char *f = field(v->t, rows[i], c, &len);

			if (c)
				sb_puts(out, ",");
			if (memchr(f, '\n', len) || memchr(f, '\r', len))
				continue; /* a row of the stream is a line */
			sb_csv_field(out, f, len);
		}
		sb_puts(out, "\n");
	}
	return out->err;
}

struct ranked {
	double ent;
	size_t at, row;
};

static int by_entropy(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;
	bool xn = isnan(x->ent), yn = isnan(y->ent);

	if (xn != yn)
		return xn ? 1 : -1;
	if (!xn && x->ent != y->ent)
		return x->ent > y->ent ? -1 : 1;
	return x->at < y->at ? -1 : x->at > y->at;
}

int label_order(struct fs *fs, const char *ref, const struct label_view *v,
		size_t *rows, size_t n, char *why, size_t whylen)
{
	struct scored s = { NULL, n, 0 };
	struct pstream_route rt = { pick_only, assign_row, answered, &s,
				    NULL, NULL };
	struct strbuf csv = { 0 }, out = { 0 };
	struct ranked *rk = NULL;
	struct pstream *ps = NULL;
	struct served *m;
	json_t *rec;
	int rc;

	if (!n)
		return 0;
	rc = model_of(fs, ref, &rec, &m, why, whylen);
	if (rc < 0)
		return rc;
	json_decref(rec);
	s.ent = malloc(n * sizeof(*s.ent));
	rk = malloc(n * sizeof(*rk));
	rc = s.ent && rk ? rows_csv(v, rows, n, &csv) : -ENOMEM;
	if (rc == 0)
		rc = pstream_new_routed(&m, 1, &rt, &ps);
	if (rc == 0)
		rc = pstream_write(ps, csv.buf, csv.len, &out);
	if (rc == 0)
		rc = pstream_finish(ps, &out);
	if (rc < 0)
		snprintf(why, whylen, "model %s: cannot score the queue: %s",
			 ref, strerror(-rc));
	for (size_t i = 0; rc == 0 && i < n; i++) {
		rk[i].ent = i < s.at ? s.ent[i] : NAN;
		rk[i].at = i;
		rk[i].row = rows[i];
	}
	if (rc == 0) {
		qsort(rk, n, sizeof(*rk), by_entropy);
		for (size_t i = 0; i < n; i++)
			rows[i] = rk[i].row;
	}
	pstream_free(ps);
	served_put(m);
	sb_free(&csv);
	sb_free(&out);
	free(s.ent);
	free(rk);
	return rc < 0 ? -EIO : 0;
}

/* --- answers --- */

struct answer {
	char *key, *label;
	size_t row;     /* in the version judged against, from 0 */
	uint64_t print; /* the row's fields but the label */
	bool by_row;    /* a v<n>:<r> key: found by row */
	uint64_t line;
};

struct label_batch {
	struct fs *fs;
	char name[NAME_MAX + 1];
	struct label_view v;   /* the latest, as last judged */
	size_t *index;         /* id -> row + 1, open addressing */
	size_t icap;           /* slots, a power of two; 0: no index */
	json_t *classes;       /* the labels the version has, as a set */
	bool numeric;          /* a numeric label */
	bool regression;       /* any number will do */
	struct answer *a;
	size_t n, cap;
};

int label_batch_new(struct fs *fs, const char *name, struct label_batch **out)
{
	struct label_batch *b = calloc(1, sizeof(*b));

	*out = NULL;
	if (!b)
		return -ENOMEM;
	b->fs = fs;
	snprintf(b->name, sizeof(b->name), "%s", name);
	b->v.lab = b->v.id = -1;
	*out = b;
	return 0;
}

static void forget(struct label_batch *b)
{
	label_view_free(&b->v);
	free(b->index);
	b->index = NULL;
	b->icap = 0;
	json_decref(b->classes);
	b->classes = NULL;
}

static size_t id_slot(const char *p, size_t len, size_t cap)
{
	return (size_t)XXH3_64bits(p, len) & (cap - 1);
}

/* The index of ids and the classes of the version in b->v. */
static int index_view(struct label_batch *b)
{
	const struct table *t = b->v.t;
	size_t len, distinct = 0;
	bool whole = true;
	const char *f;

	b->classes = json_object();
	if (!b->classes)
		return -ENOMEM;
	b->numeric = b->v.lab >= 0;
	for (size_t r = 0; b->v.lab >= 0 && r < t->nrows; r++) {
		char text[256];
		double d;

		f = field(t, r, (size_t)b->v.lab, &len);
		if (csv_is_missing(f, len))
			continue;
		if (!csv_parse_double(f, len, &d))
			b->numeric = false;
		else if (d != floor(d))
			whole = false;
		if (len >= sizeof(text) || distinct > 10000)
			continue;
		memcpy(text, f, len);
		text[len] = '\0';
		if (!json_object_get(b->classes, text)) {
			json_object_set_new(b->classes, text, json_true());
			distinct++;
		}
	}
	/* as training decides: a class is text, or an integer of few */
	b->regression = b->numeric && (!whole || distinct > 100);
	if (b->v.id < 0)
		return 0;
	for (b->icap = 16; b->icap < 2 * t->nrows;)
		b->icap *= 2;
	b->index = calloc(b->icap, sizeof(*b->index));
	if (!b->index)
		return -ENOMEM;
	for (size_t r = 0; r < t->nrows; r++) {
		size_t s;

		f = field(t, r, (size_t)b->v.id, &len);
		for (s = id_slot(f, len, b->icap); b->index[s];
		     s = (s + 1) & (b->icap - 1))
			;
		b->index[s] = r + 1;
	}
	return 0;
}

/* b->v as the latest version (loaded again when another came). */
static int latest(struct label_batch *b)
{
	json_t *rec;
	unsigned ver;
	int rc = repo_get(b->fs, &repo_datasets, b->name, &rec);

	if (rc < 0)
		return rc;
	ver = (unsigned)json_integer_value(json_object_get(rec, "latest"));
	json_decref(rec);
	if (b->v.t && b->v.ver == ver)
		return 0;
	forget(b);
	rc = label_view_load(b->fs, b->name, ver, &b->v);
	if (rc == 0)
		rc = index_view(b);
	if (rc < 0)
		forget(b);
	return rc;
}

/* The row of id key in b->v: 0 and *row, -ENOENT, or -ENOTUNIQ. */
static int find_id(const struct label_batch *b, const char *key, size_t klen,
		   size_t *row)
{
	size_t len, found = 0;
	const char *f;

	if (!b->icap)
		return -ENOENT;
	for (size_t s = id_slot(key, klen, b->icap); b->index[s];
	     s = (s + 1) & (b->icap - 1)) {
		f = field(b->v.t, b->index[s] - 1, (size_t)b->v.id, &len);
		if (len != klen || memcmp(f, key, len) != 0)
			continue;
		if (found)
			return -ENOTUNIQ;
		found = b->index[s];
	}
	if (!found)
		return -ENOENT;
	*row = found - 1;
	return 0;
}

/* "v<n>:<r>" into n and r (from 1). */
static bool row_key(const char *key, unsigned *n, size_t *r)
{
	char *end;
	unsigned long vn;
	unsigned long long rn;

	if (key[0] != 'v' || key[1] < '1' || key[1] > '9')
		return false;
	vn = strtoul(key + 1, &end, 10);
	if (*end != ':' || end[1] < '1' || end[1] > '9' || vn > 0xffffffffUL)
		return false;
	rn = strtoull(end + 1, &end, 10);
	if (*end)
		return false;
	*n = (unsigned)vn;
	*r = (size_t)rn;
	return true;
}

/*
 * Judge answer a (key and label set) against b->v: its row and print
 * set, or -errno with pb at a's line.
 */
static int judge(struct label_batch *b, struct answer *a, struct problem *pb)
{
	const struct table *t = b->v.t;
	size_t klen = strlen(a->key), len, r;
	const char *f;
	unsigned n;
	int rc = find_id(b, a->key, klen, &r);

	if (rc == -ENOTUNIQ)
		return problem_set(pb, (unsigned)a->line, 1,
				   "key \"%s\" names more than one row",
				   a->key);
	a->by_row = rc < 0 && row_key(a->key, &n, &r);
	if (rc < 0 && !a->by_row)
		return problem_set(pb, (unsigned)a->line, 1,
				   b->v.id >= 0
					   ? "no row has id \"%s\" in v%u"
					   : "\"%s\": not a key (v<n>:<row>) of "
					     "v%u",
				   a->key, b->v.ver);
	if (a->by_row) {
		struct label_view then;

		if (n > b->v.ver)
			return problem_set(pb, (unsigned)a->line, 1,
					   "\"%s\": no version v%u yet", a->key,
					   n);
		if (r > t->nrows || r == 0) {
			problem_set(pb, (unsigned)a->line, 1,
				    "\"%s\": v%u has %zu rows", a->key,
				    b->v.ver, t->nrows);
			return n == b->v.ver ? -EINVAL : -ESTALE;
		}
		r--;
		if (!a->print && n != b->v.ver) {
			/* the row as the labeller saw it */
			rc = label_view_load(b->fs, b->name, n, &then);
			if (rc < 0 || r >= then.t->nrows) {
				if (rc == 0)
					label_view_free(&then);
				problem_set(pb, (unsigned)a->line, 1,
					    "\"%s\": v%u is gone", a->key, n);
				return -ESTALE;
			}
			a->print = row_print(&then, r);
			label_view_free(&then);
		}
	}
	if (a->print && a->print != row_print(&b->v, r)) {
		problem_set(pb, (unsigned)a->line, 1,
			    "row \"%s\" is not the same in v%u", a->key,
			    b->v.ver);
		return -ESTALE;
	}
	a->print = row_print(&b->v, r);
	a->row = r;
	f = field(t, r, (size_t)b->v.lab, &len);
	if (!csv_is_missing(f, len) &&
	    (len != strlen(a->label) || memcmp(f, a->label, len) != 0)) {
		problem_set(pb, (unsigned)a->line, 1,
			    "row \"%s\" was labelled \"%.*s\" in v%u", a->key,
			    (int)(len < 64 ? len : 64), f, b->v.ver);
		return -ESTALE;
	}
	return 0;
}

/* Is label one b's version knows (or can know)? */
static int valid_label(const struct label_batch *b, const char *label,
		       uint64_t line, struct problem *pb)
{
	size_t len = strlen(label);
	double d;

	if (csv_is_missing(label, len))
		return problem_set(pb, (unsigned)line, 1, "an empty label");
	if (b->numeric && !csv_parse_double(label, len, &d))
		return problem_set(pb, (unsigned)line, 1,
				   "label \"%s\" is not a number", label);
	if (b->regression || !json_object_size(b->classes))
		return 0; /* any value: none to compare with */
	if (json_object_get(b->classes, label))
		return 0;
	if (b->numeric) {
		const char *k;
		json_t *x;

		json_object_foreach(b->classes, k, x) {
			double e;

			if (csv_parse_double(k, strlen(k), &e) && e == d)
				return 0;
		}
	}
	return problem_set(pb, (unsigned)line, 1,
			   "label \"%s\" is not a class of this dataset (it "
			   "has %zu)",
			   label, json_object_size(b->classes));
}

static void answer_free(struct answer *a)
{
	free(a->key);
	free(a->label);
}

int label_batch_add(struct label_batch *b, const char *text, size_t len,
		    uint64_t first, struct problem *pb)
{
	struct strbuf arena = { 0 };
	size_t old = b->n, off[6], nf;
	uint64_t line = first;
	const char *p = text, *end = text + len;
	int rc = latest(b);

	if (rc == -ENODATA)
		return problem_set(pb, 0, 0, "the dataset has no version yet");
	if (rc < 0)
		return rc;
	if (b->v.lab < 0)
		return problem_set(pb, 0, 0,
				   "the dataset has no label column (set one "
				   "in schema)");
	for (; rc == 0 && p < end; line++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ll = (size_t)((nl ? nl : end) - p);
		struct answer *a;

		if (ll && p[ll - 1] == '\r')
			ll--;
		rc = csv_line_fields(p, ll, 4096, 3, &arena, off, &nf, pb);
		p = nl ? nl + 1 : end;
		if (rc < 0) {
			pb->line = (unsigned)line;
			break;
		}
		if (nf == 1 && off[1] == 0)
			continue; /* an empty line */
		if (nf != 2) {
			rc = problem_set(pb, (unsigned)line, 1,
					 "expected key,label (2 fields), got "
					 "%zu",
					 nf);
			break;
		}
		if (line == 1 && off[1] == 3 &&
		    memcmp(arena.buf + off[0], "key", 3) == 0 &&
		    strlen(b->v.t->names[b->v.lab]) == off[3] &&
		    memcmp(arena.buf + off[2], b->v.t->names[b->v.lab],
			   off[3]) == 0)
			continue; /* the header */
		if (b->n == b->cap) {
			size_t cap = b->cap ? 2 * b->cap : 64;
			struct answer *na = realloc(b->a, cap * sizeof(*na));

			if (!na) {
				rc = -ENOMEM;
				break;
			}
			b->a = na;
			b->cap = cap;
		}
		a = &b->a[b->n];
		memset(a, 0, sizeof(*a));
		a->line = line;
		a->key = strndup(arena.buf + off[0], off[1]);
		a->label = strndup(arena.buf + off[2], off[3]);
		if (!a->key || !a->label) {
			answer_free(a);
			rc = -ENOMEM;
			break;
		}
		b->n++;
		rc = valid_label(b, a->label, line, pb);
		if (rc == 0)
			rc = judge(b, a, pb);
	}
	sb_free(&arena);
	if (rc < 0) {
		/* none of these lines */
		while (b->n > old)
			answer_free(&b->a[--b->n]);
	}
	return rc;
}

/* b->v with the answers' labels, as CSV into out. */
static int write_csv(struct label_batch *b, const char **label, FILE *out)
{
	const struct table *t = b->v.t;
	struct strbuf sb = { 0 };
	size_t len;

	for (size_t c = 0; c < t->ncols; c++) {
		if (c)
			sb_puts(&sb, ",");
		sb_csv_field(&sb, t->names[c], strlen(t->names[c]));
	}
	sb_puts(&sb, "\n");
	for (size_t r = 0; r < t->nrows && !sb.err; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *f = field(t, r, c, &len);

			if ((long)c == b->v.lab && label[r]) {
				f = label[r];
				len = strlen(f);
			}
			if (c)
				sb_puts(&sb, ",");
			sb_csv_field(&sb, f, len);
		}
		sb_puts(&sb, "\n");
		if (sb.len >= (1 << 20)) {
			if (fwrite(sb.buf, 1, sb.len, out) != sb.len)
				sb.err = -EIO;
			sb.len = 0;
		}
	}
	if (!sb.err && fwrite(sb.buf, 1, sb.len, out) != sb.len)
		sb.err = -EIO;
	sb_free(&sb);
	return sb.err;
}

/* One try: every answer judged on the latest, which is published. */
static int publish_once(struct label_batch *b, const struct fs_ctx *ctx,
			unsigned *ver, struct problem *pb)
{
	struct repo_origin origin = { "label", NULL, NULL, ctx->uid,
				      ctx->pid, 0 };
	const char **label = NULL;
	char tmp[PATH_MAX], detail[64];
	bool created;
	FILE *out = NULL;
	int rc = latest(b), fd;

	if (rc < 0)
		return rc;
	label = calloc(b->v.t->nrows ? b->v.t->nrows : 1, sizeof(*label));
	if (!label)
		return -ENOMEM;
	for (size_t i = 0; rc == 0 && i < b->n; i++) {
		rc = judge(b, &b->a[i], pb);
		if (rc == 0)
			label[b->a[i].row] = b->a[i].label;
	}
	if (rc == 0)
		rc = store_tmp_path(b->fs->store, tmp, sizeof(tmp));
	if (rc < 0)
		goto out;
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	out = fd < 0 ? NULL : fdopen(fd, "w+");
	if (!out) {
		rc = -errno;
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		goto out;
	}
	rc = write_csv(b, label, out);
	if (rc == 0 && fflush(out) != 0)
		rc = -errno;
	if (rc == 0) {
		snprintf(detail, sizeof(detail), "%zu labels on v%u", b->n,
			 b->v.ver);
		origin.detail = detail;
		origin.over = b->v.ver;
		rc = ds_publish(b->fs, b->name, tmp, fileno(out), &origin, ver,
				&created, pb);
	}
	fclose(out);
	if (rc < 0)
		unlink(tmp);
out:
	free(label);
	return rc;
}

int label_batch_publish(struct label_batch *b, const struct fs_ctx *ctx,
			unsigned *ver, struct problem *pb)
{
	int rc = 0;

	*ver = 0;
	if (!b->n)
		return 0;
	for (int i = 0; i < LABEL_TRIES; i++) {
		memset(pb, 0, sizeof(*pb));
		rc = publish_once(b, ctx, ver, pb);
		/* another change came between the judging and the publish:
		 * judge again on top of it (a changed row says so in pb) */
		if (rc != -ESTALE || pb->msg[0])
			break;
	}
	if (rc == -ESTALE && !pb->msg[0])
		problem_set(pb, 0, 0, "the dataset kept changing: try again");
	if (rc == 0) {
		while (b->n)
			answer_free(&b->a[--b->n]);
	}
	return rc;
}

void label_batch_free(struct label_batch *b)
{
	if (!b)
		return;
	forget(b);
	while (b->n)
		answer_free(&b->a[--b->n]);
	free(b->a);
	free(b);
}
