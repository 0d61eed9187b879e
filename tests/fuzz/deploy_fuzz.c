/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: a deployment's spec checks and its routed stream,
 * the parts that need no mount.
 *
 * Odd first byte: deployspec_check on the rest, whole (final) and on
 * every prefix, as a spec written in pieces is checked at each write; a
 * spec valid whole must be accepted at every one of its prefixes.
 * Even: the rest written to a routed stream over two copies of the fuzz
 * model (rows in turn, every third mirrored, ids assigned) and to a
 * plain stream over it: the routed answer of each row is the plain one,
 * after an assigned id when it has none of its own, and every answer is
 * told once, in order.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "deployspec.h"
#include "fs.h"
#include "fuzz_model.h"
#include "predict.h"

static struct served *model;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const void *file;
	size_t len;

	(void)argc;
	(void)argv;
	fuzz_model_file(&file, &len);
	if (fuzz_serve(file, len, &model) < 0) {
		fprintf(stderr, "deploy_fuzz: the model does not load\n");
		exit(1);
	}
	return 0;
}

static void specs(const char *text, size_t len)
{
	struct problem pb = { 0 };
	json_t *spec = NULL;
	int rc = deployspec_check(text, len, true, &spec, &pb);

	if (rc == 0 && !spec)
		abort(); /* final: complete, or an error */
	if (rc < 0 || !spec)
		return;
	json_decref(spec);
	for (size_t k = 0; k < len; k++) {
		struct problem pp = { 0 };

		if (deployspec_check(text, k, false, NULL, &pp) < 0) {
			fprintf(stderr, "deploy: a prefix of %zu bytes of a "
					"valid spec refused: %s\n",
				k, pp.msg);
			abort();
		}
	}
}

struct router {
	size_t rows, seq, told, mirrors;
};

static int pick(void *arg, size_t *cand, long *mirror, char *why,
		size_t whylen)
{
	struct router *r = arg;

	(void)why;
	(void)whylen;
	*cand = r->rows % 2;
	*mirror = r->rows % 3 == 0 ? 1 : -1;
	r->rows++;
	return 0;
}

static int assign(void *arg, struct strbuf *id)
{
	struct router *r = arg;

	return sb_printf(id, "d-%zu", ++r->seq);
}

static void answered(void *arg, const struct pstream_answer *a)
{
	struct router *r = arg;

	if (a->mirror)
		r->mirrors++;
	else
		r->told++;
}

static void streams(const char *text, size_t len)
{
	struct served *ms[2] = { model, model };
	struct router r = { 0 };
	struct pstream_route rt = { pick, assign, answered, &r, NULL, NULL };
	struct strbuf plain = { 0 }, routed = { 0 };
	struct pstream *p, *s;
	size_t lines = 0;
	const char *a, *b;

	if (pstream_new(model, &p) < 0 ||
	    pstream_new_routed(ms, 2, &rt, &s) < 0)
		abort();
	if (pstream_write(p, text, len, &plain) == -ENOMEM ||
	    pstream_finish(p, &plain) == -ENOMEM ||
	    pstream_write(s, text, len, &routed) == -ENOMEM ||
	    pstream_finish(s, &routed) == -ENOMEM)
		abort();
	pstream_free(p);
	pstream_free(s);
	a = plain.buf;
	b = routed.buf;
	while (a && b && a < plain.buf + plain.len) {
		const char *ae = memchr(a, '\n', plain.len - (size_t)(a - plain.buf));
		const char *be = memchr(b, '\n', routed.len - (size_t)(b - routed.buf));
		size_t an, bn;

		if (!ae || !be)
			abort();
		an = (size_t)(ae - a);
		bn = (size_t)(be - b);
		/* CSV: "d-<n>," before it; JSON: {"id": "d-<n>", inside */
		if (an && a[0] == '{' && bn > an &&
		    (strncmp(b, "{\"id\": \"d-", 10) != 0 ||
		     memcmp(be - (an - 1), a + 1, an - 1) != 0)) {
			fprintf(stderr, "deploy: routed \"%.*s\" for \"%.*s\"\n",
				(int)bn, b, (int)an, a);
			abort();
		} else if (!(an && a[0] == '{') &&
			   (bn < an || memcmp(be - an, a, an) != 0 ||
			    (bn > an && (strncmp(b, "d-", 2) != 0 ||
					 b[bn - an - 1] != ',')))) {
			fprintf(stderr, "deploy: routed \"%.*s\" for \"%.*s\"\n",
				(int)bn, b, (int)an, a);
			abort();
		}
		lines++;
		a = ae + 1;
		b = be + 1;
	}
	if (plain.len != (a ? (size_t)(a - plain.buf) : 0) ||
	    routed.len != (b ? (size_t)(b - routed.buf) : 0) ||
	    r.told != lines)
		abort();
	sb_free(&plain);
	sb_free(&routed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		specs((const char *)data + 1, size - 1);
	else
		streams((const char *)data + 1, size - 1);
	return 0;
}
