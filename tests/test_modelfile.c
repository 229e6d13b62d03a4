/* test_modelfile.c - model files and checkpoints (lib/io/modelfile.c, lib/io/safetensors.c):
 * round trips, atomic saving, one test per kind of bad file (each expecting its exact status
 * and a message naming the problem), the report, checkpoints; and (suite interop) the file
 * read by PyTorch, whose float64 log-probabilities must match the library's.
 *
 * Run: ./build/tests/test_suite --filter 'modelfile/[a-z]*'   and   --filter 'interop/[a-z]*'
 * (from the repository root: the interop test runs tests/interop/torch_logprobs.py). */
#include "model.h"
#include "safetensors.h"
#include "model_util.h"
#include <criterion/logging.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ---- helpers ------------------------------------------------------------------------------ */

static s2s_context *cpu_ctx(uint64_t seed)
{
    return tu_context(S2S_DEVICE_CPU, S2S_PRECISION_FP32, S2S_RNN_IMPL_FUSED, seed);
}

/* Small, but with every kind of tensor: two layers, both directions, general attention. */
static s2s_model_config small_config(void)
{
    s2s_model_config c = s2s_model_config_default();
    c.layers = 2;
    c.bidirectional = 1;
    c.hidden = 8;
    c.embed = 6;
    c.dropout = 0.1f;
    c.src_vocab = 11;
    c.tgt_vocab = 13;
    return c;
}

static s2s_model *new_model(s2s_context *ctx, const s2s_model_config *c)
{
    s2s_model *m = NULL;
    cr_assert_eq(s2s_model_create(ctx, c, &m), S2S_OK, "%s", s2s_last_error());
    return m;
}

/* A fixed batch of 3 pairs over vocabularies of at least 11 / 13. */
static const int32_t fx_src[3 * 5] = {4, 5, 6, 7, 8, 9, 10, 4, 0, 0, 5, 0, 0, 0, 0};
static const int32_t fx_src_len[3] = {5, 3, 1};
static const int32_t fx_tgt[3 * 4] = {12, 11, 10, 9, 4, 5, 0, 0, 0, 0, 0, 0};
static const int32_t fx_tgt_len[3] = {4, 2, 0};
static const s2s_batch fx_batch = {3, 5, 4, fx_src, fx_src_len, fx_tgt, fx_tgt_len};

static float eval_loss(s2s_model *m, const s2s_batch *b)
{
    float loss = 0;
    cr_assert_eq(s2s_model_evaluate(m, b, &loss, NULL), S2S_OK, "%s", s2s_last_error());
    return loss;
}

static void train_steps(s2s_model *m, s2s_optimizer *opt, int steps)
{
    for (int s = 0; s < steps; s++) {
        s2s_loss_options lo = s2s_loss_options_default();
        lo.step = (uint64_t)s;
        cr_assert_eq(s2s_model_forward_backward(m, &fx_batch, &lo, NULL, NULL), S2S_OK, "%s", s2s_last_error());
        cr_assert_eq(s2s_optimizer_step(opt, 0, NULL), S2S_OK, "%s", s2s_last_error());
    }
}

/* Every parameter of a and b bit-identical. */
static void assert_same_params(const s2s_model *a, const s2s_model *b)
{
    cr_assert_eq(s2s_model_param_count(a), s2s_model_param_count(b));
    for (int i = 0; i < s2s_model_param_count(a); i++) {
        s2s_param_info pa;
        cr_assert_eq(s2s_model_param_info_at(a, i, &pa), S2S_OK);
        float *x = malloc(pa.numel * sizeof *x), *y = malloc(pa.numel * sizeof *y);
        cr_assert_eq(s2s_model_param_get(a, pa.name, x, pa.numel), S2S_OK, "%s", s2s_last_error());
        cr_assert_eq(s2s_model_param_get(b, pa.name, y, pa.numel), S2S_OK, "%s", s2s_last_error());
        cr_assert(memcmp(x, y, pa.numel * sizeof *x) == 0, "tensor %s differs after the round trip", pa.name);
        free(x);
        free(y);
    }
}

static void assert_same_config(const s2s_model_config *a, const s2s_model_config *b)
{
    cr_assert(a->cell == b->cell && a->layers == b->layers && a->hidden == b->hidden && a->embed == b->embed &&
                  a->bidirectional == b->bidirectional && a->attention == b->attention && a->dropout == b->dropout &&
                  a->src_vocab == b->src_vocab && a->tgt_vocab == b->tgt_vocab && a->tie_embeddings == b->tie_embeddings,
              "configs differ");
}

static char tdir[64];

static void make_tdir(void)
{
    snprintf(tdir, sizeof tdir, "/tmp/s2s_modelfile_XXXXXX");
    cr_assert_not_null(mkdtemp(tdir), "mkdtemp: %s", strerror(errno));
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(p);
}

