//! Row-interleaved repacking, done once at load, of the 1-bit and ternary
//! formats (`Q1_0`, `Q2_0` g64, `Q2_0` g128 / `PQ2_0`, `PTQ1_0`, `TQ1_0`, `TQ2_0`:
//! bit planes, below) and of `Q5_0`, `Q8_0` (`legacy.rs`), `Q4_K`, `Q6_K`
//! (`kquant.rs`), and the matrix products that run on it (AVX-512 VNNI
//! `avx512.rs` / `kquant_avx512.rs`, AVX2 `avx2.rs` for all but the K-quants);
//! on AVX-512, `PTQ1_0` keeps its base-3 bytes instead (`trit.rs`, kernels
//! `trit_avx512.rs`).
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
//! 128 for `Q2_0`, 128 for `PTQ1_0`, 256 for `TQ*`), a block being `u64` words:
//!
//! | words            | field                                                 |
//! |------------------|-------------------------------------------------------|
//! | `0 .. 4`         | the 16 rows' f16 scales `d` (row `r`: bits `16r..`)   |
//! | `4 ..`           | the chunks of 4 weights (`c < G/4`), by kind:         |
//! |                  | sign (`Q1_0`): 8 words per 8 chunks, byte `4r + k`    |
//! |                  | holding weight `4c + k` of row `r` of chunk `c` at    |
//! |                  | bit `c % 8`;                                          |
//! |                  | 2-bit codes (ternary): 8 words per 4 chunks, byte     |
//! |                  | `4r + k` holding weight `4c + k` of row `r` of chunk  |
//! |                  | `c` at bits `2·(c % 4)`                               |
//!
//! `Q1_0`: `w = (2·bit − 1)·d`. Ternary formats: code 0..=3,
//! `w = (code − 1)·d` (`TQ1_0` trits are stored as codes too, so they take
//! `TQ2_0`'s size and run its kernels; so are `PTQ1_0`'s where the kernels
//! run at AVX2, taking `PQ2_0`'s size and kernels). Either way a chunk's 64
//! bytes, byte `4r + k` lined up with lane `r` of `vpdpbusd`, are one shift
//! and one AND from a 64-byte load shared by 8 or 4 chunks.
//!
//! `PTQ1_0` where the kernels run at AVX-512 ([`Kind::Trit`], `trit.rs`):
//! the same chunk positions and scales, but 5 chunks' codes per byte as
//! base-3 fractions (the source's own encoding, interleaved) and the
//! scales after them: 56 words per block instead of 68.
//!
//! Sizes equal the source's (18·16 bytes per `Q1_0` / `Q2_0` block group,
//! 34·16 for g128, 66·16 for `TQ2_0`), except `TQ1_0` (+22%) and `PTQ1_0`:
//! 28·16 bytes become 448 (`Trit`, AVX-512: +0%) or 34·16 (codes, AVX2:
//! +21%).
//!
//! Activations are read in a planar layout per token (`n` int8 quants, then
//! `n/S` f32 scales, then `n/S` i32 quant sums): exactly [`crate::q8_0r`]
//! for `S = 32`, and `Q8_K`'s numbers rearranged the same way for `S = 256`
//! ([`q8_k_to_planar`]); for 1-bit and ternary formats whose weight group
//! spans several activation blocks, `n/G` f32 group offset terms follow
//! (`PackedMatrix::group_offset_terms`). The products are the row-major
//! kernels' up to float rounding: per activation block the exact integer sum, `Σ code·q − Σ q`
//! (or `2·Σ bit·q − Σ q`), scaled by the activation's `d`, summed per
//! weight group and scaled by the weight's `d`, as ggml does.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod kquant;
#[cfg(target_arch = "x86_64")]
mod kquant_avx512;
mod legacy;
mod ternary;
mod trit;
#[cfg(target_arch = "x86_64")]
mod trit_avx512;
mod words;

use words::Words;

use crate::simd::{isa, Isa};
use crate::GgmlType;
use rayon::prelude::*;
use std::ops::Range;

/// Rows per interleaved group: the `i32` lanes of a 512-bit vector.
pub const ROWS: usize = 16;

/// How the weights of a block are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `planes` bits per weight: 1 (`Q1_0` sign) or 2 (ternary code); also
    /// the words per chunk.
    Ternary { planes: usize },
    /// `Q5_0`: per chunk, the low nibbles (32 bytes) and the fifth bits
    /// (one word), see `legacy.rs`.
    Q5_0,
    /// `Q8_0`: per chunk, 64 bytes of `q + 128`, see `legacy.rs`.
    Q8_0,
    /// `Q4_K`: nibble codes, unpacked sub-block scales and mins, see
    /// `kquant.rs`.
    Q4K,
    /// `Q6_K`: 6-bit codes, `i8` sub-block scales, see `kquant.rs`.
    Q6K,
    /// `PTQ1_0` at AVX-512: ternary codes as base-3 fractions, 5 chunks per
    /// 64-byte vector, see `trit.rs`. AVX-512 kernels only.
    Trit,
}

