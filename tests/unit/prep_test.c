/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the prep plugins (plugins/prep/): each is dlopened from
 * $MLFS_PLUGIN_DIR as the daemon would, checked by the daemon's loader
 * too, and driven through its ops with a small host table.  Checks that
 * impute fills means, medians, modes (ties: the first seen) and
 * constants, only where asked, and leaves labels and times alone; that
 * oversample and undersample reach the exact target counts, keep every
 * original row (oversample) or the kept ones in order (undersample); that
 * every smote row lies on the segment from its source row to one of that
 * row's k nearest neighbours in its class, recomputed here, with the
 * categorical vote of those neighbours; that one seed gives one table;
 * tables with no rows, one class, a class of one row, missing labels and
 * missing values; and bad params, refused with their exact messages.
 *
 * anonymize: hash is the lowercase hex of the host's anon_hash, here
 * HMAC-SHA-256 under a fixed key (OpenSSL's HMAC(), and RFC 4231's test
 * case 2 as a value worked out elsewhere), the same value hashing the
 * same and a missing one staying missing; a host with no key (-ENOKEY),
 * no anon_hash, or a table too short to have one fails the step with
 * its message; drop, mask (UTF-8 counted in characters), truncate,
 * month, year and bucket give exactly the values worked out by hand;
 * "default" reaches the pii columns no param names; k-anonymity passes
 * and fails naming the smallest group.  filter keeps the rows each op
 * keeps (numbers as numbers, text as text, missing only for "!="), and
 * dedupe the first row of each combination, in order.
 *
 * augment: the input's rows come first and unchanged, then "copies"
 * copies; noise moves each feature by 0 on average and by sigma x the
 * column's std (measured over a few thousand rows), leaving missing
 * values, labels, ids and categories alone; every mixup row is
 * lambda x_i + (1 - lambda) x_j for its row and some other row, found
 * here by search, with the label from the heavier, and the weights
 * spread as Beta(0.2, 0.2) and Beta(1, 1) spread; flip gives the mirror
 * worked out by hand of a 2 x 3 and a 3 x 2 image, and each shift and
 * cutout row is exactly one of the 9 shifts or squares of a 3 x 3 image
 * (each one seen); tables with no rows, only missing values, nothing to
 * change, a cancelled job, too many rows; bad params.
 *
 * Allocation failures are not injected here: the plugins are separate
 * shared objects, which the --wrap=malloc of the unit build cannot reach.
 */
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fs.h"
#include "mlfs_plugin.h"
#include "plugin.h"
#include "plugs.h"
#include "tap.h"

/* ---- the host ---- */

struct host_state {
	int cancel;    /* cancelled() returns this */
	long warnings; /* log() calls at MLFS_LOG_WARNING or worse */
	int nokey;     /* anon_hash() answers -ENOKEY */
	long hashes;   /* anon_hash() calls */
};

/* The owner's key of the test host: RFC 4231's test case 2 uses it. */
static const char host_key[] = "Jefe";

