//! Element-wise and normalisation ops of the forward pass, written to follow
//! ggml-cpu's arithmetic (ops.cpp) so results track llama.cpp closely.

/// RMSNorm then scale: `out = x / sqrt(mean(x^2) + eps) * w`.
/// As ggml_compute_forward_rms_norm_f32: squares summed in f64, scale in f32,
/// then the weight multiply as a separate f32 op (ggml_mul).
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let sum: f64 = x.iter().map(|&v| f64::from(v * v)).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = (v * scale) * g;
    }
}

/// In-place RMSNorm (per-head q/k norm of qwen3).
pub fn rms_norm_inplace(x: &mut [f32], w: &[f32], eps: f32) {
    let sum: f64 = x.iter().map(|&v| f64::from(v * v)).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for (v, &g) in x.iter_mut().zip(w) {
        *v = (*v * scale) * g;
    }
}

/// cos/sin table for one position, NEOX RoPE over `head_dim` dims.
/// ggml's rope cache: theta_i = pos * base^(-2i/d), computed by repeated
/// multiplication with `theta_scale` in f32 (ops.cpp rope_yarn / cache init).
pub fn rope_cache(pos: usize, head_dim: usize, base: f32, cache: &mut [(f32, f32)]) {
    let theta_scale = base.powf(-2.0 / head_dim as f32);
    let mut theta = pos as f32;
    for c in cache.iter_mut().take(head_dim / 2) {
        *c = (theta.cos(), theta.sin());
        theta *= theta_scale;
    }
}

/// NEOX (rotate-half) RoPE on one head: dims i and i + d/2 form a pair.
pub fn rope_neox(head: &mut [f32], cache: &[(f32, f32)]) {
    let half = head.len() / 2;
    let (a, b) = head.split_at_mut(half);
    for ((x0, x1), &(c, s)) in a.iter_mut().zip(b.iter_mut()).zip(cache) {
        let (v0, v1) = (*x0, *x1);
        *x0 = v0 * c - v1 * s;
        *x1 = v0 * s + v1 * c;
    }
}

/// SwiGLU: `g = silu(g) * u` (ggml_swiglu; silu(x) = x / (1 + e^-x)).
pub fn swiglu(g: &mut [f32], u: &[f32]) {
    for (g, &u) in g.iter_mut().zip(u) {
        let x = *g;
        *g = x / (1.0 + (-x).exp()) * u;
    }
}

pub fn add_inplace(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_of_constant_is_weight() {
        let x = [3.0f32; 8];
        let w = [0.5f32; 8];
        let mut o = [0.0; 8];
        rms_norm(&x, &w, 0.0, &mut o);
        for v in o {
            assert!((v - 0.5).abs() < 1e-6);
        }
    }

    #[test]
    fn rope_rotates_pairs_by_position_angle() {
        // head_dim 4: pairs (0,2) at theta = pos, (1,3) at pos * base^-0.5
        let mut c = [(0.0, 0.0); 2];
        rope_cache(3, 4, 100.0, &mut c);
        let mut h = [1.0f32, 1.0, 0.0, 0.0];
        rope_neox(&mut h, &c);
        let t1 = 3.0f64 * 100f64.powf(-0.5);
        assert!((f64::from(h[0]) - 3f64.cos()).abs() < 1e-5);
        assert!((f64::from(h[2]) - 3f64.sin()).abs() < 1e-5);
        assert!((f64::from(h[1]) - t1.cos()).abs() < 1e-5);
        assert!((f64::from(h[3]) - t1.sin()).abs() < 1e-5);
    }

    #[test]
    fn swiglu_matches_definition() {
        let mut g = [1.0f32, -2.0];
        swiglu(&mut g, &[2.0, 3.0]);
        let s = |x: f64| x / (1.0 + (-x).exp());
        assert!((f64::from(g[0]) - 2.0 * s(1.0)).abs() < 1e-6);
        assert!((f64::from(g[1]) - 3.0 * s(-2.0)).abs() < 1e-6);
    }
}
