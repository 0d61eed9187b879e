/* SPDX-License-Identifier: MIT */
/*
 * The SVG writer and the pictures (fs/base/svg.c, fs/ml/plot.c): nice
 * ticks against axes worked out by hand, tick labels, the AUC against
 * worked examples (scikit-learn's documented one among them), XML
 * escaping, bad data refused, and every picture whole when allocation
 * fails anywhere.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "failalloc.h"
#include "plot.h"
#include "strbuf.h"
#include "svg.h"
#include "tap.h"

static void axis_is(double min, double max, double lo, double hi,
		    double step, int digits, const char *name)
{
	struct svg_axis a;

	svg_ticks(min, max, 6, &a);
	ok(fabs(a.lo - lo) < 1e-9 && fabs(a.hi - hi) < 1e-9 &&
		   fabs(a.step - step) < 1e-12 && a.digits == digits,
	   name);
	if (!(fabs(a.lo - lo) < 1e-9 && fabs(a.hi - hi) < 1e-9))
		printf("#   got %g to %g step %g (%d digits)\n", a.lo, a.hi,
		       a.step, a.digits);
}

static void test_ticks(void)
{
	struct svg_axis a;
	char s[32];

	/* (max - min) / 5 rounded: <1.5 -> 1, <3 -> 2, <7 -> 5, else 10 */
	axis_is(0, 1, 0, 1, 0.2, 1, "0..1: step 0.2");
	axis_is(0.2286, 0.5425, 0.2, 0.55, 0.05, 2, "a loss: step 0.05");
	axis_is(-11.9, 11.5, -15, 15, 5, 0, "around zero: step 5");
	axis_is(1, 13, 0, 14, 2, 0, "steps 1..13: step 2");
	axis_is(0, 300, 0, 300, 50, 0, "0..300: step 50 (60 rounds to 50)");
	axis_is(0, 0.0007, 0, 0.0007, 0.0001, 4, "small: 1.4e-4 rounds to 1e-4");
	axis_is(5, 5, 4.4, 5.6, 0.2, 1, "one value: widened by a tenth");
	axis_is(0, 0, -1, 1, 0.5, 1, "zero: widened by 1");
	axis_is(NAN, 3, 0, 1, 0.2, 1, "not finite: 0..1");
	axis_is(3, 1, 1, 3, 0.5, 1, "reversed ends are swapped");
	svg_ticks(0, 1.2e7, 6, &a);
	svg_tick_label(&a, 1.2e7, s, sizeof(s));
	is_str(s, "1.2e+07", "a large tick in %g form");
	svg_ticks(-1, 1, 6, &a);
	svg_tick_label(&a, -1e-17, s, sizeof(s));
	is_str(s, "0.0", "never -0");
	svg_ticks(0.2286, 0.5425, 6, &a);
	svg_tick_label(&a, 0.25, s, sizeof(s));
	is_str(s, "0.25", "the axis' decimals");
}

static void test_auc(void)
{
	/* scikit-learn's roc_auc_score example: 0.75 */
	double s1[] = { 0.1, 0.4, 0.35, 0.8 };
	bool p1[] = { false, false, true, true };
	double s2[] = { 0.5, 0.5, 0.5, 0.9 };
	bool p2[] = { true, false, false, true };
	bool none[] = { false, false, false, false };

	ok(fabs(plot_auc(s1, p1, 4) - 0.75) < 1e-12, "auc 0.75");
	/* pairs: (0.5 vs 0.5) twice half, (0.9 vs each) won: 3/4 */
	ok(fabs(plot_auc(s2, p2, 4) - 0.75) < 1e-12, "ties count half");
	ok(isnan(plot_auc(s1, none, 4)), "no positive: NaN");
	ok(isnan(plot_auc(s1, p1, 0)), "no rows: NaN");
}

static json_t *eval_binary(const char *c0, const char *c1)
{
	return json_pack("{s:[s,s], s:{s:s, s:i, s:i, s:[i,i,i,i], "
			 "s:[[f,f],[f,f],[f,f],[f,f]]}}",
			 "classes", c0, c1, "heldout", "set", "test", "rows", 4,
			 "kept", 4, "y", 0, 0, 1, 1, "proba", 0.9, 0.1, 0.6,
			 0.4, 0.65, 0.35, 0.2, 0.8);
}

