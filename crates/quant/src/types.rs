//! The table of tensor formats, as data (after ggml's `type_traits`).
//!
//! Type ids and block geometry are from ggml's `ggml.h` (`enum ggml_type`) and
//! `ggml-common.h` (the `block_*` structs and their `static_assert`s). Id 42
//! names two layouts: upstream `Q2_0` (64 weights, 18 bytes) and PrismML's
//! `Q2_0` g128 (128 weights, 34 bytes); a reader tells them apart by the bytes
//! a tensor occupies, see [`GgmlType::resolve`]. PrismML's `PQ2_0` (142) is
//! the g128 layout under its own id, and its `PTQ1_0` (143) is `TQ1_0`'s
//! base-3 codec at 128 weights per block (see [`crate::ptq1_0`]).
//!
//! `Q8_0R` is shohin's own activation-only format (no GGUF id): the numbers
//! of `Q8_0` laid out per row as planes, see [`crate::q8_0r`].

/// One tensor format. `Q8_K` is not used for weights here: it is the
/// activation format that the K-quants and `TQ*` dot products consume.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q4_0,
    /// 4-bit with a per-block minimum (id 3): the asymmetric sibling of
    /// `Q4_0`, still found in older GGUF files.
    Q4_1,
    Q5_0,
    /// 5-bit with a per-block minimum (id 7): llama-quantize's fallback for
    /// rows that are not a multiple of 256 in the Q5_K mixes.
    Q5_1,
    Q8_0,
    /// Activations only in shohin (id 9): what `Q4_1` and `Q5_1` dot
    /// products consume.
    Q8_1,
    Q8K,
    Q4K,
    Q5K,
    Q6K,
    /// 1-bit: 128 signs + f16 scale (id 41).
    Q1_0,
    /// Ternary, upstream layout: 64 weights + f16 scale, 18 bytes (id 42).
    Q2_0,
    /// Ternary, PrismML layout: 128 weights + f16 scale, 34 bytes (id 42).
    Q2_0G128,
    /// PrismML's id for the g128 ternary layout (id 142).
    PQ2_0,
    /// PrismML's base-3 ternary: 128 weights + f16 scale, 28 bytes (id 143).
    PTQ1_0,
    TQ1_0,
    TQ2_0,
    /// Activations only, not a GGUF type: "row-planar `Q8_0`", the quants,
    /// scales and block sums of a whole row in three planes (see
    /// [`crate::q8_0r`]); what the `Q1_0` / `Q2_0` dot products consume.
    Q8_0R,
}

/// The id of formats that have none in GGUF ([`GgmlType::Q8_0R`]): never
/// returned by [`GgmlType::candidates`], so no reader or writer accepts it.
pub const NO_GGUF_ID: u32 = u32::MAX;

/// Every variant, in table order (tests iterate over it).
pub const ALL_TYPES: [GgmlType; 21] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q8_1,
    GgmlType::Q8K,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
    GgmlType::Q1_0,
    GgmlType::Q2_0,
    GgmlType::Q2_0G128,
    GgmlType::PQ2_0,
    GgmlType::PTQ1_0,
    GgmlType::TQ1_0,
    GgmlType::TQ2_0,
    GgmlType::Q8_0R,
];

/// Static facts about one format.
#[derive(Clone, Copy, Debug)]
pub struct TypeTraits {
    pub name: &'static str,
    /// The id written in GGUF files.
    pub id: u32,
    /// Weights per block.
    pub block_size: usize,
    /// Bytes per block.
    pub type_size: usize,
    /// The format activations are quantized to for [`crate::vec_dot`]
    /// (ggml-cpu's `vec_dot_type`).
    pub vec_dot_type: GgmlType,
}

const fn tr(
    name: &'static str,
    id: u32,
    block_size: usize,
    type_size: usize,
    vec_dot_type: GgmlType,
) -> TypeTraits {
    TypeTraits {
        name,
        id,
        block_size,
        type_size,
        vec_dot_type,
    }
}

/// Weights per super-block of the K-quants (`QK_K` in ggml-common.h).
pub const QK_K: usize = 256;

