/* SPDX-License-Identifier: MIT */
/*
 * A search, in the job program (job_int.h): a tune plugin proposes
 * parameters, trials train and evaluate them up to "parallel" at once,
 * each in a thread of its own, and the best one wins.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>
#include <jansson.h>

#include "csv.h"
#include "jsonout.h"
#include "mlcore.h"
#include "plugin.h"
#include "spec.h"
#include "job_int.h"

/* --- search: a tune plugin proposes, trials run up to "parallel" at once */

struct trial {
	unsigned id;
	json_t *rec;       /* trials/<id>: params, status, budget, metrics */
	json_t *params;    /* the train params of this trial */
	double budget;
	double score;      /* higher is better; NAN: failed */
	bool running;
	bool done;         /* finished its current budget */
	pthread_t thread;
	struct hctx hc;
	/* inputs of the run */
	struct run *run;
	const struct mlfs_host *host;
	struct mlfs_data tr;
	const struct mlfs_data *va;
	const char *const *cnames;
	size_t ncls;
	const char *metric;
	bool maximize;
};

static pthread_mutex_t trials_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t trials_cond = PTHREAD_COND_INITIALIZER;

static void *trial_main(void *arg)
{
	struct trial *t = arg;
	char msg[1024] = "";
	double fit_s = 0;
	void *inst = NULL;
	json_t *m = NULL;
	int rc;

	rc = train_once(t->run, t->host, &t->hc, t->params, &t->tr, t->va,
			&inst, &fit_s, msg, sizeof(msg));
	if (rc == 0) {
		/* judged on validation (the trial's rows if there is none) */
		m = t->va->x.rows
			    ? evaluate(t->run, inst, t->va->x.data, t->va->y,
				       t->va->x.rows, t->va->x.cols, t->cnames,
				       t->ncls)
			    : evaluate(t->run, inst, t->tr.x.data, t->tr.y,
				       t->tr.x.rows, t->tr.x.cols, t->cnames,
				       t->ncls);
		t->run->ops->fini(inst);
	}
	pthread_mutex_lock(&trials_lock);
	if (t->hc.stopped)
		json_object_set(t->rec, "stopped", t->hc.stopped);
	if (m) {
		double v = metric_of(m, t->metric);

		json_object_set_new(m, "fit_seconds", json_real(fit_s));
		json_object_set_new(t->rec, "metrics", m);
		json_object_set_new(t->rec, "status", json_string("succeeded"));
		t->score = isnan(v) ? NAN : t->maximize ? v : -v;
		say("trial %u (budget %.3g): %s = %g", t->id, t->budget,
		    t->metric, v);
	} else {
		json_object_set_new(t->rec, "status", json_string("failed"));
		json_object_set_new(t->rec, "reason", json_string(msg));
		t->score = NAN;
		say("trial %u failed: %s", t->id, msg);
	}
	write_trial(t->id, t->rec);
	t->done = true;
	pthread_cond_broadcast(&trials_cond);
	pthread_mutex_unlock(&trials_lock);
	return NULL;
}

/*
 * Shuffle the rows of (x, y) in place with a seed, so that a budget's
 * prefix of the training rows is a random subset of them.
 */
static void shuffle_rows(float *x, float *y, size_t rows, size_t w,
			 uint64_t seed)
{
	float *tmp = malloc((w ? w : 1) * sizeof(*tmp));
	uint64_t st = seed ^ 0xB0DCE7ULL;

	if (!tmp)
		fail("out of memory");
	for (size_t i = rows; i > 1; i--) {
		size_t j = (size_t)(prng_next(&st) % i);
		float fy;

		memcpy(tmp, x + (i - 1) * w, w * sizeof(*tmp));
		memcpy(x + (i - 1) * w, x + j * w, w * sizeof(*tmp));
		memcpy(x + j * w, tmp, w * sizeof(*tmp));
		if (y) {
			fy = y[i - 1];
			y[i - 1] = y[j];
			y[j] = fy;
		}
	}
	free(tmp);
}

/* The search space of the spec as the tune ABI's ranges. */
static struct mlfs_range *space_ranges(json_t *space, size_t *n)
{
	struct mlfs_range *ranges;
	const char *k, *kind;
	json_t *r, *v;
	size_t i = 0;

