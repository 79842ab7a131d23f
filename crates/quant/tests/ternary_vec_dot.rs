//! The dot products of the 1-bit and ternary formats against the float64 dot
//! product of the dequantized weights and activations built by hand as
//! `Q8_0R` planes (i8 quants, f32 d, i32 sums) and `block_q8_K` (f32 d,
//! 256 × i8, 16 × i16 sums), on random data, for rows of 1, 2 and 7 blocks.
//! Also: a g128 row and the same weights re-blocked as g64 give the same dot.

mod ternary_support;

use half::f16;
use shohin_quant::{dequantize_row, vec_dot, GgmlType};
use ternary_support::{q8_0r_from_parts, q8_0r_from_q8_0};

/// splitmix64: deterministic data without another dependency.
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
    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }
}

fn put_f16(dst: &mut [u8], v: f32) {
    dst[..2].copy_from_slice(&f16::from_f32(v).to_bits().to_le_bytes());
}

/// Random weight blocks: random bytes, then a finite random scale (negative
/// ones included) at the scale's offset.
fn weights(rng: &mut Rng, ty: GgmlType, nblk: usize) -> Vec<u8> {
    let ts = ty.type_size();
    let d_at = match ty {
        GgmlType::TQ1_0 | GgmlType::TQ2_0 | GgmlType::PTQ1_0 => ts - 2,
        _ => 0,
    };
    let mut w: Vec<u8> = (0..nblk * ts).map(|_| rng.byte()).collect();
    for b in w.chunks_exact_mut(ts) {
        let d = rng.uniform(-0.2, 0.5);
        put_f16(&mut b[d_at..], d);
    }
    w
}

/// Random Q8_0R activations (f16-valued scales) and their values.
fn q8_0r(rng: &mut Rng, n: usize) -> (Vec<u8>, Vec<f64>) {
    let mut qs = Vec::new();
    let mut ds = Vec::new();
    let mut vals = Vec::new();
    for _ in 0..n / 32 {
        let d = f16::from_f32(rng.uniform(1e-3, 0.05)).to_f32();
        ds.push(d);
        for _ in 0..32 {
            let q = rng.byte() as i8; // -128 included
            qs.push(q);
            vals.push(f64::from(q) * f64::from(d));
        }
    }
    (q8_0r_from_parts(&qs, &ds), vals)
}

