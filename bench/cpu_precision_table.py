#!/usr/bin/env python3
"""cpu_precision_table.py RAW.jsonl [CPU.txt] - the Markdown table of bench/cpu_precision.sh:
medians over rounds of each (who, precision, case); batch 64 as sentences per second, batch 1
as milliseconds per sentence; speed-ups against our fp32, PyTorch fp32 and PyTorch int8."""
import json
import statistics
import sys

CASES = [("beam64", "beam 5, batch 64", "sent/s"), ("greedy64", "greedy, batch 64", "sent/s"),
         ("beam1", "beam 5, batch 1", "ms/sent"), ("greedy1", "greedy, batch 1", "ms/sent")]
ROWS = [("base", "fp32"), ("ours", "fp32"), ("ours", "bf16"), ("ours", "int8"), ("torch", "fp32"), ("torch", "int8-dynamic")]
NAMES = {"base": "libseq2seq before (--base)", "ours": "libseq2seq", "torch": "PyTorch"}


def main():
    runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    med, bleu, used, n = {}, {}, {}, {}
    for who, asked in ROWS:
        for case, _, _ in CASES:
            rs = [r for r in runs if r["who"] == who and r["asked"] == asked and r["case"] == case]
            if not rs:
                continue
            med[who, asked, case] = statistics.median(r["seconds"] for r in rs)
            bleu[who, asked, case] = rs[0]["bleu"]
            used[who, asked] = rs[0]["used"]
            n[case] = (rs[0]["sentences"], len(rs))
    if len(sys.argv) > 2:
        print("```")
        print(open(sys.argv[2]).read().rstrip())
        print("```\n")
    print("| | " + " | ".join(f"{title} ({unit})" for _, title, unit in CASES) + " |")
    print("|---|" + "---:|" * len(CASES))
    for who, asked in ROWS:
        if (who, asked) not in used:
            continue
        name = f"{NAMES[who]} {asked}"
        if used[who, asked] != asked and who == "ours":
            name += f" (ran as {used[who, asked]}: not on this CPU)"
        cells = []
        for case, _, unit in CASES:
            if (who, asked, case) not in med:
                cells.append("-")
                continue
            sec, (sents, _) = med[who, asked, case], n[case]
            val = sents / sec if unit == "sent/s" else 1e3 * sec / sents
            cells.append(f"{val:.1f} (BLEU {bleu[who, asked, case]:.2f})")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()
    print("Speed-ups (time ratio, medians; > 1 means libseq2seq int8 is faster):\n")
    print("| libseq2seq int8 against | " + " | ".join(t for _, t, _ in CASES) + " |")
    print("|---|" + "---:|" * len(CASES))
    for who, asked in [("base", "fp32"), ("ours", "fp32"), ("torch", "fp32"), ("torch", "int8-dynamic")]:
        cells = []
        for case, _, _ in CASES:
            a, b = med.get((who, asked, case)), med.get(("ours", "int8", case))
            cells.append(f"{a / b:.2f}x" if a and b else "-")
        label = f"{NAMES[who]} {asked}"
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()
    print("Sentences and rounds per case: " + ", ".join(f"{c} {n[c][0]} x {n[c][1]}" for c, _, _ in CASES if c in n))


if __name__ == "__main__":
    main()
