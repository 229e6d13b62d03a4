/* bench_cudnn.c - cuDNN's RNN API as the peer of the fused layers: the same stack (LSTM,
 * GRU or tanh RNN; layers; bidirectional) timed forward, or forward + backward data + backward
 * weights, with the algorithm selectable (standard, persist static, persist dynamic) or the
 * best of those that run. Memory comes from the CUDA backend's allocator, so the reported peak
 * counts cuDNN's weight, work and reserve spaces. Built with cuDNN only. */
#ifdef S2S_HAVE_CUDNN
#include "backend_cuda.h"
#include "bench.h"
#include "cudnn_describe.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct dnn_run {
    s2s_backend *be;
    const s2s_bench_rnn_options *o;
    cudnnHandle_t h;
    cudnnDropoutDescriptor_t drop;
    cudnnRNNDescriptor_t rnn;
    cudnnRNNDataDescriptor_t xd, yd;
    cudnnTensorDescriptor_t hd;
    int32_t *seq; /* device [B] */
    int *seq_host;
    size_t wsize, work_size, reserve_size, states_size;
    void *states, *w, *dw, *work, *reserve;
    float *x, *y, *dy, *dx;
} dnn_run;

static s2s_status dnn_alloc(dnn_run *d, size_t bytes, void **p)
{
    *p = NULL;
    return bytes ? d->be->ops->alloc(d->be, bytes, p) : S2S_OK;
}

static s2s_status dnn_setup(dnn_run *d, uint64_t seed, int algo)
{
    const s2s_bench_rnn_options *o = d->o;
    s2s_backend *be = d->be;
    int dirs = o->bidirectional ? 2 : 1, out = o->H * dirs;
    size_t TB = (size_t)o->T * o->B;
    DNN_TRY(cudnnCreate(&d->h));
    DNN_TRY(cudnnSetStream(d->h, (cudaStream_t)s2s_cuda_stream_of(be)));
    DNN_TRY(cudnnCreateDropoutDescriptor(&d->drop));
    DNN_TRY(cudnnDropoutGetStatesSize(d->h, &d->states_size));
    S2S_TRY(dnn_alloc(d, d->states_size, &d->states));
    DNN_TRY(cudnnSetDropoutDescriptor(d->drop, d->h, 0.0f, d->states, d->states_size, seed));
    d->seq_host = s2s_host_alloc(sizeof(int) * (size_t)o->B, "cuDNN sequence lengths");
    if (!d->seq_host)
        return S2S_ERR_OUT_OF_MEMORY;
    for (int b = 0; b < o->B; b++)
        d->seq_host[b] = o->T;
    s2s_dnn_shape sh = {o->cell, o->I, o->H, o->layers, dirs, o->T, o->B, algo, 0, d->seq_host};
    S2S_TRY(s2s_dnn_describe(be->precision, d->drop, &sh, &d->rnn, &d->xd, &d->yd, &d->hd));
    if (algo == CUDNN_RNN_ALGO_PERSIST_DYNAMIC)
        DNN_TRY(cudnnBuildRNNDynamic(d->h, d->rnn, o->B));
    S2S_TRY(dnn_alloc(d, sizeof(int32_t) * (size_t)o->B, (void **)&d->seq));
    S2S_TRY(be->ops->to_device(be, d->seq, d->seq_host, sizeof(int32_t) * (size_t)o->B));
    DNN_TRY(cudnnGetRNNWeightSpaceSize(d->h, d->rnn, &d->wsize));
    DNN_TRY(cudnnGetRNNTempSpaceSizes(d->h, d->rnn, o->backward ? CUDNN_FWD_MODE_TRAINING : CUDNN_FWD_MODE_INFERENCE,
                                      d->xd, &d->work_size, &d->reserve_size));
    S2S_TRY(s2s_bench_random(be, seed, 3, d->wsize / sizeof(float), (float **)&d->w));
    S2S_TRY(be->ops->scale(be, d->w, d->wsize / sizeof(float), 1.0f / sqrtf((float)o->H)));
    S2S_TRY(dnn_alloc(d, d->work_size, &d->work));
    S2S_TRY(dnn_alloc(d, d->reserve_size, &d->reserve));
    S2S_TRY(s2s_bench_random(be, seed, 1, TB * o->I, &d->x));
    S2S_TRY(dnn_alloc(d, TB * out * sizeof(float), (void **)&d->y));
    if (!o->backward)
        return S2S_OK;
    S2S_TRY(s2s_bench_random(be, seed, 2, TB * out, &d->dy));
    S2S_TRY(dnn_alloc(d, TB * o->I * sizeof(float), (void **)&d->dx));
    S2S_TRY(dnn_alloc(d, d->wsize, &d->dw));
    return be->ops->fill(be, d->dw, d->wsize / sizeof(float), 0.0f);
}

