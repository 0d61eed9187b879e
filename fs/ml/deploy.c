/* SPDX-License-Identifier: MIT */
/*
 * Deployments (deploy.h): revisions resolved and validated against
 * their samples, and loaded with their models and router state; the
 * change log; the prediction store as a file (the store itself is
 * deploylog.c's).
 * Routing and feedback are deployroute.c's, the controls deployctl.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "anonkey.h"
#include "deadline.h"
#include "deploy_int.h"
#include "fs.h"
#include "hostfile.h"
#include "jsonout.h"
#include "mlfs_plugin.h"
#include "mlcore.h"
#include "names.h"
#include "repo.h"
#include "store.h"

#define CHANGES_MAX ((size_t)16 << 20) /* bytes of a change log read */
#define SAMPLE_MAX ((size_t)64 << 20)  /* bytes of a sample.csv read */
#define STATE_MAX ((size_t)1 << 20)

static void changes_note(struct fs *fs, const char *name, const char *fmt,
			 ...) __attribute__((format(printf, 3, 4)));

/* fs->deploys: the deployments in memory, and the committing thread. */
struct dtable {
	pthread_mutex_t lock;      /* the list */
	pthread_mutex_t load_lock; /* one load at a time (dep_get) */
	pthread_cond_t cv;
	struct dent *list;
	pthread_t thread;
	bool running, stop;
	unsigned sync_ms;
};

void dep_iso_time(char *out, size_t cap)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, cap - n, ".%03uZ",
		 (unsigned)(ts.tv_nsec / 1000000) % 1000);
}

/* --- the table --- */

bool dep_read_only(struct fs *fs)
{
	return __atomic_load_n(&fs->opts.read_only, __ATOMIC_RELAXED);
}

static void dent_put(struct dent *e)
{
	if (!e || atomic_fetch_sub(&e->refs, 1) != 1)
		return;
	dlog_free(e);
	tailbuf_free(&e->metrics);
	tailbuf_free(&e->alerts);
	json_decref(e->astate);
	pthread_mutex_destroy(&e->lock);
	pthread_mutex_destroy(&e->commit_lock);
	free(e);
}

void dep_put(struct dep *d)
{
	if (!d || atomic_fetch_sub(&d->refs, 1) != 1)
		return;
	for (size_t i = 0; i < d->nm; i++)
		served_put(d->ms[i]);
	dmon_free(d->mon);
	json_decref(d->spec);
	json_decref(d->sets);
	free(d->mask);
	pthread_mutex_destroy(&d->lock);
	dent_put(d->e);
	free(d);
}

