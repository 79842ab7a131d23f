//! `shohin bench`: llama-bench's tests (pp = prompt processing of `-p`
//! tokens in one batch, tg = `-n` single-token decodes, both from an empty
//! cache, `-r` repetitions after one warm-up) and its table / JSON keys.

use crate::args::BenchArgs;
use crate::load::open_gguf;
use anyhow::{Context, Result};
use serde_json::json;
use shohin_engine::backend::cpu::CpuBackend;
use shohin_engine::kv_cache::KvCache;
use shohin_engine::model::{Model, Span, N_BATCH};
use shohin_engine::session::Session;
use std::time::Instant;

struct TestResult {
    n_prompt: usize,
    n_gen: usize,
    /// Sequences run together (`--parallel`).
    n_seq: usize,
    samples_ns: Vec<u128>,
}

impl TestResult {
    fn name(&self) -> String {
        let t = if self.n_prompt > 0 {
            format!("pp{}", self.n_prompt)
        } else {
            format!("tg{}", self.n_gen)
        };
        if self.n_seq > 1 {
            format!("{t} x{}", self.n_seq)
        } else {
            t
        }
    }
    /// Tokens of all sequences.
    fn tokens(&self) -> usize {
        (self.n_prompt + self.n_gen) * self.n_seq
    }
    fn samples_ts(&self) -> Vec<f64> {
        self.samples_ns
            .iter()
            .map(|&ns| self.tokens() as f64 / (ns as f64 / 1e9))
            .collect()
    }
}

