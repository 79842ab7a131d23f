//! Element-wise and normalisation ops of the forward pass, written to follow
//! ggml-cpu's arithmetic (ops.cpp) so results track llama.cpp closely.

pub(crate) mod fwht;
mod simd;

/// RMSNorm then scale: `out = x / sqrt(mean(x^2) + eps) * w`.
/// As ggml_compute_forward_rms_norm_f32: squares summed in f64, scale in f32,
/// then the weight multiply as a separate f32 op (ggml_mul).
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let scale = rms_scale(x, eps);
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = (v * scale) * g;
    }
}

/// In-place RMSNorm (per-head q/k norm of qwen3).
pub fn rms_norm_inplace(x: &mut [f32], w: &[f32], eps: f32) {
    let scale = rms_scale(x, eps);
    for (v, &g) in x.iter_mut().zip(w) {
        *v = (*v * scale) * g;
    }
}

/// `1 / sqrt(mean(x^2) + eps)`: squares in f32, summed in f64, the mean
/// rounded to f32 (ggml_compute_forward_rms_norm_f32).
fn rms_scale(x: &[f32], eps: f32) -> f32 {
    let sum: f64 = x.iter().map(|&v| f64::from(v * v)).sum();
    let mean = (sum / x.len() as f64) as f32;
    1.0 / (mean + eps).sqrt()
}

/// How RoPE pairs a head's dims (llama.cpp `llama_rope_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeLayout {
    /// Rotate-half: dims i and i + d/2 form a pair (qwen2, qwen3, qwen35).
    Neox,
    /// Adjacent dims 2i and 2i + 1 form a pair (llama; its converter
    /// permutes the q/k rows of Hugging Face checkpoints to match).
    Norm,
}

/// RoPE on one head in `layout` (pair i turns by the angle of `cache[i]`).
pub fn rope(layout: RopeLayout, head: &mut [f32], cache: &[(f32, f32)]) {
    match layout {
        RopeLayout::Neox => rope_neox(head, cache),
        RopeLayout::Norm => rope_norm(head, cache),
    }
}

/// NORM RoPE on one head: dims 2i and 2i + 1 form pair i (ops.cpp
/// `rope_f32` with mode 0), with the same contracted arithmetic as
/// [`rope_neox`].
pub fn rope_norm(head: &mut [f32], cache: &[(f32, f32)]) {
    for (p, &(c, s)) in head.chunks_exact_mut(2).zip(cache) {
        let (v0, v1) = (p[0], p[1]);
        p[0] = fma_f32(v0, c, -(v1 * s));
        p[1] = fma_f32(v0, s, v1 * c);
    }
}

/// NEOX (rotate-half) RoPE on one head: dims i and i + d/2 form a pair.
/// ops.cpp `rotate_pairs` is `x0*c - x1*s` and `x0*s + x1*c`, which GCC
/// (`-std=gnu++17`, so `-ffp-contract=fast`, with FMA) contracts to
/// `fma(x0, c, -(x1*s))` and `fma(x0, s, x1*c)`: measured bit-exact against
/// llama.cpp's `Qcur`/`Kcur` (tools/drift/rope_check.py); the unfused
/// form differs in the last bit for ~15% of the values.
pub fn rope_neox(head: &mut [f32], cache: &[(f32, f32)]) {
    let half = head.len() / 2;
    let (a, b) = head.split_at_mut(half);
    for ((x0, x1), &(c, s)) in a.iter_mut().zip(b.iter_mut()).zip(cache) {
        let (v0, v1) = (*x0, *x1);
        *x0 = fma_f32(v0, c, -(v1 * s));
        *x1 = fma_f32(v0, s, v1 * c);
    }
}

/// `e^x` as ggml-cpu computes it in softmax and SiLU: vec.h `ggml_v_expf`,
/// AVX-512 variant (an ARM optimized-routines polynomial, max error ~1.5
/// ulp), one lane of it. llama.cpp built for AVX-512 (as the goldens were)
/// gets these exact bits; libm's correctly rounded `expf` differs in the
/// last bit often enough to move this model's logits by ~0.01.
/// [`fma_f32`] is the same single rounding as `_mm512_fmadd_ps`.
pub fn exp_ggml(x: f32) -> f32 {
    use exp_consts::*;
    let z = fma_f32(x, LOG2E, ROUND);
    let n = z - ROUND;
    // |n| > 192: the result is 0 or inf (NaN compares false and stays NaN).
    if n.abs() > 192.0 {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }
    let b = fma_f32(-n, LN2_LO, fma_f32(-n, LN2_HI, x));
    let u = b * b;
    let j = fma_f32(
        fma_f32(fma_f32(C5, b, C4), u, fma_f32(C3, b, C2)),
        u,
        fma_f32(C1, b, 1.0),
    );
    scalef(j, n)
}

