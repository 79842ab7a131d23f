//! The web chat page at `/` as users use it: the real `shohin serve`
//! binary on 127.0.0.1 with the real model, and Debian's headless chromium
//! driven by Selenium (tests/webui/chat.py: streaming, a second turn, Stop,
//! errors, the API-key field, a reasoning block, a narrow screen). The
//! Selenium venv is created here (pinned from PyPI, in the target dir);
//! chromium and chromedriver come from apt (`.ci/run` installs them). A
//! missing browser fails the test, never skips it.

mod common;
use common::serve::{http_get, run_bounded, start_server, venv};
use shohin_test_support::real_model;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const KEY: &str = "sk-shohin-webui";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn here() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webui"))
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
    let py = venv("webui-venv", &here().join("requirements.txt"));
    let server = start_server(
        &real_model(),
        &["--api-key", KEY, "-np", "2", "--ctx-size", "4096"],
    );

    // The page is open (no key), HTML, self-contained.
    let (status, page) = http_get(server.port, "/");
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
    let (ok, out) = run_bounded(&mut cmd, Duration::from_secs(420));
    eprintln!("chat.py ({:.0} s):\n{out}", t.elapsed().as_secs_f64());
    assert!(ok, "chat.py failed");
    eprintln!(
        "screenshots (look at them): {}/webui-screenshot{{,-narrow,-dark}}.png",
        target.display()
    );
}
