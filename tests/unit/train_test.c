/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the train plugins (plugins/train/): each is dlopened from
 * $MLFS_PLUGIN_DIR as the daemon would, and driven through its ops with a
 * small host table.  Checks the descriptors; that linear recovers known
 * weights and ridge matches the closed form; that logistic separates
 * binary and 3-class data (and lbfgs reaches the optimum: the gradient
 * there is ~0), with probabilities summing to 1; that mlp learns XOR and
 * a nonlinear regression; that kmeans finds three blobs; bad params with
 * their exact messages; save/load round trips; truncated, corrupted and
 * inconsistent saved bytes; models saved in the version 1 framing (with
 * the FNV-1a trailer) by the plugins before mlfs_plugin_util.h, from
 * tests/unit/fixtures; cancellation; and predict from several threads at
 * once on one instance.
 *
 * Allocation failures are not injected here: the plugins are separate
 * shared objects, which the --wrap=malloc of the unit build cannot reach.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mlcore.h"
#include "mlfs_plugin.h"
#include "plugs.h"
#include "tap.h"

/* ---- the host ---- */

struct host_state {
	int cancel;	  /* cancelled() returns this */
	long metrics;	  /* metric() calls */
	long losses;	  /* metric("loss") calls */
	double first_loss;
	double last_loss;
	long progress;	  /* progress() calls */
	double last_frac;
	long other;	  /* metrics other than loss */
	double best_val;  /* the highest val_accuracy */
	long stops;	  /* stopped() calls */
	char stop_rule[32]; /* the last stopped() */
	long stop_at;
};

