//! LoRA adapters on qwen35 (Qwen3.5 hybrid, Bonsai 2) against llama.cpp's
//! goldens (`data/gen_lora_qwen35_goldens.sh`): a random rank-8 F16 adapter
//! (tests/lora/gen.rs: every projection of the gated attention and Gated
//! DeltaNet layers, the FFN, token_embd and output) on the synthetic Q8_0
//! and Q1_0 qwen35 models of tests/qwen35/gen.rs, at user scale 1 and 0.5.
//! Held to the tolerance `tests/qwen35.rs` holds the same models to without
//! adapter (0.1 for Q8_0, 0.25 for Q1_0) at every step, same greedy ids
//! up to a near-tie; the adapter must move the logits well beyond that
//! (so these tests can fail).
//!
//! Also: a `prism.hadamard`-folded model refuses an adapter that names a
//! folded matrix, and an inverse-folded token_embd takes its delta on the
//! un-folded rows.

mod common;
#[path = "lora/gen.rs"]
mod gen;
#[path = "qwen35/gen.rs"]
#[allow(dead_code)]
mod qgen;

use common::{check_golden, drift, prompt_logits};
use shohin_engine::backend::cpu::CpuBackend;
use shohin_engine::lora::{ActiveLora, LoraAdapter};
use shohin_engine::model::Model;
use shohin_gguf::{GgmlType, GgufFile, GgufWriter, Value, ValueType};
use std::sync::Arc;

/// The models: (golden key, type; both untied, so that the output head has
/// its own pair), the tolerance of tests/qwen35.rs for each, and the
/// adapter's strength (`Spec::amp_b`): the Q8_0 model's logits are ~3
/// times smaller than the Q1_0 one's (tests/qwen35/gen.rs), so its adapter
/// is stronger, to move them well beyond the tolerance.
const MODELS: [(&str, GgmlType, f64, f32); 2] = [
    ("q8_0", GgmlType::Q8_0, 0.1, 0.15),
    ("q1_0", GgmlType::Q1_0, 0.25, 0.05),
];

fn spec(ty: GgmlType) -> gen::Spec {
    let &(.., amp_b) = MODELS.iter().find(|m| m.1 == ty).unwrap_or(&MODELS[0]);
    gen::Spec {
        layers: true,
        embd_output: true,
        ty: GgmlType::F16,
        amp_a: 1.0,
        amp_b,
    }
}

fn model_bytes(ty: GgmlType) -> Vec<u8> {
    qgen::build(ty, false)
}

/// The adapter for `model`, as strong as for models of type `ty`.
fn adapter_bytes(model: &[u8], ty: GgmlType) -> Vec<u8> {
    gen::adapter(&GgufFile::from_bytes(model.to_vec()).unwrap(), &spec(ty))
}

fn load(bytes: Vec<u8>) -> Model {
    let f = GgufFile::from_bytes(bytes).unwrap();
    Model::load(f, Box::new(CpuBackend::new(2).unwrap())).unwrap()
}

fn parse(bytes: Vec<u8>) -> LoraAdapter {
    let f = GgufFile::from_bytes(bytes).unwrap();
    LoraAdapter::from_gguf(&f, "test adapter").unwrap()
}

fn set(m: &Model, a: LoraAdapter, scale: f32) -> shohin_engine::error::Result<()> {
    m.set_adapters(vec![ActiveLora {
        adapter: Arc::new(a),
        scale,
    }])
}

