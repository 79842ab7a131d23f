//! Constrained output, tool calls, reasoning and CORS on the tiny fixture
//! model (its text is gibberish, so everything here is what a grammar or
//! the server guarantees, not what the model chose).

mod common;
use axum::body::Body;
use axum::http::Request;
use common::*;
use serde_json::{json, Value};

fn message(r: &Reply) -> Value {
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    r.json()["choices"][0]["message"].clone()
}

const THINK: &str = r#"root ::= "<think>" [a-z]{3,10} "</think>" [a-z]{3,10}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn think_blocks_go_to_reasoning_content_unless_reasoning_format_none() {
    let st = state();
    let r = router(&st);
    let req = chat(
        "hi",
        json!({"grammar": THINK, "temperature": 1.0, "seed": 5}),
    );
    let m = message(&post(&r, "/v1/chat/completions", req.clone()).await);
    let reasoning = m["reasoning_content"].as_str().unwrap();
    let content = m["content"].as_str().unwrap();
    assert!((3..=10).contains(&reasoning.len()), "{m}");
    assert!(reasoning.bytes().all(|b| b.is_ascii_lowercase()), "{m}");
    assert!((3..=10).contains(&content.len()), "{m}");
    assert!(content.bytes().all(|b| b.is_ascii_lowercase()), "{m}");

    // Streamed: the same split, as reasoning_content / content deltas.
    let mut s = req.clone();
    s["stream"] = json!(true);
    let body = post(&r, "/v1/chat/completions", s).await.text();
    let (mut rs, mut cs) = (String::new(), String::new());
    for d in sse_data(&body) {
        if d == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(&d).unwrap();
        let delta = &v["choices"][0]["delta"];
        rs += delta["reasoning_content"].as_str().unwrap_or("");
        cs += delta["content"].as_str().unwrap_or("");
    }
    assert_eq!((rs.as_str(), cs.as_str()), (reasoning, content));

    // --reasoning-format none keeps the raw text.
    let st = state_with(|c| c.raw_reasoning = true);
    let m = message(&post(&router(&st), "/v1/chat/completions", req).await);
    assert!(m.get("reasoning_content").is_none(), "{m}");
    assert_eq!(
        m["content"].as_str().unwrap(),
        format!("<think>{reasoning}</think>{content}")
    );
}

fn weather() -> Value {
    json!({"type": "function", "function": {
        "name": "get_weather",
        "parameters": {"type": "object",
            "properties": {"city": {"type": "string", "maxLength": 12},
                           "days": {"type": "integer", "minimum": 1, "maximum": 7}},
            "required": ["city", "days"], "additionalProperties": false}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_tool_calls_parse_and_validate_even_from_a_random_model() {
    let st = state();
    let r = router(&st);
    let other = json!({"type": "function", "function": {"name": "noop"}});
    for (i, choice) in [
        json!("required"),
        json!({"type": "function", "function": {"name": "get_weather"}}),
    ]
    .into_iter()
    .enumerate()
    {
        let req = chat(
            "weather?",
            json!({"tools": [weather(), other], "tool_choice": choice, "temperature": 1.0,
                   "seed": i, "parallel_tool_calls": false, "max_tokens": 200}),
        );
        let resp = post(&r, "/v1/chat/completions", req).await;
        let m = message(&resp);
        assert_eq!(resp.json()["choices"][0]["finish_reason"], "tool_calls");
        assert!(m["content"].is_null(), "{m}");
        let calls = m["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 1, "{m}");
        let c = &calls[0];
        assert!(c["id"].as_str().unwrap().starts_with("call_"), "{c}");
        assert_eq!(c["type"], "function");
        let name = c["function"]["name"].as_str().unwrap();
        let args: Value =
            serde_json::from_str(c["function"]["arguments"].as_str().unwrap()).unwrap();
        if name == "get_weather" {
            let o = args.as_object().unwrap();
            assert_eq!(o.len(), 2, "{args}");
            assert!(o["city"].as_str().unwrap().chars().count() <= 12, "{args}");
            assert!((1..=7).contains(&o["days"].as_i64().unwrap()), "{args}");
        } else {
            assert_eq!(i, 0, "a named choice called {name}");
            assert_eq!(name, "noop");
            assert!(args.is_object(), "{args}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grammar_errors_are_400_naming_the_field() {
    let st = state();
    let r = router(&st);
    post(
        &r,
        "/v1/completions",
        json!({"prompt": "a", "grammar": "root ::= (\"a\""}),
    )
    .await
    .error(400, Some("grammar"));
    post(
        &r,
        "/v1/chat/completions",
        chat(
            "a",
            json!({"json_schema": {"type": "string", "format": "no-such-format"}}),
        ),
    )
    .await
    .error(400, Some("json_schema"));
    post(
        &r,
        "/v1/chat/completions",
        chat(
            "a",
            json!({"tools": [weather()], "tool_choice": "required",
                          "response_format": {"type": "json_object"}}),
        ),
    )
    .await
    .error(400, Some("response_format"));
}

async fn preflight(r: &axum::Router, origin: &str) -> Reply {
    let req = Request::options("/v1/chat/completions")
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .body(Body::empty())
        .unwrap();
    send(r, req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_preflights_for_the_given_origins_only() {
    let st = state_with(|c| {
        c.cors = vec!["http://app.example".into()];
        c.api_key = Some("k".into());
    });
    let r = router(&st);
    let ok = preflight(&r, "http://app.example").await;
    assert_eq!(ok.status.as_u16(), 200, "{}", ok.text());
    assert_eq!(
        ok.headers["access-control-allow-origin"],
        "http://app.example"
    );
    assert!(ok.headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("authorization"));
    let bad = preflight(&r, "http://evil.example").await;
    bad.error(403, None);
    assert!(bad.headers.get("access-control-allow-origin").is_none());
    // An actual request from the allowed origin carries the header.
    let req = Request::get("/v1/models")
        .header("origin", "http://app.example")
        .header("authorization", "Bearer k")
        .body(Body::empty())
        .unwrap();
    let res = send(&r, req).await;
    assert_eq!(res.status.as_u16(), 200);
    assert_eq!(
        res.headers["access-control-allow-origin"],
        "http://app.example"
    );
    // Without --cors, no CORS headers at all.
    let plain = router(&state());
    let p = preflight(&plain, "http://app.example").await;
    assert!(p.headers.get("access-control-allow-origin").is_none());
}
