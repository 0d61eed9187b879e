/* SPDX-License-Identifier: MIT */
/*
 * logistic.c: the "logistic" train plugin, L2-regularised logistic
 * regression: binary (one weight vector, the sigmoid) for two classes and
 * multinomial softmax for more.
 *
 * The objective is mean(log loss) + l2/2 * ||W||^2 with the intercepts
 * left out of the penalty, so scikit-learn's C is 1/(n * l2); l2 defaults
 * to 1/n, which is C=1.  Two solvers: "lbfgs" (the default), our own
 * L-BFGS with a memory of ten pairs and a strong Wolfe line search,
 * stopping like scikit-learn's (largest gradient entry <= tol, a relative
 * change of the objective below 2.2e-9, or max_iter iterations); and
 * "sgd", mini-batch SGD (batch_size, default min(200, n)) with a
 * constant learning_rate (default 0.1), shuffled each pass from "seed",
 * stopping after `epochs` passes (default max_iter) or when five passes in
 * a row did not lower the loss by tol.  Loss and gradient run over
 * blocks of rows small enough to stay in the cache between the forward
 * GEMM (logits = X W^T + b) and the backward one (G = R^T X), in float,
 * with the sums kept in double.
 *
 * Threads: fit runs in the job's process on one thread (BLAS may use
 * more); predict only reads the instance and can run on many threads at
 * once.  The saved form is "MFLG", version 2, task, classes, features,
 * W, b, all little-endian (mlfs_plugin_util.h); version 1, the same with
 * an FNV-1a 64 trailer, still loads.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "mlfs_plugin.h"
#include "mlfs_plugin_util.h"

#define LOGI_MAGIC "MFLG"
#define LOGI_VERSION 2u
#define LOGI_VERSION_FNV 1u /* the same with an FNV-1a 64 trailer */
#define LOGI_MAX_CLASSES (1u << 20)
#define LOGI_BLOCK_BYTES (1024 * 1024) /* of x per block: stays in cache */
#define LOGI_MEMORY 10		      /* L-BFGS pairs */
#define LOGI_FTOL 2.2204460492503131e-09 /* scipy's default factr */
#define LOGI_C1 1e-4			 /* Armijo */
#define LOGI_C2 0.9			 /* curvature */
#define LOGI_LS_STEPS 20
#define LOGI_SGD_PATIENCE 5

enum logi_solver {
	LOGI_LBFGS,
	LOGI_SGD,
};

struct logi {
	struct mlfs_host host; /* copied at init; unset fields are NULL */
	unsigned task;
	/* params, set by the table below (its kinds give the types) */
	double l2;	 /* NaN: 1/n */
	int solver;	 /* enum logi_solver */
	long max_iter;
	double tol;
	long epochs;	 /* 0: max_iter */
	long batch_size; /* 0: min(200, n) */
	double lr;
	long seed;
	/* the fitted model */
	bool fitted;
	size_t d;  /* features */
	size_t k;  /* classes */
	size_t ke; /* weight rows: 1 for two classes, else k */
	float *w;  /* ke x d */
	float *b;  /* ke */
};

/* One fit: the data and the scratch shared by the loss and the solvers. */
struct logi_job {
	struct logi *lg;
	const struct mlfs_matrix *x;
	const float *y;
	size_t n, d, ke;
	size_t np;    /* parameters: ke * (d + 1) */
	size_t block; /* rows per block */
	double l2;
	float *wf;   /* ke x d, the weights the GEMMs use */
	float *bf;   /* ke */
	float *z;    /* block x ke: logits, then residuals */
	float *gtmp; /* ke x d */
	long evals;
};

/* ---- messages, host calls ---- */

static bool logi_cancelled(const struct logi *lg)
{
	return lg->host.cancelled && lg->host.cancelled(lg->host.ctx);
}

static void logi_metric(const struct logi *lg, const char *name, double v,
			long step)
{
	if (lg->host.metric)
		lg->host.metric(lg->host.ctx, name, v, step);
}

/* Tell the host why training ended (ABI 1.1; absent in older hosts). */
__attribute__((format(printf, 4, 5))) static void
logi_stopped(const struct logi *lg, const char *rule, long at,
	     const char *fmt, ...)
{
	char why[256];
	va_list ap;

	if (!lg->host.stopped)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	lg->host.stopped(lg->host.ctx, rule, at, why);
}

static void logi_progress(const struct logi *lg, double frac,
			  const char *what, long i, long n, double loss)
{
	char line[96];

	if (!lg->host.progress)
		return;
	snprintf(line, sizeof(line), "%s %ld/%ld loss %.6g", what, i, n, loss);
	lg->host.progress(lg->host.ctx, frac, line);
}

