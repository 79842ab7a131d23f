//! `--model-draft` / `--lookup` on `run` and `chat`: the same output as
//! without them, the draft statistics in `--json`, a draft with another
//! vocabulary refused, and (ignored, run by hand) the speed-up measurement.

mod common;
#[path = "../../engine/tests/qwen35/gen.rs"]
#[allow(dead_code)]
mod gen;
use common::*;
use serde_json::Value;

fn run_json(model: &str, prompt: &str, n: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "run", "-m", model, "-t", "2", "-p", prompt, "-n", n, "--temp", "0", "--json",
    ];
    args.extend_from_slice(extra);
    shohin(&args).ok().json()
}

#[test]
fn speculation_changes_nothing_in_run_and_chat() {
    let model = s(&tiny());
    let draft = s(&fixture("tiny-q2_0.gguf"));
    let prompt = "a b c a b c a b";
    let want = run_json(&model, prompt, "32", &[]);
    assert!(want.get("draft").is_none());
    for extra in [
        &["--lookup"][..],
        &["--lookup", "--lookup-ngram", "1", "--draft-max", "3"],
        &["-md", &draft, "--draft-p-min", "0"],
        &[
            "--model-draft",
            &model,
            "--draft-p-min",
            "0",
            "--draft-min",
            "2",
        ],
    ] {
        let got = run_json(&model, prompt, "32", extra);
        assert_eq!(got["tokens"], want["tokens"], "{extra:?}");
        assert_eq!(got["text"], want["text"], "{extra:?}");
        let d = &got["draft"];
        let (drafted, accepted) = (
            d["drafted"].as_u64().unwrap(),
            d["accepted"].as_u64().unwrap(),
        );
        assert!(drafted > 0 && accepted <= drafted, "{extra:?}: {d}");
        let rate = d["acceptance"].as_f64().unwrap();
        assert!((rate - accepted as f64 / drafted as f64).abs() < 1e-9);
    }
    // The target drafting for itself: every draft accepted.
    let got = run_json(&model, prompt, "32", &["-md", &model, "--draft-p-min", "0"]);
    assert_eq!(got["draft"]["acceptance"], 1.0);

    let chat = |extra: &[&str]| {
        let mut args = vec!["chat", "-m", &model, "-t", "2", "-p", "hello", "-n", "24"];
        args.extend_from_slice(&["--temp", "0"]);
        args.extend_from_slice(extra);
        shohin(&args).ok()
    };
    let want = chat(&[]);
    for extra in [&["--lookup"][..], &["-md", &model, "--draft-p-min", "0"]] {
        let got = chat(extra);
        assert_eq!(got.stdout, want.stdout, "{extra:?}");
        assert!(got.stderr.contains("draft: "), "{got}");
    }
}

#[test]
fn a_draft_with_another_vocabulary_is_refused() {
    let target = s(&real_model());
    // SmolLM2 (a llama BPE vocabulary of 49,152 tokens) cannot draft for
    // Qwen2.5 (151,936).
    let smol = s(&shohin_test_support::llama_model());
    let out = shohin(&["run", "-m", &target, "-md", &smol, "-p", "hi", "-n", "4"]);
    assert_error(
        &out,
        &[
            "cannot draft for",
            &smol,
            &target,
            "vocabulary sizes differ",
        ],
    );
}

#[test]
fn bad_speculation_flags() {
    let model = s(&tiny());
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "-m", &model, "-t", "1", "-p", "hi", "-n", "2"];
        args.extend_from_slice(extra);
        shohin(&args)
    };
    assert_error(&run(&["--lookup", "--draft-max", "0"]), &["--draft-max 0"]);
    assert_error(
        &run(&["-md", &model, "--draft-p-min", "2"]),
        &["--draft-p-min 2"],
    );
    assert_error(
        &run(&["--lookup", "--lookup-ngram", "0"]),
        &["--lookup-ngram 0"],
    );
    assert_error(
        &run(&["--lookup", "--json", "--logits-top", "3"]),
        &["--logits-top cannot be combined"],
    );
    // Two drafters at once: a usage error.
    assert_fails_with(&run(&["--lookup", "-md", &model]), 2, &["--lookup"]);
}

