/* SPDX-License-Identifier: MIT */
/* The per-owner anonymisation key of anonkey.h. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "config.h"
#include "anonkey.h"
#include "fs.h"

#ifdef HAVE_SHA_NI
#include <immintrin.h> /* after config.h, which says whether it exists */
#endif

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
	uint32_t ni_inner[8]; /* inner as ABEF, CDGH (anon_ni_rounds), if ni */
	uint32_t ni_outer[8]; /* outer as ABEF, CDGH, if ni */
	bool ni; /* values of < 56 bytes take anon_ni_hmac */
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

#ifdef HAVE_SHA_NI
/*
 * Our own SHA-256, for the one case the anonymize step meets 15 million
 * times: a value of fewer than 56 bytes under a key's precomputed states,
 * which is exactly two compressions (the inner hash's last block holds
 * the value and its padding, the outer's the inner digest and its).
 * anon_sha above adds to the compressions the copies of two 112-byte
 * contexts, SHA256_Update's buffering and SHA256_Final's padding, each
 * behind a call into libcrypto; here the inner digest never leaves the
 * registers, and the key's states are kept in the instructions' order.
 *
 * Measured with tests/bench/prep/anon_bench.c, one thread (taskset),
 * median of 7 runs of 1,000,000 e-mail-like values of 12 to 40 bytes,
 * 3 runs of each build alternated (OpenSSL 3.0, GCC 12 -O2, a 2-core AMD
 * EPYC VM at 2.6 GHz with SHA-NI): anon_sha's path 102 ns a value (101.9
 * to 102.6), this one 85 ns (84.8 to 84.9), the same at 7, 26 and 55
 * bytes.  A first version that kept each block's h0..h7 in memory as
 * libraries do, and wrote the inner digest out as bytes for the outer
 * block, took 134 ns: slower than libcrypto.  85 ns is close to what the
 * 64 dependent sha256rnds2 of two compressions take on that CPU, so one
 * value at a time cannot go much lower.  Values of 56 bytes or more, and
 * CPUs without the SHA extensions, keep anon_sha.
 */

