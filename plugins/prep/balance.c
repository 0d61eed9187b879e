/* SPDX-License-Identifier: MIT */
/*
 * balance: the "balance" prep plugin evens out the classes of a label
 * column, by one of three methods ("method"):
 *
 * - oversample: rows of each class smaller than ratio x the majority's
 *   count are drawn at random (with replacement) and appended until the
 *   class has that many;
 * - undersample: each class larger than the minority's count / ratio
 *   keeps that many of its rows, drawn at random without replacement, in
 *   their original order;
 * - smote: as imbalanced-learn's SMOTE, each class smaller than ratio x
 *   the majority's count gets synthetic rows appended: a random row x of
 *   the class, one of its k nearest neighbours n in the class (Euclidean
 *   over the feature columns), and u uniform in [0, 1) give x + u(n - x)
 *   in every feature column.  Feature columns are the NUMERIC ones that
 *   are neither the label nor an id; a missing value counts as the
 *   column's mean (over all rows), and stays missing only where both x
 *   and n lack it.  CATEGORICAL columns take the value most of the k
 *   neighbours have (ties: the nearer), and every other column (the
 *   label, ids, text, time) copies x.  A class of one row has no
 *   neighbour, and its synthetic rows are copies of it.
 *
 * Counts are floored as imbalanced-learn floors them (ratio x 7 = 3.5 is
 * 3), after allowing for binary fractions (0.29 x 100 is 29, not 28).
 * Classes are the label's distinct values (a NUMERIC label's by number,
 * so "1" and "1.0" are one class), numbered by first appearance, which
 * also settles a tie for the majority.  Rows without a label are kept as
 * they are and belong to no class.  Fewer than two classes: the table
 * comes out unchanged.
 *
 * Every random choice comes from a xoshiro256** generator seeded by run's
 * seed.  No state; check and run may be called from any thread.  smote
 * finds neighbours on host->threads threads when most rows will be drawn
 * (the same neighbours as on one).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlfs_plugin.h"
#include "mlfs_plugin_util.h"
#include "prep_i.h"

#define BAL_K_MAX 1000
#define BAL_THREADS_MAX 64
#define BAL_KEY_LEN 32 /* "%.17g" of any double, and its NUL */

enum bal_method {
	BAL_OVERSAMPLE,
	BAL_UNDERSAMPLE,
	BAL_SMOTE,
};

struct bal {
	int method;	   /* enum bal_method; -1 until given */
	double ratio;	   /* minority / majority after, in (0, 1] */
	long k;		   /* smote's neighbours */
	bool k_given;
	const char *label; /* borrowed; NULL: the column with the role */
};

static const char *const bal_methods[] = { "oversample", "undersample",
					   "smote", NULL };

static const struct mlfs_param_spec bal_params[] = {
	MLFS_PARAM_ENUM("method", struct bal, method, -1, bal_methods),
	{ .name = "ratio",
	  .kind = MLFS_PARAM_KIND_NUMBER,
	  .offset = MLFS_PARAM_AT(struct bal, ratio, double),
	  .dflt = 1,
	  .min = 0,
	  .max = 1,
	  .flags = MLFS_PARAM_ABOVE_MIN },
	MLFS_PARAM_INT("k", struct bal, k, 5, 1, BAL_K_MAX),
	MLFS_PARAM_END,
};

/* Params the table cannot express, in this order in mine[] below. */
static const char *const bal_own[] = { "label", NULL };

static int bal_parse(const struct mlfs_param *params, size_t nparams,
		     struct bal *b, char *msg, size_t msglen)
{
	const struct mlfs_param *mine[1];
	int rc;

