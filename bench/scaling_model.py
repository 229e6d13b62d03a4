#!/usr/bin/env python3
"""scaling_model.py - predicted data-parallel efficiency on N GPUs (2, 8, 64) for the medium and
GNMT-sized configurations, from measured single-GPU times and published NCCL bandwidths.

    python3 bench/scaling_model.py [--out DIR]      (writes DIR/scaling.md, DIR/scaling.json)

Inputs, each printed in the table's notes:
  * parameters per gradient bucket: the library's own model (built on the CPU through ctypes from
    build/libseq2seq.so), grouped as the trainer reduces them (model/train.c, s2s_grad_phase):
    the generator as soon as the loss's backward is done, then the decoder (target embedding,
    decoder layers, attention out) after the decoder's backward, then the encoder (source
    embedding, encoder layers, attention in) at the end;
  * step times measured on an H200 by bench/compare.sh (bench/results/2026-11-26-NVIDIA-H200-*):
    the medium model's whole training step, and one LSTM layer's forward and forward+backward
    (I = H = 1024, T = 100, B = 64, fp32 and bf16), with the bf16 GEMM rate for the generator;
  * all-reduce time of a bucket of b bytes on N GPUs: NCCL's ring, t = 2 (N-1)/N b / busBW +
    2 (N-1) alpha, where busBW is the bus bandwidth nccl-tests reports (its PERFORMANCE.md defines
    busBW = algBW 2 (N-1)/N for all-reduce) and alpha the per-hop latency;
  * overlap: the buckets are reduced one after another on NCCL's stream, each starting when its
    gradients are complete and the previous reduction has finished; what is left after backward
    ends is exposed. This is the design of lib/comm/comm_nccl.c; it was not measured on a GPU
    (no multi-GPU machine was available): the CPU run's measured waiting is reported beside it.
Gradients are reduced in fp32 (4 bytes per parameter) whatever the GEMM precision.
"""
import argparse
import ctypes
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

# ---- measured on one NVIDIA H200 (bench/results/2026-11-26-NVIDIA-H200-gpu-check-4-recheck,
# fp32 rows from -3): milliseconds, medians ----
MEDIUM_STEP_MS = {"fp32": 11.618}  # whole training step, B=64, len 30 (170,774 tokens/s)
MEDIUM_TOKENS = 64 * 31
LSTM_1024 = {  # one layer, T=100, B=64, I=H=1024: (fwd, fwd+bwd)
    "fp32": (4.393, 10.434),
    "bf16": (1.675, 4.776),
}
LSTM_512_FP32 = (2.709, 4.850)  # I=H=512, T=100, B=64 (gpu-check-3)
GEMM_TFLOPS = {"fp32": 44.06, "bf16": 283.07}  # cuBLAS, 6400x4096x1024
LSTM_TOKENS = 100 * 64

# ---- interconnects: bus bandwidth (GB/s, per GPU) and per-hop latency (us) ----
# NVLink 4 (H100/H200 SXM): 450 GB/s per direction per GPU (NVIDIA H100 datasheet: 900 GB/s
# bidirectional); nccl-tests all_reduce_perf on 8 x H100 SXM reports 460-480 GB/s busbw with
# NVLink SHARP, ~360 GB/s by ring: 360 used. Networks: one NIC per GPU (as DGX H100: 8 x
# ConnectX-7), NCCL reaching ~90% of line rate on InfiniBand for large messages.
LINKS = {
    "NVLink 4 (one machine, up to 8 GPUs)": (360.0, 1.0),
    "400 Gb/s per GPU (InfiniBand NDR)": (0.9 * 400 / 8, 5.0),
    "100 Gb/s per GPU": (0.9 * 100 / 8, 5.0),
}


def buckets(config):
    """Parameters per reduction bucket, in the order the trainer starts them, from the library."""
    from seq2seq import _capi
    lib = _capi.lib
    co = lib.s2s_context_options_default()
    co.device = 1  # S2S_DEVICE_CPU
    ctx = _capi.c_void_p()
    if lib.s2s_context_create(ctypes.byref(co), ctypes.byref(ctx)) != 0:
        raise SystemExit("scaling_model.py: cannot create a CPU context: " + lib.s2s_last_error().decode())
    c = lib.s2s_model_config_default()
    for k, v in config.items():
        setattr(c, k, v)
    m = _capi.c_void_p()
    if lib.s2s_model_create(ctx, ctypes.byref(c), ctypes.byref(m)) != 0:
        raise SystemExit("scaling_model.py: " + lib.s2s_last_error().decode())
    groups = {"generator": 0, "decoder": 0, "encoder": 0}
    info = _capi.ParamInfo()
    for i in range(lib.s2s_model_param_count(m)):
        lib.s2s_model_param_info_at(m, i, ctypes.byref(info))
        name = info.name.decode()
        if name.startswith("generator"):
            groups["generator"] += info.numel
        elif name.startswith("encoder") or name.startswith("decoder.attn.linear_in"):
            groups["encoder"] += info.numel  # attention in: written by the encoder's backward
        else:
            groups["decoder"] += info.numel
    lib.s2s_model_free(m)
    lib.s2s_context_free(ctx)
    return groups


