//! Row-interleaved bit-plane repacking of the 1-bit and ternary formats
//! (`Q1_0`, `Q2_0` g64, `Q2_0` g128 / `PQ2_0`, `TQ1_0`, `TQ2_0`), done once
//! at load, and the matrix products that run on it.
//!
//! Why: a row-major 1-bit row costs a horizontal reduction per 32 weights
//! (one `Q8_0` activation block), which makes llama.cpp's and shohin's
//! row-at-a-time kernels compute-bound far below memory bandwidth. Here 16
//! rows are interleaved so that one 512-bit `vpdpbusd` multiplies 4
//! consecutive weights of each of 16 rows (one `i32` lane per row) by the
//! same 4 activations (a broadcast): the lanes *are* the output rows, and no
//! reduction is left. The same expanded weights serve a whole tile of
//! tokens during prompt processing.
//!
//! Layout. Rows are taken in groups of [`ROWS`] = 16 (the last group padded
//! with zero rows). Group after group, and within a group one *block* per
//! weight group of `G` weights (the format's block: 128 for `Q1_0`, 64 /
//! 128 for `Q2_0`, 256 for `TQ*`), a block being `u64` words:
//!
//! | words            | field                                                 |
//! |------------------|-------------------------------------------------------|
//! | `0 .. 4`         | the 16 rows' f16 scales `d` (row `r`: bits `16r..`)   |
//! | `4 ..`           | for chunk `c` of 4 weights (`c < G/4`), `P` planes:   |
//! |                  | bit `4r + k` of plane `p` = bit `p` of the code of    |
//! |                  | weight `4c + k` of row `r`                            |
//!
//! `P` = 1 for `Q1_0` (the sign bit, `w = (2·bit − 1)·d`) and 2 for the
//! ternary formats (code 0..=3, `w = (code − 1)·d`; `TQ1_0` trits are
//! stored as codes too, so it takes `TQ2_0`'s size). A plane word is
//! exactly an AVX-512 byte mask whose byte `4r + k` lines up with lane `r`
//! of `vpdpbusd`. Sizes equal the source's (18·16 bytes per `Q1_0` / `Q2_0`
//! block group, 34·16 for g128, 66·16 for `TQ2_0`), except `TQ1_0` (+22%).
//!
//! Activations are read in a planar layout per token (`n` int8 quants, then
//! `n/S` f32 scales, then `n/S` i32 quant sums): exactly [`crate::q8_0r`]
//! for `S = 32`, and `Q8_K`'s numbers rearranged the same way for `S = 256`
//! ([`q8_k_to_planar`]), so the products are the same as the row-major
//! kernels': per activation block the exact integer sum, `Σ code·q − Σ q`
//! (or `2·Σ bit·q − Σ q`), scaled by the activation's `d`, summed per
//! weight group and scaled by the weight's `d`, as ggml does.

#[cfg(target_arch = "x86_64")]
mod avx512;

use crate::simd::{isa, Isa};
use crate::GgmlType;
use rayon::prelude::*;
use std::ops::Range;

/// Rows per interleaved group: the `i32` lanes of a 512-bit vector.
pub const ROWS: usize = 16;

/// The packed shape of a format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackFormat {
    /// Bit planes per weight: 1 (sign) or 2 (2-bit code).
    pub planes: usize,
    /// Weights per scale (the format's block).
    pub group: usize,
    /// Values per activation scale: 32 (`Q8_0`) or 256 (`Q8_K`).
    pub act_block: usize,
}

impl PackFormat {
    /// The packed shape of `ty`, if it is one of the formats packed here.
    pub fn of(ty: GgmlType) -> Option<Self> {
        use GgmlType::*;
        let (planes, group, act_block) = match ty {
            Q1_0 => (1, 128, 32),
            Q2_0 => (2, 64, 32),
            Q2_0G128 | PQ2_0 => (2, 128, 32),
            TQ1_0 | TQ2_0 => (2, 256, 256),
            _ => return None,
        };
        Some(Self {
            planes,
            group,
            act_block,
        })
    }

    /// `u64` words per block (one weight group of 16 rows).
    pub fn block_words(self) -> usize {
        4 + self.group / 4 * self.planes
    }

    /// Bytes of one planar activation row of `n` values.
    pub fn act_row_bytes(self, n: usize) -> usize {
        n + 8 * (n / self.act_block)
    }
}

/// A matrix repacked for the interleaved kernels.
#[derive(Debug)]
pub struct PackedMatrix {
    pub ty: GgmlType,
    pub format: PackFormat,
    pub rows: usize,
    pub cols: usize,
    data: Vec<u64>,
}

