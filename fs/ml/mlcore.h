/* SPDX-License-Identifier: MIT */
/*
 * The ML core shared by the job program (training) and the daemon
 * (serving): the feature extractor, the train/validation/test split, the
 * evaluation metrics and the model file format.  Pure code: no FUSE, no
 * store, no globals; every function is safe from any thread on its own
 * arguments.
 *
 * Rows arrive as CSV fields (strings), parsed by fs/base/csv_value.c's
 * rules: the same missing-value tokens (empty, NA, N/A, NaN, null, None,
 * ?) and the same number syntax (csv_parse_double).
 */
#ifndef MLFS_FS_MLCORE_H
#define MLFS_FS_MLCORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "problem.h"

/* ---------------------------------------------------------------- */
/* The feature extractor: column selection, imputation, clipping,
 * standardisation, one-hot encoding.  Fitted on the training split only;
 * serving applies exactly the same transform. */

enum fx_kind {
	FX_NUMERIC = 0, /* one output: (clip(impute(x)) - mean) / std */
	FX_ONEHOT,      /* one output per category (unknown: all zeros) */
	FX_TIME,        /* ISO 8601 -> seconds since the epoch, then numeric */
};

struct fx_column {
	char *name;       /* owned */
	enum fx_kind kind;
	size_t src;       /* index of the column in the training CSV */
	double mean;      /* NUMERIC/TIME: of the training split, missing skipped */
	double std;       /* NUMERIC/TIME: population std; 1 if 0 */
	double min;       /* NUMERIC/TIME: clip bounds, from training */
	double max;
	double impute;    /* NUMERIC/TIME: value for missing (the mean) */
	char **cats;      /* ONEHOT: categories, sorted, owned */
	size_t ncats;
};

struct fx {
	struct fx_column *cols; /* owned */
	size_t ncols;
	size_t width;           /* total outputs (features after encoding) */
};

/* Categorical columns keep at most this many categories (the most
 * frequent in training); others encode as all zeros. */
#define FX_MAX_CATS 100

/*
 * fx_fit: fit an extractor for the feature columns feat[0..nfeat) (indices
 * into the CSV's columns, with their schema types "numeric",
 * "categorical", "time"; text columns are refused with -EINVAL and a
 * problem naming the column) on the rows whose index is in rows[0..nrows)
 * of the parsed table t.  types (or one entry) may be NULL: numeric.
 * Returns 0, -EINVAL (pb filled: text or unknown type, an index out of
 * range) or -ENOMEM.  *out owned by the caller (fx_free).
 */
struct table;
int fx_fit(const struct table *t, const size_t *feat, const char *const *types,
	   size_t nfeat, const size_t *rows, size_t nrows, struct fx **out,
	   struct problem *pb);
void fx_free(struct fx *fx);

/*
 * fx_check_row: is every present, non-missing value of a numeric or time
 * column of the row a number (a time)?  Serving checks a row with it
 * before fx_transform_row, which would take a bad value as missing.
 * Arguments as for fx_transform_row.  0, or -EINVAL with why set to
 * "<column>: not a number \"abc\"".
 */
int fx_check_row(const struct fx *fx, const char *const *fields,
		 const size_t *fieldlen, size_t nfields, const size_t *map,
		 char *why, size_t whylen);

/*
 * fx_transform_row: encode one row given as fields[0..nfields) in the
 * column order named by map (map[i] is the field index of fx->cols[i], or
 * (size_t)-1 when the caller's input has no such column: imputed) into
 * out[0..fx->width).  map may be NULL: fields are then in the training
 * CSV's order (fx->cols[i].src).  fieldlen may be NULL: NUL-terminated
 * fields.  Unparseable numbers are imputed; returns the number of imputed
 * values (missing categorical values count, unknown ones do not), or
 * -EINVAL when a mapped index is >= nfields (out untouched).
 */
int fx_transform_row(const struct fx *fx, const char *const *fields,
		     const size_t *fieldlen, size_t nfields, const size_t *map,
		     float *out);

/*
 * fx_apply_row: fx_check_row and then fx_transform_row in one pass, each
 * value parsed once (serving's rows).  Arguments as for fx_transform_row,
 * why and whylen as for fx_check_row; num (may be NULL) holds, per field,
 * its value where the caller has read the field as a plain number
 * already (csv_numbers), else NAN.  Returns the number of imputed
 * values; -EINVAL with why set where fx_check_row refuses the row (out
 * partly written); -ERANGE where only fx_transform_row refuses it (a
 * mapped index >= nfields: out untouched).
 */