static void host_log(void *ctx, int level, const char *fmt, ...)
{
	struct host_state *hs = ctx;
	va_list ap;

	if (level <= MLFS_LOG_WARNING)
		hs->warnings++;
	if (!getenv("PREP_TEST_VERBOSE"))
		return;
	printf("# log %d: ", level);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static int host_cancelled(void *ctx)
{
	struct host_state *hs = ctx;

	return hs->cancel;
}

static int host_anon_hash(void *ctx, const void *data, size_t len,
			  unsigned char out[32])
{
	struct host_state *h = ctx;
	unsigned n = 0;

	h->hashes++;
	if (h->nokey)
		return -ENOKEY;
	if (!HMAC(EVP_sha256(), host_key, (int)strlen(host_key), data, len,
		  out, &n) ||
	    n != 32)
		return -EIO;
	return 0;
}

static struct host_state hs;
static const struct mlfs_host host = {
	.size = sizeof(host),
	.ctx = &hs,
	.log = host_log,
	.cancelled = host_cancelled,
	.threads = 1,
	.anon_hash = host_anon_hash,
};

/* ---- plugins ---- */

static struct plug plugs[] = {
	{ "impute", NULL, NULL },
	{ "balance", NULL, NULL },
	{ "anonymize", NULL, NULL },
	{ "filter", NULL, NULL },
	{ "dedupe", NULL, NULL },
	{ "augment", NULL, NULL },
};

enum { P_IMPUTE, P_BALANCE, P_ANON, P_FILTER, P_DEDUPE, P_AUGMENT,
       P_COUNT };

static const struct mlfs_prep_ops *ops_of(int p)
{
	return plugs[p].desc->ops;
}

static char msg[512];

static int check(int p, const struct mlfs_param *ps, size_t n)
{
	msg[0] = '\0';
	return ops_of(p)->check(ps, n, msg, sizeof(msg));
}

static int run_on(const struct mlfs_host *h, int p,
		  const struct mlfs_param *ps, size_t n, uint64_t seed,
		  const struct mlfs_table *in, struct mlfs_table **out)
{
	msg[0] = '\0';
	return ops_of(p)->run(h, ps, n, seed, in, out, msg, sizeof(msg));
}

static int run(int p, const struct mlfs_param *ps, size_t n, uint64_t seed,
	       const struct mlfs_table *in, struct mlfs_table **out)
{
	return run_on(&host, p, ps, n, seed, in, out);
}

static void out_free(int p, struct mlfs_table *t)
{
	ops_of(p)->out_free(t);
}

static struct mlfs_param num(const char *name, double v)
{
	return (struct mlfs_param){ .name = name,
				    .type = MLFS_PARAM_NUMBER,
				    .number = v };
}

static struct mlfs_param str(const char *name, const char *s)
{
	return (struct mlfs_param){ .name = name,
				    .type = MLFS_PARAM_STRING,
				    .string = s };
}

/* ---- tables the test owns ---- */

static struct mlfs_table *tab_new(size_t rows, size_t cols)
{
	struct mlfs_table *t = calloc(1, sizeof(*t));

	t->rows = rows;
	t->cols = cols;
	t->col = calloc(cols + 1, sizeof(*t->col));
	for (size_t j = 0; j < cols; j++)
		t->col[j].text = calloc(rows + 1, sizeof(char *));
	return t;
}

static void tab_col(struct mlfs_table *t, size_t j, const char *name,
		    int type, unsigned roles)
{
	t->col[j].name = name;
	t->col[j].type = type;
	t->col[j].roles = roles;
	if (type != MLFS_COL_NUMERIC)
		return;
	t->col[j].num = calloc(t->rows + 1, sizeof(double));
	for (size_t i = 0; i < t->rows; i++)
		t->col[j].num[i] = NAN;
}

/* Cell (j, i) as the CSV has it; a NUMERIC column reads it as a number. */
static void tab_set(struct mlfs_table *t, size_t j, size_t i, const char *s)
{
	struct mlfs_column *c = &t->col[j];

	free(c->text[i]);
	c->text[i] = s ? strdup(s) : NULL;
	if (c->num)
		c->num[i] = s ? strtod(s, NULL) : NAN;
}

static void tab_setnum(struct mlfs_table *t, size_t j, size_t i, double v)
{
	char buf[32];

	if (isnan(v)) {
		tab_set(t, j, i, NULL);
		return;
	}
	snprintf(buf, sizeof(buf), "%.17g", v);
	tab_set(t, j, i, buf);
}

/* A column of strings, one a row; NULL for missing. */
static void tab_fill(struct mlfs_table *t, size_t j, const char *const *v)
{
	for (size_t i = 0; i < t->rows; i++)
		tab_set(t, j, i, v[i]);
}

static void tab_free(struct mlfs_table *t)
{
	if (!t)
		return;
	for (size_t j = 0; j < t->cols; j++) {
		for (size_t i = 0; i < t->rows; i++)
			free(t->col[j].text[i]);
		free(t->col[j].text);
		free(t->col[j].num);
	}
	free(t->col);
	free(t);
}

static long col_of(const struct mlfs_table *t, const char *name)
{
	for (size_t j = 0; j < t->cols; j++)
		if (t->col[j].name && strcmp(t->col[j].name, name) == 0)
			return (long)j;
	return -1;
}

static const char *text_at(const struct mlfs_table *t, const char *col,
			   size_t i)
{
	long j = col_of(t, col);

	return j < 0 || i >= t->rows ? "(no such cell)" : t->col[j].text[i];
}

static double num_at(const struct mlfs_table *t, const char *col, size_t i)
{
	long j = col_of(t, col);

	if (j < 0 || i >= t->rows || !t->col[j].num)
		return -12345.678;
	return t->col[j].num[i];
}

static bool text_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool num_eq(double a, double b)
{
	return (isnan(a) && isnan(b)) || a == b;
}

/* Cell (ja, ia) of a and cell (jb, ib) of b hold the same. */
static bool cell_eq(const struct mlfs_table *a, size_t ja, size_t ia,
		    const struct mlfs_table *b, size_t jb, size_t ib)
{
	const struct mlfs_column *x = &a->col[ja], *y = &b->col[jb];

	if (!text_eq(x->text[ia], y->text[ib]))
		return false;
	if (!x->num || !y->num)
		return !x->num && !y->num;
	return num_eq(x->num[ia], y->num[ib]);
}

/* Row ia of a is row ib of b, in every column. */
static bool row_eq(const struct mlfs_table *a, size_t ia,
		   const struct mlfs_table *b, size_t ib)
{
	if (a->cols != b->cols)
		return false;
	for (size_t j = 0; j < a->cols; j++)
		if (!cell_eq(a, j, ia, b, j, ib))
			return false;
	return true;
}

static bool tab_eq(const struct mlfs_table *a, const struct mlfs_table *b)
{
	if (!a || !b || a->rows != b->rows || a->cols != b->cols)
		return false;
	for (size_t j = 0; j < a->cols; j++) {
		if (!text_eq(a->col[j].name, b->col[j].name) ||
		    a->col[j].type != b->col[j].type ||
		    a->col[j].roles != b->col[j].roles)
			return false;
	}
	for (size_t i = 0; i < a->rows; i++)
		if (!row_eq(a, i, b, i))
			return false;
	return true;
}

/* out shares no pointer with in (names, texts, numbers). */
static bool shares_nothing(const struct mlfs_table *out,
			   const struct mlfs_table *in)
{
	for (size_t j = 0; j < out->cols && j < in->cols; j++) {
		const struct mlfs_column *o = &out->col[j], *c = &in->col[j];

		if (o->name == c->name || o->text == c->text ||
		    (o->num && o->num == c->num))
			return false;
		for (size_t i = 0; i < out->rows; i++)
			for (size_t k = 0; k < in->rows; k++)
				if (o->text[i] && o->text[i] == c->text[k])
					return false;
	}
	return true;
}

/* How many rows of t have text v in column col. */
static size_t count_of(const struct mlfs_table *t, const char *col,
		       const char *v)
{
	size_t n = 0;

	for (size_t i = 0; i < t->rows; i++)
		n += text_eq(text_at(t, col, i), v);
	return n;
}

/* ---- the generator of test data ---- */

static uint64_t rng_state = 42;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double unif(void)
{
	return (double)(rnd() >> 11) * 0x1p-53;
}

/* ---- descriptors ---- */

static void test_descriptors(const char *dir)
{
	for (int p = 0; p < P_COUNT; p++) {
		const struct mlfs_plugin *d = plugs[p].desc;
		const struct mlfs_prep_ops *o = ops_of(p);
		char path[4096], why[512] = "";
		struct plugin pl;
		int rc;

		is_int(d->abi_major, MLFS_ABI_MAJOR, "descriptor: ABI major");
		is_int(d->abi_minor, MLFS_ABI_MINOR, "descriptor: ABI minor");
		is_int(d->stage, MLFS_STAGE_PREP, "descriptor: prep stage");
		is_str(d->name, plugs[p].name, "descriptor: the file's name");
		ok(d->version && *d->version, "descriptor: a version");
		ok(o && o->size == sizeof(*o) && o->check && o->run &&
			   o->out_free,
		   "descriptor: every prep op");
		/* and the daemon's own loader takes it */
		snprintf(path, sizeof(path), "%s/%s.so", dir, plugs[p].name);
		rc = plugin_load_file(path, &pl, why, sizeof(why));
		is_int(rc, 0, "the daemon's loader takes it");
		if (rc < 0) {
			printf("#   %s\n", why);
			continue;
		}
		free(pl.path);
		dlclose(pl.handle);
	}
}

/* ---- the daemon's loader thread (plugin_load_start) ---- */

static int loaded_calls;

static int loaded_err = 1;

static void count_loaded(struct fs *fs, struct plugin_set *ps, int err)
{
	(void)fs;
	(void)ps;
	loaded_err = err;
	__atomic_add_fetch(&loaded_calls, 1, __ATOMIC_SEQ_CST);
}

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_loader(const char *dir)
{
	struct fs fs;
	const struct plugin_set *ps;
	double t0;

	/* wanted before its time: loaded at once, loaded() first */
	memset(&fs, 0, sizeof(fs));
	loaded_calls = 0;
	t0 = mono_s();
	is_int(plugin_load_start(&fs, dir, count_loaded), 0,
	       "loader: a thread starts");
	plugin_load_after(&fs, 60000);
	ps = fs_plugins(&fs);
	ok(mono_s() - t0 < 10, "loader: fs_plugins does not wait out the delay");
	is_int(loaded_calls, 1, "loader: loaded() ran before the set was seen");
	is_int(loaded_err, 0, "loader: with no error");
	ok(ps && plugin_find(ps, MLFS_STAGE_PREP, "impute") != NULL,
	   "loader: the set has the directory's plugins");
	ok(fs_plugins(&fs) == ps, "loader: the same set again");
	plugin_load_join(&fs);
	ok(fs.plugin_loader == NULL && fs.plugins == ps,
	   "loader: joined, the set kept");
	plugin_set_free(fs.plugins);

	/* never wanted: the unmount's join neither waits nor loads */
	memset(&fs, 0, sizeof(fs));
	loaded_calls = 0;
	t0 = mono_s();
	is_int(plugin_load_start(&fs, dir, count_loaded), 0,
	       "loader: a second thread starts");
	plugin_load_after(&fs, 60000); /* an unmount inside the delay */
	plugin_load_join(&fs);
	ok(mono_s() - t0 < 10, "loader: join does not wait out the delay");
	ok(fs.plugins == NULL && loaded_calls == 0,
	   "loader: nothing loaded that nobody wanted");
	ok(fs_plugins(&fs) == NULL, "loader: after the join, no set");

	/* its time comes: loaded with nobody asking, then joined */
	memset(&fs, 0, sizeof(fs));
	loaded_calls = 0;
	is_int(plugin_load_start(&fs, dir, count_loaded), 0,
	       "loader: a third thread starts");
	plugin_load_after(&fs, 0);
	for (int i = 0; i < 1000 &&
			!__atomic_load_n(&loaded_calls, __ATOMIC_SEQ_CST);
	     i++)
		nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	plugin_load_join(&fs);
	ok(loaded_calls == 1 && fs.plugins != NULL,
	   "loader: loaded when its time came");
	plugin_set_free(fs.plugins);

	/* a directory it cannot list: no set, the error to loaded() */
	memset(&fs, 0, sizeof(fs));
	loaded_calls = 0;
	is_int(plugin_load_start(&fs, "/etc/passwd", count_loaded), 0,
	       "loader: a fourth thread starts");
	ok(fs_plugins(&fs) == NULL && loaded_calls == 1 &&
		   loaded_err == -ENOTDIR,
	   "loader: a file for a directory: no set, ENOTDIR");
	plugin_load_join(&fs);

	/* no loader at all (the unit programs' fs): the field as it is */
	memset(&fs, 0, sizeof(fs));
	ok(fs_plugins(&fs) == NULL, "loader: none started, none waited for");
}

/* ---- impute ---- */

enum { I_AGE, I_INC, I_CITY, I_PET, I_LAB, I_WHEN, I_NOTE, I_COLS };

/*
 * age: 1 . 3 10 .   mean 14/3, median 3
 * inc: 1 2 . 10 20  mean 8.25, median (2 + 10) / 2 = 6
 * city: a . b b a   mode a (a tie: a came first)
 * pet: x y y . .    mode y
 * label: p . n p n  (the label: left alone by default)
 * when: a time column, never a mean or a mode
 * note: free text, a mode like categorical
 */
static struct mlfs_table *impute_table(void)
{
	static const char *const age[] = { "1", NULL, "3", "10", NULL };
	static const char *const inc[] = { "1", "2", NULL, "10", "20" };
	static const char *const city[] = { "a", NULL, "b", "b", "a" };
	static const char *const pet[] = { "x", "y", "y", NULL, NULL };
	static const char *const lab[] = { "p", NULL, "n", "p", "n" };
	static const char *const when[] = { "2024-01-01", NULL, "2024-01-03",
					    "2024-01-03", NULL };
	static const char *const note[] = { NULL, "hi", "yo", "hi", NULL };
	struct mlfs_table *t = tab_new(5, I_COLS);

	tab_col(t, I_AGE, "age", MLFS_COL_NUMERIC, 0);
	tab_col(t, I_INC, "inc", MLFS_COL_NUMERIC, 0);
	tab_col(t, I_CITY, "city", MLFS_COL_CATEGORICAL, 0);
	tab_col(t, I_PET, "pet", MLFS_COL_CATEGORICAL, 0);
	tab_col(t, I_LAB, "label", MLFS_COL_CATEGORICAL, MLFS_ROLE_LABEL);
	tab_col(t, I_WHEN, "when", MLFS_COL_TIME, MLFS_ROLE_TIME);
	tab_col(t, I_NOTE, "note", MLFS_COL_TEXT, 0);
	tab_fill(t, I_AGE, age);
	tab_fill(t, I_INC, inc);
	tab_fill(t, I_CITY, city);
	tab_fill(t, I_PET, pet);
	tab_fill(t, I_LAB, lab);
	tab_fill(t, I_WHEN, when);
	tab_fill(t, I_NOTE, note);
	return t;
}

static void test_impute_mean_mode(void)
{
	struct mlfs_table *in = impute_table(), *out = NULL;
	int rc = run(P_IMPUTE, NULL, 0, 1, in, &out);

	is_int(rc, 0, "impute: defaults run");
	if (rc < 0) {
		printf("#   %s\n", msg);
		tab_free(in);
		return;
	}
	is_int(out->rows, 5, "impute: rows kept");
	is_int(out->cols, I_COLS, "impute: columns kept");
	ok(num_at(out, "age", 1) == 14.0 / 3 && num_at(out, "age", 4) ==
	   14.0 / 3, "impute: age's missing values are its mean");
	ok(!text_at(out, "age", 1),
	   "impute: a filled number's text is NULL, for the host to print");
	is_str(text_at(out, "age", 3), "10", "impute: present text kept");
	ok(num_at(out, "age", 3) == 10, "impute: present number kept");
	ok(num_at(out, "inc", 2) == 8.25, "impute: inc's mean 8.25");
	is_str(text_at(out, "city", 1), "a",
	       "impute: city's mode, the first seen of a tie");
	is_str(text_at(out, "pet", 3), "y", "impute: pet's mode y");
	is_str(text_at(out, "pet", 4), "y", "impute: pet's mode y again");
	is_str(text_at(out, "note", 0), "hi", "impute: text takes the mode");
	ok(!text_at(out, "label", 1), "impute: the label is left alone");
	ok(!text_at(out, "when", 1), "impute: time is left alone");
	is_str(out->col[I_LAB].name, "label", "impute: names copied");
	is_int(out->col[I_LAB].roles, MLFS_ROLE_LABEL, "impute: roles kept");
	is_int(out->col[I_WHEN].type, MLFS_COL_TIME, "impute: types kept");
	ok(!out->col[I_CITY].num, "impute: no numbers for categorical");
	ok(shares_nothing(out, in), "impute: out shares nothing with in");
	ok(!in->col[I_AGE].text[1] && isnan(in->col[I_AGE].num[1]) &&
		   !in->col[I_CITY].text[1],
	   "impute: the input is unchanged");
	out_free(P_IMPUTE, out);
	tab_free(in);
}

static void test_impute_median_constant(void)
{
	struct mlfs_table *in = impute_table(), *out = NULL;
	struct mlfs_param med[] = { str("numeric", "median") };
	struct mlfs_param cst[] = { str("numeric", "constant"),
				    str("categorical", "constant"),
				    num("value", -1.5) };
	struct mlfs_param cst2[] = { str("categorical", "constant"),
				     str("value", "unknown") };
	int rc;

	rc = run(P_IMPUTE, med, 1, 1, in, &out);
	is_int(rc, 0, "impute: median runs");
	if (rc == 0) {
		ok(num_at(out, "age", 1) == 3 && num_at(out, "age", 4) == 3,
		   "impute: age's median 3 (odd count)");
		ok(num_at(out, "inc", 2) == 6,
		   "impute: inc's median 6 (even count: the middle two)");
		is_str(text_at(out, "city", 1), "a",
		       "impute: categorical still the mode");
		out_free(P_IMPUTE, out);
	}
	rc = run(P_IMPUTE, cst, 3, 1, in, &out);
	is_int(rc, 0, "impute: constants run");
	if (rc == 0) {
		ok(num_at(out, "age", 4) == -1.5 && num_at(out, "inc", 2) ==
		   -1.5, "impute: numeric constant -1.5");
		is_str(text_at(out, "city", 1), "-1.5",
		       "impute: a numeric value as categorical text");
		is_str(text_at(out, "when", 4), "-1.5",
		       "impute: a categorical constant fills time too");
		ok(!text_at(out, "label", 1),
		   "impute: the label is left alone by a constant");
		out_free(P_IMPUTE, out);
	}
	rc = run(P_IMPUTE, cst2, 2, 1, in, &out);
	is_int(rc, 0, "impute: a string constant runs");
	if (rc == 0) {
		is_str(text_at(out, "pet", 3), "unknown",
		       "impute: categorical constant");
		is_str(text_at(out, "note", 0), "unknown",
		       "impute: text constant");
		ok(num_at(out, "age", 1) == 14.0 / 3,
		   "impute: numeric still the mean");
		out_free(P_IMPUTE, out);
	}
	tab_free(in);
}

static void test_impute_columns(void)
{
	struct mlfs_table *in = impute_table(), *out = NULL;
	struct mlfs_param some[] = { str("columns", " age ,label") };
	struct mlfs_param bad[] = { str("columns", "age,nope") };
	int rc;

	rc = run(P_IMPUTE, some, 1, 1, in, &out);
	is_int(rc, 0, "impute: \"columns\" runs");
	if (rc == 0) {
		ok(num_at(out, "age", 1) == 14.0 / 3, "impute: age filled");
		is_str(text_at(out, "label", 1), "p",
		       "impute: a label named in \"columns\" is filled");
		ok(isnan(num_at(out, "inc", 2)) && !text_at(out, "inc", 2),
		   "impute: inc not named, left missing");
		ok(!text_at(out, "city", 1),
		   "impute: city not named, left missing");
		out_free(P_IMPUTE, out);
	}
	out = (struct mlfs_table *)1;
	rc = run(P_IMPUTE, bad, 1, 1, in, &out);
	is_int(rc, -EINVAL, "impute: a column not in the table");
	is_str(msg, "column \"nope\": not in the table",
	       "impute: ... says which");
	ok(!out, "impute: ... and gives no table");
	tab_free(in);
}

static void test_impute_edges(void)
{
	struct mlfs_table *in, *out = NULL;
	long warned;
	int rc;

	/* nothing present: means and modes of nothing stay missing */
	in = tab_new(3, 2);
	tab_col(in, 0, "x", MLFS_COL_NUMERIC, 0);
	tab_col(in, 1, "c", MLFS_COL_CATEGORICAL, 0);
	warned = hs.warnings;
	rc = run(P_IMPUTE, NULL, 0, 1, in, &out);
	is_int(rc, 0, "impute: all missing runs");
	if (rc == 0) {
		ok(isnan(out->col[0].num[2]) && !out->col[0].text[2] &&
			   !out->col[1].text[2],
		   "impute: all missing stays missing");
		ok(hs.warnings == warned + 2,
		   "impute: ... with a warning each");
		out_free(P_IMPUTE, out);
	}
	tab_free(in);

	/* no rows, no columns */
	in = tab_new(0, 2);
	tab_col(in, 0, "x", MLFS_COL_NUMERIC, 0);
	tab_col(in, 1, "c", MLFS_COL_CATEGORICAL, 0);
	rc = run(P_IMPUTE, NULL, 0, 1, in, &out);
	ok(rc == 0 && out && out->rows == 0 && out->cols == 2,
	   "impute: a table of no rows");
	if (rc == 0)
		out_free(P_IMPUTE, out);
	tab_free(in);
	in = tab_new(0, 0);
	rc = run(P_IMPUTE, NULL, 0, 1, in, &out);
	ok(rc == 0 && out && out->cols == 0, "impute: a table of nothing");
	if (rc == 0)
		out_free(P_IMPUTE, out);
	tab_free(in);

	/* a host that gives a NUMERIC column as text only */
	in = tab_new(3, 1);
	tab_col(in, 0, "x", MLFS_COL_NUMERIC, 0);
	tab_set(in, 0, 0, "2");
	tab_set(in, 0, 2, "4");
	free(in->col[0].num);
	in->col[0].num = NULL;
	rc = run(P_IMPUTE, NULL, 0, 1, in, &out);
	ok(rc == 0 && out->col[0].num && out->col[0].num[1] == 3 &&
		   out->col[0].num[0] == 2,
	   "impute: numbers read from the text when num is NULL");
	if (rc == 0)
		out_free(P_IMPUTE, out);
	tab_free(in);
	rc = run(P_IMPUTE, NULL, 0, 1, NULL, &out);
	is_int(rc, -EINVAL, "impute: no table at all");
	out_free(P_IMPUTE, NULL);
}

/* ---- balance: over and under ---- */

enum { B_ID, B_F, B_G, B_LAB, B_COLS };

/*
 * 17 rows: A x 10, B x 4, C x 2 and one without a label, interleaved.
 * id is r<i>, so a row of the output says which input row it copies.
 */
static struct mlfs_table *balance_table(void)
{
	static const char *const lab[] = { "A", "B", "A", "C", "A", "A",
					   "B", "A", NULL, "A", "A", "B",
					   "C", "A", "A", "B", "A" };
	struct mlfs_table *t = tab_new(17, B_COLS);

	tab_col(t, B_ID, "id", MLFS_COL_CATEGORICAL, MLFS_ROLE_ID);
	tab_col(t, B_F, "f", MLFS_COL_NUMERIC, 0);
	tab_col(t, B_G, "g", MLFS_COL_CATEGORICAL, 0);
	tab_col(t, B_LAB, "y", MLFS_COL_CATEGORICAL, MLFS_ROLE_LABEL);
	for (size_t i = 0; i < t->rows; i++) {
		char id[24];

		snprintf(id, sizeof(id), "r%zu", i);
		tab_set(t, B_ID, i, id);
		tab_setnum(t, B_F, i, (double)i * 1.5);
		tab_set(t, B_G, i, i % 3 ? "u" : "v");
		tab_set(t, B_LAB, i, lab[i]);
	}
	return t;
}

/* The input row the output row r copies, by its id; -1 if none. */
static long source_row(const struct mlfs_table *out, size_t r)
{
	const char *id = out->col[B_ID].text[r];

	if (!id || id[0] != 'r')
		return -1;
	return strtol(id + 1, NULL, 10);
}

/* Every output row is a whole copy of the input row its id names. */
static bool rows_are_copies(const struct mlfs_table *out,
			    const struct mlfs_table *in)
{
	for (size_t r = 0; r < out->rows; r++) {
		long i = source_row(out, r);

		if (i < 0 || (size_t)i >= in->rows || !row_eq(out, r, in, i))
			return false;
	}
	return true;
}

static void test_oversample(void)
{
	struct mlfs_table *in = balance_table(), *out = NULL, *again = NULL;
	struct mlfs_param one[] = { str("method", "oversample") };
	struct mlfs_param half[] = { str("method", "oversample"),
				     num("ratio", 0.5) };
	bool head = true;
	int rc;

	rc = run(P_BALANCE, one, 1, 7, in, &out);
	is_int(rc, 0, "oversample: runs");
	if (rc < 0) {
		printf("#   %s\n", msg);
		tab_free(in);
		return;
	}
	is_int(out->rows, 31, "oversample: 30 labelled rows and one not");
	is_int(count_of(out, "y", "A"), 10, "oversample: A stays 10");
	is_int(count_of(out, "y", "B"), 10, "oversample: B reaches 10");
	is_int(count_of(out, "y", "C"), 10, "oversample: C reaches 10");
	is_int(count_of(out, "y", NULL), 1, "oversample: the unlabelled row");
	for (size_t i = 0; i < in->rows; i++)
		head = head && row_eq(out, i, in, i);
	ok(head, "oversample: the input rows first, in order");
	ok(rows_are_copies(out, in), "oversample: new rows are copies");
	ok(shares_nothing(out, in), "oversample: shares nothing with in");
	rc = run(P_BALANCE, one, 1, 7, in, &again);
	ok(rc == 0 && tab_eq(out, again), "oversample: one seed, one table");
	if (rc == 0)
		out_free(P_BALANCE, again);
	out_free(P_BALANCE, out);

	rc = run(P_BALANCE, half, 2, 7, in, &out);
	is_int(rc, 0, "oversample: ratio 0.5 runs");
	if (rc == 0) {
		is_int(count_of(out, "y", "A"), 10, "oversample 0.5: A 10");
		is_int(count_of(out, "y", "B"), 5, "oversample 0.5: B 5");
		is_int(count_of(out, "y", "C"), 5, "oversample 0.5: C 5");
		out_free(P_BALANCE, out);
	}
	tab_free(in);
}

static void test_undersample(void)
{
	struct mlfs_table *in = balance_table(), *out = NULL, *again = NULL;
	struct mlfs_param one[] = { str("method", "undersample") };
	struct mlfs_param half[] = { str("method", "undersample"),
				     num("ratio", 0.5), str("label", "y") };
	bool ordered = true;
	int rc;

	rc = run(P_BALANCE, one, 1, 7, in, &out);
	is_int(rc, 0, "undersample: runs");
	if (rc < 0) {
		printf("#   %s\n", msg);
		tab_free(in);
		return;
	}
	is_int(out->rows, 7, "undersample: 2 of each, and one unlabelled");
	is_int(count_of(out, "y", "A"), 2, "undersample: A down to 2");
	is_int(count_of(out, "y", "B"), 2, "undersample: B down to 2");
	is_int(count_of(out, "y", "C"), 2, "undersample: C keeps 2");
	is_int(count_of(out, "y", NULL), 1, "undersample: the unlabelled row");
	ok(rows_are_copies(out, in), "undersample: rows are copies");
	for (size_t r = 1; r < out->rows; r++)
		ordered = ordered && source_row(out, r - 1) <
					     source_row(out, r);
	ok(ordered, "undersample: kept rows in their order");
	rc = run(P_BALANCE, one, 1, 7, in, &again);
	ok(rc == 0 && tab_eq(out, again), "undersample: one seed, one table");
	if (rc == 0)
		out_free(P_BALANCE, again);
	out_free(P_BALANCE, out);

	rc = run(P_BALANCE, half, 3, 7, in, &out);
	is_int(rc, 0, "undersample: ratio 0.5 runs");
	if (rc == 0) {
		is_int(count_of(out, "y", "A"), 4, "undersample 0.5: A 4");
		is_int(count_of(out, "y", "B"), 4, "undersample 0.5: B 4");
		is_int(count_of(out, "y", "C"), 2, "undersample 0.5: C 2");
		out_free(P_BALANCE, out);
	}
	tab_free(in);
}

/* ---- smote ---- */

enum { S_ID, S_X0, S_X1, S_X2, S_COLOR, S_LAB, S_NOTE, S_COLS };
#define S_D 3
#define S_K 5

static const char *const colors[] = { "red", "green", "blue" };

/*
 * maj x 600, mid x 300, min x 15, in 3 features, shuffled together: mid
 * spans two of balance's blocks of 256 candidates.
 */
static struct mlfs_table *smote_table(void)
{
	static const char *const names[] = { "maj", "mid", "min" };
	struct mlfs_table *t = tab_new(915, S_COLS);
	size_t left[3] = { 600, 300, 15 };

	tab_col(t, S_ID, "id", MLFS_COL_NUMERIC, MLFS_ROLE_ID);
	tab_col(t, S_X0, "x0", MLFS_COL_NUMERIC, 0);
	tab_col(t, S_X1, "x1", MLFS_COL_NUMERIC, 0);
	tab_col(t, S_X2, "x2", MLFS_COL_NUMERIC, 0);
	tab_col(t, S_COLOR, "color", MLFS_COL_CATEGORICAL, 0);
	tab_col(t, S_LAB, "class", MLFS_COL_CATEGORICAL, MLFS_ROLE_LABEL);
	tab_col(t, S_NOTE, "note", MLFS_COL_TEXT, 0);
	for (size_t i = 0; i < t->rows; i++) {
		size_t c, all = left[0] + left[1] + left[2];
		size_t pick = (size_t)(unif() * (double)all);
		char note[24];

		c = pick < left[0] ? 0 : pick < left[0] + left[1] ? 1 : 2;
		left[c]--;
		tab_setnum(t, S_ID, i, (double)i);
		/* mid around the origin, where balance's zero padding is */
		for (size_t f = 0; f < S_D; f++)
			tab_setnum(t, S_X0 + f, i,
				   ((double)c - 1) * 2 + unif() * 3 - 1.5);
		tab_set(t, S_COLOR, i, colors[rnd() % 3]);
		tab_set(t, S_LAB, i, names[c]);
		snprintf(note, sizeof(note), "n%zu", i);
		tab_set(t, S_NOTE, i, note);
	}
	return t;
}

static double sq_dist(const struct mlfs_table *t, size_t a, size_t b)
{
	double s = 0;

	for (size_t f = 0; f < S_D; f++) {
		double e = t->col[S_X0 + f].num[a] - t->col[S_X0 + f].num[b];

		s += e * e;
	}
	return s;
}

/* The k nearest rows of p's class to p (itself left out), nearest first. */
static size_t knn(const struct mlfs_table *t, size_t p, size_t k,
		  size_t *nn)
{
	double d[S_K];
	size_t have = 0;

	for (size_t j = 0; j < t->rows; j++) {
		double s;
		size_t at;

		if (j == p || !text_eq(t->col[S_LAB].text[j],
				       t->col[S_LAB].text[p]))
			continue;
		s = sq_dist(t, p, j);
		if (have == k && s >= d[k - 1])
			continue;
		at = have < k ? have++ : k - 1;
		while (at > 0 && d[at - 1] > s) {
			d[at] = d[at - 1];
			nn[at] = nn[at - 1];
			at--;
		}
		d[at] = s;
		nn[at] = j;
	}
	return have;
}

/* The color most of nn[0..k) have, ties to the nearer. */
static const char *vote(const struct mlfs_table *t, const size_t *nn,
			size_t k)
{
	const char *best = NULL;
	size_t most = 0;

	for (size_t a = 0; a < k; a++) {
		size_t n = 0;

		for (size_t b = 0; b < k; b++)
			n += text_eq(t->col[S_COLOR].text[nn[a]],
				     t->col[S_COLOR].text[nn[b]]);
		if (n > most) {
			most = n;
			best = t->col[S_COLOR].text[nn[a]];
		}
	}
	return best;
}

/*
 * Synthetic row r of out lies on the segment from its source p (by id) to
 * one of p's k nearest neighbours; its color is their vote, and its other
 * columns copy p.
 */
static bool smote_row_ok(const struct mlfs_table *out,
			 const struct mlfs_table *in, size_t r, size_t k)
{
	double idv = out->col[S_ID].num[r];
	size_t p, nn[S_K], have;

	if (!(idv >= 0 && idv < (double)in->rows))
		return false;
	p = (size_t)idv;
	if (!cell_eq(out, S_LAB, r, in, S_LAB, p) ||
	    !cell_eq(out, S_NOTE, r, in, S_NOTE, p))
		return false;
	have = knn(in, p, k, nn);
	if (!text_eq(out->col[S_COLOR].text[r], vote(in, nn, have)))
		return false;
	for (size_t a = 0; a < have; a++) {
		size_t q = nn[a];
		double num = 0, den = 0, u, err = 0;

		for (size_t f = 0; f < S_D; f++) {
			double x = in->col[S_X0 + f].num[p];
			double e = in->col[S_X0 + f].num[q] - x;

			num += (out->col[S_X0 + f].num[r] - x) * e;
			den += e * e;
		}
		if (den == 0)
			continue; /* random rows: never at one point */
		u = num / den;
		for (size_t f = 0; f < S_D; f++) {
			double x = in->col[S_X0 + f].num[p];
			double y = in->col[S_X0 + f].num[q];
			double v = out->col[S_X0 + f].num[r];

			err = fmax(err, fabs(v - (x + u * (y - x))));
			if (out->col[S_X0 + f].text[r])
				return false; /* the host prints it */
		}
		/* u = 0 has odds 2^-53; a row at its source would pass any
		 * segment, and hide a neighbour search that finds itself */
		if (err < 1e-12 && u > 0 && u < 1 + 1e-12)
			return true;
	}
	return false;
}

static void test_smote(void)
{
	struct mlfs_table *in = smote_table(), *out = NULL, *again = NULL;
	struct mlfs_param ps[] = { str("method", "smote"), num("k", S_K) };
	struct mlfs_param half[] = { str("method", "smote"),
				     num("ratio", 0.5) };
	size_t good = 0, bad_at = 0;
	bool head = true;
	int rc;

	rc = run(P_BALANCE, ps, 2, 11, in, &out);
	is_int(rc, 0, "smote: runs");
	if (rc < 0) {
		printf("#   %s\n", msg);
		tab_free(in);
		return;
	}
	is_int(out->rows, 1800, "smote: 3 x 600 rows");
	is_int(count_of(out, "class", "maj"), 600, "smote: maj stays 600");
	is_int(count_of(out, "class", "mid"), 600, "smote: mid reaches 600");
	is_int(count_of(out, "class", "min"), 600, "smote: min reaches 600");
	for (size_t i = 0; i < in->rows; i++)
		head = head && row_eq(out, i, in, i);
	ok(head, "smote: the input rows first, in order");
	for (size_t r = in->rows; r < out->rows; r++) {
		if (smote_row_ok(out, in, r, S_K))
			good++;
		else if (!bad_at)
			bad_at = r;
	}
	is_int(good, out->rows - in->rows,
	       "smote: every new row on a segment to one of its k nearest");
	if (bad_at)
		printf("#   first bad row %zu\n", bad_at);
	ok(shares_nothing(out, in), "smote: shares nothing with in");
	rc = run(P_BALANCE, ps, 2, 11, in, &again);
	ok(rc == 0 && tab_eq(out, again), "smote: one seed, one table");
	if (rc == 0)
		out_free(P_BALANCE, again);
	rc = run(P_BALANCE, ps, 2, 12, in, &again);
	ok(rc == 0 && !tab_eq(out, again), "smote: another seed, another");
	if (rc == 0)
		out_free(P_BALANCE, again);
	out_free(P_BALANCE, out);

	rc = run(P_BALANCE, half, 2, 11, in, &out);
	is_int(rc, 0, "smote: ratio 0.5 (k 5 by default) runs");
	if (rc == 0) {
		is_int(count_of(out, "class", "mid"), 300,
		       "smote 0.5: mid stays 300");
		is_int(count_of(out, "class", "min"), 300,
		       "smote 0.5: min 300");
		good = 0;
		for (size_t r = in->rows; r < out->rows; r++)
			good += smote_row_ok(out, in, r, 5);
		is_int(good, out->rows - in->rows,
		       "smote 0.5: every new row on a segment");
		out_free(P_BALANCE, out);
	}
	hs.cancel = 1;
	rc = run(P_BALANCE, ps, 2, 11, in, &out);
	is_int(rc, -ECANCELED, "smote: cancelled");
	ok(!out, "smote: ... and gives no table");
	hs.cancel = 0;
	tab_free(in);
}

/* smote over missing values, a class of one row, fewer rows than k. */
static void test_smote_edges(void)
{
	static const char *const lab[] = { "a", "a", "a", "a", "b", "b",
					   "c" };
	static const double x[] = { 0, 1, NAN, 3, 10, NAN, 20 };
	struct mlfs_param ps[] = { str("method", "smote") };
	struct mlfs_table *in = tab_new(7, 3), *out = NULL;
	bool copies = true, missing_ok = true;
	int rc;

	tab_col(in, 0, "x", MLFS_COL_NUMERIC, 0);
	tab_col(in, 1, "y", MLFS_COL_NUMERIC, 0);
	tab_col(in, 2, "lab", MLFS_COL_CATEGORICAL, MLFS_ROLE_LABEL);
	for (size_t i = 0; i < in->rows; i++) {
		tab_setnum(in, 0, i, x[i]);
		tab_set(in, 2, i, lab[i]);
	}
	rc = run(P_BALANCE, ps, 1, 3, in, &out);
	is_int(rc, 0, "smote: missing values, tiny classes run");
	if (rc == 0) {
		is_int(out->rows, 12, "smote: 4 of each class");
		is_int(count_of(out, "lab", "b"), 4,
		       "smote: b of two reaches 4");
		is_int(count_of(out, "lab", "c"), 4,
		       "smote: c of one reaches 4");
		for (size_t r = 7; r < out->rows; r++) {
			if (text_eq(out->col[2].text[r], "c"))
				copies = copies && row_eq(out, r, in, 6);
			/* y is missing everywhere: it stays missing */
			missing_ok = missing_ok && isnan(out->col[1].num[r]);
			/* b's x: 10 and x's mean 34 / 5, so in [6.8, 10] */
			if (text_eq(out->col[2].text[r], "b"))
				missing_ok = missing_ok &&
					     out->col[0].num[r] >= 6.8 &&
					     out->col[0].num[r] <= 10;
		}
		ok(copies, "smote: a class of one row is copied");
		ok(missing_ok, "smote: missing counts as the column mean");
		out_free(P_BALANCE, out);
	}
	tab_free(in);
}

/* ---- balance: tables with nothing to balance, and no label ---- */

static void test_balance_edges(void)
{
	static const char *const methods[] = { "oversample", "undersample",
					       "smote" };
	struct mlfs_table *in, *out = NULL;
	int rc;

	for (size_t m = 0; m < 3; m++) {
		struct mlfs_param ps[] = { str("method", methods[m]) };
		char name[96];

		/* no rows */
		in = tab_new(0, 2);
		tab_col(in, 0, "x", MLFS_COL_NUMERIC, 0);
		tab_col(in, 1, "y", MLFS_COL_CATEGORICAL, MLFS_ROLE_LABEL);
		rc = run(P_BALANCE, ps, 1, 1, in, &out);
		snprintf(name, sizeof(name), "%s: no rows, no rows",
			 methods[m]);
		ok(rc == 0 && out && out->rows == 0, name);
		if (rc == 0)
			out_free(P_BALANCE, out);
		tab_free(in);

		/* one class, and a row with no label */
		in = tab_new(3, 2);
		tab_col(in, 0, "x", MLFS_COL_NUMERIC, 0);
		tab_col(in, 1, "y", MLFS_COL_CATEGORICAL, MLFS_ROLE_LABEL);
		tab_setnum(in, 0, 0, 1);
		tab_set(in, 1, 0, "k");
		tab_set(in, 1, 2, "k");
		rc = run(P_BALANCE, ps, 1, 1, in, &out);
		snprintf(name, sizeof(name), "%s: one class, unchanged",
			 methods[m]);
		ok(rc == 0 && out && out->rows == 3 && row_eq(out, 0, in, 0) &&
			   row_eq(out, 1, in, 1) && row_eq(out, 2, in, 2),
		   name);
		if (rc == 0)
			out_free(P_BALANCE, out);
		tab_free(in);

		/* every label missing */
		in = tab_new(2, 1);
		tab_col(in, 0, "y", MLFS_COL_NUMERIC, MLFS_ROLE_LABEL);
		rc = run(P_BALANCE, ps, 1, 1, in, &out);
		snprintf(name, sizeof(name), "%s: no label values, unchanged",
			 methods[m]);
		ok(rc == 0 && out && out->rows == 2, name);
		if (rc == 0)
			out_free(P_BALANCE, out);
		tab_free(in);
	}

	/* a NUMERIC label: classes by number, "1" and "1.0" are one */
	in = tab_new(4, 1);
	tab_col(in, 0, "y", MLFS_COL_NUMERIC, MLFS_ROLE_LABEL);
	tab_set(in, 0, 0, "1");
	tab_set(in, 0, 1, "1.0");
	tab_set(in, 0, 2, "0");
	tab_set(in, 0, 3, "1");
	{
		struct mlfs_param ps[] = { str("method", "oversample") };
		size_t zeros = 0;

		rc = run(P_BALANCE, ps, 1, 1, in, &out);
		is_int(rc, 0, "oversample: a numeric label runs");
		if (rc == 0) {
			for (size_t i = 0; i < out->rows; i++)
				zeros += out->col[0].num[i] == 0;
			ok(out->rows == 6 && zeros == 3,
			   "oversample: a numeric label's classes by number");
			out_free(P_BALANCE, out);
		}
	}
	tab_free(in);

	/* no label */
	in = tab_new(2, 1);
	tab_col(in, 0, "x", MLFS_COL_NUMERIC, 0);
	{
		struct mlfs_param ps[] = { str("method", "oversample") };
		struct mlfs_param named[] = { str("method", "smote"),
					      str("label", "target") };

		out = (struct mlfs_table *)1;
		rc = run(P_BALANCE, ps, 1, 1, in, &out);
		is_int(rc, -EINVAL, "balance: no label column");
		is_str(msg, "no column has the label role: give \"label\"",
		       "balance: ... says so");
		ok(!out, "balance: ... and gives no table");
		rc = run(P_BALANCE, named, 2, 1, in, &out);
		is_int(rc, -EINVAL, "balance: a label not in the table");
		is_str(msg, "\"label\": column \"target\" not in the table",
		       "balance: ... says which");
	}
	tab_free(in);
	rc = run(P_BALANCE, NULL, 0, 1, NULL, &out);
	is_int(rc, -EINVAL, "balance: no params, no table");
	out_free(P_BALANCE, NULL);
}

/* ---- anonymize ---- */

/* The lowercase hex of HMAC-SHA-256 of s under the host's key, worked
 * out here with OpenSSL, not through the plugin. */
static void hmac_hex(const char *s, char hex[65])
{
	unsigned char md[32];
	unsigned n = 0;

	HMAC(EVP_sha256(), host_key, (int)strlen(host_key),
	     (const unsigned char *)s, strlen(s), md,
	     &n);
	for (unsigned b = 0; b < 32; b++)
		snprintf(hex + 2 * b, 3, "%02x", md[b]);
}

enum { A_EMAIL, A_NAME, A_ZIP, A_BIRTH, A_AGE, A_PHONE, A_COLS };

/*
 * email: RFC 4231 test case 2's data first; a@x.org twice; one missing
 * name: pii too; zip: text; birth: ISO 8601 times and dates
 * age: numbers, one missing; phone: UTF-8 of 1 to 4 bytes a character
 */
static struct mlfs_table *anon_table(void)
{
	static const char *const email[] = { "what do ya want for nothing?",
					     "a@x.org", NULL, "a@x.org",
					     "b@y.com", "c@z.net" };
	static const char *const name[] = { "Ann", "Bob", "Cy", NULL, "Di",
					    "Ed" };
	static const char *const zip[] = { "75001", "75002", "75013",
					   "75001", "69001", "69002" };
	static const char *const birth[] = { "2024-03-17T10:00:00Z",
					     "1990-12-01", NULL, "2001-07-04",
					     "1985-01-31 08:00", "2024-03" };
	static const char *const age[] = { "34", "37", NULL, "30", "41.5",
					   "-3" };
	static const char *const phone[] = { "+33 6 12 34 56 78",
					     "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
					     "abcd",
					     "123", NULL, "12345", "" };
	struct mlfs_table *t = tab_new(6, A_COLS);

	tab_col(t, A_EMAIL, "email", MLFS_COL_TEXT, MLFS_ROLE_PII);
	tab_col(t, A_NAME, "name", MLFS_COL_CATEGORICAL, MLFS_ROLE_PII);
	tab_col(t, A_ZIP, "zip", MLFS_COL_CATEGORICAL, 0);
	tab_col(t, A_BIRTH, "birth", MLFS_COL_TIME, 0);
	tab_col(t, A_AGE, "age", MLFS_COL_NUMERIC, 0);
	tab_col(t, A_PHONE, "phone", MLFS_COL_TEXT, 0);
	tab_fill(t, A_EMAIL, email);
	tab_fill(t, A_NAME, name);
	tab_fill(t, A_ZIP, zip);
	tab_fill(t, A_BIRTH, birth);
	tab_fill(t, A_AGE, age);
	tab_fill(t, A_PHONE, phone);
	return t;
}

/* Column col of t as "v0|v1|..." ("-" for missing), numbers as %g. */
static const char *col_str(const struct mlfs_table *t, const char *col)
{
	static char buf[1024];
	long j = col_of(t, col);
	size_t used = 0;

	if (j < 0)
		return "(no such column)";
	buf[0] = '\0';
	for (size_t i = 0; i < t->rows && used < sizeof(buf); i++) {
		const struct mlfs_column *c = &t->col[j];
		const char *v = c->text[i];
		char num[32];
		int w;

		if (!v && c->num && !isnan(c->num[i])) {
			snprintf(num, sizeof(num), "#%g", c->num[i]);
			v = num;
		}
		w = snprintf(buf + used, sizeof(buf) - used, "%s%s",
			     i ? "|" : "", v ? v : "-");
		if (w < 0)
			break;
		used += (size_t)w;
	}
	return buf;
}

static void test_anon_hash(void)
{
	struct mlfs_table *in = anon_table(), *out = NULL, *again = NULL;
	struct mlfs_param ps[] = { str("email", "hash"), str("age", "hash") };
	char want[65], age34[65];
	bool others = true;
	int rc;

	hmac_hex("a@x.org", want);
	hmac_hex("34", age34);
	rc = run(P_ANON, ps, 2, 1, in, &out);
	is_int(rc, 0, "anonymize: hash runs");
	if (rc < 0) {
		printf("#   %s\n", msg);
		tab_free(in);
		return;
	}
	/* RFC 4231, 4.3: HMAC-SHA-256 of this data under "Jefe" */
	is_str(text_at(out, "email", 0),
	       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
	       "hash: RFC 4231 test case 2's value");
	is_str(text_at(out, "email", 1), want,
	       "hash: the hex of HMAC() worked out here");
	is_str(text_at(out, "email", 3), want,
	       "hash: the same value hashes the same");
	ok(!text_at(out, "email", 2), "hash: missing stays missing");
	ok(strcmp(text_at(out, "email", 4), want) != 0 &&
		   strlen(text_at(out, "email", 4)) == 64,
	   "hash: another value, another 64 hex digits");
	is_str(text_at(out, "age", 0), age34,
	       "hash: a number hashed as the CSV has it");
	ok(!text_at(out, "age", 2) && !out->col[A_AGE].num,
	   "hash: a missing number stays missing, and numbers go");
	is_int(out->col[A_AGE].type, MLFS_COL_CATEGORICAL,
	       "hash: a hashed numeric column is categorical");
	is_int(out->col[A_EMAIL].roles, MLFS_ROLE_PII, "hash: roles kept");
	for (size_t j = 0; j < A_COLS; j++)
		if (j != A_EMAIL && j != A_AGE)
			for (size_t i = 0; i < in->rows; i++)
				others = others && cell_eq(out, j, i, in, j, i);
	ok(others, "hash: other columns unchanged");
	ok(shares_nothing(out, in), "hash: out shares nothing with in");
	rc = run(P_ANON, ps, 2, 2, in, &again);
	ok(rc == 0 && tab_eq(out, again), "hash: one table, one result");
	if (rc == 0)
		out_free(P_ANON, again);
	out_free(P_ANON, out);
	tab_free(in);
}

static void test_anon_nokey(void)
{
	struct mlfs_table *in = anon_table(), *empty = tab_new(0, 1);
	struct mlfs_table *out = (struct mlfs_table *)1;
	struct mlfs_param ps[] = { str("email", "hash") };
	struct mlfs_param dps[] = { str("email", "drop") };
	struct mlfs_host nohash = host, old = host;
	long calls;
	int rc;

	tab_col(empty, 0, "email", MLFS_COL_TEXT, MLFS_ROLE_PII);
	hs.nokey = 1;
	rc = run(P_ANON, ps, 1, 1, in, &out);
	is_int(rc, -ENOKEY, "hash: a mount without anon_key");
	is_str(msg, "hash: the mount has no -o anon_key", "hash: ... says so");
	ok(!out, "hash: ... and gives no table");
	rc = run(P_ANON, ps, 1, 1, empty, &out);
	is_int(rc, -ENOKEY, "hash: no key fails a table of no rows too");
	rc = run(P_ANON, dps, 1, 1, in, &out);
	is_int(rc, 0, "hash: no key is no matter without hash");
	if (rc == 0)
		out_free(P_ANON, out);
	hs.nokey = 0;
	nohash.anon_hash = NULL;
	rc = run_on(&nohash, P_ANON, ps, 1, 1, in, &out);
	is_int(rc, -ENOKEY, "hash: a host without anon_hash");
	is_str(msg, "hash: the mount has no -o anon_key",
	       "hash: ... says the same");
	/* a host older than 1.3: its table ends before anon_hash */
	old.size = offsetof(struct mlfs_host, anon_hash);
	calls = hs.hashes;
	rc = run_on(&old, P_ANON, ps, 1, 1, in, &out);
	is_int(rc, -ENOKEY, "hash: an older host's table");
	ok(hs.hashes == calls, "hash: ... whose anon_hash is not called");
	tab_free(empty);
	tab_free(in);
}

static void test_anon_methods(void)
{
	struct mlfs_table *in = anon_table(), *out = NULL;
	struct mlfs_param ps[] = { str("name", "drop"),
				   str("zip", "truncate:3"),
				   str("birth", "month"),
				   str("age", "bucket:10"),
				   str("phone", "mask") };
	struct mlfs_param ps2[] = { str("birth", "year"),
				    str("phone", "truncate:2"),
				    str("age", "bucket:0.5"),
				    str("zip", "mask") };
	int rc;

	rc = run(P_ANON, ps, 5, 1, in, &out);
	is_int(rc, 0, "anonymize: drop, truncate, month, bucket, mask run");
	if (rc == 0) {
		is_int(out->cols, A_COLS - 1, "drop: one column fewer");
		ok(col_of(out, "name") < 0, "drop: name is gone");
		ok(out->col[0].name && strcmp(out->col[0].name, "email") == 0 &&
			   strcmp(out->col[1].name, "zip") == 0 &&
			   strcmp(out->col[4].name, "phone") == 0,
		   "drop: the others in order");
		is_str(col_str(out, "email"), col_str(in, "email"),
		       "drop: email untouched");
		is_str(col_str(out, "zip"), "750|750|750|750|690|690",
		       "truncate:3");
		is_str(col_str(out, "birth"),
		       "2024-03|1990-12|-|2001-07|1985-01|2024-03", "month");
		is_int(out->col[col_of(out, "birth")].type, MLFS_COL_TIME,
		       "month: still a time column");
		is_str(col_str(out, "age"), "#30|#30|-|#30|#40|#-10",
		       "bucket:10, the lower bounds (text NULL: numbers)");
		ok(isnan(num_at(out, "age", 2)), "bucket: missing stays NaN");
		is_str(col_str(out, "phone"),
		       "*************6 78|***abcd|123|-|*2345|",
		       "mask: all but the last 4 characters, UTF-8 counted");
		ok(shares_nothing(out, in), "anonymize: shares nothing");
		out_free(P_ANON, out);
	}
	rc = run(P_ANON, ps2, 4, 1, in, &out);
	is_int(rc, 0, "anonymize: year, truncate:2, bucket:0.5 run");
	if (rc == 0) {
		is_str(col_str(out, "birth"),
		       "2024|1990|-|2001|1985|2024", "year");
		is_str(col_str(out, "phone"),
		       "+3|\xc3\xa9\xe2\x82\xac|12|-|12|",
		       "truncate:2: characters, not bytes");
		is_str(col_str(out, "age"), "#34|#37|-|#30|#41.5|#-3",
		       "bucket:0.5");
		is_str(col_str(out, "zip"), "*5001|*5002|*5013|*5001|*9001|*9002",
		       "mask on 5 characters");
		out_free(P_ANON, out);
	}
	tab_free(in);
}

static void test_anon_default(void)
{
	struct mlfs_table *in = anon_table(), *out = NULL;
	struct mlfs_param ps[] = { str("default", "drop"),
				   str("email", "hash") };
	struct mlfs_param none[] = { { 0 } };
	int rc;

	rc = run(P_ANON, ps, 2, 1, in, &out);
	is_int(rc, 0, "anonymize: \"default\" runs");
	if (rc == 0) {
		ok(col_of(out, "name") < 0,
		   "default: a pii column not named is dropped");
		ok(text_at(out, "email", 0) &&
			   strlen(text_at(out, "email", 0)) == 64,
		   "default: a named one keeps its own method");
		is_str(col_str(out, "zip"), col_str(in, "zip"),
		       "default: a column without pii is left");
		out_free(P_ANON, out);
	}
	rc = run(P_ANON, none, 0, 1, in, &out);
	ok(rc == 0 && tab_eq(out, in), "anonymize: no params, no change");
	if (rc == 0)
		out_free(P_ANON, out);
	tab_free(in);
}

/* Methods that do not fit the table, found by run. */
static void test_anon_run_errors(void)
{
	static const struct {
		struct mlfs_param p;
		const char *msg;
	} bad[] = {
		{ { .name = "nope", .type = MLFS_PARAM_STRING, .string = "hash" },
		  "column \"nope\": not in the table" },
		{ { .name = "age", .type = MLFS_PARAM_STRING, .string = "month" },
		  "column \"age\": \"month\" is for time columns, not numeric" },
		{ { .name = "zip", .type = MLFS_PARAM_STRING, .string = "year" },
		  "column \"zip\": \"year\" is for time columns, not categorical" },
		{ { .name = "zip",
		    .type = MLFS_PARAM_STRING,
		    .string = "bucket:10" },
		  "column \"zip\": \"bucket:10\" is for numeric columns, not categorical" },
		{ { .name = "birth",
		    .type = MLFS_PARAM_STRING,
		    .string = "bucket:1" },
		  "column \"birth\": \"bucket:1\" is for numeric columns, not time" },
		{ { .name = "default",
		    .type = MLFS_PARAM_STRING,
		    .string = "month" },
		  "column \"email\": \"month\" is for time columns, not text" },
	};
	struct mlfs_table *in = anon_table(), *out;
	int rc;

	for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
		char name[200];

		out = (struct mlfs_table *)1;
		rc = run(P_ANON, &bad[b].p, 1, 1, in, &out);
		snprintf(name, sizeof(name), "anonymize run refuses: %.150s",
			 bad[b].msg);
		ok(rc == -EINVAL && strcmp(msg, bad[b].msg) == 0 && !out,
		   name);
		if (rc != -EINVAL || strcmp(msg, bad[b].msg) != 0)
			printf("#   got %d \"%s\"\n", rc, msg);
		is_int(check(P_ANON, &bad[b].p, 1), 0,
		       "anonymize: ... though check, without the table, takes it");
	}
	/* values the method cannot read: the row, not the value */
	tab_set(in, A_BIRTH, 1, "17/03/2024");
	{
		struct mlfs_param ps[] = { str("birth", "year") };

		rc = run(P_ANON, ps, 1, 1, in, &out);
		is_int(rc, -EINVAL, "year: a value that is no date");
		is_str(msg,
		       "column \"birth\": row 2: not an ISO 8601 date (YYYY...)",
		       "year: ... names the row, not the value");
	}
	tab_set(in, A_BIRTH, 1, "2024");
	{
		struct mlfs_param ps[] = { str("birth", "month") };

		rc = run(P_ANON, ps, 1, 1, in, &out);
		is_int(rc, -EINVAL, "month: a year has no month");
	}
	/* as the host has it: text it could not read, and no number */
	tab_set(in, A_AGE, 4, "old");
	in->col[A_AGE].num[4] = NAN;
	{
		struct mlfs_param ps[] = { str("age", "bucket:5") };

		rc = run(P_ANON, ps, 1, 1, in, &out);
		is_int(rc, -EINVAL, "bucket: a number column's text no number");
		if (rc == 0)
			out_free(P_ANON, out);
		is_str(msg, "column \"age\": row 5: not a finite number",
		       "bucket: ... names the row");
	}
	tab_free(in);
}

