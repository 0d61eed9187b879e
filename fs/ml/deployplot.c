/* SPDX-License-Identifier: MIT */
/*
 * deployments/<d>/metrics.svg: the monitor's lines of the last 24 hours
 * drawn (plot.c), per candidate.  Drawn when read, and kept for one
 * monitor.interval: no new line comes sooner.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "deploy_int.h"
#include "plot.h"
#include "plotcache.h"

#define DAY (24 * 3600.0)

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int deploy_show_svg(struct fs *fs, const char *name, struct strbuf *out)
{
	struct strbuf lines = { 0 };
	char key[400], title[300];
	double mono = clock_s(CLOCK_MONOTONIC), now = clock_s(CLOCK_REALTIME);
	double interval;
	int rc;
	struct dep *d = dep_shown(fs, name, &rc);

	if (!d && rc)
		return rc;
	snprintf(title, sizeof(title), "deployments/%s: the last 24 hours",
		 name);
	if (!d) /* no spec yet: the empty picture */
		return plot_deployment(out, title, "", 0, now - DAY, now);
	interval = dmon_interval(d) > 0 ? dmon_interval(d) : 60;
	pthread_mutex_lock(&d->e->lock);
	snprintf(key, sizeof(key), "deployments/%s %s %llu", name, d->e->inc,
		 (unsigned long long)tailbuf_size(&d->e->metrics));
	sb_append(&lines, d->e->metrics.sb.buf ? d->e->metrics.sb.buf : "",
		  d->e->metrics.sb.len);
	pthread_mutex_unlock(&d->e->lock);
	dep_put(d);
	rc = lines.err;
	if (rc == 0 && !plot_cache_get(fs, key, mono, out)) {
		size_t at = out->len;

		rc = plot_deployment(out, title, lines.buf ? lines.buf : "",
				     lines.len, now - DAY, now);
		if (rc == 0)
			plot_cache_put(fs, key, out->buf + at, out->len - at,
				       mono + interval);
	}
	sb_free(&lines);
	return rc;
}
