/* model.h - the encoder-decoder: its parameters, and the buffers one batch keeps between
 * forward and backward. Architecture (Luong et al. 2015, OpenNMT's layout):
 *
 *   encoder: embedding [Vs,E] -> dropout -> L recurrent layers (bidirectional: H/2 per
 *            direction, outputs and final states concatenated) with dropout between layers.
 *   decoder: embedding [Vt,E] -> dropout -> L layers; layer 0 input is [emb_t ; ht_{t-1}]
 *            (input feeding, with attention); initial states = encoder final states.
 *   attention: score(h_t, h_s) = h_t . h_s (dot) or (W_a h_t) . h_s (general),
 *            masked softmax over source positions, ctx_t = sum_s a_s h_s,
 *            ht_t = tanh(W_c [ctx_t ; h_t]).
 *   generator: logits = dropout(ht_t) W_g^T + b_g; loss = cross-entropy (label smoothing).
 *
 * Tensor names follow the PyTorch module tree of tests/golden/make_golden.py. */
#ifndef S2S_MODEL_H
#define S2S_MODEL_H

#include "nn.h"

#define S2S_MAX_LAYERS 16
#define S2S_GRAPH_CACHE 128
#define S2S_GRAPH_SEEN 256 /* keys remembered for record-on-second-sighting */
#define S2S_GRAPH_KEY 8    /* ints per key: what, B, S, T, and four more */
#define S2S_DECODE_CHUNK 8 /* greedy decoder steps recorded per graph */

/* Dropout sites: with the training step and an index they key each mask (nn.h). */
enum { SITE_ENC_EMB = 1, SITE_DEC_EMB = 2, SITE_GEN = 3, SITE_WORD_SRC = 4, SITE_WORD_TGT = 5, SITE_ENC_LAYER = 8,
       SITE_DEC_LAYER = 32 };

struct s2s_model {
    s2s_context *ctx;
    s2s_backend *be;
    s2s_model_config cfg;
    int Hd;         /* encoder hidden per direction */
    int dirs;       /* 1 or 2 */
    int G;          /* gates */
    int feed;       /* input feeding (attention on) */
    s2s_params params;
    s2s_pview src_emb, tgt_emb, attn_in, attn_out, gen_w, gen_b; /* tied: views of one tensor */
    size_t dec_start, gen_start; /* offsets in the gradient block of the first decoder tensor
                                    and the first generator tensor (s2s_grad_phase) */
    s2s_rnn_w enc[S2S_MAX_LAYERS][2];
    s2s_rnn_w dec[S2S_MAX_LAYERS];
    s2s_arena arena;
    /* Recorded op sequences for replay (GPU, graphs.c): keyed by what they are, shapes and the
     * arena generation. */
    struct s2s_graph_entry {
        int key[S2S_GRAPH_KEY];
        unsigned generation;
        void *graph;
        int nchunks;                 /* the arena's position before and after the recorded */
        size_t used_before, used_after; /* sequence (it may allocate) */
        void *host;                  /* host state the sequence fills, restored on replay */
        size_t host_bytes;
    } graphs[S2S_GRAPH_CACHE];
    int graph_broken[8]; /* by what: recording failed once, so that kind runs directly */
    int graph_next; /* round-robin slot to replace */
    struct s2s_graph_seen {
        int key[S2S_GRAPH_KEY];
        unsigned generation;
        int used;
    } seen[S2S_GRAPH_SEEN];
    int seen_next;
    int use_graphs; /* 1 unless switched off (tests compare with and without) */
    int dropout_off; /* gradients without dropout (s2s_loss_options.train = 0): "train" then only
                        keeps activations for backward */
    uint64_t *step_dev; /* device: the training step, read by recorded dropout ops */
    int shard_rows, shard_row0; /* this batch is rows row0.. of a batch of shard_rows rows (data
                                   parallel; dropout masks drawn as for the whole); 0: whole */
    /* Data parallel: called during backward with each range of the gradient block as soon as
     * backward has finished writing it (s2s_grad_phase's order), to start its reduction. */
    s2s_status (*grad_ready)(void *user, float *grad, size_t n);
    void *grad_ready_user;
    /* Decoding's precomputations (precision.c). pk_*: the reduced-precision copies of the
     * weights for pk_prec (pk_store, pk_count of them), attached to their slots (these, and
     * s2s_rnn_w.pk_*) only inside a decode at that precision; pk_refused[p]: 1 p is not available
     * here (said once); pk_what[p]: what asking for p gives, for people. emb_proj: [Vt, G*H]
     * device, row v = layer 0's biases + tgt_emb[v] W_ih0[:, :E]^T, looked up by the decoder's
     * search step instead of a GEMM (NULL: not made for the current weights; emb_proj_off: too
     * large). It lives in emb_proj_mem, allocated once and remade in place when the weights
     * change, so recorded CUDA graphs that read it keep a valid address. */
    s2s_precision pk_prec;
    s2s_packed **pk_store;
    int pk_count;
    int pk_refused[4];
    char pk_what[4][320];
    s2s_packed *pk_attn_in, *pk_attn_out[2], *pk_gen;
    float *emb_proj, *emb_proj_mem;
    int emb_proj_off;
    int use_emb_proj; /* 1 unless switched off (tests compare with and without) */
};

