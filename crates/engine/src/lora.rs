//! LoRA adapters in llama.cpp's GGUF adapter format, applied at run time:
//! after every product `W·x` with a weight the adapter names, add
//! `scale · B·(A·x)` (llama.cpp `src/llama-graph.cpp` `build_lora_mm`); for
//! `token_embd.weight`, add `scale · B·A[token]` to the looked-up row
//! (`build_inp_embd`). The base weights stay packed; A and B are kept as
//! f32. `scale = user_scale · alpha / rank`, or `user_scale` when the file's
//! `adapter.lora.alpha` is 0 or absent (`llama-adapter.h` `get_scale`).
//!
//! File layout (`convert_lora_to_gguf.py`, checked as in llama.cpp
//! `src/llama-adapter.cpp`): `general.type = "adapter"`, `adapter.type =
//! "lora"`, `general.architecture` the base model's; tensors
//! `<base name>.lora_a` with ggml dims `[in, rank]` and `.lora_b` with
//! `[rank, out]`, except for `token_embd.weight` whose pair is flipped:
//! `lora_a` `[rank, n_vocab]`, `lora_b` `[rank, n_embd]`. Tensors named
//! `*_norm.weight` are skipped, as llama.cpp does.
//!
//! Which adapters a forward step applies is the model's active set
//! ([`Model::set_adapters`]): it can be changed between steps through a
//! shared `&Model`, so a scheduler can run different requests' adapters in
//! different steps. Each step reads the set when it starts.

mod merge;
pub use merge::{export, MergeReport};

use crate::error::{EngineError, Result};
use crate::model::Model;
use crate::weights::Matrix;
use rayon::prelude::*;
use shohin_gguf::{GgmlType, GgufFile, TensorInfo};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, RwLock};

/// One adapted weight: `A` (`rank` rows of `n_in`) and `B` (`n_out` rows of
/// `rank`), row-major f32. For `token_embd.weight`, `A` has a row of `rank`
/// per token and `B` a row of `rank` per embedding dimension.
#[derive(Debug)]
pub struct LoraWeight {
    pub rank: usize,
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    /// The flipped token-embedding pair (applied to looked-up rows).
    pub embedding: bool,
}

/// A parsed adapter file: its pairs by base tensor name, not yet checked
/// against a model ([`LoraAdapter::check`] does that).
#[derive(Debug)]
pub struct LoraAdapter {
    /// The file, for messages.
    pub label: String,
    pub arch: String,
    /// `adapter.lora.alpha` (0 when absent, as llama.cpp reads it).
    pub alpha: f32,
    pub weights: HashMap<String, LoraWeight>,
}

/// An adapter in the active set, with the user's scale (`--lora-scaled`).
#[derive(Clone, Debug)]
pub struct ActiveLora {
    pub adapter: Arc<LoraAdapter>,
    pub scale: f32,
}

/// The model's active set, swapped whole (readers keep the `Arc` they took
/// for the rest of their step).
#[derive(Debug, Default)]
pub(crate) struct LoraSlot(RwLock<Arc<Vec<ActiveLora>>>);

impl LoraSlot {
    pub(crate) fn active(&self) -> Arc<Vec<ActiveLora>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, set: Vec<ActiveLora>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
    }
}

fn err(label: &str, why: impl Into<String>) -> EngineError {
    EngineError::Lora {
        file: label.to_string(),
        why: why.into(),
    }
}

/// The string at `key`, or "" when absent (as llama.cpp's `get_kv_str`).
fn kv_str<'a>(f: &'a GgufFile, label: &str, key: &str) -> Result<&'a str> {
    match f.get(key) {
        None => Ok(""),
        Some(v) => v
            .as_str()
            .ok_or_else(|| err(label, format!("metadata key {key} is not a string"))),
    }
}

impl LoraAdapter {
    /// Reads the adapter at `path` (any GGUF error names the file).
    pub fn open(path: &Path) -> Result<Self> {
        let label = path.display().to_string();
        let f = GgufFile::open(path).map_err(|e| err(&label, e.to_string()))?;
        Self::from_gguf(&f, &label)
    }

