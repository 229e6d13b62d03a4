/* text.c - UTF-8 and white-space helpers shared by the corpus readers (see text.h). */
#include "text.h"
#include <string.h>

size_t s2s_text_utf8_check(const unsigned char *s, size_t n, const char **why)
{
    const char *unused;
    if (!why)
        why = &unused;
    size_t i = 0;
    while (i < n) {
        unsigned b = s[i];
        if (b == 0) {
            *why = "NUL byte";
            return i;
        }
        if (b < 0x80) {
            i++;
            continue;
        }
        size_t len = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
        unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        *why = "invalid lead byte";
        if (b < 0xC2) {
            *why = b < 0xC0 ? "unexpected continuation byte" : "overlong encoding";
            return i;
        }
        if (b > 0xF4) {
            *why = "byte above 0xF4 (code point above U+10FFFF)";
            return i;
        }
        if (b == 0xE0)
            lo = 0xA0, *why = "overlong encoding";
        if (b == 0xED)
            hi = 0x9F, *why = "UTF-16 surrogate";
        if (b == 0xF0)
            lo = 0x90, *why = "overlong encoding";
        if (b == 0xF4)
            hi = 0x8F, *why = "code point above U+10FFFF";
        if (i + 1 >= n || s[i + 1] < 0x80 || s[i + 1] > 0xBF) {
            *why = "truncated sequence";
            return i;
        }
        if (s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t k = 2; k < len; k++)
            if (i + k >= n || (s[i + k] & 0xC0) != 0x80) {
                *why = "truncated sequence";
                return i;
            }
        i += len;
    }
    return n;
}

unsigned s2s_text_utf8_decode(const unsigned char *s, size_t *len)
{
    if (s[0] < 0x80)
        return *len = 1, s[0];
    if (s[0] < 0xE0)
        return *len = 2, (s[0] & 0x1Fu) << 6 | (s[1] & 0x3Fu);
    if (s[0] < 0xF0)
        return *len = 3, (s[0] & 0x0Fu) << 12 | (s[1] & 0x3Fu) << 6 | (s[2] & 0x3Fu);
    return *len = 4, (s[0] & 0x07u) << 18 | (s[1] & 0x3Fu) << 12 | (s[2] & 0x3Fu) << 6 | (s[3] & 0x3Fu);
}

int s2s_text_is_space(unsigned cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
}

size_t s2s_text_normalize(char *s, size_t n, int keep_lines)
{
    size_t o = 0, len, nl = 0, sp = 0; /* LFs and spaces read since the last visible character */
    for (size_t i = 0; i < n; i += len) {
        unsigned cp = s2s_text_utf8_decode((const unsigned char *)s + i, &len);
        if (cp == '\n' && keep_lines) {
            nl++, sp = 0;
            continue;
        }
        if (s2s_text_is_space(cp) || cp == 0x200B || cp == 0xFEFF) { /* zero width space, BOM */
            sp += s2s_text_is_space(cp);
            continue;
        }
        if (o > 0) {
            memset(s + o, '\n', nl), o += nl;
            size_t k = sp && !nl ? 1 : sp; /* collapsed inside a line, kept as indentation */
            memset(s + o, ' ', k), o += k;
        }
        nl = sp = 0;
        memmove(s + o, s + i, len); /* o <= i */
        o += len;
    }
    s[o] = '\0';
    return o;
}
