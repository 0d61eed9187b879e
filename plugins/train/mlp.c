/* SPDX-License-Identifier: MIT */
/*
 * mlp.c: the "mlp" train plugin, a multi-layer perceptron for
 * classification (softmax and cross-entropy) and regression (identity
 * output, half squared error).
 *
 * One to three ReLU hidden layers ("hidden", default [100]), trained by
 * Adam on shuffled mini-batches as scikit-learn's MLPClassifier and
 * MLPRegressor are: Glorot-uniform initial weights and intercepts, Adam
 * with beta 0.9/0.999 and eps 1e-8, batch_size min(200, n), "epochs" (or
 * its alias "max_iter") 200.  "l2" is lambda in mean(loss) +
 * lambda/2 * ||W||^2 over the weights (not the intercepts), default 1e-4.
 * Training stops early when the validation score (accuracy, or -rmse) has
 * not risen by tol for n_iter_no_change epochs, keeping the best weights;
 * without a validation set it stops when the training loss has not
 * fallen by tol for that long, as scikit-learn does.  With early_stopping
 * false it runs every epoch (scikit-learn would still stop on the
 * training loss; a user who says false means every epoch).  fit tells
 * the host which of these ended it (mlfs_host.stopped).  Each mini-batch is gathered into a contiguous block and runs
 * forward and backward as one GEMM per layer and direction.
 *
 * Threads: fit runs in the job's process on one thread (BLAS may use
 * more); predict only reads the instance and allocates its scratch per
 * call, so it can run on many threads at once.  The saved form is
 * "MFMP", version 2, task, layers, classes, the widths, the parameters in
 * layer order (W row-major, out x in, then b), all little-endian
 * (mlfs_plugin_util.h); version 1, the same with an FNV-1a 64 trailer,
 * still loads.
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

#define MLP_MAGIC "MFMP"
#define MLP_VERSION 2u
#define MLP_VERSION_FNV 1u /* the same with an FNV-1a 64 trailer */
#define MLP_MAX_HIDDEN 3
#define MLP_MAX_WIDTH 100000
#define MLP_MAX_CLASSES (1u << 20)
#define MLP_CHUNK 256 /* rows per forward pass in predict */
#define MLP_BETA1 0.9
#define MLP_BETA2 0.999
#define MLP_EPS 1e-8

/* The network: layers 1..nlayers map width[l - 1] to width[l]. */
struct mlp_net {
	size_t nlayers;			     /* hidden layers + 1 */
	size_t width[MLP_MAX_HIDDEN + 2];    /* width[0]: features */
	size_t off[MLP_MAX_HIDDEN + 2];      /* of W_l in p; b_l follows */
	size_t np;			     /* parameters */
	size_t k;			     /* classes, 0 for regression */
	float *p;
};

struct mlp {
	struct mlfs_host host; /* copied at init; unset fields are NULL */
	unsigned task;
	/* params, set by the table below (its kinds give the types) */
	size_t nhidden;
	long hidden[MLP_MAX_HIDDEN];
	double lr;
	long batch_size; /* 0: min(200, n) */
	long epochs;
	double l2;
	bool early_stopping;
	long patience;
	double tol;
	long seed;
	/* the fitted model */
	bool fitted;
	struct mlp_net net;
};

/* ---- messages, host calls ---- */

static bool mlp_cancelled(const struct mlp *mp)
{
	return mp->host.cancelled && mp->host.cancelled(mp->host.ctx);
}

static void mlp_metric(const struct mlp *mp, const char *name, double v,
		       long step)
{
	if (mp->host.metric)
		mp->host.metric(mp->host.ctx, name, v, step);
}

/* ---- parameters ---- */

static const long mlp_default_hidden[] = { 100 };

