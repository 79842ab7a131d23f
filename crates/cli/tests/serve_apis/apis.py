"""`shohin serve`'s Responses and Anthropic Messages endpoints, driven by the
official `openai` and `anthropic` clients.

Run by crates/cli/tests/serve_apis.rs against the real binary on 127.0.0.1:
    python apis.py BASE_URL API_KEY
Every check asserts; the script exits non-zero on the first failure.
"""

import json
import sys
import time

import anthropic
import openai
from anthropic import Anthropic
from openai import OpenAI

BASE, KEY = sys.argv[1], sys.argv[2]
oa = OpenAI(base_url=BASE + "/v1", api_key=KEY, max_retries=0, timeout=120)
# The Anthropic client sends the key as `x-api-key`.
an = Anthropic(base_url=BASE, api_key=KEY, max_retries=0, timeout=120)
MODEL = oa.models.list().data[0].id
checks = []


def check(f):
    checks.append(f)
    return f


WEATHER_PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 40}},
    "required": ["city"],
    "additionalProperties": False,
}
WEATHER = "22 degrees Celsius and sunny"


# --- OpenAI Responses -------------------------------------------------------


@check
def responses_string_input():
    r = oa.responses.create(
        model=MODEL,
        input="What is 2+2? Answer with the number only.",
        max_output_tokens=16,
        temperature=0,
    )
    assert r.object == "response" and r.id.startswith("resp_"), r
    assert r.status == "completed", r
    assert "4" in r.output_text, r.output_text
    assert r.output[-1].type == "message" and r.output[-1].role == "assistant", r.output
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0, r.usage
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    return r.output_text


@check
def responses_items_with_instructions():
    r = oa.responses.create(
        model=MODEL,
        instructions="You answer with a single word.",
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "What is the capital of France?"}]},
        ],
        max_output_tokens=16,
        temperature=0,
    )
    assert r.status == "completed", r
    assert "paris" in r.output_text.lower(), r.output_text
    assert r.instructions == "You answer with a single word.", r.instructions
    return r.output_text


@check
def responses_max_output_tokens_is_incomplete():
    r = oa.responses.create(model=MODEL, input="Write a long poem about the sea.", max_output_tokens=4)
    assert r.status == "incomplete", r
    assert r.incomplete_details.reason == "max_output_tokens", r.incomplete_details
    assert r.usage.output_tokens == 4, r.usage


@check
def responses_forced_function_call_round_trip():
    tools = [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Get the current weather of a city",
            "parameters": WEATHER_PARAMS,
            "strict": True,
        }
    ]
    history = [{"role": "user", "content": "What is the weather like in Paris right now?"}]
    r = oa.responses.create(
        model=MODEL,
        input=history,
        tools=tools,
        tool_choice={"type": "function", "name": "get_weather"},
        parallel_tool_calls=False,
        max_output_tokens=100,
        temperature=0,
    )
    calls = [o for o in r.output if o.type == "function_call"]
    assert len(calls) == 1, r.output
    c = calls[0]
    assert c.name == "get_weather" and c.call_id and c.id.startswith("fc_"), c
    args = json.loads(c.arguments)
    assert isinstance(args["city"], str), args
    history += r.output
    history.append({"type": "function_call_output", "call_id": c.call_id, "output": WEATHER})
    # The small test model keeps calling when it may: the answer is asked
    # for with tool_choice none (the tools are then not rendered).
    r2 = oa.responses.create(
        model=MODEL, input=history, tools=tools, tool_choice="none", max_output_tokens=60, temperature=0
    )
    assert r2.status == "completed", r2
    text = r2.output_text
    assert "22" in text or "sunny" in text.lower(), text
    return f"{c.arguments} -> {text!r}"


@check
def responses_json_schema_text_format():
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    r = oa.responses.create(
        model=MODEL,
        input="What is 3+4? Reply in JSON.",
        text={"format": {"type": "json_schema", "name": "sum", "schema": schema, "strict": True}},
        max_output_tokens=40,
        temperature=0,
    )
    v = json.loads(r.output_text)
    assert v["answer"] == 7, v
    return r.output_text


@check
def responses_stream_helper():
    types, deltas = [], []
    with oa.responses.stream(
        model=MODEL, input="Name three colors.", max_output_tokens=40, temperature=0
    ) as s:
        for ev in s:
            types.append(ev.type)
            if ev.type == "response.output_text.delta":
                deltas.append(ev.delta)
        final = s.get_final_response()
    assert types[:2] == ["response.created", "response.in_progress"], types
    assert types[-1] == "response.completed", types
    order = [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]
    at = [types.index(t) for t in order]
    assert at == sorted(at), types
    assert final.status == "completed" and final.output_text == "".join(deltas), (final, deltas)
    return final.output_text


@check
def responses_create_stream_true_with_a_forced_call():
    events = list(
        oa.responses.create(
            model=MODEL,
            input="Weather in Berlin?",
            tools=[{"type": "function", "name": "get_weather", "parameters": WEATHER_PARAMS}],
            tool_choice="required",
            parallel_tool_calls=False,
            max_output_tokens=100,
            temperature=0,
            stream=True,
        )
    )
    seqs = [e.sequence_number for e in events]
    assert seqs == list(range(len(events))), seqs
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1 and done[0].arguments == args, (done, args)
    assert isinstance(json.loads(args)["city"], str), args
    final = events[-1]
    assert final.type == "response.completed", final
    assert final.response.output[-1].type == "function_call", final.response.output
    return args


