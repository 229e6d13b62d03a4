/* modelfile.c - model files and training checkpoints (public API: seq2seq.h, "model files").
 *
 * One safetensors file (safetensors.h). Tensors, in this order:
 *   every parameter, F32, under its PyTorch name and shape ([n] for biases, [rows, cols]),
 *   checkpoints only: "optim.m.NAME" (Adam's first moment or SGD's momentum buffer) and
 *   "optim.v.NAME" (Adam's second moment) for every parameter, F32,
 *   "tokenizer.src", "tokenizer.tgt" (U8, serialised SentencePiece models; one tensor
 *   "tokenizer.src" with metadata tokenizer_shared = "1" when both sides share it),
 *   checkpoints only: "trainer.state" (U8, the caller's opaque blob).
 * The U8 tensors come last so that every F32 tensor starts 4-byte aligned in the file.
 * __metadata__ (all strings): format ("libseq2seq-model" | "libseq2seq-checkpoint"), config
 * (JSON object), version, seed, step, data_sha256, crc32 (JSON object: tensor name -> 8 hex
 * digits, CRC-32 of its bytes), and for checkpoints optim_type ("adam" | "sgd"), optim_step.
 *
 * Loading checks the whole file (structure, CRCs, finiteness, config, every tensor's presence,
 * dtype and shape) before a single weight reaches the model, so a bad file never leaves a
 * half-loaded model behind. */
#include "model.h"
#include "safetensors.h"
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define FORMAT_MODEL "libseq2seq-model"
#define FORMAT_CKPT "libseq2seq-checkpoint"
#define MAX_TENSORS (3 * S2S_MAX_PARAMS + 3)
#define MAX_META 12
#define MOMENT_NAME (S2S_PARAM_NAME + 16)

static const char *const cell_names[] = {"lstm", "gru", "rnn_tanh"};
static const char *const attn_names[] = {"none", "dot", "general"};
static const char *const moment_prefix[2] = {"optim.m.", "optim.v."};

static uint32_t tensor_crc(const void *data, size_t bytes)
{
    return (uint32_t)crc32_z(crc32_z(0L, Z_NULL, 0), data, bytes);
}

/* Moment buffers an optimizer keeps: Adam m and v, SGD with momentum m, plain SGD none. */
static int moment_count(const s2s_optimizer *opt) { return opt->v ? 2 : opt->m ? 1 : 0; }

/* ---- config as JSON ------------------------------------------------------------------------- */

/* Adds a float as the shortest decimal that reads back as the same float ("0.1", not
 * "0.100000001490116"), so the stored config is readable and exact. */
static cJSON *add_float(cJSON *o, const char *key, float v)
{
    char buf[32];
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)v);
        if ((float)strtod(buf, NULL) == v)
            break;
    }
    return cJSON_AddNumberToObject(o, key, strtod(buf, NULL));
}

static const char *const tie_names[3] = {"none", "decoder", "all"};

static char *config_to_json(const s2s_model_config *c)
{
    cJSON *o = cJSON_CreateObject();
    int ok = o && cJSON_AddStringToObject(o, "cell", cell_names[c->cell]) &&
             cJSON_AddNumberToObject(o, "layers", c->layers) && cJSON_AddNumberToObject(o, "hidden", c->hidden) &&
             cJSON_AddNumberToObject(o, "embed", c->embed) &&
             cJSON_AddNumberToObject(o, "bidirectional", c->bidirectional) &&
             cJSON_AddStringToObject(o, "attention", attn_names[c->attention]) && add_float(o, "dropout", c->dropout) &&
             cJSON_AddNumberToObject(o, "src_vocab", c->src_vocab) &&
             cJSON_AddNumberToObject(o, "tgt_vocab", c->tgt_vocab) &&
             /* written only when on, so that untied models stay readable by older versions */
             (!c->tie_embeddings || cJSON_AddStringToObject(o, "tie_embeddings", tie_names[c->tie_embeddings]));
    char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

static int name_index(const char *const *names, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

/* One config field: a whole number in [lo, hi], or one of names (then *out is its index). */
static s2s_status config_field(const char *path, const cJSON *o, const char *key, const char *const *names, int nnames,
                               int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (names) {
        int i = cJSON_IsString(v) ? name_index(names, nnames, v->valuestring) : -1;
        if (i < 0)
            return S2S_FAIL(S2S_ERR_FORMAT, "%s: config field \"%s\" is missing or not one of the known names "
                            "(e.g. \"%s\")", path, key, names[0]);
        *out = i;
        return S2S_OK;
    }
    if (!cJSON_IsNumber(v) || floor(v->valuedouble) != v->valuedouble || fabs(v->valuedouble) > 1e9)
        return S2S_FAIL(S2S_ERR_FORMAT, "%s: config field \"%s\" is missing or not an integer", path, key);
    *out = (int)v->valuedouble;
    return S2S_OK;
}

static s2s_status config_check_keys(const char *path, const cJSON *o)
{
    static const char *const keys[] = {"cell",      "layers",  "hidden",    "embed",     "bidirectional",
                                       "attention", "dropout", "src_vocab", "tgt_vocab", "tie_embeddings"};
    const cJSON *kv;
    cJSON_ArrayForEach(kv, o) {
        if (name_index(keys, 10, kv->string) < 0)
            return S2S_FAIL(S2S_ERR_FORMAT, "%s: config has an unknown field \"%s\" (written by a newer libseq2seq?)",
                            path, kv->string);
    }
    return S2S_OK;
}

/* Parses the "config" metadata. Ranges are left to s2s_model_create's checks. */
static s2s_status config_parse(const s2s_st_file *f, s2s_model_config *c)
{
    const char *text = s2s_st_meta(f, "config");
    if (!text)
        return S2S_FAIL(S2S_ERR_FORMAT, "%s: metadata has no \"config\": not a libseq2seq model file", f->path);
    cJSON *o = cJSON_Parse(text);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return S2S_FAIL(S2S_ERR_FORMAT, "%s: metadata \"config\" is not a valid JSON object: the file is corrupt",
                        f->path);
    }
    int cell = 0, attn = 0, tie = 0;
    *c = s2s_model_config_default();
    s2s_status st = config_check_keys(f->path, o);
    if (st == S2S_OK)
        st = config_field(f->path, o, "cell", cell_names, 3, &cell);
    if (st == S2S_OK)
        st = config_field(f->path, o, "attention", attn_names, 3, &attn);
    if (st == S2S_OK && cJSON_GetObjectItemCaseSensitive(o, "tie_embeddings")) /* absent: none */
        st = config_field(f->path, o, "tie_embeddings", tie_names, 3, &tie);
    const char *ints[] = {"layers", "hidden", "embed", "bidirectional", "src_vocab", "tgt_vocab"};
    int *dst[] = {&c->layers, &c->hidden, &c->embed, &c->bidirectional, &c->src_vocab, &c->tgt_vocab};
    for (int i = 0; i < 6 && st == S2S_OK; i++)
        st = config_field(f->path, o, ints[i], NULL, 0, dst[i]);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "dropout");
    if (st == S2S_OK && !cJSON_IsNumber(p))
        st = S2S_FAIL(S2S_ERR_FORMAT, "%s: config field \"dropout\" is missing or not a number", f->path);
    if (st == S2S_OK) {
        c->cell = (s2s_cell)cell;
        c->attention = (s2s_attention)attn;
        c->tie_embeddings = (s2s_tie)tie;
        c->dropout = (float)p->valuedouble;
    }
    cJSON_Delete(o);
    return st;
}

