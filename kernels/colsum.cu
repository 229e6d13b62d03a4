/* colsum.cu - db[c] += sum over r < rows of dy[r, c] (bias gradients: dy is [rows, cols] with
 * row stride ldy, db is [cols]).
 *
 * Deterministic without atomics: a block owns 32 adjacent columns; its 16 row lanes
 * (threadIdx.y) each sum rows y, y+16, y+32, ... of those columns (one coalesced 128-byte read
 * per warp and row), then lane 0 adds the 16 partials in lane order. The order depends only
 * on rows, so repeated calls give the same bits; it differs from the CPU's plain row order by
 * rounding only. */
#include "common.cuh"
#include "launchers.cuh"

#define COLSUM_COLS 32
#define COLSUM_LANES 16

static __global__ void colsum_kernel(float *__restrict__ db, const float *__restrict__ dy, int rows, int cols,
                                     int ldy)
{
    __shared__ float part[COLSUM_LANES][COLSUM_COLS + 1];
    const int c = blockIdx.x * COLSUM_COLS + threadIdx.x;
    float s = 0.0f;
    if (c < cols) {
        int r = threadIdx.y;
        /* Four independent loads in flight per thread; the adds stay in row order per lane. */
        for (; r + 3 * COLSUM_LANES < rows; r += 4 * COLSUM_LANES) {
            float a0 = dy[(size_t)r * ldy + c];
            float a1 = dy[(size_t)(r + COLSUM_LANES) * ldy + c];
            float a2 = dy[(size_t)(r + 2 * COLSUM_LANES) * ldy + c];
            float a3 = dy[(size_t)(r + 3 * COLSUM_LANES) * ldy + c];
            s += a0;
            s += a1;
            s += a2;
            s += a3;
        }
        for (; r < rows; r += COLSUM_LANES)
            s += dy[(size_t)r * ldy + c];
    }
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        float t = 0.0f;
        for (int l = 0; l < COLSUM_LANES; l++)
            t += part[l][threadIdx.x];
        db[c] += t;
    }
}

extern "C" cudaError_t s2s_k_colsum(float *db, const float *dy, int rows, int cols, int ldy, cudaStream_t st)
{
    if (rows <= 0 || cols <= 0)
        return cudaSuccess;
    dim3 block(COLSUM_COLS, COLSUM_LANES);
    colsum_kernel<<<(cols + COLSUM_COLS - 1) / COLSUM_COLS, block, 0, st>>>(db, dy, rows, cols, ldy);
    return cudaGetLastError();
}
