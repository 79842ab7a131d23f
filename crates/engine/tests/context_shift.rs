//! Context shift (llama.cpp's `--context-shift`): the cache operation
//! against fresh evaluations, and greedy generation far past the context
//! on the real model.

mod common;
use common::*;
use shohin_engine::context_shift::Keep;
use shohin_engine::kv_cache::{CacheType, KvTypes};
use shohin_engine::model::Model;
use shohin_engine::session::Session;

/// Below this top-2 gap, which token wins is a coin flip of rounding
/// (golden_real.rs).
const NEAR_TIE: f32 = 0.02;

fn types(t: CacheType) -> KvTypes {
    KvTypes { k: t, v: t }
}

/// Layer 0's keys depend on the token and its position only (no
/// attention before them): after a shift, the moved rows must equal those
/// of a fresh forward over the kept tokens, at their new positions, within
/// the storage type's rounding (kv_cache/shift.rs derives the bounds:
/// f32 the angles' rounding, f16 (1 + sqrt 2) half-ulps, Q8_0 two
/// quantizations). Later layers' keys legitimately differ: the moved rows
/// were computed attending to the dropped tokens.
fn layer0_keys_match_fresh(m: &mut Model, what: &str) {
    let ids: Vec<u32> = (0..40u32).map(|i| 100 + i * 37 % 900).collect();
    let (keep, d) = (4, 16);
    let kept: Vec<u32> = ids[..keep]
        .iter()
        .chain(&ids[keep + d..])
        .copied()
        .collect();
    for t in CacheType::ALL {
        m.set_kv_types(types(t)).unwrap();
        let mut logits = vec![0.0; m.n_vocab()];
        let mut shifted = m.new_cache(64);
        m.forward(&mut shifted, &ids, &mut logits).unwrap();
        m.shift_cache(&mut shifted, keep, d).unwrap();
        let mut fresh = m.new_cache(64);
        m.forward(&mut fresh, &kept, &mut logits).unwrap();
        assert_eq!(shifted.len(), kept.len());
        let tol = match t {
            CacheType::F32 => 1e-4,
            CacheType::F16 => 2.5 * 2f32.powi(-11),
            CacheType::Q8_0 => 2.0 / 127.0,
        };
        let mut worst = 0.0f32;
        for p in 0..kept.len() {
            let (a, b) = (shifted.key_row(0, p), fresh.key_row(0, p));
            let amax = b.iter().fold(0.0f32, |x, v| x.max(v.abs()));
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                let e = (x - y).abs() / amax;
                worst = worst.max(e);
                assert!(e <= tol, "{what} {t}: row {p} dim {i}: {x} vs {y}");
            }
        }
        eprintln!("{what} {t}: layer-0 keys, worst |diff| / amax = {worst:.2e}");
    }
}

#[test]
fn shifted_keys_equal_a_fresh_forward_tiny() {
    let mut m = load(&fixture("tiny-q1_0.gguf"), 2);
    layer0_keys_match_fresh(&mut m, "tiny");
}

#[test]
fn shifted_keys_equal_a_fresh_forward_real() {
    let mut m = load(&real_model(), 2);
    layer0_keys_match_fresh(&mut m, "real");
}

/// Greedy argmax with the end-of-generation tokens masked (the run must
/// go on), and the top-2 gap.
fn pick(logits: &[f32], eog: &[u32]) -> (u32, f32) {
    let (mut best, mut b1, mut b2) = (0u32, f32::NEG_INFINITY, f32::NEG_INFINITY);
    for (i, &l) in logits.iter().enumerate() {
        if eog.contains(&(i as u32)) {
            continue;
        }
        if l > b1 {
            (b2, b1, best) = (b1, l, i as u32);
        } else if l > b2 {
            b2 = l;
        }
    }
    (best, b1 - b2)
}

/// Measured (deterministic): 5 shifts; free-running, 56 of 56 tokens after
/// the first shift equal the fresh run's and 74 over all shifts; teacher-
/// forced, the fresh run's top-1 equals the shifted run's token at 259 of
/// 265 non-near-tie steps (97.7%). With the keys moved but NOT re-rotated
/// (the bug this guards against) the same run gives 8 free-running tokens
/// and 201 of 264 (76%).
const MIN_FREE: usize = 60;
const MIN_AGREE: f64 = 0.95;

