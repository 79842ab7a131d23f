//! `shohin serve` as users run it: the real binary on 127.0.0.1 with the
//! real model, driven by the official `openai` Python client (tests/serve/
//! e2e.py; tests/serve/agents.py: JSON schemas, tool calls, reasoning),
//! then a bounded load test (tests/serve/load.py: 32 streaming clients,
//! 256 requests, a quarter disconnecting mid-stream), then a
//! SIGTERM with a request in flight. The Python venv is created here
//! (pinned client from PyPI, in the target dir), so CI needs nothing else.

use shohin_test_support::real_model;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "sk-shohin-e2e";
const SLOTS: usize = 8;
const CTX: usize = 8192;

fn here() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/serve"))
}

/// A venv with the pinned client, made once per target dir.
fn venv() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve-e2e-venv");
    let py = dir.join("bin/python");
    let stamp = dir.join("installed.txt");
    let req = std::fs::read_to_string(here().join("requirements.txt")).unwrap();
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(req.as_str()) {
        return py;
    }
    let ok = |c: &mut Command| {
        let out = c.output().expect("run python");
        assert!(
            out.status.success(),
            "{c:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ok(Command::new("python3").args(["-m", "venv"]).arg(&dir));
    ok(Command::new(&py)
        .args(["-m", "pip", "install", "-q", "-r"])
        .arg(here().join("requirements.txt")));
    std::fs::write(&stamp, req).unwrap();
    py
}

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(model: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shohin"))
        .args(["serve", "-m"])
        .arg(model)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "-t",
            "2",
            "--api-key",
            KEY,
        ])
        .args([
            "--parallel",
            &SLOTS.to_string(),
            "--ctx-size",
            &CTX.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shohin serve");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("shohin serve exited before listening")
            .unwrap();
        eprintln!("server: {line}");
        if let Some(rest) = line.split("http://127.0.0.1:").nth(1) {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            break digits.parse().unwrap();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(|l| eprintln!("server: {}", l.unwrap_or_default())));
    let s = Server { child, port };
    let t = Instant::now();
    while get(port, "/health").0 != 200 {
        assert!(t.elapsed() < Duration::from_secs(120), "never healthy");
        std::thread::sleep(Duration::from_millis(100));
    }
    s
}

/// A minimal HTTP/1.1 GET: (status, body).
fn get(port: u16, path: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut r = String::new();
    let _ = s.read_to_string(&mut r);
    let status = r
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, r)
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
    let py = venv();
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
