/* backend_cuda.h - what the CUDA backend lends a plug-in that adds ops through a vendor library
 * (backend_cuda_cudnn.c, the cuDNN layers; bench/bench_cudnn.c, the cuDNN benchmark peer): its
 * current stream, its op table to set entries in, and a slot for the plug-in's state that the
 * backend frees with itself. The dependency runs one way: plug-ins call these; the backend
 * calls a plug-in only through the free function it was handed. Built with CUDA only. */
#ifndef S2S_BACKEND_CUDA_H
#define S2S_BACKEND_CUDA_H

#include "backend.h"

/* The current lane's stream (a cudaStream_t). */
void *s2s_cuda_stream_of(s2s_backend *be);

/* Attaches state to the backend: free_fn(be, state) runs when the backend is freed (before its
 * streams and memory go). One plug-in at a time: attaching while one is attached fails.
 * *ops receives the backend's own op table, whose entries the plug-in may set. */
s2s_status s2s_cuda_plugin_attach(s2s_backend *be, void *state, void (*free_fn)(s2s_backend *, void *),
                                  s2s_ops **ops);
/* The attached state, or NULL. */
void *s2s_cuda_plugin_state(s2s_backend *be);

#endif
