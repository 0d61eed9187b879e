/* SPDX-License-Identifier: MIT */
/*
 * kmeans.c: the "kmeans" train plugin, k-means clustering.
 *
 * As scikit-learn's KMeans with algorithm="lloyd": k-means++ seeding with
 * 2 + log(k) local trials per centre (each drawn with probability
 * proportional to the squared distance to the nearest centre so far, the
 * trial lowering the potential most wins), then Lloyd iterations until
 * the centres move less than tol times the mean feature variance (summed
 * squared shift), the labels stop changing, or max_iter.  An empty
 * cluster is moved to the point farthest from its centre.  n_init runs
 * from one seeded stream; the lowest inertia wins.  Squared distances
 * come from one GEMM per block of rows, ||x||^2 - 2 x.c + ||c||^2, in
 * float, with the sums (centres, inertia) kept in double.
 *
 * Threads: fit runs in the job's process on one thread (BLAS may use
 * more); predict only reads the instance and allocates its scratch per
 * call, so it can run on many threads at once.  The saved form is
 * "MFKM", version 2, task, k, features, inertia, the centres, all
 * little-endian (mlfs_plugin_util.h); version 1, the same with an FNV-1a
 * 64 trailer, still loads.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "mlfs_plugin.h"
#include "mlfs_plugin_util.h"

#define KM_MAGIC "MFKM"
#define KM_VERSION 2u
#define KM_VERSION_FNV 1u /* the same with an FNV-1a 64 trailer */
#define KM_MAX_K 100000
#define KM_BLOCK_FLOATS (1u << 20) /* distance scratch per block */
#define KM_TRIALS 32 /* most local trials per seed */

struct km {
	struct mlfs_host host; /* copied at init; unset fields are NULL */
	unsigned task;
	/* params, set by the table below (its kinds give the types) */
	long k;
	long max_iter;
	double tol;
	long n_init;
	long seed;
	/* the fitted model */
	bool fitted;
	size_t kc;	/* centres */
	size_t d;	/* features */
	double inertia;
	float *c;	/* kc x d */
	float *cc;	/* kc: ||c||^2 */
};

/* One fit: the data and its scratch. */
struct km_job {
	const struct km *km;
	const struct mlfs_matrix *x;
	size_t n, d, k;
	size_t block;	/* rows per distance GEMM */
	uint64_t rng;
	float *xx;	/* n: ||x||^2 */
	float *dist;	/* block x max(k, trials) */
	float *mind;	/* n: squared distance to the nearest centre */
	int *label;	/* n */
	double *cum;	/* n: running sum of mind, for seeding */
	double *sums;	/* k x d */
	size_t *count;	/* k */
	float *cc;	/* k (or trials) */
	float *cand;	/* KM_TRIALS x d: seeding candidates */
};

/* ---- messages, host calls ---- */

static bool km_cancelled(const struct km *km)
{
	return km->host.cancelled && km->host.cancelled(km->host.ctx);
}

/* ---- parameters ---- */

static const struct mlfs_param_spec km_params[] = {
	MLFS_PARAM_INT("k", struct km, k, 8, 1, KM_MAX_K),
	MLFS_PARAM_INT("max_iter", struct km, max_iter, 300, 1, 1e9),
	MLFS_PARAM_NUMBER("tol", struct km, tol, 1e-4, 0),
	MLFS_PARAM_INT("n_init", struct km, n_init, 10, 1, 1e6),
	MLFS_PARAM_INT("seed", struct km, seed, 0, 0, 1e9),
	MLFS_PARAM_END,
};

static const struct mlfs_train_info km_info =
	MLFS_TRAIN_INFO(struct km, "kmeans", MLFS_TASK_CLUSTERING,
			"does clustering only", km_params);

static int km_init(const struct mlfs_host *host, unsigned task,
		   const struct mlfs_param *params, size_t nparams,
		   void **inst, char *msg, size_t msglen)
{
	return mlfs_train_new(&km_info, host, task, params, nparams, inst,
			      msg, msglen);
}

static void km_fini(void *inst)
{
	struct km *km = inst;

	if (!km)
		return;
	free(km->c);
	free(km->cc);
	free(km);
}

/* ---- distances ---- */

static uint64_t km_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double km_uniform(uint64_t *s)
{
	return (double)(km_rand(s) >> 11) * 0x1p-53;
}

static void km_norms(const float *c, size_t k, size_t d, float *cc)
{
	for (size_t j = 0; j < k; j++) {
		double s = 0;

		for (size_t f = 0; f < d; f++)
			s += (double)c[j * d + f] * c[j * d + f];
		cc[j] = (float)s;
	}
}

