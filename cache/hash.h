/* SPDX-License-Identifier: MIT */
/*
 * Content hashes: xxh3-128 (libxxhash), written as 32 lower-case hex
 * digits.  Blobs in the store are addressed by this hash.
 */
#ifndef MLFS_CACHE_HASH_H
#define MLFS_CACHE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_HEX_LEN 32

struct hash_state; /* streaming state, opaque */

/* hash_hex: hash of buf into out (HASH_HEX_LEN + 1 bytes). */
void hash_hex(const void *buf, size_t len, char out[HASH_HEX_LEN + 1]);

/* Streaming: new (NULL on ENOMEM), update any number of times, final. */
struct hash_state *hash_new(void);
void hash_update(struct hash_state *h, const void *buf, size_t len);
void hash_final(struct hash_state *h, char out[HASH_HEX_LEN + 1]);
void hash_free(struct hash_state *h);

/* hash_fd: hash the whole file behind fd (from offset 0). -errno on error. */
int hash_fd(int fd, char out[HASH_HEX_LEN + 1]);

#endif
