/* seq2seq.h - public C API of libseq2seq.
 *
 * Recurrent sequence-to-sequence models (LSTM, GRU, tanh RNN encoder/decoders with Luong
 * attention and input feeding) that train and decode on the CPU or an NVIDIA GPU with the
 * same model code.
 *
 * Conventions, stated once:
 * - Every call returns an s2s_status; S2S_OK is 0. On failure, s2s_last_error() gives a
 *   message for the calling thread with context (what failed, where, what to do).
 *   The library never exits, aborts or prints; messages go to the context's log callback.
 * - Handles are opaque. Whoever creates a handle frees it with the matching *_free call;
 *   *_free(NULL) is a no-op. A model must be freed before its context.
 * - Pointer arguments are host memory unless said otherwise, must not be NULL unless said
 *   otherwise, and are only read during the call (the library keeps no pointer to them).
 * - Token ids are int32_t. Batches are batch-major: row b of a [batch, max_len] array holds
 *   sequence b, padded at the end with the model's pad id.
 * - Sizes are int (elements) where they describe shapes and size_t where they count memory.
 * - Option structs are initialised by their *_default() function, then changed field by field,
 *   so that new fields added later get sensible values.
 */
#ifndef SEQ2SEQ_H
#define SEQ2SEQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define S2S_API __attribute__((visibility("default")))
#else
#define S2S_API
#endif

#define S2S_VERSION_MAJOR 0
#define S2S_VERSION_MINOR 1
#define S2S_VERSION_PATCH 0

/* ---- status ------------------------------------------------------------------------ */

typedef enum s2s_status {
    S2S_OK = 0,
    S2S_ERR_INVALID_ARG,   /* an argument is NULL, out of range or inconsistent */
    S2S_ERR_OUT_OF_MEMORY, /* host or device allocation failed; the message gives the size */
    S2S_ERR_NO_DEVICE,     /* CUDA asked for, but no GPU present or built without CUDA */
    S2S_ERR_UNSUPPORTED,   /* a valid request this build cannot serve */
    S2S_ERR_IO,            /* a file could not be opened, read or written */
    S2S_ERR_FORMAT,        /* a file or input is malformed */
    S2S_ERR_NUMERIC,       /* NaN or Inf where a finite value is required */
    S2S_ERR_CUDA,          /* a CUDA runtime call or kernel launch failed */
    S2S_ERR_CUBLAS,        /* a cuBLAS call failed */
    S2S_ERR_CUDNN,         /* a cuDNN call failed */
    S2S_ERR_INTERNAL,      /* a bug in the library: please report it with the message */
    S2S_ERR_BUSY,          /* a bounded queue is full: try again later */
    S2S_ERR_CANCELLED,     /* the work was cancelled before it finished */
    S2S_ERR_COMM           /* data-parallel training: a collective failed or timed out, or the
                              ranks disagree (the message names the rank) */
} s2s_status;

/* Short constant English name of a status ("out of memory"). Never NULL. */
S2S_API const char *s2s_status_string(s2s_status st);

/* The last error message set on the calling thread ("" if none). Valid until the next
 * failing call on this thread. */
S2S_API const char *s2s_last_error(void);

/* Library version as "MAJOR.MINOR.PATCH". */
S2S_API const char *s2s_version(void);
/* sizeof the public struct named `type` ("s2s_decode_options", ...), 0 for an unknown name: for
 * bindings (the Python package) to check their copies of the layouts when they load. */
S2S_API size_t s2s_sizeof(const char *type);

/* ---- context ----------------------------------------------------------------------- */

typedef enum s2s_device {
    S2S_DEVICE_AUTO = 0, /* the GPU where one is present, else the CPU (logged once) */
    S2S_DEVICE_CPU,
    S2S_DEVICE_CUDA
} s2s_device;

typedef enum s2s_precision {
    S2S_PRECISION_FP32 = 0, /* float32 GEMMs (default) */
    S2S_PRECISION_TF32,     /* TF32 tensor-core GEMMs with float32 accumulation (GPU only;
                               the CPU computes fp32 either way) */
    S2S_PRECISION_BF16,     /* training and decoding on the GPU: bfloat16 tensor-core GEMM
                               products with float32 accumulation, tensors float32 in memory.
                               The context's precision on the CPU (for training): the factors of
                               the GEMMs of 4M multiply-adds or more rounded to bfloat16 at each
                               product, float32 sums (oneDNN; AVX-512 BF16 or AMX), every GEMM
                               of the context, decoding's too; s2s_context_create refuses it on
                               other CPUs and in builds without oneDNN (with the AUTO device on a
                               machine without a GPU as well); the GEMMs keep state in the
                               context, so one thread at a time uses such a context. Decoding
                               on the CPU (s2s_decode_options.precision): the weights converted
                               to bfloat16 once (oneDNN; AVX-512 BF16 or AMX) */
    S2S_PRECISION_INT8      /* decoding on the CPU only (s2s_decode_options.precision): int8
                               weights with one symmetric scale per output row, activations
                               quantized per row at each product, int32 accumulation (oneDNN;
                               AVX2 or better) */
} s2s_precision;

/* How the encoder's recurrent layers run on the GPU. */
typedef enum s2s_rnn_impl {
    S2S_RNN_IMPL_FUSED = 0, /* this library's kernels (one GEMM + one fused kernel per step) */
    S2S_RNN_IMPL_CUDNN      /* cuDNN's RNN API, one call per layer (GPU builds with cuDNN only;
                               fp32 and tf32) */
} s2s_rnn_impl;

typedef enum s2s_log_level { S2S_LOG_DEBUG = 0, S2S_LOG_INFO, S2S_LOG_WARN, S2S_LOG_ERROR } s2s_log_level;

/* Log callback: level, a NUL-terminated message without trailing newline, and user data. */
typedef void (*s2s_log_fn)(s2s_log_level level, const char *msg, void *user);

typedef struct s2s_context_options {
    s2s_device device;       /* default S2S_DEVICE_AUTO */
    int threads;             /* CPU threads for pointwise loops and BLAS; 0 = all cores */
    uint64_t seed;           /* seeds weight init and dropout; default 1 */
    s2s_precision precision; /* default S2S_PRECISION_FP32 */
    int cuda_device;         /* GPU ordinal when the device is CUDA; default 0 */
    s2s_log_fn log;          /* may be NULL: messages are dropped */
    void *log_user;          /* passed to log; may be NULL */
    s2s_log_level log_level; /* messages below this level are dropped; default INFO */
    int streams;             /* GPU: concurrent streams for the encoder's layers (a wavefront over
                                stacked layers, the two directions of a bidirectional layer at
                                once); 0 = the default (2), 1 = none, at most 4. The CPU has 1 */
    s2s_rnn_impl rnn_impl;   /* the encoder's layers; default FUSED. CUDNN needs the CUDA device
                                and a build with cuDNN (else S2S_ERR_UNSUPPORTED); the decoder
                                always runs step by step on the fused kernels */
} s2s_context_options;