/* "epochs" and "max_iter" share a field: a spec gives one of them. */
static const struct mlfs_param_spec mlp_params[] = {
	{ .name = "hidden", .kind = MLFS_PARAM_KIND_LIST,
	  .offset = offsetof(struct mlp, hidden), .min = 1,
	  .max = MLP_MAX_WIDTH, .count_offset = offsetof(struct mlp, nhidden),
	  .max_count = MLP_MAX_HIDDEN, .dflt_list = mlp_default_hidden,
	  .dflt_count = 1, .noun = "layer widths", .item = "widths" },
	MLFS_PARAM_NUMBER_ABOVE("learning_rate", struct mlp, lr, 1e-3, 0),
	MLFS_PARAM_INT("batch_size", struct mlp, batch_size, 0, 1, 1e9),
	MLFS_PARAM_INT("epochs", struct mlp, epochs, 200, 1, 1e9),
	MLFS_PARAM_INT("max_iter", struct mlp, epochs, 200, 1, 1e9),
	MLFS_PARAM_NUMBER("l2", struct mlp, l2, 1e-4, 0),
	MLFS_PARAM_BOOL("early_stopping", struct mlp, early_stopping, 1),
	MLFS_PARAM_INT("n_iter_no_change", struct mlp, patience, 10, 1, 1e9),
	MLFS_PARAM_NUMBER("tol", struct mlp, tol, 1e-4, 0),
	MLFS_PARAM_INT("seed", struct mlp, seed, 0, 0, 1e9),
	MLFS_PARAM_END,
};

static const struct mlfs_train_info mlp_info =
	MLFS_TRAIN_INFO(struct mlp, "mlp",
			MLFS_TASK_CLASSIFICATION | MLFS_TASK_REGRESSION,
			"does classification and regression", mlp_params);

static int mlp_init(const struct mlfs_host *host, unsigned task,
		    const struct mlfs_param *params, size_t nparams,
		    void **inst, char *msg, size_t msglen)
{
	return mlfs_train_new(&mlp_info, host, task, params, nparams, inst,
			      msg, msglen);
}

static void mlp_fini(void *inst)
{
	struct mlp *mp = inst;

	if (!mp)
		return;
	free(mp->net.p);
	free(mp);
}

/* ---- the network ---- */

/* Fill net->off and net->np from the widths; false if too big. */
static bool mlp_layout(struct mlp_net *net)
{
	size_t np = 0;

	for (size_t l = 1; l <= net->nlayers; l++) {
		size_t in = net->width[l - 1], out = net->width[l];

		if (!in || !out || in > INT_MAX || out > INT_MAX ||
		    (in + 1) > (size_t)INT_MAX / out)
			return false;
		net->off[l] = np;
		np += out * (in + 1);
	}
	net->np = np;
	return true;
}

static size_t mlp_max_width(const struct mlp_net *net, size_t from)
{
	size_t w = 0;

	for (size_t l = from; l <= net->nlayers; l++)
		if (net->width[l] > w)
			w = net->width[l];
	return w;
}

/* out = act(in W^T + b) for m rows; act is ReLU unless last. */
static void mlp_layer(const struct mlp_net *net, const float *p, size_t l,
		      const float *in, size_t inld, size_t m, float *out,
		      size_t outld)
{
	size_t nin = net->width[l - 1], nout = net->width[l];
	const float *w = p + net->off[l];
	const float *b = w + nout * nin;
	bool relu = l < net->nlayers;

	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)m,
		    (blasint)nout, (blasint)nin, 1.0f, in, (blasint)inld, w,
		    (blasint)nin, 0.0f, out, (blasint)outld);
	for (size_t i = 0; i < m; i++) {
		float *o = out + i * outld;

		/*
		 * ReLU's sign is a coin flip that a branch mispredicts: with
		 * 0.0f gcc -O2 makes this a MAX_EXPR and branches, with -0.0f
		 * it selects by mask.  -0 is 0 to everything downstream.
		 */
		if (relu) {
			for (size_t j = 0; j < nout; j++) {
				float v = o[j] + b[j];

				o[j] = v > 0.0f ? v : -0.0f;
			}
		} else {
			for (size_t j = 0; j < nout; j++)
				o[j] += b[j];
		}
	}
}

