/* SPDX-License-Identifier: MIT */
/*
 * Inside the job program: a dataset's prepare steps (prep.c queued
 * them).  The dataset version on descriptor 3 becomes a struct
 * mlfs_table (text as the CSV has it, numbers for numeric columns, types
 * and roles from the schema); each step's prep plugin, loaded here as
 * any plugin is, turns it into the next; the last is written to
 * out/data.csv for the daemon to publish.  A step's seed is the spec's
 * plus the step's place, so two steps of one kind draw apart.
 *
 * When every step says it goes row by row (by_rows, ABI 1.4), the table
 * is never whole: the CSV is cut into parts of about PREP_PART bytes at
 * record boundaries, and the job's threads each take the next part,
 * parse it, run the steps on it and write its rows in their turn.  The
 * output is the same bytes; a part that fails sends the job back to the
 * whole table, so that errors read as they always did.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
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
#include "store.h"

/* Bytes of CSV a part: a few MB, many parts for the threads to share. */
#define PREP_PART ((size_t)4 << 20)
#define PREP_THREADS_MAX 64

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
 * 200,000-row table, most of it malloc and fresh pages).  A part's
 * columns borrow their names from the header's (names_borrowed).
 */
struct loaded {
	struct mlfs_table t;
	char *block[PREP_THREADS_MAX]; /* a part's cells each, when in parts */
	bool names_borrowed;
};

/* Column name's type and roles from the schema, and a copy of name. */
static void col_meta(json_t *schema, const char *name, struct mlfs_column *col)
{
	const char *label = json_string_value(json_object_get(schema, "label"));
	json_t *sc = NULL, *v;
	size_t i;

	json_array_foreach(json_object_get(schema, "columns"), i, v)
		if (strcmp(json_string_value(json_object_get(v, "name")),
			   name) == 0)
			sc = v;
	col->name = strdup(name);
	col->type = col_type(json_string_value(json_object_get(sc, "type")));
	col->roles = col_roles(json_string_value(json_object_get(sc, "role")),
			       label && strcmp(label, name) == 0);
	if (!col->name)
		fail("out of memory");
}

/*
 * A table of rows rows, its columns named by names[] (a copy each, their
 * type and roles from the schema) or as meta[] describes (names
 * borrowed), with room for every cell and none set: ours, table_release
 * frees it.
 */
static struct mlfs_table *table_new(size_t rows, size_t cols,
				    json_t *schema, char *const *names,
				    const struct mlfs_column *meta)
{
	struct loaded *ld = calloc(1, sizeof(*ld));
	struct mlfs_table *mt;

	if (!ld)
		fail("out of memory");
	mt = &ld->t;
	ld->names_borrowed = meta != NULL;
	mt->rows = rows;
	mt->cols = cols;
	mt->col = calloc(cols ? cols : 1, sizeof(*mt->col));
	if (!mt->col)
		fail("out of memory");
	for (size_t c = 0; c < cols; c++) {
		struct mlfs_column *col = &mt->col[c];

		if (meta)
			*col = meta[c];
		else
			col_meta(schema, names[c], col);
		col->text = calloc(rows ? rows : 1, sizeof(char *));
		if (col->type == MLFS_COL_NUMERIC)
			col->num = malloc((rows ? rows : 1) * sizeof(double));
		if (!col->text || (col->type == MLFS_COL_NUMERIC && !col->num))
			fail("out of memory");
	}
	return mt;
}

/*
 * t's cells into rows row0.. of mt, their text copied into one new
 * block, which goes into *block (mt's to free).
 */
static void table_fill(const struct table *t, struct mlfs_table *mt,
		       size_t row0, char **block)
{
	size_t bytes = 0, cells = t->nrows * t->ncols;
	char *at;

	for (size_t i = 0; i < cells; i++)
		bytes += (size_t)t->len[i] + 1;
	*block = malloc(bytes ? bytes : 1);
	if (!*block)
		fail("out of memory");
	at = *block;
	for (size_t c = 0; c < t->ncols; c++) {
		struct mlfs_column *col = &mt->col[c];

		for (size_t r = 0; r < t->nrows; r++) {
			const char *f = t->data + t->off[r * t->ncols + c];
			size_t len = t->len[r * t->ncols + c];

			if (col->num &&
			    !table_num(t, r, c, &col->num[row0 + r]))
				col->num[row0 + r] = NAN;
			if (csv_is_missing(f, len))
				continue;
			memcpy(at, f, len);
			at[len] = '\0';
			col->text[row0 + r] = at;
			at += len + 1;
		}
	}
}

