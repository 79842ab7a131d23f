//! Per-request LoRA adapters in the continuous-batching engine: requests
//! with different adapter sets, interleaved, produce exactly what each
//! produces alone with its set; a slot's rows are not reused under another
//! set; the sets take turns; bad sets are refused at submission.

mod common;
use common::start_engine as setup;
#[path = "lora/gen.rs"]
#[allow(dead_code)] // fnv64 is for the goldens
mod gen;

use common::*;
use shohin_engine::generate::{GenParams, Generator};
use shohin_engine::lora::{ActiveLora, LoraAdapter};
use shohin_engine::model::Model;
use shohin_engine::scheduler::{EngineConfig, Event, Request, SubmitError, Task, Usage};
use shohin_engine::session::Session;
use shohin_gguf::{GgmlType, GgufFile, GgufWriter, Value};
use shohin_tokenizer::Tokenizer;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedReceiver;

fn tiny() -> std::path::PathBuf {
    fixture("tiny-q1_0.gguf")
}

/// Two different adapters for the tiny model (the generator of
/// tests/lora.rs at two strengths).
fn adapters(path: &std::path::Path) -> (Arc<LoraAdapter>, Arc<LoraAdapter>) {
    let base = GgufFile::open(path).unwrap();
    let make = |amp_b: f32, label: &str| {
        let spec = gen::Spec {
            layers: true,
            embd_output: true,
            ty: GgmlType::F16,
            amp_a: 1.0,
            amp_b,
        };
        let f = GgufFile::from_bytes(gen::adapter(&base, &spec)).unwrap();
        Arc::new(LoraAdapter::from_gguf(&f, label).unwrap())
    };
    (make(0.05, "a"), make(0.03, "b"))
}

fn on(a: &Arc<LoraAdapter>, scale: f32) -> ActiveLora {
    ActiveLora {
        adapter: a.clone(),
        scale,
    }
}

/// [`common::gen_params`] with the chosen tokens' log-probabilities.
fn params(temp: f32, seed: u64, max: usize) -> GenParams {
    GenParams {
        logprobs: Some(0),
        ..common::gen_params(temp, seed, max)
    }
}

fn gen_req(prompt: &[u32], p: GenParams, lora: Vec<ActiveLora>) -> Request {
    Request {
        prompt: prompt.to_vec(),
        task: Task::Generate { params: p, n: 1 },
        lora,
    }
}

/// (ids, logprob bits of each, usage) of a one-choice request.
type Out = (Vec<u32>, Vec<u32>, Usage);

fn collect(mut rx: UnboundedReceiver<Event>) -> Out {
    let (mut ids, mut lps) = (Vec::new(), Vec::new());
    loop {
        match rx.blocking_recv().expect("Done before the channel closes") {
            Event::Token { next, .. } => {
                ids.push(next.id);
                lps.push(next.logprob.expect("asked for logprobs").logprob.to_bits());
            }
            Event::Done(u) => return (ids, lps, u),
            e => panic!("unexpected {e:?}"),
        }
    }
}

/// The same generation by a plain Session with `set` active.
fn alone(m: &Model, tok: &Tokenizer, prompt: &[u32], p: GenParams, set: &[ActiveLora]) -> Out {
    m.set_adapters(set.to_vec()).unwrap();
    let mut s = Session::new(m, 128);
    s.prompt(prompt).unwrap();
    let mut g = Generator::new(p).unwrap();
    let (mut ids, mut lps) = (Vec::new(), Vec::new());
    loop {
        let room = s.tokens().len() < s.n_ctx();
        let n = g.next(tok, s.logits(), s.tokens(), room).unwrap();
        ids.push(n.id);
        lps.push(n.logprob.unwrap().logprob.to_bits());
        if n.finish.is_some() {
            return (ids, lps, Usage::default());
        }
        s.step(n.id).unwrap();
    }
}

#[test]
fn interleaved_adapter_sets_equal_each_alone() {
    let path = tiny();
    let (a, b) = adapters(&path);
    let solo = load(&path, 2);
    let (e, tok) = setup(&path, EngineConfig::new(4, 128));
    let sets: Vec<Vec<ActiveLora>> = vec![
        Vec::new(),
        vec![on(&a, 1.0)],
        vec![on(&a, 0.5)],
        vec![on(&a, 1.0), on(&b, -0.7)],
    ];
    let texts = ["The quick brown fox", "Once upon a time", "1, 2, 3,"];
    // Every set with greedy and seeded sampling, more requests than slots:
    // steps alternate between sets while others queue.
    let mut cases = Vec::new();
    for (k, set) in sets.iter().enumerate() {
        for (j, t) in texts.iter().enumerate() {
            let temp = if j == 1 { 0.8 } else { 0.0 };
            let p = params(temp, 3 + j as u64, 10);
            cases.push((tok.encode(t, true, true), p, set.clone(), k));
        }
    }
    let rxs: Vec<_> = cases
        .iter()
        .map(|(pr, p, set, _)| e.submit(gen_req(pr, p.clone(), set.clone())).unwrap())
        .collect();
    let got: Vec<Out> = rxs.into_iter().map(collect).collect();
    let mut first_prompt = Vec::new();
    for ((pr, p, set, k), g) in cases.iter().zip(&got) {
        let want = alone(&solo, &tok, pr, p.clone(), set);
        assert_eq!(
            (&g.0, &g.1),
            (&want.0, &want.1),
            "set {k}, prompt {pr:?}: batched != alone (ids, logprob bits)"
        );
        if pr == &cases[0].0 {
            first_prompt.push(want.1.clone());
        }
    }
    // The sets must matter, or the comparison above proves nothing.
    for i in 0..first_prompt.len() {
        for j in i + 1..first_prompt.len() {
            assert_ne!(first_prompt[i], first_prompt[j], "sets {i} and {j} agree");
        }
    }
}

