"""Translator: a model file's translations, through the library's s2s_translate (the same text as
`s2s-translate translate`), with scores and, when asked for, attention as NumPy arrays."""
from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from . import _capi
from ._capi import lib
from ._core import (INVALID_ARG, Handle, InvalidArgumentError, check, float_arg, free_model, int_arg, make_context,
                    path_arg, texts_arg)


@dataclass
class TranslationResult:
    """One hypothesis: its text, its score (the length-normalised log-probability of beam search,
    or the log-probability) and, with return_attention, its attention as a float32 NumPy array
    [output tokens, source tokens] (a copy: the C buffer is freed with the call's results)."""
    text: str
    score: Optional[float] = None
    attention: Optional["object"] = field(default=None, repr=False)


MODES = {"beam": 1, "greedy": 0, "sample": 2}
PRECISIONS = {"fp32": 0, "bf16": 2, "int8": 3}  # s2s_precision
PRECISION_NAMES = {v: k for k, v in PRECISIONS.items()}


class Model(Handle):
    """A loaded model file: the model, its tokenizers, and its own context. Load with a path; free
    with close(), a with block, or garbage collection."""

    _what = "the model"

    def __init__(self, path, device: str = "auto", threads: Optional[int] = None, precision: str = "fp32"):
        super().__init__()
        self._ctx = self._m = self._st = self._tt = None
        p = path_arg("path", path)
        if precision not in PRECISIONS:
            raise InvalidArgumentError(INVALID_ARG, "precision must be one of %s, not %r"
                                       % (sorted(PRECISIONS), precision))
        self._ctx, self._keep = make_context(device, threads)
        m, st, tt = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
        prov = _capi.Provenance()
        try:
            check(lib.s2s_model_load(self._ctx, p, ctypes.byref(m), ctypes.byref(st), ctypes.byref(tt),
                                     ctypes.byref(prov)))
        except BaseException:
            lib.s2s_context_free(self._ctx)
            self._ctx = None
            raise
        self._m, self._st, self._tt = m, st, tt
        self.path = str(path)
        self.provenance = {"seed": prov.seed, "step": prov.step, "data_sha256": prov.data_sha256.decode()}
        if not st.value or not tt.value:
            self.close()
            raise InvalidArgumentError(INVALID_ARG, "%s holds no tokenizers: it cannot translate text" % path)
        self.device = lib.s2s_context_device_name(self._ctx).decode()
        # the weights converted for decoding now, at load; fp32 where this device cannot (with why)
        used, what = ctypes.c_int(), ctypes.create_string_buffer(400)
        try:
            check(lib.s2s_model_prepare_decoding(self._m, PRECISIONS[precision], ctypes.byref(used), what, 400))
        except BaseException:
            self.close()
            raise
        self._precision = used.value
        self.precision = PRECISION_NAMES.get(used.value, "fp32")
        self.precision_info = what.value.decode("utf-8", "replace")

    def _free(self) -> None:
        free_model(self._m, self._st, self._tt)
        if self._ctx:
            lib.s2s_context_free(self._ctx)
        self._ctx = self._m = self._st = self._tt = None


def decode_options(mode: str, beam_size: int, n_best: int, length_penalty: float, max_len_a: float = 2.0,
                   max_len_b: int = 10, no_repeat_ngram: int = 0, temperature: float = 1.0, top_k: int = 0,
                   top_p: float = 1.0, seed: int = 1, min_len: int = 1):
    if mode not in MODES:
        raise InvalidArgumentError(INVALID_ARG, "mode must be one of %s, not %r" % (sorted(MODES), mode))
    d = lib.s2s_decode_options_default()
    d.mode = MODES[mode]
    d.beam_size = int_arg("beam_size", beam_size, 1, 64)
    d.nbest = int_arg("n_best", n_best, 1, beam_size)
    d.length_penalty = float_arg("length_penalty", length_penalty, 0, 100)
    d.max_len_a = float_arg("max_len_a", max_len_a, 0, 1000)
    d.max_len_b = int_arg("max_len_b", max_len_b, 0, 100000)
    d.no_repeat_ngram = int_arg("no_repeat_ngram", no_repeat_ngram, 0, 100)
    d.temperature = float_arg("temperature", temperature, 1e-6, 1000)
    d.top_k = int_arg("top_k", top_k, 0, 1 << 30)
    d.top_p = float_arg("top_p", top_p, 1e-6, 1)
    d.seed = int_arg("seed", seed, 0, 2 ** 63)
    d.min_len = int_arg("min_len", min_len, 0, 100000)
    return d


