//! The packed (row-interleaved) kernels of the 1-bit, ternary, `Q5_0` and
//! `Q8_0` formats against the scalar reference
//! `vec_dot` of each format, row by row and token by token, on random data.
//!
//! Tolerance: the packed kernels form the same exact integer block sums and
//! the same per-block products as the references but sum in another order
//! (and with fused multiply-adds), so they must agree within `1e-5·M`,
//! `M = Σ |w_j|·|a_j|` of the dequantized operands; one wrong code, bit,
//! lane, block or token moves the result by about `M / n` or more
//! (`n` ≤ 1024 here, so at least `1e-3·M`), a hundred times the tolerance.
//!
//! Data: fully random weight bytes (code 3 for the 2-bit formats, bytes
//! above 242 for `TQ1_0`) with random finite f16 scales of both signs;
//! activations quantized from random floats and, in one case, with
//! extreme values; row counts that leave a partial group of 16; token
//! counts that exercise the decode path (1), whole prefill tiles (8, 16)
//! and tails (3, 13); a sub-range of row groups.

use half::f16;
use shohin_quant::packed::{available, q8_k_to_planar, PackFormat, PackedMatrix, ROWS};
use shohin_quant::{dequantize_row, row_bytes, scalar_kernels, GgmlType};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

const FORMATS: [GgmlType; 8] = [
    GgmlType::Q1_0,
    GgmlType::Q2_0,
    GgmlType::Q2_0G128,
    GgmlType::PQ2_0,
    GgmlType::TQ1_0,
    GgmlType::TQ2_0,
    GgmlType::Q5_0,
    GgmlType::Q8_0,
];

/// Byte offset of the f16 scale in a block.
fn d_at(ty: GgmlType) -> usize {
    match ty {
        GgmlType::TQ2_0 => 64,
        GgmlType::TQ1_0 => 52,
        _ => 0,
    }
}

fn weights(rng: &mut Rng, ty: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    let mut w: Vec<u8> = (0..rows * row_bytes(ty, cols).unwrap())
        .map(|_| rng.next() as u8)
        .collect();
    for blk in w.chunks_exact_mut(ty.type_size()) {
        let d = f16::from_f32(rng.f() * 0.05).to_bits().to_le_bytes();
        blk[d_at(ty)..d_at(ty) + 2].copy_from_slice(&d);
    }
    w
}

/// Activations in the reference's format (`vec_dot_type`) and in the
/// packed kernels' planar layout.
fn activations(
    rng: &mut Rng,
    m: &PackedMatrix,
    n_tokens: usize,
    extreme: bool,
) -> (Vec<u8>, Vec<u8>) {
    let vt = m.ty.vec_dot_type();
    let n = m.cols;
    let (ra, pa) = (row_bytes(vt, n).unwrap(), m.act_row_bytes());
    let mut reference = vec![0u8; n_tokens * ra];
    let mut planar = vec![0u8; n_tokens * pa];
    for t in 0..n_tokens {
        let x: Vec<f32> = (0..n)
            .map(|j| {
                if extreme {
                    // Whole blocks at ±amax quantize to -127/127.
                    if (j / 32) % 2 == 0 {
                        3.0
                    } else {
                        -3.0
                    }
                } else {
                    rng.f() * 4.0
                }
            })
            .collect();
        let r = &mut reference[t * ra..(t + 1) * ra];
        (scalar_kernels(vt).quantize)(&x, r);
        let p = &mut planar[t * pa..(t + 1) * pa];
        match (vt, m.act_type()) {
            (GgmlType::Q8K, GgmlType::Q8K) => q8_k_to_planar(r, p),
            (GgmlType::Q8_0R, GgmlType::Q8_0R) => p.copy_from_slice(r),
            // Q8_0R holds Q8_0's numbers in planes.
            (GgmlType::Q8_0, GgmlType::Q8_0R) => (scalar_kernels(GgmlType::Q8_0R).quantize)(&x, p),
            other => panic!("unexpected activation formats {other:?}"),
        }
    }
    (reference, planar)
}

