//! Per-request LoRA adapters (llama-server's `lora` field and
//! `/lora-adapters`): the endpoints, the 400s, and that a request's scales
//! (or the defaults) decide the output.

mod common;
#[path = "../../engine/tests/lora/gen.rs"]
#[allow(dead_code)] // fnv64 is for the engine's goldens
mod gen;

use common::*;
use serde_json::{json, Value};
use shohin_engine::backend::cpu::CpuBackend;
use shohin_engine::lora::{ActiveLora, LoraAdapter};
use shohin_engine::model::Model;
use shohin_engine::scheduler::EngineConfig;
use shohin_gguf::{GgmlType, GgufFile};
use shohin_server::{AppState, ServerConfig};
use std::path::Path;
use std::sync::Arc;

fn adapter(base: &GgufFile, amp_b: f32, label: &str) -> Arc<LoraAdapter> {
    let spec = gen::Spec {
        layers: true,
        embd_output: true,
        ty: GgmlType::F32,
        amp_a: 1.0,
        amp_b,
    };
    let f = GgufFile::from_bytes(gen::adapter(base, &spec)).unwrap();
    Arc::new(LoraAdapter::from_gguf(&f, label).unwrap())
}

/// A model of its own (the engine owns its model's active set) with two
/// adapters loaded as `serve --lora-scaled a.gguf:1,b.gguf:0.5` would.
fn lora_state(init_without_apply: bool) -> Arc<AppState> {
    let f = GgufFile::open(Path::new(MODEL)).unwrap();
    let tok = Arc::new(shohin_engine::vocab::load_tokenizer(&f).unwrap());
    let (a, b) = (adapter(&f, 0.05, "a.gguf"), adapter(&f, 0.03, "b.gguf"));
    let m = Model::load(f, Box::new(CpuBackend::new(2).unwrap())).unwrap();
    m.set_adapters(vec![
        ActiveLora {
            adapter: a,
            scale: 1.0,
        },
        ActiveLora {
            adapter: b,
            scale: 0.5,
        },
    ])
    .unwrap();
    let mut cfg = ServerConfig::new(EngineConfig::new(2, 256));
    cfg.lora_init_without_apply = init_without_apply;
    Arc::new(AppState::new(Arc::new(m), tok, Path::new(MODEL), cfg).unwrap())
}

fn scales(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|a| a["scale"].as_f64().unwrap())
        .collect()
}

#[tokio::test]
async fn lora_adapters_lists_and_sets_the_defaults() {
    let r = router(&lora_state(false));
    let list = get(&r, "/lora-adapters").await.json();
    assert_eq!(
        list,
        json!([
            {"id": 0, "path": "a.gguf", "scale": 1.0},
            {"id": 1, "path": "b.gguf", "scale": 0.5},
        ])
    );
    // Unlisted adapters go to 0, as llama-server's construct_lora_list.
    let ok = post(&r, "/lora-adapters", json!([{"id": 1, "scale": 0.25}])).await;
    assert_eq!(ok.json(), json!({"success": true}), "{}", ok.text());
    assert_eq!(scales(&get(&r, "/lora-adapters").await.json()), [0.0, 0.25]);
    let bad = [
        (json!({"id": 0, "scale": 1}), None),
        (json!([{"id": 2, "scale": 1}]), Some("[0].id")),
        (json!([{"id": -1, "scale": 1}]), Some("[0].id")),
        (json!([{"id": 0, "scale": "1"}]), Some("[0].scale")),
        (json!([{"id": 0}]), Some("[0].scale")),
        (
            json!([{"id": 0, "scale": 1}, {"id": 0, "scale": 2}]),
            Some("[1].id"),
        ),
        (json!([7]), Some("[0]")),
    ];
    for (body, param) in bad {
        post(&r, "/lora-adapters", body).await.error(400, param);
    }
    post_raw(&r, "/lora-adapters", "[{").await.error(400, None);
    // Refused bodies changed nothing.
    assert_eq!(scales(&get(&r, "/lora-adapters").await.json()), [0.0, 0.25]);
}

#[tokio::test]
async fn init_without_apply_starts_at_scale_0() {
    let r = router(&lora_state(true));
    assert_eq!(scales(&get(&r, "/lora-adapters").await.json()), [0.0, 0.0]);
}