	*n = json_object_size(space);
	ranges = calloc(*n + 1, sizeof(*ranges));
	if (!ranges)
		fail("out of memory");
	json_object_foreach(space, k, r) {
		json_object_foreach(r, kind, v) {
			struct mlfs_range *g = &ranges[i];

			g->name = k;
			g->lo = json_number_value(json_array_get(v, 0));
			g->hi = json_number_value(json_array_get(v, 1));
			g->kind = strcmp(kind, "uniform") == 0 ? MLFS_RANGE_UNIFORM
				  : strcmp(kind, "log_uniform") == 0
					  ? MLFS_RANGE_LOG_UNIFORM
				  : strcmp(kind, "int") == 0 ? MLFS_RANGE_INT
							    : MLFS_RANGE_CHOICE;
			if (g->kind == MLFS_RANGE_CHOICE)
				g->nchoices = json_array_size(v);
		}
		i++;
	}
	return ranges;
}

/* The train params of a proposal: base params with the space's values. */
static json_t *trial_params(json_t *base, json_t *space,
			    const struct mlfs_range *ranges, size_t n,
			    const double *values)
{
	json_t *p = json_deep_copy(base);

	for (size_t i = 0; i < n; i++) {
		const struct mlfs_range *g = &ranges[i];

		if (g->kind == MLFS_RANGE_CHOICE) {
			json_t *c = json_array_get(
				json_object_get(json_object_get(space, g->name),
						"choice"),
				(size_t)values[i]);

			json_object_set(p, g->name, c ? c : json_null());
		} else if (g->kind == MLFS_RANGE_INT) {
			json_object_set_new(p, g->name,
					    json_integer((json_int_t)values[i]));
		} else {
			json_object_set_new(p, g->name, json_real(values[i]));
		}
	}
	return p;
}

/* Start trial t (new or promoted to a larger budget). Under trials_lock. */
static void trial_start(struct trial *t, json_t *params, double budget,
			const struct mlfs_data *tr, double frac_base,
			double frac_span)
{
	json_decref(t->params);
	t->params = params;
	json_decref(t->rec);
	t->rec = json_pack("{s:i, s:O, s:f, s:s}", "trial", (int)t->id,
			   "params", params, "budget", budget, "status",
			   "running");
	write_trial(t->id, t->rec);
	t->budget = budget;
	t->tr = *tr;
	t->tr.x.rows = (size_t)ceil(budget * (double)tr->x.rows);
	if (t->tr.x.rows < 2)
		t->tr.x.rows = tr->x.rows < 2 ? tr->x.rows : 2;
	t->done = false;
	t->running = true;
	t->hc.run = t->run;
	t->hc.frac_base = frac_base;
	t->hc.frac_span = frac_span;
	t->hc.metric_base = (long)(t->id + 1) * 1000000L;
	snprintf(t->hc.prefix, sizeof(t->hc.prefix), "trial %u: ", t->id);
	if (pthread_create(&t->thread, NULL, trial_main, t))
		fail("cannot start a trial thread");
}

/*
 * One search: its settings from the plan, the tune plugin's instance and
 * the trials so far.  search_run() owns it, on its stack.
 */
struct search {
	struct run *run;
	const struct mlfs_host *host;
	json_t *plan;
	json_t *space;               /* borrowed from plan */
	struct mlfs_data *tr;        /* shuffled in place */
	const struct mlfs_data *va;
	const char **cnames;         /* [ncls] */
	size_t ncls;
	const char *metric;
	bool maxi;                   /* bigger metric is better */
	json_int_t ntrials;
	json_int_t parallel;         /* trials at once */
	json_int_t max_failed;
	uint64_t seed;
	const struct plugin *tp;     /* the tune plugin */
	const struct mlfs_tune_ops *tops;
	void *tinst;                 /* its instance */
	struct hctx thc;             /* the host table it gets */
	struct mlfs_range *ranges;   /* [nspace] */
	size_t nspace;
	double *values;              /* [nspace] of the last proposal */
	struct trial **ts;           /* [nt], in the order proposed */
	size_t nt;
	double maxb;                 /* the largest budget proposed */
	double expect;               /* trials expected, for progress */
	json_int_t failed;           /* under trials_lock */
	unsigned running;            /* under trials_lock */
	bool over;                   /* the tune plugin proposes no more */
};