/* SHA-256's initial h0..h7 and round constants (FIPS 180-4, 5.3.3, 4.2.2) */
static const uint32_t anon_ni_iv[8] = {
	0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

static const _Alignas(16) uint32_t anon_ni_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
	0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
	0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
	0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
	0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
	0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
	0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/*
 * SHA-256's 64 rounds on *abef, *cdgh (the state as the instructions keep
 * it: words a, b, e, f and c, d, g, h, from the high lane down) for the
 * block whose message words 4g..4g+3 are w[g], g < 4, lowest word first.
 */
__attribute__((target("sha,sse4.1"), always_inline)) static inline void
anon_ni_rounds(__m128i *abef, __m128i *cdgh, __m128i w0, __m128i w1,
	       __m128i w2, __m128i w3)
{
	__m128i w[4] = { w0, w1, w2, w3 }; /* words 4g..4g+3 in w[g % 4] */
	__m128i a = *abef, c = *cdgh;

#pragma GCC unroll 16
	for (int g = 0; g < 16; g++) {
		const __m128i *k = (const __m128i *)&anon_ni_k[4 * g];
		__m128i m;

		if (g >= 4) {
			/* w[t] from w[t-16], w[t-15], w[t-7], w[t-2] */
			__m128i w7 = _mm_alignr_epi8(w[(g + 3) & 3],
						     w[(g + 2) & 3], 4);

			m = _mm_sha256msg1_epu32(w[g & 3], w[(g + 1) & 3]);
			m = _mm_add_epi32(m, w7);
			w[g & 3] = _mm_sha256msg2_epu32(m, w[(g + 3) & 3]);
		}
		m = _mm_add_epi32(w[g & 3], _mm_load_si128(k));
		c = _mm_sha256rnds2_epu32(c, a, m);
		a = _mm_sha256rnds2_epu32(a, c, _mm_shuffle_epi32(m, 0x0e));
	}
	*abef = _mm_add_epi32(*abef, a);
	*cdgh = _mm_add_epi32(*cdgh, c);
}

/*
 * anon_ni_rounds for two blocks of two messages at once.  One block's
 * rounds are a chain of 32 sha256rnds2, each waiting on the last (about
 * 4 cycles of latency where the unit could start one every cycle or
 * two): two chains side by side keep it busy, so a pair of short values
 * costs about what one did.
 */
__attribute__((target("sha,sse4.1"), always_inline)) static inline void
anon_ni_rounds2(__m128i *abef, __m128i *cdgh, __m128i w[2][4])
{
	__m128i a[2] = { abef[0], abef[1] }, c[2] = { cdgh[0], cdgh[1] };

#pragma GCC unroll 16
	for (int g = 0; g < 16; g++) {
		const __m128i k = _mm_load_si128(
			(const __m128i *)&anon_ni_k[4 * g]);

#pragma GCC unroll 2
		for (int l = 0; l < 2; l++) {
			__m128i *wl = w[l];
			__m128i m;

			if (g >= 4) {
				__m128i w7 = _mm_alignr_epi8(
					wl[(g + 3) & 3], wl[(g + 2) & 3], 4);

				m = _mm_sha256msg1_epu32(wl[g & 3],
							 wl[(g + 1) & 3]);
				m = _mm_add_epi32(m, w7);
				wl[g & 3] = _mm_sha256msg2_epu32(
					m, wl[(g + 3) & 3]);
			}
			m = _mm_add_epi32(wl[g & 3], k);
			c[l] = _mm_sha256rnds2_epu32(c[l], a[l], m);
			a[l] = _mm_sha256rnds2_epu32(
				a[l], c[l], _mm_shuffle_epi32(m, 0x0e));
		}
	}
	for (int l = 0; l < 2; l++) {
		abef[l] = _mm_add_epi32(abef[l], a[l]);
		cdgh[l] = _mm_add_epi32(cdgh[l], c[l]);
	}
}

/* the words h0..h3 (in *lo) and h4..h7 of a state in ABEF, CDGH order */
__attribute__((target("sha,sse4.1"), always_inline)) static inline void
anon_ni_words(__m128i abef, __m128i cdgh, __m128i *lo, __m128i *hi)
{
	__m128i t = _mm_shuffle_epi32(abef, 0x1b);

	cdgh = _mm_shuffle_epi32(cdgh, 0xb1);
	*lo = _mm_blend_epi16(t, cdgh, 0xf0);
	*hi = _mm_alignr_epi8(cdgh, t, 8);
}

/* the ABEF, CDGH state of SHA-256's start and one block, 64 bytes, more */
__attribute__((target("sha,sse4.1"))) static void
anon_ni_state(const unsigned char block[64], uint32_t st[8])
{
	const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL,
					     0x0405060700010203ULL);
	__m128i t = _mm_loadu_si128((const __m128i *)&anon_ni_iv[0]);
	__m128i cdgh = _mm_loadu_si128((const __m128i *)&anon_ni_iv[4]);
	__m128i abef;
	__m128i w[4];

	t = _mm_shuffle_epi32(t, 0xb1);
	cdgh = _mm_shuffle_epi32(cdgh, 0x1b);
	abef = _mm_alignr_epi8(t, cdgh, 8);
	cdgh = _mm_blend_epi16(cdgh, t, 0xf0);
	for (int g = 0; g < 4; g++) {
		t = _mm_loadu_si128((const __m128i *)(block + 16 * g));
		w[g] = _mm_shuffle_epi8(t, bswap);
	}
	anon_ni_rounds(&abef, &cdgh, w[0], w[1], w[2], w[3]);
	_mm_storeu_si128((__m128i *)&st[0], abef);
	_mm_storeu_si128((__m128i *)&st[4], cdgh);
}

