//! The `prism.hadamard` fold (`shohin_engine::hadamard`): the transform
//! against the explicit matrix in f64, the fold's algebra for every weight
//! kind (ssm_out with the DeltaNet permutation included) and the embedding
//! un-fold, and one specific refusal per kind of hostile metadata.

use shohin_engine::hadamard::{
    fwht_blocks, fwht_blocks_scalar, is_foldable_name, GdnHeads, HadamardFold, FOLDABLE_KINDS,
};
use shohin_gguf::{GgmlType, GgufFile, GgufWriter, Value, ValueType};

// ---------------------------------------------------------------- helpers

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [-1, 1).
    fn f(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
    fn sign(&mut self) -> i32 {
        if self.next() & 1 == 0 {
            1
        } else {
            -1
        }
    }
}

/// Explicit normalized Sylvester Walsh–Hadamard entry.
fn h(block: usize, r: usize, c: usize) -> f64 {
    let v = 1.0 / (block as f64).sqrt();
    if (r & c).count_ones().is_multiple_of(2) {
        v
    } else {
        -v
    }
}

fn strs(v: &[&str]) -> Value {
    Value::Array(
        ValueType::String,
        v.iter().map(|s| Value::String(s.to_string())).collect(),
    )
}

fn i32s(v: &[i32]) -> Value {
    Value::Array(ValueType::I32, v.iter().map(|&x| Value::I32(x)).collect())
}

/// A valid explicit-sign block: block 16, sign widths 48, 64, 96 with
/// random signs, the given folded names, token_embd inverse-folded,
/// gdn_v_grouped.
fn metadata(names: &[&str], seed: u64) -> Vec<(String, Value)> {
    let mut rng = Rng(seed);
    let widths = [48, 64, 96];
    let values: Vec<i32> = (0..widths.iter().sum::<i32>())
        .map(|_| rng.sign())
        .collect();
    vec![
        (
            "general.architecture".into(),
            Value::String("qwen35".into()),
        ),
        ("prism.hadamard.version".into(), Value::U32(1)),
        ("prism.hadamard.block_size".into(), Value::U32(16)),
        (
            "prism.hadamard.transform".into(),
            Value::String("normalized-sylvester-walsh-hadamard".into()),
        ),
        (
            "prism.hadamard.axis".into(),
            Value::String("input-last-dimension".into()),
        ),
        (
            "prism.hadamard.sign_mode".into(),
            Value::String("explicit".into()),
        ),
        ("prism.hadamard.sign_widths".into(), i32s(&widths)),
        ("prism.hadamard.sign_values".into(), i32s(&values)),
        ("prism.hadamard.weight_names".into(), strs(names)),
        (
            "prism.hadamard.inverse_weight_names".into(),
            strs(&["token_embd.weight"]),
        ),
        ("prism.hadamard.gdn_v_grouped".into(), Value::Bool(true)),
    ]
}

/// n_v 6, n_k 2: ssm_out's input width 48 is 6 heads of 8, rep 3.
const GDN: GdnHeads = GdnHeads { n_v: 6, n_k: 2 };

fn set(meta: &mut Vec<(String, Value)>, key: &str, v: Value) {
    match meta.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = v,
        None => meta.push((key.to_string(), v)),
    }
}

fn unset(meta: &mut Vec<(String, Value)>, key: &str) {
    meta.retain(|(k, _)| k != key);
}

/// A GGUF with this metadata and F32 tensors of these (name, input width)
/// and two rows each.
fn gguf(meta: Vec<(String, Value)>, tensors: &[(&str, u64)]) -> GgufFile {
    let mut w = GgufWriter::new(meta);
    for &(name, width) in tensors {
        w.add_tensor(
            name,
            vec![width, 2],
            GgmlType::F32,
            vec![0u8; width as usize * 2 * 4],
        );
    }
    let mut bytes = Vec::new();
    w.write_to(&mut bytes).unwrap();
    GgufFile::from_bytes(bytes).unwrap()
}

fn parse(meta: Vec<(String, Value)>) -> Result<Option<HadamardFold>, String> {
    HadamardFold::from_metadata(&gguf(meta, &[]), Some(GDN)).map_err(|e| e.to_string())
}

