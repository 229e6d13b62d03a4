#!/usr/bin/env python3
"""torch_lstm.py - the PyTorch peer of build/bench_lstm: nn.LSTM / nn.GRU (cuDNN on the GPU,
PyTorch's own kernels on the CPU) with the same options, printing the same JSON line.

  python3 bench/peers/torch_lstm.py --device cuda --T 100 --B 64 --I 512 --H 512 --backward
"""
import argparse
import json
import resource
import statistics
import time
import sys

import torch


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--cell", choices=["lstm", "gru"], default="lstm")
    for k, v in (("T", 100), ("B", 64), ("I", 512), ("H", 512), ("layers", 1), ("warmup", 3), ("reps", 20)):
        p.add_argument("--" + k, type=int, default=v)
    p.add_argument("--bidirectional", action="store_true")
    p.add_argument("--backward", action="store_true")
    p.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32",
                   help="bf16: the module and tensors in bfloat16 (PyTorch's own bf16 path)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    tf32 = a.precision == "tf32"
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.manual_seed(1)
    cls = torch.nn.LSTM if a.cell == "lstm" else torch.nn.GRU
    rnn = cls(a.I, a.H, a.layers, bidirectional=a.bidirectional).to(dev)
    x = torch.rand(a.T, a.B, a.I, device=dev) * 2 - 1
    dy = torch.rand(a.T, a.B, a.H * (2 if a.bidirectional else 1), device=dev) * 2 - 1
    if a.precision == "bf16":
        rnn, x, dy = rnn.to(torch.bfloat16), x.to(torch.bfloat16), dy.to(torch.bfloat16)
        rnn.flatten_parameters()  # one cuDNN weight buffer again after the cast
    if a.backward:
        x.requires_grad_(True)  # cuDNN computes the input gradient, as ours does

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def once():
        if a.backward:
            y, _ = rnn(x)
            y.backward(dy)
        else:
            with torch.no_grad():
                rnn(x)

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    try:
        for i in range(a.warmup + a.reps):
            sync()
            t0 = time.perf_counter()
            once()
            sync()
            if i >= a.warmup:
                times.append((time.perf_counter() - t0) * 1e3)
    except RuntimeError as e:  # e.g. a precision this build of PyTorch cannot run here
        print(json.dumps({"bench": "rnn", "impl": "torch", "device": a.device, "cell": a.cell, "T": a.T, "B": a.B,
                          "I": a.I, "H": a.H, "layers": a.layers, "bidirectional": int(a.bidirectional),
                          "mode": "fwdbwd" if a.backward else "fwd", "precision": a.precision,
                          "error": str(e).splitlines()[0][:200]}))
        return 1
    G = 4 if a.cell == "lstm" else 3
    dirs = 2 if a.bidirectional else 1
    fl = sum(dirs * 2.0 * a.B * G * a.H * ((a.I if l == 0 else a.H * dirs) + a.H) * a.T for l in range(a.layers))
    fl *= 3 if a.backward else 1
    med = statistics.median(times)
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
        name = torch.cuda.get_device_name()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        name = f"CPU ({torch.get_num_threads()} threads, PyTorch {torch.__version__})"
    print(json.dumps({"bench": "rnn", "impl": "torch", "device": a.device, "device_name": name, "cell": a.cell,
                      "T": a.T, "B": a.B, "I": a.I, "H": a.H, "layers": a.layers,
                      "bidirectional": int(a.bidirectional), "mode": "fwdbwd" if a.backward else "fwd",
                      "precision": a.precision, "median_ms": round(med, 4), "min_ms": round(min(times), 4),
                      "us_per_step": round(1e3 * med / a.T, 2), "tflops": round(fl / (med * 1e-3) / 1e12, 3),
                      "peak_mb": round(peak, 1)}))


if __name__ == "__main__":
    sys.exit(main())