/* Commit every store with lines pending; stop: all of them, and end. */
static void *committer(void *arg)
{
	struct fs *fs = arg;
	struct dtable *t = fs->deploys;

	pthread_mutex_lock(&t->lock);
	for (;;) {
		struct timespec ts;
		struct dent **batch = NULL;
		struct dep **cur = NULL;
		size_t n = 0, cap = 0;
		bool stop = t->stop;

		for (struct dent *e = t->list; e; e = e->next)
			cap++;
		batch = cap ? malloc(cap * sizeof(*batch)) : NULL;
		cur = cap ? malloc(cap * sizeof(*cur)) : NULL;
		for (struct dent *e = t->list; batch && cur && e; e = e->next) {
			atomic_fetch_add(&e->refs, 1);
			cur[n] = e->cur; /* the beat of its monitor */
			if (e->cur)
				atomic_fetch_add(&e->cur->refs, 1);
			batch[n++] = e;
		}
		pthread_mutex_unlock(&t->lock);
		for (size_t i = 0; i < n; i++) {
			dmon_tick(cur[i]);
			dep_put(cur[i]);
			dlog_commit(batch[i], UINT64_MAX);
			if (!dep_read_only(fs))
				dlog_retain(batch[i], (int64_t)time(NULL),
					    fs->opts.predictions_keep_secs,
					    fs->opts.predictions_keep_bytes);
			dent_put(batch[i]);
		}
		free(batch);
		free(cur);
		pthread_mutex_lock(&t->lock);
		if (stop)
			break;
		ts = deadline_in(t->sync_ms);
		if (!t->stop)
			cond_wait_until(&t->cv, &t->lock, &ts);
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

static void state_key(const struct dent *e, const char *ext, char *out,
		      size_t cap)
{
	snprintf(out, cap, "deployments/%s/state/%s.%s", e->name, e->inc, ext);
}

/*
 * The ids handed out stop below upto, whatever happens next.  Under
 * e->lock (or alone, at stop); nothing once the deployment is removed.
 */
int dep_save_ids(struct dent *e, uint64_t upto)
{
	char key[700], num[32];
	int len;

	if (dep_read_only(e->fs) || e->forgotten)
		return 0;
	state_key(e, "ids", key, sizeof(key));
	len = snprintf(num, sizeof(num), "%" PRIu64 "\n", upto);
	return store_put(e->fs->store, key, num, (size_t)len);
}

int deploy_start(struct fs *fs, unsigned sync_ms)
{
	struct dtable *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	pthread_mutex_init(&t->load_lock, NULL);
	pthread_cond_init(&t->cv, NULL);
	t->sync_ms = sync_ms ? sync_ms : 1000;
	fs->deploys = t;
	if (pthread_create(&t->thread, NULL, committer, fs) == 0)
		t->running = true;
	return t->running ? 0 : -EAGAIN;
}

void deploy_stop(struct fs *fs)
{
	struct dtable *t = fs->deploys;

	if (!t)
		return;
	if (t->running) {
		pthread_mutex_lock(&t->lock);
		t->stop = true;
		pthread_cond_signal(&t->cv);
		pthread_mutex_unlock(&t->lock);
		pthread_join(t->thread, NULL);
	}
	while (t->list) {
		struct dent *e = t->list;

		t->list = e->next;
		dep_save_ids(e, e->seq); /* a clean stop skips no id */
		dep_put(e->cur);
		dent_put(e);
	}
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->load_lock);
	pthread_mutex_destroy(&t->lock);
	free(t);
	fs->deploys = NULL;
}

/* --- model refs --- */

/*
 * ref (repo_ref_resolve) as a model version writer may read: *man its
 * manifest.  -EINVAL/-EACCES with why.
 */
static int resolve_ref(struct fs *fs, const struct host_user *writer,
		       const char *ref, char *name, size_t nlen,
		       unsigned *ver, json_t **man, char *why, size_t whylen)
{
	json_t *rec;
	int rc;

	*man = NULL;
	rc = repo_ref_resolve(fs, &repo_models, ref, name, nlen, ver, &rec,
			      why, whylen);
	if (rc < 0)
		return rc;
	rc = !writer || host_may_record(writer, rec, R_OK | X_OK) ? 0
								   : -EACCES;
	json_decref(rec);
	if (rc < 0) {
		snprintf(why, whylen, "model \"%s\": permission denied", name);
		return rc;
	}
	return repo_version(fs, &repo_models, name, *ver, man) < 0 ? -EINVAL
								     : 0;
}

static const char *file_hash(json_t *man, const char *file)
{
	return json_string_value(json_object_get(
		json_object_get(json_object_get(man, "files"), file), "hash"));
}

/* The model of man, served.  why on failure. */
static int serve_version(struct fs *fs, json_t *man, struct served **m,
			 char *why, size_t whylen)
{
	const char *hash = file_hash(man, "model");
	int rc;

	if (!hash) {
		snprintf(why, whylen, "the version has no model file");
		return -EINVAL;
	}
	rc = served_get(fs, hash, m, why, whylen);
	return rc < 0 ? -EINVAL : 0;
}

/*
 * Does m answer the rows of its version's sample.csv (man) as recorded?
 * 0, or -EINVAL with why naming the row.
 */
static int validate_sample(struct fs *fs, struct served *m, json_t *man,
			   char *why, size_t whylen)
{
	const char *hash = file_hash(man, "sample.csv");
	char key[96], *buf = NULL;
	size_t len = 0;
	int rc;

	if (!hash)
		return 0; /* a version without a sample: nothing recorded */
	repo_blob_key(hash, key, sizeof(key));
	rc = store_get(fs->store, key, SAMPLE_MAX, &buf, &len);
	if (rc < 0) {
		snprintf(why, whylen, "sample.csv: %s", strerror(-rc));
		return -EINVAL;
	}
	rc = served_check_sample(m, buf, len, why, whylen);
	free(buf);
	return rc;
}

/* --- specs --- */

/*
 * Resolve, load and validate the models of spec: *models the
 * {"name", "version"} list (candidates, then the shadow).  -EINVAL or
 * -EACCES with pb.
 */
static int spec_models(struct fs *fs, json_t *spec, const char *text,
		       const struct host_user *writer, json_t **models,
		       struct problem *pb)
{
	struct served *ms[PSTREAM_MAX_MODELS] = { NULL };
	const char *refs[PSTREAM_MAX_MODELS];
	json_t *sets0 = NULL;
	size_t n = 0, i;
	char why[600];
	json_t *c;
	int rc = 0;

	*models = json_array();
	if (!*models)
		return -ENOMEM;
	json_array_foreach(json_object_get(spec, "candidates"), i, c)
		refs[n++] = json_string_value(json_object_get(c, "model"));
	if (json_object_get(spec, "shadow"))
		refs[n++] = json_string_value(json_object_get(spec, "shadow"));
	for (i = 0; rc == 0 && i < n; i++) {
		char name[256];
		unsigned ver;
		json_t *man;

		rc = resolve_ref(fs, writer, refs[i], name, sizeof(name), &ver,
				 &man, why, sizeof(why));
		if (rc == 0)
			rc = serve_version(fs, man, &ms[i], why, sizeof(why));
		if (rc == 0 && i > 0 &&
		    !served_alike(ms[0], ms[i], why, sizeof(why)))
			rc = -EINVAL;
		if (rc == 0 && i == 0)
			sets0 = json_incref(json_object_get(man, "feature_sets"));
		if (rc == 0 && i > 0 &&
		    !json_equal(sets0 ? sets0 : json_null(),
				json_object_get(man, "feature_sets")
					? json_object_get(man, "feature_sets")
					: json_null())) {
			snprintf(why, sizeof(why),
				 "other feature sets than the first's");
			rc = -EINVAL;
		}
		if (rc == 0)
			rc = validate_sample(fs, ms[i], man, why, sizeof(why));
		for (size_t j = 0; rc == 0 && j < json_array_size(*models);
		     j++) {
			json_t *o = json_array_get(*models, j);

			if (strcmp(json_string_value(json_object_get(o, "name")),
				   name) == 0 &&
			    json_integer_value(json_object_get(o, "version")) ==
				    ver) {
				snprintf(why, sizeof(why), "%s@%u is named "
							   "twice", name, ver);
				rc = -EINVAL;
			}
		}
		if (rc == 0)
			json_array_append_new(*models,
					      json_pack("{s:s, s:i}", "name",
							name, "version",
							(int)ver));
		json_decref(man);
		if (rc < 0)
			problem_field(pb, text, refs[i], "%s", why);
	}
	for (i = 0; i < n; i++)
		served_put(ms[i]);
	json_decref(sets0);
	if (rc < 0) {
		json_decref(*models);
		*models = NULL;
	}
	return rc == -EACCES ? -EACCES : rc;
}

/*
 * A dataset version as monitor.reference: there, and the writer's to
 * read (drift would tell its distribution to whoever reads drift).
 */
static int reference_ok(struct fs *fs, json_t *spec, const char *text,
			const struct host_user *writer, struct problem *pb)
{
	const char *ref = json_string_value(json_object_get(
		json_object_get(spec, "monitor"), "reference"));
	char name[256], why[400] = "";
	json_t *rec = NULL;
	unsigned ver;
	int rc;

	if (!ref || strcmp(ref, "training") == 0)
		return 0;
	rc = repo_ref_resolve(fs, &repo_datasets, ref, name, sizeof(name),
			      &ver, &rec, why, sizeof(why));
	if (rc < 0)
		return problem_field(pb, text, "reference", "%s",
				     why[0] ? why : "no such dataset version");
	if (!host_may_record(writer, rec, R_OK | X_OK))
		rc = -EACCES;
	json_decref(rec);
	if (rc < 0)
		problem_field(pb, text, "reference",
			      "dataset \"%s\": permission denied", name);
	return rc;
}

int deploy_spec(struct fs *fs, const char *name, const char *text,
		size_t len, bool final, bool commit, const struct fs_ctx *ctx,
		struct problem *pb)
{
	struct host_user writer = { ctx->uid, ctx->gid, ctx->pid };
	struct repo_origin origin = { "spec", NULL, NULL, ctx->uid,
				      ctx->pid, 0 };
	json_t *spec = NULL, *models = NULL, *man, *prev = NULL;
	json_t *seed;
	char strat[40];
	unsigned ver;
	bool created;
	int rc;

	rc = deployspec_check(text, len, final, &spec, pb);
	if (rc < 0 || !spec)
		return rc;
	rc = reference_ok(fs, spec, text, &writer, pb);
	if (rc == 0)
		rc = spec_models(fs, spec, text, &writer, &models, pb);
	if (rc < 0 || !commit) {
		json_decref(spec);
		json_decref(models);
		return rc;
	}
	/* the spec's seed, else the last revision's, else a new one */
	seed = json_incref(json_object_get(spec, "seed"));
	if (!seed && repo_version(fs, &repo_deployments, name, 0, &prev) == 0)
		seed = json_incref(json_object_get(prev, "seed"));
	if (!seed) {
		uint64_t s = 0;

		if (getrandom(&s, sizeof(s), 0) != (ssize_t)sizeof(s))
			s = (uint64_t)time(NULL) ^ (uint64_t)getpid();
		seed = json_integer((json_int_t)(s >> 12));
	}
	json_decref(prev);
	man = json_pack("{s:s, s:o, s:o, s:o}", "deployment", name, "spec",
			spec, "models", models, "seed", seed);
	if (!man)
		return -ENOMEM;
	snprintf(strat, sizeof(strat), "%s",
		 json_string_value(json_object_get(spec, "strategy")));
	rc = repo_commit(fs, &repo_deployments, name, man, &origin, &ver,
			 &created);
	json_decref(man);
	if (rc == 0 && created) {
		fs_log(fs, 6, "deployments/%s: v%u", name, ver);
		changes_note(fs, name, "revision %u: %s", ver, strat);
	}
	return rc;
}

/* --- revisions in memory --- */

/* The router's state: weights, promotion, pause, rollback. */
int dep_save_state(struct dep *d)
{
	json_t *w = json_array(), *st;
	char key[700], *text;
	int rc;

	if (dep_read_only(d->e->fs))
		return 0;
	for (size_t i = 0; w && i < d->ncand; i++)
		json_array_append_new(w, json_real(d->weight[i]));
	st = json_pack("{s:i, s:o, s:i, s:b, s:s}", "revision", (int)d->rev,
		       "weights", w, "active", (int)d->active, "paused",
		       d->paused, "rolled_back", d->rolled);
	text = st ? json_dumps(st, JSON_COMPACT) : NULL;
	json_decref(st);
	if (!text)
		return -ENOMEM;
	state_key(d->e, "json", key, sizeof(key));
	rc = store_put(d->e->fs->store, key, text, strlen(text));
	free(text);
	return rc;
}

static void load_state(struct dep *d)
{
	char key[700], *buf = NULL;
	size_t len;
	json_t *st, *w;

	state_key(d->e, "json", key, sizeof(key));
	if (store_get(d->e->fs->store, key, STATE_MAX, &buf, &len) < 0)
		return;
	st = json_loadb(buf, len, 0, NULL);
	free(buf);
	w = json_object_get(st, "weights");
	if (json_integer_value(json_object_get(st, "revision")) == d->rev &&
	    json_array_size(w) == d->ncand) {
		for (size_t i = 0; i < d->ncand; i++)
			d->weight[i] = json_number_value(json_array_get(w, i));
		d->active = (size_t)json_integer_value(
			json_object_get(st, "active"));
		if (d->active >= d->ncand)
			d->active = 0;
		d->paused = json_is_true(json_object_get(st, "paused"));
		snprintf(d->rolled, sizeof(d->rolled), "%s",
			 json_string_value(json_object_get(st,
							   "rolled_back"))
				 ? json_string_value(json_object_get(
					   st, "rolled_back"))
				 : "");
	}
	json_decref(st);
}

/* The ids reserved in the store. */
static void load_ids(struct dent *e)
{
	char key[700], *buf = NULL;
	size_t len;

	state_key(e, "ids", key, sizeof(key));
	if (store_get(e->fs->store, key, 64, &buf, &len) < 0)
		return;
	{
		char num[80];

		snprintf(num, sizeof(num), "%.*s", (int)len, buf);
		e->seq = e->seq_reserved = strtoull(num, NULL, 10);
	}
	free(buf);
}

/* Append a line to the change log of name's incarnation inc. */
static void changes_append(struct fs *fs, const char *name, const char *inc,
			   const char *line)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	char key[700], *buf = NULL, *all;
	size_t len = 0, n = strlen(line);

	if (dep_read_only(fs))
		return;
	snprintf(key, sizeof(key), "deployments/%s/changes/%s.log", name, inc);
	pthread_mutex_lock(&lock);
	if (store_get(fs->store, key, CHANGES_MAX, &buf, &len) < 0)
		len = 0;
	all = malloc(len + n);
	if (all) {
		if (len)
			memcpy(all, buf, len);
		memcpy(all + len, line, n);
		store_put(fs->store, key, all, len + n);
		free(all);
	}
	pthread_mutex_unlock(&lock);
	free(buf);
	fs_log(fs, 6, "deployments/%s: %.*s", name, (int)n - 1, line);
}