/// Constants of vec.h `ggml_v_expf` (AVX-512), shared by [`exp_ggml`] and
/// the SIMD versions in `ops/simd.rs`.
mod exp_consts {
    /// 0x1.8p23: adding it rounds x·log2(e) to an integer (ties to even).
    pub const ROUND: f32 = f32::from_bits(0x4b40_0000);
    pub const LOG2E: f32 = f32::from_bits(0x3fb8_aa3b); // 0x1.715476p+0
    pub const LN2_HI: f32 = f32::from_bits(0x3f31_7200); // 0x1.62e4p-1
    pub const LN2_LO: f32 = f32::from_bits(0x35bf_be8e); // 0x1.7f7d1cp-20
    pub const C5: f32 = f32::from_bits(0x3c07_2010); // 0x1.0e4020p-7
    pub const C4: f32 = f32::from_bits(0x3d2b_9f17); // 0x1.573e2ep-5
    pub const C3: f32 = f32::from_bits(0x3e2a_af33); // 0x1.555e66p-3
    pub const C2: f32 = f32::from_bits(0x3eff_fedb); // 0x1.fffdb6p-2
    pub const C1: f32 = f32::from_bits(0x3f7f_fff6); // 0x1.ffffecp-1
}

/// [`exp_ggml`] over a slice, in place: 16 (AVX-512) or 8 (AVX2) lanes at
/// a time with the same bits (`ops/simd.rs`), the tail in scalar code.
/// Only the tests use it: the model calls exp through [`swiglu`] and
/// [`softmax_ggml`].
#[cfg(test)]
pub fn exp_ggml_slice(x: &mut [f32]) {
    let done = simd::exp_prefix(x);
    for v in &mut x[done..] {
        *v = exp_ggml(*v);
    }
}

/// `a·b + c` rounded once, like an FMA instruction, in portable code: the
/// product is exact in f64, the f64 sum is made round-to-odd (TwoSum gives
/// its error; an inexact even result moves one ulp toward the exact value),
/// and rounding that to f32 is then correct (53 >= 24 + 2 bits). Avoids
/// `f32::mul_add`, which is a libm call on targets built without FMA.
#[inline]
pub fn fma_f32(a: f32, b: f32, c: f32) -> f32 {
    let p = f64::from(a) * f64::from(b);
    let c = f64::from(c);
    let s = p + c;
    let bb = s - p;
    let err = (p - (s - bb)) + (c - bb);
    let bits = s.to_bits();
    let odd = if err != 0.0 && bits & 1 == 0 && s.is_finite() {
        // The exact sum lies strictly between s and its neighbour toward err.
        if (err > 0.0) == (s > 0.0) {
            f64::from_bits(bits + 1)
        } else {
            f64::from_bits(bits - 1)
        }
    } else {
        s
    };
    odd as f32
}

/// `_mm512_scalef_ps(j, n)` for an integral `n` in [-192, 192]: `j·2^n`
/// rounded once (to a subnormal, zero or infinity when out of range). The
/// product is exact in f64; the cast to f32 is the single rounding.
fn scalef(j: f32, n: f32) -> f32 {
    if n.is_nan() {
        return f32::NAN;
    }
    // n is an integer of magnitude <= 192: 2^n is a normal f64.
    let p = f64::from_bits(((n as i64 + 1023) as u64) << 52);
    (f64::from(j) * p) as f32
}

/// SwiGLU: `g = silu(g) * u` (ggml_swiglu; vec.h `ggml_v_silu`:
/// `x / (1 + ggml_v_expf(0 - x))`, then the multiply by `u`).
/// Vectorized where the CPU allows (`ops/simd.rs`, same bits).
pub fn swiglu(g: &mut [f32], u: &[f32]) {
    let n = g.len().min(u.len());
    let (g, u) = (&mut g[..n], &u[..n]);
    let done = simd::swiglu_prefix(g, u);
    for (g, &u) in g[done..].iter_mut().zip(&u[done..]) {
        let x = *g;
        *g = x / (1.0 + exp_ggml(0.0 - x)) * u;
    }
}

