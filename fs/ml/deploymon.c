/* SPDX-License-Identifier: MIT */
/*
 * Monitoring of a deployment (DESIGN.md §4): what its revision's answers
 * cost and how its inputs drift.
 *
 *   - Each answer adds its latency to its candidate's histograms (a fine
 *     log one for the interval's percentiles, Prometheus' buckets since
 *     the revision began) and its inputs, and the prediction, to a ring
 *     of the last monitor.window rows.  Under the dep's lock, with the
 *     counters routing keeps.
 *   - Every monitor.interval the committer thread (deploy.c) writes one
 *     JSON line per candidate to the deployment's metrics: the
 *     interval's requests, errors, latency percentiles, traffic share,
 *     what feedback said, and a drift summary of the window.
 *   - drift and metrics.prom are made when opened.
 *
 * The reference ("training"): the first candidate's reference.csv, the
 * training rows it was fitted on (and its answers, for the prediction).
 * A dataset version ("name@n") gives the inputs but no prediction.
 * Time inputs are not compared.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "csv.h"
#include "deploy_int.h"
#include "drift.h"
#include "fs.h"
#include "jsonout.h"
#include "mlcore.h"
#include "mlfs_plugin.h"
#include "repo.h"
#include "store.h"

#define REF_MAX ((size_t)256 << 20)  /* bytes of a reference read */
#define LINES_MAX ((size_t)4 << 20)  /* metrics kept in memory */
#define FINE 320                     /* log buckets: 8 per octave */

/* Prometheus' latency buckets, seconds (and +Inf after them). */
static const double prom_le[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
				  0.005,  0.01,    0.025,  0.05,  0.1,
				  0.25,   0.5,     1,      2.5 };
#define NPROM (sizeof(prom_le) / sizeof(prom_le[0]))

struct dmcand {
	uint32_t fine[FINE];        /* this interval */
	uint64_t prom[NPROM + 1];   /* since the revision began */
	double sum_s;               /* seconds, since it began */
	uint64_t count;
	struct dstat last;          /* the counters at the last line */
};

struct dmon {
	double interval;
	size_t window;
	char refname[300];
	size_t nin;             /* inputs; the prediction is input nin */
	char **names;
	int *kind;              /* per input: enum fx_kind, or -1 */
	struct drift_ref *refs; /* nin + 1; n 0: nothing to compare */
	uint64_t *classes;      /* the first candidate's class hashes */
	size_t nclasses;
	bool regression;        /* the prediction is a number */
	/* the window: rows of nin + 1 values, a ring */
	double *nums;
	uint64_t *cats;
	size_t head, count;
	struct dmcand c[PSTREAM_MAX_MODELS];
	uint64_t unknown, repeated; /* feedback's, at the last lines */
	double next_at;         /* monotonic s of the next line */
	uint64_t rows;          /* rows the window took, in all (d->lock) */
	/* the window's drift, as last computed (drift_now) */
	pthread_mutex_t dlock;
	struct drift_result *res;
	size_t res_n;
	uint64_t res_rows;
};

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t fine_of(uint64_t us)
{
	unsigned e;

	if (us < 8)
		return (size_t)us;
	e = 63u - (unsigned)__builtin_clzll(us);
	if (e > 41)
		return FINE - 1;
	return 8 + (size_t)(e - 3) * 8 + (size_t)((us >> (e - 3)) & 7);
}

/* The largest latency (µs) bucket i holds. */
static uint64_t fine_top(size_t i)
{
	size_t e, sub;

	if (i < 8)
		return i;
	e = (i - 8) / 8 + 3;
	sub = (i - 8) % 8;
	return ((uint64_t)(8 + sub + 1) << (e - 3)) - 1;
}

static uint64_t percentile(const uint32_t *h, uint64_t n, double q)
{
	uint64_t want = (uint64_t)ceil(q * (double)n), seen = 0;

	if (n == 0)
		return 0;
	if (want == 0)
		want = 1;
	for (size_t i = 0; i < FINE; i++) {
		seen += h[i];
		if (seen >= want)
			return fine_top(i);
	}
	return fine_top(FINE - 1);
}

