//! The qwen35 (Qwen3.5 hybrid, Bonsai 2) layers: read it beside
//! `Model::forward_layers` in model.rs, which it follows step by step
//! (llama.cpp `src/models/qwen35.cpp` graph::graph). Each layer is
//!
//! ```text
//! x += mixer(rms_norm(x, attn_norm))           gated attention or DeltaNet
//! x += ffn(rms_norm(x, post_attention_norm))   SwiGLU, as qwen3
//! ```
//!
//! Gated attention is qwen3's attention with three changes: `attn_q` also
//! yields a per-head gate, RoPE turns only the first `n_rot` dims of a
//! head, and `attn_output` reads attn ⊙ sigmoid(gate). A Gated DeltaNet
//! layer is linear attention with a fixed-size recurrent state per
//! sequence (`delta_net.rs`, `recurrent.rs`).
//!
//! A `prism.hadamard`-folded file (Bonsai 2, `hadamard.rs`): each folded
//! matrix reads its input through the fold's plan (`H·S·P·x`), made once
//! per input in a copy when that input also feeds unfolded matrices
//! (`SharedInput`: ssm_alpha / ssm_beta are never folded), in place when
//! the matrix is its only reader (`fold_input`: attn_output, ssm_out with
//! the head permutation, ffn_down, the output head); the embedding rows
//! are un-folded in `begin_step`. Without a fold nothing changes.
//!
//! LoRA (lora.rs): every product goes through `matmul_lora`, as
//! llama.cpp's qwen35 graph sends each of them through `build_lora_mm`
//! (attn_q/k/v/output; attn_qkv, attn_gate, ssm_alpha, ssm_beta, ssm_out;
//! ffn_gate/up/down; the output head); `ssm_conv1d` is a convolution, not
//! adapted. `LoraAdapter::check` refuses pairs for folded matrices.

use super::{fit, fold_input, Model, SharedInput, Span, Workspace};
use crate::attention;
use crate::config::HybridConfig;
use crate::delta_net::{self, HeadIn};
use crate::lora::ActiveLora;
use crate::ops;
use crate::weights::{DeltaNet, GatedAttention, Matrix, Mixer};
use rayon::prelude::*;

/// qwen35's activation buffers beyond those of [`Workspace`].
#[derive(Debug, Default)]
pub(super) struct HybridWork {
    /// `attn_q`'s output, `[n][n_head][2 * head_dim]` (query, gate).
    qg: Vec<f32>,
    /// The attention gate, `[n][n_head * head_dim]`.
    gate: Vec<f32>,
    /// DeltaNet: `attn_qkv`'s output, then convolved, `[n][conv_dim]`.
    qkv: Vec<f32>,
    /// DeltaNet: the output gate z, `[n][H_v * d]`.
    z: Vec<f32>,
    /// DeltaNet: `ssm_alpha` and `ssm_beta` outputs, `[n][H_v]`.
    alpha: Vec<f32>,
    beta: Vec<f32>,
    /// DeltaNet: the log-decay g and the write strength beta, head-major
    /// `[H_v][n]` (each head reads its tokens in a row).
    g_t: Vec<f32>,
    beta_t: Vec<f32>,
    /// DeltaNet: the delta rule's outputs per head, `[H_v][n][d]`.
    heads: Vec<f32>,
    /// DeltaNet: the same token-major, `[n][H_v * d]`, normed and gated:
    /// `ssm_out`'s input.
    core: Vec<f32>,
    /// A `prism.hadamard`-folded file: the transformed copy of a normed
    /// input that folded and unfolded matrices both read.
    folded: Vec<f32>,
}

/// What every layer of a step reads: the tokens' spans and positions, the
/// RoPE table, and the LoRA adapters of the step (read once, as
/// `forward_layers` does).
struct StepCtx<'a> {
    n: usize,
    span_of: &'a [u32],
    pos: &'a [usize],
    rope: &'a [(f32, f32)],
    lora: &'a [ActiveLora],
}

