//! Speculative decoding (crates/engine/src/speculative) changes nothing in
//! the output: greedy runs are token-identical to plain decoding with a
//! draft model or prompt lookup, sampled runs draw the same tokens for the
//! same seed (so the same distribution, checked by a chi-square test too),
//! and rolling back rejected drafts leaves the cache as plain decoding has
//! it (bit-identical logits afterwards).

mod common;
#[path = "qwen35/gen.rs"]
#[allow(dead_code)] // only `build`, `prompt` and `MODELS` are used here
mod gen;
use common::*;
use shohin_engine::generate::{GenParams, Generator};
use shohin_engine::model::Model;
use shohin_engine::session::Session;
use shohin_engine::speculative::{DraftModel, DraftStats, Drafter, Lookup, SpecConfig, Speculator};
use shohin_gguf::GgufFile;
use shohin_tokenizer::Tokenizer;

const N_CTX: usize = 1024;

fn tokenizer(path: &std::path::Path) -> Tokenizer {
    shohin_engine::vocab::load_tokenizer(&GgufFile::open(path).unwrap()).unwrap()
}

fn params(temperature: f32, seed: u64, max_tokens: usize) -> GenParams {
    GenParams {
        // Fixed lengths: the comparisons go on past an end of text.
        ignore_eos: true,
        ..gen_params(temperature, seed, max_tokens)
    }
}

/// Plain decoding: the tokens generated after `prompt`.
fn plain(m: &Model, tok: &Tokenizer, prompt: &[u32], p: &GenParams) -> Vec<u32> {
    let mut s = Session::new(m, N_CTX);
    s.prompt(prompt).unwrap();
    let mut g = Generator::new(p.clone()).unwrap();
    let mut out = Vec::new();
    loop {
        let room = s.make_room().unwrap();
        let n = g.next(tok, s.logits(), s.tokens(), room).unwrap();
        out.push(n.id);
        if n.finish.is_some() {
            return out;
        }
        s.step(n.id).unwrap();
    }
}

/// The same loop with speculation.
fn speculative(
    m: &Model,
    tok: &Tokenizer,
    prompt: &[u32],
    p: &GenParams,
    drafter: Box<dyn Drafter + '_>,
    n_max: usize,
) -> (Vec<u32>, DraftStats) {
    let mut s = Session::new(m, N_CTX);
    s.prompt(prompt).unwrap();
    let mut g = Generator::new(p.clone()).unwrap();
    let cfg = SpecConfig { n_max, n_min: 0 };
    let mut sp = Speculator::new(drafter, cfg);
    let mut out = Vec::new();
    loop {
        let n = sp.next(&mut s, &mut g, tok).unwrap();
        out.push(n.id);
        if n.finish.is_some() {
            return (out, sp.stats);
        }
        sp.commit(&mut s, &mut g, tok, n.id).unwrap();
    }
}

fn tiny_prompts(tok: &Tokenizer) -> Vec<Vec<u32>> {
    [
        "Once upon a time",
        "def add(a, b):\n    return a + b\n\ndef add(a, b):\n",
        "1, 2, 3, 4, 5, 6, 7, 8,",
    ]
    .iter()
    .map(|p| tok.encode(p, true, true))
    .collect()
}

#[test]
fn greedy_is_identical_on_the_tiny_models() {
    let (p1, p2) = (fixture("tiny-q1_0.gguf"), fixture("tiny-q2_0.gguf"));
    let (target, other) = (load(&p1, 2), load(&p2, 2));
    let tok = tokenizer(&p1);
    let gp = params(0.0, 1, 64);
    for prompt in tiny_prompts(&tok) {
        let want = plain(&target, &tok, &prompt, &gp);
        assert_eq!(want.len(), 64);
        for n_max in [1, 4, 16] {
            let runs: Vec<(&str, Box<dyn Drafter + '_>)> = vec![
                ("lookup", Box::new(Lookup::default())),
                (
                    "q2_0 draft",
                    Box::new(DraftModel::new(&other, N_CTX, 0.0).unwrap()),
                ),
                (
                    "self draft",
                    Box::new(DraftModel::new(&target, N_CTX, 0.0).unwrap()),
                ),
            ];
            for (name, d) in runs {
                if name == "q2_0 draft" && n_max != 4 {
                    continue; // slow, and all rejected anyway
                }
                let (got, st) = speculative(&target, &tok, &prompt, &gp, d, n_max);
                assert_eq!(got, want, "{name}, draft-max {n_max}");
                eprintln!("{name} draft-max {n_max}: {st:?}");
                if name == "self draft" {
                    // The target drafting for itself: token-by-token draft
                    // logits and batched target logits agree bit for bit,
                    // so every draft is accepted.
                    assert!(st.drafted > 0);
                    assert_eq!(st.accepted, st.drafted, "{name}");
                }
                if name == "q2_0 draft" {
                    assert!(st.drafted > 0, "{name} drafted nothing");
                }
            }
        }
    }
}