/* ---- metadata values -------------------------------------------------------------------- */

/* A decimal uint64 metadata value; absent means 0 (files from other writers). */
static s2s_status meta_u64(const s2s_st_file *f, const char *key, uint64_t *out)
{
    const char *s = s2s_st_meta(f, key);
    *out = 0;
    if (!s)
        return S2S_OK;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *s == '-' || *end || errno)
        return S2S_FAIL(S2S_ERR_FORMAT, "%s: metadata \"%s\" = \"%.40s\" is not a decimal integer", f->path, key, s);
    *out = (uint64_t)v;
    return S2S_OK;
}

static s2s_status provenance_parse(const s2s_st_file *f, s2s_provenance *p)
{
    memset(p, 0, sizeof *p);
    S2S_TRY(meta_u64(f, "seed", &p->seed));
    S2S_TRY(meta_u64(f, "step", &p->step));
    const char *h = s2s_st_meta(f, "data_sha256");
    if (h && *h && (strlen(h) != 64 || strspn(h, "0123456789abcdef") != 64))
        return S2S_FAIL(S2S_ERR_FORMAT, "%s: metadata \"data_sha256\" is not 64 lowercase hex digits", f->path);
    snprintf(p->data_sha256, sizeof p->data_sha256, "%s", h ? h : "");
    return S2S_OK;
}

/* ---- checks on a file read into memory -------------------------------------------------- */

/* 0: the CRC matches, 1: it does not, 2: the table has no valid entry for t. */
static int crc_state(const cJSON *table, const s2s_st_tensor *t, uint32_t *actual)
{
    *actual = tensor_crc(t->data, t->end - t->begin);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(table, t->name);
    char *end = NULL;
    if (!cJSON_IsString(e) || strlen(e->valuestring) != 8)
        return 2;
    unsigned long want = strtoul(e->valuestring, &end, 16);
    if (*end)
        return 2;
    return (uint32_t)want == *actual ? 0 : 1;
}

static cJSON *crc_table(const s2s_st_file *f)
{
    const char *text = s2s_st_meta(f, "crc32");
    cJSON *table = text ? cJSON_Parse(text) : NULL;
    if (!cJSON_IsObject(table)) {
        cJSON_Delete(table);
        return NULL;
    }
    return table;
}

static s2s_status check_crcs(const s2s_st_file *f)
{
    cJSON *table = crc_table(f);
    if (!table)
        return S2S_FAIL(S2S_ERR_FORMAT, "%s: metadata \"crc32\" is missing or not a JSON object: not a libseq2seq "
                        "file, or a corrupt one", f->path);
    s2s_status st = S2S_OK;
    for (int i = 0; i < f->count && st == S2S_OK; i++) {
        uint32_t got;
        int s = crc_state(table, &f->t[i], &got);
        if (s == 2)
            st = S2S_FAIL(S2S_ERR_FORMAT, "%s: tensor '%s' has no CRC32 entry in the metadata: the file is corrupt",
                          f->path, f->t[i].name);
        else if (s == 1)
            st = S2S_FAIL(S2S_ERR_FORMAT, "%s: tensor '%s': CRC32 of its bytes is %08" PRIx32 ", the header says %s: "
                          "the file is corrupt (copy it again or save a new one)", f->path, f->t[i].name, got,
                          cJSON_GetObjectItemCaseSensitive(table, f->t[i].name)->valuestring);
    }
    cJSON_Delete(table);
    return st;
}

static s2s_status check_finite(const s2s_st_file *f)
{
    for (int i = 0; i < f->count; i++) {
        const s2s_st_tensor *t = &f->t[i];
        if (t->dtype != S2S_ST_F32)
            continue;
        for (size_t e = 0; e < t->numel; e++) {
            float v;
            memcpy(&v, t->data + 4 * e, 4); /* tensor bytes need not be aligned */
            if (!isfinite(v))
                return S2S_FAIL(S2S_ERR_NUMERIC, "%s: tensor '%s' element %zu is %g: the stored weights are not finite "
                                "(did training diverge before the save?)", f->path, t->name, e, (double)v);
        }
    }
    return S2S_OK;
}