static void mlp_softmax(float *z, size_t m, size_t k, size_t ld)
{
	for (size_t i = 0; i < m; i++) {
		float *zi = z + i * ld;
		float mx = -INFINITY, s = 0;

		for (size_t c = 0; c < k; c++)
			if (zi[c] > mx)
				mx = zi[c];
		for (size_t c = 0; c < k; c++) {
			zi[c] = expf(zi[c] - mx);
			s += zi[c];
		}
		for (size_t c = 0; c < k; c++)
			zi[c] /= s;
	}
}

/*
 * Scores of m <= MLP_CHUNK rows into out (ld); h is scratch of
 * 2 * MLP_CHUNK * mlp_max_width(net, 1) floats.
 */
static void mlp_forward_chunk(const struct mlp_net *net, const float *p,
			      const float *x, size_t xld, size_t m, float *out,
			      size_t ld, float *h)
{
	size_t hw = mlp_max_width(net, 1);
	const float *in = x;
	size_t inld = xld;

	for (size_t l = 1; l <= net->nlayers; l++) {
		float *o = h + (l % 2) * MLP_CHUNK * hw;
		size_t old = net->width[l];

		if (l == net->nlayers) {
			o = out;
			old = ld;
		}
		mlp_layer(net, p, l, in, inld, m, o, old);
		in = o;
		inld = old;
	}
	if (net->k)
		mlp_softmax(out, m, net->k, ld);
}

/* ---- data checks ---- */

static bool mlp_matrix_ok(const struct mlfs_matrix *m)
{
	if (m->rows && !m->data)
		return false;
	return m->ld >= m->cols && m->cols <= INT_MAX && m->ld <= INT_MAX;
}

static int mlp_check_targets(const struct mlp *mp, const float *y, size_t n,
			     size_t k, const char *set, char *msg,
			     size_t msglen)
{
	for (size_t i = 0; i < n; i++) {
		float t = y[i];

		if (mp->task == MLFS_TASK_REGRESSION && !isfinite(t))
			return mlfs_err(msg, msglen,
					"%s row %zu: the target is not finite",
					set, i);
		if (mp->task == MLFS_TASK_CLASSIFICATION &&
		    (!(t >= 0) || t >= (float)k || t != floorf(t)))
			return mlfs_err(msg, msglen,
					"%s row %zu: label %g is not a class index below %zu",
					set, i, (double)t, k);
	}
	return 0;
}

static int mlp_check_data(const struct mlp *mp, const struct mlfs_data *train,
			  const struct mlfs_data *val, char *msg,
			  size_t msglen)
{
	size_t k = train ? train->nclasses : 0;
	int rc;

	if (!train || !mlp_matrix_ok(&train->x))
		return mlfs_err(msg, msglen, "bad training matrix");
	if (!train->x.rows || !train->x.cols)
		return mlfs_err(msg, msglen, "no training rows or no features");
	if (!train->y)
		return mlfs_err(msg, msglen, "mlp needs a label");
	if (mp->task == MLFS_TASK_CLASSIFICATION &&
	    (k < 2 || k > MLP_MAX_CLASSES))
		return mlfs_err(msg, msglen,
				"classification needs 2 to %u classes, got %zu",
				MLP_MAX_CLASSES, k);
	rc = mlp_check_targets(mp, train->y, train->x.rows, k, "training", msg,
			       msglen);
	if (rc < 0 || !val || !val->x.rows)
		return rc;
	if (!mlp_matrix_ok(&val->x) || !val->y)
		return mlfs_err(msg, msglen, "bad validation data");
	if (val->x.cols != train->x.cols)
		return mlfs_err(msg, msglen,
				"validation has %zu features, training %zu",
				val->x.cols, train->x.cols);
	return mlp_check_targets(mp, val->y, val->x.rows, k, "validation", msg,
				 msglen);
}

/* ---- training ---- */

