/* embed_bwd.cu - dw[v, :] += sum over i with ids[i] = v of dy[i, :] (v != pad_id, v in
 * [0, vocab)), each row summed in increasing i, with no float atomics.
 *
 * Method (n ids, dw [vocab, dim], dy [n, dim] with row stride ldy):
 *  1. keys[i] = ids[i], or vocab for skipped ids (pad, out of range); pos[i] = i.
 *  2. Stable radix sort of (keys, pos) on the low ceil(log2(vocab + 1)) bits (CUB): equal ids
 *     become one run with their positions still increasing.
 *  3. One block per (run start, 128-column slice): each thread adds its column of the run's
 *     dy rows into a register initialised from dw, in increasing i, and stores once.
 * Step 3 performs exactly the CPU's sequence of float additions (dw += dy[i] for increasing
 * i), so the result is bit-identical to the reference, and repeat calls agree bit for bit.
 * Cost: O(n) sort + one read of the used dy rows; unlike one block per vocabulary row it does
 * not scan all ids vocab times. */
#include "common.cuh"
#include "launchers.cuh"
#include <cub/device/device_radix_sort.cuh>

static __global__ void embed_bwd_keys_kernel(const int32_t *__restrict__ ids, int n, int vocab, int pad_id,
                                             uint32_t *__restrict__ keys, int32_t *__restrict__ pos)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        int v = ids[i];
        keys[i] = (v == pad_id || v < 0 || v >= vocab) ? (uint32_t)vocab : (uint32_t)v;
        pos[i] = i;
    }
}

static __global__ void embed_bwd_accum_kernel(float *__restrict__ dw, const float *__restrict__ dy, int ldy,
                                              const uint32_t *__restrict__ keys, const int32_t *__restrict__ pos,
                                              int n, int dim, int vocab)
{
    const int c = blockIdx.y * blockDim.x + threadIdx.x; /* this block's column slice */
    if (c >= dim)
        return; /* no barriers below, so idle lanes may leave */
    for (int k = blockIdx.x; k < n; k += gridDim.x) {
        const uint32_t v = keys[k];
        if (v == (uint32_t)vocab || (k > 0 && keys[k - 1] == v))
            continue; /* skipped id, or not the first of its run */
        int end = k + 1;
        while (end < n && keys[end] == v)
            end++;
        float *row = dw + (size_t)v * dim;
        float acc = row[c];
        int j = k;
        /* Four rows' loads in flight at once; the adds stay in increasing i. */
        for (; j + 4 <= end; j += 4) {
            const float a0 = dy[(size_t)pos[j] * ldy + c], a1 = dy[(size_t)pos[j + 1] * ldy + c];
            const float a2 = dy[(size_t)pos[j + 2] * ldy + c], a3 = dy[(size_t)pos[j + 3] * ldy + c];
            acc += a0;
            acc += a1;
            acc += a2;
            acc += a3;
        }
        for (; j < end; j++)
            acc += dy[(size_t)pos[j] * ldy + c];
        row[c] = acc;
    }
}

/* Bytes of the workspace sections, each rounded to 256 so the next starts aligned. */
static size_t round256(size_t b) { return (b + 255) & ~(size_t)255; }

static int key_bits(int vocab)
{
    int bits = 1;
    while (bits < 32 && ((uint32_t)vocab >> bits) != 0)
        bits++;
    return bits; /* vocab itself (the skip key) fits */
}

extern "C" cudaError_t s2s_k_embed_bwd(float *dw, const float *dy, int ldy, const int32_t *ids, int n, int dim,
                                       int vocab, int pad_id, void *work, size_t *work_bytes, cudaStream_t st)
{
    const int bits = key_bits(vocab);
    const size_t arr = round256((size_t)(n > 0 ? n : 1) * 4);
    size_t sort_bytes = 0;
    cudaError_t e = cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, (const uint32_t *)nullptr,
                                                    (uint32_t *)nullptr, (const int32_t *)nullptr,
                                                    (int32_t *)nullptr, n > 0 ? n : 1, 0, bits, st);
    if (e != cudaSuccess)
        return e;
    const size_t need = 4 * arr + round256(sort_bytes);
    if (!work) {
        *work_bytes = need;
        return cudaSuccess;
    }
    if (n <= 0 || dim <= 0)
        return cudaSuccess;
    if (*work_bytes < need)
        return cudaErrorInvalidValue;
    char *base = (char *)work;
    uint32_t *keys_in = (uint32_t *)base, *keys = (uint32_t *)(base + arr);
    int32_t *pos_in = (int32_t *)(base + 2 * arr), *pos = (int32_t *)(base + 3 * arr);
    void *temp = base + 4 * arr;

    embed_bwd_keys_kernel<<<s2s_k_grid((size_t)n, S2S_K_THREADS), S2S_K_THREADS, 0, st>>>(ids, n, vocab, pad_id,
                                                                                         keys_in, pos_in);
    e = cub::DeviceRadixSort::SortPairs(temp, sort_bytes, keys_in, keys, pos_in, pos, n, 0, bits, st);
    if (e != cudaSuccess)
        return e;
    /* grid.x over run starts, grid.y over 128-column slices of dim: a frequent id (a long run)
     * is then summed by dim / 128 blocks at once rather than one. */
    const unsigned threads = dim >= 128 ? 128u : (unsigned)(dim + 31) / 32 * 32;
    const dim3 grid(n < 65535 ? (unsigned)n : 65535u, (unsigned)(dim + threads - 1) / threads);
    embed_bwd_accum_kernel<<<grid, threads, 0, st>>>(dw, dy, ldy, keys, pos, n, dim, vocab);
    return cudaGetLastError();
}