/// Horizontal sum of 16 lanes in GCC's `_mm512_reduce_add_ps` order; one
/// copy, beside the attention orders that also use it.
pub use shohin_quant::simd::attn::reduce16;

/// How ggml-cpu sums an f16 `mul_mat` dot product, which decides its last
/// bits (products of two f16 values are exact in f32, so only the order of
/// the f32 additions matters). Both orders accumulate element `j` into lane
/// `j % lanes()` in increasing `j` and then combine the lanes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DotOrder {
    /// llamafile `tinyBLAS<16, __m512>` (sgemm.cpp), used for batches of
    /// two or more tokens when the length is a multiple of 16: 16 lanes,
    /// then [`reduce16`].
    TinyBlas,
    /// vec.cpp `ggml_vec_dot_f16` (AVX-512: `GGML_F32_STEP` 64, four
    /// 16-lane accumulators), used for one token: 64 lanes, accumulators
    /// folded `0+2, 1+3`, then `0+1`, then [`reduce16`]. The KV length is
    /// padded to 256 in llama.cpp, so there is no scalar tail.
    VecDot,
}

impl DotOrder {
    /// The order shohin uses for a product over `len` elements, whatever
    /// the number of query rows: tinyBLAS's (ggml's order for a batch of
    /// two or more tokens) whenever `len` allows it. ggml itself switches
    /// to `ggml_vec_dot_f16` for a single token; shohin does not, so that a
    /// token's bits never depend on its batch neighbours, on how its prompt
    /// was chunked, or on whether its prefix came from the prefix cache
    /// (a decode step then differs from llama.cpp's in the last bits of
    /// the attention sums only).
    pub fn for_len(len: usize) -> Self {
        if len.is_multiple_of(16) {
            Self::TinyBlas
        } else {
            Self::VecDot
        }
    }

    pub fn lanes(self) -> usize {
        match self {
            Self::TinyBlas => 16,
            Self::VecDot => 64,
        }
    }
}

/// Softmax of one row of already scaled scores, in place, as ops.cpp
/// `soft_max_f32` with vec.cpp `ggml_vec_soft_max_f32` (AVX-512): `e^(s -
/// max)` with [`exp_ggml`], each 16-element chunk summed in f32 by
/// [`reduce16`] and the chunk sums added in f64, then every value times
/// `(f32)(1/sum)`. Masked positions past the row are zeros in ggml and
/// change none of these sums. Whole chunks are vectorized where the CPU
/// allows (`ops/simd.rs`, same bits and order).
pub fn softmax_ggml(s: &mut [f32]) {
    let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f64;
    let done = simd::softmax_exp_prefix(s, max, &mut sum);
    for chunk in s[done..].chunks_mut(16) {
        let mut lanes = [0f32; 16];
        for (l, v) in lanes.iter_mut().zip(chunk.iter_mut()) {
            *v = exp_ggml(*v - max);
            *l = *v;
        }
        sum += f64::from(reduce16(&lanes));
    }
    let inv = (1.0 / sum) as f32;
    for v in s.iter_mut() {
        *v *= inv;
    }
}

/// `x ← H·x` for the orthonormal Walsh-Hadamard matrix of size `x.len()`
/// (a power of two; Sylvester order `H₂ₛ = [[H, H], [H, −H]] / √2`, as
/// llama-kv-cache.cpp `ggml_gen_hadamard` builds it): the fast transform's
/// butterflies, then `1/√n`. `H·H = I`, so applying it twice restores `x`.
pub fn hadamard(x: &mut [f32]) {
    let n = x.len();
    debug_assert!(n.is_power_of_two());
    let mut h = 1;
    while h < n {
        for blk in x.chunks_mut(2 * h) {
            let (a, b) = blk.split_at_mut(h);
            for (a, b) in a.iter_mut().zip(b) {
                (*a, *b) = (*a + *b, *a - *b);
            }
        }
        h *= 2;
    }
    let s = 1.0 / (n as f32).sqrt();
    for v in x {
        *v *= s;
    }
}

