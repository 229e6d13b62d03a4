"""The C library through ctypes: its loading, the copies of its public structs (checked against
the library's own sizes when it loads, so a mismatch is an ImportError, never a crash), and the
prototype of every function the package calls. Internal: use the classes of the package.

ctypes releases the GIL for the whole of every call into the library, so long calls (translate,
train) let other Python threads run.
"""
from __future__ import annotations

import ctypes
import os
import sys
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char, c_char_p, c_double, c_float, c_int, c_int32, c_long,
                    c_longlong, c_size_t, c_uint64, c_void_p)

__all__ = ["lib", "LIB_PATH"]


def _candidates():
    here = os.path.dirname(os.path.abspath(__file__))
    env = os.environ.get("S2S_LIBRARY")
    if env:
        yield env
    # the wheel's copies: the one built with CUDA first, the CPU-only one where CUDA is absent
    yield os.path.join(here, "libseq2seq.so")
    yield os.path.join(here, "libseq2seq_cpu.so")
    # a source checkout: the repository's build
    yield os.path.join(here, "..", "..", "build", "libseq2seq.so")
    yield "libseq2seq.so.0"  # an installed copy (make install), found by the dynamic loader


def _load():
    errors = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:  # e.g. a CUDA build where libcudart is missing: try the next
            errors.append("%s: %s" % (path, e))
    raise ImportError("seq2seq: cannot load libseq2seq (install the package with pip, build the library with "
                      "make, or set S2S_LIBRARY):\n  " + "\n  ".join(errors or ["no candidate found"]))


lib, LIB_PATH = _load()

# ---- structs (include/seq2seq.h) --------------------------------------------------------------

LOG_FN = CFUNCTYPE(None, c_int, c_char_p, c_void_p)
PROGRESS_FN = CFUNCTYPE(None, c_void_p, c_void_p)  # (const s2s_train_progress *, void *user)
TOKEN_FN = CFUNCTYPE(None, c_uint64, c_char_p, c_void_p)
RESULT_FN = CFUNCTYPE(None, c_void_p, c_void_p)


class ContextOptions(Structure):
    _fields_ = [("device", c_int), ("threads", c_int), ("seed", c_uint64), ("precision", c_int),
                ("cuda_device", c_int), ("log", LOG_FN), ("log_user", c_void_p), ("log_level", c_int),
                ("streams", c_int), ("rnn_impl", c_int)]


class ModelConfig(Structure):
    _fields_ = [("cell", c_int), ("layers", c_int), ("hidden", c_int), ("embed", c_int), ("bidirectional", c_int),
                ("attention", c_int), ("dropout", c_float), ("src_vocab", c_int), ("tgt_vocab", c_int),
                ("tie_embeddings", c_int)]


class ParamInfo(Structure):
    _fields_ = [("name", c_char_p), ("ndim", c_int), ("shape", c_int * 2), ("numel", c_size_t)]


class Batch(Structure):
    _fields_ = [("batch", c_int), ("src_max_len", c_int), ("tgt_max_len", c_int), ("src", POINTER(c_int32)),
                ("src_len", POINTER(c_int32)), ("tgt", POINTER(c_int32)), ("tgt_len", POINTER(c_int32))]


class DecodeOptions(Structure):
    _fields_ = [("mode", c_int), ("beam_size", c_int), ("nbest", c_int), ("length_penalty", c_float),
                ("max_len_a", c_float), ("max_len_b", c_int), ("no_repeat_ngram", c_int), ("min_len", c_int),
                ("temperature", c_float), ("top_k", c_int), ("top_p", c_float), ("seed", c_uint64),
                ("attention", c_int), ("precision", c_int)]


class Hypothesis(Structure):
    _fields_ = [("ids", POINTER(c_int32)), ("len", c_int), ("score", c_float), ("src_pos", POINTER(c_int32)),
                ("attention", POINTER(c_float)), ("src_len", c_int)]


class TranslateOptions(Structure):
    _fields_ = [("decode", DecodeOptions), ("batch_size", c_int), ("replace_unk", c_int), ("max_src_tokens", c_int),
                ("strict", c_int), ("first_line", c_size_t), ("ensemble", c_void_p), ("ensemble_n", c_int)]


class EngineOptions(Structure):
    _fields_ = [("max_rows", c_int), ("token_budget", c_long), ("queue_max", c_int), ("max_src_tokens", c_int),
                ("replace_unk", c_int), ("precision", c_int)]


class EngineResult(Structure):
    _fields_ = [("id", c_uint64), ("status", c_int), ("error", c_char_p), ("n", c_int), ("texts", POINTER(c_char_p)),
                ("scores", POINTER(c_float)), ("src_tokens", c_int), ("out_tokens", c_int), ("queue_ms", c_double),
                ("total_ms", c_double)]