static void shape_text(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%" PRId64, d ? ", " : "", shape[d]);
    if (n < cap)
        snprintf(buf + n, cap - n, "]");
}

/* The file shape of parameter i: [n] for 1-D tensors, [rows, cols] for 2-D ones. */
static int param_shape(const s2s_model *m, int i, int64_t *shape)
{
    if (m->params.t[i].ndim == 1) {
        shape[0] = (int64_t)m->params.t[i].numel;
        return 1;
    }
    shape[0] = m->params.t[i].shape[0];
    shape[1] = m->params.t[i].shape[1];
    return 2;
}

/* The tensor prefix + name of parameter i must be present, F32, and of the parameter's shape. */
static s2s_status check_param(const s2s_st_file *f, const s2s_model *m, int i, const char *prefix)
{
    char name[MOMENT_NAME], have[96], want[96];
    snprintf(name, sizeof name, "%s%s", prefix, m->params.t[i].name);
    const s2s_st_tensor *t = s2s_st_find(f, name);
    int64_t shape[2];
    int nd = param_shape(m, i, shape);
    shape_text(want, sizeof want, nd, shape);
    if (!t)
        return S2S_FAIL(S2S_ERR_FORMAT, "%s: tensor '%s' %s is missing", f->path, name, want);
    if (t->dtype != S2S_ST_F32)
        return S2S_FAIL(S2S_ERR_FORMAT, "%s: tensor '%s' has dtype %s; expected F32", f->path, name,
                        s2s_st_dtype_name(t->dtype));
    int same = t->ndim == nd;
    for (int d = 0; same && d < nd; d++)
        same = t->shape[d] == shape[d];
    shape_text(have, sizeof have, t->ndim, t->shape);
    if (!same)
        return S2S_FAIL(S2S_ERR_FORMAT, "%s: tensor '%s' has shape %s; the stored config expects %s", f->path, name,
                        have, want);
    return S2S_OK;
}

/* A U8 tensor of one dimension, or absent (*t = NULL). */
static s2s_status find_bytes(const s2s_st_file *f, const char *name, const s2s_st_tensor **t)
{
    *t = s2s_st_find(f, name);
    if (*t && ((*t)->dtype != S2S_ST_U8 || (*t)->ndim != 1))
        return S2S_FAIL(S2S_ERR_FORMAT, "%s: tensor '%s' must be U8 of one dimension (a byte string)", f->path, name);
    return S2S_OK;
}

/* Whether name is a tensor this file may hold: a parameter, a tokenizer, or (checkpoints) a
 * moment of a parameter or the trainer state. */
static int known_tensor(const s2s_model *m, const char *name, int checkpoint)
{
    if (s2s_params_find(&m->params, name) >= 0 || !strcmp(name, "tokenizer.src") || !strcmp(name, "tokenizer.tgt"))
        return 1;
    if (!checkpoint)
        return 0;
    for (int k = 0; k < 2; k++) {
        size_t n = strlen(moment_prefix[k]);
        if (!strncmp(name, moment_prefix[k], n) && s2s_params_find(&m->params, name + n) >= 0)
            return 1;
    }
    return !strcmp(name, "trainer.state");
}

/* Every parameter (and nmom moments of each) present with its shape, nothing unknown. */
static s2s_status check_tensors(const s2s_st_file *f, const s2s_model *m, int checkpoint, int nmom)
{
    for (int i = 0; i < m->params.count; i++) {
        S2S_TRY(check_param(f, m, i, ""));
        for (int k = 0; k < nmom; k++)
            S2S_TRY(check_param(f, m, i, moment_prefix[k]));
    }
    for (int i = 0; i < f->count; i++)
        if (!known_tensor(m, f->t[i].name, checkpoint))
            return S2S_FAIL(S2S_ERR_FORMAT, "%s: unknown tensor '%s': this config (%d parameter tensors) has no place "
                            "for it", f->path, f->t[i].name, m->params.count);
    const s2s_st_tensor *t;
    S2S_TRY(find_bytes(f, "tokenizer.src", &t));
    return find_bytes(f, "tokenizer.tgt", &t);
}

/* Opens path and checks what does not need a model: format, CRCs, finiteness, config syntax,
 * provenance. */
static s2s_status open_checked(const char *path, s2s_st_file *f, int *checkpoint, s2s_model_config *cfg,
                               s2s_provenance *prov)
{
    S2S_TRY(s2s_st_open(path, f));
    const char *format = s2s_st_meta(f, "format");
    if (!format || (strcmp(format, FORMAT_MODEL) && strcmp(format, FORMAT_CKPT)))
        return S2S_FAIL(S2S_ERR_FORMAT, "%s: metadata \"format\" is \"%.40s\", not \"" FORMAT_MODEL "\" or \""
                        FORMAT_CKPT "\": not a libseq2seq file", path, format ? format : "(missing)");
    *checkpoint = strcmp(format, FORMAT_CKPT) == 0;
    S2S_TRY(check_crcs(f));
    S2S_TRY(check_finite(f));
    S2S_TRY(config_parse(f, cfg));
    return provenance_parse(f, prov);
}

/* Copies the F32 tensors prefix + NAME into block (laid out like the model's parameters). */
static s2s_status upload(const s2s_st_file *f, s2s_model *m, float *block, const char *prefix)
{
    for (int i = 0; i < m->params.count; i++) {
        char name[MOMENT_NAME];
        snprintf(name, sizeof name, "%s%s", prefix, m->params.t[i].name);
        const s2s_st_tensor *t = s2s_st_find(f, name);
        S2S_TRY(m->be->ops->to_device(m->be, block + m->params.t[i].offset, t->data, t->end - t->begin));
    }
    return S2S_OK;
}

/* ---- loading a model -------------------------------------------------------------------- */

