/* SPDX-License-Identifier: MIT */
/*
 * featcalc: values as of an instant computed by hand around window edges,
 * ties, min/max handling, ttl; offline.csv; bad events; and a history
 * the loader must refuse whatever byte is changed in it.
 */
#include <errno.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "failalloc.h"
#include "featcalc.h"
#include "featevents.h"
#include "featjoin.h"
#include "featspec.h"
#include "featstate.h"
#include "strbuf.h"
#include "tap.h"

static const char *const spec_text =
	"{\"entity\": \"c\", \"timestamp\": \"ts\", \"ttl\": \"10d\",\n"
	" \"features\": [\n"
	"  {\"name\": \"n1h\", \"agg\": \"count\", \"window\": \"1h\"},\n"
	"  {\"name\": \"s2h\", \"column\": \"amount\", \"agg\": \"sum\", "
	"\"window\": \"2h\"},\n"
	"  {\"name\": \"m\", \"column\": \"amount\", \"agg\": \"mean\"},\n"
	"  {\"name\": \"country\", \"column\": \"country\"},\n"
	"  {\"name\": \"mx\", \"column\": \"amount\", \"agg\": \"max\", "
	"\"window\": \"1d\"},\n"
	"  {\"name\": \"sd\", \"column\": \"amount\", \"agg\": \"std\"},\n"
	"  {\"name\": \"age\", \"column\": \"age\", \"min\": 18, \"max\": 120},\n"
	"  {\"name\": \"agec\", \"column\": \"age\", \"agg\": \"max\", "
	"\"min\": 18, \"max\": 120, \"on_violation\": \"clip\"}]}";

static const char *const events =
	"ts,c,amount,country,age\n"
	"3600,a,30,,10\n"
	"0,a,10,US,30\n"
	"1800,a,20,FR,150\n"
	"100,b,1,US,25\n"
	"3600,a,5,DE,40\n"
	"7201,a,NA,NA,NA\n"
	"50,,7,US,20\n";

static const char *const offline_want =
	"c,ts,n1h,s2h,m,country,mx,sd,age,agec\n"
	"a,0,1,10,10,US,10,,30,30\n"
	"a,1800,2,30,15,FR,20,7.0710678118654755,30,120\n"
	"a,3600,3,65,16.25,DE,30,11.086778913041726,40,120\n"
	"a,7201,1,55,16.25,DE,30,11.086778913041726,40,120\n"
	"b,100,1,1,1,US,1,,25,25\n";

static struct feat_spec *compile(const char *text)
{
	struct problem pb = { 0 };
	struct feat_spec *s = NULL;
	json_t *j = NULL;

	if (featspec_check(text, strlen(text), true, &j, &pb) < 0) {
		printf("# spec: %u:%u: %s\n", pb.line, pb.col, pb.msg);
		return NULL;
	}
	feat_spec_compile(j, &s);
	json_decref(j);
	return s;
}

static int build(const struct feat_spec *s, const char *csv, void **buf,
		 size_t *len, uint64_t *skipped, struct problem *pb)
{
	struct table *t;
	int rc = table_parse(csv, strlen(csv), &t, pb);

	if (rc < 0)
		return rc;
	{
		const struct table *tabs[] = { t };
		struct feat_build_info info = { 0 };

		rc = feat_hist_build(s, tabs, 1, INFINITY, buf, len, &info, pb);
		*skipped = info.skipped;
	}
	table_free(t);
	return rc;
}

static int put(void *arg, const char *p, size_t n)
{
	return sb_append(arg, p, n);
}

/* The values of key as of t, as "v,v,...". */
static void asof_text(const struct feat_spec *s, const struct feat_hist *h,
		      const char *key, double t, struct strbuf *sb)
{
	double v[16];
	long k = feat_hist_find(h, key, strlen(key));

	sb->len = 0;
	sb_append(sb, "", 0);
	if (k < 0) {
		sb_puts(sb, "none");
		return;
	}
	feat_asof(s, h, (size_t)k, t, v);
	for (size_t i = 0; i < s->nfeat; i++) {
		if (i)
			sb_append(sb, ",", 1);
		feat_put_value(sb, s, h, i, v[i]);
	}
	sb_append(sb, "", 1);
	sb->len--;
}

