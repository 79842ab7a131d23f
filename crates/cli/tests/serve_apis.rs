//! `shohin serve`'s Responses (`/v1/responses`) and Anthropic Messages
//! (`/v1/messages`) endpoints driven by the official `openai` and
//! `anthropic` Python clients (tests/serve_apis/apis.py) against the real
//! binary and the real model on 127.0.0.1. The venv (pinned clients from
//! PyPI) is made in the target dir, once per requirements file.

mod common;
use common::serve::{run_bounded, start_server, venv};
use shohin_test_support::real_model;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const KEY: &str = "sk-shohin-apis";

fn here() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/serve_apis"))
}

#[test]
fn responses_and_anthropic_messages_with_the_official_clients() {
    let py = venv("serve-apis-venv", &here().join("requirements.txt"));
    let server = start_server(
        &real_model(),
        &["--api-key", KEY, "--parallel", "2", "--ctx-size", "8192"],
    );
    let base = format!("http://127.0.0.1:{}", server.port);
    let t = Instant::now();
    let (ok, text) = run_bounded(
        Command::new(&py)
            .arg(here().join("apis.py"))
            .args([base.as_str(), KEY]),
        Duration::from_secs(480),
    );
    eprintln!("apis.py ({:.0} s):\n{text}", t.elapsed().as_secs_f64());
    assert!(ok, "apis.py failed");
    drop(server);
}
