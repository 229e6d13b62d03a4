"""Training from Python: the library's trainer with its options as keyword arguments, a progress
callback (or a tqdm bar when tqdm is installed), and the files s2s-translate train writes."""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

from . import _capi
from ._capi import lib
from ._core import (INVALID_ARG, Handle, InvalidArgumentError, check, float_arg, free_model, int_arg, make_context,
                    path_arg, text_arg)


@dataclass
class Progress:
    """A progress report: a training report, or a validation result (is_validation)."""
    epoch: int
    step: int
    steps_total: int
    loss: float
    lr: float
    tokens_per_s: float
    elapsed_s: float
    eta_s: float
    is_validation: bool
    valid_loss: float
    valid_ppl: float
    valid_bleu: float
    improved: bool
    text: str  # the line s2s-translate prints


CELLS = {"lstm": 0, "gru": 1, "rnn": 2}
ATTENTIONS = {"none": 0, "dot": 1, "general": 2}
TIES = ("none", "decoder", "all")  # s2s_tie
SCHEDULES = ("invsqrt", "plateau", "linear")  # s2s_lr_schedule
TRAINER_OPTIONS = ("batch_tokens", "max_len", "lr", "warmup_steps", "label_smoothing", "clip_norm", "valid_every",
                   "valid_max", "keep_last", "patience", "minutes", "max_steps", "max_epochs", "report_every", "average_last",
                   "schedule", "cycles", "word_dropout")


def _pairs(name, pairs) -> Tuple[list, list]:
    src, tgt = [], []
    try:
        items = list(pairs)
    except TypeError:
        raise InvalidArgumentError(INVALID_ARG, "%s must be a list of (source, target) pairs" % name) from None
    for i, p in enumerate(items):
        if not isinstance(p, (tuple, list)) or len(p) != 2:
            raise InvalidArgumentError(INVALID_ARG, "%s[%d] must be a (source, target) pair" % (name, i))
        src.append(text_arg("%s[%d][0]" % (name, i), p[0]))
        tgt.append(text_arg("%s[%d][1]" % (name, i), p[1]))
    return src, tgt