static uint64_t mlp_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static float mlp_uniform(uint64_t *s)
{
	return (float)((double)(mlp_rand(s) >> 11) * 0x1p-52 - 1.0);
}

/* Glorot-uniform weights and intercepts, as scikit-learn's _init_coef. */
static void mlp_glorot(const struct mlp_net *net, float *p, uint64_t *rng)
{
	for (size_t l = 1; l <= net->nlayers; l++) {
		size_t in = net->width[l - 1], out = net->width[l];
		float bound = (float)sqrt(6.0 / (double)(in + out));
		float *w = p + net->off[l];

		for (size_t j = 0; j < out * (in + 1); j++)
			w[j] = bound * mlp_uniform(rng);
	}
}

/* Everything one fit allocates. */
struct mlp_train {
	float *grad, *m1, *m2, *best; /* np each */
	float *act[MLP_MAX_HIDDEN + 2]; /* bs x width[l]; act[0] the batch */
	float *delta[2];		/* bs x max hidden/output width */
	float *yb;			/* bs */
	size_t *idx;			/* n */
	float *vout, *vh;		/* validation scores and scratch */
};

static void mlp_train_free(struct mlp_train *t, const struct mlp_net *net)
{
	free(t->grad);
	free(t->m1);
	free(t->m2);
	free(t->best);
	for (size_t l = 0; l <= net->nlayers; l++)
		free(t->act[l]);
	free(t->delta[0]);
	free(t->delta[1]);
	free(t->yb);
	free(t->idx);
	free(t->vout);
	free(t->vh);
}

static int mlp_train_alloc(struct mlp_train *t, const struct mlp_net *net,
			   size_t n, size_t bs)
{
	size_t np = net->np, hw = mlp_max_width(net, 1);

	t->grad = malloc(np * sizeof(*t->grad));
	t->m1 = calloc(np, sizeof(*t->m1));
	t->m2 = calloc(np, sizeof(*t->m2));
	t->best = malloc(np * sizeof(*t->best));
	for (size_t l = 0; l <= net->nlayers; l++) {
		t->act[l] = malloc(bs * net->width[l] * sizeof(*t->act[l]));
		if (!t->act[l])
			return -ENOMEM;
	}
	t->delta[0] = malloc(bs * hw * sizeof(*t->delta[0]));
	t->delta[1] = malloc(bs * hw * sizeof(*t->delta[1]));
	t->yb = malloc(bs * sizeof(*t->yb));
	t->idx = malloc(n * sizeof(*t->idx));
	t->vout = malloc(MLP_CHUNK * net->width[net->nlayers] *
			 sizeof(*t->vout));
	t->vh = malloc(2 * MLP_CHUNK * hw * sizeof(*t->vh));
	if (!t->grad || !t->m1 || !t->m2 || !t->best || !t->delta[0] ||
	    !t->delta[1] || !t->yb || !t->idx || !t->vout || !t->vh)
		return -ENOMEM;
	return 0;
}

/*
 * One mini-batch of m rows (gathered in t->act[0], t->yb): forward,
 * backward, then an Adam step (step number `step`).  Returns the summed
 * loss of the batch before the step.
 */
static double mlp_batch(const struct mlp *mp, struct mlp_net *net,
			struct mlp_train *t, size_t m, long step)
{
	size_t nl = net->nlayers, out = net->width[nl];
	float *z = t->act[nl], *d = t->delta[0];
	double loss = 0, lr_t;
	float inv_m = 1.0f / (float)m;
	float lr, b1 = (float)MLP_BETA1, b2 = (float)MLP_BETA2;
	float eps = (float)MLP_EPS, l2 = (float)mp->l2;

	for (size_t l = 1; l <= nl; l++)
		mlp_layer(net, net->p, l, t->act[l - 1], net->width[l - 1], m,
			  t->act[l], net->width[l]);