/* ---- parameters ---- */

static const char *const logi_solvers[] = { "lbfgs", "sgd", NULL };

/* l2's default NaN means 1/n, scikit-learn's C=1 */
static const struct mlfs_param_spec logi_params[] = {
	MLFS_PARAM_NUMBER("l2", struct logi, l2, NAN, 0),
	MLFS_PARAM_ENUM("solver", struct logi, solver, LOGI_LBFGS,
			logi_solvers),
	MLFS_PARAM_INT("max_iter", struct logi, max_iter, 100, 1, 1e9),
	MLFS_PARAM_NUMBER("tol", struct logi, tol, 1e-4, 0),
	MLFS_PARAM_INT("epochs", struct logi, epochs, 0, 1, 1e9),
	MLFS_PARAM_INT("batch_size", struct logi, batch_size, 0, 1, 1e9),
	MLFS_PARAM_NUMBER_ABOVE("learning_rate", struct logi, lr, 0.1, 0),
	MLFS_PARAM_INT("seed", struct logi, seed, 0, 0, 1e9),
	MLFS_PARAM_END,
};

static const struct mlfs_train_info logi_info =
	MLFS_TRAIN_INFO(struct logi, "logistic",
			MLFS_TASK_CLASSIFICATION, "does classification only",
			logi_params);

static int logi_init(const struct mlfs_host *host, unsigned task,
		     const struct mlfs_param *params, size_t nparams,
		     void **inst, char *msg, size_t msglen)
{
	return mlfs_train_new(&logi_info, host, task, params, nparams, inst,
			      msg, msglen);
}

static void logi_fini(void *inst)
{
	struct logi *lg = inst;

	if (!lg)
		return;
	free(lg->w);
	free(lg->b);
	free(lg);
}

/* ---- data checks ---- */

static bool logi_matrix_ok(const struct mlfs_matrix *m)
{
	if (m->rows && !m->data)
		return false;
	return m->ld >= m->cols && m->cols <= INT_MAX && m->ld <= INT_MAX;
}

static int logi_check_labels(const float *y, size_t n, size_t k,
			     const char *set, char *msg, size_t msglen)
{
	for (size_t i = 0; i < n; i++) {
		float t = y[i];

		if (!(t >= 0) || t >= (float)k || t != floorf(t))
			return mlfs_err(msg, msglen,
					"%s row %zu: label %g is not a class index below %zu",
					set, i, (double)t, k);
	}
	return 0;
}

static int logi_check_data(const struct mlfs_data *train,
			   const struct mlfs_data *val, char *msg,
			   size_t msglen)
{
	size_t k;
	int rc;

	if (!train || !logi_matrix_ok(&train->x))
		return mlfs_err(msg, msglen, "bad training matrix");
	if (!train->x.rows)
		return mlfs_err(msg, msglen, "no training rows");
	if (!train->x.cols)
		return mlfs_err(msg, msglen, "no features");
	if (train->x.rows > INT_MAX)
		return mlfs_err(msg, msglen, "too many training rows (%zu)",
				train->x.rows);
	k = train->nclasses;
	if (k < 2 || k > LOGI_MAX_CLASSES)
		return mlfs_err(msg, msglen,
				"classification needs 2 to %u classes, got %zu",
				LOGI_MAX_CLASSES, k);
	if ((k == 2 ? 1 : k) * (train->x.cols + 1) > INT_MAX)
		return mlfs_err(msg, msglen, "too many weights");
	if (!train->y)
		return mlfs_err(msg, msglen, "classification needs labels");
	rc = logi_check_labels(train->y, train->x.rows, k, "training", msg,
			       msglen);
	if (rc < 0 || !val || !val->x.rows)
		return rc;
	if (!logi_matrix_ok(&val->x) || !val->y)
		return mlfs_err(msg, msglen, "bad validation data");
	if (val->x.cols != train->x.cols)
		return mlfs_err(msg, msglen,
				"validation has %zu features, training %zu",
				val->x.cols, train->x.cols);
	return logi_check_labels(val->y, val->x.rows, k, "validation", msg,
				 msglen);
}

/* ---- loss and gradient ---- */

/*
 * The log loss summed over m rows (x, ld, labels y) at job->wf, job->bf;
 * adds its gradient, summed too, to g (W then b, ke * (d + 1)).
 */
