//! rope.rs against the formulas evaluated independently in f64
//! (llama.cpp's arithmetic written out again, not the f32 code path).

use super::*;

/// A qwen2-like head: 64 rotated dims, base 1e6.
const BASE: f32 = 1e6;
const DIMS: usize = 64;

fn params(o: &RopeOptions) -> RopeParams {
    RopeParams::resolve(&RopeHparams::plain(BASE), 32768, o).unwrap()
}

fn yarn(scale: f32, orig: usize) -> RopeParams {
    params(&RopeOptions {
        scaling: Some(RopeScaling::Yarn),
        scale: Some(scale),
        n_ctx_orig: Some(orig),
        ..RopeOptions::default()
    })
}

/// ggml_rope_yarn_corr_dim in f64.
fn corr_f64(n_dims: usize, orig: usize, beta: f64, base: f64) -> f64 {
    n_dims as f64 * (orig as f64 / (beta * 2.0 * std::f64::consts::PI)).ln() / (2.0 * base.ln())
}

#[test]
fn corr_dims_follow_the_formula_and_clamp() {
    // 64 * ln(512 / 64pi) / (2 ln 1e6) = 2.165 -> 2; beta 1: 10.19 -> 11.
    let p = yarn(4.0, 512);
    let lo = corr_f64(DIMS, 512, 32.0, 1e6).floor();
    let hi = corr_f64(DIMS, 512, 1.0, 1e6).ceil();
    assert_eq!((lo, hi), (2.0, 11.0));
    assert_eq!(p.corr_dims(DIMS), [2.0, 11.0]);
    // A tiny original context puts the low dim below 0: clamped to 0.
    assert_eq!(yarn(4.0, 8).corr_dims(DIMS)[0], 0.0);
    assert!(corr_f64(DIMS, 8, 32.0, 1e6) < 0.0);
    // A huge one puts the high dim past the last: clamped to n_dims - 1.
    let far = 1 << 50;
    assert!(corr_f64(DIMS, far, 1.0, 1e6) > 63.0);
    assert_eq!(yarn(4.0, far).corr_dims(DIMS)[1], 63.0);
}

#[test]
fn ramp_is_one_then_linear_then_zero() {
    for i in 0..=2 {
        assert_eq!(ramp(2.0, 11.0, i), 1.0, "pair {i}");
    }
    for i in 3..11 {
        let want = 1.0 - (i as f64 - 2.0) / 9.0;
        assert!(
            (f64::from(ramp(2.0, 11.0, i)) - want).abs() < 1e-6,
            "pair {i}"
        );
    }
    for i in 11..32 {
        assert_eq!(ramp(2.0, 11.0, i), 0.0, "pair {i}");
    }
    // An empty range: a step at `low` (width clamped to 0.001).
    assert_eq!(ramp(5.0, 5.0, 5), 1.0);
    assert_eq!(ramp(5.0, 5.0, 6), 0.0);
}

#[test]
fn yarn_magnitude_is_applied_once() {
    // llama.cpp cancels its own get_mscale with the inverse of ggml's
    // factor: cos at position 0 is 1 * (1 + 0.1 ln 4), not its square.
    let p = yarn(4.0, 512);
    assert!((p.attn_factor - 1.0).abs() < 1e-6, "{}", p.attn_factor);
    let mut c = [(0.0, 0.0); DIMS / 2];
    p.cache(0, DIMS, &mut c);
    let want = 1.0 + 0.1 * 4f64.ln();
    for &(co, s) in &c {
        assert!((f64::from(co) - want).abs() < 1e-6, "{co} vs {want}");
        assert_eq!(s, 0.0);
    }
    // Linear scaling: no magnitude factor at all.
    let lin = params(&RopeOptions {
        scale: Some(4.0),
        ..RopeOptions::default()
    });
    lin.cache(0, DIMS, &mut c);
    assert!(c.iter().all(|&(co, _)| co == 1.0));
}

/// The YaRN angle and magnitude of pair `i` at `pos`, all in f64.
fn angle_f64(pos: f64, i: usize, scale: f64, orig: usize) -> (f64, f64) {
    let extrap = pos * f64::from(BASE).powf(-2.0 * i as f64 / DIMS as f64);
    let interp = extrap / scale;
    let lo = corr_f64(DIMS, orig, 32.0, 1e6).floor().max(0.0);
    let hi = corr_f64(DIMS, orig, 1.0, 1e6).ceil().min(DIMS as f64 - 1.0);
    let y = (i as f64 - lo) / (hi - lo).max(0.001);
    let mix = 1.0 - y.clamp(0.0, 1.0);
    let theta = interp * (1.0 - mix) + extrap * mix;
    (theta, 1.0 + 0.1 * scale.ln())
}

