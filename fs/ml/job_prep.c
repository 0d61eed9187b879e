/* SPDX-License-Identifier: MIT */
/*
 * Inside the job program: a dataset's prepare steps (prep.c queued
 * them).  The dataset version on descriptor 3 becomes a struct
 * mlfs_table (text as the CSV has it, numbers for numeric columns, types
 * and roles from the schema); each step's prep plugin, loaded here as
 * any plugin is, turns it into the next; the last is written to
 * out/data.csv for the daemon to publish.  A step's seed is the spec's
 * plus the step's place, so two steps of one kind draw apart.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "anonkey.h"
#include "csv.h"
#include "job_int.h"
#include "jsonout.h"
#include "mlcore.h"
#include "mlfs_plugin.h"
#include "plugin.h"
#include "spec.h"

static int col_type(const char *type)
{
	if (!type)
		return MLFS_COL_TEXT;
	return strcmp(type, "numeric") == 0 ? MLFS_COL_NUMERIC
	       : strcmp(type, "time") == 0  ? MLFS_COL_TIME
	       : strcmp(type, "text") == 0  ? MLFS_COL_TEXT
					    : MLFS_COL_CATEGORICAL;
}

static unsigned col_roles(const char *role, bool label)
{
	unsigned r = label ? MLFS_ROLE_LABEL : 0;

	if (role && strcmp(role, "label") == 0)
		r |= MLFS_ROLE_LABEL;
	if (role && strcmp(role, "id") == 0)
		r |= MLFS_ROLE_ID;
	if (role && strcmp(role, "pii") == 0)
		r |= MLFS_ROLE_PII;
	if (role && strcmp(role, "time") == 0)
		r |= MLFS_ROLE_TIME;
	return r;
}

/*
 * The input table and the one block its cells' text lives in: one
 * allocation, not one a cell (a strndup a cell was a third of reading a
 * 200,000-row table, most of it malloc and fresh pages).
 */
struct loaded {
	struct mlfs_table t;
	char *block;
};

/* The dataset version as a table (ours: table_release frees it). */
static struct mlfs_table *table_load(json_t *schema)
{
	struct problem pb = { 0 };
	struct table *t;
	struct loaded *ld = calloc(1, sizeof(*ld));
	struct mlfs_table *mt;
	const char *label = json_string_value(json_object_get(schema, "label"));
	const char *text;
	size_t bytes = 0, cells;
	char *at;
	struct stat st;

	if (!ld || fstat(3, &st) < 0)
		fail("no data descriptor");
	mt = &ld->t;
	text = st.st_size ? mmap(NULL, (size_t)st.st_size, PROT_READ,
				 MAP_PRIVATE, 3, 0)
			  : "";
	if (text == MAP_FAILED)
		fail("cannot map the data: %s", strerror(errno));
	if (table_parse(text, (size_t)st.st_size, &t, &pb) < 0)
		fail("data: %u:%u: %s", pb.line, pb.col, pb.msg);
	cells = t->nrows * t->ncols;
	for (size_t i = 0; i < cells; i++)
		bytes += (size_t)t->len[i] + 1;
	ld->block = malloc(bytes ? bytes : 1);
	if (!ld->block)
		fail("out of memory");
	at = ld->block;
	mt->rows = t->nrows;
	mt->cols = t->ncols;
	mt->col = calloc(t->ncols ? t->ncols : 1, sizeof(*mt->col));
	if (!mt->col)
		fail("out of memory");
	for (size_t c = 0; c < t->ncols; c++) {
		struct mlfs_column *col = &mt->col[c];
		json_t *sc = NULL, *v;
		size_t i;

		json_array_foreach(json_object_get(schema, "columns"), i, v)
			if (strcmp(json_string_value(json_object_get(v, "name")),
				   t->names[c]) == 0)
				sc = v;
		col->name = strdup(t->names[c]);
		col->type = col_type(
			json_string_value(json_object_get(sc, "type")));
		col->roles = col_roles(
			json_string_value(json_object_get(sc, "role")),
			label && strcmp(label, t->names[c]) == 0);
		col->text = calloc(t->nrows ? t->nrows : 1, sizeof(char *));
		if (col->type == MLFS_COL_NUMERIC)
			col->num = malloc((t->nrows ? t->nrows : 1) *
					  sizeof(double));
		if (!col->name || !col->text ||
		    (col->type == MLFS_COL_NUMERIC && !col->num))
			fail("out of memory");
		for (size_t r = 0; r < t->nrows; r++) {
			const char *f = t->data + t->off[r * t->ncols + c];
			size_t len = t->len[r * t->ncols + c];

			if (col->num && !table_num(t, r, c, &col->num[r]))
				col->num[r] = NAN;
			if (csv_is_missing(f, len))
				continue;
			memcpy(at, f, len);
			at[len] = '\0';
			col->text[r] = at;
			at += len + 1;
		}
	}
	table_free(t);
	return mt;
}

