//! The synthetic qwen35 models of `tests/qwen35.rs`: written here, in
//! memory, from a fixed seed, so that the test and `gen_qwen35_goldens.sh`
//! (which has llama.cpp run the same bytes) see the same file. Shapes are
//! small but the per-head sizes are real ones (head_dim 128 with 32 dims
//! rotated, DeltaNet state 128, 2 k heads tiled over 4 v heads, 4 conv
//! taps); 4 layers, full attention every 2nd (1 and 3), DeltaNet in 0 and 2.

use shohin_gguf::{GgmlType, GgufFile, GgufWriter, Value, ValueType};

pub const N_EMBD: usize = 256;
pub const N_HEAD: usize = 4;
pub const N_HEAD_KV: usize = 2;
pub const HEAD_DIM: usize = 128;
pub const N_ROT: usize = 32;
pub const N_FF: usize = 512;
pub const N_LAYER: usize = 4;
pub const D_STATE: usize = 128;
pub const N_K_HEADS: usize = 2;
pub const N_V_HEADS: usize = 4;
pub const D_CONV: usize = 4;

/// The models: all matrices in one type; `tied` shares token_embd as output.
/// Q1_0 (type 41) and g64 Q2_0 (type 42) are Bonsai 2's 1-bit and ternary
/// types, encoded by shohin_quant's reference quantizers (llama.cpp's).
pub const MODELS: [(&str, GgmlType, bool); 4] = [
    ("f16", GgmlType::F16, true),
    ("q8_0", GgmlType::Q8_0, false),
    ("q1_0", GgmlType::Q1_0, false),
    ("q2_0", GgmlType::Q2_0, false),
];

/// splitmix64: a tiny, fixed generator (no crate version can change it).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
    fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

struct Tensors {
    list: Vec<(String, Vec<u64>, GgmlType, Vec<u8>)>,
    rng: Rng,
    ty: GgmlType,
}

impl Tensors {
    /// A `[cols] -> [rows]` matrix, uniform with variance `gain^2 / cols`.
    fn matrix(&mut self, name: &str, cols: usize, rows: usize, gain: f32) {
        let a = gain * (3.0 / cols as f32).sqrt();
        let w = self.rng.vec(rows * cols, -a, a);
        let ty = self.ty;
        let mut data = vec![0u8; shohin_quant::row_bytes(ty, cols).unwrap() * rows];
        shohin_quant::quantize_row(ty, &w, &mut data).unwrap();
        self.list
            .push((name.into(), vec![cols as u64, rows as u64], ty, data));
    }
    fn floats(&mut self, name: &str, dims: &[usize], lo: f32, hi: f32) {
        let v = self.rng.vec(dims.iter().product(), lo, hi);
        let dims = dims.iter().map(|&d| d as u64).collect();
        self.list
            .push((name.into(), dims, GgmlType::F32, f32_bytes(&v)));
    }
    fn norm(&mut self, name: &str, n: usize) {
        self.floats(name, &[n], 0.8, 1.2);
    }
}

/// Each model's seed offset: the type's place in `GgmlType` when the
/// goldens were made, fixed here so that a new type in the enum cannot
/// change the files.
fn seed_salt(ty: GgmlType) -> u64 {
    match ty {
        GgmlType::F32 => 0,
        GgmlType::F16 => 1,
        GgmlType::Q8_0 => 6,
        GgmlType::Q1_0 => 12,
        GgmlType::Q2_0 => 13,
        other => panic!("no fixed seed for {other:?}"),
    }
}