fn goldens() -> serde_json::Value {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/lora_qwen35_goldens.json"
    );
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn tmp_dir() -> std::path::PathBuf {
    let d = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/tmp/lora_qwen35");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes the models, adapters and cases for gen_lora_qwen35_goldens.sh.
#[test]
#[ignore]
fn write_adapters() {
    let d = tmp_dir();
    let mut cases = serde_json::Map::new();
    for (name, ty, ..) in MODELS {
        let mb = model_bytes(ty);
        let ab = adapter_bytes(&mb, ty);
        let (mp, ap) = (
            d.join(format!("{name}.gguf")),
            d.join(format!("{name}-lora.gguf")),
        );
        std::fs::write(&mp, &mb).unwrap();
        std::fs::write(&ap, &ab).unwrap();
        cases.insert(
            name.into(),
            serde_json::json!({
                "model": mp, "adapter": ap,
                "prompt_ids": qgen::prompt(1, 12), "n_gen": 8,
                "model_fnv64": qgen::fnv64(&mb).to_string(),
                "fnv64": gen::fnv64(&ab).to_string(),
            }),
        );
    }
    std::fs::write(
        d.join("cases.json"),
        serde_json::Value::from(cases).to_string(),
    )
    .unwrap();
}

/// Model `which` with its adapter at user scale `scale` against llama.cpp.
fn check(which: &str, scale: &str) {
    let &(_, ty, tol, _) = MODELS.iter().find(|m| m.0 == which).unwrap();
    let all = goldens();
    let mb = model_bytes(ty);
    let ab = adapter_bytes(&mb, ty);
    assert_eq!(
        qgen::fnv64(&mb).to_string(),
        all[which]["model_fnv64"].as_str().unwrap(),
        "{which}: the model generator changed; rerun gen_lora_qwen35_goldens.sh"
    );
    assert_eq!(
        gen::fnv64(&ab).to_string(),
        all[which]["fnv64"].as_str().unwrap(),
        "{which}: the adapter generator changed; rerun gen_lora_qwen35_goldens.sh"
    );
    let a = parse(ab);
    // Every matrix llama.cpp's qwen35 graph adapts: 4 attention + 5
    // DeltaNet projections + 3 FFN, 2 layers of each kind, and token_embd
    // and output.
    assert_eq!(a.weights.len(), 2 * (4 + 3) + 2 * (5 + 3) + 2);
    let g = &all[which][scale];
    let prompt = common::ids(&g["prompt_ids"]);
    let m = load(mb);
    let base = drift(&prompt_logits(&m, &prompt), g);
    set(&m, a, scale.parse().unwrap()).unwrap();
    let got = drift(&prompt_logits(&m, &prompt), g);
    let what = format!("qwen35 {which} lora x{scale}");
    eprintln!("{what}: prompt |dlogit| {got:.4} with the adapter, {base:.4} without");
    let (_, _, worst) = check_golden(&what, &m, g, u32::MAX, (1, 4));
    assert!(
        got < tol,
        "{what}: prompt logits drift {got} from llama.cpp"
    );
    assert!(worst < tol, "{what}: logits drift {worst} from llama.cpp");
    assert!(
        base > 5.0 * tol,
        "{what}: without the adapter the logits are only {base} from llama.cpp's with it"
    );
}

#[test]
fn q8_0_lora_scale_1_matches_llama_cpp() {
    check("q8_0", "1");
}

#[test]
fn q8_0_lora_scale_half_matches_llama_cpp() {
    check("q8_0", "0.5");
}

#[test]
fn q1_0_lora_scale_1_matches_llama_cpp() {
    check("q1_0", "1");
}

#[test]
fn q1_0_lora_scale_half_matches_llama_cpp() {
    check("q1_0", "0.5");
}

/// A pair for a tensor the forward pass does not multiply by
/// (`ssm_conv1d`, a convolution llama.cpp does not adapt either) is
/// refused by name.
#[test]
fn conv1d_pair_is_refused() {
    let mb = model_bytes(GgmlType::Q8_0);
    let conv = GgufFile::from_bytes(mb.clone()).unwrap();
    let t = conv.tensor("blk.0.ssm_conv1d.weight").unwrap();
    let (n_in, n_out) = (t.dims[0], t.dims[1]);
    let mut w = GgufWriter::new(vec![
        (
            "general.architecture".into(),
            Value::String("qwen35".into()),
        ),
        ("general.type".into(), Value::String("adapter".into())),
        ("adapter.type".into(), Value::String("lora".into())),
    ]);
    let zeros = |n: u64| vec![0u8; n as usize * 4];
    w.add_tensor(
        "blk.0.ssm_conv1d.weight.lora_a",
        vec![n_in, 8],
        GgmlType::F32,
        zeros(n_in * 8),
    );
    w.add_tensor(
        "blk.0.ssm_conv1d.weight.lora_b",
        vec![8, n_out],
        GgmlType::F32,
        zeros(n_out * 8),
    );
    let mut ab = Vec::new();
    w.write_to(&mut ab).unwrap();
    let m = load(mb);
    let e = set(&m, parse(ab), 1.0).unwrap_err().to_string();
    assert!(
        e.contains("`blk.0.ssm_conv1d.weight` is not a matrix the forward pass multiplies by"),
        "{e}"
    );
}

// --- prism.hadamard folds ---

/// The fold's block size (divides 256, the only folded width here).
const BLOCK: usize = 64;

/// ±1 signs for width `n` (xorshift64).
fn signs(n: usize) -> Vec<i32> {
    let mut s = 0x51605u64;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            if s & 1 == 0 {
                1
            } else {
                -1
            }
        })
        .collect()
}

