/* SPDX-License-Identifier: MIT */
/*
 * Event rows of a feature set (featevents.c): what features/<fs>/events
 * takes (CSV after a header, or JSON lines) and what the event log holds
 * (CSV), read into a batch of events with their entity keys, times and
 * values, and written back as the log's canonical CSV.  Pure.
 */
#ifndef MLFS_FS_FEATEVENTS_H
#define MLFS_FS_FEATEVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "featcalc.h"
#include "problem.h"
#include "strbuf.h"

/* A batch: events with their keys; every value kept as number and text. */
struct feat_batch {
	size_t n, cap, ncols;
	struct feat_event *ev;
	uint64_t *line;        /* per event: its line, for messages */
	size_t *koff, *klen;   /* per event: its key in arena */
	double *num;           /* n * ncols: NAN missing or not a number */
	const char **str;      /* n * ncols: text, NULL missing */
	size_t *slen;
	size_t *soff;          /* n * ncols: offsets of the texts in arena */
	struct strbuf arena;
	struct strbuf csv;     /* the rows as the log keeps them, no header */
	bool iso;              /* some time was ISO text */
};

/* The header row of the log's CSV: entity columns, timestamp, columns. */
int feat_log_header(const struct feat_spec *spec, struct strbuf *out);

/*
 * feat_rows_parse: the rows of text (len bytes, complete lines) into b,
 * appended.  header (hlen bytes, no newline) names the columns; NULL
 * for JSON lines, one object a line.  Lines are numbered from line.
 * -EINVAL with pb at the first bad row (line and column; b then holds
 * what came before it), -ENOMEM.
 */
int feat_rows_parse(const struct feat_spec *spec, const char *header,
		    size_t hlen, const char *text, size_t len, uint64_t line,
		    struct feat_batch *b, struct problem *pb);

/* Point ev[] and str[] into the arena: after the last parse, before use. */
void feat_batch_seal(struct feat_batch *b);
void feat_batch_free(struct feat_batch *b);
/* Empty b, keeping its memory for the next parse. */
void feat_batch_reset(struct feat_batch *b);

/* The key of event i (values joined by FEAT_KEY_SEP). */
const char *feat_batch_key(const struct feat_batch *b, size_t i,
			   size_t *len);

#endif
