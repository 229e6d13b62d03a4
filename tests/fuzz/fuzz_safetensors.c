/* fuzz_safetensors.c - libFuzzer target for the safetensors reader (lib/io/safetensors.h, internal:
 * linked from the library sources, not through the public API).
 * The input is the file. When s2s_st_open accepts it, every tensor's bytes are read (ASan
 * checks them against the buffer), every tensor is found by name, and the file is written
 * back with s2s_st_write and read again: the copy must hold the same tensors (names, dtypes,
 * shapes, bytes) and metadata.
 *
 *   build-fuzz/fuzz_safetensors -max_len=4096 tests/fuzz/seeds/safetensors */
#include "fuzz_util.h"
#include "safetensors.h"

static volatile unsigned fz_sink;

static void same_files(const s2s_st_file *a, const s2s_st_file *b)
{
    FZ_CHECK(a->count == b->count, "%d tensors became %d", a->count, b->count);
    for (int i = 0; i < a->count; i++) {
        const s2s_st_tensor *x = &a->t[i], *y = s2s_st_find(b, x->name);
        FZ_CHECK(y != NULL, "tensor '%s' lost", x->name);
        FZ_CHECK(x->dtype == y->dtype && x->ndim == y->ndim && x->numel == y->numel, "tensor '%s' changed", x->name);
        for (int d = 0; d < x->ndim; d++)
            FZ_CHECK(x->shape[d] == y->shape[d], "tensor '%s' dim %d changed", x->name, d);
        FZ_CHECK(x->end - x->begin == y->end - y->begin, "tensor '%s' size changed", x->name);
        FZ_CHECK(memcmp(x->data, y->data, x->end - x->begin) == 0, "tensor '%s' bytes changed", x->name);
    }
    const cJSON *kv;
    int na = 0, nb = 0;
    if (a->meta)
        cJSON_ArrayForEach(kv, a->meta) {
            const char *v = s2s_st_meta(b, kv->string);
            /* duplicate keys: the reader and the copy both keep the first one */
            FZ_CHECK(v && !strcmp(v, s2s_st_meta(a, kv->string)), "metadata '%s' changed", kv->string);
            na++;
        }
    if (b->meta)
        cJSON_ArrayForEach(kv, b->meta) nb++;
    FZ_CHECK(na == nb, "%d metadata entries became %d", na, nb);
}

static void write_back(const s2s_st_file *f)
{
    int nmeta = f->meta ? cJSON_GetArraySize(f->meta) : 0;
    s2s_st_kv *meta = calloc((size_t)nmeta + 1, sizeof *meta);
    s2s_st_out *out = calloc((size_t)f->count + 1, sizeof *out);
    FZ_CHECK(meta && out, "calloc");
    int k = 0;
    const cJSON *kv;
    if (f->meta)
        cJSON_ArrayForEach(kv, f->meta) meta[k].key = kv->string, meta[k++].value = kv->valuestring;
    for (int i = 0; i < f->count; i++) {
        out[i].name = f->t[i].name;
        out[i].dtype = f->t[i].dtype;
        out[i].ndim = f->t[i].ndim;
        memcpy(out[i].shape, f->t[i].shape, sizeof out[i].shape);
        out[i].data = f->t[i].data;
    }
    char path[300];
    fz_path(path, sizeof path, "copy.safetensors");
    s2s_status st = s2s_st_write(path, meta, nmeta, out, f->count);
    FZ_CHECK(st == S2S_OK, "write back: %s", s2s_last_error());
    s2s_st_file g;
    st = s2s_st_open(path, &g);
    FZ_CHECK(st == S2S_OK, "reading back: %s", s2s_last_error());
    same_files(f, &g);
    s2s_st_close(&g);
    free(meta);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[300];
    s2s_st_file f;
    s2s_status st = s2s_st_open(fz_write(path, sizeof path, "in.safetensors", data, size), &f);
    if (st != S2S_OK) {
        FZ_CHECK(st == S2S_ERR_FORMAT, "status %d: %s", (int)st, s2s_last_error());
        FZ_CHECK(f.bytes == NULL && f.count == 0 && f.header == NULL, "a failed open left state behind");
        s2s_st_close(&f);
        return 0;
    }
    unsigned sum = 0;
    for (int i = 0; i < f.count; i++) {
        const s2s_st_tensor *t = &f.t[i];
        FZ_CHECK(t->end - t->begin == t->numel * s2s_st_dtype_size(t->dtype), "tensor '%s' size", t->name);
        FZ_CHECK(t->data >= f.bytes && t->data + (t->end - t->begin) <= f.bytes + f.size, "tensor '%s' outside",
                 t->name);
        for (size_t b = 0; b < t->end - t->begin; b++)
            sum += t->data[b];
        FZ_CHECK(s2s_st_find(&f, t->name) == t, "find '%s'", t->name);
    }
    (void)s2s_st_meta(&f, "format");
    write_back(&f);
    s2s_st_close(&f);
    fz_sink += sum; /* keeps the reads */
    return 0;
}