#[track_caller]
fn refused(meta: Vec<(String, Value)>, key: &str, phrase: &str) {
    match parse(meta) {
        Ok(_) => panic!("accepted; wanted a refusal naming {key} ({phrase})"),
        Err(e) => assert!(
            e.contains(key) && e.contains(phrase),
            "error `{e}` should name `{key}` and say `{phrase}`"
        ),
    }
}

/// The input width of each weight kind in the test model.
fn width_of(name: &str) -> u64 {
    if name.contains("ssm_out") {
        48
    } else if name.contains("ffn_down") {
        96
    } else {
        64
    }
}

fn all_kind_names() -> Vec<String> {
    let mut v: Vec<String> = FOLDABLE_KINDS
        .iter()
        .map(|k| format!("blk.3.{k}.weight"))
        .collect();
    v.push("output.weight".into());
    v
}

// ------------------------------------------------------------- transform

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

fn base() -> Vec<(String, Value)> {
    metadata(&["output.weight", "blk.0.ffn_down.weight"], 1)
}

#[test]
fn accepts_the_base_metadata() {
    let fold = parse(base()).unwrap().unwrap();
    assert_eq!(fold.version(), 1);
    assert!(fold.explicit_signs() && fold.gdn_v_grouped() && fold.folds_embedding());
    assert_eq!(fold.weight_names().len(), 2);
}

#[test]
fn refuses_unknown_versions() {
    let mut m = base();
    set(&mut m, "prism.hadamard.version", Value::U32(2));
    refused(m, "prism.hadamard.version", "tied_output");
    let mut m = base();
    set(&mut m, "prism.hadamard.version", Value::U32(0));
    refused(m, "prism.hadamard.version", "unknown version 0");
    let mut m = base();
    set(&mut m, "prism.hadamard.version", Value::String("1".into()));
    refused(m, "prism.hadamard.version", "expected an integer");
}

#[test]
fn refuses_bad_block_sizes() {
    for (v, phrase) in [
        (Value::U32(0), "not a power of two"),
        (Value::U32(48), "not a power of two"),
        (Value::U64(1 << 20), "implausibly large"),
        (Value::I32(-16), "does not fit u64"),
    ] {
        let mut m = base();
        set(&mut m, "prism.hadamard.block_size", v);
        refused(m, "prism.hadamard.block_size", phrase);
    }
    let mut m = base();
    unset(&mut m, "prism.hadamard.block_size");
    refused(m, "prism.hadamard.block_size", "not found");
}

#[test]
fn refuses_unknown_transform_axis_and_sign_mode() {
    let mut m = base();
    set(
        &mut m,
        "prism.hadamard.transform",
        Value::String("walsh-hadamard".into()),
    );
    refused(
        m,
        "prism.hadamard.transform",
        "unsupported transform `walsh-hadamard`",
    );
    let mut m = base();
    set(
        &mut m,
        "prism.hadamard.axis",
        Value::String("output-first-dimension".into()),
    );
    refused(m, "prism.hadamard.axis", "unsupported axis");
    let mut m = base();
    set(
        &mut m,
        "prism.hadamard.sign_mode",
        Value::String("random".into()),
    );
    refused(
        m,
        "prism.hadamard.sign_mode",
        "unsupported sign mode `random`",
    );
    let mut m = base();
    unset(&mut m, "prism.hadamard.transform");
    refused(m, "prism.hadamard.transform", "not found");
}

