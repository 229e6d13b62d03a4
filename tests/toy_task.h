/* toy_task.h - a small translation task for trainer tests: word sequences over a 12-word
 * vocabulary to be reversed ("the big cat" -> "cat big the"), and a tokenizer for it. */
#ifndef S2S_TOY_TASK_H
#define S2S_TOY_TASK_H

#include "seq2seq.h"
#include "test_util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((unused)) static s2s_corpus *toy_corpus(uint64_t seed, int n)
{
    static const char *words[] = {"red", "blue", "green", "cat", "dog", "sees",
                                  "likes", "the", "a", "big", "small", "bird"};
    s2s_corpus *c = NULL;
    cr_assert_eq(s2s_corpus_create(&c), S2S_OK);
    uint64_t s = seed;
    for (int i = 0; i < n; i++) {
        int len = 2 + (int)(tu_next(&s) % 5), w[8];
        char a[128] = "", b[128] = "";
        for (int k = 0; k < len; k++)
            w[k] = (int)(tu_next(&s) % 12);
        for (int k = 0; k < len; k++) {
            strcat(a, words[w[k]]), strcat(a, k + 1 < len ? " " : "");
            strcat(b, words[w[len - 1 - k]]), strcat(b, k + 1 < len ? " " : "");
        }
        cr_assert_eq(s2s_corpus_add(c, a, b), S2S_OK, "%s", s2s_last_error());
    }
    return c;
}

/* One tokenizer for both sides, trained on every sentence of c. */
__attribute__((unused)) static s2s_tokenizer *toy_tokenizer(const s2s_corpus *c, int vocab)
{
    size_t n = s2s_corpus_size(c);
    const char **all = malloc(sizeof(char *) * 2 * n);
    for (size_t i = 0; i < n; i++)
        s2s_corpus_get(c, i, &all[i], &all[n + i]);
    s2s_tokenizer_options to = s2s_tokenizer_options_default();
    to.vocab_size = vocab;
    to.threads = 1; /* no helper threads: callers may fork afterwards */
    s2s_tokenizer *t = NULL;
    cr_assert_eq(s2s_tokenizer_train(all, 2 * n, &to, &t), S2S_OK, "%s", s2s_last_error());
    free(all);
    return t;
}

/* What a trainer test's runs share: training and validation data, their tokenizer and a
 * scratch directory for the output files (removed by toy_world_free). */
typedef struct toy_world {
    s2s_corpus *train, *valid;
    s2s_tokenizer *tok;
    char dir[64];
} toy_world;

__attribute__((unused)) static void toy_world_make(toy_world *w, uint64_t seed, int ntrain, int nvalid, const char *name)
{
    w->train = toy_corpus(seed, ntrain);
    w->valid = toy_corpus(seed + 1, nvalid);
    w->tok = toy_tokenizer(w->train, 40);
    snprintf(w->dir, sizeof w->dir, "/tmp/s2s-%s-XXXXXX", name);
    cr_assert_not_null(mkdtemp(w->dir));
}

__attribute__((unused)) static void toy_world_free(toy_world *w)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", w->dir);
    cr_assert_eq(system(cmd), 0);
    s2s_tokenizer_free(w->tok);
    s2s_corpus_free(w->train);
    s2s_corpus_free(w->valid);
}

#endif
