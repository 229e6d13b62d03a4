/* make_seeds.c - writes the binary seed files of the fuzz corpora (tests/fuzz/seeds/): tiny model
 * and checkpoint files for fuzz_modelfile, and small safetensors files for fuzz_safetensors.
 * The text seeds (TSV, YAML, DailyDialog) are kept as written by hand.
 *
 *   scripts/fuzz.sh --make-seeds        (builds this against the CPU library and runs it)
 *
 * The files are small on purpose (a few KB): libFuzzer mutates whole inputs, and -max_len caps
 * them. Weights are deterministic (context seed 7). */
#include "safetensors.h"
#include "seq2seq.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check(s2s_status st, const char *what)
{
    if (st != S2S_OK) {
        fprintf(stderr, "make_seeds: %s: %s\n", what, s2s_last_error());
        exit(1);
    }
}

static s2s_model *model(s2s_context *ctx, s2s_cell cell, int layers, int hidden, int bidir, s2s_attention attn,
                        int src_vocab, int tgt_vocab)
{
    s2s_model_config c = s2s_model_config_default();
    c.cell = cell, c.layers = layers, c.hidden = hidden, c.embed = 2, c.bidirectional = bidir;
    c.attention = attn, c.dropout = 0.1f, c.src_vocab = src_vocab, c.tgt_vocab = tgt_vocab;
    s2s_model *m = NULL;
    check(s2s_model_create(ctx, &c, &m), "model");
    return m;
}

/* ---- a tiny SentencePiece model, written by hand -------------------------------------------
 * A trained model carries nmt_nfkc's 240 KB normalisation table; this one uses the "identity"
 * normaliser and has nine pieces, so a model file holding it stays a few KB. Protobuf fields
 * (sentencepiece_model.proto): ModelProto 1 pieces {1 piece, 2 score, 3 type}, 2 trainer_spec
 * {3 model_type, 4 vocab_size}, 3 normalizer_spec {1 name, 3 add_dummy_prefix,
 * 4 remove_extra_whitespaces, 5 escape_whitespaces}. */
typedef struct pb {
    uint8_t b[512];
    size_t n;
} pb;