static s2s_status load_tokenizer(const s2s_st_file *f, const s2s_st_tensor *t, s2s_tokenizer **out)
{
    if (s2s_tokenizer_load(t->data, t->numel, out) == S2S_OK)
        return S2S_OK;
    return S2S_FAIL_WRAP(S2S_ERR_FORMAT, "%s: tensor '%s' is not a usable tokenizer", f->path, t->name);
}

/* The tokenizers wanted (src or tgt may be NULL). A shared vocabulary comes back as two
 * separate objects, so the caller frees each exactly once whether or not it was shared. */
static s2s_status load_tokenizers(const s2s_st_file *f, s2s_tokenizer **src, s2s_tokenizer **tgt)
{
    const s2s_st_tensor *ts, *tt;
    S2S_TRY(find_bytes(f, "tokenizer.src", &ts));
    S2S_TRY(find_bytes(f, "tokenizer.tgt", &tt));
    const char *shared = s2s_st_meta(f, "tokenizer_shared");
    if (!tt && shared && strcmp(shared, "1") == 0)
        tt = ts;
    if (src && ts)
        S2S_TRY(load_tokenizer(f, ts, src));
    if (tgt && tt) {
        s2s_status st = load_tokenizer(f, tt, tgt);
        if (st != S2S_OK && src) {
            s2s_tokenizer_free(*src);
            *src = NULL;
        }
        return st;
    }
    return S2S_OK;
}

/* A lower bound on the floats a config needs, from tensors every model has (both embeddings
 * and the generator, one tensor fewer per tie, and per decoder layer a recurrent weight of at
 * least H x H), against the F32 values the file holds: checked before a model of that config is allocated, so that a corrupt
 * config cannot make a small file allocate (and initialise) gigabytes. In double: exact far
 * beyond any file size, and no overflow for the unchecked ranges s2s_model_create refuses. */
static s2s_status check_config_fits(const s2s_st_file *f, const s2s_model_config *c)
{
    if (c->layers < 1 || c->hidden < 1 || c->embed < 1 || c->src_vocab < 1 || c->tgt_vocab < 1)
        return S2S_OK; /* s2s_model_create refuses it, with the reason */
    double H = c->hidden, E = c->embed, S = c->src_vocab, T = c->tgt_vocab;
    double tied = c->tie_embeddings == S2S_TIE_ALL ? 2 * T * E : c->tie_embeddings ? T * E : 0.0; /* H = E */
    double need = (S + T) * E + T * (H + 1) + c->layers * H * H - tied, have = 0;
    for (int i = 0; i < f->count; i++)
        if (f->t[i].dtype == S2S_ST_F32)
            have += (double)f->t[i].numel;
    if (have < need)
        return S2S_FAIL(S2S_ERR_FORMAT, "%s: the stored config (hidden %d, embed %d, vocabularies %d and %d, %d "
                        "layers) needs at least %.0f float parameters, but the file holds %.0f: the file is corrupt",
                        f->path, c->hidden, c->embed, c->src_vocab, c->tgt_vocab, c->layers, need, have);
    return S2S_OK;
}

/* s2s_model_create validates the config; a config it refuses makes the file malformed. */
static s2s_status create_for_file(s2s_context *ctx, const s2s_st_file *f, const s2s_model_config *cfg,
                                  s2s_model **m)
{
    s2s_status st = s2s_model_create_as(ctx, cfg, 0, m); /* every tensor comes from the file (check_tensors) */
    if (st != S2S_ERR_INVALID_ARG)
        return st;
    return S2S_FAIL_WRAP(S2S_ERR_FORMAT, "%s: the stored config is invalid", f->path);
}

S2S_API s2s_status s2s_model_load(s2s_context *ctx, const char *path, s2s_model **model, s2s_tokenizer **src_tok,
                                  s2s_tokenizer **tgt_tok, s2s_provenance *prov)
{
    if (!ctx || !path || !model)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_model_load: ctx, path and model must not be NULL");
    *model = NULL;
    if (src_tok)
        *src_tok = NULL;
    if (tgt_tok)
        *tgt_tok = NULL;
    s2s_st_file f;
    s2s_model *m = NULL;
    s2s_tokenizer *ts = NULL, *tt = NULL;
    s2s_model_config cfg;
    s2s_provenance pv;
    int ckpt = 0;
    s2s_status st = open_checked(path, &f, &ckpt, &cfg, &pv);
    if (st == S2S_OK)
        st = check_config_fits(&f, &cfg);
    if (st == S2S_OK)
        st = create_for_file(ctx, &f, &cfg, &m);
    if (st == S2S_OK)
        st = check_tensors(&f, m, ckpt, 0);
    if (st == S2S_OK)
        st = load_tokenizers(&f, src_tok ? &ts : NULL, tgt_tok ? &tt : NULL);
    /* Only now, with everything checked, do weights reach the model. */
    if (st == S2S_OK)
        st = upload(&f, m, m->params.data, "");
    s2s_st_close(&f);
    if (st != S2S_OK) {
        s2s_tokenizer_free(ts);
        s2s_tokenizer_free(tt);
        s2s_model_free(m);
        return st;
    }
    *model = m;
    if (src_tok)
        *src_tok = ts;
    if (tgt_tok)
        *tgt_tok = tt;
    if (prov)
        *prov = pv;
    return S2S_OK;
}

/* ---- saving: a plan of tensors and metadata, then one atomic write ------------------------ */

typedef struct mf_plan {
    s2s_st_out t[MAX_TENSORS];
    int n;
    char names[2 * S2S_MAX_PARAMS][MOMENT_NAME]; /* "optim.m.NAME", "optim.v.NAME" */
    int nnames;
    float *host[3];   /* host copies: weights, first moment, second moment */
    char *config, *crc;
    char num[3][24];  /* seed, step, optim_step as decimal text */
    char sha[65];
    s2s_st_kv meta[MAX_META];
    int nmeta;
} mf_plan;

static void plan_free(mf_plan *p)
{
    for (int i = 0; i < 3; i++)
        free(p->host[i]);
    cJSON_free(p->config);
    cJSON_free(p->crc);
    free(p);
}