void dmon_free(struct dmon *m)
{
	if (!m)
		return;
	for (size_t i = 0; m->names && i < m->nin; i++)
		free(m->names[i]);
	for (size_t i = 0; m->refs && i <= m->nin; i++)
		drift_ref_free(&m->refs[i]);
	pthread_mutex_destroy(&m->dlock);
	free(m->res);
	free(m->names);
	free(m->kind);
	free(m->refs);
	free(m->classes);
	free(m->nums);
	free(m->cats);
	free(m);
}

static const char *file_hash(json_t *man, const char *file)
{
	return json_string_value(json_object_get(
		json_object_get(json_object_get(man, "files"), file), "hash"));
}

/* The reference's text: the blob of the first candidate's reference.csv,
 * or of the dataset version ref names. */
static int ref_text(struct fs *fs, struct dep *d, const char *ref,
		    char **buf, size_t *len, char *why, size_t whylen)
{
	char name[256], key[96];
	const char *hash = NULL;
	json_t *man = NULL, *rec = NULL;
	unsigned ver;
	int rc;

	if (strcmp(ref, "training") == 0) {
		const char *at = strrchr(d->ref[0], '@');

		snprintf(name, sizeof(name), "%.*s",
			 at ? (int)(at - d->ref[0]) : 0, d->ref[0]);
		ver = at ? (unsigned)strtoul(at + 1, NULL, 10) : 0;
		rc = repo_version(fs, &repo_models, name, ver, &man);
		hash = rc == 0 ? file_hash(man, "reference.csv") : NULL;
		if (!hash)
			snprintf(why, whylen, "%s has no reference.csv (trained "
					      "before mlfs kept one, or "
					      "imported)",
				 d->ref[0]);
	} else {
		rc = repo_ref_resolve(fs, &repo_datasets, ref, name,
				      sizeof(name), &ver, &rec, why, whylen);
		if (rc == 0)
			rc = repo_version(fs, &repo_datasets, name, ver, &man);
		hash = rc == 0 ? json_string_value(json_object_get(man, "blob"))
			       : NULL;
		if (hash)
			snprintf(key, sizeof(key), "%s", hash);
		json_decref(rec);
		if (!hash && !why[0])
			snprintf(why, whylen, "dataset %s has no data", ref);
	}
	if (!hash) {
		json_decref(man);
		return -ENOENT;
	}
	if (strcmp(ref, "training") == 0)
		repo_blob_key(hash, key, sizeof(key));
	json_decref(man);
	rc = store_get(fs->store, key, REF_MAX, buf, len);
	if (rc < 0)
		snprintf(why, whylen, "reading the reference: %s",
			 strerror(-rc));
	return rc;
}

/* The references of each input (and the prediction) from the text. */
static int refs_load(struct dmon *m, const char *text, size_t len,
		     char *why, size_t whylen)
{
	struct problem pb = { 0 };
	struct table *t = NULL;
	double *num = NULL;
	uint64_t *cat = NULL;
	int rc = table_parse(text, len, &t, &pb);

	if (rc < 0) {
		snprintf(why, whylen, "the reference: %s", pb.msg);
		return rc;
	}
	num = malloc(t->nrows * sizeof(*num) + 1);
	cat = malloc(t->nrows * sizeof(*cat) + 1);
	for (size_t k = 0; num && cat && k <= m->nin; k++) {
		long col = table_col(t, k < m->nin ? m->names[k] : "prediction");
		bool numeric = k < m->nin ? m->kind[k] == FX_NUMERIC
					  : m->regression;

		if (col < 0 || (k < m->nin && m->kind[k] == FX_TIME))
			continue; /* nothing to compare with */
		for (size_t r = 0; r < t->nrows; r++) {
			size_t at = r * t->ncols + (size_t)col;
			const char *f = t->data + t->off[at];
			size_t n = t->len[at];

			if (!numeric || !csv_parse_double(f, n, &num[r]) ||
			    !isfinite(num[r]))
				num[r] = NAN;
			cat[r] = XXH3_64bits(f, n);
		}
		rc = numeric ? drift_ref_numbers(&m->refs[k], num, t->nrows)
			     : drift_ref_categories(&m->refs[k], cat,
						    t->nrows);
		if (rc < 0)
			break;
	}
	if (!num || !cat)
		rc = -ENOMEM;
	free(num);
	free(cat);
	table_free(t);
	return rc;
}

