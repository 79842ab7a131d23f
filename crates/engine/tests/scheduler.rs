//! The continuous-batching engine against single-sequence generation:
//! requests batched together produce exactly what each produces alone;
//! prefix reuse, forked choices, cancellation, queue limits, embeddings.

mod common;
use common::*;
use common::{gen_params as params, start_engine as setup};
use shohin_engine::generate::{FinishReason, GenParams, Generator};
use shohin_engine::model::Model;
use shohin_engine::scheduler::{
    Engine, EngineConfig, Event, Pooling, Request, SubmitError, Task, Usage,
};
use shohin_engine::session::Session;
use shohin_tokenizer::Tokenizer;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;

/// What one request returned: per choice (ids, text, finish), and usage.
struct Out {
    choices: Vec<(Vec<u32>, String, Option<FinishReason>)>,
    usage: Usage,
}

fn collect(mut rx: UnboundedReceiver<Event>, n: usize) -> Out {
    let mut choices = vec![(Vec::new(), String::new(), None); n];
    loop {
        match rx.blocking_recv().expect("Done before the channel closes") {
            Event::Token { index, next } => {
                let c = &mut choices[index];
                assert!(c.2.is_none(), "a token after the finish");
                c.0.push(next.id);
                c.1.push_str(&next.text);
                c.2 = next.finish;
            }
            Event::Done(usage) => return Out { choices, usage },
            e => panic!("unexpected {e:?}"),
        }
    }
}

/// The same generation by a plain Session (the `run` loop).
fn alone(m: &Model, tok: &Tokenizer, prompt: &[u32], p: GenParams) -> (Vec<u32>, String) {
    let mut s = Session::new(m, 256);
    s.prompt(prompt).unwrap();
    let mut g = Generator::new(p).unwrap();
    let (mut ids, mut text) = (Vec::new(), String::new());
    loop {
        let room = s.tokens().len() < s.n_ctx();
        let n = g.next(tok, s.logits(), s.tokens(), room).unwrap();
        ids.push(n.id);
        text.push_str(&n.text);
        if n.finish.is_some() {
            return (ids, text);
        }
        s.step(n.id).unwrap();
    }
}

fn wait_idle(e: &Engine) {
    let t = Instant::now();
    while e.stats().active_slots != 0 || e.stats().kv_cells_used != 0 {
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", e.stats());
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn batched_requests_equal_each_alone_on_the_real_model() {
    let path = real_model();
    let (e, tok) = setup(&path, EngineConfig::new(4, 256));
    let m = e.model().clone();
    let texts = [
        "def fibonacci(n):",
        "The capital of France is",
        "// A C function that reverses a string\n",
        "Once upon a time, in a land far away,",
        "import numpy as np\n",
        "SELECT name FROM users WHERE",
    ];
    // Greedy and seeded sampling, more requests than slots (some queue).
    let reqs: Vec<(Vec<u32>, GenParams)> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let temp = if i % 2 == 0 { 0.0 } else { 0.9 };
            (tok.encode(t, true, true), params(temp, 7 + i as u64, 12))
        })
        .collect();
    let rxs: Vec<_> = reqs
        .iter()
        .map(|(p, g)| {
            e.submit(Request {
                lora: Vec::new(),
                prompt: p.clone(),
                task: Task::Generate {
                    params: g.clone(),
                    n: 1,
                },
            })
            .unwrap()
        })
        .collect();
    for ((p, g), rx) in reqs.iter().zip(rxs) {
        let out = collect(rx, 1);
        let (ids, text) = alone(&m, &tok, p, g.clone());
        assert_eq!(out.choices[0].0, ids, "batched ids differ from alone");
        assert_eq!(out.choices[0].1, text);
        assert_eq!(out.usage.prompt_tokens, p.len());
        assert_eq!(out.usage.completion_tokens, ids.len());
    }
    wait_idle(&e);
}

#[test]
fn a_repeated_prefix_is_reused_and_gives_the_same_output() {
    let path = shared().join("fixtures/tiny-q1_0.gguf");
    let (e, tok) = setup(&path, EngineConfig::new(2, 256));
    let m = e.model().clone();
    let sys = tok.encode(
        "You are a helpful assistant. Answer briefly and well.",
        true,
        true,
    );
    let mut p2 = sys.clone();
    p2.extend(tok.encode(" What is two plus two?", false, false));
    let run = |p: &[u32]| {
        let rx = e
            .submit(Request {
                lora: Vec::new(),
                prompt: p.to_vec(),
                task: Task::Generate {
                    params: params(0.0, 1, 8),
                    n: 1,
                },
            })
            .unwrap();
        collect(rx, 1)
    };
    let first = run(&sys);
    assert_eq!(first.usage.cached_tokens, 0);
    let second = run(&p2);
    assert_eq!(
        second.usage.cached_tokens,
        sys.len(),
        "the shared prefix is reused"
    );
    assert_eq!(
        second.choices[0].0,
        alone(&m, &tok, &p2, params(0.0, 1, 8)).0
    );
    // The same prompt again: everything but the last token is reused.
    let third = run(&p2);
    assert_eq!(third.usage.cached_tokens, p2.len() - 1);
    assert_eq!(third.choices[0].0, second.choices[0].0);
}

