/* SPDX-License-Identifier: MIT */
/*
 * The pictures of plot.h.  Each is one SVG document: a title naming what
 * it shows, a line under it saying on what (the set, its rows), then one
 * or more panels (svg.h) with their axes, data and legend.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "plot.h"
#include "strbuf.h"
#include "svg.h"

#define TICKS 6 /* about this many ticks an axis */

/* The line under the title. */
static void subtitle(struct strbuf *out, double width, const char *text)
{
	svg_text(out, width / 2, 46, 12, "middle", "#555555", text);
}

/* A panel at (left, top), w x h, over [x0, x1] x [y0, y1]. */
static void panel_at(struct svg_panel *p, struct strbuf *out, double left,
		     double top, double w, double h, double x0, double x1,
		     double y0, double y1)
{
	memset(p, 0, sizeof(*p));
	p->out = out;
	p->left = left;
	p->top = top;
	p->width = w;
	p->height = h;
	svg_ticks(x0, x1, TICKS, &p->x);
	svg_ticks(y0, y1, TICKS, &p->y);
}

/* The smallest and largest finite values of v[0..n), into *lo and *hi
 * (kept when none is finite). */
static void span(const double *v, size_t n, double *lo, double *hi)
{
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(v[i]))
			continue;
		if (!(v[i] >= *lo))
			*lo = v[i];
		if (!(v[i] <= *hi))
			*hi = v[i];
	}
}

static double num(json_t *v)
{
	return json_is_number(v) ? json_number_value(v) : NAN;
}

/* --- learning.svg --- */

struct series {
	const char *name;
	double *x, *y;
	size_t n;
};

static void series_free(struct series *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(s[i].x);
		free(s[i].y);
	}
	free(s);
}

/* One panel of curves ss[0..n), sharing x range [x0, x1]. */
static void curves_panel(struct strbuf *out, double top, double h, double x0,
			 double x1, const struct series *ss, size_t n,
			 const char *heading, const char *ylabel)
{
	struct svg_panel p;
	double lo = NAN, hi = NAN;
	const char **names = malloc((n ? n : 1) * sizeof(*names));

	for (size_t i = 0; i < n; i++)
		span(ss[i].y, ss[i].n, &lo, &hi);
	panel_at(&p, out, 90, top, 660, h, x0, x1, lo, hi);
	svg_frame(&p, heading, "step (epoch or iteration)", ylabel);
	for (size_t i = 0; i < n; i++) {
		svg_line(&p, ss[i].x, ss[i].y, ss[i].n, svg_colour(i), NULL);
		if (ss[i].n < 30) /* few steps: each one shows */
			svg_points(&p, ss[i].x, ss[i].y, ss[i].n, 3.5,
				   svg_colour(i), 1);
		if (names)
			names[i] = ss[i].name;
	}
	if (names)
		svg_legend(&p, names, NULL, n, NULL);
	free(names);
	svg_frame_end(&p);
}

int plot_learning(struct strbuf *out, const char *title, json_t *curves)
{
	size_t n = json_object_size(curves), nloss = 0, k = 0;
	struct series *ss = calloc(n ? n : 1, sizeof(*ss)), *loss, *other;
	const char *name;
	double x0 = NAN, x1 = NAN;
	json_t *c;
	int height;

	if (!ss)
		return -ENOMEM;
	/* losses first, each group in the order the job reported it */
	for (int pass = 0; pass < 2; pass++) {
		json_object_foreach(curves, name, c)
		{
			bool is_loss = strstr(name, "loss") != NULL;
			struct series *s;

			if (is_loss != (pass == 0) || !json_is_array(c))
				continue;
			s = &ss[k++];
			s->name = name;
			s->n = json_array_size(c);
			s->x = malloc((s->n ? s->n : 1) * sizeof(double));
			s->y = malloc((s->n ? s->n : 1) * sizeof(double));
			if (!s->x || !s->y) {
				series_free(ss, n);
				return -ENOMEM;
			}
			for (size_t i = 0; i < s->n; i++) {
				s->x[i] = num(json_array_get(json_array_get(c, i), 0));
				s->y[i] = num(json_array_get(json_array_get(c, i), 1));
			}
			span(s->x, s->n, &x0, &x1);
			nloss += is_loss;
		}
	}
	loss = ss;
	other = ss + nloss;
	height = nloss && k > nloss ? 760 : 520;
	svg_begin(out, 820, height, title);
	subtitle(out, 820, k ? "each metric the training reported, by step"
			     : "the training reported no metric");
	if (nloss && k > nloss) {
		curves_panel(out, 90, 250, x0, x1, loss, nloss,
			     "training loss", "loss");
		curves_panel(out, 440, 250, x0, x1, other, k - nloss,
			     "validation and other metrics",
			     k - nloss == 1 ? other->name : "value");
	} else {
		curves_panel(out, 90, 360, x0, x1, ss, k,
			     nloss ? "training loss" : "metrics",
			     nloss ? "loss" : "value");
	}
	svg_end(out);
	series_free(ss, n);
	return out->err;
}

