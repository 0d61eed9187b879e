/* SPDX-License-Identifier: MIT */
/*
 * A deployment's traffic (deploy.h, deploy_int.h): rows routed by the
 * strategy, request ids assigned, answers logged, feedback turned into
 * counters, and the rollback rule judged on them.
 *
 * Routing is per row and replayable: the k-th row a revision routes
 * draws its numbers from splitmix64 seeded with seed ^ (k * 2^64/phi),
 * seed being the revision's (the spec's "seed", else the last
 * revision's, else random, and recorded in the revision).  A canary row
 * goes to the first candidate whose running weight passes u * total,
 * u the first draw's top 53 bits over 2^53.  Bandits use the same
 * draws: epsilon-greedy explores when the first is below epsilon;
 * Thompson samples Beta(1 + right, 1 + wrong) per candidate.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "deploy_int.h"
#include "featpredict.h"
#include "hostfile.h"
#include "fs.h"
#include "jsonout.h"
#include "mlfs_plugin.h"
#include "mlcore.h"
#include "repo.h"

/* --- routing --- */

/* A predict handle's stream: the rows' router and logger. */
struct dstream {
	struct dep *d;
	struct pstream *ps;
	struct fpredict *fp; /* by entity key: feeds ps */
	struct pstream_route rt;
	bool log;
	struct timespec t0; /* the write being answered began */
	struct strbuf lines; /* log lines of this write */
	struct strbuf idtext; /* the answer's id as text, reused */
	uint64_t upto;  /* the last line this handle logged */
	uint64_t errs;  /* errors this write, for the rule */
};

/* The candidates a rollback left serving: the first alone. */
bool dep_pinned_first(const struct dep *d)
{
	return d->rolled[0] != '\0';
}

/* Standard normal and gamma draws, for Thompson sampling. */
static double normal(uint64_t *x)
{
	double u = prng_uniform(x), v = prng_uniform(x);

	return sqrt(-2.0 * log(u > 0 ? u : 1e-300)) * cos(2 * M_PI * v);
}

static double gamma_draw(double a, uint64_t *x)
{
	double dd, c;

	if (a < 1)
		return gamma_draw(a + 1, x) * pow(prng_uniform(x), 1.0 / a);
	dd = a - 1.0 / 3.0;
	c = 1.0 / sqrt(9 * dd);
	for (;;) {
		double z = normal(x), v = 1 + c * z, u = prng_uniform(x);

		if (v <= 0)
			continue;
		v = v * v * v;
		if (log(u > 0 ? u : 1e-300) < 0.5 * z * z + dd - dd * v +
						 dd * log(v))
			return dd * v;
	}
}

/* The bandit's arm: an estimate of its reward (a draw for Thompson). */
static double arm(const struct dep *d, size_t i, uint64_t *x)
{
	const struct dstat *s = &d->cs[i];
	bool cls = d->task == MLFS_TASK_CLASSIFICATION;

	if (d->st == DEP_EPSILON_GREEDY) /* optimistic before feedback */
		return (s->reward + (cls ? 1.0 : 0.0)) / (double)(s->labels + 1);
	if (cls) {
		double a = gamma_draw(1.0 + (double)s->right, x);
		double b = gamma_draw(1.0 + (double)(s->labels - s->right), x);

		return a / (a + b);
	}
	{
		double mean = s->labels ? s->reward / (double)s->labels : 0;
		double var = s->labels > 1 ? s->sqerr / (double)s->labels -
						     mean * mean
					   : 1.0;

		return mean + sqrt(var > 0 ? var : 1e-12) /
				      sqrt((double)s->labels + 1) * normal(x);
	}
}