static void test_values(void)
{
	struct feat_spec *s = compile(spec_text);
	struct strbuf sb = { 0 };
	struct problem pb = { 0 };
	struct feat_hist h;
	uint64_t skipped;
	json_t *stats = NULL;
	char why[128];
	void *buf;
	size_t len;

	ok(s != NULL, "spec compiles");
	is_int(build(s, events, &buf, &len, &skipped, &pb), 0, "history built");
	is_int(skipped, 1, "the row without an entity is skipped");
	is_int(feat_hist_load(buf, len, s, &h, why, sizeof(why)), 0,
	       "history loads");
	is_int(h.nkeys, 2, "two entities");
	is_int(h.nev, 6, "six events");
	h.owned = buf;

	asof_text(s, &h, "a", -1, &sb);
	is_str(sb.buf, ",,,,,,,", "before the first event: all missing");
	asof_text(s, &h, "a", 1799, &sb);
	is_str(sb.buf, "1,10,10,US,10,,30,30", "as of 1799: the first only");
	asof_text(s, &h, "a", 3599, &sb);
	is_str(sb.buf, "2,30,15,FR,20,7.0710678118654755,30,120",
	       "3599: 0 is still in (-1, 3599]; 150 dropped (null), "
	       "clipped to 120 (clip)");
	asof_text(s, &h, "a", 3600, &sb);
	is_str(sb.buf, "3,65,16.25,DE,30,11.086778913041726,40,120",
	       "3600: both events at 3600, in row order (DE last)");
	asof_text(s, &h, "a", 3600 + 3600, &sb);
	is_str(sb.buf, "0,55,16.25,DE,30,11.086778913041726,40,120",
	       "7200: (3600, 7200] for 1h holds nothing; (0, 7200] for 2h");
	asof_text(s, &h, "a", 7201 + 864000, &sb);
	is_str(sb.buf, "0,0,16.25,DE,,11.086778913041726,40,120",
	       "ttl edge: newest event exactly ttl old is kept; empty "
	       "windows: count 0, sum 0, max missing");
	asof_text(s, &h, "a", 7201 + 864000 + 0.5, &sb);
	is_str(sb.buf, ",,,,,,,", "past the ttl: all missing");
	asof_text(s, &h, "zz", 5, &sb);
	is_str(sb.buf, "none", "an unknown key is not found");

	sb.len = 0;
	is_int(feat_offline(s, &h, -INFINITY, put, &sb, &stats), 0, "offline.csv");
	sb_append(&sb, "", 1);
	is_str(sb.buf, offline_want, "offline.csv as computed by hand");
	is_int(json_integer_value(json_object_get(stats, "rows")), 5,
	       "stats: rows");
	is_int(json_integer_value(json_object_get(
		       json_object_get(json_object_get(stats, "features"),
				       "age"),
		       "outside")),
	       2, "stats: two ages outside [18, 120]");
	is_int(json_integer_value(json_object_get(
		       json_object_get(json_object_get(stats, "features"),
				       "sd"),
		       "missing")),
	       2, "stats: sd missing on two rows");
	json_decref(stats);
	feat_hist_free(&h);
	sb_free(&sb);
	feat_spec_free(s);
}

static void test_iso(void)
{
	struct feat_spec *s = compile(
		"{\"entity\": [\"k1\", \"k2\"], \"timestamp\": \"at\", "
		"\"features\": [{\"name\": \"n\", \"agg\": \"count\", "
		"\"window\": \"1d\"}]}");
	struct strbuf sb = { 0 };
	struct problem pb = { 0 };
	struct feat_hist h;
	uint64_t skipped;
	json_t *stats = NULL;
	char why[128];
	void *buf;
	size_t len;

	is_int(build(s,
		     "k1,k2,at\nx,\"1,2\",2026-01-01T00:00:00Z\n"
		     "x,\"1,2\",2026-01-01T12:00:00.25+02:00\n"
		     "x,3,2026-01-02\n",
		     &buf, &len, &skipped, &pb),
	       0, "ISO times and a composite key");
	is_int(feat_hist_load(buf, len, s, &h, why, sizeof(why)), 0, "loads");
	h.owned = buf;
	is_int(feat_offline(s, &h, -INFINITY, put, &sb, &stats), 0, "offline.csv");
	sb_append(&sb, "", 1);
	is_str(sb.buf,
	       "k1,k2,at,n\n"
	       "x,\"1,2\",2026-01-01T00:00:00Z,1\n"
	       "x,\"1,2\",2026-01-01T10:00:00.25Z,2\n"
	       "x,3,2026-01-02T00:00:00Z,1\n",
	       "times written back in UTC; entity values quoted as needed");
	ok(feat_hist_find(&h, "x\x1f" "1,2", 5) == 0, "composite key found");
	json_decref(stats);
	feat_hist_free(&h);
	sb_free(&sb);
	feat_spec_free(s);
}

static const struct {
	const char *csv;
	unsigned line, col;
	const char *msg;
} bad_events[] = {
	{ "c,amount,country,age\na,1,US,3\n", 1, 0,
	  "no column \"ts\" in the events' header" },
	{ "ts,c,amount,country,age\n1,a,1,US,30\nyesterday,a,1,US,30\n", 3,
	  1,
	  "\"ts\": \"yesterday\" is neither seconds since the epoch nor an "
	  "ISO 8601 time" },
	{ "ts,c,amount,country,age\n1,a,1,US,30\n2,a,abc,US,30\n", 3, 3,
	  "\"amount\": \"abc\" is not a number" },
	{ "ts,c,amount,country,age\n1,a,1,US,30\n2,a,1,US,2026-01-01\n", 3,
	  5, "\"age\": \"2026-01-01\" is not a number" },
	{ "ts,c,amount,country,age\n1,a,1,US,30\n253402300800,a,1,US,3\n", 3,
	  1, "\"ts\": \"253402300800\" is outside the years 0000 to 9999" },
};

