/* SPDX-License-Identifier: MIT */
/*
 * The model file (mlcore.h): a header of JSON, the plugin's weights and
 * an xxh3-128 over all of it; and the list of a model version's files.
 * Pure.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <jansson.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "csv.h"
#include "mlcore.h"
#include "mlcore_int.h"
#include "mlfs_plugin.h"

/* ---------------------------------------------------------------- */
/* The model file. */

#define MODEL_HDR 24
#define MODEL_SUM 16

static void put_le(unsigned char *p, uint64_t v, int n)
{
	int i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n)
{
	uint64_t v = 0;
	int i;

	for (i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void model_sum(const void *buf, size_t n, unsigned char *out)
{
	XXH128_canonical_t c;

	/* The canonical form is big-endian, high half first. */
	XXH128_canonicalFromHash(&c, XXH3_128bits(buf, n));
	memcpy(out, c.digest, MODEL_SUM);
}

int model_encode(json_t *header, const void *weights, size_t wlen,
		 void **out, size_t *outlen)
{
	unsigned char *buf;
	char *h;
	size_t hlen;
	size_t total;
	int rc = 0;

	*out = NULL;
	*outlen = 0;
	if (!json_is_object(header) || (wlen && !weights))
		return -EINVAL;
	h = json_dumps(header, JSON_COMPACT | JSON_SORT_KEYS |
				       JSON_REAL_PRECISION(17));
	if (!h)
		return -ENOMEM;
	hlen = strlen(h);
	if (hlen > UINT32_MAX ||
	    wlen > SIZE_MAX - MODEL_HDR - MODEL_SUM - hlen) {
		rc = -EFBIG;
		goto out_free_h;
	}
	total = MODEL_HDR + hlen + wlen + MODEL_SUM;
	buf = malloc(total);
	if (!buf) {
		rc = -ENOMEM;
		goto out_free_h;
	}
	memcpy(buf, MODEL_MAGIC, 8); /* with its NUL */
	put_le(buf + 8, MODEL_FORMAT, 4);
	put_le(buf + 12, hlen, 4);
	put_le(buf + 16, wlen, 8);
	memcpy(buf + MODEL_HDR, h, hlen);
	if (wlen)
		memcpy(buf + MODEL_HDR + hlen, weights, wlen);
	model_sum(buf, total - MODEL_SUM, buf + total - MODEL_SUM);
	*out = buf;
	*outlen = total;
out_free_h:
	free(h);
	return rc;
}

unsigned model_task(const char *name)
{
	return !name ? 0
	       : strcmp(name, "classification") == 0 ? MLFS_TASK_CLASSIFICATION
	       : strcmp(name, "regression") == 0     ? MLFS_TASK_REGRESSION
	       : strcmp(name, "clustering") == 0     ? MLFS_TASK_CLUSTERING
						     : 0;
}

static int model_bad(char *msg, size_t msglen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int model_bad(char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;

	if (msg && msglen) {
		va_start(ap, fmt);
		vsnprintf(msg, msglen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

int model_decode(const void *buf, size_t len, json_t **header,
		 const void **weights, size_t *wlen, char *msg, size_t msglen)
{
	const unsigned char *b = buf;
	unsigned char sum[MODEL_SUM];
	json_error_t err;
	uint64_t version;
	uint64_t hlen;
	uint64_t w;
	json_t *h;

	*header = NULL;
	*weights = NULL;
	*wlen = 0;
	if (msg && msglen)
		msg[0] = '\0';
	if (!b && len)
		return model_bad(msg, msglen, "model: no buffer");
	if (memcmp(b ? (const void *)b : "", MODEL_MAGIC,
		   len < 8 ? len : 8))
		return model_bad(msg, msglen, "model: bad magic");
	if (len < MODEL_HDR)
		return model_bad(msg, msglen, "model: truncated");
	version = get_le(b + 8, 4);
	if (version != MODEL_FORMAT)
		return model_bad(msg, msglen,
				 "model: format %u is not supported",
				 (unsigned)version);
	hlen = get_le(b + 12, 4);
	w = get_le(b + 16, 8);
	/* Compared against what is left, so no sum can overflow. */
	if (hlen > len - MODEL_HDR || len - MODEL_HDR - hlen < MODEL_SUM ||
	    w > len - MODEL_HDR - hlen - MODEL_SUM)
		return model_bad(msg, msglen, "model: truncated");
	if (w < len - MODEL_HDR - hlen - MODEL_SUM)
		return model_bad(msg, msglen, "model: data after the checksum");
	model_sum(b, len - MODEL_SUM, sum);
	if (memcmp(sum, b + len - MODEL_SUM, MODEL_SUM))
		return model_bad(msg, msglen, "model: checksum mismatch");
	h = json_loadb((const char *)b + MODEL_HDR, (size_t)hlen,
		       JSON_REJECT_DUPLICATES, &err);
	if (!h)
		return model_bad(msg, msglen, "model: bad header: %s",
				 err.text);
	if (!json_is_object(h)) {
		json_decref(h);
		return model_bad(msg, msglen,
				 "model: header is not a JSON object");
	}
	*header = h;
	*weights = b + MODEL_HDR + hlen;
	*wlen = (size_t)w;
	return 0;
}

#define MODEL_FILE_NAME(id, name) [id] = name,
const char *const model_files[MODEL_NFILES] = { MODEL_FILES(MODEL_FILE_NAME) };
#undef MODEL_FILE_NAME
