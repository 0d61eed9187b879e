/* SPDX-License-Identifier: MIT */
/*
 * Serving (predict.h).  The model cache is the mount's (fs->served): a
 * small LRU list under its lock; a model is loaded outside the lock
 * (store read, plugin load) and inserted after, so a slow load never
 * blocks other lookups.
 * Streams belong to one handle; their caller serialises them.
 *
 * A write to a plain stream that carries at least PREDICT_SPLIT_MIN bytes
 * of rows (once the header is known) is read and scored in two halves,
 * cut after a row near its middle (at a multiple of PREDICT_SPLIT_ALIGN
 * rows into the batch, so that no answer changes in its last digit): the
 * first by the caller's thread on the stream, the second by a thread
 * started for that write on the stream's twin (a second batch: its own
 * rows, ids and scratch, borrowing the stream's header maps).  The caller
 * joins the thread and appends the second half's answers after the
 * first's, so answers keep the order of the rows.  The halves share only
 * what neither changes while rows are read: the model (whose predict the
 * plugin ABI requires to be thread-safe) and the header's maps.  Smaller
 * writes, and routed streams (whose caller picks and is told per row, in
 * order), are read on the caller's thread alone.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "csv.h"
#include "repo.h"
#include "fs.h"
#include "jsonout.h"
#include "mlcore.h"
#include "plugin.h"
#include "predict.h"
#include "spec.h"
#include "store.h"

#define MODEL_FILE_MAX ((size_t)1 << 30) /* bytes */
#define BATCH_ROWS 4096                 /* rows scored per predict call */
#define PREDICT_IDS_MAX ((size_t)64 << 20) /* bytes of ids in one batch */
/*
 * Bytes of rows in one write from which they are read on two threads:
 * a thread's start and join cost some tens of microseconds, 64 KiB of
 * rows some hundreds (150 rows of 50 numbers, 3,000 of 4).
 */
#define PREDICT_SPLIT_MIN ((size_t)64 << 10)
/*
 * The halves are cut after a row whose place in its batch is a multiple
 * of this: a model's BLAS call scores rows in blocks (OpenBLAS's kernels
 * by 4 to 16, the tail of a call differently), and a row keeps its place
 * in a block, so its answer keeps its last digit, wherever a write is
 * cut.  A divisor of BATCH_ROWS.
 */
#define PREDICT_SPLIT_ALIGN 64

struct served {
	struct served *next;   /* under fs->served->lock */
	_Atomic unsigned refs;
	char hash[33];
	const struct mlfs_train_ops *ops;
	void *inst;
	struct fx *fx;
	unsigned task;         /* MLFS_TASK_* */
	char **classes;        /* nclasses */
	size_t nclasses;
	char **inputs;         /* input column names, in order */
	size_t ninputs;
	char *idcol;           /* the id column echoed in answers, or NULL */
	size_t nout;
	size_t *imap;          /* fx column i -> input index (input_map) */
};

/* The served-model cache of one mount (fs->served). */
struct served_cache {
	pthread_mutex_t lock;
	struct served *list;  /* most recent first; under lock */
	size_t n;             /* under lock */
};

/*
 * fx column i of m -> index of the input of that name, or (size_t)-1:
 * made once when the model is loaded (ncols x ninputs name compares, 14 %
 * of the daemon's time when every open of a 64-input model made two).
 */
static size_t *input_map(const struct served *m)
{
	size_t *map = calloc(m->fx->ncols + 1, sizeof(*map));

	for (size_t i = 0; map && i < m->fx->ncols; i++) {
		map[i] = (size_t)-1;
		for (size_t k = 0; k < m->ninputs; k++)
			if (strcmp(m->fx->cols[i].name, m->inputs[k]) == 0)
				map[i] = k;
	}
	return map;
}

static void served_free(struct served *m)
{
	if (m->inst)
		m->ops->fini(m->inst);
	fx_free(m->fx);
	for (size_t i = 0; i < m->nclasses; i++)
		free(m->classes[i]);
	free(m->classes);
	for (size_t i = 0; i < m->ninputs; i++)
		free(m->inputs[i]);
	free(m->inputs);
	free(m->idcol);
	free(m->imap);
	free(m);
}

void served_put(struct served *m)
{
	if (m && atomic_fetch_sub(&m->refs, 1) == 1)
		served_free(m);
}

size_t served_cached(struct fs *fs)
{
	struct served_cache *c = fs->served;
	size_t n;

	pthread_mutex_lock(&c->lock);
	n = c->n;
	pthread_mutex_unlock(&c->lock);
	return n;
}

void served_cache_clear(struct fs *fs)
{
	struct served_cache *c = fs->served;

	pthread_mutex_lock(&c->lock);
	while (c->list) {
		struct served *m = c->list;

		c->list = m->next;
		served_put(m);
	}
	c->n = 0;
	pthread_mutex_unlock(&c->lock);
}

int served_cache_open(struct fs *fs)
{
	struct served_cache *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	fs->served = c;
	return 0;
}

void served_cache_close(struct fs *fs)
{
	struct served_cache *c = fs->served;

	if (!c)
		return;
	served_cache_clear(fs);
	pthread_mutex_destroy(&c->lock);
	free(c);
	fs->served = NULL;
}

static void host_log(void *ctx, int level, const char *fmt, ...)
{
	(void)ctx;
	(void)level;
	(void)fmt;
}

static int host_cancelled(void *ctx)
{
	(void)ctx;
	return 0;
}

static const struct mlfs_host serve_host = {
	sizeof(serve_host), NULL, host_log, NULL, NULL, host_cancelled, 1,
	NULL, NULL, NULL, 0,
};

static char **string_list(json_t *arr, size_t *n)
{
	char **out = calloc(json_array_size(arr) + 1, sizeof(*out));
	size_t i;
	json_t *v;

	*n = 0;
	if (!out)
		return NULL;
	json_array_foreach(arr, i, v) {
		out[i] = strdup(json_string_value(v) ? json_string_value(v)
						     : "");
		if (!out[i]) {
			for (size_t k = 0; k < i; k++)
				free(out[k]);
			free(out);
			return NULL;
		}
	}
	*n = json_array_size(arr);
	return out;
}

static bool served_has_input(const struct served *m, const char *name)
{
	for (size_t k = 0; k < m->ninputs; k++)
		if (strcmp(m->inputs[k], name) == 0)
			return true;
	return false;
}

/*
 * The id column: the one the model names (the training dataset's id
 * role, recorded by the job), else one named "id"; never an input, whose
 * values are features.  0 or -ENOMEM.
 */
static int served_idcol(struct served *m, const char *named)
{
	const char *id = named ? named : "id";

	if (served_has_input(m, id))
		return 0;
	m->idcol = strdup(id);
	return m->idcol ? 0 : -ENOMEM;
}

