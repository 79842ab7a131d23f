//! Packing of `Q4_K` and `Q6_K` into the interleaved layout of [`super`],
//! and the planar `Q8_K` activation rows their kernels
//! ([`super::kquant_avx512`]) read.
//!
//! Why: the row-major K-quant kernels decode a super-block of one row, then
//! need `maddubs` + `dpwssd` per 64 weights and a horizontal reduction per
//! row. Interleaving 16 rows lets one `vpdpbusd` multiply 4 weights of each
//! of 16 rows (one `i32` lane per row) by 4 broadcast activations, and lets
//! one decoded chunk serve a tile of tokens in prefill.
//!
//! Source formats (ggml-common.h, QK_K = 256):
//! * `block_q4_K` (144 bytes): f16 `d`, f16 `dmin`, 12 bytes of 6-bit
//!   scales and mins (`get_scale_min_k4`, see [`crate::q4_k`]), 128 bytes
//!   `qs`; weight `x = d·sc_j·q − dmin·m_j`, `q` in 0..=15, sub-block `j` =
//!   32 weights.
//! * `block_q6_K` (210 bytes): `ql[128]`, `qh[64]`, `int8 scales[16]`, f16
//!   `d`; `x = d·sc_j·(q − 32)`, `q` in 0..=63, sub-block `j` = 16 weights
//!   (bit layout in [`crate::q6_k`]).
//!
//! Packed block (16 rows × 256 weights, `u64` words; byte `b` of a field
//! is byte `b % 8` of its word `b / 8`, little-endian). The kernels want,
//! per *chunk* of 4 weights, 64 unsigned bytes whose byte `o = 4r + k` is
//! the code of weight `k` of the chunk in row `r` (the `vpdpbusd` operand).
//!
//! `Q4_K` (296 words = 148 bytes per row and block, +2.8% over 144):
//!
//! | words     | field                                                   |
//! |-----------|---------------------------------------------------------|
//! | `0 .. 4`  | f16 `d` of the 16 rows (row `r`: bits `16r..`)          |
//! | `4 .. 8`  | f16 `dmin`                                              |
//! | `8 .. 24` | `u8 sc`: byte `16j + r` = scale of sub-block `j`, row `r` |
//! | `24 .. 40`| `u8 m`: byte `32(j/2) + 2r + j%2` = min `j` of row `r`    |
//! | `40 ..`   | 32 double chunks of 8 words (codes 0..=15)              |
//!
//! Double chunk `p` (0..32) covers weights `8p .. 8p + 8` as 64 bytes of
//! nibbles: byte `4r + k` holds weight `8p + k` of row `r` in its low
//! nibble and `8p + 4 + k` in its high one (`& 0x0F`, `>> 4 & 0x0F`).
//! The mins are in pairs so that `vpmovzxbw` of 32 bytes gives each row
//! lane the `i16` pair (`m_2k`, `m_2k+1`) that `vpdpwssd` multiplies by the
//! activation's pair of 32-value sums.
//!
//! `Q6_K` (420 words = 210 bytes per row and block, as the source):
//!
//! | words     | field                                                   |
//! |-----------|---------------------------------------------------------|
//! | `0 .. 4`  | f16 `d` of the 16 rows                                  |
//! | `4 .. 36` | `i8 sc`: byte `16j + r` = scale of sub-block `j`, row `r` |
//! | `36 ..`   | 16 sub-blocks of 24 words (codes 0..=63)                |
//!
//! Sub-block `j` (weights `16j .. 16j + 16`, chunks `c` = 0..4) is three
//! 64-byte vectors `v0, v1, v2`: the low 6 bits of byte `4r + k` of `v_c` are
//! the code of chunk `c` (`v_c & 0x3F`), and its bits 6, 7 hold bits
//! `4 − 2c, 5 − 2c` of the code of chunk 3, gathered by three 16-bit
//! shifts, two ternary-logic merges and a final `& 0x3F` (the bits a 16-bit
//! shift moves across bytes land only where the merges and mask drop them).
//! 9 operations per 4 chunks, 6 bits per weight, as the source.
//!
//! Activations: `Q8_K`'s numbers (the `vec_dot_type` of both formats) in
//! a planar row per token: `n` int8 quants, `n/256` f32 scales `d`, then
//! sums of the quants: for `Q4_K` `i16` per 32 values (against the mins:
//! a pair of sums is read as one `u32` and broadcast as the `vpdpwssd`
//! operand); for `Q6_K` the `i32` `−32·bsums[g]` per 16 (`Q8_K`'s
//! `bsums`), the start value of each sub-block's sum: the codes' offset
//! 32 for free.

use super::{Kind, Shape, ROWS};

/// Words per packed `Q4_K` / `Q6_K` block.
pub(super) const Q4K_WORDS: usize = 40 + 32 * 8;
pub(super) const Q6K_WORDS: usize = 36 + 16 * 24;
/// Word offsets of the code double chunks.
pub(super) const Q4K_CODES: usize = 40;
pub(super) const Q6K_CODES: usize = 36;
/// Bytes per source block (`sizeof(block_q4_K)`, `sizeof(block_q6_K)`).
const Q4K_BLOCK: usize = 144;
const Q6K_BLOCK: usize = 210;
/// Bytes per `Q8_K` block (`sizeof(block_q8_K)`: f32 `d`, 256 `qs`, 16
/// `i16 bsums`).
const Q8K_BLOCK: usize = 4 + 256 + 32;

/// Bytes of one planar activation row of `n` values for `kind`: quants,
/// scales, then 8 `i16` (`Q4_K`) or 16 `i32` (`Q6_K`) sums per block.
pub(super) fn act_row_bytes(kind: Kind, n: usize) -> usize {
    let nb = n / 256;
    n + 4 * nb + if kind == Kind::Q4K { 16 } else { 64 } * nb
}