	memset(b, 0, sizeof(*b));
	rc = prep_params(bal_params, "balance", b, bal_own, mine, params,
			 nparams, msg, msglen);
	if (rc < 0)
		return rc;
	if (b->method < 0)
		return mlfs_err(msg, msglen,
				"\"method\": must be given: \"oversample\", \"undersample\" or \"smote\"");
	for (size_t i = 0; i < nparams; i++)
		if (params[i].name && strcmp(params[i].name, "k") == 0)
			b->k_given = true;
	if (b->k_given && b->method != BAL_SMOTE)
		return mlfs_err(msg, msglen,
				"\"k\": only for \"method\": \"smote\", not \"%s\"",
				bal_methods[b->method]);
	if (mine[0]) {
		if (mine[0]->type != MLFS_PARAM_STRING || !mine[0]->string)
			return mlfs_err(msg, msglen,
					"\"label\": must be a column name, got %s",
					mlfs_param_type_name(mine[0]->type));
		if (!*mine[0]->string)
			return mlfs_err(msg, msglen,
					"\"label\": must be a column name, got \"\"");
		b->label = mine[0]->string;
	}
	return 0;
}

static int bal_check(const struct mlfs_param *params, size_t nparams,
		     char *msg, size_t msglen)
{
	struct bal b;

	return bal_parse(params, nparams, &b, msg, msglen);
}

/*
 * floor(x), but a product meant to be whole (0.29 x 100) counts as whole;
 * SIZE_MAX past what a size_t holds (a count over a tiny ratio).
 */
static size_t bal_floor(double x)
{
	double y = floor(x + x * 1e-12);

	if (!(y < (double)SIZE_MAX))
		return SIZE_MAX;
	return (size_t)y;
}

/* ---- classes ---- */

/* The label's classes: which row is in which, and how many each has. */
struct bal_classes {
	size_t n;      /* classes */
	size_t *id;    /* [rows]: the row's class, SIZE_MAX: no label */
	size_t *count; /* [n] */
	size_t *start; /* [n + 1]: class c's rows are row[start[c]..) */
	size_t *row;   /* [labelled rows], ascending within each class */
};

static void bal_classes_free(struct bal_classes *cl)
{
	free(cl->id);
	free(cl->count);
	free(cl->start);
	free(cl->row);
}

/* The label column's index; -EINVAL with msg if there is none. */
static int bal_label(const struct bal *b, const struct mlfs_table *in,
		     size_t *label, char *msg, size_t msglen)
{
	long j;

	if (b->label) {
		j = prep_col_find(in, b->label);
		if (j < 0)
			return mlfs_err(msg, msglen,
					"\"label\": column \"%s\" not in the table",
					b->label);
		*label = (size_t)j;
		return 0;
	}
	for (size_t c = 0; c < in->cols; c++) {
		if (in->col[c].roles & MLFS_ROLE_LABEL) {
			*label = c;
			return 0;
		}
	}
	return mlfs_err(msg, msglen,
			"no column has the label role: give \"label\"");
}

static int bal_classify(const struct mlfs_column *lab, size_t rows,
			struct bal_classes *cl)
{
	const char **keys;
	char *buf = NULL;
	size_t labelled = 0;
	int rc = -ENOMEM;

