//! ONNX ternary exports to GGUF: onnxruntime-genai builder models whose
//! linear layers are `com.microsoft::MatMulNBits` with `bits = 2` and
//! `block_size = 128` (see [`nbits`] for the exact mapping to `Q2_0` g128
//! and [`names`] for the tensor names).
//!
//! - The `.onnx` file is decoded with hand-written `prost` messages
//!   ([`proto`]); external data is memory-mapped and every offset and
//!   length is checked ([`store`]): a malformed file is an error.
//! - A `GatherBlockQuantized` embedding that reads `lm_head`'s quantized
//!   weights (the builder's tied quantized embedding) becomes a `Q2_0` g128
//!   `token_embd.weight` with no `output.weight`; a float embedding made by
//!   transposing a float `lm_head` is transposed back.
//! - Float initializers keep their type (F32, F16, BF16), 1-D tensors and
//!   norms become F32, MatMul weights are transposed to `[out, in]`.
//! - A `Q2_0` g128 tensor too small to be told from g64 `Q2_0` by its size
//!   (GGUF type 42 is both) is written as `PQ2_0` (type 142, the same bytes).
//! - Refused, naming the node: other `bits` or `block_size`, `g_idx`, a
//!   bias input, unknown attributes, `K` not a multiple of 128, codes whose
//!   value is not -1, 0 or 1 times the scale, float scales that are not
//!   exactly f16, non-integer float zero points.

mod graph;
mod names;
mod nbits;
mod proto;
mod store;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use shohin_gguf::{GgmlType, GgufWriter};

use crate::hparams::{hparams, model_metadata};
use crate::safetensors::wanted;
use crate::tokenizer::tokenizer_metadata;
use crate::{file_err, key_err, read_json, ConvertError, Summary, TensorReport};
use graph::{check_nbits, int_attr, nbits_data, node_err, Graph, NBitsShape};
use names::{float_target, linear_target, Linear, Target};
use nbits::QK;
use proto::{dtype, NodeProto, TensorProto};
use store::Store;

/// `LLAMA_FTYPE_MOSTLY_PQ2_0_LEGACY`, the file type `shohin quantize`
/// writes for `Q2_0_G128`.
const FILE_TYPE_Q2_0_G128: u32 = 142;

/// Whether `dir` holds an ONNX model and no safetensors checkpoint.
pub(crate) fn is_onnx_dir(dir: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut onnx = false;
    for p in rd.filter_map(|e| e.ok().map(|e| e.path())) {
        match p.extension().and_then(|x| x.to_str()) {
            Some("safetensors") => return false,
            Some("onnx") => onnx = true,
            _ => {}
        }
    }
    onnx
}

/// The `.onnx` file: `model` (relative to `dir`), else the only one in
/// `dir`.
fn model_file(dir: &Path, model: Option<&Path>) -> Result<PathBuf, ConvertError> {
    if let Some(m) = model {
        // relative to `dir`, else as given (relative to the working directory)
        let p = if dir.join(m).is_file() {
            dir.join(m)
        } else {
            m.to_owned()
        };
        if !p.is_file() {
            return Err(file_err(&p, "no such ONNX file"));
        }
        return Ok(p);
    }
    let rd = std::fs::read_dir(dir).map_err(|e| file_err(dir, e))?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
        .collect();
    files.sort();
    match files.len() {
        0 => Err(file_err(dir, "no *.onnx file")),
        1 => Ok(files.remove(0)),
        _ => {
            let names: Vec<String> = files
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            Err(file_err(
                dir,
                format!(
                    "several ONNX files ({}): pick one with --onnx FILE",
                    names.join(", ")
                ),
            ))
        }
    }
}

/// Where a GGUF tensor's data comes from.
#[derive(Clone)]
enum Source<'g> {
    /// A float initializer, transposed when it is a MatMul weight.
    Float { t: &'g TensorProto, transpose: bool },
    /// Rows of a MatMulNBits node's matrix.
    NBits {
        node: &'g NodeProto,
        shape: NBitsShape,
        rows: Range<usize>,
    },
}

impl Source<'_> {
    /// The ONNX name shown in reports.
    fn onnx_name(&self) -> String {
        match self {
            Source::Float { t, .. } => t.name.clone(),
            Source::NBits { node, rows, shape } if rows.len() != shape.n => {
                format!("{}[{}..{}]", node.name, rows.start, rows.end)
            }
            Source::NBits { node, .. } => node.name.clone(),
        }
    }

    /// Row-major shape, outermost first, as the GGUF tensor's.
    fn shape(&self) -> Vec<usize> {
        match self {
            Source::Float { t, transpose } => {
                let mut d: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
                if *transpose {
                    d.reverse();
                }
                d
            }
            Source::NBits { shape, rows, .. } => vec![rows.len(), shape.k],
        }
    }
}

