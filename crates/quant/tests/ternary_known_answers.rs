//! Known-answer tests of the 1-bit and ternary formats against vectors made
//! by `tests/data/gen_ternary.py` from references independent of this crate:
//! ggml's C (`quantize_row_*_ref`, `dequantize_row_*`, the scalar
//! `ggml_vec_dot_*_generic` kernels, called through ctypes), gguf-py's
//! `TQ1_0`/`TQ2_0`, and a numpy transcription of the ggml definitions (the
//! only reference for PrismML's g128 layout). The generator checked that
//! the references agree with each other before writing the vectors.
//!
//! Dequantized values must match bit for bit (signs of zero included),
//! quantized bytes byte for byte, and dot products bit for bit with the f32
//! result of the generic C kernel (same operation order), besides lying
//! close to the float64 dot product. The vectors hold `block_q8_0`
//! activations; the formats whose `vec_dot_type` is `Q8_0R` get the same
//! numbers rewritten as its planes (tests/ternary_support), and the answers
//! are unchanged.

mod ternary_support;

use serde_json::Value;
use shohin_quant::{dequantize_row, quantize_row, vec_dot, GgmlType};

fn load(name: &str) -> Value {
    let path = format!(
        "{}/tests/data/ternary/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn hex(v: &Value) -> Vec<u8> {
    let s = v.as_str().expect("hex string");
    assert_eq!(s.len() % 2, 0);
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// f32 values stored as the shortest decimals that round-trip through f64.
fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("float array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn check_format(file: &str, types: &[GgmlType]) {
    let doc = load(file);
    for &ty in types {
        assert_eq!(doc["block_size"].as_u64(), Some(ty.block_size() as u64));
        assert_eq!(doc["type_size"].as_u64(), Some(ty.type_size() as u64));

        let cases = doc["dequantize"].as_array().expect("dequantize cases");
        assert!(!cases.is_empty());
        for (i, case) in cases.iter().enumerate() {
            let raw = hex(&case["bytes"]);
            let want = floats(&case["values"]);
            let mut got = vec![f32::NAN; want.len()];
            dequantize_row(ty, &raw, &mut got).unwrap();
            for (j, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(
                    g.to_bits(),
                    w.to_bits(),
                    "{ty} dequantize case {i} value {j}: {g} vs {w}"
                );
            }
        }

        let cases = doc["quantize"].as_array().expect("quantize cases");
        assert!(!cases.is_empty());
        for (i, case) in cases.iter().enumerate() {
            let x = floats(&case["input"]);
            let want = hex(&case["bytes"]);
            let mut got = vec![0xa5u8; want.len()];
            quantize_row(ty, &x, &mut got).unwrap();
            assert_eq!(got, want, "{ty} quantize case {i}");
        }

        let cases = doc["vec_dot"].as_array().expect("vec_dot cases");
        assert_eq!(cases.len(), 3);
        for (i, case) in cases.iter().enumerate() {
            let w = hex(&case["w"]);
            let a = hex(&case["a"]);
            let a = if ty.vec_dot_type() == GgmlType::Q8_0R {
                ternary_support::q8_0r_from_q8_0(&a)
            } else {
                a
            };
            let n = w.len() / ty.type_size() * ty.block_size();
            let got = vec_dot(ty, n, &w, &a).unwrap();
            let want = case["expected"].as_f64().unwrap() as f32;
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{ty} vec_dot case {i}: {got} vs {want}"
            );
            let exact = case["f64"].as_f64().unwrap();
            assert!(
                (f64::from(got) - exact).abs() <= 1e-5 * exact.abs().max(1.0),
                "{ty} vec_dot case {i}: {got} vs f64 {exact}"
            );
        }
    }
}

#[test]
fn q1_0_matches_ggml() {
    check_format("q1_0", &[GgmlType::Q1_0]);
}

#[test]
fn q2_0_g64_matches_ggml() {
    check_format("q2_0", &[GgmlType::Q2_0]);
}

#[test]
fn q2_0_g128_and_pq2_0_match_prismml_definitions() {
    check_format("q2_0_g128", &[GgmlType::Q2_0G128, GgmlType::PQ2_0]);
}

#[test]
fn tq1_0_matches_ggml_and_gguf_py() {
    check_format("tq1_0", &[GgmlType::TQ1_0]);
}

#[test]
fn tq2_0_matches_ggml_and_gguf_py() {
    check_format("tq2_0", &[GgmlType::TQ2_0]);
}

/// Rows of `blk.0.attn_q.weight` from the synthetic fixtures
/// shared/fixtures/tiny-q1_0.gguf and tiny-q2_0.gguf (raw bytes and ggml's
/// dequantized values): they decode bit for bit, and since their weights are
/// exactly ±d (Q1_0) or {-1, 0, 1}·d with d the block maximum (Q2_0), the
/// reference quantizer gives back the very same bytes.
#[test]
fn fixture_rows_decode_and_requantize_to_themselves() {
    let doc = load("fixture_rows");
    let rows = doc["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 4);
    for row in rows {
        let ty = match row["type_id"].as_u64() {
            Some(41) => GgmlType::Q1_0,
            Some(42) => GgmlType::Q2_0,
            other => panic!("unexpected type {other:?}"),
        };
        let what = format!("{} {} row {}", row["file"], row["tensor"], row["row"]);
        let raw = hex(&row["bytes"]);
        let want = floats(&row["values"]);
        let mut got = vec![f32::NAN; want.len()];
        dequantize_row(ty, &raw, &mut got).unwrap();
        for (j, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.to_bits(), w.to_bits(), "{what} value {j}");
        }
        let mut again = vec![0u8; raw.len()];
        quantize_row(ty, &got, &mut again).unwrap();
        assert_eq!(again, raw, "{what}: requantized");
    }
}
