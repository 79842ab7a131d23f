//! Bonsai-shaped models with random weights, built in memory for
//! `shohin bench --synthetic NAME`: the real shapes and formats, no file.
//! Shapes are those of `shared/tools/synth_gguf.py` (Qwen3 1.7B/4B/8B),
//! and Bonsai 2's qwen35 hybrid (Gated DeltaNet + gated attention).

use crate::error::{EngineError, Result};
use shohin_gguf::{GgufFile, GgufWriter, Value};
use shohin_quant::GgmlType;

/// Qwen2/Qwen3 vocabulary size.
const N_VOCAB: u64 = 151_936;

#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticSpec {
    pub name: String,
    pub n_layer: u64,
    pub n_embd: u64,
    pub n_head: u64,
    pub n_head_kv: u64,
    pub n_ff: u64,
    pub head_dim: u64,
    pub ty: GgmlType,
    /// qwen35 only: DeltaNet `(state_size, group_count, time_step_rank)`;
    /// every 4th layer is full attention.
    pub hybrid: Option<(u64, u64, u64)>,
}

/// Names: `{bonsai|ternary|ternary-g128|tq1|tq2}-{8b|4b|1.7b}`; `bonsai` is
/// Q1_0, `ternary` upstream Q2_0 (g64), `ternary-g128` PrismML's g128 layout.
/// Bonsai 2 (qwen35): `{bonsai2|ternary2|pq2|ptq1}-{9b|27b}`, Q1_0, Q2_0
/// (g64), PQ2_0 or PTQ1_0.
pub fn spec(name: &str) -> Result<SyntheticSpec> {
    if let Some(s) = spec_qwen35(name) {
        return Ok(s);
    }
    let bad = || EngineError::BadHparam {
        key: "--synthetic".into(),
        why: format!(
            "unknown model `{name}` (try bonsai-8b, bonsai-4b, bonsai-1.7b, ternary-8b, \
             ternary-g128-8b, tq2-8b, tq1-8b, bonsai2-9b, bonsai2-27b, ternary2-27b, pq2-27b, \
             ptq1-27b)"
        ),
    };
    let (fmt, size) = name.rsplit_once('-').ok_or_else(bad)?;
    let ty = match fmt {
        "bonsai" => GgmlType::Q1_0,
        "ternary" => GgmlType::Q2_0,
        "ternary-g128" => GgmlType::Q2_0G128,
        "tq1" => GgmlType::TQ1_0,
        "tq2" => GgmlType::TQ2_0,
        _ => return Err(bad()),
    };
    // layers, hidden, heads, kv heads, ffn, head_dim
    let (l, h, nh, nkv, ff, hd) = match size {
        "8b" => (36, 4096, 32, 8, 12288, 128),
        "4b" => (36, 2560, 32, 8, 9728, 128),
        "1.7b" => (28, 2048, 16, 8, 6144, 128),
        _ => return Err(bad()),
    };
    Ok(SyntheticSpec {
        name: name.to_string(),
        n_layer: l,
        n_embd: h,
        n_head: nh,
        n_head_kv: nkv,
        n_ff: ff,
        head_dim: hd,
        ty,
        hybrid: None,
    })
}

/// Bonsai 2 shapes. 27B from the Ternary-Bonsai-2-27B metadata
/// (shared/docs/bonsai2-formats.md); 9B is Qwen3.5-9B's published shape
/// (32 layers, hidden 4096), not checked against a Bonsai 2 file.
fn spec_qwen35(name: &str) -> Option<SyntheticSpec> {
    let (fmt, size) = name.rsplit_once('-')?;
    let ty = match fmt {
        "bonsai2" => GgmlType::Q1_0,
        "ternary2" => GgmlType::Q2_0,
        "pq2" => GgmlType::PQ2_0,
        "ptq1" => GgmlType::PTQ1_0,
        _ => return None,
    };
    // layers, hidden, heads, kv heads, ffn, head_dim, (state, groups, v heads)
    let (l, h, nh, nkv, ff, hd, ssm) = match size {
        "27b" => (64, 5120, 24, 4, 17408, 256, (128, 16, 48)),
        "9b" => (32, 4096, 16, 4, 12288, 256, (128, 16, 32)),
        _ => return None,
    };
    Some(SyntheticSpec {
        name: name.to_string(),
        n_layer: l,
        n_embd: h,
        n_head: nh,
        n_head_kv: nkv,
        n_ff: ff,
        head_dim: hd,
        ty,
        hybrid: Some(ssm),
    })
}

