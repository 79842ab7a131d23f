//! Causal attention of a batch's queries, each over its own sequence's KV
//! cache, one task per (token, head) across all sequences of the step.
//! q: [n][n_head*hd] → att: [n][n_head*hd_v] (`n` = tokens of the step).
//!
//! With the default f16 cache the arithmetic is llama.cpp's non-flash path
//! (llama-graph.cpp build_attn_mha) to the bit, for its AVX-512 build: `kq =
//! mul_mat(k_f16, q)` rounds q to f16 and sums each dot in ggml's order
//! (tinyBLAS's, [`ops::DotOrder::for_len`], for every token: a token's bits
//! never depend on its batch); `soft_max_ext` scales, then [`ops::softmax_ggml`];
//! `mul_mat(v_f16, kq)` rounds the probabilities to f16 and sums over
//! positions in the same orders, with position `j` accumulated into lane
//! `j % lanes`.
//!
//! Other cache types keep that structure with their own numbers: f32 keys
//! and values take q and the probabilities unrounded, with fused products
//! (as ggml's f32 `mul_mat`); `Q8_0` keys take q
//! quantized to `Q8_0` per head and the `Q8_0 · Q8_0` dot (ggml's
//! `vec_dot_type` for a `Q8_0` matrix), `Q8_0` values are dequantized per
//! row. llama.cpp runs quantized V only with flash attention, so these are
//! not its bits; the golden tests bound them against the f64 reference.

use crate::config::ModelConfig;
use crate::kv_cache::{KvCache, KvTypes, RowsRef};
use crate::ops;
use half::f16;
use rayon::prelude::*;
use shohin_quant::simd::attn;
use shohin_quant::{kernels, GgmlType};

/// `Q8_0`: values per block and bytes per block (q8_0.rs).
const Q8_QK: usize = 32;
const Q8_BYTES: usize = 34;

/// Per-thread buffers of one attention task (a token and head), reused so
/// that attention allocates nothing per task.
#[derive(Default)]
struct AttnScratch {
    qh: Vec<f32>,
    /// q of the head quantized to `Q8_0` (for a `Q8_0` K cache).
    qq: Vec<u8>,
    probs: Vec<f32>,
    acc: Vec<f32>,
    /// One dequantized value row (for a `Q8_0` V cache).
    vrow: Vec<f32>,
}

thread_local! {
    static ATTN_SCRATCH: std::cell::RefCell<AttnScratch> = std::cell::RefCell::default();
}

/// The attention of one layer over a step's spans, as both forward passes
/// (model.rs, model/qwen35.rs) run it: q/k (and v) rotated by a Hadamard
/// block when the cache is quantized (see `KvTypes::rotation`), each
/// token's k/v stored at its position in its span's cache under `slot`
/// (the layer's index among the cache's attention layers), every query
/// attending over its own cache, and the output un-rotated when v was.
/// `head_dim`: the q/k head size; `span_of` / `pos`: each token's span and
/// position.
#[allow(clippy::too_many_arguments)]
pub(crate) fn store_and_attend(
    c: &ModelConfig,
    spans: &mut [crate::model::Span<'_>],
    span_of: &[u32],
    pos: &[usize],
    slot: usize,
    q: &mut [f32],
    k: &mut [f32],
    v: &mut [f32],
    att: &mut [f32],
) {
    let kv = spans[0].cache.types();
    if let Some(b) = KvTypes::rotation(kv.k, c.head_dim, true) {
        q.chunks_mut(b).for_each(ops::hadamard);
        k.chunks_mut(b).for_each(ops::hadamard);
    }
    let v_rot = KvTypes::rotation(kv.v, c.head_dim_v, false);
    if let Some(b) = v_rot {
        v.chunks_mut(b).for_each(ops::hadamard);
    }
    let (kd, vd) = (c.k_dim(), c.v_dim());
    for (t, (&i, &p)) in span_of.iter().zip(pos).enumerate() {
        spans[i as usize]
            .cache
            .store(slot, p, &k[t * kd..(t + 1) * kd], &v[t * vd..(t + 1) * vd]);
    }
    let mut t0 = 0;
    let refs: Vec<SpanRef<'_>> = spans
        .iter()
        .map(|sp| {
            let r = SpanRef {
                cache: &*sp.cache,
                t0,
                pos0: sp.cache.len(),
            };
            t0 += sp.tokens.len();
            r
        })
        .collect();
    attend(c, &refs, span_of, slot, q, att);
    if let Some(b) = v_rot {
        att.chunks_mut(b).for_each(ops::hadamard);
    }
}

/// One sequence's queries in a step: tokens `t0..t0+n` of the batch, at
/// positions `pos0..pos0+n` of `cache` (whose rows for them are stored).
pub(crate) struct SpanRef<'a> {
    pub cache: &'a KvCache,
    pub t0: usize,
    pub pos0: usize,
}