/// `row` → `H·S·row` (S the signs, H the normalized Walsh–Hadamard
/// transform on blocks of [`BLOCK`]), in f64.
fn fold_row(row: &mut [f32], s: &[i32]) {
    let mut r: Vec<f64> = row
        .iter()
        .zip(s)
        .map(|(&v, &s)| f64::from(v) * f64::from(s))
        .collect();
    common::fwht_f64(&mut r, BLOCK);
    for (o, v) in row.iter_mut().zip(&r) {
        *o = *v as f32;
    }
}

/// The F32 synthetic model with `folded` (n_embd-wide matrices) and, if
/// `inverse_embd`, token_embd folded: their rows replaced by `H·S·row` and
/// the `prism.hadamard.*` keys that say so. Computes the same function as
/// the unfolded F32 model.
fn folded_f32(folded: &[&str], inverse_embd: bool) -> Vec<u8> {
    let src = GgufFile::from_bytes(model_bytes(GgmlType::F32)).unwrap();
    let d = qgen::N_EMBD;
    let s = signs(d);
    let strs = |v: &[&str]| {
        Value::Array(
            ValueType::String,
            v.iter().map(|s| Value::String(s.to_string())).collect(),
        )
    };
    let i32s = |v: &[i32]| Value::Array(ValueType::I32, v.iter().map(|&x| Value::I32(x)).collect());
    let k = |s: &str| format!("prism.hadamard.{s}");
    let mut meta = src.metadata().to_vec();
    meta.extend([
        (k("version"), Value::U32(1)),
        (k("block_size"), Value::U32(BLOCK as u32)),
        (
            k("transform"),
            Value::String("normalized-sylvester-walsh-hadamard".into()),
        ),
        (k("axis"), Value::String("input-last-dimension".into())),
        (k("sign_mode"), Value::String("explicit".into())),
        (k("sign_widths"), i32s(&[d as i32])),
        (k("sign_values"), i32s(&s)),
        (k("weight_names"), strs(folded)),
    ]);
    if inverse_embd {
        meta.push((k("inverse_weight_names"), strs(&["token_embd.weight"])));
    }
    let mut w = GgufWriter::new(meta);
    for t in src.tensors() {
        let mut data = src.tensor_data(t).to_vec();
        let fold =
            folded.contains(&t.name.as_str()) || (inverse_embd && t.name == "token_embd.weight");
        if fold {
            assert_eq!((t.ggml_type, t.dims[0] as usize), (GgmlType::F32, d));
            let mut v: Vec<f32> = data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            for row in v.chunks_exact_mut(d) {
                fold_row(row, &s);
            }
            data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        }
        w.add_tensor(t.name.as_str(), t.dims.clone(), t.ggml_type, data);
    }
    let mut out = Vec::new();
    w.write_to(&mut out).unwrap();
    out
}