/*
 * t's cells as a table of columns meta[] describes (names borrowed, or
 * the table's own when meta is NULL): ours, table_release frees it.
 */
static struct mlfs_table *table_cells(const struct table *t, json_t *schema,
				      const struct mlfs_column *meta)
{
	struct mlfs_table *mt = table_new(t->nrows, t->ncols, schema,
					  t->names, meta);

	table_fill(t, mt, 0, &((struct loaded *)mt)->block[0]);
	return mt;
}

/* The CSV on descriptor 3, mapped (never unmapped: the job ends). */
static const char *data_map(size_t *len)
{
	const char *text;
	struct stat st;

	if (fstat(3, &st) < 0)
		fail("no data descriptor");
	text = st.st_size ? mmap(NULL, (size_t)st.st_size, PROT_READ,
				 MAP_PRIVATE, 3, 0)
			  : "";
	if (text == MAP_FAILED)
		fail("cannot map the data: %s", strerror(errno));
	*len = (size_t)st.st_size;
	return text;
}

/*
 * Where the parts start: after the LF that follows each part bytes,
 * outside quotes.  An even count of quotes before an LF puts it outside
 * every quoted field in CSV that parses (a quote opens, closes or is
 * doubled); in CSV that does not, some part fails to parse, and the job
 * reads the whole table, which fails with its usual message.
 */
static size_t cut_parts(const char *text, size_t len, size_t body,
			size_t part, size_t **cutp)
{
	const char *end = text + len;
	size_t cap = len / part + 2, n = 0;
	size_t quotes = 0, at = body, *cut;
	const char *p = text + body;

	cut = malloc(cap * sizeof(*cut));
	if (!cut)
		fail("out of memory");
	*cutp = cut;
	cut[n++] = body;
	while ((size_t)(end - p) > part && n + 1 < cap) {
		const char *target = p + part, *q = p;

		for (;;) {
			q = memchr(q, '"', (size_t)(target - q));
			if (!q)
				break;
			quotes++;
			q++;
		}
		p = target;
		for (;;) {
			const char *lf = memchr(p, '\n', (size_t)(end - p));

			if (!lf) {
				p = end;
				break;
			}
			for (q = p; (q = memchr(q, '"', (size_t)(lf - q)));
			     q++)
				quotes++;
			p = lf + 1;
			if (!(quotes & 1))
				break;
		}
		if (p == end)
			break;
		at = (size_t)(p - text);
		cut[n++] = at;
	}
	cut[n] = len;
	return n;
}

/* A part of the CSV on a thread of its own while the table is read. */
struct load_part {
	const char *text;
	size_t len;
	size_t from;
	size_t to;
	size_t ncols;
	struct table *t;	/* the part's fields */
	struct problem pb;
	int rc;
	struct mlfs_table *mt;	/* the whole table, rows row0.. the part's */
	size_t row0;
	char **block;
};

static void *load_parse_main(void *arg)
{
	struct load_part *lp = arg;

	lp->rc = table_parse_rows(lp->text, lp->len, lp->from, lp->to,
				  lp->ncols, &lp->t, &lp->pb);
	return NULL;
}

static void *load_fill_main(void *arg)
{
	struct load_part *lp = arg;

	table_fill(lp->t, lp->mt, lp->row0, lp->block);
	return NULL;
}

/* fn on each of lp[0..n): the first here, the others on threads. */
static void parts_run(void *(*fn)(void *), struct load_part *lp, size_t n)
{
	pthread_t th[PREP_THREADS_MAX];
	bool started[PREP_THREADS_MAX] = { false };

	for (size_t i = 1; i < n; i++)
		started[i] = pthread_create(&th[i], NULL, fn, &lp[i]) == 0;
	fn(&lp[0]);
	for (size_t i = 1; i < n; i++) {
		if (started[i])
			pthread_join(th[i], NULL);
		else
			fn(&lp[i]);
	}
}