/* --- roc.svg --- */

struct scored {
	double s;
	bool pos;
};

static int by_score_desc(const void *a, const void *b)
{
	const struct scored *x = a, *y = b;

	return x->s < y->s ? 1 : x->s > y->s ? -1 : 0;
}

/*
 * The ROC curve of v[0..n) (sorted by score, descending): one point a
 * distinct score, then only the corners (collinear points dropped), in
 * fx, fy (n + 1 each); returns the number of points and the AUC by
 * trapezoids over the distinct scores (ties count half).
 */
static size_t roc_points(const struct scored *v, size_t n, double *fx,
			 double *fy, double *auc)
{
	size_t npos = 0, nneg = 0, tp = 0, fp = 0, k = 0;
	double area = 0, px = 0, py = 0;

	for (size_t i = 0; i < n; i++)
		npos += v[i].pos;
	nneg = n - npos;
	fx[k] = 0;
	fy[k++] = 0;
	for (size_t i = 0; i < n;) {
		size_t j = i;
		double x, y;

		while (j < n && v[j].s == v[i].s) {
			tp += v[j].pos;
			fp += !v[j].pos;
			j++;
		}
		i = j;
		x = nneg ? (double)fp / (double)nneg : 0;
		y = npos ? (double)tp / (double)npos : 0;
		area += (x - px) * (y + py) / 2;
		px = x;
		py = y;
		/* drop the last point if it lies on the line to this one */
		if (k >= 2 && (fx[k - 1] - fx[k - 2]) * (y - fy[k - 1]) ==
				      (fy[k - 1] - fy[k - 2]) * (x - fx[k - 1]))
			k--;
		fx[k] = x;
		fy[k++] = y;
	}
	*auc = npos && nneg ? area : NAN;
	return k;
}

double plot_auc(const double *s, const bool *pos, size_t n)
{
	struct scored *v = malloc((n ? n : 1) * sizeof(*v));
	double *fx = malloc((n + 1) * sizeof(*fx)), *fy = malloc((n + 1) *
								 sizeof(*fy));
	double auc = NAN;

	if (v && fx && fy) {
		for (size_t i = 0; i < n; i++)
			v[i] = (struct scored){ s[i], pos[i] };
		qsort(v, n, sizeof(*v), by_score_desc);
		roc_points(v, n, fx, fy, &auc);
	}
	free(v);
	free(fx);
	free(fy);
	return auc;
}

/* "the test set, 22 rows" (or "..., 5,000 of its 80,000 rows") */
static void heldout_line(json_t *h, const char *extra, char *out,
			 size_t len)
{
	const char *set = json_string_value(json_object_get(h, "set"));
	json_int_t rows = json_integer_value(json_object_get(h, "rows"));
	json_int_t kept = json_integer_value(json_object_get(h, "kept"));

	if (kept < rows)
		snprintf(out, len, "the %s set: %lld of its %lld rows, evenly "
				   "spaced%s",
			 set ? set : "held-out", (long long)kept,
			 (long long)rows, extra);
	else
		snprintf(out, len, "the %s set, %lld rows%s",
			 set ? set : "held-out", (long long)rows, extra);
}

