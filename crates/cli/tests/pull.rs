//! `shohin pull` / `list` / `rm`, `-m hf:...` and the default model, run as
//! the binary against the hub crate's mock hub on 127.0.0.1 (HF_ENDPOINT,
//! SHOHIN_CACHE and HF_HUB_OFFLINE set per child process).

mod common;
#[path = "../../hub/tests/mock/mod.rs"]
mod mock;

use common::{scratch, tiny, Out, BIN};
use mock::{content, Faults, MockHub, MockRepo};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn hub() -> MockHub {
    let mut repos = BTreeMap::new();
    let mut t = MockRepo {
        commit: "abcdefabcdefabcdefabcdefabcdefabcdefabcd".into(),
        ..Default::default()
    };
    t.files.insert(
        "tiny-Q1_0.gguf".into(),
        std::fs::read(tiny()).expect("the tiny fixture"),
    );
    t.files.insert("README.md".into(), b"tiny".to_vec());
    repos.insert("owner/tiny".to_string(), t);
    let mut many = MockRepo {
        commit: "1111111111111111111111111111111111111111".into(),
        ..Default::default()
    };
    many.files.insert("a-Q4_0.gguf".into(), content(100, 1));
    many.files.insert("b-Q8_0.gguf".into(), content(100, 2));
    repos.insert("owner/many".to_string(), many);
    MockHub::start(repos, Faults::default())
}

fn run(endpoint: &str, cache: &Path, offline: bool, args: &[&str]) -> Out {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("HF_ENDPOINT", endpoint)
        .env("SHOHIN_CACHE", cache)
        .env_remove("HF_TOKEN")
        .env_remove("RUST_BACKTRACE");
    if offline {
        c.env("HF_HUB_OFFLINE", "1");
    } else {
        c.env_remove("HF_HUB_OFFLINE");
    }
    let o = c.output().expect("run shohin");
    Out {
        status: o.status,
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        args: args.iter().map(|a| a.to_string()).collect(),
    }
}

#[test]
fn pull_list_use_and_remove() {
    let mock = hub();
    let cache = scratch("pull-list-rm");
    let out = run(&mock.url, &cache, false, &["pull", "owner/tiny"]).ok();
    let path = out.stdout.lines().last().expect("a path").to_string();
    assert!(path.ends_with("tiny-Q1_0.gguf"), "{out}");
    assert!(Path::new(&path).starts_with(&cache), "{out}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(tiny()).unwrap()
    );
    let n = mock.requests().len();

    // The cached file is used with no request: pull again, and -m hf:.
    let again = run(
        &mock.url,
        &cache,
        false,
        &["pull", "owner/tiny:tiny-Q1_0.gguf"],
    )
    .ok();
    assert_eq!(again.stdout.lines().last(), Some(path.as_str()));
    let info = run(
        &mock.url,
        &cache,
        true,
        &["info", "-m", "hf:owner/tiny", "--json"],
    )
    .ok();
    assert!(info.stdout.contains("qwen3"), "{info}");
    let tok = run(
        &mock.url,
        &cache,
        true,
        &["tokenize", "-m", "hf:owner/tiny", "hi"],
    )
    .ok();
    assert!(!tok.stdout.is_empty(), "{tok}");
    assert_eq!(mock.requests().len(), n);

    let list = run(&mock.url, &cache, true, &["list"]).ok();
    assert!(list.stdout.contains("owner/tiny:tiny-Q1_0.gguf"), "{list}");
    assert!(
        list.stdout.contains("SIZE") && list.stdout.contains("MiB"),
        "{list}"
    );

    run(&mock.url, &cache, true, &["rm", "owner/tiny"]).ok();
    assert!(!Path::new(&path).exists());
    let out = run(&mock.url, &cache, true, &["rm", "owner/tiny"]);
    common::assert_fails_with(&out, 1, &["owner/tiny", "not in the cache"]);
}

#[test]
fn hf_model_flag_pulls_when_missing() {
    let mock = hub();
    let cache = scratch("hf-flag");
    let m = "hf:owner/tiny:tiny-Q1_0.gguf";
    let out = run(
        &mock.url,
        &cache,
        false,
        &["run", "-m", m, "-p", "hi", "-n", "2", "-t", "1"],
    )
    .ok();
    assert!(!out.stdout.is_empty() || !out.stderr.is_empty(), "{out}");
    assert!(mock
        .requests()
        .iter()
        .any(|q| q.path.starts_with("/storage")));
}

#[test]
fn pull_errors() {
    let mock = hub();
    let cache = scratch("pull-errors");
    let out = run(&mock.url, &cache, false, &["pull", "owner/many"]);
    common::assert_fails_with(&out, 1, &["a-Q4_0.gguf", "b-Q8_0.gguf", "owner/many:FILE"]);
    let out = run(&mock.url, &cache, false, &["pull", "owner/nope"]);
    common::assert_fails_with(&out, 1, &["owner/nope", "not found"]);
    let out = run(&mock.url, &cache, true, &["pull", "owner/tiny"]);
    common::assert_fails_with(&out, 1, &["owner/tiny", "not in the cache", "offline"]);
    let out = run(
        &mock.url,
        &cache,
        false,
        &["info", "-m", "hf:owner/tiny:missing.gguf"],
    );
    common::assert_fails_with(&out, 1, &["missing.gguf", "not found"]);
}

#[test]
fn default_model_offline_names_it_and_the_flag() {
    let cache = scratch("default-offline");
    for args in [&["chat", "-p", "hi"][..], &["run", "-p", "hi"][..]] {
        let out = run("http://127.0.0.1:9", &cache, true, args);
        common::assert_fails_with(
            &out,
            1,
            &["prism-ml/Bonsai-1.7B-gguf", "--model", "not in the cache"],
        );
    }
    // Unreachable hub, not offline: the same kind of message.
    let out = run("http://127.0.0.1:9", &cache, false, &["chat", "-p", "hi"]);
    common::assert_fails_with(
        &out,
        1,
        &[
            "prism-ml/Bonsai-1.7B-gguf",
            "--model",
            "could not be reached",
        ],
    );
}