static void test_bad_events(void)
{
	struct feat_spec *s = compile(spec_text);
	struct feat_spec *r = compile(
		"{\"entity\": \"c\", \"timestamp\": \"ts\", \"features\": "
		"[{\"name\": \"a\", \"column\": \"amount\", \"max\": 9, "
		"\"on_violation\": \"reject\"}]}");

	for (size_t i = 0; i < sizeof(bad_events) / sizeof(bad_events[0]);
	     i++) {
		struct problem pb = { 0 };
		uint64_t skipped;
		void *buf = (void *)1;
		size_t len;

		is_int(build(s, bad_events[i].csv, &buf, &len, &skipped, &pb),
		       -EINVAL, bad_events[i].msg);
		is_int(pb.line, bad_events[i].line, "its line");
		is_int(pb.col, bad_events[i].col, "its column");
		is_str(pb.msg, bad_events[i].msg, "its message");
		ok(buf == NULL, "nothing built");
	}
	{
		struct problem pb = { 0 };
		uint64_t skipped;
		void *buf;
		size_t len;

		is_int(build(r, "ts,c,amount\n1,a,9\n2,a,9.5\n", &buf, &len,
			     &skipped, &pb),
		       -EINVAL, "reject refuses a value over max");
		is_int(pb.line, 3, "its line");
		is_str(pb.msg,
		       "feature \"a\": 9.5 outside [-inf, 9] (on_violation "
		       "reject)",
		       "its message");
	}
	feat_spec_free(s);
	feat_spec_free(r);
}

/* Every byte changed, every length cut: loaded or refused, never read out
 * of bounds (the sanitizers watch), and what loads answers queries. */
static void test_load_hostile(void)
{
	struct feat_spec *s = compile(spec_text);
	struct problem pb = { 0 };
	uint64_t skipped;
	void *buf;
	size_t len, refused = 0;
	char why[128];

	build(s, events, &buf, &len, &skipped, &pb);
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit += 3) {
			unsigned char *p = buf;
			struct feat_hist h;
			double v[16];

			p[i] ^= (unsigned char)(1u << bit);
			if (feat_hist_load(buf, len, s, &h, why,
					   sizeof(why)) == 0) {
				for (size_t k = 0; k < h.nkeys; k++) {
					struct strbuf sb = { 0 };

					feat_asof(s, &h, k, 3600, v);
					for (size_t f = 0; f < s->nfeat; f++)
						feat_put_value(&sb, s, &h, f,
							       v[f]);
					sb_free(&sb);
				}
				feat_hist_free(&h);
			} else {
				refused++;
			}
			p[i] ^= (unsigned char)(1u << bit);
		}
	}
	ok(refused > 0, "changed histories are refused");
	{
		size_t loaded = 0;

		for (size_t cut = 0; cut < len; cut++) {
			struct feat_hist h;

			if (feat_hist_load(buf, cut, s, &h, why,
					   sizeof(why)) == 0) {
				feat_hist_free(&h);
				loaded++;
			}
		}
		is_int(loaded, 0, "every cut history is refused");
	}
	free(buf);
	feat_spec_free(s);
}

static int find_in(void *arg, const char *key, size_t klen,
		   const struct feat_hist **h, size_t *k)
{
	long i = feat_hist_find(arg, key, klen);

	*h = i >= 0 ? arg : NULL;
	*k = i >= 0 ? (size_t)i : 0;
	return i >= 0 ? 0 : -ENOENT;
}

/* join: rows in pieces, headers, quoting and bad rows */
static const struct {
	const char *in;
	const char *out;
	int rc;
	const char *name;
} joins[] = {
	{ "a,3600\n", "c,ts,n1h,s2h,m,country,mx,sd,age,agec\n"
		       "a,3600,3,65,16.25,DE,30,11.086778913041726,40,120\n",
	  0, "a row" },
	{ "ts,x,c\n3600,\"q,\"\"r\",a\n",
	  "ts,x,c,n1h,s2h,m,country,mx,sd,age,agec\n"
	  "3600,\"q,\"\"r\",a,3,65,16.25,DE,30,11.086778913041726,40,120\n",
	  0, "a header in another order, a quoted column passed through" },
	{ "a,3600\r\nb,100", "c,ts,n1h,s2h,m,country,mx,sd,age,agec\n"
			     "a,3600,3,65,16.25,DE,30,11.086778913041726,"
			     "40,120\nb,100,1,1,1,US,1,,25,25\n",
	  0, "CRLF, and a last row without a newline" },
	{ "a,3600,x\n", "c,ts,n1h,s2h,m,country,mx,sd,age,agec\n"
			"error: line 1: expected 2 fields (entity, time), "
			"got 3\n",
	  -EIO, "too many fields" },
	{ "a,\"36\n", "error: line 1: column 3: unterminated quoted field\n",
	  -EIO, "bad quoting" },
	{ "a,NaN\n", "c,ts,n1h,s2h,m,country,mx,sd,age,agec\n"
		      "error: line 1: \"ts\": \"NaN\" is not a time (ISO "
		      "8601 or seconds since the epoch)\n",
	  -EIO, "a missing time" },
	{ "zz,1\n,2\n", "c,ts,n1h,s2h,m,country,mx,sd,age,agec\n"
			"zz,1,,,,,,,,\n,2,,,,,,,,\n",
	  0, "unknown and empty entities: every feature missing" },
};

