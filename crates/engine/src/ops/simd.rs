//! SIMD versions of [`super::exp_ggml`], [`super::swiglu`] and the exp/sum
//! loop of [`super::softmax_ggml`], bit-identical to the scalar emulation
//! (which is itself bit-identical to llama.cpp's AVX-512 build).
//!
//! AVX-512 runs vec.h `ggml_v_expf` (AVX-512 variant) with the very
//! instructions the emulation reproduces (`vfmadd`, `vscalefps`, the
//! `|n| > 192` blend). AVX2 has no `scalef`; there `j·2^n` is computed as
//! `(j·2^⌊n/2⌋)·2^⌈n/2⌉`: for the lanes that keep it (`|n| <= 192`) `j` lies
//! in about [0.7, 1.42], so the first product is a normal f32 and exact,
//! and the second rounds once, exactly like `scalef` (also into subnormals
//! and infinity). NaN inputs give NaN (payload not pinned; the scalar
//! emulation returns the canonical NaN).
//!
//! Each function handles a prefix of whole vectors and returns its length;
//! the caller finishes the tail with the scalar code.

#[cfg(target_arch = "x86_64")]
use shohin_quant::simd::{isa, Isa};

/// `x[i] = exp_ggml(x[i])` for a prefix of `x`; returns its length.
#[cfg(test)]
pub(super) fn exp_prefix(x: &mut [f32]) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let level = isa();
        if level >= Isa::Avx512 {
            // SAFETY: isa() >= Avx512 means AVX-512F (and AVX2, FMA) were
            // detected on this CPU.
            return unsafe { x86::exp_avx512(x) };
        }
        if level >= Isa::Avx2 {
            // SAFETY: isa() >= Avx2 means AVX2 and FMA were detected.
            return unsafe { x86::exp_avx2(x) };
        }
    }
    let _ = x;
    0
}

/// `g[i] = g[i] / (1 + exp_ggml(0 - g[i])) * u[i]` for a prefix of `g`
/// (`u.len() >= g.len()`); returns its length.
pub(super) fn swiglu_prefix(g: &mut [f32], u: &[f32]) -> usize {
    assert!(u.len() >= g.len());
    #[cfg(target_arch = "x86_64")]
    {
        let level = isa();
        if level >= Isa::Avx512 {
            // SAFETY: AVX-512F, AVX2 and FMA were detected (isa()); the
            // length precondition is asserted above.
            return unsafe { x86::swiglu_avx512(g, u) };
        }
        if level >= Isa::Avx2 {
            // SAFETY: AVX2 and FMA were detected; lengths asserted above.
            return unsafe { x86::swiglu_avx2(g, u) };
        }
    }
    let _ = (g, u);
    0
}

