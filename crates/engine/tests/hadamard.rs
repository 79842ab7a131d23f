//! The `prism.hadamard` fold (`shohin_engine::hadamard`): the transform
//! against the explicit matrix in f64, the fold's algebra for every weight
//! kind (ssm_out with the DeltaNet permutation included) and the embedding
//! un-fold. Hostile metadata: `hadamard_refusals.rs`.

#[path = "hadamard/meta.rs"]
mod meta;

use meta::*;
use shohin_engine::hadamard::{
    fwht_blocks, fwht_blocks_scalar, is_foldable_name, GdnHeads, HadamardFold,
};
use shohin_gguf::Value;

/// The fast transform is the product with the explicit matrix (f64), for
/// every power of two from 1 to 4096, two blocks per call, and the vector
/// path gives the scalar path's bits.
#[test]
fn transform_is_the_explicit_matrix_product() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for lb in 0..=12 {
        let block = 1usize << lb;
        let x: Vec<f32> = (0..2 * block).map(|_| rng.f() as f32 * 3.0).collect();
        let mut y = x.clone();
        fwht_blocks(&mut y, block);
        let mut ys = x.clone();
        fwht_blocks_scalar(&mut ys, block);
        assert!(
            y.iter().zip(&ys).all(|(a, b)| a.to_bits() == b.to_bits()),
            "block {block}: vector and scalar paths differ"
        );
        for (xb, yb) in x.chunks(block).zip(y.chunks(block)) {
            let norm = xb.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
            // rows spread over the block (all of them for small blocks)
            let step = (block / 64).max(1);
            for r in (0..block).step_by(step) {
                let want: f64 = (0..block).map(|c| h(block, r, c) * f64::from(xb[c])).sum();
                let err = (f64::from(yb[r]) - want).abs();
                assert!(
                    err <= 2e-7 * (lb as f64 + 1.0) * norm,
                    "block {block} row {r}: {} vs {want} (err {err:e}, norm {norm})",
                    yb[r]
                );
            }
        }
        // an involution
        fwht_blocks(&mut y, block);
        for (a, b) in y.iter().zip(&x) {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "block {block}: H·H ≠ I"
            );
        }
    }
}

// --------------------------------------------------------------- algebra

/// The DeltaNet permutation as a matrix: (P·x)[i + hd(r + rep·k)] =
/// x[i + hd(k + n_k·r)] (the doc's formula, built independently of the
/// module's head table).
fn perm_matrix(k_width: usize, gdn: GdnHeads) -> Vec<f64> {
    let hd = k_width / gdn.n_v;
    let rep = gdn.n_v / gdn.n_k;
    let mut p = vec![0.0; k_width * k_width];
    for k in 0..gdn.n_k {
        for r in 0..rep {
            for i in 0..hd {
                let dst = i + hd * (r + rep * k);
                let src = i + hd * (k + gdn.n_k * r);
                p[dst * k_width + src] = 1.0;
            }
        }
    }
    p
}

/// `a (m×n) · b (n×p)`, row-major, f64.
fn matmul(a: &[f64], b: &[f64], m: usize, n: usize, p: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * p];
    for i in 0..m {
        for l in 0..n {
            let v = a[i * n + l];
            if v != 0.0 {
                for j in 0..p {
                    c[i * p + j] += v * b[l * p + j];
                }
            }
        }
    }
    c
}

/// Block-diagonal H of width k.
fn h_matrix(k: usize, block: usize) -> Vec<f64> {
    let mut m = vec![0.0; k * k];
    for b0 in (0..k).step_by(block) {
        for r in 0..block {
            for c in 0..block {
                m[(b0 + r) * k + b0 + c] = h(block, r, c);
            }
        }
    }
    m
}

fn diag(s: &[f64]) -> Vec<f64> {
    let k = s.len();
    let mut m = vec![0.0; k * k];
    for (i, &v) in s.iter().enumerate() {
        m[i * k + i] = v;
    }
    m
}

fn transpose(a: &[f64], m: usize, n: usize) -> Vec<f64> {
    let mut t = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            t[j * m + i] = a[i * n + j];
        }
    }
    t
}

