/* tokenizer.cc - s2s_tokenizer: a small C wrapper around SentencePiece (Debian 0.1.97).
 *
 * - Training reads the caller's sentences through a SentenceIterator: nothing is written to
 *   disk. The sample of at most max_sentences is drawn here (reservoir sampling with a
 *   splitmix64 stream keyed by the seed), not by SentencePiece, whose generator is a
 *   process-wide thread_local that is seeded once; so the same sentences, options and seed
 *   give the same model bytes in any process, on any thread, in any order of calls.
 * - Ids 0-3 are <pad> <s> </s> <unk> (S2S_PAD_ID ...); a loaded model must use the same ids.
 * - Normaliser: SentencePiece's default nmt_nfkc (NFKC plus the NMT rules: control characters
 *   dropped, every Unicode space, U+00A0 and U+202F included, mapped to ' ', runs of spaces
 *   collapsed, leading and trailing spaces removed). French "Cours\u202f!" and "Cours !"
 *   become the same pieces, which is what a translator wants; sacreBLEU's 13a tokenizer splits
 *   on those spaces anyway, so BLEU does not see the difference. decode(encode(s)) == s holds
 *   for s already in that normal form; otherwise it gives the normal form of s.
 * - SentencePiece logs to stderr; the library must print nothing, so its minimum log level is
 *   raised to FATAL while we train or load (restored afterwards where the 0.1.x logging
 *   functions are present). Nothing SentencePiece throws crosses into C: every entry point
 *   catches everything.
 */
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

extern "C" {
#include "internal.h"
}

/* The 0.1.x logging level, exported by libsentencepiece but absent from its public header.
 * Weak, so that a SentencePiece without them still links: then only the trainer's
 * "minloglevel" option silences it (and leaves the level raised). */
namespace sentencepiece {
namespace logging {
__attribute__((weak, visibility("default"))) int GetMinLogLevel();
__attribute__((weak, visibility("default"))) void SetMinLogLevel(int v);
} // namespace logging
} // namespace sentencepiece

namespace spm = sentencepiece;

struct s2s_tokenizer {
    spm::SentencePieceProcessor sp;
    std::string bytes; /* serialised ModelProto, handed out by s2s_tokenizer_serialize */
};

namespace {

constexpr int kQuietLevel = 3; /* LOG_FATAL: INFO, WARNING and ERROR are not printed */

/* Raises SentencePiece's log level for the lifetime of the guard; nested and concurrent
 * guards share one saved level, restored when the last one ends. */
class QuietGuard {
  public:
    QuietGuard()
    {
        if (!spm::logging::GetMinLogLevel || !spm::logging::SetMinLogLevel)
            return;
        std::lock_guard<std::mutex> lock(mu_);
        if (depth_++ == 0) {
            saved_ = spm::logging::GetMinLogLevel();
            spm::logging::SetMinLogLevel(std::max(saved_, kQuietLevel));
        }
    }
    ~QuietGuard()
    {
        if (!spm::logging::GetMinLogLevel || !spm::logging::SetMinLogLevel)
            return;
        std::lock_guard<std::mutex> lock(mu_);
        if (--depth_ == 0)
            spm::logging::SetMinLogLevel(saved_);
    }
    QuietGuard(const QuietGuard &) = delete;
    QuietGuard &operator=(const QuietGuard &) = delete;

  private:
    static std::mutex mu_;
    static int depth_, saved_;
};
std::mutex QuietGuard::mu_;
int QuietGuard::depth_ = 0;
int QuietGuard::saved_ = 0;

/* Feeds the chosen sentences to the trainer without copying the corpus. */
class SentenceList : public spm::SentenceIterator {
  public:
    SentenceList(const char *const *s, const std::vector<size_t> &pick) : s_(s), pick_(pick) { load(); }
    bool done() const override { return i_ >= pick_.size(); }
    void Next() override
    {
        i_++;
        load();
    }
    const std::string &value() const override { return cur_; }
    spm::util::Status status() const override { return spm::util::Status(); }

  private:
    void load()
    {
        if (i_ < pick_.size())
            cur_.assign(s_[pick_[i_]]);
    }
    const char *const *s_;
    const std::vector<size_t> &pick_;
    size_t i_ = 0;
    std::string cur_;
};

uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Indices of the non-empty sentences, or a seeded uniform sample of max of them (Algorithm R),
 * in corpus order. */
std::vector<size_t> pick_sentences(const char *const *s, size_t n, size_t max, uint64_t seed)
{
    std::vector<size_t> pick;
    uint64_t rng = seed;
    size_t seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (!s[i][0])
            continue;
        seen++;
        if (max == 0 || pick.size() < max) {
            pick.push_back(i);
        } else {
            uint64_t j = (uint64_t)(((unsigned __int128)splitmix64(&rng) * seen) >> 64);
            if (j < max)
                pick[j] = i;
        }
    }
    std::sort(pick.begin(), pick.end());
    return pick;
}

