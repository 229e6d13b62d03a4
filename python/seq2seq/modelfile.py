"""ModelFile: a model file's config, provenance and tensors (NumPy arrays under PyTorch's names),
and BLEU as sacreBLEU computes it."""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Dict, List, Sequence

from . import _capi
from ._capi import lib
from ._core import INVALID_ARG, InvalidArgumentError, check, make_context, path_arg, texts_arg
from .translator import Model

CELL_NAMES = {0: "lstm", 1: "gru", 2: "rnn"}
ATTENTION_NAMES = {0: "none", 1: "dot", 2: "general"}


class ModelFile(Model):
    """A model or checkpoint file, read on the CPU.

        f = seq2seq.ModelFile("runs/m30k.best.safetensors")
        f.config["hidden"], f.provenance["step"], f.tensors["generator.weight"].shape
        module.load_state_dict(f.state_dict())       # an equivalent PyTorch nn.Module

    tensors: name -> float32 NumPy array (copies; the names and layouts are PyTorch's, e.g.
    "encoder.rnn.weight_ih_l0"; a tied model's one embedding under each of its roles' names, one
    array). state_dict() gives torch tensors when torch is importable."""

    _what = "the ModelFile"

    def __init__(self, path):
        super().__init__(path, device="cpu", threads=1)
        with self._lock:
            c = lib.s2s_model_get_config(self._m)
            self.config = {"cell": CELL_NAMES.get(c.cell, c.cell), "layers": c.layers, "hidden": c.hidden,
                           "embed": c.embed, "bidirectional": bool(c.bidirectional),
                           "attention": ATTENTION_NAMES.get(c.attention, c.attention), "dropout": c.dropout,
                           "src_vocab": c.src_vocab, "tgt_vocab": c.tgt_vocab,
                           "tie_embeddings": ("none", "decoder", "all")[c.tie_embeddings]}
            self.tensors = self._tensors()

    def _tensors(self) -> Dict[str, "object"]:
        import numpy as np
        out = {}
        for i in range(lib.s2s_model_param_count(self._m)):
            info = _capi.ParamInfo()
            check(lib.s2s_model_param_info_at(self._m, i, ctypes.byref(info)))
            shape = (info.shape[0],) if info.ndim == 1 else (info.shape[0], info.shape[1])
            a = np.empty(shape, np.float32)
            check(lib.s2s_model_param_get(self._m, info.name, a.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                          info.numel))
            out[info.name.decode()] = a
        # tied embeddings: PyTorch's state dict lists every role of the one Parameter
        roles = {"decoder": ["decoder.embedding.weight", "generator.weight"],
                 "all": ["encoder.embedding.weight", "decoder.embedding.weight", "generator.weight"]}
        names = roles.get(self.config["tie_embeddings"], [])
        for name in names[1:]:
            out[name] = out[names[0]]
        return out

    def state_dict(self):
        """The tensors as torch tensors, for nn.Module.load_state_dict (torch must be installed)."""
        import torch
        return {k: torch.from_numpy(v.copy()) for k, v in self.tensors.items()}


@dataclass
class BLEU:
    """Corpus BLEU (sacreBLEU 2.x defaults: 13a tokenisation, mixed case, exp smoothing)."""
    score: float
    precisions: List[float]
    brevity_penalty: float
    hyp_len: int
    ref_len: int


def average(paths: Sequence, out) -> None:
    """Writes the model file `out` whose every weight is the mean of the given model or checkpoint
    files' (checkpoints of one run; the tokenizers and provenance of the last), as
    `s2s-translate average` does. Files whose config or tokenizers differ raise
    InvalidArgumentError naming the file and the field."""
    if isinstance(paths, (str, bytes)) or not hasattr(paths, "__iter__"):
        raise InvalidArgumentError(INVALID_ARG, "paths must be a list of model file paths")
    ps = [path_arg("paths[%d]" % i, p) for i, p in enumerate(paths)]
    if not ps:
        raise InvalidArgumentError(INVALID_ARG, "paths must name at least one model file")
    o = path_arg("out", out)
    ctx, _ = make_context("cpu", 1)
    try:
        check(lib.s2s_model_average(ctx, (ctypes.c_char_p * len(ps))(*ps), len(ps), o))
    finally:
        lib.s2s_context_free(ctx)


def bleu(hyps: Sequence[str], refs: Sequence[str]) -> BLEU:
    """Corpus BLEU of hypotheses against references (one each), as `s2s-translate eval` reports."""
    h, r = texts_arg("hyps", hyps), texts_arg("refs", refs)
    if len(h) != len(r) or not h:
        raise InvalidArgumentError(INVALID_ARG, "hyps and refs must be non-empty and of one length (%d, %d)"
                                   % (len(h), len(r)))
    out = _capi.Bleu()
    check(lib.s2s_bleu_corpus((ctypes.c_char_p * len(h))(*h), (ctypes.c_char_p * len(r))(*r), len(h),
                              ctypes.byref(out)))
    return BLEU(out.score, list(out.precisions), out.brevity_penalty, out.hyp_len, out.ref_len)