/// Folds a random W of every kind in f64 as `W' = W·P⁻¹·S·H` (P only for
/// the grouped ssm_out), runs x through `prepare_input` and checks
/// `W'·x' = W·x`; with explicit and identity signs, with and without
/// `gdn_v_grouped`.
#[test]
fn folded_matmul_equals_the_original_for_every_kind() {
    let names = all_kind_names();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    for (explicit, grouped) in [(true, true), (true, false), (false, true), (false, false)] {
        let mut meta = metadata(&name_refs, 11);
        if !explicit {
            set(
                &mut meta,
                "prism.hadamard.sign_mode",
                Value::String("identity".into()),
            );
            unset(&mut meta, "prism.hadamard.sign_widths");
            unset(&mut meta, "prism.hadamard.sign_values");
        }
        set(
            &mut meta,
            "prism.hadamard.gdn_v_grouped",
            Value::Bool(grouped),
        );
        let mut tensors: Vec<(&str, u64)> = name_refs.iter().map(|n| (*n, width_of(n))).collect();
        tensors.push(("token_embd.weight", 64));
        tensors.push(("blk.3.attn_norm.weight", 64));
        let f = gguf(meta, &tensors);
        let fold = HadamardFold::from_gguf(&f, Some(GDN)).unwrap().unwrap();
        assert_eq!(fold.block_size(), 16);
        assert!(fold.folds_embedding());

        let mut rng = Rng(42);
        for name in &names {
            let k = width_of(name) as usize;
            let rows_w = 5;
            let n_tok = 3;
            assert!(fold.is_folded(name));
            let s: Vec<f64> = match fold.signs(k) {
                Some(s) => s.iter().map(|&v| f64::from(v)).collect(),
                None => vec![1.0; k],
            };
            assert_eq!(s.len(), k);
            assert_eq!(explicit, fold.signs(k).is_some());
            let p = if grouped && name.contains("ssm_out") {
                perm_matrix(k, GDN)
            } else {
                diag(&vec![1.0; k])
            };
            let w: Vec<f64> = (0..rows_w * k).map(|_| rng.f()).collect();
            // W' = W · Pᵀ · S · H  (P⁻¹ = Pᵀ)
            let pinv = transpose(&p, k, k);
            let w1 = matmul(&w, &pinv, rows_w, k, k);
            let w2 = matmul(&w1, &diag(&s), rows_w, k, k);
            let wf = matmul(&w2, &h_matrix(k, 16), rows_w, k, k);

            let x: Vec<f32> = (0..n_tok * k).map(|_| rng.f() as f32).collect();
            let mut xp = x.clone();
            assert!(fold.prepare_input(name, &mut xp).unwrap());
            for t in 0..n_tok {
                for o in 0..rows_w {
                    let want: f64 = (0..k).map(|c| w[o * k + c] * f64::from(x[t * k + c])).sum();
                    let got: f64 = (0..k)
                        .map(|c| wf[o * k + c] * f64::from(xp[t * k + c]))
                        .sum();
                    assert!(
                        (got - want).abs() < 1e-5 * (1.0 + want.abs()) * (k as f64).sqrt(),
                        "{name} explicit={explicit} grouped={grouped} token {t} row {o}: \
                         {got} vs {want}"
                    );
                }
            }
            // the plan handle does the same, bit for bit
            let mut xq = x.clone();
            fold.plan(name).unwrap().apply(&mut xq).unwrap();
            assert_eq!(xp, xq);
        }

        // the embedding: stored e' = H·S·e, looked up and un-folded to e
        let k = 64;
        let s: Vec<f64> = match fold.signs(k) {
            Some(s) => s.iter().map(|&v| f64::from(v)).collect(),
            None => vec![1.0; k],
        };
        let e: Vec<f64> = (0..2 * k).map(|_| rng.f()).collect();
        let hm = h_matrix(k, 16);
        let mut z: Vec<f32> = Vec::new();
        for row in e.chunks(k) {
            let se: Vec<f64> = row.iter().zip(&s).map(|(a, b)| a * b).collect();
            z.extend(matmul(&hm, &se, k, k, 1).iter().map(|&v| v as f32));
        }
        assert!(fold.unfold_embedding(&mut z).unwrap());
        for (a, b) in z.iter().zip(&e) {
            assert!((f64::from(*a) - b).abs() < 1e-6, "embedding: {a} vs {b}");
        }
    }
}

