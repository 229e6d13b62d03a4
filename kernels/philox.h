/* philox.h - Philox 4x32-10 counter-based generator (Salmon et al., SC'11), shared by the CPU
 * and the GPU so that dropout masks are identical on both.
 *
 * Element e of a stream draws from counter (e / 4, 0, stream_lo, stream_hi) with key
 * (seed_lo, seed_hi) and takes word e % 4. The stream encodes the training step and the site
 * (which dropout in the model), so no state is carried between calls. */
#ifndef S2S_PHILOX_H
#define S2S_PHILOX_H

#include "s2s_hd.h"
#include <stdint.h>

typedef struct s2s_philox4 { uint32_t v[4]; } s2s_philox4;

S2S_HD uint32_t s2s_mulhilo32(uint32_t a, uint32_t b, uint32_t *hi)
{
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

S2S_HD s2s_philox4 s2s_philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1)
{
    s2s_philox4 r;
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = s2s_mulhilo32(0xD2511F53u, c0, &hi0);
        uint32_t lo1 = s2s_mulhilo32(0xCD9E8D57u, c2, &hi1);
        uint32_t n0 = hi1 ^ c1 ^ k0;
        uint32_t n1 = lo1;
        uint32_t n2 = hi0 ^ c3 ^ k1;
        uint32_t n3 = lo0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    r.v[0] = c0; r.v[1] = c1; r.v[2] = c2; r.v[3] = c3;
    return r;
}

/* Uniform float in [0, 1) from 24 high bits. */
S2S_HD float s2s_u32_to_unit(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

/* The four words of counter block q of (seed, stream): the draws of elements 4q .. 4q+3. */
S2S_HD s2s_philox4 s2s_philox_block(uint64_t seed, uint64_t stream, uint64_t q)
{
    return s2s_philox4x32_10((uint32_t)q, (uint32_t)(q >> 32), (uint32_t)stream, (uint32_t)(stream >> 32),
                             (uint32_t)seed, (uint32_t)(seed >> 32));
}

/* The uniform draw for element e of (seed, stream). */
S2S_HD float s2s_philox_uniform(uint64_t seed, uint64_t stream, uint64_t e)
{
    return s2s_u32_to_unit(s2s_philox_block(seed, stream, e >> 2).v[e & 3]);
}

/* Where element e of a tensor made of groups of `rows` rows of `width` values ([T][B][W])
 * sits when those rows are rows row0 .. row0+rows-1 of groups of rows_global rows: a shard
 * of a batch then draws the masks the whole batch draws (data-parallel training). */
S2S_HD uint64_t s2s_drop_index(uint64_t e, int width, int rows, int rows_global, int row0)
{
    uint64_t r = e / (uint64_t)width, c = e % (uint64_t)width;
    uint64_t g = r / (uint64_t)rows, i = r % (uint64_t)rows;
    return (g * (uint64_t)rows_global + (uint64_t)row0 + i) * (uint64_t)width + c;
}

/* Dropout scale of element e: 0 with probability p, else 1/(1-p). */
S2S_HD float s2s_dropout_scale(uint64_t seed, uint64_t stream, uint64_t e, float p)
{
    return s2s_philox_uniform(seed, stream, e) < p ? 0.0f : 1.0f / (1.0f - p);
}

#endif
