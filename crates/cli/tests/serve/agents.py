"""What apps and agents need from `shohin serve`, with the official `openai`
client against the real binary and model: JSON schemas enforced at
temperature 1.0 (checked by the `jsonschema` package, not by shohin),
tool calls (required, named, parallel or not, streamed and whole, a full
round trip), GBNF grammars, reasoning split from the answer.

Run by crates/cli/tests/serve_e2e.rs:  python agents.py BASE_URL API_KEY
Every check asserts; the script exits non-zero if any failed.
"""

import concurrent.futures
import json
import sys
import time

import jsonschema
import openai
from openai import OpenAI

BASE, KEY = sys.argv[1], sys.argv[2]
client = OpenAI(base_url=BASE + "/v1", api_key=KEY, max_retries=0, timeout=300)
MODEL = client.models.list().data[0].id
checks = []


def check(name):
    def wrap(f):
        checks.append((name, f))
        return f

    return wrap


PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "role": {"enum": ["admin", "user", "guest"]},
        "tags": {
            "type": "array",
            "items": {"type": "string", "maxLength": 12},
            "minItems": 1,
            "maxItems": 3,
        },
        "address": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 24},
                "zip": {"type": "integer", "minimum": 10000, "maximum": 99999},
            },
            "required": ["city", "zip"],
            "additionalProperties": False,
        },
    },
    "required": ["name", "age", "role", "tags", "address"],
    "additionalProperties": False,
}

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 30},
                "unit": {"enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a timezone",
        "parameters": {
            "type": "object",
            "properties": {"tz": {"type": "string", "maxLength": 30}},
            "required": ["tz"],
            "additionalProperties": False,
        },
    },
}
PARAMS = {t["function"]["name"]: t["function"]["parameters"] for t in [WEATHER, TIME]}


def person(i, stream):
    kw = dict(
        model=MODEL,
        messages=[{"role": "user", "content": "Invent a person and describe them."}],
        temperature=1.0,
        seed=1000 + i,
        max_tokens=300,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": PERSON, "strict": True},
        },
    )
    if not stream:
        r = client.chat.completions.create(**kw)
        return r.choices[0].message.content, r.choices[0].finish_reason
    text, finish = "", None
    for c in client.chat.completions.create(stream=True, **kw):
        if c.choices:
            text += c.choices[0].delta.content or ""
            finish = c.choices[0].finish_reason or finish
    return text, finish


@check("json_schema: 20 requests at temperature 1.0 all validate (jsonschema)")
def _():
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        outs = list(ex.map(lambda i: person(i, i % 2 == 1), range(20)))
    distinct = set()
    for text, finish in outs:
        assert finish == "stop", (finish, text)
        v = json.loads(text)
        jsonschema.validate(v, PERSON)
        distinct.add(text)
    # Temperature 1.0 really samples: the outputs differ.
    assert len(distinct) >= 10, distinct


@check("json_object and the llama.cpp json_schema / grammar fields")
def _():
    r = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "List two fruits as JSON."}],
        temperature=1.0,
        max_tokens=200,
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(r.choices[0].message.content), dict)
    schema = {"type": "array", "items": {"type": "integer"}, "minItems": 3, "maxItems": 3}
    r = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Three numbers"}],
        temperature=1.0,
        max_tokens=60,
        extra_body={"json_schema": schema},
    )
    jsonschema.validate(json.loads(r.choices[0].message.content), schema)
    r = client.completions.create(
        model=MODEL,
        prompt="Is water wet? Answer:",
        temperature=1.0,
        max_tokens=10,
        extra_body={"grammar": 'root ::= " " ("yes" | "no") "."'},
    )
    assert r.choices[0].text in (" yes.", " no."), r.choices[0].text


@check("a schema feature that cannot be enforced is 400 naming it")
def _():
    try:
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "x"}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "n", "schema": {"type": "object", "if": {"type": "object"}}},
            },
        )
        raise AssertionError("accepted")
    except openai.BadRequestError as e:
        assert e.status_code == 400
        err = e.body
        assert err["param"] == "response_format.json_schema.schema", err
        assert "if" in err["message"], err


