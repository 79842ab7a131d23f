//! The hub client against a mock hub on 127.0.0.1: resolve, redirect,
//! download, resume, sha256, cache, offline and the hub's errors.

mod mock;

use mock::{content, sha256_hex, Faults, MockHub, MockRepo};
use shohin_hub::{Hub, HubConfig, HubError, ModelRef};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn tmp(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("hub-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn repos() -> BTreeMap<String, MockRepo> {
    let mut m = BTreeMap::new();
    let mut one = MockRepo {
        commit: COMMIT.to_string(),
        ..Default::default()
    };
    one.files
        .insert("model-Q1_0.gguf".into(), content(300_000, 1));
    one.files.insert("README.md".into(), b"# readme".to_vec());
    m.insert("owner/one".to_string(), one);
    let mut many = MockRepo {
        commit: "1111111111111111111111111111111111111111".to_string(),
        ..Default::default()
    };
    many.files.insert("a-Q4_0.gguf".into(), content(1000, 2));
    many.files.insert("b-Q8_0.gguf".into(), content(1000, 3));
    m.insert("owner/many".to_string(), many);
    let mut gated = MockRepo {
        commit: "2222222222222222222222222222222222222222".to_string(),
        gated: true,
        ..Default::default()
    };
    gated.files.insert("g.gguf".into(), content(5000, 4));
    m.insert("owner/gated".to_string(), gated);
    m
}

fn config(mock: &MockHub, cache: &Path) -> HubConfig {
    let mut c = HubConfig::new(cache);
    c.endpoint = mock.url.clone();
    c.retries = 3;
    c.retry_delay = Duration::from_millis(10);
    c.timeout = Duration::from_secs(10);
    c
}

fn r(spec: &str) -> ModelRef {
    ModelRef::parse(spec).unwrap()
}

fn expected() -> Vec<u8> {
    content(300_000, 1)
}

fn final_path(cache: &Path) -> PathBuf {
    cache.join(format!(
        "models/owner/one/snapshots/{COMMIT}/model-Q1_0.gguf"
    ))
}

#[test]
fn pulls_the_only_gguf_through_the_redirect_then_reuses_the_cache() {
    let mock = MockHub::start(repos(), Faults::default());
    let cache = tmp("pull");
    let hub = Hub::new(config(&mock, &cache));
    let p = hub.pull(&r("owner/one")).unwrap();
    assert_eq!(p, final_path(&cache));
    assert_eq!(std::fs::read(&p).unwrap(), expected());
    let reqs = mock.requests();
    let methods: Vec<_> = reqs
        .iter()
        .map(|q| (q.method.as_str(), q.path.as_str()))
        .collect();
    assert_eq!(
        methods,
        [
            ("GET", "/api/models/owner/one/revision/main"),
            ("HEAD", "/owner/one/resolve/main/model-Q1_0.gguf"),
            ("GET", "/storage/owner/one/model-Q1_0.gguf"),
        ]
    );
    assert_eq!(
        std::fs::read_to_string(cache.join("models/owner/one/refs/main")).unwrap(),
        COMMIT
    );
    // Again, with and without FILE: no request at all.
    let n = mock.requests().len();
    assert_eq!(hub.pull(&r("owner/one")).unwrap(), p);
    assert_eq!(hub.pull(&r("owner/one:model-Q1_0.gguf")).unwrap(), p);
    assert_eq!(
        mock.requests().len(),
        n,
        "the cache is used without requests"
    );
    // A listing shows it.
    let list = hub.cache().list();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].repo, "owner/one");
    assert_eq!(list[0].file, "model-Q1_0.gguf");
    assert_eq!(list[0].size, 300_000);
}

#[test]
fn named_file_and_token() {
    let mock = MockHub::start(repos(), Faults::default());
    let cache = tmp("named");
    let mut cfg = config(&mock, &cache);
    cfg.token = Some("good-token".into());
    let hub = Hub::new(cfg);
    let p = hub.pull(&r("owner/gated:g.gguf")).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), content(5000, 4));
    let reqs = mock.requests();
    // FILE given: no listing; the token goes to the endpoint.
    assert_eq!(reqs[0].method, "HEAD");
    assert!(reqs
        .iter()
        .all(|q| q.auth.as_deref() == Some("Bearer good-token")));
}

