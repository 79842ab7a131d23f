//! Blockwise normalized fast Walsh–Hadamard transform (Sylvester order,
//! `H[r][c] = (-1)^popcount(r & c) / sqrt(B)`), in place: the activation
//! side of the `prism.hadamard` weight fold (`crate::hadamard`).
//!
//! Every path computes the same butterfly network: stage `h = 1, 2, 4, …,
//! B/2` turns the pair `(a, b)` at distance `h` into `(a + b, a - b)`, and
//! the last stage's results are multiplied by the f32 `1/sqrt(B)`. Each
//! output is therefore the same sequence of f32 additions whatever the
//! vector width or the order the stages are scheduled in, so the AVX-512,
//! AVX2 and scalar paths give identical bits (tested below).

#[cfg(target_arch = "x86_64")]
use shohin_quant::simd::{isa, Isa};

/// `1/sqrt(block)` rounded once to f32 (exact for powers of four).
pub(crate) fn scale_for(block: usize) -> f32 {
    (1.0 / (block as f64).sqrt()) as f32
}

/// `x ← H_B·x` for each consecutive block of `block` values of `x`.
/// Panics unless `block` is a power of two dividing `x.len()`.
pub fn fwht_blocks(x: &mut [f32], block: usize) {
    fwht_blocks_signed(x, block, None);
}

/// `x ← H_B·(s ⊙ x)` blockwise: the sign multiply (exact, ±1) fused into
/// the first butterfly pass. Panics unless `block` is a power of two
/// dividing `x.len()` and `signs`, if given, has `x.len()` values.
pub fn fwht_blocks_signed(x: &mut [f32], block: usize, signs: Option<&[f32]>) {
    assert!(
        block.is_power_of_two() && x.len().is_multiple_of(block),
        "fwht_blocks: block {block} must be a power of two dividing {}",
        x.len()
    );
    assert!(signs.is_none_or(|s| s.len() == x.len()));
    #[cfg(target_arch = "x86_64")]
    {
        let level = isa();
        if level >= Isa::Avx512 && block >= 16 {
            // SAFETY: isa() >= Avx512 means AVX-512F (and AVX2, FMA) were
            // detected; block is a power of two >= 16 dividing x.len(), and
            // signs has x.len() values (asserted above).
            unsafe { x86::fwht_avx512(x, block, signs) };
            return;
        }
        if level >= Isa::Avx2 && block >= 8 {
            // SAFETY: AVX2 and FMA were detected; block is a power of two
            // >= 8 dividing x.len(); signs has x.len() values.
            unsafe { x86::fwht_avx2(x, block, signs) };
            return;
        }
    }
    fwht_blocks_scalar(x, block, signs);
}

