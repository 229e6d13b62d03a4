"""seq2seq - libseq2seq from Python: translate, chat, train and read model files, over the C
library (ctypes; no compiled extension), which stays the one engine.

    import seq2seq
    with seq2seq.Translator("runs/m30k.best.safetensors") as t:
        for hyp in t.translate(["A man is riding a bike."], beam_size=5, return_scores=True)[0]:
            print(hyp.text, hyp.score)

Errors raise seq2seq.Error subclasses carrying the library's status and message. Every call into
the library releases the GIL. One object is used by one thread at a time (calls on one object are
serialised); separate objects run in parallel. Objects free their C handles on close(), at the end
of a with block, or when garbage-collected.
"""
from ._capi import LIB_PATH, VERSION as __version__
from ._core import (BusyError, CancelledError, ClosedError, DeviceError, Error, FileError, FormatError,
                    InvalidArgumentError, NumericError, OutOfMemoryError, UnsupportedError)
from .chatbot import Chatbot
from .modelfile import BLEU, ModelFile, average, bleu
from .training import Progress, Trainer, train
from .translator import TranslationResult, Translator

__all__ = ["Translator", "TranslationResult", "Chatbot", "Trainer", "train", "Progress", "ModelFile", "average", "bleu",
           "BLEU",
           "Error", "InvalidArgumentError", "OutOfMemoryError", "DeviceError", "UnsupportedError", "FileError",
           "FormatError", "NumericError", "BusyError", "CancelledError", "ClosedError", "LIB_PATH", "__version__"]