	memset(cl, 0, sizeof(*cl));
	keys = malloc((rows ? rows : 1) * sizeof(*keys));
	cl->id = malloc((rows ? rows : 1) * sizeof(*cl->id));
	if (!keys || !cl->id)
		goto out;
	if (lab->type == MLFS_COL_NUMERIC) {
		buf = malloc((rows ? rows : 1) * BAL_KEY_LEN);
		if (!buf)
			goto out;
	}
	for (size_t i = 0; i < rows; i++) {
		double v;

		if (!buf) {
			keys[i] = prep_text(lab, i);
			continue;
		}
		/* by number: + 0.0 makes -0 print as 0 */
		v = prep_num(lab, i) + 0.0;
		keys[i] = NULL;
		if (isnan(v))
			continue;
		snprintf(buf + i * BAL_KEY_LEN, BAL_KEY_LEN, "%.17g", v);
		keys[i] = buf + i * BAL_KEY_LEN;
	}
	rc = prep_distinct(keys, rows, cl->id, &cl->n);
	if (rc < 0)
		goto out;
	rc = -ENOMEM;
	cl->count = calloc(cl->n + 1, sizeof(*cl->count));
	cl->start = calloc(cl->n + 1, sizeof(*cl->start));
	for (size_t i = 0; i < rows; i++)
		labelled += cl->id[i] != SIZE_MAX;
	cl->row = malloc((labelled ? labelled : 1) * sizeof(*cl->row));
	if (!cl->count || !cl->start || !cl->row)
		goto out;
	for (size_t i = 0; i < rows; i++)
		if (cl->id[i] != SIZE_MAX)
			cl->count[cl->id[i]]++;
	for (size_t c = 0; c < cl->n; c++)
		cl->start[c + 1] = cl->start[c] + cl->count[c];
	/* a counting sort: start[] runs ahead while it places, then back */
	for (size_t i = 0; i < rows; i++)
		if (cl->id[i] != SIZE_MAX)
			cl->row[cl->start[cl->id[i]]++] = i;
	for (size_t c = 0; c < cl->n; c++)
		cl->start[c] -= cl->count[c];
	rc = 0;
out:
	free(keys);
	free(buf);
	if (rc < 0)
		bal_classes_free(cl);
	return rc;
}

/* ---- oversample and undersample: a map of output rows to input rows ---- */

/*
 * The rows classes below target need to reach it, in *extra; -E2BIG and
 * msg when the table would grow past what an output table can hold.
 */
static int bal_extra(const struct bal_classes *cl, size_t rows,
		     size_t target, size_t *extra, char *msg, size_t msglen)
{
	const size_t most = (SIZE_MAX / 2) / sizeof(double) - rows;

	*extra = 0;
	for (size_t c = 0; c < cl->n; c++) {
		if (cl->count[c] >= target)
			continue;
		if (target - cl->count[c] > most - *extra) {
			mlfs_err(msg, msglen,
				 "balancing would make more than %zu rows",
				 most + rows);
			return -E2BIG;
		}
		*extra += target - cl->count[c];
	}
	return 0;
}

static int bal_oversample(const struct bal_classes *cl, size_t rows,
			  size_t target, size_t extra, struct prep_rng *rng,
			  size_t **map, size_t *nmap)
{
	size_t r = rows;
	size_t *m;

	m = malloc((rows + extra ? rows + extra : 1) * sizeof(*m));
	if (!m)
		return -ENOMEM;
	for (size_t i = 0; i < rows; i++)
		m[i] = i;
	for (size_t c = 0; c < cl->n; c++)
		for (size_t e = cl->count[c]; e < target; e++)
			m[r++] = cl->row[cl->start[c] +
					 prep_rng_below(rng, cl->count[c])];
	*map = m;
	*nmap = r;
	return 0;
}

static int bal_undersample(const struct bal_classes *cl, size_t rows,
			   size_t target, struct prep_rng *rng, size_t **map,
			   size_t *nmap)
{
	size_t *m, *pick, r = 0, most = 0;
	bool *drop;

	for (size_t c = 0; c < cl->n; c++)
		if (cl->count[c] > most)
			most = cl->count[c];
	m = malloc((rows ? rows : 1) * sizeof(*m));
	drop = calloc(rows ? rows : 1, sizeof(*drop));
	pick = malloc((most ? most : 1) * sizeof(*pick));
	if (!m || !drop || !pick) {
		free(m);
		free(drop);
		free(pick);
		return -ENOMEM;
	}
	for (size_t c = 0; c < cl->n; c++) {
		size_t n = cl->count[c];

		if (n <= target)
			continue;
		memcpy(pick, cl->row + cl->start[c], n * sizeof(*pick));
		/* a partial Fisher-Yates: pick[0..n - target) are dropped */
		for (size_t i = 0; i < n - target; i++) {
			size_t j = i + prep_rng_below(rng, n - i);
			size_t t = pick[i];

			pick[i] = pick[j];
			pick[j] = t;
			drop[pick[i]] = true;
		}
	}
	for (size_t i = 0; i < rows; i++)
		if (!drop[i])
			m[r++] = i;
	free(drop);
	free(pick);
	*map = m;
	*nmap = r;
	return 0;
}