static void pb_varint(pb *p, uint64_t v)
{
    do {
        p->b[p->n++] = (uint8_t)((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
        v >>= 7;
    } while (v);
}

static void pb_bytes(pb *p, int field, const void *data, size_t len)
{
    pb_varint(p, (uint64_t)field << 3 | 2);
    pb_varint(p, len);
    memcpy(p->b + p->n, data, len);
    p->n += len;
}

static void pb_int(pb *p, int field, uint64_t v)
{
    pb_varint(p, (uint64_t)field << 3);
    pb_varint(p, v);
}

static void pb_float(pb *p, int field, float v)
{
    pb_varint(p, (uint64_t)field << 3 | 5);
    memcpy(p->b + p->n, &v, 4); /* little-endian host */
    p->n += 4;
}

/* npieces: 9, or 10 with a piece "d" (a second, different vocabulary). */
static s2s_tokenizer *tokenizer(size_t npieces)
{
    enum { NORMAL = 1, UNKNOWN = 2, CONTROL = 3 };
    static const struct { const char *s; float score; int type; } pieces[] = {
        {"<pad>", 0, CONTROL}, {"<s>", 0, CONTROL},   {"</s>", 0, CONTROL},
        {"<unk>", 0, UNKNOWN}, {"\xe2\x96\x81", -1, NORMAL}, {"a", -2, NORMAL},
        {"b", -2, NORMAL},     {"\xe2\x96\x81" "a", -1.5f, NORMAL}, {"c", -3, NORMAL},
        {"d", -3, NORMAL},
    };
    pb m = {{0}, 0}, x;
    for (size_t i = 0; i < npieces; i++) {
        x.n = 0;
        pb_bytes(&x, 1, pieces[i].s, strlen(pieces[i].s));
        pb_float(&x, 2, pieces[i].score);
        pb_int(&x, 3, (uint64_t)pieces[i].type);
        pb_bytes(&m, 1, x.b, x.n);
    }
    x.n = 0;
    pb_int(&x, 3, 1); /* UNIGRAM */
    pb_int(&x, 4, npieces);
    pb_bytes(&m, 2, x.b, x.n);
    x.n = 0;
    pb_bytes(&x, 1, "identity", 8);
    pb_int(&x, 3, 1), pb_int(&x, 4, 1), pb_int(&x, 5, 1);
    pb_bytes(&m, 3, x.b, x.n);
    s2s_tokenizer *t = NULL;
    check(s2s_tokenizer_load(m.b, m.n, &t), "hand-written tokenizer");
    return t;
}

static void path(char *buf, size_t cap, const char *dir, const char *sub, const char *name)
{
    snprintf(buf, cap, "%s/%s/%s", dir, sub, name);
}

static void model_seeds(const char *dir, s2s_context *ctx)
{
    char p[512];
    s2s_provenance pv = {7, 3, ""};
    s2s_model *a = model(ctx, S2S_CELL_LSTM, 1, 2, 0, S2S_ATTN_GENERAL, 5, 5);
    path(p, sizeof p, dir, "modelfile", "lstm_general.safetensors");
    check(s2s_model_save(a, NULL, NULL, &pv, p), p);

    s2s_tokenizer *t = tokenizer(9), *u = tokenizer(10);
    s2s_model *b = model(ctx, S2S_CELL_GRU, 1, 2, 1, S2S_ATTN_DOT, 9, 9);
    path(p, sizeof p, dir, "modelfile", "gru_bidir_shared_tokenizer.safetensors");
    check(s2s_model_save(b, t, t, NULL, p), p);
    s2s_model *d = model(ctx, S2S_CELL_LSTM, 1, 2, 0, S2S_ATTN_NONE, 9, 10);
    path(p, sizeof p, dir, "modelfile", "lstm_two_tokenizers.safetensors");
    check(s2s_model_save(d, t, u, &pv, p), p);
    s2s_model_free(d);
    s2s_tokenizer_free(u);

    s2s_model *c = model(ctx, S2S_CELL_RNN_TANH, 2, 2, 0, S2S_ATTN_NONE, 5, 6);
    s2s_optimizer *opt = NULL;
    s2s_optimizer_options oo = s2s_optimizer_options_default();
    check(s2s_optimizer_create(c, &oo, &opt), "optimizer");
    path(p, sizeof p, dir, "modelfile", "rnn_checkpoint.safetensors");
    check(s2s_checkpoint_save(p, c, opt, NULL, NULL, &pv, "state", 5), p);
    path(p, sizeof p, dir, "safetensors", "checkpoint.safetensors");
    check(s2s_checkpoint_save(p, c, opt, NULL, NULL, &pv, "state", 5), p);
    s2s_optimizer_free(opt);
    s2s_model_free(c);
    s2s_model_free(b);
    s2s_model_free(a);
    s2s_tokenizer_free(t);
}

/* Plain safetensors files: every dtype, a scalar, empty tensors, metadata only, nothing. */
static void safetensors_seeds(const char *dir)
{
    char p[512];
    static const uint8_t bytes[64] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    s2s_st_kv meta[2] = {{"format", "pt"}, {"note", "seed"}};
    s2s_st_out t[S2S_ST_DTYPE_COUNT + 2];
    int n = 0;
    for (int d = 0; d < S2S_ST_DTYPE_COUNT; d++) {
        memset(&t[n], 0, sizeof t[n]);
        t[n].name = s2s_st_dtype_name((s2s_st_dtype)d);
        t[n].dtype = (s2s_st_dtype)d;
        t[n].ndim = 2, t[n].shape[0] = 1, t[n].shape[1] = 2;
        t[n++].data = bytes;
    }
    memset(&t[n], 0, sizeof t[n]);
    t[n].name = "scalar", t[n].dtype = S2S_ST_F32, t[n].ndim = 0, t[n++].data = bytes;
    memset(&t[n], 0, sizeof t[n]);
    t[n].name = "empty", t[n].dtype = S2S_ST_F32, t[n].ndim = 3, t[n].shape[0] = 2, t[n].shape[1] = 0;
    t[n].shape[2] = 4, t[n++].data = NULL;
    path(p, sizeof p, dir, "safetensors", "dtypes.safetensors");
    check(s2s_st_write(p, meta, 2, t, n), p);
    path(p, sizeof p, dir, "safetensors", "metadata_only.safetensors");
    check(s2s_st_write(p, meta, 2, NULL, 0), p);
    path(p, sizeof p, dir, "safetensors", "nothing.safetensors");
    check(s2s_st_write(p, NULL, 0, NULL, 0), p);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds SEED_DIR (tests/fuzz/seeds)\n");
        return 2;
    }
    s2s_context_options o = s2s_context_options_default();
    o.device = S2S_DEVICE_CPU, o.threads = 1, o.seed = 7;
    s2s_context *ctx = NULL;
    check(s2s_context_create(&o, &ctx), "context");
    model_seeds(argv[1], ctx);
    safetensors_seeds(argv[1]);
    s2s_context_free(ctx);
    return 0;
}