/* The optimizer: moments laid out like the parameter block (same offsets). */
struct s2s_optimizer {
    s2s_model *model;
    s2s_optimizer_options o;
    float *m, *v; /* Adam moments, or m = SGD momentum buffer (NULL without momentum); device */
    int step;     /* updates applied */
};

/* Token ids of a batch, time-major, on the device. */
typedef struct s2s_dev_batch {
    int B, S, T;        /* batch, source steps, decoder steps (max target length + 1) */
    int32_t *src;       /* [S*B] */
    int32_t *src_len;   /* [B] */
    const int32_t *src_len_host; /* [B] the caller's host lengths (valid during the call) */
    int32_t *tgt_in;    /* [T*B]: BOS y1 .. yn PAD.. (NULL when decoding) */
    int32_t *tgt_out;   /* [T*B]: y1 .. yn EOS PAD.. */
    int ntokens;        /* non-pad entries of tgt_out */
} s2s_dev_batch;

typedef struct s2s_enc_state {
    int S, B;
    float *in[S2S_MAX_LAYERS];   /* [S*B, in_l]: layer inputs (dropout applied) */
    float *out[S2S_MAX_LAYERS];  /* [S*B, H]: layer outputs, directions concatenated */
    s2s_rnn_run run[S2S_MAX_LAYERS][2];
    float *hfin[S2S_MAX_LAYERS], *cfin[S2S_MAX_LAYERS]; /* [B, H] final states */
    float *keys;                 /* [S*B, H]: out[L-1] W_a (general) or out[L-1] (dot) */
} s2s_enc_state;

typedef struct s2s_dec_state {
    int T, B;
    float *emb;                  /* [T*B, E] (dropout applied) */
    s2s_rnn_run run[S2S_MAX_LAYERS];
    float *xin[S2S_MAX_LAYERS];  /* layer l > 0: [T*B, H] inputs (dropout applied) */
    float *ctx;                  /* [T*B, H] attention contexts */
    float *alpha;                /* [T, B, S] attention weights */
    float *ht;                   /* [T*B, H] attentional hidden (decoder top output without attention) */
    /* Searches only (s2s_decoder_search_init; NULL in training): */
    float *step_emb;             /* [B, E] the embeddings of the tokens fed at a step */
    float *logits;               /* [B, V] the generator's output at the last step run */
    float *row_tmp;              /* [B, H] scratch of the state gather */
    const float *ht0;            /* [B, H] the attentional state fed to step 0 (input feeding), as
                                    h0 is for the layers; NULL: zeros (a new sentence) */
} s2s_dec_state;

/* The batch boundary (batch.c), for training and decoding alike. s2s_batch_check checks a user
 * batch (need_tgt: the targets too) row by row, so that a message names the caller's row, and
 * gives the longest source and target; s2s_batch_upload checks it and uploads it time-major
 * into the model's arena (tgt may be absent for decoding). */
