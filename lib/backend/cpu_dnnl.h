/* cpu_dnnl.h - the CPU backend's reduced-precision entries (cpu_dnnl.c; backend.h documents
 * them as ops->precision_info, pack, gemm_packed, packed_free). Built with oneDNN only. */
#ifndef S2S_CPU_DNNL_H
#define S2S_CPU_DNNL_H

#include "backend.h"

s2s_status s2s_dnnl_precision_info(s2s_backend *be, s2s_precision prec, char *buf, size_t cap);
s2s_status s2s_dnnl_pack(s2s_backend *be, const float *w, int n, int k, int ldw, int kn, s2s_precision prec,
                         s2s_packed **out);
s2s_status s2s_dnnl_gemm_packed(s2s_backend *be, s2s_packed *p, int m, int n, int k, const float *x, int ldx,
                                float beta, const float *bias, float *y, int ldy);
void s2s_dnnl_packed_free(s2s_backend *be, s2s_packed *p);

/* bf16 products for training (the backend's precision BF16): C (zeroed by the caller where
 * beta is 0) += op(A) op(B), alpha 1, for the rows of C it can take: *done = how many of the
 * first rows of C it computed (0: none, the caller computes them all; m: all). *state holds
 * the primitives and copies between calls (made at the first; s2s_dnnl_bf16_gemm_free). */
typedef struct s2s_bf16_gemm s2s_bf16_gemm;
/* ops->read_only's block as the backend holds it: B operands inside [x, x + n) keep their bf16
 * copies while gen stays the same (a new gen makes them stale: converted again at their next use) */
typedef struct s2s_bf16_ro {
    const float *x;
    size_t n;
    unsigned long long gen;
} s2s_bf16_ro;
s2s_status s2s_dnnl_gemm_bf16(s2s_backend *be, s2s_bf16_gemm **state, const s2s_bf16_ro *ro, int ta, int tb, int m,
                              int n, int k, const float *a, int lda, const float *b, int ldb, float *c, int ldc,
                              int *done);
void s2s_dnnl_bf16_gemm_free(s2s_bf16_gemm *g);

#endif