/// The portable path of [`fwht_blocks_signed`] (same bits).
pub fn fwht_blocks_scalar(x: &mut [f32], block: usize, signs: Option<&[f32]>) {
    assert!(block.is_power_of_two() && x.len().is_multiple_of(block));
    if let Some(s) = signs {
        assert_eq!(s.len(), x.len());
        for (v, &s) in x.iter_mut().zip(s) {
            *v *= s;
        }
    }
    let scale = scale_for(block);
    for blk in x.chunks_exact_mut(block) {
        let mut h = 1;
        while h < block {
            for pair in blk.chunks_exact_mut(2 * h) {
                let (a, b) = pair.split_at_mut(h);
                for (a, b) in a.iter_mut().zip(b) {
                    (*a, *b) = (*a + *b, *a - *b);
                }
            }
            h *= 2;
        }
        if block > 1 {
            for v in blk.iter_mut() {
                *v *= scale;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use super::scale_for;
    use std::arch::x86_64::*;

    /// Stages 1, 2 and 4 inside one 8-lane vector. For the pair (a, b) at
    /// lanes (i, i + h): `s = x + swapped` holds `a + b` in lane i (IEEE
    /// addition commutes exactly), `d = swapped - x` holds `a - b` in lane
    /// i + h; the blend keeps each where it belongs.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn intra8(x: __m256) -> __m256 {
        let sw = _mm256_permute_ps::<0b10_11_00_01>(x);
        let x = _mm256_blend_ps::<0b1010_1010>(_mm256_add_ps(x, sw), _mm256_sub_ps(sw, x));
        let sw = _mm256_permute_ps::<0b01_00_11_10>(x);
        let x = _mm256_blend_ps::<0b1100_1100>(_mm256_add_ps(x, sw), _mm256_sub_ps(sw, x));
        let sw = _mm256_permute2f128_ps::<1>(x, x);
        _mm256_blend_ps::<0b1111_0000>(_mm256_add_ps(x, sw), _mm256_sub_ps(sw, x))
    }

    /// Stages 1, 2, 4 and 8 inside one 16-lane vector (as [`intra8`]).
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    fn intra16(x: __m512) -> __m512 {
        let sw = _mm512_permute_ps::<0b10_11_00_01>(x);
        let x = _mm512_mask_blend_ps(0xAAAA, _mm512_add_ps(x, sw), _mm512_sub_ps(sw, x));
        let sw = _mm512_permute_ps::<0b01_00_11_10>(x);
        let x = _mm512_mask_blend_ps(0xCCCC, _mm512_add_ps(x, sw), _mm512_sub_ps(sw, x));
        let sw = _mm512_shuffle_f32x4::<0b10_11_00_01>(x, x);
        let x = _mm512_mask_blend_ps(0xF0F0, _mm512_add_ps(x, sw), _mm512_sub_ps(sw, x));
        let sw = _mm512_shuffle_f32x4::<0b01_00_11_10>(x, x);
        _mm512_mask_blend_ps(0xFF00, _mm512_add_ps(x, sw), _mm512_sub_ps(sw, x))
    }

    /// One generic macro body for both widths. The first pass loads
    /// (times the signs), runs the in-register stages on four vectors and
    /// then stages `LANES` and `2·LANES` across them (radix 4); the later
    /// stages go two at a time (radix 4: half the passes over memory), a
    /// last single stage when their number is odd, and the scale is folded
    /// into whichever stage is last.
    macro_rules! fwht_body {
        ($x:ident, $block:ident, $signs:ident, $lanes:expr, $load:ident, $store:ident,
         $add:ident, $sub:ident, $mul:ident, $set1:ident, $intra:ident) => {{
            let lanes: usize = $lanes;
            let scale = scale_for($block);
            let sc = $set1(scale);
            for (bi, blk) in $x.chunks_exact_mut($block).enumerate() {
                let n = blk.len();
                let p = blk.as_mut_ptr();
                let sp = $signs.map(|s| s[bi * $block..].as_ptr());
                let lds = |off: usize| {
                    // SAFETY: every call has `off + lanes <= n`, and the
                    // sign slice has at least n values from `sp`.
                    unsafe {
                        let v = $load(p.add(off));
                        match sp {
                            Some(s) => $mul(v, $load(s.add(off))),
                            None => v,
                        }
                    }
                };
                let mut h;
                if n >= 4 * lanes {
                    let last = n == 4 * lanes;
                    for j in (0..n).step_by(4 * lanes) {
                        let a = $intra(lds(j));
                        let b = $intra(lds(j + lanes));
                        let c = $intra(lds(j + 2 * lanes));
                        let d = $intra(lds(j + 3 * lanes));
                        let (a1, b1) = ($add(a, b), $sub(a, b));
                        let (c1, d1) = ($add(c, d), $sub(c, d));
                        let mut a2 = $add(a1, c1);
                        let mut c2 = $sub(a1, c1);
                        let mut b2 = $add(b1, d1);
                        let mut d2 = $sub(b1, d1);
                        if last {
                            a2 = $mul(a2, sc);
                            b2 = $mul(b2, sc);
                            c2 = $mul(c2, sc);
                            d2 = $mul(d2, sc);
                        }
                        // SAFETY: j + 4·lanes <= n.
                        unsafe {
                            $store(p.add(j), a2);
                            $store(p.add(j + lanes), b2);
                            $store(p.add(j + 2 * lanes), c2);
                            $store(p.add(j + 3 * lanes), d2);
                        }
                    }
                    h = 4 * lanes;
                } else if n == 2 * lanes {
                    let a = $intra(lds(0));
                    let b = $intra(lds(lanes));
                    // SAFETY: 2·lanes = n.
                    unsafe {
                        $store(p, $mul($add(a, b), sc));
                        $store(p.add(lanes), $mul($sub(a, b), sc));
                    }
                    h = n;
                } else {
                    // SAFETY: lanes = n.
                    unsafe { $store(p, $mul($intra(lds(0)), sc)) };
                    h = n;
                }
                while h < n {
                    if 4 * h <= n {
                        let last = 4 * h == n;
                        for base in (0..n).step_by(4 * h) {
                            for j in (base..base + h).step_by(lanes) {
                                // SAFETY: j + 3h + lanes <= base + 4h <= n.
                                unsafe {
                                    let a = $load(p.add(j));
                                    let b = $load(p.add(j + h));
                                    let c = $load(p.add(j + 2 * h));
                                    let d = $load(p.add(j + 3 * h));
                                    let (a1, b1) = ($add(a, b), $sub(a, b));
                                    let (c1, d1) = ($add(c, d), $sub(c, d));
                                    let mut a2 = $add(a1, c1);
                                    let mut c2 = $sub(a1, c1);
                                    let mut b2 = $add(b1, d1);
                                    let mut d2 = $sub(b1, d1);
                                    if last {
                                        a2 = $mul(a2, sc);
                                        b2 = $mul(b2, sc);
                                        c2 = $mul(c2, sc);
                                        d2 = $mul(d2, sc);
                                    }
                                    $store(p.add(j), a2);
                                    $store(p.add(j + h), b2);
                                    $store(p.add(j + 2 * h), c2);
                                    $store(p.add(j + 3 * h), d2);
                                }
                            }
                        }
                        h *= 4;
                    } else {
                        // 2h == n: the last stage, alone.
                        for j in (0..h).step_by(lanes) {
                            // SAFETY: j + h + lanes <= 2h = n.
                            unsafe {
                                let a = $load(p.add(j));
                                let b = $load(p.add(j + h));
                                $store(p.add(j), $mul($add(a, b), sc));
                                $store(p.add(j + h), $mul($sub(a, b), sc));
                            }
                        }
                        h *= 2;
                    }
                }
            }
        }};
    }

    /// # Safety
    /// Needs AVX2 and FMA; `block` a power of two >= 8 dividing `x.len()`;
    /// `signs`, if given, `x.len()` values.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn fwht_avx2(x: &mut [f32], block: usize, signs: Option<&[f32]>) {
        debug_assert!(block >= 8 && block.is_power_of_two() && x.len().is_multiple_of(block));
        fwht_body!(
            x,
            block,
            signs,
            8,
            _mm256_loadu_ps,
            _mm256_storeu_ps,
            _mm256_add_ps,
            _mm256_sub_ps,
            _mm256_mul_ps,
            _mm256_set1_ps,
            intra8
        );
    }

    /// # Safety
    /// Needs AVX-512F, AVX2 and FMA; `block` a power of two >= 16 dividing
    /// `x.len()`; `signs`, if given, `x.len()` values.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(crate) unsafe fn fwht_avx512(x: &mut [f32], block: usize, signs: Option<&[f32]>) {
        debug_assert!(block >= 16 && block.is_power_of_two() && x.len().is_multiple_of(block));
        fwht_body!(
            x,
            block,
            signs,
            16,
            _mm512_loadu_ps,
            _mm512_storeu_ps,
            _mm512_add_ps,
            _mm512_sub_ps,
            _mm512_mul_ps,
            _mm512_set1_ps,
            intra16
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 * 8.0 - 4.0
            })
            .collect()
    }

    /// Every vector path this CPU has gives the scalar path's bits, for
    /// every block size it handles and several blocks per call.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vector_paths_match_scalar_bits() {
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        let avx512 = avx2 && is_x86_feature_detected!("avx512f");
        for lb in 3..=13 {
            let block = 1usize << lb;
            let x = data(block * 3, lb as u32);
            let mut want = x.clone();
            fwht_blocks_scalar(&mut want, block, None);
            if avx2 {
                let mut got = x.clone();
                // SAFETY: AVX2 and FMA detected; block >= 8 divides the length.
                unsafe { x86::fwht_avx2(&mut got, block, None) };
                assert!(
                    got.iter()
                        .zip(&want)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "avx2 block {block}"
                );
            }
            if avx512 && block >= 16 {
                let mut got = x.clone();
                // SAFETY: AVX-512F, AVX2, FMA detected; block >= 16 divides the length.
                unsafe { x86::fwht_avx512(&mut got, block, None) };
                assert!(
                    got.iter()
                        .zip(&want)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "avx512 block {block}"
                );
            }
            let mut got = x.clone();
            fwht_blocks(&mut got, block);
            assert!(got
                .iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }

    /// The same network as `ops::hadamard` (the q8_0 KV-cache rotation),
    /// which is tested against ggml's matrix: equal up to the scale's
    /// rounding (identical where 1/sqrt(B) is exact).
    #[test]
    fn matches_the_kv_cache_rotation() {
        for block in [64usize, 256, 1024] {
            let x = data(block, 7);
            let mut a = x.clone();
            let mut b = x;
            fwht_blocks(&mut a, block);
            super::super::hadamard(&mut b);
            assert!(a.iter().zip(&b).all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }
}