/* Decode a model file into a served model. */
static int served_load(struct fs *fs, const char *hash, struct served **out,
		       char *msg, size_t msglen)
{
	const struct plugin *pl;
	struct served *m;
	json_t *hdr = NULL;
	const void *w;
	size_t wlen, len;
	char key[128], *buf = NULL;
	struct mlfs_param *ps = NULL;
	double *lists = NULL;
	size_t np;
	int rc;

	*out = NULL;
	repo_blob_key(hash, key, sizeof(key));
	rc = store_get(fs->store, key, MODEL_FILE_MAX, &buf, &len);
	if (rc == -EBADMSG) {
		snprintf(msg, msglen, "model file %s: the store's content does "
				      "not match its hash", key);
		return -EIO;
	}
	if (rc < 0) {
		snprintf(msg, msglen, "model file: %s", strerror(-rc));
		return rc;
	}
	rc = model_decode(buf, len, &hdr, &w, &wlen, msg, msglen);
	if (rc < 0)
		goto out_free;
	rc = -EINVAL;
	pl = plugin_find(fs_plugins(fs), MLFS_STAGE_TRAIN,
			 json_string_value(json_object_get(hdr, "plugin"))
				 ? json_string_value(json_object_get(hdr, "plugin"))
				 : "");
	if (!pl) {
		snprintf(msg, msglen, "the model needs train plugin \"%s\", "
				      "which is not loaded",
			 json_string_value(json_object_get(hdr, "plugin")));
		goto out_free;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		rc = -ENOMEM;
		goto out_free;
	}
	m->refs = 1;
	snprintf(m->hash, sizeof(m->hash), "%s", hash);
	m->ops = pl->desc->ops;
	m->task = model_task(json_string_value(json_object_get(hdr, "task")));
	m->classes = string_list(json_object_get(hdr, "classes"), &m->nclasses);
	m->inputs = string_list(json_object_get(hdr, "inputs"), &m->ninputs);
	if (!m->classes || !m->inputs ||
	    fx_from_json(json_object_get(hdr, "features"), &m->fx) < 0) {
		snprintf(msg, msglen, "model header: bad features or classes");
		goto out_free_model;
	}
	rc = served_idcol(m, json_string_value(json_object_get(hdr, "id")));
	if (rc < 0)
		goto out_free_model;
	m->imap = input_map(m);
	if (!m->imap) {
		rc = -ENOMEM;
		goto out_free_model;
	}
	rc = -EINVAL;
	rc = spec_params(json_object_get(hdr, "params"), &ps, &np, &lists, msg,
			 msglen);
	if (rc < 0)
		goto out_free_model;
	rc = m->ops->init(&serve_host, m->task, ps, np, &m->inst, msg, msglen);
	if (rc < 0)
		goto out_free_model;
	rc = m->ops->load(m->inst, w, wlen);
	if (rc < 0) {
		snprintf(msg, msglen, "the plugin refused the model's weights");
		goto out_free_model;
	}
	m->nout = m->ops->outputs(m->inst);
	if (m->task == MLFS_TASK_CLASSIFICATION && m->nout != m->nclasses) {
		snprintf(msg, msglen, "model has %zu outputs for %zu classes",
			 m->nout, m->nclasses);
		rc = -EINVAL;
		goto out_free_model;
	}
	*out = m;
	rc = 0;
	goto out_free;
out_free_model:
	served_free(m);
out_free:
	free(ps);
	free(lists);
	json_decref(hdr);
	free(buf);
	return rc;
}

int served_get(struct fs *fs, const char *hash, struct served **out,
	       char *msg, size_t msglen)
{
	struct served_cache *c = fs->served;
	struct served **pp, *m;
	int rc;

	*out = NULL;
	pthread_mutex_lock(&c->lock);
	for (pp = &c->list; (m = *pp); pp = &m->next) {
		if (strcmp(m->hash, hash) == 0) {
			*pp = m->next; /* move to the front */
			m->next = c->list;
			c->list = m;
			atomic_fetch_add(&m->refs, 1);
			pthread_mutex_unlock(&c->lock);
			*out = m;
			return 0;
		}
	}
	pthread_mutex_unlock(&c->lock);
	rc = served_load(fs, hash, &m, msg, msglen);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&c->lock);
	atomic_fetch_add(&m->refs, 1); /* the cache's */
	m->next = c->list;
	c->list = m;
	if (++c->n > PREDICT_CACHE) {
		struct served *last, **lp = &c->list;

		while ((*lp)->next)
			lp = &(*lp)->next;
		last = *lp;
		*lp = NULL;
		c->n--;
		served_put(last);
	}
	pthread_mutex_unlock(&c->lock);
	*out = m;
	return 0;
}

/* --- streams --- */

struct pstream {
	struct served **ms; /* [nm]: ms[0] judges headers; all share inputs */
	size_t nm;
	struct served *one; /* a plain stream's model (ms points here) */
	const struct pstream_route *rt; /* NULL: a plain stream */
	char *carry;      /* a row without its newline yet */
	size_t carry_len;
	bool skipping;    /* in a row over the limit: drop to its newline */
	bool headed;      /* the first row has been seen */
	char *badhead;    /* the error line of a refused header, or NULL */
	size_t **maps;    /* [nm]: fx column i -> field index of a CSV row */
	size_t **imaps;   /* [nm]: fx column i -> input index (JSON rows);
			     the models' own (served.imap), not freed */
	size_t *infield;  /* [ninputs]: input k -> field index of a CSV row */
	size_t nfields;   /* fields a CSV row must have */
	size_t idfield;   /* the header's id field, or (size_t)-1 */
	size_t routed;    /* the model of the row being read, or (size_t)-1 */
	size_t stride;    /* floats per row in x: the widest model's */
	size_t nout;      /* outputs per row: the most of any model */
	/* a batch of rows being scored */
	float *x;
	float *xm;        /* routed: the rows as their mirror reads them */
	char **err;       /* per row: NULL, or an error line */
	bool *json;       /* per row: answer as JSON */
	size_t *idoff;    /* per row: its id's offset in ids, or (size_t)-1 */
	size_t *idlen;    /* per row: bytes of its id */
	struct strbuf ids; /* the batch's ids, as answers print them */
	size_t *who;      /* per row: its model, or (size_t)-1 (unrouted) */
	long *mir;        /* routed, per row: its mirror model, or -1 */
	size_t *inoff;    /* routed, per row: its inputs' offset in ins */
	size_t *inlen;
	struct strbuf ins; /* routed: the batch's inputs, JSON objects */
	double *vnum;     /* routed, per row and input: the number, or NAN */
	uint64_t *vcat;   /* ... and the hash of the text (drift) */
	size_t nrows;
	size_t cap;       /* rows the batch arrays hold */
	size_t phase;     /* a twin: the rows of its first batch that its
			   * stream scored (the batch ends at BATCH_ROWS
			   * rows in all) */
	float *gx, *gout; /* routed: one model's rows gathered, scored */
	/* scratch for one row, reused */
	const char **fields;
	size_t *flen;
	double *num;      /* per field: its value, read as a plain number
			   * (csv_numbers), or NAN */
	size_t fcap;      /* fields, flen and num hold this many */
	char *unq;        /* unquoted fields */
	size_t ucap;
	/* the second lane of large writes (see the top), made at the first */
	struct pstream *twin;
	bool borrowed;    /* a twin: ms, maps, imaps, infield and badhead
			   * are its stream's */
};

/* Grow one batch array of elem-byte entries from old to cap rows. */
static int grow(void *pp, size_t elem, size_t old, size_t cap)
{
	void **p = pp;
	char *n = realloc(*p, cap * elem);

	if (!n)
		return -ENOMEM;
	memset(n + old * elem, 0, (cap - old) * elem);
	*p = n;
	return 0;
}