#[test]
fn refuses_bad_sign_values() {
    // a value that is not ±1
    let mut m = base();
    let mut v: Vec<i32> = vec![1; 208];
    v[100] = 0;
    set(&mut m, "prism.hadamard.sign_values", i32s(&v));
    refused(m, "prism.hadamard.sign_values", "is 0, not ±1");
    let mut m = base();
    v[100] = 2;
    set(&mut m, "prism.hadamard.sign_values", i32s(&v));
    refused(m, "prism.hadamard.sign_values", "is 2, not ±1");
    // too few, too many
    let mut m = base();
    set(&mut m, "prism.hadamard.sign_values", i32s(&[1; 207]));
    refused(
        m,
        "prism.hadamard.sign_values",
        "fewer than the widths' sum",
    );
    let mut m = base();
    set(&mut m, "prism.hadamard.sign_values", i32s(&[1; 209]));
    refused(m, "prism.hadamard.sign_values", "widths sum to 208");
    // not integers
    let mut m = base();
    set(
        &mut m,
        "prism.hadamard.sign_values",
        Value::Array(ValueType::F32, vec![Value::F32(1.0); 208]),
    );
    refused(m, "prism.hadamard.sign_values", "not an integer");
    // missing under explicit
    let mut m = base();
    unset(&mut m, "prism.hadamard.sign_values");
    refused(m, "prism.hadamard.sign_values", "not found");
}

#[test]
fn refuses_bad_sign_widths() {
    for (w, phrase) in [
        (vec![48, 64, 64, 32], "listed twice"),
        (vec![48, 60, 100], "not a multiple of block_size 16"),
        (vec![-48, 64, 96], "out of range"),
        (vec![0, 64, 96, 48], "out of range"),
        (vec![], "is empty"),
    ] {
        let mut m = base();
        set(&mut m, "prism.hadamard.sign_widths", i32s(&w));
        refused(m, "prism.hadamard.sign_widths", phrase);
    }
    let mut m = base();
    unset(&mut m, "prism.hadamard.sign_widths");
    refused(m, "prism.hadamard.sign_widths", "not found");
    // identity mode with signs present is ambiguous
    let mut m = base();
    set(
        &mut m,
        "prism.hadamard.sign_mode",
        Value::String("identity".into()),
    );
    refused(m, "prism.hadamard.sign_widths", "sign_mode is `identity`");
}

#[test]
fn refuses_bad_weight_names() {
    for bad in [
        "blk.0.attn_norm.weight",
        "token_embd.weight",
        "blk.x.ffn_up.weight",
        "output.bias",
        "blk.0.ffn_up.weight.extra",
    ] {
        let mut m = base();
        set(
            &mut m,
            "prism.hadamard.weight_names",
            strs(&["output.weight", bad]),
        );
        refused(
            m,
            "prism.hadamard.weight_names",
            &format!("`{bad}` is not a weight"),
        );
    }
    let mut m = base();
    set(
        &mut m,
        "prism.hadamard.weight_names",
        strs(&["output.weight", "blk.1.ffn_up.weight", "output.weight"]),
    );
    refused(m, "prism.hadamard.weight_names", "listed twice");
    let mut m = base();
    set(&mut m, "prism.hadamard.weight_names", strs(&[]));
    refused(m, "prism.hadamard.weight_names", "is empty");
    let mut m = base();
    set(&mut m, "prism.hadamard.weight_names", i32s(&[1, 2]));
    refused(m, "prism.hadamard.weight_names", "not a string");
    let mut m = base();
    set(
        &mut m,
        "prism.hadamard.weight_names",
        Value::String("output.weight".into()),
    );
    refused(m, "prism.hadamard.weight_names", "expected arr");
    let mut m = base();
    unset(&mut m, "prism.hadamard.weight_names");
    refused(m, "prism.hadamard.weight_names", "not found");
}

#[test]
fn refuses_bad_inverse_names() {
    let mut m = base();
    set(
        &mut m,
        "prism.hadamard.inverse_weight_names",
        strs(&["output.weight"]),
    );
    refused(
        m,
        "prism.hadamard.inverse_weight_names",
        "`output.weight` is not an inverse-after-lookup table",
    );
    let mut m = base();
    set(
        &mut m,
        "prism.hadamard.inverse_weight_names",
        strs(&["token_embd.weight", "token_embd.weight"]),
    );
    refused(m, "prism.hadamard.inverse_weight_names", "listed twice");
    // absent or empty: no embedding un-fold
    let mut m = base();
    unset(&mut m, "prism.hadamard.inverse_weight_names");
    assert!(!parse(m).unwrap().unwrap().folds_embedding());
    let mut m = base();
    set(&mut m, "prism.hadamard.inverse_weight_names", strs(&[]));
    assert!(!parse(m).unwrap().unwrap().folds_embedding());
}

