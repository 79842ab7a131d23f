//! `Q8_0R`, the row-planar activation format of the 1-bit / ternary dot
//! products, against `Q8_0` (whose numbers it must carry unchanged; `Q8_0`
//! itself is checked against ggml in standard_known_answers.rs): for the
//! scalar reference and every SIMD level's quantizer, the quants equal the
//! `block_q8_0` quants, each scale is the block's f16 `d` widened to f32,
//! each block sum is the sum of its quants (computed here), and the
//! dequantized values and the `Q8_0R · Q8_0R` dot equal `Q8_0`'s bit for
//! bit. Inputs: random floats over several magnitudes, all-zero blocks,
//! rounding ties, huge and tiny values, infinities and NaN.

mod ternary_support;

use half::f16;
use shohin_quant::simd::{kernels_for, supported, Isa};
use shohin_quant::{
    dequantize_row, quantize_row, row_bytes, scalar_kernels, vec_dot, GgmlType, QuantizeFn,
};

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
    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }
}

/// `nb` blocks of test input: block `i` is of kind `i % 6`.
fn input(rng: &mut Rng, nb: usize) -> Vec<f32> {
    let mut x = Vec::with_capacity(32 * nb);
    for i in 0..nb {
        let scale = [1e-3, 1.0, 300.0][i % 3];
        for j in 0..32 {
            x.push(match i % 6 {
                // all zero (d = 0, quants 0)
                3 => 0.0,
                // ties: amax 127 makes d = 1 and id = 1, so k + 0.5 ties
                4 => {
                    if j == 0 {
                        127.0
                    } else {
                        (j as f32 - 16.0) + 0.5
                    }
                }
                // specials: huge, tiny, the f16 maximum, -0
                5 => [1e30, -1e-30, 65504.0, -0.0][j % 4],
                _ => rng.uniform(-scale, scale),
            });
        }
    }
    x
}

/// The quantizers to test: the scalar reference and each SIMD level's.
fn quantizers() -> Vec<(&'static str, QuantizeFn)> {
    let mut v: Vec<(&'static str, QuantizeFn)> =
        vec![("scalar", scalar_kernels(GgmlType::Q8_0R).quantize)];
    for level in [Isa::Neon, Isa::Avx2, Isa::Avx512] {
        if supported(level) {
            v.push((level.name(), kernels_for(GgmlType::Q8_0R, level).quantize));
        }
    }
    v
}

/// Compare a `Q8_0R` row with the `Q8_0` blocks of the same input, field by
/// field from the documented layouts.
fn check_planes(what: &str, r: &[u8], q8: &[u8]) {
    let nb = q8.len() / 34;
    assert_eq!(r.len(), 40 * nb, "{what}: length");
    for (i, b) in q8.chunks_exact(34).enumerate() {
        assert_eq!(
            &r[32 * i..32 * i + 32],
            &b[2..],
            "{what}: quants of block {i}"
        );
        let d = f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
        let at = 32 * nb + 4 * i;
        let got = f32::from_le_bytes(r[at..at + 4].try_into().unwrap());
        assert_eq!(got.to_bits(), d.to_bits(), "{what}: scale of block {i}");
        let sum: i32 = b[2..].iter().map(|&v| i32::from(v as i8)).sum();
        let at = 36 * nb + 4 * i;
        let got = i32::from_le_bytes(r[at..at + 4].try_into().unwrap());
        assert_eq!(got, sum, "{what}: sum of block {i}");
    }
}

#[test]
fn geometry_and_no_gguf_id() {
    assert_eq!(GgmlType::Q8_0R.block_size(), 32);
    assert_eq!(GgmlType::Q8_0R.type_size(), 40);
    assert_eq!(row_bytes(GgmlType::Q8_0R, 4096), Ok(5120));
    assert!(row_bytes(GgmlType::Q8_0R, 48).is_err());
    assert_eq!(GgmlType::Q8_0R.id(), shohin_quant::NO_GGUF_ID);
    assert!(GgmlType::candidates(GgmlType::Q8_0R.id()).is_empty());
    for ty in [
        GgmlType::Q1_0,
        GgmlType::Q2_0,
        GgmlType::Q2_0G128,
        GgmlType::PQ2_0,
        GgmlType::PTQ1_0,
    ] {
        assert_eq!(ty.vec_dot_type(), GgmlType::Q8_0R, "{ty}");
    }
}

#[test]
fn quantize_carries_q8_0_numbers() {
    let mut rng = Rng(5);
    for nb in (1..=9).chain([16, 17, 33, 128]) {
        let x = input(&mut rng, nb);
        let mut q8 = vec![0u8; 34 * nb];
        quantize_row(GgmlType::Q8_0, &x, &mut q8).unwrap();
        for (name, quantize) in quantizers() {
            let mut r = vec![0xa5u8; 40 * nb];
            quantize(&x, &mut r);
            check_planes(&format!("{name}, {nb} blocks"), &r, &q8);
        }
    }
}

/// Non-finite inputs go through the very same `Q8_0` rules (a NaN or an
/// infinity poisons its block's `d`).
#[test]
fn non_finite_input_matches_q8_0() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut x: Vec<f32> = (0..96).map(|j| j as f32 - 40.0).collect();
        x[37] = bad;
        let mut q8 = vec![0u8; 3 * 34];
        quantize_row(GgmlType::Q8_0, &x, &mut q8).unwrap();
        for (name, quantize) in quantizers() {
            let mut r = vec![0u8; 3 * 40];
            quantize(&x, &mut r);
            check_planes(&format!("{name}, {bad}"), &r, &q8);
        }
    }
}