/* Room for cap rows in the batch. */
static int batch_room(struct pstream *s, size_t cap)
{
	size_t old = s->cap, st = s->stride;
	bool r = s->rt != NULL;

	if (grow(&s->x, st * sizeof(float), old, cap) ||
	    grow(&s->err, sizeof(*s->err), old, cap) ||
	    grow(&s->json, sizeof(*s->json), old, cap) ||
	    grow(&s->idoff, sizeof(*s->idoff), old, cap) ||
	    grow(&s->idlen, sizeof(*s->idlen), old, cap) ||
	    grow(&s->who, sizeof(*s->who), old, cap) ||
	    (r && (grow(&s->xm, st * sizeof(float), old, cap) ||
		   grow(&s->mir, sizeof(*s->mir), old, cap) ||
		   grow(&s->inoff, sizeof(*s->inoff), old, cap) ||
		   grow(&s->inlen, sizeof(*s->inlen), old, cap) ||
		   grow(&s->vnum, s->ms[0]->ninputs * sizeof(*s->vnum), old,
			cap) ||
		   grow(&s->vcat, s->ms[0]->ninputs * sizeof(*s->vcat), old,
			cap) ||
		   grow(&s->gx, st * sizeof(float), old, cap) ||
		   grow(&s->gout, s->nout * sizeof(float), old, cap))))
		return -ENOMEM;
	s->cap = cap;
	return 0;
}

