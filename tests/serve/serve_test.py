#!/usr/bin/env python3
"""serve_test.py BUILD - s2s-serve end to end on a free loopback port (tests/test_serve.c runs it).

A small model is trained first (seconds). Then every endpoint, streaming parsed as a client would,
every error with its status code, the API key, answers equal to decoding each line alone (the
tools' output), a bounded load (hey, when installed: zero errors), a client that vanishes
mid-stream, and a drain on SIGTERM with a request in flight. Prints "ok NAME" / "FAIL NAME: why"
per check and exits 1 when any failed. Only the standard library; every server it starts binds
127.0.0.1 and is stopped before it returns.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

B = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
KEY = "test-key-123"
AUTH = {"Authorization": "Bearer " + KEY}
fails = 0


def check(name, cond, why=""):
    global fails
    if cond:
        print("ok", name)
    else:
        fails += 1
        print("FAIL", name + ":", why)
    sys.stdout.flush()
    return cond


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)


class Server:
    """s2s-serve on a free port; its stderr is collected in the background."""

    def __init__(self, *args):
        self.p = subprocess.Popen([B + "/s2s-serve", "--port", "0", "--device", "cpu", "--threads", "1", *args],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.log, self.port, self.ready = [], None, threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(60):
            self.stop()
            raise RuntimeError("s2s-serve did not get ready: " + "".join(self.log))

    def _read(self):
        for line in self.p.stderr:
            self.log.append(line)
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", line)
            if m:
                self.port = int(m.group(1))
            if "ready:" in line:
                self.ready.set()

    def request(self, method, path, body=None, headers=None, raw=None, timeout=60):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        c.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        r = c.getresponse()
        text = r.read().decode("utf-8", "replace")
        c.close()
        return r.status, dict(r.getheaders()), text

    def post(self, path, body, **kw):
        return self.request("POST", path, body, AUTH, **kw)

    def stop(self, sig=signal.SIGTERM, wait=60):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            return self.p.wait(wait)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return None


def sse_events(text):
    out = []
    for ev in text.split("\n\n"):
        if ev.startswith("data: "):
            out.append(ev[6:])
    return out


def main():
    t = tempfile.mkdtemp(prefix="s2s_serve_")
    try:
        body(t)
    finally:
        shutil.rmtree(t, ignore_errors=True)
    print("serve_test: %d failed" % fails)
    return 1 if fails else 0


def body(t):
    # ---- a model: the toy task, trained a little ------------------------------------------------
    words = "red blue green cat dog sees likes the a big small bird".split()
    with open(t + "/train.tsv", "w") as f:
        for i in range(400):
            a = [words[(i * 7 + k * 5) % 12] for k in range(2 + i % 4)]
            f.write(" ".join(a) + "\t" + " ".join(reversed(a)) + "\n")
    r = run([B + "/s2s-translate", "train", "--train-tsv", t + "/train.tsv", "--out", t + "/m", "--vocab", "40",
             "--hidden", "32", "--embed", "16", "--max-steps", "150", "--valid-every", "0", "--lr", "5e-3",
             "--warmup", "5", "--batch-tokens", "300", "--device", "cpu", "--threads", "1", "--quiet"])
    if not check("setup_train", r.returncode == 0, r.stderr):
        return
    M = t + "/m.best.safetensors"
    # and a model that learned nothing, wider: it rarely ends a reply and each step takes a while,
    # so a stream of min_tokens lasts well past the deadlines and signals of the tests below
    r = run([B + "/s2s-translate", "train", "--train-tsv", t + "/train.tsv", "--out", t + "/r", "--vocab", "40",
             "--hidden", "512", "--embed", "64", "--max-steps", "1", "--valid-every", "0", "--lr", "1e-9",
             "--device", "cpu", "--threads", "1", "--quiet"])
    if not check("setup_train_untrained", r.returncode == 0, r.stderr):
        return
    R = t + "/r.best.safetensors"
    lines = [" ".join(words[(i * 5 + k * 3) % 12] for k in range(2 + i % 5)) for i in range(24)]

    s = Server("--model", "tr=" + M, "--model", "chat=" + M, "--model", "rand=" + R, "--api-key", KEY, "--queue", "64",
               "--max-body", "65536", "--max-input-tokens", "250", "--deadline", "30")
    try:
        endpoints(s, lines, M, t)
        errors(s)
        load(s, lines, M, t)
        vanish(s)
    finally:
        code = s.stop()
    check("sigterm_exit_0", code == 0, "exit %s; log: %s" % (code, "".join(s.log[-5:])))
    limits(M, R)
    drain(R)


def alone_translations(M, lines, t, *args):
    with open(t + "/in.txt", "w") as f:
        f.write("\n".join(lines) + "\n")
    r = run([B + "/s2s-translate", "translate", "--model", M, "--batch", "1", "--device", "cpu", "--threads", "1",
             "--quiet", *args], stdin=open(t + "/in.txt"))
    return r.stdout.split("\n")[:len(lines)]


def endpoints(s, lines, M, t):
    code, _, txt = s.request("GET", "/health")
    check("health", code == 200 and json.loads(txt)["status"] == "ok", txt)
    code, _, txt = s.request("GET", "/")
    check("page", code == 200 and "<title>libseq2seq</title>" in txt and "http" not in txt.split("<script>")[0].lower(),
          txt[:200])
    code, hdr, txt = s.request("GET", "/v1/models")
    check("key_required", code == 401 and "API key" in txt and hdr.get("WWW-Authenticate") == "Bearer", txt)
    code, _, txt = s.request("GET", "/v1/models", headers={"Authorization": "Bearer wrong"})
    check("key_wrong", code == 401, txt)
    code, _, txt = s.request("GET", "/v1/models", headers=AUTH)
    check("models", code == 200 and [m["id"] for m in json.loads(txt)["data"]] == ["tr", "chat", "rand"], txt)
    # translations equal the tool's, line by line (beam 5, the line alone)
    code, _, txt = s.post("/translate", [{"src": x, "id": 1} for x in lines])
    want = alone_translations(M, lines, t)
    got = [h["tgt"] for h in json.loads(txt)[0]] if code == 200 else []  # rank 0's list: one per item
    check("translate_equals_alone", got == want, "got %s want %s (%s)" % (got[:3], want[:3], txt[:200]))
    code, _, txt = s.post("/translate", [{"src": lines[3], "id": "tr", "beam_size": 4, "n_best": 3},
                                         {"src": lines[4], "id": "tr", "beam_size": 4, "n_best": 3}])
    j = json.loads(txt) if code == 200 else None  # OpenNMT-py's shape: j[rank][item]
    check("translate_nbest", j and len(j) == 3 and all(len(r) == 2 for r in j) and
          all(h["n_best"] == 3 for r in j for h in r) and [j[0][i]["src"] for i in range(2)] == lines[3:5] and
          all(j[0][i]["pred_score"] >= j[1][i]["pred_score"] >= j[2][i]["pred_score"] for i in range(2)), txt)
    code, _, txt = s.post("/translate", [{"src": lines[3], "n_best": 2}, {"src": lines[4], "n_best": 1}])
    check("translate_nbest_differs_400", code == 400 and "n_best" in txt, txt)
    # streaming with beam search: the reply comes whole, as one piece
    code, _, txt = s.post("/v1/chat/completions", {"messages": [{"role": "user", "content": lines[2]}],
                                                    "stream": True, "beam_size": 4})
    evs = sse_events(txt)
    pieces = [json.loads(e)["choices"][0]["delta"].get("content", "") for e in evs[:-1]]
    code2, _, txt2 = s.post("/v1/chat/completions", {"messages": [{"role": "user", "content": lines[2]}],
                                                      "beam_size": 4})
    check("chat_stream_beam", code == 200 and "".join(pieces) == json.loads(txt2)["choices"][0]["message"]["content"]
          and "".join(pieces) != "", "%s / %s" % (pieces, txt2[:200]))
    # chat: greedy with 3-gram blocking, as s2s-chat chat --greedy
    r = run([B + "/s2s-chat", "chat", "--model", M, "--greedy", "--device", "cpu", "--threads", "1", "--quiet"],
            input="\n".join(lines[:6]) + "\n")
    want = r.stdout.split("\n")[:6]
    got = []
    for x in lines[:6]:
        code, _, txt = s.post("/v1/chat/completions", {"model": "chat", "messages": [
            {"role": "system", "content": "be brief"}, {"role": "user", "content": x}]})
        got.append(json.loads(txt)["choices"][0]["message"]["content"] if code == 200 else txt)
    check("chat_equals_alone", got == want, "got %s want %s" % (got[:2], want[:2]))
    code, _, txt = s.post("/v1/chat/completions", {"messages": [{"role": "user", "content": lines[1]}], "stream": True})
    evs = sse_events(txt)
    chunks = [json.loads(e) for e in evs[:-1]] if evs else []
    streamed = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    check("chat_stream", code == 200 and evs[-1] == "[DONE]" and chunks[0]["choices"][0]["delta"]["role"] == "assistant"
          and chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length") and streamed == got[1],
          "streamed %r want %r; events %s" % (streamed, got[1], evs[:3]))
    code, _, txt = s.post("/v1/chat/completions", {"messages": [{"role": "user", "content": lines[2]}],
                                                    "temperature": 0.9, "top_p": 0.9, "seed": 5, "max_tokens": 4})
    j = json.loads(txt) if code == 200 else {}
    check("chat_sampling_max_tokens", code == 200 and j["usage"]["completion_tokens"] <= 4, txt)
    code, _, txt = s.request("GET", "/metrics", headers=AUTH)
    need = ["s2s_request_duration_seconds_bucket", "s2s_queue_time_seconds_count", "s2s_time_per_output_token_seconds",
            's2s_batch_size{model="tr"}', "s2s_queue_depth", "s2s_tokens_in_total", "s2s_tokens_out_total",
            's2s_responses_total{code="200"}']
    check("metrics", code == 200 and all(n in txt for n in need), [n for n in need if n not in txt])


def errors(s):
    cases = [
        ("malformed_json", "/translate", b'[{"src": "red cat"', 400, "malformed JSON at byte"),
        ("not_an_array", "/translate", b'{"src": "red"}', 400, "JSON array"),
        ("src_not_string", "/translate", b'[{"src": 5}]', 400, 'string \\"src\\"'),
        ("beam_wrong_type", "/translate", b'[{"src": "red", "beam_size": "five"}]', 400, "beam_size"),
        ("unknown_model", "/translate", b'[{"src": "red", "id": 9}]', 400, "unknown model"),
        ("invalid_utf8", "/translate", b'[{"src": "red \xff cat"}]', 400, "not valid UTF-8 at byte 5"),
        ("too_many_tokens", "/translate", json.dumps([{"src": "red cat " * 200}]).encode(), 400, "the limit is 250"),
        ("too_large", "/translate", json.dumps([{"src": "red " * 20000}]).encode(), 413, "65536 bytes"),
        ("chat_no_user", "/v1/chat/completions", b'{"messages": [{"role": "system", "content": "x"}]}', 400,
         'role \\"user\\"'),
        ("chat_messages_type", "/v1/chat/completions", b'{"messages": "hi"}', 400, "messages"),
        ("chat_temperature_type", "/v1/chat/completions",
         b'{"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}', 400, "temperature"),
    ]
    for name, path, raw, want, needle in cases:
        code, hdr, txt = s.request("POST", path, headers=AUTH, raw=raw)
        ok = code == want and needle in txt and hdr.get("Content-Type") == "application/json"
        try:
            ok = ok and json.loads(txt)["error"]["code"] == want
        except Exception:
            ok = False
        check("error_" + name, ok, "%d %s" % (code, txt))
    code, _, txt = s.request("GET", "/nothing", headers=AUTH)
    check("error_404", code == 404, txt)
    code, hdr, txt = s.request("GET", "/translate", headers=AUTH)
    check("error_405", code == 405 and hdr.get("Allow") == "POST", "%s %s" % (hdr, txt))


def load(s, lines, M, t):
    """Concurrent requests, each equal to its alone-decoding; then hey: zero errors. The lines are
    Multi30k's test sentences where the corpus is present (data/ from scripts/fetch-data.sh, or the
    shared folder beside the checkout: 300 of them; the toy model's tokenizer spells their unknown
    words out in pieces), else toy lines."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    real = next((p for p in (os.path.join(root, "data", "multi30k", "test.en"),
                             os.path.join(root, "..", "shared", "data", "multi30k", "test.en")) if os.path.exists(p)), "")
    if real:
        many = [x.strip() for x in open(real, encoding="utf-8")][:300]
        print("load: 300 lines of", os.path.normpath(real))
    else:
        many = [lines[i % len(lines)] + (" bird" * (i % 3)) for i in range(96)]
    want = dict(zip(many, alone_translations(M, many, t)))
    got, errs = {}, []

    def client(part):
        for x in part:
            code, _, txt = s.post("/translate", [{"src": x}])
            if code != 200:
                errs.append("%d %s" % (code, txt))
            else:
                got[x] = json.loads(txt)[0][0]["tgt"]

    th = [threading.Thread(target=client, args=(many[i::16],)) for i in range(16)]
    t0 = time.time()
    [x.start() for x in th]
    [x.join(120) for x in th]
    bad = [x for x in many if got.get(x) != want[x]]
    check("load_16_clients_equal_alone", not errs and not bad,
          "%d errors %s; %d differ, e.g. %r: %r vs %r" % (len(errs), errs[:2], len(bad), bad[:1],
                                                           got.get(bad[0]) if bad else "", want[bad[0]] if bad else ""))
    check("load_16_clients_time", time.time() - t0 < 120, "took %.0f s" % (time.time() - t0))
    if not shutil.which("hey"):
        print("skip load_hey: hey not installed")
        return
    r = run(["hey", "-n", "320", "-c", "16", "-m", "POST", "-T", "application/json", "-H", "Authorization: Bearer " + KEY,
             "-d", json.dumps([{"src": lines[5], "id": 1}]), "http://127.0.0.1:%d/translate" % s.port])
    m = re.search(r"\[(\d+)\]\s+(\d+) responses", r.stdout)
    codes = re.findall(r"\[(\d+)\]\s+(\d+) responses", r.stdout)
    check("load_hey_320_at_16", codes == [("200", "320")] and "Error distribution" not in r.stdout,
          r.stdout[-600:] + r.stderr[-300:])


