//! `shohin serve`'s Responses (`/v1/responses`) and Anthropic Messages
//! (`/v1/messages`) endpoints driven by the official `openai` and
//! `anthropic` Python clients (tests/serve_apis/apis.py) against the real
//! binary and the real model on 127.0.0.1. The venv (pinned clients from
//! PyPI) is made in the target dir, once per requirements file.

use shohin_test_support::real_model;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "sk-shohin-apis";

fn here() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/serve_apis"))
}

/// Runs `c` to its end within `limit`, killing it after: (success, output).
fn run_bounded(c: &mut Command, limit: Duration) -> (bool, String) {
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{c:?}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = format!("{}{}", o.join().unwrap(), e.join().unwrap());
    match status {
        Some(s) => (s.success(), text),
        None => (false, format!("{text}\n(killed after {limit:?})")),
    }
}

/// A venv with the pinned clients, made once per target dir.
fn venv() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve-apis-venv");
    let py = dir.join("bin/python");
    let stamp = dir.join("installed.txt");
    let req = std::fs::read_to_string(here().join("requirements.txt")).unwrap();
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(req.as_str()) {
        return py;
    }
    let ok = |c: &mut Command| {
        let (ok, text) = run_bounded(c, Duration::from_secs(600));
        assert!(ok, "{c:?}: {text}");
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

fn health(port: u16) -> u16 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = write!(
        s,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut r = String::new();
    let _ = s.read_to_string(&mut r);
    r.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn start(model: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shohin"))
        .args(["serve", "-m"])
        .arg(model)
        .args(["--host", "127.0.0.1", "--port", "0", "-t", "2"])
        .args(["--api-key", KEY, "--parallel", "2", "--ctx-size", "8192"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shohin serve");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut server = Server { child, port: 0 };
    let t = Instant::now();
    server.port = loop {
        assert!(t.elapsed() < Duration::from_secs(120), "never listening");
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
    while health(server.port) != 200 {
        assert!(t.elapsed() < Duration::from_secs(120), "never healthy");
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

#[test]
fn responses_and_anthropic_messages_with_the_official_clients() {
    let py = venv();
    let server = start(&real_model());
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