static void test_anon_k(void)
{
	static const char *const zip[] = { "75001", "75002", "69001",
					   "75003", "75011", "69002",
					   "75012" };
	static const char *const age[] = { "31", "35", "38", "33", "39",
					   "34", "30" };
	struct mlfs_table *in = tab_new(7, 3), *out = NULL;
	struct mlfs_param ps[] = { str("zip", "truncate:3"),
				   str("age", "bucket:10"),
				   str("k_anonymity", "zip, age") };
	struct mlfs_param drop[] = { str("zip", "drop"),
				     str("k_anonymity", "zip"), num("k", 2) };
	struct mlfs_param far[] = { str("k_anonymity", "zap"), num("k", 2) };
	struct mlfs_param raw[] = { str("k_anonymity", "id"), num("k", 2) };
	struct mlfs_param *k = NULL;
	struct mlfs_param with_k[4];
	int rc;

	tab_col(in, 0, "id", MLFS_COL_CATEGORICAL, MLFS_ROLE_ID);
	tab_col(in, 1, "zip", MLFS_COL_CATEGORICAL, 0);
	tab_col(in, 2, "age", MLFS_COL_NUMERIC, 0);
	tab_fill(in, 1, zip);
	tab_fill(in, 2, age);
	for (size_t i = 0; i < in->rows; i++) {
		char id[24];

		snprintf(id, sizeof(id), "r%zu", i);
		tab_set(in, 0, i, id);
	}
	memcpy(with_k, ps, sizeof(ps));
	k = &with_k[3];
	/* groups after the methods: 750,30 x 5 and 690,30 x 2 */
	*k = num("k", 2);
	rc = run(P_ANON, with_k, 4, 1, in, &out);
	is_int(rc, 0, "k-anonymity: every group of 2 or more, k 2");
	if (rc == 0) {
		is_int(out->rows, 7, "k-anonymity: the table as it was made");
		out_free(P_ANON, out);
	}
	*k = num("k", 5);
	out = (struct mlfs_table *)1;
	rc = run(P_ANON, with_k, 4, 1, in, &out);
	is_int(rc, -EINVAL, "k-anonymity: a group of 2, k 5");
	is_str(msg,
	       "k-anonymity: the group zip=690,age=30 has 2 rows, fewer than k 5",
	       "k-anonymity: ... names the group");
	ok(!out, "k-anonymity: ... and gives no table");
	rc = run(P_ANON, raw, 2, 1, in, &out);
	is_int(rc, -EINVAL, "k-anonymity: unique ids, k 2");
	is_str(msg,
	       "k-anonymity: the group id=r0 has 1 row, fewer than k 2",
	       "k-anonymity: ... the first of the smallest");
	rc = run(P_ANON, drop, 3, 1, in, &out);
	is_int(rc, -EINVAL, "k-anonymity: a dropped column");
	is_str(msg, "\"k_anonymity\": column \"zip\" is dropped",
	       "k-anonymity: ... says so");
	rc = run(P_ANON, far, 2, 1, in, &out);
	is_str(msg, "\"k_anonymity\": column \"zap\" not in the table",
	       "k-anonymity: a column not in the table");
	/* a missing value is a value of its own */
	tab_set(in, 1, 6, NULL);
	*k = num("k", 2);
	rc = run(P_ANON, with_k, 4, 1, in, &out);
	is_str(msg,
	       "k-anonymity: the group zip=(missing),age=30 has 1 row, fewer than k 2",
	       "k-anonymity: a missing value's group");
	tab_free(in);

	/* no rows: no group to be small */
	in = tab_new(0, 1);
	tab_col(in, 0, "zip", MLFS_COL_CATEGORICAL, 0);
	rc = run(P_ANON, NULL, 0, 1, in, &out);
	ok(rc == 0 && out && out->rows == 0, "anonymize: no rows");
	if (rc == 0)
		out_free(P_ANON, out);
	{
		struct mlfs_param z[] = { str("k_anonymity", "zip"),
					  num("k", 3), str("zip", "hash") };

		rc = run(P_ANON, z, 3, 1, in, &out);
		ok(rc == 0 && out && out->rows == 0,
		   "k-anonymity: no rows pass");
		if (rc == 0)
			out_free(P_ANON, out);
	}
	tab_free(in);
	rc = run(P_ANON, NULL, 0, 1, NULL, &out);
	is_int(rc, -EINVAL, "anonymize: no table at all");
}