static void plan_meta(mf_plan *p, const char *key, const char *value)
{
    p->meta[p->nmeta].key = key;
    p->meta[p->nmeta++].value = value;
}

/* One host copy of a whole block laid out like the parameters (one transfer; the alignment
 * gaps come along and are not written). */
static s2s_status download(const s2s_model *m, const float *block, float **out)
{
    size_t bytes = m->params.total * sizeof(float);
    *out = s2s_host_alloc(bytes, "a host copy of the parameters");
    if (!*out)
        return S2S_ERR_OUT_OF_MEMORY;
    return m->be->ops->to_host(m->be, *out, block, bytes);
}

static void plan_params(mf_plan *p, const s2s_model *m, const float *host, const char *prefix)
{
    for (int i = 0; i < m->params.count; i++) {
        s2s_st_out *o = &p->t[p->n++];
        o->name = m->params.t[i].name;
        if (*prefix) {
            snprintf(p->names[p->nnames], MOMENT_NAME, "%s%s", prefix, m->params.t[i].name);
            o->name = p->names[p->nnames++];
        }
        o->dtype = S2S_ST_F32;
        o->ndim = param_shape(m, i, o->shape);
        o->data = host + m->params.t[i].offset;
    }
}

static void plan_bytes(mf_plan *p, const char *name, const void *data, size_t len)
{
    s2s_st_out *o = &p->t[p->n++];
    memset(o, 0, sizeof *o);
    o->name = name;
    o->dtype = S2S_ST_U8;
    o->ndim = 1;
    o->shape[0] = (int64_t)len;
    o->data = data;
}

static s2s_status plan_tokenizers(mf_plan *p, const s2s_tokenizer *src, const s2s_tokenizer *tgt)
{
    const void *sb = NULL, *tb = NULL;
    size_t sl = 0, tl = 0;
    if (src)
        S2S_TRY(s2s_tokenizer_serialize(src, &sb, &sl));
    if (tgt)
        S2S_TRY(s2s_tokenizer_serialize(tgt, &tb, &tl));
    /* Equal bytes are one vocabulary, so a model loaded with a shared tokenizer (two objects)
     * saves as shared again. */
    int shared = src && tgt && sl == tl && (sb == tb || memcmp(sb, tb, sl) == 0);
    if (src)
        plan_bytes(p, "tokenizer.src", sb, sl);
    if (tgt && !shared)
        plan_bytes(p, "tokenizer.tgt", tb, tl);
    if (shared)
        plan_meta(p, "tokenizer_shared", "1");
    return S2S_OK;
}

static s2s_status plan_finish(mf_plan *p, const char *format, const s2s_model *m, const s2s_provenance *prov)
{
    cJSON *crc = cJSON_CreateObject();
    int ok = crc != NULL;
    for (int i = 0; ok && i < p->n; i++) {
        size_t bytes = s2s_st_dtype_size(p->t[i].dtype);
        for (int d = 0; d < p->t[i].ndim; d++)
            bytes *= (size_t)p->t[i].shape[d];
        char hex[9];
        snprintf(hex, sizeof hex, "%08" PRIx32, tensor_crc(p->t[i].data, bytes));
        ok = cJSON_AddStringToObject(crc, p->t[i].name, hex) != NULL;
    }
    p->crc = ok ? cJSON_PrintUnformatted(crc) : NULL;
    cJSON_Delete(crc);
    p->config = config_to_json(&m->cfg);
    if (!p->crc || !p->config)
        return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "could not build the metadata of a model file (%d tensors)", p->n);
    snprintf(p->num[0], sizeof p->num[0], "%" PRIu64, prov ? prov->seed : 0);
    snprintf(p->num[1], sizeof p->num[1], "%" PRIu64, prov ? prov->step : 0);
    snprintf(p->sha, sizeof p->sha, "%.64s", prov ? prov->data_sha256 : "");
    plan_meta(p, "format", format);
    plan_meta(p, "version", s2s_version());
    plan_meta(p, "config", p->config);
    plan_meta(p, "seed", p->num[0]);
    plan_meta(p, "step", p->num[1]);
    plan_meta(p, "data_sha256", p->sha);
    plan_meta(p, "crc32", p->crc);
    return S2S_OK;
}

/* The load side refuses a malformed hash, so the save side does too. */
static s2s_status check_provenance(const s2s_provenance *prov)
{
    if (!prov || !prov->data_sha256[0])
        return S2S_OK;
    if (strnlen(prov->data_sha256, 65) != 64 || strspn(prov->data_sha256, "0123456789abcdef") != 64)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "provenance data_sha256 must be \"\" or 64 lowercase hex digits "
                        "(as s2s_corpus_sha256 gives)");
    return S2S_OK;
}

/* A model file (opt NULL) or a checkpoint. */
static s2s_status save_file(const char *path, const s2s_model *m, const s2s_optimizer *opt, const s2s_tokenizer *src,
                            const s2s_tokenizer *tgt, const s2s_provenance *prov, const void *state, size_t state_len)
{
    S2S_TRY(check_provenance(prov));
    mf_plan *p = s2s_host_calloc(1, sizeof *p, "planning a model file");
    if (!p)
        return S2S_ERR_OUT_OF_MEMORY;
    s2s_status st = download(m, m->params.data, &p->host[0]);
    if (st == S2S_OK)
        plan_params(p, m, p->host[0], "");
    for (int k = 0; opt && k < moment_count(opt) && st == S2S_OK; k++) {
        st = download(m, k ? opt->v : opt->m, &p->host[k + 1]);
        if (st == S2S_OK)
            plan_params(p, m, p->host[k + 1], moment_prefix[k]);
    }
    if (st == S2S_OK)
        st = plan_tokenizers(p, src, tgt);
    if (st == S2S_OK && opt) {
        snprintf(p->num[2], sizeof p->num[2], "%d", opt->step);
        plan_meta(p, "optim_type", opt->o.type == S2S_OPT_ADAM ? "adam" : "sgd");
        plan_meta(p, "optim_step", p->num[2]);
        plan_bytes(p, "trainer.state", state, state_len);
    }
    if (st == S2S_OK)
        st = plan_finish(p, opt ? FORMAT_CKPT : FORMAT_MODEL, m, prov);
    if (st == S2S_OK)
        st = s2s_st_write(path, p->meta, p->nmeta, p->t, p->n);
    plan_free(p);
    return st;
}