static void host_log(void *ctx, int level, const char *fmt, ...)
{
	va_list ap;

	(void)ctx;
	if (!getenv("TRAIN_TEST_VERBOSE"))
		return;
	printf("# log %d: ", level);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static void host_progress(void *ctx, double frac, const char *line)
{
	struct host_state *hs = ctx;

	hs->progress++;
	hs->last_frac = frac;
	if (getenv("TRAIN_TEST_VERBOSE"))
		printf("# progress %.3f %s\n", frac, line);
}

static void host_metric(void *ctx, const char *name, double v, long step)
{
	struct host_state *hs = ctx;

	hs->metrics++;
	if (strcmp(name, "loss") == 0) {
		if (!hs->losses)
			hs->first_loss = v;
		hs->losses++;
		hs->last_loss = v;
	} else {
		hs->other++;
	}
	if (strcmp(name, "val_accuracy") == 0 && v > hs->best_val)
		hs->best_val = v;
	if (getenv("TRAIN_TEST_VERBOSE"))
		printf("# metric %s %g step %ld\n", name, v, step);
}

static void host_stopped(void *ctx, const char *rule, long at,
			 const char *why)
{
	struct host_state *hs = ctx;

	hs->stops++;
	snprintf(hs->stop_rule, sizeof(hs->stop_rule), "%s", rule);
	hs->stop_at = at;
	if (getenv("TRAIN_TEST_VERBOSE"))
		printf("# stopped %s at %ld: %s\n", rule, at, why);
}

static int host_cancelled(void *ctx)
{
	struct host_state *hs = ctx;

	return hs->cancel;
}

static struct mlfs_host make_host(struct host_state *hs)
{
	struct mlfs_host h = {
		.size = sizeof(h),
		.ctx = hs,
		.log = host_log,
		.progress = host_progress,
		.metric = host_metric,
		.cancelled = host_cancelled,
		.threads = 2,
		.stopped = host_stopped,
	};

	memset(hs, 0, sizeof(*hs));
	return h;
}

/* ---- plugins ---- */

static struct plug plugs[] = {
	{ "linear", NULL, NULL },
	{ "logistic", NULL, NULL },
	{ "mlp", NULL, NULL },
	{ "kmeans", NULL, NULL },
};

enum { P_LINEAR, P_LOGISTIC, P_MLP, P_KMEANS, P_COUNT };

static const struct mlfs_train_ops *ops_of(int p)
{
	return plugs[p].desc->ops;
}

/* ---- params ---- */

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

static struct mlfs_param boolean(const char *name, bool v)
{
	return (struct mlfs_param){ .name = name,
				    .type = MLFS_PARAM_BOOL,
				    .number = v };
}

static struct mlfs_param list(const char *name, const double *v, size_t n)
{
	return (struct mlfs_param){ .name = name,
				    .type = MLFS_PARAM_LIST,
				    .list = v,
				    .nlist = n };
}

/* ---- data ---- */

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

static double gauss(void)
{
	double u = unif(), v = unif();

	return sqrt(-2 * log(u + 1e-300)) * cos(2 * M_PI * v);
}

struct set {
	struct mlfs_data data;
	float *x;
	float *y;
};

static void set_alloc(struct set *s, size_t n, size_t d, size_t k)
{
	s->x = calloc(n * d + 1, sizeof(float));
	s->y = calloc(n + 1, sizeof(float));
	s->data.x = (struct mlfs_matrix){ s->x, n, d, d };
	s->data.y = s->y;
	s->data.nclasses = k;
}

static void set_free(struct set *s)
{
	free(s->x);
	free(s->y);
}

/* Classes around k centres (d dims) spread sd. */
static void make_blobs(struct set *s, size_t n, size_t d, size_t k,
		       const double *centres, double sd)
{
	set_alloc(s, n, d, k);
	for (size_t i = 0; i < n; i++) {
		size_t c = i % k;

		for (size_t j = 0; j < d; j++)
			s->x[i * d + j] =
				(float)(centres[c * d + j] + sd * gauss());
		s->y[i] = (float)c;
	}
}

static float *scores(const struct mlfs_train_ops *o, void *inst,
		     const struct mlfs_matrix *x, int *rc)
{
	size_t k = o->outputs(inst);
	struct mlfs_matrix out = { calloc(x->rows * k + 1, sizeof(float)),
				   x->rows, k, k };

	*rc = o->predict(inst, x, &out);
	return out.data;
}

static double accuracy(const float *sc, size_t k, const float *y, size_t n)
{
	size_t right = 0;

	for (size_t i = 0; i < n; i++) {
		size_t best = 0;

		for (size_t c = 1; c < k; c++)
			if (sc[i * k + c] > sc[i * k + best])
				best = c;
		right += best == (size_t)y[i];
	}
	return (double)right / (double)n;
}

static double max_row_sum_error(const float *sc, size_t k, size_t n)
{
	double worst = 0;

	for (size_t i = 0; i < n; i++) {
		double s = 0;

		for (size_t c = 0; c < k; c++)
			s += sc[i * k + c];
		if (fabs(s - 1) > worst)
			worst = fabs(s - 1);
	}
	return worst;
}

static uint64_t fnv(const uint8_t *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static void put_le(uint8_t *p, uint64_t v, size_t bytes)
{
	for (size_t i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static float get_f32(const uint8_t *p)
{
	uint32_t u = 0;
	float f;

	for (size_t i = 0; i < 4; i++)
		u |= (uint32_t)p[i] << (8 * i);
	memcpy(&f, &u, sizeof(f));
	return f;
}

/* ---- helpers on instances ---- */

static void *make(int p, unsigned task, const struct mlfs_param *params,
		  size_t n, const struct mlfs_host *host)
{
	char msg[256] = "";
	void *inst = NULL;
	int rc;

	rc = ops_of(p)->init(host, task, params, n, &inst, msg, sizeof(msg));

	if (rc < 0)
		printf("# init %s: %d %s\n", plugs[p].name, rc, msg);
	return inst;
}

/* Magic, version and task: the same in every plugin's saved form. */
#define FRAMING_BYTES 12

/*
 * The saved bytes carry no checksum of their own (version 2 on): the
 * model file around them has an xxh3-128 over everything.  Wrap the bytes
 * in a model file as the job program does, flip each byte of it (up to a
 * bound), and count the flips that get through model_decode and then
 * load as well: none should.
 */
static size_t stored_flips_loaded(const struct mlfs_train_ops *o, void *copy,
				  const void *buf, size_t len)
{
	json_t *hdr = json_pack("{s:s}", "algorithm", "test");
	json_t *back;
	const void *w;
	unsigned char *file = NULL;
	size_t flen = 0, wlen, loaded = 0;
	char msg[256];

	if (!hdr || model_encode(hdr, buf, len, (void **)&file, &flen) < 0) {
		json_decref(hdr);
		return 1;
	}
	json_decref(hdr);
	for (size_t i = 0; i < flen && i < 8192; i++) {
		file[i] ^= (unsigned char)(1u << (i % 8));
		if (model_decode(file, flen, &back, &w, &wlen, msg,
				 sizeof(msg)) == 0) {
			loaded += o->load(copy, w, wlen) == 0;
			json_decref(back);
		}
		file[i] ^= (unsigned char)(1u << (i % 8));
	}
	free(file);
	return loaded;
}

/*
 * Save inst; check that a fresh instance loads the bytes and predicts
 * exactly the same on x; then feed it every truncation, every change of
 * a framing byte, every single-byte change of the stored model file (up
 * to a bound), an extra byte, and nothing.
 */
static void check_save_load(int p, unsigned task,
			    const struct mlfs_param *params, size_t nparams,
			    void *inst, const struct mlfs_matrix *x,
			    const struct mlfs_host *host)
{
	const struct mlfs_train_ops *o = ops_of(p);
	void *buf = NULL, *copy = NULL;
	size_t len = 0, k;
	uint8_t *b;
	float *s1, *s2;
	int rc1, rc2, bad = 0;
	char name[128];

	is_int(o->save(inst, &buf, &len), 0, "save");
	copy = make(p, task, params, nparams, host);
	snprintf(name, sizeof(name), "%s: load of saved bytes",
		 plugs[p].name);
	is_int(o->load(copy, buf, len), 0, name);
	k = o->outputs(inst);
	snprintf(name, sizeof(name), "%s: outputs after load", plugs[p].name);
	is_int(o->outputs(copy), k, name);
	s1 = scores(o, inst, x, &rc1);
	s2 = scores(o, copy, x, &rc2);
	snprintf(name, sizeof(name), "%s: identical predictions after load",
		 plugs[p].name);
	ok(rc1 == 0 && rc2 == 0 &&
		   memcmp(s1, s2, x->rows * k * sizeof(float)) == 0,
	   name);
	free(s1);
	free(s2);

	/* The same state in the version 1 framing: an FNV-1a 64 trailer. */
	b = malloc(len + 8);
	memcpy(b, buf, len);
	put_le(b + 4, 1, 4);
	put_le(b + len, fnv(b, len), 8);
	snprintf(name, sizeof(name), "%s: loads its version 1 framing",
		 plugs[p].name);
	is_int(o->load(copy, b, len + 8), 0, name);
	s2 = scores(o, copy, x, &rc2);
	s1 = scores(o, inst, x, &rc1);
	snprintf(name, sizeof(name),
		 "%s: identical predictions after a version 1 load",
		 plugs[p].name);
	ok(rc1 == 0 && rc2 == 0 &&
		   memcmp(s1, s2, x->rows * k * sizeof(float)) == 0,
	   name);
	free(s1);
	free(s2);
	free(b);

	b = malloc(len + 1);
	memcpy(b, buf, len);
	for (size_t n = 0; n < len; n++)
		bad += o->load(copy, b, n) != -EINVAL;
	snprintf(name, sizeof(name), "%s: every truncation is -EINVAL",
		 plugs[p].name);
	is_int(bad, 0, name);
	bad = 0;
	for (size_t i = 0; i < FRAMING_BYTES; i++) {
		b[i] ^= (uint8_t)(1u << (i % 8));
		bad += o->load(copy, b, len) != -EINVAL;
		b[i] ^= (uint8_t)(1u << (i % 8));
	}
	snprintf(name, sizeof(name),
		 "%s: every flipped magic, version or task byte is -EINVAL",
		 plugs[p].name);
	is_int(bad, 0, name);
	snprintf(name, sizeof(name),
		 "%s: every flipped byte of the stored model is refused",
		 plugs[p].name);
	is_int(stored_flips_loaded(o, copy, buf, len), 0, name);
	b[len] = 0;
	snprintf(name, sizeof(name), "%s: an extra byte is -EINVAL",
		 plugs[p].name);
	is_int(o->load(copy, b, len + 1), -EINVAL, name);
	snprintf(name, sizeof(name), "%s: NULL bytes are -EINVAL",
		 plugs[p].name);
	is_int(o->load(copy, NULL, 0), -EINVAL, name);
	/* The copy still predicts as the original after all that. */
	s1 = scores(o, inst, x, &rc1);
	s2 = scores(o, copy, x, &rc2);
	snprintf(name, sizeof(name), "%s: failed loads changed nothing",
		 plugs[p].name);
	ok(rc1 == 0 && rc2 == 0 &&
		   memcmp(s1, s2, x->rows * k * sizeof(float)) == 0,
	   name);
	free(s1);
	free(s2);
	free(b);
	o->fini(copy);
	free(buf);
}

/*
 * Overwrite the size field at off with v and check load says -EINVAL:
 * sizes are validated, not left to a checksum.
 */
static void check_bad_size(int p, void *inst, size_t off, size_t bytes,
			   uint64_t v, const char *what)
{
	const struct mlfs_train_ops *o = ops_of(p);
	void *buf = NULL;
	size_t len = 0;
	uint8_t *b;
	char name[128];

	o->save(inst, &buf, &len);
	b = buf;
	put_le(b + off, v, bytes);
	snprintf(name, sizeof(name), "%s: %s is -EINVAL", plugs[p].name, what);
	is_int(o->load(inst, b, len), -EINVAL, name);
	free(buf);
}

/*
 * Random changes to the first 64 bytes (after the magic): load must
 * answer 0 or -EINVAL, never crash, and after a 0 predict must work with
 * the outputs it then reports.
 */
static void check_fuzz(int p, unsigned task, const struct mlfs_param *params,
		       size_t nparams, void *inst, const struct mlfs_host *host)
{
	const struct mlfs_train_ops *o = ops_of(p);
	void *buf = NULL, *copy = make(p, task, params, nparams, host);
	size_t len = 0, odd = 0, loaded = 0;
	uint8_t *b;
	char name[128];

	o->save(inst, &buf, &len);
	b = malloc(len);
	for (int r = 0; r < 3000; r++) {
		int rc;

		memcpy(b, buf, len);
		for (size_t i = 4; i < len && i < 64; i++)
			if (rnd() % 8 == 0)
				b[i] = (uint8_t)(rnd() % 4 ? b[i] ^ (1u << rnd() % 8)
							 : rnd());
		rc = o->load(copy, b, len);
		if (rc == 0) {
			size_t rows = 3, k = o->outputs(copy);
			size_t d = 64; /* more than any of the fitted models */
			float *x = calloc(rows * d, sizeof(float));
			float *out = calloc(rows * (k + 1), sizeof(float));
			struct mlfs_matrix xm = { x, rows, 0, d };
			struct mlfs_matrix om = { out, rows, k, k };

			loaded++;
			/* Find the feature count predict takes. */
			for (xm.cols = 0; xm.cols <= d; xm.cols++)
				if (o->predict(copy, &xm, &om) == 0)
					break;
			odd += xm.cols > d;
			free(out);
			free(x);
		} else if (rc != -EINVAL) {
			odd++;
		}
	}
	snprintf(name, sizeof(name),
		 "%s: fuzzed headers load cleanly or give -EINVAL",
		 plugs[p].name);
	is_int(odd, 0, name);
	printf("# %s: %zu of 3000 fuzzed headers loaded\n", plugs[p].name,
	       loaded);
	free(b);
	free(buf);
	o->fini(copy);
}

/* ---- descriptors ---- */

static void test_descriptors(void)
{
	static const unsigned tasks[P_COUNT] = {
		MLFS_TASK_REGRESSION,
		MLFS_TASK_CLASSIFICATION,
		MLFS_TASK_CLASSIFICATION | MLFS_TASK_REGRESSION,
		MLFS_TASK_CLUSTERING,
	};
	struct host_state hs;
	struct mlfs_host host = make_host(&hs);

	for (int p = 0; p < P_COUNT; p++) {
		const struct mlfs_plugin *d = plugs[p].desc;
		const struct mlfs_train_ops *o = ops_of(p);
		char name[128], msg[256] = "";
		void *inst = (void *)1;
		unsigned bad;

		snprintf(name, sizeof(name), "%s: descriptor", plugs[p].name);
		ok(d->abi_major == MLFS_ABI_MAJOR &&
			   d->abi_minor == MLFS_ABI_MINOR &&
			   d->stage == MLFS_STAGE_TRAIN && d->name &&
			   strcmp(d->name, plugs[p].name) == 0 && d->version &&
			   *d->version,
		   name);
		snprintf(name, sizeof(name), "%s: ops", plugs[p].name);
		ok(o && o->size == sizeof(*o) && o->tasks == tasks[p] &&
			   o->init && o->fit && o->outputs && o->predict &&
			   o->save && o->load && o->fini,
		   name);
		bad = (MLFS_TASK_CLASSIFICATION | MLFS_TASK_REGRESSION |
		       MLFS_TASK_CLUSTERING) &
		      ~tasks[p];
		bad = bad & -bad; /* the lowest unsupported task */
		snprintf(name, sizeof(name), "%s: init with task %u",
			 plugs[p].name, bad);
		is_int(o->init(&host, bad, NULL, 0, &inst, msg, sizeof(msg)),
		       -EINVAL, name);
		snprintf(name, sizeof(name), "%s: no instance on error",
			 plugs[p].name);
		ok(inst == NULL, name);
	}
}

/* ---- linear ---- */

/* Solve the dense system a x = b (n x n, double) by Gaussian elimination. */
static void gauss_solve(double *a, double *b, size_t n)
{
	for (size_t c = 0; c < n; c++) {
		size_t piv = c;

		for (size_t r = c + 1; r < n; r++)
			if (fabs(a[r * n + c]) > fabs(a[piv * n + c]))
				piv = r;
		for (size_t j = 0; j < n; j++) {
			double t = a[c * n + j];

			a[c * n + j] = a[piv * n + j];
			a[piv * n + j] = t;
		}
		double t = b[c];

		b[c] = b[piv];
		b[piv] = t;
		for (size_t r = c + 1; r < n; r++) {
			double f = a[r * n + c] / a[c * n + c];

			for (size_t j = c; j < n; j++)
				a[r * n + j] -= f * a[c * n + j];
			b[r] -= f * b[c];
		}
	}
	for (size_t c = n; c-- > 0;) {
		for (size_t j = c + 1; j < n; j++)
			b[c] -= a[c * n + j] * b[j];
		b[c] /= a[c * n + c];
	}
}

static void test_linear(void)
{
	const size_t n = 400, d = 5;
	const double wt[] = { 1.5, -2, 0.5, 3, -0.25 }, bt = 4;
	const double l2 = 0.3;
	struct host_state hs;
	struct mlfs_host host = make_host(&hs);
	const struct mlfs_train_ops *o = ops_of(P_LINEAR);
	struct mlfs_param ridge = num("l2", l2);
	struct set s;
	char msg[256] = "";
	void *ols, *rid;
	float *sc, *sr;
	double worst = 0, a[36] = { 0 }, rhs[6] = { 0 };
	int rc;

	rng_state = 100; /* each test its own data */

	set_alloc(&s, n, d, 0);
	for (size_t i = 0; i < n; i++) {
		double y = bt;

		for (size_t j = 0; j < d; j++) {
			s.x[i * d + j] = (float)(gauss() * (1 + (double)j));
			y += wt[j] * s.x[i * d + j];
		}
		s.y[i] = (float)(y + 0.001 * gauss());
	}
	ols = make(P_LINEAR, MLFS_TASK_REGRESSION, NULL, 0, &host);
	is_int(o->fit(ols, &s.data, NULL, msg, sizeof(msg)), 0, "linear: fit");
	ok(hs.losses == 1 && hs.last_loss < 1e-5, "linear: loss metric");
	/* Recover the weights: predict the unit vectors and the origin. */
	{
		struct set e;

		set_alloc(&e, d + 1, d, 0);
		for (size_t j = 0; j < d; j++)
			e.x[j * d + j] = 1;
		sc = scores(o, ols, &e.data.x, &rc);
		for (size_t j = 0; j < d; j++)
			worst = fmax(worst, fabs((sc[j] - sc[d]) - wt[j]));
		worst = fmax(worst, fabs(sc[d] - bt));
		ok(rc == 0 && worst < 1e-3, "linear: OLS recovers the weights");
		if (worst >= 1e-3)
			printf("#   worst error %g\n", worst);
		free(sc);
		set_free(&e);
	}

	/* Ridge against the closed form with an unpenalised intercept. */
	rid = make(P_LINEAR, MLFS_TASK_REGRESSION, &ridge, 1, &host);
	is_int(o->fit(rid, &s.data, NULL, msg, sizeof(msg)), 0,
	       "linear: ridge fit");
	for (size_t i = 0; i < n; i++) {
		double row[6];

		for (size_t j = 0; j < d; j++)
			row[j] = s.x[i * d + j];
		row[d] = 1;
		for (size_t r = 0; r <= d; r++) {
			for (size_t c = 0; c <= d; c++)
				a[r * (d + 1) + c] += row[r] * row[c];
			rhs[r] += row[r] * s.y[i];
		}
	}
	for (size_t j = 0; j < d; j++)
		a[j * (d + 1) + j] += (double)n * l2;
	gauss_solve(a, rhs, d + 1);
	sr = scores(o, rid, &s.data.x, &rc);
	worst = 0;
	for (size_t i = 0; i < n; i++) {
		double p = rhs[d];

		for (size_t j = 0; j < d; j++)
			p += rhs[j] * s.x[i * d + j];
		worst = fmax(worst, fabs(p - sr[i]) / (1 + fabs(p)));
	}
	ok(rc == 0 && worst < 1e-4, "linear: ridge matches the closed form");
	if (worst >= 1e-4)
		printf("#   worst relative error %g\n", worst);
	free(sr);

	/* Collinear features (a duplicated column) still solve. */
	{
		struct set c;
		void *inst = make(P_LINEAR, MLFS_TASK_REGRESSION, NULL, 0,
				  &host);

		set_alloc(&c, n, 3, 0);
		for (size_t i = 0; i < n; i++) {
			c.x[i * 3] = s.x[i * d];
			c.x[i * 3 + 1] = s.x[i * d];
			c.x[i * 3 + 2] = s.x[i * d + 1];
			c.y[i] = (float)(2 * s.x[i * d] - s.x[i * d + 1] + 1);
		}
		is_int(o->fit(inst, &c.data, NULL, msg, sizeof(msg)), 0,
		       "linear: collinear features fit");
		sc = scores(o, inst, &c.data.x, &rc);
		worst = 0;
		for (size_t i = 0; i < n; i++)
			worst = fmax(worst, fabs(sc[i] - c.y[i]));
		ok(rc == 0 && worst < 1e-2,
		   "linear: collinear features predict well");
		free(sc);
		o->fini(inst);
		set_free(&c);
	}

	check_save_load(P_LINEAR, MLFS_TASK_REGRESSION, &ridge, 1, rid,
			&s.data.x, &host);
	check_bad_size(P_LINEAR, rid, 12, 8, 4, "a wrong feature count");
	check_fuzz(P_LINEAR, MLFS_TASK_REGRESSION, &ridge, 1, rid, &host);
	check_bad_size(P_LINEAR, rid, 8, 4, MLFS_TASK_CLASSIFICATION,
		       "another task");
	o->fini(ols);
	o->fini(rid);
	set_free(&s);
}

/* ---- logistic ---- */

static void test_logistic(void)
{
	const size_t n = 3000, d = 4;
	const double w[] = { 2, -1, 0.5, 1.5 };
	const double centres[] = { 0, 0, 3, 3, -3, 3 };
	struct host_state hs;
	struct mlfs_host host = make_host(&hs);
	const struct mlfs_train_ops *o = ops_of(P_LOGISTIC);
	struct mlfs_param sgd[] = { str("solver", "sgd"), num("epochs", 30),
				    num("learning_rate", 0.1),
				    num("batch_size", 50) };
	struct mlfs_param l2 = num("l2", 0.01);
	struct set s, b3;
	char msg[256] = "";
	void *inst, *inst3, *isgd;
	float *sc;
	double acc, grad[5] = { 0 }, gmax = 0;
	int rc;

	rng_state = 101; /* each test its own data */

	/* Binary: noisy labels from a linear score. */
	set_alloc(&s, n, d, 2);
	for (size_t i = 0; i < n; i++) {
		double z = 0.3;

		for (size_t j = 0; j < d; j++) {
			s.x[i * d + j] = (float)gauss();
			z += w[j] * s.x[i * d + j];
		}
		s.y[i] = z + 0.5 * gauss() > 0 ? 1.0f : 0.0f;
	}
	inst = make(P_LOGISTIC, MLFS_TASK_CLASSIFICATION, &l2, 1, &host);
	is_int(o->outputs(inst), 0, "logistic: no outputs before fit");
	rc = o->fit(inst, &s.data, NULL, msg, sizeof(msg));
	is_int(rc, 0, "logistic: binary fit");
	ok(hs.losses > 1 && hs.last_loss < hs.first_loss && hs.progress > 1,
	   "logistic: loss metric and progress reported per iteration");
	is_int(o->outputs(inst), 2, "logistic: two outputs");
	sc = scores(o, inst, &s.data.x, &rc);
	acc = accuracy(sc, 2, s.y, n);
	ok(rc == 0 && acc > 0.9, "logistic: binary accuracy > 0.9");
	printf("# binary accuracy %.4f\n", acc);
	ok(max_row_sum_error(sc, 2, n) < 1e-5,
	   "logistic: binary probabilities sum to 1");
	/* At the optimum: mean((p - y) x) + l2 w = 0, with w from save. */
	{
		void *buf = NULL;
		size_t len = 0;

		o->save(inst, &buf, &len);
		for (size_t i = 0; i < n; i++) {
			double r = sc[i * 2 + 1] - s.y[i];

			for (size_t j = 0; j < d; j++)
				grad[j] += r * s.x[i * d + j] / (double)n;
			grad[d] += r / (double)n;
		}
		for (size_t j = 0; j < d; j++)
			grad[j] += 0.01 * get_f32((uint8_t *)buf + 28 + 4 * j);
		for (size_t j = 0; j <= d; j++)
			gmax = fmax(gmax, fabs(grad[j]));
		ok(len == 28 + 4 * (d + 1) && gmax < 2e-4, /* no trailer */
		   "logistic: lbfgs reaches the optimum (gradient ~ 0)");
		printf("# largest gradient entry at the solution %g\n", gmax);
		free(buf);
	}
	free(sc);

	/* SGD on the same data. */
	isgd = make(P_LOGISTIC, MLFS_TASK_CLASSIFICATION, sgd, 4, &host);
	is_int(o->fit(isgd, &s.data, NULL, msg, sizeof(msg)), 0,
	       "logistic: sgd fit");
	sc = scores(o, isgd, &s.data.x, &rc);
	acc = accuracy(sc, 2, s.y, n);
	ok(rc == 0 && acc > 0.9, "logistic: sgd accuracy > 0.9");
	printf("# sgd accuracy %.4f\n", acc);
	free(sc);

	/* Three classes, default l2, with a validation set. */
	make_blobs(&b3, n, 2, 3, centres, 1.0);
	inst3 = make(P_LOGISTIC, MLFS_TASK_CLASSIFICATION, NULL, 0, &host);
	hs.other = 0;
	is_int(o->fit(inst3, &b3.data, &b3.data, msg, sizeof(msg)), 0,
	       "logistic: 3-class fit");
	ok(hs.other == 1, "logistic: val_accuracy reported");
	is_int(o->outputs(inst3), 3, "logistic: three outputs");
	sc = scores(o, inst3, &b3.data.x, &rc);
	acc = accuracy(sc, 3, b3.y, n);
	ok(rc == 0 && acc > 0.9, "logistic: 3-class accuracy > 0.9");
	printf("# 3-class accuracy %.4f\n", acc);
	ok(max_row_sum_error(sc, 3, n) < 1e-5,
	   "logistic: 3-class probabilities sum to 1");
	free(sc);

	/* Bad labels. */
	s.y[7] = 2;
	is_int(o->fit(isgd, &s.data, NULL, msg, sizeof(msg)), -EINVAL,
	       "logistic: a label >= nclasses");
	is_str(msg, "training row 7: label 2 is not a class index below 2",
	       "logistic: bad label message");
	s.y[7] = 1;

	check_save_load(P_LOGISTIC, MLFS_TASK_CLASSIFICATION, &l2, 1, inst,
			&s.data.x, &host);
	check_save_load(P_LOGISTIC, MLFS_TASK_CLASSIFICATION, NULL, 0, inst3,
			&b3.data.x, &host);
	check_bad_size(P_LOGISTIC, inst3, 20, 8, (uint64_t)1 << 40,
		       "a huge feature count");
	check_bad_size(P_LOGISTIC, inst3, 12, 8, 1, "one class");
	check_fuzz(P_LOGISTIC, MLFS_TASK_CLASSIFICATION, NULL, 0, inst3, &host);
	o->fini(inst);
	o->fini(inst3);
	o->fini(isgd);
	set_free(&s);
	set_free(&b3);
}

/* ---- mlp ---- */

static void test_mlp(void)
{
	const size_t n = 2000, nv = 500;
	const double hidden[] = { 32, 16 };
	struct host_state hs;
	struct mlfs_host host = make_host(&hs);
	const struct mlfs_train_ops *o = ops_of(P_MLP);
	struct mlfs_param pc[] = { list("hidden", hidden, 2),
				   num("learning_rate", 0.01),
				   num("epochs", 200), num("seed", 3) };
	struct mlfs_param pr[] = { list("hidden", hidden, 1),
				   num("learning_rate", 0.01),
				   num("max_iter", 200),
				   boolean("early_stopping", false) };
	struct set s, v, r;
	char msg[256] = "";
	void *cls, *reg;
	float *sc;
	double acc, sse = 0, var = 0, mean = 0;
	int rc;

	rng_state = 102; /* each test its own data */

	/* XOR: the sign of x0 * x1, which no linear model can learn. */
	set_alloc(&s, n, 2, 2);
	set_alloc(&v, nv, 2, 2);
	for (size_t i = 0; i < n + nv; i++) {
		struct set *t = i < n ? &s : &v;
		size_t j = i < n ? i : i - n;
		float a = (float)(2 * unif() - 1), b = (float)(2 * unif() - 1);

		t->x[j * 2] = a;
		t->x[j * 2 + 1] = b;
		t->y[j] = a * b > 0 ? 1.0f : 0.0f;
	}
	cls = make(P_MLP, MLFS_TASK_CLASSIFICATION, pc, 4, &host);
	rc = o->fit(cls, &s.data, &v.data, msg, sizeof(msg));
	is_int(rc, 0, "mlp: XOR fit");
	if (rc < 0)
		printf("#   %s\n", msg);
	ok(hs.losses > 1 && hs.other == hs.losses,
	   "mlp: loss and val_accuracy per epoch");
	printf("# mlp epochs %ld\n", hs.losses);
	sc = scores(o, cls, &v.data.x, &rc);
	acc = accuracy(sc, 2, v.y, nv);
	ok(rc == 0 && acc > 0.93, "mlp: XOR validation accuracy > 0.93");
	printf("# XOR validation accuracy %.4f\n", acc);
	ok(acc == hs.best_val, "mlp: early stopping keeps the best epoch");
	ok(hs.stops == 1 &&
		   (strcmp(hs.stop_rule, "early_stopping") == 0 ?
			    hs.stop_at < 200 :
			    strcmp(hs.stop_rule, "completed") == 0),
	   "mlp: says once why it stopped");
	ok(max_row_sum_error(sc, 2, nv) < 1e-5,
	   "mlp: probabilities sum to 1");
	free(sc);

	/* Regression: y = sin(2 x0) + x1^2. */
	set_alloc(&r, n, 2, 0);
	for (size_t i = 0; i < n; i++) {
		float a = (float)(2 * unif() - 1), b = (float)(2 * unif() - 1);

		r.x[i * 2] = a;
		r.x[i * 2 + 1] = b;
		r.y[i] = (float)(sin(2 * a) + b * b);
		mean += r.y[i] / (double)n;
	}
	reg = make(P_MLP, MLFS_TASK_REGRESSION, pr, 4, &host);
	is_int(o->outputs(reg), 1, "mlp: regression has one output");
	hs.losses = 0;
	rc = o->fit(reg, &r.data, NULL, msg, sizeof(msg));
	is_int(rc, 0, "mlp: regression fit");
	ok(hs.losses == 200 && strcmp(hs.stop_rule, "completed") == 0 &&
		   hs.stop_at == 200,
	   "mlp: early_stopping false runs all 200 epochs and says so");
	sc = scores(o, reg, &r.data.x, &rc);
	for (size_t i = 0; i < n; i++) {
		sse += (sc[i] - r.y[i]) * (sc[i] - r.y[i]);
		var += (r.y[i] - mean) * (r.y[i] - mean);
	}
	ok(rc == 0 && 1 - sse / var > 0.95, "mlp: regression r2 > 0.95");
	printf("# regression r2 %.4f\n", 1 - sse / var);
	free(sc);

	check_save_load(P_MLP, MLFS_TASK_CLASSIFICATION, pc, 4, cls, &v.data.x,
			&host);
	check_save_load(P_MLP, MLFS_TASK_REGRESSION, pr, 4, reg, &r.data.x,
			&host);
	check_bad_size(P_MLP, cls, 24 + 8, 8, 1000, "a wrong hidden width");
	check_bad_size(P_MLP, cls, 12, 4, 9, "too many layers");
	check_fuzz(P_MLP, MLFS_TASK_CLASSIFICATION, pc, 4, cls, &host);
	/* Classification bytes into a regression instance. */
	{
		void *buf = NULL;
		size_t len = 0;

		o->save(cls, &buf, &len);
		is_int(o->load(reg, buf, len), -EINVAL,
		       "mlp: bytes of another task are -EINVAL");
		free(buf);
	}
	o->fini(cls);
	o->fini(reg);
	set_free(&s);
	set_free(&v);
	set_free(&r);
}

/* ---- kmeans ---- */

static void test_kmeans(void)
{
	const size_t n = 900, d = 2;
	const double centres[] = { 0, 0, 10, 10, -10, 10 };
	struct host_state hs;
	struct mlfs_host host = make_host(&hs);
	const struct mlfs_train_ops *o = ops_of(P_KMEANS);
	struct mlfs_param pk[] = { num("k", 3), num("seed", 7) };
	struct set s;
	char msg[256] = "";
	void *inst;
	float *sc;
	size_t map[3] = { 9, 9, 9 };
	bool consistent = true, nonpos = true;
	int rc;

	rng_state = 103; /* each test its own data */

	make_blobs(&s, n, d, 3, centres, 0.5);
	s.data.y = NULL;
	s.data.nclasses = 0;
	inst = make(P_KMEANS, MLFS_TASK_CLUSTERING, pk, 2, &host);
	is_int(o->outputs(inst), 3, "kmeans: k outputs");
	is_int(o->fit(inst, &s.data, NULL, msg, sizeof(msg)), 0,
	       "kmeans: fit");
	ok(hs.other == 10, "kmeans: inertia reported per init");
	sc = scores(o, inst, &s.data.x, &rc);
	for (size_t i = 0; i < n; i++) {
		size_t best = 0, blob = i % 3;

		for (size_t c = 0; c < 3; c++) {
			if (sc[i * 3 + c] > sc[i * 3 + best])
				best = c;
			if (sc[i * 3 + c] > 0)
				nonpos = false;
		}
		if (map[blob] == 9)
			map[blob] = best;
		if (map[blob] != best)
			consistent = false;
	}
	ok(rc == 0 && consistent && map[0] != map[1] && map[1] != map[2] &&
		   map[0] != map[2],
	   "kmeans: finds the three blobs");
	ok(nonpos, "kmeans: scores are negated squared distances");
	/* The score of a blob's point is about -2 * 0.25 (two dims, sd 0.5). */
	{
		double mean = 0;

		for (size_t i = 0; i < n; i++)
			mean += sc[i * 3 + map[i % 3]] / (double)n;
		ok(mean < -0.3 && mean > -0.7,
		   "kmeans: mean squared distance to the centre ~ 0.5");
	}
	free(sc);

	{
		struct mlfs_param big = num("k", 1000);
		void *k1000 = make(P_KMEANS, MLFS_TASK_CLUSTERING, &big, 1,
				   &host);

		is_int(o->fit(k1000, &s.data, NULL, msg, sizeof(msg)),
		       -EINVAL, "kmeans: k > rows");
		is_str(msg,
		       "\"k\": must be <= the number of rows (900), got 1000",
		       "kmeans: k > rows message");
		o->fini(k1000);
	}
	check_save_load(P_KMEANS, MLFS_TASK_CLUSTERING, pk, 2, inst,
			&s.data.x, &host);
	check_bad_size(P_KMEANS, inst, 12, 8, 4, "a wrong k");
	check_bad_size(P_KMEANS, inst, 12, 8, 0, "k = 0");
	check_fuzz(P_KMEANS, MLFS_TASK_CLUSTERING, pk, 2, inst, &host);
	o->fini(inst);
	set_free(&s);
}

/* ---- bad params ---- */

struct bad_param {
	int plugin;
	unsigned task;
	struct mlfs_param param;
	const char *msg;
};

static const double four[] = { 8, 8, 8, 8 };
static const double zero_width[] = { 10, 0 };

static void test_bad_params(void)
{
	const struct bad_param cases[] = {
		{ P_LINEAR, MLFS_TASK_REGRESSION, num("l2", -1),
		  "\"l2\": must be >= 0, got -1" },
		{ P_LINEAR, MLFS_TASK_REGRESSION, num("lambda", 1),
		  "\"lambda\": unknown parameter for linear" },
		{ P_LINEAR, MLFS_TASK_REGRESSION, str("l2", "big"),
		  "\"l2\": must be a number, got a string" },
		{ P_LOGISTIC, MLFS_TASK_CLASSIFICATION, num("l2", -1),
		  "\"l2\": must be >= 0, got -1" },
		{ P_LOGISTIC, MLFS_TASK_CLASSIFICATION, num("C", 1),
		  "\"C\": unknown parameter for logistic" },
		{ P_LOGISTIC, MLFS_TASK_CLASSIFICATION, str("solver", "newton"),
		  "\"solver\": must be \"lbfgs\" or \"sgd\", got \"newton\"" },
		{ P_LOGISTIC, MLFS_TASK_CLASSIFICATION, num("max_iter", 0),
		  "\"max_iter\": must be an integer from 1 to 1000000000, got 0" },
		{ P_LOGISTIC, MLFS_TASK_CLASSIFICATION, num("max_iter", 2.5),
		  "\"max_iter\": must be an integer from 1 to 1000000000, got 2.5" },
		{ P_LOGISTIC, MLFS_TASK_CLASSIFICATION, num("tol", -1e-3),
		  "\"tol\": must be >= 0, got -0.001" },
		{ P_LOGISTIC, MLFS_TASK_CLASSIFICATION,
		  num("learning_rate", 0),
		  "\"learning_rate\": must be > 0, got 0" },
		{ P_MLP, MLFS_TASK_REGRESSION, list("hidden", four, 4),
		  "\"hidden\": must list 1 to 3 layer widths, got 4" },
		{ P_MLP, MLFS_TASK_REGRESSION, list("hidden", zero_width, 2),
		  "\"hidden\": widths must be integers from 1 to 100000, got 0" },
		{ P_MLP, MLFS_TASK_CLASSIFICATION, str("hidden", "wide"),
		  "\"hidden\": must be a list of layer widths, got a string" },
		{ P_MLP, MLFS_TASK_CLASSIFICATION, num("early_stopping", 1),
		  "\"early_stopping\": must be true or false, got a number" },
		{ P_MLP, MLFS_TASK_CLASSIFICATION, num("batch_size", 0),
		  "\"batch_size\": must be an integer from 1 to 1000000000, got 0" },
		{ P_MLP, MLFS_TASK_CLASSIFICATION, num("l2", -1),
		  "\"l2\": must be >= 0, got -1" },
		{ P_MLP, MLFS_TASK_CLASSIFICATION, num("alpha", 1),
		  "\"alpha\": unknown parameter for mlp" },
		{ P_KMEANS, MLFS_TASK_CLUSTERING, num("k", 0),
		  "\"k\": must be an integer from 1 to 100000, got 0" },
		{ P_KMEANS, MLFS_TASK_CLUSTERING, num("tol", -1),
		  "\"tol\": must be >= 0, got -1" },
		{ P_KMEANS, MLFS_TASK_CLUSTERING, num("l2", 1),
		  "\"l2\": unknown parameter for kmeans" },
		{ P_KMEANS, MLFS_TASK_CLUSTERING, boolean("n_init", true),
		  "\"n_init\": must be an integer, got a boolean" },
	};
	struct host_state hs;
	struct mlfs_host host = make_host(&hs);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bad_param *c = &cases[i];
		char msg[256] = "", name[160];
		void *inst = (void *)1;
		int rc;

		rc = ops_of(c->plugin)->init(&host, c->task, &c->param, 1,
					     &inst, msg, sizeof(msg));
		snprintf(name, sizeof(name), "%s: bad param %s -> -EINVAL",
			 plugs[c->plugin].name, c->param.name);
		ok(rc == -EINVAL && inst == NULL, name);
		snprintf(name, sizeof(name), "%s: bad param %s message",
			 plugs[c->plugin].name, c->param.name);
		is_str(msg, c->msg, name);
	}

	/* Two entries of one parameter, and epochs with its alias. */
	{
		struct mlfs_param twice[] = { num("epochs", 5),
					      num("max_iter", 5) };
		char msg[256] = "";
		void *inst = NULL;

		is_int(ops_of(P_MLP)->init(&host, MLFS_TASK_CLASSIFICATION,
					   twice, 2, &inst, msg, sizeof(msg)),
		       -EINVAL, "mlp: epochs and max_iter together");
		is_str(msg, "\"max_iter\": same as \"epochs\", give one of them",
		       "mlp: epochs and max_iter message");
	}
}

/* ---- models saved before the helper ---- */

/*
 * tests/unit/fixtures/<name>-v1.bin: bytes saved by the plugins as they
 * were before mlfs_plugin_util.h (commit 4f1c2e2), in the version 1
 * framing that ends in an FNV-1a 64, fitted on small made-up data.  Stores
 * written then hold such bytes inside their model files; they must keep
 * loading and predicting.
 */
struct legacy_model {
	int plugin;
	unsigned task;
	const char *file;
	size_t outputs;
	size_t features;
};

static uint8_t *read_fixture(const char *dir, const char *file, size_t *len)
{
	char path[4096];
	uint8_t *b = NULL;
	long n;
	FILE *f;

	*len = 0;
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "rb");
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 &&
	    fseek(f, 0, SEEK_SET) == 0) {
		b = malloc((size_t)n);
		if (b && fread(b, 1, (size_t)n, f) == (size_t)n) {
			*len = (size_t)n;
		} else {
			free(b);
			b = NULL;
		}
	}
	fclose(f);
	return b;
}

static void check_legacy(const char *dir, const struct legacy_model *lm,
			 const struct mlfs_host *host)
{
	const struct mlfs_train_ops *o = ops_of(lm->plugin);
	const char *pn = plugs[lm->plugin].name;
	float x[3 * 4] = { 0.5f, -1, 2, 0, -0.25f, 1, 0, 3, 1, 1, -2, 0.5f };
	struct mlfs_matrix xm = { x, 3, lm->features, lm->features };
	void *inst = make(lm->plugin, lm->task, NULL, 0, host);
	void *again = NULL;
	size_t len, alen = 0, bad = 0;
	uint8_t *old = read_fixture(dir, lm->file, &len);
	float *sc;
	char name[160];
	int rc;

	ok(old != NULL, lm->file);
	if (!old || !inst) {
		o->fini(inst);
		free(old);
		return;
	}
	snprintf(name, sizeof(name), "%s: loads %s", pn, lm->file);
	is_int(o->load(inst, old, len), 0, name);
	snprintf(name, sizeof(name), "%s: %s has %zu outputs", pn, lm->file,
		 lm->outputs);
	is_int(o->outputs(inst), lm->outputs, name);
	sc = scores(o, inst, &xm, &rc);
	for (size_t i = 0; i < 3 * lm->outputs; i++)
		bad += !isfinite(sc[i]);
	snprintf(name, sizeof(name), "%s: %s predicts", pn, lm->file);
	ok(rc == 0 && bad == 0, name);
	free(sc);
	/* Saved again: version 2, the same fields, no trailer. */
	is_int(o->save(inst, &again, &alen), 0, "save after a version 1 load");
	snprintf(name, sizeof(name),
		 "%s: %s saves again as version 2 with the same fields", pn,
		 lm->file);
	ok(again && alen == len - 8 && memcmp(again, old, 4) == 0 &&
		   ((uint8_t *)again)[4] == 2 &&
		   memcmp((uint8_t *)again + 8, old + 8, alen - 8) == 0,
	   name);
	free(again);
	/* The trailer still guards version 1 bytes. */
	bad = 0;
	for (size_t i = 0; i < len; i++) {
		old[i] ^= (uint8_t)(1u << (i % 8));
		bad += o->load(inst, old, len) != -EINVAL;
		old[i] ^= (uint8_t)(1u << (i % 8));
	}
	for (size_t n = 0; n < len; n++)
		bad += o->load(inst, old, n) != -EINVAL;
	snprintf(name, sizeof(name),
		 "%s: every flipped byte and truncation of %s is -EINVAL", pn,
		 lm->file);
	is_int(bad, 0, name);
	o->fini(inst);
	free(old);
}

static void test_legacy(void)
{
	static const struct legacy_model models[] = {
		{ P_LINEAR, MLFS_TASK_REGRESSION, "linear-v1.bin", 1, 3 },
		{ P_LOGISTIC, MLFS_TASK_CLASSIFICATION, "logistic-v1.bin", 3,
		  2 },
		{ P_LOGISTIC, MLFS_TASK_CLASSIFICATION, "logistic2-v1.bin", 2,
		  2 },
		{ P_MLP, MLFS_TASK_CLASSIFICATION, "mlp-v1.bin", 3, 2 },
		{ P_MLP, MLFS_TASK_REGRESSION, "mlpreg-v1.bin", 1, 2 },
		{ P_KMEANS, MLFS_TASK_CLUSTERING, "kmeans-v1.bin", 3, 2 },
	};
	const char *dir = getenv("MLFS_FIXTURE_DIR");
	struct host_state hs;
	struct mlfs_host host = make_host(&hs);

	/* meson sets it, as it sets MLFS_PLUGIN_DIR */
	ok(dir && *dir, "MLFS_FIXTURE_DIR is set");
	if (!dir || !*dir)
		return;
	for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++)
		check_legacy(dir, &models[i], &host);
}

