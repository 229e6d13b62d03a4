/* nn.h - the building blocks between the op table and the model: a workspace arena, the
 * parameter block with named views, and recurrent layers run either over a whole sequence
 * (encoder) or one step at a time (decoder). Everything here calls the op table only. */
#ifndef S2S_NN_H
#define S2S_NN_H

#include "internal.h"
#include "backend.h"

/* ---- arena: bump allocation of per-batch workspace on the backend's device -------------
 * Allocations live until s2s_arena_reset. When a batch needs more than the first chunk, more
 * chunks are added; the next reset replaces them with one chunk of the total, so steady state
 * is one device allocation, reused. */
#define S2S_ARENA_MAX_CHUNKS 64
typedef struct s2s_arena {
    s2s_backend *be;
    struct { char *base; size_t size, used; } chunk[S2S_ARENA_MAX_CHUNKS];
    int nchunks;
    size_t high_water;   /* bytes used by the largest batch so far */
    unsigned generation; /* changes whenever chunks are added or freed: addresses handed out
                            before then are not handed out again (graph replay depends on it) */
} s2s_arena;

void s2s_arena_init(s2s_arena *a, s2s_backend *be);
/* n floats (or int32s: same size), 256-byte aligned. */
s2s_status s2s_arena_floats(s2s_arena *a, size_t n, float **out);
s2s_status s2s_arena_ints(s2s_arena *a, size_t n, int32_t **out);
/* Like s2s_arena_floats, filled with zeros. */
s2s_status s2s_arena_zeros(s2s_arena *a, size_t n, float **out);
void s2s_arena_reset(s2s_arena *a);
void s2s_arena_free(s2s_arena *a);

/* ---- parameters: one allocation, named views ------------------------------------------- */
#define S2S_MAX_PARAMS 256
#define S2S_PARAM_NAME 64
typedef struct s2s_params {
    s2s_backend *be;
    int count;
    struct {
        char name[S2S_PARAM_NAME];
        int ndim, shape[2];
        size_t offset, numel;
    } t[S2S_MAX_PARAMS];
    size_t total;  /* floats */
    float *data;   /* [total] on the device */
    float *grad;   /* [total] on the device */
} s2s_params;

void s2s_params_init(s2s_params *p, s2s_backend *be);
/* Registers a tensor (before allocation); returns its index or -1 with the error set. */
int s2s_params_add(s2s_params *p, const char *name, int rows, int cols, int ndim);
s2s_status s2s_params_alloc(s2s_params *p);
void s2s_params_free(s2s_params *p);
int s2s_params_find(const s2s_params *p, const char *name);
s2s_pview s2s_params_view(const s2s_params *p, int index);
/* Fills tensor i with kind[i]: uniform(-bound[i], bound[i]) (PyTorch's recurrent and linear
 * default, bound = 1/sqrt(fan)), N(0,1) or uniform in [-bound, bound] with a zero row 0
 * (embeddings, pad id 0), or zeros.
 * Values come from a Philox stream per tensor keyed by seed, so they do not depend on the
 * device. */
typedef enum { S2S_INIT_UNIFORM, S2S_INIT_NORMAL_PAD0, S2S_INIT_ZERO, S2S_INIT_UNIFORM_PAD0 } s2s_init_kind;
s2s_status s2s_params_init_values(s2s_params *p, uint64_t seed, const s2s_init_kind *kind, const float *bound);

/* y [m, n] (row stride ldy) = x [m, k] W^T + beta y, W the block [n, k] at w (row stride ldw;
 * kn = 1: W is stored [k, n] and y = x W): through pk, W's reduced-precision copy, when it is
 * not NULL, else the fp32 GEMM. beta is 0 or 1. */
s2s_status s2s_linear(s2s_backend *be, s2s_packed *pk, int m, int n, int k, const float *x, int ldx, const float *w,
                      int ldw, int kn, float beta, float *y, int ldy);
/* y = bias (on every row) + x W^T, with the bits of bias_rows then s2s_linear with beta 1. */
s2s_status s2s_linear_bias(s2s_backend *be, s2s_packed *pk, int m, int n, int k, const float *x, int ldx,
                           const float *w, int ldw, const float *bias, float *y, int ldy);

/* ---- recurrent layers --------------------------------------------------------------------
 * One direction of one layer: weights s2s_rnn_w (backend.h). */
int s2s_cell_gates(s2s_cell cell);

