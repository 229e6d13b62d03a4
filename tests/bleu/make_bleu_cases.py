#!/usr/bin/env python3
"""make_bleu_cases.py - reference BLEU scores for tests/test_bleu.c, computed by sacreBLEU.

Each case is a pair of files NAME.hyp / NAME.ref (UTF-8, one segment per line, every line
ending in '\\n') and one row of expected.tsv with what sacrebleu.metrics.BLEU() (all defaults:
13a, mixed case, smooth 'exp', no effective order) gives for corpus_score(hyps, [refs]).
The hypotheses are real sentences with words dropped, replaced, swapped or added under a
fixed seed, so the scores cover the whole range; a few small hand-made cases add 13a's corner
cases (entities, <skipped>, numbers, Unicode spaces) and the score's edge cases (exp
smoothing, an n-gram order with no n-grams at all, no match, empty hypotheses).

  python3 tests/bleu/make_bleu_cases.py              rewrite the committed cases here (needs
                                                      the Tatoeba corpus: ../shared/data or
                                                      $S2S_DATA_MIRROR)
  python3 tests/bleu/make_bleu_cases.py --live DIR --seed N
                                                      fresh cases into DIR (used by the live
                                                      test; works without any corpus)

Only Tatoeba text (CC BY 2.0 FR) goes into the committed files: Multi30k has no open licence
(see ../shared/data/README.md), so it is used by --live only, read at run time, never stored.
Needs sacrebleu 2.x (2.6.0 made the committed files).
"""
import argparse
import os
import random
import sys

import sacrebleu
from sacrebleu.metrics import BLEU

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
N_SENTENCES = 300

# Pieces that exercise the 13a rules; every one goes through sacreBLEU like any other text.
TRICKY = ["&quot;oui&quot;", "&amp;", "&lt;b&gt;", "&amp;quot;", "<skipped>", "1,000.5", "3-4", "5.-6",
          "x.y", ".5", "e-mail", "(a)", "[1]", "{x}", "$5", "50%", "a/b", "#1", "@home", "~", "^_^",
          "l'été", "«\u00a0oui\u00a0»", "Cours\u202f!", "vraiment\u00a0?", "fin\u3000de", "thin\u2009space",
          "zero\u200bwidth", "…", "—", "“quoted”", "don't", "U.S.A.", "etc.,", "2,5", "10.000", "a--b",
          "\t", "  ", "\u2028", "\u0085", "\u1680", "\u205f", "x\x1c"]


def data_dir():
    return os.environ.get("S2S_DATA_MIRROR") or os.path.join(os.path.dirname(REPO), "shared", "data")


def read_tatoeba(side):
    """The French (side=1) or English (side=0) column of tatoeba-eng-fra/eng-fra.tsv, or None."""
    path = os.path.join(data_dir(), "tatoeba-eng-fra", "eng-fra.tsv")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8", newline="\n") as f:
        return [line.rstrip("\n").split("\t")[side] for line in f]