class Translator(Model):
    """Translates text with a model file (s2s-translate train writes them).

        with seq2seq.Translator("runs/m30k.best.safetensors") as t:
            print(t.translate(["A man is riding a bike."])[0][0].text)

    device: "auto" (the GPU where one is present), "cpu" or "cuda"; threads: CPU threads (None:
    all cores); precision: the weights' for decoding on the CPU, "fp32" (default), "bf16" (AVX-512
    BF16 or AMX) or "int8" (AVX2), converted at load; where this CPU cannot, fp32 (the attribute
    precision says what is used, precision_info how or why not). Thread rules: one Translator is used by one thread at a time (calls on one object
    are serialised by a lock); two Translators run in parallel in two threads (the GIL is released
    during every call into the library)."""

    _what = "the Translator"

    def translate(self, texts: Sequence[str], beam_size: int = 5, n_best: int = 1, length_penalty: float = 0.6,
                  return_scores: bool = False, return_attention: bool = False, batch_size: int = 64,
                  mode: str = "beam", max_len_a: float = 2.0, max_len_b: int = 10, replace_unk: bool = True,
                  strict: bool = False) -> List[List[TranslationResult]]:
        """Translates each text; returns, per text, its n_best results, best first. mode "beam"
        (default), "greedy" or "sample". Lines over 250 tokens are translated in pieces and lines
        that are not valid UTF-8 give empty results, unless strict (then they raise)."""
        enc = texts_arg("texts", texts)
        d = decode_options(mode, beam_size, n_best if mode == "beam" else 1, length_penalty, max_len_a, max_len_b)
        d.precision = self._precision
        o = lib.s2s_translate_options_default()
        o.decode = d
        o.batch_size = int_arg("batch_size", batch_size, 1, 1 << 20)
        o.replace_unk = 1 if replace_unk else 0
        o.strict = 1 if strict else 0
        nb = d.nbest if mode == "beam" else 1
        n = len(enc)
        if n == 0:
            return []
        arr = (ctypes.c_char_p * n)(*enc)
        out = (ctypes.c_void_p * (n * nb))()
        scores = (ctypes.c_float * (n * nb))()
        with self._lock:
            self._alive()
            check(lib.s2s_translate(self._m, self._st, self._tt, arr, n, ctypes.byref(o), out, scores))
            try:
                texts_out = [ctypes.string_at(out[i]).decode("utf-8", "replace") for i in range(n * nb)]
            finally:
                lib.s2s_strings_free(out, n * nb)
            attention = self._attention(enc, d) if return_attention else None
        res = []
        for i in range(n):
            row = []
            for j in range(nb):
                k = i * nb + j
                row.append(TranslationResult(texts_out[k], float(scores[k]) if return_scores else None,
                                             attention[k] if attention else None))
            res.append(row)
        return res

    def _attention(self, enc: List[bytes], d) -> list:
        """Each hypothesis' attention, by decoding each text alone with attention (one copy each)."""
        import numpy as np
        out = []
        nb = d.nbest if d.mode == MODES["beam"] else 1
        for text in enc:
            ids = (ctypes.c_int32 * 1024)()
            n = ctypes.c_int()
            check(lib.s2s_tokenizer_encode(self._st, text, ids, 1024, ctypes.byref(n)))
            if n.value == 0 or n.value > 1024:
                out.extend([np.zeros((0, max(n.value, 0)), np.float32)] * nb)
                continue
            length = (ctypes.c_int32 * 1)(n.value)
            b = _capi.Batch(1, n.value, 0, ids, length, None, None)
            dd = _capi.DecodeOptions.from_buffer_copy(d)
            dd.attention = 1
            h = ctypes.POINTER(_capi.Hypothesis)()
            check(lib.s2s_model_decode(self._m, ctypes.byref(b), ctypes.byref(dd), ctypes.byref(h)))
            try:
                for j in range(nb):
                    hj = h[j]
                    if hj.len and hj.attention:
                        a = np.ctypeslib.as_array(hj.attention, shape=(hj.len, hj.src_len)).copy()
                    else:
                        a = np.zeros((0, n.value), np.float32)
                    out.append(a)
            finally:
                lib.s2s_hypotheses_free(h, nb)
        return out