/* The opaque handles (declared together so that any section may refer to them). */
typedef struct s2s_context s2s_context;
typedef struct s2s_model s2s_model;
typedef struct s2s_optimizer s2s_optimizer;
typedef struct s2s_corpus s2s_corpus;
typedef struct s2s_tokenizer s2s_tokenizer;
typedef struct s2s_trainer s2s_trainer;
typedef struct s2s_tagger s2s_tagger;

S2S_API s2s_context_options s2s_context_options_default(void);

/* Creates a context on the device opts->device. opts may be NULL (defaults).
 * On success *out owns the context; free it with s2s_context_free. */
S2S_API s2s_status s2s_context_create(const s2s_context_options *opts, s2s_context **out);
S2S_API void s2s_context_free(s2s_context *ctx);

/* The device the context actually runs on (never S2S_DEVICE_AUTO). */
S2S_API s2s_device s2s_context_device(const s2s_context *ctx);

/* Waits until all work queued on the context's device has finished (a no-op on the CPU). */
S2S_API s2s_status s2s_context_sync(s2s_context *ctx);

/* Human-readable description of the device ("CPU (2 threads, OpenBLAS)", "NVIDIA H100 ..."). */
S2S_API const char *s2s_context_device_name(const s2s_context *ctx);

/* ---- model ------------------------------------------------------------------------- */

typedef enum s2s_cell { S2S_CELL_LSTM = 0, S2S_CELL_GRU, S2S_CELL_RNN_TANH } s2s_cell;

typedef enum s2s_attention {
    S2S_ATTN_NONE = 0, /* plain encoder-decoder: no attention, no input feeding */
    S2S_ATTN_DOT,      /* Luong dot: score = h_t . h_s */
    S2S_ATTN_GENERAL   /* Luong general: score = (W_a h_t) . h_s (OpenNMT linear_in) */
} s2s_attention;

/* Tied embeddings (Press & Wolf 2017, "Using the Output Embedding to Improve Language Models";
 * Inan et al. 2017): one [V, E] tensor serves as several of the model's matrices, its gradient
 * the sum of theirs. Both need embed == hidden. */
typedef enum s2s_tie {
    S2S_TIE_NONE = 0,  /* three tensors (default) */
    S2S_TIE_DECODER,   /* the decoder's input embedding is the output projection's weight:
                          one tensor, "decoder.embedding.weight" (no "generator.weight") */
    S2S_TIE_ALL        /* the source embedding too (one vocabulary for both sides: src_vocab ==
                          tgt_vocab, one tokenizer): "encoder.embedding.weight" alone */
} s2s_tie;

typedef struct s2s_model_config {
    s2s_cell cell;           /* default LSTM */
    int layers;              /* encoder and decoder layers; default 1, 1..16 */
    int hidden;              /* decoder hidden size H; default 256 */
    int embed;               /* embedding size E (source and target); default 256 */
    int bidirectional;       /* 1: encoder is bidirectional with H/2 per direction, the two
                                halves concatenated (H must be even); default 0 */
    s2s_attention attention; /* default S2S_ATTN_GENERAL */
    float dropout;           /* on embeddings, between layers and before the output layer
                                while training; 0 <= p < 1; default 0.2 */
    int src_vocab;           /* source vocabulary size, > 4; no default (0) */
    int tgt_vocab;           /* target vocabulary size, > 4; no default (0) */
    s2s_tie tie_embeddings;  /* one tensor for several roles; default S2S_TIE_NONE */
} s2s_model_config;

/* Special token ids, the same in both vocabularies. */
enum { S2S_PAD_ID = 0, S2S_BOS_ID = 1, S2S_EOS_ID = 2, S2S_UNK_ID = 3 };


S2S_API s2s_model_config s2s_model_config_default(void);

/* Creates a model with freshly initialised weights (PyTorch's defaults: uniform in
 * [-1/sqrt(H_dir), 1/sqrt(H_dir)] for recurrent and linear layers, N(0,1) embeddings with a zero
 * pad row), drawn from the context seed. The model keeps a pointer to ctx. */
S2S_API s2s_status s2s_model_create(s2s_context *ctx, const s2s_model_config *cfg, s2s_model **out);
S2S_API void s2s_model_free(s2s_model *model);

/* Draws every weight again, uniform in [-a, a] from the context seed, the embeddings' pad rows
 * zero: the initialisation of Luong et al. 2015 and OpenNMT's param_init (0.1 there). Smaller
 * embeddings than PyTorch's N(0, 1) default, which Adam moves in fewer steps. a > 0. The draws
 * are the default initialisation's own (the same Philox streams), scaled to the bound. With tied
 * embeddings the one tensor is an embedding: its pad row, the output layer's pad word, is zero. */
S2S_API s2s_status s2s_model_init_uniform(s2s_model *model, float a);

/* The configuration the model was created with. */
S2S_API s2s_model_config s2s_model_get_config(const s2s_model *model);

/* Parameters are named and laid out as in the equivalent PyTorch state dict
 * ("encoder.rnn.weight_ih_l0", "decoder.attn.linear_out.weight", "generator.bias", ...). */
typedef struct s2s_param_info {
    const char *name; /* owned by the model; valid while it lives */
    int ndim;         /* 1 or 2 */
    int shape[2];     /* row-major; shape[1] = 1 when ndim = 1 */
    size_t numel;
} s2s_param_info;

/* Number of parameter tensors, and the total number of float parameters. */
S2S_API int s2s_model_param_count(const s2s_model *model);
S2S_API size_t s2s_model_param_numel(const s2s_model *model);

/* Information on tensor i, 0 <= i < s2s_model_param_count(). */
S2S_API s2s_status s2s_model_param_info_at(const s2s_model *model, int i, s2s_param_info *info);

/* Copies tensor `name` (numel floats) to or from host memory `data`. A tied model lists its one
 * embedding tensor once; the names of its other roles ("generator.weight", and with
 * S2S_TIE_ALL "decoder.embedding.weight") reach it too. */
S2S_API s2s_status s2s_model_param_get(const s2s_model *model, const char *name, float *data, size_t numel);
S2S_API s2s_status s2s_model_param_set(s2s_model *model, const char *name, const float *data, size_t numel);
/* Copies the gradient of tensor `name` left by the last s2s_model_forward_backward. */
S2S_API s2s_status s2s_model_grad_get(const s2s_model *model, const char *name, float *data, size_t numel);

/* ---- batches and training ------------------------------------------------------------ */

/* A batch of sentence pairs. Targets hold the tokens only: the model adds BOS in front of the
 * decoder input and EOS after the last target token itself. Lengths are >= 1 (source) and
 * >= 0 (target) and at most the max_len of their side. */
typedef struct s2s_batch {
    int batch;              /* number of pairs, >= 1 */
    int src_max_len;        /* columns of src */
    int tgt_max_len;        /* columns of tgt */
    const int32_t *src;     /* [batch, src_max_len] */
    const int32_t *src_len; /* [batch] */
    const int32_t *tgt;     /* [batch, tgt_max_len]; may be NULL for decoding */
    const int32_t *tgt_len; /* [batch]; may be NULL for decoding */
} s2s_batch;

