/* SPDX-License-Identifier: MIT */
/*
 * Feature values as of an instant (DESIGN.md §4, "Feature sets"): the one
 * aggregation code that offline.csv, join and training use, over a
 * history of events sorted by entity and time.
 *
 * A history is one flat buffer (the "history" blob of a synced version),
 * made by feat_hist_build in the sync job and read in place by
 * feat_hist_load in the daemon, which judges every offset in it: the job
 * runs as the writer, who can change the file before the daemon reads it.
 *
 *   "MLFSFH01" u64 nkeys, nev, ncols, flags, keys_len
 *   u64 coltype[ncols]  ndict[ncols]  dict_len[ncols]
 *   u64 key_off[nkeys + 1]   key i: keys + key_off[i] .. key_off[i + 1]
 *   u64 first[nkeys + 1]     its events: first[i] .. first[i + 1]
 *   keys (entity values joined by 0x1f, sorted bytewise; padded to 8)
 *   f64 t[nev]               seconds since the epoch, sorted per key
 *   f64 v[nev * ncols]       NAN missing; categorical: index in dict
 *   per categorical column: u64 doff[ndict + 1], bytes (padded to 8)
 *
 * Semantics, for an entity as of t: the events with time <= t count (no
 * leakage from the future); a feature with a window w takes those in
 * (t - w, t], one without takes them all.  No event at or before t, or
 * (with ttl) the newest older than t - ttl: every feature is missing.
 * count counts values (events, without a column); sum of none is 0;
 * mean, min, max, last of none and std of fewer than two are missing.
 * std is the sample standard deviation (n - 1), as pandas'.  A value
 * outside the feature's min/max is dropped (null) or clipped (clip);
 * reject refuses the event where it enters (feat_hist_build).
 *
 * Values are folded in event order with the same steps everywhere, so
 * offline.csv, join and the online store give the same bits.
 */
#ifndef MLFS_FS_FEATCALC_H
#define MLFS_FS_FEATCALC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "jsonout.h"
#include "mlcore.h"
#include "problem.h"
#include "strbuf.h"

enum feat_agg { AGG_LAST, AGG_COUNT, AGG_SUM, AGG_MEAN, AGG_MIN, AGG_MAX,
		AGG_STD };
enum feat_viol { VIOL_NULL, VIOL_CLIP, VIOL_REJECT };

#define FEAT_KEY_SEP '\x1f' /* between the values of a composite entity */

/* Event times: years 0000 to 9999 (what ISO 8601 writes back). */
#define FEAT_TIME_MIN (-62167219200.0) /* 0000-01-01T00:00:00Z */
#define FEAT_TIME_MAX 253402300799.0   /* 9999-12-31T23:59:59Z */
#define FEAT_TIME_OK(t) ((t) >= FEAT_TIME_MIN && (t) <= FEAT_TIME_MAX)

struct feat_def {
	const char *name;     /* borrowed from the spec */
	long col;             /* input column, -1: count of events */
	enum feat_agg agg;
	double window;        /* seconds; 0: all history */
	double min, max;      /* -inf, inf when not given */
	enum feat_viol viol;
};

/* A checked spec (featspec_check), compiled.  Borrows from the JSON. */
struct feat_spec {
	json_t *json;         /* a reference */
	size_t nent;
	const char **entity;
	const char *timestamp;
	double ttl;           /* seconds; 0: none */
	size_t ncols;         /* input columns, in order of first use */
	const char **cols;
	bool *cat;            /* the spec makes column c categorical */
	bool *num;            /* ... or numeric (else the data decide) */
	size_t nfeat;
	struct feat_def *feat;
	double longest;       /* the longest window, seconds (0: none) */
	double horizon;       /* longest + allowed_lateness (default: the
			       * longest window): how far before its newest
			       * event an entity's online record keeps its
			       * events (featstate.h) */
};