int dmon_build(struct fs *fs, struct dep *d, char *why, size_t whylen)
{
	json_t *mon = json_object_get(d->spec, "monitor");
	const char *ref = json_string_value(json_object_get(mon, "reference"));
	char *const *names;
	struct dmon *m;
	char *text = NULL;
	size_t len = 0, nin;
	int rc = 0;

	d->mon = NULL;
	if (!json_is_object(mon))
		return 0; /* "monitor": false */
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->dlock, NULL);
	m->interval = json_number_value(json_object_get(mon, "interval"));
	m->window = (size_t)json_integer_value(json_object_get(mon, "window"));
	snprintf(m->refname, sizeof(m->refname), "%s", ref ? ref : "training");
	m->regression = d->task == MLFS_TASK_REGRESSION;
	nin = served_inputs(d->ms[0], &names);
	m->nin = nin;
	m->names = calloc(nin + 1, sizeof(*m->names));
	m->kind = calloc(nin + 1, sizeof(*m->kind));
	m->refs = calloc(nin + 1, sizeof(*m->refs));
	m->nums = malloc(m->window * (nin + 1) * sizeof(*m->nums));
	m->cats = malloc(m->window * (nin + 1) * sizeof(*m->cats));
	if (!m->names || !m->kind || !m->refs || !m->nums || !m->cats) {
		dmon_free(m);
		return -ENOMEM;
	}
	for (size_t k = 0; k < nin; k++) {
		m->names[k] = strdup(names[k]);
		m->kind[k] = served_input_kind(d->ms[0], k);
		if (!m->names[k]) {
			dmon_free(m);
			return -ENOMEM;
		}
	}
	if (d->task == MLFS_TASK_CLASSIFICATION) {
		/* classes as categories, by their text (clusters: their
		 * number's) */
		size_t n = 0;

		while (served_class_name(d->ms[0], n))
			n++;
		m->classes = malloc((n ? n : 1) * sizeof(*m->classes));
		if (!m->classes) {
			dmon_free(m);
			return -ENOMEM;
		}
		for (size_t c = 0; c < n; c++) {
			const char *cn = served_class_name(d->ms[0], c);

			m->classes[c] = XXH3_64bits(cn, strlen(cn));
		}
		m->nclasses = n;
	}
	why[0] = '\0';
	if (ref_text(fs, d, m->refname, &text, &len, why, whylen) == 0)
		rc = refs_load(m, text, len, why, whylen);
	free(text);
	if (rc == -ENOMEM) {
		dmon_free(m);
		return rc;
	}
	if (why[0])
		fs_log(fs, 5, "deployments/%s: drift has no reference: %s",
		       d->e->name, why);
	pthread_mutex_lock(&d->e->lock);
	m->unknown = d->e->fb_unknown; /* counted from now on */
	m->repeated = d->e->fb_repeated;
	pthread_mutex_unlock(&d->e->lock);
	m->next_at = mono() + m->interval;
	d->mon = m;
	return 0;
}

/* The text of cluster or class index c, hashed as reference.csv has it. */
static uint64_t class_hash(const struct dmon *m, size_t c)
{
	char num[24];
	int n;

	if (c < m->nclasses)
		return m->classes[c];
	n = snprintf(num, sizeof(num), "%zu", c);
	if (n < 0 || (size_t)n >= sizeof(num))
		return 0;	/* never: 20 digits at most */
	return XXH3_64bits(num, (size_t)n);
}

