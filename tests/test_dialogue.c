/* test_dialogue.c - the dialogue readers (lib/data/dailydialog.c, lib/data/chatterbot.c), rule by
 * rule on small crafted files, then on the real corpora in ../shared/data where present.
 *
 * Each test writes its inputs into its own mkdtemp directory (removed by the suite's .fini).
 * The real-data tests read ../shared/data (else data/) and skip with a reason where neither has
 * the corpus. Their pinned SHA-256 values (s2s_corpus_sha256: "src\ttgt\n" per pair) were made
 * independently: the ChatterBot ones by PyYAML's safe_load (normalize_spaces = 0 must give the
 * YAML values byte for byte), the DailyDialog ones by a Python reimplementation of the rules at
 * the top of lib/data/dailydialog.c.
 * Run: ./build/tests/test_suite --filter 'dialogue/[a-z]*' */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "seq2seq.h"

#include "scratch.h"

TestSuite(dialogue, .init = scratch_setup, .fini = scratch_teardown);


static s2s_corpus *empty(void)
{
    s2s_corpus *c = NULL;
    cr_assert_eq(s2s_corpus_create(&c), S2S_OK, "%s", s2s_last_error());
    return c;
}

/* A new corpus with the pairs of one DailyDialog file. */
static s2s_corpus *dd(const char *path, const s2s_corpus *exclude, const s2s_corpus_options *o, long *excluded)
{
    s2s_corpus *c = empty();
    cr_assert_eq(s2s_corpus_add_dailydialog(c, path, exclude, o, excluded), S2S_OK, "%s", s2s_last_error());
    return c;
}

static s2s_corpus *cb(const char *path, const s2s_corpus_options *o)
{
    s2s_corpus *c = empty();
    cr_assert_eq(s2s_corpus_add_chatterbot(c, path, o), S2S_OK, "%s", s2s_last_error());
    return c;
}

static void expect_size(const s2s_corpus *c, size_t n, const logcap *lc)
{
    cr_assert_eq(s2s_corpus_size(c), n, "%zu pairs, want %zu; log:\n%s", s2s_corpus_size(c), n, lc ? lc->text : "");
}

static void expect_log(const logcap *lc, const char *needle)
{
    cr_assert(strstr(lc->text, needle), "'%s' not in the log:\n%s", needle, lc->text);
}

/* "PATH:LINE:" is in a WARN message. */
static void expect_warned_at(const logcap *lc, const char *path, int line)
{
    char where[256];
    snprintf(where, sizeof where, "%s:%d: ", path, line);
    expect_log(lc, where);
}

static void expect_error(s2s_status got, s2s_status want, const char *needle)
{
    cr_assert_eq(got, want, "status %s, want %s: %s", s2s_status_string(got), s2s_status_string(want),
                 s2s_last_error());
    cr_assert(strstr(s2s_last_error(), needle), "'%s' not in: %s", needle, s2s_last_error());
    cr_assert(strstr(s2s_last_error(), "dailydialog.c:") || strstr(s2s_last_error(), "chatterbot.c:") ||
                  strstr(s2s_last_error(), "files.c:"), /* opening a file: files.c */
              "no file:line in: %s", s2s_last_error());
}

/* ---- DailyDialog -------------------------------------------------------------------------- */

Test(dialogue, dd_adjacent_turns_of_each_dialogue_are_pairs)
{
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    const char *p = put("d.txt", "Say , Jim , how about a beer ? __eou__ You know that is tempting . __eou__ "
                                 "Do you really think so ? __eou__\nA . __eou__ B . __eou__\n", -1);
    s2s_corpus *c = dd(p, NULL, &o, NULL);
    expect_size(c, 3, &lc);
    expect_pair(c, 0, "Say , Jim , how about a beer ?", "You know that is tempting .");
    expect_pair(c, 1, "You know that is tempting .", "Do you really think so ?");
    expect_pair(c, 2, "A .", "B ."); /* no pair across dialogues */
    char want[300];
    snprintf(want, sizeof want, "read 2 dialogues from %s: 3 pairs; 0 excluded; 0 skipped", p);
    cr_assert_str_eq(lc.last, want);
    cr_assert_eq(lc.n[S2S_LOG_WARN], 0, "%s", lc.text);
    s2s_corpus_free(c);
}

