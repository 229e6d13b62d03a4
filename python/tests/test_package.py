"""The seq2seq package against the C tools on a small model trained here: every class and
function gives what the tools give; bad input raises, never crashes; objects close; two threads
on two Translators; the wheel in a fresh virtual environment; the README's example.

Run: python3 -m pytest python/tests (make test runs it). BUILD: the build folder (default build).
"""
import json
import os
import re
import subprocess
import sys
import threading
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
B = os.path.join(ROOT, os.environ.get("S2S_BUILD", "build"))
sys.path.insert(0, os.path.join(ROOT, "python"))
os.environ.setdefault("S2S_LIBRARY", os.path.join(B, "libseq2seq.so"))
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import seq2seq  # noqa: E402

WORDS = "red blue green cat dog sees likes the a big small bird".split()
LINES = [" ".join(WORDS[(i * 5 + k * 3) % 12] for k in range(2 + i % 5)) for i in range(20)]
CPU = ["--device", "cpu", "--threads", "1", "--quiet"]


def tool(*args, stdin=None):
    r = subprocess.run([os.path.join(B, args[0]), *args[1:]], input=stdin, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture(scope="session")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("s2s_py")
    pairs = []
    for i in range(400):
        a = [WORDS[(i * 7 + k * 5) % 12] for k in range(2 + i % 4)]
        pairs.append((" ".join(a), " ".join(reversed(a))))
    with open(d / "train.tsv", "w") as f:
        f.writelines("%s\t%s\n" % p for p in pairs)
    tool("s2s-translate", "train", "--train-tsv", str(d / "train.tsv"), "--out", str(d / "m"), "--vocab", "40",
         "--hidden", "32", "--embed", "16", "--max-steps", "150", "--valid-every", "0", "--lr", "5e-3", "--warmup",
         "5", "--batch-tokens", "300", "--seed", "3", *CPU)
    return {"dir": d, "model": str(d / "m.best.safetensors"), "pairs": pairs}


def test_translate_equals_the_tool(data):
    want = tool("s2s-translate", "translate", "--model", data["model"], *CPU, stdin="\n".join(LINES) + "\n")
    with seq2seq.Translator(data["model"], device="cpu", threads=1) as t:
        got = [r[0].text for r in t.translate(LINES)]
        assert got == want.split("\n")[:len(LINES)]
        greedy = tool("s2s-translate", "translate", "--model", data["model"], "--greedy", *CPU,
                      stdin="\n".join(LINES) + "\n")
        assert [r[0].text for r in t.translate(LINES, mode="greedy")] == greedy.split("\n")[:len(LINES)]


def test_precision_equals_the_tool(data):
    """int8 (or fp32 where this CPU cannot: the package says which) gives what the tool gives with
    the same --precision; bf16 likewise; an unknown precision raises."""
    for prec in ("int8", "bf16"):
        want = tool("s2s-translate", "translate", "--model", data["model"], "--precision", prec, *CPU,
                    stdin="\n".join(LINES) + "\n")
        with seq2seq.Translator(data["model"], device="cpu", threads=1, precision=prec) as t:
            assert t.precision in (prec, "fp32") and t.precision_info
            assert (t.precision == "fp32") == t.precision_info.startswith("fp32")
            assert [r[0].text for r in t.translate(LINES)] == want.split("\n")[:len(LINES)]
    with pytest.raises(seq2seq.InvalidArgumentError):
        seq2seq.Translator(data["model"], device="cpu", precision="int4")


def test_nbest_scores_and_attention(data):
    np = pytest.importorskip("numpy")
    out = tool("s2s-translate", "translate", "--model", data["model"], "--beam", "4", "--nbest", "3", *CPU,
               stdin="\n".join(LINES[:3]) + "\n")
    rows = [ln.split(" ||| ") for ln in out.strip().split("\n")]
    with seq2seq.Translator(data["model"], device="cpu", threads=1) as t:
        res = t.translate(LINES[:3], beam_size=4, n_best=3, return_scores=True, return_attention=True)
    flat = [h for r in res for h in r]
    assert [h.text for h in flat] == [r[1] for r in rows]
    assert all(abs(h.score - float(r[2])) < 1e-4 for h, r in zip(flat, rows))
    for h, src in zip(flat, [s for s in LINES[:3] for _ in range(3)]):
        assert isinstance(h.attention, np.ndarray) and h.attention.dtype == np.float32
        assert h.attention.shape[0] > 0 and np.allclose(h.attention.sum(axis=1), 1, atol=1e-4)


def test_bleu_equals_eval(data):
    src, ref = [p[0] for p in data["pairs"][:30]], [p[1] for p in data["pairs"][:30]]
    d = data["dir"]
    (d / "s.txt").write_text("\n".join(src) + "\n")
    (d / "r.txt").write_text("\n".join(ref) + "\n")
    out = tool("s2s-translate", "eval", "--model", data["model"], "--src", str(d / "s.txt"), "--ref",
               str(d / "r.txt"), *CPU)
    want = float(re.search(r"BLEU = ([0-9.]+)", out).group(1))
    with seq2seq.Translator(data["model"], device="cpu", threads=1) as t:
        hyps = [r[0].text for r in t.translate(src)]
    b = seq2seq.bleu(hyps, ref)
    assert abs(b.score - want) < 0.005 and b.hyp_len > 0 and len(b.precisions) == 4


def test_chatbot_reply_and_stream(data):
    want = tool("s2s-chat", "chat", "--model", data["model"], *CPU, stdin="\n".join(LINES[:4]) + "\n").split("\n")
    greedy = tool("s2s-chat", "chat", "--model", data["model"], "--greedy", *CPU,
                  stdin="\n".join(LINES[:4]) + "\n").split("\n")
    mmi = tool("s2s-chat", "chat", "--model", data["model"], "--mmi", data["model"], *CPU,
               stdin="\n".join(LINES[:4]) + "\n").split("\n")
    with seq2seq.Chatbot(data["model"], device="cpu", threads=1) as bot:
        assert [bot.reply(x) for x in LINES[:4]] == want[:4]
        assert [bot.reply(x, mode="greedy") for x in LINES[:4]] == greedy[:4]
        for x, g in zip(LINES[:4], greedy):
            pieces = list(bot.stream(x))
            assert "".join(pieces) == g and len(pieces) >= 1
        it = bot.stream(LINES[5])  # closed early: cancelled, and the bot goes on
        next(it, None)
        it.close()
        assert bot.reply(LINES[0], mode="greedy") == greedy[0]
    with seq2seq.Chatbot(data["model"], mmi=data["model"], device="cpu", threads=1) as bot:
        assert [bot.reply(x) for x in LINES[:4]] == mmi[:4]


def test_stream_paused_does_not_hold_the_bot(data):
    """A stream waiting between pieces leaves the Chatbot to other calls and other threads; it can
    be closed from another thread."""
    with seq2seq.Chatbot(data["model"], device="cpu", threads=1) as bot:
        want = bot.reply(LINES[1], mode="greedy")
        it = bot.stream(LINES[7], max_tokens=30)
        next(it)  # paused after the first piece
        got = []
        th = threading.Thread(target=lambda: got.append(bot.reply(LINES[1], mode="greedy")))
        th.start()
        th.join(30)
        assert got == [want], "a paused stream blocked reply()"
        closer = threading.Thread(target=it.close)
        closer.start()
        closer.join(30)
        assert not closer.is_alive()
        assert bot.reply(LINES[1], mode="greedy") == want


def test_file_without_tokenizers(data, tmp_path):
    import ctypes
    from seq2seq import _capi
    with seq2seq.ModelFile(data["model"]) as f:  # the same weights saved without their tokenizers
        assert _capi.lib.s2s_model_save(f._m, None, None, None, str(tmp_path / "bare.safetensors").encode()) == 0
    for cls in (seq2seq.Translator, seq2seq.Chatbot):
        with pytest.raises(seq2seq.InvalidArgumentError, match="no tokenizers"):
            cls(str(tmp_path / "bare.safetensors"), device="cpu", threads=1)


def test_train_equals_the_tool_and_reports(data):
    d = data["dir"]
    tool("s2s-translate", "train", "--train-tsv", str(d / "train.tsv"), "--out", str(d / "tool"), "--vocab", "40",
         "--hidden", "16", "--embed", "8", "--max-steps", "20", "--valid-every", "0", "--batch-tokens", "300",
         "--seed", "5", "--report-every", "5", *CPU)
    seen = []
    path = seq2seq.train(data["pairs"], str(d / "py"), progress=seen.append, vocab=40, hidden=16, embed=8,
                         max_steps=20, valid_every=0, batch_tokens=300, seed=5, report_every=5, device="cpu", threads=1)
    assert path.endswith("py.best.safetensors") and os.path.exists(path)
    assert any(not p.is_validation and p.step == 5 for p in seen) and all(isinstance(p.text, str) for p in seen)
    a, b = seq2seq.ModelFile(str(d / "tool.best.safetensors")), seq2seq.ModelFile(path)
    assert a.config == b.config and a.tensors.keys() == b.tensors.keys()
    for k in a.tensors:
        assert (a.tensors[k] == b.tensors[k]).all(), k  # the same data, seed and options: the same bits
    a.close(), b.close()


def test_cycles_leave_the_tools_snapshots(data):
    """schedule="linear", cycles=2 trains what the tool's --schedule linear --cycles 2 trains: the
    same two snapshots, bit for bit; an unknown schedule is refused."""
    d = data["dir"]
    tool("s2s-translate", "train", "--train-tsv", str(d / "train.tsv"), "--out", str(d / "cy-tool"), "--vocab", "40",
         "--hidden", "16", "--embed", "16", "--schedule", "linear", "--cycles", "2", "--max-steps", "10",
         "--valid-every", "0", "--batch-tokens", "300", "--seed", "5", *CPU)
    seq2seq.train(data["pairs"], str(d / "cy-py"), vocab=40, hidden=16, embed=16, schedule="linear", cycles=2,
                  max_steps=10, valid_every=0, batch_tokens=300, seed=5, device="cpu", threads=1)
    for k in (1, 2):
        with seq2seq.ModelFile(str(d / ("cy-tool.snap-%d.safetensors" % k))) as a, \
                seq2seq.ModelFile(str(d / ("cy-py.snap-%d.safetensors" % k))) as b:
            assert a.config == b.config and a.provenance["step"] == b.provenance["step"] == 5 * k
            for name in a.tensors:
                assert (a.tensors[name] == b.tensors[name]).all(), (k, name)
    assert not os.path.exists(str(d / "cy-py.snap-3.safetensors"))
    with pytest.raises(seq2seq.InvalidArgumentError):
        seq2seq.Trainer(data["pairs"], str(d / "x"), schedule="cosine", hidden=16, embed=16)


SMALL = dict(vocab=40, hidden=16, embed=8, max_steps=10, valid_every=0, batch_tokens=300, seed=5, device="cpu",
             threads=1)


def _trains_what_the_tool_trains(data, name, flag, value, **option):
    """The Python option trains the tool's flag's weights bit for bit, and not the weights of
    training without it; returns the tool's model file."""
    d = data["dir"]
    tool("s2s-translate", "train", "--train-tsv", str(d / "train.tsv"), "--out", str(d / (name + "-tool")), "--vocab",
         "40", "--hidden", "16", "--embed", "8", flag, value, "--max-steps", "10", "--valid-every", "0",
         "--batch-tokens", "300", "--seed", "5", *CPU)
    py = seq2seq.train(data["pairs"], str(d / (name + "-py")), **option, **SMALL)
    plain = seq2seq.train(data["pairs"], str(d / (name + "-none")), **SMALL)
    path = str(d / (name + "-tool.best.safetensors"))
    with seq2seq.ModelFile(path) as a, seq2seq.ModelFile(py) as b, seq2seq.ModelFile(plain) as c:
        for k in a.tensors:
            assert (a.tensors[k] == b.tensors[k]).all(), k
        assert any((a.tensors[k] != c.tensors[k]).any() for k in a.tensors)
    return path


def test_word_dropout_equals_the_tool(data):
    """word_dropout=0.3 trains what the tool's --word-dropout 0.3 trains, bit for bit, and not
    what training without it gives; 1 is refused."""
    _trains_what_the_tool_trains(data, "wd", "--word-dropout", "0.3", word_dropout=0.3)
    with pytest.raises(seq2seq.InvalidArgumentError):
        seq2seq.train(data["pairs"], str(data["dir"] / "wd-bad"), word_dropout=1.0, **SMALL)


def test_init_uniform_equals_the_tool(data):
    """init_uniform=0.1 trains what the tool's --init-uniform 0.1 trains, bit for bit, and not what
    PyTorch's initialisation gives (N(0, 1) embeddings); a negative bound is refused."""
    path = _trains_what_the_tool_trains(data, "iu", "--init-uniform", "0.1", init_uniform=0.1)
    with seq2seq.ModelFile(path) as a:
        assert abs(a.tensors["encoder.embedding.weight"]).max() < 0.2
    with pytest.raises(seq2seq.InvalidArgumentError):
        seq2seq.train(data["pairs"], str(data["dir"] / "iu-bad"), init_uniform=-0.1, **SMALL)


def test_tied_embeddings_equal_the_tool(data):
    """tie_embeddings="all" trains what the tool's --tie-embeddings all trains; the file's one
    embedding is listed under every role's PyTorch name; without shared_vocab it is refused."""
    d = data["dir"]
    tool("s2s-translate", "train", "--train-tsv", str(d / "train.tsv"), "--out", str(d / "tied-tool"), "--vocab", "40",
         "--shared-vocab", "--hidden", "16", "--embed", "16", "--tie-embeddings", "all", "--max-steps", "10",
         "--valid-every", "0", "--batch-tokens", "300", "--seed", "5", *CPU)
    path = seq2seq.train(data["pairs"], str(d / "tied-py"), vocab=40, shared_vocab=True, hidden=16, embed=16,
                         tie_embeddings="all", max_steps=10, valid_every=0, batch_tokens=300, seed=5, device="cpu",
                         threads=1)
    with seq2seq.ModelFile(str(d / "tied-tool.best.safetensors")) as a, seq2seq.ModelFile(path) as b:
        assert a.config == b.config and b.config["tie_embeddings"] == "all"
        for k in a.tensors:
            assert (a.tensors[k] == b.tensors[k]).all(), k
        roles = ["encoder.embedding.weight", "decoder.embedding.weight", "generator.weight"]
        assert all(b.tensors[r] is b.tensors[roles[0]] for r in roles)
    with pytest.raises(seq2seq.InvalidArgumentError):
        seq2seq.Trainer(data["pairs"], str(d / "x"), tie_embeddings="all", hidden=16, embed=16)


def test_modelfile(data):
    np = pytest.importorskip("numpy")
    with seq2seq.ModelFile(data["model"]) as f:
        assert f.config["hidden"] == 32 and f.config["cell"] == "lstm" and f.config["attention"] == "general"
        assert f.provenance["step"] == 150 and f.provenance["seed"] == 3
        w = f.tensors["generator.weight"]
        assert w.dtype == np.float32 and w.shape == (f.config["tgt_vocab"], 32)
        assert "encoder.rnn.weight_ih_l0" in f.tensors
        try:
            import torch  # noqa: F401
        except ImportError:
            return
        sd = f.state_dict()
        assert sd["generator.weight"].shape == (f.config["tgt_vocab"], 32)


def test_average(data, tmp_path):
    np = pytest.importorskip("numpy")
    out = tmp_path / "avg.safetensors"
    seq2seq.average([data["model"], data["model"]], out)  # a file with itself: itself
    with seq2seq.ModelFile(data["model"]) as a, seq2seq.ModelFile(out) as b:
        assert a.tensors.keys() == b.tensors.keys()
        assert all(np.array_equal(a.tensors[k], b.tensors[k]) for k in a.tensors)
    with pytest.raises(seq2seq.InvalidArgumentError):
        seq2seq.average([], out)
    with pytest.raises(seq2seq.FileError):
        seq2seq.average([data["model"], tmp_path / "missing.safetensors"], out)


def test_state_dict_in_torch_reproduces_log_probabilities(data):
    """tests/interop/torch_logprobs.py's check through the package: the equivalent nn.Module of
    tests/golden/make_golden.py, loaded with ModelFile.state_dict(), gives each pair the
    log-probability the library gives (s2s_model_score), within 1e-5 relative."""
    torch = pytest.importorskip("torch")
    import ctypes
    sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
    import torch_logprobs as tl
    from seq2seq import _capi
    meta, _ = tl.read_safetensors(data["model"])
    c = json.loads(meta["config"])
    with seq2seq.ModelFile(data["model"]) as f:
        model = tl.mg.Seq2Seq(c)
        model.load_state_dict(f.state_dict(), strict=True)
        pairs = tl.fixed_batch(c)
        ours = {}
        for b, t, lp in tl.logprobs(model.double().eval(), pairs):
            ours[b] = ours.get(b, 0.0) + lp
        for b, (s, t) in enumerate(pairs):
            src = (ctypes.c_int32 * max(1, len(s)))(*s)
            tgt = (ctypes.c_int32 * max(1, len(t)))(*t)
            ls, lt = (ctypes.c_int32 * 1)(len(s)), (ctypes.c_int32 * 1)(len(t))
            bt = _capi.Batch(1, max(1, len(s)), max(1, len(t)), src, ls, tgt, lt)
            lp = (ctypes.c_float * 1)()
            assert _capi.lib.s2s_model_score(f._m, ctypes.byref(bt), lp) == 0
            assert abs(lp[0] - ours[b]) <= 1e-5 * abs(ours[b]) + 1e-6, (b, lp[0], ours[b])


@pytest.mark.parametrize("call", [
    lambda t: t.translate("red cat"),                      # a str, not a list
    lambda t: t.translate([5]),
    lambda t: t.translate(None),
    lambda t: t.translate(["red"], beam_size=0),
    lambda t: t.translate(["red"], beam_size="5"),
    lambda t: t.translate(["red"], n_best=9, beam_size=2),
    lambda t: t.translate(["red\0cat"]),
    lambda t: t.translate(["\ud800"]),                      # not encodable as UTF-8
    lambda t: t.translate(["red"], mode="nope"),
    lambda t: t.translate(["red"], length_penalty=float("nan")),
])
def test_bad_input_raises(data, call):
    with seq2seq.Translator(data["model"], device="cpu", threads=1) as t:
        with pytest.raises(seq2seq.InvalidArgumentError):
            call(t)


def test_bad_files_and_closed_objects(data, tmp_path):
    with pytest.raises(seq2seq.FileError):
        seq2seq.Translator(str(tmp_path / "missing.safetensors"))
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(seq2seq.FormatError):
        seq2seq.Translator(str(tmp_path / "bad.safetensors"))
    with pytest.raises(seq2seq.InvalidArgumentError):
        seq2seq.Translator(12)
    with pytest.raises(seq2seq.InvalidArgumentError):
        seq2seq.Translator(data["model"], device="tpu")
    t = seq2seq.Translator(data["model"], device="cpu", threads=1)
    t.close()
    t.close()  # twice is fine
    with pytest.raises(seq2seq.ClosedError):
        t.translate(["red cat"])
    bot = seq2seq.Chatbot(data["model"], device="cpu", threads=1)
    del bot  # garbage collection frees it
    with pytest.raises(seq2seq.InvalidArgumentError):
        seq2seq.bleu(["a"], [])
    with pytest.raises(seq2seq.InvalidArgumentError):
        seq2seq.train([("a", "b")], str(tmp_path / "x"), nonsense=1)


def test_two_threads_two_translators(data):
    many = [LINES[i % len(LINES)] + " bird" * (i % 3) for i in range(800)]  # long enough to time
    ts = [seq2seq.Translator(data["model"], device="cpu", threads=1) for _ in range(2)]
    t0 = time.perf_counter()
    seq = [ts[0].translate(many), ts[1].translate(many)]
    t_seq = time.perf_counter() - t0
    par = [None, None]

    def run(i):
        par[i] = ts[i].translate(many)

    th = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    t0 = time.perf_counter()
    [x.start() for x in th]
    [x.join() for x in th]
    t_par = time.perf_counter() - t0
    assert [[h[0].text for h in r] for r in par] == [[h[0].text for h in r] for r in seq]
    if (os.cpu_count() or 1) >= 2:  # the GIL is released: two cores overlap the calls
        assert t_par < 0.9 * t_seq, "parallel %.2f s, one after the other %.2f s" % (t_par, t_seq)
    for t in ts:
        t.close()


def test_wheel_installs_into_a_fresh_venv(tmp_path):
    whl = tmp_path / "whl"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "-q", "-w", str(whl),
                        os.path.join(ROOT, "python")], capture_output=True, text=True, timeout=900)
    if r.returncode != 0 and "No module named" in r.stderr:
        pytest.skip("pip wheel needs setuptools and wheel here: " + r.stderr[-200:])
    assert r.returncode == 0, r.stderr[-2000:]
    wheels = list(whl.glob("*.whl"))
    assert len(wheels) == 1 and "py3-none" in wheels[0].name
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    r = subprocess.run([py, "-m", "pip", "install", "--no-deps", "-q", str(wheels[0])], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    env = {k: v for k, v in os.environ.items() if k != "S2S_LIBRARY"}
    r = subprocess.run([py, "-c", "import seq2seq, os; print(seq2seq.__version__, os.path.dirname(seq2seq.LIB_PATH) "
                        "== os.path.dirname(seq2seq.__file__))"], capture_output=True, text=True, cwd=str(tmp_path),
                       env=env)
    assert r.returncode == 0 and r.stdout.split() == [seq2seq.__version__, "True"], r.stdout + r.stderr


def test_readme_example_runs(data, tmp_path):
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    m = re.search(r"<!-- python example -->\s*```python\n(.*?)```", readme, re.S)
    assert m, "the README's Python example is marked <!-- python example -->"
    code = m.group(1)
    assert len(code.strip().split("\n")) <= 12
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    (tmp_path / "example.py").write_text(code.replace("runs/m30k.best.safetensors", data["model"]))
    r = subprocess.run([sys.executable, str(tmp_path / "example.py")], capture_output=True, text=True, env=env,
                       cwd=str(tmp_path), timeout=300)
    assert r.returncode == 0 and r.stdout.strip(), r.stdout + r.stderr