static void test_join(void)
{
	struct feat_spec *s = compile(spec_text);
	struct problem pb = { 0 };
	struct feat_hist h;
	uint64_t skipped;
	char why[128];
	void *buf;
	size_t len;

	build(s, events, &buf, &len, &skipped, &pb);
	feat_hist_load(buf, len, s, &h, why, sizeof(why));
	h.owned = buf;
	for (size_t i = 0; i < sizeof(joins) / sizeof(joins[0]); i++) {
		/* whole, then a byte a write */
		for (int bytewise = 0; bytewise < 2; bytewise++) {
			struct strbuf out = { 0 };
			struct jstream *js;
			size_t n = strlen(joins[i].in);
			int rc = 0, r;

			jstream_new(s, find_in, &h, &js);
			for (size_t o = 0; o < n; o += bytewise ? 1 : n) {
				r = jstream_write(js, joins[i].in + o,
						  bytewise ? 1 : n, &out);
				rc = rc ? rc : r;
			}
			r = jstream_finish(js, &out);
			rc = rc ? rc : r;
			sb_append(&out, "", 1);
			is_str(out.buf, joins[i].out, joins[i].name);
			is_int(rc, joins[i].rc, "its return");
			jstream_free(js);
			sb_free(&out);
		}
	}
	{
		struct strbuf out = { 0 };
		struct jstream *js;
		char *big = malloc((1 << 20) + 10);

		memset(big, 'a', (1 << 20) + 8);
		memcpy(big + (1 << 20) + 8, "\n", 2);
		jstream_new(s, find_in, &h, &js);
		is_int(jstream_write(js, big, (1 << 20) + 9, &out), -E2BIG,
		       "a row past 1 MiB");
		is_int(jstream_write(js, "a,0\n", 4, &out), 0,
		       "the next row is read");
		sb_append(&out, "", 1);
		is_str(out.buf,
		       "error: line 1: row longer than 1048576 bytes\n"
		       "c,ts,n1h,s2h,m,country,mx,sd,age,agec\n"
		       "a,0,1,10,10,US,10,,30,30\n",
		       "answered with an error, then the next");
		free(big);
		jstream_free(js);
		sb_free(&out);
	}
	feat_hist_free(&h);
	feat_spec_free(s);
}

/* A key's slice (the online store's record) answers as the whole does. */
static void test_slice(void)
{
	static const double at[] = { -1, 0, 100, 1799, 3600, 7200, 7201,
				     871201, 871202 };
	struct feat_spec *s = compile(spec_text);
	struct problem pb = { 0 };
	struct feat_hist h;
	uint64_t skipped;
	char why[128];
	void *buf;
	size_t len, same = 0, total = 0;

	build(s, events, &buf, &len, &skipped, &pb);
	feat_hist_load(buf, len, s, &h, why, sizeof(why));
	h.owned = buf;
	for (size_t k = 0; k < h.nkeys; k++) {
		struct feat_hist one;
		void *sb;
		size_t sl;

		is_int(feat_hist_slice(&h, k, &sb, &sl), 0, "sliced");
		is_int(feat_hist_load(sb, sl, s, &one, why, sizeof(why)), 0,
		       "the slice loads");
		one.owned = sb;
		is_int(one.nkeys, 1, "one key");
		for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
			struct strbuf a = { 0 }, b = { 0 };
			double va[16], vb[16];

			feat_asof(s, &h, k, at[i], va);
			feat_asof(s, &one, 0, at[i], vb);
			for (size_t f = 0; f < s->nfeat; f++) {
				feat_put_value(&a, s, &h, f, va[f]);
				sb_append(&a, ",", 1);
				feat_put_value(&b, s, &one, f, vb[f]);
				sb_append(&b, ",", 1);
			}
			same += a.len == b.len && !memcmp(a.buf, b.buf, a.len);
			total++;
			sb_free(&a);
			sb_free(&b);
		}
		feat_hist_free(&one);
	}
	is_int(same, total, "every value of every slice, at every instant");
	feat_hist_free(&h);
	feat_spec_free(s);
}