fn ggml_of(t: &TensorProto) -> Option<GgmlType> {
    match t.data_type {
        dtype::FLOAT => Some(GgmlType::F32),
        dtype::FLOAT16 => Some(GgmlType::F16),
        dtype::BFLOAT16 => Some(GgmlType::BF16),
        _ => None,
    }
}

/// `Q2_0` g128 as type 42, or `PQ2_0` when type 42 would read as g64.
fn q2_type(n: u64) -> GgmlType {
    let align = shohin_gguf::DEFAULT_ALIGNMENT as u64;
    let g128 = GgmlType::Q2_0G128.bytes_for(n).unwrap_or(0);
    let slot = g128.div_ceil(align) * align;
    if GgmlType::Q2_0.bytes_for(n).is_some_and(|b| b <= slot) {
        GgmlType::PQ2_0
    } else {
        GgmlType::Q2_0G128
    }
}

/// `[rows, cols]` elements of `es` bytes to `[cols, rows]`.
fn transpose_bytes(data: &[u8], rows: usize, cols: usize, es: usize) -> Vec<u8> {
    let mut out = vec![0u8; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            let from = (r * cols + c) * es;
            let to = (c * rows + r) * es;
            out[to..to + es].copy_from_slice(&data[from..from + es]);
        }
    }
    out
}

/// Records that `src` gives the GGUF tensor `name`; an error when another
/// source gave it already.
fn add<'g>(
    sources: &mut HashMap<String, Source<'g>>,
    name: String,
    src: Source<'g>,
) -> Result<(), ConvertError> {
    let from = src.onnx_name();
    if let Some(prev) = sources.insert(name.clone(), src) {
        return Err(ConvertError::Tensor {
            tensor: from,
            msg: format!("{name} is also given by {}", prev.onnx_name()),
        });
    }
    Ok(())
}

/// See [`crate::convert_onnx`].
pub(crate) fn convert(
    dir: &Path,
    model: Option<&Path>,
    out: &Path,
    threads: usize,
    on_tensor: impl FnMut(usize, usize, &TensorReport),
) -> Result<Summary, ConvertError> {
    let r = convert_inner(dir, model, out, threads, on_tensor);
    if r.is_err() && out.is_file() {
        // an incomplete file is no model
        let _ = std::fs::remove_file(out);
    }
    r
}

