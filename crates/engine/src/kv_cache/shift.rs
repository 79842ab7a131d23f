//! The cache half of context shift: drop a run of positions, move the later
//! rows down, and turn their keys to their new positions.
//!
//! A key is stored after RoPE: `R(p)·k`. Moved from position `p` to
//! `p - d`, it must become `R(p - d)·k = R(-d)·R(p)·k`: one more rotation
//! by the (pure, position-independent) delta, applied to the stored row, so
//! nothing is evaluated again (llama.cpp: llama-kv-cache.cpp `seq_add`
//! records the delta, `build_rope_shift` rotates the cached K by it,
//! de-quantizing and re-quantizing a quantized cache). Values carry no
//! position and are moved as they are.

use super::{KvCache, KvTypes, Rows};
use crate::error::{EngineError, Result};
use crate::ops::{self, RopeLayout};
use shohin_quant::GgmlType;

/// A pure rotation of every head's first `n_rot` dims: what turns a cached
/// key to a position `delta` away.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyRotation<'a> {
    pub head_dim: usize,
    /// Rotated dims per head (partial rotary: the rest are left alone).
    pub n_rot: usize,
    /// Which dims pair up: NEOX (`i`, `i + n_rot / 2`) or NORM (`2i`,
    /// `2i + 1`), as the forward pass rotated them.
    pub layout: RopeLayout,
    /// `(cos, sin)` of each pair's angle, `n_rot / 2` of them.
    pub table: &'a [(f32, f32)],
}

impl KeyRotation<'_> {
    /// Rotate one cache row (all kv heads, before any Hadamard block).
    fn apply(&self, row: &mut [f32]) {
        for head in row.chunks_mut(self.head_dim) {
            ops::rope(self.layout, &mut head[..self.n_rot], self.table);
        }
    }
}

impl Rows {
    /// Row `pos` (`out.len()` values) as f32, as stored.
    fn load(&self, pos: usize, out: &mut [f32]) {
        let dim = out.len();
        match self {
            Rows::F32(r) => out.copy_from_slice(&r[pos * dim..(pos + 1) * dim]),
            Rows::F16(r) => {
                for (o, h) in out.iter_mut().zip(&r[pos * dim..(pos + 1) * dim]) {
                    *o = h.to_f32();
                }
            }
            Rows::Q8_0(r) => {
                let rb = dim / 32 * 34;
                shohin_quant::dequantize_row(GgmlType::Q8_0, &r[pos * rb..(pos + 1) * rb], out)
                    .expect("a cache row is whole Q8_0 blocks");
            }
        }
    }

    /// Move rows `from..to` (of `dim` values) down to start at `dst`.
    fn move_rows(&mut self, from: usize, to: usize, dst: usize, dim: usize) {
        match self {
            Rows::F32(r) => r.copy_within(from * dim..to * dim, dst * dim),
            Rows::F16(r) => r.copy_within(from * dim..to * dim, dst * dim),
            Rows::Q8_0(r) => {
                let rb = dim / 32 * 34;
                r.copy_within(from * rb..to * rb, dst * rb);
            }
        }
    }
}

impl KvCache {
    /// Remove positions `keep..keep + n_discard` and move the rows after
    /// them down by `n_discard`, each key turned by `rot` (the rotation by
    /// `-n_discard` positions). Rows before `keep` are untouched; values
    /// are moved bit for bit. A key stored as f16 or `Q8_0` is read, turned
    /// in f32 (a `Q8_0` one out of and back into its Hadamard block:
    /// [`KvTypes::rotation`]) and stored again in its type.
    ///
    /// An error for a cache with a recurrent state: that state sums up
    /// every past token and cannot forget some of them.
    pub(crate) fn shift(
        &mut self,
        keep: usize,
        n_discard: usize,
        rot: &KeyRotation<'_>,
    ) -> Result<()> {
        if self.rec.is_some() {
            return Err(EngineError::NoContextShift(
                "context shift is not possible with a recurrent state (hybrid qwen35 models: \
                 the Gated DeltaNet state sums up every past token and cannot drop some of them)"
                    .into(),
            ));
        }
        let len = self.len;
        assert!(keep + n_discard <= len, "shift past the cache's length");
        assert_eq!(self.k_dim % rot.head_dim, 0, "rows are whole heads");
        assert!(rot.n_rot <= rot.head_dim && rot.table.len() * 2 >= rot.n_rot);
        if n_discard == 0 {
            return Ok(());
        }
        let from = keep + n_discard;
        let had = KvTypes::rotation(self.types.k, rot.head_dim, true);
        let mut row = vec![0.0f32; self.k_dim];
        for k in &mut self.k {
            for p in from..len {
                k.load(p, &mut row);
                // The normalized Walsh-Hadamard transform is its own
                // inverse: once undoes the block, once redoes it.
                if let Some(nr) = had {
                    row.chunks_mut(nr).for_each(ops::hadamard);
                }
                rot.apply(&mut row);
                if let Some(nr) = had {
                    row.chunks_mut(nr).for_each(ops::hadamard);
                }
                k.store(p - n_discard, &row);
            }
        }
        for v in &mut self.v {
            v.move_rows(from, len, keep, self.v_dim);
        }
        self.len = len - n_discard;
        Ok(())
    }