static double logi_block(struct logi_job *job, const float *x, size_t ld,
			 const float *y, size_t m, double *g)
{
	size_t d = job->d, ke = job->ke;
	float *z = job->z;
	double loss = 0;

	if (ke == 1) {
		double gb = 0;
		float b = job->bf[0];

		cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)m,
			    (blasint)d, 1.0f, x, (blasint)ld, job->wf, 1, 0.0f,
			    z, 1);
		for (size_t i = 0; i < m; i++) {
			float zi = z[i] + b;
			float e = expf(-fabsf(zi));
			float p = zi >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);

			loss += log1pf(e) + (zi > 0 ? zi : 0.0f) - y[i] * zi;
			z[i] = p - y[i];
			gb += z[i];
		}
		cblas_sgemv(CblasRowMajor, CblasTrans, (blasint)m, (blasint)d,
			    1.0f, x, (blasint)ld, z, 1, 0.0f, job->gtmp, 1);
		for (size_t j = 0; j < d; j++)
			g[j] += job->gtmp[j];
		g[d] += gb;
		return loss;
	}

	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)m,
		    (blasint)ke, (blasint)d, 1.0f, x, (blasint)ld, job->wf,
		    (blasint)d, 0.0f, z, (blasint)ke);
	for (size_t i = 0; i < m; i++) {
		float *zi = z + i * ke;
		size_t t = (size_t)y[i];
		float mx = -INFINITY, s = 0;

		for (size_t c = 0; c < ke; c++) {
			zi[c] += job->bf[c];
			if (zi[c] > mx)
				mx = zi[c];
		}
		for (size_t c = 0; c < ke; c++) {
			zi[c] = expf(zi[c] - mx);
			s += zi[c];
		}
		loss += logf(s) - logf(zi[t]);
		for (size_t c = 0; c < ke; c++)
			zi[c] /= s;
		zi[t] -= 1.0f;
	}
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)ke,
		    (blasint)d, (blasint)m, 1.0f, z, (blasint)ke, x,
		    (blasint)ld, 0.0f, job->gtmp, (blasint)d);
	for (size_t j = 0; j < ke * d; j++)
		g[j] += job->gtmp[j];
	for (size_t i = 0; i < m; i++)
		for (size_t c = 0; c < ke; c++)
			g[ke * d + c] += z[i * ke + c];
	return loss;
}

/* The objective at theta (W then b, double); its gradient into g. */
static double logi_eval(struct logi_job *job, const double *theta,
			double *g)
{
	size_t nw = job->ke * job->d;
	double loss = 0, pen = 0;

	job->evals++;
	for (size_t j = 0; j < nw; j++)
		job->wf[j] = (float)theta[j];
	for (size_t c = 0; c < job->ke; c++)
		job->bf[c] = (float)theta[nw + c];
	memset(g, 0, job->np * sizeof(*g));
	for (size_t i0 = 0; i0 < job->n; i0 += job->block) {
		size_t m = job->n - i0 < job->block ? job->n - i0 : job->block;

		loss += logi_block(job, job->x->data + i0 * job->x->ld,
				   job->x->ld, job->y + i0, m, g);
	}
	for (size_t j = 0; j < job->np; j++)
		g[j] /= (double)job->n;
	for (size_t j = 0; j < nw; j++) {
		pen += theta[j] * theta[j];
		g[j] += job->l2 * theta[j];
	}
	return loss / (double)job->n + 0.5 * job->l2 * pen;
}

/* ---- L-BFGS ---- */

struct logi_lbfgs {
	size_t np;
	size_t count; /* pairs held */
	size_t head;  /* the next slot to write */
	double *s, *y; /* LOGI_MEMORY x np */
	double rho[LOGI_MEMORY];
	double *x, *g;	   /* the current point */
	double *dir;
	double *xn, *gn;   /* a trial point */
	double *xlo, *glo; /* the line search's best point so far */
};