/* Events merged into a key's record answer as a history built with them. */
static void test_merge(void)
{
	static const double at[] = { 3600, 6999, 7000, 7201, 9000, 99999 };
	struct feat_spec *s = compile(spec_text);
	struct problem pb = { 0 };
	struct feat_hist h, h2, a1, a2, mg;
	uint64_t skipped;
	char why[128], *all;
	void *b1, *b2, *s1, *s2, *mb;
	size_t l1, l2, sl1, sl2, ml, same = 0, total = 0;
	/* columns: amount, country, age */
	const double n1[] = { 100, NAN, 50 }, n2[] = { 1, NAN, NAN };
	const char *t1[] = { NULL, "IT", NULL }, *t2[] = { NULL, NULL, NULL };
	const size_t z1[] = { 0, 2, 0 }, z2[] = { 0, 0, 0 };
	const struct feat_event ev[] = { { 9000, n2, t2, z2 },
					 { 7000, n1, t1, z1 } };

	build(s, events, &b1, &l1, &skipped, &pb);
	feat_hist_load(b1, l1, s, &h, why, sizeof(why));
	h.owned = b1;
	if (asprintf(&all, "%s3600,a,1.5,,\n7000,a,100,IT,50\n9000,a,1,NA,NA\n",
		     events) < 0)
		return;
	is_int(build(s, all, &b2, &l2, &skipped, &pb), 0, "the whole built");
	feat_hist_load(b2, l2, s, &h2, why, sizeof(why));
	h2.owned = b2;
	feat_hist_slice(&h, (size_t)feat_hist_find(&h, "a", 1), &s1, &sl1);
	feat_hist_load(s1, sl1, s, &a1, why, sizeof(why));
	a1.owned = s1;
	feat_hist_slice(&h2, (size_t)feat_hist_find(&h2, "a", 1), &s2, &sl2);
	feat_hist_load(s2, sl2, s, &a2, why, sizeof(why));
	a2.owned = s2;
	{
		/* a tie at 3600 (after the old events there), a late event
		 * and a new one, given out of order */
		const double n0[] = { 1.5, NAN, NAN };
		const struct feat_event e3[] = { ev[0], { 3600, n0, t2, z2 },
						 ev[1] };

		is_int(feat_hist_merge(&a1, NULL, s->ncols, "a", 1, false, e3,
				       3, &mb, &ml),
		       0, "merged");
	}
	is_int(feat_hist_load(mb, ml, s, &mg, why, sizeof(why)), 0,
	       "the merge loads");
	mg.owned = mb;
	is_int(mg.nev, a2.nev, "as many events");
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		struct strbuf x = { 0 }, y = { 0 };
		double vx[16], vy[16];

		feat_asof(s, &a2, 0, at[i], vx);
		feat_asof(s, &mg, 0, at[i], vy);
		for (size_t f = 0; f < s->nfeat; f++) {
			feat_put_value(&x, s, &a2, f, vx[f]);
			sb_append(&x, ",", 1);
			feat_put_value(&y, s, &mg, f, vy[f]);
			sb_append(&y, ",", 1);
		}
		same += x.len == y.len && !memcmp(x.buf, y.buf, x.len);
		total++;
		sb_free(&x);
		sb_free(&y);
	}
	is_int(same, total, "merged and built answer alike at every instant");
	{
		bool cat[3] = { false, true, false };
		void *nb;
		size_t nl;
		struct feat_hist nh;
		double v[16];
		struct strbuf out = { 0 };

		is_int(feat_hist_merge(NULL, cat, 3, "new", 3, false, ev, 2,
				       &nb, &nl),
		       0, "a new key");
		is_int(feat_hist_load(nb, nl, s, &nh, why, sizeof(why)), 0,
		       "loads");
		nh.owned = nb;
		feat_asof(s, &nh, 0, 9000, v);
		for (size_t f = 0; f < s->nfeat; f++) {
			feat_put_value(&out, s, &nh, f, v[f]);
			sb_append(&out, ",", 1);
		}
		sb_append(&out, "", 1);
		is_str(out.buf, "2,101,50.5,IT,100,70.0035713374682,50,50,",
		       "its values");
		sb_free(&out);
		feat_hist_free(&nh);
	}
	free(all);
	feat_hist_free(&mg);
	feat_hist_free(&a1);
	feat_hist_free(&a2);
	feat_hist_free(&h);
	feat_hist_free(&h2);
	feat_spec_free(s);
}


/* The features of h (one key) as of t, as text, from a state or not. */
static void values_text(const struct feat_spec *s, const struct feat_hist *h,
			const double *v, struct strbuf *sb)
{
	sb->len = 0;
	for (size_t f = 0; f < s->nfeat; f++) {
		feat_put_value(sb, s, h, f, v[f]);
		sb_append(sb, ",", 1);
	}
}

