/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for predict's scoring streams (fs/ml/predict.c) on a model
 * served from an in-memory store, with a stub regression plugin that
 * scores every row 0.5 (or, for the tests that need it, a sum of the
 * encoded features): what is checked is how rows become answers, not the
 * model.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "repo.h"
#include "failalloc.h"
#include "fixture_fs.h"
#include "fs.h"
#include "hash.h"
#include "mlcore.h"
#include "node.h"
#include "plugin.h"
#include "predict.h"
#include "store.h"
#include "tap.h"

static int stub_inst;
static bool stub_sums; /* answer sum(x[c] * 10^c), not 0.5 */

static int stub_init(const struct mlfs_host *host, unsigned task,
		     const struct mlfs_param *params, size_t nparams,
		     void **inst, char *msg, size_t msglen)
{
	(void)host;
	(void)task;
	(void)params;
	(void)nparams;
	(void)msg;
	(void)msglen;
	*inst = &stub_inst;
	return 0;
}

static size_t stub_outputs(void *inst)
{
	(void)inst;
	return 1;
}

static int stub_predict(void *inst, const struct mlfs_matrix *x,
			struct mlfs_matrix *out)
{
	(void)inst;
	for (size_t r = 0; r < x->rows; r++) {
		float v = 0.5f, w = 1;

		for (size_t c = 0; stub_sums && c < x->cols; c++, w *= 10)
			v += w * x->data[r * x->ld + c];
		out->data[r * out->ld] = v;
	}
	return 0;
}

static int stub_load(void *inst, const void *buf, size_t len)
{
	(void)inst;
	(void)buf;
	(void)len;
	return 0;
}

static void stub_fini(void *inst)
{
	(void)inst;
}

static const struct mlfs_train_ops stub_ops = {
	.size = sizeof(stub_ops),
	.tasks = MLFS_TASK_REGRESSION,
	.init = stub_init,
	.outputs = stub_outputs,
	.predict = stub_predict,
	.load = stub_load,
	.fini = stub_fini,
};

static const struct mlfs_plugin stub = {
	.abi_major = MLFS_ABI_MAJOR, .abi_minor = MLFS_ABI_MINOR,
	.stage = MLFS_STAGE_TRAIN, .name = "stub", .ops = &stub_ops,
};

/*
 * A model trained on csv whose first nfeat columns are its numeric inputs
 * and whose last is the label, with the id column id (NULL: none named),
 * in fs's store; 0 or -errno.
 */
static int serve_csv(struct fs *fs, const char *csv, size_t nfeat,
		     const char *id, struct served **out)
{
	static const size_t feat[] = { 0, 1, 2, 3 };
	size_t rows[16];
	struct problem pb = { 0 };
	struct table *t = NULL;
	struct fx *fx = NULL;
	json_t *hdr = NULL, *inputs;
	void *file = NULL;
	size_t len;
	char hash[HASH_HEX_LEN + 1];
	char key[128];
	char msg[256];
	int rc;

	rc = table_parse(csv, strlen(csv), &t, &pb);
	if (rc == 0 && (t->nrows > 16 || nfeat > 4))
		rc = -E2BIG;
	for (size_t r = 0; rc == 0 && r < t->nrows; r++)
		rows[r] = r;
	if (rc == 0)
		rc = fx_fit(t, feat, NULL, nfeat, rows, t->nrows, &fx, &pb);
	if (rc < 0)
		goto out;
	inputs = json_array();
	for (size_t i = 0; inputs && i < nfeat; i++)
		json_array_append_new(inputs, json_string(t->names[i]));
	hdr = json_pack("{s:s, s:s, s:[], s:s, s:o, s:{}, s:o, s:i, s:s?}",
			"plugin", "stub", "task", "regression", "classes",
			"label", t->names[t->ncols - 1], "features",
			fx_to_json(fx), "params", "inputs", inputs, "outputs",
			1, "id", id);
	rc = hdr ? model_encode(hdr, "", 0, &file, &len) : -ENOMEM;
	if (rc < 0)
		goto out;
	hash_hex(file, len, hash);
	repo_blob_key(hash, key, sizeof(key));
	rc = store_put(fs->store, key, file, len);
	if (rc == 0)
		rc = served_get(fs, hash, out, msg, sizeof(msg));
out:
	free(file);
	json_decref(hdr);
	fx_free(fx);
	table_free(t);
	return rc;
}

