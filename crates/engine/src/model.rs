//! The qwen2 / qwen3 forward pass, written once over a [`Backend`]. Read it
//! top to bottom like llama2.c's `forward`: shapes are in the comments
//! (`n` = tokens in the batch, `d` = n_embd).

use crate::attention;
use crate::backend::Backend;
use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::kv_cache::{KvCache, KvTypes};
use crate::ops;
use crate::weights::Weights;
use shohin_gguf::GgufFile;
use std::sync::Mutex;

/// Tokens per forward chunk during prompt processing (llama.cpp's n_ubatch).
pub const N_BATCH: usize = 512;

#[derive(Debug)]
pub struct Model {
    pub file: GgufFile,
    pub config: ModelConfig,
    pub weights: Weights,
    pub backend: Box<dyn Backend>,
    /// How new caches store keys and values (`--cache-type-k/-v`).
    kv_types: KvTypes,
    /// Activation buffers reused by every forward pass.
    work: Mutex<Workspace>,
}

/// The activation buffers of a forward pass, kept between calls so that a
/// decode step allocates nothing once they have reached their size.
#[derive(Debug, Default)]
struct Workspace {
    x: Vec<f32>,
    h: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    proj: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    rope: Vec<(f32, f32)>,
}

/// `buf` as `len` values (contents unspecified: every user overwrites them).
fn fit(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    buf.resize(len, 0.0);
    &mut buf[..len]
}

impl Model {
    /// Validate hyperparameters and tensors, and ask the backend whether it
    /// can run every matrix (fail at load, not mid-generation).
    pub fn load(file: GgufFile, backend: Box<dyn Backend>) -> Result<Self> {
        Self::load_with_progress(file, backend, &mut |_, _| {})
    }

