/* text.h - UTF-8 and white-space helpers shared by the corpus readers (corpus.c, dailydialog.c,
 * chatterbot.c). Internal to the library: not S2S_API, so -fvisibility=hidden keeps them out of
 * the shared library's exports. */
#ifndef S2S_TEXT_H
#define S2S_TEXT_H

#include <stddef.h>

/* Offset of the first byte of s[0..n) that does not start a valid UTF-8 sequence, or n when all
 * of it is valid. Strict, as Unicode Table 3-7: no overlongs, no surrogates (U+D800-U+DFFF),
 * nothing above U+10FFFF, no stray continuation bytes, no truncated sequences; a NUL byte is
 * refused too. why (may be NULL) gets what is wrong at the returned offset, for messages. */
size_t s2s_text_utf8_check(const unsigned char *s, size_t n, const char **why);

/* The code point at s, which must start a valid UTF-8 sequence; its length (1-4) in *len. */
unsigned s2s_text_utf8_decode(const unsigned char *s, size_t *len);

/* Whether cp has the Unicode White_Space property: U+0009-U+000D (TAB, LF, VT, FF, CR), U+0020,
 * U+0085 (NEL), U+00A0 (NBSP), U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000.
 * U+200B (zero width space) and U+FEFF (BOM) are not White_Space. */
int s2s_text_is_space(unsigned cp);

/* Normalises the spaces of valid UTF-8 s[0..n) in place and NUL-terminates it at the returned
 * length (never longer than n: every byte written stands for at least one byte read; s[n] must
 * be writable). Every White_Space character (s2s_text_is_space) becomes a space, U+200B and
 * U+FEFF are deleted, a run of spaces collapses to one and the spaces at both ends go. Nothing
 * else changes: no case folding, no Unicode normalisation, no quote mapping.
 * keep_lines: LF separates lines instead of being a space. Everything before the first visible
 * character and after the last still goes (blank lines, the first line's indentation); between
 * them the LFs are kept (blank lines too), the spaces that start a line are kept, one per
 * White_Space character (indentation), runs inside a line collapse to one and the spaces that
 * end a line go. */
size_t s2s_text_normalize(char *s, size_t n, int keep_lines);

#endif