s2s_status s2s_batch_check(const s2s_model *m, const s2s_batch *batch, int need_tgt, int *S, int *Tmax);

/* Word dropout of a training batch (s2s_loss_options.word_dropout) at a step; p 0: none. */
typedef struct s2s_word_drop {
    float p;
    uint64_t step;
} s2s_word_drop;
enum { S2S_WORD_SRC = 0, S2S_WORD_TGT = 1 };
/* Whether token pos of batch row b is replaced by UNK under the context seed; side S2S_WORD_SRC
 * counts source tokens, S2S_WORD_TGT the target tokens fed as decoder input (pos 0: the first
 * after BOS). r (width 1) places the rows in the whole batch as for the dropout masks
 * (S2S_DROP_ROWS), so that a shard drops what the whole batch drops. wd NULL: none. */
int s2s_word_dropped(uint64_t seed, const s2s_word_drop *wd, const s2s_drop_rows *r, int side, int b, int pos);
/* wd: NULL or p 0 for none (decoding, evaluation); the shard is m->shard_rows/shard_row0. */
s2s_status s2s_batch_upload(s2s_model *m, const s2s_batch *batch, int need_tgt, const s2s_word_drop *wd,
                            s2s_dev_batch *db);

s2s_status s2s_encoder_fwd(s2s_model *m, const s2s_dev_batch *db, int train, uint64_t step, s2s_enc_state *es);
/* dkeys, dout: [S*B, H] gradients at the attention keys and at the top outputs (either may be
 * NULL; for dot attention they may be the same buffer); dhfin/dcfin[l]: [B,H] (may be NULL). */
s2s_status s2s_encoder_bwd(s2s_model *m, const s2s_dev_batch *db, s2s_enc_state *es, float *dkeys, float *dout,
                           float *const *dhfin, float *const *dcfin, int train, uint64_t step);

/* Allocates the decoder buffers for T steps, with the encoder's final states as initial states. */
s2s_status s2s_decoder_init(s2s_model *m, const s2s_enc_state *es, int T, int B, int train, s2s_dec_state *ds);
/* One decoder step t, after xp of layer 0 at t holds bias + emb_t W_e^T. Its dropout masks
 * take the training step from m->step_dev. */
s2s_status s2s_decoder_step_fwd(s2s_model *m, const s2s_dev_batch *db, const s2s_enc_state *es, s2s_dec_state *ds,
                                int t, int train);
/* Teacher-forced forward over all steps (the embeddings of db->tgt_in, then every step); the
 * loss is s2s_generator_loss's, on ds->ht. */
s2s_status s2s_decoder_fwd(s2s_model *m, const s2s_dev_batch *db, const s2s_enc_state *es, s2s_dec_state *ds,
                           int train, uint64_t step);

/* ---- the decoder step of every search (greedy, beam search, sampling, the serving engine) ----
 * s2s_decoder_search_init: the decoder's buffers for T steps of B rows (no dropout, nothing kept
 * for backward) and the step's own. s2s_decoder_search_step: step t with the rows fed ids [B]
 * (device): the embeddings, layer 0's input projection, the step, and the generator's logits
 * [B, V] of ht[t] into ds->logits. No op waits for the device, so a sequence of steps can be
 * recorded as a graph. s2s_decoder_reorder: after step t, row r's state (every layer's h and
 * c, and the attentional ht fed to the next step) becomes row parent[r]'s (device [B]). */
s2s_status s2s_decoder_search_init(s2s_model *m, const s2s_enc_state *es, int T, int B, s2s_dec_state *ds);
s2s_status s2s_decoder_search_step(s2s_model *m, const s2s_dev_batch *db, const s2s_enc_state *es, s2s_dec_state *ds,
                                   const int32_t *ids, int t);
