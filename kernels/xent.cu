/* xent.cu - fused log-softmax + cross-entropy with label smoothing over logits [N, V] and
 * targets tgt [N]. Row r with target y (not pad_id, in [0, V)):
 *   lse = log sum_c exp(x_c),  row_loss[r] = (1 - eps)(lse - x_y) + eps (lse - mean_c x_c)
 *   and, when grad_scale != 0, x_c <- grad_scale (exp(x_c - lse) - eps/V - (1 - eps)[c = y])
 * written in place over the logits, so no second [N, V] buffer exists. Pad (or out-of-range)
 * targets give loss 0 and a zero gradient row, as on the CPU.
 *
 * One block per row: one read of the row gives max and sum of exp together (online softmax)
 * plus the sum of x for the smoothing term; a second read writes the gradient. Two reads and
 * one write of N*V floats is the minimum for an in-place gradient. */
#include "common.cuh"
#include "launchers.cuh"

static __global__ void xent_kernel(float *__restrict__ logits, const int32_t *__restrict__ tgt, int V, int pad_id,
                                   float eps, float grad_scale, float *__restrict__ row_loss)
{
    __shared__ s2s_smstat red[32];
    __shared__ float redf[32];
    const int r = blockIdx.x;
    float *x = logits + (size_t)r * V;
    const int y = tgt[r];
    if (y == pad_id || y < 0 || y >= V) {
        if (threadIdx.x == 0)
            row_loss[r] = 0.0f;
        if (grad_scale != 0.0f)
            for (int c = threadIdx.x; c < V; c += blockDim.x)
                x[c] = 0.0f;
        return;
    }
    /* Read x_y before the reductions' barriers: after them other threads overwrite it. */
    const float xy = threadIdx.x == 0 ? x[y] : 0.0f;
    s2s_smstat st = {-INFINITY, 0.0f};
    float sx = 0.0f;
    for (int c = threadIdx.x; c < V; c += blockDim.x) {
        float v = x[c];
        st = s2s_smstat_add(st, v);
        sx += v;
    }
    st = s2s_block_smstat(st, red);
    sx = s2s_block_sum(sx, redf);
    const float lse = st.m + logf(st.s);
    if (threadIdx.x == 0)
        row_loss[r] = (1.0f - eps) * (lse - xy) + eps * (lse - sx / (float)V);
    if (grad_scale != 0.0f) {
        const float u = eps / (float)V;
        for (int c = threadIdx.x; c < V; c += blockDim.x)
            x[c] = grad_scale * (expf(x[c] - lse) - u - (c == y ? 1.0f - eps : 0.0f));
    }
}

extern "C" cudaError_t s2s_k_xent(float *logits, const int32_t *tgt, int N, int V, int pad_id, float eps,
                                  float grad_scale, float *row_loss, cudaStream_t st)
{
    if (N <= 0 || V <= 0)
        return cudaSuccess;
    /* Wide rows (word vocabularies, V ~ 32k) get more threads per row; N blocks keep the
     * GPU busy either way. */
    const int threads = V >= 8192 ? 512 : (V >= 1024 ? 256 : 128);
    xent_kernel<<<N, threads, 0, st>>>(logits, tgt, V, pad_id, eps, grad_scale, row_loss);
    return cudaGetLastError();
}