static void vchange(struct fs *fs, const char *name, const char *inc,
		    const char *fmt, va_list ap)
{
	char when[40], line[1200];
	int n;

	dep_iso_time(when, sizeof(when));
	n = snprintf(line, sizeof(line), "%s ", when);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	strcat(line, "\n");
	changes_append(fs, name, inc, line);
}

void dep_change(struct dent *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vchange(e->fs, e->name, e->inc, fmt, ap);
	va_end(ap);
}

/* A change of name, whose incarnation the record gives. */
static void changes_note(struct fs *fs, const char *name, const char *fmt,
			 ...)
{
	json_t *rec;
	va_list ap;

	if (repo_get(fs, &repo_deployments, name, &rec) < 0)
		return;
	va_start(ap, fmt);
	vchange(fs, name,
		json_string_value(json_object_get(rec, "incarnation"))
			? json_string_value(json_object_get(rec,
							    "incarnation"))
			: "",
		fmt, ap);
	va_end(ap);
	json_decref(rec);
}

/* Does version man of a model name column as pii in its dataset? */
static bool pii_in(struct fs *fs, json_t *man, const char *column)
{
	json_t *ds = json_object_get(man, "dataset"), *dman, *c;
	const char *name = json_string_value(json_object_get(ds, "name"));
	bool pii = false;
	size_t i;

	if (!name || repo_version(fs, &repo_datasets, name,
				  (unsigned)json_integer_value(
					  json_object_get(ds, "version")),
				  &dman) < 0)
		return false;
	json_array_foreach(json_object_get(json_object_get(dman, "schema"),
					   "columns"),
			   i, c) {
		const char *role = json_string_value(json_object_get(c, "role"));

		if (role && strcmp(role, "pii") == 0 &&
		    strcmp(json_string_value(json_object_get(c, "name")),
			   column) == 0)
			pii = true;
	}
	json_decref(dman);
	return pii;
}