typedef struct s2s_loss_options {
    float label_smoothing; /* 0 <= eps < 1, as in PyTorch's CrossEntropyLoss; default 0 */
    int train;             /* 1: dropout active; 0: evaluation; default 1 */
    uint64_t step;         /* keys the dropout masks with the context seed; default 0 */
    /* Data-parallel pieces of one batch (s2s_comm; the trainer sets these itself): */
    int norm_tokens;       /* gradients of the summed loss divided by this (the whole batch's target
                              tokens); 0: this batch's own count, i.e. of the mean; default 0 */
    int shard_rows;        /* this batch is rows shard_row0 .. of a batch of shard_rows rows, and
                              draws that batch's dropout masks for them; 0: whole; default 0 */
    int shard_row0;
    float word_dropout;    /* with train: each source token and each decoder input token (not the
                              BOS, not the targets the loss scores) is replaced by UNK with this
                              probability, drawn from the context seed and step like the dropout
                              masks (word dropout: Gal & Ghahramani 2016, Sennrich & Zhang 2019);
                              0 <= p < 1; default 0 */
} s2s_loss_options;

S2S_API s2s_loss_options s2s_loss_options_default(void);

/* Forward and backward over a batch. *loss receives the mean cross-entropy per target token
 * (EOS included, padding excluded) and *ntokens the number of such tokens; either may be NULL.
 * The model's gradients are overwritten with d(mean loss)/d(parameter) (with opts->norm_tokens:
 * d(summed loss)/d(parameter) / norm_tokens). */
S2S_API s2s_status s2s_model_forward_backward(s2s_model *model, const s2s_batch *batch,
                                              const s2s_loss_options *opts, float *loss, int *ntokens);

/* Forward only (no gradients, no dropout): the mean loss per target token, and the count. */
S2S_API s2s_status s2s_model_evaluate(s2s_model *model, const s2s_batch *batch, float *loss, int *ntokens);
/* log p(target | source) of each row of batch: the natural-log probability of the row's target
 * tokens and EOS, summed (no dropout, no label smoothing), into logp[batch->batch]. Rows are run
 * one at a time. On failure logp may be partly written. */
S2S_API s2s_status s2s_model_score(s2s_model *model, const s2s_batch *batch, float *logp);

typedef enum s2s_optimizer_type { S2S_OPT_ADAM = 0, S2S_OPT_SGD } s2s_optimizer_type;

typedef struct s2s_optimizer_options {
    s2s_optimizer_type type; /* default ADAM */
    float lr;                /* default 1e-3 */
    float beta1, beta2, eps; /* Adam; defaults 0.9, 0.999, 1e-8 */
    float momentum;          /* SGD; default 0 */
    float weight_decay;      /* L2 added to the gradient (PyTorch's weight_decay); default 0 */
    float clip_norm;         /* global-norm clipping threshold; <= 0 disables; default 5 */
} s2s_optimizer_options;


S2S_API s2s_optimizer_options s2s_optimizer_options_default(void);

/* An optimizer bound to a model's parameters; it owns its moment buffers. */
S2S_API s2s_status s2s_optimizer_create(s2s_model *model, const s2s_optimizer_options *opts, s2s_optimizer **out);
S2S_API void s2s_optimizer_free(s2s_optimizer *opt);

/* Clips the model's current gradients to the global norm and applies one update.
 * lr overrides opts->lr for this step when > 0 (schedules). *grad_norm receives the norm
 * before clipping (may be NULL). A non-finite norm skips the update and returns
 * S2S_ERR_NUMERIC, leaving weights and moments untouched. */
S2S_API s2s_status s2s_optimizer_step(s2s_optimizer *opt, float lr, float *grad_norm);

/* ---- decoding ------------------------------------------------------------------------ */

/* Greedy decoding of batch->batch sources (tgt fields ignored). For each sentence b, up to
 * max_len tokens are written to out[b * max_len ...] (EOS not included) and their count to
 * out_len[b]; entries past out_len[b] are left as they were. The padding and BOS ids are never
 * produced. out: [batch, max_len]; out_len: [batch]. max_len >= 1. */
S2S_API s2s_status s2s_model_greedy_decode(s2s_model *model, const s2s_batch *batch, int max_len,
                                           int32_t *out, int32_t *out_len);

/* ---- decoding: beam search and sampling --------------------------------------------------- */

typedef enum s2s_decode_mode {
    S2S_DECODE_GREEDY = 0,
    S2S_DECODE_BEAM,  /* batched beam search, finished hypotheses kept per sentence */
    S2S_DECODE_SAMPLE /* ancestral sampling with temperature, top-k and top-p */
} s2s_decode_mode;

typedef struct s2s_decode_options {
    s2s_decode_mode mode;   /* default BEAM */
    int beam_size;          /* default 5 */
    int nbest;              /* hypotheses returned per sentence, 1..beam_size; default 1 */
    float length_penalty;   /* GNMT alpha: score = logp / ((5 + len) / 6)^alpha; default 0.6 */
    float max_len_a;        /* at most a * source length + b tokens; default 2 */
    int max_len_b;          /* default 10 */
    int no_repeat_ngram;    /* never repeat an n-gram of this size within a hypothesis; 0 off */
    int min_len;            /* EOS is not allowed before this many tokens; default 1 (no empty
                               output for a non-empty input) */
    float temperature;      /* sampling; default 1 */
    int top_k;              /* sampling: keep the k most likely tokens; 0 off */
    float top_p;            /* sampling: keep the smallest set with this much mass; 1 off */
    uint64_t seed;          /* sampling */
    int attention;          /* 1: return each output token's attention over the source */
    s2s_precision precision; /* the weights' precision: FP32 (default; the reference), BF16 or
                               INT8 (CPU with oneDNN: converted once per model and kept; where
                               this CPU cannot, fp32 with a warning logged once). See
                               s2s_model_prepare_decoding */
} s2s_decode_options;

typedef struct s2s_hypothesis {
    int32_t *ids;       /* output tokens, EOS not included */
    int len;
    float score;        /* length-normalised log-probability (beam), or log-probability */
    int32_t *src_pos;   /* [len]: for each output token, the source position with the most
                           attention (for replacing unknown words) */
    float *attention;   /* [len, src_len] attention weights when asked for, else NULL */
    int src_len;
} s2s_hypothesis;

S2S_API s2s_decode_options s2s_decode_options_default(void);
/* Decodes batch->batch sources; *out receives batch * nbest hypotheses (sentence-major, best
 * first), to be freed with s2s_hypotheses_free. */
S2S_API s2s_status s2s_model_decode(s2s_model *m, const s2s_batch *batch, const s2s_decode_options *o,
                                    s2s_hypothesis **out);
/* Ensemble decoding: n models (1 .. S2S_ENSEMBLE_MAX, separate objects, the same vocabularies:
 * several files of one tokenizer pair) decoded together, each step's log-probabilities the mean
 * of the models' (summed in order, divided by n), in greedy, beam and sampling alike; the
 * attention returned is the first model's. n = 1 gives s2s_model_decode's output, and a model
 * with a copy of itself gives it too. Models whose vocabulary sizes differ are refused. */
