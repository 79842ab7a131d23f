"""Serving throughput of an OpenAI-compatible server (used by serve-compare.sh).

    python3 bench/serve_load.py BASE_URL CLIENTS [TOKENS] [ROUNDS] [TEMPERATURE]

CLIENTS threads each send ROUNDS streaming chat requests, one after the other
(greedy unless TEMPERATURE is given, max_tokens=TOKENS, ignore_eos so every request generates TOKENS).
Prints one JSON line: aggregate generated tokens/s over the wall time, and
the time to first token (p50 / p95) over all requests. Stdlib only.
"""

import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse

BASE = urllib.parse.urlparse(sys.argv[1])
CLIENTS = int(sys.argv[2])
TOKENS = int(sys.argv[3]) if len(sys.argv) > 3 else 64
ROUNDS = int(sys.argv[4]) if len(sys.argv) > 4 else 2
TEMP = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
TOPICS = ["the sea", "a cat", "rust", "mountains", "coffee", "the moon", "trains", "rain"]


def one(i, out):
    body = json.dumps({
        "messages": [{"role": "user", "content": f"Write a long essay about {TOPICS[i % len(TOPICS)]} (part {i})."}],
        "max_tokens": TOKENS,
        "temperature": TEMP,
        "seed": i,
        "ignore_eos": True,
        "stream": True,
    })
    c = http.client.HTTPConnection(BASE.hostname, BASE.port, timeout=600)
    t0 = time.time()
    c.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    assert r.status == 200, (r.status, r.read()[:300])
    ttft, n, last = None, 0, None
    for line in r:
        line = line.strip()
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        ch = json.loads(line[6:])
        for choice in ch.get("choices", []):
            if choice.get("delta", {}).get("content"):
                n += 1
                last = time.time() - t0
                if ttft is None:
                    ttft = last
    c.close()
    # Decode speed of this request: tokens after the first over their time.
    rate = (n - 1) / (last - ttft) if n > 1 and last > ttft else 0.0
    out.append((ttft if ttft is not None else time.time() - t0, n, rate))


def client(k, out):
    for r in range(ROUNDS):
        one(k * ROUNDS + r, out)


results = []
t = time.time()
threads = [threading.Thread(target=client, args=(k, results)) for k in range(CLIENTS)]
for th in threads:
    th.start()
for th in threads:
    th.join()
wall = time.time() - t
ttfts = sorted(r[0] for r in results)
tokens = sum(r[1] for r in results)
p95 = ttfts[min(len(ttfts) - 1, int(0.95 * len(ttfts)))]
print(json.dumps({
    "clients": CLIENTS,
    "requests": len(results),
    "tokens": tokens,
    "wall_s": round(wall, 2),
    "tok_s": round(tokens / wall, 2),
    "ttft_p50_ms": round(statistics.median(ttfts) * 1e3, 1),
    "ttft_p95_ms": round(p95 * 1e3, 1),
    "decode_tok_s_per_request": round(statistics.median(r[2] for r in results), 2),
}))
