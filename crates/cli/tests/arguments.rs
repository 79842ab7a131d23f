//! Bad command-line arguments. Two kinds of failure, two exit codes:
//!
//! * flags clap cannot parse (not a number, an unknown flag, a missing
//!   required flag, a negative number where none is allowed) exit with
//!   clap's usage code 2 and `error: ...` plus a pointer to `--help`;
//! * values that parse but make no sense (`--ctx-size 0`, `--top-p 2`,
//!   `--temp NaN`, `-n -5`, ...) are the binary's own errors: exit code 1
//!   and `error: <which flag, why>`.

mod common;
use common::*;

/// `run` on the tiny model with one thread. clap refuses a repeated flag,
/// so tests that set `-t` themselves build their own arguments.
fn run_tiny(extra: &[&str]) -> Out {
    let model = s(&tiny());
    let mut args = vec!["run", "-m", &model, "-t", "1"];
    args.extend_from_slice(extra);
    shohin(&args)
}

#[test]
fn context_size_out_of_range() {
    let out = run_tiny(&["-p", "hi", "-n", "1", "--ctx-size", "0"]);
    assert_error(&out, &["--ctx-size 0", "at least 1"]);
    // The tiny model's qwen3.context_length is 4096.
    let out = run_tiny(&["-p", "hi", "-n", "1", "--ctx-size", "4097"]);
    assert_error(&out, &["--ctx-size 4097", "4096"]);
    let model = s(&tiny());
    let out = shohin(&["chat", "-m", &model, "-p", "hi", "-c", "0"]);
    assert_error(&out, &["--ctx-size 0"]);
}

#[test]
fn prompt_longer_than_context() {
    // 13 tokens with the Qwen vocabulary.
    let prompt = "one_two_three_four_five_six_seven_eight_nine";
    let out = run_tiny(&["-p", prompt, "-n", "1", "--ctx-size", "8"]);
    assert_error(
        &out,
        &["prompt has 13 tokens", "context holds 8", "--ctx-size"],
    );
}

#[test]
fn generation_stops_at_a_full_context() {
    // "Once upon a time" is 4 tokens: with 5 positions, one generated token
    // is evaluated and a second sampled, then the context is full.
    let out = run_tiny(&[
        "-p",
        "Once upon a time",
        "-n",
        "50",
        "--temp",
        "0",
        "--ctx-size",
        "5",
        "--json",
    ])
    .ok();
    let j = out.json();
    assert_eq!(ids(&j["prompt_tokens"]).len(), 4, "{out}");
    assert_eq!(ids(&j["tokens"]).len(), 2, "{out}");
}

#[test]
fn negative_n_predict() {
    let out = run_tiny(&["-p", "hi", "-n", "-5"]);
    assert_error(&out, &["-n/--n-predict", "-5"]);
    let model = s(&tiny());
    let out = shohin(&["chat", "-m", &model, "-p", "hi", "-n", "-2"]);
    assert_error(&out, &["-n/--n-predict", "-2"]);
}

#[test]
fn sampling_values_out_of_range() {
    let cases: [(&[&str], &[&str]); 8] = [
        (&["--temp", "-1"], &["temperature", "-1"]),
        (&["--top-p", "2"], &["top_p", "2"]),
        (&["--top-p", "0"], &["top_p"]),
        (&["--temp", "NaN"], &["temperature", "NaN"]),
        (&["--temp", "inf"], &["temperature", "inf"]),
        (&["--min-p", "1.5"], &["min_p", "1.5"]),
        (&["--repeat-penalty", "0"], &["repeat_penalty"]),
        (&["--presence-penalty", "NaN"], &["presence_penalty"]),
    ];
    for (flags, needles) in cases {
        let mut args = vec!["-p", "hi", "-n", "1"];
        args.extend_from_slice(flags);
        let out = run_tiny(&args);
        assert_error(&out, needles);
    }
}

