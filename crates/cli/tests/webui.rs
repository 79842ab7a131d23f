//! The web chat page at `/` as users use it: the real `shohin serve`
//! binary on 127.0.0.1 with the real model, and Debian's headless chromium
//! driven by Selenium (tests/webui/chat.py: streaming, a second turn, Stop,
//! errors, the API-key field, a reasoning block, a narrow screen). The
//! Selenium venv is created here (pinned from PyPI, in the target dir);
//! chromium and chromedriver come from apt (`.ci/run` installs them). A
//! missing browser fails the test, never skips it.

use shohin_test_support::real_model;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "sk-shohin-webui";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn here() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webui"))
}

/// A venv with the pinned Selenium, made once per target dir.
fn venv() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("webui-venv");
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
        .args(["--host", "127.0.0.1", "--port", "0", "-t", "2"])
        .args(["--api-key", KEY, "-np", "2", "--ctx-size", "4096"])
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

/// A minimal HTTP/1.1 GET: (status, whole response).
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

/// Runs `cmd` with a deadline (killed when it passes): (succeeded, stdout
/// then stderr).
fn run_bounded(mut cmd: Command, limit: Duration) -> (bool, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let t = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = format!("{}{}", out.join().unwrap(), err.join().unwrap());
    match status {
        Some(st) => (st.success(), text),
        None => (false, format!("{text}\n(killed after {limit:?})")),
    }
}

#[test]
fn web_chat_page_in_headless_chromium() {
    for bin in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(bin).is_file(),
            "{bin} is missing: install Debian's chromium and chromium-driver \
             (apt-get install -y --no-install-recommends chromium chromium-driver)"
        );
    }
    let py = venv();
    let server = start(&real_model());

    // The page is open (no key), HTML, self-contained.
    let (status, page) = get(server.port, "/");
    assert_eq!(status, 200, "{page}");
    let head = page.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    assert!(
        head.contains("content-type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(head.contains("content-security-policy:"), "{head}");
    for external in ["http://", "https://", "//cdn", "@import"] {
        assert!(!page.contains(external), "the page loads {external}");
    }

    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let base = format!("http://127.0.0.1:{}", server.port);
    let t = Instant::now();
    let mut cmd = Command::new(&py);
    cmd.arg(here().join("chat.py"))
        .args([&base, KEY])
        .arg(&target);
    let (ok, out) = run_bounded(cmd, Duration::from_secs(420));
    eprintln!("chat.py ({:.0} s):\n{out}", t.elapsed().as_secs_f64());
    assert!(ok, "chat.py failed");
    eprintln!(
        "screenshots (look at them): {}/webui-screenshot{{,-narrow,-dark}}.png",
        target.display()
    );
}
