"""End-to-end test of `shohin serve` with the official `openai` client.

Run by crates/cli/tests/serve_e2e.rs against the real binary on 127.0.0.1:
    python e2e.py BASE_URL API_KEY N_CTX_SLOT
Every check asserts; the script exits non-zero on the first failure.
"""

import http.client
import json
import sys
import time
import urllib.parse

import openai
from openai import OpenAI

BASE, KEY, N_CTX = sys.argv[1], sys.argv[2], int(sys.argv[3])
POOLING = sys.argv[4] if len(sys.argv) > 4 else "mean"
URL = urllib.parse.urlparse(BASE)
client = OpenAI(base_url=BASE + "/v1", api_key=KEY, max_retries=0, timeout=120)
checks = []


def check(name):
    def wrap(f):
        checks.append((name, f))
        return f

    return wrap


def raw(method, path, body=None, headers=None, auth=True):
    """One raw HTTP request: (status, headers, body bytes)."""
    c = http.client.HTTPConnection(URL.hostname, URL.port, timeout=60)
    h = {"Content-Type": "application/json"}
    if auth:
        h["Authorization"] = "Bearer " + KEY
    h.update(headers or {})
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict(r.getheaders()), data


def big_body(chunked):
    """POST a 64 MB body; (status, body) of the answer, or (None, b"") when
    the server closed the connection before answering."""
    import socket

    sock = socket.create_connection((URL.hostname, URL.port), timeout=30)
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
    head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {64 << 20}\r\n\r\n"
    try:
        sock.sendall(head.encode())
        mb = b"x" * (1 << 20)
        for _ in range(64 if chunked else 1):
            sock.sendall(b"100000\r\n" + mb + b"\r\n" if chunked else mb)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    data = b""
    try:
        while True:
            got = sock.recv(65536)
            if not got:
                break
            data += got
            if b"\r\n\r\n" in data:
                head_, _, rest = data.partition(b"\r\n\r\n")
                n = [l for l in head_.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if n and len(rest) >= int(n[0].split(b":")[1]):
                    break
    except (ConnectionResetError, socket.timeout):
        pass
    sock.close()
    if not data.startswith(b"HTTP/1.1 "):
        return None, b""
    head_, _, rest = data.partition(b"\r\n\r\n")
    return int(data.split(b" ")[1]), rest


def error_of(status, body, want_status, param=None, code=None):
    assert status == want_status, (status, body[:300])
    e = json.loads(body)["error"]
    assert isinstance(e["message"], str) and e["message"], e
    assert "type" in e and "param" in e and "code" in e, e
    if param is not None:
        assert e["param"] == param, e
    if code is not None:
        assert e["code"] == code, e
    return e


MODEL = None
MSG = [{"role": "user", "content": "Write a haiku about the sea."}]


@check("GET /v1/models lists the model")
def _():
    global MODEL
    models = client.models.list().data
    assert len(models) == 1 and models[0].object == "model", models
    MODEL = models[0].id


@check("chat completion, non-stream, greedy")
def _():
    r = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=24, temperature=0)
    c = r.choices[0]
    assert r.object == "chat.completion" and r.id and r.created > 0
    assert c.index == 0 and c.message.role == "assistant" and c.message.content, r
    assert c.finish_reason in ("stop", "length"), c
    u = r.usage
    assert u.prompt_tokens > 5 and 0 < u.completion_tokens <= 24, u
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert u.prompt_tokens_details.cached_tokens >= 0


@check("chat stream equals non-stream; include_usage; finish_reason")
def _():
    args = dict(model=MODEL, messages=MSG, max_tokens=20, temperature=0)
    want = client.chat.completions.create(**args)
    text, finish, usage, roles = "", None, None, []
    for ch in client.chat.completions.create(
        stream=True, stream_options={"include_usage": True}, **args
    ):
        assert ch.object == "chat.completion.chunk"
        if ch.usage is not None:
            assert ch.choices == []
            usage = ch.usage
            continue
        d = ch.choices[0].delta
        if d.role:
            roles.append(d.role)
        text += d.content or ""
        finish = ch.choices[0].finish_reason or finish
    assert roles == ["assistant"], roles
    assert text == want.choices[0].message.content, (text, want.choices[0].message.content)
    assert finish == want.choices[0].finish_reason
    assert usage.completion_tokens == want.usage.completion_tokens, usage


@check("max_tokens hit gives finish_reason length")
def _():
    r = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Count from 1 to 100, one number per line."}],
        max_tokens=5,
        temperature=0,
    )
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 5, r


