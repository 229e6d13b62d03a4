/* sha256.h - SHA-256 (FIPS 180-4) for provenance hashes: corpora now, model files later.
 * Streaming: init, any number of updates, final. Internal to the library (not exported). */
#ifndef S2S_SHA256_H
#define S2S_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct s2s_sha256 {
    uint32_t h[8];      /* chaining state */
    uint64_t bytes;     /* message length so far */
    uint8_t block[64];  /* pending input, block_len bytes */
    size_t block_len;
} s2s_sha256;

void s2s_sha256_init(s2s_sha256 *s);
void s2s_sha256_update(s2s_sha256 *s, const void *data, size_t n);
/* Pads, writes the 32-byte digest and leaves s unusable until the next init. */
void s2s_sha256_final(s2s_sha256 *s, uint8_t digest[32]);
/* Lowercase hex of a digest: 64 characters and a NUL. */
void s2s_sha256_hex(const uint8_t digest[32], char hex[65]);

#endif