/// The model file's bytes.
pub fn build(ty: GgmlType, tied: bool) -> Vec<u8> {
    let vocab = GgufFile::open(&crate::common::fixture("ggml-vocab-qwen2.gguf")).unwrap();
    let n_vocab = vocab.get_array("tokenizer.ggml.tokens").unwrap().len();
    let u32v = |v: usize| Value::U32(v as u32);
    let a = |k: &str| format!("qwen35.{k}");
    let mut meta = vec![
        (
            "general.architecture".into(),
            Value::String("qwen35".into()),
        ),
        (
            "general.name".into(),
            Value::String("synthetic qwen35".into()),
        ),
        (a("block_count"), u32v(N_LAYER)),
        (a("context_length"), u32v(4096)),
        (a("embedding_length"), u32v(N_EMBD)),
        (a("feed_forward_length"), u32v(N_FF)),
        (a("attention.head_count"), u32v(N_HEAD)),
        (a("attention.head_count_kv"), u32v(N_HEAD_KV)),
        (a("attention.key_length"), u32v(HEAD_DIM)),
        (a("attention.value_length"), u32v(HEAD_DIM)),
        (a("attention.layer_norm_rms_epsilon"), Value::F32(1e-6)),
        (a("rope.freq_base"), Value::F32(1e7)),
        (a("rope.dimension_count"), u32v(N_ROT)),
        (
            a("rope.dimension_sections"),
            Value::Array(
                ValueType::I32,
                [6, 5, 5, 0].into_iter().map(Value::I32).collect(),
            ),
        ),
        (a("ssm.conv_kernel"), u32v(D_CONV)),
        (a("ssm.inner_size"), u32v(N_V_HEADS * D_STATE)),
        (a("ssm.state_size"), u32v(D_STATE)),
        (a("ssm.group_count"), u32v(N_K_HEADS)),
        (a("ssm.time_step_rank"), u32v(N_V_HEADS)),
        (a("full_attention_interval"), u32v(2)),
    ];
    for (k, v) in vocab.metadata() {
        if k.starts_with("tokenizer.") {
            meta.push((k.clone(), v.clone()));
        }
    }
    let mut t = Tensors {
        list: Vec::new(),
        rng: Rng(0x5eed_0035 + seed_salt(ty)),
        ty,
    };
    // Small embeddings so that the layers, not the token's own row, drive
    // the output. Tied: a large output norm spreads the logits (std ~6,
    // few near-ties). Untied: the output gain sets the logits' std: ~1 for
    // Q8_0; ~3, as real models have, for Q1_0 and Q2_0 (whose reference
    // quantizers scale a uniform row's variance by 3/4 and 3/2). Quantized
    // activations make both engines' last bits differ, and this random
    // model amplifies them in proportion to the logits' scale.
    let out_gain = match ty {
        GgmlType::Q1_0 => 3.5,
        GgmlType::Q2_0 => 2.5,
        _ => 1.0,
    };
    t.matrix("token_embd.weight", N_EMBD, n_vocab, 2.0);
    if tied {
        t.floats("output_norm.weight", &[N_EMBD], 2.5, 3.5);
    } else {
        t.norm("output_norm.weight", N_EMBD);
        t.matrix("output.weight", N_EMBD, n_vocab, out_gain);
    }
    let (kd, vd) = (N_K_HEADS * D_STATE, N_V_HEADS * D_STATE);
    for il in 0..N_LAYER {
        let n = |s: &str| format!("blk.{il}.{s}");
        t.norm(&n("attn_norm.weight"), N_EMBD);
        t.norm(&n("post_attention_norm.weight"), N_EMBD);
        if (il + 1) % 2 == 0 {
            t.matrix(&n("attn_q.weight"), N_EMBD, 2 * N_HEAD * HEAD_DIM, 1.0);
            t.matrix(&n("attn_k.weight"), N_EMBD, N_HEAD_KV * HEAD_DIM, 1.0);
            t.matrix(&n("attn_v.weight"), N_EMBD, N_HEAD_KV * HEAD_DIM, 1.0);
            t.norm(&n("attn_q_norm.weight"), HEAD_DIM);
            t.norm(&n("attn_k_norm.weight"), HEAD_DIM);
            t.matrix(&n("attn_output.weight"), N_HEAD * HEAD_DIM, N_EMBD, 1.0);
        } else {
            t.matrix(&n("attn_qkv.weight"), N_EMBD, 2 * kd + vd, 1.0);
            t.matrix(&n("attn_gate.weight"), N_EMBD, vd, 1.0);
            t.floats(&n("ssm_conv1d.weight"), &[D_CONV, 2 * kd + vd], -0.8, 0.8);
            t.floats(&n("ssm_dt.bias"), &[N_V_HEADS], -2.0, 0.0);
            // -exp(A_log) with A_log in [-4, -1]: slow decays, so the
            // state carries across many chunks.
            let a_log = t.rng.vec(N_V_HEADS, -4.0, -1.0);
            let a_neg: Vec<f32> = a_log.iter().map(|x| -x.exp()).collect();
            t.list.push((
                n("ssm_a"),
                vec![N_V_HEADS as u64],
                GgmlType::F32,
                f32_bytes(&a_neg),
            ));
            t.matrix(&n("ssm_alpha.weight"), N_EMBD, N_V_HEADS, 1.0);
            t.matrix(&n("ssm_beta.weight"), N_EMBD, N_V_HEADS, 1.0);
            t.norm(&n("ssm_norm.weight"), D_STATE);
            t.matrix(&n("ssm_out.weight"), vd, N_EMBD, 1.0);
        }
        t.matrix(&n("ffn_gate.weight"), N_EMBD, N_FF, 1.0);
        t.matrix(&n("ffn_up.weight"), N_EMBD, N_FF, 1.0);
        t.matrix(&n("ffn_down.weight"), N_FF, N_EMBD, 1.0);
    }
    let mut w = GgufWriter::new(meta);
    for (name, dims, ty, data) in t.list {
        w.add_tensor(name, dims, ty, data);
    }
    let mut bytes = Vec::new();
    w.write_to(&mut bytes).unwrap();
    bytes
}

/// FNV-1a 64 of the file, recorded in the goldens so that a change of the
/// generator cannot go unnoticed (gen_qwen35_goldens.py computes the same).
pub fn fnv64(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The prompts (token ids below the special tokens, fixed seed).
pub fn prompt(seed: u64, n: usize) -> Vec<u32> {
    let mut r = Rng(seed);
    (0..n).map(|_| (r.next() % 150_000) as u32).collect()
}