s2s_status check_special_ids(const spm::SentencePieceProcessor &sp)
{
    if (sp.pad_id() != S2S_PAD_ID || sp.bos_id() != S2S_BOS_ID || sp.eos_id() != S2S_EOS_ID ||
        sp.unk_id() != S2S_UNK_ID)
        return S2S_FAIL(S2S_ERR_FORMAT,
                        "SentencePiece model has special ids pad=%d bos=%d eos=%d unk=%d, but libseq2seq needs "
                        "0, 1, 2, 3; train it with s2s_tokenizer_train, or with spm_train --pad_id=0 --bos_id=1 "
                        "--eos_id=2 --unk_id=3",
                        sp.pad_id(), sp.bos_id(), sp.eos_id(), sp.unk_id());
    return S2S_OK;
}

/* A ModelProto cut short at a field boundary still parses: the pieces alone, without the
 * trainer_spec (which holds the model type) or the normalizer_spec, load "fine" and then
 * segment differently. So the top-level fields are walked here and all three must be
 * present. Call only on bytes that protobuf has already parsed. */
bool read_varint(const std::string &b, size_t *i, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && *i < b.size(); shift += 7) {
        unsigned char c = (unsigned char)b[(*i)++];
        *v |= (uint64_t)(c & 0x7F) << shift;
        if (c < 0x80)
            return true;
    }
    return false;
}

const char *missing_model_part(const std::string &b)
{
    bool seen[4] = {false, false, false, false};
    for (size_t i = 0; i < b.size();) {
        uint64_t tag = 0, len = 0;
        if (!read_varint(b, &i, &tag))
            return "a readable field";
        unsigned wire = (unsigned)(tag & 7);
        if (wire == 0 || wire == 2) {
            if (!read_varint(b, &i, &len) || (wire == 2 && len > b.size() - i))
                return "a readable field";
            i += wire == 2 ? (size_t)len : 0;
        } else if (wire == 1 || wire == 5) {
            i += wire == 1 ? 8 : 4;
        } else {
            return "a readable field";
        }
        if ((tag >> 3) < 4)
            seen[tag >> 3] = true;
    }
    if (!seen[1])
        return "pieces (field 1)";
    if (!seen[2])
        return "trainer_spec (field 2)";
    return seen[3] ? nullptr : "normalizer_spec (field 3)";
}

/* Parses model bytes into a new tokenizer. */
s2s_status load_model(const std::string &bytes, s2s_tokenizer **out)
{
    std::unique_ptr<s2s_tokenizer> t(new s2s_tokenizer);
    spm::util::Status st;
    {
        QuietGuard quiet;
        st = t->sp.LoadFromSerializedProto(bytes);
    }
    if (!st.ok())
        return S2S_FAIL(S2S_ERR_FORMAT,
                        "%zu bytes are not a valid SentencePiece model (%s); pass the bytes of "
                        "s2s_tokenizer_serialize or of a .model file, whole and unchanged",
                        bytes.size(), st.ToString().c_str());
    if (const char *part = missing_model_part(bytes))
        return S2S_FAIL(S2S_ERR_FORMAT,
                        "%zu bytes of SentencePiece model lack %s: the model was probably truncated; pass the "
                        "bytes of s2s_tokenizer_serialize or of a .model file, whole and unchanged",
                        bytes.size(), part);
    S2S_TRY(check_special_ids(t->sp));
    t->bytes = t->sp.serialized_model_proto();
    *out = t.release();
    return S2S_OK;
}

s2s_status check_options(const s2s_tokenizer_options *o)
{
    /* Read as an integer: a C caller may store any int in the enum, and loading an
     * out-of-range value as the enum type is undefined in C++. */
    std::underlying_type<s2s_tokenizer_type>::type type;
    static_assert(sizeof type == sizeof o->type, "enum size");
    std::memcpy(&type, &o->type, sizeof type);
    if (type != S2S_TOKENIZER_UNIGRAM && type != S2S_TOKENIZER_BPE)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "tokenizer type %lld is neither S2S_TOKENIZER_UNIGRAM nor _BPE",
                        (long long)type);
    if (o->vocab_size <= S2S_UNK_ID + 1)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "vocab_size %d leaves no room beside the 4 special pieces; use > 4",
                        o->vocab_size);
    if (!(o->character_coverage > 0.0f && o->character_coverage <= 1.0f))
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "character_coverage %g is not in (0, 1]", (double)o->character_coverage);
    if (o->threads < 1 || o->threads > 1024)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "threads %d is not in 1..1024", o->threads);
    return S2S_OK;
}

