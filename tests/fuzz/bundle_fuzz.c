/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the bundle reader, what models/<m>/import runs on
 * bytes anyone with write permission on a model sends.
 *
 * The input goes to bundle_read whole, and to the framing walk in
 * pieces cut where its first byte says.  Properties: bundle_read either
 * refuses (-EINVAL, a message) or gives every member within its cap;
 * the walk never takes more bytes than it was given and, once it says
 * the archive ended, takes no more; a bundle read back from
 * bundle_write of what was read is the same.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle.h"

static void walk(const uint8_t *data, size_t size)
{
	struct bundle_walk w = { 0 };
	size_t step = size ? (size_t)data[0] * 7 + 1 : 1, at = 0, total = 0;
	char msg[300];
	int rc = 0;

	while (at < size && rc == 0) {
		size_t n = size - at < step ? size - at : step, keep = 0;

		rc = bundle_walk_feed(&w, data + at, n, &keep, msg, sizeof(msg));
		if (keep > n)
			abort();
		total += keep;
		at += n;
		if (rc < 0 && !msg[0])
			abort();
	}
	if (total > size)
		abort();
	bundle_walk_end(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bundle b, again;
	char msg[300];
	void *out;
	size_t outlen;
	int rc;

	walk(data, size);
	rc = bundle_read(data, size, &b, msg, sizeof(msg));
	if (rc == -ENOMEM)
		return 0;
	if (rc < 0) {
		if (rc != -EINVAL || !msg[0])
			abort();
		return 0;
	}
	uint64_t len[BUNDLE_NMEMBERS];

	for (int i = 0; i < BUNDLE_NMEMBERS; i++) {
		if (b.len[i] > bundle_caps[i] || !b.data[i])
			abort();
		len[i] = b.len[i];
	}
	if (bundle_write((const void *const *)b.data, len, 0, &out, &outlen,
			 msg, sizeof(msg)) == 0) {
		if (outlen != bundle_size(len) ||
		    bundle_read(out, outlen, &again, msg, sizeof(msg)) < 0)
			abort();
		for (int i = 0; i < BUNDLE_NMEMBERS; i++)
			if (again.len[i] != b.len[i] ||
			    memcmp(again.data[i], b.data[i], b.len[i]))
				abort();
		bundle_free(&again);
		free(out);
	}
	bundle_free(&b);
	return 0;
}