static void remove_tdir(void)
{
    if (tdir[0])
        nftw(tdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *tpath(const char *name)
{
    static char buf[4][256];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, 256, "%s/%s", tdir, name);
    return p;
}

static uint8_t *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n + 1);
    cr_assert_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void write_bytes(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    cr_assert_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* The fixture of the bad-file tests: a directory and a good model file in it. */
static const char *save_good(void)
{
    make_tdir();
    s2s_context *ctx = cpu_ctx(7);
    s2s_model_config c = small_config();
    s2s_model *m = new_model(ctx, &c);
    const char *path = tpath("good.safetensors");
    cr_assert_eq(s2s_model_save(m, NULL, NULL, NULL, path), S2S_OK, "%s", s2s_last_error());
    s2s_model_free(m);
    s2s_context_free(ctx);
    return path;
}

/* Loading path must fail with want, leave the model NULL, and the message must name the file
 * and contain every further (NULL-terminated) needle. */
static void expect_load_fails(const char *path, s2s_status want, ...)
{
    s2s_context *ctx = cpu_ctx(1);
    s2s_model *m = (s2s_model *)&m; /* not NULL: the call must reset it */
    s2s_status st = s2s_model_load(ctx, path, &m, NULL, NULL, NULL);
    const char *err = s2s_last_error();
    cr_assert_eq(st, want, "status %s, wanted %s: %s", s2s_status_string(st), s2s_status_string(want), err);
    cr_assert_null(m, "a failed load left a model behind");
    cr_assert(strstr(err, path) != NULL, "message does not name the file: %s", err);
    va_list ap;
    va_start(ap, want);
    for (const char *needle; (needle = va_arg(ap, const char *)) != NULL;)
        cr_assert(strstr(err, needle) != NULL, "message lacks '%s': %s", needle, err);
    va_end(ap);
    s2s_context_free(ctx);
}

/* ---- crafting bad files -----------------------------------------------------------------
 * Raw level: rewrite the JSON header, keep the data bytes as they are. */
typedef void (*header_edit)(cJSON *root);

static cJSON *offsets_of(cJSON *root, const char *tensor)
{
    cJSON *t = cJSON_GetObjectItemCaseSensitive(root, tensor);
    cr_assert_not_null(t, "no tensor %s", tensor);
    return cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
}

static void rewrite_header(const char *src, const char *dst, header_edit edit)
{
    size_t n;
    uint8_t *b = read_bytes(src, &n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | b[i];
    cJSON *root = cJSON_ParseWithLength((const char *)b + 8, (size_t)hl);
    cr_assert_not_null(root);
    edit(root);
    char *h = cJSON_PrintUnformatted(root);
    size_t nh = strlen(h);
    FILE *f = fopen(dst, "wb");
    for (int i = 0; i < 8; i++)
        fputc((int)((nh >> (8 * i)) & 0xff), f);
    fwrite(h, 1, nh, f);
    fwrite(b + 8 + hl, 1, n - 8 - hl, f);
    fclose(f);
    cJSON_free(h);
    cJSON_Delete(root);
    free(b);
}

/* Tensor level: the good file's tensors and metadata, changed, written with fresh CRCs (so
 * that the check under test, not the CRC check, is what fires). */
typedef struct variant {
    s2s_st_file f;
    s2s_st_out t[S2S_MAX_PARAMS + 4];
    int n;
    s2s_st_kv meta[16];
    int nmeta;
    char *crc;
} variant;

static void variant_open(variant *v, const char *path)
{
    memset(v, 0, sizeof *v);
    cr_assert_eq(s2s_st_open(path, &v->f), S2S_OK, "%s", s2s_last_error());
    for (int i = 0; i < v->f.count; i++) {
        const s2s_st_tensor *t = &v->f.t[i];
        s2s_st_out *o = &v->t[v->n++];
        o->name = t->name;
        o->dtype = t->dtype;
        o->ndim = t->ndim;
        memcpy(o->shape, t->shape, sizeof o->shape);
        o->data = t->data;
    }
    const cJSON *kv;
    cJSON_ArrayForEach(kv, v->f.meta) {
        v->meta[v->nmeta].key = kv->string;
        v->meta[v->nmeta++].value = kv->valuestring;
    }
}

static s2s_st_out *variant_tensor(variant *v, const char *name)
{
    for (int i = 0; i < v->n; i++)
        if (strcmp(v->t[i].name, name) == 0)
            return &v->t[i];
    cr_assert_fail("no tensor %s", name);
    return NULL;
}

static void variant_set_meta(variant *v, const char *key, const char *value)
{
    for (int i = 0; i < v->nmeta; i++)
        if (strcmp(v->meta[i].key, key) == 0) {
            v->meta[i].value = value;
            return;
        }
    v->meta[v->nmeta].key = key;
    v->meta[v->nmeta++].value = value;
}

static void variant_write(variant *v, const char *path)
{
    cJSON *crc = cJSON_CreateObject();
    for (int i = 0; i < v->n; i++) {
        size_t bytes = s2s_st_dtype_size(v->t[i].dtype);
        for (int d = 0; d < v->t[i].ndim; d++)
            bytes *= (size_t)v->t[i].shape[d];
        char hex[9];
        snprintf(hex, sizeof hex, "%08lx", crc32_z(0, v->t[i].data, bytes));
        cJSON_AddStringToObject(crc, v->t[i].name, hex);
    }
    v->crc = cJSON_PrintUnformatted(crc);
    cJSON_Delete(crc);
    variant_set_meta(v, "crc32", v->crc);
    cr_assert_eq(s2s_st_write(path, v->meta, v->nmeta, v->t, v->n), S2S_OK, "%s", s2s_last_error());
    cJSON_free(v->crc);
    s2s_st_close(&v->f);
}

/* ---- round trips -------------------------------------------------------------------------- */

TestSuite(modelfile, .fini = remove_tdir);

Test(modelfile, round_trip)
{
    make_tdir();
    s2s_model_config cfgs[5] = {small_config(), small_config(), small_config(), small_config(), small_config()};
    cfgs[1].cell = S2S_CELL_GRU, cfgs[1].layers = 1, cfgs[1].bidirectional = 0, cfgs[1].attention = S2S_ATTN_DOT;
    cfgs[2].cell = S2S_CELL_RNN_TANH, cfgs[2].attention = S2S_ATTN_NONE, cfgs[2].dropout = 0.0f;
    cfgs[3].embed = 8, cfgs[3].tie_embeddings = S2S_TIE_DECODER;
    cfgs[4].embed = 8, cfgs[4].src_vocab = 13, cfgs[4].tie_embeddings = S2S_TIE_ALL;
    for (int k = 0; k < 5; k++) {
        s2s_context *ctx = cpu_ctx(11), *ctx2 = cpu_ctx(12); /* another seed: other initial weights */
        s2s_model *m = new_model(ctx, &cfgs[k]), *back = NULL;
        s2s_provenance prov = {123456789012345ull, 42, ""}, got;
        memset(prov.data_sha256, 'a', 64);
        const char *path = tpath("model.safetensors");
        cr_assert_eq(s2s_model_save(m, NULL, NULL, &prov, path), S2S_OK, "%s", s2s_last_error());
        cr_assert_eq(s2s_model_load(ctx2, path, &back, NULL, NULL, &got), S2S_OK, "%s", s2s_last_error());
        assert_same_params(m, back);
        s2s_model_config a = s2s_model_get_config(m), b = s2s_model_get_config(back);
        assert_same_config(&a, &b);
        cr_assert(got.seed == prov.seed && got.step == prov.step && strcmp(got.data_sha256, prov.data_sha256) == 0);
        /* Same weights, same device and thread count: the same bits (fixed-order reductions). */
        cr_assert(eval_loss(m, &fx_batch) == eval_loss(back, &fx_batch));
        s2s_model_free(back);
        s2s_model_free(m);
        s2s_context_free(ctx);
        s2s_context_free(ctx2);
    }
}

/* The file follows the layout that PyTorch and other readers rely on. */
Test(modelfile, layout)
{
    const char *path = save_good();
    s2s_st_file f;
    cr_assert_eq(s2s_st_open(path, &f), S2S_OK, "%s", s2s_last_error());
    s2s_context *ctx = cpu_ctx(7);
    s2s_model_config c = small_config();
    s2s_model *m = new_model(ctx, &c);
    cr_assert_eq(f.count, s2s_model_param_count(m), "a file without tokenizers holds the parameters only");
    size_t next = 0;
    for (int i = 0; i < f.count; i++) {
        s2s_param_info pi;
        s2s_model_param_info_at(m, i, &pi);
        cr_assert_str_eq(f.t[i].name, pi.name, "registration order");
        cr_assert_eq(f.t[i].dtype, S2S_ST_F32);
        cr_assert_eq(f.t[i].ndim, pi.ndim);
        cr_assert_eq(f.t[i].shape[0], pi.ndim == 1 ? (int64_t)pi.numel : pi.shape[0]);
        cr_assert_eq(f.t[i].begin, next, "tensors are contiguous");
        next = f.t[i].end;
    }
    cr_assert_eq((size_t)(f.t[0].data - f.bytes) % 8, 0, "the header is padded to a multiple of 8");
    cr_assert_str_eq(s2s_st_meta(&f, "format"), "libseq2seq-model");
    cr_assert_str_eq(s2s_st_meta(&f, "version"), s2s_version());
    cr_assert_str_eq(s2s_st_meta(&f, "config"),
                     "{\"cell\":\"lstm\",\"layers\":2,\"hidden\":8,\"embed\":6,\"bidirectional\":1,\"attention\":"
                     "\"general\",\"dropout\":0.1,\"src_vocab\":11,\"tgt_vocab\":13}");
    cr_assert_str_eq(s2s_st_meta(&f, "seed"), "0");
    s2s_st_close(&f);
    s2s_model_free(m);
    s2s_context_free(ctx);
}

/* SentencePiece tokenizers ride along as U8 tensors; a shared one is stored once. Skipped when
 * the build cannot train a tokenizer. */
Test(modelfile, tokenizer_round_trip)
{
    static const char *text[] = {"the cat sat on the mat", "a dog ran in the park", "the bird sang a song",
                                 "cats and dogs play", "the sun is warm today", "we read a good book"};
    const char *sents[240];
    for (int i = 0; i < 240; i++)
        sents[i] = text[i % 6];
    s2s_tokenizer_options to = s2s_tokenizer_options_default();
    to.vocab_size = 40;
    s2s_tokenizer *tok = NULL;
    if (s2s_tokenizer_train(sents, 240, &to, &tok) != S2S_OK)
        cr_skip_test("s2s_tokenizer_train does not work in this build: %s", s2s_last_error());
    make_tdir();
    s2s_context *ctx = cpu_ctx(3);
    s2s_model_config c = small_config();
    c.src_vocab = c.tgt_vocab = s2s_tokenizer_vocab_size(tok);
    s2s_model *m = new_model(ctx, &c), *back = NULL;
    for (int shared = 0; shared < 2; shared++) {
        const char *path = tpath("tok.safetensors");
        cr_assert_eq(s2s_model_save(m, tok, shared ? tok : NULL, NULL, path), S2S_OK, "%s", s2s_last_error());
        s2s_st_file f;
        cr_assert_eq(s2s_st_open(path, &f), S2S_OK);
        cr_assert_not_null(s2s_st_find(&f, "tokenizer.src"));
        cr_assert_null(s2s_st_find(&f, "tokenizer.tgt"), "a shared tokenizer is stored once");
        cr_assert(!shared || strcmp(s2s_st_meta(&f, "tokenizer_shared"), "1") == 0);
        s2s_st_close(&f);
        s2s_tokenizer *ts = NULL, *tt = NULL;
        cr_assert_eq(s2s_model_load(ctx, path, &back, &ts, &tt, NULL), S2S_OK, "%s", s2s_last_error());
        cr_assert_not_null(ts);
        cr_assert(shared ? tt != NULL && tt != ts : tt == NULL, "shared: two objects; unshared: no target");
        int32_t a[64], b[64];
        int na = 0, nb = 0;
        cr_assert_eq(s2s_tokenizer_encode(tok, "the cat read a song", a, 64, &na), S2S_OK);
        cr_assert_eq(s2s_tokenizer_encode(ts, "the cat read a song", b, 64, &nb), S2S_OK);
        cr_assert(na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0, "the loaded tokenizer encodes differently");
        assert_same_params(m, back);
        s2s_tokenizer_free(ts);
        s2s_tokenizer_free(tt);
        s2s_model_free(back);
    }
    s2s_model_free(m);
    s2s_tokenizer_free(tok);
    s2s_context_free(ctx);
}

/* ---- atomic saving ---------------------------------------------------------------------- */

/* No PATH.tmp.* files left in the test directory. */
static void assert_no_temp_files(void)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "ls %s | grep -q '\\.tmp\\.'", tdir);
    cr_assert_neq(system(cmd), 0, "a temporary file was left in %s", tdir);
}

