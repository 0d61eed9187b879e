/* SPDX-License-Identifier: MIT */
/*
 * Deployment specs (deployspec.h): the fields, their values and defaults,
 * checked with the position of the first problem.  The JSON syntax, and
 * what a write cut in the middle of a value may leave, is judged as for
 * train specs (spec_check_text).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployspec.h"
#include "names.h"
#include "featspec.h"
#include "spec.h"

static const char *const strategies[] = {
	[DEP_SINGLE] = "single",
	[DEP_BLUE_GREEN] = "blue-green",
	[DEP_CANARY] = "canary",
	[DEP_EPSILON_GREEDY] = "epsilon-greedy",
	[DEP_THOMPSON] = "thompson",
	[DEP_SHADOW] = "shadow",
};

#define NSTRATEGIES (sizeof(strategies) / sizeof(strategies[0]))

static const char *const fields[] = { "strategy", "candidates", "shadow",
				      "seed",     "epsilon",    "rollback",
				      "monitor",  "on_alert",   NULL };
static const char *const candidate_fields[] = { "model", "weight", NULL };
static const char *const rollback_fields[] = { "error_rate", "accuracy_below",
					       "min_requests", NULL };
static const char *const on_alert_fields[] = { "retrain", "then", NULL };

const char *deployspec_strategy_name(enum dep_strategy s)
{
	return (size_t)s < NSTRATEGIES ? strategies[s] : "?";
}

enum dep_strategy deployspec_strategy(json_t *spec)
{
	const char *s = json_string_value(json_object_get(spec, "strategy"));

	for (size_t i = 0; s && i < NSTRATEGIES; i++)
		if (strcmp(s, strategies[i]) == 0)
			return (enum dep_strategy)i;
	return DEP_SINGLE;
}

/* A model ref: "name", "name@<n>" or "name@<alias>" (latest included). */
static bool ref_ok(const char *ref)
{
	char name[256];
	const char *at;
	size_t n;

	if (!ref)
		return false;
	at = strchr(ref, '@');
	n = at ? (size_t)(at - ref) : strlen(ref);
	if (n == 0 || n >= sizeof(name))
		return false;
	memcpy(name, ref, n);
	name[n] = '\0';
	if (node_name_check(name, NULL) < 0)
		return false;
	if (!at)
		return true;
	if (at[1] >= '0' && at[1] <= '9') {
		unsigned v;

		return name_ref_parse(ref, name, sizeof(name), &v) == 0;
	}
	return strcmp(at + 1, "latest") == 0 ||
	       node_name_check(at + 1, NULL) == 0;
}

static int ref_problem(struct problem *pb, const char *text, const char *ref,
		       const char *what)
{
	return problem_field(pb, text, ref,
			     "%s must be a model as name, name@<version> or "
			     "name@<alias>",
			     what);
}

