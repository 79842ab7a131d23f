//! The real `shohin serve` binary on 127.0.0.1 for the end-to-end tests
//! (started on a free port, waited for until healthy, killed on drop), the
//! Python venvs their official clients run in (pinned requirements from
//! PyPI, made once per target dir), and commands under a deadline.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `cmd` to its end within `limit`, killing it after: (succeeded,
/// stdout then stderr).
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> (bool, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
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
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = format!("{}{}", out.join().unwrap(), err.join().unwrap());
    match status {
        Some(st) => (st.success(), text),
        None => (false, format!("{text}\n(killed after {limit:?})")),
    }
}

/// A venv named `name` in the target dir with `requirements` installed;
/// made again only when the requirements file changes. Returns its python.
pub fn venv(name: &str, requirements: &Path) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let py = dir.join("bin/python");
    let stamp = dir.join("installed.txt");
    let req = std::fs::read_to_string(requirements).unwrap();
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
        .arg(requirements));
    std::fs::write(&stamp, req).unwrap();
    py
}

/// A running `shohin serve`; killed when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `shohin serve -m MODEL --host 127.0.0.1 --port 0 -t 2 ARGS...`, once it
/// answers `/health` with 200 (its stderr goes to the test's, prefixed).
pub fn start_server(model: &Path, args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shohin"))
        .args(["serve", "-m"])
        .arg(model)
        .args(["--host", "127.0.0.1", "--port", "0", "-t", "2"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shohin serve");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut server = Server { child, port: 0 };
    server.port = loop {
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
    let t = Instant::now();
    while http_get(server.port, "/health").0 != 200 {
        assert!(t.elapsed() < Duration::from_secs(120), "never healthy");
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

/// A minimal HTTP/1.1 GET: (status, whole response; 0 when unreachable).
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut r = String::new();
    let _ = s.read_to_string(&mut r);
    let status = r
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, r)
}

/// POST the JSON `body` to `path` (one connection, read to its end, each
/// read within `secs` seconds): the response's status and JSON body
/// (`Null` if it has none).
pub fn http_post_json(port: u16, path: &str, body: &str, secs: u64) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(secs))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    let status = r
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let json = r.split("\r\n\r\n").nth(1).unwrap_or("");
    (
        status,
        serde_json::from_str(json).unwrap_or(serde_json::Value::Null),
    )
}