/* ---- smote ---- */

/* Candidates whose distances bal_neighbours computes at once. */
#define BAL_BLOCK 256

/* What smote needs across the classes. */
struct bal_smote {
	const struct mlfs_table *in;
	struct mlfs_table *out;
	size_t label;	 /* column */
	size_t *feat;	 /* [d]: the feature columns */
	size_t d;
	double *mean;	 /* [d]: each feature's mean, 0 if it has none */
	size_t k;	 /* the "k" param */
	size_t next;	 /* the next synthetic row of out */
	/* per class, sized for the largest */
	size_t n;	 /* the class's rows */
	size_t ld;	 /* n rounded up to a whole BAL_BLOCK */
	double *x;	 /* [d x ld]: feature f of row l at x[f * ld + l],
			    missing values filled, 0 past n */
	uint32_t *nn;	 /* [n x k]: neighbours, nearest first */
	bool *have_nn;	 /* [n]: nn of the row computed yet */
	double *dist;	 /* [k]: squared distances beside nn */
	double *block;	 /* [BAL_BLOCK]: distances to candidates */
};

static double bal_x(const struct bal_smote *s, size_t l, size_t f)
{
	return s->x[f * s->ld + l];
}

/*
 * The k nearest rows to row i among the class's n rows (itself left
 * out), nearest first, ties to the lower row, by brute force: O(n d) a
 * row, O(n^2 d) for a class, nothing allocated.  The distances to a
 * block of candidates come first, feature by feature over the
 * feature-major x, a loop the compiler vectorises (each sum still adds
 * its features in order, so distances are exact as written); picking the
 * k smallest after is mostly a compare that fails.  Measured on one core
 * of an AMD EPYC (gcc 12 -O2, no sanitizers): 10 000 rows x 20 features,
 * k = 5, the neighbours of every row in 0.9 s, where a row-major loop
 * leaving each candidate once its partial sum passed the k-th best took
 * 2.9 s (its exit branch mispredicts).
 */
static void bal_neighbours(struct bal_smote *s, size_t k, size_t i,
			   double *dist, double *restrict blk)
{
	const size_t n = s->n, ld = s->ld, d = s->d;
	uint32_t *nn = s->nn + i * k;
	size_t have = 0;

	for (size_t j0 = 0; j0 < n; j0 += BAL_BLOCK) {
		size_t m = n - j0 < BAL_BLOCK ? n - j0 : BAL_BLOCK;

		/* whole blocks (x is padded): a fixed trip count that gcc's
		 * -O2 cost model vectorises, where it would not a variable */
		for (size_t b = 0; b < BAL_BLOCK; b++)
			blk[b] = 0;
		/* four features a pass, added one after the other as the
		 * one-feature loop adds them: the same sums, with a quarter
		 * of the loads and stores of blk */
		for (size_t f = 0; f + 4 <= d; f += 4) {
			const double *restrict c0 = s->x + f * ld + j0;
			const double *restrict c1 = c0 + ld;
			const double *restrict c2 = c1 + ld;
			const double *restrict c3 = c2 + ld;
			double a0 = s->x[f * ld + i], a1 = s->x[(f + 1) * ld + i];
			double a2 = s->x[(f + 2) * ld + i];
			double a3 = s->x[(f + 3) * ld + i];

			for (size_t b = 0; b < BAL_BLOCK; b++) {
				double e0 = a0 - c0[b], e1 = a1 - c1[b];
				double e2 = a2 - c2[b], e3 = a3 - c3[b];
				double t = blk[b];

				t += e0 * e0;
				t += e1 * e1;
				t += e2 * e2;
				t += e3 * e3;
				blk[b] = t;
			}
		}
		for (size_t f = d - d % 4; f < d; f++) {
			const double *restrict col = s->x + f * ld + j0;
			double a = s->x[f * ld + i];

			for (size_t b = 0; b < BAL_BLOCK; b++) {
				double e = a - col[b];

				blk[b] += e * e;
			}
		}
		for (size_t b = 0; b < m; b++) {
			double sum = isnan(blk[b]) ? INFINITY : blk[b];
			size_t j = j0 + b, at;

			/* equal to the worst: the earlier row stays */
			if (j == i || (have == k && sum >= dist[k - 1]))
				continue;
			at = have < k ? have++ : k - 1;
			while (at > 0 && dist[at - 1] > sum) {
				dist[at] = dist[at - 1];
				nn[at] = nn[at - 1];
				at--;
			}
			dist[at] = sum;
			nn[at] = (uint32_t)j;
		}
	}
}