#[test]
fn greedy_is_identical_on_the_real_model() {
    let real = real_model();
    let target = load(&real, 2);
    let draft_path = fixture("tiny-q2_0.gguf");
    let draft = load(&draft_path, 2);
    let tok = tokenizer(&real);
    let mut prompts: Vec<String> = [
        "qwen2.5-coder-0.5b_haiku.json",
        "qwen2.5-coder-0.5b_quicksort.json",
    ]
    .iter()
    .map(|g| golden(g)["prompt"].as_str().unwrap().to_string())
    .collect();
    prompts.push(include_str!("data/speculative_repeat_prompt.txt").to_string());
    let gp = params(0.0, 1, 64);
    let mut lookup_stats = DraftStats::default();
    for text in &prompts {
        let prompt = tok.encode(text, true, true);
        let want = plain(&target, &tok, &prompt, &gp);
        assert_eq!(want.len(), 64);
        let (got, st) = speculative(&target, &tok, &prompt, &gp, Box::new(Lookup::default()), 16);
        assert_eq!(got, want, "lookup, prompt {text:?}");
        eprintln!("lookup: {st:?}");
        lookup_stats.drafted += st.drafted;
        lookup_stats.accepted += st.accepted;
        // The tiny model is a poor draft (p_min 0: it always drafts):
        // mostly rejections, each rolled back.
        let d = Box::new(DraftModel::new(&draft, N_CTX, 0.0).unwrap());
        let (got, st) = speculative(&target, &tok, &prompt, &gp, d, 4);
        assert_eq!(got, want, "tiny draft, prompt {text:?}");
        assert!(st.drafted > 0);
        eprintln!("tiny draft: {st:?}");
    }
    // The repeat prompt is copied: lookup must have found it.
    assert!(lookup_stats.accepted > 32, "{lookup_stats:?}");
}

#[test]
fn sampled_tokens_are_those_of_plain_sampling_with_the_same_seed() {
    let (p1, p2) = (fixture("tiny-q1_0.gguf"), fixture("tiny-q2_0.gguf"));
    let (target, other) = (load(&p1, 2), load(&p2, 2));
    let tok = tokenizer(&p1);
    let prompt = tok.encode("Once upon a time", true, true);
    let mut accepted = 0;
    for seed in 0..8 {
        let mut gp = params(0.8, seed, 32);
        // Penalties read the history, which must be the accepted one.
        gp.sampling.repeat_penalty = 1.3;
        gp.sampling.presence_penalty = 0.5;
        let want = plain(&target, &tok, &prompt, &gp);
        // tiny-q2_0's drafts are rejected, the model's own greedy drafts
        // often accepted: both paths.
        for d in [&other, &target] {
            let d = Box::new(DraftModel::new(d, N_CTX, 0.0).unwrap());
            let (got, st) = speculative(&target, &tok, &prompt, &gp, d, 4);
            assert_eq!(got, want, "seed {seed}");
            accepted += st.accepted;
        }
    }
    assert!(accepted > 8);
}

/// Proposes the known plain continuation `truth`, wrong at every position
/// `i % 5 == 3`: rounds accept some drafts and reject the rest.
struct Scripted {
    truth: Vec<u32>,
}

