/* SPDX-License-Identifier: MIT */
/*
 * Alerts of a deployment, and the loop they close (DESIGN.md §4).
 *
 * Each interval the monitor (deploymon.c) hands over what it saw; each
 * rule is judged per subject (a feature for drift, a candidate for the
 * rest) and a JSON line is written to alerts when its state changes:
 *
 *   psi             a feature's PSI over monitor.psi
 *   ks_p, chi2_p    a feature's KS (numbers) or chi-squared (categories)
 *                   p-value under it
 *   accuracy_below  a candidate's accuracy from the interval's feedback
 *   error_rate      a candidate's errors per row answered
 *   latency_p99_ms  a candidate's p99
 *
 * Drift is judged once the window has monitor.min_rows rows; a
 * candidate's rules once the interval has monitor.min_requests rows (or
 * labels).  A raised alert is raised once, until it clears.
 *
 * When one is raised and the spec has on_alert, a train job is made from
 * on_alert.retrain on the latest version of its dataset, as the user
 * who wrote the revision (with the groups that uid has now):
 * jobs/<d>-retrain-<n>, one at a time.  When it succeeds, its version
 * enters the deployment as on_alert.then says, by a new revision that
 * is validated as a spec written by that user.  Every step is a line
 * of alerts and of log.  Alerts are kept in the store, and a remount
 * takes up where they were (a raised alert stays raised; a retrain
 * running goes on being watched).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>

#include <jansson.h>

#include "deploy_int.h"
#include "drift.h"
#include "fs.h"
#include "jsonout.h"
#include "mlfs_plugin.h"
#include "repo.h"
#include "runner.h"
#include "store.h"

#define ALERTS_MAX ((size_t)1 << 20) /* bytes kept, in memory and store */

static void alerts_key(const struct dent *e, char *out, size_t cap)
{
	snprintf(out, cap, "deployments/%s/alerts/%s.jsonl", e->name, e->inc);
}

/* Under e->lock: one line (JSON, with its newline) kept and stored. */
static void alert_put_locked(struct dent *e, json_t *line)
{
	char key[700], *text;

	text = json_dumps_short(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!text)
		return;
	tailbuf_append(&e->alerts, text, strlen(text), ALERTS_MAX);
	tailbuf_append(&e->alerts, "\n", 1, ALERTS_MAX);
	free(text);
	if (!dep_read_only(e->fs)) {
		alerts_key(e, key, sizeof(key));
		store_put(e->fs->store, key, e->alerts.sb.buf,
			  e->alerts.sb.len);
	}
}

static json_t *line_new(const struct dep *d)
{
	char when[40];

	dep_iso_time(when, sizeof(when));
	return json_pack("{s:s, s:i}", "time", when, "revision", (int)d->rev);
}

/* A rule of subject judged: a line when its state changes; true when
 * it was raised now. */
static bool judge(struct dep *d, const char *rule, const char *subject,
		  double value, double threshold, bool bad, size_t window)
{
	struct dent *e = d->e;
	char key[600];
	bool was, now = bad;
	json_t *line;

	snprintf(key, sizeof(key), "%s|%s", rule, subject);
	pthread_mutex_lock(&e->lock);
	if (!e->astate)
		e->astate = json_object();
	was = json_is_true(json_object_get(e->astate, key));
	if (was == now) {
		pthread_mutex_unlock(&e->lock);
		return false;
	}
	json_object_set_new(e->astate, key, json_boolean(now));
	line = line_new(d);
	json_object_set_new(line, "rule", json_string(rule));
	json_object_set_new(line, "subject", json_string(subject));
	json_object_set_new(line, "value", json_real(value));
	json_object_set_new(line, "threshold", json_real(threshold));
	json_object_set_new(line, "window", json_integer((json_int_t)window));
	json_object_set_new(line, "state",
			    json_string(now ? "raised" : "cleared"));
	alert_put_locked(e, line);
	pthread_mutex_unlock(&e->lock);
	json_decref(line);
	dep_change(e, "alert %s: %s of %s is %.4g (threshold %.4g)",
		   now ? "raised" : "cleared", rule, subject, value, threshold);
	return now;
}

