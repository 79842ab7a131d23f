//! Chat templates rendered like Hugging Face transformers.
//!
//! Expected strings come from outside this crate: the documented outputs of
//! the templates (ChatML, Qwen's default system prompt, Qwen3's empty think
//! block) written out literally, and `tests/data/expected.json`, produced by
//! `tests/data/gen_expected.py` with Python jinja2 configured as transformers'
//! `_compile_jinja_template`.
//!
//! `tests/data/qwen2.5.jinja` is `tokenizer.chat_template` of
//! qwen2.5-coder-0.5b-instruct-q4km.gguf (extracted with gguf-py);
//! `tests/data/qwen3.jinja` is Qwen/Qwen3-0.6B's template as vendored by
//! llama.cpp (`models/templates/Qwen-Qwen3-0.6B.jinja`).

use shohin_chat::{ChatError, ChatTemplate, Message, RenderOptions, ToolCall};

const QWEN25: &str = include_str!("data/qwen2.5.jinja");
const QWEN3: &str = include_str!("data/qwen3.jinja");
const EXPECTED_JSON: &str = include_str!("data/expected.json");

fn opts(add_generation_prompt: bool, enable_thinking: Option<bool>) -> RenderOptions {
    RenderOptions {
        add_generation_prompt,
        enable_thinking,
        bos_token: "<|endoftext|>".into(),
        eos_token: "<|im_end|>".into(),
        tools: None,
    }
}

/// A message of expected.json (OpenAI form: arguments are JSON text).
fn message_from_json(v: &serde_json::Value) -> Message {
    let s = |key: &str| v.get(key).and_then(|x| x.as_str()).map(str::to_string);
    let mut msg = m(v["role"].as_str().unwrap(), v["content"].as_str().unwrap());
    msg.tool_call_id = s("tool_call_id");
    msg.name = s("name");
    msg.reasoning_content = s("reasoning_content");
    msg.tool_calls = v.get("tool_calls").map(|calls| {
        calls
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                assert_eq!(c["type"], "function");
                ToolCall::function(
                    c["id"].as_str().unwrap(),
                    c["function"]["name"].as_str().unwrap(),
                    c["function"]["arguments"].as_str().unwrap(),
                )
            })
            .collect()
    });
    let known = [
        "role",
        "content",
        "tool_call_id",
        "name",
        "reasoning_content",
        "tool_calls",
    ];
    for key in v.as_object().unwrap().keys() {
        assert!(known.contains(&key.as_str()), "unhandled message key {key}");
    }
    msg
}

fn m(role: &str, content: &str) -> Message {
    Message::new(role, content)
}

