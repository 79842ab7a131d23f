//! `POST /v1/messages` (Anthropic Messages) on the tiny fixture model: the
//! message's shape, content blocks and tool results, a forced tool_use,
//! stop sequences, streaming event order, `x-api-key`, and errors in
//! Anthropic's shape naming the field.

mod common;
use common::*;
use serde_json::{json, Value};

/// Asserts Anthropic's error shape and status; the message names `param`.
fn anthropic_error(r: &Reply, status: u16, kind: &str, param: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], kind, "{v}");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(m.contains(param), "'{param}' not in {m:?}");
}

fn tool() -> Value {
    json!({"name": "get_weather", "description": "Weather of a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 24}}, "required": ["city"], "additionalProperties": false}})
}

fn msg(content: &str, extra: Value) -> Value {
    let mut v = json!({"max_tokens": 5, "messages": [{"role": "user", "content": content}]});
    if let Value::Object(m) = extra {
        for (k, x) in m {
            v[k] = x;
        }
    }
    v
}

#[tokio::test]
async fn a_message_has_anthropic_shape() {
    let st = state();
    let r = router(&st);
    let res = post(
        &r,
        "/v1/messages",
        msg("Hello", json!({"system": "Be brief.", "seed": 1, "thinking": {"type": "disabled"}, "model": "tiny-q1_0.gguf"})),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let v = res.json();
    assert!(v["id"].as_str().unwrap().starts_with("msg_"), "{v}");
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "tiny-q1_0.gguf");
    assert_eq!(v["stop_reason"], "max_tokens", "{v}");
    assert_eq!(v["stop_sequence"], Value::Null);
    assert_eq!(v["usage"]["output_tokens"], 5);
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert!(v["usage"]["cache_read_input_tokens"].is_u64());
    for b in v["content"].as_array().unwrap() {
        match b["type"].as_str().unwrap() {
            "text" => assert!(b["text"].as_str().is_some_and(|t| !t.is_empty())),
            "thinking" => assert_eq!(b["signature"], ""),
            other => panic!("block type {other}"),
        }
    }
}

#[tokio::test]
async fn blocks_tool_results_and_stop_sequences() {
    let st = state();
    let r = router(&st);
    let body = json!({
        "max_tokens": 40,
        "system": [{"type": "text", "text": "You answer about weather."}],
        "tools": [tool()],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "22 C"}]},
                {"type": "text", "text": "And so?"},
            ]},
        ],
        // Letters this gibberish model writes all the time.
        "stop_sequences": ["e", "a", "o", "i"],
        "seed": 7,
    });
    let res = post(&r, "/v1/messages", body).await;
    assert_eq!(res.status, 200, "{}", res.text());
    let v = res.json();
    if v["stop_reason"] == "stop_sequence" {
        let s = v["stop_sequence"].as_str().unwrap();
        assert!(["e", "a", "o", "i"].contains(&s), "{v}");
    } else {
        assert_eq!(v["stop_sequence"], Value::Null, "{v}");
    }
}

#[tokio::test]
async fn a_forced_tool_use_has_a_parsed_input() {
    let st = state();
    let r = router(&st);
    for choice in [
        json!({"type": "any", "disable_parallel_tool_use": true}),
        json!({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true}),
    ] {
        let res = post(
            &r,
            "/v1/messages",
            msg(
                "Weather in Rome?",
                json!({"max_tokens": 200, "tools": [tool()], "tool_choice": choice, "seed": 2}),
            ),
        )
        .await;
        assert_eq!(res.status, 200, "{}", res.text());
        let v = res.json();
        assert_eq!(v["stop_reason"], "tool_use", "{v}");
        let uses: Vec<&Value> = v["content"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "tool_use")
            .collect();
        assert_eq!(uses.len(), 1, "{v}");
        assert!(uses[0]["id"].as_str().unwrap().starts_with("toolu_"));
        assert_eq!(uses[0]["name"], "get_weather");
        assert!(uses[0]["input"]["city"].is_string(), "{v}");
    }
}