/* The README's two apostrophes: ’ with spaces around it, and the spaced ASCII ' before a clitic. */
Test(dialogue, dd_apostrophes_are_rejoined)
{
    const char *p = put("d.txt", "I \xE2\x80\x99 m here , it \xE2\x80\x99 s fine . __eou__ "
                                 "I \xE2\x80\x99 Ve seen my parents \xE2\x80\x99 house . __eou__ "
                                 "Sarah O \xE2\x80\x99 Connell , ma \xE2\x80\x99 am , C \xE2\x80\x99 mon ! __eou__ "
                                 "DON \xE2\x80\x99 T say \xE2\x80\x98 green \xE2\x80\x99 option ? __eou__ "
                                 "he said ? \xE2\x80\x99 and I can \xE2\x80\x99 t.because of "
                                 "Xi \xE2\x80\x99 an __eou__ "
                                 "It ' s 1960 ' s , says ' No smoking ' . I ' Ve won \\ ' t __eou__\n", -1);
    s2s_corpus *c = dd(p, NULL, NULL, NULL);
    expect_size(c, 5, NULL);
    expect_pair(c, 0, "I'm here , it's fine .", "I've seen my parents' house .");
    expect_pair(c, 2, "Sarah O'Connell , ma'am , C'mon !", "DON'T say \xE2\x80\x98 green' option ?");
    expect_pair(c, 4, "he said ? ' and I can't.because of Xi' an",
                "It's 1960's , says ' No smoking ' . I've won \\ ' t");
    s2s_corpus_free(c);
}

Test(dialogue, dd_del_is_removed)
{
    const char *p =
        put("d.txt", "Do you have any hobbies ? __eou__ I like to paint . \x7f __eou__ Me\x7f too . __eou__\n", -1);
    s2s_corpus *c = dd(p, NULL, NULL, NULL);
    expect_size(c, 2, NULL);
    expect_pair(c, 0, "Do you have any hobbies ?", "I like to paint .");
    expect_pair(c, 1, "I like to paint .", "Me too .");
    s2s_corpus_free(c);
}

Test(dialogue, dd_spaces_normalised_or_only_trimmed)
{
    const char *p = put("d.txt", "  a\xC2\xA0\xC2\xA0" "b\tc  d __eou__ e\xE2\x80\x8B f\xE3\x80\x80 __eou__\n", -1);
    s2s_corpus *c = dd(p, NULL, NULL, NULL);
    expect_pair(c, 0, "a b c d", "e f");
    s2s_corpus_free(c);
    s2s_corpus_options o = s2s_corpus_options_default();
    o.normalize_spaces = 0;
    c = dd(p, NULL, &o, NULL);
    expect_pair(c, 0, "a\xC2\xA0\xC2\xA0" "b\tc  d", "e\xE2\x80\x8B f\xE3\x80\x80");
    s2s_corpus_free(c);
}

