/* decode.h - what the decoding layer lends the layers above it (the serving engine): a
 * hypothesis as text, as s2s_translate writes it. */
#ifndef S2S_DECODE_H
#define S2S_DECODE_H

#include "internal.h"

/* The text of hypothesis h (target tokenizer tt), each <unk> replaced by the source piece it
 * attends to most when replace is set (src: the source ids, source tokenizer st); *out is
 * malloc'd. */
s2s_status s2s_hyp_text(const s2s_tokenizer *st, const s2s_tokenizer *tt, const s2s_hypothesis *h,
                        const int32_t *src, int replace, char **out);

#endif
