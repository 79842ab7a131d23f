//! `shohin serve --lookup` and `serve -md` (speculative decoding per slot):
//! a greedy completion equals `shohin run`'s, the usage reports the same
//! draft counts as `run` with the same drafter, /metrics the draft
//! counters; a draft with another vocabulary is refused before the server
//! starts.

mod common;
use common::serve::{http_get, http_post_json, start_server};
use common::*;

/// Text that repeats: prompt lookup drafts from it.
const PROMPT: &str = "one two three four five six seven eight one two three four five six seven eight one two three four";
const N: usize = 64;

/// POST the JSON `body` to `path`: the 200 response's JSON body.
fn post(port: u16, path: &str, body: &serde_json::Value) -> serde_json::Value {
    let (status, json) = http_post_json(port, path, &body.to_string(), 120);
    assert_eq!(status, 200, "{json}");
    json
}

/// The value of an unlabelled counter in a Prometheus text page.
fn counter(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{page}"))
        .trim()
        .parse()
        .unwrap()
}

/// `shohin run -m tiny -p PROMPT` greedy with `extra` flags, as JSON.
fn run_json(extra: &[&str]) -> serde_json::Value {
    let n = N.to_string();
    let mut args = vec![
        "run", "-m", "", "-p", PROMPT, "-n", &n, "--temp", "0", "-t", "2", "--json",
    ];
    let model = s(&tiny());
    args[2] = &model;
    args.extend_from_slice(extra);
    shohin(&args).ok().json()
}

/// `serve` with the drafter of `spec` (flags) answers two concurrent
/// requests as `run` does, and counts the drafts as `run` with `spec` does.
/// Returns the server, still running.
fn serve_answers_as_run(spec: &[&str]) -> common::serve::Server {
    let run = run_json(&[]);
    let want = run["text"].as_str().unwrap().to_string();
    let n_run = run["tokens"].as_array().unwrap().len();
    // `run` drafts the same way (the same drafter and schedule): the same
    // counts are expected from a slot.
    let run_spec = run_json(spec);
    assert_eq!(run_spec["text"], want.as_str(), "run {spec:?} != run");

    let mut flags = spec.to_vec();
    flags.extend_from_slice(&["--parallel", "2"]);
    let server = start_server(&tiny(), &flags);
    let body = serde_json::json!({
        "prompt": PROMPT,
        "max_tokens": N,
        "temperature": 0,
    });
    // Two at once: verified spans batched with another slot's span.
    let port = server.port;
    let b = body.clone();
    let other = std::thread::spawn(move || post(port, "/v1/completions", &b));
    let got = post(port, "/v1/completions", &body);
    let got2 = other.join().unwrap();
    for g in [&got, &got2] {
        assert_eq!(
            g["choices"][0]["text"],
            want.as_str(),
            "serve {spec:?} != run"
        );
        assert_eq!(g["usage"]["completion_tokens"], n_run);
    }
    let d = &got["usage"]["draft"];
    eprintln!("{spec:?}: usage.draft: {d}");
    let (drafted, accepted) = (
        d["drafted"].as_u64().unwrap(),
        d["accepted"].as_u64().unwrap(),
    );
    assert!(accepted > 0 && accepted <= drafted, "{d}");
    assert_eq!(d["drafted"], run_spec["draft"]["drafted"]);
    assert_eq!(d["accepted"], run_spec["draft"]["accepted"]);

    let (status, page) = http_get(server.port, "/metrics");
    assert_eq!(status, 200);
    let total = counter(&page, "shohin_draft_tokens_total");
    let kept = counter(&page, "shohin_draft_accepted_total");
    eprintln!("/metrics: drafted {total}, accepted {kept}");
    assert!(total >= drafted as f64 && kept >= accepted as f64 && kept > 0.0);
    server
}

#[test]
fn serve_lookup_answers_as_run_and_counts_drafts() {
    serve_answers_as_run(&["--lookup"]);
}

#[test]
fn serve_with_a_draft_model_answers_as_run_and_counts_drafts() {
    // The tiny model drafting for itself (every token, whatever its
    // probability): its greedy drafts are all accepted.
    let model = s(&tiny());
    let server = serve_answers_as_run(&["-md", &model, "--draft-p-min", "0"]);
    // The Responses and Anthropic Messages usages carry the counts too.
    let msg = serde_json::json!({"role": "user", "content": PROMPT});
    let responses = post(
        server.port,
        "/v1/responses",
        &serde_json::json!({"input": [msg], "max_output_tokens": 16, "temperature": 0}),
    );
    let messages = post(
        server.port,
        "/v1/messages",
        &serde_json::json!({"messages": [msg], "max_tokens": 16, "temperature": 0}),
    );
    for (api, r) in [("responses", &responses), ("messages", &messages)] {
        let d = &r["usage"]["draft"];
        eprintln!("{api}: usage.draft {d}");
        let drafted = d["drafted"]
            .as_u64()
            .unwrap_or_else(|| panic!("{api}: {r}"));
        assert!(
            drafted > 0 && d["accepted"].as_u64().unwrap() <= drafted,
            "{api}: {r}"
        );
    }
}

#[test]
fn serve_refuses_a_draft_with_another_vocabulary() {
    let target = s(&real_model());
    let smol = s(&shohin_test_support::llama_model());
    let out = shohin(&["serve", "-m", &target, "-md", &smol, "--port", "0"]);
    assert_error(
        &out,
        &[
            "cannot draft for",
            &smol,
            &target,
            "vocabulary sizes differ",
        ],
    );
    assert!(
        !out.stderr.contains("listening"),
        "refused before binding: {out}"
    );
}
