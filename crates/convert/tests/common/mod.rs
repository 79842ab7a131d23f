//! A small random Qwen3 checkpoint in Hugging Face's layout (two safetensors
//! shards with an index, mixed F32 / F16 / BF16, tokenizer files built from
//! the real Qwen vocabulary of `ggml-vocab-qwen2.gguf`), and an independent
//! float64 forward of its own tensors.
#![allow(dead_code)]

use half::{bf16, f16};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde_json::{json, Value as Json};
use shohin_gguf::{GgufFile, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub const HIDDEN: usize = 64;
pub const LAYERS: usize = 2;
pub const HEADS: usize = 4;
pub const KV_HEADS: usize = 2;
pub const HEAD_DIM: usize = 16;
pub const FF: usize = 128;
pub const THETA: f64 = 1_000_000.0;
pub const EPS: f64 = 1e-6;

/// The model's dimensions.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ff: usize,
}

/// The ternary weights' scales relative to the float ones: small enough
/// that the engine's Q8_0 activations (ggml's dot products for `Q2_0`)
/// move the logits by less than 0.1 (see `tests/onnx.rs`).
pub const TERNARY_SCALE: f64 = 0.15;

/// The checkpoint of `roundtrip.rs` (and its llama.cpp logits).
pub const SMALL: Shape = Shape {
    hidden: HIDDEN,
    layers: LAYERS,
    heads: HEADS,
    kv_heads: KV_HEADS,
    head_dim: HEAD_DIM,
    ff: FF,
};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures")
        .join(name)
}

/// The vocabulary of the fixture: tokens, token types, merges.
pub struct Vocab {
    pub tokens: Vec<String>,
    pub types: Vec<i32>,
    pub merges: Vec<String>,
}

fn strings(f: &GgufFile, key: &str) -> Vec<String> {
    f.get_array(key)
        .unwrap()
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            _ => panic!("{key}"),
        })
        .collect()
}

pub fn fixture_vocab() -> Vocab {
    let f = GgufFile::open(&fixture("ggml-vocab-qwen2.gguf")).unwrap();
    let types = f
        .get_array("tokenizer.ggml.token_type")
        .unwrap()
        .iter()
        .map(|v| match v {
            Value::I32(t) => *t,
            _ => panic!("token_type"),
        })
        .collect();
    Vocab {
        tokens: strings(&f, "tokenizer.ggml.tokens"),
        types,
        merges: strings(&f, "tokenizer.ggml.merges"),
    }
}

/// The checkpoint's tensors as f64 (after rounding to their stored dtype).
pub struct Checkpoint {
    pub n_vocab: usize,
    pub shape: Shape,
    pub w: HashMap<String, (Vec<usize>, Vec<f64>)>,
}

impl Checkpoint {
    pub fn get(&self, name: &str) -> &[f64] {
        &self.w[name].1
    }
}

/// A tensor as stored: name, dtype, shape, bytes.
type Stored = (String, Dtype, Vec<usize>, Vec<u8>);

/// Writes the checkpoint into `dir`; `pairs` writes the merges as pairs.
pub fn write_checkpoint(dir: &Path, vocab: &Vocab, pairs: bool) -> Checkpoint {
    write_checkpoint_with(dir, vocab, pairs, SMALL, false)
}

/// [`write_checkpoint`] of any shape; `ternary` makes every linear weight
/// (not the embedding) `t * d` with `t` in {-1, 0, 1} and one f16 scale `d`
/// per row and 128 columns, stored as F32 (exactly), as a ternary model's.
pub fn write_checkpoint_with(
    dir: &Path,
    vocab: &Vocab,
    pairs: bool,
    sh: Shape,
    ternary: bool,
) -> Checkpoint {
    write_checkpoint_arch(dir, vocab, pairs, sh, ternary, false)
}

/// A Llama checkpoint (`LlamaForCausalLM`) of [`SMALL`]'s shape: no Q/K
/// norms, a separate `lm_head`, no `head_dim` in config.json, and a
/// `tokenizer.json` with Qwen2's pre-tokenizer (the fixture's vocabulary),
/// which convert_hf_to_gguf.py recognizes as `qwen2`.
pub fn write_llama_checkpoint(dir: &Path, vocab: &Vocab) -> Checkpoint {
    write_checkpoint_arch(dir, vocab, true, SMALL, false, true)
}

