/* test_tokenizer.c - the SentencePiece wrapper (lib/data/tokenizer.cc): training unigram and BPE
 * models on real sentences (Tatoeba English and French from ../shared/data when present,
 * generated text otherwise), the fixed special ids, encode/decode round trips under the
 * nmt_nfkc normaliser, serialise/load, corrupt and truncated model bytes, buffer sizes,
 * argument checks, determinism, and silence (SentencePiece must print nothing).
 * Run from the repository root. */
#include "seq2seq.h"
#include "test_util.h"
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TATOEBA "tatoeba-eng-fra/eng-fra.tsv"
#define N_WANT 3000 /* sentences: both sides of every k-th Tatoeba pair */

static char **corpus;
static size_t ncorpus;
static const char *corpus_source;

/* Generated text when the corpus is absent: English and French words with accents. */
static void generate_corpus(void)
{
    static const char *const words[] = {
        "the", "cat", "is", "on", "table", "I", "think", "that", "we", "will", "go", "home", "tomorrow", "he",
        "she", "loves", "music", "le", "chat", "est", "sur", "la", "je", "pense", "que", "nous", "irons", "à",
        "maison", "demain", "été", "très", "où", "ça", "garçon", "français", "bientôt", "cœur", "déjà", "fenêtre",
        "hôtel", "naïf", "leçon", "août", "Noël", "l'école", "qu'il", "Où", "Le", "Je", "C'est", "Il", "Ils",
        "Bonjour", "dit-il", "peut-être", "aujourd'hui", "beau", "fait", "gare", "peur", "arrivés", "préféré",
        "bien", "matin", "si", "tout", "va", "de", "pas", "n'ai", "sont", "a", "!", "?", ".", ",", "«", "»"};
    const size_t nw = sizeof words / sizeof words[0];
    uint64_t s = 12345;
    ncorpus = N_WANT;
    corpus = calloc(ncorpus, sizeof *corpus);
    cr_assert(corpus);
    for (size_t i = 0; i < ncorpus; i++) {
        char buf[512] = "";
        int len = 3 + (int)(tu_next(&s) % 12);
        for (int k = 0; k < len; k++) {
            if (k)
                strcat(buf, " ");
            strcat(buf, words[tu_next(&s) % nw]);
        }
        corpus[i] = strdup(buf);
    }
    corpus_source = "generated text";
}

/* Both sides of every k-th line of the Tatoeba file, about N_WANT sentences. */
static void load_corpus(void)
{
    if (corpus)
        return;
    const char *mirror = getenv("S2S_DATA_MIRROR");
    char path[512];
    snprintf(path, sizeof path, "%s/" TATOEBA, mirror && *mirror ? mirror : "../shared/data");
    FILE *f = fopen(path, "r");
    if (!f) {
        generate_corpus();
        return;
    }
    size_t cap = N_WANT + 2, lineno = 0, every = 135842 / (N_WANT / 2) + 1;
    corpus = calloc(cap, sizeof *corpus);
    cr_assert(corpus);
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) > 0 && ncorpus + 2 <= cap) {
        if (lineno++ % every)
            continue;
        if (line[len - 1] == '\n')
            line[len - 1] = '\0';
        char *tab = strchr(line, '\t');
        cr_assert(tab, "%s:%zu has no TAB", path, lineno);
        *tab = '\0';
        corpus[ncorpus++] = strdup(line);
        corpus[ncorpus++] = strdup(tab + 1);
    }
    free(line);
    fclose(f);
    corpus_source = "Tatoeba";
}