/* Buffers of one direction run over T steps, kept for backward. Time-major, all [T, B, .]. */
typedef struct s2s_rnn_run {
    int T, B, H, reverse;
    const int32_t *len; /* [B] device, may be NULL */
    const float *h0, *c0; /* [B,H] initial state (never NULL; zeros by default) */
    int h0_zero;          /* h0 is known to be zero: the first recurrent GEMM is skipped */
    float *xp;   /* [T,B,GH]: input projection + biases; LSTM/RNN: full pre-activation */
    float *hp;   /* [T,B,GH] GRU only: h W_hh^T */
    float *act;  /* [T,B,4H] LSTM/GRU saved activations */
    float *hs;   /* [T,B,H] state h after step t */
    float *cs;   /* [T,B,H] LSTM: state c after step t */
    float *y;    /* [T,B,H] output: h where valid, 0 where padded */
    /* Layers run by the backend's library (cuDNN, be->ops->layer_fwd): only y and the final
     * rows of hs and cs are kept; the rest lives in lib_state. */
    const int32_t *len_host; /* [B] host lengths, may be NULL */
    void *lib_state;         /* the library's saved state (held by the first direction) */
    float *lib_y;            /* two directions: the library's [T*B, 2H] output */
} s2s_rnn_run;

/* Allocates the run's buffers in the arena. h0/c0 may be NULL (zeros). save = 0 (inference)
 * keeps no activations for backward. */
s2s_status s2s_rnn_run_init(s2s_arena *ar, const s2s_rnn_w *w, int T, int B, int reverse, const int32_t *len,
                            const float *h0, const float *c0, int save, s2s_rnn_run *r);
/* xp[t] = b_ih (+ b_hh for LSTM and RNN, whose recurrent term is accumulated onto xp) for
 * every t. */
s2s_status s2s_rnn_bias(s2s_backend *be, const s2s_rnn_w *w, s2s_rnn_run *r);
/* The same for steps t0 .. t0+nt-1 only (a search biases each step as it comes). */
s2s_status s2s_rnn_bias_steps(s2s_backend *be, const s2s_rnn_w *w, s2s_rnn_run *r, int t0, int nt);
/* xp[t0 .. t0+nt) += x W_ih[:, col0:col0+ncols]^T in one GEMM; x holds nt*B rows of stride ldx
 * (the inputs of those steps). Column blocks let input feeding split the layer-0 input. */
s2s_status s2s_rnn_project(s2s_backend *be, const s2s_rnn_w *w, s2s_rnn_run *r, const float *x, int ldx, int col0,
                           int ncols, int t0, int nt);
/* Step t (time index): recurrent GEMM and the fused cell. */
s2s_status s2s_rnn_step_fwd(s2s_backend *be, const s2s_rnn_w *w, s2s_rnn_run *r, int t);
/* The state before time t: h0 at the first step of the direction, else the neighbour's. */
const float *s2s_rnn_h_prev(const s2s_rnn_w *w, const s2s_rnn_run *r, int t);
const float *s2s_rnn_c_prev(const s2s_rnn_w *w, const s2s_rnn_run *r, int t);
/* Whole sequence forward: all steps in direction order (after s2s_rnn_project). */
s2s_status s2s_rnn_seq_fwd(s2s_backend *be, const s2s_rnn_w *w, s2s_rnn_run *r);
/* The final state: hs at the last step processed. */
float *s2s_rnn_h_final(const s2s_rnn_run *r);
float *s2s_rnn_c_final(const s2s_rnn_run *r);

/* Backward workspace of one run. dpre [T,B,GH] (GRU: dxp) and dhp [T,B,GH] (GRU only);
 * dh, dc [B,H]: the running gradients at the state after the step being processed. */
typedef struct s2s_rnn_grad {
    float *dpre, *dhp, *dh, *dc;
} s2s_rnn_grad;

/* dh, dc start as dhT, dcT (NULL: zeros). */
s2s_status s2s_rnn_grad_init(s2s_arena *ar, s2s_backend *be, const s2s_rnn_w *w, const s2s_rnn_run *r,
                             const float *dhT, const float *dcT, s2s_rnn_grad *g);
/* Step t backward: dy_t [B,H] (may be NULL) is the gradient at the step's output; afterwards
 * g->dh, g->dc hold the gradients at the state before step t. */
s2s_status s2s_rnn_step_bwd(s2s_backend *be, const s2s_rnn_w *w, const s2s_rnn_run *r, s2s_rnn_grad *g,
                            const float *dy_t, int t);
/* After all steps: dW_hh, db_hh and db_ih accumulate, and, when x != NULL, the block
 * dW_ih[:, col0:col0+ncols] += dpre^T x, x being the input the projection used for all T
 * steps ([T*B, ldx]). */
s2s_status s2s_rnn_weight_grads(s2s_backend *be, const s2s_rnn_w *w, const s2s_rnn_run *r, const s2s_rnn_grad *g,
                                const float *x, int ldx, int col0, int ncols);
