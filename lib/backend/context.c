/* context.c - device selection and the context handle: the context reads its options and makes
 * the backend they ask for (with cuDNN's layers where rnn_impl says so); backends read none. */
#include "internal.h"
#include "backend.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

S2S_API s2s_context_options s2s_context_options_default(void)
{
    s2s_context_options o;
    memset(&o, 0, sizeof o);
    o.device = S2S_DEVICE_AUTO;
    o.threads = 0;
    o.seed = 1;
    o.precision = S2S_PRECISION_FP32;
    o.cuda_device = 0;
    o.log_level = S2S_LOG_INFO;
    return o;
}

static s2s_status create_cpu(s2s_context *ctx)
{
    int threads = ctx->opts.threads > 0 ? ctx->opts.threads : omp_get_num_procs();
    S2S_TRY(s2s_backend_cpu_create(ctx, threads, &ctx->be));
    ctx->device = S2S_DEVICE_CPU;
    return S2S_OK;
}

#ifdef S2S_HAVE_CUDA
static s2s_status create_cuda(s2s_context *ctx)
{
    S2S_TRY(s2s_backend_cuda_create(ctx, ctx->opts.cuda_device, ctx->opts.precision, &ctx->be));
    ctx->device = S2S_DEVICE_CUDA;
#ifdef S2S_HAVE_CUDNN
    if (ctx->opts.rnn_impl == S2S_RNN_IMPL_CUDNN) {
        s2s_status st = s2s_cudnn_layers_enable(ctx->be);
        if (st != S2S_OK) {
            ctx->be->ops->free(ctx->be);
            ctx->be = NULL;
            return st;
        }
    }
#endif
    return S2S_OK;
}
#endif

static s2s_status pick_device(s2s_context *ctx)
{
    switch (ctx->opts.device) {
    case S2S_DEVICE_CPU:
        return create_cpu(ctx);
    case S2S_DEVICE_CUDA:
#ifdef S2S_HAVE_CUDA
        if (s2s_cuda_device_count() <= ctx->opts.cuda_device)
            return S2S_FAIL(S2S_ERR_NO_DEVICE,
                            "device CUDA asked for, but no CUDA GPU #%d is visible (cudaGetDeviceCount found %d); "
                            "use the CPU or AUTO device",
                            ctx->opts.cuda_device, s2s_cuda_device_count());
        return create_cuda(ctx);
#else
        return S2S_FAIL(S2S_ERR_NO_DEVICE, "device CUDA asked for, but this libseq2seq was built without CUDA "
                                           "(rebuild with nvcc on the PATH and CUDA=1), or use the CPU device");
#endif
    case S2S_DEVICE_AUTO:
#ifdef S2S_HAVE_CUDA
        if (s2s_cuda_device_count() > ctx->opts.cuda_device)
            return create_cuda(ctx);
        s2s_log(ctx, S2S_LOG_INFO, "no CUDA GPU found: running on the CPU");
#else
        s2s_log(ctx, S2S_LOG_INFO, "built without CUDA: running on the CPU");
#endif
        return create_cpu(ctx);
    }
    return S2S_FAIL(S2S_ERR_INVALID_ARG, "unknown device %d; use S2S_DEVICE_AUTO, _CPU or _CUDA",
                    (int)ctx->opts.device);
}

S2S_API s2s_status s2s_context_create(const s2s_context_options *opts, s2s_context **out)
{
    if (!out)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_context_create: out is NULL");
    *out = NULL;
    s2s_context_options o = opts ? *opts : s2s_context_options_default();
    if (o.threads < 0)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "threads = %d; use 0 (all cores) or a positive count", o.threads);
    if (o.precision == S2S_PRECISION_INT8)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "int8 is a decoding precision: set it in s2s_decode_options.precision "
                                             "(the context's precision is the GPU's GEMM precision)");
    if (o.precision != S2S_PRECISION_FP32 && o.precision != S2S_PRECISION_TF32 && o.precision != S2S_PRECISION_BF16)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "unknown precision %d", (int)o.precision);
    if (o.streams < 0 || o.streams > S2S_LANES_MAX)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "streams = %d; use 0 (the default) to %d", o.streams, S2S_LANES_MAX);
    if (o.rnn_impl != S2S_RNN_IMPL_FUSED && o.rnn_impl != S2S_RNN_IMPL_CUDNN)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "unknown recurrent-layer implementation %d", (int)o.rnn_impl);