#[tokio::test]
async fn a_bad_lora_field_is_a_400_naming_it_on_every_endpoint() {
    let r = router(&lora_state(false));
    let bad = [
        (json!(5), "lora"),
        (json!({"id": 0}), "lora"),
        (json!(["x"]), "lora[0]"),
        (json!([{"id": 2, "scale": 1}]), "lora[0].id"),
        (json!([{"id": 0.5, "scale": 1}]), "lora[0].id"),
        (json!([{"scale": 1}]), "lora[0].id"),
        (json!([{"id": 0}]), "lora[0].scale"),
        (json!([{"id": 0, "scale": 1e9}]), "lora[0].scale"),
        (
            json!([{"id": 1, "scale": 1}, {"id": 1, "scale": 1}]),
            "lora[1].id",
        ),
    ];
    for (lora, param) in bad {
        let mut c = chat("Hi", json!({"max_tokens": 1}));
        c["lora"] = lora.clone();
        post(&r, "/v1/chat/completions", c)
            .await
            .error(400, Some(param));
        let t = json!({"prompt": "Hi", "max_tokens": 1, "lora": lora});
        post(&r, "/v1/completions", t).await.error(400, Some(param));
        let re = json!({"input": "Hi", "max_output_tokens": 16, "lora": lora});
        post(&r, "/v1/responses", re).await.error(400, Some(param));
        let e = json!({"input": "Hi", "lora": lora});
        post(&r, "/v1/embeddings", e).await.error(400, Some(param));
        let an = json!({"model": "tiny-q1_0.gguf", "max_tokens": 1, "lora": lora,
                        "messages": [{"role": "user", "content": "Hi"}]});
        let rep = post(&r, "/v1/messages", an).await;
        assert_eq!(rep.status.as_u16(), 400, "{}", rep.text());
        assert!(rep.text().contains(param), "{}", rep.text());
    }
    // No adapters loaded: any id is refused, an empty list is fine.
    let plain = router(&state());
    let t = json!({"prompt": "Hi", "max_tokens": 1, "lora": [{"id": 0, "scale": 1}]});
    let e = post(&plain, "/v1/completions", t)
        .await
        .error(400, Some("lora[0].id"));
    assert!(
        e["message"].as_str().unwrap().contains("no LoRA adapters"),
        "{e}"
    );
    let t = json!({"prompt": "Hi", "max_tokens": 1, "lora": []});
    assert_eq!(
        post(&plain, "/v1/completions", t).await.status.as_u16(),
        200
    );
}

/// A greedy completion's text with `lora` (absent when `Value::Null`).
async fn text(r: &axum::Router, lora: Value) -> String {
    let mut body = json!({"prompt": "The quick brown fox", "max_tokens": 8, "temperature": 0});
    if !lora.is_null() {
        body["lora"] = lora;
    }
    let rep = post(r, "/v1/completions", body).await;
    assert_eq!(rep.status.as_u16(), 200, "{}", rep.text());
    rep.json()["choices"][0]["text"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn the_request_scales_or_the_defaults_decide_the_output() {
    let r = router(&lora_state(false));
    let base = text(&router(&state()), Value::Null).await;
    let off = text(&r, json!([{"id": 0, "scale": 0}])).await;
    assert_eq!(off, base, "every adapter at 0 must be the base model");
    let defaults = text(&r, Value::Null).await;
    assert_ne!(defaults, base, "the default scales changed nothing");
    let explicit = text(&r, json!([{"id": 0, "scale": 1}, {"id": 1, "scale": 0.5}])).await;
    assert_eq!(explicit, defaults);
    // An empty list keeps the defaults (llama-server's `lora.empty()`).
    assert_eq!(text(&r, json!([])).await, defaults);
    let only_a = text(&r, json!([{"id": 0, "scale": 1}])).await;
    assert_ne!(
        only_a, defaults,
        "adapter 1 (unlisted: scale 0) changed nothing"
    );
    // New defaults apply to the next requests without `lora`.
    post(&r, "/lora-adapters", json!([{"id": 0, "scale": 1}])).await;
    assert_eq!(text(&r, Value::Null).await, only_a);
    post(&r, "/lora-adapters", json!([])).await;
    assert_eq!(text(&r, Value::Null).await, base);
}
