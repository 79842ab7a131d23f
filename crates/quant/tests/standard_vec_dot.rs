//! `vec_dot` against the `f64` dot product of the dequantized weights and
//! dequantized activations (dequantize itself is checked bit for bit
//! against gguf-py and ggml in standard_known_answers.rs).
//!
//! Tolerance: the block formats' integer sums are exact, so the `f32`
//! result differs from the exact dot of the dequantized values only by
//! roundings: the scale product(s), the per-block scaling, the running
//! sum over `nb` blocks (each ≤ ε·Σ|terms|), and on the reference side the
//! rounding of every dequantized value (`(d·sc)·q - dmin·m` is up to 3
//! roundings). All are bounded by a few ε (2⁻²³) times `Σ|w·a|` (the K
//! minimums can cancel, but not on this data), giving at most
//! `(nb + 8)·ε·Σ|w·a|` ≈ 1.8e-6 relative for 7 blocks; the test allows
//! 1e-5, well below any real mistake (a wrong nibble, scale or minimum
//! changes the result by a sizable fraction of `Σ|w·a|`).

mod standard_support;

use shohin_quant::{dequantize_row, quantize_row, vec_dot, GgmlType};
use standard_support::{Rng, STANDARD};

const REL_TOL: f64 = 1e-5;

/// Random valid blocks: random payload bytes, the scale fields replaced
/// by finite values (f16 for `d`/`dmin`, f32 for `Q8_K`). This reaches
/// quant values the quantizers never write (e.g. `Q8_0` quant −128, `Q6_K`
/// scale −128, every `Q4_K` 6-bit scale/min).
fn random_blocks(ty: GgmlType, nb: usize, rng: &mut Rng) -> Vec<u8> {
    let ts = ty.type_size();
    let mut b = rng.bytes(nb * ts);
    for blk in b.chunks_exact_mut(ts) {
        let mut f16 = || {
            let v = rng.uniform(0.01, 1.0) * if rng.unit() < 0.5 { -1.0 } else { 1.0 };
            half::f16::from_f64(v).to_le_bytes()
        };
        match ty {
            GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => blk[..2].copy_from_slice(&f16()),
            GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q5_1 | GgmlType::Q4_1 => {
                blk[..2].copy_from_slice(&f16());
                blk[2..4].copy_from_slice(&f16());
            }
            GgmlType::Q8_1 => {
                blk[..2].copy_from_slice(&f16());
                set_q8_1_sum(blk);
            }
            GgmlType::Q6K => blk[208..210].copy_from_slice(&f16()),
            GgmlType::Q8K => {
                blk[..4].copy_from_slice(&(rng.uniform(-0.01, 0.01) as f32).to_le_bytes())
            }
            _ => unreachable!("{ty} is not a block format"),
        }
    }
    b
}

/// `s = d·Σqs` of a `Q8_1` block, as its quantizer writes it (the `Q4_1`
/// and `Q5_1` dots take the weights' minimum term from it).
fn set_q8_1_sum(blk: &mut [u8]) {
    let d = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
    let sum: i32 = blk[4..].iter().map(|&q| i32::from(q as i8)).sum();
    blk[2..4].copy_from_slice(&half::f16::from_f32(sum as f32 * d).to_le_bytes());
}

fn normal_row(n: usize, scale: f64, rng: &mut Rng) -> Vec<f32> {
    (0..n).map(|_| (rng.normal() * scale) as f32).collect()
}

fn quantized(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut b = vec![0u8; x.len() / ty.block_size() * ty.type_size()];
    quantize_row(ty, x, &mut b).unwrap();
    b
}

fn dequantized(ty: GgmlType, b: &[u8], n: usize) -> Vec<f32> {
    let mut y = vec![0f32; n];
    dequantize_row(ty, b, &mut y).unwrap();
    y
}

/// `Q4_1` and `Q5_1` take their minimum term `m·Σ(qa·d_a)` from the `Q8_1` block sum
/// `s`, which is stored as `f16` (ggml's design): per block the dot may
/// differ from the exact one by `|m|` times half an `f16` ulp of `s`
/// twice over (`s` is `f32 d·Σq` rounded, the reference uses the rounded
/// `d`): relative 2⁻¹⁰, plus 2⁻²⁵ below the normal range. 0 for the
/// other formats.
fn q8_1_sum_rounding(ty: GgmlType, w: &[u8], a: &[u8]) -> f64 {
    if ty != GgmlType::Q5_1 && ty != GgmlType::Q4_1 {
        return 0.0;
    }
    let f = |b: &[u8]| f64::from(half::f16::from_le_bytes([b[0], b[1]]).to_f32());
    // `m` is bytes 2..4 of both blocks
    w.chunks_exact(ty.type_size())
        .zip(a.chunks_exact(36))
        .map(|(bw, ba)| f(&bw[2..]).abs() * (f(&ba[2..]).abs() * 2f64.powi(-10) + 2f64.powi(-25)))
        .sum()
}