static int route_pick(void *arg, size_t *cand, long *mirror, char *why,
		      size_t whylen)
{
	struct dep *d = ((struct dstream *)arg)->d;
	uint64_t x;
	size_t c = 0;

	pthread_mutex_lock(&d->lock);
	if (d->paused) {
		pthread_mutex_unlock(&d->lock);
		snprintf(why, whylen, "paused");
		return -EAGAIN;
	}
	x = d->seed ^ (d->route++ * 0x9E3779B97F4A7C15ULL);
	if (dep_pinned_first(d)) {
		c = 0;
	} else if (d->st == DEP_BLUE_GREEN) {
		c = d->active;
	} else if (d->st == DEP_CANARY) {
		double total = 0, u = prng_uniform(&x), run = 0;

		for (size_t i = 0; i < d->ncand; i++)
			total += d->weight[i];
		for (c = 0; c < d->ncand - 1; c++) {
			run += d->weight[c];
			if (u * total < run)
				break;
		}
		while (c > 0 && d->weight[c] <= 0)
			c--;
	} else if (d->st == DEP_EPSILON_GREEDY || d->st == DEP_THOMPSON) {
		if (d->st == DEP_EPSILON_GREEDY && prng_uniform(&x) < d->eps) {
			c = (size_t)(prng_uniform(&x) * (double)d->ncand);
			if (c >= d->ncand)
				c = d->ncand - 1;
		} else {
			double best = -INFINITY;

			for (size_t i = 0; i < d->ncand; i++) {
				double v = arm(d, i, &x);

				if (v > best) {
					best = v;
					c = i;
				}
			}
		}
	}
	pthread_mutex_unlock(&d->lock);
	*cand = c;
	*mirror = d->shadow;
	return 0;
}

/* --- the rollback rule, and labels --- */

/* Under d->lock: roll back to the first candidate, once. */
void dep_rollback_locked(struct dep *d, const char *why)
{
	if (dep_pinned_first(d))
		return;
	snprintf(d->rolled, sizeof(d->rolled), "%s", why);
	d->active = 0;
}

/* Under d->lock: has a candidate other than the first crossed a rule? */
static bool rule_crossed(struct dep *d, char *why, size_t whylen)
{
	for (size_t i = 1; i < d->ncand && !dep_pinned_first(d); i++) {
		const struct dstat *s = &d->cs[i];

		uint64_t n = s->requests + s->errors; /* rows routed to it */

		if (d->rb_on_err && n >= d->rb_min &&
		    (double)s->errors > d->rb_err * (double)n) {
			snprintf(why, whylen, "%s error rate %.3f > %g after "
					      "%" PRIu64 " requests",
				 d->ref[i], (double)s->errors / (double)n,
				 d->rb_err, n);
			return true;
		}
		if (d->rb_on_acc && d->task == MLFS_TASK_CLASSIFICATION &&
		    s->labels >= d->rb_min &&
		    (double)s->right < d->rb_acc * (double)s->labels) {
			snprintf(why, whylen, "%s accuracy %.3f < %g over %"
					      PRIu64 " labels",
				 d->ref[i], (double)s->right / (double)s->labels,
				 d->rb_acc, s->labels);
			return true;
		}
	}
	return false;
}

/* After new counters: the rule judged, and a rollback made known. */
static void judge(struct dep *d)
{
	char why[400];
	bool crossed;

	if (!d->rb_on_err && !d->rb_on_acc)
		return;
	pthread_mutex_lock(&d->lock);
	crossed = rule_crossed(d, why, sizeof(why));
	if (crossed) {
		dep_rollback_locked(d, why);
		dep_save_state(d);
	}
	pthread_mutex_unlock(&d->lock);
	if (crossed)
		dep_change(d->e, "rolled back: %s", why);
}

void dep_label(struct dep *d, const struct dpred *p, const char *truth,
	       size_t tlen)
{
	struct dstat *s;

	if (p->cand >= d->ncand)
		return;
	pthread_mutex_lock(&d->lock);
	s = &d->cs[p->cand];
	s->labels++;
	if (d->task == MLFS_TASK_REGRESSION) {
		double t = strtod(truth, NULL), err = t - (double)p->value;

		(void)tlen;
		s->reward -= fabs(err);
		s->abserr += fabs(err);
		s->sqerr += err * err;
	} else {
		long k = served_class(d->ms[p->cand], truth, tlen);
		bool right = k >= 0 && (float)k == p->value;

		s->right += right;
		s->reward += right;
	}
	pthread_mutex_unlock(&d->lock);
}

/* --- predict streams --- */

static int route_assign(void *arg, struct strbuf *id)
{
	struct dstream *s = arg;
	struct dent *e = s->d->e;
	uint64_t n;
	int rc = 0;

	pthread_mutex_lock(&e->lock);
	if (e->seq >= e->seq_reserved && !dep_read_only(e->fs)) {
		rc = dep_save_ids(e, e->seq_reserved + DEP_ID_BLOCK);
		if (rc == 0)
			e->seq_reserved += DEP_ID_BLOCK;
	}
	n = ++e->seq;
	pthread_mutex_unlock(&e->lock);
	if (rc < 0)
		return rc;
	return sb_printf(id, "%s-%" PRIu64, e->name, n);
}