    /// Key row `pos` of attention layer `layer` as f32: as stored, so for a
    /// `Q8_0` cache with a Hadamard block still inside it (for tests and
    /// inspection).
    pub fn key_row(&self, layer: usize, pos: usize) -> Vec<f32> {
        assert!(pos < self.len);
        let mut out = vec![0.0; self.k_dim];
        self.k[layer].load(pos, &mut out);
        out
    }

    /// Value row `pos` of attention layer `layer` as f32, as stored.
    pub fn value_row(&self, layer: usize, pos: usize) -> Vec<f32> {
        assert!(pos < self.len);
        let mut out = vec![0.0; self.v_dim];
        self.v[layer].load(pos, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::CacheType;
    use super::*;
    use crate::rope::{RopeHparams, RopeOptions, RopeParams, RopeScaling};

    fn plain() -> RopeParams {
        RopeParams::resolve(&RopeHparams::plain(10_000.0), 4096, &RopeOptions::default()).unwrap()
    }

    /// YaRN x4 with a magnitude factor != 1: the stored keys carry it, the
    /// delta rotation must not apply it again.
    fn yarn() -> RopeParams {
        RopeParams {
            scaling: RopeScaling::Yarn,
            freq_base: 10_000.0,
            freq_scale: 0.25,
            ext_factor: 1.0,
            attn_factor: 1.25,
            beta_fast: 32.0,
            beta_slow: 1.0,
            n_ctx_orig: 64,
            freq_factors: None,
        }
    }

    /// A deterministic pre-RoPE key, values in about -3..3.
    fn key(seed: usize, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0 - 1.0) * 3.0)
            .collect()
    }

    /// `k` as the forward pass stores it at `pos`: RoPE over the first
    /// `n_rot` dims of each head at the absolute position, then the
    /// cache's Hadamard block (model.rs `forward_layers`).
    fn stored(k: &[f32], pos: usize, hd: usize, n_rot: usize, t: CacheType) -> Vec<f32> {
        stored_as(&plain(), RopeLayout::Neox, k, pos, hd, n_rot, t)
    }

    fn stored_as(
        rope: &RopeParams,
        layout: RopeLayout,
        k: &[f32],
        pos: usize,
        hd: usize,
        n_rot: usize,
        t: CacheType,
    ) -> Vec<f32> {
        let mut table = vec![(0.0, 0.0); n_rot / 2];
        rope.cache(pos as i64, n_rot, &mut table);
        let mut r = k.to_vec();
        for head in r.chunks_mut(hd) {
            ops::rope(layout, &mut head[..n_rot], &table);
        }
        if let Some(nr) = KvTypes::rotation(t, hd, true) {
            r.chunks_mut(nr).for_each(ops::hadamard);
        }
        r
    }

