//! `shohin convert`: a Hugging Face checkpoint directory (Qwen3, Qwen2) to
//! GGUF, with the metadata keys, tensor names and tokenizer fields that
//! llama.cpp's `convert_hf_to_gguf.py` writes for the same model (its
//! `Qwen2Model` / `Qwen3Model` classes, `TextModel.set_gguf_parameters`,
//! `_set_vocab_gpt2` and gguf-py's `SpecialVocab`). Neither architecture gets
//! a Q/K permutation there (only the Llama family does), so none is applied.
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
//! - **Tokenizer**: `tokenizer.json` (byte-level BPE: vocabulary, merges,
//!   added tokens: special or `<|...|>` → CONTROL, others USER_DEFINED),
//!   padded to `vocab_size` with `[PAD{i}]` UNUSED tokens; special token ids
//!   from `tokenizer_config.json` (looked up among the added tokens), then
//!   `config.json`'s `*_token_id`; `add_bos_token` / `add_eos_token`; the
//!   chat template from `tokenizer_config.json` (or `chat_template.jinja` /
//!   `chat_template.json`).

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use serde_json::Value as Json;
use shohin_gguf::{GgmlType, GgufError, GgufWriter, Value, ValueType};

/// `GGML_QNT_VERSION`.
const QNT_VERSION: u32 = 2;

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

    fn ggml(self) -> GgmlType {
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
    #[error("unknown output type {0:?} (valid: f32, f16, bf16, q8_0)")]
    Type(String),
    #[error(transparent)]
    Gguf(#[from] GgufError),
}

fn file_err(path: &Path, msg: impl ToString) -> ConvertError {
    ConvertError::File {
        path: path.to_owned(),
        msg: msg.to_string(),
    }
}

fn key_err(path: &Path, key: &str, msg: impl ToString) -> ConvertError {
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

fn read_json(path: &Path) -> Result<Json, ConvertError> {
    let text = std::fs::read_to_string(path).map_err(|e| file_err(path, e))?;
    serde_json::from_str(&text).map_err(|e| file_err(path, format!("invalid JSON: {e}")))
}

fn read_json_opt(path: &Path) -> Result<Option<Json>, ConvertError> {
    if path.is_file() {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

/// The model hyperparameters of `config.json`.
#[derive(Clone, Debug)]
struct Hparams {
    arch: &'static str,
    n_layer: usize,
    n_ctx: Option<u64>,
    n_embd: usize,
    n_ff: usize,
    n_head: usize,
    n_head_kv: usize,
    head_dim: usize,
    head_dim_explicit: bool,
    rope_theta: Option<f64>,
    rms_eps: f64,
    vocab_size: Option<usize>,
    tied: bool,
}

fn uint(cfg: &Json, path: &Path, key: &str) -> Result<Option<usize>, ConvertError> {
    match cfg.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|&n| n > 0)
            .map(|n| Some(n as usize))
            .ok_or_else(|| key_err(path, key, format!("{v} is not a positive integer"))),
    }
}

fn need_uint(cfg: &Json, path: &Path, key: &str) -> Result<usize, ConvertError> {
    uint(cfg, path, key)?.ok_or_else(|| key_err(path, key, "missing"))
}

fn hparams(cfg: &Json, path: &Path) -> Result<Hparams, ConvertError> {
    let archs = cfg
        .get("architectures")
        .and_then(Json::as_array)
        .ok_or_else(|| key_err(path, "architectures", "missing"))?;
    let first = archs.first().and_then(Json::as_str).unwrap_or("");
    let arch = match first {
        "Qwen3ForCausalLM" => "qwen3",
        "Qwen2ForCausalLM" => "qwen2",
        _ => {
            return Err(key_err(
                path,
                "architectures",
                format!(
                    "unsupported architecture {first:?} (supported: Qwen3ForCausalLM, Qwen2ForCausalLM)"
                ),
            ))
        }
    };
    let n_embd = need_uint(cfg, path, "hidden_size")?;
    let n_head = need_uint(cfg, path, "num_attention_heads")?;
    let n_head_kv = uint(cfg, path, "num_key_value_heads")?.unwrap_or(n_head);
    let head_dim_cfg = uint(cfg, path, "head_dim")?;
    if head_dim_cfg.is_none() && n_embd % n_head != 0 {
        return Err(key_err(
            path,
            "head_dim",
            "missing, and hidden_size is not a multiple of num_attention_heads",
        ));
    }
    if n_head % n_head_kv != 0 {
        return Err(key_err(
            path,
            "num_key_value_heads",
            format!("{n_head_kv} does not divide num_attention_heads {n_head}"),
        ));
    }
    // rope_theta at the top level, or in rope_parameters (transformers 5)
    let rope_theta = match cfg.get("rope_theta") {
        Some(v) if !v.is_null() => Some(v),
        _ => cfg.get("rope_parameters").and_then(|r| r.get("rope_theta")),
    };
    let rope_theta = match rope_theta {
        None => None,
        Some(v) => Some(
            v.as_f64()
                .ok_or_else(|| key_err(path, "rope_theta", format!("{v} is not a number")))?,
        ),
    };
    let rms_eps = cfg
        .get("rms_norm_eps")
        .ok_or_else(|| key_err(path, "rms_norm_eps", "missing"))?;
    let rms_eps = rms_eps.as_f64().filter(|e| *e > 0.0).ok_or_else(|| {
        key_err(
            path,
            "rms_norm_eps",
            format!("{rms_eps} is not a positive number"),
        )
    })?;
    Ok(Hparams {
        arch,
        n_layer: need_uint(cfg, path, "num_hidden_layers")?,
        n_ctx: uint(cfg, path, "max_position_embeddings")?.map(|n| n as u64),
        n_embd,
        n_ff: need_uint(cfg, path, "intermediate_size")?,
        n_head,
        n_head_kv,
        head_dim: head_dim_cfg.unwrap_or(n_embd / n_head),
        head_dim_explicit: head_dim_cfg.is_some(),
        rope_theta,
        rms_eps,
        vocab_size: uint(cfg, path, "vocab_size")?,
        tied: cfg
            .get("tie_word_embeddings")
            .and_then(Json::as_bool)
            .unwrap_or(false),
    })
}

/// One tensor the model needs: HF name, GGUF name, HF shape (row-major,
/// outermost first).
struct Wanted {
    hf: String,
    name: String,
    shape: Vec<usize>,
}

fn wanted(h: &Hparams, n_vocab: usize, has_lm_head: bool) -> Vec<Wanted> {
    let (e, f) = (h.n_embd, h.n_ff);
    let q = h.n_head * h.head_dim;
    let kv = h.n_head_kv * h.head_dim;
    let mut v = Vec::new();
    let mut add = |hf: String, name: String, shape: Vec<usize>| v.push(Wanted { hf, name, shape });
    add(
        "model.embed_tokens.weight".into(),
        "token_embd.weight".into(),
        vec![n_vocab, e],
    );
    for i in 0..h.n_layer {
        let p = format!("model.layers.{i}.");
        let b = format!("blk.{i}.");
        let mut layer = |hf: &str, name: &str, shape: Vec<usize>| {
            add(format!("{p}{hf}"), format!("{b}{name}"), shape)
        };
        layer("input_layernorm.weight", "attn_norm.weight", vec![e]);
        layer("self_attn.q_proj.weight", "attn_q.weight", vec![q, e]);
        layer("self_attn.k_proj.weight", "attn_k.weight", vec![kv, e]);
        layer("self_attn.v_proj.weight", "attn_v.weight", vec![kv, e]);
        if h.arch == "qwen2" {
            layer("self_attn.q_proj.bias", "attn_q.bias", vec![q]);
            layer("self_attn.k_proj.bias", "attn_k.bias", vec![kv]);
            layer("self_attn.v_proj.bias", "attn_v.bias", vec![kv]);
        }
        if h.arch == "qwen3" {
            layer(
                "self_attn.q_norm.weight",
                "attn_q_norm.weight",
                vec![h.head_dim],
            );
            layer(
                "self_attn.k_norm.weight",
                "attn_k_norm.weight",
                vec![h.head_dim],
            );
        }
        layer("self_attn.o_proj.weight", "attn_output.weight", vec![e, q]);
        layer(
            "post_attention_layernorm.weight",
            "ffn_norm.weight",
            vec![e],
        );
        layer("mlp.gate_proj.weight", "ffn_gate.weight", vec![f, e]);
        layer("mlp.up_proj.weight", "ffn_up.weight", vec![f, e]);
        layer("mlp.down_proj.weight", "ffn_down.weight", vec![e, f]);
    }
    add(
        "model.norm.weight".into(),
        "output_norm.weight".into(),
        vec![e],
    );
    if has_lm_head {
        add(
            "lm_head.weight".into(),
            "output.weight".into(),
            vec![n_vocab, e],
        );
    }
    v
}

/// The checkpoint's safetensors files: the shards of the index, else
/// `model.safetensors`, else every `*.safetensors` (sorted).
fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>, ConvertError> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let j = read_json(&index)?;
        let map = j
            .get("weight_map")
            .and_then(Json::as_object)
            .ok_or_else(|| key_err(&index, "weight_map", "missing"))?;
        let mut files = BTreeSet::new();
        for (name, f) in map {
            let f = f
                .as_str()
                .ok_or_else(|| key_err(&index, &format!("weight_map.{name}"), "not a string"))?;
            files.insert(f.to_owned());
        }
        return Ok(files.into_iter().map(|f| dir.join(f)).collect());
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let rd = std::fs::read_dir(dir).map_err(|e| file_err(dir, e))?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(file_err(dir, "no *.safetensors files"));
    }
    Ok(files)
}

