//! The real Qwen2.5-Coder-0.5B fixture (qwen2; Q5_0/Q8_0/Q4_K/Q6_K/F32)
//! against llama.cpp's goldens: same prompt ids, same greedy ids up to the
//! first near-tie (top-2 gap < 0.02), and past it, fed llama.cpp's ids,
//! the same top-1 wherever llama.cpp's top-2 gap is larger.

mod common;
use common::*;

const EOS: u32 = 151_645;
/// Steps compared, measured (the runs are deterministic). Haiku: llama.cpp's
/// very first step is a near-tie (top-2 gap 0.019) that shohin resolves the
/// other way, so its free run compares nothing; its forced run checks the
/// top-1 at all 21 of 24 steps with a gap >= `NEAR_TIE`. Quicksort has no
/// near-tie: all 32 steps free-running and forced.
const MIN_FREE_HAIKU: usize = 0;
const MIN_FORCED_HAIKU: usize = 21;
const MIN_FREE_QUICKSORT: usize = 32;
const MIN_FORCED_QUICKSORT: usize = 32;

/// `min_free`, `min_forced`: the fewest free-running and teacher-forced
/// steps that must be compared (so that a golden cut short or an early
/// near-tie cannot leave the test checking nothing).
fn check(stem: &str, min_free: usize, min_forced: usize) {
    let path = real_model();
    let m = load(&path, 2);
    let f = shohin_gguf::GgufFile::open(&path).unwrap();
    let tok = shohin_engine::vocab::load_tokenizer(&f).unwrap();
    let g = golden(&format!("{stem}.json"));
    let prompt = tok.encode(g["prompt"].as_str().unwrap(), true, true);
    assert_eq!(prompt, ids(&g["prompt_ids"]), "{stem}: prompt ids");
    let (_, _, worst) = check_golden(stem, &m, &g, EOS, (min_free, min_forced));
    // This trained 24-layer model amplifies last-bit differences (exp/silu
    // approximations, summation order): llama.cpp itself, with only its
    // weight repacking turned off, moves these goldens by up to 0.254 (haiku)
    // and 0.305 (quicksort), measured. shohin measured 0.40 / 0.27 (AVX-512),
    // 0.32 / 0.36 (scalar), 0.40 / 0.27 (AVX2).
    assert!(worst < 0.6, "{stem}: logits drift {worst} from llama.cpp");
}

#[test]
fn real_haiku_matches_llama_cpp() {
    check("qwen2.5-coder-0.5b_haiku", MIN_FREE_HAIKU, MIN_FORCED_HAIKU);
}

#[test]
fn real_quicksort_matches_llama_cpp() {
    check(
        "qwen2.5-coder-0.5b_quicksort",
        MIN_FREE_QUICKSORT,
        MIN_FORCED_QUICKSORT,
    );
}