enum { S2S_ENSEMBLE_MAX = 16 };
S2S_API s2s_status s2s_ensemble_decode(s2s_model *const *models, int n, const s2s_batch *batch,
                                       const s2s_decode_options *o, s2s_hypothesis **out);
S2S_API void s2s_hypotheses_free(s2s_hypothesis *h, size_t n);

/* Readies decoding at precision `want` now (converting the weights, which the first decode at
 * that precision would otherwise do) and says what it will use: *used (may be NULL) is want, or
 * S2S_PRECISION_FP32 where this device cannot (no oneDNN in the build, a GPU context, a CPU
 * without the features: bf16 needs AVX-512 BF16 or AMX, int8 AVX2); on a GPU whose context
 * runs its GEMMs at `want` already (bf16, tf32), want with nothing converted; `what` (may be NULL)
 * receives a line for people: the library, the CPU features and the scheme, or why fp32. The
 * model's weights stay fp32 (saving writes them unchanged); the copies are dropped whenever the
 * weights change (training, s2s_model_param_set) and made again when next needed. */
S2S_API s2s_status s2s_model_prepare_decoding(s2s_model *m, s2s_precision want, s2s_precision *used, char *what,
                                              size_t cap);

/* ---- translating text ------------------------------------------------------------------------ */

typedef struct s2s_translate_options {
    s2s_decode_options decode; /* default: s2s_decode_options_default() (beam 5) */
    int batch_size;            /* sentences decoded together; default 64 */
    int replace_unk;           /* replace each <unk> in the output with the source piece it
                                  attends to most; default 1 */
    int max_src_tokens;        /* the longest input decoded in one piece; default 250 */
    int strict;                /* 0 (default): a line longer than max_src_tokens is translated in
                                  pieces of at most that many tokens (cut after a sentence's end in
                                  the piece's second half, else between words) whose outputs are
                                  joined with spaces (n-best k joins every piece's k-th best; the
                                  score is the sum); a line that is not valid UTF-8 is not
                                  translated and gives empty outputs; each with a warning naming the
                                  line through the context's log (the first 20 of each kind, then a
                                  count). 1: either kind of line fails the whole call with
                                  S2S_ERR_INVALID_ARG naming the line. */
    size_t first_line;         /* the number that messages give lines[0] (a caller translating a
                                  file in batches passes its position); default 1 */
    s2s_model *const *ensemble; /* ensemble_n more models decoded together with the model
                                  (s2s_ensemble_decode), sharing its tokenizers; default none */
    int ensemble_n;
} s2s_translate_options;

S2S_API s2s_translate_options s2s_translate_options_default(void);
/* Translates n lines: tokenizes, sorts by length, decodes in batches, detokenizes and puts the
 * results back in input order. out receives n * nbest malloc'd strings (line-major, best
 * first; free with s2s_strings_free); scores (may be NULL) n * nbest scores. An empty or
 * blank line translates to an empty string (score 0). Lines are C strings: a caller reading
 * text that may hold NUL bytes handles them before (the tools leave such a line out, with a
 * warning). Nothing is written anywhere but out, scores and the log. */
S2S_API s2s_status s2s_translate(s2s_model *m, const s2s_tokenizer *src_tok, const s2s_tokenizer *tgt_tok,
                                 const char *const *lines, size_t n, const s2s_translate_options *o, char **out,
                                 float *scores);
S2S_API void s2s_strings_free(char **s, size_t n);
/* Noisy-channel reranking ("MMI-bidi", Li et al. 2016) of n candidate outputs for one input text,
 * each with its forward score (as s2s_translate gives them):
 *   combined[i] = scores[i] + weight * log p(input | outs[i]) / (tokens of input + 1)
 * under rev, a model trained on the same kind of pairs the other way round (rev_src_tok encodes
 * the outputs, rev_tgt_tok the input). An empty candidate gets -INFINITY; outputs longer than 4096
 * tokens, and inputs longer than 250, are an error. combined (n floats) and best (the index of
 * the highest combined score, the first on ties; 0 when every candidate is empty) may each be
 * NULL. */
S2S_API s2s_status s2s_rerank_reverse(s2s_model *rev, const s2s_tokenizer *rev_src_tok,
                                      const s2s_tokenizer *rev_tgt_tok, const char *input, const char *const *outs,
                                      const float *scores, int n, float weight, float *combined, int *best);
/* The words of text (split at spaces) whose encoding contains the unknown id: for telling the
 * user which words the model does not know. Writes up to cap word pointers into words (malloc'd
 * copies; free with s2s_strings_free) and their count to *n. */
S2S_API s2s_status s2s_tokenizer_unknown_words(const s2s_tokenizer *t, const char *text, char **words, int cap, int *n);

/* Writes an SVG heatmap of attention [n_out, n_src] with the source pieces along the top and
 * the output pieces down the side. */
S2S_API s2s_status s2s_attention_svg(const char *path, const char *const *src_pieces, int n_src,
                                     const char *const *out_pieces, int n_out, const float *attention);

/* ---- serving engine: many requests decoded together (continuous batching) ----------------------
 * An engine owns a model and its tokenizers and decodes every active hypothesis of every request
 * as one batch per decoder step. A request joins once its encoder has run (at the start of the
 * next step), leaves the moment its search ends, and a cancelled one leaves at the next step;
 * beam search takes beam_size rows, greedy decoding and sampling one. Each request carries its
 * own s2s_decode_options. Its result equals s2s_translate's for that line alone with the same
 * options and the engine's replace_unk and max_src_tokens (the same text; scores within
 * float rounding, as the rows around it change the batch's GEMMs).
 *
 * Admission: a request costs its rows times (its source tokens + 1) (encoder memory and the
 * decoder state it holds); requests wait in a queue, in order, until they fit in token_budget and
 * max_rows; a full queue refuses new ones with S2S_ERR_BUSY.
 *
 * Threads: one thread runs the engine (s2s_engine_run, or s2s_engine_step in a loop) and is the
 * only one that touches the model while the engine lives; any thread may submit, cancel, stop
 * and read the stats. Callbacks run on the engine thread, so they must be quick (copy and
 * signal); they may submit and cancel. */
typedef struct s2s_engine s2s_engine;

typedef struct s2s_engine_options {
    int max_rows;         /* hypotheses decoded at once; default 256 */
    long token_budget;    /* admitted rows x (source tokens + 1), summed; default 16384 */
    int queue_max;        /* requests waiting for admission; default 1024 */
    int max_src_tokens;   /* a longer input is refused at submission; default 250 */
    int replace_unk;      /* as s2s_translate_options; default 1 */
    s2s_precision precision; /* the weights' precision for every request (their own decode
                                options' precision is not used): as s2s_decode_options;
                                default FP32 */
} s2s_engine_options;

/* What a finished request gives. texts and scores (n = nbest for beam search, else 1; best
 * first) live until the callback returns: copy what you keep. */
typedef struct s2s_engine_result {
    uint64_t id;
    s2s_status status;   /* S2S_OK; S2S_ERR_CANCELLED; or the failure (error holds the message) */
    const char *error;   /* "" when status is S2S_OK */
    int n;
    const char *const *texts;
    const float *scores;
    int src_tokens;      /* the input's tokens */
    int out_tokens;      /* the best output's tokens */
    double queue_ms;     /* from submission to admission */
    double total_ms;     /* from submission to this result */
} s2s_engine_result;

