//! Shared helpers for the end-to-end tests of the `shohin` binary: running it
//! under a deadline, per-test scratch directories; fixture and golden paths
//! come from `shohin-test-support`.
#![allow(dead_code, unused_imports)] // each test binary uses a different subset

use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The binary under test, built by Cargo for integration tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_shohin");

/// A run must end well within this; anything longer is a hang.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// What one run of the binary produced.
#[derive(Debug)]
pub struct Out {
    pub args: Vec<String>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics with the whole run shown unless it exited 0.
    pub fn ok(self) -> Self {
        assert_eq!(self.code(), Some(0), "expected success: {self}");
        self
    }

    /// The last stdout line parsed as JSON.
    pub fn json(&self) -> Value {
        let line = self.stdout.trim().lines().last().unwrap_or("");
        serde_json::from_str(line).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self}"))
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cut = |s: &str| -> String { s.chars().take(2000).collect() };
        write!(
            f,
            "\n  shohin {:?}\n  status: {}\n  stdout: {}\n  stderr: {}",
            self.args,
            self.status,
            cut(&self.stdout),
            cut(&self.stderr)
        )
    }
}

/// Runs `shohin args...` with `stdin` fed in (or closed), kills it at
/// [`DEADLINE`] and fails the test if it had to.
pub fn shohin_stdin<S: AsRef<std::ffi::OsStr>>(args: &[S], stdin: Option<&[u8]>) -> Out {
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shohin");
    // Readers on their own threads so a full pipe cannot stall the child.
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out_t = reader(Box::new(child.stdout.take().expect("stdout")));
    let err_t = reader(Box::new(child.stderr.take().expect("stderr")));
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let text = text.to_owned();
        // The child may exit before reading everything: ignore EPIPE.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&text);
        });
    }
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for shohin") {
            break s;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("shohin {shown:?} hung: killed after {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Out {
        args: shown,
        status,
        stdout: out_t.join().expect("stdout reader"),
        stderr: err_t.join().expect("stderr reader"),
    }
}

/// Runs `shohin args...` with stdin closed.
pub fn shohin<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Out {
    shohin_stdin(args, None)
}

/// Asserts a clean user-facing failure: exit code `code` (a normal exit, not
/// a signal), stderr starting with "error:", containing every needle, and no
/// trace of a panic.
pub fn assert_fails_with(out: &Out, code: i32, needles: &[&str]) {
    assert_eq!(out.code(), Some(code), "wrong exit status: {out}");
    assert!(
        out.stderr.starts_with("error:"),
        "stderr must start with \"error:\": {out}"
    );
    for bad in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
        assert!(!out.stderr.contains(bad), "a panic, not an error: {out}");
    }
    for n in needles {
        assert!(out.stderr.contains(n), "stderr lacks {n:?}: {out}");
    }
}

/// [`assert_fails_with`] for the binary's own errors (exit code 1).
pub fn assert_error(out: &Out, needles: &[&str]) {
    assert_fails_with(out, 1, needles);
}

pub use shohin_test_support::{fixture, golden, ids, real_model, shared, step};

/// The synthetic Qwen3-shaped Q1_0 model (4 layers, 151,936-token vocab).
pub fn tiny() -> PathBuf {
    fixture("tiny-q1_0.gguf")
}

/// A fresh, empty scratch directory for one test (under Cargo's per-target
/// temporary directory, so it never collides with another checkout).
pub fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("shohin-cli-tests")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Path argument as a `String` for argument lists.
pub fn s(p: &Path) -> String {
    p.to_str().expect("UTF-8 path").to_owned()
}
pub mod serve;