/* A model of one numeric input x. */
static int serve_stub(struct fs *fs, struct served **out)
{
	return serve_csv(fs, "x,y\n1,1\n2,2\n3,3\n", 1, NULL, out);
}

/* All the answers of text written to a new stream on m, in one write. */
static char *answers(struct served *m, const char *text)
{
	struct strbuf out = { 0 };
	struct pstream *s;
	char *r;

	if (pstream_new(m, &s) < 0)
		return NULL;
	if (pstream_write(s, text, strlen(text), &out) < 0 ||
	    pstream_finish(s, &out) < 0 || sb_append(&out, "", 1) < 0) {
		pstream_free(s);
		sb_free(&out);
		return NULL;
	}
	pstream_free(s);
	r = strdup(out.buf);
	sb_free(&out);
	return r;
}

static void is_answer(struct served *m, const char *text, const char *want,
		      const char *name)
{
	char *got = answers(m, text);

	is_str(got, want, name);
	free(got);
}

/*
 * Allocation N fails, for N from 1 until none does, in a stream that
 * takes a header with an id, quotes an id and refuses a second header's
 * rows: each run ends with 0 or -ENOMEM and frees everything (the
 * sanitizer's leak check runs at exit), and the last run answers all.
 */
static void test_alloc_failures(struct served *m)
{
	static const char text[] = "id,b,a\n\"x,1\",20,2\n7,,2\n"
				   "{\"id\": 5, \"a\": 2, \"b\": 20}\n";
	int bad = 0, runs = 0, rc = 0;
	bool fired = true;
	struct strbuf out = { 0 };

	for (unsigned n = 1; fired && n < 1000; n++) {
		struct pstream *s = NULL;

		sb_free(&out);
		out = (struct strbuf){ 0 };
		failalloc_arm(n);
		rc = pstream_new(m, &s);
		if (rc == 0)
			rc = pstream_write(s, text, sizeof(text) - 1, &out);
		if (rc == 0)
			rc = pstream_finish(s, &out);
		fired = failalloc_fired();
		failalloc_arm(0);
		pstream_free(s);
		bad += rc != 0 && rc != -ENOMEM;
		runs++;
	}
	is_int(bad, 0, "failed allocations end in 0 or -ENOMEM");
	ok(!fired && rc == 0 && sb_append(&out, "", 1) == 0 &&
		   strncmp(out.buf, "\"x,1\",", 6) == 0,
	   "the run without a failure answers");
	printf("# %d runs\n", runs);
	sb_free(&out);
}

/* Are the three lines of text the same line? */
static bool three_same(const char *text)
{
	const char *a = text, *b, *c;
	size_t n;

	if (!a)
		return false;
	b = strchr(a, '\n');
	if (!b)
		return false;
	n = (size_t)(b - a) + 1;
	b = a + n;
	c = b + n;
	return strlen(a) == 3 * n && memcmp(a, b, n) == 0 &&
	       memcmp(a, c, n) == 0;
}

/*
 * Rows as written, on the model of inputs a and b: each text gives the
 * same answers in one write, cut in two at every byte, and one byte per
 * write; and those answers are want, or (want NULL) the answers to like.
 */
