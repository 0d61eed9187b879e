/* SPDX-License-Identifier: MIT */
/*
 * Batch scoring in the job program, as the writer (plan "kind": "batch";
 * batch.h).  Descriptor 3 is the dataset version, 4 the model file.  The
 * rows are scored in chunks, each encoded by the model's feature
 * extractor and predicted with one call of the plugin, by one thread per
 * core over halves of the rows; the answers go to out/data.csv: the keep
 * columns, prediction, then p_<class> per class.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cblas.h>
#include <jansson.h>

#include "jsonout.h"
#include "job_int.h"
#include "mlcore.h"
#include "plugin.h"
#include "spec.h"
#include "strbuf.h"

#define CHUNK_ROWS 4096
#define BATCH_THREADS_MAX 16

/* The model as the job scores with it. */
struct bmodel {
	const struct mlfs_train_ops *ops;
	void *inst;
	struct fx *fx;
	unsigned task;
	json_t *hdr;
	size_t nout;
};

struct bjob {
	const struct table *t;
	struct bmodel *m;
	size_t *map;    /* fx column -> table column */
	size_t *keep;   /* keep columns, in order */
	size_t nkeep;
	_Atomic size_t done; /* rows scored, for progress */
};

struct part {
	struct bjob *b;
	size_t from, to;
	struct strbuf out;
	char why[300];
	pthread_t thread;
};

static void put_field(struct strbuf *sb, const char *f, size_t len)
{
	if (!memchr(f, ',', len) && !memchr(f, '"', len) &&
	    !memchr(f, '\n', len) && !memchr(f, '\r', len)) {
		sb_append(sb, f, len);
		return;
	}
	sb_append(sb, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		if (f[i] == '"')
			sb_append(sb, "\"", 1);
		sb_append(sb, f + i, 1);
	}
	sb_append(sb, "\"", 1);
}

static const char *cell(const struct table *t, size_t r, size_t c,
			size_t *len)
{
	*len = t->len[r * t->ncols + c];
	return t->data + t->off[r * t->ncols + c];
}

/* The model file on descriptor 4, loaded with the plan's plugin. */
static void model_load(json_t *plan, struct bmodel *m,
		       const struct mlfs_host *host)
{
	static struct plugin pl;
	const char *path = json_string_value(json_object_get(plan, "plugin"));
	const char *task;
	struct mlfs_param *ps = NULL;
	double *lists = NULL;
	const void *w;
	size_t wlen, np;
	struct stat st;
	char msg[1024];
	char *buf;

	if (fstat(4, &st) < 0 || st.st_size <= 0)
		fail("no model descriptor");
	buf = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, 4, 0);
	if (buf == MAP_FAILED)
		fail("cannot map the model: %s", strerror(errno));
	if (model_decode(buf, (size_t)st.st_size, &m->hdr, &w, &wlen, msg,
			 sizeof(msg)) < 0)
		fail("model: %s", msg);
	if (plugin_load_file(path, &pl, msg, sizeof(msg)) < 0)
		fail("plugin %s: %s", path, msg);
	m->ops = pl.desc->ops;
	task = json_string_value(json_object_get(m->hdr, "task"));
	m->task = !task ? 0
		  : strcmp(task, "classification") == 0 ? MLFS_TASK_CLASSIFICATION
		  : strcmp(task, "regression") == 0     ? MLFS_TASK_REGRESSION
							: MLFS_TASK_CLUSTERING;
	if (fx_from_json(json_object_get(m->hdr, "features"), &m->fx) < 0)
		fail("model: bad features");
	if (spec_params(json_object_get(m->hdr, "params"), &ps, &np, &lists,
			msg, sizeof(msg)) < 0 ||
	    m->ops->init(host, m->task, ps, np, &m->inst, msg, sizeof(msg)) < 0)
		fail("model: %s", msg);
	if (m->ops->load(m->inst, w, wlen) < 0)
		fail("model: the plugin refused its weights");
	m->nout = m->ops->outputs(m->inst);
	free(ps);
	free(lists);
}

