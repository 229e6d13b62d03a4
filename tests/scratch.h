/* scratch.h - the fixture the corpus and dialogue tests share: a scratch directory per test
 * (removed afterwards), files written into it, and a capture of the corpus log callback. */
#ifndef S2S_SCRATCH_H
#define S2S_SCRATCH_H

#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "seq2seq.h"

/* ---- fixture: a scratch directory and a log capture ------------------------------------ */

static char dir[64];
static char paths[8][200];
static int npaths;

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

__attribute__((unused)) static void scratch_setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/s2s_test_XXXXXX");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
    npaths = 0;
}

__attribute__((unused)) static void scratch_teardown(void)
{
    if (dir[0])
        nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Writes bytes (n = -1: strlen) to dir/name and returns the path (valid for the test). */
__attribute__((unused)) static const char *put(const char *name, const char *bytes, long n)
{
    char *p = paths[npaths++ % 8];
    snprintf(p, 200, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f, "%s: %s", p, strerror(errno));
    size_t len = n < 0 ? strlen(bytes) : (size_t)n;
    cr_assert_eq(fwrite(bytes, 1, len, f), len);
    fclose(f);
    return p;
}

typedef struct logcap {
    int n[4];          /* messages per level */
    char text[32768];  /* all messages, one per line */
    char last[1024];   /* the last message */
} logcap;

__attribute__((unused)) static void capture(s2s_log_level level, const char *msg, void *user)
{
    logcap *lc = user;
    lc->n[level]++;
    size_t used = strlen(lc->text);
    snprintf(lc->text + used, sizeof lc->text - used, "%s\n", msg);
    snprintf(lc->last, sizeof lc->last, "%s", msg);
}

__attribute__((unused)) static s2s_corpus_options opts_with(logcap *lc)
{
    s2s_corpus_options o = s2s_corpus_options_default();
    memset(lc, 0, sizeof *lc);
    o.log = capture;
    o.log_user = lc;
    return o;
}

/* Pair i of c is (src, tgt). */
static inline void expect_pair(const s2s_corpus *c, size_t i, const char *src, const char *tgt)
{
    const char *s = NULL, *t = NULL;
    cr_assert_eq(s2s_corpus_get(c, i, &s, &t), S2S_OK, "%s", s2s_last_error());
    cr_assert_str_eq(s, src, "pair %zu source", i);
    cr_assert_str_eq(t, tgt, "pair %zu target", i);
}

#endif
