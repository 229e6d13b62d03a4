#!/usr/bin/env python3
"""table.py - turns the JSON lines of bench/compare.sh into Markdown tables: for each shape
and mode, our time beside each peer's and the ratio peer / ours (> 1: we are faster)."""
import json
import sys


def fmt(x, nd=2):
    return "-" if x is None else f"{x:.{nd}f}"


def main(path):
    rows = [json.loads(l) for l in open(path) if l.startswith("{")]
    gemm = [r for r in rows if r["bench"] == "gemm"]
    rnn = [r for r in rows if r["bench"] == "rnn" and "median_ms" in r]
    s2s = [r for r in rows if r["bench"] == "seq2seq"]
    dev = next((r["device_name"] for r in rows if r.get("impl") in ("fused", "ours")), "?")
    print(f"# Benchmarks on {dev}\n")
    for g in gemm:
        print(f"GEMM ceiling ({g['precision']}): {g['M']}x{g['N']}x{g['K']} in {g['median_ms']:.3f} ms = "
              f"**{g['tflops']:.2f} TFLOP/s**  ")
    print("\n## Recurrent layer (LSTM), medians\n")
    print("| precision | T | B | I=H | layers | mode | ours ms | ours TFLOP/s | % of GEMM | ours peak MB | "
          "peer | peer ms | peer peak MB | peer/ours |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    ceiling = {g["precision"]: g["tflops"] for g in gemm}
    key = lambda r: (r["precision"], r["T"], r["B"], r["I"], r["H"], r["layers"], r["bidirectional"], r["mode"])
    default = lambda r: not r.get("lanes") and not r.get("chunk")  # the device's own schedule
    ours = {key(r): r for r in rnn if r["impl"] == "fused" and default(r)}
    for k, o in ours.items():
        peers = [r for r in rnn if r["impl"] != "fused" and key(r) == k]
        pct = 100 * o["tflops"] / ceiling[o["precision"]] if o["precision"] in ceiling else None
        for p in peers or [None]:
            name = "-" if p is None else (p["impl"] + (f" (algo {p['cudnn_algo']})" if p["impl"] == "cudnn" else ""))
            print(f"| {o['precision']} | {o['T']} | {o['B']} | {o['H']} | {o['layers']} | {o['mode']} | "
                  f"{o['median_ms']:.3f} | {o['tflops']:.2f} | {fmt(pct, 0)} | {o['peak_mb']:.0f} | {name} | "
                  f"{fmt(p and p['median_ms'], 3)} | {fmt(p and p['peak_mb'], 0)} | "
                  f"{fmt(p and p['median_ms'] / o['median_ms'])} |")
    variants = [r for r in rnn if r["impl"] == "fused" and not default(r)]
    if variants:
        print("\n## Layer wavefront schedules (ours; 0 = the device default), medians\n")
        print("| precision | T | B | I=H | layers | mode | lanes | chunk | ms | default ms |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for v in variants:
            o = ours.get(key(v))
            print(f"| {v['precision']} | {v['T']} | {v['B']} | {v['H']} | {v['layers']} | {v['mode']} | "
                  f"{v.get('lanes', 0)} | {v.get('chunk', 0)} | {v['median_ms']:.3f} | {fmt(o and o['median_ms'], 3)} |")
    errors = [r for r in rows if r["bench"] == "rnn" and "error" in r]
    for e in errors:
        print(f"\n- {e['impl']} {e['precision']} T={e['T']} B={e['B']} H={e['H']} {e['mode']}: not measured "
              f"({e['error']})")
    if s2s:
        print("\n## Whole seq2seq model, medians\n")
        print("| config | measure | ours | torch eager | torch/ours |")
        print("|---|---|---|---|---|")
        for o in (r for r in s2s if r["impl"] == "ours"):
            p = next((r for r in s2s if r["impl"] == "torch" and r["config"] == o["config"]
                      and r["what"] == o["what"]), None)
            for alt in (r for r in s2s if r["impl"].startswith("ours_") and r["config"] == o["config"]
                        and r["what"] == o["what"]):
                how = alt["impl"][5:].replace("_", " ")
                if o["what"] == "train":
                    print(f"| {o['config']} | train tokens/s ({how}) | {alt['tokens_per_s']:.0f} | "
                          f"{fmt(p and p['tokens_per_s'], 0)} | {fmt(p and alt['tokens_per_s'] / p['tokens_per_s'])} |")
                else:
                    print(f"| {o['config']} | {o['what']} ms/token ({how}) | {alt['ms_per_token']:.3f} | "
                          f"{fmt(p and p['ms_per_token'], 3)} | {fmt(p and p['ms_per_token'] / alt['ms_per_token'])} |")
            if o["what"] == "train":
                print(f"| {o['config']} | train tokens/s (B={o['B']}, len {o['len']}) | {o['tokens_per_s']:.0f} | "
                      f"{fmt(p and p['tokens_per_s'], 0)} | {fmt(p and o['tokens_per_s'] / p['tokens_per_s'])} |")
            else:
                print(f"| {o['config']} | {o['what']} ms/token (B={o['B']}) | {o['ms_per_token']:.3f} | "
                      f"{fmt(p and p['ms_per_token'], 3)} | {fmt(p and p['ms_per_token'] / o['ms_per_token'])} |")


if __name__ == "__main__":
    main(sys.argv[1])