/* ---- filter ---- */

/* The ids (column "id") of t's rows, "r1,r3". */
static const char *ids_of(const struct mlfs_table *t)
{
	static char buf[512];
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < t->rows && used < sizeof(buf); i++) {
		const char *v = text_at(t, "id", i);
		int w = snprintf(buf + used, sizeof(buf) - used, "%s%s",
				 i ? "," : "", v ? v : "-");

		if (w < 0)
			break;
		used += (size_t)w;
	}
	return buf;
}

static struct mlfs_table *filter_table(void)
{
	static const char *const id[] = { "r0", "r1", "r2", "r3", "r4" };
	static const char *const x[] = { "1", "5", NULL, "10", "5.0" };
	static const char *const s[] = { "apple", "banana", NULL, "cherry",
					 "applesauce" };
	struct mlfs_table *t = tab_new(5, 3);

	tab_col(t, 0, "id", MLFS_COL_CATEGORICAL, MLFS_ROLE_ID);
	tab_col(t, 1, "x", MLFS_COL_NUMERIC, 0);
	tab_col(t, 2, "s", MLFS_COL_CATEGORICAL, 0);
	tab_fill(t, 0, id);
	tab_fill(t, 1, x);
	tab_fill(t, 2, s);
	return t;
}

static void test_filter(void)
{
	static const struct {
		const char *column, *op;
		bool is_num;
		double num;
		const char *text, *want;
	} cases[] = {
		{ "x", ">", true, 4, NULL, "r1,r3,r4" },
		{ "x", "==", true, 5, NULL, "r1,r4" },
		{ "x", "!=", true, 5, NULL, "r0,r2,r3" },
		{ "x", "<=", true, 5, NULL, "r0,r1,r4" },
		{ "x", "<", true, 5, NULL, "r0" },
		{ "x", ">=", true, 10, NULL, "r3" },
		{ "x", "==", false, 0, "5", "r1" },
		{ "x", "contains", true, 1, NULL, "r0,r3" },
		{ "s", "contains", false, 0, "apple", "r0,r4" },
		{ "s", "<", false, 0, "b", "r0,r4" },
		{ "s", ">=", false, 0, "banana", "r1,r3" },
		{ "s", "==", false, 0, "cherry", "r3" },
		{ "s", "!=", false, 0, "cherry", "r0,r1,r2,r4" },
		{ "s", "==", true, 3, NULL, "" },
		{ "id", "==", false, 0, "r2", "r2" },
	};
	struct mlfs_table *in = filter_table(), *out = NULL;
	int rc;

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct mlfs_param ps[] = {
			str("column", cases[c].column), str("op", cases[c].op),
			cases[c].is_num ? num("value", cases[c].num)
					: str("value", cases[c].text)
		};
		char name[128];

		if (cases[c].is_num)
			snprintf(name, sizeof(name), "filter: %s %s %g",
				 cases[c].column, cases[c].op, cases[c].num);
		else
			snprintf(name, sizeof(name), "filter: %s %s \"%s\"",
				 cases[c].column, cases[c].op, cases[c].text);
		rc = run(P_FILTER, ps, 3, 1, in, &out);
		if (rc < 0) {
			ok(0, name);
			printf("#   %d %s\n", rc, msg);
			continue;
		}
		is_str(ids_of(out), cases[c].want, name);
		out_free(P_FILTER, out);
	}
	{
		struct mlfs_param ps[] = { str("column", "x"), str("op", ">"),
					   num("value", 4) };
		struct mlfs_param nope[] = { str("column", "nope"),
					     str("op", ">"), num("value", 4) };

		rc = run(P_FILTER, ps, 3, 1, in, &out);
		if (rc == 0) {
			ok(row_eq(out, 0, in, 1) && row_eq(out, 2, in, 4) &&
				   out->cols == 3 &&
				   shares_nothing(out, in),
			   "filter: kept rows whole, shared with nothing");
			out_free(P_FILTER, out);
		}
		out = (struct mlfs_table *)1;
		rc = run(P_FILTER, nope, 3, 1, in, &out);
		is_int(rc, -EINVAL, "filter: a column not in the table");
		is_str(msg, "\"column\": column \"nope\" not in the table",
		       "filter: ... says which");
		ok(!out, "filter: ... and gives no table");
		tab_free(in);
		in = tab_new(0, 1);
		tab_col(in, 0, "x", MLFS_COL_NUMERIC, 0);
		rc = run(P_FILTER, ps, 3, 1, in, &out);
		ok(rc == 0 && out && out->rows == 0 && out->cols == 1,
		   "filter: no rows");
		if (rc == 0)
			out_free(P_FILTER, out);
	}
	tab_free(in);
}