/*
 * Squared distances of m rows of x (from row i0) to k centres c (with
 * norms cc) into dist (m x k, ld k), without the ||x||^2 term.
 */
static void km_cross(const struct mlfs_matrix *x, size_t i0, size_t m,
		     const float *c, const float *cc, size_t k, float *dist)
{
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)m,
		    (blasint)k, (blasint)x->cols, -2.0f, x->data + i0 * x->ld,
		    (blasint)x->ld, c, (blasint)x->cols, 0.0f, dist,
		    (blasint)k);
	for (size_t i = 0; i < m; i++)
		for (size_t j = 0; j < k; j++)
			dist[i * k + j] += cc[j];
}

/*
 * The E step for centres c: labels, nearest squared distances, the
 * per-cluster sums and counts.  Returns the inertia; *changed counts
 * labels that moved.
 */
static double km_assign(struct km_job *job, const float *c, size_t *changed)
{
	size_t n = job->n, d = job->d, k = job->k;
	double inertia = 0;

	km_norms(c, k, d, job->cc);
	memset(job->sums, 0, k * d * sizeof(*job->sums));
	memset(job->count, 0, k * sizeof(*job->count));
	*changed = 0;
	for (size_t i0 = 0; i0 < n; i0 += job->block) {
		size_t m = n - i0 < job->block ? n - i0 : job->block;

		km_cross(job->x, i0, m, c, job->cc, k, job->dist);
		for (size_t i = 0; i < m; i++) {
			const float *di = job->dist + i * k;
			const float *row = job->x->data + (i0 + i) * job->x->ld;
			double *s;
			size_t best = 0;
			float v;

			for (size_t j = 1; j < k; j++)
				if (di[j] < di[best])
					best = j;
			v = job->xx[i0 + i] + di[best];
			v = v > 0 ? v : 0;
			job->mind[i0 + i] = v;
			inertia += v;
			if (job->label[i0 + i] != (int)best) {
				job->label[i0 + i] = (int)best;
				(*changed)++;
			}
			job->count[best]++;
			s = job->sums + best * d;
			for (size_t f = 0; f < d; f++)
				s[f] += row[f];
		}
	}
	return inertia;
}

/* ---- seeding ---- */

/* The first index whose running sum reaches v (numpy's searchsorted). */
static size_t km_search(const double *cum, size_t n, double v)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (cum[mid] < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n ? lo : n - 1;
}

static void km_copy_row(const struct km_job *job, size_t i, float *dst)
{
	memcpy(dst, job->x->data + i * job->x->ld, job->d * sizeof(*dst));
}

/*
 * Lower mind to the distance to the centres cand (t of them) taken
 * one at a time; pot[j] gets the potential with candidate j added.  With
 * update, mind is changed too (t must be 1).
 */
static void km_potential(struct km_job *job, const float *cand, size_t t,
			 double *pot, bool update)
{
	float cc[KM_TRIALS];

	km_norms(cand, t, job->d, cc);
	for (size_t j = 0; j < t; j++)
		pot[j] = 0;
	for (size_t i0 = 0; i0 < job->n; i0 += job->block) {
		size_t m = job->n - i0 < job->block ? job->n - i0 : job->block;

		km_cross(job->x, i0, m, cand, cc, t, job->dist);
		for (size_t i = 0; i < m; i++) {
			float old = job->mind[i0 + i], xx = job->xx[i0 + i];

			for (size_t j = 0; j < t; j++) {
				float v = job->dist[i * t + j] + xx;

				v = v > 0 ? v : 0;
				v = v < old ? v : old;
				pot[j] += v;
				if (update)
					job->mind[i0 + i] = v;
			}
		}
	}
}

static void km_plusplus(struct km_job *job, float *c)
{
	size_t n = job->n, d = job->d, k = job->k;
	size_t trials = 2 + (size_t)log((double)k);
	double pot[KM_TRIALS], cur;
	size_t idx[KM_TRIALS];

	if (trials > KM_TRIALS)
		trials = KM_TRIALS;
	km_copy_row(job, (size_t)(km_rand(&job->rng) % n), c);
	for (size_t i = 0; i < n; i++)
		job->mind[i] = INFINITY;
	km_potential(job, c, 1, &cur, true);
	for (size_t j = 1; j < k; j++) {
		double acc = 0;
		size_t best = 0;

		for (size_t i = 0; i < n; i++) {
			acc += job->mind[i];
			job->cum[i] = acc;
		}
		cur = acc;
		for (size_t t = 0; t < trials; t++) {
			idx[t] = km_search(job->cum, n,
					   km_uniform(&job->rng) * cur);
			km_copy_row(job, idx[t], job->cand + t * d);
		}
		km_potential(job, job->cand, trials, pot, false);
		for (size_t t = 1; t < trials; t++)
			if (pot[t] < pot[best])
				best = t;
		km_copy_row(job, idx[best], c + j * d);
		km_potential(job, c + j * d, 1, &cur, true);
	}
}

