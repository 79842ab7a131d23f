//! Quantize → dequantize error bounds of the standard formats (proptest),
//! plus the mean squared error on normal data.
//!
//! The scalar formats' bounds are derived from the quantizer's definition
//! (ggml-quants.c): with `A` the block's largest magnitude, `d` the exact
//! `f32` scale and `dh` the stored `f16` one, a value rounded to the
//! nearest of the grid `k·d` is off by at most `d/2`, a value clipped at
//! the top level (Q4_0/Q5_0 map `+A` to `q = 16`/`32`, stored as 15/31) by
//! at most `d`, and storing `d` as `f16` moves level `k` by `|k|·|d - dh|`.
//! `4·ε·A` (ε = 2⁻²³) covers the `f32` roundings of `x/d` and `q·dh`.
//!
//! The K-quants fit scale and minimum by weighted least squares
//! (`make_qkx2_quants` / `make_qx_quants`), which may clip a sub-block's
//! extremes by up to one step (`range/nmax`, range ≤ 2A), and then round
//! the sub-block scales to 6 bits (`Q4_K`/`Q5_K`) or 8 bits (`Q6_K`):
//! about `2/15 + 0.025` of `A` for `Q4_K`, `2/31 + 0.025` for `Q5_K`,
//! `1/31 + 0.004` for `Q6_K`. The bounds below sit between that estimate
//! and the worst case seen over adversarial inputs (0.112, 0.073, 0.022).

mod standard_support;

use proptest::prelude::*;
use shohin_quant::{dequantize_row, quantize_row, GgmlType};
use standard_support::Rng;

const EPS: f64 = f32::EPSILON as f64;

fn roundtrip(ty: GgmlType, x: &[f32]) -> (Vec<u8>, Vec<f32>) {
    let mut b = vec![0u8; x.len() / ty.block_size() * ty.type_size()];
    quantize_row(ty, x, &mut b).unwrap();
    let mut y = vec![0f32; x.len()];
    dequantize_row(ty, &b, &mut y).unwrap();
    (b, y)
}

fn amax(x: &[f32]) -> f64 {
    x.iter().fold(0f64, |m, v| m.max(f64::from(v.abs())))
}

fn f16_at(b: &[u8], off: usize) -> f64 {
    f64::from(half::f16::from_le_bytes([b[off], b[off + 1]]).to_f32())
}

/// `Q4_0`/`Q5_0`/`Q8_0`: per element `|x - y| <= c·|d| + k·|d - dh| + 4εA`
/// with `c = 1` for clipped values (`x/d >= top - 0.5`), else `1/2`.
/// `levels` is the signed top level (8, 16; 0 for `Q8_0`, which never
/// clips), `dmul` maps `A` to `|d|`.
fn check_scalar_block(
    ty: GgmlType,
    x: &[f32],
    b: &[u8],
    y: &[f32],
    top: f64,
    dmul: f64,
) -> Result<(), TestCaseError> {
    let a = amax(x);
    // d keeps the sign of the largest-magnitude value for Q4_0/Q5_0
    let max = x
        .iter()
        .copied()
        .find(|v| f64::from(v.abs()) == a)
        .unwrap_or(0.0);
    let d = if top > 0.0 {
        -f64::from(max) / top
    } else {
        a * dmul
    };
    let d = f64::from(d as f32);
    let dh = f16_at(b, 0);
    let kmax = if top > 0.0 { top } else { 127.0 };
    for (i, (&xi, &yi)) in x.iter().zip(y).enumerate() {
        let clipped = top > 0.0 && d != 0.0 && f64::from(xi) / d >= top - 0.5 - 1e-3;
        let c = if clipped { 1.0 } else { 0.5 };
        let tol = c * d.abs() + kmax * (d - dh).abs() + 4.0 * EPS * a;
        let err = (f64::from(xi) - f64::from(yi)).abs();
        prop_assert!(
            err <= tol,
            "{ty} value {i}: {xi:e} -> {yi:e}, err {err:e} > {tol:e} (amax {a:e}, d {d:e}, dh {dh:e})"
        );
    }
    Ok(())
}

