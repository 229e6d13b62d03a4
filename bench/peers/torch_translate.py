#!/usr/bin/python3
"""torch_translate.py - the PyTorch peer of `s2s-translate eval`: the same model file (our
safetensors, read into the PyTorch modules of tests/golden/make_golden.py, whose names the
interop test checks), the same sentences tokenized by the file's own tokenizers, decoded in
eager PyTorch by greedy search or beam search with the library's rules (GNMT length penalty
0.6, max length 2 * source + 10, at least one token, K finished or no live beam can win),
sorted by length and cut into batches as the library does. Prints one JSON line:

  {"peer": "torch", "precision": "fp32"|"int8-dynamic", "mode", "batch", "beam", "sentences",
   "seconds", "sent_per_s", "ms_per_sent", "bleu", "threads", "torch"}

  python3 bench/peers/torch_translate.py --model M --src F --ref F [--mode greedy|beam]
      [--beam 5] [--batch 64] [--limit N] [--quantize] [--threads 2]

--quantize: torch.ao.quantization.quantize_dynamic on the LSTM and Linear layers (int8 weights,
one scale per tensor, activations quantized per call): what a PyTorch user would do. Needs the
package (PYTHONPATH=python, built library) for the tokenizers and BLEU.
"""
import argparse
import ctypes
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
sys.path.insert(0, os.path.join(ROOT, "python"))
import torch_logprobs as tl  # noqa: E402  (safetensors reader, model builder)
import seq2seq  # noqa: E402
from seq2seq._capi import lib  # noqa: E402
from seq2seq._core import check  # noqa: E402

PAD, BOS, EOS = 0, 1, 2


def tokenize(model, lines):
    """Source ids of each line with the file's source tokenizer (as s2s_translate does)."""
    out = []
    buf = (ctypes.c_int32 * 1024)()
    n = ctypes.c_int()
    for line in lines:
        check(lib.s2s_tokenizer_encode(model._st, line.encode(), buf, 1024, ctypes.byref(n)))
        out.append(list(buf[:min(n.value, 250)]))
    return out


def detokenize(model, ids):
    buf = ctypes.create_string_buffer(1 << 16)
    n = ctypes.c_size_t()
    arr = (ctypes.c_int32 * max(1, len(ids)))(*ids)
    check(lib.s2s_tokenizer_decode(model._tt, arr, len(ids), buf, 1 << 16, ctypes.byref(n)))
    return buf.value.decode("utf-8", "replace")


def norm(length, alpha=0.6):
    return ((5.0 + length) / 6.0) ** alpha


@torch.no_grad()
def greedy(m, src, src_len, max_len):
    mem, valid, state = m.encode(src, src_len)
    B, H = src.shape[1], m.c["hidden"]
    ht = torch.zeros(B, H)
    tok = torch.full((B,), BOS, dtype=torch.long)
    out = [[] for _ in range(B)]
    alive = torch.arange(B)
    for t in range(int(max_len.max()) + 1):
        ht, state = m.decoder.step(tok, ht, state, mem, valid)
        logits = m.generator(ht)
        logits[:, :2] = -math.inf
        if t == 0:
            logits[:, EOS] = -math.inf  # at least one token
        tok = logits.argmax(1)
        keep = []
        for i, b in enumerate(alive.tolist()):
            if int(tok[i]) != EOS:
                out[b].append(int(tok[i]))
            if int(tok[i]) != EOS and len(out[b]) < int(max_len[b]):
                keep.append(i)
        if not keep:
            break
        if len(keep) < len(alive):  # finished sentences leave the batch
            k = torch.tensor(keep)
            alive, tok, ht, mem, valid = alive[k], tok[k], ht[k], mem[:, k], valid[:, k]
            state = tuple(s[:, k] for s in state) if isinstance(state, tuple) else state[:, k]
    return out