int plot_roc(struct strbuf *out, const char *title, json_t *eval)
{
	json_t *h = json_object_get(eval, "heldout");
	json_t *classes = json_object_get(eval, "classes");
	json_t *ys = json_object_get(h, "y"), *ps = json_object_get(h, "proba");
	size_t k = json_array_size(classes), n = json_array_size(ys);
	size_t first = k == 2 ? 1 : 0, ncurves = 0;
	struct scored *v = malloc((n ? n : 1) * sizeof(*v));
	double *fx = malloc((n + 1) * sizeof(*fx)), *fy = malloc((n + 1) *
								 sizeof(*fy));
	char **names = calloc(k ? k : 1, sizeof(*names));
	const char **shown = calloc(k ? k : 1, sizeof(*shown));
	const char **colours = calloc(k ? k : 1, sizeof(*colours));
	bool *dashed = calloc(k ? k : 1, sizeof(*dashed));
	struct svg_panel p;
	char line[200];
	double diag[2] = { 0, 1 };
	int rc = 0;

	if (!v || !fx || !fy || !names || !shown || !colours || !dashed) {
		rc = -ENOMEM;
		goto out;
	}
	if (k < 2 || json_array_size(ps) != n) {
		rc = -EINVAL;
		goto out;
	}
	svg_begin(out, 720, 700, title);
	heldout_line(h, k == 2 ? "; positive class: " : "; one class against "
							 "the rest",
		     line, sizeof(line));
	if (k == 2)
		snprintf(line + strlen(line), sizeof(line) - strlen(line),
			 "%s", json_string_value(json_array_get(classes, 1)));
	subtitle(out, 720, line);
	panel_at(&p, out, 90, 70, 580, 560, 0, 1, 0, 1);
	p.legend_low = true;
	svg_frame(&p, NULL, "false positive rate", "true positive rate");
	svg_line(&p, diag, diag, 2, "#999999", "5 5");
	for (size_t c = first; c < k; c++) {
		const char *cname = json_string_value(json_array_get(classes, c));
		double auc;
		size_t m;

		for (size_t i = 0; i < n; i++) {
			v[i].s = num(json_array_get(json_array_get(ps, i), c));
			v[i].pos = num(json_array_get(ys, i)) == (double)c;
		}
		qsort(v, n, sizeof(*v), by_score_desc);
		m = roc_points(v, n, fx, fy, &auc);
		names[ncurves] = malloc(strlen(cname ? cname : "") + 40);
		if (!names[ncurves]) {
			rc = -ENOMEM;
			break;
		}
		if (isfinite(auc)) {
			sprintf(names[ncurves], "%s (AUC %.3f)", cname ? cname : "",
				auc);
			svg_line(&p, fx, fy, m, svg_colour(ncurves),
				 svg_dash(ncurves));
		} else {
			/* no positive or no negative row: no curve */
			sprintf(names[ncurves], "%s (no curve: one-sided)",
				cname ? cname : "");
		}
		shown[ncurves] = names[ncurves];
		colours[ncurves] = svg_colour(ncurves);
		ncurves++;
	}
	for (size_t i = 0; i < ncurves; i++)
		dashed[i] = svg_dash(i) != NULL;
	svg_legend(&p, shown, colours, ncurves, dashed);
	svg_frame_end(&p);
	svg_end(out);
out:
	for (size_t i = 0; names && i < k; i++)
		free(names[i]);
	free(names);
	free(shown);
	free(colours);
	free(dashed);
	free(v);
	free(fx);
	free(fy);
	return rc ? rc : out->err;
}

/* --- confusion.svg --- */

/* A share 0..1 as a blue from nearly white to dark (ColorBrewer Blues). */
static void blue(double f, char *out, size_t len)
{
	static const int lo[3] = { 0xf7, 0xfb, 0xff }, hi[3] = { 0x08, 0x30,
								  0x6b };
	int c[3];

	f = isfinite(f) ? fmin(fmax(f, 0), 1) : 0;
	for (int i = 0; i < 3; i++)
		c[i] = (int)lround(lo[i] + f * (hi[i] - lo[i]));
	snprintf(out, len, "#%02x%02x%02x", c[0], c[1], c[2]);
}