/* A step of the loop: a line of alerts and of log. */
static void step(struct dep *d, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void step(struct dep *d, const char *what, const char *fmt, ...)
{
	struct dent *e = d->e;
	char detail[600];
	json_t *line = line_new(d);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	json_object_set_new(line, "step", json_string(what));
	json_object_set_new(line, "detail", json_string(detail));
	if (e->retrain_job[0])
		json_object_set_new(line, "job", json_string(e->retrain_job));
	pthread_mutex_lock(&e->lock);
	alert_put_locked(e, line);
	pthread_mutex_unlock(&e->lock);
	json_decref(line);
	dep_change(e, "%s: %s", what, detail);
}

/* Who wrote revision d: the uid its lineage names, its groups as now. */
static int writer_of(struct dep *d, struct fs_ctx *ctx)
{
	struct passwd pw, *pwp = NULL;
	char buf[4096];
	json_t *man;
	int rc = repo_version(d->e->fs, &repo_deployments, d->e->name, d->rev,
			      &man);

	if (rc < 0)
		return rc;
	memset(ctx, 0, sizeof(*ctx));
	ctx->uid = (uid_t)json_integer_value(
		json_object_get(json_object_get(man, "lineage"), "uid"));
	json_decref(man);
	if (getpwuid_r(ctx->uid, &pw, buf, sizeof(buf), &pwp) == 0 && pwp)
		ctx->gid = pw.pw_gid;
	else
		ctx->gid = (gid_t)ctx->uid;
	ctx->umask = 022;
	return 0;
}

/* An alert raised: the retrain job, unless one is under way. */
static void retrain(struct dep *d, const char *why)
{
	json_t *oa = json_object_get(d->spec, "on_alert");
	json_t *tmpl = json_deep_copy(json_object_get(oa, "retrain"));
	struct dent *e = d->e;
	struct problem pb = { 0 };
	struct fs_ctx ctx;
	char prefix[280], job[300], model[300];
	const char *at;
	char *text;
	int rc;

	if (!tmpl || dep_read_only(e->fs))
		goto out;
	pthread_mutex_lock(&e->lock);
	rc = e->retrain_job[0] ? -EBUSY : 0;
	pthread_mutex_unlock(&e->lock);
	if (rc < 0)
		goto out; /* one at a time: this alert rides on it */
	/* the serving model's name, unless the template names one */
	at = strrchr(d->ref[0], '@');
	snprintf(model, sizeof(model), "%.*s",
		 at ? (int)(at - d->ref[0]) : (int)strlen(d->ref[0]),
		 d->ref[0]);
	if (!json_object_get(tmpl, "model"))
		json_object_set_new(tmpl, "model", json_string(model));
	snprintf(prefix, sizeof(prefix), "%s-retrain-", e->name);
	snprintf(job, sizeof(job), "%s%u", prefix,
		 job_last_number(e->fs, prefix) + 1);
	text = json_dumps(tmpl, JSON_COMPACT);
	rc = text ? writer_of(d, &ctx) : -ENOMEM;
	if (rc == 0)
		rc = job_submit(e->fs, job, text, &ctx, &pb);
	free(text);
	if (rc < 0) {
		step(d, "retrain failed", "for %s: %s", why,
		     pb.msg[0] ? pb.msg : strerror(-rc));
		goto out;
	}
	pthread_mutex_lock(&e->lock);
	snprintf(e->retrain_job, sizeof(e->retrain_job), "%s", job);
	pthread_mutex_unlock(&e->lock);
	step(d, "retrain", "for %s: jobs/%s as uid %u", why, job,
	     (unsigned)ctx.uid);
out:
	json_decref(tmpl);
}

void dalert_judge(struct dep *d, const struct dmon_view *v)
{
	json_t *mon = json_object_get(d->spec, "monitor");
	double psi = json_number_value(json_object_get(mon, "psi"));
	double ksp = json_number_value(json_object_get(mon, "ks_p"));
	double chip = json_number_value(json_object_get(mon, "chi2_p"));
	json_t *acc = json_object_get(mon, "accuracy_below");
	json_t *err = json_object_get(mon, "error_rate");
	json_t *lat = json_object_get(mon, "latency_p99_ms");
	uint64_t minreq = (uint64_t)json_integer_value(
		json_object_get(mon, "min_requests"));
	size_t minrows = (size_t)json_integer_value(
		json_object_get(mon, "min_rows"));
	char why[600] = "";

	for (size_t k = 0; v->drift && v->window >= minrows && k < v->nfeat;
	     k++) {
		const struct drift_result *r = &v->drift[k];
		double p = v->numeric[k] ? r->ks_p : r->chi2_p;
		double pt = v->numeric[k] ? ksp : chip;

		if (!v->compared[k] || !isfinite(r->psi))
			continue;
		if (judge(d, "psi", v->names[k], r->psi, psi, r->psi > psi,
			  v->window) &&
		    !why[0])
			snprintf(why, sizeof(why), "psi of %s", v->names[k]);
		if (isfinite(p) &&
		    judge(d, v->numeric[k] ? "ks_p" : "chi2_p", v->names[k], p,
			  pt, p < pt, v->window) &&
		    !why[0])
			snprintf(why, sizeof(why), "%s of %s",
				 v->numeric[k] ? "ks_p" : "chi2_p",
				 v->names[k]);
	}
	for (size_t i = 0; i < d->ncand; i++) {
		uint64_t rows = v->req[i] + v->err[i];

		if (acc && v->lab[i] >= minreq) {
			double a = (double)v->right[i] / (double)v->lab[i];

			if (judge(d, "accuracy_below", d->ref[i], a,
				  json_number_value(acc),
				  a < json_number_value(acc), v->window) &&
			    !why[0])
				snprintf(why, sizeof(why), "accuracy of %s",
					 d->ref[i]);
		}
		if (err && rows >= minreq) {
			double e = (double)v->err[i] / (double)rows;

			if (judge(d, "error_rate", d->ref[i], e,
				  json_number_value(err),
				  e > json_number_value(err), v->window) &&
			    !why[0])
				snprintf(why, sizeof(why), "errors of %s",
					 d->ref[i]);
		}
		if (lat && v->req[i] >= minreq) {
			double ms = (double)v->p99[i] / 1000.0;

			if (judge(d, "latency_p99_ms", d->ref[i], ms,
				  json_number_value(lat),
				  ms > json_number_value(lat), v->window) &&
			    !why[0])
				snprintf(why, sizeof(why), "latency of %s",
					 d->ref[i]);
		}
	}
	if (why[0] && json_object_get(d->spec, "on_alert"))
		retrain(d, why);
}

/* The retrained version enters d as on_alert.then says: a revision. */
static void enter(struct dep *d, const char *model, unsigned ver)
{
	const char *then = json_string_value(json_object_get(
		json_object_get(d->spec, "on_alert"), "then"));
	json_t *spec = json_deep_copy(d->spec);
	size_t serving = dep_pinned_first(d) ? 0 : d->active;
	struct problem pb = { 0 };
	struct fs_ctx ctx;
	char ref[300];
	char *text;
	int rc;

	snprintf(ref, sizeof(ref), "%s@%u", model, ver);
	if (!then)
		then = "canary 10";
	if (serving >= d->ncand)
		serving = 0;
	json_object_del(spec, "epsilon");
	if (strcmp(then, "shadow") == 0) {
		if (d->st == DEP_SHADOW)
			json_array_set_new(json_object_get(spec, "candidates"),
					   1, json_string(ref));
		else
			json_object_set_new(spec, "shadow", json_string(ref));
	} else {
		double w = strncmp(then, "canary ", 7) == 0
				   ? strtod(then + 7, NULL)
				   : 0;

		json_object_set_new(spec, "strategy",
				    json_string(w > 0 ? "canary"
						      : "blue-green"));
		json_object_set_new(
			spec, "candidates",
			w > 0 ? json_pack("[{s:s, s:f}, {s:s, s:f}]", "model",
					  d->ref[serving], "weight", 100 - w,
					  "model", ref, "weight", w)
			      : json_pack("[s, s]", d->ref[serving], ref));
		if (json_is_string(json_object_get(spec, "shadow")) &&
		    strcmp(json_string_value(json_object_get(spec, "shadow")),
			   ref) == 0)
			json_object_del(spec, "shadow");
	}
	text = json_dumps(spec, JSON_COMPACT);
	json_decref(spec);
	rc = text ? writer_of(d, &ctx) : -ENOMEM;
	if (rc == 0)
		rc = deploy_spec(d->e->fs, d->e->name, text, strlen(text), true,
				 true, &ctx, &pb);
	free(text);
	if (rc < 0)
		step(d, "enter failed", "%s as %s: %s", ref, then,
		     pb.msg[0] ? pb.msg : strerror(-rc));
	else
		step(d, "entered", "%s as %s", ref, then);
}

void dalert_tick(struct dep *d)
{
	struct dent *e = d->e;
	char job[300];
	json_t *rec;
	struct job *j;

	pthread_mutex_lock(&e->lock);
	snprintf(job, sizeof(job), "%s", e->retrain_job);
	pthread_mutex_unlock(&e->lock);
	if (!job[0] || dep_read_only(e->fs))
		return;
	if (job_get(e->fs, job, &j) < 0) {
		step(d, "retrain failed", "jobs/%s is gone", job);
		goto done;
	}
	if (!job_has_ended(j)) {
		job_put(j);
		return;
	}
	rec = job_record(j);
	job_put(j);
	if (strcmp(json_string_value(json_object_get(rec, "status"))
			   ? json_string_value(json_object_get(rec, "status"))
			   : "",
		   "succeeded") == 0) {
		const char *model =
			json_string_value(json_object_get(rec, "model"));
		unsigned ver = (unsigned)json_integer_value(
			json_object_get(rec, "model_version"));

		step(d, "retrained", "%s@%u", model ? model : "?", ver);
		if (model && ver)
			enter(d, model, ver);
	} else {
		const char *why =
			json_string_value(json_object_get(rec, "reason"));

		step(d, "retrain failed", "%s", why ? why : "the job failed");
	}
	json_decref(rec);
done:
	pthread_mutex_lock(&e->lock);
	if (strcmp(e->retrain_job, job) == 0)
		e->retrain_job[0] = '\0';
	pthread_mutex_unlock(&e->lock);
}

void dalert_load(struct dent *e)
{
	char key[700], *buf = NULL;
	size_t len = 0;
	const char *p, *end;

	alerts_key(e, key, sizeof(key));
	if (store_get(e->fs->store, key, ALERTS_MAX + 4096, &buf, &len) < 0)
		return;
	tailbuf_append(&e->alerts, buf, len, ALERTS_MAX);
	e->astate = json_object();
	/* the states as the lines left them, and a retrain still watched */
	for (p = buf, end = buf + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		json_t *l = json_loadb(p, nl ? (size_t)(nl - p) : (size_t)(end - p),
				       0, NULL);
		const char *rule = json_string_value(json_object_get(l, "rule"));
		const char *st = json_string_value(json_object_get(l, "state"));
		const char *what = json_string_value(json_object_get(l, "step"));
		const char *job = json_string_value(json_object_get(l, "job"));

		if (rule && st) {
			char k[600];

			snprintf(k, sizeof(k), "%s|%s", rule,
				 json_string_value(json_object_get(l, "subject")));
			json_object_set_new(e->astate, k,
					    json_boolean(strcmp(st, "raised") ==
							 0));
		}
		if (what && strcmp(what, "retrain") == 0 && job)
			snprintf(e->retrain_job, sizeof(e->retrain_job), "%s",
				 job);
		else if (what && strcmp(what, "retrain") != 0)
			e->retrain_job[0] = '\0';
		json_decref(l);
		p = nl ? nl + 1 : end;
	}
	free(buf);
}