/// Rearranges `Q8_K` rows (`block_q8_K`) into the planar row of `kind`.
pub(super) fn q8_k_to_planar(kind: Kind, src: &[u8], dst: &mut [u8]) {
    let nb = src.len() / Q8K_BLOCK;
    assert_eq!(dst.len(), act_row_bytes(kind, 256 * nb));
    let (q, rest) = dst.split_at_mut(256 * nb);
    let (d, s) = rest.split_at_mut(4 * nb);
    for (i, b) in src.chunks_exact(Q8K_BLOCK).enumerate() {
        d[4 * i..4 * i + 4].copy_from_slice(&b[..4]);
        q[256 * i..256 * (i + 1)].copy_from_slice(&b[4..260]);
        let bsum = |g: usize| i16::from_le_bytes([b[260 + 2 * g], b[261 + 2 * g]]);
        if kind == Kind::Q4K {
            for k in 0..8 {
                // Sums of 32 are two of 16: |sum| <= 32·128, no overflow.
                let v = bsum(2 * k) + bsum(2 * k + 1);
                s[16 * i + 2 * k..16 * i + 2 * k + 2].copy_from_slice(&v.to_le_bytes());
            }
        } else {
            for g in 0..16 {
                let v = -32 * i32::from(bsum(g));
                s[64 * i + 4 * g..64 * i + 4 * g + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
    }
}

/// Code `i` (0..256) of a `block_q4_K` (0..=15): `qs[32c + l]` holds
/// weight `64c + l` in its low nibble and `64c + 32 + l` in its high one
/// (ggml-quants.c `dequantize_row_q4_K`).
fn q4k_code(b: &[u8], i: usize) -> u8 {
    let (c, l) = (i / 64, i % 64);
    let byte = b[16 + 32 * c + l % 32];
    if l < 32 {
        byte & 0x0F
    } else {
        byte >> 4
    }
}

/// Code `i` (0..256) of a `block_q6_K` (0..=63): in half `h`, weight
/// `128h + 32k + l` has low bits in `ql[64h + l + 32(k&1)]` (low nibble for
/// `k < 2`) and high bits `(qh[32h + l] >> 2k) & 3` (ggml-quants.c
/// `dequantize_row_q6_K`).
fn q6k_code(b: &[u8], i: usize) -> u8 {
    let (h, k, l) = (i / 128, i % 128 / 32, i % 32);
    let ql = b[64 * h + l + 32 * (k & 1)];
    let lo = if k < 2 { ql & 0x0F } else { ql >> 4 };
    let hi = (b[128 + 32 * h + l] >> (2 * k)) & 3;
    lo | (hi << 4)
}

/// ORs byte `v` into byte `at` of `words`.
fn put(words: &mut [u64], at: usize, v: u8) {
    words[at / 8] |= u64::from(v) << (8 * (at % 8));
}

impl Shape {
    pub(super) fn pack_kquant_group(
        &self,
        src: &[u8],
        row_bytes: usize,
        g: usize,
        dst: &mut [u64],
    ) {
        let q6 = match self.format.kind {
            Kind::Q4K => false,
            Kind::Q6K => true,
            _ => unreachable!("packed by kquant.rs: Q4_K and Q6_K only"),
        };
        let (bw, blk_bytes) = if q6 {
            (Q6K_WORDS, Q6K_BLOCK)
        } else {
            (Q4K_WORDS, Q4K_BLOCK)
        };
        for r in 0..ROWS {
            let row = g * ROWS + r;
            if row >= self.rows {
                break;
            }
            let src_row = &src[row * row_bytes..(row + 1) * row_bytes];
            for (sb, b) in src_row.chunks_exact(blk_bytes).enumerate() {
                let out = &mut dst[sb * bw..(sb + 1) * bw];
                let code = |i| if q6 { q6k_code(b, i) } else { q4k_code(b, i) };
                if q6 {
                    let d = u16::from_le_bytes([b[208], b[209]]);
                    out[r / 4] |= u64::from(d) << (16 * (r % 4));
                    for j in 0..16 {
                        put(&mut out[4..], 16 * j + r, b[192 + j]);
                    }
                } else {
                    let d = u16::from_le_bytes([b[0], b[1]]);
                    let dmin = u16::from_le_bytes([b[2], b[3]]);
                    out[r / 4] |= u64::from(d) << (16 * (r % 4));
                    out[4 + r / 4] |= u64::from(dmin) << (16 * (r % 4));
                    for j in 0..8 {
                        let (sc, m) = crate::q4_k::scale_min(j, &b[4..16]);
                        put(&mut out[8..], 16 * j + r, sc);
                        put(&mut out[24..], 32 * (j / 2) + 2 * r + j % 2, m);
                    }
                }
                for k in 0..4 {
                    let o = 4 * r + k;
                    if q6 {
                        for (j, v) in out[Q6K_CODES..].chunks_exact_mut(24).enumerate() {
                            let c3 = code(16 * j + 12 + k);
                            for c in 0..3 {
                                let top = (c3 >> (4 - 2 * c)) & 3;
                                put(&mut v[8 * c..], o, code(16 * j + 4 * c + k) | (top << 6));
                            }
                        }
                    } else {
                        for (p, dc) in out[Q4K_CODES..].chunks_exact_mut(8).enumerate() {
                            let (qa, qb) = (code(8 * p + k), code(8 * p + 4 + k));
                            put(dc, o, qa | (qb << 4));
                        }
                    }
                }
            }
        }
    }
}
