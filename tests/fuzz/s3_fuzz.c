/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the S3 client's response parsers.  Each input is
 * read as each kind of body a server sends back:
 *   - a ListObjectsV2 page, by store_s3.c's own page reader (included
 *     here, as its parsers are static), under no prefix and under
 *     "pre/": every key it passes on must be one mlfs could have written,
 *     under the prefix, and the continuation token must decode;
 *   - an error body (<Error><Code>...), read as s3.c's s3_attempt reads
 *     it, and the answer to CreateMultipartUpload (<UploadId>);
 *   - any XML text: every value s3_xml_decode accepts must come back
 *     unchanged from s3_xml_escape and a second decode.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../cache/store_s3.c"

static struct s3_client *client;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct store_s3_opts o = {
		.bucket = "fuzz",
		.endpoint = "http://127.0.0.1:9",
		.path_style = true,
	};

	(void)argc;
	(void)argv;
	if (s3_client_new(&o, &client) < 0) {
		fprintf(stderr, "s3_fuzz: s3_client_new failed\n");
		exit(1);
	}
	return 0;
}

static int listed(void *arg, const char *key, const struct store_stat *st)
{
	(void)st;
	if (!store_key_is_valid(key)) {
		fprintf(stderr, "s3: a listing passed on key \"%s\" (%s)\n",
			key, (const char *)arg);
		abort();
	}
	return 0;
}

static void list_page(const char *data, size_t size, char *prefix)
{
	struct s3s s = { .c = client, .prefix = prefix };
	struct s3_buf page = { 0 };
	struct s3_buf next = { .max = 64 * 1024 };

	s3_buf_add(&page, data, size);
	s3_buf_adds(&page, ""); /* as s3s_list does for an empty body */
	if (page.err == 0)
		s3s_list_page(&s, &page, listed, prefix, &next);
	s3_buf_free(&next);
	s3_buf_free(&page);
}

/* decode(escape(decode(v))) == decode(v), for what decodes */
static void round_trip(const char *v, size_t n)
{
	struct s3_buf a = { 0 };
	struct s3_buf e = { 0 };
	struct s3_buf b = { 0 };

	if (s3_xml_decode(&a, v, n) == 0 && a.p && strlen(a.p) == a.len) {
		s3_xml_escape(&e, a.p);
		if (e.err || s3_xml_decode(&b, e.p ? e.p : "", e.len) != 0 ||
		    b.len != a.len || (a.len && memcmp(a.p, b.p, a.len))) {
			fprintf(stderr, "s3: \"%.*s\" decodes to \"%s\", "
					"escaped \"%s\", back \"%s\"\n",
				(int)n, v, a.p, e.p, b.p ? b.p : "");
			abort();
		}
	}
	s3_buf_free(&b);
	s3_buf_free(&e);
	s3_buf_free(&a);
}

static void bodies(const char *data, size_t size)
{
	static const char *const tags[] = { "Code", "Message", "UploadId",
					    "Key", "ETag", "Region", NULL };
	const char *end = data + size;
	const char *pos;
	const char *v;
	size_t vlen;
	char code[64];

	for (int i = 0; tags[i]; i++) {
		pos = data;
		while (s3_xml_find(&pos, end, tags[i], &v, &vlen)) {
			if (pos > end || v < data || v + vlen > end)
				abort();
			snprintf(code, sizeof(code), "%.*s", (int)vlen, v);
			round_trip(v, vlen);
		}
	}
	round_trip(data, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	list_page((const char *)data, size, "");
	list_page((const char *)data, size, "pre/");
	bodies((const char *)data, size);
	return 0;
}
