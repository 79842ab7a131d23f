//! The SIMD kernels of the 1-bit and ternary formats (`Q1_0`, `Q2_0`,
//! `Q2_0` g128, `PQ2_0`, `PTQ1_0`, `TQ1_0`, `TQ2_0`) at every instruction-set level
//! this CPU supports, against the scalar references and against an `f64`
//! dot product of the dequantized operands.
//!
//! Exactness: the kernels form every integer block sum exactly. The `TQ*`
//! kernels scale it with the same `f32` operations as the reference and
//! add the weight-block terms to the row total in the same order, so their
//! result must be the scalar reference's **bit for bit** (modulo the sign
//! of a zero, which the comparison ignores: `+0.0 == -0.0`). The kernels
//! against `Q8_0R` activations (`Q1_0`, `Q2_0`, g128, `PQ2_0`) form the
//! same per-block products `d_a·sumi` but sum lane-wise: they must agree
//! with the reference within `1e-6·M`, `M = Σ_blocks |d_w·d_a·sumi|` (a
//! few ε = 2⁻²³ per term of the two summation orders), and exactly when
//! every step is exact. Against the exact `f64` dot of the dequantized
//! values (an independent reference) the `f32` roundings add up to at most
//! `8e-6·M`, far below what a wrong code, bit, lane or block would cost.
//!
//! Data: weights quantized from random floats and fully random bytes (code
//! 3 for the 2-bit formats, bytes above 242 for `TQ1_0`; the scales are set
//! to finite f16 values of both signs); activations quantized from random
//! floats and raw random quants including the extremes -128 and 127 (with
//! consistent `Q8_K` / `Q8_0R` block sums, which the kernels rely on);
//! 1..=9 weight blocks and rows of several kernel groups (16, 17, 31, 40
//! blocks); operands placed at odd offsets in larger buffers.
//! `vec_dot_multi` is checked bit for bit against `vec_dot` row by row.

mod ternary_support;

use half::f16;
use shohin_quant::simd::{kernels_for, supported, Isa};
use shohin_quant::{dequantize_row, scalar_kernels, GgmlType, Kernels};
use ternary_support::{q8_0r_from_parts, set_q8_0r_scale};

const FORMATS: [GgmlType; 7] = [
    GgmlType::Q1_0,
    GgmlType::Q2_0,
    GgmlType::Q2_0G128,
    GgmlType::PQ2_0,
    GgmlType::PTQ1_0,
    GgmlType::TQ1_0,
    GgmlType::TQ2_0,
];

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }
    /// A quant: the extremes -128, -127 and 127 a quarter of the time.
    fn quant(&mut self) -> i8 {
        match self.below(8) {
            0 => -128,
            1 => 127,
            _ => self.byte() as i8,
        }
    }
}

/// The levels to test: every SIMD level up to what the CPU has.
fn levels() -> Vec<Isa> {
    [Isa::Neon, Isa::Avx2, Isa::Avx512]
        .into_iter()
        .filter(|&l| supported(l))
        .collect()
}

/// Offset of the scale field in a weight block.
fn d_at(ty: GgmlType) -> usize {
    match ty {
        GgmlType::TQ1_0 | GgmlType::TQ2_0 | GgmlType::PTQ1_0 => ty.type_size() - 2,
        _ => 0,
    }
}