void dmon_answer_locked(struct dep *d, const struct pstream_answer *a,
			uint64_t us)
{
	struct dmon *m = d->mon;
	struct dmcand *c;
	size_t b, row;

	if (!m || a->mirror)
		return;
	c = &m->c[a->cand];
	c->fine[fine_of(us)]++;
	for (b = 0; b < NPROM && (double)us / 1e6 > prom_le[b]; b++)
		;
	c->prom[b]++;
	c->sum_s += (double)us / 1e6;
	c->count++;
	if (!a->out || !a->nums)
		return;
	row = m->head * (m->nin + 1);
	memcpy(m->nums + row, a->nums, m->nin * sizeof(*m->nums));
	memcpy(m->cats + row, a->cats, m->nin * sizeof(*m->cats));
	{
		float v = served_value(d->ms[a->cand], a->out);

		m->nums[row + m->nin] = v;
		m->cats[row + m->nin] =
			d->task == MLFS_TASK_REGRESSION ? 0
							: class_hash(m, (size_t)v);
	}
	m->head = (m->head + 1) % m->window;
	if (m->count < m->window)
		m->count++;
	m->rows++;
}

/* --- drift over the window --- */

struct snapshot {
	size_t n;        /* rows */
	double *nums;    /* column-major: input k at nums[k * n] */
	uint64_t *cats;
	struct drift_result *res; /* nin + 1 */
};

static void snapshot_free(struct snapshot *s)
{
	free(s->nums);
	free(s->cats);
	free(s->res);
}

/* Under d->lock: the window, by column. */
static int snapshot_take(const struct dmon *m, struct snapshot *s)
{
	size_t w = m->nin + 1, n = m->count;

	memset(s, 0, sizeof(*s));
	s->n = n;
	s->nums = malloc((n ? n : 1) * w * sizeof(*s->nums));
	s->cats = malloc((n ? n : 1) * w * sizeof(*s->cats));
	s->res = calloc(w, sizeof(*s->res));
	if (!s->nums || !s->cats || !s->res) {
		snapshot_free(s);
		return -ENOMEM;
	}
	for (size_t r = 0; r < n; r++)
		for (size_t k = 0; k < w; k++) {
			s->nums[k * n + r] = m->nums[r * w + k];
			s->cats[k * n + r] = m->cats[r * w + k];
		}
	return 0;
}

/* Outside the lock: every input's statistics; NAN where none. */
static void snapshot_drift(const struct dmon *m, struct snapshot *s)
{
	size_t scratch_n = s->n + 1;
	double *scratch;

	for (size_t k = 0; k <= m->nin; k++) {
		size_t need = m->refs[k].numeric ? 2 * (m->refs[k].n + 1)
						 : m->refs[k].ncats + 1;

		if (need > scratch_n)
			scratch_n = need;
	}
	scratch = malloc(scratch_n * sizeof(*scratch));
	for (size_t k = 0; k <= m->nin; k++) {
		const struct drift_ref *r = &m->refs[k];
		struct drift_result *o = &s->res[k];

		if (!scratch || (r->n == 0 && !r->cats && !r->sorted)) {
			o->psi = o->ks = o->ks_p = o->chi2 = o->chi2_p = NAN;
			continue;
		}
		if (r->numeric)
			drift_numbers(r, s->nums + k * s->n, s->n, scratch, o);
		else
			drift_categories(r, s->cats + k * s->n, s->n, scratch,
					 o);
	}
	free(scratch);
}

/*
 * The window's drift, into s (s->res and s->n only; snapshot_free):
 * computed again only when rows came since it last was, so readers of
 * drift and metrics.prom and the committer's beat share one computation.
 */
static int drift_now(struct dep *d, struct snapshot *s)
{
	struct dmon *m = d->mon;
	size_t w = m->nin + 1;
	struct snapshot t;
	uint64_t rows;
	int rc = 0;

	memset(s, 0, sizeof(*s));
	s->res = malloc(w * sizeof(*s->res));
	if (!s->res)
		return -ENOMEM;
	pthread_mutex_lock(&m->dlock);
	pthread_mutex_lock(&d->lock);
	rows = m->rows;
	if (!m->res || m->res_rows != rows)
		rc = snapshot_take(m, &t);
	else
		t.res = NULL;
	pthread_mutex_unlock(&d->lock);
	if (rc == 0 && t.res) {
		snapshot_drift(m, &t);
		free(m->res);
		m->res = t.res;
		m->res_n = t.n;
		m->res_rows = rows;
		t.res = NULL;
		snapshot_free(&t);
	}
	if (rc == 0) {
		memcpy(s->res, m->res, w * sizeof(*s->res));
		s->n = m->res_n;
	}
	pthread_mutex_unlock(&m->dlock);
	if (rc < 0)
		snapshot_free(s);
	return rc;
}