#[test]
fn choices_fork_after_the_prompt_with_their_own_seeds() {
    let path = shared().join("fixtures/tiny-q1_0.gguf");
    let (e, tok) = setup(&path, EngineConfig::new(3, 128));
    let m = e.model().clone();
    let p = tok.encode("Tell me a story about a dragon", true, true);
    let rx = e
        .submit(Request {
            lora: Vec::new(),
            prompt: p.clone(),
            task: Task::Generate {
                params: params(1.0, 42, 10),
                n: 3,
            },
        })
        .unwrap();
    let out = collect(rx, 3);
    for (k, c) in out.choices.iter().enumerate() {
        let want = alone(&m, &tok, &p, params(1.0, 42 + k as u64, 10));
        assert_eq!(c.0, want.0, "choice {k}");
        assert!(c.2.is_some());
    }
    assert_eq!(
        out.usage.completion_tokens,
        out.choices.iter().map(|c| c.0.len()).sum::<usize>()
    );
    wait_idle(&e);
    let e4 = e.submit(Request {
        lora: Vec::new(),
        prompt: p,
        task: Task::Generate {
            params: params(1.0, 42, 10),
            n: 4,
        },
    });
    assert!(matches!(
        e4,
        Err(SubmitError::TooManyChoices { n: 4, n_slots: 3 })
    ));
}

#[test]
fn a_dropped_receiver_cancels_and_frees_the_slot() {
    let path = shared().join("fixtures/tiny-q1_0.gguf");
    let (e, tok) = setup(&path, EngineConfig::new(1, 512));
    let p = tok.encode("Count forever:", true, true);
    let mut rx = e
        .submit(Request {
            lora: Vec::new(),
            prompt: p.clone(),
            task: Task::Generate {
                params: params(0.0, 1, 100_000),
                n: 1,
            },
        })
        .unwrap();
    for _ in 0..3 {
        assert!(matches!(rx.blocking_recv(), Some(Event::Token { .. })));
    }
    assert_eq!(e.stats().active_slots, 1);
    drop(rx);
    wait_idle(&e);
    // The slot serves the next request.
    let rx = e
        .submit(Request {
            lora: Vec::new(),
            prompt: p,
            task: Task::Generate {
                params: params(0.0, 1, 4),
                n: 1,
            },
        })
        .unwrap();
    let out = collect(rx, 1);
    assert_eq!(out.choices[0].2, Some(FinishReason::Length));
    assert!(out.usage.cached_tokens > 0);
}

#[test]
fn a_full_queue_refuses_and_bad_requests_are_refused_at_submit() {
    let path = shared().join("fixtures/tiny-q1_0.gguf");
    let mut cfg = EngineConfig::new(1, 64);
    cfg.max_queue = 1;
    let (e, tok) = setup(&path, cfg);
    let p = tok.encode("Hello", true, true);
    let long = |max| Request {
        lora: Vec::new(),
        prompt: p.clone(),
        task: Task::Generate {
            params: params(0.0, 1, max),
            n: 1,
        },
    };
    let mut a = e.submit(long(50)).unwrap();
    // Wait until `a` runs, so the next one waits in the queue.
    assert!(matches!(a.blocking_recv(), Some(Event::Token { .. })));
    let b = e.submit(long(5)).unwrap();
    assert!(matches!(
        e.submit(long(5)),
        Err(SubmitError::QueueFull { .. })
    ));
    drop((a, b));
    wait_idle(&e);
    assert!(matches!(
        e.submit(Request {
            lora: Vec::new(),
            prompt: vec![1; 64],
            task: Task::Generate {
                params: params(0.0, 1, 5),
                n: 1
            }
        }),
        Err(SubmitError::PromptTooLong {
            n_prompt: 64,
            n_ctx: 64
        })
    ));
    assert!(matches!(
        e.submit(long(5).with_prompt(vec![])),
        Err(SubmitError::EmptyPrompt)
    ));
    assert!(matches!(
        e.submit(long(5).with_prompt(vec![10_000_000])),
        Err(SubmitError::TokenOutOfVocab { .. })
    ));
    let mut bad = params(-1.0, 1, 5);
    bad.sampling.top_p = 0.0;
    assert!(matches!(
        e.submit(Request {
            lora: Vec::new(),
            prompt: p.clone(),
            task: Task::Generate { params: bad, n: 1 }
        }),
        Err(SubmitError::Sampler(_))
    ));
}