class EngineStats(Structure):
    _fields_ = [("requests_active", c_long), ("requests_queued", c_long), ("rows_active", c_long),
                ("steps", c_longlong), ("requests_done", c_longlong), ("tokens_in", c_longlong),
                ("tokens_out", c_longlong), ("last_step_ms", c_double)]


class CorpusOptions(Structure):
    _fields_ = [("max_line_bytes", c_size_t), ("normalize_spaces", c_int), ("tsv_src_column", c_int),
                ("tsv_tgt_column", c_int), ("log", LOG_FN), ("log_user", c_void_p)]


class TokenizerOptions(Structure):
    _fields_ = [("type", c_int), ("vocab_size", c_int), ("character_coverage", c_float), ("threads", c_int),
                ("max_sentences", c_size_t), ("seed", c_uint64)]


class Provenance(Structure):
    _fields_ = [("seed", c_uint64), ("step", c_uint64), ("data_sha256", c_char * 65)]


class Bleu(Structure):
    _fields_ = [("score", c_double), ("precisions", c_double * 4), ("brevity_penalty", c_double),
                ("hyp_len", c_long), ("ref_len", c_long)]


class TrainProgress(Structure):
    _fields_ = [("epoch", c_int), ("step", c_long), ("steps_total", c_long), ("loss", c_float), ("lr", c_float),
                ("tokens_per_s", c_double), ("elapsed_s", c_double), ("eta_s", c_double), ("is_validation", c_int),
                ("valid_loss", c_float), ("valid_ppl", c_float), ("valid_bleu", c_float), ("improved", c_int),
                ("skipped_steps", c_long), ("world_size", c_int), ("comm_wait", c_double)]


class TrainerOptions(Structure):
    _fields_ = [("batch_tokens", c_int), ("max_len", c_int), ("lr", c_float), ("warmup_steps", c_int),
                ("schedule", c_int), ("plateau_factor", c_float), ("plateau_patience", c_int),
                ("label_smoothing", c_float), ("clip_norm", c_float), ("valid_every", c_int), ("valid_bleu", c_int),
                ("valid_max", c_int), ("keep_last", c_int), ("patience", c_int), ("minutes", c_double),
                ("max_steps", c_long), ("max_epochs", c_int), ("nonfinite_halve", c_int), ("nonfinite_stop", c_int),
                ("out_prefix", c_char_p), ("report_every", c_int), ("progress", PROGRESS_FN),
                ("progress_user", c_void_p), ("average_last", c_int), ("comm", c_void_p),
                ("shard_optimizer", c_int), ("cycles", c_int), ("word_dropout", c_float)]


_STRUCTS = {"s2s_context_options": ContextOptions, "s2s_model_config": ModelConfig, "s2s_param_info": ParamInfo,
            "s2s_batch": Batch, "s2s_decode_options": DecodeOptions, "s2s_hypothesis": Hypothesis,
            "s2s_translate_options": TranslateOptions, "s2s_engine_options": EngineOptions,
            "s2s_engine_result": EngineResult, "s2s_engine_stats": EngineStats, "s2s_corpus_options": CorpusOptions,
            "s2s_tokenizer_options": TokenizerOptions, "s2s_provenance": Provenance, "s2s_bleu": Bleu,
            "s2s_train_progress": TrainProgress, "s2s_trainer_options": TrainerOptions}

# ---- prototypes ------------------------------------------------------------------------------------

_P = c_void_p  # every opaque handle
_S = c_int     # s2s_status