/* Rows [from, to) of a class's neighbours, on a thread of their own. */
struct bal_part {
	struct bal_smote *s;
	size_t k;
	size_t from;
	size_t to;
	double *dist;  /* [k] */
	double *block; /* [BAL_BLOCK] */
	pthread_t thread;
	bool started;
};

static void *bal_part_main(void *arg)
{
	struct bal_part *p = arg;

	for (size_t i = p->from; i < p->to; i++)
		bal_neighbours(p->s, p->k, i, p->dist, p->block);
	return NULL;
}

/*
 * Every row's neighbours at once, on the host's threads: when the draws
 * are as many as the rows, nearly every row is drawn (a row is missed
 * with probability e^-1 at most, e^-19 for a 1:20 class made 1:1), and
 * a row's neighbours are the same whichever thread finds them.  0 when
 * done, -ENOMEM (or one thread) to find them one by one as drawn.
 */
static int bal_neighbours_all(struct bal_smote *s, size_t k, int threads)
{
	struct bal_part part[BAL_THREADS_MAX];
	size_t nt = threads < BAL_THREADS_MAX ? (size_t)threads
					      : BAL_THREADS_MAX;
	int rc = 0;

	if (nt < 2 || s->n < 2 * BAL_BLOCK)
		return -ENOMEM;
	memset(part, 0, sizeof(part));
	for (size_t t = 0; t < nt; t++) {
		part[t] = (struct bal_part){ s, k, s->n * t / nt,
					     s->n * (t + 1) / nt,
					     malloc(k * sizeof(double)),
					     malloc(BAL_BLOCK * sizeof(double)),
					     0, false };
		if (!part[t].dist || !part[t].block)
			rc = -ENOMEM;
	}
	/* the first part on this thread, the others each on one of theirs */
	for (size_t t = 1; t < nt && rc == 0; t++) {
		part[t].started = pthread_create(&part[t].thread, NULL,
						 bal_part_main, &part[t]) == 0;
		if (!part[t].started)
			rc = -ENOMEM;
	}
	if (rc == 0)
		bal_part_main(&part[0]);
	for (size_t t = 0; t < nt; t++) {
		if (part[t].started)
			pthread_join(part[t].thread, NULL);
		free(part[t].dist);
		free(part[t].block);
	}
	return rc;
}

/* The class's rows into s->x, missing values as the column's mean. */
static void bal_gather(struct bal_smote *s, const size_t *rows, size_t n)
{
	s->n = n;
	s->ld = (n + BAL_BLOCK - 1) / BAL_BLOCK * BAL_BLOCK;
	for (size_t f = 0; f < s->d; f++) {
		const struct mlfs_column *c = &s->in->col[s->feat[f]];
		double *xf = s->x + f * s->ld;

		for (size_t l = 0; l < n; l++) {
			double v = prep_num(c, rows[l]);

			xf[l] = isnan(v) ? s->mean[f] : v;
		}
		for (size_t l = n; l < s->ld; l++)
			xf[l] = 0;
	}
}