class Trainer(Handle):
    """Trains a new model on sentence pairs and writes PREFIX.best.safetensors, checkpoints, a
    metrics CSV and an SVG plot, as `s2s-translate train` does.

        t = seq2seq.Trainer(train=pairs, valid=valid_pairs, out="runs/m", vocab=8000, minutes=5)
        t.run(progress=print)

    Model options: cell ("lstm", "gru", "rnn"), layers, hidden, embed, bidirectional,
    attention ("none", "dot", "general"), dropout, vocab (one SentencePiece vocabulary per side,
    or shared_vocab), tie_embeddings ("none"; "decoder": the decoder's input embedding is the
    output projection, needs embed == hidden; "all": the source embedding too, needs shared_vocab),
    init_uniform (> 0: every weight drawn uniform in [-init_uniform, init_uniform], the embeddings'
    pad rows zero, as `--init-uniform`; 0: PyTorch's default initialisation).
    Trainer options: batch_tokens, max_len, lr, warmup_steps, label_smoothing,
    clip_norm, valid_every, valid_max, keep_last, patience, minutes, max_steps, max_epochs,
    report_every, average_last, schedule ("invsqrt", "plateau", "linear"), cycles (with "linear":
    that many falls, each cycle's end kept as OUT.snap-K.safetensors), word_dropout (each source and
    decoder input token replaced by UNK with this probability while training). run() holds the calling
    thread (the GIL is released) until training ends."""

    _what = "the Trainer"

    def __init__(self, train: Sequence[Tuple[str, str]], out, valid: Optional[Sequence[Tuple[str, str]]] = None,
                 vocab: int = 8000, shared_vocab: bool = False, cell: str = "lstm", layers: int = 1, hidden: int = 256,
                 embed: int = 256, bidirectional: bool = False, attention: str = "general", dropout: float = 0.2,
                 tie_embeddings: str = "none", device: str = "auto", threads: Optional[int] = None, seed: int = 1,
                 init_uniform: float = 0.0, **options):
        super().__init__()
        self._ctx = self._train = self._valid = self._st = self._tt = self._m = self._t = None
        self._keep = []
        unknown = sorted(set(options) - set(TRAINER_OPTIONS))
        if unknown:
            raise InvalidArgumentError(INVALID_ARG, "unknown trainer options %s; known: %s"
                                       % (unknown, ", ".join(TRAINER_OPTIONS)))
        if "schedule" in options and options["schedule"] not in SCHEDULES:
            raise InvalidArgumentError(INVALID_ARG, "schedule must be one of %s" % ", ".join(SCHEDULES))
        if tie_embeddings not in TIES:
            raise InvalidArgumentError(INVALID_ARG, "tie_embeddings must be one of %s" % ", ".join(TIES))
        if tie_embeddings == "all" and not shared_vocab:
            raise InvalidArgumentError(INVALID_ARG, "tie_embeddings=\"all\" shares the source embedding with the "
                                       "target's: it needs shared_vocab=True (one vocabulary for both sides)")
        if cell not in CELLS or attention not in ATTENTIONS:
            raise InvalidArgumentError(INVALID_ARG, "cell must be one of %s and attention one of %s"
                                       % (sorted(CELLS), sorted(ATTENTIONS)))
        self.out = out
        self._out = path_arg("out", out)
        src, tgt = _pairs("train", train)
        if not src:
            raise InvalidArgumentError(INVALID_ARG, "train holds no pairs")
        vsrc, vtgt = _pairs("valid", valid) if valid is not None else ([], [])
        vocab = int_arg("vocab", vocab, 16, 1000000)
        init_uniform = float_arg("init_uniform", init_uniform, 0, 1000)
        self._ctx, keep = make_context(device, threads, seed)
        try:
            self._train = self._corpus(src, tgt)
            self._valid = self._corpus(vsrc, vtgt) if vsrc else None
            self._tokenizers(src, tgt, vocab, shared_vocab)
            c = lib.s2s_model_config_default()
            c.cell, c.attention = CELLS[cell], ATTENTIONS[attention]
            c.layers = int_arg("layers", layers, 1, 16)
            c.hidden = int_arg("hidden", hidden, 2, 65536)
            c.embed = int_arg("embed", embed, 1, 65536)
            c.bidirectional = 1 if bidirectional else 0
            c.dropout = float_arg("dropout", dropout, 0, 0.99)
            c.tie_embeddings = TIES.index(tie_embeddings)
            c.src_vocab = lib.s2s_tokenizer_vocab_size(self._st)
            c.tgt_vocab = lib.s2s_tokenizer_vocab_size(self._tt)
            m = ctypes.c_void_p()
            check(lib.s2s_model_create(self._ctx, ctypes.byref(c), ctypes.byref(m)))
            self._m = m
            if init_uniform > 0:
                check(lib.s2s_model_init_uniform(m, init_uniform))
            self._options = options
        except BaseException:
            self.close()
            raise

    def _corpus(self, src, tgt):
        c = ctypes.c_void_p()
        check(lib.s2s_corpus_create(ctypes.byref(c)))
        for a, b in zip(src, tgt):
            st = lib.s2s_corpus_add(c, a, b)
            if st:
                lib.s2s_corpus_free(c)
                check(st)
        return c

    def _tokenizers(self, src, tgt, vocab, shared):
        o = lib.s2s_tokenizer_options_default()
        o.vocab_size = vocab
        sides = [src + tgt] if shared else [src, tgt]
        toks = []
        for side in sides:
            arr = (ctypes.c_char_p * len(side))(*side)
            t = ctypes.c_void_p()
            check(lib.s2s_tokenizer_train(arr, len(side), ctypes.byref(o), ctypes.byref(t)))
            toks.append(t)
        self._st = toks[0]
        self._tt = toks[-1]

    def run(self, progress: Optional[Callable[[Progress], None]] = None, resume=None) -> str:
        """Trains until a limit (minutes, max_steps, max_epochs, patience) is reached; progress
        (optional) gets every report; without one, a tqdm bar is shown when tqdm is installed.
        Returns the best model's path."""
        with self._lock:
            self._alive()
            o = lib.s2s_trainer_options_default()
            for k, v in self._options.items():
                if k == "schedule":
                    o.schedule = SCHEDULES.index(v)
                    continue
                cur = getattr(o, k)
                setattr(o, k, float_arg(k, v, 0, 1e12) if isinstance(cur, float) else int_arg(k, v, 0, 1 << 40))
            o.out_prefix = self._out
            bar = None
            if progress is None:
                try:
                    from tqdm import tqdm
                    bar = tqdm(total=o.max_steps or None, unit="step")
                except ImportError:
                    pass
            errors = []

            def _cb(pp, user):
                try:
                    p = ctypes.cast(pp, ctypes.POINTER(_capi.TrainProgress))[0]
                    buf = ctypes.create_string_buffer(512)
                    lib.s2s_train_progress_format(ctypes.byref(p), buf, 512)
                    rep = Progress(p.epoch, p.step, p.steps_total, p.loss, p.lr, p.tokens_per_s, p.elapsed_s, p.eta_s,
                                   bool(p.is_validation), p.valid_loss, p.valid_ppl, p.valid_bleu, bool(p.improved),
                                   buf.value.decode("utf-8", "replace"))
                    if progress is not None:
                        progress(rep)
                    elif bar is not None and not rep.is_validation:
                        bar.n = rep.step
                        bar.set_postfix(loss="%.3f" % rep.loss)
                        bar.refresh()
                except BaseException as e:  # kept: an exception cannot cross into C
                    errors.append(e)

            cb = _capi.PROGRESS_FN(_cb)
            o.progress = cb
            t = ctypes.c_void_p()
            check(lib.s2s_trainer_create(self._m, self._st, self._tt, self._train, self._valid, ctypes.byref(o),
                                         ctypes.byref(t)))
            try:
                if resume is not None:
                    check(lib.s2s_trainer_resume(t, path_arg("resume", resume)))
                check(lib.s2s_trainer_run(t))
            finally:
                lib.s2s_trainer_free(t)
                if bar is not None:
                    bar.close()
            if errors:
                raise errors[0]
        return self.out + ".best.safetensors"

    def _free(self) -> None:
        free_model(self._m, self._st, self._tt)
        for c in (self._train, self._valid):
            if c:
                lib.s2s_corpus_free(c)
        if self._ctx:
            lib.s2s_context_free(self._ctx)
        self._ctx = self._train = self._valid = self._st = self._tt = self._m = None


def train(train: Sequence[Tuple[str, str]], out, progress: Optional[Callable[[Progress], None]] = None,
          **kwargs) -> str:
    """Trains a model (Trainer's keyword arguments) and returns the best model file's path."""
    with Trainer(train, out, **kwargs) as t:
        return t.run(progress)
