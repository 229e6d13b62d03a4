/* test_fuzz_regressions.c - what the libFuzzer targets (tests/fuzz/) found, replayed without
 * libFuzzer, and the committed seed corpora run once through their readers (so a format change
 * that makes the seeds stale shows here, not as a silently weaker fuzz run).
 *   ./build/tests/test_suite --filter 'fuzz_regressions/?*'
 * Regenerate the binary seeds with scripts/fuzz.sh --make-seeds. */
#include "safetensors.h"
#include "seq2seq.h"
#include "test_util.h"
#include <dirent.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SEEDS "tests/fuzz/seeds"

static s2s_context *cpu_context(void)
{
    s2s_context_options o = s2s_context_options_default();
    o.device = S2S_DEVICE_CPU, o.threads = 1;
    s2s_context *ctx = NULL;
    cr_assert_eq(s2s_context_create(&o, &ctx), S2S_OK, "%s", s2s_last_error());
    return ctx;
}

/* Copies the file at from to to with the metadata "config" replaced (tensors, CRCs unchanged). */
static void rewrite_config(const char *from, const char *to, const char *config)
{
    s2s_st_file f;
    cr_assert_eq(s2s_st_open(from, &f), S2S_OK, "%s", s2s_last_error());
    s2s_st_out t[64];
    s2s_st_kv kv[16];
    int nkv = 0;
    cr_assert(f.count <= 64);
    for (int i = 0; i < f.count; i++) {
        memset(&t[i], 0, sizeof t[i]);
        t[i].name = f.t[i].name, t[i].dtype = f.t[i].dtype, t[i].ndim = f.t[i].ndim, t[i].data = f.t[i].data;
        memcpy(t[i].shape, f.t[i].shape, sizeof t[i].shape);
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, f.meta) {
        cr_assert(nkv < 16);
        kv[nkv].key = e->string;
        kv[nkv++].value = strcmp(e->string, "config") ? e->valuestring : config;
    }
    cr_assert_eq(s2s_st_write(to, kv, nkv, t, f.count), S2S_OK, "%s", s2s_last_error());
    s2s_st_close(&f);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* fuzz_modelfile: a 2.6 KB model file whose config claims hidden 1024 and vocabularies of
 * 200,000 made s2s_model_load allocate (and initialise) a 2.5 GB model before finding that the
 * tensors are not there (libFuzzer: out-of-memory, malloc(2554934528)); with hidden 65536 and
 * vocabularies of 10^9 it asked for 786 TB and failed as "out of memory". Both are corrupt
 * files: S2S_ERR_FORMAT, at once, before any model exists. */
Test(fuzz_regressions, model_config_larger_than_the_file_is_refused_before_allocating, .timeout = 30)
{
    static const char *configs[] = {
        "{\"cell\":\"lstm\",\"layers\":1,\"hidden\":1024,\"embed\":1024,\"bidirectional\":0,\"attention\":\"general\","
        "\"dropout\":0.1,\"src_vocab\":200000,\"tgt_vocab\":200000}",
        "{\"cell\":\"lstm\",\"layers\":1,\"hidden\":65536,\"embed\":65536,\"bidirectional\":0,\"attention\":"
        "\"general\",\"dropout\":0.1,\"src_vocab\":1000000000,\"tgt_vocab\":1000000000}",
        "{\"cell\":\"gru\",\"layers\":16,\"hidden\":4096,\"embed\":8,\"bidirectional\":1,\"attention\":\"dot\","
        "\"dropout\":0,\"src_vocab\":5,\"tgt_vocab\":5}",
    };
    s2s_context *ctx = cpu_context();
    char dir[] = "/tmp/s2s-fuzzreg-XXXXXX", path[128];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/big.safetensors", dir);
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
        rewrite_config(SEEDS "/modelfile/lstm_general.safetensors", path, configs[i]);
        s2s_model *m = NULL;
        s2s_tokenizer *ts = NULL, *tt = NULL;
        double t0 = now_s();
        s2s_status st = s2s_model_load(ctx, path, &m, &ts, &tt, NULL);
        double dt = now_s() - t0;
        cr_assert_eq(st, S2S_ERR_FORMAT, "config %zu: status %d: %s", i, (int)st, s2s_last_error());
        cr_assert(strstr(s2s_last_error(), "needs at least") && strstr(s2s_last_error(), "the file is corrupt"),
                  "config %zu: %s", i, s2s_last_error());
        cr_assert(m == NULL && ts == NULL && tt == NULL);
        cr_assert_lt(dt, 1.0, "config %zu: refusing took %.2f s (allocated the model first?)", i, dt);
    }
    unlink(path);
    rmdir(dir);
    s2s_context_free(ctx);
}