/* Empty and one-turn dialogues, invalid UTF-8 and an empty turn: reported with file:line. */
Test(dialogue, dd_problems_are_reported_and_skipped)
{
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    const char *p = put("d.txt", "Hi . __eou__ Hello . __eou__\n"
                                 "\n"
                                 "Alone . __eou__\n"
                                 "bad \xFF byte __eou__ x __eou__\n"
                                 "A __eou__  __eou__ B __eou__ C __eou__\n"
                                 "Bye . __eou__ See you . __eou__\n", -1);
    s2s_corpus *c = dd(p, NULL, &o, NULL);
    expect_size(c, 3, &lc);
    expect_pair(c, 0, "Hi .", "Hello .");
    expect_pair(c, 1, "B", "C"); /* A and B are not an utterance and its reply */
    expect_pair(c, 2, "Bye .", "See you .");
    for (int line = 2; line <= 5; line++)
        expect_warned_at(&lc, p, line);
    expect_log(&lc, "no turns");
    expect_log(&lc, "only one turn");
    expect_log(&lc, "invalid UTF-8 at byte 5 (0xFF)");
    expect_log(&lc, "turn 2 is empty");
    cr_assert_eq(lc.n[S2S_LOG_WARN], 4, "%s", lc.text);
    char want[300];
    snprintf(want, sizeof want, "read 6 dialogues from %s: 3 pairs; 0 excluded; 4 skipped", p);
    cr_assert_str_eq(lc.last, want);
    s2s_corpus_free(c);
}

Test(dialogue, dd_no_final_marker_crlf_and_no_line_limit)
{
    const char *p = put("d.txt", "a __eou__ b\r\nc __eou__ d __eou__", -1);
    s2s_corpus *c = dd(p, NULL, NULL, NULL);
    expect_size(c, 2, NULL);
    expect_pair(c, 0, "a", "b");
    expect_pair(c, 1, "c", "d");
    s2s_corpus_free(c);
    enum { TURNS = 3000, TURN = 100 }; /* a 321 KB line: getline has no limit */
    char *big = malloc(TURNS * (TURN + 9) + 2), *q = big;
    for (int t = 0; t < TURNS; t++) {
        memset(q, 'a' + t % 26, TURN);
        q += TURN;
        q += sprintf(q, " __eou__ ");
    }
    strcpy(q, "\n");
    c = dd(put("big.txt", big, -1), NULL, NULL, NULL);
    expect_size(c, TURNS - 1, NULL);
    free(big);
    s2s_corpus_free(c);
}

Test(dialogue, dd_turn_longer_than_max_line_bytes)
{
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    o.max_line_bytes = 10;
    const char *p = put("d.txt", "short __eou__ xxxxxxxxxxxxxxxxxxxx __eou__ ok __eou__ fine __eou__\n", -1);
    s2s_corpus *c = dd(p, NULL, &o, NULL);
    expect_size(c, 1, &lc);
    expect_pair(c, 0, "ok", "fine");
    expect_warned_at(&lc, p, 1);
    expect_log(&lc, "turn 2 has 20 bytes, more than max_line_bytes = 10");
    s2s_corpus_free(c);
}

/* Pairs already in exclude (same text after normalisation) are skipped and counted; the reverse
 * pair is a different pair. exclude may be the corpus being filled. */