    /// [`Self::load`], reporting the repacking of the matrices as
    /// `progress(done bytes, total bytes)` (seconds for an 8B model).
    pub fn load_with_progress(
        file: GgufFile,
        backend: Box<dyn Backend>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Self> {
        let config = ModelConfig::from_gguf(&file)?;
        let mut weights = Weights::load(&file, &config)?;
        backend.check(&mut weights.matrices())?;
        weights.pack(&file, &*backend, progress);
        Ok(Self {
            file,
            config,
            weights,
            backend,
            kv_types: KvTypes::default(),
            work: Mutex::new(Workspace::default()),
        })
    }

    pub fn n_vocab(&self) -> usize {
        self.weights.n_vocab
    }

    /// Store keys and values of new caches as `t` (default f16); an error
    /// if this model's head sizes do not fit the type.
    pub fn set_kv_types(&mut self, t: KvTypes) -> Result<()> {
        t.check(self.config.head_dim, self.config.head_dim_v)?;
        self.kv_types = t;
        Ok(())
    }

    pub fn kv_types(&self) -> KvTypes {
        self.kv_types
    }

    /// A cache for `n_ctx` positions.
    pub fn new_cache(&self, n_ctx: usize) -> KvCache {
        let c = &self.config;
        KvCache::new(c.n_layer, n_ctx, c.k_dim(), c.v_dim(), self.kv_types)
    }

    /// Run `tokens` at positions `cache.len()..`, append them to the cache
    /// and write the logits of the last token to `logits` (`n_vocab`).
    pub fn forward(&self, cache: &mut KvCache, tokens: &[u32], logits: &mut [f32]) -> Result<()> {
        if tokens.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let n_vocab = self.n_vocab();
        if let Some(&id) = tokens.iter().find(|&&id| id as usize >= n_vocab) {
            return Err(EngineError::TokenOutOfVocab { id, n_vocab });
        }
        if cache.len() + tokens.len() > cache.n_ctx() {
            return Err(EngineError::ContextFull {
                n_ctx: cache.n_ctx(),
            });
        }
        assert_eq!(logits.len(), n_vocab);
        let mut guard = self.work.lock().unwrap_or_else(|e| e.into_inner());
        let ws = &mut *guard;
        for chunk in tokens.chunks(N_BATCH) {
            let mut run = || self.forward_chunk(cache, chunk, ws);
            self.backend.install(&mut run);
        }
        let w = &self.weights;
        let d = self.config.n_embd;
        let normed = fit(&mut ws.h, d);
        ops::rms_norm(
            &ws.x[ws.x.len() - d..],
            &w.output_norm,
            self.config.rms_eps,
            normed,
        );
        let out = w.output.view(&self.file);
        self.backend.matmul(out, normed, 1, logits);
        Ok(())
    }

    /// One batch of `n` tokens through every layer; leaves the residual
    /// stream (`[n][d]`, the last token's hidden state last) in `ws.x`.
    fn forward_chunk(&self, cache: &mut KvCache, tokens: &[u32], ws: &mut Workspace) {
        let c = &self.config;
        let w = &self.weights;
        let f = &self.file;
        let be = &*self.backend;
        let (n, d) = (tokens.len(), c.n_embd);
        let (hd, hd_v) = (c.head_dim, c.head_dim_v);
        let pos0 = cache.len();

        let Workspace {
            x,
            h,
            q,
            k,
            v,
            att,
            proj,
            gate,
            up,
            rope,
        } = ws;
        // x: [n][d] residual stream, from the embedding rows.
        let x = fit(x, n * d);
        let emb = w.token_embd.view(f);
        let emb_row = emb.data.len() / emb.rows;
        for (t, &id) in tokens.iter().enumerate() {
            let id = id as usize;
            shohin_quant::dequantize_row(
                emb.ty,
                &emb.data[id * emb_row..(id + 1) * emb_row],
                &mut x[t * d..(t + 1) * d],
            )
            .expect("embedding row is whole blocks");
        }

        let h = fit(h, n * d); // [n][d] normed input of a sub-block
        let q = fit(q, n * c.q_dim()); // [n][n_head*hd]
        let k = fit(k, n * c.k_dim()); // [n][n_head_kv*hd]
        let v = fit(v, n * c.v_dim()); // [n][n_head_kv*hd_v]
        let att = fit(att, n * c.n_head * hd_v); // [n][n_head*hd_v]
        let proj = fit(proj, n * d); // [n][d] output of wo / w_down
        let gate = fit(gate, n * c.n_ff); // [n][n_ff]
        let up = fit(up, n * c.n_ff); // [n][n_ff]
        rope.resize(n * hd / 2, (0.0, 0.0)); // [n][hd/2] (cos, sin)
        for (t, r) in rope.chunks_mut(hd / 2).enumerate() {
            ops::rope_cache(pos0 + t, hd, c.rope_base, r);
        }

        for (il, l) in w.layers.iter().enumerate() {
            // --- attention ---
            for t in 0..n {
                let xs = &x[t * d..(t + 1) * d];
                ops::rms_norm(xs, &l.attn_norm, c.rms_eps, &mut h[t * d..(t + 1) * d]);
            }
            be.matmul(l.wq.view(f), h, n, q);
            be.matmul(l.wk.view(f), h, n, k);
            be.matmul(l.wv.view(f), h, n, v);
            for (buf, bias) in [(&mut *q, &l.bq), (&mut *k, &l.bk), (&mut *v, &l.bv)] {
                if let Some(b) = bias {
                    for row in buf.chunks_mut(b.len()) {
                        ops::add_inplace(row, b);
                    }
                }
            }
            for (buf, norm) in [(&mut *q, &l.q_norm), (&mut *k, &l.k_norm)] {
                if let Some(nw) = norm {
                    for head in buf.chunks_mut(hd) {
                        ops::rms_norm_inplace(head, nw, c.rms_eps);
                    }
                }
            }
            for (buf, width) in [(&mut *q, c.q_dim()), (&mut *k, c.k_dim())] {
                for (t, row) in buf.chunks_mut(width).enumerate() {
                    let r = &rope[t * hd / 2..(t + 1) * hd / 2];
                    for head in row.chunks_mut(hd) {
                        ops::rope_neox(head, r);
                    }
                }
            }
            // A quantized cache stores rotated q/k (and v, un-rotated in the
            // output): see KvTypes::rotation.
            let kv = cache.types();
            if let Some(nr) = KvTypes::rotation(kv.k, hd, true) {
                q.chunks_mut(nr).for_each(ops::hadamard);
                k.chunks_mut(nr).for_each(ops::hadamard);
            }
            let v_rot = KvTypes::rotation(kv.v, hd_v, false);
            if let Some(nr) = v_rot {
                v.chunks_mut(nr).for_each(ops::hadamard);
            }
            for t in 0..n {
                cache.store(
                    il,
                    pos0 + t,
                    &k[t * c.k_dim()..(t + 1) * c.k_dim()],
                    &v[t * c.v_dim()..(t + 1) * c.v_dim()],
                );
            }
            self.attention(cache, il, pos0, n, q, att);
            if let Some(nr) = v_rot {
                att.chunks_mut(nr).for_each(ops::hadamard);
            }
            be.matmul(l.wo.view(f), att, n, proj);
            ops::add_inplace(x, proj);

            // --- feed-forward (SwiGLU) ---
            for t in 0..n {
                let xs = &x[t * d..(t + 1) * d];
                ops::rms_norm(xs, &l.ffn_norm, c.rms_eps, &mut h[t * d..(t + 1) * d]);
            }
            be.matmul(l.w_gate.view(f), h, n, gate);
            be.matmul(l.w_up.view(f), h, n, up);
            ops::swiglu(gate, up);
            be.matmul(l.w_down.view(f), gate, n, proj);
            ops::add_inplace(x, proj);
        }
        cache.set_len(pos0 + n);
    }

    /// Causal attention of layer `il` over the cache ([`attention`]).
    fn attention(
        &self,
        cache: &KvCache,
        il: usize,
        pos0: usize,
        n: usize,
        q: &[f32],
        att: &mut [f32],
    ) {
        attention::attend(&self.config, cache, il, pos0, n, q, att);
    }
}