static bool compared(const struct dmon *m, size_t k)
{
	const struct drift_ref *r = &m->refs[k];

	return r->sorted || r->cats;
}

static void put_num(struct strbuf *out, double v)
{
	char num[NUM_SHORTEST_MAX];

	if (!isfinite(v))
		sb_puts(out, "null");
	else
		sb_append(out, num, num_shortest(v, 17, num));
}

int dmon_show_drift(struct dep *d, struct strbuf *out)
{
	struct dmon *m = d->mon;
	struct snapshot s;
	int rc;

	if (!m)
		return sb_puts(out, "{\"monitor\": false}\n");
	rc = drift_now(d, &s);
	if (rc < 0)
		return rc;
	sb_printf(out, "{\"window\": %zu, \"reference\": ", s.n);
	sb_json_string(out, m->refname, strlen(m->refname));
	sb_puts(out, ", \"features\": [");
	for (size_t k = 0; k <= m->nin; k++) {
		const struct drift_result *r = &s.res[k];
		const char *name = k < m->nin ? m->names[k] : "prediction";

		sb_puts(out, k ? ",\n  {\"name\": " : "\n  {\"name\": ");
		sb_json_string(out, name, strlen(name));
		if (!compared(m, k)) {
			sb_puts(out, ", \"compared\": false}");
			continue;
		}
		sb_printf(out, ", \"type\": \"%s\", \"reference_rows\": %zu, "
			       "\"rows\": %zu, \"psi\": ",
			  m->refs[k].numeric ? "numeric" : "categorical",
			  m->refs[k].n, r->n);
		put_num(out, r->psi);
		if (m->refs[k].numeric) {
			sb_puts(out, ", \"ks\": ");
			put_num(out, r->ks);
			sb_puts(out, ", \"ks_p\": ");
			put_num(out, r->ks_p);
		} else {
			sb_puts(out, ", \"chi2\": ");
			put_num(out, r->chi2);
			sb_printf(out, ", \"dof\": %u, \"chi2_p\": ", r->dof);
			put_num(out, r->chi2_p);
		}
		sb_puts(out, "}");
	}
	snapshot_free(&s);
	return sb_puts(out, "\n]}\n");
}

/* --- the interval's lines --- */

/*
 * One JSON line per candidate: what the interval since the last said;
 * then the alert rules judge it (view).
 */
static void lines_make(struct dep *d, struct strbuf *out,
		       struct dmon_view *view)
{
	struct dmon *m = d->mon;
	struct dstat now[PSTREAM_MAX_MODELS];
	uint32_t (*fine)[FINE] = malloc(d->ncand * sizeof(*fine));
	struct snapshot s;
	uint64_t total = 0, unknown, repeated;
	char when[40];
	double maxpsi = NAN, minp = NAN;
	const char *worst = NULL;
	int rc;

