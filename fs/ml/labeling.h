/* SPDX-License-Identifier: MIT */
/*
 * Labelling a dataset (labeling.c; DESIGN.md §4, "Labeling"): its rows
 * whose label is empty, the order a model finds them most uncertain in,
 * and the answers of labellers, published as one version a handle.  No
 * FUSE here; tree/label.c makes them files.
 *
 * A row's key is its id (the schema's first id column) when the dataset
 * has one, else v<n>:<r>: data row r (from 1) of version n.  Labelling
 * only fills label cells, so row r of a later version is the same row
 * as long as its other fields are the same, which is checked.
 */
#ifndef MLFS_ML_LABELING_H
#define MLFS_ML_LABELING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ctx.h"
#include "problem.h"

struct fs;
struct table;

/* A version's rows, parsed. */
struct label_view {
	unsigned ver;
	struct table *t;
	char *buf;  /* the CSV the table borrows */
	long lab;   /* the label column, or -1 */
	long id;    /* the first id column, or -1 */
};

/*
 * label_view_load: version ver of dataset name (0: the latest) into v.
 * -ENODATA when the dataset has no version yet, -ENOENT without that
 * version, -EIO for data that does not parse; -EFBIG past 256 MiB.
 */
int label_view_load(struct fs *fs, const char *name, unsigned ver,
		    struct label_view *v);
void label_view_free(struct label_view *v);
/* Is row r's label empty? */
bool label_view_unlabelled(const struct label_view *v, size_t r);

/*
 * label_order: the rows rows[0..n) of v (unlabelled ones) reordered most
 * uncertain first, by the entropy of the probabilities of the model ref
 * (a registry reference, "m" or "m@3") names; ties, and rows the model
 * cannot score, keep their order (the latter last).  -EINVAL with why
 * for a reference that resolves to nothing or to no classifier.
 */
int label_order(struct fs *fs, const char *ref, const struct label_view *v,
		size_t *rows, size_t n, char *why, size_t whylen);

/*
 * label_model_check: may ctx make ref dataset name's label model?  A
 * classifier of the registry ctx may read.  0, or -errno with why.
 */
int label_model_check(struct fs *fs, const char *ref,
		      const struct fs_ctx *ctx, char *why, size_t whylen);

/*
 * The answers of one handle on label/answers.  label_batch_add judges
 * complete `key,label` lines (text, len bytes; first: the number of the
 * first) against the latest version: every line is kept, or none
 * (-errno with pb naming the line): -EINVAL for a line that is not two
 * fields, an unknown key or a label that is not one of the dataset's
 * classes, -ESTALE for a row that is no longer the same in the latest
 * version or that another labeller gave another label.  A first line
 * `key,<label column>` is a header.  label_batch_publish makes one
 * version: the latest at that moment with the answers' labels filled in,
 * judged again as a whole (-ESTALE, nothing published, if a row changed
 * meanwhile).  *ver 0 when there was nothing to publish.
 */
struct label_batch;

int label_batch_new(struct fs *fs, const char *name, struct label_batch **out);
int label_batch_add(struct label_batch *b, const char *text, size_t len,
		    uint64_t first, struct problem *pb);
int label_batch_publish(struct label_batch *b, const struct fs_ctx *ctx,
			unsigned *ver, struct problem *pb);
void label_batch_free(struct label_batch *b);

#endif
