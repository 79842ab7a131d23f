//! The Gated DeltaNet arithmetic of one sequence's tokens in one layer
//! (llama.cpp `src/models/qwen35.cpp` build_layer_attn_linear and
//! `delta-net-base.cpp`; ggml-cpu `ssm_conv` and `gated_delta_net`).
//!
//! Per v head, with a `d x d` state `S` (row `j` = value dim, column `i` =
//! key dim), a decay `g < 0`, a write strength `beta` in (0, 1) and
//! L2-normalised `q`, `k`, each token does
//!
//! ```text
//! S     = exp(g) S                    decay
//! delta = beta (v - S k)              what S predicts wrong for k
//! S     = S + delta k^T               the delta rule: rewrite k's row
//! o     = S q / sqrt(d)
//! ```
//!
//! [`recurrence`] runs exactly that, token by token (decode, and what
//! ggml-cpu runs for prompts too). [`chunked`] computes the same outputs
//! and final state for a prompt in chunks of [`CHUNK`] tokens, as the
//! delta-net-base.cpp build_delta_net_chunking graph does (the WY form):
//! within a chunk the writes `u_t` solve a unit lower-triangular system,
//! so the state is read and written once per chunk instead of per token.

use crate::ops;

/// Tokens per chunk of [`chunked`] (delta-net-base.cpp: CS = 64).
pub(crate) const CHUNK: usize = 64;

/// The causal depthwise convolution over `x` (`[n][channels]`, in place)
/// followed by SiLU (qwen35.cpp: ssm_conv then silu). `state` holds the
/// previous `d_conv - 1` inputs (`[d_conv - 1][channels]`, oldest first)
/// and is advanced past the `n` tokens; `w` is `[channels][d_conv]` with
/// the tap for the oldest input first (ggml `ssm_conv`: the window
/// `[state, x_t]` dotted with the channel's taps).
pub(crate) fn conv_silu(x: &mut [f32], state: &mut [f32], w: &[f32], d_conv: usize) {
    let ch = w.len() / d_conv;
    let hist = d_conv - 1;
    let mut out = vec![0.0f32; ch];
    for xt in x.chunks_mut(ch) {
        for (c, o) in out.iter_mut().enumerate() {
            let taps = &w[c * d_conv..(c + 1) * d_conv];
            let mut sum = 0.0f32;
            for (j, &tap) in taps[..hist].iter().enumerate() {
                sum += state[j * ch + c] * tap;
            }
            *o = sum + xt[c] * taps[hist];
        }
        // Slide the window: drop the oldest input, append this one.
        if hist > 0 {
            state.copy_within(ch.., 0);
            state[(hist - 1) * ch..].copy_from_slice(xt);
        }
        for (v, &o) in xt.iter_mut().zip(&out) {
            *v = silu(o);
        }
    }
}

/// SiLU as ggml computes it (vec.h `ggml_v_silu`).
pub(crate) fn silu(x: f32) -> f32 {
    x / (1.0 + ops::exp_ggml(0.0 - x))
}

/// `1 / (1 + e^-x)` (vec.h `ggml_vec_sigmoid_f32`, libm `expf`).
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `log(1 + e^x)`, linear above 20 (ggml-impl.h ggml_compute_softplus_f32).
pub(crate) fn softplus(x: f32) -> f32 {
    if x > 20.0 {
        x
    } else {
        (1.0 + x.exp()).ln()
    }
}

/// L2-normalise a head in place: `x / sqrt(sum x^2 + eps)`, computed as
/// llama.cpp's build_gdn_l2_norm does (models.h): `rms_norm(x, eps / n)`
/// then a scale by `1 / sqrt(n)`.
pub(crate) fn l2_norm(x: &mut [f32], eps: f32) {
    let n = x.len() as f32;
    let sum: f64 = x.iter().map(|&v| f64::from(v * v)).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps / n).sqrt();
    let post = 1.0 / n.sqrt();
    for v in x.iter_mut() {
        *v = (*v * scale) * post;
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight partial sums: vectorizes, and rounds much like ggml's
    // lane-wise `ggml_vec_dot_f32`.
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// `y += a x`.
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// One v head's inputs for `n` tokens: rows of `d` values with their own
/// strides (q and k rows are shared by the v heads of a group).
pub(crate) struct HeadIn<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    /// Row stride of q/k and of v (whole token rows of the projection).
    pub qk_stride: usize,
    pub v_stride: usize,
    /// Per token: the log-decay `g` and the write strength `beta`.
    pub g: &'a [f32],
    pub beta: &'a [f32],
}