/* ---- dedupe ---- */

static void test_dedupe(void)
{
	static const char *const k[] = { "a", "a", "b", "a", NULL, NULL, "a" };
	static const char *const n[] = { "1", "1.0", "1", "1", NULL, NULL,
					 "1" };
	static const char *const t[] = { "x", "x", "x", "y", NULL, NULL, "x" };
	static const struct {
		const char *columns;
		size_t want[7];
		size_t nwant;
	} cases[] = {
		{ NULL, { 0, 2, 3, 4 }, 4 },
		{ "k", { 0, 2, 4 }, 3 },
		{ "t", { 0, 3, 4 }, 3 },
		{ " k , k ", { 0, 2, 4 }, 3 },
		{ "n", { 0, 4 }, 2 },
	};
	struct mlfs_table *in = tab_new(7, 3), *out = NULL;
	int rc;

	tab_col(in, 0, "k", MLFS_COL_CATEGORICAL, 0);
	tab_col(in, 1, "n", MLFS_COL_NUMERIC, 0);
	tab_col(in, 2, "t", MLFS_COL_TEXT, 0);
	tab_fill(in, 0, k);
	tab_fill(in, 1, n);
	tab_fill(in, 2, t);
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct mlfs_param ps[] = { str("columns", cases[c].columns) };
		bool same;
		char name[96];

		snprintf(name, sizeof(name), "dedupe: by %s",
			 cases[c].columns ? cases[c].columns : "every column");
		rc = run(P_DEDUPE, ps, cases[c].columns ? 1 : 0, 1, in, &out);
		if (rc < 0) {
			ok(0, name);
			printf("#   %d %s\n", rc, msg);
			continue;
		}
		same = out->rows == cases[c].nwant;
		for (size_t r = 0; same && r < out->rows; r++)
			same = row_eq(out, r, in, cases[c].want[r]);
		ok(same, name);
		out_free(P_DEDUPE, out);
	}
	{
		struct mlfs_param ps[] = { str("columns", "k,nope") };

		out = (struct mlfs_table *)1;
		rc = run(P_DEDUPE, ps, 1, 1, in, &out);
		is_int(rc, -EINVAL, "dedupe: a column not in the table");
		is_str(msg, "column \"nope\": not in the table",
		       "dedupe: ... says which");
		ok(!out, "dedupe: ... and gives no table");
	}
	tab_free(in);
	in = tab_new(0, 2);
	tab_col(in, 0, "k", MLFS_COL_CATEGORICAL, 0);
	tab_col(in, 1, "n", MLFS_COL_NUMERIC, 0);
	rc = run(P_DEDUPE, NULL, 0, 1, in, &out);
	ok(rc == 0 && out && out->rows == 0 && out->cols == 2,
	   "dedupe: no rows");
	if (rc == 0)
		out_free(P_DEDUPE, out);
	tab_free(in);
	rc = run(P_DEDUPE, NULL, 0, 1, NULL, &out);
	is_int(rc, -EINVAL, "dedupe: no table at all");
}

/* ---- augment ---- */

enum { N_X, N_Y, N_C, N_K, N_LAB, N_ID, N_COLS };

/*
 * x: uniform in [-5, 5); y: in [50, 150), every 10th missing; c: a
 * colour; k: 7 everywhere (std 0); lab: a numeric label 0/1; id: a
 * numeric id.  Features: x, y, k.
 */
static struct mlfs_table *noise_table(size_t n)
{
	struct mlfs_table *t = tab_new(n, N_COLS);

	tab_col(t, N_X, "x", MLFS_COL_NUMERIC, 0);
	tab_col(t, N_Y, "y", MLFS_COL_NUMERIC, 0);
	tab_col(t, N_C, "c", MLFS_COL_CATEGORICAL, 0);
	tab_col(t, N_K, "k", MLFS_COL_NUMERIC, 0);
	tab_col(t, N_LAB, "lab", MLFS_COL_NUMERIC, MLFS_ROLE_LABEL);
	tab_col(t, N_ID, "id", MLFS_COL_NUMERIC, MLFS_ROLE_ID);
	for (size_t i = 0; i < n; i++) {
		tab_setnum(t, N_X, i, unif() * 10 - 5);
		tab_setnum(t, N_Y, i, i % 10 == 3 ? NAN : 50 + unif() * 100);
		tab_set(t, N_C, i, colors[i % 3]);
		tab_setnum(t, N_K, i, 7);
		tab_setnum(t, N_LAB, i, (double)(i % 2));
		tab_setnum(t, N_ID, i, (double)i);
	}
	return t;
}

/* The population std of t's column j over its present values. */
static double col_std(const struct mlfs_table *t, size_t j)
{
	double sum = 0, ss = 0;
	size_t n = 0;

	for (size_t i = 0; i < t->rows; i++) {
		if (!isnan(t->col[j].num[i])) {
			sum += t->col[j].num[i];
			n++;
		}
	}
	for (size_t i = 0; i < t->rows; i++) {
		double e = t->col[j].num[i] - sum / (double)n;

		if (!isnan(e))
			ss += e * e;
	}
	return sqrt(ss / (double)n);
}

/* The first in->rows rows of out are in's, unchanged. */
static bool originals_first(const struct mlfs_table *out,
			    const struct mlfs_table *in)
{
	if (out->rows < in->rows)
		return false;
	for (size_t i = 0; i < in->rows; i++)
		if (!row_eq(out, i, in, i))
			return false;
	return true;
}