impl Model {
    /// Every qwen35 layer for the tokens of `spans` (`n` in all): leaves
    /// the residual stream in `ws.x`, appends the attention layers' keys
    /// and values to the caches and advances their recurrent states.
    pub(super) fn forward_layers_hybrid(&self, spans: &mut [Span<'_>], ws: &mut Workspace) {
        let c = &self.config;
        let hc = c.hybrid.as_ref().expect("qwen35 has a hybrid config");
        let w = &self.weights;
        let lora = self.lora.active();
        let n = self.begin_step(spans, ws);
        let d = c.n_embd;
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
            hybrid: hw,
            ..
        } = ws;
        let x = &mut x[..n * d];
        let h = fit(h, n * d);
        let proj = fit(proj, n * d);
        // Partial rotary: a cos/sin table over the first n_rot dims only
        // (IMROPE with equal text positions is NEOX over n_rot).
        let nr = hc.n_rot;
        rope.resize(n * nr / 2, (0.0, 0.0));
        for (t, r) in rope.chunks_mut(nr / 2).enumerate() {
            c.rope.cache(pos[t] as i64, nr, r);
        }
        let ctx = StepCtx {
            n,
            span_of,
            pos,
            rope,
            lora: &lora,
        };
        let (mut kv_slot, mut rec_slot) = (0, 0);
        for l in &w.hybrid {
            for t in 0..n {
                let xs = &x[t * d..(t + 1) * d];
                ops::rms_norm(xs, &l.attn_norm, c.rms_eps, &mut h[t * d..(t + 1) * d]);
            }
            match &l.mixer {
                Mixer::Attention(a) => {
                    let bufs = [&mut *q, &mut *k, &mut *v, &mut *att];
                    self.gated_attention(a, spans, kv_slot, &ctx, h, bufs, hw, proj);
                    kv_slot += 1;
                }
                Mixer::DeltaNet(dn) => {
                    self.delta_net(dn, hc, spans, rec_slot, &ctx, h, hw, proj);
                    rec_slot += 1;
                }
            }
            ops::add_inplace(x, proj);

            // --- feed-forward (SwiGLU), after post_attention_norm ---
            for t in 0..n {
                let xs = &x[t * d..(t + 1) * d];
                ops::rms_norm(xs, &l.post_norm, c.rms_eps, &mut h[t * d..(t + 1) * d]);
            }
            let gate = fit(gate, n * c.n_ff);
            let up = fit(up, n * c.n_ff);
            let hin = SharedInput::new(h, &[&l.w_gate, &l.w_up], &mut hw.folded);
            self.matmul_lora(&lora, &l.w_gate, hin.for_matrix(&l.w_gate), n, gate);
            self.matmul_lora(&lora, &l.w_up, hin.for_matrix(&l.w_up), n, up);
            ops::swiglu(gate, up);
            fold_input(&l.w_down, gate);
            self.matmul_lora(&lora, &l.w_down, gate, n, proj);
            ops::add_inplace(x, proj);
        }
        for sp in spans.iter_mut() {
            let len = sp.cache.len() + sp.tokens.len();
            sp.cache.set_len(len);
        }
    }

