//! `--model-draft` / `--lookup` for `run` and `chat`: load and check the
//! draft model, build the engine's speculator, report what it did.

use crate::args::{ModelArgs, SpecArgs};
use crate::load::{self, Loaded};
use anyhow::Result;
use serde_json::json;
use shohin_engine::config::ModelConfig;
use shohin_engine::speculative::{
    check_compatible, DraftModel, DraftStats, Drafter, Lookup, SpecConfig, Speculator,
};
use shohin_tokenizer::Tokenizer;
use std::path::Path;

impl SpecArgs {
    /// Whether speculation is asked for.
    pub fn on(&self) -> bool {
        self.model_draft.is_some() || self.lookup
    }

    /// Values that parse but make no sense: an error naming the flag.
    pub fn check(&self) -> Result<()> {
        if self.draft_max == 0 {
            anyhow::bail!("--draft-max 0: must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.draft_p_min) {
            anyhow::bail!("--draft-p-min {}: must be in [0, 1]", self.draft_p_min);
        }
        if self.lookup_ngram == 0 {
            anyhow::bail!("--lookup-ngram 0: must be at least 1");
        }
        Ok(())
    }
}

/// The draft model of `--model-draft`, loaded with the target's threads,
/// cache types and repacking (not its LoRA adapters, which are the
/// target's), and checked against the target's vocabulary as llama.cpp
/// checks it: a draft that cannot propose the target's tokens is refused.
pub fn load_draft(
    a: &SpecArgs,
    target_args: &ModelArgs,
    target: &Loaded,
) -> Result<Option<Loaded>> {
    a.check()?;
    let Some(path) = &a.model_draft else {
        return Ok(None);
    };
    let args = ModelArgs {
        model: path.clone(),
        // The draft's context is the target's (DraftModel::new); its own
        // training context is no limit on that.
        ctx_size: None,
        lora: Default::default(),
        ..target_args.clone()
    };
    let draft = load::load(&args)?;
    refuse_hybrid(&draft.model.config, path)?;
    compatible(
        &target.tokenizer,
        &draft.tokenizer,
        path,
        &target_args.model,
    )?;
    Ok(Some(draft))
}

/// `serve -md`'s checks before the server binds its port (the weights load
/// later, with the target's): the draft's vocabulary is the target's, and
/// the draft is not a hybrid model, whose recurrent state cannot follow
/// the slot's rolled-back tokens.
pub fn check_draft_file(a: &SpecArgs, target: &Path) -> Result<()> {
    let Some(path) = &a.model_draft else {
        return Ok(());
    };
    let label = |p: &Path| {
        let p = p.display().to_string();
        move |e| anyhow::Error::new(e).context(p)
    };
    // The draft's file is opened once, for its configuration and vocabulary.
    let f = load::open_gguf(path)?;
    let cfg = ModelConfig::from_gguf(&f).map_err(label(path))?;
    refuse_hybrid(&cfg, path)?;
    let draft = shohin_engine::vocab::load_tokenizer(&f).map_err(label(path))?;
    let t = load::open_gguf(target)?;
    let target_tok = shohin_engine::vocab::load_tokenizer(&t).map_err(label(target))?;
    compatible(&target_tok, &draft, path, target)?;
    Ok(())
}

/// A hybrid draft model cannot follow the target's rolled-back tokens with
/// its own recurrent state.
fn refuse_hybrid(cfg: &ModelConfig, path: &Path) -> Result<()> {
    if cfg.hybrid.is_some() {
        anyhow::bail!(
            "the draft model {} is a hybrid ({}) model, whose recurrent state cannot roll \
             back past rejected drafts",
            path.display(),
            cfg.arch.name()
        );
    }
    Ok(())
}

/// An error unless `draft`'s vocabulary can draft for `target`'s.
fn compatible(
    target: &Tokenizer,
    draft: &Tokenizer,
    draft_path: &Path,
    target_path: &Path,
) -> Result<()> {
    if let Err(why) = check_compatible(target, draft) {
        anyhow::bail!(
            "the draft model {} cannot draft for {}: {why} (the draft must share the \
             target's vocabulary)",
            draft_path.display(),
            target_path.display()
        );
    }
    Ok(())
}

/// The speculator for `target` (`None`: no speculation asked for).
pub fn speculator<'d>(
    a: &SpecArgs,
    target: &Loaded,
    draft: Option<&'d Loaded>,
) -> Result<Option<Speculator<'d>>> {
    a.check()?;
    let drafter: Box<dyn Drafter + 'd> = match draft {
        Some(d) => Box::new(DraftModel::new(&d.model, target.n_ctx, a.draft_p_min)?),
        None if a.lookup => Box::new(Lookup::new(a.lookup_ngram)),
        None => return Ok(None),
    };
    let cfg = SpecConfig {
        n_max: a.draft_max,
        n_min: a.draft_min,
    };
    Ok(Some(Speculator::new(drafter, cfg)))
}

/// `run --json`'s `draft` object.
pub fn stats_json(st: &DraftStats) -> serde_json::Value {
    json!({
        "drafted": st.drafted,
        "accepted": st.accepted,
        "acceptance": st.acceptance(),
        "rounds": st.rounds,
        "draft_ms": st.draft_time.as_secs_f64() * 1e3,
    })
}

/// The summary line on stderr.
pub fn summary(st: &DraftStats) {
    eprintln!(
        "draft: {} tokens drafted, {} accepted ({:.1}%) in {} verification steps",
        st.drafted,
        st.accepted,
        100.0 * st.acceptance(),
        st.rounds
    );
}