Test(dialogue, dd_exclude_skips_and_counts)
{
    const char *train = put("train.txt", "I \xE2\x80\x99 m fine . __eou__ Good . __eou__ Bye . __eou__\n", -1);
    const char *valid = put("valid.txt", "I'm  fine . __eou__ Good . __eou__\nGood . __eou__ I'm fine . __eou__\n"
                                         "Hi __eou__ Ho __eou__\nGood . __eou__ Bye . __eou__\n", -1);
    s2s_corpus *ex = dd(train, NULL, NULL, NULL);
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    long excluded = -1;
    s2s_corpus *c = dd(valid, ex, &o, &excluded);
    cr_assert_eq(excluded, 2);
    expect_size(c, 2, &lc);
    expect_pair(c, 0, "Good .", "I'm fine .");
    expect_pair(c, 1, "Hi", "Ho");
    char want[300];
    snprintf(want, sizeof want, "read 4 dialogues from %s: 2 pairs; 2 excluded; 0 skipped", valid);
    cr_assert_str_eq(lc.last, want);
    cr_assert_eq(s2s_corpus_add_dailydialog(c, valid, c, NULL, &excluded), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(excluded, 2, "self: the two pairs it holds");
    expect_size(c, 4, NULL); /* and the two that ex had excluded */
    cr_assert_eq(s2s_corpus_add_dailydialog(c, valid, c, NULL, NULL), S2S_OK, "all excluded is no error");
    expect_size(c, 4, NULL);
    s2s_corpus_free(c);
    s2s_corpus_free(ex);
}

Test(dialogue, dd_bad_arguments_and_files)
{
    s2s_corpus *c = empty();
    expect_error(s2s_corpus_add_dailydialog(c, "/nonexistent/dialogues_x.txt", NULL, NULL, NULL), S2S_ERR_IO,
                 "/nonexistent/dialogues_x.txt");
    expect_error(s2s_corpus_add_dailydialog(c, dir, NULL, NULL, NULL), S2S_ERR_IO, "is a directory");
    expect_error(s2s_corpus_add_dailydialog(NULL, dir, NULL, NULL, NULL), S2S_ERR_INVALID_ARG, "corpus is NULL");
    expect_error(s2s_corpus_add_dailydialog(c, put("e.txt", "", 0), NULL, NULL, NULL), S2S_ERR_FORMAT, "empty");
    s2s_corpus_options o = s2s_corpus_options_default();
    o.max_line_bytes = 0;
    expect_error(s2s_corpus_add_dailydialog(c, put("d.txt", "a __eou__ b __eou__\n", -1), NULL, &o, NULL),
                 S2S_ERR_INVALID_ARG, "max_line_bytes");
    expect_size(c, 0, NULL);
    s2s_corpus_free(c);
}

/* ---- ChatterBot --------------------------------------------------------------------------- */

Test(dialogue, cb_conversations_and_categories)
{
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    const char *p = put("a.yml", "categories:\n- greetings\n- 'chat'\n\nconversations:\n# a comment\n"
                                 "- - Hello\n  - Hi there!   \n\n  - How are you?\n"
                                 "- - Good morning\n  - Morning.\n", -1);
    s2s_corpus *c = cb(p, &o);
    expect_size(c, 3, &lc);
    expect_pair(c, 0, "Hello", "Hi there!");
    expect_pair(c, 1, "Hi there!", "How are you?");
    expect_pair(c, 2, "Good morning", "Morning.");
    char want[300];
    snprintf(want, sizeof want, "read 2 conversations from %s: 3 pairs; 0 skipped", p);
    cr_assert_str_eq(lc.last, want);
    s2s_corpus_free(c);
}

/* Plain, single- and double-quoted scalars, each over several lines; the values are PyYAML's. */
Test(dialogue, cb_every_flow_scalar_style)
{
    const char *p = put("a.yml", "conversations:\n"
                                 "- - 'It''s a ''test'' '\n"
                                 "  - \"Tab\\there, quote \\\" backslash \\\\ e\\u00e9 \\x41 \\N \\U0001F600\"\n"
                                 "- - a plain scalar\n    that folds over\n    three lines # with a comment\n"
                                 "  - 'a quoted scalar\n\n    with a blank line'\n"
                                 "- - \"double \\\n    joined\"\n"
                                 "  - \"1984\"  # comment after\n"
                                 "- - yes\n  - 22\n", -1);
    s2s_corpus_options o = s2s_corpus_options_default();
    o.normalize_spaces = 0;
    s2s_corpus *c = cb(p, &o);
    expect_size(c, 4, NULL);
    expect_pair(c, 0, "It's a 'test' ", "Tab\there, quote \" backslash \\ e\xC3\xA9 A \xC2\x85 \xF0\x9F\x98\x80");
    expect_pair(c, 1, "a plain scalar that folds over three lines", "a quoted scalar\nwith a blank line");
    expect_pair(c, 2, "double joined", "1984");
    expect_pair(c, 3, "yes", "22"); /* text, not YAML 1.1 booleans and numbers */
    s2s_corpus_free(c);
    c = cb(p, NULL); /* normalised: the TAB and NEL become spaces, the ends are trimmed */
    expect_pair(c, 0, "It's a 'test'", "Tab here, quote \" backslash \\ e\xC3\xA9 A \xF0\x9F\x98\x80");
    expect_pair(c, 1, "a plain scalar that folds over three lines", "a quoted scalar\nwith a blank line");
    s2s_corpus_free(c);
}

static const char block_yml[] = "conversations:\n"
                                "- - can you write a script?\n"
                                "  - |\n"
                                "    Sure:\n"
                                "\n"
                                "    ```\n"
                                "    #!/bin/bash\n"
                                "    # a comment that is text\n"
                                "    echo \"hi\"   \n"
                                "      indented\n"
                                "    ```\n"
                                "\n"
                                "- - strip and keep\n"
                                "  - |-\n"
                                "    no final newline\n"
                                "  - |+\n"
                                "    all final newlines\n"
                                "\n"
                                "\n"
                                "- - explicit indentation\n"
                                "  - |2\n"
                                "       three spaces kept\n"
                                "     one space kept\n";

Test(dialogue, cb_literal_block_scalars)
{
    const char *p = put("a.yml", block_yml, -1);
    s2s_corpus_options o = s2s_corpus_options_default();
    o.normalize_spaces = 0;
    s2s_corpus *c = cb(p, &o);
    expect_size(c, 4, NULL);
    expect_pair(c, 0, "can you write a script?",
                "Sure:\n\n```\n#!/bin/bash\n# a comment that is text\necho \"hi\"   \n  indented\n```\n");
    expect_pair(c, 1, "strip and keep", "no final newline");
    expect_pair(c, 2, "no final newline", "all final newlines\n\n\n");
    expect_pair(c, 3, "explicit indentation", "   three spaces kept\n one space kept\n");
    s2s_corpus_free(c);
    c = cb(p, NULL); /* normalised: newlines and indentation kept, line ends and final newlines go */
    expect_pair(c, 0, "can you write a script?",
                "Sure:\n\n```\n#!/bin/bash\n# a comment that is text\necho \"hi\"\n  indented\n```");
    expect_pair(c, 2, "no final newline", "all final newlines");
    expect_pair(c, 3, "explicit indentation", "three spaces kept\n one space kept");
    s2s_corpus_free(c);
}

/* trivia.yml line 35: "- " with no second "- ". Read as a conforming parser reads it (one plain
 * string that takes in the next line), reported and skipped; the conversations around it stay. */
Test(dialogue, cb_trivia_malformed_entry_is_one_string_and_skipped)
{
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    const char *p = put("trivia.yml", "conversations:\n"
                                      "- - In what year were the first Air Jordan sneakers released?\n"
                                      "  - '1984'\n"
                                      "- In a game of bingo, which number is represented by the phrase "
                                      "\"two little ducks\"?\n"
                                      "  - '22'\n"
                                      "- - According to Greek mythology who was the first woman on earth?\n"
                                      "  - Pandora\n", -1);
    s2s_corpus *c = cb(p, &o);
    expect_size(c, 2, &lc);
    expect_pair(c, 0, "In what year were the first Air Jordan sneakers released?", "1984");
    expect_pair(c, 1, "According to Greek mythology who was the first woman on earth?", "Pandora");
    expect_warned_at(&lc, p, 4);
    expect_log(&lc, "conversation is one string (\"In a game of bingo");
    cr_assert_eq(lc.n[S2S_LOG_WARN], 1, "%s", lc.text);
    expect_log(&lc, "read 3 conversations from");
    expect_log(&lc, ": 2 pairs; 1 skipped");
    s2s_corpus_free(c);
}

Test(dialogue, cb_no_final_newline)
{
    s2s_corpus_options o = s2s_corpus_options_default();
    o.normalize_spaces = 0;
    s2s_corpus *c = cb(put("a.yml", "conversations:\n- - a\n  - b", -1), &o);
    expect_pair(c, 0, "a", "b");
    cr_assert_eq(s2s_corpus_add_chatterbot(c, put("b.yml", "conversations:\n- - a\n  - |\n    block\n    end", -1), &o),
                 S2S_OK, "%s", s2s_last_error());
    expect_pair(c, 1, "a", "block\nend"); /* no line break to keep, as PyYAML */
    cr_assert_eq(s2s_corpus_add_chatterbot(c, put("c.yml", "conversations:\n- - 'a'\n  - \"b\"  ", -1), &o),
                 S2S_OK, "%s", s2s_last_error());
    expect_pair(c, 2, "a", "b");
    s2s_corpus_free(c);
}

Test(dialogue, cb_layouts_bom_crlf_and_dash_alone)
{
    const char *p = put("a.yml", "\xEF\xBB\xBF---\r\nconversations:\r\n  -\r\n    - a\r\n    - b\r\n"
                                 "  - - c\r\n    - d\r\n", -1);
    s2s_corpus *c = cb(p, NULL);
    expect_size(c, 2, NULL);
    expect_pair(c, 0, "a", "b");
    expect_pair(c, 1, "c", "d");
    s2s_corpus_free(c);
}

/* Every kind of malformed conversation is reported with its line and skipped, and reading goes on
 * with the next one. */
Test(dialogue, cb_malformed_conversations_are_skipped)
{
    static const char yml[] = "garbage line here\n"              /* 1 */
                              "conversations:\n"                 /* 2 */
                              "- - good one\n"                   /* 3 */
                              "  - reply one\n"                  /* 4 */
                              "- - 'unterminated\n"              /* 5 */
                              "- - \"bad \\q escape\"\n"         /* 6 */
                              "  - x\n"                          /* 7 */
                              "- - key: value\n"                 /* 8 */
                              "  - x\n"                          /* 9 */
                              "- - >\n"                          /* 10 */
                              "    folded\n"                     /* 11 */
                              "  - x\n"                          /* 12 */
                              "- - [flow, list]\n"               /* 13 */
                              "  - x\n"                          /* 14 */
                              "- - ok\n"                         /* 15 */
                              " - misindented\n"                 /* 16 */
                              "- - 'text' after\n"               /* 17 */
                              "  - x\n"                          /* 18 */
                              "- - only one turn\n"              /* 19 */
                              "- - good two\n"                   /* 20 */
                              "  - reply two\n"                  /* 21 */
                              "  -\n"                            /* 22 */
                              "- - - nested\n"                   /* 23 */
                              "  - x\n"                          /* 24 */
                              "- - bad \xC3 utf-8\n"             /* 25 */
                              "  - x\n"                          /* 26 */
                              "- - \"NUL \\0\"\n"                /* 27 */
                              "  - x\n"                          /* 28 */
                              "- - fine\n"                       /* 29 */
                              "  - x\n"                          /* 30 */
                              "  stray\n"                        /* 31 */
                              "- - |x\n"                         /* 32 */
                              "    x\n"                          /* 33 */
                              "  - x\n"                          /* 34 */
                              "unknown: 1\n"                     /* 35 */
                              "  - - inside the unknown key\n"   /* 36 */
                              "    - ignored\n"                  /* 37 */
                              "conversations:\n"                 /* 38 */
                              "- - good three\n"                 /* 39 */
                              "  - reply three\n";               /* 40 */
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    const char *p = put("bad.yml", yml, -1);
    s2s_corpus *c = cb(p, &o);
    expect_size(c, 3, &lc);
    expect_pair(c, 0, "good one", "reply one");
    expect_pair(c, 1, "good two", "reply two");
    expect_pair(c, 2, "good three", "reply three");
    static const int lines[] = {1, 5, 6, 8, 10, 13, 16, 17, 19, 22, 23, 25, 27, 31, 32, 35};
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++)
        expect_warned_at(&lc, p, lines[i]);
    expect_log(&lc, "not closed");
    expect_log(&lc, "bad escape '\\q'");
    expect_log(&lc, "mapping");
    expect_log(&lc, "turn 3 is empty");
    expect_log(&lc, "unknown key \"unknown\"");
    cr_assert_eq(lc.n[S2S_LOG_WARN], 16, "%s", lc.text);
    expect_log(&lc, ": 3 pairs; 16 skipped");
    s2s_corpus_free(c);
}