static void test_pictures(void)
{
	struct strbuf sb = { 0 };
	json_t *ev = eval_binary("no", "a<&\"b");
	json_t *m = json_loads("[[1,2],[3,4]]", 0, NULL), *cl = json_pack("[s,s]", "x",
							       "y");
	int rc;

	rc = plot_roc(&sb, "t <1>", ev);
	is_int(rc, 0, "roc drawn");
	ok(sb.buf && strncmp(sb.buf, "<?xml", 5) == 0 &&
		   strstr(sb.buf, "</svg>\n") == sb.buf + sb.len - 7,
	   "a whole document");
	ok(strstr(sb.buf, "<title>t &lt;1&gt;</title>") != NULL,
	   "the title escaped");
	ok(strstr(sb.buf, "a&lt;&amp;&quot;b (AUC 0.750)") != NULL,
	   "the class escaped, its AUC in the legend");
	ok(strstr(sb.buf, "x: 0.0 to 1.0 step 0.2; y: 0.0 to 1.0 step 0.2") != NULL,
	   "the axes in the desc");
	sb_free(&sb);
	memset(&sb, 0, sizeof(sb));
	rc = plot_confusion(&sb, "c", m, cl);
	is_int(rc, 0, "confusion drawn");
	ok(sb.buf && strstr(sb.buf, ">67%<") && strstr(sb.buf, ">57%<"),
	   "row shares: 2/3, 4/7");
	sb_free(&sb);
	memset(&sb, 0, sizeof(sb));
	json_decref(cl);
	{
		char longname[81] = "";

		for (int i = 0; i < 40; i++)
			strcat(longname, "\xc3\xa9"); /* e acute, 2 bytes */
		cl = json_pack("[s,s]", longname, "y");
		memset(&sb, 0, sizeof(sb));
		is_int(plot_confusion(&sb, "c", m, cl), 0, "a long name");
		ok(sb.buf && strstr(sb.buf, "\xc3\xa9\xe2\x80\xa6<") &&
			   !strstr(sb.buf, "\xc3\xe2"),
		   "cut between characters, an ellipsis after");
		sb_free(&sb);
		json_decref(cl);
	}
	cl = json_pack("[s]", "x");
	is_int(plot_confusion(&sb, "c", m, cl), -EINVAL,
	       "classes and matrix disagree");
	sb_free(&sb);
	memset(&sb, 0, sizeof(sb));
	json_object_set_new(json_object_get(ev, "heldout"), "proba",
			    json_loads("[[0.5, 0.5]]", 0, NULL));
	is_int(plot_roc(&sb, "t", ev), -EINVAL, "fewer scores than labels");
	sb_free(&sb);
	json_decref(ev);
	json_decref(m);
	json_decref(cl);
}

/* Every allocation of a picture failed in turn: an error or a whole
 * document, never a crash or a leak (ASan). */
static void test_failing_allocations(void)
{
	json_t *ev = eval_binary("a", "b");
	json_t *curves = json_pack("{s:[[i,f],[i,f]], s:[[i,f]]}", "loss", 1,
				   0.7, 2, 0.5, "val_accuracy", 2, 0.9);
	json_t *trials = json_pack(
		"[{s:i, s:f, s:{s:f}}, {s:i, s:f, s:{s:f}, s:b}]", "trial", 0,
		"budget", 1.0, "metrics", "accuracy", 0.8, "trial", 1,
		"budget", 1.0, "metrics", "accuracy", 0.9, "best", 1);
	const char *lines = "{\"time\": \"2026-12-03T10:00:00.000Z\", "
			    "\"candidate\": \"m@1\", \"requests\": 5, "
			    "\"latency_us\": {\"p99\": 900}, \"accuracy\": null,"
			    " \"drift\": {\"max_psi\": 0.1}}\n";
	bool fine = true;

	for (int n = 1; n < 400; n++) {
		struct strbuf sb = { 0 };
		int rc;

		failalloc_arm(n);
		switch (n % 4) {
		case 0:
			rc = plot_roc(&sb, "r", ev);
			break;
		case 1:
			rc = plot_learning(&sb, "l", curves);
			break;
		case 2:
			rc = plot_trials(&sb, "t", trials, "accuracy", true);
			break;
		default:
			rc = plot_deployment(&sb, "d", lines, strlen(lines),
					     1764756000.0 - 3600, 1764756000.0 + 60);
		}
		failalloc_arm(0);
		if (rc == 0 && (!sb.buf || !strstr(sb.buf, "</svg>")))
			fine = false;
		if (rc != 0 && rc != -ENOMEM)
			fine = false;
		sb_free(&sb);
	}
	ok(fine, "each failed allocation: -ENOMEM or a whole picture");
	json_decref(ev);
	json_decref(curves);
	json_decref(trials);
}

int main(void)
{
	test_ticks();
	test_auc();
	test_pictures();
	test_failing_allocations();
	return done();
}
