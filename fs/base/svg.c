/* SPDX-License-Identifier: MIT */
/*
 * The SVG writer of svg.h.  Coordinates are printed with one decimal:
 * a tenth of a unit is below what a 1000-unit-wide picture shows, and it
 * keeps a 5,000-point scatter near 150 KB.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "strbuf.h"
#include "svg.h"

#define FONT "DejaVu Sans, Helvetica, Arial, sans-serif"

static const char *const palette[SVG_NCOLOURS] = {
	"#0072B2", /* blue */
	"#E69F00", /* orange */
	"#009E73", /* bluish green */
	"#CC79A7", /* reddish purple */
	"#D55E00", /* vermillion */
	"#56B4E9", /* sky blue */
	"#000000", /* black */
	"#F0E442", /* yellow: last, the faintest on white */
};

const char *svg_colour(size_t i)
{
	return palette[i % SVG_NCOLOURS];
}

const char *svg_dash(size_t i)
{
	static const char *const dashes[] = { NULL, "7 4", "2 3", "7 3 2 3" };

	return dashes[(i / SVG_NCOLOURS) % 4];
}

/* 1, 2, 5 or 10 times a power of ten, the nearest to x (Heckbert's
 * rounding: below 1.5 is 1, below 3 is 2, below 7 is 5). */
static double nice(double x)
{
	double e = floor(log10(x)), p = pow(10, e), f = x / p, nf;

	nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
	return nf * p;
}

void svg_ticks(double min, double max, int want, struct svg_axis *a)
{
	double step;

	if (!isfinite(min) || !isfinite(max)) {
		min = 0;
		max = 1;
	}
	if (min > max) {
		double t = min;

		min = max;
		max = t;
	}
	if (max - min <= fabs(max) * 1e-12) {
		double pad = min == 0 ? 1 : fabs(min) / 10;

		min -= pad;
		max += pad;
	}
	if (want < 2)
		want = 2;
	step = nice((max - min) / (want - 1));
	a->lo = floor(min / step) * step;
	a->hi = ceil(max / step) * step;
	a->step = step;
	a->digits = (int)fmax(-floor(log10(step)), 0);
}

void svg_tick_label(const struct svg_axis *a, double v, char *out, size_t len)
{
	if (fabs(v) < a->step * 1e-9)
		v = 0; /* never "-0" */
	if (fabs(v) >= 1e6 || a->digits > 6)
		snprintf(out, len, "%.3g", v);
	else
		snprintf(out, len, "%.*f", a->digits, v);
}

/* The number of steps from lo to hi (a whole number, up to rounding). */
static int axis_steps(const struct svg_axis *a)
{
	return (int)lround((a->hi - a->lo) / a->step);
}

/* s with &, <, >, " escaped. */
static int put_escaped(struct strbuf *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&':
			sb_puts(out, "&amp;");
			break;
		case '<':
			sb_puts(out, "&lt;");
			break;
		case '>':
			sb_puts(out, "&gt;");
			break;
		case '"':
			sb_puts(out, "&quot;");
			break;
		default:
			/* control characters are not XML 1.0 */
			if ((unsigned char)*s >= 0x20 || *s == '\t')
				sb_append(out, s, 1);
		}
	}
	return out->err;
}

int svg_begin(struct strbuf *out, int width, int height, const char *title)
{
	sb_printf(out,
		  "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		  "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" "
		  "viewBox=\"0 0 %d %d\" font-family=\"%s\">\n<title>",
		  width, height, FONT);
	put_escaped(out, title);
	sb_printf(out, "</title>\n<rect width=\"%d\" height=\"%d\" "
		       "fill=\"#ffffff\"/>\n",
		  width, height);
	return svg_text(out, width / 2.0, 26, 17, "middle", "#222222", title);
}

int svg_end(struct strbuf *out)
{
	return sb_puts(out, "</svg>\n");
}