impl Drafter for Scripted {
    fn draft(
        &mut self,
        history: &[u32],
        max: usize,
        out: &mut Vec<u32>,
    ) -> shohin_engine::Result<()> {
        for i in history.len()..(history.len() + max).min(self.truth.len()) {
            let t = self.truth[i];
            out.push(if i % 5 == 3 { t ^ 1 } else { t });
        }
        Ok(())
    }
}

#[test]
fn rollback_leaves_the_cache_as_plain_decoding_does() {
    let p1 = fixture("tiny-q1_0.gguf");
    let m = load(&p1, 2);
    let tok = tokenizer(&p1);
    let prompt = tok.encode("Once upon a time", true, true);
    let checked = rollback_matches_plain(&m, &tok, &prompt, &params(0.0, 1, 48));
    assert!(checked > 10);
}

/// Speculation with [`Scripted`] drafts (some accepted, some rejected)
/// against plain decoding of `prompt` with `gp`: after every round the
/// sequence and its logits, to the bit, are plain decoding's, and so is one
/// more step after a truncation. Returns the rounds checked.
fn rollback_matches_plain(m: &Model, tok: &Tokenizer, prompt: &[u32], gp: &GenParams) -> usize {
    // Plain: the logits after every prefix of the sequence.
    let mut s = Session::new(m, N_CTX);
    s.prompt(prompt).unwrap();
    let mut g = Generator::new(gp.clone()).unwrap();
    let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
    let mut after = std::collections::HashMap::new();
    after.insert(s.tokens().len(), bits(s.logits()));
    loop {
        let n = g.next(tok, s.logits(), s.tokens(), true).unwrap();
        if n.finish.is_some() {
            break;
        }
        s.step(n.id).unwrap();
        after.insert(s.tokens().len(), bits(s.logits()));
    }
    let truth = s.tokens().to_vec();

    let mut s = Session::new(m, N_CTX);
    s.prompt(prompt).unwrap();
    let mut g = Generator::new(gp.clone()).unwrap();
    let d = Box::new(Scripted {
        truth: truth.clone(),
    });
    let mut sp = Speculator::new(d, SpecConfig { n_max: 6, n_min: 0 });
    let mut checked = 0;
    loop {
        let n = sp.next(&mut s, &mut g, tok).unwrap();
        if n.finish.is_some() {
            break;
        }
        sp.commit(&mut s, &mut g, tok, n.id).unwrap();
        // After every round (rejected drafts rolled back): the sequence is
        // plain decoding's, and so are its logits, to the bit.
        let len = s.tokens().len();
        assert_eq!(s.tokens(), &truth[..len]);
        assert!(bits(s.logits()) == after[&len], "logits after {len} tokens");
        checked += 1;
    }
    assert!(sp.stats.drafted > sp.stats.accepted && sp.stats.accepted > 0);
    // The rolled-back cache goes on like plain decoding's: one more step.
    // (Not for a hybrid model: truncating it re-evaluates from its prompt
    // snapshot in the chunked prompt form, whose last bits differ.)
    if m.config.hybrid.is_none() {
        let len = s.tokens().len();
        s.truncate(len - 3);
        s.step(truth[len - 3]).unwrap();
        assert!(bits(s.logits()) == after[&(len - 2)], "after a truncation");
    }
    checked
}

/// The first three tokens sampled after `prompt` for each seed, plain
/// (`draft: None`) or drafted by `draft`.
fn first_tokens(
    m: &Model,
    tok: &Tokenizer,
    prompt: &[u32],
    mut draft: Option<&mut DraftModel<'_>>,
    seeds: std::ops::Range<u64>,
    accepted: &mut usize,
) -> Vec<Vec<u32>> {
    let mut s = Session::new(m, N_CTX);
    let cfg = SpecConfig { n_max: 4, n_min: 0 };
    seeds
        .map(|seed| {
            let gp = params(1.0, seed, 3);
            s.truncate(0);
            s.prompt(prompt).unwrap();
            let mut g = Generator::new(gp).unwrap();
            let mut sp = draft
                .as_deref_mut()
                .map(|d| Speculator::new(Box::new(d), cfg));
            let mut out = Vec::new();
            loop {
                let n = match sp.as_mut() {
                    Some(sp) => sp.next(&mut s, &mut g, tok).unwrap(),
                    None => g.next(tok, s.logits(), s.tokens(), true).unwrap(),
                };
                out.push(n.id);
                if n.finish.is_some() {
                    *accepted += sp.map_or(0, |sp| sp.stats.accepted);
                    return out;
                }
                match sp.as_mut() {
                    Some(sp) => sp.commit(&mut s, &mut g, tok, n.id).unwrap(),
                    None => {
                        s.step(n.id).unwrap();
                    }
                }
            }
        })
        .collect()
}