/// Softmax's first pass over whole 16-element chunks of `s`: each value
/// becomes `exp_ggml(v - max)`, each chunk is summed with
/// [`super::reduce16`]'s order and the chunk sums are added, in order, to
/// `*sum` in f64. Returns how many elements were done (a multiple of 16).
pub(super) fn softmax_exp_prefix(s: &mut [f32], max: f32, sum: &mut f64) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let level = isa();
        if level >= Isa::Avx512 {
            // SAFETY: AVX-512F, AVX2 and FMA were detected (isa()).
            return unsafe { x86::softmax_avx512(s, max, sum) };
        }
        if level >= Isa::Avx2 {
            // SAFETY: AVX2 and FMA were detected (isa()).
            return unsafe { x86::softmax_avx2(s, max, sum) };
        }
    }
    let _ = (s, max, sum);
    0
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::super::exp_consts as k;
    use std::arch::x86_64::*;

    /// vec.h `ggml_v_expf`, AVX-512 variant, one vector.
    #[target_feature(enable = "avx512f,avx2,fma")]
    fn exp16(x: __m512) -> __m512 {
        let r = _mm512_set1_ps(k::ROUND);
        let z = _mm512_fmadd_ps(x, _mm512_set1_ps(k::LOG2E), r);
        let n = _mm512_sub_ps(z, r);
        let b = _mm512_fnmadd_ps(
            n,
            _mm512_set1_ps(k::LN2_LO),
            _mm512_fnmadd_ps(n, _mm512_set1_ps(k::LN2_HI), x),
        );
        let d = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_abs_ps(n), _mm512_set1_ps(192.0));
        let u = _mm512_mul_ps(b, b);
        let j = _mm512_fmadd_ps(
            _mm512_fmadd_ps(
                _mm512_fmadd_ps(_mm512_set1_ps(k::C5), b, _mm512_set1_ps(k::C4)),
                u,
                _mm512_fmadd_ps(_mm512_set1_ps(k::C3), b, _mm512_set1_ps(k::C2)),
            ),
            u,
            _mm512_fmadd_ps(_mm512_set1_ps(k::C1), b, _mm512_set1_ps(1.0)),
        );
        let res = _mm512_scalef_ps(j, n);
        if d == 0 {
            return res;
        }
        let zero = _mm512_setzero_ps();
        let le0 = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(n, zero);
        let alt = _mm512_mask_blend_ps(le0, _mm512_set1_ps(f32::INFINITY), zero);
        _mm512_mask_blend_ps(d, res, alt)
    }

    /// The same function on 8 lanes with AVX2 + FMA; `scalef` as two exact
    /// power-of-two multiplies (module docs).
    #[target_feature(enable = "avx2,fma")]
    fn exp8(x: __m256) -> __m256 {
        let r = _mm256_set1_ps(k::ROUND);
        let z = _mm256_fmadd_ps(x, _mm256_set1_ps(k::LOG2E), r);
        let n = _mm256_sub_ps(z, r);
        let b = _mm256_fnmadd_ps(
            n,
            _mm256_set1_ps(k::LN2_LO),
            _mm256_fnmadd_ps(n, _mm256_set1_ps(k::LN2_HI), x),
        );
        let u = _mm256_mul_ps(b, b);
        let j = _mm256_fmadd_ps(
            _mm256_fmadd_ps(
                _mm256_fmadd_ps(_mm256_set1_ps(k::C5), b, _mm256_set1_ps(k::C4)),
                u,
                _mm256_fmadd_ps(_mm256_set1_ps(k::C3), b, _mm256_set1_ps(k::C2)),
            ),
            u,
            _mm256_fmadd_ps(_mm256_set1_ps(k::C1), b, _mm256_set1_ps(1.0)),
        );
        // n is integral; lanes with |n| > 192 (or NaN) get garbage exponents
        // here and are replaced (or stay NaN through j) below.
        let ni = _mm256_cvtps_epi32(n);
        let n1 = _mm256_srai_epi32::<1>(ni);
        let n2 = _mm256_sub_epi32(ni, n1);
        let bias = _mm256_set1_epi32(127);
        let p1 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n1, bias)));
        let p2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n2, bias)));
        let res = _mm256_mul_ps(_mm256_mul_ps(j, p1), p2);
        let abs = _mm256_andnot_ps(_mm256_set1_ps(-0.0), n);
        let d = _mm256_cmp_ps::<_CMP_GT_OQ>(abs, _mm256_set1_ps(192.0));
        if _mm256_movemask_ps(d) == 0 {
            return res;
        }
        let zero = _mm256_setzero_ps();
        let le0 = _mm256_cmp_ps::<_CMP_LE_OQ>(n, zero);
        let alt = _mm256_blendv_ps(_mm256_set1_ps(f32::INFINITY), zero, le0);
        _mm256_blendv_ps(res, alt, d)
    }

    /// `(a[0..8] + a[8..16])`, then 4 + 4, then `(0+2) + (1+3)`: the order
    /// of [`super::super::reduce16`], given the low and high halves.
    #[target_feature(enable = "avx2,fma")]
    fn reduce16(lo: __m256, hi: __m256) -> f32 {
        let h = _mm256_add_ps(hi, lo);
        let q = _mm_add_ps(_mm256_extractf128_ps::<1>(h), _mm256_castps256_ps128(h));
        let t = _mm_add_ps(q, _mm_movehl_ps(q, q));
        _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)))
    }

    /// # Safety
    /// Needs AVX-512F, AVX2 and FMA.
    #[cfg(test)]
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn exp_avx512(x: &mut [f32]) -> usize {
        let done = x.len() / 16 * 16;
        for c in x[..done].chunks_exact_mut(16) {
            let p = c.as_mut_ptr();
            // SAFETY: `c` holds exactly 16 f32; unaligned load and store.
            unsafe { _mm512_storeu_ps(p, exp16(_mm512_loadu_ps(p))) };
        }
        done
    }

    /// # Safety
    /// Needs AVX2 and FMA.
    #[cfg(test)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn exp_avx2(x: &mut [f32]) -> usize {
        let done = x.len() / 8 * 8;
        for c in x[..done].chunks_exact_mut(8) {
            let p = c.as_mut_ptr();
            // SAFETY: `c` holds exactly 8 f32; unaligned load and store.
            unsafe { _mm256_storeu_ps(p, exp8(_mm256_loadu_ps(p))) };
        }
        done
    }

    /// # Safety
    /// Needs AVX-512F, AVX2 and FMA; `u.len() >= g.len()`.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn swiglu_avx512(g: &mut [f32], u: &[f32]) -> usize {
        let done = g.len() / 16 * 16;
        let one = _mm512_set1_ps(1.0);
        let zero = _mm512_setzero_ps();
        for (cg, cu) in g[..done].chunks_exact_mut(16).zip(u.chunks_exact(16)) {
            let p = cg.as_mut_ptr();
            // SAFETY: `cg` and `cu` hold exactly 16 f32 each; unaligned
            // loads and store.
            unsafe {
                let x = _mm512_loadu_ps(p);
                let e = exp16(_mm512_sub_ps(zero, x));
                let s = _mm512_div_ps(x, _mm512_add_ps(one, e));
                _mm512_storeu_ps(p, _mm512_mul_ps(s, _mm512_loadu_ps(cu.as_ptr())));
            }
        }
        done
    }

    /// # Safety
    /// Needs AVX2 and FMA; `u.len() >= g.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn swiglu_avx2(g: &mut [f32], u: &[f32]) -> usize {
        let done = g.len() / 8 * 8;
        let one = _mm256_set1_ps(1.0);
        let zero = _mm256_setzero_ps();
        for (cg, cu) in g[..done].chunks_exact_mut(8).zip(u.chunks_exact(8)) {
            let p = cg.as_mut_ptr();
            // SAFETY: `cg` and `cu` hold exactly 8 f32 each; unaligned
            // loads and store.
            unsafe {
                let x = _mm256_loadu_ps(p);
                let e = exp8(_mm256_sub_ps(zero, x));
                let s = _mm256_div_ps(x, _mm256_add_ps(one, e));
                _mm256_storeu_ps(p, _mm256_mul_ps(s, _mm256_loadu_ps(cu.as_ptr())));
            }
        }
        done
    }

    /// # Safety
    /// Needs AVX-512F, AVX2 and FMA.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn softmax_avx512(s: &mut [f32], max: f32, sum: &mut f64) -> usize {
        let done = s.len() / 16 * 16;
        let m = _mm512_set1_ps(max);
        for c in s[..done].chunks_exact_mut(16) {
            let p = c.as_mut_ptr();
            // SAFETY: `c` holds exactly 16 f32; unaligned load and store.
            let v = unsafe {
                let v = exp16(_mm512_sub_ps(_mm512_loadu_ps(p), m));
                _mm512_storeu_ps(p, v);
                v
            };
            let lo = _mm512_castps512_ps256(v);
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
            *sum += f64::from(reduce16(lo, hi));
        }
        done
    }

    /// # Safety
    /// Needs AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn softmax_avx2(s: &mut [f32], max: f32, sum: &mut f64) -> usize {
        let done = s.len() / 16 * 16;
        let m = _mm256_set1_ps(max);
        for c in s[..done].chunks_exact_mut(16) {
            let p = c.as_mut_ptr();
            // SAFETY: `c` holds exactly 16 f32: two 8-lane halves at p and
            // p + 8; unaligned loads and stores.
            let (lo, hi) = unsafe {
                let lo = exp8(_mm256_sub_ps(_mm256_loadu_ps(p), m));
                let hi = exp8(_mm256_sub_ps(_mm256_loadu_ps(p.add(8)), m));
                _mm256_storeu_ps(p, lo);
                _mm256_storeu_ps(p.add(8), hi);
                (lo, hi)
            };
            *sum += f64::from(reduce16(lo, hi));
        }
        done
    }
}

