//! The qwen2 / qwen3 forward pass, written once over a [`Backend`]. Read it
//! top to bottom like llama2.c's `forward`: shapes are in the comments
//! (`n` = tokens in the batch, `d` = n_embd).

use crate::attention;
use crate::backend::Backend;
use crate::config::{Arch, ModelConfig};
use crate::error::{EngineError, Result};
use crate::hadamard::{self, FoldPlan, GdnHeads, HadamardFold};
use crate::kv_cache::{KvCache, KvTypes};
use crate::ops;
use crate::weights::{Matrix, Weights};
use shohin_gguf::GgufFile;
use std::sync::Mutex;

mod qwen35;

/// Tokens per forward chunk during prompt processing (llama.cpp's n_ubatch).
pub const N_BATCH: usize = 512;

#[derive(Debug)]
pub struct Model {
    pub file: GgufFile,
    pub config: ModelConfig,
    pub weights: Weights,
    pub backend: Box<dyn Backend>,
    /// The file's `prism.hadamard` weight fold (qwen35 only), bound to its
    /// tensors; its per-matrix plans are also in `weights` (`Matrix::fold`).
    fold: Option<HadamardFold>,
    /// How new caches store keys and values (`--cache-type-k/-v`).
    kv_types: KvTypes,
    /// Activation buffers reused by every forward pass.
    work: Mutex<Workspace>,
    /// The LoRA adapters applied by each forward step (lora.rs).
    pub(crate) lora: crate::lora::LoraSlot,
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
    /// Logits of the rows that want them, `[rows][n_vocab]`.
    logits: Vec<f32>,
    /// Per token of the step: the index of its span, and its position.
    span_of: Vec<u32>,
    pos: Vec<usize>,
    /// qwen35's extra buffers (model/qwen35.rs).
    hybrid: qwen35::HybridWork,
}

/// Before a product with `m`: its input `x` (rows of `m.cols`) through the
/// fold's plan when `m` is folded, in place. For inputs read by `m` alone.
fn fold_input(m: &Matrix, x: &mut [f32]) {
    if let Some(p) = &m.fold {
        p.apply(x)
            .expect("the input is whole rows of the weight's width");
    }
}

/// The input of several products that read the same normed rows `plain`:
/// a folded matrix reads the transformed copy made once in `folded`
/// (matrices of one input share its width, hence its plan), the others
/// `plain`. Nothing is copied when none is folded.
#[derive(Clone, Copy)]
struct SharedInput<'a> {
    plain: &'a [f32],
    folded: Option<&'a [f32]>,
}

impl<'a> SharedInput<'a> {
    fn new(plain: &'a [f32], mats: &[&Matrix], buf: &'a mut Vec<f32>) -> Self {
        let folded = mats
            .iter()
            .find_map(|m| m.fold.as_deref())
            .map(|p: &FoldPlan| {
                debug_assert!(mats.iter().all(|m| m.cols == p.width()));
                buf.clear();
                buf.extend_from_slice(plain);
                p.apply(buf)
                    .expect("the input is whole rows of the weight's width");
                &buf[..]
            });
        SharedInput { plain, folded }
    }

    /// What the product with `m` reads.
    fn for_matrix(&self, m: &Matrix) -> &'a [f32] {
        match (&m.fold, self.folded) {
            (Some(_), Some(f)) => f,
            _ => self.plain,
        }
    }
}