/* Score rows [from, to) of b into p->out; false with p->why. */
static bool score_part(struct part *p)
{
	struct bjob *b = p->b;
	const struct table *t = b->t;
	const struct bmodel *m = b->m;
	json_t *classes = json_object_get(m->hdr, "classes");
	size_t w = m->fx->width, nc = t->ncols;
	float *x = malloc(CHUNK_ROWS * (w ? w : 1) * sizeof(*x));
	float *y = malloc(CHUNK_ROWS * (m->nout ? m->nout : 1) * sizeof(*y));
	const char **fields = malloc((nc + 1) * sizeof(*fields));
	size_t *flen = malloc((nc + 1) * sizeof(*flen));
	char num[NUM_SHORTEST_MAX];
	bool ok = x && y && fields && flen;

	if (!ok)
		snprintf(p->why, sizeof(p->why), "out of memory");
	for (size_t r0 = p->from; ok && r0 < p->to; r0 += CHUNK_ROWS) {
		size_t n = p->to - r0 < CHUNK_ROWS ? p->to - r0 : CHUNK_ROWS;
		struct mlfs_matrix in = { x, n, w, w };
		struct mlfs_matrix sc = { y, n, m->nout, m->nout };

		for (size_t i = 0; ok && i < n; i++) {
			char why[256];

			for (size_t c = 0; c < nc; c++)
				fields[c] = cell(t, r0 + i, c, &flen[c]);
			memset(x + i * w, 0, w * sizeof(*x));
			if (fx_check_row(m->fx, fields, flen, nc, b->map, why,
					 sizeof(why)) < 0) {
				snprintf(p->why, sizeof(p->why),
					 "row %zu: %s", r0 + i + 1, why);
				ok = false;
				break;
			}
			fx_transform_row(m->fx, fields, flen, nc, b->map,
					 x + i * w);
		}
		if (ok && m->ops->predict(m->inst, &in, &sc) < 0) {
			snprintf(p->why, sizeof(p->why),
				 "the model failed on rows %zu to %zu", r0 + 1,
				 r0 + n);
			ok = false;
		}
		for (size_t i = 0; ok && i < n; i++) {
			const float *o = y + i * m->nout;
			size_t best = 0;

			for (size_t k = 0; k < b->nkeep; k++) {
				size_t len;
				const char *f = cell(t, r0 + i, b->keep[k], &len);

				put_field(&p->out, f, len);
				sb_append(&p->out, ",", 1);
			}
			for (size_t c = 1; c < m->nout; c++)
				if (o[c] > o[best])
					best = c;
			if (m->task == MLFS_TASK_CLASSIFICATION) {
				const char *cl = json_string_value(
					json_array_get(classes, best));

				put_field(&p->out, cl ? cl : "", cl ? strlen(cl) : 0);
				for (size_t c = 0; c < m->nout; c++) {
					sb_append(&p->out, ",", 1);
					sb_append(&p->out, num,
						  num_shortest(o[c], 9, num));
				}
			} else if (m->task == MLFS_TASK_REGRESSION) {
				sb_append(&p->out, num,
					  num_shortest(o[0], 9, num));
			} else {
				sb_printf(&p->out, "%zu", best);
			}
			sb_append(&p->out, "\n", 1);
		}
		if (ok && p->out.err) {
			snprintf(p->why, sizeof(p->why), "out of memory");
			ok = false;
		}
		atomic_fetch_add(&b->done, n);
		if (cancelled) {
			snprintf(p->why, sizeof(p->why), "cancelled");
			ok = false;
		}
	}
	free(x);
	free(y);
	free(fields);
	free(flen);
	return ok;
}

static void *part_main(void *arg)
{
	struct part *p = arg;

	openblas_set_num_threads(1); /* the parts share the cores */
	return score_part(p) ? NULL : p;
}