fn mean_sd(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = if x.len() > 1 {
        x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

pub fn bench(a: BenchArgs) -> Result<()> {
    if a.repetitions == 0 {
        anyhow::bail!("-r/--repetitions must be at least 1");
    }
    if let Some(prompt) = &a.spec_prompt {
        return crate::bench_spec::bench(&a, prompt);
    }
    if a.spec.on() {
        anyhow::bail!("--lookup / --model-draft in bench need --spec-prompt FILE");
    }
    if a.parallel == 0 || a.parallel > 256 {
        anyhow::bail!("--parallel must be in 1..=256, got {}", a.parallel);
    }
    let (file, label) = match (&a.model, &a.synthetic) {
        (Some(m), None) => (open_gguf(m)?, m.display().to_string()),
        (None, Some(s)) => {
            let spec = shohin_engine::synthetic::spec(s)?;
            eprintln!("building synthetic {s} in memory...");
            (
                shohin_engine::synthetic::build(&spec, 1)?,
                format!("synthetic {s}"),
            )
        }
        _ => anyhow::bail!("give either -m FILE or --synthetic NAME"),
    };
    let backend = CpuBackend::new(a.threads)?.with_repack(!a.no_repack);
    let threads = shohin_engine::backend::Backend::n_threads(&backend);
    let mut model = Model::load(file, Box::new(backend)).with_context(|| label.clone())?;
    model
        .set_kv_types(a.cache.types())
        .with_context(|| label.clone())?;
    model
        .set_rope_overrides(&a.rope.options()?)
        .with_context(|| label.clone())?;
    crate::lora::apply(&model, &a.lora)?;
    let n_vocab = model.n_vocab() as u32;
    let n_ctx = a.n_prompt.max(a.n_gen).max(1);
    if n_ctx > model.config.max_ctx() {
        anyhow::bail!(
            "-p/-n exceed the model's context ({})",
            model.config.max_ctx()
        );
    }
    // Deterministic pseudo-random prompt, as llama-bench uses random tokens.
    let mut st = 0x9E37_79B9_7F4A_7C15u64;
    let mut next_id = || {
        st ^= st << 13;
        st ^= st >> 7;
        st ^= st << 17;
        (st % u64::from(n_vocab)) as u32
    };
    let results = if a.parallel > 1 {
        batched(&a, &model, n_ctx, &mut next_id)?
    } else {
        single(&a, &model, n_ctx, &mut next_id)?
    };
    report(&a, &model, &label, threads, &results)
}

/// llama-bench's pp and tg on one sequence.
fn single(
    a: &BenchArgs,
    model: &Model,
    n_ctx: usize,
    next_id: &mut dyn FnMut() -> u32,
) -> Result<Vec<TestResult>> {
    let mut s = Session::new(model, n_ctx);
    let mut results = Vec::new();
    if a.n_prompt > 0 {
        let ids: Vec<u32> = (0..a.n_prompt).map(|_| next_id()).collect();
        let mut r = TestResult {
            n_prompt: a.n_prompt,
            n_gen: 0,
            n_seq: 1,
            samples_ns: vec![],
        };
        r.samples_ns = timed(a.repetitions, || {
            s.truncate(0);
            s.prompt(&ids)?;
            Ok(())
        })?;
        results.push(r);
    }
    if a.n_gen > 0 {
        let mut r = TestResult {
            n_prompt: 0,
            n_gen: a.n_gen,
            n_seq: 1,
            samples_ns: vec![],
        };
        let first = next_id();
        r.samples_ns = timed(a.repetitions, || {
            s.truncate(0);
            let mut id = first;
            for _ in 0..a.n_gen {
                s.step(id)?;
                id = argmax(s.logits());
            }
            Ok(())
        })?;
        results.push(r);
    }
    Ok(results)
}

/// The same tests on `--parallel B` sequences at once, through the
/// engine's batched step (what the server runs): pp fills up to
/// [`N_BATCH`] tokens per step from the B prompts; tg decodes one token
/// of every sequence per step.
fn batched(
    a: &BenchArgs,
    model: &Model,
    n_ctx: usize,
    next_id: &mut dyn FnMut() -> u32,
) -> Result<Vec<TestResult>> {
    let b = a.parallel;
    let nv = model.n_vocab();
    let mut caches: Vec<KvCache> = (0..b).map(|_| model.new_cache(n_ctx)).collect();
    let mut logits = vec![vec![0f32; nv]; b];
    let mut results = Vec::new();
    if a.n_prompt > 0 {
        let prompts: Vec<Vec<u32>> = (0..b)
            .map(|_| (0..a.n_prompt).map(|_| next_id()).collect())
            .collect();
        let mut r = TestResult {
            n_prompt: a.n_prompt,
            n_gen: 0,
            n_seq: b,
            samples_ns: vec![],
        };
        let per_step = (N_BATCH / b).max(1);
        r.samples_ns = timed(a.repetitions, || {
            caches.iter_mut().for_each(|c| c.truncate(0));
            for start in (0..a.n_prompt).step_by(per_step) {
                let end = (start + per_step).min(a.n_prompt);
                let mut spans: Vec<Span<'_>> = caches
                    .iter_mut()
                    .zip(&prompts)
                    .zip(logits.iter_mut())
                    .map(|((c, p), l)| Span {
                        cache: c,
                        tokens: &p[start..end],
                        logits: (end == a.n_prompt).then_some(&mut l[..]),
                        hidden: None,
                    })
                    .collect();
                model.forward_batch(&mut spans)?;
            }
            Ok(())
        })?;
        results.push(r);
    }
    if a.n_gen > 0 {
        let mut r = TestResult {
            n_prompt: 0,
            n_gen: a.n_gen,
            n_seq: b,
            samples_ns: vec![],
        };
        let first: Vec<u32> = (0..b).map(|_| next_id()).collect();
        r.samples_ns = timed(a.repetitions, || {
            caches.iter_mut().for_each(|c| c.truncate(0));
            let mut ids = first.clone();
            for _ in 0..a.n_gen {
                let toks: Vec<[u32; 1]> = ids.iter().map(|&i| [i]).collect();
                let mut spans: Vec<Span<'_>> = caches
                    .iter_mut()
                    .zip(&toks)
                    .zip(logits.iter_mut())
                    .map(|((c, t), l)| Span {
                        cache: c,
                        tokens: t,
                        logits: Some(&mut l[..]),
                        hidden: None,
                    })
                    .collect();
                model.forward_batch(&mut spans)?;
                for (id, l) in ids.iter_mut().zip(&logits) {
                    *id = argmax(l);
                }
            }
            Ok(())
        })?;
        results.push(r);
    }
    Ok(results)
}

/// Runs `test` once to warm up, then `reps` times; the timed samples (ns).
/// The reset of the sequences is inside `test`, as llama-bench's is.
fn timed(reps: usize, mut test: impl FnMut() -> Result<()>) -> Result<Vec<u128>> {
    test()?;
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            test()?;
            Ok(t.elapsed().as_nanos())
        })
        .collect()
}

fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in x.iter().enumerate() {
        if *v > x[best] {
            best = i;
        }
    }
    best as u32
}

fn report(
    a: &BenchArgs,
    model: &Model,
    label: &str,
    threads: usize,
    results: &[TestResult],
) -> Result<()> {
    let f = &model.file;
    let size: u64 = f.tensors().iter().map(|t| t.n_bytes).sum();
    let params: u64 = f.tensors().iter().map(|t| t.n_elements).sum();
    // Bytes one decode step reads: the output matrix and every layer's
    // matrices once (`matrices()` starts with token_embd, of which a step
    // reads a single row: left out).
    let w = &model.weights;
    let per_token: u64 = w
        .matrices()
        .skip(1)
        .map(|m| shohin_quant::row_bytes(m.ty, m.cols).unwrap_or(0) as u64 * m.rows as u64)
        .sum();
    let main_ty = w
        .layers
        .first()
        .map(|l| l.w_gate.ty.name())
        .or_else(|| w.hybrid.first().map(|l| l.w_gate.ty.name()))
        .unwrap_or("?");
    let model_type = format!(
        "{} {:.2}B {}",
        model.config.arch.name(),
        params as f64 / 1e9,
        main_ty
    );
    let isa = shohin_quant::simd::isa().name();
    let kv = model.kv_types();
    if a.json {
        let arr: Vec<_> = results
            .iter()
            .map(|r| {
                let ts = r.samples_ts();
                let (avg_ts, sd_ts) = mean_sd(&ts);
                let ns: Vec<f64> = r.samples_ns.iter().map(|&v| v as f64).collect();
                let (avg_ns, sd_ns) = mean_sd(&ns);
                let mut o = json!({
                    "model_filename": label, "model_type": model_type, "model_size": size,
                    "model_n_params": params, "backends": "CPU", "cpu_info": isa,
                    "n_threads": threads, "n_batch": shohin_engine::model::N_BATCH,
                    "type_k": kv.k.name(), "type_v": kv.v.name(), "n_prompt": r.n_prompt, "n_gen": r.n_gen, "n_parallel": r.n_seq,
                    "avg_ns": avg_ns as u64, "stddev_ns": sd_ns as u64,
                    "avg_ts": avg_ts, "stddev_ts": sd_ts,
                    "samples_ns": r.samples_ns, "samples_ts": ts,
                });
                if r.n_gen > 0 {
                    // One weight read per step serves every sequence.
                    o["bandwidth_gbs"] = json!(per_token as f64 * avg_ts / r.n_seq as f64 / 1e9);
                }
                o
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&arr)?);
        return Ok(());
    }
    println!("| model | size | params | backend | threads | test | t/s | GB/s |");
    println!("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |");
    for r in results {
        let (avg, sd) = mean_sd(&r.samples_ts());
        let bw = if r.n_gen > 0 {
            format!("{:.1}", per_token as f64 * avg / r.n_seq as f64 / 1e9)
        } else {
            String::new()
        };
        println!(
            "| {model_type} | {:.2} GiB | {:.2} B | CPU ({isa}) | {threads} | {} | {avg:.2} ± {sd:.2} | {bw} |",
            size as f64 / (1u64 << 30) as f64,
            params as f64 / 1e9,
            r.name(),
        );
    }
    Ok(())
}