trait WithPrompt {
    fn with_prompt(self, p: Vec<u32>) -> Self;
}
impl WithPrompt for Request {
    fn with_prompt(mut self, p: Vec<u32>) -> Self {
        self.prompt = p;
        self
    }
}

#[test]
fn stop_strings_end_the_text_before_them() {
    let path = shared().join("fixtures/tiny-q1_0.gguf");
    let (e, tok) = setup(&path, EngineConfig::new(1, 128));
    let m = e.model().clone();
    let p = tok.encode("The", true, true);
    let (_, free) = alone(&m, &tok, &p, params(0.0, 1, 24));
    // A stop string from the middle of the free-running text.
    let chars: Vec<char> = free.chars().collect();
    assert!(chars.len() >= 8, "{free:?}");
    let stop: String = chars[chars.len() / 2..chars.len() / 2 + 3].iter().collect();
    let mut gp = params(0.0, 1, 24);
    gp.stop = vec![stop.clone()];
    let rx = e
        .submit(Request {
            lora: Vec::new(),
            prompt: p,
            task: Task::Generate { params: gp, n: 1 },
        })
        .unwrap();
    let out = collect(rx, 1);
    let text = &out.choices[0].1;
    assert_eq!(out.choices[0].2, Some(FinishReason::Stop));
    assert!(!text.contains(&stop), "{text:?} contains {stop:?}");
    assert_eq!(*text, free[..free.find(&stop).unwrap()]);
}

#[test]
fn embeddings_pool_the_final_hidden_states() {
    let path = shared().join("fixtures/tiny-q1_0.gguf");
    let (e, tok) = setup(&path, EngineConfig::new(2, 128));
    let m = e.model().clone();
    let p = tok.encode("An apple a day keeps the doctor away", true, true);
    // The hidden states straight from the model.
    let mut cache = m.new_cache(128);
    let mut hidden = Vec::new();
    m.forward_batch(&mut [shohin_engine::model::Span {
        cache: &mut cache,
        tokens: &p,
        logits: None,
        hidden: Some(&mut hidden),
    }])
    .unwrap();
    let d = m.config.n_embd;
    assert_eq!(hidden.len(), p.len() * d);
    for pooling in [Pooling::Mean, Pooling::Last, Pooling::Cls] {
        let mut want: Vec<f64> = match pooling {
            Pooling::Mean => (0..d)
                .map(|j| {
                    (0..p.len())
                        .map(|t| f64::from(hidden[t * d + j]))
                        .sum::<f64>()
                })
                .collect(),
            Pooling::Last => hidden[(p.len() - 1) * d..]
                .iter()
                .map(|&v| v.into())
                .collect(),
            Pooling::Cls => hidden[..d].iter().map(|&v| v.into()).collect(),
        };
        let norm = want.iter().map(|v| v * v).sum::<f64>().sqrt();
        want.iter_mut().for_each(|v| *v /= norm);
        let mut rx = e
            .submit(Request {
                lora: Vec::new(),
                prompt: p.clone(),
                task: Task::Embed { pooling },
            })
            .unwrap();
        let Some(Event::Embedding(got)) = rx.blocking_recv() else {
            panic!("an embedding first")
        };
        assert!(matches!(rx.blocking_recv(), Some(Event::Done(_))));
        assert_eq!(got.len(), d);
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (f64::from(*a) - b).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-5, "{pooling:?}: {worst}");
    }
}

#[test]
fn a_long_prompt_is_chunked_between_decode_steps() {
    let path = shared().join("fixtures/tiny-q1_0.gguf");
    let (e, tok) = setup(&path, EngineConfig::new(2, 2048));
    let short = tok.encode("Hello", true, true);
    let mut a = e
        .submit(Request {
            lora: Vec::new(),
            prompt: short,
            task: Task::Generate {
                params: params(0.0, 1, 100_000),
                n: 1,
            },
        })
        .unwrap();
    assert!(matches!(a.blocking_recv(), Some(Event::Token { .. })));
    // 1000 prompt tokens: at most `n_prefill_busy` (128) per step while
    // `a` decodes, so `a` keeps streaming during the prefill.
    let long: Vec<u32> = (0..1000).map(|i| 1000 + i % 5000).collect();
    let mut b = e
        .submit(Request {
            lora: Vec::new(),
            prompt: long,
            task: Task::Generate {
                params: params(0.0, 1, 1),
                n: 1,
            },
        })
        .unwrap();
    assert!(matches!(b.blocking_recv(), Some(Event::Token { .. })));
    let mut during = 0;
    while let Ok(ev) = a.try_recv() {
        if matches!(ev, Event::Token { .. }) {
            during += 1;
        }
    }
    // ceil(1000 / 128) = 8 prefill steps, each with a decode token of `a`.
    assert!(
        during >= 7,
        "only {during} tokens streamed during the prefill"
    );
}