static s2s_tokenizer *train(s2s_tokenizer_type type, int vocab, size_t max_sentences, uint64_t seed)
{
    load_corpus();
    s2s_tokenizer_options o = s2s_tokenizer_options_default();
    o.type = type;
    o.vocab_size = vocab;
    o.max_sentences = max_sentences;
    o.seed = seed;
    s2s_tokenizer *t = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    s2s_status st = s2s_tokenizer_train((const char *const *)corpus, ncorpus, &o, &t);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_eq(st, S2S_OK, "%s", s2s_last_error());
    cr_assert(t);
    if (getenv("S2S_TEST_VERBOSE"))
        fprintf(stderr, "tokenizer: %s, vocab %d, %zu %s sentences: %.3f s\n", type == S2S_TOKENIZER_BPE ? "bpe" : "unigram",
                s2s_tokenizer_vocab_size(t), ncorpus, corpus_source,
                (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    return t;
}

static s2s_tokenizer *train_default(s2s_tokenizer_type type) { return train(type, 500, 3000, 1); }

/* Encodes text into a fresh array (*n ids). */
static int32_t *encode(const s2s_tokenizer *t, const char *text, int *n)
{
    cr_assert_eq(s2s_tokenizer_encode(t, text, NULL, 0, n), S2S_OK, "%s", s2s_last_error());
    int32_t *ids = malloc(sizeof *ids * (size_t)(*n + 1));
    int n2 = -1;
    cr_assert_eq(s2s_tokenizer_encode(t, text, ids, *n, &n2), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(n2, *n);
    return ids;
}

/* decode(encode(text)) into a malloc'd string. */
static char *round_trip(const s2s_tokenizer *t, const char *text)
{
    int n;
    int32_t *ids = encode(t, text, &n);
    size_t len = 0, cap = 4 * strlen(text) + 64;
    char *buf = malloc(cap);
    cr_assert_eq(s2s_tokenizer_decode(t, ids, n, buf, cap, &len), S2S_OK, "%s", s2s_last_error());
    cr_assert_lt(len, cap);
    cr_assert_eq(strlen(buf), len);
    free(ids);
    return buf;
}

static int is_plain_ascii(const char *s)
{
    if (!*s || s[0] == ' ' || s[strlen(s) - 1] == ' ' || strstr(s, "  "))
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p >= 0x7F)
            return 0;
    return 1;
}

/* Everything a trained model must satisfy, for either type. */
static void check_model(s2s_tokenizer_type type)
{
    s2s_tokenizer *t = train_default(type);
    int V = s2s_tokenizer_vocab_size(t);
    cr_assert(V > 100 && V <= 500, "vocab size %d", V);
    static const char *const special[] = {"<pad>", "<s>", "</s>", "<unk>"};
    char piece[64];
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(s2s_tokenizer_piece(t, i, piece, sizeof piece), S2S_OK, "%s", s2s_last_error());
        cr_assert_str_eq(piece, special[i]);
    }
    int ascii = 0;
    for (size_t i = 0; i < ncorpus; i++) {
        int n;
        int32_t *ids = encode(t, corpus[i], &n);
        cr_assert_gt(n, 0, "'%s' encodes to nothing", corpus[i]);
        for (int k = 0; k < n; k++)
            cr_assert(ids[k] >= S2S_UNK_ID && ids[k] < V, "'%s': id %d at %d", corpus[i], ids[k], k);
        free(ids);
        /* the normal form is a fixed point; plain ASCII is already in it */
        char *once = round_trip(t, corpus[i]), *twice = round_trip(t, once);
        cr_assert_str_eq(twice, once, "normal form of '%s' is not stable", corpus[i]);
        if (is_plain_ascii(corpus[i])) {
            cr_assert_str_eq(once, corpus[i]);
            ascii++;
        }
        free(once);
        free(twice);
    }
    cr_assert_gt(ascii, 100, "only %d plain ASCII sentences checked", ascii);
    s2s_tokenizer_free(t);
}

Test(tokenizer, unigram_special_ids_and_round_trip, .timeout = 60) { check_model(S2S_TOKENIZER_UNIGRAM); }

Test(tokenizer, bpe_special_ids_and_round_trip, .timeout = 60) { check_model(S2S_TOKENIZER_BPE); }

/* nmt_nfkc: accents survive, the Unicode spaces of French typography become ' '. */
Test(tokenizer, french_round_trip_under_nmt_nfkc, .timeout = 60)
{
    s2s_tokenizer *t = train_default(S2S_TOKENIZER_UNIGRAM);
    static const char *const same[] = {
        "Où est la gare ?", "C'est déjà l'été, ça va très bien.", "Le garçon a préféré la leçon de français.",
        "Je n'ai pas peur !", "« Bonjour », dit-il.", "Ils sont arrivés à l'hôtel."};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        int n;
        int32_t *ids = encode(t, same[i], &n);
        for (int k = 0; k < n; k++)
            cr_assert_neq(ids[k], S2S_UNK_ID, "'%s' has an unknown piece at %d", same[i], k);
        free(ids);
        char *back = round_trip(t, same[i]);
        cr_assert_str_eq(back, same[i]);
        free(back);
    }
    /* not in normal form: NARROW NO-BREAK SPACE, NO-BREAK SPACE, doubled and outer spaces */
    static const char *const in[] = {"Cours\u202f!", "«\u00a0Bonjour\u00a0»", "  Où   est-il ?  "};
    static const char *const out[] = {"Cours !", "« Bonjour »", "Où est-il ?"};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        char *back = round_trip(t, in[i]);
        cr_assert_str_eq(back, out[i]);
        free(back);
    }
    s2s_tokenizer_free(t);
}