static double logi_dot(const double *a, const double *b, size_t n)
{
	double s = 0;

	for (size_t i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}

static void logi_two_loop(struct logi_lbfgs *lb)
{
	double alpha[LOGI_MEMORY];
	size_t np = lb->np;
	double *q = lb->dir;
	double gamma = 1;

	memcpy(q, lb->g, np * sizeof(*q));
	for (size_t k = 0; k < lb->count; k++) {
		size_t i = (lb->head + LOGI_MEMORY - 1 - k) % LOGI_MEMORY;

		alpha[i] = lb->rho[i] * logi_dot(lb->s + i * np, q, np);
		cblas_daxpy((blasint)np, -alpha[i], lb->y + i * np, 1, q, 1);
	}
	if (lb->count) {
		size_t i = (lb->head + LOGI_MEMORY - 1) % LOGI_MEMORY;
		const double *yi = lb->y + i * np;

		gamma = 1 / (lb->rho[i] * logi_dot(yi, yi, np));
	}
	for (size_t j = 0; j < np; j++)
		q[j] *= gamma;
	for (size_t k = lb->count; k-- > 0;) {
		size_t i = (lb->head + LOGI_MEMORY - 1 - k) % LOGI_MEMORY;
		double beta = lb->rho[i] * logi_dot(lb->y + i * np, q, np);

		cblas_daxpy((blasint)np, alpha[i] - beta, lb->s + i * np, 1, q,
			    1);
	}
	for (size_t j = 0; j < np; j++)
		q[j] = -q[j];
}

/* Evaluate x + a * dir into xn, gn; *gd is the slope there. */
static double logi_try(struct logi_job *job, struct logi_lbfgs *lb, double a,
		       double *gd)
{
	double f;

	for (size_t j = 0; j < lb->np; j++)
		lb->xn[j] = lb->x[j] + a * lb->dir[j];
	f = logi_eval(job, lb->xn, lb->gn);
	*gd = logi_dot(lb->gn, lb->dir, lb->np);
	return f;
}

static void logi_keep_lo(struct logi_lbfgs *lb)
{
	memcpy(lb->xlo, lb->xn, lb->np * sizeof(*lb->xlo));
	memcpy(lb->glo, lb->gn, lb->np * sizeof(*lb->glo));
}

/* The minimiser of the cubic through two points, or -1 if it has none. */
static double logi_cubic(double a0, double f0, double g0, double a1,
			 double f1, double g1)
{
	double d1 = g0 + g1 - 3 * (f0 - f1) / (a0 - a1);
	double disc = d1 * d1 - g0 * g1;
	double d2, den;

	if (!(disc >= 0))
		return -1;
	d2 = (a1 > a0 ? 1 : -1) * sqrt(disc);
	den = g1 - g0 + 2 * d2;
	if (den == 0 || !isfinite(den))
		return -1;
	return a1 - (a1 - a0) * (g1 + d2 - d1) / den;
}

/*
 * A step along dir meeting the strong Wolfe conditions (Nocedal and
 * Wright, algorithms 3.5 and 3.6).  On success the new point is in xn, gn
 * and *fn.  -EAGAIN: no step lowered f enough (noise or a flat spot),
 * which ends the fit where it is.
 */
static int logi_search(struct logi_job *job, struct logi_lbfgs *lb, double f0,
		       double gd0, double a, double *fn)
{
	double a_lo = 0, f_lo = f0, gd_lo = gd0;
	double a_hi = 0, f_hi = 0, gd_hi = 0;
	double f, gd;
	bool zoom = false;

	for (int i = 0; i < LOGI_LS_STEPS && !zoom; i++) {
		f = logi_try(job, lb, a, &gd);
		if (!isfinite(f) || f > f0 + LOGI_C1 * a * gd0 ||
		    (i > 0 && f >= f_lo)) {
			a_hi = a, f_hi = f, gd_hi = gd;
			zoom = true;
			break;
		}
		if (fabs(gd) <= -LOGI_C2 * gd0) {
			*fn = f;
			return 0;
		}
		if (gd >= 0) {
			a_hi = a_lo, f_hi = f_lo, gd_hi = gd_lo;
			a_lo = a, f_lo = f, gd_lo = gd;
			logi_keep_lo(lb);
			zoom = true;
			break;
		}
		a_lo = a, f_lo = f, gd_lo = gd;
		logi_keep_lo(lb);
		a *= 2;
	}
	for (int i = 0; zoom && i < LOGI_LS_STEPS; i++) {
		double lo = fmin(a_lo, a_hi), hi = fmax(a_lo, a_hi);
		double w = hi - lo;

		if (w <= 1e-12 * hi)
			break;
		a = isfinite(f_hi) ? logi_cubic(a_lo, f_lo, gd_lo, a_hi, f_hi,
						gd_hi)
				   : -1;
		if (!(a >= lo + 0.1 * w && a <= hi - 0.1 * w))
			a = lo + 0.5 * w;
		f = logi_try(job, lb, a, &gd);
		if (!isfinite(f) || f > f0 + LOGI_C1 * a * gd0 || f >= f_lo) {
			a_hi = a, f_hi = f, gd_hi = gd;
			continue;
		}
		if (fabs(gd) <= -LOGI_C2 * gd0) {
			*fn = f;
			return 0;
		}
		if (gd * (a_hi - a_lo) >= 0)
			a_hi = a_lo, f_hi = f_lo, gd_hi = gd_lo;
		a_lo = a, f_lo = f, gd_lo = gd;
		logi_keep_lo(lb);
	}
	if (a_lo == 0)
		return -EAGAIN;
	/* The best Armijo point found: good enough to go on from. */
	memcpy(lb->xn, lb->xlo, lb->np * sizeof(*lb->xn));
	memcpy(lb->gn, lb->glo, lb->np * sizeof(*lb->gn));
	*fn = f_lo;
	return 0;
}

static double logi_norm_inf(const double *g, size_t n)
{
	double m = 0;

	for (size_t i = 0; i < n; i++)
		if (fabs(g[i]) > m)
			m = fabs(g[i]);
	return m;
}

static int logi_lbfgs_run(struct logi_job *job, double *theta, long *iters)
{
	struct logi *lg = job->lg;
	struct logi_lbfgs lb = { .np = job->np };
	size_t np = job->np;
	double f, fn;
	bool converged = false;
	long it;
	int rc = -ENOMEM;

	lb.s = malloc(LOGI_MEMORY * np * sizeof(*lb.s));
	lb.y = malloc(LOGI_MEMORY * np * sizeof(*lb.y));
	lb.x = calloc(7 * np, sizeof(*lb.x));
	if (!lb.s || !lb.y || !lb.x)
		goto out;
	lb.g = lb.x + np;
	lb.dir = lb.g + np;
	lb.xn = lb.dir + np;
	lb.gn = lb.xn + np;
	lb.xlo = lb.gn + np;
	lb.glo = lb.xlo + np;

	f = logi_eval(job, lb.x, lb.g);
	for (it = 0; it < lg->max_iter; it++) {
		double gd, step = 1, sy;
		size_t h;

		if (logi_norm_inf(lb.g, np) <= lg->tol) {
			logi_stopped(lg, MLFS_STOP_TOL, it,
				     "largest gradient %g <= tol %g after %ld iterations",
				     logi_norm_inf(lb.g, np), lg->tol, it);
			converged = true;
			break;
		}
		if (logi_cancelled(lg)) {
			rc = -ECANCELED;
			goto out;
		}
		logi_two_loop(&lb);
		gd = logi_dot(lb.g, lb.dir, np);
		if (!(gd < 0)) {
			/* Not a descent direction: forget the curvature. */
			lb.count = 0;
			logi_two_loop(&lb);
			gd = logi_dot(lb.g, lb.dir, np);
		}
		if (!lb.count)
			step = fmin(1.0, 1.0 / sqrt(logi_dot(lb.g, lb.g, np)));
		rc = logi_search(job, &lb, f, gd, step, &fn);
		if (rc == -EAGAIN) {
			if (lb.count) {
				/* Stale curvature: retry downhill. */
				lb.count = 0;
				it--;
				continue;
			}
			/* not converged (scipy warns too), but no lower loss */
			logi_stopped(lg, MLFS_STOP_FTOL, it,
				     "the line search found no lower loss after %ld iterations (largest gradient %g > tol %g)",
				     it, logi_norm_inf(lb.g, np), lg->tol);
			break;
		}
		h = lb.head;
		for (size_t j = 0; j < np; j++) {
			lb.s[h * np + j] = lb.xn[j] - lb.x[j];
			lb.y[h * np + j] = lb.gn[j] - lb.g[j];
		}
		sy = logi_dot(lb.s + h * np, lb.y + h * np, np);
		if (sy > 1e-10 * logi_dot(lb.y + h * np, lb.y + h * np, np)) {
			lb.rho[h] = 1 / sy;
			lb.head = (h + 1) % LOGI_MEMORY;
			if (lb.count < LOGI_MEMORY)
				lb.count++;
		}
		memcpy(lb.x, lb.xn, np * sizeof(*lb.x));
		memcpy(lb.g, lb.gn, np * sizeof(*lb.g));
		logi_metric(lg, "loss", fn, it + 1);
		logi_progress(lg, (double)(it + 1) / (double)lg->max_iter,
			      "iter", it + 1, lg->max_iter, fn);
		if ((f - fn) <= LOGI_FTOL * fmax(fmax(fabs(f), fabs(fn)), 1)) {
			logi_stopped(lg, MLFS_STOP_FTOL, it + 1,
				     "the loss changed by less than %g of itself at iteration %ld (largest gradient %g, tol %g)",
				     LOGI_FTOL, it + 1, logi_norm_inf(lb.g, np),
				     lg->tol);
			f = fn;
			it++;
			converged = true;
			break;
		}
		f = fn;
	}
	if (!converged && it >= lg->max_iter)
		logi_stopped(lg, MLFS_STOP_MAX_ITER, it,
			     "reached max_iter %ld without converging (largest gradient %g > tol %g)",
			     lg->max_iter, logi_norm_inf(lb.g, np), lg->tol);
	/* a host without stopped() still hears of it */
	if (!converged && !lg->host.stopped && lg->host.log)
		lg->host.log(lg->host.ctx, MLFS_LOG_WARNING,
			     "logistic: lbfgs stopped after %ld iterations without converging (largest gradient %g, tol %g)",
			     it, logi_norm_inf(lb.g, np), lg->tol);
	if (lg->host.log)
		lg->host.log(lg->host.ctx, MLFS_LOG_DEBUG,
			     "logistic: lbfgs %ld iterations, %ld evaluations, loss %.9g",
			     it, job->evals, f);
	memcpy(theta, lb.x, np * sizeof(*theta));
	*iters = it;
	rc = 0;
out:
	free(lb.x);
	free(lb.y);
	free(lb.s);
	return rc;
}

/* ---- mini-batch SGD ---- */

static uint64_t logi_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int logi_sgd_run(struct logi_job *job, long *iters)
{
	struct logi *lg = job->lg;
	size_t n = job->n, d = job->d, ke = job->ke, nw = ke * d;
	size_t bs = lg->batch_size ? (size_t)lg->batch_size : 200;
	long epochs = lg->epochs ? lg->epochs : lg->max_iter;
	uint64_t rng = (uint64_t)lg->seed;
	double best = INFINITY;
	float *xb = NULL, *yb = NULL;
	size_t *idx = NULL;
	double *g = NULL;
	int stall = 0;
	long e;
	int rc = -ENOMEM;

	if (bs > n)
		bs = n;
	xb = malloc(bs * d * sizeof(*xb) + 1);
	yb = malloc(bs * sizeof(*yb));
	idx = malloc(n * sizeof(*idx));
	g = malloc(job->np * sizeof(*g));
	if (!xb || !yb || !idx || !g)
		goto out;
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	for (e = 0; e < epochs; e++) {
		double loss = 0, pen = 0;

		if (logi_cancelled(lg)) {
			rc = -ECANCELED;
			goto out;
		}
		for (size_t i = n - 1; i > 0; i--) {
			size_t j = (size_t)(logi_rand(&rng) % (i + 1));
			size_t t = idx[i];

			idx[i] = idx[j];
			idx[j] = t;
		}
		for (size_t i0 = 0; i0 < n; i0 += bs) {
			size_t m = n - i0 < bs ? n - i0 : bs;
			float lr = (float)lg->lr;

			for (size_t i = 0; i < m; i++) {
				memcpy(xb + i * d,
				       job->x->data + idx[i0 + i] * job->x->ld,
				       d * sizeof(*xb));
				yb[i] = job->y[idx[i0 + i]];
			}
			memset(g, 0, job->np * sizeof(*g));
			loss += logi_block(job, xb, d, yb, m, g);
			for (size_t j = 0; j < nw; j++) {
				double gj = g[j] / (double)m +
					    job->l2 * job->wf[j];

				job->wf[j] -= lr * (float)gj;
			}
			for (size_t c = 0; c < ke; c++) {
				double gc = g[nw + c] / (double)m;

				job->bf[c] -= lr * (float)gc;
			}
		}
		for (size_t j = 0; j < nw; j++)
			pen += (double)job->wf[j] * job->wf[j];
		loss = loss / (double)n + 0.5 * job->l2 * pen;
		logi_metric(lg, "loss", loss, e + 1);
		logi_progress(lg, (double)(e + 1) / (double)epochs, "epoch",
			      e + 1, epochs, loss);
		if (!isfinite(loss)) {
			logi_stopped(lg, MLFS_STOP_DIVERGED, e + 1,
				     "the training loss is %g at epoch %ld: lower \"learning_rate\" (%g)",
				     loss, e + 1, lg->lr);
			rc = -ERANGE;
			goto out;
		}
		stall = loss > best - lg->tol ? stall + 1 : 0;
		if (loss < best)
			best = loss;
		if (stall >= LOGI_SGD_PATIENCE) {
			e++;
			logi_stopped(lg, MLFS_STOP_TOL, e,
				     "training loss did not fall by tol %g for %d epochs (best %.6g)",
				     lg->tol, stall, best);
			break;
		}
	}
	if (e == epochs)
		logi_stopped(lg, MLFS_STOP_COMPLETED, e, "ran all %ld epochs",
			     epochs);
	*iters = e;
	rc = 0;
out:
	free(g);
	free(idx);
	free(yb);
	free(xb);
	return rc;
}

/* ---- fit and predict ---- */

/* Class probabilities of m rows (x, xld) into o (ld). */
static void logi_scores(size_t d, size_t ke, const float *w, const float *b,
			const float *x, size_t xld, size_t m, float *o,
			size_t ld)
{
	if (ke == 1) {
		cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)m,
			    (blasint)d, 1.0f, x, (blasint)xld, w, 1, 0.0f,
			    o + 1, (blasint)ld);
		for (size_t i = 0; i < m; i++) {
			float z = o[i * ld + 1] + b[0];
			float e = expf(-fabsf(z));
			float p = z >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);

			o[i * ld] = 1.0f - p;
			o[i * ld + 1] = p;
		}
		return;
	}
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)m,
		    (blasint)ke, (blasint)d, 1.0f, x, (blasint)xld, w,
		    (blasint)d, 0.0f, o, (blasint)ld);
	for (size_t i = 0; i < m; i++) {
		float *zi = o + i * ld;
		float mx = -INFINITY, s = 0;

		for (size_t c = 0; c < ke; c++) {
			zi[c] += b[c];
			if (zi[c] > mx)
				mx = zi[c];
		}
		for (size_t c = 0; c < ke; c++) {
			zi[c] = expf(zi[c] - mx);
			s += zi[c];
		}
		for (size_t c = 0; c < ke; c++)
			zi[c] /= s;
	}
}