/*
 * What the log keeps of each input: a column any candidate's dataset
 * marks pii is hashed under the mount's anon_key (HMAC-SHA-256, with a
 * key derived for the deployment's owner, so that one user cannot
 * hash guesses to match another's column) or, without a key, left out.
 */
static int input_mask(struct fs *fs, struct dep *d, json_t **mans,
		      uid_t owner)
{
	char *const *names;
	size_t n = served_inputs(d->ms[0], &names);
	bool any = false;

	d->mask = calloc(n + 1, 1);
	if (!d->mask)
		return -ENOMEM;
	for (size_t k = 0; k < n; k++) {
		for (size_t i = 0; i < d->nm && !d->mask[k]; i++)
			if (mans[i] && pii_in(fs, mans[i], names[k]))
				d->mask[k] = fs->anon_key ? PSTREAM_IN_HASH
							  : PSTREAM_IN_DROP;
		any |= d->mask[k] != PSTREAM_IN_KEEP;
	}
	if (!any) {
		free(d->mask);
		d->mask = NULL;
		return 0;
	}
	if (fs->anon_key && anon_owner_key(fs, owner, d->hkey) < 0)
		return -EIO;
	return 0;
}

/* Revision rev of e's deployment, its models loaded. */
static int dep_build(struct fs *fs, struct dent *e, unsigned rev,
		     struct dep **out, char *why, size_t whylen)
{
	json_t *mans[PSTREAM_MAX_MODELS] = { NULL };
	struct dep *d;
	json_t *man, *rb, *m, *rec;
	uid_t owner = 0;
	size_t i;
	int rc;

