//! Hugging Face safetensors checkpoints to GGUF.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use serde_json::Value as Json;
use shohin_gguf::{GgmlType, GgufWriter};

use crate::hparams::{hparams, model_metadata, Hparams};
use crate::tokenizer::tokenizer_metadata;
use crate::{file_err, key_err, read_json, ConvertError, Options, OutType, Summary, TensorReport};

/// One tensor the model needs: HF name, GGUF name, HF shape (row-major,
/// outermost first).
pub(crate) struct Wanted {
    pub(crate) hf: String,
    pub(crate) name: String,
    pub(crate) shape: Vec<usize>,
    /// `LlamaModel.permute`'s head count for this tensor's rows (q_proj:
    /// n_head, k_proj: n_head_kv), or none.
    pub(crate) permute: Option<usize>,
}

pub(crate) fn wanted(h: &Hparams, n_vocab: usize, has_lm_head: bool) -> Vec<Wanted> {
    let (e, f) = (h.n_embd, h.n_ff);
    let q = h.n_head * h.head_dim;
    let kv = h.n_head_kv * h.head_dim;
    let mut v = Vec::new();
    let llama = h.arch == "llama";
    let mut add = |hf: String, name: String, shape: Vec<usize>| {
        // LlamaModel.modify_tensors: HF's rotate-half Q/K rows to ggml's
        // interleaved (NORM) RoPE order
        let permute = match () {
            _ if !llama => None,
            _ if hf.ends_with("q_proj.weight") => Some(h.n_head),
            _ if hf.ends_with("k_proj.weight") => Some(h.n_head_kv),
            _ => None,
        };
        v.push(Wanted {
            hf,
            name,
            shape,
            permute,
        })
    };
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

/// `LlamaModel.permute(w, n_head, n_head)` on the rows of a row-major
/// matrix of `row_bytes`-byte rows: each head's rows `[h, j, i]` (j in
/// {0, 1}, i below half the head) become `[h, i, j]`, so that the pairs
/// that HF's rotate-half RoPE rotates together (i, i + half) are adjacent,
/// as ggml's NORM RoPE rotates them.
pub(crate) fn permute_rows(data: &[u8], row_bytes: usize, n_head: usize) -> Vec<u8> {
    let rows = data.len() / row_bytes;
    let half = rows / n_head / 2;
    let mut out = vec![0u8; data.len()];
    for h in 0..n_head {
        for i in 0..half {
            for j in 0..2 {
                let to = (h * half + i) * 2 + j;
                let from = (h * 2 + j) * half + i;
                out[to * row_bytes..(to + 1) * row_bytes]
                    .copy_from_slice(&data[from * row_bytes..(from + 1) * row_bytes]);
            }
        }
    }
    out
}

fn ggml_of(dtype: Dtype) -> Option<GgmlType> {
    match dtype {
        Dtype::F32 => Some(GgmlType::F32),
        Dtype::F16 => Some(GgmlType::F16),
        Dtype::BF16 => Some(GgmlType::BF16),
        _ => None,
    }
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
pub(crate) fn convert(
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
    let mut permutes = Vec::with_capacity(want.len());
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
        if let Some(n) = w.permute {
            if w.shape[0] % (2 * n) != 0 {
                return Err(ConvertError::Tensor {
                    tensor: w.hf.clone(),
                    msg: format!("{} rows are not {n} heads of an even size", w.shape[0]),
                });
            }
        }
        permutes.push(w.permute);
        let to = target_type(&w.name, &w.shape, opts.out_type);
        plan.push(TensorReport {
            hf_name: w.hf.clone(),
            name: w.name.clone(),
            dims: w.shape.iter().rev().map(|&d| d as u64).collect(),
            from,
            to,
        });
    }

    // convert_hf_to_gguf.py's order: the shards in name order, each one's
    // tensors in name order
    let mut order: Vec<usize> = (0..plan.len()).collect();
    order.sort_by(|&a, &b| {
        let key = |i: usize| (by_name[&plan[i].hf_name], &plan[i].hf_name);
        key(a).cmp(&key(b))
    });
    let plan: Vec<TensorReport> = order.iter().map(|&i| plan[i].clone()).collect();
    let permutes: Vec<Option<usize>> = order.iter().map(|&i| permutes[i]).collect();

    let mut md = model_metadata(&h, dir, opts.out_type.file_type());
    md.extend(tokenizer_metadata(dir, &cfg, n_vocab, h.arch)?);
    let arch = h.arch;

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
        let tensor_err = |e: shohin_quant::QuantError| ConvertError::Tensor {
            tensor: p.hf_name.clone(),
            msg: e.to_string(),
        };
        let conv = match permutes[i] {
            None => pool
                .install(|| {
                    shohin_quantize::convert_tensor(p.from, p.to, view.data(), p.dims[0] as usize)
                })
                .map_err(tensor_err)?,
            Some(heads) => {
                let data = view.data();
                let data = permute_rows(data, data.len() / p.dims[1] as usize, heads);
                let conv = pool
                    .install(|| {
                        shohin_quantize::convert_tensor(p.from, p.to, &data, p.dims[0] as usize)
                    })
                    .map_err(tensor_err)?;
                Cow::Owned(conv.into_owned())
            }
        };
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