    /// Parses an adapter file's metadata and pairs; `label` names it in
    /// errors.
    pub fn from_gguf(f: &GgufFile, label: &str) -> Result<Self> {
        let general_type = kv_str(f, label, "general.type")?;
        if general_type != "adapter" {
            return Err(err(
                label,
                format!(
                    "not an adapter: metadata key general.type is {general_type:?}, \
                     expected \"adapter\""
                ),
            ));
        }
        let adapter_type = kv_str(f, label, "adapter.type")?;
        if adapter_type != "lora" {
            return Err(err(
                label,
                format!("metadata key adapter.type is {adapter_type:?}, expected \"lora\""),
            ));
        }
        let arch = kv_str(f, label, "general.architecture")?.to_string();
        let alpha = match f.get("adapter.lora.alpha") {
            None => 0.0,
            Some(_) => f
                .get_f32("adapter.lora.alpha")
                .map_err(|e| err(label, e.to_string()))?,
        };
        // Pair `.lora_a` with `.lora_b` by base name.
        let mut pairs: BTreeMap<&str, [Option<&TensorInfo>; 2]> = BTreeMap::new();
        for t in f.tensors() {
            if let Some(base) = t.name.strip_suffix(".lora_a") {
                pairs.entry(base).or_default()[0] = Some(t);
            } else if let Some(base) = t.name.strip_suffix(".lora_b") {
                pairs.entry(base).or_default()[1] = Some(t);
            } else if t.name.ends_with("_norm.weight") {
                // llama.cpp skips these too (it has no LoRA for norms).
                continue;
            } else {
                return Err(err(
                    label,
                    format!(
                        "tensor `{}` has an unexpected suffix (want .lora_a or .lora_b)",
                        t.name
                    ),
                ));
            }
        }
        let mut weights = HashMap::with_capacity(pairs.len());
        for (base, [a, b]) in pairs {
            let (a, b) = match (a, b) {
                (Some(a), Some(b)) => (a, b),
                (None, _) => return Err(err(label, format!("tensor `{base}.lora_a` is missing"))),
                (_, None) => return Err(err(label, format!("tensor `{base}.lora_b` is missing"))),
            };
            let embedding = base == "token_embd.weight";
            let (da, db) = (dims2(label, a)?, dims2(label, b)?);
            // Normal pair: A [in, r], B [r, out]; flipped embedding pair:
            // A [r, n_vocab], B [r, n_embd]. Either way the rank is B's dims[0].
            let rank = db[0];
            let a_rank = if embedding { da[0] } else { da[1] };
            if a_rank != rank || rank == 0 {
                return Err(err(
                    label,
                    format!(
                        "`{base}`: lora_a dims {:?} and lora_b dims {:?} do not share a \
                         rank (a lora_a that is not transposed, as the old finetune \
                         example wrote, is not supported)",
                        a.dims, b.dims
                    ),
                ));
            }
            weights.insert(
                base.to_string(),
                LoraWeight {
                    rank,
                    a: floats(f, label, a)?,
                    b: floats(f, label, b)?,
                    embedding,
                },
            );
        }
        Ok(Self {
            label: label.to_string(),
            arch,
            alpha,
            weights,
        })
    }

    /// `user_scale · alpha / rank`, or `user_scale` when alpha is 0.
    pub fn scale(&self, w: &LoraWeight, user_scale: f32) -> f32 {
        if self.alpha != 0.0 {
            user_scale * self.alpha / w.rank as f32
        } else {
            user_scale
        }
    }

