#!/usr/bin/env python3
"""Independent reference renderings for crates/chat tests.

Renders chat templates with Python jinja2 configured exactly as Hugging Face
transformers does in `_compile_jinja_template`
(transformers/utils/chat_template_utils.py):

    ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                  extensions=[AssistantTracker, loopcontrols])
    filters["tojson"]  = json.dumps(x, ensure_ascii=False, indent=..., ...)
    globals["raise_exception"] = raise TemplateError(message)
    globals["strftime_now"]    = datetime.now().strftime(fmt)

and called like `render_jinja_template`: messages, tools (None unless the
case has an OpenAI `tools` array), documents=None, add_generation_prompt,
bos/eos tokens, and enable_thinking only when given.

Messages are stored in expected.json in OpenAI form (a tool call's
`function.arguments` is a JSON *string*). Before rendering, `to_template_form`
replaces each `arguments` string that parses as JSON by the parsed object, as
llama.cpp does for templates that need object arguments and as transformers'
documentation shows tool calls (`"arguments": {...}` dicts); a string that does
not parse is passed unchanged. shohin_chat::Message does the same conversion.

Usage: python3 gen_expected.py > expected.json   (needs `pip install jinja2`)
"""

import json
import os
import sys
from datetime import datetime

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))


class AssistantTracker(Extension):
    """transformers' AssistantTracker outside training: `{% generation %}`
    renders its body unchanged (`_render_assistant` returns `caller()`)."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        call = self.call_method("_render_assistant")
        return nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _render_assistant(self, caller):
        return caller()


def compile_hf(source):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent,
                          separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[AssistantTracker, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(source)


def msg(role, content, **extra):
    m = {"role": role, "content": content}
    m.update(extra)
    return m


def call(id_, name, arguments):
    """An OpenAI tool call; `arguments` is the JSON text the API carries."""
    return {"id": id_, "type": "function",
            "function": {"name": name, "arguments": arguments}}


def to_template_form(messages):
    out = []
    for m in messages:
        m = dict(m)
        if "tool_calls" in m:
            calls = []
            for c in m["tool_calls"]:
                c = dict(c)
                f = dict(c["function"])
                try:
                    f["arguments"] = json.loads(f["arguments"])
                except ValueError:
                    pass
                c["function"] = f
                calls.append(c)
            m["tool_calls"] = calls
        out.append(m)
    return out


WEATHER_TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {"type": "object",
                       "properties": {"city": {"type": "string", "description": "City name"},
                                      "unit": {"type": "string", "enum": ["c", "f"]}},
                       "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "get_time",
        "description": "Local time, e.g. \"14:05\" — ünïcode.",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}},
]


CONVERSATIONS = {
    "user_only": [msg("user", "Write a haiku about autumn.")],
    "system_user": [msg("system", "You are a terse assistant."), msg("user", "Hi!")],
    "multi_turn": [
        msg("system", "Answer in French."),
        msg("user", "What is 2+2?"),
        msg("assistant", "4"),
        msg("user", "And 3+3?"),
    ],
    "assistant_last": [msg("user", "Hi"), msg("assistant", "Hello")],
    "assistant_with_think_history": [
        msg("user", "What is 2+2?"),
        msg("assistant", "<think>\nSimple sum: 2+2=4.\n</think>\n\nIt is 4."),
        msg("user", "Thanks! And 3+3?"),
    ],
    "assistant_with_think_last": [
        msg("user", "What is 2+2?"),
        msg("assistant", "<think>\nSimple sum.\n</think>\n\nIt is 4."),
    ],
    "mid_system": [
        msg("user", "a"),
        msg("system", "Now be brief."),
        msg("user", "b"),
    ],
    "tool_turns": [
        msg("user", "Weather in Paris?"),
        msg("assistant", "Let me check."),
        msg("tool", "{\"temp\": 21}"),
        msg("tool", "{\"sky\": \"clear\"}"),
    ],
    "unicode_and_braces": [
        msg("user", "Ünïcödé 日本語 🙂 {{ not a tag }} {% raw %}\n\ttabs\n"),
    ],
    "empty_content": [msg("user", "")],
    "tool_call_roundtrip": [
        msg("system", "You are a weather bot."),
        msg("user", "Weather and time in Paris?"),
        msg("assistant", "", tool_calls=[
            call("call_1", "get_weather", '{"city": "Paris", "unit": "c"}'),
            call("call_2", "get_time", '{"tz":"Europe/Paris"}'),
        ]),
        msg("tool", '{"temp": 21}', tool_call_id="call_1", name="get_weather"),
        msg("tool", "14:05", tool_call_id="call_2", name="get_time"),
    ],
    "tool_call_with_text": [
        msg("user", "Weather in Zürich?"),
        msg("assistant", "Let me check.", tool_calls=[
            call("c1", "get_weather", '{"city": "Zürich"}'),
        ]),
        msg("tool", "sunny", tool_call_id="c1"),
        msg("assistant", "It is sunny."),
        msg("user", "Thanks"),
    ],
    "tool_call_non_json_args": [
        msg("user", "x"),
        msg("assistant", "", tool_calls=[call("c1", "get_time", "not json")]),
        msg("tool", "?", tool_call_id="c1"),
    ],
    "tool_call_reasoning_content": [
        msg("user", "Time?"),
        msg("assistant", "", reasoning_content="Need the clock.",
            tool_calls=[call("c1", "get_time", "{}")]),
        msg("tool", "14:05", tool_call_id="c1"),
    ],
}

CASES = [
    # (template file, conversation, add_generation_prompt, enable_thinking)
    ("qwen2.5.jinja", "user_only", True, None),
    ("qwen2.5.jinja", "user_only", False, None),
    ("qwen2.5.jinja", "system_user", True, None),
    ("qwen2.5.jinja", "multi_turn", True, None),
    ("qwen2.5.jinja", "assistant_last", False, None),
    ("qwen2.5.jinja", "mid_system", True, None),
    ("qwen2.5.jinja", "tool_turns", True, None),
    ("qwen2.5.jinja", "unicode_and_braces", True, None),
    ("qwen2.5.jinja", "empty_content", True, None),
    ("qwen3.jinja", "user_only", True, None),
    ("qwen3.jinja", "user_only", True, False),
    ("qwen3.jinja", "user_only", True, True),
    ("qwen3.jinja", "user_only", False, False),
    ("qwen3.jinja", "system_user", True, False),
    ("qwen3.jinja", "multi_turn", True, None),
    ("qwen3.jinja", "multi_turn", True, False),
    ("qwen3.jinja", "assistant_last", False, None),
    ("qwen3.jinja", "assistant_with_think_history", True, None),
    ("qwen3.jinja", "assistant_with_think_history", True, False),
    ("qwen3.jinja", "assistant_with_think_last", False, None),
    ("qwen3.jinja", "mid_system", True, None),
    ("qwen3.jinja", "tool_turns", True, None),
    ("qwen3.jinja", "unicode_and_braces", True, True),
    ("qwen3.jinja", "empty_content", True, None),
]

# (template, conversation, add_generation_prompt, enable_thinking), rendered
# with tools=WEATHER_TOOLS.
TOOL_CASES = [
    ("qwen2.5.jinja", "user_only", True, None),
    ("qwen2.5.jinja", "tool_call_roundtrip", True, None),
    ("qwen2.5.jinja", "tool_call_with_text", True, None),
    ("qwen2.5.jinja", "tool_call_non_json_args", True, None),
    ("qwen3.jinja", "user_only", True, None),
    ("qwen3.jinja", "tool_call_roundtrip", True, None),
    ("qwen3.jinja", "tool_call_roundtrip", True, False),
    ("qwen3.jinja", "tool_call_with_text", True, None),
    ("qwen3.jinja", "tool_call_non_json_args", True, None),
    ("qwen3.jinja", "tool_call_reasoning_content", True, None),
]

BOS = "<|endoftext|>"
EOS = "<|im_end|>"


def main():
    out = []
    cases = [c + (None,) for c in CASES] + [c + (WEATHER_TOOLS,) for c in TOOL_CASES]
    for template, conv, agp, thinking, tools in cases:
        with open(os.path.join(HERE, template), encoding="utf-8") as f:
            compiled = compile_hf(f.read())
        kwargs = dict(messages=to_template_form(CONVERSATIONS[conv]), tools=tools,
                      documents=None,
                      add_generation_prompt=agp, bos_token=BOS, eos_token=EOS)
        if thinking is not None:
            kwargs["enable_thinking"] = thinking
        out.append({
            "template": template,
            "conversation": conv,
            "messages": CONVERSATIONS[conv],
            "tools": tools,
            "add_generation_prompt": agp,
            "enable_thinking": thinking,
            "bos_token": BOS,
            "eos_token": EOS,
            "expected": compiled.render(**kwargs),
        })
    json.dump({"jinja2_version": jinja2.__version__, "cases": out}, sys.stdout,
              ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