	/* The output delta, dLoss/dz divided by m. */
	for (size_t i = 0; i < m; i++) {
		float *zi = z + i * out, *di = d + i * out;

		if (net->k) {
			size_t y = (size_t)t->yb[i];
			float mx = -INFINITY, s = 0;

			for (size_t c = 0; c < out; c++)
				if (zi[c] > mx)
					mx = zi[c];
			for (size_t c = 0; c < out; c++) {
				di[c] = expf(zi[c] - mx);
				s += di[c];
			}
			loss += logf(s) - (zi[y] - mx);
			for (size_t c = 0; c < out; c++)
				di[c] *= inv_m / s;
			di[y] -= inv_m;
		} else {
			float r = zi[0] - t->yb[i];

			loss += 0.5 * (double)r * r;
			di[0] = r * inv_m;
		}
	}

	for (size_t l = nl; l >= 1; l--) {
		size_t nin = net->width[l - 1], nout = net->width[l];
		const float *w = net->p + net->off[l];
		float *gw = t->grad + net->off[l], *gb = gw + nout * nin;
		float *dn = d == t->delta[0] ? t->delta[1] : t->delta[0];

		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans,
			    (blasint)nout, (blasint)nin, (blasint)m, 1.0f, d,
			    (blasint)nout, t->act[l - 1], (blasint)nin, 0.0f,
			    gw, (blasint)nin);
		for (size_t j = 0; j < nout * nin; j++)
			gw[j] += l2 * w[j];
		memset(gb, 0, nout * sizeof(*gb));
		for (size_t i = 0; i < m; i++)
			for (size_t j = 0; j < nout; j++)
				gb[j] += d[i * nout + j];
		if (l == 1)
			break;
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
			    (blasint)m, (blasint)nin, (blasint)nout, 1.0f, d,
			    (blasint)nout, w, (blasint)nin, 0.0f, dn,
			    (blasint)nin);
		/* Loading both sides first lets gcc select without a branch. */
		for (size_t j = 0; j < m * nin; j++) {
			float v = dn[j];

			dn[j] = t->act[l - 1][j] > 0.0f ? v : 0.0f;
		}
		d = dn;
	}

	lr_t = mp->lr * sqrt(1 - pow(MLP_BETA2, (double)step)) /
	       (1 - pow(MLP_BETA1, (double)step));
	lr = (float)lr_t;
	for (size_t j = 0; j < net->np; j++) {
		float g = t->grad[j];

		t->m1[j] = b1 * t->m1[j] + (1 - b1) * g;
		t->m2[j] = b2 * t->m2[j] + (1 - b2) * g * g;
		net->p[j] -= lr * t->m1[j] / (sqrtf(t->m2[j]) + eps);
	}
	return loss;
}

/* Accuracy, or -rmse for regression, of the network on val. */
static double mlp_score(const struct mlp_net *net, const float *p,
			const struct mlfs_data *val, struct mlp_train *t,
			double *rmse)
{
	size_t out = net->width[net->nlayers], right = 0;
	double sse = 0;

	for (size_t i0 = 0; i0 < val->x.rows; i0 += MLP_CHUNK) {
		size_t m = val->x.rows - i0 < MLP_CHUNK ? val->x.rows - i0
							 : MLP_CHUNK;

		mlp_forward_chunk(net, p, val->x.data + i0 * val->x.ld,
				  val->x.ld, m, t->vout, out, t->vh);
		for (size_t i = 0; i < m; i++) {
			const float *s = t->vout + i * out;
			size_t best = 0;
			double r;

			if (!net->k) {
				r = (double)s[0] - val->y[i0 + i];
				sse += r * r;
				continue;
			}
			for (size_t c = 1; c < out; c++)
				if (s[c] > s[best])
					best = c;
			right += best == (size_t)val->y[i0 + i];
		}
	}
	if (net->k)
		return (double)right / (double)val->x.rows;
	*rmse = sqrt(sse / (double)val->x.rows);
	return -*rmse;
}