Test(tokenizer, unknown_characters_give_unk, .timeout = 60)
{
    s2s_tokenizer *t = train_default(S2S_TOKENIZER_BPE);
    int n, unk = 0;
    int32_t *ids = encode(t, "le \xe6\xbc\xa2\xe5\xad\x97", &n); /* two CJK characters */
    for (int k = 0; k < n; k++)
        unk += ids[k] == S2S_UNK_ID;
    cr_assert_gt(unk, 0);
    free(ids);
    s2s_tokenizer_free(t);
}

Test(tokenizer, serialize_load_gives_identical_encodings, .timeout = 60)
{
    s2s_tokenizer *t = train_default(S2S_TOKENIZER_BPE), *u = NULL;
    const void *bytes, *bytes2;
    size_t len, len2;
    cr_assert_eq(s2s_tokenizer_serialize(t, &bytes, &len), S2S_OK);
    cr_assert_gt(len, 1000);
    cr_assert_eq(s2s_tokenizer_load(bytes, len, &u), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(s2s_tokenizer_vocab_size(u), s2s_tokenizer_vocab_size(t));
    cr_assert_eq(s2s_tokenizer_serialize(u, &bytes2, &len2), S2S_OK);
    cr_assert(len2 == len && memcmp(bytes, bytes2, len) == 0, "serialize(load(b)) != b");
    for (size_t i = 0; i < ncorpus; i += 7) {
        int n1, n2;
        int32_t *a = encode(t, corpus[i], &n1), *b = encode(u, corpus[i], &n2);
        cr_assert(n1 == n2 && memcmp(a, b, sizeof *a * (size_t)n1) == 0, "'%s' encodes differently", corpus[i]);
        free(a);
        free(b);
    }
    s2s_tokenizer_free(u);
    s2s_tokenizer_free(t);
}

/* End offsets of the top-level protobuf fields of a model (varint/length-delimited only). */
static size_t field_ends(const unsigned char *b, size_t len, size_t *ends, size_t cap)
{
    size_t n = 0, i = 0;
    while (i < len && n < cap) {
        uint64_t tag = b[i++], v = 0;
        cr_assert_lt(tag, 0x80, "a model field number above 15");
        for (int sh = 0;; sh += 7) {
            v |= (uint64_t)(b[i] & 0x7F) << sh;
            if (!(b[i++] & 0x80))
                break;
        }
        cr_assert((tag & 7) == 2 || (tag & 7) == 0, "unexpected wire type %d", (int)(tag & 7));
        if ((tag & 7) == 2)
            i += v;
        ends[n++] = i;
    }
    return n;
}

Test(tokenizer, corrupt_and_truncated_models_fail, .timeout = 120)
{
    s2s_tokenizer *t = train_default(S2S_TOKENIZER_UNIGRAM), *u = NULL;
    const void *bytes;
    size_t len;
    cr_assert_eq(s2s_tokenizer_serialize(t, &bytes, &len), S2S_OK);
    const unsigned char *b = bytes;

    cr_assert_eq(s2s_tokenizer_load(NULL, 10, &u), S2S_ERR_INVALID_ARG);
    cr_assert_eq(s2s_tokenizer_load(b, 0, &u), S2S_ERR_INVALID_ARG);
    cr_assert_eq(s2s_tokenizer_load("not a model", 11, &u), S2S_ERR_FORMAT);
    cr_assert(strstr(s2s_last_error(), "SentencePiece model") != NULL, "%s", s2s_last_error());
    cr_assert_null(u);

    /* cut mid-field */
    size_t cuts[] = {1, 2, 10, 100, len / 3, len / 2, len - 100, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        cr_assert_eq(s2s_tokenizer_load(b, cuts[i], &u), S2S_ERR_FORMAT, "cut at %zu of %zu loaded", cuts[i], len);
        cr_assert_null(u);
    }
    /* cut at field boundaries: protobuf parses these; the wrapper must still refuse them */
    static size_t ends[4096];
    size_t nf = field_ends(b, len, ends, 4096);
    cr_assert_eq(ends[nf - 1], len);
    size_t at[] = {ends[0], ends[nf / 2], ends[nf - 3], ends[nf - 2]};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        cr_assert_eq(s2s_tokenizer_load(b, at[i], &u), S2S_ERR_FORMAT, "cut at field boundary %zu of %zu loaded",
                     at[i], len);
        if (i > 0) /* SentencePiece itself takes these; one piece alone lacks <unk> */
            cr_assert(strstr(s2s_last_error(), "truncated") != NULL, "%s", s2s_last_error());
    }
    /* flipped bytes (fixed positions): either refused or still usable, never a crash */
    unsigned char *c = malloc(len);
    uint64_t s = 77;
    int refused = 0;
    for (int k = 0; k < 60; k++) {
        memcpy(c, b, len);
        size_t pos = k < 30 ? (size_t)(tu_next(&s) % 8000) : (size_t)(tu_next(&s) % len);
        c[pos] ^= (unsigned char)(1 + tu_next(&s) % 255);
        s2s_status st = s2s_tokenizer_load(c, len, &u);
        cr_assert(st == S2S_OK || st == S2S_ERR_FORMAT, "flip at %zu: %s", pos, s2s_last_error());
        if (st == S2S_OK) {
            int n;
            cr_assert_eq(s2s_tokenizer_encode(u, corpus[k], NULL, 0, &n), S2S_OK);
            s2s_tokenizer_free(u);
        } else {
            refused++;
        }
    }
    cr_assert_gt(refused, 0);
    free(c);
    s2s_tokenizer_free(t);
}

