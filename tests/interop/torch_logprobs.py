#!/usr/bin/python3
"""torch_logprobs.py - reads a libseq2seq model file into PyTorch and scores a batch.

Usage:  /usr/bin/python3 tests/interop/torch_logprobs.py MODEL.safetensors [BATCH.txt]

MODEL is a file written by s2s_model_save (or s2s_checkpoint_save). The script parses the
safetensors container itself (no `safetensors` package needed), checks every tensor's CRC32
against the file's metadata, builds the equivalent PyTorch model from the stored config with
the module classes of tests/golden/make_golden.py (so the state-dict names must match the
library's exactly: load_state_dict(strict=True)), converts it to float64 and prints, for every
sentence b and target position t (EOS included), the log-probability of the reference token:

    b t logp          (one line each, %.17g; lines starting with '#' are comments)

BATCH has one sentence pair per line: source ids, a TAB, target ids (space-separated; the
target may be empty). Without BATCH a fixed batch is scored. The C test (suite interop in
tests/test_modelfile.c) compares these numbers with the library; see README.md here.
"""
import json
import os
import struct
import sys
import zlib

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden"))
import make_golden as mg  # noqa: E402  (the reference model's classes)

DTYPES = {"F32": np.float32, "U8": np.uint8}


def read_safetensors(path):
    """Returns (metadata dict, {name: numpy array}), with every CRC32 checked."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    crc = json.loads(meta["crc32"])
    tensors = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        if zlib.crc32(data[b:e]) != int(crc[name], 16):
            sys.exit(f"{path}: tensor {name}: CRC32 mismatch")
        arr = np.frombuffer(data[b:e], dtype=np.dtype(DTYPES[t["dtype"]]).newbyteorder("<"))
        tensors[name] = arr.reshape(t["shape"]).copy()
    return meta, tensors


def build_model(meta, tensors):
    c = json.loads(meta["config"])  # cell / attention names are make_golden's keys
    model = mg.Seq2Seq(c)
    names = set(model.state_dict().keys())
    state = {k: torch.from_numpy(v) for k, v in tensors.items() if k in names}
    # tied embeddings: the file holds the one tensor under its first role's name; PyTorch's
    # state dict lists every role (the same Parameter), so each gets that tensor
    tied = {"decoder": ["decoder.embedding.weight", "generator.weight"],
            "all": ["encoder.embedding.weight", "decoder.embedding.weight", "generator.weight"]}
    roles = tied.get(c.get("tie_embeddings", "none"), [])
    for k in roles[1:]:
        if k in state:
            raise SystemExit("a tied model's file holds '%s' beside '%s'" % (k, roles[0]))
        state[k] = state[roles[0]]
    model.load_state_dict(state, strict=True)  # every parameter present, shapes equal
    return model.double().eval(), c


def read_batch(path):
    pairs = []
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            src, _, tgt = line.rstrip("\n").partition("\t")
            pairs.append(([int(x) for x in src.split()], [int(x) for x in tgt.split()]))
    return pairs


def fixed_batch(c):
    """Three pairs with ids in 4..V-1 (what a batch file would hold)."""
    vs, vt = c["src_vocab"], c["tgt_vocab"]
    return [([4 + i % (vs - 4) for i in range(n)], [4 + (3 * i) % (vt - 4) for i in range(m)])
            for n, m in ((5, 4), (3, 2), (1, 0))]


@torch.no_grad()
def logprobs(model, pairs):
    """[(b, t, logp)] of every reference token y1..yn EOS, float64."""
    B = len(pairs)
    src_len = torch.tensor([len(s) for s, _ in pairs], dtype=torch.long)
    tgt_len = [len(t) for _, t in pairs]
    S, Tm = int(src_len.max()), max(1, max(tgt_len))
    src = torch.zeros(B, S, dtype=torch.long)
    tgt = torch.zeros(B, Tm, dtype=torch.long)
    for b, (s, t) in enumerate(pairs):
        src[b, :len(s)] = torch.tensor(s)
        tgt[b, :len(t)] = torch.tensor(t, dtype=torch.long)
    tin, tout = mg.decoder_io(tgt, tgt_len)
    logp = F.log_softmax(model(src.t().contiguous(), src_len, tin), dim=2)  # [T, B, V]
    return [(b, t, float(logp[t, b, tout[t, b]])) for b in range(B) for t in range(tgt_len[b] + 1)]


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    meta, tensors = read_safetensors(sys.argv[1])
    model, c = build_model(meta, tensors)
    pairs = read_batch(sys.argv[2]) if len(sys.argv) == 3 else fixed_batch(c)
    print(f"# {sys.argv[1]}: {meta.get('format')} {meta.get('version')}, config {meta['config']}, "
          f"torch {torch.__version__}, float64")
    for b, t, lp in logprobs(model, pairs):
        print(f"{b} {t} {lp:.17g}")


if __name__ == "__main__":
    main()
