//! `shohin convert DIR OUT.gguf [--type f16]`: a Hugging Face checkpoint to
//! GGUF as llama.cpp's convert_hf_to_gguf.py writes it (see shohin-convert).

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
    let summary = shohin_convert::convert(&a.dir, &a.output, &opts, |i, n, p| {
        let dims: Vec<String> = p.dims.iter().map(u64::to_string).collect();
        println!(
            "[{:4}/{:4}] {:<32} [{:>14}] {:>5} -> {}",
            i + 1,
            n,
            p.name,
            dims.join(", "),
            p.from.name(),
            p.to.name()
        );
    })
    .with_context(|| format!("converting {}", a.dir.display()))?;
    println!(
        "converted {} ({}, {} tokens) to {} ({}): {} tensors, {:.2} MiB, {:.1} s",
        a.dir.display(),
        summary.arch,
        summary.n_vocab,
        a.output.display(),
        out_type.name(),
        summary.tensors.len(),
        summary.file_size as f64 / (1024.0 * 1024.0),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