	*out = NULL;
	if (repo_get(fs, &repo_deployments, e->name, &rec) == 0) {
		owner = (uid_t)json_integer_value(json_object_get(rec, "uid"));
		json_decref(rec);
	}
	rc = repo_version(fs, &repo_deployments, e->name, rev, &man);
	if (rc < 0) {
		snprintf(why, whylen, "no revision v%u", rev);
		return rc;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		json_decref(man);
		return -ENOMEM;
	}
	d->refs = 1;
	d->e = e;
	atomic_fetch_add(&e->refs, 1);
	d->rev = rev;
	pthread_mutex_init(&d->lock, NULL);
	d->spec = json_incref(json_object_get(man, "spec"));
	d->st = deployspec_strategy(d->spec);
	d->seed = (uint64_t)json_integer_value(json_object_get(man, "seed"));
	d->eps = json_number_value(json_object_get(d->spec, "epsilon"));
	d->ncand = json_array_size(json_object_get(d->spec, "candidates"));
	d->shadow = -1;
	rb = json_object_get(d->spec, "rollback");
	d->rb_on_err = json_object_get(rb, "error_rate") != NULL;
	d->rb_on_acc = json_object_get(rb, "accuracy_below") != NULL;
	d->rb_err = json_number_value(json_object_get(rb, "error_rate"));
	d->rb_acc = json_number_value(json_object_get(rb, "accuracy_below"));
	d->rb_min = (uint64_t)json_integer_value(
		json_object_get(rb, "min_requests"));
	json_array_foreach(json_object_get(man, "models"), i, m) {
		const char *name = json_string_value(json_object_get(m, "name"));
		unsigned ver = (unsigned)json_integer_value(
			json_object_get(m, "version"));
		json_t *mman;

		if (rc < 0 || i >= PSTREAM_MAX_MODELS)
			break;
		snprintf(d->ref[i], sizeof(d->ref[i]), "%s@%u", name, ver);
		rc = repo_version(fs, &repo_models, name ? name : "", ver,
				  &mman);
		if (rc < 0) {
			snprintf(why, whylen, "model %s is gone", d->ref[i]);
			break;
		}
		rc = serve_version(fs, mman, &d->ms[i], why, whylen);
		mans[i] = mman;
		if (rc == 0)
			d->nm = i + 1;
	}
	json_decref(man);
	if (rc == 0 && d->nm)
		rc = input_mask(fs, d, mans, owner);
	if (rc == 0 && d->nm)
		d->sets = json_incref(json_object_get(mans[0], "feature_sets"));
	for (i = 0; i < PSTREAM_MAX_MODELS; i++)
		json_decref(mans[i]);
	if (rc == 0 && d->nm > d->ncand)
		d->shadow = d->st == DEP_SHADOW ? 1 : (long)d->ncand;
	if (d->st == DEP_SHADOW)
		d->shadow = 1;
	if (rc == 0 && d->nm == 0)
		rc = -EINVAL;
	if (rc < 0) {
		dep_put(d);
		return rc == -ENOENT ? -EIO : rc;
	}
	d->task = served_task(d->ms[0]);
	for (i = 0; i < d->ncand; i++)
		d->weight[i] = json_number_value(json_object_get(
			json_array_get(json_object_get(d->spec, "candidates"), i),
			"weight"));
	rc = dmon_build(fs, d, why, whylen);
	if (rc < 0) {
		dep_put(d);
		return rc;
	}
	load_state(d);
	*out = d;
	return 0;
}