#[test]
fn resumes_within_the_run_after_cut_connections() {
    // Every storage answer stops after 70 kB: five GETs, four with Range.
    let mock = MockHub::start(
        repos(),
        Faults {
            cut_after: Some(70_000),
            ..Default::default()
        },
    );
    let cache = tmp("cut");
    let hub = Hub::new(config(&mock, &cache));
    let p = hub.pull(&r("owner/one:model-Q1_0.gguf")).unwrap();
    let got = std::fs::read(&p).unwrap();
    assert_eq!(sha256_hex(&got), sha256_hex(&expected()));
    let ranges: Vec<_> = mock
        .requests()
        .into_iter()
        .filter(|q| q.path.starts_with("/storage"))
        .map(|q| q.range)
        .collect();
    assert_eq!(
        ranges,
        [
            None,
            Some("bytes=70000-".into()),
            Some("bytes=140000-".into()),
            Some("bytes=210000-".into()),
            Some("bytes=280000-".into()),
        ]
    );
    assert!(!Path::new(&format!("{}.part", p.display())).exists());
}

#[test]
fn a_later_run_resumes_the_partial_file() {
    let mock = MockHub::start(repos(), Faults::default());
    let cache = tmp("resume-later");
    let dest = final_path(&cache);
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    // What an earlier, interrupted run left.
    std::fs::write(format!("{}.part", dest.display()), &expected()[..123_456]).unwrap();
    std::fs::create_dir_all(cache.join("models/owner/one/refs")).unwrap();
    let hub = Hub::new(config(&mock, &cache));
    let p = hub.pull(&r("owner/one:model-Q1_0.gguf")).unwrap();
    assert_eq!(p, dest);
    assert_eq!(std::fs::read(&p).unwrap(), expected());
    let storage: Vec<_> = mock
        .requests()
        .into_iter()
        .filter(|q| q.path.starts_with("/storage"))
        .collect();
    assert_eq!(storage.len(), 1);
    assert_eq!(storage[0].range.as_deref(), Some("bytes=123456-"));
}

#[test]
fn a_failed_run_leaves_the_part_and_the_next_run_resumes_it() {
    // The first answer stops after 100 kB, the next four send nothing: the
    // run gives up after 1 + 3 retries without progress.
    let mock = MockHub::start(
        repos(),
        Faults {
            schedule: vec![100_000, 0, 0, 0, 0],
            ..Default::default()
        },
    );
    let cache = tmp("cut-then-resume");
    let hub = Hub::new(config(&mock, &cache));
    let e = hub.pull(&r("owner/one:model-Q1_0.gguf")).unwrap_err();
    assert!(matches!(e, HubError::Download { .. }), "{e}");
    assert!(e.to_string().contains("owner/one:model-Q1_0.gguf"), "{e}");
    let dest = final_path(&cache);
    assert!(!dest.exists());
    let part = PathBuf::from(format!("{}.part", dest.display()));
    assert_eq!(std::fs::metadata(&part).unwrap().len(), 100_000);
    // The next run asks for the rest only.
    let p = hub.pull(&r("owner/one:model-Q1_0.gguf")).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), expected());
    assert!(!part.exists());
    let ranges: Vec<_> = mock
        .requests()
        .into_iter()
        .filter(|q| q.path.starts_with("/storage"))
        .map(|q| q.range)
        .collect();
    assert_eq!(ranges.len(), 6);
    assert_eq!(ranges[0], None);
    assert!(
        ranges[1..]
            .iter()
            .all(|r| r.as_deref() == Some("bytes=100000-")),
        "{ranges:?}"
    );
}

#[test]
fn a_server_ignoring_range_restarts_from_zero() {
    let mock = MockHub::start(
        repos(),
        Faults {
            ignore_range: true,
            ..Default::default()
        },
    );
    let cache = tmp("no-range");
    let dest = final_path(&cache);
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::write(
        format!("{}.part", dest.display()),
        b"garbage that is not the file",
    )
    .unwrap();
    let hub = Hub::new(config(&mock, &cache));
    let p = hub.pull(&r("owner/one:model-Q1_0.gguf")).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), expected());
}

