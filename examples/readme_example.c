#include <seq2seq.h>
#include <stdio.h>
#define CHECK(call) if (call) { fprintf(stderr, "%s\n", s2s_last_error()); return 1; }

int main(void)
{
    const char *en[] = {"the cat sleeps", "the dog runs", "a cat runs", "a dog sleeps"}, *in[] = {"the dog sleeps"};
    const char *fr[] = {"le chat dort", "le chien court", "un chat court", "un chien dort"};
    s2s_context *ctx; s2s_corpus *data; s2s_tokenizer *en_tok, *fr_tok; s2s_model *model; s2s_trainer *trainer;
    char *out[1];
    s2s_tokenizer_options to = s2s_tokenizer_options_default(); to.vocab_size = 20;
    s2s_trainer_options tr = s2s_trainer_options_default();
    tr.max_steps = 150, tr.warmup_steps = 10, tr.lr = 0.01f, tr.valid_every = 0;
    s2s_model_config mc = s2s_model_config_default();                      /* LSTM with attention */
    CHECK(s2s_context_create(NULL, &ctx) || s2s_corpus_create(&data))      /* the GPU if present */
    for (int i = 0; i < 4; i++) CHECK(s2s_corpus_add(data, en[i], fr[i]))
    CHECK(s2s_tokenizer_train(en, 4, &to, &en_tok) || s2s_tokenizer_train(fr, 4, &to, &fr_tok))
    mc.src_vocab = s2s_tokenizer_vocab_size(en_tok), mc.tgt_vocab = s2s_tokenizer_vocab_size(fr_tok);
    CHECK(s2s_model_create(ctx, &mc, &model) || s2s_trainer_create(model, en_tok, fr_tok, data, NULL, &tr, &trainer))
    CHECK(s2s_trainer_run(trainer) || s2s_translate(model, en_tok, fr_tok, in, 1, NULL, out, NULL))
    printf("%s -> %s\n", in[0], out[0]);                                   /* le chien dort */
    s2s_strings_free(out, 1), s2s_trainer_free(trainer), s2s_model_free(model), s2s_corpus_free(data);
    s2s_tokenizer_free(en_tok), s2s_tokenizer_free(fr_tok), s2s_context_free(ctx);
    return 0;
}
