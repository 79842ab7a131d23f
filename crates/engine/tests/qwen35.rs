//! qwen35 (Qwen3.5 hybrid: Gated DeltaNet + gated attention, Bonsai 2's
//! architecture) against llama.cpp, on synthetic models that `qwen35/gen.rs`
//! writes from a fixed seed (F16 with tied output; Q8_0, and Bonsai 2's
//! Q1_0 and g64 Q2_0, untied; the real Qwen vocabulary).
//! `tests/data/qwen35_goldens.json` holds llama.cpp's logits on the same
//! bytes from a native (AVX-512) build of the peer,
//! `qwen35_goldens_avx2.json` from an AVX2-only build of the same source
//! (`tests/data/gen_qwen35_goldens.sh` writes both). Every case is checked
//! against both.
//!
//! Tolerance: every llama.cpp top-20 logit within [`TOL`] ([`TOL_LOW_BIT`]
//! for Q1_0 and Q2_0), and the same greedy token wherever llama.cpp's top-2
//! gap is at least [`MIN_GAP`]. The engine is teacher-forced with
//! llama.cpp's greedy ids.

mod common;
#[path = "qwen35/gen.rs"]
mod gen;

use common::{argmax, load_error_after_edit, set, Tensors};
use serde_json::Value as Json;
use shohin_engine::backend::cpu::CpuBackend;
use shohin_engine::model::Model;
use shohin_engine::session::Session;
use shohin_gguf::{GgufFile, Value, ValueType};

const TOL: f64 = 0.1;
const MIN_GAP: f64 = 0.02;

/// The Q1_0 and Q2_0 models' logits have std ~3 (Q8_0's ~1), and every
/// last-bit difference that moves a Q8_0 activation across a rounding
/// boundary moves them in proportion, more so over 300 tokens of DeltaNet
/// recurrence. llama.cpp does not agree with itself to 0.1 there: its AVX2
/// and AVX-512 builds, same source, same files, same greedy ids, differ by
/// (short / long / turn2) 0.147 / 0.075 / 0.158 on Q1_0 and 0 / 0.202 /
/// 0.165 on Q2_0 (their f32 vector ops sum in 8 and 16 lanes). shohin's
/// logits do not depend on the instruction set; measured against the
/// AVX-512 build 0 / 0.158 / 0.061 (Q1_0) and 0 / 0.130 / 0.165 (Q2_0),
/// against the AVX2 build 0.167 / 0.118 / 0.173 and 0 / 0.109 / 0. The
/// bound is llama.cpp's own spread between its two builds (0.202), rounded
/// down: shohin is held to agree with each build as well as the builds
/// agree with each other. Other measurements of the same noise: llama.cpp
/// token by token vs batched 0.058 (Q1_0) and 0.062 (Q2_0); shohin token by
/// token vs chunked 0.20 and 0.20.
const TOL_LOW_BIT: f64 = 0.2;

fn tol(model: &str) -> f64 {
    match model {
        "q1_0" | "q2_0" => TOL_LOW_BIT,
        _ => TOL,
    }
}

