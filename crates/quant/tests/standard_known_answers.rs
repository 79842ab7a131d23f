//! Known answers for the standard formats, from references independent of
//! this crate: gguf-py (numpy) and ggml's own C code (via ctypes), both run
//! by tests/data/gen_standard.py, which also checked that the two agree.
//! Plus a few hand-computed `Q8_0` / `Q8_K` blocks.

mod standard_support;

use shohin_quant::{dequantize_row, quantize_row, vec_dot, GgmlType};
use standard_support::{cases, f32s, field, load, STANDARD};

fn first_bit_mismatch(got: &[f32], want: &[f32]) -> Option<usize> {
    assert_eq!(got.len(), want.len());
    (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits())
}

#[test]
fn standard_data_covers_every_format() {
    for (ty, name) in STANDARD {
        let doc = load(name);
        assert_eq!(doc["format"].as_str(), Some(ty.name()), "{name}");
        assert!(
            !cases(&doc, "dequantize").is_empty(),
            "{ty}: no dequantize case"
        );
        // every format but F32 (which is a byte copy) has reference bytes
        if ty != GgmlType::F32 {
            assert!(
                !cases(&doc, "quantize").is_empty(),
                "{ty}: no quantize case"
            );
        }
        // ggml has no Q8_K x Q8_K nor Q8_1 x Q8_1 kernel to compare with
        if ty != GgmlType::Q8K && ty != GgmlType::Q8_1 {
            assert!(!cases(&doc, "vec_dot").is_empty(), "{ty}: no vec_dot case");
        }
    }
}

/// Dequantized floats equal the reference bit for bit (NaN, -0 included).
#[test]
fn standard_dequantize_matches_reference_bits() {
    for (ty, name) in STANDARD {
        for case in cases(&load(name), "dequantize") {
            let src = field(case, "src");
            let want = f32s(&field(case, "dst"));
            assert_eq!(src.len() / ty.type_size() * ty.block_size(), want.len());
            let mut got = vec![0f32; want.len()];
            dequantize_row(ty, &src, &mut got).unwrap();
            if let Some(i) = first_bit_mismatch(&got, &want) {
                panic!(
                    "{ty} dequantize (ref {}): value {i} (block {}) is {:e} ({:#010x}), want {:e} ({:#010x})",
                    case["ref"],
                    i / ty.block_size(),
                    got[i],
                    got[i].to_bits(),
                    want[i],
                    want[i].to_bits()
                );
            }
        }
    }
}

/// Quantized bytes equal the reference quantizer's (ggml `*_ref`, and
/// gguf-py where it has one).
#[test]
fn standard_quantize_matches_reference_bytes() {
    for (ty, name) in STANDARD {
        for case in cases(&load(name), "quantize") {
            let src = f32s(&field(case, "src"));
            let want = field(case, "dst");
            let mut got = vec![0u8; want.len()];
            quantize_row(ty, &src, &mut got).unwrap();
            if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
                let blk = i / ty.type_size();
                let bs = ty.type_size();
                panic!(
                    "{ty} quantize (ref {}): byte {} of block {blk} is {:#04x}, want {:#04x}\n got  {:02x?}\n want {:02x?}",
                    case["ref"],
                    i % bs,
                    got[i],
                    want[i],
                    &got[blk * bs..(blk + 1) * bs],
                    &want[blk * bs..(blk + 1) * bs]
                );
            }
        }
    }
}

/// The dot products agree with ggml-cpu's `ggml_vec_dot_*` kernels (the
/// ones llama.cpp dispatches to; SIMD on the generating machine). The
/// generator also ran the scalar `ggml_vec_dot_*_generic` kernels: they
/// agree too, except `ggml_vec_dot_q5_0_q8_0_generic`, which GCC 12.2
/// `-O3 -march=native` miscompiles (see `generic_agrees` in q5_0.json).
/// Integer parts are exact everywhere; only the `f32` rounding order
/// differs (SIMD lanes, FMA), so allow a few `f32` roundings of the sum of
/// magnitudes: `(nblocks + 8)·2⁻²³·Σ|w·a|`.
#[test]
fn standard_vec_dot_matches_ggml() {
    for (ty, name) in STANDARD {
        let at = ty.vec_dot_type();
        for case in cases(&load(name), "vec_dot") {
            let (w, a) = (field(case, "w"), field(case, "a"));
            let want = f32s(&field(case, "dot"))[0];
            let n = w.len() / ty.type_size() * ty.block_size();
            let got = vec_dot(ty, n, &w, &a).unwrap();
            let (mut wd, mut ad) = (vec![0f32; n], vec![0f32; n]);
            dequantize_row(ty, &w, &mut wd).unwrap();
            dequantize_row(at, &a, &mut ad).unwrap();
            let mag: f64 = wd
                .iter()
                .zip(&ad)
                .map(|(x, y)| f64::from(x * y).abs())
                .sum();
            let nblocks = (n / ty.block_size()) as f64;
            let tol = (nblocks + 8.0) * f64::from(f32::EPSILON) * mag;
            let err = (f64::from(got) - f64::from(want)).abs();
            assert!(
                err <= tol,
                "{ty} vec_dot n={n}: {got:e}, ggml {want:e} (err {err:e} > {tol:e})"
            );
        }
    }
}