/*
 * Online records (featstate.c) against the whole history: random events
 * of one entity in random batches, some late within allowed_lateness,
 * a record updated batch by batch as the wall clock moves; at every
 * instant a record covers, the same text as feat_asof over every event.
 */
static void test_state(void)
{
	static const char *const countries[] = { "US", "FR", "DE", "IT", "ES" };
	struct feat_spec *s = compile(spec_text);
	enum { N = 2000 };
	static double num[N][3];
	static const char *str[N][3];
	static size_t slen[N][3];
	struct feat_event *ev = calloc(N, sizeof(*ev));
	bool cat[3] = { false, true, false };
	struct feat_state st = { 0 };
	struct strbuf x = { 0 }, y = { 0 };
	double clock = 1e6, newest = 0;
	size_t same = 0, total = 0, covered = 0, kept_max = 0;
	char why[128];

	srand(13);
	for (size_t i = 0; i < N; i++) {
		double late = rand() % 8 == 0 ? (double)(rand() % 86400) : 0;

		clock += rand() % 1800;
		ev[i].t = clock - late; /* late: within a day, the lateness 1d */
		num[i][0] = rand() % 10 ? (double)(rand() % 1000) / 8 : NAN;
		num[i][1] = NAN;
		num[i][2] = rand() % 5 ? (double)(rand() % 200) : NAN;
		str[i][1] = rand() % 4 ? countries[rand() % 5] : NULL;
		slen[i][1] = str[i][1] ? 2 : 0;
		ev[i].num = num[i];
		ev[i].str = str[i];
		ev[i].slen = slen[i];
	}
	for (size_t done = 0; done < N;) {
		size_t n = 1 + (size_t)(rand() % 40);
		void *rb, *hb;
		size_t rl, hl;
		struct feat_state nst;
		struct feat_hist all;
		double now;

		if (n > N - done)
			n = N - done;
		for (size_t i = done; i < done + n; i++)
			newest = ev[i].t > newest ? ev[i].t : newest;
		now = newest + (double)(rand() % 600);
		if (feat_state_update(s, done ? &st : NULL, cat, "a", 1, false,
				      ev + done, n, now, &rb, &rl) < 0 ||
		    feat_state_load(rb, rl, s, &nst, why, sizeof(why)) < 0) {
			printf("# at event %zu: %s\n", done, why);
			ok(0, "an update");
			break;
		}
		nst.owned = rb;
		feat_state_free(&st);
		st = nst;
		done += n;
		kept_max = st.h.nev > kept_max ? st.h.nev : kept_max;
		feat_hist_merge(NULL, cat, 3, "a", 1, false, ev, done, &hb, &hl);
		feat_hist_load(hb, hl, s, &all, why, sizeof(why));
		all.owned = hb;
		for (double t = now - 7200; t <= now + 12 * 86400; t += 3 * 3600) {
			double va[16], vb[16];

			if (!feat_state_covers(s, &st, t))
				continue;
			covered++;
			feat_asof(s, &all, 0, t, va);
			feat_state_asof(s, &st, t, vb);
			values_text(s, &all, va, &x);
			values_text(s, &st.h, vb, &y);
			if (x.len == y.len && !memcmp(x.buf, y.buf, x.len))
				same++;
			else if (total - same < 3)
				printf("# at %.0f: %.*s against %.*s\n", t,
				       (int)x.len, x.buf, (int)y.len, y.buf);
			total++;
		}
		feat_hist_free(&all);
	}
	printf("# %zu instants covered, %zu events kept at most\n", covered,
	       kept_max);
	ok(covered > 1000, "instants covered");
	is_int(same, total, "a record answers as every event does");
	ok(kept_max < N / 4, "a record keeps a fraction of the events");
	ok(feat_state_covers(s, &st, newest + 1) &&
		   !feat_state_covers(s, &st, st.cutoff),
	   "it covers now, and not its cutoff");
	{
		/* an event older than the cutoff: in count, min, max (base)
		 * and in no window */
		const double n0[] = { -5, NAN, NAN };
		const char *t0[] = { NULL, NULL, NULL };
		const size_t z0[] = { 0, 0, 0 };
		const struct feat_event old = { st.cutoff - 86400, n0, t0, z0 };
		double before[16], after[16];
		struct feat_state nst;
		void *rb;
		size_t rl;

		feat_state_asof(s, &st, newest + 1, before);
		feat_state_update(s, &st, cat, "a", 1, false, &old, 1,
				  newest + 1, &rb, &rl);
		feat_state_load(rb, rl, s, &nst, why, sizeof(why));
		nst.owned = rb;
		feat_state_asof(s, &nst, newest + 1, after);
		ok(after[0] == before[0] && after[1] == before[1] &&
			   after[4] == before[4],
		   "a late event changes no window");
		ok(after[2] < before[2], "it moves the mean of every event");
		feat_state_free(&nst);
	}
	feat_state_free(&st);
	sb_free(&x);
	sb_free(&y);
	free(ev);
	feat_spec_free(s);
}