    /// After `shift(keep, d)`, every moved key equals the key stored fresh
    /// at its new position (RoPE of the absolute position, not a delta: an
    /// independent path), within the storage type's rounding; kept rows
    /// and values are bit for bit what they were.
    #[test]
    fn moved_keys_equal_keys_stored_at_the_new_position() {
        let (hd, n_head, len, keep, d) = (64, 2, 40, 3, 17);
        let dim = hd * n_head;
        let (neox, norm) = (RopeLayout::Neox, RopeLayout::Norm);
        let cases = CacheType::ALL.into_iter().flat_map(|t| {
            [
                (t, plain(), neox, hd),
                (t, plain(), neox, hd / 2),
                (t, plain(), norm, hd),
                (t, yarn(), neox, hd),
            ]
        });
        for (t, rope, layout, n_rot) in cases {
            {
                let types = KvTypes { k: t, v: t };
                let mut c = KvCache::new(2, 48, dim, dim, types);
                let mut want = KvCache::new(2, 48, dim, dim, types);
                let keys: Vec<Vec<f32>> = (0..len).map(|p| key(p, dim)).collect();
                for (p, k) in keys.iter().enumerate() {
                    for l in 0..2 {
                        let s = stored_as(&rope, layout, k, p, hd, n_rot, t);
                        c.store(l, p, &s, &key(p + 99, dim));
                    }
                    if p < keep || p >= keep + d {
                        let at = if p < keep { p } else { p - d };
                        let s = stored_as(&rope, layout, k, at, hd, n_rot, t);
                        want.store(1, at, &s, &key(p + 99, dim));
                    }
                }
                c.set_len(len);
                want.set_len(len - d);
                let before: Vec<Vec<f32>> = (0..len).map(|p| c.value_row(1, p)).collect();
                let kept: Vec<Vec<f32>> = (0..keep).map(|p| c.key_row(1, p)).collect();
                let mut table = vec![(0.0, 0.0); n_rot / 2];
                rope.rotation(-(d as i64), n_rot, &mut table);
                let rot = KeyRotation {
                    head_dim: hd,
                    n_rot,
                    layout,
                    table: &table,
                };
                c.shift(keep, d, &rot).unwrap();
                assert_eq!(c.len(), len - d);
                let mut worst = 0.0f32;
                for p in 0..len - d {
                    let (got, exp) = (c.key_row(1, p), want.key_row(1, p));
                    if let Some(k) = kept.get(p) {
                        assert_eq!(&got, k, "{t}: kept row {p} changed");
                    }
                    let old = if p < keep { p } else { p + d };
                    assert_eq!(c.value_row(1, p), before[old], "{t}: value row {p}");
                    let amax = exp.iter().fold(0.0f32, |m, x| m.max(x.abs()));
                    // The storage's rounding, as a fraction of the row's
                    // largest value: f32 only the angles' (p * n_rot/2
                    // products of f32 powers, < 1e-5 rad here); f16 one
                    // rounding of the stored row (a half-ulp, <= 2^-11 of
                    // the value) carried through the rotation, which may
                    // gather a pair's two errors on one dim (x sqrt 2),
                    // plus one of the result: (1 + sqrt 2) 2^-11 < 2.5
                    // 2^-11; Q8_0 likewise two quantizations of at most
                    // half a step (amax / 127) each, the first turned by
                    // the rotation and the Hadamard block (orthogonal:
                    // the error's norm is kept, it may gather) — 2 steps.
                    let tol = match t {
                        CacheType::F32 => 1e-5,
                        CacheType::F16 => 2.5 * 2f32.powi(-11),
                        CacheType::Q8_0 => 2.0 / 127.0,
                    } * amax;
                    for (i, (a, b)) in got.iter().zip(&exp).enumerate() {
                        let e = (a - b).abs();
                        worst = worst.max(e / amax);
                        assert!(
                            e <= tol,
                            "{t} {layout:?} {n_rot} {:?}: row {p} dim {i}: {a} vs {b}",
                            rope.scaling
                        );
                    }
                }
                eprintln!(
                    "{t} {layout:?} n_rot {n_rot} {:?}: worst |diff| / amax = {worst:.2e}",
                    rope.scaling
                );
            }
        }
    }

    /// A rotation that does nothing would leave keys at their old angle:
    /// the check above must see that (it can fail).
    #[test]
    fn an_unrotated_move_is_caught() {
        let (hd, dim) = (64, 64);
        let t = CacheType::F32;
        let mut c = KvCache::new(1, 8, dim, dim, KvTypes { k: t, v: t });
        for p in 0..8 {
            c.store(0, p, &stored(&key(p, dim), p, hd, hd, t), &key(p, dim));
        }
        c.set_len(8);
        let identity = vec![(1.0, 0.0); hd / 2];
        let rot = KeyRotation {
            head_dim: hd,
            n_rot: hd,
            layout: RopeLayout::Neox,
            table: &identity,
        };
        c.shift(0, 4, &rot).unwrap();
        let fresh = stored(&key(4, dim), 0, hd, hd, t);
        let e = c
            .key_row(0, 0)
            .iter()
            .zip(&fresh)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(e > 0.1, "an unrotated key passed as rotated ({e})");
    }

    #[test]
    fn a_recurrent_state_refuses() {
        let mut c = KvCache::new(1, 8, 64, 64, KvTypes::default()).with_recurrent(1, 4);
        c.set_len(8);
        let table = vec![(1.0, 0.0); 32];
        let rot = KeyRotation {
            head_dim: 64,
            n_rot: 64,
            layout: RopeLayout::Neox,
            table: &table,
        };
        let e = c.shift(0, 4, &rot).unwrap_err().to_string();
        assert!(e.contains("recurrent"), "{e}");
        assert_eq!(c.len(), 8);
    }
}
