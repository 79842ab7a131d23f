//! The model's tensors, found by name in the GGUF file and checked against
//! the hyperparameters (names: llama.cpp `llama-arch.cpp` LLM_TENSOR_NAMES).
//! Matrices stay in the memory map; only norms and biases are copied to f32.

use crate::backend::Backend;
use crate::config::{Arch, ModelConfig};
use crate::error::{EngineError, Result};
use crate::hadamard::{FoldPlan, HadamardFold};
use shohin_gguf::{GgufFile, TensorInfo};
use shohin_quant::packed::PackedMatrix;
use shohin_quant::GgmlType;
use std::sync::Arc;

mod qwen35;
pub use qwen35::{DeltaNet, GatedAttention, HybridLayer, Mixer};

/// A matrix of `rows` rows of `cols` weights each, in the file's format.
/// GGUF dims are `[cols, rows]` (dims[0] contiguous).
#[derive(Clone, Debug)]
pub struct Matrix {
    pub name: String,
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    info: TensorInfo,
    /// The backend's repacked copy, if it made one at load (then the
    /// file's pages of this tensor were released).
    pub packed: Option<Arc<PackedMatrix>>,
    /// Set when the file's `prism.hadamard` fold lists this matrix: its
    /// input must go through the plan (`H·S·P·x`) before the product
    /// (see [`Weights::attach_fold`]). Boxed: most matrices have none.
    pub fold: Option<Box<FoldPlan>>,
}

/// A borrowed view of a matrix's bytes, handed to the backend.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    /// `rows * row_bytes(ty, cols)` bytes, row-major.
    pub data: &'a [u8],
    /// The same weights repacked by the backend (preferred when present).
    pub packed: Option<&'a PackedMatrix>,
}

impl Matrix {
    pub fn view<'a>(&'a self, file: &'a GgufFile) -> MatRef<'a> {
        MatRef {
            ty: self.ty,
            rows: self.rows,
            cols: self.cols,
            data: file.tensor_data(&self.info),
            packed: self.packed.as_deref(),
        }
    }
}

#[derive(Debug)]
pub struct Layer {
    pub attn_norm: Vec<f32>,
    pub wq: Matrix,
    pub wk: Matrix,
    pub wv: Matrix,
    /// qwen2 only.
    pub bq: Option<Vec<f32>>,
    pub bk: Option<Vec<f32>>,
    pub bv: Option<Vec<f32>>,
    /// qwen3 only: per-head RMSNorm weights, `head_dim` long.
    pub q_norm: Option<Vec<f32>>,
    pub k_norm: Option<Vec<f32>>,
    pub wo: Matrix,
    pub ffn_norm: Vec<f32>,
    pub w_gate: Matrix,
    pub w_up: Matrix,
    pub w_down: Matrix,
}

#[derive(Debug)]
pub struct Weights {
    pub token_embd: Matrix,
    /// qwen2 / qwen3 layers (empty for qwen35).
    pub layers: Vec<Layer>,
    /// qwen35 layers (empty otherwise).
    pub hybrid: Vec<HybridLayer>,
    pub output_norm: Vec<f32>,
    /// `output.weight`, or `token_embd` when absent (tied embeddings).
    pub output: Matrix,
    pub tied_output: bool,
    pub n_vocab: usize,
}

fn find<'a>(f: &'a GgufFile, name: &str) -> Result<&'a TensorInfo> {
    f.tensor(name)
        .ok_or_else(|| EngineError::MissingTensor(name.to_string()))
}

fn check_dims(t: &TensorInfo, want: &[u64]) -> Result<()> {
    if t.dims != want {
        return Err(EngineError::BadShape {
            name: t.name.clone(),
            got: t.dims.clone(),
            want: want.to_vec(),
        });
    }
    Ok(())
}

fn matrix(f: &GgufFile, name: &str, cols: usize, rows: usize) -> Result<Matrix> {
    let t = find(f, name)?;
    check_dims(t, &[cols as u64, rows as u64])?;
    if matches!(
        t.ggml_type,
        GgmlType::Q8K | GgmlType::Q8_1 | GgmlType::Q8_0R
    ) {
        return Err(EngineError::BadTensorType {
            name: name.to_string(),
            ty: t.ggml_type,
            why: "Q8_K, Q8_1 and Q8_0R are activation formats",
        });
    }
    Ok(Matrix {
        name: name.to_string(),
        ty: t.ggml_type,
        rows,
        cols,
        info: t.clone(),
        packed: None,
        fold: None,
    })
}

