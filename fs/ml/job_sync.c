/* SPDX-License-Identifier: MIT */
/*
 * Feature sets in the job program, as the writer.  A sync (plan "kind":
 * "sync"): the source dataset on descriptor 3 (empty without a source)
 * and the event log up to the cut on 4, made into a history, offline.csv
 * and stats, written to out/ in the job folder for the daemon to publish.
 * A training with "feature_sets": their histories on 4 on, each set's
 * features as of each row's time joined onto the dataset's rows.
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

#include "csv.h"
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
	struct feat_build_info info = { .lenient = true };
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

		if (feat_hist_build(spec, tabs, 2, cut, &buf, &len, &info,
				    &pb) < 0)
			fail("%s: %u:%u: %s",
			     info.which ? "the event log"
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
	    h.nev, h.nkeys, (unsigned long long)info.skipped,
	    now_mono() - t0);
	if (info.refused)
		say("%llu events of the log left out: this spec refuses them "
		    "(logged under an earlier one)",
		    (unsigned long long)info.refused);
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
	json_object_set_new(stats, "skipped",
			    json_integer((json_int_t)info.skipped));
	json_object_set_new(stats, "refused",
			    json_integer((json_int_t)info.refused));
	json_object_set_new(stats, "late", json_integer((json_int_t)info.late));
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

/* A history on descriptor fd, checked against spec. */
static void history_map(int fd, const struct feat_spec *spec,
			struct feat_hist *h, const char *name)
{
	struct stat st;
	char why[256];
	void *p;

	if (fstat(fd, &st) < 0 || !st.st_size)
		fail("feature set %s: no history", name);
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED)
		fail("feature set %s: cannot map its history: %s", name,
		     strerror(errno));
	if (feat_hist_load(p, (size_t)st.st_size, spec, h, why, sizeof(why)) <
	    0)
		fail("feature set %s: %s", name, why);
}

struct table *sets_join(struct table *t, json_t *plan)
{
	json_t *sets = json_object_get(plan, "feature_sets");
	size_t ns = json_array_size(sets), nf = 0;
	struct feat_spec **spec = calloc(ns + 1, sizeof(*spec));
	struct feat_hist *h = calloc(ns + 1, sizeof(*h));
	long **ent = calloc(ns + 1, sizeof(*ent)), *ts = calloc(ns + 1, 8);
	struct strbuf out = { .max = (size_t)1 << 40 }, key = { 0 };
	struct problem pb = { 0 };
	struct table *joined;
	double *v;
	int rc = 0;

	if (!spec || !h || !ent || !ts)
		fail("out of memory");
	for (size_t i = 0; i < ns; i++) {
		json_t *set = json_array_get(sets, i);
		const char *name = json_string_value(json_object_get(set, "name"));

		if (feat_spec_compile(json_object_get(set, "spec"), &spec[i]) < 0)
			fail("out of memory");
		history_map(4 + (int)i, spec[i], &h[i], name);
		ent[i] = calloc(spec[i]->nent + 1, sizeof(**ent));
		if (!ent[i])
			fail("out of memory");
		for (size_t e = 0; e < spec[i]->nent; e++)
			if ((ent[i][e] = table_col(t, spec[i]->entity[e])) < 0)
				fail("no column \"%s\" in the data",
				     spec[i]->entity[e]);
		if ((ts[i] = table_col(t, spec[i]->timestamp)) < 0)
			fail("no column \"%s\" in the data",
			     spec[i]->timestamp);
		nf = spec[i]->nfeat > nf ? spec[i]->nfeat : nf;
	}
	v = calloc(nf + 1, sizeof(*v));
	if (!v)
		fail("out of memory");
	/* the header, then each row with every set's features as of it */
	for (size_t c = 0; rc == 0 && c < t->ncols; c++)
		rc = (c ? sb_append(&out, ",", 1) : 0) ||
		     feat_put_field(&out, t->names[c], strlen(t->names[c]));
	for (size_t i = 0; rc == 0 && i < ns; i++)
		for (size_t f = 0; rc == 0 && f < spec[i]->nfeat; f++)
			rc = sb_append(&out, ",", 1) ||
			     feat_put_field(&out, spec[i]->feat[f].name,
					    strlen(spec[i]->feat[f].name));
	rc = rc || sb_append(&out, "\n", 1);
	for (size_t r = 0; rc == 0 && r < t->nrows; r++) {
		for (size_t c = 0; rc == 0 && c < t->ncols; c++)
			rc = (c ? sb_append(&out, ",", 1) : 0) ||
			     feat_put_field(&out,
					    t->data + t->off[r * t->ncols + c],
					    t->len[r * t->ncols + c]);
		for (size_t i = 0; rc == 0 && i < ns; i++) {
			size_t tl = t->len[r * t->ncols + (size_t)ts[i]];
			const char *tp = t->data + t->off[r * t->ncols +
							  (size_t)ts[i]];
			double at;
			long k;

			if (!csv_parse_double(tp, tl, &at) &&
			    !csv_parse_time(tp, tl, &at))
				fail("data: row %zu: \"%s\": \"%.*s\" is not a "
				     "time (feature set %s)",
				     r + 1, spec[i]->timestamp,
				     (int)(tl > 40 ? 40 : tl), tp,
				     json_string_value(json_object_get(
					     json_array_get(sets, i), "name")));
			key.len = 0;
			for (size_t e = 0; rc == 0 && e < spec[i]->nent; e++) {
				size_t o = r * t->ncols + (size_t)ent[i][e];

				rc = (e ? sb_append(&key, "\x1f", 1) : 0) ||
				     sb_append(&key, t->data + t->off[o],
					       t->len[o]);
			}
			k = feat_hist_find(&h[i], key.buf ? key.buf : "",
					   key.len);
			if (k >= 0)
				feat_asof(spec[i], &h[i], (size_t)k, at, v);
			for (size_t f = 0; rc == 0 && f < spec[i]->nfeat; f++)
				rc = sb_append(&out, ",", 1) ||
				     (k >= 0 &&
				      feat_put_value(&out, spec[i], &h[i], f,
						     v[f]));
		}
		rc = rc || sb_append(&out, "\n", 1);
	}
	if (rc)
		fail("joining the feature sets: out of memory");
	if (table_parse(out.buf, out.len, &joined, &pb) < 0)
		fail("joining the feature sets: %u:%u: %s", pb.line, pb.col,
		     pb.msg);
	say("joined %zu feature set%s onto %zu rows", ns, ns == 1 ? "" : "s",
	    t->nrows);
	/* the joined text stays as long as the table, to the end */
	table_free(t);
	sb_free(&key);
	free(v);
	return joined;
}
