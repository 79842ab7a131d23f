//! `shohin convert DIR OUT.gguf [--type f16] [--onnx FILE]`: a Hugging Face
//! checkpoint to GGUF as llama.cpp's convert_hf_to_gguf.py writes it, or an
//! ONNX ternary export (2-bit MatMulNBits) to Q2_0 g128 (see
//! shohin-convert).

use crate::args::ConvertArgs;
use anyhow::{Context, Result};
use shohin_convert::{Options, OutType};

pub fn convert(a: ConvertArgs) -> Result<()> {
    let out_type = OutType::parse(&a.out_type)?;
    let opts = Options {
        out_type,
        threads: a.threads,
    };
    let start = std::time::Instant::now();
    let progress = |i: usize, n: usize, p: &shohin_convert::TensorReport| {
        let dims: Vec<String> = p.dims.iter().map(u64::to_string).collect();
        println!(
            "[{:4}/{:4}] {:<32} [{:>14}] {:>9} -> {}",
            i + 1,
            n,
            p.name,
            dims.join(", "),
            p.from.name(),
            p.to.name()
        );
    };
    // DIR may also name the .onnx file itself
    let (dir, onnx) = match (&a.onnx, a.dir.extension()) {
        (None, Some(x)) if x == "onnx" && a.dir.is_file() => {
            let dir = a.dir.parent().unwrap_or(std::path::Path::new("."));
            (dir.to_owned(), Some(a.dir.clone()))
        }
        _ => (a.dir.clone(), a.onnx.clone()),
    };
    let onnx_dir = onnx.is_some() || shohin_convert::is_onnx_dir(&dir);
    let summary = if onnx_dir {
        shohin_convert::convert_onnx(&dir, onnx.as_deref(), &a.output, a.threads, progress)
    } else {
        shohin_convert::convert(&dir, &a.output, &opts, progress)
    }
    .with_context(|| format!("converting {}", a.dir.display()))?;
    let kind = if onnx_dir {
        "onnx ternary: q2_0 g128 + float"
    } else {
        out_type.name()
    };
    println!(
        "converted {} ({}, {} tokens) to {} ({}): {} tensors, {:.2} MiB, {:.1} s",
        a.dir.display(),
        summary.arch,
        summary.n_vocab,
        a.output.display(),
        kind,
        summary.tensors.len(),
        summary.file_size as f64 / (1024.0 * 1024.0),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
