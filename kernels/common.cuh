/* common.cuh - what every kernel file shares: launch shapes and deterministic block
 * reductions. Included by the kernel files (.cu) only (nvcc); nothing here is exported.
 *
 * Determinism: every reduction below combines values in an order fixed by blockDim and the
 * thread index alone (warp butterflies, then warp 0 over the per-warp results), so the same
 * launch shape on the same inputs gives the same bits. Launch shapes depend only on the problem
 * size, never on the device, so results are also independent of the SM count. */
#ifndef S2S_KERNELS_COMMON_CUH
#define S2S_KERNELS_COMMON_CUH

#include <limits.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* Threads per block of the 1-D pointwise kernels. */
#define S2S_K_THREADS 256
/* Cap on the grid of grid-stride kernels: 4096 x 256 threads is several waves on any GPU we
 * build for, beyond which more blocks only add scheduling cost. */
#define S2S_K_MAX_BLOCKS 4096u

/* Blocks for a grid-stride loop over n elements, at least 1 (n = 0 is handled by the
 * launchers before they get here). */
static inline unsigned s2s_k_grid(size_t n, unsigned threads)
{
    size_t b = (n + threads - 1) / threads;
    if (b > S2S_K_MAX_BLOCKS)
        b = S2S_K_MAX_BLOCKS;
    return b ? (unsigned)b : 1u;
}

/* Block shape for a 2-D [rows, cols] kernel: x spans columns (coalesced), y spans rows, about
 * 256 threads in all, so that narrow matrices (cols = 37) do not leave most lanes idle. */
static inline dim3 s2s_k_block2d(int cols)
{
    unsigned x = cols >= 256 ? 256u : (unsigned)((cols + 31) / 32 * 32);
    if (x == 0)
        x = 32;
    return dim3(x, 256u / x, 1);
}

static inline dim3 s2s_k_grid2d(int rows, int cols, dim3 block)
{
    unsigned gx = (unsigned)((cols + (int)block.x - 1) / (int)block.x);
    unsigned gy = (unsigned)((rows + (int)block.y - 1) / (int)block.y);
    if (gx > 1024u)
        gx = 1024u;
    if (gy > 65535u) /* grid.y limit; the kernels stride over rows */
        gy = 65535u;
    if (gx * gy > 8u * S2S_K_MAX_BLOCKS)
        gy = (8u * S2S_K_MAX_BLOCKS + gx - 1) / gx;
    return dim3(gx ? gx : 1u, gy ? gy : 1u, 1);
}

/* ---- warp and block reductions ---------------------------------------------------- */

template <typename T> static __device__ __forceinline__ T s2s_warp_sum(T v)
{
    /* Butterfly: lanes i and i^o add the same two values, so every lane ends with the same
     * bits. */
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

static __device__ __forceinline__ float s2s_warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum over the block, returned to every thread. smem: 32 elements of T. blockDim.x must be a
 * multiple of 32 (all launchers use 128..1024). */
template <typename T> static __device__ __forceinline__ T s2s_block_sum(T v, T *smem)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = s2s_warp_sum(v);
    __syncthreads(); /* smem may still be read by a previous call */
    if (lane == 0)
        smem[warp] = v;
    __syncthreads();
    if (warp == 0) {
        T w = lane < nwarps ? smem[lane] : T(0);
        w = s2s_warp_sum(w);
        if (lane == 0)
            smem[0] = w;
    }
    __syncthreads();
    return smem[0];
}

static __device__ __forceinline__ float s2s_block_max(float v, float *smem)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = s2s_warp_max(v);
    __syncthreads();
    if (lane == 0)
        smem[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float w = lane < nwarps ? smem[lane] : -INFINITY;
        w = s2s_warp_max(w);
        if (lane == 0)
            smem[0] = w;
    }
    __syncthreads();
    return smem[0];
}

/* ---- softmax statistics ----------------------------------------------------------- */

/* Running (max, sum of exp(x - max)) of a row, as in online softmax (Milakov & Gimelshein,
 * 2018): one read of the row gives both, where max-then-sum needs two. */
struct s2s_smstat {
    float m, s;
};

static __device__ __forceinline__ s2s_smstat s2s_smstat_add(s2s_smstat a, float x)
{
    if (x > a.m) {
        a.s = a.s * expf(a.m - x) + 1.0f; /* a.m = -inf, a.s = 0 gives 0 + 1 */
        a.m = x;
    } else if (x != -INFINITY) {
        a.s += expf(x - a.m);
    }
    return a;
}

static __device__ __forceinline__ s2s_smstat s2s_smstat_merge(s2s_smstat a, s2s_smstat b)
{
    s2s_smstat r;
    r.m = fmaxf(a.m, b.m);
    /* An empty side has s = 0 and m = -inf; skip it rather than compute exp(-inf - -inf). */
    r.s = (a.s != 0.0f ? a.s * expf(a.m - r.m) : 0.0f) + (b.s != 0.0f ? b.s * expf(b.m - r.m) : 0.0f);
    return r;
}