def _proto(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype, f.argtypes = restype, list(argtypes)


_proto("s2s_sizeof", c_size_t, c_char_p)
_proto("s2s_version", c_char_p)
_proto("s2s_last_error", c_char_p)
_proto("s2s_status_string", c_char_p, _S)
_proto("s2s_context_options_default", ContextOptions)
_proto("s2s_context_create", _S, POINTER(ContextOptions), POINTER(_P))
_proto("s2s_context_free", None, _P)
_proto("s2s_context_device_name", c_char_p, _P)
_proto("s2s_model_config_default", ModelConfig)
_proto("s2s_model_create", _S, _P, POINTER(ModelConfig), POINTER(_P))
_proto("s2s_model_init_uniform", _S, _P, c_float)
_proto("s2s_model_free", None, _P)
_proto("s2s_model_get_config", ModelConfig, _P)
_proto("s2s_model_param_count", c_int, _P)
_proto("s2s_model_param_info_at", _S, _P, c_int, POINTER(ParamInfo))
_proto("s2s_model_param_get", _S, _P, c_char_p, POINTER(c_float), c_size_t)
_proto("s2s_model_score", _S, _P, POINTER(Batch), POINTER(c_float))
_proto("s2s_decode_options_default", DecodeOptions)
_proto("s2s_model_decode", _S, _P, POINTER(Batch), POINTER(DecodeOptions), POINTER(POINTER(Hypothesis)))
_proto("s2s_hypotheses_free", None, POINTER(Hypothesis), c_size_t)
_proto("s2s_translate_options_default", TranslateOptions)
_proto("s2s_translate", _S, _P, _P, _P, POINTER(c_char_p), c_size_t, POINTER(TranslateOptions),
       POINTER(c_void_p), POINTER(c_float))
_proto("s2s_strings_free", None, POINTER(c_void_p), c_size_t)
_proto("s2s_rerank_reverse", _S, _P, _P, _P, c_char_p, POINTER(c_char_p), POINTER(c_float), c_int, c_float,
       POINTER(c_float), POINTER(c_int))
_proto("s2s_engine_options_default", EngineOptions)
_proto("s2s_engine_create", _S, _P, _P, _P, POINTER(EngineOptions), POINTER(_P))
_proto("s2s_engine_submit", _S, _P, c_char_p, POINTER(DecodeOptions), TOKEN_FN, RESULT_FN, c_void_p,
       POINTER(c_uint64))
_proto("s2s_engine_cancel", None, _P, c_uint64)
_proto("s2s_engine_step", _S, _P, POINTER(c_int))
_proto("s2s_engine_stop", None, _P, c_int)
_proto("s2s_engine_free", None, _P)
_proto("s2s_corpus_options_default", CorpusOptions)
_proto("s2s_corpus_create", _S, POINTER(_P))
_proto("s2s_corpus_add", _S, _P, c_char_p, c_char_p)
_proto("s2s_corpus_read_aligned", _S, c_char_p, c_char_p, POINTER(CorpusOptions), POINTER(_P))
_proto("s2s_corpus_read_tsv", _S, c_char_p, POINTER(CorpusOptions), POINTER(_P))
_proto("s2s_corpus_size", c_size_t, _P)
_proto("s2s_corpus_get", _S, _P, c_size_t, POINTER(c_char_p), POINTER(c_char_p))
_proto("s2s_corpus_free", None, _P)
_proto("s2s_tokenizer_options_default", TokenizerOptions)
_proto("s2s_tokenizer_train", _S, POINTER(c_char_p), c_size_t, POINTER(TokenizerOptions), POINTER(_P))
_proto("s2s_tokenizer_free", None, _P)
_proto("s2s_tokenizer_vocab_size", c_int, _P)
_proto("s2s_tokenizer_encode", _S, _P, c_char_p, POINTER(c_int32), c_int, POINTER(c_int))
_proto("s2s_tokenizer_decode", _S, _P, POINTER(c_int32), c_int, c_char_p, c_size_t, POINTER(c_size_t))
_proto("s2s_tokenizer_piece", _S, _P, c_int32, c_char_p, c_size_t)
_proto("s2s_model_save", _S, _P, _P, _P, POINTER(Provenance), c_char_p)
_proto("s2s_model_load", _S, _P, c_char_p, POINTER(_P), POINTER(_P), POINTER(_P), POINTER(Provenance))
_proto("s2s_model_prepare_decoding", _S, _P, c_int, POINTER(c_int), c_char_p, c_size_t)
_proto("s2s_model_file_report", _S, c_char_p, c_char_p, c_size_t, POINTER(c_size_t))
_proto("s2s_model_average", _S, _P, POINTER(c_char_p), c_int, c_char_p)
_proto("s2s_bleu_corpus", _S, POINTER(c_char_p), POINTER(c_char_p), c_size_t, POINTER(Bleu))
_proto("s2s_trainer_options_default", TrainerOptions)
_proto("s2s_trainer_create", _S, _P, _P, _P, _P, _P, POINTER(TrainerOptions), POINTER(_P))
_proto("s2s_trainer_free", None, _P)
_proto("s2s_trainer_run", _S, _P)
_proto("s2s_trainer_resume", _S, _P, c_char_p)
_proto("s2s_trainer_get_progress", TrainProgress, _P)
_proto("s2s_train_progress_format", None, POINTER(TrainProgress), c_char_p, c_size_t)


def _check_layouts():
    bad = []
    for name, cls in _STRUCTS.items():
        n = lib.s2s_sizeof(name.encode())
        if n != ctypes.sizeof(cls):
            bad.append("%s: the library says %d bytes, the package %d" % (name, n, ctypes.sizeof(cls)))
    if bad:
        raise ImportError("seq2seq: the package and %s disagree on struct layouts (a different version?):\n  %s"
                          % (LIB_PATH, "\n  ".join(bad)))


_check_layouts()
VERSION = lib.s2s_version().decode()
if sys.byteorder != "little":  # the model files and the arrays handed out assume it
    raise ImportError("seq2seq needs a little-endian machine")