static double mlp_penalty(const struct mlp_net *net, double l2)
{
	double s = 0;

	for (size_t l = 1; l <= net->nlayers; l++) {
		const float *w = net->p + net->off[l];

		for (size_t j = 0; j < net->width[l] * net->width[l - 1]; j++)
			s += (double)w[j] * w[j];
	}
	return 0.5 * l2 * s;
}

/* Tell the host why training ended (ABI 1.1; absent in older hosts). */
__attribute__((format(printf, 4, 5))) static void
mlp_stopped(const struct mlp *mp, const char *rule, long at, const char *fmt,
	    ...)
{
	char why[256];
	va_list ap;

	if (!mp->host.stopped)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	mp->host.stopped(mp->host.ctx, rule, at, why);
}

static void mlp_progress(const struct mlp *mp, long e, long epochs,
			 double loss)
{
	char line[96];

	if (!mp->host.progress)
		return;
	snprintf(line, sizeof(line), "epoch %ld/%ld loss %.6g", e, epochs,
		 loss);
	mp->host.progress(mp->host.ctx, (double)e / (double)epochs, line);
}

/* The epoch loop; net->p ends as the weights to keep. */
static int mlp_run(const struct mlp *mp, struct mlp_net *net,
		   struct mlp_train *t, const struct mlfs_data *train,
		   const struct mlfs_data *val, size_t bs, char *msg,
		   size_t msglen)
{
	const struct mlfs_matrix *x = &train->x;
	size_t n = x->rows, d = x->cols;
	bool use_val = val && val->x.rows;
	bool stop_on_val = use_val && mp->early_stopping;
	double best_loss = INFINITY, best_score = -INFINITY;
	uint64_t rng = (uint64_t)mp->seed;
	long stall = 0, step = 0, best_e = 0;

	mlp_glorot(net, net->p, &rng);
	for (size_t i = 0; i < n; i++)
		t->idx[i] = i;
	for (long e = 1; e <= mp->epochs; e++) {
		double loss = 0, score = 0, rmse = 0;

		for (size_t i = n - 1; i > 0; i--) {
			size_t j = (size_t)(mlp_rand(&rng) % (i + 1));
			size_t tmp = t->idx[i];

			t->idx[i] = t->idx[j];
			t->idx[j] = tmp;
		}
		for (size_t i0 = 0; i0 < n; i0 += bs) {
			size_t m = n - i0 < bs ? n - i0 : bs;

			if ((i0 / bs) % 64 == 0 && mlp_cancelled(mp))
				return -ECANCELED;
			for (size_t i = 0; i < m; i++) {
				size_t r = t->idx[i0 + i];

				memcpy(t->act[0] + i * d, x->data + r * x->ld,
				       d * sizeof(*x->data));
				t->yb[i] = train->y[r];
			}
			loss += mlp_batch(mp, net, t, m, ++step);
		}
		loss = loss / (double)n + mlp_penalty(net, mp->l2);
		if (!isfinite(loss)) {
			mlp_stopped(mp, MLFS_STOP_DIVERGED, e,
				    "the training loss is %g at epoch %ld: lower \"learning_rate\" (%g)",
				    loss, e, mp->lr);
			return mlfs_err(msg, msglen,
					"training diverged at epoch %ld: lower \"learning_rate\" (%g)",
					e, mp->lr);
		}
		mlp_metric(mp, "loss", loss, e);
		mlp_progress(mp, e, mp->epochs, loss);
		if (use_val) {
			score = mlp_score(net, net->p, val, t, &rmse);
			mlp_metric(mp, net->k ? "val_accuracy" : "val_rmse",
				   net->k ? score : rmse, e);
		}
		if (!mp->early_stopping)
			continue;
		if (stop_on_val) {
			stall = score < best_score + mp->tol ? stall + 1 : 0;
			if (score > best_score) {
				best_score = score;
				best_e = e;
				memcpy(t->best, net->p,
				       net->np * sizeof(*t->best));
			}
		} else {
			stall = loss > best_loss - mp->tol ? stall + 1 : 0;
			if (loss < best_loss) {
				best_loss = loss;
				best_e = e;
			}
		}
		if (stall <= mp->patience)
			continue;
		if (stop_on_val && net->k)
			mlp_stopped(mp, MLFS_STOP_EARLY, e,
				    "validation accuracy did not improve by tol %g for %ld epochs (best %.6g at epoch %ld)",
				    mp->tol, stall, best_score, best_e);
		else if (stop_on_val)
			mlp_stopped(mp, MLFS_STOP_EARLY, e,
				    "validation rmse did not improve by tol %g for %ld epochs (best %.6g at epoch %ld)",
				    mp->tol, stall, -best_score, best_e);
		else
			mlp_stopped(mp, MLFS_STOP_TOL, e,
				    "training loss did not fall by tol %g for %ld epochs (best %.6g at epoch %ld; no validation rows)",
				    mp->tol, stall, best_loss, best_e);
		goto out;
	}
	if (stop_on_val)
		mlp_stopped(mp, MLFS_STOP_COMPLETED, mp->epochs,
			    "ran all %ld epochs (kept epoch %ld, the best on validation)",
			    mp->epochs, best_e);
	else
		mlp_stopped(mp, MLFS_STOP_COMPLETED, mp->epochs,
			    "ran all %ld epochs", mp->epochs);
out:
	if (stop_on_val)
		memcpy(net->p, t->best, net->np * sizeof(*net->p));
	return 0;
}