/// `Q4_1`/`Q5_1` (`top` = 15 / 31 levels above the minimum): with `d =
/// f32((max - min)/top)` the exact scale, `dh`/`mh` the stored `f16`
/// scale and minimum, a value is rounded to the nearest of `min + k·d`
/// (never clipped: `(x - min)/d <= top` up to rounding), so per element
/// `|x - y| <= d/2 + top·|d - dh| + |min - mh| + 8εA`; the `8εA` covers
/// the `f32` roundings of `x - min` (range ≤ 2A), `·(1/d)` and `q·dh + mh`.
fn check_min_block(
    ty: GgmlType,
    x: &[f32],
    b: &[u8],
    y: &[f32],
    top: f64,
) -> Result<(), TestCaseError> {
    let a = amax(x);
    let min = x.iter().copied().fold(f32::MAX, f32::min);
    let max = x.iter().copied().fold(-f32::MAX, f32::max);
    let d = f64::from((max - min) / top as f32);
    let (dh, mh) = (f16_at(b, 0), f16_at(b, 2));
    let tol = 0.5 * d + top * (d - dh).abs() + (f64::from(min) - mh).abs() + 8.0 * EPS * a;
    for (i, (&xi, &yi)) in x.iter().zip(y).enumerate() {
        let err = (f64::from(xi) - f64::from(yi)).abs();
        prop_assert!(
            err <= tol,
            "{ty} value {i}: {xi:e} -> {yi:e}, err {err:e} > {tol:e} (min {min:e}, d {d:e}, dh {dh:e}, mh {mh:e})"
        );
    }
    Ok(())
}

fn check_block_amax(ty: GgmlType, x: &[f32], y: &[f32], frac: f64) -> Result<(), TestCaseError> {
    let a = amax(x);
    for (i, (&xi, &yi)) in x.iter().zip(y).enumerate() {
        let err = (f64::from(xi) - f64::from(yi)).abs();
        prop_assert!(
            err <= frac * a + 4.0 * EPS * a,
            "{ty} value {i}: {xi:e} -> {yi:e}, err {err:e} > {frac}·amax ({a:e})"
        );
    }
    Ok(())
}