int plot_confusion(struct strbuf *out, const char *title, json_t *matrix,
		   json_t *classes)
{
	size_t k = json_array_size(matrix), longest = 4;
	double cell, left, top = 90, width, height, font;
	char text[64], fill[8];

	if (k == 0 || json_array_size(classes) != k)
		return -EINVAL;
	for (size_t i = 0; i < k; i++) {
		const char *c = json_string_value(json_array_get(classes, i));

		if (!c || json_array_size(json_array_get(matrix, i)) != k)
			return -EINVAL;
		longest = strlen(c) > longest ? strlen(c) : longest;
	}
	if (longest > 32)
		longest = 32;
	cell = fmin(90, 600.0 / (double)k);
	font = fmin(14, cell / 3.2);
	left = 60 + 7.0 * (double)longest;
	width = fmax(left + cell * (double)k + 40, 520);
	/* below: the slanted names (sin 30 degrees of their length), then
	 * the axis' title */
	height = top + cell * (double)k + 50 + 3.6 * (double)longest;
	svg_begin(out, (int)width, (int)height, title);
	subtitle(out, width, "rows: the true class; columns: the predicted "
			     "one; count and share of the row");
	sb_puts(out, "<g>\n<desc>confusion matrix, rows true, columns "
		     "predicted</desc>\n");
	for (size_t i = 0; i < k; i++) {
		json_t *row = json_array_get(matrix, i);
		double total = 0;

		for (size_t j = 0; j < k; j++)
			total += num(json_array_get(row, j));
		for (size_t j = 0; j < k; j++) {
			double cnt = num(json_array_get(row, j));
			double f = total > 0 ? cnt / total : 0;
			double x = left + cell * (double)j;
			double y = top + cell * (double)i;
			const char *ink = f > 0.5 ? "#ffffff" : "#222222";

			blue(f, fill, sizeof(fill));
			svg_rect(out, x, y, cell, cell, fill, "#ffffff");
			snprintf(text, sizeof(text), "%.0f", cnt);
			svg_text(out, x + cell / 2,
				 y + cell / 2 + (cell >= 40 ? -2 : font / 3),
				 font, "middle", ink, text);
			if (cell >= 40) {
				snprintf(text, sizeof(text), "%.0f%%", f * 100);
				svg_text(out, x + cell / 2,
					 y + cell / 2 + font, font * 0.8,
					 "middle", ink, text);
			}
		}
	}
	/* the class names: true on the left, predicted below, slanted */
	for (size_t i = 0; i < k; i++) {
		char name[100];
		double x = left + cell * ((double)i + 0.5);
		double y = top + cell * (double)k + 14;

		const char *c = json_string_value(json_array_get(classes, i));

		/* a longer name ends in an ellipsis, cut between characters */
		if (strlen(c) > 32) {
			int cut = 31;

			while (cut > 0 && ((unsigned char)c[cut] & 0xc0) == 0x80)
				cut--;
			snprintf(name, sizeof(name), "%.*s\u2026", cut, c);
		} else {
			snprintf(name, sizeof(name), "%s", c);
		}
		svg_text(out, left - 8, top + cell * ((double)i + 0.5) + 4, 12,
			 "end", "#222222", name);
		sb_printf(out, "<g transform=\"rotate(-30 %.1f %.1f)\">\n", x,
			  y);
		svg_text(out, x, y, 12, "end", "#222222", name);
		sb_puts(out, "</g>\n");
	}
	svg_text(out, left + cell * (double)k / 2, height - 12, 13, "middle",
		 "#222222", "predicted class");
	sb_printf(out, "<g transform=\"rotate(-90 %.1f %.1f)\">\n", 18.0,
		  top + cell * (double)k / 2);
	svg_text(out, 18, top + cell * (double)k / 2, 13, "middle", "#222222",
		 "true class");
	sb_puts(out, "</g>\n</g>\n");
	svg_end(out);
	return out->err;
}