/// Attention of layer `il` for every token of the batch: `span_of[t]` is
/// the index in `spans` of token `t`'s sequence.
pub(crate) fn attend(
    c: &ModelConfig,
    spans: &[SpanRef<'_>],
    span_of: &[u32],
    il: usize,
    q: &[f32],
    att: &mut [f32],
) {
    let (hd, hd_v) = (c.head_dim, c.head_dim_v);
    let group = c.n_head / c.n_head_kv;
    let (kd, vd) = (c.k_dim(), c.v_dim());
    let scale = 1.0 / (hd as f32).sqrt();
    let kq_lanes = ops::DotOrder::for_len(hd).lanes();
    // ggml's KV length is padded to a multiple of 256 (llama-kv-cache.cpp
    // get_n_kv), so the probability dot is always a multiple of 16 long.
    let lanes = ops::DotOrder::for_len(256).lanes();
    let q8 = kernels(GgmlType::Q8_0);
    // Bytes of a head's Q8_0 key / value row, and of a whole cache row.
    let (kh_bytes, kr_bytes) = (hd / Q8_QK * Q8_BYTES, kd / Q8_QK * Q8_BYTES);
    let (vh_bytes, vr_bytes) = (hd_v / Q8_QK * Q8_BYTES, vd / Q8_QK * Q8_BYTES);
    att.par_chunks_mut(hd_v).enumerate().for_each(|(i, out)| {
        ATTN_SCRATCH.with_borrow_mut(|s| {
            let (t, head) = (i / c.n_head, i % c.n_head);
            let span = &spans[span_of[t] as usize];
            let kvh = head / group;
            let n_kv = span.pos0 + (t - span.t0) + 1;
            let keys = span.cache.keys(il, n_kv);
            let values = span.cache.values(il, n_kv);
            let AttnScratch {
                qh,
                qq,
                probs,
                acc,
                vrow,
            } = s;
            let qt = &q[t * c.q_dim() + head * hd..][..hd];
            probs.resize(n_kv, 0.0);
            match keys {
                RowsRef::F16(keys) => {
                    qh.clear();
                    qh.extend(qt.iter().map(|&x| f16::from_f32(x).to_f32()));
                    attn::scores_f16(kq_lanes, qh, &keys[kvh * hd..], kd, scale, probs);
                }
                RowsRef::F32(keys) => {
                    attn::scores_f32(kq_lanes, qt, &keys[kvh * hd..], kd, scale, probs);
                }
                RowsRef::Q8_0(keys) => {
                    qq.resize(kh_bytes, 0);
                    (q8.quantize)(qt, qq);
                    for (j, p) in probs.iter_mut().enumerate() {
                        let k = &keys[j * kr_bytes + kvh * kh_bytes..][..kh_bytes];
                        *p = (q8.vec_dot)(k, qq) * scale;
                    }
                }
            }
            ops::softmax_ggml(probs);
            // acc[l][d]: lane l of the dot for output dim d.
            acc.clear();
            acc.resize(lanes * hd_v, 0.0);
            vrow.resize(hd_v, 0.0);
            for (j, &p) in probs.iter().enumerate() {
                let row = &mut acc[(j % lanes) * hd_v..][..hd_v];
                match values {
                    RowsRef::F16(values) => {
                        // p·v is exact in f32 (f16 × f16), so the FMA of
                        // axpy_f16 rounds like ggml's.
                        let p = f16::from_f32(p).to_f32();
                        attn::axpy_f16(row, p, &values[j * vd + kvh * hd_v..][..hd_v]);
                    }
                    RowsRef::F32(values) => {
                        attn::axpy_f32(row, p, &values[j * vd + kvh * hd_v..][..hd_v]);
                    }
                    RowsRef::Q8_0(values) => {
                        let v = &values[j * vr_bytes + kvh * vh_bytes..][..vh_bytes];
                        (q8.dequantize)(v, vrow);
                        attn::axpy_f32(row, p, vrow);
                    }
                }
            }
            attn::reduce_rows(lanes, acc, out);
        })
    });
}