Test(modelfile, save_into_missing_directory)
{
    make_tdir();
    s2s_context *ctx = cpu_ctx(1);
    s2s_model_config c = small_config();
    s2s_model *m = new_model(ctx, &c);
    const char *path = tpath("no/such/dir/model.safetensors");
    cr_assert_eq(s2s_model_save(m, NULL, NULL, NULL, path), S2S_ERR_IO);
    cr_assert(strstr(s2s_last_error(), path) != NULL, "message does not name the path: %s", s2s_last_error());
    cr_assert(strstr(s2s_last_error(), "No such file or directory") != NULL, "%s", s2s_last_error());
    s2s_model_free(m);
    s2s_context_free(ctx);
}

/* A save that fails halfway (the file-size limit makes write() fail with EFBIG, root or not)
 * leaves the previous file byte for byte, and no temporary file. */
Test(modelfile, failed_save_keeps_previous_file)
{
    const char *path = save_good();
    size_t n0, n1;
    uint8_t *before = read_bytes(path, &n0);
    s2s_context *ctx = cpu_ctx(99); /* other weights: a successful save would change the file */
    s2s_model_config c = small_config();
    s2s_model *m = new_model(ctx, &c);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {n0 / 2, n0 / 2};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    s2s_status st = s2s_model_save(m, NULL, NULL, NULL, path);
    cr_assert_eq(st, S2S_ERR_IO, "status %s: %s", s2s_status_string(st), s2s_last_error());
    cr_assert(strstr(s2s_last_error(), path) != NULL && strstr(s2s_last_error(), "File too large") != NULL, "%s",
              s2s_last_error());
    uint8_t *after = read_bytes(path, &n1);
    cr_assert(n0 == n1 && memcmp(before, after, n0) == 0, "the previous file changed");
    assert_no_temp_files();
    free(before);
    free(after);
    s2s_model_free(m);
    s2s_context_free(ctx);
}

