//! ONNX ternary exports (onnxruntime-genai builder layout, MatMulNBits with
//! 2-bit codes in blocks of 128) to GGUF `Q2_0` g128: a random ternary Qwen3
//! checkpoint is written as ONNX by `tests/onnx/make_onnx.py` (the `onnx`
//! and `numpy` packages of `tests/onnx/requirements.txt`, in a venv under
//! the target directory), converted, and run; its logits must match a
//! float64 forward of the checkpoint. Unsupported layouts and broken files
//! must give errors.

mod common;

use common::*;
use shohin_convert::{convert, convert_onnx, ConvertError, Options, OutType};
use shohin_engine::backend::cpu::CpuBackend;
use shohin_engine::model::Model;
use shohin_engine::session::Session;
use shohin_gguf::{GgmlType, GgufFile};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

const SHAPE: Shape = Shape {
    hidden: 128,
    layers: 2,
    heads: 4,
    kv_heads: 2,
    head_dim: 32,
    ff: 256,
};

fn here() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnx")
}

fn tmp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// A venv with `requirements.txt` installed (once per requirements).
fn venv() -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tmp("convert-onnx-venv");
    let py = dir.join("bin/python");
    let stamp = dir.join("installed.txt");
    let req = std::fs::read_to_string(here().join("requirements.txt")).unwrap();
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(req.as_str()) {
        return py;
    }
    ok(Command::new("python3").args(["-m", "venv"]).arg(&dir));
    ok(Command::new(&py)
        .args(["-m", "pip", "install", "-q", "-r"])
        .arg(here().join("requirements.txt")));
    std::fs::write(&stamp, req).unwrap();
    py
}

fn ok(c: &mut Command) {
    let out = c.output().expect("run python");
    assert!(
        out.status.success(),
        "{c:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The ternary checkpoint, written once per test binary.
fn checkpoint() -> &'static (PathBuf, Checkpoint) {
    static CK: OnceLock<(PathBuf, Checkpoint)> = OnceLock::new();
    CK.get_or_init(|| {
        let dir = tmp("convert-onnx-ck");
        let _ = std::fs::remove_dir_all(&dir);
        let ck = write_checkpoint_with(&dir, &fixture_vocab(), false, SHAPE, true);
        (dir, ck)
    })
}

/// The checkpoint as ONNX in `tmp(name)`, made with `args`.
fn make_onnx(name: &str, args: &[&str]) -> PathBuf {
    let (ck, _) = checkpoint();
    let out = tmp(name);
    let _ = std::fs::remove_dir_all(&out);
    ok(Command::new(venv())
        .arg(here().join("make_onnx.py"))
        .arg(ck)
        .arg(&out)
        .args(args));
    out
}

/// The default export, made once.
fn onnx_dir() -> &'static Path {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| make_onnx("convert-onnx-model", &[]))
}

const PROMPT: [u32; 8] = [151644, 872, 198, 9707, 11, 1879, 0, 151645];

/// shohin's logits after each prompt token.
fn engine_logits(path: &Path, ck: &Checkpoint) -> Vec<Vec<f32>> {
    let f = GgufFile::open(path).unwrap();
    let model = Model::load(f, Box::new(CpuBackend::new(2).unwrap())).unwrap();
    assert_eq!(model.n_vocab(), ck.n_vocab);
    let mut s = Session::new(&model, 64);
    PROMPT
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            if i == 0 {
                s.prompt(&[t]).unwrap().to_vec()
            } else {
                s.step(t).unwrap().to_vec()
            }
        })
        .collect()
}

/// Max |a - b| over all positions.
fn max_diff(got: &[Vec<f32>], want: &[Vec<f64>]) -> f64 {
    got.iter()
        .zip(want)
        .flat_map(|(g, w)| g.iter().zip(w).map(|(a, b)| (*a as f64 - b).abs()))
        .fold(0f64, f64::max)
}

/// Max |shohin - f64| over the logits after each prompt token, against
/// the exact float64 forward (asserted) and one that quantizes the linear
/// layers' inputs to Q8_0 as the engine's ternary dot products do (shown).
fn max_dlogit(path: &Path, ck: &Checkpoint) -> f64 {
    let got = engine_logits(path, ck);
    let exact = reference_logits(ck, &PROMPT);
    let q8 = reference_logits_with(ck, &PROMPT, true);
    let spread = exact.iter().flatten().fold(0f64, |m, v| m.max(v.abs()));
    let d = max_diff(&got, &exact);
    eprintln!(
        "{}: max |dlogit| {d:.5} vs f64 ({:.5} vs f64 with Q8_0 activations; max |logit| {spread:.2})",
        path.display(),
        max_diff(&got, &q8),
    );
    d
}

