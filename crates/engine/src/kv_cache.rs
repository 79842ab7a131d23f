//! Key/value cache: per layer, `n_ctx` rows of the concatenated kv heads,
//! stored as f16 by default (llama.cpp's default `--cache-type-k/v f16`),
//! or f32, or `Q8_0` (34 bytes per 32 values: 0.53x of f16), chosen for K
//! and V separately as llama.cpp's `-ctk` / `-ctv` do.

use crate::error::{EngineError, Result};
use crate::recurrent::RecurrentCache;
use half::f16;
use half::vec::HalfBitsVecExt;
use shohin_quant::{kernels, GgmlType};
use std::str::FromStr;

pub(crate) mod shift;

/// How the cache stores keys or values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CacheType {
    F32,
    #[default]
    F16,
    /// ggml's `Q8_0` blocks (q8_0.rs): an f16 scale and 32 int8 per block,
    /// quantized per head row (the head size must be a multiple of 32).
    Q8_0,
}

impl CacheType {
    pub const ALL: [CacheType; 3] = [CacheType::F32, CacheType::F16, CacheType::Q8_0];

    /// The name llama.cpp's `-ctk` / `-ctv` and llama-bench's `type_k` use.
    pub fn name(self) -> &'static str {
        match self {
            CacheType::F32 => "f32",
            CacheType::F16 => "f16",
            CacheType::Q8_0 => "q8_0",
        }
    }

    /// Bytes of one cache row of `dim` values.
    fn row_bytes(self, dim: usize) -> usize {
        match self {
            CacheType::F32 => 4 * dim,
            CacheType::F16 => 2 * dim,
            CacheType::Q8_0 => dim / 32 * 34,
        }
    }
}

impl FromStr for CacheType {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| format!("unknown cache type `{s}` (choose f32, f16 or q8_0)"))
    }
}

impl std::fmt::Display for CacheType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The types of the K and V caches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KvTypes {
    pub k: CacheType,
    pub v: CacheType,
}

impl KvTypes {
    /// The block size of the Walsh-Hadamard rotation applied to q and k
    /// (`k`) or to v and the attention output (`v`) before a quantized
    /// cache stores them, as llama.cpp does (llama-kv-cache.cpp
    /// `attn_rot_k` / `attn_rot_v`: quantized type, head size a multiple of
    /// 64; K rotated in the largest power-of-two block dividing the head
    /// size, V in blocks of 64). Rotation spreads outlier channels (the
    /// qwen2 K bias) over a block so that one `Q8_0` scale fits them; dot
    /// products are unchanged by it. `None`: no rotation.
    pub fn rotation(t: CacheType, head_dim: usize, is_k: bool) -> Option<usize> {
        if t != CacheType::Q8_0 || !head_dim.is_multiple_of(64) {
            return None;
        }
        let mut n = 64;
        while is_k && head_dim.is_multiple_of(2 * n) {
            n *= 2;
        }
        Some(n)
    }

    /// Refuse a type the head sizes cannot be stored in (`Q8_0` needs
    /// whole blocks of 32 per head).
    pub fn check(self, head_dim: usize, head_dim_v: usize) -> Result<()> {
        for (what, t, hd) in [("k", self.k, head_dim), ("v", self.v, head_dim_v)] {
            if t == CacheType::Q8_0 && !hd.is_multiple_of(32) {
                return Err(EngineError::BadCacheType(format!(
                    "--cache-type-{what} q8_0 needs a head size that is a multiple of 32; this model's is {hd}"
                )));
            }
        }
        Ok(())
    }
}

/// One layer's rows of one of K or V.
#[derive(Debug)]
enum Rows {
    F32(Vec<f32>),
    F16(Vec<f16>),
    Q8_0(Vec<u8>),
}

/// The first `n` rows of a layer's K or V, in their stored type.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RowsRef<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    /// `Q8_0` blocks, `dim / 32` per row.
    Q8_0(&'a [u8]),
}

impl Rows {
    /// Zeroed by the allocator (`calloc`: untouched pages cost no memory),
    /// so a cache is resident only as far as positions were stored.
    fn new(t: CacheType, len: usize) -> Self {
        match t {
            CacheType::F32 => Rows::F32(vec![0.0; len]),
            CacheType::F16 => Rows::F16(vec![0u16; len].reinterpret_into()),
            CacheType::Q8_0 => Rows::Q8_0(vec![0; len / 32 * 34]),
        }
    }