s2s_status s2s_decoder_reorder(s2s_model *m, s2s_dec_state *ds, int t, const int32_t *parent);
/* logits [N, V] = x [N, H] W_g^T + b_g: the generator (its dropout is the caller's). */
s2s_status s2s_generator_logits(s2s_model *m, const float *x, int N, float *logits);
s2s_status s2s_decoder_bwd(s2s_model *m, const s2s_dev_batch *db, const s2s_enc_state *es, s2s_dec_state *ds,
                           const float *dht, float *dkeys, float *dout, float **dh0, float **dc0, int train,
                           uint64_t step);

/* Generator and loss over rows [N, H] -> per-token loss; when grad, dht [N, H] receives the
 * gradient at the generator input (before its dropout) scaled by 1/ntokens. */
s2s_status s2s_generator_loss(s2s_model *m, const float *ht, const int32_t *tgt, int N, int B, int ntokens, float smoothing,
                              int train, uint64_t step, int grad, double *loss_sum, float *dht);

/* Frees every recorded graph (model teardown). */
void s2s_model_graphs_free(s2s_model *m);
/* What a recorded sequence is (the first int of its key). */
enum { S2S_GRAPH_GREEDY = 1, S2S_GRAPH_DEC_FWD, S2S_GRAPH_DEC_BWD, S2S_GRAPH_ENC };
typedef s2s_status (*s2s_graph_fn)(s2s_model *m, void *arg);
/* Runs fn(m, arg): directly where the backend has no graphs, on the first sighting of key, or
 * when recording is off; else replays the graph recorded for key (recording it first on the
 * second sighting). fn must issue the same ops on the same addresses for the same key, and
 * no op that waits for the device. */
s2s_status s2s_graph_run(s2s_model *m, const int key[S2S_GRAPH_KEY], s2s_graph_fn fn, void *arg);
/* The same for a sequence that also allocates from the arena and fills `bytes` of host state
 * at `host` (pointers into the arena, sizes): both are kept with the recording and restored
 * when it is replayed. */
s2s_status s2s_graph_run_state(s2s_model *m, const int key[S2S_GRAPH_KEY], s2s_graph_fn fn, void *arg, void *host,
                               size_t bytes);
/* The encoder forward for decoding (no dropout, nothing kept for backward), recorded per
 * (batch, source length) where the backend records graphs and runs the fused layers. */
s2s_status s2s_encoder_infer(s2s_model *m, const s2s_dev_batch *db, s2s_enc_state *es);

/* Decoding at precision prec (FP32, BF16, INT8): between _begin and _end the encoder and the
 * decoder's search step multiply by the weights' copies for prec where this device has them
 * (else fp32, with a warning logged once), and the embedding table is ready (precision.c).
 * s2s_model_weights_changed drops every precomputation: call it whenever the weights change. */
s2s_status s2s_model_precision_begin(s2s_model *m, s2s_precision prec);
void s2s_model_precision_end(s2s_model *m);
void s2s_model_weights_changed(s2s_model *m);
/* Frees what s2s_model_weights_changed keeps (the table's memory): at s2s_model_free. */
void s2s_model_precision_free(s2s_model *m);

/* s2s_model_create, with init = 0 leaving the weights unset (a loader that fills every tensor). */
s2s_status s2s_model_create_as(s2s_context *ctx, const s2s_model_config *cfg, int init, s2s_model **out);

/* The dropout rows description of a [groups][B][width] tensor of this pass (backend.h). */
#define S2S_DROP_ROWS(m, B, width)                                                                                 \
    (&(s2s_drop_rows){(width), (B), (m)->shard_rows > 0 ? (m)->shard_rows : (B), (m)->shard_row0})

/* The gradient block's ranges that are complete after backward's phase 0 (the generator),
 * 1 (the decoder) and 2 (the encoder), handed to m->grad_ready in a fixed order (every rank of
 * a data-parallel run issues the same reductions in the same order). */
s2s_status s2s_grad_phase(s2s_model *m, int phase);

/* Whether dropout is active for this pass. */
static inline int s2s_dropout_on(const s2s_model *m, int train)
{
    return train && !m->dropout_off && m->cfg.dropout > 0.0f;
}

#endif
