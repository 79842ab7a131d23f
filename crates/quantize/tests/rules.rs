//! Refusals and per-tensor choices, on the real fixture and on small files.

use shohin_gguf::{GgmlType, GgufFile, GgufWriter, Value};
use shohin_quantize::{plan, quantize_file, Ftype, Options, QuantizeError};
use std::path::PathBuf;

fn opts(ty: &str, allow_requantize: bool) -> Options {
    Options {
        ftype: Ftype::parse(ty).unwrap(),
        allow_requantize,
        threads: 2,
    }
}

#[test]
fn quantized_input_is_refused_without_allow_requantize() {
    let f = GgufFile::open(&shohin_test_support::real_model()).unwrap();
    let e = plan(&f, &opts("Q8_0", false)).unwrap_err();
    assert!(matches!(e, QuantizeError::Requantize { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("--allow-requantize") && msg.contains(".weight"),
        "{msg}"
    );
    // with it, every planned tensor is fine; 1-D ones stay F32
    let p = plan(&f, &opts("Q8_0", true)).unwrap();
    assert_eq!(p.len(), f.tensors().len());
    for t in &p {
        if t.dims.len() == 1 {
            assert_eq!((t.from, t.to), (GgmlType::F32, GgmlType::F32), "{}", t.name);
        } else {
            assert_eq!(t.to, GgmlType::Q8_0, "{}", t.name);
        }
    }
}

#[test]
fn unknown_type_lists_the_valid_ones() {
    let e = Ftype::parse("Q3_X").unwrap_err().to_string();
    for name in ["Q8_0", "Q4_0", "Q1_0", "TQ2_0", "Q4_K_M", "Q6_K", "F16"] {
        assert!(e.contains(name), "{e}");
    }
    assert_eq!(Ftype::parse("q4_k_m").unwrap().name, "Q4_K_M");
    assert_eq!(Ftype::parse("Q4_K").unwrap().name, "Q4_K_M");
}

/// A tiny F32 model: 1-D norm and bias stay F32 (bytes copied), the matrix
/// is Q8_0 with the reference quantizer's bits, the metadata is kept and
/// `general.file_type` / `general.quantization_version` are set.
#[test]
fn small_file_round_trip() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("quantize-rules");
    std::fs::create_dir_all(&dir).unwrap();
    let (inp, out) = (dir.join("in.gguf"), dir.join("out.gguf"));
    let f32s = |n: usize, k: f32| -> Vec<u8> {
        (0..n)
            .flat_map(|i| ((i as f32 * k).sin()).to_le_bytes())
            .collect()
    };
    let mat = f32s(64 * 3, 0.37);
    let mut w = GgufWriter::new(vec![
        ("general.architecture".into(), Value::String("llama".into())),
        ("general.file_type".into(), Value::U32(0)),
        ("llama.block_count".into(), Value::U32(1)),
    ]);
    w.add_tensor(
        "blk.0.attn_norm.weight",
        vec![64],
        GgmlType::F32,
        f32s(64, 0.1),
    );
    w.add_tensor("blk.0.attn_q.bias", vec![64], GgmlType::F32, f32s(64, 0.2));
    w.add_tensor(
        "blk.0.attn_q.weight",
        vec![64, 3],
        GgmlType::F32,
        mat.clone(),
    );
    w.write_to_path(&inp).unwrap();

    let s = quantize_file(&inp, &out, &opts("q8_0", false), |_, _| {}).unwrap();
    assert_eq!(s.tensors.len(), 3);
    let f = GgufFile::open(&out).unwrap();
    let src = GgufFile::open(&inp).unwrap();
    for name in ["blk.0.attn_norm.weight", "blk.0.attn_q.bias"] {
        let t = f.tensor(name).unwrap();
        assert_eq!(t.ggml_type, GgmlType::F32);
        assert_eq!(f.tensor_data(t), src.tensor_data(src.tensor(name).unwrap()));
    }
    let q = f.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(q.ggml_type, GgmlType::Q8_0);
    let vals: Vec<f32> = mat
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let mut want = vec![0u8; 3 * 2 * 34];
    shohin_quant::quantize_row(GgmlType::Q8_0, &vals, &mut want).unwrap();
    assert_eq!(f.tensor_data(q), &want[..]);
    assert_eq!(f.get_u32("general.file_type").unwrap(), 7);
    assert_eq!(f.get_u32("general.quantization_version").unwrap(), 2);
    assert_eq!(f.get_str("general.architecture").unwrap(), "llama");
    let keys: Vec<&str> = f.metadata().iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "general.architecture",
            "llama.block_count",
            "general.quantization_version",
            "general.file_type"
        ]
    );

    // an F16 target also works from F32, and 1-D stays F32
    quantize_file(&inp, &out, &opts("F16", false), |_, _| {}).unwrap();
    let f = GgufFile::open(&out).unwrap();
    assert_eq!(
        f.tensor("blk.0.attn_q.weight").unwrap().ggml_type,
        GgmlType::F16
    );
    assert_eq!(
        f.tensor("blk.0.attn_q.bias").unwrap().ggml_type,
        GgmlType::F32
    );
}