static int stream_new(struct served **ms, size_t nm,
		      const struct pstream_route *rt, struct pstream **out)
{
	struct pstream *s = calloc(1, sizeof(*s));
	const struct served *m0 = ms[0];

	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->ms = ms;
	s->nm = nm;
	s->rt = rt;
	s->stride = 1;
	for (size_t j = 0; j < nm; j++) {
		if (ms[j]->fx->width > s->stride)
			s->stride = ms[j]->fx->width;
		if (ms[j]->nout > s->nout)
			s->nout = ms[j]->nout;
	}
	s->maps = calloc(nm, sizeof(*s->maps));
	s->imaps = calloc(nm, sizeof(*s->imaps));
	s->infield = calloc(m0->ninputs + 1, sizeof(*s->infield));
	if (!s->maps || !s->imaps || !s->infield) {
		pstream_free(s);
		return -ENOMEM;
	}
	/* without a header, fields come in the order of the model's inputs */
	for (size_t j = 0; j < nm; j++) {
		size_t bytes = (ms[j]->fx->ncols + 1) * sizeof(*s->maps[j]);

		/* a header may change maps (header_map), never imaps */
		s->maps[j] = malloc(bytes);
		s->imaps[j] = ms[j]->imap;
		if (!s->maps[j]) {
			pstream_free(s);
			return -ENOMEM;
		}
		memcpy(s->maps[j], ms[j]->imap, bytes);
	}
	for (size_t k = 0; k < m0->ninputs; k++)
		s->infield[k] = k;
	s->nfields = m0->ninputs;
	s->idfield = (size_t)-1;
	s->ids.max = PREDICT_IDS_MAX;
	/*
	 * Room for a few rows: most handles score one.  A batch grows the
	 * buffers to BATCH_ROWS rows (see one_row).
	 */
	if (batch_room(s, 8) < 0) {
		pstream_free(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

int pstream_new(struct served *m, struct pstream **out)
{
	struct pstream *s;
	int rc;

	rc = stream_new(&m, 1, NULL, &s);
	if (rc < 0)
		return rc;
	s->one = m;
	s->ms = &s->one;
	*out = s;
	return 0;
}

bool served_alike(const struct served *a, const struct served *b,
		  char *why, size_t whylen)
{
	if (a->task != b->task) {
		snprintf(why, whylen, "a different task");
		return false;
	}
	if (a->nout != b->nout || a->nclasses != b->nclasses) {
		snprintf(why, whylen, "different classes");
		return false;
	}
	for (size_t c = 0; c < a->nclasses; c++)
		if (strcmp(a->classes[c], b->classes[c]) != 0) {
			snprintf(why, whylen, "different classes (or order): "
					      "\"%s\" where \"%s\" is",
				 b->classes[c], a->classes[c]);
			return false;
		}
	if (a->ninputs != b->ninputs) {
		snprintf(why, whylen, "%zu inputs, not %zu", b->ninputs,
			 a->ninputs);
		return false;
	}
	for (size_t k = 0; k < a->ninputs; k++)
		if (strcmp(a->inputs[k], b->inputs[k]) != 0) {
			snprintf(why, whylen, "input %zu is \"%s\", not \"%s\"",
				 k + 1, b->inputs[k], a->inputs[k]);
			return false;
		}
	if ((a->idcol == NULL) != (b->idcol == NULL) ||
	    (a->idcol && strcmp(a->idcol, b->idcol) != 0)) {
		snprintf(why, whylen, "a different id column");
		return false;
	}
	return true;
}

int pstream_new_routed(struct served **ms, size_t nm,
		       const struct pstream_route *rt, struct pstream **out)
{
	char why[256];

	*out = NULL;
	if (nm == 0 || !rt)
		return -EINVAL;
	if (nm > PSTREAM_MAX_MODELS)
		return -E2BIG;
	for (size_t j = 1; j < nm; j++)
		if (!served_alike(ms[0], ms[j], why, sizeof(why)))
			return -EINVAL;
	return stream_new(ms, nm, rt, out);
}

void pstream_free(struct pstream *s)
{
	if (!s)
		return;
	pstream_free(s->twin);
	for (size_t i = 0; i < s->nrows; i++)
		free(s->err[i]);
	for (size_t j = 0; !s->borrowed && j < s->nm; j++)
		free(s->maps ? s->maps[j] : NULL);
	if (!s->borrowed) {
		free(s->maps);
		free(s->imaps);
		free(s->infield);
		free(s->badhead);
	}
	free(s->carry);
	free(s->x);
	free(s->xm);
	free(s->err);
	free(s->json);
	free(s->idoff);
	free(s->idlen);
	free(s->who);
	free(s->mir);
	free(s->inoff);
	free(s->inlen);
	free(s->vnum);
	free(s->vcat);
	free(s->gx);
	free(s->gout);
	sb_free(&s->ids);
	sb_free(&s->ins);
	free(s->fields);
	free(s->flen);
	free(s->num);
	free(s->unq);
	free(s);
}

/* Make room for cap fields and len bytes of unquoted text. */
static int split_room(struct pstream *s, size_t cap, size_t len)
{
	if (cap > s->fcap) {
		const char **nf = realloc(s->fields, cap * sizeof(*nf));
		size_t *nl;
		double *nn;

		if (!nf)
			return -ENOMEM;
		s->fields = nf;
		nl = realloc(s->flen, cap * sizeof(*nl));
		if (!nl)
			return -ENOMEM;
		s->flen = nl;
		nn = realloc(s->num, cap * sizeof(*nn));
		if (!nn)
			return -ENOMEM;
		s->num = nn;
		s->fcap = cap;
	}
	if (len + 1 > s->ucap) {
		char *nu = realloc(s->unq, len + 1);

		if (!nu)
			return -ENOMEM;
		s->unq = nu;
		s->ucap = len + 1;
	}
	return 0;
}

/*
 * Split one CSV line (without its line end) into fields with the CSV
 * tokenizer that datasets and training read with (csv_numbers for runs
 * of plain numbers, each's value kept in s->num, else csv_field_plain or
 * csv_field_next, NAN in s->num): the field count,
 * -EINVAL with pb (a quote out of place, a NUL byte), or -ENOMEM.  A
 * field with doubled quotes is unescaped into s->unq, the others point
 * into line.  The arrays are the stream's, grown once and reused for
 * every row.
 */
static long split_csv(struct pstream *s, const char *line, size_t len,
		      struct problem *pb)
{
	struct csv_tok tok = {
		.p = line,
		.end = line + len,
		.line_start = line,
		.line = 1,
		.max_field = SIZE_MAX, /* the line is bounded already */
		.pb = pb,
	};
	struct csv_field f;
	size_t n = 0;
	size_t u = 0;
	int rc;

	if (split_room(s, s->fcap ? s->fcap : 16, len) < 0)
		return -ENOMEM;
	for (;;) {
		bool ended;

		if (n == s->fcap && split_room(s, s->fcap * 2, len) < 0)
			return -ENOMEM;
		n += csv_numbers(tok.p, tok.end, s->fields + n, s->flen + n,
				 s->num + n, s->fcap - n, &tok.p, &ended);
		if (ended)
			break;
		if (n == s->fcap)
			continue; /* more numbers, maybe: room first */
		/* a plain field inline, as the dataset scan reads them */
		f.esc = false;
		if (!csv_field_plain(&tok, &f.p, &f.len, &f.term)) {
			rc = csv_field_next(&tok, &f);
			if (rc < 0)
				return rc;
		}
		s->fields[n] = f.p;
		s->flen[n] = f.len;
		s->num[n] = NAN;
		if (f.esc) {
			s->fields[n] = s->unq + u;
			s->flen[n] = csv_unescape(s->unq + u, f.p, f.len);
			u += s->flen[n];
		}
		n++;
		if (f.term != CSV_TERM_COMMA)
			break;
	}
	return (long)n;
}

/* A field's text without surrounding blanks (training trims its header). */
struct hname {
	const char *p;
	size_t n;
	size_t pos;     /* the field's index */
};

static struct hname field_name(const struct pstream *s, size_t k)
{
	struct hname h = { s->fields[k], s->flen[k], k };

	while (h.n && (*h.p == ' ' || *h.p == '\t')) {
		h.p++;
		h.n--;
	}
	while (h.n && (h.p[h.n - 1] == ' ' || h.p[h.n - 1] == '\t'))
		h.n--;
	return h;
}

/* Does field k of the row, less surrounding blanks, read name? */
static bool field_is(const struct pstream *s, size_t k, const char *name)
{
	struct hname h = field_name(s, k);

	return strlen(name) == h.n && memcmp(name, h.p, h.n) == 0;
}

/* By name, then by position. */
static int hname_cmp(const void *a, const void *b)
{
	const struct hname *x = a, *y = b;
	int c = memcmp(x->p, y->p, x->n < y->n ? x->n : y->n);

	if (c)
		return c;
	if (x->n != y->n)
		return x->n < y->n ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/*
 * Is the first CSV row of a stream a header?  Yes when no field is a
 * number and at least one names an input or the id column.  A data row
 * has numbers in its numeric features, and a row of text values (a model
 * of categorical features only, or a row of junk) is a header only if one
 * of its values happens to be a column name.  Names are compared without
 * surrounding blanks, as training trims its header.
 */
static bool looks_like_header(const struct pstream *s, long n)
{
	const struct served *m = s->ms[0];
	bool named = false;

	for (long i = 0; i < n; i++) {
		double v;

		if (csv_parse_double(s->fields[i], s->flen[i], &v))
			return false;
		for (size_t k = 0; k < m->ninputs && !named; k++)
			named = field_is(s, (size_t)i, m->inputs[k]);
		if (!named && m->idcol)
			named = field_is(s, (size_t)i, m->idcol);
	}
	return named;
}

/*
 * Take a header: every input must be named once; extra columns are
 * ignored, but a name may not repeat (which one would be meant?).
 * 0, -EINVAL with why set ("<column>: <problem>"), -ENOMEM.
 */
static int take_header(struct pstream *s, long n, char *why, size_t whylen)
{
	const struct served *m = s->ms[0];
	struct hname *h = malloc((size_t)n * sizeof(*h));
	size_t rep = (size_t)-1;

	/* a repeated name, sorted to find it (a header can be long) */
	if (!h)
		return -ENOMEM;
	for (long i = 0; i < n; i++)
		h[i] = field_name(s, (size_t)i);
	qsort(h, (size_t)n, sizeof(*h), hname_cmp);
	for (long i = 1; i < n; i++)
		if (h[i].n && h[i].n == h[i - 1].n &&
		    memcmp(h[i].p, h[i - 1].p, h[i].n) == 0 &&
		    (rep == (size_t)-1 || h[i - 1].pos < h[rep].pos))
			rep = (size_t)i - 1;
	if (rep != (size_t)-1) {
		snprintf(why, whylen, "%.*s: repeated in the header",
			 (int)(h[rep].n > 64 ? 64 : h[rep].n), h[rep].p);
		free(h);
		return -EINVAL;
	}
	free(h);
	for (size_t k = 0; k < m->ninputs; k++) {
		bool found = false;

		for (long i = 0; i < n && !found; i++)
			found = field_is(s, (size_t)i, m->inputs[k]);
		if (!found) {
			snprintf(why, whylen, "%s: missing from the header",
				 m->inputs[k]);
			return -EINVAL;
		}
	}
	for (size_t j = 0; j < s->nm; j++) {
		const struct fx *fx = s->ms[j]->fx;

		for (size_t i = 0; i < fx->ncols; i++) {
			s->maps[j][i] = (size_t)-1;
			for (long k = 0; k < n; k++)
				if (field_is(s, (size_t)k, fx->cols[i].name))
					s->maps[j][i] = (size_t)k;
		}
	}
	for (size_t k = 0; k < m->ninputs; k++)
		for (long i = 0; i < n; i++)
			if (field_is(s, (size_t)i, m->inputs[k]))
				s->infield[k] = (size_t)i;
	s->idfield = (size_t)-1;
	for (long k = 0; m->idcol && k < n; k++)
		if (field_is(s, (size_t)k, m->idcol))
			s->idfield = (size_t)k;
	s->nfields = (size_t)n;
	return 0;
}

static void row_error(struct pstream *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void row_error(struct pstream *s, const char *fmt, ...)
{
	char line[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	s->idoff[s->nrows] = (size_t)-1;
	s->who[s->nrows] = s->routed;
	s->err[s->nrows] = strdup(line);
	s->nrows++;
}

/*
 * Keep the id of the row in slot s->nrows, as its answer prints it: CSV
 * (quoted if it must be) or JSON text.  0 or -E2BIG (the batch's ids are
 * over PREDICT_IDS_MAX), -ENOMEM.
 */
static int keep_id(struct pstream *s, const char *p, size_t n, bool csv)
{
	size_t off = s->ids.len;

	s->ids.err = 0;
	if (csv && (memchr(p, ',', n) || memchr(p, '"', n) ||
		    memchr(p, '\n', n) || memchr(p, '\r', n))) {
		sb_append(&s->ids, "\"", 1);
		for (size_t i = 0; i < n; i++) {
			if (p[i] == '"')
				sb_append(&s->ids, "\"", 1); /* doubled */
			sb_append(&s->ids, p + i, 1);
		}
		sb_append(&s->ids, "\"", 1);
	} else {
		sb_append(&s->ids, p, n);
	}
	if (s->ids.err) {
		s->ids.len = off;
		return s->ids.err;
	}
	s->idoff[s->nrows] = off;
	s->idlen[s->nrows] = s->ids.len - off;
	return 0;
}

/* Is p[0..n) a number as JSON writes one?  (So a log can echo it.) */
static bool json_number_text(const char *p, size_t n)
{
	size_t i = 0;

	if (i < n && p[i] == '-')
		i++;
	if (i < n && p[i] == '0')
		i++;
	else if (i < n && p[i] >= '1' && p[i] <= '9')
		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++;
	else
		return false;
	if (i < n && p[i] == '.') {
		if (++i == n || p[i] < '0' || p[i] > '9')
			return false;
		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++;
	}
	if (i < n && (p[i] == 'e' || p[i] == 'E')) {
		if (++i < n && (p[i] == '+' || p[i] == '-'))
			i++;
		if (i == n || p[i] < '0' || p[i] > '9')
			return false;
		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++;
	}
	return i == n;
}

/*
 * The row's inputs as a JSON object, for the caller's log: numbers as
 * numbers (as written, when JSON would write them so), empty fields as
 * null, the rest as strings.
 */
static int keep_inputs(struct pstream *s, const char *const *fields,
		       const size_t *flen, const size_t *infield)
{
	const struct served *m = s->ms[0];
	size_t off = s->ins.len;
	const unsigned char *mask = s->rt->mask;
	bool first = true;

	s->ins.err = 0;
	sb_append(&s->ins, "{", 1);
	for (size_t k = 0; k < m->ninputs; k++) {
		const char *f = fields[infield[k]];
		size_t n = flen[infield[k]];
		char num[NUM_SHORTEST_MAX];
		double v;

		/* for drift: before any mask, never told */
		s->vnum[s->nrows * m->ninputs + k] =
			n && csv_parse_double(f, n, &v) && isfinite(v) ? v : NAN;
		s->vcat[s->nrows * m->ninputs + k] = XXH3_64bits(f, n);
		if (mask && mask[k] == PSTREAM_IN_DROP)
			continue;
		if (!first)
			sb_append(&s->ins, ", ", 2);
		first = false;
		sb_json_string(&s->ins, m->inputs[k], strlen(m->inputs[k]));
		sb_append(&s->ins, ": ", 2);
		if (mask && mask[k] == PSTREAM_IN_HASH)
			s->rt->hash(s->rt->arg, f, n, &s->ins);
		else if (n == 0)
			sb_append(&s->ins, "null", 4);
		else if (json_number_text(f, n))
			sb_append(&s->ins, f, n);
		else if (csv_parse_double(f, n, &v) && isfinite(v))
			sb_append(&s->ins, num, num_shortest(v, 17, num));
		else
			sb_json_string(&s->ins, f, n);
	}
	sb_append(&s->ins, "}", 1);
	if (s->ins.err) {
		s->ins.len = off;
		return s->ins.err;
	}
	s->inoff[s->nrows] = off;
	s->inlen[s->nrows] = s->ins.len - off;
	return 0;
}

/*
 * A row whose fields are read: fx column i of model j is field
 * maps[j][i], input k is field infield[k], num (NULL: none) the fields
 * split_csv read as numbers; idp (idn bytes; NULL: none)
 * is its id as its answer prints it.  Routed (a routed stream asks its
 * caller), checked by its model, its id kept (a routed stream assigns
 * one to a row without), encoded into the batch; a bad row is answered
 * with its error line.  0, or -ENOMEM.
 */
static int take_row(struct pstream *s, const char *const *fields,
		    const size_t *flen, const double *num, size_t n,
		    size_t *const *maps, const size_t *infield, bool json,
		    const char *idp, size_t idn)
{
	const struct pstream_route *rt = s->rt;
	size_t cand = 0, r = s->nrows;
	long mirror = -1;
	char why[256];
	int rc;

	if (rt && rt->pick(rt->arg, &cand, &mirror, why, sizeof(why)) < 0) {
		row_error(s, "error: %s", why);
		return 0;
	}
	s->routed = cand;
	/* checked and encoded in one pass: each number is parsed once (a
	 * refused row's x is never answered) */
	memset(s->x + r * s->stride, 0, s->stride * sizeof(float));
	if (fx_apply_row(s->ms[cand]->fx, fields, flen, num, n, maps[cand],
			 s->x + r * s->stride, why, sizeof(why)) == -EINVAL) {
		row_error(s, "error: %s", why);
		return 0;
	}
	s->idoff[r] = (size_t)-1;
	if (idp) {
		rc = keep_id(s, idp, idn, !json);
	} else if (rt && rt->assign) {
		struct strbuf id = { 0 };

		rc = rt->assign(rt->arg, &id);
		if (rc == 0 && json) {
			struct strbuf q = { 0 };

			sb_json_string(&q, id.buf, id.len);
			rc = q.err ? q.err : keep_id(s, q.buf, q.len, false);
			sb_free(&q);
		} else if (rc == 0) {
			rc = keep_id(s, id.buf, id.len, true);
		}
		sb_free(&id);
	} else {
		rc = 0;
	}
	if (rc == -E2BIG) {
		row_error(s, "error: %s: too long", s->ms[0]->idcol);
		return 0;
	}
	if (rc < 0)
		return rc;
	if (rt && rt->answered) {
		rc = keep_inputs(s, fields, flen, infield);
		if (rc < 0)
			return rc;
	}
	if (rt) {
		s->mir[r] = -1;
		if (mirror >= 0 && (size_t)mirror < s->nm) {
			float *xm = s->xm + r * s->stride;

			memset(xm, 0, s->stride * sizeof(float));
			if (fx_apply_row(s->ms[mirror]->fx, fields, flen, num,
					 n, maps[mirror], xm, why,
					 sizeof(why)) != -EINVAL)
				s->mir[r] = mirror;
		}
	}
	s->json[r] = json;
	s->who[r] = cand;
	s->nrows++;
	return 0;
}

/* One JSON line: {"feature": value, ...} -> fields in input order. */
static int json_row(struct pstream *s, const char *line, size_t len)
{
	struct served *m = s->ms[0];
	json_error_t err;
	json_t *j = json_loadb(line, len, 0, &err);
	const char **fields;
	size_t *flen, *ident = NULL;
	char **owned;
	json_t *idv;
	char *idtext = NULL;
	int rc = 0;

	if (!json_is_object(j)) {
		json_decref(j);
		row_error(s, "error: bad JSON: %s", j ? "not an object" : err.text);
		return 0;
	}
	fields = calloc(m->ninputs + 1, sizeof(*fields));
	flen = calloc(m->ninputs + 1, sizeof(*flen));
	owned = calloc(m->ninputs + 1, sizeof(*owned));
	if (!fields || !flen || !owned) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t k = 0; k < m->ninputs; k++) {
		json_t *v = json_object_get(j, m->inputs[k]);

		if (json_is_string(v)) {
			fields[k] = json_string_value(v);
			flen[k] = json_string_length(v);
		} else if (json_is_number(v)) {
			if (asprintf(&owned[k], "%.17g", json_number_value(v)) < 0) {
				rc = -ENOMEM;
				goto out;
			}
			fields[k] = owned[k];
			flen[k] = strlen(owned[k]);
		} else if (!v || json_is_null(v)) {
			fields[k] = "";
			flen[k] = 0; /* missing: imputed */
		} else {
			row_error(s, "error: %s: a JSON %s, not a value",
				  m->inputs[k],
				  json_is_boolean(v)  ? "boolean"
				  : json_is_array(v) ? "array"
						     : "object");
			goto out;
		}
	}
	idv = m->idcol ? json_object_get(j, m->idcol) : NULL;
	if (idv && !json_is_null(idv)) {
		idtext = json_dumps(idv, JSON_ENCODE_ANY | JSON_COMPACT);
		if (!idtext) {
			rc = -ENOMEM;
			goto out;
		}
	}
	/* fields are in input order: input k is field k */
	ident = malloc((m->ninputs + 1) * sizeof(*ident));
	if (!ident) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t k = 0; k < m->ninputs; k++)
		ident[k] = k;
	rc = take_row(s, fields, flen, NULL, m->ninputs, s->imaps, ident,
		      true, idtext, idtext ? strlen(idtext) : 0);
out:
	for (size_t k = 0; owned && k < m->ninputs; k++)
		free(owned[k]);
	free(ident);
	free(idtext);
	free(owned);
	free(fields);
	free(flen);
	json_decref(j);
	return rc;
}

/*
 * An answer's number: the shortest decimal that reads back to the same
 * float (what the model computed), so a probability is neither cut to six
 * digits nor padded to seventeen.  In JSON a NaN or infinity is null.
 */
static void fmt_num(struct strbuf *out, float v, bool json)
{
	char b[NUM_SHORTEST_MAX];

	if (json && !isfinite(v)) {
		sb_append(out, "null", 4);
		return;
	}
	sb_append(out, b, num_shortest(v, 9, b));
}

/* The index of the largest of m's outputs p. */
static size_t best_of(const struct served *m, const float *p)
{
	size_t best = 0;

	for (size_t c = 1; c < m->nout; c++)
		if (p[c] > p[best])
			best = c;
	return best;
}

unsigned served_task(const struct served *m)
{
	return m->task;
}

size_t served_inputs(const struct served *m, char *const **names)
{
	*names = m->inputs;
	return m->ninputs;
}

int served_input_kind(const struct served *m, size_t k)
{
	for (size_t c = 0; k < m->ninputs && c < m->fx->ncols; c++)
		if (strcmp(m->fx->cols[c].name, m->inputs[k]) == 0)
			return (int)m->fx->cols[c].kind;
	return -1;
}

const char *served_class_name(const struct served *m, size_t c)
{
	return c < m->nclasses ? m->classes[c] : NULL;
}

long served_class(const struct served *m, const char *text, size_t len)
{
	for (size_t c = 0; c < m->nclasses; c++)
		if (strlen(m->classes[c]) == len &&
		    memcmp(m->classes[c], text, len) == 0)
			return (long)c;
	return -1;
}

float served_value(const struct served *m, const float *p)
{
	return m->task == MLFS_TASK_REGRESSION ? p[0] : (float)best_of(m, p);
}

float served_value_of(const struct served *m, json_t *prediction)
{
	const char *s = json_string_value(prediction);

	if (m->task == MLFS_TASK_CLASSIFICATION)
		return s ? (float)served_class(m, s, strlen(s)) : -1.0f;
	return (float)json_number_value(prediction);
}

void served_output_json(const struct served *m, const float *p,
			struct strbuf *out)
{
	size_t best = best_of(m, p);

	sb_puts(out, "\"prediction\": ");
	if (m->task == MLFS_TASK_CLASSIFICATION) {
		sb_json_string(out, m->classes[best],
			       strlen(m->classes[best]));
		sb_puts(out, ", \"probabilities\": {");
		for (size_t c = 0; c < m->nout; c++) {
			if (c)
				sb_append(out, ", ", 2);
			sb_json_string(out, m->classes[c],
				       strlen(m->classes[c]));
			sb_append(out, ": ", 2);
			fmt_num(out, p[c], true);
		}
		sb_puts(out, "}");
	} else if (m->task == MLFS_TASK_REGRESSION) {
		fmt_num(out, p[0], true);
	} else {
		sb_printf(out, "%zu", best);
	}
}

/* A row's answer line, without its newline. */
static void answer_line(const struct pstream *s, size_t r,
			const struct served *m, const float *p,
			struct strbuf *out)
{
	size_t best = best_of(m, p);

	if (s->json[r]) {
		sb_puts(out, "{");
		if (s->idoff[r] != (size_t)-1) {
			sb_puts(out, "\"id\": ");
			sb_append(out, s->ids.buf + s->idoff[r], s->idlen[r]);
			sb_puts(out, ", ");
		}
		served_output_json(m, p, out);
		sb_puts(out, "}");
		return;
	}
	if (s->idoff[r] != (size_t)-1) {
		sb_append(out, s->ids.buf + s->idoff[r], s->idlen[r]);
		sb_append(out, ",", 1);
	}
	if (m->task == MLFS_TASK_CLASSIFICATION) {
		sb_puts(out, m->classes[best]);
		for (size_t c = 0; c < m->nout; c++) {
			sb_append(out, ",", 1);
			fmt_num(out, p[c], false);
		}
	} else if (m->task == MLFS_TASK_REGRESSION) {
		fmt_num(out, p[0], false);
	} else {
		sb_printf(out, "%zu", best);
	}
}

/*
 * Score the rows of model j (mirror: the mirror copies of the rows it
 * mirrors) into buf, s->nout floats a row, gathered into one matrix.
 * 0, or -EIO when the model fails.
 */
static int score_group(struct pstream *s, size_t j, bool mirror, float *buf)
{
	const struct served *m = s->ms[j];
	const float *x = mirror ? s->xm : s->x;
	size_t w = m->fx->width, n = 0, k = 0;
	struct mlfs_matrix in, sc;

	for (size_t r = 0; r < s->nrows; r++)
		if (mirror ? s->mir[r] == (long)j
			   : s->who[r] == j && !s->err[r])
			memcpy(s->gx + w * n++, x + r * s->stride,
			       w * sizeof(float));
	if (n == 0)
		return 0;
	in = (struct mlfs_matrix){ s->gx, n, w, w };
	sc = (struct mlfs_matrix){ s->gout, n, m->nout, m->nout };
	if (m->ops->predict(m->inst, &in, &sc) < 0)
		return -EIO;
	for (size_t r = 0; r < s->nrows; r++)
		if (mirror ? s->mir[r] == (long)j
			   : s->who[r] == j && !s->err[r])
			memcpy(buf + r * s->nout, s->gout + m->nout * k++,
			       m->nout * sizeof(float));
	return 0;
}

/* Hand the caller of a routed stream the answer of row r. */
static void tell(struct pstream *s, size_t r, bool mirror, const float *p,
		 const char *line, size_t linelen)
{
	struct pstream_answer a = {
		.cand = mirror ? (size_t)s->mir[r] : s->who[r],
		.mirror = mirror,
		.line = line,
		.linelen = linelen,
		.out = p,
	};

	if (s->idoff[r] != (size_t)-1) {
		a.id = s->ids.buf + s->idoff[r];
		a.idlen = s->idlen[r];
	}
	if (p) {
		a.inputs = s->ins.buf + s->inoff[r];
		a.inlen = s->inlen[r];
		a.ninputs = s->ms[0]->ninputs;
		a.nums = s->vnum + r * a.ninputs;
		a.cats = s->vcat + r * a.ninputs;
		a.nout = s->ms[a.cand]->nout;
	}
	s->rt->answered(s->rt->arg, &a);
}

/* Score the batch and append one line per row to out. */
static int flush_batch(struct pstream *s, struct strbuf *out)
{
	size_t n = s->nrows, nm = s->nm;
	bool told = s->rt && s->rt->answered;
	bool failed[PSTREAM_MAX_MODELS] = { false };
	bool mfailed[PSTREAM_MAX_MODELS] = { false };
	float *buf, *mbuf = NULL;

	s->phase = 0;
	if (n == 0)
		return 0;
	buf = malloc(n * s->nout * sizeof(*buf));
	if (!buf)
		return -ENOMEM;
	if (!s->rt) {
		/* one model: the batch is its matrix (rows with errors have
		 * zeros in x: scored and then ignored) */
		struct served *m = s->ms[0];
		struct mlfs_matrix in = { s->x, n, m->fx->width, s->stride };
		struct mlfs_matrix sc = { buf, n, m->nout, s->nout };

		failed[0] = m->ops->predict(m->inst, &in, &sc) < 0;
	} else {
		mbuf = malloc(n * s->nout * sizeof(*mbuf));
		if (!mbuf) {
			free(buf);
			return -ENOMEM;
		}
		for (size_t j = 0; j < nm; j++) {
			failed[j] = score_group(s, j, false, buf) < 0;
			mfailed[j] = score_group(s, j, true, mbuf) < 0;
		}
	}
	for (size_t r = 0; r < n; r++) {
		size_t j = s->who[r], start = out->len;
		const float *p = buf + r * s->nout;

		if (s->err[r] || failed[j == (size_t)-1 ? 0 : j]) {
			sb_puts(out, s->err[r] ? s->err[r]
					       : "error: the model failed");
			if (told)
				tell(s, r, false, NULL, out->buf + start,
				     out->len - start);
			sb_append(out, "\n", 1);
			free(s->err[r]);
			s->err[r] = NULL;
			s->json[r] = false;
			continue;
		}
		answer_line(s, r, s->ms[j], p, out);
		if (told && !out->err)
			tell(s, r, false, p, out->buf + start,
			     out->len - start);
		sb_append(out, "\n", 1);
		if (told && s->mir[r] >= 0 && !mfailed[s->mir[r]])
			tell(s, r, true, mbuf + r * s->nout, NULL, 0);
		s->json[r] = false;
	}
	free(buf);
	free(mbuf);
	s->nrows = 0;
	s->ids.len = 0;
	s->ins.len = 0;
	return out->err ? out->err : 0;
}

/* One complete row (without its newline). */
static int one_row(struct pstream *s, const char *line, size_t len,
		   struct strbuf *out)
{
	struct problem pb;
	char why[256];
	long n;
	int rc = 0;

	if (len && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return 0; /* blank lines are not rows */
	if (s->nrows == s->cap &&
	    batch_room(s, s->cap * 8 < BATCH_ROWS ? s->cap * 8 : BATCH_ROWS) < 0)
		return -ENOMEM;
	s->routed = (size_t)-1;
	if (line[0] == '{') {
		rc = json_row(s, line, len);
		if (rc == -ENOMEM)
			return rc;
		s->headed = true;
	} else {
		n = split_csv(s, line, len, &pb);
		if (n == -ENOMEM)
			return -ENOMEM;
		if (n < 0) {
			row_error(s, "error: %s", pb.msg);
		} else if (!s->headed && looks_like_header(s, n)) {
			/* a header names the columns: any order, extras
			 * ignored */
			s->headed = true;
			rc = take_header(s, n, why, sizeof(why));
			if (rc == -ENOMEM)
				return rc;
			if (rc == 0)
				return 0;
			/* its rows cannot be read: each answered the same */
			if (asprintf(&s->badhead, "error: %s", why) < 0) {
				s->badhead = NULL;
				return -ENOMEM;
			}
			row_error(s, "%s", s->badhead);
		} else if (s->badhead) {
			row_error(s, "%s", s->badhead);
		} else if ((size_t)n != s->nfields) {
			s->headed = true;
			row_error(s, "error: expected %zu fields, got %ld",
				  s->nfields, n);
		} else {
			bool id = s->idfield != (size_t)-1;

			s->headed = true;
			rc = take_row(s, s->fields, s->flen, s->num, (size_t)n,
				      s->maps, s->infield, false,
				      id ? s->fields[s->idfield] : NULL,
				      id ? s->flen[s->idfield] : 0);
			if (rc < 0)
				return rc;
		}
	}
	if (s->phase + s->nrows == BATCH_ROWS)
		return flush_batch(s, out);
	return 0;
}

/*
 * Read and answer the complete rows p[0..end) (end just past a newline)
 * into out, the rows batched before them first.  0 or -errno, as
 * one_row and flush_batch.
 */
static int rows_in(struct pstream *s, const char *p, const char *end,
		   struct strbuf *out)
{
	int rc = 0;

	while (p < end && rc == 0) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		rc = one_row(s, p, (size_t)(nl - p), out);
		p = nl + 1;
	}
	if (rc == 0)
		rc = flush_batch(s, out);
	return rc;
}

/* The second half of a large write, on its own thread. */
struct half {
	struct pstream *s; /* the twin */
	const char *p;
	const char *end;
	struct strbuf out; /* its answers */
	int rc;
};

static void *half_main(void *arg)
{
	struct half *h = arg;

	h->rc = rows_in(h->s, h->p, h->end, &h->out);
	return NULL;
}

/*
 * The twin of s, made at its first large write, with what the header
 * said (borrowed: s outlives it, and takes no header after the first
 * row).  -ENOMEM.
 */
static int twin_ready(struct pstream *s)
{
	struct pstream *t = s->twin;

	if (!t) {
		t = calloc(1, sizeof(*t));
		if (!t)
			return -ENOMEM;
		t->borrowed = true;
		t->nm = s->nm;
		t->stride = s->stride;
		t->nout = s->nout;
		t->ids.max = PREDICT_IDS_MAX;
		if (batch_room(t, 8) < 0) {
			pstream_free(t);
			return -ENOMEM;
		}
		s->twin = t;
	}
	t->ms = s->ms;
	t->maps = s->maps;
	t->imaps = s->imaps;
	t->infield = s->infield;
	t->badhead = s->badhead;
	t->nfields = s->nfields;
	t->idfield = s->idfield;
	t->headed = s->headed;
	return 0;
}

/* Does the line p[0..n) take a row of the batch (as one_row reads it)? */
static bool line_is_row(const char *p, size_t n)
{
	return n > 1 || (n == 1 && p[0] != '\r');
}

/*
 * Where to cut the complete rows p[0..end) in two: just after a row near
 * the middle whose place in its batch (s's batch holds s->nrows rows
 * before p) is a multiple of PREDICT_SPLIT_ALIGN; *phase is that place
 * modulo BATCH_ROWS.  NULL if there is none.
 */
static const char *cut_rows(const struct pstream *s, const char *p,
			    const char *end, size_t *phase)
{
	const size_t a = PREDICT_SPLIT_ALIGN;
	size_t rows = 0, at, k = 0;
	const char *q, *nl;

	for (q = p; q < end; q = nl + 1) {
		nl = memchr(q, '\n', (size_t)(end - q));
		rows += line_is_row(q, (size_t)(nl - q));
	}
	at = (s->nrows + rows / 2 + a / 2) / a * a;
	if (at <= s->nrows || at >= s->nrows + rows)
		return NULL;
	for (q = p; k < at - s->nrows; q = nl + 1) {
		nl = memchr(q, '\n', (size_t)(end - q));
		k += line_is_row(q, (size_t)(nl - q));
	}
	*phase = at % BATCH_ROWS;
	return q;
}

/*
 * The complete rows p[0..end) of a large write, in two halves on two
 * threads (see the top); false (nothing read) when they cannot be cut
 * in two.  *rc: 0 or -errno (-ENOMEM: some of the rows may be left
 * unanswered, as when one thread fails).
 */
static bool rows_in_halves(struct pstream *s, const char *p, const char *end,
			   struct strbuf *out, int *rc)
{
	struct half h = { NULL, NULL, end, { 0 }, 0 };
	const char *cut;
	size_t phase;
	pthread_t th;
	bool started;

	*rc = 0;
	cut = cut_rows(s, p, end, &phase);
	if (!cut || twin_ready(s) < 0)
		return false;
	h.s = s->twin;
	h.s->phase = phase;
	h.p = cut;
	h.out.max = out->max;
	started = pthread_create(&th, NULL, half_main, &h) == 0;
	*rc = rows_in(s, p, cut, out);
	if (started)
		pthread_join(th, NULL);
	else
		half_main(&h); /* no thread: in turn */
	if (*rc == 0)
		*rc = h.rc;
	if (*rc == 0) {
		sb_append(out, h.out.buf, h.out.len);
		*rc = out->err;
	}
	if (h.s->nrows) {
		/* a failed half: its batch is not answered later, out of
		 * order */
		for (size_t i = 0; i < h.s->nrows; i++) {
			free(h.s->err[i]);
			h.s->err[i] = NULL;
		}
		h.s->nrows = 0;
		h.s->ids.len = 0;
		h.s->phase = 0;
	}
	sb_free(&h.out);
	return true;
}

int pstream_write(struct pstream *s, const char *buf, size_t len,
		  struct strbuf *out)
{
	const char *p = buf, *end = buf + len;
	bool split_tried = false;
	int rc = 0;

	while (p < end && rc == 0) {
		const char *nl, *last;

		if (!split_tried && !s->skipping && !s->carry_len &&
		    s->headed && !s->rt &&
		    (size_t)(end - p) >= PREDICT_SPLIT_MIN) {
			split_tried = true;
			last = memrchr(p, '\n', (size_t)(end - p));
			if (last &&
			    (size_t)(last + 1 - p) >= PREDICT_SPLIT_MIN &&
			    rows_in_halves(s, p, last + 1, out, &rc)) {
				p = last + 1;
				continue;
			}
		}
		nl = memchr(p, '\n', (size_t)(end - p));
		if (s->skipping) {
			/* the rest of a row already answered with an error:
			 * one answer per row keeps the stream aligned */
			if (!nl)
				break;
			s->skipping = false;
			p = nl + 1;
			continue;
		}
		if (!nl) {
			/* carry the partial row to the next write */
			size_t more = (size_t)(end - p);
			char *nc;

			if (s->carry_len + more > PREDICT_MAX_LINE) {
				free(s->carry);
				s->carry = NULL;
				s->carry_len = 0;
				/*
				 * Answer the rows before it first: the batch
				 * may fill its arrays, and the error line
				 * needs a slot of its own.
				 */
				rc = flush_batch(s, out);
				if (rc < 0)
					return rc;
				s->routed = (size_t)-1;
				row_error(s, "error: row longer than %d bytes",
					  PREDICT_MAX_LINE);
				flush_batch(s, out);
				s->skipping = true;
				return -E2BIG;
			}
			nc = realloc(s->carry, s->carry_len + more);
			if (!nc)
				return -ENOMEM;
			memcpy(nc + s->carry_len, p, more);
			s->carry = nc;
			s->carry_len += more;
			break;
		}
		if (s->carry_len) {
			size_t more = (size_t)(nl - p);
			char *nc = realloc(s->carry, s->carry_len + more);

			if (!nc)
				return -ENOMEM;
			memcpy(nc + s->carry_len, p, more);
			rc = one_row(s, nc, s->carry_len + more, out);
			free(nc);
			s->carry = NULL;
			s->carry_len = 0;
		} else {
			rc = one_row(s, p, (size_t)(nl - p), out);
		}
		p = nl + 1;
	}
	if (rc == 0)
		rc = flush_batch(s, out);
	return rc;
}

int pstream_finish(struct pstream *s, struct strbuf *out)
{
	int rc = 0;

	s->skipping = false;
	if (s->carry_len) {
		rc = one_row(s, s->carry, s->carry_len, out);
		free(s->carry);
		s->carry = NULL;
		s->carry_len = 0;
	}
	if (rc == 0)
		rc = flush_batch(s, out);
	return rc;
}

/*
 * The last k comma-separated fields of line (k numbers, which hold no
 * comma): their start in *tail; what is before them (the label) in
 * *head, *hlen.  false if the line has fewer.
 */
static bool split_right(const char *line, size_t len, size_t k,
			const char **tail, size_t *hlen)
{
	size_t i = len;

	for (size_t f = 0; f < k; f++) {
		while (i > 0 && line[i - 1] != ',')
			i--;
		if (i == 0)
			return false;
		i--;
	}
	*tail = line + i;
	*hlen = i;
	return true;
}

static bool near(double a, double b)
{
	return fabs(a - b) <= 1e-6 * fmax(1.0, fabs(b));
}

/*
 * sample_match: do ans (len bytes, the lines predict answers, one per row)
 * say what the sample.csv parsed into t recorded for its rows?  0, or
 * -EINVAL with why naming the row.
 */
int sample_match(const struct table *t, unsigned task, const char *ans,
		 size_t len, char *why, size_t whylen)
{
	size_t r = 0;
	const char *p;
	long pcol;
	int rc = 0;

	pcol = table_col(t, "prediction");
	if (pcol < 0) {
		snprintf(why, whylen, "sample.csv: no prediction column");
		return -EINVAL;
	}
	for (p = ans; rc == 0 && r < t->nrows; r++) {
		const char *nl = p ? memchr(p, '\n', len - (size_t)(p - ans))
				   : NULL;
		size_t alen = nl ? (size_t)(nl - p) : 0, hlen, plen;
		size_t pc = (size_t)pcol; /* the recorded prediction */
		size_t k = task == MLFS_TASK_CLASSIFICATION
				   ? t->ncols - 1 - pc
				   : 0;
		const char *tail, *rec = t->data + t->off[r * t->ncols + pc];

		plen = t->len[r * t->ncols + pc];
		if (!nl || strncmp(p, "error", 5) == 0 ||
		    !split_right(p, alen, k, &tail, &hlen)) {
			snprintf(why, whylen, "sample.csv row %zu: answered "
					      "\"%.*s\"",
				 r + 1, (int)(alen > 120 ? 120 : alen),
				 p ? p : "");
			rc = -EINVAL;
			break;
		}
		if (task == MLFS_TASK_REGRESSION) {
			double a = strtod(p, NULL), b = strtod(rec, NULL);

			if (!near(a, b))
				rc = -EINVAL; /* NaN too */
		} else if (hlen != plen || memcmp(p, rec, plen) != 0) {
			rc = -EINVAL;
		}
		for (size_t c = 0; rc == 0 && c < k; c++) {
			double b = 0, a = strtod(tail + 1, (char **)&tail);

			table_num(t, r, pc + 1 + c, &b);
			if (!(fabs(a - b) <= 1e-6))
				rc = -EINVAL; /* a NaN answer too */
		}
		if (rc < 0)
			snprintf(why, whylen,
				 "sample.csv row %zu: answered \"%.*s\" where "
				 "the model recorded \"%.*s\"",
				 r + 1, (int)(alen > 120 ? 120 : alen), p,
				 (int)(plen > 120 ? 120 : plen), rec);
		p = nl + 1;
	}
	return rc;
}

int served_check_sample(struct served *m, const char *text, size_t len,
			char *why, size_t whylen)
{
	struct strbuf out = { 0 };
	struct problem pb = { 0 };
	struct pstream *ps = NULL;
	struct table *t = NULL;
	int rc;

	rc = table_parse(text, len, &t, &pb);
	if (rc == 0)
		rc = pstream_new(m, &ps);
	if (rc == 0)
		rc = pstream_write(ps, text, len, &out);
	if (rc == 0)
		rc = pstream_finish(ps, &out);
	if (rc < 0) {
		snprintf(why, whylen, "sample.csv: cannot be scored (%s)",
			 pb.msg[0] ? pb.msg : strerror(-rc));
		rc = -EINVAL;
	} else {
		rc = sample_match(t, m->task, out.buf, out.len, why, whylen);
	}
	pstream_free(ps);
	table_free(t);
	sb_free(&out);
	return rc;
}
