/* SPDX-License-Identifier: MIT */
/*
 * A deployment's controls (deploy.h): ctl (promote, rollback, pause,
 * resume), traffic (weights), and what traffic and status read.  Every
 * change is saved in the router's state and is a line of the log.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "deploy_int.h"
#include "fs.h"
#include "jsonout.h"
#include "mlfs_plugin.h"
#include "mlcore.h"
#include "repo.h"

/* --- controls --- */

static int get_for_control(struct fs *fs, const char *name, struct dep **d,
			   struct problem *pb)
{
	char why[300] = "";
	int rc = dep_get(fs, name, d, why, sizeof(why));

	if (rc == -ENOENT && why[0])
		return problem_set(pb, 0, 0, "%s", why);
	return rc;
}

int deploy_ctl(struct fs *fs, const char *name, const char *text,
	       size_t len, bool check, const struct fs_ctx *ctx,
	       struct problem *pb)
{
	char cmd[32] = "";
	struct dep *d;
	int rc;

	(void)ctx;
	while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
		len--;
	if (len >= sizeof(cmd) || memchr(text, '\n', len))
		return problem_set(pb, 1, 1, "one command: promote, rollback, "
					     "pause or resume");
	memcpy(cmd, text, len);
	if (strcmp(cmd, "promote") && strcmp(cmd, "rollback") &&
	    strcmp(cmd, "pause") && strcmp(cmd, "resume"))
		return problem_set(pb, 1, 1, "\"%s\": not a command (promote, "
					     "rollback, pause, resume)",
				   cmd);
	rc = get_for_control(fs, name, &d, pb);
	if (rc < 0)
		return rc;
	if (strcmp(cmd, "promote") == 0 && d->st != DEP_BLUE_GREEN &&
	    d->st != DEP_CANARY)
		rc = problem_set(pb, 1, 1, "promote: a %s deployment has no "
					   "second candidate to promote",
				 deployspec_strategy_name(d->st));
	if (rc == 0 && !check) {
		pthread_mutex_lock(&d->lock);
		if (strcmp(cmd, "promote") == 0) {
			d->rolled[0] = '\0';
			d->active = 1;
			for (size_t i = 0; i < d->ncand; i++)
				d->weight[i] = i == 1 ? 100 : 0;
			memset(&d->cs[1], 0, sizeof(d->cs[1]));
		} else if (strcmp(cmd, "rollback") == 0) {
			dep_rollback_locked(d, "by ctl");
		} else {
			d->paused = strcmp(cmd, "pause") == 0;
		}
		rc = dep_save_state(d);
		pthread_mutex_unlock(&d->lock);
		if (rc == 0)
			dep_change(d->e, "%s%s", cmd,
				   strcmp(cmd, "promote") == 0
					   ? ": the second candidate takes all "
					     "traffic"
					   : "");
	}
	dep_put(d);
	return rc;
}

int deploy_traffic(struct fs *fs, const char *name, const char *text,
		   size_t len, bool check, const struct fs_ctx *ctx,
		   struct problem *pb)
{
	double w[PSTREAM_MAX_MODELS];
	bool set[PSTREAM_MAX_MODELS] = { false };
	struct strbuf said = { 0 };
	unsigned line = 1;
	double total = 0;
	struct dep *d;
	int rc;

	(void)ctx;
	rc = get_for_control(fs, name, &d, pb);
	if (rc < 0)
		return rc;
	if (d->st != DEP_CANARY) {
		rc = problem_set(pb, 1, 1, "a %s deployment %s",
				 deployspec_strategy_name(d->st),
				 d->st == DEP_BLUE_GREEN
					 ? "moves with ctl promote and rollback"
					 : "takes no weights");
		dep_put(d);
		return rc;
	}
	for (const char *p = text, *end = text + len; rc == 0 && p < end;
	     line++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ln = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char buf[400], ref[320], extra[2];
		double v;
		size_t i;

		if (ln == 0 || ln >= sizeof(buf)) {
			if (ln)
				rc = problem_set(pb, line, 1, "a line too long");
			p = nl ? nl + 1 : end;
			continue;
		}
		memcpy(buf, p, ln);
		buf[ln] = '\0';
		if (sscanf(buf, "%319s %lf %1s", ref, &v, extra) != 2 ||
		    !isfinite(v) || v < 0) {
			rc = problem_set(pb, line, 1,
					 "expected <model@version> <weight>, "
					 "a weight 0 or more");
			break;
		}
		for (i = 0; i < d->ncand; i++)
			if (strcmp(d->ref[i], ref) == 0)
				break;
		if (i == d->ncand) {
			rc = problem_set(pb, line, 1,
					 "%s: not a candidate of revision "
					 "v%u",
					 ref, d->rev);
			break;
		}
		w[i] = v;
		set[i] = true;
		p = nl ? nl + 1 : end;
	}
	pthread_mutex_lock(&d->lock);
	for (size_t i = 0; i < d->ncand; i++) {
		if (!set[i])
			w[i] = d->weight[i];
		total += w[i];
	}
	if (rc == 0 && !(total > 0))
		rc = problem_set(pb, 1, 1, "the weights would add up to 0: no "
					   "candidate would answer");
	if (rc == 0 && !check) {
		for (size_t i = 0; i < d->ncand; i++) {
			d->weight[i] = w[i];
			sb_printf(&said, "%s%s %g", i ? ", " : "", d->ref[i],
				  w[i]);
		}
		d->rolled[0] = '\0';
		rc = dep_save_state(d);
	}
	pthread_mutex_unlock(&d->lock);
	if (rc == 0 && !check && said.buf)
		dep_change(d->e, "traffic: %s", said.buf);
	sb_free(&said);
	dep_put(d);
	return rc;
}