struct feat_hist {
	size_t nkeys, nev, ncols;
	bool iso;             /* times came as ISO 8601 text */
	const char *keys;
	const uint64_t *key_off, *first;
	const double *t, *v;
	const uint64_t *coltype; /* 1: categorical */
	const uint64_t *ndict;
	const uint64_t **doff;   /* per column; NULL for numeric ones */
	const char **dict;
	void *owned;             /* the buffer, when the history owns it */
	size_t len;
};

/* x as an index below n of a categorical column's dictionary. */
static inline bool feat_dict_index(double x, uint64_t n, uint64_t *i)
{
	if (!(x >= 0 && x < (double)n) || x != (double)(uint64_t)x)
		return false;
	*i = (uint64_t)x;
	return true;
}

int feat_spec_compile(json_t *spec, struct feat_spec **out);
void feat_spec_free(struct feat_spec *s);

/*
 * What feat_hist_build did with the rows besides keeping them.  lenient
 * (in): rows of the tables after the first (the event log, which an
 * earlier spec took) that spec refuses are left out and counted in
 * refused, rather than failing the build.  late: rows of those tables
 * older than allowed_lateness before their entity's newest earlier row
 * (rows in the order they were logged), which the online store took in
 * no window (featstate.h).
 */
struct feat_build_info {
	bool lenient;
	uint64_t skipped;   /* no entity, or after the cut */
	uint64_t refused;
	uint64_t late;
	size_t which;       /* the table of the problem, on failure */
};

/*
 * feat_hist_build: the history of the events in tabs[0..ntabs) (parsed
 * CSV with a header; NULL or empty: none; a source dataset, then the
 * event log) at or before cut, under spec, as a malloc'd buffer in *buf
 * (*len bytes); counts in *info.  -EINVAL with pb (line and column in
 * table info->which, taking one record a line) for a missing column, a
 * bad time, text in a numeric column or a value a reject feature
 * refuses.
 */
int feat_hist_build(const struct feat_spec *spec,
		    const struct table *const *tabs, size_t ntabs, double cut,
		    void **buf, size_t *len, struct feat_build_info *info,
		    struct problem *pb);

/*
 * feat_hist_load: h over buf (len bytes, 8-aligned), which must outlive
 * it, checked for spec.  -EBADMSG with why for anything out of place.
 */
int feat_hist_load(const void *buf, size_t len, const struct feat_spec *spec,
		   struct feat_hist *h, char *why, size_t whylen);
void feat_hist_free(struct feat_hist *h);

/*
 * Writing the layout: feat_hist_size gives the bytes of a history with
 * these counts (keys_len and dict_len[] unpadded; ndict[] and dict_len[]
 * 0 for numeric columns); feat_hist_head writes its header and column
 * tables at out and returns where key_off[] goes.  The sections follow
 * in the order above, each padded to 8 bytes.
 */
size_t feat_hist_size(size_t nkeys, size_t nev, size_t ncols,
		      size_t keys_len, const bool *cat, const uint64_t *ndict,
		      const uint64_t *dict_len);
char *feat_hist_head(char *out, size_t nkeys, size_t nev, size_t ncols,
		     bool iso, size_t keys_len, const bool *cat,
		     const uint64_t *ndict, const uint64_t *dict_len);

/*
 * feat_hist_slice: key k of h as a history of its own (one key, its
 * events, the categories it uses), malloc'd in *buf (*len bytes): what
 * the online store keeps per entity.
 */
int feat_hist_slice(const struct feat_hist *h, size_t k, void **buf,
		    size_t *len);

/* A new event of one entity, for feat_hist_merge. */
struct feat_event {
	double t;
	const double *num;     /* ncols values: numbers, NAN missing */
	const char *const *str; /* ncols: a categorical column's text, or
				   NULL (missing, or a numeric column) */
	const size_t *slen;
};