/// llama.cpp's goldens: (build, json) for the native (AVX-512) and the
/// AVX2-only build.
type Refs = Vec<(&'static str, Json)>;

fn goldens() -> Refs {
    let read = |f: &str| {
        let p = format!("{}/tests/data/{f}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    vec![
        ("avx512", read("qwen35_goldens.json")),
        ("avx2", read("qwen35_goldens_avx2.json")),
    ]
}

fn load(bytes: Vec<u8>) -> Model {
    let f = GgufFile::from_bytes(bytes).unwrap();
    Model::load(f, Box::new(CpuBackend::new(2).unwrap())).unwrap()
}

/// Each model, checked to be the very file both llama.cpp builds ran, with
/// its goldens from each build.
fn models() -> Vec<(&'static str, Model, Refs)> {
    let g = goldens();
    gen::MODELS
        .iter()
        .map(|&(name, ty, tied)| {
            let bytes = gen::build(ty, tied);
            let refs = g
                .iter()
                .map(|(build, g)| {
                    let want = g[name]["fnv64"].as_str().unwrap();
                    assert_eq!(
                        gen::fnv64(&bytes).to_string(),
                        want,
                        "{name}: the generator no longer writes the file of the {build} goldens"
                    );
                    (*build, g[name].clone())
                })
                .collect();
            (name, load(bytes), refs)
        })
        .collect()
}

fn ids(v: &Json) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// Compare `logits` with one golden step; returns the max |dlogit| over
/// llama.cpp's top 20.
fn compare(what: &str, tol: f64, logits: &[f32], step: &Json) -> f64 {
    let top = ids(&step["top_ids"]);
    let want: Vec<f64> = step["top_logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let mut max = 0.0f64;
    for (&id, &w) in top.iter().zip(&want) {
        let d = (f64::from(logits[id as usize]) - w).abs();
        assert!(
            d < tol,
            "{what}: token {id}: {} vs llama.cpp {w}",
            logits[id as usize]
        );
        max = max.max(d);
    }
    if want[0] - want[1] >= MIN_GAP {
        assert_eq!(argmax(logits), top[0], "{what}: greedy token");
    }
    max
}

/// After `s` evaluated a case's ids: every step, teacher-forced.
fn follow(what: &str, tol: f64, s: &mut Session<'_>, case: &Json) -> f64 {
    let greedy = ids(&case["greedy"]);
    let steps = case["steps"].as_array().unwrap();
    let mut max = 0.0f64;
    for (i, step) in steps.iter().enumerate() {
        max = max.max(compare(&format!("{what} step {i}"), tol, s.logits(), step));
        if let Some(&t) = greedy.get(i) {
            s.step(t).unwrap();
        }
    }
    max
}

#[test]
fn prompts_match_llama_cpp() {
    for (name, m, refs) in models() {
        for (build, g) in &refs {
            for case in ["short", "long"] {
                let c = &g[case];
                let mut s = Session::new(&m, 1024);
                s.prompt(&ids(&c["ids"])).unwrap();
                let what = format!("{name} {case} (llama.cpp {build})");
                let max = follow(&what, tol(name), &mut s, c);
                eprintln!("{what}: max |dlogit| {max:.4}");
            }
        }
    }
}

/// A second turn that shares the first turn's prompt and part of its
/// answer (as when a chat template re-renders the history): the session
/// rewinds the recurrent state to the end of the first prompt, replays the
/// kept answer tokens and goes on; llama.cpp evaluated the whole turn from
/// scratch.
#[test]
fn second_turn_matches_llama_cpp() {
    for (name, m, refs) in models() {
        for (build, g) in &refs {
            let (first, turn2) = (&g["short"], &g["turn2"]);
            let mut s = Session::new(&m, 1024);
            s.prompt(&ids(&first["ids"])).unwrap();
            for t in ids(&first["greedy"]) {
                s.step(t).unwrap();
            }
            let full = ids(&turn2["ids"]);
            let common = s
                .tokens()
                .iter()
                .zip(&full)
                .take_while(|(a, b)| a == b)
                .count();
            assert!(common > first["ids"].as_array().unwrap().len() && common < s.tokens().len());
            s.truncate(common);
            s.prompt(&full[common..]).unwrap();
            let what = format!("{name} turn2 (llama.cpp {build})");
            let max = follow(&what, tol(name), &mut s, turn2);
            eprintln!("{what}: max |dlogit| {max:.4}");
        }
    }
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The token-by-token recurrence (decode) and the chunked form (prompts)
/// of the DeltaNet layers give the same logits, through 300 positions.
/// Their outputs differ in the last bits only (delta_net.rs's unit test
/// bounds them); where such a bit moves an activation across an F16 / Q8_0
/// rounding boundary of the next matmul the logits move a little more
/// (measured: F16 model 0.016 on logits of ~30, Q8_0 model 0; with the
/// recurrence for prompts too both are 0, so nothing else differs). The
/// Q1_0 and Q2_0 models amplify such bits more (logits of std ~3; see
/// [`TOL_LOW_BIT`]): measured 0.20 for both, held to 0.3.
#[test]
fn decode_by_token_equals_chunked_prompt() {
    for (name, ty, tied) in gen::MODELS {
        let m = load(gen::build(ty, tied));
        let p = gen::prompt(2, 300);
        let mut a = Session::new(&m, 1024);
        a.prompt(&p).unwrap();
        let mut b = Session::new(&m, 1024);
        b.prompt(&p[..1]).unwrap();
        for &t in &p[1..] {
            b.step(t).unwrap();
        }
        let d = max_diff(a.logits(), b.logits());
        eprintln!("{name}: decode vs chunked prompt: max |dlogit| {d:.2e}");
        let bound = if tol(name) > TOL { 0.3 } else { 0.05 };
        assert!(d < bound, "{name}: {d}");
    }
}

/// Truncating into the middle never reuses a recurrent state of the wrong
/// position. A session evaluates a 120-token prompt (a snapshot there), 40
/// decoded tokens, then is cut and given 40 new tokens: above the snapshot
/// it resumes from it and replays the kept tokens, below it starts over,
/// at the end it just goes on. Each time its logits are bit-identical to a
/// fresh session fed the same tokens in the same pieces, and close to one
/// fed them all at once (different DeltaNet chunk boundaries round a
/// little differently).
#[test]
fn truncate_rewinds_the_recurrent_state() {
    let (_, ty, tied) = gen::MODELS[0];
    let m = load(gen::build(ty, tied));
    let p = gen::prompt(5, 160);
    let q = gen::prompt(6, 40);
    for cut in [160, 140, 120, 90, 0] {
        let mut s = Session::new(&m, 1024);
        s.prompt(&p[..120]).unwrap();
        for &t in &p[120..160] {
            s.step(t).unwrap();
        }
        s.truncate(cut);
        assert_eq!(s.tokens(), &p[..cut]);
        s.prompt(&q).unwrap();

        let mut same = Session::new(&m, 1024);
        match cut {
            160 => {
                same.prompt(&p[..120]).unwrap();
                for &t in &p[120..160] {
                    same.step(t).unwrap();
                }
                same.prompt(&q).unwrap();
            }
            120.. => {
                same.prompt(&p[..120]).unwrap();
                same.prompt(&[&p[120..cut], &q[..]].concat()).unwrap();
            }
            _ => {
                same.prompt(&[&p[..cut], &q[..]].concat()).unwrap();
            }
        }
        assert_eq!(s.logits(), same.logits(), "cut at {cut}");

        let mut once = Session::new(&m, 1024);
        once.prompt(&[&p[..cut], &q[..]].concat()).unwrap();
        let d = max_diff(s.logits(), once.logits());
        assert!(d < 0.05, "cut at {cut}: {d}");
    }
}

/// The continuous-batching engine on a hybrid model: requests batched
/// together give what each gives alone (a short prompt runs as one span,
/// so its DeltaNet chunks are the same), a prompt that extends an earlier
/// one resumes from the snapshot taken at that prompt's end, and the same
/// prompt again resumes there with the logits kept beside the snapshot.
#[test]
fn scheduler_batches_and_reuses_on_qwen35() {
    use shohin_engine::generate::{GenParams, Generator};
    use shohin_engine::sampler::SamplerConfig;
    use shohin_engine::scheduler::{Engine, EngineConfig, Event, Request, Task};
    use std::sync::Arc;

    let (_, ty, tied) = gen::MODELS[0];
    let f = GgufFile::from_bytes(gen::build(ty, tied)).unwrap();
    let tok = Arc::new(shohin_engine::vocab::load_tokenizer(&f).unwrap());
    let m = Arc::new(Model::load(f, Box::new(CpuBackend::new(2).unwrap())).unwrap());
    let e = Engine::start(m.clone(), tok.clone(), EngineConfig::new(2, 256));
    let params = |temp: f32, seed: u64| GenParams {
        sampling: SamplerConfig {
            temperature: temp,
            seed,
            ..SamplerConfig::default()
        },
        max_tokens: 8,
        ..GenParams::default()
    };
    let submit = |p: &[u32], g: GenParams| {
        e.submit(Request {
            lora: Vec::new(),
            prompt: p.to_vec(),
            task: Task::Generate { params: g, n: 1 },
        })
        .unwrap()
    };
    let collect = |mut rx: tokio::sync::mpsc::UnboundedReceiver<Event>| {
        let mut ids = Vec::new();
        loop {
            match rx.blocking_recv().unwrap() {
                Event::Token { next, .. } => ids.push(next.id),
                Event::Done(u) => return (ids, u.cached_tokens),
                e => panic!("unexpected {e:?}"),
            }
        }
    };
    let alone = |p: &[u32], g: GenParams| {
        let mut s = Session::new(&m, 256);
        s.prompt(p).unwrap();
        let mut gen = Generator::new(g).unwrap();
        let mut ids = Vec::new();
        loop {
            let n = gen.next(&tok, s.logits(), s.tokens(), true).unwrap();
            ids.push(n.id);
            if n.finish.is_some() {
                return ids;
            }
            s.step(n.id).unwrap();
        }
    };
    let prompts = [gen::prompt(11, 20), gen::prompt(12, 7), gen::prompt(13, 33)];
    let rxs: Vec<_> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| submit(p, params(if i == 1 { 0.9 } else { 0.0 }, i as u64)))
        .collect();
    for (i, (p, rx)) in prompts.iter().zip(rxs).enumerate() {
        let g = params(if i == 1 { 0.9 } else { 0.0 }, i as u64);
        assert_eq!(collect(rx).0, alone(p, g), "request {i}");
    }
    // Extend the first prompt: its state at the prompt's end is reused.
    let first = &prompts[0];
    collect(submit(first, params(0.0, 0)));
    let longer = [&first[..], &gen::prompt(14, 9)[..]].concat();
    let (ids, cached) = collect(submit(&longer, params(0.0, 0)));
    assert_eq!(cached, first.len(), "resumed at the first prompt's end");
    assert_eq!(ids, alone(&longer, params(0.0, 0)));
    // The very same prompt again: resumed at its end with the logits kept
    // there, nothing evaluated; greedy and seeded sampling as alone.
    let (again, cached) = collect(submit(&longer, params(0.0, 0)));
    assert_eq!(cached, longer.len(), "the whole prompt reused");
    assert_eq!(again, ids);
    let (sampled, cached) = collect(submit(&longer, params(0.9, 5)));
    assert_eq!(cached, longer.len());
    assert_eq!(sampled, alone(&longer, params(0.9, 5)));
}

/// The error `Model::load` gives for the F16 model after `edit` changed
/// its metadata and tensor list.
type Edit = Box<dyn Fn(&mut Vec<(String, Value)>, &mut Tensors)>;

fn load_edited(edit: impl FnOnce(&mut Vec<(String, Value)>, &mut Tensors)) -> String {
    let (_, ty, tied) = gen::MODELS[0];
    let src = GgufFile::from_bytes(gen::build(ty, tied)).unwrap();
    load_error_after_edit(&src, edit)
}

/// Bad qwen35 hyperparameters and tensors: a clear error naming the key
/// or tensor, never a panic.
#[test]
fn bad_qwen35_metadata_is_refused_by_name() {
    let cases: Vec<(&str, Edit)> = vec![
        (
            "qwen35.ssm.inner_size",
            Box::new(|m, _| set(m, "qwen35.ssm.inner_size", Value::U32(500))),
        ),
        (
            "qwen35.ssm.group_count",
            Box::new(|m, _| set(m, "qwen35.ssm.group_count", Value::U32(3))),
        ),
        (
            "qwen35.rope.dimension_count",
            Box::new(|m, _| set(m, "qwen35.rope.dimension_count", Value::U32(130))),
        ),
        (
            "qwen35.ssm.conv_kernel",
            Box::new(|m, _| set(m, "qwen35.ssm.conv_kernel", Value::U32(0))),
        ),
        (
            "qwen35.attention.recurrent_layers",
            Box::new(|m, _| {
                m.push((
                    "qwen35.attention.recurrent_layers".into(),
                    Value::Array(ValueType::Bool, vec![Value::Bool(true); 4]),
                ))
            }),
        ),
        (
            "qwen35.nextn_predict_layers",
            Box::new(|m, _| m.push(("qwen35.nextn_predict_layers".into(), Value::U32(4)))),
        ),
        (
            "blk.0.ssm_a",
            Box::new(|_, t| t.retain(|(n, ..)| n != "blk.0.ssm_a")),
        ),
        (
            "blk.2.ssm_conv1d.weight",
            Box::new(|_, t| {
                let c = t
                    .iter_mut()
                    .find(|(n, ..)| n == "blk.2.ssm_conv1d.weight")
                    .unwrap();
                c.1 = vec![c.1[1], c.1[0]];
            }),
        ),
        (
            "blk.1.attn_q.weight",
            Box::new(|_, t| {
                // An attention layer whose attn_q lacks the gate half.
                let c = t
                    .iter_mut()
                    .find(|(n, ..)| n == "blk.1.attn_q.weight")
                    .unwrap();
                c.1[1] /= 2;
                c.3.truncate(c.3.len() / 2);
            }),
        ),
    ];
    for (key, edit) in cases {
        let err = load_edited(|m, t| edit(m, t));
        assert!(err.contains(key), "error `{err}` does not name `{key}`");
    }
}

/// Writes the models and the cases for gen_qwen35_goldens.sh.
#[test]
#[ignore]
fn write_models() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/tmp/qwen35");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, ty, tied) in gen::MODELS {
        std::fs::write(dir.join(format!("{name}.gguf")), gen::build(ty, tied)).unwrap();
    }
    let cases = serde_json::json!({
        "models": gen::MODELS.iter().map(|m| m.0).collect::<Vec<_>>(),
        "short": gen::prompt(1, 12),
        "long": gen::prompt(2, 300),
        "turn2_keep": 4,
        "turn2_new": gen::prompt(3, 15),
    });
    std::fs::write(dir.join("cases.json"), cases.to_string()).unwrap();
}
