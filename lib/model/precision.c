/* precision.c - what decoding precomputes from the weights: their reduced-precision copies
 * (bf16, int8: converted once, used by every decode at that precision) and the target
 * embeddings already multiplied by the decoder's first input weights (Devlin 2017: one row
 * lookup per step instead of a GEMM, the same numbers).
 *
 * The copies live in m->pk_store and are attached to the weights' slots (s2s_rnn_w.pk_*,
 * m->pk_attn_in, pk_attn_out, pk_gen) only between s2s_model_precision_begin and _end, so
 * training and fp32 decoding never see them. Anything that changes the weights calls
 * s2s_model_weights_changed, which drops both; the model's own weights stay fp32, and a saved
 * model is always its fp32 weights. */
#include "model.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS_MAX (S2S_MAX_LAYERS * 7 + 4)
#define EMB_PROJ_MAX_BYTES ((size_t)64 << 20) /* the lookup table's limit: larger vocabularies keep the GEMM */

/* One weight block that decoding multiplies by: where its copy is attached, the block. */
typedef struct slot {
    s2s_packed **at;
    const float *w;
    int n, k, ld, kn;
} slot;

static void add(slot *s, int *n, s2s_packed **at, const float *w, int rows, int k, int ld, int kn)
{
    s[*n] = (slot){at, w, rows, k, ld, kn};
    (*n)++;
}

/* Every block the encoder and the decoder's search step multiply by, in a fixed order. */
static int slots(s2s_model *m, slot *s)
{
    int n = 0, H = m->cfg.hidden, E = m->cfg.embed, V = m->cfg.tgt_vocab;
    for (int l = 0; l < m->cfg.layers; l++)
        for (int d = 0; d < m->dirs; d++) {
            s2s_rnn_w *w = &m->enc[l][d];
            w->pk_col[0] = 0;
            add(s, &n, &w->pk_ih[0], w->w_ih.w, w->G * w->H, w->in, w->in, 0);
            add(s, &n, &w->pk_hh, w->w_hh.w, w->G * w->H, w->H, w->H, 0);
        }
    for (int l = 0; l < m->cfg.layers; l++) {
        s2s_rnn_w *w = &m->dec[l];
        int GH = w->G * w->H, k0 = l == 0 ? E : H;
        w->pk_col[0] = 0;
        add(s, &n, &w->pk_ih[0], w->w_ih.w, GH, k0, w->in, 0);
        if (l == 0 && m->feed) { /* the fed attentional state's columns */
            w->pk_col[1] = E;
            add(s, &n, &w->pk_ih[1], w->w_ih.w + E, GH, H, w->in, 0);
        }
        add(s, &n, &w->pk_hh, w->w_hh.w, GH, H, H, 0);
    }
    if (m->cfg.attention == S2S_ATTN_GENERAL) /* keys = out W_a */
        add(s, &n, &m->pk_attn_in, m->attn_in.w, H, H, H, 1);
    if (m->feed) { /* W_c's two column blocks: the context's and the top layer's */
        add(s, &n, &m->pk_attn_out[0], m->attn_out.w, H, H, 2 * H, 0);
        add(s, &n, &m->pk_attn_out[1], m->attn_out.w + H, H, H, 2 * H, 0);
    }
    add(s, &n, &m->pk_gen, m->gen_w.w, V, H, H, 0);
    return n;
}

static void attach(s2s_model *m, int on)
{
    slot s[SLOTS_MAX];
    int n = slots(m, s);
    for (int i = 0; i < n; i++)
        *s[i].at = on && i < m->pk_count ? m->pk_store[i] : NULL;
}

static void packs_free(s2s_model *m)
{
    attach(m, 0);
    for (int i = 0; i < m->pk_count; i++)
        m->be->ops->packed_free(m->be, m->pk_store[i]);
    free(m->pk_store);
    m->pk_store = NULL;
    m->pk_count = 0;
    m->pk_prec = S2S_PRECISION_FP32;
}

void s2s_model_weights_changed(s2s_model *m)
{
    if (m->pk_count)
        packs_free(m);
    for (int p = 0; p < 4; p++) /* a failed conversion is tried again; a CPU's refusal stays */
        m->pk_refused[p] = m->pk_refused[p] == 2 ? 0 : m->pk_refused[p];
    m->emb_proj = NULL; /* remade in emb_proj_mem when next needed */
}

void s2s_model_precision_free(s2s_model *m)
{
    s2s_model_weights_changed(m);
    if (m->emb_proj_mem)
        m->be->ops->release(m->be, m->emb_proj_mem);
    m->emb_proj_mem = NULL;
}

static const char *prec_name(s2s_precision p)
{
    return p == S2S_PRECISION_BF16 ? "bf16" : p == S2S_PRECISION_INT8 ? "int8" : p == S2S_PRECISION_TF32 ? "tf32"
                                                                                                           : "fp32";
}

/* Converts every slot's block for prec. */
static s2s_status pack_all(s2s_model *m, s2s_precision prec)
{
    slot s[SLOTS_MAX];
    int n = slots(m, s);
    m->pk_store = s2s_host_calloc((size_t)n, sizeof *m->pk_store, "reduced-precision weights");
    if (!m->pk_store)
        return S2S_ERR_OUT_OF_MEMORY;
    m->pk_count = n;
    m->pk_prec = prec;
    for (int i = 0; i < n; i++) {
        s2s_status st = m->be->ops->pack(m->be, s[i].w, s[i].n, s[i].k, s[i].ld, s[i].kn, prec, &m->pk_store[i]);
        if (st != S2S_OK) {
            packs_free(m);
            return st;
        }
    }
    return S2S_OK;
}