/// Values of mixed shapes: mostly uniform, some zeros, outliers, a
/// positive cluster; times `10^exp`.
fn values(n: usize, exp: std::ops::RangeInclusive<i32>) -> impl Strategy<Value = Vec<f32>> {
    let v = prop_oneof![
        6 => -1.0f32..1.0,
        1 => Just(0.0f32),
        1 => -30.0f32..30.0,
        2 => 0.5f32..2.0,
    ];
    (prop::collection::vec(v, n), exp).prop_map(|(v, e)| {
        let s = 10f32.powi(e);
        v.into_iter().map(|x| x * s).collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn standard_roundtrip_q8_0(x in values(64, -4..=3)) {
        let (b, y) = roundtrip(GgmlType::Q8_0, &x);
        for k in 0..2 {
            let r = 32 * k..32 * (k + 1);
            check_scalar_block(GgmlType::Q8_0, &x[r.clone()], &b[34 * k..], &y[r], 0.0, 1.0 / 127.0)?;
        }
    }

    #[test]
    fn standard_roundtrip_q4_0(x in values(64, -4..=3)) {
        let (b, y) = roundtrip(GgmlType::Q4_0, &x);
        for k in 0..2 {
            let r = 32 * k..32 * (k + 1);
            check_scalar_block(GgmlType::Q4_0, &x[r.clone()], &b[18 * k..], &y[r], 8.0, 0.0)?;
        }
    }

    #[test]
    fn standard_roundtrip_q5_0(x in values(64, -4..=3)) {
        let (b, y) = roundtrip(GgmlType::Q5_0, &x);
        for k in 0..2 {
            let r = 32 * k..32 * (k + 1);
            check_scalar_block(GgmlType::Q5_0, &x[r.clone()], &b[22 * k..], &y[r], 16.0, 0.0)?;
        }
    }

    /// The asymmetric formats, also on blocks shifted away from zero (where
    /// the minimum, not the scale, carries most of the value).
    #[test]
    fn standard_roundtrip_q4_1(x in values(64, -4..=3), shift in -3.0f32..3.0) {
        let s = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let x: Vec<f32> = x.iter().map(|v| v + shift * s).collect();
        let (b, y) = roundtrip(GgmlType::Q4_1, &x);
        for k in 0..2 {
            let r = 32 * k..32 * (k + 1);
            check_min_block(GgmlType::Q4_1, &x[r.clone()], &b[20 * k..], &y[r], 15.0)?;
        }
    }

    #[test]
    fn standard_roundtrip_q5_1(x in values(64, -4..=3), shift in -3.0f32..3.0) {
        let s = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let x: Vec<f32> = x.iter().map(|v| v + shift * s).collect();
        let (b, y) = roundtrip(GgmlType::Q5_1, &x);
        for k in 0..2 {
            let r = 32 * k..32 * (k + 1);
            check_min_block(GgmlType::Q5_1, &x[r.clone()], &b[24 * k..], &y[r], 31.0)?;
        }
    }

    /// `Q8_K`: `d = 1/iscale = max/-127` is kept in `f32`, so the error is
    /// the rounding alone: `|x - y| <= A/254 + 4εA`.
    #[test]
    fn standard_roundtrip_q8_k(x in values(256, -6..=6)) {
        let (b, y) = roundtrip(GgmlType::Q8K, &x);
        check_block_amax(GgmlType::Q8K, &x, &y, 0.5 / 127.0)?;
        // the block sums are those of the quants
        for g in 0..16 {
            let s: i32 = b[4 + 16 * g..4 + 16 * (g + 1)].iter().map(|&q| i32::from(q as i8)).sum();
            let bs = i16::from_le_bytes([b[260 + 2 * g], b[261 + 2 * g]]);
            prop_assert_eq!(s, i32::from(bs));
        }
    }

    // K-quants: scales are f16 super-block scales times 6/8-bit integers;
    // below A ≈ 1e-2 the f16 `d` turns subnormal and loses relative
    // precision, so the magnitudes start there.
    #[test]
    fn standard_roundtrip_q4_k(x in values(256, -2..=3)) {
        let (_, y) = roundtrip(GgmlType::Q4K, &x);
        check_block_amax(GgmlType::Q4K, &x, &y, 0.15)?;
    }

    #[test]
    fn standard_roundtrip_q5_k(x in values(256, -2..=3)) {
        let (_, y) = roundtrip(GgmlType::Q5K, &x);
        check_block_amax(GgmlType::Q5K, &x, &y, 0.09)?;
    }

    #[test]
    fn standard_roundtrip_q6_k(x in values(256, -2..=3)) {
        let (_, y) = roundtrip(GgmlType::Q6K, &x);
        check_block_amax(GgmlType::Q6K, &x, &y, 0.04)?;
    }

    /// F16: round to nearest, so `|x - y| <= 2⁻¹¹|x|` (half an ulp) for
    /// normal results and `<= 2⁻²⁵` (half the subnormal spacing) below.
    #[test]
    fn standard_roundtrip_f16(x in prop::collection::vec(-65000.0f32..65000.0, 1..40), s in -12i32..=0) {
        let x: Vec<f32> = x.iter().map(|v| v * 10f32.powi(s)).collect();
        let (_, y) = roundtrip(GgmlType::F16, &x);
        for (&xi, &yi) in x.iter().zip(&y) {
            let tol = (f64::from(xi.abs()) * 2f64.powi(-11)).max(2f64.powi(-25));
            prop_assert!((f64::from(xi) - f64::from(yi)).abs() <= tol, "{xi:e} -> {yi:e}");
        }
    }

    /// BF16: 8 significant bits, `|x - y| <= 2⁻⁸|x|` (`2⁻¹³⁴` among
    /// subnormals); NaN stays NaN, overflow rounds to ±inf.
    #[test]
    fn standard_roundtrip_bf16(bits in prop::collection::vec(any::<u32>(), 1..40)) {
        let x: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
        let (_, y) = roundtrip(GgmlType::BF16, &x);
        for (&xi, &yi) in x.iter().zip(&y) {
            if xi.is_nan() {
                prop_assert!(yi.is_nan());
            } else if xi.abs() < 3.38e38 {
                // below the largest finite bf16's rounding boundary; half
                // the subnormal spacing 2⁻¹³³ near zero
                let tol = (f64::from(xi.abs()) * 2f64.powi(-8)).max(2f64.powi(-134));
                prop_assert!((f64::from(xi) - f64::from(yi)).abs() <= tol, "{xi:e} -> {yi:e}");
            } else {
                prop_assert!(yi.is_infinite() || (f64::from(xi) - f64::from(yi)).abs() <= f64::from(xi.abs()) * 2f64.powi(-8));
            }
        }
    }

    /// F32 is a byte copy: bit for bit, NaN payloads included.
    #[test]
    fn standard_roundtrip_f32(bits in prop::collection::vec(any::<u32>(), 1..40)) {
        let x: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
        let (b, y) = roundtrip(GgmlType::F32, &x);
        prop_assert_eq!(b.len(), 4 * x.len());
        for (&xi, &yi) in x.iter().zip(&y) {
            prop_assert_eq!(xi.to_bits(), yi.to_bits());
        }
    }
}

/// Mean squared error relative to the signal on normal(0, 1) data, a
/// quality check the max bounds are too loose to give. Expected values:
/// uniform rounding with step `s` has variance `s²/12`; e.g. `Q4_0` steps
/// `A/8` with `A ≈ 2.3σ` for 32 normals → ≈ 6.9e-3. Limits are ~1.25× the
/// values ggml's reference quantizers reach here (Q4_K 4.8e-3, Q5_K
/// 1.2e-3, Q6_K 2.9e-4, Q4_0 6.7e-3, Q5_0 1.6e-3, Q8_0 2.5e-5, Q8_K
/// 3.8e-5, Q4_1 5.8e-3, Q5_1 1.4e-3). The asymmetric formats spend their
/// levels on `[min, max]` instead of `[-A, A]`: a step of `R/15` (`R/31`)
/// with `R ≈ 2A`, a little finer than `Q4_0`'s `A/8` (`Q5_0`'s `A/16`).
#[test]
fn standard_roundtrip_mse_on_normal_data() {
    let limits = [
        (GgmlType::Q4K, 6e-3),
        (GgmlType::Q5K, 1.5e-3),
        (GgmlType::Q6K, 3.7e-4),
        (GgmlType::Q4_0, 8.3e-3),
        (GgmlType::Q5_0, 2e-3),
        (GgmlType::Q4_1, 7.3e-3),
        (GgmlType::Q5_1, 1.7e-3),
        (GgmlType::Q8_0, 3.2e-5),
        (GgmlType::Q8K, 4.8e-5),
    ];
    let mut rng = Rng(7);
    let x: Vec<f32> = (0..256 * 64).map(|_| rng.normal() as f32).collect();
    for (ty, limit) in limits {
        let (_, y) = roundtrip(ty, &x);
        let e2: f64 = x
            .iter()
            .zip(&y)
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum();
        let x2: f64 = x.iter().map(|a| f64::from(*a).powi(2)).sum();
        let nmse = e2 / x2;
        assert!(nmse <= limit, "{ty}: nmse {nmse:.3e} > {limit:.1e}");
        assert!(
            nmse > limit / 4.0,
            "{ty}: nmse {nmse:.3e} implausibly small"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any bytes dequantize and dot without panicking (the integer sums
    /// cannot overflow `i32` for any input), and any `f32` bit patterns —
    /// NaN, ±inf, subnormals — quantize without panicking (checked with
    /// overflow checks on in the test profile).
    #[test]
    fn standard_arbitrary_input_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 2 * 1024),
        bits in prop::collection::vec(any::<u32>(), 256),
    ) {
        for (ty, _) in standard_support::STANDARD {
            // 256 values: one K block, 8 Q*_0 blocks, 1024 bytes of F32
            let n = 256;
            let nb = n / ty.block_size();
            let w = &bytes[..nb * ty.type_size()];
            let at = ty.vec_dot_type();
            let a = &bytes[bytes.len() - nb * at.type_size()..];
            let mut y = vec![0f32; n];
            dequantize_row(ty, w, &mut y).unwrap();
            let _ = shohin_quant::vec_dot(ty, n, w, a).unwrap();
            let x: Vec<f32> = bits[..n].iter().map(|&b| f32::from_bits(b)).collect();
            let mut q = vec![0u8; nb * ty.type_size()];
            quantize_row(ty, &x, &mut q).unwrap();
        }
    }
}