@check("text completion, stream and non-stream")
def _():
    args = dict(model=MODEL, prompt="def fibonacci(n):", max_tokens=16, temperature=0)
    r = client.completions.create(**args)
    assert r.object == "text_completion" and r.choices[0].text, r
    s = "".join(c.choices[0].text for c in client.completions.create(stream=True, **args) if c.choices)
    assert s == r.choices[0].text, (s, r.choices[0].text)


@check("same seed, same text; also under concurrency")
def _():
    import concurrent.futures as cf

    def one(seed):
        return client.chat.completions.create(
            model=MODEL, messages=MSG, max_tokens=16, temperature=0.9, seed=seed
        ).choices[0].message.content

    a = one(1234)
    with cf.ThreadPoolExecutor(6) as ex:
        outs = list(ex.map(one, [1234, 99, 1234, 7, 1234, 5]))
    assert all(o == a for o in outs[0::2]), (a, outs)


@check("n = 2 choices")
def _():
    r = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=8, temperature=1.0, n=2, seed=3)
    assert [c.index for c in r.choices] == [0, 1], r
    assert all(c.finish_reason in ("stop", "length") for c in r.choices), r
    # Every choice's tokens count: at least one each, at most max_tokens each.
    assert 2 <= r.usage.completion_tokens <= 16, r.usage


@check("stop strings are never emitted")
def _():
    free = client.completions.create(model=MODEL, prompt="1, 2, 3, 4,", max_tokens=20, temperature=0)
    t = free.choices[0].text
    assert len(t) > 6, t
    stop = t[3:5]
    r = client.completions.create(model=MODEL, prompt="1, 2, 3, 4,", max_tokens=20, temperature=0, stop=[stop, "zzzz"])
    assert stop not in r.choices[0].text and r.choices[0].text == t[: t.find(stop)], (t, stop, r)
    assert r.choices[0].finish_reason == "stop"
    s = "".join(
        c.choices[0].text
        for c in client.completions.create(model=MODEL, prompt="1, 2, 3, 4,", max_tokens=20, temperature=0, stop=stop, stream=True)
        if c.choices
    )
    assert s == r.choices[0].text, (s, r.choices[0].text)


@check("logprobs and top_logprobs")
def _():
    r = client.chat.completions.create(
        model=MODEL, messages=MSG, max_tokens=4, temperature=0, logprobs=True, top_logprobs=3
    )
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens, r
    for t in content:
        assert t.logprob <= 0 and len(t.top_logprobs) == 3, t
        # greedy: the chosen token is the most likely one
        assert abs(t.top_logprobs[0].logprob - t.logprob) < 1e-4, t


@check("penalties, top_k, min_p and chat_template_kwargs are accepted")
def _():
    r = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Hi!"}]}],
        max_tokens=4,
        presence_penalty=0.5,
        frequency_penalty=0.5,
        extra_body={"top_k": 20, "min_p": 0.1, "repeat_penalty": 1.1, "chat_template_kwargs": {"enable_thinking": False}},
    )
    assert r.choices[0].message.content is not None


@check("a repeated conversation reuses its prefix (cached_tokens)")
def _():
    msgs = [
        {"role": "system", "content": "You are a terse assistant that answers in one line. " * 4},
        {"role": "user", "content": "Name a prime number."},
    ]
    client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=4, temperature=0)
    r = client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=4, temperature=0)
    assert r.usage.prompt_tokens_details.cached_tokens >= r.usage.prompt_tokens - 1 > 0, r.usage


@check("embeddings: L2-normalised vectors, one per input")
def _():
    r = client.embeddings.create(model=MODEL, input=["hello world", "a second text"])
    assert [d.index for d in r.data] == [0, 1]
    for d in r.data:
        n = sum(v * v for v in d.embedding) ** 0.5
        assert len(d.embedding) > 100 and abs(n - 1) < 1e-3, (len(d.embedding), n)
    assert r.usage.prompt_tokens > 0


@check("embeddings equal llama.cpp's (llama-embedding, same pooling) to cosine >= 0.99")
def _():
    import os

    g = json.load(open(os.path.join(os.path.dirname(__file__), "embeddings_llama_cpp.json")))
    for pooling, want in g["pooling"].items():
        if pooling != POOLING:
            continue
        r = client.embeddings.create(model=MODEL, input=g["texts"])
        for d, w in zip(r.data, want):
            cos = sum(a * b for a, b in zip(d.embedding, w)) / (
                sum(a * a for a in d.embedding) ** 0.5 * sum(b * b for b in w) ** 0.5
            )
            print(f"     {pooling} pooling, {g['texts'][d.index][:20]!r}: cosine {cos:.6f}")
            assert cos >= 0.99, cos