#[tokio::test]
async fn streaming_sends_the_events_in_order() {
    let st = state();
    let r = router(&st);
    let res = post(
        &r,
        "/v1/messages",
        msg(
            "Hello",
            json!({"max_tokens": 6, "stream": true, "seed": 3, "thinking": {"type": "disabled"}}),
        ),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let ev = sse_events(&res.text());
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[0], "message_start");
    assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);
    let start = &ev[0].1["message"];
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    let delta = &ev[ev.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "max_tokens");
    assert_eq!(delta["usage"]["output_tokens"], 6);
    // Blocks: start, deltas, stop, with increasing indices.
    let mut open: Option<u64> = None;
    let mut next = 0;
    let mut text = String::new();
    for (n, d) in &ev[1..ev.len() - 2] {
        let i = d["index"].as_u64().unwrap();
        match n.as_str() {
            "content_block_start" => {
                assert_eq!((open, i), (None, next), "{names:?}");
                open = Some(i);
                next += 1;
            }
            "content_block_delta" => {
                assert_eq!(open, Some(i));
                if d["delta"]["type"] == "text_delta" {
                    text.push_str(d["delta"]["text"].as_str().unwrap());
                }
            }
            "content_block_stop" => {
                assert_eq!(open, Some(i));
                open = None;
            }
            other => panic!("event {other}"),
        }
    }
    assert_eq!(open, None);
    // The same as the whole message with the same seed.
    let whole = post(
        &r,
        "/v1/messages",
        msg(
            "Hello",
            json!({"max_tokens": 6, "seed": 3, "thinking": {"type": "disabled"}}),
        ),
    )
    .await
    .json();
    let whole_text: String = whole["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["text"].as_str())
        .collect();
    assert_eq!(whole_text, text);
}

#[tokio::test]
async fn a_streamed_forced_tool_use_sends_input_json_deltas() {
    let st = state();
    let r = router(&st);
    let res = post(
        &r,
        "/v1/messages",
        msg("Weather?", json!({"max_tokens": 200, "stream": true, "tools": [tool()], "tool_choice": {"type": "any"}, "seed": 4})),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let ev = sse_events(&res.text());
    let start = ev
        .iter()
        .find(|(n, d)| n == "content_block_start" && d["content_block"]["type"] == "tool_use")
        .unwrap();
    assert_eq!(start.1["content_block"]["input"], json!({}));
    // Parallel calls are allowed: each tool_use block's deltas are one object.
    let mut partial = std::collections::BTreeMap::<u64, String>::new();
    for (_, d) in ev
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
    {
        partial
            .entry(d["index"].as_u64().unwrap())
            .or_default()
            .push_str(d["delta"]["partial_json"].as_str().unwrap());
    }
    assert!(!partial.is_empty());
    for p in partial.values() {
        let input: Value = serde_json::from_str(p).unwrap_or_else(|e| panic!("{e}: {p}"));
        assert!(input["city"].is_string(), "{input}");
    }
    let delta = &ev[ev.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
}

#[tokio::test]
async fn errors_have_anthropic_shape_and_name_the_field() {
    let st = state();
    let r = router(&st);
    let cases = [
        (
            json!({"messages": [{"role": "user", "content": "a"}]}),
            "max_tokens",
        ),
        (msg("a", json!({"max_tokens": 0})), "max_tokens"),
        (json!({"max_tokens": 5}), "messages"),
        (json!({"max_tokens": 5, "messages": []}), "messages"),
        (
            json!({"max_tokens": 5, "messages": [{"role": "system", "content": "a"}]}),
            "messages[0].role",
        ),
        (
            json!({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "image"}]}]}),
            "messages[0].content[0].type",
        ),
        (
            json!({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "tool_result"}]}]}),
            "messages[0].content[0].tool_use_id",
        ),
        (msg("a", json!({"temperature": 200})), "temperature"),
        (msg("a", json!({"stop_sequences": "x"})), "stop_sequences"),
        (
            msg("a", json!({"stop_sequences": [1]})),
            "stop_sequences[0]",
        ),
        (
            msg("a", json!({"thinking": {"type": "maybe"}})),
            "thinking.type",
        ),
        (
            msg("a", json!({"tools": [{"name": "f"}]})),
            "tools[0].input_schema",
        ),
        (
            msg(
                "a",
                json!({"tools": [{"type": "web_search_20250305", "name": "w"}]}),
            ),
            "tools[0].type",
        ),
        (
            msg("a", json!({"tool_choice": {"type": "any"}})),
            "tool_choice",
        ),
        (
            msg(
                "a",
                json!({"tools": [tool()], "tool_choice": {"type": "tool"}}),
            ),
            "tool_choice.name",
        ),
        (
            msg(
                "a",
                json!({"tools": [tool()], "tool_choice": {"type": "tool", "name": "nope"}}),
            ),
            "tool_choice",
        ),
        (
            msg(
                "a",
                json!({"tools": [tool()], "tool_choice": {"type": "sometimes"}}),
            ),
            "tool_choice.type",
        ),
    ];
    for (body, param) in cases {
        let res = post(&r, "/v1/messages", body).await;
        anthropic_error(&res, 400, "invalid_request_error", param);
    }
    let res = post(&r, "/v1/messages", msg("a", json!({"model": "claude-x"}))).await;
    anthropic_error(&res, 404, "not_found_error", "claude-x");
    let res = post_raw(&r, "/v1/messages", "{not json").await;
    anthropic_error(&res, 400, "invalid_request_error", "JSON");
}

