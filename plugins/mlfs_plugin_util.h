/* SPDX-License-Identifier: MIT */
/*
 * mlfs_plugin_util.h: helpers for writing an mlfs plugin, installed beside
 * mlfs_plugin.h (#include <mlfs_plugin_util.h>, same pkg-config flags).
 *
 * Header-only: every function is static inline, so a plugin built out of
 * tree needs nothing but this file, and nothing here becomes part of the
 * ABI (the daemon never sees it; a plugin carries the copy it was built
 * with).  Like mlfs_plugin.h it includes only standard headers and
 * compiles as C11 and C++.  Nothing here keeps state: every call works on
 * what the caller passes, so it is as thread-safe as the caller's data.
 *
 * Three parts:
 *
 * 1. Messages.  mlfs_err() fills a train op's msg and returns
 *    -EINVAL.  mlfs_train_new() is a whole usual init: host and task
 *    checks, the instance, its copy of the host table, the params.
 *
 * 2. A parameter table.  A plugin describes its spec "params" as data,
 *    one struct mlfs_param_spec a parameter (name, kind, where the value
 *    goes in the plugin's own struct, default, range), ending with an
 *    entry whose name is NULL, and mlfs_params_apply() sets the defaults,
 *    then applies the spec's values or says what is wrong, in the words
 *    the built-in plugins use:
 *
 *	static const struct mlfs_param_spec ridge_params[] = {
 *		MLFS_PARAM_NUMBER("l2", struct ridge, l2, 1, 0),
 *		MLFS_PARAM_INT("max_iter", struct ridge, max_iter, 100, 1, 1e9),
 *		MLFS_PARAM_END,
 *	};
 *	rc = mlfs_params_apply(ridge_params, "ridge", rg, params, nparams,
 *			       msg, msglen);
 *
 *    gives "\"l2\": must be >= 0, got -1", "\"max_iter\": must be an
 *    integer from 1 to 1000000000, got 2.5", "\"lambda\": unknown
 *    parameter for ridge", "\"l2\": given twice".
 *
 * 3. Save/load framing.  A writer appends little-endian fields to a
 *    growing buffer and hands it over as save() must (malloc'd, caller
 *    frees); a reader takes fields from load()'s bytes, checking every
 *    read against the end, so a plugin checks its own sizes and values
 *    and nothing else.  A saved form starts with a four-byte magic and a
 *    u32 version (mlfs_put_header, mlfs_get_header).  It carries no
 *    checksum: the daemon's model file has an xxh3-128 over all of it.
 *    The built-in plugins' first saved forms (version 1) ended in an
 *    FNV-1a 64 of everything before it; mlfs_get_header() checks and
 *    strips that trailer when the version read is the legacy one the
 *    plugin names, so models saved before the helper still load.
 */
#ifndef MLFS_PLUGIN_UTIL_H
#define MLFS_PLUGIN_UTIL_H

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlfs_plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MLFS_UTIL_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define MLFS_UTIL_PRINTF(f, a)
#endif

/* ---- messages ---- */

/*
 * Write the message (printf-style) into msg (msglen bytes, may be NULL or
 * 0) and return -EINVAL, for `return mlfs_err(msg, msglen, ...)`.
 */
