//! `--lora` / `--lora-scaled` for the commands that load a model, and
//! `shohin export-lora` (llama.cpp's `tools/export-lora`).

use crate::args::{ExportLoraArgs, LoraArgs};
use anyhow::{Context, Result};
use shohin_engine::backend::{cpu::CpuBackend, Backend};
use shohin_engine::lora::{ActiveLora, LoraAdapter};
use shohin_engine::model::Model;
use std::path::Path;
use std::sync::Arc;

/// Reads an adapter file; a path that is not a regular file is refused
/// before opening it (as `load::open_gguf` does for models).
fn open(path: &Path) -> Result<LoraAdapter> {
    if let Ok(m) = std::fs::metadata(path) {
        if !m.is_file() {
            anyhow::bail!("LoRA adapter {}: not a regular file", path.display());
        }
    }
    Ok(LoraAdapter::open(path)?)
}

/// Loads the flags' adapters, checks them against `model` and makes them
/// its active set (nothing when no flag is given).
pub fn apply(model: &Model, a: &LoraArgs) -> Result<()> {
    let list = a.adapters()?;
    if list.is_empty() {
        return Ok(());
    }
    let mut set = Vec::with_capacity(list.len());
    for (path, scale) in list {
        let adapter = open(&path)?;
        adapter.check(model)?;
        set.push(ActiveLora {
            adapter: Arc::new(adapter),
            scale,
        });
    }
    model.set_adapters(set)?;
    Ok(())
}

pub fn export_lora(a: ExportLoraArgs) -> Result<()> {
    let list = a.lora.adapters()?;
    if list.is_empty() {
        anyhow::bail!("export-lora needs at least one --lora or --lora-scaled adapter");
    }
    let base = crate::load::open_gguf(&a.model)?;
    let mut adapters = Vec::with_capacity(list.len());
    for (path, scale) in list {
        adapters.push((open(&path)?, scale));
    }
    // The merge's parallel loops run on the CPU backend's pool (-t).
    let backend = CpuBackend::new(a.threads)?;
    let label = a.model.display().to_string();
    let mut result = None;
    backend.install(&mut || {
        result = Some(shohin_engine::lora::export(
            &base, &label, &adapters, &a.output,
        ))
    });
    let r = result.context("the merge did not run")??;
    eprintln!(
        "merged {} tensors with LoRA adapters, copied {}; wrote {}",
        r.merged,
        r.copied,
        a.output.display()
    );
    Ok(())
}
