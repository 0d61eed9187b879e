/* SPDX-License-Identifier: MIT */
/*
 * An entity's online record (featstate.c): what a read as of now needs
 * of its events, bounded by the spec's windows rather than by how many
 * events the entity ever had.
 *
 *   "MLFSFS02" u64 nfeat  f64 cutoff  f64 base_t
 *   struct feat_acc base[nbase]  one per feature folded into base (below),
 *                                in the spec's order; nbase may be 0
 *   a history of the entity alone (featcalc.h): the kept events
 *
 * Events at or before cutoff are folded into base, in time order, for
 * the features without a window (but last), and dropped; base_t is the
 * newest of them.  Kept: every event after cutoff, and for each last
 * feature without a window the newest earlier event that gives it a
 * value (its "anchor", so a category keeps its text).  An update moves
 * cutoff to horizon (the longest window plus allowed_lateness) before
 * the newest event, or before now if that is earlier.
 *
 * So a read as of t with t - (longest window) >= cutoff, which every
 * read as of now is, gives the bits featcalc.c gives over all the
 * events: windows hold the same events in the same order, and the other
 * folds continue base.  An event at or before cutoff (later than
 * allowed_lateness) changes no window; it goes into base out of time
 * order, which count, min and max do not see, and sum, mean and std may
 * in their last bits.
 */
#ifndef MLFS_FS_FEATSTATE_H
#define MLFS_FS_FEATSTATE_H

#include "featcalc.h"

struct feat_state {
	double cutoff;              /* -inf: nothing folded yet */
	double base_t;              /* -inf: none */
	const struct feat_acc *base; /* nbase: the features folded, in order */
	struct feat_hist h;         /* the kept events */
	void *owned;                /* the record, when the state owns it */
};

/*
 * FEAT_STATE_FORMAT: names the record's layout; a store of records in
 * another (an older daemon's) is loaded again rather than read.
 */
#define FEAT_STATE_FORMAT "FS02"

/*
 * feat_state_load: st over record buf (len bytes, 8-aligned), which must
 * outlive it, for spec; -EBADMSG with why.
 */
int feat_state_load(const void *buf, size_t len, const struct feat_spec *spec,
		    struct feat_state *st, char *why, size_t whylen);
void feat_state_free(struct feat_state *st);

/* Does st hold every event a read as of t takes? */
bool feat_state_covers(const struct feat_spec *spec,
		       const struct feat_state *st, double t);

/* Every feature as of t (covered) into out[spec->nfeat], as feat_asof. */
void feat_state_asof(const struct feat_spec *spec,
		     const struct feat_state *st, double t, double *out);

/*
 * feat_state_update: old (NULL: a new entity) with n more events, as a
 * new record in *buf (*len bytes), now being the wall clock; cat, key,
 * klen and iso as feat_hist_merge.
 */
int feat_state_update(const struct feat_spec *spec,
		      const struct feat_state *old, const bool *cat,
		      const char *key, size_t klen, bool iso,
		      const struct feat_event *ev, size_t n, double now,
		      void **buf, size_t *len);

/* feat_state_of: key k of history h as a record. */
int feat_state_of(const struct feat_spec *spec, const struct feat_hist *h,
		  size_t k, double now, void **buf, size_t *len);

#endif