def vanish(s):
    """A streaming client that leaves: its rows are freed (the engine's batch goes back to 0)."""
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    req = json.dumps({"model": "rand", "messages": [{"role": "user", "content": "red cat sees the big bird"}],
                      "stream": True, "min_tokens": 4000, "max_tokens": 4096}).encode()
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Authorization: Bearer " + KEY.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(req) + req)
    first = sock.recv(4096)
    sock.close()
    freed = False
    for _ in range(100):
        time.sleep(0.1)
        code, _, txt = s.request("GET", "/metrics", headers=AUTH)
        if 's2s_batch_size{model="rand"} 0' in txt and "(client gone)" in "".join(s.log):
            freed = True
            break
    check("client_vanishes_mid_stream", b"200 OK" in first and freed,
          "first bytes %r; log tail %s" % (first[:60], "".join(s.log[-3:])))


def limits(M, R):
    """A full queue: 429 with Retry-After; a deadline: 504 (the request's rows freed)."""
    s = Server("--model", "tr=" + M, "--model", "rand=" + R, "--queue", "1", "--max-rows", "64", "--token-budget",
               "2000", "--deadline", "0.1")
    try:
        results = []

        def one(i):
            results.append(s.request("POST", "/translate", [{"src": "red cat sees the big bird " * 3, "beam_size": 40}]))

        th = [threading.Thread(target=one, args=(i,)) for i in range(12)]
        [x.start() for x in th]
        [x.join(60) for x in th]
        # and one request of three items: each takes 40 of the 64 rows, so while the first decodes
        # the second waits in the one-place queue and the third is refused (whatever the speed)
        results.append(s.request("POST", "/translate", [{"src": "red cat sees the big bird " * 3, "beam_size": 40}] * 3))
        c429 = [r for r in results if r[0] == 429]
        check("queue_full_429", c429 and c429[0][1].get("Retry-After") == "1" and "queue" in c429[0][2],
              [r[0] for r in results])
        code, _, txt = s.request("POST", "/v1/chat/completions", {"model": "rand", "messages": [
            {"role": "user", "content": "red cat"}], "min_tokens": 4096, "max_tokens": 4096})
        check("deadline_504", code == 504 and "deadline" in txt, "%d %s" % (code, txt))
        freed = False
        for _ in range(50):
            code, _, txt = s.request("GET", "/metrics")
            if 's2s_batch_size{model="rand"} 0' in txt:
                freed = True
                break
            time.sleep(0.1)
        check("deadline_frees_rows", freed, txt[-300:])
    finally:
        s.stop()


def drain(R):
    """SIGTERM with a request in flight: it is answered whole, new ones are refused, the exit status is 0."""
    s = Server("--model", "rand=" + R, "--drain", "20")
    res = {}

    def slow():  # 4,096 decoder steps: well over the signal's delay
        res["r"] = s.request("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "red cat"}],
                                                               "min_tokens": 4096, "max_tokens": 4096})

    th = threading.Thread(target=slow)
    th.start()
    time.sleep(0.05)
    in_flight = th.is_alive()  # the request is still decoding when the signal comes
    s.p.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    try:
        late = s.request("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]}, timeout=10)
    except OSError as e:  # the listening socket may already be closed
        late = (0, {}, str(e))
    th.join(60)
    code = s.stop(wait=60)
    r = res.get("r")
    check("drain_answers_in_flight", in_flight and r is not None and r[0] == 200 and
          json.loads(r[2])["usage"]["completion_tokens"] == 4096, (in_flight, r and r[:1]))
    check("drain_refuses_new", late[0] in (0, 503), late)
    check("drain_exit_0", code == 0 and any("draining" in x for x in s.log), "exit %s" % code)


if __name__ == "__main__":
    sys.exit(main())
