/* SPDX-License-Identifier: MIT */
/*
 * The host table a train plugin sees, in the job program (job_int.h):
 * its log, progress, metrics, "cancelled?" and "why I stopped" calls,
 * written to the job's files under out_lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>
#include <jansson.h>

#include "csv.h"
#include "jsonout.h"
#include "mlcore.h"
#include "plugin.h"
#include "spec.h"
#include "job_int.h"

void host_log(void *ctx, int level, const char *fmt, ...)
{
	va_list ap;

	(void)ctx;
	(void)level;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
}

void host_progress(void *ctx, double fraction, const char *line)
{
	struct hctx *h = ctx;
	double f = h->frac_base + h->frac_span * fraction;
	FILE *fp;

	pthread_mutex_lock(&out_lock);
	fp = fopen("progress.tmp", "we");
	if (fp) {
		fprintf(fp, "%d%% %s%s\n", (int)(f * 100 + 0.5), h->prefix,
			line ? line : "");
		fclose(fp);
		rename("progress.tmp", "progress");
	}
	pthread_mutex_unlock(&out_lock);
}

void host_metric(void *ctx, const char *name, double value, long step)
{
	struct hctx *h = ctx;
	struct run *run = h->run;

	if (!run->metrics || !isfinite(value))
		return;
	pthread_mutex_lock(&out_lock);
	/* a search's trials say so; its final fit is the model's own */
	fprintf(run->metrics,
		"{\"step\": %ld, \"name\": \"%s%s\", \"value\": %.9g, "
		"\"seconds\": %.3f}\n",
		h->metric_base + step,
		strncmp(h->prefix, "trial", 5) == 0 ? "trial." : "", name,
		value, now_mono() - run->t0);
	if (h->curves)
		curves_add(h->curves, name, h->metric_base + step, value);
	fflush(run->metrics);
	pthread_mutex_unlock(&out_lock);
}

/*
 * Why a fit ended (ABI 1.1): kept for metrics.json and the trial's record,
 * and said in the log at once.  Called on the fit's own thread, which is
 * the only one that touches h->stopped until the fit returns.
 */
void host_stopped(void *ctx, const char *rule, long at,
			 const char *why)
{
	struct hctx *h = ctx;

	if (!rule || !rule[0])
		return;
	json_decref(h->stopped);
	h->stopped = json_pack("{s:s, s:I, s:s}", "rule", rule, "at",
			       (json_int_t)at, "why", why ? why : "");
	pthread_mutex_lock(&out_lock);
	say("%sstopped: %s at %ld: %s", h->prefix, rule, at, why ? why : "");
	pthread_mutex_unlock(&out_lock);
}

/*
 * What the version's metrics.json says of a fit whose plugin did not say
 * why it stopped (one built against ABI 1.0): that it did not.
 */
json_t *stopped_unknown(const struct plugin *pl)
{
	return json_pack("{s:s, s:s+}", "rule", "unknown", "why",
			 pl->desc->name, " does not say why it stopped (ABI 1.0)");
}

/* The progress line of a fit that ended: "done; stopped: rule at N: why". */
void progress_stopped(struct hctx *h, double frac, const char *what)
{
	char line[512];

	if (!h->stopped) {
		host_progress(h, frac, what);
		return;
	}
	snprintf(line, sizeof(line), "%s; stopped: %s at %lld: %s", what,
		 json_string_value(json_object_get(h->stopped, "rule")),
		 (long long)json_integer_value(json_object_get(h->stopped, "at")),
		 json_string_value(json_object_get(h->stopped, "why")));
	host_progress(h, frac, line);
}

int host_cancelled(void *ctx)
{
	(void)ctx;
	return cancelled;
}
