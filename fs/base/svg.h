/* SPDX-License-Identifier: MIT */
/*
 * A small SVG 1.1 writer for plots (models' learning.svg and roc.svg,
 * jobs' trials.svg, deployments' metrics.svg).  No library draws plain,
 * scalable SVG with text as text from C in Debian (cairo's SVG surface
 * turns text into glyph paths and sizes pages in points), so this is
 * ours: a document sized by its viewBox, axes with ticks chosen by the
 * "nice numbers" rule, polylines, points, cells, a legend.  Pure: it
 * appends to a strbuf; any thread (one owner).
 *
 * Every panel says its axes in a <desc> child ("x: 0 to 1 step 0.2"),
 * for screen readers and for tests, which compare them with ranges they
 * compute themselves.
 */
#ifndef MLFS_FS_SVG_H
#define MLFS_FS_SVG_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf;

/*
 * Colours that stay apart for colour-blind readers (Okabe and Ito), in
 * turn; svg_dash(i) is NULL for the first SVG_NCOLOURS lines and a dash
 * pattern for the next ones, so that a ninth line differs from the
 * first.
 */
#define SVG_NCOLOURS 8
const char *svg_colour(size_t i);
const char *svg_dash(size_t i);

/* An axis: ticks lo, lo + step, ... hi (lo and hi are multiples of step). */
struct svg_axis {
	double lo, hi, step;
	int digits; /* decimals of a tick label */
};

/*
 * svg_ticks: the axis that covers [min, max] with about want ticks: the
 * step is (max - min) / (want - 1) rounded to 1, 2 or 5 times a power of
 * ten as Heckbert rounds ("Nice numbers for graph labels", Graphics
 * Gems, 1990), and the ends are the multiples of it around min and max.
 * A range of one value is widened by a tenth of it each way (by 1 for
 * zero); non-finite ends give 0 to 1.
 */
void svg_ticks(double min, double max, int want, struct svg_axis *a);
/* A tick's label as the axis prints it ("0.25", "1500", "2e+06"). */
void svg_tick_label(const struct svg_axis *a, double v, char *out,
		    size_t len);

/* A panel: the plot area's box in document units and its two axes. */
struct svg_panel {
	struct strbuf *out;
	double left, top, width, height;
	struct svg_axis x, y;
	bool legend_low; /* the legend at the bottom right (roc.svg) */
};

/*
 * svg_begin: the document, width x height units by its viewBox, with a
 * <title> and a heading line.  svg_end closes it.  Both return 0 or the
 * strbuf's error (-ENOMEM, -E2BIG).
 */
int svg_begin(struct strbuf *out, int width, int height, const char *title);
int svg_end(struct strbuf *out);

/* Text, escaped for XML; anchor "start", "middle" or "end". */
int svg_text(struct strbuf *out, double x, double y, double size,
	     const char *anchor, const char *fill, const char *text);

/*
 * svg_frame: the panel's grid, ticks, tick labels and axis labels
 * (units in them: "latency p99 (ms)"), and its <desc>.  Opens a <g> for
 * the panel; svg_frame_end closes it.
 */
int svg_frame(struct svg_panel *p, const char *heading, const char *xlabel,
	      const char *ylabel);
int svg_frame_end(struct svg_panel *p);

/* Data to document coordinates, clamped to the panel. */
double svg_x(const struct svg_panel *p, double x);
double svg_y(const struct svg_panel *p, double y);

/* A line through n points (NaN y breaks it); dash NULL for solid. */
int svg_line(struct svg_panel *p, const double *xs, const double *ys,
	     size_t n, const char *colour, const char *dash);
/* n points as circles of radius r (opacity for dense clouds). */
int svg_points(struct svg_panel *p, const double *xs, const double *ys,
	       size_t n, double r, const char *colour, double opacity);
/* One marker, a ring around a point (the best trial), with a label. */
int svg_mark(struct svg_panel *p, double x, double y, const char *colour,
	     const char *label);
/* A filled rectangle in document units (a confusion matrix's cell). */
int svg_rect(struct strbuf *out, double x, double y, double w, double h,
	     const char *fill, const char *stroke);

/*
 * svg_legend: entries named names[i] in colours[i] (colours NULL:
 * svg_colour(i)), at the panel's top right (bottom right if legend_low),
 * inside it, on a white box.  dashed[i] (may be NULL) draws that entry
 * dashed, as its line is.
 */
int svg_legend(struct svg_panel *p, const char *const *names,
	       const char *const *colours, size_t n, const bool *dashed);

#endif