/// The packed shape of a format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackFormat {
    pub kind: Kind,
    /// Weights per scale (the format's block).
    pub group: usize,
    /// Values per activation scale: 32 (`Q8_0`) or 256 (`Q8_K`).
    pub act_block: usize,
}

impl PackFormat {
    /// The packed shape [`PackedMatrix::pack`] gives `ty` on this CPU (at
    /// [`isa`]), if it is one of the formats packed here.
    pub fn of(ty: GgmlType) -> Option<Self> {
        Self::at(ty, isa())
    }

    /// The packed shape of `ty` for the kernels of `level`: the same for
    /// every level but `PTQ1_0`'s, which is [`Kind::Trit`] at AVX-512 (its
    /// own kernels) and `PQ2_0`'s codes below, or everywhere with
    /// `SHOHIN_PTQ1_CODES=1` ([`ptq1_codes`]).
    pub fn at(ty: GgmlType, level: Isa) -> Option<Self> {
        use GgmlType::*;
        let t = |planes| Kind::Ternary { planes };
        let (kind, group, act_block) = match ty {
            Q1_0 => (t(1), 128, 32),
            Q2_0 => (t(2), 64, 32),
            PTQ1_0 if level >= Isa::Avx512 && !ptq1_codes() => (Kind::Trit, 128, 32),
            Q2_0G128 | PQ2_0 | PTQ1_0 => (t(2), 128, 32),
            TQ1_0 | TQ2_0 => (t(2), 256, 256),
            Q5_0 => (Kind::Q5_0, 32, 32),
            Q8_0 => (Kind::Q8_0, 32, 32),
            Q4K => (Kind::Q4K, 256, 256),
            Q6K => (Kind::Q6K, 256, 256),
            _ => return None,
        };
        Some(Self {
            kind,
            group,
            act_block,
        })
    }

    /// `u64` words per block (one weight group of 16 rows): 4 words of
    /// scales, then the chunks of 4 weights (`Trit`, `Q4_K`, `Q6_K`: see
    /// their modules).
    pub fn block_words(self) -> usize {
        let chunks = self.group / 4;
        4 + match self.kind {
            Kind::Ternary { planes } => chunks * planes,
            Kind::Q5_0 => chunks * 5,
            Kind::Q8_0 => chunks * 8,
            Kind::Trit => return trit::BLOCK_WORDS,
            Kind::Q4K => return kquant::Q4K_WORDS,
            Kind::Q6K => return kquant::Q6K_WORDS,
        }
    }

    /// Whether this packed shape has kernels at `level`.
    pub fn has_kernels(self, level: Isa) -> bool {
        match self.kind {
            Kind::Ternary { .. } | Kind::Q5_0 | Kind::Q8_0 => level >= Isa::Avx2,
            Kind::Q4K | Kind::Q6K | Kind::Trit => level >= Isa::Avx512,
        }
    }

    /// Bytes of one planar activation row of `n` values.
    pub fn act_row_bytes(self, n: usize) -> usize {
        match self.kind {
            Kind::Q4K | Kind::Q6K => kquant::act_row_bytes(self.kind, n),
            _ => n + 8 * (n / self.act_block) + 4 * self.group_offsets(n),
        }
    }

    /// How many per-weight-group offset terms ([`PackedMatrix::quantize_act`])
    /// follow the planar activation row: one per group for 1-bit and
    /// ternary formats whose weight group spans several activation blocks,
    /// none otherwise.
    pub fn group_offsets(self, n: usize) -> usize {
        match self.kind {
            Kind::Ternary { .. } | Kind::Trit if self.group > self.act_block => n / self.group,
            _ => 0,
        }
    }
}

/// What the per-kind packers (`ternary.rs`, `legacy.rs`, `kquant.rs`) read
/// of the matrix they pack, one row group at a time.
#[derive(Clone, Copy)]
struct Shape {
    ty: GgmlType,
    format: PackFormat,
    rows: usize,
}

/// A matrix repacked for the interleaved kernels.
#[derive(Debug)]
pub struct PackedMatrix {
    pub ty: GgmlType,
    pub format: PackFormat,
    pub rows: usize,
    pub cols: usize,
    data: Words,
}

