/* SPDX-License-Identifier: MIT */
/*
 * What deploy.c (revisions, routing, controls) and deploylog.c (the
 * prediction store and feedback) share.  Not for other files.
 *
 * A deployment in memory is a struct dent (one per name and
 * incarnation: its prediction store, ids and the answers feedback may
 * label) and the struct dep of its latest revision (its models, router
 * and counters).  Handles hold a dep, a dep holds its dent; a new
 * revision replaces the dent's dep, and the old one lives on until its
 * last handle closes.
 */
#ifndef MLFS_FS_DEPLOY_INT_H
#define MLFS_FS_DEPLOY_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "deploy.h"
#include "deployspec.h"
#include "predict.h"
#include "strbuf.h"
#include "tailbuf.h"

/* Answers feedback can still label, at most (older ones: unknown ids). */
#define DEP_PREDS_MAX ((size_t)1 << 20)
/* Ids reserved in the store at a time (a crash skips the rest). */
#define DEP_ID_BLOCK 4096

/* An answer feedback may label. */
struct dpred {
	uint64_t idhash;  /* XXH3 of the id's text */
	uint64_t prev;    /* the previous answer with this bucket, + 1 */
	uint32_t rev;     /* the revision that answered */
	uint16_t cand;
	bool labelled;
	float value;      /* the class index, or the number answered */
};

/* Counters of a candidate in a revision. */
struct dstat {
	uint64_t requests, errors, mirrored;
	uint64_t labels, right; /* feedback received; right answers */
	double reward;          /* sum: 1/0 a class, -|error| a number */
	double abserr, sqerr;
};

struct dent;

struct dep {
	_Atomic unsigned refs;
	struct dent *e;
	unsigned rev;
	enum dep_strategy st;
	json_t *spec;
	size_t ncand;       /* candidates: ms[0..ncand) */
	long shadow;        /* the mirror's index in ms, or -1 */
	size_t nm;          /* ms in all */
	struct served *ms[PSTREAM_MAX_MODELS];
	char ref[PSTREAM_MAX_MODELS][300]; /* "model@v" */
	unsigned task;      /* MLFS_TASK_* */
	json_t *sets;       /* the candidates' feature sets (as the first's
			     * manifest names them), or NULL: rows then
			     * carry only the entity key */
	unsigned char *mask; /* per input: PSTREAM_IN_*, for the log; NULL:
			      * no pii input */
	unsigned char hkey[32]; /* pii values are HMAC-SHA-256'd under it:
				 * the mount's key, derived for the owner */
	uint64_t seed;
	double eps;
	bool rb_on_err, rb_on_acc;
	double rb_err, rb_acc;
	uint64_t rb_min;
	/* the router and its counters, under lock */
	pthread_mutex_t lock;
	double weight[PSTREAM_MAX_MODELS];
	size_t active;      /* blue-green: the candidate serving */
	bool paused;
	char rolled[400];   /* rolled back: why; "" while serving */
	uint64_t route;     /* rows routed so far */
	struct dstat cs[PSTREAM_MAX_MODELS];
	struct dmon *mon;   /* deploymon.c; NULL: "monitor": false */
};

struct dent {
	struct dent *next;  /* under the table's lock */
	_Atomic unsigned refs;
	struct fs *fs;
	char name[256];
	char inc[40];
	bool forgotten;
	struct dep *cur;    /* under the table's lock */
	pthread_mutex_t lock; /* everything below but the commit's */
	pthread_mutex_t commit_lock; /* one segment written at a time */
	struct strbuf pending; /* lines not committed yet */
	uint64_t lines;     /* lines appended so far */
	uint64_t durable;   /* lines committed so far */
	uint64_t segseq;    /* the last segment's number */
	uint64_t *segno, *segend; /* committed segments, end offsets */
	int64_t *segtime;   /* and when each was written */
	size_t nseg, segcap;
	uint64_t size;      /* committed bytes */
	uint64_t seq, seq_reserved; /* ids assigned, and reserved */
	struct dpred *preds; /* a ring of DEP_PREDS_MAX at most */
	uint64_t npred;     /* answers added in all */
	uint64_t *buckets;  /* newest answer per bucket, + 1 */
	size_t nbuckets;
	/* feedback lines taken; labels matched; ids never answered (or
	 * past the ring); ids whose answers were all labelled already */
	uint64_t fb_received, fb_labelled, fb_unknown, fb_repeated;
	struct tailbuf metrics; /* deploymon.c's lines */
	struct tailbuf alerts;  /* deployalert.c's lines, in the store too */
	json_t *astate;     /* "rule|subject": raised (true) or not */
	char retrain_job[300]; /* the retrain job watched, or "" */
};