/* candidates: refs or {"model", "weight"}; made objects with weights. */
static int check_candidates(json_t *spec, enum dep_strategy st,
			    const char *text, struct problem *pb)
{
	json_t *cl = json_object_get(spec, "candidates");
	size_t i, n = json_array_size(cl), want = 0;
	double sum = 0;
	json_t *c;

	if (!json_is_array(cl) || n == 0)
		return problem_field(pb, text, "candidates",
				     "%s: a list of one model or more",
				     cl ? "must be" : "missing");
	if (n > DEPSPEC_MAX_CANDIDATES)
		return problem_field(pb, text, "candidates",
				     "more than %d candidates",
				     DEPSPEC_MAX_CANDIDATES);
	if (st == DEP_SINGLE)
		want = 1;
	else if (st == DEP_BLUE_GREEN || st == DEP_SHADOW)
		want = 2;
	if (want && n != want)
		return problem_field(pb, text, "candidates",
				     "%s takes %zu candidate%s, not %zu",
				     strategies[st], want, want > 1 ? "s" : "",
				     n);
	if (!want && n < 2)
		return problem_field(pb, text, "candidates",
				     "%s takes two candidates or more",
				     strategies[st]);
	json_array_foreach(cl, i, c) {
		json_t *obj = c, *w;
		const char *ref;
		int rc;

		if (json_is_string(c)) {
			obj = json_pack("{s:O}", "model", c);
			if (!obj || json_array_set_new(cl, i, obj) < 0)
				return -ENOMEM;
		}
		if (!json_is_object(obj))
			return problem_field(pb, text, "candidates",
					     "candidate %zu: must be a model "
					     "or {\"model\": ..., \"weight\": "
					     "...}",
					     i + 1);
		rc = problem_check_fields(pb, text, obj, candidate_fields,
					  "a candidate");
		if (rc < 0)
			return rc;
		ref = json_string_value(json_object_get(obj, "model"));
		if (!ref_ok(ref))
			return ref ? ref_problem(pb, text, ref, "\"model\"")
				   : problem_field(pb, text, "candidates",
						   "candidate %zu: \"model\" "
						   "missing",
						   i + 1);
		for (size_t j = 0; j < i; j++)
			if (strcmp(ref, json_string_value(json_object_get(
					     json_array_get(cl, j),
					     "model"))) == 0)
				return problem_field(pb, text, ref,
						     "named twice");
		w = json_object_get(obj, "weight");
		if (w && (!json_is_number(w) || json_number_value(w) < 0 ||
			  !isfinite(json_number_value(w))))
			return problem_field(pb, text, "weight",
					     "must be a number, 0 or more");
		if (st == DEP_CANARY && !w)
			return problem_field(pb, text, ref,
					     "a canary candidate needs a "
					     "\"weight\"");
		if (st != DEP_CANARY)
			json_object_set_new(obj, "weight",
					    json_real(100.0 / (double)n));
		sum += json_number_value(json_object_get(obj, "weight"));
	}
	if (st == DEP_CANARY && !(sum > 0))
		return problem_field(pb, text, "candidates",
				     "the weights add up to 0: no candidate "
				     "would answer");
	return 0;
}

static int check_rollback(json_t *spec, const char *text, struct problem *pb)
{
	json_t *rb = json_object_get(spec, "rollback");
	json_t *er, *acc, *mr;
	int rc;

	if (!rb)
		return 0;
	if (!json_is_object(rb))
		return problem_field(pb, text, "rollback",
				     "must be an object: error_rate, "
				     "accuracy_below, min_requests");
	rc = problem_check_fields(pb, text, rb, rollback_fields, "rollback");
	if (rc < 0)
		return rc;
	er = json_object_get(rb, "error_rate");
	acc = json_object_get(rb, "accuracy_below");
	mr = json_object_get(rb, "min_requests");
	if (er && (!json_is_number(er) || !(json_number_value(er) >= 0) ||
		   json_number_value(er) > 1))
		return problem_field(pb, text, "error_rate",
				     "must be a number from 0 to 1");
	if (acc && (!json_is_number(acc) || !(json_number_value(acc) >= 0) ||
		    json_number_value(acc) > 1))
		return problem_field(pb, text, "accuracy_below",
				     "must be a number from 0 to 1");
	if (mr && (!json_is_integer(mr) || json_integer_value(mr) < 1 ||
		   json_integer_value(mr) > 1000000000))
		return problem_field(pb, text, "min_requests",
				     "must be a whole number, 1 or more");
	if (!er && !acc)
		return problem_field(pb, text, "rollback",
				     "names no rule: give error_rate or "
				     "accuracy_below");
	if (!mr)
		json_object_set_new(rb, "min_requests", json_integer(100));
	return 0;
}

static const char *const monitor_fields[] = {
	"interval", "window",      "reference",  "psi",
	"ks_p",     "chi2_p",      "min_rows",   "accuracy_below",
	"error_rate", "latency_p99_ms", "min_requests", NULL
};

/* A probability threshold field of monitor, if given. */
static int check_p(json_t *mon, const char *k, const char *text,
		   struct problem *pb)
{
	json_t *v = json_object_get(mon, k);

	if (v && (!json_is_number(v) || !(json_number_value(v) > 0) ||
		  json_number_value(v) >= 1))
		return problem_field(pb, text, k,
				     "must be a number between 0 and 1");
	return 0;
}

/*
 * "monitor": false, or an object; its full form has every field, the
 * interval in seconds.
 */