/*
 * The deployment name's latest revision, loaded (a reference): its
 * entry made (and its log read again) on first use.  -ENOENT with why
 * when it has no revision yet.
 */
/*
 * Under t->lock: name's entry of incarnation inc (one of another
 * incarnation, made again under the name, is dropped), referenced, or
 * NULL; *d its dep referenced when it is revision rev.
 */
static struct dent *dent_find_locked(struct dtable *t, const char *name,
				     const char *inc, unsigned rev,
				     struct dep **d)
{
	struct dent *e, **pp;

	*d = NULL;
	for (pp = &t->list; (e = *pp); pp = &e->next)
		if (strcmp(e->name, name) == 0)
			break;
	if (e && strcmp(e->inc, inc) != 0) {
		*pp = e->next;
		dep_put(e->cur);
		dent_put(e);
		return NULL;
	}
	if (!e)
		return NULL;
	atomic_fetch_add(&e->refs, 1);
	if (e->cur && e->cur->rev == rev) {
		*d = e->cur;
		atomic_fetch_add(&(*d)->refs, 1);
	}
	return e;
}

/* A new entry for name's incarnation inc: its ids and log read again,
 * with revision rev (*d, referenced) in it.  Not in the table yet. */
static int dent_load(struct fs *fs, const char *name, const char *inc,
		     unsigned rev, struct dent **out, struct dep **d,
		     char *why, size_t whylen)
{
	struct dent *e = calloc(1, sizeof(*e));
	int rc;

	*out = NULL;
	*d = NULL;
	if (!e)
		return -ENOMEM;
	e->refs = 1;
	e->fs = fs;
	snprintf(e->name, sizeof(e->name), "%s", name);
	snprintf(e->inc, sizeof(e->inc), "%s", inc);
	pthread_mutex_init(&e->lock, NULL);
	pthread_mutex_init(&e->commit_lock, NULL);
	load_ids(e);
	dalert_load(e);
	rc = dep_build(fs, e, rev, d, why, whylen);
	if (rc == 0)
		rc = dlog_load(e, *d);
	if (rc < 0) {
		dep_put(*d);
		*d = NULL;
		dent_put(e);
		return rc;
	}
	*out = e;
	return 0;
}