/// Qwen2's `Split` regex (convert_hf_to_gguf.py's `qwen2` pre-tokenizer).
pub const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

#[allow(non_snake_case)]
fn write_checkpoint_arch(
    dir: &Path,
    vocab: &Vocab,
    pairs: bool,
    sh: Shape,
    ternary: bool,
    llama: bool,
) -> Checkpoint {
    let (HIDDEN_, LAYERS_, HEADS_, KV_HEADS_, HEAD_DIM_, FF_) = (
        sh.hidden,
        sh.layers,
        sh.heads,
        sh.kv_heads,
        sh.head_dim,
        sh.ff,
    );
    std::fs::create_dir_all(dir).unwrap();
    let n_vocab = vocab.tokens.len();
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let q = HEADS_ * HEAD_DIM_;
    let kv = KV_HEADS_ * HEAD_DIM_;
    // (hf name, shape, dtype, scale, offset, shard)
    let mut specs: Vec<(String, Vec<usize>, Dtype, f64, f64, usize)> = vec![(
        "model.embed_tokens.weight".into(),
        vec![n_vocab, HIDDEN_],
        Dtype::F16,
        1.0,
        0.0,
        0,
    )];
    for i in 0..LAYERS_ {
        let p = format!("model.layers.{i}.");
        let s = i % 2;
        let mut t = |n: &str, shape: Vec<usize>, d: Dtype, sc: f64, off: f64| {
            specs.push((format!("{p}{n}"), shape, d, sc, off, s))
        };
        t(
            "input_layernorm.weight",
            vec![HIDDEN_],
            Dtype::F32,
            0.2,
            1.0,
        );
        t(
            "self_attn.q_proj.weight",
            vec![q, HIDDEN_],
            Dtype::BF16,
            0.25,
            0.0,
        );
        t(
            "self_attn.k_proj.weight",
            vec![kv, HIDDEN_],
            Dtype::BF16,
            0.25,
            0.0,
        );
        t(
            "self_attn.v_proj.weight",
            vec![kv, HIDDEN_],
            Dtype::BF16,
            0.25,
            0.0,
        );
        t(
            "self_attn.o_proj.weight",
            vec![HIDDEN_, q],
            Dtype::BF16,
            0.25,
            0.0,
        );
        if !llama {
            t(
                "self_attn.q_norm.weight",
                vec![HEAD_DIM_],
                Dtype::BF16,
                0.2,
                1.0,
            );
            t(
                "self_attn.k_norm.weight",
                vec![HEAD_DIM_],
                Dtype::F32,
                0.2,
                1.0,
            );
        }
        t(
            "post_attention_layernorm.weight",
            vec![HIDDEN_],
            Dtype::F32,
            0.2,
            1.0,
        );
        t(
            "mlp.gate_proj.weight",
            vec![FF_, HIDDEN_],
            Dtype::F16,
            0.25,
            0.0,
        );
        t(
            "mlp.up_proj.weight",
            vec![FF_, HIDDEN_],
            Dtype::F16,
            0.25,
            0.0,
        );
        t(
            "mlp.down_proj.weight",
            vec![HIDDEN_, FF_],
            Dtype::BF16,
            0.18,
            0.0,
        );
    }
    specs.push((
        "model.norm.weight".into(),
        vec![HIDDEN_],
        Dtype::F32,
        0.2,
        1.0,
        1,
    ));
    if llama {
        specs.push((
            "lm_head.weight".into(),
            vec![n_vocab, HIDDEN_],
            Dtype::BF16,
            1.0,
            0.0,
            1,
        ));
    }

    let mut w = HashMap::new();
    let mut shards: [Vec<Stored>; 2] = [Vec::new(), Vec::new()];
    for (name, shape, dtype, scale, off, shard) in specs {
        let n: usize = shape.iter().product();
        let mut vals = Vec::with_capacity(n);
        let mut bytes = Vec::with_capacity(n * 4);
        let linear = ternary && shape.len() == 2 && name != "model.embed_tokens.weight";
        if linear {
            let cols = shape[1];
            assert_eq!(cols % 128, 0, "{name}: ternary rows are whole 128-blocks");
            for _ in 0..n / 128 {
                // about the spread of the float weights: mean |w| = 2/3 d
                let d = f16::from_f64(TERNARY_SCALE * scale * (0.6 + 0.5 * rng.random::<f64>()))
                    .to_f64();
                for _ in 0..128 {
                    let t = rng.random_range(0..3i32) - 1;
                    let v = t as f64 * d;
                    bytes.extend_from_slice(&(v as f32).to_le_bytes());
                    vals.push(v);
                }
            }
            w.insert(name.clone(), (shape.clone(), vals));
            shards[shard].push((name, Dtype::F32, shape, bytes));
            continue;
        }
        for _ in 0..n {
            let x = off + scale * (rng.random::<f64>() * 2.0 - 1.0);
            let v = match dtype {
                Dtype::F32 => {
                    bytes.extend_from_slice(&(x as f32).to_le_bytes());
                    x as f32 as f64
                }
                Dtype::F16 => {
                    let h = f16::from_f64(x);
                    bytes.extend_from_slice(&h.to_le_bytes());
                    h.to_f64()
                }
                Dtype::BF16 => {
                    let h = bf16::from_f64(x);
                    bytes.extend_from_slice(&h.to_le_bytes());
                    h.to_f64()
                }
                _ => unreachable!(),
            };
            vals.push(v);
        }
        w.insert(name.clone(), (shape.clone(), vals));
        shards[shard].push((name, dtype, shape, bytes));
    }
    let mut weight_map = serde_json::Map::new();
    for (i, shard) in shards.iter().enumerate() {
        let file = format!("model-{:05}-of-00002.safetensors", i + 1);
        let views: Vec<(String, TensorView<'_>)> = shard
            .iter()
            .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        for (n, _) in &views {
            weight_map.insert(n.clone(), Json::String(file.clone()));
        }
        let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
        let bytes = safetensors::tensor::serialize(views, Some(meta)).unwrap();
        std::fs::write(dir.join(&file), bytes).unwrap();
    }
    write_json(
        &dir.join("model.safetensors.index.json"),
        &json!({"metadata": {"total_size": 0}, "weight_map": weight_map}),
    );
    if llama {
        write_json(
            &dir.join("config.json"),
            &json!({
                "architectures": ["LlamaForCausalLM"],
                "model_type": "llama",
                "hidden_size": HIDDEN_,
                "num_hidden_layers": LAYERS_,
                "num_attention_heads": HEADS_,
                "num_key_value_heads": KV_HEADS_,
                "intermediate_size": FF_,
                "vocab_size": n_vocab,
                "max_position_embeddings": 2048,
                "rope_theta": THETA,
                "rope_scaling": null,
                "rms_norm_eps": EPS,
                "tie_word_embeddings": false,
                "attention_bias": false,
                "mlp_bias": false,
                "hidden_act": "silu",
                "bos_token_id": 151643,
                "eos_token_id": 151645,
                "torch_dtype": "bfloat16",
            }),
        );
    } else {
        write_json(
            &dir.join("config.json"),
            &json!({
                "architectures": ["Qwen3ForCausalLM"],
                "model_type": "qwen3",
                "hidden_size": HIDDEN_,
                "num_hidden_layers": LAYERS_,
                "num_attention_heads": HEADS_,
                "num_key_value_heads": KV_HEADS_,
                "head_dim": HEAD_DIM_,
                "intermediate_size": FF_,
                "vocab_size": n_vocab,
                "max_position_embeddings": 4096,
                "rope_theta": THETA,
                "rms_norm_eps": EPS,
                "tie_word_embeddings": true,
                "bos_token_id": 151643,
                "eos_token_id": 151645,
                "torch_dtype": "bfloat16",
            }),
        );
    }
    // tokenizer.json: NORMAL tokens in model.vocab, CONTROL / USER_DEFINED
    // ones as added tokens; UNUSED ones left out (padded back by the converter)
    let mut v = serde_json::Map::new();
    let mut added = Vec::new();
    for (i, (t, &ty)) in vocab.tokens.iter().zip(&vocab.types).enumerate() {
        match ty {
            1 => {
                v.insert(t.clone(), json!(i));
            }
            3 | 4 => added.push(json!({
                "id": i, "content": t, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": ty == 3
            })),
            _ => {}
        }
    }
    let merges: Vec<Json> = vocab
        .merges
        .iter()
        .map(|m| {
            if pairs {
                let (a, b) = m.split_once(' ').unwrap();
                json!([a, b])
            } else {
                json!(m)
            }
        })
        .collect();
    let mut tok = json!({
        "version": "1.0",
        "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
        "model": {"type": "BPE", "vocab": v, "merges": merges, "byte_fallback": false},
    });
    if llama {
        // Qwen2's pre-tokenizer and decoder, so that the Hugging Face
        // tokenizer (and the converter's hash of its ids) is Qwen2's
        tok["pre_tokenizer"] = json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
        ]});
        tok["decoder"] = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false});
        tok["model"]["dropout"] = Json::Null;
        tok["model"]["unk_token"] = Json::Null;
        tok["model"]["continuing_subword_prefix"] = json!("");
        tok["model"]["end_of_word_suffix"] = json!("");
        tok["model"]["fuse_unk"] = json!(false);
        tok["model"]["ignore_merges"] = json!(false);
        tok["truncation"] = Json::Null;
        tok["padding"] = Json::Null;
    }
    write_json(&dir.join("tokenizer.json"), &tok);
    if llama {
        write_json(
            &dir.join("tokenizer_config.json"),
            &json!({
                "tokenizer_class": "PreTrainedTokenizerFast",
                "add_prefix_space": false,
                "bos_token": "<|endoftext|>",
                "eos_token": "<|im_end|>",
                "clean_up_tokenization_spaces": false,
                "model_max_length": 2048,
                "chat_template": TEMPLATE,
            }),
        );
    } else {
        write_json(
            &dir.join("tokenizer_config.json"),
            &json!({
                "add_bos_token": false,
                "add_prefix_space": false,
                "bos_token": null,
                "eos_token": "<|im_end|>",
                "pad_token": "<|endoftext|>",
                "chat_template": TEMPLATE,
            }),
        );
    }
    Checkpoint {
        n_vocab,
        shape: sh,
        w,
    }
}