def call(tool_choice, stream, seed, parallel=None, tools=(WEATHER, TIME)):
    kw = dict(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the weather and the time in Paris and in Tokyo?"}],
        tools=list(tools),
        tool_choice=tool_choice,
        temperature=1.0,
        seed=seed,
        max_tokens=400,
    )
    if parallel is not None:
        kw["parallel_tool_calls"] = parallel
    if not stream:
        r = client.chat.completions.create(**kw)
        m = r.choices[0].message
        calls = [(c.id, c.function.name, c.function.arguments) for c in (m.tool_calls or [])]
        return calls, m.content, r.choices[0].finish_reason
    calls, content, finish = {}, "", None
    for c in client.chat.completions.create(stream=True, **kw):
        if not c.choices:
            continue
        d = c.choices[0].delta
        content += d.content or ""
        for tc in d.tool_calls or []:
            cur = calls.setdefault(tc.index, ["", "", ""])
            if tc.id:
                assert not cur[0], "a call's id came twice"
                cur[0] = tc.id
            if tc.function and tc.function.name:
                cur[1] += tc.function.name
            if tc.function and tc.function.arguments:
                cur[2] += tc.function.arguments
        finish = c.choices[0].finish_reason or finish
    return [tuple(calls[i]) for i in sorted(calls)], content or None, finish


def valid_calls(calls, names):
    assert calls, "no tool call"
    for cid, name, args in calls:
        assert cid.startswith("call_"), cid
        assert name in names, name
        jsonschema.validate(json.loads(args), PARAMS[name])


@check("tool_choice required / named: always valid calls, streamed or not")
def _():
    named = {"type": "function", "function": {"name": "get_time"}}
    cases = [(c, stream, seed) for seed in range(4) for stream in (False, True) for c in ("required", named)]
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        outs = list(ex.map(lambda a: call(*a), cases))
    for (choice, _, _), (calls, content, finish) in zip(cases, outs):
        if choice == "required":
            valid_calls(calls, {"get_weather", "get_time"})
        else:
            valid_calls(calls, {"get_time"})
            assert len(calls) == 1, calls  # a named function is called once
        assert finish == "tool_calls", finish
        assert not content, content


@check("streamed tool-call deltas assemble into the non-streamed call")
def _():
    a = call("required", False, 7)
    b = call("required", True, 7)
    # Same seed, same text: same names and arguments (ids are fresh).
    assert [c[1:] for c in a[0]] == [c[1:] for c in b[0]], (a, b)


@check("parallel_tool_calls false gives exactly one call")
def _():
    for seed in range(3):
        calls, _, _ = call("required", False, seed, parallel=False)
        assert len(calls) == 1, calls


@check("round trip: call -> tool result -> answer")
def _():
    q = [{"role": "user", "content": "What is the weather in Paris? Use celsius."}]
    r = client.chat.completions.create(
        model=MODEL, messages=q, tools=[WEATHER], tool_choice="required", temperature=0, max_tokens=200
    )
    m = r.choices[0].message
    assert m.tool_calls and m.tool_calls[0].function.name == "get_weather"
    tc = m.tool_calls[0]
    q.append({"role": "assistant", "content": None, "tool_calls": [tc.model_dump()]})
    q.append({"role": "tool", "tool_call_id": tc.id, "content": json.dumps({"temp": 21, "sky": "sunny"})})
    r = client.chat.completions.create(
        model=MODEL, messages=q, tools=[WEATHER], temperature=0, max_tokens=120
    )
    m = r.choices[0].message
    assert r.choices[0].finish_reason == "stop", r
    assert m.content and not m.tool_calls, m
    assert "21" in m.content or "sunny" in m.content.lower(), m.content


@check("tool_choice none: no tools rendered, no calls")
def _():
    calls, content, finish = call("none", False, 1)
    assert not calls and content and finish in ("stop", "length"), (calls, content, finish)


THINK = 'root ::= "<think>\\n" [a-z ]{8,40} "\\n</think>\\n\\n" [A-Za-z ]{4,40} "."'


@check("reasoning: <think> goes to reasoning_content, streamed and whole")
def _():
    kw = dict(
        model=MODEL,
        messages=[{"role": "user", "content": "Think, then answer: what colour is the sky?"}],
        temperature=1.0,
        seed=3,
        max_tokens=100,
        extra_body={"grammar": THINK},
    )
    m = client.chat.completions.create(**kw).choices[0].message
    reasoning = m.model_extra.get("reasoning_content")
    assert reasoning and "<think>" not in reasoning and "</think>" not in reasoning, m
    assert m.content and "<" not in m.content and m.content.endswith("."), m
    r_stream, c_stream = "", ""
    for c in client.chat.completions.create(stream=True, **kw):
        if c.choices:
            d = c.choices[0].delta
            r_stream += (d.model_extra or {}).get("reasoning_content") or ""
            c_stream += d.content or ""
    assert (r_stream, c_stream) == (reasoning, m.content), (r_stream, c_stream, m)


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