/// One sequence's part of a [`Model::forward_batch`] step.
#[derive(Debug)]
pub struct Span<'a> {
    /// The sequence's cache; the tokens go at positions `cache.len()..`.
    pub cache: &'a mut KvCache,
    pub tokens: &'a [u32],
    /// Where to write the logits after the span's last token (`n_vocab`).
    pub logits: Option<&'a mut [f32]>,
    /// Where to append each token's final hidden state after the output
    /// norm (`[n][n_embd]`), for embeddings.
    pub hidden: Option<&'a mut Vec<f32>>,
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
        let gdn = config.hybrid.as_ref().map(|h| GdnHeads {
            n_v: h.n_v_heads,
            n_k: h.n_k_heads,
        });
        if config.arch != Arch::Qwen35 && file.get(hadamard::KEY_VERSION).is_some() {
            return Err(EngineError::BadHparam {
                key: hadamard::KEY_VERSION.to_string(),
                why: format!(
                    "this {} file has a prism.hadamard weight fold; PrismML's fork applies \
                     it to qwen3 too, but shohin applies it only in qwen35 (Bonsai 2)",
                    config.arch.name()
                ),
            });
        }
        let fold = HadamardFold::from_gguf(&file, gdn)?;
        if fold.as_ref().is_some_and(|f| f.folds_embedding())
            && file.tensor("output.weight").is_none()
        {
            return Err(EngineError::BadHparam {
                key: hadamard::KEY_INVERSE_WEIGHT_NAMES.to_string(),
                why: format!(
                    "`{}` is inverse-folded and the output head is tied to it (no \
                     output.weight): the fork's version-2 `tied_output`, which shohin \
                     does not support",
                    hadamard::TOKEN_EMBD
                ),
            });
        }
        let mut weights = Weights::load(&file, &config)?;
        if let Some(fold) = &fold {
            weights.attach_fold(fold);
        }
        backend.check(&mut weights.matrices())?;
        weights.pack(&file, &*backend, progress);
        Ok(Self {
            file,
            config,
            weights,
            backend,
            fold,
            kv_types: KvTypes::default(),
            work: Mutex::new(Workspace::default()),
            lora: Default::default(),
        })
    }

    /// The file's `prism.hadamard` weight fold, if it has one.
    pub fn fold(&self) -> Option<&HadamardFold> {
        self.fold.as_ref()
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

    /// A cache for `n_ctx` positions (for a hybrid model: rows for its
    /// attention layers only, and the recurrent layers' state).
    pub fn new_cache(&self, n_ctx: usize) -> KvCache {
        let c = &self.config;
        let kv = KvCache::new(
            c.n_attn_layers(),
            n_ctx,
            c.k_dim(),
            c.v_dim(),
            self.kv_types,
        );
        match &c.hybrid {
            Some(h) => kv.with_recurrent(c.n_layer - c.n_attn_layers(), h.state_floats()),
            None => kv,
        }
    }

    /// Run `tokens` at positions `cache.len()..`, append them to the cache
    /// and write the logits of the last token to `logits` (`n_vocab`): the
    /// batch of one sequence, in chunks of [`N_BATCH`] tokens.
    pub fn forward(&self, cache: &mut KvCache, tokens: &[u32], logits: &mut [f32]) -> Result<()> {
        if tokens.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        if cache.len() + tokens.len() > cache.n_ctx() {
            return Err(EngineError::ContextFull {
                n_ctx: cache.n_ctx(),
            });
        }
        let n_chunks = tokens.len().div_ceil(N_BATCH);
        for (i, chunk) in tokens.chunks(N_BATCH).enumerate() {
            let last = i + 1 == n_chunks;
            self.forward_batch(&mut [Span {
                cache: &mut *cache,
                tokens: chunk,
                logits: if last { Some(&mut *logits) } else { None },
                hidden: None,
            }])?;
        }
        Ok(())
    }

    /// The logits of `rows` normed final hidden states `h` (`[rows][n_embd]`,
    /// as `Span::hidden` returns them; transformed in place when the output
    /// matrix is Hadamard-folded) into `logits` (`[rows][n_vocab]`): the
    /// output head of [`Self::forward_batch`], for callers that score many
    /// positions (perplexity).
    pub fn output_logits(&self, h: &mut [f32], rows: usize, logits: &mut [f32]) {
        let w = &self.weights;
        fold_input(&w.output, h);
        self.matmul_lora(&self.lora.active(), &w.output, h, rows, logits);
    }

    /// One step over several sequences: every span's tokens run through
    /// every layer together (one matrix product per weight for all of
    /// them), each at its own positions and attending over its own cache.
    /// A token's arithmetic does not depend on the other tokens of the step
    /// (activations are quantized per token, attention sums in one order),
    /// so its logits are bit-identical whatever it is batched with.
    ///
    /// Checks every span before touching any cache.
    pub fn forward_batch(&self, spans: &mut [Span<'_>]) -> Result<()> {
        let n_vocab = self.n_vocab();
        for sp in spans.iter() {
            if sp.tokens.is_empty() {
                return Err(EngineError::EmptyPrompt);
            }
            if let Some(&id) = sp.tokens.iter().find(|&&id| id as usize >= n_vocab) {
                return Err(EngineError::TokenOutOfVocab { id, n_vocab });
            }
            if sp.cache.len() + sp.tokens.len() > sp.cache.n_ctx() {
                return Err(EngineError::ContextFull {
                    n_ctx: sp.cache.n_ctx(),
                });
            }
            if let Some(l) = &sp.logits {
                assert_eq!(l.len(), n_vocab);
            }
            if sp.cache.rec.is_some() != self.config.hybrid.is_some() {
                return Err(EngineError::BadCacheType(
                    "the cache was not made by this model's new_cache (recurrent state)".into(),
                ));
            }
            if sp.cache.types() != spans[0].cache.types() {
                return Err(EngineError::BadCacheType(
                    "the sequences of one batch must share their cache types".into(),
                ));
            }
        }
        if spans.is_empty() {
            return Ok(());
        }
        let mut guard = self.work.lock().unwrap_or_else(|e| e.into_inner());
        let ws = &mut *guard;
        let mut run = || match self.config.hybrid {
            Some(_) => self.forward_layers_hybrid(spans, ws),
            None => self.forward_layers(spans, ws),
        };
        self.backend.install(&mut run);

        // Final norm: of the last token of spans that want logits (one
        // product with the output matrix for all of them), of every token of
        // spans that want hidden states.
        let w = &self.weights;
        let c = &self.config;
        let d = c.n_embd;
        let mut t0 = 0;
        let mut rows = 0;
        for sp in spans.iter_mut() {
            let n = sp.tokens.len();
            if sp.logits.is_some() {
                let last = &ws.x[(t0 + n - 1) * d..(t0 + n) * d];
                let h = fit(&mut ws.h, (rows + 1) * d);
                ops::rms_norm(last, &w.output_norm, c.rms_eps, &mut h[rows * d..]);
                rows += 1;
            }
            if let Some(hidden) = sp.hidden.as_deref_mut() {
                for t in t0..t0 + n {
                    let at = hidden.len();
                    hidden.resize(at + d, 0.0);
                    let xs = &ws.x[t * d..(t + 1) * d];
                    ops::rms_norm(xs, &w.output_norm, c.rms_eps, &mut hidden[at..]);
                }
            }
            t0 += n;
        }
        if rows > 0 {
            let Workspace { h, logits, .. } = ws;
            let l = fit(logits, rows * n_vocab);
            self.output_logits(&mut h[..rows * d], rows, l);
            let mut r = 0;
            for sp in spans.iter_mut() {
                if let Some(dst) = sp.logits.as_deref_mut() {
                    dst.copy_from_slice(&l[r * n_vocab..(r + 1) * n_vocab]);
                    r += 1;
                }
            }
        }
        Ok(())
    }

    /// Start a step: each token's span and position in `ws.span_of` and
    /// `ws.pos`, and its embedding row in `ws.x` (`[n][d]`). Returns `n`.
    fn begin_step(&self, spans: &[Span<'_>], ws: &mut Workspace) -> usize {
        let d = self.config.n_embd;
        let n: usize = spans.iter().map(|s| s.tokens.len()).sum();
        ws.span_of.clear();
        ws.pos.clear();
        for (i, sp) in spans.iter().enumerate() {
            let p0 = sp.cache.len();
            ws.span_of
                .extend(std::iter::repeat_n(i as u32, sp.tokens.len()));
            ws.pos.extend(p0..p0 + sp.tokens.len());
        }
        // x: [n][d] residual stream, from the embedding rows.
        let x = fit(&mut ws.x, n * d);
        let emb = self.weights.token_embd.view(&self.file);
        let emb_row = emb.data.len() / emb.rows;
        let tokens = spans.iter().flat_map(|s| s.tokens.iter());
        for (t, &id) in tokens.enumerate() {
            let id = id as usize;
            shohin_quant::dequantize_row(
                emb.ty,
                &emb.data[id * emb_row..(id + 1) * emb_row],
                &mut x[t * d..(t + 1) * d],
            )
            .expect("embedding row is whole blocks");
        }
        // An inverse-folded table stores H·S·e: restore e = S·H·e'.
        if let Some(p) = self.fold.as_ref().and_then(|f| f.embedding_plan()) {
            p.apply(x).expect("embedding rows are n_embd wide");
        }
        // The adapters' deltas are for the rows e of the unfolded table.
        self.embed_lora(spans.iter().flat_map(|s| s.tokens.iter().copied()), x);
        n
    }

    /// Every layer for the tokens of `spans` (`n` in all); leaves the
    /// residual stream (`[n][d]`, spans in order) in `ws.x` and appends the
    /// tokens to their caches.
    fn forward_layers(&self, spans: &mut [Span<'_>], ws: &mut Workspace) {
        let c = &self.config;
        let w = &self.weights;
        let lora = self.lora.active();
        let mm = |m: &Matrix, x: &[f32], n: usize, out: &mut [f32]| {
            self.matmul_lora(&lora, m, x, n, out)
        };
        let n = self.begin_step(spans, ws);
        let d = c.n_embd;
        let (hd, hd_v) = (c.head_dim, c.head_dim_v);
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
            span_of,
            pos,
            ..
        } = ws;
        let x = &mut x[..n * d];
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
            c.rope.cache(pos[t] as i64, hd, r);
        }

        for (il, l) in w.layers.iter().enumerate() {
            // --- attention ---
            for t in 0..n {
                let xs = &x[t * d..(t + 1) * d];
                ops::rms_norm(xs, &l.attn_norm, c.rms_eps, &mut h[t * d..(t + 1) * d]);
            }
            mm(&l.wq, h, n, q);
            mm(&l.wk, h, n, k);
            mm(&l.wv, h, n, v);
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
            let layout = c.arch.rope_layout();
            for (buf, width) in [(&mut *q, c.q_dim()), (&mut *k, c.k_dim())] {
                for (t, row) in buf.chunks_mut(width).enumerate() {
                    let r = &rope[t * hd / 2..(t + 1) * hd / 2];
                    for head in row.chunks_mut(hd) {
                        ops::rope(layout, head, r);
                    }
                }
            }
            attention::store_and_attend(c, spans, span_of, pos, il, q, k, v, att);
            mm(&l.wo, att, n, proj);
            ops::add_inplace(x, proj);

            // --- feed-forward (SwiGLU) ---
            for t in 0..n {
                let xs = &x[t * d..(t + 1) * d];
                ops::rms_norm(xs, &l.ffn_norm, c.rms_eps, &mut h[t * d..(t + 1) * d]);
            }
            mm(&l.w_gate, h, n, gate);
            mm(&l.w_up, h, n, up);
            ops::swiglu(gate, up);
            mm(&l.w_down, gate, n, proj);
            ops::add_inplace(x, proj);
        }
        for sp in spans.iter_mut() {
            let len = sp.cache.len() + sp.tokens.len();
            sp.cache.set_len(len);
        }
    }
}
