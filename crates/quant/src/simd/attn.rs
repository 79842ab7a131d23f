//! Vector helpers for attention over an f16 KV cache, in ggml's summation
//! orders so that the results are the same bits as its f16 `mul_mat`
//! (products of two f16 values are exact in f32, so only the order of the
//! f32 additions matters; every product here is of f16-exact values).
//!
//! An order is given by its number of lanes: element `j` of a dot product
//! is accumulated into lane `j % lanes` in increasing `j`, then the lanes
//! are combined ([`reduce_lanes`]):
//! - 16 lanes: llamafile `tinyBLAS<16, __m512>` (sgemm.cpp), ggml's path
//!   for batches of two or more tokens: the 16 lanes by [`reduce16`].
//! - 64 lanes: vec.cpp `ggml_vec_dot_f16` (AVX-512: `GGML_F32_STEP` 64,
//!   four 16-lane accumulators), for one token: accumulators folded
//!   `(0 + 2) + (1 + 3)` lane by lane, then [`reduce16`].
//!
//! The AVX-512 versions run the same additions in the same order, lane
//! for lane; the scalar ones are the reference they are tested against.

#[cfg(target_arch = "x86_64")]
use super::{isa, Isa};
use half::f16;

/// Horizontal sum of 16 lanes in GCC's `_mm512_reduce_add_ps` order
/// (avx512fintrin.h `__MM512_REDUCE_OP`, which ggml's and llamafile's
/// AVX-512 reductions compile to): upper 8 + lower 8, then 4 + 4, then
/// lanes (0+2, 1+3), then the last pair.
pub fn reduce16(a: &[f32; 16]) -> f32 {
    let mut h = [0f32; 8];
    for (i, h) in h.iter_mut().enumerate() {
        *h = a[i + 8] + a[i];
    }
    let q = [h[4] + h[0], h[5] + h[1], h[6] + h[2], h[7] + h[3]];
    (q[0] + q[2]) + (q[1] + q[3])
}

/// Combine `lanes` (16 or 64) accumulators into the sum.
pub fn reduce_lanes(acc: &[f32]) -> f32 {
    let mut l = [0f32; 16];
    match acc.len() {
        16 => l.copy_from_slice(acc),
        64 => {
            for (i, l) in l.iter_mut().enumerate() {
                *l = (acc[i] + acc[32 + i]) + (acc[16 + i] + acc[48 + i]);
            }
        }
        n => panic!("no summation order with {n} lanes"),
    }
    reduce16(&l)
}

/// `Σ a[j]·b[j]` in the order of `lanes` (16 or 64).
pub fn dot_in_order(lanes: usize, a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let mut acc = [0f32; 64];
    for (ca, cb) in a.chunks(lanes).zip(b.chunks(lanes)) {
        for ((s, x), y) in acc.iter_mut().zip(ca).zip(cb) {
            *s += x * y;
        }
    }
    reduce_lanes(&acc[..lanes])
}

/// Attention scores: `out[j] = dot(q, k_j) · scale` in the order of
/// `lanes`, for the keys `k_j = keys[j·stride ..][.. q.len()]`, `j <
/// out.len()`. `q` holds f16-exact values.
pub fn scores_f16(
    lanes: usize,
    q: &[f32],
    keys: &[f16],
    stride: usize,
    scale: f32,
    out: &mut [f32],
) {
    let hd = q.len();
    if let Some(last) = out.len().checked_sub(1) {
        assert!(last * stride + hd <= keys.len(), "keys too short");
    }
    assert!(lanes == 16 || lanes == 64);
    #[cfg(target_arch = "x86_64")]
    if isa() >= Isa::Avx512 && hd.is_multiple_of(lanes) {
        // SAFETY: AVX-512 F was detected (isa() >= Avx512); every key read
        // is bounded by the assert above.
        return unsafe { x86::scores(lanes, q, keys, stride, scale, out) };
    }
    for (j, o) in out.iter_mut().enumerate() {
        let mut acc = [0f32; 64];
        for (i, (x, y)) in q.iter().zip(&keys[j * stride..][..hd]).enumerate() {
            acc[i % lanes] += x * y.to_f32();
        }
        *o = reduce_lanes(&acc[..lanes]) * scale;
    }
}