@check("400s: empty messages, unknown role, wrong type, bad numbers")
def _():
    for bad, param in [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"messages": MSG, "max_tokens": -5}, "max_tokens"),
        ({"messages": MSG, "temperature": -1}, "temperature"),
        ({"messages": MSG, "top_p": 7}, "top_p"),
        ({"messages": MSG, "n": 0}, "n"),
        ({"messages": MSG, "max_tokens": "ten"}, None),
    ]:
        try:
            client.chat.completions.create(model=MODEL, **bad)
        except openai.BadRequestError as e:
            body = e.body if isinstance(e.body, dict) else {}
            if param is not None:
                assert body.get("param") == param, (bad, body)
        else:
            raise AssertionError(f"accepted {bad}")


@check("404 for an unknown model; the file name is accepted")
def _():
    try:
        client.chat.completions.create(model="gpt-9", messages=MSG, max_tokens=1)
    except openai.NotFoundError as e:
        assert e.body["code"] == "model_not_found", e.body
    else:
        raise AssertionError("unknown model accepted")


@check("a prompt longer than the context is 400 context_length_exceeded")
def _():
    try:
        client.completions.create(model=MODEL, prompt="hello " * (N_CTX + 10), max_tokens=1)
    except openai.BadRequestError as e:
        assert e.body["code"] == "context_length_exceeded", e.body
    else:
        raise AssertionError("too long prompt accepted")


@check("401 without or with a wrong key; /health stays open")
def _():
    for h in [{}, {"Authorization": "Bearer wrong"}]:
        st, _, body = raw("GET", "/v1/models", headers=h, auth=False)
        error_of(st, body, 401)
    st, _, body = raw("GET", "/health", auth=False)
    assert st == 200 and json.loads(body)["status"] == "ok", (st, body)


@check("raw HTTP: malformed JSON, invalid UTF-8, 64 MB body, unknown route")
def _():
    st, _, body = raw("POST", "/v1/chat/completions", b'{"messages": [')
    error_of(st, body, 400)
    st, _, body = raw("POST", "/v1/chat/completions", b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}')
    error_of(st, body, 400)
    # A 64 MB body announced by Content-Length is refused from the header,
    # before the body is read (the client has sent only 1 MB of it).
    t = time.time()
    st, body = big_body(chunked=False)
    error_of(st, body, 413)
    # Sent chunked (no length up front): the server stops reading at its
    # limit and answers 413, or closes; either way within seconds, no hang.
    st, body = big_body(chunked=True)
    if st is not None:
        error_of(st, body, 413)
    assert time.time() - t < 30, time.time() - t
    st, _, body = raw("GET", "/v1/nothing-here")
    error_of(st, body, 404)


@check("/tokenize and /detokenize round trip")
def _():
    st, _, body = raw("POST", "/tokenize", json.dumps({"content": "Hello world"}).encode())
    assert st == 200, body
    toks = json.loads(body)["tokens"]
    assert len(toks) >= 2
    st, _, body = raw("POST", "/detokenize", json.dumps({"tokens": toks}).encode())
    assert st == 200 and json.loads(body)["content"] == "Hello world", body


@check("a client that disconnects mid-stream frees its slot")
def _():
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Write a very long story."}],
        max_tokens=2000,
        stream=True,
    )
    for i, _ in enumerate(stream):
        if i == 3:
            break
    stream.close()
    deadline = time.time() + 10
    while True:
        st, _, body = raw("GET", "/metrics")
        text = body.decode()
        gauges = {
            l.split()[0]: float(l.split()[1])
            for l in text.splitlines()
            if l.startswith(("shohin_active_slots", "shohin_kv_cells_used"))
        }
        if gauges.get("shohin_active_slots") == 0 and gauges.get("shohin_kv_cells_used") == 0:
            break
        assert time.time() < deadline, gauges
        time.sleep(0.1)


@check("/metrics is Prometheus text with the serving figures")
def _():
    st, h, body = raw("GET", "/metrics")
    assert st == 200, st
    text = body.decode()
    for name in [
        "shohin_requests_total",
        "shohin_prompt_tokens_total",
        "shohin_generated_tokens_total",
        "shohin_tokens_per_second",
        "shohin_queue_depth",
        "shohin_active_slots",
        "shohin_kv_cells_used",
        "shohin_time_to_first_token_seconds_bucket",
        "shohin_time_per_output_token_seconds_bucket",
    ]:
        assert name in text, name


failed = 0
for name, f in checks:
    t = time.time()
    try:
        f()
        print(f"ok   {name} ({time.time() - t:.1f} s)", flush=True)
    except Exception as e:  # report every check, then fail
        failed += 1
        print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
print(f"{len(checks) - failed} of {len(checks)} checks passed")
sys.exit(1 if failed else 0)