/* The event log after a source: rows left out when lenient, late ones. */
static void test_build_info(void)
{
	/* amount typed: text in it is refused, not a category */
	struct feat_spec *s = compile(
		"{\"entity\": \"c\", \"timestamp\": \"ts\", \"features\": [\n"
		" {\"name\": \"n\", \"agg\": \"count\", \"window\": \"1d\"},\n"
		" {\"name\": \"s\", \"column\": \"amount\", \"agg\": \"sum\", "
		"\"type\": \"numeric\"}]}");
	struct problem pb = { 0 };
	struct table *src, *log;
	void *buf = NULL;
	size_t len;

	table_parse(events, strlen(events), &src, &pb);
	table_parse("ts,c,amount,country,age\n200000,a,1,US,30\n"
		    "100,a,2,US,30\n150000,a,zz,US,30\n150000,a,3,US,30\n",
		    strlen("ts,c,amount,country,age\n200000,a,1,US,30\n"
			   "100,a,2,US,30\n150000,a,zz,US,30\n"
			   "150000,a,3,US,30\n"),
		    &log, &pb);
	{
		const struct table *tabs[] = { src, log };
		struct feat_build_info info = { 0 };

		is_int(feat_hist_build(s, tabs, 2, INFINITY, &buf, &len, &info,
				       &pb),
		       -EINVAL, "strict: a bad row of the log fails");
		is_int(info.which, 1, "in the log");
		free(buf);
		buf = NULL;
		info = (struct feat_build_info){ .lenient = true };
		is_int(feat_hist_build(s, tabs, 2, INFINITY, &buf, &len, &info,
				       &pb),
		       0, "lenient: it is left out");
		if (info.refused != 1)
			printf("# %u:%u: %s\n", pb.line, pb.col, pb.msg);
		is_int(info.refused, 1, "counted as refused");
		/* 100 is over a day (the lateness) before 200000; 150000 is
		 * not, and the source's rows are never late */
		is_int(info.late, 1, "one late row");
		is_int(info.skipped, 1, "the source's row without an entity");
		free(buf);
	}
	table_free(src);
	table_free(log);
	feat_spec_free(s);
}

