/* data.h - tokenized pairs and the batches made of them (host memory). */
#ifndef S2S_DATA_H
#define S2S_DATA_H

#include "internal.h"

/* Pairs as token ids, each side without BOS/EOS. */
typedef struct s2s_tokdata {
    size_t n;                 /* pairs kept */
    size_t *src_off, *tgt_off; /* [n] offsets into ids */
    int32_t *src_len, *tgt_len; /* [n] */
    size_t *corpus_index;     /* [n] the pair's index in the corpus */
    int32_t *ids;
    size_t nids, cap;
    long skipped_long;        /* pairs with a side longer than max_len */
    long skipped_empty;       /* pairs whose source encodes to no token */
    long unk_tokens;          /* unknown pieces met */
} s2s_tokdata;

/* Tokenizes the first `limit` pairs (0: all) of c with the two tokenizers. */
s2s_status s2s_tokdata_build(const s2s_corpus *c, const s2s_tokenizer *src, const s2s_tokenizer *tgt, int max_len,
                             size_t limit, s2s_tokdata *d);
void s2s_tokdata_free(s2s_tokdata *d);

/* An epoch's batches: batch i holds pairs order[start[i] .. start[i] + count[i]). */
typedef struct s2s_batch_plan {
    size_t nbatches;
    size_t *order, *start;
    int *count;
} s2s_batch_plan;

/* Batches of at most batch_tokens target tokens (padding and EOS counted). shuffle = 1: pairs
 * are shuffled with (seed, epoch), sorted by length within pools so that batches are uniform,
 * and the batches shuffled; shuffle = 0: sorted by length (evaluation). Deterministic. */
s2s_status s2s_batch_plan_make(const s2s_tokdata *d, int batch_tokens, uint64_t seed, int epoch, int shuffle,
                               s2s_batch_plan *p);
void s2s_batch_plan_free(s2s_batch_plan *p);

/* Reusable host arrays of one batch, batch-major, and the s2s_batch pointing into them. */
typedef struct s2s_host_batch {
    int32_t *src, *src_len, *tgt, *tgt_len;
    size_t cap_ids, cap_rows;
    s2s_batch b;
    int ntgt_tokens; /* target tokens with EOS */
} s2s_host_batch;

s2s_status s2s_host_batch_fill(const s2s_tokdata *d, const s2s_batch_plan *p, size_t i, s2s_host_batch *hb);
void s2s_host_batch_free(s2s_host_batch *hb);



/* Corpus BLEU in pieces (data-parallel validation): the sums over segments (lengths, clipped
 * matches and totals per order) of n pairs (n may be 0), added across shards, then the score. */
#define S2S_BLEU_STATS 10
s2s_status s2s_bleu_stats(const char *const *hyps, const char *const *refs, size_t n, double sums[S2S_BLEU_STATS]);
void s2s_bleu_from_stats(const double sums[S2S_BLEU_STATS], s2s_bleu *out);

#endif