@torch.no_grad()
def beam(m, src, src_len, max_len, K):
    mem, valid, state = m.encode(src, src_len)
    B, H = src.shape[1], m.c["hidden"]
    rep = torch.arange(B).repeat_interleave(K)  # row b*K+k is sentence b's beam k
    mem, valid = mem[:, rep], valid[:, rep]
    state = tuple(s[:, rep] for s in state) if isinstance(state, tuple) else state[:, rep]
    ht = torch.zeros(B * K, H)
    tok = torch.full((B * K,), BOS, dtype=torch.long)
    logp = torch.full((B, K), -math.inf)
    logp[:, 0] = 0.0  # at the first step all beams are equal: one of them counts
    hyps = [[[] for _ in range(K)] for _ in range(B)]
    fin = [[] for _ in range(B)]  # (normalised score, tokens)
    alive = list(range(B))  # sentence of each row block
    for t in range(int(max_len.max()) + 1):
        n = len(alive)
        ht, state = m.decoder.step(tok, ht, state, mem, valid)
        lp = F.log_softmax(m.generator(ht), 1)
        lp[:, :2] = -math.inf
        if t == 0:
            lp[:, EOS] = -math.inf
        V = lp.shape[1]
        cand = (logp.view(n * K, 1) + lp).view(n, K * V)
        top_v, top_i = cand.topk(2 * K, 1)
        top_v, top_i = top_v.tolist(), top_i.tolist()
        rows, toks, new_logp, keep_blocks, new_hyps = [], [], [], [], []
        for j, b in enumerate(alive):
            nh, filled = [], 0
            for v, i in zip(top_v[j], top_i[j]):
                if filled == K or v == -math.inf:
                    break
                k, w = divmod(i, V)
                h = hyps[j][k]
                if w == EOS:
                    fin[b].append((v / norm(len(h)), h))
                    continue
                h = h + [w]
                if len(h) >= int(max_len[b]):
                    fin[b].append((v / norm(len(h)), h))
                    v = -math.inf
                rows.append(j * K + k), toks.append(w), new_logp.append(v), nh.append(h)
                filled += 1
            while filled < K:  # a dead beam
                rows.append(j * K), toks.append(EOS), new_logp.append(-math.inf), nh.append([])
                filled += 1
            fin[b] = sorted(fin[b], key=lambda x: -x[0])[:K]
            best_live = max(new_logp[-K:])
            done = best_live == -math.inf or len(fin[b]) >= K or (
                fin[b] and best_live / norm(int(max_len[b])) < fin[b][-1][0])
            if not done:
                keep_blocks.append(j)
                new_hyps.append(nh)
        if not keep_blocks:
            break
        r = torch.tensor([rows[j * K + k] for j in keep_blocks for k in range(K)])
        tok = torch.tensor([toks[j * K + k] for j in keep_blocks for k in range(K)])
        logp = torch.tensor([[new_logp[j * K + k] for k in range(K)] for j in keep_blocks])
        alive, hyps = [alive[j] for j in keep_blocks], new_hyps
        ht, mem, valid = ht[r], mem[:, r], valid[:, r]
        state = tuple(s[:, r] for s in state) if isinstance(state, tuple) else state[:, r]
    return [max(f, key=lambda x: x[0])[1] if f else [] for f in fin]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--src", required=True)
    ap.add_argument("--ref", required=True)
    ap.add_argument("--mode", choices=["greedy", "beam"], default="beam")
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quantize", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    meta, tensors = tl.read_safetensors(a.model)
    model, _ = tl.build_model(meta, tensors)
    model = model.float().eval()
    if a.quantize:
        model = torch.ao.quantization.quantize_dynamic(model, {nn.LSTM, nn.GRU, nn.Linear}, dtype=torch.qint8)
    with open(a.src, encoding="utf-8") as f:
        src_lines = f.read().split("\n")[:-1]
    with open(a.ref, encoding="utf-8") as f:
        refs = f.read().split("\n")[:-1]
    if a.limit:
        src_lines, refs = src_lines[:a.limit], refs[:a.limit]
    tok_model = seq2seq.Translator(a.model, device="cpu", threads=1)
    ids = tokenize(tok_model, src_lines)
    order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
    out = [None] * len(ids)
    t0 = time.perf_counter()
    for s in range(0, len(order), a.batch):
        idx = order[s:s + a.batch]
        lens = torch.tensor([max(1, len(ids[i])) for i in idx])
        src = torch.zeros(int(lens.max()), len(idx), dtype=torch.long)
        for j, i in enumerate(idx):
            src[:len(ids[i]), j] = torch.tensor(ids[i], dtype=torch.long)
        max_len = 2 * lens + 10
        hyp = greedy(model, src, lens, max_len) if a.mode == "greedy" else beam(model, src, lens, max_len, a.beam)
        for j, i in enumerate(idx):
            out[i] = hyp[j]
    sec = time.perf_counter() - t0
    text = [detokenize(tok_model, h) for h in out]
    b = seq2seq.bleu(text, refs)
    n = len(src_lines)
    print(json.dumps({"peer": "torch", "precision": "int8-dynamic" if a.quantize else "fp32", "mode": a.mode,
                      "batch": a.batch, "beam": a.beam if a.mode == "beam" else 1, "sentences": n,
                      "seconds": round(sec, 3), "sent_per_s": round(n / sec, 2), "ms_per_sent": round(1e3 * sec / n, 2),
                      "bleu": round(b.score, 2), "threads": a.threads, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
