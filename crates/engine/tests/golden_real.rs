//! The real Qwen2.5-Coder-0.5B fixture (qwen2; Q5_0/Q8_0/Q4_K/Q6_K/F32)
//! against llama.cpp's goldens: same prompt ids, same greedy ids up to the
//! first near-tie (top-2 gap < 0.02), and past it, fed llama.cpp's ids,
//! the same top-1 wherever llama.cpp's top-2 gap is larger.

mod common;
use common::*;
use shohin_engine::session::Session;

const EOS: u32 = 151_645;
/// Below this top-2 gap, llama.cpp's own choice is a coin flip of rounding.
const NEAR_TIE: f64 = 0.02;
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
    let peer = ids(&g["greedy_ids"]);

    // 1. Free-running greedy until eos or a near-tie where shohin picks the
    // other token (a coin flip of rounding, not a bug); a near-tie where it
    // picks llama.cpp's token keeps both runs on the same path.
    let mut s = Session::new(&m, 256);
    s.prompt(&prompt).unwrap();
    let mut free_steps = 0;
    for (i, &want) in peer.iter().enumerate() {
        let (_, top) = step(&g, i);
        let got = argmax(s.logits());
        if top[0] - top[1] < NEAR_TIE && got != want {
            break;
        }
        assert_eq!(got, want, "{stem}: greedy step {i}");
        free_steps += 1;
        if want == EOS {
            break;
        }
        s.step(got).unwrap();
    }
    eprintln!(
        "{stem}: {free_steps} of {} free-running greedy steps equal",
        peer.len()
    );
    assert!(
        free_steps >= min_free,
        "{stem}: only {free_steps} free-running steps compared (want >= {min_free})"
    );

    // 2. Teacher-forced on llama.cpp's ids: top-1 and logits at every step.
    let mut s = Session::new(&m, 256);
    s.prompt(&prompt).unwrap();
    let mut worst = 0.0f64;
    let mut compared = 0;
    for (i, &fed) in peer.iter().enumerate() {
        let (top_ids, top) = step(&g, i);
        let logits = s.logits();
        if top[0] - top[1] >= NEAR_TIE {
            assert_eq!(argmax(logits), top_ids[0], "{stem}: forced step {i}");
            compared += 1;
        }
        for (id, l) in top_ids.iter().zip(&top) {
            let d = (f64::from(logits[*id as usize]) - l).abs();
            worst = worst.max(d);
        }
        if i + 1 < peer.len() {
            s.step(fed).unwrap();
        }
    }
    eprintln!(
        "{stem}: top-1 equal at {compared} forced steps; max |dlogit| vs llama.cpp = {worst:.4}"
    );
    assert!(
        compared >= min_forced,
        "{stem}: only {compared} forced steps compared (want >= {min_forced})"
    );
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