static double logi_accuracy(size_t d, size_t ke, size_t k, const float *w,
			    const float *b, const struct mlfs_data *val)
{
	const size_t step = 256;
	size_t right = 0;
	float *o;

	o = malloc(step * k * sizeof(*o));
	if (!o)
		return NAN;
	for (size_t i0 = 0; i0 < val->x.rows; i0 += step) {
		size_t m = val->x.rows - i0 < step ? val->x.rows - i0 : step;

		logi_scores(d, ke, w, b, val->x.data + i0 * val->x.ld,
			    val->x.ld, m, o, k);
		for (size_t i = 0; i < m; i++) {
			const float *p = o + i * k;
			size_t best = 0;

			for (size_t c = 1; c < k; c++)
				if (p[c] > p[best])
					best = c;
			right += best == (size_t)val->y[i0 + i];
		}
	}
	free(o);
	return (double)right / (double)val->x.rows;
}

static int logi_fit(void *inst, const struct mlfs_data *train,
		    const struct mlfs_data *val, char *msg, size_t msglen)
{
	struct logi *lg = inst;
	struct logi_job job = { .lg = lg };
	double *theta = NULL;
	long iters = 0;
	size_t nw;
	int rc;

	rc = logi_check_data(train, val, msg, msglen);
	if (rc < 0)
		return rc;
	job.x = &train->x;
	job.y = train->y;
	job.n = train->x.rows;
	job.d = train->x.cols;
	job.ke = train->nclasses == 2 ? 1 : train->nclasses;
	job.np = job.ke * (job.d + 1);
	job.l2 = isnan(lg->l2) ? 1.0 / (double)job.n : lg->l2;
	job.block = LOGI_BLOCK_BYTES / (sizeof(float) * (job.d + 1));
	if (job.block < 64)
		job.block = 64;
	if (lg->solver == LOGI_SGD) {
		size_t bs = lg->batch_size ? (size_t)lg->batch_size : 200;

		job.block = bs < job.n ? bs : job.n;
	}
	nw = job.ke * job.d;

	rc = -ENOMEM;
	theta = calloc(job.np, sizeof(*theta));
	job.wf = calloc(nw + 1, sizeof(*job.wf));
	job.bf = calloc(job.ke, sizeof(*job.bf));
	job.z = malloc(job.block * job.ke * sizeof(*job.z));
	job.gtmp = malloc((nw + 1) * sizeof(*job.gtmp));
	if (!theta || !job.wf || !job.bf || !job.z || !job.gtmp)
		goto out;

	if (lg->solver == LOGI_SGD) {
		rc = logi_sgd_run(&job, &iters);
		if (rc == -ERANGE)
			rc = mlfs_err(msg, msglen,
				      "sgd diverged: lower \"learning_rate\" (%g)",
				      lg->lr);
	} else {
		rc = logi_lbfgs_run(&job, theta, &iters);
		for (size_t j = 0; rc == 0 && j < nw; j++)
			job.wf[j] = (float)theta[j];
		for (size_t c = 0; rc == 0 && c < job.ke; c++)
			job.bf[c] = (float)theta[nw + c];
	}
	if (rc < 0)
		goto out;
	for (size_t j = 0; j < nw; j++)
		if (!isfinite(job.wf[j])) {
			rc = mlfs_err(msg, msglen,
				      "the weights are not finite");
			goto out;
		}
	if (val && val->x.rows)
		logi_metric(lg, "val_accuracy",
			    logi_accuracy(job.d, job.ke, train->nclasses,
					  job.wf, job.bf, val),
			    iters);

	free(lg->w);
	free(lg->b);
	lg->w = job.wf;
	lg->b = job.bf;
	job.wf = NULL;
	job.bf = NULL;
	lg->d = job.d;
	lg->k = train->nclasses;
	lg->ke = job.ke;
	lg->fitted = true;
	rc = 0;
out:
	free(job.gtmp);
	free(job.z);
	free(job.bf);
	free(job.wf);
	free(theta);
	return rc;
}