impl HeadIn<'_> {
    fn q(&self, t: usize, d: usize) -> &[f32] {
        &self.q[t * self.qk_stride..][..d]
    }
    fn k(&self, t: usize, d: usize) -> &[f32] {
        &self.k[t * self.qk_stride..][..d]
    }
    fn v(&self, t: usize, d: usize) -> &[f32] {
        &self.v[t * self.v_stride..][..d]
    }
}

/// Token by token: advance `s` (`[d][d]`) over the head's tokens and write
/// each token's output to `out` (`[n][d]`), as ggml-cpu's gated_delta_net.
pub(crate) fn recurrence(h: &HeadIn<'_>, s: &mut [f32], out: &mut [f32]) {
    let d = out.len() / h.g.len().max(1); // head width
    let scale = 1.0 / (d as f32).sqrt();
    let mut delta = vec![0.0f32; d];
    for (t, o) in out.chunks_mut(d).enumerate() {
        let (q, k, v) = (h.q(t, d), h.k(t, d), h.v(t, d));
        let decay = h.g[t].exp();
        s.iter_mut().for_each(|x| *x *= decay);
        for (j, dl) in delta.iter_mut().enumerate() {
            *dl = (v[j] - dot(&s[j * d..(j + 1) * d], k)) * h.beta[t];
        }
        for (j, &dl) in delta.iter().enumerate() {
            axpy(&mut s[j * d..(j + 1) * d], dl, k);
        }
        for (j, o) in o.iter_mut().enumerate() {
            *o = dot(&s[j * d..(j + 1) * d], q) * scale;
        }
    }
}