/// Whether this CPU has the packed kernels (chosen with the other kernels:
/// [`isa`], so `SHOHIN_ISA` caps them too).
pub fn available() -> bool {
    isa() >= Isa::Avx512
}

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
    /// Repack `rows` rows of `cols` weights of `ty` (row-major, `src`).
    /// `None` when `ty` is not a packed format, the shape is not whole
    /// blocks, or this CPU has no packed kernel: the row-major kernels run
    /// then.
    pub fn pack(ty: GgmlType, rows: usize, cols: usize, src: &[u8]) -> Option<Self> {
        let format = PackFormat::of(ty)?;
        if !available() || cols == 0 || !cols.is_multiple_of(format.group) {
            return None;
        }
        let row_bytes = crate::row_bytes(ty, cols).ok()?;
        if src.len() != rows.checked_mul(row_bytes)? {
            return None;
        }
        let n_groups = rows.div_ceil(ROWS);
        let gw = cols / format.group * format.block_words();
        let mut data = vec![0u64; n_groups.checked_mul(gw)?];
        let m = Self {
            ty,
            format,
            rows,
            cols,
            data: Vec::new(),
        };
        let pack_one = |(g, dst): (usize, &mut [u64])| m.pack_group(src, row_bytes, g, dst);
        data.par_chunks_mut(gw).enumerate().for_each(pack_one);
        Some(Self { data, ..m })
    }

    /// Row groups of 16 (the last one possibly padded).
    pub fn n_groups(&self) -> usize {
        self.rows.div_ceil(ROWS)
    }

    /// `u64` words per row group.
    fn group_words(&self) -> usize {
        self.cols / self.format.group * self.format.block_words()
    }

    /// Resident bytes of the packed weights.
    pub fn bytes(&self) -> usize {
        self.data.len() * 8
    }

    /// The activation format to quantize to before [`Self::matmul_groups`]
    /// (`Q8_0R` as is; `Q8_K` then [`q8_k_to_planar`]).
    pub fn act_type(&self) -> GgmlType {
        if self.format.act_block == 32 {
            GgmlType::Q8_0R
        } else {
            GgmlType::Q8K
        }
    }

    fn pack_group(&self, src: &[u8], row_bytes: usize, g: usize, dst: &mut [u64]) {
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

    /// Products of the row groups `groups` with `n_tokens` planar
    /// activation rows (`a_row` bytes apart, see [`PackFormat::act_row_bytes`]).
    /// `band` is `[group][token][16]`: row `16g + i`, token `t` lands at
    /// `((g - groups.start) · n_tokens + t) · 16 + i` (padding rows too).
    pub fn matmul_groups(
        &self,
        acts: &[u8],
        a_row: usize,
        n_tokens: usize,
        groups: Range<usize>,
        band: &mut [f32],
    ) {
        assert!(groups.end <= self.n_groups());
        assert!(a_row >= self.format.act_row_bytes(self.cols));
        assert!(acts.len() >= n_tokens * a_row);
        assert_eq!(band.len(), groups.len() * n_tokens * ROWS);
        let gw = self.group_words();
        let w = &self.data[groups.start * gw..groups.end * gw];
        #[cfg(target_arch = "x86_64")]
        if available() {
            // SAFETY: AVX-512 F/BW/VNNI confirmed by `available()`; the
            // asserts above bound every read of `w`, `acts` and write of `band`.
            unsafe { avx512::matmul(self, w, acts, a_row, n_tokens, band) };
            return;
        }
        unreachable!("a PackedMatrix exists only where its kernels run");
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

/// Rearranges `Q8_K` rows (`block_q8_K`: f32 `d`, 256 int8, 16 i16 sums)
/// into the planar layout of `S = 256` ([`PackFormat::act_row_bytes`]):
/// the same numbers, quants contiguous.
pub fn q8_k_to_planar(src: &[u8], dst: &mut [u8]) {
    const QK: usize = 256;
    const BLOCK: usize = 4 + QK + 2 * (QK / 16);
    let nb = src.len() / BLOCK;
    assert_eq!(dst.len(), nb * (QK + 8));
    let (q, rest) = dst.split_at_mut(nb * QK);
    let (d, s) = rest.split_at_mut(4 * nb);
    for (i, b) in src.chunks_exact(BLOCK).enumerate() {
        d[4 * i..4 * i + 4].copy_from_slice(&b[..4]);
        q[QK * i..QK * (i + 1)].copy_from_slice(&b[4..4 + QK]);
        let sum: i32 = b[4 + QK..]
            .chunks_exact(2)
            .map(|p| i32::from(i16::from_le_bytes([p[0], p[1]])))
            .sum();
        s[4 * i..4 * i + 4].copy_from_slice(&sum.to_le_bytes());
    }
}