/// Byte offset of the f16 scale inside one block (ggml-common.h).
fn scale_offset(ty: GgmlType) -> usize {
    match ty {
        GgmlType::TQ1_0 => 52,
        GgmlType::TQ2_0 => 64,
        GgmlType::PTQ1_0 => 26,
        _ => 0,
    }
}

/// Random blocks of `ty` for `n` weights, each scale a fixed small f16.
fn random_tensor(ty: GgmlType, n: u64, state: &mut u64) -> Vec<u8> {
    let bytes = ty.bytes_for(n).unwrap_or(0) as usize;
    let mut v = vec![0u8; bytes];
    for chunk in v.chunks_mut(8) {
        // xorshift64*: fast, and plenty random for timing.
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        let r = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        chunk.copy_from_slice(&r[..chunk.len()]);
    }
    let d = half::f16::from_f32(0.02).to_le_bytes();
    let off = scale_offset(ty);
    for block in v.chunks_mut(ty.type_size()) {
        block[off..off + 2].copy_from_slice(&d);
    }
    v
}

fn ones(n: u64) -> Vec<u8> {
    (0..n).flat_map(|_| 1.0f32.to_le_bytes()).collect()
}

/// The model as an in-memory GGUF (about the size of the real file).
pub fn build(s: &SyntheticSpec, seed: u64) -> Result<GgufFile> {
    let a = if s.hybrid.is_some() {
        "qwen35"
    } else {
        "qwen3"
    };
    let u32v = |x: u64| Value::U32(x as u32);
    let mut meta = vec![
        ("general.architecture".to_string(), Value::String(a.into())),
        (
            "general.name".to_string(),
            Value::String(format!("synthetic {}", s.name)),
        ),
        (format!("{a}.block_count"), u32v(s.n_layer)),
        (format!("{a}.context_length"), u32v(4096)),
        (format!("{a}.embedding_length"), u32v(s.n_embd)),
        (format!("{a}.feed_forward_length"), u32v(s.n_ff)),
        (format!("{a}.attention.head_count"), u32v(s.n_head)),
        (format!("{a}.attention.head_count_kv"), u32v(s.n_head_kv)),
        (format!("{a}.attention.key_length"), u32v(s.head_dim)),
        (format!("{a}.attention.value_length"), u32v(s.head_dim)),
        (format!("{a}.rope.freq_base"), Value::F32(1_000_000.0)),
        (
            format!("{a}.attention.layer_norm_rms_epsilon"),
            Value::F32(1e-6),
        ),
    ];
    if let Some((state, groups, v_heads)) = s.hybrid {
        meta.extend([
            (format!("{a}.rope.dimension_count"), u32v(64)),
            (
                format!("{a}.rope.dimension_sections"),
                Value::Array(
                    shohin_gguf::ValueType::I32,
                    [11, 11, 10, 0].into_iter().map(Value::I32).collect(),
                ),
            ),
            (format!("{a}.ssm.conv_kernel"), u32v(4)),
            (format!("{a}.ssm.state_size"), u32v(state)),
            (format!("{a}.ssm.group_count"), u32v(groups)),
            (format!("{a}.ssm.time_step_rank"), u32v(v_heads)),
            (format!("{a}.ssm.inner_size"), u32v(v_heads * state)),
            (format!("{a}.full_attention_interval"), u32v(4)),
        ]);
    }
    let mut w = GgufWriter::new(meta);
    let mut st = seed | 1;
    let (h, q, kv, ff) = (
        s.n_embd,
        s.n_head * s.head_dim,
        s.n_head_kv * s.head_dim,
        s.n_ff,
    );
    let mut mat = |w: &mut GgufWriter<'_>, name: String, cols: u64, rows: u64| {
        let data = random_tensor(s.ty, cols * rows, &mut st);
        w.add_tensor(name, vec![cols, rows], s.ty, data);
    };
    mat(&mut w, "token_embd.weight".into(), h, N_VOCAB);
    mat(&mut w, "output.weight".into(), h, N_VOCAB);
    w.add_tensor("output_norm.weight", vec![h], GgmlType::F32, ones(h));
    for i in 0..s.n_layer {
        let n = |x: &str| format!("blk.{i}.{x}.weight");
        w.add_tensor(n("attn_norm"), vec![h], GgmlType::F32, ones(h));
        if let Some((state, groups, v_heads)) = s.hybrid {
            w.add_tensor(n("post_attention_norm"), vec![h], GgmlType::F32, ones(h));
            mat(&mut w, n("ffn_gate"), h, ff);
            mat(&mut w, n("ffn_up"), h, ff);
            mat(&mut w, n("ffn_down"), ff, h);
            if (i + 1) % 4 != 0 {
                let (vd, cd) = (v_heads * state, 2 * groups * state + v_heads * state);
                mat(&mut w, n("attn_qkv"), h, cd);
                mat(&mut w, n("attn_gate"), h, vd);
                mat(&mut w, n("ssm_alpha"), h, v_heads);
                mat(&mut w, n("ssm_beta"), h, v_heads);
                mat(&mut w, n("ssm_out"), vd, h);
                let small = |n: u64, v: f32| (0..n).flat_map(move |_| v.to_le_bytes()).collect();
                let conv: Vec<u8> = small(4 * cd, 0.25);
                w.add_tensor(n("ssm_conv1d"), vec![4, cd], GgmlType::F32, conv);
                w.add_tensor(
                    format!("blk.{i}.ssm_dt.bias"),
                    vec![v_heads],
                    GgmlType::F32,
                    small(v_heads, 0.0),
                );
                w.add_tensor(
                    format!("blk.{i}.ssm_a"),
                    vec![v_heads],
                    GgmlType::F32,
                    small(v_heads, -0.1),
                );
                w.add_tensor(n("ssm_norm"), vec![state], GgmlType::F32, ones(state));
                continue;
            }
            w.add_tensor(
                n("attn_q_norm"),
                vec![s.head_dim],
                GgmlType::F32,
                ones(s.head_dim),
            );
            w.add_tensor(
                n("attn_k_norm"),
                vec![s.head_dim],
                GgmlType::F32,
                ones(s.head_dim),
            );
            mat(&mut w, n("attn_q"), h, 2 * q);
            mat(&mut w, n("attn_k"), h, kv);
            mat(&mut w, n("attn_v"), h, kv);
            mat(&mut w, n("attn_output"), q, h);
            continue;
        }
        w.add_tensor(n("ffn_norm"), vec![h], GgmlType::F32, ones(h));
        w.add_tensor(
            n("attn_q_norm"),
            vec![s.head_dim],
            GgmlType::F32,
            ones(s.head_dim),
        );
        w.add_tensor(
            n("attn_k_norm"),
            vec![s.head_dim],
            GgmlType::F32,
            ones(s.head_dim),
        );
        mat(&mut w, n("attn_q"), h, q);
        mat(&mut w, n("attn_k"), h, kv);
        mat(&mut w, n("attn_v"), h, kv);
        mat(&mut w, n("attn_output"), q, h);
        mat(&mut w, n("ffn_gate"), h, ff);
        mat(&mut w, n("ffn_up"), h, ff);
        mat(&mut w, n("ffn_down"), ff, h);
    }
    let mut bytes = Vec::new();
    w.write_to(&mut bytes)?;
    drop(w);
    Ok(GgufFile::from_bytes(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        assert_eq!(spec("bonsai-8b").unwrap().ty, GgmlType::Q1_0);
        assert_eq!(spec("ternary-g128-1.7b").unwrap().ty, GgmlType::Q2_0G128);
        assert_eq!(spec("tq1-4b").unwrap().n_embd, 2560);
        assert!(spec("bonsai-9b").is_err());
        assert_eq!(spec("bonsai2-27b").unwrap().hybrid, Some((128, 16, 48)));
        assert_eq!(spec("pq2-9b").unwrap().ty, GgmlType::PQ2_0);
        assert!(spec("nonsense").is_err());
    }
}
