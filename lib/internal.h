/* internal.h - what every library file shares: the context, error reporting, logging, host
 * allocation (status.c), a growable string and the clock (strbuf.c). The lowest layer of lib/
 * (README: layout): it includes only the public header. */
#ifndef S2S_INTERNAL_H
#define S2S_INTERNAL_H

#include "seq2seq.h"
#include <stdarg.h>

typedef struct s2s_backend s2s_backend; /* backend.h */

struct s2s_context {
    s2s_context_options opts;
    s2s_device device;
    s2s_backend *be;
    char device_name[160];
};

/* Records a formatted message as the calling thread's last error, prefixed by file:line, and
 * returns st, so that `return S2S_FAIL(S2S_ERR_..., "...")` reads naturally. */
s2s_status s2s_fail_at(const char *file, int line, s2s_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define S2S_FAIL(st, ...) s2s_fail_at(__FILE__, __LINE__, (st), __VA_ARGS__)
/* As S2S_FAIL, with the current last error appended after ": " (context for a callee's message). */
s2s_status s2s_fail_wrap_at(const char *file, int line, s2s_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define S2S_FAIL_WRAP(st, ...) s2s_fail_wrap_at(__FILE__, __LINE__, (st), __VA_ARGS__)

/* Propagates a failing status. */
#define S2S_TRY(expr)                     \
    do {                                  \
        s2s_status s2s_try_st_ = (expr);  \
        if (s2s_try_st_ != S2S_OK)        \
            return s2s_try_st_;           \
    } while (0)

void s2s_log(const s2s_context *ctx, s2s_log_level level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Formats a message and hands it to log (nothing when log is NULL): the readers' callbacks. */
void s2s_vlog_to(s2s_log_fn log, void *user, s2s_log_level level, const char *fmt, va_list ap);

/* Host allocation that records an out-of-memory error naming the size and what it was for. */
void *s2s_host_alloc(size_t bytes, const char *what);
void *s2s_host_calloc(size_t count, size_t size, const char *what);

/* ---- a growable string (strbuf.c) ----------------------------------------------------------
 * p[0..len); put, putc and printf keep a NUL after it, reserve only makes room (a caller that
 * writes into p itself sets len, and the NUL if it wants one); {0} is an empty buffer. An allocation
 * failure is sticky: oom is set, later calls do nothing, and the caller checks oom once at the
 * end (reserve also returns S2S_ERR_OUT_OF_MEMORY, with the last error naming `what`). */
typedef struct s2s_strbuf {
    char *p;
    size_t len, cap;
    int oom;
} s2s_strbuf;

/* Room for need bytes plus the NUL. what (may be NULL) names the text in the error. */
s2s_status s2s_strbuf_reserve(s2s_strbuf *b, size_t need, const char *what);
void s2s_strbuf_put(s2s_strbuf *b, const char *s, size_t n);
void s2s_strbuf_putc(s2s_strbuf *b, char c, size_t times);
void s2s_strbuf_printf(s2s_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void s2s_strbuf_free(s2s_strbuf *b);

/* Opens path for reading (files.c) when it is a regular file, or a pipe or terminal this process
 * already holds (standard input as /dev/stdin, <(...) as /dev/fd/N); a directory, named pipe,
 * device or socket is refused at
 * once with S2S_ERR_IO (opening a FIFO with no writer would wait forever). what names the file
 * in messages ("corpus file"). *fd is -1 on failure. */
s2s_status s2s_open_input(const char *path, const char *what, int *fd);

/* Monotonic wall clock in milliseconds (strbuf.c): every timing in the library. */
double s2s_now_ms(void);

#endif