/// The measurement of the report: the real model repeating a ~300-token
/// code snippet (crates/engine/tests/data/speculative_repeat_prompt.txt),
/// greedy, 320 tokens at most: generation t/s without speculation, with
/// `--lookup`, and with a Q4_0 requantization of the model itself as the
/// draft (a high-acceptance draft that is no smaller: it shows the
/// acceptance, not a speed-up). Run with
/// `cargo test --release -p shohin-cli --test speculative_cli -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement (about a minute): run by hand"]
fn measure_speculative_speedup() {
    let target = s(&real_model());
    let dir = scratch("measure_speculative_speedup");
    let q4 = s(&dir.join("draft-q4_0.gguf"));
    shohin(&["quantize", &target, &q4, "Q4_0", "--allow-requantize"]).ok();
    let prompt = include_str!("../../engine/tests/data/speculative_repeat_prompt.txt");
    let base = run_json(&target, prompt, "320", &[]);
    let tps = |v: &Value| v["timings"]["decode_per_second"].as_f64().unwrap();
    eprintln!(
        "plain: {} tokens, {:.1} t/s",
        base["tokens"].as_array().unwrap().len(),
        tps(&base)
    );
    for (name, extra) in [
        ("--lookup", vec!["--lookup"]),
        ("-md Q4_0", vec!["-md", q4.as_str()]),
    ] {
        let got = run_json(&target, prompt, "320", &extra);
        assert_eq!(got["tokens"], base["tokens"], "{name}");
        let d = &got["draft"];
        eprintln!(
            "{name}: {:.1} t/s ({:.2}x), drafted {}, accepted {} ({:.1}%)",
            tps(&got),
            tps(&got) / tps(&base),
            d["drafted"],
            d["accepted"],
            100.0 * d["acceptance"].as_f64().unwrap()
        );
        if name == "--lookup" {
            assert!(tps(&got) >= 1.5 * tps(&base), "lookup speed-up below 1.5x");
        }
    }
}

/// `bench --spec-prompt`: plain and speculative generation of the same
/// prompt, the outputs checked equal inside, tokens/s of both and the
/// drafts' statistics in `--json`; without a drafter it is an error.
#[test]
fn bench_measures_speculation() {
    let model = s(&tiny());
    let dir = scratch("bench_measures_speculation");
    let prompt = dir.join("prompt.txt");
    std::fs::write(&prompt, "one two three one two three one two three one two").unwrap();
    let p = s(&prompt);
    let base = [
        "bench",
        "-m",
        &model,
        "-t",
        "1",
        "-n",
        "24",
        "-r",
        "1",
        "--spec-prompt",
        &p,
    ];
    let v = shohin(&[&base[..], &["--lookup", "--json"]].concat())
        .ok()
        .json();
    assert_eq!(v["n_gen"], 24);
    assert!(v["avg_plain_ts"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["speedup"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["draft"]["drafted"].as_u64().is_some(), "{v}");
    assert_error(
        &shohin(&base),
        &["--spec-prompt needs --lookup or --model-draft"],
    );
    assert_error(
        &shohin(&[
            "bench", "-m", &model, "-t", "1", "-p", "8", "-n", "8", "--lookup",
        ]),
        &["need --spec-prompt"],
    );
}

/// A hybrid (qwen35, Bonsai 2) target speculates with lookup: `run` gives
/// plain decoding's tokens.
/// A hybrid draft is refused by `run` and by `serve` (before binding).
#[test]
fn a_hybrid_target_speculates_and_a_hybrid_draft_is_refused() {
    let dir = scratch("hybrid_speculation");
    let path = dir.join("qwen35-q1_0.gguf");
    std::fs::write(&path, gen::build(shohin_gguf::GgmlType::Q1_0, false)).unwrap();
    let (q35, draft) = (s(&path), s(&tiny()));
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "-m",
            &q35,
            "-p",
            "one two three one two three one two",
            "-n",
            "24",
            "--temp",
            "0",
            "-t",
            "2",
            "--json",
        ];
        args.extend_from_slice(extra);
        shohin(&args).ok().json()
    };
    let want = run(&[]);
    // (The engine's tests run a qwen3 draft model for qwen35 targets; the
    // tiny fixture's added tokens differ from these synthetic files'.)
    let got = run(&["--lookup"]);
    assert_eq!(got["tokens"], want["tokens"], "--lookup");
    assert!(got["draft"]["drafted"].is_u64(), "{got}");
    let out = shohin(&["run", "-m", &draft, "-md", &q35, "-p", "hi", "-n", "4"]);
    assert_error(&out, &["draft", "hybrid"]);
    let out = shohin(&["serve", "-m", &draft, "-md", &q35, "--port", "0"]);
    assert_error(&out, &["draft model", "hybrid"]);
    assert!(!out.stderr.contains("listening"), "{out}");
}