static const struct {
	const char *text;
	size_t len;        /* 0: strlen(text) (texts with NUL give theirs) */
	const char *want;
	const char *like;
	const char *why;
} stream_cases[] = {
	{ "3,20\n", 0, NULL, "3,20\n", "a row" },
	{ "a,b\n3,20\n", 0, NULL, "3,20\n", "a header" },
	{ "b,a\n20,3\n", 0, NULL, "3,20\n", "a header in another order" },
	{ " b\t, a \n20,3\n", 0, NULL, "3,20\n", "names trimmed" },
	{ "x,b,a\n9,20,3\n", 0, NULL, "3,20\n", "an extra column" },
	{ "\"b\",\"a\"\n\"20\",\"3\"\n", 0, NULL, "3,20\n",
	  "quoted header and fields" },
	{ "a,b\r\n3,20\r\n1,10\r\n", 0, NULL, "3,20\n1,10\n", "CRLF" },
	{ "\n\na,b\n\n3,20\n\r\n\n", 0, NULL, "3,20\n", "empty lines" },
	{ "\r\n\n", 0, "", NULL, "only empty lines" },
	{ "a,b\n3,20", 0, NULL, "3,20\n", "the last row without a newline" },
	{ "{\"b\": 20, \"a\": 3}\n", 0, NULL, "{\"a\": 3, \"b\": 20}\n",
	  "JSON, any key order" },
	{ "{\"a\": \"3\", \"b\": 20, \"c\": [1]}\r\n", 0, NULL,
	  "{\"a\": 3, \"b\": 20}\n", "JSON: a number as a string, CRLF, "
	  "an extra key" },
	{ "{}\n", 0, NULL, "{\"a\": null, \"b\": null}\n",
	  "JSON: nothing given is the training mean" },
	{ "b,a\n20,3\n{\"a\": 3, \"b\": 20}\n20,3\n", 0, NULL,
	  "3,20\n{\"a\": 3, \"b\": 20}\n3,20\n", "CSV and JSON mixed" },
	{ "{\"a\": true, \"b\": 1}\n", 0,
	  "error: a: a JSON boolean, not a value\n", NULL, "JSON boolean" },
	{ "{\"a\": 1, \"b\": [1]}\n", 0, "error: b: a JSON array, not a value\n",
	  NULL, "JSON array" },
	{ "{\"a\": {}, \"b\": 1}\n", 0, "error: a: a JSON object, not a value\n",
	  NULL, "JSON object" },
	{ "{\"a\": 3,\n", 0, "error: bad JSON: string or '}' expected near "
	  "end of file\n", NULL, "JSON cut by its newline" },
	{ "{\"a\": 3} 1\n", 0, "error: bad JSON: end of file expected near "
	  "'1'\n", NULL, "JSON with more after it" },
	{ "{\"a\": 3\0, \"b\": 20}\n", 18, NULL, "{\"a\": 3, \"b\": 20}\n",
	  "JSON: jansson skips a NUL between tokens" },
	{ "3\0,20\n", 6, "error: binary data (NUL byte)\n", NULL,
	  "a NUL in a field: refused as datasets refuse it" },
	{ "\0\n", 2, "error: binary data (NUL byte)\n", NULL,
	  "a row of one NUL" },
	{ "[1,2]\n", 0, "error: a: not a number \"[1\"\n", NULL,
	  "a JSON array is a CSV row" },
	{ "\"3,5\",20\n", 0, "error: a: not a number \"3,5\"\n", NULL,
	  "a quoted comma stays in its field" },
	{ "\"3\"\"\",20\n", 0, "error: a: not a number \"3\"\"\n", NULL,
	  "a doubled quote" },
	{ "\"3,20\n", 0, "error: unterminated quoted field\n", NULL,
	  "an unterminated quote" },
	{ "\"3\"x,20\n", 0, "error: unexpected text after closing quote\n",
	  NULL, "a stray quote" },
	{ "3\n", 0, "error: expected 2 fields, got 1\n", NULL, "too few" },
	{ "3,20,5\n", 0, "error: expected 2 fields, got 3\n", NULL,
	  "too many" },
	{ "3,20,\n", 0, "error: expected 2 fields, got 3\n", NULL,
	  "a trailing comma is a field" },
	{ "a,b\nb,a\n", 0, "error: a: not a number \"b\"\n", NULL,
	  "a second header is data" },
	{ "a,b,a\n3,20,3\n{\"a\": 3, \"b\": 20}\n", 0, NULL,
	  "a,b,a\n3,20,3\n{\"a\": 3, \"b\": 20}\n",
	  "(a refused header, JSON after)" },
	{ "x\n", 0, "error: expected 2 fields, got 1\n", NULL,
	  "one word is a row" },
};

/* text written as one write (cut < 0), cut in two at byte cut, or one
 * byte per write (cut == len + 1); NULL on failure */
static char *stream_answers(struct served *m, const char *text, size_t len,
			    long cut)
{
	struct strbuf out = { 0 };
	struct pstream *s;
	int rc = 0;
	char *r;

	if (pstream_new(m, &s) < 0)
		return NULL;
	if (cut < 0) {
		rc = pstream_write(s, text, len, &out);
	} else if ((size_t)cut <= len) {
		rc = pstream_write(s, text, (size_t)cut, &out);
		if (rc == 0)
			rc = pstream_write(s, text + cut, len - (size_t)cut,
					   &out);
	} else {
		for (size_t i = 0; i < len && rc == 0; i++)
			rc = pstream_write(s, text + i, 1, &out);
	}
	if (rc == 0)
		rc = pstream_finish(s, &out);
	pstream_free(s);
	if (rc < 0 || sb_append(&out, "", 1) < 0) {
		sb_free(&out);
		return NULL;
	}
	r = strdup(out.buf);
	sb_free(&out);
	return r;
}