/*
 * The table read in threads parts at once (cut as the parts of a
 * stream are), then each part's cells into it; NULL if a part does not
 * parse or there are no rows, for table_parse to say why.
 */
static struct mlfs_table *table_load_parts(const char *text, size_t len,
					   json_t *schema, size_t threads)
{
	struct load_part lp[PREP_THREADS_MAX];
	struct problem pb = { 0 };
	struct mlfs_table *mt = NULL;
	struct table *head;
	size_t body, n, *cut, rows = 0;
	bool ok = true;

	if (table_parse_head(text, len, &head, &body, &pb) < 0)
		return NULL;
	n = cut_parts(text, len, body, (len - body) / threads + 1, &cut);
	if (n > threads)
		n = threads; /* never: a part is len / threads bytes or more */
	memset(lp, 0, sizeof(lp));
	for (size_t i = 0; i < n; i++) {
		lp[i].text = text;
		lp[i].len = len;
		lp[i].from = cut[i];
		lp[i].to = i + 1 < n ? cut[i + 1] : len;
		lp[i].ncols = head->ncols;
	}
	parts_run(load_parse_main, lp, n);
	for (size_t i = 0; i < n; i++) {
		ok = ok && lp[i].rc == 0;
		rows += lp[i].rc == 0 ? lp[i].t->nrows : 0;
	}
	if (ok && rows) {
		mt = table_new(rows, head->ncols, schema, head->names, NULL);
		for (size_t i = 0; i < n; i++) {
			lp[i].mt = mt;
			lp[i].row0 = i ? lp[i - 1].row0 + lp[i - 1].t->nrows : 0;
			lp[i].block = &((struct loaded *)mt)->block[i];
		}
		parts_run(load_fill_main, lp, n);
	}
	for (size_t i = 0; i < n; i++)
		table_free(lp[i].t);
	table_free(head);
	free(cut);
	return mt;
}

/*
 * The dataset version as a table (ours: table_release frees it), on
 * threads threads when it is large enough to gain.
 */
static struct mlfs_table *table_load(const char *text, size_t len,
				     json_t *schema, size_t threads)
{
	struct problem pb = { 0 };
	struct mlfs_table *mt;
	struct table *t;

	if (threads > PREP_THREADS_MAX)
		threads = PREP_THREADS_MAX;
	if (threads > 1 && len >= threads * ((size_t)1 << 20)) {
		mt = table_load_parts(text, len, schema, threads);
		if (mt)
			return mt;
	}
	if (table_parse(text, len, &t, &pb) < 0)
		fail("data: %u:%u: %s", pb.line, pb.col, pb.msg);
	mt = table_cells(t, schema, NULL);
	table_free(t);
	return mt;
}

static void table_release(struct mlfs_table *t)
{
	struct loaded *ld = (struct loaded *)t;

	for (size_t c = 0; t && c < t->cols; c++) {
		free(t->col[c].text);
		free(t->col[c].num);
		if (!ld->names_borrowed)
			free((char *)t->col[c].name);
	}
	if (t) {
		free(t->col);
		for (size_t b = 0; b < PREP_THREADS_MAX; b++)
			free(ld->block[b]);
	}
	free(ld);
}

/*
 * CSV out through a buffer of whole rows: stdio's per-field calls cost
 * as much as the bytes.  With fp the buffer is flushed to it; without,
 * it grows and holds all the text (a part's rows, till its turn).
 */
struct csv_out {
	FILE *fp;
	char *buf;
	size_t n;
	size_t cap;
};

static void out_flush(struct csv_out *o)
{
	if (o->n && fwrite(o->buf, 1, o->n, o->fp) != o->n)
		fail("writing out/data.csv: %s", strerror(errno));
	o->n = 0;
}

/* Room for len more bytes in a buffer without a file. */
static void out_grow(struct csv_out *o, size_t len)
{
	size_t cap = o->cap ? o->cap : 1 << 16;
	char *buf;

	while (cap - o->n < len)
		cap *= 2;
	buf = realloc(o->buf, cap);
	if (!buf)
		fail("out of memory");
	o->buf = buf;
	o->cap = cap;
}

