//! Speculative decoding in the continuous-batching engine (`serve
//! --lookup`, `serve -md`, scheduler/speculate.rs): concurrent requests
//! give exactly what they give without it (ids, text, logprobs, finish),
//! greedy and seeded sampling, with stop strings, a token limit, a small
//! batch and a context shift; on repetitive text lookup drafts are
//! accepted, and a model drafting for itself has every draft accepted.

mod common;
#[path = "qwen35/gen.rs"]
#[allow(dead_code)] // only `build`, `prompt` and `MODELS` are used here
mod gen;
use common::{gen_params as params, *};
use shohin_engine::context_shift::Keep;
use shohin_engine::generate::{FinishReason, GenParams, TokenLogprob};
use shohin_engine::model::Model;
use shohin_engine::scheduler::{
    DraftSource, DraftUsage, Engine, EngineConfig, Event, Request, Speculation, Task, Usage,
};
use shohin_engine::speculative::SpecConfig;
use shohin_tokenizer::Tokenizer;
use std::sync::Arc;

type Choice = (
    Vec<u32>,
    String,
    Vec<Option<TokenLogprob>>,
    Option<FinishReason>,
);

/// What each request returned: its one choice and its usage.
fn run_all(
    m: &Arc<Model>,
    tok: &Arc<Tokenizer>,
    cfg: EngineConfig,
    reqs: &[(Vec<u32>, GenParams)],
) -> Vec<(Choice, Usage)> {
    let e = Engine::start(m.clone(), tok.clone(), cfg);
    // All submitted before any is read: they run concurrently.
    let rxs: Vec<_> = reqs
        .iter()
        .map(|(p, g)| {
            e.submit(Request {
                prompt: p.clone(),
                task: Task::Generate {
                    params: g.clone(),
                    n: 1,
                },
                lora: Vec::new(),
            })
            .unwrap()
        })
        .collect();
    rxs.into_iter()
        .map(|mut rx| {
            let mut c: Choice = (Vec::new(), String::new(), Vec::new(), None);
            loop {
                match rx.blocking_recv().expect("Done before the channel closes") {
                    Event::Token { next, .. } => {
                        assert!(c.3.is_none(), "a token after the finish");
                        c.0.push(next.id);
                        c.1.push_str(&next.text);
                        c.2.push(next.logprob);
                        c.3 = next.finish;
                    }
                    Event::Done(u) => return (c, u),
                    ev => panic!("unexpected {ev:?}"),
                }
            }
        })
        .collect()
}

fn lookup() -> DraftSource {
    DraftSource::Lookup { ngram: 4 }
}

/// `model` drafting, for every token whatever its probability.
fn draft_model(model: &Arc<Model>) -> DraftSource {
    DraftSource::Model {
        model: model.clone(),
        p_min: 0.0,
    }
}

/// The same requests with and without drafts from `source`: equal
/// outputs. Returns the draft counts of each request with it.
fn compare(
    m: &Arc<Model>,
    tok: &Arc<Tokenizer>,
    cfg: EngineConfig,
    source: DraftSource,
    reqs: &[(Vec<u32>, GenParams)],
) -> Vec<DraftUsage> {
    let plain = run_all(m, tok, cfg.clone(), reqs);
    let mut with = cfg;
    with.speculation = Some(Speculation {
        source,
        draft: SpecConfig::default(),
    });
    let spec = run_all(m, tok, with, reqs);
    let mut counts = Vec::new();
    for (i, ((a, ua), (b, ub))) in plain.iter().zip(&spec).enumerate() {
        assert_eq!(a.0, b.0, "request {i}: ids differ with drafts");
        assert_eq!(a.1, b.1, "request {i}: text differs");
        assert_eq!(a.2, b.2, "request {i}: logprobs differ");
        assert_eq!(a.3, b.3, "request {i}: finish differs");
        assert_eq!(ua.completion_tokens, ub.completion_tokens);
        assert_eq!(ua.draft, None, "no draft counts without speculation");
        let d = ub.draft.expect("draft counts with speculation");
        assert!(d.accepted <= d.drafted);
        counts.push(d);
    }
    counts
}

/// Text that copies itself: lookup drafts well.
const REPEAT: &str = "Copy the list exactly three times.\n\
    alpha, bravo, charlie, delta, echo, foxtrot, golf, hotel, india, juliet\n\
    alpha, bravo, charlie, delta, echo, foxtrot, golf, hotel, india, juliet\n";

fn requests(tok: &Tokenizer) -> Vec<(Vec<u32>, GenParams)> {
    let enc = |t: &str| tok.encode(t, true, true);
    let code =
        "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a - b\n\ndef mul(a, b):\n";
    let mut with_logprobs = params(0.0, 1, 40);
    with_logprobs.logprobs = Some(3);
    let mut with_stop = params(0.0, 2, 60);
    with_stop.stop = vec!["hotel".into()];
    vec![
        (enc(REPEAT), params(0.0, 0, 48)),
        (enc(code), with_logprobs),
        (enc(REPEAT), with_stop),
        // Seeded sampling: the same random draws in the same order.
        (enc(REPEAT), params(0.8, 42, 40)),
        (enc("The capital of France is"), params(0.0, 3, 16)),
    ]
}

