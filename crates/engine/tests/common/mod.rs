//! Shared test helpers: fixture paths and golden files (from
//! `shohin-test-support`), model loading and argmax.
#![allow(dead_code, unused_imports)] // each test binary uses a different subset

pub use shohin_test_support::{fixture, golden, ids, real_model, shared, step};

use shohin_engine::backend::cpu::CpuBackend;
use shohin_engine::model::Model;
use shohin_gguf::GgufFile;

pub fn load(path: &std::path::Path, threads: usize) -> Model {
    let f = GgufFile::open(path).unwrap();
    Model::load(f, Box::new(CpuBackend::new(threads).unwrap())).unwrap()
}

pub fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in x.iter().enumerate() {
        if *v > x[best] {
            best = i;
        }
    }
    best as u32
}
