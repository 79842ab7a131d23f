//! Tools in templates: the `tools` variable, assistant tool calls and `tool`
//! turns. Expected texts for the Qwen templates are the Python jinja2
//! renderings of `tests/data/expected.json` (cases with a `tools` array,
//! made by `tests/data/gen_expected.py`); here the same conversation is also
//! rendered with the template read from the real model file.

use shohin_chat::{ChatTemplate, Message, RenderOptions, ToolCall};

const QWEN25: &str = include_str!("data/qwen2.5.jinja");
const QWEN3: &str = include_str!("data/qwen3.jinja");
const EXPECTED_JSON: &str = include_str!("data/expected.json");

fn tools() -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_str(EXPECTED_JSON).unwrap();
    doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["tools"].is_array())
        .unwrap()["tools"]
        .clone()
}

fn expected(template: &str, conversation: &str, thinking: Option<bool>) -> String {
    let doc: serde_json::Value = serde_json::from_str(EXPECTED_JSON).unwrap();
    doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["template"] == template
                && c["conversation"] == conversation
                && c["tools"].is_array()
                && c["enable_thinking"].as_bool() == thinking
        })
        .unwrap_or_else(|| panic!("no case {template} {conversation}"))["expected"]
        .as_str()
        .unwrap()
        .to_string()
}

fn opts(tools: Option<serde_json::Value>, enable_thinking: Option<bool>) -> RenderOptions {
    RenderOptions {
        add_generation_prompt: true,
        enable_thinking,
        bos_token: "<|endoftext|>".into(),
        eos_token: "<|im_end|>".into(),
        tools,
    }
}

