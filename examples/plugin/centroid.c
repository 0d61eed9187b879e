/* SPDX-License-Identifier: MIT */
/*
 * centroid: a third-party train plugin for mlfs, built out of tree
 * against the installed header (see Makefile).  A nearest-centroid
 * classifier: fit averages each class's rows; predict gives each class a
 * probability from a softmax of negative squared distances.
 *
 * It uses the helpers installed beside the ABI header
 * (mlfs_plugin_util.h): mlfs_train_new for init, with a parameter table
 * (empty here: centroid takes none), and the writer and reader for
 * save and load.
 *
 * Everything is static except the descriptor; state lives in the
 * instance; predict does not modify the instance, so it may run on many
 * threads at once.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mlfs_plugin.h>
#include <mlfs_plugin_util.h>

struct centroid {
	struct mlfs_host host; /* copied by mlfs_train_new */
	unsigned task;
	size_t k;      /* classes */
	size_t d;      /* features */
	float *c;      /* k x d centres */
};

/*
 * centroid takes no params.  One would be a line here, e.g. a number
 * >= 0 with default 1 in a double field "shrink":
 *	MLFS_PARAM_NUMBER("shrink", struct centroid, shrink, 1, 0),
 */
static const struct mlfs_param_spec centroid_params[] = {
	MLFS_PARAM_END,
};

static const struct mlfs_train_info centroid_info =
	MLFS_TRAIN_INFO(struct centroid, "centroid", MLFS_TASK_CLASSIFICATION,
			"only classifies", centroid_params);

static int centroid_init(const struct mlfs_host *host, unsigned task,
			 const struct mlfs_param *params, size_t nparams,
			 void **inst, char *msg, size_t msglen)
{
	return mlfs_train_new(&centroid_info, host, task, params, nparams,
			      inst, msg, msglen);
}

static int centroid_fit(void *inst, const struct mlfs_data *train,
			const struct mlfs_data *val, char *msg, size_t msglen)
{
	struct centroid *m = inst;
	size_t *count;

	(void)val;
	m->k = train->nclasses;
	m->d = train->x.cols;
	free(m->c);
	m->c = calloc(m->k * m->d, sizeof(*m->c));
	count = calloc(m->k, sizeof(*count));
	if (!m->c || !count) {
		free(count);
		snprintf(msg, msglen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < train->x.rows; i++) {
		size_t y = (size_t)train->y[i];

		count[y]++;
		for (size_t j = 0; j < m->d; j++)
			m->c[y * m->d + j] += train->x.data[i * train->x.ld + j];
	}
	for (size_t y = 0; y < m->k; y++)
		for (size_t j = 0; j < m->d && count[y]; j++)
			m->c[y * m->d + j] /= (float)count[y];
	free(count);
	return 0;
}

static size_t centroid_outputs(void *inst)
{
	return ((struct centroid *)inst)->k;
}

static int centroid_predict(void *inst, const struct mlfs_matrix *x,
			    struct mlfs_matrix *out)
{
	const struct centroid *m = inst;

	for (size_t i = 0; i < x->rows; i++) {
		float *o = out->data + i * out->ld;
		double max = -INFINITY, sum = 0;

		for (size_t y = 0; y < m->k; y++) {
			double d2 = 0;

			for (size_t j = 0; j < m->d; j++) {
				double t = x->data[i * x->ld + j] -
					   m->c[y * m->d + j];

				d2 += t * t;
			}
			o[y] = (float)-d2;
			if (o[y] > max)
				max = o[y];
		}
		for (size_t y = 0; y < m->k; y++) {
			o[y] = (float)exp(o[y] - max);
			sum += o[y];
		}
		for (size_t y = 0; y < m->k; y++)
			o[y] = (float)(o[y] / sum);
	}
	return 0;
}

/* bytes: "CNTR", k and d as u32, then k*d floats, little-endian */
static int centroid_save(void *inst, void **buf, size_t *len)
{
	const struct centroid *m = inst;
	struct mlfs_writer w = { 0 };

	mlfs_put_bytes(&w, "CNTR", 4);
	mlfs_put_u32(&w, (uint32_t)m->k);
	mlfs_put_u32(&w, (uint32_t)m->d);
	mlfs_put_f32s(&w, m->c, m->k * m->d);
	return mlfs_writer_finish(&w, buf, len);
}

static int centroid_load(void *inst, const void *buf, size_t len)
{
	struct centroid *m = inst;
	struct mlfs_reader r;
	uint32_t k, d;
	float *c;

	mlfs_reader_init(&r, buf, len);
	if (mlfs_get_magic(&r, "CNTR") < 0)
		return -EINVAL;
	k = mlfs_get_u32(&r);
	d = mlfs_get_u32(&r);
	/* the sizes agree with the length before anything is allocated */
	if (!k || !d || mlfs_reader_expect(&r, (uint64_t)k * d, 4) < 0)
		return -EINVAL;
	c = malloc((size_t)k * d * sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (mlfs_get_f32s(&r, c, (size_t)k * d) < 0 ||
	    mlfs_reader_end(&r) < 0) {
		free(c);
		return -EINVAL;
	}
	free(m->c);
	m->c = c;
	m->k = k;
	m->d = d;
	return 0;
}

static void centroid_fini(void *inst)
{
	struct centroid *m = inst;

	if (m)
		free(m->c);
	free(m);
}

static const struct mlfs_train_ops centroid_ops = {
	.size = sizeof(centroid_ops),
	.tasks = MLFS_TASK_CLASSIFICATION,
	.init = centroid_init,
	.fit = centroid_fit,
	.outputs = centroid_outputs,
	.predict = centroid_predict,
	.save = centroid_save,
	.load = centroid_load,
	.fini = centroid_fini,
	.model_format = 1,
};

MLFS_EXPORT const struct mlfs_plugin mlfs_plugin = {
	.abi_major = MLFS_ABI_MAJOR,
	.abi_minor = MLFS_ABI_MINOR,
	.stage = MLFS_STAGE_TRAIN,
	.name = "centroid",
	.version = "1.0",
	.ops = &centroid_ops,
};
