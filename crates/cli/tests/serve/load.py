"""Bounded load test of `shohin serve` (loopback only, fixed request count).

    python load.py BASE_URL API_KEY [CLIENTS] [REQUESTS]

CLIENTS concurrent streaming clients send REQUESTS chat requests in all;
every 4th request disconnects after its first few chunks. Then: no 5xx,
/health is 200, a normal request works, and the server holds no running
sequence (active slots and KV cells in use back to zero).
"""

import asyncio
import http.client
import json
import sys
import time
import urllib.parse

import openai
from openai import AsyncOpenAI

BASE, KEY = sys.argv[1], sys.argv[2]
CLIENTS = int(sys.argv[3]) if len(sys.argv) > 3 else 32
REQUESTS = int(sys.argv[4]) if len(sys.argv) > 4 else 256
URL = urllib.parse.urlparse(BASE)
TOPICS = ["the sea", "a cat", "rust", "mountains", "coffee", "the moon", "trains", "rain"]


def metrics():
    c = http.client.HTTPConnection(URL.hostname, URL.port, timeout=30)
    c.request("GET", "/metrics", headers={"Authorization": "Bearer " + KEY})
    text = c.getresponse().read().decode()
    c.close()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


async def main():
    client = AsyncOpenAI(base_url=BASE + "/v1", api_key=KEY, max_retries=0, timeout=300)
    model = (await client.models.list()).data[0].id
    stats = {"ok": 0, "disconnected": 0, "4xx": 0, "5xx": 0, "other": 0, "tokens": 0}
    queue = asyncio.Queue()
    for i in range(REQUESTS):
        queue.put_nowait(i)

    async def one(i):
        msgs = [{"role": "user", "content": f"Request {i}: write two sentences about {TOPICS[i % len(TOPICS)]}."}]
        try:
            stream = await client.chat.completions.create(
                model=model, messages=msgs, max_tokens=24, temperature=0.7, seed=i, stream=True
            )
            n = 0
            async for ch in stream:
                if ch.choices and ch.choices[0].delta.content:
                    n += 1
                if i % 4 == 3 and n >= 2:
                    await stream.close()
                    stats["disconnected"] += 1
                    return
            stats["ok"] += 1
            stats["tokens"] += n
        except openai.APIStatusError as e:
            stats["5xx" if e.status_code >= 500 else "4xx"] += 1
            print(f"request {i}: {e.status_code} {e.body}", flush=True)
        except Exception as e:
            stats["other"] += 1
            print(f"request {i}: {type(e).__name__}: {e}", flush=True)

    async def worker():
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await one(i)

    t = time.time()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(CLIENTS))), timeout=1200)
    dt = time.time() - t
    print(f"{REQUESTS} requests by {CLIENTS} clients in {dt:.1f} s: {json.dumps(stats)}", flush=True)
    assert stats["5xx"] == 0 and stats["other"] == 0 and stats["4xx"] == 0, stats
    assert stats["ok"] + stats["disconnected"] == REQUESTS, stats

    # Afterwards: healthy, serving, and nothing held by a running sequence.
    c = http.client.HTTPConnection(URL.hostname, URL.port, timeout=30)
    c.request("GET", "/health")
    r = c.getresponse()
    assert r.status == 200, r.status
    r.read()
    r = await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Say hi."}], max_tokens=8, temperature=0)
    assert r.choices[0].message.content, r
    deadline = time.time() + 10
    while True:
        m = metrics()
        if m.get("shohin_active_slots") == 0 and m.get("shohin_kv_cells_used") == 0 and m.get("shohin_queue_depth") == 0:
            break
        assert time.time() < deadline, {k: v for k, v in m.items() if "slots" in k or "kv" in k or "queue" in k}
        await asyncio.sleep(0.1)
    print(f"after: active slots 0, KV cells in use 0, queue 0; {m.get('shohin_kv_cells_cached', 0):.0f} cells kept for prefix reuse", flush=True)


asyncio.run(main())