static void test_stream_table(struct served *m)
{
	for (size_t i = 0; i < sizeof(stream_cases) / sizeof(stream_cases[0]);
	     i++) {
		const char *text = stream_cases[i].text;
		size_t len = stream_cases[i].len ? stream_cases[i].len
						 : strlen(text);
		char *whole = stream_answers(m, text, len, -1), *want;
		long differ = -2;

		for (long cut = 0; whole && cut <= (long)len + 1; cut++) {
			char *got = stream_answers(m, text, len, cut);

			if (!got || strcmp(got, whole) != 0)
				differ = cut;
			free(got);
			if (differ != -2)
				break;
		}
		if (!tap_ok(whole && differ == -2, __FILE__, __LINE__,
			    "differ == -2", stream_cases[i].why))
			printf("#   answers differ when cut at byte %ld\n",
			       differ);
		want = stream_cases[i].want
			       ? strdup(stream_cases[i].want)
			       : answers(m, stream_cases[i].like);
		is_str(whole, want, "its answers");
		free(want);
		free(whole);
	}
}

/*
 * Headers: extra columns ignored, any order, names trimmed; the id column
 * echoed first (CSV quoted as it must be, JSON as given); a repeated or
 * missing column refuses the header and every row after it; a first row
 * of junk is data, not a header.  Empty and missing values take the
 * value meta.json records (the training mean): the same answer as the
 * row with that value written in.
 */
static void test_headers_and_ids(struct fs *fs)
{
	/* a: mean 2, std sqrt(2/3); b: mean 20 */
	static const char csv[] = "a,b,y\n1,10,0\n2,20,0\n3,30,0\n";
	struct served *m = NULL, *c = NULL;
	char *one, *two;

	stub_sums = true;
	if (serve_csv(fs, csv, 2, NULL, &m) < 0 ||
	    serve_csv(fs, csv, 2, "cust", &c) < 0) {
		ok(0, "headers: the models load");
		served_put(m);
		stub_sums = false;
		return;
	}
	is_answer(m, "a,b\n2,20\n", "0.5\n", "a header naming the inputs");
	is_answer(m, "id,b,label,a\n7,20,x,2\nr8,20,y,2\n",
		  "7,0.5\nr8,0.5\n",
		  "extra columns ignored, the id echoed first");
	is_answer(m, " b , id,a\n20,\"x,\"\"y\"\"\",2\n",
		  "\"x,\"\"y\"\"\",0.5\n",
		  "names trimmed; an id with a comma or quote quoted");
	is_answer(m, "a,b,a\n2,20,2\n2,20,2\n",
		  "error: a: repeated in the header\n"
		  "error: a: repeated in the header\n"
		  "error: a: repeated in the header\n",
		  "a repeated column refuses the header and its rows");
	is_answer(m, "id,a,note,note\n1,2,x,y\n",
		  "error: note: repeated in the header\n"
		  "error: note: repeated in the header\n",
		  "a repeated extra column too");
	is_answer(m, "id,a\n1,2\n{\"a\": 2, \"b\": 20}\n",
		  "error: b: missing from the header\n"
		  "error: b: missing from the header\n{\"prediction\": 0.5}\n",
		  "a missing column refuses the header; JSON rows still "
		  "score");
	is_answer(m, "abc,def\n", "error: a: not a number \"abc\"\n",
		  "a first row of junk is data");
	is_answer(m, "2,20,7\n", "error: expected 2 fields, got 3\n",
		  "without a header no id is taken");
	is_answer(m, "{\"id\": \"r1\", \"a\": 2, \"b\": 20}\n"
		     "{\"id\": 5, \"a\": 2, \"b\": 20}\n"
		     "{\"a\": 2, \"b\": 20}\n",
		  "{\"id\": \"r1\", \"prediction\": 0.5}\n"
		  "{\"id\": 5, \"prediction\": 0.5}\n{\"prediction\": 0.5}\n",
		  "JSON: the id as given");
	is_answer(c, "id,cust,a,b\n1,c9,2,20\n", "c9,0.5\n",
		  "the model's id column is echoed, \"id\" is then extra");
	is_answer(c, "{\"cust\": \"c9\", \"id\": 1, \"a\": 2, \"b\": 20}\n",
		  "{\"id\": \"c9\", \"prediction\": 0.5}\n",
		  "JSON: the model's id column answers as \"id\"");
	one = answers(m, "a,b\n,10\nNA,10\n2,10\n");
	ok(three_same(one) && strcmp(one, "0.5\n0.5\n0.5\n") != 0,
	   "empty and missing values are the training mean, 2");
	two = answers(m, "{\"a\": 1, \"b\": null}\n{\"a\": 1}\n"
			 "{\"a\": 1, \"b\": 20}\n");
	ok(three_same(two), "JSON: null and absent are the training mean");
	free(one);
	free(two);
	test_stream_table(m);
	test_alloc_failures(m);
	served_put(m);
	served_put(c);
	stub_sums = false;
}