MLFS_UTIL_PRINTF(3, 4)
static inline int mlfs_err(char *msg, size_t msglen, const char *fmt,
				  ...)
{
	va_list ap;

	if (msg && msglen) {
		va_start(ap, fmt);
		vsnprintf(msg, msglen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* "a number", "a string", ...: an mlfs_param's type, for messages. */
static inline const char *mlfs_param_type_name(int type)
{
	switch (type) {
	case MLFS_PARAM_NUMBER:
		return "a number";
	case MLFS_PARAM_STRING:
		return "a string";
	case MLFS_PARAM_LIST:
		return "a list";
	case MLFS_PARAM_BOOL:
		return "a boolean";
	}
	return "an unknown type";
}

/* ---- the parameter table ---- */

/* What a parameter is, and the C type of its field in the plugin's struct. */
enum mlfs_param_kind {
	MLFS_PARAM_KIND_NUMBER = 1, /* double, finite, >= min (> min with
				     * MLFS_PARAM_ABOVE_MIN), <= max when
				     * max > min */
	MLFS_PARAM_KIND_INT,	    /* long, a whole number in [min, max] */
	MLFS_PARAM_KIND_BOOL,	    /* bool, JSON true or false */
	MLFS_PARAM_KIND_ENUM,	    /* int, the index of the string in
				     * choices */
	MLFS_PARAM_KIND_LIST,	    /* long[max_count], whole numbers in
				     * [min, max], 1 to max_count of them
				     * (a lone number is a list of one); the
				     * count is a size_t at count_offset */
};

/* mlfs_param_spec.flags */
#define MLFS_PARAM_ABOVE_MIN 0x1 /* NUMBER: must be > min, not >= */

/*
 * One parameter.  Two entries with the same offset are one parameter
 * under two names (mlp's "epochs" and "max_iter"): a spec may give
 * either, not both.
 */
struct mlfs_param_spec {
	const char *name;    /* as in the spec's "params"; NULL ends */
	int kind;	     /* enum mlfs_param_kind */
	size_t offset;	     /* of the field: MLFS_PARAM_AT, offsetof */
	double dflt;	     /* the value when not given (BOOL 0/1, ENUM
			      * an index); LIST: see dflt_list */
	double min;
	double max;
	unsigned flags;	     /* MLFS_PARAM_* */
	const char *const *choices; /* ENUM: the strings, NULL-terminated */
	/* LIST only */
	size_t count_offset; /* of the size_t count */
	size_t max_count;
	const long *dflt_list; /* dflt_count values */
	size_t dflt_count;
	const char *noun;    /* "layer widths": "must be a list of %s" */
	const char *item;    /* "widths": "%s must be integers from" */
};

/*
 * Table entries in one line each, for C (they use designated
 * initializers).  MLFS_PARAM_AT is offsetof(TYPE, FIELD) that also fails
 * to compile unless FIELD has type CTYPE, so an entry cannot write a
 * long into an int:
 *
 *	static const struct mlfs_param_spec ridge_params[] = {
 *		MLFS_PARAM_NUMBER("l2", struct ridge, l2, 1, 0),
 *		MLFS_PARAM_INT("max_iter", struct ridge, max_iter, 100, 1, 1e9),
 *		MLFS_PARAM_END,
 *	};
 *
 * MLFS_PARAM_NUMBER_ABOVE is a number that must be > MIN.  A number with
 * an upper bound, or a list, is written out as a struct (mlp.c's
 * "hidden").
 */
#define MLFS_PARAM_AT(TYPE, FIELD, CTYPE)                                   \
	(offsetof(TYPE, FIELD) + 0 * sizeof(&((TYPE *)0)->FIELD - (CTYPE *)0))
#define MLFS_PARAM_NUMBER(NAME, TYPE, FIELD, DFLT, MIN)                     \
	{ .name = (NAME), .kind = MLFS_PARAM_KIND_NUMBER,                    \
	  .offset = MLFS_PARAM_AT(TYPE, FIELD, double), .dflt = (DFLT),      \
	  .min = (MIN) }
#define MLFS_PARAM_NUMBER_ABOVE(NAME, TYPE, FIELD, DFLT, MIN)               \
	{ .name = (NAME), .kind = MLFS_PARAM_KIND_NUMBER,                    \
	  .offset = MLFS_PARAM_AT(TYPE, FIELD, double), .dflt = (DFLT),      \
	  .min = (MIN), .flags = MLFS_PARAM_ABOVE_MIN }
#define MLFS_PARAM_INT(NAME, TYPE, FIELD, DFLT, MIN, MAX)                   \
	{ .name = (NAME), .kind = MLFS_PARAM_KIND_INT,                       \
	  .offset = MLFS_PARAM_AT(TYPE, FIELD, long), .dflt = (DFLT),        \
	  .min = (MIN), .max = (MAX) }
#define MLFS_PARAM_BOOL(NAME, TYPE, FIELD, DFLT)                            \
	{ .name = (NAME), .kind = MLFS_PARAM_KIND_BOOL,                      \
	  .offset = MLFS_PARAM_AT(TYPE, FIELD, bool), .dflt = (DFLT) }
#define MLFS_PARAM_ENUM(NAME, TYPE, FIELD, DFLT, CHOICES)                   \
	{ .name = (NAME), .kind = MLFS_PARAM_KIND_ENUM,                      \
	  .offset = MLFS_PARAM_AT(TYPE, FIELD, int), .dflt = (DFLT),         \
	  .choices = (CHOICES) }
#define MLFS_PARAM_END { .name = NULL }

static inline bool mlfs_param_is_int(double v, double lo, double hi)
{
	/* lo and hi within long range, so the cast cannot overflow */
	return v >= lo && v <= hi && v == (double)(long)v;
}

static inline void mlfs_param_set_default(const struct mlfs_param_spec *s,
					  void *obj)
{
	char *at = (char *)obj + s->offset;
	size_t n;

	switch (s->kind) {
	case MLFS_PARAM_KIND_NUMBER:
		*(double *)(void *)at = s->dflt;
		break;
	case MLFS_PARAM_KIND_INT:
		*(long *)(void *)at = (long)s->dflt;
		break;
	case MLFS_PARAM_KIND_BOOL:
		*(bool *)(void *)at = s->dflt != 0;
		break;
	case MLFS_PARAM_KIND_ENUM:
		*(int *)(void *)at = (int)s->dflt;
		break;
	case MLFS_PARAM_KIND_LIST:
		n = s->dflt_count < s->max_count ? s->dflt_count : s->max_count;
		if (n)
			memcpy(at, s->dflt_list, n * sizeof(long));
		*(size_t *)(void *)((char *)obj + s->count_offset) = n;
		break;
	}
}

static inline int mlfs_param_enum(const struct mlfs_param_spec *s,
				  const struct mlfs_param *p, void *at,
				  char *msg, size_t msglen)
{
	char want[256] = "";
	size_t used = 0, n = 0;

	while (s->choices[n])
		n++;
	for (size_t i = 0; i < n; i++) {
		if (p->type == MLFS_PARAM_STRING && p->string &&
		    strcmp(p->string, s->choices[i]) == 0) {
			*(int *)at = (int)i;
			return 0;
		}
	}
	/* "\"a\"", "\"a\" or \"b\"", "\"a\", \"b\" or \"c\"" */
	for (size_t i = 0; i < n && used < sizeof(want); i++) {
		const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
		int w = snprintf(want + used, sizeof(want) - used, "%s\"%s\"",
				 sep, s->choices[i]);

		if (w < 0)
			break;
		used += (size_t)w;
	}
	if (p->type != MLFS_PARAM_STRING || !p->string)
		return mlfs_err(msg, msglen,
				       "\"%s\": must be %s, got %s", p->name,
				       want, mlfs_param_type_name(p->type));
	return mlfs_err(msg, msglen, "\"%s\": must be %s, got \"%s\"",
			       p->name, want, p->string);
}

static inline int mlfs_param_list(const struct mlfs_param_spec *s,
				  const struct mlfs_param *p, void *obj,
				  char *msg, size_t msglen)
{
	long *out = (long *)(void *)((char *)obj + s->offset);
	const double *v = p->list;
	size_t n = p->nlist;

	if (p->type == MLFS_PARAM_NUMBER) {
		v = &p->number;
		n = 1;
	} else if (p->type != MLFS_PARAM_LIST) {
		return mlfs_err(msg, msglen,
				       "\"%s\": must be a list of %s, got %s",
				       p->name, s->noun,
				       mlfs_param_type_name(p->type));
	}
	if (n < 1 || n > s->max_count || !v)
		return mlfs_err(msg, msglen,
				       "\"%s\": must list 1 to %zu %s, got %zu",
				       p->name, s->max_count, s->noun, n);
	for (size_t i = 0; i < n; i++)
		if (!mlfs_param_is_int(v[i], s->min, s->max))
			return mlfs_err(msg, msglen,
					       "\"%s\": %s must be integers from %.0f to %.0f, got %g",
					       p->name, s->item, s->min,
					       s->max, v[i]);
	for (size_t i = 0; i < n; i++)
		out[i] = (long)v[i];
	*(size_t *)(void *)((char *)obj + s->count_offset) = n;
	return 0;
}

/* Check p against s and store it in obj; -EINVAL and msg if it is bad. */
static inline int mlfs_param_one(const struct mlfs_param_spec *s,
				 const struct mlfs_param *p, void *obj,
				 char *msg, size_t msglen)
{
	void *at = (char *)obj + s->offset;
	const char *op;

	switch (s->kind) {
	case MLFS_PARAM_KIND_NUMBER:
		if (p->type != MLFS_PARAM_NUMBER)
			return mlfs_err(msg, msglen,
					       "\"%s\": must be a number, got %s",
					       p->name,
					       mlfs_param_type_name(p->type));
		op = s->flags & MLFS_PARAM_ABOVE_MIN ? ">" : ">=";
		if (!isfinite(p->number) || p->number < s->min ||
		    ((s->flags & MLFS_PARAM_ABOVE_MIN) && p->number == s->min))
			return mlfs_err(msg, msglen,
					       "\"%s\": must be %s %g, got %g",
					       p->name, op, s->min, p->number);
		if (s->max > s->min && p->number > s->max)
			return mlfs_err(msg, msglen,
					       "\"%s\": must be <= %g, got %g",
					       p->name, s->max, p->number);
		*(double *)at = p->number;
		return 0;
	case MLFS_PARAM_KIND_INT:
		if (p->type != MLFS_PARAM_NUMBER)
			return mlfs_err(msg, msglen,
					       "\"%s\": must be an integer, got %s",
					       p->name,
					       mlfs_param_type_name(p->type));
		if (!mlfs_param_is_int(p->number, s->min, s->max))
			return mlfs_err(msg, msglen,
					       "\"%s\": must be an integer from %.0f to %.0f, got %g",
					       p->name, s->min, s->max,
					       p->number);
		*(long *)at = (long)p->number;
		return 0;
	case MLFS_PARAM_KIND_BOOL:
		if (p->type != MLFS_PARAM_BOOL)
			return mlfs_err(msg, msglen,
					       "\"%s\": must be true or false, got %s",
					       p->name,
					       mlfs_param_type_name(p->type));
		*(bool *)at = p->number != 0;
		return 0;
	case MLFS_PARAM_KIND_ENUM:
		return mlfs_param_enum(s, p, at, msg, msglen);
	case MLFS_PARAM_KIND_LIST:
		return mlfs_param_list(s, p, obj, msg, msglen);
	}
	return mlfs_err(msg, msglen, "\"%s\": bad table entry",
			       p->name);
}

/*
 * Set every field table names to its default, then apply params[0..n)
 * from a train op's init.  table: entries ending with one whose name is
 * NULL (at most 64 entries).  plugin: the plugin's name, for "unknown
 * parameter for <plugin>".  obj: the plugin's struct the offsets are in.
 * Returns 0, or -EINVAL with msg saying which parameter is wrong and how;
 * after an error obj holds some values and must not be used (init frees
 * it).
 */
static inline int mlfs_params_apply(const struct mlfs_param_spec *table,
				    const char *plugin, void *obj,
				    const struct mlfs_param *params,
				    size_t nparams, char *msg, size_t msglen)
{
	uint64_t seen = 0;
	size_t count = 0;

	while (table[count].name)
		count++;
	if (count > 64)
		return mlfs_err(msg, msglen,
				       "%s: too many parameters in its table",
				       plugin);
	for (size_t t = 0; t < count; t++)
		mlfs_param_set_default(&table[t], obj);
	for (size_t i = 0; i < nparams; i++) {
		const struct mlfs_param *p = &params[i];
		size_t t;
		int rc;

		if (!p->name)
			return mlfs_err(msg, msglen,
					       "parameter %zu has no name", i);
		for (t = 0; t < count; t++)
			if (strcmp(p->name, table[t].name) == 0)
				break;
		if (t == count)
			return mlfs_err(msg, msglen,
					       "\"%s\": unknown parameter for %s",
					       p->name, plugin);
		if (seen & ((uint64_t)1 << t))
			return mlfs_err(msg, msglen,
					       "\"%s\": given twice", p->name);
		for (size_t a = 0; a < count; a++)
			if (a != t && table[a].offset == table[t].offset &&
			    (seen & ((uint64_t)1 << a)))
				return mlfs_err(msg, msglen,
						       "\"%s\": same as \"%s\", give one of them",
						       p->name, table[a].name);
		seen |= (uint64_t)1 << t;
		rc = mlfs_param_one(&table[t], p, obj, msg, msglen);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- init ---- */

/*
 * What mlfs_train_new needs to know of a train plugin's instance struct,
 * which holds a copy of the host table, the task and the params.
 */
struct mlfs_train_info {
	const char *name;    /* the plugin's, for messages: "linear" */
	unsigned tasks;	     /* the MLFS_TASK_* bits init accepts */
	const char *does;    /* "does regression only": "linear does
			      * regression only, not task 4" */
	size_t size;	     /* sizeof the instance struct */
	size_t host_offset;  /* of its struct mlfs_host */
	size_t task_offset;  /* of its unsigned task */
	const struct mlfs_param_spec *params; /* the table */
};

/*
 * A struct mlfs_train_info for C, checking that TYPE's host and task
 * fields have the types mlfs_train_new writes.
 */
#define MLFS_TRAIN_INFO(TYPE, NAME, TASKS, DOES, PARAMS)                    \
	{ .name = (NAME), .tasks = (TASKS), .does = (DOES),                  \
	  .size = sizeof(TYPE),                                              \
	  .host_offset = MLFS_PARAM_AT(TYPE, host, struct mlfs_host),        \
	  .task_offset = MLFS_PARAM_AT(TYPE, task, unsigned),                \
	  .params = (PARAMS) }

/*
 * The whole of a usual train op init: refuse a missing host table and a
 * task outside info->tasks, allocate the instance zeroed, copy the host
 * table into it as far as both the daemon and the plugin know the struct
 * (an older daemon's is shorter: the fields it lacks stay NULL), store
 * the task, and apply the params (mlfs_params_apply).  On success *inst
 * is the instance (the plugin's fini frees it with free()); on failure
 * *inst is NULL and the result is -EINVAL with msg, or -ENOMEM.
 */
static inline int mlfs_train_new(const struct mlfs_train_info *info,
				 const struct mlfs_host *host, unsigned task,
				 const struct mlfs_param *params,
				 size_t nparams, void **inst, char *msg,
				 size_t msglen)
{
	size_t hs;
	char *obj;
	int rc;

	*inst = NULL;
	if (!host)
		return mlfs_err(msg, msglen, "no host table");
	if (!(task & info->tasks) || (task & (task - 1)))
		return mlfs_err(msg, msglen, "%s %s, not task %u", info->name,
				info->does, task);
	obj = (char *)calloc(1, info->size);
	if (!obj)
		return -ENOMEM;
	hs = host->size < sizeof(*host) ? host->size : sizeof(*host);
	memcpy(obj + info->host_offset, host, hs);
	memcpy(obj + info->task_offset, &task, sizeof(task));
	rc = mlfs_params_apply(info->params, info->name, obj, params, nparams,
			       msg, msglen);
	if (rc < 0) {
		free(obj);
		return rc;
	}
	*inst = obj;
	return 0;
}

/* ---- save: the writer ---- */

/*
 * A growing buffer of little-endian fields.  Start it zeroed
 * (`struct mlfs_writer w = { 0 };`), append, then mlfs_writer_finish()
 * hands the bytes over or frees them.  An allocation failure is
 * remembered in err and later appends do nothing, so a plugin checks
 * once, at the end:
 *
 *	mlfs_put_header(&w, "MFRG", 1);
 *	mlfs_put_u64(&w, rg->d);
 *	mlfs_put_f32s(&w, rg->w, rg->d);
 *	return mlfs_writer_finish(&w, buf, len);
 */
struct mlfs_writer {
	uint8_t *buf;
	size_t len; /* bytes */
	size_t cap; /* bytes */
	int err;    /* 0 or -ENOMEM */
};

static inline void mlfs_put_bytes(struct mlfs_writer *w, const void *p,
				  size_t n)
{
	if (w->err || !n)
		return;
	if (n > w->cap - w->len) {
		size_t cap = w->cap ? w->cap : 256;
		uint8_t *nb;

		while (cap - w->len < n) {
			if (cap > SIZE_MAX / 2) {
				w->err = -ENOMEM;
				return;
			}
			cap *= 2;
		}
		nb = (uint8_t *)realloc(w->buf, cap);
		if (!nb) {
			w->err = -ENOMEM;
			return;
		}
		w->buf = nb;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static inline void mlfs_put_le(struct mlfs_writer *w, uint64_t v,
			       size_t bytes)
{
	uint8_t b[8];

	for (size_t i = 0; i < bytes && i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	mlfs_put_bytes(w, b, bytes < 8 ? bytes : 8);
}

static inline void mlfs_put_u32(struct mlfs_writer *w, uint32_t v)
{
	mlfs_put_le(w, v, 4);
}

static inline void mlfs_put_u64(struct mlfs_writer *w, uint64_t v)
{
	mlfs_put_le(w, v, 8);
}

static inline void mlfs_put_f32(struct mlfs_writer *w, float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof(u));
	mlfs_put_le(w, u, 4);
}

static inline void mlfs_put_f64(struct mlfs_writer *w, double f)
{
	uint64_t u;

	memcpy(&u, &f, sizeof(u));
	mlfs_put_le(w, u, 8);
}

static inline void mlfs_put_f32s(struct mlfs_writer *w, const float *f,
				 size_t n)
{
	for (size_t i = 0; i < n; i++)
		mlfs_put_f32(w, f[i]);
}

/* The start of a saved form: magic (4 bytes, e.g. "MFLN") and version. */
static inline void mlfs_put_header(struct mlfs_writer *w, const char *magic,
				   uint32_t version)
{
	mlfs_put_bytes(w, magic, 4);
	mlfs_put_u32(w, version);
}

/*
 * End a save: on success *buf (malloc'd, the caller frees) and *len get
 * the bytes and 0 is returned; on failure *buf is NULL, *len 0, and the
 * writer's error (-ENOMEM) is returned.  Either way the writer is empty
 * afterwards.
 */
static inline int mlfs_writer_finish(struct mlfs_writer *w, void **buf,
				     size_t *len)
{
	int rc = w->err;

	*buf = NULL;
	*len = 0;
	if (!rc && !w->buf)
		rc = -EINVAL; /* nothing was written */
	if (rc) {
		free(w->buf);
	} else {
		*buf = w->buf;
		*len = w->len;
	}
	memset(w, 0, sizeof(*w));
	return rc;
}

/* ---- load: the reader ---- */

/*
 * A cursor over load()'s bytes (borrowed for the call).  A read past the
 * end, or a value a check refuses, sets err to -EINVAL and makes later
 * reads give 0, so a plugin reads its fields, checks r.err (or calls
 * mlfs_reader_end) before using them, and never reads out of bounds:
 *
 *	mlfs_reader_init(&r, buf, len);
 *	if (mlfs_get_header(&r, "MFRG", 1, 0) < 0)
 *		return -EINVAL;
 *	d = mlfs_get_u64(&r);
 *	if (d > INT_MAX || mlfs_reader_expect(&r, d, 4) < 0)
 *		return -EINVAL;           (sizes agree before any malloc)
 *	w = malloc(...);
 *	if (mlfs_get_f32s(&r, w, d) < 0 || mlfs_reader_end(&r) < 0)
 *		...free w, return -EINVAL
 */
struct mlfs_reader {
	const uint8_t *p;
	size_t left; /* bytes */
	int err;     /* 0 or -EINVAL */
};

static inline void mlfs_reader_init(struct mlfs_reader *r, const void *buf,
				    size_t len)
{
	r->p = (const uint8_t *)buf;
	r->left = buf ? len : 0;
	r->err = buf ? 0 : -EINVAL;
}

/* Mark the bytes bad: -EINVAL from here on. */
static inline int mlfs_reader_fail(struct mlfs_reader *r)
{
	r->err = -EINVAL;
	r->left = 0;
	return -EINVAL;
}

static inline uint64_t mlfs_get_le(struct mlfs_reader *r, size_t bytes)
{
	uint64_t v = 0;

	if (r->err || bytes > 8 || r->left < bytes) {
		mlfs_reader_fail(r);
		return 0;
	}
	for (size_t i = 0; i < bytes; i++)
		v |= (uint64_t)r->p[i] << (8 * i);
	r->p += bytes;
	r->left -= bytes;
	return v;
}

static inline uint32_t mlfs_get_u32(struct mlfs_reader *r)
{
	return (uint32_t)mlfs_get_le(r, 4);
}

static inline uint64_t mlfs_get_u64(struct mlfs_reader *r)
{
	return mlfs_get_le(r, 8);
}

static inline float mlfs_get_f32(struct mlfs_reader *r)
{
	uint32_t u = (uint32_t)mlfs_get_le(r, 4);
	float f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

static inline double mlfs_get_f64(struct mlfs_reader *r)
{
	uint64_t u = mlfs_get_le(r, 8);
	double f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

/*
 * n floats into out; a NaN or infinity is -EINVAL (a fitted model's
 * parameters are finite, and predict must not spread a NaN).
 */
static inline int mlfs_get_f32s(struct mlfs_reader *r, float *out, size_t n)
{
	for (size_t i = 0; i < n && !r->err; i++) {
		out[i] = mlfs_get_f32(r);
		if (!isfinite(out[i]))
			return mlfs_reader_fail(r);
	}
	return r->err;
}

/*
 * Check that exactly n items of size bytes each are left (overflow-safe),
 * before allocating for them: a size field in the bytes must agree with
 * the length, so a corrupt one cannot ask for a huge allocation.
 */
static inline int mlfs_reader_expect(struct mlfs_reader *r, uint64_t n,
				     size_t size)
{
	if (r->err)
		return r->err;
	if (!size || n > r->left / size || n * size != r->left)
		return mlfs_reader_fail(r);
	return 0;
}

/* End a load: 0 if every byte was read and nothing failed, else -EINVAL. */
static inline int mlfs_reader_end(struct mlfs_reader *r)
{
	if (!r->err && r->left)
		mlfs_reader_fail(r);
	return r->err;
}

/* FNV-1a 64 of p[0..len): the trailer of the legacy saved forms. */
static inline uint64_t mlfs_fnv1a64(const void *p, size_t len)
{
	const uint8_t *b = (const uint8_t *)p;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* Read a four-byte magic; -EINVAL if the bytes start otherwise. */
static inline int mlfs_get_magic(struct mlfs_reader *r, const char *magic)
{
	if (r->err || r->left < 4 || memcmp(r->p, magic, 4) != 0)
		return mlfs_reader_fail(r);
	r->p += 4;
	r->left -= 4;
	return 0;
}

/*
 * Read the magic and version.  version is what mlfs_put_header writes
 * today.  legacy, if not 0, is an older version whose bytes end in an
 * FNV-1a 64 of all before it: that trailer is checked and left out of
 * what the reader gives, and the rest reads as version does (the fields
 * are the same).  Call it first, on a reader just initialised.  Returns
 * the version read, or -EINVAL (wrong magic, another version, a trailer
 * that does not match).
 */
static inline long mlfs_get_header(struct mlfs_reader *r, const char *magic,
				   uint32_t version, uint32_t legacy)
{
	const uint8_t *start = r->p;
	size_t len = r->left;
	uint32_t v;

	if (mlfs_get_magic(r, magic) < 0)
		return -EINVAL;
	v = mlfs_get_u32(r);
	if (r->err)
		return -EINVAL;
	if (v == version && v != legacy)
		return (long)v;
	if (!legacy || v != legacy || r->left < 8)
		return mlfs_reader_fail(r);
	{
		struct mlfs_reader t;

		mlfs_reader_init(&t, start + len - 8, 8);
		if (mlfs_get_u64(&t) != mlfs_fnv1a64(start, len - 8))
			return mlfs_reader_fail(r);
	}
	r->left -= 8;
	return (long)v;
}

#ifdef __cplusplus
}
#endif

#endif
