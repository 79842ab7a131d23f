//! `POST /v1/responses` on the tiny fixture model: the response object's
//! shape, input items and instructions, a forced function call, streaming
//! event order, and validation errors naming their field.

mod common;
use common::*;
use serde_json::{json, Value};

const TOOL: &str = r#"{"type": "function", "name": "get_weather", "description": "Weather of a city",
  "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false},
  "strict": true}"#;

#[tokio::test]
async fn a_string_input_gives_a_response_object() {
    let st = state();
    let r = router(&st);
    let res = post(
        &r,
        "/v1/responses",
        json!({"input": "Hello", "max_output_tokens": 5, "seed": 3, "reasoning": {"effort": "none"}}),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let v = res.json();
    assert!(v["id"].as_str().unwrap().starts_with("resp_"), "{v}");
    assert_eq!(v["object"], "response");
    assert!(v["created_at"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(v["model"], "tiny-q1_0.gguf");
    assert_eq!(v["status"], "incomplete", "{v}");
    assert_eq!(v["incomplete_details"]["reason"], "max_output_tokens");
    assert_eq!(v["max_output_tokens"], 5);
    assert_eq!(v["tools"], json!([]));
    assert_eq!(v["tool_choice"], "auto");
    let u = &v["usage"];
    assert_eq!(u["output_tokens"], 5);
    assert!(u["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        u["total_tokens"].as_u64(),
        Some(u["input_tokens"].as_u64().unwrap() + 5)
    );
    assert!(u["input_tokens_details"]["cached_tokens"].is_u64());
    assert_eq!(u["output_tokens_details"]["reasoning_tokens"], 0);
    let out = v["output"].as_array().unwrap();
    let msg = out
        .iter()
        .find(|i| i["type"] == "message")
        .expect("a message");
    assert!(msg["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(msg["role"], "assistant");
    assert_eq!(msg["content"][0]["type"], "output_text");
    assert!(msg["content"][0]["text"].is_string());
    assert_eq!(msg["content"][0]["annotations"], json!([]));
    for item in out {
        assert!(
            ["reasoning", "message", "function_call"].contains(&item["type"].as_str().unwrap()),
            "{item}"
        );
    }
}

#[tokio::test]
async fn items_with_instructions_and_a_call_history_are_accepted() {
    let st = state();
    let r = router(&st);
    let body = json!({
        "instructions": "Be brief.",
        "input": [
            {"role": "developer", "content": "Answer in English."},
            {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "22 C, sunny"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "It is sunny."}]},
            {"role": "user", "content": "Thanks"},
        ],
        "tools": [serde_json::from_str::<Value>(TOOL).unwrap()],
        "max_output_tokens": 3,
        "temperature": 0.5,
        "top_p": 0.9,
    });
    let res = post(&r, "/v1/responses", body).await;
    assert_eq!(res.status, 200, "{}", res.text());
    let v = res.json();
    assert_eq!(v["instructions"], "Be brief.");
    assert_eq!(v["temperature"], 0.5);
    assert_eq!(v["tools"][0]["name"], "get_weather");
}

#[tokio::test]
async fn a_required_tool_choice_gives_a_valid_function_call() {
    let st = state();
    let r = router(&st);
    for choice in [
        json!("required"),
        json!({"type": "function", "name": "get_weather"}),
    ] {
        let body = json!({
            "input": "What is the weather in Paris?",
            "tools": [serde_json::from_str::<Value>(TOOL).unwrap()],
            "tool_choice": choice,
            "parallel_tool_calls": false,
            "max_output_tokens": 200,
            "seed": 1,
        });
        let res = post(&r, "/v1/responses", body).await;
        assert_eq!(res.status, 200, "{}", res.text());
        let v = res.json();
        assert_eq!(v["status"], "completed", "{v}");
        let calls: Vec<&Value> = v["output"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["type"] == "function_call")
            .collect();
        assert_eq!(calls.len(), 1, "{v}");
        let c = calls[0];
        assert!(c["id"].as_str().unwrap().starts_with("fc_"), "{c}");
        assert!(c["call_id"].as_str().unwrap().starts_with("call_"), "{c}");
        assert_eq!(c["name"], "get_weather");
        assert_eq!(c["status"], "completed");
        let args: Value = serde_json::from_str(c["arguments"].as_str().unwrap()).unwrap();
        assert!(args["city"].is_string(), "{args}");
    }
}

#[tokio::test]
async fn a_json_schema_text_format_constrains_the_output() {
    let st = state();
    let r = router(&st);
    let body = json!({
        "input": "Give me a number",
        "text": {"format": {"type": "json_schema", "name": "n", "strict": true,
            "schema": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"], "additionalProperties": false}}},
        "max_output_tokens": 60,
        "seed": 2,
    });
    let res = post(&r, "/v1/responses", body).await;
    assert_eq!(res.status, 200, "{}", res.text());
    let v = res.json();
    assert_eq!(v["text"]["format"]["type"], "json_schema");
    let msg = v["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "message")
        .unwrap();
    if v["status"] == "completed" {
        let parsed: Value = serde_json::from_str(msg["content"][0]["text"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("{e}: {msg}"));
        // (an integer schema admits exponent forms such as 9.2e53)
        assert!(parsed["n"].is_number(), "{parsed}");
    }
}

#[tokio::test]
async fn streaming_sends_the_events_in_order() {
    let st = state();
    let r = router(&st);
    let res = post(
        &r,
        "/v1/responses",
        json!({"input": "Hello", "max_output_tokens": 6, "seed": 5, "stream": true, "reasoning": {"effort": "none"}}),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert!(res.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let ev = sse_events(&res.text());
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..2], ["response.created", "response.in_progress"]);
    assert_eq!(ev[0].1["response"]["status"], "in_progress");
    for (i, (_, d)) in ev.iter().enumerate() {
        assert_eq!(d["sequence_number"], i, "{d}");
    }
    let (last, fin) = ev.last().unwrap();
    assert_eq!(last, "response.incomplete");
    let resp = &fin["response"];
    assert_eq!(resp["id"], ev[0].1["response"]["id"]);
    assert_eq!(resp["usage"]["output_tokens"], 6);
    // A message item: added, part added, deltas, text done, part done, item done.
    let pos = |n: &str| {
        names
            .iter()
            .position(|x| *x == n)
            .unwrap_or_else(|| panic!("no {n} in {names:?}"))
    };
    let order = [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ];
    let at: Vec<usize> = order.iter().map(|n| pos(n)).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{names:?}");
    let deltas: String = ev
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap().to_string())
        .collect();
    let done = &ev[pos("response.output_text.done")].1;
    assert_eq!(done["text"], deltas.as_str());
    // The final response holds the same message as the events.
    let item = &ev[pos("response.output_item.done")].1["item"];
    let msg = resp["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "message")
        .unwrap();
    assert_eq!(msg, item);
    assert_eq!(msg["content"][0]["text"], deltas.as_str());
}

#[tokio::test]
async fn a_streamed_forced_call_sends_argument_events() {
    let st = state();
    let r = router(&st);
    let body = json!({
        "input": "Weather in Rome?",
        "tools": [serde_json::from_str::<Value>(TOOL).unwrap()],
        "tool_choice": "required",
        "parallel_tool_calls": false,
        "max_output_tokens": 200,
        "stream": true,
        "seed": 4,
    });
    let res = post(&r, "/v1/responses", body).await;
    assert_eq!(res.status, 200, "{}", res.text());
    let ev = sse_events(&res.text());
    let added = ev
        .iter()
        .find(|(n, d)| n == "response.output_item.added" && d["item"]["type"] == "function_call")
        .expect("a function_call item");
    assert_eq!(added.1["item"]["arguments"], "");
    let args: String = ev
        .iter()
        .filter(|(n, _)| n == "response.function_call_arguments.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap().to_string())
        .collect();
    let done = ev
        .iter()
        .find(|(n, _)| n == "response.function_call_arguments.done")
        .unwrap();
    assert_eq!(done.1["arguments"], args.as_str());
    let parsed: Value = serde_json::from_str(&args).unwrap();
    assert!(parsed["city"].is_string());
    let (last, fin) = ev.last().unwrap();
    assert_eq!(last, "response.completed");
    assert_eq!(fin["response"]["status"], "completed");
}

#[tokio::test]
async fn invalid_fields_name_their_param() {
    let st = state();
    let r = router(&st);
    let tool: Value = serde_json::from_str(TOOL).unwrap();
    let cases = [
        (json!({}), "input"),
        (json!({"input": 3}), "input"),
        (json!({"input": []}), "input"),
        (
            json!({"input": [{"role": "tool", "content": "x"}]}),
            "input[0].role",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}),
            "input[0].content[0].type",
        ),
        (
            json!({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}),
            "input[0].call_id",
        ),
        (
            json!({"input": [{"type": "function_call_output", "output": "x"}]}),
            "input[0].call_id",
        ),
        (
            json!({"input": [{"type": "item_reference", "id": "x"}]}),
            "input[0].type",
        ),
        (
            json!({"input": "a", "previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (
            json!({"input": "a", "max_output_tokens": 0}),
            "max_output_tokens",
        ),
        (json!({"input": "a", "temperature": -1}), "temperature"),
        (json!({"input": "a", "top_p": 2}), "top_p"),
        (
            json!({"input": "a", "reasoning": {"effort": "max"}}),
            "reasoning.effort",
        ),
        (
            json!({"input": "a", "text": {"format": {"type": "yaml"}}}),
            "text.format.type",
        ),
        (
            json!({"input": "a", "text": {"format": {"type": "json_schema", "name": "x"}}}),
            "text.format.schema",
        ),
        (
            json!({"input": "a", "tools": [{"type": "web_search"}]}),
            "tools[0].type",
        ),
        (
            json!({"input": "a", "tools": [{"type": "function"}]}),
            "tools[0].name",
        ),
        (
            json!({"input": "a", "tool_choice": "required"}),
            "tool_choice",
        ),
        (
            json!({"input": "a", "tools": [tool.clone()], "tool_choice": {"type": "function", "name": "nope"}}),
            "tool_choice",
        ),
        (
            json!({"input": "a", "tools": [tool.clone()], "tool_choice": "sometimes"}),
            "tool_choice",
        ),
        (
            json!({"input": "a", "tools": [tool], "tool_choice": "required", "text": {"format": {"type": "json_object"}}}),
            "text.format",
        ),
    ];
    for (body, param) in cases {
        post(&r, "/v1/responses", body.clone())
            .await
            .error(400, Some(param));
    }
    post(&r, "/v1/responses", json!({"input": "a", "model": "gpt-5"}))
        .await
        .error(404, Some("model"));
}

#[tokio::test]
async fn an_api_key_is_needed() {
    let st = state_with(|c| c.api_key = Some("sekrit".into()));
    let r = router(&st);
    post(&r, "/v1/responses", json!({"input": "a"}))
        .await
        .error(401, None);
    for (h, v) in [("authorization", "Bearer sekrit"), ("x-api-key", "sekrit")] {
        let req = axum::http::Request::post("/v1/responses")
            .header("content-type", "application/json")
            .header(h, v)
            .body(axum::body::Body::from(
                json!({"input": "a", "max_output_tokens": 1}).to_string(),
            ))
            .unwrap();
        assert_eq!(send(&r, req).await.status, 200);
    }
}

/// llama.cpp's `grammar` field (accepted here as on chat) makes even the
/// tiny model think first.
const THINK: &str = r#"root ::= "<think>" [a-z]{3,10} "</think>" [a-z]{3,10}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reasoning_becomes_a_reasoning_item_whole_and_streamed() {
    let st = state();
    let r = router(&st);
    let body = json!({"input": "hi", "grammar": THINK, "temperature": 1.0, "seed": 5});
    let v = post(&r, "/v1/responses", body.clone()).await.json();
    let out = v["output"].as_array().unwrap();
    assert_eq!(out.len(), 2, "{v}");
    assert_eq!(out[0]["type"], "reasoning");
    assert!(out[0]["id"].as_str().unwrap().starts_with("rs_"));
    assert_eq!(out[0]["summary"], json!([]));
    assert_eq!(out[0]["content"][0]["type"], "reasoning_text");
    let reasoning = out[0]["content"][0]["text"].as_str().unwrap();
    assert!((3..=10).contains(&reasoning.len()), "{v}");
    assert_eq!(out[1]["type"], "message");
    let text = out[1]["content"][0]["text"].as_str().unwrap();
    assert!((3..=10).contains(&text.len()), "{v}");

    let mut s = body;
    s["stream"] = json!(true);
    let ev = sse_events(&post(&r, "/v1/responses", s).await.text());
    let joined = |ty: &str| -> String {
        ev.iter()
            .filter(|(n, _)| n == ty)
            .map(|(_, d)| d["delta"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(joined("response.reasoning_text.delta"), reasoning);
    assert_eq!(joined("response.output_text.delta"), text);
    let done = ev
        .iter()
        .find(|(n, _)| n == "response.reasoning_text.done")
        .unwrap();
    assert_eq!(done.1["text"], reasoning);
    let fin = &ev.last().unwrap().1["response"]["output"];
    assert_eq!(fin[0]["content"][0]["text"], reasoning);
    assert_eq!(fin[1]["content"][0]["text"], text);
    // Reasoning items sent back as input are accepted (and not re-rendered).
    let again = json!({"input": [
        {"role": "user", "content": "hi"}, out[0], out[1], {"role": "user", "content": "more"},
    ], "max_output_tokens": 2});
    assert_eq!(post(&r, "/v1/responses", again).await.status, 200);
}

/// A client that goes away (whole or streamed) cancels its request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_frees_its_slot() {
    assert_hangup_frees_the_slot("/v1/responses", |stream| {
        json!({"input": "Tell a long story", "max_output_tokens": 100000, "ignore_eos": true, "stream": stream})
    })
    .await;
}