/* ---- Lloyd ---- */

/* Move each empty cluster to the point farthest from its centre. */
static void km_relocate(struct km_job *job, float *c)
{
	for (size_t j = 0; j < job->k; j++) {
		size_t far = 0;

		if (job->count[j])
			continue;
		for (size_t i = 1; i < job->n; i++)
			if (job->mind[i] > job->mind[far])
				far = i;
		km_copy_row(job, far, c + j * job->d);
		job->mind[far] = 0;
	}
}

/* Why one run ended, for mlfs_host.stopped. */
struct km_stop {
	const char *rule; /* MLFS_STOP_* */
	long at;	  /* iterations */
	char why[160];
};

/*
 * One run from k-means++ seeds; c gets the centres, *inertia theirs, and
 * *stop why the run ended.
 */
static int km_run(struct km_job *job, float *c, float *cnew, double tol,
		  double *inertia, struct km_stop *stop)
{
	const struct km *km = job->km;
	size_t k = job->k, d = job->d, changed;
	bool stale = true; /* inertia is not c's */

	km_plusplus(job, c);
	for (size_t i = 0; i < job->n; i++)
		job->label[i] = -1;
	stop->rule = MLFS_STOP_MAX_ITER;
	stop->at = km->max_iter;
	snprintf(stop->why, sizeof(stop->why),
		 "reached max_iter %ld before the centres settled",
		 km->max_iter);
	for (long it = 0; it < km->max_iter; it++) {
		double shift = 0;

		if (km_cancelled(km))
			return -ECANCELED;
		*inertia = km_assign(job, c, &changed);
		stale = false;
		if (it > 0 && changed == 0) {
			stop->rule = MLFS_STOP_TOL;
			stop->at = it;
			snprintf(stop->why, sizeof(stop->why),
				 "no point changed cluster after %ld iterations",
				 it);
			break;
		}
		for (size_t j = 0; j < k; j++) {
			const double *s = job->sums + j * d;
			double cnt = (double)job->count[j];

			for (size_t f = 0; f < d && job->count[j]; f++)
				cnew[j * d + f] = (float)(s[f] / cnt);
		}
		km_relocate(job, cnew);
		for (size_t j = 0; j < k * d; j++) {
			double v = (double)cnew[j] - c[j];

			shift += v * v;
		}
		memcpy(c, cnew, k * d * sizeof(*c));
		stale = true;
		if (shift <= tol) {
			stop->rule = MLFS_STOP_TOL;
			stop->at = it + 1;
			snprintf(stop->why, sizeof(stop->why),
				 "the centres moved %g <= tol (%g scaled by the feature variance) at iteration %ld",
				 shift, km->tol, it + 1);
			break;
		}
	}
	if (stale)
		*inertia = km_assign(job, c, &changed);
	return 0;
}

/* tol times the mean variance of the features, as scikit-learn's. */
static double km_tolerance(const struct mlfs_matrix *x, double tol)
{
	double var = 0;

	if (tol == 0)
		return 0;
	for (size_t f = 0; f < x->cols; f++) {
		double s = 0, s2 = 0;

		for (size_t i = 0; i < x->rows; i++) {
			double v = x->data[i * x->ld + f];

			s += v;
			s2 += v * v;
		}
		s /= (double)x->rows;
		var += s2 / (double)x->rows - s * s;
	}
	return tol * var / (double)x->cols;
}

static bool km_matrix_ok(const struct mlfs_matrix *m)
{
	if (m->rows && !m->data)
		return false;
	return m->ld >= m->cols && m->cols <= INT_MAX && m->ld <= INT_MAX;
}

static void km_job_free(struct km_job *job)
{
	free(job->xx);
	free(job->dist);
	free(job->mind);
	free(job->label);
	free(job->cum);
	free(job->sums);
	free(job->count);
	free(job->cc);
	free(job->cand);
}