#[test]
fn prefix_reuse_stays_within_an_adapter_set() {
    let path = tiny();
    let (a, _) = adapters(&path);
    let solo = load(&path, 2);
    // Two slots: a busy slot's prefix may be copied, so both the free-slot
    // and the donor paths are exercised.
    let (e, tok) = setup(&path, EngineConfig::new(2, 128));
    let prompt = tok.encode("The capital of France is Paris, and", true, true);
    let p = params(0.0, 1, 6);
    let run = |set: Vec<ActiveLora>| collect(e.submit(gen_req(&prompt, p.clone(), set)).unwrap());
    let with_a = vec![on(&a, 1.0)];
    let first = run(with_a.clone());
    assert_eq!(first.2.cached_tokens, 0);
    // The same prompt without the adapter: no row of the adapter's run.
    let base = run(Vec::new());
    assert_eq!(
        base.2.cached_tokens, 0,
        "reused rows computed with the adapter"
    );
    let want = alone(&solo, &tok, &prompt, p.clone(), &[]);
    assert_eq!((&base.0, &base.1), (&want.0, &want.1));
    // Within a set, the prefix is reused (and scale 0 is no adapter).
    let again = run(with_a.clone());
    assert!(again.2.cached_tokens > 0, "{:?}", again.2);
    assert_eq!((&again.0, &again.1), (&first.0, &first.1));
    let zero = run(vec![on(&a, 0.0)]);
    assert!(zero.2.cached_tokens > 0, "{:?}", zero.2);
    assert_eq!((&zero.0, &zero.1), (&base.0, &base.1));
    // Another scale is another set.
    let half = run(vec![on(&a, 0.5)]);
    assert_eq!(half.2.cached_tokens, 0, "reused rows of another scale");
    let want = alone(&solo, &tok, &prompt, p.clone(), &[on(&a, 0.5)]);
    assert_eq!((&half.0, &half.1), (&want.0, &want.1));
}

#[test]
fn adapter_sets_take_turns() {
    let path = tiny();
    let (a, _) = adapters(&path);
    let (e, tok) = setup(&path, EngineConfig::new(2, 128));
    let prompt = tok.encode("Hello", true, true);
    let mut long = params(0.0, 1, 60);
    long.ignore_eos = true;
    let mut rx_long = e.submit(gen_req(&prompt, long, Vec::new())).unwrap();
    // Wait until the long one decodes, then start a short one with an
    // adapter: it must not wait for the long one to end.
    assert!(matches!(rx_long.blocking_recv(), Some(Event::Token { .. })));
    let short = collect(
        e.submit(gen_req(&prompt, params(0.0, 1, 3), vec![on(&a, 1.0)]))
            .unwrap(),
    );
    assert!(!short.0.is_empty());
    let mut long_tokens = 1;
    while let Ok(ev) = rx_long.try_recv() {
        match ev {
            Event::Token { .. } => long_tokens += 1,
            e => panic!("the long request ended before the short one: {e:?}"),
        }
    }
    assert!(long_tokens < 60, "{long_tokens}");
}

#[test]
fn bad_adapter_sets_are_refused_at_submit() {
    let path = tiny();
    let (a, _) = adapters(&path);
    let (e, tok) = setup(&path, EngineConfig::new(1, 64));
    let prompt = tok.encode("Hi", true, true);
    let r = e.submit(gen_req(&prompt, params(0.0, 1, 2), vec![on(&a, f32::NAN)]));
    assert!(
        matches!(r, Err(SubmitError::Lora { index: 0, .. })),
        "{r:?}"
    );
    // An adapter for another model: a pair for a tensor it lacks.
    let other = {
        let mut w = GgufWriter::new(vec![
            ("general.architecture".into(), Value::String("qwen3".into())),
            ("general.type".into(), Value::String("adapter".into())),
            ("adapter.type".into(), Value::String("lora".into())),
        ]);
        for (suffix, dims) in [("lora_a", vec![64, 2]), ("lora_b", vec![2, 64])] {
            let bytes = vec![0u8; 64 * 2 * 4];
            w.add_tensor(
                format!("blk.99.attn_q.weight.{suffix}"),
                dims,
                GgmlType::F32,
                bytes,
            );
        }
        let mut out = Vec::new();
        w.write_to(&mut out).unwrap();
        let f = GgufFile::from_bytes(out).unwrap();
        Arc::new(LoraAdapter::from_gguf(&f, "other").unwrap())
    };
    let r = e.submit(gen_req(
        &prompt,
        params(0.0, 1, 2),
        vec![on(&a, 1.0), on(&other, 1.0)],
    ));
    assert!(
        matches!(r, Err(SubmitError::Lora { index: 1, .. })),
        "{r:?}"
    );
}