fn magnitude(ty: GgmlType, w: &[u8], a: &[u8], n: usize) -> f64 {
    let vt = ty.vec_dot_type();
    let mut wd = vec![0f32; n];
    dequantize_row(ty, w, &mut wd).unwrap();
    let mut ad = vec![0f32; n];
    if vt == GgmlType::Q8_0R {
        // Planes: quants, then f32 scales.
        for j in 0..n {
            let d = f32::from_le_bytes(
                a[n + 4 * (j / 32)..n + 4 * (j / 32) + 4]
                    .try_into()
                    .unwrap(),
            );
            ad[j] = f32::from(a[j] as i8) * d;
        }
    } else {
        dequantize_row(vt, a, &mut ad).unwrap();
    }
    wd.iter()
        .zip(&ad)
        .map(|(x, y)| f64::from(x.abs()) * f64::from(y.abs()))
        .sum()
}

fn check(
    ty: GgmlType,
    rows: usize,
    cols: usize,
    n_tokens: usize,
    groups: std::ops::Range<usize>,
    extreme: bool,
    seed: u64,
) {
    let mut rng = Rng(seed);
    let w = weights(&mut rng, ty, rows, cols);
    let m = PackedMatrix::pack(ty, rows, cols, &w).expect("packable");
    assert_eq!(m.n_groups(), rows.div_ceil(ROWS));
    let (reference, planar) = activations(&mut rng, &m, n_tokens, extreme);
    let pa = m.act_row_bytes();
    let mut band = vec![f32::NAN; groups.len() * n_tokens * ROWS];
    m.matmul_groups(&planar, pa, n_tokens, groups.clone(), &mut band);
    let wr = row_bytes(ty, cols).unwrap();
    let ra = row_bytes(ty.vec_dot_type(), cols).unwrap();
    let dot = scalar_kernels(ty).vec_dot;
    for (gi, g) in groups.enumerate() {
        for t in 0..n_tokens {
            for i in 0..ROWS {
                let got = band[(gi * n_tokens + t) * ROWS + i];
                let r = g * ROWS + i;
                if r >= rows {
                    assert_eq!(got, 0.0, "{ty} padding row {r} token {t}");
                    continue;
                }
                let (wrow, arow) = (&w[r * wr..(r + 1) * wr], &reference[t * ra..(t + 1) * ra]);
                let want = dot(wrow, arow);
                let mag = magnitude(ty, wrow, arow, cols);
                assert!(
                    (f64::from(got) - f64::from(want)).abs() <= 1e-5 * mag + 1e-30,
                    "{ty} {rows}x{cols} row {r} token {t}/{n_tokens}: packed {got}, scalar {want} (M {mag})"
                );
            }
        }
    }
}

fn skip() -> bool {
    if !FORMATS.iter().all(|&ty| available(ty)) {
        eprintln!("no packed kernels on this CPU (AVX-512 VNNI): nothing to compare");
        return true;
    }
    false
}

#[test]
fn decode_matches_scalar() {
    if skip() {
        return;
    }
    for (i, ty) in FORMATS.into_iter().enumerate() {
        let g = PackFormat::of(ty).unwrap().group;
        // 6 groups: one 4-group decode step and two single ones; 2 padded rows.
        check(
            ty,
            6 * ROWS - 2,
            4 * g.max(256),
            1,
            0..6,
            false,
            11 + i as u64,
        );
        check(ty, 5, g, 1, 0..1, false, 21 + i as u64);
    }
}

#[test]
fn prefill_matches_scalar() {
    if skip() {
        return;
    }
    for (i, ty) in FORMATS.into_iter().enumerate() {
        let g = PackFormat::of(ty).unwrap().group;
        for (k, nt) in [2usize, 3, 8, 13, 16].into_iter().enumerate() {
            check(
                ty,
                3 * ROWS + 7,
                2 * g.max(256),
                nt,
                0..4,
                false,
                100 * i as u64 + k as u64 + 1,
            );
        }
    }
}

#[test]
fn extremes_and_group_ranges() {
    if skip() {
        return;
    }
    for (i, ty) in FORMATS.into_iter().enumerate() {
        let g = PackFormat::of(ty).unwrap().group;
        check(ty, 9 * ROWS, 1024.max(g), 1, 3..9, true, 500 + i as u64);
        check(ty, 9 * ROWS, 1024.max(g), 5, 2..5, true, 600 + i as u64);
    }
}

#[test]
fn unsupported_formats_are_not_packed() {
    let w = vec![0u8; row_bytes(GgmlType::Q4K, 256).unwrap() * 2];
    assert!(PackedMatrix::pack(GgmlType::Q4K, 2, 256, &w).is_none());
    // Wrong byte count: refused, not a panic.
    let w = vec![0u8; 17];
    assert!(PackedMatrix::pack(GgmlType::Q1_0, 1, 128, &w).is_none());
}
