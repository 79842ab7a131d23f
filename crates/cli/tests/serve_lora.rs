//! Per-request LoRA adapters in the real `shohin serve` binary, driven by
//! the official `openai` client (tests/serve/lora.py): an adapter loaded
//! with --lora-init-without-apply changes a greedy completion only when a
//! request turns it on, and then gives what `shohin run --lora-scaled`
//! gives for the same prompt.

mod common;
#[path = "../../engine/tests/lora/gen.rs"]
#[allow(dead_code)] // fnv64 is for the engine's goldens
mod gen;

use common::serve::{run_bounded, start_server, venv};
use common::*;
use shohin_gguf::{GgmlType, GgufFile};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const PROMPT: &str = "Hello, my name is";
const N: &str = "8";

fn here() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/serve"))
}

/// `shohin run` greedy on the tiny model: the generated text.
fn run_text(extra: &[String]) -> String {
    let mut args: Vec<String> = ["run", "-m", &s(&tiny()), "-p", PROMPT, "-n", N]
        .iter()
        .map(|x| x.to_string())
        .collect();
    args.extend(["--temp", "0", "-t", "2", "--json"].map(String::from));
    args.extend(extra.iter().cloned());
    shohin(&args).ok().json()["text"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn openai_client_per_request_lora_equals_run_with_the_adapter() {
    let dir = scratch("serve_lora");
    // The engine's LoRA test adapter (tests/lora/gen.rs), tiny-model spec.
    let spec = gen::Spec {
        layers: true,
        embd_output: true,
        ty: GgmlType::F16,
        amp_a: 1.0,
        amp_b: 0.05,
    };
    let adapter = dir.join("adapter.gguf");
    std::fs::write(
        &adapter,
        gen::adapter(&GgufFile::open(&tiny()).unwrap(), &spec),
    )
    .unwrap();
    let py = venv("serve-e2e-venv", &here().join("requirements.txt"));
    let server = start_server(
        &tiny(),
        &[
            "--alias",
            "tiny",
            "--parallel",
            "2",
            "--lora",
            &s(&adapter),
            "--lora-init-without-apply",
        ],
    );
    let base = format!("http://127.0.0.1:{}", server.port);
    let (ok, text) = run_bounded(
        Command::new(&py)
            .arg(here().join("lora.py"))
            .args([base.as_str(), PROMPT, N]),
        Duration::from_secs(300),
    );
    assert!(ok, "lora.py failed:\n{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("the JSON line");
    let got: serde_json::Value = serde_json::from_str(line).unwrap();
    let with = run_text(&["--lora-scaled".into(), format!("{}:1", s(&adapter))]);
    let without = run_text(&[]);
    assert_ne!(with, without, "the adapter changes nothing in `run`");
    assert_eq!(
        got["lora"],
        with.as_str(),
        "serve with lora != run --lora-scaled"
    );
    assert_eq!(
        got["base"],
        without.as_str(),
        "serve at scale 0 != run without"
    );
}