/* The mean and std of out - in in column j, over every copy. */
static void noise_diffs(const struct mlfs_table *out,
			const struct mlfs_table *in, size_t j, double *mean,
			double *sd, size_t *kept, size_t *lost)
{
	double sum = 0, ss = 0;
	size_t n = 0;

	*kept = *lost = 0;
	for (size_t r = in->rows; r < out->rows; r++) {
		size_t i = r % in->rows;
		double a = in->col[j].num[i], b = out->col[j].num[r];

		if (isnan(a)) {
			*kept += isnan(b) && !out->col[j].text[r];
			continue;
		}
		*lost += isnan(b);
		sum += b - a;
		n++;
	}
	*mean = sum / (double)n;
	for (size_t r = in->rows; r < out->rows; r++) {
		size_t i = r % in->rows;
		double e = out->col[j].num[r] - in->col[j].num[i] - *mean;

		if (!isnan(e))
			ss += e * e;
	}
	*sd = sqrt(ss / (double)n);
}

static void test_augment_noise(void)
{
	const size_t n = 3000;
	struct mlfs_param ps[] = { str("method", "noise"), num("sigma", 0.1),
				   num("copies", 2) };
	struct mlfs_table *in = noise_table(n), *out = NULL, *again = NULL;
	bool copied = true, constant = true;
	double mean, sd, want, m2, sd2;
	size_t kept, lost;
	int rc;

	rc = run(P_AUGMENT, ps, 3, 7, in, &out);
	is_int(rc, 0, "augment noise: runs");
	if (rc < 0) {
		printf("#   %s\n", msg);
		tab_free(in);
		return;
	}
	is_int(out->rows, 3 * n, "augment noise: 2 copies: three times the rows");
	ok(originals_first(out, in), "augment noise: the rows first, unchanged");
	for (size_t r = n; r < out->rows; r++) {
		size_t i = r % n;

		copied = copied && cell_eq(out, N_C, r, in, N_C, i) &&
			 cell_eq(out, N_LAB, r, in, N_LAB, i) &&
			 cell_eq(out, N_ID, r, in, N_ID, i);
		constant = constant && out->col[N_K].num[r] == 7;
	}
	ok(copied, "augment noise: category, label and id copied");
	ok(constant, "augment noise: a column of std 0 keeps its values");
	want = 0.1 * col_std(in, N_X);
	noise_diffs(out, in, N_X, &mean, &sd, &kept, &lost);
	printf("# x: diff mean %g sd %g, want 0 and %g\n", mean, sd, want);
	ok(fabs(mean) < 5 * want / sqrt(2.0 * (double)n),
	   "augment noise: x moves by 0 on average");
	ok(fabs(sd / want - 1) < 0.05, "augment noise: x by sigma x its std");
	want = 0.1 * col_std(in, N_Y);
	noise_diffs(out, in, N_Y, &m2, &sd2, &kept, &lost);
	printf("# y: diff mean %g sd %g, want 0 and %g\n", m2, sd2, want);
	ok(fabs(m2) < 5 * want / sqrt(1.8 * (double)n) &&
		   fabs(sd2 / want - 1) < 0.05,
	   "augment noise: y by its own std, over its present values");
	is_int(kept, 2 * n / 10, "augment noise: a missing value stays missing");
	is_int(lost, 0, "augment noise: ... and a present one present");
	rc = run(P_AUGMENT, ps, 3, 7, in, &again);
	ok(rc == 0 && tab_eq(out, again), "augment noise: one seed, one table");
	if (rc == 0)
		out_free(P_AUGMENT, again);
	rc = run(P_AUGMENT, ps, 3, 8, in, &again);
	ok(rc == 0 && !tab_eq(out, again),
	   "augment noise: another seed, another table");
	if (rc == 0)
		out_free(P_AUGMENT, again);
	out_free(P_AUGMENT, out);
	tab_free(in);
}

/* The mean of column j's present values. */
static double col_mean(const struct mlfs_table *t, size_t j)
{
	double sum = 0;
	size_t n = 0;

	for (size_t i = 0; i < t->rows; i++) {
		if (!isnan(t->col[j].num[i])) {
			sum += t->col[j].num[i];
			n++;
		}
	}
	return sum / (double)n;
}

enum { M_X, M_C, M_Y, M_LAB, M_ID, M_COLS };

/* Output row r's c, lab and id are input row i's. */
static bool row_rest_eq(const struct mlfs_table *out, size_t r,
			const struct mlfs_table *in, size_t i)
{
	return cell_eq(out, M_C, r, in, M_C, i) &&
	       cell_eq(out, M_LAB, r, in, M_LAB, i) &&
	       cell_eq(out, M_ID, r, in, M_ID, i);
}

/*
 * Whether output row r is lambda x_i + (1 - lambda) x_j for its row i
 * and some other row j, a missing value as the column's mean (mean[]),
 * with the other columns from row i if lambda >= 0.5, else from j, and
 * every feature within its column's [lo, hi]; *lambda is the weight.
 */
static bool mixup_row_ok(const struct mlfs_table *out,
			 const struct mlfs_table *in, size_t r,
			 const double *mean, const double *lo,
			 const double *hi, double *lambda)
{
	static const size_t feat[] = { M_X, M_Y };
	size_t n = in->rows, i = r % n;

	for (size_t f = 0; f < 2; f++) {
		double v = out->col[feat[f]].num[r];

		double slack = 1e-12 * (fabs(lo[f]) + fabs(hi[f]));

		/* b + l (a - b) can round an ulp past a */
		if (!isnan(v) && (v < lo[f] - slack || v > hi[f] + slack))
			return false;
	}
	for (size_t j = 0; j < n; j++) {
		double a[2], b[2], l = 1, widest = 0;
		bool fits = j != i || n == 1;

		/* the weight from the feature where the rows differ most */
		for (size_t f = 0; f < 2 && fits; f++) {
			a[f] = in->col[feat[f]].num[i];
			b[f] = in->col[feat[f]].num[j];
			if (isnan(a[f]) && isnan(b[f])) {
				fits = isnan(out->col[feat[f]].num[r]);
				a[f] = b[f] = 0;
				continue;
			}
			a[f] = isnan(a[f]) ? mean[f] : a[f];
			b[f] = isnan(b[f]) ? mean[f] : b[f];
			if (fabs(a[f] - b[f]) <= widest)
				continue;
			widest = fabs(a[f] - b[f]);
			l = (out->col[feat[f]].num[r] - b[f]) / (a[f] - b[f]);
		}
		if (!fits)
			continue;
		if (l < -1e-12 || l > 1 + 1e-12)
			continue;
		for (size_t f = 0; f < 2 && fits; f++) {
			double want = b[f] + l * (a[f] - b[f]);
			double v = out->col[feat[f]].num[r];

			if (isnan(in->col[feat[f]].num[i]) &&
			    isnan(in->col[feat[f]].num[j]))
				continue;
			fits = fabs(v - want) <=
			       1e-9 * (1 + fabs(a[f]) + fabs(b[f]));
		}
		if (!fits)
			continue;
		/* the rest from the heavier row; both near 0.5 */
		if (!(l < 0.5 - 1e-9 && row_rest_eq(out, r, in, j)) &&
		    !(l > 0.5 + 1e-9 && row_rest_eq(out, r, in, i)) &&
		    !(fabs(l - 0.5) <= 1e-9 && (row_rest_eq(out, r, in, i) ||
						 row_rest_eq(out, r, in, j))))
			continue;
		*lambda = l;
		return true;
	}
	return false;
}

/*
 * x: in [0, 10), every 17th missing; c: a colour; y: in [-50, 50),
 * every 23rd missing; lab: "a" or "b", the label; id: numeric, an id.
 */
static struct mlfs_table *mixup_table(size_t n)
{
	struct mlfs_table *t = tab_new(n, M_COLS);

	tab_col(t, M_X, "x", MLFS_COL_NUMERIC, 0);
	tab_col(t, M_C, "c", MLFS_COL_CATEGORICAL, 0);
	tab_col(t, M_Y, "y", MLFS_COL_NUMERIC, 0);
	tab_col(t, M_LAB, "lab", MLFS_COL_CATEGORICAL, MLFS_ROLE_LABEL);
	tab_col(t, M_ID, "id", MLFS_COL_NUMERIC, MLFS_ROLE_ID);
	for (size_t i = 0; i < n; i++) {
		tab_setnum(t, M_X, i, i % 17 == 0 ? NAN : unif() * 10);
		tab_set(t, M_C, i, colors[i % 3]);
		tab_setnum(t, M_Y, i, i % 23 == 0 ? NAN : unif() * 100 - 50);
		tab_set(t, M_LAB, i, i % 2 ? "a" : "b");
		tab_setnum(t, M_ID, i, (double)i);
	}
	return t;
}

/*
 * Run mixup with alpha and check every new row; *middle is the share of
 * weights in [0.1, 0.9].
 */
static void mixup_case(const struct mlfs_table *in, double alpha,
		       double *middle)
{
	struct mlfs_param ps[] = { str("method", "mixup"),
				   num("alpha", alpha), num("copies", 2) };
	const size_t n = in->rows;
	double mean[2], lo[2] = { INFINITY, INFINITY };
	double hi[2] = { -INFINITY, -INFINITY };
	struct mlfs_table *out = NULL, *again = NULL;
	size_t good = 0, mid = 0;
	char name[160];
	int rc;

	mean[0] = col_mean(in, M_X);
	mean[1] = col_mean(in, M_Y);
	for (size_t i = 0; i < n; i++) {
		for (size_t f = 0; f < 2; f++) {
			double v = in->col[f ? M_Y : M_X].num[i];

			lo[f] = isnan(v) || v >= lo[f] ? lo[f] : v;
			hi[f] = isnan(v) || v <= hi[f] ? hi[f] : v;
		}
	}
	*middle = NAN;
	rc = run(P_AUGMENT, ps, 3, 5, in, &out);
	snprintf(name, sizeof(name), "augment mixup alpha %g: runs", alpha);
	is_int(rc, 0, name);
	if (rc < 0) {
		printf("#   %s\n", msg);
		return;
	}
	snprintf(name, sizeof(name),
		 "augment mixup alpha %g: the rows first, then 2 copies",
		 alpha);
	ok(out->rows == 3 * n && originals_first(out, in), name);
	for (size_t r = n; r < out->rows; r++) {
		double l;

		if (!mixup_row_ok(out, in, r, mean, lo, hi, &l)) {
			printf("#   row %zu is no mix of row %zu and another\n",
			       r, r % n);
			continue;
		}
		good++;
		mid += l >= 0.1 && l <= 0.9;
	}
	snprintf(name, sizeof(name),
		 "augment mixup alpha %g: each new row mixes its row and another, the label from the heavier",
		 alpha);
	is_int(good, 2 * n, name);
	*middle = (double)mid / (double)(2 * n);
	rc = run(P_AUGMENT, ps, 3, 5, in, &again);
	snprintf(name, sizeof(name), "augment mixup alpha %g: one seed, one table",
		 alpha);
	ok(rc == 0 && tab_eq(out, again), name);
	if (rc == 0)
		out_free(P_AUGMENT, again);
	out_free(P_AUGMENT, out);
}

static void test_augment_mixup(void)
{
	struct mlfs_table *in = mixup_table(300), *out = NULL;
	struct mlfs_param ps[] = { str("method", "mixup") };
	double middle;
	int rc;

	/*
	 * Beta(0.2, 0.2) puts about a third of its mass in [0.1, 0.9]
	 * (each tail is ~0.33); Beta(1, 1) is uniform, 0.8 there.  600
	 * draws: a standard error of 0.02 either way.
	 */
	mixup_case(in, 0.2, &middle);
	printf("# alpha 0.2: %g of the weights in [0.1, 0.9]\n", middle);
	ok(middle > 0.25 && middle < 0.43,
	   "augment mixup alpha 0.2: weights near 0 and 1, as Beta(0.2, 0.2)");
	mixup_case(in, 1, &middle);
	printf("# alpha 1: %g of the weights in [0.1, 0.9]\n", middle);
	ok(middle > 0.72 && middle < 0.88,
	   "augment mixup alpha 1: weights uniform, as Beta(1, 1)");
	tab_free(in);

	/* one row mixes with itself */
	in = mixup_table(2);
	tab_setnum(in, M_Y, 0, 3.25); /* x stays missing */
	in->rows = 1;
	rc = run(P_AUGMENT, ps, 1, 1, in, &out);
	ok(rc == 0 && out->rows == 2 &&
		   isnan(out->col[M_X].num[1]) &&
		   out->col[M_Y].num[1] == in->col[M_Y].num[0] &&
		   row_rest_eq(out, 1, in, 0),
	   "augment mixup: one row, mixed with itself");
	if (rc == 0)
		out_free(P_AUGMENT, out);
	in->rows = 2;
	tab_free(in);
}

/* ---- augment: images ---- */

/*
 * An image table: an id, the pixels with the label among them (not a
 * pixel), and a note after; row i's pixel p is (i + 1) x (p + 1), and
 * row 1's pixel 4 is missing.
 */
static struct mlfs_table *image_table(size_t rows, size_t npix)
{
	struct mlfs_table *t = tab_new(rows, npix + 3);
	size_t j = 0;

	tab_col(t, j++, "id", MLFS_COL_NUMERIC, MLFS_ROLE_ID);
	for (size_t p = 0; p < npix; p++) {
		static char names[16][8];

		if (p == 2)
			tab_col(t, j++, "lab", MLFS_COL_NUMERIC,
				MLFS_ROLE_LABEL);
		snprintf(names[p], sizeof(names[p]), "p%zu", p);
		tab_col(t, j++, names[p], MLFS_COL_NUMERIC, 0);
	}
	tab_col(t, j++, "note", MLFS_COL_TEXT, 0);
	for (size_t i = 0; i < rows; i++) {
		tab_setnum(t, 0, i, (double)(100 + i));
		tab_setnum(t, 3, i, (double)(i % 2));
		tab_set(t, npix + 2, i, i % 2 ? "odd" : "even");
	}
	for (size_t i = 0; i < rows; i++) {
		for (size_t p = 0; p < npix; p++) {
			double v = (double)((i + 1) * (p + 1));

			tab_setnum(t, p < 2 ? 1 + p : 2 + p, i,
				   i == 1 && p == 4 ? NAN : v);
		}
	}
	return t;
}

/* The column of pixel p in image_table. */
static size_t pix_col(size_t p)
{
	return p < 2 ? 1 + p : 2 + p;
}

/* Row r's pixels of out are want[] (NaN: missing, as text too). */
static bool pixels_are(const struct mlfs_table *out, size_t r,
		       const double *want, size_t npix)
{
	for (size_t p = 0; p < npix; p++) {
		const struct mlfs_column *c = &out->col[pix_col(p)];

		if (!num_eq(c->num[r], want[p]) ||
		    (isnan(want[p]) && c->text[r]))
			return false;
	}
	return true;
}

/* Row r's id, label and note are row i's of in. */
static bool image_rest_eq(const struct mlfs_table *out, size_t r,
			  const struct mlfs_table *in, size_t i)
{
	size_t last = in->cols - 1;

	return cell_eq(out, 0, r, in, 0, i) && cell_eq(out, 3, r, in, 3, i) &&
	       cell_eq(out, last, r, in, last, i);
}

/* Row i's image of in moved down dy and right dx, into px[]. */
static void shifted(const struct mlfs_table *in, size_t i, long h, long w,
		    long dy, long dx, double *px)
{
	for (long y = 0; y < h; y++) {
		for (long x = 0; x < w; x++) {
			long sy = y - dy, sx = x - dx;

			px[y * w + x] = sy < 0 || sy >= h || sx < 0 || sx >= w
						? 0
						: in->col[pix_col((size_t)(
							  sy * w + sx))]
							  .num[i];
		}
	}
}

