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

#endif
