/* SPDX-License-Identifier: MIT */
/*
 * mlfs-job: the job program.  The daemon's runner starts it with
 * posix_spawn as `mlfs-job JOBDIR DAEMON-PID`, descriptor 3 open on the
 * dataset version's content, stdout and stderr on JOBDIR/log, nothing
 * else open.  It applies the memory limit, drops to the uid and gid of the
 * spec's writer, dies with the daemon (PR_SET_PDEATHSIG), then trains:
 *
 *   parse the CSV -> labels and classes -> split (JOBDIR/split) ->
 *   feature extractor fitted on the training rows -> [search] ->
 *   plugin fit -> evaluation on the test rows -> JOBDIR/out/{model,
 *   meta.json, metrics.json, sample.csv} -> JOBDIR/result.json
 *
 * Progress goes to JOBDIR/progress (rewritten whole), metrics as JSON
 * lines to JOBDIR/metrics, words to the log.  SIGTERM cancels: the plugin
 * sees host->cancelled() and stops.  A crash of the plugin kills only
 * this process; the runner reports it.  Single-threaded except for BLAS
 * and a search's trial threads.
 *
 * A program of its own, not part of the daemon: one job per process, so
 * its few file-scope variables (the cancel flag a signal handler sets,
 * the locks around its output and its trials) are this process's state,
 * and not what struct fs would hold for a mount.
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

/* The path, in the job's directory, of a model version's file. */
static const char *out_path(enum model_file f)
{
	static char paths[MODEL_NFILES][64];

	if (!paths[f][0])
		snprintf(paths[f], sizeof(paths[f]), MODEL_OUT "/%s",
			 model_files[f]);
	return paths[f];
}

static volatile sig_atomic_t cancelled;

/*
 * The job program is one short run that ends in exit(): what it holds
 * goes with the process, so LeakSanitizer (in sanitizer builds) would
 * only report the plan, table and matrices still referenced at exit.
 * Other sanitizer checks stay on.  A segfault is left to the kernel so
 * that the runner sees the signal, as in a build without sanitizers.
 */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	/* a crashing plugin dies of its signal, as without sanitizers */
	return "detect_leaks=0:handle_segv=0";
}

struct run {
	json_t *plan;
	const struct plugin *pl;
	const struct mlfs_train_ops *ops;
	unsigned task;
	double t0;        /* monotonic start */
	FILE *metrics;
};

/*
 * What one fit reports through the host table: its place in the job's
 * progress and the prefix of its lines.  Trials of a search run on
 * several threads; out_lock serialises their writes.
 */
struct hctx {
	struct run *run;
	double frac_base; /* progress: base + span * fraction */
	double frac_span;
	char prefix[64];  /* "trial 3: " */
	long metric_base; /* steps of earlier trials */
	struct mlfs_host host; /* the table the plugin gets, ctx = this */
	json_t *stopped;  /* why the last fit ended {rule, at, why}, or NULL */
};

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static double now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_term(int sig)
{
	(void)sig;
	cancelled = 1;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
}

/* result.json, then exit. */
static void finish(int ok, const char *reason, json_t *metrics,
		   json_t *trials)
{
	json_t *res = json_pack("{s:s, s:s?, s:O?, s:O?}", "status",
				ok ? "succeeded" : "failed", "reason", reason,
				"metrics", metrics, "trials", trials);

	if (!ok)
		say("failed: %s", reason);
	if (!res || json_dump_file(res, "result.json.tmp", JSON_INDENT(2)) ||
	    rename("result.json.tmp", "result.json") < 0)
		exit(2);
	json_decref(res);
	exit(ok ? 0 : 1);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2),
						     noreturn));