/* A streamed piece of text: the best hypothesis grew by `text` (greedy decoding and sampling
 * only; beam search's best changes from step to step, so it streams nothing). */
typedef void (*s2s_engine_token_fn)(uint64_t id, const char *text, void *user);
typedef void (*s2s_engine_result_fn)(const s2s_engine_result *result, void *user);

typedef struct s2s_engine_stats {
    long requests_active, requests_queued, rows_active;
    long long steps, requests_done, tokens_in, tokens_out;
    double last_step_ms;
} s2s_engine_stats;

S2S_API s2s_engine_options s2s_engine_options_default(void);
/* The model and tokenizers must outlive the engine and are used by the engine thread only. */
S2S_API s2s_status s2s_engine_create(s2s_model *m, const s2s_tokenizer *src_tok, const s2s_tokenizer *tgt_tok,
                                     const s2s_engine_options *o, s2s_engine **out);
/* Queues text for decoding with options o (NULL: defaults) and returns its id (> 0). Refused at
 * once: invalid options or text that is not UTF-8 (S2S_ERR_INVALID_ARG), more tokens than
 * max_src_tokens or more than the whole budget (S2S_ERR_INVALID_ARG naming the limit), a full
 * queue (S2S_ERR_BUSY), a stopped engine (S2S_ERR_CANCELLED). Otherwise on_result (may be NULL)
 * is called exactly once, and on_token (may be NULL) before it for each piece. An empty text
 * gives one empty output at once. */
S2S_API s2s_status s2s_engine_submit(s2s_engine *e, const char *text, const s2s_decode_options *o,
                                     s2s_engine_token_fn on_token, s2s_engine_result_fn on_result, void *user,
                                     uint64_t *id);
/* Cancels a request: it leaves at the next step and its result comes with S2S_ERR_CANCELLED.
 * Unknown or finished ids are ignored. */
S2S_API void s2s_engine_cancel(s2s_engine *e, uint64_t id);
/* One step: admissions and cancellations, one decoder step for every active row, results.
 * *active (may be NULL) gets the requests active or queued afterwards. */
S2S_API s2s_status s2s_engine_step(s2s_engine *e, int *active);
/* Steps until s2s_engine_stop, sleeping while there is nothing to do. A failing step fails
 * every request it held (their results say why) and the engine goes on. */
S2S_API s2s_status s2s_engine_run(s2s_engine *e);
/* Makes run return: at once with drain = 0 (requests not finished are cancelled), or once
 * every submitted request has finished with drain = 1. Later submissions are refused. */
S2S_API void s2s_engine_stop(s2s_engine *e, int drain);
S2S_API void s2s_engine_stats_get(s2s_engine *e, s2s_engine_stats *st);
/* Frees the engine; requests still held get their results (cancelled) first. */
S2S_API void s2s_engine_free(s2s_engine *e);

/* ---- tagger: one recurrent stack, a label per input position ------------------------------ */

/* The smallest useful recurrent model: inputs are one-hot vectors over `vocab_in` symbols
 * (or embeddings when embed > 0), a stack of cells, and a linear layer to `vocab_out` scores
 * at every position. Used by the "hello" example. Parameter names follow PyTorch
 * ("rnn.weight_ih_l0", "out.weight"). */
typedef struct s2s_tagger_config {
    s2s_cell cell;  /* default RNN_TANH */
    int layers;     /* default 1 */
    int hidden;     /* default 16 */
    int embed;      /* 0 = one-hot inputs (default) */
    int vocab_in;   /* >= 1 */
    int vocab_out;  /* >= 1 */
} s2s_tagger_config;


S2S_API s2s_tagger_config s2s_tagger_config_default(void);
S2S_API s2s_status s2s_tagger_create(s2s_context *ctx, const s2s_tagger_config *cfg, s2s_tagger **out);
S2S_API void s2s_tagger_free(s2s_tagger *tg);

/* One training step of plain SGD on `batch` sequences of length `len`: in and labels are
 * [batch, len]; *loss gets the mean cross-entropy per position (may be NULL). */
S2S_API s2s_status s2s_tagger_train_step(s2s_tagger *tg, const int32_t *in, const int32_t *labels, int batch,
                                         int len, float lr, float *loss);

/* Probabilities of every output symbol at every position: probs is [batch, len, vocab_out]. */
S2S_API s2s_status s2s_tagger_predict(s2s_tagger *tg, const int32_t *in, int batch, int len, float *probs);

/* ---- parallel corpora ---------------------------------------------------------------------
 * Sentence pairs (UTF-8) in host memory, read from two aligned files or one TSV file, plain or
 * gzip (detected by content). Problems are reported through the options' log callback with
 * file:line and counted; unusable lines are skipped, never silently. */

typedef struct s2s_corpus_options {
    size_t max_line_bytes; /* longer lines are skipped and counted; default 4096 */
    int normalize_spaces;  /* 1 (default): NBSP, narrow NBSP, thin and ideographic spaces become
                              ' ', zero-width spaces go, runs of spaces collapse, ends trimmed */
    int tsv_src_column;    /* TSV: 0-based column of the source side (default 0) ... */
    int tsv_tgt_column;    /* ... and of the target side (default 1) */
    s2s_log_fn log;        /* may be NULL */
    void *log_user;
} s2s_corpus_options;

typedef struct s2s_corpus_stats {
    long lines;            /* lines (pairs of lines for aligned files) read */
    long kept;             /* pairs kept */
    long empty;            /* skipped: a side empty after normalisation */
    long invalid_utf8;     /* skipped: invalid UTF-8 (or a NUL byte) */
    long too_long;         /* skipped: longer than max_line_bytes */
    long bad_columns;      /* skipped (TSV): fewer columns than needed */
    long crlf;             /* tolerated: lines ending in CR LF */
    int bom;               /* tolerated: files that began with a UTF-8 BOM */
} s2s_corpus_stats;

S2S_API s2s_corpus_options s2s_corpus_options_default(void);
/* An empty corpus, to be filled with s2s_corpus_add (dialogue formats). */
S2S_API s2s_status s2s_corpus_create(s2s_corpus **out);
/* Two aligned files, line n of each forming pair n. Different line counts are an error
 * (S2S_ERR_FORMAT naming both files and where the shorter ends). */
S2S_API s2s_status s2s_corpus_read_aligned(const char *src_path, const char *tgt_path, const s2s_corpus_options *o,
                                           s2s_corpus **out);