static int km_job_alloc(struct km_job *job)
{
	size_t n = job->n, d = job->d, k = job->k;
	size_t w = k > KM_TRIALS ? k : KM_TRIALS;

	job->block = KM_BLOCK_FLOATS / w;
	if (job->block < 16)
		job->block = 16;
	job->xx = malloc(n * sizeof(*job->xx));
	job->dist = malloc(job->block * w * sizeof(*job->dist));
	job->mind = malloc(n * sizeof(*job->mind));
	job->label = malloc(n * sizeof(*job->label));
	job->cum = malloc(n * sizeof(*job->cum));
	job->sums = malloc(k * d * sizeof(*job->sums));
	job->cand = malloc(KM_TRIALS * d * sizeof(*job->cand));
	job->count = malloc(k * sizeof(*job->count));
	job->cc = malloc(w * sizeof(*job->cc));
	if (!job->xx || !job->dist || !job->mind || !job->label || !job->cum ||
	    !job->sums || !job->count || !job->cc || !job->cand)
		return -ENOMEM;
	return 0;
}

static int km_fit(void *inst, const struct mlfs_data *train,
		  const struct mlfs_data *val, char *msg, size_t msglen)
{
	struct km *km = inst;
	struct km_job job = { .km = km, .rng = (uint64_t)km->seed };
	float *c = NULL, *cnew = NULL, *best = NULL, *cc = NULL;
	double best_inertia = INFINITY, tol;
	struct km_stop stop, best_stop = { MLFS_STOP_COMPLETED, 0, "" };
	long best_r = 0;
	char line[96];
	int rc;

	(void)val;
	if (!train || !km_matrix_ok(&train->x) || !train->x.rows ||
	    !train->x.cols)
		return mlfs_err(msg, msglen, "no training rows or no features");
	if ((size_t)km->k > train->x.rows)
		return mlfs_err(msg, msglen,
				"\"k\": must be <= the number of rows (%zu), got %ld",
				train->x.rows, km->k);
	job.x = &train->x;
	job.n = train->x.rows;
	job.d = train->x.cols;
	job.k = (size_t)km->k;
	if (job.k * job.d > INT_MAX)
		return mlfs_err(msg, msglen, "too many centre coordinates");

	rc = -ENOMEM;
	c = malloc(job.k * job.d * sizeof(*c));
	cnew = malloc(job.k * job.d * sizeof(*cnew));
	best = malloc(job.k * job.d * sizeof(*best));
	cc = malloc(job.k * sizeof(*cc));
	if (!c || !cnew || !best || !cc)
		goto out;
	rc = km_job_alloc(&job);
	if (rc < 0)
		goto out;
	for (size_t i = 0; i < job.n; i++) {
		const float *row = job.x->data + i * job.x->ld;
		double s = 0;

		for (size_t f = 0; f < job.d; f++)
			s += (double)row[f] * row[f];
		job.xx[i] = (float)s;
	}
	tol = km_tolerance(job.x, km->tol);
	for (long r = 0; r < km->n_init; r++) {
		double inertia;

		rc = km_run(&job, c, cnew, tol, &inertia, &stop);
		if (rc < 0)
			goto out;
		if (km->host.metric)
			km->host.metric(km->host.ctx, "inertia", inertia, r + 1);
		if (km->host.progress) {
			snprintf(line, sizeof(line), "init %ld/%ld inertia %.6g",
				 r + 1, km->n_init, inertia);
			km->host.progress(km->host.ctx,
					  (double)(r + 1) / (double)km->n_init,
					  line);
		}
		if (inertia < best_inertia) {
			best_inertia = inertia;
			best_stop = stop;
			best_r = r + 1;
			memcpy(best, c, job.k * job.d * sizeof(*best));
		}
	}
	if (!isfinite(best_inertia)) {
		rc = mlfs_err(msg, msglen, "the data is not finite");
		goto out;
	}
	if (km->host.stopped) {
		char why[256];

		snprintf(why, sizeof(why), "init %ld of %ld, the lowest inertia: %s",
			 best_r, km->n_init, best_stop.why);
		km->host.stopped(km->host.ctx, best_stop.rule, best_stop.at,
				 why);
	}
	km_norms(best, job.k, job.d, cc);

	free(km->c);
	free(km->cc);
	km->c = best;
	km->cc = cc;
	best = NULL;
	cc = NULL;
	km->kc = job.k;
	km->d = job.d;
	km->inertia = best_inertia;
	km->fitted = true;
	rc = 0;
out:
	km_job_free(&job);
	free(cc);
	free(best);
	free(cnew);
	free(c);
	return rc;
}

