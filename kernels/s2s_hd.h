/* s2s_hd.h - the S2S_HD qualifier: __host__ __device__ under nvcc, nothing under a C compiler,
 * so that the pointwise math in the kernels/ headers is written once and compiled for both devices. */
#ifndef S2S_HD_H
#define S2S_HD_H
#if defined(__CUDACC__)
#define S2S_HD __host__ __device__ __forceinline__
#else
#define S2S_HD static inline
#endif
#endif