/*
 * The inner hash's last block of a value of len < 56 bytes, as message
 * words: the value, 0x80, zeros, and its length in bits after the ipad
 * block.
 */
__attribute__((target("sha,sse4.1"), always_inline)) static inline void
anon_ni_last_block(const void *data, size_t len, __m128i w[4])
{
	const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL,
					     0x0405060700010203ULL);
	unsigned char block[64] = { 0 };

	if (len)
		memcpy(block, data, len); /* data may be NULL when len is 0 */
	block[len] = 0x80;
	for (int g = 0; g < 4; g++)
		w[g] = _mm_shuffle_epi8(
			_mm_loadu_si128((const __m128i *)(block + 16 * g)),
			bswap);
	w[3] = _mm_insert_epi32(w[3], (int)((64 + len) * 8), 3);
}

/*
 * out: HMAC-SHA-256 of data, len < 56, from h's ni states.  The inner
 * digest goes to the outer block as words, in registers: SHA-256 reads
 * its message big-endian, and the digest is h0..h7 big-endian.
 */
__attribute__((target("sha,sse4.1"))) static void
anon_ni_hmac(const struct anon_hmac *h, const void *data, size_t len,
	     unsigned char out[32])
{
	const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL,
					     0x0405060700010203ULL);
	__m128i abef, cdgh, lo, hi, w[4];

	anon_ni_last_block(data, len, w);
	abef = _mm_loadu_si128((const __m128i *)&h->ni_inner[0]);
	cdgh = _mm_loadu_si128((const __m128i *)&h->ni_inner[4]);
	anon_ni_rounds(&abef, &cdgh, w[0], w[1], w[2], w[3]);
	anon_ni_words(abef, cdgh, &lo, &hi);

	/* the outer's: the inner digest, 0x80, zeros, 96 bytes in bits */
	abef = _mm_loadu_si128((const __m128i *)&h->ni_outer[0]);
	cdgh = _mm_loadu_si128((const __m128i *)&h->ni_outer[4]);
	anon_ni_rounds(&abef, &cdgh, lo, hi,
		       _mm_setr_epi32((int)0x80000000, 0, 0, 0),
		       _mm_setr_epi32(0, 0, 0, (64 + 32) * 8));
	anon_ni_words(abef, cdgh, &lo, &hi);
	_mm_storeu_si128((__m128i *)out, _mm_shuffle_epi8(lo, bswap));
	_mm_storeu_si128((__m128i *)(out + 16), _mm_shuffle_epi8(hi, bswap));
}

/* anon_ni_hmac of two values at once (anon_ni_rounds2): both < 56. */
__attribute__((target("sha,sse4.1"))) static void
anon_ni_hmac2(const struct anon_hmac *h, const void *const data[2],
	      const size_t len[2], unsigned char *out[2])
{
	const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL,
					     0x0405060700010203ULL);
	__m128i abef[2], cdgh[2], lo[2], hi[2], w[2][4];

	for (int l = 0; l < 2; l++) {
		anon_ni_last_block(data[l], len[l], w[l]);
		abef[l] = _mm_loadu_si128((const __m128i *)&h->ni_inner[0]);
		cdgh[l] = _mm_loadu_si128((const __m128i *)&h->ni_inner[4]);
	}
	anon_ni_rounds2(abef, cdgh, w);
	for (int l = 0; l < 2; l++) {
		anon_ni_words(abef[l], cdgh[l], &lo[l], &hi[l]);
		w[l][0] = lo[l];
		w[l][1] = hi[l];
		w[l][2] = _mm_setr_epi32((int)0x80000000, 0, 0, 0);
		w[l][3] = _mm_setr_epi32(0, 0, 0, (64 + 32) * 8);
		abef[l] = _mm_loadu_si128((const __m128i *)&h->ni_outer[0]);
		cdgh[l] = _mm_loadu_si128((const __m128i *)&h->ni_outer[4]);
	}
	anon_ni_rounds2(abef, cdgh, w);
	for (int l = 0; l < 2; l++) {
		anon_ni_words(abef[l], cdgh[l], &lo[l], &hi[l]);
		_mm_storeu_si128((__m128i *)out[l],
				 _mm_shuffle_epi8(lo[l], bswap));
		_mm_storeu_si128((__m128i *)(out[l] + 16),
				 _mm_shuffle_epi8(hi[l], bswap));
	}
}

