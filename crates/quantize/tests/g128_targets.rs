//! The PrismML g128 targets (`Q2_0_G128`, `PQ2_0`) end to end: the tiny
//! Q1_0 fixture re-quantized with the absmean rule, read back, loaded by the
//! engine and run.

use shohin_engine::backend::cpu::CpuBackend;
use shohin_engine::model::Model;
use shohin_engine::session::Session;
use shohin_gguf::{GgmlType, GgufFile};
use shohin_quant::dequantize_row;
use shohin_quantize::{quantize_file, Ftype, Options};

fn requantize(target: &str) -> (GgufFile, GgufFile) {
    let input = shohin_test_support::fixture("tiny-q1_0.gguf");
    let dir = std::env::temp_dir().join(format!("shohin-g128-{}-{target}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out.gguf");
    let opts = Options {
        ftype: Ftype::parse(target).unwrap(),
        allow_requantize: true,
        threads: 2,
    };
    quantize_file(&input, &out, &opts, |_, _| {}).unwrap();
    let f = GgufFile::open(&out).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    (GgufFile::open(&input).unwrap(), f)
}

fn check(target: &str, ty: GgmlType, file_type: u32) {
    let (src, f) = requantize(target);
    assert_eq!(f.get_u32("general.file_type").unwrap(), file_type);
    let mut n_g128 = 0;
    for t in f.tensors() {
        let want = match t.name.as_str() {
            _ if t.dims.len() == 1 => GgmlType::F32,
            "output.weight" => GgmlType::Q6K,
            "token_embd.weight" => GgmlType::Q4K,
            _ => ty,
        };
        assert_eq!(t.ggml_type, want, "{target} {}", t.name);
        if want != ty {
            continue;
        }
        n_g128 += 1;
        // Q1_0 blocks are ±d over 128 weights with d an f16: mean |w| = d,
        // every code ±1, so the absmean round trip gives the input back
        let s = src.tensors().iter().find(|s| s.name == t.name).unwrap();
        let n = t.dims.iter().product::<u64>() as usize;
        let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
        dequantize_row(s.ggml_type, src.tensor_data(s), &mut a).unwrap();
        dequantize_row(ty, f.tensor_data(t), &mut b).unwrap();
        assert!(a == b, "{target} {}: round trip differs", t.name);
    }
    assert_eq!(n_g128, 4 * 7);

    let model = Model::load(f, Box::new(CpuBackend::new(2).unwrap())).unwrap();
    let mut n_mats = 0;
    for m in model.weights.matrices() {
        if !matches!(m.name.as_str(), "output.weight" | "token_embd.weight") {
            assert_eq!(m.ty, ty, "{target} {}", m.name);
            n_mats += 1;
        }
    }
    assert_eq!(n_mats, 4 * 7);
    let mut sess = Session::new(&model, 32);
    sess.prompt(&[1u32, 17, 42, 99, 3, 250]).unwrap();
    let l = sess.logits();
    assert!(!l.is_empty() && l.iter().all(|v| v.is_finite()), "{target}");
    assert!(l.iter().any(|&v| v != l[0]), "{target}: constant logits");
}

#[test]
fn q2_0_g128_target_writes_type_42_g128_and_runs() {
    check("q2_0_g128", GgmlType::Q2_0G128, 142);
}

#[test]
fn pq2_0_target_writes_type_142_and_runs() {
    check("PQ2_0", GgmlType::PQ2_0, 141);
}
