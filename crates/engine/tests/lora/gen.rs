//! The test adapters of `tests/lora.rs`: random rank-8 LoRA pairs in
//! llama.cpp's GGUF adapter layout (`convert_lora_to_gguf.py`), written in
//! memory from a fixed seed per tensor, so that the test and
//! `gen_lora_goldens.sh` (which has llama.cpp run the same bytes) see the
//! same file.

use shohin_gguf::{GgmlType, GgufFile, GgufWriter, Value};

pub const RANK: usize = 8;
/// `adapter.lora.alpha`: with rank 8 the effective scale is 2 × the user's,
/// so the test covers llama.cpp's `alpha / rank` rule.
pub const ALPHA: f32 = 16.0;

/// What an adapter covers and how strongly.
pub struct Spec {
    /// The layer matrices of every layer ([`LAYER_MATRICES`]).
    pub layers: bool,
    /// Also `token_embd.weight` (the flipped pair) and `output.weight`.
    pub embd_output: bool,
    pub ty: GgmlType,
    /// Entries of A are uniform in ±amp_a/√in, of B in ±amp_b/√rank.
    pub amp_a: f32,
    pub amp_b: f32,
}

/// splitmix64, seeded from the tensor's name (FNV-1a).
struct Rng(u64);

impl Rng {
    fn for_name(name: &str) -> Self {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for b in name.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        Rng(h)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn vec(&mut self, n: usize, amp: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let u = (self.next() >> 40) as f32 / (1u64 << 24) as f32;
                amp * (2.0 * u - 1.0)
            })
            .collect()
    }
}

fn bytes(v: &[f32], ty: GgmlType) -> Vec<u8> {
    match ty {
        GgmlType::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        GgmlType::F16 => v
            .iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect(),
        t => panic!("test adapters are F32 or F16, not {t}"),
    }
}

/// The layer matrices an adapter with `layers` covers, where the base
/// model has them: attention and FFN, and qwen35's Gated DeltaNet
/// projections (the names no qwen2 / qwen3 model has, so their adapters
/// are unchanged by them).
const LAYER_MATRICES: [&str; 12] = [
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
    "attn_qkv",
    "attn_gate",
    "ssm_alpha",
    "ssm_beta",
    "ssm_out",
];

/// The adapter for `base` as GGUF bytes.
pub fn adapter(base: &GgufFile, spec: &Spec) -> Vec<u8> {
    let arch = base.get_str("general.architecture").unwrap().to_string();
    let mut w = GgufWriter::new(vec![
        ("general.architecture".into(), Value::String(arch)),
        ("general.type".into(), Value::String("adapter".into())),
        ("adapter.type".into(), Value::String("lora".into())),
        ("adapter.lora.alpha".into(), Value::F32(ALPHA)),
    ]);
    for t in base.tensors() {
        let is_layer = t.name.starts_with("blk.")
            && LAYER_MATRICES
                .iter()
                .any(|m| t.name.ends_with(&format!(".{m}.weight")));
        let is_embd = t.name == "token_embd.weight";
        let is_out = t.name == "output.weight";
        if !((spec.layers && is_layer) || (spec.embd_output && (is_embd || is_out))) {
            continue;
        }
        let (n_in, n_out) = (t.dims[0] as usize, t.dims[1] as usize);
        let mut rng = Rng::for_name(&t.name);
        let r = RANK as u64;
        let (a, da, b, db) = if is_embd {
            // Flipped: A [r, n_vocab] (a row per token), B [r, n_embd].
            let a = rng.vec(n_out * RANK, spec.amp_a / (RANK as f32).sqrt());
            let b = rng.vec(n_in * RANK, spec.amp_b / (RANK as f32).sqrt());
            (a, vec![r, n_out as u64], b, vec![r, n_in as u64])
        } else {
            let a = rng.vec(RANK * n_in, spec.amp_a / (n_in as f32).sqrt());
            let b = rng.vec(n_out * RANK, spec.amp_b / (RANK as f32).sqrt());
            (a, vec![n_in as u64, r], b, vec![r, n_out as u64])
        };
        w.add_tensor(
            format!("{}.lora_a", t.name),
            da,
            spec.ty,
            bytes(&a, spec.ty),
        );
        w.add_tensor(
            format!("{}.lora_b", t.name),
            db,
            spec.ty,
            bytes(&b, spec.ty),
        );
    }
    let mut out = Vec::new();
    w.write_to(&mut out).unwrap();
    out
}

/// FNV-1a 64 of `b` (the goldens record the adapters' hashes).
pub fn fnv64(b: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &x in b {
        h = (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3);
    }
    h
}