/* --- residuals.svg --- */

/* The kept rows' doubles of array a (NaN for non-numbers). */
static double *doubles(json_t *a, size_t n)
{
	double *v = malloc((n ? n : 1) * sizeof(*v));

	for (size_t i = 0; v && i < n; i++)
		v[i] = num(json_array_get(a, i));
	return v;
}

int plot_residuals(struct strbuf *out, const char *title, json_t *eval,
		   const char *label)
{
	json_t *h = json_object_get(eval, "heldout");
	size_t n = json_array_size(json_object_get(h, "y"));
	double *y = doubles(json_object_get(h, "y"), n);
	double *pr = doubles(json_object_get(h, "pred"), n);
	double *res = malloc((n ? n : 1) * sizeof(*res));
	double lo = NAN, hi = NAN, rlo = NAN, rhi = NAN, sq = 0, line[2];
	char xl[160], yl[160], sub[240], extra[64];
	struct svg_panel p;
	int rc = 0;

	if (!y || !pr || !res) {
		rc = -ENOMEM;
		goto out;
	}
	if (json_array_size(json_object_get(h, "pred")) != n) {
		rc = -EINVAL;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		res[i] = y[i] - pr[i];
		sq += isfinite(res[i]) ? res[i] * res[i] : 0;
	}
	span(y, n, &lo, &hi);
	span(pr, n, &lo, &hi);
	span(res, n, &rlo, &rhi);
	if (rlo > 0)
		rlo = 0; /* zero is always in sight */
	if (rhi < 0)
		rhi = 0;
	snprintf(extra, sizeof(extra), "; RMSE %.4g",
		 n ? sqrt(sq / (double)n) : NAN);
	heldout_line(h, extra, sub, sizeof(sub));
	svg_begin(out, 1040, 560, title);
	subtitle(out, 1040, sub);
	snprintf(xl, sizeof(xl), "true %s", label);
	snprintf(yl, sizeof(yl), "predicted %s", label);
	panel_at(&p, out, 90, 90, 400, 400, lo, hi, lo, hi);
	svg_frame(&p, "predicted against true", xl, yl);
	line[0] = p.x.lo;
	line[1] = p.x.hi;
	svg_line(&p, line, line, 2, "#999999", "5 5");
	svg_points(&p, y, pr, n, 2.5, svg_colour(0), 0.5);
	svg_frame_end(&p);
	panel_at(&p, out, 610, 90, 400, 400, lo, hi, rlo, rhi);
	svg_frame(&p, "residuals", yl, "residual (true - predicted)");
	{
		double xs[2] = { p.x.lo, p.x.hi }, zero[2] = { 0, 0 };

		svg_line(&p, xs, zero, 2, "#999999", "5 5");
	}
	svg_points(&p, pr, res, n, 2.5, svg_colour(0), 0.5);
	svg_frame_end(&p);
	svg_end(out);
out:
	free(y);
	free(pr);
	free(res);
	return rc ? rc : out->err;
}

/* --- clusters.svg --- */

