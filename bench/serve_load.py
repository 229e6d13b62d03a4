#!/usr/bin/env python3
"""serve_load.py - a closed-loop load on a running s2s-serve, one JSON line of results.

    bench/serve_load.py --port P --kind translate|chat --concurrency C --lines FILE [--n N]
                        [--model NAME] [--beam K] [--label TEXT]

C clients each send their next request as soon as their last one is answered, until N requests
(the first N lines of FILE, in turn) are done. translate: POST /translate, beam K; chat: POST
/v1/chat/completions with "stream": true (greedy), timing the first streamed piece (TTFT) and
the time per output token after it (from the usage of the stream's last chunk). Prints sentences/s and latency percentiles (p50, p99) in ms.
Standard library only; the server must be on 127.0.0.1.
"""
import argparse
import http.client
import json
import threading
import time


def pct(v, p):
    v = sorted(v)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--kind", choices=["translate", "chat"], required=True)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--lines", required=True)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--model", default=None)
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--label", default="")
    ap.add_argument("--expect", help="translate: a file with the expected translation of each line (the same "
                    "order); the output counts the answers that differ")
    a = ap.parse_args()
    lines = [x.rstrip("\n") for x in open(a.lines, encoding="utf-8") if x.strip()][: a.n]
    lock = threading.Lock()
    todo = list(range(len(lines)))
    lat, ttft, tpot, errors, out_tokens = [], [], [], [], [0]
    expect = [x.rstrip("\n") for x in open(a.expect, encoding="utf-8")][: len(lines)] if a.expect else None
    differ = []

    def one(i, c):
        t0 = time.perf_counter()
        if a.kind == "translate":
            body = [{"src": lines[i], "beam_size": a.beam}]
            if a.model:
                body[0]["id"] = a.model
            c.request("POST", "/translate", json.dumps(body), {"Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            if r.status != 200:
                raise RuntimeError("%d %s" % (r.status, data[:200]))
            if expect is not None and json.loads(data)[0][0]["tgt"] != expect[i]:
                with lock:
                    differ.append(i)
            return time.perf_counter() - t0, None, None, 0
        body = {"messages": [{"role": "user", "content": lines[i]}], "stream": True,
                "stream_options": {"include_usage": True}}
        if a.model:
            body["model"] = a.model
        c.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            raise RuntimeError("%d %s" % (r.status, r.read()[:200]))
        first = None
        pieces = tokens = 0
        buf = b""
        while True:
            chunk = r.read1(65536)
            if not chunk:
                break
            buf += chunk
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
                if not ev.startswith(b"data: ") or ev == b"data: [DONE]":
                    continue
                j = json.loads(ev[6:])
                if "error" in j:
                    raise RuntimeError(str(j["error"]))
                if j.get("usage"):
                    tokens = j["usage"]["completion_tokens"]
                    continue
                if j["choices"][0]["delta"].get("content"):
                    pieces += 1
                    if first is None:
                        first = time.perf_counter() - t0
        total = time.perf_counter() - t0
        return total, first, total, tokens

    def worker():
        c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=300)
        while True:
            with lock:
                if not todo:
                    break
                i = todo.pop(0)
            try:
                total, first, _, tokens = one(i, c)
                with lock:
                    lat.append(total)
                    if first is not None:
                        ttft.append(first)
                        if tokens > 1:  # the tokens after the first piece
                            tpot.append((total - first) / (tokens - 1))
            except Exception as e:  # noqa: BLE001 - counted and shown
                with lock:
                    errors.append(str(e)[:200])
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=300)
        c.close()

    t0 = time.perf_counter()
    th = [threading.Thread(target=worker) for _ in range(a.concurrency)]
    [t.start() for t in th]
    [t.join() for t in th]
    wall = time.perf_counter() - t0
    res = {"label": a.label, "kind": a.kind, "concurrency": a.concurrency, "requests": len(lines),
           "errors": len(errors), "wall_s": round(wall, 3), "sentences_per_s": round(len(lat) / wall, 2),
           "p50_ms": round(1e3 * pct(lat, 50), 1), "p99_ms": round(1e3 * pct(lat, 99), 1)}
    if a.kind == "chat":
        res.update({"ttft_p50_ms": round(1e3 * pct(ttft, 50), 1), "ttft_p99_ms": round(1e3 * pct(ttft, 99), 1),
                    "tpot_p50_ms": round(1e3 * pct(tpot, 50), 2)})
    if expect is not None:
        res["differ_from_expected"] = len(differ)
    if errors:
        res["first_error"] = errors[0]
    print(json.dumps(res))


if __name__ == "__main__":
    main()