/* The plan's search settings, with their defaults, and the tune plugin. */
static void search_settings(struct search *s)
{
	static struct plugin tp;
	json_t *search = json_object_get(s->plan, "search");
	json_t *mf = json_object_get(search, "max_failed");
	const char *goal = json_string_value(json_object_get(search, "goal"));
	const char *tpath = json_string_value(
		json_object_get(s->plan, "tune_plugin"));
	char msg[1024] = "";

	s->space = json_object_get(search, "space");
	s->metric = json_string_value(json_object_get(search, "metric"));
	s->ntrials = json_integer_value(json_object_get(search, "trials"));
	s->parallel = json_integer_value(json_object_get(search, "parallel"));
	s->max_failed = mf ? json_integer_value(mf) : 3;
	s->seed = (uint64_t)json_integer_value(
		json_object_get(json_object_get(s->plan, "split"), "seed"));
	if (plugin_load_file(tpath, &tp, msg, sizeof(msg)) < 0)
		fail("tune plugin %s: %s", tpath, msg);
	s->tp = &tp;
	s->tops = tp.desc->ops;
	if (!s->metric)
		s->metric = metric_default(s->run->task);
	s->maxi = goal ? strcmp(goal, "maximize") == 0
		       : metric_maximize(s->metric);
	if (s->ntrials <= 0)
		s->ntrials = 10;
	if (s->parallel <= 0)
		s->parallel = 1;
}

/* The tune plugin's instance over the space; the rows shuffled. */
static void search_start(struct search *s)
{
	const struct mlfs_host *host = s->host;
	char msg[1024] = "";
	int rc;

	s->ranges = space_ranges(s->space, &s->nspace);
	s->values = calloc(s->nspace + 1, sizeof(*s->values));
	s->ts = calloc((size_t)s->ntrials + 1, sizeof(*s->ts));
	if (!s->values || !s->ts)
		fail("out of memory");
	s->thc.run = s->run;
	s->thc.host = *host;
	s->thc.host.ctx = &s->thc;
	rc = s->tops->init(&s->thc.host, s->ranges, s->nspace,
			   (unsigned)s->ntrials, s->seed, &s->tinst, msg,
			   sizeof(msg));
	if (rc < 0)
		fail("search: %s", msg);
	shuffle_rows(s->tr->x.data, (float *)s->tr->y, s->tr->x.rows,
		     s->tr->x.cols, s->seed);
	/* trials at once share the cores: BLAS gets its share in each */
	if (s->parallel > 1)
		openblas_set_num_threads(host->threads / (int)s->parallel > 1
						 ? host->threads /
							   (int)s->parallel
						 : 1);
	s->expect = (double)s->ntrials * 1.5 + 1;
	say("search: %s, %zu parameter%s, %lld trials, %lld at once, %s %s",
	    s->tp->desc->name, s->nspace, s->nspace == 1 ? "" : "s",
	    (long long)s->ntrials, (long long)s->parallel,
	    s->maxi ? "maximize" : "minimize", s->metric);
}

/* Join the trials that finished and report them.  Under trials_lock. */
static void search_reap(struct search *s)
{
	for (size_t i = 0; i < s->nt; i++) {
		struct trial *t = s->ts[i];

		if (!t->running || !t->done)
			continue;
		pthread_mutex_unlock(&trials_lock);
		pthread_join(t->thread, NULL);
		pthread_mutex_lock(&trials_lock);
		t->running = false;
		s->running--;
		s->tops->report(s->tinst, t->id, t->score);
		if (isnan(t->score) && ++s->failed > s->max_failed) {
			pthread_mutex_unlock(&trials_lock);
			fail("%lld trials failed (max_failed %lld)",
			     (long long)s->failed, (long long)s->max_failed);
		}
	}
}

/* The trial numbered id: a proposed one (promoted), or a new one. */
static struct trial *search_trial(struct search *s, unsigned id)
{
	struct trial *t = NULL;

	for (size_t i = 0; i < s->nt; i++)
		if (s->ts[i]->id == id)
			t = s->ts[i];
	if (t)
		return t;
	if (s->nt > (size_t)s->ntrials)
		fail("search: the tune plugin proposed more than %lld trials",
		     (long long)s->ntrials);
	t = calloc(1, sizeof(*t));
	if (!t)
		fail("out of memory");
	s->ts[s->nt++] = t;
	t->id = id;
	t->run = s->run;
	t->host = s->host;
	t->va = s->va;
	t->cnames = s->cnames;
	t->ncls = s->ncls;
	t->metric = s->metric;
	t->maximize = s->maxi;
	return t;
}

/* Whether a running trial has finished and waits to be reaped. */
static bool search_any_done(const struct search *s)
{
	for (size_t i = 0; i < s->nt; i++)
		if (s->ts[i]->running && s->ts[i]->done)
			return true;
	return false;
}

