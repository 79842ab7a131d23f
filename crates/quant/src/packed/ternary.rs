//! Packing of the 1-bit and ternary formats into the bit-plane layout of
//! [`super`] (`P` = 1 sign plane for `Q1_0`, 2 code planes otherwise).

use super::{PackedMatrix, ROWS};
use crate::GgmlType;

/// Bits 0, 2, 4, 6 (`LO`) and 1, 3, 5, 7 (`HI`) of a byte of four 2-bit
/// codes, gathered into a nibble: the two planes of 4 weights.
const PLANE_LO: [u8; 256] = planes_table(0);
const PLANE_HI: [u8; 256] = planes_table(1);

const fn planes_table(bit: usize) -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut x = 0;
    while x < 256 {
        let mut k = 0;
        while k < 4 {
            t[x] |= (((x >> (2 * k + bit)) & 1) as u8) << k;
            k += 1;
        }
        x += 1;
    }
    t
}

impl PackedMatrix {
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
        for r in 0..ROWS {
            let row = g * ROWS + r;
            if row >= self.rows {
                break;
            }
            let src_row = &src[row * row_bytes..(row + 1) * row_bytes];
            for (b, blk) in src_row.chunks_exact(blk_bytes).enumerate() {
                let out = &mut dst[b * bw..(b + 1) * bw];
                let (d_bits, codes) = self.split_block(blk);
                out[r / 4] |= u64::from(d_bits) << (16 * (r % 4));
                let words = &mut out[4..];
                match codes {
                    Codes::Bits(qs) => {
                        for (c, w) in words.iter_mut().enumerate() {
                            let nib = (qs[c / 2] >> (4 * (c % 2))) & 0xF;
                            *w |= u64::from(nib) << (4 * r);
                        }
                    }
                    Codes::Pairs(qs) => {
                        for (c, &x) in qs.iter().enumerate() {
                            words[2 * c] |= u64::from(PLANE_LO[x as usize]) << (4 * r);
                            words[2 * c + 1] |= u64::from(PLANE_HI[x as usize]) << (4 * r);
                        }
                    }
                    Codes::Each(codes) => {
                        for (c, four) in codes.chunks_exact(4).enumerate() {
                            let (mut lo, mut hi) = (0u64, 0u64);
                            for (k, &code) in four.iter().enumerate() {
                                lo |= u64::from(code & 1) << k;
                                hi |= u64::from(code >> 1) << k;
                            }
                            words[2 * c] |= lo << (4 * r);
                            words[2 * c + 1] |= hi << (4 * r);
                        }
                    }
                }
            }
        }
    }

    /// The f16 scale bits of one source block and its codes.
    fn split_block<'b>(&self, blk: &'b [u8]) -> (u16, Codes<'b>) {
        use GgmlType::*;
        match self.ty {
            // q1_0.rs: f16 d, then 16 bytes of sign bits, LSB first.
            Q1_0 => (u16::from_le_bytes([blk[0], blk[1]]), Codes::Bits(&blk[2..])),
            // q2_0.rs: f16 d, then four 2-bit codes per byte, lowest first.
            Q2_0 | Q2_0G128 | PQ2_0 => (
                u16::from_le_bytes([blk[0], blk[1]]),
                Codes::Pairs(&blk[2..]),
            ),
            TQ2_0 => (
                u16::from_le_bytes([blk[64], blk[65]]),
                Codes::Each(crate::tq2_0::codes(blk)),
            ),
            TQ1_0 => (
                u16::from_le_bytes([blk[52], blk[53]]),
                Codes::Each(crate::tq1_0::codes(blk)),
            ),
            _ => unreachable!("PackFormat::of admits only the formats above"),
        }
    }
}

// A short-lived value on the stack: boxing the array would cost an
// allocation per block while packing.
#[allow(clippy::large_enum_variant)]
enum Codes<'b> {
    /// `Q1_0` sign bits (`P` = 1), 8 weights per byte.
    Bits(&'b [u8]),
    /// 2-bit codes, 4 consecutive weights per byte.
    Pairs(&'b [u8]),
    /// One code per weight (formats whose bytes are not in weight order).
    Each([u8; 256]),
}