/// The same outputs and final state in chunks of [`CHUNK`] tokens. In a
/// chunk starting from state `S0`, with `G_t = g_0 + ... + g_t`:
///
/// ```text
/// S_t = e^{G_t} S0 + sum_{s<=t} e^{G_t - G_s} u_s k_s^T
/// u_t = beta_t (v_t - e^{G_t} S0 k_t) - beta_t sum_{s<t} e^{G_t - G_s} (k_s.k_t) u_s
/// o_t = (e^{G_t} S0 q_t + sum_{s<=t} e^{G_t - G_s} (k_s.q_t) u_s) / sqrt(d)
/// ```
///
/// `u` is found by forward substitution (the `solve_tri` of the upstream
/// graph); every exponent is `<= 0`, so nothing overflows.
pub(crate) fn chunked(h: &HeadIn<'_>, s: &mut [f32], out: &mut [f32]) {
    let n = h.g.len();
    let d = out.len() / n.max(1);
    let scale = 1.0 / (d as f32).sqrt();
    let mut gc = vec![0.0f32; CHUNK]; // G_t
    let mut u = vec![0.0f32; CHUNK * d]; // [C][d]
    let mut sk = vec![0.0f32; d];
    for c0 in (0..n).step_by(CHUNK) {
        let cn = CHUNK.min(n - c0);
        let mut acc = 0.0f32;
        for (g, &gt) in gc.iter_mut().zip(&h.g[c0..c0 + cn]) {
            acc += gt;
            *g = acc;
        }
        // Right-hand side, then forward substitution, row by row.
        for t in 0..cn {
            let (k, v, b) = (h.k(c0 + t, d), h.v(c0 + t, d), h.beta[c0 + t]);
            let e = gc[t].exp();
            for (j, x) in sk.iter_mut().enumerate() {
                *x = dot(&s[j * d..(j + 1) * d], k);
            }
            let (done, row) = u.split_at_mut(t * d);
            let row = &mut row[..d];
            for ((r, &vj), &skj) in row.iter_mut().zip(v).zip(sk.iter()) {
                *r = b * (vj - e * skj);
            }
            for s_ in 0..t {
                let a = b * (gc[t] - gc[s_]).exp() * dot(h.k(c0 + s_, d), k);
                axpy(row, -a, &done[s_ * d..(s_ + 1) * d]);
            }
        }
        // Outputs: the decayed old state read by q, plus the chunk's writes.
        for t in 0..cn {
            let q = h.q(c0 + t, d);
            let e = gc[t].exp();
            let o = &mut out[(c0 + t) * d..][..d];
            for (j, o) in o.iter_mut().enumerate() {
                *o = e * dot(&s[j * d..(j + 1) * d], q);
            }
            for s_ in 0..=t {
                let a = (gc[t] - gc[s_]).exp() * dot(h.k(c0 + s_, d), q);
                axpy(o, a, &u[s_ * d..(s_ + 1) * d]);
            }
            o.iter_mut().for_each(|x| *x *= scale);
        }
        // State at the chunk's end.
        let last = gc[cn - 1];
        let e = last.exp();
        s.iter_mut().for_each(|x| *x *= e);
        for s_ in 0..cn {
            let w = (last - gc[s_]).exp();
            let k = h.k(c0 + s_, d);
            for (srow, &uj) in s.chunks_mut(d).zip(&u[s_ * d..(s_ + 1) * d]) {
                axpy(srow, w * uj, k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rand(seed: &mut u64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// The chunked form gives the recurrence's outputs and state, across
    /// several chunks and a partial last one, from a non-zero state.
    #[test]
    fn chunked_equals_recurrence() {
        let (d, n) = (32, 2 * CHUNK + 17);
        let mut seed = 7;
        let mut q = rand(&mut seed, n * d);
        let mut k = rand(&mut seed, n * d);
        for t in 0..n {
            l2_norm(&mut q[t * d..(t + 1) * d], 1e-6);
            l2_norm(&mut k[t * d..(t + 1) * d], 1e-6);
        }
        let v = rand(&mut seed, n * d);
        let g: Vec<f32> = rand(&mut seed, n)
            .iter()
            .map(|x| -0.5 * (x + 1.0))
            .collect();
        let beta: Vec<f32> = rand(&mut seed, n)
            .iter()
            .map(|&x| sigmoid(2.0 * x))
            .collect();
        let h = HeadIn {
            q: &q,
            k: &k,
            v: &v,
            qk_stride: d,
            v_stride: d,
            g: &g,
            beta: &beta,
        };
        let s0 = rand(&mut seed, d * d);
        let (mut s1, mut s2) = (s0.clone(), s0);
        let (mut o1, mut o2) = (vec![0.0; n * d], vec![0.0; n * d]);
        recurrence(&h, &mut s1, &mut o1);
        chunked(&h, &mut s2, &mut o2);
        let max = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max)
        };
        // Measured 4.5e-8 and 8.9e-8: the last bits.
        assert!(max(&o1, &o2) < 1e-6, "outputs differ by {}", max(&o1, &o2));
        assert!(max(&s1, &s2) < 1e-6, "states differ by {}", max(&s1, &s2));
    }

    #[test]
    fn conv_continues_across_calls() {
        let (ch, dc, n) = (5, 4, 9);
        let mut seed = 3;
        let w = rand(&mut seed, ch * dc);
        let x = rand(&mut seed, n * ch);
        let (mut whole, mut st) = (x.clone(), vec![0.0; (dc - 1) * ch]);
        conv_silu(&mut whole, &mut st, &w, dc);
        let (mut parts, mut st2) = (x, vec![0.0; (dc - 1) * ch]);
        let (a, b) = parts.split_at_mut(4 * ch);
        conv_silu(a, &mut st2, &w, dc);
        conv_silu(b, &mut st2, &w, dc);
        assert_eq!(whole, parts);
        assert_eq!(st, st2);
    }
}