/// The `tool_call_roundtrip` conversation of gen_expected.py, built with the
/// public constructors.
fn roundtrip() -> Vec<Message> {
    vec![
        Message::new("system", "You are a weather bot."),
        Message::new("user", "Weather and time in Paris?"),
        Message::new("assistant", "").with_tool_calls(vec![
            ToolCall::function("call_1", "get_weather", r#"{"city": "Paris", "unit": "c"}"#),
            ToolCall::function("call_2", "get_time", r#"{"tz":"Europe/Paris"}"#),
        ]),
        Message::new("tool", r#"{"temp": 21}"#)
            .with_tool_call_id("call_1")
            .with_name("get_weather"),
        Message::new("tool", "14:05")
            .with_tool_call_id("call_2")
            .with_name("get_time"),
    ]
}

#[test]
fn qwen25_tool_roundtrip_matches_python() {
    let t = ChatTemplate::new(QWEN25).unwrap();
    let got = t.render(&roundtrip(), &opts(Some(tools()), None)).unwrap();
    assert_eq!(got, expected("qwen2.5.jinja", "tool_call_roundtrip", None));
    // Spot checks of what the template made of the values.
    assert!(got.contains("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"c\"}}\n</tool_call>"));
    assert!(got.contains("\"description\": \"Local time, e.g. \\\"14:05\\\" — ünïcode.\""));
}

#[test]
fn qwen3_tool_roundtrip_matches_python() {
    let t = ChatTemplate::new(QWEN3).unwrap();
    for thinking in [None, Some(false)] {
        let got = t
            .render(&roundtrip(), &opts(Some(tools()), thinking))
            .unwrap();
        assert_eq!(
            got,
            expected("qwen3.jinja", "tool_call_roundtrip", thinking),
            "{thinking:?}"
        );
    }
}

#[test]
fn qwen3_reasoning_content_is_rendered_in_think_block() {
    let t = ChatTemplate::new(QWEN3).unwrap();
    let msgs = [
        Message::new("user", "Time?"),
        Message::new("assistant", "")
            .with_reasoning_content("Need the clock.")
            .with_tool_calls(vec![ToolCall::function("c1", "get_time", "{}")]),
        Message::new("tool", "14:05").with_tool_call_id("c1"),
    ];
    let got = t.render(&msgs, &opts(Some(tools()), None)).unwrap();
    assert_eq!(
        got,
        expected("qwen3.jinja", "tool_call_reasoning_content", None)
    );
    assert!(got.contains(
        "<|im_start|>assistant\n<think>\nNeed the clock.\n</think>\n\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call><|im_end|>"
    ));
}

/// Arguments that are not JSON reach the template as a string: Qwen2.5 quotes
/// them with `tojson`, Qwen3 (`is string`) writes them raw.
#[test]
fn non_json_arguments_stay_a_string() {
    let msgs = [
        Message::new("user", "x"),
        Message::new("assistant", "")
            .with_tool_calls(vec![ToolCall::function("c1", "get_time", "not json")]),
        Message::new("tool", "?").with_tool_call_id("c1"),
    ];
    for (source, name, needle) in [
        (QWEN25, "qwen2.5.jinja", "\"arguments\": \"not json\"}"),
        (QWEN3, "qwen3.jinja", "\"arguments\": not json}"),
    ] {
        let got = ChatTemplate::new(source)
            .unwrap()
            .render(&msgs, &opts(Some(tools()), None))
            .unwrap();
        assert_eq!(got, expected(name, "tool_call_non_json_args", None));
        assert!(got.contains(needle), "{name}: {got}");
    }
}

/// Unset optional fields are undefined in the template (not `none`), and
/// `tools` is `none` without tools.
#[test]
fn unset_fields_are_undefined() {
    let t = ChatTemplate::new(
        "{% for m in messages %}{{ m.tool_calls is defined }},{{ m.tool_call_id is defined }},\
         {{ m.name is defined }},{{ m.reasoning_content is defined }};{% endfor %}\
         {{ tools is none }}",
    )
    .unwrap();
    let msgs = [
        Message::new("user", "u"),
        Message::new("tool", "r")
            .with_tool_call_id("c")
            .with_name("f")
            .with_reasoning_content("")
            .with_tool_calls(vec![]),
    ];
    assert_eq!(
        t.render(&msgs, &opts(None, None)).unwrap(),
        "False,False,False,False;True,True,True,True;True"
    );
    assert_eq!(
        t.render(&msgs[..1], &opts(Some(serde_json::json!([])), None))
            .unwrap(),
        "False,False,False,False;False"
    );
}

/// Tool call dicts look like OpenAI's, with parsed arguments.
#[test]
fn tool_call_shape_in_template() {
    let t = ChatTemplate::new(
        "{% for c in messages[0].tool_calls %}{{ c.id }}|{{ c.type }}|{{ c.function.name }}|\
         {{ c.function.arguments.b }}|{{ c.function.arguments | tojson }}{% endfor %}",
    )
    .unwrap();
    let msgs = [
        Message::new("assistant", "").with_tool_calls(vec![ToolCall::function(
            "id9",
            "f",
            r#"{"z": 1, "b": [true, null, 2.5]}"#,
        )]),
    ];
    assert_eq!(
        t.render(&msgs, &opts(None, None)).unwrap(),
        r#"id9|function|f|[True, None, 2.5]|{"z": 1, "b": [true, null, 2.5]}"#
    );
}

/// The template stored in the real model file is the vendored one, and it
/// renders the tool conversation as Python does.
#[test]
fn real_model_template_renders_tools() {
    let path = shohin_test_support::real_model();
    let file = shohin_gguf::GgufFile::open(&path).unwrap();
    let source = file.get_str("tokenizer.chat_template").unwrap();
    assert_eq!(source, QWEN25, "tests/data/qwen2.5.jinja is out of date");
    let got = ChatTemplate::new(source)
        .unwrap()
        .render(&roundtrip(), &opts(Some(tools()), None))
        .unwrap();
    assert_eq!(got, expected("qwen2.5.jinja", "tool_call_roundtrip", None));
}
