/* dialogue_reader.h - what the two dialogue readers share: the reading session (options, counts,
 * warnings), the turns of one dialogue and how they become pairs, and opening a file. Used by
 * dailydialog.c and chatterbot.c; defined in dailydialog.c. Internal to the library (not
 * S2S_API: -fvisibility=hidden keeps these names out of the shared library's exports).
 *
 * Common to both readers (s2s_corpus_add_dailydialog, s2s_corpus_add_chatterbot):
 * - Each turn is checked on its own: a turn that is empty (after normalisation) or longer than
 *   max_line_bytes is reported with FILE:LINE, and the (at most two) pairs that contain it are
 *   skipped. The turns on either side of it are not paired with each other: they are not an
 *   utterance and its reply.
 * - Every problem is a WARN message "FILE:LINE: what ...; skipped" (the first 20 per file, then
 *   a count) and one "skipped" in the file's INFO summary. Nothing is dropped silently.
 * - On failure (out of memory, a read error) c keeps the pairs added before it. */
#ifndef S2S_DIALOGUE_READER_H
#define S2S_DIALOGUE_READER_H

#include "internal.h"
#include <stdio.h>

/* One call of a reader: its corpus, options and counts, and the file being read. */
typedef struct reader {
    s2s_corpus *c;
    s2s_corpus_options o;
    const char *path; /* the file being read */
    long warned;      /* problems in this file */
    long pairs, excluded, skipped, convs; /* totals over the call */
} reader;

/* The turns of one dialogue or conversation. */
typedef struct turns {
    char **s;   /* NUL-terminated turns */
    long *line; /* where each starts */
    size_t n, cap;
} turns;

/* DailyDialog's exclusion set (dailydialog.c); NULL where there is none. */
typedef struct pairset pairset;

/* Logs a message through the options' log callback, if any. */
void s2s_dialogue_say(const reader *rd, s2s_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Counts a problem and logs "FILE:LINE: what" for the first few in a file. */
void s2s_dialogue_warn(reader *rd, long line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Logs how many problems of the file were not logged one by one. */
void s2s_dialogue_warned_more(const reader *rd);
/* Starts a call: checks the arguments, takes the options (or the defaults). fn names the caller. */
s2s_status s2s_dialogue_start(reader *rd, s2s_corpus *c, const char *path, const s2s_corpus_options *o, const char *fn);
/* The error for a call that added no pair; what says why. */
s2s_status s2s_dialogue_nothing_read(const reader *rd, const char *what);
/* Appends turn s (owned by the caller) that starts at line; 0 when out of memory. */
int s2s_dialogue_turns_push(turns *t, char *s, long line);
/* Adds the adjacent pairs (t[i-1], t[i]) whose turns are both usable, reporting the others; pairs
 * in ex (may be NULL) are counted, not added. */
s2s_status s2s_dialogue_add_pairs(reader *rd, const turns *t, const pairset *ex);
/* Opens a regular file for reading; a missing file or a directory is S2S_ERR_IO. */
s2s_status s2s_dialogue_open_file(const char *path, const char *what, FILE **f);

#endif