std::string format_float(float x)
{
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", (double)x);
    return buf;
}

s2s_status train(const char *const *sentences, size_t n, const s2s_tokenizer_options *o, s2s_tokenizer **out)
{
    for (size_t i = 0; i < n; i++)
        if (!sentences[i])
            return S2S_FAIL(S2S_ERR_INVALID_ARG, "sentence %zu of %zu is NULL", i, n);
    std::vector<size_t> pick = pick_sentences(sentences, n, o->max_sentences, o->seed);
    if (pick.empty())
        return S2S_FAIL(S2S_ERR_INVALID_ARG,
                        "no text to train a tokenizer on: %zu sentences, none of them non-empty", n);

    /* Sampling is done above, so SentencePiece takes every sentence it is given, unshuffled. */
    const std::unordered_map<std::string, std::string> args = {
        {"model_type", o->type == S2S_TOKENIZER_BPE ? "bpe" : "unigram"},
        {"vocab_size", std::to_string(o->vocab_size)},
        {"character_coverage", format_float(o->character_coverage)},
        {"num_threads", std::to_string(o->threads)},
        {"input_sentence_size", "0"},
        {"shuffle_input_sentence", "false"},
        {"hard_vocab_limit", "false"},
        {"normalization_rule_name", "nmt_nfkc"},
        {"pad_id", std::to_string(S2S_PAD_ID)},
        {"bos_id", std::to_string(S2S_BOS_ID)},
        {"eos_id", std::to_string(S2S_EOS_ID)},
        {"unk_id", std::to_string(S2S_UNK_ID)},
        {"pad_piece", "<pad>"},
        {"bos_piece", "<s>"},
        {"eos_piece", "</s>"},
        {"unk_piece", "<unk>"},
        {"minloglevel", std::to_string(kQuietLevel)},
    };
    SentenceList it(sentences, pick);
    std::string model;
    spm::util::Status st;
    {
        QuietGuard quiet;
        st = spm::SentencePieceTrainer::Train(args, &it, &model);
    }
    if (!st.ok())
        return S2S_FAIL(S2S_ERR_INVALID_ARG,
                        "SentencePiece could not train a %s model of %d pieces on %zu sentences: %s; a smaller "
                        "vocab_size, a lower character_coverage or more text may help",
                        o->type == S2S_TOKENIZER_BPE ? "BPE" : "unigram", o->vocab_size, pick.size(),
                        st.ToString().c_str());
    return load_model(model, out);
}

s2s_status check_id(const s2s_tokenizer *t, int32_t id, const char *what, int pos)
{
    int size = t->sp.GetPieceSize();
    if (id < 0 || id >= size) {
        if (pos >= 0)
            return S2S_FAIL(S2S_ERR_INVALID_ARG, "%s: id %d at position %d is out of range [0, %d)", what, (int)id,
                            pos, size);
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "%s: id %d is out of range [0, %d)", what, (int)id, size);
    }
    return S2S_OK;
}

/* Runs f, turning anything thrown into a status: nothing may unwind into C callers. */
template <typename F> s2s_status guarded(const char *what, F &&f)
{
    try {
        return f();
    } catch (const std::bad_alloc &) {
        return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "%s: out of host memory", what);
    } catch (const std::exception &e) {
        return S2S_FAIL(S2S_ERR_INTERNAL, "%s: unexpected C++ exception: %s", what, e.what());
    } catch (...) {
        return S2S_FAIL(S2S_ERR_INTERNAL, "%s: unexpected C++ exception of unknown type", what);
    }
}

} // namespace

extern "C" {

S2S_API s2s_tokenizer_options s2s_tokenizer_options_default(void)
{
    s2s_tokenizer_options o;
    std::memset(&o, 0, sizeof o);
    o.type = S2S_TOKENIZER_UNIGRAM;
    o.vocab_size = 8000;
    o.character_coverage = 1.0f;
    o.threads = 2;
    o.max_sentences = 200000;
    o.seed = 1;
    return o;
}

S2S_API s2s_status s2s_tokenizer_train(const char *const *sentences, size_t n, const s2s_tokenizer_options *o,
                                       s2s_tokenizer **out)
{
    if (!out)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_tokenizer_train: out is NULL");
    *out = nullptr;
    if (!o || (!sentences && n))
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_tokenizer_train: %s is NULL", o ? "sentences" : "options");
    if (n == 0)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_tokenizer_train: no sentences (n = 0)");
    S2S_TRY(check_options(o));
    return guarded("s2s_tokenizer_train", [&] { return train(sentences, n, o, out); });
}

S2S_API s2s_status s2s_tokenizer_load(const void *bytes, size_t len, s2s_tokenizer **out)
{
    if (!out)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_tokenizer_load: out is NULL");
    *out = nullptr;
    if (!bytes || len == 0)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_tokenizer_load: %s", bytes ? "len is 0" : "bytes is NULL");
    if (len > (size_t)INT_MAX)
        return S2S_FAIL(S2S_ERR_FORMAT, "s2s_tokenizer_load: %zu bytes is too large for a SentencePiece model",
                        len);
    return guarded("s2s_tokenizer_load",
                   [&] { return load_model(std::string(static_cast<const char *>(bytes), len), out); });
}

S2S_API s2s_status s2s_tokenizer_serialize(const s2s_tokenizer *t, const void **bytes, size_t *len)
{
    if (!t || !bytes || !len)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_tokenizer_serialize: %s is NULL",
                        !t ? "tokenizer" : !bytes ? "bytes" : "len");
    *bytes = t->bytes.data();
    *len = t->bytes.size();
    return S2S_OK;
}

