/* backend_cuda_cudnn.c - cuDNN's RNN API as the library's recurrent-layer implementation
 * (s2s_context_options.rnn_impl = S2S_RNN_IMPL_CUDNN): the op table's layer_bytes, layer_fwd
 * and layer_bwd (backend.h) for one layer of one or two directions per call.
 *
 * Weights stay in the model's own parameter block (PyTorch layout). Each forward copies them
 * into cuDNN's weight space, whose matrices are the same gate blocks in the same order (LSTM
 * i, f, g, o; GRU r, z, n: the order PyTorch relies on when it hands its parameters to cuDNN),
 * found with cudnnGetRNNWeightParams and checked for size. The backward zeroes cuDNN's
 * gradient space, lets cudnnRNNBackwardWeights_v8 add into it and adds each block into the
 * model's gradients. Sequences are time-major and padded (SEQ_MAJOR_UNPACKED, padding 0), as
 * the fused path keeps them; initial states are zero.
 *
 * Math: fp32 uses FMA-only kernels (CUDNN_FMA_MATH), tf32 allows tensor cores
 * (CUDNN_DEFAULT_MATH); the RNN API has no bfloat16 mode, so bf16 contexts refuse this path.
 * Built with cuDNN only; never runs without a GPU. */
#ifdef S2S_HAVE_CUDNN
#include "backend_cuda.h"
#include "cudnn_describe.h"
#include <stdlib.h>
#include <string.h>

/* Per backend: the handle and a dropout descriptor (the RNN descriptor wants one; dropout 0). */
typedef struct dnn_layers {
    cudnnHandle_t h;
    cudnnDropoutDescriptor_t drop;
    void *drop_states;
} dnn_layers;

/* Descriptors of one call, made and destroyed around it. */
typedef struct dnn_call {
    cudnnRNNDescriptor_t rnn;
    cudnnRNNDataDescriptor_t xd, yd;
    cudnnTensorDescriptor_t hd;
    cudnnTensorDescriptor_t mdesc, bdesc;
    int *lens; /* host [B] */
    size_t wsize, work, reserve;
} dnn_call;

/* Parts of the caller's state block, 256-byte aligned, in this order. */
typedef struct dnn_parts {
    void *w, *dw, *work, *reserve;
    int32_t *lens;
} dnn_parts;

static size_t up256(size_t n) { return (n + 255) & ~(size_t)255; }

static dnn_layers *layers_of(s2s_backend *be) { return s2s_cuda_plugin_state(be); }

static void call_free(dnn_call *c)
{
    if (c->mdesc)
        cudnnDestroyTensorDescriptor(c->mdesc);
    if (c->bdesc)
        cudnnDestroyTensorDescriptor(c->bdesc);
    if (c->hd)
        cudnnDestroyTensorDescriptor(c->hd);
    if (c->xd)
        cudnnDestroyRNNDataDescriptor(c->xd);
    if (c->yd)
        cudnnDestroyRNNDataDescriptor(c->yd);
    if (c->rnn)
        cudnnDestroyRNNDescriptor(c->rnn);
    free(c->lens);
}