/* A backend without packs (the GPU) whose context already multiplies at prec: nothing to convert. */
static int context_runs_at(const s2s_model *m, s2s_precision prec)
{
    return !m->be->ops->pack && m->ctx->opts.precision == prec;
}

/* The packs for prec, or a remembered refusal. Refusals are logged once per precision. */
static s2s_status prepare(s2s_model *m, s2s_precision prec)
{
    if (m->pk_count && m->pk_prec == prec)
        return S2S_OK;
    if (m->pk_refused[prec])
        return S2S_ERR_UNSUPPORTED;
    s2s_backend *be = m->be;
    if (context_runs_at(m, prec)) {
        snprintf(m->pk_what[prec], sizeof m->pk_what[prec], "%s products on %s (the context's precision)",
                 prec_name(prec), be->name);
        return S2S_ERR_UNSUPPORTED;
    }
    char why[320] = "";
    s2s_status st = S2S_ERR_UNSUPPORTED;
    if (!be->ops->pack)
        snprintf(why, sizeof why, "%s has no reduced-precision decoding weights%s", be->name,
                 be->device == S2S_DEVICE_CPU ? " (this build has no oneDNN)" : " (the GPU's GEMM precision is the "
                                                                                "context's)");
    else
        st = be->ops->precision_info(be, prec, why, sizeof why);
    if (st == S2S_OK) {
        if (m->pk_count)
            packs_free(m);
        st = pack_all(m, prec);
        if (st != S2S_OK) {
            snprintf(why, sizeof why, "converting the weights failed: %s", s2s_last_error());
            st = S2S_ERR_OUT_OF_MEMORY; /* remembered until the weights change (2 below) */
        }
    }
    if (st != S2S_OK) {
        snprintf(m->pk_what[prec], sizeof m->pk_what[prec], "fp32: %s", why);
        m->pk_refused[prec] = st == S2S_ERR_OUT_OF_MEMORY ? 2 : 1;
        s2s_log(m->ctx, S2S_LOG_WARN, "%s decoding is not available here, decoding in fp32 instead: %s",
                prec_name(prec), why);
        return S2S_ERR_UNSUPPORTED;
    }
    snprintf(m->pk_what[prec], sizeof m->pk_what[prec], "%s", why);
    s2s_log(m->ctx, S2S_LOG_INFO, "decoding with %s", why);
    return S2S_OK;
}

/* The embedding lookup table: rows bias + tgt_emb W_ih0[:, :E]^T, made by the same fp32 ops
 * the decoder step runs per row (at every precision: the table costs nothing per step, so it
 * keeps fp32's). Not bit for bit the step's numbers: OpenBLAS rounds a row differently with
 * M = 1 than inside a larger M (as a sentence decoded alone differs from one in a batch), so
 * the output is the same to rounding (tests/test_precision.c states the tolerance). */
static s2s_status emb_proj(s2s_model *m)
{
    if (m->emb_proj || m->emb_proj_off)
        return S2S_OK;
    const s2s_rnn_w *w = &m->dec[0];
    int V = m->cfg.tgt_vocab, E = m->cfg.embed, GH = w->G * w->H;
    size_t bytes = sizeof(float) * (size_t)V * GH;
    if (bytes > EMB_PROJ_MAX_BYTES) {
        m->emb_proj_off = 1;
        return S2S_OK;
    }
    s2s_backend *be = m->be;
    if (!m->emb_proj_mem)
        S2S_TRY(be->ops->alloc(be, bytes, (void **)&m->emb_proj_mem));
    float *t = m->emb_proj_mem;
    S2S_TRY(be->ops->bias_rows(be, t, V, GH, GH, w->b_ih.w, w->cell == S2S_CELL_GRU ? NULL : w->b_hh.w));
    S2S_TRY(s2s_linear(be, NULL, V, GH, E, m->tgt_emb.w, E, w->w_ih.w, w->in, 0, 1.0f, t, GH));
    m->emb_proj = t;
    return S2S_OK;
}

s2s_status s2s_model_precision_begin(s2s_model *m, s2s_precision prec)
{
    if (prec != S2S_PRECISION_FP32 && prec != S2S_PRECISION_BF16 && prec != S2S_PRECISION_INT8)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "decoding precision %d: use fp32, bf16 or int8", (int)prec);
    if (prec != S2S_PRECISION_FP32) {
        s2s_status st = prepare(m, prec);
        if (st == S2S_OK)
            attach(m, 1);
        else if (st != S2S_ERR_UNSUPPORTED)
            return st;
    }
    s2s_status st = m->use_emb_proj ? emb_proj(m) : S2S_OK;
    if (st != S2S_OK)
        attach(m, 0);
    return st;
}

void s2s_model_precision_end(s2s_model *m) { attach(m, 0); }

S2S_API s2s_status s2s_model_prepare_decoding(s2s_model *m, s2s_precision want, s2s_precision *used, char *what,
                                              size_t cap)
{
    if (!m)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_model_prepare_decoding: model must not be NULL");
    S2S_TRY(s2s_model_precision_begin(m, want));
    int reduced = want != S2S_PRECISION_FP32 && ((m->pk_count && m->pk_prec == want) || context_runs_at(m, want));
    s2s_model_precision_end(m);
    if (used)
        *used = reduced ? want : S2S_PRECISION_FP32;
    if (what && cap)
        snprintf(what, cap, "%s", want == S2S_PRECISION_FP32 ? "fp32" : m->pk_what[want]);
    return S2S_OK;
}