/// Checks `vec_dot(w, a)` against the `f64` reference; returns the
/// relative error for the caller's sanity checks.
fn check(ty: GgmlType, w: &[u8], a: &[u8], what: &str) -> f64 {
    let n = w.len() / ty.type_size() * ty.block_size();
    let wd = dequantized(ty, w, n);
    let ad = dequantized(ty.vec_dot_type(), a, n);
    let exact: f64 = wd
        .iter()
        .zip(&ad)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let mag: f64 = wd
        .iter()
        .zip(&ad)
        .map(|(x, y)| (f64::from(*x) * f64::from(*y)).abs())
        .sum();
    let got = vec_dot(ty, n, w, a).unwrap();
    let err = (f64::from(got) - exact).abs();
    let tol = REL_TOL * mag + q8_1_sum_rounding(ty, w, a);
    assert!(
        err <= tol,
        "{ty} {what} n={n}: vec_dot {got:e}, f64 {exact:e}, err {err:e} > {REL_TOL}·Σ|w·a| ({mag:e}) + s rounding"
    );
    assert!(mag > 0.0, "{ty} {what}: degenerate test data");
    err / mag
}

#[test]
fn standard_vec_dot_matches_f64_on_quantized_data() {
    let mut rng = Rng(42);
    for (ty, _) in STANDARD {
        let bs = ty.block_size();
        let lengths: &[usize] = if bs == 1 {
            &[1, 2, 7, 33, 256, 1000]
        } else {
            &[1, 2, 7]
        };
        for &nb in lengths {
            for seed in 0..4 {
                let n = nb * bs;
                let scale = [1.0, 1e-3, 30.0, 1e2][seed];
                let w = quantized(ty, &normal_row(n, scale, &mut rng));
                let a = quantized(ty.vec_dot_type(), &normal_row(n, 1.0, &mut rng));
                check(ty, &w, &a, "quantized weights");
            }
        }
    }
}

#[test]
fn standard_vec_dot_matches_f64_on_random_blocks() {
    let mut rng = Rng(4242);
    for (ty, _) in STANDARD {
        if ty.block_size() == 1 {
            continue; // covered above; random bits would be NaN/inf
        }
        for nb in [1, 2, 7] {
            for _ in 0..8 {
                let w = random_blocks(ty, nb, &mut rng);
                let a = quantized(
                    ty.vec_dot_type(),
                    &normal_row(nb * ty.block_size(), 1.0, &mut rng),
                );
                check(ty, &w, &a, "random blocks");
            }
        }
    }
}

/// Activations whose quants hit −128 / 127 and `Q8_K` block sums far from
/// zero (all-positive and all-negative halves), which exercises the
/// minimum term of `Q4_K`/`Q5_K` through the block sums.
#[test]
fn standard_vec_dot_extreme_activations() {
    let mut rng = Rng(9);
    for (ty, _) in STANDARD {
        let bs = ty.block_size();
        if bs == 1 {
            continue;
        }
        for nb in [1, 2, 7] {
            let w = random_blocks(ty, nb, &mut rng);
            let mut a = random_blocks(ty.vec_dot_type(), nb, &mut rng);
            let at = ty.vec_dot_type();
            for blk in a.chunks_exact_mut(at.type_size()) {
                let (qs, rest) = if at == GgmlType::Q8K {
                    blk[4..].split_at_mut(256)
                } else if at == GgmlType::Q8_1 {
                    blk[4..].split_at_mut(32)
                } else {
                    blk[2..].split_at_mut(32)
                };
                let half = qs.len() / 2;
                qs[..half].fill(127);
                qs[half..].fill(0x80); // -128
                if at == GgmlType::Q8K {
                    // keep the block sums consistent with the quants
                    for g in 0..16 {
                        let s: i16 = if g < 8 { 16 * 127 } else { -16 * 128 };
                        rest[2 * g..2 * g + 2].copy_from_slice(&s.to_le_bytes());
                    }
                }
                if at == GgmlType::Q8_1 {
                    set_q8_1_sum(blk);
                }
            }
            check(ty, &w, &a, "extreme activations");
        }
    }
}

/// The tolerance is meaningful: a one-level change of a single weight in
/// a 7-block row moves the f64 reference far beyond it.
#[test]
fn standard_vec_dot_tolerance_detects_one_level() {
    let mut rng = Rng(5);
    let ty = GgmlType::Q4_0;
    let w = quantized(ty, &normal_row(7 * 32, 1.0, &mut rng));
    let a = quantized(GgmlType::Q8_0, &normal_row(7 * 32, 1.0, &mut rng));
    assert!(check(ty, &w, &a, "base") <= REL_TOL);
    let mut w2 = w.clone();
    w2[3 * 18 + 5] ^= 0x01; // one nibble of block 3 changes by ±1 level
    let n = 7 * 32;
    let got = vec_dot(ty, n, &w, &a).unwrap();
    let wd = dequantized(ty, &w2, n);
    let ad = dequantized(GgmlType::Q8_0, &a, n);
    let exact2: f64 = wd
        .iter()
        .zip(&ad)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let mag: f64 = wd
        .iter()
        .zip(&ad)
        .map(|(x, y)| (f64::from(*x) * f64::from(*y)).abs())
        .sum();
    assert!((f64::from(got) - exact2).abs() > REL_TOL * mag);
}