    /// Checks the adapter against `model`: same architecture, and every
    /// pair names a matrix the forward pass multiplies by (or reads rows of,
    /// for `token_embd.weight`) with matching dims, and not one that the
    /// file's `prism.hadamard` fold transforms the input of (qwen35).
    /// (An inverse-folded `token_embd` is fine: its delta is added after
    /// the rows are un-folded.)
    pub fn check(&self, model: &Model) -> Result<()> {
        let label = &self.label;
        let arch = model.config.arch;
        if self.arch != arch.name() {
            return Err(err(
                label,
                format!(
                    "general.architecture is {:?} but the model is {}",
                    self.arch,
                    arch.name()
                ),
            ));
        }
        // A tied output is a copy of token_embd under its name: a pair for
        // that name is the embedding's (flipped) one, applied to the
        // looked-up rows only.
        let mats: HashMap<&str, &Matrix> = model
            .weights
            .matrices()
            .map(|m| (m.name.as_str(), m))
            .collect();
        for (name, lw) in &self.weights {
            let Some(m) = mats.get(name.as_str()) else {
                let why = if model.file.tensor(name).is_some() {
                    "is not a matrix the forward pass multiplies by"
                } else {
                    "does not exist in the base model (wrong base model?)"
                };
                return Err(err(label, format!("tensor `{name}` {why}")));
            };
            // A `prism.hadamard`-folded matrix multiplies the transformed
            // input `H·S·P·x`, but the adapter's A was made for `x`.
            if m.fold.is_some() {
                return Err(err(
                    label,
                    format!(
                        "tensor `{name}` is Hadamard-folded in this model; LoRA on \
                         folded matrices is not supported"
                    ),
                ));
            }
            let (n_in, n_out) = lw.dims();
            let (want_in, want_out) = if lw.embedding {
                (m.rows, m.cols)
            } else {
                (m.cols, m.rows)
            };
            if (n_in, n_out) != (want_in, want_out) {
                return Err(err(
                    label,
                    format!(
                        "tensor `{name}`: the pair maps {n_in} -> {n_out} but the base \
                         matrix is [{}, {}] (wrong base model?)",
                        m.cols, m.rows
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl LoraWeight {
    /// (inputs, outputs) of the delta: for the embedding pair, (n_vocab,
    /// n_embd).
    pub fn dims(&self) -> (usize, usize) {
        (self.a.len() / self.rank, self.b.len() / self.rank)
    }

    /// `out[o] += scale · Σ_k B[o][k] · t[k]`, with `t` the rank-long
    /// intermediate.
    fn add_b(&self, t: &[f32], scale: f32, out: &mut [f32]) {
        for (o, row) in out.iter_mut().zip(self.b.chunks_exact(self.rank)) {
            *o += dot(row, t) * scale;
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn dims2(label: &str, t: &TensorInfo) -> Result<[usize; 2]> {
    match t.dims.as_slice() {
        [d0, d1] | [d0, d1, 1] | [d0, d1, 1, 1] if *d0 > 0 && *d1 > 0 => {
            Ok([*d0 as usize, *d1 as usize])
        }
        d => Err(err(
            label,
            format!("tensor `{}` has dims {d:?}, expected a matrix", t.name),
        )),
    }
}

/// A tensor of the adapter as f32.
fn floats(f: &GgufFile, label: &str, t: &TensorInfo) -> Result<Vec<f32>> {
    if !matches!(t.ggml_type, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
        return Err(err(
            label,
            format!(
                "tensor `{}` is {}; LoRA tensors must be F32, F16 or BF16",
                t.name, t.ggml_type
            ),
        ));
    }
    let mut out = vec![0.0f32; t.n_elements as usize];
    shohin_quant::dequantize_row(t.ggml_type, f.tensor_data(t), &mut out)
        .map_err(|e| err(label, format!("tensor `{}`: {e}", t.name)))?;
    Ok(out)
}

impl Model {
    /// Makes `set` the adapters applied from the next forward step on
    /// (empty: none). Each adapter is checked against this model first;
    /// on error the active set is unchanged. Takes `&self` so that a
    /// scheduler sharing the model can switch sets between steps; a step
    /// already running keeps the set it started with.
    pub fn set_adapters(&self, set: Vec<ActiveLora>) -> Result<()> {
        for a in &set {
            a.adapter.check(self)?;
        }
        self.lora.set(set);
        Ok(())
    }

    /// The active set.
    pub fn adapters(&self) -> Arc<Vec<ActiveLora>> {
        self.lora.active()
    }

    /// `out = m·x` (`n` rows of `m.cols` in `x`), plus every active
    /// adapter's delta for `m`.
    pub(crate) fn matmul_lora(
        &self,
        set: &[ActiveLora],
        m: &Matrix,
        x: &[f32],
        n: usize,
        out: &mut [f32],
    ) {
        self.backend.matmul(m.view(&self.file), x, n, out);
        for act in set {
            let Some(lw) = act.adapter.weights.get(&m.name) else {
                continue;
            };
            if lw.embedding {
                // A tied output matrix: the pair is the embedding's.
                continue;
            }
            let scale = act.adapter.scale(lw, act.scale);
            let r = lw.rank;
            let (n_in, n_out) = (m.cols, m.rows);
            out.par_chunks_mut(n_out)
                .zip(x.par_chunks(n_in))
                .for_each_init(
                    || vec![0.0f32; r],
                    |t, (o, xs)| {
                        for (tk, row) in t.iter_mut().zip(lw.a.chunks_exact(n_in)) {
                            *tk = dot(row, xs);
                        }
                        lw.add_b(t, scale, o);
                    },
                );
        }
    }

    /// Adds the active adapters' token-embedding deltas to the looked-up
    /// rows `x` (`[tokens][n_embd]`).
    pub(crate) fn embed_lora(&self, tokens: impl Iterator<Item = u32>, x: &mut [f32]) {
        let set = self.lora.active();
        if set.is_empty() {
            return;
        }
        let tokens: Vec<u32> = tokens.collect();
        let d = self.config.n_embd;
        for act in set.iter() {
            let Some(lw) = act.adapter.weights.get(&self.weights.token_embd.name) else {
                continue;
            };
            let scale = act.adapter.scale(lw, act.scale);
            for (&id, row) in tokens.iter().zip(x.chunks_exact_mut(d)) {
                let a = &lw.a[id as usize * lw.rank..(id as usize + 1) * lw.rank];
                lw.add_b(a, scale, row);
            }
        }
    }
}