/*
 * Of the neighbours' values in column j, the one most of them have (ties:
 * the nearer); NULL if none has one.
 */
static const char *bal_vote(const struct bal_smote *s, size_t j,
			    const size_t *rows, const uint32_t *nn, size_t k)
{
	const struct mlfs_column *c = &s->in->col[j];
	const char *best = NULL;
	size_t most = 0;

	for (size_t a = 0; a < k; a++) {
		const char *v = prep_text(c, rows[nn[a]]);
		size_t n = 0;

		if (!v)
			continue;
		for (size_t b = a; b < k; b++) {
			const char *w = prep_text(c, rows[nn[b]]);

			n += w && strcmp(v, w) == 0;
		}
		if (n > most) {
			most = n;
			best = v;
		}
	}
	return best;
}

/* One synthetic row at s->next from row l of the class and neighbour q. */
static void bal_synth(struct bal_smote *s, const size_t *rows, size_t k,
		      size_t l, size_t q, double u)
{
	const struct mlfs_table *in = s->in;
	struct mlfs_table *out = s->out;
	size_t r = s->next++, p = rows[l];
	size_t f = 0;

	if (!k) {
		/* no neighbour: a copy, missing values and all */
		for (size_t j = 0; j < in->cols; j++)
			prep_out_copy(out, r, in, j, p);
		return;
	}
	for (size_t j = 0; j < in->cols; j++) {
		const struct mlfs_column *c = &in->col[j];

		if (f < s->d && s->feat[f] == j) {
			double a = bal_x(s, l, f);
			double b = bal_x(s, q, f);

			out->col[j].text[r] = NULL; /* the host prints num */
			out->col[j].num[r] = a + u * (b - a);
			if (isnan(prep_num(c, p)) &&
			    isnan(prep_num(c, rows[q])))
				out->col[j].num[r] = NAN;
			f++;
		} else if (j != s->label &&
			   c->type == MLFS_COL_CATEGORICAL &&
			   !(c->roles & MLFS_ROLE_ID)) {
			out->col[j].text[r] = (char *)bal_vote(s, j, rows,
							       s->nn + l * k,
							       k);
		} else {
			prep_out_copy(out, r, in, j, p);
		}
	}
}

static int bal_smote_class(struct bal_smote *s, const struct mlfs_host *host,
			   const struct bal_classes *cl, size_t c,
			   size_t target, struct prep_rng *rng)
{
	const size_t *rows = cl->row + cl->start[c];
	size_t n = cl->count[c];
	size_t k = s->k < n - 1 ? s->k : n - 1;

	if (n >= target)
		return 0;
	if (!k)
		prep_log(host, MLFS_LOG_WARNING,
			 "balance: a class has one row; smote copies it");
	else if (k < s->k)
		prep_log(host, MLFS_LOG_WARNING,
			 "balance: a class has %zu rows; smote uses %zu neighbours, not %zu",
			 n, k, s->k);
	bal_gather(s, rows, n);
	memset(s->have_nn, 0, n * sizeof(*s->have_nn));
	if (k && target - n >= n && PREP_HOST_HAS(host, threads) &&
	    bal_neighbours_all(s, k, host->threads) == 0)
		for (size_t l = 0; l < n; l++)
			s->have_nn[l] = true;
	for (size_t e = n; e < target; e++) {
		size_t l, q, pick;
		double u;

		if (!k) {
			bal_synth(s, rows, 0, prep_rng_below(rng, n), 0, 0);
			continue;
		}
		/* row and neighbour uniformly, as imbalanced-learn draws */
		pick = prep_rng_below(rng, n * k);
		l = pick / k;
		u = prep_rng_unit(rng);
		if (!s->have_nn[l]) {
			if (prep_cancelled(host))
				return -ECANCELED;
			bal_neighbours(s, k, l, s->dist, s->block);
			s->have_nn[l] = true;
		}
		q = s->nn[l * k + pick % k];
		bal_synth(s, rows, k, l, q, u);
	}
	return 0;
}