/* dx [T*B, ldx] columns col0.. (+)= dpre W_ih[:, col0:col0+ncols]; beta 0 writes, 1 adds. */
s2s_status s2s_rnn_input_grad(s2s_backend *be, const s2s_rnn_w *w, const s2s_rnn_run *r, const s2s_rnn_grad *g,
                              float *dx, int ldx, int col0, int ncols, float beta);
/* Whole sequence backward in reverse direction order; dy [T*B, H] may be NULL. */
s2s_status s2s_rnn_seq_bwd(s2s_backend *be, const s2s_rnn_w *w, const s2s_rnn_run *r, s2s_rnn_grad *g,
                           const float *dy);
/* dh0/dc0 after backward are g->dh / g->dc. */

/* ---- stacks of layers, overlapped across the backend's lanes -------------------------------
 * At most S2S_MAX_STACK layers.
 * Dropout between stacked layers: the input of layer l+1 at step t is dropout(y_l[t]) with
 * stream s2s_dropout_stream(step, site0 + l, t). p = 0 (or a NULL s2s_rnn_drop): no dropout. */
#define S2S_MAX_STACK 16

typedef struct s2s_rnn_drop {
    float p;
    uint64_t seed, step;
    int site0;
    int rows_global, row0; /* the batch is a shard (backend.h's s2s_drop_rows); 0, 0: whole */
} s2s_rnn_drop;

/* Forward of L stacked forward-direction layers as a wavefront (Appleyard et al. 2016): time is
 * cut into chunks of be->wave_chunk steps; layer l runs on lane l % be->lanes, and its chunk k
 * (input projection, steps, dropout) starts as soon as chunk k of layer l-1 is done. With one
 * lane this is the plain layer-by-layer order. in[0] is the stack input ([T*B, w[0]->in]);
 * in[1..L-1] are set to the inputs of the upper layers (new buffers when dropout is on, else
 * the outputs of the layers below). Runs are initialised here (zero initial states). */
s2s_status s2s_rnn_stack_fwd(s2s_arena *ar, s2s_backend *be, int L, const s2s_rnn_w *const w[], s2s_rnn_run *const run[],
                             int T, int B, const int32_t *len, const int32_t *len_host, int save,
                             const s2s_rnn_drop *drop, const float *in[]);
/* Its backward, the wavefront top layer first: dy [T*B, H] (may be NULL) is the gradient at
 * the top layer's output, dhT[l]/dcT[l] (arrays and entries may be NULL) at the final states.
 * Accumulates every weight gradient; writes the gradient at the stack input into dx0 when it
 * is not NULL. */
s2s_status s2s_rnn_stack_bwd(s2s_arena *ar, s2s_backend *be, int L, const s2s_rnn_w *const w[],
                             const s2s_rnn_run *const run[], const float *const in[], const float *const dhT[],
                             const float *const dcT[], const float *dy, const s2s_rnn_drop *drop, float *dx0);
/* One bidirectional layer: the two directions at once on lanes 0 and 1 (in turn with one
 * lane). x [T*B, ldx] is the input of both.
 * Where the backend runs whole layers through a library (be->ops->layer_fwd), the stack and
 * bidirectional functions call it once per layer instead (no wavefront; len_host, the host
 * copy of len, may be NULL when len is). */
s2s_status s2s_rnn_bidir_fwd(s2s_arena *ar, s2s_backend *be, const s2s_rnn_w *w, s2s_rnn_run *run, int T, int B,
                             const int32_t *len, const int32_t *len_host, int save, const float *x, int ldx);
/* Its backward: dy[d], dhT[d], dcT[d] per direction (each may be NULL). Accumulates the
 * weight gradients; writes the gradient at x into dx (ldx) when dx is not NULL. */
s2s_status s2s_rnn_bidir_bwd(s2s_arena *ar, s2s_backend *be, const s2s_rnn_w *w, const s2s_rnn_run *run,
                             const float *const dy[2], const float *const dhT[2], const float *const dcT[2],
                             const float *x, int ldx, float *dx);

/* Bidirectional layers: [rows, Hd] blocks of the two directions to and from [rows, 2Hd]
 * (forward first), in new arena buffers. split_dirs of NULL gives two NULLs. */
s2s_status s2s_concat_dirs(s2s_arena *ar, s2s_backend *be, int Hd, const float *a, const float *b, int rows,
                           float **out);
s2s_status s2s_split_dirs(s2s_arena *ar, s2s_backend *be, int Hd, const float *x, int rows, float **a, float **b);

/* Dropout stream for (training step, site, index): distinct for every call in a step. */
static inline uint64_t s2s_dropout_stream(uint64_t step, int site, int index)
{
    return (step << 24) ^ ((uint64_t)(unsigned)site << 16) ^ (uint64_t)(unsigned)index;
}

#endif
