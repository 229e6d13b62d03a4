/* fuzz_modelfile.c - libFuzzer target for model and checkpoint files: s2s_model_load,
 * s2s_checkpoint_load and s2s_model_file_report on any bytes (one CPU context, made once).
 *
 * Each input is tried as it is and, when that fails a CRC check (a mutated byte almost always
 * breaks a CRC32, and the loader stops there), once more with the "crc32" metadata recomputed for
 * the tensors it holds (when the input has a parsable header): that copy reaches the config,
 * shape, tokenizer and checkpoint checks behind the CRCs.
 * Checked besides memory safety: a file that loads also reports S2S_OK, reports the same
 * length with and without a buffer, and saves and loads again to bit-identical weights.
 *
 *   build-fuzz/fuzz_modelfile -max_len=16384 tests/fuzz/seeds/modelfile */
#include "fuzz_util.h"
#include <cjson/cJSON.h>
#include <zlib.h>

static s2s_context *ctx;
static int crc_failed; /* the last load failed a CRC check (or found no CRC) */

/* The input with "crc32" recomputed, malloc'd in *out (its length returned); 0 when the input
 * has no parsable header and metadata, or nothing changed. */
static size_t fix_crcs(const uint8_t *d, size_t n, uint8_t **out)
{
    uint64_t hl = 0;
    if (n < 8)
        return 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | d[i];
    if (hl > n - 8)
        return 0;
    size_t data_size = n - 8 - (size_t)hl, len = 0;
    const uint8_t *buf = d + 8 + hl;
    cJSON *h = cJSON_ParseWithLength((const char *)d + 8, (size_t)hl), *crc = cJSON_CreateObject();
    cJSON *meta = cJSON_GetObjectItemCaseSensitive(h, "__metadata__"), *item;
    if (!cJSON_IsObject(h) || !cJSON_IsObject(meta) || !crc)
        goto done;
    cJSON_ArrayForEach(item, h) {
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
        const cJSON *b = cJSON_GetArrayItem(off, 0), *e = cJSON_GetArrayItem(off, 1);
        if (item == meta || !cJSON_IsNumber(b) || !cJSON_IsNumber(e))
            continue;
        double bv = b->valuedouble, ev = e->valuedouble;
        if (!(bv >= 0 && bv <= ev && ev <= (double)data_size))
            continue;
        char hex[9];
        snprintf(hex, sizeof hex, "%08lx", crc32(crc32(0L, Z_NULL, 0), buf + (size_t)bv, (uInt)(ev - bv)));
        cJSON_AddStringToObject(crc, item->string, hex);
    }
    char *table = cJSON_PrintUnformatted(crc);
    if (!table)
        goto done;
    cJSON_DeleteItemFromObjectCaseSensitive(meta, "crc32");
    cJSON_AddStringToObject(meta, "crc32", table);
    cJSON_free(table);
    char *text = cJSON_PrintUnformatted(h);
    size_t tl = text ? strlen(text) : 0;
    if (text && (*out = malloc(8 + tl + data_size))) {
        for (int i = 0; i < 8; i++)
            (*out)[i] = (uint8_t)((uint64_t)tl >> (8 * i));
        memcpy(*out + 8, text, tl);
        memcpy(*out + 8 + tl, buf, data_size);
        len = 8 + tl + data_size;
        if (len == n && !memcmp(*out, d, n)) {
            free(*out);
            len = 0;
        }
    }
    cJSON_free(text);
done:
    cJSON_Delete(h);
    cJSON_Delete(crc);
    return len;
}

static float *all_weights(const s2s_model *m)
{
    float *w = malloc(s2s_model_param_numel(m) * sizeof *w + 1), *p = w;
    FZ_CHECK(w != NULL, "malloc");
    for (int i = 0; i < s2s_model_param_count(m); i++) {
        s2s_param_info info;
        FZ_CHECK(s2s_model_param_info_at(m, i, &info) == S2S_OK, "info %d", i);
        FZ_CHECK(s2s_model_param_get(m, info.name, p, info.numel) == S2S_OK, "get %s", info.name);
        p += info.numel;
    }
    return w;
}