static void bal_smote_free(struct bal_smote *s)
{
	free(s->feat);
	free(s->mean);
	free(s->x);
	free(s->nn);
	free(s->have_nn);
	free(s->dist);
	free(s->block);
}

static int bal_smote(const struct mlfs_host *host, const struct bal *b,
		     const struct mlfs_table *in, size_t label,
		     const struct bal_classes *cl, size_t target,
		     size_t extra, struct prep_rng *rng,
		     struct mlfs_table **out, char *msg, size_t msglen)
{
	struct bal_smote s = { .in = in, .label = label, .k = (size_t)b->k };
	size_t most = 0, ld;
	int rc = -ENOMEM;

	*out = NULL;
	for (size_t c = 0; c < cl->n; c++)
		if (cl->count[c] < target && cl->count[c] > most)
			most = cl->count[c];
	/* class-local neighbour numbers are 32-bit: half the memory */
	if (most > UINT32_MAX) {
		mlfs_err(msg, msglen, "smote: a class has more than %lu rows",
			 (unsigned long)UINT32_MAX);
		return -E2BIG;
	}
	s.feat = malloc((in->cols ? in->cols : 1) * sizeof(*s.feat));
	if (!s.feat)
		goto out_free_scratch;
	for (size_t j = 0; j < in->cols; j++) {
		const struct mlfs_column *c = &in->col[j];

		if (j != label && c->type == MLFS_COL_NUMERIC &&
		    !(c->roles & (MLFS_ROLE_ID | MLFS_ROLE_LABEL)))
			s.feat[s.d++] = j;
	}
	if (most && (s.d >= SIZE_MAX / sizeof(double) / (most + BAL_BLOCK) ||
		     s.k >= SIZE_MAX / sizeof(uint32_t) / most))
		goto out_free_scratch;
	ld = (most + BAL_BLOCK - 1) / BAL_BLOCK * BAL_BLOCK;
	s.mean = calloc(s.d ? s.d : 1, sizeof(*s.mean));
	s.x = malloc((ld * s.d + 1) * sizeof(*s.x));
	s.nn = malloc((most * s.k + 1) * sizeof(*s.nn));
	s.have_nn = malloc((most ? most : 1) * sizeof(*s.have_nn));
	s.dist = malloc(s.k * sizeof(*s.dist));
	s.block = malloc(BAL_BLOCK * sizeof(*s.block));
	if (!s.mean || !s.x || !s.nn || !s.have_nn || !s.dist || !s.block)
		goto out_free_scratch;
	for (size_t f = 0; f < s.d; f++) {
		long double sum = 0;
		size_t count = 0;

		for (size_t i = 0; i < in->rows; i++) {
			double v = prep_num(&in->col[s.feat[f]], i);

			if (!isnan(v)) {
				sum += v;
				count++;
			}
		}
		s.mean[f] = count ? (double)(sum / (long double)count) : 0;
	}
	rc = prep_out_new(in, in->rows + extra, &s.out);
	if (rc < 0)
		goto out_free_scratch;
	for (size_t j = 0; j < in->cols; j++)
		for (size_t i = 0; i < in->rows; i++)
			prep_out_copy(s.out, i, in, j, i);
	s.next = in->rows;
	for (size_t c = 0; c < cl->n && rc == 0; c++)
		rc = bal_smote_class(&s, host, cl, c, target, rng);
	if (rc < 0) {
		prep_out_free(s.out);
		goto out_free_scratch;
	}
	*out = s.out;
out_free_scratch:
	bal_smote_free(&s);
	return rc;
}

