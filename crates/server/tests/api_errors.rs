//! The errors of the HTTP API on the tiny fixture model: malformed bodies,
//! each invalid parameter named, context overflow, the API key, unknown
//! routes, a full queue (429), busy slots and a stopping engine (503).

mod common;
use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn malformed_bodies_are_json_errors() {
    let st = state();
    let r = router(&st);
    let big = vec![b' '; shohin_server::MAX_BODY_BYTES + 1];
    let e = post_raw(&r, "/v1/chat/completions", big)
        .await
        .error(413, None);
    assert_eq!(e["code"], "request_too_large");
    post_raw(&r, "/v1/chat/completions", "{\"messages\": [")
        .await
        .error(400, None);
    post_raw(&r, "/v1/chat/completions", "")
        .await
        .error(400, None);
    post_raw(&r, "/v1/chat/completions", "[1, 2]")
        .await
        .error(400, None);
    post_raw(&r, "/v1/chat/completions", vec![b'{', 0xff, 0xfe, b'}'])
        .await
        .error(400, None);
    let e = post_raw(&r, "/tokenize", vec![0xc3, 0x28])
        .await
        .error(400, None);
    assert_eq!(e["code"], "invalid_utf8");
}

#[tokio::test]
async fn invalid_fields_name_their_param() {
    let st = state();
    let r = router(&st);
    let chat_path = "/v1/chat/completions";
    let cases: Vec<(Value, &str)> = vec![
        (json!({"messages": []}), "messages"),
        (json!({}), "messages"),
        (json!({"messages": "hi"}), "messages"),
        (
            json!({"messages": [{"role": "user", "content": "a"}, {"role": "wizard", "content": "b"}]}),
            "messages[1].role",
        ),
        (json!({"messages": [{"content": "a"}]}), "messages[0].role"),
        (
            json!({"messages": [{"role": "user", "content": 5}]}),
            "messages[0].content",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}),
            "messages[0].content[0].type",
        ),
        (
            json!({"messages": [{"role": "robot", "content": "x"}]}),
            "messages[0].role",
        ),
        (
            json!({"messages": [{"role": "tool", "content": "x"}]}),
            "messages[0].tool_call_id",
        ),
        (
            json!({"messages": [{"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"arguments": "{}"}}]}]}),
            "messages[0].tool_calls[0].function.name",
        ),
        (
            chat(
                "a",
                json!({"tools": [{"type": "function", "function": {"name": "bad name"}}]}),
            ),
            "tools[0].function.name",
        ),
        (
            chat("a", json!({"tools": [{"type": "retrieval"}]})),
            "tools[0].type",
        ),
        (chat("a", json!({"tool_choice": "required"})), "tool_choice"),
        (
            chat(
                "a",
                json!({"tool_choice": {"type": "function", "function": {"name": "nope"}}, "tools": [{"type": "function", "function": {"name": "f"}}]}),
            ),
            "tool_choice",
        ),
        (
            chat("a", json!({"response_format": {"type": "xml"}})),
            "response_format.type",
        ),
        (
            chat("a", json!({"response_format": {"type": "json_schema"}})),
            "response_format.json_schema",
        ),
        (
            chat(
                "a",
                json!({"response_format": {"type": "json_object"}, "grammar": "root ::= \"a\""}),
            ),
            "grammar",
        ),
        (chat("a", json!({"json_schema": 5})), "json_schema"),
        (
            chat("a", json!({"reasoning_effort": "max"})),
            "reasoning_effort",
        ),
        (chat("a", json!({"max_tokens": -1})), "max_tokens"),
        (chat("a", json!({"max_tokens": 0})), "max_tokens"),
        (chat("a", json!({"max_tokens": 2_000_000})), "max_tokens"),
        (chat("a", json!({"max_tokens": "ten"})), "max_tokens"),
        (chat("a", json!({"max_tokens": 1.5})), "max_tokens"),
        (
            chat("a", json!({"max_completion_tokens": -5})),
            "max_completion_tokens",
        ),
        (chat("a", json!({"temperature": -0.5})), "temperature"),
        (chat("a", json!({"temperature": 101})), "temperature"),
        (chat("a", json!({"temperature": "hot"})), "temperature"),
        (chat("a", json!({"top_p": 0})), "top_p"),
        (chat("a", json!({"top_p": 1.5})), "top_p"),
        (chat("a", json!({"top_k": -7})), "top_k"),
        (chat("a", json!({"min_p": 2})), "min_p"),
        (
            chat("a", json!({"presence_penalty": 3})),
            "presence_penalty",
        ),
        (
            chat("a", json!({"frequency_penalty": -3})),
            "frequency_penalty",
        ),
        (chat("a", json!({"repeat_penalty": 0})), "repeat_penalty"),
        (
            chat("a", json!({"logprobs": true, "top_logprobs": 21})),
            "top_logprobs",
        ),
        (chat("a", json!({"top_logprobs": 2})), "top_logprobs"),
        (chat("a", json!({"logprobs": 3})), "logprobs"),
        (chat("a", json!({"stop": 5})), "stop"),
        (chat("a", json!({"stop": ["a", 1]})), "stop[1]"),
        (chat("a", json!({"stop": vec!["x"; 17]})), "stop"),
        (chat("a", json!({"seed": "abc"})), "seed"),
        (chat("a", json!({"stream": "yes"})), "stream"),
        (chat("a", json!({"model": 5})), "model"),
        (
            chat(
                "a",
                json!({"chat_template_kwargs": {"enable_thinking": "no"}}),
            ),
            "chat_template_kwargs.enable_thinking",
        ),
        (
            chat("a", json!({"stream_options": {"include_usage": 1}})),
            "stream_options.include_usage",
        ),
    ];
    for (body, param) in cases {
        let res = post(&r, chat_path, body.clone()).await;
        let e = res.error(400, Some(param));
        assert_eq!(e["type"], "invalid_request_error", "{body}");
    }
    post(
        &r,
        "/v1/completions",
        json!({"prompt": "a", "logprobs": 21}),
    )
    .await
    .error(400, Some("logprobs"));
    post(
        &r,
        "/v1/completions",
        json!({"prompt": "a", "logprobs": true}),
    )
    .await
    .error(400, Some("logprobs"));
    post(&r, "/v1/completions", json!({"max_tokens": 3}))
        .await
        .error(400, Some("prompt"));
}

#[tokio::test]
async fn a_prompt_longer_than_a_slot_is_context_length_exceeded() {
    let st = state_with(|c| c.engine = shohin_engine::scheduler::EngineConfig::new(1, 64));
    let r = router(&st);
    let long = "word ".repeat(200);
    let e = post(&r, "/v1/chat/completions", chat(&long, json!({})))
        .await
        .error(400, Some("messages"));
    assert_eq!(e["code"], "context_length_exceeded");
    let e = post(&r, "/v1/completions", json!({"prompt": long}))
        .await
        .error(400, Some("prompt"));
    assert_eq!(e["code"], "context_length_exceeded");
    let e = post(&r, "/v1/embeddings", json!({"input": long}))
        .await
        .error(400, None);
    assert_eq!(e["code"], "context_length_exceeded");
    // Generation stops at the full context with "length".
    let v = post(
        &r,
        "/v1/completions",
        json!({"prompt": "Hi", "temperature": 0}),
    )
    .await
    .json();
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    // The last sampled token is returned, not evaluated: one past the cache.
    let total = v["usage"]["total_tokens"].as_u64().unwrap();
    assert!((60..=65).contains(&total), "{v}");
}

#[tokio::test]
async fn an_api_key_guards_everything_but_health_and_metrics() {
    let st = state_with(|c| c.api_key = Some("sekrit".into()));
    let r = router(&st);
    let req = |key: Option<&str>| {
        let mut b = axum::http::Request::get("/v1/models");
        if let Some(k) = key {
            b = b.header("authorization", k);
        }
        b.body(axum::body::Body::empty()).unwrap()
    };
    let e = send(&r, req(None)).await.error(401, None);
    assert_eq!(e["code"], "invalid_api_key");
    send(&r, req(Some("Bearer wrong"))).await.error(401, None);
    send(&r, req(Some("sekrit"))).await.error(401, None);
    assert_eq!(send(&r, req(Some("Bearer sekrit"))).await.status, 200);
    post(&r, "/v1/chat/completions", chat("a", json!({})))
        .await
        .error(401, None);
    assert_eq!(get(&r, "/health").await.status, 200);
    assert_eq!(get(&r, "/metrics").await.status, 200);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let st = state();
    let r = router(&st);
    let e = get(&r, "/v1/nothing").await.error(404, None);
    assert_eq!(e["type"], "invalid_request_error");
    get(&r, "/nothing/here").await.error(404, None);
    get(&r, "/v1/chat/completions").await.error(405, None);
}

#[tokio::test]
async fn a_full_queue_is_429_with_retry_after() {
    // No waiting room at all: refused at once.
    let st = state_with(|c| c.engine.max_queue = 0);
    let r = router(&st);
    let res = post(
        &r,
        "/v1/completions",
        json!({"prompt": "a", "max_tokens": 1}),
    )
    .await;
    let e = res.error(429, None);
    assert_eq!(e["code"], "rate_limit_exceeded");
    assert_eq!(res.headers["retry-after"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_slot_and_a_full_queue_refuse_the_next_request() {
    let st = state_with(|c| {
        c.engine = shohin_engine::scheduler::EngineConfig::new(1, 4096);
        c.engine.max_queue = 1;
    });
    let r = router(&st);
    let long = json!({"prompt": "a", "max_tokens": 1_000_000, "stream": true, "temperature": 0});
    // The stream's body is not read: the request runs in the slot.
    let busy = tower::ServiceExt::oneshot(
        r.clone(),
        axum::http::Request::post("/v1/completions")
            .body(axum::body::Body::from(long.to_string()))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(busy.status(), 200);
    let wait = |f: &dyn Fn(shohin_engine::scheduler::Stats) -> bool| {
        let t = std::time::Instant::now();
        while !f(st.engine.stats()) {
            assert!(t.elapsed().as_secs() < 20, "{:?}", st.engine.stats());
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };
    wait(&|s| s.active_slots == 1 && s.queued == 0);
    // The second waits in the queue...
    let r2 = r.clone();
    let queued = tokio::spawn(async move {
        post(
            &r2,
            "/v1/completions",
            json!({"prompt": "b", "max_tokens": 1}),
        )
        .await
    });
    wait(&|s| s.queued == 1);
    // ...and the third is refused.
    let res = post(
        &r,
        "/v1/completions",
        json!({"prompt": "c", "max_tokens": 1}),
    )
    .await;
    res.error(429, None);
    assert_eq!(res.headers["retry-after"], "1");
    // Dropping the stream cancels it; the queued request then runs.
    drop(busy);
    let done = queued.await.unwrap();
    assert_eq!(done.status, 200, "{}", done.text());
}

#[tokio::test]
async fn a_stopping_engine_answers_503() {
    let st = state();
    let r = router(&st);
    st.engine.stop_accepting();
    let e = post(&r, "/v1/completions", json!({"prompt": "a"}))
        .await
        .error(503, None);
    assert_eq!(e["code"], "shutting_down");
    assert_eq!(get(&r, "/health").await.status, 200);
}
