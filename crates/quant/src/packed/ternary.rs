//! Packing of the 1-bit and ternary formats into the bit-plane layout of
//! [`super`] (1 sign bit per weight for `Q1_0`, a 2-bit code otherwise).
//!
//! Every source block is first read as a run of bytes in weight order
//! ([`block_bytes`]): `Q1_0`'s sign bits as they are (8 weights per byte),
//! and for the ternary formats one byte per 4 weights holding their 2-bit
//! codes, lowest first (`Q2_0`'s own `qs`; `TQ2_0` / `TQ1_0` / `PTQ1_0`
//! rearranged).
//! Each row's 4 bytes of 8 (`Q1_0`) or 4 (ternary) chunks are then
//! transposed so that a byte holds one weight position of every chunk: by
//! a table for the sign bits, as a 4 × 4 matrix of 2-bit codes for the
//! ternary formats. A word costs a few register operations (an 8B model
//! packs in about a second).

use super::{Shape, ROWS};
use crate::GgmlType;

/// A byte of 8 sign bits (weights `8b..8b + 8`: chunks `2b` and `2b + 1`)
/// spread to the output bytes `m` = 0..4 of a row: bit `m` (chunk `2b`) to
/// bit 0 of byte `m`, bit `m + 4` (chunk `2b + 1`) to bit 1; shifted left
/// by `2b` afterwards.
const SIGN_SPREAD: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut x = 0;
    while x < 256 {
        let mut m = 0;
        while m < 4 {
            let lo = ((x >> m) & 1) as u32;
            let hi = ((x >> (m + 4)) & 1) as u32;
            t[x] |= (lo | (hi << 1)) << (8 * m);
            m += 1;
        }
        x += 1;
    }
    t
};

/// Swaps the bits of `x` selected by `mask` with those `d` places above.
fn delta_swap(x: u32, mask: u32, d: u32) -> u32 {
    let t = ((x >> d) ^ x) & mask;
    x ^ t ^ (t << d)
}

/// Transposes a 4 × 4 matrix of 2-bit fields: the field at bits
/// `8i + 2m` moves to bits `8m + 2i` (byte `i` = a chunk's 4 codes in, byte
/// `m` = weight `m` of 4 chunks out). Two swaps: within 2 × 2 sub-blocks,
/// then of the off-diagonal sub-blocks.
fn transpose_crumbs(x: u32) -> u32 {
    delta_swap(delta_swap(x, 0x00CC_00CC, 6), 0x0000_F0F0, 12)
}

/// The f16 scale bits of a block and its bytes in weight order (see the
/// module doc) written to `out` (`G / 8` bytes for `Q1_0`, `G / 4` else).
fn block_bytes(ty: GgmlType, blk: &[u8], out: &mut [u8]) -> u16 {
    use GgmlType::*;
    let d = |i: usize| u16::from_le_bytes([blk[i], blk[i + 1]]);
    match ty {
        // q1_0.rs / q2_0.rs: f16 d, then the bits or 2-bit codes in order.
        Q1_0 | Q2_0 | Q2_0G128 | PQ2_0 => {
            // Fixed lengths, so the copies are inlined (not a libc call
            // per block).
            match out.len() {
                16 => out.copy_from_slice(&blk[2..18]),
                32 => out.copy_from_slice(&blk[2..34]),
                n => out.copy_from_slice(&blk[2..2 + n]),
            }
            d(0)
        }
        TQ2_0 => {
            // tq2_0.rs: weight i has code (qs[32·(i/128) + i%32] >> 2·((i%128)/32)) & 3,
            // so 4 consecutive weights sit at one shift in 4 consecutive bytes.
            for (c, o) in out.iter_mut().enumerate() {
                let i = 4 * c;
                let (base, sh) = (32 * (i / 128) + i % 32, 2 * ((i % 128) / 32));
                *o = (0..4).fold(0, |b, k| b | (((blk[base + k] >> sh) & 3) << (2 * k)));
            }
            d(64)
        }
        TQ1_0 => {
            let codes = crate::tq1_0::codes(blk);
            for (o, four) in out.iter_mut().zip(codes.chunks_exact(4)) {
                *o = four.iter().rev().fold(0, |b, &c| (b << 2) | c);
            }
            d(52)
        }
        PTQ1_0 => {
            let codes = crate::ptq1_0::codes(blk);
            for (o, four) in out.iter_mut().zip(codes.chunks_exact(4)) {
                *o = four.iter().rev().fold(0, |b, &c| (b << 2) | c);
            }
            d(crate::ptq1_0::D_AT)
        }
        _ => unreachable!("PackFormat::of admits only the formats above"),
    }
}

impl Shape {
    pub(super) fn pack_ternary_group(
        &self,
        src: &[u8],
        row_bytes: usize,
        g: usize,
        dst: &mut [u64],
    ) {
        let f = self.format;
        let bw = f.block_words();
        let blk_bytes = self.ty.type_size();
        let sign = self.ty == GgmlType::Q1_0;
        // Bytes per block in weight order: 8 or 4 weights each.
        let nbytes = if sign { f.group / 8 } else { f.group / 4 };
        let mut bytes = [[0u8; 64]; ROWS];
        for (b, out) in dst.chunks_exact_mut(bw).enumerate() {
            for (r, rb) in bytes.iter_mut().enumerate() {
                let row = g * ROWS + r;
                if row >= self.rows {
                    rb.fill(0);
                    continue;
                }
                let off = row * row_bytes + b * blk_bytes;
                let d = block_bytes(self.ty, &src[off..off + blk_bytes], &mut rb[..nbytes]);
                out[r / 4] |= u64::from(d) << (16 * (r % 4));
            }
            let words = &mut out[4..];
            // Every 4 source bytes of a row fill its 4 bytes of 8 words:
            // byte 4r + m holds weight 4c + m of row r of the chunks c
            // those words cover, at bits 2·(c % 4) (codes of 4 chunks) or
            // bit c % 8 (signs of 8 chunks).
            for j in 0..nbytes / 4 {
                for (r, rb) in bytes.iter().enumerate() {
                    let four = [rb[4 * j], rb[4 * j + 1], rb[4 * j + 2], rb[4 * j + 3]];
                    let y = if sign {
                        four.iter()
                            .enumerate()
                            .fold(0, |y, (b, &x)| y | (SIGN_SPREAD[x as usize] << (2 * b)))
                    } else {
                        transpose_crumbs(u32::from_le_bytes(four))
                    };
                    words[8 * j + r / 2] |= u64::from(y) << (32 * (r % 2));
                }
            }
        }
    }
}
