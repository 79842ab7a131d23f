//! A `PTQ1_0` matrix times a vector, the way the engine's CPU backend
//! multiplies (activations quantized to the format's `vec_dot_type`, then
//! the row-major kernels of [`kernels`] or the repacked ones of
//! [`PackedMatrix`]), against the product of its dequantized f32 form with
//! the f32 activations.
//!
//! Tolerance: against the dequantized weights times the *dequantized*
//! activations the only error is f32 rounding, `1e-5·M` with
//! `M = Σ |w_j·a_j|`; against the f32 activations themselves the `Q8_0`
//! rounding adds at most `Σ |w_j|·d_a/2` (half a quantization step per
//! activation), computed here from the activation scales.

use shohin_quant::packed::{available, PackedMatrix, ROWS};
use shohin_quant::{dequantize_row, kernels, quantize_row, row_bytes, GgmlType};

const TY: GgmlType = GgmlType::PTQ1_0;

/// Deterministic floats in [-1, 1) (xorshift).
fn floats(n: usize, mut s: u64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

#[test]
fn matrix_vector_product_matches_dequantized_f32() {
    // 40 rows: two whole groups of 16 and a partial one; 1152 columns:
    // 9 blocks, not a whole number of the kernels' 512-weight groups
    let (rows, cols) = (40, 1152);
    let wf = floats(rows * cols, 0x5eed_1234_abcd_0001);
    let rb = row_bytes(TY, cols).unwrap();
    assert_eq!(rb, cols / 128 * 28);
    let mut w = vec![0u8; rows * rb];
    quantize_row(TY, &wf, &mut w).unwrap();
    let mut wd = vec![0f32; rows * cols];
    dequantize_row(TY, &w, &mut wd).unwrap();

    let x: Vec<f32> = floats(cols, 0x0ddb_a11c_0ffe_e002)
        .iter()
        .map(|v| 3.0 * v)
        .collect();
    let vt = TY.vec_dot_type();
    assert_eq!(vt, GgmlType::Q8_0R);
    let mut a = vec![0u8; row_bytes(vt, cols).unwrap()];
    (kernels(vt).quantize)(&x, &mut a);
    let mut xd = vec![0f32; cols];
    dequantize_row(vt, &a, &mut xd).unwrap();
    // per-value half step of the activation quantization: d/2 = amax/254
    let half_step: Vec<f64> = x
        .chunks_exact(32)
        .flat_map(|b| {
            let amax = b.iter().fold(0f32, |m, v| m.max(v.abs()));
            std::iter::repeat_n(f64::from(amax) / 254.0 * 1.001, 32)
        })
        .collect();

    let row_major: Vec<f32> = w
        .chunks_exact(rb)
        .map(|r| (kernels(TY).vec_dot)(r, &a))
        .collect();
    let packed = PackedMatrix::pack(TY, rows, cols, &w).map(|p| {
        let mut qa = vec![0u8; p.act_row_bytes()];
        p.quantize_act(&x, &mut qa);
        let mut band = vec![0f32; p.n_groups() * ROWS];
        p.matmul_groups(&qa, qa.len(), 1, 0..p.n_groups(), &mut band);
        band
    });
    assert_eq!(packed.is_some(), available(TY));

    let mut nonzero = 0;
    for r in 0..rows {
        let wr = &wd[r * cols..(r + 1) * cols];
        let exact_q: f64 = wr
            .iter()
            .zip(&xd)
            .map(|(&w, &a)| f64::from(w) * f64::from(a))
            .sum();
        let m: f64 = wr
            .iter()
            .zip(&xd)
            .map(|(&w, &a)| (f64::from(w) * f64::from(a)).abs())
            .sum();
        let f32_ref: f64 = wr
            .iter()
            .zip(&x)
            .map(|(&w, &a)| f64::from(w) * f64::from(a))
            .sum();
        let q_err: f64 = wr
            .iter()
            .zip(&half_step)
            .map(|(&w, &h)| f64::from(w).abs() * h)
            .sum();
        let mut got = vec![("row-major", row_major[r])];
        if let Some(band) = &packed {
            got.push(("packed", band[r]));
        }
        for (what, g) in got {
            let g = f64::from(g);
            assert!(
                (g - exact_q).abs() <= 1e-5 * m + 1e-30,
                "{what} row {r}: {g} vs {exact_q}"
            );
            let tol = q_err + 1e-5 * m;
            assert!(
                (g - f32_ref).abs() <= tol,
                "{what} row {r}: {g} vs f32 {f32_ref} (tol {tol})"
            );
        }
        nonzero += usize::from(m > 0.0);
    }
    assert_eq!(nonzero, rows);
}