static void out_put(struct csv_out *o, const char *s, size_t len)
{
	if (len > o->cap - o->n) {
		if (!o->fp) {
			out_grow(o, len);
		} else {
			out_flush(o);
			if (len > o->cap) {
				if (fwrite(s, 1, len, o->fp) != len)
					fail("writing out/data.csv: %s",
					     strerror(errno));
				return;
			}
		}
	}
	memcpy(o->buf + o->n, s, len);
	o->n += len;
}

/* One CSV field in quotes, its quotes doubled, as csv_put quotes it. */
static void out_quoted(struct csv_out *o, const char *f, size_t len)
{
	size_t from = 0;

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

/* One CSV field, quoted as csv_put quotes it. */
static void out_field(struct csv_out *o, const char *f, size_t len)
{
	if (csv_needs_quotes(f, len))
		out_quoted(o, f, len);
	else
		out_put(o, f, len);
}

static void out_header(struct csv_out *o, const struct mlfs_table *t)
{
	for (size_t c = 0; c < t->cols; c++) {
		if (c)
			out_put(o, ",", 1);
		out_field(o, t->col[c].name, strlen(t->col[c].name));
	}
	out_put(o, "\n", 1);
}

/* Rows [from, to); numbers a step set (with no text) printed as
 * "%.17g" prints them, to read back the same. */
static void out_rows(struct csv_out *o, const struct mlfs_table *t,
		     size_t from, size_t to)
{
	char num[NUM_SHORTEST_MAX];

	for (size_t r = from; r < to; r++) {
		for (size_t c = 0; c < t->cols; c++) {
			const struct mlfs_column *col = &t->col[c];
			const char *v = col->text ? col->text[r] : NULL;

			if (c)
				out_put(o, ",", 1);
			if (v) {
				bool quote;
				size_t len = csv_field_len(v, &quote);

				if (quote)
					out_quoted(o, v, len);
				else
					out_put(o, v, len);
			} else if (col->num && isfinite(col->num[r])) {
				out_put(o, num, num_g17(col->num[r], num));
			}
		}
		out_put(o, "\n", 1);
	}
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

static int anon_hash_many(void *ctx, size_t n, const void *const *data,
			  const size_t *len, unsigned char (*out)[32])
{
	(void)ctx;
	if (!anon_states)
		return -ENOKEY;
	return anon_hmac_many(anon_states, n, data, len, out);
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

/* A step of the spec, its plugin loaded and its params read. */
struct step {
	const char *name;
	const struct mlfs_prep_ops *ops;
	struct mlfs_param *ps;
	double *lists;
	size_t n;
	bool by_rows;
};

static struct step *steps_load(json_t *steps)
{
	static struct plugin pl[64];
	size_t nsteps = json_array_size(steps), i;
	struct step *sp = calloc(nsteps ? nsteps : 1, sizeof(*sp));
	json_t *st;

	if (!sp)
		fail("out of memory");
	json_array_foreach(steps, i, st) {
		char msg[1024] = "";
		int rc;

		sp[i].name = json_string_value(json_object_get(st, "plugin"));
		if (i >= sizeof(pl) / sizeof(pl[0]) ||
		    plugin_load_file(json_string_value(json_object_get(
					     st, "path")),
				     &pl[i], msg, sizeof(msg)) < 0)
			fail("step %zu (%s): %s", i + 1, sp[i].name,
			     msg[0] ? msg : "too many steps");
		sp[i].ops = pl[i].desc->ops;
		rc = spec_params(json_object_get(st, "params"), &sp[i].ps,
				 &sp[i].n, &sp[i].lists, msg, sizeof(msg));
		if (rc < 0)
			fail("step %zu (%s): %s", i + 1, sp[i].name,
			     msg[0] ? msg : strerror(-rc));
		sp[i].by_rows = plugin_prep_by_rows(&pl[i], sp[i].ps,
						    sp[i].n);
	}
	return sp;
}

/* ---- the table in parts ---- */


/* The host of the parts after the first: their log lines would repeat. */
static void quiet_log(void *ctx, int level, const char *fmt, ...)
{
	(void)ctx;
	(void)level;
	(void)fmt;
}

static void quiet_progress(void *ctx, double fraction, const char *line)
{
	(void)ctx;
	(void)fraction;
	(void)line;
}

struct stream {
	const struct mlfs_table *table; /* table_write's */
	const char *text;
	size_t len;
	const struct step *steps;
	size_t nsteps;
	uint64_t seed;
	struct mlfs_column *meta; /* [ncols]: the header's, from the schema */
	size_t ncols;
	size_t *cut;		  /* part k is text[cut[k]..cut[k + 1]) */
	size_t nparts;
	const struct mlfs_host *quiet;
	struct hctx *hc;	  /* for progress, from the writing thread */
	int fd;			  /* out/data.csv */
	pthread_mutex_t lock;
	pthread_cond_t turn_cv;
	size_t next;		  /* the next part to take */
	size_t turn;		  /* the next part to write */
	bool failed;
	int err;		  /* the write's error, when it failed */
	/* totals, under lock */
	size_t rows_in, rows_out, cols_out, *step_rows;
	double read_s, write_s, *step_s;
};

/*
 * Part k through the steps, its rows into o (after the header, for the
 * first): 0, or the step's or the parser's error (*why says which).
 */
/*
 * Tables a part went through, freed last first: each step's output may
 * point into its input (the host keeps it: keeps_input, ABI 1.5).  ops
 * NULL: the job's own table, read from the CSV.
 */
static void held_free(struct mlfs_table **t,
		      const struct mlfs_prep_ops **ops, size_t n)
{
	while (n--) {
		if (ops[n])
			ops[n]->out_free(t[n]);
		else
			table_release(t[n]);
	}
}

static int stream_part(struct stream *s, size_t k,
		       const struct mlfs_host *host, struct csv_out *o,
		       char *why, size_t whylen)
{
	struct problem pb = { 0 };
	const struct mlfs_prep_ops *prev = NULL;
	struct mlfs_table *cur, *out;
	struct mlfs_table *held[65];
	const struct mlfs_prep_ops *held_ops[65];
	size_t nheld = 0;
	struct table *t;
	double t0 = now_mono(), t1, t2, step_s[64] = { 0 };
	size_t rows_in, step_rows[64] = { 0 };
	int rc;

	rc = table_parse_rows(s->text, s->len, s->cut[k], s->cut[k + 1],
			      s->ncols, &t, &pb);
	if (rc < 0) {
		snprintf(why, whylen, "data: part %zu: %u:%u: %s", k + 1,
			 pb.line, pb.col, pb.msg);
		return rc;
	}
	cur = table_cells(t, NULL, s->meta);
	table_free(t);
	rows_in = cur->rows;
	t1 = now_mono();
	for (size_t i = 0; i < s->nsteps; i++) {
		const struct step *sp = &s->steps[i];
		char msg[1024] = "";
		double ts = now_mono();

		out = NULL;
		rc = sp->ops->run(host, sp->ps, sp->n, s->seed + i, cur, &out,
				  msg, sizeof(msg));
		if (rc == 0 && !out)
			rc = -EINVAL;
		held[nheld] = cur;
		held_ops[nheld++] = prev;
		if (rc < 0) {
			held_free(held, held_ops, nheld);
			snprintf(why, whylen, "step %zu (%s): part %zu: %s",
				 i + 1, sp->name, k + 1,
				 msg[0] ? msg : strerror(-rc));
			return rc;
		}
		cur = out;
		prev = sp->ops;
		step_s[i] = now_mono() - ts;
		step_rows[i] = cur->rows;
	}
	t2 = now_mono();
	o->n = 0;
	if (k == 0)
		out_header(o, cur);
	out_rows(o, cur, 0, cur->rows);
	pthread_mutex_lock(&s->lock);
	s->rows_in += rows_in;
	s->rows_out += cur->rows;
	s->cols_out = cur->cols;
	s->read_s += t1 - t0;
	s->write_s += now_mono() - t2;
	for (size_t i = 0; i < s->nsteps; i++) {
		s->step_s[i] += step_s[i];
		s->step_rows[i] += step_rows[i];
	}
	pthread_mutex_unlock(&s->lock);
	held[nheld] = cur;
	held_ops[nheld++] = prev;
	held_free(held, held_ops, nheld);
	return 0;
}

/* Part k's text o, written when the parts before it are. */
static int stream_write(struct stream *s, size_t k, const struct csv_out *o,
			int rc)
{
	double t0;

	pthread_mutex_lock(&s->lock);
	while (s->turn != k && !s->failed)
		pthread_cond_wait(&s->turn_cv, &s->lock);
	if (s->failed)
		rc = -ECANCELED;
	pthread_mutex_unlock(&s->lock);
	t0 = now_mono();
	if (rc == 0)
		rc = store_write_full(s->fd, o->buf, o->n, -1);
	pthread_mutex_lock(&s->lock);
	s->write_s += now_mono() - t0;
	if (rc < 0 && !s->failed)
		s->err = rc;
	if (rc < 0)
		s->failed = true;
	s->turn++;
	pthread_cond_broadcast(&s->turn_cv);
	pthread_mutex_unlock(&s->lock);
	if (rc == 0 && s->text && k % 16 == 15) {
		char line[64];

		snprintf(line, sizeof(line), "part %zu/%zu", k + 1,
			 s->nparts);
		host_progress(s->hc, (double)(k + 1) / (double)s->nparts,
			      line);
	}
	return rc;
}

/* A thread: the next part, till there is none or one failed. */
static void *stream_main(void *arg)
{
	struct stream *s = arg;
	struct csv_out o = { NULL, NULL, 0, 0 };
	char why[1200];

	for (;;) {
		size_t k;
		int rc;

		pthread_mutex_lock(&s->lock);
		k = s->next;
		if (k < s->nparts && !s->failed && !cancelled)
			s->next++;
		else
			k = s->nparts;
		pthread_mutex_unlock(&s->lock);
		if (k == s->nparts)
			break;
		rc = stream_part(s, k, s->quiet, &o, why, sizeof(why));
		if (rc < 0)
			say("%s; reading the whole table", why);
		if (stream_write(s, k, &o, rc) < 0)
			break;
	}
	free(o.buf);
	return NULL;
}

/* Threads the job may use: as many as BLAS was given (sched.c). */
static size_t stream_threads(size_t nparts)
{
	const char *env = getenv("OPENBLAS_NUM_THREADS");
	long n = env ? atol(env) : 1;

	if (n < 1)
		n = 1;
	if (n > PREP_THREADS_MAX)
		n = PREP_THREADS_MAX;
	return (size_t)n < nparts ? (size_t)n : nparts;
}

/*
 * Where the job's output goes: the daemon's own file (job_out_fd) the
 * first time; else out/data.csv, made new and empty.  The daemon's file
 * only ever grows, so a second start (the whole table after a part
 * failed) leaves it and writes out/data.csv, which the daemon then takes.
 */
static int out_open(void)
{
	int fd;

	if (job_out_fd >= 0) {
		fd = job_out_fd;
		job_out_fd = -1;
		return fd;
	}
	if (mkdir(MODEL_OUT, 0755) < 0 && errno != EEXIST)
		fail("cannot make %s: %s", MODEL_OUT, strerror(errno));
	/*
	 * A new file each time: the daemon copies the output as it grows
	 * (outtail.h), and tells a new start by the inode.
	 */
	if (unlink(MODEL_OUT "/data.csv") < 0 && errno != ENOENT)
		fail("cannot replace out/data.csv: %s", strerror(errno));
	fd = open(MODEL_OUT "/data.csv",
		  O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0)
		fail("cannot write out/data.csv: %s", strerror(errno));
	return fd;
}

/*
 * Every step by rows: the CSV in parts, through the steps, into
 * out/data.csv.  0 when it is written; -1 when the whole table must be
 * read instead (out/data.csv is then rewritten).
 */
static int stream_run(json_t *plan, const struct step *steps, size_t nsteps,
		      const char *text, size_t len, const struct mlfs_host *host,
		      struct hctx *hc)
{
	struct mlfs_host quiet = *host, first = *host;
	struct problem pb = { 0 };
	struct stream s = { 0 };
	pthread_t th[PREP_THREADS_MAX];
	struct csv_out o = { NULL, NULL, 0, 0 };
	struct table *head;
	json_t *schema = json_object_get(plan, "schema");
	size_t body, nthreads = 0, want;
	char why[1200];
	double t0 = now_mono();
	int rc;

	for (size_t i = 0; i < nsteps; i++)
		if (!steps[i].by_rows)
			return -1;
	if (!nsteps || nsteps > 64 ||
	    table_parse_head(text, len, &head, &body, &pb) < 0)
		return -1;
	s.text = text;
	s.len = len;
	s.steps = steps;
	s.nsteps = nsteps;
	s.seed = (uint64_t)json_integer_value(json_object_get(plan, "seed"));
	s.ncols = head->ncols;
	s.meta = calloc(s.ncols, sizeof(*s.meta));
	s.step_s = calloc(nsteps ? nsteps : 1, sizeof(*s.step_s));
	s.step_rows = calloc(nsteps ? nsteps : 1, sizeof(*s.step_rows));
	if (!s.meta || !s.step_s || !s.step_rows)
		fail("out of memory");
	for (size_t c = 0; c < s.ncols; c++)
		col_meta(schema, head->names[c], &s.meta[c]);
	table_free(head);
	s.nparts = cut_parts(text, len, body, PREP_PART, &s.cut);
	quiet.log = quiet_log;
	quiet.progress = quiet_progress;
	/* a part's tables live till its rows are written (stream_part) */
	quiet.keeps_input = 1;
	first.keeps_input = 1;
	s.quiet = &quiet;
	s.hc = hc;
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.turn_cv, NULL);
	s.fd = out_open();
	/* the first part alone, with the job's log: what the steps say */
	s.next = 1;
	rc = stream_part(&s, 0, &first, &o, why, sizeof(why));
	if (rc < 0)
		say("%s; reading the whole table", why);
	rc = stream_write(&s, 0, &o, rc);
	free(o.buf);
	want = rc < 0 ? 0 : stream_threads(s.nparts - 1);
	while (nthreads < want &&
	       pthread_create(&th[nthreads], NULL, stream_main, &s) == 0)
		nthreads++;
	if (rc == 0 && !nthreads && s.nparts > 1)
		stream_main(&s);
	for (size_t i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	if (close(s.fd) < 0 && !s.failed) {
		say("writing out/data.csv: %s", strerror(errno));
		s.failed = true;
	}
	if (!s.failed && !cancelled && s.turn == s.nparts && s.rows_in) {
		size_t used = nthreads ? nthreads : 1;

		say("read in %zu parts on %zu threads in %.3f s; the times "
		    "below are each phase's thread-seconds over %zu",
		    s.nparts, used, now_mono() - t0, used);
		say("read %zu rows x %zu columns in %.3f s", s.rows_in,
		    s.ncols, s.read_s / (double)used);
		for (size_t i = 0; i < nsteps; i++)
			say("step %zu (%s): %zu rows in, %zu out, in %.3f s",
			    i + 1, steps[i].name,
			    i ? s.step_rows[i - 1] : s.rows_in,
			    s.step_rows[i],
			    s.step_s[i] / (double)used);
		say("done: %zu rows x %zu columns, written in %.3f s",
		    s.rows_out, s.cols_out, s.write_s / (double)used);
		rc = 0;
	} else {
		rc = -1;
	}
	pthread_cond_destroy(&s.turn_cv);
	pthread_mutex_destroy(&s.lock);
	for (size_t c = 0; c < s.ncols; c++)
		free((char *)s.meta[c].name);
	free(s.meta);
	free(s.step_s);
	free(s.step_rows);
	free(s.cut);
	return rc;
}

/* ---- the whole table out ---- */

/* Rows a part of the table takes to CSV. */
#define PREP_WRITE_ROWS 16384

/* A thread: the next rows of s->table to text, written in their turn. */
static void *table_write_main(void *arg)
{
	struct stream *s = arg;
	const struct mlfs_table *t = s->table;
	struct csv_out o = { NULL, NULL, 0, 0 };

	for (;;) {
		size_t k, to;

		pthread_mutex_lock(&s->lock);
		k = s->next;
		if (k < s->nparts && !s->failed)
			s->next++;
		else
			k = s->nparts;
		pthread_mutex_unlock(&s->lock);
		if (k == s->nparts)
			break;
		to = (k + 1) * PREP_WRITE_ROWS;
		o.n = 0;
		out_rows(&o, t, k * PREP_WRITE_ROWS, to < t->rows ? to : t->rows);
		if (stream_write(s, k, &o, 0) < 0)
			break;
	}
	free(o.buf);
	return NULL;
}

/*
 * The table as CSV in out/data.csv: a header, then each row, turned into
 * text PREP_WRITE_ROWS rows at a time on threads threads, and written in
 * order.
 */
static void table_write(const struct mlfs_table *t, size_t threads,
			struct hctx *hc)
{
	struct stream s = { 0 };
	struct csv_out o = { NULL, NULL, 0, 0 };
	pthread_t th[PREP_THREADS_MAX];
	size_t n = 0;

	s.table = t;
	s.hc = hc;
	s.nparts = (t->rows + PREP_WRITE_ROWS - 1) / PREP_WRITE_ROWS;
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.turn_cv, NULL);
	s.fd = out_open();
	out_header(&o, t);
	if (store_write_full(s.fd, o.buf, o.n, -1) < 0)
		fail("writing out/data.csv: %s", strerror(errno));
	free(o.buf);
	if (threads > s.nparts)
		threads = s.nparts;
	while (n + 1 < threads &&
	       pthread_create(&th[n], NULL, table_write_main, &s) == 0)
		n++;
	table_write_main(&s);
	for (size_t i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	if (s.failed)
		fail("writing out/data.csv: %s", strerror(-s.err));
	if (close(s.fd) < 0)
		fail("writing out/data.csv: %s", strerror(errno));
	pthread_cond_destroy(&s.turn_cv);
	pthread_mutex_destroy(&s.lock);
}

void prep_run(json_t *plan)
{
	json_t *steps = json_object_get(plan, "steps");
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
		.anon_hash_many = anon_hash_many,
	};
	struct run run = { .plan = plan };
	const struct mlfs_prep_ops *prev = NULL;
	struct mlfs_table *cur;
	struct step *sp;
	size_t nsteps = json_array_size(steps), len;
	const char *text;
	double tw;

	run.t0 = now_mono();
	anon_read(plan);
	hc.run = &run;
	hc.frac_span = 1;
	host_progress(&hc, 0, "reading data");
	sp = steps_load(steps);
	text = data_map(&len);
	if (stream_run(plan, sp, nsteps, text, len, &host, &hc) == 0) {
		anon_release();
		finish(1, NULL, NULL, NULL);
	}
	if (cancelled)
		fail("cancelled");
	/* the whole table: a step may use the job's threads itself */
	host.threads = (int)stream_threads(PREP_THREADS_MAX);
	cur = table_load(text, len, json_object_get(plan, "schema"),
			 (size_t)host.threads);
	say("read %zu rows x %zu columns in %.3f s", cur->rows, cur->cols,
	    now_mono() - run.t0);
	for (size_t i = 0; i < nsteps; i++) {
		const struct mlfs_prep_ops *ops = sp[i].ops;
		struct mlfs_table *out = NULL;
		double t0 = now_mono();
		char msg[1024] = "", line[300];
		int rc;

		if (cancelled)
			fail("cancelled");
		snprintf(line, sizeof(line), "step %zu/%zu: %s", i + 1, nsteps,
			 sp[i].name);
		host_progress(&hc, (double)i / (double)(nsteps ? nsteps : 1),
			      line);
		rc = ops->run(&host, sp[i].ps, sp[i].n, seed + i, cur, &out,
			      msg, sizeof(msg));
		if (rc < 0 || !out)
			fail("step %zu (%s): %s", i + 1, sp[i].name,
			     msg[0] ? msg : strerror(rc < 0 ? -rc : EINVAL));
		say("step %zu (%s): %zu rows in, %zu out, in %.3f s", i + 1,
		    sp[i].name, cur->rows, out->rows, now_mono() - t0);
		if (prev)
			prev->out_free(cur);
		else
			table_release(cur);
		cur = out;
		prev = ops;
	}
	host_progress(&hc, 1, "writing");
	tw = now_mono();
	table_write(cur, (size_t)host.threads, &hc);
	say("done: %zu rows x %zu columns, written in %.3f s", cur->rows,
	    cur->cols, now_mono() - tw);
	anon_release();
	finish(1, NULL, NULL, NULL);
}