/// Attention scores over f32 keys: `out[j] = dot(q, k_j) · scale`, each
/// product fused into its lane (`fma`, as ggml's f32 `mul_mat` does:
/// tinyBLAS `madd` / `GGML_F32_VEC_FMA`), lanes as in [`scores_f16`].
pub fn scores_f32(
    lanes: usize,
    q: &[f32],
    keys: &[f32],
    stride: usize,
    scale: f32,
    out: &mut [f32],
) {
    let hd = q.len();
    if let Some(last) = out.len().checked_sub(1) {
        assert!(last * stride + hd <= keys.len(), "keys too short");
    }
    assert!(lanes == 16 || lanes == 64);
    #[cfg(target_arch = "x86_64")]
    if isa() >= Isa::Avx512 && hd.is_multiple_of(lanes) {
        // SAFETY: AVX-512 F was detected; key reads bounded above.
        return unsafe { x86::scores_f32(lanes, q, keys, stride, scale, out) };
    }
    for (j, o) in out.iter_mut().enumerate() {
        let mut acc = [0f32; 64];
        for (i, (x, y)) in q.iter().zip(&keys[j * stride..][..hd]).enumerate() {
            acc[i % lanes] = x.mul_add(*y, acc[i % lanes]);
        }
        *o = reduce_lanes(&acc[..lanes]) * scale;
    }
}

/// `y[i] = fma(alpha, x[i], y[i])`: one rounding, as ggml's f32 products.
pub fn axpy_f32(y: &mut [f32], alpha: f32, x: &[f32]) {
    assert_eq!(y.len(), x.len());
    #[cfg(target_arch = "x86_64")]
    if isa() >= Isa::Avx2 {
        // SAFETY: isa() >= Avx2 means AVX2 and FMA were detected.
        return unsafe { x86::axpy_f32(y, alpha, x) };
    }
    for (o, v) in y.iter_mut().zip(x) {
        *o = alpha.mul_add(*v, *o);
    }
}

/// `out[d] = reduce_lanes(acc[0][d], acc[1][d], …)`: the sums of `lanes`
/// (16 or 64) accumulator rows of `out.len()` values each (`acc` is
/// `[lanes][out.len()]`).
pub fn reduce_rows(lanes: usize, acc: &[f32], out: &mut [f32]) {
    let n = out.len();
    assert!(lanes == 16 || lanes == 64);
    assert_eq!(acc.len(), lanes * n);
    #[cfg(target_arch = "x86_64")]
    if isa() >= Isa::Avx512 && (lanes == 16 || lanes == 64) && n.is_multiple_of(16) {
        // SAFETY: AVX-512 F was detected; `acc` holds `lanes` rows of `n`.
        return unsafe { x86::reduce_rows(lanes, acc, out) };
    }
    let mut l = [0f32; 64];
    for (d, o) in out.iter_mut().enumerate() {
        for (k, l) in l[..lanes].iter_mut().enumerate() {
            *l = acc[k * n + d];
        }
        *o = reduce_lanes(&l[..lanes]);
    }
}