/// Weights for `nblk` blocks, one of four kinds.
fn weights(rng: &mut Rng, ty: GgmlType, nblk: usize, kind: usize) -> Vec<u8> {
    let n = nblk * ty.block_size();
    let ts = ty.type_size();
    let mut w = vec![0u8; nblk * ts];
    match kind {
        // quantized from random floats (zeros included)
        0 | 1 => {
            let x: Vec<f32> = (0..n)
                .map(|_| {
                    let v = rng.uniform(-1.0, 1.0);
                    if kind == 1 && v.abs() < 0.3 {
                        0.0
                    } else {
                        v
                    }
                })
                .collect();
            (scalar_kernels(ty).quantize)(&x, &mut w);
        }
        // random payload bytes (every code / byte value), finite scales
        _ => {
            w.iter_mut().for_each(|b| *b = rng.byte());
            for blk in w.chunks_exact_mut(ts) {
                let d = if kind == 2 {
                    rng.uniform(-2.0, 2.0)
                } else {
                    // a scale that makes every product exact: 2^k
                    [0.5, 1.0, 2.0, -4.0][rng.below(4) as usize]
                };
                let at = d_at(ty);
                blk[at..at + 2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
            }
        }
    }
    w
}

/// Activations for `n` values in `vt` (Q8_0R or Q8_K), one of three kinds.
fn activations(rng: &mut Rng, vt: GgmlType, n: usize, kind: usize) -> Vec<u8> {
    let mut a = vec![0u8; n / vt.block_size() * vt.type_size()];
    if kind == 0 {
        let x: Vec<f32> = (0..n).map(|_| rng.uniform(-3.0, 3.0)).collect();
        (scalar_kernels(vt).quantize)(&x, &mut a);
        return a;
    }
    let quant = |rng: &mut Rng| match kind {
        1 => rng.quant(),
        // all extreme: the largest possible magnitudes
        _ => [-128, 127][rng.below(2) as usize],
    };
    if vt == GgmlType::Q8_0R {
        let q: Vec<i8> = (0..n).map(|_| quant(rng)).collect();
        // f16 values, as the quantizer writes them
        let d: Vec<f32> = (0..n / 32)
            .map(|_| f16::from_f32(rng.uniform(-0.05, 0.05)).to_f32())
            .collect();
        return q8_0r_from_parts(&q, &d);
    }
    for blk in a.chunks_exact_mut(vt.type_size()) {
        let q: Vec<i8> = (0..vt.block_size()).map(|_| quant(rng)).collect();
        blk[..4].copy_from_slice(&rng.uniform(-0.05, 0.05).to_le_bytes());
        for (b, &v) in blk[4..260].iter_mut().zip(&q) {
            *b = v as u8;
        }
        for (g, s) in q.chunks_exact(16).enumerate() {
            let sum: i16 = s.iter().map(|&v| i16::from(v)).sum();
            blk[260 + 2 * g..262 + 2 * g].copy_from_slice(&sum.to_le_bytes());
        }
    }
    a
}

/// `(exact, M)`: the f64 dot of the dequantized operands and
/// `Σ_blocks |Σ w·a|` over activation blocks.
fn reference(ty: GgmlType, w: &[u8], a: &[u8], n: usize) -> (f64, f64) {
    let vt = ty.vec_dot_type();
    let mut wv = vec![0f32; n];
    let mut av = vec![0f32; n];
    dequantize_row(ty, w, &mut wv).unwrap();
    dequantize_row(vt, a, &mut av).unwrap();
    let mut exact = 0f64;
    let mut mag = 0f64;
    for (wb, ab) in wv
        .chunks_exact(vt.block_size())
        .zip(av.chunks_exact(vt.block_size()))
    {
        let s: f64 = wb
            .iter()
            .zip(ab)
            .map(|(&x, &y)| f64::from(x) * f64::from(y))
            .sum();
        exact += s;
        mag += s.abs();
    }
    (exact, mag)
}

/// A copy of `b` at byte offset `off` of a larger buffer.
fn at_offset(b: &[u8], off: usize) -> Vec<u8> {
    let mut v = vec![0xa5u8; off + b.len() + 3];
    v[off..off + b.len()].copy_from_slice(b);
    v
}

/// Whether a SIMD result `got` is acceptable against the scalar `want`:
/// bit for bit for the `Q8_K` kernels, within `1e-6·M` for the `Q8_0R`
/// ones (their lane-wise summation order).
fn agrees(ty: GgmlType, got: f32, want: f32, mag: f64) -> bool {
    if got == want || (got.is_nan() && want.is_nan()) {
        return true;
    }
    ty.vec_dot_type() == GgmlType::Q8_0R && (f64::from(got) - f64::from(want)).abs() <= 1e-6 * mag
}

fn check_dot(ty: GgmlType, level: Isa, k: &Kernels, w: &[u8], a: &[u8], n: usize, what: &str) {
    let s = scalar_kernels(ty);
    let (exact, mag) = reference(ty, w, a, n);
    // unaligned sub-slices
    let (wo, ao) = (at_offset(w, 1 + n % 7), at_offset(a, 3 + n % 5));
    let ws = &wo[1 + n % 7..1 + n % 7 + w.len()];
    let as_ = &ao[3 + n % 5..3 + n % 5 + a.len()];
    let got = (k.vec_dot)(ws, as_);
    let want = (s.vec_dot)(w, a);
    let ctx = format!("{ty} {} {what}, n = {n}", level.name());
    assert!(
        agrees(ty, got, want, mag),
        "{ctx}: simd {got} vs scalar {want} (M = {mag})"
    );
    assert!(
        (f64::from(got) - exact).abs() <= 8e-6 * mag + 1e-30,
        "{ctx}: simd {got} vs exact {exact} (M = {mag})"
    );
}

fn check_format(ty: GgmlType, seed: u64) {
    let vt = ty.vec_dot_type();
    for level in levels() {
        let k = kernels_for(ty, level);
        let s = scalar_kernels(ty);
        assert_ne!(
            k.vec_dot as usize,
            s.vec_dot as usize,
            "{ty}: no SIMD kernel at {}",
            level.name()
        );
        let mut rng = Rng(seed);
        // 1..=9 blocks (every tail), then rows of several whole groups of
        // the kernels (8 units of 128 weights, 4 TQ blocks) plus tails
        for nblk in (1..=9).chain([16, 17, 31, 40]) {
            let n = nblk * ty.block_size();
            for wk in 0..4 {
                for ak in 0..3 {
                    let w = weights(&mut rng, ty, nblk, wk);
                    let a = activations(&mut rng, vt, n, ak);
                    check_dot(ty, level, &k, &w, &a, n, &format!("w{wk} a{ak}"));
                }
            }
        }
    }
}

/// Every level replaces the kernels it claims to (else the comparisons
/// would compare the scalar code with itself): all six, on x86 and on NEON
/// (simd/arm/mod.rs).
#[test]
fn kernels_are_installed() {
    for level in levels() {
        for ty in &FORMATS {
            let (k, s) = (kernels_for(*ty, level), scalar_kernels(*ty));
            assert!(
                !std::ptr::fn_addr_eq(k.vec_dot, s.vec_dot),
                "{ty} {}",
                level.name()
            );
            assert!(
                !std::ptr::fn_addr_eq(k.vec_dot_multi, s.vec_dot_multi),
                "{ty} {}",
                level.name()
            );
        }
    }
}

#[test]
fn q1_0_matches_scalar() {
    check_format(GgmlType::Q1_0, 11);
}

#[test]
fn q2_0_matches_scalar() {
    check_format(GgmlType::Q2_0, 12);
}

#[test]
fn q2_0_g128_matches_scalar() {
    check_format(GgmlType::Q2_0G128, 13);
}

#[test]
fn pq2_0_matches_scalar() {
    check_format(GgmlType::PQ2_0, 14);
}

#[test]
fn ptq1_0_matches_scalar() {
    check_format(GgmlType::PTQ1_0, 17);
}

#[test]
fn tq1_0_matches_scalar() {
    check_format(GgmlType::TQ1_0, 15);
}

#[test]
fn tq2_0_matches_scalar() {
    check_format(GgmlType::TQ2_0, 16);
}

/// Exact data (power-of-two scales, small sums): every rounding is exact,
/// so every SIMD level must give the exact `f64` dot itself.
#[test]
fn exact_data_is_bit_exact() {
    let mut rng = Rng(21);
    for ty in FORMATS {
        let vt = ty.vec_dot_type();
        for level in levels() {
            let k = kernels_for(ty, level);
            for nblk in 1..=9 {
                let n = nblk * ty.block_size();
                let w = weights(&mut rng, ty, nblk, 3);
                let mut a = activations(&mut rng, vt, n, 1);
                // scale 1/64 (exact in f16 and f32)
                if vt == GgmlType::Q8_0R {
                    for i in 0..n / 32 {
                        set_q8_0r_scale(&mut a, i, 1.0 / 64.0);
                    }
                } else {
                    for blk in a.chunks_exact_mut(vt.type_size()) {
                        blk[..4].copy_from_slice(&(1.0f32 / 64.0).to_le_bytes());
                    }
                }
                let got = (k.vec_dot)(&w, &a);
                let (exact, _) = reference(ty, &w, &a, n);
                assert_eq!(f64::from(got), exact, "{ty} {} n={n}", level.name());
            }
        }
    }
}

/// `vec_dot_multi` over 1..=9 and 17 rows (packed and with a padded stride)
/// equals `vec_dot` per row bit for bit, and the scalar reference (see
/// [`agrees`]).
#[test]
fn multi_equals_per_row_dot() {
    let mut rng = Rng(31);
    for ty in FORMATS {
        let vt = ty.vec_dot_type();
        for level in levels() {
            let k = kernels_for(ty, level);
            for nblk in [1, 2, 3, 4, 5, 8, 9, 17, 40] {
                let n = nblk * ty.block_size();
                let row_bytes = n / vt.block_size() * vt.type_size();
                let w = weights(&mut rng, ty, nblk, nblk % 4);
                for rows in (1..=9).chain([17]) {
                    for pad in [0, 5] {
                        let stride = row_bytes + pad;
                        let mut a = vec![0u8; rows * stride];
                        for r in 0..rows {
                            let row = activations(&mut rng, vt, n, r % 3);
                            a[r * stride..r * stride + row_bytes].copy_from_slice(&row);
                        }
                        let ao = at_offset(&a, 1);
                        let a = &ao[1..1 + a.len()];
                        let mut out = vec![f32::NAN; rows];
                        (k.vec_dot_multi)(&w, a, stride, &mut out);
                        for r in 0..rows {
                            // the scalar reference wants exact lengths
                            let ar = &a[r * stride..r * stride + row_bytes];
                            let want = (scalar_kernels(ty).vec_dot)(&w, ar);
                            let one = (k.vec_dot)(&w, ar);
                            let ctx = format!("{ty} {} n={n} rows={rows} r={r}", level.name());
                            assert_eq!(out[r].to_bits(), one.to_bits(), "{ctx}");
                            let (_, mag) = reference(ty, &w, ar, n);
                            assert!(agrees(ty, out[r], want, mag), "{ctx}: {} vs {want}", out[r]);
                        }
                    }
                }
            }
        }
    }
}

/// Operands of different lengths (which the scalar references do not
/// accept: they debug-assert exact lengths). `Q8_K` rows: like the
/// references' `zip` of whole blocks, the shorter operand decides. `Q8_0R`
/// rows locate their planes from their length, so a row is always whole:
/// weights shorter than the row use its first blocks, a row shorter than
/// the weights its whole self, and trailing bytes short of a block are
/// ignored. An empty row gives 0.
#[test]
fn length_mismatch_follows_scalar() {
    let mut rng = Rng(41);
    for ty in FORMATS {
        let vt = ty.vec_dot_type();
        let ts = ty.type_size();
        // activation bytes per weight block
        let ab = ty.block_size() / vt.block_size() * vt.type_size();
        let n = 5 * ty.block_size();
        let w = weights(&mut rng, ty, 5, 2);
        let a = activations(&mut rng, vt, n, 1);
        let s = scalar_kernels(ty);
        // (weights, activations, the scalar answer, M)
        let mut cases: Vec<(Vec<u8>, Vec<u8>, f32, f64)> = Vec::new();
        if vt == GgmlType::Q8_0R {
            let a3 = activations(&mut rng, vt, 3 * ty.block_size(), 1);
            let mut a3_junk = a3.clone();
            a3_junk.extend_from_slice(&[0x7f; 39]);
            let w2 = [&w[..2 * ts], &vec![0u8; 3 * ts][..]].concat();
            cases.push((
                w.clone(),
                a3_junk,
                (s.vec_dot)(&w[..3 * ts], &a3),
                reference(ty, &w[..3 * ts], &a3, 3 * ty.block_size()).1,
            ));
            // zero-scaled weight blocks stand for the missing ones
            cases.push((
                w[..2 * ts + 3].to_vec(),
                a.clone(),
                (s.vec_dot)(&w2, &a),
                reference(ty, &w2, &a, n).1,
            ));
        } else {
            for (wx, ax) in [(&w[..], &a[..3 * ab + 1]), (&w[..2 * ts + 3], &a[..])] {
                let nb = (wx.len() / ts).min(ax.len() / ab);
                let (wx2, ax2) = (&wx[..nb * ts], &ax[..nb * ab]);
                let want = (s.vec_dot)(wx2, ax2);
                cases.push((
                    wx.to_vec(),
                    ax.to_vec(),
                    want,
                    reference(ty, wx2, ax2, nb * ty.block_size()).1,
                ));
            }
        }
        cases.push((Vec::new(), a.clone(), 0.0, 0.0));
        for level in levels() {
            let k = kernels_for(ty, level);
            for (i, (wx, ax, want, mag)) in cases.iter().enumerate() {
                let got = (k.vec_dot)(wx, ax);
                assert!(
                    agrees(ty, got, *want, *mag),
                    "{ty} {} case {i}: {got} vs {want}",
                    level.name()
                );
            }
            let mut out = [1f32; 3];
            (k.vec_dot_multi)(&w, &a, 0, &mut out);
            assert_eq!(out, [0.0; 3], "{ty} {}: empty rows", level.name());
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Arbitrary payload bytes (finite scales), arbitrary quants, any
    /// length up to 20 blocks and any buffer offset: `vec_dot` and a
    /// two-row `vec_dot_multi` at every level equal the scalar reference.
    #[test]
    fn arbitrary_bytes_match_scalar(
        fmt in 0..FORMATS.len(),
        nblk in 1usize..=20,
        seed in proptest::prelude::any::<u64>(),
        woff in 0usize..8,
        aoff in 0usize..8,
    ) {
        let ty = FORMATS[fmt];
        let vt = ty.vec_dot_type();
        let n = nblk * ty.block_size();
        let mut rng = Rng(seed);
        let w = weights(&mut rng, ty, nblk, 2);
        let a = activations(&mut rng, vt, n, 1);
        let a2 = [a.clone(), activations(&mut rng, vt, n, 0)].concat();
        let (wo, ao) = (at_offset(&w, woff), at_offset(&a2, aoff));
        let (ws, as2) = (&wo[woff..woff + w.len()], &ao[aoff..aoff + a2.len()]);
        let s = scalar_kernels(ty);
        let a1 = &a2[a.len()..];
        let want = [(s.vec_dot)(&w, &a), (s.vec_dot)(&w, a1)];
        let mag = [reference(ty, &w, &a, n).1, reference(ty, &w, a1, n).1];
        for level in levels() {
            let k = kernels_for(ty, level);
            let one = (k.vec_dot)(ws, &as2[..a.len()]);
            proptest::prop_assert!(agrees(ty, one, want[0], mag[0]), "{} vs {}", one, want[0]);
            let mut out = [f32::NAN; 2];
            (k.vec_dot_multi)(ws, as2, a.len(), &mut out);
            proptest::prop_assert_eq!(out[0].to_bits(), one.to_bits());
            proptest::prop_assert!(agrees(ty, out[1], want[1], mag[1]), "{} vs {}", out[1], want[1]);
        }
    }
}
