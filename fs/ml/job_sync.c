/* SPDX-License-Identifier: MIT */
/*
 * A feature set's sync, in the job program (plan "kind": "sync"), as the
 * writer: the source dataset on descriptor 3 (empty without a source),
 * the events up to the cut made into a history, offline.csv and stats,
 * written to out/ in the job folder for the daemon to publish.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "featcalc.h"
#include "job_int.h"
#include "jsonout.h"

static int put_file(void *arg, const char *p, size_t n)
{
	return fwrite(p, 1, n, arg) == n ? 0 : -EIO;
}

/* The events on descriptor 3 as a table; NULL for no source. */
static struct table *events_read(json_t *plan)
{
	struct problem pb = { 0 };
	struct table *t = NULL;
	struct stat st;
	const char *text;

	if (!json_object_get(plan, "dataset"))
		return NULL;
	if (fstat(3, &st) < 0)
		fail("no data descriptor: %s", strerror(errno));
	if (!st.st_size)
		return NULL;
	text = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, 3, 0);
	if (text == MAP_FAILED)
		fail("cannot map the data: %s", strerror(errno));
	if (table_parse(text, (size_t)st.st_size, &t, &pb) < 0)
		fail("%s: %u:%u: %s",
		     json_string_value(json_object_get(
			     json_object_get(plan, "dataset"), "name")),
		     pb.line, pb.col, pb.msg);
	return t;
}

/* The event log up to the cut, on descriptor 4 (CSV); NULL for none. */
static struct table *log_read(json_t *plan)
{
	struct problem pb = { 0 };
	struct table *t = NULL;
	struct stat st;
	const char *text;

	if (!json_integer_value(json_object_get(plan, "log_cut")))
		return NULL;
	if (fstat(4, &st) < 0)
		fail("no event log descriptor: %s", strerror(errno));
	if (!st.st_size)
		return NULL;
	text = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, 4, 0);
	if (text == MAP_FAILED)
		fail("cannot map the event log: %s", strerror(errno));
	if (table_parse(text, (size_t)st.st_size, &t, &pb) < 0)
		fail("the event log: %u:%u: %s", pb.line, pb.col, pb.msg);
	return t;
}

void sync_run(json_t *plan)
{
	struct hctx ph = { .frac_span = 1 };
	json_t *range = json_object_get(plan, "range");
	double from = -INFINITY, cut = INFINITY, t0 = now_mono();
	struct problem pb = { 0 };
	struct feat_spec *spec;
	struct feat_hist h;
	struct table *t, *log;
	uint64_t skipped;
	json_t *stats;
	char why[256];
	void *buf;
	size_t len;
	FILE *fp;

	if (json_array_size(range) == 2) {
		from = json_number_value(json_array_get(range, 0));
		cut = json_number_value(json_array_get(range, 1));
	}
	say("job %s: sync of feature set %s@%d",
	    json_string_value(json_object_get(plan, "name")),
	    json_string_value(json_object_get(plan, "feature_set")),
	    (int)json_integer_value(json_object_get(plan, "version")));
	if (feat_spec_compile(json_object_get(plan, "spec"), &spec) < 0)
		fail("out of memory");
	host_progress(&ph, 0, "reading events");
	t = events_read(plan);
	host_progress(&ph, 0.3, "ordering events");
	log = log_read(plan);
	{
		const struct table *tabs[] = { t, log };
		size_t which;

		if (feat_hist_build(spec, tabs, 2, cut, &buf, &len, &skipped,
				    &which, &pb) < 0)
			fail("%s: %u:%u: %s",
			     which ? "the event log"
				   : json_string_value(json_object_get(
					     json_object_get(plan, "dataset"),
					     "name")),
			     pb.line, pb.col, pb.msg);
	}
	table_free(t);
	table_free(log);
	if (feat_hist_load(buf, len, spec, &h, why, sizeof(why)) < 0)
		fail("%s", why);
	h.owned = buf;
	say("%zu events of %zu entities (%llu rows skipped: no entity, or "
	    "after the cut) in %.3f s",
	    h.nev, h.nkeys, (unsigned long long)skipped, now_mono() - t0);
	if (mkdir("out", 0755) < 0 && errno != EEXIST)
		fail("out/: %s", strerror(errno));
	fp = fopen("out/history", "wxe");
	if (!fp || fwrite(buf, 1, len, fp) != len || fclose(fp) != 0)
		fail("out/history: %s", strerror(errno));
	host_progress(&ph, 0.6, "writing offline.csv");
	fp = fopen("out/offline.csv", "wxe");
	if (!fp || feat_offline(spec, &h, from, put_file, fp, &stats) < 0 ||
	    fclose(fp) != 0)
		fail("out/offline.csv: %s", strerror(errno ? errno : EIO));
	json_object_set_new(stats, "skipped", json_integer((json_int_t)skipped));
	if (json_dump_file_short(stats, "out/stats.json", JSON_COMPACT) < 0)
		fail("out/stats.json: cannot write");
	say("offline.csv: %lld rows in %.3f s",
	    (long long)json_integer_value(json_object_get(stats, "rows")),
	    now_mono() - t0);
	host_progress(&ph, 1, "done");
	feat_hist_free(&h);
	feat_spec_free(spec);
	finish(1, NULL, NULL, NULL);
}