Test(tokenizer, foreign_special_ids_are_refused, .timeout = 60)
{
    /* A .model file from spm_train with SentencePiece's default ids (unk 0, bos 1, eos 2, no pad). */
    if (access("/usr/bin/spm_train", X_OK) != 0)
        cr_skip_test("no /usr/bin/spm_train to make a model with SentencePiece's default ids");
    load_corpus();
    const char *tmp = getenv("TMPDIR");
    char dir[256], cmd[1024], path[512];
    snprintf(dir, sizeof dir, "%s/s2s_tok_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/in.txt", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    for (size_t i = 0; i < ncorpus; i++)
        fprintf(f, "%s\n", corpus[i]);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "/usr/bin/spm_train --input=%s --model_prefix=%s/m --vocab_size=300 --hard_vocab_limit=false "
             "--minloglevel=3 >/dev/null 2>&1",
             path, dir);
    int rc = system(cmd);
    snprintf(path, sizeof path, "%s/m.model", dir);
    f = rc == 0 ? fopen(path, "rb") : NULL;
    static char model[1 << 21];
    size_t len = f ? fread(model, 1, sizeof model, f) : 0;
    if (f)
        fclose(f);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    cr_assert(len > 0, "spm_train failed (%d)", rc);
    s2s_tokenizer *u = NULL;
    cr_assert_eq(s2s_tokenizer_load(model, len, &u), S2S_ERR_FORMAT);
    cr_assert(strstr(s2s_last_error(), "pad=-1 bos=1 eos=2 unk=0") != NULL, "%s", s2s_last_error());
}

Test(tokenizer, encode_reports_full_count, .timeout = 60)
{
    s2s_tokenizer *t = train_default(S2S_TOKENIZER_UNIGRAM);
    const char *text = "Je pense que nous irons à la maison demain matin, si tout va bien.";
    int n, m = -1;
    int32_t *all = encode(t, text, &n);
    cr_assert_gt(n, 4);
    int32_t small[3] = {-7, -7, -7};
    cr_assert_eq(s2s_tokenizer_encode(t, text, small, 2, &m), S2S_OK);
    cr_assert_eq(m, n, "*n %d, full count %d", m, n);
    cr_assert(small[0] == all[0] && small[1] == all[1] && small[2] == -7, "wrote past cap");
    cr_assert_eq(s2s_tokenizer_encode(t, "", small, 2, &m), S2S_OK);
    cr_assert_eq(m, 0);
    cr_assert_eq(s2s_tokenizer_encode(t, text, NULL, 2, &m), S2S_ERR_INVALID_ARG);
    cr_assert_eq(s2s_tokenizer_encode(t, text, small, -1, &m), S2S_ERR_INVALID_ARG);
    cr_assert_eq(s2s_tokenizer_encode(t, NULL, small, 2, &m), S2S_ERR_INVALID_ARG);
    free(all);
    s2s_tokenizer_free(t);
}