int deploy_show_traffic(struct fs *fs, const char *name, struct strbuf *out)
{
	uint64_t all = 0;
	double total = 0;
	int rc;
	struct dep *d = dep_shown(fs, name, &rc);

	if (!d)
		return rc;
	pthread_mutex_lock(&d->lock);
	for (size_t i = 0; i < d->ncand; i++) {
		all += d->cs[i].requests;
		total += d->weight[i];
	}
	for (size_t i = 0; i < d->ncand; i++) {
		double w;

		if (dep_pinned_first(d))
			w = i == 0 ? 100 : 0;
		else if (d->st == DEP_BLUE_GREEN)
			w = i == d->active ? 100 : 0;
		else if (d->st == DEP_SINGLE || d->st == DEP_SHADOW)
			w = i == 0 ? 100 : 0;
		else if (d->st == DEP_CANARY)
			w = total > 0 ? 100 * d->weight[i] / total : 0;
		else /* a bandit: the share it has had */
			w = all ? 100.0 * (double)d->cs[i].requests /
					  (double)all
				: 100.0 / (double)d->ncand;
		sb_printf(out, "%s %.4g %" PRIu64 "\n", d->ref[i], w,
			  d->cs[i].requests);
	}
	if (d->shadow >= 0 && (size_t)d->shadow >= d->ncand)
		sb_printf(out, "%s shadow %" PRIu64 "\n", d->ref[d->shadow],
			  d->cs[d->shadow].mirrored);
	pthread_mutex_unlock(&d->lock);
	dep_put(d);
	return out->err;
}

int deploy_show_status(struct fs *fs, const char *name, struct strbuf *out)
{
	int rc;
	struct dep *d = dep_shown(fs, name, &rc);

	if (!d)
		return rc ? rc : sb_puts(out, "no spec\n");
	pthread_mutex_lock(&d->lock);
	if (d->paused)
		sb_puts(out, "paused\n");
	else if (dep_pinned_first(d))
		sb_printf(out, "rolled back: %s\n", d->rolled);
	else
		sb_puts(out, "serving\n");
	pthread_mutex_unlock(&d->lock);
	dep_put(d);
	return out->err;
}


int deploy_show_feedback(struct fs *fs, const char *name, struct strbuf *out)
{
	int rc;
	struct dep *d = dep_shown(fs, name, &rc);

	if (!d)
		return rc;
	pthread_mutex_lock(&d->e->lock);
	sb_printf(out,
		  "received %" PRIu64 "\nlabelled %" PRIu64
		  "\nunknown %" PRIu64 "\nrepeated %" PRIu64 "\n",
		  d->e->fb_received, d->e->fb_labelled, d->e->fb_unknown,
		  d->e->fb_repeated);
	pthread_mutex_unlock(&d->e->lock);
	dep_put(d);
	return out->err;
}

int deploy_serving(struct fs *fs, const char *name, char *ref, size_t len,
		   char *why, size_t whylen)
{
	struct dep *d;
	size_t best = 0;
	int rc = dep_get(fs, name, &d, why, whylen);

	if (rc < 0)
		return rc;
	pthread_mutex_lock(&d->lock);
	if (!dep_pinned_first(d) && d->st == DEP_BLUE_GREEN)
		best = d->active;
	for (size_t i = 1; !dep_pinned_first(d) && d->st == DEP_CANARY &&
			   i < d->ncand; i++)
		if (d->weight[i] > d->weight[best])
			best = i;
	for (size_t i = 1; !dep_pinned_first(d) &&
			   (d->st == DEP_EPSILON_GREEDY ||
			    d->st == DEP_THOMPSON) && i < d->ncand; i++)
		if (d->cs[i].requests > d->cs[best].requests)
			best = i;
	snprintf(ref, len, "%s", d->ref[best]);
	pthread_mutex_unlock(&d->lock);
	dep_put(d);
	return 0;
}
