/* SPDX-License-Identifier: MIT */
/*
 * The key pii values of one owner are hashed under (anonkey.c): derived
 * from the mount's -o anon_key for that uid, so that one user cannot
 * hash guesses to match another user's column.  Deployments' logs and
 * the anonymize prep step use it.
 */
#ifndef MLFS_BASE_ANONKEY_H
#define MLFS_BASE_ANONKEY_H

#include <stddef.h>
#include <sys/types.h>

struct fs;

#define ANON_KEY_LEN 32

/* out: HMAC-SHA-256(anon_key, "mlfs anon v1 uid <owner>").  -ENOKEY
 * without -o anon_key, -EIO if libcrypto fails. */
int anon_owner_key(const struct fs *fs, uid_t owner,
		   unsigned char out[ANON_KEY_LEN]);

/*
 * HMAC-SHA-256 under one key of ANON_KEY_LEN bytes, kept only as SHA-256's
 * two keyed states (after the key xor ipad, and xor opad: RFC 2104), so a
 * value costs two compressions when it is short.  anon_hmac may be called
 * from any number of threads at once on one struct anon_hmac.
 */
struct anon_hmac;

/* NULL when out of memory.  The key is not kept. */
struct anon_hmac *anon_hmac_new(const unsigned char key[ANON_KEY_LEN]);
/*
 * anon_hmac_new, but anon_hmac then always takes libcrypto's SHA-256 even
 * where the CPU has the SHA extensions (anonkey.c hashes values of fewer
 * than 56 bytes with them otherwise): for tests and benchmarks, which
 * compare the two.  The digests are the same.
 */
struct anon_hmac *anon_hmac_new_portable(const unsigned char key[ANON_KEY_LEN]);
/* out: HMAC-SHA-256(key, data[0..len)).  -EIO if libcrypto fails. */
int anon_hmac(const struct anon_hmac *h, const void *data, size_t len,
	      unsigned char out[32]);
/*
 * out[i]: anon_hmac of data[i][0..len[i]), for i < n.  With the SHA
 * extensions, short values go two at a time, in about the time of one.
 * 0, or anon_hmac's first error.
 */
int anon_hmac_many(const struct anon_hmac *h, size_t n,
		   const void *const *data, const size_t *len,
		   unsigned char (*out)[32]);
/* Wipes the states; anon_hmac_free(NULL) does nothing. */
void anon_hmac_free(struct anon_hmac *h);

#endif
