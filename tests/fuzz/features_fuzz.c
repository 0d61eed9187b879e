/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: feature sets' parsers and the history reader
 * (fs/ml/featcalc.c, feathist.c, featevents.c, featjoin.c).  The first
 * byte picks what the rest is:
 *   0  events CSV for a sync: table_parse, feat_hist_build; what builds
 *      must load, answer every key as of its events, and write
 *      offline.csv;
 *   1  a history as the daemon would read it from a job's folder: loaded
 *      (an aligned copy) or refused, never read out of bounds, and what
 *      loads answers and slices;
 *   2  rows for features/<fs>/events (CSV after the header in the first
 *      line, or JSON lines): parsed, then merged into a new key;
 *   3  rows for join, whole and a byte a write, over a fixed history:
 *      the same answers both ways.
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "featcalc.h"
#include "featevents.h"
#include "featjoin.h"
#include "featspec.h"

static const char spec_text[] =
	"{\"entity\": [\"c\", \"d\"], \"timestamp\": \"ts\", \"ttl\": \"10d\","
	" \"features\": ["
	"{\"name\": \"n\", \"agg\": \"count\", \"window\": \"1h\"},"
	"{\"name\": \"s\", \"column\": \"x\", \"agg\": \"sum\", \"window\": "
	"\"2h\"},"
	"{\"name\": \"m\", \"column\": \"x\", \"agg\": \"std\"},"
	"{\"name\": \"k\", \"column\": \"y\"},"
	"{\"name\": \"r\", \"column\": \"z\", \"max\": 9, \"on_violation\": "
	"\"reject\"},"
	"{\"name\": \"q\", \"column\": \"z\", \"agg\": \"max\", \"min\": 0, "
	"\"max\": 5, \"on_violation\": \"clip\"}]}";

static const char base_events[] =
	"c,d,ts,x,y,z\n"
	"a,1,0,1.5,p,1\na,1,100,2,q,2\nb,2,50,,r,3\na,1,100,7,,8\n";

static struct feat_spec *spec;
static struct feat_hist base;

static int put_null(void *arg, const char *p, size_t n)
{
	(void)arg;
	(void)p;
	(void)n;
	return 0;
}

static void exercise(const struct feat_hist *h)
{
	double v[16];
	json_t *stats = NULL;

	for (size_t k = 0; k < h->nkeys; k++) {
		struct strbuf sb = { 0 };
		void *buf;
		size_t len;

		for (size_t e = h->first[k]; e < h->first[k + 1]; e++) {
			feat_asof(spec, h, k, h->t[e], v);
			for (size_t f = 0; f < spec->nfeat; f++)
				feat_put_value(&sb, spec, h, f, v[f]);
			feat_put_time(&sb, h, h->t[e]);
		}
		sb_free(&sb);
		if (feat_hist_slice(h, k, &buf, &len) == 0) {
			struct feat_hist one;
			char why[128];

			assert(feat_hist_load(buf, len, spec, &one, why,
					      sizeof(why)) == 0);
			feat_hist_free(&one);
			free(buf);
		}
	}
	if (feat_offline(spec, h, -INFINITY, put_null, NULL, &stats) == 0)
		json_decref(stats);
}

static int find_in(void *arg, const char *key, size_t klen,
		   const struct feat_hist **h, size_t *k)
{
	long i = feat_hist_find(arg, key, klen);

	*h = i >= 0 ? arg : NULL;
	*k = i >= 0 ? (size_t)i : 0;
	return i >= 0 ? 0 : -ENOENT;
}

static void setup_once(void)
{
	struct problem pb = { 0 };
	struct table *t;
	json_t *j = NULL;
	struct feat_build_info info = { 0 };
	size_t len;
	void *buf;
	char why[128];

	if (spec)
		return;
	assert(featspec_check(spec_text, strlen(spec_text), true, &j, &pb) ==
	       0);
	assert(feat_spec_compile(j, &spec) == 0);
	json_decref(j);
	assert(table_parse(base_events, strlen(base_events), &t, &pb) == 0);
	{
		const struct table *tabs[] = { t };

		assert(feat_hist_build(spec, tabs, 1, INFINITY, &buf, &len,
				       &info, &pb) == 0);
	}
	table_free(t);
	assert(feat_hist_load(buf, len, spec, &base, why, sizeof(why)) == 0);
	base.owned = buf;
}