    /// Write row `pos` (`src.len()` values).
    fn store(&mut self, pos: usize, src: &[f32]) {
        let dim = src.len();
        match self {
            Rows::F32(r) => r[pos * dim..(pos + 1) * dim].copy_from_slice(src),
            Rows::F16(r) => {
                for (d, &s) in r[pos * dim..(pos + 1) * dim].iter_mut().zip(src) {
                    *d = f16::from_f32(s);
                }
            }
            Rows::Q8_0(r) => {
                let rb = dim / 32 * 34;
                (kernels(GgmlType::Q8_0).quantize)(src, &mut r[pos * rb..(pos + 1) * rb]);
            }
        }
    }

    /// Copy the first `bytes` bytes of `src` (same type).
    fn copy_prefix(&mut self, src: &Rows, bytes: usize) {
        match (self, src) {
            (Rows::F32(d), Rows::F32(s)) => d[..bytes / 4].copy_from_slice(&s[..bytes / 4]),
            (Rows::F16(d), Rows::F16(s)) => d[..bytes / 2].copy_from_slice(&s[..bytes / 2]),
            (Rows::Q8_0(d), Rows::Q8_0(s)) => d[..bytes].copy_from_slice(&s[..bytes]),
            _ => panic!("copying between caches of different types"),
        }
    }

    fn first(&self, n: usize, dim: usize) -> RowsRef<'_> {
        match self {
            Rows::F32(r) => RowsRef::F32(&r[..n * dim]),
            Rows::F16(r) => RowsRef::F16(&r[..n * dim]),
            Rows::Q8_0(r) => RowsRef::Q8_0(&r[..n * (dim / 32 * 34)]),
        }
    }
}

#[derive(Debug)]
pub struct KvCache {
    n_ctx: usize,
    k_dim: usize,
    v_dim: usize,
    types: KvTypes,
    /// Per layer: `[n_ctx][k_dim]`.
    k: Vec<Rows>,
    /// Per layer: `[n_ctx][v_dim]`.
    v: Vec<Rows>,
    /// Positions filled (the same for every layer once a forward completes).
    len: usize,
    /// Hybrid models: the recurrent layers' state at `len` (recurrent.rs).
    pub(crate) rec: Option<RecurrentCache>,
}

impl KvCache {
    /// Sized by the caller from `--ctx-size`, never from file metadata
    /// alone. `Q8_0` rows need `k_dim` / `v_dim` in whole blocks (checked
    /// per head by [`KvTypes::check`] at the model).
    ///
    /// # Panics
    /// If a `Q8_0` row is not whole blocks (a caller skipped the check).
    pub fn new(n_layer: usize, n_ctx: usize, k_dim: usize, v_dim: usize, types: KvTypes) -> Self {
        for (t, dim) in [(types.k, k_dim), (types.v, v_dim)] {
            assert!(
                t != CacheType::Q8_0 || dim.is_multiple_of(32),
                "a q8_0 cache row of {dim} values is not whole blocks of 32"
            );
        }
        Self {
            n_ctx,
            k_dim,
            v_dim,
            types,
            k: (0..n_layer)
                .map(|_| Rows::new(types.k, n_ctx * k_dim))
                .collect(),
            v: (0..n_layer)
                .map(|_| Rows::new(types.v, n_ctx * v_dim))
                .collect(),
            len: 0,
            rec: None,
        }
    }

    /// The same cache with a recurrent state of `n_layers` layers of
    /// `per_layer` floats (hybrid models: the KV layers are then only the
    /// attention layers).
    pub fn with_recurrent(mut self, n_layers: usize, per_layer: usize) -> Self {
        self.rec = Some(RecurrentCache::new(n_layers, per_layer));
        self
    }

    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn types(&self) -> KvTypes {
        self.types
    }
    /// Forget everything after `len` positions (new conversation or rewind).
    ///
    /// With a recurrent state the cache can only rewind to a position whose
    /// state it knows (0, or the last [`Self::save_snapshot`]): it then
    /// holds fewer than `len` positions, and [`Self::len`] says how many.
    pub fn truncate(&mut self, len: usize) {
        let len = self.len.min(len);
        self.len = match &mut self.rec {
            Some(r) if len != self.len => r.rewind(len),
            _ => len,
        };
    }