/// A 1-D tensor of `n` values, copied to f32 (norm weights, biases).
fn vector(f: &GgufFile, name: &str, n: usize) -> Result<Vec<f32>> {
    floats(f, name, &[n as u64])
}

/// A float tensor of shape `dims` (ggml order), copied to f32.
fn floats(f: &GgufFile, name: &str, dims: &[u64]) -> Result<Vec<f32>> {
    let t = find(f, name)?;
    check_dims(t, dims)?;
    let n = dims.iter().product::<u64>() as usize;
    if !matches!(t.ggml_type, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
        return Err(EngineError::BadTensorType {
            name: name.to_string(),
            ty: t.ggml_type,
            why: "norms and biases must be F32, F16 or BF16",
        });
    }
    let mut out = vec![0.0f32; n];
    shohin_quant::dequantize_row(t.ggml_type, f.tensor_data(t), &mut out).map_err(|e| {
        EngineError::BadHparam {
            key: name.to_string(),
            why: e.to_string(),
        }
    })?;
    Ok(out)
}

fn opt_vector(f: &GgufFile, name: &str, n: usize) -> Result<Option<Vec<f32>>> {
    if f.tensor(name).is_some() {
        vector(f, name, n).map(Some)
    } else {
        Ok(None)
    }
}

/// Tensors of llama variants that shohin does not apply yet: refused by
/// name rather than ignored (llama.cpp `src/models/llama.cpp` loads them as
/// optional).
fn llama_unsupported_tensors(f: &GgufFile, n_layer: usize) -> Result<()> {
    let why = |name: &str, what: &str| EngineError::BadHparam {
        key: name.to_string(),
        why: format!("{what} is not supported yet"),
    };
    for i in 0..n_layer {
        for s in [
            "attn_output.bias",
            "ffn_gate.bias",
            "ffn_up.bias",
            "ffn_down.bias",
        ] {
            let name = format!("blk.{i}.{s}");
            if f.tensor(&name).is_some() {
                return Err(why(&name, "a bias on this llama matrix"));
            }
        }
        for s in [
            "attn_q.bias",
            "attn_k.bias",
            "attn_v.bias",
            "attn_qkv.weight",
        ] {
            let name = format!("blk.{i}.{s}");
            if f.tensor(&name).is_some() {
                return Err(why(&name, "this llama tensor"));
            }
        }
    }
    Ok(())
}