/// Q8_0 at exact halves: amax = 127 gives d = 1 (f16 0x3C00) and
/// `roundf` sends ±2.5 to ±3, ±0.5 to ±1 (away from zero); 126.5 → 127.
#[test]
fn standard_q8_0_hand_computed() {
    let mut x = [0f32; 32];
    let pattern = [-127.0, 2.5, -2.5, 0.5, -0.5, 1.5, 3.5, 126.5];
    for (i, v) in x.iter_mut().enumerate() {
        *v = pattern[i % 8];
    }
    let want_q: [i8; 8] = [-127, 3, -3, 1, -1, 2, 4, 127];
    let mut b = [0u8; 34];
    quantize_row(GgmlType::Q8_0, &x, &mut b).unwrap();
    assert_eq!(&b[..2], &[0x00, 0x3C], "d = 127/127 = 1.0");
    for i in 0..32 {
        assert_eq!(b[2 + i] as i8, want_q[i % 8], "q[{i}] of {}", x[i]);
    }
    // an all-zero block: d = 0, quants 0
    quantize_row(GgmlType::Q8_0, &[0.0; 32], &mut b).unwrap();
    assert_eq!(b, [0u8; 34]);
    // d = amax/127 is rounded to f16 after 1/d was taken from the f32 value
    let mut y = [0f32; 32];
    y[0] = 1.0;
    y[1] = -0.5;
    quantize_row(GgmlType::Q8_0, &y, &mut b).unwrap();
    // 1/127 = 0.007874016 -> f16 0x2008 (0.0078735...)
    assert_eq!(u16::from_le_bytes([b[0], b[1]]), 0x2008);
    assert_eq!((b[2] as i8, b[3] as i8), (127, -64)); // -63.5 rounds away
}

/// Q8_K: `max = -127` gives iscale = 1, d = 1.0 (f32 0x3F800000) and
/// `nearest_int` ties to even: ±2.5 → ±2, ±0.5 → 0, 1.5 → 2, 3.5 → 4,
/// 126.5 → 126. bsums add up each 16 quants.
#[test]
fn standard_q8_k_hand_computed() {
    let pattern = [-127.0f32, 2.5, -2.5, 0.5, -0.5, 1.5, 3.5, 126.5];
    let want_q: [i8; 8] = [-127, 2, -2, 0, 0, 2, 4, 126];
    let mut x = [0f32; 256];
    for (i, v) in x.iter_mut().enumerate() {
        *v = pattern[i % 8];
    }
    // the first value has the largest magnitude; a later +127 would tie
    // with it in magnitude and must not replace it
    x[200] = 127.0;
    let mut b = vec![0u8; 292];
    quantize_row(GgmlType::Q8K, &x, &mut b).unwrap();
    assert_eq!(&b[..4], &1.0f32.to_le_bytes());
    for i in 0..256 {
        let want = if i == 200 { 127 } else { want_q[i % 8] };
        assert_eq!(b[4 + i] as i8, want, "q[{i}] of {}", x[i]);
    }
    // each group of 16 is the pattern twice: 2·(-127+2-2+0+0+2+4+126) = 10
    for g in 0..16 {
        let s = i16::from_le_bytes([b[260 + 2 * g], b[261 + 2 * g]]);
        // x[200] replaced a -127 (200 % 8 == 0) by 127: +254 in group 12
        let want = if g == 200 / 16 { 10 + 254 } else { 10 };
        assert_eq!(s, want, "bsums[{g}]");
    }
    // positive max: iscale = -127/127 = -1, so d = -1 and quants flip sign
    let mut y = [0f32; 256];
    y[5] = 127.0;
    y[6] = 2.5;
    quantize_row(GgmlType::Q8K, &y, &mut b).unwrap();
    assert_eq!(&b[..4], &(-1.0f32).to_le_bytes());
    assert_eq!((b[4 + 5] as i8, b[4 + 6] as i8), (-127, -2));
    assert_eq!(i16::from_le_bytes([b[260], b[261]]), -129);
    // all zero: d = 0, everything 0
    quantize_row(GgmlType::Q8K, &[0.0; 256], &mut b).unwrap();
    assert!(b.iter().all(|&v| v == 0));
}
