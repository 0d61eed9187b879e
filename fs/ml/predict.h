/* SPDX-License-Identifier: MIT */
/*
 * Serving: models held in memory and the scoring of rows written to a
 * predict file.  No FUSE here; models.c connects it to the tree.
 *
 * A served model is the registry's model file (mlcore.h) decoded: the
 * train plugin's instance (loaded with its saved weights), the feature
 * extractor, the classes and the input columns.  Models are cached by
 * the content hash of their file, so versions with identical content
 * share one; the cache (one per mount, fs->served) keeps at most
 * PREDICT_CACHE models, least recently used first out.  Scoring runs
 * concurrently on one model (the plugin ABI requires predict to be
 * thread-safe).
 */
#ifndef MLFS_FS_PREDICT_H
#define MLFS_FS_PREDICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node.h"
#include "strbuf.h"

struct table;

struct fs;
struct served;   /* a loaded model, reference counted */
struct pstream;  /* one handle's scoring state */

#define PREDICT_CACHE 32
#define PREDICT_MAX_LINE (1 << 20) /* bytes in one input row */

/*
 * served_get: the model whose file has content hash (store blob), loaded
 * if needed.  -ENOENT, -EINVAL (a corrupt file or a missing plugin, with
 * msg).  The reference is the caller's (served_put).
 */
int served_get(struct fs *fs, const char *hash, struct served **out,
	       char *msg, size_t msglen);
void served_put(struct served *m);
/*
 * served_cache_open: fs's model cache (fs->served), empty, before any
 * served_get; -ENOMEM.  served_cache_close drops what it holds and frees
 * it, once nothing calls in any more; NULL-safe.
 */
int served_cache_open(struct fs *fs);
void served_cache_close(struct fs *fs);
/*
 * Drop every model fs caches (unmount: before the plugins they use go).
 * Models still referenced live on until their last served_put.
 */
void served_cache_clear(struct fs *fs);
/* Models in fs's cache, for .mlfs/stats. */
size_t served_cached(struct fs *fs);

/*
 * A scoring stream: bytes in (CSV rows, optionally a header first, or
 * JSON lines; a row may arrive in pieces), one output line per row out,
 * in order.  pstream_write scores every complete row and appends the
 * answers to out; pstream_finish scores a last row without a newline.
 * A bad row gives an "error: ..." line in its place.  -E2BIG for a row
 * longer than PREDICT_MAX_LINE (the row is answered with an error).
 * pstream_write reads a plain stream's write of many rows on two threads
 * (the caller's and one it starts and joins; see predict.c), with the
 * same answers in the same order as one thread gives.
 */
int pstream_new(struct served *m, struct pstream **out);

/*
 * A routed stream (a deployment's predict): each row goes to one of
 * several models (the caller's candidates, which share task, classes,
 * inputs and id column: served_alike), picked per row by the caller,
 * and may be mirrored to another (scored for the caller's log, never
 * answered).  Every row is answered with an id: its id column's, else
 * one the caller assigns.  Each answer, and each mirror's, is handed to
 * the caller in order, with the row's inputs, for its log.
 */
#define PSTREAM_MAX_MODELS 16

struct pstream_answer {
	size_t cand;        /* the model's index, or (size_t)-1: the row
			     * was refused before it was routed */
	bool mirror;        /* a mirror's answer: logged, never returned */
	const char *id;     /* as the answer prints it (a CSV field, or JSON
			     * text); NULL: none (an error) */
	size_t idlen;
	const char *inputs; /* the row's inputs, a JSON object; NULL for an
			     * error */
	size_t inlen;
	const char *line;   /* the answer (or error) line, without its
			     * newline; NULL for a mirror */
	size_t linelen;
	const float *out;   /* the model's outputs (nout); NULL: an error */
	size_t nout;
	/* per input (ninputs; NULL for an error): its value as a number
	 * (NAN if it is not one) and the XXH3-64 of its text, for drift;
	 * taken before any pii mask, and never logged */
	const double *nums;
	const uint64_t *cats;
	size_t ninputs;
};

struct pstream_route {
	/* the model of the next row, and its mirror (or -1); -errno
	 * with why: the row is answered "error: <why>" */
	int (*pick)(void *arg, size_t *cand, long *mirror, char *why,
		    size_t whylen);
	/* an id for a row without one, appended to id (plain text) */
	int (*assign)(void *arg, struct strbuf *id);
	/* an answer, in the order of the rows */
	void (*answered)(void *arg, const struct pstream_answer *a);
	void *arg;
	/*
	 * The inputs an answer tells: per input (in the models' order),
	 * PSTREAM_IN_KEEP, _DROP (left out) or _HASH (hash appends the
	 * value's replacement, a JSON value, to out).  NULL: all kept.
	 */
	const unsigned char *mask;
	void (*hash)(void *arg, const char *v, size_t n, struct strbuf *out);
};

enum { PSTREAM_IN_KEEP, PSTREAM_IN_DROP, PSTREAM_IN_HASH };

/*
 * pstream_new_routed: a stream over ms[0..nm) (borrowed: the caller keeps
 * them, and rt, while the stream lives).  -EINVAL if they are not alike,
 * -E2BIG past PSTREAM_MAX_MODELS.
 */
int pstream_new_routed(struct served **ms, size_t nm,
		       const struct pstream_route *rt, struct pstream **out);

/* served_alike: do b's answers mean what a's do?  false with why. */
bool served_alike(const struct served *a, const struct served *b,
		  char *why, size_t whylen);

/* What m is: MLFS_TASK_*; its input columns, in order (borrowed). */
unsigned served_task(const struct served *m);
size_t served_inputs(const struct served *m, char *const **names);
/* The index of the class text (len bytes) among m's, or -1. */
long served_class(const struct served *m, const char *text, size_t len);
/* Input k's enum fx_kind (mlcore.h), or -1. */
int served_input_kind(const struct served *m, size_t k);
/* Class c's name, or NULL. */
const char *served_class_name(const struct served *m, size_t c);
/* An answer as one number: the class (or cluster) index, or the value
 * answered; from outputs p, or from a JSON answer's "prediction". */
float served_value(const struct served *m, const float *p);
struct json_t;
float served_value_of(const struct served *m, struct json_t *prediction);

/* served_output_json: `"prediction": ...[, "probabilities": {...}]`,
 * what m answers for outputs p, as its JSON answers print it. */
void served_output_json(const struct served *m, const float *p,
			struct strbuf *out);
int pstream_write(struct pstream *s, const char *buf, size_t len,
		  struct strbuf *out);
int pstream_finish(struct pstream *s, struct strbuf *out);
void pstream_free(struct pstream *s);

/*
 * sample_match: do ans (len bytes, the lines predict answers, one per row)
 * say what sample.csv (t) recorded for its rows, the prediction as text
 * (a number within 1e-6 for regression) and each probability within
 * 1e-6?  0, or -EINVAL with why naming the row.
 */
int sample_match(const struct table *t, unsigned task, const char *ans,
		 size_t len, char *why, size_t whylen);

/*
 * served_check_sample: does m, as predict serves it, answer the rows of
 * the sample.csv text as it records?  0, or -EINVAL with why naming the
 * row.
 */
int served_check_sample(struct served *m, const char *text, size_t len,
			char *why, size_t whylen);

#endif