/// Whether `SHOHIN_PTQ1_CODES=1` asks for `PTQ1_0` as `PQ2_0`'s 2-bit codes
/// even where [`Kind::Trit`] runs: 21% more memory than the file, but
/// `PQ2_0`'s speed when several tokens share a product (measured on the
/// synthetic 9B model, 2 threads: two or four sequences decoding together
/// ~1.5x faster than with `Trit`, prompts ~4% faster, one sequence ~10%
/// slower). Read once.
pub fn ptq1_codes() -> bool {
    static CODES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CODES.get_or_init(|| std::env::var("SHOHIN_PTQ1_CODES").as_deref() == Ok("1"))
}

/// Whether `ty` has packed kernels at `level` (for the shape it packs to
/// there, [`PackFormat::at`]; a matrix packed at another level may not:
/// [`PackedMatrix::has_kernels`]).
pub fn has_kernels(ty: GgmlType, level: Isa) -> bool {
    PackFormat::at(ty, level).is_some_and(|f| f.has_kernels(level))
}

/// Whether this CPU has packed kernels for `ty` (at [`isa`], so
/// `SHOHIN_ISA` caps them like the other kernels).
pub fn available(ty: GgmlType) -> bool {
    has_kernels(ty, isa())
}

impl PackedMatrix {
    /// Repack `rows` rows of `cols` weights of `ty` (row-major, `src`).
    /// `None` when `ty` is not a packed format, the shape is not whole
    /// blocks, or this CPU has no packed kernel: the row-major kernels run
    /// then.
    pub fn pack(ty: GgmlType, rows: usize, cols: usize, src: &[u8]) -> Option<Self> {
        Self::pack_at(isa(), ty, rows, cols, src)
    }

    /// [`Self::pack`] for the kernels of `level` ([`PackFormat::at`]; tests
    /// pack `PTQ1_0` both ways). `None` also when the CPU lacks `level`.
    pub fn pack_at(level: Isa, ty: GgmlType, rows: usize, cols: usize, src: &[u8]) -> Option<Self> {
        let format = PackFormat::at(ty, level)?;
        let usable = format.has_kernels(level) && level <= crate::simd::detected();
        if !usable || cols == 0 || !cols.is_multiple_of(format.group) {
            return None;
        }
        let row_bytes = crate::row_bytes(ty, cols).ok()?;
        if src.len() != rows.checked_mul(row_bytes)? {
            return None;
        }
        let n_groups = rows.div_ceil(ROWS);
        let gw = cols / format.group * format.block_words();
        let mut data = Words::zeroed(n_groups.checked_mul(gw)?)?;
        let shape = Shape { ty, format, rows };
        let pack_one = |(g, dst): (usize, &mut [u64])| match format.kind {
            Kind::Ternary { .. } => shape.pack_ternary_group(src, row_bytes, g, dst),
            Kind::Trit => shape.pack_trit_group(src, row_bytes, g, dst),
            Kind::Q5_0 | Kind::Q8_0 => shape.pack_legacy_group(src, row_bytes, g, dst),
            Kind::Q4K | Kind::Q6K => shape.pack_kquant_group(src, row_bytes, g, dst),
        };
        data.as_mut_slice()
            .par_chunks_mut(gw)
            .enumerate()
            .for_each(pack_one);
        Some(Self {
            ty,
            format,
            rows,
            cols,
            data,
        })
    }

    /// Whether this matrix, as packed, has kernels at `level` (a `PTQ1_0`
    /// matrix packed for AVX-512 has none at AVX2).
    pub fn has_kernels(&self, level: Isa) -> bool {
        self.format.has_kernels(level)
    }

    /// Row groups of 16 (the last one possibly padded).
    pub fn n_groups(&self) -> usize {
        self.rows.div_ceil(ROWS)
    }

