//! `shohin perplexity` on the real fixture model against llama-perplexity's
//! numbers, recorded by `data/gen_perplexity_golden.sh` into
//! `data/perplexity_golden.json` (the peer is not needed at run time).
//!
//! Tolerances: shohin's logits are not bit-equal to llama.cpp's (other
//! kernels and summation orders; golden_real allows 0.6 of drift per
//! logit). With 63 scored tokens per chunk at -c 128, a chunk's running
//! estimate moves by ~1% from such differences (switching shohin's own KV
//! cache from f16 to f32 moves the first chunk by 2%), so per-chunk
//! estimates get 1.5%, the final PPL 0.5% (measured 0.30%) and at -c 512
//! the 0.3% (measured 0.10%). The KL divergence of a Q4_0
//! requantization is a difference of two such computations: measured mean
//! KLD 0.3228 vs 0.3217 (0.35%), same top p equal, RMS Δp 15.78 vs 15.87 %;
//! the test allows 5% on the mean KLD, 2 points on same top p (llama.cpp
//! differs from itself by 0.7 points on near-ties), 5% on RMS Δp and the
//! PPL ratio, 10% on the median and the 90/95% percentiles (189 tokens:
//! the far tails are a handful of tokens and are not compared).

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn text() -> String {
    s(&data("declaration.txt"))
}

fn llama() -> Value {
    let p = data("perplexity_golden.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().expect("a number")
}

/// `shohin perplexity -m MODEL -f declaration.txt -t 2 ARGS...`
fn ppl_run(model: &Path, args: &[&str]) -> Out {
    let m = s(model);
    let t = text();
    let mut all = vec!["perplexity", "-m", &m, "-f", &t, "-t", "2"];
    all.extend_from_slice(args);
    shohin(&all)
}

/// The running estimates `[1]x,[2]y,...` and the final `(PPL, error)`.
fn parse_ppl(out: &Out) -> (Vec<f64>, f64, f64) {
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("[1]"))
        .unwrap_or_else(|| panic!("no running estimates: {out}"));
    let chunks = line
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| p.split(']').nth(1).unwrap().parse().unwrap())
        .collect();
    let fin = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Final estimate: PPL = "))
        .unwrap_or_else(|| panic!("no final estimate: {out}"));
    let (p, e) = fin.split_once(" +/- ").unwrap();
    (chunks, p.parse().unwrap(), e.parse().unwrap())
}

/// The first number after `label` at the start of a line.
fn stat(out: &Out, label: &str) -> f64 {
    let rest = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?}: {out}"));
    let num: String = rest
        .trim_start_matches([' ', ':'])
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
        .collect();
    num.parse()
        .unwrap_or_else(|_| panic!("{label:?}: {rest:?}: {out}"))
}

fn close(got: f64, want: f64, rel: f64, what: &str) {
    let d = (got - want).abs() / want.abs();
    assert!(
        d <= rel,
        "{what}: shohin {got} vs llama.cpp {want} ({:.3}% > {:.3}%)",
        d * 100.0,
        rel * 100.0
    );
}

fn check_ppl(out: &Out, want: &Value, chunk_tol: f64, final_tol: f64) {
    let (chunks, p, e) = parse_ppl(out);
    let wc: Vec<f64> = want["chunks"].as_array().unwrap().iter().map(f).collect();
    assert_eq!(chunks.len(), wc.len(), "number of chunks: {out}");
    for (i, (g, w)) in chunks.iter().zip(&wc).enumerate() {
        close(*g, *w, chunk_tol, &format!("chunk {}", i + 1));
    }
    close(p, f(&want["ppl"]), final_tol, "final PPL");
    close(e, f(&want["err"]), 2.0 * final_tol, "final PPL error");
}

#[test]
fn perplexity_c128_matches_llama_cpp() {
    // default -b 2048: all 8 chunks in one engine step
    let out = ppl_run(&real_model(), &["-c", "128"]).ok();
    check_ppl(&out, &llama()["c128"], 0.015, 0.005);
    assert!(out.stderr.contains("tokens/s"), "{out}");
}

#[test]
fn perplexity_c512_in_pieces_matches_llama_cpp() {
    // -b 256: each chunk runs in two steps over its cache
    let out = ppl_run(&real_model(), &["-c", "512", "-b", "256"]).ok();
    check_ppl(&out, &llama()["c512"], 0.015, 0.003);
}

/// The real model's base file (-c 128, 3 chunks), written once.
fn base() -> PathBuf {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = scratch("perplexity-base");
        let p = dir.join("base.kld");
        let out = ppl_run(
            &real_model(),
            &["-c", "128", "--chunks", "3", "--kl-divergence-base", &s(&p)],
        )
        .ok();
        check_ppl(&out, &llama()["kld_base_c128_chunks3"], 0.015, 0.01);
        let len = std::fs::metadata(&p).unwrap().len();
        assert_eq!(
            len,
            40 + 3 * 63 * (16 + 2 * 151_936),
            "header + 189 records"
        );
        p
    })
    .clone()
}

fn kld_run(model: &Path, base: &Path, args: &[&str]) -> Out {
    let b = s(base);
    let mut all = vec!["-c", "128", "--kl-divergence-base", &b, "--kl-divergence"];
    all.extend_from_slice(args);
    ppl_run(model, &all)
}