/// Two slots of 96 positions, steps of 6 tokens (too few for every
/// draft), context shift on; two long generations of the repeating text
/// (greedy and sampled) that fill their slots and shift while drafting (no
/// span may cross a shift).
fn small_batch_with_shifts(tok: &Tokenizer) -> (EngineConfig, Vec<(Vec<u32>, GenParams)>) {
    let mut small = EngineConfig::new(2, 96);
    small.n_batch = 6;
    small.context_shift = Some(Keep::Tokens(4));
    let mut long = params(0.0, 0, 120);
    long.ignore_eos = true;
    let mut sampled = params(0.7, 9, 120);
    sampled.ignore_eos = true;
    let reqs = vec![
        (tok.encode(REPEAT, true, true), long),
        (tok.encode(REPEAT, true, true), sampled),
    ];
    (small, reqs)
}

#[test]
fn lookup_in_the_engine_changes_no_output_and_accepts_drafts() {
    let path = real_model();
    let f = shohin_gguf::GgufFile::open(&path).unwrap();
    let tok = Arc::new(shohin_engine::vocab::load_tokenizer(&f).unwrap());
    let m = Arc::new(load(&path, 2));
    let reqs = requests(&tok);

    // Five requests on four slots (one queues), default batching.
    let counts = compare(&m, &tok, EngineConfig::new(4, 512), lookup(), &reqs);
    eprintln!("draft counts: {counts:?}");
    let greedy = counts[0];
    assert!(greedy.drafted > 0, "nothing drafted on a repetitive prompt");
    assert!(greedy.accepted > 0, "no draft accepted: {greedy:?}");
    assert!(counts.iter().map(|d| d.accepted).sum::<usize>() > 0);

    // A batch too small for every draft, and slots that fill up and shift
    // while drafting (no span may cross the shift).
    let (small, reqs) = small_batch_with_shifts(&tok);
    let counts = compare(&m, &tok, small, lookup(), &reqs);
    eprintln!("draft counts (small batch, context shift): {counts:?}");
    assert!(counts[0].accepted > 0);
}

#[test]
fn a_draft_model_in_the_engine_changes_no_output() {
    let path = real_model();
    let f = shohin_gguf::GgufFile::open(&path).unwrap();
    let tok = Arc::new(shohin_engine::vocab::load_tokenizer(&f).unwrap());
    let m = Arc::new(load(&path, 2));
    let reqs = requests(&tok);

    // The model drafting for itself: its greedy drafts are its own greedy
    // decisions, so a greedy request keeps every draft. Prompts are caught
    // up 8 tokens a step (several steps before the first draft), and five
    // requests on four slots: a slot's draft cache follows a new request.
    let mut cfg = EngineConfig::new(4, 512);
    cfg.n_prefill_busy = 8;
    let counts = compare(&m, &tok, cfg, draft_model(&m), &reqs);
    eprintln!("self-draft counts: {counts:?}");
    for (i, (d, (_, p))) in counts.iter().zip(&reqs).enumerate() {
        if p.sampling.temperature == 0.0 && p.stop.is_empty() {
            assert!(d.drafted > 0, "request {i} drafted nothing");
            // Only a finish (EOS) rejects drafts, the rest of its round's.
            assert!(
                d.drafted - d.accepted < SpecConfig::default().n_max,
                "request {i}: {d:?}"
            );
        }
    }

    // A poor draft (the tiny Q2_0 model, same vocabulary): drafts are
    // mostly rejected and rolled back, in a small batch and across a
    // context shift.
    let tiny = Arc::new(load(&fixture("tiny-q2_0.gguf"), 2));
    let (small, reqs) = small_batch_with_shifts(&tok);
    let counts = compare(&m, &tok, small, draft_model(&tiny), &reqs);
    eprintln!("tiny-draft counts (small batch, context shift): {counts:?}");
    assert!(counts.iter().all(|d| d.drafted > 0));
}

/// A hybrid (qwen35) model in the engine: its verified spans run token by
/// token from a checkpoint of the recurrent state, and a rejection goes
/// back to it and evaluates the kept tokens again (Slot::truncate_verified).
/// A qwen3 draft (the tiny Q1_0 model, same vocabulary) for the synthetic
/// Q1_0 and Q2_0 qwen35 models: outputs equal plain decoding's, greedy and
/// seeded sampling, three requests on two slots.
#[test]
fn a_hybrid_model_speculates_in_the_engine() {
    let tiny = Arc::new(load(&fixture("tiny-q1_0.gguf"), 2));
    for &(name, ty, tied) in &gen::MODELS[2..] {
        let f = shohin_gguf::GgufFile::from_bytes(gen::build(ty, tied)).unwrap();
        let tok = Arc::new(shohin_engine::vocab::load_tokenizer(&f).unwrap());
        let cpu = shohin_engine::backend::cpu::CpuBackend::new(2).unwrap();
        let m = Arc::new(Model::load(f, Box::new(cpu)).unwrap());
        let mut greedy = params(0.0, 0, 24);
        greedy.ignore_eos = true;
        let mut sampled = params(0.9, 5, 24);
        sampled.ignore_eos = true;
        let reqs = vec![
            (gen::prompt(1, 20), greedy.clone()),
            (gen::prompt(2, 9), sampled),
            (gen::prompt(1, 20), greedy),
        ];
        let counts = compare(
            &m,
            &tok,
            EngineConfig::new(2, 256),
            draft_model(&tiny),
            &reqs,
        );
        eprintln!("{name}: draft counts {counts:?}");
        assert!(counts.iter().all(|d| d.drafted > 0), "{name}");
    }
}