static size_t logi_outputs(void *inst)
{
	const struct logi *lg = inst;

	return lg->fitted ? lg->k : 0;
}

static int logi_predict(void *inst, const struct mlfs_matrix *x,
			struct mlfs_matrix *out)
{
	const struct logi *lg = inst;
	const size_t step = 1 << 16;

	if (!lg->fitted || !x || !out || !logi_matrix_ok(x) ||
	    !logi_matrix_ok(out))
		return -EINVAL;
	if (x->cols != lg->d || out->rows != x->rows || out->cols != lg->k)
		return -EINVAL;
	for (size_t i0 = 0; i0 < x->rows; i0 += step) {
		size_t m = x->rows - i0 < step ? x->rows - i0 : step;

		logi_scores(lg->d, lg->ke, lg->w, lg->b,
			    x->data + i0 * x->ld, x->ld, m,
			    out->data + i0 * out->ld, out->ld);
	}
	return 0;
}

/* ---- save and load ---- */

static int logi_save(void *inst, void **buf, size_t *len)
{
	const struct logi *lg = inst;
	struct mlfs_writer w = { 0 };

	*buf = NULL;
	*len = 0;
	if (!lg->fitted)
		return -EINVAL;
	mlfs_put_header(&w, LOGI_MAGIC, LOGI_VERSION);
	mlfs_put_u32(&w, lg->task);
	mlfs_put_u64(&w, lg->k);
	mlfs_put_u64(&w, lg->d);
	mlfs_put_f32s(&w, lg->w, lg->ke * lg->d);
	mlfs_put_f32s(&w, lg->b, lg->ke);
	return mlfs_writer_finish(&w, buf, len);
}