Test(dialogue, cb_directory_in_name_order)
{
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    put("b.yml", "conversations:\n- - b1\n  - b2\n", -1);
    put("a.yml", "categories:\n- a\nconversations:\n- - a1\n  - a2\n", -1);
    put("c.txt", "conversations:\n- - c1\n  - c2\n", -1);
    put(".d.yml", "conversations:\n- - d1\n  - d2\n", -1);
    char sub[128];
    snprintf(sub, sizeof sub, "%s/sub.yml", dir);
    cr_assert_eq(mkdir(sub, 0700), 0);
    s2s_corpus *c = cb(dir, &o);
    expect_size(c, 2, &lc);
    expect_pair(c, 0, "a1", "a2");
    expect_pair(c, 1, "b1", "b2");
    char want[300];
    snprintf(want, sizeof want, "read 2 files from %s: 2 conversations, 2 pairs; 0 skipped", dir);
    cr_assert_str_eq(lc.last, want);
    s2s_corpus_free(c);
}

Test(dialogue, cb_bad_arguments_and_paths)
{
    s2s_corpus *c = empty();
    expect_error(s2s_corpus_add_chatterbot(c, "/nonexistent/english", NULL), S2S_ERR_IO, "/nonexistent/english");
    expect_error(s2s_corpus_add_chatterbot(c, dir, NULL), S2S_ERR_IO, "no *.yml files");
    expect_error(s2s_corpus_add_chatterbot(c, NULL, NULL), S2S_ERR_INVALID_ARG, "path is NULL");
    expect_error(s2s_corpus_add_chatterbot(c, put("a.yml", "categories:\n- x\n", -1), NULL), S2S_ERR_FORMAT,
                 "no conversations");
    expect_size(c, 0, NULL);
    s2s_corpus_free(c);
}