/* One TAB-separated file. */
S2S_API s2s_status s2s_corpus_read_tsv(const char *path, const s2s_corpus_options *o, s2s_corpus **out);
/* Appends a pair (copied; both sides valid UTF-8 and non-empty). */
S2S_API s2s_status s2s_corpus_add(s2s_corpus *c, const char *src, const char *tgt);
S2S_API void s2s_corpus_free(s2s_corpus *c);
S2S_API size_t s2s_corpus_size(const s2s_corpus *c);
/* Pair i: pointers owned by the corpus, valid while it lives. */
S2S_API s2s_status s2s_corpus_get(const s2s_corpus *c, size_t i, const char **src, const char **tgt);
S2S_API s2s_corpus_stats s2s_corpus_get_stats(const s2s_corpus *c);
/* Dialogue corpora as (utterance, reply) pairs of adjacent turns, appended to c.
 * DailyDialog: a dialogues_*.txt file, one dialogue per line, turns ending in "__eou__";
 * spaces around the curly apostrophe are rejoined ("I ’ m" -> "I'm", ’ -> ') and spaces
 * normalised. exclude (may be NULL): pairs already in it are skipped (deduplicating a
 * validation split against the training split), and counted in *excluded (may be NULL). */
S2S_API s2s_status s2s_corpus_add_dailydialog(s2s_corpus *c, const char *path, const s2s_corpus *exclude,
                                              const s2s_corpus_options *o, long *excluded);
/* ChatterBot corpus YAML files (a file, or every *.yml in a directory, in name order):
 * "conversations:" lists of turns; plain, quoted and literal-block (|) scalars; multi-line
 * replies kept. Malformed entries are reported with file:line and skipped. */
S2S_API s2s_status s2s_corpus_add_chatterbot(s2s_corpus *c, const char *path, const s2s_corpus_options *o);

/* SHA-256 (lowercase hex, 64 characters and a NUL) of the kept pairs, for provenance. */
S2S_API s2s_status s2s_corpus_sha256(const s2s_corpus *c, char hex[65]);

/* ---- subword tokenizer (SentencePiece) ------------------------------------------------------
 * Ids 0-3 are pad, bos, eos and unk, as in the model; loading refuses models with other special
 * ids. Text is normalised with SentencePiece's nmt_nfkc (Unicode spaces become spaces, "…"
 * becomes "..."), so decoding gives the normal form; an unknown id decodes as " ⁇ ". */

typedef enum s2s_tokenizer_type { S2S_TOKENIZER_UNIGRAM = 0, S2S_TOKENIZER_BPE } s2s_tokenizer_type;

typedef struct s2s_tokenizer_options {
    s2s_tokenizer_type type;  /* default UNIGRAM */
    int vocab_size;           /* default 8000 */
    float character_coverage; /* default 1.0 */
    int threads;              /* default 2 */
    size_t max_sentences;     /* sample at most this many sentences for training (0: all); default
                                 200000 */
    uint64_t seed;            /* sampling seed; default 1 */
} s2s_tokenizer_options;

S2S_API s2s_tokenizer_options s2s_tokenizer_options_default(void);
/* Trains on n sentences (UTF-8). */
S2S_API s2s_status s2s_tokenizer_train(const char *const *sentences, size_t n, const s2s_tokenizer_options *o,
                                       s2s_tokenizer **out);
/* From a serialised model (as s2s_tokenizer_serialize gives, or a SentencePiece .model file). */
S2S_API s2s_status s2s_tokenizer_load(const void *bytes, size_t len, s2s_tokenizer **out);
/* The serialised model: *bytes is owned by the tokenizer. */
S2S_API s2s_status s2s_tokenizer_serialize(const s2s_tokenizer *t, const void **bytes, size_t *len);
S2S_API void s2s_tokenizer_free(s2s_tokenizer *t);
S2S_API int s2s_tokenizer_vocab_size(const s2s_tokenizer *t);
/* Encodes text to ids (no BOS/EOS). Writes at most cap ids; *n gets the full count, so
 * *n > cap means the buffer was too small (nothing is silently dropped: check it). */
S2S_API s2s_status s2s_tokenizer_encode(const s2s_tokenizer *t, const char *text, int32_t *ids, int cap, int *n);
/* Decodes ids (pad, bos, eos skipped) to text in buf (cap bytes, NUL-terminated); *len gets
 * the full length; *len >= cap means the buffer was too small. */
S2S_API s2s_status s2s_tokenizer_decode(const s2s_tokenizer *t, const int32_t *ids, int n, char *buf, size_t cap,
                                        size_t *len);
/* The surface piece of id (for example "\xe2\x96\x81the"), NUL-terminated in buf. */
S2S_API s2s_status s2s_tokenizer_piece(const s2s_tokenizer *t, int32_t id, char *buf, size_t cap);

/* ---- model files ------------------------------------------------------------------------------
 * One .safetensors file: tensors under PyTorch's state-dict names (float32), the tokenizers as
 * U8 tensors "tokenizer.src" and "tokenizer.tgt", and in __metadata__ the config (JSON), the
 * library version, provenance and a CRC32 per tensor. Saving writes a temporary file, syncs it
 * and renames it over the target. Loading checks the header, every offset, dtype and shape
 * against the config, and every CRC before anything is used. */
typedef struct s2s_provenance {
    uint64_t seed;          /* context seed of the training run */
    uint64_t step;          /* optimizer steps taken */
    char data_sha256[65];   /* s2s_corpus_sha256 of the training data, or "" */
} s2s_provenance;

/* src_tok / tgt_tok may be NULL or the same pointer (shared vocabulary); prov may be NULL. */
S2S_API s2s_status s2s_model_save(const s2s_model *m, const s2s_tokenizer *src_tok, const s2s_tokenizer *tgt_tok,
                                  const s2s_provenance *prov, const char *path);
/* Creates a model on ctx from a model or checkpoint file. src_tok, tgt_tok and prov may be
 * NULL when not wanted; a tokenizer absent from the file comes back NULL. When the file holds
 * one shared tokenizer, *src_tok and *tgt_tok are two separate objects: free each. */
S2S_API s2s_status s2s_model_load(s2s_context *ctx, const char *path, s2s_model **model, s2s_tokenizer **src_tok,
                                  s2s_tokenizer **tgt_tok, s2s_provenance *prov);
/* A human-readable report of a model or checkpoint file: config, provenance, tensor table,
 * and whether every CRC matches (returns S2S_ERR_FORMAT when one does not). The report is
 * NUL-terminated in buf; *len gets its full length. */
S2S_API s2s_status s2s_model_file_report(const char *path, char *buf, size_t cap, size_t *len);

/* Checks, before any work, that files named PREFIX.* can be written: the prefix's folder exists
 * and is a directory, a file can be created in it (made and removed again: this holds for root
 * and read-only mounts too), and, when bytes > 0, it has at least that many bytes free.
 * S2S_ERR_IO (or S2S_ERR_INVALID_ARG for an empty prefix or one ending in '/') naming the
 * folder and what to do. s2s_trainer_create runs it with the size of one checkpoint. */
S2S_API s2s_status s2s_output_check(const char *prefix, uint64_t bytes);

/* Training checkpoints: the model file plus the optimizer's moments and step, and an opaque
 * blob of trainer state (data position, schedule, RNG counters). */
S2S_API s2s_status s2s_checkpoint_save(const char *path, const s2s_model *m, const s2s_optimizer *opt,
                                       const s2s_tokenizer *src_tok, const s2s_tokenizer *tgt_tok,
                                       const s2s_provenance *prov, const void *state, size_t state_len);
/* Restores into an existing model and optimizer of the same configuration; *state receives a
 * malloc'd copy of the blob (free it with free()), *state_len its length. */