static void events_csv(const char *p, size_t n)
{
	struct problem pb = { 0 };
	struct table *t = NULL;
	struct feat_hist h;
	struct feat_build_info info = { 0 };
	size_t len;
	void *buf;
	char why[128];

	if (table_parse(p, n, &t, &pb) < 0)
		return;
	{
		const struct table *tabs[] = { t, t };

		if (feat_hist_build(spec, tabs, 2, 1e9, &buf, &len, &info,
				    &pb) == 0) {
			assert(feat_hist_load(buf, len, spec, &h, why,
					      sizeof(why)) == 0);
			h.owned = buf;
			exercise(&h);
			feat_hist_free(&h);
		}
	}
	table_free(t);
}

static void history(const char *p, size_t n)
{
	void *copy = malloc(n + 8);
	struct feat_hist h;
	char why[128];

	if (!copy)
		return;
	memcpy(copy, p, n);
	if (feat_hist_load(copy, n, spec, &h, why, sizeof(why)) == 0) {
		exercise(&h);
		feat_hist_free(&h);
	}
	free(copy);
}

static void event_rows(const char *p, size_t n)
{
	const char *nl = memchr(p, '\n', n);
	struct feat_batch b = { 0 };
	struct problem pb = { 0 };
	bool *cat = calloc(spec->ncols + 1, sizeof(*cat));
	int rc;

	if (n && p[0] == '{')
		rc = feat_rows_parse(spec, NULL, 0, p, n, 1, &b, &pb);
	else if (nl)
		rc = feat_rows_parse(spec, p, (size_t)(nl - p), nl + 1,
				     n - (size_t)(nl - p) - 1, 2, &b, &pb);
	else
		rc = -1;
	feat_batch_seal(&b);
	if (rc == 0 && b.n && cat) {
		struct feat_event *ev = calloc(b.n, sizeof(*ev));
		struct feat_hist h;
		size_t klen, len;
		const char *key = feat_batch_key(&b, 0, &klen);
		char why[128];
		void *buf;

		for (size_t c = 0; c < spec->ncols; c++)
			cat[c] = c == 1; /* y: categorical, as in base */
		bool fits = ev != NULL;

		for (size_t i = 0; fits && i < b.n; i++) {
			ev[i] = b.ev[i];
			for (size_t c = 0; c < spec->ncols; c++)
				if (!cat[c] && ev[i].str[c] &&
				    isnan(ev[i].num[c]))
					fits = false; /* what apply refuses */
		}
		if (fits && feat_hist_merge(NULL, cat, spec->ncols, key, klen,
					  b.iso, ev, b.n, &buf, &len) == 0) {
			assert(feat_hist_load(buf, len, spec, &h, why,
					      sizeof(why)) == 0);
			h.owned = buf;
			exercise(&h);
			feat_hist_free(&h);
		}
		free(ev);
	}
	feat_batch_free(&b);
	free(cat);
}

static void join_rows(const char *p, size_t n)
{
	struct strbuf whole = { 0 }, bytes = { 0 };
	struct jstream *a, *b;

	if (jstream_new(spec, find_in, &base, &a) < 0)
		return;
	if (jstream_new(spec, find_in, &base, &b) < 0) {
		jstream_free(a);
		return;
	}
	jstream_write(a, p, n, &whole);
	jstream_finish(a, &whole);
	for (size_t i = 0; i < n; i++)
		jstream_write(b, p + i, 1, &bytes);
	jstream_finish(b, &bytes);
	assert(whole.len == bytes.len &&
	       (!whole.len || memcmp(whole.buf, bytes.buf, whole.len) == 0));
	sb_free(&whole);
	sb_free(&bytes);
	jstream_free(a);
	jstream_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data + 1;

	setup_once();
	if (!size)
		return 0;
	switch (data[0] & 3) {
	case 0:
		events_csv(p, size - 1);
		break;
	case 1:
		history(p, size - 1);
		break;
	case 2:
		event_rows(p, size - 1);
		break;
	default:
		join_rows(p, size - 1);
		break;
	}
	return 0;
}
