//! `PTQ1_0` (GGUF type 143) end to end, on the synthetic `tq1_0` model of
//! `tests/data/synth/` (ternary, 256 weights per f16 scale): its matrices
//! re-encoded as `PTQ1_0` and, for comparison, as `PQ2_0` (both 128 per
//! scale; either holds the very same weights, checked value by value
//! through the dequantizers). The `PTQ1_0` copy must load, its logits must
//! equal the `PQ2_0` copy's bit for bit (both take `Q8_0R` activations, and
//! the kernels form the same integer sums and scale them in the same order,
//! repacked or not), and lie within the synthetic models' tolerance (0.1,
//! `synth_models.rs`) of the model's float64 reference.

mod common;
use common::*;
use serde_json::Value as Json;
use shohin_engine::backend::cpu::CpuBackend;
use shohin_engine::model::Model;
use shohin_engine::session::Session;
use shohin_gguf::{GgmlType, GgufFile, GgufWriter};
use shohin_quant::{dequantize_row, quantize_row};
use std::path::PathBuf;

const TOL: f64 = 0.1;

fn synth(file: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/synth")).join(file)
}

/// `tq1_0.gguf` with its `TQ1_0` matrices re-encoded as `ty` (bytes of a
/// GGUF file).
fn copy_as(ty: GgmlType) -> Vec<u8> {
    let src = GgufFile::open(&synth("tq1_0.gguf")).unwrap();
    let mut w = GgufWriter::new(src.metadata().to_vec());
    let mut converted = 0;
    for t in src.tensors() {
        let data = src.tensor_data(t);
        if t.ggml_type != GgmlType::TQ1_0 {
            w.add_tensor(t.name.clone(), t.dims.clone(), t.ggml_type, data.to_vec());
            continue;
        }
        let n = t.n_elements as usize;
        let mut x = vec![0f32; n];
        dequantize_row(GgmlType::TQ1_0, data, &mut x).unwrap();
        let mut q = vec![0u8; n / ty.block_size() * ty.type_size()];
        quantize_row(ty, &x, &mut q).unwrap();
        let mut y = vec![0f32; n];
        dequantize_row(ty, &q, &mut y).unwrap();
        // the same weights, exactly: t·d with an f16 d, nothing to round
        assert!(x.iter().zip(&y).all(|(a, b)| a == b), "{ty} {}", t.name);
        w.add_tensor(t.name.clone(), t.dims.clone(), ty, q);
        converted += 1;
    }
    assert!(converted >= 7, "only {converted} TQ1_0 matrices");
    let mut bytes = Vec::new();
    w.write_to(&mut bytes).unwrap();
    bytes
}

/// The logits after the prompt and each teacher-forced reference step.
fn run(m: &Model, g: &Json) -> Vec<Vec<f32>> {
    let prompt = ids(&g["prompt_ids"]);
    let greedy = ids(&g["greedy_ids"]);
    let mut s = Session::new(m, 64);
    s.prompt(&prompt).unwrap();
    let mut out = Vec::new();
    for (i, &next) in greedy.iter().enumerate() {
        out.push(s.logits().to_vec());
        if i + 1 < greedy.len() {
            s.step(next).unwrap();
        }
    }
    out
}

#[test]
fn ptq1_0_copy_matches_pq2_0_copy_and_the_f64_reference() {
    let g: Json =
        serde_json::from_str(&std::fs::read_to_string(synth("tq1_0.f64.json")).unwrap()).unwrap();
    let (pt_bytes, pq_bytes) = (copy_as(GgmlType::PTQ1_0), copy_as(GgmlType::PQ2_0));
    let mut by_mode = Vec::new();
    for repack in [true, false] {
        let load = |b: &Vec<u8>| {
            let backend = Box::new(CpuBackend::new(2).unwrap().with_repack(repack));
            Model::load(GgufFile::from_bytes(b.clone()).unwrap(), backend).unwrap()
        };
        let (pt, pq) = (load(&pt_bytes), load(&pq_bytes));
        let n_ptq = pt
            .weights
            .matrices()
            .filter(|m| m.ty == GgmlType::PTQ1_0)
            .count();
        assert!(n_ptq >= 7, "repack {repack}: {n_ptq} PTQ1_0 matrices");
        let (a, b) = (run(&pt, &g), run(&pq, &g));
        let mut worst = 0f64;
        for (i, (la, lb)) in a.iter().zip(&b).enumerate() {
            assert_eq!(la.len(), lb.len());
            for (j, (x, y)) in la.iter().zip(lb).enumerate() {
                assert_eq!(
                    x.to_bits(),
                    y.to_bits(),
                    "repack {repack}: step {i} logit {j}"
                );
            }
            let (top_ids, top_logits) = step(&g, i);
            assert_eq!(top_ids.len(), 20);
            for (id, l) in top_ids.iter().zip(&top_logits) {
                let d = (f64::from(la[*id as usize]) - l).abs();
                worst = worst.max(d);
                assert!(d <= TOL, "repack {repack}: step {i} token {id}: {d}");
            }
        }
        eprintln!("PTQ1_0 (repack {repack}): max |dlogit| vs f64 = {worst:.4}");
        by_mode.push(a);
    }
    // repacked and row-major kernels: the same sums, another f32 order
    for (la, lb) in by_mode[0].iter().zip(&by_mode[1]) {
        for (x, y) in la.iter().zip(lb) {
            assert!((x - y).abs() <= 1e-3 * (1.0 + x.abs()), "{x} vs {y}");
        }
    }
}
