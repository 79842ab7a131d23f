//! `shohin pull`, `list`, `rm`, and `-m hf:owner/name[:FILE]`: models from
//! the Hugging Face Hub, kept in shohin's cache (`shohin-hub`).

use crate::args::{Command, ListArgs, PullArgs, RmArgs};
use anyhow::{Context, Result};
use shohin_hub::{Cache, Hub, HubConfig, ModelRef};
use std::path::PathBuf;

/// The model `run`, `chat` and `serve` use without `-m`: PrismML's 1-bit
/// Bonsai-1.7B (Q1_0, about 0.24 GB). Repository from the Bonsai collection
/// page https://huggingface.co/collections/prism-ml/bonsai (prism-ml/Bonsai-1.7B-gguf); the file
/// name as public code that pulls it spells it (`Bonsai-1.7B-Q1_0.gguf`).
pub const DEFAULT_MODEL: &str = "hf:prism-ml/Bonsai-1.7B-gguf:Bonsai-1.7B-Q1_0.gguf";

fn hub() -> Result<Hub> {
    Ok(Hub::new(HubConfig::from_env()?))
}

fn parse(spec: &str, revision: Option<&str>) -> Result<ModelRef> {
    let r = ModelRef::parse(spec)?;
    Ok(match revision {
        Some(rev) => r.with_revision(rev)?,
        None => r,
    })
}

pub fn pull(a: PullArgs) -> Result<()> {
    let r = parse(&a.model, a.revision.as_deref())?;
    let path = hub()?.pull(&r)?;
    println!("{}", path.display());
    Ok(())
}

pub fn list(_a: ListArgs) -> Result<()> {
    let cfg = HubConfig::from_env()?;
    let files = Cache::new(&cfg.cache_dir).list();
    if files.is_empty() {
        eprintln!("no models in the cache ({})", cfg.cache_dir.display());
        return Ok(());
    }
    let name = |c: &shohin_hub::CachedFile| format!("{}:{}", c.repo, c.file);
    let w = files
        .iter()
        .map(|c| name(c).len())
        .max()
        .unwrap_or(0)
        .max(5);
    println!("{:<w$}  {:>10}  COMMIT", "MODEL", "SIZE");
    let mut total = 0;
    for c in &files {
        total += c.size;
        let commit: String = c.commit.chars().take(12).collect();
        println!("{:<w$}  {:>10}  {commit}", name(c), human(c.size));
    }
    let n = files.len();
    println!(
        "{:<w$}  {:>10}  ({n} file{} in {})",
        "total",
        human(total),
        if n == 1 { "" } else { "s" },
        cfg.cache_dir.display()
    );
    Ok(())
}

pub fn rm(a: RmArgs) -> Result<()> {
    let r = ModelRef::parse(&a.model)?;
    let cfg = HubConfig::from_env()?;
    for p in Cache::new(&cfg.cache_dir).remove(&r)? {
        println!("removed {}", p.display());
    }
    Ok(())
}

fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A `-m` value: a local path as is, or `hf:owner/name[:FILE]` resolved
/// through the cache (downloaded when missing). A local file whose name
/// starts with `hf:` wins.
pub fn resolve(model: &mut PathBuf) -> Result<()> {
    let Some(spec) = model.to_str().and_then(|s| s.strip_prefix("hf:")) else {
        return Ok(());
    };
    if model.exists() {
        return Ok(());
    }
    let default = model.to_str() == Some(DEFAULT_MODEL);
    let path = parse(spec, None).and_then(|r| Ok(hub()?.pull(&r)?));
    *model = if default {
        path.with_context(|| {
            format!(
                "the default model {DEFAULT_MODEL} could not be loaded; \
                 pass --model FILE.gguf (or -m hf:owner/name[:FILE]) to use another"
            )
        })?
    } else {
        path?
    };
    Ok(())
}

/// Resolves the `-m` of every command that takes one.
pub fn resolve_model_flags(cmd: &mut Command) -> Result<()> {
    match cmd {
        Command::Run(a) => resolve(&mut a.model.model),
        Command::Chat(a) => resolve(&mut a.model.model),
        Command::Serve(a) => resolve(&mut a.model.model),
        Command::Tokenize(a) => resolve(&mut a.model),
        Command::Info(a) => resolve(&mut a.model),
        Command::Perplexity(a) => resolve(&mut a.model),
        Command::Bench(a) => a.model.as_mut().map_or(Ok(()), resolve),
        _ => Ok(()),
    }
}