/// Two-sample chi-square statistic of homogeneity over the categories of
/// `a` and `b`, and its degrees of freedom. Categories with fewer than 10
/// observations in both samples together (expected count under 5 per
/// sample, where the chi-square approximation fails) are pooled into one,
/// which is dropped if it is itself that small.
fn chi_square(a: &[u32], b: &[u32]) -> (f64, usize) {
    use std::collections::BTreeMap;
    let mut counts: BTreeMap<u32, (f64, f64)> = BTreeMap::new();
    for &x in a {
        counts.entry(x).or_default().0 += 1.0;
    }
    for &x in b {
        counts.entry(x).or_default().1 += 1.0;
    }
    let mut bins = Vec::new();
    let mut rest = (0.0, 0.0);
    for (ca, cb) in counts.into_values() {
        if ca + cb >= 10.0 {
            bins.push((ca, cb));
        } else {
            rest.0 += ca;
            rest.1 += cb;
        }
    }
    if rest.0 + rest.1 >= 10.0 {
        bins.push(rest);
    }
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let stat = bins
        .iter()
        .map(|&(ca, cb)| {
            let pooled = (ca + cb) / (na + nb);
            let (ea, eb) = (na * pooled, nb * pooled);
            (ca - ea).powi(2) / ea + (cb - eb).powi(2) / eb
        })
        .sum();
    (stat, bins.len().saturating_sub(1))
}

/// The chi-square value exceeded with probability 0.001 at `df` degrees of
/// freedom (Wilson-Hilferty: (X/df)^(1/3) is nearly normal with mean
/// 1 - 2/(9 df) and variance 2/(9 df); z = 3.09 is the normal 0.999
/// quantile; within a few percent of the exact value from df = 3 on).
fn chi_square_critical(df: usize) -> f64 {
    let k = df as f64;
    let v = 2.0 / (9.0 * k);
    k * (1.0 - v + 3.09 * v.sqrt()).powi(3)
}

/// The distribution of the second and third sampled tokens (the ones
/// decided in verification rounds: the first comes from the prompt's
/// logits) with a draft model is that of plain sampling. Samples with
/// different seeds on each side (so this is a real two-sample test, not a
/// comparison of identical draws); fixed seeds make it deterministic. At
/// the 0.001 level a correct implementation fails one check in a thousand
/// seed sets; a wrong acceptance rule shifts mass toward the draft's
/// choices by far more, as the control shows: emitting the draft's
/// proposal whenever one is made ("accept every draft") is rejected.
#[test]
fn sampled_distribution_matches_plain_sampling() {
    const N: u64 = 1500;
    let p1 = fixture("tiny-q1_0.gguf");
    let (target, same) = (load(&p1, 2), load(&p1, 2));
    let tok = tokenizer(&p1);
    let prompt = tok.encode("Once upon a time", true, true);
    // The model drafting for itself proposes its greedy token: accepted
    // about as often as the target samples it (tiny-q2_0's proposals are
    // almost never what tiny-q1_0 samples, which would test only the
    // rejection path).
    let mut draft = DraftModel::new(&same, N_CTX, 0.0).unwrap();
    let mut accepted = 0;
    let plain = first_tokens(&target, &tok, &prompt, None, 0..N, &mut accepted);
    let spec = first_tokens(
        &target,
        &tok,
        &prompt,
        Some(&mut draft),
        N..2 * N,
        &mut accepted,
    );
    // Both paths of the rule are exercised: accepted drafts, and the
    // draws after a rejection.
    eprintln!("accepted drafts: {accepted} in {N} runs");
    assert!(accepted > 50 && accepted < 2 * N as usize - 50);
    for pos in [1, 2] {
        let a: Vec<u32> = plain.iter().map(|t| t[pos]).collect();
        let b: Vec<u32> = spec.iter().map(|t| t[pos]).collect();
        let (stat, df) = chi_square(&a, &b);
        let crit = chi_square_critical(df);
        eprintln!(
            "token {}: chi2 {stat:.1}, df {df}, critical {crit:.1}",
            pos + 1
        );
        assert!(df >= 3, "too few categories to test");
        assert!(
            stat < crit,
            "token {}: chi2 {stat:.1} >= {crit:.1}",
            pos + 1
        );
    }
    // Control: the second token as "accept every draft" would emit it.
    let mut broken = Vec::new();
    for t in &spec {
        let mut h = prompt.clone();
        h.push(t[0]);
        let mut d = Vec::new();
        draft.draft(&h, 1, &mut d).unwrap();
        broken.push(d.first().copied().unwrap_or(t[1]));
    }
    let a: Vec<u32> = plain.iter().map(|t| t[1]).collect();
    let (stat, df) = chi_square(&a, &broken);
    eprintln!("control: chi2 {stat:.1}, df {df}");
    assert!(
        stat > chi_square_critical(df.max(1)),
        "the test cannot tell"
    );
}

