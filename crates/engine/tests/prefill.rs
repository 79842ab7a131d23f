//! A prompt longer than one batch (`N_BATCH` tokens), evaluated in one
//! `Session::prompt` call (batched, split into `N_BATCH` chunks inside),
//! against the same tokens fed one `Session::step` at a time and in several
//! smaller prompt calls: the same final logits, and the same KV cache (the
//! logits of one more step after each agree too).

mod common;
use common::*;
use shohin_engine::model::{Model, N_BATCH};
use shohin_engine::session::Session;

const N_CTX: usize = 1024;
/// Longer than one batch, with a partial second chunk.
const N_PROMPT: usize = N_BATCH + 190;
const _: () = assert!(N_PROMPT > N_BATCH && N_PROMPT < N_CTX);

/// Largest |a - b| over all logits (NaN-aware: a NaN anywhere is infinite).
fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = (x - y).abs();
            if d.is_nan() {
                f32::INFINITY
            } else {
                d
            }
        })
        .fold(0.0, f32::max)
}

/// `N_PROMPT` in-vocabulary ids: a long text through the model's tokenizer.
fn long_prompt(path: &std::path::Path) -> Vec<u32> {
    let f = shohin_gguf::GgufFile::open(path).unwrap();
    let tok = shohin_engine::vocab::load_tokenizer(&f).unwrap();
    let mut text = String::new();
    let mut i = 0u32;
    loop {
        text.push_str(&format!(
            "Line {i}: the {} fox jumps over {} lazy dogs, then counts {} stars and writes `fn f{i}(x: u32) -> u32 {{ x * {} }}`.\n",
            ["quick", "brown", "sly", "tired"][i as usize % 4],
            i * 7 % 13,
            i * i % 101,
            i + 3
        ));
        let ids = tok.encode(&text, true, false);
        if ids.len() >= N_PROMPT {
            return ids[..N_PROMPT].to_vec();
        }
        i += 1;
    }
}

/// Final logits after feeding `ids` in pieces of at most `piece` tokens
/// (1 = one `step` per token after a one-token prompt), then the logits of
/// one more step with `next`.
fn feed(m: &Model, ids: &[u32], piece: usize, next: u32) -> (Vec<f32>, Vec<f32>) {
    let mut s = Session::new(m, N_CTX);
    if piece == 1 {
        s.prompt(&ids[..1]).unwrap();
        for &id in &ids[1..] {
            s.step(id).unwrap();
        }
    } else {
        for chunk in ids.chunks(piece) {
            s.prompt(chunk).unwrap();
        }
    }
    assert_eq!(s.tokens(), ids);
    let last = s.logits().to_vec();
    let after = s.step(next).unwrap().to_vec();
    (last, after)
}

#[test]
fn long_prompt_in_one_call_matches_step_by_step_and_pieces() {
    let path = fixture("tiny-q1_0.gguf");
    let m = load(&path, 2);
    let ids = long_prompt(&path);
    assert_eq!(ids.len(), N_PROMPT);
    assert!(ids.iter().all(|&id| (id as usize) < m.n_vocab()));

    let (whole, whole_next) = feed(&m, &ids, N_PROMPT, 42);
    let top = argmax(&whole);
    assert!(whole.iter().all(|x| x.is_finite()), "non-finite logits");

    for piece in [1, 100, N_BATCH] {
        let (got, got_next) = feed(&m, &ids, piece, 42);
        let (d, d_next) = (max_diff(&whole, &got), max_diff(&whole_next, &got_next));
        let bits = bits_eq(&whole, &got) && bits_eq(&whole_next, &got_next);
        eprintln!(
            "{N_PROMPT} tokens in one prompt vs pieces of {piece}: max |dlogit| = {d:e} \
             (then one more step: {d_next:e}), bit-identical: {bits}"
        );
        assert_eq!(argmax(&got), top, "pieces of {piece}: top-1");
        assert_eq!(
            argmax(&got_next),
            argmax(&whole_next),
            "pieces of {piece}: next top-1"
        );
        // Measured 0 (bit-identical) for every split: batched attention
        // sums in the same order as one-token steps, so any difference is
        // a regression (a looser bound would hide it).
        assert!(
            bits_eq(&whole, &got) && bits_eq(&whole_next, &got_next),
            "pieces of {piece}: logits differ from one prompt call \
             (max |dlogit| {d:e}, next step {d_next:e})"
        );
    }
}

fn bits_eq(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}
