/* SPDX-License-Identifier: MIT */
/*
 * Content hashes: xxh3-128 from libxxhash, printed as 32 lower-case hex
 * digits, high 64 bits first (the same text as `xxh128sum`).  A hash
 * state belongs to one thread; the one-shot functions are safe anywhere.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <xxhash.h>

#include "hash.h"

/* hash_fd reads this much per pread(). */
#define HASH_CHUNK (1024 * 1024)

struct hash_state {
	XXH3_state_t *xs;
};

static void hash_print(XXH128_hash_t h, char out[HASH_HEX_LEN + 1])
{
	snprintf(out, HASH_HEX_LEN + 1, "%016llx%016llx",
		 (unsigned long long)h.high64, (unsigned long long)h.low64);
}

void hash_hex(const void *buf, size_t len, char out[HASH_HEX_LEN + 1])
{
	hash_print(XXH3_128bits(buf, len), out);
}

struct hash_state *hash_new(void)
{
	struct hash_state *h;

	h = malloc(sizeof(*h));
	if (!h)
		return NULL;
	h->xs = XXH3_createState();
	if (!h->xs)
		goto out_free_h;
	if (XXH3_128bits_reset(h->xs) != XXH_OK)
		goto out_free_state;
	return h;

out_free_state:
	XXH3_freeState(h->xs);
out_free_h:
	free(h);
	return NULL;
}

void hash_update(struct hash_state *h, const void *buf, size_t len)
{
	/* Only a NULL input with len > 0 fails, which is our own bug. */
	XXH3_128bits_update(h->xs, buf, len);
}

void hash_final(struct hash_state *h, char out[HASH_HEX_LEN + 1])
{
	hash_print(XXH3_128bits_digest(h->xs), out);
}

void hash_free(struct hash_state *h)
{
	if (!h)
		return;
	XXH3_freeState(h->xs);
	free(h);
}

int hash_fd(int fd, char out[HASH_HEX_LEN + 1])
{
	struct hash_state *h;
	uint64_t off = 0;
	ssize_t n;
	char *buf;
	int rc;

	buf = malloc(HASH_CHUNK);
	if (!buf)
		return -ENOMEM;
	h = hash_new();
	if (!h) {
		rc = -ENOMEM;
		goto out_free_buf;
	}
	for (;;) {
		n = pread(fd, buf, HASH_CHUNK, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto out_free_h;
		}
		if (n == 0)
			break;
		hash_update(h, buf, (size_t)n);
		off += (uint64_t)n;
	}
	hash_final(h, out);
	rc = 0;
out_free_h:
	hash_free(h);
out_free_buf:
	free(buf);
	return rc;
}