pub const TEMPLATE: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

fn write_json(path: &Path, j: &Json) {
    std::fs::write(path, serde_json::to_string_pretty(j).unwrap()).unwrap();
}

fn rmsnorm(x: &[f64], w: &[f64]) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let r = 1.0 / (ms + EPS).sqrt();
    x.iter().zip(w).map(|(v, g)| v * r * g).collect()
}

/// `W x` with W [rows, cols] row-major.
fn matvec(w: &[f64], x: &[f64]) -> Vec<f64> {
    w.chunks_exact(x.len())
        .map(|r| r.iter().zip(x).map(|(a, b)| a * b).sum())
        .collect()
}

/// HF's rotate-half RoPE (ggml's NEOX) on one head in place: pairs
/// (i, i + half).
fn rope(x: &mut [f64], pos: usize) {
    let half = x.len() / 2;
    for i in 0..half {
        let theta = pos as f64 * THETA.powf(-2.0 * i as f64 / x.len() as f64);
        let (s, c) = theta.sin_cos();
        let (a, b) = (x[i], x[i + half]);
        x[i] = a * c - b * s;
        x[i + half] = a * s + b * c;
    }
}

/// The logits after each token of `tokens`, in float64.
pub fn reference_logits(ck: &Checkpoint, tokens: &[u32]) -> Vec<Vec<f64>> {
    reference_logits_with(ck, tokens, false)
}

