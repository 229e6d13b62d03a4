#!/usr/bin/env python3
"""python_overhead.py - the Python package's cost per translate call over the C library's.

    bench/python_overhead.py --model FILE --lines FILE [--batches "1 64"] [--beam 5] [--reps 3]
                             [--threads 2] [--n 200] [--rounds 3]

For each batch size, build/bench_translate (C, in-process s2s_translate) and the same calls through
seq2seq.Translator.translate run alternately, --rounds times; the median per call of each is
compared: overhead = Python - C, per call and as a fraction (two processes: it carries their
run-to-run difference). The package's own work per call is also timed alone, with the C
translation replaced by a stub that returns at once. Prints JSON lines and a table. The first N
lines of the file are used (--n).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))
B = os.path.join(ROOT, os.environ.get("BUILD", "build"))
os.environ.setdefault("S2S_LIBRARY", os.path.join(B, "libseq2seq.so"))


def py_run(model, lines, batch, beam, reps, threads):
    import seq2seq
    with seq2seq.Translator(model, device="cpu", threads=threads) as t:
        calls = [lines[i:i + batch] for i in range(0, len(lines), batch)]
        ms = []
        for rep in range(-1, reps):
            for c in calls:
                t0 = time.perf_counter()
                t.translate(c, beam_size=beam, batch_size=batch)
                if rep >= 0:
                    ms.append(1e3 * (time.perf_counter() - t0))
        return statistics.median(ms)


def package_work(model, lines, batch, reps):
    """Milliseconds per call spent in the package itself: s2s_translate stubbed out."""
    import ctypes
    import seq2seq
    import seq2seq.translator as tr
    real = tr.lib

    class Stub:
        def __getattr__(self, k):
            return getattr(real, k)

        @staticmethod
        def s2s_translate(m, st, tt, arr, n, o, out, scores):
            for i in range(n):
                out[i] = ctypes.cast(STUB_TEXT, ctypes.c_void_p).value
            return 0

        @staticmethod
        def s2s_strings_free(out, n):
            return None

    STUB_TEXT = ctypes.c_char_p(b"x")
    with seq2seq.Translator(model, device="cpu", threads=1) as t:
        tr.lib = Stub()
        try:
            ms = []
            calls = [lines[i:i + batch] for i in range(0, len(lines), batch)]
            for _ in range(max(reps, 5)):
                for c in calls:
                    t0 = time.perf_counter()
                    t.translate(c, batch_size=batch)
                    ms.append(1e3 * (time.perf_counter() - t0))
        finally:
            tr.lib = real
    return statistics.median(ms)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--lines", required=True)
    ap.add_argument("--batches", default="1 64")
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    lines = [x.rstrip("\n") for x in open(a.lines, encoding="utf-8")][: a.n]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(lines) + "\n")
    rows = []
    for batch in [int(x) for x in a.batches.split()]:
        cs, ps = [], []
        for _ in range(a.rounds):
            out = subprocess.run([os.path.join(B, "bench_translate"), "--model", a.model, "--lines", f.name, "--batch",
                                  str(batch), "--beam", str(a.beam), "--reps", str(a.reps), "--threads",
                                  str(a.threads)], capture_output=True, text=True, check=True).stdout
            cs.append(json.loads(out)["median_ms_per_call"])
            ps.append(py_run(a.model, lines, batch, a.beam, a.reps, a.threads))
        c, p = statistics.median(cs), statistics.median(ps)
        work = package_work(a.model, lines, batch, a.reps)
        row = {"batch": batch, "beam": a.beam, "sentences": len(lines), "c_ms_per_call": round(c, 4),
               "python_ms_per_call": round(p, 4), "overhead_ms": round(p - c, 4), "package_work_ms": round(work, 4),
               "overhead_fraction": round((p - c) / c, 4), "rounds_c": cs, "rounds_python": ps}
        rows.append(row)
        print(json.dumps(row))
    os.unlink(f.name)
    print("| batch | C ms/call | Python ms/call | difference ms | difference | the package's own work ms/call |\n"
          "|---|---|---|---|---|---|")
    for r in rows:
        print("| %d | %.3f | %.3f | %.3f | %.1f%% | %.4f |" % (r["batch"], r["c_ms_per_call"], r["python_ms_per_call"],
                                                              r["overhead_ms"], 100 * r["overhead_fraction"],
                                                              r["package_work_ms"]))


if __name__ == "__main__":
    main()