int fx_apply_row(const struct fx *fx, const char *const *fields,
		 const size_t *fieldlen, const double *num, size_t nfields,
		 const size_t *map, float *out, char *why, size_t whylen);

/*
 * JSON for meta.json "features": [{name, type, src, mean, std, min, max,
 * impute (what an empty or missing value becomes: the training mean),
 * encoding ("standard"), or for categorical columns min, max and impute
 * null (a missing value encodes as all zeros), encoding "onehot" and
 * categories}] and back (fx_from_json:
 * -EINVAL for anything malformed, -ENOMEM).  Dumped with
 * JSON_REAL_PRECISION(17), the round trip is exact.  fx_to_json: new
 * reference, NULL on allocation failure.
 */
json_t *fx_to_json(const struct fx *fx);
int fx_from_json(json_t *j, struct fx **out);

/* ---------------------------------------------------------------- */
/* A parsed CSV table held in memory: the fields of every row. */

struct table {
	size_t ncols;
	size_t nrows;
	char **names;        /* header, ncols of them */
	/* field (r, c): text at data + off[r * ncols + c], len[...] bytes,
	 * unquoted (quotes removed, doubled quotes undone) */
	const char *data;
	uint64_t *off;
	uint32_t *len;
	char *owned;         /* storage for unquoted fields (may be NULL) */
};

/*
 * table_parse: parse CSV text (validated already by csv_scan, but
 * re-checked: -EINVAL with pb and csv_scan's messages and positions for
 * an empty file, no data rows, a ragged record, bad quoting, a NUL byte,
 * an empty or repeated header name; UTF-8 is not re-checked) into a table
 * that borrows text (it must outlive the table).  Header names are
 * trimmed; fields are not.  -EFBIG for a field over 4 GiB, -ENOMEM.
 * *out owned (table_free).
 */
int table_parse(const char *text, size_t len, struct table **out,
		struct problem *pb);
/*
 * A text in parts, for a reader that goes through it in pieces (the
 * prepare job's threads).  table_parse_head: the header only, as
 * table_parse reads it (the same errors but "no data rows"), in a table
 * of no rows; *body is the offset of the first record.
 * table_parse_rows: the records of text[from..to) in a table of ncols
 * columns and no names, whose fields are those table_parse finds there
 * when from and to are record starts (or len) in its reading of text
 * (len bytes in all: blank lines up to its end are no records).  Its
 * errors say where in the part, counted from line 1.
 */
int table_parse_head(const char *text, size_t len, struct table **out,
		     size_t *body, struct problem *pb);
int table_parse_rows(const char *text, size_t len, size_t from, size_t to,
		     size_t ncols, struct table **out, struct problem *pb);
void table_free(struct table *t);
/* Column index of name, or -1. */
long table_col(const struct table *t, const char *name);
/* Parse field (r, c) as a double; false if missing, not a number or out
 * of range. */
bool table_num(const struct table *t, size_t r, size_t c, double *out);

/* ---------------------------------------------------------------- */
/* The split: deterministic by seed, stratified for classification. */

enum split_set { SPLIT_TRAIN = 0, SPLIT_VALIDATION = 1, SPLIT_TEST = 2 };

struct split_spec {
	double train;      /* fractions in [0, 1]; they sum to 1 (+-1e-6) */
	double validation;
	double test;
	uint64_t seed;
	bool stratify;
};

/*
 * split_rows: assign each of n rows to a set.  strata (may be NULL) is
 * each row's class index when stratifying; rows of each class are
 * shuffled with the seed and cut by the fractions (rounding so that
 * every set gets its share of each class as closely as possible).
 * out[i] is the set of row i.  Same inputs, same output, on any machine.
 * Strata are used only with sp->stratify.  -EINVAL for bad fractions
 * (train must be > 0) or a stratum >= nstrata; -ENOMEM.
 */
int split_rows(size_t n, const uint32_t *strata, size_t nstrata,
	       const struct split_spec *sp, uint8_t *out);

/* A portable seeded PRNG (splitmix64) for split and search. */
uint64_t prng_next(uint64_t *state);
double prng_uniform(uint64_t *state); /* [0, 1) */

/* ---------------------------------------------------------------- */
/* Metrics, named as scikit-learn names them. */