/* ---- cancellation ---- */

static void test_cancel(void)
{
	static const unsigned tasks[P_COUNT] = {
		MLFS_TASK_REGRESSION, MLFS_TASK_CLASSIFICATION,
		MLFS_TASK_CLASSIFICATION, MLFS_TASK_CLUSTERING,
	};
	const double centres[] = { 0, 0, 5, 5 };
	struct host_state hs;
	struct mlfs_host host = make_host(&hs);
	struct set s;

	rng_state = 104; /* each test its own data */

	make_blobs(&s, 200, 2, 2, centres, 1);
	for (int p = 0; p < P_COUNT; p++) {
		char msg[256] = "", name[128];
		void *inst = make(p, tasks[p], NULL, 0, &host);
		void *buf = NULL;
		size_t len = 0;

		hs.cancel = 1;
		s.data.nclasses = tasks[p] == MLFS_TASK_CLASSIFICATION ? 2 : 0;
		snprintf(name, sizeof(name), "%s: cancelled fit is -ECANCELED",
			 plugs[p].name);
		is_int(ops_of(p)->fit(inst, &s.data, NULL, msg, sizeof(msg)),
		       -ECANCELED, name);
		snprintf(name, sizeof(name),
			 "%s: nothing to save after a cancelled fit",
			 plugs[p].name);
		is_int(ops_of(p)->save(inst, &buf, &len), -EINVAL, name);
		hs.cancel = 0;
		ops_of(p)->fini(inst);
	}
	set_free(&s);
}

