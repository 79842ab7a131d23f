//! Packing of `PTQ1_0` into the native base-3 interleaved layout
//! ([`super::Kind::Trit`]), used where the packed kernels run at AVX-512
//! (`trit_avx512.rs`): 1.75 bits per weight, as the source, against 2.125
//! for `PQ2_0`'s 2-bit codes.
//!
//! Per row group of 16 and weight block of 128 (32 chunks `c` of 4 weights,
//! position `p = 4r + k` = weight `4c + k` of row `r`, as in [`super`]),
//! [`BLOCK_WORDS`] = 56 words, 448 bytes (7 cache lines):
//!
//! | bytes      | field                                                    |
//! |------------|----------------------------------------------------------|
//! | `0..384`   | 6 vectors of 64 bytes: byte `p` of vector `j` holds the  |
//! |            | codes `t_n` (0..=2) of chunks `5j + n`, `n` = 0..5, at   |
//! |            | position `p`, as `PTQ1_0` stores digits: the fraction    |
//! |            | `ceil(v·256/243)` of `v = t0·81 + t1·27 + t2·9 + t3·3 + t4` |
//! | `384..416` | the 16 rows' f16 scales `d` (row `r`: bytes `2r..2r + 2`) |
//! | `416..448` | chunks 30 and 31 as 2-bit codes: byte `i` holds position |
//! |            | `i` in its low nibble, `i + 32` in its high one, each     |
//! |            | nibble `code(chunk 30) | code(chunk 31) << 2`            |
//!
//! Digit `n` of a byte `m_0` is `(3·m_n) >> 8` with `m_{n+1} = 3·m_n mod
//! 256` (the `PTQ1_0` formula, one digit after another), so digit `n` of
//! all 64 positions is what the kernels take from vector `j` for chunk
//! `5j + n`. Vectors first: they are 64-byte aligned (blocks are 7 whole
//! cache lines in page-aligned memory). Padding rows are zero: digit 0 and
//! scale 0, as in the 2-bit layout.
//!
//! The codes are re-encoded from [`crate::ptq1_0::codes`] (as `ternary.rs`
//! reads them): the source's bytes hold weights 16 or 8 apart, the vectors
//! weights 4 apart. Bytes above 242 in the source decode to what the C
//! formula gives and are re-encoded canonically.

use super::{Shape, ROWS};
use crate::ptq1_0::{codes, BLOCK_BYTES, D_AT, QK};

/// `u64` words per block (16 rows × 128 weights).
pub(super) const BLOCK_WORDS: usize = 56;
/// Bytes per block, and the offsets of its scales and of the tail chunks.
const BYTES: usize = 8 * BLOCK_WORDS;
pub(super) const SCALES_AT: usize = 384;
pub(super) const TAIL_AT: usize = 416;
/// Chunks held in base-3 vectors (5 per vector).
pub(super) const VECTORS: usize = 6;

/// The byte of five base-3 digits `v` (`t0` highest): `ceil(v·256/243)`.
const ENC: [u8; 243] = {
    let mut t = [0u8; 243];
    let mut v = 0;
    while v < 243 {
        t[v] = (v * 256).div_ceil(243) as u8;
        v += 1;
    }
    t
};

impl Shape {
    pub(super) fn pack_trit_group(&self, src: &[u8], row_bytes: usize, g: usize, dst: &mut [u64]) {
        debug_assert_eq!(self.format.group, QK);
        let mut code = [[0u8; QK]; ROWS];
        let mut out = [0u8; BYTES];
        for (b, words) in dst.chunks_exact_mut(BLOCK_WORDS).enumerate() {
            out.fill(0);
            for (r, cr) in code.iter_mut().enumerate() {
                let row = g * ROWS + r;
                if row >= self.rows {
                    // Digit 0, scale 0.
                    cr.fill(0);
                    continue;
                }
                let blk = &src[row * row_bytes + b * BLOCK_BYTES..][..BLOCK_BYTES];
                *cr = codes(blk);
                out[SCALES_AT + 2 * r..SCALES_AT + 2 * r + 2].copy_from_slice(&blk[D_AT..D_AT + 2]);
            }
            for j in 0..VECTORS {
                for (r, cr) in code.iter().enumerate() {
                    for k in 0..4 {
                        let v = (0..5).fold(0, |v, n| 3 * v + usize::from(cr[4 * (5 * j + n) + k]));
                        out[64 * j + 4 * r + k] = ENC[v];
                    }
                }
            }
            // Chunks 30, 31 (weights 120..128): position p = 4r + k.
            let nib = |p: usize| {
                let (r, k) = (p / 4, p % 4);
                code[r][120 + k] | (code[r][124 + k] << 2)
            };
            for i in 0..32 {
                out[TAIL_AT + i] = nib(i) | (nib(i + 32) << 4);
            }
            for (w, b8) in words.iter_mut().zip(out.chunks_exact(8)) {
                *w = u64::from_le_bytes(b8.try_into().expect("8 bytes"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ENC;

    /// Digit `n` of byte `b`, the `PTQ1_0` formula.
    fn digit(b: u8, n: u32) -> u32 {
        (((u32::from(b) * 3u32.pow(n)) & 255) * 3) >> 8
    }

    #[test]
    fn encoding_round_trips_and_the_kernel_identity_holds() {
        for (v, &b) in ENC.iter().enumerate() {
            let mut m = u32::from(b);
            for n in 0..5u32 {
                let want = (v as u32 / 3u32.pow(4 - n)) % 3;
                assert_eq!(digit(b, n), want, "v {v} n {n}");
                // The kernels' identity: 3·m_n − m_{n+1} = 256·digit_n,
                // and the prefill expansion's compares.
                let m1 = (3 * m) & 255;
                assert_eq!(3 * m - m1, 256 * want, "v {v} n {n}");
                assert_eq!(u32::from(m >= 86) + u32::from(m >= 171), want);
                m = m1;
            }
        }
    }
}