/* The id of an answer as plain text (CSV unquoted, JSON decoded). */
static void id_text(const struct pstream_answer *a, struct strbuf *out)
{
	if (a->idlen && a->id[0] == '"') {
		json_t *j = json_loadb(a->id, a->idlen, JSON_DECODE_ANY, NULL);

		if (json_is_string(j)) {
			sb_append(out, json_string_value(j),
				  json_string_length(j));
			json_decref(j);
			return;
		}
		json_decref(j);
		/* a CSV field: "x,""y""" */
		for (size_t i = 1; i + 1 < a->idlen; i++) {
			sb_append(out, a->id + i, 1);
			if (a->id[i] == '"')
				i++;
		}
		return;
	}
	sb_append(out, a->id, a->idlen);
}

static void route_answered(void *arg, const struct pstream_answer *a)
{
	struct dstream *s = arg;
	struct dep *d = s->d;
	struct strbuf *l = &s->lines;
	struct timespec now;
	char when[40];
	uint64_t us;

	if (a->cand == (size_t)-1)
		return; /* refused before routing: no candidate's */
	clock_gettime(CLOCK_MONOTONIC, &now);
	us = (uint64_t)((now.tv_sec - s->t0.tv_sec) * 1000000LL +
			(now.tv_nsec - s->t0.tv_nsec) / 1000);
	pthread_mutex_lock(&d->lock);
	if (!a->out)
		d->cs[a->cand].errors++;
	else if (a->mirror)
		d->cs[a->cand].mirrored++;
	else
		d->cs[a->cand].requests++;
	dmon_answer_locked(d, a, us);
	pthread_mutex_unlock(&d->lock);
	if (!a->out)
		s->errs++;
	s->idtext.len = 0;
	if (a->id)
		id_text(a, &s->idtext);
	if (a->out && !a->mirror) {
		struct dpred p = { .rev = d->rev, .cand = (uint16_t)a->cand,
				   .value = served_value(d->ms[a->cand],
							 a->out) };

		pthread_mutex_lock(&d->e->lock);
		dlog_add_pred(d->e, s->idtext.buf ? s->idtext.buf : "",
			      s->idtext.len, &p);
		pthread_mutex_unlock(&d->e->lock);
	}
	if (!s->log)
		return;
	dep_iso_time(when, sizeof(when));
	sb_printf(l, "{\"kind\": \"%s\", ",
		  !a->out ? "error" : a->mirror ? "shadow" : "prediction");
	if (a->id) {
		sb_puts(l, "\"id\": ");
		sb_json_string(l, s->idtext.buf ? s->idtext.buf : "",
			       s->idtext.len);
		sb_puts(l, ", ");
	}
	sb_printf(l, "\"time\": \"%s\", \"revision\": %u, \"candidate\": ",
		  when, d->rev);
	sb_json_string(l, d->ref[a->cand], strlen(d->ref[a->cand]));
	if (!a->out) {
		sb_puts(l, ", \"error\": ");
		sb_json_string(l, a->line + (a->linelen > 7 ? 7 : 0),
			       a->linelen > 7 ? a->linelen - 7 : a->linelen);
	} else {
		sb_puts(l, ", \"inputs\": ");
		sb_append(l, a->inputs, a->inlen);
		sb_puts(l, ", \"output\": {");
		served_output_json(d->ms[a->cand], a->out, l);
		sb_puts(l, "}");
	}
	sb_printf(l, ", \"latency_us\": %" PRIu64 "}\n", us);
}

