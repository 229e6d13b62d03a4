/* search.h - one sentence's search on the host: its live hypotheses (K beams, or one for greedy
 * decoding and sampling), the finished ones, and the choice of its next tokens from a decoder
 * step's log-probabilities. decode.c runs one per sentence of a batch, the serving engine one
 * per request; both get the same hypotheses from the same rows. */
#ifndef S2S_SEARCH_H
#define S2S_SEARCH_H

#include "internal.h"

typedef struct s2s_hyp {
    int32_t *tok, *pos; /* [max_len]: tokens, and each one's most attended source position */
    float *att;         /* [max_len, S] attention rows, when asked for; else NULL */
    int len;
    double logp;
} s2s_hyp;

typedef struct s2s_search {
    s2s_decode_options o; /* the sentence's options (a copy) */
    int K;                /* rows: beam_size for beam search, else 1 */
    int S;                /* positions per attention row (the padded source length) */
    int V;                /* target vocabulary */
    int key;              /* sampling draws are keyed by (seed, key, step) */
    int src_len, max_len; /* the source's tokens; the longest hypothesis */
    int t;                /* steps chosen so far */
    int done, nfin;
    s2s_hyp *live, *next; /* [K] */
    s2s_hyp *fin;         /* [K]: the best finished, kept as copies */
    float *fin_score;     /* [K]: their length-normalised scores */
    int32_t *banned;      /* [max_len]: a row's tokens that n-gram blocking refuses (scratch) */
    void *pool;           /* every array above */
} s2s_search;

/* One step's rows of this sentence (host memory): the K rows' log-probabilities, whole (lp
 * [K, V]) or each row's M best, largest first (top_v, top_i [K, M]; M = 0: lp is used); each
 * row's most attended source position pos [K]; the attention rows alpha [K, S] (may be NULL:
 * zeros). */
typedef struct s2s_step_rows {
    const float *lp;
    const float *top_v;
    const int32_t *top_i;
    int M;
    const int32_t *pos;
    const float *alpha;
} s2s_step_rows;

/* Sets up the search of one sentence of src_len tokens with options o (checked by the caller),
 * attention rows of S positions, V target tokens and sampling key `key`. */
s2s_status s2s_search_init(s2s_search *s, const s2s_decode_options *o, int src_len, int S, int V, int key);
void s2s_search_free(s2s_search *s);
/* The best tokens per row that the device must send for a step (0: every token): beam search
 * without n-gram blocking needs 2K + 3 (the 2K it keeps are among them even when PAD, BOS and
 * EOS, the only tokens it may refuse, are too), greedy decoding 5 (K = 1); sampling every token. */
int s2s_search_top_m(const s2s_decode_options *o, int V);
/* Host scratch a step needs, in bytes. */
size_t s2s_search_scratch_bytes(int V, int K);
/* Chooses the sentence's next step: tok [K] gets the token each row is fed next, parent [K] the
 * row (0..K-1) whose decoder state each row continues. Returns 1 when the sentence is done (its
 * rows then feed EOS from themselves, and later calls change nothing). */
int s2s_search_step(s2s_search *s, const s2s_step_rows *r, int32_t *tok, int32_t *parent, void *scratch);
/* The nbest hypotheses (o.nbest for beam search, else 1), best first (live beams fill up what
 * finished ones do not), into out[0..nbest) as the public struct (arrays malloc'd). */
s2s_status s2s_search_collect(s2s_search *s, s2s_hypothesis *out);
/* The hypotheses collect gives. */
static inline int s2s_search_nbest(const s2s_search *s) { return s->o.mode == S2S_DECODE_BEAM ? s->o.nbest : 1; }

#endif