/* ---- run ---- */

/* out: in's rows map[0..n) in that order. */
static int bal_map_rows(const struct mlfs_table *in, const size_t *map,
			size_t n, struct mlfs_table **out)
{
	int rc = prep_out_new(in, n, out);

	if (rc < 0)
		return rc;
	for (size_t j = 0; j < in->cols; j++)
		for (size_t r = 0; r < n; r++)
			prep_out_copy(*out, r, in, j, map[r]);
	return 0;
}

static int bal_run(const struct mlfs_host *host,
		   const struct mlfs_param *params, size_t nparams,
		   uint64_t seed, const struct mlfs_table *in,
		   struct mlfs_table **out, char *msg, size_t msglen)
{
	struct bal_classes cl;
	struct mlfs_table *t = NULL;
	struct prep_rng rng;
	size_t label = 0, most = 0, least = SIZE_MAX, *map = NULL, nmap = 0;
	size_t up, down, extra = 0;
	struct bal b;
	int rc;

	if (!out)
		return mlfs_err(msg, msglen, "no place for the output table");
	*out = NULL;
	rc = bal_parse(params, nparams, &b, msg, msglen);
	if (rc < 0)
		return rc;
	rc = prep_table_check(in, msg, msglen);
	if (rc < 0)
		return rc;
	rc = bal_label(&b, in, &label, msg, msglen);
	if (rc < 0)
		return rc;
	rc = bal_classify(&in->col[label], in->rows, &cl);
	if (rc < 0)
		return rc;
	for (size_t c = 0; c < cl.n; c++) {
		if (cl.count[c] > most)
			most = cl.count[c];
		if (cl.count[c] < least)
			least = cl.count[c];
	}
	prep_rng_seed(&rng, seed);
	/* the counts classes grow to, or shrink to */
	up = bal_floor(b.ratio * (double)most);
	down = bal_floor((double)least / b.ratio);
	if (cl.n >= 2 && b.method != BAL_UNDERSAMPLE) {
		rc = bal_extra(&cl, in->rows, up, &extra, msg, msglen);
		if (rc < 0)
			goto out_free_classes;
	}
	if (cl.n < 2) {
		prep_log(host, MLFS_LOG_WARNING,
			 "balance: column \"%s\" has %zu classes; nothing to balance",
			 prep_col_name(&in->col[label]), cl.n);
		rc = bal_undersample(&cl, in->rows, SIZE_MAX, &rng, &map,
				     &nmap);
	} else if (b.method == BAL_OVERSAMPLE) {
		rc = bal_oversample(&cl, in->rows, up, extra, &rng, &map,
				    &nmap);
	} else if (b.method == BAL_UNDERSAMPLE) {
		rc = bal_undersample(&cl, in->rows, down, &rng, &map, &nmap);
	} else {
		rc = bal_smote(host, &b, in, label, &cl, up, extra, &rng, &t,
			       msg, msglen);
	}
	if (rc == 0 && !t)
		rc = bal_map_rows(in, map, nmap, &t);
	if (rc == 0)
		rc = prep_out_finish(t, in);
	if (rc == -ECANCELED)
		mlfs_err(msg, msglen, "cancelled");
	if (rc < 0)
		prep_out_free(t);
	else
		*out = t;
out_free_classes:
	free(map);
	bal_classes_free(&cl);
	return rc;
}

static const struct mlfs_prep_ops bal_ops = {
	.size = sizeof(bal_ops),
	.check = bal_check,
	.run = bal_run,
	.out_free = prep_out_free,
};

MLFS_EXPORT const struct mlfs_plugin mlfs_plugin = {
	.abi_major = MLFS_ABI_MAJOR,
	.abi_minor = MLFS_ABI_MINOR,
	.stage = MLFS_STAGE_PREP,
	.name = "balance",
	.version = "1.0.0",
	.ops = &bal_ops,
};