S2S_API s2s_status s2s_model_save(const s2s_model *m, const s2s_tokenizer *src_tok, const s2s_tokenizer *tgt_tok,
                                  const s2s_provenance *prov, const char *path)
{
    if (!m || !path)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_model_save: model and path must not be NULL");
    return save_file(path, m, NULL, src_tok, tgt_tok, prov, NULL, 0);
}

/* ---- checkpoints -------------------------------------------------------------------------- */

S2S_API s2s_status s2s_checkpoint_save(const char *path, const s2s_model *m, const s2s_optimizer *opt,
                                       const s2s_tokenizer *src_tok, const s2s_tokenizer *tgt_tok,
                                       const s2s_provenance *prov, const void *state, size_t state_len)
{
    if (!path || !m || !opt || (!state && state_len))
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_checkpoint_save: path, model, optimizer (and state when state_len "
                        "> 0) must not be NULL");
    if (opt->model != m)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_checkpoint_save: the optimizer belongs to another model");
    return save_file(path, m, opt, src_tok, tgt_tok, prov, state, state_len);
}

/* The first field in which two configs differ (NULL: none), with both values as text. */
static const char *config_diff(const s2s_model_config *a, const s2s_model_config *b, char *va, char *vb, size_t cap)
{
    const struct { const char *name; int a, b; const char *const *names; } f[] = {
        {"cell", a->cell, b->cell, cell_names},
        {"layers", a->layers, b->layers, NULL},
        {"hidden", a->hidden, b->hidden, NULL},
        {"embed", a->embed, b->embed, NULL},
        {"bidirectional", a->bidirectional, b->bidirectional, NULL},
        {"attention", a->attention, b->attention, attn_names},
        {"src_vocab", a->src_vocab, b->src_vocab, NULL},
        {"tgt_vocab", a->tgt_vocab, b->tgt_vocab, NULL},
        {"tie_embeddings", a->tie_embeddings, b->tie_embeddings, tie_names},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        if (f[i].a == f[i].b)
            continue;
        if (f[i].names) {
            snprintf(va, cap, "%s", f[i].names[f[i].a]);
            snprintf(vb, cap, "%s", f[i].names[f[i].b]);
        } else {
            snprintf(va, cap, "%d", f[i].a);
            snprintf(vb, cap, "%d", f[i].b);
        }
        return f[i].name;
    }
    snprintf(va, cap, "%g", (double)a->dropout);
    snprintf(vb, cap, "%g", (double)b->dropout);
    return a->dropout != b->dropout ? "dropout" : NULL;
}

/* The checkpoint must fit this model and optimizer: same config, optimizer type, moments. */
static s2s_status check_match(const s2s_st_file *f, const s2s_model *m, const s2s_optimizer *opt,
                              const s2s_model_config *cfg, uint64_t *ostep)
{
    char va[32], vb[32];
    const char *field = config_diff(cfg, &m->cfg, va, vb, sizeof va);
    if (field)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "%s: the checkpoint's config differs from the model's in \"%s\" (file %s, "
                        "model %s): create the model with the checkpoint's config", f->path, field, va, vb);
    const char *type = s2s_st_meta(f, "optim_type"), *want = opt->o.type == S2S_OPT_ADAM ? "adam" : "sgd";
    if (!type || !s2s_st_meta(f, "optim_step"))
        return S2S_FAIL(S2S_ERR_FORMAT, "%s: checkpoint metadata lacks \"optim_type\" or \"optim_step\"", f->path);
    if (strcmp(type, want) != 0)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "%s: the checkpoint holds %.8s optimizer state; the optimizer is %s",
                        f->path, type, want);
    S2S_TRY(meta_u64(f, "optim_step", ostep));
    if (*ostep > INT32_MAX)
        return S2S_FAIL(S2S_ERR_FORMAT, "%s: optim_step %" PRIu64 " is out of range", f->path, *ostep);
    int have = 0;
    for (int k = 0; k < 2; k++) {
        char name[MOMENT_NAME];
        snprintf(name, sizeof name, "%s%s", moment_prefix[k], m->params.t[0].name);
        have += s2s_st_find(f, name) != NULL;
    }
    if (have != moment_count(opt))
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "%s: the checkpoint holds %d moment buffer(s) per parameter, the optimizer "
                        "keeps %d (SGD momentum 0 keeps none)", f->path, have, moment_count(opt));
    return S2S_OK;
}

static s2s_status copy_state(const s2s_st_file *f, void **blob, size_t *len)
{
    const s2s_st_tensor *t;
    S2S_TRY(find_bytes(f, "trainer.state", &t));
    if (!t)
        return S2S_FAIL(S2S_ERR_FORMAT, "%s: tensor 'trainer.state' is missing", f->path);
    *blob = s2s_host_alloc(t->numel, "the trainer state of a checkpoint");
    if (!*blob)
        return S2S_ERR_OUT_OF_MEMORY;
    memcpy(*blob, t->data, t->numel);
    *len = t->numel;
    return S2S_OK;
}

