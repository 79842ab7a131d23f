//! The HTTP API on the tiny fixture model: every endpoint's shape, the
//! generation options, streaming, and every error the server reports.

mod common;
use base64::Engine as _;
use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn health_models_and_metrics() {
    let st = state();
    let r = router(&st);
    let h = get(&r, "/health").await;
    assert_eq!(h.status, 200);
    assert_eq!(h.json(), json!({"status": "ok"}));

    let m = get(&r, "/v1/models").await;
    assert_eq!(m.status, 200);
    let v = m.json();
    assert_eq!(v["object"], "list");
    let d = &v["data"][0];
    assert_eq!(d["id"], "tiny-q1_0.gguf");
    assert_eq!(d["object"], "model");
    assert_eq!(d["owned_by"], "shohin");
    assert!(d["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(get(&r, "/v1/models/tiny-q1_0").await.status, 200);
    get(&r, "/v1/models/gpt-4").await.error(404, Some("model"));

    // A generation, so that the engine's histograms have samples.
    let g = post(
        &r,
        "/v1/completions",
        json!({"prompt": "Hi", "max_tokens": 2}),
    )
    .await;
    assert_eq!(g.status, 200, "{}", g.text());
    let p = get(&r, "/metrics").await;
    assert_eq!(p.status, 200);
    let text = p.text();
    for needle in [
        "# TYPE shohin_requests_total counter",
        "shohin_requests_total{endpoint=\"/v1/completions\",status=\"200\"}",
        "# TYPE shohin_time_to_first_token_seconds histogram",
        "shohin_time_to_first_token_seconds_bucket{le=\"+Inf\"}",
        "# TYPE shohin_generated_tokens_total counter",
        "shohin_queue_depth",
        "shohin_active_slots",
        "shohin_kv_cells_used",
    ] {
        assert!(text.contains(needle), "no {needle} in:\n{text}");
    }
}

#[tokio::test]
async fn chat_completion_has_openai_shape_and_stops_at_max_tokens() {
    let st = state();
    let r = router(&st);
    let res = post(
        &r,
        "/v1/chat/completions",
        chat(
            "Hello",
            json!({"model": "tiny-q1_0.gguf", "max_tokens": 5, "seed": 7}),
        ),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let v = res.json();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert!(v["created"].is_u64());
    assert_eq!(v["model"], "tiny-q1_0.gguf");
    let c = &v["choices"][0];
    assert_eq!(c["index"], 0);
    assert_eq!(c["message"]["role"], "assistant");
    assert!(c["message"]["content"].is_string());
    assert_eq!(c["logprobs"], Value::Null);
    assert_eq!(c["finish_reason"], "length");
    let u = &v["usage"];
    assert_eq!(u["completion_tokens"], 5);
    let p = u["prompt_tokens"].as_u64().unwrap();
    assert!(p > 5);
    assert_eq!(u["total_tokens"].as_u64().unwrap(), p + 5);
    assert!(u["prompt_tokens_details"]["cached_tokens"].is_u64());
}

#[tokio::test]
async fn model_names_alias_file_and_stem_are_accepted() {
    let st = state_with(|c| c.alias = Some("bonsai".into()));
    let r = router(&st);
    for name in ["bonsai", "tiny-q1_0.gguf", "tiny-q1_0"] {
        let res = post(
            &r,
            "/v1/completions",
            json!({"model": name, "prompt": "a", "max_tokens": 1}),
        )
        .await;
        assert_eq!(res.status, 200, "{name}: {}", res.text());
        assert_eq!(res.json()["model"], "bonsai");
    }
    let e = post(
        &r,
        "/v1/completions",
        json!({"model": "gpt-4o", "prompt": "a"}),
    )
    .await
    .error(404, Some("model"));
    assert_eq!(e["code"], "model_not_found");
    assert_eq!(
        get(&r, "/v1/models").await.json()["data"][0]["id"],
        "bonsai"
    );
}

#[tokio::test]
async fn the_same_seed_gives_the_same_text() {
    let st = state();
    let r = router(&st);
    let req = chat(
        "Tell me a story",
        json!({"max_tokens": 12, "seed": 1234, "temperature": 1.0}),
    );
    let a = post(&r, "/v1/chat/completions", req.clone()).await.json();
    let b = post(&r, "/v1/chat/completions", req).await.json();
    let text = |v: &Value| {
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(!text(&a).is_empty());
    assert_eq!(text(&a), text(&b));
    // Text completions too, with legacy logprobs.
    let req = json!({"prompt": "Once upon a time", "max_tokens": 6, "seed": 99, "logprobs": 3});
    let a = post(&r, "/v1/completions", req.clone()).await.json();
    let b = post(&r, "/v1/completions", req).await.json();
    assert_eq!(a["choices"][0]["text"], b["choices"][0]["text"]);
    assert_eq!(a["choices"][0]["logprobs"], b["choices"][0]["logprobs"]);
}

#[tokio::test]
async fn n_two_gives_two_choices() {
    let st = state();
    let r = router(&st);
    let res = post(
        &r,
        "/v1/chat/completions",
        chat(
            "Hi",
            json!({"n": 2, "max_tokens": 4, "seed": 3, "temperature": 1.5}),
        ),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let v = res.json();
    let ch = v["choices"].as_array().unwrap();
    assert_eq!(ch.len(), 2);
    assert_eq!(ch[0]["index"], 0);
    assert_eq!(ch[1]["index"], 1);
    assert_eq!(v["usage"]["completion_tokens"], 8);
    // n above the slots is refused.
    post(&r, "/v1/chat/completions", chat("Hi", json!({"n": 3})))
        .await
        .error(400, Some("n"));
    post(&r, "/v1/chat/completions", chat("Hi", json!({"n": 0})))
        .await
        .error(400, Some("n"));
}

#[tokio::test]
async fn a_stop_string_ends_the_text_and_is_never_emitted() {
    let st = state();
    let r = router(&st);
    let base = json!({"prompt": "The quick brown fox", "max_tokens": 24, "temperature": 0});
    let full = post(&r, "/v1/completions", base.clone()).await.json();
    let text = full["choices"][0]["text"].as_str().unwrap().to_string();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    assert!(chars.len() >= 8, "greedy text too short: {text:?}");
    // A stop string from the middle of the greedy text.
    let (a, b) = (chars[chars.len() / 2].0, chars[chars.len() / 2 + 2].0);
    let stop = text[a..b].to_string();
    let expected = &text[..text.find(&stop).unwrap()];
    let mut req = base.clone();
    req["stop"] = json!([stop, "never-appears-xyz"]);
    let v = post(&r, "/v1/completions", req.clone()).await.json();
    let got = v["choices"][0]["text"].as_str().unwrap();
    assert_eq!(got, expected);
    assert!(!got.contains(&stop));
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    // Streamed: the deltas never carry it either.
    req["stream"] = json!(true);
    let s = post(&r, "/v1/completions", req).await;
    let mut streamed = String::new();
    for d in sse_data(&s.text()) {
        if d != "[DONE]" {
            let c: Value = serde_json::from_str(&d).unwrap();
            streamed.push_str(c["choices"][0]["text"].as_str().unwrap());
        }
    }
    assert_eq!(streamed, expected);
}

#[tokio::test]
async fn a_repeated_request_reuses_the_cached_prefix() {
    let st = state();
    let r = router(&st);
    let req = chat(
        "What is the capital of France?",
        json!({"max_tokens": 3, "seed": 5}),
    );
    let a = post(&r, "/v1/chat/completions", req.clone()).await.json();
    assert_eq!(a["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    let b = post(&r, "/v1/chat/completions", req).await.json();
    let cached = b["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    assert!(cached > 0, "{b}");
    assert!(cached < b["usage"]["prompt_tokens"].as_u64().unwrap());
}

#[tokio::test]
async fn chat_streams_as_server_sent_events() {
    let st = state();
    let r = router(&st);
    let body = chat(
        "Hello",
        json!({"max_tokens": 6, "seed": 11, "stream": true, "stream_options": {"include_usage": true}}),
    );
    let res = post(&r, "/v1/chat/completions", body.clone()).await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert!(res.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let data = sse_data(&res.text());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let id = chunks[0]["id"].clone();
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], id);
        assert_eq!(c["model"], "tiny-q1_0.gguf");
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    // The last chunk holds the usage and no choices; the one before, the finish.
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 6);
    let fin = &chunks[chunks.len() - 2]["choices"][0];
    assert_eq!(fin["finish_reason"], "length");
    assert_eq!(fin["delta"], json!({}));
    let mut text = String::new();
    for c in &chunks[..chunks.len() - 1] {
        assert_eq!(c["usage"], Value::Null);
        if let Some(t) = c["choices"][0]["delta"]["content"].as_str() {
            text.push_str(t);
        }
    }
    // The same as the whole response with the same seed.
    let mut whole = body;
    whole["stream"] = json!(false);
    let v = post(&r, "/v1/chat/completions", whole).await.json();
    assert_eq!(v["choices"][0]["message"]["content"], text);

    // Without include_usage: no usage chunk.
    let res = post(
        &r,
        "/v1/chat/completions",
        chat("Hi", json!({"max_tokens": 2, "stream": true})),
    )
    .await;
    let data = sse_data(&res.text());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let last: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "length");
    assert!(last.get("usage").is_none());
}

#[tokio::test]
async fn chat_logprobs_and_content_parts() {
    let st = state();
    let r = router(&st);
    let body = json!({
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "More?"},
        ],
        "max_tokens": 3, "logprobs": true, "top_logprobs": 2,
        "chat_template_kwargs": {"enable_thinking": false},
    });
    let res = post(&r, "/v1/chat/completions", body).await;
    assert_eq!(res.status, 200, "{}", res.text());
    let v = res.json();
    let content = v["choices"][0]["logprobs"]["content"].as_array().unwrap();
    assert_eq!(content.len(), 3);
    for e in content {
        assert!(e["token"].is_string());
        assert!(e["logprob"].as_f64().unwrap() <= 0.0);
        assert!(e["bytes"].is_array());
        let top = e["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 2);
        assert!(top[0]["logprob"].as_f64() >= top[1]["logprob"].as_f64());
    }
}

#[tokio::test]
async fn text_completions_take_strings_and_token_ids() {
    let st = state();
    let r = router(&st);
    let ids: Vec<u32> = st.tokenizer.encode("Once upon a time", true, true);
    let a = post(
        &r,
        "/v1/completions",
        json!({"prompt": "Once upon a time", "max_tokens": 4, "temperature": 0}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let a = a.json();
    assert!(a["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(a["object"], "text_completion");
    assert_eq!(
        a["usage"]["prompt_tokens"].as_u64().unwrap() as usize,
        ids.len()
    );
    for prompt in [json!(ids), json!([ids]), json!(["Once upon a time"])] {
        let b = post(
            &r,
            "/v1/completions",
            json!({"prompt": prompt, "max_tokens": 4, "temperature": 0}),
        )
        .await
        .json();
        assert_eq!(b["choices"][0]["text"], a["choices"][0]["text"], "{prompt}");
    }
    // Legacy logprobs.
    let v = post(
        &r,
        "/v1/completions",
        json!({"prompt": "Hi", "max_tokens": 3, "logprobs": 2}),
    )
    .await
    .json();
    let lp = &v["choices"][0]["logprobs"];
    for k in ["tokens", "token_logprobs", "top_logprobs", "text_offset"] {
        assert_eq!(lp[k].as_array().unwrap().len(), 3, "{k}: {lp}");
    }
    assert_eq!(lp["text_offset"][0], 0);
    assert!(lp["top_logprobs"][0].as_object().unwrap().len() <= 2);
    // Streamed text completion chunks.
    let s = post(
        &r,
        "/v1/completions",
        json!({"prompt": "Hi", "max_tokens": 3, "stream": true}),
    )
    .await;
    let data = sse_data(&s.text());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let first: Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(first["object"], "text_completion");
    // Several prompts are refused.
    post(&r, "/v1/completions", json!({"prompt": ["a", "b"]}))
        .await
        .error(400, Some("prompt"));
    post(&r, "/v1/completions", json!({"prompt": [1, -2]}))
        .await
        .error(400, Some("prompt[1]"));
    post(&r, "/v1/completions", json!({"prompt": [999_999_999]}))
        .await
        .error(400, Some("prompt"));
}

#[tokio::test]
async fn embeddings_are_unit_vectors() {
    let st = state();
    let r = router(&st);
    let n_embd = st.engine.model().config.n_embd;
    let res = post(
        &r,
        "/v1/embeddings",
        json!({"input": ["hello world", "goodbye"], "model": "tiny-q1_0"}),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let v = res.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "tiny-q1_0.gguf");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for (i, d) in data.iter().enumerate() {
        assert_eq!(d["object"], "embedding");
        assert_eq!(d["index"], i);
        let e: Vec<f64> = d["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(e.len(), n_embd);
        let norm: f64 = e.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "norm {norm}");
    }
    let pt = v["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(pt >= 3);
    assert_eq!(v["usage"]["total_tokens"], pt);
    // base64: the same floats, little-endian.
    let b = post(
        &r,
        "/v1/embeddings",
        json!({"input": "hello world", "encoding_format": "base64"}),
    )
    .await
    .json();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let floats: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let first = data[0]["embedding"].as_array().unwrap();
    assert_eq!(floats.len(), n_embd);
    for (x, y) in floats.iter().zip(first) {
        assert!((f64::from(*x) - y.as_f64().unwrap()).abs() < 1e-6);
    }
    post(&r, "/v1/embeddings", json!({"input": ""}))
        .await
        .error(400, Some("input[0]"));
    post(&r, "/v1/embeddings", json!({"input": 5}))
        .await
        .error(400, Some("input"));
}

#[tokio::test]
async fn tokenize_and_detokenize() {
    let st = state();
    let r = router(&st);
    let t = post(&r, "/tokenize", json!({"content": "hello world"})).await;
    assert_eq!(t.status, 200);
    let ids = t.json()["tokens"].clone();
    assert_eq!(ids, json!(st.tokenizer.encode("hello world", false, true)));
    let p = post(
        &r,
        "/tokenize",
        json!({"content": "hello world", "with_pieces": true}),
    )
    .await
    .json();
    assert_eq!(p["tokens"][0]["id"], ids[0]);
    assert_eq!(p["tokens"][0]["piece"], "hello");
    let d = post(&r, "/detokenize", json!({"tokens": ids})).await;
    assert_eq!(d.json(), json!({"content": "hello world"}));
    post(&r, "/detokenize", json!({"tokens": [1, 10_000_000]}))
        .await
        .error(400, Some("tokens[1]"));
    post(&r, "/detokenize", json!({"tokens": "x"}))
        .await
        .error(400, Some("tokens"));
    post(&r, "/tokenize", json!({}))
        .await
        .error(400, Some("content"));
}

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
