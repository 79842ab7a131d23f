//! `shohin run`: plain completion, streamed or as one JSON object.

use crate::args::RunArgs;
use crate::load;
use anyhow::Result;
use serde_json::json;
use shohin_engine::session::{Session, Timings};
use shohin_tokenizer::StreamDecoder;
use std::io::Write;

pub fn run(a: RunArgs) -> Result<()> {
    if a.logits_top.is_some() && !a.json {
        anyhow::bail!("--logits-top needs --json");
    }
    let max = load::max_tokens(a.n_predict)?;
    let seed = load::seed(&a.sampling);
    let mut sampler = load::sampler(&a.sampling, seed)?;
    let l = load::load(&a.model)?;
    let tok = &l.tokenizer;
    let prompt_ids = tok.encode(&a.prompt, true, true);
    if prompt_ids.is_empty() {
        anyhow::bail!("the prompt is empty after tokenization");
    }
    let mut s = Session::new(&l.model, l.n_ctx);
    s.prompt(&prompt_ids)?;

    let mut out = std::io::stdout().lock();
    let mut dec = StreamDecoder::new();
    let mut generated = Vec::new();
    let mut text = String::new();
    let mut steps = Vec::new();
    while generated.len() < max {
        if let Some(k) = a.logits_top {
            steps.push(json!({ "top": top_k(s.logits(), k) }));
        }
        let id = sampler.sample(s.logits(), s.tokens());
        generated.push(id);
        if tok.is_eog(id) {
            break;
        }
        let piece = dec.push(tok, id)?;
        if a.json {
            text.push_str(&piece);
        } else {
            out.write_all(piece.as_bytes())?;
            out.flush()?;
        }
        if generated.len() >= max || s.tokens().len() >= s.n_ctx() {
            break;
        }
        s.step(id)?;
    }
    let rest = dec.flush();
    if a.json {
        text.push_str(&rest);
        let mut obj = json!({
            "prompt_tokens": prompt_ids,
            "tokens": generated,
            "text": text,
            "seed": seed,
            "timings": timings_json(&s.timings),
        });
        if a.logits_top.is_some() {
            obj["steps"] = json!(steps);
        }
        writeln!(out, "{obj}")?;
    } else {
        writeln!(out, "{rest}")?;
    }
    summary(&s.timings);
    Ok(())
}

/// The `k` largest logits as `[id, logit]`, descending (ties: lower id first).
pub fn top_k(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
    let k = k.min(idx.len());
    let cmp = |a: &u32, b: &u32| {
        logits[*b as usize]
            .total_cmp(&logits[*a as usize])
            .then(a.cmp(b))
    };
    if k > 0 && k < idx.len() {
        idx.select_nth_unstable_by(k - 1, cmp);
    }
    idx.truncate(k);
    idx.sort_by(cmp);
    idx.into_iter().map(|i| (i, logits[i as usize])).collect()
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