impl Weights {
    pub fn load(f: &GgufFile, c: &ModelConfig) -> Result<Self> {
        let te = find(f, "token_embd.weight")?;
        let n_vocab = match te.dims.as_slice() {
            [cols, rows] if *cols == c.n_embd as u64 && *rows > 0 => *rows as usize,
            _ => {
                return Err(EngineError::BadShape {
                    name: te.name.clone(),
                    got: te.dims.clone(),
                    want: vec![c.n_embd as u64, 0],
                })
            }
        };
        let token_embd = matrix(f, "token_embd.weight", c.n_embd, n_vocab)?;
        let (output, tied_output) = match f.tensor("output.weight") {
            Some(_) => (matrix(f, "output.weight", c.n_embd, n_vocab)?, false),
            None => (token_embd.clone(), true),
        };
        let output_norm = vector(f, "output_norm.weight", c.n_embd)?;
        // qwen35's layers differ by kind (weights/qwen35.rs).
        let (n_plain, n_hybrid) = match c.arch {
            Arch::Qwen35 => (0, c.n_layer),
            _ => (c.n_layer, 0),
        };
        let mut hybrid = Vec::with_capacity(n_hybrid.min(f.tensors().len()));
        for i in 0..n_hybrid {
            hybrid.push(HybridLayer::load(f, c, i)?);
        }
        if c.arch == Arch::Llama {
            llama_unsupported_tensors(f, c.n_layer)?;
        }
        let mut layers = Vec::with_capacity(n_plain.min(f.tensors().len()));
        for i in 0..n_plain {
            let n = |s: &str| format!("blk.{i}.{s}");
            let (bq, bk, bv, q_norm, k_norm) = match c.arch {
                Arch::Qwen2 => (
                    opt_vector(f, &n("attn_q.bias"), c.q_dim())?,
                    opt_vector(f, &n("attn_k.bias"), c.k_dim())?,
                    opt_vector(f, &n("attn_v.bias"), c.v_dim())?,
                    None,
                    None,
                ),
                Arch::Llama => (None, None, None, None, None),
                Arch::Qwen3 | Arch::Qwen35 => (
                    None,
                    None,
                    None,
                    Some(vector(f, &n("attn_q_norm.weight"), c.head_dim)?),
                    Some(vector(f, &n("attn_k_norm.weight"), c.head_dim)?),
                ),
            };
            layers.push(Layer {
                attn_norm: vector(f, &n("attn_norm.weight"), c.n_embd)?,
                wq: matrix(f, &n("attn_q.weight"), c.n_embd, c.q_dim())?,
                wk: matrix(f, &n("attn_k.weight"), c.n_embd, c.k_dim())?,
                wv: matrix(f, &n("attn_v.weight"), c.n_embd, c.v_dim())?,
                bq,
                bk,
                bv,
                q_norm,
                k_norm,
                wo: matrix(
                    f,
                    &n("attn_output.weight"),
                    c.n_head * c.head_dim_v,
                    c.n_embd,
                )?,
                ffn_norm: vector(f, &n("ffn_norm.weight"), c.n_embd)?,
                w_gate: matrix(f, &n("ffn_gate.weight"), c.n_embd, c.n_ff)?,
                w_up: matrix(f, &n("ffn_up.weight"), c.n_embd, c.n_ff)?,
                w_down: matrix(f, &n("ffn_down.weight"), c.n_ff, c.n_embd)?,
            });
        }
        Ok(Self {
            token_embd,
            layers,
            hybrid,
            output_norm,
            output,
            tied_output,
            n_vocab,
        })
    }

    /// Let the backend repack every matrix multiplied by (the output and
    /// the layers'; not `token_embd`, which is only read row by row unless
    /// tied, and then as `output`), releasing the file's pages of those it
    /// copied so that resident memory stays about the file's size.
    /// `progress(done, total)` is called after each matrix with the file
    /// bytes of the matrices considered so far and in all.
    pub fn pack(
        &mut self,
        f: &GgufFile,
        backend: &dyn Backend,
        progress: &mut dyn FnMut(u64, u64),
    ) {
        let total: u64 = self.matrices().skip(1).map(|m| m.info.n_bytes).sum();
        let mut done = 0u64;
        let mut one = |m: &mut Matrix| {
            if let Some(p) = backend.pack(m.view(f)) {
                m.packed = Some(Arc::new(p));
                f.release(&m.info);
            }
            done += m.info.n_bytes;
            progress(done, total);
        };
        self.for_each_product_matrix(&mut one);
    }

    /// `f` on every matrix the forward pass multiplies by (the output and
    /// the layers'), the output first, then the layers in order.
    fn for_each_product_matrix(&mut self, f: &mut dyn FnMut(&mut Matrix)) {
        f(&mut self.output);
        for l in &mut self.layers {
            for m in [
                &mut l.wq,
                &mut l.wk,
                &mut l.wv,
                &mut l.wo,
                &mut l.w_gate,
                &mut l.w_up,
                &mut l.w_down,
            ] {
                f(m);
            }
        }
        for l in &mut self.hybrid {
            for m in l.matrices_mut() {
                f(m);
            }
        }
    }

    /// Gives each matrix the fold's plan for its name (none for the
    /// matrices the fold does not list). The fold must be bound to the
    /// same file's tensors ([`HadamardFold::from_gguf`]).
    pub fn attach_fold(&mut self, fold: &HadamardFold) {
        self.for_each_product_matrix(&mut |m| {
            m.fold = fold.plan(&m.name).cloned().map(Box::new);
        });
    }

    /// Every matrix, for backend capability checks at load.
    pub fn matrices(&self) -> impl Iterator<Item = &Matrix> {
        std::iter::once(&self.token_embd)
            .chain(std::iter::once(&self.output))
            .chain(
                self.layers
                    .iter()
                    .flat_map(|l| [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down]),
            )
            .chain(self.hybrid.iter().flat_map(|l| l.matrices()))
    }
}
