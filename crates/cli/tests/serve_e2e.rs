//! `shohin serve` as users run it: the real binary on 127.0.0.1 with the
//! real model, driven by the official `openai` Python client (tests/serve/
//! e2e.py; tests/serve/agents.py: JSON schemas, tool calls, reasoning),
//! then a bounded load test (tests/serve/load.py: 32 streaming clients,
//! 256 requests, a quarter disconnecting mid-stream), then a
//! SIGTERM with a request in flight. The Python venv is created here
//! (pinned client from PyPI, in the target dir), so CI needs nothing else.

mod common;
use common::serve::{start_server, venv, Server};
use shohin_test_support::real_model;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const KEY: &str = "sk-shohin-e2e";
const SLOTS: usize = 8;
const CTX: usize = 8192;

fn here() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/serve"))
}

fn start(model: &Path) -> Server {
    let (slots, ctx) = (SLOTS.to_string(), CTX.to_string());
    start_server(
        model,
        &["--api-key", KEY, "--parallel", &slots, "--ctx-size", &ctx],
    )
}

fn python(py: &Path, script: &str, args: &[String]) {
    let t = Instant::now();
    let out = Command::new(py)
        .arg(here().join(script))
        .args(args)
        .output()
        .expect("run python");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "{script} ({:.0} s):\n{text}{}",
        t.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script} failed");
}

#[test]
fn openai_client_load_and_shutdown_against_the_real_binary() {
    let py = venv("serve-e2e-venv", &here().join("requirements.txt"));
    let mut server = start(&real_model());
    let base = format!("http://127.0.0.1:{}", server.port);
    let per_slot = (CTX / SLOTS).to_string();
    python(&py, "e2e.py", &[base.clone(), KEY.into(), per_slot]);
    python(&py, "agents.py", &[base.clone(), KEY.into()]);
    python(
        &py,
        "load.py",
        &[base, KEY.into(), "32".into(), "256".into()],
    );

    // SIGTERM with a stream in flight: the stream ends, the process exits 0.
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let body = r#"{"messages":[{"role":"user","content":"Tell a very long story."}],"max_tokens":100000,"stream":true}"#;
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut first = [0u8; 256];
    let n = s.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    let t = Instant::now();
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    loop {
        if let Some(st) = server.child.try_wait().unwrap() {
            assert!(st.success(), "exit status after SIGTERM: {st}");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no exit within 30 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "SIGTERM with a stream in flight: exit 0 after {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
}