S2S_API s2s_status s2s_checkpoint_load(const char *path, s2s_model *m, s2s_optimizer *opt, void **state,
                                       size_t *state_len)
{
    if (!path || !m || !opt || !state || !state_len)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_checkpoint_load: no argument may be NULL");
    if (opt->model != m)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_checkpoint_load: the optimizer belongs to another model");
    *state = NULL;
    *state_len = 0;
    s2s_st_file f;
    s2s_model_config cfg;
    s2s_provenance pv;
    int ckpt = 0;
    uint64_t ostep = 0;
    void *blob = NULL;
    size_t len = 0;
    s2s_status st = open_checked(path, &f, &ckpt, &cfg, &pv);
    if (st == S2S_OK && !ckpt)
        st = S2S_FAIL(S2S_ERR_FORMAT, "%s is a model file, not a checkpoint: it holds no optimizer state (load it "
                      "with s2s_model_load)", path);
    if (st == S2S_OK)
        st = check_match(&f, m, opt, &cfg, &ostep);
    if (st == S2S_OK)
        st = check_tensors(&f, m, 1, moment_count(opt));
    if (st == S2S_OK)
        st = copy_state(&f, &blob, &len);
    /* Everything is checked: only a device copy can fail from here on. */
    if (st == S2S_OK) {
        s2s_model_weights_changed(m);
        st = upload(&f, m, m->params.data, "");
    }
    for (int k = 0; k < moment_count(opt) && st == S2S_OK; k++)
        st = upload(&f, m, k ? opt->v : opt->m, moment_prefix[k]);
    s2s_st_close(&f);
    if (st != S2S_OK) {
        free(blob);
        return st;
    }
    opt->step = (int)ostep;
    *state = blob;
    *state_len = len;
    return S2S_OK;
}

/* ---- report ------------------------------------------------------------------------------- */

static const char *meta_or(const s2s_st_file *f, const char *key, const char *dflt)
{
    const char *v = s2s_st_meta(f, key);
    return v && *v ? v : dflt;
}

static void report_header(s2s_strbuf *t, const s2s_st_file *f)
{
    s2s_strbuf_printf(t, "file        %s (%zu bytes, %d tensors)\n", f->path, f->size, f->count);
    s2s_strbuf_printf(t, "format      %s\n", meta_or(f, "format", "(missing)"));
    s2s_strbuf_printf(t, "version     %s\n", meta_or(f, "version", "(missing)"));
    s2s_strbuf_printf(t, "config      %s\n", meta_or(f, "config", "(missing)"));
    s2s_strbuf_printf(t, "provenance  seed %s, step %s, data sha256 %s\n", meta_or(f, "seed", "-"), meta_or(f, "step", "-"),
       meta_or(f, "data_sha256", "-"));
    if (s2s_st_meta(f, "optim_type"))
        s2s_strbuf_printf(t, "optimizer   %s, step %s\n", meta_or(f, "optim_type", "-"), meta_or(f, "optim_step", "-"));
    const s2s_st_tensor *ts = s2s_st_find(f, "tokenizer.src"), *tt = s2s_st_find(f, "tokenizer.tgt");
    const char *shared = s2s_st_meta(f, "tokenizer_shared");
    int is_shared = shared && strcmp(shared, "1") == 0;
    s2s_strbuf_printf(t, "tokenizers  source: ");
    if (ts)
        s2s_strbuf_printf(t, "%zu bytes", ts->end - ts->begin);
    else
        s2s_strbuf_printf(t, "none");
    s2s_strbuf_printf(t, ", target: ");
    if (tt)
        s2s_strbuf_printf(t, "%zu bytes\n", tt->end - tt->begin);
    else
        s2s_strbuf_printf(t, "%s\n", is_shared ? "shared with the source" : "none");
}

/* The tensor table; returns the number of tensors whose CRC does not match. */
static int report_table(s2s_strbuf *t, const s2s_st_file *f)
{
    cJSON *table = crc_table(f);
    int wname = 4, bad = 0;
    size_t total = 0;
    for (int i = 0; i < f->count; i++)
        if ((int)strlen(f->t[i].name) > wname)
            wname = (int)strlen(f->t[i].name);
    s2s_strbuf_printf(t, "\n%-*s  %-5s  %-14s  %12s  %-8s  %s\n", wname, "name", "dtype", "shape", "bytes", "crc32", "check");
    for (int i = 0; i < f->count; i++) {
        const s2s_st_tensor *e = &f->t[i];
        char shape[96];
        uint32_t got = 0;
        int s = table ? crc_state(table, e, &got) : 2;
        shape_text(shape, sizeof shape, e->ndim, e->shape);
        if (!table)
            got = tensor_crc(e->data, e->end - e->begin);
        s2s_strbuf_printf(t, "%-*s  %-5s  %-14s  %12zu  %08" PRIx32 "  %s\n", wname, e->name, s2s_st_dtype_name(e->dtype), shape,
           e->end - e->begin, got, s == 0 ? "ok" : s == 1 ? "BAD (CRC mismatch)" : "BAD (no CRC recorded)");
        bad += s != 0;
        total += e->end - e->begin;
    }
    cJSON_Delete(table);
    s2s_strbuf_printf(t, "\n%d tensors, %zu bytes of data: %s\n", f->count, total,
       bad ? "CRC MISMATCH - the file is corrupt" : "every CRC32 matches");
    return bad;
}

S2S_API s2s_status s2s_model_file_report(const char *path, char *buf, size_t cap, size_t *len)
{
    if (!path || !len || (!buf && cap))
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_model_file_report: path and len must not be NULL, nor buf when "
                        "cap > 0");
    s2s_strbuf t = {0};
    s2s_st_file f;
    s2s_status st = s2s_st_open(path, &f);
    int bad = 0;
    if (st != S2S_OK) {
        s2s_strbuf_printf(&t, "%s: cannot be read: %s\n", path, s2s_last_error());
    } else {
        report_header(&t, &f);
        bad = report_table(&t, &f);
        s2s_st_close(&f);
    }
    if (t.oom) { /* what was built before memory ran out is still a valid prefix */
        st = S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "out of memory writing the report of %s", path);
        bad = 0;
    }
    *len = t.len; /* snprintf-style: the whole length; buf holds what fits, NUL-terminated */
    if (cap) {
        size_t n = t.len < cap - 1 ? t.len : cap - 1;
        memcpy(buf, t.p ? t.p : "", n);
        buf[n] = '\0';
    }
    s2s_strbuf_free(&t);
    if (st != S2S_OK)
        return st;
    if (bad)
        return S2S_FAIL(S2S_ERR_FORMAT, "%s: %d tensor(s) fail their CRC32 check: the file is corrupt (see the report)",
                        path, bad);
    return S2S_OK;
}

