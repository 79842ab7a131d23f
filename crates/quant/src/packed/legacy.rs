//! Packing of `Q5_0` and `Q8_0` into the interleaved layout of [`super`]
//! (weight group = activation block = 32; 8 chunks of 4 weights × 16 rows).
//!
//! The kernels want, per chunk, 64 unsigned bytes whose byte `4r + k` is
//! weight `4c + k` of row `r`, for `vpdpbusd`'s unsigned operand:
//! * `Q8_0` (q8_0.rs: f16 `d`, 32 `int8`): the byte `q + 128` (`q ^ 0x80`),
//!   8 words per chunk; the kernel subtracts `128·Σ a` per block. Same
//!   size as the source (34 bytes per row and block).
//! * `Q5_0` (q5_0.rs: f16 `d`, `qh` fifth bits, `qs` nibbles; value
//!   `(q − 16)·d`, `q` in 0..=31): 4 words of nibbles, byte `i` holding the
//!   low 4 bits of output byte `i` (low nibble) and of output byte `i + 32`
//!   (high nibble), then 1 word whose bit `o` is the fifth bit of output
//!   byte `o`; the kernel subtracts `16·Σ a`. 22 bytes per row and block,
//!   as in the source.

use super::{Kind, Shape, ROWS};

/// Quant `j` (0..32) of a `Q5_0` block, 0..=31 (q5_0.rs layout).
fn q5_0_quant(blk: &[u8], j: usize) -> u8 {
    let qh = u32::from_le_bytes([blk[2], blk[3], blk[4], blk[5]]);
    let nib = if j < 16 {
        blk[6 + j] & 0xF
    } else {
        blk[6 + j - 16] >> 4
    };
    nib | ((((qh >> j) & 1) as u8) << 4)
}

impl Shape {
    pub(super) fn pack_legacy_group(
        &self,
        src: &[u8],
        row_bytes: usize,
        g: usize,
        dst: &mut [u64],
    ) {
        let bw = self.format.block_words();
        let blk_bytes = self.ty.type_size();
        for r in 0..ROWS {
            let row = g * ROWS + r;
            if row >= self.rows {
                break;
            }
            let src_row = &src[row * row_bytes..(row + 1) * row_bytes];
            for (b, blk) in src_row.chunks_exact(blk_bytes).enumerate() {
                let out = &mut dst[b * bw..(b + 1) * bw];
                out[r / 4] |= u64::from(u16::from_le_bytes([blk[0], blk[1]])) << (16 * (r % 4));
                for c in 0..8 {
                    for k in 0..4 {
                        let j = 4 * c + k;
                        let o = 4 * r + k; // output byte within the chunk
                        match self.format.kind {
                            Kind::Q8_0 => {
                                let byte = blk[2 + j] ^ 0x80;
                                out[4 + 8 * c + o / 8] |= u64::from(byte) << (8 * (o % 8));
                            }
                            Kind::Q5_0 => {
                                let q = q5_0_quant(blk, j);
                                let (i, shift) = if o < 32 { (o, 0) } else { (o - 32, 4) };
                                let w = 4 + 5 * c;
                                out[w + i / 8] |= u64::from(q & 0xF) << (8 * (i % 8) + shift);
                                out[w + 4] |= u64::from(q >> 4) << o;
                            }
                            Kind::Ternary { .. } => unreachable!("packed by ternary.rs"),
                            Kind::Q4K | Kind::Q6K => unreachable!("packed by kquant.rs"),
                            Kind::Trit => unreachable!("packed by trit.rs"),
                        }
                    }
                }
            }
        }
    }
}
