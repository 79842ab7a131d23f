//! The RoPE scaling flags (llama.cpp's `--rope-scaling`, `--rope-scale`,
//! `--yarn-*`, ...): bad values are the binary's own errors (exit 1, naming
//! the flag), and scaling lets `--ctx-size` go past the training context
//! (the tiny model's qwen3.context_length is 4096), up to the scaled one.

mod common;
use common::*;

fn run_tiny(extra: &[&str]) -> Out {
    let model = s(&tiny());
    let mut args = vec!["run", "-m", &model, "-t", "1", "-p", "hi", "-n", "1"];
    args.extend_from_slice(extra);
    shohin(&args)
}

#[test]
fn bad_rope_values_exit_1_naming_the_flag() {
    let cases: [(&[&str], &[&str]); 6] = [
        (&["--rope-scaling", "cubic"], &["--rope-scaling", "cubic"]),
        (&["--rope-scale", "0"], &["--rope-scale", "0"]),
        (&["--rope-scale=-2"], &["--rope-scale"]),
        (&["--rope-freq-base", "nan"], &["--rope-freq-base", "NaN"]),
        (&["--yarn-beta-slow", "0"], &["--yarn-beta-slow"]),
        (&["--yarn-ext-factor=-1"], &["--yarn-ext-factor"]),
    ];
    for (flags, needles) in cases {
        assert_error(&run_tiny(flags), needles);
    }
    // The same check for a command with its own model flags.
    let model = s(&tiny());
    let out = shohin(&[
        "bench",
        "-m",
        &model,
        "-p",
        "4",
        "-n",
        "0",
        "-r",
        "1",
        "--rope-scale",
        "0",
    ]);
    assert_error(&out, &["--rope-scale"]);
}

#[test]
fn context_past_training_needs_scaling() {
    let out = run_tiny(&["-c", "8192"]);
    assert_error(&out, &["--ctx-size 8192", "4096"]);
    run_tiny(&["-c", "8192", "--rope-scaling", "yarn", "--rope-scale", "4"]).ok();
    run_tiny(&["-c", "8192", "--rope-scale", "2"]).ok();
    // Up to the scaled length (4096 x 4), not beyond; `none` ignores the factor.
    let out = run_tiny(&["-c", "16385", "--rope-scaling", "yarn", "--rope-scale", "4"]);
    assert_error(&out, &["--ctx-size 16385", "16384"]);
    let out = run_tiny(&["-c", "8192", "--rope-scaling", "none", "--rope-scale", "4"]);
    assert_error(&out, &["--ctx-size 8192"]);
}

#[test]
fn info_shows_the_scaling() {
    let model = s(&tiny());
    let j = shohin(&["info", "-m", &model, "--json"]).ok().json();
    assert_eq!(j["rope"]["scaling"], "linear", "{j}");
    assert_eq!(j["rope"]["freq_scale"], 1.0, "{j}");
    assert_eq!(j["rope"]["max_ctx"], 4096, "{j}");
}