fn ggml_of(dtype: Dtype) -> Option<GgmlType> {
    match dtype {
        Dtype::F32 => Some(GgmlType::F32),
        Dtype::F16 => Some(GgmlType::F16),
        Dtype::BF16 => Some(GgmlType::BF16),
        _ => None,
    }
}

/// The tokenizer metadata, in the order convert_hf_to_gguf.py writes it.
fn tokenizer_metadata(
    dir: &Path,
    cfg: &Json,
    n_vocab: usize,
) -> Result<Vec<(String, Value)>, ConvertError> {
    let tpath = dir.join("tokenizer.json");
    let tok = read_json(&tpath)?;
    let model = tok
        .get("model")
        .ok_or_else(|| key_err(&tpath, "model", "missing"))?;
    let ty = model.get("type").and_then(Json::as_str).unwrap_or("");
    if ty != "BPE" {
        return Err(key_err(
            &tpath,
            "model.type",
            format!("{ty:?} is not supported (only BPE)"),
        ));
    }
    let vocab = model
        .get("vocab")
        .and_then(Json::as_object)
        .ok_or_else(|| key_err(&tpath, "model.vocab", "missing"))?;
    let mut tokens: Vec<Option<String>> = vec![None; n_vocab];
    let mut types = vec![1i32; n_vocab];
    let mut put = |key: &str, text: &str, id: &Json| -> Result<usize, ConvertError> {
        let id = id
            .as_u64()
            .map(|i| i as usize)
            .ok_or_else(|| key_err(&tpath, key, format!("bad id {id} for {text:?}")))?;
        if id >= n_vocab {
            return Err(key_err(
                &tpath,
                key,
                format!("id {id} of {text:?} is not below vocab_size {n_vocab}"),
            ));
        }
        tokens[id] = Some(text.to_owned());
        Ok(id)
    };
    for (text, id) in vocab {
        put("model.vocab", text, id)?;
    }
    let added = tok
        .get("added_tokens")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    for a in &added {
        let text = a.get("content").and_then(Json::as_str).unwrap_or("");
        let id = put("added_tokens", text, a.get("id").unwrap_or(&Json::Null))?;
        let special = a.get("special").and_then(Json::as_bool).unwrap_or(false);
        let looks = matches!(text, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
            || (text.starts_with("<|") && text.ends_with("|>"));
        types[id] = if special || looks { 3 } else { 4 };
    }
    let mut list = Vec::with_capacity(n_vocab);
    for (i, t) in tokens.into_iter().enumerate() {
        match t {
            Some(t) => list.push(Value::String(t)),
            None => {
                list.push(Value::String(format!("[PAD{i}]")));
                types[i] = 5;
            }
        }
    }
    let mut md: Vec<(String, Value)> = vec![
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String("qwen2".into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(ValueType::String, list),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(ValueType::I32, types.into_iter().map(Value::I32).collect()),
        ),
    ];
    // merges: "a b" strings, or pairs (spaces inside a part become U+0120)
    if let Some(merges) = model.get("merges").and_then(Json::as_array) {
        let mut out = Vec::with_capacity(merges.len());
        for (i, m) in merges.iter().enumerate() {
            let s = match m {
                Json::String(s) => s.clone(),
                Json::Array(p) if p.len() == 2 && p.iter().all(Json::is_string) => p
                    .iter()
                    .map(|s| s.as_str().unwrap_or("").replace(' ', "\u{120}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => {
                    return Err(key_err(
                        &tpath,
                        &format!("model.merges[{i}]"),
                        "not a string or a pair of strings",
                    ))
                }
            };
            out.push(Value::String(s));
        }
        if !out.is_empty() {
            md.push((
                "tokenizer.ggml.merges".into(),
                Value::Array(ValueType::String, out),
            ));
        }
    }
    // special tokens (gguf-py SpecialVocab)
    let mut add_special: Vec<(&str, bool)> = Vec::new();
    let set_add = |v: &mut Vec<(&'static str, bool)>, typ: &'static str, b: bool, force: bool| {
        if let Some(e) = v.iter_mut().find(|(t, _)| *t == typ) {
            if force {
                e.1 = b;
            }
        } else {
            v.push((typ, b));
        }
    };
    if let Some(pp) = tok.get("post_processor").filter(|p| !p.is_null()) {
        let procs = pp
            .get("processors")
            .and_then(Json::as_array)
            .cloned()
            .unwrap_or_else(|| vec![pp.clone()]);
        for p in procs {
            match p.get("type").and_then(Json::as_str) {
                Some("ByteLevel") => {
                    set_add(&mut add_special, "bos", false, false);
                    set_add(&mut add_special, "eos", false, false);
                }
                Some("RobertaProcessing") => {
                    set_add(&mut add_special, "bos", true, true);
                    set_add(&mut add_special, "eos", true, true);
                    set_add(&mut add_special, "sep", true, true);
                }
                _ => {}
            }
        }
    }
    const TYPES: [(&str, &str); 7] = [
        ("bos", "bos_token_id"),
        ("eos", "eos_token_id"),
        ("unk", "unknown_token_id"),
        ("sep", "seperator_token_id"),
        ("pad", "padding_token_id"),
        ("cls", "cls_token_id"),
        ("mask", "mask_token_id"),
    ];
    let mut ids: Vec<(&str, u32)> = Vec::new();
    let mut set_id = |typ: &'static str, id: Option<u64>| {
        if let Some(id) = id.filter(|&i| (i as usize) < n_vocab) {
            if !ids.iter().any(|(t, _)| *t == typ) {
                ids.push((typ, id as u32));
            }
        }
    };
    let tc_path = dir.join("tokenizer_config.json");
    let tc = read_json_opt(&tc_path)?;
    let mut chat_template: Option<String> = None;
    if let Some(tc) = &tc {
        for (typ, _) in TYPES {
            if let Some(b) = tc.get(format!("add_{typ}_token")).and_then(Json::as_bool) {
                set_add(&mut add_special, typ, b, false);
            }
            let content = match tc.get(format!("{typ}_token")) {
                Some(Json::String(s)) => Some(s.as_str()),
                Some(Json::Object(o)) => o.get("content").and_then(Json::as_str),
                _ => None,
            };
            if let Some(c) = content {
                let id = added
                    .iter()
                    .find(|a| a.get("content").and_then(Json::as_str) == Some(c))
                    .and_then(|a| a.get("id").and_then(Json::as_u64));
                set_id(typ, id);
            }
        }
        chat_template = match tc.get("chat_template") {
            Some(Json::String(s)) => Some(s.clone()),
            _ => None,
        };
    }
    if chat_template.is_none() {
        let jinja = dir.join("chat_template.jinja");
        if jinja.is_file() {
            chat_template = Some(std::fs::read_to_string(&jinja).map_err(|e| file_err(&jinja, e))?);
        } else if let Some(j) = read_json_opt(&dir.join("chat_template.json"))? {
            chat_template = j
                .get("chat_template")
                .and_then(Json::as_str)
                .map(str::to_owned);
        }
    }
    for (typ, _) in TYPES {
        set_id(
            typ,
            cfg.get(format!("{typ}_token_id")).and_then(Json::as_u64),
        );
    }
    for (typ, key) in TYPES {
        if let Some((_, id)) = ids.iter().find(|(t, _)| *t == typ) {
            md.push((format!("tokenizer.ggml.{key}"), Value::U32(*id)));
        }
    }
    for (typ, b) in add_special {
        md.push((format!("tokenizer.ggml.add_{typ}_token"), Value::Bool(b)));
    }
    if let Some(t) = chat_template {
        md.push(("tokenizer.chat_template".into(), Value::String(t)));
    }
    Ok(md)
}

/// The GGUF type of a tensor for `out` (convert_hf_to_gguf.py's rules).
fn target_type(name: &str, shape: &[usize], out: OutType) -> GgmlType {
    if shape.len() <= 1 || name.ends_with("_norm.weight") {
        return GgmlType::F32;
    }
    let t = out.ggml();
    if !shape[shape.len() - 1].is_multiple_of(t.block_size()) {
        GgmlType::F16
    } else {
        t
    }
}

/// Converts the checkpoint in `dir` to the GGUF file `out`. `on_tensor` is
/// called after each tensor is written.
pub fn convert(
    dir: &Path,
    out: &Path,
    opts: &Options,
    mut on_tensor: impl FnMut(usize, usize, &TensorReport),
) -> Result<Summary, ConvertError> {
    let cfg_path = dir.join("config.json");
    let cfg = read_json(&cfg_path)?;
    let h = hparams(&cfg, &cfg_path)?;

    // map every safetensors file, index the tensors by name
    let files = safetensors_files(dir)?;
    let mut maps = Vec::with_capacity(files.len());
    for f in &files {
        let file = std::fs::File::open(f).map_err(|e| file_err(f, e))?;
        // SAFETY: the file is only read; as every mmap-based reader, this
        // assumes no one truncates the checkpoint while it is converted.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| file_err(f, e))?;
        maps.push(map);
    }
    let mut sts = Vec::with_capacity(files.len());
    for (f, m) in files.iter().zip(&maps) {
        sts.push(SafeTensors::deserialize(m).map_err(|e| file_err(f, e))?);
    }
    let mut by_name: HashMap<String, usize> = HashMap::new();
    for (i, st) in sts.iter().enumerate() {
        for name in st.names() {
            if by_name.insert(name.to_owned(), i).is_some() {
                return Err(file_err(
                    &files[i],
                    format!("tensor {name} is also in another file"),
                ));
            }
        }
    }

    let embd = by_name
        .get("model.embed_tokens.weight")
        .map(|&i| (i, sts[i].tensor("model.embed_tokens.weight")))
        .ok_or_else(|| ConvertError::Tensor {
            tensor: "model.embed_tokens.weight".into(),
            msg: format!("missing from {}", dir.display()),
        })?;
    let embd_rows = match embd.1 {
        Ok(v) => v.shape().first().copied().unwrap_or(0),
        Err(e) => return Err(file_err(&files[embd.0], e)),
    };
    let n_vocab = h.vocab_size.unwrap_or(embd_rows);
    let has_lm_head = by_name.contains_key("lm_head.weight") && !h.tied;
    if !h.tied && !has_lm_head {
        return Err(ConvertError::Tensor {
            tensor: "lm_head.weight".into(),
            msg: format!(
                "missing from {} (and tie_word_embeddings is not true)",
                dir.display()
            ),
        });
    }
    let want = wanted(&h, n_vocab, has_lm_head);
    let known: BTreeSet<&str> = want.iter().map(|w| w.hf.as_str()).collect();
    let mut extra: Vec<&String> = by_name
        .keys()
        .filter(|n| {
            let skip = known.contains(n.as_str())
                || n.ends_with("rotary_emb.inv_freq")
                || (h.tied && n.as_str() == "lm_head.weight");
            !skip
        })
        .collect();
    extra.sort();
    if let Some(n) = extra.first() {
        return Err(ConvertError::Tensor {
            tensor: (*n).clone(),
            msg: format!("cannot map it to a {} GGUF tensor", h.arch),
        });
    }

    // check every tensor before writing anything
    let mut plan = Vec::with_capacity(want.len());
    for w in &want {
        let &fi = by_name.get(&w.hf).ok_or_else(|| ConvertError::Tensor {
            tensor: w.hf.clone(),
            msg: format!("missing from {}", dir.display()),
        })?;
        let view = sts[fi].tensor(&w.hf).map_err(|e| file_err(&files[fi], e))?;
        if view.shape() != w.shape.as_slice() {
            return Err(ConvertError::Tensor {
                tensor: w.hf.clone(),
                msg: format!(
                    "shape {:?} in {}, expected {:?} from config.json",
                    view.shape(),
                    files[fi].display(),
                    w.shape
                ),
            });
        }
        let from = ggml_of(view.dtype()).ok_or_else(|| ConvertError::Tensor {
            tensor: w.hf.clone(),
            msg: format!("dtype {:?} is not supported (F32, F16, BF16)", view.dtype()),
        })?;
        let to = target_type(&w.name, &w.shape, opts.out_type);
        plan.push(TensorReport {
            hf_name: w.hf.clone(),
            name: w.name.clone(),
            dims: w.shape.iter().rev().map(|&d| d as u64).collect(),
            from,
            to,
        });
    }

    // metadata, in convert_hf_to_gguf.py's order
    let arch = h.arch;
    let k = |s: &str| format!("{arch}.{s}");
    let dir_name = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model".into());
    let mut md: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        ("general.type".into(), Value::String("model".into())),
        ("general.name".into(), Value::String(dir_name)),
        (k("block_count"), Value::U32(h.n_layer as u32)),
    ];
    if let Some(n) = h.n_ctx {
        md.push((k("context_length"), Value::U32(n as u32)));
    }
    md.push((k("embedding_length"), Value::U32(h.n_embd as u32)));
    md.push((k("feed_forward_length"), Value::U32(h.n_ff as u32)));
    md.push((k("attention.head_count"), Value::U32(h.n_head as u32)));
    md.push((k("attention.head_count_kv"), Value::U32(h.n_head_kv as u32)));
    if let Some(t) = h.rope_theta {
        md.push((k("rope.freq_base"), Value::F32(t as f32)));
    }
    md.push((
        k("attention.layer_norm_rms_epsilon"),
        Value::F32(h.rms_eps as f32),
    ));
    if h.head_dim_explicit {
        md.push((k("attention.key_length"), Value::U32(h.head_dim as u32)));
        md.push((k("attention.value_length"), Value::U32(h.head_dim as u32)));
    }
    md.push((
        "general.file_type".into(),
        Value::U32(opts.out_type.file_type()),
    ));
    md.push((
        "general.quantization_version".into(),
        Value::U32(QNT_VERSION),
    ));
    md.extend(tokenizer_metadata(dir, &cfg, n_vocab)?);

    let mut w = GgufWriter::new(md);
    for p in &plan {
        w.add_tensor(p.name.clone(), p.dims.clone(), p.to, Vec::new());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .map_err(|e| file_err(out, format!("thread pool: {e}")))?;
    let file = std::fs::File::create(out).map_err(|e| file_err(out, e))?;
    let n = plan.len();
    let file_size = w.write_streaming(file, |i| -> Result<Cow<'_, [u8]>, ConvertError> {
        let p = &plan[i];
        let fi = by_name[&p.hf_name];
        let view = sts[fi]
            .tensor(&p.hf_name)
            .map_err(|e| file_err(&files[fi], e))?;
        let data = view.data();
        let conv = pool
            .install(|| shohin_quantize::convert_tensor(p.from, p.to, data, p.dims[0] as usize))
            .map_err(|e| ConvertError::Tensor {
                tensor: p.hf_name.clone(),
                msg: e.to_string(),
            })?;
        on_tensor(i, n, p);
        Ok(conv)
    })?;
    Ok(Summary {
        arch,
        tensors: plan,
        n_vocab,
        file_size,
    })
}