static s2s_status dnn_pass(dnn_run *d)
{
    cudnnForwardMode_t fm = d->o->backward ? CUDNN_FWD_MODE_TRAINING : CUDNN_FWD_MODE_INFERENCE;
    DNN_TRY(cudnnRNNForward(d->h, d->rnn, fm, d->seq, d->xd, d->x, d->yd, d->y, d->hd, NULL, NULL, d->hd, NULL, NULL,
                            d->wsize, d->w, d->work_size, d->work, d->reserve_size, d->reserve));
    if (!d->o->backward)
        return S2S_OK;
    DNN_TRY(cudnnRNNBackwardData_v8(d->h, d->rnn, d->seq, d->yd, d->y, d->dy, d->xd, d->dx, d->hd, NULL, NULL, NULL,
                                    d->hd, NULL, NULL, NULL, d->wsize, d->w, d->work_size, d->work, d->reserve_size,
                                    d->reserve));
    DNN_TRY(cudnnRNNBackwardWeights_v8(d->h, d->rnn, CUDNN_WGRAD_MODE_ADD, d->seq, d->xd, d->x, d->hd, NULL, d->yd,
                                       d->y, d->wsize, d->dw, d->work_size, d->work, d->reserve_size, d->reserve));
    return S2S_OK;
}

static void dnn_teardown(dnn_run *d)
{
    s2s_backend *be = d->be;
    void *bufs[] = {d->states, d->w, d->dw, d->work, d->reserve, d->x, d->y, d->dy, d->dx, d->seq};
    be->ops->sync(be);
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        be->ops->release(be, bufs[i]);
    if (d->hd)
        cudnnDestroyTensorDescriptor(d->hd);
    if (d->xd)
        cudnnDestroyRNNDataDescriptor(d->xd);
    if (d->yd)
        cudnnDestroyRNNDataDescriptor(d->yd);
    if (d->rnn)
        cudnnDestroyRNNDescriptor(d->rnn);
    if (d->drop)
        cudnnDestroyDropoutDescriptor(d->drop);
    if (d->h)
        cudnnDestroy(d->h);
    free(d->seq_host);
}

static s2s_status bench_algo(s2s_backend *be, uint64_t seed, const s2s_bench_rnn_options *o, int algo,
                             s2s_bench_result *r)
{
    dnn_run d;
    memset(&d, 0, sizeof d);
    d.be = be;
    d.o = o;
    double *ms = s2s_host_calloc((size_t)o->reps, sizeof(double), "benchmark times");
    s2s_status st = ms ? dnn_setup(&d, seed, algo) : S2S_ERR_OUT_OF_MEMORY;
    for (int i = 0; i < o->warmup + o->reps && st == S2S_OK; i++) {
        double t0 = 0;
        st = be->ops->sync(be);
        if (st == S2S_OK)
            t0 = s2s_now_ms(), st = dnn_pass(&d);
        if (st == S2S_OK)
            st = be->ops->sync(be);
        if (st == S2S_OK && i >= o->warmup)
            ms[i - o->warmup] = s2s_now_ms() - t0;
    }
    if (st == S2S_OK) {
        size_t cur;
        s2s_bench_summarise(ms, o->reps, r);
        r->cudnn_algo = algo;
        st = be->ops->mem_stats(be, &cur, &r->peak_bytes);
    }
    dnn_teardown(&d);
    free(ms);
    return st;
}

s2s_status s2s_cudnn_bench_rnn(s2s_backend *be, uint64_t seed, const s2s_bench_rnn_options *o, s2s_bench_result *r)
{
    if (o->cudnn_algo >= 0)
        return bench_algo(be, seed, o, o->cudnn_algo, r);
    /* best of the algorithms that run at this shape; the others are named in the note */
    static const char *names[3] = {"standard", "persist_static", "persist_dynamic"};
    s2s_bench_result best = {0};
    int found = 0;
    size_t used = 0;
    for (int a = 0; a < 3; a++) {
        s2s_bench_result one;
        memset(&one, 0, sizeof one);
        s2s_status st = bench_algo(be, seed, o, a, &one);
        if (st != S2S_OK) {
            if (used + 1 < sizeof r->note)
                used += (size_t)snprintf(r->note + used, sizeof r->note - used, "%s%s: %s", used ? "; " : "", names[a],
                                         s2s_last_error());
            if (st != S2S_ERR_CUDNN)
                return st; /* not an algorithm refusing the shape: a real failure */
            continue;
        }
        if (!found || one.median_ms < best.median_ms)
            best = one;
        found = 1;
    }
    if (!found)
        return S2S_FAIL(S2S_ERR_CUDNN, "no cuDNN RNN algorithm ran at this shape (%s)", r->note);
    char note[sizeof r->note];
    memcpy(note, r->note, sizeof note);
    *r = best;
    memcpy(r->note, note, sizeof note);
    return S2S_OK;
}
#endif