	if (!fine)
		return;
	pthread_mutex_lock(&d->lock);
	for (size_t i = 0; i < d->ncand; i++) {
		now[i] = d->cs[i];
		memcpy(fine[i], m->c[i].fine, sizeof(fine[i]));
		memset(m->c[i].fine, 0, sizeof(m->c[i].fine));
		total += now[i].requests - m->c[i].last.requests;
	}
	pthread_mutex_unlock(&d->lock);
	rc = drift_now(d, &s);
	pthread_mutex_lock(&d->e->lock);
	unknown = d->e->fb_unknown - m->unknown;
	repeated = d->e->fb_repeated - m->repeated;
	m->unknown = d->e->fb_unknown;
	m->repeated = d->e->fb_repeated;
	pthread_mutex_unlock(&d->e->lock);
	if (rc == 0) {
		for (size_t k = 0; k <= m->nin; k++) {
			const struct drift_result *r = &s.res[k];
			double p = m->refs[k].numeric ? r->ks_p : r->chi2_p;

			if (isfinite(r->psi) && !(r->psi <= maxpsi)) {
				maxpsi = r->psi;
				worst = k < m->nin ? m->names[k] : "prediction";
			}
			if (isfinite(p) && !(p >= minp))
				minp = p;
		}
	}
	dep_iso_time(when, sizeof(when));
	for (size_t i = 0; i < d->ncand; i++) {
		const struct dstat *l = &m->c[i].last, *c = &now[i];
		uint64_t req = c->requests - l->requests;
		uint64_t err = c->errors - l->errors;
		uint64_t lab = c->labels - l->labels;
		uint64_t n = 0;

		for (size_t b = 0; b < FINE; b++)
			n += fine[i][b];
		view->req[i] = req;
		view->err[i] = err;
		view->lab[i] = lab;
		view->right[i] = c->right - l->right;
		view->p99[i] = percentile(fine[i], n, 0.99);
		sb_printf(out, "{\"time\": \"%s\", \"revision\": %u, "
			       "\"candidate\": ",
			  when, d->rev);
		sb_json_string(out, d->ref[i], strlen(d->ref[i]));
		sb_printf(out, ", \"requests\": %" PRIu64 ", \"errors\": %" PRIu64
			       ", \"latency_us\": {\"p50\": %" PRIu64
			       ", \"p95\": %" PRIu64 ", \"p99\": %" PRIu64
			       "}, \"traffic_share\": ",
			  req, err, percentile(fine[i], n, 0.5),
			  percentile(fine[i], n, 0.95),
			  percentile(fine[i], n, 0.99));
		put_num(out, total ? (double)req / (double)total : NAN);
		sb_printf(out, ", \"feedback\": %" PRIu64, lab);
		if (d->task == MLFS_TASK_REGRESSION) {
			sb_puts(out, ", \"mae\": ");
			put_num(out, lab ? (c->abserr - l->abserr) / (double)lab
					 : NAN);
			sb_puts(out, ", \"rmse\": ");
			put_num(out, lab ? sqrt((c->sqerr - l->sqerr) /
						(double)lab)
					 : NAN);
		} else {
			sb_puts(out, ", \"accuracy\": ");
			put_num(out, lab ? (double)(c->right - l->right) /
						   (double)lab
					 : NAN);
		}
		sb_puts(out, ", \"feedback_coverage\": ");
		put_num(out, req ? (double)lab / (double)req : NAN);
		/* the deployment's, in each line */
		sb_printf(out, ", \"feedback_unknown\": %" PRIu64
			       ", \"feedback_repeated\": %" PRIu64,
			  unknown, repeated);
		sb_printf(out, ", \"drift\": {\"window\": %zu, \"max_psi\": ",
			  rc == 0 ? s.n : 0);
		put_num(out, maxpsi);
		sb_puts(out, ", \"feature\": ");
		if (worst)
			sb_json_string(out, worst, strlen(worst));
		else
			sb_puts(out, "null");
		sb_puts(out, ", \"min_p\": ");
		put_num(out, minp);
		sb_puts(out, "}}\n");
		m->c[i].last = *c;
	}
	if (rc == 0) {
		/* the rules, on what this interval saw */
		const char **names = malloc((m->nin + 1) * sizeof(*names));
		bool *flags = malloc(2 * (m->nin + 1) * sizeof(*flags));

		for (size_t k = 0; names && flags && k <= m->nin; k++) {
			names[k] = k < m->nin ? m->names[k] : "prediction";
			flags[k] = m->refs[k].numeric;
			flags[m->nin + 1 + k] = compared(m, k);
		}
		view->window = s.n;
		view->nfeat = m->nin + 1;
		view->names = names;
		view->drift = names && flags ? s.res : NULL;
		view->numeric = flags;
		view->compared = flags ? flags + m->nin + 1 : NULL;
		dalert_judge(d, view);
		free(names);
		free(flags);
		snapshot_free(&s);
	}
	free(fine);
}