Test(modelfile, save_onto_directory_fails)
{
    make_tdir();
    const char *dir = tpath("adir");
    cr_assert_eq(mkdir(dir, 0755), 0);
    s2s_context *ctx = cpu_ctx(1);
    s2s_model_config c = small_config();
    s2s_model *m = new_model(ctx, &c);
    cr_assert_eq(s2s_model_save(m, NULL, NULL, NULL, dir), S2S_ERR_IO);
    cr_assert(strstr(s2s_last_error(), dir) != NULL && strstr(s2s_last_error(), "Is a directory"), "%s",
              s2s_last_error());
    struct stat sb;
    cr_assert(stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode), "the directory is gone");
    assert_no_temp_files();
    s2s_model_free(m);
    s2s_context_free(ctx);
}

/* ---- bad files: one kind each ------------------------------------------------------------ */

Test(modelfile, truncated_at_every_sixteenth)
{
    const char *path = save_good(), *cut = tpath("cut.safetensors");
    size_t n;
    uint8_t *b = read_bytes(path, &n);
    for (int k = 0; k < 16; k++) {
        write_bytes(cut, b, n * (size_t)k / 16);
        expect_load_fails(cut, S2S_ERR_FORMAT, "truncated", NULL);
    }
    free(b);
}

Test(modelfile, header_length_beyond_file)
{
    const char *path = save_good(), *bad = tpath("bad.safetensors");
    size_t n;
    uint8_t *b = read_bytes(path, &n);
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)n >> (8 * i));
    write_bytes(bad, b, n);
    expect_load_fails(bad, S2S_ERR_FORMAT, "header length", "exceeds", NULL);
    free(b);
}

static void shift_generator_bias(cJSON *root)
{
    cJSON *off = offsets_of(root, "generator.bias");
    for (int i = 0; i < 2; i++)
        cJSON_SetNumberValue(cJSON_GetArrayItem(off, i), cJSON_GetArrayItem(off, i)->valuedouble + 1e6);
}

Test(modelfile, offsets_out_of_range)
{
    const char *path = save_good(), *bad = tpath("bad.safetensors");
    rewrite_header(path, bad, shift_generator_bias);
    expect_load_fails(bad, S2S_ERR_FORMAT, "'generator.bias'", "outside the data buffer", NULL);
}

/* bias_ih and bias_hh have the same size: point the second at the first one's bytes. */
static void alias_biases(cJSON *root)
{
    cJSON *a = offsets_of(root, "encoder.rnn.bias_ih_l0"), *b = offsets_of(root, "encoder.rnn.bias_hh_l0");
    for (int i = 0; i < 2; i++)
        cJSON_SetNumberValue(cJSON_GetArrayItem(b, i), cJSON_GetArrayItem(a, i)->valuedouble + 4);
}

Test(modelfile, overlapping_tensors)
{
    const char *path = save_good(), *bad = tpath("bad.safetensors");
    rewrite_header(path, bad, alias_biases);
    expect_load_fails(bad, S2S_ERR_FORMAT, "'encoder.rnn.bias_ih_l0'", "'encoder.rnn.bias_hh_l0'", "overlap", NULL);
}

Test(modelfile, wrong_dtype)
{
    const char *path = save_good(), *bad = tpath("bad.safetensors");
    variant v;
    variant_open(&v, path);
    variant_tensor(&v, "decoder.rnn.weight_hh_l1")->dtype = S2S_ST_F16; /* half the bytes, same shape */
    variant_write(&v, bad);
    expect_load_fails(bad, S2S_ERR_FORMAT, "'decoder.rnn.weight_hh_l1'", "dtype F16; expected F32", NULL);
}

Test(modelfile, shape_disagrees_with_config)
{
    const char *path = save_good(), *bad = tpath("bad.safetensors");
    variant v;
    variant_open(&v, path);
    variant_tensor(&v, "generator.bias")->shape[0] = 12;
    variant_write(&v, bad);
    expect_load_fails(bad, S2S_ERR_FORMAT, "'generator.bias'", "shape [12]", "expects [13]", NULL);
    /* The same through the config: hidden 8 -> 10 makes the stored tensors the wrong size. */
    variant_open(&v, path);
    variant_set_meta(&v, "config", "{\"cell\":\"lstm\",\"layers\":2,\"hidden\":10,\"embed\":6,\"bidirectional\":1,"
                                   "\"attention\":\"general\",\"dropout\":0.1,\"src_vocab\":11,\"tgt_vocab\":13}");
    variant_write(&v, bad);
    expect_load_fails(bad, S2S_ERR_FORMAT, "'encoder.rnn.weight_ih_l0'", "shape [16, 6]", "expects [20, 6]", NULL);
}

Test(modelfile, crc_mismatch)
{
    const char *path = save_good(), *bad = tpath("bad.safetensors");
    s2s_st_file f;
    cr_assert_eq(s2s_st_open(path, &f), S2S_OK);
    size_t at = (size_t)(s2s_st_find(&f, "decoder.attn.linear_in.weight")->data - f.bytes) + 10;
    s2s_st_close(&f);
    size_t n;
    uint8_t *b = read_bytes(path, &n);
    b[at] ^= 0x01; /* one bit of a mantissa: still a finite float */
    write_bytes(bad, b, n);
    expect_load_fails(bad, S2S_ERR_FORMAT, "'decoder.attn.linear_in.weight'", "CRC32", "the file is corrupt", NULL);
    free(b);
}

Test(modelfile, nan_weight)
{
    const char *path = save_good(), *bad = tpath("bad.safetensors");
    variant v;
    variant_open(&v, path);
    s2s_st_out *t = variant_tensor(&v, "decoder.embedding.weight");
    size_t n = (size_t)(t->shape[0] * t->shape[1]);
    float *w = malloc(n * sizeof *w);
    memcpy(w, t->data, n * sizeof *w);
    w[17] = NAN;
    t->data = w;
    variant_write(&v, bad); /* with a matching CRC: the finiteness check is what must fire */
    expect_load_fails(bad, S2S_ERR_NUMERIC, "'decoder.embedding.weight'", "element 17", "not finite", NULL);
    free(w);
}