/// The permutation the module applies is the doc's, seen directly: with
/// identity signs and block 1 (H = [1]) prepare_input is P alone.
#[test]
fn ssm_out_permutation_is_tiled_to_grouped() {
    let mut meta = metadata(&["blk.0.ssm_out.weight"], 1);
    set(&mut meta, "prism.hadamard.block_size", Value::U32(1));
    set(
        &mut meta,
        "prism.hadamard.sign_mode",
        Value::String("identity".into()),
    );
    unset(&mut meta, "prism.hadamard.sign_widths");
    unset(&mut meta, "prism.hadamard.sign_values");
    unset(&mut meta, "prism.hadamard.inverse_weight_names");
    let f = gguf(meta, &[("blk.0.ssm_out.weight", 48)]);
    let fold = HadamardFold::from_gguf(&f, Some(GDN)).unwrap().unwrap();
    // value = tiled head index * 100 + i
    let (hd, n_k, rep) = (8, 2, 3);
    let mut x: Vec<f32> = (0..48).map(|j| ((j / hd) * 100 + j % hd) as f32).collect();
    fold.prepare_input("blk.0.ssm_out.weight", &mut x).unwrap();
    for k in 0..n_k {
        for r in 0..rep {
            for i in 0..hd {
                let tiled_head = k + n_k * r;
                assert_eq!(x[i + hd * (r + rep * k)], (tiled_head * 100 + i) as f32);
            }
        }
    }
}

/// Many rows at once (the parallel path) equal one row at a time.
#[test]
fn batched_rows_equal_single_rows() {
    let mut meta = metadata(&["blk.0.ffn_down.weight", "blk.0.ssm_out.weight"], 5);
    set(&mut meta, "prism.hadamard.block_size", Value::U32(16));
    let f = gguf(
        meta,
        &[
            ("blk.0.ffn_down.weight", 96),
            ("blk.0.ssm_out.weight", 48),
            ("token_embd.weight", 64),
        ],
    );
    let fold = HadamardFold::from_gguf(&f, Some(GDN)).unwrap().unwrap();
    let mut rng = Rng(3);
    for (name, k) in [("blk.0.ffn_down.weight", 96), ("blk.0.ssm_out.weight", 48)] {
        let rows = 2000; // > 2·32768 values: the parallel path
        let x: Vec<f32> = (0..rows * k).map(|_| rng.f() as f32).collect();
        let mut all = x.clone();
        fold.prepare_input(name, &mut all).unwrap();
        for (r, row) in x.chunks(k).enumerate() {
            let mut one = row.to_vec();
            fold.prepare_input(name, &mut one).unwrap();
            assert_eq!(one, &all[r * k..(r + 1) * k], "{name} row {r}");
        }
    }
}

// -------------------------------------------------------------- the API

#[test]
fn no_version_key_means_no_fold() {
    let mut meta = metadata(&["output.weight"], 1);
    unset(&mut meta, "prism.hadamard.version");
    assert!(parse(meta.clone()).unwrap().is_none());
    let f = gguf(meta, &[("output.weight", 64)]);
    assert!(HadamardFold::from_gguf(&f, None).unwrap().is_none());
}

#[test]
fn prepare_input_on_other_names_and_bad_lengths() {
    let f = gguf(
        metadata(&["blk.0.ffn_up.weight"], 1),
        &[("blk.0.ffn_up.weight", 64), ("token_embd.weight", 64)],
    );
    let fold = HadamardFold::from_gguf(&f, None).unwrap().unwrap();
    let mut x = vec![1.0f32; 64];
    // not folded: untouched
    assert!(!fold.prepare_input("blk.0.ffn_gate.weight", &mut x).unwrap());
    assert!(x.iter().all(|&v| v == 1.0));
    // not whole rows
    let mut short = vec![1.0f32; 63];
    let e = fold
        .prepare_input("blk.0.ffn_up.weight", &mut short)
        .unwrap_err()
        .to_string();
    assert!(e.contains("whole rows"), "{e}");
    // parsed but never bound
    let unbound = parse(metadata(&["blk.0.ffn_up.weight"], 1))
        .unwrap()
        .unwrap();
    let e = unbound
        .prepare_input("blk.0.ffn_up.weight", &mut x)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not bound"), "{e}");
    let e = unbound.unfold_embedding(&mut x).unwrap_err().to_string();
    assert!(e.contains("not bound"), "{e}");
}