static void table_release(struct mlfs_table *t)
{
	struct loaded *ld = (struct loaded *)t;

	for (size_t c = 0; t && c < t->cols; c++) {
		free(t->col[c].text);
		free(t->col[c].num);
		free((char *)t->col[c].name);
	}
	if (t) {
		free(t->col);
		free(ld->block);
	}
	free(ld);
}

/* out/data.csv through a buffer of whole rows: stdio's per-field calls
 * cost as much as the bytes */
struct csv_out {
	FILE *fp;
	size_t n;
	char buf[1 << 16];
};

static void out_flush(struct csv_out *o)
{
	if (o->n && fwrite(o->buf, 1, o->n, o->fp) != o->n)
		fail("writing out/data.csv: %s", strerror(errno));
	o->n = 0;
}

static void out_put(struct csv_out *o, const char *s, size_t len)
{
	if (len > sizeof(o->buf) - o->n) {
		out_flush(o);
		if (len > sizeof(o->buf)) {
			if (fwrite(s, 1, len, o->fp) != len)
				fail("writing out/data.csv: %s",
				     strerror(errno));
			return;
		}
	}
	memcpy(o->buf + o->n, s, len);
	o->n += len;
}

/* One CSV field, quoted as csv_put quotes it. */
static void out_field(struct csv_out *o, const char *f, size_t len)
{
	size_t from = 0;

	if (!memchr(f, ',', len) && !memchr(f, '"', len) &&
	    !memchr(f, '\n', len)) {
		out_put(o, f, len);
		return;
	}
	out_put(o, "\"", 1);
	for (size_t b = 0; b < len; b++) {
		if (f[b] != '"')
			continue;
		out_put(o, f + from, b + 1 - from); /* through the quote */
		out_put(o, "\"", 1);
		from = b + 1;
	}
	out_put(o, f + from, len - from);
	out_put(o, "\"", 1);
}

/* The table as CSV: a header, then each row; numbers a step set (with
 * no text) printed as "%.17g" prints them, to read back the same. */
static void table_write(const struct mlfs_table *t)
{
	struct csv_out *o = malloc(sizeof(*o));
	char num[NUM_SHORTEST_MAX];

	if (!o)
		fail("out of memory");
	o->n = 0;
	if (mkdir(MODEL_OUT, 0755) < 0 && errno != EEXIST)
		fail("cannot make %s: %s", MODEL_OUT, strerror(errno));
	o->fp = fopen(MODEL_OUT "/data.csv", "we");
	if (!o->fp)
		fail("cannot write out/data.csv: %s", strerror(errno));
	for (size_t c = 0; c < t->cols; c++) {
		if (c)
			out_put(o, ",", 1);
		out_field(o, t->col[c].name, strlen(t->col[c].name));
	}
	out_put(o, "\n", 1);
	for (size_t r = 0; r < t->rows; r++) {
		for (size_t c = 0; c < t->cols; c++) {
			const struct mlfs_column *col = &t->col[c];
			const char *v = col->text ? col->text[r] : NULL;

			if (c)
				out_put(o, ",", 1);
			if (v)
				out_field(o, v, strlen(v));
			else if (col->num && isfinite(col->num[r]))
				out_put(o, num, num_g17(col->num[r], num));
		}
		out_put(o, "\n", 1);
	}
	out_flush(o);
	if (fclose(o->fp) != 0)
		fail("writing out/data.csv: %s", strerror(errno));
	free(o);
}