Test(modelfile, missing_tensor)
{
    const char *path = save_good(), *bad = tpath("bad.safetensors");
    variant v;
    variant_open(&v, path);
    s2s_st_out *t = variant_tensor(&v, "decoder.rnn.bias_hh_l0");
    memmove(t, t + 1, (size_t)(v.t + v.n - (t + 1)) * sizeof *t);
    v.n--;
    variant_write(&v, bad);
    expect_load_fails(bad, S2S_ERR_FORMAT, "'decoder.rnn.bias_hh_l0'", "missing", NULL);
}

Test(modelfile, unknown_tensor)
{
    const char *path = save_good(), *bad = tpath("bad.safetensors");
    variant v;
    variant_open(&v, path);
    static const float extra[3] = {1, 2, 3};
    v.t[v.n++] = (s2s_st_out){"decoder.extra.weight", S2S_ST_F32, 1, {3}, extra};
    variant_write(&v, bad);
    expect_load_fails(bad, S2S_ERR_FORMAT, "unknown tensor 'decoder.extra.weight'", NULL);
}

Test(modelfile, config_not_json)
{
    const char *path = save_good(), *bad = tpath("bad.safetensors");
    variant v;
    variant_open(&v, path);
    variant_set_meta(&v, "config", "{\"cell\": \"lstm\", \"layers\": ");
    variant_write(&v, bad);
    expect_load_fails(bad, S2S_ERR_FORMAT, "\"config\"", "not a valid JSON", NULL);
    /* Valid JSON but an invalid config: s2s_model_create's own check, reported as a bad file. */
    variant_open(&v, path);
    variant_set_meta(&v, "config", "{\"cell\":\"lstm\",\"layers\":2,\"hidden\":8,\"embed\":6,\"bidirectional\":1,"
                                   "\"attention\":\"general\",\"dropout\":1.5,\"src_vocab\":11,\"tgt_vocab\":13}");
    variant_write(&v, bad);
    expect_load_fails(bad, S2S_ERR_FORMAT, "stored config is invalid", "dropout", NULL);
}

Test(modelfile, directory_as_path)
{
    make_tdir();
    expect_load_fails(tdir, S2S_ERR_IO, "is a directory", NULL);
}

Test(modelfile, missing_file)
{
    make_tdir();
    expect_load_fails(tpath("absent.safetensors"), S2S_ERR_IO, "No such file or directory", NULL);
}

/* ---- report ------------------------------------------------------------------------------- */

