/* SPDX-License-Identifier: MIT */
/* The per-owner anonymisation key of anonkey.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "anonkey.h"
#include "fs.h"

int anon_owner_key(const struct fs *fs, uid_t owner,
		   unsigned char out[ANON_KEY_LEN])
{
	char info[64];
	unsigned len = 0;

	if (!fs->anon_key)
		return -ENOKEY;
	snprintf(info, sizeof(info), "mlfs anon v1 uid %u", (unsigned)owner);
	if (!HMAC(EVP_sha256(), fs->anon_key, (int)fs->anon_key_len,
		  (const unsigned char *)info, strlen(info), out, &len) ||
	    len != ANON_KEY_LEN)
		return -EIO;
	return 0;
}

struct anon_hmac {
	SHA256_CTX inner; /* after the key xor ipad */
	SHA256_CTX outer; /* after the key xor opad */
};

/*
 * *st: SHA-256 from *from (or from the start, when from is NULL) with
 * data added, then finished into out unless out is NULL.
 *
 * The low-level SHA256_* calls are deprecated in OpenSSL 3, but nothing
 * else in it copies a state cheaply: EVP_MD_CTX_copy_ex duplicates the
 * provider's context on the heap.  A short value (an e-mail address, 26
 * bytes) took 674 ns with two EVP copies, 473 ns with EVP_DigestInit_ex
 * on pad || value, 1,092 ns with one-shot EVP_Digest of the same, and
 * 217 ns with SHA256_CTX copied by assignment (OpenSSL 3.0, SHA-NI, the
 * machine of doc/performance.md): 15 million values are 3.3 s instead of
 * 10.  So the deprecated calls stay, in this one function.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static int anon_sha(SHA256_CTX *st, const SHA256_CTX *from, const void *data,
		    size_t len, unsigned char *out)
{
	if (from)
		*st = *from;
	else if (!SHA256_Init(st))
		return -EIO;
	if (!SHA256_Update(st, data, len))
		return -EIO;
	if (out && !SHA256_Final(out, st))
		return -EIO;
	return 0;
}
#pragma GCC diagnostic pop

struct anon_hmac *anon_hmac_new(const unsigned char key[ANON_KEY_LEN])
{
	struct anon_hmac *h = malloc(sizeof(*h));
	unsigned char pad[64];
	int rc;

	if (!h)
		return NULL;
	/* a 32-byte key is shorter than SHA-256's block: padded, not hashed */
	memset(pad, 0x36, sizeof(pad));
	for (size_t i = 0; i < ANON_KEY_LEN; i++)
		pad[i] ^= key[i];
	rc = anon_sha(&h->inner, NULL, pad, sizeof(pad), NULL);
	memset(pad, 0x5c, sizeof(pad));
	for (size_t i = 0; i < ANON_KEY_LEN; i++)
		pad[i] ^= key[i];
	if (rc == 0)
		rc = anon_sha(&h->outer, NULL, pad, sizeof(pad), NULL);
	explicit_bzero(pad, sizeof(pad));
	if (rc < 0) {
		anon_hmac_free(h);
		return NULL;
	}
	return h;
}

int anon_hmac(const struct anon_hmac *h, const void *data, size_t len,
	      unsigned char out[32])
{
	SHA256_CTX st;
	unsigned char in[32];
	int rc;

	rc = anon_sha(&st, &h->inner, data, len, in);
	if (rc == 0)
		rc = anon_sha(&st, &h->outer, in, sizeof(in), out);
	return rc;
}

void anon_hmac_free(struct anon_hmac *h)
{
	if (!h)
		return;
	explicit_bzero(h, sizeof(*h));
	free(h);
}
