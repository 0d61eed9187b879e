/* SPDX-License-Identifier: MIT */
/*
 * centroid: a third-party train plugin for mlfs, built out of tree
 * against the installed header (see Makefile).  A nearest-centroid
 * classifier: fit averages each class's rows; predict gives each class a
 * probability from a softmax of negative squared distances.
 *
 * Everything is static except the descriptor; state lives in the
 * instance; predict does not modify the instance, so it may run on many
 * threads at once.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mlfs_plugin.h>

struct centroid {
	size_t k;      /* classes */
	size_t d;      /* features */
	float *c;      /* k x d centres */
};

static int centroid_init(const struct mlfs_host *host, unsigned task,
			 const struct mlfs_param *params, size_t nparams,
			 void **inst, char *msg, size_t msglen)
{
	(void)host;
	if (task != MLFS_TASK_CLASSIFICATION) {
		snprintf(msg, msglen, "centroid only classifies");
		return -EINVAL;
	}
	if (nparams) {
		snprintf(msg, msglen, "\"%s\": unknown parameter for centroid",
			 params[0].name);
		return -EINVAL;
	}
	*inst = calloc(1, sizeof(struct centroid));
	return *inst ? 0 : -ENOMEM;
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

/* bytes: "CNTR", k and d as u32, then k*d floats */
static int centroid_save(void *inst, void **buf, size_t *len)
{
	const struct centroid *m = inst;
	uint32_t dims[2] = { (uint32_t)m->k, (uint32_t)m->d };
	char *b;

	*len = 4 + sizeof(dims) + m->k * m->d * sizeof(float);
	b = malloc(*len);
	if (!b)
		return -ENOMEM;
	memcpy(b, "CNTR", 4);
	memcpy(b + 4, dims, sizeof(dims));
	memcpy(b + 4 + sizeof(dims), m->c, m->k * m->d * sizeof(float));
	*buf = b;
	return 0;
}

static int centroid_load(void *inst, const void *buf, size_t len)
{
	struct centroid *m = inst;
	uint32_t dims[2];
	const char *b = buf;

	if (len < 4 + sizeof(dims) || memcmp(b, "CNTR", 4) != 0)
		return -EINVAL;
	memcpy(dims, b + 4, sizeof(dims));
	if (dims[0] == 0 || dims[1] == 0 ||
	    len != 4 + sizeof(dims) + (size_t)dims[0] * dims[1] * sizeof(float))
		return -EINVAL;
	free(m->c);
	m->k = dims[0];
	m->d = dims[1];
	m->c = malloc(m->k * m->d * sizeof(float));
	if (!m->c)
		return -ENOMEM;
	memcpy(m->c, b + 4 + sizeof(dims), m->k * m->d * sizeof(float));
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
};

MLFS_EXPORT const struct mlfs_plugin mlfs_plugin = {
	.abi_major = MLFS_ABI_MAJOR,
	.abi_minor = MLFS_ABI_MINOR,
	.stage = MLFS_STAGE_TRAIN,
	.name = "centroid",
	.version = "1.0",
	.ops = &centroid_ops,
};
