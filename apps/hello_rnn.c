/* hello_rnn.c - the smallest recurrent network: a tanh RNN learns to map the characters
 * "hell" to "ello" (predict the next character of "hello") over the vocabulary [h, e, l, o],
 * with one-hot inputs, then prints each position's prediction and probabilities.
 *
 *   build/hello_rnn [--steps N] [--hidden H] [--lr RATE] [--device cpu|cuda|auto] [--seed S]
 *
 * Exit status 0 when the network predicts "ello", 1 when it does not, 2 on bad arguments or
 * a library error. Uses only the public API. */
#include <seq2seq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char VOCAB[4] = {'h', 'e', 'l', 'o'};

static int usage(FILE *f, int code)
{
    fprintf(f, "usage: hello_rnn [--steps N] [--hidden H] [--lr RATE] [--device cpu|cuda|auto] [--seed S]\n"
               "Trains a tanh RNN to map \"hell\" to \"ello\" and prints its predictions.\n"
               "example: hello_rnn --steps 200 --hidden 8\n");
    return code;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi)
        return 0;
    *out = (int)v;
    return 1;
}

static int argmax4(const float *p)
{
    int best = 0;
    for (int v = 1; v < 4; v++)
        if (p[v] > p[best])
            best = v;
    return best;
}

int main(int argc, char **argv)
{
    int steps = 300, hidden = 8, seed = 1;
    float lr = 0.5f;
    s2s_context_options co = s2s_context_options_default();
    co.device = S2S_DEVICE_CPU;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            return usage(stdout, 0);
        if (!v) {
            fprintf(stderr, "hello_rnn: unknown or incomplete option '%s'\n", a);
            return usage(stderr, 2);
        }
        i++;
        if (!strcmp(a, "--steps") && parse_int(v, 1, 1000000, &steps)) continue;
        if (!strcmp(a, "--hidden") && parse_int(v, 1, 4096, &hidden)) continue;
        if (!strcmp(a, "--seed") && parse_int(v, 0, 2147483647, &seed)) continue;
        if (!strcmp(a, "--lr") && (lr = strtof(v, NULL)) > 0.0f) continue;
        if (!strcmp(a, "--device") && (!strcmp(v, "cpu") || !strcmp(v, "cuda") || !strcmp(v, "auto"))) {
            co.device = !strcmp(v, "cpu") ? S2S_DEVICE_CPU : !strcmp(v, "cuda") ? S2S_DEVICE_CUDA : S2S_DEVICE_AUTO;
            continue;
        }
        fprintf(stderr, "hello_rnn: bad option or value: %s %s\n", a, v);
        return usage(stderr, 2);
    }
    co.seed = (uint64_t)seed;
    s2s_context *ctx = NULL;
    s2s_tagger *tg = NULL;
    s2s_tagger_config tc = s2s_tagger_config_default();
    tc.cell = S2S_CELL_RNN_TANH;
    tc.hidden = hidden;
    tc.vocab_in = tc.vocab_out = 4;
    int32_t in[4] = {0, 1, 2, 2}, want[4] = {1, 2, 2, 3}; /* h e l l -> e l l o */
    float probs[16], loss = 0.0f;
    s2s_status st = s2s_context_create(&co, &ctx);
    if (st == S2S_OK)
        st = s2s_tagger_create(ctx, &tc, &tg);
    for (int s = 0; s < steps && st == S2S_OK; s++) {
        st = s2s_tagger_train_step(tg, in, want, 1, 4, lr, &loss);
        if (st == S2S_OK && (s == 0 || (s + 1) % 50 == 0))
            printf("step %4d  loss %.4f\n", s + 1, loss);
    }
    if (st == S2S_OK)
        st = s2s_tagger_predict(tg, in, 1, 4, probs);
    if (st != S2S_OK) {
        fprintf(stderr, "hello_rnn: %s\n", s2s_last_error());
        s2s_tagger_free(tg);
        s2s_context_free(ctx);
        return 2;
    }
    printf("device: %s\n", s2s_context_device_name(ctx));
    int right = 0;
    for (int t = 0; t < 4; t++) {
        int best = argmax4(probs + t * 4);
        right += best == want[t];
        printf("input '%c' -> predicted '%c'  p(h,e,l,o) = %.3f %.3f %.3f %.3f\n", VOCAB[in[t]], VOCAB[best],
               probs[t * 4], probs[t * 4 + 1], probs[t * 4 + 2], probs[t * 4 + 3]);
    }
    printf("%s: \"hell\" -> \"", right == 4 ? "learned" : "NOT learned");
    for (int t = 0; t < 4; t++)
        putchar(VOCAB[argmax4(probs + t * 4)]);
    printf("\"\n");
    s2s_tagger_free(tg);
    s2s_context_free(ctx);
    if (fflush(stdout) != 0 || ferror(stdout)) /* a result never written is a failed run */
        return fprintf(stderr, "hello_rnn: cannot write standard output: %s\n", strerror(errno)), 1;
    return right == 4 ? 0 : 1;
}