/// The acceptance test: greedy generation of 3x the context with
/// context shift on runs to the end, and after each shift the tokens
/// follow a fresh run over the same kept tokens.
///
/// Not token for token everywhere: the shifted rows were computed
/// attending to the tokens the shift dropped, a fresh run's were not (this
/// is context shift's nature, llama.cpp's too), so the runs may part
/// without a near-tie. What must hold: long free-running agreement, and
/// the fresh run's top-1, teacher-forced with the shifted run's tokens,
/// equal to them at nearly every step whose top-2 gap is not a near-tie.
#[test]
fn generation_runs_three_contexts_and_matches_fresh_runs_after_shifts() {
    let path = real_model();
    let m = load(&path, 2);
    let f = shohin_gguf::GgufFile::open(&path).unwrap();
    let tok = shohin_engine::vocab::load_tokenizer(&f).unwrap();
    let eog = tok.eog_ids().to_vec();
    let n_ctx = 128;
    let prompt = tok.encode(
        "// A C function that sorts an array of ints with quicksort.\n",
        true,
        true,
    );
    let mut s = Session::new(&m, n_ctx);
    s.set_context_shift(Some(Keep::All), tok.add_bos()).unwrap();
    s.prompt(&prompt).unwrap();
    assert_eq!(s.n_keep(), prompt.len());
    // Per shift: the tokens the cache holds right after it, and the tokens
    // generated from then on until the next shift.
    let mut segments: Vec<(Vec<u32>, Vec<u32>)> = Vec::new();
    let n_gen = 3 * n_ctx;
    for _ in 0..n_gen {
        let (id, _) = pick(s.logits(), &eog);
        let before = s.n_shifts();
        assert!(s.make_room().unwrap(), "no room after a shift");
        if s.n_shifts() > before {
            segments.push((s.tokens().to_vec(), Vec::new()));
        }
        if let Some(seg) = segments.last_mut() {
            seg.1.push(id);
        }
        s.step(id).unwrap();
        assert_eq!(s.history().len(), prompt.len() + s.timings.n_gen);
    }
    assert_eq!(s.timings.n_gen, n_gen, "generation stopped early");
    assert!(s.n_shifts() >= 5, "only {} shifts", s.n_shifts());
    assert_eq!(s.tokens()[..prompt.len()], prompt[..], "the kept prompt");

    // Teacher-forced: the fresh run is fed the shifted run's tokens and its
    // top-1 compared wherever its top-2 gap is not a near-tie; `free`
    // counts the steps before the first difference of any kind.
    let (mut agree, mut compared, mut free_total) = (0, 0, 0);
    for (k, (kept, gen)) in segments.iter().enumerate() {
        // The first token after the shift was sampled before it: it is
        // the last token of the fresh run's prompt.
        let mut fresh = Session::new(&m, n_ctx);
        let mut p = kept.clone();
        p.push(gen[0]);
        fresh.prompt(&p).unwrap();
        let (mut free, mut parted, mut same, mut n) = (0, false, 0, 0);
        for &want in &gen[1..] {
            let (got, gap) = pick(fresh.logits(), &eog);
            parted |= got != want;
            if !parted {
                free += 1;
            }
            if gap >= NEAR_TIE {
                n += 1;
                same += usize::from(got == want);
            }
            fresh.step(want).unwrap();
        }
        eprintln!(
            "shift {k}: {} kept, {} generated after it: {free} equal free-running, \
             top-1 equal at {same} of {n} teacher-forced steps",
            kept.len(),
            gen.len()
        );
        free_total += free;
        agree += same;
        compared += n;
    }
    eprintln!(
        "{} shifts; {free_total} tokens equal free-running; top-1 equal at {agree} of \
         {compared} teacher-forced steps",
        s.n_shifts()
    );
    assert!(
        free_total >= MIN_FREE,
        "{free_total} free-running tokens equal"
    );
    assert!(compared >= 200, "only {compared} steps compared");
    let rate = agree as f64 / compared as f64;
    assert!(rate >= MIN_AGREE, "top-1 equal at {agree} of {compared}");
}

/// A later prompt (a chat turn) that does not fit shifts on the way, and
/// `history` still lists every token evaluated, in order; `truncate` into
/// the kept start forgets the dropped ones.
#[test]
fn later_prompts_shift_and_history_keeps_every_token() {
    let m = load(&fixture("tiny-q1_0.gguf"), 2);
    let mut s = Session::new(&m, 64);
    s.set_context_shift(Some(Keep::Tokens(5)), false).unwrap();
    let first: Vec<u32> = (0..30u32).map(|i| 200 + i).collect();
    let turn: Vec<u32> = (0..50u32).map(|i| 400 + i).collect();
    s.prompt(&first).unwrap();
    assert_eq!(s.n_keep(), 5);
    s.prompt(&turn).unwrap();
    assert!(s.n_shifts() >= 1 && s.tokens().len() <= 64);
    let all: Vec<u32> = first.iter().chain(&turn).copied().collect();
    assert_eq!(s.history(), all);
    assert_eq!(s.tokens()[..5], first[..5]);
    assert_eq!(s.tokens().len() + s.n_discarded(), all.len());
    s.truncate(3);
    assert_eq!((s.n_discarded(), s.history()), (0, first[..3].to_vec()));
    // Without context shift the same turn does not fit.
    let mut off = Session::new(&m, 64);
    off.prompt(&first).unwrap();
    assert!(off.prompt(&turn).is_err());
}