static s2s_status call_make(s2s_backend *be, const s2s_rnn_w *w, int dirs, int T, int B, const int32_t *len_host,
                            int train, dnn_call *c)
{
    dnn_layers *d = layers_of(be);
    memset(c, 0, sizeof *c);
    if (w->in < 1 || w->H < 1 || T < 1 || B < 1 || dirs < 1 || dirs > 2)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "cuDNN layer: in %d, H %d, T %d, B %d, dirs %d", w->in, w->H, T, B, dirs);
    c->lens = s2s_host_alloc(sizeof(int) * (size_t)B, "cuDNN sequence lengths");
    if (!c->lens)
        return S2S_ERR_OUT_OF_MEMORY;
    for (int b = 0; b < B; b++) {
        c->lens[b] = len_host ? len_host[b] : T;
        if (c->lens[b] < 1 || c->lens[b] > T)
            return S2S_FAIL(S2S_ERR_INVALID_ARG, "cuDNN layer: row %d has length %d (1..%d)", b, c->lens[b], T);
    }
    DNN_TRY(cudnnSetStream(d->h, (cudaStream_t)s2s_cuda_stream_of(be)));
    s2s_dnn_shape sh = {w->cell, w->in, w->H, 1, dirs, T, B, CUDNN_RNN_ALGO_STANDARD, 1, c->lens};
    S2S_TRY(s2s_dnn_describe(be->precision, d->drop, &sh, &c->rnn, &c->xd, &c->yd, &c->hd));
    DNN_TRY(cudnnCreateTensorDescriptor(&c->mdesc));
    DNN_TRY(cudnnCreateTensorDescriptor(&c->bdesc));
    DNN_TRY(cudnnGetRNNWeightSpaceSize(d->h, c->rnn, &c->wsize));
    DNN_TRY(cudnnGetRNNTempSpaceSizes(d->h, c->rnn, train ? CUDNN_FWD_MODE_TRAINING : CUDNN_FWD_MODE_INFERENCE, c->xd,
                                      &c->work, &c->reserve));
    return S2S_OK;
}

static size_t state_bytes(const dnn_call *c, int B, int train)
{
    return up256(c->wsize) * (train ? 2 : 1) + up256(c->work) + up256(c->reserve) + up256(sizeof(int32_t) * (size_t)B);
}

static dnn_parts parts(const dnn_call *c, void *state, int train)
{
    char *p = state;
    dnn_parts s;
    s.w = p, p += up256(c->wsize);
    s.dw = train ? p : NULL, p += train ? up256(c->wsize) : 0;
    s.work = p, p += up256(c->work);
    s.reserve = p, p += up256(c->reserve);
    s.lens = (int32_t *)p;
    return s;
}

/* Where gate block k of direction dir lives in a weight (or gradient) space, and where it lives
 * in the model: k < G the input matrix and bias, else the recurrent ones. */
static s2s_status block(s2s_backend *be, dnn_call *c, const s2s_rnn_w *w, int dir, int k, void *space,
                        float **lib_m, float **lib_b, size_t *m_numel)
{
    dnn_layers *d = layers_of(be);
    void *m = NULL, *b = NULL;
    DNN_TRY(cudnnGetRNNWeightParams(d->h, c->rnn, dir, c->wsize, space, k, c->mdesc, &m, c->bdesc, &b));
    int G = w->G, cols = k < G ? w->in : w->H;
    cudnnDataType_t dt;
    int nd, dims[3], strides[3];
    DNN_TRY(cudnnGetTensorNdDescriptor(c->mdesc, 3, &dt, &nd, dims, strides));
    size_t numel = 1;
    for (int i = 0; i < nd; i++)
        numel *= (size_t)dims[i];
    if (!m || !b || numel != (size_t)w->H * cols)
        return S2S_FAIL(S2S_ERR_CUDNN, "cuDNN weight block %d of direction %d: %zu elements where %d x %d were expected",
                        k, dir, numel, w->H, cols);
    *lib_m = m;
    *lib_b = b;
    *m_numel = numel;
    return S2S_OK;
}

/* Every gate block of every direction: to_lib copies the model's weights into cuDNN's weight
 * space; else adds cuDNN's gradient space into the model's gradients. */