/* A pii value as the log keeps it: its HMAC-SHA-256, in hex. */
static void route_hash(void *arg, const char *v, size_t n, struct strbuf *out)
{
	struct dstream *s = arg;
	unsigned char md[32];
	unsigned len = 0;
	char hex[65];

	if (!HMAC(EVP_sha256(), s->d->hkey, sizeof(s->d->hkey),
		  (const unsigned char *)v, n, md, &len) || len != 32) {
		sb_puts(out, "null");
		return;
	}
	for (size_t i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	sb_json_string(out, hex, 64);
}

int deploy_stream_open(struct fs *fs, const char *name,
		       const struct fs_ctx *ctx, struct dstream **out,
		       char *msg, size_t msglen)
{
	struct host_user caller = { ctx->uid, ctx->gid, ctx->pid };
	struct dstream *s = calloc(1, sizeof(*s));
	int rc;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	rc = dep_get(fs, name, &s->d, msg, msglen);
	if (rc == 0) {
		s->rt = (struct pstream_route){ route_pick, route_assign,
						route_answered, s,
						s->d->mask, route_hash };
		s->log = !dep_read_only(fs);
		rc = pstream_new_routed(s->d->ms, s->d->nm, &s->rt, &s->ps);
	}
	if (rc == 0 && s->d->sets)
		rc = fpredict_new(fs, s->d->sets, &caller, s->ps, &s->fp, msg,
				  msglen);
	if (rc < 0) {
		deploy_stream_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

/* This write's log lines into the store's pending ones; the rule. */
static int after_write(struct dstream *s, int rc)
{
	if (s->lines.len) {
		int arc = dlog_append(s->d->e, s->lines.buf, s->lines.len,
				      &s->upto);

		s->lines.len = 0;
		if (rc == 0)
			rc = arc;
	}
	/* an error rate moves with every row, an accuracy with labels */
	if (s->errs || s->d->rb_on_err) {
		s->errs = 0;
		judge(s->d);
	}
	return rc;
}

int deploy_stream_write(struct dstream *s, const char *buf, size_t len,
			struct strbuf *out)
{
	clock_gettime(CLOCK_MONOTONIC, &s->t0);
	return after_write(s, s->fp ? fpredict_write(s->fp, buf, len, out)
				    : pstream_write(s->ps, buf, len, out));
}

int deploy_stream_finish(struct dstream *s, struct strbuf *out)
{
	clock_gettime(CLOCK_MONOTONIC, &s->t0);
	return after_write(s, s->fp ? fpredict_finish(s->fp, out)
				    : pstream_finish(s->ps, out));
}

int deploy_stream_sync(struct dstream *s)
{
	return s->upto ? dlog_commit(s->d->e, s->upto) : 0;
}

void deploy_stream_free(struct dstream *s)
{
	if (!s)
		return;
	fpredict_free(s->fp);
	pstream_free(s->ps);
	dep_put(s->d);
	sb_free(&s->lines);
	sb_free(&s->idtext);
	free(s);
}

/* --- feedback --- */

struct fbrow {
	char *id, *truth;
};

/* A line of feedback: CSV `id,truth` or {"id": ..., "truth": ...}. */
static int fb_parse(const char *p, size_t n, unsigned task, struct fbrow *r,
		    unsigned line, struct problem *pb)
{
	json_t *j = NULL;
	int rc = 0;

	r->id = r->truth = NULL;
	if (n && p[0] == '{') {
		json_error_t err;
		json_t *id, *t;

		j = json_loadb(p, n, 0, &err);
		if (!json_is_object(j)) {
			json_decref(j);
			return problem_set(pb, line, 1, "bad JSON: %s",
					   j ? "not an object" : err.text);
		}
		id = json_object_get(j, "id");
		t = json_object_get(j, "truth");
		if (json_is_string(id))
			r->id = strdup(json_string_value(id));
		else if (json_is_integer(id) &&
			 asprintf(&r->id, "%" JSON_INTEGER_FORMAT,
				  json_integer_value(id)) < 0)
			r->id = NULL;
		if (json_is_string(t))
			r->truth = strdup(json_string_value(t));
		else if (json_is_number(t) &&
			 asprintf(&r->truth, "%.17g", json_number_value(t)) < 0)
			r->truth = NULL;
		json_decref(j);
		if (!r->id)
			rc = problem_set(pb, line, 1,
					 "\"id\": missing, or not a string "
					 "or a whole number");
		else if (!r->truth)
			rc = problem_set(pb, line, 1,
					 "\"truth\": missing, or not a "
					 "string or a number");
	} else {
		struct table *t = NULL;
		struct problem tp = { 0 };
		char *text;

		/* one row under a header of two columns */
		if (asprintf(&text, "id,truth\n%.*s\n", (int)n, p) < 0)
			return -ENOMEM;
		rc = table_parse(text, strlen(text), &t, &tp);
		if (rc == 0 && (t->ncols != 2 || t->nrows != 1))
			rc = -EINVAL;
		if (rc == 0) {
			r->id = strndup(t->data + t->off[0], t->len[0]);
			r->truth = strndup(t->data + t->off[1], t->len[1]);
		}
		table_free(t);
		free(text);
		if (rc < 0)
			rc = problem_set(pb, line, 1, "expected id,truth%s%s",
					 tp.msg[0] ? ": " : "", tp.msg);
		else if (!r->id[0])
			rc = problem_set(pb, line, 1, "an empty id");
	}
	if (rc == 0 && task == MLFS_TASK_REGRESSION) {
		char *end;
		double v = strtod(r->truth, &end);

		if (end == r->truth || *end || !isfinite(v))
			rc = problem_set(pb, line, 1,
					 "truth \"%.60s\": not a number (the "
					 "deployment's models answer numbers)",
					 r->truth);
	}
	if (rc < 0) {
		free(r->id);
		free(r->truth);
		r->id = r->truth = NULL;
	}
	return rc;
}

int deploy_feedback(struct fs *fs, const char *name, const char *text,
		    size_t len, unsigned first_line, struct problem *pb)
{
	struct fbrow *rows = NULL;
	struct strbuf lines = { 0 };
	size_t n = 0, cap = 0;
	unsigned line = first_line;
	char why[300] = "", when[40];
	struct dep *d;
	uint64_t upto = 0;
	int rc;

	rc = dep_get(fs, name, &d, why, sizeof(why));
	if (rc == -ENOENT && why[0])
		return problem_set(pb, 0, 0, "%s", why);
	if (rc < 0)
		return rc;
	for (const char *p = text, *end = text + len; rc == 0 && p < end;
	     line++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ln = nl ? (size_t)(nl - p) : (size_t)(end - p);

		if (ln && p[ln - 1] == '\r')
			ln--;
		if (ln && !(line == 1 && ln == 8 && memcmp(p, "id,truth", 8) == 0)) {
			if (n == cap) {
				struct fbrow *nr;

				cap = cap ? cap * 2 : 16;
				nr = realloc(rows, cap * sizeof(*nr));
				if (!nr) {
					rc = -ENOMEM;
					break;
				}
				rows = nr;
			}
			rc = fb_parse(p, ln, d->task, &rows[n], line, pb);
			if (rc == 0)
				n++;
		}
		p = nl ? nl + 1 : end;
	}
	dep_iso_time(when, sizeof(when));
	for (size_t i = 0; rc == 0 && i < n; i++) {
		sb_puts(&lines, "{\"kind\": \"feedback\", \"id\": ");
		sb_json_string(&lines, rows[i].id, strlen(rows[i].id));
		sb_puts(&lines, ", \"truth\": ");
		if (d->task == MLFS_TASK_REGRESSION)
			sb_puts(&lines, rows[i].truth);
		else
			sb_json_string(&lines, rows[i].truth,
				       strlen(rows[i].truth));
		sb_printf(&lines, ", \"time\": \"%s\"}\n", when);
	}
	if (rc == 0 && lines.err)
		rc = lines.err;
	/* durable first: then the labels count */
	if (rc == 0 && n)
		rc = dlog_append(d->e, lines.buf, lines.len, &upto);
	if (rc == 0 && n)
		rc = dlog_commit(d->e, upto);
	if (rc == 0) {
		pthread_mutex_lock(&d->e->lock);
		d->e->fb_received += n;
		pthread_mutex_unlock(&d->e->lock);
	}
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct dpred *p, got = { 0 };

		pthread_mutex_lock(&d->e->lock);
		p = dlog_match(d->e, rows[i].id, strlen(rows[i].id));
		if (p)
			got = *p;
		pthread_mutex_unlock(&d->e->lock);
		if (p && got.rev == d->rev)
			dep_label(d, &got, rows[i].truth,
				  strlen(rows[i].truth));
	}
	if (rc == 0 && n)
		judge(d);
	for (size_t i = 0; i < n; i++) {
		free(rows[i].id);
		free(rows[i].truth);
	}
	free(rows);
	sb_free(&lines);
	dep_put(d);
	return rc;
}