/* Block-wide merge, returned to every thread. smem: 32 elements. */
static __device__ __forceinline__ s2s_smstat s2s_block_smstat(s2s_smstat v, s2s_smstat *smem)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    for (int o = 16; o > 0; o >>= 1) {
        s2s_smstat w;
        w.m = __shfl_xor_sync(0xffffffffu, v.m, o);
        w.s = __shfl_xor_sync(0xffffffffu, v.s, o);
        /* Merge in lane order so that lanes i and i^o compute the same bits. */
        v = (lane & o) ? s2s_smstat_merge(w, v) : s2s_smstat_merge(v, w);
    }
    __syncthreads();
    if (lane == 0)
        smem[warp] = v;
    __syncthreads();
    if (warp == 0) {
        s2s_smstat w = {-INFINITY, 0.0f};
        if (lane < nwarps)
            w = smem[lane];
        for (int o = 16; o > 0; o >>= 1) {
            s2s_smstat u;
            u.m = __shfl_xor_sync(0xffffffffu, w.m, o);
            u.s = __shfl_xor_sync(0xffffffffu, w.s, o);
            w = (lane & o) ? s2s_smstat_merge(u, w) : s2s_smstat_merge(w, u);
        }
        if (lane == 0)
            smem[0] = w;
    }
    __syncthreads();
    return smem[0];
}

/* ---- two-pass double reductions (sum, sumsq) ------------------------------------- */

/* Pass 2: one block sums the np <= 1024 pass-1 partials in a fixed order: thread i adds
 * partials i, i + blockDim, ... in order, then the block tree. */
static __device__ __forceinline__ void s2s_reduce_final(const double *__restrict__ partials, int np,
                                                        double *__restrict__ out)
{
    __shared__ double smem[32];
    double s = 0.0;
    for (int i = threadIdx.x; i < np; i += blockDim.x)
        s += partials[i];
    s = s2s_block_sum(s, smem);
    if (threadIdx.x == 0)
        *out = s;
}

/* Pass-1 grid: about 8 elements per thread before the block tree, at most 1024 blocks. */
static inline unsigned s2s_reduce_blocks(size_t n, unsigned threads, unsigned max_blocks)
{
    size_t b = (n + 8 * (size_t)threads - 1) / (8 * (size_t)threads);
    if (b > max_blocks)
        b = max_blocks;
    return b ? (unsigned)b : 1u;
}

/* ---- warp helpers shared by the attention kernels ---------------------------------- */

/* This lane's part of the dot product of a and b [H] (a warp's 32 lanes stride over H; with
 * V4, H % 4 == 0 and both 16-byte aligned, as float4). Sum the lanes with s2s_warp_sum. */
template <bool V4> static __device__ __forceinline__ float s2s_lane_dot(const float *a, const float *b, int H, int lane)
{
    float d = 0.0f;
    if constexpr (V4) {
        const float4 *a4 = (const float4 *)a, *b4 = (const float4 *)b;
        for (int j = lane; j < H / 4; j += 32) {
            const float4 x = a4[j], y = b4[j];
            d += x.x * y.x;
            d += x.y * y.y;
            d += x.z * y.z;
            d += x.w * y.w;
        }
    } else {
        for (int j = lane; j < H; j += 32)
            d += a[j] * b[j];
    }
    return d;
}

/* ---- (value, index) arg-max reductions (argmax, topk) --------------------------------- */

/* A candidate: value and column; INT_MAX: none yet. */
struct s2s_best {
    float v;
    int i; /* INT_MAX: none yet */
};

/* a wins over b: b is empty, or a is larger, or equal with a smaller index. */
static __device__ __forceinline__ s2s_best s2s_better(s2s_best a, s2s_best b)
{
    if (a.i == INT_MAX)
        return b;
    if (b.i == INT_MAX)
        return a;
    return (a.v > b.v || (a.v == b.v && a.i < b.i)) ? a : b;
}

static __device__ __forceinline__ s2s_best s2s_warp_best(s2s_best a)
{
    for (int o = 16; o > 0; o >>= 1) {
        s2s_best b;
        b.v = __shfl_xor_sync(0xffffffffu, a.v, o);
        b.i = __shfl_xor_sync(0xffffffffu, a.i, o);
        a = s2s_better(a, b);
    }
    return a;
}

/* The best candidate of the whole block (blockDim a multiple of 32), returned to every thread;
 * red: __shared__ s2s_best[33], free again when this returns. */
static __device__ __forceinline__ s2s_best s2s_block_best(s2s_best a, s2s_best *red)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    a = s2s_warp_best(a);
    if (lane == 0)
        red[warp] = a;
    __syncthreads();
    if (warp == 0) {
        s2s_best w = {-INFINITY, INT_MAX};
        if (lane < nwarps)
            w = red[lane];
        w = s2s_warp_best(w);
        if (lane == 0)
            red[32] = w;
    }
    __syncthreads();
    s2s_best r = red[32];
    __syncthreads();
    return r;
}


#endif
