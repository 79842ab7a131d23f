//! Synthetic tiny Bonsai-shaped models (Q1_0 and Q2_0 g64) against the exact
//! float64 reference (`ref_qwen3.py`) and llama.cpp's greedy ids.
//! Tolerance that holds for llama.cpp itself: top-1 equal, |dlogit| <= 0.1.

mod common;
use common::*;
use shohin_engine::session::Session;

fn check(model_file: &str, golden_stem: &str) {
    let m = load(&fixture(model_file), 2);
    let f64g = golden(&format!("{golden_stem}.f64.json"));
    let peer = golden(&format!("{golden_stem}.json"));
    let prompt = ids(&f64g["prompt_ids"]);
    assert_eq!(prompt, ids(&peer["prompt_ids"]));
    let want_greedy = ids(&f64g["greedy_ids"]);
    assert_eq!(want_greedy, ids(&peer["greedy_ids"]), "references disagree");

    let mut s = Session::new(&m, 64);
    s.prompt(&prompt).unwrap();
    let mut worst = 0.0f64;
    let mut worst_peer = 0.0f64;
    for (i, &want) in want_greedy.iter().enumerate() {
        let (top_ids, top_logits) = step(&f64g, i);
        let logits = s.logits();
        let got = argmax(logits);
        assert_eq!(got, top_ids[0], "{model_file}: step {i} top-1");
        for (id, l) in top_ids.iter().zip(&top_logits) {
            let d = (f64::from(logits[*id as usize]) - l).abs();
            worst = worst.max(d);
            assert!(
                d <= 0.1,
                "{model_file}: step {i} token {id}: {} vs f64 {l}",
                logits[*id as usize]
            );
        }
        // llama.cpp's own logits (rounded to 4 decimals): shohin follows its
        // arithmetic (Q8_0 activations, f16 q and probabilities in attention).
        let (peer_ids, peer_logits) = step(&peer, i);
        for (id, l) in peer_ids.iter().zip(&peer_logits) {
            let d = (f64::from(logits[*id as usize]) - l).abs();
            worst_peer = worst_peer.max(d);
            assert!(
                d <= 0.001,
                "{model_file}: step {i} token {id}: {} vs llama.cpp {l}",
                logits[*id as usize]
            );
        }
        assert_eq!(got, want);
        if i + 1 < want_greedy.len() {
            s.step(got).unwrap();
        }
    }
    eprintln!("{model_file}: max |dlogit| vs f64 = {worst:.4}, vs llama.cpp = {worst_peer:.4}");
}

#[test]
fn tiny_q1_0_matches_f64_reference() {
    check("tiny-q1_0.gguf", "tiny-q1_0_once");
}

#[test]
fn tiny_q2_0_matches_f64_reference() {
    check("tiny-q2_0.gguf", "tiny-q2_0_once");
}
