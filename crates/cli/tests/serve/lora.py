"""Per-request LoRA adapters in `shohin serve`, with the official `openai`
client (llama-server's `lora` field sent as `extra_body`).

Run by crates/cli/tests/serve_lora.rs against the real binary, started with
one adapter and --lora-init-without-apply:
    python lora.py BASE_URL PROMPT MAX_TOKENS
Prints {"base", "lora", "default"} (greedy completions) as JSON; every
other check asserts.
"""

import http.client
import json
import sys
import urllib.parse

import openai
from openai import OpenAI

BASE, PROMPT, MAX = sys.argv[1], sys.argv[2], int(sys.argv[3])
URL = urllib.parse.urlparse(BASE)
client = OpenAI(base_url=BASE + "/v1", api_key="none", max_retries=0, timeout=120)


def raw(method, path, body=None):
    c = http.client.HTTPConnection(URL.hostname, URL.port, timeout=60)
    c.request(method, path, body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    return r.status, json.loads(r.read())


def complete(lora=None):
    extra = {} if lora is None else {"lora": lora}
    r = client.completions.create(
        model="tiny",
        prompt=PROMPT,
        max_tokens=MAX,
        temperature=0,
        extra_body=extra,
    )
    return r.choices[0].text


# --lora-init-without-apply: loaded at scale 0.
status, adapters = raw("GET", "/lora-adapters")
assert status == 200 and len(adapters) == 1, adapters
assert adapters[0]["id"] == 0 and adapters[0]["scale"] == 0, adapters

out = {
    "base": complete([{"id": 0, "scale": 0.0}]),
    "lora": complete([{"id": 0, "scale": 1.0}]),
    "default": complete(),
}
assert out["lora"] != out["base"], out
assert out["default"] == out["base"], out

# The chat endpoint takes the field too; a bad id is a 400 naming it.
chat = client.chat.completions.create(
    model="tiny",
    messages=[{"role": "user", "content": PROMPT}],
    max_tokens=4,
    temperature=0,
    extra_body={"lora": [{"id": 0, "scale": 0.5}]},
)
assert chat.choices[0].message is not None
try:
    complete([{"id": 3, "scale": 1.0}])
    raise AssertionError("id 3 was accepted")
except openai.BadRequestError as e:
    assert e.status_code == 400 and e.body["param"] == "lora[0].id", e.body

# POST /lora-adapters makes scale 1 the default for requests without `lora`.
status, body = raw("POST", "/lora-adapters", json.dumps([{"id": 0, "scale": 1.0}]))
assert status == 200 and body == {"success": True}, body
status, adapters = raw("GET", "/lora-adapters")
assert adapters[0]["scale"] == 1.0, adapters
assert complete() == out["lora"]
# ... and a request's own list still wins (unlisted adapters: scale 0).
assert complete([{"id": 0, "scale": 0}]) == out["base"]

print(json.dumps(out))