    /// The largest position `<= want` this cache can resume at without
    /// evaluating anything again: `want` itself (up to `len`) for KV rows; for
    /// a recurrent state only 0, its snapshot and `len` are known.
    pub fn resumable(&self, want: usize) -> usize {
        let want = want.min(self.len);
        match &self.rec {
            None => want,
            Some(_) if want == self.len => want,
            Some(r) => r.snapshot_at().filter(|&p| p <= want).unwrap_or(0),
        }
    }

    /// Before evaluating a span of drafts to verify: a hybrid model's
    /// recurrent state is checkpointed and the span runs token by token
    /// (recurrent.rs); no-op for attention-only caches, whose rows past a
    /// position are simply truncated.
    pub(crate) fn begin_verify(&mut self) {
        let len = self.len;
        if let Some(r) = &mut self.rec {
            r.begin_verify(len);
        }
    }

    /// After the verified span ran.
    pub(crate) fn end_verify(&mut self) {
        if let Some(r) = &mut self.rec {
            r.token_by_token = false;
        }
    }

    /// Keep the first `len` positions after a verified span. Attention-only
    /// caches just truncate and return `len`; a recurrent state goes back
    /// to its checkpoint and the position returned is the checkpoint's: the
    /// caller evaluates the kept tokens after it again (with
    /// [`Self::begin_verify`]'s token-by-token form).
    pub(crate) fn rollback_verified(&mut self, len: usize) -> usize {
        let len = self.len.min(len);
        if len == self.len {
            return len;
        }
        self.len = match &mut self.rec {
            Some(r) => match r.rollback() {
                Some(p) if p <= len => p,
                _ => r.rewind(len),
            },
            None => len,
        };
        self.len
    }

    /// Hybrid models: remember the recurrent state at the current length,
    /// so that [`Self::truncate`] can come back to it (no-op otherwise).
    pub fn save_snapshot(&mut self) {
        if let Some(r) = &mut self.rec {
            r.save(self.len);
        }
    }

    /// [`Self::save_snapshot`], keeping `logits` (those after the current
    /// length) with it: a later sequence equal to this one up to here can
    /// go on from the snapshot without evaluating its last token again.
    pub(crate) fn save_snapshot_with_logits(&mut self, logits: &[f32]) {
        if let Some(r) = &mut self.rec {
            r.save_with_logits(self.len, logits);
        }
    }

    /// The logits kept with a snapshot at exactly `pos` (hybrid models).
    pub(crate) fn snapshot_logits(&self, pos: usize) -> Option<&[f32]> {
        self.rec.as_ref()?.snapshot_logits(pos)
    }
    pub(crate) fn set_len(&mut self, len: usize) {
        debug_assert!(len <= self.n_ctx);
        self.len = len;
    }

    /// Store k and v rows of `layer` at position `pos`.
    pub(crate) fn store(&mut self, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        assert_eq!((k.len(), v.len()), (self.k_dim, self.v_dim));
        self.k[layer].store(pos, k);
        self.v[layer].store(pos, v);
    }