static size_t count_lines(const struct strbuf *sb)
{
	size_t n = 0;

	for (size_t i = 0; i < sb->len; i++)
		n += sb->buf[i] == '\n';
	return n;
}

/*
 * A row over the limit that arrives in the same write as a full batch
 * (the eight rows a new stream has room for) gets its error line after
 * their answers: the line once went one slot past the batch's arrays.
 */
static void test_long_row_after_full_batch(struct served *m)
{
	static const char row[] = "1\n";
	size_t head = 8 * (sizeof(row) - 1);
	size_t len = head + PREDICT_MAX_LINE + 1;
	struct strbuf out = { 0 };
	struct pstream *s;
	char *buf = malloc(len);
	int rc;

	if (!buf || pstream_new(m, &s) < 0) {
		ok(0, "long row after a full batch: setup");
		free(buf);
		return;
	}
	for (int i = 0; i < 8; i++)
		memcpy(buf + i * (sizeof(row) - 1), row, sizeof(row) - 1);
	memset(buf + head, '7', PREDICT_MAX_LINE + 1);
	rc = pstream_write(s, buf, len, &out);
	is_int(rc, -E2BIG, "a row over the limit is -E2BIG");
	rc = pstream_write(s, "8\n2\n", 4, &out);
	is_int(rc, 0, "the rest of the long row is skipped");
	is_int(pstream_finish(s, &out), 0, "finish");
	is_int(count_lines(&out), 10, "eight answers, one error, one answer");
	ok(out.buf && strstr(out.buf, "0.5\n0.5\nerror: row longer than") &&
		   strcmp(out.buf + out.len - 4, "0.5\n") == 0,
	   "the error line stands in the long row's place");
	pstream_free(s);
	sb_free(&out);
	free(buf);
}

/*
 * CSV rows are read by the tokenizer datasets and training read with
 * (fs/base/csv_tok.c): quotes, doubled quotes, CRLF and a trailing empty
 * field as there, and a row it refuses is answered with its problem.
 */
static void test_row_quoting(struct served *m)
{
	static const struct {
		const char *in;
		const char *want;
	} rows[] = {
		{ "\"2\"\n", "0.5\n" },
		{ "\"2\"\r\n", "0.5\n" },
		{ "2\r\n", "0.5\n" },
		{ "\"2\n", "error: unterminated quoted field\n" },
		{ "\"2\"\"\n", "error: unterminated quoted field\n" },
		{ "2\"\n", "error: quote inside unquoted field\n" },
		{ "\"2\"x\n", "error: unexpected text after closing quote\n" },
		{ "\"2\"\r\r\n",
		  "error: unexpected text after closing quote\n" },
		{ "2,\n", "error: expected 1 fields, got 2\n" },
		{ "\"\"\"2\"\n", "error: x: not a number \"\"2\"\n" },
		{ "\"2\n\"\n3\n",
		  "error: unterminated quoted field\n"
		  "error: unterminated quoted field\n0.5\n" },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char name[80];

		snprintf(name, sizeof(name), "row quoting %zu", i);
		is_answer(m, rows[i].in, rows[i].want, name);
	}
}

/* A router for test_routed: models in turn, the second row mirrored. */
struct rtest {
	size_t next, rows, seq;
	bool paused;
	struct strbuf log; /* one line per answer: cand mirror id inputs */
};

static int rt_pick(void *arg, size_t *cand, long *mirror, char *why,
		   size_t whylen)
{
	struct rtest *t = arg;

	if (t->paused) {
		snprintf(why, whylen, "paused");
		return -EAGAIN;
	}
	*cand = t->next;
	t->next = 1 - t->next;
	*mirror = t->rows++ == 1 ? 0 : -1;
	return 0;
}

static int rt_assign(void *arg, struct strbuf *id)
{
	struct rtest *t = arg;

	return sb_printf(id, "d-%zu", ++t->seq);
}