static int mlp_fit(void *inst, const struct mlfs_data *train,
		   const struct mlfs_data *val, char *msg, size_t msglen)
{
	struct mlp *mp = inst;
	struct mlp_net net = { .nlayers = mp->nhidden + 1 };
	struct mlp_train t = { 0 };
	size_t n, bs;
	int rc;

	rc = mlp_check_data(mp, train, val, msg, msglen);
	if (rc < 0)
		return rc;
	n = train->x.rows;
	net.width[0] = train->x.cols;
	for (size_t i = 0; i < mp->nhidden; i++)
		net.width[i + 1] = (size_t)mp->hidden[i];
	net.k = mp->task == MLFS_TASK_CLASSIFICATION ? train->nclasses : 0;
	net.width[net.nlayers] = net.k ? net.k : 1;
	if (!mlp_layout(&net))
		return mlfs_err(msg, msglen, "too many weights");
	bs = mp->batch_size ? (size_t)mp->batch_size : 200;
	if (bs > n)
		bs = n;
	if (bs * mlp_max_width(&net, 0) > INT_MAX)
		return mlfs_err(msg, msglen, "\"batch_size\": too large");

	rc = -ENOMEM;
	net.p = malloc(net.np * sizeof(*net.p));
	if (!net.p)
		goto out;
	rc = mlp_train_alloc(&t, &net, n, bs);
	if (rc < 0)
		goto out;
	rc = mlp_run(mp, &net, &t, train, val, bs, msg, msglen);
	if (rc < 0)
		goto out;

	free(mp->net.p);
	mp->net = net;
	net.p = NULL;
	mp->fitted = true;
out:
	mlp_train_free(&t, &net);
	free(net.p);
	return rc;
}

static size_t mlp_outputs(void *inst)
{
	const struct mlp *mp = inst;

	if (mp->fitted)
		return mp->net.width[mp->net.nlayers];
	return mp->task == MLFS_TASK_REGRESSION ? 1 : 0;
}

static int mlp_predict(void *inst, const struct mlfs_matrix *x,
		       struct mlfs_matrix *out)
{
	const struct mlp *mp = inst;
	const struct mlp_net *net = &mp->net;
	float *h;