/*
 * metrics_classification: y[i] true class, prob[i * k + j] predicted
 * probability of class j (rows sum to 1); classes names the k classes.
 * Returns a JSON object: accuracy, precision_macro, recall_macro,
 * f1_macro, per_class {name: {precision, recall, f1, support}},
 * roc_auc (binary: of class 1, null when y lacks either class;
 * multiclass: one-vs-rest macro over the classes present in y, null when
 * fewer than two are), log_loss (probabilities clipped to
 * [1e-15, 1-1e-15]), confusion_matrix (k x k, rows true), n.  The macro
 * averages are over the classes seen in y or in the predictions (argmax,
 * first on ties), with 0 for an undefined ratio, as scikit-learn does.
 * Returns a new reference, or NULL for a y[i] >= k, k == 0, class names
 * that are not UTF-8, or allocation failure.  All three metric functions
 * give null values when n == 0.
 */
json_t *metrics_classification(const uint32_t *y, const float *prob,
			       size_t n, size_t k,
			       const char *const *classes);
/* A search's metric when its spec names none (MLFS_TASK_*): accuracy,
 * r2 or inertia. */
const char *metric_default(unsigned task);
/* Is bigger better?  Not for log_loss, rmse, mae and inertia. */
bool metric_maximize(const char *metric);
/* metrics_regression: r2 (1 or 0 for a constant y, as scikit-learn's
 * force_finite), rmse, mae, n.  NULL on allocation failure. */
json_t *metrics_regression(const float *y, const float *pred, size_t n);
/*
 * metrics_clustering: inertia (sum of squared distances to the assigned
 * centre, given as dist2[i]; null if dist2 is NULL), silhouette (mean
 * over at most sample rows chosen by seed, all of them if sample is 0;
 * x is n x d row-major, label[i] the cluster; null with fewer than 2 or
 * more than sample - 1 clusters), n.  NULL on allocation failure.
 */
json_t *metrics_clustering(const float *x, size_t n, size_t d,
			   const uint32_t *label, const float *dist2,
			   size_t sample, uint64_t seed);

/* ---------------------------------------------------------------- */
/* The model file: models/<m>/v<n>/model.
 *
 *   offset  size  field
 *   0       8     magic "MLFSMDL\0"
 *   8       4     format version (1), little-endian u32
 *   12      4     header length H (bytes of JSON), u32
 *   16      8     weights length W, u64
 *   24      H     header: JSON {plugin, plugin_version, task, classes,
 *                 label, features (fx_to_json), params, inputs, outputs,
 *                 id (the id column predict echoes; absent: none named)}
 *   24+H    W     weights: the plugin's save() bytes
 *   24+H+W  16    xxh3-128 of bytes [0, 24+H+W), big-endian hi then lo
 */

#define MODEL_MAGIC "MLFSMDL"
#define MODEL_FORMAT 1

/*
 * model_encode: build the file from header (borrowed) and weights into a
 * malloc'd buffer.  model_decode: check magic, version, lengths and the
 * checksum (-EINVAL with msg for anything wrong, including truncation
 * and bytes after the checksum) and return the header (new reference)
 * and a pointer to the weights inside buf.  model_encode: 0, -EINVAL (not
 * an object), -EFBIG, -ENOMEM; *out is the caller's (free()).  The header
 * is written compact, keys sorted, reals with 17 digits.
 */
int model_encode(json_t *header, const void *weights, size_t wlen,
		 void **out, size_t *outlen);
/* The MLFS_TASK_* a header's (or spec's) "task" names; 0 for another. */
unsigned model_task(const char *name);
int model_decode(const void *buf, size_t len, json_t **header,
		 const void **weights, size_t *wlen, char *msg, size_t msglen);

/*
 * The files of a model version, in the order ls shows them: the job
 * program writes each into its out/ folder (MODEL_OUT), the runner
 * publishes each as a blob of the version, and models/<m>/v<n>/ serves
 * each.  A new artifact is one line here, and the code that writes it.
 */
#define MODEL_FILES(X)                                                        \
	X(MODEL_FILE_MODEL, "model")                                          \
	X(MODEL_FILE_META, "meta.json")                                       \
	X(MODEL_FILE_METRICS, "metrics.json")                                 \
	X(MODEL_FILE_SAMPLE, "sample.csv")                                     \
	X(MODEL_FILE_REFERENCE, "reference.csv")                             \
	X(MODEL_FILE_EVALUATION, "evaluation.json")

#define MODEL_FILE_ENUM(id, name) id,
enum model_file { MODEL_FILES(MODEL_FILE_ENUM) MODEL_NFILES };
#undef MODEL_FILE_ENUM

extern const char *const model_files[MODEL_NFILES];

/* Training rows reference.csv keeps for drift, at most. */
#define REFERENCE_ROWS 10000

/* The job program's folder for them, relative to the job's directory. */
#define MODEL_OUT "out"

#endif
