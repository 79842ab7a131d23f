//! The HTTP API on the tiny fixture model: every endpoint's shape, the
//! generation options and streaming. The errors it reports: `api_errors.rs`.

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
