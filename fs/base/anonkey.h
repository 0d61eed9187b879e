/* SPDX-License-Identifier: MIT */
/*
 * The key pii values of one owner are hashed under (anonkey.c): derived
 * from the mount's -o anon_key for that uid, so that one user cannot
 * hash guesses to match another user's column.  Deployments' logs and
 * the anonymize prep step use it.
 */
#ifndef MLFS_BASE_ANONKEY_H
#define MLFS_BASE_ANONKEY_H

#include <sys/types.h>

struct fs;

#define ANON_KEY_LEN 32

/* out: HMAC-SHA-256(anon_key, "mlfs anon v1 uid <owner>").  -ENOKEY
 * without -o anon_key, -EIO if libcrypto fails. */
int anon_owner_key(const struct fs *fs, uid_t owner,
		   unsigned char out[ANON_KEY_LEN]);

#endif