/*
 * The latest revision of name, loaded; its log read again when it is
 * first used.  Loads (a revision's models, a log's segments) run one at
 * a time under t->load_lock, not under the table's lock, which guards
 * the list alone: the deployments already loaded go on meanwhile.
 */
int dep_get(struct fs *fs, const char *name, struct dep **out, char *why,
	    size_t whylen)
{
	struct dtable *t = fs->deploys;
	struct dent *e, *fresh = NULL;
	bool built = true;
	struct dep *d;
	const char *inc;
	unsigned rev;
	json_t *rec;
	int rc;

	*out = NULL;
	rc = repo_get(fs, &repo_deployments, name, &rec);
	if (rc < 0)
		return rc;
	rev = (unsigned)json_integer_value(json_object_get(rec, "latest"));
	inc = json_string_value(json_object_get(rec, "incarnation"));
	inc = inc ? inc : "";
	if (rev == 0) {
		json_decref(rec);
		snprintf(why, whylen, "no spec yet: write one to spec first");
		return -ENOENT;
	}
	pthread_mutex_lock(&t->lock);
	e = dent_find_locked(t, name, inc, rev, &d);
	pthread_mutex_unlock(&t->lock);
	if (d) {
		dent_put(e);
		json_decref(rec);
		*out = d;
		return 0;
	}
	dent_put(e);
	pthread_mutex_lock(&t->load_lock);
	pthread_mutex_lock(&t->lock);
	e = dent_find_locked(t, name, inc, rev, &d);
	pthread_mutex_unlock(&t->lock);
	if (!d && !e)
		rc = dent_load(fs, name, inc, rev, &fresh, &d, why, whylen);
	else if (!d)
		rc = dep_build(fs, e, rev, &d, why, whylen);
	else
		built = false; /* loaded meanwhile: d is the caller's already */
	if (rc == 0 && built) {
		/* d's reference is the table's; one more is the caller's */
		pthread_mutex_lock(&t->lock);
		if (fresh) {
			fresh->cur = d;
			fresh->next = t->list;
			t->list = fresh;
		} else if (e->cur != d) {
			dep_put(e->cur);
			e->cur = d;
		}
		atomic_fetch_add(&d->refs, 1);
		pthread_mutex_unlock(&t->lock);
	}
	pthread_mutex_unlock(&t->load_lock);
	dent_put(e);
	json_decref(rec);
	if (rc == 0)
		*out = d;
	return rc;
}

struct doomed {
	char **keys;
	size_t n, cap;
	size_t plen;
};

