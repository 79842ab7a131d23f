//! `shohin quantize` end to end on the tiny Q1_0 model (the byte-exactness
//! against llama-quantize is tested in crates/quantize/tests).

mod common;
use common::*;

#[test]
fn refuses_quantized_input_without_allow_requantize() {
    let dir = scratch("quantize-refuse");
    let out_path = dir.join("out.gguf");
    let out = shohin(&["quantize", &s(&tiny()), &s(&out_path), "Q8_0"]);
    assert_error(&out, &["requantizing from type Q1_0", "--allow-requantize"]);
    assert!(!out_path.exists(), "nothing may be written");
}

#[test]
fn unknown_type_lists_the_valid_ones() {
    let dir = scratch("quantize-unknown");
    let out = shohin(&["quantize", &s(&tiny()), &s(&dir.join("o.gguf")), "Q3_XL"]);
    assert_error(&out, &["Q3_XL", "Q8_0", "Q4_K_M", "TQ1_0"]);
}

#[test]
fn requantizes_with_summary_lines() {
    let dir = scratch("quantize-requant");
    let out_path = dir.join("out.gguf");
    let out = shohin(&[
        "quantize",
        "--allow-requantize",
        "-t",
        "2",
        &s(&tiny()),
        &s(&out_path),
        "--type",
        "q8_0",
    ])
    .ok();
    assert!(out.stdout.contains("Q1_0 -> Q8_0"), "{out}");
    assert!(
        out.stdout.contains("F32 -> F32"),
        "1-D tensors stay F32: {out}"
    );
    assert!(
        out.stdout.contains("quantized ") && out.stdout.contains("MiB"),
        "{out}"
    );
    let f = shohin_gguf::GgufFile::open(&out_path).unwrap();
    assert_eq!(f.get_u32("general.file_type").unwrap(), 7);
    let info = shohin(&["info", "-m", &s(&out_path)]).ok();
    assert!(info.stdout.contains("Q8_0"), "{info}");
}
