//! qwen35's layer tensors (llama.cpp `src/models/qwen35.cpp`
//! load_block_trunk; names from `llama-arch.cpp`). Every layer has
//! `attn_norm`, `post_attention_norm` (the norm before the FFN: qwen35 has
//! no `ffn_norm`) and the SwiGLU FFN; its mixer is either gated full
//! attention or a Gated DeltaNet.

use super::{floats, matrix, vector, Matrix};
use crate::config::ModelConfig;
use crate::error::Result;
use shohin_gguf::GgufFile;

/// A full-attention layer's tensors.
#[derive(Debug)]
pub struct GatedAttention {
    /// `[n_embd] -> [n_head][2 * head_dim]`: per head, `head_dim` query
    /// values then `head_dim` gate values.
    pub wq: Matrix,
    pub wk: Matrix,
    pub wv: Matrix,
    /// Per-head RMSNorm weights, `head_dim` long.
    pub q_norm: Vec<f32>,
    pub k_norm: Vec<f32>,
    /// `[n_head * head_dim] -> [n_embd]`, fed attn ⊙ sigmoid(gate).
    pub wo: Matrix,
}

/// A Gated DeltaNet layer's tensors (`d` = `ssm.state_size`, `H_k`/`H_v` =
/// group_count / time_step_rank).
#[derive(Debug)]
pub struct DeltaNet {
    /// `attn_qkv`: `[n_embd] -> [conv_dim]`, q (`H_k*d`), k (`H_k*d`), v (`H_v*d`).
    pub wqkv: Matrix,
    /// `attn_gate` (z): `[n_embd] -> [H_v*d]`, gates the output norm by SiLU.
    pub wz: Matrix,
    /// `ssm_conv1d`: per channel, `d_conv` taps (oldest input first).
    pub conv1d: Vec<f32>,
    /// `ssm_dt.bias`, per v head: added to alpha before softplus.
    pub dt_bias: Vec<f32>,
    /// `ssm_a`, per v head: `-exp(A_log)`, the (negative) decay rate.
    pub a: Vec<f32>,
    /// `ssm_alpha`: `[n_embd] -> [H_v]`, the decay input.
    pub w_alpha: Matrix,
    /// `ssm_beta`: `[n_embd] -> [H_v]`, the write strength (sigmoid).
    pub w_beta: Matrix,
    /// `ssm_norm`: RMSNorm weight of each head's output, `d` long.
    pub norm: Vec<f32>,
    /// `ssm_out`: `[H_v*d] -> [n_embd]`.
    pub wout: Matrix,
}

#[derive(Debug)]
pub enum Mixer {
    Attention(GatedAttention),
    DeltaNet(DeltaNet),
}

#[derive(Debug)]
pub struct HybridLayer {
    pub attn_norm: Vec<f32>,
    /// `post_attention_norm`: the FFN's input norm.
    pub post_norm: Vec<f32>,
    pub mixer: Mixer,
    pub w_gate: Matrix,
    pub w_up: Matrix,
    pub w_down: Matrix,
}

impl HybridLayer {
    pub(super) fn load(f: &GgufFile, c: &ModelConfig, i: usize) -> Result<Self> {
        let n = |s: &str| format!("blk.{i}.{s}");
        let d = c.n_embd;
        let mixer = match &c.hybrid {
            Some(h) if h.recurrent[i] => Mixer::DeltaNet(DeltaNet {
                wqkv: matrix(f, &n("attn_qkv.weight"), d, h.conv_dim())?,
                wz: matrix(f, &n("attn_gate.weight"), d, h.value_dim())?,
                conv1d: floats(
                    f,
                    &n("ssm_conv1d.weight"),
                    &[h.d_conv as u64, h.conv_dim() as u64],
                )?,
                dt_bias: vector(f, &n("ssm_dt.bias"), h.n_v_heads)?,
                a: vector(f, &n("ssm_a"), h.n_v_heads)?,
                w_alpha: matrix(f, &n("ssm_alpha.weight"), d, h.n_v_heads)?,
                w_beta: matrix(f, &n("ssm_beta.weight"), d, h.n_v_heads)?,
                norm: vector(f, &n("ssm_norm.weight"), h.d_state)?,
                wout: matrix(f, &n("ssm_out.weight"), h.value_dim(), d)?,
            }),
            _ => Mixer::Attention(GatedAttention {
                wq: matrix(f, &n("attn_q.weight"), d, 2 * c.q_dim())?,
                wk: matrix(f, &n("attn_k.weight"), d, c.k_dim())?,
                wv: matrix(f, &n("attn_v.weight"), d, c.v_dim())?,
                q_norm: vector(f, &n("attn_q_norm.weight"), c.head_dim)?,
                k_norm: vector(f, &n("attn_k_norm.weight"), c.head_dim)?,
                wo: matrix(f, &n("attn_output.weight"), c.q_dim(), d)?,
            }),
        };
        Ok(Self {
            attn_norm: vector(f, &n("attn_norm.weight"), d)?,
            post_norm: vector(f, &n("post_attention_norm.weight"), d)?,
            mixer,
            w_gate: matrix(f, &n("ffn_gate.weight"), d, c.n_ff)?,
            w_up: matrix(f, &n("ffn_up.weight"), d, c.n_ff)?,
            w_down: matrix(f, &n("ffn_down.weight"), c.n_ff, d)?,
        })
    }

    /// The layer's matrices, for capability checks.
    pub fn matrices(&self) -> Vec<&Matrix> {
        let mut v = match &self.mixer {
            Mixer::Attention(a) => vec![&a.wq, &a.wk, &a.wv, &a.wo],
            Mixer::DeltaNet(n) => vec![&n.wqkv, &n.wz, &n.w_alpha, &n.w_beta, &n.wout],
        };
        v.extend([&self.w_gate, &self.w_up, &self.w_down]);
        v
    }

    /// The same, to repack at load.
    pub(super) fn matrices_mut(&mut self) -> Vec<&mut Matrix> {
        let mut v = match &mut self.mixer {
            Mixer::Attention(a) => vec![&mut a.wq, &mut a.wk, &mut a.wv, &mut a.wo],
            Mixer::DeltaNet(n) => vec![
                &mut n.wqkv,
                &mut n.wz,
                &mut n.w_alpha,
                &mut n.w_beta,
                &mut n.wout,
            ],
        };
        v.extend([&mut self.w_gate, &mut self.w_up, &mut self.w_down]);
        v
    }
}