S2S_API s2s_status s2s_checkpoint_load(const char *path, s2s_model *m, s2s_optimizer *opt, void **state,
                                       size_t *state_len);

/* Checkpoint averaging: a model file at out whose every tensor is the mean of the n files'
 * (model or checkpoint files; summed in double, rounded once), with the tokenizers and the
 * provenance of the last file (the newest, in the usual order). A file whose config or
 * tokenizers differ from the last one's is refused, naming it and the field. */
S2S_API s2s_status s2s_model_average(s2s_context *ctx, const char *const *paths, int n, const char *out);

/* ---- BLEU -----------------------------------------------------------------------------------
 * Corpus BLEU as sacreBLEU 2.x computes it by default: 13a tokenisation, mixed case, 4-grams,
 * exponential smoothing ('exp', sacreBLEU's default), no effective order, brevity penalty.
 * n = 0 is S2S_ERR_INVALID_ARG. */
typedef struct s2s_bleu {
    double score;            /* 0..100 */
    double precisions[4];    /* modified n-gram precisions, percent */
    double brevity_penalty;
    long hyp_len, ref_len;
} s2s_bleu;

S2S_API s2s_status s2s_bleu_corpus(const char *const *hyps, const char *const *refs, size_t n, s2s_bleu *out);

/* ---- communicator (data-parallel training) ---------------------------------------------------
 * One model trained by N processes (`mpirun -np N ...`): each rank computes the gradients of
 * its shard of every global batch, the ranks sum them, and each applies the same update. The
 * trainer does all of this when s2s_trainer_options.comm is set. Implementations: LOCAL (one
 * process), MPI (CPU ranks, Open MPI; builds with MPI=1), NCCL (one GPU per rank; libnccl.so.2
 * loaded at run time, bootstrapped through MPI). Every wait is bounded by timeout_s; a rank
 * that dies or hangs makes the others fail with S2S_ERR_COMM naming it. */
typedef struct s2s_comm s2s_comm;

typedef enum s2s_comm_kind {
    S2S_COMM_AUTO = 0, /* NCCL on a CUDA context, else MPI, when launched by mpirun/srun with more
                          than one rank; otherwise LOCAL */
    S2S_COMM_LOCAL,
    S2S_COMM_MPI,
    S2S_COMM_NCCL
} s2s_comm_kind;

typedef struct s2s_comm_options {
    s2s_comm_kind kind; /* default AUTO */
    double timeout_s;   /* longest wait for the other ranks; default 300 */
} s2s_comm_options;

S2S_API s2s_comm_options s2s_comm_options_default(void);
/* Joins the job's ranks (MPI_Init when nobody has called it). Errors name what is missing
 * (a build without MPI, no libnccl.so.2, a CPU context asked for NCCL). */
S2S_API s2s_status s2s_comm_create(s2s_context *ctx, const s2s_comm_options *opts, s2s_comm **out);
/* Ends this rank's part (MPI_Finalize when s2s_comm_create called MPI_Init). NULL is a no-op. */
S2S_API void s2s_comm_free(s2s_comm *comm);
S2S_API int s2s_comm_rank(const s2s_comm *comm);
S2S_API int s2s_comm_size(const s2s_comm *comm);
S2S_API const char *s2s_comm_name(const s2s_comm *comm); /* "local", "mpi", "nccl" */
/* What the launcher (mpirun, srun) says about this process before any communicator exists:
 * the world size (1 when not launched by one), and this process's rank and rank on its
 * machine (for choosing a GPU: cuda_device = local_rank). Any pointer may be NULL. */
S2S_API int s2s_comm_launcher(int *rank, int *local_rank);
/* buf[n] (the context's memory: host on the CPU, device on a GPU) becomes the sum over ranks. */
S2S_API s2s_status s2s_comm_allreduce(s2s_comm *comm, float *buf, size_t n);
/* For tools after a failure: ends every rank of the job (MPI_Abort) so that none waits on this
 * one. Returns only for a LOCAL communicator. The library itself never calls it. */
S2S_API void s2s_comm_abort(s2s_comm *comm, int code);

/* ---- trainer ------------------------------------------------------------------------------
 * Trains a model on a tokenized corpus: length-bucketed batches of about batch_tokens target
 * tokens in a seeded order, Adam with warm-up then inverse-square-root, plateau or linear decay, label
 * smoothing, clipping, dropout; validation every valid_every steps (perplexity, and corpus BLEU
 * of greedy translations); checkpoints (the last keep_last kept, and the best model); early
 * stopping; a time budget; a metrics CSV and an SVG loss plot. Stopping and resuming from a
 * checkpoint continues exactly (bit-identical weights on the CPU). */
typedef enum s2s_lr_schedule {
    S2S_LR_INVERSE_SQRT = 0, /* after warm-up, lr * sqrt(warmup/step) */
    S2S_LR_PLATEAU,          /* lr until validation stalls, then times plateau_factor */
    S2S_LR_LINEAR            /* lr falling in a straight line to lr/1000 at the end of the budget:
                                the largest share spent of max_steps, max_epochs and minutes
                                (with no limit, the one epoch); a run resumed with a time budget
                                spreads the rest of the fall over its minutes; with cycles > 1,
                                one fall per cycle */
} s2s_lr_schedule;

typedef struct s2s_train_progress {
    int epoch;              /* 1-based */
    long step;              /* optimizer steps so far */
    long steps_total;       /* max_steps, or an estimate from the epochs or the time budget; 0 unknown */
    float loss;             /* mean training loss per token since the last report */
    float lr;
    double tokens_per_s;    /* target tokens per second since the last report */
    double elapsed_s, eta_s; /* eta_s < 0: unknown */
    int is_validation;      /* 1: a validation result (the fields below are set) */
    float valid_loss, valid_ppl, valid_bleu; /* valid_bleu < 0: not computed */
    int improved;           /* the validation improved on the best so far */
    long skipped_steps;     /* steps skipped for a non-finite loss or gradient */
    int world_size;         /* ranks training together (1 alone); tokens_per_s counts all of them */
    double comm_wait;       /* data parallel: the fraction of the time since the last report this
                               rank spent waiting on the others (the sums not hidden by backward) */
} s2s_train_progress;

typedef void (*s2s_progress_fn)(const s2s_train_progress *p, void *user);