#[test]
fn qwen25_default_system_prompt() {
    let t = ChatTemplate::new(QWEN25).unwrap();
    let got = t
        .render(
            &[m("user", "Write a haiku about autumn.")],
            &opts(true, None),
        )
        .unwrap();
    assert_eq!(
        got,
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n\
         <|im_start|>user\nWrite a haiku about autumn.<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn qwen25_explicit_system_replaces_default() {
    let t = ChatTemplate::new(QWEN25).unwrap();
    let got = t
        .render(
            &[m("system", "Be brief."), m("user", "Hi")],
            &opts(false, None),
        )
        .unwrap();
    assert_eq!(
        got,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    );
}

#[test]
fn qwen3_enable_thinking_false_appends_empty_think() {
    let t = ChatTemplate::new(QWEN3).unwrap();
    let msgs = [m("user", "Hi")];
    let off = t.render(&msgs, &opts(true, Some(false))).unwrap();
    assert_eq!(
        off,
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    );
    // Qwen3 docs: enable_thinking defaults to true; true and undefined both
    // leave the think block to the model.
    let on = t.render(&msgs, &opts(true, Some(true))).unwrap();
    let unset = t.render(&msgs, &opts(true, None)).unwrap();
    assert_eq!(
        on,
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(unset, on);
}

#[test]
fn qwen3_multi_turn_strips_history_thinking() {
    let t = ChatTemplate::new(QWEN3).unwrap();
    let msgs = [
        m("system", "S"),
        m("user", "Q1"),
        m("assistant", "<think>\nreasoning\n</think>\n\nA1"),
        m("user", "Q2"),
    ];
    let got = t.render(&msgs, &opts(true, None)).unwrap();
    assert_eq!(
        got,
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n\
         <|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n"
    );
}

/// Every case of expected.json (rendered by Python jinja2 with HF settings).
#[test]
fn matches_python_jinja2_reference() {
    let doc: serde_json::Value = serde_json::from_str(EXPECTED_JSON).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 34, "reference file lost its cases");
    let with_tools = cases.iter().filter(|c| c["tools"].is_array()).count();
    assert!(with_tools >= 10, "reference file lost its tool cases");
    for case in cases {
        let source = match case["template"].as_str().unwrap() {
            "qwen2.5.jinja" => QWEN25,
            "qwen3.jinja" => QWEN3,
            other => panic!("unknown template {other}"),
        };
        let msgs: Vec<Message> = case["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(message_from_json)
            .collect();
        let o = RenderOptions {
            add_generation_prompt: case["add_generation_prompt"].as_bool().unwrap(),
            enable_thinking: case["enable_thinking"].as_bool(),
            bos_token: case["bos_token"].as_str().unwrap().into(),
            eos_token: case["eos_token"].as_str().unwrap().into(),
            tools: case["tools"].as_array().map(|_| case["tools"].clone()),
        };
        let got = ChatTemplate::new(source)
            .unwrap()
            .render(&msgs, &o)
            .unwrap();
        assert_eq!(
            got,
            case["expected"].as_str().unwrap(),
            "template {} conversation {} agp {} thinking {:?} tools {}",
            case["template"],
            case["conversation"],
            o.add_generation_prompt,
            o.enable_thinking,
            o.tools.is_some()
        );
    }
}

#[test]
fn chatml_fallback() {
    let t = ChatTemplate::chatml();
    let msgs = [m("system", "S"), m("user", "U"), m("assistant", "A")];
    assert_eq!(
        t.render(&msgs, &opts(false, None)).unwrap(),
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n"
    );
    assert_eq!(
        t.render(&msgs[1..2], &opts(true, None)).unwrap(),
        "<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn syntax_error_reports_line() {
    let err = ChatTemplate::new("line one\n{% if x %}\n{{ y }\n{% endif %}").unwrap_err();
    match &err {
        ChatError::Syntax { line, reason } => {
            assert_eq!(*line, 3, "{err}");
            assert!(!reason.is_empty());
        }
        other => panic!("expected syntax error, got {other:?}"),
    }
    assert!(matches!(
        ChatTemplate::new("{% for m in messages %}"),
        Err(ChatError::Syntax { .. })
    ));
}

#[test]
fn raise_exception_surfaces_message() {
    let t = ChatTemplate::new(
        "{% if messages[0].role != 'user' %}{{ raise_exception('x: roles must start with user') }}{% endif %}ok",
    )
    .unwrap();
    let err = t
        .render(&[m("system", "s")], &opts(false, None))
        .unwrap_err();
    match &err {
        ChatError::Raised { message, line } => {
            assert_eq!(message, "x: roles must start with user");
            assert_eq!(*line, 1);
        }
        other => panic!("expected Raised, got {other:?}"),
    }
    assert!(err.to_string().contains("x: roles must start with user"));
    assert_eq!(
        t.render(&[m("user", "u")], &opts(false, None)).unwrap(),
        "ok"
    );
}

#[test]
fn render_errors_are_errors_not_panics() {
    let t = ChatTemplate::new("{{ messages[0].content.no_such_method() }}").unwrap();
    assert!(matches!(
        t.render(&[m("user", "u")], &opts(false, None)),
        Err(ChatError::Render { .. })
    ));
    // Attribute access on an undefined value fails, as with jinja2's Undefined.
    let t = ChatTemplate::new("{{ nothing.attr }}").unwrap();
    assert!(t.render(&[], &opts(false, None)).is_err());
    // Indexing past the end is undefined (prints nothing), as in jinja2.
    let t = ChatTemplate::new("[{{ messages[5] }}]").unwrap();
    assert_eq!(t.render(&[], &opts(false, None)).unwrap(), "[]");
}

#[test]
fn runaway_template_is_stopped() {
    let t = ChatTemplate::new(
        "{% for a in range(10000) %}{% for b in range(10000) %}{% for c in range(10000) %}{% endfor %}{% endfor %}{% endfor %}",
    )
    .unwrap();
    let err = t.render(&[], &opts(false, None)).unwrap_err();
    assert!(matches!(err, ChatError::Render { .. }), "{err:?}");
}

/// jinja2 raises UndefinedError for Qwen3 with no messages (`messages[0].role`
/// on Undefined); minijinja 2.24 would panic in `messages[::-1]`. Either way
/// the caller must get an error, not a crash.
#[test]
fn empty_conversation_is_an_error_not_a_panic() {
    let t = ChatTemplate::new(QWEN3).unwrap();
    assert!(t.render(&[], &opts(true, None)).is_err());
    let t = ChatTemplate::new("{{ ''[::-1] }}{{ [][::-1] }}").unwrap();
    assert!(t.render(&[], &opts(true, None)).is_err());
    // The ChatML fallback has no such construct: an empty conversation is
    // just the generation prompt.
    assert_eq!(
        ChatTemplate::chatml()
            .render(&[], &opts(true, None))
            .unwrap(),
        "<|im_start|>assistant\n"
    );
}

#[test]
fn template_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ChatTemplate>();
}
