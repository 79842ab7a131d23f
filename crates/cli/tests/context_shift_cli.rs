//! `--context-shift` / `--keep` on `run` and `serve` (the binary, on the
//! tiny fixture): generation goes past the context with it and stops at the
//! context without it; hybrid (qwen35) models refuse it.

mod common;
use common::serve::{http_post_json, start_server};
use common::*;

/// POST `body` to `path`: the status and JSON body (60 s per read).
fn post(port: u16, path: &str, body: &str) -> (u16, Value) {
    http_post_json(port, path, body, 60)
}
use serde_json::Value;

#[path = "../../engine/tests/qwen35/gen.rs"]
#[allow(dead_code)]
mod gen;

fn run_json(extra: &[&str]) -> (Value, Out) {
    let model = s(&tiny());
    let mut args = vec![
        "run",
        "-m",
        &model,
        "-t",
        "2",
        "--json",
        "-p",
        "Once upon a time",
    ];
    args.extend_from_slice(extra);
    let out = shohin(&args).ok();
    (out.json(), out)
}

#[test]
fn run_goes_past_the_context_with_context_shift() {
    let (j, out) = run_json(&["-c", "64", "-n", "200", "--temp", "0", "--context-shift"]);
    assert_eq!(ids(&j["tokens"]).len(), 200, "{out}");
    assert!(out.stderr.contains("context shifted"), "{out}");
    // --keep -1 keeps the prompt; the run still reaches -n.
    let (j, out) = run_json(&[
        "-c",
        "64",
        "-n",
        "200",
        "--temp",
        "0",
        "--context-shift",
        "--keep",
        "-1",
    ]);
    assert_eq!(ids(&j["tokens"]).len(), 200, "{out}");
}

#[test]
fn run_stops_at_the_context_without_it() {
    for off in [&[][..], &["--context-shift", "--no-context-shift"][..]] {
        let mut a = vec!["-c", "64", "-n", "200", "--temp", "0"];
        a.extend_from_slice(off);
        let (j, out) = run_json(&a);
        let prompt = ids(&j["prompt_tokens"]).len();
        // The last token is sampled at a full context and not evaluated.
        assert_eq!(ids(&j["tokens"]).len(), 64 - prompt + 1, "{out}");
        assert!(out.stderr.contains("context is full (64 tokens)"), "{out}");
    }
}

#[test]
fn bad_keep_is_refused() {
    let model = s(&tiny());
    let out = shohin(&[
        "run",
        "-m",
        &model,
        "-p",
        "x",
        "--context-shift",
        "--keep",
        "-2",
    ]);
    assert_error(&out, &["--keep -2"]);
}

#[test]
fn hybrid_models_refuse_context_shift() {
    let dir = scratch("hybrid_models_refuse_context_shift");
    let path = dir.join("qwen35.gguf");
    std::fs::write(&path, gen::build(shohin_gguf::GgmlType::F16, true)).unwrap();
    let m = s(&path);
    for cmd in ["run", "chat"] {
        let out = shohin(&[cmd, "-m", &m, "-p", "hi", "-n", "4", "--context-shift"]);
        assert_error(&out, &["--context-shift", "qwen35", "recurrent state"]);
    }
    let out = shohin(&["serve", "-m", &m, "--port", "0", "--context-shift"]);
    assert_error(&out, &["--context-shift", "qwen35", "recurrent state"]);
    // Without the flag the model runs.
    shohin(&["run", "-m", &m, "-p", "hi", "-n", "4"]).ok();
}

fn complete(port: u16, max_tokens: usize) -> (usize, String) {
    let body = format!(
        r#"{{"prompt":"Once upon a time","max_tokens":{max_tokens},"temperature":0,"ignore_eos":true}}"#
    );
    let (st, j) = post(port, "/v1/completions", &body);
    assert_eq!(st, 200, "{j}");
    let n = j["usage"]["completion_tokens"].as_u64().unwrap() as usize;
    let finish = j["choices"][0]["finish_reason"]
        .as_str()
        .unwrap()
        .to_string();
    (n, finish)
}

#[test]
fn serve_shifts_slots_only_with_the_flag() {
    let model = tiny();
    let on = start_server(&model, &["-c", "64", "--parallel", "1", "--context-shift"]);
    assert_eq!(complete(on.port, 150), (150, "length".to_string()));
    // A prompt longer than the slot stays a 400, shift or not.
    let long = "word ".repeat(100);
    let (st, j) = post(
        on.port,
        "/v1/completions",
        &format!(r#"{{"prompt":"{long}","max_tokens":4}}"#),
    );
    assert_eq!(st, 400, "{j}");
    drop(on);
    let off = start_server(&model, &["-c", "64", "--parallel", "1"]);
    let (n, finish) = complete(off.port, 150);
    assert!(
        n < 64,
        "{n} tokens from a 64-token slot without context shift"
    );
    assert_eq!(finish, "length");
}