Test(tokenizer, decode_skips_specials_checks_ids_and_reports_length, .timeout = 60)
{
    s2s_tokenizer *t = train_default(S2S_TOKENIZER_BPE);
    const char *text = "Il fait très beau aujourd'hui.";
    int n, V = s2s_tokenizer_vocab_size(t);
    int32_t *ids = encode(t, text, &n);
    int32_t framed[64];
    framed[0] = S2S_BOS_ID;
    memcpy(framed + 1, ids, sizeof *ids * (size_t)n);
    framed[n + 1] = S2S_EOS_ID;
    framed[n + 2] = S2S_PAD_ID;
    framed[n + 3] = S2S_PAD_ID;
    char buf[256];
    size_t len = 0;
    cr_assert_eq(s2s_tokenizer_decode(t, framed, n + 4, buf, sizeof buf, &len), S2S_OK, "%s", s2s_last_error());
    cr_assert_str_eq(buf, text);
    cr_assert_eq(len, strlen(text));

    /* too small: full length reported, truncated text NUL-terminated inside cap */
    memset(buf, 'x', sizeof buf);
    cr_assert_eq(s2s_tokenizer_decode(t, ids, n, buf, 6, &len), S2S_OK);
    cr_assert_eq(len, strlen(text));
    cr_assert_eq(buf[5], '\0');
    cr_assert_eq(strncmp(buf, text, 5), 0);
    cr_assert_eq(buf[6], 'x');
    cr_assert_eq(s2s_tokenizer_decode(t, ids, n, NULL, 0, &len), S2S_OK);
    cr_assert_eq(len, strlen(text));

    int32_t bad[] = {ids[0], V, ids[1]};
    cr_assert_eq(s2s_tokenizer_decode(t, bad, 3, buf, sizeof buf, &len), S2S_ERR_INVALID_ARG);
    char want[64];
    snprintf(want, sizeof want, "id %d at position 1", V);
    cr_assert(strstr(s2s_last_error(), want) != NULL, "%s", s2s_last_error());
    bad[1] = -5;
    cr_assert_eq(s2s_tokenizer_decode(t, bad, 3, buf, sizeof buf, &len), S2S_ERR_INVALID_ARG);
    cr_assert(strstr(s2s_last_error(), "id -5") != NULL, "%s", s2s_last_error());

    char piece[8];
    cr_assert_eq(s2s_tokenizer_piece(t, V, piece, sizeof piece), S2S_ERR_INVALID_ARG);
    cr_assert_eq(s2s_tokenizer_piece(t, S2S_UNK_ID, piece, 5), S2S_ERR_INVALID_ARG); /* "<unk>" needs 6 */
    cr_assert_eq(s2s_tokenizer_piece(t, S2S_UNK_ID, piece, 6), S2S_OK);
    cr_assert_str_eq(piece, "<unk>");
    free(ids);
    s2s_tokenizer_free(t);
}

Test(tokenizer, same_seed_same_model, .timeout = 60)
{
    /* 1000 of ~3000 sentences: the sample depends on the seed */
    s2s_tokenizer *a = train(S2S_TOKENIZER_UNIGRAM, 400, 1000, 5), *b = train(S2S_TOKENIZER_UNIGRAM, 400, 1000, 5),
                  *c = train(S2S_TOKENIZER_UNIGRAM, 400, 1000, 6);
    const void *pa, *pb, *pc;
    size_t la, lb, lc;
    s2s_tokenizer_serialize(a, &pa, &la);
    s2s_tokenizer_serialize(b, &pb, &lb);
    s2s_tokenizer_serialize(c, &pc, &lc);
    cr_assert(la == lb && memcmp(pa, pb, la) == 0, "same seed, different model bytes");
    cr_assert(la != lc || memcmp(pa, pc, la) != 0, "seeds 5 and 6 gave the same model: is the sample seeded?");
    s2s_tokenizer_free(a);
    s2s_tokenizer_free(b);
    s2s_tokenizer_free(c);
    s2s_tokenizer *d = train(S2S_TOKENIZER_BPE, 400, 0, 1), *e = train(S2S_TOKENIZER_BPE, 400, 0, 2);
    s2s_tokenizer_serialize(d, &pa, &la);
    s2s_tokenizer_serialize(e, &pb, &lb);
    cr_assert(la == lb && memcmp(pa, pb, la) == 0, "all sentences used: the seed must not matter");
    s2s_tokenizer_free(d);
    s2s_tokenizer_free(e);
}