/* deploy.c */
bool dep_read_only(struct fs *fs);
/* name's latest revision, loaded: a reference (dep_put); -ENOENT with
 * why when there is none yet */
int dep_get(struct fs *fs, const char *name, struct dep **out, char *why,
	    size_t whylen);
void dep_put(struct dep *d);
/* name's latest revision for a file to show, or NULL: *rc 0 when it has
 * no spec yet (the file shows its empty form), else -errno */
struct dep *dep_shown(struct fs *fs, const char *name, int *rc);
/* ids handed out stay below upto, whatever happens next */
int dep_save_ids(struct dent *e, uint64_t upto);
int dep_save_state(struct dep *d);
void dep_change(struct dent *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void dep_iso_time(char *out, size_t cap);

/* deployroute.c */
/* a label for answer p of d's revision, into its candidate's counters */
void dep_label(struct dep *d, const struct dpred *p, const char *truth,
	       size_t tlen);
/* rolled back: the first candidate alone serves */
bool dep_pinned_first(const struct dep *d);
/* under d->lock: roll back to the first candidate, once, saying why */
void dep_rollback_locked(struct dep *d, const char *why);

/* deploymon.c */
struct dmon;
/* d's monitor from its spec (d->mon; NULL for "monitor": false): its
 * references loaded (a missing one is logged, and drift compares
 * nothing).  -ENOMEM */
int dmon_build(struct fs *fs, struct dep *d, char *why, size_t whylen);
void dmon_free(struct dmon *m);
/* under d->lock: an answer that took us microseconds */
void dmon_answer_locked(struct dep *d, const struct pstream_answer *a,
			uint64_t us);
/* the committer's beat: the interval's lines, when one has passed */
void dmon_tick(struct dep *d);
int dmon_show_drift(struct dep *d, struct strbuf *out);
int dmon_show_prom(struct dep *d, struct strbuf *out);
/* seconds between two lines of metrics (monitor.interval); 0: none */
double dmon_interval(const struct dep *d);

/* deployalert.c: what one interval of the monitor saw */
struct drift_result;
struct dmon_view {
	size_t window;      /* rows in the drift window */
	size_t nfeat;       /* the inputs and the prediction */
	const char *const *names;
	const struct drift_result *drift; /* nfeat; NULL: none */
	const bool *numeric, *compared;
	uint64_t req[PSTREAM_MAX_MODELS], err[PSTREAM_MAX_MODELS];
	uint64_t lab[PSTREAM_MAX_MODELS], right[PSTREAM_MAX_MODELS];
	uint64_t p99[PSTREAM_MAX_MODELS]; /* µs */
};
/* the rules judged: alerts raised or cleared, and a retrain started */
void dalert_judge(struct dep *d, const struct dmon_view *v);
/* the committer's beat: a retrain that ended enters the deployment */
void dalert_tick(struct dep *d);
/* alerts kept in the store, and their states, at load */
void dalert_load(struct dent *e);

/* deploylog.c */
int dlog_load(struct dent *e, struct dep *cur);
void dlog_free(struct dent *e);
int dlog_append(struct dent *e, const char *buf, size_t len,
		uint64_t *upto);
int dlog_commit(struct dent *e, uint64_t upto);
void dlog_add_pred(struct dent *e, const char *id, size_t idlen,
		   const struct dpred *p);
/* label the newest unlabelled answer of id: it, or NULL (counted) */
struct dpred *dlog_match(struct dent *e, const char *id, size_t idlen);
void dlog_segment_key(const struct dent *e, uint64_t n, char *out,
		      size_t cap);
ssize_t dlog_read(struct dent *e, char *buf, size_t size, uint64_t off);
/* drop the oldest segments past age seconds, or past bytes in all (0:
 * no bound); the newest is always kept */
void dlog_retain(struct dent *e, int64_t now, uint64_t age, uint64_t bytes);

#endif