    /// Gated full attention of KV layer `slot` (qwen35.cpp
    /// build_layer_attn): `h` `[n][d]` in, `out` `[n][d]` out; `bufs` are
    /// the q, k, v and attention buffers of the workspace.
    #[allow(clippy::too_many_arguments)]
    fn gated_attention(
        &self,
        a: &GatedAttention,
        spans: &mut [Span<'_>],
        slot: usize,
        ctx: &StepCtx<'_>,
        h: &[f32],
        bufs: [&mut Vec<f32>; 4],
        hw: &mut HybridWork,
        out: &mut [f32],
    ) {
        let c = &self.config;
        let mm =
            |m: &Matrix, x: &[f32], out: &mut [f32]| self.matmul_lora(ctx.lora, m, x, ctx.n, out);
        let n = ctx.n;
        let (hd, qd, nr) = (c.head_dim, c.q_dim(), c.n_rot());
        let [q, k, v, att] = bufs;
        let q = fit(q, n * qd);
        let k = fit(k, n * c.k_dim());
        let v = fit(v, n * c.v_dim());
        let att = fit(att, n * qd);
        let qg = fit(&mut hw.qg, n * 2 * qd);
        let gate = fit(&mut hw.gate, n * qd);
        let hin = SharedInput::new(h, &[&a.wq, &a.wk, &a.wv], &mut hw.folded);
        mm(&a.wq, hin.for_matrix(&a.wq), qg);
        mm(&a.wk, hin.for_matrix(&a.wk), k);
        mm(&a.wv, hin.for_matrix(&a.wv), v);
        // Per head: head_dim query values, then head_dim gate values.
        for ((qg, q), g) in qg
            .chunks(2 * hd)
            .zip(q.chunks_mut(hd))
            .zip(gate.chunks_mut(hd))
        {
            q.copy_from_slice(&qg[..hd]);
            g.copy_from_slice(&qg[hd..]);
        }
        for head in q.chunks_mut(hd) {
            ops::rms_norm_inplace(head, &a.q_norm, c.rms_eps);
        }
        for head in k.chunks_mut(hd) {
            ops::rms_norm_inplace(head, &a.k_norm, c.rms_eps);
        }
        for (buf, width) in [(&mut *q, qd), (&mut *k, c.k_dim())] {
            for (t, row) in buf.chunks_mut(width).enumerate() {
                let r = &ctx.rope[t * nr / 2..(t + 1) * nr / 2];
                for head in row.chunks_mut(hd) {
                    ops::rope_neox(&mut head[..nr], r);
                }
            }
        }
        attention::store_and_attend(c, spans, ctx.span_of, ctx.pos, slot, q, k, v, att);
        for (o, &g) in att.iter_mut().zip(gate.iter()) {
            *o *= delta_net::sigmoid(g);
        }
        fold_input(&a.wo, att);
        mm(&a.wo, att, out);
    }

    /// Gated DeltaNet of recurrent layer `slot` (qwen35.cpp
    /// build_layer_attn_linear): `h` `[n][d]` in, `out` `[n][d]` out; each
    /// span's tokens continue its own recurrent state.
    #[allow(clippy::too_many_arguments)]
    fn delta_net(
        &self,
        dn: &DeltaNet,
        hc: &HybridConfig,
        spans: &mut [Span<'_>],
        slot: usize,
        ctx: &StepCtx<'_>,
        h: &[f32],
        hw: &mut HybridWork,
        out: &mut [f32],
    ) {
        let c = &self.config;
        let mm =
            |m: &Matrix, x: &[f32], out: &mut [f32]| self.matmul_lora(ctx.lora, m, x, ctx.n, out);
        let n = ctx.n;
        let (ds, nk, nv) = (hc.d_state, hc.n_k_heads, hc.n_v_heads);
        let (kd, vd, cd) = (hc.key_dim(), hc.value_dim(), hc.conv_dim());
        let HybridWork {
            qkv,
            z,
            alpha,
            beta,
            g_t,
            beta_t,
            heads,
            core,
            folded,
            ..
        } = hw;
        let qkv = fit(qkv, n * cd);
        let z = fit(z, n * vd);
        let alpha = fit(alpha, n * nv);
        let beta = fit(beta, n * nv);
        // ssm_alpha / ssm_beta are never folded: they read `h` itself.
        let mats = [&dn.wqkv, &dn.wz, &dn.w_alpha, &dn.w_beta];
        let hin = SharedInput::new(h, &mats, folded);
        for (m, y) in mats
            .into_iter()
            .zip([&mut *qkv, &mut *z, &mut *alpha, &mut *beta])
        {
            mm(m, hin.for_matrix(m), y);
        }
        // Per token and v head: g = softplus(alpha + dt_bias) * a (a < 0,
        // so exp(g) in (0, 1) is the decay) and beta = sigmoid(beta),
        // stored head-major.
        let g_t = fit(g_t, nv * n);
        let beta_t = fit(beta_t, nv * n);
        for t in 0..n {
            for hv in 0..nv {
                let al = alpha[t * nv + hv] + dn.dt_bias[hv];
                g_t[hv * n + t] = delta_net::softplus(al) * dn.a[hv];
                beta_t[hv * n + t] = delta_net::sigmoid(beta[t * nv + hv]);
            }
        }
        let heads = fit(heads, nv * n * ds);
        let core = fit(core, n * vd);
        let hist = (hc.d_conv - 1) * cd;
        let mut t0 = 0;
        for sp in spans.iter_mut() {
            let ns = sp.tokens.len();
            let rec = sp.cache.rec.as_mut().expect("a hybrid model's cache");
            // Speculative verification: decode's form, token by token.
            let by_token = rec.token_by_token;
            let (conv, states) = rec.state.layer_mut(slot).split_at_mut(hist);
            // Causal conv over this sequence's tokens, then SiLU.
            let x = &mut qkv[t0 * cd..(t0 + ns) * cd];
            delta_net::conv_silu(x, conv, &dn.conv1d, hc.d_conv);
            // L2-normalised q and k heads.
            for row in x.chunks_mut(cd) {
                for head in row[..2 * kd].chunks_mut(ds) {
                    delta_net::l2_norm(head, c.rms_eps);
                }
            }
            let x = &*x;
            // The delta rule, one task per v head; v head hv reads q/k head
            // hv % H_k (ggml_gated_delta_net: the k heads are tiled).
            states
                .par_chunks_mut(ds * ds)
                .zip(heads.par_chunks_mut(n * ds))
                .enumerate()
                .for_each(|(hv, (s, o))| {
                    let hk = hv % nk;
                    let hin = HeadIn {
                        q: &x[hk * ds..],
                        k: &x[kd + hk * ds..],
                        v: &x[2 * kd + hv * ds..],
                        qk_stride: cd,
                        v_stride: cd,
                        g: &g_t[hv * n + t0..][..ns],
                        beta: &beta_t[hv * n + t0..][..ns],
                    };
                    let o = &mut o[t0 * ds..(t0 + ns) * ds];
                    if ns == 1 || by_token {
                        delta_net::recurrence(&hin, s, o);
                    } else {
                        delta_net::chunked(&hin, s, o);
                    }
                });
            t0 += ns;
        }
        // Back to token-major, then each head's RMSNorm gated by SiLU(z).
        for hv in 0..nv {
            for t in 0..n {
                let src = &heads[(hv * n + t) * ds..][..ds];
                core[t * vd + hv * ds..][..ds].copy_from_slice(src);
            }
        }
        for (o, zh) in core.chunks_mut(ds).zip(z.chunks(ds)) {
            ops::rms_norm_inplace(o, &dn.norm, c.rms_eps);
            for (o, &zv) in o.iter_mut().zip(zh) {
                *o *= delta_net::silu(zv);
            }
        }
        // A folded ssm_out also permutes the heads (gdn_v_grouped).
        fold_input(&dn.wout, core);
        mm(&dn.wout, core, out);
    }
}