static void fail(const char *fmt, ...)
{
	char reason[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	finish(0, reason, NULL, NULL);
	exit(1);
}

/* --- the host table plugins see --- */

static void host_log(void *ctx, int level, const char *fmt, ...)
{
	va_list ap;

	(void)ctx;
	(void)level;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
}

static void host_progress(void *ctx, double fraction, const char *line)
{
	struct hctx *h = ctx;
	double f = h->frac_base + h->frac_span * fraction;
	FILE *fp;

	pthread_mutex_lock(&out_lock);
	fp = fopen("progress.tmp", "we");
	if (fp) {
		fprintf(fp, "%d%% %s%s\n", (int)(f * 100 + 0.5), h->prefix,
			line ? line : "");
		fclose(fp);
		rename("progress.tmp", "progress");
	}
	pthread_mutex_unlock(&out_lock);
}

static void host_metric(void *ctx, const char *name, double value, long step)
{
	struct hctx *h = ctx;
	struct run *run = h->run;

	if (!run->metrics || !isfinite(value))
		return;
	pthread_mutex_lock(&out_lock);
	fprintf(run->metrics,
		"{\"step\": %ld, \"name\": \"%s%s\", \"value\": %.9g, "
		"\"seconds\": %.3f}\n",
		h->metric_base + step, h->prefix[0] ? "trial." : "", name,
		value, now_mono() - run->t0);
	fflush(run->metrics);
	pthread_mutex_unlock(&out_lock);
}

/*
 * Why a fit ended (ABI 1.1): kept for metrics.json and the trial's record,
 * and said in the log at once.  Called on the fit's own thread, which is
 * the only one that touches h->stopped until the fit returns.
 */
static void host_stopped(void *ctx, const char *rule, long at,
			 const char *why)
{
	struct hctx *h = ctx;

	if (!rule || !rule[0])
		return;
	json_decref(h->stopped);
	h->stopped = json_pack("{s:s, s:I, s:s}", "rule", rule, "at",
			       (json_int_t)at, "why", why ? why : "");
	pthread_mutex_lock(&out_lock);
	say("%sstopped: %s at %ld: %s", h->prefix, rule, at, why ? why : "");
	pthread_mutex_unlock(&out_lock);
}

/*
 * What the version's metrics.json says of a fit whose plugin did not say
 * why it stopped (one built against ABI 1.0): that it did not.
 */
static json_t *stopped_unknown(const struct plugin *pl)
{
	return json_pack("{s:s, s:s+}", "rule", "unknown", "why",
			 pl->desc->name, " does not say why it stopped (ABI 1.0)");
}

/* The progress line of a fit that ended: "done; stopped: rule at N: why". */
static void progress_stopped(struct hctx *h, double frac, const char *what)
{
	char line[512];

	if (!h->stopped) {
		host_progress(h, frac, what);
		return;
	}
	snprintf(line, sizeof(line), "%s; stopped: %s at %lld: %s", what,
		 json_string_value(json_object_get(h->stopped, "rule")),
		 (long long)json_integer_value(json_object_get(h->stopped, "at")),
		 json_string_value(json_object_get(h->stopped, "why")));
	host_progress(h, frac, line);
}

static int host_cancelled(void *ctx)
{
	(void)ctx;
	return cancelled;
}

/* --- data --- */

struct cls {
	char *name;
	double num;
};

static int cls_cmp_num(const void *a, const void *b)
{
	double x = ((const struct cls *)a)->num, y = ((const struct cls *)b)->num;

	return x < y ? -1 : x > y;
}

static int cls_cmp_str(const void *a, const void *b)
{
	return strcmp(((const struct cls *)a)->name,
		      ((const struct cls *)b)->name);
}

/* Find the class of a label (binary search in the sorted classes). */
static long find_class(struct cls *c, size_t n, const char *s, size_t len,
		       bool numeric)
{
	size_t lo = 0, hi = n;
	double v = 0;

	if (numeric && !csv_parse_double(s, len, &v))
		return -1;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int cmp;

		if (numeric)
			cmp = c[mid].num < v ? -1 : c[mid].num > v;
		else {
			cmp = strncmp(c[mid].name, s, len);
			if (cmp == 0 && c[mid].name[len])
				cmp = 1;
		}
		if (cmp == 0)
			return (long)mid;
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static const char *set_name(uint8_t s)
{
	return s == SPLIT_TRAIN ? "train"
	       : s == SPLIT_VALIDATION ? "validation"
				       : "test";
}

/* Copy the rows of X (width w) whose set is want into a new matrix. */
static float *take_rows(const float *x, size_t w, const uint8_t *set,
			size_t n, uint8_t want, const float *y, float **yout,
			size_t *rows)
{
	size_t m = 0, k = 0;
	float *out, *yo = NULL;

	for (size_t i = 0; i < n; i++)
		m += set[i] == want;
	out = malloc((m ? m : 1) * w * sizeof(*out));
	if (y)
		yo = malloc((m ? m : 1) * sizeof(*yo));
	if (!out || (y && !yo))
		fail("out of memory");
	for (size_t i = 0; i < n; i++) {
		if (set[i] != want)
			continue;
		memcpy(out + k * w, x + i * w, w * sizeof(*out));
		if (y)
			yo[k] = y[i];
		k++;
	}
	*rows = m;
	if (yout)
		*yout = yo;
	return out;
}

/* Train one instance with params; fills the instance; -errno. */
static int train_once(struct run *run, const struct mlfs_host *base,
		      struct hctx *hc, json_t *params,
		      const struct mlfs_data *tr, const struct mlfs_data *va,
		      void **inst, double *fit_s, char *msg, size_t msglen)
{
	struct mlfs_host *host = &hc->host;
	struct mlfs_param *ps;
	double *lists;
	size_t np;
	double t;
	int rc;

	*inst = NULL;
	*host = *base;
	host->ctx = hc;
	json_decref(hc->stopped);
	hc->stopped = NULL;
	rc = spec_params(params, &ps, &np, &lists, msg, msglen);
	if (rc < 0)
		return rc;
	rc = run->ops->init(host, run->task, ps, np, inst, msg, msglen);
	free(ps);
	free(lists);
	if (rc < 0)
		return rc;
	t = now_mono();
	rc = run->ops->fit(*inst, tr, va, msg, msglen);
	*fit_s = now_mono() - t;
	if (rc < 0) {
		run->ops->fini(*inst);
		*inst = NULL;
	}
	return rc;
}

/* Scores of inst on x (rows x outputs), malloc'd. */
static float *score(struct run *run, void *inst, const float *x, size_t rows,
		    size_t w, size_t *nout)
{
	struct mlfs_matrix in = { (float *)x, rows, w, w };
	struct mlfs_matrix out;
	float *buf;

	*nout = run->ops->outputs(inst);
	buf = malloc((rows ? rows : 1) * *nout * sizeof(*buf));
	if (!buf)
		fail("out of memory");
	out = (struct mlfs_matrix){ buf, rows, *nout, *nout };
	if (rows && run->ops->predict(inst, &in, &out) < 0)
		fail("predict failed");
	return buf;
}

/* Evaluate on a set: the task's metrics (new reference). */
static json_t *evaluate(struct run *run, void *inst, const float *x,
			const float *y, size_t rows, size_t w,
			const char *const *classes, size_t ncls)
{
	size_t nout;
	float *s = score(run, inst, x, rows, w, &nout);
	json_t *m;

	if (run->task == MLFS_TASK_CLASSIFICATION) {
		uint32_t *yi = malloc((rows ? rows : 1) * sizeof(*yi));

		for (size_t i = 0; i < rows; i++)
			yi[i] = (uint32_t)y[i];
		m = metrics_classification(yi, s, rows, ncls, classes);
		free(yi);
	} else if (run->task == MLFS_TASK_REGRESSION) {
		m = metrics_regression(y, s, rows);
	} else {
		uint32_t *lab = malloc((rows ? rows : 1) * sizeof(*lab));
		float *d2 = malloc((rows ? rows : 1) * sizeof(*d2));

		for (size_t i = 0; i < rows; i++) {
			size_t best = 0;

			for (size_t j = 1; j < nout; j++)
				if (s[i * nout + j] > s[i * nout + best])
					best = j;
			lab[i] = (uint32_t)best;
			d2[i] = -s[i * nout + best];
		}
		m = metrics_clustering(x, rows, w, lab, d2, 2000, 42);
		free(lab);
		free(d2);
	}
	free(s);
	return m;
}

/* A metric's value, and whether bigger is better by default. */
static double metric_of(json_t *m, const char *name)
{
	json_t *v = json_object_get(m, name);

	return json_is_number(v) ? json_number_value(v) : NAN;
}

static bool default_maximize(const char *metric)
{
	return !(strcmp(metric, "log_loss") == 0 ||
		 strcmp(metric, "rmse") == 0 || strcmp(metric, "mae") == 0 ||
		 strcmp(metric, "inertia") == 0);
}

static void write_trial(size_t n, json_t *t)
{
	char path[64], tmp[80];

	mkdir("trials", 0755);
	snprintf(path, sizeof(path), "trials/%zu", n);
	snprintf(tmp, sizeof(tmp), "trials/.%zu.tmp", n);
	if (json_dump_file(t, tmp, JSON_INDENT(2) | JSON_PRESERVE_ORDER) == 0)
		rename(tmp, path);
}

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
 * Run the spec's search with its tune plugin; returns the params of the
 * best trial at the full budget (new reference), the trials' records in
 * *trials_out.
 */
static json_t *search_run(struct run *run, const struct mlfs_host *host,
			  json_t *plan, struct mlfs_data *tr,
			  const struct mlfs_data *va, const char **cnames,
			  size_t ncls, json_t **trials_out)
{
	json_t *search = json_object_get(plan, "search");
	json_t *space = json_object_get(search, "space");
	const char *metric = json_string_value(json_object_get(search, "metric"));
	const char *goal = json_string_value(json_object_get(search, "goal"));
	json_int_t ntrials = json_integer_value(json_object_get(search, "trials"));
	json_int_t parallel = json_integer_value(json_object_get(search, "parallel"));
	json_int_t max_failed = json_object_get(search, "max_failed")
					? json_integer_value(json_object_get(search, "max_failed"))
					: 3;
	uint64_t seed = (uint64_t)json_integer_value(
		json_object_get(json_object_get(plan, "split"), "seed"));
	static struct plugin tp;
	const struct mlfs_tune_ops *tops;
	struct mlfs_range *ranges;
	struct hctx thc = { .run = run };
	struct trial **ts = NULL;
	size_t nspace, nt = 0, best = (size_t)-1;
	double *values, maxb = 0, expect;
	char msg[1024] = "";
	void *tinst = NULL;
	json_int_t failed = 0;
	unsigned running = 0;
	bool maxi, over = false;
	json_t *out, *trials;
	int rc;

	if (plugin_load_file(json_string_value(json_object_get(plan, "tune_plugin")),
			     &tp, msg, sizeof(msg)) < 0)
		fail("tune plugin %s: %s",
		     json_string_value(json_object_get(plan, "tune_plugin")), msg);
	tops = tp.desc->ops;
	if (!metric)
		metric = run->task == MLFS_TASK_CLASSIFICATION ? "accuracy"
			 : run->task == MLFS_TASK_REGRESSION   ? "r2"
							       : "inertia";
	maxi = goal ? strcmp(goal, "maximize") == 0 : default_maximize(metric);
	if (ntrials <= 0)
		ntrials = 10;
	if (parallel <= 0)
		parallel = 1;
	ranges = space_ranges(space, &nspace);
	values = calloc(nspace + 1, sizeof(*values));
	ts = calloc((size_t)ntrials + 1, sizeof(*ts));
	if (!values || !ts)
		fail("out of memory");
	thc.host = *host;
	thc.host.ctx = &thc;
	rc = tops->init(&thc.host, ranges, nspace, (unsigned)ntrials, seed,
			&tinst, msg, sizeof(msg));
	if (rc < 0)
		fail("search: %s", msg);
	shuffle_rows(tr->x.data, (float *)tr->y, tr->x.rows, tr->x.cols, seed);
	/* trials at once share the cores: BLAS gets its share in each */
	if (parallel > 1)
		openblas_set_num_threads(host->threads / (int)parallel > 1
						 ? host->threads / (int)parallel
						 : 1);
	expect = (double)ntrials * 1.5 + 1;
	say("search: %s, %zu parameter%s, %lld trials, %lld at once, %s %s",
	    tp.desc->name, nspace, nspace == 1 ? "" : "s",
	    (long long)ntrials, (long long)parallel,
	    maxi ? "maximize" : "minimize", metric);
	pthread_mutex_lock(&trials_lock);
	while (!over || running) {
		struct trial *t = NULL;
		unsigned id = 0;
		double budget = 1;

		if (cancelled) {
			pthread_mutex_unlock(&trials_lock);
			fail("cancelled");
		}
		for (size_t i = 0; i < nt; i++) {
			t = ts[i];
			if (!t->running || !t->done)
				continue;
			pthread_mutex_unlock(&trials_lock);
			pthread_join(t->thread, NULL);
			pthread_mutex_lock(&trials_lock);
			t->running = false;
			running--;
			tops->report(tinst, t->id, t->score);
			if (isnan(t->score) && ++failed > max_failed) {
				pthread_mutex_unlock(&trials_lock);
				fail("%lld trials failed (max_failed %lld)",
				     (long long)failed, (long long)max_failed);
			}
		}
		rc = over || running >= (unsigned)parallel
			     ? -EAGAIN
			     : tops->next(tinst, &id, values, &budget);
		if (rc == 0)
			over = true;
		if (rc != 1) {
			if (running)
				pthread_cond_wait(&trials_cond, &trials_lock);
			else if (rc == -EAGAIN && !over)
				fail("search: the tune plugin waits for no trial");
			continue;
		}
		t = NULL;
		for (size_t i = 0; i < nt; i++)
			if (ts[i]->id == id)
				t = ts[i];
		if (!t) {
			if (nt > (size_t)ntrials)
				fail("search: the tune plugin proposed more "
				     "than %lld trials", (long long)ntrials);
			t = calloc(1, sizeof(*t));
			if (!t)
				fail("out of memory");
			ts[nt++] = t;
			t->id = id;
			t->run = run;
			t->host = host;
			t->va = va;
			t->cnames = cnames;
			t->ncls = ncls;
			t->metric = metric;
			t->maximize = maxi;
		}
		if (budget <= 0 || budget > 1)
			budget = 1;
		if (budget > maxb)
			maxb = budget;
		running++;
		trial_start(t, trial_params(json_object_get(plan, "params"),
					    space, ranges, nspace, values),
			    budget, tr, fmin(0.9, (double)nt / expect),
			    0.9 / expect);
	}
	pthread_mutex_unlock(&trials_lock);
	tops->fini(tinst);
	if (parallel > 1)
		openblas_set_num_threads(host->threads > 0 ? host->threads : 1);
	/*
	 * The best trial at the full budget; ties go to the lower log loss,
	 * then to the trial proposed first (the lower number).
	 */
	for (size_t i = 0; i < nt; i++) {
		struct trial *t = ts[i];

		if (t->budget < maxb &&
		    strcmp(json_string_value(json_object_get(t->rec, "status")),
			   "failed") != 0) {
			json_object_set_new(t->rec, "status",
					    json_string("stopped early"));
			write_trial(t->id, t->rec);
		}
		if (t->budget < maxb || isnan(t->score))
			continue;
		if (best == (size_t)-1 || t->score > ts[best]->score ||
		    (t->score == ts[best]->score &&
		     metric_of(json_object_get(t->rec, "metrics"), "log_loss") <
			     metric_of(json_object_get(ts[best]->rec, "metrics"),
				       "log_loss")))
			best = i;
	}
	if (best == (size_t)-1)
		fail("no trial succeeded");
	json_object_set_new(ts[best]->rec, "best", json_true());
	write_trial(ts[best]->id, ts[best]->rec);
	say("best trial %u: %s = %g", ts[best]->id, metric,
	    maxi ? ts[best]->score : -ts[best]->score);
	out = json_deep_copy(ts[best]->params);
	trials = json_array();
	for (unsigned id = 0; id < nt; id++)
		for (size_t i = 0; i < nt; i++)
			if (ts[i]->id == id)
				json_array_append(trials, ts[i]->rec);
	for (size_t i = 0; i < nt; i++) {
		json_decref(ts[i]->rec);
		json_decref(ts[i]->hc.stopped);
		json_decref(ts[i]->params);
		free(ts[i]);
	}
	free(ts);
	free(ranges);
	free(values);
	*trials_out = trials;
	return out;
}

/*
 * The id column the answers of predict echo: the first column of the
 * dataset's schema with the role "id" that the model does not use as a
 * feature or label, or NULL.  Borrowed from plan.
 */
static const char *id_column(json_t *plan, const struct table *t,
			     const size_t *featcol, size_t nfeat,
			     const char *label)
{
	json_t *cols = json_object_get(json_object_get(plan, "schema"),
				       "columns");
	size_t i;
	json_t *c;

	json_array_foreach(cols, i, c) {
		const char *name =
			json_string_value(json_object_get(c, "name"));
		const char *role =
			json_string_value(json_object_get(c, "role"));
		bool used = label && name && strcmp(name, label) == 0;

		if (!name || !role || strcmp(role, "id") != 0)
			continue;
		for (size_t k = 0; k < nfeat && !used; k++)
			used = strcmp(t->names[featcol[k]], name) == 0;
		if (!used)
			return name;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pid_t daemon_pid;
	struct run run = { 0 };
	struct hctx fh = { 0 };
	struct mlfs_host host = {
		.size = sizeof(host),
		.ctx = &fh,
		.log = host_log,
		.progress = host_progress,
		.metric = host_metric,
		.cancelled = host_cancelled,
		.threads = 1,
		.stopped = host_stopped,
	};
	static struct plugin pl;
	struct problem pb = { 0 };
	struct table *t = NULL;
	struct fx *fx = NULL;
	json_t *plan, *feats, *params, *metrics, *meta, *header, *trials = NULL;
	const char *label, *taskname;
	char msg[1024];
	struct stat st;
	const char *data;
	double parse_s, fit_s = 0, prep_t0, split_s, prepare_s;
	size_t nfeat, n = 0, w, ncls = 0;
	size_t *featcol, *rows;
	const char **types;
	long labcol = -1;
	struct cls *cls = NULL;
	bool numlabel = false;
	float *y = NULL, *x;
	uint8_t *set;
	uint32_t *strata = NULL;
	void *inst = NULL;
	int rc;

	/* The daemon names itself: it may be gone before main() runs,
	 * and then getppid() here would not be it. */
	daemon_pid = argc == 3 ? (pid_t)atol(argv[2]) : 0;
	if (argc != 3 || daemon_pid <= 0 || chdir(argv[1]) < 0) {
		fprintf(stderr,
			"usage: mlfs-job JOBDIR DAEMON-PID (started by mlfs)\n");
		return 2;
	}
	{
		/* The folder is the writer's: never follow a link they
		 * put in place of the plan (this still runs as root). */
		int fd = open("job.json", O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
						  O_NONBLOCK);
		struct stat pst;

		plan = fd >= 0 && fstat(fd, &pst) == 0 && S_ISREG(pst.st_mode)
			       ? json_loadfd(fd, 0, NULL)
			       : NULL;
		if (fd >= 0)
			close(fd);
	}
	if (!plan) {
		fprintf(stderr, "mlfs-job: cannot read %s/job.json\n", argv[1]);
		return 2;
	}
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	/* identity before anything is read (the daemon bounds memory) */
	if (geteuid() == 0) {
		uid_t uid = (uid_t)json_integer_value(json_object_get(plan, "uid"));
		gid_t gid = (gid_t)json_integer_value(json_object_get(plan, "gid"));

		if (setgroups(0, NULL) < 0 || setgid(gid) < 0 ||
		    setuid(uid) < 0)
			fail("cannot switch to uid %u gid %u: %s", uid, gid,
			     strerror(errno));
	}
	/*
	 * Die with the daemon.  Set after the change of uid, which clears
	 * it; the daemon's scheduler thread, which spawned us, lives as long
	 * as the daemon.  If it is already gone (it died before the prctl),
	 * our parent is not it.
	 */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != daemon_pid)
		_exit(3); /* no one to tell; exit() can wait on BLAS threads */
	run.plan = plan;
	run.t0 = now_mono();
	fh.run = &run;
	fh.frac_span = 1;
	run.metrics = fopen("metrics", "ae");
	taskname = json_string_value(json_object_get(plan, "task"));
	run.task = strcmp(taskname, "classification") == 0 ? MLFS_TASK_CLASSIFICATION
		   : strcmp(taskname, "regression") == 0   ? MLFS_TASK_REGRESSION
							   : MLFS_TASK_CLUSTERING;
	{
		const char *threads = getenv("OPENBLAS_NUM_THREADS");

		host.threads = threads ? atoi(threads) : 1;
	}
	if (plugin_load_file(json_string_value(json_object_get(plan, "plugin")),
			     &pl, msg, sizeof(msg)) < 0)
		fail("plugin %s: %s",
		     json_string_value(json_object_get(plan, "plugin")), msg);
	run.pl = &pl;
	run.ops = pl.desc->ops;
	say("job %s: %s %s on %s@%d", json_string_value(json_object_get(plan, "name")),
	    json_string_value(json_object_get(plan, "algorithm")), taskname,
	    json_string_value(json_object_get(json_object_get(plan, "dataset"), "name")),
	    (int)json_integer_value(json_object_get(json_object_get(plan, "dataset"), "version")));
	host_progress(&fh, 0, "reading data");

	/* the data: descriptor 3, given by the runner */
	if (fstat(3, &st) < 0)
		fail("no data descriptor: %s", strerror(errno));
	data = st.st_size ? mmap(NULL, (size_t)st.st_size, PROT_READ,
				 MAP_PRIVATE, 3, 0)
			  : "";
	if (data == MAP_FAILED)
		fail("cannot map the data: %s", strerror(errno));
	rc = table_parse(data, (size_t)st.st_size, &t, &pb);
	if (rc < 0)
		fail("data: %u:%u: %s", pb.line, pb.col, pb.msg);
	parse_s = now_mono() - run.t0;
	say("parsed %zu rows x %zu columns in %.3f s", t->nrows, t->ncols,
	    parse_s);
	/*
	 * prepare_seconds: from the table in memory to the matrix the plugin
	 * fits (labels, split, features fitted and applied), the part of a
	 * fit that scikit-learn's fit() and StandardScaler also do.  Writing
	 * the split file is not counted: it is the job's record, not work
	 * towards the model.
	 */
	prep_t0 = now_mono();

	/* columns */
	label = json_string_value(json_object_get(plan, "label"));
	if (label && (labcol = table_col(t, label)) < 0)
		fail("no label column \"%s\" in the data", label);
	feats = json_object_get(plan, "features");
	nfeat = json_array_size(feats);
	featcol = calloc(nfeat, sizeof(*featcol));
	types = calloc(nfeat, sizeof(*types));
	if (!featcol || !types)
		fail("out of memory");
	for (size_t i = 0; i < nfeat; i++) {
		json_t *f = json_array_get(feats, i);
		long c = table_col(t, json_string_value(json_object_get(f, "name")));

		if (c < 0)
			fail("no feature column \"%s\" in the data",
			     json_string_value(json_object_get(f, "name")));
		featcol[i] = (size_t)c;
		types[i] = json_string_value(json_object_get(f, "type"));
	}

	/* labels: rows without one are left out */
	rows = malloc((t->nrows ? t->nrows : 1) * sizeof(*rows));
	y = malloc((t->nrows ? t->nrows : 1) * sizeof(*y));
	if (!rows || !y)
		fail("out of memory");
	if (run.task == MLFS_TASK_CLASSIFICATION) {
		size_t cap = 0;

		numlabel = true;
		for (size_t r = 0; r < t->nrows; r++) {
			const char *s = t->data + t->off[r * t->ncols + labcol];
			size_t len = t->len[r * t->ncols + labcol];
			double v;

			if (csv_is_missing(s, len))
				continue;
			if (!csv_parse_double(s, len, &v))
				numlabel = false;
		}
		for (size_t r = 0; r < t->nrows; r++) {
			const char *s = t->data + t->off[r * t->ncols + labcol];
			size_t len = t->len[r * t->ncols + labcol];
			bool seen = false;

			if (csv_is_missing(s, len))
				continue;
			/* few classes: a linear probe is fine until sorted */
			for (size_t c = 0; c < ncls && !seen; c++)
				seen = strlen(cls[c].name) == len &&
				       memcmp(cls[c].name, s, len) == 0;
			if (seen)
				continue;
			if (ncls == 1000)
				fail("label \"%s\" has more than 1000 classes",
				     label);
			if (ncls == cap) {
				cap = cap ? cap * 2 : 16;
				cls = realloc(cls, cap * sizeof(*cls));
				if (!cls)
					fail("out of memory");
			}
			cls[ncls].name = strndup(s, len);
			cls[ncls].num = 0;
			if (numlabel)
				csv_parse_double(s, len, &cls[ncls].num);
			ncls++;
		}
		if (ncls < 2)
			fail("label \"%s\" has %zu class%s: classification "
			     "needs at least 2",
			     label, ncls, ncls == 1 ? "" : "es");
		qsort(cls, ncls, sizeof(*cls), numlabel ? cls_cmp_num : cls_cmp_str);
		/* numeric labels that differ only in spelling: merge "1.0" */
		for (size_t r = 0; r < t->nrows; r++) {
			const char *s = t->data + t->off[r * t->ncols + labcol];
			size_t len = t->len[r * t->ncols + labcol];
			long c;

			if (csv_is_missing(s, len))
				continue;
			c = find_class(cls, ncls, s, len, numlabel);
			if (c < 0)
				continue;
			rows[n] = r;
			y[n++] = (float)c;
		}
		strata = malloc(n * sizeof(*strata));
		if (!strata)
			fail("out of memory");
		for (size_t i = 0; i < n; i++)
			strata[i] = (uint32_t)y[i];
	} else if (run.task == MLFS_TASK_REGRESSION) {
		for (size_t r = 0; r < t->nrows; r++) {
			double v;

			if (!table_num(t, r, (size_t)labcol, &v))
				continue;
			rows[n] = r;
			y[n++] = (float)v;
		}
	} else {
		for (size_t r = 0; r < t->nrows; r++)
			rows[n++] = r;
	}
	if (n < 3)
		fail("only %zu usable rows: need at least 3", n);

	/* the split, written for anyone to reproduce the evaluation */
	{
		json_t *sp = json_object_get(plan, "split");
		struct split_spec ss = {
			json_number_value(json_object_get(sp, "train")),
			json_number_value(json_object_get(sp, "validation")),
			json_number_value(json_object_get(sp, "test")),
			(uint64_t)json_integer_value(json_object_get(sp, "seed")),
			json_is_true(json_object_get(sp, "stratify")),
		};
		FILE *fp;
		double tw;

		set = malloc(n);
		if (!set)
			fail("out of memory");
		rc = split_rows(n, ss.stratify ? strata : NULL,
				ss.stratify ? ncls : 0, &ss, set);
		if (rc < 0)
			fail("split: %s", strerror(-rc));
		tw = now_mono();
		fp = fopen("split.tmp", "we");
		if (!fp)
			fail("cannot write the split: %s", strerror(errno));
		fputs("row,set\n", fp);
		for (size_t i = 0; i < n; i++)
			fprintf(fp, "%zu,%s\n", rows[i], set_name(set[i]));
		if (fclose(fp) != 0 || rename("split.tmp", "split") < 0)
			fail("cannot write the split");
		split_s = now_mono() - tw;
	}

	/* features: fitted on the training rows only */
	{
		size_t ntr = 0;
		size_t *trrows = malloc(n * sizeof(*trrows));

		if (!trrows)
			fail("out of memory");
		for (size_t i = 0; i < n; i++)
			if (set[i] == SPLIT_TRAIN)
				trrows[ntr++] = rows[i];
		if (ntr == 0)
			fail("the training split is empty");
		rc = fx_fit(t, featcol, types, nfeat, trrows, ntr, &fx, &pb);
		free(trrows);
		if (rc < 0)
			fail("features: %s", pb.msg);
	}
	w = fx->width;
	x = malloc(n * w * sizeof(*x));
	if (!x)
		fail("out of memory: %zu x %zu features", n, w);
	{
		const char **fields = malloc(t->ncols * sizeof(*fields));
		size_t *flen = malloc(t->ncols * sizeof(*flen));
		size_t *map = malloc(fx->ncols * sizeof(*map));

		if (!fields || !flen || !map)
			fail("out of memory");
		for (size_t i = 0; i < fx->ncols; i++)
			map[i] = fx->cols[i].src;
		for (size_t i = 0; i < n; i++) {
			size_t r = rows[i];

			for (size_t c = 0; c < t->ncols; c++) {
				fields[c] = t->data + t->off[r * t->ncols + c];
				flen[c] = t->len[r * t->ncols + c];
			}
			fx_transform_row(fx, fields, flen, t->ncols, map,
					 x + i * w);
		}
		free(fields);
		free(flen);
		free(map);
	}

	/* train (and search) */
	{
		size_t ntr, nva, nte;
		float *ytr = NULL, *yva = NULL, *yte = NULL;
		float *xtr = take_rows(x, w, set, n, SPLIT_TRAIN,
				       run.task == MLFS_TASK_CLUSTERING ? NULL : y,
				       &ytr, &ntr);
		float *xva = take_rows(x, w, set, n, SPLIT_VALIDATION,
				       run.task == MLFS_TASK_CLUSTERING ? NULL : y,
				       &yva, &nva);
		float *xte = take_rows(x, w, set, n, SPLIT_TEST,
				       run.task == MLFS_TASK_CLUSTERING ? NULL : y,
				       &yte, &nte);
		struct mlfs_data tr = { { xtr, ntr, w, w }, ytr, ncls };
		struct mlfs_data va = { { xva, nva, w, w }, yva, ncls };
		const char **cnames = calloc(ncls ? ncls : 1, sizeof(*cnames));
		json_t *search = json_object_get(plan, "search");

		for (size_t c = 0; c < ncls; c++)
			cnames[c] = cls[c].name;
		prepare_s = now_mono() - prep_t0 - split_s;
		say("split: %zu train, %zu validation, %zu test; %zu features",
		    ntr, nva, nte, w);
		say("labels, split and features in %.3f s (and %.3f s writing "
		    "the split); BLAS: %d threads",
		    prepare_s, split_s, openblas_get_num_threads());
		params = json_deep_copy(json_object_get(plan, "params"));
		if (json_is_object(search)) {
			json_decref(params);
			params = search_run(&run, &host, plan, &tr, &va, cnames,
					    ncls, &trials);
			fh.frac_base = 0.9;
			fh.frac_span = 0.1;
			snprintf(fh.prefix, sizeof(fh.prefix), "final: ");
		}
		/* the model: retrained with the chosen params on the
		 * training rows (validation for early stopping) */
		rc = train_once(&run, &host, &fh, params, &tr, &va, &inst, &fit_s,
				msg,
				sizeof(msg));
		if (rc == -ECANCELED || cancelled)
			fail("cancelled");
		if (rc < 0) {
			/* a diverged fit says so before it fails */
			if (fh.stopped)
				progress_stopped(&fh, 1, "failed");
			fail("%s", msg);
		}
		say("fit in %.3f s", fit_s);
		host_progress(&fh, 1, "evaluating");
		metrics = evaluate(&run, inst, nte ? xte : xtr,
				   nte ? yte : ytr, nte ? nte : ntr, w, cnames, ncls);
		json_object_set_new(metrics, "evaluated_on",
				    json_string(nte ? "test" : "train"));
		json_object_set_new(metrics, "fit_seconds", json_real(fit_s));
		json_object_set_new(metrics, "stopped",
				    fh.stopped ? json_incref(fh.stopped)
					       : stopped_unknown(&pl));
		json_object_set_new(metrics, "parse_seconds", json_real(parse_s));
		json_object_set_new(metrics, "prepare_seconds",
				    json_real(prepare_s));
		json_object_set_new(metrics, "blas_threads",
				    json_integer(openblas_get_num_threads()));
		json_object_set_new(metrics, "rows",
				    json_pack("{s:I, s:I, s:I}", "train",
					      (json_int_t)ntr, "validation",
					      (json_int_t)nva, "test",
					      (json_int_t)nte));
		if (nva)
			json_object_set_new(metrics, "validation",
					    evaluate(&run, inst, xva, yva, nva, w,
						     cnames, ncls));

		/* out/: model, meta.json, metrics.json, sample.csv */
		if (mkdir("out", 0755) < 0 && errno != EEXIST)
			fail("cannot make out/: %s", strerror(errno));
		{
			void *wbuf = NULL, *file = NULL;
			size_t wlen = 0, flen = 0;
			json_t *classes = json_array(), *fnames = json_array();
			const char *idname = id_column(plan, t, featcol, nfeat,
						       label);
			FILE *fp;

			for (size_t c = 0; c < ncls; c++)
				json_array_append_new(classes,
						      json_string(cls[c].name));
			for (size_t i = 0; i < nfeat; i++)
				json_array_append_new(
					fnames, json_string(t->names[featcol[i]]));
			rc = run.ops->save(inst, &wbuf, &wlen);
			if (rc < 0)
				fail("saving the model: %s", strerror(-rc));
			header = json_pack(
				"{s:s, s:s, s:s, s:s, s:O, s:s?, s:o, s:O, s:O, "
				"s:I, s:b, s:s?}",
				"plugin", pl.desc->name, "plugin_version",
				pl.desc->version ? pl.desc->version : "",
				"plugin_hash", pl.hash, "task", taskname,
				"classes", classes, "label", label, "features",
				fx_to_json(fx), "params", params, "inputs",
				fnames, "outputs",
				(json_int_t)run.ops->outputs(inst),
				"numeric_classes", numlabel, "id", idname);
			if (!header ||
			    model_encode(header, wbuf, wlen, &file, &flen) < 0)
				fail("encoding the model");
			free(wbuf);
			fp = fopen(out_path(MODEL_FILE_MODEL), "we");
			if (!fp || fwrite(file, 1, flen, fp) != flen ||
			    fclose(fp) != 0)
				fail("writing the model: %s", strerror(errno));
			free(file);
			meta = json_pack(
				"{s:s, s:s, s:s, s:s, s:O, s:O, s:O, s:s?, s:O, "
				"s:{s:s, s:O}, s:O, s:O, s:O?}",
				"algorithm", pl.desc->name, "plugin_version",
				pl.desc->version ? pl.desc->version : "",
				"plugin_hash", pl.hash, "task", taskname,
				"params", params, "dataset",
				json_object_get(plan, "dataset"), "features",
				json_object_get(header, "features"), "label",
				label, "classes", classes, "output", "format",
				"csv: prediction, then one probability per "
				"class in the order of classes",
				"columns", fnames, "inputs", fnames, "metrics",
				metrics, "search", json_object_get(plan, "search"));
			json_object_set(meta, "split", json_object_get(plan, "split"));
			if (meta && idname)
				json_object_set_new(meta, "id",
						    json_string(idname));
			if (!meta ||
			    json_dump_file_short(meta, out_path(MODEL_FILE_META),
						 JSON_INDENT(2) |
							 JSON_PRESERVE_ORDER))
				fail("writing meta.json");
			if (json_dump_file_short(metrics,
						 out_path(MODEL_FILE_METRICS),
						 JSON_INDENT(2) |
							 JSON_PRESERVE_ORDER))
				fail("writing metrics.json");
			json_decref(classes);
			json_decref(fnames);
		}
		/* sample.csv: held-out rows with what the model answers */
		{
			FILE *fp = fopen(out_path(MODEL_FILE_SAMPLE), "we");
			char num[NUM_SHORTEST_MAX];
			size_t shown = 0, nout;
			float *s;
			float *xs;
			size_t *ri = malloc(20 * sizeof(*ri));

			if (!fp || !ri)
				fail("cannot write sample.csv");
			for (size_t i = 0; i < nfeat; i++)
				fprintf(fp, "%s%s", i ? "," : "", t->names[featcol[i]]);
			if (label)
				fprintf(fp, ",%s", label);
			fprintf(fp, ",prediction");
			for (size_t c = 0; c < ncls; c++)
				fprintf(fp, ",p_%s", cls[c].name);
			fputc('\n', fp);
			xs = malloc(20 * w * sizeof(*xs));
			for (size_t i = 0; i < n && shown < 20 && xs; i++) {
				if (set[i] != (nte ? SPLIT_TEST : SPLIT_TRAIN))
					continue;
				memcpy(xs + shown * w, x + i * w, w * sizeof(*xs));
				ri[shown++] = rows[i];
			}
			s = score(&run, inst, xs, shown, w, &nout);
			for (size_t k = 0; k < shown; k++) {
				size_t r = ri[k];

				for (size_t i = 0; i < nfeat; i++) {
					const char *f = t->data + t->off[r * t->ncols + featcol[i]];
					size_t fl = t->len[r * t->ncols + featcol[i]];
					bool q = memchr(f, ',', fl) || memchr(f, '"', fl) || memchr(f, '\n', fl);

					fputs(i ? "," : "", fp);
					if (q) {
						fputc('"', fp);
						for (size_t b = 0; b < fl; b++) {
							if (f[b] == '"')
								fputc('"', fp);
							fputc(f[b], fp);
						}
						fputc('"', fp);
					} else {
						fwrite(f, 1, fl, fp);
					}
				}
				if (label)
					fprintf(fp, ",%.*s",
						(int)t->len[r * t->ncols + labcol],
						t->data + t->off[r * t->ncols + labcol]);
				if (run.task == MLFS_TASK_CLASSIFICATION) {
					size_t best = 0;

					for (size_t c = 1; c < nout; c++)
						if (s[k * nout + c] > s[k * nout + best])
							best = c;
					fprintf(fp, ",%s", cls[best].name);
					/* as predict prints them (jsonout.h) */
					for (size_t c = 0; c < nout; c++) {
						num_shortest(s[k * nout + c], 9,
							     num);
						fprintf(fp, ",%s", num);
					}
				} else if (run.task == MLFS_TASK_REGRESSION) {
					num_shortest(s[k * nout], 9, num);
					fprintf(fp, ",%s", num);
				} else {
					size_t best = 0;

					for (size_t c = 1; c < nout; c++)
						if (s[k * nout + c] > s[k * nout + best])
							best = c;
					fprintf(fp, ",%zu", best);
				}
				fputc('\n', fp);
			}
			free(s);
			free(xs);
			free(ri);
			if (fclose(fp) != 0)
				fail("writing sample.csv");
		}
		free(xtr);
		free(xva);
		free(xte);
		free(ytr);
		free(yva);
		free(yte);
		free(cnames);
	}
	progress_stopped(&fh, 1, "done");
	say("done: %s", json_dumps(metrics, JSON_COMPACT) ? "metrics written" : "");
	run.ops->fini(inst);
	finish(1, NULL, metrics, trials);
	return 0;
}