/// ggml's `quantize_row_q8_0_ref` and back: per 32 values `d = amax / 127`,
/// `q = round(x / d)`, value `q * f16(d)` (x taken as f32 first).
pub fn q8_0_roundtrip(x: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for b in x.chunks(32) {
        let b: Vec<f32> = b.iter().map(|&v| v as f32).collect();
        let amax = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let dh = f16::from_f32(d).to_f64();
        out.extend(b.iter().map(|&v| (v * id).round() as f64 * dh));
    }
    out
}

/// [`reference_logits`]; with `q8_act`, the inputs of the linear layers
/// (not the output head) go through [`q8_0_roundtrip`] first, as ggml's
/// `Q2_0` / `Q1_0` dot products quantize their activations.
#[allow(non_snake_case)]
pub fn reference_logits_with(ck: &Checkpoint, tokens: &[u32], q8_act: bool) -> Vec<Vec<f64>> {
    let matvec = |w: &[f64], x: &[f64]| {
        if q8_act {
            matvec(w, &q8_0_roundtrip(x))
        } else {
            matvec(w, x)
        }
    };
    let sh = ck.shape;
    let (HIDDEN_, LAYERS_, HEADS_, KV_HEADS_, HEAD_DIM_) =
        (sh.hidden, sh.layers, sh.heads, sh.kv_heads, sh.head_dim);
    let emb = ck.get("model.embed_tokens.weight");
    let mut keys: Vec<Vec<Vec<f64>>> = vec![Vec::new(); LAYERS_];
    let mut vals: Vec<Vec<Vec<f64>>> = vec![Vec::new(); LAYERS_];
    let mut out = Vec::new();
    for (pos, &t) in tokens.iter().enumerate() {
        let t = t as usize;
        let mut x = emb[t * HIDDEN_..(t + 1) * HIDDEN_].to_vec();
        for l in 0..LAYERS_ {
            let g = |n: &str| ck.get(&format!("model.layers.{l}.{n}"));
            let h = rmsnorm(&x, g("input_layernorm.weight"));
            let mut q = matvec(g("self_attn.q_proj.weight"), &h);
            let mut k = matvec(g("self_attn.k_proj.weight"), &h);
            let v = matvec(g("self_attn.v_proj.weight"), &h);
            // Qwen3's per-head Q/K norms (Llama has none), then HF's
            // rotate-half RoPE on the checkpoint's own (unpermuted) rows
            let qk_norm =
                ck.w.contains_key(&format!("model.layers.{l}.self_attn.q_norm.weight"));
            for hd in q.chunks_exact_mut(HEAD_DIM_) {
                if qk_norm {
                    let n = rmsnorm(hd, g("self_attn.q_norm.weight"));
                    hd.copy_from_slice(&n);
                }
                rope(hd, pos);
            }
            for hd in k.chunks_exact_mut(HEAD_DIM_) {
                if qk_norm {
                    let n = rmsnorm(hd, g("self_attn.k_norm.weight"));
                    hd.copy_from_slice(&n);
                }
                rope(hd, pos);
            }
            keys[l].push(k);
            vals[l].push(v);
            let mut att = vec![0.0; HEADS_ * HEAD_DIM_];
            let group = HEADS_ / KV_HEADS_;
            for hh in 0..HEADS_ {
                let kvh = hh / group;
                let qh = &q[hh * HEAD_DIM_..(hh + 1) * HEAD_DIM_];
                let scores: Vec<f64> = keys[l]
                    .iter()
                    .map(|k| {
                        let kh = &k[kvh * HEAD_DIM_..(kvh + 1) * HEAD_DIM_];
                        qh.iter().zip(kh).map(|(a, b)| a * b).sum::<f64>()
                            / (HEAD_DIM_ as f64).sqrt()
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for (p, v) in e.iter().zip(&vals[l]) {
                    for d in 0..HEAD_DIM_ {
                        att[hh * HEAD_DIM_ + d] += p / z * v[kvh * HEAD_DIM_ + d];
                    }
                }
            }
            let o = matvec(g("self_attn.o_proj.weight"), &att);
            x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
            let h = rmsnorm(&x, g("post_attention_layernorm.weight"));
            let gate = matvec(g("mlp.gate_proj.weight"), &h);
            let up = matvec(g("mlp.up_proj.weight"), &h);
            let act: Vec<f64> = gate
                .iter()
                .zip(&up)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            let d = matvec(g("mlp.down_proj.weight"), &act);
            x.iter_mut().zip(&d).for_each(|(a, b)| *a += b);
        }
        let xn = rmsnorm(&x, ck.get("model.norm.weight"));
        let head = ck.w.get("lm_head.weight").map_or(emb, |w| &w.1[..]);
        out.push(self::matvec(head, &xn));
    }
    out
}