impl GgmlType {
    pub const fn traits(self) -> TypeTraits {
        use GgmlType::*;
        match self {
            F32 => tr("F32", 0, 1, 4, F32),
            F16 => tr("F16", 1, 1, 2, F16),
            BF16 => tr("BF16", 30, 1, 2, BF16),
            Q4_0 => tr("Q4_0", 2, 32, 18, Q8_0),
            // f16 d + f16 m + 16 bytes of nibbles
            Q4_1 => tr("Q4_1", 3, 32, 2 + 2 + 16, Q8_1),
            Q5_0 => tr("Q5_0", 6, 32, 22, Q8_0),
            // f16 d + f16 m + 4 bytes of fifth bits + 16 bytes of nibbles
            Q5_1 => tr("Q5_1", 7, 32, 2 + 2 + 4 + 16, Q8_1),
            Q8_0 => tr("Q8_0", 8, 32, 34, Q8_0),
            // f16 d + f16 s (= d·Σq) + 32 i8; ggml-cpu has no Q8_1 dot, its
            // own vec_dot_type is itself (as Q8_K's)
            Q8_1 => tr("Q8_1", 9, 32, 2 + 2 + 32, Q8_1),
            // f32 d + 256 i8 + 16 i16 block sums
            Q8K => tr("Q8_K", 15, QK_K, 4 + QK_K + 2 * (QK_K / 16), Q8K),
            // 2 f16 + 12 bytes of 6-bit scales + 128 bytes of nibbles
            Q4K => tr("Q4_K", 12, QK_K, 4 + 12 + QK_K / 2, Q8K),
            // Q4_K + 32 bytes of high bits
            Q5K => tr("Q5_K", 13, QK_K, 4 + 12 + QK_K / 8 + QK_K / 2, Q8K),
            // 128 low nibbles + 64 high bits + 16 i8 scales + f16 d
            Q6K => tr("Q6_K", 14, QK_K, QK_K / 2 + QK_K / 4 + QK_K / 16 + 2, Q8K),
            // the 1-bit / ternary formats take row-planar activations (the
            // numbers of Q8_0; shohin's choice, ggml uses Q8_0 itself)
            Q1_0 => tr("Q1_0", 41, 128, 2 + 16, Q8_0R),
            Q2_0 => tr("Q2_0", 42, 64, 2 + 16, Q8_0R),
            Q2_0G128 => tr("Q2_0_g128", 42, 128, 2 + 32, Q8_0R),
            PQ2_0 => tr("PQ2_0", 142, 128, 2 + 32, Q8_0R),
            // 24 bytes of base-3 packed trits + 2 bytes + f16 d (last)
            PTQ1_0 => tr(
                "PTQ1_0",
                143,
                128,
                (128 - 4 * 128 / 64) / 5 + 128 / 64 + 2,
                Q8_0R,
            ),
            // 48 bytes of base-3 packed trits + 4 bytes + f16 d
            TQ1_0 => tr(
                "TQ1_0",
                34,
                QK_K,
                (QK_K - 4 * QK_K / 64) / 5 + QK_K / 64 + 2,
                Q8K,
            ),
            TQ2_0 => tr("TQ2_0", 35, QK_K, QK_K / 4 + 2, Q8K),
            // per 32 values: 32 i8 quants + f32 scale + i32 block sum, as
            // three planes over the row
            Q8_0R => tr("Q8_0R", NO_GGUF_ID, 32, 32 + 4 + 4, Q8_0R),
        }
    }