#[test]
fn dequantize_and_self_dot_equal_q8_0() {
    let mut rng = Rng(6);
    for nb in [1, 2, 5, 17] {
        let x = input(&mut rng, nb);
        let y: Vec<f32> = (0..32 * nb).map(|_| rng.uniform(-2.0, 2.0)).collect();
        let (mut q8x, mut q8y) = (vec![0u8; 34 * nb], vec![0u8; 34 * nb]);
        quantize_row(GgmlType::Q8_0, &x, &mut q8x).unwrap();
        quantize_row(GgmlType::Q8_0, &y, &mut q8y).unwrap();
        let (mut rx, mut ry) = (vec![0u8; 40 * nb], vec![0u8; 40 * nb]);
        quantize_row(GgmlType::Q8_0R, &x, &mut rx).unwrap();
        quantize_row(GgmlType::Q8_0R, &y, &mut ry).unwrap();
        // the test's own conversion agrees with the quantizer
        assert_eq!(ternary_support::q8_0r_from_q8_0(&q8x), rx);

        let (mut a, mut b) = (vec![0f32; 32 * nb], vec![1f32; 32 * nb]);
        dequantize_row(GgmlType::Q8_0, &q8x, &mut a).unwrap();
        dequantize_row(GgmlType::Q8_0R, &rx, &mut b).unwrap();
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b), "{nb} blocks: dequantize");

        let n = 32 * nb;
        let want = vec_dot(GgmlType::Q8_0, n, &q8x, &q8y).unwrap();
        let got = vec_dot(GgmlType::Q8_0R, n, &rx, &ry).unwrap();
        assert_eq!(got.to_bits(), want.to_bits(), "{nb} blocks: dot");
    }
}

/// The 1-bit / ternary dots on `Q8_0R` rows give exactly what the same
/// numbers gave as `Q8_0` (the generic-kernel order, checked against ggml in
/// ternary_known_answers.rs): here against a transcription of
/// `ggml_vec_dot_q1_0_q8_0_generic` over `block_q8_0` bytes.
#[test]
fn q1_0_dot_equals_the_q8_0_generic_order() {
    let mut rng = Rng(7);
    for nblk in [1, 3, 8] {
        let n = 128 * nblk;
        let xw: Vec<f32> = (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let xa: Vec<f32> = (0..n).map(|_| rng.uniform(-3.0, 3.0)).collect();
        let mut w = vec![0u8; 18 * nblk];
        quantize_row(GgmlType::Q1_0, &xw, &mut w).unwrap();
        let mut q8 = vec![0u8; 34 * n / 32];
        quantize_row(GgmlType::Q8_0, &xa, &mut q8).unwrap();
        let mut r = vec![0u8; 40 * n / 32];
        quantize_row(GgmlType::Q8_0R, &xa, &mut r).unwrap();

        let f16_at = |b: &[u8]| f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
        let mut sumf = 0f32;
        for (blk, act) in w.chunks_exact(18).zip(q8.chunks_exact(4 * 34)) {
            let mut sumi = 0f32;
            for (k, yb) in act.chunks_exact(34).enumerate() {
                let mut s = 0i32;
                for j in 0..32 {
                    let bit = (blk[2 + 4 * k + j / 8] >> (j % 8)) & 1;
                    let q = i32::from(yb[2 + j] as i8);
                    s += if bit == 1 { q } else { -q };
                }
                sumi += f16_at(yb) * s as f32;
            }
            sumf += f16_at(blk) * sumi;
        }
        let got = vec_dot(GgmlType::Q1_0, n, &w, &r).unwrap();
        assert_eq!(got.to_bits(), sumf.to_bits(), "{nblk} blocks");
    }
}