/* Event rows: the bad-input table (CSV after a header, JSON lines). */
static const struct {
	const char *header; /* NULL: JSON lines */
	const char *rows;
	int rc;
	unsigned line, col;
	const char *msg;
	size_t n;
	const char *csv;    /* the log's rows */
} erows[] = {
	{ "ts,c,amount,country,age", "5,a,1.5,US,30\n6,\"b,1\",,\"x\"\"y\",\n",
	  0, 0, 0, "", 2, "a,5,1.5,US,30\n\"b,1\",6,,\"x\"\"y\",\n" },
	{ "c,ts", "a,2026-01-01T00:00:00Z\r\n", 0, 0, 0, "", 1,
	  "a,2026-01-01T00:00:00Z,,,\n" },
	{ "c,amount", "a,1\n", -EINVAL, 1, 0,
	  "the header has no column \"ts\"", 0, "" },
	{ "ts,c", "1,a\n2,a,3\n", -EINVAL, 3, 0,
	  "record has 3 fields, header has 2", 1, "a,1,,,\n" },
	{ "ts,c", "1,\n", -EINVAL, 2, 2,
	  "\"c\": an entity value is needed (without the byte 0x1f)", 0, "" },
	{ "ts,c", "soon,a\n", -EINVAL, 2, 1,
	  "\"ts\": not a time (ISO 8601 or seconds since the epoch)", 0,
	  "" },
	{ "ts,c", "1,\"a\n", -EINVAL, 2, 3, "unterminated quoted field", 0,
	  "" },
	{ "ts,c", "1e300,a\n", -EINVAL, 2, 1,
	  "\"ts\": outside the years 0000 to 9999", 0, "" },
	/* the header in the log's order: plain rows go to the log as they
	 * came, the others as the fields they hold */
	{ "c,ts,amount,country,age", "a,5,1.5,US,30\nb,6,,FR,\n", 0, 0, 0,
	  "", 2, "a,5,1.5,US,30\nb,6,,FR,\n" },
	{ "c,ts,amount,country,age\r", "a,5,1.5,US,30\r\nb,6,2,DE,40\r\n", 0,
	  0, 0, "", 2, "a,5,1.5,US,30\nb,6,2,DE,40\n" },
	{ "c,ts,amount,country,age", "a,5,NA,US, n/a \nb,6,?,,NULL\n", 0, 0,
	  0, "", 2, "a,5,,US,\nb,6,,,\n" },
	{ "c,ts,amount,country,age",
	  "\"a\",5,\"1,5\",\"U\"\"S\",30\nb,\"6\",1,,\"\"\n", 0, 0, 0, "", 2,
	  "a,5,\"1,5\",\"U\"\"S\",30\nb,6,1,,\n" },
	{ "c,ts,amount,country,age", "a,5,1,U\rS,30\n\xc3\xa9,6,2,FR,31\n", 0,
	  0, 0, "", 2, "a,5,1,\"U\rS\",30\n\xc3\xa9,6,2,FR,31\n" },
	{ "c,ts,amount,country,age,extra", "a,5,1,US,30,x\n", 0, 0, 0, "", 1,
	  "a,5,1,US,30\n" },
	{ "c,ts,amount,country,age", "a,5,1,US,30\nb,6,1,US\n", -EINVAL, 3, 0,
	  "record has 4 fields, header has 5", 1, "a,5,1,US,30\n" },
	{ "c,ts,amount,country,age", "a,5,1,US,30,9\n", -EINVAL, 2, 0,
	  "record has 6 fields, header has 5", 0, "" },
	{ "c,ts,amount,country,age", "a,5,1,US,30\n\nb,6,1,US,30\n", -EINVAL,
	  3, 0, "record has 1 fields, header has 5", 1, "a,5,1,US,30\n" },
	{ "c,ts,amount,country,age", "a,soon,1,US,30\n", -EINVAL, 2, 2,
	  "\"ts\": not a time (ISO 8601 or seconds since the epoch)", 0, "" },
	{ "c,ts,amount,country,age", "a,5,1,US,30\n,6,1,US,30\n", -EINVAL, 3,
	  1, "\"c\": an entity value is needed (without the byte 0x1f)", 1,
	  "a,5,1,US,30\n" },
	{ "c,ts,amount,country,age", "a,5,1\"2,US,30\n", -EINVAL, 2, 6,
	  NULL, 0, "" },
	{ "c,ts,amount,country,age", "a,5,1,US,\xff\n", -EINVAL, 2, 10,
	  NULL, 0, "" },
	{ NULL, "{\"c\": \"a\", \"ts\": 7, \"amount\": 2.5, \"age\": null}\n"
		"{\"c\": 12, \"ts\": \"1970-01-01T00:00:08Z\"}\n",
	  0, 0, 0, "", 2, "a,7,2.5,,\n12,1970-01-01T00:00:08Z,,,\n" },
	{ NULL, "[1]\n", -EINVAL, 2, 1, "not a JSON object", 0, "" },
	{ NULL, "{\"c\": \"a\"}\n", -EINVAL, 2, 0, "\"ts\": missing", 0,
	  "" },
	{ NULL, "{\"c\": \"a\", \"c\": \"b\", \"ts\": 1}\n", -EINVAL, 2, 14,
	  "duplicate object key near '\"c\"'", 0, "" },
};

static void test_event_rows(void)
{
	struct feat_spec *s = compile(spec_text);
	struct feat_spec *r = compile(
		"{\"entity\": \"c\", \"timestamp\": \"ts\", \"features\": "
		"[{\"name\": \"a\", \"column\": \"amount\", \"max\": 9, "
		"\"on_violation\": \"reject\"}]}");

	for (size_t i = 0; i < sizeof(erows) / sizeof(erows[0]); i++) {
		struct feat_batch b = { 0 };
		struct problem pb = { 0 };
		char name[64];
		int rc = feat_rows_parse(
			s, erows[i].header,
			erows[i].header ? strlen(erows[i].header) : 0,
			erows[i].rows, strlen(erows[i].rows), 2, &b, &pb);

		snprintf(name, sizeof(name), "event rows, case %zu", i + 1);
		is_int(rc, erows[i].rc, name);
		if (erows[i].rc) {
			is_int(pb.line, erows[i].line, "its line");
			is_int(pb.col, erows[i].col, "its column");
			if (erows[i].msg)
				is_str(pb.msg, erows[i].msg, "its message");
		}
		is_int(b.n, erows[i].n, "rows taken before it");
		sb_append(&b.csv, "", 1);
		is_str(b.csv.buf, erows[i].csv, "the log's rows");
		feat_batch_free(&b);
	}
	{
		struct feat_batch b = { 0 };
		struct problem pb = { 0 };

		is_int(feat_rows_parse(r, "c,ts,amount", 11, "a,1,9\na,2,9.5\n",
				       14, 2, &b, &pb),
		       -EINVAL, "reject");
		is_str(pb.msg,
		       "feature \"a\": 9.5 outside [-inf, 9] (on_violation "
		       "reject)",
		       "its message");
		is_int(pb.line, 3, "its line");
		feat_batch_free(&b);
	}
	feat_spec_free(s);
	feat_spec_free(r);
}

int main(void)
{
	test_values();
	test_iso();
	test_bad_events();
	test_load_hostile();
	test_join();
	test_slice();
	test_merge();
	test_state();
	test_build_info();
	test_event_rows();
	return done();
}