#[test]
fn yarn_table_matches_f64_formulas() {
    let p = yarn(4.0, 512);
    let mut c = [(0.0, 0.0); DIMS / 2];
    for pos in [1i64, 7, 100, 1000, 5000] {
        p.cache(pos, DIMS, &mut c);
        for (i, &(co, s)) in c.iter().enumerate() {
            let (theta, m) = angle_f64(pos as f64, i, 4.0, 512);
            // theta is a product of i + 1 f32 roundings (repeated
            // multiplication), so its relative error is at most about
            // (i + 2) * 2^-24; cos/sin add ~1 ulp of the result.
            let extrap = pos as f64 * f64::from(BASE).powf(-2.0 * i as f64 / DIMS as f64);
            let tol = m * (extrap * (i + 3) as f64 * f64::from(f32::EPSILON) + 1e-6);
            let (dc, ds) = (
                (f64::from(co) - m * theta.cos()).abs(),
                (f64::from(s) - m * theta.sin()).abs(),
            );
            assert!(
                dc < tol && ds < tol,
                "pos {pos} pair {i}: {dc} {ds} > {tol}"
            );
        }
    }
    // The blend matters: the extrapolated pairs (i <= 2) and the
    // interpolated ones (i >= 11) differ from plain linear scaling only at
    // the former, far beyond the tolerance above.
    let lin = params(&RopeOptions {
        scale: Some(4.0),
        ..RopeOptions::default()
    });
    let mut l = [(0.0, 0.0); DIMS / 2];
    lin.cache(1000, DIMS, &mut l);
    p.cache(1000, DIMS, &mut c);
    assert!((c[0].1 - l[0].1 * 1.1386).abs() > 0.1);
}

#[test]
fn none_equals_linear_at_scale_one_and_the_unscaled_table() {
    let none = params(&RopeOptions {
        scaling: Some(RopeScaling::None),
        scale: Some(8.0), // ignored by `none`
        ..RopeOptions::default()
    });
    let lin1 = params(&RopeOptions {
        scaling: Some(RopeScaling::Linear),
        ..RopeOptions::default()
    });
    assert_eq!(none.freq_scale, 1.0);
    let (mut a, mut b) = ([(0.0, 0.0); DIMS / 2], [(0.0, 0.0); DIMS / 2]);
    for pos in [0i64, 1, 513, 32767] {
        none.cache(pos, DIMS, &mut a);
        lin1.cache(pos, DIMS, &mut b);
        assert_eq!(a, b, "pos {pos}");
        // The unscaled ggml table: theta by repeated f32 multiplication.
        let ts = BASE.powf(-2.0 / DIMS as f32);
        let mut theta = pos as f32;
        for (i, &got) in a.iter().enumerate() {
            assert_eq!(got, (theta.cos(), theta.sin()), "pos {pos} pair {i}");
            theta *= ts;
        }
    }
}

#[test]
fn rotation_by_a_delta_composes_without_magnitude() {
    let p = yarn(4.0, 512);
    let m = 0.1f32.mul_add(4f32.ln(), 1.0) * p.attn_factor;
    let (mut at, mut d, mut sum) = ([(0.0, 0.0); DIMS / 2], [(0.0, 0.0); 32], [(0.0, 0.0); 32]);
    p.cache(300, DIMS, &mut at);
    p.rotation(-100, DIMS, &mut d);
    p.cache(200, DIMS, &mut sum);
    for i in 0..DIMS / 2 {
        let (c1, s1) = (f64::from(at[i].0 / m), f64::from(at[i].1 / m));
        let (c2, s2) = (f64::from(d[i].0), f64::from(d[i].1));
        assert!((c2 * c2 + s2 * s2 - 1.0).abs() < 1e-6, "pair {i} not unit");
        let (c, s) = (c1 * c2 - s1 * s2, s1 * c2 + c1 * s2);
        let (wc, ws) = (f64::from(sum[i].0 / m), f64::from(sum[i].1 / m));
        assert!((c - wc).abs() < 1e-3 && (s - ws).abs() < 1e-3, "pair {i}");
    }
    // Rotating by -d after +d is the identity (to rounding).
    let mut back = [(0.0, 0.0); 32];
    p.rotation(100, DIMS, &mut d);
    p.rotation(-100, DIMS, &mut back);
    for i in 0..DIMS / 2 {
        assert_eq!(d[i].0, back[i].0);
        assert_eq!(d[i].1, -back[i].1);
    }
}

