/* SPDX-License-Identifier: MIT */
/* The per-owner anonymisation key of anonkey.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

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