static int check_monitor(json_t *spec, const char *text, struct problem *pb)
{
	json_t *mon = json_object_get(spec, "monitor");
	json_t *iv, *win, *ref, *psi;
	double secs = 10;
	json_t *v;
	int rc;

	if (json_is_false(mon))
		return 0;
	if (!mon) {
		mon = json_object();
		json_object_set_new(spec, "monitor", mon);
	}
	if (!json_is_object(mon))
		return problem_field(pb, text, "monitor",
				     "must be false or an object: interval, "
				     "window, reference, psi, ks_p, chi2_p");
	rc = problem_check_fields(pb, text, mon, monitor_fields, "monitor");
	if (rc < 0)
		return rc;
	iv = json_object_get(mon, "interval");
	win = json_object_get(mon, "window");
	ref = json_object_get(mon, "reference");
	psi = json_object_get(mon, "psi");
	if (json_is_string(iv)) {
		int64_t s;

		if (featspec_duration(json_string_value(iv), &s) < 0)
			return problem_field(pb, text, "interval",
					     "must be a duration (\"10s\", "
					     "\"5m\") or seconds");
		secs = (double)s;
	} else if (iv) {
		secs = json_is_number(iv) ? json_number_value(iv) : -1;
	}
	if (!(secs >= 0.1) || secs > 86400)
		return problem_field(pb, text, "interval",
				     "must be from 0.1 s to a day");
	json_object_set_new(mon, "interval", json_real(secs));
	if (win && (!json_is_integer(win) || json_integer_value(win) < 10 ||
		    json_integer_value(win) > 1000000))
		return problem_field(pb, text, "window",
				     "must be a whole number of rows, 10 to "
				     "1000000");
	if (!win)
		json_object_set_new(mon, "window", json_integer(1000));
	if (ref && (!json_is_string(ref) ||
		    (strcmp(json_string_value(ref), "training") != 0 &&
		     !ref_ok(json_string_value(ref)))))
		return problem_field(pb, text, "reference",
				     "must be \"training\" or a dataset "
				     "version (\"name@<n>\")");
	if (!ref)
		json_object_set_new(mon, "reference", json_string("training"));
	if (psi && (!json_is_number(psi) || !(json_number_value(psi) > 0)))
		return problem_field(pb, text, "psi",
				     "must be a number above 0");
	if (!psi)
		json_object_set_new(mon, "psi", json_real(0.2));
	rc = check_p(mon, "ks_p", text, pb);
	if (rc == 0)
		rc = check_p(mon, "chi2_p", text, pb);
	if (rc < 0)
		return rc;
	if (!json_object_get(mon, "ks_p"))
		json_object_set_new(mon, "ks_p", json_real(0.01));
	if (!json_object_get(mon, "chi2_p"))
		json_object_set_new(mon, "chi2_p", json_real(0.01));
	/* the rules of candidates: off unless given */
	for (size_t i = 0; i < 2; i++) {
		const char *k = i ? "error_rate" : "accuracy_below";
		json_t *r = json_object_get(mon, k);

		if (r && (!json_is_number(r) || !(json_number_value(r) >= 0) ||
			  json_number_value(r) > 1))
			return problem_field(pb, text, k,
					     "must be a number from 0 to 1");
	}
	v = json_object_get(mon, "latency_p99_ms");
	if (v && (!json_is_number(v) || !(json_number_value(v) > 0)))
		return problem_field(pb, text, "latency_p99_ms",
				     "must be a number of milliseconds above "
				     "0");
	for (size_t i = 0; i < 2; i++) {
		const char *k = i ? "min_requests" : "min_rows";
		json_t *r = json_object_get(mon, k);

		if (r && (!json_is_integer(r) || json_integer_value(r) < 1 ||
			  json_integer_value(r) > 1000000000))
			return problem_field(pb, text, k,
					     "must be a whole number, 1 or "
					     "more");
	}
	if (!json_object_get(mon, "min_rows"))
		json_object_set_new(
			mon, "min_rows",
			json_integer(json_integer_value(json_object_get(
					     mon, "window")) < 100
					     ? json_integer_value(json_object_get(
						       mon, "window"))
					     : 100));
	if (!json_object_get(mon, "min_requests"))
		json_object_set_new(mon, "min_requests", json_integer(20));
	return 0;
}

/*
 * "on_alert": {"retrain": {train spec template}, "then": "canary N" |
 * "shadow" | "blue-green"}: the template needs a dataset (its latest
 * version is trained on); the rest is judged when the job is made.
 */
