//! The tiny fixture model behind an app, and request helpers.

#![allow(dead_code)]

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use shohin_engine::backend::cpu::CpuBackend;
use shohin_engine::model::Model;
use shohin_engine::scheduler::EngineConfig;
use shohin_server::{app, AppState, ServerConfig};
use shohin_tokenizer::Tokenizer;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

pub const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/fixtures/tiny-q1_0.gguf"
);

/// The model and tokenizer, loaded once per test binary.
pub fn model() -> (Arc<Model>, Arc<Tokenizer>) {
    static M: OnceLock<(Arc<Model>, Arc<Tokenizer>)> = OnceLock::new();
    M.get_or_init(|| {
        let f = shohin_gguf::GgufFile::open(Path::new(MODEL)).expect("open the tiny fixture");
        let tok = shohin_engine::vocab::load_tokenizer(&f).expect("tokenizer");
        let m = Model::load(f, Box::new(CpuBackend::new(2).expect("backend"))).expect("load");
        (Arc::new(m), Arc::new(tok))
    })
    .clone()
}

/// 2 slots of 512 positions unless `edit` says otherwise.
pub fn state_with(edit: impl FnOnce(&mut ServerConfig)) -> Arc<AppState> {
    let (m, tok) = model();
    let mut cfg = ServerConfig::new(EngineConfig::new(2, 512));
    edit(&mut cfg);
    Arc::new(AppState::new(m, tok, Path::new(MODEL), cfg).expect("app state"))
}

pub fn state() -> Arc<AppState> {
    state_with(|_| {})
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts an OpenAI error with this status and `param`; returns it.
    pub fn error(&self, status: u16, param: Option<&str>) -> Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.text());
        let v = self.json();
        let e = &v["error"];
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert!(e["type"].is_string(), "{v}");
        assert!(e.get("code").is_some() && e.get("param").is_some(), "{v}");
        if let Some(p) = param {
            assert_eq!(e["param"], p, "{v}");
        }
        e.clone()
    }
}

pub async fn send(router: &Router, req: Request<Body>) -> Reply {
    let resp = router.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("read the body")
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

pub async fn get(router: &Router, path: &str) -> Reply {
    send(
        router,
        Request::get(path).body(Body::empty()).expect("request"),
    )
    .await
}

pub async fn post_raw(router: &Router, path: &str, body: impl Into<Body>) -> Reply {
    let req = Request::post(path)
        .header("content-type", "application/json")
        .body(body.into())
        .expect("request");
    send(router, req).await
}

pub async fn post(router: &Router, path: &str, body: Value) -> Reply {
    post_raw(router, path, body.to_string()).await
}

pub fn router(st: &Arc<AppState>) -> Router {
    app(st.clone())
}

/// A one-message chat request.
pub fn chat(content: &str, extra: Value) -> Value {
    let mut v = serde_json::json!({
        "messages": [{"role": "user", "content": content}],
    });
    if let Value::Object(m) = extra {
        for (k, x) in m {
            v[k] = x;
        }
    }
    v
}

/// The `data:` payloads of an SSE body; asserts the framing.
pub fn sse_data(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    for event in body.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let line = event.trim_end_matches('\n');
        assert!(
            line.starts_with("data: ") && !line.contains('\n'),
            "not one data line: {line:?}"
        );
        out.push(line["data: ".len()..].to_string());
    }
    out
}

/// `(event, data)` of each named SSE event (`event:` + `data:` lines, as
/// the Responses and Anthropic endpoints send them); asserts `event:`
/// matches `data.type`.
pub fn sse_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = None;
            let mut data = None;
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str::<Value>(d).expect("JSON data"));
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            let (name, data) = (name.expect("event:"), data.expect("data:"));
            assert_eq!(data["type"], name.as_str(), "{data}");
            (name, data)
        })
        .collect()
}

/// A client that goes away cancels its request: for a long answer at
/// `path`, whole (`body(false)`: the handler future is dropped) and streamed
/// (`body(true)`: the body is dropped after its first frame), the slot is
/// freed within 10 s.
pub async fn assert_hangup_frees_the_slot(path: &str, body: impl Fn(bool) -> Value) {
    use http_body_util::BodyExt;
    let st = state();
    let r = router(&st);
    let idle = || async {
        let t = std::time::Instant::now();
        while st.engine.stats().active_slots > 0 {
            assert!(t.elapsed().as_secs() < 10, "the slot was never freed");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    for stream in [false, true] {
        let req = Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body(stream).to_string()))
            .unwrap();
        let call = r.clone().oneshot(req);
        if stream {
            let resp = call.await.unwrap();
            let mut body = resp.into_body();
            // Read until tokens flow, then hang up.
            body.frame().await.unwrap().unwrap();
            let t = std::time::Instant::now();
            while st.engine.stats().active_slots == 0 {
                assert!(t.elapsed().as_secs() < 10, "never started");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            drop(body);
        } else {
            let gone = tokio::time::timeout(std::time::Duration::from_millis(500), call).await;
            assert!(gone.is_err(), "a 100000-token answer came back");
        }
        idle().await;
    }
}