/* ---- predict from several threads ---- */

struct predict_arg {
	const struct mlfs_train_ops *ops;
	void *inst;
	const struct mlfs_matrix *x;
	const float *want;
	int same;
};

static void *predict_thread(void *p)
{
	struct predict_arg *a = p;
	size_t k = a->ops->outputs(a->inst);
	int rc;

	a->same = 1;
	for (int r = 0; r < 20; r++) {
		float *sc = scores(a->ops, a->inst, a->x, &rc);

		if (rc != 0 ||
		    memcmp(sc, a->want, a->x->rows * k * sizeof(float)) != 0)
			a->same = 0;
		free(sc);
	}
	return NULL;
}

static void test_threads(void)
{
	const double centres[] = { 0, 0, 0, 3, 3, 0, -3, 0, 0 };
	const double hidden[] = { 8 };
	struct mlfs_param pm[] = { list("hidden", hidden, 1),
				   num("epochs", 5) };
	struct host_state hs;
	struct mlfs_host host = make_host(&hs);
	const struct mlfs_train_ops *o = ops_of(P_MLP);
	struct predict_arg args[4];
	pthread_t th[4];
	struct set s;
	char msg[256] = "";
	void *inst;
	float *want, *bad;
	int rc, same = 1;
	struct mlfs_matrix wrong;

	rng_state = 105; /* each test its own data */

	make_blobs(&s, 700, 3, 3, centres, 1);
	inst = make(P_MLP, MLFS_TASK_CLASSIFICATION, pm, 2, &host);
	is_int(o->predict(inst, &s.data.x,
			  &(struct mlfs_matrix){ s.x, 700, 3, 3 }),
	       -EINVAL, "mlp: predict before fit is -EINVAL");
	is_int(o->fit(inst, &s.data, NULL, msg, sizeof(msg)), 0,
	       "mlp: small fit for threads");
	want = scores(o, inst, &s.data.x, &rc);
	for (int t = 0; t < 4; t++) {
		args[t] = (struct predict_arg){ o, inst, &s.data.x, want, 0 };
		pthread_create(&th[t], NULL, predict_thread, &args[t]);
	}
	for (int t = 0; t < 4; t++) {
		pthread_join(th[t], NULL);
		same &= args[t].same;
	}
	ok(rc == 0 && same, "mlp: predict from 4 threads at once agrees");
	wrong = s.data.x;
	wrong.cols = 2;
	bad = scores(o, inst, &wrong, &rc);
	is_int(rc, -EINVAL, "mlp: predict with the wrong feature count");
	free(bad);
	free(want);
	o->fini(inst);
	set_free(&s);
}

int main(void)
{
	const char *dir = getenv("MLFS_PLUGIN_DIR");

	/* meson sets the directory; without it this program cannot run. */
	if (!dir || !*dir)
		return skip_all("MLFS_PLUGIN_DIR is not set");
	if (plugs_open(dir, plugs, P_COUNT) < 0)
		return 1;
	test_descriptors();
	test_bad_params();
	test_linear();
	test_logistic();
	test_mlp();
	test_kmeans();
	test_legacy();
	test_cancel();
	test_threads();
	plugs_close(plugs, P_COUNT);
	return done();
}