S2S_API void s2s_tokenizer_free(s2s_tokenizer *t) { delete t; }

S2S_API int s2s_tokenizer_vocab_size(const s2s_tokenizer *t) { return t ? t->sp.GetPieceSize() : 0; }

S2S_API s2s_status s2s_tokenizer_encode(const s2s_tokenizer *t, const char *text, int32_t *ids, int cap, int *n)
{
    if (n)
        *n = 0;
    if (!t || !text || !n || cap < 0 || (!ids && cap > 0))
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_tokenizer_encode: %s",
                        !t ? "tokenizer is NULL" : !text ? "text is NULL" : !n ? "n is NULL"
                        : cap < 0 ? "cap is negative" : "ids is NULL with cap > 0");
    return guarded("s2s_tokenizer_encode", [&]() -> s2s_status {
        std::vector<int> v;
        spm::util::Status st = t->sp.Encode(text, &v);
        if (!st.ok())
            return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_tokenizer_encode: SentencePiece failed on a text of %zu bytes: %s",
                            std::strlen(text), st.ToString().c_str());
        if (v.size() > (size_t)INT_MAX)
            return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_tokenizer_encode: %zu pieces do not fit an int; split the text",
                            v.size());
        *n = (int)v.size();
        size_t keep = std::min(v.size(), (size_t)cap);
        for (size_t i = 0; i < keep; i++)
            ids[i] = v[i];
        return S2S_OK;
    });
}

S2S_API s2s_status s2s_tokenizer_decode(const s2s_tokenizer *t, const int32_t *ids, int n, char *buf, size_t cap,
                                        size_t *len)
{
    if (len)
        *len = 0;
    if (buf && cap)
        buf[0] = '\0';
    if (!t || !len || n < 0 || (!ids && n > 0) || (!buf && cap > 0))
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_tokenizer_decode: %s",
                        !t ? "tokenizer is NULL" : !len ? "len is NULL" : n < 0 ? "n is negative"
                        : !buf ? "buf is NULL with cap > 0" : "ids is NULL with n > 0");
    for (int i = 0; i < n; i++)
        S2S_TRY(check_id(t, ids[i], "s2s_tokenizer_decode", i));
    return guarded("s2s_tokenizer_decode", [&]() -> s2s_status {
        std::vector<int> v;
        v.reserve((size_t)n);
        for (int i = 0; i < n; i++)
            if (ids[i] != S2S_PAD_ID && ids[i] != S2S_BOS_ID && ids[i] != S2S_EOS_ID)
                v.push_back(ids[i]);
        std::string text;
        spm::util::Status st = t->sp.Decode(v, &text);
        if (!st.ok())
            return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_tokenizer_decode: SentencePiece failed on %d ids: %s", n,
                            st.ToString().c_str());
        *len = text.size();
        if (cap) {
            size_t keep = std::min(text.size(), cap - 1);
            std::memcpy(buf, text.data(), keep);
            buf[keep] = '\0';
        }
        return S2S_OK;
    });
}

S2S_API s2s_status s2s_tokenizer_piece(const s2s_tokenizer *t, int32_t id, char *buf, size_t cap)
{
    if (!t || !buf || cap == 0)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_tokenizer_piece: %s",
                        !t ? "tokenizer is NULL" : !buf ? "buf is NULL" : "cap is 0");
    buf[0] = '\0';
    S2S_TRY(check_id(t, id, "s2s_tokenizer_piece", -1));
    return guarded("s2s_tokenizer_piece", [&]() -> s2s_status {
        const std::string &p = t->sp.IdToPiece(id);
        if (p.size() >= cap)
            return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_tokenizer_piece: piece %d has %zu bytes; buf needs %zu, has %zu",
                            (int)id, p.size(), p.size() + 1, cap);
        std::memcpy(buf, p.data(), p.size() + 1);
        return S2S_OK;
    });
}

} // extern "C"
