/* SPDX-License-Identifier: MIT */
/*
 * Batch scoring in the job program, as the writer (plan "kind": "batch";
 * batch.h).  Descriptor 3 is the dataset version, 4 the model file.  The
 * records are read where they are (mapped), by one thread per core over
 * its part of them, in chunks: each chunk's rows tokenized, encoded by
 * the model's feature extractor and predicted with one call of the
 * plugin.  No table of the whole data is built.  The answers go to
 * out/data.csv: the keep columns, prediction, then p_<class> per class.
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

#include "csv.h"
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
	struct bmodel *m;
	size_t ncols;   /* fields of a record */
	size_t *map;    /* fx column -> field */
	size_t *keep;   /* keep fields, in order */
	size_t nkeep;
	const char *body; /* the records after the header */
	bool checked;     /* every value the model reads was checked (by
			   * the dataset's schema) as its extractor wants */
};

/* The records of a part of the data, scored by one thread. */
struct part {
	struct bjob *b;
	const char *from, *to; /* whole records */
	uint64_t rows;
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

/*
 * The next record of t into fields (ncols of them; quoted ones with ""
 * pairs unescaped into arena, which the caller empties per record, and
 * which holds as many bytes as the records).
 * 1 with a record, 0 at the end, -1 with why.
 */
struct arena {
	char *buf;
	size_t len, cap;
};

static int next_record(struct csv_tok *t, size_t ncols, const char **fields,
		       size_t *flen, struct arena *arena, char *why,
		       size_t whylen)
{
	size_t n = 0;

	if (t->p >= t->end)
		return 0;
	for (;;) {
		enum csv_term term;
		struct csv_field f;
		const char *fp;
		size_t fl;

		if (!csv_field_plain(t, &fp, &fl, &term)) {
			if (csv_field_next(t, &f) < 0) {
				snprintf(why, whylen, "%.200s", t->pb->msg);
				return -1;
			}
			fp = f.p;
			fl = f.len;
			term = f.term;
			if (f.esc) {
				size_t at = arena->len;

				/* room first: fields point into the arena */
				if (arena->len + fl > arena->cap) {
					snprintf(why, whylen, "a quoted field "
							      "too long");
					return -1;
				}
				arena->len += csv_unescape(arena->buf + at, fp,
							   fl);
				fp = arena->buf + at;
				fl = arena->len - at;
			}
		}
		if (n < ncols) {
			fields[n] = fp;
			flen[n] = fl;
		}
		n++;
		if (term != CSV_TERM_COMMA)
			break;
	}
	if (n != ncols) {
		snprintf(why, whylen, "%zu fields, the header has %zu", n,
			 ncols);
		return -1;
	}
	return 1;
}

/* The rows of records before p (a failing row's number). */
static uint64_t rows_before(const struct bjob *b, const char *p)
{
	uint64_t n = 0;

	for (const char *q = b->body; q < p; q++)
		n += *q == '\n';
	return n;
}

/* The field named name among the header's n names; fails the job. */
static size_t column(char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	fail("no column \"%s\" in the data", name);
}

/* The model file on descriptor 4, loaded with the plan's plugin. */
static void model_load(json_t *plan, struct bmodel *m,
		       const struct mlfs_host *host)
{
	static struct plugin pl;
	const char *path = json_string_value(json_object_get(plan, "plugin"));
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
	m->task = model_task(json_string_value(json_object_get(m->hdr, "task")));
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

/* Score the records of part p into p->out; false with p->why. */
static bool score_part(struct part *p)
{
	struct bjob *b = p->b;
	const struct bmodel *m = b->m;
	json_t *classes = json_object_get(m->hdr, "classes");
	size_t w = m->fx->width, nc = b->ncols;
	struct problem pb = { 0 };
	struct csv_tok t = { .p = p->from, .end = p->to,
			     .line_start = p->from, .line = 1,
			     .max_field = SIZE_MAX, .pb = &pb };
	float *x = malloc(CHUNK_ROWS * (w ? w : 1) * sizeof(*x));
	float *y = malloc(CHUNK_ROWS * (m->nout ? m->nout : 1) * sizeof(*y));
	const char **fields = malloc((nc + 1) * sizeof(*fields));
	size_t *flen = malloc((nc + 1) * sizeof(*flen));
	size_t *pre = malloc((CHUNK_ROWS + 1) * sizeof(*pre));
	struct strbuf keep = { .max = (size_t)1 << 40 };
	struct arena arena = { malloc((size_t)(p->to - p->from) + 1), 0,
			       (size_t)(p->to - p->from) + 1 };
	char num[NUM_SHORTEST_MAX];
	bool ok = x && y && fields && flen && pre && arena.buf;
	bool more = true;

	if (!ok)
		snprintf(p->why, sizeof(p->why), "out of memory");
	while (ok && more) {
		struct mlfs_matrix in = { x, 0, w, w };
		struct mlfs_matrix sc = { y, 0, m->nout, m->nout };
		size_t n = 0;

		keep.len = 0;
		while (ok && n < CHUNK_ROWS) {
			const char *at = t.p;
			char why[256];
			int rc;

			arena.len = 0;
			rc = next_record(&t, nc, fields, flen, &arena, why,
					 sizeof(why));
			if (rc == 0) {
				more = false;
				break;
			}
			memset(x + n * w, 0, w * sizeof(*x));
			if (rc < 0 ||
			    (!b->checked &&
			     fx_check_row(m->fx, fields, flen, nc, b->map, why,
					  sizeof(why)) < 0)) {
				snprintf(p->why, sizeof(p->why), "row %llu: %s",
					 (unsigned long long)rows_before(b, at) +
						 1,
					 why);
				ok = false;
				break;
			}
			fx_transform_row(m->fx, fields, flen, nc, b->map,
					 x + n * w);
			pre[n] = keep.len;
			for (size_t k = 0; k < b->nkeep; k++) {
				put_field(&keep, fields[b->keep[k]],
					  flen[b->keep[k]]);
				sb_append(&keep, ",", 1);
			}
			n++;
		}
		pre[n] = keep.len;
		if (!ok || n == 0)
			break;
		in.rows = sc.rows = n;
		if (m->ops->predict(m->inst, &in, &sc) < 0) {
			snprintf(p->why, sizeof(p->why),
				 "the model failed on %zu rows", n);
			ok = false;
			break;
		}
		for (size_t i = 0; i < n; i++) {
			const float *o = y + i * m->nout;
			size_t best = 0;

			sb_append(&p->out, keep.buf ? keep.buf + pre[i] : "",
				  pre[i + 1] - pre[i]);
			for (size_t c = 1; c < m->nout; c++)
				if (o[c] > o[best])
					best = c;
			if (m->task == MLFS_TASK_CLASSIFICATION) {
				const char *cl = json_string_value(
					json_array_get(classes, best));

				put_field(&p->out, cl ? cl : "",
					  cl ? strlen(cl) : 0);
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
		p->rows += n;
		if (p->out.err || keep.err) {
			snprintf(p->why, sizeof(p->why), "out of memory");
			ok = false;
		}
		if (cancelled) {
			snprintf(p->why, sizeof(p->why), "cancelled");
			ok = false;
		}
	}
	sb_free(&keep);
	free(arena.buf);
	free(pre);
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

/*
 * Did the dataset's schema check each value the model reads as its
 * extractor would (a number in a numeric column, a time in a time one)?
 * Then no row needs fx_check_row, which would parse each number twice.
 */
static bool schema_checked(const struct fx *fx, json_t *schema)
{
	for (size_t i = 0; i < fx->ncols; i++) {
		const struct fx_column *c = &fx->cols[i];
		const char *want = c->kind == FX_TIME ? "time" : "numeric";
		bool ok = c->kind == FX_ONEHOT;
		size_t k;
		json_t *col;

		json_array_foreach(json_object_get(schema, "columns"), k, col) {
			const char *type = json_string_value(
				json_object_get(col, "type"));

			if (!ok && strcmp(json_string_value(json_object_get(
					   col, "name")),
				   c->name) == 0 &&
			    type && strcmp(type, want) == 0)
				ok = true;
		}
		if (!ok)
			return false;
	}
	return true;
}

/*
 * The header of the data (text, len bytes): where the model's inputs and
 * the keep columns are among its fields, and where the records start.
 */
static void header_read(struct bjob *b, const char *text, size_t len,
			struct bmodel *m, json_t *keep)
{
	struct problem pb = { 0 };
	struct csv_tok t = { .p = text, .end = text + len, .line_start = text,
			     .line = 1, .max_field = SIZE_MAX, .pb = &pb };
	struct csv_field f;
	char **names = NULL;
	size_t n = 0, i;
	json_t *c;

	do {
		char **nn;

		if (csv_field_next(&t, &f) < 0)
			fail("data: header: %s", pb.msg);
		nn = realloc(names, (n + 1) * sizeof(*nn));
		if (!nn)
			fail("out of memory");
		names = nn;
		names[n] = malloc(f.len + 1);
		if (!names[n])
			fail("out of memory");
		names[n][f.esc ? csv_unescape(names[n], f.p, f.len) : f.len] =
			'\0';
		if (!f.esc)
			memcpy(names[n], f.p, f.len);
		n++;
	} while (f.term == CSV_TERM_COMMA);
	b->ncols = n;
	b->body = t.p;
	b->m = m;
	b->map = calloc(m->fx->ncols + 1, sizeof(*b->map));
	b->nkeep = json_array_size(keep);
	b->keep = calloc(b->nkeep + 1, sizeof(*b->keep));
	if (!b->map || !b->keep)
		fail("out of memory");
	for (i = 0; i < m->fx->ncols; i++) {
		size_t k = column(names, n, m->fx->cols[i].name);

		b->map[i] = k;
	}
	json_array_foreach(keep, i, c)
		b->keep[i] = column(names, n, json_string_value(c));
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
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
	struct bmodel m = { 0 };
	struct bjob b = { 0 };
	double t0 = now_mono();
	uint64_t rows = 0;
	const char *end;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	size_t nthreads, i;
	const char *text;
	struct stat st;
	json_t *c;
	FILE *fp;

	host.ctx = &ph;
	if (strcmp(json_string_value(json_object_get(plan, "kind")), "import") ==
	    0)
		say("job %s: scoring the sample of a bundle of models/%s@%d "
		    "with train plugin %s",
		    json_string_value(json_object_get(plan, "name")),
		    json_string_value(json_object_get(mo, "name")),
		    (int)json_integer_value(json_object_get(mo, "version")),
		    json_string_value(json_object_get(plan, "plugin")));
	else
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
	header_read(&b, text, (size_t)st.st_size, &m, keep);
	b.checked = schema_checked(m.fx, json_object_get(plan, "schema"));
	/*
	 * A thread per core, each over its part of the records, cut at a
	 * newline: the data was validated, and without a quote in it no
	 * newline is inside a field (with one, a single part).
	 */
	nthreads = ncpu > 0 ? (size_t)ncpu : 1;
	if (nthreads > BATCH_THREADS_MAX)
		nthreads = BATCH_THREADS_MAX;
	end = text + st.st_size;
	if ((size_t)(end - b.body) < (size_t)nthreads * 65536 ||
	    memchr(b.body, '"', (size_t)(end - b.body)))
		nthreads = 1;
	host_progress(&ph, 0.1, "scoring");
	for (i = 0; i < nthreads; i++) {
		const char *from = i ? parts[i - 1].to : b.body;
		const char *to = b.body + (size_t)(end - b.body) * (i + 1) /
						  nthreads;

		if (i + 1 < nthreads) {
			to = memchr(to, '\n', (size_t)(end - to));
			to = to ? to + 1 : end;
		} else {
			to = end;
		}
		if (to < from)
			to = from;
		parts[i] = (struct part){ .b = &b, .from = from, .to = to,
					  .out.max = (size_t)1 << 40 };
		if (pthread_create(&parts[i].thread, NULL, part_main,
				   &parts[i]) != 0)
			fail("cannot start a thread");
	}
	for (i = 0; i < nthreads; i++) {
		void *bad;

		pthread_join(parts[i].thread, &bad);
		if (bad)
			fail("%s", ((struct part *)bad)->why);
		rows += parts[i].rows;
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
	say("scored %llu rows in %.3f s (%zu threads)",
	    (unsigned long long)rows, now_mono() - t0, nthreads);
	progress_stopped(&ph, 1, "done");
	finish(1, NULL, NULL, NULL);
}