typedef struct s2s_trainer_options {
    int batch_tokens;          /* target tokens per batch, padding counted; default 4000 */
    int max_len;               /* longer pairs (either side, in tokens) are skipped and counted;
                                  default 100 */
    float lr;                  /* peak learning rate; default 1e-3 */
    int warmup_steps;          /* linear warm-up; default 400 */
    s2s_lr_schedule schedule;  /* default INVERSE_SQRT (after warm-up, lr * sqrt(warmup/step));
                                  PLATEAU; LINEAR (to the end of the budget) */
    float plateau_factor;      /* PLATEAU: multiply lr by this when validation stalls; 0.5 */
    int plateau_patience;      /* PLATEAU: validations without improvement before decay; 2 */
    float label_smoothing;     /* default 0.1 */
    float clip_norm;           /* default 5 */
    int valid_every;           /* steps between validations; default 500; 0: only at the end */
    int valid_bleu;            /* greedy-translate the validation set for BLEU; default 1 */
    int valid_max;             /* validation pairs used (first N); default 1000 */
    int keep_last;             /* checkpoints kept; default 3 */
    int patience;              /* stop after this many validations without improvement; 0 off */
    double minutes;            /* time budget; 0: none */
    long max_steps;            /* 0: none */
    int max_epochs;            /* 0: none; default 0 (with no limit at all, one epoch is run) */
    int nonfinite_halve;       /* consecutive non-finite steps before the lr halves; default 3 */
    int nonfinite_stop;        /* consecutive non-finite steps before giving up; default 10 */
    const char *out_prefix;    /* files PREFIX.best.safetensors, PREFIX.ckpt-STEP.safetensors,
                                  PREFIX.metrics.csv, PREFIX.loss.svg; NULL: write none */
    int report_every;          /* steps between progress reports; default 100 */
    s2s_progress_fn progress;  /* may be NULL */
    void *progress_user;
    int average_last;          /* at the end of s2s_trainer_run, PREFIX.avg.safetensors = the mean
                                  of the newest K checkpoints (s2s_model_average); 0: off (default);
                                  at most keep_last */
    s2s_comm *comm;            /* data-parallel training over comm's ranks (NULL: this process
                                  alone). Every rank runs the same trainer on the same data and
                                  options; each step splits one global batch of batch_tokens
                                  into one shard per rank, so a seed gives the same model at any
                                  world size. Rank 0 alone writes files and reports progress.
                                  An MPI or NCCL communicator of one rank is used as well; a
                                  LOCAL one is the same as NULL. */
    int shard_optimizer;       /* with comm: ZeRO-1, each rank updates and keeps the Adam moments
                                  of 1/N of the parameters (reduce-scatter, update, all-gather) */
    int cycles;                /* LINEAR only: warm restarts. The budget is cut into this many equal
                                  parts; in each the lr falls from the peak to lr/1000 (warm-up in
                                  the first only) and jumps back at the next. At the end of each
                                  part a checkpoint round runs and the model is kept as
                                  PREFIX.snap-K.safetensors, K = 1 .. cycles: a snapshot ensemble
                                  to decode together. Default 1 (0 is taken as 1); at most 1000 */
    float word_dropout;        /* s2s_loss_options.word_dropout of every training step: source and
                                  decoder input tokens replaced by UNK with this probability;
                                  0 <= p < 1; default 0 */
} s2s_trainer_options;


S2S_API s2s_trainer_options s2s_trainer_options_default(void);
/* Tokenizes the corpora (skipping and counting pairs longer than max_len) and prepares
 * batches. The trainer keeps pointers to model, tokenizers and corpora (they must outlive it);
 * valid may be NULL. src_tok and tgt_tok may be the same. */
S2S_API s2s_status s2s_trainer_create(s2s_model *model, const s2s_tokenizer *src_tok, const s2s_tokenizer *tgt_tok,
                                      const s2s_corpus *train, const s2s_corpus *valid,
                                      const s2s_trainer_options *opts, s2s_trainer **out);
S2S_API void s2s_trainer_free(s2s_trainer *t);
/* Restores weights, optimizer and position from a checkpoint written by this trainer's
 * configuration; the next s2s_trainer_run continues where that run stopped. */
S2S_API s2s_status s2s_trainer_resume(s2s_trainer *t, const char *checkpoint_path);
/* Trains until max_steps, max_epochs, the time budget or early stopping. Returns S2S_OK on a
 * normal end, S2S_ERR_NUMERIC when it gave up on non-finite losses (the last good checkpoint
 * stays on disk). */
S2S_API s2s_status s2s_trainer_run(s2s_trainer *t);
/* Trains at most n more steps (then returns), for callers that drive the loop themselves. */
S2S_API s2s_status s2s_trainer_steps(s2s_trainer *t, long n);
/* Writes a checkpoint of the current state to path. */
S2S_API s2s_status s2s_trainer_checkpoint(s2s_trainer *t, const char *path);
/* The latest progress (after run or steps). */
S2S_API s2s_train_progress s2s_trainer_get_progress(const s2s_trainer *t);
/* Pairs used and skipped when the trainer tokenized the training corpus. */
S2S_API void s2s_trainer_data_counts(const s2s_trainer *t, long *pairs, long *skipped_long, long *batches);
/* Runs validation now: mean loss per token, perplexity, and BLEU (when bleu != NULL). */
S2S_API s2s_status s2s_trainer_validate(s2s_trainer *t, float *loss, float *ppl, float *bleu);
/* One line describing p ("epoch 2 step 1200 loss 3.21 ..."), for progress printing. */
S2S_API void s2s_train_progress_format(const s2s_train_progress *p, char *buf, size_t cap);

/* ---- benchmarking ---------------------------------------------------------------------- */

typedef struct s2s_bench_rnn_options {
    s2s_cell cell;      /* LSTM or GRU; default LSTM */
    int T, B, I, H;     /* steps, batch, input size, hidden size; default 100, 64, 512, 512 */
    int layers;         /* default 1 */
    int bidirectional;  /* default 0 */
    int backward;       /* 0: forward only (inference); 1: forward + backward; default 0 */
    int warmup, reps;   /* untimed and timed repetitions; default 3, 20 */
    s2s_rnn_impl impl;  /* default FUSED */
    int cudnn_algo;     /* cuDNN: 0 standard, 1 persist static, 2 persist dynamic, -1 = best of
                           those that run (default) */
    int lanes;          /* fused: concurrent lanes (streams) for the layer wavefront, 1 = none;
                           0 = the device's default (CPU 1, GPU 2), at most 4 */
    int wave_chunk;     /* fused: time steps per wavefront chunk; 0 = the device's default
                           (GPU 10, CPU the whole sequence) */
} s2s_bench_rnn_options;

typedef struct s2s_bench_result {
    double median_ms, min_ms; /* per repetition, timed after a device synchronisation */
    size_t peak_bytes;        /* device allocator's high-water mark (GPU) or VmHWM (CPU) */
    int cudnn_algo;           /* the algorithm measured (cuDNN) or -1 */
    char note[160];           /* why an algorithm was skipped, or "" */
} s2s_bench_result;

S2S_API s2s_bench_rnn_options s2s_bench_rnn_options_default(void);

/* Times a recurrent layer stack on random data on the context's device: forward (and
 * backward with weight gradients when o->backward). Inputs and weights are drawn once from
 * the context seed; only the layer computation is timed. */
S2S_API s2s_status s2s_bench_rnn(s2s_context *ctx, const s2s_bench_rnn_options *o, s2s_bench_result *r);

/* Times C[m,n] = A[m,k] B[k,n] on the context's device (OpenBLAS or cuBLAS, at the context's
 * precision): the ceiling the recurrent layers are measured against. */
S2S_API s2s_status s2s_bench_gemm(s2s_context *ctx, int m, int n, int k, int reps, s2s_bench_result *r);

#ifdef __cplusplus
}
#endif
#endif /* SEQ2SEQ_H */