/* Row i's image with the s x s square centred at (cy, cx) set to 0. */
static void cut(const struct mlfs_table *in, size_t i, long h, long w,
		long s, long cy, long cx, double *px)
{
	for (long y = 0; y < h; y++) {
		for (long x = 0; x < w; x++) {
			bool in_sq = y >= cy - s / 2 && y < cy - s / 2 + s &&
				     x >= cx - s / 2 && x < cx - s / 2 + s;

			px[y * w + x] =
				in_sq ? 0
				      : in->col[pix_col((size_t)(y * w + x))]
						.num[i];
		}
	}
}

static void test_augment_flip(void)
{
	static const double shape23[] = { 2, 3 }, shape32[] = { 3, 2 };
	/* 1 2 3 / 4 5 6 mirrored; as 3 x 2, 1 2 / 3 4 / 5 6 mirrored */
	static const double flip23[2][6] = { { 3, 2, 1, 6, 5, 4 },
					     { 6, 4, 2, 12, NAN, 8 } };
	static const double flip32[2][6] = { { 2, 1, 4, 3, 6, 5 },
					     { 4, 2, 8, 6, 12, NAN } };
	struct mlfs_param ps[] = { str("method", "flip"),
				   { .name = "shape", .type = MLFS_PARAM_LIST,
				     .list = shape23, .nlist = 2 } };
	struct mlfs_table *in = image_table(2, 6), *out = NULL;
	int rc;

	rc = run(P_AUGMENT, ps, 2, 1, in, &out);
	is_int(rc, 0, "augment flip: runs");
	if (rc < 0) {
		printf("#   %s\n", msg);
		tab_free(in);
		return;
	}
	ok(out->rows == 4 && originals_first(out, in) &&
		   shares_nothing(out, in),
	   "augment flip: the rows first, then one copy, sharing nothing");
	ok(pixels_are(out, 2, flip23[0], 6) && pixels_are(out, 3, flip23[1], 6),
	   "augment flip: [2, 3] mirrored left to right, missing moved");
	ok(image_rest_eq(out, 2, in, 0) && image_rest_eq(out, 3, in, 1),
	   "augment flip: id, label between the pixels, text copied");
	out_free(P_AUGMENT, out);
	ps[1].list = shape32;
	rc = run(P_AUGMENT, ps, 2, 1, in, &out);
	ok(rc == 0 && pixels_are(out, 2, flip32[0], 6) &&
		   pixels_are(out, 3, flip32[1], 6),
	   "augment flip: [3, 2] mirrored left to right");
	if (rc == 0)
		out_free(P_AUGMENT, out);
	ps[1].list = (const double[]){ 3, 3 };
	out = (struct mlfs_table *)1;
	rc = run(P_AUGMENT, ps, 2, 1, in, &out);
	is_int(rc, -EINVAL, "augment flip: a shape the pixels do not fill");
	is_str(msg,
	       "\"shape\": [3, 3] is 3 x 3 pixels, but the table has 6 pixel columns (numeric, not the label or an id)",
	       "augment flip: ... says so");
	ok(!out, "augment flip: ... and gives no table");
	tab_free(in);
}

static void test_augment_shift_cutout(void)
{
	static const double shape[] = { 3, 3 };
	/* 1 2 3 / 4 5 6 / 7 8 9 moved down 1 and right 1 */
	static const double down_right[9] = { 0, 0, 0, 0, 1, 2, 0, 4, 5 };
	static const double up_left[9] = { 5, 6, 0, 8, 9, 0, 0, 0, 0 };
	/* a 2 x 2 square centred at (1, 1): rows and columns 0..1 */
	static const double cut11[9] = { 0, 0, 3, 0, 0, 6, 7, 8, 9 };
	struct mlfs_param ps[] = { str("method", "shift"),
				   { .name = "shape", .type = MLFS_PARAM_LIST,
				     .list = shape, .nlist = 2 },
				   num("copies", 40), num("pixels", 1) };
	struct mlfs_table *in = image_table(2, 9), *out = NULL;
	bool seen[3][3] = { { false } }, all = true, rest = true;
	size_t good = 0, zeros_ok = 0;
	double px[9];
	int rc;

	shifted(in, 0, 3, 3, 1, 1, px);
	ok(pixels_are(in, 0, (double[9]){ 1, 2, 3, 4, 5, 6, 7, 8, 9 }, 9) &&
		   memcmp(px, down_right, sizeof(px)) == 0,
	   "augment shift: the test's own shift, by hand");
	shifted(in, 0, 3, 3, -1, -1, px);
	ok(memcmp(px, up_left, sizeof(px)) == 0,
	   "augment shift: ... and the other way");
	cut(in, 0, 3, 3, 2, 1, 1, px);
	ok(memcmp(px, cut11, sizeof(px)) == 0,
	   "augment cutout: the test's own cutout, by hand");

	rc = run(P_AUGMENT, ps, 4, 3, in, &out);
	is_int(rc, 0, "augment shift: runs");
	if (rc < 0) {
		printf("#   %s\n", msg);
		tab_free(in);
		return;
	}
	ok(out->rows == 82 && originals_first(out, in),
	   "augment shift: the rows first, then 40 copies");
	for (size_t r = 2; r < out->rows; r++) {
		bool found = false;

		rest = rest && image_rest_eq(out, r, in, r % 2);
		for (long dy = -1; dy <= 1 && !found; dy++) {
			for (long dx = -1; dx <= 1 && !found; dx++) {
				shifted(in, r % 2, 3, 3, dy, dx, px);
				if (!pixels_are(out, r, px, 9))
					continue;
				found = true;
				seen[dy + 1][dx + 1] = true;
			}
		}
		good += found;
	}
	is_int(good, 80, "augment shift: each copy its row moved by at most 1, 0 where nothing moved in");
	for (int y = 0; y < 3; y++)
		for (int x = 0; x < 3; x++)
			all = all && seen[y][x];
	ok(all, "augment shift: every move of [-1, 1] x [-1, 1] drawn");
	ok(rest, "augment shift: id, label and text copied");
	out_free(P_AUGMENT, out);

	ps[0] = str("method", "cutout");
	ps[3] = num("pixels", 2);
	memset(seen, 0, sizeof(seen));
	good = 0;
	rc = run(P_AUGMENT, ps, 4, 3, in, &out);
	is_int(rc, 0, "augment cutout: runs");
	for (size_t r = 2; rc == 0 && r < out->rows; r++) {
		bool found = false;

		for (long cy = 0; cy < 3 && !found; cy++) {
			for (long cx = 0; cx < 3 && !found; cx++) {
				cut(in, r % 2, 3, 3, 2, cy, cx, px);
				if (!pixels_are(out, r, px, 9))
					continue;
				found = true;
				seen[cy][cx] = true;
			}
		}
		good += found && image_rest_eq(out, r, in, r % 2);
	}
	is_int(good, 80, "augment cutout: each copy its row with a 2 x 2 square, clipped, set to 0");
	all = true;
	for (int y = 0; y < 3; y++)
		for (int x = 0; x < 3; x++)
			all = all && seen[y][x];
	ok(all, "augment cutout: every centre drawn");
	if (rc == 0)
		out_free(P_AUGMENT, out);

	/* the default side for 3 x 3: max(1, 3 / 4), one pixel */
	rc = run(P_AUGMENT, ps, 3, 3, in, &out);
	for (size_t r = 2; rc == 0 && r < out->rows; r++) {
		size_t zeros = 0;

		for (size_t p = 0; p < 9; p++)
			zeros += out->col[pix_col(p)].num[r] == 0;
		zeros_ok += zeros == 1;
	}
	is_int(zeros_ok, 80, "augment cutout: by default one pixel of a 3 x 3 image");
	if (rc == 0)
		out_free(P_AUGMENT, out);

	/* a side past the image: all of it, wherever the centre */
	ps[2] = num("copies", 1);
	ps[3] = num("pixels", 7);
	rc = run(P_AUGMENT, ps, 4, 3, in, &out);
	ok(rc == 0 && out->rows == 4 &&
		   pixels_are(out, 2, (double[9]){ 0 }, 9) &&
		   pixels_are(out, 3, (double[9]){ 0 }, 9),
	   "augment cutout: a 7 x 7 square clears a 3 x 3 image");
	if (rc == 0)
		out_free(P_AUGMENT, out);
	tab_free(in);
}

static void test_augment_edges(void)
{
	static const double shape[] = { 1, 2 };
	static const char *const methods[] = { "noise", "mixup", "flip",
					       "shift", "cutout" };
	struct mlfs_table *in, *out = NULL;
	long warnings;
	int rc;

	for (size_t m = 0; m < 5; m++) {
		struct mlfs_param ps[] = {
			str("method", methods[m]), num("copies", 3),
			{ .name = "shape", .type = MLFS_PARAM_LIST,
			  .list = shape, .nlist = 2 }
		};
		size_t np = m < 2 ? 2 : 3;
		char name[96];

		in = tab_new(0, 3);
		tab_col(in, 0, "a", MLFS_COL_NUMERIC, 0);
		tab_col(in, 1, "b", MLFS_COL_NUMERIC, 0);
		tab_col(in, 2, "y", MLFS_COL_CATEGORICAL, MLFS_ROLE_LABEL);
		rc = run(P_AUGMENT, ps, np, 1, in, &out);
		snprintf(name, sizeof(name), "augment %s: no rows, no rows",
			 methods[m]);
		ok(rc == 0 && out && out->rows == 0 && out->cols == 3, name);
		if (rc == 0)
			out_free(P_AUGMENT, out);
		tab_free(in);

		/* every value missing, and 3 copies of 5 rows */
		in = tab_new(5, 3);
		tab_col(in, 0, "a", MLFS_COL_NUMERIC, 0);
		tab_col(in, 1, "b", MLFS_COL_NUMERIC, 0);
		tab_col(in, 2, "y", MLFS_COL_CATEGORICAL, MLFS_ROLE_LABEL);
		rc = run(P_AUGMENT, ps, np, 1, in, &out);
		snprintf(name, sizeof(name),
			 "augment %s: 3 copies of 5 rows of missing values",
			 methods[m]);
		ok(rc == 0 && out->rows == 20, name);
		if (rc == 0)
			out_free(P_AUGMENT, out);
		tab_free(in);
	}

	/* nothing to change: copies, and a warning */
	in = tab_new(3, 1);
	tab_col(in, 0, "y", MLFS_COL_CATEGORICAL, MLFS_ROLE_LABEL);
	tab_set(in, 0, 0, "p");
	tab_set(in, 0, 2, "n");
	{
		struct mlfs_param ps[] = { str("method", "noise") };

		warnings = hs.warnings;
		rc = run(P_AUGMENT, ps, 1, 1, in, &out);
		ok(rc == 0 && out->rows == 6 && row_eq(out, 3, in, 0) &&
			   row_eq(out, 4, in, 1) && row_eq(out, 5, in, 2),
		   "augment noise: no feature columns, copies");
		ok(hs.warnings > warnings, "augment noise: ... and a warning");
		if (rc == 0)
			out_free(P_AUGMENT, out);
	}
	tab_free(in);

	/* cancelled */
	in = noise_table(10);
	{
		struct mlfs_param ps[] = { str("method", "noise") };

		hs.cancel = 1;
		out = (struct mlfs_table *)1;
		rc = run(P_AUGMENT, ps, 1, 1, in, &out);
		hs.cancel = 0;
		is_int(rc, -ECANCELED, "augment: cancelled");
		ok(!out && strcmp(msg, "cancelled") == 0,
		   "augment: ... says so and gives no table");
	}
	tab_free(in);

	/* more rows than an output table holds */
	{
		struct mlfs_param ps[] = { str("method", "noise"),
					   num("copies", 1) };
		struct mlfs_table big = {
			.rows = (SIZE_MAX / 2) / sizeof(double) / 2 + 1
		};
		char want[160];

		out = (struct mlfs_table *)1;
		rc = run(P_AUGMENT, ps, 2, 1, &big, &out);
		is_int(rc, -E2BIG, "augment: too many rows");
		snprintf(want, sizeof(want),
			 "\"copies\": 1 makes %zu rows grow past %zu",
			 big.rows, (SIZE_MAX / 2) / sizeof(double));
		is_str(msg, want, "augment: ... says so");
		ok(!out, "augment: ... and gives no table");
	}
	rc = run(P_AUGMENT, (struct mlfs_param[]){ str("method", "flip") },
		 1, 1, NULL, &out);
	is_int(rc, -EINVAL, "augment: flip without a shape, no table");
	rc = run(P_AUGMENT, (struct mlfs_param[]){ str("method", "noise") },
		 1, 1, NULL, &out);
	is_int(rc, -EINVAL, "augment: no table");
}

/* ---- bad params ---- */

struct bad {
	int plugin;
	struct mlfs_param ps[3];
	size_t n;
	const char *msg;
};