Test(modelfile, report)
{
    const char *path = save_good();
    static char buf[1 << 16];
    size_t len = 0;
    cr_assert_eq(s2s_model_file_report(path, buf, sizeof buf, &len), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(len, strlen(buf));
    s2s_context *ctx = cpu_ctx(1);
    s2s_model_config c = small_config();
    s2s_model *m = new_model(ctx, &c);
    char line[128];
    for (int i = 0; i < s2s_model_param_count(m); i++) {
        s2s_param_info pi;
        s2s_model_param_info_at(m, i, &pi);
        snprintf(line, sizeof line, "%s ", pi.name);
        cr_assert(strstr(buf, line) != NULL, "no row for %s in\n%s", pi.name, buf);
    }
    cr_assert(strstr(buf, "  ok\n") && !strstr(buf, "BAD") && strstr(buf, "libseq2seq-model"), "%s", buf);
    /* A small buffer gets a NUL-terminated prefix and the full length. */
    char small[16];
    size_t len2 = 0;
    cr_assert_eq(s2s_model_file_report(path, small, sizeof small, &len2), S2S_OK);
    cr_assert(len2 == len && strlen(small) == 15 && strncmp(small, buf, 15) == 0);
    /* A corrupt tensor: the report is still written, marks it, and the status says so. */
    size_t n;
    uint8_t *b = read_bytes(path, &n);
    b[n - 3] ^= 0x40; /* inside generator.bias, the last tensor */
    write_bytes(tpath("bad.safetensors"), b, n);
    cr_assert_eq(s2s_model_file_report(tpath("bad.safetensors"), buf, sizeof buf, &len), S2S_ERR_FORMAT);
    cr_assert(strstr(buf, "BAD (CRC mismatch)") && strstr(buf, "encoder.embedding.weight"), "%s", buf);
    free(b);
    s2s_model_free(m);
    s2s_context_free(ctx);
}

/* ---- checkpoints -------------------------------------------------------------------------- */

static void assert_same_block(const float *a, const float *b, size_t n, const char *what)
{
    cr_assert(memcmp(a, b, n * sizeof *a) == 0, "%s differs after the checkpoint round trip", what);
}

Test(modelfile, checkpoint_round_trip)
{
    make_tdir();
    /* The same seed: it keys the dropout masks, and a resumed run keeps its seed. m2 still
     * starts from other weights than m, which has trained 3 steps. */
    s2s_context *ctx = cpu_ctx(5), *ctx2 = cpu_ctx(5);
    s2s_model_config c = small_config();
    s2s_model *m = new_model(ctx, &c), *m2 = new_model(ctx2, &c);
    s2s_optimizer *opt = NULL, *opt2 = NULL;
    cr_assert_eq(s2s_optimizer_create(m, NULL, &opt), S2S_OK);
    cr_assert_eq(s2s_optimizer_create(m2, NULL, &opt2), S2S_OK);
    train_steps(m, opt, 3);
    static const char blob[17] = "trainer\0state\0xyz";
    s2s_provenance prov = {5, 3, ""};
    const char *path = tpath("ckpt.safetensors");
    cr_assert_eq(s2s_checkpoint_save(path, m, opt, NULL, NULL, &prov, blob, sizeof blob), S2S_OK, "%s",
                 s2s_last_error());
    void *state = NULL;
    size_t state_len = 0;
    cr_assert_eq(s2s_checkpoint_load(path, m2, opt2, &state, &state_len), S2S_OK, "%s", s2s_last_error());
    cr_assert(state_len == sizeof blob && memcmp(state, blob, sizeof blob) == 0, "the trainer state differs");
    free(state);
    cr_assert_eq(opt2->step, 3);
    assert_same_params(m, m2);
    /* CPU context: the moment buffers are host memory, laid out like the parameters. */
    assert_same_block(opt->m, opt2->m, m->params.total, "Adam's first moment");
    assert_same_block(opt->v, opt2->v, m->params.total, "Adam's second moment");
    /* And the runs continue identically: one more step on each gives the same weights. */
    train_steps(m, opt, 1);
    train_steps(m2, opt2, 1);
    assert_same_params(m, m2);
    /* A checkpoint is also a model file. */
    s2s_model *m3 = NULL;
    cr_assert_eq(s2s_model_load(ctx2, path, &m3, NULL, NULL, NULL), S2S_OK, "%s", s2s_last_error());
    s2s_model_free(m3);
    s2s_optimizer_free(opt);
    s2s_optimizer_free(opt2);
    s2s_model_free(m);
    s2s_model_free(m2);
    s2s_context_free(ctx);
    s2s_context_free(ctx2);
}

/* SGD keeps one buffer (momentum) or none; the file holds exactly those. */
Test(modelfile, checkpoint_sgd_moments)
{
    make_tdir();
    s2s_context *ctx = cpu_ctx(5);
    s2s_model_config c = small_config();
    s2s_model *m = new_model(ctx, &c);
    for (int mom = 0; mom < 2; mom++) {
        s2s_optimizer_options oo = s2s_optimizer_options_default();
        oo.type = S2S_OPT_SGD;
        oo.lr = 0.1f;
        oo.momentum = mom ? 0.9f : 0.0f;
        s2s_optimizer *opt = NULL, *opt2 = NULL;
        cr_assert_eq(s2s_optimizer_create(m, &oo, &opt), S2S_OK);
        train_steps(m, opt, 2);
        const char *path = tpath("sgd.safetensors");
        cr_assert_eq(s2s_checkpoint_save(path, m, opt, NULL, NULL, NULL, NULL, 0), S2S_OK, "%s", s2s_last_error());
        s2s_st_file f;
        cr_assert_eq(s2s_st_open(path, &f), S2S_OK);
        cr_assert_eq(s2s_st_find(&f, "optim.m.generator.bias") != NULL, mom);
        cr_assert_null(s2s_st_find(&f, "optim.v.generator.bias"));
        cr_assert_str_eq(s2s_st_meta(&f, "optim_type"), "sgd");
        s2s_st_close(&f);
        /* Into an optimizer with the other momentum setting: refused, naming what differs. */
        oo.momentum = mom ? 0.0f : 0.9f;
        cr_assert_eq(s2s_optimizer_create(m, &oo, &opt2), S2S_OK);
        void *state = NULL;
        size_t len = 0;
        cr_assert_eq(s2s_checkpoint_load(path, m, opt2, &state, &len), S2S_ERR_INVALID_ARG);
        cr_assert(strstr(s2s_last_error(), "moment buffer") != NULL, "%s", s2s_last_error());
        s2s_optimizer_free(opt2);
        s2s_optimizer_free(opt);
    }
    s2s_model_free(m);
    s2s_context_free(ctx);
}

Test(modelfile, checkpoint_into_other_config)
{
    make_tdir();
    s2s_context *ctx = cpu_ctx(5);
    s2s_model_config c = small_config(), c2 = small_config();
    c2.hidden = 10;
    s2s_model *m = new_model(ctx, &c), *m2 = new_model(ctx, &c2);
    s2s_optimizer *opt = NULL, *opt2 = NULL, *sgd = NULL;
    cr_assert_eq(s2s_optimizer_create(m, NULL, &opt), S2S_OK);
    cr_assert_eq(s2s_optimizer_create(m2, NULL, &opt2), S2S_OK);
    const char *path = tpath("ckpt.safetensors");
    cr_assert_eq(s2s_checkpoint_save(path, m, opt, NULL, NULL, NULL, "x", 1), S2S_OK, "%s", s2s_last_error());
    void *state = (void *)1;
    size_t len = 7;
    cr_assert_eq(s2s_checkpoint_load(path, m2, opt2, &state, &len), S2S_ERR_INVALID_ARG);
    cr_assert(strstr(s2s_last_error(), "\"hidden\"") && strstr(s2s_last_error(), "file 8, model 10"), "%s",
              s2s_last_error());
    cr_assert(state == NULL && len == 0);
    /* Adam state into SGD: refused. */
    s2s_optimizer_options oo = s2s_optimizer_options_default();
    oo.type = S2S_OPT_SGD;
    cr_assert_eq(s2s_optimizer_create(m, &oo, &sgd), S2S_OK);
    cr_assert_eq(s2s_checkpoint_load(path, m, sgd, &state, &len), S2S_ERR_INVALID_ARG);
    cr_assert(strstr(s2s_last_error(), "adam") != NULL, "%s", s2s_last_error());
    /* A model file is not a checkpoint. */
    cr_assert_eq(s2s_model_save(m, NULL, NULL, NULL, tpath("model.safetensors")), S2S_OK);
    cr_assert_eq(s2s_checkpoint_load(tpath("model.safetensors"), m, opt, &state, &len), S2S_ERR_FORMAT);
    cr_assert(strstr(s2s_last_error(), "not a checkpoint") != NULL, "%s", s2s_last_error());
    s2s_optimizer_free(sgd);
    s2s_optimizer_free(opt);
    s2s_optimizer_free(opt2);
    s2s_model_free(m);
    s2s_model_free(m2);
    s2s_context_free(ctx);
}

/* ---- interop: the file read by PyTorch --------------------------------------------------
 * tests/interop/torch_logprobs.py builds the same model in PyTorch (tests/golden/make_golden.py),
 * loads the file's weights and prints the float64 log-probability of every reference token.
 * The library's loss on a one-sentence batch is the mean -log p over that sentence's tokens
 * (EOS included), so it must equal the mean of the script's numbers for that sentence.
 * Tolerance: |lib - ref| <= 1e-6 + 1e-5 |ref|. The library computes in float32 on the
 * float32 weights that PyTorch then computes on in float64, so the only difference is float32
 * rounding through a few layers and time steps: ~1e-7 relative is expected (README there). */
#define IO_N 8        /* sentences */
#define IO_MAX 9      /* longest sentence */
#define IO_RTOL 1e-5
#define IO_ATOL 1e-6

/* A python3 that imports torch: $S2S_PYTHON, python3 or /usr/bin/python3. */
static const char *torch_python(void)
{
    static const char *cands[] = {NULL, "python3", "/usr/bin/python3"};
    cands[0] = getenv("S2S_PYTHON");
    for (int i = 0; i < 3; i++) {
        char cmd[512];
        if (!cands[i])
            continue;
        snprintf(cmd, sizeof cmd, "%s -c 'import torch' >/dev/null 2>&1", cands[i]);
        if (system(cmd) == 0)
            return cands[i];
    }
    return NULL;
}

typedef struct io_data {
    int32_t src[IO_N][IO_MAX], tgt[IO_N][IO_MAX], src_len[IO_N], tgt_len[IO_N];
} io_data;

/* Sentences of 1..IO_MAX tokens (targets 0..IO_MAX: an empty target has only EOS) whose
 * target is the source reversed plus one: something a few training steps start to learn. */
static void io_make(io_data *d, uint64_t seed, int vocab)
{
    memset(d, 0, sizeof *d);
    uint64_t s = seed;
    for (int b = 0; b < IO_N; b++) {
        d->src_len[b] = 1 + (int)(tu_next(&s) % IO_MAX);
        d->tgt_len[b] = b == 0 ? 0 : d->src_len[b];
        for (int i = 0; i < d->src_len[b]; i++)
            d->src[b][i] = 4 + (int)(tu_next(&s) % (uint64_t)(vocab - 5));
        for (int i = 0; i < d->tgt_len[b]; i++)
            d->tgt[b][i] = d->src[b][d->src_len[b] - 1 - i] + 1;
    }
}

static s2s_batch io_batch(const io_data *d, int b, int n)
{
    s2s_batch x = {n, IO_MAX, IO_MAX, d->src[b], d->src_len + b, d->tgt[b], d->tgt_len + b};
    return x;
}

static void io_write_batch(const io_data *d, const char *path)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (int b = 0; b < IO_N; b++) {
        for (int i = 0; i < d->src_len[b]; i++)
            fprintf(f, "%s%d", i ? " " : "", d->src[b][i]);
        fprintf(f, "\t");
        for (int i = 0; i < d->tgt_len[b]; i++)
            fprintf(f, "%s%d", i ? " " : "", d->tgt[b][i]);
        fprintf(f, "\n");
    }
    fclose(f);
}

