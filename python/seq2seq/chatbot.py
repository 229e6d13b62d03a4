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
    _engine = None  # class defaults: _free may run before __init__ has set them
    _rev = None

    def __init__(self, path, mmi=None, mmi_weight: float = 3.0, device: str = "auto", threads: Optional[int] = None,
                 precision: str = "fp32"):
        self._callbacks = {}  # request id -> its ctypes callbacks, kept alive while the engine may call them
        super().__init__(path, device, threads, precision)
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
            lib.s2s_engine_free(self._engine)  # gives the requests it holds their (cancelled) results
            self._engine = None
        getattr(self, "_callbacks", {}).clear()
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
        d.precision = self._precision
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
               seed: int = 1, max_tokens: Optional[int] = None) -> Iterator[str]:
        """Yields the reply's text piece by piece as it is decoded (greedy or sampling: beam
        search's best changes from step to step, so it streams nothing). For inputs of up to 250
        tokens the pieces join to what reply() gives with the same options (longer ones raise,
        where reply() answers in pieces). Runs on the library's serving engine, stepped in this
        thread; the Chatbot's lock is held for each step, not while the generator waits, so other
        calls go on between pieces; a generator closed early cancels the rest."""
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

        cbs = (_capi.TOKEN_FN(on_token), _capi.RESULT_FN(on_result))
        rid = ctypes.c_uint64()
        with self._lock:
            self._alive()
            if self._engine is None:
                e = ctypes.c_void_p()
                eo = lib.s2s_engine_options_default()
                eo.precision = self._precision
                check(lib.s2s_engine_create(self._m, self._st, self._tt, ctypes.byref(eo), ctypes.byref(e)))
                self._engine = e
            check(lib.s2s_engine_submit(self._engine, enc, ctypes.byref(d), cbs[0], cbs[1], None, ctypes.byref(rid)))
            self._callbacks[rid.value] = cbs  # alive until the engine has given the result
        try:
            while "status" not in done:
                self._step()
                while not pieces.empty():
                    yield pieces.get()
            while not pieces.empty():
                yield pieces.get()
        finally:
            if "status" not in done:  # closed early: cancel, and step until the engine lets it go
                with self._lock:
                    if self._engine is not None:
                        lib.s2s_engine_cancel(self._engine, rid)
                while "status" not in done and self._step():
                    pass
            if "status" in done:
                self._callbacks.pop(rid.value, None)
        if done.get("status") not in (OK, CANCELLED):
            raise error_of(done["status"], done.get("error"))

    def _step(self) -> bool:
        """One engine step under the lock; False when the Chatbot was closed meanwhile."""
        with self._lock:
            if self._closed or self._engine is None:
                return False
            active = ctypes.c_int(0)
            check(lib.s2s_engine_step(self._engine, ctypes.byref(active)))
            return True