#[test]
fn refuses_a_non_bool_gdn_flag() {
    let mut m = base();
    set(&mut m, "prism.hadamard.gdn_v_grouped", Value::U32(1));
    refused(m, "prism.hadamard.gdn_v_grouped", "expected bool");
    let mut m = base();
    unset(&mut m, "prism.hadamard.gdn_v_grouped");
    assert!(!parse(m).unwrap().unwrap().gdn_v_grouped());
}

// ---------------------------------------------------- checks at load time

#[track_caller]
fn check_refused(
    names: &[&str],
    tensors: &[(&str, u64)],
    gdn: Option<GdnHeads>,
    key: &str,
    phrase: &str,
) {
    let f = gguf(metadata(names, 1), tensors);
    let e = match HadamardFold::from_gguf(&f, gdn) {
        Ok(_) => panic!("accepted; wanted {key}: {phrase}"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains(key) && e.contains(phrase),
        "error `{e}` should name `{key}` and say `{phrase}`"
    );
    // check() says the same without binding
    let fold = HadamardFold::from_metadata(&f, gdn).unwrap().unwrap();
    let e2 = fold
        .check(
            f.tensors()
                .iter()
                .map(|t| (t.name.as_str(), t.dims[0] as usize)),
        )
        .unwrap_err()
        .to_string();
    assert_eq!(e, e2);
}

#[test]
fn refuses_tensors_that_do_not_fit_the_fold() {
    let embd = ("token_embd.weight", 64);
    // a folded weight the model lacks
    check_refused(
        &["blk.0.ffn_up.weight"],
        &[embd],
        None,
        "prism.hadamard.weight_names",
        "`blk.0.ffn_up.weight`, which the model does not have",
    );
    // an inverse table the model lacks
    check_refused(
        &["blk.0.ffn_up.weight"],
        &[("blk.0.ffn_up.weight", 64)],
        None,
        "prism.hadamard.inverse_weight_names",
        "`token_embd.weight`, which the model does not have",
    );
    // input width not a multiple of the block
    check_refused(
        &["blk.0.ffn_up.weight"],
        &[("blk.0.ffn_up.weight", 72), embd],
        None,
        "prism.hadamard.block_size",
        "16 does not divide the input width 72 of `blk.0.ffn_up.weight`",
    );
    // no sign vector of the width
    check_refused(
        &["blk.0.ffn_up.weight"],
        &[("blk.0.ffn_up.weight", 32), embd],
        None,
        "prism.hadamard.sign_widths",
        "no sign vector of width 32 for `blk.0.ffn_up.weight`",
    );
    check_refused(
        &["blk.0.ffn_up.weight"],
        &[("blk.0.ffn_up.weight", 64), ("token_embd.weight", 128)],
        None,
        "prism.hadamard.sign_widths",
        "no sign vector of width 128 for `token_embd.weight`",
    );
    // grouped ssm_out without head counts, or with a geometry that does not fit
    let ssm = ("blk.0.ssm_out.weight", 48);
    check_refused(
        &["blk.0.ssm_out.weight"],
        &[ssm, embd],
        None,
        "prism.hadamard.gdn_v_grouped",
        "head counts",
    );
    check_refused(
        &["blk.0.ssm_out.weight"],
        &[ssm, embd],
        Some(GdnHeads { n_v: 6, n_k: 4 }),
        "prism.hadamard.gdn_v_grouped",
        "bad DeltaNet head geometry",
    );
    check_refused(
        &["blk.0.ssm_out.weight"],
        &[ssm, embd],
        Some(GdnHeads { n_v: 5, n_k: 1 }),
        "prism.hadamard.gdn_v_grouped",
        "bad DeltaNet head geometry",
    );
    check_refused(
        &["blk.0.ssm_out.weight"],
        &[ssm, embd],
        Some(GdnHeads { n_v: 6, n_k: 0 }),
        "prism.hadamard.gdn_v_grouped",
        "bad DeltaNet head geometry",
    );
}

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