/*
 * Ask the tune plugin for the next trial and start it, or wait for a
 * running one to finish.  Under trials_lock.  search_reap() lets go of
 * the lock while it joins a thread, so a trial may have finished (and
 * broadcast) since: waiting then would never wake.
 */
static void search_step(struct search *s)
{
	struct trial *t;
	unsigned id = 0;
	double budget = 1;
	int rc;

	rc = s->over || s->running >= (unsigned)s->parallel
		     ? -EAGAIN
		     : s->tops->next(s->tinst, &id, s->values, &budget);
	if (rc == 0)
		s->over = true;
	if (rc != 1) {
		if (s->running && !search_any_done(s))
			pthread_cond_wait(&trials_cond, &trials_lock);
		else if (rc == -EAGAIN && !s->over)
			fail("search: the tune plugin waits for no trial");
		return;
	}
	t = search_trial(s, id);
	if (budget <= 0 || budget > 1)
		budget = 1;
	if (budget > s->maxb)
		s->maxb = budget;
	s->running++;
	trial_start(t,
		    trial_params(json_object_get(s->plan, "params"), s->space,
				 s->ranges, s->nspace, s->values),
		    budget, s->tr, fmin(0.9, (double)s->nt / s->expect),
		    0.9 / s->expect);
}

/*
 * The best trial at the full budget; ties go to the lower log loss, then
 * to the trial proposed first (the lower number).  Trials left at a
 * smaller budget are marked stopped early.
 */
static size_t search_best(struct search *s)
{
	size_t best = (size_t)-1;

	for (size_t i = 0; i < s->nt; i++) {
		struct trial *t = s->ts[i];

		if (t->budget < s->maxb &&
		    strcmp(json_string_value(json_object_get(t->rec, "status")),
			   "failed") != 0) {
			json_object_set_new(t->rec, "status",
					    json_string("stopped early"));
			write_trial(t->id, t->rec);
		}
		if (t->budget < s->maxb || isnan(t->score))
			continue;
		if (best == (size_t)-1 || t->score > s->ts[best]->score ||
		    (t->score == s->ts[best]->score &&
		     metric_of(json_object_get(t->rec, "metrics"), "log_loss") <
			     metric_of(json_object_get(s->ts[best]->rec,
						       "metrics"),
				       "log_loss")))
			best = i;
	}
	if (best == (size_t)-1)
		fail("no trial succeeded");
	return best;
}

/* The trials' records in the order of their numbers (new reference). */
static json_t *search_records(const struct search *s)
{
	json_t *trials = json_array();

	for (unsigned id = 0; id < s->nt; id++)
		for (size_t i = 0; i < s->nt; i++)
			if (s->ts[i]->id == id)
				json_array_append(trials, s->ts[i]->rec);
	return trials;
}

static void search_free(struct search *s)
{
	for (size_t i = 0; i < s->nt; i++) {
		json_decref(s->ts[i]->rec);
		json_decref(s->ts[i]->hc.stopped);
		json_decref(s->ts[i]->params);
		free(s->ts[i]);
	}
	free(s->ts);
	free(s->ranges);
	free(s->values);
}

/*
 * Run the spec's search with its tune plugin; returns the params of the
 * best trial at the full budget (new reference), the trials' records in
 * *trials_out.
 */
json_t *search_run(struct run *run, const struct mlfs_host *host,
			  json_t *plan, struct mlfs_data *tr,
			  const struct mlfs_data *va, const char **cnames,
			  size_t ncls, json_t **trials_out)
{
	struct search s = {
		.run = run,
		.host = host,
		.plan = plan,
		.tr = tr,
		.va = va,
		.cnames = cnames,
		.ncls = ncls,
	};
	struct trial *b;
	json_t *out;

	search_settings(&s);
	search_start(&s);
	pthread_mutex_lock(&trials_lock);
	while (!s.over || s.running) {
		if (cancelled) {
			pthread_mutex_unlock(&trials_lock);
			fail("cancelled");
		}
		search_reap(&s);
		search_step(&s);
	}
	pthread_mutex_unlock(&trials_lock);
	s.tops->fini(s.tinst);
	if (s.parallel > 1)
		openblas_set_num_threads(host->threads > 0 ? host->threads : 1);
	b = s.ts[search_best(&s)];
	json_object_set_new(b->rec, "best", json_true());
	write_trial(b->id, b->rec);
	say("best trial %u: %s = %g", b->id, s.metric,
	    s.maxi ? b->score : -b->score);
	out = json_deep_copy(b->params);
	*trials_out = search_records(&s);
	search_free(&s);
	return out;
}
