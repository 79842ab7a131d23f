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

/// A GGUF's tensors as (name, dims, type, bytes), editable.
pub type Tensors = Vec<(String, Vec<u64>, shohin_gguf::GgmlType, Vec<u8>)>;

/// The error `Model::load` gives for `src` after `edit` changed its
/// metadata and tensor list (the edited model must fail to load).
pub fn load_error_after_edit(
    src: &GgufFile,
    edit: impl FnOnce(&mut Vec<(String, shohin_gguf::Value)>, &mut Tensors),
) -> String {
    let mut meta = src.metadata().to_vec();
    let mut tensors: Tensors = src
        .tensors()
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.dims.clone(),
                t.ggml_type,
                src.tensor_data(t).to_vec(),
            )
        })
        .collect();
    edit(&mut meta, &mut tensors);
    let mut w = shohin_gguf::GgufWriter::new(meta);
    for (name, dims, ty, data) in tensors {
        w.add_tensor(name, dims, ty, data);
    }
    let mut bytes = Vec::new();
    w.write_to(&mut bytes).unwrap();
    let file = GgufFile::from_bytes(bytes).unwrap();
    match Model::load(file, Box::new(CpuBackend::new(1).unwrap())) {
        Ok(_) => panic!("the edited model loaded"),
        Err(e) => e.to_string(),
    }
}

/// Sets metadata key `key` (which must exist) to `v`.
pub fn set(meta: &mut [(String, shohin_gguf::Value)], key: &str, v: shohin_gguf::Value) {
    let slot = meta
        .iter_mut()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no key {key}"));
    slot.1 = v;
}