/// Through `convert`, which finds the `.onnx` itself.
fn run(dir: &Path, out: &Path) -> Result<shohin_convert::Summary, ConvertError> {
    let opts = Options {
        out_type: OutType::F16,
        threads: 2,
    };
    convert(dir, out, &opts, |_, _, _| {})
}

#[test]
fn ternary_export_converts_exactly_and_matches_a_float64_forward() {
    let (_, ck) = checkpoint();
    let out = tmp("convert-onnx.gguf");
    let s = run(onnx_dir(), &out).unwrap();
    assert_eq!(s.arch, "qwen3");
    let f = GgufFile::open(&out).unwrap();
    assert_eq!(f.get_u32("general.file_type").unwrap(), 142);
    assert_eq!(f.get_str("tokenizer.chat_template").unwrap(), TEMPLATE);
    let ty = |n: &str| f.tensor(n).unwrap_or_else(|| panic!("{n}")).ggml_type;
    for l in 0..SHAPE.layers {
        for n in [
            "attn_q",
            "attn_k",
            "attn_v",
            "attn_output",
            "ffn_gate",
            "ffn_up",
            "ffn_down",
        ] {
            assert_eq!(
                ty(&format!("blk.{l}.{n}.weight")),
                GgmlType::Q2_0G128,
                "{l} {n}"
            );
        }
        assert_eq!(ty(&format!("blk.{l}.attn_q_norm.weight")), GgmlType::F32);
        assert_eq!(ty(&format!("blk.{l}.ffn_norm.weight")), GgmlType::F32);
    }
    assert_eq!(ty("token_embd.weight"), GgmlType::F16);
    assert_eq!(ty("output.weight"), GgmlType::F16);
    assert_eq!(ty("output_norm.weight"), GgmlType::F32);
    assert_eq!(f.tensors().len(), 1 + SHAPE.layers * 11 + 2);
    // the weights are the checkpoint's exactly
    let pairs = [
        ("attn_q", "self_attn.q_proj"),
        ("attn_k", "self_attn.k_proj"),
        ("attn_v", "self_attn.v_proj"),
        ("attn_output", "self_attn.o_proj"),
        ("ffn_gate", "mlp.gate_proj"),
        ("ffn_up", "mlp.up_proj"),
        ("ffn_down", "mlp.down_proj"),
    ];
    for l in 0..SHAPE.layers {
        for (g, h) in pairs {
            let gguf = format!("blk.{l}.{g}.weight");
            let t = f.tensor(&gguf).unwrap();
            let data = f.tensor_data(t);
            let want = ck.get(&format!("model.layers.{l}.{h}.weight"));
            let mut got = vec![0f32; want.len()];
            shohin_quant::dequantize_row(GgmlType::Q2_0G128, data, &mut got).unwrap();
            for (i, (a, b)) in got.iter().zip(want).enumerate() {
                assert_eq!(*a as f64, *b, "{gguf} weight {i}");
            }
        }
    }
    let d = max_dlogit(&out, ck);
    assert!(d < 0.1, "max |dlogit| {d} >= 0.1");
    // the comparison can tell a mapping error: layer 0's gate and up
    // swapped give logits further from shohin's than the tolerance
    let mut w = ck.w.clone();
    let (g, u) = (
        "model.layers.0.mlp.gate_proj.weight",
        "model.layers.0.mlp.up_proj.weight",
    );
    let (wg, wu) = (w[g].clone(), w[u].clone());
    w.insert(g.into(), wu);
    w.insert(u.into(), wg);
    let swapped = Checkpoint {
        n_vocab: ck.n_vocab,
        shape: ck.shape,
        w,
    };
    let got = engine_logits(&out, ck);
    let off = max_diff(&got, &reference_logits(&swapped, &PROMPT));
    eprintln!("gate/up swapped: max |dlogit| {off:.4}");
    assert!(off > 0.15, "{off}");
}

