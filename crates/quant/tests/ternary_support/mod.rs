//! Shared helpers of the `ternary_*` and `simd_ternary*` tests: building
//! `Q8_0R` activation rows by hand from the documented plane layout
//! (src/q8_0r.rs: `[n i8 quants][n/32 f32 d][n/32 i32 Σq]`), independently
//! of the crate's own quantizer.
#![allow(dead_code)] // each test binary uses a different subset

use half::f16;

/// A `Q8_0R` row from its quants and one `f32` scale per 32 of them; the
/// block sums are computed here.
pub fn q8_0r_from_parts(q: &[i8], d: &[f32]) -> Vec<u8> {
    assert_eq!(q.len(), 32 * d.len());
    let mut a: Vec<u8> = q.iter().map(|&v| v as u8).collect();
    for x in d {
        a.extend_from_slice(&x.to_le_bytes());
    }
    for b in q.chunks_exact(32) {
        let s: i32 = b.iter().map(|&v| i32::from(v)).sum();
        a.extend_from_slice(&s.to_le_bytes());
    }
    a
}

/// The `Q8_0R` row of the same numbers as the `block_q8_0`s in `a`
/// (ggml-common.h: f16 `d`, then 32 `int8` quants).
pub fn q8_0r_from_q8_0(a: &[u8]) -> Vec<u8> {
    assert_eq!(a.len() % 34, 0);
    let mut q = Vec::new();
    let mut d = Vec::new();
    for b in a.chunks_exact(34) {
        d.push(f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32());
        q.extend(b[2..].iter().map(|&v| v as i8));
    }
    q8_0r_from_parts(&q, &d)
}

/// Set the scale of block `i` of the `Q8_0R` row `a`.
pub fn set_q8_0r_scale(a: &mut [u8], i: usize, d: f32) {
    let at = a.len() / 40 * 32 + 4 * i;
    a[at..at + 4].copy_from_slice(&d.to_le_bytes());
}