	if (!mp->fitted || !x || !out || !mlp_matrix_ok(x) ||
	    !mlp_matrix_ok(out))
		return -EINVAL;
	if (x->cols != net->width[0] || out->rows != x->rows ||
	    out->cols != net->width[net->nlayers])
		return -EINVAL;
	h = malloc(2 * MLP_CHUNK * mlp_max_width(net, 1) * sizeof(*h));
	if (!h)
		return -ENOMEM;
	for (size_t i0 = 0; i0 < x->rows; i0 += MLP_CHUNK) {
		size_t m = x->rows - i0 < MLP_CHUNK ? x->rows - i0 : MLP_CHUNK;

		mlp_forward_chunk(net, net->p, x->data + i0 * x->ld, x->ld, m,
				  out->data + i0 * out->ld, out->ld, h);
	}
	free(h);
	return 0;
}

/* ---- save and load ---- */

static int mlp_save(void *inst, void **buf, size_t *len)
{
	const struct mlp *mp = inst;
	const struct mlp_net *net = &mp->net;
	struct mlfs_writer w = { 0 };

	*buf = NULL;
	*len = 0;
	if (!mp->fitted)
		return -EINVAL;
	mlfs_put_header(&w, MLP_MAGIC, MLP_VERSION);
	mlfs_put_u32(&w, mp->task);
	mlfs_put_u32(&w, (uint32_t)net->nlayers);
	mlfs_put_u64(&w, net->k);
	for (size_t l = 0; l <= net->nlayers; l++)
		mlfs_put_u64(&w, net->width[l]);
	mlfs_put_f32s(&w, net->p, net->np);
	return mlfs_writer_finish(&w, buf, len);
}

static int mlp_load(void *inst, const void *buf, size_t len)
{
	struct mlp *mp = inst;
	struct mlp_net net = { 0 };
	struct mlfs_reader r;
	uint64_t k, nl;

	mlfs_reader_init(&r, buf, len);
	if (mlfs_get_header(&r, MLP_MAGIC, MLP_VERSION, MLP_VERSION_FNV) < 0)
		return -EINVAL;
	if (mlfs_get_u32(&r) != mp->task)
		return -EINVAL;
	nl = mlfs_get_u32(&r);
	k = mlfs_get_u64(&r);
	if (r.err || nl < 2 || nl > MLP_MAX_HIDDEN + 1)
		return -EINVAL;
	if (mp->task == MLFS_TASK_CLASSIFICATION ? k < 2 || k > MLP_MAX_CLASSES
						 : k != 0)
		return -EINVAL;
	net.nlayers = nl;
	net.k = k;
	for (size_t l = 0; l <= nl; l++) {
		uint64_t w = mlfs_get_u64(&r);

		if (r.err || w < 1 || w > INT_MAX ||
		    (l > 0 && l < nl && w > MLP_MAX_WIDTH))
			return -EINVAL;
		net.width[l] = w;
	}
	if (net.width[nl] != (k ? k : 1) || !mlp_layout(&net))
		return -EINVAL;
	if (mlfs_reader_expect(&r, net.np, 4) < 0)
		return -EINVAL;
	net.p = malloc(net.np * sizeof(*net.p));
	if (!net.p)
		return -ENOMEM;
	if (mlfs_get_f32s(&r, net.p, net.np) < 0 || mlfs_reader_end(&r) < 0) {
		free(net.p);
		return -EINVAL;
	}
	free(mp->net.p);
	mp->net = net;
	mp->fitted = true;
	return 0;
}

static const struct mlfs_train_ops mlp_ops = {
	.size = sizeof(struct mlfs_train_ops),
	.tasks = MLFS_TASK_CLASSIFICATION | MLFS_TASK_REGRESSION,
	.init = mlp_init,
	.fit = mlp_fit,
	.outputs = mlp_outputs,
	.predict = mlp_predict,
	.save = mlp_save,
	.load = mlp_load,
	.fini = mlp_fini,
	.model_format = 1,
};

MLFS_EXPORT const struct mlfs_plugin mlfs_plugin = {
	MLFS_ABI_MAJOR, MLFS_ABI_MINOR, MLFS_STAGE_TRAIN,
	"mlp",		"1.0.0",	&mlp_ops,
};
