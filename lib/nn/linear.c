/* linear.c - y = x W^T (+ y): the fp32 GEMM, or the product by a reduced-precision copy of W
 * where one is attached (decoding at bf16 or int8, model/precision.c). */
#include "nn.h"

s2s_status s2s_linear(s2s_backend *be, s2s_packed *pk, int m, int n, int k, const float *x, int ldx, const float *w,
                      int ldw, int kn, float beta, float *y, int ldy)
{
    if (pk)
        return be->ops->gemm_packed(be, pk, m, n, k, x, ldx, beta, NULL, y, ldy);
    return be->ops->gemm(be, 0, kn ? 0 : 1, m, n, k, 1.0f, x, ldx, w, ldw, beta, y, ldy);
}

s2s_status s2s_linear_bias(s2s_backend *be, s2s_packed *pk, int m, int n, int k, const float *x, int ldx,
                           const float *w, int ldw, const float *bias, float *y, int ldy)
{
    if (pk) /* the bias added as the product is stored: no pass of its own over y */
        return be->ops->gemm_packed(be, pk, m, n, k, x, ldx, 0.0f, bias, y, ldy);
    S2S_TRY(be->ops->bias_rows(be, y, m, n, ldy, bias, NULL));
    return be->ops->gemm(be, 0, 1, m, n, k, 1.0f, x, ldx, w, ldw, 1.0f, y, ldy);
}