/* Saves m (and its tokenizers), loads the copy, compares the weights bit for bit. */
static void save_and_reload(s2s_model *m, const s2s_tokenizer *ts, const s2s_tokenizer *tt, const s2s_provenance *pv)
{
    char path[300];
    fz_path(path, sizeof path, "copy.safetensors");
    FZ_CHECK(s2s_model_save(m, ts, tt, pv, path) == S2S_OK, "save: %s", s2s_last_error());
    s2s_model *c = NULL;
    FZ_CHECK(s2s_model_load(ctx, path, &c, NULL, NULL, NULL) == S2S_OK, "reload: %s", s2s_last_error());
    size_t n = s2s_model_param_numel(m);
    FZ_CHECK(s2s_model_param_numel(c) == n, "reloaded numel");
    float *a = all_weights(m), *b = all_weights(c);
    FZ_CHECK(memcmp(a, b, n * sizeof *a) == 0, "reloaded weights differ");
    free(a), free(b);
    s2s_model_free(c);
}

/* A loaded file may also be a checkpoint: restore it into the model with an Adam optimizer. */
static void try_checkpoint(s2s_model *m, const char *path)
{
    s2s_optimizer *opt = NULL;
    s2s_optimizer_options oo = s2s_optimizer_options_default();
    FZ_CHECK(s2s_optimizer_create(m, &oo, &opt) == S2S_OK, "optimizer: %s", s2s_last_error());
    void *state = NULL;
    size_t len = 0;
    s2s_status st = s2s_checkpoint_load(path, m, opt, &state, &len);
    FZ_CHECK(st != S2S_OK || state != NULL || len == 0, "checkpoint state");
    free(state);
    s2s_optimizer_free(opt);
}

/* Loads, reports, and when it loads, restores as a checkpoint and saves and reloads; returns
 * whether it loaded (and sets crc_failed). */
static int exercise(const char *path)
{
    s2s_model *m = NULL;
    s2s_tokenizer *ts = NULL, *tt = NULL;
    s2s_provenance pv;
    s2s_status st = s2s_model_load(ctx, path, &m, &ts, &tt, &pv);
    if (fz_verbose())
        fprintf(stderr, "%s: load: %s%s%s\n", path, s2s_status_string(st), st ? ": " : "", st ? s2s_last_error() : "");
    crc_failed = st != S2S_OK && (strstr(s2s_last_error(), "CRC32") || strstr(s2s_last_error(), "crc32"));
    FZ_CHECK((st == S2S_OK) == (m != NULL), "status %d with model %p", (int)st, (void *)m);
    FZ_CHECK(st == S2S_OK || (!ts && !tt), "a failed load handed out tokenizers");
    static char report[8192];
    size_t len = 0, len0 = 0;
    s2s_status rs = s2s_model_file_report(path, report, sizeof report, &len);
    FZ_CHECK(len < sizeof report || strlen(report) == sizeof report - 1, "report not terminated");
    FZ_CHECK(len >= sizeof report || strlen(report) == len, "report length %zu, text %zu", len, strlen(report));
    FZ_CHECK(s2s_model_file_report(path, NULL, 0, &len0) == rs && len0 == len, "report without a buffer");
    if (!m)
        return 0;
    FZ_CHECK(rs == S2S_OK, "loads but reports %d: %s", (int)rs, s2s_last_error());
    if (ts) {
        int32_t ids[16];
        int n = 0;
        FZ_CHECK(s2s_tokenizer_encode(ts, "a b", ids, 16, &n) == S2S_OK, "encode: %s", s2s_last_error());
    }
    try_checkpoint(m, path);
    save_and_reload(m, ts, tt, &pv);
    s2s_tokenizer_free(ts);
    s2s_tokenizer_free(tt);
    s2s_model_free(m);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ctx) {
        s2s_context_options o = s2s_context_options_default();
        o.device = S2S_DEVICE_CPU, o.threads = 1;
        FZ_CHECK(s2s_context_create(&o, &ctx) == S2S_OK, "context: %s", s2s_last_error());
    }
    char path[300];
    if (exercise(fz_write(path, sizeof path, "in.safetensors", data, size)) || !crc_failed)
        return 0; /* loaded, or failed before or after the CRC checks: fixing them changes nothing */
    uint8_t *fixed = NULL;
    size_t n = fix_crcs(data, size, &fixed);
    if (n) {
        exercise(fz_write(path, sizeof path, "fixed.safetensors", fixed, n));
        free(fixed);
    }
    return 0;
}