int svg_text(struct strbuf *out, double x, double y, double size,
	     const char *anchor, const char *fill, const char *text)
{
	sb_printf(out, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%g\" "
		       "text-anchor=\"%s\" fill=\"%s\">",
		  x, y, size, anchor, fill);
	put_escaped(out, text);
	return sb_puts(out, "</text>\n");
}

double svg_x(const struct svg_panel *p, double x)
{
	double f = (x - p->x.lo) / (p->x.hi - p->x.lo);

	f = isfinite(f) ? fmin(fmax(f, 0), 1) : 0;
	return p->left + f * p->width;
}

double svg_y(const struct svg_panel *p, double y)
{
	double f = (y - p->y.lo) / (p->y.hi - p->y.lo);

	f = isfinite(f) ? fmin(fmax(f, 0), 1) : 0;
	return p->top + (1 - f) * p->height;
}

/* "lo to hi step s" of an axis, for the panel's <desc>. */
static void axis_desc(struct strbuf *out, const char *name,
		      const struct svg_axis *a)
{
	char lo[32], hi[32], st[32];

	svg_tick_label(a, a->lo, lo, sizeof(lo));
	svg_tick_label(a, a->hi, hi, sizeof(hi));
	snprintf(st, sizeof(st), "%g", a->step);
	sb_printf(out, "%s: %s to %s step %s", name, lo, hi, st);
}

int svg_frame(struct svg_panel *p, const char *heading, const char *xlabel,
	      const char *ylabel)
{
	struct strbuf *out = p->out;
	double right = p->left + p->width, bottom = p->top + p->height;
	char label[32];
	int n;

	sb_puts(out, "<g>\n<desc>");
	axis_desc(out, "x", &p->x);
	sb_puts(out, "; ");
	axis_desc(out, "y", &p->y);
	sb_puts(out, "</desc>\n");
	if (heading)
		svg_text(out, p->left, p->top - 10, 14, "start", "#222222",
			 heading);
	/* grid and tick labels */
	sb_puts(out, "<g stroke=\"#e4e4e4\" stroke-width=\"1\">\n");
	n = axis_steps(&p->x);
	for (int i = 0; i <= n; i++) {
		double x = svg_x(p, p->x.lo + i * p->x.step);

		sb_printf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
			       "y2=\"%.1f\"/>\n",
			  x, p->top, x, bottom);
	}
	n = axis_steps(&p->y);
	for (int i = 0; i <= n; i++) {
		double y = svg_y(p, p->y.lo + i * p->y.step);

		sb_printf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
			       "y2=\"%.1f\"/>\n",
			  p->left, y, right, y);
	}
	sb_puts(out, "</g>\n");
	sb_printf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
		       "height=\"%.1f\" fill=\"none\" stroke=\"#555555\"/>\n",
		  p->left, p->top, p->width, p->height);
	n = axis_steps(&p->x);
	for (int i = 0; i <= n; i++) {
		double v = p->x.lo + i * p->x.step;

		svg_tick_label(&p->x, v, label, sizeof(label));
		svg_text(out, svg_x(p, v), bottom + 16, 11, "middle",
			 "#444444", label);
	}
	n = axis_steps(&p->y);
	for (int i = 0; i <= n; i++) {
		double v = p->y.lo + i * p->y.step;

		svg_tick_label(&p->y, v, label, sizeof(label));
		svg_text(out, p->left - 6, svg_y(p, v) + 4, 11, "end",
			 "#444444", label);
	}
	if (xlabel)
		svg_text(out, p->left + p->width / 2, bottom + 36, 12,
			 "middle", "#222222", xlabel);
	if (ylabel) {
		double x = p->left - 52, y = p->top + p->height / 2;

		sb_printf(out, "<g transform=\"rotate(-90 %.1f %.1f)\">\n", x,
			  y);
		svg_text(out, x, y, 12, "middle", "#222222", ylabel);
		sb_puts(out, "</g>\n");
	}
	return out->err;
}

