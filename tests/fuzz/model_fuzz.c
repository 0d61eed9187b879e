/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the model file loader.  Each input is decoded as it
 * is (model_decode: magic, version, lengths, checksum), and then fixed
 * up so that the fuzzer gets past the envelope: magic and version set,
 * the header length clamped to the bytes there are, the weights length
 * made to match and the xxh3 checksum recomputed.  The fixed file is
 * loaded as predict loads a model from the store (served_get: header
 * JSON, the plugin it names, features, classes, inputs, params, the
 * plugin's load of the weights) and, if it loads, scores a CSV row, a
 * JSON line and a header with a row, as a predict handle would.  The
 * seeds are models trained by fuzz_model.c.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <xxhash.h>

#include "fs.h"
#include "fuzz_model.h"
#include "mlcore.h"
#include "node.h"
#include "predict.h"

#define HDR 24 /* magic, version, header length, weights length */
#define SUM 16 /* xxh3-128 */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dump = getenv("MLFS_FUZZ_DUMP_MODEL");
	const void *file;
	size_t len;
	FILE *fp;

	(void)argc;
	(void)argv;
	fuzz_model_file(&file, &len);
	/* tests/fuzz/run.sh makes the seed of this target so */
	if (dump) {
		fp = fopen(dump, "wb");
		if (!fp || fwrite(file, 1, len, fp) != len || fclose(fp)) {
			perror(dump);
			exit(1);
		}
	}
	return 0;
}

static void put_le(unsigned char *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void serve(const void *file, size_t len)
{
	static const char rows[] =
		"0.5,red,2024-01-01\n"
		"{\"x\": 1.5, \"color\": \"blue\", \"when\": \"2024-02-02\"}\n"
		"when,x\n2024-03-03,2.5\n";
	struct strbuf out = { 0 };
	struct served *m;
	struct pstream *s;

	if (fuzz_serve(file, len, &m) < 0)
		return;
	if (pstream_new(m, &s) == 0) {
		pstream_write(s, rows, sizeof(rows) - 1, &out);
		pstream_finish(s, &out);
		pstream_free(s);
	}
	sb_free(&out);
	served_put(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const void *w;
	size_t wlen;
	json_t *h;
	unsigned char *f;
	uint64_t hlen;
	XXH128_canonical_t c;

	if (model_decode(data, size, &h, &w, &wlen, NULL, 0) == 0)
		json_decref(h);
	if (size < HDR + SUM)
		return 0;
	f = malloc(size);
	if (!f)
		return 0;
	memcpy(f, data, size);
	memcpy(f, MODEL_MAGIC, 8);
	put_le(f + 8, MODEL_FORMAT, 4);
	hlen = get_le(f + 12, 4);
	if (hlen > size - HDR - SUM)
		hlen = size - HDR - SUM;
	put_le(f + 12, hlen, 4);
	put_le(f + 16, size - HDR - SUM - hlen, 8);
	XXH128_canonicalFromHash(&c, XXH3_128bits(f, size - SUM));
	memcpy(f + size - SUM, c.digest, SUM);
	/* only the header's JSON may still be wrong */
	if (model_decode(f, size, &h, &w, &wlen, NULL, 0) == 0) {
		json_decref(h);
		serve(f, size);
	}
	free(f);
	return 0;
}