/*
 * The owner's anonymisation key, read from descriptor 4 once, kept only
 * as HMAC-SHA-256's two keyed states (anon_hmac_new): two compressions a
 * short value.  OpenSSL 3's one-shot HMAC() fetches the digest, builds a
 * MAC context and hashes the key's two blocks again on every call, 3.8 us
 * a value on the machine of doc/performance.md: 15 million e-mails took a
 * minute.  Any thread may hash: each call copies the states.
 */
static struct anon_hmac *anon_states;

static int anon_hash(void *ctx, const void *data, size_t len,
		     unsigned char out[32])
{
	(void)ctx;
	if (!anon_states)
		return -ENOKEY;
	return anon_hmac(anon_states, data, len, out);
}

static void anon_read(json_t *plan)
{
	unsigned char key[ANON_KEY_LEN];
	ssize_t n;

	if (!json_is_true(json_object_get(plan, "anon_key")))
		return;
	n = read(4, key, sizeof(key));
	close(4);
	if (n != (ssize_t)sizeof(key))
		fail("cannot read the anonymisation key");
	anon_states = anon_hmac_new(key);
	explicit_bzero(key, sizeof(key));
	if (!anon_states)
		fail("cannot set up the anonymisation hash");
}

static void anon_release(void)
{
	anon_hmac_free(anon_states);
	anon_states = NULL;
}

void prep_run(json_t *plan)
{
	json_t *steps = json_object_get(plan, "steps"), *st;
	uint64_t seed = (uint64_t)json_integer_value(json_object_get(plan,
								      "seed"));
	struct hctx hc = { 0 };
	struct mlfs_host host = {
		.size = sizeof(host),
		.ctx = &hc,
		.log = host_log,
		.progress = host_progress,
		.metric = host_metric,
		.cancelled = host_cancelled,
		.threads = 1,
		.anon_hash = anon_hash,
	};
	struct run run = { .plan = plan };
	const struct mlfs_prep_ops *prev = NULL;
	struct mlfs_table *cur;
	size_t i, nsteps = json_array_size(steps);
	double tw;

	run.t0 = now_mono();
	anon_read(plan);
	hc.run = &run;
	hc.frac_span = 1;
	host_progress(&hc, 0, "reading data");
	cur = table_load(json_object_get(plan, "schema"));
	say("read %zu rows x %zu columns in %.3f s", cur->rows, cur->cols,
	    now_mono() - run.t0);
	json_array_foreach(steps, i, st) {
		const char *name = json_string_value(json_object_get(st, "plugin"));
		static struct plugin pl[64];
		const struct mlfs_prep_ops *ops;
		struct mlfs_table *out = NULL;
		struct mlfs_param *ps = NULL;
		double *lists = NULL, t0 = now_mono();
		char msg[1024] = "", line[300];
		size_t n = 0;
		int rc;

		if (cancelled)
			fail("cancelled");
		snprintf(line, sizeof(line), "step %zu/%zu: %s", i + 1, nsteps,
			 name);
		host_progress(&hc, (double)i / (double)(nsteps ? nsteps : 1),
			      line);
		if (plugin_load_file(json_string_value(json_object_get(
					     st, "path")),
				     &pl[i], msg, sizeof(msg)) < 0)
			fail("step %zu (%s): %s", i + 1, name, msg);
		ops = pl[i].desc->ops;
		rc = spec_params(json_object_get(st, "params"), &ps, &n, &lists,
				 msg, sizeof(msg));
		if (rc == 0)
			rc = ops->run(&host, ps, n, seed + i, cur, &out, msg,
				      sizeof(msg));
		free(ps);
		free(lists);
		if (rc < 0 || !out)
			fail("step %zu (%s): %s", i + 1, name,
			     msg[0] ? msg : strerror(rc < 0 ? -rc : EINVAL));
		say("step %zu (%s): %zu rows in, %zu out, in %.3f s", i + 1,
		    name, cur->rows, out->rows, now_mono() - t0);
		if (prev)
			prev->out_free(cur);
		else
			table_release(cur);
		cur = out;
		prev = ops;
	}
	host_progress(&hc, 1, "writing");
	tw = now_mono();
	table_write(cur);
	say("done: %zu rows x %zu columns, written in %.3f s", cur->rows,
	    cur->cols, now_mono() - tw);
	anon_release();
	finish(1, NULL, NULL, NULL);
}