/// `y[i] += alpha * x[i]` with `x` in f16.
pub fn axpy_f16(y: &mut [f32], alpha: f32, x: &[f16]) {
    assert_eq!(y.len(), x.len());
    #[cfg(target_arch = "x86_64")]
    if isa() >= Isa::Avx512 {
        // SAFETY: isa() >= Avx512 means AVX-512 F (and AVX2/F16C) were detected.
        return unsafe { x86::axpy512(y, alpha, x) };
    }
    #[cfg(target_arch = "x86_64")]
    if isa() >= Isa::Avx2 {
        // SAFETY: isa() >= Avx2 means AVX2, FMA and F16C were detected.
        return unsafe { x86::axpy(y, alpha, x) };
    }
    for (o, v) in y.iter_mut().zip(x) {
        *o += alpha * v.to_f32();
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use half::f16;
    use std::arch::x86_64::*;

    /// # Safety
    /// Needs AVX2, FMA and F16C; `y.len() == x.len()`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn axpy(y: &mut [f32], alpha: f32, x: &[f16]) {
        let n = y.len();
        let va = _mm256_set1_ps(alpha);
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: i + 8 <= n = y.len() = x.len(): loads and the store
            // stay in bounds; unaligned accesses.
            unsafe {
                let vx = _mm256_cvtph_ps(_mm_loadu_si128(x.as_ptr().add(i).cast()));
                let vy = _mm256_loadu_ps(y.as_ptr().add(i));
                _mm256_storeu_ps(y.as_mut_ptr().add(i), _mm256_fmadd_ps(va, vx, vy));
            }
            i += 8;
        }
        for j in i..n {
            y[j] += alpha * x[j].to_f32();
        }
    }

    /// # Safety
    /// Needs AVX-512 F, AVX2, FMA and F16C; `y.len() == x.len()`.
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    pub(super) unsafe fn axpy512(y: &mut [f32], alpha: f32, x: &[f16]) {
        let n = y.len();
        let va = _mm512_set1_ps(alpha);
        let mut i = 0;
        while i + 16 <= n {
            // SAFETY: i + 16 <= n = y.len() = x.len().
            unsafe {
                let vx = _mm512_cvtph_ps(_mm256_loadu_si256(x.as_ptr().add(i).cast()));
                let vy = _mm512_loadu_ps(y.as_ptr().add(i));
                _mm512_storeu_ps(y.as_mut_ptr().add(i), _mm512_fmadd_ps(va, vx, vy));
            }
            i += 16;
        }
        // SAFETY: the features are the caller's; the tail is in bounds.
        unsafe { axpy(&mut y[i..], alpha, &x[i..]) }
    }

    /// [`super::reduce16`] of the 16 lanes of `v`: the same additions
    /// (float addition commutes, so `a[i] + a[i + 8]` is `a[i + 8] + a[i]`).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn reduce16(v: __m512) -> f32 {
        let h = _mm256_add_ps(
            _mm512_castps512_ps256(v),
            _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v))),
        );
        let q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
        // [q0 + q2, q1 + q3], then their sum.
        let r = _mm_add_ps(q, _mm_movehl_ps(q, q));
        _mm_cvtss_f32(_mm_add_ss(r, _mm_movehdup_ps(r)))
    }

    /// # Safety
    /// AVX-512 F; `q.len()` a multiple of `lanes` (16 or 64); every key
    /// `keys[j·stride..][..q.len()]`, `j < out.len()`, in bounds.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn scores(
        lanes: usize,
        q: &[f32],
        keys: &[f16],
        stride: usize,
        scale: f32,
        out: &mut [f32],
    ) {
        let hd = q.len();
        let (qp, kp) = (q.as_ptr(), keys.as_ptr());
        for (j, o) in out.iter_mut().enumerate() {
            // SAFETY: key `j` is in bounds (caller); `q` has `hd` values.
            let k = unsafe { kp.add(j * stride) };
            let load = |i: usize| -> (__m512, __m512) {
                // SAFETY: i + 16 <= hd for both rows.
                unsafe {
                    (
                        _mm512_loadu_ps(qp.add(i)),
                        _mm512_cvtph_ps(_mm256_loadu_si256(k.add(i).cast())),
                    )
                }
            };
            let sum = if lanes == 16 {
                let mut a = _mm512_setzero_ps();
                for i in (0..hd).step_by(16) {
                    let (x, y) = load(i);
                    a = _mm512_fmadd_ps(x, y, a);
                }
                a
            } else {
                let mut a = [_mm512_setzero_ps(); 4];
                for i in (0..hd).step_by(64) {
                    for (r, a) in a.iter_mut().enumerate() {
                        let (x, y) = load(i + 16 * r);
                        *a = _mm512_fmadd_ps(x, y, *a);
                    }
                }
                _mm512_add_ps(_mm512_add_ps(a[0], a[2]), _mm512_add_ps(a[1], a[3]))
            };
            *o = reduce16(sum) * scale;
        }
    }

    /// # Safety
    /// Needs AVX2 and FMA; `y.len() == x.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn axpy_f32(y: &mut [f32], alpha: f32, x: &[f32]) {
        let n = y.len();
        let va = _mm256_set1_ps(alpha);
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: i + 8 <= n = y.len() = x.len().
            unsafe {
                let vx = _mm256_loadu_ps(x.as_ptr().add(i));
                let vy = _mm256_loadu_ps(y.as_ptr().add(i));
                _mm256_storeu_ps(y.as_mut_ptr().add(i), _mm256_fmadd_ps(va, vx, vy));
            }
            i += 8;
        }
        for j in i..n {
            y[j] = alpha.mul_add(x[j], y[j]);
        }
    }

    /// # Safety
    /// AVX-512 F; `q.len()` a multiple of `lanes` (16 or 64); every key
    /// `keys[j·stride..][..q.len()]`, `j < out.len()`, in bounds.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn scores_f32(
        lanes: usize,
        q: &[f32],
        keys: &[f32],
        stride: usize,
        scale: f32,
        out: &mut [f32],
    ) {
        let hd = q.len();
        let (qp, kp) = (q.as_ptr(), keys.as_ptr());
        for (j, o) in out.iter_mut().enumerate() {
            // SAFETY: key `j` is in bounds (caller).
            let k = unsafe { kp.add(j * stride) };
            // SAFETY: i + 16 <= hd for both rows.
            let load =
                |i: usize| unsafe { (_mm512_loadu_ps(qp.add(i)), _mm512_loadu_ps(k.add(i))) };
            let mut a = [_mm512_setzero_ps(); 4];
            let per = lanes / 16;
            for i in (0..hd).step_by(lanes) {
                for (r, a) in a[..per].iter_mut().enumerate() {
                    let (x, y) = load(i + 16 * r);
                    *a = _mm512_fmadd_ps(x, y, *a);
                }
            }
            let sum = if lanes == 16 {
                a[0]
            } else {
                _mm512_add_ps(_mm512_add_ps(a[0], a[2]), _mm512_add_ps(a[1], a[3]))
            };
            *o = reduce16(sum) * scale;
        }
    }

    /// # Safety
    /// AVX-512 F; `lanes` 16 or 64, `out.len()` a multiple of 16, `acc`
    /// `lanes` rows of `out.len()`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn reduce_rows(lanes: usize, acc: &[f32], out: &mut [f32]) {
        let n = out.len();
        let ap = acc.as_ptr();
        for d in (0..n).step_by(16) {
            // SAFETY: row `k < lanes`, values `d..d + 16 <= n`.
            let row = |k: usize| unsafe { _mm512_loadu_ps(ap.add(k * n + d)) };
            let mut l = [_mm512_setzero_ps(); 16];
            if lanes == 16 {
                for (k, l) in l.iter_mut().enumerate() {
                    *l = row(k);
                }
            } else {
                for (i, l) in l.iter_mut().enumerate() {
                    *l = _mm512_add_ps(
                        _mm512_add_ps(row(i), row(32 + i)),
                        _mm512_add_ps(row(16 + i), row(48 + i)),
                    );
                }
            }
            // reduce16 across rows, 16 outputs at once.
            let h: [__m512; 8] = std::array::from_fn(|i| _mm512_add_ps(l[i + 8], l[i]));
            let q: [__m512; 4] = std::array::from_fn(|i| _mm512_add_ps(h[i + 4], h[i]));
            let s = _mm512_add_ps(_mm512_add_ps(q[0], q[2]), _mm512_add_ps(q[1], q[3]));
            // SAFETY: d + 16 <= n.
            unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(d), s) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: u32) -> impl FnMut() -> f32 {
        let mut s = seed;
        move || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        }
    }

    /// Bit-exact on every length (tails of 16 and 8 included): `alpha` and
    /// `x` are f16 values, so `alpha·x` is exact and one rounding remains.
    #[test]
    fn axpy_matches_scalar_on_all_lengths() {
        let mut r = rng(7);
        let alpha = f16::from_f32(0.3).to_f32();
        for n in 0..70 {
            let b: Vec<f16> = (0..n).map(|_| f16::from_f32(r())).collect();
            let mut y: Vec<f32> = (0..n).map(|_| r()).collect();
            let want: Vec<f32> = y
                .iter()
                .zip(&b)
                .map(|(y, x)| y + alpha * x.to_f32())
                .collect();
            axpy_f16(&mut y, alpha, &b);
            for (g, w) in y.iter().zip(&want) {
                assert_eq!(g.to_bits(), w.to_bits(), "n={n}");
            }
        }
    }

    /// The vector scores are the reference order's bits, for both orders,
    /// head sizes 64 and 128 and a stride with an offset (keys of one kv
    /// head inside rows of several). Values span magnitudes so that a
    /// different addition order changes low bits.
    #[test]
    fn scores_are_the_reference_orders_bits() {
        let mut r = rng(11);
        for lanes in [16, 64] {
            for hd in [64, 128] {
                let (n, stride, off) = (37, 3 * hd, hd);
                let q: Vec<f32> = (0..hd)
                    .map(|i| f16::from_f32(r() * (1 << (i % 9)) as f32).to_f32())
                    .collect();
                let keys: Vec<f16> = (0..n * stride)
                    .map(|i| f16::from_f32(r() * (1 << (i % 7)) as f32))
                    .collect();
                let mut got = vec![0f32; n];
                scores_f16(lanes, &q, &keys[off..], stride, 0.125, &mut got);
                for (j, g) in got.iter().enumerate() {
                    let k: Vec<f32> = keys[off + j * stride..][..hd]
                        .iter()
                        .map(|v| v.to_f32())
                        .collect();
                    let want = dot_in_order(lanes, &q, &k) * 0.125;
                    assert_eq!(g.to_bits(), want.to_bits(), "lanes {lanes} hd {hd} key {j}");
                }
            }
        }
    }

    /// f32 keys: the vector path is the scalar fused order's bits; values
    /// are not f16-exact, so fused and unfused products would differ.
    #[test]
    fn f32_scores_and_axpy_are_the_fused_orders_bits() {
        let mut r = rng(13);
        for lanes in [16, 64] {
            for hd in [64, 128] {
                let (n, stride) = (23, 2 * hd);
                let q: Vec<f32> = (0..hd).map(|i| r() * (1 << (i % 9)) as f32).collect();
                let keys: Vec<f32> = (0..n * stride)
                    .map(|i| r() * (1 << (i % 7)) as f32)
                    .collect();
                let mut got = vec![0f32; n];
                scores_f32(lanes, &q, &keys[hd..], stride, 0.125, &mut got);
                for (j, g) in got.iter().enumerate() {
                    let mut acc = [0f32; 64];
                    for (i, (x, y)) in q.iter().zip(&keys[hd + j * stride..][..hd]).enumerate() {
                        acc[i % lanes] = x.mul_add(*y, acc[i % lanes]);
                    }
                    let want = reduce_lanes(&acc[..lanes]) * 0.125;
                    assert_eq!(g.to_bits(), want.to_bits(), "lanes {lanes} hd {hd} key {j}");
                }
            }
        }
        for n in 0..40 {
            let x: Vec<f32> = (0..n).map(|_| r()).collect();
            let mut y: Vec<f32> = (0..n).map(|_| r()).collect();
            let want: Vec<f32> = y
                .iter()
                .zip(&x)
                .map(|(y, x)| 0.3f32.mul_add(*x, *y))
                .collect();
            axpy_f32(&mut y, 0.3, &x);
            for (g, w) in y.iter().zip(&want) {
                assert_eq!(g.to_bits(), w.to_bits(), "n={n}");
            }
        }
    }

    #[test]
    fn reduce_rows_is_the_reference_orders_bits() {
        let mut r = rng(5);
        for lanes in [16, 64] {
            for n in [16, 64, 128] {
                let acc: Vec<f32> = (0..lanes * n)
                    .map(|i| r() * (1 << (i % 11)) as f32)
                    .collect();
                let mut got = vec![0f32; n];
                reduce_rows(lanes, &acc, &mut got);
                for (d, g) in got.iter().enumerate() {
                    let l: Vec<f32> = (0..lanes).map(|k| acc[k * n + d]).collect();
                    let want = reduce_lanes(&l);
                    assert_eq!(g.to_bits(), want.to_bits(), "lanes {lanes} n {n} d {d}");
                }
            }
        }
    }
}