double dmon_interval(const struct dep *d)
{
	return d->mon ? d->mon->interval : 0;
}

void dmon_tick(struct dep *d)
{
	struct dmon *m = d ? d->mon : NULL;
	struct dent *e;
	struct strbuf lines = { 0 };
	struct dmon_view view = { 0 };
	double t = mono();

	if (d)
		dalert_tick(d);
	if (!m || t < m->next_at)
		return;
	m->next_at = t + m->interval;
	lines_make(d, &lines, &view);
	if (lines.err || !lines.len) {
		sb_free(&lines);
		return;
	}
	e = d->e;
	pthread_mutex_lock(&e->lock);
	tailbuf_append(&e->metrics, lines.buf, lines.len, LINES_MAX);
	pthread_mutex_unlock(&e->lock);
	sb_free(&lines);
}

/* --- Prometheus --- */

static void prom_labels(struct strbuf *out, const struct dep *d, size_t i)
{
	const char *at = strrchr(d->ref[i], '@');

	sb_puts(out, "{deployment=\"");
	sb_puts(out, d->e->name); /* names hold no '"' or '\\' */
	sb_printf(out, "\",model=\"%.*s\",version=\"%s\"",
		  at ? (int)(at - d->ref[i]) : 0, d->ref[i], at ? at + 1 : "");
}