static s2s_status blocks(s2s_backend *be, dnn_call *c, const s2s_rnn_w *w, int dirs, void *space, int to_lib)
{
    for (int dir = 0; dir < dirs; dir++) {
        const s2s_rnn_w *wd = &w[dir];
        int G = wd->G, H = wd->H;
        for (int k = 0; k < 2 * G; k++) {
            float *lm = NULL, *lb = NULL;
            size_t n = 0;
            S2S_TRY(block(be, c, wd, dir, k, space, &lm, &lb, &n));
            int cols = k < G ? wd->in : H;
            size_t m_off = k < G ? (size_t)k * H * wd->in : (size_t)(k - G) * H * H, b_off = (size_t)(k % G) * H;
            const s2s_pview *mv = k < G ? &wd->w_ih : &wd->w_hh, *bv = k < G ? &wd->b_ih : &wd->b_hh;
            if (to_lib) {
                S2S_TRY(be->ops->copy(be, lm, mv->w + m_off, n * sizeof(float)));
                S2S_TRY(be->ops->copy(be, lb, bv->w + b_off, (size_t)H * sizeof(float)));
            } else {
                S2S_TRY(be->ops->axpby2d(be, mv->g + m_off, cols, lm, cols, H, cols, 1.0f, 1.0f));
                S2S_TRY(be->ops->axpby2d(be, bv->g + b_off, H, lb, H, 1, H, 1.0f, 1.0f));
            }
        }
    }
    return S2S_OK;
}

static s2s_status dnn_layer_bytes(s2s_backend *be, const s2s_rnn_w *w, int dirs, int T, int B, int train,
                                  size_t *bytes)
{
    dnn_call c;
    s2s_status st = call_make(be, w, dirs, T, B, NULL, train, &c);
    *bytes = st == S2S_OK ? state_bytes(&c, B, train) : 0;
    call_free(&c);
    return st;
}

static s2s_status fwd(s2s_backend *be, dnn_call *c, const s2s_rnn_w *w, int dirs, int B, const float *x, float *y,
                      float *hy, float *cy, int train, void *state)
{
    dnn_layers *d = layers_of(be);
    dnn_parts p = parts(c, state, train);
    S2S_TRY(blocks(be, c, w, dirs, p.w, 1));
    S2S_TRY(be->ops->to_device(be, p.lens, c->lens, sizeof(int32_t) * (size_t)B));
    DNN_TRY(cudnnRNNForward(d->h, c->rnn, train ? CUDNN_FWD_MODE_TRAINING : CUDNN_FWD_MODE_INFERENCE, p.lens, c->xd, x,
                            c->yd, y, c->hd, NULL, hy, c->hd, NULL, w->cell == S2S_CELL_LSTM ? cy : NULL, c->wsize,
                            p.w, c->work, p.work, c->reserve, p.reserve));
    return S2S_OK;
}

static s2s_status dnn_layer_fwd(s2s_backend *be, const s2s_rnn_w *w, int dirs, int T, int B, const int32_t *len,
                                const int32_t *len_host, const float *x, float *y, float *hy, float *cy, int train,
                                void *state)
{
    dnn_call c;
    s2s_status st = call_make(be, w, dirs, T, B, len_host, train, &c);
    if (st == S2S_OK)
        st = fwd(be, &c, w, dirs, B, x, y, hy, cy, train, state);
    call_free(&c);
    return st;
}

