//! `shohin bench --spec-prompt FILE --lookup | --model-draft DRAFT`: what
//! speculative decoding buys on a given prompt. Greedy generation of `-n`
//! tokens after the prompt (end of generation ignored, so every run makes
//! all of them), plain and speculative, `-r` repetitions after a warm-up;
//! the tokens/s of the generation phase of both, their ratio and the
//! drafts' acceptance. The two outputs must be equal (speculation never
//! changes greedy output): a difference is an error, not a number.

use crate::args::{BenchArgs, ModelArgs};
use crate::load::{self, Loaded};
use anyhow::{Context, Result};
use serde_json::json;
use shohin_engine::generate::{GenParams, Generator};
use shohin_engine::sampler::SamplerConfig;
use shohin_engine::session::Session;
use shohin_engine::speculative::DraftStats;
use std::path::Path;
use std::time::{Duration, Instant};

/// One generation: its tokens, the time of its generation phase and, when
/// speculative, the drafts' statistics.
struct Run {
    tokens: Vec<u32>,
    time: Duration,
    stats: Option<DraftStats>,
}

pub fn bench(a: &BenchArgs, prompt_file: &Path) -> Result<()> {
    if !a.spec.on() {
        anyhow::bail!("--spec-prompt needs --lookup or --model-draft FILE");
    }
    if a.n_gen == 0 {
        anyhow::bail!("--spec-prompt needs -n/--n-gen > 0");
    }
    let text = std::fs::read_to_string(prompt_file)
        .with_context(|| format!("--spec-prompt {}", prompt_file.display()))?;
    let m = ModelArgs {
        model: a.model.clone().expect("clap: --spec-prompt requires -m"),
        threads: a.threads,
        ctx_size: None,
        no_repack: a.no_repack,
        cache: a.cache.clone(),
        rope: a.rope.clone(),
        lora: a.lora.clone(),
    };
    let l = load::load(&m)?;
    let draft = crate::spec::load_draft(&a.spec, &m, &l)?;
    let prompt = l.tokenizer.encode(&text, true, true);
    if prompt.is_empty() {
        anyhow::bail!(
            "--spec-prompt {}: empty after tokenization",
            prompt_file.display()
        );
    }
    if prompt.len() + a.n_gen > l.n_ctx {
        anyhow::bail!(
            "--spec-prompt ({} tokens) plus -n {} exceed the context ({})",
            prompt.len(),
            a.n_gen,
            l.n_ctx
        );
    }
    let mut plain = Vec::new();
    let mut spec = Vec::new();
    for rep in 0..=a.repetitions {
        let p = generate(a, &l, &prompt, None)?;
        let sp = crate::spec::speculator(&a.spec, &l, draft.as_ref())?
            .expect("on(): a drafter is asked for");
        let s = generate(a, &l, &prompt, Some(sp))?;
        if p.tokens != s.tokens {
            anyhow::bail!("speculative output differs from plain greedy decoding (a bug)");
        }
        // Repetition 0 warms caches and pages up, as llama-bench's warm-up.
        if rep > 0 {
            plain.push(p);
            spec.push(s);
        }
    }
    report(a, &m, prompt.len(), &plain, &spec)
}

/// Greedy generation of `-n` tokens after `prompt`, end of generation
/// ignored; `spec`: with this speculator.
fn generate(
    a: &BenchArgs,
    l: &Loaded,
    prompt: &[u32],
    mut spec: Option<shohin_engine::speculative::Speculator<'_>>,
) -> Result<Run> {
    let params = GenParams {
        sampling: SamplerConfig {
            temperature: 0.0,
            ..SamplerConfig::default()
        },
        max_tokens: a.n_gen,
        ignore_eos: true,
        ..GenParams::default()
    };
    let mut gen = Generator::new(params)?;
    let tok = &l.tokenizer;
    let mut s = Session::new(&l.model, l.n_ctx);
    s.prompt(prompt)?;
    let mut tokens = Vec::with_capacity(a.n_gen);
    let t = Instant::now();
    loop {
        let next = match spec.as_mut() {
            Some(sp) => sp.next(&mut s, &mut gen, tok)?,
            None => gen.next(tok, s.logits(), s.tokens(), true)?,
        };
        tokens.push(next.id);
        if next.finish.is_some() {
            break;
        }
        match spec.as_mut() {
            Some(sp) => sp.commit(&mut s, &mut gen, tok, next.id)?,
            None => {
                s.step(next.id)?;
            }
        }
    }
    Ok(Run {
        tokens,
        time: t.elapsed(),
        stats: spec.map(|sp| sp.stats),
    })
}

fn report(
    a: &BenchArgs,
    m: &ModelArgs,
    n_prompt: usize,
    plain: &[Run],
    spec: &[Run],
) -> Result<()> {
    let ts = |runs: &[Run]| -> Vec<f64> {
        runs.iter()
            .map(|r| r.tokens.len() as f64 / r.time.as_secs_f64())
            .collect()
    };
    let (pt, st) = (ts(plain), ts(spec));
    let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
    let (pm, sm) = (mean(&pt), mean(&st));
    let stats = spec.last().and_then(|r| r.stats).unwrap_or_default();
    let how = match &a.spec.model_draft {
        Some(d) => format!("draft {}", d.display()),
        None => format!("lookup n-gram {}", a.spec.lookup_ngram),
    };
    if a.json {
        let out = json!({
            "model_filename": m.model.display().to_string(),
            "n_prompt": n_prompt,
            "n_gen": a.n_gen,
            "speculative": how,
            "plain_ts": pt,
            "speculative_ts": st,
            "avg_plain_ts": pm,
            "avg_speculative_ts": sm,
            "speedup": sm / pm,
            "draft": crate::spec::stats_json(&stats),
        });
        println!("{out}");
    } else {
        println!(
            "| model | prompt | test | plain t/s | speculative t/s | speedup | drafts accepted |"
        );
        println!("| --- | ---: | --- | ---: | ---: | ---: | ---: |");
        println!(
            "| {} | {n_prompt} | tg{} {how} | {pm:.2} | {sm:.2} | {:.2}x | {:.1}% ({} of {}) |",
            m.model.display(),
            a.n_gen,
            sm / pm,
            100.0 * stats.acceptance(),
            stats.accepted,
            stats.drafted
        );
    }
    Ok(())
}