    pub const fn name(self) -> &'static str {
        self.traits().name
    }
    pub const fn id(self) -> u32 {
        self.traits().id
    }
    pub const fn block_size(self) -> usize {
        self.traits().block_size
    }
    pub const fn type_size(self) -> usize {
        self.traits().type_size
    }
    pub const fn vec_dot_type(self) -> GgmlType {
        self.traits().vec_dot_type
    }

    /// Bytes taken by `n` weights, or `None` when `n` is not a whole number
    /// of blocks or the size overflows.
    pub fn bytes_for(self, n: u64) -> Option<u64> {
        let bs = self.block_size() as u64;
        if !n.is_multiple_of(bs) {
            return None;
        }
        (n / bs).checked_mul(self.type_size() as u64)
    }

    /// The candidate formats for a GGUF type id, in order of preference.
    /// Empty when the id is unknown or not supported by shohin.
    pub fn candidates(id: u32) -> &'static [GgmlType] {
        use GgmlType::*;
        match id {
            0 => &[F32],
            1 => &[F16],
            30 => &[BF16],
            2 => &[Q4_0],
            3 => &[Q4_1],
            6 => &[Q5_0],
            7 => &[Q5_1],
            8 => &[Q8_0],
            9 => &[Q8_1],
            12 => &[Q4K],
            13 => &[Q5K],
            14 => &[Q6K],
            41 => &[Q1_0],
            42 => &[Q2_0, Q2_0G128],
            142 => &[PQ2_0],
            143 => &[PTQ1_0],
            34 => &[TQ1_0],
            35 => &[TQ2_0],
            _ => &[],
        }
    }

    /// The format of a tensor with GGUF type `id`, `n` weights and
    /// `available` bytes before the next tensor (or the end of the file).
    /// For id 42 the upstream g64 layout wins when its size fits, else the
    /// PrismML g128 layout: a g128 tensor's slot is n*34/128 bytes rounded up
    /// to the alignment, which is smaller than the g64 size n*18/64 as soon as
    /// n/64 exceeds the alignment.
    pub fn resolve(id: u32, n: u64, available: u64) -> Result<GgmlType, ResolveError> {
        let cands = Self::candidates(id);
        if cands.is_empty() {
            return Err(ResolveError::UnknownType(id));
        }
        let mut last = None;
        for &t in cands {
            match t.bytes_for(n) {
                None => last = Some(ResolveError::NotWholeBlocks { ty: t, n }),
                Some(b) if b <= available => return Ok(t),
                Some(b) => {
                    last = Some(ResolveError::TooShort {
                        ty: t,
                        need: b,
                        available,
                    })
                }
            }
        }
        Err(last.unwrap_or(ResolveError::UnknownType(id)))
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a tensor's type id and size do not name a format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("unknown or unsupported tensor type id {0}")]
    UnknownType(u32),
    #[error("{n} weights is not a whole number of {ty} blocks ({} per block)", ty.block_size())]
    NotWholeBlocks { ty: GgmlType, n: u64 },
    #[error("{ty} needs {need} bytes but only {available} are in the file")]
    TooShort {
        ty: GgmlType,
        need: u64,
        available: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes_match_ggml_common_h() {
        // static_asserts of ggml-common.h
        assert_eq!(GgmlType::Q4K.type_size(), 144);
        assert_eq!(GgmlType::Q5K.type_size(), 176);
        assert_eq!(GgmlType::Q6K.type_size(), 210);
        assert_eq!(GgmlType::Q8K.type_size(), 292);
        assert_eq!(GgmlType::TQ1_0.type_size(), 54);
        assert_eq!(GgmlType::PTQ1_0.type_size(), 28);
        assert_eq!(GgmlType::PTQ1_0.block_size(), 128);
        assert_eq!(GgmlType::PTQ1_0.id(), 143);
        assert_eq!(GgmlType::TQ2_0.type_size(), 66);
        assert_eq!(GgmlType::Q1_0.type_size(), 18);
        assert_eq!(GgmlType::Q5_1.type_size(), 24);
        assert_eq!(GgmlType::Q8_1.type_size(), 36);
        assert_eq!(GgmlType::Q5_1.vec_dot_type(), GgmlType::Q8_1);
        // sizeof(block_q4_1) == 2 * sizeof(ggml_half) + QK4_1 / 2
        assert_eq!(GgmlType::Q4_1.type_size(), 20);
        assert_eq!(GgmlType::Q4_1.id(), 3);
        assert_eq!(GgmlType::Q4_1.vec_dot_type(), GgmlType::Q8_1);
        assert_eq!(GgmlType::resolve(3, 64, 40), Ok(GgmlType::Q4_1));
    }

    #[test]
    fn q8_0r_has_no_gguf_id() {
        assert_eq!(GgmlType::Q8_0R.id(), NO_GGUF_ID);
        assert!((0..=1024)
            .chain([NO_GGUF_ID])
            .all(|id| !GgmlType::candidates(id).contains(&GgmlType::Q8_0R)));
        assert_eq!(
            GgmlType::resolve(NO_GGUF_ID, 32, 1 << 20),
            Err(ResolveError::UnknownType(NO_GGUF_ID))
        );
        for t in ALL_TYPES {
            let vt = t.vec_dot_type();
            // the 1-bit / ternary formats of 32-multiples take Q8_0R
            let planar = matches!(
                t,
                GgmlType::Q1_0
                    | GgmlType::Q2_0
                    | GgmlType::Q2_0G128
                    | GgmlType::PQ2_0
                    | GgmlType::PTQ1_0
                    | GgmlType::Q8_0R
            );
            assert_eq!(vt == GgmlType::Q8_0R, planar, "{t}");
        }
    }

    #[test]
    fn type_42_is_told_apart_by_size() {
        let n = 4096 * 16;
        let g64 = n / 64 * 18;
        let g128 = n / 128 * 34;
        assert_eq!(GgmlType::resolve(42, n, g64), Ok(GgmlType::Q2_0));
        assert_eq!(GgmlType::resolve(42, n, g128), Ok(GgmlType::Q2_0G128));
        assert_eq!(GgmlType::resolve(42, n, g128 + 32), Ok(GgmlType::Q2_0G128));
        assert!(GgmlType::resolve(42, n, g128 - 1).is_err());
        assert_eq!(GgmlType::resolve(142, n, g128), Ok(GgmlType::PQ2_0));
        let pt = n / 128 * 28;
        assert_eq!(GgmlType::resolve(143, n, pt), Ok(GgmlType::PTQ1_0));
        assert!(GgmlType::resolve(143, n, pt - 1).is_err());
        assert_eq!(
            GgmlType::resolve(99, n, g128),
            Err(ResolveError::UnknownType(99))
        );
    }
}