def read_lines(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8", newline="\n") as f:
        return [line.rstrip("\n") for line in f]


def sample(rng, sentences, n, min_words=4):
    pool = [s for s in sentences if len(s.split(" ")) >= min_words]
    return rng.sample(pool, n)


def perturb(rng, sentence, pool, p_drop=0.0, p_replace=0.0, p_swap=0.0, p_insert=0.0, keep_prefix=None):
    """Words (split on ASCII spaces only, so U+202F stays inside) dropped, replaced, swapped
    with their neighbour or followed by an inserted word; keep_prefix keeps only a share."""
    words = sentence.split(" ")
    if keep_prefix is not None:
        words = words[:max(1, int(round(len(words) * keep_prefix)))]
    out = []
    for w in words:
        r = rng.random()
        if r < p_drop:
            continue
        if r < p_drop + p_replace:
            w = rng.choice(pool)
        out.append(w)
        if rng.random() < p_insert:
            out.append(rng.choice(pool))
    for i in range(len(out) - 1):
        if rng.random() < p_swap:
            out[i], out[i + 1] = out[i + 1], out[i]
    return " ".join(out)


def word_pool(sentences):
    return sorted({w for s in sentences for w in s.split(" ") if w})


def sprinkle(rng, sentence, k):
    """The sentence with k tricky pieces put between its words."""
    words = sentence.split(" ")
    for _ in range(k):
        words.insert(rng.randint(0, len(words)), rng.choice(TRICKY))
    return " ".join(words)


def noisy_cases(rng, name, refs, pool):
    """Four hypothesis sets for one list of references, from close to far."""
    return [
        (f"{name}_light", [perturb(rng, s, pool, 0.05, 0.05, 0.03, 0.02) for s in refs], refs),
        (f"{name}_heavy", [perturb(rng, s, pool, 0.25, 0.3, 0.2, 0.1) for s in refs], refs),
        (f"{name}_short", [perturb(rng, s, pool, 0.1, 0.05, 0.0, 0.0, keep_prefix=0.6) for s in refs], refs),
        (f"{name}_long", [perturb(rng, s, pool, 0.0, 0.05, 0.05, 0.4) for s in refs], refs),
    ]


def committed_cases():
    rng = random.Random(20261126)
    fra, eng = read_tatoeba(1), read_tatoeba(0)
    if fra is None:
        sys.exit(f"make_bleu_cases.py: no Tatoeba corpus under {data_dir()} (set S2S_DATA_MIRROR)")
    cases = []
    fr = sample(rng, fra, N_SENTENCES)
    cases += noisy_cases(rng, "fr", fr, word_pool(fr))
    en = sample(rng, eng, N_SENTENCES)
    cases += noisy_cases(rng, "en", en, word_pool(en))[:2]
    # 13a corner cases on real text: references and hypotheses get different tricky pieces.
    mixed = sample(rng, fra, 60) + sample(rng, eng, 60)
    cases.append(("markup", [perturb(rng, sprinkle(rng, s, 2), TRICKY, 0.05, 0.1, 0.05, 0.05) for s in mixed],
                  [sprinkle(rng, s, 2) for s in mixed]))
    cases += edge_cases()
    return cases


def edge_cases():
    return [
        # unigram and bigram matches only: orders 3 and 4 use exp smoothing (1/2, then 1/4)
        ("smooth", ["the cat sat down", "a dog ran off", "birds sing loud songs"],
         ["the cat lay down", "a dog ate off", "birds sing soft songs"]),
        # no hypothesis reaches 4 tokens: order 4 has no n-grams, so the score is 0
        ("no_4grams", ["Hello, world", "oui oui", "(a)"], ["Hello, world!", "oui non", "(b)"]),
        ("no_match", ["un deux trois quatre cinq", "six sept huit"], ["one two three four five", "sechs sieben acht"]),
        ("some_empty", ["", "le chat est noir .", "", "il pleut beaucoup aujourd'hui"],
         ["un texte", "le chat est noir.", "encore", "il pleut beaucoup aujourd'hui."]),
        ("all_empty", ["", " ", "\u00a0"], ["a b c d", "e f", "g"]),
        ("identical", ["Où est la gare\u202f?", "Il a 1,000.5 dollars (environ)."],
         ["Où est la gare\u202f?", "Il a 1,000.5 dollars (environ)."]),
    ]


def live_cases(seed):
    rng = random.Random(seed)
    cases = []
    de = read_lines(os.path.join(data_dir(), "multi30k", "val.de"))
    if de:
        refs = sample(rng, de, N_SENTENCES)
        p = [rng.uniform(0, 0.3) for _ in range(4)]
        cases.append(("live_m30k", [perturb(rng, s, word_pool(refs), *p) for s in refs], refs))
    fra = read_tatoeba(1)
    if fra:
        refs = sample(rng, fra, N_SENTENCES)
        p = [rng.uniform(0, 0.3) for _ in range(4)]
        cases.append(("live_fr", [perturb(rng, sprinkle(rng, s, 1), word_pool(refs), *p) for s in refs], refs))
    # Random text from a small alphabet of words and tricky pieces: always available.
    words = ["le", "la", "chat", "été", "über", "Straße", "a", "b", "1", "2.5", "3,000", "x-y", "."] + TRICKY
    refs = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 25))) for _ in range(N_SENTENCES)]
    cases.append(("live_synth", [perturb(rng, s, words, 0.2, 0.2, 0.2, 0.2) for s in refs], refs))
    return cases


def write_case(out_dir, name, hyps, refs):
    for lines in (hyps, refs):
        for line in lines:
            assert "\n" not in line and "\r" not in line, (name, line)
    for ext, lines in (("hyp", hyps), ("ref", refs)):
        with open(os.path.join(out_dir, f"{name}.{ext}"), "w", encoding="utf-8", newline="\n") as f:
            f.write("".join(line + "\n" for line in lines))
    # Score what was written, read back exactly as the C test reads it.
    hyps = read_lines(os.path.join(out_dir, f"{name}.hyp"))
    refs = read_lines(os.path.join(out_dir, f"{name}.ref"))
    bleu = BLEU()
    s = bleu.corpus_score(hyps, [refs])
    sig = str(bleu.get_signature())
    row = [name, repr(s.score)] + [repr(p) for p in s.precisions] + [repr(s.bp), str(s.sys_len), str(s.ref_len)]
    return "\t".join(row), sig


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--live", metavar="DIR", help="write fresh random cases into DIR")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    out_dir = a.live or HERE
    cases = live_cases(a.seed) if a.live else committed_cases()
    rows, sig = [], ""
    for name, hyps, refs in cases:
        assert len(hyps) == len(refs)
        row, sig = write_case(out_dir, name, hyps, refs)
        rows.append(row)
    with open(os.path.join(out_dir, "expected.tsv"), "w", encoding="utf-8", newline="\n") as f:
        f.write(f"# sacreBLEU {sacrebleu.__version__}: {sig}\n")
        f.write("# name\tscore\tp1\tp2\tp3\tp4\tbp\thyp_len\tref_len\n")
        f.write("".join(r + "\n" for r in rows))


if __name__ == "__main__":
    main()