/*
 * feat_event_text: the text of event e's column c of h, or NULL
 * (missing): its category, or, for a numeric column (which a text value
 * turns categorical), its number written in buf.
 */
const char *feat_event_text(const struct feat_hist *h, size_t e, size_t c,
			    char buf[NUM_SHORTEST_MAX], size_t *len);

/*
 * feat_hist_merge: one (a history of key alone, or NULL for a new key)
 * with n more events, as a new history in *buf (*len bytes): the events
 * in time order, the earlier ones first among equal times and the new
 * ones in their order.  cat[c] (cat may be NULL with one): column c is
 * categorical (a numeric column of one becomes categorical, its numbers
 * written as text).
 * iso: times came as text.
 */
int feat_hist_merge(const struct feat_hist *one, const bool *cat,
		    size_t ncols, const char *key, size_t klen, bool iso,
		    const struct feat_event *ev, size_t n, void **buf,
		    size_t *len);

/* The key index of the entity key (values joined by FEAT_KEY_SEP), or -1. */
long feat_hist_find(const struct feat_hist *h, const char *key, size_t len);

/*
 * feat_asof: every feature of key k as of t into out[spec->nfeat] (NAN
 * missing; a categorical value is its index in the column's dictionary).
 */
void feat_asof(const struct feat_spec *spec, const struct feat_hist *h,
	       size_t k, double t, double *out);

/*
 * The fold, for featstate.c: an accumulator of one feature's values in
 * event order.  Eight doubles, no padding: an online record stores it.
 */
struct feat_acc {
	double n;
	double sum, comp;  /* Neumaier's compensated sum */
	double mean, m2;   /* Welford */
	double min, max, last;
};
void feat_acc_add(struct feat_acc *a, double v);
double feat_acc_value(const struct feat_acc *a, enum feat_agg agg);
/* Raw value v as feature d takes it: itself, clipped, or NAN (none). */
double feat_bound(const struct feat_def *d, double v);
/* The value event e of h brings to feature d (NAN: none). */
static inline double feat_input(const struct feat_def *d,
				const struct feat_hist *h, size_t e)
{
	if (d->col < 0)
		return 0; /* a count of events */
	return feat_bound(d, h->v[e * h->ncols + (size_t)d->col]);
}
/* Fold events [lo, hi) of h into a. */
void feat_fold(const struct feat_def *d, const struct feat_hist *h,
	       size_t lo, size_t hi, struct feat_acc *a);
/* The first event in [lo, hi) with time > t. */
size_t feat_upper(const struct feat_hist *h, size_t lo, size_t hi, double t);

/*
 * feat_hist_pick: events idx[0..m) (ascending, relative to key k's
 * first; idx NULL: all of them) of key k of h as a history of their own,
 * with the categories they use, malloc'd in *buf (*len bytes).
 */
int feat_hist_pick(const struct feat_hist *h, size_t k, const size_t *idx,
		   size_t m, void **buf, size_t *len);

/* Append feature f's value v as CSV text (nothing when missing). */
int feat_put_value(struct strbuf *sb, const struct feat_spec *spec,
		   const struct feat_hist *h, size_t f, double v);
/* Append time t as the history spells times. */
int feat_put_time(struct strbuf *sb, const struct feat_hist *h, double t);
/* Append s (len bytes) as one CSV field, quoted when it must be. */
int feat_put_field(struct strbuf *sb, const char *s, size_t len);

/*
 * feat_offline: offline.csv of h: the entity columns, the timestamp and
 * every feature, one row per distinct (entity, event time) from time
 * from on, with values as of that instant, written through put (0 or
 * -errno) in pieces; *stats: per feature count, missing, mean, std, min,
 * max and outside (raw values outside min/max, before on_violation).
 */
int feat_offline(const struct feat_spec *spec, const struct feat_hist *h,
		 double from, int (*put)(void *arg, const char *p, size_t n),
		 void *arg, json_t **stats);

#endif
