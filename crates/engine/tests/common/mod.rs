//! Shared test helpers: fixture paths and golden files (from
//! `shohin-test-support`), model loading and argmax.
#![allow(dead_code, unused_imports)] // each test binary uses a different subset

pub use shohin_test_support::{fixture, golden, ids, llama_model, real_model, shared, step};

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

/// Below this top-2 gap, llama.cpp's own choice is a coin flip of rounding.
pub const NEAR_TIE: f64 = 0.02;

/// `m` against one llama.cpp golden run (`prompt_ids`, `greedy_ids`,
/// `steps` of top-20 logits): (1) free-running greedy from the prompt until
/// eos or a near-tie (top-2 gap < [`NEAR_TIE`]) where shohin picks the
/// other token (a coin flip of rounding, not a bug; a near-tie where it
/// picks llama.cpp's token keeps both runs on the same path); (2) fed
/// llama.cpp's ids, the same top-1 wherever llama.cpp's gap is at least
/// `NEAR_TIE`. `min`: the fewest (free, forced) steps that must be compared
/// (so that a golden cut short or an early near-tie cannot leave the test
/// checking nothing). Returns (free steps, forced steps, max |dlogit| over
/// llama.cpp's top 20 at every step).
pub fn check_golden(
    what: &str,
    m: &Model,
    g: &serde_json::Value,
    eos: u32,
    min: (usize, usize),
) -> (usize, usize, f64) {
    use shohin_engine::session::Session;
    let prompt = ids(&g["prompt_ids"]);
    let peer = ids(&g["greedy_ids"]);
    let n_ctx = prompt.len() + peer.len() + 1;

    let mut s = Session::new(m, n_ctx);
    s.prompt(&prompt).unwrap();
    let mut free = 0;
    for (i, &want) in peer.iter().enumerate() {
        let (_, top) = step(g, i);
        let got = argmax(s.logits());
        if top[0] - top[1] < NEAR_TIE && got != want {
            break;
        }
        assert_eq!(got, want, "{what}: greedy step {i}");
        free += 1;
        if want == eos {
            break;
        }
        s.step(got).unwrap();
    }

    let mut s = Session::new(m, n_ctx);
    s.prompt(&prompt).unwrap();
    let mut worst = 0.0f64;
    let mut forced = 0;
    for (i, &fed) in peer.iter().enumerate() {
        let (top_ids, top) = step(g, i);
        let logits = s.logits();
        if top[0] - top[1] >= NEAR_TIE {
            assert_eq!(argmax(logits), top_ids[0], "{what}: forced step {i}");
            forced += 1;
        }
        for (id, l) in top_ids.iter().zip(&top) {
            worst = worst.max((f64::from(logits[*id as usize]) - l).abs());
        }
        if i + 1 < peer.len() {
            s.step(fed).unwrap();
        }
    }
    eprintln!(
        "{what}: {free} of {} free-running greedy steps equal; top-1 equal at {forced} \
         forced steps; max |dlogit| vs llama.cpp = {worst:.4}",
        peer.len()
    );
    assert!(
        free >= min.0,
        "{what}: only {free} free-running steps compared (want >= {})",
        min.0
    );
    assert!(
        forced >= min.1,
        "{what}: only {forced} forced steps compared (want >= {})",
        min.1
    );
    (free, forced, worst)
}

/// In place, each block of `block` values: the normalized Sylvester
/// Walsh–Hadamard transform, in f64 (the reference the `prism.hadamard`
/// fold tests build folded weights with).
pub fn fwht_f64(x: &mut [f64], block: usize) {
    let norm = 1.0 / (block as f64).sqrt();
    for b in x.chunks_mut(block) {
        let mut len = 1;
        while len < block {
            for i in (0..block).step_by(2 * len) {
                for j in i..i + len {
                    let (a, c) = (b[j], b[j + len]);
                    b[j] = a + c;
                    b[j + len] = a - c;
                }
            }
            len *= 2;
        }
        b.iter_mut().for_each(|v| *v *= norm);
    }
}

/// The logits after `prompt`, from a fresh session.
pub fn prompt_logits(m: &Model, prompt: &[u32]) -> Vec<f32> {
    let mut s = shohin_engine::session::Session::new(m, prompt.len() + 1);
    s.prompt(prompt).unwrap();
    s.logits().to_vec()
}

/// Max |dlogit| over golden case `g`'s top 20 after the prompt (step 0).
pub fn drift(logits: &[f32], g: &serde_json::Value) -> f64 {
    let (ids, top) = step(g, 0);
    ids.iter()
        .zip(&top)
        .map(|(&i, &l)| (f64::from(logits[i as usize]) - l).abs())
        .fold(0.0, f64::max)
}

/// Generation at temperature `temp` with sampler seed `seed`, at most `max`
/// tokens, everything else default.
pub fn gen_params(temp: f32, seed: u64, max: usize) -> shohin_engine::generate::GenParams {
    shohin_engine::generate::GenParams {
        sampling: shohin_engine::sampler::SamplerConfig {
            temperature: temp,
            seed,
            ..Default::default()
        },
        max_tokens: max,
        ..Default::default()
    }
}

/// The engine thread over the model at `path` (2 threads), and its
/// tokenizer.
pub fn start_engine(
    path: &std::path::Path,
    cfg: shohin_engine::scheduler::EngineConfig,
) -> (
    shohin_engine::scheduler::Engine,
    std::sync::Arc<shohin_tokenizer::Tokenizer>,
) {
    let f = GgufFile::open(path).unwrap();
    let tok = std::sync::Arc::new(shohin_engine::vocab::load_tokenizer(&f).unwrap());
    let m = std::sync::Arc::new(load(path, 2));
    (
        shohin_engine::scheduler::Engine::start(m, tok.clone(), cfg),
        tok,
    )
}
