/* batch.c - the batch boundary: a caller's s2s_batch (host, batch-major, padded rows) checked
 * row by row and uploaded time-major to the device, for training and decoding alike. */
#include "model.h"
#include "philox.h"
#include <stdlib.h>
#include <string.h>

/* Every row's length in min_len..max_len and every token in 1..vocab-1; *longest gets the
 * longest row. side names the side in messages. */
static s2s_status check_side(const char *side, const int32_t *ids, const int32_t *len, int B, int max_len,
                             int min_len, int vocab, int *longest)
{
    *longest = 0;
    for (int b = 0; b < B; b++) {
        if (len[b] < min_len || len[b] > max_len)
            return S2S_FAIL(S2S_ERR_INVALID_ARG, "batch: %s length of row %d is %d; it must be in %d..%d", side, b,
                            len[b], min_len, max_len);
        for (int i = 0; i < len[b]; i++) {
            int v = ids[(size_t)b * max_len + i];
            if (v < 0 || v >= vocab || v == S2S_PAD_ID)
                return S2S_FAIL(S2S_ERR_INVALID_ARG,
                                "batch: %s token %d of row %d is id %d; ids must be in 1..%d (0 is padding)", side, i,
                                b, v, vocab - 1);
        }
        if (len[b] > *longest)
            *longest = len[b];
    }
    return S2S_OK;
}

s2s_status s2s_batch_check(const s2s_model *m, const s2s_batch *bt, int need_tgt, int *S, int *Tmax)
{
    if (!bt || !bt->src || !bt->src_len || bt->batch < 1 || bt->src_max_len < 1)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "batch: src, src_len must be set, batch >= 1 and src_max_len >= 1");
    if (need_tgt && (!bt->tgt || !bt->tgt_len || bt->tgt_max_len < 0))
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "batch: training and scoring need tgt and tgt_len");
    *Tmax = 0;
    S2S_TRY(check_side("source", bt->src, bt->src_len, bt->batch, bt->src_max_len, 1, m->cfg.src_vocab, S));
    if (need_tgt)
        S2S_TRY(check_side("target", bt->tgt, bt->tgt_len, bt->batch, bt->tgt_max_len, 0, m->cfg.tgt_vocab, Tmax));
    return S2S_OK;
}

int s2s_word_dropped(uint64_t seed, const s2s_word_drop *wd, const s2s_drop_rows *r, int side, int b, int pos)
{
    if (!wd || !(wd->p > 0.0f))
        return 0;
    /* element (pos, b) of a [pos][rows] tensor, one stream per side and step */
    uint64_t e = s2s_drop_index((uint64_t)pos * (uint64_t)r->rows + (uint64_t)b, 1, r->rows, r->rows_global, r->row0);
    uint64_t stream = s2s_dropout_stream(wd->step, side == S2S_WORD_SRC ? SITE_WORD_SRC : SITE_WORD_TGT, 0);
    return s2s_philox_uniform(seed, stream, e) < wd->p;
}

s2s_status s2s_batch_upload(s2s_model *m, const s2s_batch *bt, int need_tgt, const s2s_word_drop *wd,
                            s2s_dev_batch *db)
{
    int B, S, Tm;
    S2S_TRY(s2s_batch_check(m, bt, need_tgt, &S, &Tm));
    B = bt->batch;
    memset(db, 0, sizeof *db);
    db->B = B;
    db->S = S;
    db->T = Tm + 1;
    size_t nsrc = (size_t)S * B, ntgt = need_tgt ? (size_t)db->T * B : 0;
    size_t nhost = nsrc + B + 2 * ntgt;
    int32_t *h = s2s_host_calloc(nhost, sizeof(int32_t), "batch token ids");
    if (!h)
        return S2S_ERR_OUT_OF_MEMORY;
    const s2s_drop_rows *rows = S2S_DROP_ROWS(m, B, 1);
    uint64_t seed = m->ctx->opts.seed;
    /* time-major: row t*B + b */
    for (int b = 0; b < B; b++) {
        for (int s = 0; s < bt->src_len[b]; s++)
            h[(size_t)s * B + b] = s2s_word_dropped(seed, wd, rows, S2S_WORD_SRC, b, s)
                                       ? S2S_UNK_ID
                                       : bt->src[(size_t)b * bt->src_max_len + s];
        h[nsrc + b] = bt->src_len[b];
    }
    int ntok = 0;
    if (need_tgt) {
        int32_t *tin = h + nsrc + B, *tout = tin + ntgt;
        for (int b = 0; b < B; b++) {
            int n = bt->tgt_len[b];
            const int32_t *y = bt->tgt + (size_t)b * bt->tgt_max_len;
            tin[b] = S2S_BOS_ID;
            for (int t = 0; t < n; t++) {
                tin[(size_t)(t + 1) * B + b] = s2s_word_dropped(seed, wd, rows, S2S_WORD_TGT, b, t) ? S2S_UNK_ID : y[t];
                tout[(size_t)t * B + b] = y[t];
            }
            tout[(size_t)n * B + b] = S2S_EOS_ID;
            ntok += n + 1;
        }
    }
    db->ntokens = ntok;
    int32_t *d;
    s2s_status st = s2s_arena_ints(&m->arena, nhost, &d);
    if (st == S2S_OK)
        st = m->be->ops->to_device(m->be, d, h, nhost * sizeof(int32_t));
    free(h);
    S2S_TRY(st);
    db->src = d;
    db->src_len = d + nsrc;
    db->src_len_host = bt->src_len;
    if (need_tgt) {
        db->tgt_in = d + nsrc + B;
        db->tgt_out = db->tgt_in + ntgt;
    }
    return S2S_OK;
}