    /// Keys of `layer` for positions `0..n`, row-major `[n][k_dim]`.
    pub(crate) fn keys(&self, layer: usize, n: usize) -> RowsRef<'_> {
        self.k[layer].first(n, self.k_dim)
    }
    pub(crate) fn values(&self, layer: usize, n: usize) -> RowsRef<'_> {
        self.v[layer].first(n, self.v_dim)
    }

    /// Make this cache hold the first `n` positions of `src` (same shape
    /// and types): a copy of rows, far cheaper than evaluating them again.
    ///
    /// # Panics
    /// If the shapes or types differ or `src` holds fewer than `n`.
    pub fn copy_prefix_from(&mut self, src: &KvCache, n: usize) {
        assert!(n <= src.len && n <= self.n_ctx);
        assert_eq!(
            (self.k.len(), self.k_dim, self.v_dim, self.types),
            (src.k.len(), src.k_dim, src.v_dim, src.types)
        );
        let (kb, vb) = (
            self.types.k.row_bytes(self.k_dim),
            self.types.v.row_bytes(self.v_dim),
        );
        for (dst, s) in self.k.iter_mut().zip(&src.k) {
            dst.copy_prefix(s, n * kb);
        }
        for (dst, s) in self.v.iter_mut().zip(&src.v) {
            dst.copy_prefix(s, n * vb);
        }
        // A recurrent state exists only at the positions it was saved at:
        // the copy may hold fewer than `n` (see `truncate`).
        self.len = match (&mut self.rec, &src.rec) {
            (Some(d), Some(s)) => d.copy_from(s, src.len, n),
            (None, None) => n,
            _ => panic!("copying between a hybrid and a plain cache"),
        };
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        let per_pos = self.types.k.row_bytes(self.k_dim) + self.types.v.row_bytes(self.v_dim);
        self.k.len() * self.n_ctx * per_pos + self.rec.as_ref().map_or(0, |r| r.bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seed: usize, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0 - 1.0) * 3.0)
            .collect()
    }

    /// Each type stores what its format holds: f32 as is, f16 rounded,
    /// `Q8_0` as the scalar reference quantizer's blocks (an independent
    /// implementation from the SIMD one the cache uses).
    #[test]
    fn rows_round_trip_per_type() {
        let (kd, vd) = (64, 128);
        for t in CacheType::ALL {
            let types = KvTypes { k: t, v: t };
            let mut c = KvCache::new(2, 3, kd, vd, types);
            for pos in 0..3 {
                c.store(1, pos, &row(pos, kd), &row(pos + 10, vd));
            }
            c.set_len(3);
            for pos in 0..3 {
                let (k, v) = (row(pos, kd), row(pos + 10, vd));
                match (c.keys(1, 3), c.values(1, 3)) {
                    (RowsRef::F32(kr), RowsRef::F32(vr)) => {
                        assert_eq!(&kr[pos * kd..][..kd], &k[..]);
                        assert_eq!(&vr[pos * vd..][..vd], &v[..]);
                    }
                    (RowsRef::F16(kr), RowsRef::F16(vr)) => {
                        let kr = &kr[pos * kd..][..kd];
                        let vr = &vr[pos * vd..][..vd];
                        assert_eq!((kr.len(), vr.len()), (k.len(), v.len()));
                        for (a, b) in kr.iter().zip(&k) {
                            assert_eq!(a.to_bits(), f16::from_f32(*b).to_bits(), "{t} K");
                        }
                        for (a, b) in vr.iter().zip(&v) {
                            assert_eq!(a.to_bits(), f16::from_f32(*b).to_bits(), "{t} V");
                        }
                    }
                    (RowsRef::Q8_0(kr), RowsRef::Q8_0(vr)) => {
                        let q = shohin_quant::scalar_kernels(GgmlType::Q8_0).quantize;
                        let mut want = vec![0u8; kd / 32 * 34];
                        q(&k, &mut want);
                        assert_eq!(&kr[pos * want.len()..][..want.len()], &want[..]);
                        let mut want = vec![0u8; vd / 32 * 34];
                        q(&v, &mut want);
                        assert_eq!(&vr[pos * want.len()..][..want.len()], &want[..]);
                    }
                    _ => panic!("{t}: K and V stored in different types"),
                }
            }
            let per_value = match t {
                CacheType::F32 => 4.0,
                CacheType::F16 => 2.0,
                CacheType::Q8_0 => 34.0 / 32.0,
            };
            assert_eq!(c.bytes() as f64, 2.0 * 3.0 * (kd + vd) as f64 * per_value);
        }
    }

    /// llama.cpp's rule: quantized type and head size % 64; K in the
    /// largest power-of-two block dividing the head, V in 64s.
    #[test]
    fn rotation_blocks_follow_llama_cpp() {
        use CacheType::*;
        assert_eq!(KvTypes::rotation(Q8_0, 64, true), Some(64));
        assert_eq!(KvTypes::rotation(Q8_0, 128, true), Some(128));
        assert_eq!(KvTypes::rotation(Q8_0, 192, true), Some(64));
        assert_eq!(KvTypes::rotation(Q8_0, 128, false), Some(64));
        assert_eq!(KvTypes::rotation(Q8_0, 96, true), None);
        assert_eq!(KvTypes::rotation(F16, 128, true), None);
        assert_eq!(KvTypes::rotation(F32, 128, false), None);
    }

    #[test]
    fn names_parse_and_bad_names_are_refused() {
        for t in CacheType::ALL {
            assert_eq!(t.name().parse::<CacheType>(), Ok(t));
        }
        let e = "q4_0".parse::<CacheType>().unwrap_err();
        assert!(e.contains("q4_0") && e.contains("f16"), "{e}");
        let t = KvTypes {
            k: CacheType::Q8_0,
            v: CacheType::F16,
        };
        assert!(t.check(64, 80).is_ok());
        let e = t.check(80, 64).unwrap_err().to_string();
        assert!(e.contains("cache-type-k") && e.contains("80"), "{e}");
    }
}