static int logi_load(void *inst, const void *buf, size_t len)
{
	struct logi *lg = inst;
	struct mlfs_reader r;
	uint64_t k, d, ke;
	float *w, *bias;

	mlfs_reader_init(&r, buf, len);
	if (mlfs_get_header(&r, LOGI_MAGIC, LOGI_VERSION, LOGI_VERSION_FNV) < 0)
		return -EINVAL;
	if (mlfs_get_u32(&r) != lg->task)
		return -EINVAL;
	k = mlfs_get_u64(&r);
	d = mlfs_get_u64(&r);
	if (k < 2 || k > LOGI_MAX_CLASSES || d > INT_MAX)
		return -EINVAL;
	ke = k == 2 ? 1 : k;
	if (mlfs_reader_expect(&r, ke * (d + 1), 4) < 0)
		return -EINVAL;
	w = malloc((ke * d + 1) * sizeof(*w));
	bias = malloc(ke * sizeof(*bias));
	if (!w || !bias) {
		free(bias);
		free(w);
		return -ENOMEM;
	}
	if (mlfs_get_f32s(&r, w, ke * d) < 0 ||
	    mlfs_get_f32s(&r, bias, ke) < 0 || mlfs_reader_end(&r) < 0) {
		free(bias);
		free(w);
		return -EINVAL;
	}
	free(lg->w);
	free(lg->b);
	lg->w = w;
	lg->b = bias;
	lg->k = k;
	lg->d = d;
	lg->ke = ke;
	lg->fitted = true;
	return 0;
}

static const struct mlfs_train_ops logi_ops = {
	.size = sizeof(struct mlfs_train_ops),
	.tasks = MLFS_TASK_CLASSIFICATION,
	.init = logi_init,
	.fit = logi_fit,
	.outputs = logi_outputs,
	.predict = logi_predict,
	.save = logi_save,
	.load = logi_load,
	.fini = logi_fini,
	.model_format = 1,
};

MLFS_EXPORT const struct mlfs_plugin mlfs_plugin = {
	MLFS_ABI_MAJOR, MLFS_ABI_MINOR, MLFS_STAGE_TRAIN,
	"logistic",	"1.0.0",	&logi_ops,
};