/// Bit-identity of every vector path this CPU has (not only the one
/// `isa()` picks) against the scalar emulation, which `ops.rs` pins to
/// llama.cpp's AVX-512 output.
#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::super::{exp_ggml, reduce16};
    use super::x86;

    fn has_avx512() -> bool {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
    }

    fn has_avx2() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }

    /// Same bits, or both NaN (the payload of a NaN result is not pinned).
    fn same(a: f32, b: f32) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    /// Inputs: every 1021st f32 bit pattern (all exponents, subnormals,
    /// ±inf, NaNs), 2^14 consecutive patterns around each threshold
    /// (overflow ln(FLT_MAX), normal/subnormal/zero underflow, the
    /// |n| > 192 cut-off, 0, rounding ties of x·log2e), and special values.
    fn inputs() -> Vec<f32> {
        let mut v: Vec<f32> = (0..=u32::MAX / 1021)
            .map(|i| f32::from_bits(i * 1021))
            .collect();
        let centres = [
            88.722_84f32,
            88.0,
            -87.336_55,
            -103.278_93,
            -103.972_08,
            -104.5,
            133.08,
            -133.08,
            133.43,
            -133.43,
            0.0,
            0.346_573_6,
            -0.346_573_6,
            1.0,
        ];
        for c in centres {
            for sign in [1.0f32, -1.0] {
                let c = c * sign;
                let b = c.to_bits();
                for d in 0..8192u32 {
                    v.push(f32::from_bits(b.wrapping_add(d)));
                    v.push(f32::from_bits(b.wrapping_sub(d)));
                }
            }
        }
        v.extend([
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            f32::from_bits(1),
            f32::from_bits(0x8000_0001),
            -0.0,
        ]);
        v
    }

    fn check(name: &str, input: &[f32], got: &[f32], want: impl Fn(usize) -> f32) {
        let mut bad = 0usize;
        for (i, (&x, &g)) in input.iter().zip(got).enumerate() {
            let w = want(i);
            if !same(g, w) {
                if bad < 5 {
                    eprintln!("{name}: x={x:e} ({:#x}): {g:e} vs {w:e}", x.to_bits());
                }
                bad += 1;
            }
        }
        assert_eq!(bad, 0, "{name}: {bad} of {} differ", input.len());
    }

    #[test]
    fn exp_paths_match_emulation_bits() {
        let x = inputs();
        assert!(x.len() > 4_000_000);
        let want: Vec<f32> = x.iter().map(|&v| exp_ggml(v)).collect();
        let mut ran = 0;
        if has_avx512() {
            let mut y = x.clone();
            // SAFETY: AVX-512F, AVX2 and FMA were detected just above.
            let done = unsafe { x86::exp_avx512(&mut y) };
            assert_eq!(done, x.len() / 16 * 16);
            check("avx512 exp", &x[..done], &y, |i| want[i]);
            ran += 1;
        }
        if has_avx2() {
            let mut y = x.clone();
            // SAFETY: AVX2 and FMA were detected just above.
            let done = unsafe { x86::exp_avx2(&mut y) };
            assert_eq!(done, x.len() / 8 * 8);
            check("avx2 exp", &x[..done], &y, |i| want[i]);
            ran += 1;
        }
        // The dispatching public entry (with its scalar tail).
        let mut y = x.clone();
        super::super::exp_ggml_slice(&mut y);
        check("exp_ggml_slice", &x, &y, |i| want[i]);
        eprintln!("vector exp paths checked: {ran}");
    }

    #[test]
    fn swiglu_paths_match_emulation_bits() {
        let x = inputs();
        // Gate values: the inputs; up values: a rotation of them (so every
        // kind of product, incl. inf·0 and NaN, appears).
        let u: Vec<f32> = x
            .iter()
            .cycle()
            .skip(12_345)
            .take(x.len())
            .copied()
            .collect();
        let want: Vec<f32> = x
            .iter()
            .zip(&u)
            .map(|(&g, &u)| g / (1.0 + exp_ggml(0.0 - g)) * u)
            .collect();
        if has_avx512() {
            let mut y = x.clone();
            // SAFETY: features detected just above; u.len() == y.len().
            let done = unsafe { x86::swiglu_avx512(&mut y, &u) };
            check("avx512 swiglu", &x[..done], &y, |i| want[i]);
        }
        if has_avx2() {
            let mut y = x.clone();
            // SAFETY: features detected just above; u.len() == y.len().
            let done = unsafe { x86::swiglu_avx2(&mut y, &u) };
            check("avx2 swiglu", &x[..done], &y, |i| want[i]);
        }
        // Every tail length through the public entry.
        for n in 0..40 {
            let mut y = x[1000..1000 + n].to_vec();
            super::super::swiglu(&mut y, &u[1000..1000 + n]);
            check("swiglu tail", &x[1000..1000 + n], &y, |i| want[1000 + i]);
        }
    }

    /// The documented scalar algorithm of `softmax_ggml`'s first pass.
    fn softmax_pass_ref(s: &mut [f32], max: f32) -> f64 {
        let mut sum = 0f64;
        for chunk in s.chunks_mut(16) {
            let mut lanes = [0f32; 16];
            for (l, v) in lanes.iter_mut().zip(chunk.iter_mut()) {
                *v = exp_ggml(*v - max);
                *l = *v;
            }
            sum += f64::from(reduce16(&lanes));
        }
        sum
    }

    #[test]
    fn softmax_paths_match_emulation_bits() {
        // Score rows like attention's: moderate values, some -inf (masked),
        // lengths with and without a partial last chunk.
        let mut seed = 0x9e37_79b9u32;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for len in [16usize, 32, 48, 64, 256, 1024, 4096, 17, 100] {
            for _ in 0..8 {
                let row: Vec<f32> = (0..len)
                    .map(|_| {
                        let r = next();
                        if r % 13 == 0 {
                            f32::NEG_INFINITY
                        } else {
                            ((r >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 60.0
                        }
                    })
                    .collect();
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut want = row.clone();
                let whole = len / 16 * 16;
                let want_sum = softmax_pass_ref(&mut want[..whole], max);
                type Pass = unsafe fn(&mut [f32], f32, &mut f64) -> usize;
                let mut paths: Vec<(&str, Pass)> = Vec::new();
                if has_avx512() {
                    paths.push(("avx512", x86::softmax_avx512));
                }
                if has_avx2() {
                    paths.push(("avx2", x86::softmax_avx2));
                }
                for (name, f) in paths {
                    let mut got = row.clone();
                    let mut sum = 0f64;
                    // SAFETY: the path's features were detected above.
                    let done = unsafe { f(&mut got, max, &mut sum) };
                    assert_eq!(done, whole);
                    assert_eq!(sum.to_bits(), want_sum.to_bits(), "{name} sum, len {len}");
                    check(name, &row[..whole], &got, |i| want[i]);
                }
                // Whole public softmax against the scalar algorithm.
                let mut want = row.clone();
                let sum = softmax_pass_ref(&mut want, max);
                let inv = (1.0 / sum) as f32;
                want.iter_mut().for_each(|v| *v *= inv);
                let mut got = row.clone();
                super::super::softmax_ggml(&mut got);
                check("softmax_ggml", &row, &got, |i| want[i]);
            }
        }
    }
}