void batch_run(json_t *plan)
{
	struct mlfs_host host = { .size = sizeof(host), .log = host_log,
				  .progress = host_progress,
				  .metric = host_metric,
				  .cancelled = host_cancelled, .threads = 1,
				  .stopped = host_stopped };
	struct hctx ph = { .frac_span = 1 };
	json_t *ds = json_object_get(plan, "dataset");
	json_t *mo = json_object_get(plan, "model");
	json_t *keep = json_object_get(plan, "keep");
	struct part parts[BATCH_THREADS_MAX];
	struct problem pb = { 0 };
	struct bmodel m = { 0 };
	struct bjob b = { 0 };
	struct table *t = NULL;
	double t0 = now_mono();
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	size_t nthreads, i;
	const char *text;
	struct stat st;
	json_t *c;
	FILE *fp;

	host.ctx = &ph;
	say("job %s: batch scoring of datasets/%s@%d with models/%s@%d into "
	    "datasets/%s",
	    json_string_value(json_object_get(plan, "name")),
	    json_string_value(json_object_get(ds, "name")),
	    (int)json_integer_value(json_object_get(ds, "version")),
	    json_string_value(json_object_get(mo, "name")),
	    (int)json_integer_value(json_object_get(mo, "version")),
	    json_string_value(json_object_get(plan, "output")));
	host_progress(&ph, 0, "reading data");
	model_load(plan, &m, &host);
	if (fstat(3, &st) < 0)
		fail("no data descriptor: %s", strerror(errno));
	text = st.st_size ? mmap(NULL, (size_t)st.st_size, PROT_READ,
				 MAP_PRIVATE, 3, 0)
			  : "";
	if (text == MAP_FAILED)
		fail("cannot map the data: %s", strerror(errno));
	if (table_parse(text, (size_t)st.st_size, &t, &pb) < 0)
		fail("data: %u:%u: %s", pb.line, pb.col, pb.msg);
	say("parsed %zu rows x %zu columns in %.3f s", t->nrows, t->ncols,
	    now_mono() - t0);
	b.t = t;
	b.m = &m;
	b.map = calloc(m.fx->ncols + 1, sizeof(*b.map));
	b.nkeep = json_array_size(keep);
	b.keep = calloc(b.nkeep + 1, sizeof(*b.keep));
	if (!b.map || !b.keep)
		fail("out of memory");
	for (i = 0; i < m.fx->ncols; i++) {
		long col = table_col(t, m.fx->cols[i].name);

		if (col < 0)
			fail("no column \"%s\" in the data",
			     m.fx->cols[i].name);
		b.map[i] = (size_t)col;
	}
	json_array_foreach(keep, i, c) {
		long col = table_col(t, json_string_value(c));

		if (col < 0)
			fail("no column \"%s\" in the data",
			     json_string_value(c));
		b.keep[i] = (size_t)col;
	}
	/* a thread per core, each over its part of the rows */
	nthreads = ncpu > 0 ? (size_t)ncpu : 1;
	if (nthreads > BATCH_THREADS_MAX)
		nthreads = BATCH_THREADS_MAX;
	if (nthreads > t->nrows / CHUNK_ROWS + 1)
		nthreads = t->nrows / CHUNK_ROWS + 1;
	host_progress(&ph, 0.1, "scoring");
	for (i = 0; i < nthreads; i++) {
		parts[i] = (struct part){ .b = &b,
					  .from = t->nrows * i / nthreads,
					  .to = t->nrows * (i + 1) / nthreads };
		if (pthread_create(&parts[i].thread, NULL, part_main,
				   &parts[i]) != 0)
			fail("cannot start a thread");
	}
	for (i = 0; i < nthreads; i++) {
		void *bad;

		pthread_join(parts[i].thread, &bad);
		if (bad)
			fail("%s", ((struct part *)bad)->why);
	}
	host_progress(&ph, 0.9, "writing the answers");
	if (mkdir("out", 0755) < 0 && errno != EEXIST)
		fail("cannot make out/: %s", strerror(errno));
	fp = fopen("out/data.csv", "we");
	if (!fp)
		fail("cannot write out/data.csv: %s", strerror(errno));
	/* the header: keep columns, prediction, p_<class> */
	json_array_foreach(keep, i, c) {
		fputs(json_string_value(c), fp);
		fputc(',', fp);
	}
	fputs("prediction", fp);
	if (m.task == MLFS_TASK_CLASSIFICATION)
		json_array_foreach(json_object_get(m.hdr, "classes"), i, c)
			fprintf(fp, ",p_%s", json_string_value(c));
	fputc('\n', fp);
	for (i = 0; i < nthreads; i++)
		fwrite(parts[i].out.buf ? parts[i].out.buf : "", 1,
		       parts[i].out.len, fp);
	if (fflush(fp) != 0 || fsync(fileno(fp)) != 0 || fclose(fp) != 0)
		fail("writing out/data.csv: %s", strerror(errno));
	say("scored %zu rows in %.3f s (%zu threads)", t->nrows,
	    now_mono() - t0, nthreads);
	progress_stopped(&ph, 1, "done");
	finish(1, NULL, NULL, NULL);
}