    /// `u64` words per row group.
    // Only the x86 kernels read packed words (elsewhere nothing packs).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    fn group_words(&self) -> usize {
        self.cols / self.format.group * self.format.block_words()
    }

    /// Resident bytes of the packed weights.
    pub fn bytes(&self) -> usize {
        self.data.len() * 8
    }

    /// The activation format the kernels' planar rows hold the numbers of
    /// (`Q8_0R` itself, or `Q8_K` rearranged by [`q8_k_to_planar`]).
    pub fn act_type(&self) -> GgmlType {
        if self.format.act_block == 32 {
            GgmlType::Q8_0R
        } else {
            GgmlType::Q8K
        }
    }

    /// Bytes of one activation row as [`Self::quantize_act`] writes it.
    pub fn act_row_bytes(&self) -> usize {
        self.format.act_row_bytes(self.cols)
    }

    /// Quantize one activation row `x` (`cols` values) into `out`
    /// ([`Self::act_row_bytes`]) for [`Self::matmul_groups`], with the
    /// kernels of [`crate::kernels`]: the numbers of ggml's `vec_dot_type`.
    pub fn quantize_act(&self, x: &[f32], out: &mut [u8]) {
        assert_eq!(x.len(), self.cols);
        assert_eq!(out.len(), self.act_row_bytes());
        let vt = self.act_type();
        let quantize = crate::kernels(vt).quantize;
        if vt == GgmlType::Q8_0R {
            let n = self.cols;
            let n_off = self.format.group_offsets(n);
            let (row, offsets) = out.split_at_mut(out.len() - 4 * n_off);
            quantize(x, row);
            if n_off > 0 {
                self.group_offset_terms(row, offsets);
            }
            return;
        }
        thread_local! {
            static Q8K: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        Q8K.with_borrow_mut(|k| {
            let len = crate::row_bytes(vt, self.cols).expect("whole blocks (checked at pack)");
            k.resize(len, 0);
            quantize(x, k);
            match self.format.kind {
                Kind::Q4K | Kind::Q6K => kquant::q8_k_to_planar(self.format.kind, k, out),
                _ => q8_k_to_planar(k, out),
            }
        });
    }

    /// The offset term of each weight group, from a planar `Q8_0R` row:
    /// `−Σ q·d` over the group's activation blocks (`q` summed per block),
    /// halved for the sign kind. Codes are stored unsigned (`code − 1`,
    /// `2·bit − 1`), so every row's exact product carries this same term;
    /// the AVX-512 kernel starts each group's float sum from it instead of
    /// converting and summing it block by block.
    fn group_offset_terms(&self, row: &[u8], offsets: &mut [u8]) {
        let f = self.format;
        let (n, per) = (self.cols, f.group / f.act_block);
        let nb = n / f.act_block;
        let word = |i: usize| -> [u8; 4] { row[i..i + 4].try_into().expect("4 bytes") };
        let half = matches!(f.kind, Kind::Ternary { planes: 1 });
        for (g, o) in offsets.chunks_exact_mut(4).enumerate() {
            let mut t = 0f32;
            for b in g * per..(g + 1) * per {
                let d = f32::from_le_bytes(word(n + 4 * b));
                let s = i32::from_le_bytes(word(n + 4 * nb + 4 * b));
                t -= s as f32 * d;
            }
            let t = if half { 0.5 * t } else { t };
            o.copy_from_slice(&t.to_le_bytes());
        }
    }

    /// Products of the row groups `groups` with `n_tokens` planar
    /// activation rows (`a_row` bytes apart, see [`Self::quantize_act`]).
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
        self.matmul_groups_at(isa(), acts, a_row, n_tokens, groups, band);
    }

    /// [`Self::matmul_groups`] with the kernels of `level` (tests run every
    /// level the CPU has). Panics if `level` has no kernel for this matrix
    /// as packed ([`Self::has_kernels`]) or the CPU lacks `level`.
    pub fn matmul_groups_at(
        &self,
        level: Isa,
        acts: &[u8],
        a_row: usize,
        n_tokens: usize,
        groups: Range<usize>,
        band: &mut [f32],
    ) {
        assert!(groups.end <= self.n_groups());
        assert!(a_row >= self.act_row_bytes());
        assert!(acts.len() >= n_tokens * a_row);
        assert_eq!(band.len(), groups.len() * n_tokens * ROWS);
        assert!(
            self.has_kernels(level) && level <= crate::simd::detected(),
            "no packed {} ({:?}) kernel at {level:?} on this CPU",
            self.ty,
            self.format.kind
        );
        #[cfg(target_arch = "x86_64")]
        {
            let gw = self.group_words();
            let w = &self.data.as_slice()[groups.start * gw..groups.end * gw];
            // SAFETY: the CPU has `level` (asserted above), which includes
            // each kernel's features; the asserts above bound every read of
            // `w`, `acts` and write of `band`.
            unsafe {
                match level {
                    Isa::Avx512 if matches!(self.format.kind, Kind::Q4K | Kind::Q6K) => {
                        kquant_avx512::matmul(self, w, acts, a_row, n_tokens, band)
                    }
                    Isa::Avx512 if self.format.kind == Kind::Trit => {
                        trit_avx512::matmul(self, w, acts, a_row, n_tokens, band)
                    }
                    Isa::Avx2 => avx2::matmul(self, w, acts, a_row, n_tokens, band),
                    Isa::Avx512 => avx512::matmul(self, w, acts, a_row, n_tokens, band),
                    _ => unreachable!("has_kernels admits no other level"),
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("has_kernels admits no level without x86 kernels");
    }
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