@check
def responses_errors_name_the_param():
    try:
        oa.responses.create(model=MODEL, input="x", previous_response_id="resp_123")
        raise AssertionError("no error")
    except openai.BadRequestError as e:
        assert e.status_code == 400 and e.param == "previous_response_id", (e.status_code, e.body)
    try:
        oa.responses.create(model=MODEL, input="x", max_output_tokens=0)
        raise AssertionError("no error")
    except openai.BadRequestError as e:
        assert e.param == "max_output_tokens", e.body


# --- Anthropic Messages -----------------------------------------------------

# anthropic 2.x has no sampling arguments; they go in the body as extras.
GREEDY = {"temperature": 0}


@check
def anthropic_create():
    m = an.messages.create(
        model=MODEL,
        max_tokens=16,
        messages=[{"role": "user", "content": "What is 2+2? Answer with the number only."}],
        extra_body=GREEDY,
    )
    assert m.type == "message" and m.role == "assistant" and m.id.startswith("msg_"), m
    assert m.stop_reason == "end_turn", m
    assert m.content[0].type == "text" and "4" in m.content[0].text, m.content
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0, m.usage
    return m.content[0].text


@check
def anthropic_system_and_stop_sequence():
    m = an.messages.create(
        model=MODEL,
        max_tokens=60,
        system=[{"type": "text", "text": "You count numbers, separated by spaces."}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "Count from 1 to 10."}]}],
        stop_sequences=["5"],
        extra_body=GREEDY,
    )
    assert m.stop_reason == "stop_sequence" and m.stop_sequence == "5", m
    assert "5" not in m.content[0].text and "4" in m.content[0].text, m.content
    return m.content[0].text


@check
def anthropic_stream_helper():
    with an.messages.stream(
        model=MODEL,
        max_tokens=40,
        system="Be brief.",
        messages=[{"role": "user", "content": "Name three colors."}],
        extra_body=GREEDY,
    ) as s:
        texts = list(s.text_stream)
        final = s.get_final_message()
    assert "".join(texts) == final.content[0].text, (texts, final)
    assert final.stop_reason in ("end_turn", "max_tokens"), final
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0, final.usage
    return final.content[0].text


@check
def anthropic_forced_tool_use_round_trip():
    tools = [
        {"name": "get_weather", "description": "Get the current weather of a city", "input_schema": WEATHER_PARAMS}
    ]
    messages = [{"role": "user", "content": "What is the weather like in Paris right now?"}]
    m = an.messages.create(
        model=MODEL,
        max_tokens=100,
        tools=tools,
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        messages=messages,
        extra_body=GREEDY,
    )
    assert m.stop_reason == "tool_use", m
    uses = [b for b in m.content if b.type == "tool_use"]
    assert len(uses) == 1, m.content
    u = uses[0]
    assert u.id.startswith("toolu_") and u.name == "get_weather", u
    assert isinstance(u.input["city"], str), u.input
    messages += [
        {"role": "assistant", "content": m.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": u.id, "content": WEATHER}]},
    ]
    # The small test model keeps calling when it may: the answer is asked
    # for with tool_choice none (the tools are then not rendered).
    m2 = an.messages.create(
        model=MODEL, max_tokens=60, tools=tools, tool_choice={"type": "none"}, messages=messages, extra_body=GREEDY
    )
    assert m2.stop_reason == "end_turn", m2
    text = "".join(b.text for b in m2.content if b.type == "text")
    assert "22" in text or "sunny" in text.lower(), text
    return f"{u.input} -> {text!r}"


@check
def anthropic_streamed_tool_use():
    with an.messages.stream(
        model=MODEL,
        max_tokens=100,
        tools=[{"name": "get_weather", "input_schema": WEATHER_PARAMS}],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        messages=[{"role": "user", "content": "Weather in Rome?"}],
    ) as s:
        final = s.get_final_message()
    assert final.stop_reason == "tool_use", final
    u = [b for b in final.content if b.type == "tool_use"][0]
    assert isinstance(u.input["city"], str), u
    return u.input


@check
def anthropic_errors_and_auth():
    try:
        an.messages.create(model=MODEL, max_tokens=10, messages=[])
        raise AssertionError("no error")
    except anthropic.BadRequestError as e:
        assert e.status_code == 400, e
        assert e.body["type"] == "error", e.body
        assert e.body["error"]["type"] == "invalid_request_error", e.body
        assert "messages" in e.body["error"]["message"], e.body
    bad = Anthropic(base_url=BASE, api_key="wrong", max_retries=0, timeout=30)
    try:
        bad.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
        raise AssertionError("no error")
    except anthropic.AuthenticationError as e:
        assert e.status_code == 401 and e.body["error"]["type"] == "authentication_error", e.body
    # A Bearer token works on /v1/messages too.
    bearer = Anthropic(base_url=BASE, auth_token=KEY, max_retries=0, timeout=60)
    m = bearer.messages.create(model=MODEL, max_tokens=2, messages=[{"role": "user", "content": "hi"}])
    assert m.usage.output_tokens > 0, m


failed = 0
for f in checks:
    t = time.time()
    try:
        note = f()
        print(f"ok   {f.__name__} ({time.time() - t:.1f} s){'' if note is None else ': ' + str(note)[:160]}")
    except Exception as e:  # noqa: BLE001
        failed += 1
        print(f"FAIL {f.__name__} ({time.time() - t:.1f} s): {type(e).__name__}: {str(e)[:2000]}")
print(f"{len(checks) - failed}/{len(checks)} checks passed")
sys.exit(1 if failed else 0)
