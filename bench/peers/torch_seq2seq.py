#!/usr/bin/env python3
"""torch_seq2seq.py - the PyTorch peer of build/bench_seq2seq: an eager seq2seq of the same
architecture (nn.LSTM encoder, bidirectional with H/2 per direction where configured; a stack
of nn.LSTMCell decoder layers; Luong general attention; input feeding; dropout 0.2; Adam with
global-norm clipping 5) timed the same way, printing the same JSON lines.

  python3 bench/peers/torch_seq2seq.py --config medium --device cuda --mode all
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn

CONFIGS = {"small": (1, 256, False), "medium": (2, 512, True), "gnmt": (4, 1024, False)}
V, PAD, BOS, EOS = 8000, 0, 1, 2


class Seq2Seq(nn.Module):
    def __init__(self, layers, H, bidir, p=0.2):
        super().__init__()
        self.L, self.H, self.bidir = layers, H, bidir
        self.src_emb = nn.Embedding(V, H, padding_idx=PAD)
        self.tgt_emb = nn.Embedding(V, H, padding_idx=PAD)
        self.enc = nn.LSTM(H, H // 2 if bidir else H, layers, bidirectional=bidir, dropout=p if layers > 1 else 0)
        self.cells = nn.ModuleList(nn.LSTMCell(2 * H if l == 0 else H, H) for l in range(layers))
        self.linear_in = nn.Linear(H, H, bias=False)
        self.linear_out = nn.Linear(2 * H, H, bias=False)
        self.gen = nn.Linear(H, V)
        self.drop = nn.Dropout(p)

    def encode(self, src):
        mem, (h, c) = self.enc(self.drop(self.src_emb(src)))
        if self.bidir:  # [2L, B, H/2] -> [L, B, H], directions concatenated
            h = torch.cat([h[0::2], h[1::2]], 2)
            c = torch.cat([c[0::2], c[1::2]], 2)
        return mem, [(h[l], c[l]) for l in range(self.L)]

    def step(self, tok_emb, feed, state, mem):
        x = torch.cat([tok_emb, feed], 1)
        new = []
        for l, cell in enumerate(self.cells):
            h, c = cell(x, state[l])
            new.append((h, c))
            x = self.drop(h) if l + 1 < self.L else h
        q = self.linear_in(x)                                  # [B, H]
        a = torch.softmax(torch.einsum("bh,sbh->bs", q, mem), 1)
        ctx = torch.einsum("bs,sbh->bh", a, mem)
        ht = torch.tanh(self.linear_out(torch.cat([ctx, x], 1)))
        return ht, new

    def forward(self, src, tgt_in):
        mem, state = self.encode(src)
        emb = self.drop(self.tgt_emb(tgt_in))
        feed = torch.zeros(src.shape[1], self.H, device=src.device)
        outs = []
        for t in range(tgt_in.shape[0]):
            feed, state = self.step(emb[t], feed, state, mem)
            outs.append(feed)
        return self.gen(self.drop(torch.stack(outs)))

    @torch.no_grad()
    def greedy(self, src, steps):
        mem, state = self.encode(src)
        B = src.shape[1]
        tok = torch.full((B,), BOS, dtype=torch.long, device=src.device)
        feed = torch.zeros(B, self.H, device=src.device)
        out = []
        for _ in range(steps):
            feed, state = self.step(self.tgt_emb(tok), feed, state, mem)
            logits = self.gen(feed)
            logits[:, :2] = -3.0e38
            tok = logits.argmax(1)
            out.append(tok)
        return torch.stack(out).cpu()

    @torch.no_grad()
    def beam(self, src, steps, K=5):
        """Batched beam search for exactly `steps` steps (EOS, PAD, BOS never chosen, as in ours
        with the EOS logit pushed down), no length penalty; returns the best sequence per row."""
        mem, state = self.encode(src)
        B, dev = src.shape[1], src.device
        mem = mem.repeat_interleave(K, 1)
        state = [(h.repeat_interleave(K, 0), c.repeat_interleave(K, 0)) for h, c in state]
        tok = torch.full((B * K,), BOS, dtype=torch.long, device=dev)
        feed = torch.zeros(B * K, self.H, device=dev)
        score = torch.full((B, K), float("-inf"), device=dev)
        score[:, 0] = 0
        base = (torch.arange(B, device=dev) * K)[:, None]
        back, toks = [], []
        for _ in range(steps):
            feed, state = self.step(self.tgt_emb(tok), feed, state, mem)
            logp = torch.log_softmax(self.gen(feed), 1)
            logp[:, :3] = float("-inf")
            score, idx = (score.reshape(B * K, 1) + logp).reshape(B, K * V).topk(K, 1)
            sel = (base + idx // V).reshape(-1)
            tok = (idx % V).reshape(-1)
            state = [(h[sel], c[sel]) for h, c in state]
            feed = feed[sel]
            back.append(sel)
            toks.append(tok)
        row = base.reshape(-1)  # the best hypothesis of each sentence, traced back
        out = []
        for sel, tok in zip(reversed(back), reversed(toks)):
            out.append(tok[row])
            row = sel[row]
        return torch.stack(out[::-1]).cpu()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", choices=CONFIGS, default="medium")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    # bf16: torch.autocast (bf16 matrix products, fp32 weights and optimizer), our context's BF16
    p.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32")
    p.add_argument("--mode", choices=["all", "train", "greedy1", "greedy64", "beam1", "beam64"], default="all")
    p.add_argument("--B", type=int, default=64)
    p.add_argument("--len", type=int, default=30)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    tf32 = a.precision == "tf32"
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.manual_seed(1)
    layers, H, bidir = CONFIGS[a.config]
    m = Seq2Seq(layers, H, bidir).to(dev)
    name = torch.cuda.get_device_name() if dev.type == "cuda" else f"CPU ({torch.get_num_threads()} threads, PyTorch)"
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    head = {"bench": "seq2seq", "impl": "torch", "config": a.config, "device": a.device, "device_name": name,
            "precision": a.precision}

    def timed(fn, warm):
        ts = []
        for i in range(warm + a.reps):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            if i >= warm:
                ts.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(ts), min(ts)

    if a.mode in ("all", "train"):
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        lossf = nn.CrossEntropyLoss(ignore_index=PAD)
        src = torch.randint(4, V, (a.len, a.B), device=dev)
        tgt = torch.randint(4, V, (a.len, a.B), device=dev)
        tgt_in = torch.cat([torch.full((1, a.B), BOS, device=dev), tgt], 0)
        tgt_out = torch.cat([tgt, torch.full((1, a.B), EOS, device=dev)], 0)
        m.train()

        def step():
            opt.zero_grad()
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.precision == "bf16"):
                loss = lossf(m(src, tgt_in).reshape(-1, V).float(), tgt_out.reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 5.0)
            opt.step()

        med, mn = timed(step, 3)
        ntok = a.B * (a.len + 1)
        print(json.dumps({**head, "what": "train", "B": a.B, "len": a.len, "median_ms": round(med, 3),
                          "min_ms": round(mn, 3), "tokens_per_s": round(ntok / (med * 1e-3))}))
    m.eval()
    runs = (("greedy1", 1, "greedy_b1", m.greedy), ("greedy64", 64, "greedy_batch", m.greedy),
            ("beam1", 1, "beam5_b1", m.beam), ("beam64", 64, "beam5_batch", m.beam))
    for key, B, what, fn in runs:
        if a.mode not in ("all", key):
            continue
        src = torch.randint(4, V, (a.len, B), device=dev)
        def run(fn=fn, src=src):
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.precision == "bf16"):
                fn(src, a.len + 1)

        med, mn = timed(run, 2)
        print(json.dumps({**head, "what": what, "B": B, "len": a.len, "median_ms": round(med, 3),
                          "min_ms": round(mn, 3), "ms_per_token": round(med / a.len, 4),
                          "sentences_per_s": round(B / (med * 1e-3), 1)}))


if __name__ == "__main__":
    main()