/* ---- the real corpora ------------------------------------------------------------------------ */

/* ../shared/data/REL (tests run from the repo root), else data/REL; NULL when neither exists. */
static const char *data_path(const char *rel, char *buf, size_t cap)
{
    static const char *const roots[] = {"../shared/data", "data"};
    struct stat sb;
    for (size_t i = 0; i < 2; i++) {
        snprintf(buf, cap, "%s/%s", roots[i], rel);
        if (stat(buf, &sb) == 0)
            return buf;
    }
    return NULL;
}

#define DATA_OR_SKIP(var, rel)                                                                         \
    char var##_buf[512];                                                                               \
    const char *var = data_path(rel, var##_buf, sizeof var##_buf);                                     \
    if (!var) {                                                                                        \
        cr_skip_test("%s not found under ../shared/data or data/ (scripts/fetch-data.sh fetches it)", rel); \
        return;                                                                                        \
    }

static void expect_hash(const s2s_corpus *c, const char *want)
{
    char hex[65];
    cr_assert_eq(s2s_corpus_sha256(c, hex), S2S_OK);
    cr_assert_str_eq(hex, want);
}

/* Pair counts from the README (train 76,053, validation 7,069, test 6,740). Deduplicated against
 * train, validation loses 1,078 pairs (465 of them from its 69 dialogues that are verbatim in
 * train, the rest common exchanges) and test 1,112. */
Test(dialogue, dd_real_splits)
{
    DATA_OR_SKIP(train, "dailydialog/train/dialogues_train.txt");
    DATA_OR_SKIP(valid, "dailydialog/validation/dialogues_validation.txt");
    DATA_OR_SKIP(test, "dailydialog/test/dialogues_test.txt");
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    s2s_corpus *tr = dd(train, NULL, &o, NULL);
    expect_size(tr, 76053, &lc);
    cr_assert_eq(lc.n[S2S_LOG_WARN], 0, "%s", lc.text);
    expect_hash(tr, "b5a0ff71abe342100ebd7b0ca0bbea950e60ca093c0b257432a5f3e03e0c3f8f");
    for (size_t i = 0; i < s2s_corpus_size(tr); i++) {
        const char *s, *t;
        s2s_corpus_get(tr, i, &s, &t);
        cr_assert(!strchr(t, 0x7F) && !strstr(t, "\xE2\x80\x99"), "pair %zu: %s", i, t);
    }
    struct { const char *path; size_t all, kept; long excluded; const char *sha_all; } split[2] = {
        {valid, 7069, 5991, 1078, "4de38497e63001f0410caa949a7af8bc5c8bb5a32e6b232f4780d3f56201e603"},
        {test, 6740, 5628, 1112, "caa76f8a9fb75c2839e0847135da2a33b4456f70acd49d5465217b16f07a43c7"}};
    for (int k = 0; k < 2; k++) {
        long x = -1;
        s2s_corpus *c = dd(split[k].path, NULL, NULL, &x);
        expect_size(c, split[k].all, NULL);
        expect_hash(c, split[k].sha_all);
        cr_assert_eq(x, 0);
        s2s_corpus_free(c);
        c = dd(split[k].path, tr, NULL, &x);
        cr_log_info("%s deduplicated against train: %ld of %zu pairs excluded", split[k].path, x, split[k].all);
        expect_size(c, split[k].kept, NULL);
        cr_assert_eq(x, split[k].excluded);
        s2s_corpus_free(c);
    }
    s2s_corpus_free(tr);
}

/* ChatterBot english/: 2,026 conversations, 2,306 pairs, as the README's YAML count: the
 * malformed trivia.yml entry is a string, not a list, and gives none. */
Test(dialogue, cb_real_english)
{
    DATA_OR_SKIP(english, "chatterbot/english");
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    o.normalize_spaces = 0;
    s2s_corpus *c = cb(english, &o);
    expect_size(c, 2306, &lc);
    expect_hash(c, "d76c8525f5450751a8bd1f36869fd2b488a3d0643c8209db591929d4cca129d1"); /* PyYAML's values */
    expect_log(&lc, "trivia.yml:35: conversation is one string");
    cr_assert_eq(lc.n[S2S_LOG_WARN], 1, "%s", lc.text);
    expect_log(&lc, "2026 conversations, 2306 pairs; 1 skipped");
    s2s_corpus_free(c);

    c = cb(english, NULL);
    expect_size(c, 2306, NULL);
    expect_hash(c, "f56becbc3d4bdaec615e228114d441c59eae21df467cdba52bc056e2ea8a424a");
    s2s_corpus_free(c);

    char buf[600];
    snprintf(buf, sizeof buf, "%s/coding.yml", english);
    c = cb(buf, NULL);
    expect_size(c, 184, NULL);
    size_t fenced = 0;
    for (size_t i = 0; i < 184; i++) {
        const char *s, *t;
        s2s_corpus_get(c, i, &s, &t);
        cr_assert(strchr(t, '\n') && !strchr(s, '\n'), "pair %zu: the answer is a block, the question a line", i);
        cr_assert(t[strlen(t) - 1] != '\n', "pair %zu: the final newline is normalised away", i);
        fenced += strstr(t, "```") != NULL;
    }
    cr_assert_eq(fenced, 184, "answers with a ``` fence");
    s2s_corpus_free(c);
}