static size_t km_outputs(void *inst)
{
	const struct km *km = inst;

	return km->fitted ? km->kc : (size_t)km->k;
}

static int km_predict(void *inst, const struct mlfs_matrix *x,
		      struct mlfs_matrix *out)
{
	const struct km *km = inst;
	const size_t step = 1 << 16;

	if (!km->fitted || !x || !out || !km_matrix_ok(x) ||
	    !km_matrix_ok(out))
		return -EINVAL;
	if (x->cols != km->d || out->rows != x->rows || out->cols != km->kc)
		return -EINVAL;
	for (size_t i0 = 0; i0 < x->rows; i0 += step) {
		size_t m = x->rows - i0 < step ? x->rows - i0 : step;
		float *o = out->data + i0 * out->ld;

		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
			    (blasint)m, (blasint)km->kc, (blasint)km->d, 2.0f,
			    x->data + i0 * x->ld, (blasint)x->ld, km->c,
			    (blasint)km->d, 0.0f, o, (blasint)out->ld);
		for (size_t i = 0; i < m; i++) {
			const float *row = x->data + (i0 + i) * x->ld;
			double s = 0;
			float xx;

			for (size_t f = 0; f < km->d; f++)
				s += (double)row[f] * row[f];
			xx = (float)s;
			for (size_t j = 0; j < km->kc; j++) {
				/* o holds 2 x.c; the score is -distance^2. */
				float v = o[i * out->ld + j] - xx - km->cc[j];

				o[i * out->ld + j] = v < 0 ? v : 0.0f;
			}
		}
	}
	return 0;
}

/* ---- save and load ---- */

static int km_save(void *inst, void **buf, size_t *len)
{
	const struct km *km = inst;
	struct mlfs_writer w = { 0 };

	*buf = NULL;
	*len = 0;
	if (!km->fitted)
		return -EINVAL;
	mlfs_put_header(&w, KM_MAGIC, KM_VERSION);
	mlfs_put_u32(&w, km->task);
	mlfs_put_u64(&w, km->kc);
	mlfs_put_u64(&w, km->d);
	mlfs_put_f64(&w, km->inertia);
	mlfs_put_f32s(&w, km->c, km->kc * km->d);
	return mlfs_writer_finish(&w, buf, len);
}

static int km_load(void *inst, const void *buf, size_t len)
{
	struct km *km = inst;
	struct mlfs_reader r;
	uint64_t k, d;
	double inertia;
	float *c, *cc;

	mlfs_reader_init(&r, buf, len);
	if (mlfs_get_header(&r, KM_MAGIC, KM_VERSION, KM_VERSION_FNV) < 0)
		return -EINVAL;
	if (mlfs_get_u32(&r) != km->task)
		return -EINVAL;
	k = mlfs_get_u64(&r);
	d = mlfs_get_u64(&r);
	inertia = mlfs_get_f64(&r);
	if (k < 1 || k > KM_MAX_K || d < 1 || d > INT_MAX || k * d > INT_MAX)
		return -EINVAL;
	if (mlfs_reader_expect(&r, k * d, 4) < 0 || !(inertia >= 0))
		return -EINVAL;
	c = malloc(k * d * sizeof(*c));
	cc = malloc(k * sizeof(*cc));
	if (!c || !cc) {
		free(cc);
		free(c);
		return -ENOMEM;
	}
	if (mlfs_get_f32s(&r, c, k * d) < 0 || mlfs_reader_end(&r) < 0) {
		free(cc);
		free(c);
		return -EINVAL;
	}
	km_norms(c, k, d, cc);
	free(km->c);
	free(km->cc);
	km->c = c;
	km->cc = cc;
	km->kc = k;
	km->d = d;
	km->inertia = inertia;
	km->fitted = true;
	return 0;
}

static const struct mlfs_train_ops km_ops = {
	.size = sizeof(struct mlfs_train_ops),
	.tasks = MLFS_TASK_CLUSTERING,
	.init = km_init,
	.fit = km_fit,
	.outputs = km_outputs,
	.predict = km_predict,
	.save = km_save,
	.load = km_load,
	.fini = km_fini,
	.model_format = 1,
};

MLFS_EXPORT const struct mlfs_plugin mlfs_plugin = {
	MLFS_ABI_MAJOR, MLFS_ABI_MINOR, MLFS_STAGE_TRAIN,
	"kmeans",	"1.0.0",	&km_ops,
};