static void test_bad_params(void)
{
	static const double two[] = { 1, 2 }, zero3[] = { 0, 3 };
	static const double half[] = { 2.5, 3 }, three[] = { 1, 2, 3 };
	static const double huge[] = { 2e6, 1 };
	const struct bad bad[] = {
		{ P_BALANCE, { { 0 } }, 0,
		  "\"method\": must be given: \"oversample\", \"undersample\" or \"smote\"" },
		{ P_BALANCE, { str("method", "shuffle") }, 1,
		  "\"method\": must be \"oversample\", \"undersample\" or \"smote\", got \"shuffle\"" },
		{ P_BALANCE, { num("method", 1) }, 1,
		  "\"method\": must be \"oversample\", \"undersample\" or \"smote\", got a number" },
		{ P_BALANCE, { str("method", "smote"), num("ratio", 0) }, 2,
		  "\"ratio\": must be > 0, got 0" },
		{ P_BALANCE, { str("method", "smote"), num("ratio", 1.5) }, 2,
		  "\"ratio\": must be <= 1, got 1.5" },
		{ P_BALANCE, { str("method", "smote"), str("ratio", "1") }, 2,
		  "\"ratio\": must be a number, got a string" },
		{ P_BALANCE, { str("method", "smote"), num("k", 0) }, 2,
		  "\"k\": must be an integer from 1 to 1000, got 0" },
		{ P_BALANCE, { str("method", "smote"), num("k", 2.5) }, 2,
		  "\"k\": must be an integer from 1 to 1000, got 2.5" },
		{ P_BALANCE, { str("method", "oversample"), num("k", 3) }, 2,
		  "\"k\": only for \"method\": \"smote\", not \"oversample\"" },
		{ P_BALANCE, { str("method", "smote"), num("label", 3) }, 2,
		  "\"label\": must be a column name, got a number" },
		{ P_BALANCE, { str("method", "smote"), str("label", "") }, 2,
		  "\"label\": must be a column name, got \"\"" },
		{ P_BALANCE,
		  { str("method", "smote"), str("label", "a"),
		    str("label", "b") },
		  3, "\"label\": given twice" },
		{ P_BALANCE, { str("method", "smote"), num("kk", 3) }, 2,
		  "\"kk\": unknown parameter for balance" },
		{ P_IMPUTE, { str("numeric", "mode") }, 1,
		  "\"numeric\": must be \"mean\", \"median\" or \"constant\", got \"mode\"" },
		{ P_IMPUTE, { str("categorical", "mean") }, 1,
		  "\"categorical\": must be \"mode\" or \"constant\", got \"mean\"" },
		{ P_IMPUTE, { str("numeric", "constant") }, 1,
		  "\"value\": needed for \"numeric\": \"constant\"" },
		{ P_IMPUTE, { str("categorical", "constant") }, 1,
		  "\"value\": needed for \"categorical\": \"constant\"" },
		{ P_IMPUTE, { num("value", 0) }, 1,
		  "\"value\": used only with \"constant\", but \"numeric\" is \"mean\" and \"categorical\" is \"mode\"" },
		{ P_IMPUTE, { str("numeric", "constant"), str("value", "x") },
		  2,
		  "\"value\": must be a number for \"numeric\": \"constant\", got \"x\"" },
		{ P_IMPUTE,
		  { str("numeric", "constant"),
		    { .name = "value", .type = MLFS_PARAM_LIST, .list = two,
		      .nlist = 2 } },
		  2, "\"value\": must be a number or a string, got a list" },
		{ P_IMPUTE, { str("numeric", "constant"), num("value", NAN) },
		  2, "\"value\": must be finite, got nan" },
		{ P_IMPUTE, { num("columns", 1) }, 1,
		  "\"columns\": must be a string of column names separated by commas, got a number" },
		{ P_IMPUTE, { str("columns", "a,,b") }, 1,
		  "\"columns\": an empty column name in \"a,,b\"" },
		{ P_IMPUTE, { str("columns", "") }, 1,
		  "\"columns\": an empty column name in \"\"" },
		{ P_IMPUTE, { str("method", "mean") }, 1,
		  "\"method\": unknown parameter for impute" },
		{ P_ANON, { str("email", "sha1") }, 1,
		  "\"email\": must be \"hash\", \"drop\", \"mask\", \"truncate:N\", \"month\", \"year\" or \"bucket:W\", got \"sha1\"" },
		{ P_ANON, { num("email", 3) }, 1,
		  "\"email\": must be \"hash\", \"drop\", \"mask\", \"truncate:N\", \"month\", \"year\" or \"bucket:W\", got a number" },
		{ P_ANON, { str("default", "hush") }, 1,
		  "\"default\": must be \"hash\", \"drop\", \"mask\", \"truncate:N\", \"month\", \"year\" or \"bucket:W\", got \"hush\"" },
		{ P_ANON, { str("zip", "truncate:0") }, 1,
		  "\"zip\": must be \"truncate:N\" with N a whole number from 1 to 1000000, got \"truncate:0\"" },
		{ P_ANON, { str("zip", "truncate:") }, 1,
		  "\"zip\": must be \"truncate:N\" with N a whole number from 1 to 1000000, got \"truncate:\"" },
		{ P_ANON, { str("zip", "truncate:-2") }, 1,
		  "\"zip\": must be \"truncate:N\" with N a whole number from 1 to 1000000, got \"truncate:-2\"" },
		{ P_ANON, { str("age", "bucket:0") }, 1,
		  "\"age\": must be \"bucket:W\" with W a number > 0, got \"bucket:0\"" },
		{ P_ANON, { str("age", "bucket:ten") }, 1,
		  "\"age\": must be \"bucket:W\" with W a number > 0, got \"bucket:ten\"" },
		{ P_ANON, { str("age", "bucket:-5") }, 1,
		  "\"age\": must be \"bucket:W\" with W a number > 0, got \"bucket:-5\"" },
		{ P_ANON, { str("email", "hash"), str("email", "drop") }, 2,
		  "\"email\": given twice" },
		{ P_ANON, { str("k_anonymity", "zip") }, 1,
		  "\"k\": needed for \"k_anonymity\"" },
		{ P_ANON, { num("k", 5) }, 1,
		  "\"k\": used only with \"k_anonymity\"" },
		{ P_ANON, { str("k_anonymity", "zip"), num("k", 1) }, 2,
		  "\"k\": must be an integer from 2 to 1000000, got 1" },
		{ P_ANON, { str("k_anonymity", "zip"), str("k", "5") }, 2,
		  "\"k\": must be an integer, got a string" },
		{ P_ANON, { str("k_anonymity", "zip,,age"), num("k", 2) }, 2,
		  "\"k_anonymity\": an empty column name in \"zip,,age\"" },
		{ P_ANON, { num("k_anonymity", 3), num("k", 2) }, 2,
		  "\"k_anonymity\": must be a string of column names separated by commas, got a number" },
		{ P_FILTER, { { 0 } }, 0, "\"column\": must be given" },
		{ P_FILTER, { num("column", 1), str("op", "=="), num("value", 1) }, 3,
		  "\"column\": must be a column name, got a number" },
		{ P_FILTER, { str("column", ""), str("op", "=="), num("value", 1) }, 3,
		  "\"column\": must be a column name, got \"\"" },
		{ P_FILTER, { str("column", "f"), num("value", 1) }, 2,
		  "\"op\": must be given: \"==\", \"!=\", \"<\", \"<=\", \">\", \">=\" or \"contains\"" },
		{ P_FILTER, { str("column", "f"), str("op", "=~"), num("value", 1) }, 3,
		  "\"op\": must be \"==\", \"!=\", \"<\", \"<=\", \">\", \">=\" or \"contains\", got \"=~\"" },
		{ P_FILTER, { str("column", "f"), str("op", "==") }, 2,
		  "\"value\": must be given" },
		{ P_FILTER,
		  { str("column", "f"), str("op", "=="),
		    { .name = "value", .type = MLFS_PARAM_LIST, .list = two,
		      .nlist = 2 } },
		  3, "\"value\": must be a number or a string, got a list" },
		{ P_FILTER, { str("column", "f"), str("op", "<"), num("value", INFINITY) }, 3,
		  "\"value\": must be finite, got inf" },
		{ P_FILTER, { str("column", "f"), str("op", "<"), num("limit", 1) }, 3,
		  "\"limit\": unknown parameter for filter" },
		{ P_DEDUPE, { num("columns", 1) }, 1,
		  "\"columns\": must be a string of column names separated by commas, got a number" },
		{ P_DEDUPE, { str("columns", "a,,b") }, 1,
		  "\"columns\": an empty column name in \"a,,b\"" },
		{ P_DEDUPE, { str("keep", "first") }, 1,
		  "\"keep\": unknown parameter for dedupe" },
		{ P_AUGMENT, { { 0 } }, 0,
		  "\"method\": must be given: \"noise\", \"mixup\", \"flip\", \"shift\" or \"cutout\"" },
		{ P_AUGMENT, { str("method", "rotate") }, 1,
		  "\"method\": must be \"noise\", \"mixup\", \"flip\", \"shift\" or \"cutout\", got \"rotate\"" },
		{ P_AUGMENT, { str("method", "noise"), num("copies", 0) }, 2,
		  "\"copies\": must be an integer from 1 to 1000, got 0" },
		{ P_AUGMENT, { str("method", "noise"), num("copies", 1.5) }, 2,
		  "\"copies\": must be an integer from 1 to 1000, got 1.5" },
		{ P_AUGMENT, { str("method", "noise"), num("sigma", 0) }, 2,
		  "\"sigma\": must be > 0, got 0" },
		{ P_AUGMENT, { str("method", "noise"), num("sigma", -1) }, 2,
		  "\"sigma\": must be > 0, got -1" },
		{ P_AUGMENT, { str("method", "mixup"), num("alpha", 0) }, 2,
		  "\"alpha\": must be > 0, got 0" },
		{ P_AUGMENT, { str("method", "mixup"), str("alpha", "1") }, 2,
		  "\"alpha\": must be a number, got a string" },
		{ P_AUGMENT, { str("method", "mixup"), num("sigma", 0.1) }, 2,
		  "\"sigma\": only for \"method\": \"noise\", not \"mixup\"" },
		{ P_AUGMENT, { str("method", "noise"), num("alpha", 0.4) }, 2,
		  "\"alpha\": only for \"method\": \"mixup\", not \"noise\"" },
		{ P_AUGMENT,
		  { str("method", "flip"), num("pixels", 2),
		    { .name = "shape", .type = MLFS_PARAM_LIST, .list = two,
		      .nlist = 2 } },
		  3,
		  "\"pixels\": only for \"method\": \"shift\" or \"cutout\", not \"flip\"" },
		{ P_AUGMENT, { str("method", "flip") }, 1,
		  "\"shape\": needed for \"method\": \"flip\"" },
		{ P_AUGMENT,
		  { str("method", "noise"),
		    { .name = "shape", .type = MLFS_PARAM_LIST, .list = two,
		      .nlist = 2 } },
		  2,
		  "\"shape\": only for \"method\": \"flip\", \"shift\" or \"cutout\", not \"noise\"" },
		{ P_AUGMENT,
		  { str("method", "shift"),
		    { .name = "shape", .type = MLFS_PARAM_LIST, .list = zero3,
		      .nlist = 2 } },
		  2, "\"shape\": must be [h, w] with h, w >= 1, got [0, 3]" },
		{ P_AUGMENT,
		  { str("method", "shift"),
		    { .name = "shape", .type = MLFS_PARAM_LIST, .list = half,
		      .nlist = 2 } },
		  2, "\"shape\": must be [h, w] with h, w >= 1, got [2.5, 3]" },
		{ P_AUGMENT,
		  { str("method", "cutout"),
		    { .name = "shape", .type = MLFS_PARAM_LIST, .list = three,
		      .nlist = 3 } },
		  2, "\"shape\": must be [h, w] with h, w >= 1, got a list of 3" },
		{ P_AUGMENT, { str("method", "cutout"), str("shape", "3x3") }, 2,
		  "\"shape\": must be [h, w] with h, w >= 1, got a string" },
		{ P_AUGMENT, { str("method", "cutout"), num("shape", 9) }, 2,
		  "\"shape\": must be [h, w] with h, w >= 1, got a number" },
		{ P_AUGMENT,
		  { str("method", "cutout"),
		    { .name = "shape", .type = MLFS_PARAM_LIST, .list = huge,
		      .nlist = 2 } },
		  2,
		  "\"shape\": must be [h, w] with h, w <= 1000000, got [2e+06, 1]" },
		{ P_AUGMENT,
		  { str("method", "shift"), num("pixels", 0),
		    { .name = "shape", .type = MLFS_PARAM_LIST, .list = two,
		      .nlist = 2 } },
		  3, "\"pixels\": must be an integer from 1 to 1000000, got 0" },
		{ P_AUGMENT,
		  { str("method", "flip"),
		    { .name = "shape", .type = MLFS_PARAM_LIST, .list = two,
		      .nlist = 2 },
		    { .name = "shape", .type = MLFS_PARAM_LIST, .list = two,
		      .nlist = 2 } },
		  3, "\"shape\": given twice" },
		{ P_AUGMENT, { str("method", "flip"), num("angle", 90) }, 2,
		  "\"angle\": unknown parameter for augment" },
	};
	struct mlfs_table *in = balance_table();

	for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
		struct mlfs_table *out = (struct mlfs_table *)1;
		char name[160];
		int rc;

		snprintf(name, sizeof(name), "%s check refuses: %.120s",
			 plugs[bad[b].plugin].name, bad[b].msg);
		rc = check(bad[b].plugin, bad[b].ps, bad[b].n);
		if (rc != -EINVAL || strcmp(msg, bad[b].msg) != 0) {
			ok(0, name);
			printf("#   got %d \"%s\"\n", rc, msg);
		} else {
			ok(1, name);
		}
		/* run judges params as check does, before anything else */
		rc = run(bad[b].plugin, bad[b].ps, bad[b].n, 1, in, &out);
		snprintf(name, sizeof(name), "%s run refuses: %.120s",
			 plugs[bad[b].plugin].name, bad[b].msg);
		ok(rc == -EINVAL && strcmp(msg, bad[b].msg) == 0 && !out,
		   name);
	}
	{
		struct mlfs_param good[] = { str("method", "smote"),
					     num("ratio", 0.25), num("k", 3),
					     str("label", "y") };
		struct mlfs_param fine[] = { str("numeric", "median"),
					     str("categorical", "constant"),
					     str("value", "?"),
					     str("columns", "a, b") };
		struct mlfs_param anon_good[] = {
			str("email", "hash"),	  str("name", "drop"),
			str("zip", "truncate:3"), str("birth", "month"),
			str("age", "bucket:10"),  str("phone", "mask"),
			str("k_anonymity", "zip, age"), num("k", 5)
		};
		struct mlfs_param filter_good[] = { str("column", "x"),
						    str("op", "contains"),
						    str("value", "a") };
		struct mlfs_param shape = { .name = "shape",
					    .type = MLFS_PARAM_LIST,
					    .list = two, .nlist = 2 };
		struct mlfs_param aug_noise[] = { str("method", "noise"),
						  num("copies", 4),
						  num("sigma", 2) };
		struct mlfs_param aug_mixup[] = { str("method", "mixup"),
						  num("alpha", 2) };
		struct mlfs_param aug_flip[] = { str("method", "flip"),
						 shape };
		struct mlfs_param aug_cutout[] = { str("method", "cutout"),
						   shape, num("pixels", 2) };

		is_int(check(P_BALANCE, good, 4), 0, "balance: good params");
		is_int(check(P_IMPUTE, fine, 4), 0, "impute: good params");
		is_int(check(P_IMPUTE, NULL, 0), 0, "impute: no params");
		is_int(check(P_ANON, anon_good, 8), 0, "anonymize: good params");
		is_int(check(P_FILTER, filter_good, 3), 0,
		       "filter: good params");
		is_int(check(P_DEDUPE, NULL, 0), 0, "dedupe: no params");
		is_int(check(P_AUGMENT, aug_noise, 3), 0,
		       "augment noise: good params");
		is_int(check(P_AUGMENT, aug_mixup, 2), 0,
		       "augment mixup: good params");
		is_int(check(P_AUGMENT, aug_flip, 2), 0,
		       "augment flip: good params");
		is_int(check(P_AUGMENT, aug_cutout, 3), 0,
		       "augment cutout: good params");
	}
	tab_free(in);
}

int main(void)
{
	const char *dir = getenv("MLFS_PLUGIN_DIR");

	/* meson sets the directory; without it this program cannot run. */
	if (!dir || !*dir)
		return skip_all("MLFS_PLUGIN_DIR is not set");
	if (plugs_open(dir, plugs, P_COUNT) < 0)
		return 1;
	test_descriptors(dir);
	test_loader(dir);
	test_impute_mean_mode();
	test_impute_median_constant();
	test_impute_columns();
	test_impute_edges();
	test_oversample();
	test_undersample();
	test_smote();
	test_smote_edges();
	test_balance_edges();
	test_anon_hash();
	test_anon_nokey();
	test_anon_methods();
	test_anon_default();
	test_anon_run_errors();
	test_anon_k();
	test_filter();
	test_dedupe();
	test_augment_noise();
	test_augment_mixup();
	test_augment_flip();
	test_augment_shift_cutout();
	test_augment_edges();
	test_bad_params();
	plugs_close(plugs, P_COUNT);
	return done();
}