#[test]
fn precedence_follows_llama_context() {
    let h = RopeHparams {
        freq_base: BASE,
        scaling: RopeScaling::Yarn,
        freq_scale: 0.25,
        attn_factor: 2.0,
        n_ctx_orig: Some(4096),
        finetuned: true,
    };
    let p = RopeParams::resolve(&h, 32768, &RopeOptions::default()).unwrap();
    assert_eq!(
        (p.scaling, p.freq_scale, p.n_ctx_orig),
        (RopeScaling::Yarn, 0.25, 4096)
    );
    assert_eq!(p.ext_factor, 1.0);
    // get_mscale / ggml's factor ~ 1, times the file's attn_factor.
    assert!((p.attn_factor - 2.0).abs() < 1e-6);
    assert_eq!(p.max_ctx(32768), 32768);
    assert_eq!(p.max_ctx(1024), 16384);
    // A given yarn attn factor is replaced while ext_factor != 0 ...
    let o = RopeOptions {
        attn_factor: Some(3.0),
        ..RopeOptions::default()
    };
    let q = RopeParams::resolve(&h, 32768, &o).unwrap();
    assert_eq!(q.attn_factor, p.attn_factor);
    // ... and kept with ext_factor 0.
    let o = RopeOptions {
        attn_factor: Some(3.0),
        ext_factor: Some(0.0),
        ..RopeOptions::default()
    };
    assert_eq!(RopeParams::resolve(&h, 32768, &o).unwrap().attn_factor, 6.0);
    // `none` ignores the file's factor; the context limit stays trained.
    let o = RopeOptions {
        scaling: Some(RopeScaling::None),
        ..RopeOptions::default()
    };
    let n = RopeParams::resolve(&h, 1024, &o).unwrap();
    assert_eq!((n.freq_scale, n.ext_factor), (1.0, 0.0));
    assert_eq!(n.max_ctx(1024), 1024);
    // The original context: flag, else file, else training context.
    let o = RopeOptions {
        n_ctx_orig: Some(512),
        ..RopeOptions::default()
    };
    assert_eq!(RopeParams::resolve(&h, 32768, &o).unwrap().n_ctx_orig, 512);
    let plain = RopeParams::resolve(&RopeHparams::plain(BASE), 777, &o).unwrap();
    assert_eq!(plain.scaling, RopeScaling::Linear);
    assert!(!plain.is_scaled());
    let o = RopeOptions::default();
    assert_eq!(
        RopeParams::resolve(&RopeHparams::plain(BASE), 777, &o)
            .unwrap()
            .n_ctx_orig,
        777
    );
}

#[test]
fn bad_values_name_the_flag() {
    let h = RopeHparams::plain(BASE);
    let cases: [(RopeOptions, &str); 7] = [
        (
            RopeOptions {
                scale: Some(0.0),
                ..Default::default()
            },
            "--rope-scale",
        ),
        (
            RopeOptions {
                scale: Some(f32::NAN),
                ..Default::default()
            },
            "--rope-scale",
        ),
        (
            RopeOptions {
                freq_scale: Some(-1.0),
                ..Default::default()
            },
            "--rope-freq-scale",
        ),
        (
            RopeOptions {
                freq_base: Some(0.0),
                ..Default::default()
            },
            "--rope-freq-base",
        ),
        (
            RopeOptions {
                ext_factor: Some(-0.5),
                ..Default::default()
            },
            "--yarn-ext-factor",
        ),
        (
            RopeOptions {
                beta_fast: Some(0.0),
                ..Default::default()
            },
            "--yarn-beta-fast",
        ),
        (
            RopeOptions {
                scale: Some(2.0),
                freq_scale: Some(0.5),
                ..Default::default()
            },
            "not both",
        ),
    ];
    for (o, needle) in cases {
        let e = RopeParams::resolve(&h, 4096, &o).unwrap_err().to_string();
        assert!(e.contains(needle), "{e} lacks {needle}");
    }
    assert!("cubic"
        .parse::<RopeScaling>()
        .unwrap_err()
        .contains("cubic"));
}