#[test]
fn logits_top_needs_json() {
    let out = run_tiny(&["-p", "hi", "-n", "1", "--logits-top", "5"]);
    assert_error(&out, &["--logits-top", "--json"]);
}

#[test]
fn zero_threads_means_all_cores() {
    let model = s(&tiny());
    let args = [
        "run", "-m", &model, "-p", "hi", "-n", "2", "-t", "0", "--temp", "0", "--json",
    ];
    let out = shohin(&args).ok();
    assert_eq!(ids(&out.json()["tokens"]).len(), 2, "{out}");
    // `run` does not report its thread count; `bench --json` does, and both
    // build the backend with the same `CpuBackend::new(threads)`.
    let cores = std::thread::available_parallelism()
        .expect("available_parallelism")
        .get();
    for t in ["0", "1"] {
        let args = [
            "bench", "-m", &model, "-t", t, "-p", "0", "-n", "1", "-r", "1", "--json",
        ];
        let out = shohin(&args).ok();
        let j: serde_json::Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("bench --json ({e}): {out}"));
        let want = if t == "0" { cores } else { 1 };
        assert_eq!(
            j[0]["n_threads"].as_u64(),
            Some(want as u64),
            "-t {t} on {cores} cores: {out}"
        );
    }
}

#[test]
fn unparsable_flags_exit_with_usage_code_2() {
    let model = s(&tiny());
    let m = model.as_str();
    // `run` without -m takes the default model from the hub: see pull.rs.
    let cases: [(&[&str], &str); 8] = [
        (
            &["run", "-m", m, "-p", "hi", "--ctx-size", "abc"],
            "--ctx-size",
        ),
        (&["run", "-m", m, "-p", "hi", "--ctx-size", "-1"], "-1"),
        (&["run", "-m", m, "-p", "hi", "--temp", "warm"], "--temp"),
        (&["run", "-m", m, "-p", "hi", "--bogus"], "--bogus"),
        (&["run", "-m", m], "--prompt"),
        (&["frobnicate"], "frobnicate"),
        (
            &["run", "-m", m, "-p", "hi", "--cache-type", "q4_0"],
            "q8_0",
        ),
        (
            &["run", "-m", m, "-p", "hi", "-ctk", "f64"],
            "--cache-type-k",
        ),
    ];
    for (args, needle) in cases {
        let out = shohin(args);
        assert_fails_with(&out, 2, &[needle, "--help"]);
    }
    // No subcommand at all: clap prints the help to stderr, code 2.
    let out = shohin::<&str>(&[]);
    assert_eq!(out.code(), Some(2), "{out}");
    assert!(out.stderr.contains("Usage"), "{out}");
}

#[test]
fn help_and_version_succeed() {
    let out = shohin(&["--version"]).ok();
    assert!(out.stdout.starts_with("shohin "), "{out}");
    for sub in ["run", "chat", "tokenize", "info"] {
        let out = shohin(&[sub, "--help"]).ok();
        assert!(out.stdout.contains("--model"), "{out}");
    }
}

#[test]
fn too_many_threads() {
    // Thousands of pool threads used to take minutes (a hang to the user);
    // the cap is ggml's GGML_MAX_N_THREADS.
    let model = s(&tiny());
    let out = shohin(&["run", "-m", &model, "-p", "hi", "-n", "1", "-t", "100000"]);
    assert_error(&out, &["-t/--threads 100000", "512"]);
    let out = shohin(&["chat", "-m", &model, "-p", "hi", "-t", "513"]);
    assert_error(&out, &["-t/--threads 513"]);
}

#[test]
fn empty_prompt() {
    // The Qwen vocabulary adds no BOS: "" has no tokens to evaluate.
    let out = run_tiny(&["-p", "", "-n", "1"]);
    assert_error(&out, &["prompt is empty"]);
    // Tokenizing "" is fine: no ids.
    let model = s(&tiny());
    let out = shohin(&["tokenize", "--json", "-m", &model, ""]).ok();
    assert_eq!(out.json()["ids"], serde_json::json!([]), "{out}");
}