/* The names of the regular files in SEEDS/sub, sorted; their count. */
static int seed_files(const char *sub, char names[][320], int cap)
{
    char dir[64];
    snprintf(dir, sizeof dir, SEEDS "/%s", sub);
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "no seed directory %s (run from the repository root)", dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.' && n < cap)
            snprintf(names[n++], 320, "%s/%s", dir, e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    cr_assert_gt(n, 0, "no seeds in %s", dir);
    return n;
}

/* The model seeds are valid files (they are meant to lead the fuzzer into the deep checks). */
Test(fuzz_regressions, model_seeds_load_and_report)
{
    static char names[32][320], report[8192];
    int n = seed_files("modelfile", names, 32);
    s2s_context *ctx = cpu_context();
    for (int i = 0; i < n; i++) {
        s2s_model *m = NULL;
        s2s_tokenizer *ts = NULL, *tt = NULL;
        cr_assert_eq(s2s_model_load(ctx, names[i], &m, &ts, &tt, NULL), S2S_OK,
                     "%s: %s (stale seed? scripts/fuzz.sh --make-seeds)", names[i], s2s_last_error());
        size_t len;
        cr_assert_eq(s2s_model_file_report(names[i], report, sizeof report, &len), S2S_OK, "%s", names[i]);
        s2s_tokenizer_free(ts);
        s2s_tokenizer_free(tt);
        s2s_model_free(m);
    }
    s2s_context_free(ctx);
}

Test(fuzz_regressions, safetensors_seeds_open)
{
    static char names[32][320];
    int n = seed_files("safetensors", names, 32);
    for (int i = 0; i < n; i++) {
        s2s_st_file f;
        cr_assert_eq(s2s_st_open(names[i], &f), S2S_OK, "%s: %s", names[i], s2s_last_error());
        s2s_st_close(&f);
    }
}

/* The text seeds hold quirks on purpose: they must read (or be refused) without a crash; the
 * real-data snippets must give pairs. */
Test(fuzz_regressions, text_seeds_read)
{
    static char names[32][320];
    s2s_corpus_options o = s2s_corpus_options_default();
    int n = seed_files("chatterbot", names, 32), pairs = 0;
    for (int i = 0; i < n; i++) {
        s2s_corpus *c = NULL;
        cr_assert_eq(s2s_corpus_create(&c), S2S_OK);
        s2s_status st = s2s_corpus_add_chatterbot(c, names[i], &o);
        cr_assert(st == S2S_OK || st == S2S_ERR_FORMAT, "%s: %s", names[i], s2s_last_error());
        pairs += (int)s2s_corpus_size(c);
        s2s_corpus_free(c);
    }
    cr_assert_gt(pairs, 10, "the ChatterBot seeds gave %d pairs", pairs);
    n = seed_files("dailydialog", names, 32), pairs = 0;
    for (int i = 0; i < n; i++) {
        s2s_corpus *c = NULL;
        cr_assert_eq(s2s_corpus_create(&c), S2S_OK);
        s2s_status st = s2s_corpus_add_dailydialog(c, names[i], NULL, &o, NULL);
        cr_assert(st == S2S_OK || st == S2S_ERR_FORMAT, "%s: %s", names[i], s2s_last_error());
        pairs += (int)s2s_corpus_size(c);
        s2s_corpus_free(c);
    }
    cr_assert_gt(pairs, 10, "the DailyDialog seeds gave %d pairs", pairs);
    /* corpus seeds start with fuzz_corpus's options byte: the TSV reader sees it as text */
    n = seed_files("corpus", names, 32);
    for (int i = 0; i < n; i++) {
        s2s_corpus *c = NULL;
        s2s_status st = s2s_corpus_read_tsv(names[i], &o, &c);
        cr_assert(st == S2S_OK || st == S2S_ERR_FORMAT, "%s: %s", names[i], s2s_last_error());
        s2s_corpus_free(c);
    }
}