int plot_clusters(struct strbuf *out, const char *title, json_t *eval)
{
	json_t *h = json_object_get(eval, "heldout");
	json_t *pc = json_object_get(h, "pc"), *cl = json_object_get(h, "cluster");
	json_t *ex = json_object_get(h, "explained");
	size_t n = json_array_size(cl), k = 0;
	double *x = malloc((n ? n : 1) * sizeof(*x));
	double *y = malloc((n ? n : 1) * sizeof(*y));
	double *cx = NULL, *cy = NULL, lo = NAN, hi = NAN, ylo = NAN, yhi = NAN;
	size_t *lab = malloc((n ? n : 1) * sizeof(*lab)), *cnt = NULL;
	char xl[80], yl[80], sub[200];
	char **names = NULL;
	struct svg_panel p;
	int rc = 0;

	if (!x || !y || !lab) {
		rc = -ENOMEM;
		goto out;
	}
	if (json_array_size(pc) != n) {
		rc = -EINVAL;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		x[i] = num(json_array_get(json_array_get(pc, i), 0));
		y[i] = num(json_array_get(json_array_get(pc, i), 1));
		lab[i] = (size_t)json_integer_value(json_array_get(cl, i));
		if (lab[i] >= 1000) {
			rc = -EINVAL;
			goto out;
		}
		k = lab[i] + 1 > k ? lab[i] + 1 : k;
	}
	cx = calloc(k ? k : 1, sizeof(*cx));
	cy = calloc(k ? k : 1, sizeof(*cy));
	cnt = calloc(k ? k : 1, sizeof(*cnt));
	names = calloc(k ? k : 1, sizeof(*names));
	if (!cx || !cy || !cnt || !names) {
		rc = -ENOMEM;
		goto out;
	}
	span(x, n, &lo, &hi);
	span(y, n, &ylo, &yhi);
	heldout_line(h, "", sub, sizeof(sub));
	svg_begin(out, 820, 700, title);
	subtitle(out, 820, sub);
	snprintf(xl, sizeof(xl), "first principal component (%.1f%% of the "
				 "variance)",
		 100 * num(json_array_get(ex, 0)));
	snprintf(yl, sizeof(yl), "second (%.1f%%)",
		 100 * num(json_array_get(ex, 1)));
	panel_at(&p, out, 90, 70, 680, 560, lo, hi, ylo, yhi);
	svg_frame(&p, NULL, xl, yl);
	/* each cluster's points, then its centre (their mean) marked */
	for (size_t c = 0; c < k; c++) {
		double *px = malloc((n ? n : 1) * sizeof(*px));
		double *py = malloc((n ? n : 1) * sizeof(*py));
		size_t m = 0;

		if (!px || !py) {
			free(px);
			free(py);
			rc = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			if (lab[i] != c)
				continue;
			px[m] = x[i];
			py[m++] = y[i];
			cx[c] += x[i];
			cy[c] += y[i];
		}
		cnt[c] = m;
		svg_points(&p, px, py, m, 2.5, svg_colour(c), 0.55);
		free(px);
		free(py);
	}
	for (size_t c = 0; c < k; c++) {
		char label[32];

		names[c] = malloc(48);
		if (!names[c]) {
			rc = -ENOMEM;
			goto out;
		}
		snprintf(names[c], 48, "cluster %zu (%zu rows)", c, cnt[c]);
		if (!cnt[c])
			continue;
		snprintf(label, sizeof(label), "%zu", c);
		svg_mark(&p, cx[c] / (double)cnt[c], cy[c] / (double)cnt[c],
			 "#000000", label);
	}
	svg_legend(&p, (const char *const *)names, NULL, k, NULL);
	svg_frame_end(&p);
	svg_end(out);
out:
	for (size_t c = 0; names && c < k; c++)
		free(names[c]);
	free(names);
	free(x);
	free(y);
	free(lab);
	free(cx);
	free(cy);
	free(cnt);
	return rc ? rc : out->err;
}

/* --- trials.svg --- */