#[tokio::test]
async fn x_api_key_and_bearer_both_authenticate() {
    let st = state_with(|c| c.api_key = Some("sekrit".into()));
    let r = router(&st);
    let res = post(&r, "/v1/messages", msg("a", json!({}))).await;
    anthropic_error(&res, 401, "authentication_error", "API key");
    let req = |h: &str, v: &str| {
        axum::http::Request::post("/v1/messages")
            .header("content-type", "application/json")
            .header(h, v)
            .body(axum::body::Body::from(
                msg("a", json!({"max_tokens": 1})).to_string(),
            ))
            .unwrap()
    };
    anthropic_error(
        &send(&r, req("x-api-key", "wrong")).await,
        401,
        "authentication_error",
        "Incorrect",
    );
    assert_eq!(send(&r, req("x-api-key", "sekrit")).await.status, 200);
    assert_eq!(
        send(&r, req("authorization", "Bearer sekrit")).await.status,
        200
    );
    // x-api-key works on the OpenAI endpoints too.
    let m = axum::http::Request::get("/v1/models")
        .header("x-api-key", "sekrit")
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(send(&r, m).await.status, 200);
}

/// llama.cpp's `grammar` field (accepted here as on chat) makes even the
/// tiny model think first.
const THINK: &str = r#"root ::= "<think>" [a-z]{3,10} "</think>" [a-z]{3,10}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reasoning_becomes_a_thinking_block_whole_and_streamed() {
    let st = state();
    let r = router(&st);
    let body = msg(
        "hi",
        json!({"max_tokens": 100, "grammar": THINK, "temperature": 1.0, "seed": 5}),
    );
    let v = post(&r, "/v1/messages", body.clone()).await.json();
    let c = v["content"].as_array().unwrap();
    assert_eq!(c.len(), 2, "{v}");
    assert_eq!(c[0]["type"], "thinking");
    assert_eq!(c[0]["signature"], "");
    let thinking = c[0]["thinking"].as_str().unwrap();
    assert!((3..=10).contains(&thinking.len()), "{v}");
    assert_eq!(c[1]["type"], "text");
    let text = c[1]["text"].as_str().unwrap();
    assert_eq!(v["stop_reason"], "end_turn");

    let mut s = body;
    s["stream"] = json!(true);
    let ev = sse_events(&post(&r, "/v1/messages", s).await.text());
    let joined = |ty: &str, key: &str| -> String {
        ev.iter()
            .filter(|(_, d)| d["delta"]["type"] == ty)
            .map(|(_, d)| d["delta"][key].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(joined("thinking_delta", "thinking"), thinking);
    assert_eq!(joined("text_delta", "text"), text);
    // A thinking block sent back in an assistant turn is accepted.
    let again = json!({"max_tokens": 2, "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": c},
        {"role": "user", "content": "more"},
    ]});
    assert_eq!(post(&r, "/v1/messages", again).await.status, 200);
}

/// A client that goes away (whole or streamed) cancels its request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_frees_its_slot() {
    assert_hangup_frees_the_slot("/v1/messages", |stream| {
        json!({"max_tokens": 100000, "ignore_eos": true, "stream": stream, "messages": [{"role": "user", "content": "Tell a long story"}]})
    })
    .await;
}
