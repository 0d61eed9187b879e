/* SPDX-License-Identifier: MIT */
/*
 * anonkey: anon_hmac is HMAC-SHA-256, byte for byte: vectors from
 * Python's hmac (key bytes 0..31) at lengths around SHA-256's block
 * (55 and 56 bytes end the inner hash in one block or two), and
 * OpenSSL's one-shot HMAC() for every length from 0 to 300.  Then
 * random keys and values of every length from 0 to 100, over a million of
 * them, through both paths of anonkey.c (the SHA-NI one for values of
 * fewer than 56 bytes where the CPU has it, and libcrypto's, forced with
 * anon_hmac_new_portable) against HMAC().
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "anonkey.h"
#include "failalloc.h"
#include "tap.h"

static const struct {
	size_t len; /* of 'x' repeated, or "a@x.org" for 7 */
	const char *hex;
} vectors[] = {
	{ 0, "d38b42096d80f45f826b44a9d5607de72496a415d3f4a1a8c88e3bb9da8dc1cb" },
	{ 7, "9d3de0ccd8036c0232d8abb2620e33e3c3ce434c537113a799c2b88ae017ee79" },
	{ 55, "37e3a063705c893eb8e0cc065f4bb4bb09e08967617b7ef0b5e550318ccc882b" },
	{ 56, "feb0960aa2c5196e22057827de25b0b897bd9d3299f109f86c8cd40f460648b9" },
	{ 64, "154147924bb4a7b7d6bea3ae21ad2f8fc6ddfc0bf0b8f3db05b9442438508598" },
	{ 200, "7b48ae507721b7feb27d8403d20568ca6d1e003dba73751f869cae6163653c59" },
};

static uint64_t rng = 20261204;

static uint64_t splitmix64(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

static void fill(unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)splitmix64();
}

/*
 * keys random keys, each with a random value of every length from 0 to
 * 100 at a random alignment: anon_hmac from anon_hmac_new and from
 * anon_hmac_new_portable against HMAC().  false at the first difference.
 */
static bool random_same(unsigned keys)
{
	unsigned char key[ANON_KEY_LEN], buf[16 + 101];
	unsigned char fast[32], portable[32], want[32];
	unsigned n = 0;

	for (unsigned k = 0; k < keys; k++) {
		struct anon_hmac *h, *p;
		bool same = true;

		fill(key, sizeof(key));
		h = anon_hmac_new(key);
		p = anon_hmac_new_portable(key);
		for (size_t len = 0; same && len <= 100; len++) {
			unsigned char *v = buf + splitmix64() % 16;

			fill(v, len);
			same = h && p && anon_hmac(h, v, len, fast) == 0 &&
			       anon_hmac(p, v, len, portable) == 0 &&
			       HMAC(EVP_sha256(), key, sizeof(key), v, len,
				    want, &n) &&
			       memcmp(fast, want, sizeof(want)) == 0 &&
			       memcmp(portable, want, sizeof(want)) == 0;
			if (!same)
				printf("# key %u, %zu bytes: differs\n", k,
				       len);
		}
		anon_hmac_free(h);
		anon_hmac_free(p);
		if (!same)
			return false;
	}
	return true;
}

/*
 * anon_hmac_many over n values of random lengths around the two-at-a-time
 * limit (55 and 56 bytes), so that pairs, single long values between
 * them and an odd one at the end all come up: each digest as HMAC()'s.
 */
static bool many_same(unsigned rounds)
{
	unsigned char key[ANON_KEY_LEN], buf[17][70], out[17][32], want[32];
	const void *data[17];
	size_t len[17];
	unsigned n = 0;

	for (unsigned r = 0; r < rounds; r++) {
		size_t count = 1 + (size_t)(splitmix64() % 17);
		struct anon_hmac *h;
		bool same;

		fill(key, sizeof(key));
		h = anon_hmac_new(key);
		for (size_t i = 0; i < count; i++) {
			uint64_t x = splitmix64();

			len[i] = x % 4 ? (size_t)(x >> 8) % 58
				       : 54 + (size_t)(x >> 8) % 10;
			data[i] = buf[i] + (x >> 40) % 4;
			fill(buf[i] + (x >> 40) % 4, len[i]);
		}
		same = h && anon_hmac_many(h, count, data, len, out) == 0;
		for (size_t i = 0; same && i < count; i++)
			same = HMAC(EVP_sha256(), key, sizeof(key), data[i],
				    len[i], want, &n) &&
			       memcmp(out[i], want, sizeof(want)) == 0;
		anon_hmac_free(h);
		if (!same) {
			printf("# round %u of %zu values: differs\n", r,
			       count);
			return false;
		}
	}
	return true;
}

static void hex(const unsigned char *b, char out[65])
{
	for (size_t i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

int main(void)
{
	unsigned char key[ANON_KEY_LEN], out[32], want[32];
	char msg[301], got[65];
	struct anon_hmac *h;
	unsigned n = 0;
	bool same = true;

	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)i;
	memset(msg, 'x', sizeof(msg));
	h = anon_hmac_new(key);
	ok(h != NULL, "anon_hmac_new");
	if (!h)
		return done();
	for (size_t v = 0; v < sizeof(vectors) / sizeof(vectors[0]); v++) {
		const char *data = vectors[v].len == 7 ? "a@x.org" : msg;
		char name[64];

		is_int(anon_hmac(h, data, vectors[v].len, out), 0,
		       "anon_hmac runs");
		hex(out, got);
		snprintf(name, sizeof(name), "%zu bytes: Python's hmac",
			 vectors[v].len);
		is_str(got, vectors[v].hex, name);
	}
	for (size_t len = 0; len <= 300; len++) {
		for (size_t i = 0; i < len; i++)
			msg[i] = (char)(len * 31 + i * 7);
		if (anon_hmac(h, msg, len, out) < 0 ||
		    !HMAC(EVP_sha256(), key, sizeof(key),
			  (const unsigned char *)msg, len, want, &n) ||
		    memcmp(out, want, sizeof(out)) != 0)
			same = false;
	}
	ok(same, "lengths 0 to 300: OpenSSL's HMAC()");
	anon_hmac_free(h);
	h = anon_hmac_new_portable(key);
	ok(h != NULL, "anon_hmac_new_portable");
	same = h != NULL;
	for (size_t len = 0; h && len <= 300; len++) {
		for (size_t i = 0; i < len; i++)
			msg[i] = (char)(len * 31 + i * 7);
		if (anon_hmac(h, msg, len, out) < 0 ||
		    !HMAC(EVP_sha256(), key, sizeof(key),
			  (const unsigned char *)msg, len, want, &n) ||
		    memcmp(out, want, sizeof(out)) != 0)
			same = false;
	}
	ok(same, "libcrypto's path forced, lengths 0 to 300: HMAC()");
	anon_hmac_free(h);
	/* 10,000 keys: 1,010,000 values, each through both paths */
	ok(random_same(10000),
	   "random keys and values of 0 to 100 bytes: HMAC(), both paths");
	ok(many_same(20000),
	   "anon_hmac_many, 1 to 17 values of 0 to 63 bytes: HMAC()");
	anon_hmac_free(NULL);
	failalloc_arm(1);
	ok(anon_hmac_new(key) == NULL && failalloc_fired(),
	   "out of memory: NULL");
	failalloc_arm(1);
	ok(anon_hmac_new_portable(key) == NULL && failalloc_fired(),
	   "portable, out of memory: NULL");
	failalloc_arm(0);
	return done();
}