fn convert_inner(
    dir: &Path,
    model: Option<&Path>,
    out: &Path,
    threads: usize,
    mut on_tensor: impl FnMut(usize, usize, &TensorReport),
) -> Result<Summary, ConvertError> {
    let cfg_path = dir.join("config.json");
    let cfg = read_json(&cfg_path)?;
    let h = hparams(&cfg, &cfg_path)?;
    if h.arch == "llama" {
        // its Q/K rows would need LlamaModel.permute, not done on Q2_0 codes
        return Err(key_err(
            &cfg_path,
            "architectures",
            "LlamaForCausalLM is supported from safetensors only, not from ONNX",
        ));
    }
    let path = model_file(dir, model)?;
    let mut store = Store::open(&path)?;
    store.map_external()?;
    let store = store;
    let gp = store.model.graph.as_ref().expect("checked in Store::open");
    let mut inits = HashMap::new();
    for t in &gp.initializer {
        if inits.insert(t.name.as_str(), t).is_some() {
            return Err(file_err(
                &path,
                format!("initializer {:?} appears twice", t.name),
            ));
        }
    }
    let g = Graph { g: gp, inits };

    // GGUF name -> source
    let mut sources: HashMap<String, Source<'_>> = HashMap::new();
    let mut consumed: HashSet<&str> = HashSet::new();
    let mut lm_head: Option<&NodeProto> = None;
    let mut gathers = Vec::new();
    let (q, kv) = (h.n_head * h.head_dim, h.n_head_kv * h.head_dim);
    for node in &g.g.node {
        match (node.domain.as_str(), node.op_type.as_str()) {
            ("com.microsoft", "MatMulNBits") => {}
            ("com.microsoft", "GatherBlockQuantized") => {
                gathers.push(node);
                continue;
            }
            (_, "MatMulNBits" | "GatherBlockQuantized") => {
                return Err(node_err(
                    node,
                    format!("domain {:?} is not com.microsoft", node.domain),
                ));
            }
            (_, "DequantizeLinear" | "MatMulInteger" | "QLinearMatMul") => {
                return Err(node_err(
                    node,
                    "quantized weights outside MatMulNBits are not supported \
                     (only com.microsoft MatMulNBits, 2 bits, block 128)",
                ));
            }
            _ => continue,
        }
        let shape = check_nbits(&g, node)?;
        let target = linear_target(&node.name)
            .or_else(|| Graph::input(node, 1).and_then(linear_target))
            .ok_or_else(|| {
                node_err(
                    node,
                    format!("cannot tell which {} weight it is from its name", h.arch),
                )
            })?;
        consumed.extend((1..4).filter_map(|i| Graph::input(node, i)));
        let whole = |name: String| {
            (
                name,
                Source::NBits {
                    node,
                    shape,
                    rows: 0..shape.n,
                },
            )
        };
        match target {
            Target::LmHead => {
                lm_head = Some(node);
                let (n, s) = whole("output.weight".into());
                add(&mut sources, n, s)?;
            }
            Target::Layer(i, Linear::Qkv) => {
                if shape.n != q + 2 * kv {
                    return Err(node_err(
                        node,
                        format!("N = {} is not Q + K + V rows {}", shape.n, q + 2 * kv),
                    ));
                }
                for (lin, rows) in [
                    (Linear::Q, 0..q),
                    (Linear::K, q..q + kv),
                    (Linear::V, q + kv..q + 2 * kv),
                ] {
                    add(
                        &mut sources,
                        format!("blk.{i}.{}.weight", lin.gguf()),
                        Source::NBits { node, shape, rows },
                    )?;
                }
            }
            Target::Layer(i, lin) => {
                let (n, s) = whole(format!("blk.{i}.{}.weight", lin.gguf()));
                add(&mut sources, n, s)?;
            }
        }
    }
    // the builder's tied quantized embedding reads lm_head's weights
    let mut tied_quantized = false;
    for node in gathers {
        let head = lm_head.ok_or_else(|| {
            node_err(
                node,
                "a quantized embedding without a MatMulNBits lm_head is not supported",
            )
        })?;
        let bits = int_attr(node, "bits")?.unwrap_or(4);
        let bs = int_attr(node, "block_size")?.unwrap_or(128);
        let ga = int_attr(node, "gather_axis")?.unwrap_or(0);
        let qa = int_attr(node, "quantize_axis")?.unwrap_or(1);
        if (bits, bs, ga, qa) != (2, QK as i64, 0, 1) {
            return Err(node_err(node, format!("bits {bits}, block_size {bs}, gather_axis {ga}, quantize_axis {qa}: only 2, 128, 0, 1 are supported")));
        }
        let same = (2..4).all(|i| Graph::input(node, i) == Graph::input(head, i));
        if !same {
            return Err(node_err(node, format!("its scales / zero points are not those of {} (only the tied embedding is supported)", head.name)));
        }
        tied_quantized = true;
        consumed.extend(node.input.iter().map(String::as_str));
    }
    for t in &g.g.initializer {
        if consumed.contains(t.name.as_str()) {
            continue;
        }
        match float_target(&t.name, h.n_layer) {
            Some((name, transpose)) => {
                if ggml_of(t).is_none() {
                    return Err(ConvertError::Tensor {
                        tensor: t.name.clone(),
                        msg: format!(
                            "{} is not supported (FLOAT, FLOAT16, BFLOAT16)",
                            dtype::name(t.data_type)
                        ),
                    });
                }
                if transpose && t.dims.len() != 2 {
                    return Err(ConvertError::Tensor {
                        tensor: t.name.clone(),
                        msg: format!("dims {:?} are not a matrix", t.dims),
                    });
                }
                add(&mut sources, name, Source::Float { t, transpose })?;
            }
            None if t.name.starts_with("model.") || t.name.starts_with("lm_head") => {
                return Err(ConvertError::Tensor {
                    tensor: t.name.clone(),
                    msg: format!("cannot map it to a {} GGUF tensor", h.arch),
                });
            }
            None => {} // rotary caches, shape constants
        }
    }
    // tied embeddings: the builder keeps only lm_head's weights
    let mut embd_from_head = false;
    if !sources.contains_key("token_embd.weight") {
        let tied_float = matches!(sources.get("output.weight"), Some(Source::Float { .. }));
        if !(tied_quantized || tied_float) {
            return Err(ConvertError::Tensor {
                tensor: "model.embed_tokens.weight".into(),
                msg: format!("missing from {} (and no tied lm_head)", path.display()),
            });
        }
        let s = sources.remove("output.weight").expect("present");
        sources.insert("token_embd.weight".into(), s);
        embd_from_head = true;
    }
    let has_lm_head = sources.contains_key("output.weight");
    if !has_lm_head && !h.tied && !embd_from_head {
        return Err(ConvertError::Tensor {
            tensor: "lm_head".into(),
            msg: format!(
                "missing from {} (and tie_word_embeddings is not true)",
                path.display()
            ),
        });
    }
    let n_vocab = h.vocab_size.unwrap_or_else(|| {
        sources["token_embd.weight"]
            .shape()
            .first()
            .copied()
            .unwrap_or(0)
    });

    let mut plan = Vec::new();
    for w in wanted(&h, n_vocab, has_lm_head) {
        let src = sources.remove(&w.name).ok_or_else(|| ConvertError::Tensor {
            tensor: w.name.clone(),
            msg: format!("missing from {}: no MatMulNBits node or initializer gives it ({} in Hugging Face names)", path.display(), w.hf),
        })?;
        if src.shape() != w.shape {
            return Err(ConvertError::Tensor {
                tensor: src.onnx_name(),
                msg: format!(
                    "shape {:?} (as {}), expected {:?} from config.json",
                    src.shape(),
                    w.name,
                    w.shape
                ),
            });
        }
        let n: u64 = w.shape.iter().map(|&d| d as u64).product();
        let (from, to) = match &src {
            Source::Float { t, .. } => {
                let from = ggml_of(t).expect("checked");
                let to = if w.shape.len() <= 1 || w.name.ends_with("_norm.weight") {
                    GgmlType::F32
                } else {
                    from
                };
                (from, to)
            }
            Source::NBits { .. } => (q2_type(n), q2_type(n)),
        };
        plan.push((
            TensorReport {
                hf_name: src.onnx_name(),
                name: w.name.clone(),
                dims: w.shape.iter().rev().map(|&d| d as u64).collect(),
                from,
                to,
            },
            src,
        ));
    }
    let mut left: Vec<_> = sources.into_iter().collect();
    left.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some((name, src)) = left.first() {
        return Err(ConvertError::Tensor {
            tensor: src.onnx_name(),
            msg: format!(
                "{name} is not a tensor of this {} model (config.json)",
                h.arch
            ),
        });
    }

    let mut md = model_metadata(&h, dir, FILE_TYPE_Q2_0_G128);
    md.extend(tokenizer_metadata(dir, &cfg, n_vocab, h.arch)?);
    let mut w = GgufWriter::new(md);
    for (p, _) in &plan {
        w.add_tensor(p.name.clone(), p.dims.clone(), p.to, Vec::new());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| file_err(out, format!("thread pool: {e}")))?;
    let file = std::fs::File::create(out).map_err(|e| file_err(out, e))?;
    let total = plan.len();
    let file_size = w.write_streaming(file, |i| -> Result<Cow<'_, [u8]>, ConvertError> {
        let (p, src) = &plan[i];
        let data: Vec<u8> = match src {
            Source::Float { t, transpose } => {
                let bytes = store.bytes(t)?;
                let bytes = if *transpose {
                    let es = p.from.type_size();
                    Cow::Owned(transpose_bytes(
                        &bytes,
                        t.dims[0] as usize,
                        t.dims[1] as usize,
                        es,
                    ))
                } else {
                    bytes
                };
                pool.install(|| {
                    shohin_quantize::convert_tensor(p.from, p.to, &bytes, p.dims[0] as usize)
                })
                .map_err(|e| ConvertError::Tensor {
                    tensor: p.hf_name.clone(),
                    msg: e.to_string(),
                })?
                .into_owned()
            }
            Source::NBits { node, shape, rows } => {
                let nb = nbits_data(&store, &g, node, shape.k)?;
                let mut v = Vec::new();
                nb.repack_rows(rows.clone(), &mut v)
                    .map_err(|m| node_err(node, m))?;
                v
            }
        };
        on_tensor(i, total, p);
        Ok(Cow::Owned(data))
    })?;
    Ok(Summary {
        arch: h.arch,
        tensors: plan.into_iter().map(|(p, _)| p).collect(),
        n_vocab,
        file_size,
    })
}