int dmon_show_prom(struct dep *d, struct strbuf *out)
{
	struct dmon *m = d->mon;
	struct dstat cs[PSTREAM_MAX_MODELS];
	struct dmcand *mc = malloc(PSTREAM_MAX_MODELS * sizeof(*mc));
	struct snapshot s = { 0 };
	double weight[PSTREAM_MAX_MODELS];
	uint64_t fb[2];
	int rc = 0;
	static const struct {
		const char *name, *help;
		size_t off;
	} counters[] = {
		{ "mlfs_deployment_requests_total", "Rows answered.",
		  offsetof(struct dstat, requests) },
		{ "mlfs_deployment_errors_total", "Rows answered with an error.",
		  offsetof(struct dstat, errors) },
		{ "mlfs_deployment_shadow_total", "Rows a mirror scored.",
		  offsetof(struct dstat, mirrored) },
		{ "mlfs_deployment_feedback_total", "Labels matched to answers.",
		  offsetof(struct dstat, labels) },
		{ "mlfs_deployment_correct_total",
		  "Labels that agreed with the answer (classes).",
		  offsetof(struct dstat, right) },
	};

	if (!mc)
		return -ENOMEM;
	pthread_mutex_lock(&d->lock);
	memcpy(cs, d->cs, sizeof(cs));
	memcpy(weight, d->weight, sizeof(weight));
	if (m)
		memcpy(mc, m->c, PSTREAM_MAX_MODELS * sizeof(*mc));
	pthread_mutex_unlock(&d->lock);
	if (m)
		rc = drift_now(d, &s);
	if (rc < 0) {
		free(mc);
		return rc;
	}
	for (size_t f = 0; f < sizeof(counters) / sizeof(counters[0]); f++) {
		sb_prom_family(out, counters[f].name, "counter", counters[f].help);
		for (size_t i = 0; i < d->ncand; i++) {
			sb_puts(out, counters[f].name);
			prom_labels(out, d, i);
			sb_printf(out, "} %" PRIu64 "\n",
				  *(const uint64_t *)((const char *)&cs[i] +
						      counters[f].off));
		}
	}
	pthread_mutex_lock(&d->e->lock);
	fb[0] = d->e->fb_unknown;
	fb[1] = d->e->fb_repeated;
	pthread_mutex_unlock(&d->e->lock);
	sb_prom_family(out, "mlfs_deployment_feedback_unmatched_total",
		       "counter",
		       "Labels matched to no answer: unknown ids, and ids "
		       "whose answers were all labelled already.");
	sb_printf(out,
		  "mlfs_deployment_feedback_unmatched_total{deployment=\"%s\","
		  "reason=\"unknown\"} %" PRIu64 "\n"
		  "mlfs_deployment_feedback_unmatched_total{deployment=\"%s\","
		  "reason=\"repeated\"} %" PRIu64 "\n",
		  d->e->name, fb[0], d->e->name, fb[1]);
	sb_prom_family(out, "mlfs_deployment_traffic_weight", "gauge",
	       "The weight routing gives the candidate.");
	for (size_t i = 0; i < d->ncand; i++) {
		sb_puts(out, "mlfs_deployment_traffic_weight");
		prom_labels(out, d, i);
		sb_puts(out, "} ");
		put_num(out, weight[i]);
		sb_puts(out, "\n");
	}
	if (m) {
		sb_prom_family(out, "mlfs_deployment_request_duration_seconds",
		       "histogram", "Time from a write to its answers.");
		for (size_t i = 0; i < d->ncand; i++) {
			uint64_t cum = 0;

			for (size_t b = 0; b <= NPROM; b++) {
				char le[32];

				cum += mc[i].prom[b];
				if (b < NPROM)
					snprintf(le, sizeof(le), "%g",
						 prom_le[b]);
				else
					snprintf(le, sizeof(le), "+Inf");
				sb_puts(out,
					"mlfs_deployment_request_duration_"
					"seconds_bucket");
				prom_labels(out, d, i);
				sb_printf(out, ",le=\"%s\"} %" PRIu64 "\n", le,
					  cum);
			}
			sb_puts(out, "mlfs_deployment_request_duration_"
				     "seconds_sum");
			prom_labels(out, d, i);
			sb_puts(out, "} ");
			put_num(out, mc[i].sum_s);
			sb_puts(out, "\nmlfs_deployment_request_duration_"
				     "seconds_count");
			prom_labels(out, d, i);
			sb_printf(out, "} %" PRIu64 "\n", mc[i].count);
		}
		sb_prom_family(out, "mlfs_deployment_drift_psi", "gauge",
		       "Population stability index of the window against "
		       "the reference.");
		for (size_t k = 0; k <= m->nin; k++) {
			if (!compared(m, k) || !isfinite(s.res[k].psi))
				continue;
			sb_printf(out, "mlfs_deployment_drift_psi{deployment="
				       "\"%s\",feature=\"",
				  d->e->name);
			sb_puts(out, k < m->nin ? m->names[k] : "prediction");
			sb_puts(out, "\"} ");
			put_num(out, s.res[k].psi);
			sb_puts(out, "\n");
		}
		sb_prom_family(out, "mlfs_deployment_drift_p_value", "gauge",
		       "KS (numbers) or chi-squared (categories) p-value of "
		       "the window against the reference.");
		for (size_t k = 0; k <= m->nin; k++) {
			double p = m->refs[k].numeric ? s.res[k].ks_p
						      : s.res[k].chi2_p;

			if (!compared(m, k) || !isfinite(p))
				continue;
			sb_printf(out, "mlfs_deployment_drift_p_value{"
				       "deployment=\"%s\",feature=\"",
				  d->e->name);
			sb_puts(out, k < m->nin ? m->names[k] : "prediction");
			sb_puts(out, "\"} ");
			put_num(out, p);
			sb_puts(out, "\n");
		}
		snapshot_free(&s);
	}
	free(mc);
	return out->err;
}

/* --- for the tree --- */

int deploy_show_drift(struct fs *fs, const char *name, struct strbuf *out)
{
	int rc;
	struct dep *d = dep_shown(fs, name, &rc);

	if (!d)
		return rc ? rc : sb_puts(out, "{}\n");
	rc = dmon_show_drift(d, out);
	dep_put(d);
	return rc;
}

int deploy_show_prom(struct fs *fs, const char *name, struct strbuf *out)
{
	int rc;
	struct dep *d = dep_shown(fs, name, &rc);

	if (!d)
		return rc;
	rc = dmon_show_prom(d, out);
	dep_put(d);
	return rc;
}