#ifndef S2S_HAVE_CUDNN
    if (o.rnn_impl == S2S_RNN_IMPL_CUDNN)
        return S2S_FAIL(S2S_ERR_UNSUPPORTED, "the cuDNN layer implementation was asked for, but this libseq2seq was "
                                             "built without cuDNN; use S2S_RNN_IMPL_FUSED");
#endif
    s2s_context *ctx = s2s_host_calloc(1, sizeof *ctx, "the context");
    if (!ctx)
        return S2S_ERR_OUT_OF_MEMORY;
    ctx->opts = o;
    s2s_status st = pick_device(ctx);
    if (st != S2S_OK) {
        free(ctx);
        return st;
    }
    snprintf(ctx->device_name, sizeof ctx->device_name, "%s", ctx->be->name);
    ctx->be->precision = ctx->device == S2S_DEVICE_CUDA ? o.precision : S2S_PRECISION_FP32;
    if (ctx->device == S2S_DEVICE_CPU && o.precision == S2S_PRECISION_BF16) {
        /* the CPU's products in bf16 (oneDNN on AVX-512 BF16 or AMX), where it can */
        char why[256] = "this libseq2seq was built without oneDNN";
        st = ctx->be->ops->precision_info ? ctx->be->ops->precision_info(ctx->be, S2S_PRECISION_BF16, why, sizeof why)
                                          : S2S_ERR_UNSUPPORTED;
        if (st != S2S_OK) {
            s2s_context_free(ctx);
            return S2S_FAIL(S2S_ERR_UNSUPPORTED, "bf16 products on the CPU: %s; use S2S_PRECISION_FP32 on this "
                                                 "machine",
                            why);
        }
        ctx->be->precision = S2S_PRECISION_BF16;
        size_t n = strlen(ctx->device_name); /* "CPU (2 threads, OpenBLAS, oneDNN)" + ", bf16 GEMMs" */
        if (n > 0 && ctx->device_name[n - 1] == ')' && n + 12 < sizeof ctx->device_name)
            memcpy(ctx->device_name + n - 1, ", bf16 GEMMs)", 14);
        s2s_log(ctx, S2S_LOG_INFO, "the large GEMMs in bf16 (%s)", why);
    }
    if (o.streams > 0) /* the CPU has one lane whatever is asked */
        ctx->be->lanes = o.streams < ctx->be->lanes_max ? o.streams : ctx->be->lanes_max;
    if (o.rnn_impl == S2S_RNN_IMPL_CUDNN && !ctx->be->ops->layer_fwd) {
        s2s_context_free(ctx);
        return S2S_FAIL(S2S_ERR_UNSUPPORTED, "the cuDNN layer implementation needs the CUDA device (this context "
                                             "runs on the CPU); use S2S_RNN_IMPL_FUSED");
    }
    s2s_log(ctx, S2S_LOG_DEBUG, "libseq2seq %s on %s", s2s_version(), ctx->device_name);
    *out = ctx;
    return S2S_OK;
}

S2S_API void s2s_context_free(s2s_context *ctx)
{
    if (!ctx)
        return;
    ctx->be->ops->free(ctx->be);
    free(ctx);
}

S2S_API s2s_status s2s_context_sync(s2s_context *ctx)
{
    if (!ctx)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_context_sync: ctx is NULL");
    return ctx->be->ops->sync(ctx->be);
}

S2S_API s2s_device s2s_context_device(const s2s_context *ctx) { return ctx ? ctx->device : S2S_DEVICE_CPU; }

S2S_API const char *s2s_context_device_name(const s2s_context *ctx) { return ctx ? ctx->device_name : ""; }