#[test]
fn foldable_names() {
    for n in all_kind_names() {
        assert!(is_foldable_name(&n), "{n}");
    }
    for n in [
        "token_embd.weight",
        "output.bias",
        "blk.0.attn_norm.weight",
        "blk.0.ssm_conv1d.weight",
        "blk..ffn_up.weight",
        "blk.x.ffn_up.weight",
        "blk.0.ffn_up.bias",
        "blk.0.ffn_up.weight.x",
        "xblk.0.ffn_up.weight",
        "blk.0.ffn_upp.weight",
    ] {
        assert!(!is_foldable_name(n), "{n}");
    }
}

// ------------------------------------------------------ hostile metadata

// ------------------------------------------------------------------ speed

/// Nanoseconds per call: the best of 10 batches (the machine is shared).
fn time_ns(iters: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..iters / 10 + 1 {
        f();
    }
    let per = (iters / 10).max(1);
    (0..10)
        .map(|_| {
            let t = std::time::Instant::now();
            for _ in 0..per {
                f();
            }
            t.elapsed().as_nanos() as f64 / per as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// Timings, not a check: `cargo test --release -p shohin-engine --test
/// hadamard -- --ignored --nocapture speed`.
#[test]
#[ignore]
fn speed() {
    let mut rng = Rng(77);
    let mut x: Vec<f32> = (0..5120).map(|_| rng.f() as f32).collect();
    let n = 20_000;
    let fast = time_ns(n, || fwht_blocks(std::hint::black_box(&mut x), 1024));
    let scalar = time_ns(n / 4, || {
        fwht_blocks_scalar(std::hint::black_box(&mut x), 1024)
    });
    eprintln!("H only, 5120-wide row, B=1024: {fast:.0} ns (scalar {scalar:.0} ns)");

    // the real model's shapes: explicit signs for 5120 / 6144 / 17408
    let widths = [5120i32, 6144, 17408];
    let values: Vec<i32> = (0..widths.iter().sum::<i32>())
        .map(|_| rng.sign())
        .collect();
    let mut meta = metadata(
        &[
            "blk.0.attn_qkv.weight",
            "blk.0.ffn_down.weight",
            "blk.0.ssm_out.weight",
        ],
        1,
    );
    set(&mut meta, "prism.hadamard.block_size", Value::U32(1024));
    set(&mut meta, "prism.hadamard.sign_widths", i32s(&widths));
    set(&mut meta, "prism.hadamard.sign_values", i32s(&values));
    let f = gguf(
        meta,
        &[
            ("blk.0.attn_qkv.weight", 5120),
            ("blk.0.ffn_down.weight", 17408),
            ("blk.0.ssm_out.weight", 6144),
            ("token_embd.weight", 5120),
        ],
    );
    let fold = HadamardFold::from_gguf(&f, Some(GdnHeads { n_v: 48, n_k: 16 }))
        .unwrap()
        .unwrap();
    for (name, k) in [
        ("blk.0.attn_qkv.weight", 5120),
        ("blk.0.ffn_down.weight", 17408),
        ("blk.0.ssm_out.weight", 6144),
    ] {
        let plan = fold.plan(name).unwrap().clone();
        let mut row: Vec<f32> = (0..k).map(|_| rng.f() as f32).collect();
        let t = time_ns(n / 2, || plan.apply_row(std::hint::black_box(&mut row)));
        eprintln!("prepare_input {name} (K={k}): {t:.0} ns per row");
    }
    let mut z: Vec<f32> = (0..5120).map(|_| rng.f() as f32).collect();
    let t = time_ns(n, || {
        fold.unfold_embedding(std::hint::black_box(&mut z)).unwrap();
    });
    eprintln!("unfold_embedding (5120): {t:.0} ns per row");
    // a 512-token prefill step through ffn_down
    let mut xs: Vec<f32> = (0..512 * 17408).map(|_| rng.f() as f32).collect();
    let t = time_ns(20, || {
        fold.prepare_input("blk.0.ffn_down.weight", std::hint::black_box(&mut xs))
            .unwrap();
    });
    eprintln!(
        "prepare_input ffn_down, 512 rows: {:.2} ms ({:.0} ns per row, {} rayon threads)",
        t / 1e6,
        t / 512.0,
        rayon::current_num_threads()
    );
}