def lstm_ms_per_token(prec, hidden, inp, part):
    """One LSTM layer's forward (part 0) or backward (part 1) per token: measured at I = H (1024;
    512 in fp32 where that was measured too), scaled by the layer's GEMM work h(i + h)."""
    ref, (f, fb) = (512, LSTM_512_FP32) if prec == "fp32" and hidden <= 512 else (1024, LSTM_1024[prec])
    ms = f if part == 0 else fb - f
    return ms / LSTM_TOKENS * hidden * (inp + hidden) / (ref * 2 * ref)


def timeline(cfg, prec, tokens):
    """Backward phases (ms) and the step time for one GPU's batch of `tokens` target tokens
    (source as long as target)."""
    H, E, L, V = cfg["hidden"], cfg["embed"], cfg["layers"], cfg["tgt_vocab"]
    dirs = 2 if cfg.get("bidirectional") else 1  # a bidirectional encoder: H/2 each way
    enc_layers = [(E if l == 0 else H, H // dirs) for l in range(L) for _ in range(dirs)]
    dec_layers = [(E + H if l == 0 else H, H) for l in range(L)]  # input feeding on layer 0
    gen_flops = 2 * tokens * (H + H) * V  # the output projection's backward: dX and dW
    gen_bwd = gen_flops / (GEMM_TFLOPS[prec] * 1e9)
    dec_bwd = sum(lstm_ms_per_token(prec, h, i, 1) for i, h in dec_layers) * tokens
    enc_bwd = sum(lstm_ms_per_token(prec, h, i, 1) for i, h in enc_layers) * tokens
    fwd = sum(lstm_ms_per_token(prec, h, i, 0) for i, h in enc_layers + dec_layers) * tokens + gen_bwd / 2
    step = fwd + gen_bwd + dec_bwd + enc_bwd
    if cfg["name"] == "medium" and prec in MEDIUM_STEP_MS:  # the measured step, parts scaled to it
        scale = MEDIUM_STEP_MS[prec] * tokens / MEDIUM_TOKENS / step
        fwd, gen_bwd, dec_bwd, enc_bwd, step = (x * scale for x in (fwd, gen_bwd, dec_bwd, enc_bwd, step))
    return {"fwd": fwd, "gen_bwd": gen_bwd, "dec_bwd": dec_bwd, "enc_bwd": enc_bwd, "step": step}


def allreduce_ms(nbytes, n, link):
    bw, alpha = LINKS[link]
    return (2 * (n - 1) / n * nbytes / (bw * 1e9) + 2 * (n - 1) * alpha * 1e-6) * 1e3


def efficiency(t, groups, n, link):
    """Step time alone over step time with the exposed part of the reductions."""
    ready = {"generator": t["fwd"] + t["gen_bwd"], "decoder": t["fwd"] + t["gen_bwd"] + t["dec_bwd"],
             "encoder": t["step"]}
    free_at = 0.0
    for name in ("generator", "decoder", "encoder"):
        free_at = max(free_at, ready[name]) + allreduce_ms(4 * groups[name], n, link)
    exposed = max(0.0, free_at - t["step"])
    no_overlap = sum(allreduce_ms(4 * groups[g], n, link) for g in groups)
    return t["step"] / (t["step"] + exposed), t["step"] / (t["step"] + no_overlap), exposed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "results", "scaling-model"))
    ap.add_argument("--tokens", type=int, nargs="+", default=[64 * 31, 6400],
                    help="target tokens per GPU per step (default: 1984, the measured step's, and 6400)")
    a = ap.parse_args()
    configs = [
        dict(name="medium", layers=2, hidden=512, embed=512, bidirectional=1, src_vocab=8000, tgt_vocab=8000),
        dict(name="gnmt", layers=4, hidden=1024, embed=1024, bidirectional=0, src_vocab=8000, tgt_vocab=8000),
        dict(name="gnmt-32k", layers=4, hidden=1024, embed=1024, bidirectional=0, src_vocab=32000, tgt_vocab=32000),
    ]
    rows, out = [], []
    for cfg in configs:
        groups = buckets({k: v for k, v in cfg.items() if k != "name"})
        for prec, tokens in ((p, k) for p in ("fp32", "bf16") for k in a.tokens):
            t = timeline(cfg, prec, tokens)
            for link in LINKS:
                for n in (2, 8, 64):
                    if link.startswith("NVLink") and n > 8:
                        continue
                    eff, eff_none, exposed = efficiency(t, groups, n, link)
                    rows.append(dict(config=cfg["name"], precision=prec, tokens=tokens, link=link, gpus=n,
                                     params=sum(groups.values()), buckets=groups, step_ms=round(t["step"], 3),
                                     phases_ms={k: round(v, 3) for k, v in t.items()}, exposed_ms=round(exposed, 3),
                                     efficiency=round(eff, 4), efficiency_no_overlap=round(eff_none, 4)))
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "scaling.json"), "w") as f:
        json.dump(rows, f, indent=1)
    out += ["# Predicted data-parallel efficiency (model, not a measurement)", "",
            "Command: `python3 bench/scaling_model.py`. One GPU's step = an H200's measured times "
            "(bench/results/2026-11-26-NVIDIA-H200-gpu-check-3 and -4: the medium model's whole step, one "
            "LSTM layer's forward and backward, the bf16 GEMM rate) at the given target tokens per GPU per "
            "step (weak scaling: the global batch grows with N). The medium fp32 step is the measured one "
            "(the layers' sum is 61%% of it: attention, embeddings, loss and Adam are the rest), its phases "
            "scaled to it; the other steps are the layers' and generator's sum alone, shorter than the real "
            "step, which leaves less backward to hide the reductions behind: their efficiencies are lower "
            "bounds of this model. Buckets as the trainer reduces them (generator, "
            "decoder, encoder), fp32 gradients, NCCL ring: 2(N-1)/N bytes / busBW + 2(N-1) latency. "
            "Efficiency = step / (step + the reductions' exposed part); 'no overlap' reduces everything "
            "after backward (as NVIDIA's GNMT v2 reference does). Not modeled: NCCL's kernels take a few SMs "
            "from backward while they overlap it; the overlap on a GPU is this design's, not measured (no "
            "multi-GPU machine was available).", "",
            "| config | params (M) | precision | tokens/GPU | step ms | link | GPUs | exposed ms | efficiency "
            "| no overlap |",
            "|---|---:|---|---:|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        out.append("| %s | %.1f | %s | %d | %.2f | %s | %d | %.2f | %.1f%% | %.1f%% |" % (
            r["config"], r["params"] / 1e6, r["precision"], r["tokens"], r["step_ms"], r["link"], r["gpus"],
            r["exposed_ms"],
            100 * r["efficiency"], 100 * r["efficiency_no_overlap"]))
    b = {r["config"]: r["buckets"] for r in rows}
    out += ["", "Buckets (parameters, in reduction order): " + "; ".join(
        "%s: generator %d, decoder %d, encoder %d" % (k, v["generator"], v["decoder"], v["encoder"])
        for k, v in b.items()), "",
        "Links: " + "; ".join("%s: busBW %.1f GB/s, %.0f us per hop" % (k, v[0], v[1]) for k, v in LINKS.items()),
        "", "Sources: nccl-tests doc/PERFORMANCE.md (busBW of all-reduce = algBW x 2(N-1)/N); NVIDIA H100 "
        "datasheet (NVLink 4: 900 GB/s bidirectional per GPU); nccl-tests all_reduce_perf on 8 x H100 SXM "
        "(460-480 GB/s busbw with NVLink SHARP; 360 GB/s used here for the ring); DGX H100 (one 400 Gb/s "
        "ConnectX-7 per GPU); NCCL at ~90% of InfiniBand line rate for large messages. Anchors: NVIDIA's GNMT v2 "
        "(PyTorch, DGX-1 V100, no overlap) 87% on 8 GPUs in fp32, 77% in mixed precision; OpenNMT-py about "
        "5x on 8 GPUs."]
    for r in rows:
        if r["config"] == "gnmt" and r["precision"] == "bf16" and r["gpus"] == 8 and r["link"].startswith("NVLink"):
            out += ["", "Target: GNMT-sized, bf16, 8 GPUs (NVLink), %d tokens per GPU: %.1f%% predicted (at least "
                    "90%% asked)." % (r["tokens"], 100 * r["efficiency"])]
    with open(os.path.join(a.out, "scaling.md"), "w") as f:
        f.write("\n".join(out) + "\n")
    print("\n".join(out))


if __name__ == "__main__":
    main()