static s2s_status bwd(s2s_backend *be, dnn_call *c, const s2s_rnn_w *w, int dirs, int T, int B, const float *x,
                      const float *y, const float *dy, const float *dhy, const float *dcy, float *dx, void *state)
{
    dnn_layers *d = layers_of(be);
    dnn_parts p = parts(c, state, 1);
    size_t n_out = (size_t)T * B * dirs * w->H, n_in = (size_t)T * B * w->in;
    float *dy_buf = NULL, *dx_buf = NULL;
    s2s_status st = S2S_OK;
    if (!dy) { /* cuDNN reads dy: zeros */
        st = be->ops->alloc(be, n_out * sizeof(float), (void **)&dy_buf);
        if (st == S2S_OK)
            st = be->ops->fill(be, dy_buf, n_out, 0.0f);
        dy = dy_buf;
    }
    if (st == S2S_OK && !dx) /* cuDNN always writes dx */
        st = be->ops->alloc(be, n_in * sizeof(float), (void **)&dx_buf), dx = dx_buf;
    cudnnStatus_t ds = CUDNN_STATUS_SUCCESS;
    const char *what = "";
    if (st == S2S_OK) {
        ds = cudnnRNNBackwardData_v8(d->h, c->rnn, p.lens, c->yd, y, dy, c->xd, dx, c->hd, NULL, dhy, NULL, c->hd,
                                     NULL, w->cell == S2S_CELL_LSTM ? dcy : NULL, NULL, c->wsize, p.w, c->work,
                                     p.work, c->reserve, p.reserve);
        what = "cudnnRNNBackwardData_v8";
    }
    if (st == S2S_OK && ds == CUDNN_STATUS_SUCCESS)
        st = be->ops->fill(be, p.dw, c->wsize / sizeof(float), 0.0f);
    if (st == S2S_OK && ds == CUDNN_STATUS_SUCCESS) {
        ds = cudnnRNNBackwardWeights_v8(d->h, c->rnn, CUDNN_WGRAD_MODE_ADD, p.lens, c->xd, x, c->hd, NULL, c->yd, y,
                                        c->wsize, p.dw, c->work, p.work, c->reserve, p.reserve);
        what = "cudnnRNNBackwardWeights_v8";
    }
    if (st == S2S_OK && ds != CUDNN_STATUS_SUCCESS)
        st = S2S_FAIL(S2S_ERR_CUDNN, "%s: %s", what, cudnnGetErrorString(ds));
    if (st == S2S_OK)
        st = blocks(be, c, w, dirs, p.dw, 0);
    /* stream-ordered release: later work on this stream may reuse them */
    be->ops->release(be, dy_buf);
    be->ops->release(be, dx_buf);
    return st;
}

static s2s_status dnn_layer_bwd(s2s_backend *be, const s2s_rnn_w *w, int dirs, int T, int B, const int32_t *len,
                                const int32_t *len_host, const float *x, const float *y, const float *dy,
                                const float *dhy, const float *dcy, float *dx, void *state)
{
    dnn_call c;
    s2s_status st = call_make(be, w, dirs, T, B, len_host, 1, &c);
    if (st == S2S_OK)
        st = bwd(be, &c, w, dirs, T, B, x, y, dy, dhy, dcy, dx, state);
    call_free(&c);
    return st;
}

/* The plug-in's teardown, called by the backend when it is freed. */
static void layers_free(s2s_backend *be, void *state)
{
    dnn_layers *d = state;
    if (d->drop)
        cudnnDestroyDropoutDescriptor(d->drop);
    if (d->h)
        cudnnDestroy(d->h);
    be->ops->release(be, d->drop_states);
    free(d);
}

s2s_status s2s_cudnn_layers_enable(s2s_backend *be)
{
    if (be->precision == S2S_PRECISION_BF16) /* as s2s_dnn_describe would say at the first layer */
        return S2S_FAIL(S2S_ERR_UNSUPPORTED, "the cuDNN layer implementation has no bf16 mode (cuDNN's RNN API takes "
                                             "half, float or double); use fp32 or tf32, or the fused layers");
    dnn_layers *d = s2s_host_calloc(1, sizeof *d, "the cuDNN layer state");
    if (!d)
        return S2S_ERR_OUT_OF_MEMORY;
    s2s_ops *ops;
    s2s_status st = s2s_cuda_plugin_attach(be, d, layers_free, &ops);
    if (st != S2S_OK) {
        free(d);
        return st;
    }
    size_t states = 0;
    DNN_TRY(cudnnCreate(&d->h));
    DNN_TRY(cudnnSetStream(d->h, (cudaStream_t)s2s_cuda_stream_of(be))); /* its state init: lane 0 */
    DNN_TRY(cudnnCreateDropoutDescriptor(&d->drop));
    DNN_TRY(cudnnDropoutGetStatesSize(d->h, &states));
    S2S_TRY(be->ops->alloc(be, states, &d->drop_states));
    DNN_TRY(cudnnSetDropoutDescriptor(d->drop, d->h, 0.0f, d->drop_states, states, 0));
    ops->layer_bytes = dnn_layer_bytes;
    ops->layer_fwd = dnn_layer_fwd;
    ops->layer_bwd = dnn_layer_bwd;
    return S2S_OK;
}
#endif