int plot_trials(struct strbuf *out, const char *title, json_t *trials,
		const char *metric, bool maximize)
{
	size_t n = json_array_size(trials), nf = 0, np = 0, failed = 0;
	double *fx = malloc((n ? n : 1) * sizeof(double));
	double *fy = malloc((n ? n : 1) * sizeof(double));
	double *px = malloc((n ? n : 1) * sizeof(double));
	double *py = malloc((n ? n : 1) * sizeof(double));
	double *bx = malloc((n ? n : 1) * sizeof(double));
	double *by = malloc((n ? n : 1) * sizeof(double));
	double lo = NAN, hi = NAN, best = NAN, bestx = NAN, besty = NAN;
	const char *names[3], *colours[3];
	bool dashed[3] = { false, false, true };
	size_t nleg = 0, nb = 0;
	struct svg_panel p;
	char sub[200], yl[120], mark[120];
	json_t *t;
	size_t i;

	if (!fx || !fy || !px || !py || !bx || !by) {
		free(fx), free(fy), free(px), free(py), free(bx), free(by);
		return -ENOMEM;
	}
	json_array_foreach(trials, i, t)
	{
		double x = num(json_object_get(t, "trial"));
		double y = num(json_object_get(json_object_get(t, "metrics"),
					       metric));
		double budget = num(json_object_get(t, "budget"));

		if (!isfinite(y)) {
			failed++;
			continue;
		}
		if (isfinite(budget) && budget < 1) {
			px[np] = x;
			py[np++] = y;
			continue;
		}
		fx[nf] = x;
		fy[nf++] = y;
		/* the best so far, at full budget, as a step line */
		if (!isfinite(best) || (maximize ? y > best : y < best))
			best = y;
		bx[nb] = x;
		by[nb++] = best;
		if (json_is_true(json_object_get(t, "best"))) {
			bestx = x;
			besty = y;
		}
	}
	span(fy, nf, &lo, &hi);
	span(py, np, &lo, &hi);
	snprintf(sub, sizeof(sub), "%zu trials, %s is better%s", n,
		 maximize ? "higher" : "lower",
		 failed ? "; trials without the metric (failed) are not shown"
			: "");
	svg_begin(out, 820, 560, title);
	subtitle(out, 820, sub);
	panel_at(&p, out, 90, 70, 680, 400, 0, n ? (double)n - 1 : 1, lo, hi);
	snprintf(yl, sizeof(yl), "validation %s", metric);
	svg_frame(&p, NULL, "trial", yl);
	svg_line(&p, bx, by, nb, "#000000", "6 4");
	svg_points(&p, fx, fy, nf, 5, svg_colour(0), 0.9);
	names[nleg] = "full budget";
	colours[nleg++] = svg_colour(0);
	if (np) {
		svg_points(&p, px, py, np, 5, svg_colour(1), 0.9);
		names[nleg] = "partial budget (halving)";
		colours[nleg++] = svg_colour(1);
	}
	names[nleg] = "best so far";
	dashed[nleg] = true;
	colours[nleg++] = "#000000";
	if (isfinite(bestx)) {
		snprintf(mark, sizeof(mark), "best: trial %.0f, %.4g", bestx,
			 besty);
		svg_mark(&p, bestx, besty, svg_colour(4), mark);
	}
	if (np)
		dashed[1] = false;
	svg_legend(&p, names, colours, nleg, dashed);
	svg_frame_end(&p);
	svg_end(out);
	free(fx), free(fy), free(px), free(py), free(bx), free(by);
	return out->err;
}

/* --- a deployment's metrics.svg --- */

#define DEP_CANDS 16

struct dep_points {
	char name[128];
	double *t, *v[4];
	size_t n, cap;
};

static int dep_add(struct dep_points *c, double t, const double v[4])
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;
		double *nt = realloc(c->t, cap * sizeof(double));

		if (!nt)
			return -ENOMEM;
		c->t = nt;
		for (int k = 0; k < 4; k++) {
			double *nv = realloc(c->v[k], cap * sizeof(double));

			if (!nv)
				return -ENOMEM;
			c->v[k] = nv;
		}
		c->cap = cap;
	}
	c->t[c->n] = t;
	for (int k = 0; k < 4; k++)
		c->v[k][c->n] = v[k];
	c->n++;
	return 0;
}