static int check_on_alert(json_t *spec, const char *text, struct problem *pb)
{
	json_t *oa = json_object_get(spec, "on_alert");
	json_t *rt, *then;
	const char *t;
	char *end;
	long w;
	int rc;

	if (!oa)
		return 0;
	if (!json_is_object(oa))
		return problem_field(pb, text, "on_alert",
				     "must be an object: retrain, then");
	rc = problem_check_fields(pb, text, oa, on_alert_fields, "on_alert");
	if (rc < 0)
		return rc;
	if (!json_is_object(json_object_get(spec, "monitor")))
		return problem_field(pb, text, "on_alert",
				     "alerts need \"monitor\"");
	rt = json_object_get(oa, "retrain");
	then = json_object_get(oa, "then");
	if (!json_is_object(rt) ||
	    !json_is_string(json_object_get(rt, "dataset")))
		return problem_field(pb, text, rt ? "retrain" : "on_alert",
				     "\"retrain\" must be a train spec with "
				     "a \"dataset\"");
	t = json_string_value(then);
	if (!then) {
		json_object_set_new(oa, "then", json_string("canary 10"));
		return 0;
	}
	if (t && (strcmp(t, "shadow") == 0 || strcmp(t, "blue-green") == 0))
		return 0;
	w = t && strncmp(t, "canary ", 7) == 0 ? strtol(t + 7, &end, 10) : 0;
	if (w < 1 || w > 99 || *end)
		return problem_field(pb, text, "then",
				     "must be \"canary N\" (N from 1 to "
				     "99), \"shadow\" or \"blue-green\"");
	return 0;
}

static int check_fields(json_t *spec, const char *text, struct problem *pb)
{
	json_t *sv = json_object_get(spec, "strategy");
	json_t *cl = json_object_get(spec, "candidates");
	json_t *eps = json_object_get(spec, "epsilon");
	json_t *seed = json_object_get(spec, "seed");
	json_t *sh = json_object_get(spec, "shadow");
	enum dep_strategy st = DEP_SINGLE;
	int rc;

	rc = problem_check_fields(pb, text, spec, fields, NULL);
	if (rc < 0)
		return rc;
	if (sv) {
		size_t i;

		for (i = 0; i < NSTRATEGIES; i++)
			if (json_is_string(sv) &&
			    strcmp(json_string_value(sv), strategies[i]) == 0)
				break;
		if (i == NSTRATEGIES)
			return problem_field(pb, text, "strategy",
					     "must be single, blue-green, "
					     "canary, epsilon-greedy, "
					     "thompson or shadow");
		st = (enum dep_strategy)i;
	} else if (json_array_size(cl) > 1) {
		return problem_field(pb, text, "candidates",
				     "several candidates need a \"strategy\"");
	}
	json_object_set_new(spec, "strategy", json_string(strategies[st]));
	rc = check_candidates(spec, st, text, pb);
	if (rc < 0)
		return rc;
	if (eps && st != DEP_EPSILON_GREEDY)
		return problem_field(pb, text, "epsilon",
				     "only epsilon-greedy takes it");
	if (eps && (!json_is_number(eps) || !(json_number_value(eps) >= 0) ||
		    json_number_value(eps) > 1))
		return problem_field(pb, text, "epsilon",
				     "must be a number from 0 to 1");
	if (!eps && st == DEP_EPSILON_GREEDY)
		json_object_set_new(spec, "epsilon", json_real(0.1));
	if (seed && (!json_is_integer(seed) || json_integer_value(seed) < 0))
		return problem_field(pb, text, "seed",
				     "must be a whole number, 0 or more");
	if (sh && !ref_ok(json_string_value(sh)))
		return json_is_string(sh)
			       ? ref_problem(pb, text, json_string_value(sh),
					     "\"shadow\"")
			       : problem_field(pb, text, "shadow",
					       "must be a model as name, "
					       "name@<version> or "
					       "name@<alias>");
	if (sh && st == DEP_SHADOW)
		return problem_field(pb, text, "shadow",
				     "the shadow strategy mirrors its second "
				     "candidate already");
	rc = check_rollback(spec, text, pb);
	if (rc == 0)
		rc = check_monitor(spec, text, pb);
	return rc < 0 ? rc : check_on_alert(spec, text, pb);
}

int deployspec_check(const char *text, size_t len, bool final,
		     json_t **out, struct problem *pb)
{
	/* the syntax, and a write cut inside a value, as train specs */
	return spec_check_json(text, len, final, check_fields, out, pb);
}
