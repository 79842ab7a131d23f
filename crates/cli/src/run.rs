//! `shohin run`: plain completion, streamed or as one JSON object.

use crate::args::RunArgs;
use crate::load;
use anyhow::Result;
use serde_json::json;
use shohin_engine::generate::{top_k, FinishReason, Generator};
use shohin_engine::session::{Session, Timings};
use std::io::Write;

pub fn run(a: RunArgs) -> Result<()> {
    if a.logits_top.is_some() && !a.json {
        anyhow::bail!("--logits-top needs --json");
    }
    if a.logits_top.is_some() && a.spec.on() {
        // Verified tokens are decided from logits of a batch, not the
        // session's: there is no per-step view to report.
        anyhow::bail!("--logits-top cannot be combined with --model-draft or --lookup");
    }
    let max = load::max_tokens(a.n_predict)?;
    let keep = a.shift.keep()?;
    let seed = load::seed(&a.sampling);
    let mut params = load::gen_params(&a.sampling, seed, max)?;
    let grammar = crate::grammar::spec(&a.grammar)?;
    let l = load::load(&a.model)?;
    params.constraint = crate::grammar::compile(grammar.as_ref(), &l.tokenizer)?;
    let draft = crate::spec::load_draft(&a.spec, &a.model, &l)?;
    let mut spec = crate::spec::speculator(&a.spec, &l, draft.as_ref())?;
    let mut gen = Generator::new(params)?;
    let tok = &l.tokenizer;
    let prompt_ids = tok.encode(&a.prompt, true, true);
    if prompt_ids.is_empty() {
        anyhow::bail!("the prompt is empty after tokenization");
    }
    let mut s = Session::new(&l.model, l.n_ctx);
    s.set_context_shift(keep, tok.add_bos())?;
    s.prompt(&prompt_ids)?;

    let mut out = std::io::stdout().lock();
    let mut generated = Vec::new();
    let mut text = String::new();
    let mut steps = Vec::new();
    // Sampling (with a grammar: its mask) is timed apart from the forward
    // passes, as llama.cpp reports its sampling time.
    let mut sampling = std::time::Duration::ZERO;
    let mut context_full = false;
    // The engine's generation step (shared with `chat` and `serve`).
    while generated.len() < max {
        if let Some(k) = a.logits_top {
            steps.push(json!({ "top": top_k(s.logits(), k) }));
        }
        let next = match spec.as_mut() {
            // Times its own sampling (added below).
            Some(sp) => sp.next(&mut s, &mut gen, tok)?,
            None => {
                // With --context-shift a full context is shifted here.
                let room = s.make_room()?;
                let t = std::time::Instant::now();
                let next = gen.next(tok, s.logits(), s.tokens(), room)?;
                sampling += t.elapsed();
                next
            }
        };
        generated.push(next.id);
        if a.json {
            text.push_str(&next.text);
        } else {
            out.write_all(next.text.as_bytes())?;
            out.flush()?;
        }
        if let Some(f) = next.finish {
            // Short of the token limit, `length` means no room was left.
            context_full = f == FinishReason::Length && generated.len() < max;
            break;
        }
        match spec.as_mut() {
            Some(sp) => sp.commit(&mut s, &mut gen, tok, next.id)?,
            None => {
                s.step(next.id)?;
            }
        }
    }
    if let Some(sp) = &spec {
        sampling += sp.stats.sampling;
    }
    if context_full {
        // llama-cli: "context full and context shift is disabled => stopping".
        eprintln!(
            "\nshohin run: the context is full ({} tokens) => stopping (raise --ctx-size, \
             or --context-shift to go on)",
            s.n_ctx()
        );
    }
    if s.n_shifts() > 0 {
        eprintln!(
            "\nshohin run: context shifted {} times ({} tokens dropped, --keep {})",
            s.n_shifts(),
            s.n_discarded(),
            s.n_keep()
        );
    }
    if a.json {
        let mut obj = json!({
            "prompt_tokens": prompt_ids,
            "tokens": generated,
            "text": text,
            "seed": seed,
            "timings": timings_json(&s.timings),
        });
        // Generated tokens per second of forward passes and sampling
        // together (what a user sees while tokens stream).
        let decode = s.timings.gen + sampling;
        obj["timings"]["sampling_ms"] = json!(sampling.as_secs_f64() * 1e3);
        obj["timings"]["decode_per_second"] =
            json!(generated.len() as f64 / decode.as_secs_f64().max(1e-9));
        if a.logits_top.is_some() {
            obj["steps"] = json!(steps);
        }
        if let Some(sp) = &spec {
            obj["draft"] = crate::spec::stats_json(&sp.stats);
        }
        writeln!(out, "{obj}")?;
    } else {
        writeln!(out)?;
    }
    summary(&s.timings);
    if let Some(sp) = &spec {
        crate::spec::summary(&sp.stats);
    }
    Ok(())
}

pub fn timings_json(t: &Timings) -> serde_json::Value {
    json!({
        "prompt_n": t.n_prompt,
        "prompt_ms": t.prompt.as_secs_f64() * 1e3,
        "prompt_per_second": t.prompt_tps(),
        "predicted_n": t.n_gen,
        "predicted_ms": t.gen.as_secs_f64() * 1e3,
        "predicted_per_second": t.gen_tps(),
    })
}

/// The one-line summary on stderr.
pub fn summary(t: &Timings) {
    eprintln!(
        "\nprompt: {} tokens, {:.1} t/s | generation: {} tokens, {:.1} t/s",
        t.n_prompt,
        t.prompt_tps(),
        t.n_gen,
        t.gen_tps()
    );
}