/// Random Q8_K activations (with consistent block sums) and their values.
fn q8_k(rng: &mut Rng, n: usize) -> (Vec<u8>, Vec<f64>) {
    let mut bytes = Vec::new();
    let mut vals = Vec::new();
    for _ in 0..n / 256 {
        let d = rng.uniform(1e-3, 0.05);
        bytes.extend_from_slice(&d.to_le_bytes());
        let qs: Vec<i8> = (0..256).map(|_| (rng.byte() % 255) as i8).collect();
        bytes.extend(qs.iter().map(|&q| q as u8));
        for g in qs.chunks_exact(16) {
            let s: i16 = g.iter().map(|&q| i16::from(q)).sum();
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        vals.extend(qs.iter().map(|&q| f64::from(q) * f64::from(d)));
    }
    (bytes, vals)
}

fn check(ty: GgmlType, seed: u64) {
    let mut rng = Rng(seed);
    for nblk in [1, 2, 7] {
        let n = nblk * ty.block_size();
        let w = weights(&mut rng, ty, nblk);
        let (a, av) = match ty.vec_dot_type() {
            GgmlType::Q8_0R => q8_0r(&mut rng, n),
            GgmlType::Q8K => q8_k(&mut rng, n),
            other => panic!("{ty}: unexpected vec_dot_type {other}"),
        };
        let mut wv = vec![0f32; n];
        dequantize_row(ty, &w, &mut wv).unwrap();
        let terms = wv.iter().zip(&av).map(|(&x, &y)| f64::from(x) * y);
        let exact: f64 = terms.clone().sum();
        let magnitude: f64 = terms.map(f64::abs).sum();
        let got = f64::from(vec_dot(ty, n, &w, &a).unwrap());
        // f32 accumulation over a handful of block sums: a few ulps of the
        // largest partial sum
        let tol = 2e-6 * magnitude;
        assert!(
            (got - exact).abs() <= tol,
            "{ty}, {nblk} blocks: {got} vs {exact} (tol {tol})"
        );
        // and the test has teeth: the dot is not trivially zero
        assert!(magnitude > 0.0, "{ty}: degenerate data");
    }
}

#[test]
fn q1_0_dot_matches_f64() {
    check(GgmlType::Q1_0, 1);
}

#[test]
fn q2_0_dot_matches_f64() {
    check(GgmlType::Q2_0, 2);
}

#[test]
fn q2_0_g128_dot_matches_f64() {
    check(GgmlType::Q2_0G128, 3);
    check(GgmlType::PQ2_0, 4);
}

#[test]
fn ptq1_0_dot_matches_f64() {
    check(GgmlType::PTQ1_0, 7);
}

#[test]
fn tq1_0_dot_matches_f64() {
    check(GgmlType::TQ1_0, 5);
}

#[test]
fn tq2_0_dot_matches_f64() {
    check(GgmlType::TQ2_0, 6);
}

/// One g128 block = two g64 blocks with the same scale: the first 16 code
/// bytes and the last 16.
fn reblock_g128_as_g64(g128: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for b in g128.chunks_exact(34) {
        for half in [&b[2..18], &b[18..34]] {
            out.extend_from_slice(&b[..2]);
            out.extend_from_slice(half);
        }
    }
    out
}

#[test]
fn g128_row_and_reblocked_g64_row_agree() {
    let mut rng = Rng(7);
    for nblk in [1, 2, 7] {
        let n = nblk * 128;
        let g128 = weights(&mut rng, GgmlType::Q2_0G128, nblk);
        let g64 = reblock_g128_as_g64(&g128);
        let mut v128 = vec![0f32; n];
        let mut v64 = vec![1f32; n];
        dequantize_row(GgmlType::Q2_0G128, &g128, &mut v128).unwrap();
        dequantize_row(GgmlType::Q2_0, &g64, &mut v64).unwrap();
        assert_eq!(v128, v64);

        // random activations: equal up to the f32 order of the two kernels
        let (a, _) = q8_0r(&mut rng, n);
        let d128 = vec_dot(GgmlType::Q2_0G128, n, &g128, &a).unwrap();
        let d64 = vec_dot(GgmlType::Q2_0, n, &g64, &a).unwrap();
        let pq = vec_dot(GgmlType::PQ2_0, n, &g128, &a).unwrap();
        assert_eq!(d128.to_bits(), pq.to_bits());
        assert!(
            (d128 - d64).abs() <= 1e-5 * d128.abs().max(1.0),
            "{d128} vs {d64}"
        );

        // activations with scale 1 and small ints, weight scales powers of
        // two: every f32 step is exact, so the two must agree exactly
        let mut g128p = g128.clone();
        for (i, b) in g128p.chunks_exact_mut(34).enumerate() {
            put_f16(b, [0.5, 2.0, 0.25][i % 3]);
        }
        let g64p = reblock_g128_as_g64(&g128p);
        let mut a1 = Vec::new();
        for _ in 0..n / 32 {
            a1.extend_from_slice(&f16::from_f32(1.0).to_bits().to_le_bytes());
            a1.extend((0..32).map(|_| (rng.byte() % 16) as i8 as u8));
        }
        let a1 = q8_0r_from_q8_0(&a1);
        let e128 = vec_dot(GgmlType::Q2_0G128, n, &g128p, &a1).unwrap();
        let e64 = vec_dot(GgmlType::Q2_0, n, &g64p, &a1).unwrap();
        assert_eq!(e128, e64);
        assert_ne!(e128, 0.0);
    }
}