static void rt_answered(void *arg, const struct pstream_answer *a)
{
	struct rtest *t = arg;

	sb_printf(&t->log, "%ld %d %.*s %.*s %s\n",
		  a->cand == (size_t)-1 ? -1L : (long)a->cand, a->mirror,
		  (int)a->idlen, a->id ? a->id : "", (int)a->inlen,
		  a->inputs ? a->inputs : "", a->out ? "out" : "err");
}

/*
 * A routed stream over two models of the same inputs (scaled apart):
 * rows go where the router says, with ids assigned, answers logged in
 * order with their inputs, a mirror logged and never answered.
 */
static void test_routed(struct fs *fs)
{
	static const char csv1[] = "a,b,y\n1,10,0\n2,20,0\n3,30,0\n";
	static const char csv2[] = "a,b,y\n1,10,0\n3,20,0\n5,30,0\n";
	struct served *ms[2] = { NULL, NULL }, *c = NULL, *bad[2];
	struct pstream_route rt = { rt_pick, rt_assign, rt_answered, NULL,
				    NULL, NULL };
	struct rtest t = { 0 };
	struct strbuf out = { 0 };
	struct pstream *s = NULL;
	char *one, *two, want[256];
	const char *in = "a,b\n2,20\n2,20\n{\"a\": 2, \"b\": 20}\n";

	stub_sums = true;
	rt.arg = &t;
	if (serve_csv(fs, csv1, 2, NULL, &ms[0]) < 0 ||
	    serve_csv(fs, csv2, 2, NULL, &ms[1]) < 0 ||
	    serve_csv(fs, csv1, 2, "cust", &c) < 0 ||
	    pstream_new_routed(ms, 2, &rt, &s) < 0 ||
	    pstream_write(s, in, strlen(in), &out) < 0 ||
	    sb_append(&out, "", 1) < 0) {
		ok(0, "routed: the models load and a stream scores");
		goto out;
	}
	one = answers(ms[0], "2,20\n");
	two = answers(ms[1], "2,20\n");
	snprintf(want, sizeof(want),
		 "d-1,%sd-2,%s{\"id\": \"d-3\", \"prediction\": %.*s}\n",
		 one, two, (int)strlen(one) - 1, one);
	is_str(out.buf, want, "routed: rows answered by their model, in "
			      "turn, each with an assigned id");
	free(one);
	free(two);
	sb_append(&t.log, "", 1);
	is_str(t.log.buf,
	       "0 0 d-1 {\"a\": 2, \"b\": 20} out\n"
	       "1 0 d-2 {\"a\": 2, \"b\": 20} out\n"
	       "0 1 d-2 {\"a\": 2, \"b\": 20} out\n"
	       "0 0 \"d-3\" {\"a\": 2, \"b\": 20} out\n",
	       "routed: every answer told in order, the mirror's after its "
	       "row's");
	out.len = 0;
	t.log.len = 0;
	t.paused = true;
	pstream_write(s, "2,20\n", 5, &out);
	sb_append(&out, "", 1);
	sb_append(&t.log, "", 1);
	is_str(out.buf, "error: paused\n", "routed: a refused row answers "
					   "the router's reason");
	is_str(t.log.buf, "-1 0   err\n", "routed: and is told, unrouted");
	bad[0] = ms[0];
	bad[1] = c;
	pstream_free(s);
	s = NULL;
	ok(pstream_new_routed(bad, 2, &rt, &s) == -EINVAL && !s,
	   "routed: models with different id columns are refused");
out:
	pstream_free(s);
	sb_free(&out);
	sb_free(&t.log);
	served_put(ms[0]);
	served_put(ms[1]);
	served_put(c);
	stub_sums = false;
}

int main(void)
{
	struct plugin pl = { .desc = &stub, .path = "stub.so" };
	struct plugin_set ps = { .ok = &pl, .nok = 1 };
	struct fixture_fs_opts opts = { .plugins = &ps };
	struct served *m = NULL;
	struct fs fs;

	if (fixture_fs_setup(&fs, &opts) < 0 || served_cache_open(&fs) < 0 ||
	    serve_stub(&fs, &m) < 0) {
		ok(0, "the stub model loads");
		return done();
	}
	ok(1, "the stub model loads");
	test_long_row_after_full_batch(m);
	test_row_quoting(m);
	served_put(m);
	test_headers_and_ids(&fs);
	test_routed(&fs);
	served_cache_close(&fs);
	fixture_fs_teardown(&fs);
	return done();
}
