//! Property tests of the 1-bit and ternary formats: exact round trips of
//! weights the formats can represent, bounded error for arbitrary floats,
//! and no panic plus a dot product consistent with dequantization for
//! arbitrary bytes.

use half::f16;
use proptest::prelude::*;
use shohin_quant::{dequantize_row, quantize_row, row_bytes, vec_dot, GgmlType};

const TERNARY: [GgmlType; 6] = [
    GgmlType::Q2_0,
    GgmlType::Q2_0G128,
    GgmlType::PQ2_0,
    GgmlType::PTQ1_0,
    GgmlType::TQ1_0,
    GgmlType::TQ2_0,
];

fn round_trip(ty: GgmlType, x: &[f32]) -> Vec<f32> {
    let mut q = vec![0u8; row_bytes(ty, x.len()).unwrap()];
    quantize_row(ty, x, &mut q).unwrap();
    let mut y = vec![f32::NAN; x.len()];
    dequantize_row(ty, &q, &mut y).unwrap();
    y
}

/// A ternary row: per block a scale in f16's normal range (not necessarily
/// representable in f16) and trits, at least one of them nonzero.
fn ternary_row() -> impl Strategy<Value = (GgmlType, Vec<f32>, Vec<i8>)> {
    (0..TERNARY.len(), 1usize..=3).prop_flat_map(|(t, nblk)| {
        let ty = TERNARY[t];
        let n = nblk * ty.block_size();
        (
            Just(ty),
            prop::collection::vec(1e-4f32..6e4, nblk),
            prop::collection::vec(-1i8..=1, n),
            prop::collection::vec(any::<bool>(), nblk),
        )
            .prop_map(move |(ty, d, mut t, neg)| {
                let bs = ty.block_size();
                for (b, blk) in t.chunks_exact_mut(bs).enumerate() {
                    if blk.iter().all(|&v| v == 0) {
                        blk[b % bs] = if neg[b] { -1 } else { 1 };
                    }
                }
                (ty, d, t)
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// {-1, 0, 1}·d comes back as {-1, 0, 1}·f16(d), exactly.
    #[test]
    fn ternary_weights_round_trip_exactly((ty, d, t) in ternary_row()) {
        let bs = ty.block_size();
        let x: Vec<f32> = t.iter().enumerate().map(|(j, &v)| f32::from(v) * d[j / bs]).collect();
        let y = round_trip(ty, &x);
        for (j, (&yv, &tv)) in y.iter().zip(&t).enumerate() {
            let want = f32::from(tv) * f16::from_f32(d[j / bs]).to_f32();
            prop_assert_eq!(yv, want, "{} weight {}", ty, j);
        }
    }

    /// Any sign pattern times an f16 scale survives Q1_0 exactly: the mean
    /// of 128 copies of |d| is d again.
    #[test]
    fn q1_0_sign_patterns_round_trip_exactly(
        signs in prop::collection::vec(any::<bool>(), 128..=384),
        bits in prop::collection::vec(0x0400u16..0x7bff, 3),
    ) {
        let n = signs.len() / 128 * 128;
        let x: Vec<f32> = signs[..n]
            .iter()
            .enumerate()
            .map(|(j, &neg)| {
                let d = f16::from_bits(bits[j / 128]).to_f32();
                if neg { -d } else { d }
            })
            .collect();
        let y = round_trip(GgmlType::Q1_0, &x);
        prop_assert_eq!(y, x);
    }

    /// Arbitrary floats: each ternary weight lands within half a scale step
    /// (plus the f16 rounding of the scale) of its input.
    #[test]
    fn ternary_error_is_bounded(
        t in 0..TERNARY.len(),
        s in 1e-3f32..1e3,
        u in prop::collection::vec(-1f32..=1.0, 768),
    ) {
        let ty = TERNARY[t];
        let n = u.len() / ty.block_size() * ty.block_size();
        let x: Vec<f32> = u[..n].iter().map(|v| v * s).collect();
        let y = round_trip(ty, &x);
        for (xb, yb) in x.chunks_exact(ty.block_size()).zip(y.chunks_exact(ty.block_size())) {
            let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (xv, yv) in xb.iter().zip(yb) {
                let err = f64::from(*yv) - f64::from(*xv);
                prop_assert!(err.abs() <= f64::from(amax) * (0.5 + 1.0 / 1024.0), "{ty}: {xv} -> {yv}, amax {amax}");
            }
        }
    }

    /// Arbitrary floats through Q1_0: signs kept (x >= 0 gives +), magnitude
    /// the block's mean |x| up to f16 rounding.
    #[test]
    fn q1_0_keeps_signs_and_mean_magnitude(
        s in 1e-3f32..1e3,
        u in prop::collection::vec(-1f32..=1.0, 128..=384),
    ) {
        let n = u.len() / 128 * 128;
        let x: Vec<f32> = u[..n].iter().map(|v| v * s).collect();
        let y = round_trip(GgmlType::Q1_0, &x);
        for (xb, yb) in x.chunks_exact(128).zip(y.chunks_exact(128)) {
            let mean = xb.iter().map(|v| f64::from(v.abs())).sum::<f64>() / 128.0;
            for (xv, yv) in xb.iter().zip(yb) {
                prop_assert_eq!(*xv >= 0.0, *yv >= 0.0);
                prop_assert!((f64::from(yv.abs()) - mean).abs() <= mean / 1024.0, "{yv} vs mean {mean}");
            }
        }
    }

    /// Arbitrary weight bytes (codes 3, TQ1_0 bytes above 242 included) with
    /// a finite scale: no panic, and the dot product agrees with the float64
    /// dot of the dequantized weights.
    #[test]
    fn arbitrary_bytes_dot_agrees_with_dequantize(
        t in 0..TERNARY.len() + 1,
        raw in prop::collection::vec(any::<u8>(), 3 * 66),
        d in -1f32..1.0,
        q in prop::collection::vec(-127i8..=127, 768),
        dq in 1e-3f32..1.0,
    ) {
        let ty = if t == TERNARY.len() { GgmlType::Q1_0 } else { TERNARY[t] };
        let (bs, ts) = (ty.block_size(), ty.type_size());
        let nblk = raw.len() / ts;
        let n = nblk.min(q.len() / bs) * bs;
        let mut w = raw[..n / bs * ts].to_vec();
        let d_at = if matches!(ty, GgmlType::TQ1_0 | GgmlType::TQ2_0 | GgmlType::PTQ1_0) { ts - 2 } else { 0 };
        for b in w.chunks_exact_mut(ts) {
            b[d_at..d_at + 2].copy_from_slice(&f16::from_f32(d).to_bits().to_le_bytes());
        }
        let mut wv = vec![0f32; n];
        dequantize_row(ty, &w, &mut wv).unwrap();

        let (a, av): (Vec<u8>, Vec<f64>) = match ty.vec_dot_type() {
            GgmlType::Q8_0R => {
                // planes: quants, f32 scales (f16 values), i32 block sums
                let dh = f16::from_f32(dq).to_f32();
                let mut a: Vec<u8> = q[..n].iter().map(|&v| v as u8).collect();
                for _ in 0..n / 32 {
                    a.extend_from_slice(&dh.to_le_bytes());
                }
                for g in q[..n].chunks_exact(32) {
                    let s: i32 = g.iter().map(|&v| i32::from(v)).sum();
                    a.extend_from_slice(&s.to_le_bytes());
                }
                (a, q[..n].iter().map(|&v| f64::from(v) * f64::from(dh)).collect())
            }
            _ => {
                let mut a = Vec::new();
                for g in q[..n].chunks_exact(256) {
                    a.extend_from_slice(&dq.to_le_bytes());
                    a.extend(g.iter().map(|&v| v as u8));
                    for s in g.chunks_exact(16) {
                        let sum: i16 = s.iter().map(|&v| i16::from(v)).sum();
                        a.extend_from_slice(&sum.to_le_bytes());
                    }
                }
                (a, q[..n].iter().map(|&v| f64::from(v) * f64::from(dq)).collect())
            }
        };
        let got = f64::from(vec_dot(ty, n, &w, &a).unwrap());
        let exact: f64 = wv.iter().zip(&av).map(|(&x, &y)| f64::from(x) * y).sum();
        let mag: f64 = wv.iter().zip(&av).map(|(&x, &y)| (f64::from(x) * y).abs()).sum();
        prop_assert!((got - exact).abs() <= 2e-6 * mag, "{ty}: {got} vs {exact}");
    }
}
