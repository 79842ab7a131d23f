//! Shared by the packed-kernel tests (`packed.rs`, `packed_kquant.rs`): a
//! seeded generator and the comparison of a packed band with the format's
//! scalar reference `vec_dot`, row by row and token by token.
//!
//! Tolerance: the packed kernels form the same exact integer block sums and
//! the same per-block products as the references but sum in another order
//! (and with fused multiply-adds), so they must agree within `1e-5·M`,
//! `M = Σ |w_j|·|a_j|` of the dequantized operands; one wrong code, bit,
//! lane, block or token moves the result by about `M / n` or more.

use shohin_quant::packed::ROWS;
use shohin_quant::{dequantize_row, row_bytes, scalar_kernels, GgmlType};
use std::ops::Range;

/// xorshift64: reproducible data without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [-1, 1).
    pub fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// `M = Σ |w_j|·|a_j|` of one weight row of `ty` and one activation row in
/// its `vec_dot_type`.
pub fn magnitude(ty: GgmlType, w: &[u8], a: &[u8], n: usize) -> f64 {
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

/// The packed product of a `rows × cols` matrix `w` of `ty` over row groups
/// `groups` (`band`, `[group][token][16]`) must match the scalar `vec_dot`
/// with the `reference` activation rows (the `vec_dot_type`'s layout), and
/// padding rows must be exactly 0. `what` labels failures.
#[allow(clippy::too_many_arguments)]
pub fn assert_band_matches(
    what: &str,
    ty: GgmlType,
    w: &[u8],
    reference: &[u8],
    rows: usize,
    cols: usize,
    n_tokens: usize,
    groups: Range<usize>,
    band: &[f32],
) {
    let wr = row_bytes(ty, cols).unwrap();
    let ra = row_bytes(ty.vec_dot_type(), cols).unwrap();
    let dot = scalar_kernels(ty).vec_dot;
    for (gi, g) in groups.enumerate() {
        for t in 0..n_tokens {
            for i in 0..ROWS {
                let got = band[(gi * n_tokens + t) * ROWS + i];
                let r = g * ROWS + i;
                if r >= rows {
                    assert_eq!(got, 0.0, "{ty} {what} padding row {r} token {t}");
                    continue;
                }
                let (wrow, arow) = (&w[r * wr..(r + 1) * wr], &reference[t * ra..(t + 1) * ra]);
                let want = dot(wrow, arow);
                let mag = magnitude(ty, wrow, arow, cols);
                assert!(
                    (f64::from(got) - f64::from(want)).abs() <= 1e-5 * mag + 1e-30,
                    "{ty} {what} {rows}x{cols} row {r} token {t}/{n_tokens}: packed {got}, scalar {want} (M {mag})"
                );
            }
        }
    }
}
