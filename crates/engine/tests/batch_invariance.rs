//! A sequence's logits are bit-identical whether it runs alone or in a
//! batch beside others, however its prompt is chunked, and whether its
//! prefix was evaluated as a prompt or token by token (what makes the
//! server's batching and prefix cache invisible in the output).

mod common;
use common::*;
use shohin_engine::kv_cache::KvCache;
use shohin_engine::model::{Model, Span};

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

/// Prompts of different lengths (in-vocabulary ids from a fixed LCG).
fn prompts(n_vocab: usize) -> Vec<Vec<u32>> {
    let mut s = 12345u64;
    (0..8)
        .map(|i| {
            (0..5 + 7 * i)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((s >> 33) as usize % n_vocab.min(30000)) as u32
                })
                .collect()
        })
        .collect()
}

const STEPS: usize = 6;

/// Logits after the prompt and after each of `STEPS` greedy tokens, for
/// one sequence alone.
fn alone(m: &Model, prompt: &[u32]) -> Vec<Vec<u32>> {
    let mut cache = m.new_cache(256);
    let mut logits = vec![0.0; m.n_vocab()];
    m.forward(&mut cache, prompt, &mut logits).unwrap();
    let mut out = vec![bits(&logits)];
    for _ in 0..STEPS {
        let id = argmax(&logits);
        m.forward(&mut cache, &[id], &mut logits).unwrap();
        out.push(bits(&logits));
    }
    out
}

/// All prompts together: sequence `i` starts its prompt at step `i % 3`
/// (so prompts are batched with other sequences' decode tokens) and feeds
/// it in chunks of `chunk` tokens; every other sequence decodes greedily.
fn together(m: &Model, prompts: &[Vec<u32>], chunk: usize) -> Vec<Vec<Vec<u32>>> {
    let nv = m.n_vocab();
    let mut caches: Vec<KvCache> = prompts.iter().map(|_| m.new_cache(256)).collect();
    let mut logits = vec![vec![0.0f32; nv]; prompts.len()];
    let mut fed = vec![0usize; prompts.len()];
    let mut out: Vec<Vec<Vec<u32>>> = vec![Vec::new(); prompts.len()];
    let mut step = 0;
    while out.iter().any(|o| o.len() <= STEPS) {
        let mut toks: Vec<Vec<u32>> = Vec::new();
        let mut idx = Vec::new();
        for (i, p) in prompts.iter().enumerate() {
            if step < i % 3 || out[i].len() > STEPS {
                continue;
            }
            if fed[i] < p.len() {
                let end = (fed[i] + chunk).min(p.len());
                toks.push(p[fed[i]..end].to_vec());
                fed[i] = end;
            } else {
                toks.push(vec![argmax(&logits[i])]);
            }
            idx.push(i);
        }
        let mut spans: Vec<Span<'_>> = Vec::new();
        let mut lrefs: Vec<Option<&mut Vec<f32>>> = logits.iter_mut().map(Some).collect();
        let mut crefs: Vec<Option<&mut KvCache>> = caches.iter_mut().map(Some).collect();
        for (j, &i) in idx.iter().enumerate() {
            spans.push(Span {
                cache: crefs[i].take().unwrap(),
                tokens: &toks[j],
                logits: Some(lrefs[i].take().unwrap()),
                hidden: None,
            });
        }
        m.forward_batch(&mut spans).unwrap();
        drop(spans);
        for &i in &idx {
            if fed[i] == prompts[i].len() {
                out[i].push(bits(&logits[i]));
            }
        }
        step += 1;
    }
    out
}

fn check(m: &Model, what: &str) {
    let ps = prompts(m.n_vocab());
    let want: Vec<_> = ps.iter().map(|p| alone(m, p)).collect();
    for chunk in [1, 4, 512] {
        let got = together(m, &ps, chunk);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.len(), STEPS + 1);
            for (s, (a, b)) in g.iter().zip(w).enumerate() {
                assert!(
                    a == b,
                    "{what}: sequence {i} step {s} (chunks of {chunk}): logits differ from alone"
                );
            }
        }
    }
    // Prefix evaluated token by token, then the rest as a prompt, equals
    // the whole prompt at once (what prefix reuse of a previous turn does).
    let p = &ps[7];
    let mut cache = m.new_cache(256);
    let mut logits = vec![0.0; m.n_vocab()];
    for &id in &p[..10] {
        m.forward(&mut cache, &[id], &mut logits).unwrap();
    }
    m.forward(&mut cache, &p[10..], &mut logits).unwrap();
    assert_eq!(bits(&logits), want[7][0], "{what}: prefix reuse");
    eprintln!(
        "{what}: 8 sequences x {} logit rows bit-identical alone and batched",
        STEPS + 1
    );
}

#[test]
fn tiny_q1_0_logits_do_not_depend_on_the_batch() {
    let m = load(&shared().join("fixtures/tiny-q1_0.gguf"), 2);
    check(&m, "tiny-q1_0");
}

#[test]
fn tiny_q2_0_logits_do_not_depend_on_the_batch() {
    let m = load(&shared().join("fixtures/tiny-q2_0.gguf"), 2);
    check(&m, "tiny-q2_0");
}

#[test]
fn real_logits_do_not_depend_on_the_batch() {
    let m = load(&real_model(), 2);
    check(&m, "real 0.5B");
}
