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
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <fcntl.h>
#include <grp.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
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

/* The path, in the job's directory, of a model version's file. */
static const char *out_path(enum model_file f)
{
	static char paths[MODEL_NFILES][64];

	if (!paths[f][0])
		snprintf(paths[f], sizeof(paths[f]), MODEL_OUT "/%s",
			 model_files[f]);
	return paths[f];
}

volatile sig_atomic_t cancelled;

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



pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

double now_mono(void)
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

void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
}

/* result.json, then exit. */
void finish(int ok, const char *reason, json_t *metrics,
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

void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2),
						     noreturn));
void fail(const char *fmt, ...)
{
	char reason[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	finish(0, reason, NULL, NULL);
	exit(1);
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
int train_once(struct run *run, const struct mlfs_host *base,
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
float *score(struct run *run, void *inst, const float *x, size_t rows,
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
json_t *evaluate(struct run *run, void *inst, const float *x,
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
			size_t best = argmax(s + i * nout, nout);

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
double metric_of(json_t *m, const char *name)
{
	json_t *v = json_object_get(m, name);

	return json_is_number(v) ? json_number_value(v) : NAN;
}

void write_trial(size_t n, json_t *t)
{
	char path[64], tmp[80];

	mkdir("trials", 0755);
	snprintf(path, sizeof(path), "trials/%zu", n);
	snprintf(tmp, sizeof(tmp), "trials/.%zu.tmp", n);
	if (json_dump_file(t, tmp, JSON_INDENT(2) | JSON_PRESERVE_ORDER) == 0)
		rename(tmp, path);
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

/*
 * The job's data, from the table to the matrix the plugin fits.  Each
 * step of main() fills in the fields the next one reads.
 */
struct data {
	struct table *t;
	const char *label;     /* borrowed from the plan; NULL: none */
	long labcol;           /* -1: no label */
	size_t nfeat;
	size_t *featcol;       /* [nfeat] the features' columns in t */
	const char **types;    /* [nfeat] borrowed from the plan */
	struct cls *cls;       /* [ncls] the classes, sorted */
	size_t ncls;
	bool numlabel;         /* every label a number: classes are numbers */
	size_t n;              /* usable rows */
	size_t *rows;          /* [n] their rows in t */
	float *y;              /* [n] class number or value */
	uint32_t *strata;      /* [n] class of each row (classification) */
	uint8_t *set;          /* [n] SPLIT_TRAIN, SPLIT_VALIDATION, ... */
	struct fx *fx;
	size_t w;              /* width of a row of x */
	float *x;              /* [n * w] the rows' features */
	double parse_s;        /* seconds parsing the table */
	double prep_t0;        /* monotonic start of the preparation */
	double split_s;        /* seconds writing the split */
};

/* Field (r, c) of t: its text, *len bytes of it. */
static const char *field(const struct table *t, size_t r, size_t c,
			 size_t *len)
{
	*len = t->len[r * t->ncols + c];
	return t->data + t->off[r * t->ncols + c];
}

/*
 * The plan in JOBDIR/job.json (new reference), or NULL.  The folder is
 * the writer's: never follow a link they put in place of the plan (this
 * still runs as root).
 */
static json_t *plan_read(void)
{
	int fd = open("job.json", O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
					  O_NONBLOCK);
	struct stat pst;
	json_t *plan;

	plan = fd >= 0 && fstat(fd, &pst) == 0 && S_ISREG(pst.st_mode)
		       ? json_loadfd(fd, 0, NULL)
		       : NULL;
	if (fd >= 0)
		close(fd);
	return plan;
}

/*
 * Become the spec's writer, before anything is read (the daemon bounds
 * memory), then die with the daemon.
 */
static void identity_switch(json_t *plan, pid_t daemon_pid)
{
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
}

/* The run: its clock, metrics file, task and train plugin. */
static void run_start(struct run *run, json_t *plan, struct mlfs_host *host)
{
	static struct plugin pl;
	const char *threads = getenv("OPENBLAS_NUM_THREADS");
	const char *path = json_string_value(json_object_get(plan, "plugin"));
	json_t *ds = json_object_get(plan, "dataset");
	char msg[1024];

	run->plan = plan;
	run->t0 = now_mono();
	run->metrics = fopen("metrics", "ae");
	run->taskname = json_string_value(json_object_get(plan, "task"));
	run->task = model_task(run->taskname);
	host->threads = threads ? atoi(threads) : 1;
	if (plugin_load_file(path, &pl, msg, sizeof(msg)) < 0)
		fail("plugin %s: %s", path, msg);
	run->pl = &pl;
	run->ops = pl.desc->ops;
	say("job %s: %s %s on %s@%d",
	    json_string_value(json_object_get(plan, "name")),
	    json_string_value(json_object_get(plan, "algorithm")),
	    run->taskname, json_string_value(json_object_get(ds, "name")),
	    (int)json_integer_value(json_object_get(ds, "version")));
}

/* The table, from descriptor 3 (given by the runner). */
static void data_read(struct data *d, const struct run *run)
{
	struct problem pb = { 0 };
	struct stat st;
	const char *text;

	if (fstat(3, &st) < 0)
		fail("no data descriptor: %s", strerror(errno));
	text = st.st_size ? mmap(NULL, (size_t)st.st_size, PROT_READ,
				 MAP_PRIVATE, 3, 0)
			  : "";
	if (text == MAP_FAILED)
		fail("cannot map the data: %s", strerror(errno));
	if (table_parse(text, (size_t)st.st_size, &d->t, &pb) < 0)
		fail("data: %u:%u: %s", pb.line, pb.col, pb.msg);
	d->parse_s = now_mono() - run->t0;
	say("parsed %zu rows x %zu columns in %.3f s", d->t->nrows,
	    d->t->ncols, d->parse_s);
}

/* The columns of the label and the features. */
static void columns_find(struct data *d, json_t *plan)
{
	json_t *feats = json_object_get(plan, "features");

	d->label = json_string_value(json_object_get(plan, "label"));
	if (d->label && (d->labcol = table_col(d->t, d->label)) < 0)
		fail("no label column \"%s\" in the data", d->label);
	d->nfeat = json_array_size(feats);
	d->featcol = calloc(d->nfeat, sizeof(*d->featcol));
	d->types = calloc(d->nfeat, sizeof(*d->types));
	if (!d->featcol || !d->types)
		fail("out of memory");
	for (size_t i = 0; i < d->nfeat; i++) {
		json_t *f = json_array_get(feats, i);
		const char *name =
			json_string_value(json_object_get(f, "name"));
		long c = table_col(d->t, name);

		if (c < 0)
			fail("no feature column \"%s\" in the data", name);
		d->featcol[i] = (size_t)c;
		d->types[i] = json_string_value(json_object_get(f, "type"));
	}
}

/* Is every label present a number?  Then classes are numbers. */
static bool labels_numeric(const struct data *d)
{
	bool numeric = true;

	for (size_t r = 0; r < d->t->nrows; r++) {
		size_t len;
		const char *s = field(d->t, r, (size_t)d->labcol, &len);
		double v;

		if (csv_is_missing(s, len))
			continue;
		if (!csv_parse_double(s, len, &v))
			numeric = false;
	}
	return numeric;
}

/* The distinct labels (at most 1000, at least 2), sorted. */
static void classes_find(struct data *d)
{
	size_t cap = 0;

	d->numlabel = labels_numeric(d);
	for (size_t r = 0; r < d->t->nrows; r++) {
		size_t len;
		const char *s = field(d->t, r, (size_t)d->labcol, &len);
		bool seen = false;

		if (csv_is_missing(s, len))
			continue;
		/* few classes: a linear probe is fine until sorted */
		for (size_t c = 0; c < d->ncls && !seen; c++)
			seen = strlen(d->cls[c].name) == len &&
			       memcmp(d->cls[c].name, s, len) == 0;
		if (seen)
			continue;
		if (d->ncls == 1000)
			fail("label \"%s\" has more than 1000 classes",
			     d->label);
		if (d->ncls == cap) {
			cap = cap ? cap * 2 : 16;
			d->cls = realloc(d->cls, cap * sizeof(*d->cls));
			if (!d->cls)
				fail("out of memory");
		}
		d->cls[d->ncls].name = strndup(s, len);
		d->cls[d->ncls].num = 0;
		if (d->numlabel)
			csv_parse_double(s, len, &d->cls[d->ncls].num);
		d->ncls++;
	}
	if (d->ncls < 2)
		fail("label \"%s\" has %zu class%s: classification "
		     "needs at least 2",
		     d->label, d->ncls, d->ncls == 1 ? "" : "es");
	qsort(d->cls, d->ncls, sizeof(*d->cls),
	      d->numlabel ? cls_cmp_num : cls_cmp_str);
}

/* The labelled rows and their classes, which are also the strata. */
static void labels_classify(struct data *d)
{
	classes_find(d);
	/* numeric labels that differ only in spelling: merge "1.0" */
	for (size_t r = 0; r < d->t->nrows; r++) {
		size_t len;
		const char *s = field(d->t, r, (size_t)d->labcol, &len);
		long c;

		if (csv_is_missing(s, len))
			continue;
		c = find_class(d->cls, d->ncls, s, len, d->numlabel);
		if (c < 0)
			continue;
		d->rows[d->n] = r;
		d->y[d->n++] = (float)c;
	}
	d->strata = malloc(d->n * sizeof(*d->strata));
	if (!d->strata)
		fail("out of memory");
	for (size_t i = 0; i < d->n; i++)
		d->strata[i] = (uint32_t)d->y[i];
}

/* The usable rows and their labels: rows without one are left out. */
static void labels_read(struct data *d, unsigned task)
{
	size_t nrows = d->t->nrows;

	d->rows = malloc((nrows ? nrows : 1) * sizeof(*d->rows));
	d->y = malloc((nrows ? nrows : 1) * sizeof(*d->y));
	if (!d->rows || !d->y)
		fail("out of memory");
	if (task == MLFS_TASK_CLASSIFICATION) {
		labels_classify(d);
	} else if (task == MLFS_TASK_REGRESSION) {
		for (size_t r = 0; r < nrows; r++) {
			double v;

			if (!table_num(d->t, r, (size_t)d->labcol, &v))
				continue;
			d->rows[d->n] = r;
			d->y[d->n++] = (float)v;
		}
	} else {
		for (size_t r = 0; r < nrows; r++)
			d->rows[d->n++] = r;
	}
	if (d->n < 3)
		fail("only %zu usable rows: need at least 3", d->n);
}

/* The split, written for anyone to reproduce the evaluation. */
static void split_write(struct data *d, json_t *plan)
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
	int rc;

	d->set = malloc(d->n);
	if (!d->set)
		fail("out of memory");
	rc = split_rows(d->n, ss.stratify ? d->strata : NULL,
			ss.stratify ? d->ncls : 0, &ss, d->set);
	if (rc < 0)
		fail("split: %s", strerror(-rc));
	tw = now_mono();
	fp = fopen("split.tmp", "we");
	if (!fp)
		fail("cannot write the split: %s", strerror(errno));
	fputs("row,set\n", fp);
	for (size_t i = 0; i < d->n; i++)
		fprintf(fp, "%zu,%s\n", d->rows[i], set_name(d->set[i]));
	if (fclose(fp) != 0 || rename("split.tmp", "split") < 0)
		fail("cannot write the split");
	d->split_s = now_mono() - tw;
}

/* The feature extractor, fitted on the training rows only. */
static void features_fit(struct data *d)
{
	struct problem pb = { 0 };
	size_t ntr = 0;
	size_t *trrows = malloc(d->n * sizeof(*trrows));
	int rc;

	if (!trrows)
		fail("out of memory");
	for (size_t i = 0; i < d->n; i++)
		if (d->set[i] == SPLIT_TRAIN)
			trrows[ntr++] = d->rows[i];
	if (ntr == 0)
		fail("the training split is empty");
	rc = fx_fit(d->t, d->featcol, d->types, d->nfeat, trrows, ntr, &d->fx,
		    &pb);
	free(trrows);
	if (rc < 0)
		fail("features: %s", pb.msg);
}

/* Every usable row through the extractor: x. */
static void features_apply(struct data *d)
{
	const struct table *t = d->t;
	const char **fields;
	size_t *flen, *map;

	d->w = d->fx->width;
	d->x = malloc(d->n * d->w * sizeof(*d->x));
	if (!d->x)
		fail("out of memory: %zu x %zu features", d->n, d->w);
	fields = malloc(t->ncols * sizeof(*fields));
	flen = malloc(t->ncols * sizeof(*flen));
	map = malloc(d->fx->ncols * sizeof(*map));
	if (!fields || !flen || !map)
		fail("out of memory");
	for (size_t i = 0; i < d->fx->ncols; i++)
		map[i] = d->fx->cols[i].src;
	for (size_t i = 0; i < d->n; i++) {
		for (size_t c = 0; c < t->ncols; c++)
			fields[c] = field(t, d->rows[i], c, &flen[c]);
		fx_transform_row(d->fx, fields, flen, t->ncols, map,
				 d->x + i * d->w);
	}
	free(fields);
	free(flen);
	free(map);
}

/* The rows of each set, as the plugin takes them. */
struct sets {
	float *xtr, *xva, *xte;
	float *ytr, *yva, *yte;  /* NULL when clustering */
	size_t ntr, nva, nte;
	struct mlfs_data tr;
	struct mlfs_data va;
	const char **cnames;     /* [ncls] borrowed from the data's classes */
	double prepare_s;        /* labels, split and features, seconds */
};

static void sets_take(struct sets *s, const struct data *d, unsigned task)
{
	const float *y = task == MLFS_TASK_CLUSTERING ? NULL : d->y;

	s->xtr = take_rows(d->x, d->w, d->set, d->n, SPLIT_TRAIN, y, &s->ytr,
			   &s->ntr);
	s->xva = take_rows(d->x, d->w, d->set, d->n, SPLIT_VALIDATION, y,
			   &s->yva, &s->nva);
	s->xte = take_rows(d->x, d->w, d->set, d->n, SPLIT_TEST, y, &s->yte,
			   &s->nte);
	s->tr = (struct mlfs_data){ { s->xtr, s->ntr, d->w, d->w }, s->ytr,
				    d->ncls };
	s->va = (struct mlfs_data){ { s->xva, s->nva, d->w, d->w }, s->yva,
				    d->ncls };
	s->cnames = calloc(d->ncls ? d->ncls : 1, sizeof(*s->cnames));
	for (size_t c = 0; c < d->ncls; c++)
		s->cnames[c] = d->cls[c].name;
	/*
	 * prepare_seconds: from the table in memory to the matrix the plugin
	 * fits (labels, split, features fitted and applied), the part of a
	 * fit that scikit-learn's fit() and StandardScaler also do.  Writing
	 * the split file is not counted: it is the job's record, not work
	 * towards the model.
	 */
	s->prepare_s = now_mono() - d->prep_t0 - d->split_s;
	say("split: %zu train, %zu validation, %zu test; %zu features",
	    s->ntr, s->nva, s->nte, d->w);
	say("labels, split and features in %.3f s (and %.3f s writing "
	    "the split); BLAS: %d threads",
	    s->prepare_s, d->split_s, openblas_get_num_threads());
}

static void sets_free(struct sets *s)
{
	free(s->xtr);
	free(s->xva);
	free(s->xte);
	free(s->ytr);
	free(s->yva);
	free(s->yte);
	free(s->cnames);
}

/* What the job makes: the model and what is said of it. */
struct model {
	void *inst;          /* the plugin's instance, fitted */
	json_t *params;      /* the params it was fitted with */
	json_t *trials;      /* the search's records, or NULL */
	json_t *metrics;
	double fit_s;        /* seconds in fit */
};

/*
 * The model: the plan's params, or the search's best, fitted on the
 * training rows (validation for early stopping).  fh reports the fit.
 */
static void model_fit(struct model *m, struct run *run,
		      const struct mlfs_host *host, struct hctx *fh,
		      struct sets *s, size_t ncls)
{
	json_t *search = json_object_get(run->plan, "search");
	char msg[1024];
	int rc;

	m->params = json_deep_copy(json_object_get(run->plan, "params"));
	if (json_is_object(search)) {
		json_decref(m->params);
		m->params = search_run(run, host, run->plan, &s->tr, &s->va,
				       s->cnames, ncls, &m->trials);
		fh->frac_base = 0.9;
		fh->frac_span = 0.1;
		snprintf(fh->prefix, sizeof(fh->prefix), "final: ");
	}
	rc = train_once(run, host, fh, m->params, &s->tr, &s->va, &m->inst,
			&m->fit_s, msg, sizeof(msg));
	if (rc == -ECANCELED || cancelled)
		fail("cancelled");
	if (rc < 0) {
		/* a diverged fit says so before it fails */
		if (fh->stopped)
			progress_stopped(fh, 1, "failed");
		fail("%s", msg);
	}
	say("fit in %.3f s", m->fit_s);
}

/* metrics.json: the model on the test rows (the training rows if none). */
static void model_evaluate(struct model *m, struct run *run,
			   const struct hctx *fh, const struct data *d,
			   const struct sets *s)
{
	bool test = s->nte;
	json_t *mt;

	mt = evaluate(run, m->inst, test ? s->xte : s->xtr,
		      test ? s->yte : s->ytr, test ? s->nte : s->ntr, d->w,
		      s->cnames, d->ncls);
	json_object_set_new(mt, "evaluated_on",
			    json_string(test ? "test" : "train"));
	json_object_set_new(mt, "fit_seconds", json_real(m->fit_s));
	json_object_set_new(mt, "stopped",
			    fh->stopped ? json_incref(fh->stopped)
					: stopped_unknown(run->pl));
	json_object_set_new(mt, "parse_seconds", json_real(d->parse_s));
	json_object_set_new(mt, "prepare_seconds", json_real(s->prepare_s));
	json_object_set_new(mt, "blas_threads",
			    json_integer(openblas_get_num_threads()));
	json_object_set_new(mt, "rows",
			    json_pack("{s:I, s:I, s:I}", "train",
				      (json_int_t)s->ntr, "validation",
				      (json_int_t)s->nva, "test",
				      (json_int_t)s->nte));
	if (s->nva)
		json_object_set_new(mt, "validation",
				    evaluate(run, m->inst, s->xva, s->yva,
					     s->nva, d->w, s->cnames,
					     d->ncls));
	m->metrics = mt;
}

/*
 * out/model: the model file's header and the plugin's weights.  Returns
 * the header (new reference), whose "features" meta.json repeats.
 */
static json_t *model_file_write(const struct model *m, const struct run *run,
				const struct data *d, json_t *classes,
				json_t *fnames, const char *idname)
{
	const struct plugin *pl = run->pl;
	void *wbuf = NULL, *file = NULL;
	size_t wlen = 0, flen = 0;
	json_t *header;
	FILE *fp;
	int rc;

	rc = run->ops->save(m->inst, &wbuf, &wlen);
	if (rc < 0)
		fail("saving the model: %s", strerror(-rc));
	header = json_pack(
		"{s:s, s:s, s:s, s:i, s:s, s:O, s:s?, s:o, s:O, s:O, s:I, "
		"s:b, s:s?}",
		"plugin", pl->desc->name, "plugin_version",
		pl->desc->version ? pl->desc->version : "", "plugin_hash",
		pl->hash, "model_format", (int)plugin_model_format(pl), "task", run->taskname, "classes", classes, "label",
		d->label, "features", fx_to_json(d->fx), "params", m->params,
		"inputs", fnames, "outputs",
		(json_int_t)run->ops->outputs(m->inst), "numeric_classes",
		d->numlabel, "id", idname);
	if (!header || model_encode(header, wbuf, wlen, &file, &flen) < 0)
		fail("encoding the model");
	free(wbuf);
	fp = fopen(out_path(MODEL_FILE_MODEL), "we");
	if (!fp || fwrite(file, 1, flen, fp) != flen || fclose(fp) != 0)
		fail("writing the model: %s", strerror(errno));
	free(file);
	return header;
}

/* out/meta.json: what the model is, and out/metrics.json. */
static void model_meta_write(const struct model *m, const struct run *run,
			     const struct data *d, json_t *header,
			     json_t *classes, json_t *fnames,
			     const char *idname)
{
	const struct plugin *pl = run->pl;
	json_t *plan = run->plan;
	json_t *meta;

	meta = json_pack(
		"{s:s, s:s, s:s, s:i, s:s, s:O, s:O, s:O, s:s?, s:O, "
		"s:{s:s, s:O}, s:O, s:O, s:O?}",
		"algorithm", pl->desc->name, "plugin_version",
		pl->desc->version ? pl->desc->version : "", "plugin_hash",
		pl->hash, "model_format", (int)plugin_model_format(pl), "task", run->taskname, "params", m->params,
		"dataset", json_object_get(plan, "dataset"), "features",
		json_object_get(header, "features"), "label", d->label,
		"classes", classes, "output", "format",
		"csv: prediction, then one probability per class in the "
		"order of classes",
		"columns", fnames, "inputs", fnames, "metrics", m->metrics,
		"search", json_object_get(plan, "search"));
	json_object_set(meta, "split", json_object_get(plan, "split"));
	if (meta && json_object_get(plan, "feature_sets")) {
		/* what predict needs to fetch them by key */
		json_t *sets = json_array(), *set;
		size_t i;

		json_array_foreach(json_object_get(plan, "feature_sets"), i,
				   set) {
			json_t *spec = json_object_get(set, "spec");

			json_array_append_new(
				sets,
				json_pack("{s:O, s:O, s:O, s:O}", "name",
					  json_object_get(set, "name"),
					  "version",
					  json_object_get(set, "version"),
					  "entity",
					  json_object_get(spec, "entity"),
					  "timestamp",
					  json_object_get(spec, "timestamp")));
		}
		json_object_set_new(meta, "feature_sets", sets);
	}
	if (meta && idname)
		json_object_set_new(meta, "id", json_string(idname));
	if (!meta ||
	    json_dump_file_short(meta, out_path(MODEL_FILE_META),
				 JSON_INDENT(2) | JSON_PRESERVE_ORDER))
		fail("writing meta.json");
	if (json_dump_file_short(m->metrics, out_path(MODEL_FILE_METRICS),
				 JSON_INDENT(2) | JSON_PRESERVE_ORDER))
		fail("writing metrics.json");
}

/* out/: model, meta.json, metrics.json (sample.csv is sample_write's). */
static void model_write(const struct model *m, const struct run *run,
			const struct data *d)
{
	json_t *classes = json_array(), *fnames = json_array();
	const char *idname = id_column(run->plan, d->t, d->featcol, d->nfeat,
				       d->label);
	json_t *header;

	if (mkdir("out", 0755) < 0 && errno != EEXIST)
		fail("cannot make out/: %s", strerror(errno));
	for (size_t c = 0; c < d->ncls; c++)
		json_array_append_new(classes, json_string(d->cls[c].name));
	for (size_t i = 0; i < d->nfeat; i++)
		json_array_append_new(fnames,
				      json_string(d->t->names[d->featcol[i]]));
	header = model_file_write(m, run, d, classes, fnames, idname);
	model_meta_write(m, run, d, header, classes, fnames, idname);
	json_decref(classes);
	json_decref(fnames);
}

/* One CSV field, quoted when it holds a comma, a quote or a newline. */
bool csv_needs_quotes(const char *f, size_t len)
{
	size_t i = 0;

#ifdef __SSE2__
	/*
	 * One pass 16 bytes at a time: three memchr() calls a field cost a
	 * prepare job writing 40 million of them (3 hashes and 5 numbers a
	 * row) about 10 % of its CPU.
	 */
	const __m128i comma = _mm_set1_epi8(',');
	const __m128i quote = _mm_set1_epi8('"');
	const __m128i lf = _mm_set1_epi8('\n');

	for (; i + 16 <= len; i += 16) {
		__m128i x = _mm_loadu_si128((const __m128i *)(f + i));
		__m128i m = _mm_or_si128(_mm_cmpeq_epi8(x, comma),
					 _mm_cmpeq_epi8(x, quote));

		m = _mm_or_si128(m, _mm_cmpeq_epi8(x, lf));
		if (_mm_movemask_epi8(m))
			return true;
	}
#endif
	for (; i < len; i++)
		if (f[i] == ',' || f[i] == '"' || f[i] == '\n')
			return true;
	return false;
}

#ifdef __SSE2__
/*
 * 16 bytes at a time from s rounded down to 16: an aligned load never
 * crosses a page, so reading past the NUL (as glibc's strlen does) is
 * safe, but not to AddressSanitizer, which is told to look away.  A
 * prepare job printing 40 million fields spent 6 % of its time in
 * strlen and csv_needs_quotes, one pass after the other.
 */
__attribute__((no_sanitize_address))
size_t csv_field_len(const char *s, bool *quote)
{
	const char *p = (const char *)((uintptr_t)s & ~(uintptr_t)15);
	unsigned skip = (unsigned)(s - p), any = 0;
	const __m128i zero = _mm_setzero_si128();
	const __m128i comma = _mm_set1_epi8(',');
	const __m128i dq = _mm_set1_epi8('"');
	const __m128i lf = _mm_set1_epi8('\n');

	for (;; p += 16, skip = 0) {
		__m128i x = _mm_load_si128((const __m128i *)p);
		unsigned z = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, zero));
		unsigned q = (unsigned)_mm_movemask_epi8(_mm_or_si128(
			_mm_or_si128(_mm_cmpeq_epi8(x, comma),
				     _mm_cmpeq_epi8(x, dq)),
			_mm_cmpeq_epi8(x, lf)));

		z = z >> skip << skip;
		q = q >> skip << skip;
		if (z) {
			unsigned end = (unsigned)__builtin_ctz(z);

			*quote = (any | (q & ((1u << end) - 1))) != 0;
			return (size_t)(p + end - s);
		}
		any |= q;
	}
}
#else
size_t csv_field_len(const char *s, bool *quote)
{
	size_t len = strlen(s);

	*quote = csv_needs_quotes(s, len);
	return len;
}
#endif

void csv_put(FILE *fp, const char *f, size_t len)
{
	if (!csv_needs_quotes(f, len)) {
		fwrite(f, 1, len, fp);
		return;
	}
	fputc('"', fp);
	for (size_t b = 0; b < len; b++) {
		if (f[b] == '"')
			fputc('"', fp);
		fputc(f[b], fp);
	}
	fputc('"', fp);
}

size_t argmax(const float *s, size_t n)
{
	size_t best = 0;

	for (size_t c = 1; c < n; c++)
		if (s[c] > s[best])
			best = c;
	return best;
}

/*
 * What the model answers for one row, as predict prints it (jsonout.h):
 * the prediction, and (probs) each class's probability.
 */
static void sample_answer(FILE *fp, unsigned task, const struct data *d,
			  const float *s, size_t nout, bool probs)
{
	char num[NUM_SHORTEST_MAX];

	if (task == MLFS_TASK_CLASSIFICATION) {
		fprintf(fp, ",%s", d->cls[argmax(s, nout)].name);
		for (size_t c = 0; probs && c < nout; c++) {
			num_shortest(s[c], 9, num);
			fprintf(fp, ",%s", num);
		}
	} else if (task == MLFS_TASK_REGRESSION) {
		num_shortest(s[0], 9, num);
		fprintf(fp, ",%s", num);
	} else {
		fprintf(fp, ",%zu", argmax(s, nout));
	}
}

/*
 * out/<file>: rows pick[0..n) (indices of d's usable rows) as the data
 * has them and what the model answers.  A sample (full) has the
 * features, the label, the prediction and the probabilities; a
 * reference the features and the prediction.
 */
static void rows_write(enum model_file file, const struct model *m,
		       struct run *run, const struct data *d,
		       const size_t *pick, size_t n, bool full)
{
	FILE *fp = fopen(out_path(file), "we");
	const char *name = model_files[file];
	const struct table *t = d->t;
	float *xs = malloc((n ? n : 1) * d->w * sizeof(*xs)), *s;
	size_t nout, len;

	if (!fp || !xs)
		fail("cannot write %s", name);
	for (size_t i = 0; i < d->nfeat; i++)
		fprintf(fp, "%s%s", i ? "," : "", d->t->names[d->featcol[i]]);
	if (full && d->label)
		fprintf(fp, ",%s", d->label);
	fprintf(fp, ",prediction");
	for (size_t c = 0; full && c < d->ncls; c++)
		fprintf(fp, ",p_%s", d->cls[c].name);
	fputc('\n', fp);
	for (size_t k = 0; k < n; k++)
		memcpy(xs + k * d->w, d->x + pick[k] * d->w,
		       d->w * sizeof(*xs));
	s = score(run, m->inst, xs, n, d->w, &nout);
	for (size_t k = 0; k < n; k++) {
		size_t r = d->rows[pick[k]];
		const char *f;

		for (size_t i = 0; i < d->nfeat; i++) {
			f = field(t, r, d->featcol[i], &len);
			fputs(i ? "," : "", fp);
			csv_put(fp, f, len);
		}
		if (full && d->label) {
			f = field(t, r, (size_t)d->labcol, &len);
			fprintf(fp, ",%.*s", (int)len, f);
		}
		sample_answer(fp, run->task, d, s + k * nout, nout, full);
		fputc('\n', fp);
	}
	free(s);
	free(xs);
	if (fclose(fp) != 0)
		fail("writing %s", name);
}

/* out/sample.csv: up to 20 held-out rows with what the model answers. */
static void sample_write(const struct model *m, struct run *run,
			 const struct data *d, bool test)
{
	size_t pick[20], n = 0;

	for (size_t i = 0; i < d->n && n < 20; i++)
		if (d->set[i] == (test ? SPLIT_TEST : SPLIT_TRAIN))
			pick[n++] = i;
	rows_write(MODEL_FILE_SAMPLE, m, run, d, pick, n, true);
}

/*
 * out/reference.csv: what drift compares live inputs with, a uniform
 * sample (reservoir, seeded by the split's seed) of up to REFERENCE_ROWS
 * training rows, with what the model answers for each.
 */
static void reference_write(const struct model *m, struct run *run,
			    const struct data *d)
{
	json_t *sp = json_object_get(run->plan, "split");
	uint64_t st = (uint64_t)json_integer_value(json_object_get(sp, "seed")) ^
		      0x7265666572656e63ULL; /* "referenc" */
	size_t *pick = malloc(REFERENCE_ROWS * sizeof(*pick)), n = 0, seen = 0;

	if (!pick)
		fail("out of memory");
	for (size_t i = 0; i < d->n; i++) {
		if (d->set[i] != SPLIT_TRAIN)
			continue;
		if (n < REFERENCE_ROWS) {
			pick[n++] = i;
		} else {
			uint64_t j = prng_next(&st) % (seen + 1);

			if (j < REFERENCE_ROWS)
				pick[j] = i;
		}
		seen++;
	}
	rows_write(MODEL_FILE_REFERENCE, m, run, d, pick, n,
		   false);
	free(pick);
}

int job_out_fd = -1;

/*
 * Before the writer's identity, while the hard limit can still be set:
 * no file the job writes grows past the daemon's max_file (a write past
 * it fails with EFBIG, SIGXFSZ ignored), not even the daemon's own copy
 * it appends to (job_out_fd), which no other process inherits.
 */
static void files_bound(json_t *plan)
{
	json_int_t max = json_integer_value(json_object_get(plan, "max_file"));
	struct rlimit lim = { (rlim_t)max, (rlim_t)max };

	if (job_out_fd >= 0)
		fcntl(job_out_fd, F_SETFD, FD_CLOEXEC);
	signal(SIGXFSZ, SIG_IGN);
	if (max > 0 && setrlimit(RLIMIT_FSIZE, &lim) < 0)
		fail("cannot bound the job's files: %s", strerror(errno));
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
	struct data d = { .labcol = -1 };
	struct sets s = { 0 };
	struct model m = { 0 };
	json_t *plan;

	/* The daemon names itself: it may be gone before main() runs,
	 * and then getppid() here would not be it. */
	daemon_pid = argc == 3 || argc == 4 ? (pid_t)atol(argv[2]) : 0;
	job_out_fd = argc == 4 ? atoi(argv[3]) : -1;
	if (daemon_pid <= 0 || (argc == 4 && job_out_fd < 4) ||
	    chdir(argv[1]) < 0) {
		fprintf(stderr, "usage: mlfs-job JOBDIR DAEMON-PID [OUT-FD] "
				"(started by mlfs)\n");
		return 2;
	}
	plan = plan_read();
	if (!plan) {
		fprintf(stderr, "mlfs-job: cannot read %s/job.json\n", argv[1]);
		return 2;
	}
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	files_bound(plan);
	identity_switch(plan, daemon_pid);
	if (json_string_value(json_object_get(plan, "kind")) &&
	    strcmp(json_string_value(json_object_get(plan, "kind")), "sync") ==
		    0)
		sync_run(plan);
	if (json_string_value(json_object_get(plan, "kind")) &&
	    strcmp(json_string_value(json_object_get(plan, "kind")),
		   "prepare") == 0)
		prep_run(plan);
	/* an import reproduces a bundle's sample by scoring it */
	if (json_string_value(json_object_get(plan, "kind")) &&
	    (strcmp(json_string_value(json_object_get(plan, "kind")),
		    "batch") == 0 ||
	     strcmp(json_string_value(json_object_get(plan, "kind")),
		    "import") == 0))
		batch_run(plan);
	fh.run = &run;
	fh.frac_span = 1;
	fh.curves = json_object();
	run_start(&run, plan, &host);
	host_progress(&fh, 0, "reading data");
	data_read(&d, &run);
	if (json_object_get(plan, "feature_sets"))
		d.t = sets_join(d.t, plan);
	d.prep_t0 = now_mono();
	columns_find(&d, plan);
	labels_read(&d, run.task);
	split_write(&d, plan);
	features_fit(&d);
	features_apply(&d);
	sets_take(&s, &d, run.task);
	model_fit(&m, &run, &host, &fh, &s, d.ncls);
	host_progress(&fh, 1, "evaluating");
	model_evaluate(&m, &run, &fh, &d, &s);
	model_write(&m, &run, &d);
	sample_write(&m, &run, &d, s.nte);
	reference_write(&m, &run, &d);
	evaluation_write(out_path(MODEL_FILE_EVALUATION), &run, m.inst,
			 s.nte ? s.xte : s.xtr, s.nte ? s.yte : s.ytr,
			 s.nte ? s.nte : s.ntr, d.w, s.nte ? "test" : "train",
			 fh.curves, s.cnames, d.ncls);
	sets_free(&s);
	progress_stopped(&fh, 1, "done");
	say("done: %s",
	    json_dumps(m.metrics, JSON_COMPACT) ? "metrics written" : "");
	run.ops->fini(m.inst);
	finish(1, NULL, m.metrics, m.trials);
	return 0;
}
