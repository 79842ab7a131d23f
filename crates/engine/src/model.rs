//! The qwen2 / qwen3 forward pass, written once over a [`Backend`]. Read it
//! top to bottom like llama2.c's `forward`: shapes are in the comments
//! (`n` = tokens in the batch, `d` = n_embd).

use crate::backend::Backend;
use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::kv_cache::KvCache;
use crate::ops;
use crate::weights::Weights;
use half::f16;
use rayon::prelude::*;
use shohin_gguf::GgufFile;
use shohin_quant::simd::attn;
use std::sync::Mutex;

/// Tokens per forward chunk during prompt processing (llama.cpp's n_ubatch).
pub const N_BATCH: usize = 512;

#[derive(Debug)]
pub struct Model {
    pub file: GgufFile,
    pub config: ModelConfig,
    pub weights: Weights,
    pub backend: Box<dyn Backend>,
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

/// Per-thread buffers of one attention task (a token and head), reused so
/// that attention allocates nothing per task.
#[derive(Default)]
struct AttnScratch {
    qh: Vec<f32>,
    probs: Vec<f32>,
    acc: Vec<f32>,
}

thread_local! {
    static ATTN_SCRATCH: std::cell::RefCell<AttnScratch> = std::cell::RefCell::default();
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
        let config = ModelConfig::from_gguf(&file)?;
        let mut weights = Weights::load(&file, &config)?;
        backend.check(&mut weights.matrices())?;
        weights.pack(&file, &*backend);
        Ok(Self {
            file,
            config,
            weights,
            backend,
            work: Mutex::new(Workspace::default()),
        })
    }

    pub fn n_vocab(&self) -> usize {
        self.weights.n_vocab
    }

    /// A cache for `n_ctx` positions.
    pub fn new_cache(&self, n_ctx: usize) -> KvCache {
        let c = &self.config;
        KvCache::new(c.n_layer, n_ctx, c.k_dim(), c.v_dim())
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
            for t in 0..n {
                cache.store(
                    il,
                    pos0 + t,
                    &k[t * c.k_dim()..(t + 1) * c.k_dim()],
                    &v[t * c.v_dim()..(t + 1) * c.v_dim()],
                );
            }
            self.attention(cache, il, pos0, n, q, att);
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

    /// Causal attention of `n` queries (positions `pos0..pos0+n`) over the
    /// cache, one task per (token, head). q: [n][n_head*hd] → att: [n][n_head*hd_v].
    ///
    /// The arithmetic is llama.cpp's non-flash path (llama-graph.cpp
    /// build_attn_mha) to the bit, for its AVX-512 build: `kq = mul_mat(k_f16,
    /// q)` rounds q to f16 and sums each dot in ggml's order ([`ops::DotOrder`]:
    /// tinyBLAS for a batch, `ggml_vec_dot_f16` for one token); `soft_max_ext`
    /// scales, then [`ops::softmax_ggml`]; `mul_mat(v_f16, kq)` rounds the
    /// probabilities to f16 and sums over positions in the same orders, with
    /// position `j` accumulated into lane `j % lanes`.
    fn attention(
        &self,
        cache: &KvCache,
        il: usize,
        pos0: usize,
        n: usize,
        q: &[f32],
        att: &mut [f32],
    ) {
        let c = &self.config;
        let (hd, hd_v) = (c.head_dim, c.head_dim_v);
        let group = c.n_head / c.n_head_kv;
        let (kd, vd) = (c.k_dim(), c.v_dim());
        let keys = cache.keys(il, pos0 + n);
        let values = cache.values(il, pos0 + n);
        let scale = 1.0 / (hd as f32).sqrt();
        let kq_order = ops::DotOrder::for_batch(n, hd);
        // ggml's KV length is padded to a multiple of 256 (llama-kv-cache.cpp
        // get_n_kv), so the probability dot is always a multiple of 16 long.
        let kqv_order = ops::DotOrder::for_batch(n, 256);
        let lanes = kqv_order.lanes();
        att.par_chunks_mut(hd_v).enumerate().for_each(|(i, out)| {
            ATTN_SCRATCH.with_borrow_mut(|s| {
                let (t, head) = (i / c.n_head, i % c.n_head);
                let kvh = head / group;
                let n_kv = pos0 + t + 1;
                let AttnScratch { qh, probs, acc } = s;
                qh.clear();
                qh.extend(
                    q[t * c.q_dim() + head * hd..][..hd]
                        .iter()
                        .map(|&x| f16::from_f32(x).to_f32()),
                );
                probs.resize(n_kv, 0.0);
                attn::scores_f16(kq_order.lanes(), qh, &keys[kvh * hd..], kd, scale, probs);
                ops::softmax_ggml(probs);
                // acc[l][d]: lane l of the dot for output dim d.
                acc.clear();
                acc.resize(lanes * hd_v, 0.0);
                for (j, &p) in probs.iter().enumerate() {
                    let p = f16::from_f32(p).to_f32();
                    let row = &mut acc[(j % lanes) * hd_v..][..hd_v];
                    // p·v is exact in f32 (f16 × f16), so the FMA of axpy_f16
                    // rounds like ggml's.
                    attn::axpy_f16(row, p, &values[j * vd + kvh * hd_v..][..hd_v]);
                }
                attn::reduce_rows(lanes, acc, out);
            })
        });
    }
}