#[test]
fn a_corrupted_byte_is_an_error_and_leaves_nothing() {
    let mock = MockHub::start(
        repos(),
        Faults {
            corrupt: true,
            ..Default::default()
        },
    );
    let cache = tmp("corrupt");
    let hub = Hub::new(config(&mock, &cache));
    let e = hub.pull(&r("owner/one:model-Q1_0.gguf")).unwrap_err();
    assert!(matches!(e, HubError::Checksum { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("sha256 mismatch") && msg.contains("owner/one:model-Q1_0.gguf"),
        "{msg}"
    );
    assert!(msg.contains(&sha256_hex(&expected())), "{msg}");
    let dest = final_path(&cache);
    assert!(!dest.exists());
    assert!(!Path::new(&format!("{}.part", dest.display())).exists());
    assert!(hub.cache().list().is_empty());
}

#[test]
fn gated_repo() {
    let mock = MockHub::start(repos(), Faults::default());
    let cache = tmp("gated");
    // No token: 401; a token without access: 403. Both say what to do.
    for token in [None, Some("bad-token")] {
        let mut cfg = config(&mock, &cache);
        cfg.token = token.map(str::to_string);
        let e = Hub::new(cfg).pull(&r("owner/gated:g.gguf")).unwrap_err();
        assert!(matches!(e, HubError::Gated { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("owner/gated")
                && msg.contains("gated")
                && msg.contains("HF_TOKEN")
                && msg.contains("terms"),
            "{msg}"
        );
    }
}

#[test]
fn not_found_errors() {
    let mock = MockHub::start(repos(), Faults::default());
    let cache = tmp("404");
    let hub = Hub::new(config(&mock, &cache));
    let e = hub.pull(&r("owner/missing")).unwrap_err();
    assert!(matches!(e, HubError::RepoNotFound { .. }), "{e}");
    assert!(e.to_string().contains("owner/missing"), "{e}");
    let e = hub.pull(&r("owner/missing:x.gguf")).unwrap_err();
    assert!(matches!(e, HubError::RepoNotFound { .. }), "{e}");
    let e = hub.pull(&r("owner/one:nope.gguf")).unwrap_err();
    assert!(matches!(e, HubError::EntryNotFound { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("nope.gguf") && msg.contains("owner/one"),
        "{msg}"
    );
    let e = hub
        .pull(&r("owner/one").with_revision("v9").unwrap())
        .unwrap_err();
    assert!(matches!(e, HubError::RevisionNotFound { .. }), "{e}");
    assert!(e.to_string().contains("v9"), "{e}");
}

#[test]
fn several_ggufs_are_listed() {
    let mock = MockHub::start(repos(), Faults::default());
    let cache = tmp("several");
    let hub = Hub::new(config(&mock, &cache));
    let e = hub.pull(&r("owner/many")).unwrap_err();
    assert!(matches!(e, HubError::SeveralGguf { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("a-Q4_0.gguf") && msg.contains("b-Q8_0.gguf"),
        "{msg}"
    );
    assert!(msg.contains("owner/many:FILE"), "{msg}");
    // Picking one works.
    let p = hub.pull(&r("owner/many:b-Q8_0.gguf")).unwrap();
    assert_eq!(std::fs::read(p).unwrap(), content(1000, 3));
}

#[test]
fn offline_with_and_without_the_cache() {
    let mock = MockHub::start(repos(), Faults::default());
    let cache = tmp("offline");
    let online = Hub::new(config(&mock, &cache));
    let p = online.pull(&r("owner/one")).unwrap();
    let n = mock.requests().len();
    let mut cfg = config(&mock, &cache);
    cfg.offline = true;
    let offline = Hub::new(cfg);
    assert_eq!(offline.pull(&r("owner/one")).unwrap(), p);
    assert_eq!(offline.pull(&r("owner/one:model-Q1_0.gguf")).unwrap(), p);
    let e = offline.pull(&r("owner/many:a-Q4_0.gguf")).unwrap_err();
    assert!(matches!(e, HubError::NotCached { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("owner/many:a-Q4_0.gguf")
            && msg.contains("not in the cache")
            && msg.contains("offline"),
        "{msg}"
    );
    assert_eq!(mock.requests().len(), n, "offline makes no request");
}

#[test]
fn unreachable_hub_falls_back_to_the_cache() {
    let mock = MockHub::start(repos(), Faults::default());
    let cache = tmp("unreachable");
    let p = Hub::new(config(&mock, &cache))
        .pull(&r("owner/one"))
        .unwrap();
    // A port nobody listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = dead.local_addr().unwrap();
    drop(dead);
    let mut cfg = config(&mock, &cache);
    cfg.endpoint = format!("http://{addr}");
    let hub = Hub::new(cfg);
    assert_eq!(hub.pull(&r("owner/one")).unwrap(), p);
    let e = hub.pull(&r("owner/one:README.md")).unwrap_err();
    assert!(matches!(e, HubError::NotCached { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("owner/one:README.md") && msg.contains("could not be reached"),
        "{msg}"
    );
}

#[test]
fn remove_from_the_cache() {
    let mock = MockHub::start(repos(), Faults::default());
    let cache = tmp("rm");
    let hub = Hub::new(config(&mock, &cache));
    hub.pull(&r("owner/many:a-Q4_0.gguf")).unwrap();
    hub.pull(&r("owner/many:b-Q8_0.gguf")).unwrap();
    hub.pull(&r("owner/one")).unwrap();
    assert_eq!(hub.cache().list().len(), 3);
    let removed = hub.cache().remove(&r("owner/many:a-Q4_0.gguf")).unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(hub.cache().list().len(), 2);
    assert!(hub.cache().remove(&r("owner/many:a-Q4_0.gguf")).is_err());
    hub.cache().remove(&r("owner/one")).unwrap();
    let left = hub.cache().list();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].file, "b-Q8_0.gguf");
    let e = hub.cache().remove(&r("owner/one")).unwrap_err();
    assert!(e.to_string().contains("not in the cache"), "{e}");
}

#[test]
fn concurrent_pulls_download_once() {
    let mock = MockHub::start(
        repos(),
        Faults {
            // Slow it down: several answers per download.
            cut_after: Some(60_000),
            ..Default::default()
        },
    );
    let cache = tmp("concurrent");
    let cfg = config(&mock, &cache);
    let paths: Vec<PathBuf> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let cfg = cfg.clone();
                s.spawn(move || Hub::new(cfg).pull(&r("owner/one:model-Q1_0.gguf")).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(paths.iter().all(|p| *p == final_path(&cache)));
    assert_eq!(std::fs::read(&paths[0]).unwrap(), expected());
    let first_gets = mock
        .requests()
        .into_iter()
        .filter(|q| q.path.starts_with("/storage") && q.range.is_none())
        .count();
    assert_eq!(first_gets, 1, "one download from byte 0");
}

#[test]
fn absolute_storage_url_and_retried_503s() {
    let mock = MockHub::start(
        repos(),
        Faults {
            absolute_location: true,
            unavailable: 2,
            ..Default::default()
        },
    );
    let cache = tmp("absolute-503");
    let hub = Hub::new(config(&mock, &cache));
    let p = hub.pull(&r("owner/one:model-Q1_0.gguf")).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), expected());
    let storage = mock
        .requests()
        .into_iter()
        .filter(|q| q.path.starts_with("/storage"))
        .count();
    assert_eq!(storage, 3, "two 503s, then the file");
    // Persistent 503s give up after the configured retries, naming the file.
    let mock = MockHub::start(
        repos(),
        Faults {
            unavailable: 100,
            ..Default::default()
        },
    );
    let cache = tmp("absolute-503-fail");
    let e = Hub::new(config(&mock, &cache))
        .pull(&r("owner/one:model-Q1_0.gguf"))
        .unwrap_err();
    assert!(matches!(e, HubError::Download { attempts: 4, .. }), "{e}");
    assert!(e.to_string().contains("503"), "{e}");
}