#[test]
fn tied_float_lm_head_becomes_the_embedding() {
    let (_, ck) = checkpoint();
    let dir = make_onnx("convert-onnx-tied", &["--tied"]);
    let out = tmp("convert-onnx-tied.gguf");
    convert_onnx(&dir, Some(Path::new("model.onnx")), &out, 2, |_, _, _| {}).unwrap();
    let f = GgufFile::open(&out).unwrap();
    assert!(f.tensor("output.weight").is_none());
    let d = max_dlogit(&out, ck);
    assert!(d < 0.1, "max |dlogit| {d} >= 0.1");
}

fn err(dir: &Path) -> String {
    let out = tmp("convert-onnx-err.gguf");
    let e = run(dir, &out).unwrap_err().to_string();
    assert!(
        !out.exists(),
        "an incomplete {} is left behind",
        out.display()
    );
    e
}

#[test]
fn unsupported_layouts_are_refused_naming_the_node() {
    let d = make_onnx("convert-onnx-bits4", &["--bits", "4"]);
    let e = err(&d);
    assert!(
        e.contains("MatMulNBits")
            && e.contains("bits = 4")
            && e.contains("/model/layers.0/attn/q_proj"),
        "{e}"
    );

    let d = make_onnx("convert-onnx-bs64", &["--block-size", "64"]);
    let e = err(&d);
    assert!(
        e.contains("block_size = 64") && e.contains("/model/layers.0/"),
        "{e}"
    );

    let d = make_onnx("convert-onnx-badcode", &["--bad-code"]);
    let e = err(&d);
    assert!(
        e.contains("/model/layers.0/attn/q_proj/MatMul_Q2")
            && e.contains("code 0")
            && e.contains("not a ternary export"),
        "{e}"
    );
}

fn copy_dir(from: &Path, name: &str) -> PathBuf {
    let to = tmp(name);
    let _ = std::fs::remove_dir_all(&to);
    std::fs::create_dir_all(&to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    to
}

#[test]
fn corrupt_and_truncated_files_are_errors_not_panics() {
    let src = onnx_dir();
    let d = copy_dir(src, "convert-onnx-corrupt");
    let data = std::fs::read(src.join("model.onnx.data")).unwrap();
    let model = std::fs::read(src.join("model.onnx")).unwrap();

    // external data cut short
    std::fs::write(d.join("model.onnx.data"), &data[..data.len() / 2]).unwrap();
    let e = err(&d);
    assert!(
        e.contains("external data") && e.contains("past its end"),
        "{e}"
    );
    std::fs::write(d.join("model.onnx.data"), &data).unwrap();

    // the model file cut at many points, and garbage
    for cut in (1..20)
        .map(|i| model.len() * i / 20)
        .chain([1, 7, model.len() - 1])
    {
        std::fs::write(d.join("model.onnx"), &model[..cut]).unwrap();
        let e = err(&d);
        assert!(!e.is_empty());
    }
    let mut junk = model.clone();
    for (i, b) in junk.iter_mut().enumerate().skip(40).step_by(97) {
        *b ^= (i as u8).wrapping_mul(31) | 1;
    }
    std::fs::write(d.join("model.onnx"), &junk).unwrap();
    let out = tmp("convert-onnx-junk.gguf");
    let _ = run(&d, &out); // an error or, by chance, a file: never a panic
    std::fs::write(d.join("model.onnx"), [0xffu8; 64]).unwrap();
    let e = err(&d);
    assert!(e.contains("not a valid ONNX model"), "{e}");

    // an external location outside the model's directory
    std::fs::write(d.join("model.onnx"), &model).unwrap();
    let needle = b"model.onnx.data";
    let mut evil = model.clone();
    let mut n = 0;
    let mut i = 0;
    while i + needle.len() <= evil.len() {
        if &evil[i..i + needle.len()] == needle {
            evil[i..i + needle.len()].copy_from_slice(b"../../etc/passw");
            n += 1;
        }
        i += 1;
    }
    assert!(n > 0);
    std::fs::write(d.join("model.onnx"), &evil).unwrap();
    let e = err(&d);
    assert!(e.contains("not a relative path below the model"), "{e}");

    // two .onnx files: the choice is the caller's
    std::fs::write(d.join("model.onnx"), &model).unwrap();
    std::fs::write(d.join("other.onnx"), &model).unwrap();
    let e = err(&d);
    assert!(
        e.contains("several ONNX files") && e.contains("--onnx"),
        "{e}"
    );
}
