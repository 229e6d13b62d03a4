"""Chatbot: replies from a dialogue model (s2s-chat train), optionally reranked by a reverse model,
and a generator that yields a reply's pieces as they are decoded (the serving engine's callback)."""
from __future__ import annotations

import ctypes
import queue
from typing import Iterator, Optional

from . import _capi
from ._capi import lib
from ._core import CANCELLED, INVALID_ARG, OK, Error, InvalidArgumentError, check, error_of, float_arg, text_arg
from .translator import Model, Translator, decode_options


class Chatbot(Translator):
    """Replies to lines of dialogue.

        bot = seq2seq.Chatbot("runs/chat.best.safetensors", mmi="runs/chatrev.best.safetensors")
        print(bot.reply("How are you?"))
        for piece in bot.stream("What do you do?", mode="greedy"):
            print(piece, end="", flush=True)

    Decoding as `s2s-chat chat`: beam 10 with 3-gram blocking by default; mode="greedy" or
    "sample" (temperature, top_k, top_p, seed). mmi: a reverse model (s2s-chat train --reverse)
    that reranks the whole beam with mmi_weight (3). Thread rules as Translator."""

    _what = "the Chatbot"

    def __init__(self, path, mmi=None, mmi_weight: float = 3.0, device: str = "auto", threads: Optional[int] = None):
        super().__init__(path, device, threads)
        self.mmi_weight = float_arg("mmi_weight", mmi_weight, 0, 100)
        self._rev: Optional[Model] = None
        self._engine = None
        if mmi is not None:
            try:
                self._rev = Model(mmi, device, threads)
            except BaseException:
                self.close()
                raise

    def _free(self) -> None:
        if self._engine:
            lib.s2s_engine_free(self._engine)
            self._engine = None
        if self._rev is not None:
            self._rev.close()
        super()._free()

    def reply(self, text: str, mode: str = "beam", beam_size: int = 10, length_penalty: float = 0.6,
              temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, seed: int = 1) -> str:
        """The reply to one line (the best of the beam, reranked by the reverse model when there
        is one and mode is "beam")."""
        enc = text_arg("text", text)
        rerank = self._rev is not None and mode == "beam" and self.mmi_weight > 0
        d = decode_options(mode, beam_size, beam_size if rerank else 1, length_penalty, no_repeat_ngram=3,
                           temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
        o = lib.s2s_translate_options_default()
        o.decode, o.batch_size = d, 1
        n = d.nbest if mode == "beam" else 1
        out = (ctypes.c_void_p * n)()
        scores = (ctypes.c_float * n)()
        line = (ctypes.c_char_p * 1)(enc)
        with self._lock:
            self._alive()
            check(lib.s2s_translate(self._m, self._st, self._tt, line, 1, ctypes.byref(o), out, scores))
            try:
                texts = [ctypes.string_at(out[i]) for i in range(n)]
            finally:
                lib.s2s_strings_free(out, n)
            best = ctypes.c_int(0)
            if rerank and any(texts):
                rev = self._rev
                rev._alive()
                arr = (ctypes.c_char_p * n)(*texts)
                if lib.s2s_rerank_reverse(rev._m, rev._st, rev._tt, enc, arr, scores, n, self.mmi_weight, None,
                                          ctypes.byref(best)) != OK:
                    best.value = 0  # as s2s-chat: the beam's own best
        return texts[best.value].decode("utf-8", "replace")

    def stream(self, text: str, mode: str = "greedy", temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
               seed: int = 1, max_tokens: Optional[int] = None, timeout: float = 600.0) -> Iterator[str]:
        """Yields the reply's text piece by piece as it is decoded (greedy or sampling: beam
        search's best changes from step to step, so it streams nothing until the end). The pieces
        join to what reply() gives with the same options. Runs on the library's serving engine,
        stepped in this thread; a generator closed early cancels the rest."""
        if mode not in ("greedy", "sample"):
            raise InvalidArgumentError(INVALID_ARG, "stream decodes with mode 'greedy' or 'sample', not %r" % mode)
        enc = text_arg("text", text)
        d = decode_options(mode, 1, 1, 0.6, no_repeat_ngram=3, temperature=temperature, top_k=top_k, top_p=top_p,
                           seed=seed)
        if max_tokens is not None:
            d.max_len_a, d.max_len_b = 0.0, max_tokens
        pieces: "queue.SimpleQueue" = queue.SimpleQueue()
        done = {}

        def on_token(rid, piece, user):
            pieces.put(piece.decode("utf-8", "replace"))

        def on_result(res, user):
            r = ctypes.cast(res, ctypes.POINTER(_capi.EngineResult))[0]
            done["status"] = r.status
            done["error"] = (r.error or b"").decode("utf-8", "replace")

        tok_cb, res_cb = _capi.TOKEN_FN(on_token), _capi.RESULT_FN(on_result)
        with self._lock:
            self._alive()
            if self._engine is None:
                e = ctypes.c_void_p()
                eo = lib.s2s_engine_options_default()
                check(lib.s2s_engine_create(self._m, self._st, self._tt, ctypes.byref(eo), ctypes.byref(e)))
                self._engine = e
            rid = ctypes.c_uint64()
            check(lib.s2s_engine_submit(self._engine, enc, ctypes.byref(d), tok_cb, res_cb, None, ctypes.byref(rid)))
            try:
                active = ctypes.c_int(1)
                while "status" not in done:
                    check(lib.s2s_engine_step(self._engine, ctypes.byref(active)))
                    while not pieces.empty():
                        yield pieces.get()
                while not pieces.empty():
                    yield pieces.get()
            finally:
                if "status" not in done:  # the generator was closed early: cancel, and let it leave
                    lib.s2s_engine_cancel(self._engine, rid)
                    while "status" not in done:
                        if lib.s2s_engine_step(self._engine, ctypes.byref(active)) != OK:
                            break
        if done.get("status") not in (OK, CANCELLED):
            raise error_of(done["status"], done.get("error"))