/* Keys under a removed deployment's prefix that are its data. */
static int doom(void *arg, const char *key, const struct store_stat *st)
{
	struct doomed *d = arg;
	const char *rest = key + d->plen;

	(void)st;
	if (strncmp(rest, "predictions/", 12) != 0 &&
	    strncmp(rest, "state/", 6) != 0 && strncmp(rest, "changes/", 8) != 0)
		return 0;
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		char **k = realloc(d->keys, cap * sizeof(*k));

		if (!k)
			return -ENOMEM;
		d->keys = k;
		d->cap = cap;
	}
	d->keys[d->n] = strdup(key);
	return d->keys[d->n++] ? 0 : -ENOMEM;
}

void deploy_forget(struct fs *fs, const char *name)
{
	struct dtable *t = fs->deploys;
	struct dent **pp, *e = NULL;
	struct doomed d = { 0 };
	char prefix[300];

	pthread_mutex_lock(&t->lock);
	for (pp = &t->list; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->name, name) == 0) {
			e = *pp;
			*pp = e->next;
			break;
		}
	}
	pthread_mutex_unlock(&t->lock);
	if (e) {
		pthread_mutex_lock(&e->lock);
		e->forgotten = true;
		pthread_mutex_unlock(&e->lock);
		dep_put(e->cur);
		e->cur = NULL;
		dent_put(e);
	}
	/* its prediction store, state and change log go with it */
	snprintf(prefix, sizeof(prefix), "deployments/%s/", name);
	d.plen = strlen(prefix);
	store_list(fs->store, prefix, doom, &d);
	for (size_t i = 0; i < d.n; i++) {
		store_del(fs->store, d.keys[i]);
		free(d.keys[i]);
	}
	free(d.keys);
}

/* The change log, as the log file shows it. */
int deploy_show_changes(struct fs *fs, const char *name, struct strbuf *out)
{
	char key[700], *buf = NULL;
	const char *inc;
	size_t len = 0;
	json_t *rec;
	int rc = repo_get(fs, &repo_deployments, name, &rec);

	if (rc < 0)
		return rc;
	inc = json_string_value(json_object_get(rec, "incarnation"));
	snprintf(key, sizeof(key), "deployments/%s/changes/%s.log", name,
		 inc ? inc : "");
	json_decref(rec);
	rc = store_get(fs->store, key, CHANGES_MAX, &buf, &len);
	if (rc == 0)
		rc = sb_append(out, buf, len);
	free(buf);
	return rc == -ENOENT ? 0 : rc;
}

/* --- the prediction store as a file --- */

struct dep *dep_shown(struct fs *fs, const char *name, int *rc)
{
	char why[300] = "";
	struct dep *d;

	*rc = dep_get(fs, name, &d, why, sizeof(why));
	if (*rc == -ENOENT && why[0])
		*rc = 0; /* no spec yet */
	return *rc < 0 ? NULL : d;
}

int deploy_file_size(struct fs *fs, const char *name,
		     enum dep_stream_file which, uint64_t *size)
{
	int rc;
	struct dep *d = dep_shown(fs, name, &rc);

	*size = 0;
	if (!d)
		return rc;
	pthread_mutex_lock(&d->e->lock);
	*size = which == DEP_PREDICTIONS ? d->e->size
		: which == DEP_METRICS	 ? tailbuf_size(&d->e->metrics)
					 : tailbuf_size(&d->e->alerts);
	pthread_mutex_unlock(&d->e->lock);
	dep_put(d);
	return 0;
}

ssize_t deploy_file_read(struct fs *fs, const char *name,
			 enum dep_stream_file which, char *buf, size_t size,
			 uint64_t off)
{
	ssize_t n;
	int rc;
	struct dep *d = dep_shown(fs, name, &rc);

	if (!d)
		return rc;
	if (which == DEP_PREDICTIONS) {
		n = dlog_read(d->e, buf, size, off);
	} else {
		pthread_mutex_lock(&d->e->lock);
		n = (ssize_t)tailbuf_read(which == DEP_METRICS
						  ? &d->e->metrics
						  : &d->e->alerts,
					  buf, size, off);
		pthread_mutex_unlock(&d->e->lock);
	}
	dep_put(d);
	return n;
}
