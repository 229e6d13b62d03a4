/* strbuf.c - the library's one growable string (s2s_strbuf, internal.h) and its one clock. */
#include "internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

s2s_status s2s_strbuf_reserve(s2s_strbuf *b, size_t need, const char *what)
{
    if (b->oom)
        return S2S_ERR_OUT_OF_MEMORY;
    if (need < b->cap)
        return S2S_OK;
    if (need >= SIZE_MAX / 2) {
        b->oom = 1;
        return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "%zu bytes asked for %s", need, what ? what : "a string");
    }
    size_t cap = b->cap ? b->cap : 128;
    while (cap <= need)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "out of memory: %zu bytes for %s", cap, what ? what : "a string");
    }
    b->p = p;
    b->cap = cap;
    return S2S_OK;
}

void s2s_strbuf_put(s2s_strbuf *b, const char *s, size_t n)
{
    if (s2s_strbuf_reserve(b, b->len + n, NULL) != S2S_OK)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void s2s_strbuf_putc(s2s_strbuf *b, char c, size_t times)
{
    if (s2s_strbuf_reserve(b, b->len + times, NULL) != S2S_OK)
        return;
    memset(b->p + b->len, c, times);
    b->len += times;
    b->p[b->len] = '\0';
}

void s2s_strbuf_printf(s2s_strbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || s2s_strbuf_reserve(b, b->len + (size_t)n, NULL) != S2S_OK)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void s2s_strbuf_free(s2s_strbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

double s2s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}
