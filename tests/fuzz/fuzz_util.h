/* fuzz_util.h - what the libFuzzer targets in tests/fuzz/ share: a private scratch directory,
 * writing the input to a file there (the readers under test take paths), and a log callback
 * that formats every message and drops it (so the message code runs too).
 *
 * The scratch directory is made once per process under $TMPDIR (/dev/shm when it is
 * writable: the targets write a file per input, and some fsync) and removed at exit. */
#ifndef S2S_FUZZ_UTIL_H
#define S2S_FUZZ_UTIL_H

#include "seq2seq.h"
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Aborts the run: an invariant of the library was broken (libFuzzer saves the input). */
#define FZ_CHECK(cond, ...)                                                                                            \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "fuzz invariant failed at %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

static char fz_dir_path[256];

static void fz_cleanup(void)
{
    char cmd[300];
    if (fz_dir_path[0]) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", fz_dir_path);
        if (system(cmd) != 0)
            fprintf(stderr, "fuzz: could not remove %s\n", fz_dir_path);
    }
}

/* The scratch directory (made on first use). */
static const char *fz_dir(void)
{
    if (fz_dir_path[0])
        return fz_dir_path;
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fz_dir_path, sizeof fz_dir_path, "%s/s2s-fuzz-XXXXXX", base);
    if (!mkdtemp(fz_dir_path)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(fz_cleanup);
    return fz_dir_path;
}

/* The path of scratch file `name` in buf. */
static const char *fz_path(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", fz_dir(), name);
    return buf;
}

/* Writes data[0..n) to the scratch file `name` (replacing it); returns its path in buf. */
static const char *fz_write(char *buf, size_t cap, const char *name, const void *data, size_t n)
{
    fz_path(buf, cap, name);
    int fd = open(buf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror("fuzz: open");
        abort();
    }
    const char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) {
            perror("fuzz: write");
            abort();
        }
        p += w, n -= (size_t)w;
    }
    close(fd);
    return buf;
}

/* S2S_FUZZ_VERBOSE=1: targets say what each input did (for looking at one input by hand:
 * build-fuzz/fuzz_NAME FILE runs FILE once). */
static int fz_verbose(void)
{
    static int v = -1;
    if (v < 0)
        v = getenv("S2S_FUZZ_VERBOSE") && *getenv("S2S_FUZZ_VERBOSE") == '1';
    return v;
}

/* Formats nothing of its own: the library already did; touching the text makes ASan check it. */
static void fz_log(s2s_log_level level, const char *msg, void *user)
{
    size_t *total = user;
    if (fz_verbose())
        fprintf(stderr, "  log %d: %s\n", (int)level, msg);
    if (total)
        *total += strlen(msg) + (size_t)level;
}

#endif