/* Runs the script; sums[b] = sum of -log p over sentence b's tokens, counts[b] their number. */
static void io_run_torch(const char *py, const char *model, const char *batch, double *sums, int *counts)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s tests/interop/torch_logprobs.py %s %s", py, model, batch);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "cannot run %s", cmd);
    int b, t;
    double lp;
    char line[256];
    while (fgets(line, sizeof line, p)) {
        if (sscanf(line, "%d %d %lf", &b, &t, &lp) != 3 || b < 0 || b >= IO_N)
            continue; /* comment lines */
        sums[b] -= lp;
        counts[b]++;
    }
    cr_assert_eq(pclose(p), 0, "%s failed (run it by hand to see why)", cmd);
}

static void interop_case(const char *py, s2s_model_config c, const char *name)
{
    s2s_context *ctx = cpu_ctx(21);
    s2s_model *m = new_model(ctx, &c);
    s2s_optimizer *opt = NULL;
    s2s_optimizer_options oo = s2s_optimizer_options_default();
    oo.lr = 1e-2f;
    cr_assert_eq(s2s_optimizer_create(m, &oo, &opt), S2S_OK);
    io_data d;
    for (int step = 0; step < 20; step++) { /* a few steps, so the weights are not the init */
        io_make(&d, 1000 + (uint64_t)step, c.src_vocab);
        s2s_batch b = io_batch(&d, 0, IO_N);
        s2s_loss_options lo = s2s_loss_options_default();
        lo.step = (uint64_t)step;
        cr_assert_eq(s2s_model_forward_backward(m, &b, &lo, NULL, NULL), S2S_OK, "%s", s2s_last_error());
        cr_assert_eq(s2s_optimizer_step(opt, 0, NULL), S2S_OK, "%s", s2s_last_error());
    }
    io_make(&d, 77, c.src_vocab);
    cr_assert_eq(s2s_model_save(m, NULL, NULL, NULL, tpath("interop.safetensors")), S2S_OK, "%s", s2s_last_error());
    io_write_batch(&d, tpath("batch.txt"));
    double sums[IO_N] = {0}, worst = 0;
    int counts[IO_N] = {0};
    io_run_torch(py, tpath("interop.safetensors"), tpath("batch.txt"), sums, counts);
    for (int b = 0; b < IO_N; b++) {
        s2s_batch one = io_batch(&d, b, 1);
        float loss = 0;
        int ntok = 0;
        cr_assert_eq(s2s_model_evaluate(m, &one, &loss, &ntok), S2S_OK, "%s", s2s_last_error());
        cr_assert_eq(counts[b], ntok, "%s: sentence %d: torch gave %d log-probs, the library counts %d tokens", name,
                     b, counts[b], ntok);
        double ref = sums[b] / counts[b], err = fabs((double)loss - ref);
        worst = fmax(worst, err / fabs(ref));
        cr_assert(err <= IO_ATOL + IO_RTOL * fabs(ref), "%s: sentence %d: library %.9g, torch %.12g (rel %.3g)", name, b,
                  (double)loss, ref, err / fabs(ref));
    }
    cr_log_info("interop %s: largest relative difference of the mean -log p per sentence: %.3g", name, worst);
    s2s_optimizer_free(opt);
    s2s_model_free(m);
    s2s_context_free(ctx);
}

Test(interop, torch_logprobs, .fini = remove_tdir, .timeout = 300)
{
    const char *py = torch_python();
    if (!py)
        cr_skip_test("no python3 with torch ($S2S_PYTHON, python3, /usr/bin/python3)");
    make_tdir();
    s2s_model_config c = small_config(); /* LSTM, 2 layers, bidirectional, general attention */
    c.hidden = 16;
    c.embed = 8;
    c.src_vocab = c.tgt_vocab = 17;
    interop_case(py, c, "lstm_bi_general_l2");
    c.cell = S2S_CELL_GRU, c.layers = 1, c.bidirectional = 0, c.attention = S2S_ATTN_DOT;
    interop_case(py, c, "gru_uni_dot");
    c.cell = S2S_CELL_RNN_TANH, c.layers = 2, c.bidirectional = 1, c.attention = S2S_ATTN_NONE;
    interop_case(py, c, "rnn_bi_none_l2");
    /* tied embeddings: PyTorch ties the Parameters (make_golden.py) and fills every role from
     * the file's one tensor */
    c = small_config();
    c.hidden = c.embed = 16, c.src_vocab = c.tgt_vocab = 17;
    c.tie_embeddings = S2S_TIE_DECODER;
    interop_case(py, c, "lstm_tied_decoder");
    c.tie_embeddings = S2S_TIE_ALL;
    interop_case(py, c, "lstm_tied_all");
}

/* ---- averaging ------------------------------------------------------------------------------ */

/* The average of three files is the mean of their tensors (summed in double, rounded once); of
 * one file, that file's weights; the provenance is the last file's; a file of another config is
 * refused naming the field, one with other tokenizers refused too; nothing is written then. */