/// The synthetic qwen35 models (tests/qwen35/gen.rs; the real Qwen
/// vocabulary): each with its tokenizer.
fn qwen35_models() -> Vec<(&'static str, Model, Tokenizer)> {
    gen::MODELS
        .iter()
        .map(|&(name, ty, tied)| {
            let f = GgufFile::from_bytes(gen::build(ty, tied)).unwrap();
            let tok = shohin_engine::vocab::load_tokenizer(&f).unwrap();
            let cpu = shohin_engine::backend::cpu::CpuBackend::new(2).unwrap();
            (name, Model::load(f, Box::new(cpu)).unwrap(), tok)
        })
        .collect()
}

/// A hybrid (qwen35) target: its recurrent state cannot drop tokens, so
/// drafts are verified token by token from a checkpoint and a rejection
/// re-evaluates the kept tokens (session/verify.rs). Every model type,
/// greedy and seeded sampling: after every round (scripted drafts, some
/// kept, some rejected) the sequence and its logits are plain decoding's
/// to the bit; and with a qwen3 draft model (the tiny Q1_0 model, same
/// vocabulary, whose drafts these random models reject) the output is
/// plain decoding's.
#[test]
fn hybrid_targets_speculate_exactly() {
    let draft_path = fixture("tiny-q1_0.gguf");
    let draft = load(&draft_path, 2);
    for (name, m, tok) in qwen35_models() {
        let prompt = gen::prompt(3, 40);
        for p in [params(0.0, 1, 40), params(0.9, 7, 40)] {
            let t = p.sampling.temperature;
            let checked = rollback_matches_plain(&m, &tok, &prompt, &p);
            eprintln!("{name} t={t}: {checked} rounds checked bit for bit");
            assert!(checked > 8, "{name}");
            let want = plain(&m, &tok, &prompt, &p);
            let d = Box::new(DraftModel::new(&draft, N_CTX, 0.0).unwrap());
            let (got, st) = speculative(&m, &tok, &prompt, &p, d, 4);
            assert_eq!(got, want, "{name}: qwen3 draft, temperature {t}");
            eprintln!("{name} t={t}: draft model {st:?}");
            assert!(st.drafted > 0);
        }
    }
}

/// A hybrid model cannot be the draft: its own state would have to follow
/// the target's rolled-back tokens. A clear error.
#[test]
fn a_hybrid_draft_is_refused() {
    let (_, ty, tied) = gen::MODELS[0];
    let f = GgufFile::from_bytes(gen::build(ty, tied)).unwrap();
    let cpu = shohin_engine::backend::cpu::CpuBackend::new(1).unwrap();
    let m = Model::load(f, Box::new(cpu)).unwrap();
    let e = DraftModel::new(&m, 64, 0.0).unwrap_err().to_string();
    assert!(e.contains("the draft is a hybrid"), "{e}");
}
