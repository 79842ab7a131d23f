//! Key/value cache: per layer, `n_ctx` rows of the concatenated kv heads,
//! stored as f16 (llama.cpp's default `--cache-type-k/v f16`).

use half::f16;

#[derive(Debug)]
pub struct KvCache {
    n_ctx: usize,
    k_dim: usize,
    v_dim: usize,
    /// Per layer: `[n_ctx][k_dim]`.
    k: Vec<Vec<f16>>,
    /// Per layer: `[n_ctx][v_dim]`.
    v: Vec<Vec<f16>>,
    /// Positions filled (the same for every layer once a forward completes).
    len: usize,
}

impl KvCache {
    /// Sized by the caller from `--ctx-size`, never from file metadata alone.
    pub fn new(n_layer: usize, n_ctx: usize, k_dim: usize, v_dim: usize) -> Self {
        Self {
            n_ctx,
            k_dim,
            v_dim,
            k: (0..n_layer)
                .map(|_| vec![f16::ZERO; n_ctx * k_dim])
                .collect(),
            v: (0..n_layer)
                .map(|_| vec![f16::ZERO; n_ctx * v_dim])
                .collect(),
            len: 0,
        }
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
    /// Forget everything after `len` positions (new conversation or rewind).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
    pub(crate) fn set_len(&mut self, len: usize) {
        debug_assert!(len <= self.n_ctx);
        self.len = len;
    }

    /// Store k and v rows of `layer` at position `pos`.
    pub(crate) fn store(&mut self, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        let kd = &mut self.k[layer][pos * self.k_dim..(pos + 1) * self.k_dim];
        for (d, &s) in kd.iter_mut().zip(k) {
            *d = f16::from_f32(s);
        }
        let vd = &mut self.v[layer][pos * self.v_dim..(pos + 1) * self.v_dim];
        for (d, &s) in vd.iter_mut().zip(v) {
            *d = f16::from_f32(s);
        }
    }

    /// Keys of `layer` for positions `0..n`, row-major `[n][k_dim]`.
    pub(crate) fn keys(&self, layer: usize, n: usize) -> &[f16] {
        &self.k[layer][..n * self.k_dim]
    }
    pub(crate) fn values(&self, layer: usize, n: usize) -> &[f16] {
        &self.v[layer][..n * self.v_dim]
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.k.len() * self.n_ctx * (self.k_dim + self.v_dim) * 2
    }
}