int plot_deployment(struct strbuf *out, const char *title, const char *lines,
		    size_t len, double since, double until)
{
	static const char *const heads[4] = { "requests per interval",
					      "latency p99", "accuracy", "PSI" };
	static const char *const ylabels[4] = { "requests", "p99 (ms)",
						"share right", "max PSI" };
	struct dep_points c[DEP_CANDS];
	const char *names[DEP_CANDS];
	size_t nc = 0;
	double first = NAN, scale;
	bool regression = false;
	char xl[80], sub[200];
	int rc = 0;

	memset(c, 0, sizeof(c));
	for (const char *at = lines, *end = lines + len; at < end;) {
		const char *nl = memchr(at, '\n', (size_t)(end - at));
		size_t l = nl ? (size_t)(nl - at) : (size_t)(end - at);
		json_t *j = json_loadb(at, l, 0, NULL);
		const char *when = json_string_value(json_object_get(j, "time"));
		const char *cand =
			json_string_value(json_object_get(j, "candidate"));
		double t, v[4];
		size_t i;

		at += l + 1;
		if (!when || !cand || !csv_parse_time(when, strlen(when), &t) ||
		    t < since) {
			json_decref(j);
			continue;
		}
		for (i = 0; i < nc && strcmp(c[i].name, cand) != 0; i++)
			;
		if (i == nc && nc < DEP_CANDS)
			snprintf(c[nc++].name, sizeof(c[0].name), "%s", cand);
		if (i == nc) { /* more candidates than colours to tell */
			json_decref(j);
			continue;
		}
		if (json_object_get(j, "rmse"))
			regression = true;
		v[0] = num(json_object_get(j, "requests"));
		v[1] = num(json_object_get(json_object_get(j, "latency_us"),
					   "p99")) /
		       1000;
		v[2] = num(json_object_get(j, regression ? "rmse" : "accuracy"));
		v[3] = num(json_object_get(json_object_get(j, "drift"),
					   "max_psi"));
		if (v[0] == 0)
			v[1] = NAN; /* no request: no latency to speak of */
		if (!(t >= first))
			first = t;
		json_decref(j);
		if (dep_add(&c[i], t, v) < 0) {
			rc = -ENOMEM;
			break;
		}
	}
	/* seconds for a young deployment, minutes, then hours */
	if (!isfinite(first))
		first = until - 3600;
	scale = until - first <= 300 ? 1 : until - first <= 3 * 3600 ? 60
								      : 3600;
	for (size_t i = 0; i < nc; i++) {
		for (size_t r = 0; r < c[i].n; r++)
			c[i].t[r] = (c[i].t[r] - until) / scale;
		names[i] = c[i].name;
	}
	snprintf(xl, sizeof(xl), "%s before now",
		 scale == 1 ? "seconds" : scale == 60 ? "minutes" : "hours");
	snprintf(sub, sizeof(sub), "each candidate, a point per monitoring "
				   "interval");
	svg_begin(out, 1100, 780, title);
	subtitle(out, 1100, nc ? sub : "no interval has ended yet");
	for (int k = 0; rc == 0 && k < 4; k++) {
		struct svg_panel p;
		double lo = NAN, hi = NAN;
		bool any;

		for (size_t i = 0; i < nc; i++)
			span(c[i].v[k], c[i].n, &lo, &hi);
		any = isfinite(lo);
		if (k != 3 && !(lo <= 0))
			lo = 0; /* counts, times and shares from zero */
		if (k == 2 && !regression)
			hi = 1;
		panel_at(&p, out, 90 + 540.0 * (k % 2), 100 + 340.0 * (k / 2),
			 440, 250, (first - until) / scale, 0, lo, hi);
		svg_frame(&p,
			  k == 2 && regression ? "RMSE (from feedback)"
			  : k == 2	       ? "accuracy (from feedback)"
					       : heads[k],
			  xl, k == 2 && regression ? "rmse" : ylabels[k]);
		if (!any)
			svg_text(out, p.left + p.width / 2,
				 p.top + p.height / 2, 13, "middle",
				 "#777777",
				 k == 2 ? "no feedback yet" : "no data yet");
		for (size_t i = 0; i < nc; i++) {
			svg_line(&p, c[i].t, c[i].v[k], c[i].n, svg_colour(i),
				 NULL);
			svg_points(&p, c[i].t, c[i].v[k], c[i].n, 2.5,
				   svg_colour(i), 1);
		}
		if (k == 0)
			svg_legend(&p, names, NULL, nc, NULL);
		svg_frame_end(&p);
	}
	svg_end(out);
	for (size_t i = 0; i < nc; i++) {
		free(c[i].t);
		for (int k = 0; k < 4; k++)
			free(c[i].v[k]);
	}
	return rc ? rc : out->err;
}