#[test]
fn kld_of_the_model_against_itself_is_zero() {
    let out = kld_run(&real_model(), &base(), &[]).ok();
    let kld = stat(&out, "Mean    KLD:");
    assert!(
        kld.abs() <= 1e-5,
        "mean KLD {kld} (the base's 16-bit code rounds by <= 1.3e-4 nats): {out}"
    );
    assert_eq!(stat(&out, "Same top p:"), 100.0, "{out}");
    assert_eq!(stat(&out, "RMS Δp    :"), 0.0, "{out}");
    assert_eq!(stat(&out, "Mean PPL(Q)/PPL(base)         :"), 1.0, "{out}");
    assert_eq!(
        out.stdout.lines().filter(|l| l.starts_with("   ")).count(),
        3,
        "a line per chunk: {out}"
    );
}

#[test]
fn kld_of_q4_0_matches_llama_cpp() {
    let dir = scratch("perplexity-q4_0");
    let q = dir.join("q4_0.gguf");
    shohin(&[
        "quantize",
        "--allow-requantize",
        "-t",
        "2",
        &s(&real_model()),
        &s(&q),
        "Q4_0",
    ])
    .ok();
    let out = kld_run(&q, &base(), &[]).ok();
    let g = &llama()["kld_q4_0_vs_base_c128_chunks3"];
    close(
        stat(&out, "Mean    KLD:"),
        f(&g["mean_kld"]),
        0.05,
        "mean KLD",
    );
    let top = stat(&out, "Same top p:");
    assert!(
        (top - f(&g["same_top_p"])).abs() <= 2.0,
        "same top p {top} vs {}: {out}",
        g["same_top_p"]
    );
    close(stat(&out, "RMS Δp    :"), f(&g["rms_dp"]), 0.05, "RMS Δp");
    close(
        stat(&out, "Mean PPL(Q)/PPL(base)         :"),
        f(&g["ppl_ratio"]),
        0.05,
        "PPL ratio",
    );
    close(
        stat(&out, "Mean PPL(Q)                   :"),
        f(&g["mean_ppl_q"]),
        0.05,
        "PPL(Q)",
    );
    close(
        stat(&out, "Median  KLD:"),
        f(&g["median_kld"]),
        0.10,
        "median KLD",
    );
    close(stat(&out, "95.0%   KLD:"), f(&g["kld_95"]), 0.10, "95% KLD");
    close(stat(&out, "90.0%   KLD:"), f(&g["kld_90"]), 0.10, "90% KLD");
    for label in [
        "99.9%   KLD:",
        "99.0%   KLD:",
        "10.0%   KLD:",
        " 5.0%   KLD:",
        " 1.0%   KLD:",
        "Maximum KLD:",
    ] {
        stat(&out, label);
    }
}

#[test]
fn kld_refuses_a_base_of_another_context_text_or_vocabulary() {
    let base = base();
    let model = real_model();
    let out = ppl_run(
        &model,
        &[
            "-c",
            "64",
            "--kl-divergence-base",
            &s(&base),
            "--kl-divergence",
        ],
    );
    assert_error(&out, &["context of 128 tokens", "-c 64", "use -c 128"]);

    let dir = scratch("perplexity-refusals");
    let other = dir.join("other.txt");
    let t = std::fs::read_to_string(text()).unwrap();
    std::fs::write(&other, t.replace("Declaration", "Proclamation")).unwrap();
    let out = shohin(&[
        "perplexity",
        "-m",
        &s(&model),
        "-f",
        &s(&other),
        "-t",
        "2",
        "-c",
        "128",
        "--kl-divergence-base",
        &s(&base),
        "--kl-divergence",
    ]);
    assert_error(&out, &["made from another text"]);

    // the same file with another vocabulary size in its header
    let mut bytes = std::fs::read(&base).unwrap();
    bytes[16..20].copy_from_slice(&32_000u32.to_le_bytes());
    let vocab = dir.join("vocab.kld");
    std::fs::write(&vocab, &bytes[..40 + 1000]).unwrap();
    let out = kld_run(&model, &vocab, &[]);
    assert_error(
        &out,
        &["vocabulary of 32000 tokens", "this model has 151936"],
    );

    let out = kld_run(&model, &data("declaration.txt"), &[]);
    assert_error(&out, &["not a KL-divergence base file"]);
}

#[test]
fn clear_errors() {
    let model = s(&real_model());
    let dir = scratch("perplexity-errors");
    let out = shohin(&[
        "perplexity",
        "-m",
        &model,
        "-f",
        &s(&dir.join("missing.txt")),
    ]);
    assert_error(&out, &["missing.txt"]);

    let out = ppl_run(&real_model(), &["-c", "2"]);
    assert_error(&out, &["-c/--ctx-size must be at least 4"]);

    let short = dir.join("short.txt");
    std::fs::write(&short, "When in the Course of human events").unwrap();
    let out = shohin(&["perplexity", "-m", &model, "-f", &s(&short), "-c", "128"]);
    assert_error(&out, &["tokenizes to only", "needs at least 256"]);

    let out = ppl_run(&real_model(), &["--kl-divergence"]);
    assert_error(&out, &["--kl-divergence needs --kl-divergence-base"]);
}