int svg_frame_end(struct svg_panel *p)
{
	return sb_puts(p->out, "</g>\n");
}

int svg_line(struct svg_panel *p, const double *xs, const double *ys,
	     size_t n, const char *colour, const char *dash)
{
	struct strbuf *out = p->out;
	bool open = false;

	for (size_t i = 0; i < n; i++) {
		if (!isfinite(xs[i]) || !isfinite(ys[i])) {
			if (open)
				sb_puts(out, "\"/>\n");
			open = false;
			continue;
		}
		if (!open) {
			sb_printf(out, "<polyline fill=\"none\" stroke=\"%s\" "
				       "stroke-width=\"2\" "
				       "stroke-linejoin=\"round\"%s%s%s "
				       "points=\"",
				  colour, dash ? " stroke-dasharray=\"" : "",
				  dash ? dash : "", dash ? "\"" : "");
			open = true;
		} else {
			sb_puts(out, " ");
		}
		sb_printf(out, "%.1f,%.1f", svg_x(p, xs[i]), svg_y(p, ys[i]));
	}
	if (open)
		sb_puts(out, "\"/>\n");
	return out->err;
}

int svg_points(struct svg_panel *p, const double *xs, const double *ys,
	       size_t n, double r, const char *colour, double opacity)
{
	struct strbuf *out = p->out;

	sb_printf(out, "<g fill=\"%s\" fill-opacity=\"%g\">\n", colour,
		  opacity);
	for (size_t i = 0; i < n; i++)
		if (isfinite(xs[i]) && isfinite(ys[i]))
			sb_printf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" "
				       "r=\"%g\"/>\n",
				  svg_x(p, xs[i]), svg_y(p, ys[i]), r);
	return sb_puts(out, "</g>\n");
}

int svg_mark(struct svg_panel *p, double x, double y, const char *colour,
	     const char *label)
{
	double cx = svg_x(p, x), cy = svg_y(p, y);
	/* the label on the side with room */
	bool left = cx > p->left + p->width * 0.7;

	sb_printf(p->out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"9\" "
			  "fill=\"none\" stroke=\"%s\" stroke-width=\"2.5\"/>\n",
		  cx, cy, colour);
	return svg_text(p->out, left ? cx - 13 : cx + 13, cy - 10, 12,
			left ? "end" : "start", colour, label);
}

int svg_rect(struct strbuf *out, double x, double y, double w, double h,
	     const char *fill, const char *stroke)
{
	return sb_printf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
			      "height=\"%.1f\" fill=\"%s\" stroke=\"%s\"/>\n",
			 x, y, w, h, fill, stroke ? stroke : "none");
}

int svg_legend(struct svg_panel *p, const char *const *names,
	       const char *const *colours, size_t n, const bool *dashed)
{
	struct strbuf *out = p->out;
	size_t longest = 0;
	double w, h, x, y;

	if (n == 0)
		return out->err;
	for (size_t i = 0; i < n; i++)
		longest = strlen(names[i]) > longest ? strlen(names[i]) : longest;
	/* DejaVu Sans at 12 units: about 7 units a character */
	w = 40 + 7.0 * (double)longest;
	h = 8 + 18.0 * (double)n;
	x = p->left + p->width - w - 8;
	y = p->legend_low ? p->top + p->height - h - 8 : p->top + 8;
	svg_rect(out, x, y, w, h, "#ffffff", "#bbbbbb");
	for (size_t i = 0; i < n; i++) {
		double ly = y + 16 + 18.0 * (double)i;

		sb_printf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
			       "y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"%s/>\n",
			  x + 8, ly - 4, x + 30, ly - 4,
			  colours ? colours[i] : svg_colour(i),
			  dashed && dashed[i] ? " stroke-dasharray=\"6 4\"" : "");
		svg_text(out, x + 36, ly, 12, "start", "#222222", names[i]);
	}
	return out->err;
}