/* the key's ni states, the pads' one block each from SHA-256's start */
static void anon_ni_init(struct anon_hmac *h, const unsigned char ipad[64],
			 const unsigned char opad[64])
{
	anon_ni_state(ipad, h->ni_inner);
	anon_ni_state(opad, h->ni_outer);
}

static bool anon_ni_usable(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("sha") &&
	       __builtin_cpu_supports("sse4.1");
}
#endif

static struct anon_hmac *anon_hmac_make(const unsigned char key[ANON_KEY_LEN],
					bool ni)
{
	struct anon_hmac *h = malloc(sizeof(*h));
	unsigned char ipad[64];
	unsigned char opad[64];
	int rc;

	if (!h)
		return NULL;
	/* a 32-byte key is shorter than SHA-256's block: padded, not hashed */
	memset(ipad, 0x36, sizeof(ipad));
	memset(opad, 0x5c, sizeof(opad));
	for (size_t i = 0; i < ANON_KEY_LEN; i++) {
		ipad[i] ^= key[i];
		opad[i] ^= key[i];
	}
	rc = anon_sha(&h->inner, NULL, ipad, sizeof(ipad), NULL);
	if (rc == 0)
		rc = anon_sha(&h->outer, NULL, opad, sizeof(opad), NULL);
	h->ni = false;
#ifdef HAVE_SHA_NI
	if (rc == 0 && ni && anon_ni_usable()) {
		anon_ni_init(h, ipad, opad);
		h->ni = true;
	}
#else
	(void)ni;
#endif
	explicit_bzero(ipad, sizeof(ipad));
	explicit_bzero(opad, sizeof(opad));
	if (rc < 0) {
		anon_hmac_free(h);
		return NULL;
	}
	return h;
}

struct anon_hmac *anon_hmac_new(const unsigned char key[ANON_KEY_LEN])
{
	return anon_hmac_make(key, true);
}

struct anon_hmac *anon_hmac_new_portable(const unsigned char key[ANON_KEY_LEN])
{
	return anon_hmac_make(key, false);
}

int anon_hmac(const struct anon_hmac *h, const void *data, size_t len,
	      unsigned char out[32])
{
	SHA256_CTX st;
	unsigned char in[32];
	int rc;

#ifdef HAVE_SHA_NI
	if (h->ni && len < 56) {
		anon_ni_hmac(h, data, len, out);
		return 0;
	}
#endif
	rc = anon_sha(&st, &h->inner, data, len, in);
	if (rc == 0)
		rc = anon_sha(&st, &h->outer, in, sizeof(in), out);
	return rc;
}

int anon_hmac_many(const struct anon_hmac *h, size_t n,
		   const void *const *data, const size_t *len,
		   unsigned char (*out)[32])
{
	size_t i = 0;
	int rc = 0;

	while (i < n && rc == 0) {
#ifdef HAVE_SHA_NI
		if (h->ni && i + 1 < n && len[i] < 56 && len[i + 1] < 56) {
			unsigned char *o[2] = { out[i], out[i + 1] };

			anon_ni_hmac2(h, data + i, len + i, o);
			i += 2;
			continue;
		}
#endif
		rc = anon_hmac(h, data[i], len[i], out[i]);
		i++;
	}
	return rc;
}

void anon_hmac_free(struct anon_hmac *h)
{
	if (!h)
		return;
	explicit_bzero(h, sizeof(*h));
	free(h);
}
