/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: predict's stream parser (fs/ml/predict.c), on a small
 * logistic model built once in memory (fuzz_model.c; inputs x, color,
 * when).  The first input byte picks how the rest is cut: it is written
 * once whole, then again through a fresh stream in pieces of 1 to 32
 * bytes (rows, headers and JSON lines cut at any offset), and then in
 * two pieces split at the offset the second byte picks.  All three must
 * give the same answers, byte for byte: how a writer's rows fall into
 * write() calls must never change what it reads back.  With the first
 * byte's top bit set, the cut stream then gets a row longer than
 * PREDICT_MAX_LINE, which must be answered with one error line, and a
 * last good row after it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "fuzz_model.h"
#include "node.h"
#include "predict.h"

/* "\n" and eight rows (the room a stream starts with), then a too long row */
#define GOOD_ROW "1,red,2024-01-01\n"
#define LONG_HEAD (1 + 8 * (sizeof(GOOD_ROW) - 1))

static struct served *model;
static char *long_row;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const void *file;
	size_t len;

	(void)argc;
	(void)argv;
	fuzz_model_file(&file, &len);
	if (fuzz_serve(file, len, &model) < 0) {
		fprintf(stderr, "predict_fuzz: the model does not load\n");
		exit(1);
	}
	long_row = malloc(LONG_HEAD + PREDICT_MAX_LINE + 1);
	if (!long_row)
		exit(1);
	long_row[0] = '\n';
	for (int i = 0; i < 8; i++)
		memcpy(long_row + 1 + i * (sizeof(GOOD_ROW) - 1), GOOD_ROW,
		       sizeof(GOOD_ROW) - 1);
	memset(long_row + LONG_HEAD, '1', PREDICT_MAX_LINE + 1);
	return 0;
}

/* Score data[0..len) written in pieces of at most step bytes. */
static void score(const char *data, size_t len, size_t step, size_t cut,
		  bool too_long, struct strbuf *out)
{
	struct pstream *s;

	if (pstream_new(model, &s) < 0)
		abort();
	for (size_t off = 0; off < len;) {
		size_t n = len - off < step ? len - off : step;

		if (off < cut && off + n > cut)
			n = cut - off;
		if (pstream_write(s, data + off, n, out) < 0)
			abort();
		off += n;
	}
	if (too_long) {
		/*
		 * End the fuzzed rows, then in one write eight good rows (all
		 * the room a new stream has for a batch) and the
		 * start of one too long, then the rest of it and a good row.
		 */
		if (pstream_write(s, long_row, LONG_HEAD + PREDICT_MAX_LINE + 1,
				  out) != -E2BIG ||
		    pstream_write(s, "1\n1,red,2024-01-01\n", 19, out) < 0)
			abort();
	}
	if (pstream_finish(s, out) < 0)
		abort();
	pstream_free(s);
}

/* memcmp that takes NULL for no bytes */
static bool same(const char *a, const char *b, size_t n)
{
	return n == 0 || memcmp(a, b, n) == 0;
}

/*
 * After the long row, cut holds whole's answers, eight for the good rows,
 * one error line for the long one and one for the last row.
 */
static bool long_row_answered(const struct strbuf *whole,
			      const struct strbuf *cut)
{
	static const char err[] = "error: row longer than";
	const char *p;
	size_t lines = 0;

	if (cut->len < whole->len || !same(whole->buf, cut->buf, whole->len))
		return false;
	for (p = cut->buf + whole->len; p < cut->buf + cut->len; p++) {
		if (p > cut->buf + whole->len && p[-1] != '\n')
			continue;
		if (++lines == 9 && strncmp(p, err, sizeof(err) - 1) != 0)
			return false;
	}
	return lines == 10 && cut->buf[cut->len - 1] == '\n';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct strbuf whole = { 0 };
	struct strbuf cut = { 0 };
	struct strbuf two = { 0 };
	const char *text = (const char *)data + 2;
	size_t len;

	if (size < 2)
		return 0;
	len = size - 2;
	score(text, len, len ? len : 1, 0, false, &whole);
	score(text, len, 1 + (data[0] & 31), 0, false, &cut);
	score(text, len, len ? len : 1, len ? data[1] % len : 0, false,
	      &two);
	if (whole.err || cut.err || two.err || whole.len != cut.len ||
	    whole.len != two.len || !same(whole.buf, cut.buf, cut.len) ||
	    !same(whole.buf, two.buf, two.len)) {
		fprintf(stderr, "predict: answers differ by cut\n"
				"whole:\n%.*s\ncut by %d:\n%.*s\n"
				"cut at %zu:\n%.*s\n",
			(int)whole.len, whole.buf, 1 + (data[0] & 31),
			(int)cut.len, cut.buf, len ? data[1] % len : 0,
			(int)two.len, two.buf);
		abort();
	}
	if (data[0] & 0x80) {
		sb_free(&cut);
		cut = (struct strbuf){ 0 };
		score(text, len, 1 + (data[0] & 31), 0, true, &cut);
		if (cut.err || !long_row_answered(&whole, &cut)) {
			fprintf(stderr, "predict: a long row misaligned the "
					"answers:\n%.*s\n---\n%.*s\n",
				(int)whole.len, whole.buf, (int)cut.len,
				cut.buf);
			abort();
		}
	}
	sb_free(&whole);
	sb_free(&cut);
	sb_free(&two);
	return 0;
}