pub fn add_inplace(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_of_constant_is_weight() {
        let x = [3.0f32; 8];
        let w = [0.5f32; 8];
        let mut o = [0.0; 8];
        rms_norm(&x, &w, 0.0, &mut o);
        for v in o {
            assert!((v - 0.5).abs() < 1e-6);
        }
    }

    #[test]
    fn rope_rotates_pairs_by_position_angle() {
        // head_dim 4: pairs (0,2) at theta = pos, (1,3) at pos * base^-0.5
        let mut c = [(0.0, 0.0); 2];
        let p = crate::rope::RopeParams::resolve(
            &crate::rope::RopeHparams::plain(100.0),
            4096,
            &crate::rope::RopeOptions::default(),
        )
        .unwrap();
        p.cache(3, 4, &mut c);
        let mut h = [1.0f32, 1.0, 0.0, 0.0];
        rope_neox(&mut h, &c);
        let t1 = 3.0f64 * 100f64.powf(-0.5);
        assert!((f64::from(h[0]) - 3f64.cos()).abs() < 1e-5);
        assert!((f64::from(h[2]) - 3f64.sin()).abs() < 1e-5);
        assert!((f64::from(h[1]) - t1.cos()).abs() < 1e-5);
        assert!((f64::from(h[3]) - t1.sin()).abs() < 1e-5);
    }

    /// ggml_v_expf (vec.h, AVX-512) outputs for these inputs, as bits,
    /// printed by tools/drift/expf_ref.c (the intrinsics compiled with GCC
    /// and run on an AVX-512 machine).
    const GGML_EXPF: [(u32, u32); 32] = [
        (0x0000_0000, 0x3f80_0000),
        (0x8000_0000, 0x3f80_0000),
        (0x3f80_0000, 0x402d_f855),
        (0xbf80_0000, 0x3ebc_5ab3),
        (0x3f00_0000, 0x3fd3_094c),
        (0xbe80_0000, 0x3f47_5f7c),
        (0x4049_0fd0, 0x41b9_2005),
        (0xc0f0_0000, 0x3a10_fcdc),
        (0x4120_0000, 0x46ac_14f0),
        (0xc120_0000, 0x383e_6bce),
        (0x41a4_0000, 0x4e3e_b628),
        (0xc1a4_0000, 0x30ab_d1d9),
        (0x4220_0000, 0x5c51_1069),
        (0xc248_0000, 0x1b69_2beb),
        (0x42b0_0000, 0x7ef8_82b7),
        (0x42b1_999a, 0x7f80_0000),
        (0xc2ae_0000, 0x00b3_3686),
        (0xc2c8_0000, 0x0000_001b),
        (0xc2ce_0000, 0x0000_0001),
        (0xc2dc_0000, 0x0000_0000),
        (0x33d6_bf95, 0x3f80_0001),
        (0xb3d6_bf95, 0x3f7f_fffe),
        (0x3f31_7215, 0x3fff_fffd),
        (0xbf31_7215, 0x3f00_0001),
        (0x3b23_d70a, 0x3f80_5206),
        (0xc155_eb85, 0x35d1_8d6c),
        (0x4271_0000, 0x6af2_9709),
        (0xc271_0000, 0x1407_135d),
        (0x42c8_0000, 0x7f80_0000),
        (0xc30c_0000, 0x0000_0000),
        (0xc47a_0000, 0x0000_0000),
        (0x447a_0000, 0x7f80_0000),
    ];

    #[test]
    fn exp_matches_ggml_bits() {
        for (x, want) in GGML_EXPF {
            let got = exp_ggml(f32::from_bits(x)).to_bits();
            assert_eq!(got, want, "exp({})", f32::from_bits(x));
        }
        assert_eq!(exp_ggml(f32::NEG_INFINITY), 0.0);
        assert!(exp_ggml(f32::NAN).is_nan());
        // The vector path (hardware FMA/scalef where available) on the same
        // inputs, 32 = two whole AVX-512 vectors.
        let mut v: Vec<f32> = GGML_EXPF.iter().map(|&(x, _)| f32::from_bits(x)).collect();
        exp_ggml_slice(&mut v);
        for (got, (x, want)) in v.iter().zip(GGML_EXPF) {
            assert_eq!(got.to_bits(), want, "vector exp({})", f32::from_bits(x));
        }
    }

    #[test]
    fn exp_is_within_two_ulp_of_libm() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (g, w) = (exp_ggml(x), x.exp());
            let ulps = (g.to_bits() as i64 - w.to_bits() as i64).abs();
            assert!(ulps <= 2, "exp({x}): {g} vs {w}");
            x += 0.0137;
        }
    }

    fn lcg(seed: u32, n: usize, big: f32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|i| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let v = ((s >> 8) as f64 / f64::from(1u32 << 24) - 0.5) as f32;
                let v = if i % 5 == 0 { v * big } else { v };
                half::f16::from_f32(v).to_f32()
            })
            .collect()
    }

    #[test]
    fn fma_rounds_once() {
        let a = lcg(3, 4000, 1e6);
        let b = lcg(4, 4000, 1e-3);
        let c = lcg(5, 4000, 7.0);
        for i in 0..4000 {
            let (x, y, z) = (a[i] * 1.37, b[i] / 3.0, c[i] * 0.91);
            assert_eq!(fma_f32(x, y, z).to_bits(), x.mul_add(y, z).to_bits());
        }
        // A case where the f64 sum is a tie for f32: plain f64 rounding
        // would double-round it.
        let (x, y, z) = (1.0 + f32::EPSILON, 1.0 + f32::EPSILON / 2.0, -1.0);
        assert_eq!(fma_f32(x, y, z).to_bits(), x.mul_add(y, z).to_bits());
    }

    #[test]
    fn dot_orders_are_ggmls() {
        // Expected bits from tools/drift/emulate_attn.py, whose orders
        // reproduce llama.cpp's kq/kqv tensors bit for bit; the three
        // orders give three different sums here.
        use shohin_quant::simd::attn::{dot_in_order, scores_f16};
        let (a, b) = (lcg(1, 64, 300.0), lcg(1001, 64, 300.0));
        let b16: Vec<half::f16> = b.iter().map(|&v| half::f16::from_f32(v)).collect();
        for (order, bits) in [
            (DotOrder::TinyBlas, 0x4588_a666),
            (DotOrder::VecDot, 0x4588_a664),
        ] {
            assert_eq!(dot_in_order(order.lanes(), &a, &b).to_bits(), bits);
            // The vector path of attention (whatever this CPU runs).
            let mut s = [0f32; 1];
            scores_f16(order.lanes(), &a, &b16, 64, 1.0, &mut s);
            assert_eq!(s[0].to_bits(), bits, "{order:?}");
        }
        let seq: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert_eq!(seq.to_bits(), 0x4588_a674);
        assert_eq!(DotOrder::for_len(64), DotOrder::TinyBlas);
        assert_eq!(DotOrder::for_len(256), DotOrder::TinyBlas);
        assert_eq!(DotOrder::for_len(40), DotOrder::VecDot);
    }

    /// The fast transform is the product with ggml_gen_hadamard's matrix
    /// (built here by its recursion), and its own inverse.
    #[test]
    fn hadamard_is_the_sylvester_matrix_and_an_involution() {
        for n in [64usize, 128] {
            let mut m = vec![0f64; n * n];
            m[0] = 1.0 / (n as f64).sqrt();
            let mut s = 1;
            while s < n {
                for i in 0..s {
                    for j in 0..s {
                        let v = m[i * n + j];
                        m[(i + s) * n + j] = v;
                        m[i * n + j + s] = v;
                        m[(i + s) * n + j + s] = -v;
                    }
                }
                s *= 2;
            }
            let x = lcg(9, n, 10.0);
            let mut y = x.clone();
            hadamard(&mut y);
            for i in 0..n {
                let want: f64 = (0..n).map(|j| m[i * n + j] * f64::from(x[j])).sum();
                assert!((f64::from(y[i]) - want).abs() < 1e-4, "n {n} row {i}");
            }
            hadamard(&mut y);
            for (a, b) in y.iter().zip(&x) {
                assert!((a - b).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn softmax_sums_to_one() {
        let mut s: Vec<f32> = (0..37).map(|i| (i as f32 * 0.7).sin() * 5.0).collect();
        s[3] = f32::NEG_INFINITY;
        softmax_ggml(&mut s);
        assert_eq!(s[3], 0.0);
        let total: f64 = s.iter().map(|&p| f64::from(p)).sum();
        assert!((total - 1.0).abs() < 1e-6);
    }

    #[test]
    fn swiglu_matches_definition() {
        let mut g = [1.0f32, -2.0];
        swiglu(&mut g, &[2.0, 3.0]);
        let s = |x: f64| x / (1.0 + (-x).exp());
        assert!((f64::from(g[0]) - 2.0 * s(1.0)).abs() < 1e-6);
        assert!((f64::from(g[1]) - 3.0 * s(-2.0)).abs() < 1e-6);
    }
}