Test(modelfile, average_is_the_mean)
{
    make_tdir();
    s2s_model_config c = small_config();
    const char *names[3] = {"avg-a.safetensors", "avg-b.safetensors", "avg-c.safetensors"};
    char paths[3][128];
    float *w[3];
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        s2s_context *ctx = cpu_ctx(10 + (uint64_t)i); /* another seed, other weights */
        s2s_model *m = new_model(ctx, &c);
        s2s_provenance prov = {10 + (uint64_t)i, 100 * (uint64_t)(i + 1), ""};
        snprintf(paths[i], sizeof paths[i], "%s", tpath(names[i]));
        cr_assert_eq(s2s_model_save(m, NULL, NULL, &prov, paths[i]), S2S_OK, "%s", s2s_last_error());
        w[i] = tu_weights(m, &n);
        s2s_model_free(m);
        s2s_context_free(ctx);
    }
    s2s_context *ctx = cpu_ctx(1);
    const char *files[3] = {paths[0], paths[1], paths[2]};
    char out[128];
    snprintf(out, sizeof out, "%s", tpath("avg.safetensors"));
    cr_assert_eq(s2s_model_average(ctx, files, 3, out), S2S_OK, "%s", s2s_last_error());
    s2s_model *avg = NULL;
    s2s_provenance prov;
    cr_assert_eq(s2s_model_load(ctx, out, &avg, NULL, NULL, &prov), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(prov.step, 300, "the provenance is the last file's");
    size_t na;
    float *a = tu_weights(avg, &na);
    int differ = 0;
    for (size_t k = 0; k < n; k++) {
        float want = (float)(((double)w[0][k] + (double)w[1][k] + (double)w[2][k]) / 3.0);
        differ += memcmp(&a[k], &want, sizeof want) != 0;
    }
    cr_assert_eq(differ, 0, "%d of %zu weights are not the mean", differ, n);
    cr_assert(memcmp(a, w[0], sizeof(float) * n) != 0, "the files were not different");
    free(a);
    s2s_model_free(avg);
    /* one file: itself */
    cr_assert_eq(s2s_model_average(ctx, files + 1, 1, out), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(s2s_model_load(ctx, out, &avg, NULL, NULL, NULL), S2S_OK);
    a = tu_weights(avg, &na);
    cr_assert_eq(memcmp(a, w[1], sizeof(float) * n), 0);
    free(a);
    s2s_model_free(avg);
    /* another config: refused, naming the file and the field; the output is left alone */
    s2s_model_config c2 = c;
    c2.hidden = 10;
    s2s_model *other = new_model(ctx, &c2);
    char bad[128];
    snprintf(bad, sizeof bad, "%s", tpath("avg-other.safetensors"));
    cr_assert_eq(s2s_model_save(other, NULL, NULL, NULL, bad), S2S_OK);
    s2s_model_free(other);
    const char *mixed[3] = {paths[0], bad, paths[2]};
    size_t before_len = 0;
    uint8_t *before = read_bytes(out, &before_len);
    cr_assert_eq(s2s_model_average(ctx, mixed, 3, out), S2S_ERR_INVALID_ARG);
    cr_assert(strstr(s2s_last_error(), "avg-other.safetensors") && strstr(s2s_last_error(), "\"hidden\""), "%s",
              s2s_last_error());
    size_t after_len = 0;
    uint8_t *after = read_bytes(out, &after_len);
    cr_assert(before_len == after_len && !memcmp(before, after, before_len), "a refused average wrote its output");
    free(before), free(after);
    /* tied and untied (one tensor fewer): refused naming the field, either way round */
    s2s_model_config c4 = c;
    c4.embed = c4.hidden;
    char up[128], tp[128];
    snprintf(up, sizeof up, "%s", tpath("avg-untied.safetensors"));
    snprintf(tp, sizeof tp, "%s", tpath("avg-tied.safetensors"));
    s2s_model *un = new_model(ctx, &c4);
    c4.tie_embeddings = S2S_TIE_DECODER;
    s2s_model *ti = new_model(ctx, &c4);
    cr_assert_eq(s2s_model_save(un, NULL, NULL, NULL, up), S2S_OK);
    cr_assert_eq(s2s_model_save(ti, NULL, NULL, NULL, tp), S2S_OK);
    s2s_model_free(un), s2s_model_free(ti);
    const char *ut[2] = {up, tp}, *tu[2] = {tp, up};
    cr_assert_eq(s2s_model_average(ctx, ut, 2, out), S2S_ERR_INVALID_ARG);
    cr_assert(strstr(s2s_last_error(), "\"tie_embeddings\""), "%s", s2s_last_error());
    cr_assert_eq(s2s_model_average(ctx, tu, 2, out), S2S_ERR_INVALID_ARG);
    cr_assert(strstr(s2s_last_error(), "\"tie_embeddings\""), "%s", s2s_last_error());
    /* other tokenizers (one file has them, the other not): refused */
    static const char *text[] = {"the cat sat on the mat", "a dog ran in the park", "the bird sang a song"};
    const char *sents[120];
    for (int i = 0; i < 120; i++)
        sents[i] = text[i % 3];
    s2s_tokenizer_options to = s2s_tokenizer_options_default();
    to.vocab_size = c.src_vocab + 12;
    s2s_tokenizer *tok = NULL;
    if (s2s_tokenizer_train(sents, 120, &to, &tok) == S2S_OK && s2s_tokenizer_vocab_size(tok) == c.src_vocab + 12) {
        s2s_model_config c3 = c;
        c3.src_vocab = c3.tgt_vocab = s2s_tokenizer_vocab_size(tok);
        s2s_model *t1 = new_model(ctx, &c3);
        char p1[128], p2[128];
        snprintf(p1, sizeof p1, "%s", tpath("avg-tok.safetensors"));
        snprintf(p2, sizeof p2, "%s", tpath("avg-notok.safetensors"));
        cr_assert_eq(s2s_model_save(t1, tok, tok, NULL, p1), S2S_OK, "%s", s2s_last_error());
        cr_assert_eq(s2s_model_save(t1, NULL, NULL, NULL, p2), S2S_OK, "%s", s2s_last_error());
        const char *tk[2] = {p2, p1};
        cr_assert_eq(s2s_model_average(ctx, tk, 2, out), S2S_ERR_INVALID_ARG);
        cr_assert(strstr(s2s_last_error(), "tokenizers"), "%s", s2s_last_error());
        s2s_model_free(t1);
    }
    s2s_tokenizer_free(tok);
    for (int i = 0; i < 3; i++)
        free(w[i]);
    s2s_context_free(ctx);
}
