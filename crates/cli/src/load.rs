//! Opening a model for `run` and `chat`: parse, validate, warm the page
//! cache with a progress bar on a TTY, build the tokenizer.

use crate::args::{ModelArgs, SamplingArgs};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use shohin_engine::backend::cpu::CpuBackend;
use shohin_engine::generate::GenParams;
use shohin_engine::model::Model;
use shohin_engine::sampler::{Sampler, SamplerConfig};
use shohin_gguf::GgufFile;
use shohin_tokenizer::Tokenizer;
use std::io::IsTerminal;
use std::path::Path;

/// Opens and validates a model file. Anything but a regular file is refused
/// before opening it: opening a FIFO for reading blocks until a writer
/// appears (a hang), and a directory or device fails with an obscure errno.
pub fn open_gguf(path: &Path) -> Result<GgufFile> {
    if let Ok(m) = std::fs::metadata(path) {
        if !m.is_file() {
            anyhow::bail!("{}: not a regular file", path.display());
        }
    }
    GgufFile::open(path).with_context(|| format!("{}", path.display()))
}

pub struct Loaded {
    pub model: Model,
    pub tokenizer: std::sync::Arc<Tokenizer>,
    pub n_ctx: usize,
}

pub fn load(a: &ModelArgs) -> Result<Loaded> {
    let backend = CpuBackend::new(a.threads)?.with_repack(!a.no_repack);
    let file = open_gguf(&a.model)?;
    let ctx = |e: shohin_engine::EngineError| {
        anyhow::Error::new(e).context(a.model.display().to_string())
    };
    let tokenizer = shohin_engine::vocab::load_tokenizer(&file).map_err(ctx)?;
    let bar = terminal_bar("repacking");
    let mut model = Model::load_with_progress(file, Box::new(backend), &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .map_err(ctx)?;
    bar.finish_and_clear();
    model.set_kv_types(a.cache.types()).map_err(ctx)?;
    model.set_rope_overrides(&a.rope.options()?).map_err(ctx)?;
    crate::lora::apply(&model, &a.lora)?;
    if tokenizer.n_vocab() > model.n_vocab() {
        anyhow::bail!(
            "{}: the tokenizer has {} tokens but token_embd.weight has {} rows",
            a.model.display(),
            tokenizer.n_vocab(),
            model.n_vocab()
        );
    }
    // With RoPE scaling on, the context may extend to the scaled length.
    let n_ctx = shohin_engine::session::resolve_ctx(a.ctx_size, model.config.max_ctx())?;
    warm(&model);
    release_freed_memory();
    Ok(Loaded {
        model,
        tokenizer: std::sync::Arc::new(tokenizer),
        n_ctx,
    })
}

/// Give the memory freed by loading (the repacking's temporary buffers)
/// back to the OS: glibc keeps freed blocks in its per-thread arenas, where
/// they would stay resident for the whole run (measured: 20-40 MB on the
/// real 0.5B model, more on 8B files).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: glibc's malloc_trim takes no pointers and only releases
        // free memory of the allocator's own arenas; it is thread-safe.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// Touch every page of the weights the backend reads from the file once, so
/// the first token does not pay for page faults; shows a progress bar when
/// stderr is a terminal. Tensors the backend repacked are skipped: their
/// file pages were released at load, and touching them would put them back
/// in memory next to the packed copy.
fn warm(model: &Model) {
    let packed: std::collections::HashSet<&str> = model
        .weights
        .matrices()
        .filter(|m| m.packed.is_some())
        .map(|m| m.name.as_str())
        .collect();
    let tensors: Vec<_> = model
        .file
        .tensors()
        .iter()
        .filter(|t| !packed.contains(t.name.as_str()))
        .collect();
    let total: u64 = tensors.iter().map(|t| t.n_bytes).sum();
    let bar = terminal_bar("loading");
    bar.set_length(total);
    let mut sink = 0u8;
    for t in tensors {
        let data = model.file.tensor_data(t);
        for page in data.chunks(4096) {
            sink ^= page[0];
        }
        bar.inc(t.n_bytes);
    }
    std::hint::black_box(sink);
    bar.finish_and_clear();
}

/// A byte progress bar on stderr when it is a terminal, hidden otherwise.
fn terminal_bar(what: &str) -> ProgressBar {
    terminal_bar_with(&format!("{what} {{bar:40}} {{bytes}}/{{total_bytes}}"), 0)
}

/// A progress bar of `len` steps drawn with `template` on stderr when it
/// is a terminal, hidden otherwise (nothing noisy in pipes and logs).
pub fn terminal_bar_with(template: &str, len: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        b.set_style(style);
    }
    b
}

/// The seed to use: the given one, or one drawn from the clock (as
/// llama.cpp does for its default seed).
pub fn seed(s: &SamplingArgs) -> u64 {
    s.seed.unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        t ^ u64::from(std::process::id()).rotate_left(32)
    })
}

/// The sampling flags as the engine's configuration (not yet validated).
pub fn sampler_config(s: &SamplingArgs, seed: u64) -> SamplerConfig {
    SamplerConfig {
        temperature: s.temp,
        top_k: s.top_k,
        top_p: s.top_p,
        min_p: s.min_p,
        repeat_penalty: s.repeat_penalty,
        repeat_last_n: s.repeat_last_n,
        presence_penalty: s.presence_penalty,
        frequency_penalty: s.frequency_penalty,
        seed,
    }
}

/// What `run` and `chat` generate with: the sampling flags (checked) and
/// the token limit.
pub fn gen_params(s: &SamplingArgs, seed: u64, max_tokens: usize) -> Result<GenParams> {
    let sampling = sampler_config(s, seed);
    Sampler::new(sampling).context("sampling flags")?;
    Ok(GenParams {
        sampling,
        max_tokens,
        ..GenParams::default()
    })
}

/// `n_predict` as a bound: -1 = unbounded, other negatives are errors.
pub fn max_tokens(n_predict: i64) -> Result<usize> {
    match n_predict {
        -1 => Ok(usize::MAX),
        n if n < 0 => anyhow::bail!("-n/--n-predict must be >= -1, got {n}"),
        n => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
    }
}