/* ---- averaging ------------------------------------------------------------------------------ */

/* Whether two tokenizers (either may be NULL) serialise to the same bytes. */
static int same_tokenizer(const s2s_tokenizer *a, const s2s_tokenizer *b)
{
    if (!a || !b)
        return !a && !b;
    const void *pa, *pb;
    size_t la, lb;
    if (s2s_tokenizer_serialize(a, &pa, &la) != S2S_OK || s2s_tokenizer_serialize(b, &pb, &lb) != S2S_OK)
        return 0;
    return la == lb && !memcmp(pa, pb, la);
}

static void free_loaded(s2s_model *m, s2s_tokenizer *st, s2s_tokenizer *tt)
{
    s2s_model_free(m);
    s2s_tokenizer_free(st);
    s2s_tokenizer_free(tt);
}

/* Adds file i's tensors to sum (double), or refuses it when it does not match the base. */
static s2s_status add_file(s2s_context *ctx, const char *path, int is_base, const s2s_model *base,
                           const s2s_tokenizer *bst, const s2s_tokenizer *btt, const char *base_path, double *sum,
                           float *buf)
{
    s2s_model *m = NULL;
    s2s_tokenizer *st = NULL, *tt = NULL;
    const s2s_model *src = base;
    if (!is_base) {
        S2S_TRY(s2s_model_load(ctx, path, &m, &st, &tt, NULL));
        char va[32], vb[32];
        const char *field = config_diff(&m->cfg, &base->cfg, va, vb, sizeof va);
        s2s_status st_ = S2S_OK;
        if (field)
            st_ = S2S_FAIL(S2S_ERR_INVALID_ARG, "%s: its config differs from %s's in \"%s\" (%s, %s): average "
                           "checkpoints of one run", path, base_path, field, va, vb);
        else if (!same_tokenizer(st, bst) || !same_tokenizer(tt, btt))
            st_ = S2S_FAIL(S2S_ERR_INVALID_ARG, "%s: its tokenizers differ from %s's: average checkpoints of one run",
                           path, base_path);
        if (st_ != S2S_OK) {
            free_loaded(m, st, tt);
            return st_;
        }
        src = m;
    }
    /* equal configs give equal tensor lists; checked anyway: the sums are placed by offset */
    if (s2s_model_param_numel(src) != s2s_model_param_numel(base)) {
        free_loaded(m, st, tt);
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "%s: its %zu parameters are not %s's %zu: average checkpoints of one run",
                        path, s2s_model_param_numel(src), base_path, s2s_model_param_numel(base));
    }
    size_t off = 0;
    s2s_status s = S2S_OK;
    for (int j = 0; j < s2s_model_param_count(src) && s == S2S_OK; j++) {
        s2s_param_info in;
        s = s2s_model_param_info_at(src, j, &in);
        if (s == S2S_OK)
            s = s2s_model_param_get(src, in.name, buf, in.numel);
        for (size_t k = 0; s == S2S_OK && k < in.numel; k++)
            sum[off + k] += buf[k];
        off += in.numel;
    }
    free_loaded(m, st, tt);
    return s;
}

S2S_API s2s_status s2s_model_average(s2s_context *ctx, const char *const *paths, int n, const char *out)
{
    if (!ctx || !paths || n < 1 || !out || !*out)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_model_average: a context, at least one file and an output path "
                        "are needed");
    for (int i = 0; i < n; i++)
        if (!paths[i] || !*paths[i])
            return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_model_average: file %d of %d is NULL or empty", i + 1, n);
    /* the last file (the newest checkpoint, by the usual order) gives the tokenizers and provenance */
    const char *bp = paths[n - 1];
    s2s_model *base = NULL;
    s2s_tokenizer *bst = NULL, *btt = NULL;
    s2s_provenance prov;
    S2S_TRY(s2s_model_load(ctx, bp, &base, &bst, &btt, &prov));
    size_t numel = s2s_model_param_numel(base), most = 0;
    for (int j = 0; j < s2s_model_param_count(base); j++) {
        s2s_param_info in;
        if (s2s_model_param_info_at(base, j, &in) == S2S_OK && in.numel > most)
            most = in.numel;
    }
    double *sum = s2s_host_calloc(numel, sizeof *sum, "the weights' sums");
    float *buf = s2s_host_calloc(most ? most : 1, sizeof *buf, "a tensor");
    s2s_status s = sum && buf ? S2S_OK : S2S_ERR_OUT_OF_MEMORY;
    for (int i = 0; i < n && s == S2S_OK; i++)
        s = add_file(ctx, paths[i], i == n - 1, base, bst, btt, bp, sum, buf);
    size_t off = 0;
    for (int j = 0; j < s2s_model_param_count(base) && s == S2S_OK; j++) {
        s2s_param_info in;
        s = s2s_model_param_info_at(base, j, &in);
        for (size_t k = 0; s == S2S_OK && k < in.numel; k++)
            buf[k] = (float)(sum[off + k] / n);
        if (s == S2S_OK)
            s = s2s_model_param_set(base, in.name, buf, in.numel);
        off += in.numel;
    }
    if (s == S2S_OK)
        s = s2s_model_save(base, bst, btt, &prov, out);
    free(sum);
    free(buf);
    free_loaded(base, bst, btt);
    return s;
}