Test(tokenizer, bad_training_input, .timeout = 60)
{
    load_corpus();
    s2s_tokenizer_options o = s2s_tokenizer_options_default();
    s2s_tokenizer *t = (s2s_tokenizer *)&o; /* must come back NULL */
    const char *const *s = (const char *const *)corpus;
    cr_assert_eq(s2s_tokenizer_train(s, 0, &o, &t), S2S_ERR_INVALID_ARG);
    cr_assert_null(t);
    cr_assert(strstr(s2s_last_error(), "no sentences") != NULL, "%s", s2s_last_error());
    const char *empty[] = {"", "", ""};
    cr_assert_eq(s2s_tokenizer_train(empty, 3, &o, &t), S2S_ERR_INVALID_ARG);
    cr_assert(strstr(s2s_last_error(), "non-empty") != NULL, "%s", s2s_last_error());
    const char *with_null[] = {"a b c", NULL};
    cr_assert_eq(s2s_tokenizer_train(with_null, 2, &o, &t), S2S_ERR_INVALID_ARG);
    cr_assert(strstr(s2s_last_error(), "sentence 1") != NULL, "%s", s2s_last_error());
    cr_assert_eq(s2s_tokenizer_train(s, ncorpus, NULL, &t), S2S_ERR_INVALID_ARG);

    s2s_tokenizer_options bad[5];
    for (int i = 0; i < 5; i++)
        bad[i] = o;
    bad[0].vocab_size = 4;
    bad[1].character_coverage = 0.0f;
    bad[2].character_coverage = 1.5f;
    bad[3].threads = 0;
    bad[4].type = (s2s_tokenizer_type)7;
    for (int i = 0; i < 5; i++)
        cr_assert_eq(s2s_tokenizer_train(s, ncorpus, &bad[i], &t), S2S_ERR_INVALID_ARG, "options %d accepted", i);

    /* SentencePiece's own refusal comes back with its reason: fewer pieces than characters */
    o.vocab_size = 20;
    cr_assert_eq(s2s_tokenizer_train(s, ncorpus, &o, &t), S2S_ERR_INVALID_ARG);
    cr_assert_null(t);
    cr_assert(strstr(s2s_last_error(), "SentencePiece could not train") != NULL, "%s", s2s_last_error());
    cr_assert(strstr(s2s_last_error(), "required_chars") != NULL, "%s", s2s_last_error());
}

Test(tokenizer, prints_nothing, .timeout = 60)
{
    load_corpus();
    const char *tmp = getenv("TMPDIR");
    char path[256];
    snprintf(path, sizeof path, "%s/s2s_tok_out_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    fflush(stdout);
    fflush(stderr);
    int out = dup(1), err = dup(2);
    dup2(fd, 1);
    dup2(fd, 2);
    s2s_tokenizer_options o = s2s_tokenizer_options_default();
    o.vocab_size = 300;
    s2s_tokenizer *t = NULL, *u = NULL;
    s2s_status st = s2s_tokenizer_train((const char *const *)corpus, ncorpus, &o, &t);
    const void *b = NULL;
    size_t len = 0;
    if (st == S2S_OK) {
        s2s_tokenizer_serialize(t, &b, &len);
        s2s_tokenizer_load(b, len / 2, &u);
        s2s_tokenizer_load(b, len, &u);
    }
    o.vocab_size = 20;
    s2s_tokenizer *v = NULL;
    s2s_tokenizer_train((const char *const *)corpus, ncorpus, &o, &v); /* fails inside SentencePiece */
    fflush(stdout);
    fflush(stderr);
    dup2(out, 1);
    dup2(err, 2);
    close(out);
    close(err);
    off_t printed = lseek(fd, 0, SEEK_END);
    char head[200] = "";
    if (printed > 0) {
        lseek(fd, 0, SEEK_SET);
        ssize_t got = read(fd, head, sizeof head - 1);
        head[got > 0 ? got : 0] = '\0';
    }
    close(fd);
    cr_assert_eq(st, S2S_OK, "%s", s2s_last_error());
    cr_assert(u, "reload failed");
    cr_assert_eq(printed, 0, "%lld bytes printed, starting: %s", (long long)printed, head);
    s2s_tokenizer_free(u);
    s2s_tokenizer_free(t);
}
