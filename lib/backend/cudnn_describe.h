/* cudnn_describe.h - what the two cuDNN bindings share (lib/bench/bench_cudnn.c, the benchmark
 * peer; backend_cuda_cudnn.c, the layer implementation): the status check and the
 * descriptors of a recurrent stack. Included only where S2S_HAVE_CUDNN is set. */
#ifndef S2S_CUDNN_DESCRIBE_H
#define S2S_CUDNN_DESCRIBE_H

#include "internal.h"
#include <cuda_runtime_api.h>
#include <cudnn.h>

#define DNN_TRY(call)                                                                                            \
    do {                                                                                                         \
        cudnnStatus_t dnn_s_ = (call);                                                                           \
        if (dnn_s_ != CUDNN_STATUS_SUCCESS)                                                                      \
            return S2S_FAIL(S2S_ERR_CUDNN, "%s: %s", #call, cudnnGetErrorString(dnn_s_));                       \
    } while (0)

/* A stack as cuDNN sees it. padded: time-major padded sequences (SEQ_MAJOR_UNPACKED, padding
 * 0, CUDNN_RNN_PADDED_IO_ENABLED) rather than packed ones. lens: host [B]. */
typedef struct s2s_dnn_shape {
    s2s_cell cell;
    int in, H, layers, dirs, T, B, algo, padded;
    const int *lens;
} s2s_dnn_shape;

/* Creates and sets the RNN descriptor, the x and y data descriptors and the [layers*dirs,
 * B, H] state descriptor. Matched precision: FMA-only kernels for fp32, tensor-core TF32
 * allowed for tf32; the RNN API has no bfloat16 math (data half, float or double), so bf16
 * is refused. On failure the caller destroys whatever was created (non-NULL handles). */
static inline s2s_status s2s_dnn_describe(s2s_precision prec, cudnnDropoutDescriptor_t drop, const s2s_dnn_shape *s,
                                          cudnnRNNDescriptor_t *rnn, cudnnRNNDataDescriptor_t *xd,
                                          cudnnRNNDataDescriptor_t *yd, cudnnTensorDescriptor_t *hd)
{
    if (prec == S2S_PRECISION_BF16)
        return S2S_FAIL(S2S_ERR_UNSUPPORTED, "cuDNN's RNN API has no bfloat16 mode (it takes half, float or double "
                                             "data); use fp32 or tf32, or the fused layers");
    cudnnRNNMode_t mode = s->cell == S2S_CELL_LSTM ? CUDNN_LSTM : s->cell == S2S_CELL_GRU ? CUDNN_GRU : CUDNN_RNN_TANH;
    cudnnMathType_t math = prec == S2S_PRECISION_TF32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
    cudnnRNNDataLayout_t layout =
        s->padded ? CUDNN_RNN_DATA_LAYOUT_SEQ_MAJOR_UNPACKED : CUDNN_RNN_DATA_LAYOUT_SEQ_MAJOR_PACKED;
    float zero = 0.0f;
    DNN_TRY(cudnnCreateRNNDescriptor(rnn));
    DNN_TRY(cudnnSetRNNDescriptor_v8(*rnn, (cudnnRNNAlgo_t)s->algo, mode, CUDNN_RNN_DOUBLE_BIAS,
                                     s->dirs == 2 ? CUDNN_BIDIRECTIONAL : CUDNN_UNIDIRECTIONAL, CUDNN_LINEAR_INPUT,
                                     CUDNN_DATA_FLOAT, CUDNN_DATA_FLOAT, math, s->in, s->H, s->H, s->layers, drop,
                                     s->padded ? CUDNN_RNN_PADDED_IO_ENABLED : 0));
    DNN_TRY(cudnnCreateRNNDataDescriptor(xd));
    DNN_TRY(cudnnCreateRNNDataDescriptor(yd));
    DNN_TRY(cudnnSetRNNDataDescriptor(*xd, CUDNN_DATA_FLOAT, layout, s->T, s->B, s->in, s->lens,
                                      s->padded ? &zero : NULL));
    DNN_TRY(cudnnSetRNNDataDescriptor(*yd, CUDNN_DATA_FLOAT, layout, s->T, s->B, s->dirs * s->H, s->lens,
                                      s->padded ? &zero : NULL));
    DNN_TRY(cudnnCreateTensorDescriptor(hd));
    int dims[3] = {s->layers * s->dirs, s->B, s->H}, strides[3] = {s->B * s->H, s->H, 1};
    DNN_TRY(cudnnSetTensorNdDescriptor(*hd, CUDNN_DATA_FLOAT, 3, dims, strides));
    return S2S_OK;
}

#endif
