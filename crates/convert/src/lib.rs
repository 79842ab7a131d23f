//! `shohin convert`: a Hugging Face checkpoint directory (Qwen3, Qwen2,
//! Llama) to GGUF, with the metadata keys, tensor names and tokenizer fields
//! that llama.cpp's `convert_hf_to_gguf.py` writes for the same model (its
//! `Qwen2Model` / `Qwen3Model` / `LlamaModel` classes,
//! `TextModel.set_gguf_parameters`, `_set_vocab_gpt2` and gguf-py's
//! `SpecialVocab`), in the same order. Llama's `q_proj` / `k_proj` rows are
//! permuted as `LlamaModel.permute` does (HF's rotate-half RoPE to ggml's
//! interleaved one); the Qwen classes apply no permutation.
//!
//! - **Weights**: `*.safetensors` (one file, or the shards listed by
//!   `model.safetensors.index.json`), memory-mapped and read with the
//!   `safetensors` crate; F32, F16 and BF16. Tensors are converted one at a
//!   time while the GGUF is written ([`GgufWriter::write_streaming`]), so the
//!   model is never held twice.
//! - **Types** as the converter's `--outtype`: 1-D tensors and norms stay F32;
//!   the other weights become the target (`f32`, `f16`, `bf16`, `q8_0`; a row
//!   that is not a whole number of Q8_0 blocks falls back to F16), with
//!   ggml's rounding (shohin_quantize's `convert_tensor`).
//! - **Llama** (`LlamaForCausalLM`): LlamaConfig's defaults for missing
//!   keys (as the converter reads config.json through AutoConfig), always
//!   `attention.key_length` / `value_length`, then `llama.vocab_size` and
//!   `llama.rope.dimension_count`; `add_space_prefix` from
//!   `tokenizer_config.json`; the pre-tokenizer name from `tokenizer.json`'s
//!   `pre_tokenizer` (`llama-bpe`, `smollm`, `qwen2`; the converter hashes
//!   its tokenizer's output instead). Refused: SentencePiece vocabularies
//!   (`tokenizer.model`, byte-fallback BPE), RoPE scaling other than
//!   `linear` (`llama3` would need `rope_freqs.weight`), ONNX input.
//! - **Tokenizer**: `tokenizer.json` (byte-level BPE: vocabulary, merges,
//!   added tokens: special or `<|...|>` → CONTROL, others USER_DEFINED),
//!   padded to `vocab_size` with `[PAD{i}]` UNUSED tokens; special token ids
//!   from `tokenizer_config.json` (looked up among the added tokens), then
//!   `config.json`'s `*_token_id`; `add_bos_token` / `add_eos_token`; the
//!   chat template from `tokenizer_config.json` (or `chat_template.jinja` /
//!   `chat_template.json`).
//! - **ONNX ternary exports** ([`convert_onnx`], chosen by [`convert`] when
//!   the directory holds a `*.onnx` file and no `*.safetensors`): the
//!   `com.microsoft` `MatMulNBits` linear layers (`bits = 2`,
//!   `block_size = 128`) of onnxruntime-genai's model builder become
//!   PrismML's `Q2_0` g128 blocks code for code, scale for scale, without
//!   re-quantization; see the `onnx` module.

mod hparams;
mod onnx;
mod safetensors;
mod tokenizer;

use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use shohin_gguf::{GgmlType, GgufError};

/// `GGML_QNT_VERSION`.
pub(crate) const QNT_VERSION: u32 = 2;

/// An output type of `convert_hf_to_gguf.py --outtype`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutType {
    F32,
    F16,
    BF16,
    Q8_0,
}

impl OutType {
    pub const ALL: [OutType; 4] = [OutType::F32, OutType::F16, OutType::BF16, OutType::Q8_0];

