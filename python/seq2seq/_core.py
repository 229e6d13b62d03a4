"""What the package's classes share: errors carrying the library's status, checked calls, the
context (device and threads) and a base class for objects that own C handles."""
from __future__ import annotations

import ctypes
import threading
from typing import Any, Callable, Iterable, List, Optional

from . import _capi
from ._capi import lib

# s2s_status values (include/seq2seq.h)
OK, INVALID_ARG, OUT_OF_MEMORY, NO_DEVICE, UNSUPPORTED, IO, FORMAT, NUMERIC = 0, 1, 2, 3, 4, 5, 6, 7
CUDA, CUBLAS, CUDNN, INTERNAL, BUSY, CANCELLED, COMM = 8, 9, 10, 11, 12, 13, 14


class Error(Exception):
    """A failure of the library: `status` is its s2s_status code, `message` its explanation
    (what failed, where, what to do)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class InvalidArgumentError(Error, ValueError):
    """A bad argument or input (status 1)."""


class OutOfMemoryError(Error, MemoryError):
    """An allocation failed (status 2)."""


class DeviceError(Error):
    """No such device, or a CUDA, cuBLAS or cuDNN failure (statuses 3, 8, 9, 10)."""


class UnsupportedError(Error):
    """A valid request this build cannot serve (status 4)."""


class FileError(Error, OSError):
    """A file could not be opened, read or written (status 5)."""


class FormatError(Error, ValueError):
    """A malformed file or input (status 6)."""


class NumericError(Error, ArithmeticError):
    """NaN or Inf where a finite value is required (status 7)."""


class BusyError(Error):
    """A bounded queue is full (status 12)."""


class CancelledError(Error):
    """The work was cancelled before it finished (status 13)."""


class CommError(Error):
    """Data-parallel training: a collective failed or timed out, or the ranks disagree (status 14)."""


class ClosedError(Error, ValueError):
    """The object was closed (or its model was): its C handle is gone."""

    def __init__(self, what: str):
        super().__init__(INVALID_ARG, "%s is closed" % what)


_BY_STATUS = {INVALID_ARG: InvalidArgumentError, OUT_OF_MEMORY: OutOfMemoryError, NO_DEVICE: DeviceError,
              UNSUPPORTED: UnsupportedError, IO: FileError, FORMAT: FormatError, NUMERIC: NumericError,
              CUDA: DeviceError, CUBLAS: DeviceError, CUDNN: DeviceError, BUSY: BusyError, CANCELLED: CancelledError,
              COMM: CommError}


def error_of(status: int, message: Optional[str] = None) -> Error:
    if message is None:
        message = lib.s2s_last_error().decode("utf-8", "replace")
    return _BY_STATUS.get(status, Error)(status, message)


def check(status: int) -> None:
    """Raises the library's last error when status is not OK (the last error is per thread)."""
    if status != OK:
        raise error_of(status)


def text_arg(name: str, value: Any) -> bytes:
    """A Python str as the library's UTF-8 C string; refuses other types and NUL bytes."""
    if not isinstance(value, str):
        raise InvalidArgumentError(INVALID_ARG, "%s must be a str, not %s" % (name, type(value).__name__))
    if "\0" in value:
        raise InvalidArgumentError(INVALID_ARG, "%s holds a NUL character at %d" % (name, value.index("\0")))
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as e:  # lone surrogates
        raise InvalidArgumentError(INVALID_ARG, "%s is not encodable as UTF-8 at %d: %s" % (name, e.start, e.reason))


def path_arg(name: str, value: Any) -> bytes:
    import os
    if isinstance(value, (bytes, bytearray)):
        value = os.fsdecode(bytes(value))
    if not isinstance(value, (str, os.PathLike)):
        raise InvalidArgumentError(INVALID_ARG, "%s must be a path, not %s" % (name, type(value).__name__))
    return text_arg(name, os.fspath(value))


def texts_arg(name: str, values: Any) -> List[bytes]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise InvalidArgumentError(INVALID_ARG, "%s must be a list of str, not %s" % (name, type(values).__name__))
    return [text_arg("%s[%d]" % (name, i), v) for i, v in enumerate(values)]


def int_arg(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidArgumentError(INVALID_ARG, "%s must be an int in [%d, %d], not %r" % (name, lo, hi, value))
    return value


def float_arg(name: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise InvalidArgumentError(INVALID_ARG, "%s must be a number in [%g, %g], not %r" % (name, lo, hi, value))
    return float(value)


DEVICES = {"auto": 0, "cpu": 1, "cuda": 2}


def free_model(m, st, tt) -> None:
    """Frees a model and its tokenizers (tt may be the same handle as st), each when set."""
    if m:
        lib.s2s_model_free(m)
    if tt and tt.value != (st.value if st else None):
        lib.s2s_tokenizer_free(tt)
    if st:
        lib.s2s_tokenizer_free(st)


class Handle:
    """An object owning C handles: closed by close(), a with block, or garbage collection; a
    closed object raises ClosedError instead of touching freed memory. Methods are not safe to
    call from two threads at once on one object (the library's rule for a model); separate
    objects may be used from separate threads."""

    _what = "object"

    def __init__(self) -> None:
        self._closed = False
        self._lock = threading.RLock()

    def _alive(self) -> None:
        if self._closed:
            raise ClosedError(self._what)

    def _free(self) -> None:  # overridden: frees the C handles
        pass

    def close(self) -> None:
        """Frees the C handles now (idempotent)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._free()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def make_context(device: str = "auto", threads: Optional[int] = None, seed: int = 1,
                 log: Optional[Callable[[int, str], None]] = None):
    """A context (the device and its handles); returns (handle, keep) where keep holds the
    callback alive as long as the context."""
    if device not in DEVICES:
        raise InvalidArgumentError(INVALID_ARG, "device must be one of %s, not %r" % (sorted(DEVICES), device))
    o = lib.s2s_context_options_default()
    o.device = DEVICES[device]
    o.threads = 0 if threads is None else int_arg("threads", threads, 1, 4096)
    o.seed = int_arg("seed", seed, 0, 2 ** 63)
    keep = None
    if log is not None:
        def _cb(level, msg, user):
            try:
                log(level, msg.decode("utf-8", "replace"))
            except Exception:  # an exception cannot cross into C
                pass
        keep = _capi.LOG_FN(_cb)
        o.log = keep
        o.log_level = 0
    ctx = ctypes.c_void_p()
    check(lib.s2s_context_create(ctypes.byref(o), ctypes.byref(ctx)))
    return ctx, keep