/// An adapter naming a folded matrix is refused, with the tensor named;
/// the same adapter without that pair is accepted, and leaves the folded
/// model's logits equal to the unfolded model's with it.
#[test]
fn folded_matrix_pair_is_refused() {
    let folded = folded_f32(&["blk.1.attn_q.weight"], false);
    let plain = model_bytes(GgmlType::F32);
    let ab = adapter_bytes(&plain, GgmlType::Q1_0);
    let m = load(folded);
    assert!(m.fold().is_some());
    let e = set(&m, parse(ab.clone()), 1.0).unwrap_err().to_string();
    assert!(
        e.contains(
            "tensor `blk.1.attn_q.weight` is Hadamard-folded in this model; LoRA on folded \
             matrices is not supported"
        ),
        "{e}"
    );
    assert!(m.adapters().is_empty(), "a refused set is not applied");
    assert_eq!(
        export_error(&m, parse(ab.clone())),
        "tensor `blk.1.attn_q.weight` is Hadamard-folded in the base model; merging LoRA \
         into folded tensors is not supported"
    );

    let without = || {
        let mut a = parse(ab.clone());
        assert!(a.weights.remove("blk.1.attn_q.weight").is_some());
        a
    };
    set(&m, without(), 1.0).unwrap();
    let p = load(plain);
    let prompt = qgen::prompt(1, 12);
    let off = prompt_logits(&p, &prompt);
    set(&p, without(), 1.0).unwrap();
    let want = prompt_logits(&p, &prompt);
    let got = prompt_logits(&m, &prompt);
    let d = max_diff(&got, &want);
    let effect = max_diff(&off, &want);
    eprintln!(
        "folded attn_q, adapter without it: max |dlogit| {d:.2e} (adapter effect {effect:.2})"
    );
    assert!(d < 0.01 && effect > 1.0, "{d} {effect}");
}

/// An inverse-folded token_embd (rows `H·S·e`) gets the adapter's delta on
/// the un-folded rows `e`: the same logits as the unfolded model with it.
#[test]
fn inverse_folded_embedding_takes_the_delta_unfolded() {
    let folded = folded_f32(&["blk.0.attn_qkv.weight"], true);
    let plain = model_bytes(GgmlType::F32);
    let embd_only = || {
        let mut a = parse(adapter_bytes(&plain, GgmlType::Q1_0));
        a.weights.retain(|k, _| k == "token_embd.weight");
        assert_eq!(a.weights.len(), 1);
        a
    };
    let m = load(folded);
    assert!(m.fold().unwrap().folds_embedding());
    let p = load(plain.clone());
    let prompt = qgen::prompt(1, 12);
    let off = prompt_logits(&p, &prompt);
    set(&m, embd_only(), 1.0).unwrap();
    set(&p, embd_only(), 1.0).unwrap();
    let want = prompt_logits(&p, &prompt);
    let got = prompt_logits(&m, &prompt);
    let d = max_diff(&got, &want);
    let effect = max_diff(&off, &want);
    eprintln!("inverse-folded token_embd: max |dlogit| {d:.2e} (adapter effect {effect:.2})");
    assert!(d < 0.01 && effect > 1.0, "{d} {effect}");
    // Merging into the stored (folded) rows would be wrong: refused.
    assert!(
        export_error(&m, embd_only()).contains("tensor `token_embd.weight` is Hadamard-folded"),
        "{}",
        export_error(&m, embd_only())
    );
}

/// The error `export` (llama-export-lora's merge) gives for `a` on `m`'s
/// file, without the file's name.
fn export_error(m: &Model, a: LoraAdapter) -> String {
    let out = tmp_dir().join("never-written.gguf");
    let e = shohin_engine::lora::export(&m.file, "base", &[(a, 1.0)], &out).unwrap_err();
    assert!(!out.exists(), "nothing is written");
    match e {
        shohin_engine::error::EngineError::Lora { why, .. } => why,
        e => panic!("{e}"),
    }
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