    pub fn name(self) -> &'static str {
        match self {
            OutType::F32 => "f32",
            OutType::F16 => "f16",
            OutType::BF16 => "bf16",
            OutType::Q8_0 => "q8_0",
        }
    }

    /// Case-insensitive.
    pub fn parse(s: &str) -> Result<OutType, ConvertError> {
        OutType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| ConvertError::Type(s.to_owned()))
    }

    /// `llama_ftype` (`general.file_type`).
    pub fn file_type(self) -> u32 {
        match self {
            OutType::F32 => 0,
            OutType::F16 => 1,
            OutType::BF16 => 32,
            OutType::Q8_0 => 7,
        }
    }

    pub(crate) fn ggml(self) -> GgmlType {
        match self {
            OutType::F32 => GgmlType::F32,
            OutType::F16 => GgmlType::F16,
            OutType::BF16 => GgmlType::BF16,
            OutType::Q8_0 => GgmlType::Q8_0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{}: {msg}", path.display())]
    File { path: PathBuf, msg: String },
    #[error("{}: {key}: {msg}", path.display())]
    Key {
        path: PathBuf,
        key: String,
        msg: String,
    },
    #[error("tensor {tensor}: {msg}")]
    Tensor { tensor: String, msg: String },
    #[error("ONNX node {node} ({op}): {msg}")]
    Node {
        node: String,
        op: String,
        msg: String,
    },
    #[error("unknown output type {0:?} (valid: f32, f16, bf16, q8_0)")]
    Type(String),
    #[error(transparent)]
    Gguf(#[from] GgufError),
}

pub(crate) fn file_err(path: &Path, msg: impl ToString) -> ConvertError {
    ConvertError::File {
        path: path.to_owned(),
        msg: msg.to_string(),
    }
}

pub(crate) fn key_err(path: &Path, key: &str, msg: impl ToString) -> ConvertError {
    ConvertError::Key {
        path: path.to_owned(),
        key: key.to_owned(),
        msg: msg.to_string(),
    }
}

/// Options of one conversion.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub out_type: OutType,
    /// Worker threads; 0 = all cores.
    pub threads: usize,
}

/// One written tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorReport {
    pub hf_name: String,
    pub name: String,
    /// ggml order.
    pub dims: Vec<u64>,
    pub from: GgmlType,
    pub to: GgmlType,
}

/// The result of [`convert`].
#[derive(Clone, Debug)]
pub struct Summary {
    pub arch: &'static str,
    pub tensors: Vec<TensorReport>,
    pub n_vocab: usize,
    pub file_size: u64,
}

pub(crate) fn read_json(path: &Path) -> Result<Json, ConvertError> {
    let text = std::fs::read_to_string(path).map_err(|e| file_err(path, e))?;
    serde_json::from_str(&text).map_err(|e| file_err(path, format!("invalid JSON: {e}")))
}

pub(crate) fn read_json_opt(path: &Path) -> Result<Option<Json>, ConvertError> {
    if path.is_file() {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

/// Converts the checkpoint in `dir` to the GGUF file `out`: a Hugging Face
/// safetensors checkpoint, or (when `dir` has no `*.safetensors` but one
/// `*.onnx`) an ONNX ternary export as [`convert_onnx`] does, where
/// `opts.out_type` does not apply. `on_tensor` is called after each tensor
/// is written.
pub fn convert(
    dir: &Path,
    out: &Path,
    opts: &Options,
    on_tensor: impl FnMut(usize, usize, &TensorReport),
) -> Result<Summary, ConvertError> {
    if is_onnx_dir(dir) {
        return convert_onnx(dir, None, out, opts.threads, on_tensor);
    }
    safetensors::convert(dir, out, opts, on_tensor)
}

/// Whether `dir` holds an ONNX model (`*.onnx`) and no `*.safetensors`, so
/// that [`convert`] converts it with [`convert_onnx`].
pub fn is_onnx_dir(dir: &Path) -> bool {
    onnx::is_onnx_dir(dir)
}

/// Converts an ONNX model whose linear layers are `MatMulNBits` with 2-bit
/// ternary codes in blocks of 128 (onnxruntime-genai's builder layout) to a
/// GGUF with those matrices in `Q2_0` g128 (`general.file_type` 142, the
/// `Q2_0_G128` of `shohin quantize`), the other tensors in their stored
/// float type (1-D ones in F32). `model` picks the `.onnx` file (relative
/// to `dir` or absolute); `None` takes the only `*.onnx` in `dir`.
/// Metadata and tokenizer come from `dir`'s `config.json`,
/// `tokenizer.json` and `tokenizer_config.json`, as for safetensors.
pub fn convert_onnx(
    dir: &Path,
    model: Option<&Path>,
    out: &Path,
    threads: usize,
    on_tensor: impl FnMut(usize, usize, &TensorReport),
) -> Result<Summary, ConvertError> {
    onnx::convert(dir, model, out, threads, on_tensor)
}
